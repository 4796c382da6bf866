/* Unit tests for core/hash.c and core/ring.c: hash and ring test vectors
 * (the same tables as docs/ring.md), wrap-around, ties, and the token
 * allocator (ring_choose_tokens): balance of rings grown one shard at a
 * time, key movement when shards come and go, weights, determinism, edge
 * cases; random tokens' balance for comparison.
 *
 * Where the reference values come from:
 *  - murmur3 "hello", "hello, world", "The quick brown fox jumps over the
 *    lazy dog.": the published vectors of the Go package spaolacci/murmur3
 *    (murmur_test.go, column h64_1 = the first 64-bit word of
 *    MurmurHash3_x64_128, seed 0).
 *  - murmur3 of the 48-byte libmurmurhash example file "almostempty": its
 *    published digest /usr/share/doc/libmurmurhash-dev/examples/
 *    almostempty.hash (third field = out[0] then out[1], as "%" PRIx64).
 *  - murmur3 "", "a", "tenant-42", "biz-1:loc-7", "s0#0"...: computed outside
 *    this code twice and agreeing: Austin Appleby's reference MurmurHash3.c
 *    (shipped in libmurmurhash-dev/examples, compiled on its own) and an
 *    independent pure-Python MurmurHash3_x64_128. "" = 0 and "a" =
 *    0x85555565f6597889 are also widely published.
 *  - xxhash64: `xxhsum -H1` (Debian package xxhash 0.8.1), printing the
 *    canonical big-endian hex of the 64-bit value, cross-checked with an
 *    independent pure-Python XXH64. "" = 0xef46db3751d8e999 and
 *    "abc" = 0x44bc2cf5ad770999 are the xxHash project's well-known values.
 *  - ring vectors (tokens, owners, lookups): a ~30-line Python model of
 *    docs/ring.md using those pure-Python hashes, not this C code. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "citrus/errors.h"
#include "core/hash.h"
#include "core/ring.h"

#define NKEYS 1000000 /* keys "tenant-<n>", n in [0, NKEYS) */
#define MAX_SHARDS 70

typedef struct hash_vec {
    const char *in;
    size_t len;
    uint64_t want;
} hash_vec;

#define S(s) s, sizeof(s) - 1

static void check_hashes(citrus_hash_fn fn, const hash_vec *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t got = citrus_hash(fn, v[i].in, v[i].len);
        if (got != v[i].want)
            print_error("%s(\"%s\") = %016llx, want %016llx\n", citrus_hash_name(fn), v[i].in,
                        (unsigned long long)got, (unsigned long long)v[i].want);
        assert_true(got == v[i].want);
    }
}

static void murmur3_vectors(void **state)
{
    static const hash_vec v[] = {
        {S(""), 0x0000000000000000ULL},
        {S("a"), 0x85555565f6597889ULL},
        {S("tenant-42"), 0xeb2c249caf8e8ee2ULL},
        {S("biz-1:loc-7"), 0xec2f251ea3345afdULL},
        {S("hello"), 0xcbd8a7b341bd9b02ULL},
        {S("hello, world"), 0x342fac623a5ebc8eULL},
        {S("The quick brown fox jumps over the lazy dog."), 0xcd99481f9ee902c9ULL},
        {S("This file is intentionally left (almost) empty.\n"), 0xa6618a2a2c5e59b8ULL},
        {S("s0#0"), 0x0c6599bd918e99f9ULL},
        {S("shard-00#255"), 0x4e2e9139501dc63aULL},
    };
    check_hashes(CITRUS_HASH_MURMUR3, v, sizeof v / sizeof v[0]);
}

static void xxhash64_vectors(void **state)
{
    static const hash_vec v[] = {
        {S(""), 0xef46db3751d8e999ULL},
        {S("a"), 0xd24ec4f1a98c6e5bULL},
        {S("abc"), 0x44bc2cf5ad770999ULL},
        {S("tenant-42"), 0xf9fbb9a903514f40ULL},
        {S("biz-1:loc-7"), 0x91485290b3604176ULL},
        {S("The quick brown fox jumps over the lazy dog"), 0x0b242d361fda71bcULL},
        {S("s0#0"), 0x39964ce0dbf37b22ULL},
        {S("shard-00#255"), 0xcb58f6b5cfd7a7acULL},
    };
    check_hashes(CITRUS_HASH_XXH64, v, sizeof v / sizeof v[0]);
}

static void hash_names(void **state)
{
    citrus_hash_fn fn = CITRUS_HASH_XXH64;
    assert_string_equal(citrus_hash_name(CITRUS_HASH_MURMUR3), "murmur3");
    assert_string_equal(citrus_hash_name(CITRUS_HASH_XXH64), "xxhash64");
    assert_int_equal(citrus_hash_parse("murmur3", &fn), 0);
    assert_int_equal(fn, CITRUS_HASH_MURMUR3);
    const char *xx[] = {"xxhash64", "xxhash", "xxh64"};
    for (size_t i = 0; i < 3; i++) {
        fn = CITRUS_HASH_MURMUR3;
        assert_int_equal(citrus_hash_parse(xx[i], &fn), 0);
        assert_int_equal(fn, CITRUS_HASH_XXH64);
    }
    const char *bad[] = {"", "murmur", "MURMUR3", "xxhash32", "murmur3 "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(citrus_hash_parse(bad[i], &fn), CITRUS_EINVAL);
    assert_int_equal(citrus_hash_parse(NULL, &fn), CITRUS_EINVAL);
}

/* ---- building rings of "shard-NN" (or any) ids ---- */

typedef struct test_ring {
    ring *r;
    size_t n;
    ring_owner owners[MAX_SHARDS];
    char ids[MAX_SHARDS][16];
    uint64_t *tokens[MAX_SHARDS];
} test_ring;

/* Shards fmt % i for i in [0, n) except skip (or -1), with the given
 * weights (NULL: all 1), V vnodes per unit of weight. */
static test_ring *make_ring(citrus_hash_fn fn, const char *fmt, size_t n, int skip,
                            const double *weights, size_t vnodes)
{
    test_ring *t = calloc(1, sizeof *t);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++) {
        if ((int)i == skip)
            continue;
        size_t k = t->n++;
        snprintf(t->ids[k], sizeof t->ids[k], fmt, (int)i);
        size_t nt = ring_vnodes_for_weight(vnodes, weights ? weights[i] : 1.0);
        t->tokens[k] = malloc(nt * sizeof(uint64_t));
        assert_non_null(t->tokens[k]);
        assert_int_equal(ring_vnode_tokens(fn, t->ids[k], 0, nt, t->tokens[k]), 0);
        t->owners[k] = (ring_owner){t->ids[k], t->tokens[k], nt};
    }
    assert_int_equal(ring_build(fn, t->owners, t->n, &t->r), 0);
    return t;
}

