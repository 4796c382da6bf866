/* catalog/etcd_client.c — the libcurl multi loop that carries every call to
 * etcd's gateway (see etcd_client.h).
 *
 * Threads: callers put calls on the submit queue and stream commands
 * (resume, close) on the command list, under mu, and wake the I/O thread
 * with curl_multi_wakeup. Only the I/O thread touches curl handles, the
 * list of running transfers and the easy-handle pool.
 *
 * "Sent": curl reads a request body through read_cb only once the
 * connection is up and the request line is out, so a call whose read_cb
 * never ran did not reach etcd and may go to another endpoint. seek_cb
 * refuses the rewind curl would need to send a write a second time. */
#include "catalog/etcd_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "citrus/errors.h"
#include "core/strbuf.h"
#include "obs/log.h"

#define DEFAULT_CONNECT_MS 1000
#define DEFAULT_REQUEST_MS 5000
#define DEFAULT_MAX_CONNS 32
#define POLL_MAX_MS 1000
#define EASY_POOL_MAX 64
#define MAX_ENDPOINT_LEN 400
#define MAX_ENDPOINTS 64
#define PENALTY_MS 2000 /* an endpoint that failed is not tried first for this long */
#define MAX_MESSAGE ((size_t)256 * 1024 * 1024)
#define TCP_KEEPIDLE_S 10L
#define TCP_KEEPINTVL_S 5L

typedef struct etcd_call {
    etcd_client *c;
    char *member;    /* a member's URL: one attempt there, not at the endpoints */
    long timeout_ms; /* for a member call */
    const char *path;
    char *body;
    size_t body_len, body_off;
    etcd_call_kind kind;
    etcd_stream *stream; /* NULL for a unary call */
    etcd_client_done_cb done;
    void *ctx;
    CURL *easy;
    int ep;         /* endpoint of the current attempt */
    uint64_t tried; /* endpoints this call tried (bit per endpoint) */
    bool sent;      /* read_cb ran: the request may have reached etcd */
    strbuf resp;    /* unary: the whole answer; stream: unparsed bytes; bounded by MAX_MESSAGE */
    char curl_err[CURL_ERROR_SIZE];
    struct etcd_call *next;          /* submit queue, under mu */
    struct etcd_call *aprev, *anext; /* running transfers, I/O thread */
} etcd_call;

struct etcd_stream {
    etcd_call call;
    etcd_stream_msg_cb on_msg;
    etcd_stream_end_cb on_end;
    void *ctx;
    /* I/O thread only */
    size_t head;      /* offset of the first unparsed line in call.resp */
    size_t scan;      /* bytes after head already searched for '\n' */
    bool paused;      /* by on_msg; lines after it wait in call.resp */
    bool running;     /* its transfer is in the multi */
    bool failed;      /* unreadable data: the transfer is aborted */
    bool ended;       /* on_end ran */
    bool end_pending; /* the transfer ended while paused with lines left */
    int end_rc;
    char end_msg[256 + MAX_ENDPOINT_LEN];
    int err; /* from an error message in the stream */
    char errmsg[256];
    bool do_resume, do_close;
    atomic_int ep; /* the endpoint of the current attempt, for other threads */
    /* under c->mu */
    bool want_resume, want_close, closed, in_cmds;
    etcd_stream *cmd_next;
};

struct etcd_client {
    char **endpoints;
    size_t nendpoints;
    atomic_int cur_ep;       /* the endpoint that last worked */
    atomic_llong *bad_until; /* per endpoint: failed, avoid until (clock_mono_ms) */
    long connect_ms, request_ms, max_conns;
    const sysclock *clock;
    char *ca_file, *cert_file, *key_file; /* NULL: unset */
    CURLM *multi;
    struct curl_slist *headers;       /* with hasleader */
    struct curl_slist *local_headers; /* without */
    atomic_llong max_rev;
    bool curl_ready;

    pthread_mutex_t mu;
    pthread_cond_t cond;        /* stream closes done, io_exited */
    etcd_call *q_head, *q_tail; /* calls to start */
    etcd_stream *cmds;          /* streams with a resume or close request */
    bool stopping, io_exited;
    pthread_t io_th;
    bool io_started;

    /* I/O thread only */
    etcd_call *active;
    CURL *pool[EASY_POOL_MAX];
    size_t npool;
};

/* ---- small helpers ------------------------------------------------------ */

/* The endpoint ep failed: later calls start at the next one (unless some
 * other call already moved on). penalize: it did not answer at all (no
 * connection, a timeout, a connection lost), so calls avoid it for
 * PENALTY_MS; a member that answers "no leader" is only moved past. */
static void endpoint_failed(etcd_client *c, int ep, const char *why, bool penalize)
{
    if (penalize)
        atomic_store(&c->bad_until[ep], clock_mono_ms(c->clock) + PENALTY_MS);
    int expected = ep;
    int next = (ep + 1) % (int)c->nendpoints;
    if (c->nendpoints > 1 && atomic_compare_exchange_strong(&c->cur_ep, &expected, next))
        log_warn("etcd_client", "endpoint failed; using the next one",
                 json_pack("{s:s,s:s,s:s}", "endpoint", c->endpoints[ep], "next",
                           c->endpoints[next], "error", why ? why : ""));
}

