/* tests/unit/test_bus_kafka.c — the Kafka bus on librdkafka's mock cluster
 * (rdkafka_mock.h: brokers in this process on loopback, no real Kafka): the
 * bus conformance suite, then what only Kafka has: a broker down then up,
 * request errors injected into Produce, a consumer closed mid-batch
 * without commits and a new handle on the same group, the Admin API's
 * clear failure where the cluster has none, groups described from another
 * handle, a read below a partition's moved start, bad options.
 *
 * The mock cluster and its admin seam: support_kafka_mock.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/bus_kafka.h"
#include "bus_conformance.h"
#include "support_kafka_mock.h"

#include "citrus/errors.h"

#define PUBLISH_TIMEOUT_MS 1500
#define REQUEST_TIMEOUT_MS 3000
#define SESSION_TIMEOUT_MS 3000 /* the mock takes any; rebalances wait 1 s less */
#define KAFKA_API_PRODUCE 0     /* the Produce request's ApiKey in the Kafka protocol */

/* A handle on m; groups (NULL-terminated, may be NULL): the groups it
 * describes besides its own (the mock cluster cannot list groups);
 * session_ms: its members' session timeout. */
static int open_full(mock *m, const bus_config *cfg, const char *const *groups, int session_ms,
                     bus **out, errdetail *e)
{
    bus_kafka_admin admin = mock_admin(m);
    bus_kafka_opts o = {.bootstrap_servers = rd_kafka_mock_cluster_bootstraps(m->mc),
                        .client_id = "citrus-test",
                        .publish_timeout_ms = PUBLISH_TIMEOUT_MS,
                        .request_timeout_ms = REQUEST_TIMEOUT_MS,
                        .session_timeout_ms = session_ms,
                        .admin = &admin,
                        .groups = groups};
    return bus_open_kafka(&o, cfg, out, e);
}

static int open_groups(mock *m, const bus_config *cfg, const char *const *groups, bus **out,
                       errdetail *e)
{
    return open_full(m, cfg, groups, SESSION_TIMEOUT_MS, out, e);
}

static int open_on(mock *m, const bus_config *cfg, bus **out, errdetail *e)
{
    return open_groups(m, cfg, NULL, out, e);
}

/* ---- the conformance suite: a fresh cluster per test ---- */

static mock *conf_mock;

static int conf_open(void *ctx, const bus_config *cfg, bus **out)
{
    (void)ctx;
    conf_mock = mock_new(1);
    errdetail e = {0};
    int rc = open_on(conf_mock, cfg, out, &e);
    if (rc != 0)
        fprintf(stderr, "bus_open_kafka: %s\n", e.message);
    return rc;
}

static void conf_close(void *ctx, bus *b)
{
    (void)ctx;
    bus_close(b);
    mock_free(conf_mock);
    conf_mock = NULL;
}

static const bus_conformance_factory factory = {
    .name = "kafka", .open = conf_open, .close = conf_close, .broker_retention = true};

/* ---- Kafka's own ---- */

static void create(bus *b, const char *name, int partitions)
{
    errdetail e = {0};
    int rc = bus_topic_create(b, name, &(bus_topic_opts){.partitions = partitions}, &e);
    if (rc != 0)
        fail_msg("create %s: %d %s", name, rc, e.message);
}

/* A fresh cluster, a handle on it, and topic t of one partition. */
static bus *open_with_t(mock **m)
{
    *m = mock_new(1);
    bus *b;
    assert_int_equal(open_on(*m, NULL, &b, NULL), 0);
    create(b, "t", 1);
    return b;
}

/* Reads t's partition 0 and checks it holds exactly the values given. */
static void t_holds(bus *b, const char *const *values, size_t count)
{
    bus_message *msgs;
    size_t n;
    assert_int_equal(bus_read(b, "t", 0, 0, 10, &msgs, &n, NULL), 0);
    assert_int_equal(n, count);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(msgs[i].value_len, strlen(values[i]));
        assert_memory_equal(msgs[i].value, values[i], msgs[i].value_len);
    }
    bus_messages_free(msgs, n);
}

/* A broker down: a publish fails within its bound with a clear
 * CITRUS_EUNAVAILABLE; once the broker is back, publishes go on, and what
 * failed was not written. */
