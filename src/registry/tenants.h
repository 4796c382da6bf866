/* registry/tenants.h — the tenant directory and routing: explicit pins
 * (tenant key -> shard) that take precedence over the ring, and the
 * Citrus API's registration of business-locations.
 *
 * Registering a tenant pins it where the ring puts it now (the first
 * active shard at or after its hash), so a later ring change never moves a
 * registered tenant without a data move. A tenant key is 1..256 bytes of
 * [A-Za-z0-9._:@-]; the Citrus API's key is "<businessId>:<locationId>",
 * each 1..128 of [A-Za-z0-9._@-]. */
#ifndef CITRUS_REGISTRY_TENANTS_H
#define CITRUS_REGISTRY_TENANTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry/registry.h"
#include "wire/route_json.h"

bool tenant_key_valid(const char *key);
bool tenant_id_valid(const char *id); /* a businessId or locationId */

/* CITRUS_ENOTFOUND when the key is not pinned. */
int tenants_get(registry *r, const char *key, tenant_pin *out);

/* Pins in key order after `after` (NULL: from the start), at most limit,
 * optionally only those on shard_id. *more when there are more. */
int tenants_list(registry *r, const char *shard_id, const char *after, size_t limit,
                 tenant_pin **out, size_t *n, bool *more);

/* Pins key to shard_id (which must be active or read_only). Moving an
 * existing pin to another shard moves the tenant without its data:
 * CITRUS_EFORCE unless REG_FORCE. *created tells whether it was new. */
int tenants_put(registry *r, const char *key, const char *shard_id, unsigned flags, tenant_pin *out,
                bool *created, errdetail *e);

/* Removes a pin (the key then follows the ring). CITRUS_ENOTFOUND. */
int tenants_delete(registry *r, const char *key);

/* A business-location to register. */
typedef struct tenant_reg {
    const char *business_id, *location_id, *business_type;
} tenant_reg;

/* Registers n locations at once (all or none): each already registered
 * keeps its pin (created[i] false), each new one is pinned at its ring
 * owner (created[i] true). out[i] gets each pin. CITRUS_EUNAVAILABLE when
 * no shard is active. Before pinning, ensure(ctx, shard_id,
 * business_type) runs once per (shard, type) that receives a new tenant
 * (the schema template of the type); its failure aborts with nothing
 * pinned. ensure may be NULL. A location already registered with another
 * non-empty business_type is CITRUS_EREGCONFLICT (e names the registered
 * type) and nothing of the batch is pinned; a pin without a type (pinned
 * by PUT /v1/tenants) takes any. Two registrations of one new location
 * race on a create-only compare: the loser reads the winner's pin again
 * and gets its answer (same type) or CITRUS_EREGCONFLICT. */
typedef int (*tenant_ensure_fn)(void *ctx, const char *shard_id, const char *business_type,
                                errdetail *e);
int tenants_register(registry *r, const tenant_reg *regs, size_t n, tenant_ensure_fn ensure,
                     void *ensure_ctx, tenant_pin *out, bool *created, errdetail *e);
/* The same with the controller's fencing compare on the pins' write
 * (registry_txn_fence; fence NULL: none): under a fence that moved nothing
 * is pinned, CITRUS_ECONFLICT. Locations already registered are read, not
 * written, so they answer as without a fence. */
int tenants_register_fenced(registry *r, const tenant_reg *regs, size_t n, tenant_ensure_fn ensure,
                            void *ensure_ctx, const reg_fence *fence, tenant_pin *out,
                            bool *created, errdetail *e);

/* Moves every tenant pinned to shard_id to the first active shard at or
 * after its hash (its ring owner when that is active), each pin with its
 * own compare: what the service that took a shard out of the ring
 * (retired, or deleted with REG_FORCE) calls after that change, so that
 * no tenant is left pinned to a shard that no longer serves. *moved counts
 * them. CITRUS_EUNAVAILABLE (e says why) when no shard is active or the
 * pins kept changing under it. */
int tenants_repin(registry *r, const char *shard_id, size_t *moved, errdetail *e);
/* The same with the controller's fencing compare in every pin's txn
 * (registry_txn_fence; fence NULL or token 0: none), as the shard
 * management worker moves them: under a fence that moved no pin moves,
 * CITRUS_ECONFLICT once the tries are spent. */
int tenants_repin_fenced(registry *r, const char *shard_id, const reg_fence *fence, size_t *moved,
                         errdetail *e);

/* Whether a registered business type makes unregistered keys of its
 * businesses strict (router.require_registered per type). */
typedef bool (*tenant_type_fn)(void *ctx, const char *business_type);
/* *out: whether some location of business_id is registered with a type
 * strict says true of (read through the routing path's reader). 0 or the
 * catalog's error. */
int tenants_business_strict(registry *r, const char *business_id, tenant_type_fn strict, void *ctx,
                            bool *out);

/* Where a key goes: its pin, else the ring (the owner of the first token >=
 * hash(key), whatever its state). */
typedef struct route_answer {
    char shard_id[SHARD_ID_MAX + 1];
    bool pinned; /* source: directory (else ring) */
    uint64_t hash, token;
    int64_t ring_version;
} route_answer;

/* CITRUS_EUNAVAILABLE when the key is not pinned and the ring is empty. The
 * ring (from registry_ring) is passed in so a batch uses one. */
int tenants_route(registry *r, const ring *rg, int64_t ring_version, const char *key,
                  route_answer *out);

#endif
