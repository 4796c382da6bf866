/* catalog/cache.h — a watch-fed in-memory copy of the whole catalog (an
 * informer), for bounded-staleness reads served without a store round trip.
 *
 * It loads a snapshot, then applies every change from a watch that starts
 * right after it; a broken watch (compaction, store trouble) makes it load
 * again. Staleness is measured, not assumed: every check_interval it asks
 * the store for its revision R at time t, and once the copy has applied R it
 * knows it was current at t. staleness = now - the latest such t. */
#ifndef CITRUS_CATALOG_CACHE_H
#define CITRUS_CATALOG_CACHE_H

#include <stdint.h>

#include "catalog/store.h"
#include "sys/clock.h"

typedef struct cache cache;

typedef struct cache_options {
    store *st;                 /* borrowed; outlives the cache */
    int64_t check_interval_ms; /* 0 = 250 */
    const sysclock *clock;     /* borrowed; times checks and staleness; NULL = real */
} cache_options;

/* Starts loading in the background; reads answer CITRUS_EUNAVAILABLE until
 * the first snapshot is in. */
int cache_start(const cache_options *opts, cache **out);
/* The same without the background thread: nothing loads or checks until
 * cache_run_once, so a test decides when each round happens (watch events
 * still arrive on the store's own threads). */
int cache_new(const cache_options *opts, cache **out);
/* One round of the background loop: (re)loads the snapshot when there is
 * none or the watch broke, then checks the store's revision and status
 * (timed on the copy's clock). From one thread at a time. */
void cache_run_once(cache *c);
/* Stops the thread (if started) and frees the copy. NULL is a no-op. */
void cache_stop(cache *c);

/* store_range from memory. out->revision is the copy's revision;
 * *staleness_ms (may be NULL) how old it may be (-1: never confirmed). */
int cache_range(cache *c, const kv_range_req *req, kv_range_res *out, int64_t *staleness_ms);

/* The copy's revision (0 before the first load). */
int64_t cache_revision(cache *c);
/* Milliseconds since the copy was last known to be current; -1 if never. */
int64_t cache_staleness_ms(cache *c);
/* The store status from the latest periodic check and its age, without
 * asking the store (so a health probe never waits on a slow catalog).
 * CITRUS_EUNAVAILABLE before the first answer. */
int cache_status(cache *c, store_status *out, int64_t *age_ms);
/* Whether the latest check, at most max_age_ms old, found the catalog
 * writable with quorum (cheap: for every routing read). */
bool cache_catalog_up(cache *c, int64_t max_age_ms);
/* Waits until the copy has applied revision rev, at most timeout_ms.
 * 0 when it has, CITRUS_ETIMEOUT otherwise. */
int cache_wait(cache *c, int64_t rev, int64_t timeout_ms);

#endif
