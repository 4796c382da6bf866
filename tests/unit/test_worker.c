/* Unit tests for provision/worker.c through svc_worker_run_once, without
 * the thread, on the embedded catalog store and a test clock: a shard goes
 * provisioning -> initializing -> active in a pass (template applied to a
 * real SQLite shard), a failing provisioner leaves it failed with its
 * error until a retry succeeds, an unreachable database is retried pass
 * after pass, a template that breaks fails the shard, and a new worker
 * (after a restart) picks up what an earlier one left half-way. The
 * provisioner is a fake that fails its first N calls and then hands over
 * to the real SQLite provisioner. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "citrus/errors.h"
#include "core/errdetail.h"
#include "provision/service.h"
#include "support_registry.h"

#define VNODES 8

typedef struct fake_prov {
    provisioner base;
    provisioner *real; /* prov_sqlite, in <dir>/shards */
    int fail_first;    /* the first calls that fail */
    int calls;
    const char *dsn; /* when set, answered instead of the real one's */
} fake_prov;

static int fake_provision(provisioner *p, const prov_request *req, prov_result *out, errdetail *e)
{
    fake_prov *f = (fake_prov *)p;
    memset(out, 0, sizeof(*out));
    if (++f->calls <= f->fail_first)
        return errdetail_set(e, CITRUS_EIO, "disk full (call %d)", f->calls);
    if (f->dsn) {
        out->dsn = strdup(f->dsn);
        return 0;
    }
    return f->real->provision(f->real, req, out, e);
}

static void fake_free(provisioner *p)
{
    fake_prov *f = (fake_prov *)p;
    f->real->free(f->real);
    f->real = NULL;
}

typedef struct wfix {
    regfix r;
    char shards[128], templates[128];
    fake_prov prov;
    shard_service svc;
} wfix;

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void template(wfix *w, const char *name, const char *file, const char *sql)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", w->templates, name);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/%s/%s", w->templates, name, file);
    write_file(path, sql);
}

/* The service on w->r's registry (handed over) with a fresh fake. */
static void service_start(wfix *w, int fail_first)
{
    w->prov = (fake_prov){.base = {.kind = "fake", .provision = fake_provision, .free = fake_free},
                          .real = prov_sqlite_new(w->shards),
                          .fail_first = fail_first};
    assert_non_null(w->prov.real);
    assert_int_equal(shard_service_init(&w->svc, w->r.reg, &w->prov.base, w->templates, 2000,
                                        "node1", w->r.clock),
                     0);
    w->r.reg = NULL; /* the service's now */
}

/* A restart: the service and its registry go, a new registry and service
 * (with a fresh fake) come up on the same catalog. */
static void service_restart(wfix *w, int fail_first)
{
    shard_service_destroy(&w->svc);
    w->r.reg = registry_new(w->r.d.st, w->r.clock, CITRUS_HASH_MURMUR3, VNODES, NULL, NULL);
    assert_non_null(w->r.reg);
    service_start(w, fail_first);
}

static int setup(void **state)
{
    wfix *w = calloc(1, sizeof(*w));
    regfix_open(&w->r, "worker", VNODES);
    snprintf(w->shards, sizeof(w->shards), "%s/shards", w->r.d.dir);
    snprintf(w->templates, sizeof(w->templates), "%s/templates", w->r.d.dir);
    assert_int_equal(mkdir(w->templates, 0700), 0);
    template(w, "retail", "001_orders.sql", "CREATE TABLE orders (id INTEGER PRIMARY KEY);\n");
    template(w, "broken", "001_bad.sql", "CREATE TABLE (;\n");
    service_start(w, 0);
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    wfix *w = *state;
    shard_service_destroy(&w->svc);
    regfix_close(&w->r);
    free(w);
    return 0;
}

/* Asks for shard id to be provisioned with template (may be NULL). */
static void provision(wfix *w, const char *id, const char *template_name)
{
    shard_spec spec = {.weight = 1, .provision = true, .template_name = (char *)template_name};
    snprintf(spec.id, sizeof(spec.id), "%s", id);
    shard s;
    errdetail e = {0};
    if (svc_provision_shard(&w->svc, &spec, "test", &s, &e) != 0)
        fail_msg("provision %s: %s", id, e.message);
    assert_int_equal(s.state, SHARD_PROVISIONING);
    shard_clear(&s);
}

static shard_state state_of(wfix *w, const char *id, shard *out)
{
    shard s;
    assert_int_equal(registry_shard_get(w->svc.reg, id, &s, NULL), 0);
    shard_state st = s.state;
    if (out)
        *out = s;
    else
        shard_clear(&s);
    return st;
}

