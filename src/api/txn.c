/* api/txn.c — POST /v1/txn: compares, then success or failure ops, atomically.
 *
 * Body: {"compare":[{"key","target","op","value"|"value_b64"|"number"|"exists"}],
 *        "success":[op...], "failure":[op...]}
 * op:   {"op":"put","key","value"|"value_b64","lease"} | {"op":"delete","key","prefix"}
 *     | {"op":"get","key","prefix","limit","after","keys_only"} */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/handlers.h"
#include "api/kvreq.h"
#include "api/write.h"
#include "citrus/errors.h"
#include "wire/base64.h"
#include "wire/kvjson.h"

#define TXN_MAX_ITEMS 128

typedef struct txn_parse {
    api_write w;  /* first: the completion gets &w */
    json_t *body; /* the request; parsed strings point into it */
    kv_txn txn;
    http_req *r;
    app *a;
    kv_compare cmps[TXN_MAX_ITEMS];
    kv_op succ[TXN_MAX_ITEMS], fail[TXN_MAX_ITEMS];
    size_t ncmp, nsucc, nfail;
    unsigned char *bufs[3 * TXN_MAX_ITEMS]; /* decoded base64 values, freed at the end */
    size_t nbufs;
} txn_parse;

static int bad(txn_parse *p, const char *where, size_t i, const char *what)
{
    http_reply_errorf(p->r, CITRUS_EBADJSON, "%s[%zu]: %s", where, i, what);
    return CITRUS_EBADJSON;
}

/* Reads "value" (text) or "value_b64" into val and len. Absent gives "". */
static int parse_value(txn_parse *p, json_t *o, const char *where, size_t i,
                       const unsigned char **val, size_t *len)
{
    json_t *v = json_object_get(o, "value"), *b = json_object_get(o, "value_b64");
    *val = (const unsigned char *)"";
    *len = 0;
    if (v && b)
        return bad(p, where, i, "give either value or value_b64");
    if (v) {
        if (!json_is_string(v))
            return bad(p, where, i, "value must be a string");
        *val = (const unsigned char *)json_string_value(v);
        *len = json_string_length(v);
    } else if (b) {
        if (!json_is_string(b))
            return bad(p, where, i, "value_b64 must be a string");
        unsigned char *d = base64_decode(json_string_value(b), json_string_length(b), len);
        if (!d)
            return bad(p, where, i, "value_b64 is not valid base64");
        p->bufs[p->nbufs++] = d;
        *val = d;
    }
    if (*len > p->a->max_value_bytes) {
        http_reply_errorf(p->r, CITRUS_ETOOBIGVAL, "%s[%zu]: value over the limit of %zu bytes",
                          where, i, p->a->max_value_bytes);
        return CITRUS_ETOOBIGVAL;
    }
    return 0;
}

static int parse_key(txn_parse *p, json_t *o, const char *where, size_t i, bool prefix,
                     const char **key)
{
    json_t *k = json_object_get(o, "key");
    if (!json_is_string(k))
        return bad(p, where, i, "key must be a string");
    *key = json_string_value(k);
    if (strlen(*key) != json_string_length(k))
        return http_reply_errorf(p->r, CITRUS_EBADKEY, "%s[%zu]: key contains NUL", where, i),
               CITRUS_EBADKEY;
    return kvreq_check_key(p->r, *key, prefix);
}

static int opt_bool(txn_parse *p, json_t *o, const char *name, const char *where, size_t i,
                    bool *out)
{
    json_t *v = json_object_get(o, name);
    *out = false;
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return bad(p, where, i, "flag must be true or false");
    *out = json_is_true(v);
    return 0;
}

static int opt_int(txn_parse *p, json_t *o, const char *name, const char *where, size_t i,
                   int64_t *out)
{
    json_t *v = json_object_get(o, name);
    *out = 0;
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return bad(p, where, i, "number must be a non-negative integer");
    *out = json_integer_value(v);
    return 0;
}

static const char *const targets[] = {
    "value", "mod_revision", "create_revision", "version", "lease", "exists", NULL};
