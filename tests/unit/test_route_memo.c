/* Unit tests for router/route_memo.c: a route is answered only for the
 * revision it was kept at, a newer revision drops everything, an older put
 * is ignored, the key limit holds, and the shard's fields are copies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "router/route_memo.h"

static shard make_shard(const char *id, const char *dsn, const char *replica)
{
    shard s;
    shard_init(&s);
    snprintf(s.id, sizeof(s.id), "%s", id);
    s.state = SHARD_ACTIVE;
    s.dsn = strdup(dsn);
    if (replica) {
        s.replicas = calloc(1, sizeof(char *));
        s.replicas[0] = strdup(replica);
        s.nreplicas = 1;
    }
    return s;
}

static route_answer answer(const char *id, int64_t ring_version)
{
    route_answer ra = {.pinned = true, .token = 7, .ring_version = ring_version};
    snprintf(ra.shard_id, sizeof(ra.shard_id), "%s", id);
    return ra;
}

static void test_answers_only_its_revision(void **state)
{
    (void)state;
    route_memo *m = route_memo_new(0);
    assert_non_null(m);
    route_answer ra = answer("a", 3), got;
    shard s = make_shard("a", "sqlite:///a.db", "sqlite:///a-replica.db"), out;
    assert_false(route_memo_get(m, 10, "k", &got, &out));
    route_memo_put(m, 10, "k", &ra, &s);
    shard_clear(&s); /* the memo keeps copies */
    assert_true(route_memo_get(m, 10, "k", &got, &out));
    assert_string_equal(got.shard_id, "a");
    assert_true(got.pinned);
    assert_int_equal(got.ring_version, 3);
    assert_string_equal(out.id, "a");
    assert_int_equal(out.state, SHARD_ACTIVE);
    assert_string_equal(out.dsn, "sqlite:///a.db");
    assert_int_equal(out.nreplicas, 1);
    assert_string_equal(out.replicas[0], "sqlite:///a-replica.db");
    shard_clear(&out);
    assert_false(route_memo_get(m, 10, "other", &got, &out));
    assert_false(route_memo_get(m, 11, "k", &got, &out)); /* the catalog moved */
    assert_false(route_memo_get(m, 9, "k", &got, &out));
    route_memo_free(m);
}

static void test_newer_revision_drops_older_put_ignored(void **state)
{
    (void)state;
    route_memo *m = route_memo_new(0);
    route_answer a = answer("a", 1), b = answer("b", 2), got;
    shard sa = make_shard("a", "sqlite:///a.db", NULL),
          sb = make_shard("b", "sqlite:///b.db", NULL), out;
    route_memo_put(m, 5, "k1", &a, &sa);
    route_memo_put(m, 5, "k2", &a, &sa);
    assert_int_equal(route_memo_size(m), 2);
    route_memo_put(m, 6, "k1", &b, &sb);
    assert_int_equal(route_memo_size(m), 1);
    assert_true(route_memo_get(m, 6, "k1", &got, &out));
    assert_string_equal(out.dsn, "sqlite:///b.db");
    shard_clear(&out);
    route_memo_put(m, 5, "k2", &a, &sa); /* a slow reader of the old revision */
    assert_int_equal(route_memo_size(m), 1);
    assert_false(route_memo_get(m, 6, "k2", &got, &out));
    assert_false(route_memo_get(m, 5, "k2", &got, &out));
    shard_clear(&sa);
    shard_clear(&sb);
    route_memo_free(m);
}

static void test_key_limit(void **state)
{
    (void)state;
    route_memo *m = route_memo_new(100);
    route_answer a = answer("a", 1), got;
    shard sa = make_shard("a", "sqlite:///a.db", NULL), out;
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        route_memo_put(m, 1, key, &a, &sa);
        assert_true(route_memo_size(m) <= 100);
    }
    assert_true(route_memo_get(m, 1, "key-999", &got, &out)); /* the newest is held */
    shard_clear(&out);
    shard_clear(&sa);
    route_memo_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answers_only_its_revision),
        cmocka_unit_test(test_newer_revision_drops_older_put_ignored),
        cmocka_unit_test(test_key_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
