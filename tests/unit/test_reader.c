/* tests/unit/test_reader.c — catalog/reader.c, the read policy: which reads
 * the node's copy answers (within the bound, holding the floor, or during
 * an outage) and which go to the store, on a test clock the test moves.
 *
 * The copy follows its own embedded store (the "replica"), which the test
 * keeps in step with the reader's store or holds back: so a copy behind
 * the store is a state the test sets, not a race it hopes to win. Rounds
 * of the copy (load, check) run when the test calls cache_run_once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "catalog/cache.h"
#include "catalog/reader.h"
#include "citrus/errors.h"
#include "support_sqlite.h"
#include "sys/clock.h"

#define BOUND_MS 100

typedef struct fixture {
    sqlite_dir main;    /* the reader's store */
    sqlite_dir replica; /* what the copy follows */
    sysclock *clk;
    cache *copy;
    reader *rd;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    sqlite_dir_open(&f->main, "reader", 100);
    sqlite_dir_open(&f->replica, "reader-replica", 100);
    f->clk = clock_test_new(1000, 1000);
    cache_options co = {.st = f->replica.st, .clock = f->clk};
    assert_int_equal(cache_new(&co, &f->copy), 0);
    reader_options ro = {.st = f->main.st, .copy = f->copy, .max_staleness_ms = BOUND_MS};
    f->rd = reader_new(&ro);
    assert_non_null(f->rd);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    reader_free(f->rd);
    cache_stop(f->copy);
    clock_test_free(f->clk);
    sqlite_dir_close(&f->replica);
    sqlite_dir_close(&f->main);
    free(f);
    return 0;
}

/* k=v in both stores (at the same revision); a loaded copy has applied
 * it (one not loaded yet gets it with its snapshot). */
static int64_t put_both(fixture *f, const char *v)
{
    int64_t rev = sqlite_dir_put(f->main.st, "k", v);
    assert_int_equal(sqlite_dir_put(f->replica.st, "k", v), rev);
    if (cache_revision(f->copy) > 0)
        assert_int_equal(cache_wait(f->copy, rev, 5000), 0);
    return rev;
}

/* A routing read of k: its value and revision, and whether it says cached. */
static void routing_get(fixture *f, const char *want, int64_t want_rev, bool want_cached)
{
    kv_range_req q = {.key = "k"};
    kv_range_res res;
    bool cached = !want_cached;
    assert_int_equal(reader_routing_read(f->rd, &q, &res, &cached), 0);
    assert_single_value(&res, want);
    assert_int_equal(res.revision, want_rev);
    assert_true(cached == want_cached);
    kv_range_res_free(&res);
}

/* A read at level: its outcome, and on success the value and revision. */
static int read_at(fixture *f, reader_level level, const char *want, int64_t want_rev,
                   reader_info *info)
{
    kv_range_req q = {.key = "k"};
    kv_range_res res;
    int rc = reader_read(f->rd, level, &q, &res, info);
    if (rc == 0) {
        assert_single_value(&res, want);
        assert_int_equal(res.revision, want_rev);
        kv_range_res_free(&res);
    }
    return rc;
}

static void levels_parse_and_name(void **state)
{
    (void)state;
    reader_level l;
    const reader_level all[] = {READER_STRONG, READER_BOUNDED, READER_ANY};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(reader_level_parse(reader_level_name(all[i]), &l), 0);
        assert_int_equal(l, all[i]);
    }
    assert_string_equal(reader_level_name(READER_BOUNDED), "bounded");
    assert_int_equal(reader_level_parse("Strong", &l), CITRUS_EINVAL);
    assert_int_equal(reader_level_parse("", &l), CITRUS_EINVAL);
}

