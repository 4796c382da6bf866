/* lib/conns.h — libcitrus's HTTP: a thread-safe pool of reusable
 * connections (net/client.c handles, one request at a time each) to the
 * catalog endpoints, with fail-over between them, and to the router; and
 * the translation of failures into citrus_error. */
#ifndef CITRUS_LIB_CONNS_H
#define CITRUS_LIB_CONNS_H

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "citrus/citrus.h"
#include "net/client.h"

typedef struct conns conns;

/* endpoints are copied. NULL out of memory. */
conns *conns_new(const char *const *endpoints, size_t n, long connect_ms, long request_ms);
void conns_free(conns *p);

/* Takes the credentials of o (token or token_cb, the TLS files; see
 * citrus.h), copied. CITRUS_EINVAL for a bad token or both token and
 * token_cb, CITRUS_ENOMEM; err filled. Before any request. */
int conns_set_credentials(conns *p, const citrus_options *o, citrus_error *err);

/* A new client for base with the pool's timeouts and TLS files (the
 * caller's: client_free), or NULL. */
client *conns_client_new(const conns *p, const char *base);

/* Gives c the current token (from token_cb first when it was never
 * called), for a request sent past conns_request (the watch). 0, or the
 * error (err filled). */
int conns_authorize(conns *p, client *c, citrus_error *err);

size_t conns_endpoint_count(const conns *p);
const char *conns_endpoint(const conns *p, size_t i);
/* The endpoint that answered last (where the next request starts). */
size_t conns_preferred(const conns *p);
void conns_set_preferred(conns *p, size_t i);

/* One request to base + path (body: JSON or NULL), with the token. 0 when
 * an answer came, whatever its status (*resp is then the caller's), but
 * 401 and 403: those are CITRUS_EUNAUTHENTICATED and CITRUS_EFORBIDDEN,
 * err saying "401 from <base>: <message>". A 401 to a token from token_cb
 * gets a new token and the request is sent once more. Else the transport
 * error, with err filled. */
int conns_request(conns *p, const char *base, const char *method, const char *path,
                  const json_t *body, client_response *resp, citrus_error *err);

/* The same to the catalog: starting at the preferred endpoint, each in
 * turn until one answers with something other than 503 (or all were
 * tried: the last failure is returned). */
int conns_catalog(conns *p, const char *method, const char *path, const json_t *body,
                  client_response *resp, citrus_error *err);

/* Whether an answer (or transport error rc) means "try another node". */
bool conns_should_fail_over(int rc, const client_response *resp);

/* Fills err (may be NULL) with code and a message; returns code. */
__attribute__((format(printf, 3, 4))) int conns_fail(citrus_error *err, int code, const char *fmt,
                                                     ...);
/* Fills err from an error answer ({"error":{"code","message","sqlstate"?,
 * "statement"?}}, or anything else) and returns its CITRUS_E* code. */
int conns_answer_error(const client_response *resp, citrus_error *err);

/* The body of a 2xx answer as a JSON object, else NULL with err filled
 * (the error answer, or "unexpected answer"). */
json_t *conns_answer_json(const client_response *resp, citrus_error *err);

#endif