static void test_broker_down_then_up(void **state)
{
    (void)state;
    mock *m;
    bus *b = open_with_t(&m);
    int p;
    int64_t off;
    assert_int_equal(bus_publish(b, "t", "k", 1, "before", 6, &p, &off, NULL), 0);
    assert_int_equal(off, 0);
    assert_int_equal(rd_kafka_mock_broker_set_down(m->mc, 1), 0);
    errdetail e = {0};
    int64_t t0 = clock_mono_ms(NULL);
    assert_int_equal(bus_publish(b, "t", "k", 1, "lost", 4, &p, &off, &e), CITRUS_EUNAVAILABLE);
    int64_t took = clock_mono_ms(NULL) - t0;
    assert_true(took < PUBLISH_TIMEOUT_MS + 1000);
    assert_non_null(strstr(e.message, "not acknowledged"));
    assert_int_equal(rd_kafka_mock_broker_set_up(m->mc, 1), 0);
    int rc = -1;
    for (int i = 0; i < 5 && rc != 0; i++) /* reconnecting may take one publish timeout */
        rc = bus_publish(b, "t", "k", 1, "after", 5, &p, &off, &e);
    assert_int_equal(rc, 0);
    assert_int_equal(off, 1);
    t_holds(b, (const char *const[]){"before", "after"}, 2);
    bus_close(b);
    mock_free(m);
}

/* Retriable errors on Produce: librdkafka retries, the publish succeeds
 * once, and no duplicate lands in the partition. (The mock fails an
 * injected request before appending, so this shows the retries, not the
 * idempotent producer's deduplication of a batch appended twice.) */