static void free_ring(test_ring *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->tokens[i]);
    ring_free(t->r);
    free(t);
}

/* ---- the fixed ring of docs/ring.md: s0..s3, 8 vnodes, murmur3 ---- */

static const struct {
    uint64_t token;
    const char *shard;
} small_ring[32] = {
    {0x0c6599bd918e99f9ULL, "s0"}, {0x0dbd0d6e290b04cfULL, "s1"}, {0x1af241e29d6dc55cULL, "s1"},
    {0x24c075cb8ad3d97cULL, "s3"}, {0x3c14f157d73934acULL, "s2"}, {0x41c4306b93a8181eULL, "s3"},
    {0x46cea97afecec5f5ULL, "s3"}, {0x47b65f9b8a7add66ULL, "s3"}, {0x5369bf58c6fa9b3fULL, "s3"},
    {0x554e65740bd08ac9ULL, "s2"}, {0x5c18398ff00ace38ULL, "s2"}, {0x65baf5fb4c5f28a9ULL, "s3"},
    {0x7f4c3a6fe39de98eULL, "s2"}, {0x80d6b1e9f6da6ba0ULL, "s1"}, {0x87a9664aa427858cULL, "s1"},
    {0x89c7d35a01bd1a2aULL, "s0"}, {0x980e1161322f40bbULL, "s2"}, {0x99d6672cedd884ffULL, "s3"},
    {0x9d8e2d40a467ba88ULL, "s2"}, {0xa09ddb5659582fbeULL, "s1"}, {0xa26d33735bdbdbc8ULL, "s3"},
    {0xa55d52ef8ed5429bULL, "s2"}, {0xb896c4bc51d89f35ULL, "s0"}, {0xc0c995f058c6a70bULL, "s0"},
    {0xccf8d78e50233f32ULL, "s0"}, {0xe72f9644b4e889e5ULL, "s0"}, {0xf17886f4efad3a20ULL, "s0"},
    {0xf18c3349e57face6ULL, "s1"}, {0xf2d4e8a5a12f2bb6ULL, "s1"}, {0xf394f13980d1e714ULL, "s2"},
    {0xfab61672afb9ed2dULL, "s1"}, {0xfe177afe51f499e7ULL, "s0"},
};

typedef struct lookup_vec {
    const char *key;
    uint64_t hash;
    size_t index;
    uint64_t token;
    const char *shard;
} lookup_vec;

static void check_lookups(const ring *r, const lookup_vec *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ring_hit hit;
        assert_int_equal(ring_lookup(r, v[i].key, strlen(v[i].key), &hit), 0);
        assert_true(hit.hash == v[i].hash);
        assert_int_equal(hit.index, v[i].index);
        assert_true(hit.token == v[i].token);
        assert_string_equal(hit.shard_id, v[i].shard);
    }
}

static void ring_vectors_murmur3(void **state)
{
    test_ring *t = make_ring(CITRUS_HASH_MURMUR3, "s%d", 4, -1, NULL, 8);
    assert_int_equal(ring_hash_fn(t->r), CITRUS_HASH_MURMUR3);
    assert_int_equal(ring_size(t->r), 32);
    for (size_t i = 0; i < 32; i++) {
        const char *id = NULL;
        assert_true(ring_token_at(t->r, i, &id) == small_ring[i].token);
        assert_string_equal(id, small_ring[i].shard);
    }
    static const lookup_vec v[] = {
        {"", 0x0000000000000000ULL, 0, 0x0c6599bd918e99f9ULL, "s0"},
        {"a", 0x85555565f6597889ULL, 14, 0x87a9664aa427858cULL, "s1"},
        {"tenant-42", 0xeb2c249caf8e8ee2ULL, 26, 0xf17886f4efad3a20ULL, "s0"},
        {"biz-1:loc-7", 0xec2f251ea3345afdULL, 26, 0xf17886f4efad3a20ULL, "s0"},
        {"hello", 0xcbd8a7b341bd9b02ULL, 24, 0xccf8d78e50233f32ULL, "s0"},
        {"tenant-0", 0xd7d478f56d5d882dULL, 25, 0xe72f9644b4e889e5ULL, "s0"},
        {"tenant-1", 0xf66d88afca3d298fULL, 30, 0xfab61672afb9ed2dULL, "s1"},
        {"tenant-7", 0x6af846da5be092a4ULL, 12, 0x7f4c3a6fe39de98eULL, "s2"},
        {"biz-100:loc-3", 0x905ff787686d5be1ULL, 16, 0x980e1161322f40bbULL, "s2"},
        {"caf\xc3\xa9", 0xa2e7c22a053364ddULL, 21, 0xa55d52ef8ed5429bULL, "s2"},
        /* above the largest token: wraps to index 0 */
        {"tenant-317", 0xff795512ce168122ULL, 0, 0x0c6599bd918e99f9ULL, "s0"},
    };
    check_lookups(t->r, v, sizeof v / sizeof v[0]);
    free_ring(t);
}

