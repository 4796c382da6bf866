/* citrus/citrus.h — libcitrus, the Citrus client library (shard key
 * resolution, query helpers, consistency levels: docs/requirements.md).
 *
 * A client keeps a local copy of the routing part of the catalog (shards,
 * the consistent-hash ring, the tenant directory), loaded from a Citrus
 * API node and kept fresh by a background watch, so citrus_resolve answers
 * without a network round trip, exactly as GET /v1/route would. Queries go
 * through the router (POST /v1/query, /v1/tx).
 *
 * Threads: every function may be called from any number of threads at once
 * on one client (the copy is an immutable snapshot, swapped when the watch
 * applies changes). Routes and results are immutable and may be read from
 * any thread; each is freed once, by its owner.
 *
 * Errors: functions return 0 or a negative CITRUS_E* code (citrus/errors.h)
 * and, when err is not NULL, fill *err (see citrus_error). Strings passed
 * in are only read during the call unless said otherwise.
 *
 * Ownership, in short: citrus_connect -> citrus_close; citrus_resolve ->
 * citrus_route_free; citrus_query/tx/scatter -> citrus_result_free;
 * strings returned through char ** -> citrus_free. Every string a route or
 * result hands out belongs to it and lives as long as it does. */
#ifndef CITRUS_CITRUS_H
#define CITRUS_CITRUS_H

#include <stddef.h>
#include <stdint.h>

#include "citrus/errors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct citrus_client citrus_client;
typedef struct citrus_route citrus_route;
typedef struct citrus_result citrus_result;

/* What went wrong; a caller-owned struct, filled by a failing call. */
typedef struct citrus_error {
    int code;         /* the CITRUS_E* value returned (0: no error) */
    int http_status;  /* status of the error answer; 0 when none came */
    char name[64];    /* snake_case code: the server's, or citrus_err_code(code) */
    char sqlstate[8]; /* SQLSTATE of a SQL error where the database gave one, else "" */
    long statement;   /* citrus_tx: index of the failing statement, else -1 */
    char message[512];
} citrus_error;

/* ---- the client ---- */

typedef struct citrus_options {
    /* Citrus API base URLs ("http://127.0.0.1:8081"), at least one: tried in
     * turn, moving to the next on a connection error or an unavailable node. */
    const char *const *endpoints;
    size_t nendpoints;
    /* The router's base URL ("http://127.0.0.1:8080"); NULL: the query
     * functions fail with CITRUS_EINVAL. */
    const char *router_url;
    long connect_timeout_ms; /* per connection attempt; 0: 2000 */
    /* Per request; 0: 30000. Queries and transactions send 90 % of it to
     * the router as their statement timeout (timeout_ms), so a statement
     * is cancelled, not left running, once this client would stop waiting
     * for it: the call fails with CITRUS_EQUERYTIMEOUT. */
    long request_timeout_ms;
    int no_watch; /* non-zero: load the copy once, no background watch */

    /* ---- credentials (added with authentication; a caller that sets
     * none of them talks to servers without auth as before) ----
     *
     * Every request the library makes (catalog loads, the watch, tenant
     * registration, the router) carries "Authorization: Bearer <token>".
     * A request the server refuses gives CITRUS_EUNAUTHENTICATED (401: no
     * token, or one the server does not accept) or CITRUS_EFORBIDDEN (403:
     * the token lacks the role or scope), with err->http_status set and
     * err->message "401 from <url>: <the server's message>"; 401 and 403
     * are not failed over to the next endpoint. */
    /* An API key ("ck_...") or a JWT: one word of visible ASCII, at most
     * CITRUS_TOKEN_MAX bytes (else citrus_connect fails with
     * CITRUS_EINVAL). Copied. NULL: none (unless token_cb). */
    const char *token;
    /* For tokens that expire (JWTs): writes the current token, NUL-
     * terminated, into buf (len bytes: CITRUS_TOKEN_MAX + 1) and returns
     * 0; non-zero fails the request with CITRUS_EUNAUTHENTICATED. Called
     * before the first request, and again once whenever a request is
     * refused with 401 by a token the callback gave: that request is then
     * sent once more with the new token. Calls are serialised by the
     * client (never two at once) but may come from any thread using it,
     * including the watch thread; token_ctx is passed as is. Not with
     * token (CITRUS_EINVAL). */
    int (*token_cb)(void *ctx, char *buf, size_t len);
    void *token_ctx;
    /* TLS, for https:// endpoints and router: cacert is a PEM file of the
     * CA(s) to verify the servers' certificates against (NULL: the
     * system's); cert and key the PEM client certificate and its key for
     * mutual TLS (NULL: none; key NULL with cert: the key is in cert's
     * file). Certificates and host names are always verified. Copied. */
    const char *cacert;
    const char *cert;
    const char *key;
} citrus_options;

