/* registry/registry.c — shard records and their tokens in the catalog (see
 * registry.h): create, change (with the ring following the state), delete;
 * and the registry's way to the catalog (reads, commits, the shared ring)
 * that tenants.c uses too. */
#include "registry/registry.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "core/dsn.h"
#include "core/errdetail.h"
#include "registry/ring_cache.h"
#include "registry/ring_tokens.h"
#include "wire/digest.h"
#include "wire/route_json.h"
#include "wire/shard_json.h"

#define MODIFY_TRIES 16
#define KEYLEN 512

struct registry {
    store *st;
    const sysclock *clock;
    reg_read_fn read;
    void *read_ctx;
    reg_revision_fn revision;
    void *revision_ctx;
    reg_commit_fn committed;
    void *committed_ctx;
    citrus_hash_fn hash;
    size_t vnodes;
    ring_cache *rings;
    pthread_mutex_t corrupt_mu; /* guards the three below */
    reg_corrupt corrupt[REG_CORRUPT_MAX];
    size_t ncorrupt;
    int64_t corrupt_checked_ms; /* clock_mono of the last registry_corrupt_recheck */
};

registry *registry_new(store *st, const sysclock *clock, citrus_hash_fn hash, size_t vnodes,
                       reg_read_fn read, void *read_ctx)
{
    registry *r = calloc(1, sizeof(*r));
    ring_cache *rings = r ? ring_cache_new() : NULL;
    if (!rings) {
        free(r);
        return NULL;
    }
    *r = (registry){.st = st,
                    .clock = clock,
                    .read = read,
                    .read_ctx = read_ctx,
                    .hash = hash,
                    .vnodes = vnodes,
                    .rings = rings};
    pthread_mutex_init(&r->corrupt_mu, NULL);
    return r;
}

void registry_free(registry *r)
{
    if (!r)
        return;
    ring_cache_free(r->rings);
    pthread_mutex_destroy(&r->corrupt_mu);
    free(r);
}

const sysclock *registry_clock(registry *r)
{
    return r->clock;
}

bool registry_key(char *buf, size_t len, const char *prefix, const char *id)
{
    int n = snprintf(buf, len, "%s%s", prefix, id);
    return n > 0 && (size_t)n < len;
}

/* registry_range, and whether the node's copy answered because the
 * catalog is down (cached may be NULL). */
static int range_from(registry *r, bool strong, const kv_range_req *req, kv_range_res *out,
                      bool *cached)
{
    if (!strong && r->read)
        return r->read(r->read_ctx, req, out, cached);
    if (cached)
        *cached = false;
    return store_range(r->st, req, out);
}

int registry_range(registry *r, bool strong, const kv_range_req *req, kv_range_res *out)
{
    return range_from(r, strong, req, out, NULL);
}

void registry_set_revision_fn(registry *r, reg_revision_fn fn, void *ctx)
{
    r->revision = fn;
    r->revision_ctx = ctx;
}

void registry_set_commit_fn(registry *r, reg_commit_fn fn, void *ctx)
{
    r->committed = fn;
    r->committed_ctx = ctx;
}

int registry_commit(registry *r, txb *t, bool *succeeded, int64_t *revision)
{
    int64_t rev = 0;
    int rc = txb_commit(t, r->st, succeeded, &rev);
    if (rc == 0 && *succeeded && r->committed)
        r->committed(r->committed_ctx, rev);
    if (revision)
        *revision = rev;
    return rc;
}

int64_t registry_revision(registry *r, bool *cached)
{
    if (r->revision)
        return r->revision(r->revision_ctx, cached);
    if (cached)
        *cached = false;
    return r->read ? -1 : store_revision(r->st);
}

citrus_hash_fn registry_hash(registry *r)
{
    return r->hash;
}

void reg_result_clear(reg_result *r)
{
    json_decref(r->ranges);
    memset(r, 0, sizeof(*r));
}

static json_t *meta_json(registry *r)
{
    return json_pack("{s:s,s:I}", "hash", citrus_hash_name(r->hash), "vnodes",
                     (json_int_t)r->vnodes);
}

int registry_init(registry *r, errdetail *e)
{
    /* An existing ring keeps its settings; a new catalog gets this node's
     * when the first shard takes tokens (every token change writes the
     * meta), so a catalog without shards holds no ring keys at all. */
    kv_range_req q = {.key = REG_RING_META};
    kv_range_res res;
    int rc = store_range(r->st, &q, &res);
    if (rc < 0 || res.count == 0) {
        kv_range_res_free(&res);
        return rc;
    }
    json_t *j = json_loadb((const char *)res.items[0].value, res.items[0].value_len, 0, NULL);
    kv_range_res_free(&res);
    citrus_hash_fn fn;
    json_t *vn = json_object_get(j, "vnodes");
    if (citrus_hash_parse(json_string_value(json_object_get(j, "hash")), &fn) < 0 ||
        !json_is_integer(vn) || json_integer_value(vn) < 1) {
        json_decref(j);
        return errdetail_set(e, CITRUS_ECORRUPT, "%s: unreadable ring settings", REG_RING_META);
    }
    r->hash = fn;
    r->vnodes = (size_t)json_integer_value(vn);
    json_decref(j);
    return 0;
}

