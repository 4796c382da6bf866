/* catalog/etcd_codec.c — store.h types to and from etcd's gateway JSON
 * (see etcd_codec.h). */
#include "catalog/etcd_codec.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "wire/base64.h"

/* Indexed by kv_cmp_target and kv_cmp_op. */
static const char *const cmp_target_name[] = {
    [KV_CMP_VALUE] = "VALUE",     [KV_CMP_MOD] = "MOD",     [KV_CMP_CREATE] = "CREATE",
    [KV_CMP_VERSION] = "VERSION", [KV_CMP_LEASE] = "LEASE",
};
static const char *const cmp_target_field[] = {
    [KV_CMP_VALUE] = "value",
    [KV_CMP_MOD] = "mod_revision",
    [KV_CMP_CREATE] = "create_revision",
    [KV_CMP_VERSION] = "version",
    [KV_CMP_LEASE] = "lease",
};
static const char *const cmp_op_name[] = {
    [KV_CMP_EQ] = "EQUAL",
    [KV_CMP_NE] = "NOT_EQUAL",
    [KV_CMP_LT] = "LESS",
    [KV_CMP_GT] = "GREATER",
};

/* Sets o[k] = v (stolen); clears *ok when anything is missing. */
static void put_field(json_t *o, const char *k, json_t *v, bool *ok)
{
    if (!o || !v || json_object_set_new(o, k, v) < 0)
        *ok = false;
}

static void append(json_t *a, json_t *v, bool *ok)
{
    if (!a || !v || json_array_append_new(a, v) < 0)
        *ok = false;
}

static json_t *done(json_t *v, bool ok)
{
    if (ok)
        return v;
    json_decref(v);
    return NULL;
}

json_t *etcd_codec_i64(int64_t v)
{
    char s[32];
    snprintf(s, sizeof(s), "%" PRId64, v);
    return json_string(s);
}

int64_t etcd_codec_int(json_t *obj, const char *field)
{
    json_t *v = json_object_get(obj, field);
    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    if (!json_is_string(v))
        return 0;
    char *end;
    long long n = strtoll(json_string_value(v), &end, 10);
    return *end ? 0 : (int64_t)n;
}

int64_t etcd_codec_revision(json_t *answer)
{
    return etcd_codec_int(json_object_get(answer, "header"), "revision");
}

/* Bytes as a base64 JSON string. */
static json_t *etcd_codec_bytes(const void *p, size_t len)
{
    char *b = base64_encode(len ? p : (const void *)"", len);
    json_t *s = b ? json_string(b) : NULL;
    free(b);
    return s;
}

/* Decodes the base64 field of obj into a malloc'd buffer (NULL with len 0
 * when absent); nul adds a terminating NUL. */
static int decode_field(json_t *obj, const char *field, bool nul, unsigned char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    json_t *v = json_object_get(obj, field);
    if (!v)
        return nul ? CITRUS_EIO : 0;
    if (!json_is_string(v))
        return CITRUS_EIO;
    size_t n;
    unsigned char *d = base64_decode(json_string_value(v), json_string_length(v), &n);
    if (!d)
        return CITRUS_EIO;
    if (nul) {
        unsigned char *t = realloc(d, n + 1);
        if (!t) {
            free(d);
            return CITRUS_ENOMEM;
        }
        d = t;
        d[n] = '\0';
    } else if (n == 0) {
        free(d);
        d = NULL;
    }
    *out = d;
    *len = n;
    return 0;
}

static int bytes_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int r = n ? memcmp(a, b, n) : 0;
    if (r)
        return r;
    return alen < blen ? -1 : alen > blen;
}

bool etcd_codec_set_range(json_t *req, const char *key, bool prefix, const char *after)
{
    bool ok = true;
    size_t klen = strlen(key);
    if (!prefix) {
        put_field(req, "key", klen ? etcd_codec_bytes(key, klen) : etcd_codec_bytes("", 1), &ok);
        return ok;
    }
    const char *lo = klen ? key : "";
    size_t lo_len = klen ? klen : 1; /* "" starts at "\0": every key */
    if (after) {
        size_t alen = strlen(after) + 1; /* with its NUL: the smallest key above after */
        if (bytes_cmp(after, alen, lo, lo_len) > 0) {
            lo = after;
            lo_len = alen;
        }
    }
    char *hi = malloc(klen + 1);
    if (!hi)
        return false;
    bool bounded = store_prefix_end(key, hi);
    put_field(req, "key", etcd_codec_bytes(lo, lo_len), &ok);
    put_field(req, "range_end",
              bounded ? etcd_codec_bytes(hi, strlen(hi)) : etcd_codec_bytes("", 1), &ok);
    free(hi);
    return ok;
}

