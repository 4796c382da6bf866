/* lib/feed.c — the routing copy: loading it and the watch thread (see
 * feed.h). */
#include "lib/feed.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/deadline.h"
#include "wire/catalog_keys.h"
#include "wire/kvjson.h"

#define WATCH_PREFIX "citrus/"
#define POLL_SECONDS 20
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000

static const char *const prefixes[] = {REG_SHARDS, "citrus/ring/", REG_TENANTS};

struct feed {
    conns *conns; /* kept */
    long request_ms;
    feed_publish_fn *publish;
    void *ctx;

    /* build_mu serialises loads (the watch thread's and feed_load's
     * callers') over the builder, next_rev and loaded. */
    pthread_mutex_t build_mu;
    snap_builder builder;
    int64_t next_rev; /* the revision the watch continues from */
    bool loaded;      /* false: the builder is not a whole copy (load again) */

    /* The watch thread reads stop without a lock (and so does its HTTP
     * client, as its abort flag); mu and cv only wake its pauses. */
    atomic_bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* stop */
    client *watch;     /* the watch thread's HTTP client; guarded by mu */
    pthread_t thread;
    bool watching; /* the owner's: between feed_start and feed_stop */
};

feed *feed_new(conns *cs, long request_ms, feed_publish_fn *publish, void *ctx)
{
    feed *f = malloc(sizeof(*f));
    if (!f)
        return NULL;
    *f = (feed){.conns = cs, .request_ms = request_ms, .publish = publish, .ctx = ctx};
    pthread_mutex_init(&f->build_mu, NULL);
    snap_builder_init(&f->builder);
    atomic_init(&f->stop, false);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    return f;
}

void feed_free(feed *f)
{
    if (!f)
        return;
    feed_stop(f);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    snap_builder_clear(&f->builder);
    pthread_mutex_destroy(&f->build_mu);
    free(f);
}

bool feed_watching(const feed *f)
{
    return f->watching;
}

/* Applies a listed entry or a change; an undecodable pin is skipped (it
 * routes by the ring, as on the server). */
static int apply(snap_builder *b, const kv_entry *e, bool deleted)
{
    int rc = snap_builder_apply(b, e->key, e->value, e->value_len, e->mod_revision, deleted);
    return rc == CITRUS_ECORRUPT ? 0 : rc;
}

/* Lists one prefix into the builder, page by page; *rev becomes the lowest
 * revision a page was read at. */
static int list_prefix(feed *f, const char *prefix, int64_t *rev, citrus_error *err)
{
    char *after = NULL;
    int rc = 0;
    for (bool more = true; rc == 0 && more;) {
        char path[1400];
        errdetail why;
        snprintf(path, sizeof(path), "/v1/kv/%s?prefix=true%s%s", prefix, after ? "&after=" : "",
                 after ? after : "");
        client_response resp;
        rc = conns_catalog(f->conns, "GET", path, NULL, &resp, err);
        json_t *j = rc == 0 ? conns_answer_json(&resp, err) : NULL;
        client_response_free(&resp);
        if (rc == 0 && !j)
            rc = err->code;
        kv_range_res page = {0};
        if (rc == 0 && (rc = kvjson_range_decode(j, true, &page, &why)) < 0)
            rc = conns_fail(err, rc == CITRUS_ENOMEM ? rc : CITRUS_ECORRUPT, "listing %s: %s",
                            prefix, why.message);
        json_decref(j);
        for (size_t i = 0; rc == 0 && i < page.count; i++)
            if ((rc = apply(&f->builder, &page.items[i], false)) < 0)
                conns_fail(err, rc, "out of memory");
        if (rc == 0 && page.revision < *rev)
            *rev = page.revision;
        more = rc == 0 && page.more && page.count > 0;
        free(after);
        after = NULL;
        if (more && !(after = client_escape_query(page.items[page.count - 1].key)))
            rc = conns_fail(err, CITRUS_ENOMEM, "out of memory");
        kv_range_res_free(&page);
    }
    free(after);
    return rc;
}

int feed_load(feed *f, citrus_error *err)
{
    citrus_error local;
    if (!err)
        err = &local;
    pthread_mutex_lock(&f->build_mu);
    snap_builder_reset(&f->builder);
    f->loaded = false;
    int64_t rev = INT64_MAX;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        rc = list_prefix(f, prefixes[i], &rev, err);
    snap *s = rc == 0 ? snap_builder_publish(&f->builder, rev) : NULL;
    if (rc == 0 && !s)
        rc = conns_fail(err, CITRUS_ENOMEM, "out of memory");
    if (rc == 0) {
        f->next_rev = rev + 1;
        f->loaded = true;
        f->publish(f->ctx, s);
    }
    pthread_mutex_unlock(&f->build_mu);
    return rc;
}

/* Applies a long-poll answer read from `from`; ignored when a load came in
 * between (its listing is newer). One that does not decode loads anew. */
