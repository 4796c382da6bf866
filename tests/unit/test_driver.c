/* tests/unit/test_driver.c — the shard drivers (dbconn/driver*.c) on an
 * SQLite file and on a real PostgreSQL: the data plane's statements and
 * transactions, and the control plane's scripts, column reads, quoted
 * identifiers and probes.
 *
 * The same tests run on both backends (the state is the backend); the
 * expectations differ only where the databases do (SQLite has no boolean
 * storage class, PostgreSQL has SQLSTATEs and aborts a transaction on an
 * error). PostgreSQL is a throwaway server from support_pg; the last test
 * stops it under open connections. Unreachable servers are a closed port
 * (refused at once) and a socket that listens but never answers (only
 * connect_timeout ends the wait). */
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "support_pg.h"

#include "citrus/errors.h"
#include "dbconn/driver.h"

typedef struct backend {
    const char *name;
    bool is_pg;
    size_t stmt_cache; /* drv_set_statement_cache on every connection */
    char dsn[PATH_MAX];
} backend;

static char tmpdir[PATH_MAX - 64];
static backend lite = {.name = "sqlite"}, pgb = {.name = "postgres", .is_pg = true};
/* The same tests again with kept prepared statements (named ones on
 * PostgreSQL), in a cache small enough that they also evict. */
static backend pgc = {.name = "postgres+prepared", .is_pg = true, .stmt_cache = 3};
static backend litec = {.name = "sqlite+prepared", .stmt_cache = 3};

/* ---- helpers ------------------------------------------------------------------ */

/* An empty SQLite database file (drv_open creates one only when asked). */
static void create_sqlite(const char *dsn)
{
    drv_conn *c = NULL;
    errdetail e;
    if (drv_open(dsn, &(drv_options){.create = true}, &c, &e) != 0)
        fail_msg("creating %s: %s", dsn, e.message);
    drv_close(c);
}

static drv_conn *must_open(const backend *b)
{
    drv_conn *c = NULL;
    errdetail e;
    /* the schema sandbox: these tests make and drop tables */
    int rc = drv_open(b->dsn, &(drv_options){.sandbox = DRV_SANDBOX_SCHEMA}, &c, &e);
    if (rc)
        fail_msg("%s: drv_open %s: %d %s", b->name, b->dsn, rc, e.message);
    assert_non_null(c);
    drv_set_statement_cache(c, b->stmt_cache);
    return c;
}

/* Runs sql (must succeed); rows into rs when given; returns the changes. */
static int64_t must_exec(drv_conn *c, const char *sql, const value *params, size_t n,
                         result_set *rs)
{
    errdetail e;
    bool truncated = true;
    int64_t changes = -1;
    int rc = drv_exec(c, sql, params, n, 0, rs, &truncated, &changes, &e);
    if (rc)
        fail_msg("exec \"%s\": %d %s (SQLSTATE %s)", sql, rc, e.message, e.sqlstate);
    assert_false(truncated);
    assert_true(changes >= 0);
    return changes;
}

/* The single integer sql returns. */
static int64_t query_int(drv_conn *c, const char *sql)
{
    result_set rs;
    rs_init(&rs);
    must_exec(c, sql, NULL, 0, &rs);
    assert_int_equal(rs.nrows, 1);
    assert_int_equal(rs.ncols, 1);
    if (!val_ok(rs_cell(&rs, 0, 0), VAL_INT))
        fail_msg("\"%s\": type %d, want INT", sql, rs_cell(&rs, 0, 0)->type);
    int64_t v = rs_cell(&rs, 0, 0)->u.i;
    rs_free(&rs);
    return v;
}

/* drv_exec must fail with want; the error is returned for more checks. */
static errdetail expect_fail(drv_conn *c, const char *sql, const value *params, size_t n, int want)
{
    errdetail e;
    result_set rs;
    rs_init(&rs);
    bool truncated = true;
    int64_t changes = -1;
    int rc = drv_exec(c, sql, params, n, 0, &rs, &truncated, &changes, &e);
    if (rc != want)
        fail_msg("exec \"%s\": %d (%s), want %d", sql, rc, e.message, want);
    assert_true(e.message[0] != '\0');
    assert_int_equal(e.code, want);
    assert_int_equal(rs.nrows, 0); /* out emptied */
    assert_int_equal(rs.ncols, 0);
    assert_false(truncated);
    assert_int_equal(changes, 0);
    return e;
}

static void reset_tables(drv_conn *c, const char *const *tables, size_t n)
{
    char sql[256];
    for (size_t i = 0; i < n; i++) {
        snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s", tables[i]);
        must_exec(c, sql, NULL, 0, NULL);
    }
}

static void assert_text(const value *v, const char *want)
{
    if (!val_ok(v, VAL_TEXT))
        fail_msg("type %d, want TEXT \"%s\"", v->type, want);
    assert_int_equal(v->u.s.len, strlen(want));
    assert_memory_equal(v->u.s.p, want, strlen(want));
    assert_int_equal(v->u.s.p[v->u.s.len], '\0');
}

/* A NUMERIC (exact decimal) with this text. */
static void assert_numeric(const value *v, const char *want)
{
    if (!val_ok(v, VAL_NUMERIC))
        fail_msg("type %d, want NUMERIC \"%s\"", v->type, want);
    assert_string_equal(v->u.s.p, want);
    assert_int_equal(v->u.s.len, strlen(want));
}

static void assert_blob(const value *v, const void *want, size_t len)
{
    if (!val_ok(v, VAL_BLOB))
        fail_msg("type %d, want BLOB", v->type);
    assert_int_equal(v->u.s.len, len);
    if (len)
        assert_memory_equal(v->u.s.p, want, len);
}

static void assert_int_value(const value *v, int64_t want)
{
    if (!val_ok(v, VAL_INT))
        fail_msg("type %d, want INT %lld", v->type, (long long)want);
    assert_true(v->u.i == want);
}

static void assert_real(const value *v, double want)
{
    if (!val_ok(v, VAL_REAL))
        fail_msg("type %d, want REAL %g", v->type, want);
    assert_true(v->u.d == want); /* %.17g round-trips exactly */
}

/* A boolean as the backend stores it: BOOL on PostgreSQL, INT 0/1 on SQLite. */
static void assert_boolish(const backend *b, const value *v, bool want)
{
    if (b->is_pg) {
        assert_true(val_ok(v, VAL_BOOL));
        assert_int_equal(v->u.b, want);
    } else {
        assert_int_value(v, want ? 1 : 0);
    }
}

/* ---- both backends ------------------------------------------------------------------ */

static const char QUOTED[] = "it's \"quoted\" \\ back`tick";
static const char PAYLOAD[] = "'; DROP TABLE x; --";
static const char UNICODE[] = "h\xc3\xa9llo \xe2\x9c\x93";
static const unsigned char BYTES[] = {0x00, 0x01, 0xff, 'a', 0x00, '\\', 'x'};

