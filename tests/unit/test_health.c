/* Unit tests for provision/health.c through shard_health_tick, without the
 * thread, on the embedded catalog store and a test clock: a shard is
 * unknown until its first probe, reachable after a good one, unreachable
 * from the first failure (with its last good time kept and the error
 * redacted), reachable again after one good probe; rounds run when the
 * interval has passed and not before (or at once when kicked); a probe
 * that hangs past its timeout shows unreachable to a reader without the
 * reader waiting; retired shards are not probed and deleted ones are
 * forgotten, metric included; a result about an older version of the
 * record reads as unknown; the real probe (drv_probe) on SQLite. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "citrus/errors.h"
#include "obs/metrics.h"
#include "provision/health.h"
#include "support_registry.h"

#define VNODES 8
#define INTERVAL 1000
#define TIMEOUT 300

typedef struct hfix {
    regfix r;
    shard_health *h;
    /* the fake probe: what it answers for "a" and "b" */
    int rc_a, rc_b;
    const char *msg;
    int calls_a, calls_b, calls_other;
    bool hang_b;            /* b's probe moves the clock past its timeout, then reads */
    shard_health_view seen; /* what a reader saw of b while b's probe hung */
} hfix;

static int fake_probe(void *ctx, const shard *s, int64_t timeout_ms, int64_t *latency_ms,
                      errdetail *e)
{
    hfix *f = ctx;
    assert_int_equal(timeout_ms, TIMEOUT);
    *latency_ms = 7;
    if (strcmp(s->id, "a") == 0) {
        f->calls_a++;
        return f->rc_a < 0 ? errdetail_set(e, f->rc_a, "%s", f->msg) : 0;
    }
    if (strcmp(s->id, "b") == 0) {
        f->calls_b++;
        if (f->hang_b) {
            clock_test_advance(f->r.clock, TIMEOUT + HEALTH_GRACE_MS + 1);
            shard_health_get(f->h, "b", -1, &f->seen);
        }
        return f->rc_b < 0 ? errdetail_set(e, f->rc_b, "%s", f->msg) : 0;
    }
    f->calls_other++;
    return 0;
}

static int setup(void **state)
{
    hfix *f = calloc(1, sizeof(*f));
    regfix_open(&f->r, "health", VNODES);
    regfix_add_active(&f->r, "a", 1, "sqlite:///nonexistent/a.db");
    regfix_add_active(&f->r, "b", 1, "sqlite:///nonexistent/b.db");
    f->h = shard_health_new(f->r.reg, INTERVAL, TIMEOUT, f->r.clock);
    assert_non_null(f->h);
    shard_health_set_probe(f->h, fake_probe, f);
    f->msg = "connection refused";
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    hfix *f = *state;
    shard_health_free(f->h);
    regfix_close(&f->r);
    free(f);
    return 0;
}

static shard_health_view view(hfix *f, const char *id)
{
    shard_health_view v;
    shard_health_get(f->h, id, -1, &v);
    return v;
}

