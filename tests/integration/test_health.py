"""Health that tells (issue 14, item 8): shards are probed in the background
every shards.probe_interval_ms; a shard whose probe fails is `unreachable`
in /api/shards/health (503 while an active shard is, 200 with
?strict=false), in /api/shard/{key} (`status`, the lifecycle in `state`)
and in /v1/shards (`health`), with the time of its last good probe; the
health and lookup calls answer from memory, within a second even while a
PostgreSQL shard hangs (SIGSTOP), and the shard comes back after."""
import contextlib
import os
import shutil
import signal
import sqlite3
import time

import requests

from conftest import liveness, wait_until
from pg import make_postgres  # noqa: F401 (fixture)

INTERVAL_MS = 200
DB_TIMEOUT_MS = 1000  # a probe's bound: min(shards.db_timeout_ms, 2000)


def templates(tmp_path):
    d = tmp_path / "templates" / "retail"
    d.mkdir(parents=True)
    (d / "001_items.sql").write_text("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT);\n")
    return str(tmp_path / "templates")


def node(make_citrus, tmp_path):
    return make_citrus(extra=["--shards-probe-interval", str(INTERVAL_MS),
                              "--shard-db-timeout", str(DB_TIMEOUT_MS),
                              "--templates-dir", templates(tmp_path)])


def sqlite_shard(c, tmp_path, sid):
    d = tmp_path / f"dir-{sid}"
    d.mkdir()
    path = d / f"{sid}.db"
    sqlite3.connect(path).close()
    r = requests.post(c.url + "/v1/shards", json={"id": sid, "dsn": f"sqlite://{path}"},
                      timeout=10)
    assert r.status_code == 201, r.text
    return d, path


def remove_dir(d):
    """Removes a shard's directory while the background probes may be
    opening its database (which adds -wal/-shm files between rmtree's listing
    and its rmdir): again until it is gone. SQLite never creates the
    directory itself, so once gone it stays gone."""
    def gone():
        shutil.rmtree(d, ignore_errors=True)
        return not os.path.exists(d)
    wait_until(gone, liveness(5), what=f"{d} removed")


def health(c, query="", timeout=5):
    return requests.get(c.url + "/api/shards/health" + query, timeout=timeout)


def entry(h, sid):
    return next(s for s in h["shards"] if s["shardId"] == sid)


def shard_status(c, sid):
    r = health(c, "?strict=false")
    assert r.status_code == 200, r.text
    return entry(r.json(), sid)["status"]


def register(c, biz, loc):
    r = requests.post(c.url + "/api/register",
                      json={"businessId": biz, "locationId": loc, "businessType": "retail"},
                      timeout=10)
    assert r.status_code == 201, r.text
    return r.json()