static void test_types_roundtrip(void **state)
{
    const backend *b = *state;
    drv_conn *c = must_open(b);
    const char *tables[] = {"t", "x"};
    reset_tables(c, tables, 2);
    must_exec(c,
              "CREATE TABLE t (id INTEGER PRIMARY KEY, i BIGINT, r DOUBLE PRECISION, s TEXT, "
              "b BOOLEAN, y BYTEA, n TEXT)",
              NULL, 0, NULL);
    must_exec(c, "CREATE TABLE x (a INTEGER)", NULL, 0, NULL);

    const char *ins = "INSERT INTO t (id, i, r, s, b, y, n) VALUES ($1, $2, $3, $4, $5, $6, $7)";
    value rows[3][7] = {
        {val_int(1), val_int(INT64_MAX), val_real(0.1), val_text(QUOTED, strlen(QUOTED)),
         val_bool(true), val_blob(BYTES, sizeof(BYTES)), val_null()},
        {val_int(2), val_int(INT64_MIN), val_real(-1.5e300), val_text(PAYLOAD, strlen(PAYLOAD)),
         val_bool(false), val_blob("", 0), val_null()},
        {val_int(3), val_int(0), val_real(3.141592653589793), val_text(UNICODE, strlen(UNICODE)),
         val_bool(true), val_blob("\0", 1), val_text("", 0)},
    };
    for (int r = 0; r < 3; r++) {
        assert_int_equal(must_exec(c, ins, rows[r], 7, NULL), 1);
        for (int i = 0; i < 7; i++)
            val_free(&rows[r][i]);
    }

    result_set rs;
    rs_init(&rs);
    assert_int_equal(must_exec(c, "SELECT id, i, r, s, b, y, n FROM t ORDER BY id", NULL, 0, &rs),
                     0);
    assert_int_equal(rs.ncols, 7);
    assert_int_equal(rs.nrows, 3);
    const char *names[] = {"id", "i", "r", "s", "b", "y", "n"};
    for (int i = 0; i < 7; i++)
        assert_string_equal(rs.columns[i], names[i]);
    assert_int_value(rs_cell(&rs, 0, 0), 1);
    assert_int_value(rs_cell(&rs, 0, 1), INT64_MAX);
    assert_real(rs_cell(&rs, 0, 2), 0.1);
    assert_text(rs_cell(&rs, 0, 3), QUOTED);
    assert_boolish(b, rs_cell(&rs, 0, 4), true);
    assert_blob(rs_cell(&rs, 0, 5), BYTES, sizeof(BYTES));
    assert_true(val_ok(rs_cell(&rs, 0, 6), VAL_NULL));

    assert_int_value(rs_cell(&rs, 1, 1), INT64_MIN);
    assert_real(rs_cell(&rs, 1, 2), -1.5e300);
    assert_text(rs_cell(&rs, 1, 3), PAYLOAD); /* stored literally */
    assert_boolish(b, rs_cell(&rs, 1, 4), false);
    assert_blob(rs_cell(&rs, 1, 5), "", 0);
    assert_true(val_ok(rs_cell(&rs, 1, 6), VAL_NULL));

    assert_int_value(rs_cell(&rs, 2, 1), 0);
    assert_real(rs_cell(&rs, 2, 2), 3.141592653589793);
    assert_text(rs_cell(&rs, 2, 3), UNICODE);
    assert_blob(rs_cell(&rs, 2, 5), "\0", 1);
    assert_text(rs_cell(&rs, 2, 6), ""); /* empty, not NULL */
    rs_free(&rs);

    /* the payload did nothing: x is still there, and it matches as a value */
    assert_int_equal(query_int(c, "SELECT count(*) AS c FROM x"), 0);
    value p = val_text(PAYLOAD, strlen(PAYLOAD));
    rs_init(&rs);
    must_exec(c, "SELECT id FROM t WHERE s = $1", &p, 1, &rs);
    assert_int_equal(rs.nrows, 1);
    assert_int_value(rs_cell(&rs, 0, 0), 2);
    rs_free(&rs);
    val_free(&p);

    /* a parameter used twice; changes of UPDATE/DELETE, none for SELECT */
    value two = val_int(2);
    rs_init(&rs);
    must_exec(c, "SELECT count(*) AS c FROM t WHERE id >= $1 AND id <= $1", &two, 1, &rs);
    assert_int_value(rs_cell(&rs, 0, 0), 1);
    rs_free(&rs);
    value upd[2] = {val_text("set", 3), val_int(2)};
    assert_int_equal(must_exec(c, "UPDATE t SET n = $1 WHERE id <= $2", upd, 2, NULL), 2);
    val_free(&upd[0]);
    assert_int_equal(must_exec(c, "SELECT id FROM t", NULL, 0, NULL), 0);
    assert_int_equal(must_exec(c, "UPDATE t SET n = 'z' WHERE id > 100", NULL, 0, NULL), 0);
    assert_int_equal(must_exec(c, "DELETE FROM t WHERE id = $1", &two, 1, NULL), 1);
    assert_int_equal(must_exec(c, "CREATE TABLE y (a INTEGER)", NULL, 0, NULL), 0);
    must_exec(c, "DROP TABLE y", NULL, 0, NULL);

    /* a statement with no result columns leaves out without columns */
    rs_init(&rs);
    must_exec(c, "INSERT INTO x (a) VALUES (1)", NULL, 0, &rs);
    assert_int_equal(rs.ncols, 0);
    assert_int_equal(rs.nrows, 0);
    /* a query with no rows still has its columns */
    must_exec(c, "SELECT a AS only_col FROM x WHERE a > 5", NULL, 0, &rs);
    assert_int_equal(rs.ncols, 1);
    assert_string_equal(rs.columns[0], "only_col");
    assert_int_equal(rs.nrows, 0);
    rs_free(&rs);

    /* a trailing ";", blanks and a comment are fine; NULL outputs too */
    assert_int_equal(
        drv_exec(c, "SELECT 1 AS one;  \n -- the end\n", NULL, 0, 0, NULL, NULL, NULL, NULL), 0);
    drv_close(c);
}

static void test_parameter_count(void **state)
{
    const backend *b = *state;
    drv_conn *c = must_open(b);
    value ps[3] = {val_int(1), val_int(2), val_int(3)};
    errdetail e = expect_fail(c, "SELECT $1 AS a, $2 AS b", ps, 1, CITRUS_EINVAL);
    print_message("%s: 2 placeholders, 1 value: %s (SQLSTATE %s)\n", b->name, e.message,
                  e.sqlstate);
    if (!b->is_pg)
        assert_non_null(strstr(e.message, "statement has 2 parameters"));
    expect_fail(c, "SELECT $1 AS a, $2 AS b", ps, 3, CITRUS_EINVAL);
    expect_fail(c, "SELECT $1 AS a", NULL, 0, CITRUS_EINVAL);
    expect_fail(c, "SELECT 1 AS a", ps, 1, CITRUS_EINVAL);
    if (!b->is_pg) {
        /* one placeholder syntax only */
        e = expect_fail(c, "SELECT ? AS a", ps, 1, CITRUS_EINVAL);
        assert_non_null(strstr(e.message, "$1"));
        expect_fail(c, "SELECT ?1 AS a", ps, 1, CITRUS_EINVAL);
        expect_fail(c, "SELECT :a AS a", ps, 1, CITRUS_EINVAL);
        expect_fail(c, "SELECT @a AS a", ps, 1, CITRUS_EINVAL);
        expect_fail(c, "SELECT $a AS a", ps, 1, CITRUS_EINVAL);
        expect_fail(c, "SELECT $01 AS a", ps, 1, CITRUS_EINVAL);
    } else {
        /* a NUL cannot travel in a PostgreSQL text */
        value nul = val_text("a\0b", 3);
        expect_fail(c, "SELECT $1::text AS a", &nul, 1, CITRUS_EINVAL);
        val_free(&nul);
    }
    /* all the right count: fine, and the connection survived the errors */
    assert_true(drv_alive(c));
    result_set rs;
    rs_init(&rs);
    /* (PostgreSQL cannot type a parameter nobody uses: $2 appears there) */
    must_exec(c,
              b->is_pg ? "SELECT $3::int AS c, $1::int AS a WHERE $2::int IS NOT NULL"
                       : "SELECT $3 AS c, $1 AS a",
              ps, 3, &rs);
    assert_int_equal(rs.nrows, 1);
    assert_int_value(rs_cell(&rs, 0, 0), 3);
    assert_int_value(rs_cell(&rs, 0, 1), 1);
    rs_free(&rs);
    drv_close(c);
}

