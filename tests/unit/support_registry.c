/* tests/unit/support_registry.c — see support_registry.h. */
#include "support_registry.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wire/route_json.h"

void regfix_open(regfix *f, const char *tag, size_t vnodes)
{
    memset(f, 0, sizeof(*f));
    sqlite_dir_open(&f->d, tag, 0);
    f->clock = clock_test_new(1000, REGFIX_WALL0);
    assert_non_null(f->clock);
    f->reg = registry_new(f->d.st, f->clock, CITRUS_HASH_MURMUR3, vnodes, NULL, NULL);
    assert_non_null(f->reg);
    errdetail e = {0};
    assert_int_equal(registry_init(f->reg, &e), 0);
}

void regfix_close(regfix *f)
{
    registry_free(f->reg);
    clock_test_free(f->clock);
    sqlite_dir_close(&f->d);
}

void regfix_record(regfix *f, shard *s, const char *id, double weight, const char *dsn)
{
    shard_init(s);
    snprintf(s->id, sizeof(s->id), "%s", id);
    s->weight = weight;
    s->dsn = dsn ? strdup(dsn) : NULL;
    s->created_ms = s->updated_ms = clock_wall_ms(f->clock);
}

void regfix_add_active(regfix *f, const char *id, double weight, const char *dsn)
{
    shard s;
    regfix_record(f, &s, id, weight, dsn);
    int64_t now = clock_wall_ms(f->clock);
    assert_int_equal(shard_transition(&s, SHARD_INITIALIZING, "registered", "test", now), 0);
    assert_int_equal(shard_transition(&s, SHARD_ACTIVE, "ready", "test", now), 0);
    reg_result res;
    errdetail e = {0};
    if (registry_shard_create(f->reg, &s, NULL, &res, &e) != 0)
        fail_msg("create %s: %s", id, e.message);
    reg_result_clear(&res);
    shard_clear(&s);
}

typedef struct move_ctx {
    shard_state to;
    int64_t now;
} move_ctx;

static int move_fn(shard *s, void *vctx, errdetail *e)
{
    move_ctx *c = vctx;
    return shard_transition(s, c->to, "test", "test", c->now);
}

int regfix_move_on(registry *reg, const sysclock *clock, const char *id, shard_state to,
                   unsigned flags)
{
    move_ctx c = {to, clock_wall_ms(clock)};
    reg_result res;
    errdetail e = {0};
    int rc = registry_shard_modify(reg, id, move_fn, &c, flags, NULL, NULL, &res, &e);
    reg_result_clear(&res);
    return rc;
}

int regfix_move(regfix *f, const char *id, shard_state to, unsigned flags)
{
    return regfix_move_on(f->reg, f->clock, id, to, flags);
}

uint64_t *regfix_tokens(regfix *f, const char *id, size_t *n)
{
    char key[128];
    snprintf(key, sizeof(key), "%s%s", REG_RING_TOKENS, id);
    kv_range_req q = {.key = key};
    kv_range_res res;
    assert_int_equal(store_range(f->d.st, &q, &res), 0);
    uint64_t *t = NULL;
    *n = 0;
    if (res.count)
        assert_int_equal(route_json_tokens(res.items[0].value, res.items[0].value_len, &t, n), 0);
    kv_range_res_free(&res);
    return t;
}

int64_t regfix_mod(regfix *f, const char *key)
{
    kv_range_req q = {.key = key};
    kv_range_res res;
    assert_int_equal(store_range(f->d.st, &q, &res), 0);
    int64_t mod = res.count ? res.items[0].mod_revision : 0;
    kv_range_res_free(&res);
    return mod;
}