def test_an_unreachable_sqlite_shard_shows_everywhere_and_comes_back(make_citrus, tmp_path):
    c = node(make_citrus, tmp_path)
    d1, p1 = sqlite_shard(c, tmp_path, "s1")
    reg = register(c, "acme", "one")  # the only shard: pinned to s1
    assert reg["shardId"] == "s1" and reg["status"] == "active" and reg["state"] == "active", reg
    sqlite_shard(c, tmp_path, "s2")
    # registered shards are probed at once (a kick), then every interval
    wait_until(lambda: health(c).status_code == 200 and health(c).json()["status"] == "healthy",
               liveness(5), what="both shards reachable")
    h = health(c).json()
    assert h["summary"]["reachable"] == 2 and h["summary"]["unreachable"] == 0, h
    one = entry(h, "s1")
    assert one["reachable"] is True and one["state"] == "active" and one["lastOkAt"], one
    assert one["latencyMs"] >= 0 and one["consecutiveFailures"] == 0, one
    ok_before = one["lastOkAt"]

    # the file is no database any more: unreachable within interval + timeout. Its WAL goes
    # too: the registration's pooled connection keeps the WAL open, and a reader finds the
    # pages the WAL holds there first (page 1 included), not in the overwritten file
    p1.write_bytes(b"this is not a database" * 100)
    for side in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(str(p1) + side)
    wait_until(lambda: shard_status(c, "s1") == "unreachable",
               liveness((INTERVAL_MS + DB_TIMEOUT_MS) / 1000 + 2), what="s1 unreachable")
    r = health(c)
    assert r.status_code == 503, r.text  # an active shard is unreachable
    assert r.headers.get("Retry-After"), r.headers
    h = r.json()
    assert h["error"]["code"] == "shard_unreachable" and h["error"]["shards"] == ["s1"], h
    assert h["status"] == "degraded" and h["summary"]["unreachable"] == 1, h
    one = entry(h, "s1")
    assert one["status"] == "unreachable" and one["reachable"] is False, one
    assert one["state"] == "active" and one["error"], one
    assert one["lastOkAt"] and one["lastOkAt"] >= ok_before, one
    assert one["consecutiveFailures"] >= 1 and one["lastProbeAt"] > one["lastOkAt"], one
    assert entry(h, "s2")["status"] == "reachable", h
    # ?strict=false keeps 200 with the same report
    r = health(c, "?strict=false")
    assert r.status_code == 200 and r.json()["status"] == "degraded", r.text
    assert entry(r.json(), "s1")["status"] == "unreachable" and "error" not in r.json()
    # the lookup: status unreachable, the lifecycle state beside it
    r = requests.get(c.url + "/api/shard/acme:one", timeout=5)
    assert r.status_code == 200, r.text
    s = r.json()
    assert s["status"] == "unreachable" and s["state"] == "active" and s["lastOkAt"], s
    # the shard records: a health object
    rec = requests.get(c.url + "/v1/shards/s1", timeout=5).json()
    assert rec["state"] == "active", rec
    assert rec["health"]["status"] == "unreachable" and rec["health"]["reachable"] is False, rec
    assert rec["health"]["last_ok_at"] and rec["health"]["error"], rec
    listed = {x["id"]: x for x in requests.get(c.url + "/v1/shards", timeout=5).json()["shards"]}
    assert listed["s1"]["health"]["status"] == "unreachable", listed
    assert listed["s2"]["health"]["status"] == "reachable", listed
    assert listed["s2"]["health"]["latency_ms"] >= 0, listed
    m = requests.get(c.url + "/metrics", timeout=5).text
    assert 'citrus_shard_reachable{shard="s1"} 0' in m and \
        'citrus_shard_reachable{shard="s2"} 1' in m, m

    # back: a database again
    p1.unlink()
    sqlite3.connect(p1).close()
    wait_until(lambda: health(c).status_code == 200, liveness(5), what="s1 back")
    assert shard_status(c, "s1") == "reachable"
    s = requests.get(c.url + "/api/shard/acme:one", timeout=5).json()
    assert s["status"] == "active" and s["state"] == "active" and "lastOkAt" not in s, s

    # its directory removed: unreachable too
    remove_dir(d1)
    wait_until(lambda: shard_status(c, "s1") == "unreachable",
               liveness((INTERVAL_MS + DB_TIMEOUT_MS) / 1000 + 2), what="s1 gone")
    assert health(c).status_code == 503
    os.makedirs(d1)
    sqlite3.connect(p1).close()
    wait_until(lambda: health(c).status_code == 200, liveness(5), what="s1 back again")


def test_strict_must_be_a_boolean(make_citrus, tmp_path):
    c = node(make_citrus, tmp_path)
    for bad in ("maybe", "2", "TRUE "):
        r = health(c, "?strict=" + bad)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "invalid_argument", r.text
    for good in ("true", "false", "1", "0"):
        assert health(c, "?strict=" + good).status_code == 200


def test_a_shard_out_of_service_does_not_make_503(make_citrus, tmp_path):
    """Only active shards count for the 503: a draining one that is down
    is reported, the answer stays 200."""
    c = node(make_citrus, tmp_path)
    d1, _ = sqlite_shard(c, tmp_path, "s1")
    sqlite_shard(c, tmp_path, "s2")
    r = requests.post(c.url + "/v1/shards/s1/drain", timeout=5)
    assert r.status_code == 200, r.text
    remove_dir(d1)
    wait_until(lambda: shard_status(c, "s1") == "unreachable",
               liveness((INTERVAL_MS + DB_TIMEOUT_MS) / 1000 + 2), what="s1 unreachable")
    r = health(c)
    assert r.status_code == 200 and r.json()["status"] == "degraded", r.text


