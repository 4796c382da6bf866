/* catalog/cache.c — the informer: snapshot + watch into a sorted array. */
#include "catalog/cache.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "obs/log.h"

struct cache {
    store *st;
    int64_t check_ms;
    const sysclock *clock;
    pthread_t th;
    bool threaded;       /* th runs cache_main */
    pthread_rwlock_t rw; /* entries, n, cap */
    kv_entry *entries;   /* sorted by key */
    size_t n, cap;
    pthread_mutex_t mu; /* everything below */
    pthread_cond_t cv;  /* CLOCK_MONOTONIC: revision moved, or stop */
    int64_t revision;
    bool loaded;
    bool broken; /* the watch failed: reload */
    bool stopping;
    bool check_pending;         /* current at check_t once check_rev is applied */
    int64_t check_t, check_rev; /* (clock_mono_ms) */
    bool confirmed;             /* the copy was known current at confirmed_at */
    int64_t confirmed_at;
    bool have_status;    /* status holds an answer, from status_at */
    store_status status; /* the last status check's answer */
    int64_t status_at;
    store_watch *watch; /* the loader's (cache_run_once) only */
};

/* ---- the sorted array (rw held for writing by callers that modify) ---- */

/* Index of key, or where it would go (*found false). */
static size_t find(const cache *c, const char *key, bool *found)
{
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(c->entries[mid].key, key);
        if (cmp == 0) {
            *found = true;
            return mid;
        }
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static int apply_put(cache *c, const kv_entry *e)
{
    bool found;
    size_t i = find(c, e->key, &found);
    kv_entry copy;
    if (kv_entry_copy(&copy, e, true) < 0)
        return CITRUS_ENOMEM;
    if (found) {
        kv_entry_clear(&c->entries[i]);
        c->entries[i] = copy;
        return 0;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 1024;
        kv_entry *p = realloc(c->entries, cap * sizeof(*p));
        if (!p) {
            kv_entry_clear(&copy);
            return CITRUS_ENOMEM;
        }
        c->entries = p;
        c->cap = cap;
    }
    memmove(&c->entries[i + 1], &c->entries[i], (c->n - i) * sizeof(*c->entries));
    c->entries[i] = copy;
    c->n++;
    return 0;
}

static void apply_delete(cache *c, const char *key)
{
    bool found;
    size_t i = find(c, key, &found);
    if (!found)
        return;
    kv_entry_clear(&c->entries[i]);
    memmove(&c->entries[i], &c->entries[i + 1], (c->n - i - 1) * sizeof(*c->entries));
    c->n--;
}

static void clear_entries(cache *c)
{
    for (size_t i = 0; i < c->n; i++)
        kv_entry_clear(&c->entries[i]);
    free(c->entries);
    c->entries = NULL;
    c->n = c->cap = 0;
}

/* ---- revision bookkeeping (mu held) ---- */

static void advance(cache *c, int64_t rev)
{
    if (rev > c->revision)
        c->revision = rev;
    if (c->check_pending && c->revision >= c->check_rev) {
        c->confirmed = true;
        c->confirmed_at = c->check_t;
        c->check_pending = false;
    }
    pthread_cond_broadcast(&c->cv);
}

static void on_events(void *ctx, const kv_event *ev, size_t n, int err)
{
    cache *c = ctx;
    if (err) {
        pthread_mutex_lock(&c->mu);
        c->broken = true;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
        return;
    }
    int rc = 0;
    pthread_rwlock_wrlock(&c->rw);
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (ev[i].type == KV_EVENT_PUT)
            rc = apply_put(c, &ev[i].kv);
        else
            apply_delete(c, ev[i].kv.key);
    }
    pthread_rwlock_unlock(&c->rw);
    pthread_mutex_lock(&c->mu);
    if (rc < 0)
        c->broken = true; /* out of memory: the copy is wrong, reload it */
    else if (n)
        advance(c, ev[n - 1].kv.mod_revision);
    pthread_mutex_unlock(&c->mu);
}

/* ---- the loader thread ---- */

