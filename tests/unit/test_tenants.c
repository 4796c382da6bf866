/* Unit tests for registry/tenants.c on the embedded catalog store and a test
 * clock: registering business-locations (once, again, in batches that
 * land whole or not at all), pins moved with and without force, moving
 * the tenants of a shard that left the ring, and routing (pin, else
 * ring). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "citrus/errors.h"
#include "registry/tenants.h"
#include "support_registry.h"

#define VNODES 16

static int setup(void **state)
{
    regfix *f = calloc(1, sizeof(*f));
    regfix_open(f, "tenants", VNODES);
    regfix_add_active(f, "a", 1, "sqlite:///tmp/a.db");
    regfix_add_active(f, "b", 1, "sqlite:///tmp/b.db");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    regfix *f = *state;
    regfix_close(f);
    free(f);
    return 0;
}

/* A tenant_ensure_fn that records its calls and fails for one type. */
typedef struct ensure_log {
    int calls;
    char seen[8][80];
    const char *fail_type;
} ensure_log;

static int ensure(void *ctx, const char *shard_id, const char *type, errdetail *e)
{
    ensure_log *l = ctx;
    if (l->calls < 8)
        snprintf(l->seen[l->calls], sizeof(l->seen[0]), "%s/%s", shard_id, type);
    l->calls++;
    if (l->fail_type && strcmp(type, l->fail_type) == 0)
        return errdetail_set(e, CITRUS_EUNPROCESSABLE, "template %s broke", type);
    return 0;
}

/* The shard the ring owns key at (the first token >= its hash). */
static void ring_owner_of(regfix *f, const char *key, char *out, size_t len)
{
    const ring *rg;
    int64_t v;
    assert_int_equal(registry_ring(f->reg, &rg, &v, NULL), 0);
    ring_hit hit;
    assert_int_equal(ring_lookup(rg, key, strlen(key), &hit), 0);
    snprintf(out, len, "%s", hit.shard_id);
    registry_ring_release(f->reg, rg);
}

static void register_pins_at_the_ring_owner(void **state)
{
    regfix *f = *state;
    ensure_log l = {0};
    tenant_reg reg = {"biz1", "loc1", "retail"};
    tenant_pin pin;
    bool created;
    errdetail e = {0};
    assert_int_equal(tenants_register(f->reg, &reg, 1, ensure, &l, &pin, &created, &e), 0);
    assert_true(created);
    assert_string_equal(pin.key, "biz1:loc1");
    assert_string_equal(pin.business_type, "retail");
    assert_int_equal(pin.pinned_ms, REGFIX_WALL0);
    char owner[64];
    ring_owner_of(f, "biz1:loc1", owner, sizeof(owner));
    assert_string_equal(pin.shard_id, owner);
    assert_int_equal(l.calls, 1); /* the template, on that shard, first */
    char want[80];
    snprintf(want, sizeof(want), "%s/retail", owner);
    assert_string_equal(l.seen[0], want);

    tenant_pin got;
    assert_int_equal(tenants_get(f->reg, "biz1:loc1", &got), 0);
    assert_string_equal(got.shard_id, owner);
    assert_int_equal(got.pinned_ms, REGFIX_WALL0);
    assert_int_equal(got.mod_revision, pin.mod_revision);
}

static void register_again_answers_the_same(void **state)
{
    regfix *f = *state;
    ensure_log l = {0};
    tenant_reg reg = {"biz1", "loc1", "retail"};
    tenant_pin first, again;
    bool created;
    errdetail e = {0};
    assert_int_equal(tenants_register(f->reg, &reg, 1, ensure, &l, &first, &created, &e), 0);
    clock_test_advance(f->clock, 60000);
    /* even after the ring changed: the pin does not move with it */
    regfix_add_active(f, "c", 4, "sqlite:///tmp/c.db");
    assert_int_equal(tenants_register(f->reg, &reg, 1, ensure, &l, &again, &created, &e), 0);
    assert_false(created);
    assert_string_equal(again.shard_id, first.shard_id);
    assert_int_equal(again.pinned_ms, REGFIX_WALL0);
    assert_int_equal(again.mod_revision, first.mod_revision);
    assert_int_equal(l.calls, 1); /* nothing new: no template run */
}

