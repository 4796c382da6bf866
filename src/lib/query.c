/* lib/query.c — statements through the router: citrus_query (POST
 * /v1/query), citrus_tx (POST /v1/tx), citrus_scatter, and the typed
 * parameters they bind. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "wire/rowjson.h"
#include "lib/handle.h"
#include "lib/result.h"

citrus_param citrus_param_null(void)
{
    return (citrus_param){.type = CITRUS_NULL};
}

citrus_param citrus_param_int(int64_t v)
{
    return (citrus_param){.type = CITRUS_INT, .u.i = v};
}

citrus_param citrus_param_real(double v)
{
    return (citrus_param){.type = CITRUS_REAL, .u.d = v};
}

citrus_param citrus_param_bool(int v)
{
    return (citrus_param){.type = CITRUS_BOOL, .u.b = v != 0};
}

citrus_param citrus_param_textn(const char *s, size_t len)
{
    return (citrus_param){.type = CITRUS_TEXT, .u.s = {s, len}};
}

citrus_param citrus_param_text(const char *s)
{
    return s ? citrus_param_textn(s, strlen(s)) : citrus_param_null();
}

citrus_param citrus_param_blob(const void *p, size_t len)
{
    return (citrus_param){.type = CITRUS_BLOB, .u.s = {p, len}};
}

/* The parameter as a core value borrowing its bytes (for rowjson_value,
 * which only reads it). */
static value as_value(const citrus_param *p)
{
    value v = {.type = VAL_NULL};
    switch (p->type) {
    case CITRUS_INT:
        v = val_int(p->u.i);
        break;
    case CITRUS_REAL:
        v = val_real(p->u.d);
        break;
    case CITRUS_BOOL:
        v = val_bool(p->u.b != 0);
        break;
    case CITRUS_TEXT:
    case CITRUS_BLOB:
        v.type = p->type == CITRUS_TEXT ? VAL_TEXT : VAL_BLOB;
        v.u.s.p = (char *)p->u.s.p;
        v.u.s.len = p->u.s.len;
        break;
    case CITRUS_NULL:
        break;
    }
    return v;
}

/* {sql, params} of one statement into obj. */
static int add_statement(json_t *obj, const char *sql, const citrus_param *params, size_t n,
                         citrus_error *err)
{
    if (!sql || !*sql)
        return conns_fail(err, CITRUS_EINVAL, "sql is required");
    if (n && !params)
        return conns_fail(err, CITRUS_EINVAL, "params is NULL but nparams is %zu", n);
    json_t *a = json_array();
    json_object_set_new(obj, "sql", json_string(sql));
    json_object_set_new(obj, "params", a);
    for (size_t i = 0; i < n; i++) {
        bool bytes = params[i].type == CITRUS_TEXT || params[i].type == CITRUS_BLOB;
        if (params[i].type > CITRUS_BLOB || (bytes && params[i].u.s.len && !params[i].u.s.p))
            return conns_fail(err, CITRUS_EINVAL, "params[%zu]: not a valid parameter", i);
        value v = as_value(&params[i]);
        json_t *j = rowjson_value(&v);
        if (!j || json_array_append_new(a, j) < 0)
            return conns_fail(err, CITRUS_EINVAL,
                              "params[%zu]: text must be UTF-8 (send bytes as a blob)", i);
    }
    if (!json_is_string(json_object_get(obj, "sql")))
        return conns_fail(err, CITRUS_EINVAL, "sql must be UTF-8");
    return 0;
}

static int add_opts(json_t *body, const citrus_query_opts *o, citrus_error *err)
{
    if (!o)
        return 0;
    if (o->consistency != CITRUS_STRONG && o->consistency != CITRUS_EVENTUAL)
        return conns_fail(err, CITRUS_EINVAL, "consistency must be strong or eventual");
    if (o->max_lag_ms < 0)
        return conns_fail(err, CITRUS_EINVAL, "max_lag_ms must not be negative");
    if (o->consistency == CITRUS_EVENTUAL)
        json_object_set_new(body, "consistency", json_string("eventual"));
    if (o->max_lag_ms > 0)
        json_object_set_new(body, "max_lag_ms", json_integer(o->max_lag_ms));
    return 0;
}