/* The longest token citrus_options.token and token_cb may give. */
#define CITRUS_TOKEN_MAX 8192

/* Connects: loads the routing copy from the first endpoint that answers and
 * (unless no_watch) starts the watch that keeps it fresh. The options and
 * their strings are copied. NULL on failure (*err says why:
 * CITRUS_EINVAL for bad options, CITRUS_EUNAVAILABLE when no endpoint
 * answered, ...). Free with citrus_close. */
CITRUS_API citrus_client *citrus_connect(const citrus_options *opt, citrus_error *err);
/* Stops the watch and frees the client. Routes and results stay valid.
 * NULL is a no-op. Must not race with other calls on the same client. */
CITRUS_API void citrus_close(citrus_client *c);

/* Frees a string a citrus_* function returned. NULL is a no-op. */
CITRUS_API void citrus_free(void *p);

/* The catalog revision the copy reflects, and the ring version in it (the
 * mod_revision of citrus/ring/meta; 0 with no ring yet). */
CITRUS_API int64_t citrus_revision(citrus_client *c);
CITRUS_API int64_t citrus_ring_version(citrus_client *c);
/* Waits until the copy reflects at least `revision`: 0, or CITRUS_ETIMEOUT
 * after timeout_ms. */
CITRUS_API int citrus_wait_revision(citrus_client *c, int64_t revision, long timeout_ms);
/* Reloads the copy now (for clients without a watch). */
CITRUS_API int citrus_refresh(citrus_client *c, citrus_error *err);

/* ---- routing (local: no network round trip) ---- */

typedef enum { CITRUS_SOURCE_RING = 0, CITRUS_SOURCE_DIRECTORY = 1 } citrus_source;

/* Where key (1..1024 bytes, used as is) goes: its pin in the tenant
 * directory, else the owner of the first ring token >= hash(key).
 * CITRUS_EINVAL for a bad key, CITRUS_EUNAVAILABLE when the key is not
 * pinned and no shard owns tokens. *out is the caller's: citrus_route_free. */
CITRUS_API int citrus_resolve(citrus_client *c, const char *key, citrus_route **out,
                              citrus_error *err);
CITRUS_API void citrus_route_free(citrus_route *r);
CITRUS_API const char *citrus_route_shard_id(const citrus_route *r);
CITRUS_API citrus_source citrus_route_source(const citrus_route *r);
CITRUS_API uint64_t citrus_route_token(const citrus_route *r);
CITRUS_API int64_t citrus_route_ring_version(const citrus_route *r);
/* The shard's primary DSN and state name ("active", "read_only", ...);
 * NULL when the copy has no record of the shard. */
CITRUS_API const char *citrus_route_dsn(const citrus_route *r);
CITRUS_API const char *citrus_route_state(const citrus_route *r);
CITRUS_API size_t citrus_route_replica_count(const citrus_route *r);
CITRUS_API const char *citrus_route_replica(const citrus_route *r,
                                            size_t i); /* NULL: out of range */

typedef enum { CITRUS_STRONG = 0, CITRUS_EVENTUAL = 1 } citrus_consistency;

/* The DSN to connect to for key: the primary for CITRUS_STRONG; for
 * CITRUS_EVENTUAL one of the shard's replicas (round robin) when it has
 * any, else the primary. *dsn_out is the caller's (citrus_free).
 * CITRUS_ENOTFOUND when the shard has no DSN yet. */
CITRUS_API int citrus_shard_dsn(citrus_client *c, const char *key, citrus_consistency consistency,
                                char **dsn_out, citrus_error *err);

/* ---- tenants ---- */

/* Registers the business-location "<business_id>:<location_id>" (POST
 * /api/register: pinned at its shard, the business type's schema template
 * applied there); registering again is not an error. With the watch on, it
 * returns once the local copy has the pin, so citrus_resolve agrees at
 * once. key_out (may be NULL) gets the tenant key (citrus_free). */
CITRUS_API int citrus_register_tenant(citrus_client *c, const char *business_id,
                                      const char *location_id, const char *business_type,
                                      char **key_out, citrus_error *err);

/* ---- queries (through the router) ---- */

typedef enum {
    CITRUS_NULL = 0,
    CITRUS_INT = 1,
    CITRUS_REAL = 2,
    CITRUS_TEXT = 3,
    CITRUS_BOOL = 4,
    CITRUS_BLOB = 5,
} citrus_type;

