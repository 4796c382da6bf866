/* api/app.c — the HTTP side of a catalog read: the consistency a request
 * asks for, and the answer's headers or error (the policy itself is
 * catalog/reader.c). */
#include "api/app.h"

#include <inttypes.h>
#include <stdio.h>

#include "citrus/errors.h"

deadline app_request_deadline(const app *a, const http_req *r)
{
    if (a->request_deadline_ms <= 0)
        return (deadline){0};
    int64_t margin = a->request_deadline_ms / 10;
    margin = margin < 50 ? 50 : margin > 500 ? 500 : margin;
    return deadline_after(NULL, a->request_deadline_ms - margin - http_req_age_ms(r));
}

int app_consistency(http_req *r, reader_level def, reader_level *level)
{
    const char *c = http_req_query(r, "consistency");
    *level = def;
    if (!c || reader_level_parse(c, level) == 0)
        return 0;
    http_reply_error(r, CITRUS_EINVAL, "consistency must be 'strong', 'bounded' or 'any'", NULL);
    return CITRUS_EINVAL;
}

static void add_i64_header(http_req *r, const char *name, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    http_add_header(r, name, buf);
}

int app_read(app *a, http_req *r, reader_level level, const kv_range_req *req, kv_range_res *out,
             reader_info *info)
{
    reader_info ri;
    int rc = reader_read(a->rd, level, req, out, &ri);
    if (info)
        *info = ri;
    if (rc == CITRUS_ESTALE && !ri.loaded)
        return http_reply_error(r, rc, "the catalog copy is not loaded yet", NULL), rc;
    if (rc == CITRUS_ESTALE) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "this node's copy may be %" PRId64 " ms old, over the bound of %" PRId64
                 " ms; use ?consistency=strong, or ?consistency=any to read it anyway",
                 ri.staleness_ms, ri.bound_ms);
        return http_reply_error(r, rc, msg,
                                json_pack("{s:I}", "staleness_ms", (json_int_t)ri.staleness_ms)),
               rc;
    }
    if (rc < 0)
        return http_reply_error(r, rc, NULL, NULL), rc;
    add_i64_header(r, "X-Citrus-Revision", out->revision);
    http_add_header(r, "X-Citrus-Consistency", reader_level_name(ri.level));
    add_i64_header(r, "X-Citrus-Staleness-Ms", ri.staleness_ms);
    return 0;
}
