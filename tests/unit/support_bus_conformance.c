/* tests/unit/support_bus_conformance.c — the bus conformance suite (see
 * bus_conformance.h): the contract of bus.h, the same for every backend.
 * Time is a test clock and the jitter a scripted random source, so leases,
 * retries and retention are checked exactly, without sleeping. */
#include "bus_conformance.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"

static const bus_conformance_factory *factory;

#define T0 1700000000000LL /* the test clock's wall reading at the start */
#define VIS 1000           /* the visibility timeout of most polls */
#define MAX_ATTEMPTS 3
#define BASE_MS 100
#define CAP_MS 300

/* The jitter's random values, in order (then 0). */
typedef struct script {
    uint64_t v[8];
    size_t n, next;
} script;

static uint64_t script_next(void *ctx)
{
    script *s = ctx;
    return s->next < s->n ? s->v[s->next++] : 0;
}

typedef struct fixture {
    bus *b;
    sysclock *clock;
    script rnd;
    bus_config cfg;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->clock = clock_test_new(5000, T0);
    assert_non_null(f->clock);
    f->cfg = (bus_config){.clock = f->clock,
                          .max_message_bytes = 4096,
                          .max_topics = 4,
                          .max_partitions = 8,
                          .poll_max = 100,
                          .max_attempts = MAX_ATTEMPTS,
                          .backoff_base_ms = BASE_MS,
                          .backoff_cap_ms = CAP_MS,
                          .random = script_next,
                          .random_ctx = &f->rnd};
    assert_int_equal(factory->open(factory->ctx, &f->cfg, &f->b), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    factory->close(factory->ctx, f->b);
    clock_test_free(f->clock);
    free(f);
    return 0;
}

/* ---- helpers ---- */

static void topic(bus *b, const char *name, int partitions, int64_t ret_ms, int64_t ret_bytes)
{
    bus_topic_opts o = {
        .partitions = partitions, .retention_ms = ret_ms, .retention_bytes = ret_bytes};
    errdetail e = {0};
    int rc = bus_topic_create(b, name, &o, &e);
    if (rc != 0)
        fail_msg("create %s: %d %s", name, rc, e.message);
}

static void pub(bus *b, const char *t, const char *key, const char *value, int *part, int64_t *off)
{
    errdetail e = {0};
    int p = -1;
    int64_t o = -1;
    int rc = bus_publish(b, t, key, strlen(key), value, strlen(value), &p, &o, &e);
    if (rc != 0)
        fail_msg("publish %s: %d %s", t, rc, e.message);
    assert_true(p >= 0 && o >= 0);
    if (part)
        *part = p;
    if (off)
        *off = o;
}

static size_t poll_n(bus *b, const char *group, const char *t, size_t max, bus_message **out)
{
    size_t n = 99;
    errdetail e = {0};
    int rc = bus_poll(b, group, t, max, VIS, out, &n, &e);
    if (rc != 0)
        fail_msg("poll %s: %d %s", t, rc, e.message);
    if (n == 0)
        assert_null(*out);
    return n;
}

/* Polls and expects nothing. */
static void poll_none(bus *b, const char *group, const char *t)
{
    bus_message *m = NULL;
    assert_int_equal(poll_n(b, group, t, 100, &m), 0);
}

static void commit_ok(bus *b, const char *group, const bus_message *m)
{
    errdetail e = {0};
    int rc = bus_commit(b, group, m, &e);
    if (rc != 0)
        fail_msg("commit: %d %s", rc, e.message);
}

static void value_is(const bus_message *m, const char *v)
{
    assert_int_equal(m->value_len, strlen(v));
    assert_memory_equal(m->value, v, m->value_len);
}

/* A key whose partition among n is p. */
static void key_for(int p, int n, char *buf, size_t len)
{
    for (int i = 0;; i++) {
        snprintf(buf, len, "key-%d", i);
        if (bus_partition_for(buf, strlen(buf), n) == p)
            return;
    }
}

/* ---- publish: partition by key, dense offsets, order per key ---- */

static void test_order_per_key(void **state)
{
    fixture *f = *state;
    topic(f->b, "orders", 4, 0, 0);
    int64_t next[4] = {0};
    bool used[4] = {false};
    for (int i = 0; i < 40; i++) {
        char key[16], val[32];
        snprintf(key, sizeof(key), "k%d", i % 10);
        snprintf(val, sizeof(val), "k%d-%d", i % 10, i / 10);
        int p;
        int64_t off;
        pub(f->b, "orders", key, val, &p, &off);
        assert_int_equal(p, bus_partition_for(key, strlen(key), 4));
        assert_int_equal(off, next[p]++); /* dense, from 0 */
        used[p] = true;
    }
    assert_true(used[0] + used[1] + used[2] + used[3] >= 2);
    bus_message *m = NULL;
    size_t n = poll_n(f->b, "g", "orders", 100, &m);
    assert_int_equal(n, 40);
    int seen[10] = {0};
    int64_t last[4] = {-1, -1, -1, -1};
    for (size_t i = 0; i < n; i++) {
        int k, seq;
        assert_int_equal(sscanf((char *)m[i].value, "k%d-%d", &k, &seq), 2);
        assert_int_equal(seq, seen[k]++); /* each key in publish order */
        assert_true(m[i].offset > last[m[i].partition]);
        last[m[i].partition] = m[i].offset;
        assert_int_equal(m[i].attempt, 1);
        assert_string_equal(m[i].topic, "orders");
        assert_int_equal(m[i].time_ms, T0);
        assert_null(m[i].error);
    }
    bus_messages_free(m, n);
    bus_topic_info info;
    assert_int_equal(bus_topic_describe(f->b, "orders", &info, NULL), 0);
    assert_int_equal(info.partitions, 4);
    assert_int_equal(info.messages, 40);
}

/* ---- leases: at least once ---- */

static void test_visibility_timeout_redelivers(void **state)
{
    fixture *f = *state;
    topic(f->b, "t", 1, 0, 0);
    pub(f->b, "t", "a", "1", NULL, NULL);
    pub(f->b, "t", "a", "2", NULL, NULL);
    bus_message *m = NULL;
    assert_int_equal(poll_n(f->b, "g", "t", 10, &m), 2);
    bus_messages_free(m, 2);
    poll_none(f->b, "g", "t"); /* leased: not handed out again */
    clock_test_advance(f->clock, VIS - 1);
    poll_none(f->b, "g", "t");
    clock_test_advance(f->clock, 1); /* the lease ends: delivered again */
    assert_int_equal(poll_n(f->b, "g", "t", 10, &m), 2);
    assert_int_equal(m[0].offset, 0);
    assert_int_equal(m[0].attempt, 2);
    assert_int_equal(m[1].attempt, 2);
    commit_ok(f->b, "g", &m[0]);
    commit_ok(f->b, "g", &m[1]);
    bus_messages_free(m, 2);
    clock_test_advance(f->clock, 10 * VIS);
    poll_none(f->b, "g", "t"); /* committed: never again */
    /* another group has its own offsets */
    assert_int_equal(poll_n(f->b, "other", "t", 10, &m), 2);
    assert_int_equal(m[0].attempt, 1);
    bus_messages_free(m, 2);
}

static void test_commit_moves_past_done_head_only(void **state)
{
    fixture *f = *state;
    topic(f->b, "t", 1, 0, 0);
    for (int i = 0; i < 3; i++)
        pub(f->b, "t", "a", i == 0 ? "0" : i == 1 ? "1" : "2", NULL, NULL);
    bus_message *m = NULL;
    assert_int_equal(poll_n(f->b, "g", "t", 10, &m), 3);
    commit_ok(f->b, "g", &m[1]);
    commit_ok(f->b, "g", &m[2]);
    commit_ok(f->b, "g", &m[2]); /* again: no error */
    bus_message head = m[0];
    clock_test_advance(f->clock, VIS);
    bus_message *r = NULL;
    assert_int_equal(poll_n(f->b, "g", "t", 10, &r), 1); /* only the uncommitted one */
    assert_int_equal(r[0].offset, 0);
    assert_int_equal(r[0].attempt, 2);
    /* the first delivery's commit still counts (at least once) */
    commit_ok(f->b, "g", &head);
    errdetail e = {0};
    assert_int_equal(bus_nack(f->b, "g", &r[0], "late", &e), CITRUS_ECONFLICT);
    bus_messages_free(r, 1);
    bus_messages_free(m, 3);
    clock_test_advance(f->clock, 10 * VIS);
    poll_none(f->b, "g", "t");
    int64_t off;
    pub(f->b, "t", "a", "3", NULL, &off);
    assert_int_equal(poll_n(f->b, "g", "t", 10, &r), 1);
    assert_int_equal(r[0].offset, 3);
    bus_messages_free(r, 1);
}

/* A consumer dies mid-batch: what it committed stays done, the rest of its
 * batch goes to the next consumer once the lease ends, nothing twice after
 * a commit, nothing lost. */
static void test_consumer_dies_mid_batch(void **state)
{
    fixture *f = *state;
    topic(f->b, "t", 1, 0, 0);
    char v[8];
    for (int i = 0; i < 5; i++) {
        snprintf(v, sizeof(v), "%d", i);
        pub(f->b, "t", "a", v, NULL, NULL);
    }
    bus_message *m = NULL;
    assert_int_equal(poll_n(f->b, "g", "t", 5, &m), 5); /* consumer A */
    commit_ok(f->b, "g", &m[0]);
    commit_ok(f->b, "g", &m[1]);
    bus_message done = m[1]; /* its place only: the bytes go with m */
    done.key = done.value = NULL;
    bus_messages_free(m, 5);   /* A is gone */
    poll_none(f->b, "g", "t"); /* consumer B: A's lease still runs */
    clock_test_advance(f->clock, VIS);
    assert_int_equal(poll_n(f->b, "g", "t", 5, &m), 3);
    for (int i = 0; i < 3; i++) {
        snprintf(v, sizeof(v), "%d", i + 2);
        value_is(&m[i], v);
        assert_int_equal(m[i].attempt, 2);
        commit_ok(f->b, "g", &m[i]);
    }
    bus_messages_free(m, 3);
    done.attempt = 1;
    errdetail e = {0};
    assert_int_equal(bus_nack(f->b, "g", &done, "late", &e), CITRUS_ECONFLICT);
    clock_test_advance(f->clock, 10 * VIS);
    poll_none(f->b, "g", "t");
}

/* A nacked message holds back its partition (the others go on) until its
 * retry; what was committed behind it is not delivered again. */
static void test_retry_blocks_its_partition(void **state)
{
    fixture *f = *state;
    topic(f->b, "t", 2, 0, 0);
    char k0[16], k1[16];
    key_for(0, 2, k0, sizeof(k0));
    key_for(1, 2, k1, sizeof(k1));
    pub(f->b, "t", k0, "a", NULL, NULL);
    pub(f->b, "t", k0, "b", NULL, NULL);
    pub(f->b, "t", k1, "c", NULL, NULL);
    bus_message *m = NULL;
    assert_int_equal(poll_n(f->b, "g", "t", 10, &m), 3);
    f->rnd = (script){.v = {0}, .n = 1}; /* jitter 0: the delay is 100 - 50 + 0 */
    for (size_t i = 0; i < 3; i++) {
        if (m[i].value[0] == 'a')
            assert_int_equal(bus_nack(f->b, "g", &m[i], "shard down", NULL), 0);
        else
            commit_ok(f->b, "g", &m[i]);
    }
    bus_messages_free(m, 3);
    pub(f->b, "t", k0, "d", NULL, NULL);
    pub(f->b, "t", k1, "e", NULL, NULL);
    assert_int_equal(poll_n(f->b, "g", "t", 10, &m), 1); /* partition 0 waits */
    value_is(&m[0], "e");
    commit_ok(f->b, "g", &m[0]);
    bus_messages_free(m, 1);
    clock_test_advance(f->clock, 49);
    poll_none(f->b, "g", "t");
    clock_test_advance(f->clock, 1);
    assert_int_equal(poll_n(f->b, "g", "t", 10, &m), 2);
    value_is(&m[0], "a"); /* the retry first, then what follows; b was done */
    assert_int_equal(m[0].attempt, 2);
    value_is(&m[1], "d");
    assert_int_equal(m[1].attempt, 1);
    bus_messages_free(m, 2);
}

/* ---- retries and dead letters ---- */

static void test_backoff_then_dead_letter(void **state)
{
    fixture *f = *state;
    /* the schedule itself: d = min(300, 100 * 2^(a-1)), d - d/2 + r % (d/2 + 1) */
    f->rnd = (script){.v = {7, 1000003, 5, 1000}, .n = 4};
    assert_int_equal(bus_backoff_ms(&f->cfg, 1), 57);  /* 50 + 7 % 51 */
    assert_int_equal(bus_backoff_ms(&f->cfg, 2), 102); /* 100 + 1000003 % 101 */
    assert_int_equal(bus_backoff_ms(&f->cfg, 3), 155); /* capped: 150 + 5 % 151 */
    assert_int_equal(bus_backoff_ms(&f->cfg, 60), 150 + 1000 % 151);
    f->rnd = (script){.v = {7, 1000003, 999}, .n = 3};
    topic(f->b, "reg", 2, 0, 0);
    int p;
    pub(f->b, "reg", "biz-1", "payload", &p, NULL);
    pub(f->b, "reg", "biz-1", "next", NULL, NULL);
    bus_message *m = NULL;
    assert_int_equal(poll_n(f->b, "g", "reg", 1, &m), 1);
    assert_int_equal(bus_nack(f->b, "g", &m[0], "boom 1", NULL), 0);
    bus_messages_free(m, 1);
    clock_test_advance(f->clock, 56);
    poll_none(f->b, "g", "reg");
    clock_test_advance(f->clock, 1);
    assert_int_equal(poll_n(f->b, "g", "reg", 1, &m), 1);
    assert_int_equal(m[0].attempt, 2);
    value_is(&m[0], "payload");
    assert_int_equal(bus_nack(f->b, "g", &m[0], "boom 2", NULL), 0);
    bus_messages_free(m, 1);
    clock_test_advance(f->clock, 101);
    poll_none(f->b, "g", "reg");
    clock_test_advance(f->clock, 1);
    assert_int_equal(poll_n(f->b, "g", "reg", 1, &m), 1);
    assert_int_equal(m[0].attempt, 3);
    /* attempt max_attempts fails: dead-lettered at once, the group moves on */
    assert_int_equal(bus_nack(f->b, "g", &m[0], "boom 3", NULL), 0);
    bus_messages_free(m, 1);
    assert_int_equal(f->rnd.next, 2); /* the dead letter drew no jitter */
    assert_int_equal(poll_n(f->b, "g", "reg", 10, &m), 1);
    value_is(&m[0], "next");
    assert_int_equal(m[0].attempt, 1);
    bus_messages_free(m, 1);
    size_t n = 0;
    assert_int_equal(bus_read(f->b, "reg.dlq", p, 0, 10, &m, &n, NULL), 0);
    assert_int_equal(n, 1);
    value_is(&m[0], "payload");
    assert_int_equal(m[0].key_len, 5);
    assert_memory_equal(m[0].key, "biz-1", 5);
    assert_string_equal(m[0].error, "boom 3");
    assert_int_equal(m[0].attempts, 3);
    assert_int_equal(m[0].src_partition, p);
    assert_int_equal(m[0].src_offset, 0);
    bus_messages_free(m, n);
    /* the dead-letter topic is a topic: a group reads it */
    assert_int_equal(poll_n(f->b, "replayer", "reg.dlq", 10, &m), 1);
    assert_string_equal(m[0].error, "boom 3");
    bus_messages_free(m, 1);
}

/* A handler that never answers: after max_attempts leases end, the next
 * poll dead-letters the message and hands out the one behind it. */
static void test_timeouts_dead_letter(void **state)
{
    fixture *f = *state;
    topic(f->b, "t", 1, 0, 0);
    pub(f->b, "t", "a", "poison", NULL, NULL);
    pub(f->b, "t", "a", "fine", NULL, NULL);
    bus_message *m = NULL;
    for (int a = 1; a <= MAX_ATTEMPTS; a++) {
        assert_int_equal(poll_n(f->b, "g", "t", 1, &m), 1);
        value_is(&m[0], "poison");
        assert_int_equal(m[0].attempt, a);
        if (a == 1) {
            f->rnd = (script){.n = 0};
            assert_int_equal(bus_nack(f->b, "g", &m[0], "first failure", NULL), 0);
        }
        bus_messages_free(m, 1);
        clock_test_advance(f->clock, VIS);
    }
    assert_int_equal(poll_n(f->b, "g", "t", 1, &m), 1);
    value_is(&m[0], "fine");
    bus_messages_free(m, 1);
    size_t n = 0;
    assert_int_equal(bus_read(f->b, "t.dlq", 0, 0, 10, &m, &n, NULL), 0);
    assert_int_equal(n, 1);
    value_is(&m[0], "poison");
    assert_int_equal(m[0].attempts, MAX_ATTEMPTS);
    assert_non_null(strstr(m[0].error, "first failure"));
    assert_non_null(strstr(m[0].error, "visibility timeout"));
    bus_messages_free(m, n);
}

/* ---- retention ---- */

static void test_retention_by_age(void **state)
{
    fixture *f = *state;
    topic(f->b, "t", 1, 1000, 0);
    pub(f->b, "t", "a", "old0", NULL, NULL);
    pub(f->b, "t", "a", "old1", NULL, NULL);
    bus_message *m = NULL;
    assert_int_equal(poll_n(f->b, "lagging", "t", 1, &m), 1); /* leased, never committed */
    bus_messages_free(m, 1);
    clock_test_advance(f->clock, 600);
    pub(f->b, "t", "a", "new", NULL, NULL);
    int64_t deleted = -1;
    assert_int_equal(bus_trim(f->b, &deleted, NULL), 0);
    assert_int_equal(deleted, 0); /* nothing older than 1000 ms yet */
    clock_test_advance(f->clock, 401);
    assert_int_equal(bus_trim(f->b, &deleted, NULL), 0);
    assert_int_equal(deleted, 2);
    size_t n = 9;
    errdetail e = {0};
    assert_int_equal(bus_read(f->b, "t", 0, 1, 10, &m, &n, &e), CITRUS_ECOMPACTED);
    assert_int_equal(n, 0);
    assert_int_equal(bus_read(f->b, "t", 0, 2, 10, &m, &n, NULL), 0);
    assert_int_equal(n, 1);
    value_is(&m[0], "new");
    bus_messages_free(m, n);
    bus_topic_info info;
    assert_int_equal(bus_topic_describe(f->b, "t", &info, NULL), 0);
    assert_int_equal(info.messages, 1);
    /* a group behind retention starts at the oldest message left */
    assert_int_equal(poll_n(f->b, "lagging", "t", 10, &m), 1);
    assert_int_equal(m[0].offset, 2);
    assert_int_equal(m[0].attempt, 1);
    bus_messages_free(m, 1);
    /* offsets are never reused */
    int64_t off;
    pub(f->b, "t", "a", "newer", NULL, &off);
    assert_int_equal(off, 3);
}

static void test_retention_by_size(void **state)
{
    fixture *f = *state;
    topic(f->b, "t", 1, 0, 100); /* 100 bytes per partition */
    char v[40];
    for (int i = 0; i < 5; i++) {
        snprintf(v, sizeof(v), "%039d", i); /* key 1 byte + 39: 40 bytes each */
        pub(f->b, "t", "k", v, NULL, NULL);
    }
    int64_t deleted = -1;
    assert_int_equal(bus_trim(f->b, &deleted, NULL), 0);
    assert_int_equal(deleted, 3); /* 2 * 40 <= 100 < 3 * 40 */
    bus_message *m = NULL;
    size_t n = 0;
    assert_int_equal(bus_read(f->b, "t", 0, 3, 10, &m, &n, NULL), 0);
    assert_int_equal(n, 2);
    assert_int_equal(m[0].offset, 3);
    assert_int_equal(m[1].offset, 4);
    bus_messages_free(m, n);
    assert_int_equal(bus_trim(f->b, &deleted, NULL), 0);
    assert_int_equal(deleted, 0);
}

/* Every backend shows the retention a topic was created with, on the topic
 * and on its dead-letter topic. A backend whose brokers apply retention
 * (broker_retention) deletes nothing on bus_trim. */
static void test_retention_settings(void **state)
{
    fixture *f = *state;
    topic(f->b, "t", 2, 1000, 100);
    topic(f->b, "u", 1, 0, 0);
    const char *names[] = {"t", "t.dlq", "u"};
    for (int i = 0; i < 3; i++) {
        bus_topic_info info;
        assert_int_equal(bus_topic_describe(f->b, names[i], &info, NULL), 0);
        assert_int_equal(info.partitions, i < 2 ? 2 : 1);
        assert_int_equal(info.retention_ms, i < 2 ? 1000 : 0);
        assert_int_equal(info.retention_bytes, i < 2 ? 100 : 0);
        assert_int_equal(info.messages, 0);
    }
    if (!factory->broker_retention)
        return;
    char v[40];
    for (int i = 0; i < 5; i++) {
        snprintf(v, sizeof(v), "%039d", i);
        pub(f->b, "t", "k", v, NULL, NULL);
    }
    clock_test_advance(f->clock, 5000);
    int64_t deleted = -1;
    assert_int_equal(bus_trim(f->b, &deleted, NULL), 0);
    assert_int_equal(deleted, 0);
    bus_topic_info info;
    assert_int_equal(bus_topic_describe(f->b, "t", &info, NULL), 0);
    assert_int_equal(info.messages, 5);
}

/* ---- bad input: clear codes, nothing written ---- */

static void test_bad_input(void **state)
{
    fixture *f = *state;
    bus *b = f->b;
    errdetail e = {0};
    bus_topic_opts o1 = {.partitions = 1};
    assert_int_equal(bus_topic_create(b, "bad name", &o1, &e), CITRUS_EINVAL);
    assert_int_equal(bus_topic_create(b, "", &o1, &e), CITRUS_EINVAL);
    assert_int_equal(bus_topic_create(b, "x.dlq", &o1, &e), CITRUS_EINVAL);
    assert_int_equal(bus_topic_create(b, "t", &(bus_topic_opts){.partitions = 0}, &e),
                     CITRUS_EINVAL);
    assert_int_equal(bus_topic_create(b, "t", &(bus_topic_opts){.partitions = 9}, &e),
                     CITRUS_EINVAL);
    assert_int_equal(
        bus_topic_create(b, "t", &(bus_topic_opts){.partitions = 1, .retention_ms = -1}, &e),
        CITRUS_EINVAL);
    topic(b, "t", 1, 0, 0);
    assert_int_equal(bus_topic_create(b, "t", &o1, &e), CITRUS_EEXISTS);
    topic(b, "t2", 1, 0, 0);
    topic(b, "t3", 1, 0, 0);
    topic(b, "t4", 1, 0, 0); /* 4 topics (and their 4 dead-letter topics) */
    assert_int_equal(bus_topic_create(b, "t5", &o1, &e), CITRUS_ETOOMANY);
    bus_topic_info info;
    assert_int_equal(bus_topic_describe(b, "t5", &info, &e), CITRUS_ENOTFOUND);
    assert_non_null(strstr(e.message, "t5"));

    static char big[5000];
    memset(big, 'v', sizeof(big));
    int p;
    int64_t off;
    assert_int_equal(bus_publish(b, "t", "k", 1, big, 4096, &p, &off, &e), CITRUS_ETOOBIGVAL);
    assert_int_equal(bus_publish(b, "t", big, BUS_KEY_MAX + 1, "v", 1, &p, &off, &e),
                     CITRUS_ETOOBIGVAL);
    assert_int_equal(bus_publish(b, "nope", "k", 1, "v", 1, &p, &off, &e), CITRUS_ENOTFOUND);
    assert_int_equal(bus_publish(b, "t", NULL, 3, "v", 1, &p, &off, &e), CITRUS_EINVAL);
    assert_int_equal(bus_publish(b, "t", "k", 1, big, 4095, &p, &off, &e), 0); /* at the limit */
    assert_int_equal(off, 0);
    assert_int_equal(bus_publish(b, "t", NULL, 0, NULL, 0, &p, &off, &e), 0); /* empty */
    assert_int_equal(off, 1);

    bus_message *m = NULL;
    size_t n = 7;
    assert_int_equal(bus_poll(b, "g", "nope", 10, VIS, &m, &n, &e), CITRUS_ENOTFOUND);
    assert_int_equal(n, 0);
    assert_int_equal(bus_poll(b, "bad group", "t", 10, VIS, &m, &n, &e), CITRUS_EINVAL);
    assert_int_equal(bus_poll(b, "g", "t", 0, VIS, &m, &n, &e), CITRUS_EINVAL);
    assert_int_equal(bus_poll(b, "g", "t", 101, VIS, &m, &n, &e), CITRUS_ETOOMANY);
    assert_int_equal(bus_poll(b, "g", "t", 10, 0, &m, &n, &e), CITRUS_EINVAL);
    assert_int_equal(bus_poll(b, "g", "t", 10, BUS_VISIBILITY_MAX_MS + 1, &m, &n, &e),
                     CITRUS_EINVAL);

    assert_int_equal(bus_read(b, "t", 1, 0, 10, &m, &n, &e), CITRUS_EINVAL); /* 1 partition */
    assert_int_equal(bus_read(b, "t", -1, 0, 10, &m, &n, &e), CITRUS_EINVAL);
    assert_int_equal(bus_read(b, "t", 0, 3, 10, &m, &n, &e), CITRUS_EINVAL); /* past next */
    assert_int_equal(bus_read(b, "t", 0, 2, 10, &m, &n, &e), 0);             /* at next: none */
    assert_int_equal(n, 0);
    assert_null(m);
    assert_int_equal(bus_read(b, "nope", 0, 0, 10, &m, &n, &e), CITRUS_ENOTFOUND);

    bus_message fake = {.partition = 0, .offset = 0, .attempt = 1};
    snprintf(fake.topic, sizeof(fake.topic), "t");
    assert_int_equal(bus_commit(b, "g", &fake, &e), CITRUS_ENOTFOUND); /* never polled */
    assert_int_equal(poll_n(b, "g", "t", 1, &m), 1);
    bus_messages_free(m, 1);
    fake.offset = 1;
    assert_int_equal(bus_commit(b, "g", &fake, &e), CITRUS_ENOTFOUND); /* not delivered */
    assert_int_equal(bus_nack(b, "g", &fake, "x", &e), CITRUS_ENOTFOUND);
    fake.offset = 2;
    assert_int_equal(bus_commit(b, "g", &fake, &e), CITRUS_EINVAL); /* never published */
    fake.offset = 0;
    fake.partition = 3;
    assert_int_equal(bus_commit(b, "g", &fake, &e), CITRUS_EINVAL);
    fake.partition = 0;
    fake.attempt = 2;
    assert_int_equal(bus_nack(b, "g", &fake, "x", &e), CITRUS_ECONFLICT); /* not its attempt */
    fake.attempt = 0;
    assert_int_equal(bus_nack(b, "g", &fake, "x", &e), CITRUS_EINVAL);
    snprintf(fake.topic, sizeof(fake.topic), "nope");
    assert_int_equal(bus_commit(b, "g", &fake, &e), CITRUS_ENOTFOUND);

    assert_int_equal(bus_topic_describe(b, "t", &info, NULL), 0);
    assert_int_equal(info.messages, 2); /* only the two good publishes */
}

/* ---- operating the bus: listing topics, describing groups ---- */

static const bus_topic_entry *find_topic(const bus_topic_entry *t, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].name, name) == 0)
            return &t[i];
    fail_msg("no topic %s in the listing", name);
    return NULL;
}

