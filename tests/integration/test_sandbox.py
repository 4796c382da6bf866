"""The SQL sandbox (issue 13, items 1 and 2), each attack of the issue
through the real router over HTTP.

SQLite shards (`citrus dev`): ATTACH of the catalog then UPDATE cat.kv,
ATTACH of another shard's file, VACUUM INTO, PRAGMA writable_schema and
journal_mode, load_extension and DROP TABLE are 403 statement_not_allowed
naming what was refused, and none of them took effect. Transaction and
session statements (COMMIT inside /v1/tx, SET, ...) are 400
statement_not_allowed before anything of the request runs, so /v1/tx stays
all or nothing, on SQLite and on a real PostgreSQL shard; a second
statement in one text cannot smuggle them either."""
import os
import sqlite3

import pytest
import requests

from pg import make_postgres  # noqa: F401 (fixture)
from test_shards_postgres import psql


@pytest.fixture
def dev(make_citrus):
    return make_citrus(shards=True)


def q(c, body, path="/v1/query"):
    return requests.post(c.router_url + path, json=body, timeout=30)


def ok(r):
    assert r.status_code == 200, r.text
    return r.json()


def refused(r, status, what):
    """r is statement_not_allowed with status, its message naming what."""
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == "statement_not_allowed", err
    assert what in err["message"], err
    return err


def shard_files(c):
    shards = requests.get(c.url + "/v1/shards").json()["shards"]
    return {s["id"]: s["dsn"][len("sqlite://"):] for s in shards}


def shard_of(c, key):
    return requests.get(c.url + "/v1/route/" + key).json()["shard_id"]


def key_on_other_shard(c, key):
    mine = shard_of(c, key)
    for i in range(200):
        k = f"other-{i}"
        if shard_of(c, k) != mine:
            return k
    raise AssertionError("every key on one shard")


