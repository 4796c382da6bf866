/* workers/runner.h — a worker: one consumer group on one topic, run on
 * threads of its own (docs/events.md, "Workers").
 *
 * Each round: bus_poll (lease: visibility_ms) → for each event:
 *  - the envelope is parsed (wire/envelope.h); a malformed one is a
 *    permanent failure: bus_dead_letter, straight to <topic>.dlq with the
 *    parse error (no retries: no attempt can read it);
 *  - idempotency: an event whose id is in the processed-ids ledger
 *    (records/ledger.h, keyed by (group, event id)) is committed without
 *    running the handler again;
 *  - the handler; it fails → bus_nack (the bus's backoff, then its
 *    dead-letter topic after max_attempts), or bus_dead_letter when it
 *    says the failure is permanent;
 * then the events the handlers asked to publish (worker_effect.publish)
 * are published, one bus_publish_batch per topic (durable before the
 * ledger knows their source event: a crash in between publishes them again
 * with the same ids); then the ids of the events handled, each with its
 * records-store effect (a notification), are recorded in ONE transaction
 * (records_processed_record), and only then are they committed on the bus
 * (bus_commit_batch, with the duplicates found in the ledger).
 * A crash (kill -9) before that transaction applied nothing: the events
 * come again once their leases end. A crash after it and before the
 * commits: they come again, are found in the ledger and committed without
 * their handler. So every effect in the records store is applied exactly
 * once, though delivery is at least once.
 *
 * Order: a batch's events are handled in offset order per partition; an
 * event that fails is retried after the later events of its batch were
 * applied (the bus's backoff holds back only what comes after the batch).
 *
 * Metrics (obs/metrics.h), label worker="<name>": citrus_worker_processed_
 * total (handled and recorded, filtered ones included), _failed_total (a
 * handler, parse or store failure), _retried_total (failures the bus will
 * deliver again), _dead_lettered_total, _duplicates_total (found in the
 * ledger), _skipped_total (the handler's filter left them out), and the
 * gauge citrus_worker_lag_seconds: the age of the oldest event of the last
 * batch when it was polled (0 after an empty poll). Logs: JSON lines of
 * component "worker", carrying the event's correlationid.
 *
 * Time: the injected clock (ledger times, lag); tests drive rounds with
 * worker_run_once and move a test clock, no thread and no sleep. */
#ifndef CITRUS_WORKERS_RUNNER_H
#define CITRUS_WORKERS_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus/bus.h"
#include "core/errdetail.h"
#include "records/ledger.h"
#include "sys/clock.h"
#include "wire/envelope.h"

#define WORKER_OWNED_MAX 8

/* What a handler hands back on success. */
typedef struct worker_effect {
    /* Its effect on the records store, recorded with the ledger entry in
     * one transaction. The strings may borrow from the envelope or from
     * owned[] (freed by the runner once recorded). */
    bool has_notification;
    notification_row notification;
    char *owned[WORKER_OWNED_MAX];
    bool skipped; /* filtered out: nothing to do (counted as skipped) */
    /* An event to publish (publish_topic not NULL; the topic borrowed,
     * outliving the round; key and value may point into owned[]): the
     * runner publishes the round's events with bus_publish_batch, one
     * call per topic in batch order, after the handlers and before the
     * ledger's transaction. A failed publish fails the event (retried). */
    const char *publish_topic;
    bus_record publish;
    /* On failure: no retry can help, dead-letter it now. */
    bool permanent;
} worker_effect;

/* 0: handled (fx filled). < 0: failed, e says why (the nack's error). May
 * run on several threads at once (threads > 1). */
typedef int (*worker_handler)(void *ctx, const envelope *ev, const bus_message *m,
                              worker_effect *fx, errdetail *e);

typedef struct worker_spec {
    const char *name;  /* for metrics and logs: "event_notification" */
    const char *topic; /* consumed */
    const char *group; /* the consumer group (also the ledger's key) */
    bus *bus;
    records *rec;
    const sysclock *clock;  /* NULL: the real one */
    int64_t visibility_ms;  /* the poll's lease (bus.visibility_timeout_ms) */
    size_t batch;           /* events per poll; 0: 100 */
    size_t max_event_bytes; /* an envelope over this is malformed; 0: no limit */
    int max_attempts;       /* the bus's (for counting retried against dead-lettered) */
    int threads;            /* 0: 1 */
    int64_t idle_ms;        /* the pause after an empty poll or a failed round; 0: 200 */
    worker_handler handle;
    void *ctx;
    /* NULL: always. Else asked (with ctx) before each poll: false, and the
     * round polls nothing (e.g. the shard management worker while this node
     * is not the controller leader: it leases no command it cannot apply). */
    bool (*ready)(void *ctx);
} worker_spec;

typedef struct worker worker;

/* A worker with no thread yet. The strings of spec are copied. */
int worker_new(const worker_spec *spec, worker **out, errdetail *e);
/* One round (poll, handle, record, commit). *handled (may be NULL): the
 * events polled. < 0 when the poll failed. */
int worker_run_once(worker *w, size_t *handled, errdetail *e);
/* Starts its threads, which run rounds until worker_stop. */
int worker_start(worker *w, errdetail *e);
/* Stops it: each thread finishes its current round (the batch it holds is
 * handled, recorded and committed or nacked), then they are joined; then
 * frees w. NULL is fine. */
void worker_stop(worker *w);

#endif