static void ring_vectors_xxhash64(void **state)
{
    test_ring *t = make_ring(CITRUS_HASH_XXH64, "s%d", 4, -1, NULL, 8);
    assert_int_equal(ring_hash_fn(t->r), CITRUS_HASH_XXH64);
    assert_int_equal(ring_size(t->r), 32);
    assert_true(ring_token_at(t->r, 0, NULL) == 0x01f72daded142cdbULL);
    assert_true(ring_token_at(t->r, 31, NULL) == 0xfeae2eea4d31d28cULL);
    static const lookup_vec v[] = {
        {"tenant-42", 0xf9fbb9a903514f40ULL, 31, 0xfeae2eea4d31d28cULL, "s3"},
        {"biz-1:loc-7", 0x91485290b3604176ULL, 15, 0x9e31709761ad1c5bULL, "s2"},
        {"hello", 0x26c7827d889f6da3ULL, 5, 0x2f84f86a04b83456ULL, "s0"},
        {"tenant-122", 0xfee259a8cb61b94fULL, 0, 0x01f72daded142cdbULL, "s0"}, /* wraps */
    };
    check_lookups(t->r, v, sizeof v / sizeof v[0]);
    free_ring(t);
}

static void wrap_around(void **state)
{
    test_ring *t = make_ring(CITRUS_HASH_MURMUR3, "s%d", 4, -1, NULL, 8);
    size_t n = ring_size(t->r);
    uint64_t first = ring_token_at(t->r, 0, NULL), last = ring_token_at(t->r, n - 1, NULL);
    ring_hit hit;
    const uint64_t to_first[] = {0, first - 1, first, last + 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof to_first / sizeof to_first[0]; i++) {
        assert_int_equal(ring_lookup_hash(t->r, to_first[i], &hit), 0);
        assert_int_equal(hit.index, 0);
        assert_true(hit.token == first);
        assert_true(hit.hash == to_first[i]);
    }
    assert_int_equal(ring_lookup_hash(t->r, last, &hit), 0); /* ranges are (prev, token] */
    assert_int_equal(hit.index, n - 1);
    for (size_t i = 1; i < n; i++) {
        uint64_t tok = ring_token_at(t->r, i, NULL), prev = ring_token_at(t->r, i - 1, NULL);
        assert_true(prev < tok);
        assert_int_equal(ring_lookup_hash(t->r, tok, &hit), 0);
        assert_int_equal(hit.index, i);
        assert_int_equal(ring_lookup_hash(t->r, prev + 1, &hit), 0);
        assert_int_equal(hit.index, i);
    }
    free_ring(t);
}

/* The index of the first token >= h in the sorted ring, wrapping: the
 * definition, by linear scan. */
static size_t naive_lookup(const ring *r, uint64_t h)
{
    for (size_t i = 0; i < ring_size(r); i++)
        if (ring_token_at(r, i, NULL) >= h)
            return i;
    return 0;
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Rings of many sizes whose tokens include 0, UINT64_MAX and values on the
 * lookup's internal bucket boundaries (multiples of 2^40..2^63), queried at
 * every token, its neighbours and random hashes. */
static void matches_naive_search(void **state)
{
    const size_t sizes[] = {1, 2, 3, 5, 17, 100, 1000, 5000};
    uint64_t seed = 88172645463325252ULL;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        uint64_t *tok = malloc(n * sizeof *tok);
        assert_non_null(tok);
        for (size_t i = 0; i < n; i++) {
            uint64_t x = xorshift(&seed);
            switch (i % 4) {
            case 0:
                tok[i] = x;
                break;
            case 1:
                tok[i] = x & ~((UINT64_C(1) << (40 + x % 24)) - 1); /* on a boundary */
                break;
            case 2:
                tok[i] = i == 2 ? 0 : x;
                break;
            default:
                tok[i] = i == 3 ? UINT64_MAX : x >> (x % 64);
            }
        }
        const ring_owner o[] = {{"s", tok, n}};
        ring *r;
        assert_int_equal(ring_build(CITRUS_HASH_MURMUR3, o, 1, &r), 0);
        ring_hit hit;
        for (size_t i = 0; i < ring_size(r); i++) {
            uint64_t t = ring_token_at(r, i, NULL);
            const uint64_t q[] = {t - 1, t, t + 1};
            for (size_t j = 0; j < 3; j++) {
                assert_int_equal(ring_lookup_hash(r, q[j], &hit), 0);
                assert_int_equal(hit.index, naive_lookup(r, q[j]));
            }
        }
        for (size_t i = 0; i < 2000; i++) {
            uint64_t h = xorshift(&seed);
            assert_int_equal(ring_lookup_hash(r, h, &hit), 0);
            assert_int_equal(hit.index, naive_lookup(r, h));
        }
        ring_free(r);
        free(tok);
    }
}

/* ---- ties, errors, helpers ---- */

