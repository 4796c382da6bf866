"""Connection details a driver can use verbatim, and one database, one shard
(issue 14 items 2 and 3).

A shard registered with a key=value DSN is answered (and stored) as a
postgresql:// URI with every component percent-encoded, plus a structured
`connection` object: psql and libpq take the URI as it is, and libpq's own
parser finds the password unchanged. A DSN naming a database that another
shard already uses (after normalisation: host case, localhost/127.0.0.1,
default port, another user; for SQLite the same file through a symlink or
"..") is 409 conflict naming that shard, also when registrations race; a
retired shard still holds its database, a deleted one frees it."""
import concurrent.futures
import ctypes
import os
import sqlite3
import subprocess
import urllib.parse

import requests

from pg import make_postgres  # noqa: F401 (fixture)

PSQL = "/usr/bin/psql"
PW = "p@ss:w/rd?#1"  # what node-pg could not read from the key=value form
USER = "app user"


def psql(dsn, sql):
    out = subprocess.run([PSQL, dsn, "-tAc", sql], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


class _Opt(ctypes.Structure):
    _fields_ = [("keyword", ctypes.c_char_p), ("envvar", ctypes.c_char_p),
                ("compiled", ctypes.c_char_p), ("val", ctypes.c_char_p),
                ("label", ctypes.c_char_p), ("dispchar", ctypes.c_char_p),
                ("dispsize", ctypes.c_int)]


def libpq_parse(conninfo):
    """What libpq's own parser (PQconninfoParse) makes of a connection string."""
    lib = ctypes.CDLL("libpq.so.5")
    lib.PQconninfoParse.restype = ctypes.POINTER(_Opt)
    lib.PQconninfoParse.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p)]
    lib.PQconninfoFree.argtypes = [ctypes.POINTER(_Opt)]
    err = ctypes.c_char_p()
    opts = lib.PQconninfoParse(conninfo.encode(), ctypes.byref(err))
    assert opts, err.value
    out, i = {}, 0
    while opts[i].keyword:
        if opts[i].val is not None:
            out[opts[i].keyword.decode()] = opts[i].val.decode()
        i += 1
    lib.PQconninfoFree(opts)
    return out


def post_shard(c, spec, query="?verify=false&allow_superuser=true"):
    return requests.post(c.url + "/v1/shards" + query, json=spec, timeout=30)


def conflict(r, other):
    assert r.status_code == 409, r.text
    e = r.json()["error"]
    assert e["code"] == "conflict" and f"'{other}'" in e["message"], r.text
    assert PW not in r.text and "rd%3F" not in r.text, r.text


def retire(c, sid):
    for action in ("drain", "retire"):
        r = requests.post(f"{c.url}/v1/shards/{sid}/{action}", timeout=30)
        assert r.status_code == 200, r.text
    assert r.json()["state"] == "retired", r.text


def delete(c, sid):
    r = requests.delete(f"{c.url}/v1/shards/{sid}", timeout=30)
    assert r.status_code == 200, r.text


