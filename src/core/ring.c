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
    memcpy(buf, shard_id, idlen + 1); /* room for idlen + 24 */
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

void ring_token_counts(const ring *r, const char *const *ids, size_t n, size_t *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = 0;
    size_t *per = calloc(r->nids ? r->nids : 1, sizeof *per);
    if (!per)
        return;
    for (size_t t = 0; t < r->ntokens; t++)
        per[r->owner[t]]++;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < r->nids; j++)
            if (strcmp(ids[i], r->ids[j]) == 0)
                out[i] += per[j];
    free(per);
}

/* ---- choosing tokens (ring_choose_tokens) ----
 *
 * The rule. Let W be the sum of the weights of the owners holding tokens
 * (the joining shard X counted with its new weight), so owner i's target
 * share is w_i / W and its load is f_i / w_i (f_i: the fraction of the hash
 * space it owns). Inserting a candidate c takes the piece (pred(c), c] of
 * hash space from the owner of succ(c), pred and succ being the nearest
 * tokens below and at-or-above c in the ring as it stands (the existing
 * tokens plus those X has been given so far). For each of the count tokens
 * in turn:
 *
 *   1. the donor is the owner other than X with the largest load among
 *      those that still have a candidate falling in one of their ranges
 *      (ties: the smaller id);
 *   2. ideal = (X's target share - X's current share) / tokens still to
 *      choose: what each remaining token should bring for X to end on its
 *      target;
 *   3. of the donor's candidates whose piece is within 25% of ideal, X takes
 *      the one cutting the donor's longest range (then: the piece closest to
 *      ideal, then the smaller candidate index); if none is that close, the
 *      one whose piece is closest to ideal. If that piece would leave X
 *      further above its target than X now is below it (piece > 2 x (target
 *      - X's share), e.g. once X has reached its target), X takes instead
 *      the lowest-index candidate inside its own ranges, which moves
 *      nothing, if there is one. When no owner has a candidate left, the
 *      lowest unused candidate index is taken (so the first shard of an
 *      empty ring gets candidates first .. first + count - 1, the old fixed
 *      rule).
 *
 * Why it works. Step 1 is Cassandra's allocator for one replica (take from
 * the most over-loaded unit): it drains the largest loads first, so the
 * existing owners are levelled from the top down ("water filling") and end
 * within about one piece of each other; an owner below the level is not
 * touched and rises towards the mean as the ring grows (its target shrinks
 * while its share stays). Step 2 paces X so that it neither runs out of
 * tokens before reaching its target nor overshoots it, and keeps each
 * prefix of the chosen list roughly proportional (the catalog drops tokens
 * from the end of a list when a weight shrinks). A piece is about one
 * range, 1 / (tokens in the ring), while a share is hundreds of ranges, so
 * the residual imbalance is a fraction of a percent instead of the
 * ~1/sqrt(V) spread of random tokens. Only X gains and only donors lose, so
 * a join still moves keys only onto the new shard.
 *
 * Step 3's preference for long ranges (Cassandra too splits the largest
 * range of the most loaded unit) and the default of at least as many
 * candidates as the ring has tokens (ring.h) both fight the same effect:
 * a piece can be no smaller than the distance from the start of its range
 * to the nearest candidate, and candidates are spaced 1 / C apart. Without
 * them, ranges much longer than that spacing (the first shards' random
 * ones) survive while the ring grows and are then given up in chunks of
 * 10-25% of a share at once; the shards that take such a chunk inherit the
 * long range. Measured growing to 1025 shards (V = 256): with only 8 x
 * count candidates the largest load stayed below 1.01 of the mean but
 * single shards dropped as low as 0.58 of it; with at least one candidate
 * per ring token, between 0.996 and 1.0021 throughout, both hashes.
 *
 * Data structures. Candidates are hashed once, radix-sorted, and located in
 * the ring by one merge-like walk: a candidate's gap is the ring range it
 * falls in (index of the ring token after it) and its donor that token's
 * owner. All candidates still "alive" in a gap share the same pred (the
 * gap's start or the last token X took in it) and are contiguous in sorted
 * order, so taking c only touches the neighbours of c in its gap: those
 * below c now fall in X's new range (covered), those above get pred = c.
 * Candidates are listed per donor (counting sort) and the donors sit in a
 * max-heap by load, so a step costs O(candidates of one donor + log
 * owners). */

