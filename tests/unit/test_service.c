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

#include <cmocka.h>
#include <sqlite3.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(register_an_existing_database, setup, teardown),
        cmocka_unit_test_setup_teardown(actions_follow_the_table, setup, teardown),
        cmocka_unit_test_setup_teardown(a_forced_retirement_moves_the_tenants, setup, teardown),
        cmocka_unit_test_setup_teardown(a_forced_delete_moves_the_tenants, setup, teardown),
        cmocka_unit_test_setup_teardown(provisioning_needs_a_provisioner, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
