/* catalog/etcd_watch.c — store watches over etcd watch streams (see
 * etcd_watch.h).
 *
 * Threads: stream callbacks run on the etcd client's I/O thread and only
 * append to the ring or to a watcher's catch-up queue, under mu. The
 * delivery thread plans a round under mu (pinning each watcher it will
 * serve), then without mu opens and closes streams and runs callbacks, then
 * applies the results under mu. Ring entries are freed only by the
 * delivery thread, so the entry pointers it copied stay valid for the
 * round even when the I/O thread appends (and the ring array moves).
 * Nothing waits for the I/O thread (closing a stream) while holding mu:
 * its callbacks take mu. */
#include "catalog/etcd_watch.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/etcd_codec.h"
#include "citrus/errors.h"
#include "obs/log.h"

#define DEFAULT_RING_REVS 10000
#define DEFAULT_RING_BYTES ((size_t)64 * 1024 * 1024)
#define RING_HARD_FACTOR 4 /* beyond this, evict even what a watcher still needs */
#define CHUNK_REVS 256     /* revisions one watcher is served per round */
#define QUEUE_HIGH_BYTES ((size_t)8 * 1024 * 1024)
#define QUEUE_LOW_BYTES ((size_t)2 * 1024 * 1024)
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000
#define IDLE_WAIT_MS 200 /* the delivery thread's longest sleep: stalls are checked */
#define DEFAULT_STALL_MS 1000
#define WATCH_PATH "/v3/watch"

/* The events of one revision (for a catch-up queue: only the watcher's). */
typedef struct rev_entry {
    struct rev_entry *next; /* in a queue or a parsed batch */
    int64_t rev;
    size_t n, bytes;
    kv_event ev[];
} rev_entry;

typedef enum { MODE_RING, MODE_CATCHUP } watch_mode;

struct store_watch {
    etcd_watch *hub;
    char *prefix;
    size_t prefix_len;
    store_watch_cb cb;
    void *ctx;
    atomic_bool closing;
    /* under hub->mu */
    watch_mode mode;
    int64_t next_rev; /* first revision not yet passed to cb */
    int pins;         /* > 0 while the delivery thread works for it */
    bool dead;        /* its final error is delivered */
    bool orphan;      /* closed while pinned by a thread that cannot wait */
    int pending_err;  /* a final error to deliver */
    /* catch-up */
    etcd_stream *stream;
    bool stream_live; /* messages of stream are taken */
    bool need_stream; /* (re)open from q_through + 1 once retry_at passed */
    bool paused;      /* its stream is paused: the queue is full */
    int64_t retry_at;
    int64_t backoff;
    int64_t last_msg_ms; /* when its stream last said anything */
    rev_entry *q_head, *q_tail;
    size_t q_bytes;
    int64_t q_through; /* every revision through this one is queued (or had nothing) */
    store_watch *prev, *next;
};

/* What one round does for one pinned watcher. */
typedef struct pin {
    store_watch *w;
    int64_t from, upto; /* ring revisions to deliver; upto 0: none */
    rev_entry *batch;   /* catch-up entries to deliver */
    int64_t through;    /* the watcher has everything through this after the round; 0: no change */
    int err;            /* final error to deliver after the events */
    etcd_stream *close; /* stream to close first */
    bool open;          /* open a catch-up stream from open_from */
    int64_t open_from;
    etcd_stream *opened;
} pin;

struct etcd_watch {
    etcd_client *cl;
    const sysclock *clock;
    size_t ring_revs, ring_bytes;
    int (*check_from)(void *ctx, int64_t from_rev, bool probe, int64_t *compact_rev);
    void (*compacted)(void *ctx, int64_t rev);
    void *cb_ctx;

    pthread_mutex_t mu;
    pthread_cond_t wake;     /* the delivery thread has something to do */
    pthread_cond_t unpinned; /* a pin was released */
    bool stopping;
    /* the ring: entries in revision order, complete over [ring_start, ring_head] */
    rev_entry **ring;
    size_t cap, first, count, bytes;
    int64_t ring_start, ring_head;
    /* the shared stream */
    etcd_stream *shared;
    bool shared_live; /* its messages are taken */
    bool shared_down; /* (re)open once shared_retry_at passed */
    int64_t shared_retry_at, shared_backoff;
    int64_t shared_last_ms; /* when the shared stream last said anything */
    int64_t stall_ms;
    int64_t gap_rev; /* etcd compacted past the ring: restart it at this revision */
    store_watch *watchers;
    atomic_size_t nstreams;
    pthread_t th;
    bool started;
};

