/* workers/relay.c — the lifecycle relay (see relay.h).
 *
 * The catalog watch's callback runs on a store thread and must not block:
 * it copies the changes of shard records and tenant pins into a bounded
 * queue, one item per revision. The relay's thread publishes the queue in
 * revision order; a revision counts as published once all its events are
 * acknowledged (durable). Anything that goes wrong (a publish that fails,
 * a queue that overflowed, a watch that ended) closes the watch, and the
 * next round opens it again from the revision after the last published
 * one: the ids of what gets published again are the same.
 *
 * Exactly one event per id: each time the watch opens (at the start, after
 * a crash or a change of leader, and after any failure) the relay reads the
 * topic's tail back to its position first and keeps the ids already there
 * (present_scan); a revision's event whose id is there is not published
 * again. So a crash between publishing and recording the checkpoint, or a
 * publish that failed half way through a revision, leaves no duplicate. */
#include "workers/relay.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/txb.h"
#include "core/hash.h"
#include "citrus/errors.h"
#include "controller/election.h"
#include "core/shard.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "wire/catalog_keys.h"
#include "wire/envelope.h"
#include "wire/shard_json.h"

#define QUEUE_MAX 4096       /* revisions waiting; past it the watch restarts */
#define IDLE_WAIT_MS 200     /* the thread's longest sleep while leading */
#define FOLLOWER_WAIT_MS 500 /* how often a follower looks at leadership */
#define RETRY_WAIT_MS 1000   /* after a failed publish or watch */
/* The tail read when the watch opens (present_scan): messages per read,
 * the most read of one partition, and the most ids kept. Past a bound
 * the rest is published again (a duplicate id, never a lost event). */
#define SCAN_CHUNK 256
#define SCAN_PART_MAX 16384
#define PRESENT_MAX 65536

/* An event of the relay's found on the topic: its id (rev, n) and a hash
 * of its type, subject and key (an event is taken as published only when
 * all four match what the relay would publish). */
typedef struct present {
    int64_t rev;
    int n;
    uint64_t what;
} present;

typedef struct qitem {
    int64_t rev;
    kv_event *ev;
    size_t n;
    struct qitem *next;
} qitem;

struct relay {
    store *st;
    bus *b;
    char topic[BUS_NAME_MAX + 1];
    session *sess;
    const sysclock *clock;
    int64_t every_ms;

    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* under mu */
    bool stopping, abandon;
    qitem *head, *tail;
    size_t qlen;
    bool overflow;
    int werr;         /* the watch ended with this */
    int64_t seen_rev; /* the newest revision delivered (but the checkpoint's own) */

    /* the thread's own */
    store_watch *w;
    int64_t checkpointed; /* the revision in the catalog's checkpoint */
    /* the newest revision whose events were published (the thread's): the
     * checkpoint is written only when it passed the checkpoint, so a
     * catalog whose shards and tenants do not change gets no writes */
    int64_t event_rev;
    int64_t last_ckpt_ms;
    present *pres; /* sorted by (rev, n); npres of them */
    size_t npres;
    _Atomic int64_t published;
};

static bool relevant(const char *key)
{
    return (strncmp(key, REG_SHARDS, strlen(REG_SHARDS)) == 0 && key[strlen(REG_SHARDS)]) ||
           (strncmp(key, REG_TENANTS, strlen(REG_TENANTS)) == 0 && key[strlen(REG_TENANTS)]);
}

static void qitem_free(qitem *q)
{
    for (size_t i = 0; i < q->n; i++)
        kv_entry_clear(&q->ev[i].kv);
    free(q->ev);
    free(q);
}

static void queue_clear(relay *r)
{
    for (qitem *q = r->head, *next; q; q = next) {
        next = q->next;
        qitem_free(q);
    }
    r->head = r->tail = NULL;
    r->qlen = 0;
}

/* The copy of one revision's changes of shard records and tenant pins;
 * NULL when there are none (*nomem on a failed allocation). */
static qitem *qitem_copy(const kv_event *events, size_t n, bool *nomem)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += relevant(events[i].kv.key);
    *nomem = false;
    if (k == 0)
        return NULL;
    qitem *q = calloc(1, sizeof(*q));
    if (q)
        q->ev = calloc(k, sizeof(kv_event));
    if (!q || !q->ev) {
        free(q);
        *nomem = true;
        return NULL;
    }
    q->rev = events[0].kv.mod_revision;
    for (size_t i = 0; i < n; i++) {
        if (!relevant(events[i].kv.key))
            continue;
        q->ev[q->n].type = events[i].type;
        if (kv_entry_copy(&q->ev[q->n].kv, &events[i].kv, true) < 0) {
            qitem_free(q);
            *nomem = true;
            return NULL;
        }
        q->n++;
    }
    return q;
}

