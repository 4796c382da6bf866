"""Bounded answers and the store quota (issue 13, item 8): listings stop at
server.max_response_bytes with more: true, a txn whose gets would pass it is
413 with nothing applied, a snapshot past it is 413, a watch replay pages;
past catalog.quota_bytes writes are 507 no_space while reads and deletes go
on, /health/ready shows the NOSPACE alarm, and compact/defrag clear it."""
import base64
import json

import requests

from conftest import run_cli

SMALL = ["--max-response-bytes", "65536"]


def err(resp, status, code):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"]["code"] == code, body
    return body["error"]


def fill(url, prefix, n, size):
    vals = {}
    for i in range(n):
        v = bytes([65 + i % 26]) * size
        r = requests.put(f"{url}/v1/kv/{prefix}/k{i:03d}", data=v)
        assert r.status_code == 200, r.text
        vals[f"{prefix}/k{i:03d}"] = v
    return vals


def test_listing_pages_at_max_response_bytes(make_citrus):
    c = make_citrus(extra=SMALL)
    vals = fill(c.url, "big", 10, 20000)
    r = requests.get(c.url + "/v1/kv/big?prefix=true")
    assert r.status_code == 200
    first = r.json()
    # the attack: one answer with every value; now it stops at the bound
    assert first["more"] is True and 1 <= len(first["items"]) < 10
    assert len(r.content) <= 65536
    got, page, pages = {}, first, 1
    while True:
        for it in page["items"]:
            got[it["key"]] = base64.b64decode(it["value"])
        if not page["more"]:
            break
        after = page["items"][-1]["key"]
        page = requests.get(c.url + "/v1/kv/big", params={"prefix": "true", "after": after}).json()
        pages += 1
    assert got == vals and pages >= 3
    assert list(got) == sorted(got)
    # keys_only pages hold far more: the bound counts what is sent
    ko = requests.get(c.url + "/v1/kv/big?prefix=true&keys_only=true").json()
    assert len(ko["items"]) == 10 and ko["more"] is False
    # a limit still applies under the bound
    lim = requests.get(c.url + "/v1/kv/big?prefix=true&limit=1").json()
    assert len(lim["items"]) == 1 and lim["more"] is True
    # the CLI follows the pages
    out = run_cli("kv", "ls", "big", "--keys-only", "--endpoint", c.url)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == sorted(vals)
    out = run_cli("kv", "ls", "big", "-o", "json", "--endpoint", c.url)
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)["items"]) == 10


def test_txn_past_the_bound_is_413_and_applies_nothing(make_citrus):
    c = make_citrus(extra=SMALL)
    fill(c.url, "big", 10, 20000)
    rev = requests.get(c.url + "/v1/kv/big?prefix=true&count_only=true").json()["revision"]
    gets = [{"op": "get", "key": "big/", "prefix": True} for _ in range(8)]
    body = {"success": [{"op": "put", "key": "t/marker", "value": "x"},
                        {"op": "delete", "key": "big/k000"}] + gets}
    r = requests.post(c.url + "/v1/txn", json=body)
    e = err(r, 413, "response_too_large")
    assert "nothing was applied" in e["message"]
    assert requests.get(c.url + "/v1/kv/t/marker").status_code == 404
    assert requests.get(c.url + "/v1/kv/big/k000").status_code == 200
    after = requests.get(c.url + "/v1/kv/big?prefix=true&count_only=true").json()
    assert after["revision"] == rev and after["count"] == 10
    # 128 prefix gets in a few KB of request: refused the same way
    many = {"success": [{"op": "get", "key": "big/", "prefix": True}] * 128}
    assert len(json.dumps(many)) < 8192
    err(requests.post(c.url + "/v1/txn", json=many), 413, "response_too_large")
    # gets that fit are answered, writes applied
    ok = {"success": [{"op": "put", "key": "t/marker", "value": "x"},
                      {"op": "get", "key": "big/", "prefix": True, "limit": 2}]}
    r = requests.post(c.url + "/v1/txn", json=ok)
    assert r.status_code == 200, r.text
    assert len(r.json()["results"][1]["items"]) == 2
    assert requests.get(c.url + "/v1/kv/t/marker").content == b"x"


def test_snapshot_past_the_bound_is_413(make_citrus):
    c = make_citrus(extra=SMALL)
    assert requests.get(c.url + "/v1/snapshot").status_code == 200
    fill(c.url, "big", 10, 20000)
    err(requests.get(c.url + "/v1/snapshot"), 413, "response_too_large")


