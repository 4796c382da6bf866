/* tests/unit/test_sqlite_sandbox.c — the SQLite shard sandbox of
 * dbconn/driver_sqlite.c (drv_sandbox in driver.h): each attack of issue
 * 13 on a real file, through drv_exec and drv_run_script, under the query
 * sandbox (the router's) and the schema sandbox (templates). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "support_pg.h"

#include "citrus/errors.h"
#include "dbconn/driver.h"
#include "dbconn/driver_ops.h" /* c->handle, the sqlite3 * */

static char tmpdir[256];
static char dsn[512], other_path[512], other_dsn[600];

static drv_conn *open_as(drv_sandbox sb)
{
    drv_conn *c = NULL;
    errdetail e;
    if (drv_open(dsn, &(drv_options){.sandbox = sb}, &c, &e) != 0)
        fail_msg("drv_open: %s", e.message);
    return c;
}

static void ok(drv_conn *c, const char *sql)
{
    errdetail e;
    int rc = drv_exec(c, sql, NULL, 0, 0, NULL, NULL, NULL, &e);
    if (rc)
        fail_msg("%s: %d %s", sql, rc, e.message);
}

/* sql is refused by the sandbox with a message starting with what. */
static void refused(drv_conn *c, const char *sql, const char *what)
{
    errdetail e;
    int rc = drv_exec(c, sql, NULL, 0, 0, NULL, NULL, NULL, &e);
    if (rc != CITRUS_ESTMTDENIED)
        fail_msg("%s: %d (%s), want statement_not_allowed", sql, rc, e.message);
    char want[160];
    snprintf(want, sizeof(want), "%s is not allowed on a shard", what);
    if (strcmp(e.message, want) != 0)
        fail_msg("%s: message \"%s\", want \"%s\"", sql, e.message, want);
    assert_true(drv_alive(c)); /* a refusal does not break the connection */
}

static int64_t one_int(drv_conn *c, const char *sql)
{
    result_set rs;
    rs_init(&rs);
    errdetail e;
    if (drv_exec(c, sql, NULL, 0, 0, &rs, NULL, NULL, &e) != 0)
        fail_msg("%s: %s", sql, e.message);
    assert_int_equal(rs.nrows, 1);
    int64_t v = rs_cell(&rs, 0, 0)->u.i;
    rs_free(&rs);
    return v;
}

static int setup(void **state)
{
    (void)state;
    if (tmp_dir_create(tmpdir, sizeof(tmpdir), "sandbox") != 0)
        return -1;
    snprintf(dsn, sizeof(dsn), "sqlite://%s/shard.db", tmpdir);
    snprintf(other_path, sizeof(other_path), "%s/other.db", tmpdir);
    snprintf(other_dsn, sizeof(other_dsn), "sqlite://%s", other_path);
    drv_conn *c = NULL;
    if (drv_open(dsn, &(drv_options){.create = true, .sandbox = DRV_SANDBOX_SCHEMA}, &c, NULL))
        return -1;
    int rc =
        drv_run_script(c,
                       "CREATE TABLE loc (id TEXT PRIMARY KEY);"
                       "CREATE TABLE orders (id TEXT PRIMARY KEY, loc TEXT REFERENCES loc(id));"
                       "INSERT INTO loc VALUES ('north')",
                       NULL);
    drv_close(c);
    c = NULL;
    /* another shard's file, with a secret row */
    if (rc || drv_open(other_dsn, &(drv_options){.create = true, .sandbox = DRV_SANDBOX_SCHEMA}, &c,
                       NULL))
        return -1;
    rc = drv_run_script(c, "CREATE TABLE secret (v TEXT); INSERT INTO secret VALUES ('s3cr3t')",
                        NULL);
    drv_close(c);
    return rc;
}

static int teardown(void **state)
{
    (void)state;
    tmp_dir_remove(tmpdir);
    return 0;
}