static void a_batch_lands_whole_or_not_at_all(void **state)
{
    regfix *f = *state;
    ensure_log l = {.fail_type = "bakery"};
    tenant_reg regs[3] = {
        {"biz2", "l1", "retail"}, {"biz2", "l2", "retail"}, {"biz2", "l3", "bakery"}};
    tenant_pin pins[3];
    bool created[3];
    errdetail e = {0};
    assert_int_equal(tenants_register(f->reg, regs, 3, ensure, &l, pins, created, &e),
                     CITRUS_EUNPROCESSABLE);
    assert_int_equal(e.code, CITRUS_EUNPROCESSABLE);
    assert_non_null(strstr(e.message, "bakery broke"));
    tenant_pin p;
    for (int i = 1; i <= 3; i++) {
        char key[32];
        snprintf(key, sizeof(key), "biz2:l%d", i);
        assert_int_equal(tenants_get(f->reg, key, &p), CITRUS_ENOTFOUND);
    }
    /* fixed: all three at once, one template run per (shard, type) */
    l = (ensure_log){0};
    assert_int_equal(tenants_register(f->reg, regs, 3, ensure, &l, pins, created, &e), 0);
    for (int i = 0; i < 3; i++) {
        assert_true(created[i]);
        assert_int_equal(tenants_get(f->reg, pins[i].key, &p), 0);
        assert_string_equal(p.shard_id, pins[i].shard_id);
    }
    assert_true(l.calls >= 2 && l.calls <= 3);
    /* a batch with one registered and one new: only the new one is created */
    tenant_reg more[2] = {{"biz2", "l1", "retail"}, {"biz2", "l4", "retail"}};
    assert_int_equal(tenants_register(f->reg, more, 2, NULL, NULL, pins, created, &e), 0);
    assert_false(created[0]);
    assert_true(created[1]);
    /* an invalid id refuses the batch before anything */
    tenant_reg bad[2] = {{"biz3", "ok", "retail"}, {"biz3", "no/slash", "retail"}};
    assert_int_equal(tenants_register(f->reg, bad, 2, NULL, NULL, pins, created, &e),
                     CITRUS_EINVAL);
    assert_int_equal(tenants_get(f->reg, "biz3:ok", &p), CITRUS_ENOTFOUND);
}

/* Another businessType for a registered location: 409 naming the
 * registered type; in a batch nothing of it is pinned. */
static void register_with_another_type_conflicts(void **state)
{
    regfix *f = *state;
    ensure_log l = {0};
    tenant_reg reg = {"idem", "main", "retail"};
    tenant_pin pin, pins[2];
    bool created, cr[2];
    errdetail e = {0};
    assert_int_equal(tenants_register(f->reg, &reg, 1, ensure, &l, &pin, &created, &e), 0);
    assert_string_equal(pin.business_type, "retail");
    tenant_reg other = {"idem", "main", "restaurant"};
    assert_int_equal(tenants_register(f->reg, &other, 1, ensure, &l, &pin, &created, &e),
                     CITRUS_EREGCONFLICT);
    assert_non_null(strstr(e.message, "'retail'"));
    assert_non_null(strstr(e.message, "'restaurant'"));
    tenant_reg batch[2] = {{"idem", "second", "retail"}, {"idem", "main", "restaurant"}};
    l = (ensure_log){0};
    assert_int_equal(tenants_register(f->reg, batch, 2, ensure, &l, pins, cr, &e),
                     CITRUS_EREGCONFLICT);
    assert_int_equal(l.calls, 0); /* refused before any template ran */
    tenant_pin p;
    assert_int_equal(tenants_get(f->reg, "idem:second", &p), CITRUS_ENOTFOUND);
    /* the same type again is the first answer */
    assert_int_equal(tenants_register(f->reg, &reg, 1, ensure, &l, &pin, &created, &e), 0);
    assert_false(created);
    /* a pin without a type (PUT /v1/tenants) takes any */
    assert_int_equal(tenants_put(f->reg, "idem:bare", "a", 0, &p, &created, &e), 0);
    tenant_reg bare = {"idem", "bare", "bakery"};
    assert_int_equal(tenants_register(f->reg, &bare, 1, ensure, &l, &pin, &created, &e), 0);
    assert_false(created);
}

static bool strict_bakery(void *ctx, const char *type)
{
    (void)ctx;
    return strcmp(type, "bakery") == 0;
}