/* ---- records that do not decode ---- */

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Under corrupt_mu: drops entry i. */
static void corrupt_drop(registry *r, size_t i)
{
    memmove(&r->corrupt[i], &r->corrupt[i + 1], (r->ncorrupt - i - 1) * sizeof(r->corrupt[0]));
    r->ncorrupt--;
}

/* Under corrupt_mu: adds or drops key, keeping the keys in order. */
static void corrupt_set(registry *r, const char *key, const char *error)
{
    size_t i = 0;
    while (i < r->ncorrupt && strcmp(r->corrupt[i].key, key) < 0)
        i++;
    bool found = i < r->ncorrupt && strcmp(r->corrupt[i].key, key) == 0;
    if (!error) {
        if (found)
            corrupt_drop(r, i);
        return;
    }
    if (!found) {
        if (r->ncorrupt == REG_CORRUPT_MAX)
            return; /* full: the first REG_CORRUPT_MAX tell the story */
        memmove(&r->corrupt[i + 1], &r->corrupt[i], (r->ncorrupt - i) * sizeof(r->corrupt[0]));
        r->ncorrupt++;
        snprintf(r->corrupt[i].key, sizeof(r->corrupt[i].key), "%s", key);
    }
    snprintf(r->corrupt[i].error, sizeof(r->corrupt[i].error), "%s", error);
}

void registry_note_record(registry *r, const char *key, const char *error)
{
    pthread_mutex_lock(&r->corrupt_mu);
    corrupt_set(r, key, error);
    pthread_mutex_unlock(&r->corrupt_mu);
}

size_t registry_corrupt(registry *r, const char *prefix, reg_corrupt *out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&r->corrupt_mu);
    for (size_t i = 0; i < r->ncorrupt; i++)
        if (has_prefix(r->corrupt[i].key, prefix)) {
            if (out && n < max)
                out[n] = r->corrupt[i];
            n++;
        }
    pthread_mutex_unlock(&r->corrupt_mu);
    return out && n > max ? max : n;
}

/* ---- reads ---- */

/* Decodes a shard record; when it does not decode, CITRUS_ECORRUPT and
 * why in why ("corrupt record: ..."). */
static int shard_decode_why(const kv_entry *e, shard *out, char *why, size_t len)
{
    json_error_t je;
    errdetail d = {0};
    json_t *j = json_loadb((const char *)e->value, e->value_len, 0, &je);
    shard_init(out);
    int rc = j ? shard_from_json(j, out, &d) : CITRUS_ECORRUPT;
    json_decref(j);
    if (rc < 0) {
        shard_clear(out);
        snprintf(why, len, "corrupt record: %.160s",
                 !j             ? je.text
                 : d.message[0] ? d.message
                                : "not a shard record");
        return CITRUS_ECORRUPT;
    }
    return 0;
}

/* A read of one shard record: decoded, and noted as it was found. */
static int shard_decode(registry *r, const kv_entry *e, shard *out)
{
    char why[200];
    int rc = shard_decode_why(e, out, why, sizeof(why));
    registry_note_record(r, e->key, rc == CITRUS_ECORRUPT ? why : NULL);
    return rc;
}

int registry_shard_get(registry *r, const char *id, shard *out, int64_t *mod)
{
    char key[KEYLEN];
    if (!shard_id_valid(id) || !registry_key(key, sizeof(key), REG_SHARDS, id))
        return CITRUS_ENOTFOUND;
    kv_range_req q = {.key = key};
    kv_range_res res;
    int rc = store_range(r->st, &q, &res);
    if (rc == 0 && res.count == 0) {
        rc = CITRUS_ENOTFOUND;
        registry_note_record(r, key, NULL);
    }
    if (rc == 0)
        rc = shard_decode(r, &res.items[0], out);
    if (rc == 0 && mod)
        *mod = res.items[0].mod_revision;
    kv_range_res_free(&res);
    return rc;
}

int registry_shard_read(registry *r, const char *id, shard *out)
{
    char key[KEYLEN];
    if (!shard_id_valid(id) || !registry_key(key, sizeof(key), REG_SHARDS, id))
        return CITRUS_ENOTFOUND;
    kv_range_req q = {.key = key};
    kv_range_res res;
    int rc = registry_range(r, false, &q, &res);
    if (rc == 0 && res.count == 0)
        registry_note_record(r, key, NULL);
    if (rc == 0)
        rc = res.count ? shard_decode(r, &res.items[0], out) : CITRUS_ENOTFOUND;
    kv_range_res_free(&res);
    return rc;
}

/* The shards of a read of citrus/shards/ (those in *state_filter, or all),
 * decoded; the read is freed. A record that does not decode is left out,
 * and what the registry knows of corrupt shard records becomes what this
 * read found. */
