/* registry/ring_tokens.c — the stored ring: token lists to owners and back,
 * the diff of two rings, and the walk to the first active owner (see
 * ring_tokens.h). */
#include "registry/ring_tokens.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "wire/catalog_keys.h"
#include "wire/route_json.h"

#define DIFF_LIST_MAX 1000

void ring_tokens_free(ring_tokens *o)
{
    for (size_t i = 0; i < o->n; i++) {
        free((char *)o->v[i].shard_id);
        free((uint64_t *)o->v[i].tokens);
    }
    free(o->v);
    memset(o, 0, sizeof(*o));
}

int ring_tokens_from_range(const kv_range_res *res, ring_tokens *o)
{
    memset(o, 0, sizeof(*o));
    o->v = res->count ? calloc(res->count, sizeof(*o->v)) : NULL;
    if (res->count && !o->v)
        return CITRUS_ENOMEM;
    size_t plen = strlen(REG_RING_TOKENS);
    for (size_t i = 0; i < res->count; i++) {
        const kv_entry *e = &res->items[i];
        if (strcmp(e->key, REG_RING_META) == 0) {
            o->version = e->mod_revision;
            continue;
        }
        if (strncmp(e->key, REG_RING_TOKENS, plen) != 0)
            continue;
        uint64_t *t;
        size_t n;
        int rc = route_json_tokens(e->value, e->value_len, &t, &n);
        char *id = rc == 0 ? strdup(e->key + plen) : NULL;
        if (rc == 0 && !id)
            rc = CITRUS_ENOMEM;
        if (rc < 0) {
            free(t);
            ring_tokens_free(o);
            return rc;
        }
        o->v[o->n++] = (ring_owner){.shard_id = id, .tokens = t, .ntokens = n};
    }
    return 0;
}

json_t *ring_tokens_json(const uint64_t *t, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        char buf[24];
        snprintf(buf, sizeof(buf), "%" PRIu64, t[i]);
        json_array_append_new(a, json_string(buf));
    }
    return json_pack("{s:o}", "tokens", a);
}

int ring_tokens_pick_active(const ring *rg, uint64_t hash, const shard *shards, size_t nshards,
                            const char **shard_id, uint64_t *token)
{
    ring_hit hit;
    if (ring_lookup_hash(rg, hash, &hit) < 0)
        return CITRUS_EUNAVAILABLE;
    size_t size = ring_size(rg);
    for (size_t j = 0; j < size; j++) {
        const char *id;
        uint64_t t = ring_token_at(rg, (hit.index + j) % size, &id);
        for (size_t i = 0; i < nshards; i++)
            if (shards[i].state == SHARD_ACTIVE && strcmp(shards[i].id, id) == 0) {
                *shard_id = shards[i].id;
                *token = t;
                return 0;
            }
    }
    return CITRUS_EUNAVAILABLE;
}

/* ---- diff ---- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static const char *owner_of(const ring *rg, uint64_t h)
{
    ring_hit hit;
    return ring_lookup_hash(rg, h, &hit) == 0 ? hit.shard_id : NULL;
}

static bool same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static json_t *range_json(uint64_t start, uint64_t end, const char *from, const char *to)
{
    char s[24], e[24];
    snprintf(s, sizeof(s), "%" PRIu64, start);
    snprintf(e, sizeof(e), "%" PRIu64, end);
    return json_pack("{s:s,s:s,s:s?,s:s?}", "start", s, "end", e, "from", from, "to", to);
}

json_t *ring_tokens_diff(const ring *a, const ring *b, size_t *n)
{
    *n = 0;
    size_t na = a ? ring_size(a) : 0, nb = b ? ring_size(b) : 0;
    uint64_t *bounds = malloc((na + nb + 1) * sizeof(*bounds));
    json_t *out = json_array();
    if (!bounds || !out) {
        free(bounds);
        json_decref(out);
        return NULL;
    }
    size_t m = 0;
    for (size_t i = 0; i < na; i++)
        bounds[m++] = ring_token_at(a, i, NULL);
    for (size_t i = 0; i < nb; i++)
        bounds[m++] = ring_token_at(b, i, NULL);
    if (m > 1)
        qsort(bounds, m, sizeof(*bounds), cmp_u64);
    size_t u = 0;
    for (size_t i = 0; i < m; i++)
        if (u == 0 || bounds[u - 1] != bounds[i])
            bounds[u++] = bounds[i];
    /* Segment k covers (bounds[k-1], bounds[k]]; segment 0 wraps from the
     * last bound. No token of either ring lies inside a segment, so each
     * ring gives the whole segment one owner: the owner of its end. */
    for (size_t k = 0; k < u; k++) {
        const char *fa = a ? owner_of(a, bounds[k]) : NULL;
        const char *fb = b ? owner_of(b, bounds[k]) : NULL;
        if (same(fa, fb))
            continue;
        uint64_t start = (k == 0 ? bounds[u - 1] : bounds[k - 1]) + 1;
        (*n)++;
        if (json_array_size(out) < DIFF_LIST_MAX)
            json_array_append_new(out, range_json(start, bounds[k], fa, fb));
    }
    free(bounds);
    return out;
}
