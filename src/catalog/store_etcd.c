/* catalog/store_etcd.c — the cluster catalog store: store.h on etcd v3
 * through its HTTP/JSON gateway.
 *
 * Pieces: etcd_client.c carries the calls (one libcurl multi thread,
 * endpoint failover, error mapping), etcd_codec.c maps store.h types to
 * etcd's JSON, etcd_watch.c serves watches from one shared etcd stream.
 * This file maps each store_ops call to etcd requests.
 *
 * Txns run asynchronously on the client's I/O thread (a small state
 * machine, txn_job); store_txn waits for the same machine. So parked HTTP
 * writes (store_txn_async) hold no thread while etcd commits them, and
 * concurrent writes travel on concurrent connections. A txn that is one
 * put or one delete and nothing else goes as /v3/kv/put or
 * /v3/kv/deleterange, which etcd's gateway decodes more cheaply.
 *
 * Value compares on absent keys: store.h gives an absent key the value ""
 * (so "value == ''" holds for it), while etcd fails every value compare on
 * an absent key. A txn with a value compare that would hold on absence
 * first reads those keys' mod_revisions; then it sends the txn nested in an
 * outer one guarded by "mod_revision(key) == what was read" for each, with
 * the compares of keys found absent left out (they hold). If a guarded key
 * changed in between, nothing ran, and the job starts over.
 *
 * Compaction point: etcd does not report where it compacted, but a read at
 * a compacted revision fails ("required revision has been compacted").
 * compact_rev is the oldest revision known to be readable. Status reads at
 * compact_rev: one read gives the store's revision and confirms the point;
 * when it fails, a binary search with such reads finds the new point (a
 * few dozen reads, once per compaction). store_etcd_compact and watches
 * refused for compaction move it too.
 *
 * Status: that read (linearizable, with hasleader) is also the writable
 * and quorum check. The cluster view (members, how many answer, the
 * leader's name) comes from the member list and each member's own
 * maintenance/status, refreshed in the background (status never waits for
 * slow members). */
#include "catalog/store_etcd.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/etcd_batch.h"
#include "catalog/etcd_client.h"
#include "catalog/etcd_codec.h"
#include "catalog/etcd_watch.h"
#include "citrus/errors.h"
#include "obs/log.h"

#define PATH_RANGE "/v3/kv/range"
#define PATH_TXN "/v3/kv/txn"
#define PATH_COMPACT "/v3/kv/compaction"
#define PATH_GRANT "/v3/lease/grant"
#define PATH_KEEPALIVE "/v3/lease/keepalive"
#define PATH_REVOKE "/v3/lease/revoke"
#define PATH_LEASES "/v3/lease/leases"
#define PATH_TTL "/v3/lease/timetolive"
#define PATH_MEMBERS "/v3/cluster/member/list"
#define PATH_MEMBER_STATUS "/v3/maintenance/status"
#define PATH_ALARM "/v3/maintenance/alarm"
#define PATH_DEFRAG "/v3/maintenance/defragment"
#define DEFRAG_TIMEOUT_MS 120000
#define VIEW_TTL_MS 1000
#define MEMBER_TIMEOUT_MS 1000
#define SNAPSHOT_PAGE 1000
#define SNAPSHOT_TRIES 3
#define GUARD_TRIES 16
#define PUT_BATCHES 1 /* blind-put batches at etcd at once (see etcd_batch.c) */

/* The cluster as the members answer for themselves. */
typedef struct cluster_view {
    char leader[64]; /* the leader's member name, "" when unknown */
    int members, healthy;
    store_member member[STORE_MAX_MEMBERS];
    int64_t at_ms; /* when it was taken (monotonic); 0: never */
    /* etcd's quota: its NOSPACE alarm (on any member), the largest
     * member's database and the part of it in use, and the quota when the
     * members report it (etcd >= 3.6; else 0, unknown). */
    bool nospace;
    int64_t db_size, db_in_use, quota;
} cluster_view;

typedef struct etcd_store {
    store base;
    etcd_client *cl;
    etcd_watch *hub;
    etcd_batcher *puts; /* with batch_puts: blind single puts, sent together */
    const sysclock *clock;
    pthread_mutex_t mu;
    int64_t compact_rev;      /* oldest revision known to be readable; guarded by mu */
    int64_t last_rev;         /* the revision the last status saw; guarded by mu */
    cluster_view view;        /* guarded by mu */
    bool view_busy;           /* a refresh of view is under way; guarded by mu */
    size_t alarm_turn;        /* the member the next refresh asks for alarms (I/O thread) */
    pthread_cond_t view_cond; /* view_busy went false */
} etcd_store;

static const store_ops etcd_ops;

/* ---- helpers ---------------------------------------------------------------- */

/* Logs failures of etcd itself (not answers like "lease not found"). */
static int report(const char *op, int rc, const char *err)
{
    if (rc == CITRUS_EUNAVAILABLE || rc == CITRUS_ETIMEOUT || rc == CITRUS_EIO ||
        rc == CITRUS_EINTERNAL || rc == CITRUS_ENOMEM)
        log_warn("store_etcd", op,
                 json_pack("{s:s,s:s}", "error", citrus_err_code(rc), "detail", err ? err : ""));
    return rc;
}

/* A synchronous call; takes req (NULL: out of memory). */
static int call(etcd_store *s, const char *op, const char *path, json_t *req, etcd_call_kind kind,
                json_t **ans, errdetail *e)
{
    errdetail local = {0};
    if (!e)
        e = &local;
    *ans = NULL;
    int rc = req ? etcd_client_call(s->cl, path, req, kind, ans, e)
                 : errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    json_decref(req);
    return rc < 0 ? report(op, rc, e->message) : 0;
}

static int64_t compact_get(etcd_store *s)
{
    pthread_mutex_lock(&s->mu);
    int64_t c = s->compact_rev;
    pthread_mutex_unlock(&s->mu);
    return c;
}

static void compact_note(etcd_store *s, int64_t rev)
{
    pthread_mutex_lock(&s->mu);
    if (rev > s->compact_rev)
        s->compact_rev = rev;
    pthread_mutex_unlock(&s->mu);
}