/* Without a copy (the embedded store) every read is the store's. */
static void without_a_copy_the_store_answers(void **state)
{
    fixture *f = *state;
    reader_options ro = {.st = f->main.st, .max_staleness_ms = BOUND_MS};
    reader *rd = reader_new(&ro);
    int64_t rev = sqlite_dir_put(f->main.st, "k", "one");
    kv_range_req q = {.key = "k"};
    kv_range_res res;
    reader_info info;
    assert_int_equal(reader_read(rd, READER_ANY, &q, &res, &info), 0);
    assert_int_equal(info.level, READER_STRONG);
    assert_int_equal(info.staleness_ms, 0);
    assert_int_equal(res.revision, rev);
    kv_range_res_free(&res);
    bool cached = true;
    assert_int_equal(reader_routing_revision(rd, &cached), rev);
    assert_false(cached);
    assert_false(reader_blocks(rd, READER_STRONG));
    assert_false(reader_routing_blocks(rd));
    assert_false(reader_catalog_down(rd));
    assert_true(reader_fresh(rd));
    reader_free(rd);
}

/* Bounded reads come from the copy while its staleness is within the
 * bound, and are refused past it; "any" reads it whatever its age;
 * strong reads the store. */
static void bounded_reads_keep_to_the_bound(void **state)
{
    fixture *f = *state;
    reader_info info;
    assert_int_equal(read_at(f, READER_BOUNDED, NULL, 0, &info), CITRUS_ESTALE);
    assert_false(info.loaded); /* no snapshot yet */
    assert_int_equal(read_at(f, READER_ANY, NULL, 0, &info), CITRUS_ESTALE);

    int64_t r1 = put_both(f, "one");
    cache_run_once(f->copy); /* loads and is confirmed current now */
    assert_int_equal(read_at(f, READER_BOUNDED, "one", r1, &info), 0);
    assert_int_equal(info.level, READER_BOUNDED);
    assert_int_equal(info.staleness_ms, 0);
    clock_test_advance(f->clk, BOUND_MS);
    assert_int_equal(read_at(f, READER_BOUNDED, "one", r1, &info), 0);
    assert_int_equal(info.staleness_ms, BOUND_MS);
    assert_true(reader_fresh(f->rd));

    clock_test_advance(f->clk, 1); /* past the bound */
    assert_false(reader_fresh(f->rd));
    assert_int_equal(read_at(f, READER_BOUNDED, NULL, 0, &info), CITRUS_ESTALE);
    assert_true(info.loaded);
    assert_int_equal(info.staleness_ms, BOUND_MS + 1);
    assert_int_equal(info.bound_ms, BOUND_MS);
    assert_int_equal(read_at(f, READER_ANY, "one", r1, &info), 0);
    assert_int_equal(info.level, READER_ANY);
    assert_int_equal(info.staleness_ms, BOUND_MS + 1);
    assert_int_equal(read_at(f, READER_STRONG, "one", r1, &info), 0);
    assert_int_equal(info.level, READER_STRONG);
    assert_int_equal(info.staleness_ms, 0);
    assert_true(reader_blocks(f->rd, READER_STRONG)); /* the store is remote */
    assert_false(reader_blocks(f->rd, READER_BOUNDED));
    assert_false(reader_blocks(f->rd, READER_ANY));

    cache_run_once(f->copy); /* checked again: current now */
    assert_int_equal(read_at(f, READER_BOUNDED, "one", r1, &info), 0);
    assert_int_equal(info.staleness_ms, 0);
}

/* A read the copy cannot serve goes to the store, and the revision it saw
 * becomes this node's floor: the copy answers again only once it holds
 * it. Without the floor, a request that read a shard from the store and
 * then its ring from an older copy saw the shard active with no tokens. */