/* ---- helpers --------------------------------------------------------------- */

static void entry_free(rev_entry *e)
{
    for (size_t i = 0; i < e->n; i++)
        kv_entry_clear(&e->ev[i].kv);
    free(e);
}

static void entries_free(rev_entry *e)
{
    while (e) {
        rev_entry *next = e->next;
        entry_free(e);
        e = next;
    }
}

static int64_t event_rev(json_t *events, size_t i)
{
    return etcd_codec_int(json_object_get(json_array_get(events, i), "kv"), "mod_revision");
}

/* The events of a watch response as entries, one per revision, in order;
 * with a prefix only its keys (revisions with none are left out). *last is
 * the response's highest revision. etcd never splits a revision across
 * responses (no fragment requested). */
static int entries_parse(json_t *events, const char *prefix, size_t plen, rev_entry **out,
                         int64_t *last)
{
    *out = NULL;
    *last = 0;
    rev_entry **tail = out;
    size_t n = json_array_size(events);
    for (size_t i = 0, j; i < n; i = j) {
        int64_t rev = event_rev(events, i);
        for (j = i + 1; j < n && event_rev(events, j) == rev; j++)
            ;
        rev_entry *e = calloc(1, sizeof(*e) + (j - i) * sizeof(kv_event));
        if (!e)
            return CITRUS_ENOMEM;
        e->rev = rev;
        for (size_t k = i; k < j; k++) {
            kv_event ev;
            int rc = etcd_codec_event(json_array_get(events, k), &ev);
            if (rc < 0 || rev <= *last) {
                kv_entry_clear(&ev.kv);
                entry_free(e);
                return rc < 0 ? rc : CITRUS_EIO; /* revisions out of order */
            }
            if (plen && strncmp(ev.kv.key, prefix, plen) != 0) {
                kv_entry_clear(&ev.kv);
                continue;
            }
            e->bytes += sizeof(ev) + strlen(ev.kv.key) + ev.kv.value_len;
            e->ev[e->n++] = ev;
        }
        *last = rev;
        if (e->n == 0) {
            free(e);
            continue;
        }
        *tail = e;
        tail = &e->next;
    }
    return 0;
}

/* {"create_request": every key from start_rev, with progress notifications} */
static json_t *watch_request(int64_t start_rev)
{
    json_t *cr = json_object();
    bool ok = cr && etcd_codec_set_range(cr, "", true, NULL) &&
              json_object_set_new(cr, "start_revision", etcd_codec_i64(start_rev)) == 0 &&
              json_object_set_new(cr, "progress_notify", json_true()) == 0;
    if (!ok) {
        json_decref(cr);
        return NULL;
    }
    return json_pack("{s:o}", "create_request", cr);
}

static void stream_close(etcd_watch *h, etcd_stream *st)
{
    if (!st)
        return;
    etcd_client_stream_close(st);
    atomic_fetch_sub(&h->nstreams, 1);
}

static etcd_stream *stream_open(etcd_watch *h, int64_t from, etcd_stream_msg_cb on_msg,
                                etcd_stream_end_cb on_end, void *ctx)
{
    json_t *req = watch_request(from);
    etcd_stream *st = NULL;
    if (req && etcd_client_stream_open(h->cl, WATCH_PATH, req, on_msg, on_end, ctx, &st) == 0)
        atomic_fetch_add(&h->nstreams, 1);
    json_decref(req);
    return st;
}

static int64_t backoff_next(int64_t *backoff)
{
    int64_t b = *backoff < BACKOFF_MIN_MS ? BACKOFF_MIN_MS : *backoff;
    *backoff = b * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b * 2;
    return b;
}

/* ---- the ring (under mu) ------------------------------------------------------ */

static rev_entry *ring_at(const etcd_watch *h, size_t i)
{
    return h->ring[(h->first + i) % h->cap];
}

static bool ring_push(etcd_watch *h, rev_entry *e)
{
    if (h->count == h->cap) {
        size_t ncap = h->cap ? h->cap * 2 : 256;
        rev_entry **r = calloc(ncap, sizeof(rev_entry *));
        if (!r)
            return false;
        for (size_t i = 0; i < h->count; i++)
            r[i] = ring_at(h, i);
        free(h->ring);
        h->ring = r;
        h->cap = ncap;
        h->first = 0;
    }
    h->ring[(h->first + h->count) % h->cap] = e;
    h->count++;
    h->bytes += e->bytes;
    return true;
}

