/* api/dlq.c — /v1/dlq/{topic}: the dead letters of <topic>.dlq, and their
 * replay on <topic> (docs/events.md, "Operating the bus"). A dead letter's
 * id is "<partition>-<offset>" in the dead-letter topic. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/events.h"
#include "api/handlers.h"
#include "citrus/errors.h"

/* name + ".dlq" into buf: false (replied 404) when it does not fit. */
static bool dlq_name(http_req *r, const char *topic, char *buf, size_t len)
{
    if ((size_t)snprintf(buf, len, "%s" BUS_DLQ_SUFFIX, topic) < len)
        return true;
    http_reply_errorf(r, CITRUS_ENOTFOUND, "no topic '%.200s'", topic);
    return false;
}

/* The topic and its dead-letter topic, from one listing: the dead-letter
 * entry, or NULL after a reply (404 for either unknown). */
static const bus_topic_entry *dlq_topic(http_req *r, app *a, const char *topic, const char *dlq,
                                        bus_topic_entry **all, size_t *n, int *rc)
{
    const bus_topic_entry *src = api_events_topic(r, a, topic, all, n, rc);
    if (!src)
        return NULL;
    if (src->dlq) {
        http_reply_errorf(r, CITRUS_ENOTFOUND, "'%s' is a dead-letter topic; name its source topic",
                          topic);
        *rc = CITRUS_ENOTFOUND;
        return NULL;
    }
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*all)[i].name, dlq) == 0)
            return &(*all)[i];
    http_reply_errorf(r, CITRUS_ENOTFOUND, "topic '%s' has no dead-letter topic", topic);
    *rc = CITRUS_ENOTFOUND;
    return NULL;
}

int api_dlq_list(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_dlq_list, ctx);
    app *a = ctx;
    if (api_events_bus(r, a) < 0)
        return CITRUS_EUNAVAILABLE;
    const char *topic = http_req_param(r, "topic");
    char dlq[BUS_NAME_MAX + 8];
    if (!dlq_name(r, topic, dlq, sizeof(dlq)))
        return CITRUS_ENOTFOUND;
    bus_topic_entry *all = NULL;
    size_t nt = 0;
    int rc;
    const bus_topic_entry *t = dlq_topic(r, a, topic, dlq, &all, &nt, &rc);
    int part = 0;
    int64_t from = 0;
    size_t limit = 0;
    if (t)
        rc = api_events_page_args(r, a, t, false, &part, &from, &limit);
    if (rc < 0) {
        bus_topics_free(all, nt);
        return rc;
    }
    /* from (part, from) on, partition after partition, until limit or the
     * answer's bound */
    json_t *items = json_array();
    size_t bytes = 0;
    bool full = false;
    int p = part;
    int64_t off = from;
    errdetail e;
    while (rc == 0 && !full && p < t->info.partitions) {
        if (off >= t->parts[p].high) {
            if (++p < t->info.partitions)
                off = t->parts[p].low;
            continue;
        }
        bus_message *m = NULL;
        size_t n = 0;
        rc = bus_read(a->bus, dlq, p, off, limit - json_array_size(items), &m, &n, &e);
        for (size_t i = 0; rc == 0 && i < n && !full; i++) {
            full = !api_events_append(items, api_events_message_json(&m[i], true),
                                      a->max_response_bytes, &bytes);
            if (!full)
                off = m[i].offset + 1;
        }
        bus_messages_free(m, n);
        if (rc == 0 && n == 0)
            off = t->parts[p].high; /* nothing more in this partition */
        full = full || json_array_size(items) >= limit;
    }
    /* where the next page starts: the first partition from (p, off) with
     * something left */
    while (p < t->info.partitions && off >= t->parts[p].high)
        if (++p < t->info.partitions)
            off = t->parts[p].low;
    bool more = p < t->info.partitions;
    bus_topics_free(all, nt);
    if (rc < 0) { /* compacted: trimmed by retention meanwhile */
        json_decref(items);
        return http_reply_error(r, rc, e.message, NULL);
    }
    json_t *body = json_pack("{s:s,s:s,s:o,s:b}", "topic", topic, "dead_letter_topic", dlq,
                             "dead_letters", items, "more", more);
    if (more)
        json_object_set_new(body, "next",
                            json_pack("{s:i,s:I}", "partition", p, "from_offset", (json_int_t)off));
    return http_reply_json(r, 200, body);
}

/* "<partition>-<offset>", both decimal without sign: false otherwise. */
static bool parse_id(const char *id, int *part, int64_t *off)
{
    const char *dash = strchr(id, '-');
    if (!dash || dash == id || !dash[1] || strspn(id, "0123456789") != (size_t)(dash - id) ||
        strspn(dash + 1, "0123456789") != strlen(dash + 1) || dash - id > 4)
        return false;
    errno = 0;
    char *end;
    long long o = strtoll(dash + 1, &end, 10);
    if (errno)
        return false;
    *part = atoi(id);
    *off = o;
    return true;
}

int api_dlq_replay(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_dlq_replay, ctx);
    app *a = ctx;
    if (api_events_bus(r, a) < 0)
        return CITRUS_EUNAVAILABLE;
    const char *topic = http_req_param(r, "topic");
    const char *id = http_req_param(r, "id");
    int wrc = api_events_topic_writable(r, a, topic);
    if (wrc < 0)
        return wrc;
    int part;
    int64_t off;
    if (!parse_id(id, &part, &off))
        return http_reply_error(r, CITRUS_EINVAL,
                                "id: a dead letter's <partition>-<offset> (GET /v1/dlq/{topic} "
                                "lists them)",
                                NULL);
    char dlq[BUS_NAME_MAX + 8];
    if (!dlq_name(r, topic, dlq, sizeof(dlq)))
        return CITRUS_ENOTFOUND;
    bus_topic_entry *all = NULL;
    size_t nt = 0;
    int rc;
    const bus_topic_entry *t = dlq_topic(r, a, topic, dlq, &all, &nt, &rc);
    bool exists = t && part < t->info.partitions && off < t->parts[part].high;
    bus_topics_free(all, nt);
    if (!t)
        return rc;
    if (!exists)
        return http_reply_errorf(r, CITRUS_ENOTFOUND, "no dead letter %s in %s", id, dlq);
    bus_message *m = NULL;
    size_t n = 0;
    errdetail e;
    rc = bus_read(a->bus, dlq, part, off, 1, &m, &n, &e);
    if (rc == CITRUS_ECOMPACTED)
        return http_reply_errorf(r, rc, "dead letter %s of %s was trimmed by retention", id, dlq);
    if (rc < 0)
        return http_reply_error(r, rc, e.message, NULL);
    if (n != 1 || m[0].offset != off) {
        bus_messages_free(m, n);
        return http_reply_errorf(r, CITRUS_ENOTFOUND, "no dead letter %s in %s", id, dlq);
    }
    int p = -1;
    int64_t o = -1;
    rc = bus_publish(a->bus, topic, m[0].key, m[0].key_len, m[0].value, m[0].value_len, &p, &o, &e);
    bus_messages_free(m, n);
    if (rc < 0)
        return http_reply_error(r, rc, e.message, NULL);
    return http_reply_json(r, 200,
                           json_pack("{s:s,s:s,s:i,s:I,s:{s:s,s:i,s:I}}", "topic", topic, "id", id,
                                     "partition", p, "offset", (json_int_t)o, "replayed_from",
                                     "topic", dlq, "partition", part, "offset", (json_int_t)off));
}
