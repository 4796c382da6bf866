/* registry/tenants.c — the tenant directory: pins, registration, routing
 * (see tenants.h). */
#include "registry/tenants.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "core/errdetail.h"
#include "registry/ring_tokens.h"
#include "wire/route_json.h"
#include "wire/shard_json.h"

#define KEYLEN 768
#define REGISTER_TRIES 8
#define REPIN_TRIES 8

static bool chars_ok(const char *s, size_t max, const char *extra)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr(extra, c)))
            return false;
    }
    return strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

bool tenant_key_valid(const char *key)
{
    return chars_ok(key, TENANT_KEY_MAX, "._:@-");
}

bool tenant_id_valid(const char *id)
{
    return chars_ok(id, TENANT_ID_MAX, "._@-");
}

static bool pin_key(char *buf, const char *key)
{
    return tenant_key_valid(key) && registry_key(buf, KEYLEN, REG_TENANTS, key);
}

static bool index_key(char *buf, const char *shard_id, const char *key)
{
    int n = snprintf(buf, KEYLEN, "%s%s/%s", REG_TENANT_INDEX, shard_id, key);
    return n > 0 && n < KEYLEN;
}

static json_t *pin_json(const tenant_pin *p)
{
    char h[24], t[24], at[32];
    snprintf(h, sizeof(h), "%" PRIu64, p->hash);
    snprintf(t, sizeof(t), "%" PRIu64, p->token);
    shard_json_time(p->pinned_ms, at, sizeof(at));
    return json_pack("{s:s,s:s,s:s,s:s,s:I,s:s?}", "shard_id", p->shard_id, "hash", h, "token", t,
                     "pinned_at", at, "pinned_ms", (json_int_t)p->pinned_ms, "business_type",
                     p->business_type[0] ? p->business_type : NULL);
}

/* Decodes a pin; one that does not is noted (registry_note_record) and
 * is CITRUS_ECORRUPT. */
static int pin_decode(registry *r, const kv_entry *e, const char *key, tenant_pin *out)
{
    memset(out, 0, sizeof(*out));
    int rc = route_json_pin(e->value, e->value_len, out);
    registry_note_record(r, e->key,
                         rc < 0 ? "corrupt record: not a tenant pin (a JSON object with shard_id)"
                                : NULL);
    if (rc < 0)
        return rc;
    snprintf(out->key, sizeof(out->key), "%s", key);
    out->mod_revision = e->mod_revision;
    return 0;
}

/* A pin read through fn (the store, or the routing path's reader). */
static int pin_read(registry *r, bool strong, const char *key, tenant_pin *out)
{
    char k[KEYLEN];
    if (!pin_key(k, key))
        return CITRUS_EINVAL;
    kv_range_req q = {.key = k};
    kv_range_res res;
    int rc = registry_range(r, strong, &q, &res);
    if (rc == 0 && res.count == 0)
        registry_note_record(r, k, NULL);
    if (rc == 0)
        rc = res.count ? pin_decode(r, &res.items[0], key, out) : CITRUS_ENOTFOUND;
    kv_range_res_free(&res);
    return rc;
}

int tenants_get(registry *r, const char *key, tenant_pin *out)
{
    return pin_read(r, true, key, out);
}

int tenants_list(registry *r, const char *shard_id, const char *after, size_t limit,
                 tenant_pin **out, size_t *n, bool *more)
{
    *out = NULL;
    *n = 0;
    *more = false;
    char prefix[KEYLEN], from[KEYLEN];
    if (shard_id)
        snprintf(prefix, sizeof(prefix), "%s%s/", REG_TENANT_INDEX, shard_id);
    else
        snprintf(prefix, sizeof(prefix), "%s", REG_TENANTS);
    if (after)
        snprintf(from, sizeof(from), "%s%s", prefix, after);
    kv_range_req q = {.key = prefix,
                      .prefix = true,
                      .after = after ? from : NULL,
                      .limit = limit,
                      .keys_only = shard_id != NULL};
    kv_range_res res;
    int rc = registry_range(r, true, &q, &res);
    tenant_pin *v = rc == 0 && res.count ? calloc(res.count, sizeof(*v)) : NULL;
    if (rc == 0 && res.count && !v)
        rc = CITRUS_ENOMEM;
    size_t k = 0, plen = strlen(prefix);
    for (size_t i = 0; rc == 0 && i < res.count; i++) {
        const char *key = res.items[i].key + plen;
        rc = shard_id ? pin_read(r, true, key, &v[k]) : pin_decode(r, &res.items[i], key, &v[k]);
        /* unpinned since the index was read; or junk, reported on its own */
        if (rc == CITRUS_ENOTFOUND || rc == CITRUS_ECORRUPT) {
            rc = 0;
            continue;
        }
        k++;
    }
    if (rc == 0)
        *more = res.more;
    kv_range_res_free(&res);
    if (rc < 0) {
        free(v);
        return rc;
    }
    *out = v;
    *n = k;
    return 0;
}

