"""Bounded answers and the store quota on etcd (issue 13, item 8): etcd's
NOSPACE alarm is 507 no_space and shows on /health/ready, `citrus kv
compact` + `citrus kv defrag` defragment every member and disarm it, and a
txn that writes and whose gets would pass server.max_response_bytes is 413
with nothing applied (docs/security.md, "Bounded answers and the store
quota")."""
import contextlib
import json

import requests

from cluster import EtcdMember, free_ports
from conftest import liveness, run_cli, wait_until
from test_bounds import err, fill

QUOTA = 16 << 20


class QuotaMember(EtcdMember):
    """A one-member etcd with a small --quota-backend-bytes."""

    def args(self):
        return super().args() + ["--quota-backend-bytes", str(QUOTA)]


@contextlib.contextmanager
def node_on_etcd(make_citrus, tmp_path, extra=(), members=1):
    """One citrus node on an etcd of `members` members with the quota."""
    ports = free_ports(2 * members)
    initial = ",".join(f"e{i + 1}=http://127.0.0.1:{ports[2 * i + 1]}" for i in range(members))
    etcd = []
    try:
        for i in range(members):
            logs = tmp_path / f"etcd-e{i + 1}-logs"
            logs.mkdir()
            etcd.append(QuotaMember(f"e{i + 1}", ports[2 * i], ports[2 * i + 1],
                                    tmp_path / f"etcd-e{i + 1}", logs, initial,
                                    f"quota-{ports[0]}").start())
        for m in etcd:
            wait_until(lambda: m.status() is not None, 15, what="etcd up")
        c = make_citrus(extra=list(extra) + ["--catalog-backend", "etcd", "--etcd-endpoints",
                                             ",".join(m.url for m in etcd)])
        try:
            yield c, etcd[0] if members == 1 else etcd
        finally:
            c.stop()
    finally:
        for m in etcd:
            m.stop()


def db_size(member):
    r = requests.post(member.url + "/v3/maintenance/status", data="{}", timeout=5)
    return int(r.json().get("dbSize", 0))


def etcd_alarms(member):
    r = requests.post(member.url + "/v3/maintenance/alarm", json={"action": "GET"}, timeout=5)
    return [a.get("alarm") for a in r.json().get("alarms", [])]


def test_etcd_nospace_is_507_ready_shows_it_compact_and_defrag_clear(make_citrus, tmp_path):
    with node_on_etcd(make_citrus, tmp_path) as (c, member):
        u = c.url
        ready = requests.get(u + "/health/ready").json()
        assert ready["alarms"] == [] and ready["quota"]["db_size"] > 0, ready
        stored, refused = [], None
        for i in range(80):
            r = requests.put(f"{u}/v1/kv/fill/k{i:03d}", data=b"q" * (512 << 10))
            if r.status_code != 200:
                refused = r
                break
            stored.append(f"fill/k{i:03d}")
        assert refused is not None, "a 16 MiB quota took 40 MiB"
        err(refused, 507, "no_space")
        assert etcd_alarms(member) == ["NOSPACE"]
        err(requests.put(u + "/v1/kv/tiny", data=b"1"), 507, "no_space")
        # reads go on; ready stays 200 and names etcd's alarm (from the
        # node's periodic check: the probe does not wait on etcd)
        assert requests.get(f"{u}/v1/kv/{stored[0]}").status_code == 200

        def alarmed():
            r = requests.get(u + "/health/ready")
            return r if r.json().get("alarms") == ["NOSPACE"] else None
        r = wait_until(alarmed, liveness(5), what="NOSPACE on /health/ready")
        # (db_size is the view's last reading, which may predate the fill)
        assert r.status_code == 200 and r.json()["quota"]["db_size"] > 0, r.text
        d = requests.delete(u + "/v1/kv/fill?prefix=true")
        # etcd applies the write that crosses its quota and then answers
        # "database space exceeded" (its apply-time check): that one may be there
        assert d.status_code == 200 and d.json()["deleted"] in (len(stored), len(stored) + 1)
        out = run_cli("kv", "compact", "--endpoint", u)
        assert out.returncode == 0, out.stderr
        # etcd's file shrinks only with a defragment: still refused
        err(requests.put(u + "/v1/kv/tiny", data=b"1"), 507, "no_space")
        out = run_cli("kv", "defrag", "-o", "json", "--endpoint", u)
        assert out.returncode == 0, out.stdout + out.stderr
        j = json.loads(out.stdout)
        assert j["alarms"] == [] and j["db_size"] < QUOTA // 2, j
        assert etcd_alarms(member) == []
        # the probe follows at the node's next periodic check
        wait_until(lambda: requests.get(u + "/health/ready").json()["alarms"] == [], liveness(5),
                   what="NOSPACE gone from /health/ready")
        assert requests.put(u + "/v1/kv/tiny", data=b"1").status_code == 200


