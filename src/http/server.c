/* http/server.c — libmicrohttpd glue: request lifecycle, route dispatch,
 * body limits, correlation ids, JSON errors, access log and metrics. */
#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>
#include <time.h>

#include "citrus/errors.h"
#include "core/strbuf.h"
#include "core/utf8.h"
#include "http/guard.h"
#include "http/route.h"
#include "http/tls.h"
#include "obs/log.h"
#include "http/workpool.h"
#include "obs/metrics.h"
#include "sys/clock.h"

#define MAX_RESP_HEADERS 16
#define CORR_MAX 128

struct http_server {
    struct MHD_Daemon *daemon;
    workpool *pool; /* for handlers that may block (http_offload) */
    const http_route *routes;
    size_t nroutes;
    void *app;
    size_t max_body;
    size_t max_header;
    unsigned port;
    int listen_fd; /* ours until serve hands it to libmicrohttpd */
    http_server_options opts;
    const char *component;
    bool per_connection; /* a thread per connection: blocking handlers run inline */
    http_tls *tls;       /* NULL: plain HTTP */
    guard_conns *conns;  /* the header deadline of each connection */
    char *origins;       /* ",a,b,": the Origins served (cross_site) */
};

typedef struct resp_header {
    char *name;
    char *value;
} resp_header;

struct http_req {
    http_server *srv;
    struct MHD_Connection *conn;
    const http_route *route; /* NULL when unmatched */
    route_match match;
    char method[16];
    char *path;
    /* The target as received (on_uri): its length as a C string, and why
     * it is refused (NULL: it is not). */
    size_t target_len;
    const char *target_bad;
    strbuf body;       /* bounded by the server's max_body */
    bool body_too_big; /* declared or sent over max_body: 413 at dispatch */
    bool before_ran;   /* the before hook was called */
    /* offload_start handed the request to the work pool: from then on the
     * pool's thread owns it, and the HTTP thread reads nothing of it. Only
     * the HTTP thread writes this. */
    bool handed_off;
    bool started; /* first call seen */
    bool responded;
    char corr[CORR_MAX + 1];
    int64_t start_ns;
    unsigned status;
    resp_header headers[MAX_RESP_HEADERS];
    size_t nheaders;
    /* suspension */
    bool suspended;
    http_resume_fn on_resume;
    void *resume_ctx;
    bool woken; /* http_resume ran for the current suspension; guarded by mu */
    bool gone;  /* the connection closed: replies go nowhere */
    /* offload (http_offload): the handler to run on the work pool */
    http_handler off_fn;
    void *off_ctx;
    workpool_job job;
    bool off_inline;     /* the pool refused: run it here on resume */
    bool in_worker;      /* guarded by mu while on the pool */
    bool parked;         /* http_suspend on the pool */
    bool resume_pending; /* http_resume while in_worker; guarded by mu */
    /* the HTTP thread is in the before hook; guarded by mu. A request that
     * hook parked with http_suspend_to_pool and that is woken meanwhile
     * goes to the pool when the hook returns (req_dispatch), not before. */
    bool in_before;
    struct MHD_Response *stash; /* a reply made on the pool, sent on resume */
    unsigned stash_status;
    /* streaming */
    pthread_mutex_t mu;
    http_stream_fn stream_fn;
    void *stream_ctx;
    void (*stream_free)(void *ctx);
    bool stream_parked;
    bool stream_wake_pending;
    /* who the request is (the gate's) */
    void *principal;
    void (*principal_free)(void *);
};

/* ---------------- correlation ids ---------------- */

static bool corr_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CORR_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.' || c == ':';
        if (!ok)
            return false;
    }
    return true;
}

/* 16 random bytes: from a per-thread buffer refilled by getrandom 16 ids
 * at a time (one syscall per 16 requests; ids are unique, not secret). */
static void corr_random(unsigned char b[16])
{
    static _Thread_local unsigned char buf[256];
    static _Thread_local size_t left;
    if (left < 16) {
        if (getrandom(buf, sizeof(buf), 0) == (ssize_t)sizeof(buf)) {
            left = sizeof(buf);
        } else {
            uint64_t t = (uint64_t)clock_mono_ns(NULL);
            memcpy(b, &t, 8);
            memcpy(b + 8, &t, 8);
            return;
        }
    }
    memcpy(b, buf + sizeof(buf) - left, 16);
    left -= 16;
}

/* A random UUIDv4. */
static void corr_generate(char *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    corr_random(b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 15];
    }
    *o = '\0';
}

/* ---------------- accessors ---------------- */

const char *http_req_method(const http_req *r)
{
    return r->method;
}

const char *http_req_path(const http_req *r)
{
    return r->path;
}

const char *http_req_param(const http_req *r, const char *name)
{
    return route_match_param(&r->match, name);
}

const char *http_req_query(const http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_req_header(const http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

void http_req_peer(const http_req *r, char *buf, size_t len)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char ip[INET6_ADDRSTRLEN] = "";
    unsigned port = 0;
    if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ci->client_addr;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        port = ntohs(in->sin_port);
    }
    if (ip[0])
        snprintf(buf, len, "%s:%u", ip, port);
    else if (len)
        buf[0] = '\0';
}

bool http_req_peer_ipv4(const http_req *r, uint32_t *ip)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr || ci->client_addr->sa_family != AF_INET)
        return false;
    *ip = ntohl(((const struct sockaddr_in *)ci->client_addr)->sin_addr.s_addr);
    return true;
}

size_t http_req_tls_subjects(const http_req *r, const char **out, size_t max)
{
    if (!r->srv->tls)
        return 0;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (!ci || !ci->socket_context)
        return 0;
    return http_tls_conn_subjects(*guard_conn_data(ci->socket_context), out, max);
}

