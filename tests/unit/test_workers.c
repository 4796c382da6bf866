/* tests/unit/test_workers.c — the worker runner (workers/runner.h) on the
 * embedded bus and the SQLite records store, with a test clock: a handler
 * that fails is not committed, is retried after the bus's backoff and
 * dead-lettered after max_attempts; an event id met twice runs its handler
 * once; a malformed envelope goes straight to the dead letters; an event
 * recorded but not committed (the kill -9 window) is committed without its
 * handler when it comes again; threads stop cleanly. Then the event
 * notification worker (workers/notify.h): its filter, its severity rule,
 * and the runner with it end to end.
 *
 * Every bus and store is a fresh file in one mkdtemp directory. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "bus/bus_sqlite.h"
#include "citrus/errors.h"
#include "obs/metrics.h"
#include "records/ledger.h"
#include "controller/election.h"
#include "registry/tenants.h"
#include "support_pg.h"
#include "support_registry.h"
#include "workers/ingest.h"
#include "workers/notify.h"
#include "workers/runner.h"
#include "workers/smcmd.h"

#define T0 1700000000000LL
#define VIS 10000
#define BASE_MS 1000
#define MAX_ATTEMPTS 3

static char tmpdir[128];
static int seq;

static uint64_t zero_random(void *ctx)
{
    (void)ctx;
    return 0; /* the backoff after attempt a is then ceil(d/2): 500, 1000, ... */
}

typedef struct handler_ctx {
    atomic_int calls;
    int fail_first; /* the first this many calls fail */
    bool always_fail;
    bool permanent;
    int sleep_ms; /* per event: a slow handler, to be killed mid-batch */
} handler_ctx;

/* Stores a notification named after the event. */
static int test_handle(void *ctx, const envelope *ev, const bus_message *m, worker_effect *fx,
                       errdetail *e)
{
    handler_ctx *h = ctx;
    int call = atomic_fetch_add(&h->calls, 1) + 1;
    if (h->sleep_ms)
        sleep_ms(h->sleep_ms);
    if (h->always_fail || call <= h->fail_first) {
        fx->permanent = h->permanent;
        return errdetail_set(e, CITRUS_EUNAVAILABLE, "handler failed (call %d)", call);
    }
    fx->has_notification = true;
    fx->notification = (notification_row){.time_ms = m->time_ms,
                                          .event_id = ev->id,
                                          .source = ev->source,
                                          .type = ev->type,
                                          .severity = "info",
                                          .subject = "",
                                          .correlation_id = ev->correlationid,
                                          .data = "{}"};
    return 0;
}

typedef struct fixture {
    sysclock *clock;
    bus *b;
    records *r;
    handler_ctx h;
    worker *w;
    char name[32];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->clock = clock_test_new(1000, T0);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/bus-%d.db", tmpdir, ++seq);
    bus_config bc = {.clock = f->clock,
                     .max_attempts = MAX_ATTEMPTS,
                     .backoff_base_ms = BASE_MS,
                     .backoff_cap_ms = 8000,
                     .random = zero_random};
    errdetail e = {0};
    assert_int_equal(bus_open_sqlite(path, &bc, &f->b, &e), 0);
    bus_topic_opts o = {.partitions = 1};
    assert_int_equal(bus_topic_create(f->b, "t", &o, &e), 0);
    snprintf(path, sizeof(path), "%s/records-%d.db", tmpdir, seq);
    assert_int_equal(records_open_sqlite(path, &f->r, &e), 0);
    snprintf(f->name, sizeof(f->name), "w%d", seq); /* metrics per test */
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    worker_stop(f->w);
    records_close(f->r);
    bus_close(f->b);
    clock_test_free(f->clock);
    free(f);
    return 0;
}

static worker *mkworker(fixture *f, worker_handler h, void *ctx, int threads)
{
    worker_spec s = {.name = f->name,
                     .topic = "t",
                     .group = "g",
                     .bus = f->b,
                     .rec = f->r,
                     .clock = f->clock,
                     .visibility_ms = VIS,
                     .batch = 50,
                     .max_event_bytes = 4096,
                     .max_attempts = MAX_ATTEMPTS,
                     .threads = threads,
                     .idle_ms = 5,
                     .handle = h,
                     .ctx = ctx};
    errdetail e = {0};
    assert_int_equal(worker_new(&s, &f->w, &e), 0);
    return f->w;
}

static void publish_raw(fixture *f, const char *key, const char *text)
{
    errdetail e = {0};
    int p;
    int64_t o;
    int rc = bus_publish(f->b, "t", key, strlen(key), text, strlen(text), &p, &o, &e);
    if (rc != 0)
        fail_msg("publish: %s", e.message);
}

static void publish(fixture *f, const char *id, const char *extra)
{
    char v[1024];
    snprintf(v, sizeof(v),
             "{\"specversion\":\"1.0\",\"id\":\"%s\",\"source\":\"/test\",\"type\":\"t.x\","
             "\"correlationid\":\"c-%s\"%s}",
             id, id, extra ? extra : "");
    publish_raw(f, "k", v);
}

static size_t run(fixture *f)
{
    size_t n = 99;
    errdetail e = {0};
    int rc = worker_run_once(f->w, &n, &e);
    if (rc != 0)
        fail_msg("run: %s", e.message);
    return n;
}

static size_t nnotes(fixture *f)
{
    notification_row *rows = NULL;
    size_t n = 0;
    notification_query q = {.limit = 1000};
    assert_int_equal(records_notifications_query(f->r, &q, &rows, &n, NULL, NULL), 0);
    notification_rows_free(rows, n);
    return n;
}

static double metric(fixture *f, const char *name)
{
    char labels[64];
    snprintf(labels, sizeof(labels), "worker=\"%s\"", f->name);
    double v = metrics_value(name, labels);
    return v < 0 ? 0 : v;
}

/* The dead letters of t: their count; the first's error into err. */
static size_t dead_letters(fixture *f, char *err, size_t len, int *attempts)
{
    bus_message *m = NULL;
    size_t n = 0;
    assert_int_equal(bus_read(f->b, "t.dlq", 0, 0, 100, &m, &n, NULL), 0);
    if (n > 0 && err)
        snprintf(err, len, "%s", m[0].error ? m[0].error : "");
    if (n > 0 && attempts)
        *attempts = m[0].attempts;
    bus_messages_free(m, n);
    return n;
}

/* ---- the runner ---------------------------------------------------------------- */

static void test_processes_once_and_commits(void **state)
{
    fixture *f = *state;
    mkworker(f, test_handle, &f->h, 0);
    publish(f, "e1", NULL);
    publish(f, "e2", NULL);
    publish(f, "e3", NULL);
    assert_int_equal(run(f), 3);
    assert_int_equal(atomic_load(&f->h.calls), 3);
    assert_int_equal(nnotes(f), 3);
    bool seen = false;
    assert_int_equal(records_processed_seen(f->r, "g", "e2", &seen, NULL), 0);
    assert_true(seen);
    clock_test_advance(f->clock, VIS + 1); /* committed: nothing comes again */
    assert_int_equal(run(f), 0);
    assert_int_equal(metric(f, "citrus_worker_processed_total"), 3);
    assert_int_equal(metric(f, "citrus_worker_failed_total"), 0);
    assert_int_equal(metric(f, "citrus_worker_lag_seconds"), 0);
}

/* A failing handler: not committed; delivered again after the backoff (and
 * not before); on attempt max_attempts to the dead letters. */