static rev_entry *ring_pop(etcd_watch *h)
{
    rev_entry *e = ring_at(h, 0);
    h->first = (h->first + 1) % h->cap;
    h->count--;
    h->bytes -= e->bytes;
    return e;
}

/* Index of the first entry at or after rev. */
static size_t ring_lower_bound(const etcd_watch *h, int64_t rev)
{
    size_t lo = 0, hi = h->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ring_at(h, mid)->rev < rev)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void shared_fail(etcd_watch *h)
{
    h->shared_live = false;
    h->shared_down = true;
    h->shared_retry_at = clock_mono_ms(h->clock) + backoff_next(&h->shared_backoff);
    pthread_cond_signal(&h->wake);
}

/* ---- the shared stream (I/O thread) ----------------------------------------------- */

static int shared_msg(void *ctx, json_t *res)
{
    etcd_watch *h = ctx;
    bool canceled = json_is_true(json_object_get(res, "canceled"));
    int64_t compact = canceled ? etcd_codec_int(res, "compact_revision") : 0;
    json_t *events = json_object_get(res, "events");
    rev_entry *batch = NULL;
    int64_t last = 0;
    int rc = json_array_size(events) ? entries_parse(events, NULL, 0, &batch, &last) : 0;
    pthread_mutex_lock(&h->mu);
    if (h->shared_live) {
        h->shared_last_ms = clock_mono_ms(h->clock);
        if (canceled || rc < 0) {
            if (compact > h->ring_head + 1)
                h->gap_rev = compact;
            shared_fail(h);
        } else if (batch) {
            while (batch && batch->rev <= h->ring_head) { /* already have it */
                rev_entry *e = batch;
                batch = e->next;
                entry_free(e);
            }
            for (; batch; batch = batch->next) {
                if (!ring_push(h, batch)) {
                    shared_fail(h); /* resume from ring_head + 1 */
                    break;
                }
                h->ring_head = batch->rev;
            }
        } else if (json_is_true(json_object_get(res, "created"))) {
            h->shared_backoff = BACKOFF_MIN_MS;
        } else { /* a progress notification: every event through its revision was sent */
            int64_t rev = etcd_codec_revision(res);
            if (rev > h->ring_head)
                h->ring_head = rev;
        }
        pthread_cond_signal(&h->wake);
    }
    pthread_mutex_unlock(&h->mu);
    entries_free(batch);
    if (compact > 0 && h->compacted)
        h->compacted(h->cb_ctx, compact);
    return 0;
}

static void shared_end(void *ctx, int rc, const char *msg)
{
    etcd_watch *h = ctx;
    pthread_mutex_lock(&h->mu);
    bool was_live = h->shared_live;
    int64_t head = h->ring_head;
    if (was_live)
        shared_fail(h);
    pthread_mutex_unlock(&h->mu);
    if (was_live)
        log_warn("store_etcd", "watch stream ended; resuming",
                 json_pack("{s:s,s:I,s:s}", "error", citrus_err_code(rc), "resume_revision",
                           (json_int_t)(head + 1), "detail", msg ? msg : ""));
}

/* ---- catch-up streams (I/O thread) ------------------------------------------------ */

static void catchup_fail(store_watch *w)
{
    w->stream_live = false;
    w->need_stream = true;
    w->retry_at = clock_mono_ms(w->hub->clock) + backoff_next(&w->backoff);
    pthread_cond_signal(&w->hub->wake);
}

/* Queues the entries after q_through; mu held. Returns what is left over. */
static rev_entry *queue_append(store_watch *w, rev_entry *batch, int64_t last)
{
    while (batch && batch->rev <= w->q_through) {
        rev_entry *e = batch;
        batch = e->next;
        entry_free(e);
    }
    while (batch) {
        rev_entry *e = batch;
        batch = e->next;
        e->next = NULL;
        if (w->q_tail)
            w->q_tail->next = e;
        else
            w->q_head = e;
        w->q_tail = e;
        w->q_bytes += e->bytes;
    }
    if (last > w->q_through)
        w->q_through = last;
    return NULL;
}

