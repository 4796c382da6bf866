"""Least privilege and row isolation on PostgreSQL shards (issue 13, items 3
and 4; docs/security.md, "PostgreSQL least privilege and row isolation").

The postgres provisioner hands the router and tenants only a per-shard
application role, never its admin DSN; through that role a tenant cannot
DROP or CREATE anything. With the shipped `retail` template, two tenants
on one PostgreSQL shard see and change only their own rows, even when
they ask for the other's (`WHERE location_id = <B's>`, `SELECT *`), and
cannot write a row for the other; scatter queries see every row. A shard
registered with a superuser DSN is refused unless sm-admin allows it."""
import os
import subprocess

import requests

from conftest import shard_settled
from pg import make_postgres  # noqa: F401 (fixture)
from test_auth import audit_rows, call, make_key

PSQL = "/usr/bin/psql"
ADMIN_PW = "adm1n-s3cret-pw"  # trust auth ignores it; it must never show up anywhere


def psql(dsn, sql):
    out = subprocess.run([PSQL, dsn, "-tAc", sql], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def shipped_templates(make_citrus):
    """The templates `citrus dev` ships (it writes them into its data dir)."""
    dev = make_citrus(shards=True)
    dev.stop()
    tdir = os.path.join(dev.data_dir, "templates")
    assert os.path.exists(os.path.join(tdir, "retail", "003_tenant_rls.pg.sql"))
    return tdir


def query(c, body, status=200):
    r = requests.post(c.router_url + "/v1/query", json=body, timeout=30)
    assert r.status_code == status, r.text
    return r.json()


def keyed(c, key, sql, *params, status=200):
    return query(c, {"key": key, "sql": sql, "params": list(params)}, status)


A, B = "acme:north", "globex:south"


def test_tenants_on_one_postgres_shard(make_citrus, make_postgres):
    pg = make_postgres()
    admin_dsn = f"postgresql://postgres:{ADMIN_PW}@127.0.0.1:{pg.port}/postgres"
    tdir = shipped_templates(make_citrus)
    c = make_citrus(extra=["--provisioner", "postgres", "--provisioner-postgres-dsn", admin_dsn,
                           "--templates-dir", tdir])
    r = requests.post(c.url + "/v1/shards", json={"id": "pg-1", "provision": {"template": "retail"}})
    assert r.status_code == 202, r.text
    s = shard_settled(c.url, "pg-1", 30)
    assert s["state"] == "active", s
    owner = pg.dsn("citrus_pg_1")
    assert psql(owner, "SELECT string_agg(name, ',' ORDER BY name) FROM citrus_migrations") == \
        "001_locations.sql,002_orders.sql,003_tenant_rls.pg.sql"
    # the tables are the admin's; the shard's role is a plain login
    assert psql(owner, "SELECT tableowner FROM pg_tables WHERE tablename = 'orders'") == "postgres"
    assert psql(owner, "SELECT rolsuper OR rolcreatedb OR rolcreaterole OR rolbypassrls "
                       "FROM pg_roles WHERE rolname = 'citrus_pg_1_app'") == "f"
    for loc in (A, B):
        biz, place = loc.split(":")
        reg = requests.post(c.url + "/api/register", json={
            "businessId": biz, "locationId": place, "businessType": "retail"})
        assert reg.status_code == 201 and reg.json()["shardId"] == "pg-1", reg.text
        assert ADMIN_PW not in reg.text and "citrus_pg_1_app" in reg.text, reg.text
        keyed(c, loc, "INSERT INTO locations (id, business_id) VALUES ($1, $2)", place, biz)
        keyed(c, loc, "INSERT INTO orders (id, location_id, total_cents) VALUES ($1, $2, $3)",
              "o-" + place, place, 100)
    # the rows carry their tenant, filled from citrus.tenant
    assert psql(owner, "SELECT string_agg(id || '=' || tenant, ',' ORDER BY id) FROM orders") == \
        f"o-north={A},o-south={B}"

    # A sees only A's rows, whatever it asks for
    assert keyed(c, A, "SELECT id FROM orders")["rows"] == [["o-north"]]
    assert keyed(c, A, "SELECT id FROM orders WHERE location_id = $1", "south")["rows"] == []
    assert keyed(c, A, "SELECT id FROM locations")["rows"] == [["north"]]
    assert keyed(c, B, "SELECT * FROM orders")["rows"][0][0] == "o-south"
    assert keyed(c, A, "SELECT count(*) FROM orders")["rows"] == [[1]]
    # ... and changes none of B's
    assert keyed(c, A, "UPDATE orders SET total_cents = 0 WHERE id = $1", "o-south")["changes"] == 0
    assert keyed(c, A, "DELETE FROM orders WHERE location_id = $1", "south")["changes"] == 0
    # a row for B written with A's key is refused, and so is moving A's row to B
    e = keyed(c, A, "INSERT INTO orders (id, location_id, tenant) VALUES ($1, $2, $3)",
              "o-forged", "south", B, status=400)["error"]
    assert e["sqlstate"] == "42501" and "row-level security" in e["message"], e
    e = keyed(c, A, "UPDATE orders SET tenant = $1 WHERE id = $2", B, "o-north",
              status=400)["error"]
    assert e["sqlstate"] == "42501", e
    # a transaction is scoped the same way
    r = requests.post(c.router_url + "/v1/tx", json={"key": A, "statements": [
        {"sql": "UPDATE orders SET status = $1", "params": ["paid"]},
        {"sql": "SELECT id, status FROM orders"}]}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["results"][1]["rows"] == [["o-north", "paid"]], r.text
    assert psql(owner, "SELECT status FROM orders WHERE id = 'o-south'") == "open"
    # a tenant cannot change its scope: set_config() and DO are refused
    # before anything runs (without that, the second statement sees B's rows)
    for stmts in ([{"sql": "SELECT set_config('citrus.tenant', $1, true)", "params": [B]},
                   {"sql": "SELECT id FROM orders ORDER BY id"}],
                  [{"sql": "SELECT \"set_config\"('citrus.scatter', 'on', true)"},
                   {"sql": "SELECT id FROM orders ORDER BY id"}],
                  [{"sql": "DO $$ BEGIN PERFORM set_config('citrus.tenant', 'x', true); END $$"}],
                  [{"sql": "SET LOCAL citrus.tenant = 'globex:south'"},
                   {"sql": "SELECT id FROM orders ORDER BY id"}]):
        r = requests.post(c.router_url + "/v1/tx", json={"key": A, "statements": stmts},
                          timeout=30)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "statement_not_allowed", r.text
    e = keyed(c, A, "SELECT id FROM orders WHERE set_config('citrus.tenant', $1, true) <> ''",
              B, status=400)["error"]
    assert e["code"] == "statement_not_allowed", e
    # scatter runs without a tenant and sees every row
    j = query(c, {"scatter": True, "sql": "SELECT count(*) AS n FROM orders",
                  "aggregate": ["count"]})
    assert j["rows"] == [[2]], j

    # through the tenant's role nothing can be dropped or created
    for sql in ("DROP TABLE orders", "CREATE TABLE mine (x INT)", "TRUNCATE orders",
                "ALTER TABLE orders DISABLE ROW LEVEL SECURITY",
                "ALTER TABLE orders NO FORCE ROW LEVEL SECURITY", "DROP POLICY tenant_rows ON orders",
                "CREATE ROLE mine"):
        e = keyed(c, A, sql, status=400)["error"]
        assert e["sqlstate"] == "42501", (sql, e)
    assert psql(owner, "SELECT count(*) FROM orders") == "2"
    keyed(c, A, "CREATE DATABASE mine", status=400)  # (in a transaction it cannot even start)

    # the admin DSN never leaves the provisioner
    seen = [requests.get(c.url + p, timeout=10).text for p in (
        "/v1/shards", "/v1/shards/pg-1", f"/v1/route/{A}", f"/api/shard/{A}", "/v1/snapshot",
        "/v1/kv/citrus/shards/pg-1", "/v1/kv/citrus/?prefix=true", "/v1/cluster")]
    for text in seen + [c.stderr(), open(c.stdout_path, errors="replace").read()]:
        assert ADMIN_PW not in text
    assert "citrus_pg_1_app" in seen[1]


def test_superuser_dsn_refused(make_citrus, make_postgres):
    pg = make_postgres()
    psql(pg.admin_dsn, "CREATE DATABASE existing")
    c = make_citrus(mode="server", extra=["--auth", "api_key"])
    admin = requests.post(c.url + "/v1/auth/bootstrap").json()["key"]
    oper = make_key(c.url, admin, "oper", ["sm-operator"])["key"]
    body = {"id": "su", "dsn": pg.dsn("existing")}
    r = call(c.url, "POST", "/v1/shards", body, admin)
    assert r.status_code == 400 and r.json()["error"]["code"] == "superuser_not_allowed", r.text
    assert "postgres@" not in r.text  # named, never shown
    # and as a replica
    psql(pg.admin_dsn, "CREATE ROLE plain LOGIN; GRANT CONNECT ON DATABASE existing TO plain")
    plain = f"postgresql://plain@127.0.0.1:{pg.port}/existing"
    r = call(c.url, "POST", "/v1/shards", {"id": "su", "dsn": plain,
                                           "replicas": [pg.dsn("existing")]}, admin)
    assert r.status_code == 400 and "replicas[0]" in r.json()["error"]["message"], r.text
    # only sm-admin may allow it
    r = call(c.url, "POST", "/v1/shards?allow_superuser=true", body, oper)
    assert r.status_code == 403, r.text
    assert call(c.url, "GET", "/v1/shards/su", None, admin).status_code == 404
    r = call(c.url, "POST", "/v1/shards?allow_superuser=true", body, admin)
    assert r.status_code == 201, r.text
    rows = audit_rows(c.url, admin, "&action=shard.create.allow_superuser")
    assert [(x["target"], x["status"]) for x in rows] == [("su", 201)], rows
    # a least-privilege role is fine without it (on another database: "existing" is su's)
    r = call(c.url, "POST", "/v1/shards", {"id": "lp", "dsn": plain}, admin)
    assert r.status_code == 409 and "'su'" in r.json()["error"]["message"], r.text
    psql(pg.admin_dsn, "CREATE DATABASE other")
    psql(pg.admin_dsn, "GRANT CONNECT ON DATABASE other TO plain")
    other = f"postgresql://plain@127.0.0.1:{pg.port}/other"
    r = call(c.url, "POST", "/v1/shards", {"id": "lp", "dsn": other}, admin)
    assert r.status_code == 201, r.text
