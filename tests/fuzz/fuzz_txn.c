/* tests/fuzz/fuzz_txn.c — the POST /v1/txn body parser (api/txn.c).
 *
 * api_txn reads its body through http/server.h and writes through the store
 * interface, so this target links api/txn.c with a fake of every server.h
 * function (below; the real http/server.c is not linked) and a fake store
 * (store_ops). The input is the request body.
 *
 * Invariants: no crash or leak; exactly one response per request; every
 * error response is {"error":{"code","message"}} with a 4xx status (bad
 * input is never a server error here) and a UTF-8 message; the store is
 * called only for bodies that pass parsing, and then with at most 128 items
 * per list, valid keys (prefixes where "prefix" is true), values within
 * max_value_bytes, and keys, values and kinds equal to what the JSON body
 * says; a 200 answer carries one result per op of the branch that ran. */
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/handlers.h"
#include "catalog/store.h"
#include "check.h"
#include "citrus/errors.h"
#include "core/key.h"
#include "core/utf8.h"
#include "wire/base64.h"
#include "http/server.h"

#define MAX_VALUE_BYTES 64

/* ---------------- the fake request (http/server.h) ---------------- */

struct http_req {
    const unsigned char *body;
    size_t body_len;
    int replies;
    unsigned status;
    json_t *answer; /* the JSON sent, kept for checks */
    http_resume_fn on_resume;
    void *resume_ctx;
    bool suspended, resumed;
    bool offloaded; /* http_offload ran the handler (inline) */
};

const char *http_req_method(const http_req *r)
{
    return "POST";
}
const char *http_req_path(const http_req *r)
{
    return "/v1/txn";
}
const char *http_req_param(const http_req *r, const char *name)
{
    return NULL;
}
const char *http_req_query(const http_req *r, const char *name)
{
    return NULL;
}
const char *http_req_header(const http_req *r, const char *name)
{
    return NULL;
}

const unsigned char *http_req_body(const http_req *r, size_t *len)
{
    *len = r->body_len;
    return r->body;
}

/* As http/server.c: empty and malformed bodies get 400 bad_json. */
json_t *http_req_json(http_req *r)
{
    json_error_t err;
    if (r->body_len == 0) {
        http_reply_error(r, CITRUS_EBADJSON, "request body must be a JSON document", NULL);
        return NULL;
    }
    json_t *j = json_loadb((const char *)r->body, r->body_len, JSON_REJECT_DUPLICATES, &err);
    if (!j)
        http_reply_errorf(r, CITRUS_EBADJSON, "malformed JSON at line %d column %d: %s", err.line,
                          err.column, err.text);
    return j;
}

int http_req_query_int(http_req *r, const char *name, int64_t def, int64_t *out)
{
    *out = def;
    return 0;
}

int http_req_query_bool(http_req *r, const char *name, bool def, bool *out)
{
    *out = def;
    return 0;
}

void http_add_header(http_req *r, const char *name, const char *value)
{
}

int http_reply_json(http_req *r, unsigned status, json_t *body)
{
    FUZZ_CHECK(r->replies == 0, "a second response (status %u after %u)", status, r->status);
    FUZZ_CHECK(body != NULL, "response body is NULL (status %u): the server would send 500",
               status);
    r->replies++;
    r->status = status;
    r->answer = body;
    return 0;
}

int http_reply_raw(http_req *r, unsigned status, const char *content_type, const void *data,
                   size_t len)
{
    FUZZ_CHECK(r->replies == 0, "a second response (status %u)", status);
    r->replies++;
    r->status = status;
    return 0;
}

int http_reply_take(http_req *r, unsigned status, const char *content_type, char *data, size_t len)
{
    FUZZ_CHECK(r->replies == 0, "a second response (status %u)", status);
    free(data);
    r->replies++;
    r->status = status;
    return 0;
}

