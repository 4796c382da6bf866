"""Catalog integrity (issue 13, item 10): the catalog's own keys (citrus/)
are not written through the raw KV API, a corrupt record is reported on its
own instead of failing every listing, and a deleted shard leaves no metric
series behind.

Each test plays the attack from the issue ("PUT /v1/kv/citrus/shards/x
with junk made /v1/shards answer corrupt for every shard") and would pass
it without the defence.
"""
import os
import sqlite3
import subprocess
import time

import pytest
import requests

from conftest import CITRUS_BIN
from test_auth import ADMIN, OPER, READER, T_IN, audit_rows, call, make_key


@pytest.fixture
def guarded(make_citrus):
    """citrus dev --auth api_key with its SQLite shards, a key per role, and
    one with a readwrite grant on citrus/shards/."""
    c = make_citrus(shards=True, extra=["--auth", "api_key"])
    admin = open(os.path.join(c.data_dir, "admin.key")).read().strip()
    keys = {ADMIN: admin}
    keys[READER] = make_key(c.url, admin, "reader", ["reader"])["key"]
    keys[T_IN] = make_key(c.url, admin, "acme-svc", ["tenant"], ["acme:*"])["key"]
    keys[OPER] = make_key(c.url, admin, "ops", ["sm-operator"])["key"]
    keys["grant"] = make_key(c.url, admin, "granted", ["reader"],
                             grants=[{"prefix": "citrus/", "access": "readwrite"}])["key"]
    c.keys = keys
    return c


def reserved(r):
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "reserved", r.text
    return r


def catalog(base, admin):
    """Every key under citrus/ with its mod_revision (but the API keys'
    records, whose last use the keyring writes now and then)."""
    r = call(base, "GET", "/v1/kv/citrus/?prefix=true", None, admin)
    assert r.status_code == 200, r.text
    return {i["key"]: i["mod_revision"] for i in r.json()["items"]
            if not i["key"].startswith("citrus/auth/keys/")}


def raw_writes(sid):
    """Every raw KV write path, each touching citrus/ (path, method, body)."""
    return [
        ("PUT", "/v1/kv/citrus/shards/x", b"junk"),
        ("PUT", f"/v1/kv/citrus/shards/{sid}", b"{}"),
        ("PUT", "/v1/kv/citrus/tenants/acme:s1?lease=1", b"{}"),
        ("DELETE", f"/v1/kv/citrus/shards/{sid}", None),
        ("DELETE", "/v1/kv/citrus/ring/?prefix=true", None),
        ("DELETE", "/v1/kv/cit?prefix=true", None),  # a range that covers citrus/
        ("DELETE", "/v1/kv/?prefix=true", None),  # every key
        ("POST", "/v1/txn", {"success": [{"op": "put", "key": "app/ok", "value": "1"},
                                         {"op": "put", "key": "citrus/auth/bootstrap",
                                          "value": "x"}]}),
        ("POST", "/v1/txn", {"compare": [{"key": "app/none", "target": "exists",
                                          "exists": True}],
                             "failure": [{"op": "put", "key": "app/ok", "value": "1"},
                                         {"op": "delete", "key": "c", "prefix": True}]}),
    ]


def test_raw_writes_under_citrus_are_reserved_for_every_role(guarded):
    base, k = guarded.url, guarded.keys
    sid = call(base, "GET", "/v1/shards", None, k[ADMIN]).json()["shards"][0]["id"]
    before = catalog(base, k[ADMIN])
    for who in (READER, T_IN, OPER, "grant", ADMIN):
        for method, path, body in raw_writes(sid):
            r = call(base, method, path, body, k[who])
            if who == T_IN and path == "/v1/txn":  # a tenant without grants has no txn route
                assert r.status_code == 403, r.text
                continue
            reserved(r)
            # ?unsafe=true is sm-admin's only
            if who != ADMIN:
                sep = "&" if "?" in path else "?"
                reserved(call(base, method, path + sep + "unsafe=true", body, k[who]))
    # nothing of any of it applied, the txns' other ops neither
    assert catalog(base, k[ADMIN]) == before
    assert call(base, "GET", "/v1/kv/app/ok", None, k[ADMIN]).status_code == 404
    # a junk ?unsafe is bad input, not a way past
    r = call(base, "PUT", "/v1/kv/citrus/shards/x?unsafe=maybe", b"junk", k[ADMIN])
    assert r.status_code == 400, r.text
    # keys outside citrus/ are written as before ("citrusy/" is not citrus/)
    assert call(base, "PUT", "/v1/kv/citrusy/a", b"1", k[OPER]).status_code == 200
    assert call(base, "DELETE", "/v1/kv/app/?prefix=true", None, k[OPER]).status_code == 200
    # each refusal is audited as such
    rows = audit_rows(base, k[ADMIN], "&action=kv.reserved")
    assert rows and all(r["status"] == 403 for r in rows)
    assert {r["principal"].split("/")[-1] for r in rows} >= {"reader", "ops", "granted"}