static void test_failure_retried_then_dead_lettered(void **state)
{
    fixture *f = *state;
    f->h.always_fail = true;
    mkworker(f, test_handle, &f->h, 0);
    publish(f, "bad", NULL);
    publish(f, "behind", NULL); /* same key: waits for it */
    assert_int_equal(run(f), 2);
    assert_int_equal(atomic_load(&f->h.calls), 2);
    clock_test_advance(f->clock, 499);
    assert_int_equal(run(f), 0); /* backoff after attempt 1: 500 ms */
    clock_test_advance(f->clock, 1);
    assert_int_equal(run(f), 2);
    assert_int_equal(atomic_load(&f->h.calls), 4);
    clock_test_advance(f->clock, 999);
    assert_int_equal(run(f), 0); /* after attempt 2: 1000 ms */
    clock_test_advance(f->clock, 1);
    assert_int_equal(run(f), 2); /* attempt 3 = max: dead */
    assert_int_equal(atomic_load(&f->h.calls), 6);
    clock_test_advance(f->clock, 100000);
    assert_int_equal(run(f), 0);
    char err[256];
    int attempts = 0;
    assert_int_equal(dead_letters(f, err, sizeof(err), &attempts), 2);
    assert_int_equal(attempts, MAX_ATTEMPTS);
    assert_non_null(strstr(err, "handler failed"));
    assert_int_equal(nnotes(f), 0);
    bool seen = true;
    assert_int_equal(records_processed_seen(f->r, "g", "bad", &seen, NULL), 0);
    assert_false(seen);
    assert_int_equal(metric(f, "citrus_worker_failed_total"), 6);
    assert_int_equal(metric(f, "citrus_worker_retried_total"), 4);
    assert_int_equal(metric(f, "citrus_worker_dead_lettered_total"), 2);
    assert_int_equal(metric(f, "citrus_worker_processed_total"), 0);
}

/* Fails once, then succeeds: applied once. */
static void test_failure_then_success(void **state)
{
    fixture *f = *state;
    f->h.fail_first = 1;
    mkworker(f, test_handle, &f->h, 0);
    publish(f, "e", NULL);
    assert_int_equal(run(f), 1);
    assert_int_equal(nnotes(f), 0);
    clock_test_advance(f->clock, 500);
    assert_int_equal(run(f), 1);
    assert_int_equal(nnotes(f), 1);
    clock_test_advance(f->clock, VIS + 1);
    assert_int_equal(run(f), 0);
    assert_int_equal(dead_letters(f, NULL, 0, NULL), 0);
    assert_int_equal(metric(f, "citrus_worker_retried_total"), 1);
    assert_int_equal(metric(f, "citrus_worker_processed_total"), 1);
}

/* One id twice in one batch, then again in a later one: the handler's
 * effect is stored once; every copy is committed. */
static void test_duplicate_id_handled_once(void **state)
{
    fixture *f = *state;
    mkworker(f, test_handle, &f->h, 0);
    publish(f, "dup", NULL);
    publish(f, "dup", ",\"subject\":\"second copy\"");
    assert_int_equal(run(f), 2);
    assert_int_equal(nnotes(f), 1);
    publish(f, "dup", NULL);
    assert_int_equal(run(f), 1);
    assert_int_equal(atomic_load(&f->h.calls), 1); /* the copies: not run again */
    assert_int_equal(nnotes(f), 1);
    clock_test_advance(f->clock, VIS + 1);
    assert_int_equal(run(f), 0);
    assert_int_equal(metric(f, "citrus_worker_duplicates_total"), 2);
    assert_int_equal(metric(f, "citrus_worker_processed_total"), 1);
}

/* The kill -9 window: the ledger and effect were recorded, the commit
 * never happened. When the lease ends the event comes again and is
 * committed without its handler; nothing is stored twice. */
static void test_recorded_not_committed(void **state)
{
    fixture *f = *state;
    mkworker(f, test_handle, &f->h, 0);
    publish(f, "e", NULL);
    bus_message *m = NULL;
    size_t n = 0;
    assert_int_equal(bus_poll(f->b, "g", "t", 10, VIS, &m, &n, NULL), 0);
    assert_int_equal(n, 1);
    bus_messages_free(m, n);
    notification_row row = {.time_ms = 1, .event_id = "e", .source = "/test", .type = "t.x"};
    processed_entry pe = {.group = "g", .event_id = "e", .time_ms = T0, .notification = &row};
    assert_int_equal(records_processed_record(f->r, &pe, 1, NULL), 0);
    assert_int_equal(run(f), 0); /* leased */
    clock_test_advance(f->clock, VIS);
    assert_int_equal(run(f), 1);
    assert_int_equal(atomic_load(&f->h.calls), 0);
    assert_int_equal(nnotes(f), 1);
    clock_test_advance(f->clock, VIS + 1);
    assert_int_equal(run(f), 0); /* committed */
    assert_int_equal(metric(f, "citrus_worker_duplicates_total"), 1);
}

/* Malformed envelopes go to the dead letters on their first delivery,
 * with the parse error; the events behind them are handled. */
