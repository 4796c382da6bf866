/* api/topics.c — /v1/topics: the event bus's topics, publishing events
 * and reading them without leasing (docs/events.md, "Operating the bus").
 * Bus calls wait for the bus's writer (an fsync for a publish): on the
 * work pool. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/events.h"
#include "api/handlers.h"
#include "citrus/errors.h"
#include "core/utf8.h"
#include "wire/base64.h"
#include "wire/envelope.h"
#include "wire/shard_json.h"

#define PUBLISH_BATCH_MAX 1000 /* events in one POST */

/* ---- shared with consumers.c and dlq.c (events.h) ---- */

int api_events_bus(http_req *r, const app *a)
{
    if (a->bus)
        return 0;
    return api_events_fail(
        http_reply_error(r, CITRUS_EUNAVAILABLE, "this node runs no event bus", NULL),
        CITRUS_EUNAVAILABLE);
}

const bus_topic_entry *api_events_topic(http_req *r, app *a, const char *name,
                                        bus_topic_entry **all, size_t *n, int *rc)
{
    errdetail e;
    *rc = bus_topics_list(a->bus, all, n, &e);
    if (*rc < 0) {
        http_reply_error(r, *rc, e.message, NULL);
        return NULL;
    }
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*all)[i].name, name) == 0)
            return &(*all)[i];
    http_reply_errorf(r, CITRUS_ENOTFOUND, "no topic '%.200s'", name);
    *rc = CITRUS_ENOTFOUND;
    return NULL;
}

static json_t *range_extra(const bus_partition_range *pr)
{
    return json_pack("{s:I,s:I}", "low", (json_int_t)pr->low, "high", (json_int_t)pr->high);
}

int api_events_page_args(http_req *r, const app *a, const bus_topic_entry *t, bool required,
                         int *partition, int64_t *from, size_t *limit)
{
    int64_t p, off, lim;
    if (required && !http_req_query(r, "partition"))
        return api_events_fail(
            http_reply_errorf(r, CITRUS_EINVAL,
                              "partition: required, 0..%d (GET /v1/topics lists them)",
                              t->info.partitions - 1),
            CITRUS_EINVAL);
    if (http_req_query_int(r, "partition", 0, &p) < 0 ||
        http_req_query_int(r, "from_offset", -1, &off) < 0 ||
        http_req_query_int(r, "limit", EVENTS_PAGE_DEFAULT, &lim) < 0)
        return CITRUS_EINVAL;
    if (p < 0 || p >= t->info.partitions)
        return api_events_fail(http_reply_errorf(r, CITRUS_EINVAL,
                                                 "partition: topic '%s' has partitions 0..%d",
                                                 t->name, t->info.partitions - 1),
                               CITRUS_EINVAL);
    size_t max = a->bus->cfg.poll_max < EVENTS_PAGE_MAX ? a->bus->cfg.poll_max : EVENTS_PAGE_MAX;
    if (lim < 1 || (uint64_t)lim > max)
        return api_events_fail(http_reply_errorf(r, CITRUS_EINVAL, "limit: 1..%zu", max),
                               CITRUS_EINVAL);
    const bus_partition_range *pr = &t->parts[p];
    if (http_req_query(r, "from_offset") && off < 0)
        return api_events_fail(
            http_reply_error(r, CITRUS_EINVAL, "from_offset: an offset >= 0", NULL), CITRUS_EINVAL);
    if (off < 0)
        off = pr->low;
    if (off > pr->high)
        return api_events_fail(
            http_reply_error(r, CITRUS_EOFFSETRANGE,
                             "from_offset: past the end of the partition (high is its next "
                             "offset)",
                             range_extra(pr)),
            CITRUS_EOFFSETRANGE);
    if (off < pr->low)
        return api_events_fail(
            http_reply_error(r, CITRUS_ECOMPACTED,
                             "from_offset: trimmed by retention; the partition keeps offsets "
                             "from low",
                             range_extra(pr)),
            CITRUS_ECOMPACTED);
    *partition = (int)p;
    *from = off;
    *limit = (size_t)lim;
    return 0;
}

/* bytes as a JSON string member name, or name_base64 when not UTF-8 text
 * (a NUL counts as not text). */
static void set_bytes(json_t *o, const char *name, const uint8_t *b, size_t len, bool as_json)
{
    if (as_json && len) {
        json_t *v = json_loadb((const char *)b, len, JSON_DECODE_ANY, NULL);
        if (v) {
            json_object_set_new(o, name, v);
            return;
        }
    }
    if (!as_json && utf8_valid(b, len) && !memchr(b, 0, len)) {
        json_object_set_new(o, name, json_stringn((const char *)b, len));
        return;
    }
    char key[64];
    snprintf(key, sizeof(key), "%s_base64", as_json ? "value" : name);
    char *enc = base64_encode(b, len);
    json_object_set_new(o, key, enc ? json_string(enc) : json_null());
    free(enc);
}

