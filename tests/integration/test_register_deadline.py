"""Registrations answer within server.request_deadline_ms (issue 14, item
7): a PostgreSQL shard that does not answer (SIGSTOP) makes POST
/api/register and /api/register/batch answer 503 shard_unreachable with
Retry-After before the deadline, with nothing pinned, and the same
registration succeeds once the shard answers again; registrations reuse
pooled control-plane connections; bad deadlines are refused at start."""
import os
import signal
import subprocess
import time

import pytest
import requests

from conftest import CITRUS_BIN, liveness
from pg import make_postgres  # noqa: F401 (fixture)

PSQL = "/usr/bin/psql"
DEADLINE_MS = 1500
TEMPLATE = "CREATE TABLE orders (id INTEGER PRIMARY KEY, location_id TEXT NOT NULL);\n"


def psql(dsn, sql):
    out = subprocess.run([PSQL, dsn, "-tAc", sql], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def children(pid):
    """The pids whose parent is pid (a postmaster's backends and workers)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(d))
    return out


class Stopped:
    """SIGSTOPs the postmaster (and, with whole, every process of the
    server); SIGCONT on exit whatever happens."""

    def __init__(self, pg, whole=False):
        self.pids = [pg.pid] + (children(pg.pid) if whole else [])

    def __enter__(self):
        for p in self.pids:
            os.kill(p, signal.SIGSTOP)
        return self

    def __exit__(self, *exc):
        for p in self.pids:
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass


def timed(fn):
    t0 = time.monotonic()
    r = fn()
    return r, time.monotonic() - t0


def locations_on(url, biz, shard, n, start=0):
    """n location ids of biz whose key the ring gives to shard."""
    out, i = [], start
    while len(out) < n:
        i += 1
        assert i < start + 5000, "no key lands on " + shard
        j = requests.get(f"{url}/v1/route/{biz}:loc-{i}", timeout=10).json()
        if j["shard_id"] == shard:
            out.append(f"loc-{i}")
    return out


@pytest.fixture
def setup(make_citrus, make_postgres, tmp_path):
    pg = make_postgres()
    tdir = tmp_path / "templates" / "retail"
    tdir.mkdir(parents=True)
    (tdir / "001_orders.sql").write_text(TEMPLATE)
    c = make_citrus(shards=True, extra=["--templates-dir", str(tmp_path / "templates"),
                                        "--request-deadline", str(DEADLINE_MS)])
    psql(pg.admin_dsn, "CREATE DATABASE shard1")
    r = requests.post(c.url + "/v1/shards?allow_superuser=true",
                      json={"id": "pg-1", "dsn": pg.dsn("shard1")}, timeout=30)
    assert r.status_code == 201, r.text
    return c, pg


def register(url, biz, loc):
    return requests.post(url + "/api/register", timeout=30,
                         json={"businessId": biz, "locationId": loc, "businessType": "retail"})


def assert_shard_down(r, elapsed):
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "shard_unreachable", r.text
    assert r.headers.get("Retry-After") == "1", r.headers
    # strictly within the deadline (the request's own, not the client's)
    assert elapsed < liveness(DEADLINE_MS / 1000), elapsed
    assert "password" not in r.text


def test_stopped_postmaster_is_503_before_the_deadline_then_registers(setup):
    c, pg = setup
    [loc] = locations_on(c.url, "b1", "pg-1", 1)
    # no control-plane connection to it yet: the connect itself must end in time
    # (the kernel accepts the TCP connection; the startup packet gets no answer)
    with Stopped(pg):
        r, elapsed = timed(lambda: register(c.url, "b1", loc))
        assert_shard_down(r, elapsed)
        assert "pg-1" in r.json()["error"]["message"]
        # nothing pinned
        assert requests.get(f"{c.url}/api/shard/b1:{loc}", timeout=10).status_code == 404
    r = register(c.url, "b1", loc)
    assert r.status_code == 201, r.text
    assert r.json()["shardId"] == "pg-1"
    assert psql(pg.dsn("shard1"), "SELECT name FROM citrus_migrations") == "001_orders.sql"


def test_stopped_server_with_pooled_connections_is_503_before_the_deadline(setup):
    c, pg = setup
    locs = locations_on(c.url, "b2", "pg-1", 3)
    assert register(c.url, "b2", locs[0]).status_code == 201  # a pooled connection now
    # the whole server stopped: the pooled connection's backend does not answer either
    with Stopped(pg, whole=True):
        r, elapsed = timed(lambda: register(c.url, "b2", locs[1]))
        assert_shard_down(r, elapsed)
        assert requests.get(f"{c.url}/api/shard/b2:{locs[1]}", timeout=10).status_code == 404
    r = register(c.url, "b2", locs[1])
    assert r.status_code == 201, r.text
    # and the given-up connection was not put back to poison the next one
    assert register(c.url, "b2", locs[2]).status_code == 201


def test_batch_with_a_location_on_a_stopped_shard_applies_nothing(setup):
    c, pg = setup
    on_pg = locations_on(c.url, "b3", "pg-1", 1)
    on_lite = locations_on(c.url, "b3", "shard-0", 2)
    body = {"businessId": "b3", "locations": [
        {"locationId": on_lite[0], "businessType": "retail"},
        {"locationId": on_pg[0], "businessType": "retail"},
        {"locationId": on_lite[1], "businessType": "retail"}]}
    with Stopped(pg):
        r, elapsed = timed(lambda: requests.post(c.url + "/api/register/batch", json=body,
                                                 timeout=30))
        assert_shard_down(r, elapsed)
        for loc in on_pg + on_lite:
            assert requests.get(f"{c.url}/api/shard/b3:{loc}", timeout=10).status_code == 404
    r = requests.post(c.url + "/api/register/batch", json=body, timeout=30)
    assert r.status_code == 201, r.text
    assert [x["shardId"] for x in r.json()["results"]] == ["shard-0", "pg-1", "shard-0"]


def opened(url, shard):
    text = requests.get(url + "/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith('citrus_shard_control_connections_opened_total{shard="%s"}' % shard):
            return float(line.split()[-1])
    return 0.0


def test_registrations_reuse_pooled_connections(setup):
    c, pg = setup
    locs = locations_on(c.url, "b4", "pg-1", 12)
    for loc in locs:
        r = register(c.url, "b4", loc)
        assert r.status_code == 201, r.text
    # one connection serves them one after the other (a pool holds at most 4)
    n = opened(c.url, "pg-1")
    assert 1 <= n <= 4, n
    # the template was applied once and is known: the database shows one row
    assert psql(pg.dsn("shard1"), "SELECT count(*) FROM citrus_migrations") == "1"
    # a retired shard's pool goes with it (its backends disconnect)
    for action in ("drain", "retire"):
        r = requests.post(f"{c.url}/v1/shards/pg-1/{action}?force=true", timeout=10)
        assert r.status_code == 200, r.text

    def backends():
        return int(psql(pg.admin_dsn, "SELECT count(*) FROM pg_stat_activity "
                                      "WHERE datname = 'shard1'"))
    deadline = time.monotonic() + liveness(5)
    while backends() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert backends() == 0


@pytest.mark.parametrize("value", ["0", "99", "600001", "abc", "-1"])
def test_bad_request_deadline_refused_at_start(tmp_path, value):
    r = subprocess.run([CITRUS_BIN, "dev", "--data-dir", str(tmp_path / "d"),
                        "--listen", "127.0.0.1:0", "--router-listen", "off",
                        "--request-deadline", value],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "request_deadline_ms" in r.stderr or "request-deadline" in r.stderr, r.stderr


def test_concurrent_first_registrations_on_a_fresh_shard_all_succeed(setup):
    """The first registrations of a type on a shard race to apply its
    template: one applies it, the others wait for it and then find it
    applied (no 422 for losing the race on citrus_migrations' key)."""
    import concurrent.futures
    c, pg = setup
    locs = locations_on(c.url, "b5", "pg-1", 8)
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        codes = list(ex.map(lambda loc: register(c.url, "b5", loc), locs))
    assert [r.status_code for r in codes] == [201] * 8, [r.text for r in codes]
    assert psql(pg.dsn("shard1"), "SELECT count(*) FROM citrus_migrations") == "1"
