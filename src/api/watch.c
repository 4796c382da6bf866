/* api/watch.c — GET /v1/watch/{prefix}: long poll, or server-sent events.
 *
 * Long poll: the request opens a store watch and is suspended (no pool
 * thread held) until events arrive or ?timeout passes; the answer's
 * "revision" is the point through which the caller has now seen every
 * matching change, so the next poll asks for from_revision = revision + 1.
 * With Accept: text/event-stream the connection stays open and each change
 * is one SSE message ("id" = its revision, so Last-Event-ID resumes).
 *
 * The server's watch hub (watch.h) lists every poll and stream; its reaper
 * ends expired polls, pings idle streams, and on shutdown wakes everything
 * so the HTTP server can stop. */
#include "api/watch.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/handlers.h"
#include "api/kvreq.h"
#include "citrus/errors.h"
#include "core/duration.h"
#include "wire/kvjson.h"

#define POLL_MAX_EVENTS 1000
#define POLL_GRACE_MS 5000 /* past its deadline, a poll answers even if not caught up */
#define SSE_PING_MS 15000
#define REAPER_TICK_MS 50
#define SHUTDOWN_WAIT_MS 5000

typedef struct sse_chunk {
    struct sse_chunk *next;
    size_t len, off;
    char data[];
} sse_chunk;

typedef struct waiter {
    struct waiter *prev, *next; /* in the hub's list */
    http_req *r;
    app *a;
    watch_hub *hub;
    store_watch *w;
    pthread_mutex_t mu;
    int64_t from_rev;
    int64_t open_rev;    /* store revision when the watch opened */
    int64_t deadline_ms; /* long poll only */
    int64_t last_send_ms;
    bool sse;
    bool suspended, woken; /* long poll */
    int err;
    json_t *events; /* long poll */
    size_t bytes;   /* long poll: the events' size; SSE: the unsent backlog's */
    int64_t last_rev;
    bool capped;
    sse_chunk *head, *tail; /* SSE */
    bool ended;
} waiter;

struct watch_hub {
    const sysclock *clock;
    pthread_mutex_t mu; /* everything below */
    pthread_cond_t cv;  /* CLOCK_MONOTONIC: the list changed, or stop */
    waiter *head;
    pthread_t reaper;
    bool running;       /* reaper started and not yet joined */
    bool shutting_down; /* no new waiters; every one is answered */
    bool stop;          /* the reaper leaves */
};

/* ---------------- the hub ---------------- */

/* Lists w, unless the hub is shutting down (false: w is not listed). */
static bool hub_add(watch_hub *h, waiter *w)
{
    pthread_mutex_lock(&h->mu);
    bool open = !h->shutting_down;
    if (open) {
        w->next = h->head;
        w->prev = NULL;
        if (h->head)
            h->head->prev = w;
        h->head = w;
    }
    pthread_mutex_unlock(&h->mu);
    return open;
}

/* h->mu held. */
static void hub_remove(watch_hub *h, waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else if (h->head == w)
        h->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
}

static void sse_push(waiter *w, const char *data, size_t len);

/* Wakes a suspended long poll once (true if this call did); w->mu held. */
static bool poll_wake(waiter *w)
{
    if (!w->suspended || w->woken)
        return false;
    w->woken = true;
    http_resume(w->r);
    return true;
}

/* Whether a long poll should answer now; w->mu held. It answers with live
 * events at once, and with catch-up events once the catch-up to the store's
 * revision at the request (open_rev) is delivered, so one answer carries the
 * whole backlog. At its deadline it answers once caught up (an empty answer
 * then means "nothing happened"), or a grace period later regardless. */
/* Not for the watch callback: it may run before w->w is stored. */
static bool poll_ready(waiter *w, int64_t now)
{
    if (w->err || w->capped)
        return true;
    bool have = json_array_size(w->events) > 0;
    if (have && w->last_rev >= w->open_rev)
        return true;
    bool caught_up = store_watch_progress(w->a->st, w->w) >= w->open_rev;
    if (have && caught_up)
        return true;
    if (now < w->deadline_ms)
        return false;
    return caught_up || now >= w->deadline_ms + POLL_GRACE_MS;
}