/* As http/server.c: {"error":{"code","message"}}, the message made UTF-8. */
json_t *http_error_body(int err, const char *message, json_t *extra)
{
    const char *m = message ? message : citrus_strerror(err);
    char *clean = malloc(strlen(m) + 1);
    FUZZ_CHECK(clean != NULL, "out of memory");
    utf8_sanitize(m, clean);
    json_t *e = json_object();
    json_object_set_new(e, "code", json_string(citrus_err_code(err)));
    json_object_set_new(e, "message", json_string(clean));
    free(clean);
    if (extra) {
        json_object_update(e, extra);
        json_decref(extra);
    }
    json_t *body = json_object();
    json_object_set_new(body, "error", e);
    return body;
}

int http_reply_error(http_req *r, int err, const char *message, json_t *extra)
{
    return http_reply_json(r, (unsigned)citrus_err_http_status(err),
                           http_error_body(err, message, extra));
}

int http_reply_errorf(http_req *r, int err, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return http_reply_error(r, err, msg, NULL);
}

/* The handler runs inline here: nothing blocks in the fuzzer. */
int http_offload(http_req *r, http_handler fn, void *ctx)
{
    FUZZ_CHECK(!r->offloaded, "offloaded twice");
    r->offloaded = true;
    return fn(r, ctx);
}

bool http_offloaded(const http_req *r)
{
    return r->offloaded;
}

void http_suspend(http_req *r, http_resume_fn on_resume, void *ctx)
{
    FUZZ_CHECK(!r->suspended, "suspended twice");
    r->suspended = true;
    r->on_resume = on_resume;
    r->resume_ctx = ctx;
}

/* The txn route's hooks do not use it (only publish and replay do); as
 * http_suspend here, so that the library's own definition is not linked. */
void http_suspend_to_pool(http_req *r, http_resume_fn on_resume, void *ctx)
{
    http_suspend(r, on_resume, ctx);
}

void http_resume(http_req *r)
{
    FUZZ_CHECK(r->suspended && !r->resumed, "resume without a suspension");
    r->resumed = true;
}

int http_reply_stream(http_req *r, const char *content_type, http_stream_fn fn, void *ctx,
                      void (*free_fn)(void *ctx))
{
    FUZZ_CHECK(false, "api_txn started a stream");
    return 0;
}

void http_stream_wake(http_req *r)
{
}

int http_server_start(const http_server_options *opts, const http_route *routes, size_t nroutes,
                      void *app, http_server **out, errdetail *e)
{
    FUZZ_CHECK(false, "http_server_start called");
    return CITRUS_EINTERNAL;
}

unsigned http_server_port(const http_server *s)
{
    return 0;
}
void http_server_stop(http_server *s)
{
}

/* The gate's accessors (api/gate.c, api/audit.c): the harness runs the
 * handler without a gate, so the request has no principal (mode none). */
void *http_req_principal(const http_req *r)
{
    return NULL;
}

void http_req_set_principal(http_req *r, void *principal, void (*free_fn)(void *))
{
    FUZZ_CHECK(false, "http_req_set_principal called");
}

bool http_req_peer_ipv4(const http_req *r, uint32_t *ip)
{
    return false;
}

void http_req_peer(const http_req *r, char *buf, size_t len)
{
    snprintf(buf, len, "fuzz");
}

const char *http_req_correlation(const http_req *r)
{
    return "fuzz";
}

const http_route *http_req_route(const http_req *r)
{
    return NULL;
}

void http_run_handler(http_req *r)
{
    FUZZ_CHECK(false, "http_run_handler called");
}

bool http_req_gone(const http_req *r)
{
    return false;
}

bool http_req_peer_closed(const http_req *r)
{
    return false;
}

size_t http_req_tls_subjects(const http_req *r, const char **out, size_t max)
{
    return 0;
}

int http_server_bind(const http_server_options *opts, const http_route *routes, size_t nroutes,
                     void *app, http_server **out, errdetail *e)
{
    FUZZ_CHECK(false, "http_server_bind called");
    return CITRUS_EINTERNAL;
}

int http_server_serve(http_server *s, errdetail *e)
{
    FUZZ_CHECK(false, "http_server_serve called");
    return CITRUS_EINTERNAL;
}