static void test_malformed_dead_lettered_at_once(void **state)
{
    fixture *f = *state;
    mkworker(f, test_handle, &f->h, 0);
    publish_raw(f, "k", "not json");
    publish_raw(f, "k", "{\"specversion\":\"1.0\",\"source\":\"/s\",\"type\":\"t\"}");
    publish(f, "good", NULL);
    char big[5000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    char v[6000];
    snprintf(v, sizeof(v),
             "{\"specversion\":\"1.0\",\"id\":\"b\",\"source\":\"/s\",\"type\":\"t\","
             "\"data\":\"%s\"}",
             big);
    publish_raw(f, "k", v); /* over max_event_bytes */
    assert_int_equal(run(f), 4);
    assert_int_equal(atomic_load(&f->h.calls), 1);
    assert_int_equal(nnotes(f), 1);
    char err[256];
    int attempts = 0;
    assert_int_equal(dead_letters(f, err, sizeof(err), &attempts), 3);
    assert_int_equal(attempts, 1);
    assert_non_null(strstr(err, "malformed envelope"));
    clock_test_advance(f->clock, 100000);
    assert_int_equal(run(f), 0);
    assert_int_equal(metric(f, "citrus_worker_dead_lettered_total"), 3);
    assert_int_equal(metric(f, "citrus_worker_retried_total"), 0);
}

/* A handler that says its failure is permanent: dead-lettered at once. */
static void test_permanent_failure(void **state)
{
    fixture *f = *state;
    f->h.always_fail = true;
    f->h.permanent = true;
    mkworker(f, test_handle, &f->h, 0);
    publish(f, "p", NULL);
    assert_int_equal(run(f), 1);
    clock_test_advance(f->clock, 100000);
    assert_int_equal(run(f), 0);
    assert_int_equal(atomic_load(&f->h.calls), 1);
    assert_int_equal(dead_letters(f, NULL, 0, NULL), 1);
}

/* Lag: the age of the oldest event of the batch when polled. */
static void test_lag(void **state)
{
    fixture *f = *state;
    mkworker(f, test_handle, &f->h, 0);
    publish(f, "old", NULL);
    clock_test_advance(f->clock, 2500);
    publish(f, "new", NULL);
    clock_test_advance(f->clock, 500);
    assert_int_equal(run(f), 2);
    assert_true(metric(f, "citrus_worker_lag_seconds") == 3.0);
    assert_int_equal(run(f), 0);
    assert_true(metric(f, "citrus_worker_lag_seconds") == 0.0);
}

/* Threads: every event handled once; stop joins them. */
static void test_threads(void **state)
{
    fixture *f = *state;
    bus_topic_opts o = {.partitions = 4};
    assert_int_equal(bus_topic_create(f->b, "t4", &o, NULL), 0);
    worker_spec s = {.name = f->name,
                     .topic = "t4",
                     .group = "g",
                     .bus = f->b,
                     .rec = f->r,
                     .clock = f->clock,
                     .visibility_ms = VIS,
                     .batch = 7,
                     .max_attempts = MAX_ATTEMPTS,
                     .threads = 3,
                     .idle_ms = 5,
                     .handle = test_handle,
                     .ctx = &f->h};
    assert_int_equal(worker_new(&s, &f->w, NULL), 0);
    assert_int_equal(worker_start(f->w, NULL), 0);
    for (int i = 0; i < 200; i++) {
        char v[256], key[16];
        snprintf(key, sizeof(key), "k%d", i % 13);
        snprintf(v, sizeof(v),
                 "{\"specversion\":\"1.0\",\"id\":\"e%d\",\"source\":\"/s\",\"type\":\"t\"}", i);
        assert_int_equal(bus_publish(f->b, "t4", key, strlen(key), v, strlen(v), NULL, NULL, NULL),
                         0);
    }
    int64_t until = mono_ms() + 20000;
    while (nnotes(f) < 200 && mono_ms() < until)
        sleep_ms(10);
    worker_stop(f->w);
    f->w = NULL;
    assert_int_equal(nnotes(f), 200);
    assert_int_equal(atomic_load(&f->h.calls), 200);
    bus_message *m = NULL;
    size_t n = 0;
    clock_test_advance(f->clock, VIS + 1);
    assert_int_equal(bus_poll(f->b, "g", "t4", 100, VIS, &m, &n, NULL), 0);
    assert_int_equal(n, 0);
}

static void test_bad_spec(void **state)
{
    fixture *f = *state;
    worker *w = (worker *)f;
    worker_spec s = {.name = "x", .topic = "t", .group = "g", .bus = f->b, .rec = f->r};
    errdetail e = {0};
    assert_int_equal(worker_new(&s, &w, &e), CITRUS_EINVAL); /* no handler, no visibility */
    assert_null(w);
    s.handle = test_handle;
    s.visibility_ms = VIS;
    s.threads = 17;
    assert_int_equal(worker_new(&s, &w, &e), CITRUS_EINVAL);
    s.threads = 1;
    s.batch = 1001;
    assert_int_equal(worker_new(&s, &w, &e), CITRUS_EINVAL);
    worker_stop(NULL);
}

/* ---- the event notification worker --------------------------------------------------- */

static void test_filter(void **state)
{
    (void)state;
    notify_filter *f = NULL;
    errdetail e = {0};
    assert_int_equal(notify_filter_new(NULL, "", NULL, &f, &e), 0);
    assert_true(notify_filter_match(f, "/any", "any.type", "debug")); /* empty: all */
    notify_filter_free(f);
    assert_int_equal(notify_filter_new("/citrus/*,urn:billing", "citrus.shard.*,x.exact",
                                       "Error,critical", &f, &e),
                     0);
    assert_true(notify_filter_match(f, "/citrus/node1", "citrus.shard.drained", "error"));
    assert_true(notify_filter_match(f, "urn:billing", "x.exact", "CRITICAL"));
    assert_false(notify_filter_match(f, "urn:billing2", "x.exact", "error"));
    assert_false(notify_filter_match(f, "/citrus/n", "x.exact.more", "error"));
    assert_false(notify_filter_match(f, "/citrus/n", "citrus.shard.x", "warning"));
    assert_false(notify_filter_match(f, "/citrusx", "citrus.shard.x", "error"));
    notify_filter_free(f);
    const char *bad[] = {",a", "a,", "a,,b"};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(notify_filter_new(NULL, bad[i], NULL, &f, &e), CITRUS_EINVAL);
        assert_null(f);
        assert_non_null(strstr(e.message, "workers.notification_filter.types"));
    }
    char many[NOTIFY_FILTER_MAX_ITEMS * 3 + 8] = "";
    for (int i = 0; i <= NOTIFY_FILTER_MAX_ITEMS; i++)
        strcat(many, i ? ",s" : "s");
    assert_int_equal(notify_filter_new(NULL, NULL, many, &f, &e), CITRUS_EINVAL);
    char longsev[RECORDS_MAX_NOTIFY_SEVERITY + 2];
    memset(longsev, 'a', sizeof(longsev) - 1);
    longsev[sizeof(longsev) - 1] = '\0';
    assert_int_equal(notify_filter_new(NULL, NULL, longsev, &f, &e), CITRUS_EINVAL);
}

static void sev_of(const char *json, const char *want)
{
    envelope ev;
    errdetail e = {0};
    if (envelope_parse(json, strlen(json), 0, &ev, &e) != 0)
        fail_msg("parse: %s", e.message);
    char buf[RECORDS_MAX_NOTIFY_SEVERITY + 1];
    notify_severity(&ev, buf, sizeof(buf));
    assert_string_equal(buf, want);
    envelope_clear(&ev);
}

static void test_severity_rule(void **state)
{
    (void)state;
#define EV "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\""
    sev_of(EV "}", "info");
    sev_of(EV ",\"severity\":\"WARNING\"}", "warning");
    sev_of(EV ",\"data\":{\"severity\":\"Error\"}}", "error");
    sev_of(EV ",\"severity\":\"critical\",\"data\":{\"severity\":\"info\"}}", "critical");
    sev_of(EV ",\"severity\":3,\"data\":{\"severity\":\"error\"}}", "error"); /* not a string */
    sev_of(EV ",\"data\":[\"severity\"]}", "info");
    sev_of(EV ",\"severity\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
#undef EV
}

/* The runner with the notification handler: matching events stored with
 * their fields, others committed and counted as skipped. */
static void test_notification_worker(void **state)
{
    fixture *f = *state;
    notify_filter *flt = NULL;
    assert_int_equal(notify_filter_new("/platform/*", NULL, "warning,error", &flt, NULL), 0);
    mkworker(f, notify_handle, flt, 0);
    publish_raw(f, "a",
                "{\"specversion\":\"1.0\",\"id\":\"n1\",\"source\":\"/platform/disk\","
                "\"type\":\"disk.full\",\"subject\":\"node-3\",\"time\":\"2026-12-07T01:02:03Z\","
                "\"correlationid\":\"req-7\",\"severity\":\"Error\",\"data\":{\"pct\":97}}");
    publish_raw(f, "a",
                "{\"specversion\":\"1.0\",\"id\":\"n2\",\"source\":\"/platform/disk\","
                "\"type\":\"disk.ok\",\"data\":{\"severity\":\"info\"}}");
    publish_raw(f, "a",
                "{\"specversion\":\"1.0\",\"id\":\"n3\",\"source\":\"/other\","
                "\"type\":\"disk.full\",\"severity\":\"error\"}");
    publish_raw(f, "a",
                "{\"specversion\":\"1.0\",\"id\":\"n4\",\"source\":\"/platform/net\","
                "\"type\":\"net.slow\",\"data\":{\"severity\":\"warning\"}}");
    assert_int_equal(run(f), 4);
    notification_row *rows = NULL;
    size_t n = 0;
    assert_int_equal(records_notifications_query(f->r, NULL, &rows, &n, NULL, NULL), 0);
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].event_id, "n1");
    assert_string_equal(rows[0].source, "/platform/disk");
    assert_string_equal(rows[0].type, "disk.full");
    assert_string_equal(rows[0].severity, "error");
    assert_string_equal(rows[0].subject, "node-3");
    assert_string_equal(rows[0].correlation_id, "req-7");
    assert_string_equal(rows[0].data, "{\"pct\":97}");
    assert_int_equal(rows[0].time_ms, 1796605323000LL);
    assert_string_equal(rows[1].event_id, "n4");
    assert_string_equal(rows[1].severity, "warning");
    assert_string_equal(rows[1].subject, "");
    assert_int_equal(rows[1].time_ms, T0); /* no time: when it was published */
    notification_rows_free(rows, n);
    assert_int_equal(metric(f, "citrus_worker_skipped_total"), 2);
    assert_int_equal(metric(f, "citrus_worker_processed_total"), 4);
    clock_test_advance(f->clock, VIS + 1);
    assert_int_equal(run(f), 0); /* all committed, filtered ones too */
    bool seen = false;
    assert_int_equal(records_processed_seen(f->r, "g", "n2", &seen, NULL), 0);
    assert_true(seen);
    worker_stop(f->w);
    f->w = NULL;
    notify_filter_free(flt);
}

