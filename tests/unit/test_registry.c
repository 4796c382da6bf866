/* Unit tests for registry/registry.c (with ring_tokens.c and ring_cache.c)
 * on the embedded catalog store and a test clock: shard records through
 * their lifecycle, the tokens that follow state and weight, the compare
 * that makes a change retry when someone else changed the record first,
 * fencing, deletes, and the shared ring. No sleeps: time moves when the
 * test moves the clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "citrus/errors.h"
#include "registry/ring_tokens.h"
#include "registry/tenants.h"
#include "catalog/txb.h"
#include "wire/catalog_keys.h"
#include "wire/digest.h"
#include "wire/shard_json.h"
#include "support_registry.h"

#define VNODES 16

static int setup(void **state)
{
    regfix *f = calloc(1, sizeof(*f));
    regfix_open(f, "registry", VNODES);
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

static void get(regfix *f, const char *id, shard *s, int64_t *mod)
{
    assert_int_equal(registry_shard_get(f->reg, id, s, mod), 0);
}

/* ---- lifecycle and history ---- */

static void history_is_stamped_by_the_clock(void **state)
{
    regfix *f = *state;
    regfix_add_active(f, "a", 1, "sqlite:///tmp/a.db");
    shard s;
    get(f, "a", &s, NULL);
    assert_int_equal(s.state, SHARD_ACTIVE);
    assert_int_equal(s.nhistory, 2);
    assert_int_equal(s.history[0].from, SHARD_PENDING);
    assert_int_equal(s.history[0].to, SHARD_INITIALIZING);
    assert_int_equal(s.history[1].at_ms, REGFIX_WALL0);
    assert_int_equal(s.created_ms, REGFIX_WALL0);
    int64_t epoch = s.epoch;
    shard_clear(&s);

    clock_test_advance(f->clock, 1500);
    assert_int_equal(regfix_move(f, "a", SHARD_READ_ONLY, 0), 0);
    clock_test_advance(f->clock, 250);
    assert_int_equal(regfix_move(f, "a", SHARD_ACTIVE, 0), 0);
    get(f, "a", &s, NULL);
    assert_int_equal(s.nhistory, 4);
    assert_int_equal(s.history[2].to, SHARD_READ_ONLY);
    assert_int_equal(s.history[2].at_ms, REGFIX_WALL0 + 1500);
    assert_int_equal(s.history[3].at_ms, REGFIX_WALL0 + 1750);
    assert_int_equal(s.updated_ms, REGFIX_WALL0 + 1750);
    assert_int_equal(s.created_ms, REGFIX_WALL0);
    assert_int_equal(s.epoch, epoch + 2);
    /* each change carries the epoch it gave the record, and the record the
     * epoch it was written over: the changes of the last write are those
     * above base_epoch (the lifecycle relay's cue) */
    assert_int_equal(s.history[3].epoch, epoch + 2);
    assert_int_equal(s.history[2].epoch, epoch + 1);
    assert_int_equal(s.base_epoch, epoch + 1);
    assert_true(s.history[1].epoch > 0 && s.history[1].epoch <= epoch);
    shard_clear(&s);
}

static void refused_transitions_write_nothing(void **state)
{
    regfix *f = *state;
    regfix_add_active(f, "a", 1, "sqlite:///tmp/a.db");
    char key[64];
    snprintf(key, sizeof(key), "%sa", REG_SHARDS);
    int64_t mod = regfix_mod(f, key);
    /* not in the table: the mutate function's refusal aborts the change */
    assert_int_equal(regfix_move(f, "a", SHARD_PROVISIONING, 0), CITRUS_ECONFLICT);
    assert_int_equal(regfix_move(f, "a", SHARD_DRAINED, 0), CITRUS_ECONFLICT);
    assert_int_equal(regfix_mod(f, key), mod);
    /* the walk out of service, then back is refused */
    assert_int_equal(regfix_move(f, "a", SHARD_DRAINING, 0), 0);
    assert_int_equal(regfix_move(f, "a", SHARD_DRAINED, 0), 0);
    assert_int_equal(regfix_move(f, "a", SHARD_RETIRED, 0), 0);
    mod = regfix_mod(f, key);
    assert_int_equal(regfix_move(f, "a", SHARD_ACTIVE, 0), CITRUS_ECONFLICT);
    assert_int_equal(regfix_mod(f, key), mod);
    assert_int_equal(regfix_move(f, "nope", SHARD_ACTIVE, 0), CITRUS_ENOTFOUND);
}

