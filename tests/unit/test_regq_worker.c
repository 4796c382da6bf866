/* tests/unit/test_regq_worker.c — the registration worker's handler
 * (workers/registration.h) on a real records store (SQLite) with an
 * injected clock and a fake registration: the state machine queued →
 * running → succeeded / retrying (attempts, last error, next attempt from
 * the bus's backoff) / failed (a permanent error at once, else the last
 * attempt), a redelivery of a succeeded one does nothing, a message
 * without a registration id or for an unknown one is permanent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "citrus/errors.h"
#include "records/registrations.h"
#include "workers/registration.h"

#define T0 1700000000000LL

typedef struct fake {
    int calls;
    int rc; /* what the next call returns */
    char msg[64];
} fake;

static int fake_register(void *ctx, const tenant_reg *reg, tenant_pin *pin, errdetail *e)
{
    fake *f = ctx;
    f->calls++;
    assert_string_equal(reg->business_id, "acme");
    assert_string_equal(reg->location_id, "s1");
    assert_string_equal(reg->business_type, "retail");
    if (f->rc != 0)
        return errdetail_set(e, f->rc, "%s", f->msg);
    snprintf(pin->shard_id, sizeof(pin->shard_id), "shard-3");
    return 0;
}

typedef struct fx {
    char dir[64];
    records *rec;
    sysclock *clock;
    fake f;
    regq_worker_ctx ctx;
} fx;