/* Data over the store's limit: stored as a marker with its size. */
static void test_notification_big_data(void **state)
{
    (void)state;
    size_t len = RECORDS_MAX_NOTIFY_DATA + 100;
    char *json = malloc(len + 200);
    assert_non_null(json);
    int k = snprintf(json, len + 200,
                     "{\"specversion\":\"1.0\",\"id\":\"b\",\"source\":\"/s\",\"type\":\"t\","
                     "\"data\":\"");
    memset(json + k, 'x', len);
    strcpy(json + k + len, "\"}");
    envelope ev;
    assert_int_equal(envelope_parse(json, strlen(json), 0, &ev, NULL), 0);
    notify_filter *flt = NULL;
    assert_int_equal(notify_filter_new(NULL, NULL, NULL, &flt, NULL), 0);
    bus_message m = {.time_ms = 5};
    worker_effect fx = {0};
    assert_int_equal(notify_handle(flt, &ev, &m, &fx, NULL), 0);
    assert_true(fx.has_notification);
    char want[64];
    snprintf(want, sizeof(want), "{\"truncated\":true,\"bytes\":%zu}", len + 2);
    assert_string_equal(fx.notification.data, want);
    assert_int_equal(fx.notification.time_ms, 5);
    for (int i = 0; i < WORKER_OWNED_MAX; i++)
        free(fx.owned[i]);
    notify_filter_free(flt);
    envelope_clear(&ev);
    free(json);
}

/* ---- the enrollment ingest worker ------------------------------------------------------ */

static int fake_route(void *ctx, const char *tenant, ingest_target *out, errdetail *e)
{
    atomic_int *routed = ctx;
    atomic_fetch_add(routed, 1);
    if (strncmp(tenant, "down:", 5) == 0)
        return errdetail_set(e, CITRUS_EUNAVAILABLE, "no shard owns any token yet");
    snprintf(out->shard_id, sizeof(out->shard_id), "%s",
             strncmp(tenant, "acme:", 5) == 0 ? "s1" : "s2");
    out->pinned = strncmp(tenant, "acme:", 5) == 0;
    out->ring_version = 7;
    return 0;
}

typedef struct ingest_fixture {
    ingest_ctx ic;
    atomic_int routed;
} ingest_fixture;

static void ingest_worker(fixture *f, ingest_fixture *x)
{
    errdetail e = {0};
    bus_topic_opts o = {.partitions = 2};
    assert_int_equal(bus_topic_create(f->b, "cmds", &o, &e), 0);
    x->ic = (ingest_ctx){.rec = f->r,
                         .topic = "cmds",
                         .clock = f->clock,
                         .max_event_bytes = 4096,
                         .route = fake_route,
                         .route_ctx = &x->routed};
    mkworker(f, ingest_handle, &x->ic, 0);
}

static void put_manifest(fixture *f, const char *id, const char *body)
{
    errdetail e = {0};
    if (records_manifest_put(f->r, id, body, T0, NULL, NULL, &e) != 0)
        fail_msg("manifest: %s", e.message);
}

/* The commands on cmds, all partitions, in *out (json, caller decrefs). */
static size_t commands(fixture *f, json_t **out, size_t max)
{
    size_t total = 0;
    for (int p = 0; p < 2; p++) {
        bus_message *m = NULL;
        size_t n = 0;
        assert_int_equal(bus_read(f->b, "cmds", p, 0, 100, &m, &n, NULL), 0);
        for (size_t i = 0; i < n; i++) {
            if (total < max)
                out[total] = json_loads((const char *)m[i].value, 0, NULL);
            total++;
        }
        bus_messages_free(m, n);
    }
    return total;
}

static void test_ingest_event_to_command(void **state)
{
    fixture *f = *state;
    ingest_fixture x = {0};
    ingest_worker(f, &x);
    put_manifest(f, "m1", "{\"tenant_key\":\"acme:north\",\"rows\":3}");
    put_manifest(f, "m2", "{\"tenant_key\":\"globex:x\"}");
    publish(f, "enr-1",
            ",\"data\":{\"manifest_id\":\"m1\"},"
            "\"traceparent\":\"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\"");
    publish(f, "enr-2", ",\"subject\":\"m2\"");
    assert_int_equal(run(f), 2);
    json_t *cmd[4] = {0};
    assert_int_equal(commands(f, cmd, 4), 2);
    bool first = strcmp(json_string_value(json_object_get(cmd[0], "id")), "enr-1") == 0;
    json_t *c1 = first ? cmd[0] : cmd[1], *c2 = first ? cmd[1] : cmd[0];
    assert_string_equal(json_string_value(json_object_get(c1, "id")), "enr-1");
    assert_string_equal(json_string_value(json_object_get(c1, "type")), INGEST_COMMAND_TYPE);
    assert_string_equal(json_string_value(json_object_get(c1, "source")), INGEST_SOURCE);
    assert_string_equal(json_string_value(json_object_get(c1, "subject")), "s1");
    assert_string_equal(json_string_value(json_object_get(c1, "correlationid")), "c-enr-1");
    assert_non_null(json_object_get(c1, "traceparent"));
    json_t *d = json_object_get(c1, "data");
    assert_string_equal(json_string_value(json_object_get(d, "shard_id")), "s1");
    assert_string_equal(json_string_value(json_object_get(d, "connection_ref")), "/v1/shards/s1");
    assert_string_equal(json_string_value(json_object_get(d, "tenant_key")), "acme:north");
    assert_string_equal(json_string_value(json_object_get(d, "manifest_id")), "m1");
    assert_int_equal(json_integer_value(json_object_get(d, "manifest_version")), 1);
    assert_string_equal(json_string_value(json_object_get(d, "enrollment_event_id")), "enr-1");
    assert_string_equal(json_string_value(json_object_get(d, "routed_by")), "directory");
    assert_int_equal(json_integer_value(json_object_get(d, "ring_version")), 7);
    d = json_object_get(c2, "data");
    assert_string_equal(json_string_value(json_object_get(d, "routed_by")), "ring");
    assert_string_equal(json_string_value(json_object_get(d, "manifest_id")), "m2");
    for (int i = 0; i < 2; i++)
        json_decref(cmd[i]);
    /* the same event again: the ledger has it, no second command */
    publish(f, "enr-1", ",\"data\":{\"manifest_id\":\"m1\"}");
    assert_int_equal(run(f), 1);
    assert_int_equal(commands(f, cmd, 0), 2);
    assert_int_equal(atomic_load(&x.routed), 2);
}

