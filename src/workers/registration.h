/* workers/registration.h — the registration worker (seed 003;
 * docs/events.md, "Registration queue"): the messages of
 * bus.topics.registrations (api/registrations.c publishes them) → the
 * registration the synchronous POST /api/register makes
 * (tenants_register with the business type's schema template, the same
 * service function), its record in the records store
 * (records/registrations.h) kept up to date:
 *
 *  - the record says succeeded already: nothing (a redelivery);
 *  - running (attempts + 1, drive_attempts + 1, next_attempt_ms the
 *    deadline of the delivery's lease) while it runs, claimed with a
 *    compare on the attempts read (two copies of a message never run at
 *    once: the loser is committed as skipped);
 *  - done: succeeded with the shard's id (never its DSN). Idempotent as
 *    the synchronous call: the same location with the same type again is
 *    a success with the pin it has;
 *  - a permanent error (409: the location is registered with another
 *    business type; 422: a type without a template; 400): failed at once,
 *    the message straight to the dead letters (no retry can help);
 *  - any other error (a shard that does not answer, no active shard):
 *    retrying with the error and the time of the next attempt (the bus's
 *    backoff: bus.backoff_base_ms doubled per attempt, capped at
 *    bus.backoff_cap_ms, jittered down to half), and the message is
 *    COMMITTED: a nacked one would hold back its whole partition (other
 *    businesses' registrations) while it waits. regq_sweep publishes the
 *    next attempt once it is due. The attempt that makes drive_attempts
 *    bus.max_attempts fails it: failed, the message to <topic>.dlq.
 *
 * regq_sweep (the workers role runs it every few hundred ms) publishes
 * the due attempts of retrying registrations, and fixes a running one
 * whose lease ended over a lease ago without a new delivery (the worker
 * died during its last delivery, which the bus dead-lettered): retrying
 * (due now), or failed when that was attempt bus.max_attempts. So no
 * record stays running. */
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
    int max_attempts;        /* bus.max_attempts: attempts per drive */
    int64_t backoff_base_ms; /* bus.backoff_base_ms */
    int64_t backoff_cap_ms;  /* bus.backoff_cap_ms */
    /* the jitter's random source (NULL: getrandom), as bus_config's */
    uint64_t (*random)(void *ctx);
    void *random_ctx;
    int64_t attempt_ms; /* one attempt's deadline (shards that do not answer) */
    int64_t lease_ms;   /* bus.visibility_timeout_ms: a delivery's lease */
    bus *bus;           /* where regq_sweep publishes the next attempts */
    const char *topic;  /* bus.topics.registrations */
    /* The registration itself; NULL: tenants_register with
     * svc_ensure_template (tests put a fake here). */
    int (*do_register)(void *ctx, const tenant_reg *reg, tenant_pin *pin, errdetail *e);
    void *do_ctx;
} regq_worker_ctx;

/* The worker's handler: ctx is a regq_worker_ctx. */
int regq_handle(void *ctx, const envelope *ev, const bus_message *m, worker_effect *fx,
                errdetail *e);

/* One sweep (see above): *published the attempts published, *stale the
 * running records found abandoned. < 0 when the records store failed;
 * a publish that fails is logged and tried again by the next sweep. Safe
 * on several nodes at once. */
int regq_sweep(const regq_worker_ctx *c, size_t *published, size_t *stale, errdetail *e);

#endif