def test_postgres_connection_string_verbatim(make_citrus, make_postgres, tmp_path):
    pg = make_postgres()
    psql(pg.admin_dsn, f"CREATE ROLE \"{USER}\" LOGIN PASSWORD '{PW}'")
    psql(pg.admin_dsn, f"CREATE DATABASE app_db OWNER \"{USER}\"")
    tdir = tmp_path / "templates" / "retail"
    tdir.mkdir(parents=True)
    (tdir / "001_orders.sql").write_text("CREATE TABLE orders (id BIGINT PRIMARY KEY);\n")
    c = make_citrus(extra=["--templates-dir", str(tmp_path / "templates")])
    kv = f"host=127.0.0.1 port={pg.port} dbname=app_db user='{USER}' password='{PW}'"
    r = post_shard(c, {"id": "pg-kv", "dsn": kv}, "")
    assert r.status_code == 201, r.text
    uri = (f"postgresql://{urllib.parse.quote(USER, safe='')}:{urllib.parse.quote(PW, safe='')}"
           f"@127.0.0.1:{pg.port}/app_db")
    # the record: stored in the URI form, masked unless revealed
    rec = r.json()
    assert "***" in rec["connectionString"] and PW not in r.text, r.text
    assert "password" not in rec["connection"] and rec["connection"]["passwordRedacted"] is True
    full = requests.get(c.url + "/v1/shards/pg-kv?reveal=true", timeout=10).json()
    assert full["dsn"] == uri and full["connectionString"] == uri, full
    assert full["connection"]["password"] == PW, full
    listed = requests.get(c.url + "/v1/shards", timeout=10).json()["shards"][0]
    assert listed["connectionString"] == uri.replace(urllib.parse.quote(PW, safe=""), "***")
    # the tenant's answer: the URI and its parts
    reg = requests.post(c.url + "/api/register", timeout=30, json={
        "businessId": "b", "locationId": "l", "businessType": "retail"})
    assert reg.status_code == 201, reg.text
    a = reg.json()
    assert a["shardId"] == "pg-kv" and a["connectionString"] == uri, a
    assert a["connection"] == {"driver": "postgresql", "host": "127.0.0.1", "port": pg.port,
                               "database": "app_db", "user": USER, "password": PW,
                               "options": {}}, a
    got = requests.get(c.url + "/api/shard/b:l", timeout=10).json()
    assert got["connectionString"] == uri and got["connection"] == a["connection"], got
    # libpq's parser reads every part back unchanged ...
    parsed = libpq_parse(a["connectionString"])
    assert parsed["password"] == PW and parsed["user"] == USER, parsed
    assert parsed["dbname"] == "app_db" and parsed["port"] == str(pg.port), parsed
    # ... and psql connects with it as it is, as that user, to that database
    assert psql(a["connectionString"], "SELECT current_user || '|' || current_database()") \
        == f"{USER}|app_db"
    assert psql(a["connectionString"], "SELECT count(*) FROM orders") == "0"
    # the batch answers carry the same
    r = requests.post(c.url + "/api/register/batch", timeout=30, json={
        "businessId": "b2", "locations": [{"locationId": "x", "businessType": "retail"},
                                          {"locationId": "y", "businessType": "retail"}]})
    assert r.status_code == 201, r.text
    for one in r.json()["results"]:
        assert one["connectionString"] == uri and one["connection"] == a["connection"], one


def test_postgres_socket_dir_uri(make_citrus, make_postgres):
    pg = make_postgres()
    psql(pg.admin_dsn, "CREATE DATABASE sockdb")
    c = make_citrus(extra=["--shards-socket-dirs", pg.sock])
    dsn = f"host={pg.sock} port={pg.port} dbname=sockdb user=postgres"
    r = post_shard(c, {"id": "sock", "dsn": dsn}, "?allow_superuser=true")
    assert r.status_code == 201, r.text
    cs = r.json()["connectionString"]
    assert cs == (f"postgresql://postgres@/sockdb?host={urllib.parse.quote(pg.sock, safe='')}"
                  f"&port={pg.port}"), cs
    assert r.json()["connection"]["host"] == pg.sock, r.json()
    assert psql(cs, "SELECT current_database()") == "sockdb"
    assert libpq_parse(cs)["host"] == pg.sock
    # the socket directory and the TCP address are not taken for one database (a socket
    # directory says nothing about which server listens there) ...
    tcp = f"host=127.0.0.1 port={pg.port} dbname=sockdb user=postgres"
    assert post_shard(c, {"id": "tcp", "dsn": tcp}).status_code == 201
    # ... but the same directory, written with a trailing slash, is
    conflict(post_shard(c, {"id": "s2", "dsn": f"host={pg.sock}/ port={pg.port} dbname=sockdb"}),
             "sock")