static int catchup_msg(void *ctx, json_t *res)
{
    store_watch *w = ctx;
    etcd_watch *h = w->hub;
    bool canceled = json_is_true(json_object_get(res, "canceled"));
    int64_t compact = canceled ? etcd_codec_int(res, "compact_revision") : 0;
    json_t *events = json_object_get(res, "events");
    rev_entry *batch = NULL;
    int64_t last = 0;
    int rc = json_array_size(events)
                 ? entries_parse(events, w->prefix, w->prefix_len, &batch, &last)
                 : 0;
    int pause = 0;
    pthread_mutex_lock(&h->mu);
    if (w->stream_live && w->mode == MODE_CATCHUP && !w->dead) {
        w->last_msg_ms = clock_mono_ms(h->clock);
        if (compact > 0) {
            w->pending_err = CITRUS_ECOMPACTED;
            w->stream_live = false;
        } else if (canceled || rc < 0) {
            catchup_fail(w);
        } else if (last) {
            batch = queue_append(w, batch, last);
        } else if (json_is_true(json_object_get(res, "created"))) {
            w->backoff = BACKOFF_MIN_MS;
        } else {
            int64_t rev = etcd_codec_revision(res);
            if (rev > w->q_through)
                w->q_through = rev;
        }
        if (w->stream_live && w->q_bytes > QUEUE_HIGH_BYTES) {
            w->paused = true;
            pause = 1;
        }
        pthread_cond_signal(&h->wake);
    }
    pthread_mutex_unlock(&h->mu);
    entries_free(batch);
    if (compact > 0 && h->compacted)
        h->compacted(h->cb_ctx, compact);
    return pause;
}

static void catchup_end(void *ctx, int rc, const char *msg)
{
    store_watch *w = ctx;
    pthread_mutex_lock(&w->hub->mu);
    if (w->stream_live)
        catchup_fail(w);
    pthread_mutex_unlock(&w->hub->mu);
}

/* ---- delivery (delivery thread) --------------------------------------------------- */

static void watch_unlink(etcd_watch *h, store_watch *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        h->watchers = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
}

static void watch_free(store_watch *w)
{
    entries_free(w->q_head);
    free(w->prefix);
    free(w);
}

/* Under mu: restarts the ring after a compaction gap, and evicts the
 * oldest revisions beyond the limits, keeping those a watcher still needs
 * unless the hard limit is reached. */
static void ring_maintain(etcd_watch *h)
{
    if (h->gap_rev) {
        while (h->count)
            entry_free(ring_pop(h));
        for (store_watch *w = h->watchers; w; w = w->next)
            if (w->mode == MODE_RING && !w->dead && w->next_rev < h->gap_rev)
                w->pending_err = CITRUS_ECOMPACTED;
        h->ring_start = h->gap_rev;
        h->ring_head = h->gap_rev - 1;
        h->gap_rev = 0;
    }
    if (h->count <= h->ring_revs && h->bytes <= h->ring_bytes)
        return;
    int64_t need = INT64_MAX;
    for (store_watch *w = h->watchers; w; w = w->next)
        if (w->mode == MODE_RING && !w->dead && !atomic_load(&w->closing) && w->next_rev < need)
            need = w->next_rev;
    while (h->count && (h->count > h->ring_revs || h->bytes > h->ring_bytes)) {
        bool hard = h->count > h->ring_revs * RING_HARD_FACTOR ||
                    h->bytes > h->ring_bytes * RING_HARD_FACTOR;
        if (ring_at(h, 0)->rev >= need && !hard)
            break;
        rev_entry *e = ring_pop(h);
        h->ring_start = e->rev + 1;
        entry_free(e);
    }
}

/* Under mu: moves w from catch-up to the ring (its queue is covered by it). */
static etcd_stream *watch_to_ring(store_watch *w)
{
    etcd_stream *st = w->stream;
    entries_free(w->q_head);
    w->q_head = w->q_tail = NULL;
    w->q_bytes = 0;
    w->mode = MODE_RING;
    w->stream = NULL;
    w->stream_live = w->need_stream = w->paused = false;
    return st;
}

/* Detaches up to CHUNK_REVS queued entries into p. */
static void queue_take(store_watch *w, pin *p)
{
    rev_entry **tail = &p->batch;
    int64_t last = 0;
    for (size_t i = 0; i < CHUNK_REVS && w->q_head; i++) {
        rev_entry *e = w->q_head;
        w->q_head = e->next;
        e->next = NULL;
        w->q_bytes -= e->bytes;
        last = e->rev;
        *tail = e;
        tail = &e->next;
    }
    if (!w->q_head)
        w->q_tail = NULL;
    p->through = w->q_head ? last : w->q_through;
}

