/* api/kv.c — GET/PUT/DELETE /v1/kv/{key}: single keys and prefix ranges. */
#include "api/app.h"
#include "api/handlers.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/kvreq.h"
#include "api/write.h"
#include "citrus/errors.h"
#include "wire/kvjson.h"

#define LIST_MAX_ITEMS 10000

static void add_rev_header(http_req *r, const char *name, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    http_add_header(r, name, buf);
}

static int get_prefix(http_req *r, app *a, const char *key, reader_level level)
{
    int64_t limit;
    bool keys_only, count_only;
    if (http_req_query_int(r, "limit", 0, &limit) < 0 ||
        http_req_query_bool(r, "keys_only", false, &keys_only) < 0 ||
        http_req_query_bool(r, "count_only", false, &count_only) < 0)
        return CITRUS_EINVAL;
    if (limit < 0)
        return http_reply_error(r, CITRUS_EINVAL, "limit must be >= 0", NULL);
    /* One answer holds at most LIST_MAX_ITEMS; "more" says to continue with
     * ?after=<last key>, so no listing is one unbounded response. */
    if (limit == 0 || limit > LIST_MAX_ITEMS)
        limit = LIST_MAX_ITEMS;
    const char *after = http_req_query(r, "after");
    if (after && kvreq_check_key(r, after, true) < 0)
        return CITRUS_EBADKEY;
    /* ... and at most server.max_response_bytes: "more" again */
    kv_range_req req = {.key = key,
                        .prefix = true,
                        .after = after,
                        .limit = (size_t)limit,
                        .keys_only = keys_only,
                        .count_only = count_only,
                        .max_bytes = a->max_response_bytes};
    kv_range_res res;
    int rc = app_read(a, r, level, &req, &res, NULL);
    if (rc < 0)
        return rc;
    if (!count_only) { /* written straight into the answer: no tree, no second copy */
        size_t len = 0;
        char *text = kvjson_range_dump(&res, !keys_only, &len);
        kv_range_res_free(&res);
        return http_reply_take(r, 200, "application/json", text, len);
    }
    /* count_only: every key under the prefix (after `after`), limit aside */
    json_t *body = json_pack("{s:I,s:I}", "revision", (json_int_t)res.revision, "count",
                             (json_int_t)res.count);
    kv_range_res_free(&res);
    return http_reply_json(r, 200, body);
}

int api_kv_get(http_req *r, void *ctx)
{
    app *a = ctx;
    const char *key = http_req_param(r, "key");
    reader_level level;
    bool prefix;
    if (http_req_query_bool(r, "prefix", false, &prefix) < 0 ||
        app_consistency(r, READER_BOUNDED, &level) < 0 || kvreq_check_key(r, key, prefix) < 0)
        return CITRUS_EINVAL;
    if (!http_offloaded(r) && reader_blocks(a->rd, level))
        return http_offload(r, api_kv_get, ctx);
    if (prefix)
        return get_prefix(r, a, key, level);
    const char *fmt = http_req_query(r, "format");
    if (fmt && strcmp(fmt, "json") != 0 && strcmp(fmt, "raw") != 0)
        return http_reply_error(r, CITRUS_EINVAL, "format must be 'json' or 'raw'", NULL);
    kv_range_req req = {.key = key};
    kv_range_res res;
    int rc = app_read(a, r, level, &req, &res, NULL);
    if (rc < 0)
        return rc;
    if (res.count == 0) {
        kv_range_res_free(&res);
        return http_reply_errorf(r, CITRUS_ENOTFOUND, "key '%s' not found", key);
    }
    const kv_entry *e = &res.items[0];
    add_rev_header(r, "X-Citrus-Mod-Revision", e->mod_revision);
    add_rev_header(r, "X-Citrus-Create-Revision", e->create_revision);
    add_rev_header(r, "X-Citrus-Version", e->version);
    if (fmt && strcmp(fmt, "json") == 0) {
        json_t *body = kvjson_entry_encode(e, true);
        json_object_set_new(body, "revision", json_integer(res.revision));
        kv_range_res_free(&res);
        return http_reply_json(r, 200, body);
    }
    rc = http_reply_raw(r, 200, "application/octet-stream", e->value, e->value_len);
    kv_range_res_free(&res);
    return rc;
}