def test_sm_admin_writes_with_unsafe_audited(guarded):
    base, k = guarded.url, guarded.keys
    r = call(base, "PUT", "/v1/kv/citrus/scratch/a?unsafe=true", b"1", k[ADMIN])
    assert r.status_code == 200, r.text
    txn = {"success": [{"op": "put", "key": "citrus/scratch/b", "value": "2"},
                       {"op": "delete", "key": "citrus/scratch/a"}]}
    r = call(base, "POST", "/v1/txn?unsafe=true", txn, k[ADMIN])
    assert r.status_code == 200 and r.json()["succeeded"], r.text
    r = call(base, "DELETE", "/v1/kv/citrus/scratch/?prefix=true&unsafe=true", None, k[ADMIN])
    assert r.status_code == 200 and r.json()["deleted"] == 1, r.text
    actions = {(row["action"], row["target"], row["status"])
               for row in audit_rows(base, k[ADMIN])}
    assert ("kv.put.unsafe", "citrus/scratch/a", 200) in actions
    assert ("kv.txn.unsafe", "", 200) in actions
    assert ("kv.delete.unsafe", "citrus/scratch/", 200) in actions


def test_the_control_plane_still_writes_its_keys(guarded):
    """Registry, tenant directory and keyring write citrus/ through the
    store, not the KV API: unaffected."""
    base, k = guarded.url, guarded.keys
    body = {"businessId": "acme", "locationId": "s1", "businessType": "retail"}
    assert call(base, "POST", "/api/register", body, k[T_IN]).status_code in (200, 201)
    assert call(base, "GET", "/v1/kv/citrus/tenants/acme:s1", None,
                k[ADMIN]).status_code == 200
    key = make_key(base, k[ADMIN], "later", ["reader"])
    assert call(base, "GET", f"/v1/kv/citrus/auth/keys/{key['id']}", None,
                k[ADMIN]).status_code == 200
    sid = call(base, "GET", "/v1/shards", None, k[ADMIN]).json()["shards"][0]["id"]
    r = call(base, "POST", f"/v1/shards/{sid}/read-only", None, k[OPER])
    assert r.status_code == 200, r.text


def test_without_auth_and_from_the_cli(citrus):
    """Mode none: the anonymous caller is sm-admin, so unsafe=true works,
    and nothing else does; `citrus kv --unsafe` sends it."""
    reserved(requests.put(citrus.url + "/v1/kv/citrus/shards/x", data=b"junk"))
    reserved(requests.delete(citrus.url + "/v1/kv/citrus/nodes/?prefix=true"))

    def kv(*args):
        return subprocess.run([CITRUS_BIN, "kv", "--endpoint", citrus.url] + list(args),
                              capture_output=True, text=True, timeout=30)

    r = kv("put", "citrus/scratch/a", "1")
    assert r.returncode == 5 and "catalog's own keys" in r.stderr, r  # 5: refused
    r = kv("put", "citrus/scratch/a", "1", "--unsafe")
    assert r.returncode == 0, r
    r = kv("del", "citrus/scratch/", "--prefix")
    assert r.returncode == 5 and "catalog's own keys" in r.stderr, r  # 5: refused
    r = kv("del", "citrus/scratch/", "--prefix", "--unsafe")
    assert r.returncode == 0 and r.stdout.startswith("deleted 1"), r


def wait_for(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.05)