static json_t *range_fields(const char *key, bool prefix, const char *after, size_t limit,
                            bool keys_only, bool count_only)
{
    json_t *r = json_object();
    bool ok = r && etcd_codec_set_range(r, key, prefix, prefix ? after : NULL);
    if (prefix && limit)
        put_field(r, "limit", etcd_codec_i64((int64_t)limit), &ok);
    if (keys_only)
        put_field(r, "keys_only", json_true(), &ok);
    if (count_only)
        put_field(r, "count_only", json_true(), &ok);
    return done(r, ok);
}

json_t *etcd_codec_range_req(const kv_range_req *q)
{
    return range_fields(q->key, q->prefix, q->after, q->limit, q->keys_only, q->count_only);
}

/* A mvccpb.KeyValue into e (value copied unless absent). */
static int etcd_codec_entry(json_t *kv, kv_entry *e)
{
    memset(e, 0, sizeof(*e));
    if (!json_is_object(kv))
        return CITRUS_EIO;
    size_t klen;
    int rc = decode_field(kv, "key", true, (unsigned char **)&e->key, &klen);
    if (rc == 0)
        rc = decode_field(kv, "value", false, &e->value, &e->value_len);
    e->create_revision = etcd_codec_int(kv, "create_revision");
    e->mod_revision = etcd_codec_int(kv, "mod_revision");
    e->version = etcd_codec_int(kv, "version");
    e->lease = etcd_codec_int(kv, "lease");
    return rc;
}

