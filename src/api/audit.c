/* api/audit.c — audit rows for mutations, reveals and refusals (see
 * audit.h). */
#include "api/audit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "obs/log.h"
#include "records/records.h"
#include "wire/shard_json.h"

/* Every mutation route of the API and its action; a name ending in '.'
 * takes the route's {action} parameter (shard.drain, shard.retire, ...).
 * tests/unit/test_audit_routes.c checks that every route of the API that
 * is not a GET has a row here. */
static const struct {
    const char *method, *pattern, *action;
} actions[] = {
    {"PUT", "/v1/kv/{key*}", "kv.put"},
    {"DELETE", "/v1/kv/{key*}", "kv.delete"},
    {"POST", "/v1/txn", "kv.txn"},
    {"POST", "/v1/leases", "lease.grant"},
    {"POST", "/v1/leases/{id}/keepalive", "lease.keepalive"},
    {"DELETE", "/v1/leases/{id}", "lease.revoke"},
    {"GET", "/v1/snapshot", "snapshot.read"}, /* every DSN with its password */
    {"POST", "/v1/maintenance/compact", "catalog.compact"},
    {"POST", "/v1/maintenance/defrag", "catalog.defrag"},
    {"POST", "/v1/shards", "shard.create"},
    {"PATCH", "/v1/shards/{id}", "shard.update"},
    {"DELETE", "/v1/shards/{id}", "shard.delete"},
    {"POST", "/v1/shards/{id}/{action}", "shard."},
    {"PUT", "/v1/tenants/{key}", "tenant.pin"},
    {"PUT", "/v1/manifests/{id}", "manifest.put"},
    {"DELETE", "/v1/tenants/{key}", "tenant.unpin"},
    {"POST", "/api/register", "tenant.register"},
    {"POST", "/api/register/batch", "tenant.register_batch"},
    {"POST", "/v1/registrations/{id}/retry", "registration.retry"},
    {"POST", "/v1/businesses/{id}/register-shards", "registration.redrive"},
    {"POST", "/v1/auth/keys", "key.create"},
    {"DELETE", "/v1/auth/keys/{id}", "key.revoke"},
    {"POST", "/v1/auth/bootstrap", "key.bootstrap"},
    {"POST", "/v1/topics/{topic}/events", "event.publish"},
    {"POST", "/v1/dlq/{topic}/{id}/replay", "event.replay"},
};

const char *api_audit_action(const http_route *route)
{
    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
        if (strcmp(actions[i].method, route->method) == 0 &&
            strcmp(actions[i].pattern, route->pattern) == 0)
            return actions[i].action;
    return NULL;
}

/* Actions whose handler goes to the work pool first thing (APP_OFFLOAD:
 * they wait on the event bus): written, their row resumes the request on
 * the pool (http_suspend_to_pool), not on the HTTP thread that would hand
 * it to the pool next. */
static bool runs_on_pool(const char *action)
{
    return strcmp(action, "event.publish") == 0 || strcmp(action, "event.replay") == 0;
}

static api_reqctx *ctx_of(http_req *r)
{
    return http_req_principal(r);
}

/* The route's target: its path parameter (topic, key, id, shardKey,
 * prefix). */
static const char *target_of(http_req *r)
{
    static const char *const names[] = {"topic", "key", "id", "shardKey", "prefix"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *v = http_req_param(r, names[i]);
        if (v)
            return v;
    }
    return "";
}

/* What a request's row says; roles and peer are the caller's buffers the
 * row points into. status 0 = recorded when the request ends. */
typedef struct row_bufs {
    char roles[128], peer[64];
} row_bufs;

static audit_row row_of(http_req *r, const char *action, const char *target, int status,
                        row_bufs *b)
{
    const principal *p = api_principal(r);
    auth_roles_format(p->roles, b->roles, sizeof(b->roles));
    http_req_peer(r, b->peer, sizeof(b->peer));
    const http_route *route = http_req_route(r);
    return (audit_row){.time_ms = clock_wall_ms(NULL),
                       .principal = p->name,
                       .roles = b->roles,
                       .auth_method = p->method,
                       .peer = b->peer,
                       .method = http_req_method(r),
                       .route = route ? route->pattern : http_req_path(r),
                       .action = action,
                       .target = target,
                       .status = status,
                       .correlation_id = http_req_correlation(r)};
}