static int shards_decode(registry *r, int rc, kv_range_res *res, const shard_state *state_filter,
                         shard **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    shard *v = rc == 0 && res->count ? calloc(res->count, sizeof(*v)) : NULL;
    if (rc == 0 && res->count && !v)
        rc = CITRUS_ENOMEM;
    size_t k = 0;
    if (rc == 0) {
        pthread_mutex_lock(&r->corrupt_mu);
        for (size_t i = r->ncorrupt; i-- > 0;)
            if (has_prefix(r->corrupt[i].key, REG_SHARDS))
                corrupt_drop(r, i);
        pthread_mutex_unlock(&r->corrupt_mu);
    }
    for (size_t i = 0; rc == 0 && i < res->count; i++) {
        char why[200];
        if (shard_decode_why(&res->items[i], &v[k], why, sizeof(why)) < 0)
            registry_note_record(r, res->items[i].key, why);
        else if (state_filter && v[k].state != *state_filter)
            shard_clear(&v[k]);
        else
            k++;
    }
    kv_range_res_free(res);
    if (rc < 0) {
        registry_shards_free(v, k);
        return rc;
    }
    *out = v;
    *n = k;
    return 0;
}

bool registry_corrupt_recheck_due(registry *r, int64_t min_interval_ms)
{
    pthread_mutex_lock(&r->corrupt_mu);
    bool due = r->corrupt_checked_ms == 0 ||
               clock_mono_ms(r->clock) - r->corrupt_checked_ms >= min_interval_ms;
    pthread_mutex_unlock(&r->corrupt_mu);
    return due;
}

int registry_corrupt_recheck(registry *r, int64_t min_interval_ms)
{
    int64_t now = clock_mono_ms(r->clock);
    pthread_mutex_lock(&r->corrupt_mu);
    bool due = r->corrupt_checked_ms == 0 || now - r->corrupt_checked_ms >= min_interval_ms;
    if (due)
        r->corrupt_checked_ms = now;
    pthread_mutex_unlock(&r->corrupt_mu);
    if (!due)
        return 0;
    shard *v;
    size_t n;
    int rc = registry_shard_list_routing(r, &v, &n); /* notes citrus/shards/ afresh */
    if (rc == 0)
        registry_shards_free(v, n);
    const ring *rg; /* a token list known corrupt: the ring read notes it afresh */
    int64_t ver;
    if (rc == 0 && registry_corrupt(r, REG_RING_TOKENS, NULL, 0) &&
        registry_ring(r, &rg, &ver, NULL) == 0)
        registry_ring_release(r, rg);
    reg_corrupt pins[REG_CORRUPT_MAX];
    size_t np = registry_corrupt(r, REG_TENANTS, pins, REG_CORRUPT_MAX);
    for (size_t i = 0; rc == 0 && i < np; i++) {
        kv_range_req q = {.key = pins[i].key};
        kv_range_res res;
        rc = registry_range(r, false, &q, &res);
        tenant_pin p;
        if (rc == 0)
            registry_note_record(
                r, pins[i].key,
                res.count && route_json_pin(res.items[0].value, res.items[0].value_len, &p) < 0
                    ? pins[i].error
                    : NULL);
        kv_range_res_free(&res);
    }
    return rc;
}

int registry_shard_list_routing(registry *r, shard **out, size_t *n)
{
    kv_range_req q = {.key = REG_SHARDS, .prefix = true};
    kv_range_res res;
    return shards_decode(r, registry_range(r, false, &q, &res), &res, NULL, out, n);
}

void registry_shards_free(shard *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        shard_clear(&v[i]);
    free(v);
}

int registry_shard_list(registry *r, const shard_state *state_filter, shard **out, size_t *n)
{
    kv_range_req q = {.key = REG_SHARDS, .prefix = true};
    kv_range_res res;
    return shards_decode(r, store_range(r->st, &q, &res), &res, state_filter, out, n);
}

int registry_provision_get(registry *r, const char *id, json_t **spec)
{
    *spec = NULL;
    char key[KEYLEN];
    if (!registry_key(key, sizeof(key), REG_PROVISION, id))
        return CITRUS_EINVAL;
    kv_range_req q = {.key = key};
    kv_range_res res;
    int rc = store_range(r->st, &q, &res);
    if (rc == 0 && res.count)
        *spec = json_loadb((const char *)res.items[0].value, res.items[0].value_len, 0, NULL);
    kv_range_res_free(&res);
    return rc;
}

int registry_tenant_count(registry *r, const char *shard_id, bool strong, size_t *n)
{
    char prefix[KEYLEN];
    *n = 0;
    if (!registry_key(prefix, sizeof(prefix) - 1, REG_TENANT_INDEX, shard_id))
        return CITRUS_EINVAL;
    size_t plen = strlen(prefix); /* reg_key left a byte for it */
    prefix[plen] = '/';
    prefix[plen + 1] = '\0';
    kv_range_req q = {.key = prefix, .prefix = true, .count_only = true};
    kv_range_res res;
    int rc = registry_range(r, strong, &q, &res);
    if (rc == 0)
        *n = res.count;
    kv_range_res_free(&res);
    return rc;
}

/* ---- the ring ---- */

/* What a read of citrus/ring/ says of its token lists: the ones that do
 * not decode are noted (the ring is then not built: a shard's tokens left
 * out would send its keys to other shards), the others cleared. */
