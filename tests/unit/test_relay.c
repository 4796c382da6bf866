/* tests/unit/test_relay.c — the lifecycle relay: every shard and tenant
 * change in the catalog becomes events on the lifecycle topic, with ids
 * from the catalog revision; a restart resumes at the checkpoint, and a
 * crash (or a failed publish) before the checkpoint publishes no id twice:
 * the relay reads the topic's tail first and publishes only what is
 * missing, down to a single event of a revision. The restart and crash
 * cases run on the embedded log and again on the Kafka backend
 * (librdkafka's mock cluster, support_kafka_mock.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/bus_kafka.h"
#include "bus/bus_sqlite.h"
#include "catalog/txb.h"
#include "citrus/errors.h"
#include "registry/tenants.h"
#include "support_kafka_mock.h"
#include "support_registry.h"
#include "wire/catalog_keys.h"
#include "workers/relay.h"

#define TOPIC "sm.events"

typedef struct fix {
    regfix rf;
    char bus_path[160];
    bus *b;
    mock *km; /* the Kafka variants' cluster; NULL on the embedded log */
} fix;

static int setup(void **state)
{
    fix *f = calloc(1, sizeof(*f));
    regfix_open(&f->rf, "relay", 4);
    snprintf(f->bus_path, sizeof(f->bus_path), "%s/bus.db", f->rf.d.dir);
    errdetail e;
    assert_int_equal(bus_open_sqlite(f->bus_path, NULL, &f->b, &e), 0);
    bus_topic_opts o = {.partitions = 3};
    assert_int_equal(bus_topic_create(f->b, TOPIC, &o, &e), 0);
    *state = f;
    return 0;
}

/* The same on the Kafka backend: librdkafka's mock cluster (one broker),
 * the topic made through the admin seam (support_kafka_mock.h). */
static int setup_kafka(void **state)
{
    fix *f = calloc(1, sizeof(*f));
    regfix_open(&f->rf, "relayk", 4);
    f->km = mock_new(1);
    bus_kafka_admin admin = mock_admin(f->km);
    bus_kafka_opts ko = {.bootstrap_servers = rd_kafka_mock_cluster_bootstraps(f->km->mc),
                         .client_id = "citrus-relay-test",
                         .publish_timeout_ms = 3000,
                         .request_timeout_ms = 3000,
                         .admin = &admin};
    errdetail e = {0};
    if (bus_open_kafka(&ko, NULL, &f->b, &e) != 0)
        fail_msg("bus_open_kafka: %s", e.message);
    bus_topic_opts o = {.partitions = 3};
    assert_int_equal(bus_topic_create(f->b, TOPIC, &o, &e), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fix *f = *state;
    bus_close(f->b);
    if (f->km)
        mock_free(f->km);
    regfix_close(&f->rf);
    free(f);
    return 0;
}

static relay *start(fix *f)
{
    relay_options o = {.st = f->rf.d.st, .b = f->b, .topic = TOPIC, .checkpoint_every_ms = 3600000};
    relay *r = NULL;
    assert_int_equal(relay_start(&o, &r), 0);
    return r;
}

/* Waits (a liveness bound, not a speed check) until r has published up
 * to the store's revision. */
static void caught_up(fix *f, relay *r)
{
    int64_t want = store_revision(f->rf.d.st);
    for (int i = 0; i < 1000 && relay_published(r) < want; i++)
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    assert_true(relay_published(r) >= want);
}

/* Every event on the topic, all partitions, as parsed JSON in an array. */
static json_t *all_events(fix *f)
{
    json_t *a = json_array();
    for (int p = 0; p < 3; p++) {
        for (int64_t from = 0;;) {
            bus_message *m = NULL;
            size_t n = 0;
            errdetail e;
            int rc = bus_read(f->b, TOPIC, p, from, 1000, &m, &n, &e);
            if (rc == CITRUS_EINVAL || (rc == 0 && n == 0))
                break; /* nothing (more) in it */
            assert_int_equal(rc, 0);
            for (size_t i = 0; i < n; i++) {
                json_t *j = json_loadb((const char *)m[i].value, m[i].value_len, 0, NULL);
                assert_non_null(j);
                json_object_set_new(j, "_key", json_stringn((const char *)m[i].key, m[i].key_len));
                json_array_append_new(a, j);
            }
            from = m[n - 1].offset + 1;
            bus_messages_free(m, n);
        }
    }
    return a;
}

static size_t count_type(json_t *a, const char *type, const char *subject)
{
    size_t k = 0, i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        k += strcmp(json_string_value(json_object_get(v, "type")), type) == 0 &&
             (!subject || strcmp(json_string_value(json_object_get(v, "subject")), subject) == 0);
    }
    return k;
}

