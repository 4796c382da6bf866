/* api/snapshot.c — GET /v1/snapshot: the whole catalog at one revision, for
 * `citrus backup`. The DSN passwords in shard records are masked unless
 * the sm-admin asks for them with ?reveal=true (what `citrus backup`
 * does, writing its file with mode 0600); that answer is a
 * credential.reveal in the audit log. */
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "citrus/errors.h"
#include "api/handlers.h"
#include "api/kvreq.h"
#include "api/shardjson.h"
#include "wire/catalog_keys.h"
#include "wire/kvjson.h"

/* A shard record's value with its DSN passwords masked; 0, or -1 when out
 * of memory. A value that is not a JSON object is left as it is: it holds
 * no DSN the registry would use. */
static int redact_entry(kv_entry *it)
{
    json_t *j = json_loadb((const char *)it->value, it->value_len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return 0;
    }
    json_t *orig = json_deep_copy(j);
    shardjson_redact(j);
    bool same = orig && json_equal(orig, j); /* no password: the value as stored */
    json_decref(orig);
    char *text = same ? NULL : json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (same)
        return 0;
    if (!text)
        return -1;
    free(it->value);
    it->value = (unsigned char *)text;
    it->value_len = strlen(text);
    return 0;
}

int api_snapshot(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_snapshot, ctx); /* the whole catalog: not on an HTTP thread */
    app *a = ctx;
    bool reveal;
    int rc = api_reveal_query(r, &reveal);
    if (rc < 0)
        return rc;
    kv_snapshot snap;
    /* bounded: the store stops reading at server.max_response_bytes */
    rc = store_snapshot_bounded(a->st, a->max_response_bytes, &snap);
    if (rc == CITRUS_ERESPTOOBIG)
        return http_reply_errorf(r, rc,
                                 "the catalog's snapshot passes server.max_response_bytes (%zu); "
                                 "raise it for the backup, or compact and delete first",
                                 a->max_response_bytes);
    if (rc < 0)
        return kvreq_reply_store_error(r, rc);
    for (size_t i = 0; !reveal && i < snap.count; i++) {
        kv_entry *it = &snap.items[i];
        if (it->value && strncmp(it->key, REG_SHARDS, strlen(REG_SHARDS)) == 0 &&
            redact_entry(it) < 0) {
            kv_snapshot_free(&snap);
            return http_reply_error(r, CITRUS_ENOMEM, NULL, NULL);
        }
    }
    if (reveal)
        api_note_reveal(r, "");
    size_t len = 0;
    char *text = kvjson_snapshot_dump(&snap, &len); /* one copy, values freed as written */
    kv_snapshot_free(&snap);
    return http_reply_take(r, 200, "application/json", text, len);
}
