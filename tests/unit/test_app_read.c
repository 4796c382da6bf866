/* Unit tests for api/app.c: which source the registry's reads come from
 * (the node's copy or the store), and that a node's reads never go back to
 * a revision older than one it has already answered at. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/app.h"
#include "catalog/cache.h"
#include "support_sqlite.h"

typedef struct fixture {
    sqlite_dir d;
    store *st;
    cache *c;
    app a;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    sqlite_dir_open(&f->d, "app", 100);
    f->st = f->d.st;
    cache_options co = {.st = f->st, .check_interval_ms = 20};
    assert_int_equal(cache_start(&co, &f->c), 0);
    f->a.st = f->st;
    f->a.cache = f->c;
    f->a.max_staleness_ms = 60000;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cache_stop(f->c);
    sqlite_dir_close(&f->d);
    free(f);
    return 0;
}

/* Waits until the copy has been confirmed current (its staleness known). */
static void wait_copy(fixture *f, int64_t rev)
{
    assert_int_equal(cache_wait(f->c, rev, 5000), 0);
    for (int i = 0; i < 500 && cache_staleness_ms(f->c) < 0; i++)
        usleep(10000);
    assert_true(cache_staleness_ms(f->c) >= 0);
}

static void get(fixture *f, const char *key, const char *want, int64_t *rev)
{
    kv_range_req q = {.key = key};
    kv_range_res res;
    assert_int_equal(app_catalog_read(&f->a, &q, &res), 0);
    assert_single_value(&res, want);
    *rev = res.revision;
    kv_range_res_free(&res);
}

/* A read the copy cannot serve goes to the store, and the revision it saw
 * becomes this node's floor: the copy serves the next read only once it
 * holds that revision. Without the floor, a request that read a shard from
 * the store and then its ring from an older copy saw the shard active with
 * no tokens. */
static void a_store_read_raises_the_floor(void **state)
{
    fixture *f = *state;
    int64_t r1 = sqlite_dir_put(f->st, "k", "one");
    wait_copy(f, r1);
    int64_t rev;
    get(f, "k", "one", &rev);
    assert_true(rev >= r1);
    assert_int_equal(atomic_load(&f->a.acked_rev), 0); /* the copy answered */

    f->a.max_staleness_ms = -1; /* no copy is fresh enough: the store answers */
    int64_t r2 = sqlite_dir_put(f->st, "k", "two");
    get(f, "k", "two", &rev);
    assert_int_equal(rev, r2);
    assert_int_equal(atomic_load(&f->a.acked_rev), r2);

    /* the copy may serve again, but never below r2 */
    f->a.max_staleness_ms = 60000;
    for (int i = 0; i < 50; i++) {
        get(f, "k", "two", &rev);
        assert_true(rev >= r2);
    }
    /* once it holds r2, the copy answers again (at its own revision) */
    assert_int_equal(cache_wait(f->c, r2, 5000), 0);
    assert_int_equal(app_catalog_revision(&f->a), cache_revision(f->c));
}

/* The copy answers at once when it holds everything the node has seen. */
static void the_copy_serves_when_current(void **state)
{
    fixture *f = *state;
    int64_t r1 = sqlite_dir_put(f->st, "k", "one");
    app_note_write(&f->a, r1);
    wait_copy(f, r1);
    int64_t rev;
    get(f, "k", "one", &rev);
    assert_true(rev >= r1);
    assert_int_equal(app_catalog_revision(&f->a), cache_revision(f->c));
    /* a floor above the copy sends reads to the store */
    app_note_write(&f->a, r1 + 1000);
    assert_int_equal(app_catalog_revision(&f->a), -1);
    get(f, "k", "one", &rev);
    assert_int_equal(atomic_load(&f->a.acked_rev), r1 + 1000); /* never lowered */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_store_read_raises_the_floor, setup, teardown),
        cmocka_unit_test_setup_teardown(the_copy_serves_when_current, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
