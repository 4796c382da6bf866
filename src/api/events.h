/* api/events.h — what the routes that operate the event bus share
 * (topics.c, consumers.c, dlq.c; docs/events.md, "Operating the bus"). */
#ifndef CITRUS_API_EVENTS_H
#define CITRUS_API_EVENTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/app.h"
#include "bus/bus.h"

#define EVENTS_PAGE_DEFAULT 100 /* ?limit= of a read */
#define EVENTS_PAGE_MAX 1000    /* and its most (never past the bus's poll_max) */

/* For a helper that replied (http_reply_error answers 0) and returns the
 * error to its caller: api_events_fail(http_reply_error(...), err). */
static inline int api_events_fail(int replied, int err)
{
    (void)replied;
    return err;
}

/* 0 when the request may write onto topic: sm-admin for a->admin_topic
 * (shard commands), the route's role for others; else replies 403 and
 * returns CITRUS_EFORBIDDEN. Shard commands on the embedded bus while this
 * node does not lead: replies 503, CITRUS_EUNAVAILABLE (they would wait on
 * this node's own log: only the leader's worker runs commands). */
int api_events_topic_writable(http_req *r, const app *a, const char *topic);

/* 0 when the node runs a bus; else replies 503 unavailable. */
int api_events_bus(http_req *r, const app *a);

/* The topic listing (bus_topics_list) and name's entry in it, or NULL; on
 * error it has replied and returns NULL with *rc the error. Free *all
 * with bus_topics_free(*all, *n). */
const bus_topic_entry *api_events_topic(http_req *r, app *a, const char *name,
                                        bus_topic_entry **all, size_t *n, int *rc);

/* ?partition=, ?from_offset= and ?limit= of a read of t: partition
 * (required when required, else def_partition), from_offset (default: the
 * partition's low), limit (1..EVENTS_PAGE_MAX, default
 * EVENTS_PAGE_DEFAULT). 0, or replied (400 junk or a partition outside
 * the topic, 410 compacted below low, 416 offset_out_of_range past high)
 * and the error. */
int api_events_page_args(http_req *r, const app *a, const bus_topic_entry *t, bool required,
                         int *partition, int64_t *from, size_t *limit);

/* One message as JSON: offset, time, key (or key_base64 when it is not
 * UTF-8 text), event (the value as JSON, or value_base64 when it is not
 * JSON); for a dead letter also id ("<partition>-<offset>"), error,
 * attempts, source_partition, source_offset. NULL on ENOMEM. */
json_t *api_events_message_json(const bus_message *m, bool dead_letter);

/* Appends m's JSON to items unless it would take *bytes past max (0: no
 * bound) and items is not empty: true when appended (*bytes grows). */
bool api_events_append(json_t *items, json_t *m, size_t max, size_t *bytes);

#endif
