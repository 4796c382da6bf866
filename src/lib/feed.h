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
 * hands over to the next one, from the same revision. */
#ifndef CITRUS_LIB_FEED_H
#define CITRUS_LIB_FEED_H

#include "lib/handle.h"

/* Loads the copy (through endpoint fail-over) and publishes it. */
int feed_load(citrus_client *c, citrus_error *err);

/* Starts and stops the watch thread. */
int feed_start(citrus_client *c);
void feed_stop(citrus_client *c);

#endif