static void on_watch(void *ctx, const kv_event *events, size_t n, int err)
{
    relay *r = ctx;
    bool only_checkpoint = n > 0;
    for (size_t i = 0; i < n; i++)
        only_checkpoint &= strcmp(events[i].kv.key, RELAY_CHECKPOINT_KEY) == 0;
    bool nomem = false;
    qitem *q = err || n == 0 || only_checkpoint ? NULL : qitem_copy(events, n, &nomem);
    pthread_mutex_lock(&r->mu);
    if (err)
        r->werr = err;
    else if (nomem || (q && r->qlen >= QUEUE_MAX))
        r->overflow = true;
    if (q && !r->overflow && !r->werr) {
        if (r->tail)
            r->tail->next = q;
        else
            r->head = q;
        r->tail = q;
        r->qlen++;
        q = NULL;
    }
    if (!err && n > 0 && !only_checkpoint && !r->overflow)
        r->seen_rev = events[0].kv.mod_revision;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (q)
        qitem_free(q);
}

/* ---- events ---------------------------------------------------------- */

typedef struct out_event {
    const char *type;
    char key[BUS_KEY_MAX];
    char subject[ENVELOPE_SUBJECT_MAX + 1];
    int64_t time_ms;
    json_t *data; /* owned */
} out_event;

/* ---- what the topic holds already ------------------------------------ */

static uint64_t event_what(const char *type, const char *subject, const void *key, size_t key_len)
{
    char buf[ENVELOPE_SUBJECT_MAX + BUS_KEY_MAX + 256];
    int len = snprintf(buf, sizeof(buf), "%s%c%s%c%.*s", type, 0, subject, 0, (int)key_len,
                       (const char *)key);
    if (len < 0 || (size_t)len >= sizeof(buf))
        len = (int)sizeof(buf) - 1;
    return citrus_hash(CITRUS_HASH_MURMUR3, buf, (size_t)len);
}

static int present_cmp(const void *a, const void *b)
{
    const present *x = a, *y = b;
    if (x->rev != y->rev)
        return x->rev < y->rev ? -1 : 1;
    return (x->n > y->n) - (x->n < y->n);
}

static void present_free(relay *r)
{
    free(r->pres);
    r->pres = NULL;
    r->npres = 0;
}

/* One message of the topic: 1 when it is the relay's event (*out filled),
 * 0 when it is someone else's (the topic is shared) or unreadable. */
static int present_parse(const bus_message *m, present *out)
{
    json_t *j = json_loadb((const char *)m->value, m->value_len, 0, NULL);
    const char *id = json_string_value(json_object_get(j, "id"));
    const char *src = json_string_value(json_object_get(j, "source"));
    const char *type = json_string_value(json_object_get(j, "type"));
    const char *subject = json_string_value(json_object_get(j, "subject"));
    long long rev = 0;
    int n = -1, end = 0;
    int ok = id && src && type && subject && strcmp(src, RELAY_EVENT_SOURCE) == 0 &&
             sscanf(id, "sm-%lld-%d%n", &rev, &n, &end) == 2 && id[end] == 0 && rev > 0 && n >= 0;
    if (ok)
        *out = (present){.rev = rev, .n = n, .what = event_what(type, subject, m->key, m->key_len)};
    json_decref(j);
    return ok;
}

/* Reads messages [from, to) of partition p, keeping the relay's events
 * above after in r->pres; *older: one at or below after was among them.
 * CITRUS_ECOMPACTED when from was trimmed meanwhile. */
static int present_read(relay *r, int p, int64_t from, int64_t to, int64_t after, bool *older,
                        bool *full)
{
    while (from < to) {
        bus_message *m = NULL;
        size_t n = 0;
        errdetail e;
        int rc = bus_read(r->b, r->topic, p, from, (size_t)(to - from), &m, &n, &e);
        if (rc < 0)
            return rc;
        for (size_t i = 0; i < n && m[i].offset < to; i++) {
            present x;
            if (!present_parse(&m[i], &x))
                continue;
            if (x.rev <= after)
                *older = true;
            else if (r->npres < PRESENT_MAX)
                r->pres[r->npres++] = x;
            else
                *full = true;
        }
        from = n ? m[n - 1].offset + 1 : to;
        bus_messages_free(m, n);
    }
    return 0;
}

