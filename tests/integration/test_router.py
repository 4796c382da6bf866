"""The router (issue 5, first increment) on `citrus dev` with its four
SQLite shards, on both catalog stores: rows land on the shard the route API
names, parameters are bound (never spliced), scatter-gather merges like one
combined database would answer, transactions are all or nothing, shard
states are honoured, and bad input gets clear errors."""
import json
import random
import sqlite3

import pytest
import requests

from cluster import dev_on_store


@pytest.fixture(params=["embedded", "etcd"])
def dev(request, make_citrus, tmp_path):
    with dev_on_store(request.param, make_citrus, tmp_path,
                      extra=["--router-max-rows", "50"]) as c:
        yield c


def q(c, body, path="/v1/query"):
    return requests.post(c.router_url + path, json=body, timeout=30)


def ok(r):
    assert r.status_code == 200, r.text
    return r.json()


def shard_files(c):
    shards = requests.get(c.url + "/v1/shards").json()["shards"]
    return {s["id"]: s["dsn"][len("sqlite://"):] for s in shards}


def test_rows_land_on_the_routed_shard(dev):
    ok(q(dev, {"scatter": True, "sql": "CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER)"}))
    keys = [f"key-{i}" for i in range(400)]
    for i, k in enumerate(keys):
        a = ok(q(dev, {"key": k, "sql": "INSERT INTO kv VALUES ($1, $2)", "params": [k, i]}))
        assert a["changes"] == 1
    routes = requests.post(dev.url + "/v1/route", json={"keys": keys}).json()["routes"]
    want = {x["key"]: x["shard_id"] for x in routes}
    found = {}
    for sid, path in shard_files(dev).items():
        with sqlite3.connect(path) as db:
            for (k,) in db.execute("SELECT k FROM kv"):
                assert k not in found, f"{k} on two shards"
                found[k] = sid
    assert found == want
    assert len(set(found.values())) == 4  # every shard got some
    # and reads by key come back from the same place
    for i in (0, 57, 399):
        a = ok(q(dev, {"key": keys[i], "sql": "SELECT v FROM kv WHERE k = $1",
                       "params": [keys[i]]}))
        assert a["rows"] == [[i]] and a["shard_id"] == want[keys[i]]


def test_parameters_are_bound_never_spliced(dev):
    ok(q(dev, {"key": "t", "sql": "CREATE TABLE notes (id INTEGER, body TEXT, raw BLOB, "
                                  "flag BOOLEAN, x REAL)"}))
    evil = "x'); DROP TABLE notes; --"
    ok(q(dev, {"key": "t", "sql": "INSERT INTO notes VALUES ($1, $2, $3, $4, $5)",
               "params": [1, evil, {"$bytes": "AAEC/w=="}, True, 2.5]}))
    ok(q(dev, {"key": "t", "sql": "INSERT INTO notes VALUES ($1, $2, $3, $4, $5)",
               "params": [2, None, None, False, None]}))
    a = ok(q(dev, {"key": "t", "sql": "SELECT id, body, raw, x FROM notes ORDER BY id"}))
    assert a["columns"] == ["id", "body", "raw", "x"]
    assert a["rows"] == [[1, evil, {"$bytes": "AAEC/w=="}, 2.5], [2, None, None, None]]


def test_scatter_merges_like_one_database(dev):
    ok(q(dev, {"scatter": True,
               "sql": "CREATE TABLE sales (id INTEGER, region TEXT, amount INTEGER)"}))
    rng = random.Random(7)
    rows = [(i, rng.choice("nesw"), rng.randint(-50, 500)) for i in range(300)]
    for r in rows:
        ok(q(dev, {"key": f"sale-{r[0]}", "sql": "INSERT INTO sales VALUES ($1, $2, $3)",
                   "params": list(r)}))
    ref = sqlite3.connect(":memory:")
    ref.execute("CREATE TABLE sales (id INTEGER, region TEXT, amount INTEGER)")
    ref.executemany("INSERT INTO sales VALUES (?, ?, ?)", rows)
    # ORDER BY + LIMIT across shards
    for desc, limit in ((False, 10), (True, 25), (True, 1)):
        order = "DESC" if desc else "ASC"
        sql = f"SELECT amount, id FROM sales ORDER BY amount {order}, id ASC LIMIT {limit}"
        a = ok(q(dev, {"scatter": True, "sql": sql, "limit": limit,
                       "order_by": [{"column": "amount", "desc": desc},
                                    {"column": "id", "desc": False}]}))
        assert a["rows"] == [list(x) for x in ref.execute(sql)], sql
        assert len(a["shards"]) == 4
    # aggregates
    a = ok(q(dev, {"scatter": True,
                   "sql": "SELECT count(*) AS n, sum(amount) AS s, min(amount) AS lo, "
                          "max(amount) AS hi FROM sales",
                   "aggregate": ["count", "sum", "min", "max"]}))
    assert a["rows"] == [list(ref.execute(
        "SELECT count(*), sum(amount), min(amount), max(amount) FROM sales").fetchone())]
    # plain concatenation holds every row once; the row limit cuts it (max_rows 50)
    a = ok(q(dev, {"scatter": True, "sql": "SELECT id FROM sales WHERE id < 40"}))
    assert sorted(x[0] for x in a["rows"]) == list(range(40))
    a = ok(q(dev, {"key": "sale-1", "sql": "SELECT 1 FROM sales"}))
    assert a["truncated"] is True and a["row_count"] == 50