/* Under mu: what this round does for w; true when w is pinned for it.
 * *due is lowered to the time a postponed stream reopen is due. */
static bool plan_watch(etcd_watch *h, store_watch *w, int64_t now, pin *p, int64_t *due)
{
    if (w->dead || atomic_load(&w->closing))
        return false;
    memset(p, 0, sizeof(*p));
    p->w = w;
    if (w->mode == MODE_RING && w->next_rev < h->ring_start && !w->pending_err) {
        w->mode = MODE_CATCHUP; /* fell behind the ring */
        w->q_through = w->next_rev - 1;
        w->need_stream = true;
        w->retry_at = now;
    }
    if (w->mode == MODE_CATCHUP && !w->q_head && w->q_through + 1 >= h->ring_start &&
        !w->pending_err) {
        p->close = watch_to_ring(w); /* caught up with the ring */
        p->through = w->q_through;
    }
    bool work = p->close != NULL;
    if (w->mode == MODE_RING) {
        if (w->pending_err) {
            p->err = w->pending_err;
            work = true;
        } else if (w->next_rev <= h->ring_head) {
            p->from = w->next_rev;
            p->upto = h->ring_head - w->next_rev >= CHUNK_REVS ? w->next_rev + CHUNK_REVS - 1
                                                               : h->ring_head;
            work = true;
        }
    } else {
        if (w->stream && w->stream_live && !w->paused &&
            etcd_client_revision(h->cl) > w->q_through && now - w->last_msg_ms >= h->stall_ms) {
            etcd_client_stream_stalled(w->stream); /* its member went silent */
            catchup_fail(w);
        }
        if (w->need_stream && now >= w->retry_at) {
            p->close = w->stream;
            w->stream = NULL;
            p->open = true;
            p->open_from = w->q_through + 1;
            w->need_stream = w->paused = false;
            w->stream_live = true;
            w->last_msg_ms = now;
            work = true;
        } else if (w->need_stream && w->retry_at < *due) {
            *due = w->retry_at;
        }
        if (w->q_head) {
            queue_take(w, p);
            work = true;
        } else if (w->q_through >= w->next_rev) {
            p->through = w->q_through; /* progress without events */
            work = true;
        }
        if (!w->q_head && w->pending_err) {
            p->err = w->pending_err;
            work = true;
        }
        if (w->paused && w->stream && w->q_bytes < QUEUE_LOW_BYTES) {
            w->paused = false;
            w->last_msg_ms = now;
            etcd_client_stream_resume(w->stream);
        }
    }
    if (work)
        w->pins++;
    return work;
}

/* Calls w's callback with the events of e under its prefix, if any. */
static void deliver_entry(store_watch *w, const rev_entry *e, kv_event **scratch, size_t *cap)
{
    const kv_event *events = e->ev;
    size_t m = e->n;
    if (w->prefix_len) {
        if (*cap < e->n) {
            kv_event *s = realloc(*scratch, e->n * sizeof(*s));
            if (!s)
                return; /* cannot happen in practice; the watcher would miss e */
            *scratch = s;
            *cap = e->n;
        }
        m = 0;
        for (size_t k = 0; k < e->n; k++)
            if (strncmp(e->ev[k].kv.key, w->prefix, w->prefix_len) == 0)
                (*scratch)[m++] = e->ev[k];
        events = *scratch;
    }
    if (m && !atomic_load(&w->closing))
        w->cb(w->ctx, events, m, 0);
}

/* Without mu: streams first, then the events, then a final error. */
static void pin_run(etcd_watch *h, pin *p, rev_entry **snap, size_t nsnap, kv_event **scratch,
                    size_t *cap)
{
    store_watch *w = p->w;
    stream_close(h, p->close);
    if (p->open)
        p->opened = stream_open(h, p->open_from, catchup_msg, catchup_end, w);
    if (p->upto) {
        size_t lo = 0, hi = nsnap;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (snap[mid]->rev < p->from)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (size_t i = lo; i < nsnap && snap[i]->rev <= p->upto; i++)
            deliver_entry(w, snap[i], scratch, cap);
    }
    for (rev_entry *e = p->batch; e; e = e->next)
        deliver_entry(w, e, scratch, cap);
    if (p->err && !atomic_load(&w->closing))
        w->cb(w->ctx, NULL, 0, p->err);
}