static void endpoint_worked(etcd_client *c, int ep)
{
    atomic_store(&c->cur_ep, ep);
    atomic_store(&c->bad_until[ep], 0);
}

/* Where a new call goes first: the endpoint that last worked unless it
 * failed since, else the next one that has not failed recently, else the
 * one whose failure is oldest. */
static int endpoint_first(etcd_client *c)
{
    int n = (int)c->nendpoints, cur = atomic_load(&c->cur_ep), best = cur;
    int64_t now = clock_mono_ms(c->clock), best_until = INT64_MAX;
    for (int k = 0; k < n; k++) {
        int ep = (cur + k) % n;
        int64_t until = atomic_load(&c->bad_until[ep]);
        if (until <= now)
            return ep;
        if (until < best_until) {
            best = ep;
            best_until = until;
        }
    }
    return best;
}

/* Where a call goes after a failure: the next endpoint it has not tried
 * that has not failed recently; -1 when there is none (then the call fails
 * rather than wait on members known not to answer). */
static int endpoint_next(etcd_client *c, const etcd_call *call)
{
    int n = (int)c->nendpoints;
    int64_t now = clock_mono_ms(c->clock);
    for (int k = 1; k < n; k++) {
        int ep = (call->ep + k) % n;
        if (!(call->tried & (1ull << ep)) && atomic_load(&c->bad_until[ep]) <= now)
            return ep;
    }
    return -1;
}

/* ---- etcd errors ----------------------------------------------------------- */

/* etcd's messages for the errors callers act on. unknown: for a write,
 * etcd does not know either whether it will be applied. */
static const struct {
    const char *text;
    int rc;
    bool unknown;
} error_rows[] = {
    {"requested lease not found", CITRUS_ENOLEASE, false},
    {"duplicate key given in txn request", CITRUS_EINVAL, false},
    {"required revision has been compacted", CITRUS_ECOMPACTED, false},
    {"required revision is a future revision", CITRUS_EINVAL, false},
    {"key is not provided", CITRUS_EBADKEY, false},
    {"request is too large", CITRUS_ETOOBIGVAL, false},
    {"received message larger than max", CITRUS_ETOOBIGVAL, false},
    {"too many operations in txn request", CITRUS_ETOOMANY, false},
    {"no leader", CITRUS_EUNAVAILABLE, false},
    {"too many requests", CITRUS_EUNAVAILABLE, false},
    {"database space exceeded", CITRUS_ENOSPACE, false}, /* etcd's NOSPACE alarm */
    {"not capable", CITRUS_EUNAVAILABLE, false},
    {"request timed out", CITRUS_EUNAVAILABLE, true},
    {"context deadline exceeded", CITRUS_EUNAVAILABLE, true},
    {"leader changed", CITRUS_EUNAVAILABLE, true},
    {"server stopped", CITRUS_EUNAVAILABLE, true},
    {"request cancelled", CITRUS_EUNAVAILABLE, true},
};

int etcd_client_error(const char *message, long grpc_code, etcd_call_kind kind)
{
    for (size_t i = 0; message && i < sizeof(error_rows) / sizeof(error_rows[0]); i++)
        if (strstr(message, error_rows[i].text))
            return error_rows[i].unknown && kind == ETCD_WRITE ? CITRUS_ETIMEOUT : error_rows[i].rc;
    switch (grpc_code) {
    case 3:  /* InvalidArgument */
    case 9:  /* FailedPrecondition */
    case 11: /* OutOfRange */
        return CITRUS_EINVAL;
    case 5: /* NotFound */
        return CITRUS_ENOTFOUND;
    case 6: /* AlreadyExists */
        return CITRUS_EEXISTS;
    case 7:  /* PermissionDenied */
    case 12: /* Unimplemented */
    case 16: /* Unauthenticated */
        return CITRUS_EIO;
    case 8: /* ResourceExhausted: refused before anything was applied */
        return CITRUS_EUNAVAILABLE;
    default: /* Unavailable, DeadlineExceeded, Unknown, Internal, ...: */
        return kind == ETCD_WRITE ? CITRUS_ETIMEOUT : CITRUS_EUNAVAILABLE;
    }
}

/* The message and gRPC code of an error answer: unary answers say
 * {"error":"...","message":"...","code":N}, streams
 * {"error":{"grpc_code":N,"message":"..."}}. */
static void error_fields(json_t *j, const char **msg, long *code)
{
    json_t *e = json_object_get(j, "error");
    json_t *m = json_is_object(e) ? json_object_get(e, "message") : json_object_get(j, "message");
    json_t *k = json_is_object(e) ? json_object_get(e, "grpc_code") : json_object_get(j, "code");
    *msg = json_is_string(m)   ? json_string_value(m)
           : json_is_string(e) ? json_string_value(e)
                               : "unknown etcd error";
    *code = json_is_integer(k) ? (long)json_integer_value(k) : 2;
}

static void note_revision(etcd_client *c, json_t *answer)
{
    json_t *rev = json_object_get(json_object_get(answer, "header"), "revision");
    long long r = json_is_string(rev) ? strtoll(json_string_value(rev), NULL, 10) : 0;
    long long cur = atomic_load(&c->max_rev);
    while (r > cur && !atomic_compare_exchange_weak(&c->max_rev, &cur, r))
        ;
}

