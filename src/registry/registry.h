/* registry/registry.h — shards, the ring and the tenant directory, kept in the
 * catalog so that every node answers the same.
 *
 * The catalog layout is wire/catalog_keys.h's.
 *
 * Token ownership is stored, not recomputed: a shard gets its tokens
 * (hash("<id>#<i>"), i < vnodes × weight) when it becomes active, keeps
 * them while active or read_only (and when it fails: its keys must not
 * silently land elsewhere), and loses them when it starts draining. A
 * weight change adds or removes tokens at the end of its list.
 *
 * Every change is one catalog txn guarded by the mod_revision of what it
 * read (and retried when someone else changed it first), plus the
 * controller's fencing compare when a fence is given. Calls block on the
 * catalog: use them from the work pool or background threads. */
#ifndef CITRUS_REGISTRY_REGISTRY_H
#define CITRUS_REGISTRY_REGISTRY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog/store.h"
#include "catalog/txb.h"
#include "core/errdetail.h"
#include "core/hash.h"
#include "core/ring.h"
#include "core/shard.h"
#include "sys/clock.h"
#include "wire/catalog_keys.h"

typedef struct registry registry;

/* Reads for the routing path (may be served from the node's copy).
 * *cached (may be NULL) is set to whether the node's copy answered because
 * the catalog is down (catalog/reader.h). */
typedef int (*reg_read_fn)(void *ctx, const kv_range_req *req, kv_range_res *out, bool *cached);

/* A fencing compare the controller adds to its writes (token 0: none). */
typedef struct reg_fence {
    const char *key;
    int64_t token;
} reg_fence;

/* Adds fence's compare (the leader key's create_revision equals the
 * token) to t; nothing when fence is NULL or its token 0. */
void registry_txn_fence(txb *t, const reg_fence *fence);

/* What a change did to the ring and the tenants. */
typedef struct reg_result {
    int64_t revision; /* of the change */
    bool ring_changed;
    int64_t ring_version;               /* after the change */
    size_t tokens_before, tokens_after; /* the shard's */
    size_t tenants_affected;            /* pinned to a shard being removed */
    json_t *ranges;                     /* token ranges that changed owner: [{start,end,from,to}] */
    size_t nranges;                     /* all of them (ranges lists at most 1000) */
} reg_result;

void reg_result_clear(reg_result *r);

/* The calls below fill a reg_result; release it with reg_result_clear after
 * success, and after CITRUS_EFORCE / CITRUS_EINUSE (which report counts in
 * it); after any other error it holds nothing. */
#define REG_FORCE 1u   /* allow changes that move registered tenants */
#define REG_DRY_RUN 2u /* compute the result, write nothing */

/* hash and vnodes are the defaults for a new catalog; an existing ring keeps
 * its own (registry_hash tells which). read may be NULL (store reads).
 * clock (kept; NULL: the real one) gives the times the registry and the
 * tenant directory record: history events and pins. */
registry *registry_new(store *st, const sysclock *clock, citrus_hash_fn hash, size_t vnodes,
                       reg_read_fn read, void *read_ctx);
void registry_free(registry *r);
/* The revision routing reads would be served at now, from memory, or -1
 * when that cannot be told without a read (then routing state must be
 * read again). Set once, before use; without it registry_revision is
 * store_revision (or -1 with a routing reader, which may not read the
 * store). */
typedef int64_t (*reg_revision_fn)(void *ctx, bool *cached);
void registry_set_revision_fn(registry *r, reg_revision_fn fn, void *ctx);
/* Called with the revision of every change the registry commits (shard
 * records, ring, pins, from the API or from a background worker alike), so
 * that the node's routing reads never serve a copy older than a change it
 * made itself. Set once, before use. */
typedef void (*reg_commit_fn)(void *ctx, int64_t revision);
void registry_set_commit_fn(registry *r, reg_commit_fn fn, void *ctx);
/* *cached (may be NULL): as for reg_read_fn, of the reads it stands for. */
int64_t registry_revision(registry *r, bool *cached);
/* Adopts the ring settings of citrus/ring/meta when it exists (else the
 * first token change writes this registry's). */
int registry_init(registry *r, errdetail *e);
citrus_hash_fn registry_hash(registry *r);
/* The clock it was given (NULL: the real one; clock_wall_ms takes both). */
const sysclock *registry_clock(registry *r);

/* ---- the catalog, as the registry's files (tenants.c) use it ---- */

/* A read: strong from the store itself (what a change decides on), else
 * through the routing path's reader (the node's copy when it may answer). */
int registry_range(registry *r, bool strong, const kv_range_req *req, kv_range_res *out);
/* txb_commit of t to the registry's store; a change that took effect is
 * reported to the commit hook (registry_set_commit_fn). revision may be
 * NULL. */
int registry_commit(registry *r, txb *t, bool *succeeded, int64_t *revision);
/* "<prefix><id>" into buf; false when it does not fit. */
bool registry_key(char *buf, size_t len, const char *prefix, const char *id);

/* ---- records that do not decode ----
 *
 * A shard record (citrus/shards/<id>) or a pin (citrus/tenants/<key>) that
 * is not what the registry writes (junk put there by hand) is reported on
 * its own: listings skip it, and the registry keeps its key and why (at
 * most REG_CORRUPT_MAX), as its reads last saw it: a listing of
 * citrus/shards/ replaces what it knew of that prefix, a read of one key
 * adds or drops that key. */