/* ---------------- the fake store ---------------- */

static json_t *g_body; /* the request body as the harness parsed it */
static int g_store_calls;

/* The JSON value of member name of list[i], or NULL. */
static json_t *member(const char *list, size_t i, const char *name)
{
    return json_object_get(json_array_get(json_object_get(g_body, list), i), name);
}

/* Checks value/len against "value" or the decoded "value_b64" of list[i]. */
static void check_value(const char *list, size_t i, const unsigned char *val, size_t len)
{
    FUZZ_CHECK(len <= MAX_VALUE_BYTES, "%s[%zu]: a value of %zu bytes reached the store", list, i,
               len);
    FUZZ_CHECK(len == 0 || val != NULL, "%s[%zu]: NULL value of %zu bytes", list, i, len);
    json_t *v = member(list, i, "value"), *b = member(list, i, "value_b64");
    if (v) {
        FUZZ_CHECK(len == json_string_length(v) && memcmp(val, json_string_value(v), len) == 0,
                   "%s[%zu]: value differs from the body", list, i);
    } else if (b) {
        size_t n;
        unsigned char *d = base64_decode(json_string_value(b), json_string_length(b), &n);
        FUZZ_CHECK(d && n == len && memcmp(val, d, len) == 0,
                   "%s[%zu]: value differs from the decoded value_b64", list, i);
        free(d);
    } else {
        FUZZ_CHECK(len == 0, "%s[%zu]: a value that the body does not give", list, i);
    }
}

static void check_key(const char *list, size_t i, const char *key, bool prefix)
{
    const char *why;
    FUZZ_CHECK(key != NULL, "%s[%zu]: NULL key", list, i);
    int rc =
        prefix ? key_validate_prefix(key, strlen(key), &why) : key_validate(key, strlen(key), &why);
    FUZZ_CHECK(rc == 0, "%s[%zu]: invalid key reached the store: %s", list, i, why);
    json_t *k = member(list, i, "key");
    FUZZ_CHECK(json_is_string(k) && strcmp(json_string_value(k), key) == 0,
               "%s[%zu]: key differs from the body", list, i);
}

static void check_ops(const char *list, const kv_op *ops, size_t n)
{
    FUZZ_CHECK(n == json_array_size(json_object_get(g_body, list)), "%s: %zu ops of %zu", list, n,
               json_array_size(json_object_get(g_body, list)));
    for (size_t i = 0; i < n; i++) {
        const kv_op *op = &ops[i];
        const char *kind = json_string_value(member(list, i, "op"));
        FUZZ_CHECK(kind != NULL, "%s[%zu]: no op", list, i);
        static const char *const kinds[] = {"put", "delete", "get"};
        FUZZ_CHECK(op->type <= KV_OP_GET && strcmp(kinds[op->type], kind) == 0,
                   "%s[%zu]: op %d for '%s'", list, i, (int)op->type, kind);
        check_key(list, i, op->key, op->type != KV_OP_PUT && op->prefix);
        FUZZ_CHECK(op->prefix == json_is_true(member(list, i, "prefix")) || op->type == KV_OP_PUT,
                   "%s[%zu]: prefix flag differs from the body", list, i);
        if (op->type == KV_OP_PUT) {
            check_value(list, i, op->value, op->value_len);
            FUZZ_CHECK(op->lease >= 0, "%s[%zu]: negative lease", list, i);
        }
        if (op->after)
            FUZZ_CHECK(strcmp(op->after, json_string_value(member(list, i, "after"))) == 0,
                       "%s[%zu]: after differs from the body", list, i);
    }
}