int etcd_client_decode(etcd_client *c, const etcd_result *r, etcd_call_kind kind, json_t **out,
                       errdetail *err)
{
    *out = NULL;
    if (r->rc < 0)
        return errdetail_set(err, r->rc, "%s", r->errmsg ? r->errmsg : citrus_strerror(r->rc));
    json_t *j = r->len ? json_loadb(r->body, r->len, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    if (j && json_object_get(j, "error")) {
        const char *msg;
        long code;
        error_fields(j, &msg, &code);
        int rc = errdetail_set(err, etcd_client_error(msg, code, kind), "etcd: %s", msg);
        json_decref(j);
        return rc;
    }
    if (!j || r->status != 200) {
        int rc = CITRUS_EIO;
        if (r->status == 200 || r->status >= 500) /* the write may have been applied */
            rc = kind == ETCD_WRITE ? CITRUS_ETIMEOUT : CITRUS_EUNAVAILABLE;
        errdetail_set(err, rc, "etcd answered HTTP %ld: %.200s", r->status, r->body ? r->body : "");
        json_decref(j);
        return rc;
    }
    json_t *res = json_object_get(j, "result");
    if (json_is_object(res)) {
        json_incref(res);
        json_decref(j);
        j = res;
    }
    note_revision(c, j);
    *out = j;
    return 0;
}

/* ---- curl callbacks --------------------------------------------------------- */

static size_t read_cb(char *dst, size_t size, size_t nitems, void *arg)
{
    etcd_call *call = arg;
    call->sent = true;
    size_t n = size * nitems, left = call->body_len - call->body_off;
    if (n > left)
        n = left;
    memcpy(dst, call->body + call->body_off, n);
    call->body_off += n;
    return n;
}

/* curl rewinds the body to send the request again on a fresh connection
 * (a reused one died). Harmless before any of it went out, or for a read
 * or a watch; a write could be applied twice, so the rewind is refused and
 * the call fails as sent: outcome unknown. */
static int seek_cb(void *arg, curl_off_t off, int origin)
{
    etcd_call *call = arg;
    if (origin != SEEK_SET || off != 0)
        return CURL_SEEKFUNC_CANTSEEK;
    if (call->sent && call->kind == ETCD_WRITE)
        return CURL_SEEKFUNC_FAIL;
    call->body_off = 0;
    return CURL_SEEKFUNC_OK;
}

/* One line of a stream: {"result": ...} or {"error": ...}. False when the
 * line cannot be read: the stream is then abandoned. */
static bool stream_line(etcd_stream *st, const char *line, size_t len)
{
    while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
        len--;
    if (len == 0)
        return true;
    json_t *j = json_loadb(line, len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        st->err = CITRUS_EIO;
        snprintf(st->errmsg, sizeof(st->errmsg), "unreadable message in an etcd stream");
        return false;
    }
    json_t *res = json_object_get(j, "result");
    if (json_object_get(j, "error")) {
        const char *msg;
        long code;
        error_fields(j, &msg, &code);
        st->err = etcd_client_error(msg, code, ETCD_READ);
        snprintf(st->errmsg, sizeof(st->errmsg), "etcd: %s", msg);
        if (st->err == CITRUS_EUNAVAILABLE)
            endpoint_failed(st->call.c, st->call.ep, msg, false);
    } else if (json_is_object(res) && st->on_msg(st->ctx, res) == 1) {
        st->paused = true;
    }
    json_decref(j);
    return true;
}

/* Hands complete lines to on_msg until none is left or it pauses. */
static void stream_drain(etcd_stream *st)
{
    strbuf *b = &st->call.resp;
    while (!st->paused && !st->failed && st->head < b->len) {
        char *start = b->data + st->head;
        char *nl = memchr(start + st->scan, '\n', b->len - st->head - st->scan);
        if (!nl) {
            st->scan = b->len - st->head;
            break;
        }
        size_t len = (size_t)(nl - start);
        st->head += len + 1;
        st->scan = 0;
        if (!stream_line(st, start, len))
            st->failed = true;
    }
    if (st->head == b->len) {
        strbuf_reset(b);
        st->head = st->scan = 0;
    } else if (st->head > b->cap / 2) {
        strbuf_consume(b, st->head);
        st->head = 0;
    }
}

static size_t stream_write(etcd_stream *st, const char *data, size_t n)
{
    if (st->paused)
        return CURL_WRITEFUNC_PAUSE; /* curl keeps the data until resumed */
    if (st->failed)
        return 0;
    if (strbuf_add(&st->call.resp, data, n) < 0) { /* over MAX_MESSAGE, or out of memory */
        st->err = CITRUS_ENOMEM;
        snprintf(st->errmsg, sizeof(st->errmsg), "etcd stream message too large");
        st->failed = true;
        return 0;
    }
    stream_drain(st);
    return st->failed ? 0 : n;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
    etcd_call *call = arg;
    size_t n = size * nmemb;
    if (call->stream)
        return stream_write(call->stream, data, n);
    if (strbuf_add(&call->resp, data, n) < 0) /* over MAX_MESSAGE, or out of memory */
        return 0;
    return n;
}

/* ---- transfers (I/O thread) ------------------------------------------------ */

static void call_free(etcd_call *call)
{
    free(call->member);
    free(call->body);
    strbuf_free(&call->resp);
    free(call);
}

static void stream_free(etcd_stream *st)
{
    free(st->call.body);
    strbuf_free(&st->call.resp);
    free(st);
}

static CURL *easy_take(etcd_client *c)
{
    return c->npool ? c->pool[--c->npool] : curl_easy_init();
}

static void easy_give(etcd_client *c, CURL *e)
{
    if (!e)
        return;
    curl_easy_reset(e);
    if (c->npool < EASY_POOL_MAX)
        c->pool[c->npool++] = e;
    else
        curl_easy_cleanup(e);
}

static void active_add(etcd_client *c, etcd_call *call)
{
    call->aprev = NULL;
    call->anext = c->active;
    if (c->active)
        c->active->aprev = call;
    c->active = call;
}

static void active_remove(etcd_client *c, etcd_call *call)
{
    if (call->aprev)
        call->aprev->anext = call->anext;
    else
        c->active = call->anext;
    if (call->anext)
        call->anext->aprev = call->aprev;
    call->aprev = call->anext = NULL;
}

/* Takes a running transfer out of the multi. */
static void transfer_detach(etcd_client *c, etcd_call *call)
{
    curl_multi_remove_handle(c->multi, call->easy);
    active_remove(c, call);
    easy_give(c, call->easy);
    call->easy = NULL;
    if (call->stream)
        call->stream->running = false;
}

static void call_complete(etcd_call *call, int rc, long status, const char *msg)
{
    etcd_result r = {.rc = rc,
                     .status = status,
                     .body = call->resp.data,
                     .len = call->resp.len,
                     .errmsg = msg ? msg : citrus_strerror(rc)};
    call->done(call->ctx, &r);
    if (!r.body) /* the callback took it: forgotten, not freed */
        strbuf_init_max(&call->resp, MAX_MESSAGE);
    call_free(call);
}

static void stream_end(etcd_stream *st, int rc, const char *msg)
{
    if (st->ended)
        return;
    st->ended = true;
    st->on_end(st->ctx, rc, msg);
}

static bool easy_setup(etcd_client *c, etcd_call *call, CURL *e)
{
    char url[MAX_ENDPOINT_LEN + 64];
    snprintf(url, sizeof(url), "%s%s", call->member ? call->member : c->endpoints[call->ep],
             call->path);
    long timeout = call->stream ? 0L : call->member ? call->timeout_ms : c->request_ms;
    bool ok = curl_easy_setopt(e, CURLOPT_URL, url) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_PRIVATE, call) == CURLE_OK;
    ok = ok &&
         curl_easy_setopt(e, CURLOPT_HTTPHEADER,
                          call->kind == ETCD_LOCAL ? c->local_headers : c->headers) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_POST, 1L) == CURLE_OK;
    ok = ok &&
         curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)call->body_len) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_READFUNCTION, read_cb) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_READDATA, call) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, seek_cb) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_SEEKDATA, call) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_WRITEDATA, call) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_ERRORBUFFER, call->curl_err) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_PROXY, "") == CURLE_OK; /* never a proxy */
    ok = ok && curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, TCP_KEEPIDLE_S) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, TCP_KEEPINTVL_S) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK;
    if (c->ca_file)
        ok = ok && curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file) == CURLE_OK;
    if (c->cert_file)
        ok = ok && curl_easy_setopt(e, CURLOPT_SSLCERT, c->cert_file) == CURLE_OK;
    if (c->key_file)
        ok = ok && curl_easy_setopt(e, CURLOPT_SSLKEY, c->key_file) == CURLE_OK;
    return ok;
}