/* How far from the ideal a piece may be (relative) and still be preferred
 * for cutting its donor's longest range (see best_of_donor). */
#define RING_PIECE_TOLERANCE 0.25

enum { CAND_ALIVE, CAND_COVERED, CAND_USED, CAND_INVALID };

typedef struct cand {
    uint64_t value; /* the token hash("<id>#<first + index>") */
    uint64_t pred;  /* the token before it (alive candidates only) */
    size_t index;   /* i - first */
    uint32_t gap;   /* index of the ring token at or after it */
    uint8_t state;
} cand;

/* Sorts c[0..n) by value, keeping index order among equal values (they
 * come in index order): a stable LSD radix sort, 8 bits a pass (qsort was
 * most of the time with the ~262,000 candidates of a 1024-shard ring). */
static int sort_candidates(cand *c, size_t n)
{
    cand *tmp = malloc(n * sizeof *tmp);
    if (!tmp)
        return CITRUS_ENOMEM;
    cand *from = c, *to = tmp;
    for (unsigned shift = 0; shift < 64; shift += 8) {
        size_t pos[256] = {0};
        for (size_t i = 0; i < n; i++)
            pos[(from[i].value >> shift) & 0xff]++;
        if (pos[(from[0].value >> shift) & 0xff] == n)
            continue; /* all share this byte */
        size_t at = 0;
        for (size_t d = 0; d < 256; d++) {
            size_t k = pos[d];
            pos[d] = at;
            at += k;
        }
        for (size_t i = 0; i < n; i++)
            to[pos[(from[i].value >> shift) & 0xff]++] = from[i];
        cand *t = from;
        from = to;
        to = t;
    }
    if (from != c)
        memcpy(c, from, n * sizeof *c);
    free(tmp);
    return 0;
}

typedef struct heap_entry {
    double load;
    uint32_t owner;
} heap_entry;

typedef struct chooser {
    const ring *r;
    size_t nown;    /* r->nids */
    bool *is_x;     /* per owner: the id is the joining shard's */
    double *frac;   /* per owner: share of the hash space */
    double *w;      /* per owner: weight */
    size_t *dstart; /* per owner: its candidates are dlist[dstart .. +dlen) */
    size_t *dlen;
    size_t *dlist; /* positions in c[] */
    cand *c;       /* sorted by value */
    size_t nc;
    size_t *byidx;    /* position in c[] of candidate index i */
    size_t lowest;    /* candidate indexes below this are used or invalid */
    heap_entry *heap; /* max-heap by (load, smaller id), one entry per donor */
    size_t nheap;
    double fx; /* X's share */
} chooser;

static const double SPACE = 18446744073709551616.0; /* 2^64 */

/* The share alive candidate c would bring X. */
static double piece_of(const cand *c)
{
    return (double)(uint64_t)(c->value - c->pred) / SPACE;
}

static double owner_load(const chooser *ch, uint32_t o)
{
    return ch->w[o] > 0 ? ch->frac[o] / ch->w[o] : INFINITY;
}

/* a ranks above b: larger load, then smaller id, then smaller index. */
static bool heap_above(const chooser *ch, const heap_entry *a, const heap_entry *b)
{
    if (a->load != b->load)
        return a->load > b->load;
    int c = strcmp(ch->r->ids[a->owner], ch->r->ids[b->owner]);
    return c != 0 ? c < 0 : a->owner < b->owner;
}

static void heap_push_entry(chooser *ch, heap_entry e)
{
    size_t i = ch->nheap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_above(ch, &e, &ch->heap[p]))
            break;
        ch->heap[i] = ch->heap[p];
        i = p;
    }
    ch->heap[i] = e;
}

static void heap_push(chooser *ch, uint32_t o)
{
    heap_push_entry(ch, (heap_entry){owner_load(ch, o), o});
}