static void test_topics_list(void **state)
{
    fixture *f = *state;
    bus_topic_entry *t = (bus_topic_entry *)&t;
    size_t n = 9;
    assert_int_equal(bus_topics_list(f->b, &t, &n, NULL), 0); /* no topics yet */
    assert_int_equal(n, 0);
    assert_null(t);
    topic(f->b, "b", 2, 1000, 0);
    topic(f->b, "a", 1, 0, 4096);
    char k0[16], k1[16];
    key_for(0, 2, k0, sizeof(k0));
    key_for(1, 2, k1, sizeof(k1));
    for (int i = 0; i < 3; i++)
        pub(f->b, "a", "k", "v", NULL, NULL);
    pub(f->b, "b", k0, "old", NULL, NULL);
    clock_test_advance(f->clock, 600);
    pub(f->b, "b", k1, "new", NULL, NULL);
    pub(f->b, "b", k1, "new", NULL, NULL);
    assert_int_equal(bus_topics_list(f->b, &t, &n, NULL), 0);
    assert_int_equal(n, 4);
    /* in name order, dead-letter topics too */
    assert_string_equal(t[0].name, "a");
    assert_string_equal(t[1].name, "a.dlq");
    assert_string_equal(t[2].name, "b");
    assert_string_equal(t[3].name, "b.dlq");
    assert_false(t[0].dlq);
    assert_true(t[1].dlq);
    assert_false(t[2].dlq);
    assert_true(t[3].dlq);
    assert_int_equal(t[0].info.partitions, 1);
    assert_int_equal(t[0].info.retention_bytes, 4096);
    assert_int_equal(t[0].info.messages, 3);
    assert_int_equal(t[0].parts[0].low, 0);
    assert_int_equal(t[0].parts[0].high, 3);
    assert_int_equal(t[2].info.partitions, 2);
    assert_int_equal(t[2].info.retention_ms, 1000);
    assert_int_equal(t[2].info.messages, 3);
    assert_int_equal(t[2].parts[0].high, 1);
    assert_int_equal(t[2].parts[1].low, 0);
    assert_int_equal(t[2].parts[1].high, 2);
    assert_int_equal(t[3].info.partitions, 2);
    assert_int_equal(t[3].info.messages, 0);
    assert_int_equal(t[3].parts[1].high, 0);
    bus_topics_free(t, n);
    /* retention moves low up to high: the partition is empty, its next
     * offset kept (where bus_trim applies retention) */
    clock_test_advance(f->clock, 401);
    assert_int_equal(bus_trim(f->b, NULL, NULL), 0);
    assert_int_equal(bus_topics_list(f->b, &t, &n, NULL), 0);
    const bus_topic_entry *b = find_topic(t, n, "b");
    assert_int_equal(b->parts[0].low, factory->broker_retention ? 0 : 1);
    assert_int_equal(b->parts[0].high, 1);
    assert_int_equal(b->parts[1].low, 0);
    assert_int_equal(b->info.messages, factory->broker_retention ? 3 : 2);
    bus_topics_free(t, n);
    /* a dead letter is counted in its dead-letter topic */
    bus_message *m = NULL;
    for (int attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
        clock_test_advance(f->clock, 10 * CAP_MS);
        assert_int_equal(poll_n(f->b, "g", "a", 1, &m), 1);
        assert_int_equal(bus_nack(f->b, "g", &m[0], "boom", NULL), 0);
        bus_messages_free(m, 1);
    }
    assert_int_equal(bus_topics_list(f->b, &t, &n, NULL), 0);
    const bus_topic_entry *d = find_topic(t, n, "a.dlq");
    assert_int_equal(d->info.messages, 1);
    assert_int_equal(d->parts[0].high, 1);
    bus_topics_free(t, n);
    assert_int_equal(bus_topics_list(f->b, NULL, &n, NULL), CITRUS_EINVAL);
}

