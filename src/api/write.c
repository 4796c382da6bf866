/* api/write.c — parked writes, and Idempotency-Key records. */
#include "api/write.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "wire/digest.h"

#define RECORD_TTL_S ((int64_t)24 * 3600)

static void on_commit(void *ctx, int rc)
{
    api_write *w = ctx;
    w->rc = rc;
    http_resume(w->req);
}

static void on_resume(http_req *r, void *ctx)
{
    api_write *w = ctx;
    w->done(w, r, w->rc);
}

static bool key_ok(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':'))
            return false;
    }
    return strcmp(k, ".") != 0 && strcmp(k, "..") != 0;
}

/* SHA-256 of what makes the request what it is. */
static void fingerprint(http_req *r, char *out)
{
    static const char *const args[] = {"cas", "lease", "prefix"};
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    const char *parts[] = {http_req_method(r), http_req_path(r)};
    for (size_t i = 0; i < 2; i++)
        EVP_DigestUpdate(md, parts[i], strlen(parts[i]) + 1);
    for (size_t i = 0; i < 3; i++) {
        const char *v = http_req_query(r, args[i]);
        EVP_DigestUpdate(md, v ? v : "\x01", strlen(v ? v : "\x01") + 1);
    }
    size_t len;
    const unsigned char *body = http_req_body(r, &len);
    EVP_DigestUpdate(md, body, len);
    unsigned char d[32];
    EVP_DigestFinal_ex(md, d, NULL);
    EVP_MD_CTX_free(md);
    digest_hex(d, sizeof(d), out);
}

static char *record_text(const api_write *w, const char *state, unsigned status, json_t *body)
{
    json_t *j = json_pack("{s:s,s:s}", "fingerprint", w->fingerprint, "state", state);
    if (body) {
        json_object_set_new(j, "status", json_integer(status));
        json_object_set(j, "body", body);
    }
    char *t = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return t;
}

/* Answers a retry from an existing record. */
static void answer_from_record(http_req *r, const api_write *w, const kv_entry *e)
{
    json_t *rec = json_loadb((const char *)e->value, e->value_len, 0, NULL);
    const char *fp = json_string_value(json_object_get(rec, "fingerprint"));
    const char *state = json_string_value(json_object_get(rec, "state"));
    if (!fp || strcmp(fp, w->fingerprint) != 0) {
        http_reply_error(r, CITRUS_EUNPROCESSABLE,
                         "Idempotency-Key was already used for a different request", NULL);
    } else if (state && strcmp(state, "done") == 0) {
        http_add_header(r, "Idempotency-Replayed", "true");
        http_reply_json(r, (unsigned)json_integer_value(json_object_get(rec, "status")),
                        json_incref(json_object_get(rec, "body")));
    } else {
        http_add_header(r, "Retry-After", "1");
        http_reply_error(r, CITRUS_ECONFLICT,
                         state && strcmp(state, "applied") == 0
                             ? "the request with this Idempotency-Key was applied, but its answer "
                               "was not recorded"
                             : "the request with this Idempotency-Key is still in progress",
                         json_pack("{s:s}", "idempotency", state ? state : "unknown"));
    }
    json_decref(rec);
}

/* Creates the record if absent. Returns 0 when this request owns it, 1
 * when it existed (and the request is answered), or an error (answered). */
static int reserve(api_write *w, http_req *r, app *a)
{
    int64_t ttl;
    int rc = store_lease_grant(a->st, RECORD_TTL_S, &w->lease, &ttl);
    char *pending = rc == 0 ? record_text(w, "pending", 0, NULL) : NULL;
    if (rc == 0 && !pending)
        rc = CITRUS_ENOMEM;
    if (rc != 0) {
        free(pending);
        http_reply_error(r, rc, NULL, NULL);
        return rc;
    }
    kv_compare absent = {.key = w->record, .target = KV_CMP_VERSION, .op = KV_CMP_EQ};
    kv_op put = {.type = KV_OP_PUT,
                 .key = w->record,
                 .value = (const unsigned char *)pending,
                 .value_len = strlen(pending),
                 .lease = w->lease};
    kv_op get = {.type = KV_OP_GET, .key = w->record};
    kv_txn txn = {&absent, 1, &put, 1, &get, 1, 0};
    kv_txn_res res;
    rc = store_txn(a->st, &txn, &res);
    free(pending);
    if (rc == 0 && !res.succeeded) {
        store_lease_revoke(a->st, w->lease);
        w->lease = 0;
        if (res.results[0].range.count)
            answer_from_record(r, w, &res.results[0].range.items[0]);
        else
            http_reply_error(r, CITRUS_ECONFLICT, "Idempotency-Key record vanished; retry", NULL);
        rc = 1;
    } else if (rc < 0) {
        store_lease_revoke(a->st, w->lease);
        http_reply_error(r, rc, NULL, NULL);
    }
    kv_txn_res_free(&res);
    return rc;
}