static void test_attach_and_detach(void **state)
{
    (void)state;
    drv_conn *c = open_as(DRV_SANDBOX_QUERY);
    char sql[700];
    snprintf(sql, sizeof(sql), "ATTACH DATABASE '%s' AS cat", other_path);
    refused(c, sql, "ATTACH");
    refused(c, "DETACH DATABASE cat", "DETACH");
    /* nothing was attached: the other file's table is not readable */
    errdetail e;
    assert_int_equal(drv_exec(c, "SELECT v FROM cat.secret", NULL, 0, 0, NULL, NULL, NULL, &e),
                     CITRUS_EINVAL);
    /* the limit too (a second line, if the authorizer were gone) */
    assert_int_equal(sqlite3_limit(c->handle, SQLITE_LIMIT_ATTACHED, -1), 0);
    /* a script stops at it, before it runs */
    snprintf(sql, sizeof(sql), "SELECT 1; ATTACH '%s' AS x; SELECT 2", other_path);
    assert_int_equal(drv_run_script(c, sql, &e), CITRUS_ESTMTDENIED);
    assert_string_equal(e.message, "ATTACH is not allowed on a shard");
    /* a second statement in one call is refused before anything runs */
    snprintf(sql, sizeof(sql), "SELECT 1; ATTACH '%s' AS x", other_path);
    assert_int_equal(drv_exec(c, sql, NULL, 0, 0, NULL, NULL, NULL, &e), CITRUS_EINVAL);
    drv_close(c);
    /* the schema sandbox refuses it as well */
    c = open_as(DRV_SANDBOX_SCHEMA);
    snprintf(sql, sizeof(sql), "ATTACH '%s' AS cat", other_path);
    refused(c, sql, "ATTACH");
    drv_close(c);
}

static void test_vacuum(void **state)
{
    (void)state;
    char into[600], sql[700];
    snprintf(into, sizeof(into), "%s/copy.db", tmpdir);
    for (int sb = DRV_SANDBOX_QUERY; sb <= DRV_SANDBOX_SCHEMA; sb++) {
        drv_conn *c = open_as((drv_sandbox)sb);
        snprintf(sql, sizeof(sql), "VACUUM INTO '%s'", into);
        refused(c, sql, "VACUUM");
        refused(c, " /* x */ vacuum", "VACUUM");
        refused(c, "VACUUM main", "VACUUM");
        errdetail e;
        assert_int_equal(drv_run_script(c, "SELECT 1;\n  VACUUM", &e), CITRUS_ESTMTDENIED);
        assert_int_equal(access(into, F_OK), -1); /* no file made */
        drv_close(c);
    }
}

static void test_pragmas(void **state)
{
    (void)state;
    drv_conn *c = open_as(DRV_SANDBOX_QUERY);
    refused(c, "PRAGMA writable_schema=ON", "PRAGMA writable_schema with a value");
    refused(c, "PRAGMA journal_mode=OFF", "PRAGMA journal_mode with a value");
    refused(c, "pragma foreign_keys = off", "PRAGMA foreign_keys with a value");
    refused(c, "PRAGMA user_version = 7", "PRAGMA user_version with a value");
    refused(c, "PRAGMA wal_checkpoint(TRUNCATE)", "PRAGMA wal_checkpoint with a value");
    refused(c, "PRAGMA integrity_check", "PRAGMA integrity_check");
    refused(c, "PRAGMA trusted_schema=1", "PRAGMA trusted_schema with a value");
    refused(c, "PRAGMA cell_size_check", "PRAGMA cell_size_check");
    /* the read-only ones */
    ok(c, "PRAGMA table_info(orders)");
    ok(c, "PRAGMA table_xinfo('orders')");
    ok(c, "PRAGMA index_list(orders)");
    ok(c, "PRAGMA foreign_key_list(orders)");
    ok(c, "PRAGMA journal_mode");
    assert_int_equal(one_int(c, "PRAGMA user_version"), 0);
    assert_int_equal(one_int(c, "PRAGMA foreign_keys"), 1);
    assert_int_equal(one_int(c, "SELECT count(*) FROM pragma_table_info('orders')"), 2);
    drv_close(c);
    /* templates may set the version, nothing more */
    c = open_as(DRV_SANDBOX_SCHEMA);
    ok(c, "PRAGMA user_version = 3");
    assert_int_equal(one_int(c, "PRAGMA user_version"), 3);
    ok(c, "PRAGMA user_version = 0");
    refused(c, "PRAGMA writable_schema=ON", "PRAGMA writable_schema with a value");
    refused(c, "PRAGMA journal_mode=DELETE", "PRAGMA journal_mode with a value");
    drv_close(c);
}