/* Under mu: records what the round delivered. Returns a stream to close
 * before the pin is released, or NULL. */
static etcd_stream *pin_finish(etcd_watch *h, pin *p)
{
    store_watch *w = p->w;
    etcd_stream *close = NULL;
    if (p->open) {
        w->stream = p->opened;
        if (!p->opened)
            catchup_fail(w);
    }
    if (p->upto)
        w->next_rev = p->upto + 1;
    if (p->through >= w->next_rev)
        w->next_rev = p->through + 1;
    if (p->err) {
        w->dead = true;
        w->pending_err = 0;
    }
    if (w->mode == MODE_CATCHUP && !w->dead && w->next_rev >= h->ring_start)
        close = watch_to_ring(w);
    if (w->dead && w->stream) {
        close = w->stream;
        w->stream = NULL;
        w->stream_live = false;
    }
    return close;
}

typedef struct round {
    pin *pins;
    size_t n, cap;
    rev_entry **snap;
    size_t nsnap, snap_cap;
    etcd_stream **closes;
    kv_event *scratch;
    size_t scratch_cap;
} round;

static bool round_reserve(round *r, size_t n)
{
    if (n <= r->cap)
        return true;
    pin *p = realloc(r->pins, n * sizeof(*p));
    etcd_stream **c = p ? realloc(r->closes, n * sizeof(etcd_stream *)) : NULL;
    if (p)
        r->pins = p;
    if (c)
        r->closes = c;
    if (!p || !c)
        return false;
    r->cap = n;
    return true;
}

/* Under mu: copies the ring entries from the lowest revision a pin needs. */
static bool round_snapshot(etcd_watch *h, round *r)
{
    int64_t lo = INT64_MAX;
    for (size_t i = 0; i < r->n; i++)
        if (r->pins[i].upto && r->pins[i].from < lo)
            lo = r->pins[i].from;
    r->nsnap = 0;
    if (lo == INT64_MAX)
        return true;
    size_t first = ring_lower_bound(h, lo), n = h->count - first;
    if (n > r->snap_cap) {
        rev_entry **s = realloc(r->snap, n * sizeof(rev_entry *));
        if (!s)
            return false;
        r->snap = s;
        r->snap_cap = n;
    }
    for (size_t i = 0; i < n; i++)
        r->snap[i] = ring_at(h, first + i);
    r->nsnap = n;
    return true;
}

/* Under mu: pins every watcher with work; false when there is none. */
static bool round_plan(etcd_watch *h, round *r, int64_t now, int64_t *due)
{
    size_t nw = 0;
    for (store_watch *w = h->watchers; w; w = w->next)
        nw++;
    r->n = 0;
    if (!round_reserve(r, nw))
        return false;
    for (store_watch *w = h->watchers; w; w = w->next)
        if (plan_watch(h, w, now, &r->pins[r->n], due))
            r->n++;
    if (r->n && !round_snapshot(h, r)) { /* no memory: serve no ring range this round */
        for (size_t i = 0; i < r->n; i++)
            r->pins[i].upto = 0;
    }
    return r->n > 0;
}

/* Runs the planned pins, records the results, releases the pins, and frees
 * orphans. Called and returns with mu held. */
static void round_run(etcd_watch *h, round *r)
{
    pthread_mutex_unlock(&h->mu);
    for (size_t i = 0; i < r->n; i++)
        pin_run(h, &r->pins[i], r->snap, r->nsnap, &r->scratch, &r->scratch_cap);
    pthread_mutex_lock(&h->mu);
    size_t nclose = 0;
    for (size_t i = 0; i < r->n; i++) {
        etcd_stream *st = pin_finish(h, &r->pins[i]);
        if (st)
            r->closes[nclose++] = st;
    }
    if (nclose) {
        pthread_mutex_unlock(&h->mu);
        for (size_t i = 0; i < nclose; i++)
            stream_close(h, r->closes[i]);
        pthread_mutex_lock(&h->mu);
    }
    store_watch *orphans = NULL;
    for (size_t i = 0; i < r->n; i++) {
        store_watch *w = r->pins[i].w;
        entries_free(r->pins[i].batch);
        if (--w->pins == 0 && w->orphan) {
            watch_unlink(h, w);
            w->next = orphans;
            orphans = w;
        }
    }
    pthread_cond_broadcast(&h->unpinned);
    if (orphans) {
        pthread_mutex_unlock(&h->mu);
        while (orphans) {
            store_watch *w = orphans;
            orphans = w->next;
            stream_close(h, w->stream);
            watch_free(w);
        }
        pthread_mutex_lock(&h->mu);
    }
}