static int apply_answer(feed *f, int64_t from, const json_t *j)
{
    kvjson_watch w;
    int rc = kvjson_watch_decode(j, &w, NULL);
    pthread_mutex_lock(&f->build_mu);
    if (rc < 0) {
        f->loaded = false;
    } else if (f->loaded && f->next_rev == from) {
        for (size_t i = 0; rc == 0 && i < w.count; i++)
            rc = apply(&f->builder, &w.events[i].kv, w.events[i].type == KV_EVENT_DELETE);
        snap *s = NULL;
        if (rc == 0 && w.revision >= from - 1 &&
            !(s = snap_builder_publish(&f->builder, w.revision)))
            rc = CITRUS_ENOMEM;
        if (s) {
            f->next_rev = w.revision + 1;
            f->publish(f->ctx, s);
        }
        if (rc < 0)
            f->loaded = false; /* the builder may be half-applied */
    }
    pthread_mutex_unlock(&f->build_mu);
    kvjson_watch_free(&w);
    return rc;
}

/* Sleeps ms unless stopped first. */
static void pause_ms(feed *f, long ms)
{
    struct timespec ts = deadline_in_ms(ms);
    pthread_mutex_lock(&f->mu);
    while (!atomic_load(&f->stop) && pthread_cond_timedwait(&f->cv, &f->mu, &ts) == 0)
        ;
    pthread_mutex_unlock(&f->mu);
}

/* One long poll through w; whether it went well. */
static bool poll_once(feed *f, client *w, bool *fail_over)
{
    pthread_mutex_lock(&f->build_mu);
    int64_t from = f->next_rev;
    pthread_mutex_unlock(&f->build_mu);
    char path[128];
    snprintf(path, sizeof(path), "/v1/watch/%s?from_revision=%" PRId64 "&timeout=%ds", WATCH_PREFIX,
             from, POLL_SECONDS);
    client_response resp = {0};
    /* The token as of now: a refreshed one reaches the watch too. */
    int rc = conns_authorize(f->conns, w, NULL);
    if (rc == 0)
        rc = client_request(w, "GET", path, NULL, 0, NULL, &resp);
    *fail_over = conns_should_fail_over(rc, &resp);
    bool ok = false;
    if (rc == 0 && resp.status == 200) {
        json_t *j = json_loadb(resp.body, resp.body_len, 0, NULL);
        ok = apply_answer(f, from, j) == 0;
        json_decref(j);
    } else if (rc == 0 && resp.status != 503) {
        /* 410 compacted (or anything unexpected): load anew. */
        pthread_mutex_lock(&f->build_mu);
        f->loaded = false;
        pthread_mutex_unlock(&f->build_mu);
    }
    client_response_free(&resp);
    return ok;
}

/* Publishes the watch's client for feed_stop to interrupt (NULL before
 * freeing it). */
static void set_watch(feed *f, client *w)
{
    pthread_mutex_lock(&f->mu);
    f->watch = w;
    pthread_mutex_unlock(&f->mu);
}

static void *run(void *arg)
{
    feed *f = arg;
    client *w = NULL;
    size_t wi = SIZE_MAX, fails = 0;
    long backoff = BACKOFF_MIN_MS;
    while (!atomic_load(&f->stop)) {
        pthread_mutex_lock(&f->build_mu);
        bool loaded = f->loaded;
        pthread_mutex_unlock(&f->build_mu);
        size_t i = conns_preferred(f->conns);
        if (i != wi) {
            set_watch(f, NULL);
            client_free(w);
            w = conns_client_new(f->conns, conns_endpoint(f->conns, i));
            wi = w ? i : SIZE_MAX;
            set_watch(f, w);
            if (w) {
                client_set_abort_flag(w, &f->stop);
                client_set_timeout_ms(w, f->request_ms + POLL_SECONDS * 1000L);
            }
        }
        bool ok = false, fail_over = false;
        if (!loaded)
            ok = feed_load(f, NULL) == 0;
        else if (w)
            ok = poll_once(f, w, &fail_over);
        if (atomic_load(&f->stop))
            break;
        if (ok) {
            fails = 0;
            backoff = BACKOFF_MIN_MS;
            continue;
        }
        if (fail_over && conns_endpoint_count(f->conns) > 1)
            conns_set_preferred(f->conns, (i + 1) % conns_endpoint_count(f->conns));
        /* Straight to the next endpoint; wait once every one was tried. */
        if (!fail_over || ++fails >= conns_endpoint_count(f->conns)) {
            fails = 0;
            pause_ms(f, backoff);
            backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
        }
    }
    set_watch(f, NULL);
    client_free(w);
    return NULL;
}

int feed_start(feed *f)
{
    atomic_store(&f->stop, false);
    if (pthread_create(&f->thread, NULL, run, f) != 0)
        return CITRUS_ENOMEM;
    f->watching = true;
    return 0;
}

void feed_stop(feed *f)
{
    if (!f->watching)
        return;
    pthread_mutex_lock(&f->mu);
    atomic_store(&f->stop, true);
    if (f->watch) /* the long poll ends now, not at libcurl's next progress call */
        client_interrupt(f->watch);
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->thread, NULL);
    f->watching = false;
}