static void test_produce_errors_retried(void **state)
{
    (void)state;
    mock *m;
    bus *b = open_with_t(&m);
    int p;
    int64_t off;
    assert_int_equal(bus_publish(b, "t", "k", 1, "v0", 2, &p, &off, NULL), 0);
    rd_kafka_mock_push_request_errors(
        m->mc, KAFKA_API_PRODUCE, 3, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
    errdetail e = {0};
    int rc = bus_publish(b, "t", "k", 1, "v1", 2, &p, &off, &e);
    if (rc != 0)
        fail_msg("publish: %d %s", rc, e.message);
    assert_int_equal(off, 1);
    assert_int_equal(bus_publish(b, "t", "k", 1, "v2", 2, &p, &off, NULL), 0);
    assert_int_equal(off, 2);
    t_holds(b, (const char *const[]){"v0", "v1", "v2"}, 3);
    bus_topic_info info;
    assert_int_equal(bus_topic_describe(b, "t", &info, NULL), 0);
    assert_int_equal(info.messages, 3);
    bus_close(b);
    mock_free(m);
}

/* A consumer closed mid-batch without committing everything: a new handle
 * on the same group resumes at Kafka's committed offset and gets the rest
 * again (attempts count from 1 again: leases live in the process). */
static void test_closed_mid_batch_redelivers(void **state)
{
    (void)state;
    mock *m;
    bus *b = open_with_t(&m);
    for (int i = 0; i < 5; i++) {
        char v[4];
        snprintf(v, sizeof(v), "%d", i);
        assert_int_equal(bus_publish(b, "t", "k", 1, v, 1, NULL, NULL, NULL), 0);
    }
    bus_message *msgs;
    size_t n;
    assert_int_equal(bus_poll(b, "g", "t", 10, 1000, &msgs, &n, NULL), 0);
    assert_int_equal(n, 5);
    assert_int_equal(bus_commit(b, "g", &msgs[0], NULL), 0);
    assert_int_equal(bus_commit(b, "g", &msgs[1], NULL), 0);
    assert_int_equal(bus_commit(b, "g", &msgs[3], NULL), 0); /* behind an uncommitted one */
    bus_messages_free(msgs, n);
    bus_close(b);

    assert_int_equal(open_on(m, NULL, &b, NULL), 0);
    assert_int_equal(bus_poll(b, "g", "t", 10, 1000, &msgs, &n, NULL), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(msgs[i].offset, (int64_t)i + 2);
        assert_int_equal(msgs[i].attempt, 1);
        assert_int_equal(bus_commit(b, "g", &msgs[i], NULL), 0);
    }
    bus_messages_free(msgs, n);
    bus_close(b);

    /* everything committed: a third handle gets nothing; another group all */
    assert_int_equal(open_on(m, NULL, &b, NULL), 0);
    assert_int_equal(bus_poll(b, "g", "t", 10, 1000, &msgs, &n, NULL), 0);
    assert_int_equal(n, 0);
    assert_int_equal(bus_poll(b, "other", "t", 10, 1000, &msgs, &n, NULL), 0);
    assert_int_equal(n, 5);
    bus_messages_free(msgs, n);
    bus_close(b);
    mock_free(m);
}

/* The brokers down at a commit: bus_commit (and a new group's poll) fail
 * within their bound (unavailable); once they are back, the commit again
 * succeeds and Kafka holds the offset (a new handle starts after the
 * message). The outage (~6 s) is shorter than the member's session
 * timeout, so the group keeps its partitions. */
#define LONG_SESSION_MS 10000
static void test_commit_while_down(void **state)
{
    (void)state;
    mock *m = mock_new(1);
    bus *b;
    assert_int_equal(open_full(m, NULL, NULL, LONG_SESSION_MS, &b, NULL), 0);
    create(b, "t", 1);
    assert_int_equal(bus_publish(b, "t", "k", 1, "a", 1, NULL, NULL, NULL), 0);
    assert_int_equal(bus_publish(b, "t", "k", 1, "b", 1, NULL, NULL, NULL), 0);
    bus_message *msgs;
    size_t n;
    assert_int_equal(bus_poll(b, "g", "t", 1, 1000, &msgs, &n, NULL), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rd_kafka_mock_broker_set_down(m->mc, 1), 0);
    errdetail e = {0};
    int64_t t0 = clock_mono_ms(NULL);
    assert_int_equal(bus_commit(b, "g", &msgs[0], &e), CITRUS_EUNAVAILABLE);
    assert_true(clock_mono_ms(NULL) - t0 < REQUEST_TIMEOUT_MS + 2000);
    assert_non_null(strstr(e.message, "commit"));
    bus_message *none = NULL;
    size_t k = 9;
    t0 = clock_mono_ms(NULL); /* a new group's first poll needs the brokers too */
    assert_int_equal(bus_poll(b, "g2", "t", 10, 1000, &none, &k, &e), CITRUS_EUNAVAILABLE);
    assert_true(clock_mono_ms(NULL) - t0 < REQUEST_TIMEOUT_MS + 2000);
    assert_int_equal(k, 0);
    assert_int_equal(rd_kafka_mock_broker_set_up(m->mc, 1), 0);
    int rc = -1;
    for (int i = 0; i < 5 && rc != 0; i++)
        rc = bus_commit(b, "g", &msgs[0], &e);
    assert_int_equal(rc, 0);
    bus_messages_free(msgs, n);
    bus_close(b);
    assert_int_equal(open_full(m, NULL, NULL, LONG_SESSION_MS, &b, NULL), 0);
    assert_int_equal(bus_poll(b, "g", "t", 10, 1000, &msgs, &n, NULL), 0);
    assert_int_equal(n, 1);
    assert_memory_equal(msgs[0].value, "b", 1);
    bus_messages_free(msgs, n);
    bus_close(b);
    mock_free(m);
}

/* keys[p]: a key that bus_partition_for puts on partition p of n. */
static void keys_for(int n, char keys[][8])
{
    int found = 0;
    for (int p = 0; p < n; p++)
        keys[p][0] = '\0';
    for (int i = 0; found < n && i < 1000; i++) {
        char key[8];
        snprintf(key, sizeof(key), "k%d", i);
        int p = bus_partition_for(key, strlen(key), n);
        if (!keys[p][0]) {
            snprintf(keys[p], sizeof(keys[p]), "%s", key);
            found++;
        }
    }
    assert_int_equal(found, n);
}

/* Polls up to max messages of topic for group and commits them all;
 * returns how many. */
static size_t consume_all(bus *b, const char *group, const char *topic, size_t max)
{
    bus_message *msgs;
    size_t n;
    errdetail e = {0};
    int rc = bus_poll(b, group, topic, max, 10000, &msgs, &n, &e);
    if (rc != 0)
        fail_msg("poll %s %s: %d %s", group, topic, rc, e.message);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(bus_commit(b, group, &msgs[i], NULL), 0);
    bus_messages_free(msgs, n);
    return n;
}

static const bus_group_entry *row_of(const bus_group_entry *g, size_t n, const char *group,
                                     const char *topic, int part)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(g[i].group, group) == 0 && strcmp(g[i].topic, topic) == 0 &&
            g[i].partition == part)
            return &g[i];
    fail_msg("no row %s %s/%d", group, topic, part);
    return NULL;
}

/* Groups that only other processes poll: two handles commit in groups ga
 * and gb, and a third handle, which never polled, describes both from
 * Kafka's committed offsets (the mock cluster has no ListGroups, so the
 * third knows the names from bus_kafka_opts.groups, as a node knows its
 * workers' group ids); a named group is described without being in the
 * list; an unknown one has no rows. */
