"""Watches (long poll and SSE) and leases through the REST API."""
import base64
import json
import threading
import time

import requests

from conftest import wait_until


def put(c, key, val):
    r = requests.put(c.url + "/v1/kv/" + key, data=val)
    assert r.status_code == 200, r.text
    return r.json()["revision"]


def poll(c, prefix, frm, timeout="5s"):
    r = requests.get(c.url + f"/v1/watch/{prefix}?from_revision={frm}&timeout={timeout}",
                     timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_long_poll_history_and_live(citrus):
    r1 = put(citrus, "w/a", b"1")
    put(citrus, "other", b"x")
    r3 = put(citrus, "w/b", b"2")
    got = poll(citrus, "w/", r1)
    assert [(e["type"], e["key"], base64.b64decode(e["value"])) for e in got["events"]] == \
        [("put", "w/a", b"1"), ("put", "w/b", b"2")]
    assert got["revision"] >= r3
    # live: a poll waits until a matching change lands
    result = {}
    t = threading.Thread(target=lambda: result.update(poll(citrus, "w/", got["revision"] + 1,
                                                           "20s")))
    t.start()
    time.sleep(0.2)
    put(citrus, "unrelated", b"x")
    rd = requests.delete(citrus.url + "/v1/kv/w/a").json()["revision"]
    t.join(20)
    assert [(e["type"], e["key"], e["mod_revision"]) for e in result["events"]] == \
        [("delete", "w/a", rd)]


def test_long_poll_timeout_empty(citrus):
    rev = put(citrus, "z", b"1")
    t0 = time.monotonic()
    got = poll(citrus, "nothing/", rev + 1, "300ms")
    assert got["events"] == []
    assert 0.25 <= time.monotonic() - t0 < 5
    assert got["revision"] >= rev


def test_watch_bad_inputs(citrus):
    u = citrus.url + "/v1/watch/"
    for q in ("a?from_revision=x", "a?from_revision=-1", "a?timeout=soon", "a//b"):
        r = requests.get(u + q)
        assert r.status_code == 400, (q, r.text)


def test_watch_compacted(make_citrus):
    c = make_citrus(extra=["--history-keep", "100"])
    for i in range(400):
        put(c, f"k{i % 5}", str(i).encode())

    def compacted():
        r = requests.get(c.url + "/v1/watch/?from_revision=1&timeout=0s")
        return [r] if r.status_code == 410 else None  # a 4xx Response is falsy
    r = wait_until(compacted, 10, what="history compaction")[0]
    e = r.json()["error"]
    assert e["code"] == "compacted" and e["compact_revision"] > 1
    ok = requests.get(c.url + f"/v1/watch/?from_revision={e['compact_revision']}&timeout=0s")
    assert ok.status_code == 200 and ok.json()["events"]


def test_watch_gap_free_many_writers(citrus):
    """10k writes from 4 writers; a long-poll watcher sees each revision once, in order."""
    start = put(citrus, "g/start", b"0")
    n_writers, per = 4, 2500
    acked = {}
    lock = threading.Lock()

    def writer(w):
        s = requests.Session()
        for i in range(per):
            r = s.put(citrus.url + f"/v1/kv/g/w{w}/{i % 50}", data=f"{w}:{i}".encode())
            assert r.status_code == 200
            with lock:
                acked[r.json()["revision"]] = (f"g/w{w}/{i % 50}", f"{w}:{i}")

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(n_writers)]
    for t in threads:
        t.start()
    events, frm = [], start + 1
    s = requests.Session()
    deadline = time.monotonic() + 240
    while len(events) < n_writers * per and time.monotonic() < deadline:
        r = s.get(citrus.url + f"/v1/watch/g/?from_revision={frm}&timeout=5s")
        assert r.status_code == 200, r.text
        j = r.json()
        events += j["events"]
        frm = j["revision"] + 1
    for t in threads:
        t.join()
    revs = [e["mod_revision"] for e in events]
    assert len(revs) == n_writers * per
    assert revs == sorted(revs) and len(set(revs)) == len(revs)
    assert revs == list(range(start + 1, start + 1 + n_writers * per))
    for e in events:
        key, val = acked[e["mod_revision"]]
        assert e["key"] == key and base64.b64decode(e["value"]).decode() == val