/* A linearizable read of no key at revision at (0: the latest). *rev is the
 * store's revision; CITRUS_ECOMPACTED when at is compacted. */
static int probe(etcd_store *s, int64_t at, int64_t *rev, errdetail *e)
{
    json_t *req = json_object();
    bool ok = req && etcd_codec_set_range(req, "", false, NULL) &&
              json_object_set_new(req, "count_only", json_true()) == 0 &&
              (at <= 0 || json_object_set_new(req, "revision", etcd_codec_i64(at)) == 0);
    if (!ok) {
        json_decref(req);
        req = NULL;
    }
    json_t *ans;
    int rc = call(s, "status", PATH_RANGE, req, ETCD_READ, &ans, e);
    *rev = rc == 0 ? etcd_codec_revision(ans) : 0;
    json_decref(ans);
    return rc;
}

/* Finds etcd's compaction point, the oldest revision a read at a revision
 * still works for: one read when it has not moved since last time, else a
 * binary search. *latest: the store's revision. */
static int compact_find(etcd_store *s, int64_t *latest, errdetail *e)
{
    int64_t lo = compact_get(s), cur = 0, r;
    int rc = probe(s, lo, &cur, e);
    if (rc == CITRUS_EINVAL && lo > 1) { /* a future revision: etcd was replaced by a new one */
        pthread_mutex_lock(&s->mu);
        s->compact_rev = lo = 1;
        pthread_mutex_unlock(&s->mu);
        rc = probe(s, lo, &cur, e);
    }
    if (rc != CITRUS_ECOMPACTED) {
        *latest = cur;
        return rc;
    }
    rc = probe(s, 0, &cur, e);
    if (rc < 0)
        return rc;
    int64_t hi = cur;
    for (lo++; lo < hi;) {
        int64_t mid = lo + (hi - lo) / 2;
        rc = probe(s, mid, &r, e);
        if (rc == 0)
            hi = mid;
        else if (rc == CITRUS_ECOMPACTED)
            lo = mid + 1;
        else
            return rc;
    }
    compact_note(s, lo);
    *latest = cur;
    return 0;
}

/* A value compare that holds when its key is absent (value ""). */
static bool holds_when_absent(const kv_compare *c)
{
    if (c->target != KV_CMP_VALUE)
        return false;
    switch (c->op) {
    case KV_CMP_EQ:
        return c->value_len == 0;
    case KV_CMP_NE:
    case KV_CMP_LT:
        return c->value_len > 0;
    case KV_CMP_GT:
        return false;
    }
    return false;
}

/* ---- txn: a job on the I/O thread ------------------------------------------------ */

typedef struct txn_job {
    etcd_store *s;
    const kv_txn *txn;
    kv_txn_res *out;
    store_txn_cb cb;
    void *ctx;
    size_t nguards; /* compares that hold on absence */
    bool *drop;     /* per compare: left out (its key was absent) */
    int64_t *seen;  /* per compare: the key's mod_revision, read for the guard */
    int tries;
    bool single;  /* sent as a plain put or delete, not a txn */
    bool checked; /* the gets' size was measured (job_check) */
} txn_job;

static void job_free(txn_job *j)
{
    free(j->drop);
    free(j->seen);
    free(j);
}

static txn_job *job_new(etcd_store *s, const kv_txn *txn, kv_txn_res *out, store_txn_cb cb,
                        void *ctx)
{
    txn_job *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    *j = (txn_job){.s = s, .txn = txn, .out = out, .cb = cb, .ctx = ctx};
    for (size_t i = 0; i < txn->ncompares; i++)
        j->nguards += holds_when_absent(&txn->compares[i]);
    if (j->nguards) {
        j->drop = calloc(txn->ncompares, sizeof(*j->drop));
        j->seen = calloc(txn->ncompares, sizeof(*j->seen));
        if (!j->drop || !j->seen) {
            job_free(j);
            return NULL;
        }
    }
    return j;
}

static void job_finish(txn_job *j, int rc, const char *err)
{
    if (rc < 0) {
        kv_txn_res_free(j->out);
        report("txn", rc, err);
    }
    if (rc == CITRUS_ENOSPACE) { /* etcd raised its alarm: shown before the next look */
        pthread_mutex_lock(&j->s->mu);
        j->s->view.nospace = true;
        pthread_mutex_unlock(&j->s->mu);
    }
    store_txn_cb cb = j->cb;
    void *ctx = j->ctx;
    job_free(j);
    cb(ctx, rc);
}