/* Whether a business has a location of a strict type. */
static void business_strict_looks_at_its_types(void **state)
{
    regfix *f = *state;
    tenant_reg regs[3] = {{"b1", "x", "retail"}, {"b2", "y", "bakery"}, {"b22", "z", "retail"}};
    tenant_pin pins[3];
    bool cr[3], strict = true;
    errdetail e = {0};
    assert_int_equal(tenants_register(f->reg, regs, 3, NULL, NULL, pins, cr, &e), 0);
    assert_int_equal(tenants_business_strict(f->reg, "b1", strict_bakery, NULL, &strict), 0);
    assert_false(strict);
    assert_int_equal(tenants_business_strict(f->reg, "b2", strict_bakery, NULL, &strict), 0);
    assert_true(strict);
    /* "b2" is not a prefix of "b22"'s business */
    assert_int_equal(tenants_business_strict(f->reg, "b22", strict_bakery, NULL, &strict), 0);
    assert_false(strict);
    assert_int_equal(tenants_business_strict(f->reg, "nobody", strict_bakery, NULL, &strict), 0);
    assert_false(strict);
}

static void no_active_shard_no_registration(void **state)
{
    regfix *f = *state;
    assert_int_equal(regfix_move(f, "a", SHARD_READ_ONLY, 0), 0);
    assert_int_equal(regfix_move(f, "b", SHARD_READ_ONLY, 0), 0);
    tenant_reg reg = {"biz1", "loc1", NULL};
    tenant_pin pin;
    bool created;
    errdetail e = {0};
    assert_int_equal(tenants_register(f->reg, &reg, 1, NULL, NULL, &pin, &created, &e),
                     CITRUS_EUNAVAILABLE);
    assert_int_equal(e.code, CITRUS_EUNAVAILABLE);
    assert_non_null(strstr(e.message, "no active shard"));
}

static void moving_a_pin_needs_force(void **state)
{
    regfix *f = *state;
    tenant_pin p;
    bool created;
    errdetail e = {0};
    assert_int_equal(tenants_put(f->reg, "t1", "a", 0, &p, &created, &e), 0);
    assert_true(created);
    assert_int_equal(p.pinned_ms, REGFIX_WALL0);
    /* the same shard again: nothing changes */
    clock_test_advance(f->clock, 10);
    assert_int_equal(tenants_put(f->reg, "t1", "a", 0, &p, &created, &e), 0);
    assert_false(created);
    assert_int_equal(p.pinned_ms, REGFIX_WALL0);
    /* another shard: only with force */
    assert_int_equal(tenants_put(f->reg, "t1", "b", 0, &p, &created, &e), CITRUS_EFORCE);
    assert_int_equal(tenants_get(f->reg, "t1", &p), 0);
    assert_string_equal(p.shard_id, "a");
    assert_int_equal(tenants_put(f->reg, "t1", "b", REG_FORCE, &p, &created, &e), 0);
    assert_false(created);
    assert_string_equal(p.shard_id, "b");
    assert_int_equal(p.pinned_ms, REGFIX_WALL0 + 10);
    /* the index follows: listed under b only */
    tenant_pin *v;
    size_t n;
    bool more;
    assert_int_equal(tenants_list(f->reg, "a", NULL, 10, &v, &n, &more), 0);
    assert_int_equal(n, 0);
    free(v);
    assert_int_equal(tenants_list(f->reg, "b", NULL, 10, &v, &n, &more), 0);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].key, "t1");
    free(v);
    /* not to a shard out of service */
    assert_int_equal(regfix_move(f, "a", SHARD_DRAINING, 0), 0);
    assert_int_equal(tenants_put(f->reg, "t2", "a", 0, &p, &created, &e), CITRUS_ECONFLICT);
    assert_int_equal(tenants_put(f->reg, "t2", "zz", 0, &p, &created, &e), CITRUS_ENOTFOUND);
}

