/* api/audit.h — the audit log of the API: one row in the records store
 * (records/records.h) for every mutation, every credential reveal and
 * every 401/403, with who, from where, what and the outcome.
 *
 * A mutation's row is written before its handler runs (by the gate): when
 * it cannot be written the request is refused with 503 audit_unavailable
 * and nothing is applied (fail closed, as Vault does), unless
 * auth.audit.fail_open, which logs a warning and goes on. Its status is
 * recorded when the request completes (http_server_options.done). */
#ifndef CITRUS_API_AUDIT_H
#define CITRUS_API_AUDIT_H

#include <stdbool.h>
#include <stdint.h>

#include "api/app.h"
#include "records/records.h"

/* What the gate keeps with a request: who it is, and its audit row. */
typedef struct api_reqctx {
    principal p;
    app *a;
    int64_t audit_id; /* 0: none begun */
    bool revealed;    /* a credential.reveal row was written */
    int audit_rc;     /* the mutation's row: written (0) or not (the writer's) */
    char audit_err[256];
} api_reqctx;

/* The action a route's mutation is audited as ("kv.put", "shard.", ...:
 * a name ending in '.' takes the route's {action} parameter), or NULL when
 * the route is not a mutation (reads, the router's SQL). */
const char *api_audit_action(const http_route *route);

/* http_server_options.before: for a mutation, parks the request while its
 * row is written (the records store's group commit), then runs its handler;
 * when the row cannot be written, replies 503 audit_unavailable and the
 * handler never runs (fail closed), unless auth.audit.fail_open. */
void api_audit_before(http_req *r, void *ctx);
/* A refused request (401, 403) or a reveal: one row with its status now.
 * Failures are logged (the refusal stands either way). */
void api_audit_now(http_req *r, const char *action, const char *target, int status);
/* http_server_options.done: records the status of a begun row. */
void api_audit_done(http_req *r, unsigned status, void *ctx);

/* A query parameter's decimal integer, all of s (no sign but '-', no
 * blanks, no overflow): 0 or CITRUS_EINVAL. */
int api_parse_int(const char *s, int64_t *out);
/* ?since=: Unix ms, or an RFC 3339 time: 0 or CITRUS_EINVAL. */
int api_parse_since(const char *s, int64_t *ms);

/* GET /v1/audit's query parameters, as given (NULL: absent). */
typedef struct api_audit_params {
    const char *since, *principal, *action, *target, *limit, *after;
} api_audit_params;
/* Checks and converts them into *q (its strings point into in): since is
 * Unix ms or RFC 3339; limit 1..1000 (default 100); after >= 0; filters
 * 1..1024 bytes. CITRUS_EINVAL naming the parameter. */
int api_audit_query_parse(const api_audit_params *in, struct audit_query *q, errdetail *e);

#endif