static void test_describe_other_processes(void **state)
{
    (void)state;
    mock *m = mock_new(1);
    bus *pa, *pb, *d;
    assert_int_equal(open_on(m, NULL, &pa, NULL), 0);
    create(pa, "t", 2);
    char keys[2][8]; /* a key landing on partition 0, one on 1 */
    keys_for(2, keys);
    for (int i = 0; i < 5; i++) /* 5 on partition 0, 3 on partition 1 */
        assert_int_equal(bus_publish(pa, "t", keys[0], strlen(keys[0]), "v", 1, NULL, NULL, NULL),
                         0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(bus_publish(pa, "t", keys[1], strlen(keys[1]), "v", 1, NULL, NULL, NULL),
                         0);
    assert_int_equal(open_on(m, NULL, &pb, NULL), 0);
    assert_int_equal(consume_all(pa, "ga", "t", 8), 8); /* ga: all done */
    assert_int_equal(consume_all(pb, "gb", "t", 6), 6); /* gb: 6 of 8 done */
    bus_message *left;
    size_t nl;
    assert_int_equal(bus_poll(pb, "gb", "t", 10, 10000, &left, &nl, NULL), 0);
    assert_int_equal(nl, 2); /* leased in pb, not committed */

    const char *const known[] = {"ga", "gb", "nobody", NULL};
    assert_int_equal(open_groups(m, NULL, known, &d, NULL), 0);
    bus_group_entry *g;
    size_t n;
    bool more = true;
    errdetail e = {0};
    int rc = bus_groups_describe(d, NULL, 100, &g, &n, &more, &e);
    if (rc != 0)
        fail_msg("describe: %d %s", rc, e.message);
    assert_int_equal(n, 4);
    assert_false(more);
    assert_string_equal(g[0].group, "ga");
    assert_string_equal(g[2].group, "gb");
    int64_t gb_done[2] = {0, 0}; /* what pb's describe says it committed */
    for (int p = 0; p < 2; p++) {
        int64_t end = p == 0 ? 5 : 3;
        const bus_group_entry *r = row_of(g, n, "ga", "t", p);
        assert_int_equal(r->committed, end);
        assert_int_equal(r->end, end);
        assert_int_equal(r->lag, 0);
        assert_int_equal(r->in_flight, 0); /* leases are per process */
        r = row_of(g, n, "gb", "t", p);
        assert_int_equal(r->end, end);
        assert_int_equal(r->lag, end - r->committed);
        assert_int_equal(r->in_flight, 0);
        gb_done[p] = r->committed;
    }
    assert_int_equal(gb_done[0] + gb_done[1], 6);
    free(g);
    /* pb's own view agrees on the offsets and holds its two leases */
    assert_int_equal(bus_groups_describe(pb, "gb", 100, &g, &n, &more, NULL), 0);
    assert_int_equal(n, 2);
    assert_int_equal(g[0].committed + g[1].committed, 6);
    assert_int_equal(g[0].committed, gb_done[0]);
    assert_int_equal(g[0].in_flight + g[1].in_flight, 2);
    free(g);
    /* a group asked for by name needs no list; an unknown one has no rows */
    bus *d2;
    assert_int_equal(open_on(m, NULL, &d2, NULL), 0);
    assert_int_equal(bus_groups_describe(d2, "ga", 100, &g, &n, &more, NULL), 0);
    assert_int_equal(n, 2);
    assert_int_equal(row_of(g, n, "ga", "t", 0)->committed, 5);
    free(g);
    assert_int_equal(bus_groups_describe(d2, NULL, 100, &g, &n, &more, NULL), 0);
    assert_int_equal(n, 0); /* knows no group: the mock cannot list them */
    assert_int_equal(bus_groups_describe(d2, "nobody", 100, &g, &n, &more, NULL), 0);
    assert_int_equal(n, 0);
    /* a page: 3 of the 4 rows */
    assert_int_equal(bus_groups_describe(d, NULL, 3, &g, &n, &more, NULL), 0);
    assert_int_equal(n, 3);
    assert_true(more);
    free(g);
    bus_messages_free(left, nl);
    bus_close(d2);
    bus_close(d);
    bus_close(pb);
    bus_close(pa);
    mock_free(m);
}

/* The mock's partition log keeps at most 5 MiB (its built-in segment
 * limit, rdkafka_mock.c's max_size): past it, appending drops the oldest
 * message sets and the partition's start moves, as Kafka's retention.bytes
 * does. Six messages of ~1 MB: offset 0 goes; a read from it is
 * CITRUS_ECOMPACTED, a read from the start works, a group that never
 * committed starts at the oldest message left, and the topic counts what
 * is retained. */
#define BIG_VALUE 1000000
static void test_read_below_start_compacted(void **state)
{
    (void)state;
    mock *m;
    bus *b = open_with_t(&m);
    char *big = malloc(BIG_VALUE);
    assert_non_null(big);
    for (int i = 0; i < 6; i++) {
        memset(big, 'a' + i, BIG_VALUE);
        int64_t off;
        errdetail e = {0};
        int rc = bus_publish(b, "t", "k", 1, big, BIG_VALUE, NULL, &off, &e);
        if (rc != 0)
            fail_msg("publish %d: %d %s", i, rc, e.message);
        assert_int_equal(off, i);
    }
    free(big);
    bus_topic_entry *t;
    size_t nt;
    assert_int_equal(bus_topics_list(b, &t, &nt, NULL), 0);
    int64_t low = -1;
    for (size_t i = 0; i < nt; i++)
        if (strcmp(t[i].name, "t") == 0) {
            low = t[i].parts[0].low;
            assert_int_equal(t[i].parts[0].high, 6);
            assert_int_equal(t[i].info.messages, 6 - low);
        }
    bus_topics_free(t, nt);
    assert_true(low >= 1 && low < 6);
    bus_message *msgs;
    size_t n = 9;
    errdetail e = {0};
    assert_int_equal(bus_read(b, "t", 0, 0, 10, &msgs, &n, &e), CITRUS_ECOMPACTED);
    assert_int_equal(n, 0);
    assert_non_null(strstr(e.message, "trimmed"));
    assert_int_equal(bus_read(b, "t", 0, low - 1, 10, &msgs, &n, &e), CITRUS_ECOMPACTED);
    assert_int_equal(bus_read(b, "t", 0, low, 1, &msgs, &n, NULL), 0);
    assert_int_equal(n, 1);
    assert_int_equal(msgs[0].offset, low);
    assert_int_equal(msgs[0].value_len, BIG_VALUE);
    assert_int_equal(msgs[0].value[0], 'a' + (int)low);
    bus_messages_free(msgs, n);
    /* a new group starts at the oldest message left */
    assert_int_equal(bus_poll(b, "g", "t", 1, 1000, &msgs, &n, NULL), 0);
    assert_int_equal(n, 1);
    assert_int_equal(msgs[0].offset, low);
    bus_messages_free(msgs, n);
    bus_close(b);
    mock_free(m);
}

/* Polls a and b (NULL: only a) once each for group gr on topic t4, commits
 * what came and notes, per partition, which handle got it (1: a, 2: b)
 * and each value seen. */
static void poll_both(bus *a, bus *b, int *owner, bool *seen, size_t nseen)
{
    bus *hs[2] = {a, b};
    for (int h = 0; h < 2; h++) {
        if (!hs[h])
            continue;
        bus_message *msgs;
        size_t n;
        errdetail e = {0};
        int rc = bus_poll(hs[h], "gr", "t4", 100, 10000, &msgs, &n, &e);
        if (rc != 0)
            fail_msg("poll of handle %d: %d %s", h, rc, e.message);
        for (size_t i = 0; i < n; i++) {
            owner[msgs[i].partition] |= h + 1;
            unsigned v = (unsigned)strtoul((const char *)msgs[i].value, NULL, 10);
            assert_true(v < nseen);
            seen[v] = true;
            rc = bus_commit(hs[h], "gr", &msgs[i], &e);
            /* a partition taken away between the poll and the commit:
             * its new owner gets the message again */
            if (rc != 0 && rc != CITRUS_ECONFLICT)
                fail_msg("commit: %d %s", rc, e.message);
        }
        bus_messages_free(msgs, n);
    }
}

#define BAL_MSGS 2000
#define BAL_DEADLINE_MS 60000 /* a rebalance on the mock: ~2-5 s */
#define ROUND_PAUSE_MS 200

static void pause_ms(int ms)
{
    nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L},
              NULL);
}