/* The relay's events on the topic with revisions above after, into
 * r->pres: each partition read from its end backwards, a chunk at a time,
 * until an event at or below after (events go out in revision order, so
 * the rest of the partition is older), its oldest retained message, or
 * SCAN_PART_MAX messages. A backend that cannot list topics keeps none
 * (then a crash may repeat ids, as before). */
static int present_scan(relay *r, int64_t after)
{
    present_free(r);
    bus_topic_entry *all = NULL;
    size_t nt = 0;
    errdetail e;
    int rc = bus_topics_list(r->b, &all, &nt, &e);
    if (rc == CITRUS_EUNSUPPORTED) {
        log_warn("relay",
                 "cannot read the topic's tail: events since the checkpoint may be "
                 "published again",
                 NULL);
        return 0;
    }
    if (rc < 0)
        return rc;
    const bus_topic_entry *t = NULL;
    for (size_t i = 0; i < nt && !t; i++)
        if (strcmp(all[i].name, r->topic) == 0)
            t = &all[i];
    r->pres = t ? malloc(PRESENT_MAX * sizeof(present)) : NULL;
    rc = !t ? CITRUS_ENOTFOUND : !r->pres ? CITRUS_ENOMEM : 0;
    int64_t chunk = (int64_t)(r->b->cfg.poll_max < SCAN_CHUNK ? r->b->cfg.poll_max : SCAN_CHUNK);
    bool full = false;
    for (int p = 0; rc == 0 && t && p < t->info.partitions; p++) {
        int64_t low = t->parts[p].low, pos = t->parts[p].high;
        bool older = false;
        while (rc == 0 && !older && !full && pos > low && t->parts[p].high - pos < SCAN_PART_MAX) {
            int64_t from = pos - chunk < low ? low : pos - chunk;
            rc = present_read(r, p, from, pos, after, &older, &full);
            if (rc == CITRUS_ECOMPACTED) /* trimmed meanwhile: the rest is older still */
                rc = 0, older = true;
            pos = from;
        }
    }
    bus_topics_free(all, nt);
    if (rc < 0) {
        present_free(r);
        return rc;
    }
    if (full)
        log_warn("relay",
                 "too many events since the checkpoint to tell which are published: "
                 "some may be published again",
                 json_pack("{s:I}", "from", (json_int_t)after));
    if (r->npres)
        qsort(r->pres, r->npres, sizeof(present), present_cmp);
    return 0;
}

/* Whether event n of revision rev, o, is on the topic already. */
static bool present_has(const relay *r, int64_t rev, int n, const out_event *o)
{
    present k = {.rev = rev, .n = n};
    const present *x =
        r->npres ? bsearch(&k, r->pres, r->npres, sizeof(present), present_cmp) : NULL;
    return x && x->what == event_what(o->type, o->subject, o->key, strlen(o->key));
}

static int publish_one(relay *r, int64_t rev, int n, out_event *o, errdetail *e)
{
    if (present_has(r, rev, n, o)) {
        metrics_counter_add("citrus_relay_skipped_total", NULL, 1);
        return 0;
    }
    char id[64];
    snprintf(id, sizeof(id), "sm-%lld-%d", (long long)rev, n);
    json_object_set_new(o->data, "revision", json_integer(rev));
    envelope ev;
    envelope_spec spec = {.id = id,
                          .type = o->type,
                          .source = RELAY_EVENT_SOURCE,
                          .subject = o->subject,
                          .time_ms = o->time_ms,
                          .data = o->data};
    int rc = envelope_build(&spec, &ev, e);
    if (rc < 0)
        return rc;
    /* the catalog revision of the change, for consumers that order or
     * compare with the catalog (a CloudEvents extension attribute) */
    json_object_set_new(ev.doc, "citrusrevision", json_integer(rev));
    size_t len = 0;
    char *text = envelope_encode(&ev, &len);
    envelope_clear(&ev);
    if (!text)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    int part;
    int64_t off;
    rc = bus_publish(r->b, r->topic, o->key, strlen(o->key), text, len, &part, &off, e);
    free(text);
    if (rc == 0)
        metrics_counter_add("citrus_relay_events_total", NULL, 1);
    return rc;
}

static json_t *state_json(shard_state s)
{
    return json_string(shard_state_name(s));
}