static void call_fail(etcd_call *call, int rc, const char *msg)
{
    if (call->stream)
        stream_end(call->stream, rc, msg);
    else
        call_complete(call, rc, 0, msg);
}

/* Starts an attempt (the first one at endpoint_first). */
static void call_start(etcd_client *c, etcd_call *call)
{
    if (call->tried == 0)
        call->ep = endpoint_first(c);
    call->tried |= 1ull << call->ep;
    if (call->stream)
        atomic_store(&call->stream->ep, call->ep);
    call->sent = false;
    call->body_off = 0;
    call->curl_err[0] = '\0';
    strbuf_reset(&call->resp);
    if (call->stream) {
        etcd_stream *st = call->stream;
        st->head = st->scan = 0;
        st->paused = st->failed = false;
        st->err = 0;
    }
    CURL *e = easy_take(c);
    if (!e || !easy_setup(c, call, e) || curl_multi_add_handle(c->multi, e) != CURLM_OK) {
        easy_give(c, e);
        call_fail(call, CITRUS_ENOMEM, "cannot start a curl transfer");
        return;
    }
    call->easy = e;
    active_add(c, call);
    if (call->stream)
        call->stream->running = true;
}

/* Tries the call again elsewhere; false when there is nowhere to go. */
static bool call_retry(etcd_client *c, etcd_call *call)
{
    int ep = endpoint_next(c, call);
    if (ep < 0)
        return false;
    call->ep = ep;
    call_start(c, call);
    return true;
}