const char *http_req_correlation(const http_req *r)
{
    return r->corr;
}

int64_t http_req_age_ms(const http_req *r)
{
    return (clock_mono_ns(NULL) - r->start_ns) / 1000000;
}

const http_route *http_req_route(const http_req *r)
{
    return r->route;
}

void http_req_set_principal(http_req *r, void *principal, void (*free_fn)(void *))
{
    if (r->principal && r->principal_free)
        r->principal_free(r->principal);
    r->principal = principal;
    r->principal_free = free_fn;
}

void *http_req_principal(const http_req *r)
{
    return r->principal;
}

const unsigned char *http_req_body(const http_req *r, size_t *len)
{
    *len = r->body.len;
    return (const unsigned char *)strbuf_cstr(&r->body);
}

json_t *http_req_json(http_req *r)
{
    json_error_t err;
    if (r->body.len == 0) {
        http_reply_error(r, CITRUS_EBADJSON, "request body must be a JSON document", NULL);
        return NULL;
    }
    json_t *j = json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &err);
    if (!j)
        http_reply_errorf(r, CITRUS_EBADJSON, "malformed JSON at line %d column %d: %s", err.line,
                          err.column, err.text);
    return j;
}

int http_req_query_int(http_req *r, const char *name, int64_t def, int64_t *out)
{
    const char *v = http_req_query(r, name);
    if (!v) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (*v == '\0' || *end != '\0' || errno) {
        http_reply_errorf(r, CITRUS_EINVAL, "query argument '%s' must be an integer", name);
        return CITRUS_EINVAL;
    }
    *out = n;
    return 0;
}

int http_req_query_bool(http_req *r, const char *name, bool def, bool *out)
{
    const char *v = http_req_query(r, name);
    if (!v) {
        *out = def;
    } else if (!*v || !strcmp(v, "true") || !strcmp(v, "1")) {
        *out = true;
    } else if (!strcmp(v, "false") || !strcmp(v, "0")) {
        *out = false;
    } else {
        http_reply_errorf(r, CITRUS_EINVAL, "query argument '%s' must be true or false", name);
        return CITRUS_EINVAL;
    }
    return 0;
}

/* ---------------- responses ---------------- */

void http_add_header(http_req *r, const char *name, const char *value)
{
    if (r->nheaders == MAX_RESP_HEADERS)
        return;
    resp_header *h = &r->headers[r->nheaders];
    h->name = strdup(name);
    h->value = strdup(value);
    if (!h->name || !h->value) {
        free(h->name);
        free(h->value);
        return;
    }
    r->nheaders++;
}

static void free_headers(http_req *r)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    r->nheaders = 0;
}

static int queue(http_req *r, unsigned status, struct MHD_Response *resp, const char *ctype)
{
    if (!resp)
        return CITRUS_ENOMEM;
    if (ctype)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, "X-Correlation-Id", r->corr);
    for (size_t i = 0; i < r->nheaders; i++)
        MHD_add_response_header(resp, r->headers[i].name, r->headers[i].value);
    free_headers(r);
    r->responded = true;
    if (r->gone) {
        MHD_destroy_response(resp);
        return CITRUS_ECLOSED;
    }
    r->status = status;
    if (r->in_worker) { /* the connection is suspended: sent when it resumes */
        r->stash = resp;
        r->stash_status = status;
        return 0;
    }
    enum MHD_Result ok = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    return ok == MHD_YES ? 0 : CITRUS_EIO;
}

int http_reply_raw(http_req *r, unsigned status, const char *content_type, const void *data,
                   size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    return queue(r, status, resp, content_type);
}

int http_reply_take(http_req *r, unsigned status, const char *content_type, char *data, size_t len)
{
    struct MHD_Response *resp =
        data ? MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!resp) {
        free(data);
        return http_reply_raw(r, 500, "application/json",
                              "{\"error\":{\"code\":\"out_of_memory\",\"message\":\"oom\"}}", 52);
    }
    return queue(r, status, resp, content_type);
}

int http_reply_json(http_req *r, unsigned status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text)
        return http_reply_raw(r, 500, "application/json",
                              "{\"error\":{\"code\":\"out_of_memory\",\"message\":\"oom\"}}", 52);
    size_t len = strlen(text);
    text[len] = '\n';
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len + 1, text, MHD_RESPMEM_MUST_FREE);
    if (!resp)
        free(text);
    return queue(r, status, resp, "application/json");
}

/* JSON strings must be UTF-8, but messages may quote client bytes (a path,
 * a parser's excerpt) or be cut mid-character: invalid bytes become '?'. */
static json_t *message_string(const char *msg)
{
    char *clean = malloc(strlen(msg) + 1);
    if (!clean)
        return json_string("(message unavailable)");
    utf8_sanitize(msg, clean);
    json_t *j = json_string(clean);
    free(clean);
    return j;
}

json_t *http_error_body(int err, const char *message, json_t *extra)
{
    json_t *e = json_object();
    json_object_set_new(e, "code", json_string(citrus_err_code(err)));
    json_object_set_new(e, "message", message_string(message ? message : citrus_strerror(err)));
    if (extra) {
        json_object_update(e, extra);
        json_decref(extra);
    }
    json_t *body = json_object();
    json_object_set_new(body, "error", e);
    return body;
}

static bool has_header(const http_req *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return true;
    return false;
}

