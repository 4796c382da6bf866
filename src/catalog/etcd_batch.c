/* catalog/etcd_batch.c — concurrent blind puts to etcd, sent together
 * (see etcd_batch.h).
 *
 * Flow: a put arrives; if fewer than max_inflight batches are at etcd (not
 * counting those out for over STALL_MS) it leaves at once, with whatever
 * waits before it; alone it goes as /v3/kv/put, the gateway's cheapest
 * write. Else it queues. Whenever a batch comes back, the queue's head (up
 * to the limits, stopping before a key already in the batch) leaves as the
 * next batch. So batches grow with the load and a lone put waits for
 * nothing. One batch out at a time measured best (docs/BENCHMARKS.md): the
 * fewer, larger requests, the less etcd's gateway and raft spend per put.
 * Invariant: puts queue only while some batch is out, so every queued put
 * leaves when a batch returns. */
#include "catalog/etcd_batch.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/etcd_codec.h"
#include "citrus/errors.h"

/* etcd's defaults: --max-txn-ops 128, --max-request-bytes 1.5 MiB. The
 * byte bound counts keys and values before base64 (4/3 larger on the
 * wire) plus JSON framing per op. */
#define BATCH_MAX_OPS 128
#define BATCH_MAX_BYTES ((size_t)768 * 1024)
#define OP_OVERHEAD 96
/* A batch at etcd longer than this (a member stalling, a leader election)
 * no longer holds back the next one. */
#define STALL_MS 100

typedef struct item {
    const kv_txn *txn;
    kv_txn_res *out;
    etcd_batch_done_cb done;
    void *ctx;
    struct item *next;
} item;

typedef struct batch batch;

struct etcd_batcher {
    etcd_client *cl;
    int max_inflight;
    const sysclock *clock;
    pthread_mutex_t mu;
    item *head, *tail;   /* waiting; guarded by mu */
    batch *out;          /* batches at etcd (not solo retries); guarded by mu */
    int solos;           /* solo retries at etcd; guarded by mu */
    pthread_cond_t idle; /* nothing queued or out any more */
};

struct batch {
    etcd_batcher *b;
    item *items; /* in order */
    size_t n;
    bool solo;          /* a retry of one put alone: its end sends nothing else */
    int64_t sent_ms;    /* when it left (monotonic) */
    batch *prev, *next; /* in b->out */
};

/* Under mu: whether another batch may leave now. */
static bool may_send_locked(const etcd_batcher *b)
{
    int64_t now = clock_mono_ms(b->clock);
    int fresh = 0;
    for (const batch *o = b->out; o; o = o->next)
        fresh += now - o->sent_ms < STALL_MS;
    return fresh < b->max_inflight;
}

static void out_add_locked(etcd_batcher *b, batch *bt)
{
    bt->sent_ms = clock_mono_ms(b->clock);
    bt->prev = NULL;
    bt->next = b->out;
    if (b->out)
        b->out->prev = bt;
    b->out = bt;
}

static void out_remove_locked(etcd_batcher *b, batch *bt)
{
    if (bt->prev)
        bt->prev->next = bt->next;
    else
        b->out = bt->next;
    if (bt->next)
        bt->next->prev = bt->prev;
}

static void send_batch(batch *bt);

bool etcd_batch_takes(const kv_txn *txn)
{
    return txn && txn->ncompares == 0 && txn->nfailure == 0 && txn->nsuccess == 1 &&
           txn->success[0].type == KV_OP_PUT;
}

etcd_batcher *etcd_batcher_new(etcd_client *cl, int max_inflight, const sysclock *clock)
{
    etcd_batcher *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->cl = cl;
    b->clock = clock;
    b->max_inflight = max_inflight < 1 ? 1 : max_inflight;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->idle, NULL);
    return b;
}

void etcd_batcher_drain(etcd_batcher *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    while (b->head || b->out || b->solos)
        pthread_cond_wait(&b->idle, &b->mu);
    pthread_mutex_unlock(&b->mu);
}

/* Under mu, after a change that may have made the batcher idle. */
static void idle_check_locked(etcd_batcher *b)
{
    if (!b->head && !b->out && !b->solos)
        pthread_cond_broadcast(&b->idle);
}

void etcd_batcher_free(etcd_batcher *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->idle);
    free(b);
}

static size_t item_bytes(const item *it)
{
    const kv_op *op = &it->txn->success[0];
    return strlen(op->key) + op->value_len + OP_OVERHEAD;
}

static bool key_in(const item *list, const char *key)
{
    for (const item *it = list; it; it = it->next)
        if (strcmp(it->txn->success[0].key, key) == 0)
            return true;
    return false;
}

/* Fills bt with the next batch off the queue; under mu, queue not empty. */
static void take_locked(etcd_batcher *b, batch *bt)
{
    *bt = (batch){.b = b};
    item *last = NULL;
    size_t bytes = 0;
    while (b->head && bt->n < BATCH_MAX_OPS) {
        item *it = b->head;
        size_t sz = item_bytes(it);
        if (bt->n > 0 &&
            (bytes + sz > BATCH_MAX_BYTES || key_in(bt->items, it->txn->success[0].key)))
            break;
        b->head = it->next;
        it->next = NULL;
        if (last)
            last->next = it;
        else
            bt->items = it;
        last = it;
        bt->n++;
        bytes += sz;
    }
    if (!b->head)
        b->tail = NULL;
}

static void item_finish(item *it, int rc, const char *err)
{
    if (rc < 0)
        kv_txn_res_free(it->out);
    etcd_batch_done_cb done = it->done;
    void *ctx = it->ctx;
    free(it);
    done(ctx, rc, err ? err : "");
}

