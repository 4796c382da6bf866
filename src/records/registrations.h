/* records/registrations.h — the registration queue's records (seed 003;
 * docs/events.md, "Registration queue"): one row per asynchronous
 * registration of a business-location, its state and its attempts.
 *
 * States: queued (accepted, its message on the registrations topic) →
 * running (the registration worker has it) → succeeded (shard_id set) or
 * retrying (a shard was unreachable; attempts, last_error and
 * next_attempt_ms say what and when) → ... → failed (a permanent error,
 * or the last of bus.max_attempts). A failed one goes back to queued by
 * records_reg_requeue (POST /v1/registrations/{id}/retry, POST
 * /v1/businesses/{id}/register-shards).
 *
 * Bounded: ids, business and location ids and types have their limits
 * below (longer is CITRUS_EINVAL); last_error is cut to
 * RECORDS_MAX_REG_ERROR (made valid UTF-8, as the audit log's texts); a
 * page is at most RECORDS_QUERY_MAX_LIMIT rows; finished registrations are
 * deleted by age (records_reg_purge). No DSN or password is ever stored:
 * only the shard's id. The same store and errors as records.h. */
#ifndef CITRUS_RECORDS_REGISTRATIONS_H
#define CITRUS_RECORDS_REGISTRATIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/errdetail.h"
#include "records/records.h"

#define RECORDS_MAX_REG_ID 64      /* a UUID is 36 */
#define RECORDS_MAX_REG_TENANT 128 /* business and location ids (tenant ids) */
#define RECORDS_MAX_REG_TYPE 64    /* a business type (schema template name) */
#define RECORDS_MAX_REG_SHARD 128  /* a shard id */
#define RECORDS_MAX_REG_ERROR 1024 /* last_error: cut to this */

/* The type of a registration's message on the registrations topic; its
 * data: {registrationId, businessId, locationId, businessType}. */
#define RECORDS_REG_EVENT_TYPE "citrus.registration.requested"

typedef enum reg_state {
    REG_QUEUED,
    REG_RUNNING,
    REG_RETRYING,
    REG_SUCCEEDED,
    REG_FAILED,
    REG_NSTATES
} reg_state;

const char *reg_state_name(reg_state s);
/* 0 and *out, or CITRUS_EINVAL for a name that is no state. */
int reg_state_parse(const char *name, reg_state *out);

typedef struct reg_row {
    int64_t seq; /* assigned when created: increasing, the list's order and cursor */
    char id[RECORDS_MAX_REG_ID + 1];
    char business_id[RECORDS_MAX_REG_TENANT + 1];
    char location_id[RECORDS_MAX_REG_TENANT + 1];
    char business_type[RECORDS_MAX_REG_TYPE + 1];
    reg_state state;
    int attempts; /* attempts made (all deliveries, retries included) */
    /* attempts since it was last queued (created, or re-driven by a retry):
     * what bus.max_attempts limits */
    int drive_attempts;
    char last_error[RECORDS_MAX_REG_ERROR + 1]; /* "" when none */
    /* retrying: the next attempt comes by then; running: the attempt's
     * deadline (its message's lease ends then); else 0 */
    int64_t next_attempt_ms;
    char shard_id[RECORDS_MAX_REG_SHARD + 1]; /* succeeded: where it is pinned; else "" */
    int64_t created_ms, updated_ms;
    int64_t finished_ms; /* succeeded or failed: when; else 0 */
    /* the correlation id of the request that queued it or last re-drove it
     * with its own X-Correlation-Id ("" when none): every message of the
     * registration carries it */
    char correlation_id[RECORDS_MAX_CORRELATION_ID + 1];
} reg_row;

typedef struct reg_query {
    bool has_state;
    reg_state state;
    const char *business_id; /* exact, or NULL */
    int64_t after_seq;       /* rows with seq > after_seq */
    size_t limit; /* 0 = RECORDS_QUERY_DEFAULT_LIMIT; clamped to RECORDS_QUERY_MAX_LIMIT */
} reg_query;

/* Stores a new registration (row->state, times and texts as given; seq
 * assigned into row->seq). CITRUS_EEXISTS when the id is taken,
 * CITRUS_EINVAL for an empty or oversize field. */
int records_reg_create(records *r, reg_row *row, errdetail *e);

/* The key of a registration's message: "<businessId>:<locationId>" (one
 * location's messages in order) into buf; its length. */
size_t records_reg_key(const reg_row *row, char *buf, size_t len);

/* CITRUS_ENOTFOUND when there is none. */
int records_reg_get(records *r, const char *id, reg_row *out, errdetail *e);

/* Writes row's state, attempts, last_error, next_attempt_ms, shard_id,
 * updated_ms, finished_ms and correlation_id over the stored row of row->id, only when its
 * state is still expect (REG_NSTATES: whatever it is). *changed (may be
 * NULL): whether it was written. */
int records_reg_update(records *r, const reg_row *row, reg_state expect, bool *changed,
                       errdetail *e);
/* The same, also only when its attempts are still expect_attempts (< 0:
 * whatever they are): a compare-and-set on the attempt a reader saw, so
 * that a change made meanwhile (another attempt ran) is not overwritten. */
int records_reg_update_if(records *r, const reg_row *row, reg_state expect, int expect_attempts,
                          bool *changed, errdetail *e);

/* The rows matching q, by seq; *next_after as records_audit_query's (0:
 * no more). Free *rows with free(). */
int records_reg_query(records *r, const reg_query *q, reg_row **rows, size_t *n,
                      int64_t *next_after, errdetail *e);

/* Retention: deletes the succeeded and failed registrations finished
 * before before_ms; *deleted (may be NULL): how many. */
int records_reg_purge(records *r, int64_t before_ms, int64_t *deleted, errdetail *e);

#endif