/* POSTs body to the router; the 2xx answer's JSON, or NULL with err.
 * The body carries 90 % of the request timeout as each statement's
 * timeout_ms: the router cancels a statement this client is about to stop
 * waiting for, and answers query_timeout before the request times out. */
static json_t *post(citrus_client *c, const char *path, json_t *body, citrus_error *err)
{
    if (!c->router) {
        conns_fail(err, CITRUS_EINVAL, "no router configured (citrus_options.router_url)");
        return NULL;
    }
    long limit = c->request_ms - c->request_ms / 10;
    json_object_set_new(body, "timeout_ms", json_integer(limit > 0 ? limit : 1));
    client_response resp;
    int rc = conns_request(c->conns, c->router, "POST", path, body, &resp, err);
    json_t *j = rc == 0 ? conns_answer_json(&resp, err) : NULL;
    client_response_free(&resp);
    return j;
}

static int one_statement(citrus_client *c, json_t *body, const char *sql,
                         const citrus_param *params, size_t nparams, const citrus_query_opts *opts,
                         citrus_result **out, citrus_error *err)
{
    citrus_error local;
    if (!err)
        err = &local;
    *out = NULL;
    int rc = body ? add_statement(body, sql, params, nparams, err)
                  : conns_fail(err, CITRUS_ENOMEM, "out of memory");
    if (rc == 0)
        rc = add_opts(body, opts, err);
    json_t *j = rc == 0 ? post(c, "/v1/query", body, err) : NULL;
    if (rc == 0 && !j)
        rc = err->code;
    if (rc == 0 && !(*out = result_from_json(j, NULL, 0, err)))
        rc = err->code;
    json_decref(j);
    json_decref(body);
    return rc;
}

int citrus_query(citrus_client *c, const char *key, const char *sql, const citrus_param *params,
                 size_t nparams, const citrus_query_opts *opts, citrus_result **out,
                 citrus_error *err)
{
    *out = NULL;
    if (handle_key_len(key, err) == 0)
        return CITRUS_EINVAL;
    return one_statement(c, json_pack("{s:s}", "key", key), sql, params, nparams, opts, out, err);
}

int citrus_scatter(citrus_client *c, const char *sql, const citrus_param *params, size_t nparams,
                   const citrus_query_opts *opts, citrus_result **out, citrus_error *err)
{
    return one_statement(c, json_pack("{s:b}", "scatter", 1), sql, params, nparams, opts, out, err);
}

int citrus_tx(citrus_client *c, const char *key, const citrus_stmt *stmts, size_t n,
              citrus_result **out, citrus_error *err)
{
    citrus_error local;
    if (!err)
        err = &local;
    if (handle_key_len(key, err) == 0)
        return CITRUS_EINVAL;
    if (!stmts || n == 0 || n > 100 || !out)
        return conns_fail(err, CITRUS_EINVAL, "1..100 statements and room for their results");
    json_t *body = json_pack("{s:s,s:[]}", "key", key, "statements");
    if (!body)
        return conns_fail(err, CITRUS_ENOMEM, "out of memory");
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *st = json_object();
        json_array_append_new(json_object_get(body, "statements"), st);
        rc = add_statement(st, stmts[i].sql, stmts[i].params, stmts[i].nparams, err);
        if (rc < 0)
            err->statement = (long)i;
    }
    json_t *j = rc == 0 ? post(c, "/v1/tx", body, err) : NULL;
    json_decref(body);
    if (rc == 0 && !j)
        rc = err->code;
    json_t *results = json_object_get(j, "results");
    if (rc == 0 && json_array_size(results) != n)
        rc = conns_fail(err, CITRUS_ECORRUPT, "unexpected answer: %zu results for %zu statements",
                        json_array_size(results), n);
    const char *sid = json_string_value(json_object_get(j, "shard_id"));
    int64_t rv = json_integer_value(json_object_get(j, "ring_version"));
    size_t done = 0;
    for (; rc == 0 && done < n; done++)
        if (!(out[done] = result_from_json(json_array_get(results, done), sid, rv, err)))
            rc = err->code;
    for (size_t i = 0; rc < 0 && i < done; i++) {
        citrus_result_free(out[i]);
        out[i] = NULL;
    }
    json_decref(j);
    return rc;
}
