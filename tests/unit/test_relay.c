/* tests/unit/test_relay.c — the lifecycle relay: every shard and tenant
 * change in the catalog becomes events on the lifecycle topic, with ids
 * from the catalog revision; a restart resumes at the checkpoint, and a
 * crash before the checkpoint publishes again with the same ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/bus_sqlite.h"
#include "citrus/errors.h"
#include "registry/tenants.h"
#include "support_registry.h"
#include "workers/relay.h"

#define TOPIC "sm.events"

typedef struct fix {
    regfix rf;
    char bus_path[160];
    bus *b;
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

static int teardown(void **state)
{
    fix *f = *state;
    bus_close(f->b);
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
        bus_message *m = NULL;
        size_t n = 0;
        errdetail e;
        int rc = bus_read(f->b, TOPIC, p, 0, 1000, &m, &n, &e);
        if (rc == CITRUS_EINVAL)
            continue; /* nothing in it yet */
        assert_int_equal(rc, 0);
        for (size_t i = 0; i < n; i++) {
            json_t *j = json_loadb((const char *)m[i].value, m[i].value_len, 0, NULL);
            assert_non_null(j);
            json_object_set_new(j, "_key", json_stringn((const char *)m[i].key, m[i].key_len));
            json_array_append_new(a, j);
        }
        bus_messages_free(m, n);
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
 * publishes those changes again, with the ids they had, and nothing new
 * is invented or lost. */
static void crash_republishes_with_the_same_ids(void **state)
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
    relay_stop(r);
    json_t *a = all_events(f);
    assert_int_equal(json_array_size(a), 7); /* the two again */
    /* the same set of ids, each republished event equal to its first */
    size_t i, k;
    json_t *v, *w;
    json_array_foreach(a, i, v)
    {
        bool found = false;
        json_array_foreach(first, k, w)
        {
            if (json_equal(json_object_get(v, "id"), json_object_get(w, "id"))) {
                found = true;
                assert_true(json_equal(json_object_get(v, "data"), json_object_get(w, "data")));
                assert_true(json_equal(json_object_get(v, "type"), json_object_get(w, "type")));
            }
        }
        assert_true(found);
    }
    json_decref(first);
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
        cmocka_unit_test_setup_teardown(crash_republishes_with_the_same_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(updates_and_deletes, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_options, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