/* The events of one shard record change, appended to out (at most cap). */
static size_t shard_events(const kv_event *ev, const char *id, int64_t now_ms, out_event *out,
                           size_t cap)
{
    size_t k = 0;
    out_event base = {.time_ms = now_ms};
    snprintf(base.key, sizeof(base.key), "shard/%s", id);
    snprintf(base.subject, sizeof(base.subject), "%s", id);
    if (ev->type == KV_EVENT_DELETE) {
        out[k] = base;
        out[k].type = "citrus.shard.deleted";
        out[k++].data = json_pack("{s:s}", "shardId", id);
        return k;
    }
    shard s;
    errdetail e;
    json_t *j = json_loadb((const char *)ev->kv.value, ev->kv.value_len, 0, NULL);
    int rc = j ? shard_from_json(j, &s, &e) : CITRUS_EBADJSON;
    json_decref(j);
    if (rc < 0) {
        out[k] = base;
        out[k].type = "citrus.shard.updated";
        out[k++].data = json_pack("{s:s,s:b}", "shardId", id, "unreadable", 1);
        return k;
    }
    if (ev->kv.version == 1) {
        out[k] = base;
        out[k].type = "citrus.shard.created";
        out[k].time_ms = s.created_ms ? s.created_ms : now_ms;
        out[k++].data = json_pack("{s:s,s:o,s:I,s:s?}", "shardId", id, "state", state_json(s.state),
                                  "epoch", (json_int_t)s.epoch, "template", s.template_name);
    }
    for (size_t i = 0; i < s.nhistory && k < cap; i++) {
        const shard_event *h = &s.history[i];
        if (h->epoch <= s.base_epoch)
            continue;
        out[k] = base;
        out[k].type = "citrus.shard.state_changed";
        out[k].time_ms = h->at_ms;
        out[k++].data =
            json_pack("{s:s,s:o,s:o,s:s,s:s,s:I}", "shardId", id, "from", state_json(h->from), "to",
                      state_json(h->to), "reason", h->reason ? h->reason : "", "actor",
                      h->actor ? h->actor : "", "epoch", (json_int_t)h->epoch);
    }
    if (k == 0) {
        out[k] = base;
        out[k].type = "citrus.shard.updated";
        out[k].time_ms = s.updated_ms ? s.updated_ms : now_ms;
        out[k++].data = json_pack("{s:s,s:o,s:I}", "shardId", id, "state", state_json(s.state),
                                  "epoch", (json_int_t)s.epoch);
    }
    shard_clear(&s);
    return k;
}

/* The event of one tenant pin change. */
static size_t tenant_events(const kv_event *ev, const char *tenant, int64_t now_ms, out_event *out)
{
    out_event o = {.time_ms = now_ms};
    snprintf(o.key, sizeof(o.key), "tenant/%s", tenant);
    snprintf(o.subject, sizeof(o.subject), "%s", tenant);
    if (ev->type == KV_EVENT_DELETE) {
        o.type = "citrus.tenant.removed";
        o.data = json_pack("{s:s}", "tenantKey", tenant);
    } else {
        json_t *j = json_loadb((const char *)ev->kv.value, ev->kv.value_len, 0, NULL);
        json_t *sid = json_object_get(j, "shard_id");
        o.type = ev->kv.version == 1 ? "citrus.tenant.registered" : "citrus.tenant.updated";
        o.data = json_pack("{s:s,s:O?}", "tenantKey", tenant, "shardId",
                           json_is_string(sid) ? sid : NULL);
        json_decref(j);
    }
    out[0] = o;
    return 1;
}

/* Publishes every event of one revision, in order; the first failure ends
 * it (the revision is then published again, whole, with the same ids). */