/* The shard record's mod_revision, for a compare that it did not change. */
static int shard_mod(registry *r, const char *id, shard_state *state, int64_t *mod)
{
    shard s;
    int rc = registry_shard_get(r, id, &s, mod);
    if (rc == 0) {
        *state = s.state;
        shard_clear(&s);
    }
    return rc;
}

/* Puts the ops that pin p (replacing old_shard's index entry if any). */
static void pin_ops(txb *t, const tenant_pin *p, const char *old_shard)
{
    char k[KEYLEN];
    pin_key(k, p->key);
    txb_put_json(t, k, pin_json(p));
    if (old_shard && strcmp(old_shard, p->shard_id) != 0 && index_key(k, old_shard, p->key))
        txb_del(t, k, false);
    if (index_key(k, p->shard_id, p->key))
        txb_put_json(t, k, json_string(""));
}

int tenants_put(registry *r, const char *key, const char *shard_id, unsigned flags, tenant_pin *out,
                bool *created, errdetail *e)
{
    char k[KEYLEN];
    if (!pin_key(k, key))
        return CITRUS_EINVAL;
    for (int tries = 0; tries < REGISTER_TRIES; tries++) {
        shard_state st = SHARD_PENDING;
        int64_t smod = 0;
        int rc = shard_mod(r, shard_id, &st, &smod);
        if (rc < 0)
            return errdetail_set(e, rc, "shard '%s' not found", shard_id);
        if (st != SHARD_ACTIVE && st != SHARD_READ_ONLY)
            return errdetail_set(e, CITRUS_ECONFLICT,
                                 "shard '%s' is %s: tenants can be pinned to active or read_only "
                                 "shards only",
                                 shard_id, shard_state_name(st));
        tenant_pin old;
        rc = pin_read(r, true, key, &old);
        if (rc < 0 && rc != CITRUS_ENOTFOUND)
            return rc;
        bool exists = rc == 0;
        if (exists && strcmp(old.shard_id, shard_id) == 0) {
            *out = old;
            *created = false;
            return 0;
        }
        if (exists && !(flags & REG_FORCE))
            return errdetail_set(
                e, CITRUS_EFORCE,
                "tenant '%s' is pinned to shard '%s'; moving it to '%s' moves it without its "
                "data (force=true to do it anyway)",
                key, old.shard_id, shard_id);
        tenant_pin p = {.pinned_ms = clock_wall_ms(registry_clock(r))};
        snprintf(p.key, sizeof(p.key), "%s", key);
        snprintf(p.shard_id, sizeof(p.shard_id), "%s", shard_id);
        if (exists)
            snprintf(p.business_type, sizeof(p.business_type), "%s", old.business_type);
        p.hash = citrus_hash(registry_hash(r), key, strlen(key));
        const ring *rg;
        int64_t rv;
        if (registry_ring(r, &rg, &rv, NULL) == 0) {
            ring_hit hit;
            if (ring_lookup_hash(rg, p.hash, &hit) == 0)
                p.token = hit.token;
            registry_ring_release(r, rg);
        }
        txb t;
        txb_init(&t);
        char skey[KEYLEN];
        registry_key(skey, sizeof(skey), REG_SHARDS, shard_id);
        txb_cmp_mod(&t, skey, smod);
        if (exists)
            txb_cmp_mod(&t, k, old.mod_revision);
        else
            txb_cmp_version(&t, k, 0);
        pin_ops(&t, &p, exists ? old.shard_id : NULL);
        bool ok;
        int64_t rev;
        rc = registry_commit(r, &t, &ok, &rev);
        txb_free(&t);
        if (rc < 0)
            return rc;
        if (ok) {
            p.mod_revision = rev;
            *out = p;
            *created = !exists;
            return 0;
        }
    }
    return CITRUS_EUNAVAILABLE;
}

