/* lib/feed.c — the routing copy: loading it and the watch thread (see
 * feed.h). */
#include "lib/feed.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wire/base64.h"
#include "wire/catalog_keys.h"

#define WATCH_PREFIX "citrus/"
#define POLL_SECONDS 20
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000

static const char *const prefixes[] = {REG_SHARDS, "citrus/ring/", REG_TENANTS};

/* Applies one listed entry or event (value in base64). */
static int apply_json(snap_builder *b, json_t *e, bool deleted)
{
    const char *key = json_string_value(json_object_get(e, "key"));
    json_t *v = json_object_get(e, "value");
    int64_t mod = json_integer_value(json_object_get(e, "mod_revision"));
    if (!key || (!deleted && !json_is_string(v)))
        return CITRUS_ECORRUPT;
    size_t len = 0;
    unsigned char *bytes =
        deleted ? NULL : base64_decode(json_string_value(v), json_string_length(v), &len);
    if (!deleted && !bytes)
        return CITRUS_ECORRUPT;
    int rc = snap_builder_apply(b, key, bytes, len, mod, deleted);
    free(bytes);
    return rc == CITRUS_ECORRUPT ? 0 : rc;
}

/* Lists one prefix into the builder, page by page; *rev becomes the lowest
 * revision a page was read at. */
static int list_prefix(citrus_client *c, const char *prefix, int64_t *rev, citrus_error *err)
{
    char *after = NULL;
    int rc = 0;
    for (bool more = true; rc == 0 && more;) {
        char path[1400];
        snprintf(path, sizeof(path), "/v1/kv/%s?prefix=true%s%s", prefix, after ? "&after=" : "",
                 after ? after : "");
        client_response resp;
        rc = conns_catalog(c->conns, "GET", path, NULL, &resp, err);
        json_t *j = rc == 0 ? conns_answer_json(&resp, err) : NULL;
        client_response_free(&resp);
        if (rc == 0 && !j)
            rc = err->code;
        json_t *items = json_object_get(j, "items");
        if (rc == 0 && !json_is_array(items))
            rc = conns_fail(err, CITRUS_ECORRUPT, "listing %s: no items", prefix);
        for (size_t i = 0; rc == 0 && i < json_array_size(items); i++)
            if ((rc = apply_json(&c->builder, json_array_get(items, i), false)) < 0)
                conns_fail(err, rc, "listing %s: a bad entry", prefix);
        int64_t r = json_integer_value(json_object_get(j, "revision"));
        if (rc == 0 && r < *rev)
            *rev = r;
        more = json_is_true(json_object_get(j, "more")) && json_array_size(items) > 0;
        free(after);
        after = NULL;
        if (rc == 0 && more) {
            const char *last = json_string_value(
                json_object_get(json_array_get(items, json_array_size(items) - 1), "key"));
            if (!last || !(after = client_escape_query(last)))
                rc = conns_fail(err, CITRUS_ENOMEM, "out of memory");
        }
        json_decref(j);
    }
    free(after);
    return rc;
}

int feed_load(citrus_client *c, citrus_error *err)
{
    citrus_error local;
    if (!err)
        err = &local;
    pthread_mutex_lock(&c->build_mu);
    snap_builder_reset(&c->builder);
    c->loaded = false;
    int64_t rev = INT64_MAX;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        rc = list_prefix(c, prefixes[i], &rev, err);
    snap *s = rc == 0 ? snap_builder_publish(&c->builder, rev) : NULL;
    if (rc == 0 && !s)
        rc = conns_fail(err, CITRUS_ENOMEM, "out of memory");
    if (rc == 0) {
        c->next_rev = rev + 1;
        c->loaded = true;
        handle_publish(c, s);
    }
    pthread_mutex_unlock(&c->build_mu);
    return rc;
}

/* Applies a long-poll answer read from `from`; ignored when a load came in
 * between (its listing is newer). */