def test_etcd_write_txn_past_the_bound_is_413_and_applies_nothing(make_citrus, tmp_path):
    with node_on_etcd(make_citrus, tmp_path, ["--max-response-bytes", "65536"]) as (c, _):
        fill(c.url, "big", 10, 20000)
        rev = requests.get(c.url + "/v1/kv/big?prefix=true&count_only=true").json()["revision"]
        gets = [{"op": "get", "key": "big/", "prefix": True} for _ in range(8)]
        body = {"success": [{"op": "put", "key": "t/marker", "value": "x"},
                            {"op": "delete", "key": "big/k000"}] + gets}
        e = err(requests.post(c.url + "/v1/txn", json=body), 413, "response_too_large")
        assert "nothing was applied" in e["message"]
        assert requests.get(c.url + "/v1/kv/t/marker").status_code == 404
        assert requests.get(c.url + "/v1/kv/big/k000").status_code == 200
        after = requests.get(c.url + "/v1/kv/big?prefix=true&count_only=true").json()
        assert after["revision"] == rev and after["count"] == 10
        # the gets of the branch that runs count: a failing compare's branch
        # with the big gets is refused, the other branch's small ones are not
        cmp = [{"key": "big/k001", "target": "exists", "exists": False}]
        big_fail = {"compare": cmp, "success": [{"op": "put", "key": "t/marker", "value": "x"}],
                    "failure": [{"op": "put", "key": "t/marker", "value": "y"}] + gets}
        err(requests.post(c.url + "/v1/txn", json=big_fail), 413, "response_too_large")
        assert requests.get(c.url + "/v1/kv/t/marker").status_code == 404
        big_succ = {"compare": cmp, "success": [{"op": "put", "key": "t/marker", "value": "x"}]
                    + gets, "failure": [{"op": "put", "key": "t/marker", "value": "y"},
                                        {"op": "get", "key": "big/k002"}]}
        r = requests.post(c.url + "/v1/txn", json=big_succ)
        assert r.status_code == 200 and r.json()["succeeded"] is False, r.text
        assert requests.get(c.url + "/v1/kv/t/marker").content == b"y"
        # gets that fit are answered, writes applied
        ok = {"success": [{"op": "put", "key": "t/marker", "value": "x"},
                          {"op": "get", "key": "big/", "prefix": True, "limit": 2}]}
        r = requests.post(c.url + "/v1/txn", json=ok)
        assert r.status_code == 200, r.text
        assert len(r.json()["results"][1]["items"]) == 2
        assert requests.get(c.url + "/v1/kv/t/marker").content == b"x"


def test_etcd_defrag_defragments_every_member_and_disarms(make_citrus, tmp_path):
    with node_on_etcd(make_citrus, tmp_path, members=3) as (c, etcd):
        u = c.url
        for i in range(80):
            r = requests.put(f"{u}/v1/kv/fill/k{i:03d}", data=b"q" * (512 << 10))
            if r.status_code != 200:
                break
        err(r, 507, "no_space")
        assert "NOSPACE" in etcd_alarms(etcd[0])
        assert all(db_size(m) > QUOTA // 2 for m in etcd)
        requests.delete(u + "/v1/kv/fill?prefix=true").raise_for_status()
        assert requests.post(u + "/v1/maintenance/compact", json={}).status_code == 200
        r = requests.post(u + "/v1/maintenance/defrag", json={})
        assert r.status_code == 200 and r.json()["alarms"] == [], r.text
        # every member, not only the one the node talks to, gave its space back
        sizes = [db_size(m) for m in etcd]
        assert all(s < QUOTA // 2 for s in sizes), sizes
        assert etcd_alarms(etcd[0]) == []
        assert requests.put(u + "/v1/kv/tiny", data=b"1").status_code == 200
