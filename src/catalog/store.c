/* catalog/store.c — dispatch to the implementation, and the helpers that
 * every implementation shares (put/delete with compare, built on txn). */
#include "catalog/store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "obs/metrics.h"

static void describe_metrics(void)
{
    metrics_describe("citrus_store_ops_total", METRIC_COUNTER,
                     "Catalog store operations by operation and result.");
}

/* Counts an operation's outcome in citrus_store_ops_total. */
static int count_op(const char *op, int rc)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, describe_metrics);
    static const char *const fmt = "op=\"%s\",result=\"%s\"";
    char labels[96];
    snprintf(labels, sizeof(labels), fmt, op, rc == 0 ? "ok" : citrus_err_code(rc));
    metrics_counter_add("citrus_store_ops_total", labels, 1);
    return rc;
}

/* kv_range_req.max_bytes for a backend that cannot stop early (etcd
 * answers a page whole): cuts the items past the bound. */
static void range_cut(const kv_range_req *req, kv_range_res *out)
{
    size_t bytes = 0;
    if (!req->max_bytes || !req->prefix || req->count_only || !out->items)
        return;
    for (size_t i = 0; i < out->count; i++) {
        bytes +=
            kv_entry_wire_size(strlen(out->items[i].key), out->items[i].value_len, !req->keys_only);
        if (i && bytes > req->max_bytes) {
            for (size_t k = i; k < out->count; k++)
                kv_entry_clear(&out->items[k]);
            out->count = i;
            out->more = true;
        }
    }
}

int store_range(store *s, const kv_range_req *req, kv_range_res *out)
{
    memset(out, 0, sizeof(*out));
    int rc = s->ops->range(s, req, out);
    if (rc == 0)
        range_cut(req, out);
    return count_op("range", rc);
}

/* True when the write a touches a key that the write b also touches. */
static bool writes_overlap(const kv_op *a, const kv_op *b)
{
    if (a->type == KV_OP_DELETE && b->type == KV_OP_DELETE)
        return false; /* overlapping deletes are harmless */
    if (a->type == KV_OP_DELETE)
        return a->prefix ? strncmp(b->key, a->key, strlen(a->key)) == 0
                         : strcmp(a->key, b->key) == 0;
    if (b->type == KV_OP_DELETE)
        return writes_overlap(b, a);
    return strcmp(a->key, b->key) == 0;
}

/* As etcd: one branch of a txn may not write a key twice (two puts, or a put
 * inside a delete's range), so the outcome never depends on op order. */
static int check_branch(const kv_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ops[i].type == KV_OP_GET)
            continue;
        for (size_t j = i + 1; j < n; j++)
            if (ops[j].type != KV_OP_GET && writes_overlap(&ops[i], &ops[j]))
                return CITRUS_EINVAL;
    }
    return 0;
}

/* The request is well formed: arrays present, keys set, enums in range. */
static int check_op(const kv_op *op)
{
    if (!op->key)
        return CITRUS_EINVAL;
    switch (op->type) {
    case KV_OP_PUT:
        if (!op->key[0])
            return CITRUS_EBADKEY;
        return op->value_len && !op->value ? CITRUS_EINVAL : 0;
    case KV_OP_DELETE:
    case KV_OP_GET:
        return 0;
    }
    return CITRUS_EINVAL;
}

static int check_shape(const kv_txn *t)
{
    if ((t->ncompares && !t->compares) || (t->nsuccess && !t->success) ||
        (t->nfailure && !t->failure))
        return CITRUS_EINVAL;
    for (size_t i = 0; i < t->ncompares; i++) {
        const kv_compare *c = &t->compares[i];
        if (!c->key || (c->value_len && !c->value) || (unsigned)c->target > KV_CMP_LEASE ||
            (unsigned)c->op > KV_CMP_GT)
            return CITRUS_EINVAL;
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < t->nsuccess; i++)
        rc = check_op(&t->success[i]);
    for (size_t i = 0; rc == 0 && i < t->nfailure; i++)
        rc = check_op(&t->failure[i]);
    return rc;
}