/* ---- tokens ---- */

typedef struct weight_ctx {
    double w;
} weight_ctx;

static int set_weight(shard *s, void *vctx, errdetail *e)
{
    s->weight = ((weight_ctx *)vctx)->w;
    s->epoch++;
    return 0;
}

static void change_weight(regfix *f, const char *id, double w, reg_result *res)
{
    weight_ctx c = {w};
    errdetail e = {0};
    if (registry_shard_modify(f->reg, id, set_weight, &c, 0, NULL, NULL, res, &e))
        fail_msg("weight %g: %s", w, e.message);
}

static void activation_gives_tokens_and_moves_ranges(void **state)
{
    regfix *f = *state;
    regfix_add_active(f, "a", 1, "sqlite:///tmp/a.db");
    size_t n;
    uint64_t *t = regfix_tokens(f, "a", &n);
    assert_int_equal(n, VNODES);
    free(t);
    assert_int_equal(regfix_mod(f, REG_RING_META), regfix_mod(f, REG_RING_TOKENS "a"));

    /* b is created provisioning: no tokens until it is active */
    shard s;
    regfix_record(f, &s, "b", 1, NULL);
    assert_int_equal(shard_transition(&s, SHARD_PROVISIONING, "", "test", REGFIX_WALL0), 0);
    reg_result res;
    errdetail e = {0};
    assert_int_equal(registry_shard_create(f->reg, &s, NULL, &res, &e), 0);
    assert_false(res.ring_changed);
    assert_int_equal(res.tokens_after, 0);
    reg_result_clear(&res);
    shard_clear(&s);
    assert_null(regfix_tokens(f, "b", &n));
    int64_t v0 = regfix_mod(f, REG_RING_META);

    assert_int_equal(regfix_move(f, "b", SHARD_INITIALIZING, 0), 0);
    assert_null(regfix_tokens(f, "b", &n));
    assert_int_equal(regfix_mod(f, REG_RING_META), v0);

    const ring *rg;
    int64_t version;
    assert_int_equal(registry_ring(f->reg, &rg, &version, NULL), 0);
    assert_int_equal(ring_size(rg), VNODES);
    assert_int_equal(version, v0);
    registry_ring_release(f->reg, rg);

    assert_int_equal(regfix_move(f, "b", SHARD_ACTIVE, 0), 0);
    t = regfix_tokens(f, "b", &n);
    assert_int_equal(n, VNODES);
    free(t);
    assert_true(regfix_mod(f, REG_RING_META) > v0);
    assert_int_equal(registry_ring(f->reg, &rg, &version, NULL), 0);
    assert_int_equal(ring_size(rg), 2 * VNODES);
    assert_int_equal(version, regfix_mod(f, REG_RING_META));
    registry_ring_release(f->reg, rg);
}