def test_attach_the_catalog_and_update_it(dev):
    catalog = os.path.join(dev.data_dir, "catalog.db")
    assert os.path.exists(catalog)
    assert requests.put(dev.url + "/v1/kv/app/flag", data=b"safe").status_code == 200
    refused(q(dev, {"key": "t", "sql": f"ATTACH DATABASE '{catalog}' AS cat"}), 403,
            "ATTACH is not allowed on a shard")
    r = q(dev, {"key": "t", "sql": "UPDATE cat.kv SET value = $1", "params": ["pwned"]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "sql_error", r.text
    assert requests.get(dev.url + "/v1/kv/app/flag").content == b"safe"
    # in a transaction, and hidden behind a first statement, the same
    refused(q(dev, {"key": "t", "statements": [
        {"sql": "SELECT 1"}, {"sql": f"ATTACH '{catalog}' AS cat"}]}, "/v1/tx"), 403, "ATTACH")
    r = q(dev, {"key": "t", "sql": f"SELECT 1; ATTACH '{catalog}' AS cat"})
    assert r.status_code == 400 and "one statement" in r.json()["error"]["message"], r.text
    assert requests.get(dev.url + "/v1/kv/app/flag").content == b"safe"


def test_attach_another_shards_file(dev):
    files = shard_files(dev)
    other_key = key_on_other_shard(dev, "mine")
    other = files[shard_of(dev, other_key)]
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE secret (v TEXT)")
        db.execute("INSERT INTO secret VALUES ('s3cr3t')")
    refused(q(dev, {"key": "mine", "sql": f"ATTACH '{other}' AS x"}), 403, "ATTACH")
    r = q(dev, {"key": "mine", "sql": "SELECT v FROM x.secret"})
    assert r.status_code == 400 and "s3cr3t" not in r.text, r.text
    refused(q(dev, {"key": "mine", "sql": "DETACH x"}), 403, "DETACH")


def test_vacuum_into_makes_no_file(dev, tmp_path):
    target = tmp_path / "stolen.db"
    refused(q(dev, {"key": "t", "sql": f"VACUUM INTO '{target}'"}), 403,
            "VACUUM is not allowed on a shard")
    refused(q(dev, {"key": "t", "sql": "/* hi */ vacuum"}), 403, "VACUUM")
    assert not target.exists()


def test_pragmas_that_write(dev):
    ok(q(dev, {"key": "t", "sql": "CREATE TABLE p (x INTEGER)"}))
    refused(q(dev, {"key": "t", "sql": "PRAGMA writable_schema=ON"}), 403,
            "PRAGMA writable_schema")
    refused(q(dev, {"key": "t", "sql": "PRAGMA journal_mode=OFF"}), 403, "PRAGMA journal_mode")
    refused(q(dev, {"key": "t", "sql": "PRAGMA foreign_keys=OFF"}), 403, "PRAGMA foreign_keys")
    # what only reads is allowed
    assert ok(q(dev, {"key": "t", "sql": "PRAGMA journal_mode"}))["rows"] == [["wal"]]
    assert ok(q(dev, {"key": "t", "sql": "PRAGMA foreign_keys"}))["rows"] == [[1]]
    cols = ok(q(dev, {"key": "t", "sql": "PRAGMA table_info(p)"}))
    assert [row[1] for row in cols["rows"]] == ["x"]
    path = shard_files(dev)[shard_of(dev, "t")]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_load_extension(dev):
    refused(q(dev, {"key": "t", "sql": "SELECT load_extension('/tmp/evil.so')"}), 403,
            "load_extension() is not allowed on a shard")


def test_drop_and_alter_through_the_router(dev):
    ok(q(dev, {"scatter": True, "sql": "CREATE TABLE keep (x INTEGER)"}))
    ok(q(dev, {"key": "t", "sql": "INSERT INTO keep VALUES (1)"}))
    refused(q(dev, {"key": "t", "sql": "DROP TABLE keep"}), 403, "DROP TABLE")
    refused(q(dev, {"scatter": True, "sql": "DROP TABLE keep"}), 403, "DROP TABLE")
    refused(q(dev, {"key": "t", "sql": "ALTER TABLE keep RENAME TO gone"}), 403, "ALTER TABLE")
    refused(q(dev, {"key": "t", "sql": "CREATE TEMP TRIGGER tr AFTER INSERT ON keep "
                                       "BEGIN DELETE FROM keep; END"}), 403, "CREATE TRIGGER")
    assert ok(q(dev, {"key": "t", "sql": "SELECT x FROM keep"}))["rows"] == [[1]]


def test_foreign_keys_are_enforced(dev):
    ok(q(dev, {"key": "t", "sql": "CREATE TABLE parent (id TEXT PRIMARY KEY)"}))
    ok(q(dev, {"key": "t", "sql": "CREATE TABLE child (p TEXT REFERENCES parent (id))"}))
    r = q(dev, {"key": "t", "sql": "INSERT INTO child VALUES ('nowhere')"})
    assert r.status_code == 400 and "FOREIGN KEY" in r.text, r.text
    ok(q(dev, {"key": "t", "sql": "INSERT INTO parent VALUES ('a')"}))
    ok(q(dev, {"key": "t", "sql": "INSERT INTO child VALUES ('a')"}))


TX_ATTACK = [
    {"sql": "INSERT INTO acct VALUES ('a', 1)"},
    {"sql": "COMMIT"},
    {"sql": "INSERT INTO acct VALUES ('b', 2)"},
    {"sql": "INSERT INTO nosuch VALUES (1)"},
]


def rows(c, key):
    return ok(q(c, {"key": key, "sql": "SELECT id FROM acct ORDER BY id"}))["rows"]


def test_commit_inside_tx_persists_nothing_sqlite(dev):
    ok(q(dev, {"key": "t", "sql": "CREATE TABLE acct (id TEXT PRIMARY KEY, v INTEGER)"}))
    err = refused(q(dev, {"key": "t", "statements": TX_ATTACK}, "/v1/tx"), 400, "COMMIT")
    assert err["statement"] == 1, err
    assert rows(dev, "t") == []
    # every transaction verb, and behind comments or a first statement
    for sql in ("BEGIN", "begin immediate", "END", "ROLLBACK", "SAVEPOINT s", "RELEASE s",
                "ROLLBACK TO s", "-- x\n/* y */ Commit", "SELECT 1; COMMIT"):
        refused(q(dev, {"key": "t", "statements": [
            {"sql": "INSERT INTO acct VALUES ('c', 3)"}, {"sql": sql}]}, "/v1/tx"), 400, "")
        refused(q(dev, {"key": "t", "sql": sql}), 400, "is not allowed")
    assert rows(dev, "t") == []
    # a failing statement after others undoes them all
    r = q(dev, {"key": "t", "statements": [TX_ATTACK[0], TX_ATTACK[2], TX_ATTACK[3]]}, "/v1/tx")
    assert r.status_code == 400 and r.json()["error"]["statement"] == 2, r.text
    assert rows(dev, "t") == []


@pytest.fixture
def pg_router(make_citrus, make_postgres):
    pg = make_postgres()
    psql(pg.admin_dsn, "CREATE DATABASE s")
    psql(pg.dsn("s"), "CREATE TABLE acct (id TEXT PRIMARY KEY, v INT)")
    c = make_citrus(extra=["--router-pool-size", "1"])
    r = requests.post(c.url + "/v1/shards?allow_superuser=true", json={"id": "s", "dsn": pg.dsn("s")})
    assert r.status_code == 201, r.text
    return c, pg


def test_commit_inside_tx_persists_nothing_postgres(pg_router):
    c, pg = pg_router
    err = refused(q(c, {"key": "t", "statements": TX_ATTACK}, "/v1/tx"), 400, "COMMIT")
    assert err["statement"] == 1, err
    for sql in ("START TRANSACTION", "ABORT", "PREPARE TRANSACTION 'x'", "COMMIT PREPARED 'x'",
                "ROLLBACK PREPARED 'x'", "END", "SELECT 1; COMMIT"):
        refused(q(c, {"key": "t", "statements": [{"sql": sql}]}, "/v1/tx"), 400, "")
    assert psql(pg.dsn("s"), "SELECT count(*) FROM acct") == "0"
    r = q(c, {"key": "t", "statements": [TX_ATTACK[0], TX_ATTACK[2], TX_ATTACK[3]]}, "/v1/tx")
    assert r.status_code == 400 and r.json()["error"]["statement"] == 2, r.text
    assert psql(pg.dsn("s"), "SELECT count(*) FROM acct") == "0"
    # a second statement in one text: the extended protocol refuses it
    r = q(c, {"key": "t", "sql": "INSERT INTO acct VALUES ('z', 1); SELECT 1"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "sql_error", r.text
    assert psql(pg.dsn("s"), "SELECT count(*) FROM acct") == "0"


def test_session_settings_stay_off_pooled_connections(pg_router):
    c, _ = pg_router
    for sql in ("SET search_path = pg_catalog", "SET SESSION statement_timeout = 1",
                "RESET ALL", "set role postgres", "SET LOCAL citrus.tenant = 'other'",
                "SET LOCAL ROLE postgres"):
        refused(q(c, {"key": "t", "sql": sql}), 400, "is not allowed")
    # the one pooled session kept its settings
    assert ok(q(c, {"key": "t", "sql": "SHOW search_path"}))["rows"] == [['"$user", public']]
    # what lasts only until the transaction ends is fine
    a = ok(q(c, {"key": "t", "statements": [
        {"sql": "SET LOCAL statement_timeout = 5000"},
        {"sql": "SHOW statement_timeout"}]}, "/v1/tx"))
    assert a["results"][1]["rows"] == [["5s"]]
    # SET TRANSACTION is not refused, but on PostgreSQL it comes too late: the
    # router's own first query (setting citrus.tenant) already ran
    r = q(c, {"key": "t", "statements": [
        {"sql": "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"}]}, "/v1/tx")
    assert r.status_code == 400 and r.json()["error"]["sqlstate"] == "25001", r.text
    assert ok(q(c, {"key": "t", "sql": "SHOW statement_timeout"}))["rows"] != [["5s"]]