/* One message on each of t4's 4 partitions (keys[p] lands on p), values
 * numbered from *next. */
static void publish_round(bus *b, char keys[4][8], int *next)
{
    for (int p = 0; p < 4; p++) {
        char v[16];
        snprintf(v, sizeof(v), "%d", (*next)++);
        assert_true(*next <= BAL_MSGS);
        int part;
        assert_int_equal(
            bus_publish(b, "t4", keys[p], strlen(keys[p]), v, strlen(v), &part, NULL, NULL), 0);
        assert_int_equal(part, p);
    }
}

/* Kafka's group protocol splits a group's partitions between processes:
 * two handles in group gr on a 4-partition topic each get a disjoint,
 * non-empty share (every partition of a round consumed by exactly one of
 * them); once one is closed, the other takes over every partition; every
 * message published is consumed (at least once). Each wait is bounded. */
static void test_group_balances_partitions(void **state)
{
    (void)state;
    mock *m = mock_new(1);
    bus *a, *b;
    assert_int_equal(open_on(m, NULL, &a, NULL), 0);
    assert_int_equal(open_on(m, NULL, &b, NULL), 0);
    create(a, "t4", 4);
    char keys[4][8];
    keys_for(4, keys);
    static bool seen[BAL_MSGS];
    memset(seen, 0, sizeof(seen));
    int next = 0;
    /* both join: rounds until one where the handles split the partitions */
    bool split = false;
    int64_t end = clock_mono_ms(NULL) + BAL_DEADLINE_MS;
    while (!split && clock_mono_ms(NULL) < end) {
        int owner[4] = {0, 0, 0, 0};
        publish_round(a, keys, &next);
        for (int i = 0; i < 3; i++)
            poll_both(a, b, owner, seen, BAL_MSGS);
        int mask = 0;
        split = true;
        for (int p = 0; p < 4; p++) {
            split = split && (owner[p] == 1 || owner[p] == 2);
            mask |= owner[p];
        }
        split = split && mask == 3;
        pause_ms(ROUND_PAUSE_MS);
    }
    assert_true(split);
    /* a leaves the group: b ends up consuming every partition */
    bus_close(a);
    bool all = false;
    end = clock_mono_ms(NULL) + BAL_DEADLINE_MS;
    while (!all && clock_mono_ms(NULL) < end) {
        int owner[4] = {0, 0, 0, 0};
        publish_round(b, keys, &next);
        for (int i = 0; i < 3; i++)
            poll_both(b, NULL, owner, seen, BAL_MSGS);
        all = owner[0] && owner[1] && owner[2] && owner[3];
        pause_ms(ROUND_PAUSE_MS);
    }
    assert_true(all);
    /* nothing lost: what came late is consumed by b now */
    end = clock_mono_ms(NULL) + BAL_DEADLINE_MS;
    for (bool done = false; !done && clock_mono_ms(NULL) < end;) {
        int owner[4] = {0, 0, 0, 0};
        poll_both(b, NULL, owner, seen, BAL_MSGS);
        done = true;
        for (int v = 0; v < next; v++)
            done = done && seen[v];
    }
    for (int v = 0; v < next; v++)
        if (!seen[v])
            fail_msg("message %d of %d never consumed", v, next);
    bus_close(b);
    mock_free(m);
}