static void unknown_then_reachable_then_unreachable_then_back(void **state)
{
    hfix *f = *state;
    shard_health_view v = view(f, "a");
    assert_int_equal(v.status, HEALTH_UNKNOWN); /* before the first round */
    assert_int_equal(v.last_ok_ms, 0);
    assert_string_equal(health_status_name(v.status), "unknown");

    assert_true(shard_health_tick(f->h)); /* the first round is due at once */
    v = view(f, "a");
    assert_int_equal(v.status, HEALTH_REACHABLE);
    assert_int_equal(v.latency_ms, 7);
    assert_int_equal(v.last_ok_ms, REGFIX_WALL0);
    assert_int_equal(v.last_probe_ms, REGFIX_WALL0);
    assert_int_equal(v.failures, 0);
    assert_int_equal(metrics_value("citrus_shard_reachable", "shard=\"a\""), 1);

    /* not due before the interval has passed */
    clock_test_advance(f->r.clock, INTERVAL - 1);
    assert_false(shard_health_tick(f->h));
    assert_int_equal(f->calls_a, 1);
    clock_test_advance(f->r.clock, 1);
    f->rc_a = CITRUS_EUNAVAILABLE;
    f->msg = "cannot connect to postgresql://app:s3cret@db/x: refused";
    assert_true(shard_health_tick(f->h));
    v = view(f, "a");
    assert_int_equal(v.status, HEALTH_UNREACHABLE); /* the first failure counts */
    assert_int_equal(v.failures, 1);
    assert_int_equal(v.last_ok_ms, REGFIX_WALL0); /* kept */
    assert_int_equal(v.last_probe_ms, REGFIX_WALL0 + INTERVAL);
    assert_null(strstr(v.error, "s3cret")); /* redacted */
    assert_non_null(strstr(v.error, "refused"));
    assert_string_equal(health_status_name(v.status), "unreachable");
    assert_int_equal(metrics_value("citrus_shard_reachable", "shard=\"a\""), 0);
    assert_int_equal(view(f, "b").status, HEALTH_REACHABLE); /* each shard its own */

    clock_test_advance(f->r.clock, INTERVAL);
    assert_true(shard_health_tick(f->h));
    v = view(f, "a");
    assert_int_equal(v.status, HEALTH_UNREACHABLE);
    assert_int_equal(v.failures, 2);

    f->rc_a = 0;
    clock_test_advance(f->r.clock, INTERVAL);
    assert_true(shard_health_tick(f->h));
    v = view(f, "a");
    assert_int_equal(v.status, HEALTH_REACHABLE); /* one good probe brings it back */
    assert_int_equal(v.failures, 0);
    assert_int_equal(v.last_ok_ms, REGFIX_WALL0 + 3 * INTERVAL);
    assert_string_equal(v.error, "");
    assert_int_equal(f->calls_a, 4);
}

static void a_kick_runs_a_round_at_once(void **state)
{
    hfix *f = *state;
    assert_true(shard_health_tick(f->h));
    assert_false(shard_health_tick(f->h));
    regfix_add_active(&f->r, "c", 1, "sqlite:///nonexistent/c.db");
    assert_int_equal(view(f, "c").status, HEALTH_UNKNOWN); /* new: unknown until probed */
    shard_health_kick(f->h);
    assert_true(shard_health_tick(f->h));
    assert_int_equal(view(f, "c").status, HEALTH_REACHABLE);
    assert_int_equal(f->calls_other, 1);
    assert_false(shard_health_tick(f->h)); /* and the interval starts again */
}

static void a_hanging_probe_reads_unreachable_without_waiting(void **state)
{
    hfix *f = *state;
    assert_true(shard_health_tick(f->h));
    assert_int_equal(view(f, "b").status, HEALTH_REACHABLE);
    /* b's next probe runs past its timeout: a reader (inside the probe, so
     * the probe is still under way) sees it unreachable at once */
    f->hang_b = true;
    clock_test_advance(f->r.clock, INTERVAL);
    assert_true(shard_health_tick(f->h));
    assert_int_equal(f->seen.status, HEALTH_UNREACHABLE);
    assert_non_null(strstr(f->seen.error, "no answer to a probe"));
    assert_int_equal(f->seen.last_ok_ms, REGFIX_WALL0);
    /* the probe then came back good: reachable again */
    assert_int_equal(view(f, "b").status, HEALTH_REACHABLE);
}

static void retired_are_not_probed_deleted_are_forgotten(void **state)
{
    hfix *f = *state;
    assert_true(shard_health_tick(f->h));
    assert_int_equal(f->calls_b, 1);
    assert_int_equal(metrics_value("citrus_shard_reachable", "shard=\"b\""), 1);
    assert_int_equal(regfix_move(&f->r, "b", SHARD_DRAINING, 0), 0);
    assert_int_equal(regfix_move(&f->r, "b", SHARD_DRAINED, 0), 0);
    assert_int_equal(regfix_move(&f->r, "b", SHARD_RETIRED, 0), 0);
    clock_test_advance(f->r.clock, INTERVAL);
    assert_true(shard_health_tick(f->h));
    assert_int_equal(f->calls_b, 1); /* retired: out of service */
    assert_int_equal(view(f, "b").status, HEALTH_UNKNOWN);
    reg_result res;
    errdetail e = {0};
    assert_int_equal(registry_shard_delete(f->r.reg, "b", 0, &res, &e), 0);
    reg_result_clear(&res);
    clock_test_advance(f->r.clock, INTERVAL);
    assert_true(shard_health_tick(f->h));
    assert_int_equal(view(f, "b").status, HEALTH_UNKNOWN);
    assert_true(metrics_value("citrus_shard_reachable", "shard=\"b\"") < 0); /* forgotten */
    assert_int_equal(view(f, "a").status, HEALTH_REACHABLE);
}

