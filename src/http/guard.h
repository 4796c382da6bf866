/* http/guard.h — what libmicrohttpd 0.9.75 lets through and RFC 9112 does
 * not: strict request framing, and a deadline for a request's line and
 * headers.
 *
 * Framing. libmicrohttpd accepts two Content-Length fields (and frames the
 * body by one of them, so the rest of the bytes run as a second, smuggled
 * request), Content-Length with Transfer-Encoding, control characters and
 * raw spaces in the request target, a raw NUL in the target or a field
 * value (it cuts the string there: /v1/kv/a<NUL>zzz became key "a"), and
 * obsolete line folding. The server checks the target as received (before
 * decoding) and the header block as libmicrohttpd left it in its read
 * buffer, and answers 400 with Connection: close to anything off.
 *
 * libmicrohttpd replaces the line ends (CR and LF), the colon after each
 * field name and the space before the HTTP version with NULs in place, and
 * points each parsed name and value into that buffer; a NUL the client sent
 * shows as a name or value that does not continue where the next one
 * starts, or a block whose end is not where its last line ends. One case
 * cannot be told apart: a NUL sent just before the line end of the last
 * field, then a bare LF (the bytes NUL LF CR LF after it look like CR LF
 * CR LF); the value is then cut at the NUL, which is harmless.
 *
 * Deadline. A request's line and headers must arrive within a time from
 * the moment the connection opened, or the previous request on it ended:
 * a client sending a header line every few seconds (slowloris) keeps no
 * connection, nor the thread a thread-per-connection server gives it, and
 * an idle keep-alive connection is closed as well. */
#ifndef CITRUS_HTTP_GUARD_H
#define CITRUS_HTTP_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A parsed header field: where libmicrohttpd put its name and value. */
typedef struct guard_field {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} guard_field;

/* The request target as received (a C string; NULL: none): NULL when it
 * may be served, else why not (a raw space, a control character, none). */
const char *guard_target(const char *target);

/* The fields of a request, in order of arrival: NULL when they may be
 * served, else why not: a name that is not a token, a value with a control
 * character, two Content-Length, a Content-Length not a number,
 * Transfer-Encoding with Content-Length, more than one Transfer-Encoding
 * or one other than chunked. */
const char *guard_fields(const guard_field *f, size_t n);

/* Whether the fields lie in the header block as a well-formed block leaves
 * them (see above): line_end is the NUL that ended the request line (after
 * the HTTP version), end the end of the block (after its empty line).
 * NULL when it does, else why not (a NUL or a folded line). */
const char *guard_layout(const char *line_end, const char *end, const guard_field *f, size_t n);

/* ---- the header deadline ---- */

typedef struct guard_conns guard_conns;
/* One open connection (its socket). */
typedef struct guard_conn guard_conn;

/* A table of open connections whose requests must have their line and
 * headers in within timeout_ms; a thread closes (shutdown(2)) those past
 * it, counting them in citrus_http_header_timeouts_total{server=component}.
 * NULL on allocation failure. */
guard_conns *guard_conns_new(int64_t timeout_ms, const char *component);
/* Stops the thread and frees the table (its connections must be removed
 * first, or be closed by the caller). NULL is a no-op. */
void guard_conns_free(guard_conns *g);
/* A connection opened: its request's deadline starts now. The entry has
 * room for one pointer of the caller's (guard_conn_data). NULL on
 * allocation failure (the connection then has no deadline). */
guard_conn *guard_conn_add(guard_conns *g, int fd);
/* Its headers are in: no deadline while the request runs. */
void guard_conn_headers_done(guard_conns *g, guard_conn *c);
/* Its request ended: the next request's deadline starts now. */
void guard_conn_request_done(guard_conns *g, guard_conn *c);
/* It closed: removed before its socket is closed, so the thread never
 * shuts down a descriptor reused by another. NULL is a no-op. */
void guard_conn_remove(guard_conns *g, guard_conn *c);
/* The caller's pointer kept with the connection. */
void **guard_conn_data(guard_conn *c);
/* How many connections were closed at their deadline (for tests, metrics). */
uint64_t guard_conns_cut(const guard_conns *g);

#endif
