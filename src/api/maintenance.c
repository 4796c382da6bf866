/* api/maintenance.c — POST /v1/maintenance/compact and /defrag: making room
 * in the catalog store, and GET's view of its quota (docs/security.md,
 * "Bounded answers and the store quota"). Both need sm-admin and are
 * audited (api/audit.c). */
#include "api/app.h"
#include "api/handlers.h"
#include "api/kvreq.h"
#include "citrus/errors.h"

json_t *api_quota_json(const store_status *st)
{
    json_t *alarms = json_array();
    if (st->nospace)
        json_array_append_new(alarms, json_string("NOSPACE"));
    return json_pack("{s:o,s:I,s:I,s:I}", "alarms", alarms, "db_size", (json_int_t)st->db_size,
                     "db_size_in_use", (json_int_t)st->db_size_in_use, "quota_bytes",
                     (json_int_t)st->quota_bytes);
}

/* The store's state after a compact or defrag: its revisions and quota. */
static int answer(http_req *r, app *a)
{
    store_status st;
    int rc = store_status_get(a->st, &st);
    if (rc < 0)
        return kvreq_reply_store_error(r, rc);
    json_t *body = api_quota_json(&st);
    json_object_set_new(body, "revision", json_integer(st.revision));
    json_object_set_new(body, "compact_revision", json_integer(st.compact_revision));
    return http_reply_json(r, 200, body);
}

/* Body {} or {"revision": N}: drops the change history before N (default:
 * the current revision). */
int api_maintenance_compact(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_maintenance_compact, ctx);
    app *a = ctx;
    json_t *body = http_req_json(r);
    if (!body)
        return CITRUS_EBADJSON;
    json_t *rev = json_object_get(body, "revision");
    bool bad = !json_is_object(body) || json_object_size(body) > (rev ? 1u : 0u) ||
               (rev && (!json_is_integer(rev) || json_integer_value(rev) < 0));
    int64_t at = rev ? json_integer_value(rev) : 0;
    json_decref(body);
    if (bad)
        return http_reply_error(r, CITRUS_EBADJSON,
                                "body must be {} or {\"revision\": <non-negative integer>}", NULL);
    int rc = store_compact(a->st, at);
    if (rc == CITRUS_EINVAL)
        return http_reply_error(r, rc, "revision is in the future", NULL);
    if (rc < 0)
        return kvreq_reply_store_error(r, rc);
    return answer(r, a);
}

/* Body {}: gives freed space back (SQLite VACUUM, writes wait meanwhile;
 * etcd: defragments every member, then disarms NOSPACE). */
int api_maintenance_defrag(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_maintenance_defrag, ctx);
    app *a = ctx;
    json_t *body = http_req_json(r);
    if (!body)
        return CITRUS_EBADJSON;
    bool bad = !json_is_object(body) || json_object_size(body) > 0;
    json_decref(body);
    if (bad)
        return http_reply_error(r, CITRUS_EBADJSON, "body must be {}", NULL);
    int rc = store_defrag(a->st);
    if (rc < 0)
        return kvreq_reply_store_error(r, rc);
    return answer(r, a);
}