/* A 503 "no leader": the member refused the request before doing anything
 * (the hasleader metadata), so another member may take it, write or not. */
static bool refused_no_leader(const etcd_call *call, long status)
{
    return status == 503 && strstr(strbuf_cstr(&call->resp), "no leader");
}

static void stream_finished(etcd_client *c, etcd_stream *st, CURLcode cc, long status)
{
    etcd_call *call = &st->call;
    const char *detail = call->curl_err[0] ? call->curl_err : curl_easy_strerror(cc);
    if (cc != CURLE_OK && !st->err) {
        endpoint_failed(c, call->ep, detail, true);
        if (!call->sent && call_retry(c, call))
            return;
    }
    int rc = CITRUS_EUNAVAILABLE;
    char msg[sizeof(st->end_msg) + MAX_ENDPOINT_LEN];
    if (st->err) {
        rc = st->err;
        snprintf(msg, sizeof(msg), "%s", st->errmsg);
    } else if (cc == CURLE_OK) {
        snprintf(msg, sizeof(msg), "etcd %s ended the stream (HTTP %ld)", c->endpoints[call->ep],
                 status);
    } else {
        snprintf(msg, sizeof(msg), "etcd %s: %s", c->endpoints[call->ep], detail);
    }
    if (st->paused && st->head < call->resp.len) { /* deliver what arrived first */
        st->end_pending = true;
        st->end_rc = rc;
        snprintf(st->end_msg, sizeof(st->end_msg), "%.255s", msg);
        return;
    }
    stream_end(st, rc, msg);
}

static void call_finished(etcd_client *c, etcd_call *call, CURLcode cc)
{
    long status = 0;
    curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
    transfer_detach(c, call);
    if (call->stream) {
        stream_finished(c, call->stream, cc, status);
        return;
    }
    if (call->member) { /* one attempt, no failover */
        const char *why = call->curl_err[0] ? call->curl_err : curl_easy_strerror(cc);
        call_complete(call, cc == CURLE_OK ? 0 : CITRUS_EUNAVAILABLE, status, why);
        return;
    }
    bool refused = cc == CURLE_OK && refused_no_leader(call, status);
    if (cc == CURLE_OK && !refused) {
        endpoint_worked(c, call->ep);
        call_complete(call, 0, status, NULL);
        return;
    }
    const char *detail = refused             ? "no leader"
                         : call->curl_err[0] ? call->curl_err
                                             : curl_easy_strerror(cc);
    bool unsent = refused || !call->sent;
    endpoint_failed(c, call->ep, detail, !refused);
    if ((unsent || call->kind != ETCD_WRITE) && call_retry(c, call))
        return;
    if (refused) { /* every member refused: decode reports "no leader" */
        call_complete(call, 0, status, NULL);
        return;
    }
    char msg[CURL_ERROR_SIZE + MAX_ENDPOINT_LEN + 64];
    snprintf(msg, sizeof(msg), "etcd %s: %s%s", c->endpoints[call->ep], detail,
             call->sent && call->kind == ETCD_WRITE ? " (after the request was sent)" : "");
    int rc = call->sent && call->kind == ETCD_WRITE ? CITRUS_ETIMEOUT : CITRUS_EUNAVAILABLE;
    call_complete(call, rc, 0, msg);
}

static void finished_run(etcd_client *c)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        etcd_call *call = NULL;
        CURLcode cc = m->data.result;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&call);
        if (call)
            call_finished(c, call, cc);
    }
}

/* Resume and close requests taken from the command list. */
static void commands_run(etcd_client *c, etcd_stream *cmds)
{
    for (etcd_stream *st = cmds, *next; st; st = next) {
        next = st->cmd_next;
        if (st->do_close) {
            if (st->running)
                transfer_detach(c, &st->call);
            pthread_mutex_lock(&c->mu);
            st->closed = true; /* from here on the closer owns and frees st */
            pthread_cond_broadcast(&c->cond);
            pthread_mutex_unlock(&c->mu);
            continue;
        }
        if (!st->do_resume || !st->paused)
            continue;
        st->paused = false;
        stream_drain(st);
        if (st->failed && st->running) {
            transfer_detach(c, &st->call);
            stream_end(st, st->err, st->errmsg);
        } else if (!st->paused && st->end_pending) {
            st->end_pending = false;
            stream_end(st, st->end_rc, st->end_msg);
        } else if (!st->paused && st->running) {
            curl_easy_pause(st->call.easy, CURLPAUSE_CONT);
        }
    }
}

/* Fails everything still queued or running; then closers may go on. */
static void io_shutdown(etcd_client *c)
{
    pthread_mutex_lock(&c->mu);
    etcd_call *q = c->q_head;
    c->q_head = c->q_tail = NULL;
    pthread_mutex_unlock(&c->mu);
    for (etcd_call *call = q, *next; call; call = next) {
        next = call->next;
        if (!call->stream)
            call_complete(call, CITRUS_ECLOSED, 0, "etcd client closed");
    }
    while (c->active) {
        etcd_call *call = c->active;
        transfer_detach(c, call);
        if (!call->stream)
            call_complete(call,
                          call->sent && call->kind == ETCD_WRITE ? CITRUS_ETIMEOUT : CITRUS_ECLOSED,
                          0, "etcd client closed");
    }
    pthread_mutex_lock(&c->mu);
    for (etcd_stream *st = c->cmds; st; st = st->cmd_next)
        st->in_cmds = false;
    c->cmds = NULL;
    c->io_exited = true;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
}