static void ranges_name_old_and_new_owner(void **state)
{
    regfix *f = *state;
    regfix_add_active(f, "a", 1, "sqlite:///tmp/a.db");
    shard s;
    regfix_record(f, &s, "b", 1, "sqlite:///tmp/b.db");
    assert_int_equal(shard_transition(&s, SHARD_INITIALIZING, "", "test", REGFIX_WALL0), 0);
    assert_int_equal(shard_transition(&s, SHARD_ACTIVE, "", "test", REGFIX_WALL0), 0);
    reg_result res;
    errdetail e = {0};
    assert_int_equal(registry_shard_create(f->reg, &s, NULL, &res, &e), 0);
    shard_clear(&s);
    assert_true(res.ring_changed);
    assert_int_equal(res.tokens_before, 0);
    assert_int_equal(res.tokens_after, VNODES);
    assert_int_equal(res.ring_version, res.revision);
    assert_true(res.nranges > 0);
    assert_int_equal(json_array_size(res.ranges), res.nranges);
    for (size_t i = 0; i < res.nranges; i++) {
        json_t *r = json_array_get(res.ranges, i);
        assert_string_equal(json_string_value(json_object_get(r, "from")), "a");
        assert_string_equal(json_string_value(json_object_get(r, "to")), "b");
    }
    reg_result_clear(&res);
}

static void weight_changes_keep_the_list_prefix(void **state)
{
    regfix *f = *state;
    regfix_add_active(f, "a", 1, "sqlite:///tmp/a.db");
    regfix_add_active(f, "b", 1, "sqlite:///tmp/b.db");
    size_t n1, n2, n3;
    uint64_t *t1 = regfix_tokens(f, "a", &n1);
    reg_result res;
    change_weight(f, "a", 2, &res);
    assert_true(res.ring_changed);
    assert_int_equal(res.tokens_before, VNODES);
    assert_int_equal(res.tokens_after, 2 * VNODES);
    reg_result_clear(&res);
    uint64_t *t2 = regfix_tokens(f, "a", &n2);
    assert_int_equal(n2, 2 * VNODES);
    assert_memory_equal(t1, t2, n1 * sizeof(*t1)); /* kept, new ones at the end */

    change_weight(f, "a", 0.5, &res);
    assert_int_equal(res.tokens_before, 2 * VNODES);
    assert_int_equal(res.tokens_after, VNODES / 2);
    reg_result_clear(&res);
    uint64_t *t3 = regfix_tokens(f, "a", &n3);
    assert_int_equal(n3, VNODES / 2);
    assert_memory_equal(t1, t3, n3 * sizeof(*t1)); /* cut at the end */

    /* the same weight again: no token change, the ring version stays */
    int64_t v = regfix_mod(f, REG_RING_META);
    change_weight(f, "a", 0.5, &res);
    assert_false(res.ring_changed);
    assert_int_equal(res.ring_version, v);
    reg_result_clear(&res);
    assert_int_equal(regfix_mod(f, REG_RING_META), v);
    free(t1);
    free(t2);
    free(t3);
}

static void state_decides_tokens(void **state)
{
    regfix *f = *state;
    regfix_add_active(f, "a", 1, "sqlite:///tmp/a.db");
    regfix_add_active(f, "b", 1, "sqlite:///tmp/b.db");
    size_t n0, n;
    uint64_t *t0 = regfix_tokens(f, "a", &n0), *t;
    /* read_only keeps them */
    assert_int_equal(regfix_move(f, "a", SHARD_READ_ONLY, 0), 0);
    t = regfix_tokens(f, "a", &n);
    assert_int_equal(n, n0);
    assert_memory_equal(t, t0, n * sizeof(*t));
    free(t);
    /* draining loses them */
    assert_int_equal(regfix_move(f, "a", SHARD_ACTIVE, 0), 0);
    assert_int_equal(regfix_move(f, "a", SHARD_DRAINING, 0), 0);
    assert_null(regfix_tokens(f, "a", &n));
    /* active again: tokens again */
    assert_int_equal(regfix_move(f, "a", SHARD_ACTIVE, 0), 0);
    t = regfix_tokens(f, "a", &n);
    assert_int_equal(n, VNODES);
    free(t);
    /* failed keeps what it had, so its keys do not land elsewhere */
    uint64_t *before = regfix_tokens(f, "a", &n0);
    assert_int_equal(regfix_move(f, "a", SHARD_FAILED, 0), 0);
    t = regfix_tokens(f, "a", &n);
    assert_int_equal(n, n0);
    assert_memory_equal(t, before, n * sizeof(*t));
    free(t);
    free(before);
    free(t0);
}