/* Whether the SQLite database at dsn (sqlite:///path) has table name. */
static bool has_table(const char *dsn, const char *name)
{
    sqlite3 *db;
    assert_int_equal(strncmp(dsn, "sqlite://", 9), 0);
    assert_int_equal(sqlite3_open_v2(dsn + 9, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE name = ?", -1, &st, NULL),
        SQLITE_OK);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    bool found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return found;
}

static void one_pass_provisions_initializes_activates(void **state)
{
    wfix *w = *state;
    provision(w, "s1", "retail");
    clock_test_advance(w->r.clock, 5000);
    assert_true(svc_worker_run_once(&w->svc));
    shard s;
    assert_int_equal(state_of(w, "s1", &s), SHARD_ACTIVE);
    assert_int_equal(w->prov.calls, 1);
    assert_non_null(s.dsn);
    assert_true(has_table(s.dsn, "orders"));
    assert_true(has_table(s.dsn, "citrus_migrations"));
    assert_int_equal(s.nhistory, 3);
    assert_int_equal(s.history[0].to, SHARD_PROVISIONING);
    assert_int_equal(s.history[0].at_ms, REGFIX_WALL0);
    assert_int_equal(s.history[1].to, SHARD_INITIALIZING);
    assert_int_equal(s.history[1].at_ms, REGFIX_WALL0 + 5000);
    assert_string_equal(s.history[1].actor, "provisioner");
    assert_int_equal(s.history[2].to, SHARD_ACTIVE);
    assert_int_equal(s.history[2].at_ms, REGFIX_WALL0 + 5000);
    shard_clear(&s);
    size_t n;
    free(regfix_tokens(&w->r, "s1", &n));
    assert_int_equal(n, VNODES);
    /* nothing left to do: the next pass calls nobody */
    assert_true(svc_worker_run_once(&w->svc));
    assert_int_equal(w->prov.calls, 1);
}

static int failed_events(const shard *s)
{
    int n = 0;
    for (size_t i = 0; i < s->nhistory; i++)
        n += s->history[i].to == SHARD_FAILED;
    return n;
}

static void retry(wfix *w, const char *id)
{
    shard s;
    reg_result res;
    errdetail e = {0};
    if (svc_shard_action(&w->svc, id, "retry", 0, "test", &s, &res, &e) != 0)
        fail_msg("retry %s: %s", id, e.message);
    assert_int_equal(s.state, SHARD_PROVISIONING);
    shard_clear(&s);
    reg_result_clear(&res);
}

static void a_failing_provisioner_fails_until_a_retry_succeeds(void **state)
{
    wfix *w = *state;
    w->prov.fail_first = 2;
    provision(w, "s1", "retail");
    assert_true(svc_worker_run_once(&w->svc));
    shard s;
    assert_int_equal(state_of(w, "s1", &s), SHARD_FAILED);
    assert_non_null(strstr(s.error, "provisioning failed (io_error): disk full (call 1)"));
    shard_clear(&s);
    /* failed stays failed: the worker does not call again by itself */
    assert_true(svc_worker_run_once(&w->svc));
    assert_int_equal(w->prov.calls, 1);

    retry(w, "s1");
    assert_true(svc_worker_run_once(&w->svc));
    assert_int_equal(state_of(w, "s1", NULL), SHARD_FAILED);
    assert_int_equal(w->prov.calls, 2);

    retry(w, "s1");
    assert_true(svc_worker_run_once(&w->svc));
    assert_int_equal(state_of(w, "s1", &s), SHARD_ACTIVE);
    assert_int_equal(w->prov.calls, 3);
    assert_null(s.error);
    assert_int_equal(failed_events(&s), 2);
    assert_true(has_table(s.dsn, "orders"));
    shard_clear(&s);
}

static void an_unreachable_database_is_retried_each_pass(void **state)
{
    wfix *w = *state;
    char path[256], dsn[300];
    snprintf(path, sizeof(path), "%s/later.db", w->r.d.dir);
    snprintf(dsn, sizeof(dsn), "sqlite://%s", path);
    w->prov.dsn = dsn; /* a database that does not exist yet */
    provision(w, "s1", NULL);
    assert_true(svc_worker_run_once(&w->svc));
    assert_int_equal(state_of(w, "s1", NULL), SHARD_INITIALIZING);
    assert_true(svc_worker_run_once(&w->svc));
    assert_int_equal(state_of(w, "s1", NULL), SHARD_INITIALIZING);
    assert_int_equal(w->prov.calls, 1); /* provisioned once; only initializing is retried */

    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE t (x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_true(svc_worker_run_once(&w->svc));
    shard s;
    assert_int_equal(state_of(w, "s1", &s), SHARD_ACTIVE);
    assert_string_equal(s.dsn, dsn);
    shard_clear(&s);
}

static void a_broken_template_fails_the_shard(void **state)
{
    wfix *w = *state;
    provision(w, "s1", "broken");
    assert_true(svc_worker_run_once(&w->svc));
    shard s;
    assert_int_equal(state_of(w, "s1", &s), SHARD_FAILED);
    assert_non_null(strstr(s.error, "template 'broken' failed"));
    assert_non_null(strstr(s.error, "001_bad.sql"));
    shard_clear(&s);
}

static void a_retried_registered_database_is_not_provisioned(void **state)
{
    wfix *w = *state;
    char path[256];
    snprintf(path, sizeof(path), "%s/existing.db", w->r.d.dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_close(db);
    char dsn[300];
    snprintf(dsn, sizeof(dsn), "sqlite://%s", path);
    shard_spec spec = {.id = "reg1", .dsn = dsn, .weight = 1};
    reg_result res;
    errdetail e = {0};
    assert_int_equal(svc_register_shard(&w->svc, &spec, true, "test", NULL, &res, &e), 0);
    reg_result_clear(&res);
    /* no API action leads to failed (the worker does): put it there */
    assert_int_equal(regfix_move_on(w->svc.reg, w->r.clock, "reg1", SHARD_FAILED, 0), 0);
    retry(w, "reg1");
    shard s;
    assert_true(svc_worker_run_once(&w->svc));
    assert_int_equal(state_of(w, "reg1", &s), SHARD_ACTIVE);
    assert_string_equal(s.dsn, dsn);
    assert_string_equal(s.history[s.nhistory - 2].reason, "database exists");
    shard_clear(&s);
    assert_int_equal(w->prov.calls, 0);
}

/* What a worker that stopped half-way left behind: one shard in
 * provisioning (asked for, not provisioned yet) and one in initializing
 * (provisioned, not initialized). A new worker on a new registry takes
 * both; the provisioner is called for the first only. */
static void a_new_worker_resumes_what_was_left_half_way(void **state)
{
    wfix *w = *state;
    provision(w, "p1", "retail");
    errdetail e = {0};
    prov_request req = {.shard_id = "i1"};
    prov_result pr = {0};
    assert_int_equal(w->prov.real->provision(w->prov.real, &req, &pr, &e), 0);
    shard s;
    regfix_record(&w->r, &s, "i1", 1, pr.dsn);
    s.template_name = strdup("retail");
    assert_int_equal(shard_transition(&s, SHARD_PROVISIONING, "", "test", REGFIX_WALL0), 0);
    assert_int_equal(shard_transition(&s, SHARD_INITIALIZING, "", "provisioner", REGFIX_WALL0), 0);
    reg_result res;
    assert_int_equal(registry_shard_create(w->svc.reg, &s, NULL, &res, &e), 0);
    reg_result_clear(&res);
    shard_clear(&s);
    prov_result_clear(&pr);

    service_restart(w, 0);
    clock_test_advance(w->r.clock, 60000);
    assert_true(svc_worker_run_once(&w->svc));
    assert_int_equal(state_of(w, "p1", &s), SHARD_ACTIVE);
    assert_int_equal(s.history[s.nhistory - 1].at_ms, REGFIX_WALL0 + 60000);
    assert_true(has_table(s.dsn, "orders"));
    shard_clear(&s);
    assert_int_equal(state_of(w, "i1", &s), SHARD_ACTIVE);
    assert_true(has_table(s.dsn, "orders"));
    shard_clear(&s);
    assert_int_equal(w->prov.calls, 1);
}

/* A node restarted without a provisioner fails what waits for one. */
static void no_provisioner_after_a_restart(void **state)
{
    wfix *w = *state;
    provision(w, "p1", NULL);
    shard_service_destroy(&w->svc);
    w->r.reg = registry_new(w->r.d.st, w->r.clock, CITRUS_HASH_MURMUR3, VNODES, NULL, NULL);
    assert_int_equal(
        shard_service_init(&w->svc, w->r.reg, NULL, w->templates, 2000, "node1", w->r.clock), 0);
    w->r.reg = NULL;
    assert_true(svc_worker_run_once(&w->svc));
    shard s;
    assert_int_equal(state_of(w, "p1", &s), SHARD_FAILED);
    assert_string_equal(s.error, "no provisioner is configured");
    shard_clear(&s);
}

/* A provisioner answering a database another shard already has: the shard
 * fails with the conflict (naming that shard) instead of retrying forever. */
static void a_provisioned_database_of_another_shard_fails(void **state)
{
    wfix *w = *state;
    provision(w, "s1", NULL);
    assert_true(svc_worker_run_once(&w->svc));
    shard s;
    assert_int_equal(state_of(w, "s1", &s), SHARD_ACTIVE);
    char *dsn = strdup(s.dsn);
    shard_clear(&s);
    w->prov.dsn = dsn;
    provision(w, "s2", NULL);
    assert_true(svc_worker_run_once(&w->svc));
    assert_int_equal(state_of(w, "s2", &s), SHARD_FAILED);
    assert_non_null(strstr(s.error, "conflict"));
    assert_non_null(strstr(s.error, "shard 's1'"));
    assert_null(s.dsn);
    shard_clear(&s);
    w->prov.dsn = NULL;
    free(dsn);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(one_pass_provisions_initializes_activates, setup, teardown),
        cmocka_unit_test_setup_teardown(a_failing_provisioner_fails_until_a_retry_succeeds, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(an_unreachable_database_is_retried_each_pass, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_broken_template_fails_the_shard, setup, teardown),
        cmocka_unit_test_setup_teardown(a_retried_registered_database_is_not_provisioned, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_new_worker_resumes_what_was_left_half_way, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(no_provisioner_after_a_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(a_provisioned_database_of_another_shard_fails, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
