"""The router's primary/replica choice (issue 5) on a real PostgreSQL
primary with two streaming replicas the test starts (pg.py): strong reads
and writes go to the primary; eventual reads go round robin to the replicas
whose lag is within max_lag_ms, else to the primary; a paused replica is
left for the primary once its lag passes the bound and comes back once it
has caught up; a replica that goes away costs no failed query."""
import json
import subprocess
import time

import pytest
import requests

from conftest import CITRUS_BIN, wait_until
from pg import make_postgres  # noqa: F401 (fixture)
from test_shards_postgres import psql


def q(c, body):
    r = requests.post(c.router_url + "/v1/query", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def where(c, **extra):
    """(served_by, the answering server's port, whether it is in recovery)."""
    j = q(c, dict({"key": "loc-1", "sql": "SELECT inet_server_port(), pg_is_in_recovery()"},
                  **extra))
    return j["served_by"], j["rows"][0][0], j["rows"][0][1]


def count(c, **extra):
    j = q(c, dict({"key": "loc-1", "sql": "SELECT count(*) FROM t"}, **extra))
    return j["served_by"], j["rows"][0][0]


def wait_received(rep):
    """Until the paused replica has received WAL it has not replayed."""
    wait_until(lambda: psql(rep.admin_dsn, "SELECT pg_last_wal_receive_lsn() > "
                            "pg_last_wal_replay_lsn()") == "t", 10,
               what="the replica to receive the write")


@pytest.fixture
def replicated(make_citrus, make_postgres):
    pg = make_postgres()
    psql(pg.admin_dsn, "CREATE DATABASE shard_a")
    psql(pg.dsn("shard_a"), "CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT)")
    reps = [make_postgres(replica_of=pg), make_postgres(replica_of=pg)]
    for rep in reps:
        wait_until(lambda rep=rep: psql(rep.dsn("shard_a"), "SELECT count(*) FROM t") == "0", 20,
                   what="the replica to have the table")
    c = make_citrus(extra=["--router-max-lag", "5000"])
    r = requests.post(c.url + "/v1/shards?allow_superuser=true", json={
        "id": "pg-a", "dsn": pg.dsn("shard_a"),
        "replicas": [rep.dsn("shard_a") for rep in reps]})
    assert r.status_code == 201, r.text
    return c, pg, reps


def test_consistency_picks_primary_or_replicas(replicated):
    c, pg, reps = replicated
    # strong (the default, and named) reads the primary
    assert where(c) == ("primary", pg.port, False)
    assert where(c, consistency="strong") == ("primary", pg.port, False)
    # eventual reads alternate over both replicas, which are in recovery
    seen = set()
    for _ in range(8):
        served, port, recovering = where(c, consistency="eventual")
        assert served == "replica" and recovering is True
        seen.add(port)
    assert seen == {reps[0].port, reps[1].port}
    # one connection to each replica, both idle now: the replica gauge sums
    # the shard's replica pools (not whichever replica served last)
    m = requests.get(c.router_url + "/metrics", timeout=10).text
    assert ('citrus_router_pool_connections{shard="pg-a",role="replica",state="idle"} 2'
            in m), m
    assert ('citrus_router_pool_connections{shard="pg-a",role="replica",state="in_use"} 0'
            in m), m
    # a write sent with eventual still goes to the primary
    j = q(c, {"key": "loc-1", "sql": "INSERT INTO t VALUES ($1, $2)", "params": ["a", "1"],
              "consistency": "eventual"})
    assert j["served_by"] == "primary" and j["changes"] == 1
    assert psql(pg.dsn("shard_a"), "SELECT v FROM t WHERE k = 'a'") == "1"
    # the row reaches the replicas, and eventual reads see it there
    wait_until(lambda: count(c, consistency="eventual", max_lag_ms=1000) == ("replica", 1), 10,
               what="the replicas to serve the new row")
    # scatter reads can go to replicas too
    j = q(c, {"scatter": True, "sql": "SELECT pg_is_in_recovery() AS r",
              "consistency": "eventual"})
    assert j["rows"] == [[True]]
    j = q(c, {"scatter": True, "sql": "SELECT pg_is_in_recovery() AS r"})
    assert j["rows"] == [[False]]


def test_lagging_replicas_are_left_for_the_primary(replicated):
    c, pg, reps = replicated
    # a standby that has replayed nothing since it started has an unknown
    # lag: too far behind for any bound
    psql(reps[0].admin_dsn, "SELECT pg_wal_replay_pause()")
    psql(reps[1].admin_dsn, "SELECT pg_wal_replay_pause()")
    q(c, {"key": "loc-1", "sql": "INSERT INTO t VALUES ('early', 'x')"})
    for rep in reps:
        wait_received(rep)
    assert count(c, consistency="eventual", max_lag_ms=3_600_000) == ("primary", 1)
    for rep in reps:
        psql(rep.admin_dsn, "SELECT pg_wal_replay_resume()")
    for rep in reps:
        wait_until(lambda rep=rep: psql(rep.dsn("shard_a"), "SELECT count(*) FROM t") == "1", 10,
                   what="the replicas to replay the first row")
    # now paused with a replayed transaction behind them
    for rep in reps:
        psql(rep.admin_dsn, "SELECT pg_wal_replay_pause()")
    q(c, {"key": "loc-1", "sql": "INSERT INTO t VALUES ('late', 'x')"})
    written = time.monotonic()
    for rep in reps:
        wait_received(rep)
    time.sleep(max(0.0, written + 0.4 - time.monotonic()))  # the write is older than 200 ms
    for _ in range(4):
        # within 200 ms: only the primary qualifies, and it has the row
        assert count(c, consistency="eventual", max_lag_ms=200) == ("primary", 2)
    # a generous bound takes a replica, stale as allowed
    assert count(c, consistency="eventual", max_lag_ms=3_600_000) == ("replica", 1)
    assert time.monotonic() - written < 60
    for rep in reps:
        psql(rep.admin_dsn, "SELECT pg_wal_replay_resume()")
    # caught up again: the replicas serve the 200 ms bound once more
    wait_until(lambda: count(c, consistency="eventual", max_lag_ms=200) == ("replica", 2), 10,
               what="the replicas to be back within 200 ms")


def test_a_replica_that_goes_away_costs_no_query(replicated):
    c, pg, reps = replicated
    reps[0].stop()
    for _ in range(10):
        served, port, _ = where(c, consistency="eventual")
        assert served == "replica" and port == reps[1].port
    reps[1].stop()
    for _ in range(4):  # no replica left: the primary answers
        assert where(c, consistency="eventual")[:2] == ("primary", pg.port)


def test_consistency_bad_input(replicated):
    c, _, _ = replicated
    for body, msg in [({"consistency": "linearizable"}, "consistency"),
                      ({"consistency": 1}, "consistency"),
                      ({"consistency": "eventual", "max_lag_ms": -1}, "max_lag_ms"),
                      ({"consistency": "eventual", "max_lag_ms": "5"}, "max_lag_ms"),
                      ({"max_lag_ms": 100}, "max_lag_ms")]:
        r = requests.post(c.router_url + "/v1/query",
                          json=dict({"key": "k", "sql": "SELECT 1"}, **body), timeout=10)
        assert r.status_code == 400, (body, r.text)
        assert msg in r.json()["error"]["message"], r.text


def test_citrus_query_reads_a_replica_when_asked(replicated):
    """`citrus query --consistency eventual` (through libcitrus) reaches a
    replica; without it, the primary."""
    c, pg, reps = replicated
    base = [CITRUS_BIN, "query", "--endpoint", c.url, "--router", c.router_url, "-o", "json"]
    sql = "SELECT pg_is_in_recovery() AS r, inet_server_port() AS port"
    out = subprocess.run(base + ["--consistency", "eventual", "loc-1", sql],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    j = json.loads(out.stdout)
    assert j["served_by"] == "replica" and j["rows"][0][0] is True, j
    assert j["rows"][0][1] in (reps[0].port, reps[1].port), j
    out = subprocess.run(base + ["loc-1", sql], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    j = json.loads(out.stdout)
    assert j["served_by"] == "primary" and j["rows"][0] == [False, pg.port], j