static void fail_all(item *list, int rc, const char *err)
{
    for (item *it = list, *next; it; it = next) {
        next = it->next;
        item_finish(it, rc, err);
    }
}

/* Errors that say the same about every put of a batch: no point sending
 * each alone. Any other refusal may come from one put (its lease is gone,
 * its key too large) and was for all of them, as etcd applies all or
 * nothing. */
static bool shared_error(int rc)
{
    return rc == CITRUS_ETIMEOUT || rc == CITRUS_EUNAVAILABLE || rc == CITRUS_ECLOSED ||
           rc == CITRUS_ENOMEM || rc == CITRUS_ENOQUORUM;
}

/* The answer of a batch of n > 1: each put's result out of responses[i]. */
static int spread(batch *bt, json_t *ans)
{
    int64_t rev = etcd_codec_revision(ans);
    json_t *resps = json_object_get(ans, "responses");
    if (!json_is_true(json_object_get(ans, "succeeded")) || json_array_size(resps) != bt->n)
        return CITRUS_ETIMEOUT;
    size_t i = 0;
    for (item *it = bt->items; it; it = it->next, i++) {
        json_t *one = json_object_get(json_array_get(resps, i), "response_put");
        if (!json_is_object(one) || etcd_codec_single_res(one, it->txn, rev, it->out) < 0)
            return CITRUS_ETIMEOUT;
    }
    return 0;
}

/* done came back: sends the next batch if puts wait. */
static void next_batch(etcd_batcher *b, batch *done)
{
    batch *bt = calloc(1, sizeof(*bt));
    item *stuck = NULL;
    pthread_mutex_lock(&b->mu);
    out_remove_locked(b, done);
    if (b->head && bt) {
        take_locked(b, bt);
        out_add_locked(b, bt);
    } else if (!b->out) {
        stuck = b->head; /* out of memory: nothing would send these */
        b->head = b->tail = NULL;
    }
    idle_check_locked(b);
    pthread_mutex_unlock(&b->mu);
    if (bt && bt->items) {
        send_batch(bt);
        return;
    }
    free(bt);
    fail_all(stuck, CITRUS_ENOMEM, "out of memory");
}

static void batch_done(void *ctx, etcd_result *r)
{
    batch *bt = ctx;
    etcd_batcher *b = bt->b;
    errdetail err = {0};
    json_t *ans;
    int rc = etcd_client_decode(b->cl, r, ETCD_WRITE, &ans, &err);
    if (rc == 0) {
        rc = bt->n == 1 ? etcd_codec_single_res(ans, bt->items->txn, etcd_codec_revision(ans),
                                                bt->items->out)
                        : spread(bt, ans);
        if (rc < 0) /* etcd did what it answered, we cannot tell what */
            rc = errdetail_set(&err, CITRUS_ETIMEOUT,
                               "etcd: unreadable put answer; outcome unknown");
    }
    json_decref(ans);
    bool solo = bt->solo;
    item *items = bt->items;
    size_t n = bt->n;
    if (!solo)
        next_batch(b, bt);
    free(bt);
    if (solo) {
        pthread_mutex_lock(&b->mu);
        b->solos--;
        idle_check_locked(b);
        pthread_mutex_unlock(&b->mu);
    }
    if (rc == 0) {
        fail_all(items, 0, NULL);
        return;
    }
    if (n == 1 || shared_error(rc)) {
        fail_all(items, rc, err.message);
        return;
    }
    for (item *it = items, *next; it; it = next) { /* nothing applied: each alone */
        next = it->next;
        it->next = NULL;
        batch *one = calloc(1, sizeof(*one));
        if (!one) {
            item_finish(it, CITRUS_ENOMEM, "out of memory");
            continue;
        }
        *one = (batch){.b = b, .items = it, .n = 1, .solo = true};
        pthread_mutex_lock(&b->mu);
        b->solos++;
        pthread_mutex_unlock(&b->mu);
        send_batch(one);
    }
}

static char *batch_body(const batch *bt, const char **path)
{
    json_t *body;
    if (bt->n == 1) {
        body = etcd_codec_single_req(bt->items->txn, path);
    } else {
        kv_op *ops = malloc(bt->n * sizeof(*ops));
        size_t i = 0;
        for (const item *it = bt->items; ops && it; it = it->next)
            ops[i++] = it->txn->success[0];
        kv_txn all = {.success = ops, .nsuccess = bt->n};
        body = ops ? etcd_codec_txn_req(&all, NULL) : NULL;
        free(ops);
        *path = "/v3/kv/txn";
    }
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    return text;
}

static void send_batch(batch *bt)
{
    const char *path = "/v3/kv/put";
    char *text = batch_body(bt, &path);
    /* text NULL: the client answers the call with CITRUS_ENOMEM */
    etcd_client_call_async(bt->b->cl, path, text, ETCD_WRITE, batch_done, bt);
}

void etcd_batch_submit(etcd_batcher *b, const kv_txn *txn, kv_txn_res *out, etcd_batch_done_cb done,
                       void *ctx)
{
    memset(out, 0, sizeof(*out));
    item *it = calloc(1, sizeof(*it));
    batch *bt = malloc(sizeof(*bt));
    if (!it || !bt) {
        free(it);
        free(bt);
        done(ctx, CITRUS_ENOMEM, "out of memory");
        return;
    }
    *it = (item){.txn = txn, .out = out, .done = done, .ctx = ctx};
    pthread_mutex_lock(&b->mu);
    if (b->tail)
        b->tail->next = it;
    else
        b->head = it;
    b->tail = it;
    bool go = may_send_locked(b);
    if (go) {
        take_locked(b, bt);
        out_add_locked(b, bt);
    }
    pthread_mutex_unlock(&b->mu);
    if (go)
        send_batch(bt);
    else
        free(bt);
}
