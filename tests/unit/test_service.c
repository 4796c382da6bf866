/* Unit tests for provision/service.c on the embedded catalog store and a
 * test clock: registering an existing database, the lifecycle actions of
 * the API (allowed and refused with the allowed targets named), and the
 * re-pin the service owes after a change that takes a shard with tenants
 * out of the ring (a forced retirement, a forced delete). The health
 * probes are test_health.c's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include "citrus/errors.h"
#include "provision/service.h"
#include "support_registry.h"

#define VNODES 8

typedef struct sfix {
    regfix r;
    shard_service svc;
} sfix;

static int setup(void **state)
{
    sfix *s = calloc(1, sizeof(*s));
    regfix_open(&s->r, "service", VNODES);
    regfix_add_active(&s->r, "a", 1, "sqlite:///nonexistent/a.db");
    regfix_add_active(&s->r, "b", 1, "sqlite:///nonexistent/b.db");
    assert_int_equal(shard_service_init(&s->svc, s->r.reg, NULL, NULL, 2000, "node1", s->r.clock),
                     0);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    sfix *s = *state;
    shard_service_destroy(&s->svc); /* frees the registry */
    s->r.reg = NULL;
    regfix_close(&s->r);
    free(s);
    return 0;
}

/* svc_shard_action, its answer dropped. */
static int action(sfix *s, const char *id, const char *what, unsigned flags, errdetail *e,
                  reg_result *res)
{
    shard out;
    int rc = svc_shard_action(&s->svc, id, what, flags, "test", &out, res, e);
    if (rc == 0)
        shard_clear(&out);
    return rc;
}

static int act(sfix *s, const char *id, const char *what, unsigned flags)
{
    reg_result res = {0};
    errdetail e = {0};
    int rc = action(s, id, what, flags, &e, &res);
    reg_result_clear(&res);
    return rc;
}

static shard_state state_of(sfix *s, const char *id)
{
    shard sh;
    assert_int_equal(registry_shard_get(s->svc.reg, id, &sh, NULL), 0);
    shard_state st = sh.state;
    shard_clear(&sh);
    return st;
}

static void register_an_existing_database(void **state)
{
    sfix *s = *state;
    char path[256], dsn[300];
    snprintf(path, sizeof(path), "%s/c.db", s->r.d.dir);
    snprintf(dsn, sizeof(dsn), "sqlite://%s", path);
    shard_spec spec = {.id = "c", .dsn = dsn, .weight = 2};
    shard out;
    reg_result res;
    errdetail e = {0};
    /* not there yet: refused, nothing created */
    assert_int_equal(svc_register_shard(&s->svc, &spec, true, "test", &out, &res, &e),
                     CITRUS_EUNREACHABLE);
    assert_int_equal(registry_shard_get(s->svc.reg, "c", &out, NULL), CITRUS_ENOTFOUND);

    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_close(db);
    clock_test_advance(s->r.clock, 42);
    assert_int_equal(svc_register_shard(&s->svc, &spec, true, "test", &out, &res, &e), 0);
    assert_int_equal(out.state, SHARD_ACTIVE);
    assert_int_equal(out.created_ms, REGFIX_WALL0 + 42);
    assert_int_equal(out.nhistory, 2);
    assert_string_equal(out.history[1].reason, "reachable and initialized");
    assert_int_equal(res.tokens_after, 2 * VNODES);
    shard_clear(&out);
    reg_result_clear(&res);
    /* the id is taken now */
    assert_int_equal(svc_register_shard(&s->svc, &spec, false, "test", NULL, &res, &e),
                     CITRUS_EEXISTS);
}

/* Runs sql on the SQLite file at path; the first column of the first
 * row as an int (-1 when none). */
static int lite_int(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    int v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    } else {
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    }
    sqlite3_close(db);
    return v;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* svc_ensure_template: on a pooled connection, remembering the template's
 * digest, so a shard already set up for the type is not asked again (here
 * shown by removing what it applied behind its back: not re-applied); a
 * changed template (new digest) is checked and applied again; a retired
 * shard's entry is forgotten; no time left before the request's deadline
 * is CITRUS_ESHARDDOWN without touching the shard. */