json_t *api_events_message_json(const bus_message *m, bool dead_letter)
{
    char when[40];
    shard_json_time(m->time_ms, when, sizeof(when));
    json_t *o = json_pack("{s:I,s:s}", "offset", (json_int_t)m->offset, "time", when);
    if (!o)
        return NULL;
    if (dead_letter) {
        char id[64];
        snprintf(id, sizeof(id), "%d-%lld", m->partition, (long long)m->offset);
        json_object_set_new(o, "id", json_string(id));
        json_object_set_new(o, "partition", json_integer(m->partition));
        json_object_set_new(o, "error", json_string(m->error ? m->error : ""));
        json_object_set_new(o, "attempts", json_integer(m->attempts));
        json_object_set_new(o, "source_partition", json_integer(m->src_partition));
        json_object_set_new(o, "source_offset", json_integer(m->src_offset));
    }
    set_bytes(o, "key", m->key, m->key_len, false);
    set_bytes(o, "event", m->value, m->value_len, true);
    return o;
}

bool api_events_append(json_t *items, json_t *m, size_t max, size_t *bytes)
{
    char *text = json_dumps(m, JSON_COMPACT);
    size_t len = text ? strlen(text) + 1 : 0;
    free(text);
    if (!m || !text || (max && json_array_size(items) > 0 && *bytes + len > max)) {
        json_decref(m);
        return false;
    }
    *bytes += len;
    json_array_append_new(items, m);
    return true;
}

/* ---- GET /v1/topics ---- */

static json_t *topic_json(const bus_topic_entry *t)
{
    json_t *parts = json_array();
    for (int p = 0; p < t->info.partitions; p++)
        json_array_append_new(parts, json_pack("{s:i,s:I,s:I}", "partition", p, "low",
                                               (json_int_t)t->parts[p].low, "high",
                                               (json_int_t)t->parts[p].high));
    json_t *o = json_pack("{s:s,s:b,s:i,s:I,s:I,s:I,s:o}", "name", t->name, "dead_letter", t->dlq,
                          "partitions", t->info.partitions, "retention_ms",
                          (json_int_t)t->info.retention_ms, "retention_bytes",
                          (json_int_t)t->info.retention_bytes, "messages",
                          (json_int_t)t->info.messages, "offsets", parts);
    if (o && t->dlq) {
        size_t n = strlen(t->name) - strlen(BUS_DLQ_SUFFIX);
        json_object_set_new(o, "source_topic", json_stringn(t->name, n));
    } else if (o) {
        char dlq[BUS_NAME_MAX + 8];
        snprintf(dlq, sizeof(dlq), "%s" BUS_DLQ_SUFFIX, t->name);
        json_object_set_new(o, "dead_letter_topic", json_string(dlq));
    }
    return o;
}

int api_topics_list(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_topics_list, ctx);
    app *a = ctx;
    if (api_events_bus(r, a) < 0)
        return CITRUS_EUNAVAILABLE;
    bus_topic_entry *t = NULL;
    size_t n = 0;
    errdetail e;
    int rc = bus_topics_list(a->bus, &t, &n, &e);
    if (rc < 0)
        return http_reply_error(r, rc, e.message, NULL);
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, topic_json(&t[i]));
    bus_topics_free(t, n);
    return http_reply_json(r, 200, json_pack("{s:o}", "topics", items));
}

/* ---- POST /v1/topics/{topic}/events ---- */

/* One event checked and encoded, ready to publish. */
typedef struct pub_item {
    char *value;
    size_t len;
    const char *key; /* into the envelope or the query */
    size_t key_len;
    envelope ev;
} pub_item;

static void items_free(pub_item *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].value);
        envelope_clear(&v[i].ev);
    }
    free(v);
}

/* The events of the body: one envelope (it has "specversion") or
 * {"events": [envelope, ...]}. Checks every one before anything is
 * published; on error fills *err naming the event and the member (the
 * caller replies: an unknown topic is said first). */