/* The ids, each once: true when no id appears twice. */
static bool ids_unique(json_t *a)
{
    size_t i, k;
    json_t *v, *w;
    json_array_foreach(a, i, v)
    {
        json_array_foreach(a, k, w)
        {
            if (k > i && json_equal(json_object_get(v, "id"), json_object_get(w, "id")))
                return false;
        }
    }
    return true;
}

static void shard_lifecycle_becomes_events(void **state)
{
    fix *f = *state;
    relay *r = start(f);
    regfix_add_active(&f->rf, "s1", 1, "sqlite:///tmp/s1.db"); /* create, 2 transitions */
    assert_int_equal(regfix_move(&f->rf, "s1", SHARD_READ_ONLY, 0), 0);
    errdetail e;
    tenant_pin pin;
    bool created;
    assert_int_equal(tenants_put(f->rf.reg, "biz1:loc1", "s1", 0, &pin, &created, &e), 0);
    assert_int_equal(tenants_delete(f->rf.reg, "biz1:loc1"), 0);
    caught_up(f, r);
    relay_stop(r);

    json_t *a = all_events(f);
    assert_int_equal(count_type(a, "citrus.shard.created", "s1"), 1);
    /* pending->initializing, initializing->active, active->read_only */
    assert_int_equal(count_type(a, "citrus.shard.state_changed", "s1"), 3);
    assert_int_equal(count_type(a, "citrus.tenant.registered", "biz1:loc1"), 1);
    assert_int_equal(count_type(a, "citrus.tenant.removed", "biz1:loc1"), 1);
    assert_true(ids_unique(a));
    size_t i;
    json_t *v;
    int64_t last_epoch = 0;
    json_array_foreach(a, i, v)
    {
        const char *type = json_string_value(json_object_get(v, "type"));
        json_t *data = json_object_get(v, "data");
        int64_t rev = json_integer_value(json_object_get(v, "citrusrevision"));
        char want_prefix[64];
        snprintf(want_prefix, sizeof(want_prefix), "sm-%lld-", (long long)rev);
        assert_true(rev > 0);
        assert_int_equal(json_integer_value(json_object_get(data, "revision")), rev);
        assert_memory_equal(json_string_value(json_object_get(v, "id")), want_prefix,
                            strlen(want_prefix));
        assert_string_equal(json_string_value(json_object_get(v, "source")), RELAY_EVENT_SOURCE);
        /* no credential in any event */
        char *text = json_dumps(v, 0);
        assert_null(strstr(text, "sqlite:///tmp/s1.db"));
        free(text);
        if (strcmp(type, "citrus.shard.state_changed") == 0) {
            /* one key, one partition: the transitions in order */
            int64_t epoch = json_integer_value(json_object_get(data, "epoch"));
            assert_true(epoch > last_epoch);
            last_epoch = epoch;
            assert_string_equal(json_string_value(json_object_get(v, "_key")), "shard/s1");
        }
        if (strcmp(type, "citrus.tenant.registered") == 0)
            assert_string_equal(json_string_value(json_object_get(data, "shardId")), "s1");
    }
    json_decref(a);
}

/* A stopped relay records the checkpoint; a new one publishes only what
 * came after it. */
static void restart_resumes_at_the_checkpoint(void **state)
{
    fix *f = *state;
    relay *r = start(f);
    regfix_add_active(&f->rf, "s1", 1, "sqlite:///tmp/s1.db");
    caught_up(f, r);
    relay_stop(r);
    json_t *a = all_events(f);
    size_t before = json_array_size(a);
    json_decref(a);
    assert_int_equal(before, 3);

    assert_int_equal(regfix_move(&f->rf, "s1", SHARD_DRAINING, 0), 0);
    r = start(f);
    caught_up(f, r);
    relay_stop(r);
    a = all_events(f);
    assert_int_equal(json_array_size(a), before + 1);
    assert_int_equal(count_type(a, "citrus.shard.state_changed", "s1"), 3);
    assert_true(ids_unique(a));
    json_decref(a);
}

/* A crash after publishing but before the checkpoint: the next relay
 * finds those events on the topic and does not publish them again; what
 * came after is published, nothing is invented or lost. */