static const char *const cmp_ops[] = {"eq", "ne", "lt", "gt", NULL};

static int lookup(const char *const *names, const char *s)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

/* Refuses members other than the allowed ones, so a typo ("valeu") is an
 * error rather than a silently different request. */
static int check_fields(txn_parse *p, json_t *o, const char *where, size_t i,
                        const char *const *allowed)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        if (lookup(allowed, k) < 0) {
            http_reply_errorf(p->r, CITRUS_EBADJSON, "%s[%zu]: unknown field '%.64s'", where, i, k);
            return CITRUS_EBADJSON;
        }
    }
    return 0;
}

static int parse_compare(txn_parse *p, json_t *o, size_t i, kv_compare *c)
{
    static const char *const fields[] = {"key",       "target", "op",     "value",
                                         "value_b64", "number", "exists", NULL};
    if (!json_is_object(o))
        return bad(p, "compare", i, "must be an object");
    int rc = check_fields(p, o, "compare", i, fields);
    if (rc == 0)
        rc = parse_key(p, o, "compare", i, false, &c->key);
    if (rc < 0)
        return rc;
    json_t *opj = json_object_get(o, "op");
    if (opj && !json_is_string(opj))
        return bad(p, "compare", i, "op must be eq, ne, lt or gt");
    const char *t = json_string_value(json_object_get(o, "target"));
    const char *op = json_string_value(opj);
    int ti = t ? lookup(targets, t) : -1;
    int oi = op ? lookup(cmp_ops, op) : 0;
    if (ti < 0)
        return bad(p, "compare", i,
                   "target must be value, mod_revision, create_revision, "
                   "version, lease or exists");
    if (oi < 0)
        return bad(p, "compare", i, "op must be eq, ne, lt or gt");
    c->op = (kv_cmp_op)oi;
    if (ti == 0) {
        c->target = KV_CMP_VALUE;
        return parse_value(p, o, "compare", i, &c->value, &c->value_len);
    }
    if (ti == 5) { /* exists: sugar for version > 0 / version == 0 */
        bool ex = true;
        json_t *v = json_object_get(o, "exists");
        if (v && !json_is_boolean(v))
            return bad(p, "compare", i, "exists must be true or false");
        ex = v ? json_is_true(v) : true;
        c->target = KV_CMP_VERSION;
        c->op = ex ? KV_CMP_GT : KV_CMP_EQ;
        c->number = 0;
        return 0;
    }
    static const kv_cmp_target map[] = {KV_CMP_VALUE, KV_CMP_MOD, KV_CMP_CREATE, KV_CMP_VERSION,
                                        KV_CMP_LEASE};
    c->target = map[ti];
    json_t *n = json_object_get(o, "number");
    if (!json_is_integer(n))
        return bad(p, "compare", i, "number must be an integer");
    c->number = json_integer_value(n);
    return 0;
}

static int parse_op(txn_parse *p, json_t *o, const char *where, size_t i, kv_op *op)
{
    if (!json_is_object(o))
        return bad(p, where, i, "must be an object");
    const char *kind = json_string_value(json_object_get(o, "op"));
    if (!kind)
        return bad(p, where, i, "op must be put, delete or get");
    static const char *const put_fields[] = {"op", "key", "value", "value_b64", "lease", NULL};
    static const char *const del_fields[] = {"op", "key", "prefix", NULL};
    static const char *const get_fields[] = {"op",    "key",       "prefix", "limit",
                                             "after", "keys_only", NULL};
    int rc;
    int64_t n;
    if (strcmp(kind, "put") == 0) {
        op->type = KV_OP_PUT;
        if ((rc = check_fields(p, o, where, i, put_fields)) < 0 ||
            (rc = parse_key(p, o, where, i, false, &op->key)) < 0 ||
            (rc = parse_value(p, o, where, i, &op->value, &op->value_len)) < 0 ||
            (rc = opt_int(p, o, "lease", where, i, &op->lease)) < 0)
            return rc;
        return 0;
    }
    if (strcmp(kind, "delete") == 0 || strcmp(kind, "get") == 0) {
        op->type = kind[0] == 'd' ? KV_OP_DELETE : KV_OP_GET;
        if ((rc = check_fields(p, o, where, i,
                               op->type == KV_OP_DELETE ? del_fields : get_fields)) < 0 ||
            (rc = opt_bool(p, o, "prefix", where, i, &op->prefix)) < 0 ||
            (rc = parse_key(p, o, where, i, op->prefix, &op->key)) < 0 ||
            (rc = opt_bool(p, o, "keys_only", where, i, &op->keys_only)) < 0 ||
            (rc = opt_int(p, o, "limit", where, i, &n)) < 0)
            return rc;
        op->limit = (size_t)n;
        json_t *after = json_object_get(o, "after");
        if (after && !json_is_string(after))
            return bad(p, where, i, "after must be a string");
        op->after = json_string_value(after);
        return 0;
    }
    return bad(p, where, i, "op must be put, delete or get");
}

