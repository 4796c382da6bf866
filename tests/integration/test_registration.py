"""Registrations through the Citrus API are exact (issue 14): another
businessType for a registered location is 409 conflict (a batch then
applies nothing), a type without a template is 422 unknown_business_type
listing the known ones unless shards.allow_untemplated_types, concurrent
registrations of one new location agree; strict tenants
(router.require_registered, globally or per business type); and the small
fixes: `citrus dev` templates and --help, missing fields, shardKey
messages."""
import json
import threading
import urllib.parse
from pathlib import Path

import pytest
import requests

from conftest import liveness, run_cli


def post(c, path, body):
    return requests.post(c.url + path, json=body, timeout=30)


def reg(c, biz, loc, typ):
    return post(c, "/api/register", {"businessId": biz, "locationId": loc, "businessType": typ})


def err(r):
    return r.json()["error"]


def add_template(c, name, sql="", settings=None):
    d = Path(c.data_dir) / "templates" / name
    d.mkdir(parents=True, exist_ok=True)
    if sql:
        (d / f"001_{name}.sql").write_text(sql)
    if settings is not None:
        (d / "template.json").write_text(json.dumps(settings))


def q(c, body):
    return requests.post(c.router_url + "/v1/query", json=body, timeout=30)


# ---- item 1: exact registrations ----

def test_another_type_for_a_registered_location_is_409(citrus_shards):
    c = citrus_shards
    add_template(c, "restaurant")
    r = reg(c, "idem", "main", "retail")
    assert r.status_code == 201, r.text
    r = reg(c, "idem", "main", "restaurant")
    assert r.status_code == 409, r.text
    e = err(r)
    assert e["code"] == "conflict"
    assert "'retail'" in e["message"] and "'restaurant'" in e["message"], e
    # the same type again is the first answer
    again = reg(c, "idem", "main", "retail")
    assert again.status_code == 200 and again.json()["shardId"] == \
        requests.get(c.url + "/api/shard/idem:main").json()["shardId"]


def test_a_batch_with_a_conflicting_type_applies_nothing(citrus_shards):
    c = citrus_shards
    add_template(c, "restaurant")
    assert reg(c, "idem", "main", "retail").status_code == 201
    r = post(c, "/api/register/batch", {"businessId": "idem", "locations": [
        {"locationId": "north", "businessType": "retail"},
        {"locationId": "main", "businessType": "restaurant"},
        {"locationId": "south", "businessType": "restaurant"}]})
    assert r.status_code == 409, r.text
    assert err(r)["code"] == "conflict" and "'retail'" in err(r)["message"]
    for loc in ("north", "south"):
        g = requests.get(c.url + f"/api/shard/idem:{loc}")
        assert g.status_code == 404, (loc, g.text)
    assert requests.get(c.url + "/v1/route/idem:north").json()["registered"] is False


@pytest.mark.parametrize("typ", ["retial", "Retail", "RETAIL"])
def test_an_unknown_type_is_422_listing_the_known_ones(citrus_shards, typ):
    c = citrus_shards
    add_template(c, "restaurant")
    r = reg(c, "acme", "s1", typ)
    assert r.status_code == 422, r.text
    e = err(r)
    assert e["code"] == "unknown_business_type"
    assert e["known"] == ["restaurant", "retail"], e
    assert "'retail'" in e["message"] and "'restaurant'" in e["message"] and typ in e["message"]
    assert requests.get(c.url + "/api/shard/acme:s1").status_code == 404
    # in a batch: the location is named, nothing is pinned
    r = post(c, "/api/register/batch", {"businessId": "acme", "locations": [
        {"locationId": "s2", "businessType": "retail"},
        {"locationId": "s3", "businessType": typ}]})
    assert r.status_code == 422 and err(r)["message"].startswith("locations[1]."), r.text
    assert err(r)["known"] == ["restaurant", "retail"]
    assert requests.get(c.url + "/api/shard/acme:s2").status_code == 404


def test_allow_untemplated_types_accepts_any_type(make_citrus):
    c = make_citrus(shards=True, extra=["--allow-untemplated-types", "true"])
    r = reg(c, "acme", "s1", "retial")
    assert r.status_code == 201, r.text
    assert reg(c, "acme", "s1", "retial").status_code == 200
    # still exact: the recorded type is what it is
    assert reg(c, "acme", "s1", "retail").status_code == 409


