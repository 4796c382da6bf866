"""Requests that wait on etcd do not hold an HTTP thread: with the catalog
stopped (SIGSTOP), many strong reads wait for their etcd timeout while other
requests on the same node (liveness, reads from the node's copy, the cluster
view) are answered at once. One etcd member and one citrus node."""
import signal
import threading
import time

import requests

from cluster import make_cluster  # noqa: F401 (fixture)
from conftest import wait_until

BLOCKED = 32  # well over the 4 HTTP threads, over the 16 work-pool threads too
TIMEOUT_MS = 3000


def test_blocked_catalog_calls_do_not_stall_other_requests(make_cluster):
    cl, _ = make_cluster(citrus_extra=["--etcd-request-timeout", str(TIMEOUT_MS)],
                         n_etcd=1, n_nodes=1)
    node, member = cl.nodes[0], cl.etcd[0]
    s = requests.Session()
    assert s.put(f"{node.url}/v1/kv/off/k", data="v", timeout=5).status_code == 200
    wait_until(lambda: s.get(f"{node.url}/v1/kv/off/k", timeout=2).status_code == 200, 5,
               what="the key in the node's copy")
    member.signal(signal.SIGSTOP)
    answers = []
    lock = threading.Lock()

    def strong():
        t0 = time.monotonic()
        try:
            r = requests.get(f"{node.url}/v1/kv/off/k", params={"consistency": "strong"},
                             timeout=30)
            out = (r.status_code, r.text)
        except requests.RequestException as e:
            out = (type(e).__name__, str(e))
        with lock:
            answers.append((out, time.monotonic() - t0))

    threads = [threading.Thread(target=strong) for _ in range(BLOCKED)]
    try:
        for t in threads:
            t.start()
        time.sleep(0.5)  # every strong read is waiting on the stopped member now
        quick = []
        for path, params, want in (("/health/live", None, (200,)),
                                   ("/v1/kv/off/k", {"consistency": "any"}, (200,)),
                                   ("/health/ready", None, (200, 503)),
                                   ("/v1/cluster", None, (200,))):
            for _ in range(3):  # new connections, so any HTTP thread may take them
                t0 = time.monotonic()
                r = requests.get(node.url + path, params=params, timeout=10)
                took = time.monotonic() - t0
                quick.append((path, r.status_code, round(took, 3)))
                assert r.status_code in want, (path, r.status_code, r.text)
                assert took < 1.0, f"{path} took {took:.2f}s while strong reads waited: {quick}"
        assert s.get(f"{node.url}/v1/kv/off/k", params={"consistency": "any"},
                     timeout=5).text == "v"
        with lock:
            early = list(answers)
        assert not early, f"strong reads answered while etcd was stopped: {early[:3]}"
    finally:
        member.signal(signal.SIGCONT)
        for t in threads:
            t.join(60)
    # each strong read waited for etcd, then got a definite answer: 200 once
    # etcd is back, or 503 when its own timeout passed first; none hangs
    assert len(answers) == BLOCKED
    for (status, text), took in answers:
        assert status in (200, 503), (status, text)
    cl.wait_ready(10)
