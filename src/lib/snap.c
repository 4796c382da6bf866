/* lib/snap.c — the routing snapshot and its builder (see snap.h). */
#include "lib/snap.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "wire/catalog_keys.h"
#include "wire/route_json.h"
#include "wire/shard_json.h"

struct snap_ring {
    atomic_int refs;
    ring *rg;
};

struct snap_shards {
    atomic_int refs;
    shard *v; /* by id */
    size_t n;
};

struct snap_pins {
    atomic_int refs;
    snap_pin *v; /* by key */
    size_t n;
};

/* A raw catalog value. */
typedef struct raw {
    size_t len;
    unsigned char data[];
} raw;

/* ---- parts ---- */

static void ref_add(atomic_int *refs)
{
    atomic_fetch_add_explicit(refs, 1, memory_order_relaxed);
}

/* Whether that was the last reference (acquire-release: the freeing thread
 * sees every other holder's writes). */
static bool ref_drop(atomic_int *refs)
{
    return atomic_fetch_sub_explicit(refs, 1, memory_order_acq_rel) == 1;
}

static void ring_part_drop(snap_ring *p)
{
    if (p && ref_drop(&p->refs)) {
        ring_free(p->rg);
        free(p);
    }
}

static void shards_part_drop(snap_shards *p)
{
    if (p && ref_drop(&p->refs)) {
        for (size_t i = 0; i < p->n; i++)
            shard_clear(&p->v[i]);
        free(p->v);
        free(p);
    }
}

static void pins_part_drop(snap_pins *p)
{
    if (p && ref_drop(&p->refs)) {
        for (size_t i = 0; i < p->n; i++)
            free(p->v[i].key);
        free(p->v);
        free(p);
    }
}

snap *snap_ref(snap *s)
{
    ref_add(&s->refs);
    return s;
}

void snap_unref(snap *s)
{
    if (!s || !ref_drop(&s->refs))
        return;
    ring_part_drop(s->ring);
    shards_part_drop(s->shards);
    pins_part_drop(s->pins);
    free(s);
}

const ring *snap_ring_of(const snap *s)
{
    return s->ring->rg;
}

/* bsearch comparisons: a key against a pin, an id against a shard. */
static int pin_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const snap_pin *)elem)->key);
}

static int shard_cmp(const void *id, const void *elem)
{
    return strcmp(id, ((const shard *)elem)->id);
}

const snap_pin *snap_pin_find(const snap *s, const char *key)
{
    return s->pins->n ? bsearch(key, s->pins->v, s->pins->n, sizeof(snap_pin), pin_cmp) : NULL;
}

const shard *snap_shard(const snap *s, const char *id)
{
    return s->shards->n ? bsearch(id, s->shards->v, s->shards->n, sizeof(shard), shard_cmp) : NULL;
}

/* ---- the builder ---- */

void snap_builder_init(snap_builder *b)
{
    memset(b, 0, sizeof(*b));
    kmap_init(&b->ring, free);
    kmap_init(&b->shards, free);
    kmap_init(&b->pins, free);
    b->ring_dirty = b->shards_dirty = b->pins_dirty = true;
}

void snap_builder_reset(snap_builder *b)
{
    kmap_clear(&b->ring);
    kmap_clear(&b->shards);
    kmap_clear(&b->pins);
    b->ring_dirty = b->shards_dirty = b->pins_dirty = true;
}

void snap_builder_clear(snap_builder *b)
{
    snap_builder_reset(b);
    snap_unref(b->last);
    b->last = NULL;
}

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void *raw_new(const void *v, size_t len)
{
    raw *r = malloc(sizeof(*r) + len);
    if (r) {
        r->len = len;
        if (len)
            memcpy(r->data, v, len);
    }
    return r;
}

/* A pin's value in the builder: the snap_pin without its key. */
static void *pin_new(const void *v, size_t len, int *rc)
{
    tenant_pin p;
    memset(&p, 0, sizeof(p));
    *rc = route_json_pin(v, len, &p);
    snap_pin *out = *rc == 0 ? calloc(1, sizeof(*out)) : NULL;
    if (*rc == 0 && !out)
        *rc = CITRUS_ENOMEM;
    if (out) {
        memcpy(out->shard_id, p.shard_id, sizeof(out->shard_id));
        out->token = p.token;
    }
    return out;
}

int snap_builder_apply(snap_builder *b, const char *key, const void *v, size_t len,
                       int64_t mod_revision, bool deleted)
{
    kmap *m;
    bool *dirty;
    if (has_prefix(key, "citrus/ring/")) {
        m = &b->ring;
        dirty = &b->ring_dirty;
    } else if (has_prefix(key, REG_SHARDS)) {
        m = &b->shards;
        dirty = &b->shards_dirty;
    } else if (has_prefix(key, REG_TENANTS)) {
        m = &b->pins;
        dirty = &b->pins_dirty;
    } else {
        return 0;
    }
    if (!kmap_is_newer(m, key, mod_revision))
        return 0;
    *dirty = true;
    if (deleted) {
        kmap_del(m, key);
        return 0;
    }
    int rc = 0;
    void *val = m == &b->pins ? pin_new(v, len, &rc) : raw_new(v, len);
    if (!val) {
        kmap_del(m, key); /* an undecodable pin routes by the ring, as on the server */
        return rc < 0 ? rc : CITRUS_ENOMEM;
    }
    return kmap_put(m, key, mod_revision, val);
}