int etcd_codec_range_res(json_t *ans, int64_t fallback_rev, kv_range_res *out)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(ans))
        return CITRUS_EIO;
    int64_t rev = etcd_codec_revision(ans);
    out->revision = rev ? rev : fallback_rev;
    out->more = json_is_true(json_object_get(ans, "more"));
    json_t *kvs = json_object_get(ans, "kvs");
    size_t n = json_array_size(kvs);
    if (n == 0) { /* count_only (else count is 0 too) */
        int64_t count = etcd_codec_int(ans, "count");
        out->count = count > 0 ? (size_t)count : 0;
        return 0;
    }
    out->items = calloc(n, sizeof(*out->items));
    if (!out->items)
        return CITRUS_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        out->count = i + 1;
        int rc = etcd_codec_entry(json_array_get(kvs, i), &out->items[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int etcd_codec_event(json_t *event, kv_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    const char *type = json_string_value(json_object_get(event, "type"));
    ev->type = type && strcmp(type, "DELETE") == 0 ? KV_EVENT_DELETE : KV_EVENT_PUT;
    int rc = etcd_codec_entry(json_object_get(event, "kv"), &ev->kv);
    if (rc == 0 && ev->type == KV_EVENT_DELETE) {
        free(ev->kv.value);
        ev->kv.value = NULL;
        ev->kv.value_len = 0;
        ev->kv.create_revision = ev->kv.version = ev->kv.lease = 0;
    }
    return rc;
}

static json_t *compare_json(const kv_compare *c)
{
    bool ok = (unsigned)c->target <= KV_CMP_LEASE && (unsigned)c->op <= KV_CMP_GT;
    json_t *o = ok ? json_object() : NULL;
    size_t klen = strlen(c->key);
    put_field(o, "key", klen ? etcd_codec_bytes(c->key, klen) : etcd_codec_bytes("", 1), &ok);
    if (!ok)
        return done(o, false);
    put_field(o, "target", json_string(cmp_target_name[c->target]), &ok);
    put_field(o, "result", json_string(cmp_op_name[c->op]), &ok);
    put_field(o, cmp_target_field[c->target],
              c->target == KV_CMP_VALUE ? etcd_codec_bytes(c->value, c->value_len)
                                        : etcd_codec_i64(c->number),
              &ok);
    return done(o, ok);
}

static json_t *op_json(const kv_op *op)
{
    bool ok = true;
    json_t *o = json_object(), *req = NULL;
    switch (op->type) {
    case KV_OP_PUT:
        req = json_object();
        put_field(req, "key", etcd_codec_bytes(op->key, strlen(op->key)), &ok);
        put_field(req, "value", etcd_codec_bytes(op->value, op->value_len), &ok);
        if (op->lease)
            put_field(req, "lease", etcd_codec_i64(op->lease), &ok);
        put_field(req, "prev_kv", json_true(), &ok);
        put_field(o, "request_put", req, &ok);
        break;
    case KV_OP_DELETE:
        req = json_object();
        if (!req || !etcd_codec_set_range(req, op->key, op->prefix, NULL))
            ok = false;
        put_field(o, "request_delete_range", req, &ok);
        break;
    case KV_OP_GET:
        put_field(o, "request_range",
                  range_fields(op->key, op->prefix, op->after, op->limit, op->keys_only, false),
                  &ok);
        break;
    default:
        ok = false;
    }
    return done(o, ok);
}

json_t *etcd_codec_single_req(const kv_txn *txn, const char **path)
{
    if (txn->ncompares || txn->nfailure || txn->nsuccess != 1 || txn->success[0].type == KV_OP_GET)
        return NULL;
    bool put = txn->success[0].type == KV_OP_PUT;
    json_t *o = op_json(&txn->success[0]);
    json_t *req = json_object_get(o, put ? "request_put" : "request_delete_range");
    json_incref(req);
    json_decref(o);
    *path = put ? "/v3/kv/put" : "/v3/kv/deleterange";
    return req;
}

static json_t *ops_json(const kv_op *ops, size_t n)
{
    json_t *a = json_array();
    bool ok = a != NULL;
    for (size_t i = 0; ok && i < n; i++)
        append(a, op_json(&ops[i]), &ok);
    return done(a, ok);
}

json_t *etcd_codec_txn_req(const kv_txn *txn, const bool *drop)
{
    json_t *t = json_object(), *cmps = json_array();
    bool ok = t && cmps;
    for (size_t i = 0; ok && i < txn->ncompares; i++)
        if (!drop || !drop[i])
            append(cmps, compare_json(&txn->compares[i]), &ok);
    put_field(t, "compare", cmps, &ok);
    put_field(t, "success", ops_json(txn->success, txn->nsuccess), &ok);
    put_field(t, "failure", ops_json(txn->failure, txn->nfailure), &ok);
    return done(t, ok);
}

static int op_result(json_t *r, const kv_op *op, int64_t rev, kv_op_result *res)
{
    res->type = op->type;
    json_t *body;
    switch (op->type) {
    case KV_OP_PUT: {
        body = json_object_get(r, "response_put");
        if (!json_is_object(body))
            return CITRUS_EIO;
        json_t *prev = json_object_get(body, "prev_kv");
        int64_t prev_version = prev ? etcd_codec_int(prev, "version") : 0;
        res->mod_revision = rev;
        res->version = prev_version + 1;
        res->create_revision = prev_version ? etcd_codec_int(prev, "create_revision") : rev;
        return 0;
    }
    case KV_OP_DELETE:
        body = json_object_get(r, "response_delete_range");
        if (!json_is_object(body))
            return CITRUS_EIO;
        res->deleted = etcd_codec_int(body, "deleted");
        return 0;
    case KV_OP_GET:
        return etcd_codec_range_res(json_object_get(r, "response_range"), rev, &res->range);
    }
    return CITRUS_EIO;
}

int etcd_codec_single_res(json_t *ans, const kv_txn *txn, int64_t rev, kv_txn_res *out)
{
    memset(out, 0, sizeof(*out));
    const kv_op *op = &txn->success[0];
    json_t *r =
        json_pack("{s:O}", op->type == KV_OP_PUT ? "response_put" : "response_delete_range", ans);
    out->results = r ? calloc(1, sizeof(*out->results)) : NULL;
    int rc = out->results ? op_result(r, op, rev, &out->results[0]) : CITRUS_ENOMEM;
    json_decref(r);
    if (out->results)
        out->count = 1;
    out->succeeded = true;
    out->revision = rev;
    return rc;
}

int etcd_codec_txn_res(json_t *ans, const kv_txn *txn, int64_t rev, kv_txn_res *out)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(ans))
        return CITRUS_EIO;
    out->succeeded = json_is_true(json_object_get(ans, "succeeded"));
    out->revision = rev;
    const kv_op *ops = out->succeeded ? txn->success : txn->failure;
    size_t n = out->succeeded ? txn->nsuccess : txn->nfailure;
    json_t *resps = json_object_get(ans, "responses");
    if (json_array_size(resps) != n)
        return CITRUS_EIO;
    if (n == 0)
        return 0;
    out->results = calloc(n, sizeof(*out->results));
    if (!out->results)
        return CITRUS_ENOMEM;
    out->count = n;
    for (size_t i = 0; i < n; i++) {
        int rc = op_result(json_array_get(resps, i), &ops[i], rev, &out->results[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}