static void heap_pop(chooser *ch)
{
    heap_entry e = ch->heap[--ch->nheap];
    size_t i = 0, n = ch->nheap;
    for (;;) {
        size_t l = 2 * i + 1, best = l;
        if (l >= n)
            break;
        if (l + 1 < n && heap_above(ch, &ch->heap[l + 1], &ch->heap[l]))
            best = l + 1;
        if (!heap_above(ch, &ch->heap[best], &e))
            break;
        ch->heap[i] = ch->heap[best];
        i = best;
    }
    if (n)
        ch->heap[i] = e;
}

static void chooser_free(chooser *ch)
{
    free(ch->is_x);
    free(ch->frac);
    free(ch->w);
    free(ch->byidx);
    free(ch->dstart);
    free(ch->dlen);
    free(ch->dlist);
    free(ch->c);
    free(ch->heap);
}

/* Hashes, sorts and locates the candidates; drops duplicates and values
 * already in the ring. *valid: how many are usable. */
static int chooser_candidates(chooser *ch, citrus_hash_fn fn, const char *id, size_t first,
                              size_t n, size_t *valid)
{
    uint64_t *v = malloc(n * sizeof *v);
    ch->c = malloc(n * sizeof *ch->c);
    if (!v || !ch->c) {
        free(v);
        return CITRUS_ENOMEM;
    }
    int rc = ring_vnode_tokens(fn, id, first, n, v);
    if (rc) {
        free(v);
        return rc;
    }
    for (size_t i = 0; i < n; i++)
        ch->c[i] = (cand){.value = v[i], .index = i, .state = CAND_ALIVE};
    free(v);
    ch->nc = n;
    rc = sort_candidates(ch->c, n);
    if (rc)
        return rc;
    ch->byidx = malloc(n * sizeof *ch->byidx);
    if (!ch->byidx)
        return CITRUS_ENOMEM;
    for (size_t i = 0; i < n; i++)
        ch->byidx[ch->c[i].index] = i;
    const ring *r = ch->r;
    *valid = 0;
    size_t j = 0; /* both sorted: one merge-like walk over the ring's tokens */
    for (size_t i = 0; i < n; i++) {
        cand *c = &ch->c[i];
        if (i > 0 && c->value == ch->c[i - 1].value) {
            c->state = CAND_INVALID;
            continue;
        }
        if (r->ntokens == 0) {
            c->state = CAND_COVERED; /* nothing to take from anyone */
            ++*valid;
            continue;
        }
        while (j < r->ntokens && r->tokens[j] < c->value)
            j++;
        if (j < r->ntokens && r->tokens[j] == c->value) {
            c->state = CAND_INVALID; /* already a token */
            continue;
        }
        size_t g = j == r->ntokens ? 0 : j; /* above the largest token: wraps */
        c->gap = (uint32_t)g;
        c->pred = r->tokens[g == 0 ? r->ntokens - 1 : g - 1];
        if (ch->is_x[r->owner[g]])
            c->state = CAND_COVERED;
        ++*valid;
    }
    return 0;
}

/* Per-owner shares and weights, X's share and its target share. */
static int chooser_init(chooser *ch, const double *weights, const char *id, double weight,
                        double *target)
{
    const ring *r = ch->r;
    size_t n = ch->nown ? ch->nown : 1;
    ch->is_x = calloc(n, sizeof *ch->is_x);
    ch->frac = calloc(n, sizeof *ch->frac);
    ch->w = calloc(n, sizeof *ch->w);
    ch->dstart = calloc(n + 1, sizeof *ch->dstart);
    ch->dlen = calloc(n, sizeof *ch->dlen);
    if (!ch->is_x || !ch->frac || !ch->w || !ch->dstart || !ch->dlen)
        return CITRUS_ENOMEM;
    for (size_t i = 0; i < ch->nown; i++) {
        ch->is_x[i] = strcmp(r->ids[i], id) == 0;
        ch->w[i] = weights ? weights[i] : 1.0;
    }
    if (r->ntokens)
        fractions(r, ch->frac);
    double wsum = weight > 0 ? weight : 0; /* also NaN -> 0 */
    ch->fx = 0;
    size_t *ntok = ch->dstart; /* borrowed for token counts, zeroed again below */
    for (size_t i = 0; i < r->ntokens; i++)
        ntok[r->owner[i]]++;
    for (size_t i = 0; i < ch->nown; i++) {
        if (ch->is_x[i])
            ch->fx += ch->frac[i];
        else if (ntok[i] && ch->w[i] > 0)
            wsum += ch->w[i];
        ntok[i] = 0;
    }
    *target = wsum > 0 && weight > 0 ? weight / wsum : 0;
    return 0;
}