static void a_store_read_raises_the_floor(void **state)
{
    fixture *f = *state;
    int64_t r1 = put_both(f, "one");
    cache_run_once(f->copy);
    routing_get(f, "one", r1, false); /* the copy answers */
    bool cached;
    assert_int_equal(reader_routing_revision(f->rd, &cached), r1);
    assert_false(reader_routing_blocks(f->rd));

    int64_t r2 = sqlite_dir_put(f->main.st, "k", "two"); /* the replica is held back */
    clock_test_advance(f->clk, BOUND_MS + 1);            /* the copy is past the bound */
    assert_true(reader_routing_blocks(f->rd));
    assert_int_equal(reader_routing_revision(f->rd, NULL), -1);
    routing_get(f, "two", r2, false); /* from the store, at r2 */

    cache_run_once(f->copy); /* the copy is within the bound again, but at r1 < r2 */
    assert_int_equal(cache_staleness_ms(f->copy), 0);
    assert_true(reader_routing_blocks(f->rd));
    assert_int_equal(reader_routing_revision(f->rd, NULL), -1);
    routing_get(f, "two", r2, false); /* never back to r1 */
    assert_true(reader_blocks(f->rd, READER_BOUNDED));
    reader_info info;
    assert_int_equal(read_at(f, READER_BOUNDED, NULL, 0, &info), CITRUS_ESTALE);
    assert_int_equal(read_at(f, READER_ANY, "one", r1, &info), 0);
    assert_int_equal(info.level, READER_ANY); /* not this node's writes */

    /* once it holds r2, the copy answers again */
    assert_int_equal(sqlite_dir_put(f->replica.st, "k", "two"), r2);
    assert_int_equal(cache_wait(f->copy, r2, 5000), 0);
    assert_false(reader_routing_blocks(f->rd));
    assert_int_equal(reader_routing_revision(f->rd, NULL), r2);
    routing_get(f, "two", r2, false);
    assert_int_equal(read_at(f, READER_BOUNDED, "two", r2, &info), 0);
    assert_int_equal(info.level, READER_BOUNDED);
}

/* An acknowledged write raises the floor the same way, and never lowers
 * it. */
static void acknowledged_writes_raise_the_floor(void **state)
{
    fixture *f = *state;
    int64_t r1 = put_both(f, "one");
    cache_run_once(f->copy);
    reader_note_write(f->rd, r1);
    routing_get(f, "one", r1, false);
    reader_note_write(f->rd, r1 + 1); /* a write the copy has not seen */
    assert_int_equal(reader_routing_revision(f->rd, NULL), -1);
    assert_true(reader_blocks(f->rd, READER_BOUNDED));
    reader_note_write(f->rd, r1); /* lower: ignored */
    assert_true(reader_blocks(f->rd, READER_BOUNDED));
    assert_int_equal(put_both(f, "two"), r1 + 1);
    assert_false(reader_blocks(f->rd, READER_BOUNDED));
}

/* While the catalog is down (no check answered for over a second) routing
 * reads take the copy whatever its age, and say so; bounded reads do not. */
static void an_outage_serves_routing_from_the_copy(void **state)
{
    fixture *f = *state;
    int64_t r1 = put_both(f, "one");
    cache_run_once(f->copy);
    assert_false(reader_catalog_down(f->rd));
    routing_get(f, "one", r1, false);

    clock_test_advance(f->clk, 1001); /* no check for over a second */
    assert_true(reader_catalog_down(f->rd));
    assert_false(reader_routing_blocks(f->rd));
    routing_get(f, "one", r1, true);
    bool cached = false;
    assert_int_equal(reader_routing_revision(f->rd, &cached), r1);
    assert_true(cached);
    reader_info info;
    assert_int_equal(read_at(f, READER_BOUNDED, NULL, 0, &info), CITRUS_ESTALE);
    assert_int_equal(read_at(f, READER_ANY, "one", r1, &info), 0);

    cache_run_once(f->copy); /* the catalog answers again: live */
    assert_false(reader_catalog_down(f->rd));
    routing_get(f, "one", r1, false);
    assert_int_equal(reader_routing_revision(f->rd, &cached), r1);
    assert_false(cached);

    /* a copy behind the floor does not answer, outage or not */
    clock_test_advance(f->clk, 1001);
    reader_note_write(f->rd, r1 + 1);
    assert_int_equal(reader_routing_revision(f->rd, &cached), -1);
    assert_false(cached);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(levels_parse_and_name),
        cmocka_unit_test_setup_teardown(without_a_copy_the_store_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(bounded_reads_keep_to_the_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(a_store_read_raises_the_floor, setup, teardown),
        cmocka_unit_test_setup_teardown(acknowledged_writes_raise_the_floor, setup, teardown),
        cmocka_unit_test_setup_teardown(an_outage_serves_routing_from_the_copy, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
