"""kill -9 under write load, then restart: every acknowledged write is there."""
import base64
import threading
import time

import requests

from conftest import wait_until


def test_kill9_during_writes_keeps_acknowledged(make_citrus):
    c = make_citrus()
    acked = {}  # key -> (value, mod_revision) of the last acknowledged write
    lock = threading.Lock()
    stop = threading.Event()

    def writer(w):
        s = requests.Session()
        i = 0
        while not stop.is_set():
            key, val = f"dur/w{w}/k{i % 40}", f"{w}-{i}"
            try:
                r = s.put(c.url + "/v1/kv/" + key, data=val.encode(), timeout=5)
            except requests.RequestException:
                return  # the server died mid-request: outcome unknown, not acknowledged
            if r.status_code == 200:
                with lock:
                    acked[key] = (val, r.json()["mod_revision"])
            i += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(acked) < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    c.kill9()
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) >= 200
    with lock:
        snapshot = dict(acked)
    c.start()
    items = requests.get(c.url + "/v1/kv/dur/?prefix=true").json()["items"]
    stored = {i["key"]: (base64.b64decode(i["value"]).decode(), i["mod_revision"]) for i in items}
    for key, (val, mod) in snapshot.items():
        assert key in stored, key
        sval, smod = stored[key]
        # the store may hold a later write whose answer was lost in the kill
        assert smod >= mod, (key, mod, smod)
        if smod == mod:
            assert sval == val


def test_restart_preserves_revisions_and_leases(make_citrus):
    c = make_citrus()
    r = requests.put(c.url + "/v1/kv/p/a", data=b"1").json()
    lid = requests.post(c.url + "/v1/leases", json={"ttl": 60}).json()["id"]
    requests.put(c.url + f"/v1/kv/p/eph?lease={lid}", data=b"e")
    rev = requests.get(c.url + "/v1/kv/?prefix=true").json()["revision"]
    assert c.stop() == 0
    c.start()
    g = requests.get(c.url + "/v1/kv/p/a?format=json").json()
    assert g["mod_revision"] == r["mod_revision"] and g["version"] == 1
    # the revision carries on; what happened since is only the node's own
    # re-registration and re-election under the reserved citrus/ prefix
    after = requests.get(c.url + "/v1/kv/?prefix=true").json()["revision"]
    assert after >= rev
    changes = requests.get(c.url + f"/v1/watch/?from_revision={rev + 1}&timeout=0s").json()
    assert all(e["key"].startswith("citrus/") for e in changes["events"])
    assert {e["mod_revision"] for e in changes["events"]} <= set(range(rev + 1, after + 1))
    assert requests.post(c.url + f"/v1/leases/{lid}/keepalive").status_code == 200
    assert requests.get(c.url + "/v1/kv/p/eph").content == b"e"
    nxt = requests.put(c.url + "/v1/kv/p/b", data=b"2").json()
    assert nxt["revision"] == after + 1


def test_clean_stop_on_sigint(make_citrus):
    import signal
    c = make_citrus()
    # a long poll in flight is answered, and does not block the stop
    def watches_opened():
        for line in requests.get(c.url + "/metrics").text.splitlines():
            if line.startswith('citrus_store_ops_total{op="watch_open",result="ok"}'):
                return float(line.split()[-1])
        return 0.0

    before = watches_opened()
    answers = []
    t = threading.Thread(target=lambda: answers.append(requests.get(
        c.url + "/v1/watch/x/?timeout=60s", timeout=30)))
    t.start()
    # stop only once the poll is parked on its watch (not racing its arrival)
    wait_until(lambda: watches_opened() > before, 10, what="the long poll to open its watch")
    time.sleep(0.1)
    assert c.stop(signal.SIGINT) == 0
    t.join(10)
    assert answers and answers[0].status_code == 200, answers
    assert any(l["msg"] == "stopped" for l in c.log_lines())