static const bus_group_entry *find_row(const bus_group_entry *g, size_t n, const char *group,
                                       const char *t, int part)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(g[i].group, group) == 0 && strcmp(g[i].topic, t) == 0 && g[i].partition == part)
            return &g[i];
    fail_msg("no row %s %s/%d", group, t, part);
    return NULL;
}

static void test_groups_describe(void **state)
{
    fixture *f = *state;
    bus *b = f->b;
    bus_group_entry *g = (bus_group_entry *)&g;
    size_t n = 9;
    bool more = true;
    assert_int_equal(bus_groups_describe(b, NULL, 100, &g, &n, &more, NULL), 0);
    assert_int_equal(n, 0);
    assert_null(g);
    assert_false(more);
    topic(b, "t", 1, 0, 0);
    topic(b, "u", 2, 0, 0);
    for (int i = 0; i < 4; i++)
        pub(b, "t", "k", "v", NULL, NULL);
    pub(b, "u", "k", "v", NULL, NULL);
    bus_message *m = NULL;
    /* g1: 2 delivered, the first committed, the second failed (waiting
     * for its retry): committed 1, in flight 1, lag 3 */
    assert_int_equal(poll_n(b, "g1", "t", 2, &m), 2);
    commit_ok(b, "g1", &m[0]);
    assert_int_equal(bus_nack(b, "g1", &m[1], "later", NULL), 0);
    bus_messages_free(m, 2);
    /* g0: everything done */
    assert_int_equal(poll_n(b, "g0", "t", 10, &m), 4);
    for (int i = 0; i < 4; i++)
        commit_ok(b, "g0", &m[i]);
    bus_messages_free(m, 4);
    size_t nu = poll_n(b, "g1", "u", 10, &m); /* visits both partitions of u */
    assert_int_equal(nu, 1);
    bus_messages_free(m, nu);
    assert_int_equal(bus_groups_describe(b, NULL, 100, &g, &n, &more, NULL), 0);
    assert_int_equal(n, 4);
    assert_false(more);
    /* ordered by group, topic, partition */
    assert_string_equal(g[0].group, "g0");
    assert_string_equal(g[1].group, "g1");
    assert_string_equal(g[1].topic, "t");
    assert_string_equal(g[2].topic, "u");
    assert_int_equal(g[2].partition, 0);
    assert_int_equal(g[3].partition, 1);
    const bus_group_entry *r = find_row(g, n, "g0", "t", 0);
    assert_int_equal(r->committed, 4);
    assert_int_equal(r->end, 4);
    assert_int_equal(r->lag, 0);
    assert_int_equal(r->in_flight, 0);
    r = find_row(g, n, "g1", "t", 0);
    assert_int_equal(r->committed, 1);
    assert_int_equal(r->end, 4);
    assert_int_equal(r->lag, 3);
    assert_int_equal(r->in_flight, 1);
    int pu = bus_partition_for("k", 1, 2);
    r = find_row(g, n, "g1", "u", pu);
    assert_int_equal(r->end, 1);
    assert_int_equal(r->lag, 1);
    assert_int_equal(r->in_flight, 1);
    r = find_row(g, n, "g1", "u", 1 - pu);
    assert_int_equal(r->end, 0);
    assert_int_equal(r->lag, 0);
    assert_int_equal(r->in_flight, 0);
    free(g);
    /* one group; a page of max rows says there is more */
    assert_int_equal(bus_groups_describe(b, "g0", 100, &g, &n, &more, NULL), 0);
    assert_int_equal(n, 1);
    assert_string_equal(g[0].group, "g0");
    free(g);
    assert_int_equal(bus_groups_describe(b, "nobody", 100, &g, &n, &more, NULL), 0);
    assert_int_equal(n, 0);
    assert_int_equal(bus_groups_describe(b, NULL, 3, &g, &n, &more, NULL), 0);
    assert_int_equal(n, 3);
    assert_true(more);
    free(g);
    assert_int_equal(bus_groups_describe(b, NULL, 4, &g, &n, &more, NULL), 0);
    assert_int_equal(n, 4);
    assert_false(more);
    free(g);
    /* the retry done: g1's offset moves on, nothing in flight */
    clock_test_advance(f->clock, 10 * CAP_MS);
    assert_int_equal(poll_n(b, "g1", "t", 10, &m), 3);
    for (int i = 0; i < 3; i++)
        commit_ok(b, "g1", &m[i]);
    bus_messages_free(m, 3);
    assert_int_equal(bus_groups_describe(b, "g1", 100, &g, &n, &more, NULL), 0);
    r = find_row(g, n, "g1", "t", 0);
    assert_int_equal(r->committed, 4);
    assert_int_equal(r->lag, 0);
    assert_int_equal(r->in_flight, 0);
    free(g);
    /* bad input */
    errdetail e = {0};
    assert_int_equal(bus_groups_describe(b, "bad group", 10, &g, &n, &more, &e), CITRUS_EINVAL);
    assert_int_equal(bus_groups_describe(b, NULL, 0, &g, &n, &more, &e), CITRUS_EINVAL);
    assert_int_equal(bus_groups_describe(b, NULL, 101, &g, &n, &more, &e), CITRUS_ETOOMANY);
    assert_int_equal(bus_groups_describe(b, NULL, 10, NULL, &n, &more, &e), CITRUS_EINVAL);
}