static void note_ring(registry *r, const kv_range_res *res)
{
    pthread_mutex_lock(&r->corrupt_mu);
    for (size_t i = r->ncorrupt; i-- > 0;)
        if (has_prefix(r->corrupt[i].key, REG_RING_TOKENS))
            corrupt_drop(r, i);
    for (size_t i = 0; i < res->count; i++) {
        uint64_t *t = NULL;
        size_t n;
        const kv_entry *e = &res->items[i];
        if (has_prefix(e->key, REG_RING_TOKENS) &&
            route_json_tokens(e->value, e->value_len, &t, &n) == CITRUS_ECORRUPT)
            corrupt_set(r, e->key,
                        "corrupt record: not a token list; the ring cannot be built until it is "
                        "repaired");
        free(t);
    }
    pthread_mutex_unlock(&r->corrupt_mu);
}

static int ring_read(registry *r, bool strong, const ring **out, int64_t *version, bool *cached)
{
    bool meta_cached = false, ring_cached = false;
    /* The meta key's mod_revision is the ring version: one small read
     * tells whether the shared ring is current. */
    kv_range_req mq = {.key = REG_RING_META};
    kv_range_res meta;
    int rc = range_from(r, strong, &mq, &meta, &meta_cached);
    if (cached)
        *cached = meta_cached;
    if (rc < 0)
        return rc;
    int64_t v = meta.count ? meta.items[0].mod_revision : 0;
    kv_range_res_free(&meta);
    if ((*out = ring_cache_hold(r->rings, v, version))) /* current (or newer than this read) */
        return 0;
    /* Rebuild from one prefix read: the meta and every token list at one
     * revision. */
    kv_range_req q = {.key = "citrus/ring/", .prefix = true};
    kv_range_res res;
    rc = range_from(r, strong, &q, &res, &ring_cached);
    if (cached)
        *cached = meta_cached || ring_cached;
    ring_tokens o = {0};
    if (rc == 0)
        rc = ring_tokens_from_range(&res, &o);
    if (rc == 0 || rc == CITRUS_ECORRUPT)
        note_ring(r, &res);
    kv_range_res_free(&res);
    ring *rg = NULL;
    if (rc == 0)
        rc = ring_build(r->hash, o.v, o.n, &rg);
    if (rc == 0 && !(*out = ring_cache_put(r->rings, rg, o.version, version)))
        rc = CITRUS_ENOMEM;
    ring_tokens_free(&o);
    return rc;
}

int registry_ring(registry *r, const ring **out, int64_t *version, bool *cached)
{
    return ring_read(r, false, out, version, cached);
}

int registry_ring_strong(registry *r, const ring **out, int64_t *version)
{
    return ring_read(r, true, out, version, NULL);
}

void registry_ring_release(registry *r, const ring *rg)
{
    ring_cache_release(r->rings, rg);
}

/* ---- tokens ---- */

/* The ring as stored, read once (one strong read of citrus/ring/) for a
 * change of one shard: every owner's tokens, and that shard's own list with
 * its key's mod_revision (0: it has none). */
typedef struct ring_now {
    ring_tokens o;
    const uint64_t *cur; /* borrowed from o */
    size_t ncur;
    int64_t tmod;
} ring_now;

static int ring_now_load(registry *r, const char *id, ring_now *rn)
{
    memset(rn, 0, sizeof(*rn));
    char key[KEYLEN];
    if (!registry_key(key, sizeof(key), REG_RING_TOKENS, id))
        return CITRUS_EINVAL;
    kv_range_req q = {.key = "citrus/ring/", .prefix = true};
    kv_range_res res;
    int rc = store_range(r->st, &q, &res);
    for (size_t i = 0; rc == 0 && i < res.count; i++)
        if (strcmp(res.items[i].key, key) == 0)
            rn->tmod = res.items[i].mod_revision;
    if (rc == 0)
        rc = ring_tokens_from_range(&res, &rn->o);
    kv_range_res_free(&res);
    for (size_t i = 0; rc == 0 && i < rn->o.n; i++)
        if (strcmp(rn->o.v[i].shard_id, id) == 0) {
            rn->cur = rn->o.v[i].tokens;
            rn->ncur = rn->o.v[i].ntokens;
        }
    return rc;
}

/* The ring of owners o and each owner's weight (indexed like them), for
 * choosing a shard's new tokens. */
static int ring_with_weights(registry *r, const ring_tokens *o, ring **out, double **weights)
{
    *out = NULL;
    *weights = NULL;
    shard *v = NULL;
    size_t n = 0;
    int rc = registry_shard_list(r, NULL, &v, &n);
    double *w = rc == 0 ? calloc(o->n ? o->n : 1, sizeof(*w)) : NULL;
    if (rc == 0 && !w)
        rc = CITRUS_ENOMEM;
    for (size_t i = 0; rc == 0 && i < o->n; i++) {
        w[i] = 1.0; /* tokens without a record (should not happen): weight 1 */
        for (size_t k = 0; k < n; k++)
            if (strcmp(v[k].id, o->v[i].shard_id) == 0)
                w[i] = v[k].weight;
    }
    if (rc == 0)
        rc = ring_build(r->hash, o->v, o->n, out);
    registry_shards_free(v, n);
    if (rc < 0) {
        free(w);
        return rc;
    }
    *weights = w;
    return 0;
}