/* Loads a snapshot and watches from right after it. */
static int load(cache *c)
{
    store_watch_close(c->st, c->watch);
    c->watch = NULL;
    kv_snapshot snap;
    int rc = store_snapshot(c->st, &snap);
    if (rc < 0)
        return rc;
    /* the count for the log line: once the watch below is open, its events
     * change c->n under the write lock, which this thread no longer holds */
    size_t keys = snap.count;
    pthread_rwlock_wrlock(&c->rw);
    clear_entries(c);
    c->entries = snap.items; /* sorted by key, owned now */
    c->n = c->cap = snap.count;
    snap.items = NULL;
    snap.count = 0;
    pthread_rwlock_unlock(&c->rw);
    int64_t rev = snap.revision;
    kv_snapshot_free(&snap);
    pthread_mutex_lock(&c->mu);
    c->revision = rev;
    c->broken = false;
    c->loaded = true;
    advance(c, rev);
    pthread_mutex_unlock(&c->mu);
    int64_t compact;
    rc = store_watch_open(c->st, "", rev + 1, on_events, c, &c->watch, &compact);
    if (rc < 0) {
        pthread_mutex_lock(&c->mu);
        c->broken = true;
        pthread_mutex_unlock(&c->mu);
    }
    log_info("cache", "catalog copy loaded",
             json_pack("{s:I,s:I}", "revision", (json_int_t)rev, "keys", (json_int_t)keys));
    return rc;
}

/* Asks the store for its revision: once applied, the copy was current now. */
static void check(cache *c)
{
    int64_t t = clock_mono_ms(c->clock);
    store_status st;
    int rc = store_status_get(c->st, &st);
    pthread_mutex_lock(&c->mu);
    if (rc == 0 || rc == CITRUS_EUNAVAILABLE) {
        /* an unavailable store still says what it knows (members, leader) */
        c->status = st;
        c->status.quorum = rc == 0 && st.quorum;
        c->status.writable = rc == 0 && st.writable;
        c->status_at = clock_mono_ms(c->clock);
        c->have_status = true;
    }
    pthread_mutex_unlock(&c->mu);
    /* Only a store with quorum can say what its current revision is: while
     * it has none, its last known revision proves nothing about freshness. */
    if (rc < 0 || !st.quorum)
        return;
    pthread_mutex_lock(&c->mu);
    if (!c->check_pending) {
        c->check_pending = true;
        c->check_t = t;
        c->check_rev = st.revision;
        advance(c, c->revision);
    }
    pthread_mutex_unlock(&c->mu);
}

void cache_run_once(cache *c)
{
    pthread_mutex_lock(&c->mu);
    bool reload = !c->loaded || c->broken;
    pthread_mutex_unlock(&c->mu);
    if (reload && load(c) < 0)
        log_warn("cache", "cannot load the catalog copy; retrying", NULL);
    check(c);
}

/* Rounds every check interval, or at once when the watch breaks. The wait
 * is on the real monotonic clock: it paces the thread, it decides nothing. */