int http_reply_error(http_req *r, int err, const char *message, json_t *extra)
{
    /* a shard that did not answer in time may well answer the next try */
    if (err == CITRUS_ESHARDDOWN && !has_header(r, "Retry-After"))
        http_add_header(r, "Retry-After", "1");
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

/* ---------------- suspension and streams ---------------- */

void http_suspend(http_req *r, http_resume_fn on_resume, void *ctx)
{
    r->on_resume = on_resume;
    r->resume_ctx = ctx;
    r->suspended = true;
    pthread_mutex_lock(&r->mu);
    r->woken = false;
    pthread_mutex_unlock(&r->mu);
    if (r->in_worker) { /* already suspended; stays so when the pool is done */
        pthread_mutex_lock(&r->mu);
        r->parked = true;
        pthread_mutex_unlock(&r->mu);
    } else {
        MHD_suspend_connection(r->conn);
    }
}

void http_suspend_to_pool(http_req *r, http_resume_fn on_resume, void *ctx)
{
    http_suspend(r, on_resume, ctx);
    pthread_mutex_lock(&r->mu);
    r->parked = true; /* http_resume hands it to the pool, as an offloaded handler's */
    pthread_mutex_unlock(&r->mu);
}

static void run_resumed(workpool_job *job);

/* A parked request woken (resume_pending and in_worker set, mu not held):
 * its on_resume runs on the pool, or, when the pool refuses, on the HTTP
 * thread once the connection resumes. */
static void resume_parked(http_req *r)
{
    r->job.fn = run_resumed;
    if (r->srv->pool && workpool_post(r->srv->pool, &r->job))
        return;
    pthread_mutex_lock(&r->mu); /* refused: on_resume runs on the HTTP thread */
    r->in_worker = false;
    r->resume_pending = false;
    pthread_mutex_unlock(&r->mu);
    MHD_resume_connection(r->conn);
}

void http_resume(http_req *r)
{
    pthread_mutex_lock(&r->mu);
    r->woken = true;
    if (r->in_worker) { /* the pool thread runs on_resume when its handler is done */
        r->resume_pending = true;
        pthread_mutex_unlock(&r->mu);
        return;
    }
    if (r->parked && r->in_before) { /* req_dispatch hands it over when the hook returns */
        r->resume_pending = true;
        pthread_mutex_unlock(&r->mu);
        return;
    }
    /* parked by an offloaded handler or http_suspend_to_pool: on_resume runs there */
    bool on_pool = r->parked;
    if (on_pool) {
        r->in_worker = true;
        r->resume_pending = true;
    }
    pthread_mutex_unlock(&r->mu);
    if (on_pool)
        resume_parked(r);
    else
        MHD_resume_connection(r->conn);
}

int http_offload(http_req *r, http_handler fn, void *ctx)
{
    if (r->in_worker || r->off_inline)
        return fn(r, ctx);
    r->off_fn = fn;
    r->off_ctx = ctx;
    return 0;
}

bool http_offloaded(const http_req *r)
{
    return r->in_worker || r->off_inline;
}

/* On the pool, after the handler or an on_resume ran: runs on_resume while
 * the request parked and was resumed meanwhile; then leaves the pool,
 * resuming the connection unless it stays parked. */
static void worker_finish(http_req *r)
{
    for (;;) {
        pthread_mutex_lock(&r->mu);
        if (r->parked && r->resume_pending) {
            r->parked = false;
            r->resume_pending = false;
            pthread_mutex_unlock(&r->mu);
            http_resume_fn fn = r->on_resume;
            r->on_resume = NULL;
            fn(r, r->resume_ctx);
            continue;
        }
        r->in_worker = false;
        bool resume = !r->parked;
        pthread_mutex_unlock(&r->mu);
        log_set_correlation(NULL);
        if (resume)
            MHD_resume_connection(r->conn);
        return;
    }
}

static void run_offloaded(workpool_job *job)
{
    http_req *r = (http_req *)((char *)job - offsetof(http_req, job));
    log_set_correlation(r->corr);
    http_handler fn = r->off_fn;
    r->off_fn = NULL;
    fn(r, r->off_ctx);
    worker_finish(r);
}

static void run_resumed(workpool_job *job)
{
    http_req *r = (http_req *)((char *)job - offsetof(http_req, job));
    log_set_correlation(r->corr);
    worker_finish(r);
}

/* After the handler asked for http_offload: suspends the connection and
 * hands the request to the pool (or, when the pool refuses, resumes at once
 * to run it on this thread then). */
static void offload_start(http_req *r)
{
    r->suspended = true;
    r->in_worker = true;
    MHD_suspend_connection(r->conn);
    r->job.fn = run_offloaded;
    r->handed_off = true; /* before the post: the pool may run it at once */
    if (r->srv->pool && workpool_post(r->srv->pool, &r->job))
        return;
    r->handed_off = false;
    r->in_worker = false;
    r->off_inline = true;
    MHD_resume_connection(r->conn);
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    http_req *r = cls;
    pthread_mutex_lock(&r->mu);
    long n = r->stream_fn(r->stream_ctx, buf, max);
    if (n == 0 && r->stream_wake_pending) {
        r->stream_wake_pending = false;
        n = r->stream_fn(r->stream_ctx, buf, max);
    }
    if (n == 0) {
        r->stream_parked = true;
        MHD_suspend_connection(r->conn);
    }
    pthread_mutex_unlock(&r->mu);
    if (n < 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    return (ssize_t)n;
}

int http_reply_stream(http_req *r, const char *content_type, http_stream_fn fn, void *ctx,
                      void (*free_fn)(void *ctx))
{
    r->stream_fn = fn;
    r->stream_ctx = ctx;
    r->stream_free = free_fn;
    struct MHD_Response *resp = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, (size_t)16 * 1024, stream_reader, r, NULL);
    if (resp)
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
    return queue(r, 200, resp, content_type);
}

void http_stream_wake(http_req *r)
{
    pthread_mutex_lock(&r->mu);
    if (r->stream_parked) {
        r->stream_parked = false;
        MHD_resume_connection(r->conn);
    } else {
        r->stream_wake_pending = true;
    }
    pthread_mutex_unlock(&r->mu);
}

/* ---------------- request lifecycle ---------------- */

/* A request whose line arrived (on_uri); req_init completes it when its
 * headers are in. */
static http_req *req_alloc(http_server *s)
{
    http_req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    pthread_mutex_init(&r->mu, NULL);
    r->srv = s;
    strbuf_init_max(&r->body, s->max_body);
    r->start_ns = clock_mono_ns(NULL);
    return r;
}

static bool req_init(http_req *r, struct MHD_Connection *conn, const char *url, const char *method)
{
    r->path = strdup(url);
    if (!r->path)
        return false;
    r->conn = conn;
    snprintf(r->method, sizeof(r->method), "%s", method);
    return true;
}

static void req_free(http_req *r)
{
    if (r->stash)
        MHD_destroy_response(r->stash);
    if (r->stream_free)
        r->stream_free(r->stream_ctx);
    free_headers(r);
    http_req_set_principal(r, NULL, NULL);
    route_match_clear(&r->match);
    pthread_mutex_destroy(&r->mu);
    strbuf_free(&r->body);
    free(r->path);
    free(r);
}

/* The Content-Type names JSON (parameters allowed). */
static bool ctype_is_json(const char *ct)
{
    size_t n = strlen("application/json");
    return strncasecmp(ct, "application/json", n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* Content type check for JSON routes: absent is accepted, anything but
 * application/json (with optional parameters) is refused. */
static bool content_type_ok(http_req *r)
{
    const char *ct = http_req_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    return !ct || ctype_is_json(ct);
}

static enum MHD_Result count_bytes(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4;
    return MHD_YES;
}

/* ---------------- strict framing and cross-site rules ---------------- */

typedef struct field_list {
    guard_field *f;
    size_t n, cap;
} field_list;

static enum MHD_Result collect_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                     size_t key_size, const char *value, size_t value_size)
{
    field_list *l = cls;
    if (l->n < l->cap)
        l->f[l->n] = (guard_field){key, key_size, value ? value : "", value ? value_size : 0};
    l->n++;
    return MHD_YES;
}

/* Why the request's head is refused (http/guard.h), or NULL. url, method
 * and version are libmicrohttpd's pointers into its read buffer. */
static const char *req_framing(http_req *r, const char *url, const char *method,
                               const char *version)
{
    if (r->target_bad)
        return r->target_bad;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    const char *end = ci ? method + ci->header_size : NULL;
    if (!end || version <= method || version >= end || url <= method || url >= version)
        return "the request head cannot be read";
    if (url + r->target_len + 1 != version) /* on_uri's string ended early */
        return "a NUL in the request target";
    int n = MHD_get_connection_values(r->conn, MHD_HEADER_KIND, NULL, NULL);
    field_list l = {.cap = n > 0 ? (size_t)n : 1};
    if (!(l.f = calloc(l.cap, sizeof(*l.f))))
        return "out of memory reading the request head";
    MHD_get_connection_values_n(r->conn, MHD_HEADER_KIND, collect_field, &l);
    const char *why = l.n > l.cap ? "the request head changed" : guard_fields(l.f, l.n);
    if (!why)
        why = guard_layout(version + strlen(version), end, l.f, l.n);
    free(l.f);
    return why;
}

/* Whether the Host header (absent: HTTP/1.0) names a loopback address. */
static bool host_is_loopback(const char *host)
{
    if (!host)
        return true;
    size_t n = strlen(host);
    const char *colon = host[0] == '[' ? strstr(host, "]:") : strrchr(host, ':');
    if (colon)
        n = (size_t)(colon - host) + (host[0] == '[' ? 1 : 0);
    if (n == 5 && strncmp(host, "[::1]", 5) == 0)
        return true;
    if (n == 9 && strncasecmp(host, "localhost", 9) == 0)
        return true;
    char ip[16];
    struct in_addr a;
    if (n >= sizeof(ip))
        return false;
    memcpy(ip, host, n);
    ip[n] = '\0';
    return inet_pton(AF_INET, ip, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

static bool origin_allowed(const http_server *s, const char *origin)
{
    size_t n = strlen(origin);
    if (!s->origins || n == 0 || strchr(origin, ','))
        return false;
    for (const char *p = strstr(s->origins, origin); p; p = strstr(p + 1, origin))
        if (p[-1] == ',' && p[n] == ',')
            return true;
    return false;
}

/* Before the route is matched: the Host (auth none), the Origin, and a CORS
 * preflight. Returns false having replied. */
static bool cross_site_head(http_req *r)
{
    http_server *s = r->srv;
    const char *host = http_req_header(r, MHD_HTTP_HEADER_HOST);
    if (s->opts.loopback_host_only && !host_is_loopback(host)) {
        http_reply_error(r, CITRUS_ECROSSORIGIN,
                         "while auth is none, the Host header must name a loopback address", NULL);
        return false;
    }
    const char *origin = http_req_header(r, "Origin");
    if (!origin)
        return true;
    if (!origin_allowed(s, origin)) {
        http_reply_errorf(r, CITRUS_ECROSSORIGIN,
                          "Origin %.200s is not in server.cors.allowed_origins", origin);
        return false;
    }
    http_add_header(r, "Access-Control-Allow-Origin", origin);
    http_add_header(r, "Vary", "Origin");
    const char *want = http_req_header(r, "Access-Control-Request-Method");
    if (strcmp(r->method, "OPTIONS") != 0 || !want)
        return true;
    const http_route *route;
    route_match m = {0};
    char allow[128];
    int rc = route_find(s->routes, s->nroutes, want, r->path, &route, &m, allow, sizeof(allow));
    route_match_clear(&m);
    if (rc < 0) {
        http_reply_errorf(r, rc == CITRUS_EMETHOD ? rc : CITRUS_ENOROUTE, "no route for %.16s %s",
                          want, r->path);
        return false;
    }
    http_add_header(r, "Access-Control-Allow-Methods", route->method);
    http_add_header(r, "Access-Control-Allow-Headers",
                    "Authorization, Content-Type, X-Correlation-Id, Idempotency-Key");
    http_add_header(r, "Access-Control-Max-Age", "600");
    http_reply_raw(r, 204, NULL, "", 0);
    return false;
}

/* Whether ct is one of the media types a page may POST cross-site without
 * a preflight (the CORS-safelisted ones: a form, a multipart upload,
 * text), compared as a media type (case-insensitive, parameters ignored). */
static bool ctype_simple(const char *ct)
{
    static const char *const simple[] = {"application/x-www-form-urlencoded", "multipart/form-data",
                                         "text/plain"};
    while (*ct == ' ' || *ct == '\t')
        ct++;
    for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
        size_t n = strlen(simple[i]);
        if (strncasecmp(ct, simple[i], n) == 0 &&
            (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t'))
            return true;
    }
    return false;
}

/* After the route is matched, before the gate: a POST (the one method a
 * page may send cross-site without a preflight) whose Content-Type is
 * anything but JSON. A form, a multipart upload or text is what a
 * cross-site page sends: 403 cross_origin. Any other type cannot come
 * from a page without a preflight (which names no allowed origin): the
 * client is a program that sent the wrong type, 415. */
static bool cross_site_post(http_req *r)
{
    const char *ct = http_req_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (strcmp(r->method, "POST") != 0 || !ct || ctype_is_json(ct))
        return true;
    if (ctype_simple(ct))
        http_reply_error(r, CITRUS_ECROSSORIGIN, "a POST takes Content-Type: application/json",
                         NULL);
    else
        http_reply_error(r, CITRUS_EMEDIATYPE, "a POST takes Content-Type: application/json", NULL);
    return false;
}

/* First call for a request: headers are in. Matches the route and checks
 * everything that can be checked before the body arrives. */
static void req_begin(http_req *r, const char *url, const char *method, const char *version)
{
    const char *corr = http_req_header(r, "X-Correlation-Id");
    if (corr && corr_valid(corr)) {
        snprintf(r->corr, sizeof(r->corr), "%s", corr);
    } else {
        corr_generate(r->corr);
    }
    log_set_correlation(r->corr);
    const char *why = req_framing(r, url, method, version);
    if (why) {
        /* RFC 9112: the framing is unknown, so nothing after it is read. */
        http_add_header(r, "Connection", "close");
        http_reply_errorf(r, CITRUS_EINVAL, "malformed request: %s", why);
        return;
    }
    if (corr && !corr_valid(corr)) {
        http_reply_error(r, CITRUS_EINVAL,
                         "X-Correlation-Id must be 1-128 characters of [A-Za-z0-9._:-]", NULL);
        return;
    }
    size_t hdr_bytes = strlen(r->path);
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND | MHD_GET_ARGUMENT_KIND, count_bytes,
                              &hdr_bytes);
    if (hdr_bytes > r->srv->max_header) {
        http_reply_errorf(r, CITRUS_ETOOBIGHDR,
                          "request line and headers over the limit of %zu bytes",
                          r->srv->max_header);
        return;
    }
    if (!cross_site_head(r))
        return;
    char allow[128];
    int rc = route_find(r->srv->routes, r->srv->nroutes, r->method, r->path, &r->route, &r->match,
                        allow, sizeof(allow));
    if (rc == CITRUS_EMETHOD) {
        http_add_header(r, "Allow", allow);
        http_reply_errorf(r, CITRUS_EMETHOD, "method %s not allowed on %s; allowed: %s", r->method,
                          r->path, allow);
        return;
    }
    if (rc < 0) {
        http_reply_errorf(r, rc == CITRUS_ENOMEM ? rc : CITRUS_ENOROUTE, "no route for %s %s",
                          r->method, r->path);
        return;
    }
    if (!cross_site_post(r))
        return;
    if (r->srv->opts.gate && !r->srv->opts.gate(r, r->route, r->srv->opts.gate_ctx)) {
        if (!r->responded)
            http_reply_error(r, CITRUS_EINTERNAL, "the gate refused without an answer", NULL);
        return;
    }
    const char *cl = http_req_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    unsigned long long declared = cl ? strtoull(cl, NULL, 10) : 0;
    if (declared > r->srv->max_body) {
        /* Answering now, before the body is read, is clean only when the
         * client waits for "100 Continue", or when reading the body would
         * cost too much; otherwise the body is read and dropped, and 413 is
         * sent at its end, so the client is not reset mid-upload. */
        const char *expect = http_req_header(r, MHD_HTTP_HEADER_EXPECT);
        if ((expect && strcasecmp(expect, "100-continue") == 0) ||
            declared > 16ULL * r->srv->max_body) {
            http_reply_errorf(r, CITRUS_ETOOBIG, "request body over the limit of %zu bytes",
                              r->srv->max_body);
            return;
        }
        r->body_too_big = true;
    }
    if (r->route->body == ROUTE_BODY_JSON && !content_type_ok(r)) {
        http_reply_error(r, CITRUS_EMEDIATYPE, "this route takes Content-Type: application/json",
                         NULL);
        return;
    }
}

static void req_append_body(http_req *r, const char *data, size_t len)
{
    if (r->body_too_big || r->responded)
        return;
    if (strbuf_add(&r->body, data, len) < 0) /* over max_body, or out of memory */
        r->body_too_big = true;
}

static void req_dispatch(http_req *r)
{
    if (r->body_too_big && r->body.err == CITRUS_ENOMEM) {
        http_reply_error(r, CITRUS_ENOMEM, "out of memory reading the request body", NULL);
        return;
    }
    if (r->body_too_big) {
        http_reply_errorf(r, CITRUS_ETOOBIG, "request body over the limit of %zu bytes",
                          r->srv->max_body);
        return;
    }
    if (r->srv->opts.before && !r->before_ran) {
        r->before_ran = true;
        pthread_mutex_lock(&r->mu);
        r->in_before = true;
        pthread_mutex_unlock(&r->mu);
        r->srv->opts.before(r, r->srv->opts.gate_ctx);
        pthread_mutex_lock(&r->mu);
        r->in_before = false;
        /* parked for the pool and woken while the hook ran: handed over now */
        bool to_pool = r->parked && r->resume_pending && !r->in_worker;
        if (to_pool)
            r->in_worker = true;
        /* read before mu is released: once it is, a parked request's
         * http_resume may hand it to the pool, which then owns it */
        bool stop = r->responded || r->suspended;
        pthread_mutex_unlock(&r->mu);
        if (to_pool)
            resume_parked(r); /* the pool owns it from here: nothing more is read */
        if (stop)
            return; /* answered, or parked: its on_resume runs the handler */
    }
    http_run_handler(r);
}

bool http_req_gone(const http_req *r)
{
    return r->gone;
}

/* Asks the kernel, without reading anything: the peer's FIN (POLLRDHUP,
 * also with unread bytes before it) or a reset (POLLHUP, POLLERR). The
 * socket stays open meanwhile: its connection is either suspended or
 * busy in this very handler, and libmicrohttpd closes neither. */
bool http_req_peer_closed(const http_req *r)
{
    if (r->gone)
        return true;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci || ci->connect_fd == MHD_INVALID_SOCKET)
        return false;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

void http_run_handler(http_req *r)
{
    r->route->handler(r, r->srv->app);
    if (r->off_fn && !r->responded && !r->suspended)
        offload_start(r);
    else if (!r->responded && !r->suspended)
        http_reply_error(r, CITRUS_EINTERNAL, "handler sent no response", NULL);
}

/* A suspended request resumed: its stashed reply, its offloaded handler
 * when the pool refused it, or its on_resume. */
static void req_resumed(http_req *r)
{
    r->suspended = false;
    if (r->stash) {
        MHD_queue_response(r->conn, r->stash_status, r->stash);
        MHD_destroy_response(r->stash);
        r->stash = NULL;
        return;
    }
    if (r->off_inline && r->off_fn) {
        http_handler fn = r->off_fn;
        r->off_fn = NULL;
        fn(r, r->off_ctx);
        r->off_inline = false;
    } else if (r->on_resume) {
        http_resume_fn fn = r->on_resume;
        r->on_resume = NULL;
        r->parked = false;
        r->handed_off = false;
        fn(r, r->resume_ctx);
        if (r->handed_off)
            return; /* its handler went to the pool (http_run_handler) */
    }
    if (!r->responded && !r->suspended)
        http_reply_error(r, CITRUS_EINTERNAL, "resumed handler sent no response", NULL);
}

/* The request line is in: its target as received, before libmicrohttpd
 * splits off the query and decodes it. What this returns is the request's
 * context from then on (on_request's *con_cls). */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)conn;
    http_req *r = req_alloc(cls);
    if (r) {
        r->target_bad = guard_target(uri);
        r->target_len = uri ? strlen(uri) : 0;
    }
    return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    http_server *s = cls;
    http_req *r = *con_cls;
    if (!r || !r->path) { /* the first call: the headers are in */
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        if (ci && ci->socket_context)
            guard_conn_headers_done(s->conns, ci->socket_context);
        if (!r && (r = req_alloc(s)) != NULL) /* on_uri ran out of memory */
            r->target_bad = "out of memory reading the request target";
        if (!r)
            return MHD_NO;
        *con_cls = r;
        if (!req_init(r, conn, url, method))
            return MHD_NO;
        r->off_inline = s->per_connection; /* its own thread may block */
        req_begin(r, url, method, version);
        return MHD_YES;
    }
    log_set_correlation(r->corr);
    if (*upload_data_size > 0) {
        req_append_body(r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->suspended) {
        req_resumed(r);
        return MHD_YES;
    }
    if (r->responded)
        return MHD_YES;
    req_dispatch(r);
    return MHD_YES;
}

/* The request metrics' series for a route, method and status: from a
 * small per-thread cache, so a steady stream of requests formats no labels
 * and takes no lock. */
typedef struct req_series {
    const http_route *route;
    char method[16];
    unsigned status;
    metric_series *count, *latency;
} req_series;

#define REQ_SERIES_CACHE 8

static const req_series *series_for(const http_route *route, const char *method, unsigned status)
{
    static _Thread_local req_series cache[REQ_SERIES_CACHE];
    static _Thread_local unsigned next;
    for (unsigned i = 0; i < REQ_SERIES_CACHE; i++) {
        const req_series *c = &cache[i];
        if (c->count && c->route == route && c->status == status && strcmp(c->method, method) == 0)
            return c;
    }
    req_series *c = &cache[next++ % REQ_SERIES_CACHE];
    const char *pattern = route ? route->pattern : "unmatched";
    char labels[256];
    snprintf(labels, sizeof(labels), "route=\"%s\",method=\"%s\",status=\"%u\"", pattern, method,
             status);
    c->count = metrics_series("citrus_http_requests_total", labels, METRIC_COUNTER);
    snprintf(labels, sizeof(labels), "route=\"%s\",method=\"%s\"", pattern, method);
    c->latency = metrics_series("citrus_http_request_duration_seconds", labels, METRIC_HISTOGRAM);
    c->route = route;
    c->status = status;
    snprintf(c->method, sizeof(c->method), "%s", method); /* http_req's is as long */
    return c;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    http_server *s = cls;
    http_req *r = *con_cls;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (ci && ci->socket_context) /* the next request's deadline starts */
        guard_conn_request_done(s->conns, ci->socket_context);
    if (r && !r->path) { /* refused by libmicrohttpd before its headers were in */
        req_free(r);
        *con_cls = NULL;
        return;
    }
    if (!r)
        return;
    if (r->route && s->opts.done)
        s->opts.done(r, r->status, s->opts.gate_ctx);
    double secs = (double)(clock_mono_ns(NULL) - r->start_ns) / 1e9;
    const req_series *m = series_for(r->route, r->method, r->status);
    metric_add(m->count, 1);
    metric_observe(m->latency, secs);
    log_level level = r->status >= 500 ? LOG_WARN : LOG_DEBUG;
    if (log_enabled(level)) {
        log_set_correlation(r->corr);
        json_t *f = json_pack("{s:s,s:s,s:i,s:f,s:b}", "method", r->method, "path", r->path,
                              "status", (int)r->status, "duration_ms", secs * 1000.0, "completed",
                              toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
        log_emit(level, s->component, "request", f);
        log_set_correlation(NULL);
    }
    /* Resumed, but the client had gone: libmicrohttpd closes the connection
     * without running the handler again. Its on_resume still runs, with
     * replies going nowhere, so whatever the handler keeps for the request
     * (a watch's waiter, a write's record) is released. A request still
     * waiting for http_resume is not: its waker still holds it. */
    pthread_mutex_lock(&r->mu);
    bool woken = r->woken;
    pthread_mutex_unlock(&r->mu);
    if (r->suspended && r->on_resume && woken) {
        http_resume_fn fn = r->on_resume;
        r->on_resume = NULL;
        r->gone = true;
        fn(r, r->resume_ctx);
    }
    req_free(r);
    *con_cls = NULL;
}

/* Decodes %XX escapes in place. %00 becomes the overlong pair C0 80, which
 * no valid UTF-8 text contains, so a NUL stays detectable in C strings. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    char *w = s;
    for (const char *p = s; *p;) {
        if (p[0] == '%' && p[1] && p[2] && strchr("0123456789abcdefABCDEF", p[1]) &&
            strchr("0123456789abcdefABCDEF", p[2])) {
            char hex[3] = {p[1], p[2], 0};
            unsigned char v = (unsigned char)strtoul(hex, NULL, 16);
            if (v == 0) {
                *w++ = (char)0xc0;
                *w++ = (char)0x80;
            } else {
                *w++ = (char)v;
            }
            p += 3;
        } else {
            *w++ = *p++;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

static int parse_listen(const char *listen, struct sockaddr_in *sa, errdetail *e)
{
    char host[64];
    const char *colon = strrchr(listen, ':');
    if (!colon || (size_t)(colon - listen) >= sizeof(host))
        return errdetail_set(e, CITRUS_EINVAL, "listen address '%s' must be HOST:PORT", listen);
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    if (*end || port < 0 || port > 65535 ||
        inet_pton(AF_INET, strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, &sa->sin_addr) != 1)
        return errdetail_set(e, CITRUS_EINVAL, "listen address '%s' must be IPv4-HOST:PORT",
                             listen);
    sa->sin_port = htons((uint16_t)port);
    return 0;
}

static void describe_metrics(void)
{
    metrics_describe("citrus_http_requests_total", METRIC_COUNTER,
                     "HTTP requests by route, method and status.");
    metrics_describe("citrus_http_request_duration_seconds", METRIC_HISTOGRAM,
                     "HTTP request latency by route and method.");
}

/* Binds and listens on an IPv4 HOST:PORT; the socket is non-blocking, as
 * libmicrohttpd's polling threads want it. */
static int listen_on(const char *addr, int *fd, unsigned *port, errdetail *e)
{
    struct sockaddr_in sa;
    int rc = parse_listen(addr, &sa, e);
    if (rc)
        return rc;
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 1024) < 0) {
        int err = errno;
        if (s >= 0)
            close(s);
        return errdetail_set(e, CITRUS_EIO, "cannot listen on %s: %s", addr, strerror(err));
    }
    socklen_t len = sizeof(sa);
    if (getsockname(s, (struct sockaddr *)&sa, &len) < 0) {
        int err = errno;
        close(s);
        return errdetail_set(e, CITRUS_EIO, "cannot listen on %s: %s", addr, strerror(err));
    }
    *fd = s;
    *port = ntohs(sa.sin_port);
    return 0;
}

/* A connection began or ended: its header deadline, and its TLS state (the
 * session is set up, the handshake not begun). */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    http_server *s = cls;
    guard_conn *g = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        if (g)
            http_tls_conn_end(*guard_conn_data(g));
        guard_conn_remove(s->conns, g); /* before libmicrohttpd closes the socket */
        *socket_context = NULL;
        return;
    }
    const union MHD_ConnectionInfo *fd =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!fd || !(g = guard_conn_add(s->conns, fd->connect_fd))) {
        if (fd) /* out of memory: no deadline, so no connection */
            shutdown(fd->connect_fd, SHUT_RDWR);
        return;
    }
    *socket_context = g;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (ci && ci->tls_session)
        *guard_conn_data(g) = http_tls_conn_start(s->tls, ci->tls_session);
}

