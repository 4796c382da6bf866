/* router/router.h — the data plane: runs SQL on the shard a key belongs
 * to, through a connection pool per shard database (dbconn/pool.h), or on
 * every active shard at once with the results merged (core/merge.h).
 *
 * The router reads shards, the ring and tenant pins through the shard
 * registry, which reads the node's catalog copy when it is fresh, and keeps
 * what it read for a key only while the catalog's revision stays the same
 * (router/route_memo.h), so it follows ring and shard changes as soon as
 * the catalog has them. Calls block (database round trips): they
 * run on the HTTP work pool. */
#ifndef CITRUS_ROUTER_ROUTER_H
#define CITRUS_ROUTER_ROUTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/errdetail.h"
#include "core/merge.h"
#include "core/value.h"
#include "dbconn/driver.h"
#include "registry/registry.h"
#include "registry/tenants.h"
#include "sys/clock.h"

typedef struct router router;

typedef struct router_options {
    registry *reg;              /* borrowed */
    size_t max_rows;            /* rows kept per answer; 0 = 10000 */
    int pool_size;              /* per shard database; 0 = 8 */
    int64_t pool_wait_ms;       /* 0 = 2000 */
    int64_t connect_timeout_ms; /* 0 = 5000 */
    int64_t default_max_lag_ms; /* eventual reads without max_lag_ms; 0 = 1000 */
    int64_t lag_recheck_ms;     /* least time between lag checks of a lagging replica; 0 = 100 */
    size_t memo_keys;           /* routes kept between catalog changes; 0 = 65536 */
    int statement_cache;      /* prepared statements per PostgreSQL connection; 0 = 256, < 0 none */
    int64_t query_timeout_ms; /* a statement's limit when the call names none; 0 = none */
    int64_t max_query_timeout_ms; /* the most a call may name (router_max_timeout_ms); 0 = none */
    const sysclock *clock;        /* borrowed, must outlive the router; NULL = the real one */
    bool int64_as_string; /* answers: every integer a JSON string by default (router.int64) */
    /* Strict tenants: a keyed call for a key with no directory entry is
     * CITRUS_EUNKNOWNTENANT (404) instead of following the ring, for every
     * key when require_registered, else for a key "<businessId>:..." whose
     * business has a location registered with a type type_strict (may be
     * NULL) says is strict. Scatter calls are not keyed. */
    bool require_registered;
    tenant_type_fn type_strict;
    void *type_strict_ctx;
} router_options;

/* What one call asks for (NULL: the defaults).
 *
 * How fresh a read must be. Strong (eventual false): the shard's primary.
 * Eventual: one of the shard's replicas whose replication lag is at most
 * max_lag_ms (< 0: the router's default), round robin, else the primary.
 * Writes and transactions always go to the primary.
 *
 * How long each statement may run: timeout_ms > 0, else the router's
 * query_timeout_ms (0: no limit). Past it the statement is cancelled and
 * the call fails with CITRUS_EQUERYTIMEOUT (504 query_timeout); see
 * drv_set_statement_timeout.
 *
 * Whether the caller is still waiting: gone(gone_ctx) (NULL: always),
 * asked once a connection is checked out (a caller that left while it
 * waited for one runs nothing) and while a statement runs
 * (drv_set_cancel_check); from the thread running the statement, and for a
 * scatter from several at once. When it says the caller went away the
 * statement is cancelled, its connection goes back to the pool (discarded
 * when its state is unknown) and the call fails with CITRUS_ECLOSED. */
typedef struct router_call {
    bool eventual;
    int64_t max_lag_ms;
    int64_t timeout_ms;
    drv_cancel_fn gone;
    void *gone_ctx;
} router_call;

router *router_new(const router_options *o);
void router_free(router *r);
/* The most timeout_ms a call may name (router_options.max_query_timeout_ms;
 * 0: no maximum), for the API to refuse more. */
int64_t router_max_timeout_ms(const router *r);
/* Whether answers send integers as strings unless the request says
 * (router_options.int64_as_string, config router.int64 "string"). */
bool router_int64_as_string(const router *r);

/* What a query ran on and what came back. */
typedef struct router_answer {
    char shard_id[SHARD_ID_MAX + 1]; /* single-shard queries */
    int64_t ring_version;
    result_set rs;
    bool truncated;
    int64_t changes;
    bool replica;        /* single-shard queries: a replica answered */
    json_t *shards;      /* scatter: ids that answered */
    json_t *missing;     /* scatter with partial: [{shard_id, error}] */
    bool catalog_cached; /* routed from the node's copy while the catalog was down */
} router_answer;

void router_answer_clear(router_answer *a);

/* Whether a statement only reads (SELECT, VALUES, SHOW, EXPLAIN: may go to
 * a replica, allowed on a read_only shard). */
bool router_is_read(const char *sql);

/* Errors: the code, and in e what the client is told (code, message and,
 * for an SQL error, the database's SQLSTATE). */

/* Tenant scope (docs/security.md, "PostgreSQL least privilege and row
 * isolation"): on PostgreSQL every keyed statement and transaction runs in
 * a transaction with citrus.tenant set to its key (set_config(..., true)),
 * and every scatter statement with citrus.scatter = on and no tenant, for
 * schema templates' row-level security policies to read. SQLite shards
 * have no such settings: nothing is set there.
 *
 * Runs one statement on the shard of key. */
int router_query_key(router *r, const char *key, const router_call *rd, const char *sql,
                     const value *params, size_t nparams, router_answer *out, errdetail *e);

/* Runs one statement for several keys that must all be on one shard:
 * CITRUS_EUNPROCESSABLE (422) naming each key's shard when they are not.
 * It runs in the scope of the first key. */
int router_query_keys(router *r, const char *const *keys, size_t nkeys, const router_call *rd,
                      const char *sql, const value *params, size_t nparams, router_answer *out,
                      errdetail *e);

/* Runs statements in one transaction on the shard of key (its primary):
 * all or nothing.
 * out[i] gets statement i's result; *failed the index of the statement that
 * failed (-1 otherwise). */
typedef struct router_stmt {
    const char *sql;
    value *params;
    size_t nparams;
} router_stmt;
int router_tx(router *r, const char *key, const router_call *call, const router_stmt *stmts,
              size_t n, router_answer *out, long *failed, errdetail *e);

/* Runs one statement on every active shard in parallel and merges the
 * results with spec. A failing shard fails the whole answer (naming it),
 * unless partial: then out->missing lists it. */
int router_scatter(router *r, const router_call *rd, const char *sql, const value *params,
                   size_t nparams, const merge_spec *spec, bool partial, router_answer *out,
                   errdetail *e);

#endif