def test_postgres_one_database_one_shard(make_citrus, make_postgres):
    pg = make_postgres()
    for db in ("shop", "other", "race"):
        psql(pg.admin_dsn, f"CREATE DATABASE {db}")
    c = make_citrus()
    kv = f"host=127.0.0.1 port={pg.port} dbname=shop user=postgres"
    assert post_shard(c, {"id": "pg-a", "dsn": kv}).status_code == 201
    # the same database, however it is written, with another user too
    same = [f"postgresql://postgres@127.0.0.1:{pg.port}/shop",
            f"postgres://someone:pw@LOCALHOST:{pg.port}/shop?sslmode=disable",
            f"host=localhost port={pg.port} dbname=shop user=reader password=x",
            f"postgresql://postgres@[::1]:{pg.port}/shop"]
    for i, dsn in enumerate(same):
        conflict(post_shard(c, {"id": f"dup{i}", "dsn": dsn}), "pg-a")
    # the default port is 5432, so this is another database than pg-a's ...
    assert post_shard(c, {"id": "pg-5432", "dsn": "host=127.0.0.1 dbname=shop"}).status_code == 201
    # ... which port 5432 written out names again
    conflict(post_shard(c, {"id": "d5", "dsn": "postgresql://127.0.0.1:5432/shop"}), "pg-5432")
    # another database on the same server is another shard
    r = post_shard(c, {"id": "pg-b", "dsn": pg.dsn("other") + "?sslmode=disable&application_name=a%20b"})
    assert r.status_code == 201, r.text
    assert r.json()["connection"] == {
        "driver": "postgresql", "host": "127.0.0.1", "port": pg.port, "database": "other",
        "user": "postgres", "options": {"sslmode": "disable", "application_name": "a b"}}, r.text
    assert r.json()["connectionString"] == \
        f"postgresql://postgres@127.0.0.1:{pg.port}/other?sslmode=disable&application_name=a%20b"
    assert psql(r.json()["connectionString"], "SELECT current_setting('application_name')") \
        == "a b"
    # racing registrations of one new database: exactly one wins
    dsn = pg.dsn("race")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        rs = list(pool.map(lambda i: post_shard(c, {"id": f"race{i}", "dsn": dsn}), range(8)))
    codes = sorted(r.status_code for r in rs)
    assert codes == [201] + [409] * 7, [r.text for r in rs]
    winner = next(r.json()["id"] for r in rs if r.status_code == 201)
    for r in rs:
        if r.status_code == 409:
            conflict(r, winner)
    # a retired shard still holds its database; deleting it frees the database
    retire(c, "pg-a")
    conflict(post_shard(c, {"id": "again", "dsn": kv}), "pg-a")
    delete(c, "pg-a")
    r = post_shard(c, {"id": "again", "dsn": same[1]})
    assert r.status_code == 201, r.text


def test_sqlite_one_file_one_shard(make_citrus, tmp_path):
    c = make_citrus()
    d = tmp_path / "dbs"
    (d / "sub").mkdir(parents=True)
    real = d / "a.db"
    sqlite3.connect(real).close()
    os.symlink(real, d / "link.db")
    r = post_shard(c, {"id": "s1", "dsn": f"sqlite://{d}/sub/../a.db"}, "")
    assert r.status_code == 201, r.text
    path = os.path.realpath(real)
    # stored and answered with the file's canonical absolute path
    rec = r.json()
    assert rec["dsn"] == f"sqlite://{path}" and rec["connectionString"] == f"sqlite://{path}"
    assert rec["connection"] == {"driver": "sqlite", "path": path}, rec
    with sqlite3.connect(rec["connection"]["path"]) as db:  # a driver opens it verbatim
        db.execute("SELECT 1")
    for i, dsn in enumerate([f"sqlite://{d}/link.db", f"sqlite://{real}",
                             f"sqlite://{d}/sub/../link.db"]):
        conflict(post_shard(c, {"id": f"dup{i}", "dsn": dsn}), "s1")
    assert post_shard(c, {"id": "s2", "dsn": f"sqlite://{d}/b.db"}).status_code == 201
    retire(c, "s1")
    conflict(post_shard(c, {"id": "s3", "dsn": f"sqlite://{d}/link.db"}), "s1")
    delete(c, "s1")
    r = post_shard(c, {"id": "s3", "dsn": f"sqlite://{d}/link.db"})
    assert r.status_code == 201, r.text
    assert r.json()["connection"]["path"] == path