static int apply_answer(citrus_client *c, int64_t from, json_t *j)
{
    json_t *events = json_object_get(j, "events");
    json_t *rev = json_object_get(j, "revision");
    if (!json_is_array(events) || !json_is_integer(rev))
        return CITRUS_ECORRUPT;
    pthread_mutex_lock(&c->build_mu);
    int rc = 0;
    if (c->loaded && c->next_rev == from) {
        for (size_t i = 0; rc == 0 && i < json_array_size(events); i++) {
            json_t *e = json_array_get(events, i);
            const char *type = json_string_value(json_object_get(e, "type"));
            rc = apply_json(&c->builder, e, type && strcmp(type, "delete") == 0);
        }
        int64_t r = json_integer_value(rev);
        snap *s = NULL;
        if (rc == 0 && r >= from - 1 && !(s = snap_builder_publish(&c->builder, r)))
            rc = CITRUS_ENOMEM;
        if (s) {
            c->next_rev = r + 1;
            handle_publish(c, s);
        }
        if (rc < 0)
            c->loaded = false; /* the builder may be half-applied */
    }
    pthread_mutex_unlock(&c->build_mu);
    return rc;
}

/* Sleeps ms unless stopped first. */
static void pause_ms(citrus_client *c, long ms)
{
    struct timespec ts = handle_deadline(ms);
    pthread_mutex_lock(&c->mu);
    while (!c->stop && pthread_cond_timedwait(&c->cv, &c->mu, &ts) == 0)
        ;
    pthread_mutex_unlock(&c->mu);
}

/* One long poll through w; whether it went well. */
static bool poll_once(citrus_client *c, client *w, bool *fail_over)
{
    pthread_mutex_lock(&c->build_mu);
    int64_t from = c->next_rev;
    pthread_mutex_unlock(&c->build_mu);
    char path[128];
    snprintf(path, sizeof(path), "/v1/watch/%s?from_revision=%" PRId64 "&timeout=%ds", WATCH_PREFIX,
             from, POLL_SECONDS);
    client_response resp;
    int rc = client_request(w, "GET", path, NULL, 0, NULL, &resp);
    *fail_over = conns_should_fail_over(rc, &resp);
    bool ok = false;
    if (rc == 0 && resp.status == 200) {
        json_t *j = json_loadb(resp.body, resp.body_len, 0, NULL);
        ok = apply_answer(c, from, j) == 0;
        json_decref(j);
    } else if (rc == 0 && resp.status != 503) {
        /* 410 compacted (or anything unexpected): load anew. */
        pthread_mutex_lock(&c->build_mu);
        c->loaded = false;
        pthread_mutex_unlock(&c->build_mu);
    }
    client_response_free(&resp);
    return ok;
}

/* Publishes the watch's client for feed_stop to interrupt (NULL before
 * freeing it). */
static void set_watch(citrus_client *c, client *w)
{
    pthread_mutex_lock(&c->mu);
    c->watch = w;
    pthread_mutex_unlock(&c->mu);
}

static void *run(void *arg)
{
    citrus_client *c = arg;
    client *w = NULL;
    size_t wi = SIZE_MAX, fails = 0;
    long backoff = BACKOFF_MIN_MS;
    while (!c->stop) {
        pthread_mutex_lock(&c->build_mu);
        bool loaded = c->loaded;
        pthread_mutex_unlock(&c->build_mu);
        size_t i = conns_preferred(c->conns);
        if (i != wi) {
            set_watch(c, NULL);
            client_free(w);
            w = conns_client_new(c->conns, conns_endpoint(c->conns, i));
            wi = w ? i : SIZE_MAX;
            set_watch(c, w);
            if (w) {
                client_set_abort_flag(w, &c->stop);
                client_set_timeout_ms(w, c->request_ms + POLL_SECONDS * 1000L);
            }
        }
        bool ok = false, fail_over = false;
        if (!loaded)
            ok = feed_load(c, NULL) == 0;
        else if (w)
            ok = poll_once(c, w, &fail_over);
        if (c->stop)
            break;
        if (ok) {
            fails = 0;
            backoff = BACKOFF_MIN_MS;
            continue;
        }
        if (fail_over && conns_endpoint_count(c->conns) > 1)
            conns_set_preferred(c->conns, (i + 1) % conns_endpoint_count(c->conns));
        /* Straight to the next endpoint; wait once every one was tried. */
        if (!fail_over || ++fails >= conns_endpoint_count(c->conns)) {
            fails = 0;
            pause_ms(c, backoff);
            backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
        }
    }
    set_watch(c, NULL);
    client_free(w);
    return NULL;
}

int feed_start(citrus_client *c)
{
    c->stop = 0;
    if (pthread_create(&c->thread, NULL, run, c) != 0)
        return CITRUS_ENOMEM;
    c->watching = true;
    return 0;
}

void feed_stop(citrus_client *c)
{
    if (!c->watching)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    if (c->watch) /* the long poll ends now, not at libcurl's next progress call */
        client_interrupt(c->watch);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    c->watching = false;
}
