/* api/snapshot.c — GET /v1/snapshot: the whole catalog at one revision, for
 * `citrus backup`. */
#include "api/app.h"
#include "api/handlers.h"
#include "api/kvreq.h"
#include "wire/kvjson.h"

int api_snapshot(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_snapshot, ctx); /* the whole catalog: not on an HTTP thread */
    app *a = ctx;
    kv_snapshot snap;
    int rc = store_snapshot(a->st, &snap);
    if (rc < 0)
        return kvreq_reply_store_error(r, rc);
    json_t *body = kvjson_snapshot_encode(&snap);
    kv_snapshot_free(&snap);
    return http_reply_json(r, 200, body);
}
