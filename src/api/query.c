/* api/query.c — the router's API: POST /v1/query and POST /v1/tx.
 *
 *   /v1/query {key | tenant, sql, params?, consistency?, max_lag_ms?, int64?}
 *                                                   one statement on the key's shard
 *   /v1/query {keys: [...], sql, params?}           the same, for keys on one shard
 *   /v1/query {scatter: true, sql, params?, order_by?, limit?, aggregate?, partial?}
 *   /v1/tx    {key, statements: [{sql, params?}]}   one transaction on one shard
 * Parameters are JSON scalars bound as $1, $2, ... (never spliced into the
 * SQL). consistency "strong" (the default) reads the primary; "eventual"
 * reads a replica within max_lag_ms when the shard has one (else the
 * primary); writes always go to the primary. int64 "number" | "string"
 * (default router.int64) says how 64-bit integers are sent (wire/rowjson.h).
 * Answers: {shard_id, columns, column_types, rows, row_count, changes,
 * truncated, ring_version, served_by}. Every call waits on a database: on
 * the work pool. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/handlers.h"
#include "wire/rowjson.h"
#include "citrus/errors.h"
#include "core/sqlclass.h"
#include "router/router.h"

#define MAX_PARAMS 1000
#define MAX_STATEMENTS 100
#define MAX_ORDER 16

/* The router's error: its code and message, the SQLSTATE where there is
 * one, and for a transaction the index of the statement that failed
 * (statement >= 0). */
static void router_error_reply(http_req *r, const errdetail *e, long statement)
{
    json_t *extra = json_object();
    if (e->sqlstate[0])
        json_object_set_new(extra, "sqlstate", json_string(e->sqlstate));
    if (statement >= 0)
        json_object_set_new(extra, "statement", json_integer(statement));
    http_reply_error(r, e->code, e->message, extra);
}

/* The request's body, a JSON object, for a running router; NULL after
 * replying otherwise. */
static json_t *router_body(http_req *r, app *a)
{
    if (!a->router) {
        http_reply_error(r, CITRUS_EUNAVAILABLE, "the router is not running", NULL);
        return NULL;
    }
    json_t *body = http_req_json(r);
    if (body && !json_is_object(body)) {
        http_reply_error(r, CITRUS_EBADJSON, "body must be a JSON object", NULL);
        json_decref(body);
        return NULL;
    }
    return body;
}

/* The body's key: "key" or "tenant". NULL (after replying) when invalid. */
static const char *key_of(http_req *r, json_t *body)
{
    json_t *k = json_object_get(body, "key");
    if (!k)
        k = json_object_get(body, "tenant");
    const char *s = json_string_value(k);
    if (!k) {
        http_reply_error(r, CITRUS_EBADJSON, "key: required (or scatter: true)", NULL);
        return NULL;
    }
    if (!s || !*s || strlen(s) > 1024) {
        http_reply_error(r, CITRUS_EBADJSON, "key: must be a string of 1..1024 bytes", NULL);
        return NULL;
    }
    if (api_check_tenant(r, s) < 0)
        return NULL;
    return s;
}

/* Says where routing came from, as the router's catalog reads returned it
 * (before the reply is sent). */
static void catalog_header(http_req *r, const router_answer *ans)
{
    http_add_header(r, "X-Citrus-Catalog", ans->catalog_cached ? "cached" : "live");
}

/* The body's "int64" (absent: the router's default); replies 400 when
 * invalid. */
static int int64_parse(http_req *r, const router *rt, json_t *body, rowjson_int64 *mode)
{
    json_t *v = json_object_get(body, "int64");
    *mode = router_int64_as_string(rt) ? ROWJSON_INT64_STRING : ROWJSON_INT64_NUMBER;
    if (v && rowjson_int64_parse(json_string_value(v), mode) < 0)
        return http_reply_error(r, CITRUS_EINVAL,
                                "int64: \"number\" (JSON numbers; a column with a value past "
                                "2^53-1 as strings, typed int64-string) or \"string\" (always)",
                                NULL),
               CITRUS_EINVAL;
    return 0;
}

static json_t *answer_json(const router_answer *a, rowjson_int64 mode)
{
    json_t *j = rowjson_result(&a->rs, mode);
    json_object_set_new(j, "row_count", json_integer((json_int_t)a->rs.nrows));
    json_object_set_new(j, "changes", json_integer((json_int_t)a->changes));
    json_object_set_new(j, "truncated", json_boolean(a->truncated));
    json_object_set_new(j, "ring_version", json_integer((json_int_t)a->ring_version));
    if (a->shard_id[0]) {
        json_object_set_new(j, "shard_id", json_string(a->shard_id));
        json_object_set_new(j, "served_by", json_string(a->replica ? "replica" : "primary"));
    }
    return j;
}

