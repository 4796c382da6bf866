/* tests/unit/test_schema.c — schema templates (provision/schema.c) applied to
 * SQLite and to a real PostgreSQL (support_pg: throwaway server, stopped
 * by PID at the end; missing binaries fail this binary).
 *
 * The same lifecycle runs on both: a template written by the test
 * (001_a.sql a table, 002_b.sql a unique index on it) is applied, applied
 * again (a no-op), extended by a failing 003 (which must leave nothing
 * behind while 001 and 002 stay), fixed, and finally an applied file is
 * edited (a conflict, and nothing else runs). Each PostgreSQL run uses a
 * database of its own. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "support_pg.h"

#include "citrus/errors.h"
#include "dbconn/driver.h"
#include "provision/schema.h"

static char tmpdir[256];
static int seq;

/* ---- helpers ------------------------------------------------------------------ */

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A fresh templates dir <tmp>/tN with an empty template dir "basic". */
static void new_templates(char *out, size_t len)
{
    snprintf(out, len, "%s/t%d", tmpdir, ++seq);
    assert_int_equal(mkdir(out, 0755), 0);
    char t[1024];
    snprintf(t, sizeof(t), "%s/basic", out);
    assert_int_equal(mkdir(t, 0755), 0);
}

static void write_template_file(const char *templates, const char *name, const char *text)
{
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/basic", templates);
    write_file(dir, name, text);
}

/* A new SQLite database file; its DSN into out. */
static void new_sqlite(char *out, size_t len)
{
    snprintf(out, len, "sqlite://%s/db%d.sqlite", tmpdir, ++seq);
    drv_conn *db = NULL;
    assert_int_equal(drv_open(out, &(drv_options){.create = true}, &db, NULL), 0);
    drv_close(db);
}

/* A new PostgreSQL database; its DSN into out. */
static void new_pg(char *out, size_t len)
{
    char name[32], sql[64];
    snprintf(name, sizeof(name), "schema_t%d", ++seq);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    drv_conn *admin = NULL;
    errdetail e;
    assert_int_equal(drv_open(pg.admin_dsn, NULL, &admin, NULL), 0);
    if (drv_run_script(admin, sql, &e) != 0)
        fail_msg("%s: %s", sql, e.message);
    drv_close(admin);
    pg_dsn(&pg, name, out, len);
}

static int apply(const char *dsn, const char *templates, const char *tmpl, schema_result *r,
                 errdetail *e)
{
    errdetail_clear(e);
    return schema_apply(dsn, templates, tmpl, 10000, r, e);
}

static void must_apply(const char *dsn, const char *templates, size_t applied, size_t skipped)
{
    schema_result r;
    errdetail e = {0};
    int rc = apply(dsn, templates, "basic", &r, &e);
    if (rc)
        fail_msg("schema_apply: %d %s", rc, e.message);
    assert_int_equal(r.applied, applied);
    assert_int_equal(r.skipped, skipped);
    assert_string_equal(r.failed_file, "");
}

/* The first column of sql's rows, joined with ','; rc of the query. */
static int query(const char *dsn, const char *sql, char *out, size_t len)
{
    drv_conn *db = NULL;
    char **rows = NULL;
    size_t n = 0;
    assert_int_equal(drv_open(dsn, NULL, &db, NULL), 0);
    int rc = drv_query_column(db, sql, &rows, &n, NULL);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t used = strlen(out);
        snprintf(out + used, len - used, "%s%s", i ? "," : "", rows[i]);
    }
    drv_free_column(rows, n);
    drv_close(db);
    return rc;
}

static int exec_sql(const char *dsn, const char *sql)
{
    drv_conn *db = NULL;
    assert_int_equal(drv_open(dsn, NULL, &db, NULL), 0);
    int rc = drv_run_script(db, sql, NULL);
    drv_close(db);
    return rc;
}

