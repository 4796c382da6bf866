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

#include "bus/bus_sqlite.h"
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

static uint64_t zero_random(void *ctx)
{
    (void)ctx;
    return 0; /* the jittered backoff is then d - d/2: 500, 1000, ... */
}

typedef struct fx {
    char dir[64];
    bus *b;
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
    snprintf(path, sizeof(path), "%s/bus.db", x->dir);
    bus_config bc = {.clock = x->clock};
    assert_int_equal(bus_open_sqlite(path, &bc, &x->b, &e), 0);
    bus_topic_opts o = {.partitions = 4};
    assert_int_equal(bus_topic_create(x->b, "regs", &o, &e), 0);
    x->ctx = (regq_worker_ctx){.rec = x->rec,
                               .clock = x->clock,
                               .max_attempts = 3,
                               .backoff_base_ms = 1000,
                               .backoff_cap_ms = 3000,
                               .random = zero_random,
                               .attempt_ms = 1000,
                               .lease_ms = 10000,
                               .bus = x->b,
                               .topic = "regs",
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
    bus_close(x->b);
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

/* The messages published on the topic so far (all partitions): their
 * count; the ids into ids and the correlation ids ("" for none) into corrs
 * (each may be NULL). */
static size_t published(fx *x, char ids[][64], char corrs[][64], size_t max)
{
    size_t total = 0;
    for (int p = 0; p < 4; p++) {
        bus_message *m = NULL;
        size_t n = 0;
        assert_int_equal(bus_read(x->b, "regs", p, 0, 100, &m, &n, NULL), 0);
        for (size_t i = 0; i < n; i++, total++) {
            envelope ev;
            errdetail e = {0};
            assert_int_equal(envelope_parse((const char *)m[i].value, m[i].value_len, 0, &ev, &e),
                             0);
            assert_string_equal(json_string_value(json_object_get(ev.data, "registrationId")),
                                "reg-1");
            assert_string_equal(json_string_value(json_object_get(ev.data, "businessType")),
                                "retail");
            if (ids && total < max)
                snprintf(ids[total], 64, "%s", ev.id);
            if (corrs && total < max)
                snprintf(corrs[total], 64, "%s", ev.correlationid ? ev.correlationid : "");
            envelope_clear(&ev);
        }
        bus_messages_free(m, n);
    }
    return total;
}

static void sweep(fx *x, size_t want_published, size_t want_stale)
{
    size_t pub = 99, stale = 99;
    errdetail e = {0};
    assert_int_equal(regq_sweep(&x->ctx, &pub, &stale, &e), 0);
    assert_int_equal(pub, want_published);
    assert_int_equal(stale, want_stale);
}

/* The fake registration fails as an unreachable shard does. */
static void shard_down(fx *x)
{
    x->f.rc = CITRUS_ESHARDDOWN;
    snprintf(x->f.msg, sizeof(x->f.msg), "shard pg-1 did not answer");
}

/* An unreachable shard: retrying with the error and the backoff's next
 * attempt (base, then doubled, capped, jittered), the message committed
 * (not nacked: it would hold back its partition); the sweeper publishes
 * the next attempt once due (never before, once per attempt); the attempt
 * bus.max_attempts fails it and dead-letters its message. */
static void test_retries_then_fails(void **state)
{
    fx *x = *state;
    shard_down(x);
    worker_effect w;
    errdetail e = {0};
    assert_int_equal(handle(x, "reg-1", 1, &w, &e), 0);
    assert_false(w.permanent);
    assert_true(w.skipped);
    reg_row g = get(x);
    assert_int_equal(g.state, REG_RETRYING);
    assert_int_equal(g.attempts, 1);
    assert_int_equal(g.drive_attempts, 1);
    assert_string_equal(g.last_error, "shard_unreachable: shard pg-1 did not answer");
    assert_int_equal(g.next_attempt_ms, T0 + 500);
    assert_int_equal(g.finished_ms, 0);
    sweep(x, 0, 0); /* not due yet */
    assert_int_equal(published(x, NULL, NULL, 0), 0);
    clock_test_advance(x->clock, 500);
    sweep(x, 1, 0);
    sweep(x, 0, 0); /* once */
    char ids[4][64];
    assert_int_equal(published(x, ids, NULL, 4), 1);
    assert_string_equal(ids[0], "reg-1.1");
    assert_int_equal(get(x).state, REG_QUEUED);
    assert_int_equal(handle(x, "reg-1", 1, &w, &e), 0);
    g = get(x);
    assert_int_equal(g.state, REG_RETRYING);
    assert_int_equal(g.attempts, 2);
    assert_int_equal(g.next_attempt_ms, T0 + 500 + 1000);
    clock_test_advance(x->clock, 1000);
    sweep(x, 1, 0);
    assert_int_equal(published(x, ids, NULL, 4), 2);
    assert_string_equal(ids[1], "reg-1.2");
    assert_int_equal(handle(x, "reg-1", 1, &w, &e), CITRUS_ESHARDDOWN);
    assert_true(w.permanent); /* the last: dead-lettered now */
    g = get(x);
    assert_int_equal(g.state, REG_FAILED);
    assert_int_equal(g.attempts, 3);
    assert_int_equal(g.next_attempt_ms, 0);
    assert_int_equal(g.finished_ms, T0 + 1500);
    sweep(x, 0, 0);
    /* re-driven (back to queued, a new drive), it succeeds; attempts count on */
    g.state = REG_QUEUED;
    g.drive_attempts = 0;
    assert_int_equal(records_reg_update(x->rec, &g, REG_FAILED, NULL, &e), 0);
    x->f.rc = 0;
    assert_int_equal(handle(x, "reg-1", 1, &w, &e), 0);
    g = get(x);
    assert_int_equal(g.state, REG_SUCCEEDED);
    assert_int_equal(g.attempts, 4);
    assert_int_equal(g.drive_attempts, 1);
    assert_string_equal(g.last_error, "");
}

/* The sweeper's message of the next attempt carries the registration's
 * correlation id (the request that queued it), none when it has none. */
static void test_sweep_keeps_correlation_id(void **state)
{
    fx *x = *state;
    shard_down(x);
    worker_effect w;
    errdetail e = {0};
    reg_row g = get(x);
    snprintf(g.correlation_id, sizeof(g.correlation_id), "req-orig-1");
    assert_int_equal(records_reg_update(x->rec, &g, REG_QUEUED, NULL, &e), 0);
    assert_int_equal(handle(x, "reg-1", 1, &w, &e), 0);
    assert_string_equal(get(x).correlation_id, "req-orig-1"); /* the attempt keeps it */
    clock_test_advance(x->clock, 500);
    sweep(x, 1, 0);
    /* none stored (a row of an older version): the message has none */
    assert_int_equal(handle(x, "reg-1", 1, &w, &e), 0);
    g = get(x);
    g.correlation_id[0] = '\0';
    assert_int_equal(records_reg_update(x->rec, &g, REG_RETRYING, NULL, &e), 0);
    clock_test_advance(x->clock, 1000);
    sweep(x, 1, 0);
    char ids[4][64], corrs[4][64];
    assert_int_equal(published(x, ids, corrs, 4), 2);
    size_t first = strcmp(ids[0], "reg-1.1") == 0 ? 0 : 1; /* partitions: any order */
    assert_string_equal(ids[first], "reg-1.1");
    assert_string_equal(corrs[first], "req-orig-1");
    assert_string_equal(ids[1 - first], "reg-1.2");
    assert_string_equal(corrs[1 - first], "");
}

/* The backoff's cap: the delay stops doubling there. */
static void test_next_attempt_capped(void **state)
{
    fx *x = *state;
    x->ctx.max_attempts = 10;
    x->f.rc = CITRUS_EUNAVAILABLE;
    reg_row g = get(x);
    g.drive_attempts = 4;
    errdetail e = {0};
    assert_int_equal(records_reg_update(x->rec, &g, REG_NSTATES, NULL, &e), 0);
    worker_effect w;
    assert_int_equal(handle(x, "reg-1", 1, &w, &e), 0);
    assert_int_equal(get(x).next_attempt_ms, T0 + 1500); /* cap 3000, jittered to half */
}

/* A worker killed during an attempt: the record says running until the
 * lease's deadline; a redelivery claims it and goes on; with no delivery
 * after its lease and a grace of one more, the sweeper makes it retrying
 * (due at once) or, after the last attempt, failed. */
static void test_left_running(void **state)
{
    fx *x = *state;
    x->f.rc = CITRUS_ESHARDDOWN;
    /* what a worker killed mid-attempt leaves: running, its deadline */
    reg_row g = get(x);
    g.state = REG_RUNNING;
    g.attempts = g.drive_attempts = 1;
    g.next_attempt_ms = T0 + 10000;
    errdetail e = {0};
    assert_int_equal(records_reg_update(x->rec, &g, REG_NSTATES, NULL, &e), 0);
    clock_test_advance(x->clock, 15000); /* past the lease, within the grace */
    sweep(x, 0, 0);
    assert_int_equal(get(x).state, REG_RUNNING);
    /* the bus delivers it again: it goes on (attempt 2) */
    x->f.rc = 0;
    worker_effect w;
    assert_int_equal(handle(x, "reg-1", 2, &w, &e), 0);
    assert_false(w.skipped);
    assert_int_equal(get(x).state, REG_SUCCEEDED);
    assert_int_equal(get(x).attempts, 2);

    /* left running again, and no delivery comes */
    g = get(x);
    g.state = REG_RUNNING;
    g.next_attempt_ms = T0 + 25000;
    g.finished_ms = 0;
    assert_int_equal(records_reg_update(x->rec, &g, REG_NSTATES, NULL, &e), 0);
    clock_test_advance(x->clock, 20000); /* T0 + 35000: within the grace */
    sweep(x, 0, 0);
    clock_test_advance(x->clock, 1); /* past it: retrying, due at once, so published */
    sweep(x, 1, 1);
    g = get(x);
    assert_int_equal(g.state, REG_QUEUED);
    assert_non_null(strstr(g.last_error, "worker_stopped: "));
    char ids[4][64];
    assert_int_equal(published(x, ids, NULL, 4), 1);
    assert_string_equal(ids[0], "reg-1.2");
    sweep(x, 0, 0);

    /* left running in its last attempt (the bus dead-letters it): failed */
    g = get(x);
    g.state = REG_RUNNING;
    g.drive_attempts = 3;
    g.next_attempt_ms = T0 + 36000;
    assert_int_equal(records_reg_update(x->rec, &g, REG_NSTATES, NULL, &e), 0);
    clock_test_advance(x->clock, 30000);
    sweep(x, 0, 1);
    g = get(x);
    assert_int_equal(g.state, REG_FAILED);
    assert_non_null(strstr(g.last_error, "(the last one)"));
    assert_int_equal(g.finished_ms, T0 + 65001);
}

/* Two copies of a message at once: the one that claims the record runs,
 * the other is committed without running (the claim compares attempts). */
static void test_copies_do_not_run_twice(void **state)
{
    fx *x = *state;
    reg_row g = get(x);
    errdetail e = {0};
    /* claimed by another copy since this one read it: attempts moved */
    g.state = REG_RUNNING;
    g.attempts = 1;
    g.next_attempt_ms = T0 + 10000;
    reg_row stale = get(x);
    assert_int_equal(records_reg_update(x->rec, &g, REG_NSTATES, NULL, &e), 0);
    bool changed = true;
    stale.state = REG_RUNNING;
    stale.attempts = 1;
    assert_int_equal(records_reg_update_if(x->rec, &stale, REG_QUEUED, 0, &changed, &e), 0);
    assert_false(changed);
    assert_int_equal(records_reg_update_if(x->rec, &stale, REG_RUNNING, 0, &changed, &e), 0);
    assert_false(changed);
    assert_int_equal(records_reg_update_if(x->rec, &stale, REG_RUNNING, 1, &changed, &e), 0);
    assert_true(changed);
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
        T(test_sweep_keeps_correlation_id),
        T(test_next_attempt_capped),
        T(test_left_running),
        T(test_copies_do_not_run_twice),
        T(test_permanent_fails_at_once),
        T(test_bad_messages_are_permanent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
