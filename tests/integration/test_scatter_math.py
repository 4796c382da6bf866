"""Exact scatter arithmetic across SQLite and PostgreSQL shards together, and
64-bit integers a JavaScript client can trust (issue 14, items 4 and 5).

PostgreSQL's sum(integer) is bigint, sum(bigint) and avg() are numeric,
which it sends as text; SQLite gives integers and doubles. The router merges
count, sum, avg, min and max with exact decimal arithmetic (core/decimal.h):
integer sums past 2^63 become decimals instead of wrapping, decimals stay
exact, and an integer that a JSON number would round (past 2^53 - 1) is sent
as a string, its column typed "int64-string" in column_types."""
import decimal
import sqlite3
import subprocess

import requests

from pg import make_postgres  # noqa: F401 (fixture)

PSQL = "/usr/bin/psql"
BIG = 9007199254740993  # 2^53 + 1: a double rounds it to ...992


def psql(dsn, sql):
    out = subprocess.run([PSQL, dsn, "-v", "ON_ERROR_STOP=1", "-tAc", sql], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def query(c, body, status=200):
    r = requests.post(c.router_url + "/v1/query", json=body, timeout=30)
    assert r.status_code == status, r.text
    return r.json()


def scatter(c, sql, aggregate=None, **extra):
    body = {"scatter": True, "sql": sql, **extra}
    if aggregate:
        body["aggregate"] = aggregate
    return query(c, body)


def add_shard(c, sid, dsn, **spec):
    q = "?allow_superuser=true" if dsn.startswith("postgres") else ""
    r = requests.post(c.url + "/v1/shards" + q, json={"id": sid, "dsn": dsn, **spec}, timeout=30)
    assert r.status_code == 201, r.text


def pg_database(pg, name, script):
    psql(pg.admin_dsn, f"CREATE DATABASE {name}")
    psql(pg.dsn(name), script)
    return pg.dsn(name)


def sqlite_database(path, script):
    db = sqlite3.connect(path)
    db.executescript(script)
    db.commit()
    db.close()
    return f"sqlite://{path}"


def mixed(make_citrus, make_postgres, tmp_path, sqlite_rows, pg_rows):
    """A router over two SQLite and two PostgreSQL shards, each with a table
    nums (i bigint, d numeric(30,10)) holding the rows given for it."""
    pg = make_postgres()
    c = make_citrus()

    def script(rows, numeric):
        ddl = f"CREATE TABLE nums (i BIGINT, d {numeric});"
        ins = "".join(f"INSERT INTO nums VALUES ({i}, {d});" for i, d in rows)
        return ddl + ins
    for k, rows in enumerate(sqlite_rows):
        add_shard(c, f"sq-{k}", sqlite_database(tmp_path / f"sq{k}.db", script(rows, "NUMERIC")))
    for k, rows in enumerate(pg_rows):
        add_shard(c, f"pg-{k}", pg_database(pg, f"math{k}", script(rows, "NUMERIC(30,10)")))
    return c


def test_readme_scatter_with_sqlite_and_postgres_shards(make_citrus, make_postgres):
    """The README's own walk-through (register, insert the parent location
    then the order, sum(total_cents) with aggregate [count, sum]) over the
    four SQLite shards of citrus dev and two PostgreSQL shards with the
    shipped retail template: PostgreSQL's sum(bigint) is numeric, and the
    merge no longer refuses it."""
    pg = make_postgres()
    c = make_citrus(shards=True)
    for k in range(2):
        psql(pg.admin_dsn, f"CREATE DATABASE readme{k}")
        add_shard(c, f"pg-{k}", pg.dsn(f"readme{k}"), template="retail")
    kinds, total = set(), 0
    for n in range(24):
        biz, loc = f"biz{n}", f"loc{n}"
        reg = requests.post(c.url + "/api/register", timeout=30, json={
            "businessId": biz, "locationId": loc, "businessType": "retail"})
        assert reg.status_code == 201, reg.text
        kinds.add(reg.json()["shardId"][:3])
        r = requests.post(c.router_url + "/v1/tx", timeout=30, json={
            "key": f"{biz}:{loc}", "statements": [
                {"sql": "INSERT INTO locations (id, business_id) VALUES ($1, $2)",
                 "params": [loc, biz]},
                {"sql": "INSERT INTO orders (id, location_id, total_cents) VALUES ($1, $2, $3)",
                 "params": [f"o-{n}", loc, 1000 + n]}]})
        assert r.status_code == 200, r.text
        total += 1000 + n
    assert kinds == {"sha", "pg-"}, kinds  # rows on both backends
    a = scatter(c, "SELECT count(*) AS n, sum(total_cents) AS total FROM orders",
                ["count", "sum"])
    assert a["rows"] == [[24, total]], a
    assert a["column_types"] == ["integer", "integer"], a
    assert len(a["shards"]) == 6, a
    # avg weighted by the count column: exact, 16 significant digits
    a = scatter(c, "SELECT avg(total_cents) AS mean, count(total_cents) AS n FROM orders",
                ["avg", "count"])
    mean, n = a["rows"][0]
    assert n == 24
    # SQLite's avg is a double: the merged average is a double too
    assert abs(float(mean) - total / 24) < 1e-9, a


def test_sums_past_2_63_and_int64_strings(make_citrus, make_postgres, tmp_path):
    """Every shard holds 2^63 - 1: the sum is 4 * (2^63 - 1), exactly, a
    numeric string; min and max across SQLite integers and PostgreSQL
    bigints; an integer past 2^53 is a string in either int64 mode."""
    top = 2**63 - 1
    c = mixed(make_citrus, make_postgres, tmp_path,
              [[(top, "1.5")], [(BIG, "NULL")]], [[(top, "0.25")], [(-top, "NULL")]])
    a = scatter(c, "SELECT sum(i) AS s, count(i) AS n FROM nums WHERE i = 9223372036854775807",
                ["sum", "count"])
    assert a["rows"] == [[str(2 * top), 2]], a
    assert a["column_types"] == ["numeric", "integer"], a
    a = scatter(c, "SELECT min(i) AS lo, max(i) AS hi FROM nums", ["min", "max"])
    assert a["rows"] == [[str(-top), str(top)]], a
    assert a["column_types"] == ["int64-string", "int64-string"], a
    # a sum within 64 bits is an integer again (past 2^53: a string)
    a = scatter(c, "SELECT sum(i) AS s FROM nums", "sum")
    assert a["rows"] == [[str(top + BIG)]] and a["column_types"] == ["numeric"], a
    a = scatter(c, "SELECT sum(i) AS s FROM nums WHERE i < 9223372036854775807", "sum")
    assert a["rows"] == [[str(BIG - top)]] and a["column_types"] == ["int64-string"], a

    # 2^53 + 1 from SQLite, keyed and scattered, in both modes
    rows = scatter(c, "SELECT i FROM nums WHERE i = $1", params=[BIG])
    assert rows["rows"] == [[str(BIG)]] and rows["column_types"] == ["int64-string"], rows
    rows = scatter(c, "SELECT i FROM nums WHERE i = $1", params=[BIG], int64="string")
    assert rows["rows"] == [[str(BIG)]], rows
    small = scatter(c, "SELECT count(*) AS n FROM nums", "count")
    assert small["rows"] == [[4]] and small["column_types"] == ["integer"], small
    small = scatter(c, "SELECT count(*) AS n FROM nums", "count", int64="string")
    assert small["rows"] == [["4"]] and small["column_types"] == ["int64-string"], small
    # 2^53 + 1 from PostgreSQL (a bigint, and the same as a numeric)
    for cast in ("BIGINT", "NUMERIC"):
        pg_big = scatter(c, f"SELECT CAST({BIG} AS {cast}) AS b FROM nums WHERE d = 0.25")
        assert pg_big["rows"] == [[str(BIG)]], pg_big
        assert pg_big["column_types"] == ["int64-string"], pg_big
    # keyed queries and transactions, on each backend
    seen = set()
    for k in range(64):
        body = {"key": f"k{k}", "sql": f"SELECT CAST({BIG} AS BIGINT) AS b, 7 AS s"}
        a = query(c, body)
        seen.add(a["shard_id"][:2])
        assert a["rows"] == [[str(BIG), 7]], a
        assert a["column_types"] == ["int64-string", "integer"], a
        a = query(c, {**body, "int64": "string"})
        assert a["rows"] == [[str(BIG), "7"]], a
        assert a["column_types"] == ["int64-string", "int64-string"], a
        r = requests.post(c.router_url + "/v1/tx", timeout=30, json={
            "key": f"k{k}", "int64": "number", "statements": [{"sql": body["sql"]}]})
        assert r.json()["results"][0]["rows"] == [[str(BIG), 7]], r.text
    assert seen == {"sq", "pg"}, seen
    r = requests.post(c.router_url + "/v1/tx", timeout=30, json={
        "key": "k0", "int64": "text", "statements": [{"sql": "SELECT 1"}]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_argument", r.text
    a = scatter(c, "SELECT 9007199254740991 AS ok, -9007199254740991 AS neg", "max")
    assert a["rows"] == [[9007199254740991, -9007199254740991]], a  # the edge stays a number
    # a bad option value
    for bad in ("STRING", "bigint", 1, None, True):
        e = scatter_error(c, {"scatter": True, "sql": "SELECT 1 AS x", "int64": bad})
        assert e["code"] == "invalid_argument" and "int64" in e["message"], e


def scatter_error(c, body):
    r = requests.post(c.router_url + "/v1/query", json=body, timeout=30)
    assert r.status_code == 400, r.text
    return r.json()["error"]


def test_decimals_exact_and_mixed(make_citrus, make_postgres, tmp_path):
    """numeric values from PostgreSQL add exactly (0.1 + 0.2 is 0.3, not
    0.30000000000000004), mix with SQLite integers, order by value in
    min/max, and NULLs are skipped; avg is weighted by each shard's count."""
    c = mixed(make_citrus, make_postgres, tmp_path,
              [[(1, "7"), (2, "NULL")], []],
              [[(3, "0.1"), (4, "0.2")], [(5, "-3.0000000001"), (6, "12345678901234567890.5")]])
    a = scatter(c, "SELECT sum(d) AS s, count(d) AS n, min(d) AS lo, max(d) AS hi FROM nums",
                ["sum", "count", "min", "max"])
    s, n, lo, hi = a["rows"][0]
    assert decimal.Decimal(s) == decimal.Decimal("12345678901234567894.7999999999"), a
    assert n == 5 and decimal.Decimal(lo) == decimal.Decimal("-3.0000000001"), a
    assert decimal.Decimal(hi) == decimal.Decimal("12345678901234567890.5"), a
    assert a["column_types"] == ["numeric", "integer", "numeric", "numeric"], a
    a = scatter(c, "SELECT sum(d) AS s FROM nums WHERE d > 0 AND d < 1", "sum")
    assert a["rows"] == [["0.3000000000"]], a  # PostgreSQL's scale, exact
    # avg: PostgreSQL gives numeric averages; weighted by count(d)
    a = scatter(c, "SELECT avg(d) AS mean, count(d) AS n FROM nums WHERE i > 2",
                ["avg", "count"])
    mean, n = a["rows"][0]
    want = (decimal.Decimal("0.1") + decimal.Decimal("0.2") + decimal.Decimal("-3.0000000001")
            + decimal.Decimal("12345678901234567890.5")) / 4
    assert n == 4 and isinstance(mean, str), a
    assert abs(decimal.Decimal(mean) - want) < decimal.Decimal("1e-10"), (mean, want)
    a = scatter(c, "SELECT avg(d) AS mean, count(d) AS n FROM nums WHERE i IN (3, 4)",
                ["avg", "count"])
    assert decimal.Decimal(a["rows"][0][0]) == decimal.Decimal("0.15"), a
    # no values at all: NULL, count 0
    a = scatter(c, "SELECT sum(d) AS s, avg(d) AS m, count(d) AS n FROM nums WHERE i > 100",
                ["sum", "avg", "count"])
    assert a["rows"] == [[None, None, 0]], a
    # avg without a count column cannot be weighted
    e = scatter_error(c, {"scatter": True, "sql": "SELECT avg(d) AS m FROM nums",
                          "aggregate": "avg"})
    assert "needs a count column" in e["message"], e
    # text is still no number to add
    e = scatter_error(c, {"scatter": True, "sql": "SELECT 'x' || i AS t FROM nums LIMIT 1",
                          "aggregate": "sum"})
    assert "returned a non-number" in e["message"], e
    # ORDER BY merges decimals by value across backends
    a = scatter(c, "SELECT d FROM nums WHERE d IS NOT NULL ORDER BY d",
                order_by=[{"column": "d"}])
    got = [decimal.Decimal(str(x[0])) for x in a["rows"]]
    assert got == sorted(got) and len(got) == 5, a


def test_foreign_keys_on_both_backends(make_citrus, make_postgres):
    """The README's order without its location row is refused through the
    router on a SQLite shard (foreign_keys on, as better-sqlite3 runs) just
    as on a PostgreSQL shard (23503): 400 sql_error naming the constraint
    failure. With the parent row first (as the README now does) it works."""
    pg = make_postgres()
    c = make_citrus(shards=True)
    psql(pg.admin_dsn, "CREATE DATABASE fk")
    add_shard(c, "pg-fk", pg.dsn("fk"), template="retail")
    seen = {}
    for n in range(40):
        biz, loc = f"fk{n}", f"l{n}"
        reg = requests.post(c.url + "/api/register", timeout=30, json={
            "businessId": biz, "locationId": loc, "businessType": "retail"})
        assert reg.status_code == 201, reg.text
        kind = "pg" if reg.json()["shardId"] == "pg-fk" else "sqlite"
        if kind in seen:
            continue
        key = f"{biz}:{loc}"
        order = {"sql": "INSERT INTO orders (id, location_id, total_cents) VALUES ($1, $2, $3)",
                 "params": [f"o-{n}", loc, 1250]}
        r = requests.post(c.router_url + "/v1/query", json={"key": key, **order}, timeout=30)
        assert r.status_code == 400, (kind, r.text)
        err = r.json()["error"]
        assert err["code"] == "sql_error", (kind, err)
        assert "foreign key" in err["message"].lower(), (kind, err)
        if kind == "pg":
            assert err["sqlstate"] == "23503", err
        r = requests.post(c.router_url + "/v1/tx", timeout=30, json={"key": key, "statements": [
            {"sql": "INSERT INTO locations (id, business_id) VALUES ($1, $2)",
             "params": [loc, biz]}, order]})
        assert r.status_code == 200, (kind, r.text)
        seen[kind] = key
    assert set(seen) == {"pg", "sqlite"}, seen


def test_router_int64_config_default(make_citrus):
    """router.int64 "string" makes strings the default; a request's "int64"
    still chooses."""
    c = make_citrus(shards=True, extra=["--router-int64", "string"])
    body = {"key": "acme:north", "sql": "SELECT 7 AS n, 2.5 AS r, 'x' AS t"}
    a = query(c, body)
    assert a["rows"] == [["7", 2.5, "x"]], a
    assert a["column_types"] == ["int64-string", "real", "text"], a
    a = query(c, {**body, "int64": "number"})
    assert a["rows"] == [[7, 2.5, "x"]] and a["column_types"][0] == "integer", a