/* ---- publishing a batch ---- */

/* The sum of every partition's high of topic name. */
static int64_t highs(bus *b, const char *name)
{
    bus_topic_entry *t = NULL;
    size_t n = 0;
    assert_int_equal(bus_topics_list(b, &t, &n, NULL), 0);
    int64_t sum = 0;
    const bus_topic_entry *x = find_topic(t, n, name);
    for (int p = 0; p < x->info.partitions; p++)
        sum += x->parts[p].high;
    bus_topics_free(t, n);
    return sum;
}

static void test_publish_batch(void **state)
{
    fixture *f = *state;
    bus *b = f->b;
    topic(b, "t", 2, 0, 0);
    pub(b, "t", "a", "before", NULL, NULL);
    bus_record recs[5] = {
        {"a", 1, "1", 1}, {"a", 1, "2", 1}, {"b", 1, "3", 1}, {"a", 1, "4", 1}, {NULL, 0, "", 0}};
    int parts[5];
    int64_t offs[5];
    size_t done = 9;
    errdetail e = {0};
    assert_int_equal(bus_publish_batch(b, "t", recs, 5, parts, offs, &done, &e), 0);
    assert_int_equal(done, 5);
    int pa = bus_partition_for("a", 1, 2);
    assert_int_equal(parts[0], pa);
    assert_int_equal(parts[2], bus_partition_for("b", 1, 2));
    assert_int_equal(parts[4], bus_partition_for("", 0, 2));
    assert_int_equal(offs[0], 1); /* after "before" */
    assert_int_equal(offs[1], 2);
    assert_int_equal(offs[3], pa == parts[2] ? 4 : 3);
    bus_message *m = NULL;
    size_t n = 0;
    assert_int_equal(bus_read(b, "t", pa, 0, 10, &m, &n, NULL), 0);
    assert_true(n >= 4);
    value_is(&m[0], "before");
    value_is(&m[1], "1");
    value_is(&m[2], "2");
    bus_messages_free(m, n);
    assert_int_equal(highs(b, "t"), 6);
    /* one bad record: nothing is published */
    static char big[5000];
    memset(big, 'v', sizeof(big));
    bus_record bad[3] = {{"a", 1, "ok", 2}, {"a", 1, big, 4096}, {"a", 1, "ok", 2}};
    assert_int_equal(bus_publish_batch(b, "t", bad, 3, parts, offs, &done, &e), CITRUS_ETOOBIGVAL);
    assert_int_equal(done, 0);
    bad[1] = (bus_record){NULL, 2, "x", 1};
    assert_int_equal(bus_publish_batch(b, "t", bad, 3, NULL, NULL, &done, &e), CITRUS_EINVAL);
    assert_int_equal(bus_publish_batch(b, "nope", recs, 2, NULL, NULL, &done, &e),
                     CITRUS_ENOTFOUND);
    assert_int_equal(bus_publish_batch(b, "t", recs, 0, NULL, NULL, &done, &e), CITRUS_EINVAL);
    assert_int_equal(bus_publish_batch(b, "t", NULL, 1, NULL, NULL, &done, &e), CITRUS_EINVAL);
    static bus_record many[101];
    for (size_t i = 0; i < 101; i++)
        many[i] = (bus_record){"k", 1, "v", 1};
    assert_int_equal(bus_publish_batch(b, "t", many, 101, NULL, NULL, &done, &e), CITRUS_ETOOMANY);
    assert_int_equal(highs(b, "t"), 6);
    /* at poll_max: fine, outputs optional */
    assert_int_equal(bus_publish_batch(b, "t", many, 100, NULL, NULL, NULL, &e), 0);
    assert_int_equal(highs(b, "t"), 106);
}

