/* Unit tests for provision/service.c on the embedded catalog store and a
 * test clock: registering an existing database, the lifecycle actions of
 * the API (allowed and refused with the allowed targets named), and the
 * re-pin the service owes after a change that takes a shard with tenants
 * out of the ring (a forced retirement, a forced delete), and the health
 * probes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void probes_of_every_shard_in_service(void **state)
{
    sfix *s = *state;
    /* c: a database that answers; a, b: files that do not exist; d: no
     * database yet; b retired: not probed */
    char path[256], dsn[300];
    snprintf(path, sizeof(path), "%s/c.db", s->r.d.dir);
    snprintf(dsn, sizeof(dsn), "sqlite://%s", path);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_close(db);
    regfix_add_active(&s->r, "c", 1, dsn); /* the fixture's registry is the service's */
    shard d;
    regfix_record(&s->r, &d, "d", 1, NULL);
    assert_int_equal(shard_transition(&d, SHARD_PROVISIONING, "", "test", REGFIX_WALL0), 0);
    reg_result res;
    errdetail e = {0};
    assert_int_equal(registry_shard_create(s->svc.reg, &d, NULL, &res, &e), 0);
    reg_result_clear(&res);
    shard_clear(&d);
    assert_int_equal(act(s, "b", "drain", 0), 0);
    assert_int_equal(act(s, "b", "retire", 0), 0);

    shard_probe *v;
    size_t n;
    assert_int_equal(svc_probe_shards(&s->svc, &v, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(v[0].id, "a");
    assert_int_equal(v[0].state, SHARD_ACTIVE);
    assert_true(v[0].rc < 0);
    assert_true(v[0].err.message[0] != '\0');
    assert_string_equal(v[1].id, "c");
    assert_int_equal(v[1].rc, 0);
    assert_true(v[1].latency_ms >= 0);
    assert_string_equal(v[2].id, "d");
    assert_int_equal(v[2].state, SHARD_PROVISIONING);
    assert_int_equal(v[2].rc, CITRUS_EUNAVAILABLE);
    assert_string_equal(v[2].err.message, "no database yet");
    free(v);
}

/* Business types: the directories of templates_dir, exactly as named; none
 * without one unless untemplated types are allowed; template.json's
 * require_registered. */
static void business_types_are_the_template_directories(void **state)
{
    sfix *s = *state;
    errdetail e = {0};
    json_t *known = NULL;
    /* no templates directory: no type is known */
    assert_int_equal(svc_type_check(&s->svc, "retail", &known, &e), CITRUS_EUNKNOWNTYPE);
    assert_int_equal(json_array_size(known), 0);
    assert_non_null(strstr(e.message, "no templates directory"));
    json_decref(known);
    assert_int_equal(svc_ensure_template(&s->svc, "a", "retail", &e), CITRUS_EUNKNOWNTYPE);
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
    assert_int_equal(svc_ensure_template(&s->svc, "a", "retial", &e), 0);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(register_an_existing_database, setup, teardown),
        cmocka_unit_test_setup_teardown(business_types_are_the_template_directories, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(actions_follow_the_table, setup, teardown),
        cmocka_unit_test_setup_teardown(a_forced_retirement_moves_the_tenants, setup, teardown),
        cmocka_unit_test_setup_teardown(a_forced_delete_moves_the_tenants, setup, teardown),
        cmocka_unit_test_setup_teardown(provisioning_needs_a_provisioner, setup, teardown),
        cmocka_unit_test_setup_teardown(probes_of_every_shard_in_service, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