/* Every backend gets only txns that pass these checks. */
static int check_txn(const kv_txn *txn)
{
    int rc = txn ? check_shape(txn) : CITRUS_EINVAL;
    if (rc == 0)
        rc = check_branch(txn->success, txn->nsuccess);
    return rc < 0 ? rc : check_branch(txn->failure, txn->nfailure);
}

static bool txn_writes(const kv_txn *t)
{
    for (size_t i = 0; i < t->nsuccess; i++)
        if (t->success[i].type != KV_OP_GET)
            return true;
    for (size_t i = 0; i < t->nfailure; i++)
        if (t->failure[i].type != KV_OP_GET)
            return true;
    return false;
}

/* kv_txn.max_get_bytes for a backend that cannot check it before it
 * commits (etcd): a read-only txn past it is refused here. A txn that
 * wrote there is answered (its writes stand; docs/security.md). */
static int txn_bound(const kv_txn *txn, kv_txn_res *out, int rc)
{
    if (rc < 0 || !txn->max_get_bytes || txn_writes(txn))
        return rc;
    size_t bytes = 0;
    for (size_t i = 0; i < out->count; i++)
        for (size_t k = 0; k < out->results[i].range.count; k++) {
            const kv_entry *e = &out->results[i].range.items[k];
            bytes += kv_entry_wire_size(strlen(e->key), e->value_len, true);
        }
    if (bytes <= txn->max_get_bytes)
        return rc;
    kv_txn_res_free(out);
    return CITRUS_ERESPTOOBIG;
}

int store_txn(store *s, const kv_txn *txn, kv_txn_res *out)
{
    memset(out, 0, sizeof(*out));
    int rc = check_txn(txn);
    if (rc < 0)
        return count_op("txn", rc);
    return count_op("txn", txn_bound(txn, out, s->ops->txn(s, txn, out)));
}

/* Wraps an async completion so that its outcome is counted. */
typedef struct async_wrap {
    store_txn_cb cb;
    void *ctx;
    const kv_txn *txn;
    kv_txn_res *out;
} async_wrap;

static void async_done(void *arg, int rc)
{
    async_wrap w = *(async_wrap *)arg;
    free(arg);
    w.cb(w.ctx, count_op("txn", txn_bound(w.txn, w.out, rc)));
}

void store_txn_async(store *s, const kv_txn *txn, kv_txn_res *out, store_txn_cb cb, void *ctx)
{
    memset(out, 0, sizeof(*out));
    int rc = check_txn(txn);
    async_wrap *w = rc == 0 && s->ops->txn_async ? malloc(sizeof(*w)) : NULL;
    if (w) {
        *w = (async_wrap){cb, ctx, txn, out};
        s->ops->txn_async(s, txn, out, async_done, w);
        return;
    }
    if (rc == 0)
        rc = txn_bound(txn, out, s->ops->txn(s, txn, out));
    cb(ctx, count_op("txn", rc));
}

void store_cas_txn_init(store_cas_txn *c, const kv_op *op, int64_t cas)
{
    memset(c, 0, sizeof(*c));
    c->op = *op;
    c->txn.success = &c->op;
    c->txn.nsuccess = 1;
    if (cas >= 0) {
        c->cmp = (kv_compare){.key = op->key, .target = KV_CMP_MOD, .op = KV_CMP_EQ, .number = cas};
        c->get = (kv_op){.type = KV_OP_GET, .key = op->key, .keys_only = true};
        c->txn.compares = &c->cmp;
        c->txn.ncompares = 1;
        c->txn.failure = &c->get;
        c->txn.nfailure = 1;
    }
}

int store_cas_txn_outcome(const kv_txn_res *res, int rc, int64_t *cur_mod)
{
    if (rc < 0)
        return rc;
    if (res->succeeded)
        return 0;
    if (cur_mod) {
        const kv_range_res *r = &res->results[0].range;
        *cur_mod = r->count ? r->items[0].mod_revision : 0;
    }
    return CITRUS_ECONFLICT;
}

static int txn_with_cas(store *s, const kv_op *op, int64_t cas, kv_txn_res *res, int64_t *cur_mod)
{
    store_cas_txn c;
    store_cas_txn_init(&c, op, cas);
    int rc = store_txn(s, &c.txn, res);
    return store_cas_txn_outcome(res, rc, cur_mod);
}