static void ensure_template_remembers_what_is_applied(void **state)
{
    sfix *s = *state;
    char tdir[300], tmpl[320], file[400], path[256], dsn[300];
    snprintf(tdir, sizeof(tdir), "%s/templates", s->r.d.dir);
    snprintf(tmpl, sizeof(tmpl), "%s/retail", tdir);
    assert_int_equal(mkdir(tdir, 0700), 0);
    assert_int_equal(mkdir(tmpl, 0700), 0);
    snprintf(file, sizeof(file), "%s/001_orders.sql", tmpl);
    write_text(file, "CREATE TABLE orders (id INTEGER PRIMARY KEY);\n");
    snprintf(s->svc.templates_dir, sizeof(s->svc.templates_dir), "%s", tdir);
    snprintf(path, sizeof(path), "%s/c.db", s->r.d.dir);
    snprintf(dsn, sizeof(dsn), "sqlite://%s", path);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_close(db);
    shard_spec spec = {.id = "c", .dsn = dsn, .weight = 1};
    reg_result res;
    errdetail e = {0};
    assert_int_equal(svc_register_shard(&s->svc, &spec, true, "test", NULL, &res, &e), 0);
    reg_result_clear(&res);

    svc_ensure_ctx ctx = {.svc = &s->svc}; /* no deadline */
    assert_int_equal(svc_ensure_template(&ctx, "c", "retail", &e), 0);
    assert_int_equal(lite_int(path, "SELECT count(*) FROM citrus_migrations"), 1);
    /* behind its back: the shard is not asked again while the files are the same */
    lite_int(path, "DELETE FROM citrus_migrations");
    lite_int(path, "DROP TABLE orders");
    assert_int_equal(svc_ensure_template(&ctx, "c", "retail", &e), 0);
    assert_int_equal(lite_int(path, "SELECT count(*) FROM citrus_migrations"), 0);
    /* a template changed on disk: checked and applied again */
    snprintf(file, sizeof(file), "%s/002_items.sql", tmpl);
    write_text(file, "CREATE TABLE items (id INTEGER PRIMARY KEY);\n");
    assert_int_equal(svc_ensure_template(&ctx, "c", "retail", &e), 0);
    assert_int_equal(lite_int(path, "SELECT count(*) FROM citrus_migrations"), 2);
    assert_int_equal(lite_int(path, "SELECT count(*) FROM orders"), 0);
    /* retired: its connections and what was known go */
    assert_int_equal(act(s, "c", "drain", 0), 0);
    assert_int_equal(act(s, "c", "retire", 0), 0);
    lite_int(path, "DELETE FROM citrus_migrations");
    lite_int(path, "DROP TABLE orders");
    lite_int(path, "DROP TABLE items");
    assert_int_equal(svc_ensure_template(&ctx, "c", "retail", &e), 0);
    assert_int_equal(lite_int(path, "SELECT count(*) FROM citrus_migrations"), 2);
    /* the request's deadline already passed (it waited in a queue): 503 at once */
    ctx.dl = deadline_after(s->r.clock, 0);
    assert_int_equal(svc_ensure_template(&ctx, "c", "retail", &e), CITRUS_ESHARDDOWN);
    assert_int_equal(e.code, CITRUS_ESHARDDOWN);
    assert_non_null(strstr(e.message, "shard 'c' did not answer in time"));
}