/* order_by / limit / aggregate / partial of a scatter query. */
typedef struct scatter_opts {
    merge_key keys[MAX_ORDER];
    merge_agg aggs[256];
    merge_spec spec;
    bool partial;
} scatter_opts;

static int scatter_opts_parse(http_req *r, json_t *body, scatter_opts *o)
{
    memset(o, 0, sizeof(*o));
    json_t *ob = json_object_get(body, "order_by");
    if (ob && (!json_is_array(ob) || json_array_size(ob) > MAX_ORDER))
        return http_reply_errorf(r, CITRUS_EBADJSON,
                                 "order_by: an array of at most %d "
                                 "{column, desc?}",
                                 MAX_ORDER),
               CITRUS_EBADJSON;
    for (size_t i = 0; ob && i < json_array_size(ob); i++) {
        json_t *k = json_array_get(ob, i);
        const char *col = json_string_value(json_object_get(k, "column"));
        json_t *desc = json_object_get(k, "desc");
        if (!col || (desc && !json_is_boolean(desc)))
            return http_reply_errorf(r, CITRUS_EBADJSON,
                                     "order_by[%zu]: {\"column\": name, \"desc\": bool}", i),
                   CITRUS_EBADJSON;
        o->keys[i] = (merge_key){col, json_is_true(desc)};
    }
    o->spec.order_by = ob ? o->keys : NULL;
    o->spec.norder = json_array_size(ob);
    json_t *lim = json_object_get(body, "limit");
    if (lim && (!json_is_integer(lim) || json_integer_value(lim) < 0))
        return http_reply_error(r, CITRUS_EBADJSON, "limit: a non-negative integer", NULL),
               CITRUS_EBADJSON;
    o->spec.limit = lim ? (size_t)json_integer_value(lim) : 0;
    json_t *ag = json_object_get(body, "aggregate");
    if (ag) {
        size_t n = json_is_array(ag) ? json_array_size(ag) : 1;
        if (n == 0 || n > 256)
            return http_reply_error(r, CITRUS_EBADJSON, "aggregate: a name or 1..256 names", NULL),
                   CITRUS_EBADJSON;
        for (size_t i = 0; i < n; i++) {
            const char *name = json_string_value(json_is_array(ag) ? json_array_get(ag, i) : ag);
            if (merge_agg_parse(name, &o->aggs[i]) < 0)
                return http_reply_errorf(r, CITRUS_EBADJSON,
                                         "aggregate: each must be count, sum, avg, min, max "
                                         "or first"),
                       CITRUS_EBADJSON;
        }
        o->spec.aggs = o->aggs;
        o->spec.naggs = n;
    }
    json_t *partial = json_object_get(body, "partial");
    if (partial && !json_is_boolean(partial))
        return http_reply_error(r, CITRUS_EBADJSON, "partial: a boolean", NULL), CITRUS_EBADJSON;
    o->partial = json_is_true(partial);
    return 0;
}

/* sql and params of an object ({sql, params?}); where names it in errors,
 * index is its place in a transaction (-1: not in one). A statement that
 * changes transaction or session state (core/sqlclass.h) is refused here,
 * before anything of the request runs: the router begins and ends every
 * transaction itself, so one COMMIT among a transaction's statements would
 * make it half applied, and a SET would stay on a pooled connection. */
static int statement_parse(http_req *r, json_t *obj, const char *where, long index,
                           const char **sql, value **params, size_t *n)
{
    *params = NULL;
    *n = 0;
    *sql = json_string_value(json_object_get(obj, "sql"));
    if (!*sql || !**sql)
        return http_reply_errorf(r, CITRUS_EBADJSON, "%ssql: required, a non-empty string", where),
               CITRUS_EBADJSON;
    const char *kind = sqlclass_txcontrol(*sql);
    if (kind) {
        errdetail e;
        errdetail_set(&e, CITRUS_ETXCONTROL,
                      "%s%s is not allowed: the router begins and ends transactions itself "
                      "(SET LOCAL, SET TRANSACTION and SET CONSTRAINTS are)",
                      where, kind);
        router_error_reply(r, &e, index);
        return CITRUS_ETXCONTROL;
    }
    errdetail err;
    int rc = rowjson_params(json_object_get(obj, "params"), MAX_PARAMS, params, n, &err);
    if (rc < 0)
        return http_reply_errorf(r, rc, "%sparams%s", where, err.message), rc;
    return 0;
}