/* Tokens a shard in this state and weight should own: the current list
 * kept, cut to vnodes × weight, or extended by tokens chosen to keep the
 * ring balanced (ring_choose_tokens); none when it should own none;
 * unchanged when failed. *out malloc'd. */
static int tokens_want(registry *r, const shard *s, const ring_now *rn, uint64_t **out, size_t *n)
{
    const uint64_t *cur = rn->cur;
    size_t ncur = rn->ncur;
    *out = NULL;
    *n = 0;
    size_t want;
    if (s->state == SHARD_ACTIVE || s->state == SHARD_READ_ONLY)
        want = ring_vnodes_for_weight(r->vnodes, s->weight);
    else if (s->state == SHARD_FAILED)
        want = ncur;
    else
        want = 0;
    if (want == 0)
        return 0;
    uint64_t *t = malloc(want * sizeof(*t));
    if (!t)
        return CITRUS_ENOMEM;
    size_t keep = ncur < want ? ncur : want;
    if (keep)
        memcpy(t, cur, keep * sizeof(*t));
    int rc = 0;
    if (want > keep) {
        ring *now;
        double *weights;
        rc = ring_with_weights(r, &rn->o, &now, &weights);
        if (rc == 0) {
            rc = ring_choose_tokens(now, weights, r->hash, s->id, s->weight, keep, want - keep, 0,
                                    t + keep);
            ring_free(now);
            free(weights);
        }
    }
    if (rc < 0) {
        free(t);
        return rc;
    }
    *out = t;
    *n = want;
    return 0;
}

static bool tokens_equal(const uint64_t *a, size_t na, const uint64_t *b, size_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof(*a)) == 0);
}

/* The ranges that change owner when shard id's tokens become (t, n). */
static int ring_change(registry *r, const ring_tokens *o, const char *id, const uint64_t *t,
                       size_t n, reg_result *res)
{
    ring *before = NULL, *after = NULL;
    int rc = ring_build(r->hash, o->v, o->n, &before);
    ring_owner *v = rc == 0 ? calloc(o->n + 1, sizeof(*v)) : NULL;
    if (rc == 0 && !v)
        rc = CITRUS_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; rc == 0 && i < o->n; i++)
        if (strcmp(o->v[i].shard_id, id) != 0)
            v[k++] = o->v[i];
    if (rc == 0 && n)
        v[k++] = (ring_owner){.shard_id = id, .tokens = t, .ntokens = n};
    if (rc == 0)
        rc = ring_build(r->hash, v, k, &after);
    if (rc == 0) {
        json_decref(res->ranges);
        res->ranges = ring_tokens_diff(before, after, &res->nranges);
        if (!res->ranges)
            rc = CITRUS_ENOMEM;
    }
    ring_free(before);
    ring_free(after);
    free(v);
    return rc;
}

/* Adds the token changes for shard s to t. */
static int add_token_ops(registry *r, txb *t, const shard *s, const ring_now *rn, reg_result *res)
{
    uint64_t *want;
    size_t nwant;
    int rc = tokens_want(r, s, rn, &want, &nwant);
    if (rc < 0)
        return rc;
    res->tokens_before = rn->ncur;
    res->tokens_after = nwant;
    if (!tokens_equal(rn->cur, rn->ncur, want, nwant)) {
        char key[KEYLEN];
        registry_key(key, sizeof(key), REG_RING_TOKENS, s->id);
        if (rn->tmod)
            txb_cmp_mod(t, key, rn->tmod);
        else
            txb_cmp_version(t, key, 0);
        if (nwant)
            txb_put_json(t, key, ring_tokens_json(want, nwant));
        else
            txb_del(t, key, false);
        txb_put_json(t, REG_RING_META, meta_json(r)); /* the ring version moves */
        res->ring_changed = true;
        rc = ring_change(r, &rn->o, s->id, want, nwant, res);
    }
    free(want);
    return rc;
}

static int ring_version_now(registry *r, int64_t *v)
{
    kv_range_req q = {.key = REG_RING_META};
    kv_range_res res;
    int rc = store_range(r->st, &q, &res);
    *v = rc == 0 && res.count ? res.items[0].mod_revision : 0;
    kv_range_res_free(&res);
    return rc;
}

void registry_txn_fence(txb *t, const reg_fence *fence)
{
    if (fence && fence->token > 0)
        txb_cmp(t, (kv_compare){.key = fence->key,
                                .target = KV_CMP_CREATE,
                                .op = KV_CMP_EQ,
                                .number = fence->token});
}

/* ---- changes ---- */

/* Commits t (not when rc is already an error; a dry run only pretends it
 * succeeded) and frees it. */
static int commit_txn(registry *r, txb *t, int rc, bool dry_run, bool *ok, int64_t *revision)
{
    if (rc == 0 && dry_run)
        *ok = true;
    else if (rc == 0)
        rc = registry_commit(r, t, ok, revision);
    txb_free(t);
    return rc;
}

/* ---- one database, one shard ---- */