static void dry_run_writes_nothing(void **state)
{
    regfix *f = *state;
    regfix_add_active(f, "a", 1, "sqlite:///tmp/a.db");
    regfix_add_active(f, "b", 1, "sqlite:///tmp/b.db");
    int64_t v = regfix_mod(f, REG_RING_META), m = regfix_mod(f, REG_SHARDS "a");
    weight_ctx c = {3};
    reg_result res;
    errdetail e = {0};
    shard out;
    assert_int_equal(
        registry_shard_modify(f->reg, "a", set_weight, &c, REG_DRY_RUN, NULL, &out, &res, &e), 0);
    assert_true(res.ring_changed);
    assert_int_equal(res.tokens_after, 3 * VNODES);
    assert_int_equal(res.ring_version, v); /* the version now, not a new one */
    assert_true(out.weight == 3);
    shard_clear(&out);
    reg_result_clear(&res);
    assert_int_equal(regfix_mod(f, REG_RING_META), v);
    assert_int_equal(regfix_mod(f, REG_SHARDS "a"), m);
}

/* ---- compare and swap ---- */

typedef struct racing {
    regfix *f;
    int calls;
} racing;

static int set_zone_other(shard *s, void *vctx, errdetail *e)
{
    free(s->zone);
    s->zone = strdup("zone-other");
    s->epoch++;
    return 0;
}

/* The first time, someone else changes the record between our read and our
 * write; the second time we win. */
static int weight_after_a_race(shard *s, void *vctx, errdetail *e)
{
    racing *c = vctx;
    if (c->calls++ == 0) {
        reg_result res;
        assert_int_equal(
            registry_shard_modify(c->f->reg, s->id, set_zone_other, NULL, 0, NULL, NULL, &res, e),
            0);
        reg_result_clear(&res);
    }
    s->weight = 2;
    s->epoch++;
    return 0;
}

static void a_concurrent_change_makes_it_retry(void **state)
{
    regfix *f = *state;
    regfix_add_active(f, "a", 1, "sqlite:///tmp/a.db");
    shard s;
    get(f, "a", &s, NULL);
    int64_t epoch = s.epoch;
    shard_clear(&s);
    racing c = {f, 0};
    reg_result res;
    errdetail e = {0};
    assert_int_equal(
        registry_shard_modify(f->reg, "a", weight_after_a_race, &c, 0, NULL, NULL, &res, &e), 0);
    reg_result_clear(&res);
    assert_int_equal(c.calls, 2); /* the first write's compare failed */
    get(f, "a", &s, NULL);
    assert_string_equal(s.zone, "zone-other"); /* the other change is kept */
    assert_true(s.weight == 2);
    assert_int_equal(s.epoch, epoch + 2);
    shard_clear(&s);
    size_t n;
    free(regfix_tokens(f, "a", &n));
    assert_int_equal(n, 2 * VNODES);
}

static int count_calls(shard *s, void *vctx, errdetail *e)
{
    (*(int *)vctx)++;
    s->weight = 4;
    s->epoch++;
    return 0;
}

static void a_fence_that_moved_refuses(void **state)
{
    regfix *f = *state;
    regfix_add_active(f, "a", 1, "sqlite:///tmp/a.db");
    int64_t lead = sqlite_dir_put(f->d.st, "citrus/controller/leader", "node1");
    int64_t m = regfix_mod(f, REG_SHARDS "a");
    int calls = 0;
    reg_result res;
    errdetail e = {0};
    reg_fence stale = {"citrus/controller/leader", lead + 100};
    assert_int_equal(
        registry_shard_modify(f->reg, "a", count_calls, &calls, 0, &stale, NULL, &res, &e),
        CITRUS_ECONFLICT);
    assert_true(calls > 1); /* it retried, then gave up */
    assert_int_equal(regfix_mod(f, REG_SHARDS "a"), m);

    reg_fence good = {"citrus/controller/leader", lead};
    assert_int_equal(
        registry_shard_modify(f->reg, "a", count_calls, &calls, 0, &good, NULL, &res, &e), 0);
    reg_result_clear(&res);
    assert_true(regfix_mod(f, REG_SHARDS "a") > m);
}

