"""The router on a real PostgreSQL (pg.py; issue 5). Pool exhaustion: with
one connection per shard database and a short wait, a query that finds it
busy gets 503 pool_exhausted after the wait (counted in the metrics), and
the pool serves again once the connection is back (pg_sleep holds the
connection for a known time). SQL errors carry PostgreSQL's SQLSTATE, and
a failed transaction names its statement and keeps nothing."""
import threading
import time

import requests

from conftest import wait_until
from pg import make_postgres  # noqa: F401 (fixture)
from test_shards_postgres import psql


def test_pool_exhausted_after_the_wait(make_citrus, make_postgres):
    pg = make_postgres()
    psql(pg.admin_dsn, "CREATE DATABASE s")
    c = make_citrus(extra=["--router-pool-size", "1", "--router-pool-wait", "300"])
    r = requests.post(c.url + "/v1/shards?allow_superuser=true", json={"id": "s", "dsn": pg.dsn("s")})
    assert r.status_code == 201, r.text
    url = c.router_url + "/v1/query"
    slow = {}
    t = threading.Thread(target=lambda: slow.update(r=requests.post(
        url, json={"key": "a", "sql": "SELECT pg_sleep(3)"}, timeout=30)))
    t.start()
    try:
        wait_until(lambda: psql(pg.admin_dsn, "SELECT count(*) FROM pg_stat_activity "
                                "WHERE query = 'SELECT pg_sleep(3)'") == "1", 10,
                   what="the slow query to hold the connection")
        t0 = time.monotonic()
        r = requests.post(url, json={"key": "b", "sql": "SELECT 1"}, timeout=30)
        waited = time.monotonic() - t0
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "pool_exhausted", r.text
        assert 0.25 <= waited < 2.5, waited
    finally:
        t.join()
    assert slow["r"].status_code == 200, slow["r"].text
    m = requests.get(c.router_url + "/metrics").text
    assert 'citrus_router_pool_exhausted_total{shard="s"} 1' in m, m
    r = requests.post(url, json={"key": "b", "sql": "SELECT 1 AS one"}, timeout=30)
    assert r.status_code == 200 and r.json()["rows"] == [[1]], r.text


def test_postgres_errors_carry_their_sqlstate(make_citrus, make_postgres):
    pg = make_postgres()
    psql(pg.admin_dsn, "CREATE DATABASE s")
    psql(pg.dsn("s"), "CREATE TABLE u (k TEXT PRIMARY KEY)")
    c = make_citrus()
    assert requests.post(c.url + "/v1/shards?allow_superuser=true",
                         json={"id": "s", "dsn": pg.dsn("s")}).status_code == 201
    url = c.router_url
    r = requests.post(url + "/v1/query", json={"key": "a", "sql": "SELECT * FROM nowhere"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "sql_error" and err["sqlstate"] == "42P01", err
    assert "nowhere" in err["message"], err
    # a unique violation inside a transaction: which statement, and nothing kept
    r = requests.post(url + "/v1/tx", json={"key": "a", "statements": [
        {"sql": "INSERT INTO u VALUES ($1)", "params": ["x"]},
        {"sql": "INSERT INTO u VALUES ($1)", "params": ["x"]}]})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["sqlstate"] == "23505" and err["statement"] == 1, err
    assert psql(pg.dsn("s"), "SELECT count(*) FROM u") == "0"