/* The alive candidates listed per donor, and the donors on the heap. */
static int chooser_lists(chooser *ch)
{
    const ring *r = ch->r;
    ch->dlist = malloc((ch->nc ? ch->nc : 1) * sizeof *ch->dlist);
    ch->heap = malloc((ch->nown + 1) * sizeof *ch->heap);
    if (!ch->dlist || !ch->heap)
        return CITRUS_ENOMEM;
    for (size_t i = 0; i < ch->nc; i++)
        if (ch->c[i].state == CAND_ALIVE)
            ch->dlen[r->owner[ch->c[i].gap]]++;
    size_t at = 0;
    for (size_t o = 0; o < ch->nown; o++) {
        ch->dstart[o] = at;
        at += ch->dlen[o];
        ch->dlen[o] = 0;
    }
    ch->dstart[ch->nown] = at;
    for (size_t i = 0; i < ch->nc; i++)
        if (ch->c[i].state == CAND_ALIVE) {
            uint32_t o = r->owner[ch->c[i].gap];
            ch->dlist[ch->dstart[o] + ch->dlen[o]++] = i;
        }
    ch->nheap = 0;
    for (size_t o = 0; o < ch->nown; o++)
        if (ch->dlen[o])
            heap_push(ch, (uint32_t)o);
    return 0;
}

/* Step 3 for donor o: the position (in c[]) of its alive candidate to take,
 * SIZE_MAX if it has none left (dead entries are dropped from its list on
 * the way). Among the candidates whose piece is within RING_PIECE_TOLERANCE
 * x ideal of ideal, the one in the donor's longest remaining range (ring
 * token - pred), then the closest to ideal; if there is none, the piece
 * closest to ideal. Last ties: the smaller candidate index. */
static size_t best_of_donor(chooser *ch, uint32_t o, double ideal)
{
    size_t *l = ch->dlist + ch->dstart[o];
    size_t near = SIZE_MAX, wide = SIZE_MAX;
    double nd = INFINITY, wd = 0;
    uint64_t wlen = 0;
    for (size_t k = 0; k < ch->dlen[o];) {
        const cand *c = &ch->c[l[k]];
        if (c->state != CAND_ALIVE) {
            l[k] = l[--ch->dlen[o]];
            continue;
        }
        double d = fabs(piece_of(c) - ideal);
        if (near == SIZE_MAX || d < nd || (d == nd && c->index < ch->c[near].index)) {
            nd = d;
            near = l[k];
        }
        if (ideal > 0 && d <= RING_PIECE_TOLERANCE * ideal) {
            uint64_t len = ch->r->tokens[c->gap] - c->pred; /* the range it cuts */
            if (wide == SIZE_MAX || len > wlen ||
                (len == wlen && (d < wd || (d == wd && c->index < ch->c[wide].index)))) {
                wlen = len;
                wide = l[k];
                wd = d;
            }
        }
        k++;
    }
    return wide != SIZE_MAX ? wide : near;
}

/* The covered candidate with the lowest index (SIZE_MAX: none). Used and
 * invalid candidates stay so, which lets the scan start past them. */
static size_t lowest_covered(chooser *ch)
{
    while (ch->lowest < ch->nc && (ch->c[ch->byidx[ch->lowest]].state == CAND_USED ||
                                   ch->c[ch->byidx[ch->lowest]].state == CAND_INVALID))
        ch->lowest++;
    for (size_t i = ch->lowest; i < ch->nc; i++)
        if (ch->c[ch->byidx[i]].state == CAND_COVERED)
            return ch->byidx[i];
    return SIZE_MAX;
}

