"""Bounded work on the router (issue 13, item 7).

The attack: eight clients each send a long statement and stop waiting
after a second (`curl -m 1`). Without a defence each statement ran on,
holding its pool connection, so every later query on the shard got 503
pool_exhausted until they ended (never, for an endless recursive CTE).

The defence: while a statement runs the router watches its client's
socket; a client that went away has its statement cancelled (PostgreSQL: a
cancel request; SQLite: interrupted) and the connection goes back to the
pool at once, so the next query runs within a second. Every statement has
a default time limit (router.query_timeout_ms, 30 s) and a request may not
ask for more than router.max_query_timeout_ms (10 min): 400."""
import json
import socket
import subprocess
import threading
import time
from urllib.parse import urlparse

import requests

from conftest import CITRUS_BIN, liveness, wait_until
from pg import make_postgres  # noqa: F401 (fixture)
from test_shards_postgres import psql

ENDLESS = ("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) "
           "SELECT count(*) FROM n")
POOL = 4
ABANDONED = 8


def q(c, body, path="/v1/query", timeout=30):
    return requests.post(c.router_url + path, json=body, timeout=timeout)


def send_and_abandon(url, body, n, wait_s=1.0):
    """What `curl -m 1` does n times at once: sends the request, waits
    wait_s for an answer that does not come, and closes the connection."""
    u = urlparse(url)
    data = json.dumps(body).encode()
    req = (f"POST /v1/query HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\n"
           f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
           ).encode() + data
    socks = [socket.create_connection((u.hostname, u.port), timeout=5) for _ in range(n)]
    for s in socks:
        s.sendall(req)
    time.sleep(wait_s)  # the clients' own timeout, not a wait for the server
    for s in socks:
        s.settimeout(0)
        try:
            got = s.recv(1)
        except BlockingIOError:
            got = None
        assert got is None, "a long statement answered before its client gave up"
        s.close()


def cancelled(c, shard_id):
    m = requests.get(c.router_url + "/metrics", timeout=10).text
    want = f'citrus_router_queries_total{{shard="{shard_id}",role="primary",outcome="cancelled"}}'
    for line in m.splitlines():
        if line.startswith(want + " "):
            return int(float(line.split()[-1]))
    return 0


def next_query_is_served(c, key, started, bound_s=1.0):
    """The liveness the issue names: the next query runs within a second of
    the clients going away (stretched under sanitizers; the pool would stay
    full for the statements' whole run without the defence, and this query
    would fail with pool_exhausted)."""
    r = q(c, {"key": key, "sql": "SELECT 1 AS one"}, timeout=10)
    took = time.monotonic() - started
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == [[1]], r.text
    assert took < liveness(bound_s), f"the next query took {took:.2f}s after the clients went away"
    return took


def test_sqlite_abandoned_statements_are_interrupted(make_citrus):
    c = make_citrus(shards=True, extra=["--router-pool-size", str(POOL),
                                        "--router-pool-wait", "5000"])
    sid = requests.get(c.url + "/v1/route/k", timeout=10).json()["shard_id"]
    send_and_abandon(c.router_url, {"key": "k", "sql": ENDLESS}, ABANDONED)
    took = next_query_is_served(c, "k", time.monotonic())
    print(f"sqlite: next query {took:.3f}s after {ABANDONED} clients went away")
    # every one of them was interrupted, also those that had waited for a
    # connection: none runs on
    wait_until(lambda: cancelled(c, sid) == ABANDONED, 5,
               what=f"{ABANDONED} statements counted as cancelled")
    for _ in range(POOL):  # the whole pool serves again
        assert q(c, {"key": "k", "sql": "SELECT 2 AS two"}).json()["rows"] == [[2]]


