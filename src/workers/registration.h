/* workers/registration.h — the registration worker (seed 003;
 * docs/events.md, "Registration queue"): the messages of
 * bus.topics.registrations (api/registrations.c publishes them) → the
 * registration the synchronous POST /api/register makes
 * (tenants_register with the business type's schema template, the same
 * service function), its record in the records store
 * (records/registrations.h) kept up to date:
 *
 *  - the record says succeeded already: nothing (a redelivery);
 *  - running (attempts + 1) while it runs;
 *  - done: succeeded with the shard's id (never its DSN). Idempotent as
 *    the synchronous call: the same location with the same type again is
 *    a success with the pin it has;
 *  - a permanent error (409: the location is registered with another
 *    business type; 422: a type without a template; 400): failed at once,
 *    the message straight to the dead letters (no retry can help);
 *  - any other error (a shard that does not answer, no active shard):
 *    retrying with the error and the latest time of the next attempt (the
 *    bus's backoff: bus.backoff_base_ms doubled per attempt, capped at
 *    bus.backoff_cap_ms, jitter down to half of it); after
 *    bus.max_attempts deliveries failed, the bus moves the message to
 *    <topic>.dlq. */
#ifndef CITRUS_WORKERS_REGISTRATION_H
#define CITRUS_WORKERS_REGISTRATION_H

#include <stdint.h>

#include "bus/bus.h"
#include "provision/service.h"
#include "records/registrations.h"
#include "workers/runner.h"

/* What the handler needs. */
typedef struct regq_worker_ctx {
    records *rec;
    shard_service *svc;      /* the shard manager */
    const sysclock *clock;   /* NULL: the real one */
    int max_attempts;        /* bus.max_attempts */
    int64_t backoff_base_ms; /* bus.backoff_base_ms */
    int64_t backoff_cap_ms;  /* bus.backoff_cap_ms */
    int64_t attempt_ms;      /* one attempt's deadline (shards that do not answer) */
    /* The registration itself; NULL: tenants_register with
     * svc_ensure_template (tests put a fake here). */
    int (*do_register)(void *ctx, const tenant_reg *reg, tenant_pin *pin, errdetail *e);
    void *do_ctx;
} regq_worker_ctx;

/* The worker's handler: ctx is a regq_worker_ctx. */
int regq_handle(void *ctx, const envelope *ev, const bus_message *m, worker_effect *fx,
                errdetail *e);

#endif