static void test_sql_errors(void **state)
{
    const backend *b = *state;
    drv_conn *c = must_open(b);
    const char *tables[] = {"u"};
    reset_tables(c, tables, 1);
    errdetail e = expect_fail(c, "SELECT * FROM nosuch", NULL, 0, CITRUS_EINVAL);
    print_message("%s: unknown table: %s (SQLSTATE %s)\n", b->name, e.message, e.sqlstate);
    assert_non_null(strstr(e.message, "nosuch"));
    assert_string_equal(e.sqlstate, b->is_pg ? "42P01" : "");
    e = expect_fail(c, "SELEC 1", NULL, 0, CITRUS_EINVAL);
    if (b->is_pg)
        assert_string_equal(e.sqlstate, "42601");
    expect_fail(c, "SELECT 1; SELECT 2", NULL, 0, CITRUS_EINVAL);
    expect_fail(c, "", NULL, 0, CITRUS_EINVAL);
    expect_fail(c, " ; ", NULL, 0, CITRUS_EINVAL);

    must_exec(c, "CREATE TABLE u (k INTEGER PRIMARY KEY)", NULL, 0, NULL);
    must_exec(c, "INSERT INTO u (k) VALUES (1)", NULL, 0, NULL);
    e = expect_fail(c, "INSERT INTO u (k) VALUES (1)", NULL, 0, CITRUS_EINVAL);
    print_message("%s: duplicate key: %s (SQLSTATE %s)\n", b->name, e.message, e.sqlstate);
    if (b->is_pg)
        assert_string_equal(e.sqlstate, "23505");
    /* none of that broke the connection */
    assert_true(drv_alive(c));
    assert_int_equal(drv_ping(c, NULL), 0);
    assert_int_equal(query_int(c, "SELECT count(*) AS n FROM u"), 1);
    drv_close(c);
}

static void check_prefix(drv_conn *c, const char *sql, size_t max, size_t want_rows,
                         bool want_truncated)
{
    result_set rs;
    rs_init(&rs);
    bool truncated = !want_truncated;
    errdetail e;
    int rc = drv_exec(c, sql, NULL, 0, max, &rs, &truncated, NULL, &e);
    if (rc)
        fail_msg("\"%s\" max %zu: %d %s", sql, max, rc, e.message);
    assert_int_equal(rs.nrows, want_rows);
    assert_int_equal(truncated, want_truncated);
    for (size_t i = 0; i < rs.nrows; i++)
        assert_int_value(rs_cell(&rs, i, 0), (int64_t)i + 1);
    rs_free(&rs);
}

static void test_max_rows(void **state)
{
    const backend *b = *state;
    drv_conn *c = must_open(b);
    const char *tables[] = {"big"};
    reset_tables(c, tables, 1);
    must_exec(c, "CREATE TABLE big (x INTEGER)", NULL, 0, NULL);
    assert_int_equal(must_exec(c,
                               "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s "
                               "WHERE x < 1000) INSERT INTO big (x) SELECT x FROM s",
                               NULL, 0, NULL),
                     1000);
    const char *q = "SELECT x FROM big ORDER BY x";
    int64_t t0 = mono_ms();
    check_prefix(c, q, 10, 10, true);
    check_prefix(c, q, 0, 1000, false);
    check_prefix(c, q, 1000, 1000, false);
    check_prefix(c, q, 999, 999, true);
    check_prefix(c, q, 1, 1, true);
    if (b->is_pg) /* cancelled, as a plain query; SQLite has no top-level parentheses */
        check_prefix(c, "  /* c */ (SELECT x FROM big ORDER BY x)", 3, 3, true);
    /* the connection is clean after a cut-short query */
    assert_int_equal(query_int(c, "SELECT count(*) AS n FROM big"), 1000);

    /* inside a transaction: the cut does not abort it */
    assert_int_equal(drv_begin(c, NULL), 0);
    check_prefix(c, q, 10, 10, true);
    must_exec(c, "INSERT INTO big (x) VALUES (1001)", NULL, 0, NULL);
    assert_int_equal(drv_commit(c, NULL), 0);
    assert_int_equal(query_int(c, "SELECT count(*) AS n FROM big"), 1001);

    /* a write is never cut short by the row limit */
    result_set rs;
    rs_init(&rs);
    bool truncated = false;
    int64_t changes = 0;
    assert_int_equal(drv_exec(c, "UPDATE big SET x = x + 1 RETURNING x", NULL, 0, 5, &rs,
                              &truncated, &changes, NULL),
                     0);
    assert_int_equal(rs.nrows, 5);
    assert_true(truncated);
    assert_int_equal(changes, 1001);
    rs_free(&rs);
    assert_int_equal(query_int(c, "SELECT min(x) AS m FROM big"), 2);
    print_message("%s: max_rows checks took %lld ms\n", b->name, (long long)(mono_ms() - t0));
    drv_close(c);
}

static void test_transactions(void **state)
{
    const backend *b = *state;
    drv_conn *c = must_open(b);
    const char *tables[] = {"tx"};
    reset_tables(c, tables, 1);
    must_exec(c, "CREATE TABLE tx (a INTEGER)", NULL, 0, NULL);
    errdetail e;

    assert_false(drv_in_transaction(c));
    assert_int_equal(drv_begin(c, &e), 0);
    assert_true(drv_in_transaction(c));
    must_exec(c, "INSERT INTO tx (a) VALUES (1)", NULL, 0, NULL);
    assert_int_equal(drv_rollback(c, &e), 0);
    assert_false(drv_in_transaction(c));
    assert_int_equal(query_int(c, "SELECT count(*) AS n FROM tx"), 0);

    assert_int_equal(drv_begin(c, &e), 0);
    must_exec(c, "INSERT INTO tx (a) VALUES (2)", NULL, 0, NULL);
    assert_int_equal(drv_commit(c, &e), 0);
    assert_false(drv_in_transaction(c));
    assert_int_equal(query_int(c, "SELECT count(*) AS n FROM tx"), 1);

    /* the verbs out of place, alike on both backends */
    assert_int_equal(drv_commit(c, &e), CITRUS_EINVAL);
    assert_int_equal(drv_rollback(c, &e), 0);
    assert_int_equal(drv_begin(c, &e), 0);
    assert_int_equal(drv_begin(c, &e), CITRUS_EINVAL);
    assert_true(drv_in_transaction(c));
    assert_int_equal(drv_rollback(c, &e), 0);

    /* an error inside a transaction */
    assert_int_equal(drv_begin(c, &e), 0);
    must_exec(c, "INSERT INTO tx (a) VALUES (3)", NULL, 0, NULL);
    expect_fail(c, "INSERT INTO nosuch VALUES (1)", NULL, 0, CITRUS_EINVAL);
    assert_true(drv_in_transaction(c));
    if (b->is_pg) {
        /* PostgreSQL refuses the rest and COMMIT rolls back */
        e = expect_fail(c, "SELECT 1 AS a", NULL, 0, CITRUS_EINVAL);
        assert_string_equal(e.sqlstate, "25P02");
        assert_int_equal(drv_ping(c, NULL), 0); /* the server still answers */
        assert_int_equal(drv_commit(c, &e), CITRUS_EINVAL);
        print_message("commit of a failed transaction: %s\n", e.message);
        assert_false(drv_in_transaction(c));
        assert_int_equal(query_int(c, "SELECT count(*) AS n FROM tx"), 1);
    } else {
        /* SQLite undid the statement only */
        assert_int_equal(drv_commit(c, &e), 0);
        assert_int_equal(query_int(c, "SELECT count(*) AS n FROM tx"), 2);
    }
    drv_close(c);
}