static void create_refuses_a_taken_id(void **state)
{
    regfix *f = *state;
    regfix_add_active(f, "a", 1, "sqlite:///tmp/a.db");
    shard s;
    regfix_record(f, &s, "a", 1, NULL);
    reg_result res;
    errdetail e = {0};
    assert_int_equal(registry_shard_create(f->reg, &s, NULL, &res, &e), CITRUS_EEXISTS);
    assert_int_equal(e.code, CITRUS_EEXISTS);
    assert_non_null(strstr(e.message, "'a' already exists"));
    shard_clear(&s);
}

/* ---- records that do not decode ---- */

/* Junk under citrus/shards/ (or a pin) is left out of listings and
 * reported on its own; the other shards are still served, and a repair or
 * a delete clears the report. */
static void a_corrupt_record_is_reported_on_its_own(void **state)
{
    regfix *f = *state;
    regfix_add_active(f, "a", 1, "sqlite:///tmp/a.db");
    regfix_add_active(f, "c", 1, "sqlite:///tmp/c.db");
    sqlite_dir_put(f->d.st, REG_SHARDS "b", "{not json");
    sqlite_dir_put(f->d.st, REG_SHARDS "d", "{\"id\":\"d\"}"); /* JSON, not a record */
    shard *v;
    size_t n;
    assert_int_equal(registry_shard_list(f->reg, NULL, &v, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(v[0].id, "a");
    assert_string_equal(v[1].id, "c");
    registry_shards_free(v, n);
    reg_corrupt c[4];
    assert_int_equal(registry_corrupt(f->reg, "", c, 4), 2);
    assert_string_equal(c[0].key, REG_SHARDS "b");
    assert_string_equal(c[1].key, REG_SHARDS "d");
    assert_non_null(strstr(c[0].error, "corrupt record: "));
    assert_int_equal(registry_corrupt(f->reg, REG_TENANTS, NULL, 0), 0);
    shard s;
    assert_int_equal(registry_shard_get(f->reg, "b", &s, NULL), CITRUS_ECORRUPT);
    assert_int_equal(registry_shard_get(f->reg, "a", &s, NULL), 0);
    shard_clear(&s);
    /* b repaired, d deleted: a recheck (or the next listing) clears both */
    shard rec;
    regfix_record(f, &rec, "b", 1, NULL);
    json_t *j = shard_to_json(&rec, true);
    char *text = json_dumps(j, JSON_COMPACT);
    sqlite_dir_put(f->d.st, REG_SHARDS "b", text);
    free(text);
    json_decref(j);
    shard_clear(&rec);
    int64_t deleted;
    assert_int_equal(store_delete(f->d.st, REG_SHARDS "d", false, -1, &deleted, NULL, NULL), 0);
    assert_true(registry_corrupt_recheck_due(f->reg, 1000));
    assert_int_equal(registry_corrupt_recheck(f->reg, 1000), 0);
    assert_int_equal(registry_corrupt(f->reg, "", NULL, 0), 0);
    /* at most once per interval, by the registry's clock */
    assert_false(registry_corrupt_recheck_due(f->reg, 1000));
    clock_test_advance(f->clock, 1000);
    assert_true(registry_corrupt_recheck_due(f->reg, 1000));
    /* a junk pin, noted by a read, dropped by a recheck once gone */
    sqlite_dir_put(f->d.st, REG_TENANTS "acme:x", "[]");
    tenant_pin p;
    assert_int_equal(tenants_get(f->reg, "acme:x", &p), CITRUS_ECORRUPT);
    assert_int_equal(registry_corrupt(f->reg, REG_TENANTS, c, 4), 1);
    assert_string_equal(c[0].key, REG_TENANTS "acme:x");
    assert_int_equal(store_delete(f->d.st, REG_TENANTS "acme:x", false, -1, &deleted, NULL, NULL),
                     0);
    assert_int_equal(registry_corrupt_recheck(f->reg, 1000), 0);
    assert_int_equal(registry_corrupt(f->reg, "", NULL, 0), 0);
    /* a junk token list: the ring is refused (it would misroute a's keys),
     * and the key is named; repaired, the next ring read clears it */
    uint64_t *tok = regfix_tokens(f, "a", &n);
    sqlite_dir_put(f->d.st, REG_RING_TOKENS "a", "{\"tokens\":[\"x\"]}");
    const ring *rg;
    int64_t ver;
    assert_int_equal(registry_ring(f->reg, &rg, &ver, NULL), CITRUS_ECORRUPT);
    assert_int_equal(registry_corrupt(f->reg, "", c, 4), 1);
    assert_string_equal(c[0].key, REG_RING_TOKENS "a");
    json_t *tj = ring_tokens_json(tok, n);
    text = json_dumps(tj, JSON_COMPACT);
    sqlite_dir_put(f->d.st, REG_RING_TOKENS "a", text);
    free(text);
    json_decref(tj);
    free(tok);
    clock_test_advance(f->clock, 1000);
    assert_int_equal(registry_corrupt_recheck(f->reg, 1000), 0);
    assert_int_equal(registry_corrupt(f->reg, "", NULL, 0), 0);
}

/* ---- deletes and pinned tenants ---- */

static void delete_rules(void **state)
{
    regfix *f = *state;
    regfix_add_active(f, "a", 1, "sqlite:///tmp/a.db");
    regfix_add_active(f, "b", 1, "sqlite:///tmp/b.db");
    reg_result res;
    errdetail e = {0};
    assert_int_equal(registry_shard_delete(f->reg, "a", 0, &res, &e), CITRUS_EINUSE);
    assert_int_equal(e.code, CITRUS_EINUSE);
    assert_non_null(strstr(e.message, "only retired or failed"));
    reg_result_clear(&res);

    /* failed with tokens: only with force, and then its tokens go */
    assert_int_equal(regfix_move(f, "a", SHARD_FAILED, 0), 0);
    assert_int_equal(registry_shard_delete(f->reg, "a", 0, &res, &e), CITRUS_EINUSE);
    assert_int_equal(res.tokens_before, VNODES);
    reg_result_clear(&res);
    assert_int_equal(registry_shard_delete(f->reg, "a", REG_FORCE, &res, &e), 0);
    assert_true(res.ring_changed);
    reg_result_clear(&res);
    size_t n;
    assert_null(regfix_tokens(f, "a", &n));
    shard s;
    assert_int_equal(registry_shard_get(f->reg, "a", &s, NULL), CITRUS_ENOTFOUND);

    /* retired (no tokens left): deleted */
    assert_int_equal(regfix_move(f, "b", SHARD_DRAINING, 0), 0);
    assert_int_equal(regfix_move(f, "b", SHARD_DRAINED, 0), 0);
    assert_int_equal(regfix_move(f, "b", SHARD_RETIRED, 0), 0);
    assert_int_equal(registry_shard_delete(f->reg, "b", 0, &res, &e), 0);
    assert_false(res.ring_changed);
    reg_result_clear(&res);
}

/* Retiring a shard with pinned tenants needs force; the registry counts
 * them and leaves moving them to the caller (the shard service). */
static void retire_reports_pins_and_leaves_them(void **state)
{
    regfix *f = *state;
    regfix_add_active(f, "a", 1, "sqlite:///tmp/a.db");
    regfix_add_active(f, "b", 1, "sqlite:///tmp/b.db");
    tenant_pin p;
    bool created;
    errdetail e = {0};
    assert_int_equal(tenants_put(f->reg, "t1", "a", 0, &p, &created, &e), 0);
    assert_int_equal(regfix_move(f, "a", SHARD_DRAINING, 0), 0);
    assert_int_equal(regfix_move(f, "a", SHARD_DRAINED, 0), 0);

    int64_t m = regfix_mod(f, REG_SHARDS "a");
    assert_int_equal(regfix_move(f, "a", SHARD_RETIRED, 0), CITRUS_EFORCE);
    assert_int_equal(regfix_mod(f, REG_SHARDS "a"), m);
    size_t count;
    assert_int_equal(registry_tenant_count(f->reg, "a", true, &count), 0);
    assert_int_equal(count, 1);
    assert_int_equal(regfix_move(f, "a", SHARD_RETIRED, REG_FORCE), 0);
    assert_int_equal(tenants_get(f->reg, "t1", &p), 0);
    assert_string_equal(p.shard_id, "a"); /* not moved by the registry */
}

/* ---- the shared ring ---- */

static void the_ring_is_shared_per_version(void **state)
{
    regfix *f = *state;
    const ring *r0, *r1, *r2;
    int64_t v0, v1, v2;
    assert_int_equal(registry_ring(f->reg, &r0, &v0, NULL), 0);
    assert_int_equal(ring_size(r0), 0);
    assert_int_equal(v0, 0);
    regfix_add_active(f, "a", 1, "sqlite:///tmp/a.db");
    assert_int_equal(registry_ring(f->reg, &r1, &v1, NULL), 0);
    assert_int_equal(registry_ring(f->reg, &r2, &v2, NULL), 0);
    assert_ptr_equal(r1, r2); /* one build per version */
    assert_int_equal(v1, v2);
    assert_true(v1 > v0);
    assert_int_equal(ring_size(r0), 0); /* an older ring stays valid while held */
    assert_int_equal(ring_size(r1), VNODES);
    registry_ring_release(f->reg, r0);
    registry_ring_release(f->reg, r1);
    registry_ring_release(f->reg, r2);
}

/* ---- one database, one shard ---- */

/* The catalog key of one database identity. */
static void db_key(const char *identity, char *out, size_t len)
{
    char hex[DIGEST_SHA256_HEX + 1];
    assert_int_equal(digest_sha256_hex(identity, strlen(identity), hex), 0);
    snprintf(out, len, "%s%s", REG_SHARD_DB, hex);
}

/* registry_shard_create of a new pending record id with dsn. */
static int create(regfix *f, const char *id, const char *dsn, errdetail *e)
{
    shard s;
    regfix_record(f, &s, id, 1, dsn);
    reg_result res;
    errdetail_clear(e);
    int rc = registry_shard_create(f->reg, &s, NULL, &res, e);
    reg_result_clear(&res);
    shard_clear(&s);
    return rc;
}

static int set_dsn(shard *s, void *vctx, errdetail *e)
{
    (void)e;
    free(s->dsn);
    s->dsn = strdup(vctx);
    return s->dsn ? 0 : CITRUS_ENOMEM;
}

static void one_database_one_shard(void **state)
{
    regfix *f = *state;
    regfix_add_active(f, "a", 1, "host=DB.example.com dbname=shop user=u password=x");
    char key[256];
    db_key("postgresql://db.example.com:5432/shop", key, sizeof(key));
    assert_true(regfix_mod(f, key) > 0);
    /* the same database written otherwise, with another user: 409 naming the shard */
    errdetail e = {0};
    assert_int_equal(create(f, "b", "postgresql://v@db.example.com:5432/shop", &e),
                     CITRUS_EREGCONFLICT);
    assert_non_null(strstr(e.message, "shard 'a'"));
    assert_null(strstr(e.message, "password"));
    shard s;
    assert_int_equal(registry_shard_get(f->reg, "b", &s, NULL), CITRUS_ENOTFOUND);
    assert_int_equal(create(f, "b", "host=db.example.com dbname=shop2", &e), 0);

    /* a racing registration that committed its key after our scan: the
     * create-only compare fails, and the answer names the winner */
    char race[256];
    db_key("postgresql://h:5432/race", race, sizeof(race));
    txb t;
    txb_init(&t);
    txb_put_json(&t, race, json_pack("{s:s,s:s}", "shard_id", "winner", "database", "x"));
    bool ok = false;
    assert_int_equal(registry_commit(f->reg, &t, &ok, NULL), 0);
    txb_free(&t);
    assert_true(ok);
    assert_int_equal(create(f, "loser", "host=h dbname=race", &e), CITRUS_EREGCONFLICT);
    assert_non_null(strstr(e.message, "shard 'winner'"));

    /* a provisioned shard getting its DSN (registry_shard_modify) */
    assert_int_equal(create(f, "p", NULL, &e), 0);
    reg_result res;
    assert_int_equal(registry_shard_modify(f->reg, "p", set_dsn, "host=localhost dbname=d", 0, NULL,
                                           NULL, &res, &e),
                     0);
    reg_result_clear(&res);
    assert_int_equal(registry_shard_modify(f->reg, "b", set_dsn, "postgresql://127.0.0.1:5432/d", 0,
                                           NULL, NULL, &res, &e),
                     CITRUS_EREGCONFLICT);
    assert_non_null(strstr(e.message, "shard 'p'"));
    /* b kept its database; a DSN change moves the key */
    db_key("postgresql://db.example.com:5432/shop2", key, sizeof(key));
    assert_true(regfix_mod(f, key) > 0);
    assert_int_equal(registry_shard_modify(f->reg, "b", set_dsn, "host=db.example.com dbname=s3", 0,
                                           NULL, NULL, &res, &e),
                     0);
    reg_result_clear(&res);
    assert_int_equal(regfix_mod(f, key), 0);
    assert_int_equal(create(f, "c", "host=db.example.com dbname=shop2", &e), 0);

    /* retired still holds it; deleted frees it */
    assert_int_equal(regfix_move(f, "a", SHARD_DRAINING, 0), 0);
    assert_int_equal(regfix_move(f, "a", SHARD_DRAINED, 0), 0);
    assert_int_equal(regfix_move(f, "a", SHARD_RETIRED, 0), 0);
    assert_int_equal(create(f, "d", "host=db.example.com dbname=shop", &e), CITRUS_EREGCONFLICT);
    assert_int_equal(registry_shard_delete(f->reg, "a", 0, &res, &e), 0);
    reg_result_clear(&res);
    db_key("postgresql://db.example.com:5432/shop", key, sizeof(key));
    assert_int_equal(regfix_mod(f, key), 0);
    assert_int_equal(create(f, "d", "host=db.example.com dbname=shop", &e), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(history_is_stamped_by_the_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(refused_transitions_write_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(activation_gives_tokens_and_moves_ranges, setup, teardown),
        cmocka_unit_test_setup_teardown(ranges_name_old_and_new_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(weight_changes_keep_the_list_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(state_decides_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(dry_run_writes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(a_concurrent_change_makes_it_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(a_fence_that_moved_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(create_refuses_a_taken_id, setup, teardown),
        cmocka_unit_test_setup_teardown(delete_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(one_database_one_shard, setup, teardown),
        cmocka_unit_test_setup_teardown(retire_reports_pins_and_leaves_them, setup, teardown),
        cmocka_unit_test_setup_teardown(the_ring_is_shared_per_version, setup, teardown),
        cmocka_unit_test_setup_teardown(a_corrupt_record_is_reported_on_its_own, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