static void sha256_hex(const char *text, char out[65])
{
    unsigned char md[32];
    unsigned int n = 0;
    assert_true(EVP_Digest(text, strlen(text), md, &n, EVP_sha256(), NULL));
    for (unsigned int i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* ---- the lifecycle --------------------------------------------------------------------- */

static const char file_a[] = "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT);\n";
/* No trailing newline, and a comment at the end: the INSERT of the
 * migration row must still run. */
static const char file_b[] = "CREATE UNIQUE INDEX accounts_name ON accounts (name)\n-- done";

static void lifecycle(const char *dsn)
{
    char t[512], out[1024], want[256], sum[65];
    errdetail e = {0};
    schema_result r;
    new_templates(t, sizeof(t));
    /* written in reverse order: the directory order must not matter */
    write_template_file(t, "002_b.sql", file_b);
    write_template_file(t, "001_a.sql", file_a);
    write_template_file(t, "README.md", "not SQL: ignored");
    write_template_file(t, ".003_hidden.sql", "this is not SQL and must be ignored");

    must_apply(dsn, t, 2, 0);
    assert_int_equal(
        query(dsn, "SELECT name FROM citrus_migrations ORDER BY name", out, sizeof(out)), 0);
    assert_string_equal(out, "001_a.sql,002_b.sql");
    sha256_hex(file_a, sum);
    snprintf(want, sizeof(want), "SELECT checksum FROM citrus_migrations WHERE name = '001_a.sql'");
    assert_int_equal(query(dsn, want, out, sizeof(out)), 0);
    assert_string_equal(out, sum);
    assert_int_equal(query(dsn, "SELECT count(*) FROM citrus_migrations WHERE applied_at <> ''",
                           out, sizeof(out)),
                     0);
    assert_string_equal(out, "2");
    /* 002's unique index exists */
    assert_int_equal(exec_sql(dsn, "INSERT INTO accounts VALUES (1, 'ann')"), 0);
    assert_int_equal(exec_sql(dsn, "INSERT INTO accounts VALUES (2, 'ann')"), CITRUS_EINVAL);

    /* again: a no-op */
    must_apply(dsn, t, 0, 2);

    /* a failing third file: named, rolled back, the first two stay */
    write_template_file(t, "003_c.sql",
                        "CREATE TABLE leftovers (x INTEGER);\n"
                        "INSERT INTO no_such_table VALUES (1);\n");
    assert_int_equal(apply(dsn, t, "basic", &r, &e), CITRUS_EIO);
    assert_int_equal(e.code, CITRUS_EIO);
    assert_string_equal(r.failed_file, "003_c.sql");
    assert_int_equal(strncmp(e.message, "003_c.sql: ", 11), 0);
    assert_non_null(strstr(e.message, "no_such_table"));
    /* the database's SQLSTATE comes along (undefined_table) */
    assert_string_equal(e.sqlstate, strncmp(dsn, "postgres", 8) == 0 ? "42P01" : "");
    assert_int_equal(r.applied, 0);
    assert_int_equal(r.skipped, 2);
    assert_int_equal(query(dsn, "SELECT count(*) FROM leftovers", out, sizeof(out)), CITRUS_EINVAL);
    assert_int_equal(query(dsn, "SELECT count(*) FROM citrus_migrations", out, sizeof(out)), 0);
    assert_string_equal(out, "2");
    assert_int_equal(query(dsn, "SELECT name FROM accounts", out, sizeof(out)), 0);
    assert_string_equal(out, "ann");

    /* fixed (it was never applied, so editing it is fine) */
    write_template_file(t, "003_c.sql", "CREATE TABLE leftovers (x INTEGER);\n");
    must_apply(dsn, t, 1, 2);
    assert_int_equal(query(dsn, "SELECT count(*) FROM leftovers", out, sizeof(out)), 0);

    /* an applied file edited: a conflict naming it, and 004 does not run */
    write_template_file(t, "001_a.sql", "CREATE TABLE accounts (id INTEGER PRIMARY KEY);\n");
    write_template_file(t, "004_d.sql", "CREATE TABLE later (x INTEGER);\n");
    assert_int_equal(apply(dsn, t, "basic", &r, &e), CITRUS_ECONFLICT);
    assert_int_equal(e.code, CITRUS_ECONFLICT);
    assert_non_null(strstr(e.message, "001_a.sql"));
    assert_int_equal(r.applied, 0);
    assert_int_equal(query(dsn, "SELECT count(*) FROM later", out, sizeof(out)), CITRUS_EINVAL);
    assert_int_equal(query(dsn, "SELECT count(*) FROM citrus_migrations", out, sizeof(out)), 0);
    assert_string_equal(out, "3");
}

static void test_sqlite_lifecycle(void **state)
{
    char dsn[512];
    new_sqlite(dsn, sizeof(dsn));
    lifecycle(dsn);
}

static void test_pg_lifecycle(void **state)
{
    char dsn[256];
    new_pg(dsn, sizeof(dsn));
    lifecycle(dsn);
}

/* Dialect files: *.pg.sql only on PostgreSQL, *.sqlite.sql only on SQLite
 * (each in SQL the other would refuse), plain *.sql on both. */
static void dialects(const char *dsn, bool is_pg)
{
    char t[512], out[1024];
    new_templates(t, sizeof(t));
    write_template_file(t, "001_a.sql", file_a);
    write_template_file(
        t, "002_rls.pg.sql",
        "ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;\n"
        "CREATE POLICY p ON accounts USING (current_setting('x.y', true) = 'z');\n");
    write_template_file(t, "002_strict.sqlite.sql", "CREATE TABLE strict_t (x INTEGER) STRICT;\n");
    must_apply(dsn, t, 2, 0);
    assert_int_equal(
        query(dsn, "SELECT name FROM citrus_migrations ORDER BY name", out, sizeof(out)), 0);
    assert_string_equal(out,
                        is_pg ? "001_a.sql,002_rls.pg.sql" : "001_a.sql,002_strict.sqlite.sql");
    must_apply(dsn, t, 0, 2);
}

static void test_sqlite_dialects(void **state)
{
    char dsn[512];
    new_sqlite(dsn, sizeof(dsn));
    dialects(dsn, false);
}

static void test_pg_dialects(void **state)
{
    char dsn[256];
    new_pg(dsn, sizeof(dsn));
    dialects(dsn, true);
}

/* ---- the rest ------------------------------------------------------------------------------ */

static void test_template_names(void **state)
{
    const char *good[] = {"basic", "a-b_C9", "x",
                          "0123456789012345678901234567890123456789012345678901234567890123"};
    const char *bad[] = {
        "",      ".",
        "..",    "../etc",
        "a/b",   "a.b",
        "a b",   "/abs",
        "bad\n", "01234567890123456789012345678901234567890123456789012345678901234",
        NULL};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(schema_template_valid(good[i]));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(schema_template_valid(bad[i]));
}

/* "../evil" is refused even though the directory exists there. */
static void test_template_path_tricks(void **state)
{
    char t[512], evil[512], dsn[512], out[256];
    errdetail e = {0};
    schema_result r;
    new_templates(t, sizeof(t));
    new_sqlite(dsn, sizeof(dsn));
    snprintf(evil, sizeof(evil), "%s/evil", tmpdir);
    assert_int_equal(mkdir(evil, 0755), 0);
    write_file(evil, "001.sql", "CREATE TABLE evil (x INTEGER);");
    assert_int_equal(apply(dsn, t, "../evil", &r, &e), CITRUS_EINVAL);
    assert_int_equal(apply(dsn, t, "basic/../../evil", &r, &e), CITRUS_EINVAL);
    assert_int_equal(query(dsn, "SELECT count(*) FROM evil", out, sizeof(out)), CITRUS_EINVAL);
}

static void test_unknown_template(void **state)
{
    char t[512], dsn[512];
    errdetail e = {0};
    schema_result r;
    new_templates(t, sizeof(t));
    new_sqlite(dsn, sizeof(dsn));
    assert_int_equal(apply(dsn, t, "nosuch", &r, &e), CITRUS_ENOTFOUND);
    assert_int_equal(e.code, CITRUS_ENOTFOUND);
    assert_non_null(strstr(e.message, "nosuch"));
    /* an empty template is fine: nothing to do */
    must_apply(dsn, t, 0, 0);
}

static void test_unreachable_database(void **state)
{
    char t[512], dsn[512];
    errdetail e = {0};
    schema_result r;
    new_templates(t, sizeof(t));
    write_template_file(t, "001_a.sql", file_a);
    snprintf(dsn, sizeof(dsn), "sqlite://%s/no-such-dir/x.db", tmpdir);
    assert_int_equal(apply(dsn, t, "basic", &r, &e), CITRUS_EUNAVAILABLE);
    snprintf(dsn, sizeof(dsn), "postgresql://postgres@127.0.0.1:%d/postgres", pg_free_port());
    assert_int_equal(apply(dsn, t, "basic", &r, &e), CITRUS_EUNAVAILABLE);
    assert_int_equal(apply("nonsense", t, "basic", &r, &e), CITRUS_EINVAL);
}

/* Files bigger than 16 MiB are refused before anything runs. */
static void test_file_too_big(void **state)
{
    char t[512], dsn[512], path[PATH_MAX], out[256];
    errdetail e = {0};
    schema_result r;
    new_templates(t, sizeof(t));
    new_sqlite(dsn, sizeof(dsn));
    write_template_file(t, "001_a.sql", file_a);
    snprintf(path, sizeof(path), "%s/basic/002_big.sql", t);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 16 * 1024 * 1024 + 1), 0); /* sparse: cheap */
    close(fd);
    assert_int_equal(apply(dsn, t, "basic", &r, &e), CITRUS_EINVAL);
    assert_int_equal(e.code, CITRUS_EINVAL);
    assert_non_null(strstr(e.message, "002_big.sql"));
    assert_int_equal(query(dsn, "SELECT count(*) FROM accounts", out, sizeof(out)), CITRUS_EINVAL);
}