/* The ring from the meta and token lists (a list that does not decode is
 * left out). */
static snap_ring *ring_part_build(const kmap *m, int64_t *version)
{
    citrus_hash_fn fn = CITRUS_HASH_MURMUR3;
    size_t vnodes;
    *version = 0;
    ring_owner *owners = m->n ? calloc(m->n, sizeof(*owners)) : NULL;
    snap_ring *p = calloc(1, sizeof(*p));
    size_t n = 0, plen = strlen(REG_RING_TOKENS);
    int rc = p && (owners || !m->n) ? 0 : CITRUS_ENOMEM;
    for (size_t i = 0; rc == 0 && i < m->n; i++) {
        const raw *r = m->v[i].val;
        if (strcmp(m->v[i].key, REG_RING_META) == 0) {
            *version = m->v[i].mod_revision;
            if (route_json_meta(r->data, r->len, &fn, &vnodes) < 0)
                fn = CITRUS_HASH_MURMUR3;
            continue;
        }
        uint64_t *t;
        size_t nt;
        if (!has_prefix(m->v[i].key, REG_RING_TOKENS) ||
            route_json_tokens(r->data, r->len, &t, &nt) < 0)
            continue;
        owners[n++] = (ring_owner){.shard_id = m->v[i].key + plen, .tokens = t, .ntokens = nt};
    }
    if (rc == 0)
        rc = ring_build(fn, owners, n, &p->rg);
    for (size_t i = 0; i < n; i++)
        free((uint64_t *)owners[i].tokens);
    free(owners);
    if (rc < 0) {
        free(p);
        return NULL;
    }
    p->refs = 1;
    return p;
}

/* A part of size bytes and its array of n elements of elem bytes (*v;
 * NULL when n is 0); NULL out of memory. */
static void *part_new(size_t size, void **v, size_t n, size_t elem)
{
    void *p = calloc(1, size);
    if (p && n && !(*v = calloc(n, elem))) {
        free(p);
        return NULL;
    }
    return p;
}

/* Every shard record that decodes. */
static snap_shards *shards_part_build(const kmap *m)
{
    void *v = NULL;
    snap_shards *p = part_new(sizeof(*p), &v, m->n, sizeof(shard));
    if (!p)
        return NULL;
    *p = (snap_shards){.refs = 1, .v = v};
    for (size_t i = 0; i < m->n; i++) {
        const raw *r = m->v[i].val;
        json_t *j = json_loadb((const char *)r->data, r->len, 0, NULL);
        if (j && shard_from_json(j, &p->v[p->n], NULL) == 0)
            p->n++;
        json_decref(j);
    }
    /* kmap order is key order, and every key is REG_SHARDS + id: by id. */
    return p;
}

static snap_pins *pins_part_build(const kmap *m)
{
    void *v = NULL;
    snap_pins *p = part_new(sizeof(*p), &v, m->n, sizeof(snap_pin));
    if (!p)
        return NULL;
    *p = (snap_pins){.refs = 1, .v = v};
    size_t plen = strlen(REG_TENANTS);
    for (; p->n < m->n; p->n++) {
        const snap_pin *src = m->v[p->n].val;
        snap_pin *dst = &p->v[p->n];
        *dst = *src;
        if (!(dst->key = strdup(m->v[p->n].key + plen))) {
            pins_part_drop(p);
            return NULL;
        }
    }
    return p;
}

snap *snap_builder_publish(snap_builder *b, int64_t revision)
{
    snap *s = calloc(1, sizeof(*s)), *last = b->last;
    if (!s)
        return NULL;
    s->refs = 2; /* the builder's and the caller's */
    s->revision = revision;
    if (b->ring_dirty || !last) {
        s->ring = ring_part_build(&b->ring, &s->ring_version);
    } else {
        s->ring = last->ring;
        s->ring_version = last->ring_version;
        ref_add(&s->ring->refs);
    }
    if (b->shards_dirty || !last)
        s->shards = shards_part_build(&b->shards);
    else
        ref_add(&(s->shards = last->shards)->refs);
    if (b->pins_dirty || !last)
        s->pins = pins_part_build(&b->pins);
    else
        ref_add(&(s->pins = last->pins)->refs);
    if (!s->ring || !s->shards || !s->pins) {
        s->refs = 1;
        snap_unref(s);
        return NULL;
    }
    b->ring_dirty = b->shards_dirty = b->pins_dirty = false;
    snap_unref(last);
    b->last = s;
    return s;
}