def test_a_server_without_templates_knows_no_type(make_citrus):
    c = make_citrus(mode="server", extra=["--provisioner", "sqlite"])
    assert post(c, "/v1/shards", {"provision": {}}).status_code in (201, 202)
    r = reg(c, "acme", "s1", "retail")
    assert r.status_code == 422, r.text
    assert err(r)["known"] == [] and "no templates directory" in err(r)["message"]


def test_concurrent_registrations_of_one_location_agree(citrus_shards):
    c = citrus_shards
    types = ["retail", "restaurant", "bakery", "cafe"]
    for t in types[1:]:
        add_template(c, t, f"CREATE TABLE IF NOT EXISTS t_{t} (id TEXT PRIMARY KEY);\n")
    barrier = threading.Barrier(8)
    out = [None] * 8

    def one(i):
        barrier.wait()
        r = reg(c, "race", "one", types[i % 4])
        out[i] = (types[i % 4], r.status_code, r.json())

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(liveness(60))
    assert all(o is not None for o in out), out
    created = [o for o in out if o[1] == 201]
    assert len(created) == 1, out
    winner = created[0][0]
    for typ, status, body in out:
        if typ == winner and status != 201:
            assert status == 200 and body["shardId"] == created[0][2]["shardId"], out
        elif typ != winner:
            assert status == 409 and body["error"]["code"] == "conflict", (typ, status, body)
            assert f"'{winner}'" in body["error"]["message"]


# ---- item 9: strict tenants ----

def test_require_registered_refuses_unregistered_keys(make_citrus):
    c = make_citrus(shards=True, extra=["--require-registered", "true"])
    assert reg(c, "acme", "s1", "retail").status_code == 201
    ok = q(c, {"key": "acme:s1", "sql": "SELECT 1 AS one"})
    assert ok.status_code == 200, ok.text
    r = q(c, {"key": "acme:s2", "sql": "SELECT 1 AS one"})
    assert r.status_code == 404, r.text
    assert err(r)["code"] == "unknown_tenant" and "'acme:s2'" in err(r)["message"]
    # several keys: each must be registered
    r = q(c, {"keys": ["acme:s1", "acme:typo"], "sql": "SELECT 1"})
    assert r.status_code == 404 and "'acme:typo'" in err(r)["message"], r.text
    # a transaction
    r = requests.post(c.router_url + "/v1/tx", json={"key": "acme:s2", "statements": [
        {"sql": "SELECT 1"}]}, timeout=30)
    assert r.status_code == 404, r.text
    # scatter queries are not keyed: unaffected
    s = q(c, {"scatter": True, "sql": "SELECT count(*) AS n FROM locations",
              "aggregate": "count"})
    assert s.status_code == 200, s.text
    # /v1/route says whether a key is registered
    assert requests.get(c.url + "/v1/route/acme:s1").json()["registered"] is True
    assert requests.get(c.url + "/v1/route/acme:s2").json()["registered"] is False


def test_by_default_unregistered_keys_follow_the_ring(citrus_shards):
    c = citrus_shards
    r = q(c, {"key": "nobody:here", "sql": "SELECT 1 AS one"})
    assert r.status_code == 200, r.text
    route = requests.get(c.url + "/v1/route/nobody:here").json()
    assert route["registered"] is False and route["source"] == "ring"
    assert r.json()["shard_id"] == route["shard_id"]


def test_a_strict_business_type_refuses_its_businesses_unregistered_keys(citrus_shards):
    c = citrus_shards
    add_template(c, "bank", settings={"require_registered": True})
    assert reg(c, "vault", "hq", "bank").status_code == 201
    assert reg(c, "shop", "main", "retail").status_code == 201
    assert q(c, {"key": "vault:hq", "sql": "SELECT 1"}).status_code == 200
    r = q(c, {"key": "vault:hqq", "sql": "SELECT 1"})
    assert r.status_code == 404, r.text
    assert err(r)["code"] == "unknown_tenant" and "'vault:hqq'" in err(r)["message"]
    # a business of a type that is not strict, or unknown: the ring
    assert q(c, {"key": "shop:typo", "sql": "SELECT 1"}).status_code == 200
    assert q(c, {"key": "other:x", "sql": "SELECT 1"}).status_code == 200
    # template.json is read when needed: turned off, the key routes again
    add_template(c, "bank", settings={"require_registered": False})
    assert q(c, {"key": "vault:hqq", "sql": "SELECT 1"}).status_code == 200


