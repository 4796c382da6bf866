"""The shard manager through its HTTP API on `citrus dev` (SQLite shards),
every test on both catalog stores: the embedded one and a real etcd. The dev
shards and the ring, registering existing databases, the lifecycle and what
it does to the ring, the tenant directory, routing, the Citrus API
(docs/requirements.md), provisioning and bad input."""
import sqlite3
from pathlib import Path

import pytest
import requests

from cluster import dev_on_store
from conftest import shard_settled


@pytest.fixture(params=["embedded", "etcd"])
def citrus_shards(request, make_citrus, tmp_path):
    """`citrus dev` with its four shards, on the embedded store or on a
    one-member etcd of its own (stopped after the node)."""
    with dev_on_store(request.param, make_citrus, tmp_path) as c:
        yield c


J = {"Content-Type": "application/json"}


def post(c, path, body=None, **params):
    return requests.post(c.url + path, json=body, params=params, timeout=30)


def sqlite_db(tmp_path, name):
    path = tmp_path / f"{name}.db"
    sqlite3.connect(path).close()
    return f"sqlite://{path}"


def err(r):
    return r.json()["error"]



def test_dev_starts_with_four_active_shards_and_the_example_template(citrus_shards):
    citrus = citrus_shards
    j = requests.get(citrus.url + "/v1/shards").json()
    assert j["count"] == 4
    assert sorted(s["id"] for s in j["shards"]) == [f"shard-{i}" for i in range(4)]
    for s in j["shards"]:
        assert s["state"] == "active" and s["tokens"] == 256 and s["dsn"].startswith("sqlite:///")
    h = requests.get(citrus.url + "/api/shards/health").json()
    assert h["status"] == "healthy" and h["summary"]["reachable"] == 4, h
    one = requests.get(citrus.url + "/v1/shards/shard-2").json()
    assert [(e["from"], e["to"]) for e in one["history"]] == [("pending", "initializing"),
                                                               ("initializing", "active")]
    # the example template is what registration sets up on the shard
    r = post(citrus, "/api/register", {"businessId": "b1", "locationId": "l1",
                                       "businessType": "retail"})
    assert r.status_code == 201, r.text
    path = r.json()["connectionString"][len("sqlite://"):]
    with sqlite3.connect(path) as db:
        names = [n for (n,) in db.execute("SELECT name FROM citrus_migrations ORDER BY name")]
        tables = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert names == ["001_locations.sql", "002_orders.sql"]
    assert {"locations", "orders"} <= tables


def test_citrus_api_register_idempotent_batch_lookup(citrus_shards):
    citrus = citrus_shards
    body = {"businessId": "biz-9", "locationId": "loc-1", "businessType": "retail"}
    first = post(citrus, "/api/register", body)
    assert first.status_code == 201, first.text
    a = first.json()
    assert a["shardKey"] == "biz-9:loc-1" and a["status"] == "active"
    assert a["shardId"].startswith("shard-") and a["connectionString"].startswith("sqlite://")
    again = post(citrus, "/api/register", body)
    assert again.status_code == 200 and again.json() == a
    # a business with two locations in one call
    b = post(citrus, "/api/register/batch", {"businessId": "biz-10", "locations": [
        {"locationId": "north", "businessType": "retail"},
        {"locationId": "south", "businessType": "retail"}]})
    assert b.status_code == 201, b.text
    res = b.json()["results"]
    assert [x["shardKey"] for x in res] == ["biz-10:north", "biz-10:south"]
    assert all(x["created"] for x in res)
    # repeated: same answers, nothing new
    b2 = post(citrus, "/api/register/batch", {"businessId": "biz-10", "locations": [
        {"locationId": "north", "businessType": "retail"},
        {"locationId": "south", "businessType": "retail"}]})
    assert b2.status_code == 200
    assert [(x["shardId"], x["created"]) for x in b2.json()["results"]] == \
        [(x["shardId"], False) for x in res]
    for x in res:
        g = requests.get(f"{citrus.url}/api/shard/{x['shardKey']}")
        assert g.status_code == 200
        assert g.json()["shardId"] == x["shardId"]
        route = requests.get(f"{citrus.url}/v1/route/{x['shardKey']}").json()
        assert route["source"] == "directory" and route["shard_id"] == x["shardId"]
    assert requests.get(citrus.url + "/api/shard/nobody:nowhere").status_code == 404