/* ---- group commit: concurrent publishers ---- */

#define PUB_THREADS 8
#define PUB_EACH 150

typedef struct pub_arg {
    bus *b;
    int id;
    int part[PUB_EACH];
    int64_t off[PUB_EACH];
    int failed;
} pub_arg;

static void *pub_main(void *arg)
{
    pub_arg *a = arg;
    for (int i = 0; i < PUB_EACH; i++) {
        char key[32], val[64];
        snprintf(key, sizeof(key), "t%d-k%d", a->id, i % 4);
        snprintf(val, sizeof(val), "%d %d %d", a->id, i % 4, i);
        if (bus_publish(a->b, "t", key, strlen(key), val, strlen(val), &a->part[i], &a->off[i],
                        NULL) != 0)
            a->failed++;
    }
    return NULL;
}

static void test_concurrent_publishers(void **state)
{
    fixture *f = *state;
    topic(f->b, "t", 4, 0, 0);
    static pub_arg args[PUB_THREADS];
    pthread_t th[PUB_THREADS];
    for (int i = 0; i < PUB_THREADS; i++) {
        args[i] = (pub_arg){.b = f->b, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, pub_main, &args[i]), 0);
    }
    for (int i = 0; i < PUB_THREADS; i++)
        pthread_join(th[i], NULL);
    size_t total = 0;
    int last[PUB_THREADS][4];
    memset(last, -1, sizeof(last));
    for (int p = 0; p < 4; p++) {
        int64_t from = 0;
        for (;;) {
            bus_message *m = NULL;
            size_t n = 0;
            assert_int_equal(bus_read(f->b, "t", p, from, 100, &m, &n, NULL), 0);
            if (n == 0)
                break;
            for (size_t i = 0; i < n; i++) {
                assert_int_equal(m[i].offset, from + (int64_t)i); /* dense */
                int id, k, seq;
                assert_int_equal(sscanf((char *)m[i].value, "%d %d %d", &id, &k, &seq), 3);
                assert_true(seq > last[id][k]); /* per key, in publish order */
                last[id][k] = seq;
                /* acknowledged where it is */
                assert_int_equal(args[id].part[seq], p);
                assert_int_equal(args[id].off[seq], m[i].offset);
            }
            from += (int64_t)n;
            total += n;
            bus_messages_free(m, n);
        }
    }
    for (int i = 0; i < PUB_THREADS; i++)
        assert_int_equal(args[i].failed, 0);
    assert_int_equal(total, PUB_THREADS * PUB_EACH);
}