/* A partition taken from a member by a rebalance drops its leases: a
 * holds one message leased on each of t2's 2 partitions when b joins;
 * once one partition is b's, a's commit of that message is a conflict
 * (and of the other one succeeds), and b gets the message again, attempt
 * 1: at least once. */
static void test_rebalance_drops_leases(void **state)
{
    (void)state;
    mock *m = mock_new(1);
    bus *a, *b;
    assert_int_equal(open_on(m, NULL, &a, NULL), 0);
    assert_int_equal(open_on(m, NULL, &b, NULL), 0);
    create(a, "t2", 2);
    char keys[2][8];
    keys_for(2, keys);
    for (int p = 0; p < 2; p++)
        assert_int_equal(bus_publish(a, "t2", keys[p], strlen(keys[p]), keys[p], strlen(keys[p]),
                                     NULL, NULL, NULL),
                         0);
    bus_message *held;
    size_t nh;
    assert_int_equal(bus_poll(a, "gr", "t2", 10, 600000, &held, &nh, NULL), 0);
    assert_int_equal(nh, 2);
    /* b joins; a keeps polling (nothing: its partitions are leased) so
     * that it hears of the rebalance */
    bus_message *got = NULL;
    size_t ng = 0;
    int64_t end = clock_mono_ms(NULL) + BAL_DEADLINE_MS;
    while (ng == 0 && clock_mono_ms(NULL) < end) {
        bus_message *none;
        size_t nn;
        assert_int_equal(bus_poll(a, "gr", "t2", 10, 600000, &none, &nn, NULL), 0);
        assert_int_equal(nn, 0);
        assert_int_equal(bus_poll(b, "gr", "t2", 10, 600000, &got, &ng, NULL), 0);
        if (ng == 0)
            pause_ms(ROUND_PAUSE_MS);
    }
    assert_int_equal(ng, 1);
    assert_int_equal(got[0].attempt, 1);
    int moved = got[0].partition;
    for (size_t i = 0; i < nh; i++) {
        errdetail e = {0};
        int rc = bus_commit(a, "gr", &held[i], &e);
        if (held[i].partition == moved) {
            assert_int_equal(rc, CITRUS_ECONFLICT);
            assert_non_null(strstr(e.message, "rebalance"));
            assert_int_equal(got[0].offset, held[i].offset);
            assert_memory_equal(got[0].value, held[i].value, held[i].value_len);
        } else {
            assert_int_equal(rc, 0);
        }
    }
    assert_int_equal(bus_commit(b, "gr", &got[0], NULL), 0);
    bus_messages_free(got, ng);
    bus_messages_free(held, nh);
    bus_close(b);
    bus_close(a);
    mock_free(m);
}

