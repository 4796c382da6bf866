/* workers/notify.h — the event notification worker (seed 000): platform
 * events → notifications in the records store, filtered by source, type and
 * severity (docs/events.md, "Notifications").
 *
 * The filter (config workers.notification_filter): three lists, sources,
 * types and severities; an empty list lets everything through; an item
 * ending in '*' matches every value starting with what precedes it
 * (/citrus/ followed by a star, "citrus.shard." followed by one), any other item the value exactly
 * (severities without regard to case). An event is stored when it matches
 * all three lists; one that does not is committed and counted as skipped,
 * nothing stored.
 *
 * Severity: the event's `severity` extension attribute when it is a string,
 * else its data's `severity` member when data is an object holding a
 * string, else "info"; lower-cased, cut to RECORDS_MAX_NOTIFY_SEVERITY. */
#ifndef CITRUS_WORKERS_NOTIFY_H
#define CITRUS_WORKERS_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/errdetail.h"
#include "workers/runner.h"

#define NOTIFY_FILTER_MAX_ITEMS 64 /* per list */
#define NOTIFY_DEFAULT_SEVERITY "info"

typedef struct notify_filter notify_filter;

/* Lists as comma-separated text (NULL or "": empty). An empty item, more
 * than NOTIFY_FILTER_MAX_ITEMS, or an item longer than its field's limit
 * is CITRUS_EINVAL naming the list. */
int notify_filter_new(const char *sources, const char *types, const char *severities,
                      notify_filter **out, errdetail *e);
void notify_filter_free(notify_filter *f);
bool notify_filter_match(const notify_filter *f, const char *source, const char *type,
                         const char *severity);

/* The event's severity (see above) into buf (RECORDS_MAX_NOTIFY_SEVERITY + 1
 * bytes). */
void notify_severity(const envelope *ev, char *buf, size_t len);

/* The worker's handler: ctx is a notify_filter. */
int notify_handle(void *ctx, const envelope *ev, const bus_message *m, worker_effect *fx,
                  errdetail *e);

#endif
