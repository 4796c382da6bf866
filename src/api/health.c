/* api/health.c — /health/live, /health/ready and /metrics. */
#include <stdlib.h>

#include "api/app.h"
#include "api/handlers.h"
#include "citrus/errors.h"
#include "obs/metrics.h"
#include "provision/service.h"

/* The copy checks the catalog every 250 ms; a status older than this is not
 * trusted to say the catalog is healthy. */
#define HEALTH_STATUS_MAX_AGE_MS 1000

int api_health_live(http_req *r, void *ctx)
{
    app *a = ctx;
    return http_reply_json(r, 200, json_pack("{s:s,s:s}", "status", "ok", "node_id", a->node_id));
}

/* "catalog_corrupt": {"count", "keys": [{"key","error"}...]} when shard or
 * tenant records do not decode (docs/security.md, "Catalog integrity"):
 * reported, not a reason to leave the load balancer, since every node reads
 * the same catalog and the other records are served. */
static void add_catalog_corrupt(app *a, json_t *body)
{
    if (!a->shards)
        return;
    reg_corrupt *c = malloc(REG_CORRUPT_MAX * sizeof(*c));
    size_t n = c ? registry_corrupt(a->shards->reg, "", c, REG_CORRUPT_MAX) : 0;
    metrics_describe("citrus_catalog_corrupt_records", METRIC_GAUGE,
                     "Shard and tenant records in the catalog that do not decode");
    metrics_gauge_set("citrus_catalog_corrupt_records", "", (double)n);
    if (n) {
        json_t *keys = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(keys,
                                  json_pack("{s:s,s:s}", "key", c[i].key, "error", c[i].error));
        json_object_set_new(body, "catalog_corrupt",
                            json_pack("{s:I,s:o}", "count", (json_int_t)n, "keys", keys));
    }
    free(c);
}

/* Ready: the catalog has a leader and quorum and is writable, this node is
 * registered, and its catalog copy (if it keeps one) is within the bound. */
int api_health_ready(http_req *r, void *ctx)
{
    app *a = ctx;
    /* what is known corrupt, as the last read noted it (the node rechecks
     * those records every 2 s on a thread of its own): a probe never waits
     * on the catalog, not even in the work pool's queue */
    store_status st;
    int64_t age = 0;
    /* With a copy, the last periodic check answers: a probe never waits on
     * a slow or unreachable catalog (and holds no pool thread doing so). */
    int rc = a->cache ? cache_status(a->cache, &st, &age) : store_status_get(a->st, &st);
    if (rc == 0 && age > HEALTH_STATUS_MAX_AGE_MS)
        rc = CITRUS_EUNAVAILABLE; /* the checks have not been answered lately */
    bool registered = a->sess && session_ready(a->sess);
    bool catalog_ok = rc == 0 && st.writable && st.quorum;
    int64_t lag = a->cache ? cache_staleness_ms(a->cache) : 0;
    int64_t cache_rev = a->cache ? cache_revision(a->cache) : (rc == 0 ? st.revision : 0);
    bool ready = catalog_ok && registered && reader_fresh(a->rd);
    json_t *catalog = json_pack(
        "{s:s,s:s?,s:i,s:i,s:b,s:b,s:I}", "backend", rc == 0 ? st.backend : "unknown", "leader",
        rc == 0 && st.leader[0] ? st.leader : NULL, "members", rc == 0 ? st.members : 0, "healthy",
        rc == 0 ? st.healthy_members : 0, "quorum", rc == 0 && st.quorum, "writable",
        rc == 0 && st.writable, "revision", (json_int_t)(rc == 0 ? st.revision : 0));
    json_t *copy =
        json_pack("{s:I,s:I}", "revision", (json_int_t)cache_rev, "lag_ms", (json_int_t)lag);
    json_t *body =
        json_pack("{s:s,s:s,s:o,s:o,s:b}", "status", ready ? "ready" : "unavailable", "node_id",
                  a->node_id, "catalog", catalog, "cache", copy, "registered", registered);
    json_object_set_new(body, "auth", json_string(a->auth_modes ? a->auth_modes : "none"));
    add_catalog_corrupt(a, body);
    /* The store quota's alarm: reads, deletes and routing go on, so the
     * node stays ready; writes are 507 no_space (docs/security.md). */
    if (rc == 0) {
        json_t *q = api_quota_json(&st);
        json_object_set(body, "alarms", json_object_get(q, "alarms"));
        json_object_set_new(body, "quota", q);
    }
    if (a->router) /* the router keeps routing from its copy while the catalog is down */
        json_object_set_new(body, "routing",
                            json_string(reader_catalog_down(a->rd) ? "cached" : "live"));
    return http_reply_json(r, ready ? 200 : 503, body);
}

int api_metrics(http_req *r, void *ctx)
{
    size_t len;
    char *text = metrics_render(&len);
    if (!text)
        return http_reply_error(r, CITRUS_ENOMEM, NULL, NULL);
    int rc = http_reply_raw(r, 200, "text/plain; version=0.0.4", text, len);
    free(text);
    return rc;
}