/* A unary call is running: closing waits for it. */
static bool unary_running(const etcd_client *c)
{
    for (const etcd_call *call = c->active; call; call = call->anext)
        if (!call->stream)
            return true;
    return false;
}

static void *io_main(void *arg)
{
    etcd_client *c = arg;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        if (c->stopping && !c->q_head && !unary_running(c)) {
            pthread_mutex_unlock(&c->mu);
            break;
        }
        etcd_call *q = c->q_head;
        c->q_head = c->q_tail = NULL;
        etcd_stream *cmds = c->cmds;
        c->cmds = NULL;
        for (etcd_stream *st = cmds; st; st = st->cmd_next) {
            st->in_cmds = false;
            st->do_resume = st->want_resume;
            st->do_close = st->want_close;
            st->want_resume = false;
        }
        pthread_mutex_unlock(&c->mu);
        for (etcd_call *call = q, *next; call; call = next) {
            next = call->next;
            call_start(c, call);
        }
        commands_run(c, cmds);
        int running = 0;
        curl_multi_perform(c->multi, &running);
        finished_run(c);
        curl_multi_poll(c->multi, NULL, 0, POLL_MAX_MS, NULL);
    }
    io_shutdown(c);
    return NULL;
}

/* ---- the API ------------------------------------------------------------------ */

static int submit(etcd_client *c, etcd_call *call)
{
    pthread_mutex_lock(&c->mu);
    if (c->stopping || c->io_exited) {
        pthread_mutex_unlock(&c->mu);
        return CITRUS_ECLOSED;
    }
    call->next = NULL;
    if (c->q_tail)
        c->q_tail->next = call;
    else
        c->q_head = call;
    c->q_tail = call;
    pthread_mutex_unlock(&c->mu);
    curl_multi_wakeup(c->multi);
    return 0;
}

void etcd_client_call_async(etcd_client *c, const char *path, char *body, etcd_call_kind kind,
                            etcd_client_done_cb cb, void *ctx)
{
    etcd_call *call = body ? calloc(1, sizeof(*call)) : NULL;
    if (!call) {
        free(body);
        etcd_result r = {.rc = CITRUS_ENOMEM, .errmsg = "out of memory"};
        cb(ctx, &r);
        return;
    }
    call->c = c;
    strbuf_init_max(&call->resp, MAX_MESSAGE);
    call->path = path;
    call->body = body;
    call->body_len = strlen(body);
    call->kind = kind;
    call->done = cb;
    call->ctx = ctx;
    if (submit(c, call) < 0) {
        etcd_result r = {.rc = CITRUS_ECLOSED, .errmsg = "etcd client closed"};
        call_free(call);
        cb(ctx, &r);
    }
}

void etcd_client_call_member_async(etcd_client *c, const char *member_url, const char *path,
                                   char *body, int64_t timeout_ms, etcd_client_done_cb cb,
                                   void *ctx)
{
    size_t n = member_url ? strlen(member_url) : 0;
    while (n && member_url[n - 1] == '/')
        n--;
    if (n == 0 || n > MAX_ENDPOINT_LEN ||
        (strncmp(member_url, "http://", 7) != 0 && strncmp(member_url, "https://", 8) != 0)) {
        free(body);
        etcd_result r = {.rc = CITRUS_EINVAL, .errmsg = "member URL is not an http(s):// URL"};
        cb(ctx, &r);
        return;
    }
    etcd_call *call = body ? calloc(1, sizeof(*call)) : NULL;
    char *member = call ? strndup(member_url, n) : NULL;
    if (!member) {
        free(call);
        free(body);
        etcd_result r = {.rc = CITRUS_ENOMEM, .errmsg = "out of memory"};
        cb(ctx, &r);
        return;
    }
    *call = (etcd_call){.c = c,
                        .member = member,
                        .resp = {.max = MAX_MESSAGE},
                        .timeout_ms = timeout_ms > 0 ? (long)timeout_ms : c->request_ms,
                        .path = path,
                        .body = body,
                        .body_len = strlen(body),
                        .kind = ETCD_LOCAL,
                        .done = cb,
                        .ctx = ctx};
    if (submit(c, call) < 0) {
        etcd_result r = {.rc = CITRUS_ECLOSED, .errmsg = "etcd client closed"};
        call_free(call);
        cb(ctx, &r);
    }
}

/* A synchronous caller waiting for its call. */
typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    etcd_result res;
    char msg[CURL_ERROR_SIZE + MAX_ENDPOINT_LEN + 64];
} waiter;