#define DB_IDS_MAX 16

/* The databases a DSN names (dsn_identity) and their catalog keys. */
typedef struct db_ids {
    size_t n;
    char key[DB_IDS_MAX][sizeof(REG_SHARD_DB) + DIGEST_SHA256_HEX];
    const char *name[DB_IDS_MAX]; /* into text */
    char *text;
} db_ids;

static void db_ids_load(const char *dsn, db_ids *out)
{
    memset(out, 0, sizeof(*out));
    out->text = dsn ? dsn_identity(dsn, NULL) : NULL;
    for (char *p = out->text; p && *p && out->n < DB_IDS_MAX;) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        bool dup = false;
        for (size_t i = 0; i < out->n; i++)
            dup = dup || strcmp(out->name[i], p) == 0;
        char hex[DIGEST_SHA256_HEX + 1];
        if (!dup && digest_sha256_hex(p, strlen(p), hex) == 0) {
            snprintf(out->key[out->n], sizeof(out->key[0]), "%s%s", REG_SHARD_DB, hex);
            out->name[out->n++] = p;
        }
        p = nl ? nl + 1 : p + strlen(p);
    }
}

static void db_ids_free(db_ids *d)
{
    free(d->text);
    d->text = NULL;
    d->n = 0;
}

static bool db_ids_has(const db_ids *d, const char *name)
{
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->name[i], name) == 0)
            return true;
    return false;
}

static int db_conflict(errdetail *e, const char *name, const char *other)
{
    return errdetail_set(e, CITRUS_EREGCONFLICT,
                         "database %.600s is already registered as shard '%s' (one database, "
                         "one shard: delete that shard first)",
                         name, other);
}

/* CITRUS_EREGCONFLICT naming the shard other than id whose DSN names one
 * of ids' databases (records without their catalog keys too: those
 * written before the keys existed). */
static int db_conflict_scan(registry *r, const char *id, const db_ids *ids, errdetail *e)
{
    if (!ids->n)
        return 0;
    shard *v;
    size_t n;
    int rc = registry_shard_list(r, NULL, &v, &n);
    bool listed = rc == 0;
    for (size_t i = 0; listed && rc == 0 && i < n; i++) {
        if (!v[i].dsn || strcmp(v[i].id, id) == 0)
            continue;
        db_ids o;
        db_ids_load(v[i].dsn, &o);
        for (size_t j = 0; rc == 0 && j < o.n; j++)
            if (db_ids_has(ids, o.name[j]))
                rc = db_conflict(e, o.name[j], v[i].id);
        db_ids_free(&o);
    }
    if (listed)
        registry_shards_free(v, n);
    return rc;
}

int registry_shard_db_check(registry *r, const char *id, const char *dsn, errdetail *e)
{
    db_ids ids;
    db_ids_load(dsn, &ids);
    int rc = db_conflict_scan(r, id, &ids, e);
    db_ids_free(&ids);
    return rc;
}

/* After a commit that failed: CITRUS_EREGCONFLICT when one of ids' keys
 * now names another shard, else 0. */
static int db_conflict_keys(registry *r, const char *id, const db_ids *ids, errdetail *e)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < ids->n; i++) {
        kv_range_req q = {.key = ids->key[i]};
        kv_range_res res;
        rc = store_range(r->st, &q, &res);
        json_t *j = rc == 0 && res.count ? json_loadb((const char *)res.items[0].value,
                                                      res.items[0].value_len, 0, NULL)
                                         : NULL;
        const char *other = json_string_value(json_object_get(j, "shard_id"));
        if (other && strcmp(other, id) != 0)
            rc = db_conflict(e, ids->name[i], other);
        json_decref(j);
        kv_range_res_free(&res);
    }
    return rc;
}

/* Claims ids for shard id in t: each key created only if absent. */
static void db_ids_claim(txb *t, const char *id, const db_ids *ids, const db_ids *except)
{
    for (size_t i = 0; i < ids->n; i++) {
        if (except && db_ids_has(except, ids->name[i]))
            continue;
        txb_cmp_version(t, ids->key[i], 0);
        txb_put_json(t, ids->key[i],
                     json_pack("{s:s,s:s}", "shard_id", id, "database", ids->name[i]));
    }
}

/* Releases ids in t (those not in keep). */
static void db_ids_release(txb *t, const db_ids *ids, const db_ids *keep)
{
    for (size_t i = 0; i < ids->n; i++)
        if (!keep || !db_ids_has(keep, ids->name[i]))
            txb_del(t, ids->key[i], false);
}

static int registry_shard_create_dbs(registry *r, const shard *s, json_t *provision,
                                     const reg_fence *fence, const db_ids *ids, reg_result *res,
                                     errdetail *e);

static int registry_shard_create_once(registry *r, const shard *s, json_t *provision,
                                      const reg_fence *fence, reg_result *res, errdetail *e)
{
    memset(res, 0, sizeof(*res));
    char key[KEYLEN];
    if (!shard_id_valid(s->id) || !registry_key(key, sizeof(key), REG_SHARDS, s->id))
        return CITRUS_EINVAL;
    db_ids ids;
    db_ids_load(s->dsn, &ids);
    int rc = registry_shard_create_dbs(r, s, provision, fence, &ids, res, e);
    db_ids_free(&ids);
    return rc;
}