static void crash_before_the_checkpoint_publishes_no_duplicate(void **state)
{
    fix *f = *state;
    relay *r = start(f);
    regfix_add_active(&f->rf, "s1", 1, "sqlite:///tmp/s1.db");
    caught_up(f, r);
    relay_stop(r); /* checkpoint: 3 events */
    r = start(f);
    assert_int_equal(regfix_move(&f->rf, "s1", SHARD_READ_ONLY, 0), 0);
    assert_int_equal(regfix_move(&f->rf, "s1", SHARD_ACTIVE, 0), 0);
    caught_up(f, r);
    relay_abandon(r); /* published, no checkpoint */
    json_t *first = all_events(f);
    assert_int_equal(json_array_size(first), 5);

    r = start(f);
    caught_up(f, r);
    assert_int_equal(regfix_move(&f->rf, "s1", SHARD_DRAINING, 0), 0);
    caught_up(f, r);
    relay_stop(r);
    json_t *a = all_events(f);
    assert_int_equal(json_array_size(a), 6); /* the five once, and the new one */
    assert_true(ids_unique(a));
    assert_int_equal(count_type(a, "citrus.shard.state_changed", "s1"), 5);
    /* each of the first five still there, once, unchanged */
    size_t i, k;
    json_t *v, *w;
    json_array_foreach(first, i, v)
    {
        size_t found = 0;
        json_array_foreach(a, k, w)
        {
            found += json_equal(v, w);
        }
        assert_int_equal(found, 1);
    }
    json_decref(first);
    json_decref(a);
}

/* Other publishers' events after the relay's (the topic is shared): the
 * tail is read back across several chunks to the relay's events, and
 * those are still not published twice. */
static void crash_then_other_events_still_no_duplicate(void **state)
{
    fix *f = *state;
    relay *r = start(f);
    regfix_add_active(&f->rf, "s1", 1, "sqlite:///tmp/s1.db");
    assert_int_equal(regfix_move(&f->rf, "s1", SHARD_READ_ONLY, 0), 0);
    caught_up(f, r);
    relay_abandon(r); /* 4 events, no checkpoint */
    errdetail e;
    for (int i = 0; i < 1500; i++) {
        char key[32], text[160];
        snprintf(key, sizeof(key), "other/%d", i % 7);
        snprintf(text, sizeof(text),
                 "{\"specversion\":\"1.0\",\"id\":\"o-%d\",\"type\":\"x\",\"source\":\"/tests\"}",
                 i);
        assert_int_equal(
            bus_publish(f->b, TOPIC, key, strlen(key), text, strlen(text), NULL, NULL, &e), 0);
    }
    r = start(f);
    caught_up(f, r);
    relay_stop(r);
    json_t *a = all_events(f);
    assert_int_equal(count_type(a, "citrus.shard.state_changed", "s1"), 3);
    assert_int_equal(count_type(a, "citrus.shard.created", "s1"), 1);
    assert_true(ids_unique(a));
    json_decref(a);
}

/* ---- a bus whose publishes fail on demand ---- */

typedef struct fbus {
    bus base; /* first: the relay sees a bus */
    bus *inner;
    int ok_left; /* publishes that succeed before the failures start; -1: all */
    int fail;    /* publishes that then fail; -1: every one */
} fbus;

static int f_publish(bus *b, const char *topic, const void *key, size_t key_len, const void *value,
                     size_t value_len, int *partition, int64_t *offset, errdetail *e)
{
    fbus *fb = (fbus *)b;
    if (fb->ok_left == 0 && fb->fail != 0) {
        if (fb->fail > 0)
            fb->fail--;
        return errdetail_set(e, CITRUS_EUNAVAILABLE, "injected publish failure");
    }
    if (fb->ok_left > 0)
        fb->ok_left--;
    return bus_publish(fb->inner, topic, key, key_len, value, value_len, partition, offset, e);
}

static int f_topics_list(bus *b, bus_topic_entry **out, size_t *n, errdetail *e)
{
    return bus_topics_list(((fbus *)b)->inner, out, n, e);
}

static int f_read(bus *b, const char *topic, int partition, int64_t from, size_t limit,
                  bus_message **out, size_t *n, errdetail *e)
{
    return bus_read(((fbus *)b)->inner, topic, partition, from, limit, out, n, e);
}

static const bus_ops fbus_ops = {
    .name = "failing", .publish = f_publish, .read = f_read, .topics_list = f_topics_list};