static int publish_revision(relay *r, const qitem *q)
{
    int n = 0;
    int64_t now = clock_wall_ms(r->clock);
    for (size_t i = 0; i < q->n; i++) {
        const kv_event *ev = &q->ev[i];
        out_event out[SHARD_HISTORY_MAX + 2];
        size_t k;
        if (strncmp(ev->kv.key, REG_SHARDS, strlen(REG_SHARDS)) == 0)
            k = shard_events(ev, ev->kv.key + strlen(REG_SHARDS), now, out,
                             sizeof(out) / sizeof(out[0]));
        else
            k = tenant_events(ev, ev->kv.key + strlen(REG_TENANTS), now, out);
        int rc = 0;
        for (size_t m = 0; m < k; m++) {
            errdetail e;
            if (rc == 0 && !out[m].data)
                rc = CITRUS_ENOMEM;
            if (rc == 0 && (rc = publish_one(r, q->rev, n++, &out[m], &e)) < 0)
                log_warn("relay", "cannot publish a lifecycle event: will retry",
                         json_pack("{s:I,s:s,s:s}", "revision", (json_int_t)q->rev, "key",
                                   ev->kv.key, "error", e.message));
            json_decref(out[m].data);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- checkpoint and watch -------------------------------------------- */

static int checkpoint_read(relay *r, int64_t *rev)
{
    kv_range_req req = {.key = RELAY_CHECKPOINT_KEY};
    kv_range_res res;
    *rev = 0;
    int rc = store_range(r->st, &req, &res);
    if (rc < 0)
        return rc;
    if (res.count == 1) {
        json_t *j = json_loadb((const char *)res.items[0].value, res.items[0].value_len, 0, NULL);
        json_t *v = json_object_get(j, "revision");
        if (json_is_integer(v) && json_integer_value(v) > 0)
            *rev = json_integer_value(v);
        json_decref(j);
    }
    kv_range_res_free(&res);
    return 0;
}

static void checkpoint_write(relay *r, int64_t token)
{
    int64_t pub = atomic_load(&r->published);
    if (pub <= r->checkpointed || r->event_rev <= r->checkpointed)
        return;
    txb t;
    txb_init(&t);
    if (r->sess)
        txb_cmp(&t, election_fence(ELECTION_KEY, token));
    txb_put_json(&t, RELAY_CHECKPOINT_KEY, json_pack("{s:I}", "revision", (json_int_t)pub));
    bool ok = false;
    int64_t rev;
    int rc = txb_commit(&t, r->st, &ok, &rev);
    txb_free(&t);
    if (rc == 0 && ok) {
        r->checkpointed = pub;
        r->last_ckpt_ms = clock_mono_ms(r->clock);
    } else {
        log_warn("relay", "cannot record the published revision",
                 json_pack("{s:I,s:b}", "revision", (json_int_t)pub, "fenced", rc == 0));
    }
}

static void watch_end(relay *r)
{
    if (r->w)
        store_watch_close(r->st, r->w);
    r->w = NULL;
    present_free(r);
    pthread_mutex_lock(&r->mu);
    queue_clear(r);
    r->overflow = false;
    r->werr = 0;
    r->seen_rev = 0;
    pthread_mutex_unlock(&r->mu);
}

static int watch_begin(relay *r)
{
    int64_t from = atomic_load(&r->published);
    if (from == 0) {
        int rc = checkpoint_read(r, &from);
        if (rc < 0)
            return rc;
        r->checkpointed = from;
        atomic_store(&r->published, from);
    }
    int rc = present_scan(r, from);
    if (rc < 0) {
        log_warn("relay", "cannot read the lifecycle topic's tail: will retry",
                 json_pack("{s:i}", "code", rc));
        return rc;
    }
    from++;
    int64_t compact = 0;
    rc = store_watch_open(r->st, "citrus/", from, on_watch, r, &r->w, &compact);
    if (rc == CITRUS_ECOMPACTED && compact > from) {
        /* the history before compact is gone: what changed there can no
         * longer be told apart; said loudly, and counted */
        log_error(
            "relay",
            "lifecycle events lost: the catalog's history was compacted past the last "
            "published revision",
            json_pack("{s:I,s:I}", "from", (json_int_t)from, "compacted_to", (json_int_t)compact));
        metrics_counter_add("citrus_relay_gaps_total", NULL, 1);
        atomic_store(&r->published, compact - 1);
        rc = store_watch_open(r->st, "citrus/", compact, on_watch, r, &r->w, &compact);
    }
    if (rc < 0) {
        r->w = NULL;
        present_free(r);
    }
    return rc;
}

/* ---- the thread ------------------------------------------------------- */

/* Waits up to ms on the condition; false once stopping. */
static bool nap(relay *r, int64_t ms)
{
    pthread_mutex_lock(&r->mu);
    if (!r->stopping) {
        struct timespec ts = clock_cond_deadline(ms);
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    }
    bool go_on = !r->stopping;
    pthread_mutex_unlock(&r->mu);
    return go_on;
}

/* Publishes what the queue holds. 0, or the failed publish's error. */
static int drain(relay *r)
{
    pthread_mutex_lock(&r->mu);
    if (!r->head && !r->werr && !r->overflow && !r->stopping) {
        struct timespec ts = clock_cond_deadline(IDLE_WAIT_MS);
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    }
    qitem *list = r->head;
    r->head = r->tail = NULL;
    r->qlen = 0;
    bool restart = r->werr || r->overflow;
    pthread_mutex_unlock(&r->mu);
    int rc = 0;
    for (qitem *q = list, *next; q; q = next) {
        next = q->next;
        if (rc == 0 && (rc = publish_revision(r, q)) == 0) {
            atomic_store(&r->published, q->rev);
            r->event_rev = q->rev;
            metrics_gauge_set("citrus_relay_published_revision", NULL, (double)q->rev);
        }
        qitem_free(q);
    }
    if (rc == 0) {
        pthread_mutex_lock(&r->mu);
        /* every revision up to seen_rev with our changes was in list (the
         * queue is in order, and empty): the ones between had none */
        if (!r->head && r->seen_rev > atomic_load(&r->published))
            atomic_store(&r->published, r->seen_rev);
        pthread_mutex_unlock(&r->mu);
    }
    return rc < 0 ? rc : restart ? CITRUS_EUNAVAILABLE : 0;
}

static void *relay_main(void *arg)
{
    relay *r = arg;
    int64_t token = 0;
    bool leading = false;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        bool stop = r->stopping;
        pthread_mutex_unlock(&r->mu);
        if (stop)
            break;
        leading = !r->sess || session_is_leader(r->sess, &token);
        if (!leading) {
            if (r->w) {
                watch_end(r);
                atomic_store(&r->published, 0); /* the next leader's checkpoint decides */
            }
            nap(r, FOLLOWER_WAIT_MS);
            continue;
        }
        if (!r->w && watch_begin(r) < 0) {
            nap(r, RETRY_WAIT_MS);
            continue;
        }
        int rc = drain(r);
        if (clock_mono_ms(r->clock) - r->last_ckpt_ms >= r->every_ms)
            checkpoint_write(r, token);
        if (rc < 0) {
            watch_end(r);
            nap(r, rc == CITRUS_EUNAVAILABLE ? 0 : RETRY_WAIT_MS);
        }
    }
    if (r->w) {
        /* what was delivered is published before the final checkpoint */
        if (!r->abandon)
            drain(r);
        watch_end(r);
    }
    if (!r->abandon && leading && (!r->sess || session_is_leader(r->sess, &token)))
        checkpoint_write(r, token);
    return NULL;
}

int relay_start(const relay_options *o, relay **out)
{
    *out = NULL;
    if (!o || !o->st || !o->b || !o->topic || strlen(o->topic) > BUS_NAME_MAX)
        return CITRUS_EINVAL;
    relay *r = calloc(1, sizeof(*r));
    if (!r)
        return CITRUS_ENOMEM;
    r->st = o->st;
    r->b = o->b;
    snprintf(r->topic, sizeof(r->topic), "%s", o->topic);
    r->sess = o->sess;
    r->clock = o->clock;
    r->every_ms = o->checkpoint_every_ms > 0 ? o->checkpoint_every_ms : 1000;
    r->last_ckpt_ms = clock_mono_ms(r->clock);
    pthread_mutex_init(&r->mu, NULL);
    clock_cond_init(&r->cv);
    metrics_describe("citrus_relay_events_total", METRIC_COUNTER,
                     "Lifecycle events the relay published");
    metrics_describe("citrus_relay_skipped_total", METRIC_COUNTER,
                     "Lifecycle events the relay found on the topic already when it (re)started "
                     "(published before a crash or a failure), so not published again");
    metrics_describe("citrus_relay_published_revision", METRIC_GAUGE,
                     "The catalog revision of the newest shard or tenant change the relay "
                     "published");
    metrics_describe("citrus_relay_gaps_total", METRIC_COUNTER,
                     "Times the catalog's history was compacted past the relay's checkpoint");
    if (pthread_create(&r->th, NULL, relay_main, r) != 0) {
        pthread_cond_destroy(&r->cv);
        pthread_mutex_destroy(&r->mu);
        free(r);
        return CITRUS_ENOMEM;
    }
    *out = r;
    return 0;
}

int64_t relay_published(relay *r)
{
    return atomic_load(&r->published);
}

static void stop(relay *r, bool abandon)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    r->abandon = abandon;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->th, NULL);
    pthread_mutex_lock(&r->mu);
    queue_clear(r);
    pthread_mutex_unlock(&r->mu);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void relay_stop(relay *r)
{
    stop(r, false);
}

void relay_abandon(relay *r)
{
    stop(r, true);
}
