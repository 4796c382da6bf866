/* http/server.h — the HTTP server: libmicrohttpd glue, a route table, request
 * and response helpers, JSON errors, correlation ids, access logs and
 * per-route metrics.
 *
 * Handlers run on libmicrohttpd's pool threads and may block only briefly.
 * A handler that waits (long poll, stream) calls http_suspend() and later
 * http_resume() from any thread; the server then calls req->on_resume on a
 * pool thread, which must send the response. */
#ifndef CITRUS_HTTP_SERVER_H
#define CITRUS_HTTP_SERVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/errdetail.h"
#include "http/route.h"

typedef struct http_server http_server;

/* The gate every matched request passes once its headers are in, before
 * its body is read (authentication and the route's role): returns true to
 * go on, or false having replied itself (401, 403, 503). */
typedef bool (*http_gate_fn)(http_req *r, const http_route *route, void *ctx);

typedef struct http_server_options {
    const char *listen;      /* "127.0.0.1:8081" */
    unsigned threads;        /* pool threads; 0 = 4 */
    unsigned max_conns;      /* 0 = 4096 */
    unsigned idle_timeout_s; /* 0 = 60 */
    size_t max_header_bytes; /* per connection header memory; 0 = 32 KiB */
    /* libmicrohttpd's per-connection pool. It is zeroed between the requests
     * of a connection, so its size is a cost per request (half of a bounded
     * GET's instructions at 128 KiB); 0 = max_header_bytes + 16 KiB, which
     * still lets headers up to about max_header_bytes + 12 KiB reach our JSON
     * 431 before libmicrohttpd answers its own. */
    size_t connection_memory_bytes;
    size_t max_body_bytes;     /* 0 = 1 MiB */
    const char *component;     /* log component name, e.g. "api" */
    unsigned blocking_threads; /* threads for http_offload; 0 = 16 */
    /* One thread per connection instead of the epoll pool (threads is then
     * unused): handlers run on their connection's thread, so http_offload
     * runs them inline, with no hand-off. For a data plane whose every
     * request blocks on a database (the router); no streaming replies. */
    bool thread_per_connection;
    http_gate_fn gate; /* NULL: every request goes on */
    void *gate_ctx;
    /* Runs once per matched request that passed the gate, its body read,
     * just before its handler (with gate_ctx): returns having done nothing
     * (the handler runs now), having replied (it does not run), or having
     * parked the request with http_suspend: its on_resume then calls
     * http_run_handler (the audit row of a mutation is written so). */
    void (*before)(http_req *r, void *ctx);
    /* Runs once per matched request as it ends (also when the client went
     * away: status is then what was sent, 0 when nothing), with gate_ctx. */
    void (*done)(http_req *r, unsigned status, void *ctx);
    /* HTTPS when tls_cert_file is set (PEM files, read at bind and again by
     * http_server_reload_tls; the paths are copied): the chain, leaf first,
     * and its unencrypted key. With tls_client_ca_file, every client must
     * present a certificate that chains to it, valid now; others fail the
     * TLS handshake (http/tls.h). tls_name names the settings in messages
     * ("server.tls"). */
    const char *tls_cert_file;
    const char *tls_key_file;
    const char *tls_client_ca_file;
    const char *tls_name;
    /* Strict HTTP (http/guard.h, docs/security.md): a request's line and
     * headers must arrive within header_timeout_ms of the connection's
     * opening or of its previous request's end, else the connection is
     * closed (0 = 10000); at most max_conns_per_ip connections from one
     * address (0 = no limit). */
    unsigned header_timeout_ms;
    unsigned max_conns_per_ip;
    /* Cross-site requests, checked before the gate: the Origins served
     * (exact "scheme://host[:port]", comma-separated; NULL or "": none),
     * whose CORS preflights are answered; any other Origin is 403
     * cross_origin, as is a POST whose Content-Type is not JSON. With
     * loopback_host_only (auth none), the Host header must name a loopback
     * address (DNS rebinding). */
    const char *cors_allowed_origins;
    bool loopback_host_only;
} http_server_options;