/* A manifest not there yet: retried with backoff; once written, the next
 * attempt publishes. Never written: dead-lettered after max_attempts. */
static void test_ingest_missing_manifest(void **state)
{
    fixture *f = *state;
    ingest_fixture x = {0};
    ingest_worker(f, &x);
    publish(f, "late", ",\"subject\":\"m-late\"");
    assert_int_equal(run(f), 1);
    assert_int_equal(commands(f, NULL, 0), 0);
    put_manifest(f, "m-late", "{\"tenant_key\":\"acme:a\"}");
    clock_test_advance(f->clock, 500);
    assert_int_equal(run(f), 1);
    assert_int_equal(commands(f, NULL, 0), 1);

    publish(f, "never", ",\"subject\":\"m-never\"");
    for (int a = 1; a <= MAX_ATTEMPTS; a++) {
        assert_int_equal(run(f), 1);
        clock_test_advance(f->clock, 8000);
    }
    assert_int_equal(run(f), 0);
    char err[256];
    int attempts = 0;
    assert_int_equal(dead_letters(f, err, sizeof(err), &attempts), 1);
    assert_int_equal(attempts, MAX_ATTEMPTS);
    assert_non_null(strstr(err, "manifest m-never not found"));
    assert_int_equal(commands(f, NULL, 0), 1);
}

/* What no retry can fix goes to the dead letters at once; a shard that
 * cannot be told now is retried. */
static void test_ingest_poison_and_unroutable(void **state)
{
    fixture *f = *state;
    ingest_fixture x = {0};
    ingest_worker(f, &x);
    put_manifest(f, "no-tenant", "{\"rows\":1}");
    put_manifest(f, "down", "{\"tenant_key\":\"down:a\"}");
    publish(f, "p1", NULL);                                     /* names no manifest */
    publish(f, "p2", ",\"subject\":\"no-tenant\"");             /* manifest without tenant */
    publish(f, "p3", ",\"data\":{\"manifest_id\":\"bad id\"}"); /* an id that cannot be */
    assert_int_equal(run(f), 3);
    char err[256];
    assert_int_equal(dead_letters(f, err, sizeof(err), NULL), 3);
    assert_non_null(strstr(err, "names no manifest"));
    publish(f, "p4", ",\"subject\":\"down\"");
    assert_int_equal(run(f), 1);
    assert_int_equal(dead_letters(f, NULL, 0, NULL), 3);
    assert_int_equal(metric(f, "citrus_worker_retried_total"), 1);
    clock_test_advance(f->clock, 500);
    assert_int_equal(run(f), 1); /* tried again */
    assert_int_equal(atomic_load(&x.routed), 2);
    assert_int_equal(commands(f, NULL, 0), 0);
}

/* ---- what a handler hands the runner to publish ----------------------------------------- */

typedef struct pub_ctx {
    const char *topic;
    atomic_int calls;
} pub_ctx;

/* Asks the runner to publish the event's id on ctx's topic. */
static int publish_handle(void *ctx, const envelope *ev, const bus_message *m, worker_effect *fx,
                          errdetail *e)
{
    (void)m;
    pub_ctx *p = ctx;
    atomic_fetch_add(&p->calls, 1);
    char *v = strdup(ev->id);
    if (!v)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    fx->owned[0] = v;
    fx->publish_topic = p->topic;
    fx->publish = (bus_record){.key = v, .key_len = strlen(v), .value = v, .value_len = strlen(v)};
    return 0;
}

static int64_t topic_messages(fixture *f, const char *t)
{
    bus_topic_info info;
    assert_int_equal(bus_topic_describe(f->b, t, &info, NULL), 0);
    return info.messages;
}

/* The batch's publishes go out together before the ledger: a failed one
 * (the topic is missing) leaves the events unrecorded and uncommitted, to
 * be retried, copies of an id included; once it works, one publish per
 * id, each event recorded and committed. */
static void test_publish_with_the_batch(void **state)
{
    fixture *f = *state;
    pub_ctx p = {.topic = "out"};
    mkworker(f, publish_handle, &p, 0);
    publish(f, "a", NULL);
    publish(f, "b", NULL);
    publish(f, "a", NULL); /* a copy: its handler does not run */
    assert_int_equal(run(f), 3);
    assert_int_equal(atomic_load(&p.calls), 2);
    bool seen = true;
    assert_int_equal(records_processed_seen(f->r, "g", "a", &seen, NULL), 0);
    assert_false(seen);
    assert_int_equal(metric(f, "citrus_worker_retried_total"), 3);
    assert_int_equal(metric(f, "citrus_worker_processed_total"), 0);
    assert_int_equal(dead_letters(f, NULL, 0, NULL), 0);

    bus_topic_opts o = {.partitions = 1};
    assert_int_equal(bus_topic_create(f->b, "out", &o, NULL), 0);
    clock_test_advance(f->clock, 500); /* the backoff after attempt 1 */
    assert_int_equal(run(f), 3);
    assert_int_equal(atomic_load(&p.calls), 4);
    assert_int_equal(topic_messages(f, "out"), 2); /* one per id */
    assert_int_equal(metric(f, "citrus_worker_processed_total"), 2);
    assert_int_equal(metric(f, "citrus_worker_duplicates_total"), 1);
    assert_int_equal(records_processed_seen(f->r, "g", "a", &seen, NULL), 0);
    assert_true(seen);
    clock_test_advance(f->clock, 10 * VIS);
    assert_int_equal(run(f), 0); /* every one committed */
}

/* ---- kill -9 mid-batch -------------------------------------------------------------------- */

#define KILL_N 600
#define KILL_VIS 300

static void kill_paths(char *bus_path, char *rec_path, size_t len)
{
    snprintf(bus_path, len, "%s/kill-bus.db", tmpdir);
    snprintf(rec_path, len, "%s/kill-records.db", tmpdir);
}

static worker *kill_worker(bus *b, records *r, handler_ctx *h)
{
    worker_spec s = {.name = "kill9",
                     .topic = "t",
                     .group = "g",
                     .bus = b,
                     .rec = r,
                     .visibility_ms = KILL_VIS,
                     .batch = 20,
                     .max_attempts = 100,
                     .threads = 2,
                     .idle_ms = 5,
                     .handle = test_handle,
                     .ctx = h};
    worker *w = NULL;
    assert_int_equal(worker_new(&s, &w, NULL), 0);
    return w;
}

/* The child: the worker on real threads, slowly, until it is killed. */
static void kill_child(const char *bus_path, const char *rec_path)
{
    bus *b = NULL;
    records *r = NULL;
    bus_config bc = {.max_attempts = 100};
    if (bus_open_sqlite(bus_path, &bc, &b, NULL) != 0 || records_open_sqlite(rec_path, &r, NULL))
        _exit(3);
    static handler_ctx h = {.sleep_ms = 1};
    worker *w = kill_worker(b, r, &h);
    if (worker_start(w, NULL) != 0)
        _exit(4);
    for (;;)
        pause();
}