static void ties_smaller_id_wins(void **state)
{
    const uint64_t tb[] = {5, 100}, ta[] = {200, 5};
    const ring_owner ab[] = {{"b", tb, 2}, {"a", ta, 2}};
    const ring_owner ba[] = {{"a", ta, 2}, {"b", tb, 2}};
    const ring_owner *orders[] = {ab, ba};
    for (size_t o = 0; o < 2; o++) {
        ring *r;
        assert_int_equal(ring_build(CITRUS_HASH_MURMUR3, orders[o], 2, &r), 0);
        assert_int_equal(ring_size(r), 3); /* the loser's copy of 5 is dropped */
        const char *id;
        assert_true(ring_token_at(r, 0, &id) == 5);
        assert_string_equal(id, "a");
        ring_hit hit;
        assert_int_equal(ring_lookup_hash(r, 3, &hit), 0);
        assert_string_equal(hit.shard_id, "a");
        assert_int_equal(ring_lookup_hash(r, 6, &hit), 0);
        assert_string_equal(hit.shard_id, "b");
        double frac[2];
        ring_ownership(r, orders[o], 2, frac);
        /* a: (100, 200] and the wrap range up to 5; b: (5, 100] */
        double b = 95.0 / 18446744073709551616.0;
        assert_true(fabs(frac[o == 0 ? 0 : 1] - b) < 1e-25);
        assert_true(fabs(frac[o == 0 ? 1 : 0] - (1.0 - b)) < 1e-12);
        /* token counts by id, in any order; an unknown id holds none */
        const char *ids[] = {"b", "zz", "a"};
        size_t counts[3] = {9, 9, 9};
        ring_token_counts(r, ids, 3, counts);
        assert_int_equal(counts[0], 1); /* 100 */
        assert_int_equal(counts[1], 0);
        assert_int_equal(counts[2], 2); /* 5 and 200 */
        ring_free(r);
    }
}

static void empty_and_invalid(void **state)
{
    ring *r = NULL;
    ring_hit hit;
    assert_int_equal(ring_build(CITRUS_HASH_MURMUR3, NULL, 0, &r), 0);
    assert_int_equal(ring_size(r), 0);
    assert_int_equal(ring_lookup(r, "k", 1, &hit), CITRUS_ENOTFOUND);
    assert_int_equal(ring_lookup_hash(r, 42, &hit), CITRUS_ENOTFOUND);
    ring_free(r);

    const ring_owner no_tokens[] = {{"s0", NULL, 0}};
    assert_int_equal(ring_build(CITRUS_HASH_MURMUR3, no_tokens, 1, &r), 0);
    assert_int_equal(ring_lookup(r, "k", 1, &hit), CITRUS_ENOTFOUND);
    double f = -1;
    ring_ownership(r, no_tokens, 1, &f);
    assert_true(f == 0.0);
    ring_free(r);

    const uint64_t tok[] = {1};
    const ring_owner no_id[] = {{"s0", tok, 1}, {NULL, tok, 1}};
    r = NULL;
    assert_int_equal(ring_build(CITRUS_HASH_MURMUR3, no_id, 2, &r), CITRUS_EINVAL);
    assert_null(r);
    const ring_owner missing_tokens[] = {{"s0", NULL, 3}};
    assert_int_equal(ring_build(CITRUS_HASH_MURMUR3, missing_tokens, 1, &r), CITRUS_EINVAL);
    assert_int_equal(ring_build(CITRUS_HASH_MURMUR3, NULL, 1, &r), CITRUS_EINVAL);

    ring_owner *many = calloc(RING_MAX_OWNERS + 1, sizeof *many);
    assert_non_null(many);
    for (size_t i = 0; i <= RING_MAX_OWNERS; i++)
        many[i].shard_id = "s";
    assert_int_equal(ring_build(CITRUS_HASH_MURMUR3, many, RING_MAX_OWNERS + 1, &r),
                     CITRUS_ETOOMANY);
    free(many);
    uint64_t out[1];
    assert_int_equal(ring_vnode_tokens(CITRUS_HASH_MURMUR3, NULL, 0, 1, out), CITRUS_EINVAL);
}

static void single_token(void **state)
{
    const uint64_t tok[] = {1000};
    const ring_owner one[] = {{"only", tok, 1}};
    ring *r;
    assert_int_equal(ring_build(CITRUS_HASH_XXH64, one, 1, &r), 0);
    ring_hit hit;
    const uint64_t hs[] = {0, 999, 1000, 1001, UINT64_MAX};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(ring_lookup_hash(r, hs[i], &hit), 0);
        assert_string_equal(hit.shard_id, "only");
        assert_int_equal(hit.index, 0);
    }
    double f;
    ring_ownership(r, one, 1, &f);
    assert_true(f == 1.0);
    ring_free(r);
}

static void vnode_tokens(void **state)
{
    uint64_t out[3];
    assert_int_equal(ring_vnode_tokens(CITRUS_HASH_MURMUR3, "s0", 0, 2, out), 0);
    assert_true(out[0] == citrus_hash(CITRUS_HASH_MURMUR3, "s0#0", 4));
    assert_true(out[1] == citrus_hash(CITRUS_HASH_MURMUR3, "s0#1", 4));
    assert_int_equal(ring_vnode_tokens(CITRUS_HASH_XXH64, "s0", 9, 3, out), 0);
    assert_true(out[0] == citrus_hash(CITRUS_HASH_XXH64, "s0#9", 4));
    assert_true(out[1] == citrus_hash(CITRUS_HASH_XXH64, "s0#10", 5));
    assert_true(out[2] == citrus_hash(CITRUS_HASH_XXH64, "s0#11", 5));
    assert_int_equal(ring_vnode_tokens(CITRUS_HASH_MURMUR3, "s0", 1234567890, 1, out), 0);
    assert_true(out[0] == citrus_hash(CITRUS_HASH_MURMUR3, "s0#1234567890", 13));

    char id[400], name[420];
    memset(id, 'x', sizeof id - 1); /* longer than the stack buffer */
    id[sizeof id - 1] = '\0';
    assert_int_equal(ring_vnode_tokens(CITRUS_HASH_MURMUR3, id, 255, 1, out), 0);
    int n = snprintf(name, sizeof name, "%s#255", id);
    assert_true(out[0] == citrus_hash(CITRUS_HASH_MURMUR3, name, (size_t)n));
}

