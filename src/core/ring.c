/* core/ring.c — the consistent-hash ring (see ring.h; algorithm in
 * docs/ring.md).
 *
 * A built ring is two parallel arrays in token order: the tokens alone
 * (the only thing a lookup searches, 8 contiguous bytes per vnode) and the
 * owner of each token (a 16-bit index into the copied shard ids, read once
 * per lookup and prefetched while the tokens are searched), plus a bucket
 * table that narrows the search to a few adjacent tokens. Lookups are
 * memory-latency bound, so the layout is about touching few cache lines.
 * Nothing changes after ring_build, so readers need no locks. */
#include "core/ring.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"

/* The top `bits` bits of a hash pick a bucket; start[b] is the first token
 * index whose token is >= b << (64 - bits), so the answer for a hash in
 * bucket b lies in [start[b], start[b + 1]]. With about RING_TOKENS_PER_BUCKET
 * tokens per bucket the search usually reads one line of the (small, hence
 * cache-resident) bucket table and one line of tokens, instead of the ~18
 * dependent, mostly missing probes of a binary search over 2 MiB. */
#ifndef RING_TOKENS_PER_BUCKET
#define RING_TOKENS_PER_BUCKET 4
#endif
#define RING_MAX_BUCKET_BITS 24

struct ring {
    citrus_hash_fn fn;
    size_t ntokens;
    uint64_t *tokens; /* ascending, no duplicates */
    uint16_t *owner;  /* owner[i] indexes ids: who holds tokens[i] */
    unsigned bits;    /* bucket bits, 1..RING_MAX_BUCKET_BITS */
    uint32_t *start;  /* 2^bits + 1 entries */
    size_t nids;
    char **ids; /* in the order of the owners given to ring_build */
};

/* A token while building, with the index of the owner that gave it. */
typedef struct entry {
    uint64_t token;
    uint32_t owner;
} entry;

static int cmp_entry(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->token != y->token)
        return x->token < y->token ? -1 : 1;
    return x->owner < y->owner ? -1 : x->owner > y->owner;
}

static int check_owners(const ring_owner *owners, size_t n, size_t *total)
{
    if (n && !owners)
        return CITRUS_EINVAL;
    if (n > RING_MAX_OWNERS)
        return CITRUS_ETOOMANY;
    size_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (!owners[i].shard_id || (owners[i].ntokens && !owners[i].tokens))
            return CITRUS_EINVAL;
        if (owners[i].ntokens > SIZE_MAX / sizeof(entry) - sum)
            return CITRUS_ENOMEM;
        sum += owners[i].ntokens;
    }
    if (sum > UINT32_MAX) /* token indexes are 32-bit */
        return CITRUS_EINVAL;
    *total = sum;
    return 0;
}

static int copy_ids(ring *r, const ring_owner *owners, size_t n)
{
    r->ids = calloc(n ? n : 1, sizeof *r->ids);
    if (!r->ids)
        return CITRUS_ENOMEM;
    r->nids = n;
    for (size_t i = 0; i < n; i++) {
        r->ids[i] = strdup(owners[i].shard_id);
        if (!r->ids[i])
            return CITRUS_ENOMEM;
    }
    return 0;
}

/* All owners' tokens, sorted by (token, owner index). */
static entry *sorted_entries(const ring_owner *owners, size_t n, size_t total)
{
    entry *e = malloc((total ? total : 1) * sizeof *e);
    if (!e)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < owners[i].ntokens; j++)
            e[k++] = (entry){owners[i].tokens[j], (uint32_t)i};
    qsort(e, total, sizeof *e, cmp_entry);
    return e;
}

/* One token per value: of the entries e[0..total) sharing a token value,
 * the owner whose id sorts first (strcmp) wins; equal ids, the first given. */
static int fill_tokens(ring *r, const entry *e, size_t total)
{
    r->tokens = malloc((total ? total : 1) * sizeof *r->tokens);
    r->owner = malloc((total ? total : 1) * sizeof *r->owner);
    if (!r->tokens || !r->owner)
        return CITRUS_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < total; i++) {
        if (n > 0 && e[i].token == r->tokens[n - 1]) {
            if (strcmp(r->ids[e[i].owner], r->ids[r->owner[n - 1]]) < 0)
                r->owner[n - 1] = (uint16_t)e[i].owner;
            continue;
        }
        r->tokens[n] = e[i].token;
        r->owner[n] = (uint16_t)e[i].owner;
        n++;
    }
    r->ntokens = n;
    return 0;
}

/* The bucket table over the finished token array (see struct ring). */
static int fill_buckets(ring *r)
{
    unsigned bits = 1;
    while (bits < RING_MAX_BUCKET_BITS && ((size_t)1 << bits) * RING_TOKENS_PER_BUCKET < r->ntokens)
        bits++;
    size_t nb = (size_t)1 << bits;
    r->bits = bits;
    r->start = malloc((nb + 1) * sizeof *r->start);
    if (!r->start)
        return CITRUS_ENOMEM;
    size_t i = 0;
    for (size_t b = 0; b < nb; b++) {
        uint64_t lo = (uint64_t)b << (64 - bits);
        while (i < r->ntokens && r->tokens[i] < lo)
            i++;
        r->start[b] = (uint32_t)i;
    }
    r->start[nb] = (uint32_t)r->ntokens;
    return 0;
}