/* A statement parameter ($1, $2, ...). Text and blob bytes are borrowed:
 * they must stay valid during the call only. Build them with the
 * constructors below. */
typedef struct citrus_param {
    citrus_type type;
    union {
        int64_t i;
        double d;
        int b;
        struct {
            const void *p;
            size_t len;
        } s;
    } u;
} citrus_param;

CITRUS_API citrus_param citrus_param_null(void);
CITRUS_API citrus_param citrus_param_int(int64_t v);
CITRUS_API citrus_param citrus_param_real(double v);
CITRUS_API citrus_param citrus_param_bool(int v);
CITRUS_API citrus_param citrus_param_text(const char *s); /* NUL-terminated; NULL gives NULL */
CITRUS_API citrus_param citrus_param_textn(const char *s, size_t len);
CITRUS_API citrus_param citrus_param_blob(const void *p, size_t len);

typedef struct citrus_query_opts {
    citrus_consistency consistency; /* strong (default): the primary */
    long max_lag_ms; /* eventual: the most replication lag accepted; 0: the router's default */
} citrus_query_opts;

/* Runs one statement on key's shard (the router resolves it as
 * citrus_resolve does). opts may be NULL (strong). SQL errors are
 * CITRUS_ESQL with err->sqlstate and err->message from the database.
 * *out is the caller's: citrus_result_free. */
CITRUS_API int citrus_query(citrus_client *c, const char *key, const char *sql,
                            const citrus_param *params, size_t nparams,
                            const citrus_query_opts *opts, citrus_result **out, citrus_error *err);

typedef struct citrus_stmt {
    const char *sql;
    const citrus_param *params;
    size_t nparams;
} citrus_stmt;

/* Runs n statements (1..100) in one transaction on key's shard: all or
 * nothing (err->statement names the one that failed). out has n slots,
 * each filled with the caller's result (citrus_result_free each); on
 * failure none is filled. */
CITRUS_API int citrus_tx(citrus_client *c, const char *key, const citrus_stmt *stmts, size_t n,
                         citrus_result **out, citrus_error *err);

/* Runs one statement on every active shard and concatenates the rows
 * (POST /v1/query with scatter: true). */
CITRUS_API int citrus_scatter(citrus_client *c, const char *sql, const citrus_param *params,
                              size_t nparams, const citrus_query_opts *opts, citrus_result **out,
                              citrus_error *err);

CITRUS_API void citrus_result_free(citrus_result *r);
/* The shard that ran it ("" for a scatter) and the ring version routed by. */
CITRUS_API const char *citrus_result_shard_id(const citrus_result *r);
/* Non-zero when a replica answered (an eventual read), 0 for the primary. */
CITRUS_API int citrus_result_from_replica(const citrus_result *r);
CITRUS_API int64_t citrus_result_ring_version(const citrus_result *r);
/* Rows changed by a write; whether rows were cut at the router's limit. */
CITRUS_API int64_t citrus_result_changes(const citrus_result *r);
CITRUS_API int citrus_result_truncated(const citrus_result *r);
CITRUS_API size_t citrus_result_column_count(const citrus_result *r);
CITRUS_API const char *citrus_result_column_name(const citrus_result *r,
                                                 size_t col); /* NULL: out of range */
CITRUS_API size_t citrus_result_row_count(const citrus_result *r);
/* Cell accessors: CITRUS_NULL (and 0 / NULL) out of range. Numbers convert
 * between INT, REAL and BOOL; text and blob give NULL for other types. len
 * may be NULL; text is NUL-terminated as well. Integers the router sent as
 * strings (column type "int64-string", the request option int64) read back
 * as CITRUS_INT, exactly; citrus_result_int also reads a text cell holding
 * an integer ("9007199254740993") exactly, and citrus_result_real a numeric
 * one (exact decimals come as text: "12.50", citrus_result_text). */
CITRUS_API citrus_type citrus_result_type(const citrus_result *r, size_t row, size_t col);
CITRUS_API int64_t citrus_result_int(const citrus_result *r, size_t row, size_t col);
CITRUS_API double citrus_result_real(const citrus_result *r, size_t row, size_t col);
CITRUS_API int citrus_result_bool(const citrus_result *r, size_t row, size_t col);
CITRUS_API const char *citrus_result_text(const citrus_result *r, size_t row, size_t col,
                                          size_t *len);
CITRUS_API const void *citrus_result_blob(const citrus_result *r, size_t row, size_t col,
                                          size_t *len);

#ifdef __cplusplus
}
#endif

#endif