/* The brokers down at bus_close of a handle whose groups are members:
 * leaving the group cannot be said, and the close still returns within
 * its bound (the member then drops out at its session timeout). */
static void test_close_while_down(void **state)
{
    (void)state;
    mock *m;
    bus *b = open_with_t(&m);
    assert_int_equal(bus_publish(b, "t", "k", 1, "a", 1, NULL, NULL, NULL), 0);
    bus_message *msgs;
    size_t n;
    assert_int_equal(bus_poll(b, "g", "t", 1, 1000, &msgs, &n, NULL), 0);
    assert_int_equal(n, 1);
    bus_messages_free(msgs, n);
    assert_int_equal(rd_kafka_mock_broker_set_down(m->mc, 1), 0);
    int64_t t0 = clock_mono_ms(NULL);
    bus_close(b);
    assert_true(clock_mono_ms(NULL) - t0 < REQUEST_TIMEOUT_MS + 2000);
    mock_free(m);
}

/* Without the admin seam the Admin API is used: the mock cluster has no
 * CreateTopics handler to answer it, and topic creation fails within its bound with
 * a clear error instead of hanging. */
static void test_admin_api_unavailable(void **state)
{
    (void)state;
    mock *m = mock_new(1);
    bus_kafka_opts o = {.bootstrap_servers = rd_kafka_mock_cluster_bootstraps(m->mc),
                        .request_timeout_ms = 500};
    bus *b;
    assert_int_equal(bus_open_kafka(&o, NULL, &b, NULL), 0);
    errdetail e = {0};
    int64_t t0 = clock_mono_ms(NULL);
    assert_int_equal(bus_topic_create(b, "t", &(bus_topic_opts){.partitions = 1}, &e),
                     CITRUS_EUNAVAILABLE);
    assert_true(clock_mono_ms(NULL) - t0 < 5000);
    assert_non_null(strstr(e.message, "create topic t"));
    assert_int_equal(m->creates, 0);
    bus_close(b);
    mock_free(m);
}

/* bus_kafka_opts.session_timeout_ms (bus.kafka.session_timeout_ms) is the
 * session.timeout.ms of the group members' consumers, heartbeating at a
 * tenth of it; unset, 10 s. */
static void test_session_timeout_reaches_consumer(void **state)
{
    (void)state;
    mock *m = mock_new(1);
    bus *b;
    assert_int_equal(open_full(m, NULL, NULL, 7000, &b, NULL), 0);
    create(b, "t", 1);
    char v[32];
    assert_int_equal(bus_kafka_member_config(b, "g", "t", "session.timeout.ms", v, sizeof(v)),
                     CITRUS_ENOTFOUND); /* no member before its first poll */
    bus_message *msgs;
    size_t n;
    assert_int_equal(bus_poll(b, "g", "t", 1, 1000, &msgs, &n, NULL), 0);
    assert_int_equal(bus_kafka_member_config(b, "g", "t", "session.timeout.ms", v, sizeof(v)), 0);
    assert_string_equal(v, "7000");
    assert_int_equal(bus_kafka_member_config(b, "g", "t", "heartbeat.interval.ms", v, sizeof(v)),
                     0);
    assert_string_equal(v, "700");
    assert_int_equal(bus_kafka_member_config(b, "g", "t", "no.such.property", v, sizeof(v)),
                     CITRUS_ENOTFOUND);
    assert_int_equal(bus_kafka_member_config(b, "other", "t", "session.timeout.ms", v, sizeof(v)),
                     CITRUS_ENOTFOUND);
    assert_int_equal(bus_kafka_member_config(b, "g", "t", "session.timeout.ms", v, 2),
                     CITRUS_EINVAL); /* too small for "7000" */
    bus_close(b);

    bus_kafka_admin admin = mock_admin(m);
    bus_kafka_opts o = {.bootstrap_servers = rd_kafka_mock_cluster_bootstraps(m->mc),
                        .request_timeout_ms = REQUEST_TIMEOUT_MS,
                        .admin = &admin};
    assert_int_equal(bus_open_kafka(&o, NULL, &b, NULL), 0);
    assert_int_equal(bus_poll(b, "g2", "t", 1, 1000, &msgs, &n, NULL), 0);
    assert_int_equal(bus_kafka_member_config(b, "g2", "t", "session.timeout.ms", v, sizeof(v)), 0);
    assert_string_equal(v, "10000");
    bus_close(b);
    mock_free(m);
}