#define MAX_TIMEOUT_MS 86400000 /* a day: the most router.max_query_timeout_ms may be */

/* Whether the client of a call went away (router_call.gone): its
 * statement is then cancelled rather than left holding a connection. */
static bool client_gone(void *req)
{
    return http_req_peer_closed(req);
}

/* timeout_ms into call (0 when absent: the router's default) and the check
 * that the client is still there; replies 400 when invalid or past
 * router.max_query_timeout_ms (refused rather than cut down, so a client
 * never believes it has more time than it gets). */
static int timeout_parse(http_req *r, const router *rt, json_t *body, router_call *call)
{
    json_t *t = json_object_get(body, "timeout_ms");
    int64_t max = router_max_timeout_ms(rt);
    if (!max || max > MAX_TIMEOUT_MS)
        max = MAX_TIMEOUT_MS;
    call->timeout_ms = 0;
    call->gone = client_gone;
    call->gone_ctx = r;
    if (!t)
        return 0;
    if (!json_is_integer(t) || json_integer_value(t) < 1)
        return http_reply_errorf(r, CITRUS_EBADJSON,
                                 "timeout_ms: an integer of 1..%lld (ms each statement may run)",
                                 (long long)max),
               CITRUS_EBADJSON;
    if (json_integer_value(t) > max)
        return http_reply_errorf(r, CITRUS_EBADJSON,
                                 "timeout_ms: %lld is more than this router allows a statement to "
                                 "run (router.max_query_timeout_ms: %lld ms)",
                                 (long long)json_integer_value(t), (long long)max),
               CITRUS_EBADJSON;
    call->timeout_ms = json_integer_value(t);
    return 0;
}

/* consistency, max_lag_ms and timeout_ms into rd; replies 400 when
 * invalid. */
static int call_parse(http_req *r, const router *rt, json_t *body, router_call *rd)
{
    rd->eventual = false;
    rd->max_lag_ms = -1;
    if (timeout_parse(r, rt, body, rd) < 0)
        return CITRUS_EBADJSON;
    json_t *c = json_object_get(body, "consistency");
    json_t *lag = json_object_get(body, "max_lag_ms");
    const char *name = json_string_value(c);
    if (c && (!name || (strcmp(name, "strong") != 0 && strcmp(name, "eventual") != 0)))
        return http_reply_error(r, CITRUS_EBADJSON,
                                "consistency: \"strong\" (the primary) or \"eventual\" (a replica "
                                "within max_lag_ms)",
                                NULL),
               CITRUS_EBADJSON;
    rd->eventual = name && strcmp(name, "eventual") == 0;
    if (lag && (!json_is_integer(lag) || json_integer_value(lag) < 0))
        return http_reply_error(r, CITRUS_EBADJSON, "max_lag_ms: a non-negative integer", NULL),
               CITRUS_EBADJSON;
    if (lag && !rd->eventual)
        return http_reply_error(r, CITRUS_EBADJSON,
                                "max_lag_ms: only with consistency \"eventual\"", NULL),
               CITRUS_EBADJSON;
    if (lag)
        rd->max_lag_ms = json_integer_value(lag);
    return 0;
}

#define MAX_KEYS 1000

/* {keys: [...]}: one statement for keys that share a shard. Replies to
 * bad keys itself; a router error is left in *e. */
static int query_keys(http_req *r, app *a, json_t *keys, const router_call *rd, const char *sql,
                      const value *params, size_t np, router_answer *ans, errdetail *e)
{
    size_t n = json_array_size(keys);
    if (!json_is_array(keys) || n == 0 || n > MAX_KEYS) {
        http_reply_errorf(r, CITRUS_EBADJSON, "keys: an array of 1..%d keys", MAX_KEYS);
        return CITRUS_EBADJSON;
    }
    const char **v = malloc(n * sizeof(*v));
    if (!v) {
        http_reply_error(r, CITRUS_ENOMEM, NULL, NULL);
        return CITRUS_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        v[i] = json_string_value(json_array_get(keys, i));
        if (!v[i] || !*v[i] || strlen(v[i]) > 1024) {
            free(v);
            http_reply_errorf(r, CITRUS_EBADJSON, "keys[%zu]: a string of 1..1024 bytes", i);
            return CITRUS_EBADJSON;
        }
        if (api_check_tenant(r, v[i]) < 0) {
            free(v);
            return CITRUS_EFORBIDDEN;
        }
    }
    int rc = router_query_keys(a->router, v, n, rd, sql, params, np, ans, e);
    free(v);
    return rc;
}

