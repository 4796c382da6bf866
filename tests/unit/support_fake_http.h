/* support_fake_http.h — a scripted HTTP server on loopback for unit tests of
 * HTTP clients (libmicrohttpd, one thread per connection).
 *
 * Each request is handed to the test's function with its raw target (path
 * and query exactly as sent, still percent-encoded), method, headers and
 * body; the function fills in the reply. It runs on a server thread. */
#ifndef SUPPORT_FAKE_HTTP_H
#define SUPPORT_FAKE_HTTP_H

#include <stddef.h>

typedef struct fake_http fake_http;

typedef struct fake_http_req {
    const char *method;
    const char *target;       /* raw request target, e.g. "/v1/kv/a%20b?prefix=true" */
    const char *content_type; /* or NULL */
    const char *accept;       /* or NULL */
    const char *body;         /* NUL-terminated copy */
    size_t body_len;
    unsigned conn_id; /* same number for requests on the same connection */
} fake_http_req;

typedef struct fake_http_reply {
    unsigned status;    /* 0 = 200 */
    const char *body;   /* NULL = empty; copied */
    size_t body_len;    /* 0 = strlen(body) */
    const char *header; /* one extra "Name: value" header, or NULL */
    unsigned delay_ms;  /* wait this long before answering */
} fake_http_reply;

typedef void (*fake_http_fn)(void *ctx, const fake_http_req *req, fake_http_reply *out);

/* Starts listening on 127.0.0.1 on an ephemeral port; NULL on failure. */
fake_http *fake_http_start(fake_http_fn fn, void *ctx);
/* "http://127.0.0.1:PORT"; owned by the server. */
const char *fake_http_url(const fake_http *f);
/* Stops (waits for requests in progress) and frees. NULL is a no-op. */
void fake_http_stop(fake_http *f);

#endif