int tenants_delete(registry *r, const char *key)
{
    char k[KEYLEN], ik[KEYLEN];
    for (int tries = 0; tries < REGISTER_TRIES; tries++) {
        tenant_pin old = {0};
        int rc = pin_read(r, true, key, &old);
        if (rc < 0)
            return rc;
        pin_key(k, key);
        txb t;
        txb_init(&t);
        txb_cmp_mod(&t, k, old.mod_revision);
        txb_del(&t, k, false);
        if (index_key(ik, old.shard_id, key))
            txb_del(&t, ik, false);
        bool ok;
        rc = registry_commit(r, &t, &ok, NULL);
        txb_free(&t);
        if (rc < 0 || ok)
            return rc;
    }
    return CITRUS_EUNAVAILABLE;
}

/* ---- registration ---- */

typedef struct ensured {
    const char *shard_id, *type;
} ensured;

static int ensure_once(ensured *done, size_t *ndone, const char *shard_id, const char *type,
                       tenant_ensure_fn ensure, void *ctx, errdetail *e)
{
    if (!ensure || !type || !*type)
        return 0;
    for (size_t i = 0; i < *ndone; i++)
        if (strcmp(done[i].shard_id, shard_id) == 0 && strcmp(done[i].type, type) == 0)
            return 0;
    int rc = ensure(ctx, shard_id, type, e);
    if (rc == 0)
        done[(*ndone)++] = (ensured){shard_id, type};
    return rc;
}

/* Where new pins go: the ring and every shard's record, read once for a
 * batch. */
typedef struct placement {
    const ring *rg;
    shard *shards;
    size_t nshards;
} placement;

static int placement_load(registry *r, placement *pl)
{
    int64_t version;
    memset(pl, 0, sizeof(*pl));
    int rc = registry_ring(r, &pl->rg, &version, NULL);
    if (rc == 0)
        rc = registry_shard_list(r, NULL, &pl->shards, &pl->nshards);
    return rc;
}

static void placement_free(registry *r, placement *pl)
{
    registry_shards_free(pl->shards, pl->nshards);
    registry_ring_release(r, pl->rg);
}

/* p's shard and token: the first active shard at or after p->hash. */
static int placement_pick(const placement *pl, tenant_pin *p)
{
    const char *sid;
    int rc = ring_tokens_pick_active(pl->rg, p->hash, pl->shards, pl->nshards, &sid, &p->token);
    if (rc == 0)
        snprintf(p->shard_id, sizeof(p->shard_id), "%s", sid);
    return rc;
}

/* One attempt: 1 when the pins changed meanwhile (try again). An ensure
 * that fails is tried once more (*ensure_retried) when no pin appeared:
 * a concurrent registration may have been applying the same template. */