/* A permanent failure: bus_dead_letter moves the message on its first
 * attempt, no backoff drawn, and the group moves past it; on a
 * dead-letter topic it is a nack (retried, never dead-lettered again). */
static void test_dead_letter_at_once(void **state)
{
    fixture *f = *state;
    topic(f->b, "t", 1, 0, 0);
    pub(f->b, "t", "k", "unreadable", NULL, NULL);
    pub(f->b, "t", "k", "fine", NULL, NULL);
    bus_message *m = NULL;
    assert_int_equal(poll_n(f->b, "g", "t", 1, &m), 1);
    assert_int_equal(m[0].attempt, 1);
    errdetail e = {0};
    assert_int_equal(bus_dead_letter(f->b, "g", &m[0], "malformed", &e), 0);
    /* the lease is over: a second answer is stale */
    assert_int_equal(bus_dead_letter(f->b, "g", &m[0], "again", &e), CITRUS_ECONFLICT);
    bus_messages_free(m, 1);
    assert_int_equal(f->rnd.next, 0);
    assert_int_equal(poll_n(f->b, "g", "t", 10, &m), 1);
    value_is(&m[0], "fine");
    commit_ok(f->b, "g", &m[0]);
    bus_messages_free(m, 1);
    size_t n = 0;
    assert_int_equal(bus_read(f->b, "t.dlq", 0, 0, 10, &m, &n, NULL), 0);
    assert_int_equal(n, 1);
    value_is(&m[0], "unreadable");
    assert_string_equal(m[0].error, "malformed");
    assert_int_equal(m[0].attempts, 1);
    bus_messages_free(m, n);
    /* on the dead-letter topic: retried, still there */
    assert_int_equal(poll_n(f->b, "r", "t.dlq", 10, &m), 1);
    assert_int_equal(bus_dead_letter(f->b, "r", &m[0], "still bad", &e), 0);
    bus_messages_free(m, 1);
    poll_none(f->b, "r", "t.dlq");
    clock_test_advance(f->clock, CAP_MS);
    assert_int_equal(poll_n(f->b, "r", "t.dlq", 10, &m), 1);
    assert_int_equal(m[0].attempt, 2);
    bus_messages_free(m, 1);
    bus_message never = {.topic = "t", .partition = 0, .offset = 0, .attempt = 0};
    assert_int_equal(bus_dead_letter(f->b, "g", &never, "x", &e), CITRUS_EINVAL);
    assert_int_equal(bus_dead_letter(f->b, "g", NULL, "x", &e), CITRUS_EINVAL);
}

