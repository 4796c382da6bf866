/* router/route_memo.h — the router's routing state in memory: each key's
 * route and its shard's routing fields, as read at one catalog revision,
 * answered again without a catalog read while the catalog has not moved.
 *
 * Entries are tagged with the revision registry_revision gave before they
 * were read (what was read is at least that new). A lookup names the
 * revision now: entries of any other revision are never answered, and the
 * first put of a newer revision drops them all, so a route is never older
 * than a catalog change the node has seen. Puts of an older revision are
 * ignored. At most max_keys keys are kept (then they are dropped and the
 * memo fills again). Thread-safe. */
#ifndef CITRUS_ROUTER_ROUTE_MEMO_H
#define CITRUS_ROUTER_ROUTE_MEMO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/shard.h"
#include "registry/tenants.h"

typedef struct route_memo route_memo;

/* max_keys 0 = 65536. NULL when out of memory. */
route_memo *route_memo_new(size_t max_keys);
void route_memo_free(route_memo *m);

/* Whether key's route is held for revision rev: then *ra is its answer and
 * *s (shard_init'ed here; shard_clear it) its shard's id, state, dsn and
 * replicas. False also when out of memory. */
bool route_memo_get(route_memo *m, int64_t rev, const char *key, route_answer *ra, shard *s);

/* Keeps key's route ra and s's routing fields, read at revision rev or
 * later. */
void route_memo_put(route_memo *m, int64_t rev, const char *key, const route_answer *ra,
                    const shard *s);

/* Keys held now (for tests). */
size_t route_memo_size(route_memo *m);

#endif