static int setup(void **state)
{
    fx *x = calloc(1, sizeof(*x));
    snprintf(x->dir, sizeof(x->dir), "/tmp/regq-XXXXXX");
    assert_non_null(mkdtemp(x->dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/records.db", x->dir);
    errdetail e = {0};
    assert_int_equal(records_open_sqlite(path, &x->rec, &e), 0);
    x->clock = clock_test_new(0, T0);
    x->ctx = (regq_worker_ctx){.rec = x->rec,
                               .clock = x->clock,
                               .max_attempts = 3,
                               .backoff_base_ms = 1000,
                               .backoff_cap_ms = 3000,
                               .attempt_ms = 1000,
                               .do_register = fake_register,
                               .do_ctx = &x->f};
    reg_row g = {.state = REG_QUEUED, .created_ms = T0};
    snprintf(g.id, sizeof(g.id), "reg-1");
    snprintf(g.business_id, sizeof(g.business_id), "acme");
    snprintf(g.location_id, sizeof(g.location_id), "s1");
    snprintf(g.business_type, sizeof(g.business_type), "retail");
    assert_int_equal(records_reg_create(x->rec, &g, &e), 0);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    fx *x = *state;
    records_close(x->rec);
    clock_test_free(x->clock);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", x->dir);
    assert_int_equal(system(cmd), 0);
    free(x);
    return 0;
}

/* Runs the handler on a message for id at delivery attempt; *out the fx. */
static int handle(fx *x, const char *id, int attempt, worker_effect *out, errdetail *e)
{
    char text[256];
    if (id)
        snprintf(text, sizeof(text),
                 "{\"specversion\":\"1.0\",\"id\":\"ev-%d\",\"source\":\"/"
                 "t\",\"type\":\"" RECORDS_REG_EVENT_TYPE
                 "\",\"data\":{\"registrationId\":\"%s\"}}",
                 attempt, id);
    else
        snprintf(text, sizeof(text),
                 "{\"specversion\":\"1.0\",\"id\":\"ev\",\"source\":\"/t\",\"type\":\"x\","
                 "\"data\":{}}");
    envelope ev;
    assert_int_equal(envelope_parse(text, strlen(text), 0, &ev, e), 0);
    bus_message m = {.attempt = attempt, .partition = 0, .offset = 0};
    memset(out, 0, sizeof(*out));
    int rc = regq_handle(&x->ctx, &ev, &m, out, e);
    envelope_clear(&ev);
    return rc;
}

static reg_row get(fx *x)
{
    reg_row g;
    errdetail e = {0};
    assert_int_equal(records_reg_get(x->rec, "reg-1", &g, &e), 0);
    return g;
}

static void test_succeeds(void **state)
{
    fx *x = *state;
    worker_effect w;
    errdetail e = {0};
    clock_test_advance(x->clock, 500);
    assert_int_equal(handle(x, "reg-1", 1, &w, &e), 0);
    assert_false(w.skipped);
    reg_row g = get(x);
    assert_int_equal(g.state, REG_SUCCEEDED);
    assert_string_equal(g.shard_id, "shard-3");
    assert_int_equal(g.attempts, 1);
    assert_int_equal(g.finished_ms, T0 + 500);
    assert_int_equal(x->f.calls, 1);
    /* a redelivery does nothing */
    assert_int_equal(handle(x, "reg-1", 1, &w, &e), 0);
    assert_true(w.skipped);
    assert_int_equal(x->f.calls, 1);
    assert_int_equal(get(x).attempts, 1);
}

/* An unreachable shard: retrying with the error and the backoff's latest
 * next attempt (base, then doubled, capped), failed on the last attempt;
 * the runner nacks (not permanent: the bus dead-letters the last one). */
static void test_retries_then_fails(void **state)
{
    fx *x = *state;
    x->f.rc = CITRUS_ESHARDDOWN;
    snprintf(x->f.msg, sizeof(x->f.msg), "shard pg-1 did not answer");
    worker_effect w;
    errdetail e = {0};
    assert_int_equal(handle(x, "reg-1", 1, &w, &e), CITRUS_ESHARDDOWN);
    assert_false(w.permanent);
    reg_row g = get(x);
    assert_int_equal(g.state, REG_RETRYING);
    assert_int_equal(g.attempts, 1);
    assert_string_equal(g.last_error, "shard_unreachable: shard pg-1 did not answer");
    assert_int_equal(g.next_attempt_ms, T0 + 1000);
    assert_int_equal(g.finished_ms, 0);
    clock_test_advance(x->clock, 1000);
    assert_int_equal(handle(x, "reg-1", 2, &w, &e), CITRUS_ESHARDDOWN);
    g = get(x);
    assert_int_equal(g.state, REG_RETRYING);
    assert_int_equal(g.attempts, 2);
    assert_int_equal(g.next_attempt_ms, T0 + 1000 + 2000);
    clock_test_advance(x->clock, 2000);
    assert_int_equal(handle(x, "reg-1", 3, &w, &e), CITRUS_ESHARDDOWN);
    assert_false(w.permanent);
    g = get(x);
    assert_int_equal(g.state, REG_FAILED);
    assert_int_equal(g.attempts, 3);
    assert_int_equal(g.next_attempt_ms, 0);
    assert_int_equal(g.finished_ms, T0 + 3000);
    /* re-driven (back to queued), it succeeds; attempts count on */
    g.state = REG_QUEUED;
    assert_int_equal(records_reg_update(x->rec, &g, REG_FAILED, NULL, &e), 0);
    x->f.rc = 0;
    assert_int_equal(handle(x, "reg-1", 1, &w, &e), 0);
    g = get(x);
    assert_int_equal(g.state, REG_SUCCEEDED);
    assert_int_equal(g.attempts, 4);
    assert_string_equal(g.last_error, "");
}

/* The backoff's cap: the delay stops doubling there. */
static void test_next_attempt_capped(void **state)
{
    fx *x = *state;
    x->ctx.max_attempts = 10;
    x->f.rc = CITRUS_EUNAVAILABLE;
    worker_effect w;
    errdetail e = {0};
    assert_int_equal(handle(x, "reg-1", 5, &w, &e), CITRUS_EUNAVAILABLE);
    assert_int_equal(get(x).next_attempt_ms, T0 + 3000);
}

/* Another business type (409) fails at once, dead-lettered without retries. */
static void test_permanent_fails_at_once(void **state)
{
    fx *x = *state;
    x->f.rc = CITRUS_EREGCONFLICT;
    snprintf(x->f.msg, sizeof(x->f.msg), "registered as 'restaurant'");
    worker_effect w;
    errdetail e = {0};
    assert_int_equal(handle(x, "reg-1", 1, &w, &e), CITRUS_EREGCONFLICT);
    assert_true(w.permanent);
    reg_row g = get(x);
    assert_int_equal(g.state, REG_FAILED);
    assert_int_equal(g.attempts, 1);
    assert_string_equal(g.last_error, "conflict: registered as 'restaurant'");
}

static void test_bad_messages_are_permanent(void **state)
{
    fx *x = *state;
    worker_effect w;
    errdetail e = {0};
    assert_int_equal(handle(x, NULL, 1, &w, &e), CITRUS_EBADJSON);
    assert_true(w.permanent);
    assert_int_equal(handle(x, "unknown", 1, &w, &e), CITRUS_ENOTFOUND);
    assert_true(w.permanent);
    assert_int_equal(x->f.calls, 0);
    assert_int_equal(get(x).state, REG_QUEUED);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_succeeds),
        T(test_retries_then_fails),
        T(test_next_attempt_capped),
        T(test_permanent_fails_at_once),
        T(test_bad_messages_are_permanent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