/* Under mu: abandons the shared stream when its member went silent while
 * etcd is known to be past the ring (a stopped member keeps its
 * connections open, so nothing else would tell), and (re)opens it when it
 * is down and due. */
static void shared_maintain(etcd_watch *h, int64_t now, int64_t *due)
{
    if (h->shared && h->shared_live && etcd_client_revision(h->cl) > h->ring_head) {
        int64_t stall_at = h->shared_last_ms + h->stall_ms;
        if (now >= stall_at) {
            log_warn("store_etcd", "watch stream stalled; resuming elsewhere",
                     json_pack("{s:I,s:I}", "resume_revision", (json_int_t)(h->ring_head + 1),
                               "known_revision", (json_int_t)etcd_client_revision(h->cl)));
            etcd_client_stream_stalled(h->shared);
            shared_fail(h);
        } else if (stall_at < *due) {
            *due = stall_at;
        }
    }
    if (!h->shared_down)
        return;
    if (now < h->shared_retry_at) {
        if (h->shared_retry_at < *due)
            *due = h->shared_retry_at;
        return;
    }
    etcd_stream *old = h->shared;
    h->shared = NULL;
    h->shared_down = false;
    h->shared_live = true;
    h->shared_last_ms = now;
    int64_t from = h->ring_head + 1;
    pthread_mutex_unlock(&h->mu);
    stream_close(h, old);
    etcd_stream *st = stream_open(h, from, shared_msg, shared_end, h);
    pthread_mutex_lock(&h->mu);
    h->shared = st;
    if (!st)
        shared_fail(h);
}

/* Under mu, at shutdown: a final CITRUS_ECLOSED to every live watch. */
static void close_all(etcd_watch *h)
{
    for (store_watch *w = h->watchers; w; w = w->next) {
        if (w->dead || atomic_load(&w->closing))
            continue;
        w->dead = true;
        w->pins++;
        pthread_mutex_unlock(&h->mu);
        w->cb(w->ctx, NULL, 0, CITRUS_ECLOSED);
        pthread_mutex_lock(&h->mu);
        w->pins--;
        pthread_cond_broadcast(&h->unpinned);
    }
}

static void *deliver_main(void *arg)
{
    etcd_watch *h = arg;
    round r = {0};
    pthread_mutex_lock(&h->mu);
    while (!h->stopping) {
        int64_t now = clock_mono_ms(h->clock), due = now + IDLE_WAIT_MS;
        ring_maintain(h);
        shared_maintain(h, now, &due);
        if (h->stopping)
            break;
        if (round_plan(h, &r, now, &due)) {
            round_run(h, &r);
            continue;
        }
        if (due > now) { /* due is on h's clock; the wait, on the real one */
            struct timespec ts = clock_cond_deadline(due - now);
            pthread_cond_timedwait(&h->wake, &h->mu, &ts);
        }
    }
    close_all(h);
    pthread_mutex_unlock(&h->mu);
    free(r.pins);
    free(r.closes);
    free(r.snap);
    free(r.scratch);
    return NULL;
}

/* ---- the API ------------------------------------------------------------------------ */

int etcd_watch_new(const etcd_watch_options *o, etcd_watch **out)
{
    *out = NULL;
    etcd_watch *h = calloc(1, sizeof(*h));
    if (!h)
        return CITRUS_ENOMEM;
    h->cl = o->client;
    h->clock = o->clock;
    h->ring_revs = o->ring_revs ? o->ring_revs : DEFAULT_RING_REVS;
    h->ring_bytes = o->ring_bytes ? o->ring_bytes : DEFAULT_RING_BYTES;
    h->check_from = o->check_from;
    h->compacted = o->compacted;
    h->cb_ctx = o->ctx;
    h->ring_start = o->start_rev;
    h->ring_head = o->start_rev - 1;
    h->shared_down = true; /* the delivery thread opens it */
    h->stall_ms = o->stall_ms > 0 ? o->stall_ms : DEFAULT_STALL_MS;
    h->shared_backoff = BACKOFF_MIN_MS;
    atomic_init(&h->nstreams, 0);
    clock_cond_init(&h->wake);
    clock_cond_init(&h->unpinned);
    pthread_mutex_init(&h->mu, NULL);
    int e = pthread_create(&h->th, NULL, deliver_main, h);
    if (e) {
        etcd_watch_free(h);
        return CITRUS_ENOMEM;
    }
    h->started = true;
    *out = h;
    return 0;
}