/* Copies txn with "mark the record applied" added to both branches. */
static int augment(api_write *w, const kv_txn *txn)
{
    static const char applied_fmt[] = "{\"fingerprint\":\"%s\",\"state\":\"applied\"}";
    size_t n = txn->nsuccess + txn->nfailure + 2;
    w->ops = calloc(n, sizeof(*w->ops));
    char *applied = w->applied = malloc(sizeof(applied_fmt) + 64);
    if (!w->ops || !applied)
        return CITRUS_ENOMEM; /* the caller frees both */
    snprintf(applied, sizeof(applied_fmt) + 64, applied_fmt, w->fingerprint);
    kv_op mark = {.type = KV_OP_PUT,
                  .key = w->record,
                  .value = (const unsigned char *)applied,
                  .value_len = strlen(applied),
                  .lease = w->lease};
    kv_op *s = w->ops, *f = w->ops + txn->nsuccess + 1;
    if (txn->nsuccess) /* memcpy from NULL is undefined even for 0 bytes */
        memcpy(s, txn->success, txn->nsuccess * sizeof(*s));
    s[txn->nsuccess] = mark;
    if (txn->nfailure)
        memcpy(f, txn->failure, txn->nfailure * sizeof(*f));
    f[txn->nfailure] = mark;
    w->txn = (kv_txn){txn->compares,     txn->ncompares,    s, txn->nsuccess + 1, f,
                      txn->nfailure + 1, txn->max_get_bytes};
    return 0;
}

int api_write_submit(api_write *w, http_req *r, app *a, const kv_txn *txn, api_write_done done)
{
    w->req = r;
    w->done = done;
    w->a = a;
    /* A check in the last second said the catalog has no quorum: refuse
     * without sending rather than leave the client to a timeout (504). An
     * older answer is not trusted: it would hold writes back after etcd has
     * elected a leader again. */
    store_status st;
    int64_t age;
    if (a->cache && cache_status(a->cache, &st, &age) == 0 && !st.quorum && age < 1000)
        return http_reply_error(r, CITRUS_ENOQUORUM,
                                "the catalog has no quorum: the write was not sent", NULL),
               CITRUS_ENOQUORUM;
    const char *key = http_req_header(r, "Idempotency-Key");
    if (key) {
        if (!key_ok(key))
            return http_reply_error(r, CITRUS_EINVAL,
                                    "Idempotency-Key must be 1-128 characters of [A-Za-z0-9._:-]",
                                    NULL),
                   CITRUS_EINVAL;
        snprintf(w->record, sizeof(w->record), IDEMPOTENCY_PREFIX "%s", key);
        fingerprint(r, w->fingerprint);
        int rc = reserve(w, r, a);
        if (rc != 0)
            return rc;
        if (augment(w, txn) < 0) {
            store_lease_revoke(a->st, w->lease);
            free(w->ops);
            free(w->applied);
            w->ops = NULL;
            w->applied = NULL;
            return http_reply_error(r, CITRUS_ENOMEM, NULL, NULL), CITRUS_ENOMEM;
        }
        txn = &w->txn;
    }
    /* Suspend first: the completion may run before store_txn_async returns. */
    http_suspend(r, on_resume, w);
    store_txn_async(a->st, txn, &w->res, on_commit, w);
    return 0;
}

/* The results of the caller's own ops: the record's op is the last one. */
void api_write_finish(api_write *w, http_req *r, unsigned status, json_t *body)
{
    if (w->record[0]) {
        if (w->rc < 0 && w->rc != CITRUS_ETIMEOUT) {
            /* nothing was applied: let a retry run */
            store_lease_revoke(w->a->st, w->lease);
        } else if (w->rc == 0) {
            char *done = record_text(w, "done", status, body);
            if (done)
                store_put(w->a->st, w->record, (const unsigned char *)done, strlen(done), w->lease,
                          -1, NULL, NULL, NULL);
            free(done);
        }
        free(w->ops);
        free(w->applied);
        w->ops = NULL;
        w->applied = NULL;
    }
    http_reply_json(r, status, body);
}

void api_write_fail(api_write *w, http_req *r, int err, const char *message, json_t *extra)
{
    api_write_finish(w, r, (unsigned)citrus_err_http_status(err),
                     http_error_body(err, message, extra));
}
