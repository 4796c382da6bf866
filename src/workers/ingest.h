/* workers/ingest.h — the enrollment ingest worker (seed 000): an
 * enrollment-committed event (bus.topics.enrollment_events) → its manifest
 * from the records store (records_manifest_get) → the target shard of the
 * manifest's tenant_key (the directory's pin, else the ring) → a shard
 * ingest command on bus.topics.shard_ingest_commands (docs/events.md,
 * "Enrollment ingest").
 *
 * The manifest id is the event's data.manifest_id (a string), else its
 * subject. A missing manifest is a failure the bus retries with backoff
 * (the manifest may not be written yet), then dead-letters; an event that
 * names no manifest, or a manifest with no valid tenant_key, can never
 * succeed: dead-lettered at once.
 *
 * The command: type citrus.shard.ingest, source
 * /citrus/workers/enrollment-ingest, the enrollment event's id (unique per
 * source, so a command published again after a crash repeats its id and a
 * consumer dedupes it), subject the shard id, the event's correlationid and
 * traceparent, key the tenant key (one tenant's commands stay in order),
 * data {shard_id, connection_ref ("/v1/shards/<id>": where an authorized
 * consumer reads the shard's connection details, never the DSN itself),
 * tenant_key, manifest_id, manifest_version, enrollment_event_id,
 * routed_by ("directory" | "ring"), ring_version}. The handler does not
 * publish it: it hands it to the runner (worker_effect.publish), which
 * publishes the commands of a batch in one bus_publish_batch before the
 * batch's ledger transaction. */
#ifndef CITRUS_WORKERS_INGEST_H
#define CITRUS_WORKERS_INGEST_H

#include <stdbool.h>
#include <stdint.h>

#include "core/errdetail.h"
#include "workers/runner.h"

#define INGEST_COMMAND_TYPE "citrus.shard.ingest"
#define INGEST_SOURCE "/citrus/workers/enrollment-ingest"

typedef struct ingest_target {
    char shard_id[64];
    bool pinned; /* the directory's pin (else the ring) */
    int64_t ring_version;
} ingest_target;

/* Where tenant_key goes; < 0 with e when it cannot be told now (no shard
 * owns a token yet, the catalog is unavailable): the event is retried. */
typedef int (*ingest_route_fn)(void *ctx, const char *tenant_key, ingest_target *out, errdetail *e);

typedef struct ingest_ctx {
    records *rec;
    const char *topic; /* the commands' topic */
    const sysclock *clock;
    size_t max_event_bytes; /* of a command; 0: no limit */
    ingest_route_fn route;
    void *route_ctx;
} ingest_ctx;

/* The worker's handler: ctx is an ingest_ctx. */
int ingest_handle(void *ctx, const envelope *ev, const bus_message *m, worker_effect *fx,
                  errdetail *e);

#endif