int store_put(store *s, const char *key, const unsigned char *value, size_t len, int64_t lease,
              int64_t cas, kv_op_result *out, int64_t *revision, int64_t *cur_mod)
{
    kv_op op = {.type = KV_OP_PUT, .key = key, .value = value, .value_len = len, .lease = lease};
    kv_txn_res res;
    int rc = txn_with_cas(s, &op, cas, &res, cur_mod);
    if (rc == 0) {
        if (out) {
            *out = res.results[0];
            memset(&out->range, 0, sizeof(out->range));
        }
        if (revision)
            *revision = res.revision;
    }
    kv_txn_res_free(&res);
    return rc;
}

int store_delete(store *s, const char *key, bool prefix, int64_t cas, int64_t *deleted,
                 int64_t *revision, int64_t *cur_mod)
{
    if (prefix && cas >= 0)
        return CITRUS_EINVAL;
    kv_op op = {.type = KV_OP_DELETE, .key = key, .prefix = prefix};
    kv_txn_res res;
    int rc = txn_with_cas(s, &op, cas, &res, cur_mod);
    if (rc == 0) {
        if (deleted)
            *deleted = res.results[0].deleted;
        if (revision)
            *revision = res.revision;
    }
    kv_txn_res_free(&res);
    return rc;
}

int store_watch_open(store *s, const char *prefix, int64_t from_rev, store_watch_cb cb, void *ctx,
                     store_watch **out, int64_t *compact_rev)
{
    *out = NULL;
    return count_op("watch_open",
                    s->ops->watch_open(s, prefix, from_rev, cb, ctx, out, compact_rev));
}

void store_watch_close(store *s, store_watch *w)
{
    if (w)
        s->ops->watch_close(w);
}

int64_t store_watch_progress(store *s, store_watch *w)
{
    return s->ops->watch_progress ? s->ops->watch_progress(w) : -1;
}

int store_lease_grant(store *s, int64_t ttl, int64_t *id, int64_t *granted_ttl)
{
    if (ttl < 1)
        return CITRUS_EINVAL;
    return count_op("lease_grant", s->ops->lease_grant(s, ttl, id, granted_ttl));
}

int store_lease_keepalive(store *s, int64_t id, int64_t *ttl)
{
    return count_op("lease_keepalive", s->ops->lease_keepalive(s, id, ttl));
}

int store_lease_revoke(store *s, int64_t id)
{
    return count_op("lease_revoke", s->ops->lease_revoke(s, id));
}

int64_t store_revision(store *s)
{
    return s->ops->revision ? s->ops->revision(s) : -1;
}

int store_status_get(store *s, store_status *out)
{
    memset(out, 0, sizeof(*out));
    return s->ops->status(s, out);
}

int store_snapshot(store *s, kv_snapshot *out)
{
    return store_snapshot_bounded(s, 0, out);
}

int store_snapshot_bounded(store *s, size_t max_bytes, kv_snapshot *out)
{
    memset(out, 0, sizeof(*out));
    int rc = s->ops->snapshot(s, max_bytes, out);
    if (rc < 0)
        kv_snapshot_free(out);
    return count_op("snapshot", rc);
}

int store_compact(store *s, int64_t rev)
{
    return count_op("compact", s->ops->compact ? s->ops->compact(s, rev) : CITRUS_EUNAVAILABLE);
}

int store_defrag(store *s)
{
    return count_op("defrag", s->ops->defrag ? s->ops->defrag(s) : CITRUS_EUNAVAILABLE);
}

void store_close(store *s)
{
    if (s)
        s->ops->close(s);
}

bool store_prefix_end(const char *prefix, char *buf)
{
    size_t n = strlen(prefix);
    memcpy(buf, prefix, n + 1);
    while (n > 0) {
        unsigned char c = (unsigned char)buf[n - 1];
        if (c < 0xff) {
            buf[n - 1] = (char)(c + 1);
            buf[n] = '\0';
            return true;
        }
        n--;
    }
    buf[0] = '\0';
    return false;
}