static size_t count_rows(records *r, char (*ids)[16], size_t max)
{
    size_t total = 0;
    int64_t after = 0;
    do {
        notification_row *rows = NULL;
        size_t n = 0;
        notification_query q = {.after_id = after, .limit = 1000};
        assert_int_equal(records_notifications_query(r, &q, &rows, &n, &after, NULL), 0);
        for (size_t i = 0; i < n && ids; i++, total++)
            if (total < max)
                snprintf(ids[total], sizeof(ids[0]), "%s", rows[i].event_id);
        if (!ids)
            total += n;
        notification_rows_free(rows, n);
    } while (after);
    return total;
}

/* A worker process killed (SIGKILL) while it handles batches: another one
 * on the same bus and store then handles exactly the events whose ids the
 * ledger lacks (no handler runs twice for a recorded id), and every event
 * ends with exactly one notification and one ledger entry. */
static void test_kill9_mid_batch(void **state)
{
    (void)state;
    char bus_path[PATH_MAX], rec_path[PATH_MAX];
    kill_paths(bus_path, rec_path, sizeof(bus_path));
    bus *b = NULL;
    records *r = NULL;
    bus_config bc = {.max_attempts = 100};
    assert_int_equal(bus_open_sqlite(bus_path, &bc, &b, NULL), 0);
    assert_int_equal(bus_topic_create(b, "t", &(bus_topic_opts){.partitions = 4}, NULL), 0);
    for (int i = 0; i < KILL_N; i++) {
        char v[256], key[16];
        snprintf(key, sizeof(key), "k%d", i % 17);
        snprintf(v, sizeof(v),
                 "{\"specversion\":\"1.0\",\"id\":\"e%d\",\"source\":\"/s\",\"type\":\"t\"}", i);
        assert_int_equal(bus_publish(b, "t", key, strlen(key), v, strlen(v), NULL, NULL, NULL), 0);
    }
    bus_close(b); /* no thread or connection of ours across the fork */
    assert_int_equal(records_open_sqlite(rec_path, &r, NULL), 0);
    records_close(r);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        kill_child(bus_path, rec_path);
    assert_int_equal(records_open_sqlite(rec_path, &r, NULL), 0);
    int64_t until = mono_ms() + 30000;
    size_t before = 0;
    while ((before = count_rows(r, NULL, 0)) < KILL_N / 4 && mono_ms() < until)
        sleep_ms(2);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    before = count_rows(r, NULL, 0);
    print_message("killed with %zu of %d stored\n", before, KILL_N);
    assert_true(before >= KILL_N / 4 && before < KILL_N); /* mid-way */

    assert_int_equal(bus_open_sqlite(bus_path, &bc, &b, NULL), 0);
    handler_ctx h = {0};
    worker *w = kill_worker(b, r, &h);
    until = mono_ms() + 30000;
    while (count_rows(r, NULL, 0) < KILL_N && mono_ms() < until) {
        size_t n = 0;
        assert_int_equal(worker_run_once(w, &n, NULL), 0);
        if (n == 0)
            sleep_ms(20); /* the killed worker's leases end after KILL_VIS */
    }
    worker_stop(w);
    static char ids[KILL_N + 8][16];
    assert_int_equal(count_rows(r, ids, KILL_N + 8), KILL_N);
    /* exactly the events the ledger lacked were handled again */
    assert_int_equal(atomic_load(&h.calls), KILL_N - (int)before);
    static bool got[KILL_N];
    memset(got, 0, sizeof(got));
    for (int i = 0; i < KILL_N; i++) {
        int k = atoi(ids[i] + 1);
        assert_true(ids[i][0] == 'e' && k >= 0 && k < KILL_N && !got[k]);
        got[k] = true;
        bool seen = false;
        assert_int_equal(records_processed_seen(r, "g", ids[i], &seen, NULL), 0);
        assert_true(seen);
    }
    /* nothing left on the bus once the leases are over */
    sleep_ms(KILL_VIS + 50);
    bus_message *m = NULL;
    size_t n = 0;
    assert_int_equal(bus_poll(b, "g", "t", 100, 1000, &m, &n, NULL), 0);
    assert_int_equal(n, 0);
    bus_close(b);
    records_close(r);
}

/* ---- the shard management worker (workers/smcmd.h) ------------------------------- */

/* A registry with one active shard "a", the shard service on it, a bus
 * for the outcomes, and a leader key whose create_revision is the token. */
typedef struct smfix {
    regfix r;
    shard_service svc;
    bus *b;
    smcmd_ctx c;
    int64_t token; /* what the fake session says */
    bool leading;
} smfix;

static bool sm_fake_leader(void *ctx, int64_t *token)
{
    smfix *s = ctx;
    *token = s->token;
    return s->leading;
}

static smfix *sm_open(void)
{
    smfix *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    regfix_open(&s->r, "smcmd", 8);
    regfix_add_active(&s->r, "a", 1, "sqlite:///nonexistent/a.db");
    assert_int_equal(shard_service_init(&s->svc, s->r.reg, NULL, NULL, 2000, "node1", s->r.clock),
                     0);
    s->r.reg = NULL; /* the service owns it */
    s->svc.allow_untemplated_types = true;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/smbus-%d.db", tmpdir, ++seq);
    bus_config bc = {.max_attempts = MAX_ATTEMPTS};
    errdetail e = {0};
    assert_int_equal(bus_open_sqlite(path, &bc, &s->b, &e), 0);
    bus_topic_opts o = {.partitions = 1};
    assert_int_equal(bus_topic_create(s->b, "sm.events", &o, &e), 0);
    s->c = (smcmd_ctx){
        .svc = &s->svc, .bus = s->b, .attempt_ms = 1000, .leader = sm_fake_leader, .leader_ctx = s};
    snprintf(s->c.events_topic, sizeof(s->c.events_topic), "sm.events");
    s->token = sqlite_dir_put(s->r.d.st, ELECTION_KEY, "node1");
    s->leading = true;
    return s;
}

static void sm_close(smfix *s)
{
    bus_close(s->b);
    shard_service_destroy(&s->svc);
    regfix_close(&s->r);
    free(s);
}

/* Runs one command (its JSON data) of type citrus.sm.<op> with id. */
static int sm_run(smfix *s, const char *id, const char *op, const char *data, worker_effect *fx,
                  errdetail *e)
{
    char text[2048];
    snprintf(text, sizeof(text),
             "{\"specversion\":\"1.0\",\"id\":\"%s\",\"source\":\"/ops\",\"type\":"
             "\"citrus.sm.%s\",\"data\":%s}",
             id, op, data);
    envelope ev;
    errdetail pe = {0};
    assert_int_equal(envelope_parse(text, strlen(text), 0, &ev, &pe), 0);
    bus_message m = {.attempt = 1};
    memset(fx, 0, sizeof(*fx));
    errdetail_clear(e);
    int rc = smcmd_handle(&s->c, &ev, &m, fx, e);
    envelope_clear(&ev);
    return rc;
}

/* The outcome events so far: how many; the last one's JSON (caller frees). */
static size_t sm_outcomes(smfix *s, json_t **last)
{
    bus_message *m = NULL;
    size_t n = 0;
    assert_int_equal(bus_read(s->b, "sm.events", 0, 0, 100, &m, &n, NULL), 0);
    if (last)
        *last = n ? json_loadb((const char *)m[n - 1].value, m[n - 1].value_len, 0, NULL) : NULL;
    if (last && n)
        assert_null(strstr((const char *)m[n - 1].value, "sqlite://")); /* never a DSN */
    bus_messages_free(m, n);
    return n;
}