/* A statement past drv_set_statement_timeout is cancelled: query_timeout
 * within a fraction of what it would have taken, nothing of it applied,
 * and the connection goes on (inside a transaction, that transaction is
 * over). Slow statements: pg_sleep on PostgreSQL, a recursive CTE that
 * never ends on SQLite. */
static void test_statement_timeout(void **state)
{
    const backend *b = *state;
    drv_conn *c = must_open(b);
    const char *tables[] = {"slow"};
    reset_tables(c, tables, 1);
    must_exec(c, "CREATE TABLE slow (a INTEGER)", NULL, 0, NULL);
    const char *endless = b->is_pg
                              ? "SELECT 1 AS a FROM pg_sleep(30)"
                              : "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) "
                                "SELECT count(*) AS a FROM n";
    const char *endless_write =
        b->is_pg ? "INSERT INTO slow (a) SELECT 1 FROM pg_sleep(30)"
                 : "INSERT INTO slow (a) WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
                   "FROM n) SELECT x FROM n";
    drv_set_statement_timeout(c, 200);
    for (int i = 0; i < 2; i++) { /* twice: a kept statement times out alike */
        int64_t t0 = mono_ms();
        errdetail e = expect_fail(c, endless, NULL, 0, CITRUS_EQUERYTIMEOUT);
        int64_t took = mono_ms() - t0;
        print_message("%s: timed out after %lld ms: %s\n", b->name, (long long)took, e.message);
        assert_true(took >= 200 && took < 5000);
        assert_non_null(strstr(e.message, "timeout of 200 ms"));
        if (b->is_pg)
            assert_string_equal(e.sqlstate, "57014");
        assert_true(drv_alive(c));
        assert_int_equal(query_int(c, "SELECT 7 AS a"), 7); /* fast ones still run */
    }
    /* a write cut short leaves nothing; a script is bounded as a whole */
    expect_fail(c, endless_write, NULL, 0, CITRUS_EQUERYTIMEOUT);
    errdetail se;
    char script[512];
    snprintf(script, sizeof(script), "INSERT INTO slow (a) VALUES (1); %s", endless_write);
    int64_t s0 = mono_ms();
    assert_int_equal(drv_run_script_tx(c, script, &se), CITRUS_EQUERYTIMEOUT);
    assert_true(mono_ms() - s0 < 5000);
    assert_non_null(strstr(se.message, "timeout of 200 ms"));
    assert_int_equal(query_int(c, "SELECT count(*) AS n FROM slow"), 0);
    /* inside a transaction: the transaction is lost, not the connection */
    errdetail e;
    assert_int_equal(drv_begin(c, &e), 0);
    must_exec(c, "INSERT INTO slow (a) VALUES (1)", NULL, 0, NULL);
    expect_fail(c, endless_write, NULL, 0, CITRUS_EQUERYTIMEOUT);
    drv_rollback(c, &e);
    assert_false(drv_in_transaction(c));
    assert_int_equal(query_int(c, "SELECT count(*) AS n FROM slow"), 0);
    /* 0: no limit again */
    drv_set_statement_timeout(c, 0);
    assert_int_equal(query_int(c, b->is_pg
                                      ? "SELECT count(*) AS a FROM pg_sleep(0.3)"
                                      : "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT "
                                        "x + 1 FROM n WHERE x < 300000) SELECT count(*) FROM n"),
                     b->is_pg ? 1 : 300000);
    drv_close(c);
}

/* A caller that is gone from the start: counts how often it was asked. */
static bool gone_always(void *ctx)
{
    ++*(int *)ctx;
    return true;
}

/* A statement whose caller went away (drv_set_cancel_check) is cancelled
 * within a few checks: CITRUS_ECLOSED, nothing of it applied, the
 * connection usable at once (the pool can take it back). A statement that
 * ends before the first check is due never asks. */
static void test_cancel_check(void **state)
{
    const backend *b = *state;
    drv_conn *c = must_open(b);
    const char *tables[] = {"gone"};
    reset_tables(c, tables, 1);
    must_exec(c, "CREATE TABLE gone (a INTEGER)", NULL, 0, NULL);
    const char *endless_write =
        b->is_pg ? "INSERT INTO gone (a) SELECT 1 FROM pg_sleep(30)"
                 : "INSERT INTO gone (a) WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
                   "FROM n) SELECT x FROM n";
    int asked = 0;
    drv_set_cancel_check(c, gone_always, &asked);
    assert_int_equal(query_int(c, "SELECT 7 AS a"), 7);
    assert_int_equal(asked, 0);
    drv_set_statement_timeout(c, 20000); /* both armed: the check wins long before */
    int64_t t0 = mono_ms();
    errdetail e = expect_fail(c, endless_write, NULL, 0, CITRUS_ECLOSED);
    int64_t took = mono_ms() - t0;
    print_message("%s: cancelled after %lld ms (%d checks): %s\n", b->name, (long long)took, asked,
                  e.message);
    assert_true(took >= DRV_CANCEL_CHECK_MS && took < 5000);
    assert_int_equal(asked, 1);
    assert_non_null(strstr(e.message, "client went away"));
    if (b->is_pg)
        assert_string_equal(e.sqlstate, "57014");
    assert_true(drv_alive(c));
    /* inside a transaction: the transaction is lost, not the connection */
    assert_int_equal(drv_begin(c, &e), 0);
    must_exec(c, "INSERT INTO gone (a) VALUES (1)", NULL, 0, NULL);
    expect_fail(c, endless_write, NULL, 0, CITRUS_ECLOSED);
    drv_set_cancel_check(c, NULL, NULL);
    drv_set_statement_timeout(c, 0);
    drv_rollback(c, &e);
    assert_false(drv_in_transaction(c));
    assert_int_equal(query_int(c, "SELECT count(*) AS n FROM gone"), 0);
    drv_close(c);
}