static int register_once(registry *r, const tenant_reg *regs, size_t n, tenant_ensure_fn ensure,
                         void *ctx, const reg_fence *fence, tenant_pin *out, bool *created,
                         bool *ensure_retried, errdetail *e)
{
    size_t fresh = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char key[TENANT_KEY_MAX + 1];
        snprintf(key, sizeof(key), "%s:%s", regs[i].business_id, regs[i].location_id);
        rc = pin_read(r, true, key, &out[i]);
        created[i] = rc == CITRUS_ENOTFOUND;
        /* registered with another type: a conflict (also when a concurrent
         * registration won the create-only compare and we read again) */
        const char *want = regs[i].business_type ? regs[i].business_type : "";
        if (rc == 0 && out[i].business_type[0] && *want && strcmp(out[i].business_type, want) != 0)
            return errdetail_set(e, CITRUS_EREGCONFLICT,
                                 "'%s' is registered with businessType '%s', not '%s'", key,
                                 out[i].business_type, want);
        if (created[i]) {
            rc = 0;
            memset(&out[i], 0, sizeof(out[i]));
            snprintf(out[i].key, sizeof(out[i].key), "%s", key);
            fresh++;
        }
    }
    if (rc < 0 || fresh == 0)
        return rc;
    placement pl;
    rc = placement_load(r, &pl);
    ensured *done = rc == 0 ? calloc(n, sizeof(*done)) : NULL;
    size_t ndone = 0;
    bool ensure_failed = false;
    if (rc == 0 && !done)
        rc = CITRUS_ENOMEM;
    int64_t now = clock_wall_ms(registry_clock(r));
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!created[i])
            continue;
        tenant_pin *p = &out[i];
        p->hash = citrus_hash(registry_hash(r), p->key, strlen(p->key));
        rc = placement_pick(&pl, p);
        if (rc < 0) {
            errdetail_set(e, rc, "no active shard to place tenants on");
            break;
        }
        snprintf(p->business_type, sizeof(p->business_type), "%s",
                 regs[i].business_type ? regs[i].business_type : "");
        p->pinned_ms = now;
        rc = ensure_once(done, &ndone, p->shard_id, regs[i].business_type, ensure, ctx, e);
        ensure_failed = rc < 0;
    }
    /* a concurrent registration of the same location may have won meanwhile
     * (and its template made ours fail): read again for its answer */
    for (size_t i = 0; rc < 0 && i < n; i++) {
        tenant_pin now_pin;
        if (created[i] && pin_read(r, true, out[i].key, &now_pin) == 0)
            rc = 1;
    }
    if (ensure_failed && rc < 0 && !*ensure_retried) {
        *ensure_retried = true;
        rc = 1;
    }
    txb t;
    txb_init(&t);
    registry_txn_fence(&t, fence);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!created[i])
            continue;
        char k[KEYLEN];
        pin_key(k, out[i].key);
        txb_cmp_version(&t, k, 0);
        pin_ops(&t, &out[i], NULL);
        bool seen = false; /* the shard must not have changed since it was picked */
        for (size_t j = 0; j < i && !seen; j++)
            seen = created[j] && strcmp(out[j].shard_id, out[i].shard_id) == 0;
        if (!seen) {
            shard_state st = SHARD_PENDING;
            int64_t smod = 0;
            rc = shard_mod(r, out[i].shard_id, &st, &smod);
            if (rc == 0 && st != SHARD_ACTIVE)
                rc = 1;
            if (rc == 0) {
                registry_key(k, sizeof(k), REG_SHARDS, out[i].shard_id);
                txb_cmp_mod(&t, k, smod);
            }
        }
    }
    bool ok = false;
    int64_t rev = 0;
    if (rc == 0)
        rc = registry_commit(r, &t, &ok, &rev);
    txb_free(&t);
    if (rc == 0 && !ok)
        rc = 1;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (created[i])
            out[i].mod_revision = rev;
    free(done);
    placement_free(r, &pl);
    return rc;
}

int tenants_register(registry *r, const tenant_reg *regs, size_t n, tenant_ensure_fn ensure,
                     void *ensure_ctx, tenant_pin *out, bool *created, errdetail *e)
{
    return tenants_register_fenced(r, regs, n, ensure, ensure_ctx, NULL, out, created, e);
}

int tenants_register_fenced(registry *r, const tenant_reg *regs, size_t n, tenant_ensure_fn ensure,
                            void *ensure_ctx, const reg_fence *fence, tenant_pin *out,
                            bool *created, errdetail *e)
{
    for (size_t i = 0; i < n; i++)
        if (!tenant_id_valid(regs[i].business_id) || !tenant_id_valid(regs[i].location_id))
            return CITRUS_EINVAL;
    bool ensure_retried = false;
    for (int tries = 0; tries < REGISTER_TRIES; tries++) {
        int rc =
            register_once(r, regs, n, ensure, ensure_ctx, fence, out, created, &ensure_retried, e);
        if (rc <= 0)
            return rc;
    }
    if (fence && fence->token > 0)
        return errdetail_set(e, CITRUS_ECONFLICT,
                             "nothing registered: the writes kept failing their compares (most "
                             "likely this node is no longer the controller leader)");
    return errdetail_set(e, CITRUS_EUNAVAILABLE, "the directory kept changing; nothing registered");
}

/* ---- routing ---- */