def test_postgres_abandoned_statements_are_cancelled(make_citrus, make_postgres):
    pg = make_postgres()
    psql(pg.admin_dsn, "CREATE DATABASE s")
    c = make_citrus(extra=["--router-pool-size", str(POOL), "--router-pool-wait", "5000"])
    assert requests.post(c.url + "/v1/shards?allow_superuser=true", json={"id": "s", "dsn": pg.dsn("s")},
                         timeout=30).status_code == 201
    sleeping = ("SELECT count(*) FROM pg_stat_activity "
                "WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'")
    u = urlparse(c.router_url)

    def abandon():
        send_and_abandon(c.router_url, {"key": "a", "sql": "SELECT pg_sleep(30)"}, ABANDONED)

    # the pool is full while the clients wait: POOL statements run on the
    # server, the others wait for a connection
    t = threading.Thread(target=abandon)
    t.start()
    wait_until(lambda: psql(pg.admin_dsn, sleeping) == str(POOL), 5,
               what=f"{POOL} pg_sleep running")
    t.join()
    took = next_query_is_served(c, "a", time.monotonic())
    print(f"postgres: next query {took:.3f}s after {ABANDONED} clients went away")
    # no abandoned statement is left running on the server
    wait_until(lambda: psql(pg.admin_dsn, sleeping) == "0", 2, what="no pg_sleep left")
    wait_until(lambda: cancelled(c, "s") == ABANDONED, 5,
               what=f"{ABANDONED} statements counted as cancelled")
    # inside a transaction: rolled back, nothing of it kept
    psql(pg.dsn("s"), "CREATE TABLE t (a INTEGER)")
    tx = {"key": "a", "statements": [{"sql": "INSERT INTO t VALUES (1)"},
                                     {"sql": "SELECT pg_sleep(30)"}]}
    data = json.dumps(tx).encode()
    sock = socket.create_connection((u.hostname, u.port))
    sock.sendall((f"POST /v1/tx HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
                  ).encode() + data)
    wait_until(lambda: psql(pg.admin_dsn, sleeping) == "1", 5, what="the transaction's pg_sleep")
    sock.close()
    wait_until(lambda: psql(pg.admin_dsn, sleeping) == "0", 2, what="the transaction cancelled")
    assert psql(pg.dsn("s"), "SELECT count(*) FROM t") == "0"
    assert q(c, {"key": "a", "sql": "SELECT 3 AS three"}).json()["rows"] == [[3]]


def test_default_timeout_bounds_every_statement(make_citrus):
    """A request that names no timeout_ms gets router.query_timeout_ms:
    an unbounded CTE is stopped (504 query_timeout), in /v1/query, in
    /v1/tx and in a scatter."""
    c = make_citrus(shards=True, extra=["--router-query-timeout", "300"])
    for path, body in (("/v1/query", {"key": "k", "sql": ENDLESS}),
                       ("/v1/query", {"scatter": True, "sql": ENDLESS}),
                       ("/v1/tx", {"key": "k", "statements": [{"sql": ENDLESS}]})):
        t0 = time.monotonic()
        r = q(c, body, path)
        assert r.status_code == 504, (path, r.text)
        assert r.json()["error"]["code"] == "query_timeout", r.text
        assert "timeout of 300 ms" in r.json()["error"]["message"], r.text
        assert time.monotonic() - t0 < 10


def test_max_timeout_a_request_may_ask_for(make_citrus):
    c = make_citrus(shards=True, extra=["--router-query-timeout", "500",
                                        "--router-max-query-timeout", "2000"])
    for path, body in (("/v1/query", {"key": "k", "sql": "SELECT 1 AS one"}),
                       ("/v1/query", {"scatter": True, "sql": "SELECT 1 AS one"}),
                       ("/v1/tx", {"key": "k", "statements": [{"sql": "SELECT 1 AS one"}]})):
        r = q(c, {**body, "timeout_ms": 2001}, path)
        assert r.status_code == 400, (path, r.text)
        e = r.json()["error"]
        assert e["code"] == "bad_json", e
        assert "timeout_ms" in e["message"] and "router.max_query_timeout_ms" in e["message"], e
        assert "2000" in e["message"], e
        r = q(c, {**body, "timeout_ms": 2000}, path)
        assert r.status_code == 200, (path, r.text)


def test_default_over_the_maximum_is_refused(tmp_path):
    p = subprocess.run([CITRUS_BIN, "dev", "--data-dir", str(tmp_path / "d"),
                        "--listen", "127.0.0.1:0", "--router-listen", "127.0.0.1:0",
                        "--router-query-timeout", "3000", "--router-max-query-timeout", "2000"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, p.stderr
    assert "router.query_timeout_ms" in p.stderr and "router.max_query_timeout_ms" in p.stderr