static void *cache_main(void *arg)
{
    cache *c = arg;
    pthread_mutex_lock(&c->mu);
    while (!c->stopping) {
        pthread_mutex_unlock(&c->mu);
        cache_run_once(c);
        pthread_mutex_lock(&c->mu);
        struct timespec ts = clock_cond_deadline(c->check_ms);
        while (!c->stopping && !c->broken && pthread_cond_timedwait(&c->cv, &c->mu, &ts) == 0) {
        }
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

int cache_new(const cache_options *o, cache **out)
{
    cache *c = calloc(1, sizeof(*c));
    if (!c)
        return CITRUS_ENOMEM;
    c->st = o->st;
    c->check_ms = o->check_interval_ms > 0 ? o->check_interval_ms : 250;
    c->clock = o->clock;
    if (clock_cond_init(&c->cv) != 0) {
        free(c);
        return CITRUS_ENOMEM;
    }
    pthread_rwlock_init(&c->rw, NULL);
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return 0;
}

int cache_start(const cache_options *o, cache **out)
{
    cache *c;
    int rc = cache_new(o, &c);
    if (rc < 0)
        return rc;
    if (pthread_create(&c->th, NULL, cache_main, c) != 0) {
        cache_stop(c);
        return CITRUS_ENOMEM;
    }
    c->threaded = true;
    *out = c;
    return 0;
}

void cache_stop(cache *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (c->threaded)
        pthread_join(c->th, NULL);
    store_watch_close(c->st, c->watch);
    clear_entries(c);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    pthread_rwlock_destroy(&c->rw);
    free(c);
}

int64_t cache_revision(cache *c)
{
    pthread_mutex_lock(&c->mu);
    int64_t rev = c->revision;
    pthread_mutex_unlock(&c->mu);
    return rev;
}

int64_t cache_staleness_ms(cache *c)
{
    pthread_mutex_lock(&c->mu);
    bool confirmed = c->confirmed;
    int64_t at = c->confirmed_at;
    pthread_mutex_unlock(&c->mu);
    return confirmed ? clock_mono_ms(c->clock) - at : -1;
}

int cache_wait(cache *c, int64_t rev, int64_t timeout_ms)
{
    struct timespec ts = clock_cond_deadline(timeout_ms);
    pthread_mutex_lock(&c->mu);
    while (c->revision < rev && !c->stopping && pthread_cond_timedwait(&c->cv, &c->mu, &ts) == 0) {
    }
    bool ok = c->revision >= rev;
    pthread_mutex_unlock(&c->mu);
    return ok ? 0 : CITRUS_ETIMEOUT;
}

/* Copies the matching items; rw held for reading. */
static int range_locked(cache *c, const kv_range_req *req, kv_range_res *out)
{
    bool found;
    if (!req->prefix) {
        size_t i = find(c, req->key, &found);
        if (!found || req->count_only) {
            out->count = found;
            return 0;
        }
        out->items = calloc(1, sizeof(*out->items));
        if (!out->items || kv_entry_copy(&out->items[0], &c->entries[i], !req->keys_only) < 0)
            return CITRUS_ENOMEM;
        out->count = 1;
        return 0;
    }
    size_t plen = strlen(req->key);
    size_t i =
        find(c, req->after && strcmp(req->after, req->key) >= 0 ? req->after : req->key, &found);
    if (found && req->after && strcmp(c->entries[i].key, req->after) == 0)
        i++;
    if (req->count_only) { /* the keys in [i, first key past the prefix) */
        char *hi = malloc(plen + 1);
        if (!hi)
            return CITRUS_ENOMEM;
        size_t end = store_prefix_end(req->key, hi) ? find(c, hi, &found) : c->n;
        free(hi);
        out->count = end > i ? end - i : 0;
        return 0;
    }
    size_t cap = 0;
    for (; i < c->n && strncmp(c->entries[i].key, req->key, plen) == 0; i++) {
        if (req->limit && out->count == req->limit) {
            out->more = true;
            break;
        }
        if (out->count == cap) {
            cap = cap ? cap * 2 : 16;
            kv_entry *p = realloc(out->items, cap * sizeof(*p));
            if (!p)
                return CITRUS_ENOMEM;
            out->items = p;
        }
        if (kv_entry_copy(&out->items[out->count], &c->entries[i], !req->keys_only) < 0)
            return CITRUS_ENOMEM;
        out->count++;
    }
    return 0;
}

int cache_range(cache *c, const kv_range_req *req, kv_range_res *out, int64_t *staleness_ms)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&c->mu);
    bool loaded = c->loaded;
    pthread_mutex_unlock(&c->mu);
    if (!loaded)
        return CITRUS_EUNAVAILABLE;
    pthread_rwlock_rdlock(&c->rw);
    /* the revision read under rw matches the entries: on_events applies
     * entries before it advances the revision, both under rw/mu order */
    int64_t rev = cache_revision(c);
    int rc = range_locked(c, req, out);
    pthread_rwlock_unlock(&c->rw);
    if (rc < 0) {
        kv_range_res_free(out);
        return rc;
    }
    out->revision = rev;
    if (staleness_ms)
        *staleness_ms = cache_staleness_ms(c);
    return 0;
}

bool cache_catalog_up(cache *c, int64_t max_age_ms)
{
    pthread_mutex_lock(&c->mu);
    bool up = c->have_status && clock_mono_ms(c->clock) - c->status_at <= max_age_ms &&
              c->status.writable && c->status.quorum;
    pthread_mutex_unlock(&c->mu);
    return up;
}

int cache_status(cache *c, store_status *out, int64_t *age_ms)
{
    pthread_mutex_lock(&c->mu);
    bool have = c->have_status;
    int64_t at = c->status_at;
    *out = c->status;
    pthread_mutex_unlock(&c->mu);
    if (!have)
        return CITRUS_EUNAVAILABLE;
    *age_ms = clock_mono_ms(c->clock) - at;
    return 0;
}