def test_transactions_are_all_or_nothing(dev):
    ok(q(dev, {"key": "acct", "sql": "CREATE TABLE acct (id TEXT PRIMARY KEY, bal INTEGER)"}))
    ok(q(dev, {"key": "acct", "sql": "INSERT INTO acct VALUES ('a', 100)"}))
    r = q(dev, {"key": "acct", "statements": [
        {"sql": "UPDATE acct SET bal = bal - 30 WHERE id = $1", "params": ["a"]},
        {"sql": "INSERT INTO acct VALUES ('a', 1)"}]}, "/v1/tx")
    assert r.status_code == 400 and r.json()["error"]["code"] == "sql_error"
    assert r.json()["error"]["statement"] == 1
    a = ok(q(dev, {"key": "acct", "sql": "SELECT bal FROM acct WHERE id = 'a'"}))
    assert a["rows"] == [[100]]
    t = ok(q(dev, {"key": "acct", "statements": [
        {"sql": "UPDATE acct SET bal = bal - 30 WHERE id = $1", "params": ["a"]},
        {"sql": "SELECT bal FROM acct WHERE id = $1", "params": ["a"]}]}, "/v1/tx"))
    assert t["results"][1]["rows"] == [[70]]


def test_shard_states_are_honoured(dev):
    ok(q(dev, {"scatter": True, "sql": "CREATE TABLE t (k TEXT)"}))
    sid = requests.get(dev.url + "/v1/route/somekey").json()["shard_id"]
    assert requests.post(f"{dev.url}/v1/shards/{sid}/read-only").status_code == 200
    r = q(dev, {"key": "somekey", "sql": "INSERT INTO t VALUES ('x')"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "read_only", r.text
    assert ok(q(dev, {"key": "somekey", "sql": "SELECT count(*) FROM t"}))["rows"] == [[0]]
    assert requests.post(f"{dev.url}/v1/shards/{sid}/activate").status_code == 200
    ok(q(dev, {"key": "somekey", "sql": "INSERT INTO t VALUES ('x')"}))


def test_a_shard_not_serving_refuses_everything(dev):
    """A shard in a state that serves nothing (here failed, written into
    its record) refuses even reads of a tenant pinned to it, with 503
    naming it, and scatter leaves it out."""
    ok(q(dev, {"scatter": True, "sql": "CREATE TABLE nf (x INTEGER)"}))
    r = requests.put(f"{dev.url}/v1/tenants/pinned-nf", json={"shard_id": "shard-1"})
    assert r.status_code == 201, r.text
    assert ok(q(dev, {"key": "pinned-nf", "sql": "SELECT count(*) FROM nf"}))["shard_id"] \
        == "shard-1"
    rec = requests.get(f"{dev.url}/v1/kv/citrus/shards/shard-1").json()
    rec["state"] = "failed"
    assert requests.put(f"{dev.url}/v1/kv/citrus/shards/shard-1?unsafe=true",
                        data=json.dumps(rec)).status_code == 200
    for sql in ["SELECT count(*) FROM nf", "INSERT INTO nf VALUES (1)"]:
        r = q(dev, {"key": "pinned-nf", "sql": sql})
        assert r.status_code == 503, r.text
        err = r.json()["error"]
        assert err["code"] == "unavailable" and "shard-1" in err["message"] \
            and "failed" in err["message"], err
    a = ok(q(dev, {"scatter": True, "sql": "SELECT count(*) AS n FROM nf",
                   "aggregate": "sum"}))
    assert sorted(a["shards"]) == ["shard-0", "shard-2", "shard-3"], a


def test_scatter_names_a_failing_shard_or_lists_it_as_missing(dev):
    ok(q(dev, {"scatter": True, "sql": "CREATE TABLE sf (x INTEGER)"}))
    ok(q(dev, {"scatter": True, "sql": "INSERT INTO sf VALUES (1)"}))
    path = shard_files(dev)["shard-2"]
    con = sqlite3.connect(path)
    con.execute("DROP TABLE sf")
    con.commit()
    con.close()
    r = q(dev, {"scatter": True, "sql": "SELECT count(*) AS n FROM sf", "aggregate": "sum"})
    assert r.status_code == 400, r.text
    assert "shard-2" in r.json()["error"]["message"], r.text
    a = ok(q(dev, {"scatter": True, "sql": "SELECT count(*) AS n FROM sf", "aggregate": "sum",
                   "partial": True}))
    assert a["rows"] == [[3]], a
    assert sorted(a["shards"]) == ["shard-0", "shard-1", "shard-3"], a
    assert [m["shard_id"] for m in a["missing"]] == ["shard-2"], a
    assert "sf" in a["missing"][0]["error"], a


def test_multi_key_requests(dev):
    ok(q(dev, {"scatter": True, "sql": "CREATE TABLE m (k TEXT)"}))
    routes = requests.post(dev.url + "/v1/route",
                           json={"keys": [f"mk{i}" for i in range(40)]}).json()["routes"]
    by_shard = {}
    for x in routes:
        by_shard.setdefault(x["shard_id"], []).append(x["key"])
    same = next(v for v in by_shard.values() if len(v) >= 2)[:2]
    a = ok(q(dev, {"keys": same, "sql": "INSERT INTO m VALUES ($1)", "params": ["x"]}))
    assert a["shard_id"] == routes[[x["key"] for x in routes].index(same[0])]["shard_id"]
    apart = [v[0] for v in by_shard.values()][:2]
    r = q(dev, {"keys": apart, "sql": "INSERT INTO m VALUES ($1)", "params": ["y"]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "unprocessable", r.text
    for k in apart:
        assert k in r.json()["error"]["message"]
    # nothing was written for the refused request
    a = ok(q(dev, {"scatter": True, "sql": "SELECT k FROM m"}))
    assert [row[0] for row in a["rows"]] == ["x"]
    assert q(dev, {"keys": [], "sql": "SELECT 1"}).status_code == 400
    # per-shard metrics count what ran
    m = requests.get(dev.router_url + "/metrics").text
    assert 'citrus_router_queries_total{shard="' in m and 'outcome="ok"' in m
    assert "citrus_router_pool_connections" in m


def test_tenant_names_a_key_and_unknown_tenants_follow_the_ring(dev):
    """{"tenant": ...} is the key by another name; a tenant nobody registered
    is routed by the ring, like /v1/route says."""
    ok(q(dev, {"scatter": True, "sql": "CREATE TABLE who (x INTEGER)"}))
    for t in ["never-registered-1", "never-registered-2", "acme:nowhere"]:
        route = requests.get(f"{dev.url}/v1/route/{t}").json()
        assert route["source"] == "ring", route
        a = ok(q(dev, {"tenant": t, "sql": "SELECT count(*) FROM who"}))
        assert a["shard_id"] == route["shard_id"], (t, a, route)


def test_bad_input(dev):
    cases = [
        ({"sql": "SELECT 1"}, 400, "key"),
        ({"key": "k"}, 400, "sql"),
        ({"key": "k", "sql": "SELECT $1", "params": "x"}, 400, "params"),
        ({"key": "k", "sql": "SELECT $1", "params": [[1]]}, 400, "params[0]"),
        ({"key": 5, "sql": "SELECT 1"}, 400, "key"),
        ({"scatter": "yes", "sql": "SELECT 1"}, 400, "scatter"),
        ({"scatter": True, "sql": "SELECT 1", "aggregate": "median"}, 400, "aggregate"),
        ({"scatter": True, "sql": "SELECT 1", "order_by": [{"desc": True}]}, 400, "order_by"),
    ]
    for body, code, field in cases:
        r = q(dev, body)
        assert r.status_code == code and field in r.json()["error"]["message"], (body, r.text)
    r = q(dev, {"key": "k", "sql": "SELECT * FROM nowhere"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "sql_error"
    assert "nowhere" in r.json()["error"]["message"]
    r = q(dev, {"key": "k", "sql": "SELECT $1, $2", "params": [1]})
    assert r.status_code == 400, r.text
    assert q(dev, {"key": "k", "statements": []}, "/v1/tx").status_code == 400
    assert requests.post(dev.router_url + "/v1/query", data="nope",
                         headers={"Content-Type": "application/json"}).status_code == 400
    # the router takes headers up to 16 KiB (a JWT may take 8; its connections' memory is
    # kept small)
    r = requests.post(dev.router_url + "/v1/query", json={"key": "k", "sql": "SELECT 1"},
                      headers={"X-Big": "x" * 18000})
    assert r.status_code == 431 and r.json()["error"]["code"], r.text


def test_citrus_router_command(make_citrus, tmp_path):
    """`citrus router`: a node whose router is on; here over its own embedded
    catalog, with one registered SQLite database."""
    c = make_citrus(mode="router", extra=["--router-listen", "127.0.0.1:0"])
    db = tmp_path / "one.db"
    sqlite3.connect(db).close()
    assert requests.post(c.url + "/v1/shards",
                         json={"id": "one", "dsn": f"sqlite://{db}"}).status_code == 201
    ok(q(c, {"key": "anything", "sql": "CREATE TABLE t (x INTEGER)"}))
    ok(q(c, {"key": "else", "sql": "INSERT INTO t VALUES ($1)", "params": [7]}))
    assert ok(q(c, {"key": "x", "sql": "SELECT x FROM t"}))["rows"] == [[7]]
    assert requests.get(c.router_url + "/health/live").status_code == 200


def test_routing_agrees_with_the_route_api_for_10k_keys(make_citrus):
    """Every one of 10,000 keys runs on the shard /v1/route names for it:
    ring keys, and registered tenants whose pins point elsewhere than the
    ring would. 40 shards: the router's table of pools grows twice."""
    c = make_citrus(shards=True, extra=["--dev-shards", "40"])
    s = requests.Session()
    keys = [f"user-{i}" for i in range(10000)]
    # pin a few hundred keys away from their ring shard
    ring = s.post(c.url + "/v1/route", json={"keys": keys}).json()["routes"]
    shards = sorted({x["shard_id"] for x in ring})
    assert len(shards) == 40
    for x in ring[:300]:
        other = shards[(shards.index(x["shard_id"]) + 1) % len(shards)]
        assert s.put(f"{c.url}/v1/tenants/{x['key']}",
                     json={"shard_id": other}).status_code == 201
    want = {x["key"]: x for x in s.post(c.url + "/v1/route", json={"keys": keys}).json()["routes"]}
    assert sum(x["source"] == "directory" for x in want.values()) == 300
    for k in keys:
        r = s.post(c.router_url + "/v1/query", json={"key": k, "sql": "SELECT 1"})
        assert r.status_code == 200, r.text
        assert r.json()["shard_id"] == want[k]["shard_id"], (k, want[k])


def test_a_new_shard_is_routed_to_without_a_restart(dev, tmp_path):
    """The router follows the catalog: keys the ring hands to a shard added
    while it runs are answered by that shard at once, and so is a key pinned
    elsewhere, though the router had just routed them all (and remembers
    routes between catalog changes)."""
    keys = [f"move{i}" for i in range(300)]
    before = {x["key"]: x["shard_id"] for x in requests.post(
        dev.url + "/v1/route", json={"keys": keys}).json()["routes"]}
    for k in keys:
        assert ok(q(dev, {"key": k, "sql": "SELECT 1"}))["shard_id"] == before[k]
    db = tmp_path / "fresh.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE whoami (name TEXT)")
    con.execute("INSERT INTO whoami VALUES ('fresh')")
    con.commit()
    con.close()
    r = requests.post(dev.url + "/v1/shards", json={"id": "fresh", "dsn": f"sqlite://{db}"})
    assert r.status_code == 201, r.text
    after = {x["key"]: x["shard_id"] for x in requests.post(
        dev.url + "/v1/route", json={"keys": keys}).json()["routes"]}
    moved = [k for k in keys if after[k] == "fresh"]
    assert len(moved) > 20 and all(before[k] != "fresh" for k in moved), len(moved)
    for k in moved[:25]:
        a = ok(q(dev, {"key": k, "sql": "SELECT name FROM whoami"}))
        assert a["shard_id"] == "fresh" and a["rows"] == [["fresh"]], (k, a)
    stay = next(k for k in keys if after[k] != "fresh")
    assert ok(q(dev, {"key": stay, "sql": "SELECT 1"}))["shard_id"] == after[stay]
    r = requests.put(f"{dev.url}/v1/tenants/{stay}", json={"shard_id": "fresh"})
    assert r.status_code == 201, r.text
    a = ok(q(dev, {"key": stay, "sql": "SELECT name FROM whoami"}))
    assert a["shard_id"] == "fresh" and a["rows"] == [["fresh"]], a