# ---- item 10: small fixes ----

def test_dev_help_tells_the_dev_defaults():
    out = run_cli("dev", "--help").stdout
    line = next(l for l in out.splitlines() if "--dev-shards" in l)
    assert "(default 4)" in line, line
    line = next(l for l in run_cli("server", "--help").stdout.splitlines() if "--dev-shards" in l)
    assert "(default 0)" in line, line


def test_dev_writes_the_example_template_even_without_shards(make_citrus, tmp_path):
    c = make_citrus()  # --dev-shards 0
    tpl = Path(c.data_dir) / "templates" / "retail"
    assert sorted(p.name for p in tpl.iterdir()) == [
        "001_locations.sql", "002_orders.sql", "003_tenant_rls.pg.sql"]
    # an edited copy is kept across restarts
    (tpl / "002_orders.sql").write_text("-- mine\n")
    c.stop()
    c.start()
    assert (tpl / "002_orders.sql").read_text() == "-- mine\n"
    # and registration can use it once a shard exists
    assert post(c, "/v1/shards", {"provision": {"template": "retail"}}).status_code in (201, 202)


@pytest.mark.parametrize("body,field", [
    ({"locationId": "l", "businessType": "retail"}, "businessId"),
    ({"businessId": "b", "businessType": "retail"}, "locationId"),
    ({"businessId": "b", "locationId": "l"}, "businessType"),
])
def test_a_missing_field_is_invalid_argument(citrus_shards, body, field):
    r = post(citrus_shards, "/api/register", body)
    assert r.status_code == 400 and err(r)["code"] == "invalid_argument", r.text
    assert err(r)["message"] == f"{field}: required"


def test_batch_missing_fields_and_wrong_types(citrus_shards):
    c = citrus_shards
    r = post(c, "/api/register/batch", {"businessId": "b"})
    assert r.status_code == 400 and err(r)["code"] == "invalid_argument", r.text
    r = post(c, "/api/register/batch", {"businessId": "b", "locations": []})
    assert r.status_code == 400 and err(r)["code"] == "invalid_argument", r.text
    r = post(c, "/api/register/batch", {"businessId": "b", "locations": [{"locationId": "x"}]})
    assert err(r)["code"] == "invalid_argument" and \
        err(r)["message"] == "locations[0].businessType: required", r.text
    # wrong types stay bad_json
    r = post(c, "/api/register/batch", {"businessId": "b", "locations": "x"})
    assert r.status_code == 400 and err(r)["code"] == "bad_json", r.text
    r = post(c, "/api/register", {"businessId": 5, "locationId": "l", "businessType": "retail"})
    assert err(r)["code"] == "bad_json" and "must be a string" in err(r)["message"]
    r = post(c, "/api/register", {"businessId": "b", "locationId": "l", "businessType": "retail",
                                  "extra": 1})
    assert err(r)["code"] == "bad_json" and "extra: unknown field" in err(r)["message"]


def shard_get(c, raw_key):
    return requests.get(c.url + "/api/shard/" + urllib.parse.quote(raw_key, safe=""), timeout=30)


def test_shard_key_errors_say_what_is_wrong(citrus_shards):
    c = citrus_shards
    r = shard_get(c, "a" * 10000)
    e = err(r)
    assert r.status_code == 400 and e["code"] == "invalid_argument"
    assert "too long" in e["message"] and "10000" in e["message"] and "256" in e["message"], e
    r = shard_get(c, "café:main")
    assert r.status_code == 400 and "U+00E9" in err(r)["message"], r.text
    assert "byte 3" in err(r)["message"]
    r = shard_get(c, "a b:c")
    assert "' '" not in err(r)["message"] and "byte 0x20" in err(r)["message"], r.text
    r = shard_get(c, "a<script>:c")
    assert "'<'" in err(r)["message"] and "<script>" not in err(r)["message"], r.text
    r = shard_get(c, "nocolon")
    assert r.status_code == 400 and "no ':'" in err(r)["message"], r.text
    r = shard_get(c, "a:b:c")
    assert r.status_code == 400 and "more than one ':'" in err(r)["message"], r.text
    r = shard_get(c, ":loc")
    assert r.status_code == 400 and "businessId" in err(r)["message"], r.text
    r = shard_get(c, "biz:..")
    assert r.status_code == 400 and "locationId" in err(r)["message"], r.text
    assert shard_get(c, "nobody:nowhere").status_code == 404
