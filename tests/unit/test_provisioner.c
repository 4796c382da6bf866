/* tests/unit/test_provisioner.c — the three shard provisioners
 * (provision/prov_sqlite.c, prov_postgres.c, prov_exec.c).
 *
 *  - sqlite: files in a mkdtemp dir; idempotent provision, deprovision;
 *  - postgres: a real throwaway server from support_pg (stopped by PID at
 *    the end; missing binaries fail this binary): databases created,
 *    reused, usable through the returned DSN (URI and conninfo admin
 *    DSNs), dropped even with a session open; concurrent provisions of one
 *    id all succeed; an unreachable admin DSN is CITRUS_EUNAVAILABLE;
 *  - exec: /bin/sh scripts written by the test: the request on stdin, a
 *    failing exit with stderr, a timeout, garbage output, outputs larger
 *    than the cap (running programs itself is test_proc.c's). */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "support_pg.h"
#include "support_script.h"

#include "citrus/errors.h"
#include "dbconn/driver.h"
#include "provision/provisioner.h"

static char tmpdir[256];

/* ---- helpers ------------------------------------------------------------------ */

static int provision(provisioner *p, const char *id, prov_result *out, errdetail *e)
{
    prov_request req = {.shard_id = id, .template_name = "basic"};
    errdetail_clear(e);
    return p->provision(p, &req, out, e);
}

static void must_provision(provisioner *p, const char *id, prov_result *out)
{
    errdetail e = {0};
    int rc = provision(p, id, out, &e);
    if (rc)
        fail_msg("provision %s (%s): %d %s", id, p->kind, rc, e.message);
    assert_non_null(out->dsn);
}

static void must_deprovision(provisioner *p, const char *id, const char *dsn)
{
    errdetail e = {0};
    int rc = p->deprovision(p, id, dsn, &e);
    if (rc)
        fail_msg("deprovision %s (%s): %d %s", id, p->kind, rc, e.message);
}

static drv_conn *must_open(const char *dsn)
{
    drv_conn *db = NULL;
    errdetail e;
    int rc = drv_open(dsn, NULL, &db, &e);
    if (rc)
        fail_msg("open %s: %d %s", dsn, rc, e.message);
    return db;
}

static void must_exec(drv_conn *db, const char *sql)
{
    errdetail e;
    if (drv_run_script(db, sql, &e) != 0)
        fail_msg("%s: %s", sql, e.message);
}

static char *one_value(drv_conn *db, const char *sql)
{
    char **rows = NULL;
    size_t n = 0;
    errdetail e;
    if (drv_query_column(db, sql, &rows, &n, &e) != 0)
        fail_msg("%s: %s", sql, e.message);
    assert_int_equal(n, 1);
    char *v = strdup(rows[0]);
    drv_free_column(rows, n);
    return v;
}

static void assert_one_value(drv_conn *db, const char *sql, const char *want)
{
    char *v = one_value(db, sql);
    assert_string_equal(v, want);
    free(v);
}

static char *describe(provisioner *p)
{
    json_t *j = p->describe(p);
    assert_non_null(j);
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    return s;
}

/* ---- sqlite -------------------------------------------------------------------- */

