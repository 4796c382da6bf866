"""The router's prepared statements on PostgreSQL shards (issue 5,
router.statement_cache): with one pooled connection per shard every query
runs on the same session, so what that session holds is what
pg_prepared_statements shows through the router itself. A query is
prepared once and reused; DDL is not prepared; an ALTER TABLE under a
SELECT * and a DEALLOCATE ALL are recovered from without an error; and
--router-statement-cache 0 prepares nothing. Behind a transaction-mode
PgBouncer that resets its server connections after every transaction
(where no named statement survives), queries still succeed: the router's
connection notices and stops preparing."""
import requests

from pg import make_pgbouncer, make_postgres  # noqa: F401 (fixtures)
from test_shards_postgres import psql

LOOKUP = "SELECT * FROM kv WHERE k = $1"
HELD = "SELECT statement FROM pg_prepared_statements ORDER BY statement"


def start(make_citrus, make_postgres, *extra):
    pg = make_postgres()
    psql(pg.admin_dsn, "CREATE DATABASE s")
    psql(pg.dsn("s"), "CREATE TABLE kv (k TEXT PRIMARY KEY, v INT)")
    psql(pg.dsn("s"), "INSERT INTO kv VALUES ('a', 1), ('b', 2), ('c', 3)")
    c = make_citrus(extra=["--router-pool-size", "1", *extra])
    r = requests.post(c.url + "/v1/shards?allow_superuser=true", json={"id": "s", "dsn": pg.dsn("s")})
    assert r.status_code == 201, r.text
    return c


def query(c, sql, *params):
    r = requests.post(c.router_url + "/v1/query",
                      json={"key": "any", "sql": sql, "params": list(params)}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def held(c):
    return [row[0] for row in query(c, HELD)["rows"]]


def test_router_prepares_once_and_recovers(make_citrus, make_postgres):
    c = start(make_citrus, make_postgres)
    for k, v in (("a", 1), ("b", 2), ("c", 3), ("a", 1)):
        assert query(c, LOOKUP, k)["rows"] == [[k, v]]
    assert held(c).count(LOOKUP) == 1  # four runs, one statement
    # DDL runs unnamed; the SELECT * prepared before it sees the new column
    query(c, "ALTER TABLE kv ADD COLUMN extra INT DEFAULT 5")
    assert not any(s.startswith("ALTER") for s in held(c))
    a = query(c, LOOKUP, "a")
    assert a["columns"] == ["k", "v", "extra"] and a["rows"] == [["a", 1, 5]], a
    assert held(c).count(LOOKUP) == 1  # the stale one was deallocated
    # the session loses every statement: the next run prepares again
    query(c, "DEALLOCATE ALL")
    assert query(c, LOOKUP, "b")["rows"] == [["b", 2, 5]]
    assert held(c).count(LOOKUP) == 1
    # a transaction reuses them too, and a bad statement is an error as ever
    r = requests.post(c.router_url + "/v1/tx", json={"key": "any", "statements": [
        {"sql": "UPDATE kv SET v = v + 10 WHERE k = $1", "params": ["c"]},
        {"sql": LOOKUP, "params": ["c"]}]}, timeout=30)
    assert r.status_code == 200, r.text
    r = requests.post(c.router_url + "/v1/query",
                      json={"key": "any", "sql": "SELECT * FROM nowhere WHERE k = $1",
                            "params": ["a"]}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["sqlstate"] == "42P01", r.text
    assert query(c, LOOKUP, "c")["rows"] == [["c", 13, 5]]


def test_router_statement_cache_off(make_citrus, make_postgres):
    c = start(make_citrus, make_postgres, "--router-statement-cache", "0")
    for k in ("a", "b"):
        query(c, LOOKUP, k)
    assert held(c) == []


def test_router_behind_a_pooler_that_drops_statements(make_citrus, make_postgres,
                                                      make_pgbouncer):
    pg = make_postgres()
    psql(pg.admin_dsn, "CREATE DATABASE s")
    psql(pg.dsn("s"), "CREATE TABLE kv (k TEXT PRIMARY KEY, v INT)")
    psql(pg.dsn("s"), "INSERT INTO kv VALUES ('a', 1), ('b', 2)")
    bouncer = make_pgbouncer(pg, "s", ["pool_mode = transaction", "default_pool_size = 2",
                                       "server_reset_query = DISCARD ALL",
                                       "server_reset_query_always = 1"])
    c = make_citrus(extra=["--router-pool-size", "1"])
    r = requests.post(c.url + "/v1/shards?allow_superuser=true",
                      json={"id": "s", "dsn": bouncer.dsn()})
    assert r.status_code == 201, r.text
    for i in range(20):
        k, v = ("a", 1) if i % 2 == 0 else ("b", 2)
        assert query(c, LOOKUP, k)["rows"] == [[k, v]]
    m = requests.get(c.router_url + "/metrics", timeout=10).text
    assert 'citrus_router_queries_total{shard="s",role="primary",outcome="ok"} 20' in m, m
