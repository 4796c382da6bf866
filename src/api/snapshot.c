/* api/snapshot.c — GET /v1/snapshot: the whole catalog at one revision, for
 * `citrus backup`. */
#include "api/app.h"
#include "api/handlers.h"
#include "api/kvreq.h"
#include "citrus/errors.h"
#include "wire/kvjson.h"

int api_snapshot(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_snapshot, ctx); /* the whole catalog: not on an HTTP thread */
    app *a = ctx;
    kv_snapshot snap;
    /* bounded: the store stops reading at server.max_response_bytes */
    int rc = store_snapshot_bounded(a->st, a->max_response_bytes, &snap);
    if (rc == CITRUS_ERESPTOOBIG)
        return http_reply_errorf(r, rc,
                                 "the catalog's snapshot passes server.max_response_bytes (%zu); "
                                 "raise it for the backup, or compact and delete first",
                                 a->max_response_bytes);
    if (rc < 0)
        return kvreq_reply_store_error(r, rc);
    size_t len = 0;
    char *text = kvjson_snapshot_dump(&snap, &len); /* one copy, values freed as written */
    kv_snapshot_free(&snap);
    return http_reply_take(r, 200, "application/json", text, len);
}
