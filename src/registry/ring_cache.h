/* registry/ring_cache.h — the ring shared by every caller of one registry:
 * built once per ring version, immutable, reference-counted, so that a
 * route never rebuilds it and a caller still holding an older one keeps it
 * until it lets go.
 *
 * Threads: every call is safe from any thread (one mutex). */
#ifndef CITRUS_REGISTRY_RING_CACHE_H
#define CITRUS_REGISTRY_RING_CACHE_H

#include <stdint.h>

#include "core/ring.h"

typedef struct ring_cache ring_cache;

/* NULL when out of memory. ring_cache_free frees every ring it still has,
 * including ones a caller forgot to release. */
ring_cache *ring_cache_new(void);
void ring_cache_free(ring_cache *c);

/* The current ring and its version (a reference: release it) when its
 * version is at least min_version; else NULL. */
const ring *ring_cache_hold(ring_cache *c, int64_t min_version, int64_t *version);

/* Makes rg (taken over) the current ring at version unless the cache
 * already has one at least as new (then rg is freed), and returns a
 * reference to whichever is current, with its version; NULL (rg freed)
 * when out of memory. */
const ring *ring_cache_put(ring_cache *c, ring *rg, int64_t version, int64_t *have);

/* Lets go of a reference (NULL: nothing); a ring neither current nor held
 * any more is freed. */
void ring_cache_release(ring_cache *c, const ring *rg);

#endif