static void test_sqlite_provision(void **state)
{
    char dir[512], real[PATH_MAX], want[PATH_MAX + 64], path[PATH_MAX + 32];
    snprintf(dir, sizeof(dir), "%s/shards/nested", tmpdir); /* does not exist yet */
    provisioner *p = prov_sqlite_new(dir);
    assert_non_null(p);
    assert_string_equal(p->kind, "sqlite");

    prov_result r1 = {0}, r2 = {0};
    must_provision(p, "s-1", &r1);
    assert_non_null(realpath(dir, real));
    snprintf(want, sizeof(want), "sqlite://%s/s-1.db", real);
    assert_string_equal(r1.dsn, want);
    assert_int_equal(strncmp(r1.dsn, "sqlite:///", 10), 0);
    assert_int_equal(r1.nreplicas, 0);
    snprintf(path, sizeof(path), "%s/s-1.db", real);
    assert_int_equal(access(path, F_OK), 0);

    drv_conn *db = must_open(r1.dsn);
    must_exec(db, "CREATE TABLE kept (x INTEGER); INSERT INTO kept VALUES (7)");
    assert_one_value(db, "PRAGMA journal_mode", "wal");
    drv_close(db);

    /* again: same DSN, the same (not a recreated) file */
    must_provision(p, "s-1", &r2);
    assert_string_equal(r2.dsn, r1.dsn);
    db = must_open(r2.dsn);
    assert_one_value(db, "SELECT x FROM kept", "7");
    drv_close(db);

    must_deprovision(p, "s-1", r1.dsn);
    assert_int_equal(access(path, F_OK), -1);
    char side[PATH_MAX + 40];
    snprintf(side, sizeof(side), "%s-wal", path);
    assert_int_equal(access(side, F_OK), -1);
    must_deprovision(p, "s-1", r1.dsn); /* idempotent */

    char *d = describe(p);
    char wantd[700];
    snprintf(wantd, sizeof(wantd), "{\"dir\":\"%s\",\"kind\":\"sqlite\"}", dir);
    assert_string_equal(d, wantd);
    free(d);
    prov_result_clear(&r1);
    prov_result_clear(&r2);
    assert_null(r1.dsn);
    p->free(p);
}

static void test_sqlite_bad_ids(void **state)
{
    char dir[512];
    errdetail e = {0};
    snprintf(dir, sizeof(dir), "%s/shards-bad", tmpdir);
    provisioner *p = prov_sqlite_new(dir);
    const char *bad[] = {"", "../x", "a/b", ".hidden", "-x", "a.db", NULL};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        prov_result r = {0};
        assert_int_equal(provision(p, bad[i], &r, &e), CITRUS_EINVAL);
        assert_int_equal(e.code, CITRUS_EINVAL);
        assert_string_equal(e.message, "invalid shard id");
        assert_null(r.dsn);
        assert_int_equal(p->deprovision(p, bad[i], NULL, &e), CITRUS_EINVAL);
    }
    p->free(p);
    assert_null(prov_sqlite_new(""));
    assert_null(prov_sqlite_new(NULL));
}

/* ---- postgres ------------------------------------------------------------------ */

static bool pg_has_database(const char *name)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_database WHERE datname = '%s'", name);
    drv_conn *admin = must_open(pg.admin_dsn);
    char *v = one_value(admin, sql);
    bool has = strcmp(v, "1") == 0;
    free(v);
    drv_close(admin);
    return has;
}

/* dsn with the password of a URI's user info ("user:PASSWORD@") replaced
 * by "PW" (passwords are random); into out. */
static void without_password(const char *dsn, char *out, size_t len)
{
    const char *colon = strstr(dsn, "_app:"), *at = colon ? strchr(colon, '@') : NULL;
    if (!at) {
        snprintf(out, len, "%s", dsn);
        return;
    }
    snprintf(out, len, "%.*sPW%s", (int)(colon + 5 - dsn), dsn, at);
}

/* The SQLSTATE of a statement that must fail. */
static void assert_refused(drv_conn *db, const char *sql, const char *sqlstate)
{
    errdetail e;
    int rc = drv_run_script(db, sql, &e);
    if (rc == 0)
        fail_msg("%s: accepted, want SQLSTATE %s", sql, sqlstate);
    assert_string_equal(e.sqlstate, sqlstate);
}

/* The shard's DSN logs in as its application role, which may read and
 * write rows but not create, drop, alter or truncate, has no role
 * attributes, and cannot reach another shard's database; the tables
 * belong to the admin, whose DSN the provisioner gives only as the owner
 * DSN of its own shards. */
