/* catalog/etcd_batch.h — concurrent blind puts to etcd, sent together.
 *
 * A txn that is one put and nothing else (no compare, no failure branch)
 * is "blind": its outcome does not depend on what else runs with it. When
 * such puts arrive while earlier ones are still at etcd, they wait and go
 * as one etcd txn (one raft entry, one fsync, one gateway request) as soon
 * as a batch in flight comes back: a group commit, as the embedded store
 * does. A batch never writes one key twice (etcd refuses that), stays
 * within etcd's default txn limits (128 ops, 1.5 MiB), and keeps arrival
 * order.
 *
 * Every put of a batch commits at one revision, as the ops of any etcd txn
 * do; each gets its own key's create_revision and version. When etcd
 * refuses a batch of several outright (nothing applied: for instance one
 * put names a lease that is gone), each put is sent again alone, so each
 * gets its own answer. When the outcome is unknown (timeout after
 * sending), every put of the batch answers CITRUS_ETIMEOUT. */
#ifndef CITRUS_CATALOG_ETCD_BATCH_H
#define CITRUS_CATALOG_ETCD_BATCH_H

#include <stdbool.h>

#include "catalog/etcd_client.h"
#include "catalog/store.h"
#include "sys/clock.h"

typedef struct etcd_batcher etcd_batcher;

/* done(ctx, rc, err): rc 0 with out filled, or a CITRUS_E* code (out left
 * empty) with etcd's detail in err (may be ""). Runs once, on the client's
 * I/O thread or on the submitting thread. */
typedef void (*etcd_batch_done_cb)(void *ctx, int rc, const char *err);

/* max_inflight: batches at etcd at once (>= 1); clock (borrowed, outlives
 * the batcher; NULL = real) times how long a batch has been out. NULL when
 * out of memory. */
etcd_batcher *etcd_batcher_new(etcd_client *cl, int max_inflight, const sysclock *clock);

/* Waits until every submitted put has been answered: queued ones are sent
 * and answered like any other. Call before closing the client, with no
 * more submits coming. NULL is a no-op. */
void etcd_batcher_drain(etcd_batcher *b);

/* After etcd_batcher_drain. NULL is a no-op. */
void etcd_batcher_free(etcd_batcher *b);

/* Whether txn is a blind single put that etcd_batch_submit takes. */
bool etcd_batch_takes(const kv_txn *txn);

/* Sends txn (etcd_batch_takes(txn) must hold) with others. txn, what it
 * points to and out must stay valid until done has run. */
void etcd_batch_submit(etcd_batcher *b, const kv_txn *txn, kv_txn_res *out, etcd_batch_done_cb done,
                       void *ctx);

#endif