def test_citrus_api_bad_input(citrus_shards):
    citrus = citrus_shards
    cases = [
        ({}, 400, "businessId"),
        ({"businessId": 5, "locationId": "l", "businessType": "retail"}, 400, "businessId"),
        ({"businessId": "b", "businessType": "retail"}, 400, "locationId"),
        ({"businessId": "b", "locationId": "l"}, 400, "businessType"),
        ({"businessId": "b/x", "locationId": "l", "businessType": "retail"}, 400, "businessId"),
        ({"businessId": "b:x", "locationId": "l", "businessType": "retail"}, 400, "businessId"),
        ({"businessId": "b", "locationId": "l", "businessType": "../etc"}, 400, "businessType"),
        ({"businessId": "b", "locationId": "l", "businessType": "retail", "x": 1}, 400, "x"),
    ]
    for body, status, field in cases:
        r = post(citrus, "/api/register", body)
        assert r.status_code == status, (body, r.status_code, r.text)
        assert field in err(r)["message"], (body, r.text)
    r = requests.post(citrus.url + "/api/register", data="{nope", headers=J)
    assert r.status_code == 400 and err(r)["code"] == "bad_json"
    batch_cases = [
        ({"businessId": "b"}, "locations"),
        ({"businessId": "b", "locations": []}, "locations"),
        ({"businessId": "b", "locations": [{"locationId": "x"}]}, "locations[0].businessType"),
        ({"businessId": "b", "locations": [{"locationId": "x", "businessType": "retail"},
                                           {"locationId": "x", "businessType": "retail"}]},
         "locations[1].locationId"),
        ({"businessId": "b", "locations": [{"locationId": str(i), "businessType": "retail"}
                                           for i in range(101)]}, "locations"),
    ]
    for body, field in batch_cases:
        r = post(citrus, "/api/register/batch", body)
        assert r.status_code == 400 and field in err(r)["message"], (body, r.text)
    # nothing of the bad batches was registered
    assert requests.get(citrus.url + "/api/shard/b:x").status_code == 404
    assert requests.get(citrus.url + "/v1/tenants").json()["tenants"] == []


