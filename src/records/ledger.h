/* records/ledger.h — what the event workers keep in the records store:
 * the processed-ids ledger (which events a consumer group has applied) and
 * the notifications the event notification worker stores.
 *
 * Exactly once, across kill -9: a worker applies an event's effect on the
 * records store and records the event's id in the ledger in ONE
 * transaction (records_processed_record). Either both are durable or
 * neither is, so an event redelivered after a crash (the bus is at least
 * once) is found in the ledger and its effect is not applied again; and an
 * id recorded twice (two deliveries racing, two copies of one event in
 * a batch) keeps the first, the later ones reported as duplicates with
 * nothing written for them.
 *
 * Bounded: the ledger and the notifications are purged by age
 * (records_processed_purge, records_notifications_purge); notification
 * texts are cut to their limits (as the audit log's, at a UTF-8 boundary,
 * invalid bytes replaced), data is at most RECORDS_MAX_NOTIFY_DATA bytes
 * (longer is refused: the worker stores a marker instead, see
 * workers/notify.c). The same store, the same rules and errors as
 * records.h (CITRUS_EAUDIT when the store is unavailable). */
#ifndef CITRUS_RECORDS_LEDGER_H
#define CITRUS_RECORDS_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/errdetail.h"
#include "records/records.h"

/* Ledger keys: 1..max bytes of printable ASCII without spaces (event ids
 * and group names follow that rule); never cut, since two ids that share a
 * prefix are different events. */
#define RECORDS_MAX_GROUP 256
#define RECORDS_MAX_EVENT_ID 256
/* Notification texts: cut to these. */
#define RECORDS_MAX_NOTIFY_SOURCE 1024
#define RECORDS_MAX_NOTIFY_TYPE 256
#define RECORDS_MAX_NOTIFY_SEVERITY 32
#define RECORDS_MAX_NOTIFY_SUBJECT 1024
/* A notification's data (JSON text): longer is CITRUS_ETOOBIGVAL. */
#define RECORDS_MAX_NOTIFY_DATA 65536
/* Entries of one records_processed_record call. */
#define RECORDS_PROCESSED_BATCH_MAX 1000

typedef struct notification_row {
    int64_t id;      /* assigned when stored: increasing in commit order, never reused */
    int64_t time_ms; /* the event's time (Unix ms), or when it was processed when it had none */
    const char *event_id;
    const char *source;
    const char *type;
    const char *severity; /* "info", "warning", ... (workers/notify.c) */
    const char *subject;  /* may be "" */
    const char *correlation_id;
    const char *data; /* the event's data as JSON text; NULL or "" stored as "null" */
} notification_row;

typedef struct notification_query {
    const char *source, *type, *severity; /* exact match (as normalized when stored), or NULL */
    int64_t since_ms;                     /* 0: no bound; else time_ms >= since_ms */
    int64_t after_id;                     /* rows with id > after_id */
    size_t limit; /* 0 = RECORDS_QUERY_DEFAULT_LIMIT; clamped to RECORDS_QUERY_MAX_LIMIT */
} notification_query;

/* One processed event. */
typedef struct processed_entry {
    const char *group;    /* the consumer group */
    const char *event_id; /* the envelope's id */
    int64_t time_ms;      /* when it was processed: the ledger's retention clock */
    /* The event's effect on the records store, written in the same
     * transaction as the ledger entry, only when the entry is new. NULL:
     * no effect (the event was filtered out, or its effect lies elsewhere). */
    const notification_row *notification;
    bool duplicate; /* out: the ledger had it already; nothing written for it */
} processed_entry;

/* *seen: whether (group, event_id) is in the ledger. */
int records_processed_seen(records *r, const char *group, const char *event_id, bool *seen,
                           errdetail *e);

/* Records entries[0..n) (1..RECORDS_PROCESSED_BATCH_MAX) in one
 * transaction, all or nothing: for each, in order, the ledger entry when
 * (group, event_id) is not there yet, and then its notification; else
 * duplicate is set and nothing is written for it. Returns 0 once durable.
 * A bad entry (empty or oversize key, oversize data) is CITRUS_EINVAL or
 * CITRUS_ETOOBIGVAL before anything is written. */
int records_processed_record(records *r, processed_entry *entries, size_t n, errdetail *e);

/* Retention: deletes the ledger entries processed before before_ms (in
 * batches); *deleted (may be NULL): how many. */
int records_processed_purge(records *r, int64_t before_ms, int64_t *deleted, errdetail *e);

/* The notifications matching q (NULL: all), by id, at most the limit;
 * *next_after as records_audit_query's. Free *rows with
 * notification_rows_free. */
int records_notifications_query(records *r, const notification_query *q, notification_row **rows,
                                size_t *n, int64_t *next_after, errdetail *e);
void notification_rows_free(notification_row *rows, size_t n);

/* Retention: deletes the notifications with time_ms < before_ms. */
int records_notifications_purge(records *r, int64_t before_ms, int64_t *deleted, errdetail *e);

/* ---- enrollment manifests (seed 000's enrollment_manifests) ----
 * A manifest is a JSON document stored by id (PUT /v1/manifests/{id}),
 * read by the enrollment ingest worker. Ids: 1..RECORDS_MAX_MANIFEST_ID
 * bytes of [A-Za-z0-9._:@-]; the body at most RECORDS_MAX_MANIFEST bytes of
 * JSON text (the caller checked it is JSON). */
#define RECORDS_MAX_MANIFEST_ID 256
#define RECORDS_MAX_MANIFEST (256 * 1024)

typedef struct manifest_row {
    char *body;         /* JSON text (malloc'd) */
    int64_t updated_ms; /* when it was last written (the caller's clock) */
    int64_t version;    /* 1 when created, + 1 per write */
} manifest_row;

/* Creates or replaces manifest id; *created (may be NULL): it was new;
 * *version (may be NULL): its version now. CITRUS_EINVAL for a bad id or
 * an empty body, CITRUS_ETOOBIGVAL past the size. */
int records_manifest_put(records *r, const char *id, const char *body, int64_t time_ms,
                         bool *created, int64_t *version, errdetail *e);
/* CITRUS_ENOTFOUND when there is none; free out->body. */
int records_manifest_get(records *r, const char *id, manifest_row *out, errdetail *e);

#endif