/* {"key": key}, for a read or a compare */
static json_t *key_json(const char *key)
{
    json_t *o = json_object();
    if (o && !etcd_codec_set_range(o, key, false, NULL)) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

/* mod_revision(key) == mod */
static json_t *guard_compare(const char *key, int64_t mod)
{
    json_t *o = key_json(key);
    if (o && (json_object_set_new(o, "target", json_string("MOD")) < 0 ||
              json_object_set_new(o, "result", json_string("EQUAL")) < 0 ||
              json_object_set_new(o, "mod_revision", etcd_codec_i64(mod)) < 0)) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

/* The txn nested in one that runs it only if no guarded key changed. */
static json_t *guard_wrap(txn_job *j, json_t *inner)
{
    json_t *cmps = json_array();
    bool ok = inner && cmps;
    for (size_t i = 0; ok && i < j->txn->ncompares; i++)
        if (holds_when_absent(&j->txn->compares[i]))
            ok = json_array_append_new(cmps, guard_compare(j->txn->compares[i].key, j->seen[i])) ==
                 0;
    if (!ok) {
        json_decref(inner);
        json_decref(cmps);
        return NULL;
    }
    return json_pack("{s:o,s:[{s:o}]}", "compare", cmps, "success", "request_txn", inner);
}

static void job_txn_done(void *ctx, etcd_result *r);
static void job_read_done(void *ctx, etcd_result *r);

static bool job_check(txn_job *j);

static void job_send(txn_job *j)
{
    if (job_check(j))
        return;
    const char *path = PATH_TXN;
    json_t *body = j->nguards ? NULL : etcd_codec_single_req(j->txn, &path);
    j->single = body != NULL;
    if (!body)
        body = etcd_codec_txn_req(j->txn, j->nguards ? j->drop : NULL);
    if (body && j->nguards)
        body = guard_wrap(j, body);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    etcd_client_call_async(j->s->cl, path, text, ETCD_WRITE, job_txn_done, j);
}

/* The gets' bound for a txn that also writes (docs/security.md, "Bounded
 * answers and the store quota"): etcd commits before its answer can be
 * measured, so the gets are first read alone, serializable, as a read-only
 * txn with the same compares (less those dropped for absent keys), and a
 * txn whose gets would pass kv_txn.max_get_bytes is refused, not sent.
 * Data that grows between this read and the commit is not caught. */
static bool txn_needs_check(const kv_txn *t)
{
    bool gets = false, writes = false;
    for (size_t i = 0; i < t->nsuccess + t->nfailure; i++) {
        const kv_op *op = i < t->nsuccess ? &t->success[i] : &t->failure[i - t->nsuccess];
        gets |= op->type == KV_OP_GET;
        writes |= op->type != KV_OP_GET;
    }
    return t->max_get_bytes && gets && writes;
}

/* Keeps only the gets of a branch (etcd's JSON), each serializable. */
static bool gets_only(json_t *ops)
{
    for (size_t i = json_array_size(ops); i-- > 0;) {
        json_t *r = json_object_get(json_array_get(ops, i), "request_range");
        if (!r) {
            if (json_array_remove(ops, i) < 0)
                return false;
        } else if (json_object_set_new(r, "serializable", json_true()) < 0) {
            return false;
        }
    }
    return true;
}

/* The wire size of the gets in one answer's responses (etcd's JSON). */
static size_t gets_size(json_t *resps, size_t max_bytes)
{
    size_t bytes = 0;
    for (size_t i = 0; i < json_array_size(resps) && bytes <= max_bytes; i++) {
        kv_range_res rr = {0};
        if (etcd_codec_range_res(json_object_get(json_array_get(resps, i), "response_range"), 0,
                                 &rr) < 0)
            return SIZE_MAX;
        for (size_t k = 0; k < rr.count; k++)
            bytes += kv_entry_wire_size(strlen(rr.items[k].key), rr.items[k].value_len, true);
        kv_range_res_free(&rr);
    }
    return bytes;
}

static void job_check_done(void *ctx, etcd_result *r)
{
    txn_job *j = ctx;
    errdetail err = {0};
    json_t *ans;
    int rc = etcd_client_decode(j->s->cl, r, ETCD_READ, &ans, &err);
    size_t bytes =
        rc == 0 ? gets_size(json_object_get(ans, "responses"), j->txn->max_get_bytes) : 0;
    json_decref(ans);
    if (rc < 0)
        job_finish(j, rc, err.message);
    else if (bytes == SIZE_MAX)
        job_finish(j, CITRUS_EIO, "etcd: unexpected answer to a read");
    else if (bytes > j->txn->max_get_bytes)
        job_finish(j, CITRUS_ERESPTOOBIG, NULL);
    else
        job_send(j);
}

/* Starts the gets' measurement when the txn needs one; true when it did
 * (job_check_done then goes on). */
static bool job_check(txn_job *j)
{
    if (j->checked || !txn_needs_check(j->txn))
        return false;
    j->checked = true;
    json_t *body = etcd_codec_txn_req(j->txn, j->nguards ? j->drop : NULL);
    if (body && (!gets_only(json_object_get(body, "success")) ||
                 !gets_only(json_object_get(body, "failure")))) {
        json_decref(body);
        body = NULL;
    }
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    etcd_client_call_async(j->s->cl, PATH_TXN, text, ETCD_READ, job_check_done, j);
    return true;
}

/* Reads the mod_revision of every key a guard compares. */
static void job_start(txn_job *j)
{
    if (j->nguards == 0) {
        job_send(j);
        return;
    }
    json_t *ops = json_array();
    bool ok = ops != NULL;
    for (size_t i = 0; ok && i < j->txn->ncompares; i++) {
        if (!holds_when_absent(&j->txn->compares[i]))
            continue;
        json_t *r = key_json(j->txn->compares[i].key);
        ok = r && json_object_set_new(r, "keys_only", json_true()) == 0;
        if (!ok)
            json_decref(r);
        else /* json_pack takes r, also when it fails */
            ok = json_array_append_new(ops, json_pack("{s:o}", "request_range", r)) == 0;
    }
    json_t *req = ok ? json_pack("{s:o}", "success", ops) : NULL;
    if (!ok)
        json_decref(ops);
    char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    etcd_client_call_async(j->s->cl, PATH_TXN, text, ETCD_READ, job_read_done, j);
}

static void job_read_done(void *ctx, etcd_result *r)
{
    txn_job *j = ctx;
    errdetail err = {0};
    json_t *ans;
    int rc = etcd_client_decode(j->s->cl, r, ETCD_READ, &ans, &err);
    json_t *resps = json_object_get(ans, "responses");
    size_t k = 0;
    for (size_t i = 0; rc == 0 && i < j->txn->ncompares; i++) {
        if (!holds_when_absent(&j->txn->compares[i]))
            continue;
        json_t *rr = json_object_get(json_array_get(resps, k++), "response_range");
        if (!json_is_object(rr)) {
            rc = errdetail_set(&err, CITRUS_EIO, "etcd: unexpected answer to a read");
            break;
        }
        json_t *kv = json_array_get(json_object_get(rr, "kvs"), 0);
        j->seen[i] = kv ? etcd_codec_int(kv, "mod_revision") : 0;
        j->drop[i] = j->seen[i] == 0;
    }
    json_decref(ans);
    if (rc < 0)
        job_finish(j, rc, err.message);
    else
        job_send(j);
}

static void job_txn_done(void *ctx, etcd_result *r)
{
    txn_job *j = ctx;
    errdetail err = {0};
    json_t *ans;
    int rc = etcd_client_decode(j->s->cl, r, ETCD_WRITE, &ans, &err);
    json_t *t = ans;
    if (rc == 0 && j->nguards) {
        if (!json_is_true(json_object_get(ans, "succeeded"))) { /* a guarded key changed */
            json_decref(ans);
            if (++j->tries < GUARD_TRIES) {
                job_start(j);
                return;
            }
            job_finish(j, CITRUS_EUNAVAILABLE, "a compared key kept changing; nothing applied");
            return;
        }
        t = json_object_get(json_array_get(json_object_get(ans, "responses"), 0), "response_txn");
    }
    int64_t rev = etcd_codec_revision(ans);
    if (rc == 0 && (j->single ? etcd_codec_single_res(t, j->txn, rev, j->out)
                              : etcd_codec_txn_res(t, j->txn, rev, j->out)) < 0) {
        /* etcd did what it answered, we cannot tell what: not "nothing applied" */
        rc = errdetail_set(&err, CITRUS_ETIMEOUT, "etcd: unreadable txn answer; outcome unknown");
    }
    json_decref(ans);
    job_finish(j, rc, err.message);
}

/* ---- store_ops ------------------------------------------------------------------- */

static int etcd_store_range(store *st, const kv_range_req *req, kv_range_res *out)
{
    etcd_store *s = (etcd_store *)st;
    if (!req || !req->key)
        return CITRUS_EINVAL;
    json_t *ans;
    int rc = call(s, "range", PATH_RANGE, etcd_codec_range_req(req), ETCD_READ, &ans, NULL);
    if (rc == 0)
        rc = etcd_codec_range_res(ans, 0, out);
    json_decref(ans);
    if (rc < 0)
        kv_range_res_free(out);
    return rc;
}

typedef struct put_wait {
    store_txn_cb cb;
    void *ctx;
} put_wait;

static void put_done(void *ctx, int rc, const char *err)
{
    put_wait pw = *(put_wait *)ctx;
    free(ctx);
    if (rc < 0)
        report("txn", rc, err);
    pw.cb(pw.ctx, rc);
}

static void etcd_store_txn_async(store *st, const kv_txn *txn, kv_txn_res *out, store_txn_cb cb,
                                 void *ctx)
{
    etcd_store *s = (etcd_store *)st;
    if (s->puts && etcd_batch_takes(txn)) {
        put_wait *pw = malloc(sizeof(*pw));
        if (!pw) {
            cb(ctx, CITRUS_ENOMEM);
            return;
        }
        *pw = (put_wait){.cb = cb, .ctx = ctx};
        etcd_batch_submit(s->puts, txn, out, put_done, pw);
        return;
    }
    int rc = txn ? 0 : CITRUS_EINVAL; /* store.c checked its shape */
    txn_job *j = rc == 0 ? job_new((etcd_store *)st, txn, out, cb, ctx) : NULL;
    if (rc == 0 && !j)
        rc = CITRUS_ENOMEM;
    if (rc < 0) {
        cb(ctx, rc);
        return;
    }
    job_start(j);
}

typedef struct txn_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int rc;
} txn_wait;

static void txn_wait_done(void *ctx, int rc)
{
    txn_wait *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static int etcd_store_txn(store *st, const kv_txn *txn, kv_txn_res *out)
{
    etcd_store *s = (etcd_store *)st;
    if (etcd_client_on_io_thread(s->cl))
        return report("txn", CITRUS_EINTERNAL, "synchronous txn from a store callback");
    txn_wait w = {.done = false};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    etcd_store_txn_async(st, txn, out, txn_wait_done, &w);
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    return w.rc;
}

static int etcd_store_watch_open(store *st, const char *prefix, int64_t from_rev, store_watch_cb cb,
                                 void *ctx, store_watch **out, int64_t *compact_rev)
{
    etcd_store *s = (etcd_store *)st;
    if (compact_rev)
        *compact_rev = compact_get(s);
    return etcd_watch_open(s->hub, prefix, from_rev, cb, ctx, out, compact_rev);
}

/* The hub's check: refuses what is known compacted; with probe, asks etcd
 * whether from_rev can still be read (and so watched). */
static int check_from(void *ctx, int64_t from_rev, bool need_probe, int64_t *compact)
{
    etcd_store *s = ctx;
    int rc = from_rev < compact_get(s) ? CITRUS_ECOMPACTED : 0;
    if (rc == 0 && need_probe) {
        int64_t rev;
        rc = probe(s, from_rev, &rev, NULL);
        if (rc == CITRUS_ECOMPACTED)
            compact_find(s, &rev, NULL);
    }
    *compact = compact_get(s);
    if (rc == CITRUS_ECOMPACTED && *compact <= from_rev)
        *compact = from_rev + 1; /* compact_find failed: at least this */
    return rc;
}

static void on_compacted(void *ctx, int64_t rev)
{
    compact_note(ctx, rev);
}

static int etcd_store_lease_grant(store *st, int64_t ttl, int64_t *id, int64_t *granted_ttl)
{
    json_t *ans;
    int rc = call((etcd_store *)st, "lease_grant", PATH_GRANT,
                  json_pack("{s:o}", "TTL", etcd_codec_i64(ttl)), ETCD_WRITE, &ans, NULL);
    if (rc == 0) {
        *id = etcd_codec_int(ans, "ID");
        if (granted_ttl)
            *granted_ttl = etcd_codec_int(ans, "TTL");
        if (*id <= 0)
            rc = report("lease_grant", CITRUS_EIO, "etcd granted no lease id");
    }
    json_decref(ans);
    return rc;
}

static int etcd_store_lease_keepalive(store *st, int64_t id, int64_t *ttl)
{
    json_t *ans;
    int rc = call((etcd_store *)st, "lease_keepalive", PATH_KEEPALIVE,
                  json_pack("{s:o}", "ID", etcd_codec_i64(id)), ETCD_READ, &ans, NULL);
    if (rc == 0) {
        int64_t left = etcd_codec_int(ans, "TTL"); /* 0: no such lease */
        if (left <= 0)
            rc = CITRUS_ENOLEASE;
        else if (ttl)
            *ttl = left;
    }
    json_decref(ans);
    return rc;
}

static int etcd_store_lease_revoke(store *st, int64_t id)
{
    json_t *ans;
    int rc = call((etcd_store *)st, "lease_revoke", PATH_REVOKE,
                  json_pack("{s:o}", "ID", etcd_codec_i64(id)), ETCD_WRITE, &ans, NULL);
    json_decref(ans);
    return rc;
}

/* One refresh of the cluster view: the member list, then every member's
 * own /v3/maintenance/status at its client URL, in parallel. Runs on the
 * client's I/O thread; the answers arrive there one at a time. */
typedef struct view_job view_job;
typedef struct view_ask { /* one member's status call */
    view_job *j;
    bool answered;
} view_ask;

struct view_job {
    etcd_store *s;
    json_t *members; /* the member list; NULL when it could not be read */
    size_t pending, answered;
    int alarm;                         /* the alarm list: -1 not read, 0 no NOSPACE, 1 NOSPACE */
    int64_t db_size, db_in_use, quota; /* the members' largest */
    char leader_id[32];                /* a uint64, as etcd writes it */
    view_ask *ask;                     /* one per member */
};

static void view_finish(view_job *j)
{
    etcd_store *s = j->s;
    pthread_mutex_lock(&s->mu);
    cluster_view v = s->view;
    pthread_mutex_unlock(&s->mu);
    v.leader[0] = '\0';
    size_t n = json_array_size(j->members);
    if (j->members)
        memset(v.member, 0, sizeof(v.member));
    for (size_t i = 0; i < STORE_MAX_MEMBERS; i++) /* kept from before when no list came */
        v.member[i].healthy = v.member[i].leader = false;
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(j->members, i);
        const char *id = json_string_value(json_object_get(m, "ID"));
        const char *name = json_string_value(json_object_get(m, "name"));
        const char *url = json_string_value(json_array_get(json_object_get(m, "clientURLs"), 0));
        bool leader = j->leader_id[0] && id && strcmp(id, j->leader_id) == 0;
        const char *shown = name && name[0] ? name : id ? id : "";
        if (leader)
            snprintf(v.leader, sizeof(v.leader), "%s", shown);
        if (i >= STORE_MAX_MEMBERS)
            continue;
        store_member *sm = &v.member[i];
        snprintf(sm->name, sizeof(sm->name), "%s", shown);
        snprintf(sm->url, sizeof(sm->url), "%s", url ? url : "");
        sm->healthy = j->ask[i].answered;
        sm->leader = leader;
    }
    if (j->members)
        v.members = (int)n;
    v.healthy = (int)j->answered;
    if (j->alarm >= 0)
        v.nospace = j->alarm > 0;
    if (j->answered) {
        v.db_size = j->db_size;
        v.db_in_use = j->db_in_use;
        v.quota = j->quota;
    }
    v.at_ms = clock_mono_ms(s->clock);
    pthread_mutex_lock(&s->mu);
    s->view = v;
    s->view_busy = false;
    pthread_cond_broadcast(&s->view_cond);
    pthread_mutex_unlock(&s->mu);
    json_decref(j->members);
    free(j->ask);
    free(j);
}

static void view_member_done(void *ctx, etcd_result *r)
{
    view_ask *a = ctx;
    view_job *j = a->j;
    json_t *ans;
    int rc = etcd_client_decode(j->s->cl, r, ETCD_LOCAL, &ans, NULL);
    const char *leader = rc == 0 ? json_string_value(json_object_get(ans, "leader")) : NULL;
    j->answered += rc == 0;
    a->answered = rc == 0;
    if (rc == 0) {
        int64_t size = etcd_codec_int(ans, "dbSize"), used = etcd_codec_int(ans, "dbSizeInUse");
        int64_t quota = etcd_codec_int(ans, "dbSizeQuota");
        j->db_size = size > j->db_size ? size : j->db_size;
        j->db_in_use = used > j->db_in_use ? used : j->db_in_use;
        j->quota = quota > j->quota ? quota : j->quota;
    }
    if (leader && !j->leader_id[0] && strcmp(leader, "0") != 0)
        snprintf(j->leader_id, sizeof(j->leader_id), "%s", leader);
    json_decref(ans);
    if (--j->pending == 0)
        view_finish(j);
}

/* Whether etcd's alarm list (its answer) holds a NOSPACE alarm. */
static bool alarms_nospace(json_t *ans)
{
    json_t *a = json_object_get(ans, "alarms");
    for (size_t i = 0; i < json_array_size(a); i++) {
        const char *name = json_string_value(json_object_get(json_array_get(a, i), "alarm"));
        if (name && strcmp(name, "NOSPACE") == 0)
            return true;
    }
    return false;
}

static void view_alarm_done(void *ctx, etcd_result *r)
{
    view_job *j = ctx;
    json_t *ans;
    if (etcd_client_decode(j->s->cl, r, ETCD_LOCAL, &ans, NULL) == 0)
        j->alarm = alarms_nospace(ans);
    json_decref(ans);
    if (--j->pending == 0)
        view_finish(j);
}

static void view_list_done(void *ctx, etcd_result *r)
{
    view_job *j = ctx;
    json_t *ans;
    if (etcd_client_decode(j->s->cl, r, ETCD_LOCAL, &ans, NULL) == 0) {
        j->members = json_incref(json_object_get(ans, "members"));
        json_decref(ans);
    }
    size_t n = json_array_size(j->members);
    j->ask = n ? calloc(n, sizeof(*j->ask)) : NULL;
    if (!j->ask) { /* no members, or out of memory: an empty view */
        json_decref(j->members);
        j->members = NULL;
        n = 0;
    }
    /* + 1 until every call is made (some may complete at once), and 1 for
     * the alarm list: asked of one member, in turn, bounded as the rest */
    j->pending = n + 1 + (n > 0);
    j->alarm = -1;
    if (n) {
        json_t *m = json_array_get(j->members, j->s->alarm_turn++ % n);
        const char *url = json_string_value(json_array_get(json_object_get(m, "clientURLs"), 0));
        etcd_client_call_member_async(j->s->cl, url ? url : "", PATH_ALARM,
                                      strdup("{\"action\":\"GET\"}"), MEMBER_TIMEOUT_MS,
                                      view_alarm_done, j);
    }
    for (size_t i = 0; i < n; i++) {
        json_t *urls = json_object_get(json_array_get(j->members, i), "clientURLs");
        const char *url = json_string_value(json_array_get(urls, 0));
        j->ask[i] = (view_ask){.j = j};
        etcd_client_call_member_async(j->s->cl, url ? url : "", PATH_MEMBER_STATUS, strdup("{}"),
                                      MEMBER_TIMEOUT_MS, view_member_done, &j->ask[i]);
    }
    if (--j->pending == 0)
        view_finish(j);
}

/* Starts a refresh of the view unless one is under way; does not wait. */
static void view_kick(etcd_store *s)
{
    pthread_mutex_lock(&s->mu);
    bool busy = s->view_busy;
    s->view_busy = true;
    pthread_mutex_unlock(&s->mu);
    if (busy)
        return;
    view_job *j = calloc(1, sizeof(*j));
    if (!j) {
        pthread_mutex_lock(&s->mu);
        s->view_busy = false;
        pthread_mutex_unlock(&s->mu);
        return;
    }
    j->s = s;
    etcd_client_call_async(s->cl, PATH_MEMBERS, strdup("{}"), ETCD_LOCAL, view_list_done, j);
}

/* At open: a first view, waited for (each call is bounded by a timeout). */
static void view_first(etcd_store *s)
{
    view_kick(s);
    pthread_mutex_lock(&s->mu);
    while (s->view_busy)
        pthread_cond_wait(&s->view_cond, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

/* Fills the cluster fields of out from the view, and starts a refresh when
 * the view is older than VIEW_TTL_MS or disagrees with the read status
 * just made (writable without a known leader, or not with one): status
 * never waits for the members. */
static void status_view(etcd_store *s, bool writable, store_status *out)
{
    pthread_mutex_lock(&s->mu);
    cluster_view v = s->view;
    pthread_mutex_unlock(&s->mu);
    if (clock_mono_ms(s->clock) - v.at_ms >= VIEW_TTL_MS || writable != (v.leader[0] != '\0'))
        view_kick(s);
    snprintf(out->leader, sizeof(out->leader), "%s", v.leader);
    out->members = v.members;
    out->healthy_members = v.healthy;
    out->nospace = v.nospace;
    out->db_size = v.db_size;
    out->db_size_in_use = v.db_in_use;
    out->quota_bytes = v.quota;
    memcpy(out->member, v.member, sizeof(out->member));
    out->quorum = writable;
}

static int etcd_store_status(store *st, store_status *out)
{
    etcd_store *s = (etcd_store *)st;
    int64_t rev = 0;
    int rc = compact_find(s, &rev, NULL);
    pthread_mutex_lock(&s->mu);
    if (rc == 0 && rev > s->last_rev)
        s->last_rev = rev;
    int64_t seen = etcd_client_revision(s->cl);
    out->revision = rc == 0 ? rev : s->last_rev > seen ? s->last_rev : seen;
    out->compact_revision = s->compact_rev;
    pthread_mutex_unlock(&s->mu);
    out->writable = rc == 0;
    out->backend = "etcd";
    status_view(s, rc == 0, out);
    return rc == 0 ? 0 : CITRUS_EUNAVAILABLE;
}

/* Appends page's items to out (moved, not copied). */
static int snapshot_take(kv_snapshot *out, size_t *cap, kv_range_res *page)
{
    if (out->count + page->count > *cap) {
        size_t ncap = *cap ? *cap : 1024;
        while (ncap < out->count + page->count)
            ncap *= 2;
        kv_entry *items = realloc(out->items, ncap * sizeof(*items));
        if (!items)
            return CITRUS_ENOMEM;
        out->items = items;
        *cap = ncap;
    }
    if (page->count)
        memcpy(out->items + out->count, page->items, page->count * sizeof(*page->items));
    out->count += page->count;
    page->count = 0;
    return 0;
}

/* Every key at one revision: the first page is read at the latest
 * revision, the next ones at that same revision. */
static int snapshot_items(etcd_store *s, size_t max_bytes, kv_snapshot *out)
{
    size_t bytes = 0;
    size_t cap = 0;
    char *after = NULL;
    int64_t rev = 0;
    int rc = 0;
    for (bool more = true; rc == 0 && more;) {
        kv_range_req q = {.key = "", .prefix = true, .after = after, .limit = SNAPSHOT_PAGE};
        json_t *req = etcd_codec_range_req(&q);
        if (req && rev && json_object_set_new(req, "revision", etcd_codec_i64(rev)) < 0) {
            json_decref(req);
            req = NULL;
        }
        json_t *ans;
        kv_range_res page = {0};
        rc = call(s, "snapshot", PATH_RANGE, req, ETCD_READ, &ans, NULL);
        if (rc == 0)
            rc = etcd_codec_range_res(ans, 0, &page);
        json_decref(ans);
        if (rc == 0 && !rev)
            rev = page.revision;
        more = page.more && page.count;
        for (size_t i = 0; rc == 0 && max_bytes && i < page.count; i++) {
            bytes += kv_entry_wire_size(strlen(page.items[i].key), page.items[i].value_len, true);
            if (bytes > max_bytes)
                rc = CITRUS_ERESPTOOBIG; /* refused a page at a time, not after the whole */
        }
        if (rc == 0 && page.count) {
            free(after);
            after = strdup(page.items[page.count - 1].key);
            rc = after ? snapshot_take(out, &cap, &page) : CITRUS_ENOMEM;
        }
        kv_range_res_free(&page);
    }
    free(after);
    out->revision = rev;
    return rc;
}

static int lease_cmp(const void *a, const void *b)
{
    int64_t x = ((const kv_lease_info *)a)->id, y = ((const kv_lease_info *)b)->id;
    return x < y ? -1 : x > y;
}

/* The leases, each with its granted TTL and the seconds it has left. */
static int snapshot_leases(etcd_store *s, kv_snapshot *out)
{
    json_t *ans;
    int rc = call(s, "snapshot", PATH_LEASES, json_object(), ETCD_READ, &ans, NULL);
    json_t *leases = json_object_get(ans, "leases");
    size_t n = json_array_size(leases);
    if (rc == 0 && n && !(out->leases = calloc(n, sizeof(*out->leases))))
        rc = CITRUS_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int64_t id = etcd_codec_int(json_array_get(leases, i), "ID");
        json_t *ttl;
        rc = call(s, "snapshot", PATH_TTL, json_pack("{s:o}", "ID", etcd_codec_i64(id)), ETCD_READ,
                  &ttl, NULL);
        int64_t left = rc == 0 ? etcd_codec_int(ttl, "TTL") : -1;
        if (left >= 0) /* -1: expired since the list */
            out->leases[out->nleases++] = (kv_lease_info){
                .id = id, .ttl = etcd_codec_int(ttl, "grantedTTL"), .remaining = left};
        json_decref(ttl);
    }
    json_decref(ans);
    if (out->nleases > 1)
        qsort(out->leases, out->nleases, sizeof(*out->leases), lease_cmp);
    return rc;
}

static int etcd_store_snapshot(store *st, size_t max_bytes, kv_snapshot *out)
{
    etcd_store *s = (etcd_store *)st;
    int rc = CITRUS_ECOMPACTED;
    for (int i = 0; i < SNAPSHOT_TRIES && rc == CITRUS_ECOMPACTED; i++) {
        kv_snapshot_free(out); /* compacted while paging: start over */
        rc = snapshot_items(s, max_bytes, out);
    }
    if (rc == 0)
        rc = snapshot_leases(s, out);
    if (rc == 0) {
        int64_t c = compact_get(s);
        out->compact_revision = c <= out->revision + 1 ? c : out->revision + 1;
    }
    if (rc < 0)
        kv_snapshot_free(out);
    return rc;
}

/* ---- the quota: defragment and disarm ------------------------------------------ */

typedef struct member_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    etcd_client *cl;
    int rc;
    json_t *ans;
    errdetail err;
} member_wait;

static void member_wait_done(void *ctx, etcd_result *r)
{
    member_wait *w = ctx;
    json_t *ans = NULL;
    errdetail err = {0};
    int rc = etcd_client_decode(w->cl, r, ETCD_LOCAL, &ans, &err);
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    w->ans = ans;
    w->err = err;
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* A synchronous call to one member (etcd_client_call_member_async). */
static int member_call(etcd_store *s, const char *url, const char *path, int64_t timeout_ms,
                       json_t **ans, errdetail *e)
{
    member_wait w = {.cl = s->cl};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    etcd_client_call_member_async(s->cl, url, path, strdup("{}"), timeout_ms, member_wait_done, &w);
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    *ans = w.ans;
    if (w.rc < 0 && e)
        *e = w.err;
    return w.rc < 0 ? report("defrag", w.rc, w.err.message) : 0;
}

/* Waits for a view taken after this call (a refresh under way may have
 * started before what the caller changed). */
static void view_fresh(etcd_store *s)
{
    pthread_mutex_lock(&s->mu);
    while (s->view_busy)
        pthread_cond_wait(&s->view_cond, &s->mu);
    pthread_mutex_unlock(&s->mu);
    view_first(s);
}

/* With defrag, defragments every member, one at a time (each one stalls
 * while it runs); then disarms the NOSPACE alarm of each member whose
 * database is back under etcd's quota (when the quota is unknown, etcd
 * < 3.6: after a defragment, always; etcd raises the alarm again at the
 * next write that does not fit), and refreshes the view. */
static int quota_make_room(etcd_store *s, bool defrag)
{
    json_t *list = NULL, *alarms = NULL;
    int rc = call(s, "defrag", PATH_MEMBERS, json_object(), ETCD_LOCAL, &list, NULL);
    json_t *members = json_object_get(list, "members");
    size_t n = json_array_size(members);
    int64_t *size = n ? calloc(n, sizeof(*size)) : NULL, quota = 0;
    if (rc == 0 && n && !size)
        rc = CITRUS_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *urls = json_object_get(json_array_get(members, i), "clientURLs");
        const char *url = json_string_value(json_array_get(urls, 0));
        json_t *ans = NULL;
        if (defrag)
            rc = member_call(s, url ? url : "", PATH_DEFRAG, DEFRAG_TIMEOUT_MS, &ans, NULL);
        json_decref(ans);
        ans = NULL;
        if (rc == 0 && member_call(s, url ? url : "", PATH_MEMBER_STATUS, MEMBER_TIMEOUT_MS, &ans,
                                   NULL) == 0) {
            size[i] = etcd_codec_int(ans, "dbSize");
            int64_t q = etcd_codec_int(ans, "dbSizeQuota");
            quota = q > quota ? q : quota;
        }
        json_decref(ans);
    }
    if (rc == 0)
        rc = call(s, "defrag", PATH_ALARM, json_pack("{s:s}", "action", "GET"), ETCD_READ, &alarms,
                  NULL);
    json_t *list_alarms = json_object_get(alarms, "alarms");
    for (size_t i = 0; rc == 0 && i < json_array_size(list_alarms); i++) {
        json_t *a = json_array_get(list_alarms, i);
        const char *id = json_string_value(json_object_get(a, "memberID"));
        const char *name = json_string_value(json_object_get(a, "alarm"));
        if (!id || !name || strcmp(name, "NOSPACE") != 0)
            continue;
        int64_t at = -1; /* the member's database; -1: not known */
        for (size_t k = 0; k < n; k++) {
            const char *mid = json_string_value(json_object_get(json_array_get(members, k), "ID"));
            if (mid && strcmp(mid, id) == 0)
                at = size[k];
        }
        bool under = quota ? at >= 0 && at < quota : defrag;
        json_t *ans = NULL;
        if (under)
            rc = call(s, "defrag", PATH_ALARM,
                      json_pack("{s:s,s:s,s:s}", "action", "DEACTIVATE", "memberID", id, "alarm",
                                "NOSPACE"),
                      ETCD_WRITE, &ans, NULL);
        json_decref(ans);
    }
    json_decref(alarms);
    json_decref(list);
    free(size);
    view_fresh(s);
    return rc;
}

static int etcd_store_defrag(store *st)
{
    return quota_make_room((etcd_store *)st, true);
}

/* etcd's own compaction (physical: answered once the space is free); then
 * the NOSPACE alarm is disarmed when etcd reports its quota and the
 * members are back under it (their database shrinks only with a
 * defragment: docs/security.md). */
static int etcd_store_compact(store *st, int64_t rev)
{
    etcd_store *s = (etcd_store *)st;
    if (rev <= 0) {
        kv_range_res cur = {0};
        kv_range_req q = {.key = "citrus", .count_only = true};
        int rc = etcd_store_range(st, &q, &cur);
        rev = cur.revision;
        kv_range_res_free(&cur);
        if (rc < 0)
            return rc;
    }
    json_t *ans = NULL;
    int rc = call(s, "compact", "/v3/kv/compaction",
                  json_pack("{s:o,s:b}", "revision", etcd_codec_i64(rev), "physical", 1),
                  ETCD_WRITE, &ans, NULL);
    json_decref(ans);
    if (rc == 0) {
        compact_note(s, rev);
        quota_make_room(s, false); /* compacted either way: the disarm is a bonus */
    }
    return rc;
}

static void etcd_store_close(store *st)
{
    etcd_store *s = (etcd_store *)st;
    etcd_batcher_drain(s->puts); /* queued puts reach etcd before the client closes */
    etcd_watch_free(s->hub);
    etcd_client_free(s->cl);
    etcd_batcher_free(s->puts);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->view_cond);
    free(s);
}