def test_register_existing_database_lifecycle_and_ring(citrus_shards, tmp_path):
    citrus = citrus_shards
    ring0 = requests.get(citrus.url + "/v1/route/any").json()["ring_version"]
    dsn = sqlite_db(tmp_path, "extra")
    r = post(citrus, "/v1/shards", {"id": "extra", "dsn": dsn, "zone": "eu-1",
                                    "tags": {"tier": "gold"}})
    assert r.status_code == 201, r.text
    s = r.json()
    assert s["state"] == "active" and s["tokens"] == 256 and s["zone"] == "eu-1"
    assert s["ring"]["changed"] is True and s["ring"]["version"] > ring0
    assert s["ring"]["tokens_after"] == 256 and s["ring"]["ranges_total"] > 0
    assert all(x["to"] == "extra" and x["from"] != "extra" for x in s["ring"]["ranges"])
    # about 1/5 of keys now go to it
    keys = [f"k{i}" for i in range(5000)]
    routes = post(citrus, "/v1/route", {"keys": keys}).json()["routes"]
    share = sum(x["shard_id"] == "extra" for x in routes) / len(keys)
    assert 0.12 < share < 0.28, share
    # weight 2 doubles its tokens
    p = requests.patch(citrus.url + "/v1/shards/extra", json={"weight": 2})
    assert p.status_code == 200, p.text
    assert p.json()["tokens"] == 512 and p.json()["ring"]["tokens_before"] == 256
    # read-only keeps its tokens; a forbidden transition names the allowed ones
    ro = post(citrus, "/v1/shards/extra/read-only")
    assert ro.status_code == 200 and ro.json()["state"] == "read_only"
    assert ro.json()["tokens"] == 512
    bad = post(citrus, "/v1/shards/extra/retire")
    assert bad.status_code == 409 and err(bad)["code"] == "invalid_transition"
    assert err(bad)["message"].endswith("is read_only and cannot go to retired; "
                                        "allowed: active, failed"), err(bad)
    assert post(citrus, "/v1/shards/extra/activate").json()["state"] == "active"
    # delete refuses an active shard, naming why
    d = requests.delete(citrus.url + "/v1/shards/extra")
    assert d.status_code == 409 and err(d)["code"] == "in_use"
    # drain takes the tokens away; keys go back to the others
    dr = post(citrus, "/v1/shards/extra/drain")
    assert dr.status_code == 200 and dr.json()["state"] == "draining"
    assert dr.json()["tokens"] == 0 and dr.json()["ring"]["tokens_after"] == 0
    assert all(x["from"] == "extra" for x in dr.json()["ring"]["ranges"])
    routes = post(citrus, "/v1/route", {"keys": keys}).json()["routes"]
    assert not any(x["shard_id"] == "extra" for x in routes)
    rt = post(citrus, "/v1/shards/extra/retire")
    assert rt.status_code == 200 and rt.json()["state"] == "retired"
    hist = [(e["from"], e["to"]) for e in rt.json()["history"]]
    assert hist[-3:] == [("active", "draining"), ("draining", "drained"), ("drained", "retired")]
    assert requests.delete(citrus.url + "/v1/shards/extra").status_code == 200
    assert requests.get(citrus.url + "/v1/shards/extra").status_code == 404


def test_registered_tenants_never_move_with_the_ring(citrus_shards, tmp_path):
    citrus = citrus_shards
    pins = {}
    for i in range(40):
        r = post(citrus, "/api/register", {"businessId": "acme", "locationId": f"l{i}",
                                           "businessType": "retail"})
        assert r.status_code == 201
        pins[r.json()["shardKey"]] = r.json()["shardId"]
    assert post(citrus, "/v1/shards", {"id": "newcomer",
                                       "dsn": sqlite_db(tmp_path, "nc")}).status_code == 201
    routes = post(citrus, "/v1/route", {"keys": list(pins)}).json()["routes"]
    assert {x["key"]: x["shard_id"] for x in routes} == pins
    assert all(x["source"] == "directory" for x in routes)
    # but unregistered keys in the same places do follow the ring
    ring_only = post(citrus, "/v1/route", {"keys": [f"free-{i}" for i in range(2000)]}).json()
    assert any(x["shard_id"] == "newcomer" for x in ring_only["routes"])


def test_retire_with_pinned_tenants_needs_force_then_repins(citrus_shards, tmp_path):
    citrus = citrus_shards
    assert post(citrus, "/v1/shards", {"id": "solo", "dsn": sqlite_db(tmp_path, "solo"),
                                       "weight": 50}).status_code == 201
    mine = []
    for i in range(60):  # weight 50 vs 4×1: nearly every new tenant lands on it
        r = post(citrus, "/api/register", {"businessId": "z", "locationId": f"{i}",
                                           "businessType": "retail"}).json()
        if r["shardId"] == "solo":
            mine.append(r["shardKey"])
    assert len(mine) > 30
    counts = {s["id"]: s["tenants"] for s in requests.get(citrus.url + "/v1/shards").json()["shards"]}
    assert counts["solo"] == len(mine) and sum(counts.values()) == 60, counts
    assert requests.get(citrus.url + "/v1/shards/solo").json()["tenants"] == len(mine)
    assert post(citrus, "/v1/shards/solo/drain").status_code == 200
    # draining: pinned tenants still route there
    assert requests.get(f"{citrus.url}/v1/route/{mine[0]}").json()["shard_id"] == "solo"
    r = post(citrus, "/v1/shards/solo/retire")
    assert r.status_code == 409 and err(r)["code"] == "force_required"
    assert err(r)["tenants_affected"] == len(mine)
    assert post(citrus, "/v1/shards/solo/retire", dry_run="true").status_code == 409
    r = post(citrus, "/v1/shards/solo/retire", force="true")
    assert r.status_code == 200, r.text
    assert r.json()["ring"]["tenants_affected"] == len(mine)
    routes = post(citrus, "/v1/route", {"keys": mine}).json()["routes"]
    assert all(x["shard_id"] != "solo" and x["source"] == "directory" for x in routes)
    assert requests.get(citrus.url + "/v1/tenants", params={"shard": "solo"}).json()[
        "tenants"] == []
    assert requests.get(citrus.url + "/v1/shards/solo").json()["tenants"] == 0