int ring_build(citrus_hash_fn fn, const ring_owner *owners, size_t n, ring **out)
{
    size_t total;
    int rc = check_owners(owners, n, &total);
    if (rc)
        return rc;
    ring *r = calloc(1, sizeof *r);
    if (!r)
        return CITRUS_ENOMEM;
    r->fn = fn;
    rc = copy_ids(r, owners, n);
    entry *e = rc ? NULL : sorted_entries(owners, n, total);
    if (!rc && !e)
        rc = CITRUS_ENOMEM;
    if (!rc)
        rc = fill_tokens(r, e, total);
    free(e);
    if (!rc)
        rc = fill_buckets(r);
    if (rc) {
        ring_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void ring_free(ring *r)
{
    if (!r)
        return;
    for (size_t i = 0; r->ids && i < r->nids; i++)
        free(r->ids[i]);
    free(r->ids);
    free(r->tokens);
    free(r->owner);
    free(r->start);
    free(r);
}

citrus_hash_fn ring_hash_fn(const ring *r)
{
    return r->fn;
}

size_t ring_size(const ring *r)
{
    return r->ntokens;
}

size_t ring_memory(const ring *r)
{
    size_t bytes = sizeof *r + r->ntokens * (sizeof *r->tokens + sizeof *r->owner) +
                   (((size_t)1 << r->bits) + 1) * sizeof *r->start + r->nids * sizeof *r->ids;
    for (size_t i = 0; i < r->nids; i++)
        bytes += strlen(r->ids[i]) + 1;
    return bytes;
}

uint64_t ring_token_at(const ring *r, size_t i, const char **shard_id)
{
    if (shard_id)
        *shard_id = r->ids[r->owner[i]];
    return r->tokens[i];
}

/* First index i with t[i] >= h, or n; n > 0. Branch-free (the comparison
 * becomes a conditional move), so a random hash costs no mispredictions. */
static size_t lower_bound(const uint64_t *t, size_t n, uint64_t h)
{
    const uint64_t *base = t;
    size_t len = n;
    while (len > 1) {
        size_t half = len / 2;
        base = base[half] < h ? base + half : base;
        len -= half;
    }
    return (size_t)(base - t) + (*base < h);
}

int ring_lookup_hash(const ring *r, uint64_t hash, ring_hit *out)
{
    if (r->ntokens == 0)
        return CITRUS_ENOTFOUND;
    uint64_t b = hash >> (64 - r->bits);
    size_t lo = r->start[b], hi = r->start[b + 1];
    __builtin_prefetch(r->owner + lo); /* fetched alongside the tokens */
    size_t i = lo < hi ? lo + lower_bound(r->tokens + lo, hi - lo, hash) : lo;
    if (i == r->ntokens)
        i = 0; /* past the largest token: wrap around */
    out->shard_id = r->ids[r->owner[i]];
    out->hash = hash;
    out->token = r->tokens[i];
    out->index = i;
    return 0;
}

int ring_lookup(const ring *r, const void *key, size_t len, ring_hit *out)
{
    if (r->ntokens == 0)
        return CITRUS_ENOTFOUND;
    return ring_lookup_hash(r, citrus_hash(r->fn, key, len), out);
}

size_t ring_vnodes_for_weight(size_t vnodes, double weight)
{
    double v = round((double)vnodes * weight); /* half away from zero */
    if (!(v >= 1.0))                           /* also NaN */
        return 1;
    if (v >= (double)SIZE_MAX)
        return SIZE_MAX;
    return (size_t)v;
}

/* Writes the decimal digits of v at p (no NUL); returns how many. */
static size_t put_decimal(char *p, size_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

#define VNODE_ID_STACK 200

int ring_vnode_tokens(citrus_hash_fn fn, const char *shard_id, size_t first, size_t count,
                      uint64_t *out)
{
    if (!shard_id)
        return CITRUS_EINVAL;
    char stack[VNODE_ID_STACK + 24];
    size_t idlen = strlen(shard_id);
    char *buf = idlen <= VNODE_ID_STACK ? stack : malloc(idlen + 24);
    if (!buf)
        return CITRUS_ENOMEM;
    memcpy(buf, shard_id, idlen);
    buf[idlen] = '#';
    for (size_t i = 0; i < count; i++) {
        size_t n = put_decimal(buf + idlen + 1, first + i);
        out[i] = citrus_hash(fn, buf, idlen + 1 + n);
    }
    if (buf != stack)
        free(buf);
    return 0;
}

/* The hash-space fraction of each of the ring's owners (by ring owner). */
static void fractions(const ring *r, double *frac)
{
    for (size_t i = 0; i < r->nids; i++)
        frac[i] = 0;
    if (r->ntokens == 1) {
        frac[r->owner[0]] = 1.0;
        return;
    }
    const double space = 18446744073709551616.0; /* 2^64 */
    for (size_t i = 0; i < r->ntokens; i++) {
        /* token i covers (token[i-1], token[i]]; token 0 wraps (mod 2^64) */
        uint64_t prev = r->tokens[i == 0 ? r->ntokens - 1 : i - 1];
        frac[r->owner[i]] += (double)(uint64_t)(r->tokens[i] - prev) / space;
    }
}

/* All zeros if the ring is empty (or, as the signature has no error, when
 * its n-double scratch array cannot be allocated). */
void ring_ownership(const ring *r, const ring_owner *owners, size_t n, double *out)
{
    double *frac = calloc(r->nids ? r->nids : 1, sizeof *frac);
    for (size_t i = 0; i < n; i++)
        out[i] = 0;
    if (!frac || r->ntokens == 0) {
        free(frac);
        return;
    }
    fractions(r, frac);
    for (size_t i = 0; i < n; i++) /* by id: owners need not be in ring order */
        for (size_t j = 0; j < r->nids; j++)
            if (strcmp(owners[i].shard_id, r->ids[j]) == 0)
                out[i] += frac[j];
    free(frac);
}