static void test_pg_provision_uri(void **state)
{
    provisioner *p = prov_postgres_new(pg.admin_dsn, "citrus_t_");
    assert_non_null(p);
    assert_string_equal(p->kind, "postgres");
    prov_result r1 = {0}, r2 = {0}, other = {0};
    must_provision(p, "shard-a1", &r1);
    char want[256], got[256], owner[256];
    snprintf(want, sizeof(want),
             "postgresql://citrus_t_shard_a1_app:PW@127.0.0.1:%d/citrus_t_shard_a1", pg.port);
    without_password(r1.dsn, got, sizeof(got));
    assert_string_equal(got, want);
    assert_null(strstr(r1.dsn, "postgres@"));
    assert_true(strlen(r1.dsn) - strlen(want) + 2 == 48); /* 24 random bytes in hex */
    assert_true(pg_has_database("citrus_t_shard_a1"));

    drv_conn *db = must_open(r1.dsn);
    assert_one_value(db, "SELECT current_database()", "citrus_t_shard_a1");
    assert_one_value(db, "SELECT current_user", "citrus_t_shard_a1_app");
    assert_one_value(db,
                     "SELECT rolsuper OR rolcreatedb OR rolcreaterole OR rolbypassrls OR "
                     "rolreplication FROM pg_roles WHERE rolname = current_user",
                     "f");
    assert_refused(db, "CREATE TABLE mine (x INTEGER)", "42501");
    assert_refused(db, "CREATE DATABASE elsewhere", "42501");
    assert_refused(db, "CREATE ROLE intruder", "42501");
    /* a table the owner creates later: rows yes, DDL no */
    pg_dsn(&pg, "citrus_t_shard_a1", owner, sizeof(owner));
    char *od = p->owner_dsn(p, "shard-a1", r1.dsn);
    assert_non_null(od);
    assert_string_equal(od, owner);
    free(od);
    assert_null(p->owner_dsn(p, "shard-a1", owner)); /* not its role: use the DSN itself */
    assert_null(p->owner_dsn(p, "shard-a2", r1.dsn));
    drv_conn *own = must_open(owner);
    must_exec(own, "CREATE TABLE kept (id BIGSERIAL PRIMARY KEY, x INTEGER); "
                   "INSERT INTO kept (x) VALUES (7)");
    drv_close(own);
    assert_one_value(db, "SELECT x FROM kept", "7");
    must_exec(db, "INSERT INTO kept (x) VALUES (8); UPDATE kept SET x = 9 WHERE x = 8; "
                  "DELETE FROM kept WHERE x = 9");
    assert_refused(db, "DROP TABLE kept", "42501");
    assert_refused(db, "TRUNCATE kept", "42501");
    assert_refused(db, "ALTER TABLE kept ADD COLUMN y INTEGER", "42501");
    drv_close(db);

    /* another shard's role cannot connect to this database */
    must_provision(p, "shard-a2", &other);
    char cross[256];
    snprintf(cross, sizeof(cross),
             "postgresql://citrus_t_shard_a2_app@127.0.0.1:%d/citrus_t_shard_a1", pg.port);
    drv_conn *no = NULL;
    errdetail e;
    assert_int_equal(drv_open(cross, &(drv_options){.timeout_ms = 3000}, &no, &e),
                     CITRUS_EUNAVAILABLE);
    print_message("cross-shard connect: %s\n", e.message);

    /* again: the database reused, the role kept (its password renewed) */
    must_provision(p, "shard-a1", &r2);
    without_password(r2.dsn, got, sizeof(got));
    assert_string_equal(got, want);
    db = must_open(r2.dsn);
    assert_one_value(db, "SELECT x FROM kept", "7");

    /* dropped even while a session (db) is connected to it, and its role */
    must_deprovision(p, "shard-a1", r1.dsn);
    assert_false(pg_has_database("citrus_t_shard_a1"));
    drv_close(db);
    drv_conn *admin = must_open(pg.admin_dsn);
    assert_one_value(admin, "SELECT count(*) FROM pg_roles WHERE rolname = 'citrus_t_shard_a1_app'",
                     "0");
    drv_close(admin);
    drv_conn *gone = NULL;
    assert_int_equal(drv_open(r1.dsn, &(drv_options){.timeout_ms = 3000}, &gone, NULL),
                     CITRUS_EUNAVAILABLE);
    must_deprovision(p, "shard-a1", r1.dsn); /* idempotent */
    must_deprovision(p, "shard-a2", other.dsn);

    prov_result_clear(&r1);
    prov_result_clear(&r2);
    prov_result_clear(&other);
    p->free(p);
}