def test_watch_replay_pages_and_keeps_order(make_citrus):
    c = make_citrus(extra=SMALL)
    vals = fill(c.url, "big", 12, 20000)
    assert requests.delete(c.url + "/v1/kv/big?prefix=true").json()["deleted"] == 12
    events, frm, polls = [], 1, 0
    while len(events) < 24:
        r = requests.get(c.url + "/v1/watch/big", params={"from_revision": frm, "timeout": "2s"})
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(r.content) <= 65536 + 30000  # at most one revision past the bound
        events += page["events"]
        frm = page["revision"] + 1
        polls += 1
        assert polls < 50
    # the attack: the whole history in one answer; now it comes in pages
    assert polls >= 3
    puts = [e for e in events if e["type"] == "put"]
    dels = [e for e in events if e["type"] == "delete"]
    assert [e["key"] for e in puts] == sorted(vals) and len(dels) == 12
    assert all(base64.b64decode(e["value"]) == vals[e["key"]] for e in puts)
    revs = [e["mod_revision"] for e in events]
    assert revs == sorted(revs)


def test_quota_alarm_writes_507_reads_deletes_go_on_compact_and_defrag_clear(make_citrus):
    c = make_citrus(extra=["--quota-bytes", str(1 << 20)])
    u = c.url
    ready = requests.get(u + "/health/ready").json()
    assert ready["alarms"] == [] and ready["quota"]["quota_bytes"] == 1 << 20
    stored, refused = [], None
    for i in range(40):
        r = requests.put(f"{u}/v1/kv/fill/k{i:03d}", data=b"q" * 100000)
        if r.status_code != 200:
            refused = r
            break
        stored.append(f"fill/k{i:03d}")
    assert refused is not None, "a 1 MiB quota took 4 MB"
    err(refused, 507, "no_space")
    # the alarm holds for every write that grows the store
    err(requests.put(u + "/v1/kv/tiny", data=b"1"), 507, "no_space")
    err(requests.post(u + "/v1/txn", json={"success": [{"op": "put", "key": "a", "value": "b"}]}),
        507, "no_space")
    # reads, read-only txns, deletes go on
    assert requests.get(f"{u}/v1/kv/{stored[0]}").status_code == 200
    assert requests.post(u + "/v1/txn", json={"success": [{"op": "get", "key": "fill/",
                                                           "prefix": True, "limit": 1}]}).ok
    # ready stays 200 (reads and routing work) and names the alarm
    r = requests.get(u + "/health/ready")
    assert r.status_code == 200 and r.json()["alarms"] == ["NOSPACE"], r.text
    assert r.json()["quota"]["db_size_in_use"] > 0
    d = requests.delete(u + "/v1/kv/fill?prefix=true")
    assert d.status_code == 200 and d.json()["deleted"] == len(stored)
    # deleting alone does not clear it (the history still holds the values)
    err(requests.put(u + "/v1/kv/tiny", data=b"1"), 507, "no_space")
    # compact needs a JSON body; then the history's pages are free again
    out = run_cli("kv", "compact", "--endpoint", u)
    assert out.returncode == 0, out.stderr
    assert "alarms=none" in out.stdout, out.stdout
    assert requests.get(u + "/health/ready").json()["alarms"] == []
    assert requests.put(u + "/v1/kv/tiny", data=b"1").status_code == 200
    before = requests.get(u + "/health/ready").json()["quota"]["db_size"]
    out = run_cli("kv", "defrag", "-o", "json", "--endpoint", u)
    assert out.returncode == 0, out.stderr
    j = json.loads(out.stdout)
    assert j["alarms"] == [] and j["db_size"] < before


def test_defrag_clears_the_alarm_and_compact_checks_its_revision(make_citrus):
    c = make_citrus(extra=["--quota-bytes", str(1 << 20)])
    u = c.url
    for i in range(40):
        if requests.put(f"{u}/v1/kv/fill/k{i:03d}", data=b"q" * 100000).status_code == 507:
            break
    assert requests.get(u + "/health/ready").json()["alarms"] == ["NOSPACE"]
    requests.delete(u + "/v1/kv/fill?prefix=true")
    rev = requests.get(u + "/v1/kv/x").headers["X-Citrus-Revision"]
    err(requests.post(u + "/v1/maintenance/compact", json={"revision": int(rev) + 100}),
        400, "invalid_argument")
    err(requests.post(u + "/v1/maintenance/compact", json={"revision": "x"}), 400, "bad_json")
    r = requests.post(u + "/v1/maintenance/compact", json={"revision": int(rev)})
    assert r.status_code == 200 and r.json()["compact_revision"] == int(rev)
    err(requests.post(u + "/v1/maintenance/compact", json={"revision": 1}), 410, "compacted")
    r = requests.post(u + "/v1/maintenance/defrag", json={})
    assert r.status_code == 200 and r.json()["alarms"] == [], r.text
    assert requests.put(u + "/v1/kv/tiny", data=b"1").status_code == 200
    # a watch from before the compaction is told so
    err(requests.get(u + "/v1/watch/fill", params={"from_revision": 1, "timeout": "1s"}),
        410, "compacted")