static int registry_shard_create_dbs(registry *r, const shard *s, json_t *provision,
                                     const reg_fence *fence, const db_ids *ids, reg_result *res,
                                     errdetail *e)
{
    char key[KEYLEN];
    registry_key(key, sizeof(key), REG_SHARDS, s->id);
    for (int tries = 0; tries < MODIFY_TRIES; tries++) {
        ring_now rn;
        int rc = db_conflict_scan(r, s->id, ids, e);
        if (rc < 0)
            return rc;
        rc = ring_now_load(r, s->id, &rn);
        txb t;
        txb_init(&t);
        txb_cmp_version(&t, key, 0);
        registry_txn_fence(&t, fence);
        txb_put_json(&t, key, shard_to_json(s, true));
        db_ids_claim(&t, s->id, ids, NULL);
        if (provision) {
            char pkey[KEYLEN];
            registry_key(pkey, sizeof(pkey), REG_PROVISION, s->id);
            txb_put_json(&t, pkey, json_incref(provision));
        }
        if (rc == 0)
            rc = add_token_ops(r, &t, s, &rn, res);
        ring_tokens_free(&rn.o);
        bool ok = false;
        rc = commit_txn(r, &t, rc, false, &ok, &res->revision);
        if (rc < 0)
            return rc;
        if (ok) {
            res->ring_version = res->ring_changed ? res->revision : 0;
            return res->ring_changed ? 0 : ring_version_now(r, &res->ring_version);
        }
        shard existing;
        if (registry_shard_get(r, s->id, &existing, NULL) == 0) {
            shard_clear(&existing);
            return errdetail_set(e, CITRUS_EEXISTS, "shard '%s' already exists", s->id);
        }
        if ((rc = db_conflict_keys(r, s->id, ids, e)) < 0)
            return rc;
    }
    return fence && fence->token > 0 ? CITRUS_ECONFLICT /* most likely no longer the controller */
                                     : CITRUS_EUNAVAILABLE;
}

static int registry_shard_modify_once(registry *r, const char *id, reg_mutate_fn fn, void *ctx,
                                      unsigned flags, const reg_fence *fence, shard *out,
                                      reg_result *res, errdetail *e)
{
    memset(res, 0, sizeof(*res));
    char key[KEYLEN];
    if (!registry_key(key, sizeof(key), REG_SHARDS, id))
        return CITRUS_ENOTFOUND;
    for (int tries = 0; tries < MODIFY_TRIES; tries++) {
        shard s;
        int64_t mod;
        int rc = registry_shard_get(r, id, &s, &mod);
        if (rc < 0)
            return rc;
        shard_state before = s.state;
        int64_t base = s.epoch;
        db_ids was, now;
        db_ids_load(s.dsn, &was);
        rc = fn(&s, ctx, e);
        s.base_epoch = base; /* what this write goes over (the relay's cue) */
        db_ids_load(rc == 0 ? s.dsn : NULL, &now);
        bool moved = rc == 0 && now.n && (!was.text || strcmp(was.text, now.text) != 0);
        if (moved)
            rc = db_conflict_scan(r, id, &now, e);
        size_t pinned = 0;
        if (rc == 0 && s.state == SHARD_RETIRED && before != SHARD_RETIRED) {
            rc = registry_tenant_count(r, id, true, &pinned);
            res->tenants_affected = pinned;
            if (rc == 0 && pinned && !(flags & REG_FORCE))
                rc = errdetail_set(
                    e, CITRUS_EFORCE,
                    "%zu registered tenant%s pinned to shard '%s'; retiring it would move %s "
                    "without %s data (force=true to do it anyway)",
                    pinned, pinned == 1 ? " is" : "s are", id, pinned == 1 ? "it" : "them",
                    pinned == 1 ? "its" : "their");
        }
        ring_now rn = {0};
        if (rc == 0)
            rc = ring_now_load(r, id, &rn);
        txb t;
        txb_init(&t);
        txb_cmp_mod(&t, key, mod);
        registry_txn_fence(&t, fence);
        if (rc == 0)
            rc = add_token_ops(r, &t, &s, &rn, res);
        ring_tokens_free(&rn.o);
        txb_put_json(&t, key, shard_to_json(&s, true));
        if (rc == 0 && moved) {
            db_ids_claim(&t, id, &now, &was); /* the DSN changed: so does its database */
            db_ids_release(&t, &was, &now);
        }
        bool ok = false;
        rc = commit_txn(r, &t, rc, flags & REG_DRY_RUN, &ok, &res->revision);
        if (rc == 0 && !ok)
            rc = db_conflict_keys(r, id, &now, e);
        db_ids_free(&was);
        db_ids_free(&now);
        if (rc < 0 || !ok) {
            shard_clear(&s);
            if (rc < 0)
                return rc;
            reg_result_clear(res);
            continue; /* changed meanwhile (or the fence moved: the next read tells) */
        }
        if (res->ring_changed && !(flags & REG_DRY_RUN))
            res->ring_version = res->revision;
        else /* unchanged, or a dry run: the version now */
            rc = ring_version_now(r, &res->ring_version);
        if (out)
            *out = s;
        else
            shard_clear(&s);
        return rc;
    }
    if (fence && fence->token > 0)
        return CITRUS_ECONFLICT; /* most likely no longer the controller */
    return CITRUS_EUNAVAILABLE;
}