static void vnodes_for_weight(void **state)
{
    assert_int_equal(ring_vnodes_for_weight(256, 1.0), 256);
    assert_int_equal(ring_vnodes_for_weight(256, 2.0), 512);
    assert_int_equal(ring_vnodes_for_weight(256, 0.5), 128);
    assert_int_equal(ring_vnodes_for_weight(256, 0.1), 26); /* 25.6 */
    assert_int_equal(ring_vnodes_for_weight(256, 0.001), 1);
    assert_int_equal(ring_vnodes_for_weight(256, 0.0), 1);
    assert_int_equal(ring_vnodes_for_weight(256, -3.0), 1);
    assert_int_equal(ring_vnodes_for_weight(256, NAN), 1);
    assert_int_equal(ring_vnodes_for_weight(5, 0.5), 3); /* 2.5: half away from zero */
    assert_int_equal(ring_vnodes_for_weight(3, 0.5), 2); /* 1.5 */
}

/* ---- balance and movement, over NKEYS keys "tenant-<n>" ---- */

static size_t shard_number(const char *id)
{
    return (size_t)atoi(id + strlen("shard-"));
}

/* Keys per shard number of ring r. */
static void count_keys(const ring *r, size_t *count)
{
    char key[32];
    for (size_t i = 0; i < MAX_SHARDS; i++)
        count[i] = 0;
    for (int k = 0; k < NKEYS; k++) {
        int len = snprintf(key, sizeof key, "tenant-%d", k);
        ring_hit hit;
        assert_int_equal(ring_lookup(r, key, (size_t)len, &hit), 0);
        count[shard_number(hit.shard_id)]++;
    }
}

typedef struct spread {
    double space_max, space_min, keys_max, keys_min; /* relative to the mean */
} spread;

/* Max and min over the n owners of their share / (weight share), of the
 * hash space and of NKEYS keys (weights NULL: all 1). */
static spread measure(const ring *r, const ring_owner *owners, const double *w, size_t n)
{
    double frac[MAX_SHARDS], wsum = 0;
    size_t count[MAX_SHARDS];
    ring_ownership(r, owners, n, frac);
    count_keys(r, count);
    for (size_t i = 0; i < n; i++)
        wsum += w ? w[i] : 1.0;
    spread s = {0, INFINITY, 0, INFINITY};
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        double share = (w ? w[i] : 1.0) / wsum;
        double sp = frac[i] / share;
        double ke = (double)count[shard_number(owners[i].shard_id)] / NKEYS / share;
        s.space_max = fmax(s.space_max, sp);
        s.space_min = fmin(s.space_min, sp);
        s.keys_max = fmax(s.keys_max, ke);
        s.keys_min = fmin(s.keys_min, ke);
        sum += frac[i];
    }
    assert_true(fabs(sum - 1.0) < 1e-9);
    return s;
}

/* Random tokens, for comparison: every shard simply takes the first 256
 * candidates hash("shard-NN#<i>"), i in [0, 256) (what ring_choose_tokens
 * gives with candidates == count). Measured (deterministic), murmur3:
 *   shards  space max/mean (min/mean)   keys max/mean (min/mean), 1M keys
 *     16      1.0685 (0.8548)             1.0685 (0.8517)
 *     32      1.2086 (0.8809)             1.2062 (0.8800)
 *     64      1.1522 (0.8770)             1.1556 (0.8667)
 * 256 random tokens give each shard a share with a relative standard
 * deviation of about 1/sqrt(256) = 6%, so the largest of 32..64 shards is
 * expected 2-3 sigma above the mean: random tokens cannot promise 1.15,
 * which is why tokens are chosen (allocated_balance). Only the recorded
 * values are asserted, so any change to hashing or to the candidate rule is
 * noticed. */
static void random_tokens_balance(void **state)
{
    const struct {
        size_t n;
        double space_max, keys_max;
    } cases[] = {{16, 1.0685, 1.0685}, {32, 1.2086, 1.2062}, {64, 1.1522, 1.1556}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t n = cases[c].n;
        test_ring *t = make_ring(CITRUS_HASH_MURMUR3, "shard-%02d", n, -1, NULL, 256);
        spread s = measure(t->r, t->owners, NULL, n);
        print_message("random tokens, %zu shards x 256: space max/mean %.4f min/mean %.4f, "
                      "keys max/mean %.4f min/mean %.4f\n",
                      n, s.space_max, s.space_min, s.keys_max, s.keys_min);
        assert_true(fabs(s.space_max - cases[c].space_max) < 1e-4);
        assert_true(fabs(s.keys_max - cases[c].keys_max) < 1e-4);
        free_ring(t);
    }
}

/* ---- a cluster growing one shard at a time with ring_choose_tokens ---- */

typedef struct cluster {
    citrus_hash_fn fn;
    size_t n;
    char ids[MAX_SHARDS][16];
    uint64_t *tokens[MAX_SHARDS];
    ring_owner owners[MAX_SHARDS];
    double weights[MAX_SHARDS]; /* parallel to owners, as ring_choose_tokens wants */
    ring *r;                    /* built from owners[0..n) */
} cluster;

static cluster *cluster_new(citrus_hash_fn fn)
{
    cluster *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->fn = fn;
    assert_int_equal(ring_build(fn, NULL, 0, &c->r), 0);
    return c;
}

static void cluster_free(cluster *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->tokens[i]);
    ring_free(c->r);
    free(c);
}

/* Shard "shard-NN" (NN = number) joins with weight w, as registry.c does:
 * ring_vnodes_for_weight(256, w) tokens chosen against the current ring,
 * default candidates (8 per token); then the ring is rebuilt. */
static void cluster_join(cluster *c, int number, double w)
{
    size_t k = c->n;
    assert_true(k < MAX_SHARDS);
    snprintf(c->ids[k], sizeof c->ids[k], "shard-%02d", number);
    size_t nt = ring_vnodes_for_weight(256, w);
    c->tokens[k] = malloc(nt * sizeof(uint64_t));
    assert_non_null(c->tokens[k]);
    assert_int_equal(
        ring_choose_tokens(c->r, c->weights, c->fn, c->ids[k], w, 0, nt, 0, c->tokens[k]), 0);
    c->owners[k] = (ring_owner){c->ids[k], c->tokens[k], nt};
    c->weights[k] = w;
    c->n++;
    ring_free(c->r);
    assert_int_equal(ring_build(c->fn, c->owners, c->n, &c->r), 0);
}

