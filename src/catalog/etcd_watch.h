/* catalog/etcd_watch.h — store watches (store.h) over etcd watch streams.
 *
 * One shared etcd watch stream over the whole keyspace feeds an in-memory
 * ring of recent revisions; every watcher whose next revision is in the
 * ring (or later) is served from it by one delivery thread, so N watchers
 * cost one etcd stream. Because the shared stream sees every key, it sees
 * every revision: the ring is complete from ring_start through ring_head,
 * and a watcher's progress moves past revisions that have nothing for its
 * prefix. When the stream breaks it is reopened from ring_head + 1, so
 * nothing is skipped or repeated; so it is when it stalls (silent while
 * the client has seen answers from later revisions: a stopped member keeps
 * its connections open).
 *
 * A watcher that starts before the ring (or falls behind it) gets a
 * dedicated catch-up stream, also over the whole keyspace, from its next
 * revision; once it has been delivered everything before ring_start it
 * moves to the ring and its stream is closed. A catch-up stream is paused
 * while its undelivered events exceed a bound, so a slow consumer cannot
 * make etcd's backlog pile up in memory.
 *
 * Callbacks run on the delivery thread, one revision per call, in order,
 * never concurrently for one watch (store.h). */
#ifndef CITRUS_CATALOG_ETCD_WATCH_H
#define CITRUS_CATALOG_ETCD_WATCH_H

#include <stddef.h>
#include <stdint.h>

#include "catalog/etcd_client.h"
#include "catalog/store.h"

typedef struct etcd_watch etcd_watch;

typedef struct etcd_watch_options {
    etcd_client *client; /* borrowed; must outlive the hub */
    int64_t start_rev;   /* first revision of the ring (store revision at open + 1) */
    size_t ring_revs;    /* revisions kept in the ring; 0 = 10000 */
    size_t ring_bytes;   /* bytes of events kept in the ring; 0 = 64 MiB */
    /* A stream silent this long while etcd is known to be past what it
     * delivered is abandoned and reopened (elsewhere); 0 = 1000 ms. */
    int64_t stall_ms;
    /* Whether a watch may start at from_rev (> 0): 0, or CITRUS_ECOMPACTED
     * with *compact_rev set, or another error. probe: ask etcd (the watch
     * needs etcd's history), not only the compaction point known so far.
     * Called on the thread that opens the watch. */
    int (*check_from)(void *ctx, int64_t from_rev, bool probe, int64_t *compact_rev);
    /* etcd refused a watch start for compaction at rev (any thread). */
    void (*compacted)(void *ctx, int64_t rev);
    void *ctx;
    const sysclock *clock; /* stalls and retry backoff (borrowed, outlives the hub); NULL = real */
} etcd_watch_options;

/* Starts the delivery thread (which opens the shared stream). */
int etcd_watch_new(const etcd_watch_options *o, etcd_watch **out);

/* Stops the hub: each watch still open gets a final CITRUS_ECLOSED and is
 * freed (do not close it afterwards). NULL is a no-op. */
void etcd_watch_free(etcd_watch *h);

/* As store_watch_open (from_rev <= 0: after the latest revision this
 * process has seen). */
int etcd_watch_open(etcd_watch *h, const char *prefix, int64_t from_rev, store_watch_cb cb,
                    void *ctx, store_watch **out, int64_t *compact_rev);
/* As store_watch_close; also from another watch's callback. */
void etcd_watch_close(store_watch *w);
/* As store_watch_progress. */
int64_t etcd_watch_progress(store_watch *w);

/* How many etcd watch streams the hub has open (shared + catch-up). */
size_t etcd_watch_streams(etcd_watch *h);

#endif