/* Steps 1 and 3 for one token: the candidate to take from the most loaded
 * donor that has one left (SIZE_MAX: none has).
 * Donors found empty leave the heap for good; the chosen donor's entry is
 * popped too (take() pushes it back with its new load, or the caller does
 * if it takes nothing after all), so the heap holds at most one entry per
 * owner, always current. */
static size_t pick(chooser *ch, double ideal)
{
    while (ch->nheap > 0) {
        uint32_t o = ch->heap[0].owner;
        heap_pop(ch);
        size_t p = best_of_donor(ch, o, ideal);
        if (p != SIZE_MAX)
            return p;
    }
    return SIZE_MAX;
}

/* X takes alive candidate p: its piece moves from the donor to X, and the
 * other alive candidates of its gap are updated (see above). */
static void take(chooser *ch, size_t p)
{
    cand *c = &ch->c[p];
    uint32_t o = ch->r->owner[c->gap];
    double piece = piece_of(c);
    ch->frac[o] -= piece;
    ch->fx += piece;
    c->state = CAND_USED;
    /* The gap's alive candidates are contiguous around c (wrapping at the
     * ends of c[], for the range past the largest token), with at most
     * unusable duplicates in between. */
    for (size_t k = 1; k < ch->nc; k++) { /* below c in its gap: now X's */
        cand *d = &ch->c[(p + ch->nc - k) % ch->nc];
        if (d->state == CAND_INVALID)
            continue;
        if (d->state != CAND_ALIVE || d->gap != c->gap)
            break;
        d->state = CAND_COVERED;
    }
    for (size_t k = 1; k < ch->nc; k++) { /* above c: their piece starts at c */
        cand *d = &ch->c[(p + k) % ch->nc];
        if (d->state == CAND_INVALID)
            continue;
        if (d->state != CAND_ALIVE || d->gap != c->gap)
            break;
        d->pred = c->value;
    }
    heap_push(ch, o);
}

int ring_choose_tokens(const ring *current, const double *weights, citrus_hash_fn fn,
                       const char *shard_id, double weight, size_t first, size_t count,
                       size_t candidates, uint64_t *out)
{
    if (!shard_id || (count && !out))
        return CITRUS_EINVAL;
    if (current && current->fn != fn)
        return CITRUS_EINVAL;
    if (count == 0)
        return 0;
    if (candidates == 0) { /* see ring.h */
        if (count > SIZE_MAX / RING_CANDIDATES_PER_TOKEN)
            return CITRUS_EINVAL;
        candidates = count * RING_CANDIDATES_PER_TOKEN;
        if (current && candidates < current->ntokens)
            candidates = current->ntokens;
    }
    if (candidates < count || first > SIZE_MAX - candidates || candidates > SIZE_MAX / sizeof(cand))
        return CITRUS_EINVAL;
    ring empty = {.fn = fn};
    chooser ch = {.r = current ? current : &empty, .nown = current ? current->nids : 0};
    double target = 0;
    size_t valid = 0;
    int rc = chooser_init(&ch, weights, shard_id, weight, &target);
    if (!rc)
        rc = chooser_candidates(&ch, fn, shard_id, first, candidates, &valid);
    if (!rc && valid < count)
        rc = CITRUS_EINVAL;
    if (!rc)
        rc = chooser_lists(&ch);
    for (size_t k = 0; !rc && k < count; k++) {
        size_t p = pick(&ch, (target - ch.fx) / (double)(count - k)); /* ideal */
        size_t q = SIZE_MAX;
        if (p == SIZE_MAX || piece_of(&ch.c[p]) > 2 * (target - ch.fx))
            q = lowest_covered(&ch); /* X would end further above its target than it is below */
        if (q != SIZE_MAX) {
            if (p != SIZE_MAX) /* not taken after all: its donor goes back on the heap */
                heap_push(&ch, ch.r->owner[ch.c[p].gap]);
            ch.c[q].state = CAND_USED;
            out[k] = ch.c[q].value;
            continue;
        }
        if (p == SIZE_MAX) { /* cannot happen: valid >= count */
            rc = CITRUS_EINVAL;
            break;
        }
        take(&ch, p);
        out[k] = ch.c[p].value;
    }
    chooser_free(&ch);
    return rc;
}