static void waiter_done(void *ctx, etcd_result *r)
{
    waiter *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->res = *r;
    r->body = NULL; /* taken */
    snprintf(w->msg, sizeof(w->msg), "%s", r->errmsg ? r->errmsg : "");
    w->res.errmsg = w->msg;
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int etcd_client_call(etcd_client *c, const char *path, json_t *req, etcd_call_kind kind,
                     json_t **out, errdetail *err)
{
    *out = NULL;
    if (etcd_client_on_io_thread(c))
        return errdetail_set(err, CITRUS_EINTERNAL, "synchronous etcd call from a store callback");
    waiter w = {.done = false};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    etcd_client_call_async(c, path, json_dumps(req, JSON_COMPACT), kind, waiter_done, &w);
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    int rc = etcd_client_decode(c, &w.res, kind, out, err);
    free(w.res.body);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    return rc;
}

int etcd_client_stream_open(etcd_client *c, const char *path, json_t *req,
                            etcd_stream_msg_cb on_msg, etcd_stream_end_cb on_end, void *ctx,
                            etcd_stream **out)
{
    *out = NULL;
    etcd_stream *st = calloc(1, sizeof(*st));
    char *body = json_dumps(req, JSON_COMPACT);
    if (!st || !body) {
        free(st);
        free(body);
        return CITRUS_ENOMEM;
    }
    st->call.c = c;
    strbuf_init_max(&st->call.resp, MAX_MESSAGE);
    st->call.path = path;
    st->call.body = body;
    st->call.body_len = strlen(body);
    st->call.kind = ETCD_READ;
    st->call.stream = st;
    atomic_init(&st->ep, 0);
    st->on_msg = on_msg;
    st->on_end = on_end;
    st->ctx = ctx;
    if (submit(c, &st->call) < 0) {
        stream_free(st);
        return CITRUS_ECLOSED;
    }
    *out = st;
    return 0;
}

/* Puts st on the command list; mu held. */
static void cmd_enqueue(etcd_client *c, etcd_stream *st)
{
    if (st->in_cmds)
        return;
    st->in_cmds = true;
    st->cmd_next = c->cmds;
    c->cmds = st;
}

void etcd_client_stream_resume(etcd_stream *st)
{
    etcd_client *c = st->call.c;
    pthread_mutex_lock(&c->mu);
    bool live = !c->stopping && !c->io_exited;
    if (live) {
        st->want_resume = true;
        cmd_enqueue(c, st);
    }
    pthread_mutex_unlock(&c->mu);
    if (live)
        curl_multi_wakeup(c->multi);
}

/* On the I/O thread: forgets st wherever the loop could still find it. */
static void stream_unlink_io(etcd_client *c, etcd_stream *st)
{
    pthread_mutex_lock(&c->mu);
    for (etcd_stream **p = &c->cmds; *p; p = &(*p)->cmd_next)
        if (*p == st) {
            *p = st->cmd_next;
            break;
        }
    etcd_call *prev = NULL;
    for (etcd_call *q = c->q_head; q; prev = q, q = q->next)
        if (q == &st->call) {
            if (prev)
                prev->next = q->next;
            else
                c->q_head = q->next;
            if (c->q_tail == q)
                c->q_tail = prev;
            break;
        }
    pthread_mutex_unlock(&c->mu);
    if (st->running)
        transfer_detach(c, &st->call);
}

void etcd_client_stream_close(etcd_stream *st)
{
    if (!st)
        return;
    etcd_client *c = st->call.c;
    if (etcd_client_on_io_thread(c)) {
        stream_unlink_io(c, st);
    } else {
        pthread_mutex_lock(&c->mu);
        if (!c->io_exited) {
            st->want_close = true;
            cmd_enqueue(c, st);
            pthread_mutex_unlock(&c->mu);
            curl_multi_wakeup(c->multi);
            pthread_mutex_lock(&c->mu);
            while (!st->closed && !c->io_exited)
                pthread_cond_wait(&c->cond, &c->mu);
        }
        pthread_mutex_unlock(&c->mu);
    }
    stream_free(st);
}

void etcd_client_stream_stalled(etcd_stream *st)
{
    endpoint_failed(st->call.c, atomic_load(&st->ep), "watch stream stalled", true);
}

int64_t etcd_client_revision(etcd_client *c)
{
    return atomic_load(&c->max_rev);
}

const char *etcd_client_endpoint(etcd_client *c)
{
    return c->endpoints[atomic_load(&c->cur_ep)];
}

bool etcd_client_on_io_thread(etcd_client *c)
{
    return c->io_started && pthread_equal(pthread_self(), c->io_th);
}

static int copy_endpoints(etcd_client *c, const etcd_client_options *o, errdetail *err)
{
    if (!o->endpoints || o->nendpoints == 0)
        return errdetail_set(err, CITRUS_EINVAL, "etcd: no endpoints");
    if (o->nendpoints > MAX_ENDPOINTS)
        return errdetail_set(err, CITRUS_EINVAL, "etcd: more than %d endpoints", MAX_ENDPOINTS);
    c->endpoints = calloc(o->nendpoints, sizeof(*c->endpoints));
    c->bad_until = calloc(o->nendpoints, sizeof(*c->bad_until));
    if (!c->endpoints || !c->bad_until)
        return CITRUS_ENOMEM;
    for (size_t i = 0; i < o->nendpoints; i++)
        atomic_init(&c->bad_until[i], 0);
    c->nendpoints = o->nendpoints;
    for (size_t i = 0; i < o->nendpoints; i++) {
        const char *e = o->endpoints[i];
        size_t n = e ? strlen(e) : 0;
        while (n && e[n - 1] == '/')
            n--;
        if (n == 0 || n > MAX_ENDPOINT_LEN ||
            (strncmp(e, "http://", 7) != 0 && strncmp(e, "https://", 8) != 0))
            return errdetail_set(err, CITRUS_EINVAL,
                                 "etcd: endpoint %zu (%s) is not an http(s):// URL", i,
                                 e ? e : "null");
        c->endpoints[i] = strndup(e, n);
        if (!c->endpoints[i])
            return CITRUS_ENOMEM;
    }
    return 0;
}

/* The TLS files, checked readable now so that a wrong path is an error
 * that names it rather than every call's handshake failing. */
static int copy_tls(etcd_client *c, const etcd_client_options *o, errdetail *err)
{
    static const char *const names[] = {"ca_file", "cert_file", "key_file"};
    const char *in[] = {o->ca_file, o->cert_file, o->key_file};
    char **out[] = {&c->ca_file, &c->cert_file, &c->key_file};
    for (size_t i = 0; i < 3; i++) {
        if (!in[i] || !*in[i])
            continue;
        if (access(in[i], R_OK) < 0)
            return errdetail_set(err, CITRUS_EINVAL, "etcd: tls.%s %s: cannot read: %s", names[i],
                                 in[i], strerror(errno));
        *out[i] = strdup(in[i]);
        if (!*out[i])
            return CITRUS_ENOMEM;
    }
    if (!c->cert_file != !c->key_file)
        return errdetail_set(err, CITRUS_EINVAL,
                             "etcd: tls.cert_file and tls.key_file go together");
    return 0;
}

static int curl_init(etcd_client *c, errdetail *err)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return errdetail_set(err, CITRUS_EIO, "etcd: curl_global_init failed");
    c->curl_ready = true;
    c->multi = curl_multi_init();
    /* ETCD_LOCAL calls send the first two only. */
    static const char *const hdrs[] = {"Content-Type: application/json",
                                       "Expect:", "Grpc-Metadata-hasleader: true"};
    for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
        struct curl_slist *l = curl_slist_append(c->headers, hdrs[i]);
        if (!l)
            return CITRUS_ENOMEM;
        c->headers = l;
        if (i < 2) {
            l = curl_slist_append(c->local_headers, hdrs[i]);
            if (!l)
                return CITRUS_ENOMEM;
            c->local_headers = l;
        }
    }
    if (!c->multi || curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, c->max_conns) != CURLM_OK)
        return errdetail_set(err, CITRUS_ENOMEM, "etcd: cannot create a curl multi handle");
    return 0;
}

