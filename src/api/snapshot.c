/* api/snapshot.c — GET /v1/snapshot: the whole catalog at one revision, for
 * `citrus backup`. */
#include "api/app.h"
#include "api/handlers.h"
#include "api/kvjson.h"

int api_snapshot(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_snapshot, ctx); /* the whole catalog: not on an HTTP thread */
    app *a = ctx;
    kv_snapshot snap;
    int rc = store_snapshot(a->st, &snap);
    if (rc < 0)
        return kvjson_reply_store_error(r, rc);
    json_t *items = json_array();
    for (size_t i = 0; i < snap.count; i++)
        json_array_append_new(items, kvjson_entry(&snap.items[i], true));
    json_t *leases = json_array();
    for (size_t i = 0; i < snap.nleases; i++)
        json_array_append_new(leases,
                              json_pack("{s:I,s:I,s:I}", "id", (json_int_t)snap.leases[i].id, "ttl",
                                        (json_int_t)snap.leases[i].ttl, "remaining",
                                        (json_int_t)snap.leases[i].remaining));
    json_t *body =
        json_pack("{s:I,s:I,s:o,s:o}", "revision", (json_int_t)snap.revision, "compact_revision",
                  (json_int_t)snap.compact_revision, "items", items, "leases", leases);
    kv_snapshot_free(&snap);
    return http_reply_json(r, 200, body);
}