/* Bad options are refused by name; a secret never shows in the message. */
static void test_bad_options(void **state)
{
    (void)state;
    bus *b = (bus *)&b;
    errdetail e = {0};
    assert_int_equal(bus_open_kafka(&(bus_kafka_opts){0}, NULL, &b, &e), CITRUS_EINVAL);
    assert_null(b);
    assert_int_equal(bus_open_kafka(NULL, NULL, &b, &e), CITRUS_EINVAL);
    bus_kafka_opts o = {.bootstrap_servers = "127.0.0.1:1", .security_protocol = "carrier-pigeon"};
    assert_int_equal(bus_open_kafka(&o, NULL, &b, &e), CITRUS_EINVAL);
    assert_non_null(strstr(e.message, "security.protocol"));
    o = (bus_kafka_opts){.bootstrap_servers = "127.0.0.1:1",
                         .security_protocol = "sasl_plaintext",
                         .sasl_mechanism = "NOT-A-MECHANISM",
                         .sasl_username = "u",
                         .sasl_password = "hunter2-secret"};
    assert_int_equal(bus_open_kafka(&o, NULL, &b, &e), CITRUS_EINVAL);
    assert_null(strstr(e.message, "hunter2"));
    o.sasl_mechanism = "PLAIN"; /* good settings: opens (no broker needed yet) */
    assert_int_equal(bus_open_kafka(&o, NULL, &b, &e), 0);
    bus_close(b);
    /* unset settings of a config ("") count as absent */
    o = (bus_kafka_opts){.bootstrap_servers = "127.0.0.1:1",
                         .client_id = "",
                         .security_protocol = "",
                         .sasl_username = "",
                         .sasl_password = "",
                         .ssl_ca_file = ""};
    assert_int_equal(bus_open_kafka(&o, NULL, &b, &e), 0);
    bus_close(b);
    bus_kafka_admin half = {.create = mock_create};
    o = (bus_kafka_opts){.bootstrap_servers = "127.0.0.1:1", .admin = &half};
    assert_int_equal(bus_open_kafka(&o, NULL, &b, &e), CITRUS_EINVAL);
    o = (bus_kafka_opts){.bootstrap_servers = "127.0.0.1:1", .publish_timeout_ms = -1};
    assert_int_equal(bus_open_kafka(&o, NULL, &b, &e), CITRUS_EINVAL);
    bus_config bad = {.backoff_base_ms = 10, .backoff_cap_ms = 5};
    o = (bus_kafka_opts){.bootstrap_servers = "127.0.0.1:1"};
    assert_int_equal(bus_open_kafka(&o, &bad, &b, &e), CITRUS_EINVAL);
    assert_null(b);
}

int main(void)
{
    size_t n;
    const struct CMUnitTest *conf = bus_conformance_tests(&factory, &n);
    int failed = _cmocka_run_group_tests("bus_conformance(kafka)", conf, n, NULL, NULL);
    const struct CMUnitTest own[] = {
        cmocka_unit_test(test_broker_down_then_up),
        cmocka_unit_test(test_produce_errors_retried),
        cmocka_unit_test(test_closed_mid_batch_redelivers),
        cmocka_unit_test(test_commit_while_down),
        cmocka_unit_test(test_admin_api_unavailable),
        cmocka_unit_test(test_describe_other_processes),
        cmocka_unit_test(test_read_below_start_compacted),
        cmocka_unit_test(test_group_balances_partitions),
        cmocka_unit_test(test_rebalance_drops_leases),
        cmocka_unit_test(test_close_while_down),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_session_timeout_reaches_consumer),
    };
    failed += cmocka_run_group_tests_name("bus_kafka", own, NULL, NULL);
    return failed ? 1 : 0;
}