static shard_state sm_state(smfix *s, const char *id)
{
    shard sh;
    assert_int_equal(registry_shard_get(s->svc.reg, id, &sh, NULL), 0);
    shard_state st = sh.state;
    shard_clear(&sh);
    return st;
}

static void test_smcmd_register_location(void **state)
{
    (void)state;
    smfix *s = sm_open();
    worker_effect fx;
    errdetail e;
    json_t *ev = NULL;
    const char *loc = "{\"businessId\":\"acme\",\"locationId\":\"s1\",\"businessType\":\"retail\"}";
    assert_int_equal(sm_run(s, "c1", "register_location", loc, &fx, &e), 0);
    assert_int_equal(sm_outcomes(s, &ev), 1);
    json_t *d = json_object_get(ev, "data");
    assert_string_equal(json_string_value(json_object_get(ev, "id")), "smcmd-c1");
    assert_string_equal(json_string_value(json_object_get(ev, "type")),
                        "citrus.sm.command.completed");
    assert_string_equal(json_string_value(json_object_get(d, "shardId")), "a");
    assert_string_equal(json_string_value(json_object_get(d, "businessId")), "acme");
    assert_string_equal(json_string_value(json_object_get(d, "locationId")), "s1");
    assert_true(json_is_true(json_object_get(d, "changed")));
    json_decref(ev);
    tenant_pin pin;
    assert_int_equal(tenants_get(s->svc.reg, "acme:s1", &pin), 0);
    assert_string_equal(pin.shard_id, "a");
    assert_string_equal(pin.business_type, "retail");

    /* another command for the same location: the same shard, no change */
    regfix_add_active(&(regfix){.d = s->r.d, .clock = s->r.clock, .reg = s->svc.reg}, "b", 1,
                      "sqlite:///nonexistent/b.db");
    assert_int_equal(sm_run(s, "c2", "register_location", loc, &fx, &e), 0);
    assert_int_equal(sm_outcomes(s, &ev), 2);
    d = json_object_get(ev, "data");
    assert_string_equal(json_string_value(json_object_get(d, "shardId")), "a");
    assert_true(json_is_false(json_object_get(d, "changed")));
    json_decref(ev);

    /* bad data and another type: failed for good (dead-lettered), said so */
    static const struct {
        const char *data;
        int rc;
    } bad[] = {
        {"{\"businessId\":\"acme\",\"businessType\":\"retail\"}", CITRUS_EINVAL},
        {"{\"businessId\":\"a b\",\"locationId\":\"s1\",\"businessType\":\"retail\"}",
         CITRUS_EINVAL},
        {"{\"businessId\":\"acme\",\"locationId\":\"s1\",\"businessType\":\"../x\"}",
         CITRUS_EINVAL},
        {"{\"businessId\":\"acme\",\"locationId\":7,\"businessType\":\"retail\"}", CITRUS_EBADJSON},
        {"{\"businessId\":\"acme\",\"locationId\":\"s1\",\"businessType\":\"retail\",\"x\":1}",
         CITRUS_EBADJSON},
        {"{\"businessId\":\"acme\",\"locationId\":\"s1\",\"businessType\":\"food\"}",
         CITRUS_EREGCONFLICT},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char id[16];
        snprintf(id, sizeof(id), "bad%zu", i);
        assert_int_equal(sm_run(s, id, "register_location", bad[i].data, &fx, &e), bad[i].rc);
        assert_true(fx.permanent);
        assert_int_equal(sm_outcomes(s, &ev), 3 + i);
        assert_string_equal(json_string_value(json_object_get(ev, "type")),
                            "citrus.sm.command.failed");
        json_decref(ev);
    }
    /* no active shard (a shard manager that cannot place it): retried, nothing said */
    assert_int_equal(regfix_move_on(s->svc.reg, s->r.clock, "a", SHARD_DRAINING, 0), 0);
    assert_int_equal(regfix_move_on(s->svc.reg, s->r.clock, "b", SHARD_DRAINING, 0), 0);
    size_t before = sm_outcomes(s, NULL);
    const char *other =
        "{\"businessId\":\"acme\",\"locationId\":\"s2\",\"businessType\":\"retail\"}";
    assert_int_equal(sm_run(s, "c3", "register_location", other, &fx, &e), CITRUS_EUNAVAILABLE);
    assert_false(fx.permanent);
    assert_int_equal(sm_outcomes(s, NULL), before);
    assert_int_equal(tenants_get(s->svc.reg, "acme:s2", &pin), CITRUS_ENOTFOUND);
    sm_close(s);
}

static void test_smcmd_fenced(void **state)
{
    (void)state;
    smfix *s = sm_open();
    worker_effect fx;
    errdetail e;
    assert_true(smcmd_ready(&s->c));
    assert_int_equal(sm_run(s, "d1", "drain", "{\"shardId\":\"a\"}", &fx, &e), 0);
    assert_int_equal(sm_state(s, "a"), SHARD_DRAINING);
    assert_int_equal(sm_outcomes(s, NULL), 1);

    /* another node became leader (the key made anew): this one, still
     * believing it leads with its old token, applies nothing */
    int64_t del = 0;
    assert_int_equal(store_delete(s->r.d.st, ELECTION_KEY, false, -1, &del, NULL, NULL), 0);
    int64_t theirs = sqlite_dir_put(s->r.d.st, ELECTION_KEY, "node2");
    assert_true(theirs > s->token);
    assert_int_equal(sm_run(s, "a1", "activate", "{\"shardId\":\"a\"}", &fx, &e), CITRUS_ECONFLICT);
    assert_false(fx.permanent); /* nacked: the leader's worker gets it */
    assert_int_equal(sm_state(s, "a"), SHARD_DRAINING);
    const char *loc = "{\"businessId\":\"acme\",\"locationId\":\"s9\",\"businessType\":\"retail\"}";
    regfix_add_active(&(regfix){.d = s->r.d, .clock = s->r.clock, .reg = s->svc.reg}, "b", 1,
                      "sqlite:///nonexistent/b.db");
    assert_int_equal(sm_run(s, "r1", "register_location", loc, &fx, &e), CITRUS_ECONFLICT);
    assert_false(fx.permanent);
    tenant_pin pin;
    assert_int_equal(tenants_get(s->svc.reg, "acme:s9", &pin), CITRUS_ENOTFOUND);
    assert_int_equal(regfix_move_on(s->svc.reg, s->r.clock, "b", SHARD_DRAINING, 0), 0);
    assert_int_equal(regfix_move_on(s->svc.reg, s->r.clock, "b", SHARD_DRAINED, 0), 0);
    assert_int_equal(regfix_move_on(s->svc.reg, s->r.clock, "b", SHARD_RETIRED, 0), 0);
    assert_int_equal(sm_run(s, "x1", "delete", "{\"shardId\":\"b\"}", &fx, &e), CITRUS_ECONFLICT);
    assert_false(fx.permanent);
    assert_int_equal(sm_state(s, "b"), SHARD_RETIRED);
    assert_int_equal(sm_outcomes(s, NULL), 1); /* nothing said of what was not done */

    /* told it no longer leads: it polls nothing, and a command it holds is retried */
    s->leading = false;
    assert_false(smcmd_ready(&s->c));
    assert_int_equal(sm_run(s, "a1", "activate", "{\"shardId\":\"a\"}", &fx, &e),
                     CITRUS_EUNAVAILABLE);
    assert_false(fx.permanent);

    /* the leader (its token): applied */
    s->leading = true;
    s->token = theirs;
    assert_int_equal(sm_run(s, "a1", "activate", "{\"shardId\":\"a\"}", &fx, &e), 0);
    assert_int_equal(sm_state(s, "a"), SHARD_ACTIVE);
    assert_int_equal(sm_run(s, "x1", "delete", "{\"shardId\":\"b\"}", &fx, &e), 0);
    assert_int_equal(sm_run(s, "r1", "register_location", loc, &fx, &e), 0);
    assert_int_equal(tenants_get(s->svc.reg, "acme:s9", &pin), 0);
    assert_int_equal(sm_outcomes(s, NULL), 4);

    /* unfenced (no session): runs as the API does */
    s->c.leader = NULL;
    assert_true(smcmd_ready(&s->c));
    assert_int_equal(sm_run(s, "d2", "drain", "{\"shardId\":\"a\"}", &fx, &e), 0);
    sm_close(s);
}