/* A conninfo admin DSN gives a conninfo shard DSN with everything kept but
 * the database and the login. */
static void test_pg_provision_conninfo(void **state)
{
    char admin[256];
    snprintf(admin, sizeof(admin),
             "host=127.0.0.1 port=%d user=postgres dbname=postgres application_name='citrus t'",
             pg.port);
    provisioner *p = prov_postgres_new(admin, NULL);
    assert_non_null(p);
    prov_result r = {0};
    must_provision(p, "Shard-B", &r);
    assert_non_null(strstr(r.dsn, "dbname='Shard_B'"));
    assert_non_null(strstr(r.dsn, "user='Shard_B_app'"));
    assert_non_null(strstr(r.dsn, "password='"));
    assert_non_null(strstr(r.dsn, "port='"));
    assert_null(strstr(r.dsn, "dbname='postgres'"));
    assert_null(strstr(r.dsn, "user='postgres'"));
    drv_conn *db = must_open(r.dsn);
    assert_one_value(db, "SELECT current_database()", "Shard_B"); /* case kept: quoted */
    assert_one_value(db, "SELECT current_user", "Shard_B_app");
    assert_one_value(db, "SELECT current_setting('application_name')", "citrus t");
    drv_close(db);
    must_deprovision(p, "Shard-B", r.dsn);
    assert_false(pg_has_database("Shard_B"));
    prov_result_clear(&r);
    p->free(p);
}

/* URI parameters survive; dbname, user and password parameters do not
 * override the shard's own. */
static void test_pg_uri_params(void **state)
{
    char admin[256], want[256], got[256];
    snprintf(admin, sizeof(admin),
             "postgres://postgres@127.0.0.1:%d/postgres?dbname=postgres&sslmode=disable"
             "&user=postgres&application_name=citrus&password=x",
             pg.port);
    provisioner *p = prov_postgres_new(admin, "q_");
    prov_result r = {0};
    must_provision(p, "s1", &r);
    snprintf(want, sizeof(want),
             "postgres://q_s1_app:PW@127.0.0.1:%d/q_s1?sslmode=disable&application_name=citrus",
             pg.port);
    without_password(r.dsn, got, sizeof(got));
    assert_string_equal(got, want);
    drv_conn *db = must_open(r.dsn);
    assert_one_value(db, "SELECT current_database()", "q_s1");
    assert_one_value(db, "SELECT current_user", "q_s1_app");
    drv_close(db);
    must_deprovision(p, "s1", r.dsn);
    prov_result_clear(&r);
    p->free(p);
}

typedef struct race_arg {
    provisioner *p;
    int rc;
    errdetail e;
    prov_result r;
} race_arg;

static void *race_main(void *a)
{
    race_arg *ra = a;
    prov_request req = {.shard_id = "raced"};
    ra->rc = ra->p->provision(ra->p, &req, &ra->r, &ra->e);
    return NULL;
}

/* Concurrent provisions of one id: all succeed (duplicate_database and
 * duplicate_object are a success) with the same database and role. */