/* The first column of sql's rows as drv_query_column gives them. */
static void assert_column(drv_conn *c, const char *sql, const char *const *want, size_t n)
{
    char *untouched[1], **rows = untouched;
    size_t got = 99;
    errdetail e;
    int rc = drv_query_column(c, sql, &rows, &got, &e);
    if (rc)
        fail_msg("query \"%s\": %d %s", sql, rc, e.message);
    assert_int_equal(got, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(rows[i], want[i]);
    drv_free_column(rows, got);
}

/* The control plane's calls: scripts of several statements, alone and in
 * a transaction, and a column read as text. Identical SQL for both. */
static void test_scripts(void **state)
{
    const backend *b = *state;
    drv_conn *c = must_open(b);
    const char *tables[] = {"sc"};
    reset_tables(c, tables, 1);
    errdetail e;
    assert_int_equal(drv_run_script(c,
                                    "CREATE TABLE sc (a TEXT, b INTEGER); "
                                    "INSERT INTO sc VALUES ('x', 1); INSERT INTO sc VALUES (NULL, "
                                    "2); INSERT INTO sc VALUES ('z', 3)",
                                    &e),
                     0);
    assert_int_equal(e.code, 0);
    const char *abc[] = {"x", "", "z"}; /* NULL as "" */
    assert_column(c, "SELECT a FROM sc ORDER BY b", abc, 3);
    assert_column(c, "SELECT a FROM sc WHERE b > 100", NULL, 0);
    const char *three[] = {"3"}, *half[] = {"0.5"};
    assert_column(c, "SELECT 3", three, 1);
    assert_column(c, "SELECT 0.5", half, 1); /* SQLite: REAL; PostgreSQL: numeric, as text */
    if (b->is_pg) {
        const char *t[] = {"t"};
        assert_column(c, "SELECT true", t, 1); /* as PostgreSQL writes it */
    }
    /* an empty script, or one of comments, does nothing */
    assert_int_equal(drv_run_script(c, "  ; -- nothing\n", &e), 0);

    /* errors carry the database's message */
    assert_int_equal(drv_run_script(c, "INSERT INTO nosuch VALUES (1)", &e), CITRUS_EINVAL);
    assert_int_equal(e.code, CITRUS_EINVAL);
    assert_non_null(strstr(e.message, "nosuch"));
    assert_string_equal(e.sqlstate, b->is_pg ? "42P01" : "");
    char *untouched[1], **rows = untouched;
    size_t n = 99;
    assert_int_equal(drv_query_column(c, "SELEC 1", &rows, &n, &e), CITRUS_EINVAL);
    assert_true(e.message[0] != '\0');
    assert_null(rows);
    assert_int_equal(n, 0);
    /* a script stops at its first error; what ran before it stays on
     * SQLite, and PostgreSQL ran it all in one implicit transaction */
    assert_int_equal(drv_run_script(c,
                                    "INSERT INTO sc VALUES ('a', 10); INSERT INTO nosuch VALUES "
                                    "(1); INSERT INTO sc VALUES ('b', 11)",
                                    &e),
                     CITRUS_EINVAL);
    assert_int_equal(query_int(c, "SELECT count(*) AS n FROM sc"), b->is_pg ? 3 : 4);
    assert_int_equal(drv_run_script(c, "DELETE FROM sc WHERE b >= 10", &e), 0);

    /* in a transaction: all or nothing */
    assert_int_equal(
        drv_run_script_tx(c, "INSERT INTO sc VALUES ('y', 4); INSERT INTO sc VALUES ('w', 5)", &e),
        0);
    assert_false(drv_in_transaction(c));
    assert_int_equal(query_int(c, "SELECT count(*) AS n FROM sc"), 5);
    assert_int_equal(
        drv_run_script_tx(c, "INSERT INTO sc VALUES ('v', 6); INSERT INTO nosuch VALUES (1)", &e),
        CITRUS_EINVAL);
    assert_non_null(strstr(e.message, "nosuch")); /* the script's error, not the rollback's */
    assert_false(drv_in_transaction(c));
    assert_int_equal(query_int(c, "SELECT count(*) AS n FROM sc"), 5); /* 'v' rolled back */
    /* a script may not end the transaction itself */
    assert_int_equal(drv_run_script_tx(c, "INSERT INTO sc VALUES ('s', 8); COMMIT", &e),
                     CITRUS_EINVAL);
    assert_non_null(strstr(e.message, "transaction"));
    assert_false(drv_in_transaction(c)); /* and we are not stuck in one */
    assert_int_equal(query_int(c, "SELECT count(*) AS n FROM sc"), 6); /* what it committed */
    /* nor run inside one the caller has open */
    assert_int_equal(drv_begin(c, &e), 0);
    assert_int_equal(drv_run_script_tx(c, "INSERT INTO sc VALUES ('r', 9)", &e), CITRUS_EINVAL);
    assert_true(drv_in_transaction(c)); /* the caller's, left alone */
    assert_int_equal(drv_rollback(c, &e), 0);
    assert_true(drv_alive(c));
    drv_close(c);
}

/* Identifiers that need quoting go into a statement's text intact. */
static void test_quote_ident(void **state)
{
    const backend *b = *state;
    drv_conn *c = must_open(b);
    const char *tables[] = {"\"we\"\"ird Name\""};
    reset_tables(c, tables, 1);
    char *q = drv_quote_ident(c, "we\"ird Name");
    assert_non_null(q);
    assert_string_equal(q, "\"we\"\"ird Name\"");
    char sql[128];
    snprintf(sql, sizeof(sql), "CREATE TABLE %s (a INTEGER); INSERT INTO %s VALUES (4)", q, q);
    errdetail e;
    assert_int_equal(drv_run_script(c, sql, &e), 0);
    snprintf(sql, sizeof(sql), "SELECT a FROM %s", q);
    assert_int_equal(query_int(c, sql), 4);
    free(q);
    reset_tables(c, tables, 1);
    drv_close(c);
}

static void test_replica_lag_primary(void **state)
{
    const backend *b = *state;
    drv_conn *c = must_open(b);
    bool replica = b->is_pg;
    int64_t lag = -1;
    errdetail e;
    int rc = drv_replica_lag_ms(c, &replica, &lag, &e);
    if (rc)
        fail_msg("%s: replica lag: %d %s", b->name, rc, e.message);
    /* a PostgreSQL primary is no replica; an SQLite file is what the
     * catalog says it is */
    assert_int_equal(replica, !b->is_pg);
    assert_int_equal(lag, 0);
    drv_close(c);
}

/* ---- SQLite only ---------------------------------------------------------------------- */

static void test_sqlite_open(void **state)
{
    char dsn[PATH_MAX + 16], path[PATH_MAX];
    drv_conn *c = NULL;
    errdetail e;
    /* a missing file is not created */
    snprintf(dsn, sizeof(dsn), "sqlite://%s/missing.db", tmpdir);
    assert_int_equal(drv_open(dsn, &(drv_options){.timeout_ms = 1000}, &c, &e),
                     CITRUS_EUNAVAILABLE);
    assert_null(c);
    assert_true(e.message[0] != '\0');
    assert_int_equal(e.code, CITRUS_EUNAVAILABLE);
    snprintf(path, sizeof(path), "%s/missing.db", tmpdir);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(drv_probe(dsn, NULL, NULL, &e), CITRUS_EUNAVAILABLE);
    assert_int_equal(access(path, F_OK), -1);
    /* nor is garbage a database */
    char garbage[PATH_MAX];
    assert_int_equal(tmp_write_garbage(tmpdir, "garbage.db", garbage, sizeof(garbage)), 0);
    snprintf(dsn, sizeof(dsn), "sqlite://%s", garbage);
    assert_int_equal(drv_open(dsn, &(drv_options){.timeout_ms = 1000}, &c, &e),
                     CITRUS_EUNAVAILABLE);
    assert_null(c);
    assert_int_equal(drv_probe(dsn, &(drv_options){.timeout_ms = 1000}, NULL, &e),
                     CITRUS_EUNAVAILABLE);
    /* created when asked, in WAL mode, and found again without being asked */
    snprintf(dsn, sizeof(dsn), "sqlite://%s/missing.db", tmpdir);
    c = NULL;
    assert_int_equal(drv_open(dsn, &(drv_options){.create = true}, &c, &e), 0);
    assert_int_equal(access(path, F_OK), 0);
    assert_int_equal(drv_run_script(c, "CREATE TABLE k (a); INSERT INTO k VALUES (5)", &e), 0);
    drv_close(c);
    c = NULL;
    assert_int_equal(drv_open(dsn, NULL, &c, &e), 0);
    assert_int_equal(query_int(c, "SELECT a FROM k"), 5);
    drv_close(c);
    int64_t ms = -1;
    assert_int_equal(drv_probe(dsn, NULL, &ms, &e), 0);
    assert_true(ms >= 0 && ms < 5000);
    /* the latency is read from the clock given */
    sysclock *clock = clock_test_new(1000, 0);
    assert_int_equal(drv_probe(dsn, &(drv_options){.clock = clock}, &ms, &e), 0);
    assert_int_equal(ms, 0);
    clock_test_free(clock);
    c = NULL;
    /* WAL mode */
    c = must_open(&lite);
    result_set rs;
    rs_init(&rs);
    must_exec(c, "PRAGMA journal_mode", NULL, 0, &rs);
    assert_text(rs_cell(&rs, 0, 0), "wal");
    rs_free(&rs);
    /* storage classes */
    rs_init(&rs);
    must_exec(c, "SELECT 1 AS i, 2.5 AS r, 'a' AS t, x'00ff' AS b, NULL AS n", NULL, 0, &rs);
    assert_int_value(rs_cell(&rs, 0, 0), 1);
    assert_real(rs_cell(&rs, 0, 1), 2.5);
    assert_text(rs_cell(&rs, 0, 2), "a");
    assert_blob(rs_cell(&rs, 0, 3), "\x00\xff", 2);
    assert_true(val_ok(rs_cell(&rs, 0, 4), VAL_NULL));
    rs_free(&rs);
    bool replica = false;
    int64_t lag = -1;
    assert_int_equal(drv_replica_lag_ms(c, &replica, &lag, NULL), 0);
    assert_true(replica);
    assert_int_equal(lag, 0);
    drv_close(c);
}

/* A writer holding the lock makes another wait for the busy timeout, then
 * CITRUS_EUNAVAILABLE with a connection that is still fine. */
static void test_sqlite_busy(void **state)
{
    drv_conn *holder = must_open(&lite), *c = NULL;
    const char *tables[] = {"busy"};
    reset_tables(holder, tables, 1);
    must_exec(holder, "CREATE TABLE busy (a INTEGER)", NULL, 0, NULL);
    errdetail e;
    assert_int_equal(drv_open(lite.dsn, &(drv_options){.timeout_ms = 300}, &c, &e), 0);
    assert_int_equal(drv_begin(holder, &e), 0);
    must_exec(holder, "INSERT INTO busy (a) VALUES (1)", NULL, 0, NULL);
    int64_t t0 = mono_ms();
    assert_int_equal(
        drv_exec(c, "INSERT INTO busy (a) VALUES (2)", NULL, 0, 0, NULL, NULL, NULL, &e),
        CITRUS_EUNAVAILABLE);
    int64_t took = mono_ms() - t0;
    print_message("busy: gave up after %lld ms: %s\n", (long long)took, e.message);
    assert_true(took >= 250);
    assert_true(took < 30000);
    assert_true(drv_alive(c));
    assert_int_equal(drv_begin(c, &e), CITRUS_EUNAVAILABLE); /* BEGIN IMMEDIATE waits too */
    assert_false(drv_in_transaction(c));
    t0 = mono_ms();
    assert_int_equal(drv_run_script_tx(c, "INSERT INTO busy (a) VALUES (2)", &e),
                     CITRUS_EUNAVAILABLE); /* so does a script's transaction */
    assert_true(mono_ms() - t0 >= 250);
    assert_false(drv_in_transaction(c));
    /* readers are not blocked (WAL) */
    assert_int_equal(query_int(c, "SELECT count(*) AS n FROM busy"), 0);
    assert_int_equal(drv_commit(holder, &e), 0);
    must_exec(c, "INSERT INTO busy (a) VALUES (2)", NULL, 0, NULL);
    assert_int_equal(query_int(c, "SELECT count(*) AS n FROM busy"), 2);
    drv_close(c);
    drv_close(holder);
}

/* Malformed DSNs never reach a backend: CITRUS_EINVAL with a message. */
static void test_malformed_dsn(void **state)
{
    const char *bad[] = {"",
                         "mysql://u@h/db",
                         "sqlite:",
                         "nonsense",
                         "host=127.0.0.1 nosuchkeyword=1",
                         "postgresql://postgres@127.0.0.1:1/db?nosuchparam=1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        drv_conn *c = NULL;
        errdetail e;
        int rc = drv_open(bad[i], &(drv_options){.create = true}, &c, &e);
        if (rc != CITRUS_EINVAL)
            fail_msg("open \"%s\": %d (%s), want EINVAL", bad[i], rc, e.message);
        assert_null(c);
        assert_int_equal(e.code, CITRUS_EINVAL);
        assert_true(e.message[0] != '\0');
        assert_int_equal(drv_probe(bad[i], NULL, NULL, &e), CITRUS_EINVAL);
    }
    drv_conn *c = NULL;
    assert_int_equal(drv_open(NULL, NULL, &c, NULL), CITRUS_EINVAL);
    assert_null(c);
}

/* ---- PostgreSQL only ---------------------------------------------------------------- */

static void test_pg_type_mapping(void **state)
{
    drv_conn *c = must_open(*state);
    result_set rs;
    rs_init(&rs);
    must_exec(c,
              "SELECT 1::int2 AS a, 2::int4 AS b, 3::int8 AS c, 1.5::float4 AS d, "
              "2.5::float8 AS e, 1.10::numeric AS f, true AS g, '\\x00ff'::bytea AS h, "
              "'txt' AS i, NULL::int AS j, '2024-01-02'::date AS k, "
              "'Infinity'::float8 AS l, 12345678901234567890.5::numeric AS m, "
              "'NaN'::numeric AS n, sum(x) AS o FROM (VALUES (9223372036854775807::int8), "
              "(1::int8)) v(x)",
              NULL, 0, &rs);
    assert_int_equal(rs.ncols, 15);
    assert_int_value(rs_cell(&rs, 0, 0), 1);
    assert_int_value(rs_cell(&rs, 0, 1), 2);
    assert_int_value(rs_cell(&rs, 0, 2), 3);
    assert_real(rs_cell(&rs, 0, 3), 1.5);
    assert_real(rs_cell(&rs, 0, 4), 2.5);
    assert_numeric(rs_cell(&rs, 0, 5), "1.10"); /* numeric stays exact, a number */
    assert_true(val_ok(rs_cell(&rs, 0, 6), VAL_BOOL) && rs_cell(&rs, 0, 6)->u.b);
    assert_blob(rs_cell(&rs, 0, 7), "\x00\xff", 2);
    assert_text(rs_cell(&rs, 0, 8), "txt");
    assert_true(val_ok(rs_cell(&rs, 0, 9), VAL_NULL));
    assert_text(rs_cell(&rs, 0, 10), "2024-01-02");
    assert_true(val_ok(rs_cell(&rs, 0, 11), VAL_REAL) && rs_cell(&rs, 0, 11)->u.d > 1e308);
    assert_numeric(rs_cell(&rs, 0, 12), "12345678901234567890.5");
    assert_text(rs_cell(&rs, 0, 13), "NaN");                    /* no decimal: text */
    assert_numeric(rs_cell(&rs, 0, 14), "9223372036854775808"); /* sum(int8) is numeric */
    rs_free(&rs);

    /* parameters of each type, typed by the server from their use */
    value ps[6] = {val_int(-7),        val_real(-0.25),         val_bool(true),
                   val_text("x'y", 3), val_blob("\x00\x01", 2), val_null()};
    rs_init(&rs);
    must_exec(c,
              "SELECT $1::int8 + 1 AS a, $2::float8 * 2 AS b, NOT $3::bool AS c, "
              "length($4::text) AS d, length($5) AS e, $6::text IS NULL AS f",
              ps, 6, &rs);
    assert_int_value(rs_cell(&rs, 0, 0), -6);
    assert_real(rs_cell(&rs, 0, 1), -0.5);
    assert_true(val_ok(rs_cell(&rs, 0, 2), VAL_BOOL) && !rs_cell(&rs, 0, 2)->u.b);
    assert_int_value(rs_cell(&rs, 0, 3), 3);
    assert_int_value(rs_cell(&rs, 0, 4), 2); /* bytea length, from OID 17 */
    assert_true(val_ok(rs_cell(&rs, 0, 5), VAL_BOOL) && rs_cell(&rs, 0, 5)->u.b);
    rs_free(&rs);
    for (int i = 0; i < 6; i++)
        val_free(&ps[i]);

    /* COPY is refused and leaves the connection usable */
    expect_fail(c, "COPY (SELECT 1) TO STDOUT", NULL, 0, CITRUS_EINVAL);
    const char *tables[] = {"cp"};
    reset_tables(c, tables, 1);
    must_exec(c, "CREATE TABLE cp (a INTEGER)", NULL, 0, NULL);
    expect_fail(c, "COPY cp FROM STDIN", NULL, 0, CITRUS_EINVAL);
    assert_true(drv_alive(c));
    assert_int_equal(query_int(c, "SELECT count(*) AS n FROM cp"), 0);
    drv_close(c);
}

/* A huge result cut short outside a transaction is cancelled rather than
 * read to the end; inside one it is read and dropped (a cancel would abort
 * the transaction). */
static void test_pg_truncate_huge(void **state)
{
    drv_conn *c = must_open(*state);
    result_set rs;
    rs_init(&rs);
    bool truncated = false;
    errdetail e;
    /* 100 million rows, streamed (each series is only 10000 rows) */
    const char *huge = "SELECT a.x * 10000 + b.x AS n FROM generate_series(0, 9999) a(x), "
                       "generate_series(0, 9999) b(x)";
    int64_t t0 = mono_ms();
    int rc = drv_exec(c, huge, NULL, 0, 10, &rs, &truncated, NULL, &e);
    int64_t took = mono_ms() - t0;
    if (rc)
        fail_msg("huge query: %d %s", rc, e.message);
    print_message("100M-row query cut at 10 rows in %lld ms\n", (long long)took);
    assert_int_equal(rs.nrows, 10);
    assert_true(truncated);
    assert_true(took < 60000); /* reading it all would take minutes */
    rs_free(&rs);
    assert_int_equal(query_int(c, "SELECT 7::int8 AS seven"), 7);

    assert_int_equal(drv_begin(c, NULL), 0);
    rs_init(&rs);
    t0 = mono_ms();
    assert_int_equal(drv_exec(c,
                              "SELECT a.x AS n FROM generate_series(1, 500) a(x), "
                              "generate_series(1, 400) b(x)",
                              NULL, 0, 10, &rs, &truncated, NULL, &e),
                     0);
    print_message("200k rows read and dropped past 10 in a transaction: %lld ms\n",
                  (long long)(mono_ms() - t0));
    assert_int_equal(rs.nrows, 10);
    assert_true(truncated);
    rs_free(&rs);
    assert_int_equal(query_int(c, "SELECT 8::int8 AS eight"), 8);
    assert_int_equal(drv_commit(c, &e), 0);
    drv_close(c);
}

/* A connection whose session the server ended is CITRUS_EUNAVAILABLE and
 * no longer alive. */
/* A server that answers neither the statement nor its cancel (its backend
 * stopped with SIGSTOP): past the timeout and then the open timeout the
 * connection is given up, outcome unknown. */
static void test_pg_cancel_unanswered(void **state)
{
    const backend *b = *state;
    drv_conn *c = NULL;
    errdetail e;
    if (drv_open(b->dsn, &(drv_options){.timeout_ms = 1000}, &c, &e) !=
        0) /* open timeout 1 s: the cancel's wait */
        fail_msg("drv_open: %s", e.message);
    drv_set_statement_cache(c, b->stmt_cache);
    int64_t pid = query_int(c, "SELECT pg_backend_pid()::int8 AS p");
    drv_set_statement_timeout(c, 200);
    assert_int_equal(kill((pid_t)pid, SIGSTOP), 0);
    /* no assertion until SIGCONT: a stopped backend would hang the
     * server's shutdown */
    int64_t t0 = mono_ms();
    int rc = drv_exec(c, "SELECT 1 AS a", NULL, 0, 0, NULL, NULL, NULL, &e);
    int64_t took = mono_ms() - t0;
    assert_int_equal(kill((pid_t)pid, SIGCONT), 0);
    assert_int_equal(rc, CITRUS_ETIMEOUT);
    print_message("unanswered cancel: %lld ms: %s\n", (long long)took, e.message);
    assert_true(took >= 1200 && took < 6000);
    assert_non_null(strstr(e.message, "outcome unknown"));
    assert_false(drv_alive(c)); /* given up: a pool drops it */
    drv_close(c);
}

static void test_pg_terminated_session(void **state)
{
    drv_conn *victim = must_open(*state), *admin = must_open(*state);
    int64_t pid = query_int(victim, "SELECT pg_backend_pid()::int8 AS p");
    value v = val_int(pid);
    must_exec(admin, "SELECT pg_terminate_backend($1::int)", &v, 1, NULL);
    /* the victim notices without a round trip once the notice arrived */
    int64_t until = mono_ms() + 20000;
    while (drv_alive(victim) && mono_ms() < until)
        sleep_ms(20);
    assert_false(drv_alive(victim));
    errdetail e = expect_fail(victim, "SELECT 1 AS a", NULL, 0, CITRUS_EUNAVAILABLE);
    print_message("terminated session: %s\n", e.message);
    assert_int_equal(drv_ping(victim, NULL), CITRUS_EUNAVAILABLE);
    drv_close(victim);
    drv_close(admin);
}

/* Both DSN forms, with our connect_timeout in place of the DSN's own. */
static void test_pg_dsn_forms(void **state)
{
    char dsn[512];
    const char *forty_two[] = {"42"}, *t1[] = {"t1"}, *db[] = {"postgres"};
    /* key=value conninfo */
    snprintf(dsn, sizeof(dsn), "host=127.0.0.1 port=%d user=postgres dbname=postgres", pg.port);
    backend b = {.name = "conninfo", .is_pg = true};
    snprintf(b.dsn, sizeof(b.dsn), "%s", dsn);
    drv_conn *c = must_open(&b);
    assert_column(c, "SELECT 40 + 2", forty_two, 1);
    assert_column(c, "SELECT current_database()", db, 1);
    drv_close(c);
    /* a URI with parameters, connect_timeout among them (ours replaces it) */
    snprintf(b.dsn, sizeof(b.dsn),
             "postgres://postgres@127.0.0.1:%d/postgres?connect_timeout=100&application_name=t1",
             pg.port);
    c = must_open(&b);
    assert_column(c, "SELECT current_setting('application_name')", t1, 1);
    drv_close(c);
}

static void test_pg_probe(void **state)
{
    int64_t ms = -1;
    errdetail e;
    int rc = drv_probe(pg.admin_dsn, NULL, &ms, &e);
    if (rc)
        fail_msg("probe: %d %s", rc, e.message);
    assert_true(ms >= 0 && ms < 5000);
}

/* A closed port: refused at once. */
static void test_pg_unreachable_closed_port(void **state)
{
    char dsn[128];
    snprintf(dsn, sizeof(dsn), "postgresql://postgres@127.0.0.1:%d/postgres", pg_free_port());
    drv_conn *c = NULL;
    errdetail e;
    int64_t t0 = mono_ms();
    assert_int_equal(drv_open(dsn, &(drv_options){.timeout_ms = 2000}, &c, &e),
                     CITRUS_EUNAVAILABLE);
    assert_null(c);
    assert_true(e.message[0] != '\0');
    int64_t ms = -1;
    assert_int_equal(drv_probe(dsn, &(drv_options){.timeout_ms = 2000}, &ms, &e),
                     CITRUS_EUNAVAILABLE);
    assert_int_equal(e.code, CITRUS_EUNAVAILABLE);
    assert_true(ms >= 0);
    assert_true(mono_ms() - t0 < 4000);
}

/* A loopback socket that accepts connections into its backlog but never
 * answers: a server that hangs. */
static int silent_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* A server that accepts but never answers (a stopped postmaster: the
 * kernel accepts for it): the connect, startup packet included, ends at
 * timeout_ms, to the millisecond (not libpq's whole-second
 * connect_timeout, at least 2 s). */
static void test_pg_unreachable_silent(void **state)
{
    int port, fd = silent_listener(&port);
    char dsn[128];
    snprintf(dsn, sizeof(dsn), "postgresql://postgres@127.0.0.1:%d/postgres", port);
    drv_conn *c = NULL;
    errdetail e;
    int64_t t0 = mono_ms();
    assert_int_equal(drv_open(dsn, &(drv_options){.timeout_ms = 1000}, &c, &e),
                     CITRUS_EUNAVAILABLE);
    int64_t took = mono_ms() - t0;
    print_message("silent server: gave up after %lld ms: %s\n", (long long)took, e.message);
    assert_true(took >= 1000 && took < 1900);
    int64_t ms = -1;
    assert_int_equal(drv_probe(dsn, &(drv_options){.timeout_ms = 1000}, &ms, &e),
                     CITRUS_EUNAVAILABLE);
    assert_true(ms >= 1000 && ms < 1900);
    assert_int_equal(drv_open(dsn, &(drv_options){.timeout_ms = 300}, &c, &e), CITRUS_EUNAVAILABLE);
    assert_non_null(strstr(e.message, "within 300 ms"));
    close(fd);
}

/* Last: stops the server under open connections. */
static void test_pg_server_stopped(void **state)
{
    drv_conn *a = must_open(&pgb), *b = must_open(&pgb);
    assert_true(drv_alive(a));
    pg_stop(&pg);
    int64_t until = mono_ms() + 20000;
    while (drv_alive(a) && mono_ms() < until)
        sleep_ms(20);
    assert_false(drv_alive(a));
    errdetail e = expect_fail(a, "SELECT 1 AS a", NULL, 0, CITRUS_EUNAVAILABLE);
    /* without drv_alive first: the statement finds out */
    e = expect_fail(b, "SELECT 1 AS a", NULL, 0, CITRUS_EUNAVAILABLE);
    print_message("server stopped: %s\n", e.message);
    assert_false(drv_alive(b));
    assert_int_equal(drv_ping(b, &e), CITRUS_EUNAVAILABLE);
    assert_int_equal(drv_begin(b, &e), CITRUS_EUNAVAILABLE);
    drv_close(a);
    drv_close(b);
    drv_conn *c = NULL;
    assert_int_equal(drv_open(pgb.dsn, &(drv_options){.timeout_ms = 2000}, &c, &e),
                     CITRUS_EUNAVAILABLE);
    assert_null(c);
}

/* drv_begin_scoped: on PostgreSQL the settings hold inside the transaction
 * (a key with quotes stays one literal) and are gone after it; SQLite has
 * none: without always nothing is opened, with always it is drv_begin. */
static void test_begin_scoped(void **state)
{
    const backend *b = *state;
    drv_conn *c = must_open(b);
    errdetail e;
    const drv_setting set[2] = {{"citrus.tenant", PAYLOAD}, {"citrus.scatter", ""}};
    assert_int_equal(drv_begin_scoped(c, set, 2, false, &e), 0);
    assert_int_equal(drv_in_transaction(c), b->is_pg);
    if (b->is_pg) {
        char **rows;
        size_t n;
        assert_int_equal(
            drv_query_column(c, "SELECT current_setting('citrus.tenant')", &rows, &n, &e), 0);
        assert_int_equal(n, 1);
        assert_string_equal(rows[0], PAYLOAD);
        drv_free_column(rows, n);
        /* inside a transaction: refused, as drv_begin */
        assert_int_equal(drv_begin_scoped(c, set, 2, false, &e), CITRUS_EINVAL);
        assert_int_equal(drv_commit(c, &e), 0);
        assert_int_equal(
            drv_query_column(c, "SELECT current_setting('citrus.tenant', true)", &rows, &n, &e), 0);
        assert_string_equal(rows[0], ""); /* transaction-local: reset at its end */
        drv_free_column(rows, n);
        /* a bad setting name fails and leaves no transaction open */
        const drv_setting bad = {"no dots", "x"};
        assert_int_not_equal(drv_begin_scoped(c, &bad, 1, true, &e), 0);
        assert_false(drv_in_transaction(c));
    }
    assert_int_equal(drv_begin_scoped(c, set, 2, true, &e), 0);
    assert_true(drv_in_transaction(c));
    assert_int_equal(drv_rollback(c, &e), 0);
    drv_close(c);
}

/* ---- main ----------------------------------------------------------------------------- */

#define BOTH(b)                                                                                    \
    cmocka_unit_test_prestate(test_types_roundtrip, &(b)),                                         \
        cmocka_unit_test_prestate(test_parameter_count, &(b)),                                     \
        cmocka_unit_test_prestate(test_sql_errors, &(b)),                                          \
        cmocka_unit_test_prestate(test_max_rows, &(b)),                                            \
        cmocka_unit_test_prestate(test_transactions, &(b)),                                        \
        cmocka_unit_test_prestate(test_replica_lag_primary, &(b)),                                 \
        cmocka_unit_test_prestate(test_statement_timeout, &(b)),                                   \
        cmocka_unit_test_prestate(test_cancel_check, &(b)),                                        \
        cmocka_unit_test_prestate(test_scripts, &(b)),                                             \
        cmocka_unit_test_prestate(test_quote_ident, &(b)),                                         \
        cmocka_unit_test_prestate(test_begin_scoped, &(b))

/* The group setup: the server, and the backend pointing at it. */
static int pg_backend_setup(void **state)
{
    if (pg_group_setup(state) != 0)
        return -1;
    snprintf(pgb.dsn, sizeof(pgb.dsn), "%s", pg.admin_dsn);
    snprintf(pgc.dsn, sizeof(pgc.dsn), "%s", pg.admin_dsn);
    return 0;
}

int main(void)
{
    if (tmp_dir_create(tmpdir, sizeof(tmpdir), "driver") != 0)
        return 1;
    snprintf(lite.dsn, sizeof(lite.dsn), "sqlite://%s/shard.db", tmpdir);
    create_sqlite(lite.dsn);
    snprintf(litec.dsn, sizeof(litec.dsn), "%s", lite.dsn);
    const struct CMUnitTest lt[] = {
        BOTH(lite),
        BOTH(litec),
        cmocka_unit_test(test_sqlite_open),
        cmocka_unit_test(test_sqlite_busy),
        cmocka_unit_test(test_malformed_dsn),
    };
    int failed = cmocka_run_group_tests_name("driver_sqlite", lt, NULL, NULL);
    const struct CMUnitTest pt[] = {
        BOTH(pgb),
        BOTH(pgc),
        cmocka_unit_test_prestate(test_pg_type_mapping, &pgb),
        cmocka_unit_test_prestate(test_pg_type_mapping, &pgc),
        cmocka_unit_test_prestate(test_pg_truncate_huge, &pgb),
        cmocka_unit_test_prestate(test_pg_truncate_huge, &pgc),
        cmocka_unit_test_prestate(test_pg_terminated_session, &pgb),
        cmocka_unit_test_prestate(test_pg_terminated_session, &pgc),
        cmocka_unit_test_prestate(test_pg_cancel_unanswered, &pgb),
        cmocka_unit_test_prestate(test_pg_cancel_unanswered, &pgc),
        cmocka_unit_test(test_pg_dsn_forms),
        cmocka_unit_test(test_pg_probe),
        cmocka_unit_test(test_pg_unreachable_closed_port),
        cmocka_unit_test(test_pg_unreachable_silent),
        cmocka_unit_test(test_pg_server_stopped),
    };
    failed +=
        cmocka_run_group_tests_name("driver_postgres", pt, pg_backend_setup, pg_group_teardown);
    tmp_dir_remove(tmpdir);
    return failed;
}