static int parse_list(txn_parse *p, json_t *body, const char *name, size_t *count, kv_compare *cmps,
                      kv_op *ops)
{
    json_t *arr = json_object_get(body, name);
    *count = 0;
    if (!arr)
        return 0;
    if (!json_is_array(arr)) {
        http_reply_errorf(p->r, CITRUS_EBADJSON, "%s must be an array", name);
        return CITRUS_EBADJSON;
    }
    if (json_array_size(arr) > TXN_MAX_ITEMS) {
        http_reply_errorf(p->r, CITRUS_ETOOMANY, "%s has more than %d items", name, TXN_MAX_ITEMS);
        return CITRUS_ETOOMANY;
    }
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        int rc = cmps ? parse_compare(p, o, i, &cmps[i]) : parse_op(p, o, name, i, &ops[i]);
        if (rc < 0)
            return rc;
        (*count)++;
    }
    return 0;
}

static json_t *op_result_json(const kv_op_result *res, const kv_op *op)
{
    switch (res->type) {
    case KV_OP_PUT:
        return json_pack("{s:s,s:s,s:I,s:I,s:I}", "op", "put", "key", op->key, "create_revision",
                         (json_int_t)res->create_revision, "mod_revision",
                         (json_int_t)res->mod_revision, "version", (json_int_t)res->version);
    case KV_OP_DELETE:
        return json_pack("{s:s,s:I}", "op", "delete", "deleted", (json_int_t)res->deleted);
    case KV_OP_GET:
    default:
        return json_pack("{s:s,s:o,s:b}", "op", "get", "items",
                         kvjson_items_encode(&res->range, !op->keys_only), "more", res->range.more);
    }
}

static void txn_parse_free(txn_parse *p)
{
    for (size_t i = 0; i < p->nbufs; i++)
        free(p->bufs[i]);
    json_decref(p->body);
    free(p);
}

static void txn_done(api_write *w, http_req *r, int rc)
{
    txn_parse *p = (txn_parse *)w;
    kv_txn_res *res = &w->res;
    if (rc == CITRUS_EINVAL) {
        api_write_fail(w, r, rc, "a txn branch may not write the same key twice", NULL);
    } else if (rc == CITRUS_ERESPTOOBIG) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "the gets would answer more than server.max_response_bytes (%zu); nothing was "
                 "applied: read with limit/after or GET ?prefix pages",
                 p->a->max_response_bytes);
        api_write_fail(w, r, rc, msg, NULL);
    } else if (rc < 0) {
        api_write_fail(w, r, rc, NULL, NULL);
    } else {
        if (res->revision > 0)
            reader_note_write(p->a->rd, res->revision);
        const kv_op *ops = res->succeeded ? p->succ : p->fail;
        size_t n = res->succeeded ? p->nsucc : p->nfail; /* not the idempotency record's op */
        json_t *results = json_array();
        for (size_t i = 0; i < n && i < res->count; i++)
            json_array_append_new(results, op_result_json(&res->results[i], &ops[i]));
        api_write_finish(w, r, 200,
                         json_pack("{s:b,s:I,s:o}", "succeeded", res->succeeded, "revision",
                                   (json_int_t)res->revision, "results", results));
    }
    kv_txn_res_free(res);
    txn_parse_free(p);
}