static int fake_txn(store *s, const kv_txn *t, kv_txn_res *out)
{
    g_store_calls++;
    FUZZ_CHECK(t->ncompares <= 128 && t->nsuccess <= 128 && t->nfailure <= 128,
               "oversized txn: %zu/%zu/%zu", t->ncompares, t->nsuccess, t->nfailure);
    FUZZ_CHECK(t->ncompares == json_array_size(json_object_get(g_body, "compare")),
               "%zu compares of %zu", t->ncompares,
               json_array_size(json_object_get(g_body, "compare")));
    for (size_t i = 0; i < t->ncompares; i++) {
        const kv_compare *c = &t->compares[i];
        check_key("compare", i, c->key, false);
        FUZZ_CHECK(c->target <= KV_CMP_LEASE && c->op <= KV_CMP_GT, "compare[%zu]: bad enum", i);
        if (c->target == KV_CMP_VALUE)
            check_value("compare", i, c->value, c->value_len);
    }
    check_ops("success", t->success, t->nsuccess);
    check_ops("failure", t->failure, t->nfailure);

    /* Some outcome that depends on the input, errors included. */
    bool ok = t->ncompares % 2 == 0;
    const kv_op *ops = ok ? t->success : t->failure;
    size_t n = ok ? t->nsuccess : t->nfailure;
    for (size_t i = 0; i < n; i++)
        if (ops[i].type == KV_OP_PUT && ops[i].lease == 13)
            return CITRUS_ENOLEASE;
    memset(out, 0, sizeof(*out));
    out->succeeded = ok;
    out->revision = 7;
    out->results = calloc(n ? n : 1, sizeof(*out->results));
    FUZZ_CHECK(out->results != NULL, "out of memory");
    out->count = n;
    for (size_t i = 0; i < n; i++) {
        kv_op_result *res = &out->results[i];
        res->type = ops[i].type;
        res->create_revision = res->mod_revision = res->version = 1;
        res->deleted = 1;
        if (ops[i].type == KV_OP_GET) {
            res->range.revision = 7;
            res->range.items = calloc(1, sizeof(kv_entry));
            FUZZ_CHECK(res->range.items != NULL, "out of memory");
            res->range.count = 1;
            res->range.items[0].key = strdup(ops[i].key[0] ? ops[i].key : "k");
            res->range.items[0].value = (unsigned char *)strdup("v");
            res->range.items[0].value_len = 1;
            res->range.items[0].version = 1;
        }
    }
    return 0;
}

static const store_ops fake_ops = {.txn = fake_txn};
static store fake_store = {.ops = &fake_ops};

/* ---------------- the target ---------------- */

static void check_answer(const http_req *r)
{
    FUZZ_CHECK(r->replies == 1, "%d responses", r->replies);
    json_t *a = r->answer;
    if (r->status == 200) {
        FUZZ_CHECK(g_store_calls == 1, "200 without a store call");
        json_t *results = json_object_get(a, "results");
        FUZZ_CHECK(json_is_boolean(json_object_get(a, "succeeded")) && json_is_array(results),
                   "200 answer without succeeded/results");
        const char *branch = json_is_true(json_object_get(a, "succeeded")) ? "success" : "failure";
        FUZZ_CHECK(json_array_size(results) == json_array_size(json_object_get(g_body, branch)),
                   "%zu results for the %s branch", json_array_size(results), branch);
        return;
    }
    FUZZ_CHECK(r->status >= 400 && r->status < 500, "status %u for bad input", r->status);
    json_t *e = json_object_get(a, "error");
    FUZZ_CHECK(json_is_string(json_object_get(e, "code")), "error without a code");
    FUZZ_CHECK(json_is_string(json_object_get(e, "message")), "error without a message");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static reader *rd; /* the floor a successful txn raises; lives for the run */
    if (!rd) {
        reader_options ro = {.st = &fake_store};
        rd = reader_new(&ro);
    }
    app a = {.st = &fake_store, .max_value_bytes = MAX_VALUE_BYTES, .node_id = "fuzz", .rd = rd};
    http_req r = {.body = data, .body_len = size};
    g_store_calls = 0;
    g_body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    api_txn(&r, &a);
    if (r.suspended) {
        FUZZ_CHECK(r.resumed, "suspended and never resumed");
        r.on_resume(&r, r.resume_ctx);
    }
    check_answer(&r);
    json_decref(r.answer);
    json_decref(g_body);
    return 0;
}