/* Transaction control inside a file is not allowed; it is reported. */
static void test_file_with_commit(void **state)
{
    char t[512], dsn[512];
    errdetail e = {0};
    schema_result r;
    new_templates(t, sizeof(t));
    new_sqlite(dsn, sizeof(dsn));
    write_template_file(t, "001_a.sql", "CREATE TABLE a (x INTEGER); COMMIT;");
    assert_int_equal(apply(dsn, t, "basic", &r, &e), CITRUS_EIO);
    assert_int_equal(e.code, CITRUS_EIO);
    assert_string_equal(r.failed_file, "001_a.sql");
    assert_non_null(strstr(e.message, "transaction"));
}

/* ---- main --------------------------------------------------------------------------------- */

int main(void)
{
    if (tmp_dir_create(tmpdir, sizeof(tmpdir), "schema") != 0)
        return 1;
    const struct CMUnitTest lite[] = {
        cmocka_unit_test(test_sqlite_lifecycle),     cmocka_unit_test(test_template_names),
        cmocka_unit_test(test_template_path_tricks), cmocka_unit_test(test_unknown_template),
        cmocka_unit_test(test_file_too_big),         cmocka_unit_test(test_file_with_commit),
        cmocka_unit_test(test_sqlite_dialects),
    };
    int failed = cmocka_run_group_tests_name("schema_sqlite", lite, NULL, NULL);
    const struct CMUnitTest pgt[] = {
        cmocka_unit_test(test_pg_lifecycle),
        cmocka_unit_test(test_pg_dialects),
        cmocka_unit_test(test_unreachable_database),
    };
    failed +=
        cmocka_run_group_tests_name("schema_postgres", pgt, pg_group_setup, pg_group_teardown);
    tmp_dir_remove(tmpdir);
    return failed;
}