/* The writer thread: the row is durable (or not); wake the request. */
static void audit_written(void *ctx, int rc, int64_t id, const errdetail *e)
{
    http_req *r = ctx;
    api_reqctx *c = ctx_of(r);
    c->audit_id = rc == 0 ? id : 0;
    c->audit_rc = rc;
    if (rc != 0)
        snprintf(c->audit_err, sizeof(c->audit_err), "%.200s", e ? e->message : "");
    http_resume(r);
}

/* Back on an HTTP thread (or a pool thread: runs_on_pool): the handler
 * runs only once its row is written. */
static void audit_resumed(http_req *r, void *ctx)
{
    api_reqctx *c = ctx;
    if (http_req_gone(r))
        return; /* the client left while its row was written: nothing applied */
    if (c->audit_rc != 0 && c->a->audit_fail_open) {
        log_warn("audit", "audit row not written; going on (auth.audit.fail_open)",
                 json_pack("{s:s}", "error", c->audit_err));
    } else if (c->audit_rc != 0) {
        log_error("audit", "audit row not written; the request is refused",
                  json_pack("{s:s}", "error", c->audit_err));
        http_reply_error(r, CITRUS_EAUDIT,
                         "the audit log cannot be written: the change was refused and not applied",
                         NULL);
        return;
    }
    http_run_handler(r);
}

void api_audit_before(http_req *r, void *ctx)
{
    (void)ctx;
    api_reqctx *c = ctx_of(r);
    const http_route *route = http_req_route(r);
    const char *action = route ? api_audit_action(route) : NULL;
    if (!c || !c->a->rec || !action)
        return;
    char name[RECORDS_MAX_ACTION];
    size_t n = strlen(action);
    if (n && action[n - 1] == '.') {
        const char *param = http_req_param(r, "action");
        snprintf(name, sizeof(name), "%s%.64s", action, param ? param : "");
        action = name;
    }
    /* A raw KV write that asked to pass the reserved rule (?unsafe=true,
     * api_kv_write_check) says so in its action: kv.put.unsafe, ... */
    const char *unsafe = http_req_query(r, "unsafe");
    if (strncmp(action, "kv.", 3) == 0 && unsafe && strcmp(unsafe, "false") != 0 &&
        strcmp(unsafe, "0") != 0) {
        snprintf(name, sizeof(name), "%.64s.unsafe", action);
        action = name;
    }
    row_bufs b;
    audit_row row = row_of(r, action, target_of(r), 0, &b);
    /* Parked first: the row may be written before the call returns. */
    if (runs_on_pool(action))
        http_suspend_to_pool(r, audit_resumed, c);
    else
        http_suspend(r, audit_resumed, c);
    errdetail e;
    if (records_audit_append_async(c->a->rec, &row, audit_written, r, &e) < 0) {
        c->audit_rc = e.code ? e.code : CITRUS_EAUDIT;
        snprintf(c->audit_err, sizeof(c->audit_err), "%.200s", e.message);
        http_resume(r);
    }
}

void api_audit_now(http_req *r, const char *action, const char *target, int status)
{
    api_reqctx *c = ctx_of(r);
    if (!c || !c->a->rec)
        return;
    errdetail e;
    row_bufs b;
    audit_row row = row_of(r, action, target ? target : target_of(r), status, &b);
    if (records_audit_append(c->a->rec, &row, NULL, &e) < 0)
        log_error("audit", "audit row not written",
                  json_pack("{s:s,s:s}", "action", action, "error", e.message));
}

