/* api/health.c — /health/live, /health/ready and /metrics. */
#include <stdlib.h>

#include "api/app.h"
#include "api/handlers.h"
#include "citrus/errors.h"
#include "obs/metrics.h"

int api_health_live(http_req *r, void *ctx)
{
    app *a = ctx;
    return http_reply_json(r, 200, json_pack("{s:s,s:s}", "status", "ok", "node_id", a->node_id));
}

int api_health_ready(http_req *r, void *ctx)
{
    app *a = ctx;
    store_status st;
    int rc = store_status_get(a->st, &st);
    bool registered = a->sess && session_ready(a->sess);
    bool ready = rc == 0 && st.writable && registered;
    json_t *catalog =
        json_pack("{s:s,s:b,s:b,s:I,s:I}", "backend", rc == 0 ? st.backend : "?", "open", rc == 0,
                  "writable", ready, "revision", (json_int_t)st.revision, "compact_revision",
                  (json_int_t)st.compact_revision);
    json_t *body = json_pack("{s:s,s:s,s:o,s:b}", "status", ready ? "ready" : "unavailable",
                             "node_id", a->node_id, "catalog", catalog, "registered", registered);
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
