/* Unit tests for lib/snap.c: libcitrus's routing copy applies changes by
 * mod_revision (so events replayed from before a listing converge), builds
 * the ring as the server does, and publishes snapshots that share what did
 * not change and outlive the builder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "citrus/errors.h"
#include "lib/snap.h"

static void put(snap_builder *b, const char *key, const char *v, int64_t rev)
{
    assert_int_equal(snap_builder_apply(b, key, v, strlen(v), rev, false), 0);
}

static const char shard_a[] = "{\"id\":\"a\",\"state\":\"active\",\"dsn\":\"sqlite:///a.db\","
                              "\"replicas\":[\"sqlite:///a2.db\"],\"epoch\":1,"
                              "\"created_at\":\"2026-01-01T00:00:00.000Z\","
                              "\"updated_at\":\"2026-01-01T00:00:00.000Z\"}";

static void replay_converges_by_mod_revision(void **state)
{
    snap_builder b;
    snap_builder_init(&b);
    /* The listing saw the pin at revision 10 ... */
    put(&b, "citrus/tenants/t1", "{\"shard_id\":\"b\",\"token\":\"7\"}", 10);
    /* ... events from revision 5 on come again: older ones are skipped. */
    put(&b, "citrus/tenants/t1", "{\"shard_id\":\"a\"}", 6);
    assert_int_equal(snap_builder_apply(&b, "citrus/tenants/t1", NULL, 0, 8, true), 0);
    put(&b, "citrus/shards/a", shard_a, 9);
    put(&b, "app/other", "x", 11); /* not routing: ignored */
    snap *s = snap_builder_publish(&b, 11);
    assert_non_null(s);
    const snap_pin *p = snap_pin_find(s, "t1");
    assert_non_null(p);
    assert_string_equal(p->shard_id, "b");
    assert_int_equal(p->token, 7);
    assert_null(snap_pin_find(s, "t2"));
    const shard *a = snap_shard(s, "a");
    assert_non_null(a);
    assert_string_equal(a->replicas[0], "sqlite:///a2.db");
    assert_null(snap_shard(s, "b"));
    /* A newer delete removes it; the old snapshot keeps its view. */
    assert_int_equal(snap_builder_apply(&b, "citrus/tenants/t1", NULL, 0, 12, true), 0);
    snap *s2 = snap_builder_publish(&b, 12);
    assert_null(snap_pin_find(s2, "t1"));
    assert_non_null(snap_pin_find(s, "t1"));
    assert_ptr_equal(snap_shard(s2, "a"), a); /* shards unchanged: shared */
    snap_builder_clear(&b);
    assert_string_equal(snap_shard(s, "a")->id, "a"); /* outlives the builder */
    snap_unref(s);
    snap_unref(s2);
}

static void ring_from_meta_and_tokens(void **state)
{
    snap_builder b;
    snap_builder_init(&b);
    snap *empty = snap_builder_publish(&b, 1);
    assert_int_equal(ring_size(snap_ring_of(empty)), 0);
    assert_int_equal(empty->ring_version, 0);
    put(&b, "citrus/ring/tokens/a", "{\"tokens\":[\"100\",\"300\"]}", 2);
    put(&b, "citrus/ring/tokens/b", "{\"tokens\":[\"200\"]}", 3);
    put(&b, "citrus/ring/tokens/bad", "{\"tokens\":[\"x\"]}", 3);
    put(&b, "citrus/ring/meta", "{\"hash\":\"xxhash64\",\"vnodes\":2}", 4);
    snap *s = snap_builder_publish(&b, 4);
    const ring *rg = snap_ring_of(s);
    assert_int_equal(s->ring_version, 4);
    assert_int_equal(ring_size(rg), 3);
    assert_int_equal(ring_hash_fn(rg), CITRUS_HASH_XXH64);
    ring_hit hit;
    assert_int_equal(ring_lookup_hash(rg, 150, &hit), 0);
    assert_string_equal(hit.shard_id, "b");
    assert_int_equal(ring_lookup_hash(rg, 301, &hit), 0); /* wraps */
    assert_string_equal(hit.shard_id, "a");
    snap_unref(empty);
    snap_unref(s);
    snap_builder_clear(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(replay_converges_by_mod_revision),
        cmocka_unit_test(ring_from_meta_and_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