void api_audit_done(http_req *r, unsigned status, void *ctx)
{
    (void)ctx;
    api_reqctx *c = ctx_of(r);
    if (!c || !c->a->rec || !c->audit_id)
        return;
    errdetail e;
    /* a client gone before any answer: 499, as nginx logs it */
    if (records_audit_finish(c->a->rec, c->audit_id, status ? (int)status : 499, &e) < 0)
        log_warn("audit", "audit status not written",
                 json_pack("{s:I,s:s}", "id", (json_int_t)c->audit_id, "error", e.message));
}

int api_parse_int(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (!*s || *end || errno || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')))
        return CITRUS_EINVAL;
    *out = n;
    return 0;
}

int api_parse_since(const char *s, int64_t *ms)
{
    if (s[0] >= '0' && s[0] <= '9' && api_parse_int(s, ms) == 0)
        return 0;
    return shard_json_parse_time(s, ms) < 0 || *ms < 0 ? CITRUS_EINVAL : 0;
}

static json_t *row_json(const audit_row *row)
{
    char when[40];
    shard_json_time(row->time_ms, when, sizeof(when));
    return json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:s}", "id", (json_int_t)row->id,
                     "time", when, "principal", row->principal, "roles", row->roles, "auth_method",
                     row->auth_method, "peer", row->peer, "method", row->method, "route",
                     row->route, "action", row->action, "target", row->target, "status",
                     row->status, "correlation_id", row->correlation_id);
}

int api_audit_query_parse(const api_audit_params *in, audit_query *q, errdetail *e)
{
    memset(q, 0, sizeof(*q));
    const char *texts[] = {in->principal, in->action, in->target};
    for (size_t i = 0; i < 3; i++)
        if (texts[i] && (strlen(texts[i]) == 0 || strlen(texts[i]) > RECORDS_MAX_TARGET))
            return errdetail_set(e, CITRUS_EINVAL,
                                 "principal, action and target: 1..%d bytes when given",
                                 RECORDS_MAX_TARGET);
    q->principal = in->principal;
    q->action = in->action;
    q->target = in->target;
    if (in->since && api_parse_since(in->since, &q->since_ms) < 0)
        return errdetail_set(e, CITRUS_EINVAL,
                             "since: Unix milliseconds or an RFC 3339 time (2026-01-02T03:04:05Z)");
    int64_t limit = RECORDS_QUERY_DEFAULT_LIMIT, after = 0;
    if (in->limit &&
        (api_parse_int(in->limit, &limit) < 0 || limit < 1 || limit > RECORDS_QUERY_MAX_LIMIT))
        return errdetail_set(e, CITRUS_EINVAL, "limit: an integer 1..%d", RECORDS_QUERY_MAX_LIMIT);
    if (in->after && (api_parse_int(in->after, &after) < 0 || after < 0))
        return errdetail_set(e, CITRUS_EINVAL, "after: an audit row id (an integer >= 0)");
    q->limit = (size_t)limit;
    q->after_id = after;
    return 0;
}

int api_audit_list(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_audit_list, ctx);
    app *a = ctx;
    if (!a->rec)
        return http_reply_error(r, CITRUS_EUNAVAILABLE, "this node keeps no audit log", NULL);
    api_audit_params in = {.since = http_req_query(r, "since"),
                           .principal = http_req_query(r, "principal"),
                           .action = http_req_query(r, "action"),
                           .target = http_req_query(r, "target"),
                           .limit = http_req_query(r, "limit"),
                           .after = http_req_query(r, "after")};
    audit_query q;
    errdetail e;
    if (api_audit_query_parse(&in, &q, &e) < 0)
        return http_reply_error(r, CITRUS_EINVAL, e.message, NULL);
    audit_row *rows = NULL;
    size_t n = 0;
    int64_t next = 0;
    int rc = records_audit_query(a->rec, &q, &rows, &n, &next, &e);
    if (rc < 0)
        return http_reply_error(r, rc, e.message, NULL);
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, row_json(&rows[i]));
    audit_rows_free(rows, n);
    return http_reply_json(r, 200,
                           json_pack("{s:o,s:o}", "entries", items, "next_after",
                                     next ? json_integer(next) : json_null()));
}