static int check_events(const app *a, json_t *body, const char *key, pub_item **out, size_t *nout,
                        errdetail *err)
{
    json_t *list = NULL;
    bool batch = json_is_object(body) && !json_object_get(body, "specversion") &&
                 json_object_get(body, "events");
    if (batch) {
        list = json_object_get(body, "events");
        if (!json_is_array(list) || json_array_size(list) == 0 || json_object_size(body) != 1)
            return errdetail_set(err, CITRUS_EBADJSON,
                                 "a batch is {\"events\": [event, ...]} with 1 or more events");
        if (json_array_size(list) > PUBLISH_BATCH_MAX)
            return errdetail_set(err, CITRUS_ETOOMANY, "events: at most %d in one request",
                                 PUBLISH_BATCH_MAX);
    }
    size_t n = batch ? json_array_size(list) : 1;
    pub_item *v = calloc(n, sizeof(*v));
    if (!v)
        return errdetail_set(err, CITRUS_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        errdetail e;
        int rc = envelope_from_json(batch ? json_array_get(list, i) : body, a->max_event_bytes,
                                    &v[i].ev, &e);
        if (rc == 0 && !(v[i].value = envelope_encode(&v[i].ev, &v[i].len)))
            rc = errdetail_set(&e, CITRUS_ENOMEM, "out of memory");
        if (rc < 0) {
            items_free(v, n);
            char where[32] = "";
            if (batch)
                snprintf(where, sizeof(where), "events[%zu]: ", i);
            if (rc == CITRUS_ETOOBIG)
                return errdetail_set(err, rc, "%s%s (bus.max_event_bytes is %zu)", where, e.message,
                                     a->max_event_bytes);
            return errdetail_set(err, rc, "%s%s", where, e.message);
        }
        /* the key: ?key=, else the subject, else the id */
        v[i].key = key ? key : v[i].ev.subject ? v[i].ev.subject : v[i].ev.id;
        v[i].key_len = strlen(v[i].key);
    }
    *out = v;
    *nout = n;
    return 0;
}

static json_t *published_json(const pub_item *it, int partition, int64_t offset)
{
    return json_pack("{s:s,s:s%,s:i,s:I}", "id", it->ev.id, "key", it->key, it->key_len,
                     "partition", partition, "offset", (json_int_t)offset);
}

int api_events_topic_writable(http_req *r, const app *a, const char *topic)
{
    const principal *who = api_principal(r);
    if (a->admin_topic[0] && strcmp(topic, a->admin_topic) == 0 && !(who->roles & AUTH_ADMIN))
        return api_forbid(r,
                          "%s may not write onto %s: its shard commands (retire, delete, ...) "
                          "need sm-admin",
                          who->name, topic);
    /* The shard management worker runs commands only on the controller
     * leader (fenced by its token); the embedded log is this node's own,
     * so a command written here while another node leads would wait. */
    int64_t token;
    if (a->admin_topic[0] && strcmp(topic, a->admin_topic) == 0 && a->bus && a->sess &&
        strcmp(a->bus->ops->name, "embedded") == 0 && !session_is_leader(a->sess, &token)) {
        http_reply_error(r, CITRUS_EUNAVAILABLE,
                         "this node is not the controller leader: shard commands run on the "
                         "leader, and the embedded bus is each node's own log; publish them to "
                         "the leader (GET /v1/cluster) or use the Kafka backend",
                         NULL);
        return CITRUS_EUNAVAILABLE;
    }
    return 0;
}

/* Replies 404 when the bus has no topic name, 400 when it is a
 * dead-letter topic (the bus writes those), and returns the error; 0 when
 * events may be published onto it. Lists every topic with its offsets
 * (on the embedded log, a request of the writer's as costly as the
 * publish), so a publish runs it only once something failed (see below). */
static int publish_topic_check(http_req *r, app *a, const char *name)
{
    bus_topic_entry *all = NULL;
    size_t nt = 0;
    int rc;
    const bus_topic_entry *t = api_events_topic(r, a, name, &all, &nt, &rc);
    bool dlq = t && t->dlq;
    bus_topics_free(all, nt);
    if (!t)
        return rc;
    if (dlq)
        return api_events_fail(
            http_reply_errorf(r, CITRUS_EINVAL,
                              "'%s' is a dead-letter topic: the bus writes it; replay its "
                              "events with POST /v1/dlq/{topic}/{id}/replay",
                              name),
            CITRUS_EINVAL);
    return 0;
}