/* Starts serving routes (the array is kept, not copied). app is passed to
 * handlers. Returns 0 or a negative code with a message in e. The same as
 * http_server_bind, then http_server_serve. */
int http_server_start(const http_server_options *opts, const http_route *routes, size_t nroutes,
                      void *app, http_server **out, errdetail *e);
/* The two steps of http_server_start, for a process that must know its port
 * before it answers anything: bind binds and listens (http_server_port is
 * known; connections wait in the backlog, nothing is answered, no handler
 * runs), so the caller can finish composing app (objects that name this
 * URL, objects handlers read) before serve starts the threads that answer.
 * opts->listen and opts->component must outlive the server. A bound server
 * that never serves is freed by http_server_stop. */
int http_server_bind(const http_server_options *opts, const http_route *routes, size_t nroutes,
                     void *app, http_server **out, errdetail *e);
int http_server_serve(http_server *s, errdetail *e);
/* The port actually bound (useful with port 0). */
unsigned http_server_port(const http_server *s);
/* Whether the server speaks HTTPS. */
bool http_server_tls(const http_server *s);
/* Reads the TLS files again: new connections get the new certificate,
 * open ones keep theirs. On failure (e says why, naming the file) the
 * current ones stay. A server without TLS: 0. NULL is a no-op. */
int http_server_reload_tls(http_server *s, errdetail *e);
/* Stops accepting, finishes and frees. NULL is a no-op. */
void http_server_stop(http_server *s);

/* ---- request accessors (valid during the handler and on_resume) ---- */
const char *http_req_method(const http_req *r);
const char *http_req_path(const http_req *r);
/* A path parameter by name from the route pattern, or NULL. */
const char *http_req_param(const http_req *r, const char *name);
/* A query argument (decoded), or NULL when absent. */
const char *http_req_query(const http_req *r, const char *name);
/* A header (case-insensitive), or NULL. */
const char *http_req_header(const http_req *r, const char *name);
const unsigned char *http_req_body(const http_req *r, size_t *len);
/* The peer's address as "IP:PORT" into buf ("" when unknown). */
void http_req_peer(const http_req *r, char *buf, size_t len);
/* The peer's IPv4 address (host order) into *ip; false when not IPv4. */
bool http_req_peer_ipv4(const http_req *r, uint32_t *ip);
/* The verified client certificate's CN and DNS/email/URI SANs (HTTPS with
 * a client CA; pointers valid during the request): how many were stored
 * in out, at most max; 0 without one. */
size_t http_req_tls_subjects(const http_req *r, const char **out, size_t max);
/* The request's correlation id. */
const char *http_req_correlation(const http_req *r);
/* ms since the request's line arrived (on the real monotonic clock). */
int64_t http_req_age_ms(const http_req *r);
/* The route matched (NULL before matching or when none did). */
const http_route *http_req_route(const http_req *r);
/* Who the request is, as the gate found (owned by the request: free_fn
 * runs when it ends), or NULL. */
void http_req_set_principal(http_req *r, void *principal, void (*free_fn)(void *));
void *http_req_principal(const http_req *r);
/* Parses the body as JSON. On failure sends a 400 bad_json and returns NULL. */
json_t *http_req_json(http_req *r);

/* Parses a query argument as an integer; absent gives def. Invalid → sends
 * 400 invalid_argument naming the argument and returns CITRUS_EINVAL. */
int http_req_query_int(http_req *r, const char *name, int64_t def, int64_t *out);
/* Parses a boolean query argument ("true"/"false"/"1"/"0"/""); absent: def. */
int http_req_query_bool(http_req *r, const char *name, bool def, bool *out);