void etcd_watch_free(etcd_watch *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->stopping = true;
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->mu);
    if (h->started)
        pthread_join(h->th, NULL);
    stream_close(h, h->shared);
    for (store_watch *w = h->watchers, *next; w; w = next) {
        next = w->next;
        stream_close(h, w->stream);
        watch_free(w);
    }
    h->watchers = NULL;
    while (h->count)
        entry_free(ring_pop(h));
    free(h->ring);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->wake);
    pthread_cond_destroy(&h->unpinned);
    free(h);
}

int etcd_watch_open(etcd_watch *h, const char *prefix, int64_t from_rev, store_watch_cb cb,
                    void *ctx, store_watch **out, int64_t *compact_rev)
{
    if (!prefix || !cb)
        return CITRUS_EINVAL;
    pthread_mutex_lock(&h->mu);
    bool stopping = h->stopping;
    int64_t ring_start = h->ring_start;
    pthread_mutex_unlock(&h->mu);
    if (stopping)
        return CITRUS_ECLOSED;
    if (from_rev > 0) {
        int64_t compact = 0;
        int rc = h->check_from(h->cb_ctx, from_rev, from_rev < ring_start, &compact);
        if (compact_rev)
            *compact_rev = compact;
        if (rc < 0)
            return rc;
    }
    store_watch *w = calloc(1, sizeof(*w));
    if (!w || !(w->prefix = strdup(prefix))) {
        free(w);
        return CITRUS_ENOMEM;
    }
    w->hub = h;
    w->prefix_len = strlen(prefix);
    w->cb = cb;
    w->ctx = ctx;
    w->backoff = BACKOFF_MIN_MS;
    atomic_init(&w->closing, false);
    pthread_mutex_lock(&h->mu);
    if (h->stopping) {
        pthread_mutex_unlock(&h->mu);
        watch_free(w);
        return CITRUS_ECLOSED;
    }
    if (from_rev <= 0) {
        int64_t seen = etcd_client_revision(h->cl);
        w->next_rev = (seen > h->ring_head ? seen : h->ring_head) + 1;
        w->mode = MODE_RING;
    } else {
        w->next_rev = from_rev;
        w->mode = from_rev >= h->ring_start ? MODE_RING : MODE_CATCHUP;
        w->q_through = from_rev - 1;
        w->need_stream = w->mode == MODE_CATCHUP;
    }
    w->next = h->watchers;
    if (h->watchers)
        h->watchers->prev = w;
    h->watchers = w;
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->mu);
    *out = w;
    return 0;
}

void etcd_watch_close(store_watch *w)
{
    etcd_watch *h = w->hub;
    atomic_store(&w->closing, true);
    pthread_mutex_lock(&h->mu);
    /* The delivery thread (a callback closing another watch) and the I/O
     * thread (a txn callback) cannot wait for a pin: the delivery thread
     * frees w when it lets go. */
    bool cannot_wait = pthread_equal(pthread_self(), h->th) || etcd_client_on_io_thread(h->cl);
    if (w->pins && cannot_wait) {
        w->orphan = true;
        pthread_mutex_unlock(&h->mu);
        return;
    }
    while (w->pins)
        pthread_cond_wait(&h->unpinned, &h->mu);
    watch_unlink(h, w);
    etcd_stream *st = w->stream;
    w->stream = NULL;
    w->stream_live = false;
    pthread_mutex_unlock(&h->mu);
    stream_close(h, st);
    watch_free(w);
}

int64_t etcd_watch_progress(store_watch *w)
{
    etcd_watch *h = w->hub;
    pthread_mutex_lock(&h->mu);
    int64_t rev = w->next_rev - 1;
    pthread_mutex_unlock(&h->mu);
    return rev;
}

size_t etcd_watch_streams(etcd_watch *h)
{
    return atomic_load(&h->nstreams);
}