int api_query(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_query, ctx);
    app *a = ctx;
    json_t *body = router_body(r, a);
    if (!body)
        return CITRUS_EBADJSON;
    const char *sql;
    value *params = NULL;
    size_t np = 0;
    json_t *scatter = json_object_get(body, "scatter");
    int rc = CITRUS_EBADJSON;
    if (scatter && !json_is_boolean(scatter))
        http_reply_error(r, CITRUS_EBADJSON, "scatter: a boolean", NULL);
    else
        rc = statement_parse(r, body, "", -1, &sql, &params, &np);
    router_call rd;
    rowjson_int64 mode;
    if (rc == 0)
        rc = call_parse(r, a->router, body, &rd);
    if (rc == 0)
        rc = int64_parse(r, a->router, body, &mode);
    router_answer ans = {0};
    errdetail e = {0}; /* e.code set: the router's error, not yet replied */
    if (rc == 0 && json_is_true(scatter) && !principal_scatter_allowed(api_principal(r))) {
        rc = api_forbid(r,
                        "%s may not run a statement on every shard (scatter needs "
                        "sm-operator, or the tenant scope \"*\")",
                        api_principal(r)->name);
    } else if (rc == 0 && json_is_true(scatter)) {
        scatter_opts o;
        rc = scatter_opts_parse(r, body, &o);
        if (rc == 0)
            rc = router_scatter(a->router, &rd, sql, params, np, &o.spec, o.partial, &ans, &e);
    } else if (rc == 0 && json_object_get(body, "keys")) {
        rc = query_keys(r, a, json_object_get(body, "keys"), &rd, sql, params, np, &ans, &e);
    } else if (rc == 0) {
        const char *key = key_of(r, body);
        rc = key ? router_query_key(a->router, key, &rd, sql, params, np, &ans, &e)
                 : CITRUS_EBADJSON;
    }
    if (rc < 0 && e.code)
        router_error_reply(r, &e, -1);
    if (rc == 0) {
        json_t *out = answer_json(&ans, mode);
        if (ans.shards) { /* scatter */
            json_object_set(out, "shards", ans.shards);
            json_object_set(out, "missing", ans.missing);
        }
        catalog_header(r, &ans);
        router_answer_clear(&ans);
        http_reply_json(r, 200, out);
    }
    rowjson_params_free(params, np);
    json_decref(body);
    return rc;
}

int api_tx(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_tx, ctx);
    app *a = ctx;
    json_t *body = router_body(r, a);
    if (!body)
        return CITRUS_EBADJSON;
    json_t *stmts = json_object_get(body, "statements");
    size_t n = json_array_size(stmts);
    const char *key = NULL;
    int rc = CITRUS_EBADJSON;
    if (!(key = key_of(r, body)))
        ;
    else if (!json_is_array(stmts) || n == 0 || n > MAX_STATEMENTS)
        http_reply_errorf(r, CITRUS_EBADJSON, "statements: an array of 1..%d {sql, params?}",
                          MAX_STATEMENTS);
    else
        rc = 0;
    router_stmt *v = rc == 0 ? calloc(n, sizeof(*v)) : NULL;
    router_answer *ans = rc == 0 ? calloc(n, sizeof(*ans)) : NULL;
    if (rc == 0 && (!v || !ans)) {
        http_reply_error(r, CITRUS_ENOMEM, NULL, NULL);
        rc = CITRUS_ENOMEM;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char where[40];
        snprintf(where, sizeof(where), "statements[%zu].", i);
        rc = statement_parse(r, json_array_get(stmts, i), where, (long)i, &v[i].sql, &v[i].params,
                             &v[i].nparams);
    }
    router_call call = {0};
    rowjson_int64 mode;
    if (rc == 0)
        rc = timeout_parse(r, a->router, body, &call);
    if (rc == 0)
        rc = int64_parse(r, a->router, body, &mode);
    long failed = -1;
    errdetail e = {0};
    if (rc == 0 && (rc = router_tx(a->router, key, &call, v, n, ans, &failed, &e)) < 0)
        router_error_reply(r, &e, failed);
    if (rc == 0) {
        json_t *results = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(results, answer_json(&ans[i], mode));
        catalog_header(r, &ans[0]);
        http_reply_json(r, 200,
                        json_pack("{s:s,s:o,s:I}", "shard_id", ans[0].shard_id, "results", results,
                                  "ring_version", (json_int_t)ans[0].ring_version));
        for (size_t i = 0; i < n; i++)
            router_answer_clear(&ans[i]);
    }
    for (size_t i = 0; v && i < n; i++)
        rowjson_params_free(v[i].params, v[i].nparams);
    free(v);
    free(ans);
    json_decref(body);
    return rc;
}