int http_server_bind(const http_server_options *opts, const http_route *routes, size_t nroutes,
                     void *app, http_server **out, errdetail *e)
{
    *out = NULL;
    http_server *s = calloc(1, sizeof(*s));
    if (!s)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    int rc = listen_on(opts->listen, &s->listen_fd, &s->port, e);
    if (rc) {
        free(s);
        return rc;
    }
    s->opts = *opts;
    s->routes = routes;
    s->nroutes = nroutes;
    s->app = app;
    s->max_body = opts->max_body_bytes ? opts->max_body_bytes : (size_t)1024 * 1024;
    s->component = opts->component ? opts->component : "http";
    /* Our own header limit answers with a JSON 431; libmicrohttpd's pool is
     * sized above it (see connection_memory_bytes) so that its HTML errors
     * are only for absurd input. */
    s->max_header = opts->max_header_bytes ? opts->max_header_bytes : (size_t)32 * 1024;
    s->per_connection = opts->thread_per_connection;
    if (opts->cors_allowed_origins && *opts->cors_allowed_origins) {
        size_t n = strlen(opts->cors_allowed_origins) + 3;
        if (!(s->origins = malloc(n))) {
            close(s->listen_fd);
            free(s);
            return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
        }
        snprintf(s->origins, n, ",%s,", opts->cors_allowed_origins);
    }
    if (opts->tls_cert_file && *opts->tls_cert_file) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
            rc = errdetail_set(e, CITRUS_EINVAL, "%s: libmicrohttpd was built without TLS",
                               opts->tls_name ? opts->tls_name : "tls");
        else
            rc = http_tls_new(opts->tls_name ? opts->tls_name : "tls", opts->tls_cert_file,
                              opts->tls_key_file, opts->tls_client_ca_file, &s->tls, e);
        if (rc < 0) {
            close(s->listen_fd);
            free(s->origins);
            free(s);
            return rc;
        }
    }
    *out = s;
    return 0;
}

