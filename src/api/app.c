/* api/app.c — what every read and write handler shares: the choice of read
 * path by consistency level, and read-your-writes bookkeeping. */
#include "api/app.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "citrus/errors.h"

void app_note_write(app *a, int64_t rev)
{
    int64_t cur = atomic_load(&a->acked_rev);
    while (rev > cur && !atomic_compare_exchange_weak(&a->acked_rev, &cur, rev)) {
    }
}

void app_note_commit(void *ctx, int64_t rev)
{
    app_note_write(ctx, rev);
}

static void add_i64_header(http_req *r, const char *name, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    http_add_header(r, name, buf);
}

bool app_read_blocks(app *a, const char *level)
{
    if (!a->cache)
        return false;
    if (strcmp(level, "strong") == 0)
        return true;
    return strcmp(level, "bounded") == 0 && cache_revision(a->cache) < atomic_load(&a->acked_rev);
}

/* Set by app_catalog_read when it answered from a copy it could not
 * confirm (the catalog is down); per thread, so per request. */
static _Thread_local bool served_cached;

void app_catalog_cached_reset(void)
{
    served_cached = false;
}

bool app_catalog_was_cached(void)
{
    return served_cached;
}

/* The catalog cannot answer now: its latest check failed, found no quorum,
 * or is over a second old. */
static bool catalog_down(app *a);

bool app_catalog_down(app *a)
{
    return a->cache && catalog_down(a);
}

static bool catalog_down(app *a)
{
    return !cache_catalog_up(a->cache, 1000);
}

/* Whether routing reads may come from the node's copy, stale ms behind
 * (it holds this node's writes): within the bound, or whatever its age
 * during a catalog outage (seed 001: keep routing rather than wait on
 * etcd, and say so; the copy only moves forward, so it is never older
 * than a change this node has already seen). */
static bool copy_serves(app *a, int64_t stale)
{
    if (catalog_down(a)) {
        served_cached = true;
        return true;
    }
    return stale >= 0 && stale <= a->max_staleness_ms;
}

int app_catalog_read(void *ctx, const kv_range_req *req, kv_range_res *out)
{
    app *a = ctx;
    if (a->cache && cache_revision(a->cache) >= atomic_load(&a->acked_rev)) {
        int64_t stale = -1;
        int rc = cache_range(a->cache, req, out, &stale);
        if (rc == 0 && copy_serves(a, stale))
            return 0;
        if (rc == 0)
            kv_range_res_free(out);
    }
    int rc = store_range(a->st, req, out);
    /* Reads stay monotonic: what this node has answered at, its copy must
     * reach before it answers again (a request that read the store at R,
     * then the copy still at R-1, would see a shard without its ring). */
    if (rc == 0 && a->cache)
        app_note_write(a, out->revision);
    return rc;
}

int64_t app_catalog_revision(void *ctx)
{
    app *a = ctx;
    if (!a->cache)
        return store_revision(a->st);
    int64_t rev = cache_revision(a->cache);
    if (rev < atomic_load(&a->acked_rev))
        return -1;
    return copy_serves(a, cache_staleness_ms(a->cache)) ? rev : -1;
}

int app_read(app *a, http_req *r, const char *level, const kv_range_req *req, kv_range_res *out)
{
    int rc;
    if (!a->cache || strcmp(level, "strong") == 0) {
        rc = store_range(a->st, req, out);
        if (rc < 0)
            return http_reply_error(r, rc, NULL, NULL), rc;
        if (a->cache) /* later reads on this node never answer older */
            app_note_write(a, out->revision);
        add_i64_header(r, "X-Citrus-Revision", out->revision);
        http_add_header(r, "X-Citrus-Consistency", "strong");
        http_add_header(r, "X-Citrus-Staleness-Ms", "0");
        return 0;
    }
    /* A bounded read waits (up to the bound) for this node's own writes;
     * "any" serves what the copy has at once. */
    int64_t acked = atomic_load(&a->acked_rev);
    bool own_writes =
        cache_revision(a->cache) >= acked ||
        (strcmp(level, "any") != 0 && cache_wait(a->cache, acked, a->max_staleness_ms) == 0);
    int64_t stale = -1;
    rc = cache_range(a->cache, req, out, &stale);
    if (rc == CITRUS_EUNAVAILABLE)
        return http_reply_error(r, CITRUS_ESTALE, "the catalog copy is not loaded yet", NULL),
               CITRUS_ESTALE;
    if (rc < 0)
        return http_reply_error(r, rc, NULL, NULL), rc;
    bool within = own_writes && stale >= 0 && stale <= a->max_staleness_ms;
    if (!within && strcmp(level, "any") != 0) {
        kv_range_res_free(out);
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "this node's copy may be %" PRId64 " ms old, over the bound of %" PRId64
                 " ms; use ?consistency=strong, or ?consistency=any to read it anyway",
                 stale, a->max_staleness_ms);
        return http_reply_error(r, CITRUS_ESTALE, msg,
                                json_pack("{s:I}", "staleness_ms", (json_int_t)stale)),
               CITRUS_ESTALE;
    }
    add_i64_header(r, "X-Citrus-Revision", out->revision);
    http_add_header(r, "X-Citrus-Consistency", within ? "bounded" : "any");
    add_i64_header(r, "X-Citrus-Staleness-Ms", stale);
    return 0;
}
