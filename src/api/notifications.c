/* api/notifications.c — GET /v1/notifications (role reader): the
 * notifications the event notification worker stored (records/ledger.h),
 * oldest first, filtered by ?source=, ?type=, ?severity= (exact; severity
 * in any case), ?since= (Unix ms or RFC 3339), paged by ?limit= (1..1000,
 * default 100) and ?after= (the next_after of the previous page). */
#include <ctype.h>
#include <string.h>

#include "api/app.h"
#include "api/audit.h"
#include "api/handlers.h"
#include "citrus/errors.h"
#include "records/ledger.h"
#include "wire/shard_json.h"

/* Checks one text filter: 1..max bytes when given. */
static int text_param(const char *name, const char *v, size_t max, errdetail *e)
{
    if (v && (!*v || strlen(v) > max))
        return errdetail_set(e, CITRUS_EINVAL, "%s: 1..%zu bytes when given", name, max);
    return 0;
}

static int query_parse(http_req *r, notification_query *q, char *sev, size_t sevlen, errdetail *e)
{
    memset(q, 0, sizeof(*q));
    q->source = http_req_query(r, "source");
    q->type = http_req_query(r, "type");
    const char *severity = http_req_query(r, "severity");
    const char *since = http_req_query(r, "since");
    const char *limit_s = http_req_query(r, "limit");
    const char *after_s = http_req_query(r, "after");
    int rc = text_param("source", q->source, RECORDS_MAX_NOTIFY_SOURCE, e);
    if (rc == 0)
        rc = text_param("type", q->type, RECORDS_MAX_NOTIFY_TYPE, e);
    if (rc == 0)
        rc = text_param("severity", severity, sevlen - 1, e);
    if (rc < 0)
        return rc;
    if (severity) { /* stored lower-cased */
        size_t i = 0;
        for (; severity[i]; i++)
            sev[i] = (char)tolower((unsigned char)severity[i]);
        sev[i] = '\0';
        q->severity = sev;
    }
    if (since && api_parse_since(since, &q->since_ms) < 0)
        return errdetail_set(e, CITRUS_EINVAL,
                             "since: Unix milliseconds or an RFC 3339 time (2026-01-02T03:04:05Z)");
    int64_t limit = RECORDS_QUERY_DEFAULT_LIMIT, after = 0;
    if (limit_s &&
        (api_parse_int(limit_s, &limit) < 0 || limit < 1 || limit > RECORDS_QUERY_MAX_LIMIT))
        return errdetail_set(e, CITRUS_EINVAL, "limit: an integer 1..%d", RECORDS_QUERY_MAX_LIMIT);
    if (after_s && (api_parse_int(after_s, &after) < 0 || after < 0))
        return errdetail_set(e, CITRUS_EINVAL, "after: a notification id (an integer >= 0)");
    q->limit = (size_t)limit;
    q->after_id = after;
    return 0;
}

static json_t *notification_json(const notification_row *n)
{
    char when[40];
    shard_json_time(n->time_ms, when, sizeof(when));
    json_t *data = json_loads(n->data, JSON_DECODE_ANY, NULL);
    if (!data) /* not JSON (never written so): shown as text */
        data = json_string(n->data);
    return json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o}", "id", (json_int_t)n->id, "time", when,
                     "event_id", n->event_id, "source", n->source, "type", n->type, "severity",
                     n->severity, "subject", n->subject, "correlation_id", n->correlation_id,
                     "data", data ? data : json_null());
}

int api_notifications_list(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_notifications_list, ctx);
    app *a = ctx;
    if (!a->rec)
        return http_reply_error(r, CITRUS_EUNAVAILABLE, "this node has no records store", NULL);
    notification_query q;
    char sev[RECORDS_MAX_NOTIFY_SEVERITY + 1];
    errdetail e;
    if (query_parse(r, &q, sev, sizeof(sev), &e) < 0)
        return http_reply_error(r, CITRUS_EINVAL, e.message, NULL);
    notification_row *rows = NULL;
    size_t n = 0;
    int64_t next = 0;
    int rc = records_notifications_query(a->rec, &q, &rows, &n, &next, &e);
    if (rc < 0)
        return http_reply_error(r, rc, e.message, NULL);
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, notification_json(&rows[i]));
    notification_rows_free(rows, n);
    return http_reply_json(r, 200,
                           json_pack("{s:o,s:o}", "notifications", items, "next_after",
                                     next ? json_integer(next) : json_null()));
}
