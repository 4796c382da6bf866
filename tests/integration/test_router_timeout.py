"""Statement timeouts in the router: a request's timeout_ms, or the router's
--router-query-timeout when it names none. A statement past it is cancelled
(SQLite: interrupted; PostgreSQL: a cancel request, SQLSTATE 57014) and the
call fails with 504 query_timeout, having applied nothing; the connection
serves the next request; the metrics count it as outcome="timeout"; bad
values are 400."""
import time

import requests

from pg import make_postgres  # noqa: F401 (fixture)
from test_shards_postgres import psql

ENDLESS = ("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) "
           "SELECT count(*) FROM n")
ENDLESS_WRITE = ("INSERT INTO t (a) WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL "
                 "SELECT x + 1 FROM n) SELECT x FROM n")


def q(c, body, path="/v1/query"):
    return requests.post(c.router_url + path, json=body, timeout=30)


def timed_out(r, started, limit_s):
    took = time.monotonic() - started
    assert r.status_code == 504, r.text
    e = r.json()["error"]
    assert e["code"] == "query_timeout", e
    assert "timeout of" in e["message"] and "cancelled" in e["message"], e
    assert took < limit_s, took
    return e


def test_sqlite_statement_past_its_timeout(make_citrus):
    c = make_citrus(shards=True, extra=["--router-pool-size", "1"])
    assert q(c, {"scatter": True, "sql": "CREATE TABLE t (a INTEGER)"}).status_code == 200
    t0 = time.monotonic()
    timed_out(q(c, {"key": "k", "sql": ENDLESS, "timeout_ms": 300}), t0, 10)
    # the one pooled connection goes on
    r = q(c, {"key": "k", "sql": "SELECT 7 AS a"})
    assert r.status_code == 200 and r.json()["rows"] == [[7]], r.text
    # a write cut short applies nothing; in a transaction, nothing of it
    t0 = time.monotonic()
    timed_out(q(c, {"key": "k", "sql": ENDLESS_WRITE, "timeout_ms": 300}), t0, 10)
    t0 = time.monotonic()
    r = q(c, {"key": "k", "timeout_ms": 300, "statements": [
        {"sql": "INSERT INTO t (a) VALUES (1)"}, {"sql": ENDLESS_WRITE}]}, "/v1/tx")
    assert timed_out(r, t0, 10)["statement"] == 1
    assert q(c, {"key": "k", "sql": "SELECT count(*) FROM t"}).json()["rows"] == [[0]]
    # scatter: every shard's statement is bounded
    t0 = time.monotonic()
    timed_out(q(c, {"scatter": True, "sql": ENDLESS, "timeout_ms": 300}), t0, 10)
    # without timeout_ms a statement gets router.query_timeout_ms (30 s)
    r = q(c, {"key": "k", "sql": "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
                                 "FROM n WHERE x < 200000) SELECT count(*) FROM n"})
    assert r.status_code == 200 and r.json()["rows"] == [[200000]], r.text
    m = requests.get(c.router_url + "/metrics").text
    sid = requests.get(c.url + "/v1/route/k").json()["shard_id"]
    assert f'citrus_router_queries_total{{shard="{sid}",role="primary",outcome="timeout"}} 3' \
        in m, m


def test_router_default_timeout(make_citrus):
    c = make_citrus(shards=True, extra=["--router-query-timeout", "300"])
    t0 = time.monotonic()
    timed_out(q(c, {"key": "k", "sql": ENDLESS}), t0, 10)
    # a request may ask for more (or less) than the default
    t0 = time.monotonic()
    r = q(c, {"key": "k", "sql": "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
                                 "FROM n WHERE x < 100) SELECT count(*) FROM n",
              "timeout_ms": 60000})
    assert r.status_code == 200 and r.json()["rows"] == [[100]], r.text


def test_bad_timeouts_are_refused(make_citrus):
    c = make_citrus(shards=True)
    for bad in (0, -5, "300", 1.5, True, None, 86400001):
        for path, body in (("/v1/query", {"key": "k", "sql": "SELECT 1"}),
                           ("/v1/tx", {"key": "k", "statements": [{"sql": "SELECT 1"}]})):
            r = q(c, {**body, "timeout_ms": bad}, path)
            assert r.status_code == 400, (path, bad, r.text)
            assert "timeout_ms" in r.json()["error"]["message"], r.text


def test_postgres_statement_is_cancelled(make_citrus, make_postgres):
    pg = make_postgres()
    psql(pg.admin_dsn, "CREATE DATABASE s")
    psql(pg.dsn("s"), "CREATE TABLE t (a INTEGER)")
    c = make_citrus(extra=["--router-pool-size", "1"])
    assert requests.post(c.url + "/v1/shards?allow_superuser=true",
                         json={"id": "s", "dsn": pg.dsn("s")}).status_code == 201
    t0 = time.monotonic()
    e = timed_out(q(c, {"key": "a", "sql": "SELECT pg_sleep(20)", "timeout_ms": 300}), t0, 10)
    assert e["sqlstate"] == "57014", e
    # the server is not left running it, and the pooled connection goes on
    assert psql(pg.admin_dsn, "SELECT count(*) FROM pg_stat_activity "
                "WHERE query = 'SELECT pg_sleep(20)' AND state = 'active'") == "0"
    r = q(c, {"key": "a", "sql": "SELECT 1 AS one"})
    assert r.status_code == 200 and r.json()["rows"] == [[1]], r.text
    t0 = time.monotonic()
    r = q(c, {"key": "a", "timeout_ms": 300, "statements": [
        {"sql": "INSERT INTO t VALUES (1)"},
        {"sql": "INSERT INTO t SELECT 2 FROM pg_sleep(20)"}]}, "/v1/tx")
    assert timed_out(r, t0, 10)["statement"] == 1
    assert psql(pg.dsn("s"), "SELECT count(*) FROM t") == "0"
