"""Idempotency-Key on writes: a retried write returns the first outcome and
is applied once."""
import threading

import requests


def put(c, key, data, idem, **params):
    return requests.put(c.url + "/v1/kv/" + key, data=data, params=params,
                        headers={"Idempotency-Key": idem})


def version(c, key):
    return requests.get(c.url + f"/v1/kv/{key}?format=json&consistency=strong").json()["version"]


def test_retry_replays_and_applies_once(citrus):
    first = put(citrus, "i/a", b"1", "req-1")
    assert first.status_code == 200 and "Idempotency-Replayed" not in first.headers
    again = put(citrus, "i/a", b"1", "req-1")
    assert again.status_code == 200 and again.headers["Idempotency-Replayed"] == "true"
    assert again.json() == first.json()
    assert version(citrus, "i/a") == 1
    # a new key for a new request applies it
    assert put(citrus, "i/a", b"1", "req-2").json()["version"] == 2


def test_same_key_other_request_is_refused(citrus):
    assert put(citrus, "i/b", b"1", "req-b").status_code == 200
    r = put(citrus, "i/b", b"2", "req-b")
    assert r.status_code == 422 and r.json()["error"]["code"] == "unprocessable"
    r = put(citrus, "i/other", b"1", "req-b")
    assert r.status_code == 422
    assert requests.get(citrus.url + "/v1/kv/i/b").content == b"1"


def test_definite_outcomes_are_replayed(citrus):
    requests.put(citrus.url + "/v1/kv/i/c", data=b"0")
    first = put(citrus, "i/c", b"new", "req-c", cas=0)
    assert first.status_code == 409
    requests.delete(citrus.url + "/v1/kv/i/c")  # now cas=0 would succeed...
    again = put(citrus, "i/c", b"new", "req-c", cas=0)
    assert again.status_code == 409 and again.headers["Idempotency-Replayed"] == "true"
    assert again.json() == first.json()  # ...but the first outcome stands
    assert requests.get(citrus.url + "/v1/kv/i/c").status_code == 404


def test_failure_that_applied_nothing_is_not_kept(citrus):
    r = put(citrus, "i/d", b"1", "req-d", lease=424242)
    assert r.status_code == 404 and r.json()["error"]["code"] == "lease_not_found"
    r2 = put(citrus, "i/d", b"1", "req-d", lease=424242)
    assert r2.status_code == 404 and "Idempotency-Replayed" not in r2.headers
    lid = requests.post(citrus.url + "/v1/leases", json={"ttl": 60}).json()["id"]
    ok = put(citrus, "i/d", b"1", "req-d2", lease=lid)
    assert ok.status_code == 200


def test_txn_and_delete_replay(citrus):
    body = {"success": [{"op": "put", "key": "i/t1", "value": "a"},
                        {"op": "put", "key": "i/t2", "value": "b"}]}
    h = {"Idempotency-Key": "txn-1"}
    first = requests.post(citrus.url + "/v1/txn", json=body, headers=h)
    again = requests.post(citrus.url + "/v1/txn", json=body, headers=h)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and len(first.json()["results"]) == 2
    assert version(citrus, "i/t1") == 1
    d1 = requests.delete(citrus.url + "/v1/kv/i/t1", headers={"Idempotency-Key": "del-1"})
    requests.put(citrus.url + "/v1/kv/i/t1", data=b"back")
    d2 = requests.delete(citrus.url + "/v1/kv/i/t1", headers={"Idempotency-Key": "del-1"})
    assert d1.json() == d2.json() and d1.json()["deleted"] == 1
    assert requests.get(citrus.url + "/v1/kv/i/t1").content == b"back"


def test_bad_keys(citrus):
    for bad in ("", "has space", "x" * 129, "..", "a/b"):
        r = requests.put(citrus.url + "/v1/kv/i/e", data=b"1", headers={"Idempotency-Key": bad})
        assert r.status_code == 400, bad
    assert requests.get(citrus.url + "/v1/kv/i/e").status_code == 404


def test_concurrent_retries_apply_once(citrus):
    answers = []
    lock = threading.Lock()

    def go():
        r = put(citrus, "i/race", b"x", "race-1")
        with lock:
            answers.append((r.status_code, r.headers.get("Idempotency-Replayed")))

    threads = [threading.Thread(target=go) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert version(citrus, "i/race") == 1
    assert sum(1 for s, rep in answers if s == 200 and rep is None) == 1
    assert all(s == 200 or s == 409 for s, _ in answers)
    # after the dust settles every retry is a replay of the one write
    r = put(citrus, "i/race", b"x", "race-1")
    assert r.status_code == 200 and r.headers["Idempotency-Replayed"] == "true"