static void repin_moves_tenants_to_active_owners(void **state)
{
    regfix *f = *state;
    tenant_pin p;
    bool created;
    errdetail e = {0};
    for (int i = 0; i < 5; i++) {
        char key[16];
        snprintf(key, sizeof(key), "t%d", i);
        assert_int_equal(tenants_put(f->reg, key, "a", 0, &p, &created, &e), 0);
    }
    assert_int_equal(regfix_move(f, "a", SHARD_DRAINING, 0), 0); /* a leaves the ring */
    size_t moved;
    assert_int_equal(tenants_repin(f->reg, "a", &moved, &e), 0);
    assert_int_equal(moved, 5);
    size_t count;
    assert_int_equal(registry_tenant_count(f->reg, "a", true, &count), 0);
    assert_int_equal(count, 0);
    assert_int_equal(tenants_get(f->reg, "t3", &p), 0);
    assert_string_equal(p.shard_id, "b"); /* the only active shard */
    /* nothing left to move: a no-op */
    assert_int_equal(tenants_repin(f->reg, "a", &moved, &e), 0);
    assert_int_equal(moved, 0);
    /* with no active shard, it says so */
    assert_int_equal(tenants_put(f->reg, "t9", "b", 0, &p, &created, &e), 0);
    assert_int_equal(regfix_move(f, "b", SHARD_READ_ONLY, 0), 0);
    assert_int_equal(tenants_repin(f->reg, "b", &moved, &e), CITRUS_EUNAVAILABLE);
}

static void route_pin_then_ring(void **state)
{
    regfix *f = *state;
    const ring *rg;
    int64_t v;
    assert_int_equal(registry_ring(f->reg, &rg, &v, NULL), 0);
    char owner[64];
    ring_owner_of(f, "free-key", owner, sizeof(owner));
    route_answer ra;
    assert_int_equal(tenants_route(f->reg, rg, v, "free-key", &ra), 0);
    assert_false(ra.pinned);
    assert_string_equal(ra.shard_id, owner);
    assert_int_equal(ra.ring_version, v);

    /* pinned to the shard the ring does not pick: the pin wins */
    const char *other = strcmp(owner, "a") == 0 ? "b" : "a";
    tenant_pin p;
    bool created;
    errdetail e = {0};
    assert_int_equal(tenants_put(f->reg, "free-key", other, 0, &p, &created, &e), 0);
    assert_int_equal(tenants_route(f->reg, rg, v, "free-key", &ra), 0);
    assert_true(ra.pinned);
    assert_string_equal(ra.shard_id, other);
    registry_ring_release(f->reg, rg);
    /* unpinned again: the ring */
    assert_int_equal(tenants_delete(f->reg, "free-key"), 0);
    assert_int_equal(tenants_delete(f->reg, "free-key"), CITRUS_ENOTFOUND);
    assert_int_equal(registry_ring(f->reg, &rg, &v, NULL), 0);
    assert_int_equal(tenants_route(f->reg, rg, v, "free-key", &ra), 0);
    assert_false(ra.pinned);
    assert_string_equal(ra.shard_id, owner);
    registry_ring_release(f->reg, rg);
}

static void route_with_an_empty_ring(void **state)
{
    regfix *f = *state;
    assert_int_equal(regfix_move(f, "a", SHARD_DRAINING, 0), 0);
    assert_int_equal(regfix_move(f, "b", SHARD_DRAINING, 0), 0);
    const ring *rg;
    int64_t v;
    assert_int_equal(registry_ring(f->reg, &rg, &v, NULL), 0);
    assert_int_equal(ring_size(rg), 0);
    route_answer ra;
    assert_int_equal(tenants_route(f->reg, rg, v, "k", &ra), CITRUS_EUNAVAILABLE);
    registry_ring_release(f->reg, rg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(register_pins_at_the_ring_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(register_again_answers_the_same, setup, teardown),
        cmocka_unit_test_setup_teardown(a_batch_lands_whole_or_not_at_all, setup, teardown),
        cmocka_unit_test_setup_teardown(register_with_another_type_conflicts, setup, teardown),
        cmocka_unit_test_setup_teardown(business_strict_looks_at_its_types, setup, teardown),
        cmocka_unit_test_setup_teardown(no_active_shard_no_registration, setup, teardown),
        cmocka_unit_test_setup_teardown(moving_a_pin_needs_force, setup, teardown),
        cmocka_unit_test_setup_teardown(repin_moves_tenants_to_active_owners, setup, teardown),
        cmocka_unit_test_setup_teardown(route_pin_then_ring, setup, teardown),
        cmocka_unit_test_setup_teardown(route_with_an_empty_ring, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
