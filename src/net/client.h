/* net/client.h — a small blocking HTTP client for the citrus CLI (libcurl).
 *
 * One client holds one curl handle, so consecutive requests to the same
 * server reuse the connection. A client is not thread-safe: use one per
 * thread. Every request either completes with some HTTP status (then the
 * caller judges the status) or fails with a transport error. */
#ifndef CITRUS_NET_CLIENT_H
#define CITRUS_NET_CLIENT_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>

#include "core/errdetail.h"

typedef struct client client;

typedef struct client_header {
    const char *name;  /* as received */
    const char *value; /* leading/trailing blanks trimmed */
} client_header;

typedef struct client_response {
    long status; /* HTTP status of the final response */
    char *body;  /* owned; always NUL-terminated (body_len excludes the NUL) */
    size_t body_len;
    client_header *headers; /* headers of the final response, in order, owned */
    size_t nheaders;
    char *header_text; /* owned: what the headers' names and values point into */
} client_response;

/* Where the CLI talks to when neither --endpoint nor CITRUS_ENDPOINT says. */
#define CLIENT_DEFAULT_ENDPOINT "http://127.0.0.1:8081"

/* Default timeouts: connecting, and a whole request. */
#define CLIENT_CONNECT_TIMEOUT_MS 5000L
#define CLIENT_REQUEST_TIMEOUT_MS 30000L

/* Creates a client for endpoint ("http://host:port", optionally with a path
 * prefix; a trailing '/' is ignored). The string is copied. Returns NULL when
 * endpoint is not an http(s) URL or on allocation failure. */
client *client_new(const char *endpoint);
/* The endpoint to use when no --endpoint is given: $CITRUS_ENDPOINT when
 * set and non-empty, else CLIENT_DEFAULT_ENDPOINT. Static or environment
 * storage: do not free. */
const char *client_default_endpoint(void);

/* Frees the client and closes its connections. NULL is a no-op. */
void client_free(client *c);

/* The endpoint as used (no trailing '/'); owned by the client. */
const char *client_endpoint(const client *c);

/* Whole-request timeout for later requests, in ms; 0 = none. */
void client_set_timeout_ms(client *c, long ms);
/* Connection timeout for later requests, in ms (default
 * CLIENT_CONNECT_TIMEOUT_MS). */
void client_set_connect_timeout_ms(client *c, long ms);

/* The longest bearer token accepted (the server's limit: 8 KiB). */
#define CLIENT_TOKEN_MAX 8192

/* Sends "Authorization: Bearer <token>" with every later request; NULL (or
 * "") stops sending it. The token is copied (and wiped when replaced or
 * freed); it is never part of any message client_error gives. Returns 0, or
 * CITRUS_EINVAL (the client unchanged) for a token longer than
 * CLIENT_TOKEN_MAX or holding a character outside printable ASCII or a
 * blank (it would not be one header line), or CITRUS_ENOMEM. */
int client_set_token(client *c, const char *token);
/* Whether token could be sent (client_set_token's test): 0 or
 * CITRUS_EINVAL. */
int client_check_token(const char *token);

/* TLS for https endpoints, for later requests: cacert is a PEM file of the
 * CA(s) to verify the server's certificate against (NULL: the system's);
 * cert and key are the PEM client certificate and its private key for
 * mutual TLS (NULL: none; key NULL with cert: the key is in cert's file).
 * The server's certificate and host name are always verified. The paths
 * are copied; the files are read at the next request, whose transport
 * error then says what is wrong with them. Returns 0 or CITRUS_ENOMEM (the
 * client unchanged). */
int client_set_tls(client *c, const char *cacert, const char *cert, const char *key);

/* When *flag becomes true (set by another thread, or by a signal handler:
 * atomic_bool is lock-free) the request in flight is abandoned within about
 * a second and client_request returns CITRUS_ECLOSED. The flag is kept, not
 * copied; NULL clears it. */
void client_set_abort_flag(client *c, const atomic_bool *flag);

/* From another thread, after setting the abort flag: ends the request in
 * flight at once (shuts its connection down) instead of at libcurl's next
 * progress call; client_request then returns CITRUS_ECLOSED. */
void client_interrupt(client *c);

/* Sends method (GET, PUT, POST, DELETE, ...) to endpoint + path, where path
 * starts with '/' and carries any query string, already escaped (see
 * client_escape_path). body/len may be NULL/0; the body is only read during
 * the call. headers is NULL or a NULL-terminated array of "Name: value"
 * strings, read during the call.
 *
 * Returns 0 when a response arrived, whatever its status: *resp is then
 * filled and owned by the caller (client_response_free). Otherwise *resp is
 * left empty and the result is CITRUS_EUNAVAILABLE (cannot connect, connection
 * broken), CITRUS_ETIMEOUT (timed out), CITRUS_ECLOSED (aborted through the
 * abort flag), CITRUS_EINVAL (bad path) or CITRUS_ENOMEM; client_error() then
 * describes it. */
int client_request(client *c, const char *method, const char *path, const void *body, size_t len,
                   const char *const *headers, client_response *resp);

/* Message for the last failed client_request; owned by the client. */
const char *client_error(const client *c);

/* Releases what a response owns and zeroes it. NULL is a no-op. */
void client_response_free(client_response *r);

/* The value of the first header called name (case-insensitive) in r, or
 * NULL. The string belongs to r. */
const char *client_response_header(const client_response *r, const char *name);

/* Parses the body as a JSON object. Returns a new reference, or NULL when
 * the body is not a JSON object (e then holds CITRUS_EBADJSON and why). */
json_t *client_response_json(const client_response *r, errdetail *e);

/* Describes an error response in out as "code: message", adding
 * " (mod_revision N)" / " (compact_revision N)" when the error carries them.
 * A body that is not a Citrus error gives "http_<status>: <start of body>". */
void client_response_error(const client_response *r, char *out, size_t len);

/* Percent-encodes s for use in a URL path: each '/'-separated segment is
 * escaped on its own (everything but RFC 3986 unreserved characters) and the
 * '/' kept. Returns a malloc'd string (caller frees) or NULL on allocation
 * failure. */
char *client_escape_path(const char *s);
/* Percent-encodes s as a query argument value ('/' escaped too). Returns a
 * malloc'd string (caller frees) or NULL on allocation failure. */
char *client_escape_query(const char *s);

#endif