def test_tenant_directory_pins(citrus_shards):
    citrus = citrus_shards
    r = requests.put(citrus.url + "/v1/tenants/t-1", json={"shard_id": "shard-1"})
    assert r.status_code == 201 and r.json()["shard_id"] == "shard-1"
    assert requests.put(citrus.url + "/v1/tenants/t-1",
                        json={"shard_id": "shard-1"}).status_code == 200
    move = requests.put(citrus.url + "/v1/tenants/t-1", json={"shard_id": "shard-2"})
    assert move.status_code == 409 and err(move)["code"] == "force_required"
    move = requests.put(citrus.url + "/v1/tenants/t-1", json={"shard_id": "shard-2"},
                        params={"force": "true"})
    assert move.status_code == 200 and move.json()["shard_id"] == "shard-2"
    assert requests.get(citrus.url + "/v1/route/t-1").json()["shard_id"] == "shard-2"
    lst = requests.get(citrus.url + "/v1/tenants", params={"shard": "shard-2"}).json()
    assert [t["key"] for t in lst["tenants"]] == ["t-1"]
    assert requests.get(citrus.url + "/v1/tenants",
                        params={"shard": "shard-1"}).json()["tenants"] == []
    assert requests.get(citrus.url + "/v1/tenants/t-1").json()["shard_id"] == "shard-2"
    assert requests.delete(citrus.url + "/v1/tenants/t-1").status_code == 200
    assert requests.get(citrus.url + "/v1/tenants/t-1").status_code == 404
    assert requests.get(citrus.url + "/v1/route/t-1").json()["source"] == "ring"
    for body, code in (({"shard_id": "nope"}, 404), ({"shard": "shard-1"}, 400),
                       ({"shard_id": "BAD ID"}, 400)):
        r = requests.put(citrus.url + "/v1/tenants/t-2", json=body)
        assert r.status_code == code, (body, r.text)
    for method in ("get", "put", "delete"):
        r = requests.request(method, citrus.url + "/v1/tenants/a%20b", json={"shard_id": "shard-1"})
        assert r.status_code == 400 and "tenant key must be" in err(r)["message"], r.text