static void fbus_init(fbus *fb, bus *inner, int ok_left, int fail)
{
    *fb = (fbus){.base = {.ops = &fbus_ops, .cfg = inner->cfg},
                 .inner = inner,
                 .ok_left = ok_left,
                 .fail = fail};
}

/* One revision that changes six tenant pins: six events, on several
 * partitions (one key each). */
static int64_t six_pins(fix *f)
{
    regfix_add_active(&f->rf, "s1", 1, "sqlite:///tmp/s1.db");
    txb t;
    txb_init(&t);
    for (int i = 0; i < 6; i++) {
        char key[64];
        snprintf(key, sizeof(key), REG_TENANTS "biz:%d", i);
        txb_put_json(&t, key, json_pack("{s:s}", "shard_id", "s1"));
    }
    bool ok = false;
    int64_t rev = 0;
    assert_int_equal(txb_commit(&t, f->rf.d.st, &ok, &rev), 0);
    txb_free(&t);
    assert_true(ok);
    return rev;
}

static size_t count_revision(json_t *a, int64_t rev)
{
    size_t k = 0, i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        k += json_integer_value(json_object_get(v, "citrusrevision")) == rev;
    }
    return k;
}

/* Waits (a liveness bound) until the topic holds n events. */
static json_t *events_at_least(fix *f, size_t n)
{
    for (int i = 0; i < 1000; i++) {
        json_t *a = all_events(f);
        if (json_array_size(a) >= n)
            return a;
        json_decref(a);
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    fail_msg("the topic never held %zu events", n);
    return NULL;
}

/* A crash half way through one revision whose events span partitions:
 * the next relay publishes only the events of it that are missing. */
static void crash_mid_revision_publishes_only_the_missing(void **state)
{
    fix *f = *state;
    fbus fb;
    fbus_init(&fb, f->b, 3 + 3, -1); /* the shard's 3 events, then 3 of the 6 pins */
    relay_options o = {
        .st = f->rf.d.st, .b = &fb.base, .topic = TOPIC, .checkpoint_every_ms = 3600000};
    relay *r = NULL;
    assert_int_equal(relay_start(&o, &r), 0);
    int64_t rev = six_pins(f);
    json_t *a = events_at_least(f, 6);
    relay_abandon(r);
    assert_int_equal(count_revision(a, rev), 3);
    json_decref(a);

    r = start(f);
    caught_up(f, r);
    relay_stop(r);
    a = all_events(f);
    assert_int_equal(json_array_size(a), 3 + 6);
    assert_true(ids_unique(a));
    assert_int_equal(count_revision(a, rev), 6);
    assert_int_equal(count_type(a, "citrus.tenant.registered", NULL), 6);
    /* sm-<rev>-0 .. sm-<rev>-5, each once, on more than one partition */
    json_t *parts = json_object();
    for (int n = 0; n < 6; n++) {
        char id[64];
        snprintf(id, sizeof(id), "sm-%lld-%d", (long long)rev, n);
        size_t i, found = 0;
        json_t *v;
        json_array_foreach(a, i, v)
        {
            if (strcmp(json_string_value(json_object_get(v, "id")), id) == 0) {
                found++;
                json_object_set(parts, json_string_value(json_object_get(v, "_key")), json_true());
            }
        }
        assert_int_equal(found, 1);
    }
    json_decref(parts);
    json_decref(a);
}

/* A publish that fails half way through a revision (no crash): the relay
 * opens the watch again and publishes only the rest of it. */
static void failed_publish_retries_only_the_missing(void **state)
{
    fix *f = *state;
    fbus fb;
    fbus_init(&fb, f->b, 3 + 2, 1); /* one failure after 2 of the 6 pins */
    relay_options o = {
        .st = f->rf.d.st, .b = &fb.base, .topic = TOPIC, .checkpoint_every_ms = 3600000};
    relay *r = NULL;
    assert_int_equal(relay_start(&o, &r), 0);
    int64_t rev = six_pins(f);
    caught_up(f, r);
    relay_stop(r);
    assert_int_equal(fb.fail, 0); /* the failure happened */
    json_t *a = all_events(f);
    assert_int_equal(json_array_size(a), 3 + 6);
    assert_true(ids_unique(a));
    assert_int_equal(count_revision(a, rev), 6);
    json_decref(a);
}

/* An event on the topic with a relay id but other content (another
 * catalog's, or forged through the publishing route) does not count as
 * published: the relay publishes its own. */
static void a_foreign_event_with_the_id_is_not_taken_as_published(void **state)
{
    fix *f = *state;
    regfix_add_active(&f->rf, "s1", 1, "sqlite:///tmp/s1.db");
    int64_t rev = store_revision(f->rf.d.st);
    char text[512];
    snprintf(text, sizeof(text),
             "{\"specversion\":\"1.0\",\"id\":\"sm-%lld-0\",\"type\":\"citrus.shard.deleted\","
             "\"source\":\"%s\",\"subject\":\"other\",\"data\":{}}",
             (long long)rev, RELAY_EVENT_SOURCE);
    errdetail e;
    assert_int_equal(bus_publish(f->b, TOPIC, "shard/s1", 8, text, strlen(text), NULL, NULL, &e),
                     0);
    relay *r = start(f);
    caught_up(f, r);
    relay_stop(r);
    json_t *a = all_events(f);
    assert_int_equal(count_type(a, "citrus.shard.state_changed", "s1"), 2);
    assert_int_equal(count_type(a, "citrus.shard.created", "s1"), 1);
    json_decref(a);
}

static int set_weight(shard *s, void *ctx, errdetail *e)
{
    (void)ctx;
    (void)e;
    s->weight = 2;
    s->epoch++;
    return 0;
}

/* A change that is no transition (weight) is citrus.shard.updated; a
 * deleted shard is citrus.shard.deleted. */
static void updates_and_deletes(void **state)
{
    fix *f = *state;
    regfix_add_active(&f->rf, "s2", 1, "sqlite:///tmp/s2.db");
    relay *r = start(f); /* from revision 1: the history before the start too */
    caught_up(f, r);
    reg_result res;
    errdetail e;
    assert_int_equal(
        registry_shard_modify(f->rf.reg, "s2", set_weight, NULL, 0, NULL, NULL, &res, &e), 0);
    reg_result_clear(&res);
    assert_int_equal(regfix_move(&f->rf, "s2", SHARD_DRAINING, 0), 0);
    assert_int_equal(regfix_move(&f->rf, "s2", SHARD_DRAINED, 0), 0);
    assert_int_equal(regfix_move(&f->rf, "s2", SHARD_RETIRED, 0), 0);
    assert_int_equal(registry_shard_delete(f->rf.reg, "s2", 0, &res, &e), 0);
    reg_result_clear(&res);
    caught_up(f, r);
    relay_stop(r);
    json_t *a = all_events(f);
    assert_int_equal(count_type(a, "citrus.shard.created", "s2"), 1);
    assert_int_equal(count_type(a, "citrus.shard.state_changed", "s2"), 5);
    assert_int_equal(count_type(a, "citrus.shard.deleted", "s2"), 1);
    assert_int_equal(count_type(a, "citrus.shard.updated", "s2"), 1);
    assert_true(ids_unique(a));
    json_decref(a);
}

static void bad_options(void **state)
{
    fix *f = *state;
    relay *r = NULL;
    relay_options o = {.st = f->rf.d.st, .b = f->b};
    assert_int_equal(relay_start(&o, &r), CITRUS_EINVAL);
    assert_null(r);
    relay_stop(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(shard_lifecycle_becomes_events, setup, teardown),
        cmocka_unit_test_setup_teardown(restart_resumes_at_the_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(crash_before_the_checkpoint_publishes_no_duplicate, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(crash_then_other_events_still_no_duplicate, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(crash_mid_revision_publishes_only_the_missing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(failed_publish_retries_only_the_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(a_foreign_event_with_the_id_is_not_taken_as_published,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(updates_and_deletes, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_options, setup, teardown),
    };
    /* The tail read on Kafka (librdkafka's mock cluster): its reads go
     * through bus_topics_list's watermarks and the group-less consumer. */
#define K(fn) cmocka_unit_test_setup_teardown(fn, setup_kafka, teardown)
    const struct CMUnitTest kafka[] = {
        K(restart_resumes_at_the_checkpoint),
        K(crash_before_the_checkpoint_publishes_no_duplicate),
        K(crash_then_other_events_still_no_duplicate),
        K(crash_mid_revision_publishes_only_the_missing),
        K(failed_publish_retries_only_the_missing),
        K(a_foreign_event_with_the_id_is_not_taken_as_published),
    };
#undef K
    int failed = cmocka_run_group_tests_name("relay(embedded)", tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("relay(kafka)", kafka, NULL, NULL);
    return failed ? 1 : 0;
}