static void actions_follow_the_table(void **state)
{
    sfix *s = *state;
    assert_int_equal(act(s, "a", "read-only", 0), 0);
    assert_int_equal(state_of(s, "a"), SHARD_READ_ONLY);
    assert_int_equal(act(s, "a", "activate", 0), 0);
    assert_int_equal(act(s, "a", "drain", 0), 0);
    assert_int_equal(state_of(s, "a"), SHARD_DRAINING);
    assert_int_equal(act(s, "a", "activate", 0), 0); /* a drain can be cancelled */
    assert_int_equal(state_of(s, "a"), SHARD_ACTIVE);

    reg_result res = {0};
    errdetail e = {0};
    assert_int_equal(action(s, "a", "retire", 0, &e, &res), CITRUS_ETRANSITION);
    assert_int_equal(e.code, CITRUS_ETRANSITION);
    assert_string_equal(e.message,
                        "shard 'a' is active and cannot go to retired; allowed: read_only, "
                        "draining, failed");
    assert_int_equal(action(s, "a", "activate", 0, &e, &res), CITRUS_ETRANSITION);
    assert_int_equal(action(s, "a", "retry", 0, &e, &res), CITRUS_ETRANSITION);
    assert_int_equal(state_of(s, "a"), SHARD_ACTIVE);
    assert_int_equal(action(s, "a", "explode", 0, &e, &res), CITRUS_ENOTFOUND);
    assert_int_equal(e.code, CITRUS_ENOTFOUND);
    assert_string_equal(e.message, "unknown action 'explode'");
    assert_int_equal(act(s, "nope", "drain", 0), CITRUS_ENOTFOUND);

    /* retire from draining walks through drained */
    assert_int_equal(act(s, "a", "drain", 0), 0);
    assert_int_equal(act(s, "a", "retire", 0), 0);
    assert_int_equal(state_of(s, "a"), SHARD_RETIRED);
}

static size_t pinned_to(sfix *s, const char *id)
{
    size_t n;
    assert_int_equal(registry_tenant_count(s->svc.reg, id, true, &n), 0);
    return n;
}

static void pin_three(sfix *s, const char *id)
{
    for (int i = 0; i < 3; i++) {
        char key[16];
        snprintf(key, sizeof(key), "t%d", i);
        tenant_pin p;
        bool created;
        errdetail e = {0};
        assert_int_equal(tenants_put(s->svc.reg, key, id, 0, &p, &created, &e), 0);
    }
}

static void a_forced_retirement_moves_the_tenants(void **state)
{
    sfix *s = *state;
    pin_three(s, "a");
    assert_int_equal(act(s, "a", "drain", 0), 0);
    assert_int_equal(pinned_to(s, "a"), 3); /* pins do not follow the ring */

    reg_result res = {0};
    errdetail e = {0};
    assert_int_equal(action(s, "a", "retire", 0, &e, &res), CITRUS_EFORCE);
    assert_int_equal(res.tenants_affected, 3);
    reg_result_clear(&res);
    assert_int_equal(state_of(s, "a"), SHARD_DRAINING);

    /* a dry run moves nothing */
    assert_int_equal(action(s, "a", "retire", REG_FORCE | REG_DRY_RUN, &e, &res), 0);
    assert_int_equal(res.tenants_affected, 3);
    reg_result_clear(&res);
    assert_int_equal(state_of(s, "a"), SHARD_DRAINING);
    assert_int_equal(pinned_to(s, "a"), 3);

    assert_int_equal(action(s, "a", "retire", REG_FORCE, &e, &res), 0);
    assert_int_equal(res.tenants_affected, 3);
    reg_result_clear(&res);
    assert_int_equal(state_of(s, "a"), SHARD_RETIRED);
    assert_int_equal(pinned_to(s, "a"), 0);
    assert_int_equal(pinned_to(s, "b"), 3);
}

static void a_forced_delete_moves_the_tenants(void **state)
{
    sfix *s = *state;
    pin_three(s, "a");
    assert_int_equal(regfix_move_on(s->svc.reg, s->r.clock, "a", SHARD_FAILED, 0), 0);
    reg_result res;
    errdetail e = {0};
    assert_int_equal(svc_shard_delete(&s->svc, "a", 0, &res, &e), CITRUS_EINUSE);
    assert_int_equal(res.tenants_affected, 3);
    reg_result_clear(&res);
    assert_int_equal(svc_shard_delete(&s->svc, "a", REG_FORCE, &res, &e), 0);
    reg_result_clear(&res);
    shard gone;
    assert_int_equal(registry_shard_get(s->svc.reg, "a", &gone, NULL), CITRUS_ENOTFOUND);
    assert_int_equal(pinned_to(s, "a"), 0);
    assert_int_equal(pinned_to(s, "b"), 3);
    tenant_pin p;
    assert_int_equal(tenants_get(s->svc.reg, "t1", &p), 0);
    assert_string_equal(p.shard_id, "b");
}