static void test_connection_settings(void **state)
{
    (void)state;
    drv_conn *c = open_as(DRV_SANDBOX_QUERY);
    sqlite3 *db = c->handle;
    int on = -1;
    assert_int_equal(sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, -1, &on), SQLITE_OK);
    assert_int_equal(on, 1);
    assert_int_equal(sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, -1, &on), SQLITE_OK);
    assert_int_equal(on, 0);
    assert_int_equal(sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, -1, &on),
                     SQLITE_OK);
    assert_int_equal(on, 0);
    refused(c, "SELECT load_extension('/tmp/evil.so')", "load_extension()");
    refused(c, "SELECT load_extension('/tmp/evil.so', 'init')", "load_extension()");
    /* foreign keys are enforced */
    errdetail e;
    assert_int_equal(drv_exec(c, "INSERT INTO orders VALUES ('o-1', 'nowhere')", NULL, 0, 0, NULL,
                              NULL, NULL, &e),
                     CITRUS_EINVAL);
    assert_non_null(strstr(e.message, "FOREIGN KEY"));
    ok(c, "INSERT INTO orders VALUES ('o-1', 'north')");
    ok(c, "DELETE FROM orders");
    /* defensive: the schema table is not written, even by a template */
    drv_close(c);
    c = open_as(DRV_SANDBOX_SCHEMA);
    assert_int_not_equal(drv_exec(c, "UPDATE sqlite_master SET sql = 'x' WHERE name = 'orders'",
                                  NULL, 0, 0, NULL, NULL, NULL, &e),
                         0);
    assert_int_not_equal(drv_exec(c, "DELETE FROM sqlite_schema", NULL, 0, 0, NULL, NULL, NULL, &e),
                         0);
    assert_int_equal(one_int(c, "SELECT count(*) FROM sqlite_master WHERE name = 'orders'"), 1);
    drv_close(c);
}

static void test_ddl(void **state)
{
    (void)state;
    drv_conn *c = open_as(DRV_SANDBOX_QUERY);
    refused(c, "DROP TABLE orders", "DROP TABLE");
    refused(c, "ALTER TABLE orders ADD COLUMN x INTEGER", "ALTER TABLE");
    refused(c, "ALTER TABLE orders RENAME TO gone", "ALTER TABLE");
    refused(c, "CREATE TEMP TABLE t (x)", "a TEMP object");
    refused(c, "CREATE TEMP VIEW v AS SELECT 1", "a TEMP object");
    refused(c, "CREATE TRIGGER tr AFTER INSERT ON loc BEGIN DELETE FROM orders; END",
            "CREATE TRIGGER");
    refused(c, "CREATE TEMP TRIGGER tr AFTER INSERT ON loc BEGIN DELETE FROM orders; END",
            "CREATE TRIGGER");
    refused(c, "CREATE VIRTUAL TABLE v USING fts5(x)", "CREATE VIRTUAL TABLE");
    /* the table is still there */
    assert_int_equal(one_int(c, "SELECT count(*) FROM loc"), 1);
    /* what adds without destroying stays allowed */
    ok(c, "CREATE TABLE IF NOT EXISTS extra (x INTEGER)");
    ok(c, "CREATE INDEX IF NOT EXISTS extra_x ON extra (x)");
    ok(c, "CREATE VIEW IF NOT EXISTS extra_v AS SELECT x FROM extra");
    refused(c, "DROP VIEW extra_v", "DROP VIEW");
    refused(c, "DROP INDEX extra_x", "DROP INDEX");
    drv_close(c);
    /* templates may change the schema */
    c = open_as(DRV_SANDBOX_SCHEMA);
    ok(c, "ALTER TABLE extra ADD COLUMN y TEXT");
    ok(c, "CREATE TRIGGER extra_t AFTER INSERT ON extra BEGIN SELECT 1; END");
    ok(c, "DROP TRIGGER extra_t");
    ok(c, "DROP VIEW extra_v");
    ok(c, "DROP TABLE extra");
    drv_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attach_and_detach),
        cmocka_unit_test(test_vacuum),
        cmocka_unit_test(test_pragmas),
        cmocka_unit_test(test_connection_settings),
        cmocka_unit_test(test_ddl),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
