/* lib/feed.h — loading libcitrus's routing copy from a Citrus API node and
 * keeping it fresh.
 *
 * A load lists citrus/shards/, citrus/ring/ and citrus/tenants/ (GET
 * /v1/kv/<prefix>?prefix=true, page by page) into the builder and
 * publishes a snapshot at the lowest revision any page was read at; the
 * watch then long-polls GET /v1/watch/citrus/ from that revision + 1 and
 * publishes after each answer (changes already in the listing are skipped
 * by their mod_revision, so pages read at different revisions converge).
 * A compacted watch loads again; an endpoint that fails or answers 503
 * hands over to the next one, from the same revision.
 *
 * The feed owns the builder, the watch thread, the watch's HTTP client and
 * its stop flag; it is given the connections and where to publish. */
#ifndef CITRUS_LIB_FEED_H
#define CITRUS_LIB_FEED_H

#include <stdbool.h>

#include "citrus/citrus.h"
#include "lib/conns.h"
#include "lib/snap.h"

typedef struct feed feed;

/* Takes s (a reference the callee now owns) as the current snapshot.
 * Called with the feed's build lock held, so snapshots come in the order
 * they were built: from the thread of feed_load, or the watch thread. */
typedef void feed_publish_fn(void *ctx, snap *s);

/* A feed loading through cs (kept, not owned: it must outlive the feed),
 * whose watch requests may take request_ms beyond their long poll, and
 * publishing to publish(ctx, ...). NULL out of memory. */
feed *feed_new(conns *cs, long request_ms, feed_publish_fn *publish, void *ctx);
/* Stops the watch (feed_stop) and frees f. NULL is a no-op. */
void feed_free(feed *f);

/* Loads the copy (through endpoint fail-over) and publishes it. Any
 * thread; loads are serialised. */
int feed_load(feed *f, citrus_error *err);

/* Starts and stops the watch thread, from the feed's owner (not
 * concurrently with each other or feed_free). feed_stop without a watch is
 * a no-op. */
int feed_start(feed *f);
void feed_stop(feed *f);
/* Whether the watch thread runs (set by feed_start and feed_stop only, so
 * any thread may ask between them). */
bool feed_watching(const feed *f);

#endif