/* Parses the body into p; replies and returns an error when it is bad. */
static int parse(txn_parse *p, json_t *body)
{
    static const char *const known[] = {"compare", "success", "failure", NULL};
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v)
    {
        if (lookup(known, k) < 0)
            return http_reply_errorf(p->r, CITRUS_EBADJSON,
                                     "unknown field '%s' (expected compare, success, failure)", k),
                   CITRUS_EBADJSON;
    }
    int rc;
    if ((rc = parse_list(p, body, "compare", &p->ncmp, p->cmps, NULL)) < 0 ||
        (rc = parse_list(p, body, "success", &p->nsucc, NULL, p->succ)) < 0 ||
        (rc = parse_list(p, body, "failure", &p->nfail, NULL, p->fail)) < 0)
        return rc;
    p->txn = (kv_txn){p->cmps,
                      p->ncmp,
                      p->succ,
                      p->nsucc,
                      p->fail,
                      p->nfail,
                      p->a->max_response_bytes}; /* past it: 413, nothing applied */
    return 0;
}

/* Whether the caller may touch every key the txn names: no write of the
 * catalog's own keys (api_kv_write_check), then reads for the compares and
 * gets, writes for puts and deletes (auth/principal.h's KV rules). Replies
 * 403 naming the first key it may not. */
static int check_access(txn_parse *p)
{
    const principal *who = api_principal(p->r);
    const kv_op *branches[2] = {p->succ, p->fail};
    size_t counts[2] = {p->nsucc, p->nfail};
    /* first the catalog's own keys, whoever asks: the whole txn is refused */
    for (size_t b = 0; b < 2; b++)
        for (size_t i = 0; i < counts[b]; i++) {
            const kv_op *op = &branches[b][i];
            int rc = op->type != KV_OP_GET ? api_kv_write_check(p->r, op->key, op->prefix) : 0;
            if (rc < 0)
                return rc;
        }
    for (size_t i = 0; i < p->ncmp; i++)
        if (!principal_kv_allowed(who, p->cmps[i].key, false, false))
            return api_forbid(p->r, "%s may not read '%.200s'", who->name, p->cmps[i].key);
    for (size_t b = 0; b < 2; b++)
        for (size_t i = 0; i < counts[b]; i++) {
            const kv_op *op = &branches[b][i];
            bool write = op->type != KV_OP_GET;
            if (!principal_kv_allowed(who, op->key, op->prefix, write))
                return api_forbid(p->r, "%s may not %s %s'%.200s'", who->name,
                                  write ? "write" : "read", op->prefix ? "the keys under " : "",
                                  op->key);
        }
    return 0;
}

int api_txn(http_req *r, void *ctx)
{
    /* An Idempotency-Key write makes synchronous catalog calls first. */
    if (!http_offloaded(r) && http_req_header(r, "Idempotency-Key"))
        return http_offload(r, api_txn, ctx);
    json_t *body = http_req_json(r);
    if (!body)
        return CITRUS_EBADJSON;
    if (!json_is_object(body)) {
        json_decref(body);
        return http_reply_error(r, CITRUS_EBADJSON, "body must be a JSON object", NULL);
    }
    txn_parse *p = calloc(1, sizeof(*p));
    if (!p) {
        json_decref(body);
        return http_reply_error(r, CITRUS_ENOMEM, NULL, NULL);
    }
    p->r = r;
    p->a = ctx;
    p->body = body;
    int rc = parse(p, body);
    if (rc == 0)
        rc = check_access(p);
    if (rc < 0) {
        txn_parse_free(p);
        return rc;
    }
    if (api_write_submit(&p->w, r, p->a, &p->txn, txn_done) != 0)
        txn_parse_free(p); /* already answered */
    return 0;
}