static void test_pg_concurrent_provision(void **state)
{
    provisioner *p = prov_postgres_new(pg.admin_dsn, "race_");
    race_arg args[4];
    pthread_t th[4];
    memset(args, 0, sizeof(args));
    for (int i = 0; i < 4; i++) {
        args[i].p = p;
        assert_int_equal(pthread_create(&th[i], NULL, race_main, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        if (args[i].rc)
            fail_msg("provision %d: %d %s", i, args[i].rc, args[i].e.message);
        char a[256], b[256]; /* the same but for the password (the last one set counts) */
        without_password(args[i].r.dsn, a, sizeof(a));
        without_password(args[0].r.dsn, b, sizeof(b));
        assert_string_equal(a, b);
    }
    assert_true(pg_has_database("race_raced"));
    must_deprovision(p, "raced", NULL);
    for (int i = 0; i < 4; i++)
        prov_result_clear(&args[i].r);
    p->free(p);
}

static void test_pg_unreachable(void **state)
{
    char admin[128];
    errdetail e = {0};
    snprintf(admin, sizeof(admin), "postgresql://postgres@127.0.0.1:%d/postgres", pg_free_port());
    provisioner *p = prov_postgres_new(admin, "x_");
    prov_result r = {0};
    int64_t t0 = mono_ms();
    assert_int_equal(provision(p, "s1", &r, &e), CITRUS_EUNAVAILABLE);
    assert_int_equal(e.code, CITRUS_EUNAVAILABLE);
    assert_null(r.dsn);
    assert_true(e.message[0] != '\0');
    assert_int_equal(p->deprovision(p, "s1", NULL, &e), CITRUS_EUNAVAILABLE);
    assert_true(mono_ms() - t0 < 10000);
    p->free(p);
}

static void test_pg_bad_input(void **state)
{
    errdetail e = {0};
    assert_null(prov_postgres_new("sqlite:///tmp/x.db", NULL));
    assert_null(prov_postgres_new("nonsense", NULL));
    assert_null(prov_postgres_new(pg.admin_dsn, "bad-prefix"));
    assert_null(prov_postgres_new(pg.admin_dsn, "bad\"prefix"));
    provisioner *p = prov_postgres_new(pg.admin_dsn, "prefix_of_twenty_ch_");
    prov_result r = {0};
    /* 20 + 44 = 64 bytes: PostgreSQL would truncate it, so it is refused */
    assert_int_equal(provision(p, "abcdefghijabcdefghijabcdefghijabcdefghij", &r, &e),
                     CITRUS_EINVAL); /* 60: no room for the role's "_app" */
    assert_int_equal(provision(p, "abcdefghijabcdefghijabcdefghijabcdefghijabcd", &r, &e),
                     CITRUS_EINVAL);
    assert_int_equal(provision(p, "../x", &r, &e), CITRUS_EINVAL);
    p->free(p);
}

static void test_pg_describe_redacts(void **state)
{
    provisioner *p = prov_postgres_new("postgresql://admin:s3cret@db.example:5432/postgres", "p_");
    assert_non_null(p);
    char *d = describe(p);
    assert_null(strstr(d, "s3cret"));
    assert_non_null(strstr(d, "\"kind\":\"postgres\""));
    assert_non_null(strstr(d, "db.example"));
    free(d);
    p->free(p);
    p = prov_postgres_new("host=db.example user=admin password=s3cret dbname=postgres", "p_");
    assert_non_null(p);
    d = describe(p);
    assert_null(strstr(d, "s3cret"));
    free(d);
    p->free(p);
}

/* ---- exec ------------------------------------------------------------------------ */

/* An executable /bin/sh script <tmpdir>/<name>; its path into out. */
static void script(const char *name, const char *body, char *out, size_t len)
{
    script_write(tmpdir, name, body, out, len);
}

/* An exec provisioner running the script <tmpdir>/<name> with this body. */
static provisioner *exec_script(const char *name, const char *body, int timeout_ms)
{
    char path[512];
    script(name, body, path, sizeof(path));
    provisioner *p = prov_exec_new(path, timeout_ms, NULL);
    assert_non_null(p);
    return p;
}

static void test_exec_ok(void **state)
{
    errdetail e = {0};
    provisioner *p = exec_script(
        "ok.sh",
        "input=$(cat)\n"
        "echo \"$input\" | grep -q '\"shard_id\":\"s-42\"' || { echo \"no shard id in $input\" "
        ">&2; exit 3; }\n"
        "echo \"$input\" | grep -q '\"action\":\"provision\"' || exit 4\n"
        "echo \"$input\" | grep -q '\"template\":\"basic\"' || exit 5\n"
        "echo \"$input\" | grep -q '\"region\":\"eu\"' || exit 6\n"
        "echo '{\"dsn\":\"sqlite:///tmp/x.db\",\"replicas\":[\"sqlite:///tmp/x-r1.db\"]}'\n",
        10000);
    assert_string_equal(p->kind, "exec");
    json_t *params = json_pack("{s:s}", "region", "eu");
    prov_request req = {.shard_id = "s-42", .template_name = "basic", .params = params};
    prov_result r = {0};
    int rc = p->provision(p, &req, &r, &e);
    if (rc)
        fail_msg("provision: %d %s", rc, e.message);
    assert_string_equal(r.dsn, "sqlite:///tmp/x.db");
    assert_int_equal(r.nreplicas, 1);
    assert_string_equal(r.replicas[0], "sqlite:///tmp/x-r1.db");
    prov_result_clear(&r);

    /* another id: the script sees it is not s-42 and fails: stdin really is the request */
    req.shard_id = "s-43";
    assert_int_equal(p->provision(p, &req, &r, &e), CITRUS_EIO);
    assert_int_equal(e.code, CITRUS_EIO);
    assert_non_null(strstr(e.message, "exit 3"));
    assert_non_null(strstr(e.message, "no shard id in"));
    assert_null(r.dsn);
    json_decref(params);

    char *d = describe(p);
    assert_non_null(strstr(d, "\"kind\":\"exec\""));
    assert_non_null(strstr(d, "\"timeout_ms\":10000"));
    free(d);
    p->free(p);
}

static void test_exec_deprovision(void **state)
{
    errdetail e = {0};
    provisioner *p =
        exec_script("dep.sh",
                    "input=$(cat)\n"
                    "echo \"$input\" | grep -q '\"action\":\"deprovision\"' || exit 4\n"
                    "echo \"$input\" | grep -q '\"dsn\":\"sqlite:///tmp/x.db\"' || exit 5\n"
                    "echo \"$input\" | grep -q '\"shard_id\":\"s-1\"' || exit 6\n",
                    10000);
    assert_int_equal(p->deprovision(p, "s-1", "sqlite:///tmp/x.db", &e), 0);
    assert_int_equal(p->deprovision(p, "s-2", "sqlite:///tmp/x.db", &e), CITRUS_EIO);
    assert_non_null(strstr(e.message, "exit 6"));
    p->free(p);
}

static void test_exec_failure(void **state)
{
    errdetail e = {0};
    provisioner *p = exec_script(
        "fail.sh", "cat >/dev/null\necho 'quota exceeded for project x' >&2\nexit 2\n", 10000);
    prov_result r = {0};
    assert_int_equal(provision(p, "s1", &r, &e), CITRUS_EIO);
    assert_non_null(strstr(e.message, "exit 2"));
    assert_non_null(strstr(e.message, "quota exceeded for project x"));
    assert_null(r.dsn);
    p->free(p);

    p = prov_exec_new("/nonexistent/provisioner", 10000, NULL);
    assert_non_null(p);
    assert_int_equal(provision(p, "s1", &r, &e), CITRUS_EIO);
    assert_int_equal(e.code, CITRUS_EIO);
    assert_non_null(strstr(e.message, "/nonexistent/provisioner"));
    p->free(p);
}

static void test_exec_timeout(void **state)
{
    errdetail e = {0};
    provisioner *p = exec_script("slow.sh", "exec sleep 30\n", 200);
    prov_result r = {0};
    assert_int_equal(provision(p, "s1", &r, &e), CITRUS_ETIMEOUT);
    assert_int_equal(e.code, CITRUS_ETIMEOUT);
    assert_non_null(strstr(e.message, "timed out after 200 ms"));
    assert_null(r.dsn);
    p->free(p);
}

static void test_exec_garbage(void **state)
{
    const char *bodies[] = {
        "cat >/dev/null\necho 'this is not json'\n",
        "cat >/dev/null\necho '[\"an\",\"array\"]'\n",
        "cat >/dev/null\necho '{\"replicas\":[]}'\n",
        "cat >/dev/null\necho '{\"dsn\":\"mysql://nope\"}'\n",
        "cat >/dev/null\necho '{\"dsn\":42}'\n",
        "cat >/dev/null\necho '{\"dsn\":\"sqlite:///tmp/x.db\",\"replicas\":[\"bogus dsn\"]}'\n",
        "cat >/dev/null\necho '{\"dsn\":\"sqlite:///tmp/x.db\",\"replicas\":\"x\"}'\n",
        "cat >/dev/null\n",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        char name[32];
        errdetail e = {0};
        snprintf(name, sizeof(name), "garbage%zu.sh", i);
        provisioner *p = exec_script(name, bodies[i], 10000);
        prov_result r = {0};
        int rc = provision(p, "s1", &r, &e);
        if (rc != CITRUS_EIO)
            fail_msg("%s: %d (%s), want EIO", bodies[i], rc, e.message);
        assert_int_equal(e.code, CITRUS_EIO);
        assert_true(e.message[0] != '\0');
        assert_null(r.dsn);
        assert_int_equal(r.nreplicas, 0);
        p->free(p);
    }
}

/* 2 MiB on each of stdout and stderr: no deadlock, capped, refused. */
static void test_exec_big_output(void **state)
{
    errdetail e = {0};
    provisioner *p = exec_script("big.sh",
                                 "cat >/dev/null\n"
                                 "head -c 2097152 /dev/zero | tr '\\0' 'e' >&2 &\n"
                                 "head -c 2097152 /dev/zero | tr '\\0' 'o'\n"
                                 "wait\n",
                                 20000);
    prov_result r = {0};
    int64_t t0 = mono_ms();
    assert_int_equal(provision(p, "s1", &r, &e), CITRUS_EIO);
    assert_non_null(strstr(e.message, "1 MiB"));
    assert_true(mono_ms() - t0 < 15000);
    p->free(p);
}

/* ---- main --------------------------------------------------------------------------------- */

int main(void)
{
    if (tmp_dir_create(tmpdir, sizeof(tmpdir), "prov") != 0)
        return 1;
    const struct CMUnitTest local[] = {
        cmocka_unit_test(test_sqlite_provision),
        cmocka_unit_test(test_sqlite_bad_ids),
        cmocka_unit_test(test_exec_ok),
        cmocka_unit_test(test_exec_deprovision),
        cmocka_unit_test(test_exec_failure),
        cmocka_unit_test(test_exec_timeout),
        cmocka_unit_test(test_exec_garbage),
        cmocka_unit_test(test_exec_big_output),
        cmocka_unit_test(test_pg_describe_redacts),
    };
    int failed = cmocka_run_group_tests_name("provisioner_local", local, NULL, NULL);
    const struct CMUnitTest pgt[] = {
        cmocka_unit_test(test_pg_provision_uri), cmocka_unit_test(test_pg_provision_conninfo),
        cmocka_unit_test(test_pg_uri_params),    cmocka_unit_test(test_pg_concurrent_provision),
        cmocka_unit_test(test_pg_unreachable),   cmocka_unit_test(test_pg_bad_input),
    };
    failed +=
        cmocka_run_group_tests_name("provisioner_postgres", pgt, pg_group_setup, pg_group_teardown);
    tmp_dir_remove(tmpdir);
    return failed;
}