/* shard-00 .. shard-(n-1), weight 1, joining in that order. */
static cluster *cluster_of(citrus_hash_fn fn, size_t n)
{
    cluster *c = cluster_new(fn);
    for (size_t i = 0; i < n; i++)
        cluster_join(c, (int)i, 1.0);
    return c;
}

/* Measured (deterministic) with 256 vnodes, shards joining one at a time:
 *   hash      shards  space max/mean (min/mean)   keys max/mean (min/mean), 1M keys
 *   murmur3     16      1.0021 (0.9975)             1.0080 (0.9847)
 *   murmur3     32      1.0016 (0.9968)             1.0161 (0.9806)
 *   murmur3     64      1.0021 (0.9973)             1.0227 (0.9747)
 *   xxhash64    16      1.0016 (0.9970)             1.0064 (0.9942)
 *   xxhash64    32      1.0016 (0.9962)             1.0182 (0.9845)
 *   xxhash64    64      1.0020 (0.9974)             1.0159 (0.9832)
 * (random tokens: 1.0685 / 1.2086 / 1.1522 with murmur3, see above). The
 * keys' spread is now mostly the sampling noise of 1M keys (~0.8% per shard
 * at 64 shards). The bound is 1.15 (space and keys, and 0.85 for the
 * smallest share); the recorded space values are asserted too, so a change
 * to the allocator is noticed. */
static void allocated_balance(void **state)
{
    static const struct {
        citrus_hash_fn fn;
        double space_max[3]; /* at 16, 32, 64 shards */
    } cases[] = {
        {CITRUS_HASH_MURMUR3, {1.0021, 1.0016, 1.0021}},
        {CITRUS_HASH_XXH64, {1.0016, 1.0016, 1.0020}},
    };
    const size_t at[3] = {16, 32, 64};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        cluster *cl = cluster_new(cases[c].fn);
        for (size_t a = 0; a < 3; a++) {
            while (cl->n < at[a])
                cluster_join(cl, (int)cl->n, 1.0);
            spread s = measure(cl->r, cl->owners, NULL, cl->n);
            print_message("allocated, %s, %zu shards x 256: space max/mean %.4f min/mean %.4f, "
                          "keys max/mean %.4f min/mean %.4f\n",
                          citrus_hash_name(cases[c].fn), cl->n, s.space_max, s.space_min,
                          s.keys_max, s.keys_min);
            assert_true(s.space_max <= 1.15);
            assert_true(s.keys_max <= 1.15);
            assert_true(s.space_min >= 0.85);
            assert_true(fabs(s.space_max - cases[c].space_max[a]) < 1e-4);
        }
        cluster_free(cl);
    }
}

/* Adding shard n to shard-00..shard-(n-1): keys move only onto it, about
 * 1/(n+1) of them. */
static void check_add_one(citrus_hash_fn fn, size_t n)
{
    cluster *c = cluster_of(fn, n);
    ring *before = c->r;
    c->r = NULL; /* keep it: cluster_join frees and rebuilds c->r */
    assert_int_equal(ring_build(fn, c->owners, c->n, &c->r), 0);
    cluster_join(c, (int)n, 1.0);
    char key[32];
    size_t moved = 0;
    for (int k = 0; k < NKEYS; k++) {
        int len = snprintf(key, sizeof key, "tenant-%d", k);
        ring_hit a, b;
        assert_int_equal(ring_lookup(before, key, (size_t)len, &a), 0);
        assert_int_equal(ring_lookup(c->r, key, (size_t)len, &b), 0);
        if (strcmp(a.shard_id, b.shard_id) != 0) {
            moved++;
            assert_int_equal(shard_number(b.shard_id), n); /* onto the new shard only */
        }
    }
    double frac = (double)moved / NKEYS, ideal = 1.0 / (double)(n + 1);
    print_message("allocated, %s: add 1 to %zu shards: %.4f of keys moved (1/(N+1) = %.4f, "
                  "ratio %.3f)\n",
                  citrus_hash_name(fn), n, frac, ideal, frac / ideal);
    assert_true(frac >= 0.8 * ideal && frac <= 1.2 * ideal);
    ring_free(before);
    cluster_free(c);
}

static void add_one_shard(void **state)
{
    check_add_one(CITRUS_HASH_MURMUR3, 16);
    check_add_one(CITRUS_HASH_MURMUR3, 64);
    check_add_one(CITRUS_HASH_XXH64, 16);
}

static void remove_one_shard(void **state)
{
    const size_t n = 16, gone = 5;
    cluster *c = cluster_of(CITRUS_HASH_MURMUR3, n);
    ring_owner rest[MAX_SHARDS];
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (i != gone)
            rest[k++] = c->owners[i];
    ring *after;
    assert_int_equal(ring_build(CITRUS_HASH_MURMUR3, rest, k, &after), 0);
    char key[32];
    size_t moved = 0, had = 0;
    for (int i = 0; i < NKEYS; i++) {
        int len = snprintf(key, sizeof key, "tenant-%d", i);
        ring_hit a, b;
        assert_int_equal(ring_lookup(c->r, key, (size_t)len, &a), 0);
        assert_int_equal(ring_lookup(after, key, (size_t)len, &b), 0);
        bool was_gone = shard_number(a.shard_id) == gone;
        had += was_gone;
        assert_true(shard_number(b.shard_id) != gone);
        if (!was_gone) /* everyone else's keys stay */
            assert_string_equal(a.shard_id, b.shard_id);
        moved += strcmp(a.shard_id, b.shard_id) != 0;
    }
    assert_int_equal(moved, had);
    assert_true(had > 0);
    print_message("allocated: remove 1 of %zu shards: %.4f of keys moved, all of them the "
                  "removed shard's\n",
                  n, (double)moved / NKEYS);
    ring_free(after);
    cluster_free(c);
}

