/* catalog/store_etcd.h — the cluster catalog store: store.h on etcd v3.
 *
 * Talks to etcd (3.4 or later) through its v3 HTTP/JSON gateway
 * (etcd_client.c): ranges, txns, leases, compaction and status are unary
 * calls; watches share one etcd watch stream (etcd_watch.c). Revisions,
 * versions, leases and their expiry are etcd's own; this store keeps only
 * connections, the watch ring and what it learned about compaction.
 *
 * Errors beyond store.h: CITRUS_EUNAVAILABLE when no endpoint could be
 * reached before a request was sent, or etcd has no leader (nothing was
 * applied); CITRUS_ETIMEOUT when a write was sent but its answer did not
 * arrive in time (it may or may not be applied: outcome unknown);
 * CITRUS_ETOOMANY / CITRUS_ETOOBIGVAL for etcd's --max-txn-ops and
 * --max-request-bytes.
 *
 * Threads: store_txn_async callbacks run on the etcd client's I/O thread,
 * watch callbacks on the watch delivery thread. Neither may make a
 * synchronous store call (it would fail with CITRUS_EINTERNAL or wait on
 * itself); store_watch_close of another watch is fine from both.
 *
 * store_status: revision and writable come from one linearizable read
 * (writable: it succeeded, so etcd has a leader and a majority);
 * compact_revision is etcd's compaction point, probed (see store_etcd.c);
 * quorum = writable (a linearizable read needs a leader and a majority);
 * leader, members and healthy_members come from the members themselves,
 * refreshed in the background about once a second (so they may lag a
 * change by that much). When the read fails (no endpoint answers, no
 * leader) status returns CITRUS_EUNAVAILABLE but still fills every field:
 * writable and quorum false, revision the last one seen (not current), the
 * members as they last answered. */
#ifndef CITRUS_CATALOG_STORE_ETCD_H
#define CITRUS_CATALOG_STORE_ETCD_H

#include <stddef.h>
#include <stdint.h>

#include "catalog/store.h"
#include "core/errdetail.h"
#include "sys/clock.h"

typedef struct store_etcd_options {
    const char *const *endpoints; /* client URLs, "http://host:port"; copied */
    size_t nendpoints;
    int64_t connect_timeout_ms; /* per connection attempt; 0 = 1000 */
    int64_t request_timeout_ms; /* per request attempt; 0 = 5000 */
    long max_connections;       /* idle HTTP connections kept for reuse; 0 = 32 */
    size_t watch_ring_revs;     /* recent revisions kept in memory for watches; 0 = 10000 */
    size_t watch_ring_bytes;    /* and at most this many bytes of events; 0 = 64 MiB */
    int64_t watch_stall_ms;     /* a silent watch stream behind etcd is reopened; 0 = 1000 */
    /* Concurrent blind puts (one put, no compare) go to etcd together as
     * one txn (etcd_batch.h): more write throughput, but such puts may
     * then share a revision, which the catalog contract otherwise never
     * does (one revision per write). Off by default. */
    bool batch_puts;
    /* Times endpoint penalties, watch stalls and retries, batches and the
     * cluster view's age (borrowed, outlives the store); NULL = real. */
    const sysclock *clock;
    /* https endpoints (NULL or "": unused): the CAs the members'
     * certificates chain to (else the system's), and a client certificate
     * and key for etcd's --client-cert-auth; PEM files, read per connection. */
    const char *ca_file;
    const char *cert_file;
    const char *key_file;
} store_etcd_options;

/* Connects (one endpoint must answer: else CITRUS_EUNAVAILABLE), learns
 * etcd's revision and compaction point, and starts the shared watch
 * stream. On failure returns a negative code and writes a message to
 * e. store_close gives each watch still open a final CITRUS_ECLOSED
 * callback and frees it: do not call store_watch_close on it afterwards.
 * store_close lets txns in flight finish first (each within the request
 * timeout), so they complete with their real outcome; one that needs a
 * second request after close began fails with CITRUS_ECLOSED (nothing
 * applied). */
int store_etcd_open(const store_etcd_options *opts, store **out, errdetail *e);

/* Compacts etcd's history before rev (etcd's /v3/kv/compaction): rev
 * becomes the oldest revision a watch can start from. For operations and
 * tests; CITRUS_EINVAL for a store that is not a store_etcd. */
int store_etcd_compact(store *s, int64_t rev);

/* The endpoint requests go to first (the last one that worked); NULL for
 * a store that is not a store_etcd. */
const char *store_etcd_endpoint(store *s);

/* How many etcd watch streams the store has open: one shared stream, plus
 * one per watcher still catching up from before the shared stream's
 * history. 0 for a store that is not a store_etcd. */
size_t store_etcd_watch_streams(store *s);

#endif