def test_sse_stream(citrus):
    rev = put(citrus, "s/a", b"1")
    r = requests.get(citrus.url + f"/v1/watch/s/?from_revision={rev}",
                     headers={"Accept": "text/event-stream"}, stream=True, timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/event-stream")
    lines = r.iter_lines(decode_unicode=True)
    got = []
    put(citrus, "s/b", b"2")
    put(citrus, "t/skip", b"x")
    requests.delete(citrus.url + "/v1/kv/s/a")
    event = {}
    for line in lines:
        if line.startswith("id: "):
            event["id"] = int(line[4:])
        elif line.startswith("event: "):
            event["event"] = line[7:]
        elif line.startswith("data: "):
            event["data"] = json.loads(line[6:])
        elif line == "" and "data" in event:
            got.append(event)
            event = {}
            if len(got) == 3:
                break
    r.close()
    assert [(g["event"], g["data"]["key"]) for g in got] == \
        [("put", "s/a"), ("put", "s/b"), ("delete", "s/a")]
    assert got[0]["id"] == rev and got[0]["id"] < got[1]["id"] < got[2]["id"]


def test_lease_grant_keepalive_revoke(citrus):
    u = citrus.url
    lease = requests.post(u + "/v1/leases", json={"ttl": 30}).json()
    assert lease["ttl"] == 30 and lease["id"] > 0
    lid = lease["id"]
    put_r = requests.put(u + f"/v1/kv/l/a?lease={lid}", data=b"1")
    assert put_r.status_code == 200
    requests.put(u + f"/v1/kv/l/b?lease={lid}", data=b"2")
    assert requests.get(u + "/v1/kv/l/a?format=json").json()["lease"] == lid
    ka = requests.post(u + f"/v1/leases/{lid}/keepalive")
    assert ka.status_code == 200 and ka.json()["ttl"] == 30
    rev = requests.get(u + "/v1/kv/?prefix=true").json()["revision"]
    assert requests.delete(u + f"/v1/leases/{lid}").status_code == 200
    assert requests.get(u + "/v1/kv/l/a").status_code == 404
    assert requests.get(u + "/v1/kv/l/b").status_code == 404
    w = requests.get(u + f"/v1/watch/l/?from_revision={rev + 1}&timeout=1s").json()
    assert {e["mod_revision"] for e in w["events"]} == {rev + 1}  # one revision for both
    assert requests.post(u + f"/v1/leases/{lid}/keepalive").status_code == 404
    assert requests.delete(u + f"/v1/leases/{lid}").status_code == 404


def test_lease_expiry(citrus):
    u = citrus.url
    lid = requests.post(u + "/v1/leases", json={"ttl": 1}).json()["id"]
    requests.put(u + f"/v1/kv/eph/x?lease={lid}", data=b"1")
    requests.put(u + "/v1/kv/eph/keep", data=b"1")
    wait_until(lambda: requests.get(u + "/v1/kv/eph/x").status_code == 404, 5,
               what="lease expiry")
    assert requests.get(u + "/v1/kv/eph/keep").status_code == 200


def test_lease_bad_inputs(citrus):
    u = citrus.url
    for body in ({}, {"ttl": 0}, {"ttl": "5"}, {"ttl": -1}, [], {"ttl": 10 ** 12}):
        r = requests.post(u + "/v1/leases", json=body)
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_json", body
    assert requests.post(u + "/v1/leases", data="{", headers={
        "Content-Type": "application/json"}).status_code == 400
    # a form is what a page may POST cross-site (docs/security.md)
    assert requests.post(u + "/v1/leases", data='{"ttl":5}', headers={
        "Content-Type": "application/x-www-form-urlencoded"}).status_code == 403
    assert requests.post(u + "/v1/leases/abc/keepalive").status_code == 400
    assert requests.delete(u + "/v1/leases/0").status_code == 400