/* A weight-2 shard (512 tokens) joining 15 weight-1 shards, and a weight-1
 * shard joining after it: shares follow the weights. */
static void weights(void **state)
{
    const size_t n = 15;
    cluster *c = cluster_of(CITRUS_HASH_MURMUR3, n);
    cluster_join(c, (int)n, 2.0);
    assert_int_equal(c->owners[n].ntokens, 512);
    assert_int_equal(ring_size(c->r), 17 * 256);
    size_t count[MAX_SHARDS], others = 0;
    count_keys(c->r, count);
    for (size_t i = 0; i < n; i++)
        others += count[i];
    double ratio = (double)count[n] / ((double)others / (double)n);
    double frac[MAX_SHARDS];
    ring_ownership(c->r, c->owners, c->n, frac);
    double space = frac[n] / ((1.0 - frac[n]) / (double)n);
    print_message("allocated: weight 2 joining 15 x weight 1: %.3f x the others' mean key "
                  "count, %.3f x their mean space\n",
                  ratio, space);
    assert_true(ratio >= 2.0 * 0.85 && ratio <= 2.0 * 1.15);
    assert_true(fabs(space - 2.0) < 0.02);
    cluster_join(c, (int)n + 1, 1.0); /* the weights array tells it shard n weighs 2 */
    spread s = measure(c->r, c->owners, c->weights, c->n);
    print_message("allocated: then a weight-1 shard joins: load max %.4f min %.4f\n", s.space_max,
                  s.space_min);
    assert_true(s.space_max <= 1.15 && s.space_min >= 0.85);
    cluster_free(c);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Same inputs, same tokens (whatever the owners' order); every token is a
 * candidate, none repeats or is already in the ring. */
static void choose_deterministic(void **state)
{
    cluster *c = cluster_of(CITRUS_HASH_XXH64, 12);
    const size_t count = 256, ncand = 4 * count;
    uint64_t a[256], b[256], cand[4 * 256];
    assert_int_equal(ring_choose_tokens(c->r, c->weights, CITRUS_HASH_XXH64, "shard-99", 1.0, 7,
                                        count, ncand, a),
                     0);
    assert_int_equal(
        ring_choose_tokens(c->r, NULL, CITRUS_HASH_XXH64, "shard-99", 1.0, 7, count, ncand, b),
        0); /* NULL weights: all 1, as here */
    assert_memory_equal(a, b, sizeof a);
    ring_owner rev[MAX_SHARDS]; /* the owners in reverse order: same ring, same tokens */
    for (size_t i = 0; i < c->n; i++)
        rev[i] = c->owners[c->n - 1 - i];
    ring *r;
    assert_int_equal(ring_build(CITRUS_HASH_XXH64, rev, c->n, &r), 0);
    assert_int_equal(
        ring_choose_tokens(r, NULL, CITRUS_HASH_XXH64, "shard-99", 1.0, 7, count, ncand, b), 0);
    assert_memory_equal(a, b, sizeof a);
    ring_free(r);

    assert_int_equal(ring_vnode_tokens(CITRUS_HASH_XXH64, "shard-99", 7, ncand, cand), 0);
    qsort(cand, ncand, sizeof cand[0], cmp_u64);
    memcpy(b, a, sizeof a);
    qsort(b, count, sizeof b[0], cmp_u64);
    ring_hit hit;
    for (size_t i = 0; i < count; i++) {
        assert_non_null(bsearch(&b[i], cand, ncand, sizeof cand[0], cmp_u64));
        assert_true(i == 0 || b[i] != b[i - 1]);
        assert_int_equal(ring_lookup_hash(c->r, b[i], &hit), 0);
        assert_true(hit.token != b[i]);
    }
    cluster_free(c);
}

/* The first shard, candidates == count, growing a shard, errors. */
static void choose_edges(void **state)
{
    uint64_t a[256], b[256];
    /* An empty ring (or none): the first count candidates, in order. */
    assert_int_equal(ring_choose_tokens(NULL, NULL, CITRUS_HASH_MURMUR3, "s0", 1.0, 0, 8, 0, a), 0);
    assert_int_equal(ring_vnode_tokens(CITRUS_HASH_MURMUR3, "s0", 0, 8, b), 0);
    assert_memory_equal(a, b, 8 * sizeof a[0]);
    ring *empty;
    assert_int_equal(ring_build(CITRUS_HASH_MURMUR3, NULL, 0, &empty), 0);
    assert_int_equal(ring_choose_tokens(empty, NULL, CITRUS_HASH_MURMUR3, "s0", 1.0, 3, 8, 16, a),
                     0);
    assert_int_equal(ring_vnode_tokens(CITRUS_HASH_MURMUR3, "s0", 3, 8, b), 0);
    assert_memory_equal(a, b, 8 * sizeof a[0]);

    /* candidates == count: every candidate is taken (the random-token rule). */
    cluster *c = cluster_of(CITRUS_HASH_MURMUR3, 4);
    assert_int_equal(
        ring_choose_tokens(c->r, NULL, CITRUS_HASH_MURMUR3, "shard-04", 1.0, 0, 64, 64, a), 0);
    assert_int_equal(ring_vnode_tokens(CITRUS_HASH_MURMUR3, "shard-04", 0, 64, b), 0);
    qsort(a, 64, sizeof a[0], cmp_u64);
    qsort(b, 64, sizeof b[0], cmp_u64);
    assert_memory_equal(a, b, 64 * sizeof a[0]);
    /* candidates == 0: RING_CANDIDATES_PER_TOKEN x count, but at least as
     * many as the ring has tokens (1024 here). */
    assert_int_equal(
        ring_choose_tokens(c->r, NULL, CITRUS_HASH_MURMUR3, "shard-04", 1.0, 0, 64, 0, a), 0);
    assert_int_equal(
        ring_choose_tokens(c->r, NULL, CITRUS_HASH_MURMUR3, "shard-04", 1.0, 0, 64, 1024, b), 0);
    assert_memory_equal(a, b, 64 * sizeof a[0]);
    assert_int_equal(
        ring_choose_tokens(c->r, NULL, CITRUS_HASH_MURMUR3, "shard-04", 1.0, 0, 256, 0, a), 0);
    assert_int_equal(ring_choose_tokens(c->r, NULL, CITRUS_HASH_MURMUR3, "shard-04", 1.0, 0, 256,
                                        256 * RING_CANDIDATES_PER_TOKEN, b),
                     0);
    assert_memory_equal(a, b, 256 * sizeof a[0]);

    /* Growing: shard-02 goes from weight 1 (256 tokens) to 2, keeping its
     * tokens and extending the list from candidate index 256; its first
     * tokens were chosen among indexes 0..2047, so some candidates are
     * already in the ring and are skipped. */
    uint64_t *grown = malloc(512 * sizeof *grown);
    assert_non_null(grown);
    memcpy(grown, c->tokens[2], 256 * sizeof *grown);
    c->weights[2] = 2.0;
    assert_int_equal(ring_choose_tokens(c->r, c->weights, CITRUS_HASH_MURMUR3, "shard-02", 2.0, 256,
                                        256, 0, grown + 256),
                     0);
    free(c->tokens[2]);
    c->tokens[2] = grown;
    c->owners[2] = (ring_owner){c->ids[2], grown, 512};
    ring_free(c->r);
    assert_int_equal(ring_build(CITRUS_HASH_MURMUR3, c->owners, c->n, &c->r), 0);
    assert_int_equal(ring_size(c->r), 5 * 256); /* no token repeated */
    spread s = measure(c->r, c->owners, c->weights, c->n);
    print_message("allocated: shard-02 grows to weight 2 among 3 x weight 1: load max %.4f min "
                  "%.4f\n",
                  s.space_max, s.space_min);
    assert_true(s.space_max <= 1.15 && s.space_min >= 0.85);

    /* Errors. */
    assert_int_equal(ring_choose_tokens(c->r, NULL, CITRUS_HASH_MURMUR3, NULL, 1.0, 0, 8, 0, a),
                     CITRUS_EINVAL);
    assert_int_equal(ring_choose_tokens(c->r, NULL, CITRUS_HASH_MURMUR3, "x", 1.0, 0, 8, 7, a),
                     CITRUS_EINVAL); /* fewer candidates than tokens */
    assert_int_equal(ring_choose_tokens(c->r, NULL, CITRUS_HASH_XXH64, "x", 1.0, 0, 8, 0, a),
                     CITRUS_EINVAL); /* not the ring's hash */
    assert_int_equal(ring_choose_tokens(c->r, NULL, CITRUS_HASH_MURMUR3, "x", 1.0, 0, 8, 0, NULL),
                     CITRUS_EINVAL);
    assert_int_equal(
        ring_choose_tokens(c->r, NULL, CITRUS_HASH_MURMUR3, "x", 1.0, SIZE_MAX - 4, 8, 8, a),
        CITRUS_EINVAL); /* indexes overflow */
    /* shard-00, the first shard, holds candidates 0..255 of "shard-00": of
     * the first 600, too few are left that are not in the ring already. */
    uint64_t *big = malloc(600 * sizeof *big);
    assert_non_null(big);
    assert_int_equal(
        ring_choose_tokens(c->r, NULL, CITRUS_HASH_MURMUR3, "shard-00", 1.0, 0, 600, 600, big),
        CITRUS_EINVAL);
    free(big);
    assert_int_equal(ring_choose_tokens(c->r, NULL, CITRUS_HASH_MURMUR3, "x", 1.0, 0, 0, 0, NULL),
                     0); /* nothing wanted */
    ring_free(empty);
    cluster_free(c);
}

/* ring_ownership matches owners by id, in the order given. */
static void ownership_order(void **state)
{
    test_ring *t = make_ring(CITRUS_HASH_MURMUR3, "s%d", 4, -1, NULL, 8);
    ring_owner rev[4];
    double f[4], g[5];
    for (size_t i = 0; i < 4; i++)
        rev[i] = t->owners[3 - i];
    ring_ownership(t->r, t->owners, 4, f);
    ring_owner more[5] = {rev[0], rev[1], rev[2], rev[3], {"absent", NULL, 0}};
    ring_ownership(t->r, more, 5, g);
    for (size_t i = 0; i < 4; i++)
        assert_true(f[i] == g[3 - i]);
    assert_true(g[4] == 0.0);
    assert_true(fabs(f[0] + f[1] + f[2] + f[3] - 1.0) < 1e-12);
    free_ring(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(murmur3_vectors),
        cmocka_unit_test(xxhash64_vectors),
        cmocka_unit_test(hash_names),
        cmocka_unit_test(ring_vectors_murmur3),
        cmocka_unit_test(ring_vectors_xxhash64),
        cmocka_unit_test(wrap_around),
        cmocka_unit_test(matches_naive_search),
        cmocka_unit_test(ties_smaller_id_wins),
        cmocka_unit_test(empty_and_invalid),
        cmocka_unit_test(single_token),
        cmocka_unit_test(vnode_tokens),
        cmocka_unit_test(vnodes_for_weight),
        cmocka_unit_test(random_tokens_balance),
        cmocka_unit_test(allocated_balance),
        cmocka_unit_test(add_one_shard),
        cmocka_unit_test(remove_one_shard),
        cmocka_unit_test(weights),
        cmocka_unit_test(choose_deterministic),
        cmocka_unit_test(choose_edges),
        cmocka_unit_test(ownership_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