static void provisioning_needs_a_provisioner(void **state)
{
    sfix *s = *state;
    shard_spec spec = {.id = "p", .weight = 1, .provision = true};
    errdetail e = {0};
    assert_int_equal(svc_provision_shard(&s->svc, &spec, "test", NULL, &e), CITRUS_EUNPROCESSABLE);
    assert_int_equal(e.code, CITRUS_EUNPROCESSABLE);
    assert_non_null(strstr(e.message, "no provisioner"));
}

/* Business types: the directories of templates_dir, exactly as named; none
 * without one unless untemplated types are allowed; template.json's
 * require_registered. */
static void business_types_are_the_template_directories(void **state)
{
    sfix *s = *state;
    errdetail e = {0};
    json_t *known = NULL;
    svc_ensure_ctx ectx = {.svc = &s->svc}; /* no deadline */
    /* no templates directory: no type is known */
    assert_int_equal(svc_type_check(&s->svc, "retail", &known, &e), CITRUS_EUNKNOWNTYPE);
    assert_int_equal(json_array_size(known), 0);
    assert_non_null(strstr(e.message, "no templates directory"));
    json_decref(known);
    assert_int_equal(svc_ensure_template(&ectx, "a", "retail", &e), CITRUS_EUNKNOWNTYPE);
    char dir[] = "/tmp/citrus-types-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    const char *types[] = {"retail", "bank", ".hidden", "bad name"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, types[i]);
        assert_int_equal(mkdir(path, 0700), 0);
    }
    snprintf(path, sizeof(path), "%s/file", dir); /* a file is not a type */
    fclose(fopen(path, "w"));
    snprintf(path, sizeof(path), "%s/bank/template.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"require_registered\": true}", f);
    fclose(f);
    snprintf(s->svc.templates_dir, sizeof(s->svc.templates_dir), "%s", dir);
    assert_int_equal(svc_type_check(&s->svc, "retail", NULL, &e), 0);
    const char *unknown[] = {"Retail", "retial", "file", ".hidden", ""};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(svc_type_check(&s->svc, unknown[i], &known, &e), CITRUS_EUNKNOWNTYPE);
        char *list = json_dumps(known, JSON_COMPACT);
        assert_string_equal(list, "[\"bank\",\"retail\"]");
        free(list);
        json_decref(known);
        assert_non_null(strstr(e.message, "the known types are 'bank', 'retail'"));
    }
    assert_true(svc_type_strict(&s->svc, "bank"));
    assert_false(svc_type_strict(&s->svc, "retail"));
    assert_false(svc_type_strict(&s->svc, "../bank"));
    s->svc.allow_untemplated_types = true;
    assert_int_equal(svc_type_check(&s->svc, "retial", &known, &e), 0);
    assert_null(known);
    assert_int_equal(svc_ensure_template(&ectx, "a", "retial", &e), 0);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(register_an_existing_database, setup, teardown),
        cmocka_unit_test_setup_teardown(ensure_template_remembers_what_is_applied, setup, teardown),
        cmocka_unit_test_setup_teardown(business_types_are_the_template_directories, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(actions_follow_the_table, setup, teardown),
        cmocka_unit_test_setup_teardown(a_forced_retirement_moves_the_tenants, setup, teardown),
        cmocka_unit_test_setup_teardown(a_forced_delete_moves_the_tenants, setup, teardown),
        cmocka_unit_test_setup_teardown(provisioning_needs_a_provisioner, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