int tenants_route(registry *r, const ring *rg, int64_t ring_version, const char *key,
                  route_answer *out)
{
    memset(out, 0, sizeof(*out));
    out->ring_version = ring_version;
    out->hash = citrus_hash(registry_hash(r), key, strlen(key));
    tenant_pin p;
    int rc = tenant_key_valid(key) ? pin_read(r, false, key, &p) : CITRUS_ENOTFOUND;
    if (rc == 0) {
        snprintf(out->shard_id, sizeof(out->shard_id), "%s", p.shard_id);
        out->pinned = true;
        out->token = p.token;
        return 0;
    }
    if (rc != CITRUS_ENOTFOUND)
        return rc;
    ring_hit hit;
    if (ring_lookup_hash(rg, out->hash, &hit) < 0)
        return CITRUS_EUNAVAILABLE;
    snprintf(out->shard_id, sizeof(out->shard_id), "%s", hit.shard_id);
    out->token = hit.token;
    return 0;
}

/* Whether any location of business_id registered with a type strict()
 * says yes to (the routing path's reader, page by page). */
int tenants_business_strict(registry *r, const char *business_id, tenant_type_fn strict, void *ctx,
                            bool *out)
{
    *out = false;
    char prefix[KEYLEN], from[KEYLEN], last[TENANT_ID_MAX + 1] = "";
    if (!strict || !tenant_id_valid(business_id) ||
        !registry_key(prefix, sizeof(prefix), REG_TENANTS, business_id))
        return 0;
    size_t plen = strlen(prefix);
    if (plen + 2 > sizeof(prefix))
        return 0;
    prefix[plen++] = ':';
    prefix[plen] = '\0';
    bool more = true;
    from[0] = '\0';
    while (more && !*out) {
        kv_range_req q = {
            .key = prefix, .prefix = true, .after = from[0] ? from : NULL, .limit = 256};
        kv_range_res res;
        int rc = registry_range(r, false, &q, &res);
        if (rc < 0)
            return rc;
        more = res.more && res.count > 0;
        for (size_t i = 0; i < res.count && !*out; i++) {
            tenant_pin p;
            if (route_json_pin(res.items[i].value, res.items[i].value_len, &p) < 0 ||
                !p.business_type[0] || strcmp(p.business_type, last) == 0)
                continue;
            snprintf(last, sizeof(last), "%s", p.business_type);
            *out = strict(ctx, p.business_type);
        }
        if (res.count)
            snprintf(from, sizeof(from), "%s", res.items[res.count - 1].key);
        kv_range_res_free(&res);
    }
    return 0;
}

/* ---- moving the tenants of a shard that left the ring ---- */

int tenants_repin(registry *r, const char *shard_id, size_t *moved, errdetail *e)
{
    return tenants_repin_fenced(r, shard_id, NULL, moved, e);
}

int tenants_repin_fenced(registry *r, const char *shard_id, const reg_fence *fence, size_t *moved,
                         errdetail *e)
{
    *moved = 0;
    int idle = 0; /* rounds that moved nothing (every compare lost a race) */
    for (;;) {
        size_t before = *moved;
        tenant_pin *pins;
        size_t n;
        bool more;
        int rc = tenants_list(r, shard_id, NULL, 100, &pins, &n, &more);
        if (rc < 0)
            return rc;
        if (n == 0) {
            free(pins);
            return 0;
        }
        placement pl;
        rc = placement_load(r, &pl);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            tenant_pin p = pins[i];
            rc = placement_pick(&pl, &p);
            if (rc < 0) {
                errdetail_set(e, rc, "no active shard to move the tenants of '%s' to", shard_id);
                break;
            }
            char k[KEYLEN];
            pin_key(k, p.key);
            txb t;
            txb_init(&t);
            txb_cmp_mod(&t, k, pins[i].mod_revision);
            registry_txn_fence(&t, fence);
            pin_ops(&t, &p, shard_id);
            bool ok;
            rc = registry_commit(r, &t, &ok, NULL);
            txb_free(&t);
            *moved += rc == 0 && ok;
        }
        placement_free(r, &pl);
        free(pins);
        if (rc < 0)
            return rc;
        if (*moved == before && ++idle >= REPIN_TRIES) {
            if (fence && fence->token > 0)
                return errdetail_set(e, CITRUS_ECONFLICT,
                                     "the tenants of '%s' were not moved: the writes kept failing "
                                     "their compares (most likely this node is no longer the "
                                     "controller leader)",
                                     shard_id);
            return errdetail_set(e, CITRUS_EUNAVAILABLE,
                                 "the tenants of '%s' kept changing while being moved", shard_id);
        }
    }
}