#define REG_CORRUPT_MAX 64
typedef struct reg_corrupt {
    char key[512];
    char error[200]; /* "corrupt record: ..." */
} reg_corrupt;
/* Up to max of the keys known corrupt under prefix ("" = all) into out, in
 * key order; returns how many (all of them when out is NULL). */
size_t registry_corrupt(registry *r, const char *prefix, reg_corrupt *out, size_t max);
/* Records what a read of key found: error NULL when it decoded (or is
 * gone), else why it did not. */
void registry_note_record(registry *r, const char *key, const char *error);
/* Reads again what registry_corrupt reports, so a record repaired or
 * deleted since drops out (and a new junk shard record shows): one
 * listing of citrus/shards/ through the routing reader, and one read of
 * each pin known corrupt. At most once per min_interval_ms (a clock_mono
 * of the registry's clock); 0 when done or not due. Blocks on the catalog. */
int registry_corrupt_recheck(registry *r, int64_t min_interval_ms);
/* Whether registry_corrupt_recheck would read now (it does not block). */
bool registry_corrupt_recheck_due(registry *r, int64_t min_interval_ms);

/* ---- shards ---- */

int registry_shard_get(registry *r, const char *id, shard *out, int64_t *mod);
/* Every shard (state_filter NULL) or those in *state_filter, by id; a
 * record that does not decode is left out (registry_corrupt reports it). */
int registry_shard_list(registry *r, const shard_state *state_filter, shard **out, size_t *n);
void registry_shards_free(shard *v, size_t n);
/* The same through the routing path's reader (the node's copy when it is
 * fresh): for the data plane. */
int registry_shard_read(registry *r, const char *id, shard *out);
int registry_shard_list_routing(registry *r, shard **out, size_t *n);

/* One database, one shard: CITRUS_EREGCONFLICT naming the shard other
 * than id whose DSN names a database dsn names (dsn_identity), else 0. A
 * check before the work that precedes registry_shard_create (probe,
 * template), which checks again, race-free. */
int registry_shard_db_check(registry *r, const char *id, const char *dsn, errdetail *e);

/* Adds a new shard record as given (its state and history already set by
 * the caller). provision (borrowed, may be NULL) is stored beside it for
 * the provisioning worker. A shard created active gets its tokens in the
 * same txn. CITRUS_EXISTS when the id is taken; CITRUS_EREGCONFLICT
 * naming the shard that already has its DSN's database (also when the
 * DSN changes in registry_shard_modify). */
int registry_shard_create(registry *r, const shard *s, json_t *provision, reg_result *res,
                          errdetail *e);
/* The same with the controller's fencing compare (fence NULL or token 0:
 * none): a write under a fence that moved is not applied, CITRUS_ECONFLICT
 * once the tries are spent (the fenced calls below say the same). */
int registry_shard_create_fenced(registry *r, const shard *s, json_t *provision,
                                 const reg_fence *fence, reg_result *res, errdetail *e);

/* Changes a shard: fn(s, ctx, e) edits the record read from the
 * catalog (returning 0, or an error that aborts with nothing written);
 * then the ring follows its state and weight (see above) and it is written
 * in one txn. Retried on a concurrent change. With a state that removes a
 * shard that still has pinned tenants (retired), CITRUS_EFORCE unless
 * REG_FORCE; then res->tenants_affected counts them, and the caller moves
 * them to their ring owners (tenants_repin) once the change is written.
 * out (may be NULL) gets the shard as written. */
typedef int (*reg_mutate_fn)(shard *s, void *ctx, errdetail *e);
int registry_shard_modify(registry *r, const char *id, reg_mutate_fn fn, void *ctx, unsigned flags,
                          const reg_fence *fence, shard *out, reg_result *res, errdetail *e);

/* Removes a shard record: only retired or failed ones that own no tokens
 * and have no pinned tenants (CITRUS_EINUSE naming what refers to it).
 * With REG_FORCE a failed shard's tokens go too, and res->tenants_affected
 * counts the pins the caller is to move (tenants_repin). */
int registry_shard_delete(registry *r, const char *id, unsigned flags, reg_result *res,
                          errdetail *e);
int registry_shard_delete_fenced(registry *r, const char *id, unsigned flags,
                                 const reg_fence *fence, reg_result *res, errdetail *e);

/* The provisioning spec stored with a shard (NULL when none). */
int registry_provision_get(registry *r, const char *id, json_t **spec);

/* How many tenants are pinned to the shard: counted in the store itself
 * when strong (what a change decides on), else as the registry's reads are
 * served (the node's copy when it may answer; for display). */
int registry_tenant_count(registry *r, const char *shard_id, bool strong, size_t *n);

/* ---- the ring ---- */

/* The current ring (shared, immutable; release with registry_ring_release)
 * and its version. An empty catalog gives an empty ring. *cached (may be
 * NULL): whether the reads behind it were served from the node's copy
 * because the catalog is down (reg_read_fn). */
int registry_ring(registry *r, const ring **out, int64_t *version, bool *cached);

/* registry_ring read from the store itself (strong), never from the node's
 * copy: for answers that show a shard record (read strong) with its
 * tokens, so that the two agree (an activated shard never shows 0 tokens
 * because the copy had not caught up). */
int registry_ring_strong(registry *r, const ring **out, int64_t *version);
void registry_ring_release(registry *r, const ring *rg);

#endif