/* How many tenants are pinned to shard id. */
static size_t sm_pinned(smfix *s, const char *id)
{
    tenant_pin *pins = NULL;
    size_t n = 0;
    bool more = false;
    assert_int_equal(tenants_list(s->svc.reg, id, NULL, 100, &pins, &n, &more), 0);
    free(pins);
    return n;
}

static void sm_pin(smfix *s, const char *key, const char *shard_id)
{
    tenant_pin pin;
    bool created = false;
    errdetail e = {0};
    assert_int_equal(tenants_put(s->svc.reg, key, shard_id, 0, &pin, &created, &e), 0);
    assert_true(created);
}

/* The re-pin after a forced retire or delete is fenced as the change is:
 * a node whose fence moved moves no pin; the leader's token moves them. */
static void test_smcmd_repin_fenced(void **state)
{
    (void)state;
    smfix *s = sm_open();
    worker_effect fx;
    errdetail e;
    regfix rf = {.d = s->r.d, .clock = s->r.clock, .reg = s->svc.reg};
    regfix_add_active(&rf, "b", 1, "sqlite:///nonexistent/b.db");
    sm_pin(s, "acme:t1", "b");
    sm_pin(s, "acme:t2", "b");
    sm_pin(s, "acme:t3", "b");

    /* b retired with force (written), then the fence moved before the re-pin */
    assert_int_equal(regfix_move_on(s->svc.reg, s->r.clock, "b", SHARD_DRAINING, 0), 0);
    assert_int_equal(regfix_move_on(s->svc.reg, s->r.clock, "b", SHARD_DRAINED, 0), 0);
    assert_int_equal(regfix_move_on(s->svc.reg, s->r.clock, "b", SHARD_RETIRED, REG_FORCE), 0);
    int64_t del = 0;
    assert_int_equal(store_delete(s->r.d.st, ELECTION_KEY, false, -1, &del, NULL, NULL), 0);
    int64_t theirs = sqlite_dir_put(s->r.d.st, ELECTION_KEY, "node2");
    assert_true(theirs > s->token);
    const char *retire_b = "{\"shardId\":\"b\",\"force\":true}";
    /* the deposed node's worker (old token) moves nothing; nacked, not failed */
    assert_int_equal(sm_run(s, "rb", "retire", retire_b, &fx, &e), CITRUS_ECONFLICT);
    assert_false(fx.permanent);
    assert_non_null(strstr(e.message, "controller leader"));
    assert_int_equal(sm_pinned(s, "b"), 3);
    assert_int_equal(sm_pinned(s, "a"), 0);
    assert_int_equal(sm_outcomes(s, NULL), 0);
    /* the same tenants through the fenced call directly: refused too */
    reg_fence old = {ELECTION_KEY, s->token}, cur = {ELECTION_KEY, theirs};
    size_t moved = 9;
    assert_int_equal(tenants_repin_fenced(s->svc.reg, "b", &old, &moved, &e), CITRUS_ECONFLICT);
    assert_int_equal(moved, 0);
    assert_int_equal(sm_pinned(s, "b"), 3);

    /* the leader's worker (its token), the command delivered again: moved */
    s->token = theirs;
    assert_int_equal(sm_run(s, "rb", "retire", retire_b, &fx, &e), 0);
    assert_int_equal(sm_pinned(s, "b"), 0);
    assert_int_equal(sm_pinned(s, "a"), 3);
    assert_int_equal(sm_outcomes(s, NULL), 1);

    /* a forced retire in one go under the leader's token: written and moved */
    regfix_add_active(&rf, "c", 1, "sqlite:///nonexistent/c.db");
    sm_pin(s, "acme:t4", "c");
    assert_int_equal(regfix_move_on(s->svc.reg, s->r.clock, "c", SHARD_DRAINING, 0), 0);
    assert_int_equal(regfix_move_on(s->svc.reg, s->r.clock, "c", SHARD_DRAINED, 0), 0);
    assert_int_equal(sm_run(s, "rc", "retire", "{\"shardId\":\"c\",\"force\":true}", &fx, &e), 0);
    assert_int_equal(sm_state(s, "c"), SHARD_RETIRED);
    assert_int_equal(sm_pinned(s, "c"), 0);
    assert_int_equal(sm_pinned(s, "a"), 4);
    assert_int_equal(tenants_repin_fenced(s->svc.reg, "c", &cur, &moved, &e), 0);
    assert_int_equal(moved, 0); /* nothing left */

    /* the API's path (unfenced) moves them whatever the fence says */
    regfix_add_active(&rf, "d", 1, "sqlite:///nonexistent/d.db");
    sm_pin(s, "acme:t5", "d");
    assert_int_equal(regfix_move_on(s->svc.reg, s->r.clock, "d", SHARD_DRAINING, 0), 0);
    assert_int_equal(regfix_move_on(s->svc.reg, s->r.clock, "d", SHARD_DRAINED, 0), 0);
    s->token = 1; /* a stale token: the API passes none */
    reg_result res = {0};
    assert_int_equal(svc_shard_action(&s->svc, "d", "retire", REG_FORCE, "api", NULL, &res, &e), 0);
    reg_result_clear(&res);
    assert_int_equal(sm_pinned(s, "d"), 0);
    assert_int_equal(sm_pinned(s, "a"), 5);
    sm_close(s);
}

int main(void)
{
    if (tmp_dir_create(tmpdir, sizeof(tmpdir), "workers") != 0)
        return 1;
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_processes_once_and_commits),
        T(test_failure_retried_then_dead_lettered),
        T(test_failure_then_success),
        T(test_duplicate_id_handled_once),
        T(test_recorded_not_committed),
        T(test_malformed_dead_lettered_at_once),
        T(test_permanent_failure),
        T(test_lag),
        T(test_threads),
        T(test_bad_spec),
        cmocka_unit_test(test_filter),
        cmocka_unit_test(test_severity_rule),
        T(test_notification_worker),
        cmocka_unit_test(test_notification_big_data),
        T(test_ingest_event_to_command),
        T(test_ingest_missing_manifest),
        T(test_ingest_poison_and_unroutable),
        T(test_publish_with_the_batch),
        cmocka_unit_test(test_kill9_mid_batch),
        cmocka_unit_test(test_smcmd_register_location),
        cmocka_unit_test(test_smcmd_fenced),
        cmocka_unit_test(test_smcmd_repin_fenced),
    };
    int failed = cmocka_run_group_tests_name("workers", tests, NULL, NULL);
    if (failed == 0)
        tmp_dir_remove(tmpdir);
    return failed ? 1 : 0;
}