def test_a_junk_shard_record_is_reported_on_its_own(citrus_shards):
    """The attack: junk under citrus/shards/x made /v1/shards and
    /api/shards/health answer `corrupt` for every shard while
    /health/ready stayed 200 without a word."""
    u = citrus_shards.url
    good = sorted(s["id"] for s in requests.get(u + "/v1/shards").json()["shards"])
    assert len(good) == 4
    r = requests.put(u + "/v1/kv/citrus/shards/x?unsafe=true", data=b"{not json")
    assert r.status_code == 200, r.text
    # every listing still answers, with the others served and x named
    r = requests.get(u + "/v1/shards")
    assert r.status_code == 200, r.text
    items = r.json()["shards"]
    # a record that does not decode has no state, only its key and why
    assert sorted(s["id"] for s in items if "state" in s) == good
    bad = [s for s in items if "state" not in s]
    assert [b["id"] for b in bad] == ["x"] and bad[0]["key"] == "citrus/shards/x"
    assert bad[0]["error"].startswith("corrupt record: "), bad
    r = requests.get(u + "/v1/shards?state=active")
    assert r.status_code == 200 and len(r.json()["shards"]) == 4, r.text
    r = requests.get(u + "/api/shards/health")
    assert r.status_code == 200, r.text
    h = r.json()
    assert h["summary"]["corrupt"] == 1 and h["summary"]["reachable"] == 4, h
    assert [s["shardId"] for s in h["shards"] if "state" not in s] == ["x"]
    assert [s["shardId"] for s in h["shards"] if s.get("reachable")] == good
    r = requests.get(u + "/v1/shards/x")
    assert r.status_code == 422 and r.json()["error"]["code"] == "corrupt", r.text
    for sid in good:
        assert requests.get(f"{u}/v1/shards/{sid}").status_code == 200
    # routing and queries are untouched: x owns no tokens
    r = requests.get(u + "/v1/route/acme:s1")
    assert r.status_code == 200 and r.json()["shard_id"] in good, r.text
    q = requests.post(citrus_shards.router_url + "/v1/query",
                      json={"key": "acme:s1", "sql": "SELECT 1 AS one"}, timeout=30)
    assert q.status_code == 200, q.text
    q = requests.post(citrus_shards.router_url + "/v1/query",
                      json={"scatter": True, "sql": "SELECT 1 AS one"}, timeout=30)
    assert q.status_code == 200 and sorted(q.json()["shards"]) == good, q.text
    # ready reports it, and stays 200 (docs/security.md: every node reads the same catalog)
    r = requests.get(u + "/health/ready")
    assert r.status_code == 200, r.text
    cc = r.json()["catalog_corrupt"]
    assert cc["count"] == 1 and cc["keys"][0]["key"] == "citrus/shards/x", cc
    assert "citrus_catalog_corrupt_records{} 1" in requests.get(u + "/metrics").text
    # deleting the junk clears it, without any listing in between
    r = requests.delete(u + "/v1/kv/citrus/shards/x?unsafe=true")
    assert r.status_code == 200 and r.json()["deleted"] == 1, r.text
    assert wait_for(lambda: "catalog_corrupt" not in requests.get(u + "/health/ready").json())
    assert all("state" in s for s in requests.get(u + "/v1/shards").json()["shards"])


def test_a_junk_tenant_pin_is_reported_on_its_own(citrus_shards):
    u = citrus_shards.url
    for key in ("acme:a", "acme:b"):
        r = requests.post(u + "/api/register", json={"businessId": "acme", "locationId": key[5:],
                                                     "businessType": "retail"})
        assert r.status_code in (200, 201), r.text
    r = requests.put(u + "/v1/kv/citrus/tenants/acme:a?unsafe=true", data=b"[1,2]")
    assert r.status_code == 200, r.text
    # the listing serves the other pin; the junk one is named in ready
    r = requests.get(u + "/v1/tenants")
    assert r.status_code == 200, r.text
    assert "acme:b" in r.text and "acme:a" not in r.text, r.text
    r = requests.get(u + "/health/ready")
    assert r.status_code == 200, r.text
    assert [k["key"] for k in r.json()["catalog_corrupt"]["keys"]] == ["citrus/tenants/acme:a"]
    assert requests.get(u + "/v1/tenants/acme:b").status_code == 200
    # repaired through its route (re-pin): cleared
    r = requests.put(u + "/v1/kv/citrus/tenants/acme:a?unsafe=true",
                     data=requests.get(u + "/v1/kv/citrus/tenants/acme:b").content)
    assert r.status_code == 200, r.text
    assert wait_for(lambda: "catalog_corrupt" not in requests.get(u + "/health/ready").json())


def test_a_deleted_shard_leaves_no_metric_series(citrus_shards, tmp_path):
    u = citrus_shards.url
    db = tmp_path / "gone.db"
    sqlite3.connect(db).close()
    r = requests.post(u + "/v1/shards", json={"id": "gone", "dsn": f"sqlite://{db}"})
    assert r.status_code == 201, r.text
    r = requests.put(u + "/v1/tenants/acme:gone", json={"shard_id": "gone"})
    assert r.status_code in (200, 201), r.text
    q = requests.post(citrus_shards.router_url + "/v1/query",
                      json={"key": "acme:gone", "sql": "SELECT 1 AS one"}, timeout=30)
    assert q.status_code == 200 and q.json()["shard_id"] == "gone", q.text
    q = requests.post(citrus_shards.router_url + "/v1/query",
                      json={"scatter": True, "sql": "SELECT 1 AS one"}, timeout=30)
    assert q.status_code == 200, q.text
    assert 'shard="gone"' in requests.get(u + "/metrics").text
    assert requests.delete(u + "/v1/tenants/acme:gone").status_code == 200
    for action in ("drain", "retire"):
        r = requests.post(f"{u}/v1/shards/gone/{action}")
        assert r.status_code == 200, r.text
    r = requests.delete(u + "/v1/shards/gone")
    assert r.status_code == 200, r.text
    text = requests.get(u + "/metrics").text
    assert 'shard="gone"' not in text, [ln for ln in text.splitlines() if "gone" in ln]
    # the others keep theirs
    assert 'shard="shard-' in text