/* A PUT or DELETE in flight: the cas txn and the parked request. */
typedef struct kv_write {
    api_write w; /* first: the completion gets &w */
    app *a;
    store_cas_txn c;
    bool is_put;
} kv_write;

static void kv_write_done(api_write *w, http_req *r, int rc)
{
    kv_write *kw = (kv_write *)w;
    int64_t cur = 0;
    rc = store_cas_txn_outcome(&w->res, rc, &cur);
    if (rc == CITRUS_ECONFLICT) {
        api_write_fail(w, r, rc, "mod_revision compare failed",
                       json_pack("{s:I}", "mod_revision", (json_int_t)cur));
    } else if (rc < 0) {
        api_write_fail(w, r, rc, NULL, NULL);
    } else {
        const kv_op_result *res = &w->res.results[0];
        reader_note_write(kw->a->rd, w->res.revision);
        add_rev_header(r, "X-Citrus-Revision", w->res.revision);
        if (kw->is_put)
            api_write_finish(w, r, 200,
                             json_pack("{s:s,s:I,s:I,s:I,s:I}", "key", kw->c.op.key, "revision",
                                       (json_int_t)w->res.revision, "create_revision",
                                       (json_int_t)res->create_revision, "mod_revision",
                                       (json_int_t)res->mod_revision, "version",
                                       (json_int_t)res->version));
        else
            api_write_finish(w, r, 200,
                             json_pack("{s:I,s:I}", "deleted", (json_int_t)res->deleted, "revision",
                                       (json_int_t)w->res.revision));
    }
    kv_txn_res_free(&w->res);
    free(kw);
}

static int kv_write_submit(http_req *r, app *a, const kv_op *op, int64_t cas)
{
    kv_write *kw = calloc(1, sizeof(*kw));
    if (!kw)
        return http_reply_error(r, CITRUS_ENOMEM, NULL, NULL);
    kw->is_put = op->type == KV_OP_PUT;
    kw->a = a;
    store_cas_txn_init(&kw->c, op, cas);
    if (api_write_submit(&kw->w, r, a, &kw->c.txn, kv_write_done) != 0)
        free(kw); /* already answered */
    return 0;
}

/* An Idempotency-Key write makes synchronous catalog calls first (the
 * record), so it runs on the work pool. */
static bool write_blocks(http_req *r)
{
    return !http_offloaded(r) && http_req_header(r, "Idempotency-Key") != NULL;
}

int api_kv_put(http_req *r, void *ctx)
{
    app *a = ctx;
    if (write_blocks(r))
        return http_offload(r, api_kv_put, ctx);
    const char *key = http_req_param(r, "key");
    int64_t cas, lease;
    if (kvreq_check_key(r, key, false) < 0 || http_req_query_int(r, "cas", -1, &cas) < 0 ||
        http_req_query_int(r, "lease", 0, &lease) < 0)
        return CITRUS_EINVAL;
    if (http_req_query(r, "cas") && cas < 0)
        return http_reply_error(r, CITRUS_EINVAL, "cas must be >= 0", NULL);
    if (lease < 0)
        return http_reply_error(r, CITRUS_EINVAL, "lease must be >= 0", NULL);
    size_t len;
    const unsigned char *val = http_req_body(r, &len);
    if (len > a->max_value_bytes)
        return http_reply_errorf(r, CITRUS_ETOOBIGVAL, "value of %zu bytes over the limit of %zu",
                                 len, a->max_value_bytes);
    kv_op op = {.type = KV_OP_PUT, .key = key, .value = val, .value_len = len, .lease = lease};
    return kv_write_submit(r, a, &op, cas);
}

int api_kv_delete(http_req *r, void *ctx)
{
    app *a = ctx;
    if (write_blocks(r))
        return http_offload(r, api_kv_delete, ctx);
    const char *key = http_req_param(r, "key");
    bool prefix;
    int64_t cas;
    if (http_req_query_bool(r, "prefix", false, &prefix) < 0 ||
        kvreq_check_key(r, key, prefix) < 0 || http_req_query_int(r, "cas", -1, &cas) < 0)
        return CITRUS_EINVAL;
    if (http_req_query(r, "cas") && (cas < 0 || prefix))
        return http_reply_error(r, CITRUS_EINVAL, "cas must be >= 0 and applies to one key", NULL);
    kv_op op = {.type = KV_OP_DELETE, .key = key, .prefix = prefix};
    return kv_write_submit(r, a, &op, cas);
}