void etcd_client_free(etcd_client *c)
{
    if (!c)
        return;
    if (c->io_started) {
        pthread_mutex_lock(&c->mu);
        c->stopping = true;
        pthread_mutex_unlock(&c->mu);
        curl_multi_wakeup(c->multi);
        pthread_join(c->io_th, NULL);
    }
    for (size_t i = 0; i < c->npool; i++)
        curl_easy_cleanup(c->pool[i]);
    if (c->multi)
        curl_multi_cleanup(c->multi);
    curl_slist_free_all(c->headers);
    curl_slist_free_all(c->local_headers);
    if (c->curl_ready)
        curl_global_cleanup();
    for (size_t i = 0; c->endpoints && i < c->nendpoints; i++)
        free(c->endpoints[i]);
    free(c->endpoints);
    free(c->ca_file);
    free(c->cert_file);
    free(c->key_file);
    free(c->bad_until);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cond);
    free(c);
}

int etcd_client_new(const etcd_client_options *o, etcd_client **out, errdetail *err)
{
    *out = NULL;
    errdetail_clear(err);
    etcd_client *c = calloc(1, sizeof(*c));
    if (!c)
        return errdetail_set(err, CITRUS_ENOMEM, "etcd: out of memory");
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cond, NULL);
    atomic_init(&c->cur_ep, 0);
    atomic_init(&c->max_rev, 0);
    c->connect_ms = o->connect_timeout_ms > 0 ? (long)o->connect_timeout_ms : DEFAULT_CONNECT_MS;
    c->request_ms = o->request_timeout_ms > 0 ? (long)o->request_timeout_ms : DEFAULT_REQUEST_MS;
    c->max_conns = o->max_connections > 0 ? o->max_connections : DEFAULT_MAX_CONNS;
    c->clock = o->clock;
    int rc = copy_endpoints(c, o, err);
    if (rc == 0)
        rc = copy_tls(c, o, err);
    if (rc == 0)
        rc = curl_init(c, err);
    if (rc == 0) {
        int e = pthread_create(&c->io_th, NULL, io_main, c);
        c->io_started = e == 0;
        if (e)
            rc =
                errdetail_set(err, CITRUS_ENOMEM, "etcd: starting the I/O thread: %s", strerror(e));
    }
    if (rc < 0) {
        if (rc == CITRUS_ENOMEM && err && !err->message[0])
            errdetail_set(err, rc, "etcd: out of memory");
        etcd_client_free(c);
        return rc;
    }
    *out = c;
    return 0;
}
