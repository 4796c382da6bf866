/* Unit tests for catalog/cache.c (the informer) over the embedded store:
 * it follows the store, and its staleness accounting runs on a test clock
 * (rounds driven by cache_run_once, no sleeps). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "catalog/cache.h"
#include "support_sqlite.h"
#include "citrus/errors.h"

typedef struct fixture {
    sqlite_dir d;
    store *st;
    cache *c;
    sysclock *clk; /* the copy's, in the tests that drive it */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    sqlite_dir_open(&f->d, "cache", 100);
    f->st = f->d.st;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cache_stop(f->c);
    clock_test_free(f->clk);
    sqlite_dir_close(&f->d);
    free(f);
    return 0;
}

static void start(fixture *f)
{
    cache_options o = {.st = f->st, .check_interval_ms = 20};
    assert_int_equal(cache_start(&o, &f->c), 0);
}

static void assert_get(cache *c, const char *key, const char *want)
{
    kv_range_req req = {.key = key};
    kv_range_res r;
    assert_int_equal(cache_range(c, &req, &r, NULL), 0);
    assert_single_value(&r, want);
    kv_range_res_free(&r);
}

static void snapshot_then_changes(void **state)
{
    fixture *f = *state;
    sqlite_dir_put(f->st, "a/1", "one");
    sqlite_dir_put(f->st, "a/2", "two");
    start(f);
    int64_t r3 = sqlite_dir_put(f->st, "a/3", "three");
    assert_int_equal(cache_wait(f->c, r3, 5000), 0);
    assert_get(f->c, "a/1", "one");
    assert_get(f->c, "a/3", "three");
    int64_t del = 0, rd = 0;
    assert_int_equal(store_delete(f->st, "a/1", false, -1, &del, &rd, NULL), 0);
    int64_t r4 = sqlite_dir_put(f->st, "a/2", "TWO");
    assert_int_equal(cache_wait(f->c, r4, 5000), 0);
    assert_get(f->c, "a/1", NULL);
    assert_get(f->c, "a/2", "TWO");
    assert_int_equal(cache_revision(f->c), r4);
    /* ranges behave as the store's */
    for (int i = 0; i < 30; i++) {
        char k[16];
        snprintf(k, sizeof(k), "p/%02d", i);
        sqlite_dir_put(f->st, k, "v");
    }
    int64_t last = sqlite_dir_put(f->st, "q", "x");
    assert_int_equal(cache_wait(f->c, last, 5000), 0);
    kv_range_req req = {.key = "p/", .prefix = true, .limit = 10, .after = "p/04"};
    kv_range_res mine, theirs;
    assert_int_equal(cache_range(f->c, &req, &mine, NULL), 0);
    assert_int_equal(store_range(f->st, &req, &theirs), 0);
    assert_int_equal(mine.count, 10);
    assert_true(mine.more == theirs.more);
    for (size_t i = 0; i < mine.count; i++) {
        assert_string_equal(mine.items[i].key, theirs.items[i].key);
        assert_int_equal(mine.items[i].mod_revision, theirs.items[i].mod_revision);
        assert_int_equal(mine.items[i].version, theirs.items[i].version);
    }
    kv_range_res_free(&mine);
    kv_range_res_free(&theirs);
    /* count_only counts as the store does, without items */
    kv_range_req counts[] = {
        {.key = "p/", .prefix = true},
        {.key = "p/", .prefix = true, .after = "p/04", .limit = 3},
        {.key = "p/2", .prefix = true},
        {.key = "", .prefix = true},
        {.key = "nope/", .prefix = true},
        {.key = "p/07"},
        {.key = "p/99"},
    };
    size_t want[] = {30, 25, 10, 33, 0, 1, 0};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        counts[i].count_only = true;
        assert_int_equal(cache_range(f->c, &counts[i], &mine, NULL), 0);
        assert_int_equal(store_range(f->st, &counts[i], &theirs), 0);
        assert_int_equal(mine.count, want[i]);
        assert_int_equal(theirs.count, want[i]);
        assert_null(mine.items);
        kv_range_res_free(&mine);
        kv_range_res_free(&theirs);
    }
}

/* The copy was current at the time of a check once it has applied the
 * revision the store gave then; staleness is the clock's distance from
 * the latest such time, and the status is trusted only while young. */
static void staleness_follows_the_clock(void **state)
{
    fixture *f = *state;
    f->clk = clock_test_new(1000, 1000);
    cache_options o = {.st = f->st, .clock = f->clk};
    assert_int_equal(cache_new(&o, &f->c), 0);
    store_status st;
    int64_t age;
    assert_int_equal(cache_staleness_ms(f->c), -1); /* never confirmed */
    assert_int_equal(cache_status(f->c, &st, &age), CITRUS_EUNAVAILABLE);
    assert_false(cache_catalog_up(f->c, 1000));

    cache_run_once(f->c); /* loads, then checks: the load holds the store's revision */
    assert_int_equal(cache_staleness_ms(f->c), 0);
    clock_test_advance(f->clk, 300);
    assert_int_equal(cache_staleness_ms(f->c), 300);
    assert_int_equal(cache_status(f->c, &st, &age), 0);
    assert_int_equal(age, 300);
    assert_true(st.quorum && st.writable);
    assert_true(cache_catalog_up(f->c, 1000));

    /* a change applied without a check proves nothing new */
    int64_t r = sqlite_dir_put(f->st, "k", "v");
    assert_int_equal(cache_wait(f->c, r, 5000), 0);
    clock_test_advance(f->clk, 200);
    assert_int_equal(cache_staleness_ms(f->c), 500);
    /* the next check does: current at its time */
    cache_run_once(f->c);
    assert_int_equal(cache_staleness_ms(f->c), 0);
    assert_int_equal(cache_revision(f->c), r);

    /* no check answered for longer than max_age: not known to be up */
    clock_test_advance(f->clk, 1000);
    assert_true(cache_catalog_up(f->c, 1000));
    clock_test_advance(f->clk, 1);
    assert_false(cache_catalog_up(f->c, 1000));
    assert_int_equal(cache_staleness_ms(f->c), 1001);
    assert_int_equal(cache_wait(f->c, r + 1000, 50), CITRUS_ETIMEOUT);
}

static void keeps_up_with_a_burst(void **state)
{
    fixture *f = *state;
    start(f);
    int64_t r = sqlite_dir_put(f->st, "x", "0");
    assert_int_equal(cache_wait(f->c, r, 5000), 0);
    /* a burst the copy keeps up with, then everything still matches */
    for (int i = 0; i < 500; i++) {
        char v[16];
        snprintf(v, sizeof(v), "%d", i);
        r = sqlite_dir_put(f->st, i % 2 ? "x" : "y", v);
    }
    assert_int_equal(cache_wait(f->c, r, 10000), 0);
    assert_get(f->c, "x", "499");
    assert_get(f->c, "y", "498");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(snapshot_then_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(staleness_follows_the_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(keeps_up_with_a_burst, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