static int registry_shard_delete_once(registry *r, const char *id, unsigned flags,
                                      const reg_fence *fence, reg_result *res, errdetail *e)
{
    memset(res, 0, sizeof(*res));
    char key[KEYLEN], pkey[KEYLEN], tkey[KEYLEN];
    if (!registry_key(key, sizeof(key), REG_SHARDS, id) ||
        !registry_key(pkey, sizeof(pkey), REG_PROVISION, id) ||
        !registry_key(tkey, sizeof(tkey), REG_RING_TOKENS, id))
        return CITRUS_ENOTFOUND;
    for (int tries = 0; tries < MODIFY_TRIES; tries++) {
        shard s = {0};
        int64_t mod;
        int rc = registry_shard_get(r, id, &s, &mod);
        if (rc < 0)
            return rc;
        bool failed = s.state == SHARD_FAILED;
        if (s.state != SHARD_RETIRED && !failed) {
            errdetail_set(e, CITRUS_EINUSE,
                          "shard '%s' is %s: only retired or failed shards can be deleted", id,
                          shard_state_name(s.state));
            shard_clear(&s);
            return CITRUS_EINUSE;
        }
        db_ids ids;
        db_ids_load(s.dsn, &ids);
        shard_clear(&s);
        size_t pinned = 0;
        ring_now rn;
        rc = ring_now_load(r, id, &rn);
        size_t ncur = rn.ncur;
        if (rc == 0)
            rc = registry_tenant_count(r, id, true, &pinned);
        res->tokens_before = ncur;
        res->tenants_affected = pinned;
        if (rc == 0 && (ncur || pinned) && !((flags & REG_FORCE) && failed)) {
            errdetail_set(
                e, CITRUS_EINUSE, "shard '%s' still has %zu tokens and %zu registered tenants%s",
                id, ncur, pinned,
                failed ? " (force=true removes them: the tenants move without their data)" : "");
            ring_tokens_free(&rn.o);
            db_ids_free(&ids);
            return CITRUS_EINUSE;
        }
        txb t;
        txb_init(&t);
        txb_cmp_mod(&t, key, mod);
        registry_txn_fence(&t, fence);
        txb_del(&t, key, false);
        txb_del(&t, pkey, false);
        db_ids_release(&t, &ids, NULL); /* the database is free again */
        db_ids_free(&ids);
        if (rc == 0 && ncur) {
            txb_cmp_mod(&t, tkey, rn.tmod);
            txb_del(&t, tkey, false);
            txb_put_json(&t, REG_RING_META, meta_json(r));
            res->ring_changed = true;
            rc = ring_change(r, &rn.o, id, NULL, 0, res);
        }
        ring_tokens_free(&rn.o);
        bool ok = false;
        rc = commit_txn(r, &t, rc, false, &ok, &res->revision);
        if (rc < 0)
            return rc;
        if (!ok) {
            reg_result_clear(res);
            continue;
        }
        res->ring_version = res->ring_changed ? res->revision : 0;
        if (!res->ring_changed)
            rc = ring_version_now(r, &res->ring_version);
        return rc;
    }
    return fence && fence->token > 0 ? CITRUS_ECONFLICT : CITRUS_EUNAVAILABLE;
}

/* ---- the public calls: on error, res holds nothing to free ---- */

int registry_shard_create(registry *r, const shard *s, json_t *provision, reg_result *res,
                          errdetail *e)
{
    return registry_shard_create_fenced(r, s, provision, NULL, res, e);
}

int registry_shard_create_fenced(registry *r, const shard *s, json_t *provision,
                                 const reg_fence *fence, reg_result *res, errdetail *e)
{
    int rc = registry_shard_create_once(r, s, provision, fence, res, e);
    if (rc < 0)
        reg_result_clear(res);
    return rc;
}

int registry_shard_modify(registry *r, const char *id, reg_mutate_fn fn, void *ctx, unsigned flags,
                          const reg_fence *fence, shard *out, reg_result *res, errdetail *e)
{
    int rc = registry_shard_modify_once(r, id, fn, ctx, flags, fence, out, res, e);
    if (rc < 0 && rc != CITRUS_EFORCE)
        reg_result_clear(res);
    return rc;
}

int registry_shard_delete(registry *r, const char *id, unsigned flags, reg_result *res,
                          errdetail *e)
{
    return registry_shard_delete_fenced(r, id, flags, NULL, res, e);
}

int registry_shard_delete_fenced(registry *r, const char *id, unsigned flags,
                                 const reg_fence *fence, reg_result *res, errdetail *e)
{
    int rc = registry_shard_delete_once(r, id, flags, fence, res, e);
    if (rc < 0 && rc != CITRUS_EINUSE)
        reg_result_clear(res);
    return rc;
}
