"""Shards on a real PostgreSQL (a private server the test starts, see
pg.py): the postgres provisioner creates a database per shard and the
schema template is applied to it; an existing PostgreSQL database is
registered after a connection check, and an unreachable one is refused."""
import socket
import subprocess

import requests

from conftest import shard_settled, wait_until
from pg import make_postgres  # noqa: F401 (fixture)

PSQL = "/usr/bin/psql"


def psql(dsn, sql):
    out = subprocess.run([PSQL, dsn, "-tAc", sql], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_postgres_provisioner_and_templates(make_citrus, make_postgres, tmp_path):
    pg = make_postgres()
    tdir = tmp_path / "templates" / "retail"
    tdir.mkdir(parents=True)
    (tdir / "001_orders.sql").write_text(
        "CREATE TABLE orders (id BIGSERIAL PRIMARY KEY, location_id TEXT NOT NULL);\n"
        "CREATE INDEX orders_location ON orders (location_id);\n")
    c = make_citrus(mode="server", extra=[
        "--provisioner", "postgres", "--provisioner-postgres-dsn", pg.admin_dsn,
        "--templates-dir", str(tmp_path / "templates")])
    r = requests.post(c.url + "/v1/shards", json={"id": "pg-1", "provision": {"template": "retail"}})
    assert r.status_code == 202, r.text
    s = shard_settled(c.url, "pg-1", 30)
    assert s["state"] == "active", s
    # the shard's DSN logs in as its application role, not as the admin
    assert s["dsn"].startswith("postgresql://citrus_pg_1_app:"), s["dsn"]
    assert s["dsn"].endswith(f"@127.0.0.1:{pg.port}/citrus_pg_1"), s["dsn"]
    assert psql(pg.admin_dsn, "SELECT count(*) FROM pg_database WHERE datname = 'citrus_pg_1'") \
        == "1"
    owner = pg.dsn("citrus_pg_1")
    assert psql(owner, "SELECT name FROM citrus_migrations") == "001_orders.sql"
    assert psql(owner, "SELECT count(*) FROM orders") == "0"
    # the only active shard takes the registration; the template is already there
    reg = requests.post(c.url + "/api/register", json={"businessId": "b", "locationId": "l",
                                                       "businessType": "retail"})
    assert reg.status_code == 201, reg.text
    # the tenant gets the credentials it needs: the revealed DSN (the listing masks it)
    full = requests.get(c.url + "/v1/shards/pg-1?reveal=true", timeout=10).json()["dsn"]
    assert full.startswith("postgresql://citrus_pg_1_app:") and "***" not in full, full
    assert reg.json()["shardId"] == "pg-1" and reg.json()["connectionString"] == full
    # an existing database: checked by connecting
    psql(pg.admin_dsn, "CREATE DATABASE existing")
    spec = {"id": "pg-2", "dsn": pg.dsn("existing"), "template": "retail"}
    r = requests.post(c.url + "/v1/shards", json=spec)  # the superuser: refused
    assert r.status_code == 400 and r.json()["error"]["code"] == "superuser_not_allowed", r.text
    r = requests.post(c.url + "/v1/shards?allow_superuser=true", json=spec)
    assert r.status_code == 201, r.text
    assert psql(pg.dsn("existing"), "SELECT count(*) FROM citrus_migrations") == "1"
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    r = requests.post(c.url + "/v1/shards",
                      json={"id": "pg-3", "dsn": f"postgresql://postgres@127.0.0.1:{dead}/x"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "unreachable", r.text
    # health answers from the background probes: a new shard is probed at once
    def health_when(code, field, n):
        r = requests.get(c.url + "/api/shards/health", timeout=5)
        ok = r.status_code == code and r.json()["summary"][field] == n
        return r.json() if ok else None
    h = wait_until(lambda: health_when(200, "reachable", 2), what="both shards probed")
    assert h["status"] == "healthy", h
    # a stopped server shows in the health report (503: active shards are down)
    pg.stop()
    h = wait_until(lambda: health_when(503, "unreachable", 2), what="both shards unreachable")
    assert h["status"] == "degraded", h
    assert all(not x["reachable"] and x["error"] for x in h["shards"])