/* h->mu held: waiters leave the list as their requests finish. How many
 * polls it woke. */
static size_t reap_locked(watch_hub *h)
{
    int64_t now = clock_mono_ms(h->clock);
    size_t woken = 0;
    for (waiter *w = h->head; w; w = w->next) {
        pthread_mutex_lock(&w->mu);
        if (!w->sse && (h->shutting_down || poll_ready(w, now))) {
            woken += poll_wake(w);
        } else if (w->sse && h->shutting_down) {
            w->ended = true;
        } else if (w->sse && now - w->last_send_ms >= SSE_PING_MS) {
            sse_push(w, ": ping\n\n", 8);
        }
        bool wake_stream = w->sse && (w->head || w->ended);
        pthread_mutex_unlock(&w->mu);
        if (wake_stream)
            http_stream_wake(w->r);
    }
    return woken;
}

size_t watch_hub_reap(watch_hub *h)
{
    pthread_mutex_lock(&h->mu);
    size_t woken = reap_locked(h);
    pthread_mutex_unlock(&h->mu);
    return woken;
}

/* Reaps every tick, and whenever the list changes, until stopped or, once
 * shutting down, until the list is empty. */
static void *reaper_main(void *arg)
{
    watch_hub *h = arg;
    pthread_mutex_lock(&h->mu);
    while (!h->stop && (!h->shutting_down || h->head)) {
        reap_locked(h);
        struct timespec ts = clock_cond_deadline(REAPER_TICK_MS);
        pthread_cond_timedwait(&h->cv, &h->mu, &ts);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

watch_hub *watch_hub_new(const sysclock *clock)
{
    watch_hub *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    if (clock_cond_init(&h->cv) != 0) {
        free(h);
        return NULL;
    }
    pthread_mutex_init(&h->mu, NULL);
    h->clock = clock;
    return h;
}

int watch_hub_start(watch_hub *h)
{
    pthread_mutex_lock(&h->mu);
    int rc = 0;
    if (!h->running && pthread_create(&h->reaper, NULL, reaper_main, h) != 0)
        rc = CITRUS_ENOMEM;
    else
        h->running = true;
    pthread_mutex_unlock(&h->mu);
    return rc;
}

/* h->mu held. */
static size_t count_locked(const watch_hub *h)
{
    size_t n = 0;
    for (const waiter *w = h->head; w; w = w->next)
        n++;
    return n;
}

size_t watch_hub_waiting(watch_hub *h)
{
    pthread_mutex_lock(&h->mu);
    size_t n = count_locked(h);
    pthread_mutex_unlock(&h->mu);
    return n;
}

size_t watch_hub_shutdown(watch_hub *h)
{
    pthread_mutex_lock(&h->mu);
    h->shutting_down = true;
    size_t waiting = count_locked(h);
    reap_locked(h); /* wakes every poll, ends every stream */
    pthread_cond_broadcast(&h->cv);
    /* Each leaves the list once answered (or its stream ended). Give them a
     * bounded time before the server stops. */
    struct timespec ts = clock_cond_deadline(SHUTDOWN_WAIT_MS);
    while (h->head && pthread_cond_timedwait(&h->cv, &h->mu, &ts) == 0) {
    }
    h->stop = true;
    pthread_cond_broadcast(&h->cv);
    bool running = h->running;
    h->running = false;
    pthread_mutex_unlock(&h->mu);
    if (running)
        pthread_join(h->reaper, NULL);
    return waiting;
}

void watch_hub_free(watch_hub *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    bool shut = h->stop;
    pthread_mutex_unlock(&h->mu);
    if (!shut) /* once is enough: a waiter still listed has waited its 5 s */
        watch_hub_shutdown(h);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

/* ---------------- shared ---------------- */

static waiter *waiter_new(http_req *r, app *a, int64_t from_rev, bool sse)
{
    waiter *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    pthread_mutex_init(&w->mu, NULL);
    w->r = r;
    w->a = a;
    w->hub = a->watches;
    w->from_rev = from_rev;
    w->sse = sse;
    w->last_rev = from_rev - 1;
    w->last_send_ms = clock_mono_ms(w->hub->clock);
    w->events = json_array();
    return w;
}

/* Leaves the hub's list (if listed) and stops the store watch: after this
 * no callback touches w. */
static void waiter_detach(waiter *w)
{
    pthread_mutex_lock(&w->hub->mu);
    hub_remove(w->hub, w);
    pthread_cond_broadcast(&w->hub->cv);
    pthread_mutex_unlock(&w->hub->mu);
    store_watch_close(w->a->st, w->w);
    w->w = NULL;
}

static void waiter_free(waiter *w)
{
    while (w->head) {
        sse_chunk *c = w->head;
        w->head = c->next;
        free(c);
    }
    json_decref(w->events);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

/* Lists w with its hub; when the hub is shutting down, replies 503 and
 * frees w instead. */
static int waiter_list(http_req *r, waiter *w)
{
    if (hub_add(w->hub, w))
        return 0;
    waiter_detach(w);
    waiter_free(w);
    return http_reply_error(r, CITRUS_EUNAVAILABLE, "server is shutting down", NULL),
           CITRUS_EUNAVAILABLE;
}

/* ---------------- long poll ---------------- */

/* What n events cost in an answer (kv_entry_wire_size, and their type). */
static size_t events_size(const kv_event *events, size_t n)
{
    size_t b = 0;
    for (size_t i = 0; i < n; i++)
        b += kv_entry_wire_size(strlen(events[i].kv.key), events[i].kv.value_len,
                                events[i].type == KV_EVENT_PUT) +
             16;
    return b;
}

static void poll_cb(void *ctx, const kv_event *events, size_t n, int err)
{
    waiter *w = ctx;
    pthread_mutex_lock(&w->mu);
    size_t sz = err || w->capped ? 0 : events_size(events, n);
    size_t max = w->a->max_response_bytes;
    if (err) {
        w->err = err;
    } else if (!w->capped) {
        /* A page holds whole revisions, at most POLL_MAX_EVENTS events and
         * server.max_response_bytes (a replay of big values pages too). */
        if ((json_array_size(w->events) + n > POLL_MAX_EVENTS || (max && w->bytes + sz > max)) &&
            json_array_size(w->events) > 0) {
            w->capped = true; /* the caller polls again from revision + 1 */
        } else {
            w->bytes += sz;
            for (size_t i = 0; i < n; i++)
                json_array_append_new(w->events, kvjson_event_encode(&events[i]));
            if (n)
                w->last_rev = events[n - 1].kv.mod_revision;
        }
    }
    if (w->err || w->capped || w->last_rev >= w->open_rev)
        poll_wake(w); /* the rest of poll_ready() needs the handle: the reaper's job */
    pthread_mutex_unlock(&w->mu);
}

static void poll_answer(http_req *r, waiter *w)
{
    int64_t progress = w->capped ? -1 : store_watch_progress(w->a->st, w->w);
    waiter_detach(w);
    pthread_mutex_lock(&w->mu);
    int err = w->err;
    int64_t rev = w->last_rev;
    if (!w->capped && progress > rev)
        rev = progress;
    json_t *events = json_incref(w->events);
    pthread_mutex_unlock(&w->mu);
    if (err && json_array_size(events) == 0) {
        json_decref(events);
        http_reply_error(
            r, err == CITRUS_ECOMPACTED ? err : CITRUS_EUNAVAILABLE,
            err == CITRUS_ECOMPACTED ? "watch fell behind compaction" : "store is closing", NULL);
    } else {
        http_reply_json(r, 200,
                        json_pack("{s:I,s:o}", "revision", (json_int_t)rev, "events", events));
    }
    waiter_free(w);
}

static void poll_resume(http_req *r, void *ctx)
{
    poll_answer(r, ctx);
}

/* ---------------- server-sent events ---------------- */

static void sse_push(waiter *w, const char *data, size_t len)
{
    sse_chunk *c = malloc(sizeof(*c) + len);
    if (!c) {
        w->ended = true;
        return;
    }
    c->next = NULL;
    c->len = len;
    c->off = 0;
    memcpy(c->data, data, len);
    w->bytes += len;
    if (w->tail)
        w->tail->next = c;
    else
        w->head = c;
    w->tail = c;
    w->last_send_ms = clock_mono_ms(w->hub->clock);
}

static void sse_cb(void *ctx, const kv_event *events, size_t n, int err)
{
    waiter *w = ctx;
    pthread_mutex_lock(&w->mu);
    if (err) {
        char msg[160];
        int len =
            snprintf(msg, sizeof(msg),
                     "event: error\ndata: {\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n\n",
                     citrus_err_code(err), citrus_strerror(err));
        sse_push(w, msg, (size_t)len);
        w->ended = true;
    }
    size_t max = w->a->max_response_bytes;
    if (!w->ended && max && w->bytes > max) {
        /* A replay faster than the client reads: the backlog is bounded. The
         * client resumes from its Last-Event-ID (a page, as a long poll). */
        static const char msg[] =
            "event: error\ndata: {\"error\":{\"code\":\"response_too_large\",\"message\":"
            "\"unsent events passed server.max_response_bytes; resume with Last-Event-ID\"}}\n\n";
        sse_push(w, msg, sizeof(msg) - 1);
        w->ended = true;
    }
    for (size_t i = 0; !w->ended && i < n; i++) {
        json_t *ev = kvjson_event_encode(&events[i]);
        char *text = json_dumps(ev, JSON_COMPACT);
        json_decref(ev);
        if (!text)
            continue;
        size_t tl = strlen(text);
        char *msg = malloc(tl + 96);
        if (msg) {
            int len = snprintf(msg, tl + 96, "id: %" PRId64 "\nevent: %s\ndata: %s\n\n",
                               events[i].kv.mod_revision,
                               events[i].type == KV_EVENT_PUT ? "put" : "delete", text);
            sse_push(w, msg, (size_t)len);
            free(msg);
        }
        free(text);
    }
    pthread_mutex_unlock(&w->mu);
    http_stream_wake(w->r);
}

static long sse_read(void *ctx, char *buf, size_t max)
{
    waiter *w = ctx;
    size_t out = 0;
    pthread_mutex_lock(&w->mu);
    while (w->head && out < max) {
        sse_chunk *c = w->head;
        size_t take = c->len - c->off < max - out ? c->len - c->off : max - out;
        memcpy(buf + out, c->data + c->off, take);
        out += take;
        c->off += take;
        w->bytes -= take;
        if (c->off == c->len) {
            w->head = c->next;
            if (!w->head)
                w->tail = NULL;
            free(c);
        }
    }
    bool ended = w->ended && !w->head;
    pthread_mutex_unlock(&w->mu);
    if (out == 0 && ended)
        return -1;
    return (long)out;
}

static void sse_free(void *ctx)
{
    waiter *w = ctx;
    waiter_detach(w);
    waiter_free(w);
}

/* ---------------- handler ---------------- */

static int open_watch(http_req *r, waiter *w, const char *prefix, store_watch_cb cb)
{
    int64_t compact = 0;
    int rc = store_watch_open(w->a->st, prefix, w->from_rev, cb, w, &w->w, &compact);
    if (rc == CITRUS_ECOMPACTED) {
        char msg[128];
        snprintf(msg, sizeof(msg),
                 "revision %" PRId64 " is compacted; oldest available is %" PRId64, w->from_rev,
                 compact);
        return http_reply_error(r, rc, msg,
                                json_pack("{s:I}", "compact_revision", (json_int_t)compact)),
               rc;
    }
    if (rc < 0)
        return kvreq_reply_store_error(r, rc), rc;
    return 0;
}

static int start_poll(http_req *r, app *a, const char *prefix, int64_t from, int64_t open_rev,
                      int64_t timeout)
{
    waiter *w = waiter_new(r, a, from, false);
    if (!w)
        return http_reply_error(r, CITRUS_ENOMEM, NULL, NULL);
    w->open_rev = open_rev;
    w->deadline_ms = clock_mono_ms(w->hub->clock) + timeout;
    int rc = open_watch(r, w, prefix, poll_cb);
    if (rc < 0) {
        waiter_free(w);
        return rc;
    }
    /* Listed before it can be resumed: poll_answer() unlists it. */
    if ((rc = waiter_list(r, w)) < 0)
        return rc;
    pthread_mutex_lock(&w->mu);
    bool ready = poll_ready(w, clock_mono_ms(w->hub->clock));
    if (!ready) {
        http_suspend(r, poll_resume, w);
        w->suspended = true;
    }
    pthread_mutex_unlock(&w->mu);
    if (ready)
        poll_answer(r, w);
    return 0;
}

static int start_sse(http_req *r, app *a, const char *prefix, int64_t from)
{
    waiter *w = waiter_new(r, a, from, true);
    if (!w)
        return http_reply_error(r, CITRUS_ENOMEM, NULL, NULL);
    char hello[64];
    int n = snprintf(hello, sizeof(hello), ": watching from revision %" PRId64 "\n\n", from);
    sse_push(w, hello, (size_t)n);
    int rc = open_watch(r, w, prefix, sse_cb);
    if (rc < 0) {
        waiter_free(w);
        return rc;
    }
    if ((rc = waiter_list(r, w)) < 0)
        return rc;
    return http_reply_stream(r, "text/event-stream", sse_read, w, sse_free);
}

static bool wants_sse(http_req *r)
{
    const char *acc = http_req_header(r, "Accept");
    return acc && strstr(acc, "text/event-stream");
}

int api_watch(http_req *r, void *ctx)
{
    app *a = ctx;
    if (!a->watches)
        return http_reply_error(r, CITRUS_EUNAVAILABLE, "watches are not served here", NULL);
    if (!http_offloaded(r) && app_remote(a)) /* status and watch open ask etcd */
        return http_offload(r, api_watch, ctx);
    const char *prefix = http_req_param(r, "prefix");
    int64_t from;
    if (kvreq_check_key(r, prefix, true) < 0 ||
        http_req_query_int(r, "from_revision", 0, &from) < 0)
        return CITRUS_EINVAL;
    const char *last_id = http_req_header(r, "Last-Event-ID");
    if (last_id && !http_req_query(r, "from_revision")) {
        char *end;
        long long v = strtoll(last_id, &end, 10);
        if (*end || v < 0)
            return http_reply_error(r, CITRUS_EINVAL, "Last-Event-ID must be a revision", NULL);
        from = v + 1;
    }
    if (from < 0)
        return http_reply_error(r, CITRUS_EINVAL, "from_revision must be >= 0", NULL);
    store_status st;
    int rc = store_status_get(a->st, &st);
    if (rc < 0)
        return kvreq_reply_store_error(r, rc);
    if (from == 0)
        from = st.revision + 1;
    int64_t timeout = 30000;
    const char *t = http_req_query(r, "timeout");
    if (t && duration_parse_ms(t, &timeout) < 0)
        return http_reply_error(r, CITRUS_EINVAL,
                                "timeout must be a duration like 30s, 500ms or 2m", NULL);
    if (timeout > a->max_watch_timeout_ms)
        timeout = a->max_watch_timeout_ms;
    return wants_sse(r) ? start_sse(r, a, prefix, from)
                        : start_poll(r, a, prefix, from, st.revision, timeout);
}
