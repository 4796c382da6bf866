/* api/app.h — what request handlers share: the catalog store, its read
 * policy, limits, and the HTTP side of a catalog read. */
#ifndef CITRUS_API_APP_H
#define CITRUS_API_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/authn.h"
#include "auth/principal.h"
#include "catalog/cache.h"
#include "catalog/reader.h"
#include "catalog/store.h"
#include "controller/session.h"
#include "http/server.h"
#include "sys/deadline.h"

typedef struct app {
    store *st;              /* borrowed */
    size_t max_value_bytes; /* values over this are refused with value_too_large */
    /* bound on a catalog answer (server.max_response_bytes; 0: none): listings
     * stop at it, txn gets and snapshots past it are 413, watch replays page */
    size_t max_response_bytes;
    const char *node_id;
    int64_t max_watch_timeout_ms; /* cap on a long poll's ?timeout */
    session *sess;                /* this node's session; NULL until started */
    cache *cache;                 /* the node's catalog copy; NULL: the store is local */
    reader *rd;                   /* the catalog read policy (over st and cache) */
    struct watch_hub *watches;    /* GET /v1/watch's waiters; NULL: watches refused */
    struct shard_service *shards; /* the shard manager; NULL when not running */
    struct shard_health *health;  /* the shards' background probes; NULL with shards */
    struct router *router;        /* the data plane; NULL when not running */
    authn *auth;                  /* who may do what; NULL: no gate (mode none) */
    keyring *keys;                /* the API keys; NULL when api_key is off */
    const char *auth_modes;       /* as configured, for /health/ready ("none", "api_key,jwt") */
    struct records *rec;          /* the audit log; NULL: nothing is audited */
    struct bus *bus;              /* the event bus (bus.backend); NULL when not running */
    size_t max_event_bytes;       /* bus.max_event_bytes: the largest event published */
    /* bus.topics.sm_commands: publishing or replaying onto it needs
     * sm-admin, since its commands retire and delete shards, which the API
     * lets only sm-admin do ("" when there is no bus) */
    char admin_topic[256];
    char regq_topic[256]; /* bus.topics.registrations: the registration queue */
    bool audit_fail_open; /* a mutation goes on when its row cannot be written */
    /* server.request_deadline_ms: the Citrus API answers within this of a
     * request's arrival (0: no deadline); see app_request_deadline */
    int64_t request_deadline_ms;
} app;

/* The gate of both listeners (http_server_options.gate, ctx the app):
 * authenticates the request by a->auth, attaches its principal, and
 * answers 401 (with WWW-Authenticate) or 403 when the route's role and
 * scope (api/routes.c) do not let it in. */
bool api_gate(http_req *r, const http_route *route, void *ctx);
/* Who the request is: the gate's principal; without a gate (mode none),
 * an sm-admin "anonymous". Never NULL. */
const principal *api_principal(http_req *r);
/* The DSN as this request may see it: a copy, with its password masked
 * unless the request is sm-admin's, or a tenant's for a tenant key within
 * its scopes (tenant_key NULL: none); a shown one is audited
 * (api_note_reveal). NULL in, NULL out. Caller frees. */
char *api_dsn_view(http_req *r, const char *dsn, const char *tenant_key);
/* ?reveal=true (GET /v1/shards, /v1/shards/{id}, /v1/snapshot): 0 with
 * *reveal set, when absent or false, or true for sm-admin (the caller then
 * shows credentials and api_note_reveal's them); otherwise replied to
 * (400 junk, 403 not sm-admin) and its code. */
int api_reveal_query(http_req *r, bool *reveal);
/* Audits that the request is shown credentials (one credential.reveal row
 * per request; target may be NULL: the route's). */
void api_note_reveal(http_req *r, const char *target);
/* Checks that the request may act on the tenant key (principal_tenant_allowed);
 * replies 403 and returns CITRUS_EFORBIDDEN when not. */
int api_check_tenant(http_req *r, const char *tenant_key);
/* The rule of raw KV writes under citrus/ (principal_kv_write_reserved)
 * for this request: its principal, and ?unsafe=true. 0 when the write may
 * go on; else it has replied (403 reserved, with an audit row; 400 for a
 * junk ?unsafe) and returns the error. The gate applies it to PUT and
 * DELETE /v1/kv/..., POST /v1/txn to each of its puts and deletes. */
int api_kv_write_check(http_req *r, const char *key, bool prefix);
/* Replies 403 forbidden naming what p may not do; returns CITRUS_EFORBIDDEN. */
int api_forbid(http_req *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Whether catalog calls cross the network (the etcd backend): handlers
 * that make them blocking move to the work pool (http_offload). */
static inline bool app_remote(const app *a)
{
    return a->cache != NULL;
}

/* For a handler whose catalog calls block: the first call hands the
 * request to the work pool (http_offload) and returns; the second, on the
 * pool, goes on. */
#define APP_OFFLOAD(r, fn, ctx)                                                                    \
    do {                                                                                           \
        if (!http_offloaded(r))                                                                    \
            return http_offload(r, fn, ctx);                                                       \
    } while (0)

/* What is left of the request's deadline (a->request_deadline_ms from its
 * arrival) for the work on shard databases, keeping a margin to answer in
 * (a tenth of the deadline, 50..500 ms): the zero deadline when there is
 * none. On the real clock. */
deadline app_request_deadline(const app *a, const http_req *r);

/* ?consistency=strong|bounded|any into *level (def when absent); replies
 * 400 on anything else and returns CITRUS_EINVAL. */
int app_consistency(http_req *r, reader_level def, reader_level *level);

/* A GET's read at level through the node's reader (catalog/reader.h), with
 * the X-Citrus-Revision, -Consistency and -Staleness-Ms headers of what
 * answered; *info (may be NULL) says where it came from. On error it has
 * replied (503 stale says how old the copy is) and returns the error. */
int app_read(app *a, http_req *r, reader_level level, const kv_range_req *req, kv_range_res *out,
             reader_info *info);

/* The store's quota as /health/ready and the maintenance routes show it:
 * {"alarms":["NOSPACE"]|[],"db_size","db_size_in_use","quota_bytes"}
 * (api/maintenance.c). */
json_t *api_quota_json(const store_status *st);

/* The route table served by citrus server / citrus dev. */
extern const http_route api_routes[];
extern const size_t api_nroutes;
/* The router's (router.listen). */
extern const http_route router_routes[];
extern const size_t router_nroutes;

#endif
