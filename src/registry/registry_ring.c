/* registry/registry_ring.c — the ring as the catalog stores it: token lists,
 * the ring version, the shared in-memory ring, and the diff of two rings
 * (which token ranges a change moves). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "citrus/errors.h"
#include "registry/registry_internal.h"
#include "wire/route_json.h"
#include "wire/shard_json.h"

#define DIFF_LIST_MAX 1000

int64_t reg_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void reg_time_text(int64_t ms, char out[32])
{
    shard_json_time(ms, out, 32);
}

bool reg_key(char *buf, size_t len, const char *prefix, const char *id)
{
    int n = snprintf(buf, len, "%s%s", prefix, id);
    return n > 0 && (size_t)n < len;
}

int reg_read(registry *r, const kv_range_req *req, kv_range_res *out, bool *cached)
{
    if (r->read)
        return r->read(r->read_ctx, req, out, cached);
    if (cached)
        *cached = false;
    return store_range(r->st, req, out);
}

void reg_owners_free(reg_owners *o)
{
    for (size_t i = 0; i < o->n; i++) {
        free((char *)o->v[i].shard_id);
        free((uint64_t *)o->v[i].tokens);
    }
    free(o->v);
    memset(o, 0, sizeof(*o));
}

/* Owners from a read of citrus/ring/ (meta and token lists). */
int reg_owners_from_range(const kv_range_res *res, reg_owners *o)
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
            reg_owners_free(o);
            return rc;
        }
        o->v[o->n++] = (ring_owner){.shard_id = id, .tokens = t, .ntokens = n};
    }
    return 0;
}

int reg_owners_load(registry *r, reg_owners *out)
{
    kv_range_req q = {.key = "citrus/ring/", .prefix = true};
    kv_range_res res;
    int rc = store_range(r->st, &q, &res);
    if (rc == 0)
        rc = reg_owners_from_range(&res, out);
    kv_range_res_free(&res);
    return rc;
}

int reg_ring_from_range(registry *r, const kv_range_res *res, ring **out, int64_t *version)
{
    reg_owners o;
    int rc = reg_owners_from_range(res, &o);
    if (rc < 0)
        return rc;
    rc = ring_build(r->hash, o.v, o.n, out);
    *version = o.version;
    reg_owners_free(&o);
    return rc;
}

/* Drops a reference; a ring no one holds any more is freed. */
static void ref_drop_locked(registry *r, ring_ref *ref)
{
    if (!ref || --ref->refs > 0)
        return;
    for (ring_ref **p = &r->retired; *p; p = &(*p)->next)
        if (*p == ref) {
            *p = ref->next;
            break;
        }
    ring_free(ref->rg);
    free(ref);
}

int registry_ring(registry *r, const ring **out, int64_t *version, bool *cached)
{
    bool meta_cached = false, ring_cached = false;
    /* The meta key's mod_revision is the ring version: one small read
     * tells whether the shared ring is current. */
    kv_range_req mq = {.key = REG_RING_META};
    kv_range_res meta;
    int rc = reg_read(r, &mq, &meta, &meta_cached);
    if (cached)
        *cached = meta_cached;
    if (rc < 0)
        return rc;
    int64_t v = meta.count ? meta.items[0].mod_revision : 0;
    kv_range_res_free(&meta);
    pthread_mutex_lock(&r->mu);
    if (r->cur && r->cur->version >= v) { /* current (or newer than this read) */
        r->cur->refs++;
        *out = r->cur->rg;
        *version = r->cur->version;
        pthread_mutex_unlock(&r->mu);
        return 0;
    }
    pthread_mutex_unlock(&r->mu);
    /* Rebuild from one prefix read: the meta and every token list at one
     * revision. */
    kv_range_req q = {.key = "citrus/ring/", .prefix = true};
    kv_range_res res;
    rc = reg_read(r, &q, &res, &ring_cached);
    if (cached)
        *cached = meta_cached || ring_cached;
    if (rc < 0)
        return rc;
    ring_ref *ref = calloc(1, sizeof(*ref));
    rc = ref ? reg_ring_from_range(r, &res, &ref->rg, &ref->version) : CITRUS_ENOMEM;
    kv_range_res_free(&res);
    if (rc < 0) {
        free(ref);
        return rc;
    }
    pthread_mutex_lock(&r->mu);
    if (r->cur && r->cur->version >= ref->version) { /* another thread was first */
        ring_free(ref->rg);
        free(ref);
        ref = r->cur;
        ref->refs++;
    } else {
        ring_ref *old = r->cur;
        if (old) { /* callers may still hold it */
            old->next = r->retired;
            r->retired = old;
        }
        r->cur = ref;
        ref->refs = 2; /* the registry's and the caller's */
        ref_drop_locked(r, old);
    }
    *out = ref->rg;
    *version = ref->version;
    pthread_mutex_unlock(&r->mu);
    return 0;
}

void registry_ring_release(registry *r, const ring *rg)
{
    if (!rg)
        return;
    pthread_mutex_lock(&r->mu);
    ring_ref *ref = r->cur && r->cur->rg == rg ? r->cur : NULL;
    for (ring_ref *p = r->retired; !ref && p; p = p->next)
        if (p->rg == rg)
            ref = p;
    ref_drop_locked(r, ref);
    pthread_mutex_unlock(&r->mu);
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

json_t *reg_ring_diff(const ring *a, const ring *b, size_t *n)
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