def test_shard_api_bad_input(citrus_shards, tmp_path):
    citrus = citrus_shards
    dsn = sqlite_db(tmp_path, "dup")
    cases = [
        ({}, 400, "dsn"),
        ({"dsn": "mysql://x"}, 400, "dsn"),
        ({"dsn": dsn, "weight": 0}, 400, "weight"),
        ({"dsn": dsn, "weight": "2"}, 400, "weight"),
        ({"dsn": dsn, "tags": []}, 400, "tags"),
        ({"dsn": dsn, "id": "Bad_Id!"}, 400, "id"),
        ({"dsn": dsn, "replicas": "x"}, 400, "replicas"),
        ({"dsn": dsn, "frobnicate": 1}, 400, "frobnicate"),
        ({"dsn": dsn, "provision": {}}, 400, ""),
    ]
    for body, code, field in cases:
        r = post(citrus, "/v1/shards", body)
        assert r.status_code == code, (body, r.status_code, r.text)
        assert field in err(r)["message"], (body, r.text)
    # unreachable: 422, unless verify=false
    gone = f"sqlite://{tmp_path}/missing.db"
    r = post(citrus, "/v1/shards", {"id": "ghost", "dsn": gone})
    assert r.status_code == 422 and err(r)["code"] == "unreachable", r.text
    assert post(citrus, "/v1/shards", {"id": "ghost", "dsn": gone},
                verify="false").status_code == 201
    # duplicate id
    r = post(citrus, "/v1/shards", {"id": "ghost", "dsn": dsn})
    assert r.status_code == 409 and err(r)["code"] == "already_exists"
    assert requests.get(citrus.url + "/v1/shards/nope").status_code == 404
    assert post(citrus, "/v1/shards/nope/drain").status_code == 404
    assert post(citrus, "/v1/shards/shard-0/explode").status_code == 404
    assert requests.patch(citrus.url + "/v1/shards/shard-0", json={}).status_code == 400
    assert requests.patch(citrus.url + "/v1/shards/shard-0",
                          json={"state": "retired"}).status_code == 400
    assert requests.get(citrus.url + "/v1/shards", params={"state": "bogus"}).status_code == 400
    r = post(citrus, "/v1/route", {"keys": ["k"] * 10001})
    assert r.status_code == 400 and err(r)["code"] == "too_many"
    assert post(citrus, "/v1/route", {"keys": []}).status_code == 400
    assert post(citrus, "/v1/route", {"keys": [1]}).status_code == 400
    # nothing half-applied: the shard list is the dev four plus ghost
    ids = sorted(s["id"] for s in requests.get(citrus.url + "/v1/shards").json()["shards"])
    assert ids == ["ghost", "shard-0", "shard-1", "shard-2", "shard-3"]


def test_provision_through_the_sqlite_provisioner(citrus_shards):
    citrus = citrus_shards
    r = post(citrus, "/v1/shards", {"id": "fresh", "provision": {"template": "retail"}})
    assert r.status_code == 202, r.text
    assert r.json()["state"] == "provisioning"
    s = shard_settled(citrus.url, "fresh", 15)
    assert s["state"] == "active", s
    assert [e["to"] for e in s["history"]] == ["provisioning", "initializing", "active"]
    assert s["tokens"] == 256 and s["dsn"].endswith("/fresh.db")
    with sqlite3.connect(s["dsn"][len("sqlite://"):]) as db:
        assert db.execute("SELECT count(*) FROM citrus_migrations").fetchone()[0] == 2
    # an unknown template fails the shard, with the reason
    r = post(citrus, "/v1/shards", {"id": "broken", "provision": {"template": "nosuch"}})
    assert r.status_code == 202
    s = shard_settled(citrus.url, "broken", 15)
    assert s["state"] == "failed" and "nosuch" in s["error"], s
    assert s["tokens"] == 0
    assert requests.delete(citrus.url + "/v1/shards/broken").status_code == 200
    # a migration that fails marks the shard failed, naming the file and the error;
    # the files before it stay applied, the failing one leaves nothing behind
    bad = Path(citrus.data_dir) / "templates" / "bad"
    bad.mkdir()
    (bad / "001_ok.sql").write_text("CREATE TABLE ok (id INTEGER);\n")
    (bad / "002_bad.sql").write_text("CREATE TABLE half (id INTEGER);\nSELECT * FROM nowhere;\n")
    r = post(citrus, "/v1/shards", {"id": "badmig", "provision": {"template": "bad"}})
    assert r.status_code == 202
    s = shard_settled(citrus.url, "badmig", 15)
    assert s["state"] == "failed" and "002_bad.sql" in s["error"] and "nowhere" in s["error"], s
    with sqlite3.connect(s["dsn"][len("sqlite://"):]) as db:
        tables = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        done = [n for (n,) in db.execute("SELECT name FROM citrus_migrations")]
    assert "ok" in tables and "half" not in tables and done == ["001_ok.sql"]
