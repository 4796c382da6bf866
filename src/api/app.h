/* api/app.h — what request handlers share: the catalog store and limits. */
#ifndef CITRUS_API_APP_H
#define CITRUS_API_APP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog/cache.h"
#include "catalog/store.h"
#include "controller/session.h"
#include "http/server.h"

typedef struct app {
    store *st;              /* borrowed */
    size_t max_value_bytes; /* values over this are refused with value_too_large */
    const char *node_id;
    int64_t max_watch_timeout_ms; /* cap on a long poll's ?timeout */
    session *sess;                /* this node's session; NULL until started */
    cache *cache;                 /* informer for bounded reads; NULL: read the store */
    int64_t max_staleness_ms;     /* bound of a bounded read */
    /* highest revision this node acknowledged a write at or answered a
     * store read at: its copy answers only once it holds that revision */
    _Atomic int64_t acked_rev;
    struct shard_service *shards; /* the shard manager; NULL when not running */
    struct router *router;        /* the data plane; NULL when not running */
} app;

/* A registry reader (reg_read_fn): the node's copy when it is within the
 * bound and holds this node's writes, else the store. */
int app_catalog_read(void *app_ctx, const kv_range_req *req, kv_range_res *out);
/* A registry revision function (reg_revision_fn): the revision
 * app_catalog_read would now answer at, when it would answer from memory
 * (the node's copy; the embedded store's newest commit), else -1. Notes a
 * catalog outage like app_catalog_read. */
int64_t app_catalog_revision(void *app_ctx);
/* When the catalog is down (its latest check failed or found no quorum),
 * app_catalog_read answers from the copy, however old, and notes it for
 * the current thread: reset before a request's reads, ask after. */
void app_catalog_cached_reset(void);
/* Whether this node now routes from its copy alone (cluster mode only). */
bool app_catalog_down(app *a);
bool app_catalog_was_cached(void);

/* Whether catalog calls cross the network (the etcd backend): handlers
 * that make them blocking move to the work pool (http_offload). */
static inline bool app_remote(const app *a)
{
    return a->cache != NULL;
}

/* Whether app_read at this level may wait: a strong read of a remote
 * catalog, or a bounded read before this node's copy holds its own
 * acknowledged writes. */
bool app_read_blocks(app *a, const char *level);

/* For a handler whose catalog calls block: the first call hands the
 * request to the work pool (http_offload) and returns; the second, on the
 * pool, goes on. */
#define APP_OFFLOAD(r, fn, ctx)                                                                    \
    do {                                                                                           \
        if (!http_offloaded(r))                                                                    \
            return http_offload(r, fn, ctx);                                                       \
    } while (0)

/* Records that this node acknowledged a write at rev (read-your-writes). */
void app_note_write(app *a, int64_t rev);
/* app_note_write for the registry's commit hook (ctx: the app). */
void app_note_commit(void *ctx, int64_t rev);

/* Reads for a GET at consistency level ("strong", "bounded" or "any"):
 * strong, or any level without a cache, reads the store (linearizable);
 * bounded reads the cache once it holds this node's own acknowledged
 * writes (waiting up to the bound for them), and only while its staleness
 * is within the bound (else 503 stale); any reads the cache at once,
 * whatever its staleness (the headers say "bounded" when it happens to be
 * within the bound with this node's writes, else "any"). Adds the
 * X-Citrus-Revision, -Consistency and -Staleness-Ms headers. On error it has
 * replied and returns the error. */
int app_read(app *a, http_req *r, const char *level, const kv_range_req *req, kv_range_res *out);

/* The route table served by citrus server / citrus dev. */
extern const http_route api_routes[];
extern const size_t api_nroutes;
/* The router's (router.listen). */
extern const http_route router_routes[];
extern const size_t router_nroutes;

#endif
