"""Catalog integrity (issue 13, item 10): the catalog's own keys (citrus/)
are not written through the raw KV API, a corrupt record is reported on its
own instead of failing every listing, and a deleted shard leaves no metric
series behind.

Each test plays the attack from the issue ("PUT /v1/kv/citrus/shards/x
with junk made /v1/shards answer corrupt for every shard") and would pass
it without the defence.
"""
import os
import subprocess

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