int api_topic_publish(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_topic_publish, ctx);
    app *a = ctx;
    if (api_events_bus(r, a) < 0)
        return CITRUS_EUNAVAILABLE;
    const char *name = http_req_param(r, "topic");
    int rc = api_events_topic_writable(r, a, name);
    if (rc < 0)
        return rc;
    const char *key = http_req_query(r, "key");
    if (key && (!*key || strlen(key) > BUS_KEY_MAX ||
                !utf8_valid((const unsigned char *)key, strlen(key))))
        return http_reply_errorf(r, CITRUS_EINVAL, "key: 1..%d bytes of UTF-8 when given",
                                 BUS_KEY_MAX);
    /* An unknown topic is 404 whatever the body. Every backend's publish
     * answers CITRUS_ENOTFOUND for one, writing nothing (the bus
     * conformance suite holds them to it), so the listing runs only once
     * something failed, and a publish costs the bus one request, not two.
     * A dead-letter name, which a publish would take, is refused up front. */
    bool checked = bus_topic_is_dlq(name);
    if (checked && (rc = publish_topic_check(r, a, name)) < 0)
        return rc;
    size_t blen = 0;
    const unsigned char *btext = http_req_body(r, &blen);
    json_t *body =
        blen ? json_loadb((const char *)btext, blen, JSON_REJECT_DUPLICATES, NULL) : NULL;
    if (!body) {
        if (!checked && (rc = publish_topic_check(r, a, name)) < 0)
            return rc;
        json_decref(http_req_json(r)); /* replies why */
        return CITRUS_EBADJSON;
    }
    pub_item *v = NULL;
    size_t n = 0;
    errdetail e = {0};
    rc = check_events(a, body, key, &v, &n, &e);
    json_decref(body);
    if (rc < 0) {
        int trc;
        if (!checked && (trc = publish_topic_check(r, a, name)) < 0)
            return trc;
        return http_reply_error(r, rc, e.message, NULL);
    }
    bus_record *recs = calloc(n, sizeof(*recs));
    int *parts = calloc(n, sizeof(*parts));
    int64_t *offs = calloc(n, sizeof(*offs));
    size_t published = 0;
    rc = recs && parts && offs ? 0 : errdetail_set(&e, CITRUS_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++)
        recs[i] = (bus_record){v[i].key, v[i].key_len, v[i].value, v[i].len};
    /* all or nothing on a backend with publish_batch (the embedded log) */
    if (rc == 0)
        rc = bus_publish_batch(a->bus, name, recs, n, parts, offs, &published, &e);
    json_t *done = json_array();
    for (size_t i = 0; i < published; i++)
        json_array_append_new(done, published_json(&v[i], parts[i], offs[i]));
    items_free(v, n);
    free(recs);
    free(parts);
    free(offs);
    int trc; /* an unknown (or unlisted) topic: 404, as the listing says it */
    if ((rc == CITRUS_ENOTFOUND || rc == CITRUS_EINVAL) && published == 0 && !checked &&
        (trc = publish_topic_check(r, a, name)) < 0) {
        json_decref(done);
        return trc;
    }
    if (rc < 0) /* every event was checked: what failed is the bus (I/O, closing) */
        return http_reply_error(r, rc, e.message, json_pack("{s:o}", "published", done));
    return http_reply_json(r, 200, json_pack("{s:s,s:o}", "topic", name, "events", done));
}

/* ---- GET /v1/topics/{topic}/events ---- */

int api_topic_events(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_topic_events, ctx);
    app *a = ctx;
    if (api_events_bus(r, a) < 0)
        return CITRUS_EUNAVAILABLE;
    const char *name = http_req_param(r, "topic");
    bus_topic_entry *all = NULL;
    size_t nt = 0;
    int rc;
    const bus_topic_entry *t = api_events_topic(r, a, name, &all, &nt, &rc);
    int part = 0;
    int64_t from = 0;
    size_t limit = 0;
    if (t)
        rc = api_events_page_args(r, a, t, true, &part, &from, &limit);
    bus_partition_range pr = t && rc == 0 ? t->parts[part] : (bus_partition_range){0};
    bool dlq = t && t->dlq;
    bus_topics_free(all, nt);
    if (rc < 0)
        return rc;
    bus_message *m = NULL;
    size_t n = 0;
    errdetail e;
    rc = bus_read(a->bus, name, part, from, limit, &m, &n, &e);
    if (rc < 0) /* say, compacted: trimmed since the listing */
        return http_reply_error(r, rc, e.message, NULL);
    json_t *items = json_array();
    size_t bytes = 0, shown = 0;
    while (shown < n && api_events_append(items, api_events_message_json(&m[shown], dlq),
                                          a->max_response_bytes, &bytes))
        shown++;
    int64_t next = shown ? m[shown - 1].offset + 1 : from;
    bus_messages_free(m, n);
    if (next > pr.high)
        pr.high = next; /* published since the listing */
    return http_reply_json(r, 200,
                           json_pack("{s:s,s:i,s:I,s:I,s:o,s:I,s:b}", "topic", name, "partition",
                                     part, "low", (json_int_t)pr.low, "high", (json_int_t)pr.high,
                                     "events", items, "next_offset", (json_int_t)next, "more",
                                     next < pr.high));
}