static const store_ops etcd_ops = {
    .range = etcd_store_range,
    .txn = etcd_store_txn,
    .txn_async = etcd_store_txn_async,
    .watch_open = etcd_store_watch_open,
    .watch_close = etcd_watch_close,
    .watch_progress = etcd_watch_progress,
    .lease_grant = etcd_store_lease_grant,
    .lease_keepalive = etcd_store_lease_keepalive,
    .lease_revoke = etcd_store_lease_revoke,
    .status = etcd_store_status,
    .snapshot = etcd_store_snapshot,
    .compact = etcd_store_compact,
    .defrag = etcd_store_defrag,
    .close = etcd_store_close,
};

/* ---- open and the extras ------------------------------------------------------------ */

int store_etcd_open(const store_etcd_options *o, store **out, errdetail *e)
{
    *out = NULL;
    errdetail_clear(e);
    if (!o)
        return errdetail_set(e, CITRUS_EINVAL, "store_etcd: no options");
    etcd_store *s = calloc(1, sizeof(*s));
    if (!s)
        return errdetail_set(e, CITRUS_ENOMEM, "store_etcd: out of memory");
    s->base.ops = &etcd_ops;
    s->clock = o->clock;
    s->compact_rev = 1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->view_cond, NULL);
    etcd_client_options co = {.endpoints = o->endpoints,
                              .nendpoints = o->nendpoints,
                              .connect_timeout_ms = o->connect_timeout_ms,
                              .request_timeout_ms = o->request_timeout_ms,
                              .max_connections = o->max_connections,
                              .clock = o->clock,
                              .ca_file = o->ca_file,
                              .cert_file = o->cert_file,
                              .key_file = o->key_file};
    int rc = etcd_client_new(&co, &s->cl, e);
    s->puts = rc == 0 && o->batch_puts ? etcd_batcher_new(s->cl, PUT_BATCHES, o->clock) : NULL;
    if (rc == 0 && o->batch_puts && !s->puts)
        rc = errdetail_set(e, CITRUS_ENOMEM, "store_etcd: out of memory");
    int64_t rev = 0;
    if (rc == 0) {
        rc = compact_find(s, &rev, e);
        if (rc < 0)
            errdetail_prefix(e, "store_etcd: no etcd endpoint answered");
    }
    if (rc == 0) {
        s->last_rev = rev;
        view_first(s);
        etcd_watch_options wo = {.client = s->cl,
                                 .start_rev = rev + 1,
                                 .ring_revs = o->watch_ring_revs,
                                 .ring_bytes = o->watch_ring_bytes,
                                 .stall_ms = o->watch_stall_ms,
                                 .check_from = check_from,
                                 .compacted = on_compacted,
                                 .ctx = s,
                                 .clock = o->clock};
        rc = etcd_watch_new(&wo, &s->hub);
        if (rc < 0)
            errdetail_set(e, rc, "store_etcd: cannot start the watch thread");
    }
    if (rc < 0) {
        etcd_client_free(s->cl);
        etcd_batcher_free(s->puts);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->view_cond);
        free(s);
        return rc;
    }
    log_info("store_etcd", "connected",
             json_pack("{s:s,s:I,s:I}", "endpoint", etcd_client_endpoint(s->cl), "revision",
                       (json_int_t)rev, "compact_revision", (json_int_t)compact_get(s)));
    *out = &s->base;
    return 0;
}

int store_etcd_compact(store *st, int64_t rev)
{
    if (!st || st->ops != &etcd_ops)
        return CITRUS_EINVAL;
    etcd_store *s = (etcd_store *)st;
    json_t *ans;
    int rc = call(s, "compact", PATH_COMPACT, json_pack("{s:o}", "revision", etcd_codec_i64(rev)),
                  ETCD_WRITE, &ans, NULL);
    json_decref(ans);
    if (rc == 0)
        compact_note(s, rev);
    return rc;
}

const char *store_etcd_endpoint(store *st)
{
    if (!st || st->ops != &etcd_ops)
        return NULL;
    return etcd_client_endpoint(((etcd_store *)st)->cl);
}

size_t store_etcd_watch_streams(store *st)
{
    if (!st || st->ops != &etcd_ops)
        return 0;
    return etcd_watch_streams(((etcd_store *)st)->hub);
}