def test_a_hanging_postgres_shard_never_slows_health_or_lookup(make_citrus, make_postgres,
                                                              tmp_path):
    pg = make_postgres()
    c = node(make_citrus, tmp_path)
    r = requests.post(c.url + "/v1/shards?allow_superuser=true",
                      json={"id": "pg", "dsn": pg.admin_dsn}, timeout=10)
    assert r.status_code == 201, r.text
    register(c, "acme", "pg1")
    wait_until(lambda: health(c).status_code == 200 and shard_status(c, "pg") == "reachable",
               liveness(5), what="pg reachable")
    os.kill(pg.pid, signal.SIGSTOP)
    try:
        stopped = time.monotonic()
        seen = None
        while seen is None:
            t0 = time.monotonic()
            r = health(c, timeout=liveness(1))
            look = requests.get(c.url + "/api/shard/acme:pg1", timeout=liveness(1))
            elapsed = time.monotonic() - t0
            assert elapsed < liveness(2), elapsed  # two calls, each within 1 s
            assert look.status_code == 200, look.text
            if r.status_code == 503:
                seen = time.monotonic() - stopped
                h = r.json()
                assert entry(h, "pg")["status"] == "unreachable" and entry(h, "pg")["lastOkAt"]
                assert look.json()["status"] in ("unreachable", "active"), look.text
            else:
                assert r.status_code == 200, r.text
                assert time.monotonic() - stopped < liveness(
                    (INTERVAL_MS + DB_TIMEOUT_MS) / 1000 + 1.5), "not reported unreachable"
                time.sleep(0.05)
        # reported within interval + probe timeout (and some slack)
        assert seen < liveness((INTERVAL_MS + DB_TIMEOUT_MS) / 1000 + 1.5), seen
        t0 = time.monotonic()
        s = requests.get(c.url + "/api/shard/acme:pg1", timeout=liveness(1)).json()
        assert time.monotonic() - t0 < liveness(1)
        assert s["status"] == "unreachable" and s["state"] == "active", s
        rec = requests.get(c.url + "/v1/shards/pg", timeout=liveness(1)).json()
        assert rec["health"]["status"] == "unreachable", rec
    finally:
        os.kill(pg.pid, signal.SIGCONT)
    wait_until(lambda: health(c).status_code == 200, liveness(10), what="pg back")
    s = requests.get(c.url + "/api/shard/acme:pg1", timeout=5).json()
    assert s["status"] == "active", s


def test_a_deleted_shard_leaves_no_probe_series(make_citrus, tmp_path):
    c = node(make_citrus, tmp_path)
    sqlite_shard(c, tmp_path, "s1")
    sqlite_shard(c, tmp_path, "s2")
    wait_until(lambda: 'citrus_shard_reachable{shard="s2"} 1' in
               requests.get(c.url + "/metrics", timeout=5).text, liveness(5), what="s2 probed")
    for action in ("drain", "retire"):
        r = requests.post(f"{c.url}/v1/shards/s2/{action}", timeout=5)
        assert r.status_code == 200, r.text
    r = requests.delete(c.url + "/v1/shards/s2", timeout=5)
    assert r.status_code == 200, r.text
    # two rounds after the delete (s1 probed again twice) must not bring it back
    for _ in range(2):
        last = entry(health(c).json(), "s1")["lastProbeAt"]
        wait_until(lambda: entry(health(c).json(), "s1")["lastProbeAt"] != last, liveness(5),
                   what="a probe round")
    m = requests.get(c.url + "/metrics", timeout=5).text
    assert 'citrus_shard_reachable{shard="s2"}' not in m, m
    assert 'citrus_shard_reachable{shard="s1"} 1' in m, m
    assert [s["shardId"] for s in health(c).json()["shards"]] == ["s1"]