/* ---- responses: exactly one per request ---- */
/* Adds a header to the response about to be sent (copied). */
void http_add_header(http_req *r, const char *name, const char *value);
/* Sends JSON (reference stolen). Returns 0. */
int http_reply_json(http_req *r, unsigned status, json_t *body);
/* Sends bytes (copied). */
/* Sends data (malloc'd, len bytes) without copying it: the server frees
 * it once sent, or at once on failure. NULL data answers 500. */
int http_reply_take(http_req *r, unsigned status, const char *content_type, char *data, size_t len);
int http_reply_raw(http_req *r, unsigned status, const char *content_type, const void *data,
                   size_t len);
/* Sends {"error":{"code","message",...extra}} with the status of err.
 * extra (may be NULL) is merged into the error object; reference stolen.
 * CITRUS_ESHARDDOWN (503 shard_unreachable) carries "Retry-After: 1"
 * unless the handler set one. */
int http_reply_error(http_req *r, int err, const char *message, json_t *extra);
/* The body http_reply_error sends (extra's reference stolen). */
json_t *http_error_body(int err, const char *message, json_t *extra);
/* printf-style message variant. */
int http_reply_errorf(http_req *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- suspension ---- */
typedef void (*http_resume_fn)(http_req *r, void *ctx);
/* Suspends the request after the handler returns; on_resume(ctx) runs on a
 * pool thread after http_resume() and must reply. It runs exactly once per
 * http_resume, also when the client went away meanwhile (then its replies
 * go nowhere), so it is where the handler releases what it keeps for the
 * request. */
void http_suspend(http_req *r, http_resume_fn on_resume, void *ctx);
/* Wakes a suspended request; safe from any thread, once per suspension. */
void http_resume(http_req *r);
/* http_suspend for the before hook of a route whose handler waits on the
 * work pool (http_offload): once http_resume'd, on_resume runs on a pool
 * thread, where the handler it runs (http_run_handler) is already
 * offloaded, instead of on the HTTP thread then handing the request to the
 * pool: one thread handoff less. Not for streaming replies. */
void http_suspend_to_pool(http_req *r, http_resume_fn on_resume, void *ctx);

/* For a handler that has to wait on something slow (the network, another
 * thread): returns at once; when the handler has returned (having sent
 * nothing), its connection is suspended and fn(r, ctx) runs on a thread of
 * the server's work pool instead, so the pool thread serves its other
 * connections meanwhile. fn replies as any handler does (the reply goes out
 * when it returns), or parks with http_suspend. When the work pool is full
 * or stopping, fn runs on the HTTP thread. fn is usually the handler
 * itself, which checks http_offloaded() first. Not for streaming replies. */
int http_offload(http_req *r, http_handler fn, void *ctx);
/* Runs the matched route's handler (from an on_resume of the before hook). */
void http_run_handler(http_req *r);
/* Whether the client went away (an on_resume that runs for its cleanup). */
bool http_req_gone(const http_req *r);
/* Whether the client has closed its connection (or reset it) by now, while
 * the request is still being handled: a cheap poll of the socket, no
 * read, safe from the thread running the handler and from others at the
 * same time. A client that half-closes (shutdown for writing) after its
 * request counts as gone. */
bool http_req_peer_closed(const http_req *r);
/* Whether this handler runs because of http_offload. */
bool http_offloaded(const http_req *r);

/* ---- streaming (server-sent events and the like) ---- */
/* Fills buf with up to max bytes of the stream. Returns bytes written, 0 when
 * there is nothing yet (the connection is then parked until
 * http_stream_wake()), or -1 to end the stream. */
typedef long (*http_stream_fn)(void *ctx, char *buf, size_t max);
/* Starts a streamed 200 response; free_fn(ctx) runs when it ends (client
 * gone or the stream returned -1). */
int http_reply_stream(http_req *r, const char *content_type, http_stream_fn fn, void *ctx,
                      void (*free_fn)(void *ctx));
/* Wakes a parked stream (any thread). */
void http_stream_wake(http_req *r);

#endif