/* bus_commit_batch: a batch of 100 messages over 3 partitions (the poll
 * limit) committed, each rcs slot 0; a message never delivered is reported
 * in its slot while the others still commit; bad input is refused before
 * anything is committed. */
static void test_commit_batch(void **state)
{
    fixture *f = *state;
    topic(f->b, "t", 3, 0, 0);
    for (int i = 0; i < 100; i++) {
        char key[16], val[16];
        snprintf(key, sizeof(key), "k%d", i % 7);
        snprintf(val, sizeof(val), "v%d", i);
        pub(f->b, "t", key, val, NULL, NULL);
    }
    bus_message *m = NULL;
    assert_int_equal(poll_n(f->b, "g", "t", 100, &m), 100);
    const bus_message *ptrs[101];
    int rcs[101];
    for (int i = 0; i < 101; i++) {
        ptrs[i] = &m[i % 100];
        rcs[i] = 99;
    }
    errdetail e = {0};
    /* bad input: refused as a whole, every slot says so */
    assert_int_equal(bus_commit_batch(f->b, "g", ptrs, 0, rcs, &e), CITRUS_EINVAL);
    assert_int_equal(rcs[0], 99);
    assert_int_equal(bus_commit_batch(f->b, "g", ptrs, 101, rcs, &e), CITRUS_ETOOMANY);
    assert_int_equal(rcs[0], CITRUS_ETOOMANY);
    assert_int_equal(rcs[100], CITRUS_ETOOMANY);
    assert_int_equal(bus_commit_batch(f->b, "bad group", ptrs, 1, rcs, &e), CITRUS_EINVAL);
    assert_int_equal(bus_commit_batch(f->b, "g", NULL, 1, rcs, &e), CITRUS_EINVAL);
    assert_int_equal(rcs[0], CITRUS_EINVAL);
    assert_int_equal(rcs[1], CITRUS_ETOOMANY); /* past n: untouched */
    /* all but the last two, then those two with one never delivered */
    if (bus_commit_batch(f->b, "g", ptrs, 98, rcs, &e) != 0)
        fail_msg("commit_batch: %s", e.message);
    for (int i = 0; i < 98; i++)
        assert_int_equal(rcs[i], 0);
    clock_test_advance(f->clock, VIS);
    bus_message *r = NULL;
    assert_int_equal(poll_n(f->b, "g", "t", 100, &r), 2); /* only those two come again */
    bus_message never = m[0];
    never.offset = 1000;
    const bus_message *last[3] = {&r[0], &never, &r[1]};
    assert_true(bus_commit_batch(f->b, "g", last, 3, rcs, &e) < 0);
    assert_int_equal(rcs[0], 0);
    assert_true(rcs[1] < 0);
    assert_int_equal(rcs[2], 0);
    bus_messages_free(r, 2);
    bus_messages_free(m, 100);
    clock_test_advance(f->clock, 10 * VIS);
    poll_none(f->b, "g", "t");
    /* rcs may be NULL */
    pub(f->b, "t", "k0", "late", NULL, NULL);
    assert_int_equal(poll_n(f->b, "g", "t", 10, &m), 1);
    ptrs[0] = &m[0];
    assert_int_equal(bus_commit_batch(f->b, "g", ptrs, 1, NULL, &e), 0);
    bus_messages_free(m, 1);
    clock_test_advance(f->clock, 10 * VIS);
    poll_none(f->b, "g", "t");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
static const struct CMUnitTest conformance_tests[] = {
    T(test_order_per_key),
    T(test_visibility_timeout_redelivers),
    T(test_commit_moves_past_done_head_only),
    T(test_consumer_dies_mid_batch),
    T(test_retry_blocks_its_partition),
    T(test_backoff_then_dead_letter),
    T(test_timeouts_dead_letter),
    T(test_dead_letter_at_once),
    T(test_retention_by_age),
    T(test_retention_by_size),
    T(test_retention_settings),
    T(test_bad_input),
    T(test_topics_list),
    T(test_groups_describe),
    T(test_publish_batch),
    T(test_commit_batch),
    T(test_concurrent_publishers),
};
#define NTESTS (sizeof(conformance_tests) / sizeof(conformance_tests[0]))

const struct CMUnitTest *bus_conformance_tests(const bus_conformance_factory *f, size_t *n)
{
    static struct CMUnitTest chosen[NTESTS];
    factory = f;
    *n = 0;
    for (size_t i = 0; i < NTESTS; i++)
        if (!f->broker_retention || (conformance_tests[i].test_func != test_retention_by_age &&
                                     conformance_tests[i].test_func != test_retention_by_size))
            chosen[(*n)++] = conformance_tests[i];
    return chosen;
}