static int64_t epoch_of(hfix *f, const char *id)
{
    shard s;
    assert_int_equal(registry_shard_get(f->r.reg, id, &s, NULL), 0);
    int64_t e = s.epoch;
    shard_clear(&s);
    return e;
}

/* A result about an older version of the record (a shard activated or
 * re-pointed since) reads as unknown until the next probe. */
static void a_changed_record_is_unknown_until_probed_again(void **state)
{
    hfix *f = *state;
    f->rc_a = CITRUS_EUNAVAILABLE;
    assert_true(shard_health_tick(f->h));
    int64_t before = epoch_of(f, "a");
    shard_health_view v;
    shard_health_get(f->h, "a", before, &v);
    assert_int_equal(v.status, HEALTH_UNREACHABLE);
    assert_int_equal(v.epoch, before);
    assert_int_equal(regfix_move(&f->r, "a", SHARD_READ_ONLY, 0), 0);
    int64_t after = epoch_of(f, "a");
    assert_true(after != before);
    shard_health_get(f->h, "a", after, &v);
    assert_int_equal(v.status, HEALTH_UNKNOWN);
    assert_int_equal(v.last_ok_ms, 0);
    assert_int_equal(v.last_probe_ms, REGFIX_WALL0); /* the times are kept */
    f->rc_a = 0;
    clock_test_advance(f->r.clock, INTERVAL);
    assert_true(shard_health_tick(f->h));
    shard_health_get(f->h, "a", after, &v);
    assert_int_equal(v.status, HEALTH_REACHABLE);
    assert_int_equal(v.epoch, after);
}

/* The real probe: a SQLite file that answers, one that does not exist, a
 * shard with no database yet. */
static void the_real_probe(void **state)
{
    hfix *f = *state;
    shard_health_free(f->h);
    f->h = shard_health_new(f->r.reg, INTERVAL, TIMEOUT, f->r.clock);
    char path[256], dsn[300];
    snprintf(path, sizeof(path), "%s/c.db", f->r.d.dir);
    snprintf(dsn, sizeof(dsn), "sqlite://%s", path);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_close(db);
    regfix_add_active(&f->r, "c", 1, dsn);
    shard d;
    regfix_record(&f->r, &d, "d", 1, NULL);
    assert_int_equal(shard_transition(&d, SHARD_PROVISIONING, "", "test", REGFIX_WALL0), 0);
    reg_result res;
    errdetail e = {0};
    assert_int_equal(registry_shard_create(f->r.reg, &d, NULL, &res, &e), 0);
    reg_result_clear(&res);
    shard_clear(&d);
    assert_true(shard_health_tick(f->h));
    shard_health_view v = view(f, "a");
    assert_int_equal(v.status, HEALTH_UNREACHABLE);
    assert_true(v.error[0] != '\0');
    assert_int_equal(view(f, "c").status, HEALTH_REACHABLE);
    v = view(f, "d");
    assert_int_equal(v.status, HEALTH_UNREACHABLE);
    assert_string_equal(v.error, "no database yet");
}

/* The thread starts with a round and stops cleanly. */
static void the_thread_starts_and_stops(void **state)
{
    hfix *f = *state;
    assert_int_equal(shard_health_start(f->h), 0);
    assert_int_equal(shard_health_start(f->h), 0); /* once */
    shard_health_stop(f->h);
    shard_health_stop(f->h); /* twice: nothing */
    assert_true(f->calls_a <= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(unknown_then_reachable_then_unreachable_then_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_kick_runs_a_round_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(a_hanging_probe_reads_unreachable_without_waiting, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(retired_are_not_probed_deleted_are_forgotten, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_changed_record_is_unknown_until_probed_again, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(the_real_probe, setup, teardown),
        cmocka_unit_test_setup_teardown(the_thread_starts_and_stops, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