int http_server_serve(http_server *s, errdetail *e)
{
    const http_server_options *opts = &s->opts;
    describe_metrics();
    /* With a thread per connection, blocking handlers run where they are
     * (http_offload runs them inline): no work pool. */
    if (!s->per_connection)
        s->pool = workpool_new(opts->blocking_threads ? opts->blocking_threads : 16, 4096);
    if (!s->per_connection && !s->pool)
        return errdetail_set(e, CITRUS_ENOMEM, "cannot start the work pool");
    s->conns =
        guard_conns_new(opts->header_timeout_ms ? opts->header_timeout_ms : 10000, s->component);
    if (!s->conns) {
        workpool_free(s->pool);
        s->pool = NULL;
        return errdetail_set(e, CITRUS_ENOMEM, "cannot start the header deadline");
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC |
                     MHD_USE_TURBO |
                     (s->per_connection ? MHD_USE_THREAD_PER_CONNECTION : MHD_USE_EPOLL) |
                     (s->tls ? MHD_USE_TLS : 0);
    /* With TLS, the certificate comes from a callback on every handshake
     * (not MHD_OPTION_HTTPS_MEM_CERT, fixed for the daemon's life), so a
     * reload reaches new connections without restarting the daemon, which
     * would close the open ones (http/tls.h). The TLS options come last:
     * without TLS the list ends before them (what follows the first
     * MHD_OPTION_END is not read). */
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_LISTEN_SOCKET, s->listen_fd,
        MHD_OPTION_THREAD_POOL_SIZE,
        s->per_connection ? 0u : (unsigned)(opts->threads ? opts->threads : 4),
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)(opts->max_conns ? opts->max_conns : 4096),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(opts->idle_timeout_s ? opts->idle_timeout_s : 60),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        opts->connection_memory_bytes ? opts->connection_memory_bytes
                                      : s->max_header + (size_t)16 * 1024,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, opts->max_conns_per_ip,
        s->tls ? MHD_OPTION_HTTPS_CERT_CALLBACK : MHD_OPTION_END, http_tls_retrieve,
        MHD_OPTION_END);
    if (!s->daemon) {
        int err = errno;
        workpool_free(s->pool);
        s->pool = NULL;
        guard_conns_free(s->conns);
        s->conns = NULL;
        return errdetail_set(e, CITRUS_EIO, "cannot serve on %s: %s", opts->listen, strerror(err));
    }
    s->listen_fd = -1; /* libmicrohttpd's now: MHD_stop_daemon closes it */
    return 0;
}

int http_server_start(const http_server_options *opts, const http_route *routes, size_t nroutes,
                      void *app, http_server **out, errdetail *e)
{
    int rc = http_server_bind(opts, routes, nroutes, app, out, e);
    if (rc == 0 && (rc = http_server_serve(*out, e)) < 0) {
        http_server_stop(*out);
        *out = NULL;
    }
    return rc;
}

unsigned http_server_port(const http_server *s)
{
    return s->port;
}

bool http_server_tls(const http_server *s)
{
    return s->tls != NULL;
}

int http_server_reload_tls(http_server *s, errdetail *e)
{
    return s && s->tls ? http_tls_reload(s->tls, e) : 0;
}

void http_server_stop(http_server *s)
{
    if (!s)
        return;
    /* Offloaded handlers finish first (their requests are suspended, and a
     * stopping daemon would free them); later offloads run on the MHD
     * threads. */
    workpool_free(s->pool);
    s->pool = NULL;
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    if (s->listen_fd >= 0)
        close(s->listen_fd); /* bound, never served */
    http_tls_free(s->tls);   /* every connection is closed */
    guard_conns_free(s->conns);
    free(s->origins);
    free(s);
}
