/* registry/registry_internal.h — what registry.c and tenants.c share. */
#ifndef CITRUS_REGISTRY_REGISTRY_INTERNAL_H
#define CITRUS_REGISTRY_REGISTRY_INTERNAL_H

#include <pthread.h>

#include "registry/registry.h"
#include "catalog/txb.h"

typedef struct ring_ref {
    ring *rg;
    int64_t version;
    int refs;              /* guarded by registry.mu */
    struct ring_ref *next; /* in registry.retired */
} ring_ref;

struct registry {
    store *st;
    reg_read_fn read;
    void *read_ctx;
    reg_revision_fn revision;
    void *revision_ctx;
    reg_commit_fn committed;
    void *committed_ctx;
    citrus_hash_fn hash;
    size_t vnodes;
    pthread_mutex_t mu;
    ring_ref *cur;     /* the newest ring; guarded by mu */
    ring_ref *retired; /* older rings callers still hold; guarded by mu */
};

/* txb_commit of t to the registry's store, telling the commit hook the
 * revision of a change that took effect. */
int reg_commit(registry *r, txb *t, bool *succeeded, int64_t *revision);

/* A read through the routing path's reader (or the store); *cached (may
 * be NULL) as for reg_read_fn. */
int reg_read(registry *r, const kv_range_req *req, kv_range_res *out, bool *cached);

/* "<prefix><id>" into buf; false when it does not fit. */
bool reg_key(char *buf, size_t len, const char *prefix, const char *id);

/* Wall clock in ms, and as RFC 3339 UTC with milliseconds. */
int64_t reg_now_ms(void);
void reg_time_text(int64_t ms, char out[32]);

/* Builds the ring from a read of citrus/ring/ (meta and every token list);
 * *version is the meta's mod_revision (0 when absent). */
int reg_ring_from_range(registry *r, const kv_range_res *res, ring **out, int64_t *version);

/* Every shard's tokens from a strong read, for building rings that differ
 * from the current one by one shard. owners/tokens freed with
 * reg_owners_free. */
typedef struct reg_owners {
    ring_owner *v;
    size_t n;
    int64_t version;
} reg_owners;
int reg_owners_load(registry *r, reg_owners *out);
/* The same from a read of citrus/ring/ the caller made. */
int reg_owners_from_range(const kv_range_res *res, reg_owners *out);
void reg_owners_free(reg_owners *o);

/* The token ranges whose owner differs between two rings, as
 * [{start,end,from,to}] (at most 1000 listed; *n counts all). */
json_t *reg_ring_diff(const ring *a, const ring *b, size_t *n);

/* The shard a new tenant goes to: the owner of the first token >= hash
 * whose shard (looked up in shards) is active, walking the ring.
 * CITRUS_EUNAVAILABLE when none is. */
int reg_pick_active(const ring *rg, uint64_t hash, const shard *shards, size_t nshards,
                    const char **shard_id, uint64_t *token);

/* Re-pins every tenant pinned to shard_id at its ring owner (after the
 * shard lost its tokens). *moved counts them. */
int reg_repin_tenants(registry *r, const char *shard_id, size_t *moved, char *err, size_t errlen);

#endif
