/* router/router.c — running SQL on the right shard (see router.h). */
#include "router/router.h"

#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "citrus/errors.h"
#include "core/hash.h"
#include "core/sqlword.h"
#include "obs/metrics.h"
#include "router/route_memo.h"
#include "dbconn/pool.h"
#include "registry/tenants.h"
#include "sys/clock.h"
#include "sys/fanout.h"

#define SCATTER_THREADS 8

/* A database the router talks to: its pool and, for a replica, what the
 * router last learnt of its replication lag. */
typedef struct pool_entry {
    struct pool_entry *next; /* hash chain (router.pools) */
    char *dsn;
    pool *p;
    /* guarded by router.mu */
    bool lag_known;
    int64_t lag_ms, lag_at_ns; /* the last measurement and when it was taken */
    int64_t down_until_ns;     /* skipped as a replica until then (could not connect) */
} pool_entry;

struct router {
    registry *reg;
    size_t max_rows;
    int pool_size;
    size_t statement_cache;
    int64_t pool_wait_ms, connect_timeout_ms;
    int64_t default_max_lag_ms, lag_recheck_ms;
    int64_t query_timeout_ms;     /* 0 = none */
    int64_t max_query_timeout_ms; /* 0 = none */
    bool int64_as_string;
    bool require_registered; /* strict tenants (router_options) */
    tenant_type_fn type_strict;
    void *type_strict_ctx;
    pthread_mutex_t mu;
    route_memo *memo; /* routes between catalog changes */
    /* The databases by DSN: a hash table of npools entries in nbuckets (a
     * power of two, at least npools) chains; guarded by mu. Looked up on
     * every statement, so the cost must not grow with the shards. */
    pool_entry **pools;
    size_t npools, nbuckets;
    atomic_uint next_replica; /* round robin over a shard's replicas */
    const sysclock *clock;    /* borrowed; NULL = the real one */
};

static void describe_metrics(void)
{
    metrics_describe("citrus_router_queries_total", METRIC_COUNTER,
                     "statements run by the router, by shard and outcome");
    metrics_describe("citrus_router_query_duration_seconds", METRIC_HISTOGRAM,
                     "time from checkout to the statement's answer, by shard");
    metrics_describe("citrus_router_pool_connections", METRIC_GAUGE,
                     "connections of a shard's pool, by role and state (idle, in_use); "
                     "role replica sums the shard's replica pools");
    metrics_describe("citrus_router_pool_exhausted_total", METRIC_COUNTER,
                     "checkouts that gave up waiting for a connection, by shard");
}

static pool_entry *pool_for(router *r, const char *dsn);

/* The series of one shard and role (primary, replica). */
typedef struct shard_series {
    char id[SHARD_ID_MAX + 1];
    const char *role;
    metric_series *outcome[6]; /* OUTCOMES */
    metric_series *exhausted, *latency, *idle, *in_use;
} shard_series;

#define SHARD_SERIES_CACHE 16

static const char *const OUTCOMES[6] = {"ok",          "sql_error", "pool_exhausted",
                                        "unavailable", "timeout",   "cancelled"};

/* From a small per-thread cache: a query formats no labels and takes no
 * lock for its metrics once its thread has seen its shard. */
static const shard_series *series_for(const char *id, const char *role)
{
    static _Thread_local shard_series cache[SHARD_SERIES_CACHE];
    static _Thread_local unsigned next;
    for (unsigned i = 0; i < SHARD_SERIES_CACHE; i++)
        if (cache[i].role == role && strcmp(cache[i].id, id) == 0)
            return &cache[i];
    shard_series *c = &cache[next++ % SHARD_SERIES_CACHE];
    char esc[160], labels[256];
    metrics_escape_label(id, esc, sizeof(esc));
    for (int i = 0; i < 6; i++) {
        snprintf(labels, sizeof(labels), "shard=\"%s\",role=\"%s\",outcome=\"%s\"", esc, role,
                 OUTCOMES[i]);
        c->outcome[i] = metrics_series("citrus_router_queries_total", labels, METRIC_COUNTER);
    }
    snprintf(labels, sizeof(labels), "shard=\"%s\"", esc);
    c->exhausted = metrics_series("citrus_router_pool_exhausted_total", labels, METRIC_COUNTER);
    c->latency = metrics_series("citrus_router_query_duration_seconds", labels, METRIC_HISTOGRAM);
    snprintf(labels, sizeof(labels), "shard=\"%s\",role=\"%s\",state=\"idle\"", esc, role);
    c->idle = metrics_series("citrus_router_pool_connections", labels, METRIC_GAUGE);
    snprintf(labels, sizeof(labels), "shard=\"%s\",role=\"%s\",state=\"in_use\"", esc, role);
    c->in_use = metrics_series("citrus_router_pool_connections", labels, METRIC_GAUGE);
    snprintf(c->id, sizeof(c->id), "%s", id);
    c->role = role;
    return c;
}

static const char ROLE_PRIMARY[] = "primary", ROLE_REPLICA[] = "replica";

/* Counters after a statement on shard s, and the gauges of the pool it ran
 * on: the primary's, or for the replica role the shard's replica pools
 * together (one series per shard and role, whichever replica served). */
static void record(router *r, const shard *s, pool *p, const char *role, int rc, int64_t t0)
{
    const shard_series *m = series_for(s->id, role);
    int outcome = rc == 0                                               ? 0
                  : rc == CITRUS_ESQL || rc == CITRUS_ESTMTDENIED       ? 1
                  : rc == CITRUS_EPOOL                                  ? 2
                  : rc == CITRUS_EQUERYTIMEOUT || rc == CITRUS_ETIMEOUT ? 4
                  : rc == CITRUS_ECLOSED                                ? 5
                                                                        : 3;
    metric_add(m->outcome[outcome], 1);
    if (rc == CITRUS_EPOOL)
        metric_add(m->exhausted, 1);
    if (rc == 0)
        metric_observe(m->latency, (double)(clock_mono_ns(r->clock) - t0) / 1e9);
    pool_stats st;
    pool_get_stats(p, &st);
    if (role == ROLE_REPLICA) {
        st.idle = st.in_use = 0;
        for (size_t i = 0; i < s->nreplicas; i++) {
            pool_entry *pe = pool_for(r, s->replicas[i]);
            pool_stats one;
            if (!pe)
                continue;
            pool_get_stats(pe->p, &one);
            st.idle += one.idle;
            st.in_use += one.in_use;
        }
    }
    metric_set(m->idle, st.idle);
    metric_set(m->in_use, st.in_use);
}

router *router_new(const router_options *o)
{
    describe_metrics();
    router *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->reg = o->reg;
    r->clock = o->clock;
    r->max_rows = o->max_rows ? o->max_rows : 10000;
    r->pool_size = o->pool_size ? o->pool_size : 8;
    r->statement_cache = o->statement_cache < 0 ? 0
                         : o->statement_cache   ? (size_t)o->statement_cache
                                                : 256;
    r->pool_wait_ms = o->pool_wait_ms ? o->pool_wait_ms : 2000;
    r->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : 5000;
    r->default_max_lag_ms = o->default_max_lag_ms > 0 ? o->default_max_lag_ms : 1000;
    r->lag_recheck_ms = o->lag_recheck_ms > 0 ? o->lag_recheck_ms : 100;
    r->query_timeout_ms = o->query_timeout_ms > 0 ? o->query_timeout_ms : 0;
    r->max_query_timeout_ms = o->max_query_timeout_ms > 0 ? o->max_query_timeout_ms : 0;
    r->int64_as_string = o->int64_as_string;
    r->require_registered = o->require_registered;
    r->type_strict = o->type_strict;
    r->type_strict_ctx = o->type_strict_ctx;
    if (!(r->memo = route_memo_new(o->memo_keys))) {
        free(r);
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

int64_t router_max_timeout_ms(const router *r)
{
    return r->max_query_timeout_ms;
}

bool router_int64_as_string(const router *r)
{
    return r->int64_as_string;
}

void router_free(router *r)
{
    if (!r)
        return;
    for (size_t b = 0; b < r->nbuckets; b++) {
        for (pool_entry *pe = r->pools[b], *next; pe; pe = next) {
            next = pe->next;
            pool_free(pe->p);
            free(pe->dsn);
            free(pe);
        }
    }
    free(r->pools);
    route_memo_free(r->memo);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void router_answer_clear(router_answer *a)
{
    rs_free(&a->rs);
    json_decref(a->shards);
    json_decref(a->missing);
    memset(a, 0, sizeof(*a));
}

static size_t bucket_of(const router *r, const char *dsn)
{
    return (size_t)citrus_hash(CITRUS_HASH_XXH64, dsn, strlen(dsn)) & (r->nbuckets - 1);
}

/* Doubles the table (mu held); false when out of memory. */
static bool pools_grow(router *r)
{
    size_t n = r->nbuckets ? r->nbuckets * 2 : 16;
    pool_entry **v = calloc(n, sizeof(pool_entry *));
    if (!v)
        return false;
    size_t old = r->nbuckets;
    pool_entry **from = r->pools;
    r->pools = v;
    r->nbuckets = n;
    for (size_t b = 0; b < old; b++) {
        for (pool_entry *pe = from[b], *next; pe; pe = next) {
            next = pe->next;
            size_t to = bucket_of(r, pe->dsn);
            pe->next = v[to];
            v[to] = pe;
        }
    }
    free(from);
    return true;
}

/* A new entry for dsn with its pool; NULL when out of memory. */
static pool_entry *pool_entry_new(router *r, const char *dsn)
{
    pool_entry *pe = calloc(1, sizeof(*pe));
    if (!pe)
        return NULL;
    pool_options po = {.dsn = dsn,
                       .max_size = r->pool_size,
                       .statement_cache = r->statement_cache,
                       .wait_ms = r->pool_wait_ms,
                       .connect_timeout_ms = r->connect_timeout_ms,
                       .clock = r->clock};
    pe->dsn = strdup(dsn);
    pe->p = pe->dsn ? pool_new(&po) : NULL;
    if (!pe->p) {
        free(pe->dsn);
        free(pe);
        return NULL;
    }
    return pe;
}

/* The pool of a database, made on first use. */
static pool_entry *pool_for(router *r, const char *dsn)
{
    pthread_mutex_lock(&r->mu);
    pool_entry *pe = NULL;
    if (r->nbuckets)
        for (pe = r->pools[bucket_of(r, dsn)]; pe && strcmp(pe->dsn, dsn) != 0; pe = pe->next)
            ;
    if (!pe && (r->npools < r->nbuckets || pools_grow(r)) && (pe = pool_entry_new(r, dsn))) {
        size_t b = bucket_of(r, dsn);
        pe->next = r->pools[b];
        r->pools[b] = pe;
        r->npools++;
    }
    pthread_mutex_unlock(&r->mu);
    return pe;
}

/* A read: its first keyword (see sql_first_word_in) is SELECT, VALUES,
 * SHOW or EXPLAIN. */
bool router_is_read(const char *sql)
{
    static const char *const reads[] = {"select", "values", "show", "explain"};
    return sql_first_word_in(sql, reads, sizeof(reads) / sizeof(reads[0]));
}

/* CITRUS_EUNKNOWNTENANT when key has no directory entry (ra) and the
 * router is strict about it (router_options.require_registered). */
static int strict_check(router *r, const char *key, const route_answer *ra, errdetail *e)
{
    if (ra->pinned)
        return 0;
    bool strict = r->require_registered;
    const char *colon = strchr(key, ':');
    const char *why = "router.require_registered";
    if (!strict && r->type_strict && colon && (size_t)(colon - key) <= TENANT_ID_MAX) {
        char biz[TENANT_ID_MAX + 1];
        snprintf(biz, sizeof(biz), "%.*s", (int)(colon - key), key);
        int rc = tenants_business_strict(r->reg, biz, r->type_strict, r->type_strict_ctx, &strict);
        if (rc < 0)
            return errdetail_set(e, rc, "the catalog could not be read");
        why = "its business has a location of a business type whose template requires "
              "registration";
    }
    if (!strict)
        return 0;
    return errdetail_set(e, CITRUS_EUNKNOWNTENANT,
                         "tenant '%.300s' is not registered (%s): register it (POST "
                         "/api/register) before querying it",
                         key, why);
}

/* The route of key and its shard, read from the catalog (pin, else ring). */
static int route_read(router *r, const char *key, route_answer *ra, shard *s, bool *cached,
                      errdetail *e)
{
    const ring *rg;
    int64_t version;
    int rc = registry_ring(r->reg, &rg, &version, cached);
    if (rc < 0)
        return errdetail_set(e, rc, "the catalog could not be read");
    rc = tenants_route(r->reg, rg, version, key, ra);
    registry_ring_release(r->reg, rg);
    ra->ring_version = version;
    if (rc == CITRUS_EUNAVAILABLE)
        return errdetail_set(e, rc, "no shard owns any token yet: add an active shard");
    if (rc < 0)
        return errdetail_set(e, rc, "the catalog could not be read");
    rc = registry_shard_read(r->reg, ra->shard_id, s);
    if (rc < 0)
        return errdetail_set(e, rc == CITRUS_ENOTFOUND ? CITRUS_EUNAVAILABLE : rc,
                             "shard '%s' of key '%s' is not in the catalog", ra->shard_id, key);
    return 0;
}

/* The shard a key goes to, checked for what the statement does: from the
 * memo while the catalog has not moved since it was read, else read (and
 * remembered). *cached: whether that came from the node's copy while the
 * catalog was down. */
static int resolve(router *r, const char *key, bool read, shard *s, int64_t *ring_version,
                   bool *cached, errdetail *e)
{
    route_answer ra = {0};
    int64_t rev = registry_revision(r->reg, cached);
    shard_init(s);
    if (rev < 0 || !route_memo_get(r->memo, rev, key, &ra, s)) {
        shard_clear(s);
        int rc = route_read(r, key, &ra, s, cached, e);
        if (rc < 0)
            return rc;
        if (rev >= 0)
            route_memo_put(r->memo, rev, key, &ra, s);
    }
    int strict = strict_check(r, key, &ra, e);
    if (strict < 0) {
        shard_clear(s);
        return strict;
    }
    *ring_version = ra.ring_version;
    bool ok = read ? shard_state_serves_reads(s->state) : shard_state_serves_writes(s->state);
    if (!ok || !s->dsn) {
        int code = !read && s->state == SHARD_READ_ONLY ? CITRUS_EREADONLY : CITRUS_EUNAVAILABLE;
        errdetail_set(e, code, "shard '%s' is %s: it does not take %s", s->id,
                      shard_state_name(s->state), read ? "queries" : "writes");
        shard_clear(s);
        return code;
    }
    return 0;
}

/* The client's error for a driver or pool error (rc, de) on a shard. */
static int drv_to_router(int rc, const errdetail *de, const char *shard_id, errdetail *e)
{
    if (rc == CITRUS_EINVAL) { /* the statement's fault: the database's own words */
        errdetail_set(e, CITRUS_ESQL, "%s", de->message);
    } else if (rc == CITRUS_ESTMTDENIED) { /* the SQLite sandbox's, naming what it refused */
        errdetail_set(e, rc, "%s", de->message);
    } else {
        bool own = rc == CITRUS_EPOOL || rc == CITRUS_EQUERYTIMEOUT || rc == CITRUS_ETIMEOUT ||
                   rc == CITRUS_ECLOSED;
        errdetail_set(e, own ? rc : CITRUS_EUNAVAILABLE, "shard '%s': %s", shard_id, de->message);
    }
    errdetail_sqlstate(e, de->sqlstate);
    return e->code;
}

/* A connection to one of s's replicas whose replication lag is within
 * max_lag_ms, trying them round robin; NULL when none is (or none can be
 * reached). A measurement of lag L taken t ms ago bounds the replica's
 * staleness now by L + t (it only falls behind as fast as time passes), so
 * a replica is measured again (on the connection about to be used) only
 * when that bound exceeds max_lag_ms, and not more often than every
 * lag_recheck_ms while it is over. A PostgreSQL server that is not in
 * recovery is not a replica (a promoted one has a history of its own): it
 * never serves eventual reads. One that cannot be reached is skipped for a
 * second. */
static drv_conn *replica_checkout(router *r, const shard *s, int64_t max_lag, pool_entry **out)
{
    size_t n = s->nreplicas;
    unsigned start = atomic_fetch_add(&r->next_replica, 1u);
    for (size_t k = 0; k < n; k++) {
        pool_entry *pe = pool_for(r, s->replicas[(start + k) % n]);
        if (!pe)
            continue;
        int64_t now = clock_mono_ns(r->clock);
        pthread_mutex_lock(&r->mu);
        int64_t age_ms = (now - pe->lag_at_ns) / 1000000;
        bool down = pe->down_until_ns > now;
        bool fresh = pe->lag_known && pe->lag_ms <= max_lag - age_ms;
        bool recent = pe->lag_known && age_ms < r->lag_recheck_ms;
        pthread_mutex_unlock(&r->mu);
        if (down || (!fresh && recent))
            continue;
        drv_conn *c;
        errdetail de;
        int rc = pool_get(pe->p, &c, &de);
        if (rc < 0) {
            if (rc != CITRUS_EPOOL) {
                pthread_mutex_lock(&r->mu);
                pe->down_until_ns = clock_mono_ns(r->clock) + 1000000000;
                pthread_mutex_unlock(&r->mu);
            }
            continue;
        }
        if (!fresh) {
            bool replica = false;
            int64_t lag = 0;
            rc = drv_replica_lag_ms(c, &replica, &lag, &de);
            if (rc == 0 && !replica)
                lag = INT64_MAX / 2;
            pthread_mutex_lock(&r->mu);
            pe->lag_known = rc == 0;
            pe->lag_ms = lag;
            pe->lag_at_ns = clock_mono_ns(r->clock);
            pthread_mutex_unlock(&r->mu);
            if (rc < 0 || lag > max_lag) {
                pool_put(pe->p, c, rc < 0 && !drv_alive(c));
                continue;
            }
        }
        *out = pe;
        return c;
    }
    return NULL;
}

/* Bounds what runs on c for call: how long each statement may run (the
 * call's timeout, else the router's; 0: no limit), and the check that its
 * caller is still there. disarm undoes it before c runs anything else (a
 * rollback) or goes back to the pool. */
static void arm(const router *r, drv_conn *c, const router_call *call)
{
    drv_set_statement_timeout(c, call && call->timeout_ms > 0 ? call->timeout_ms
                                                              : r->query_timeout_ms);
    drv_set_cancel_check(c, call ? call->gone : NULL, call ? call->gone_ctx : NULL);
}

static void disarm(drv_conn *c)
{
    drv_set_statement_timeout(c, 0);
    drv_set_cancel_check(c, NULL, NULL);
}

/* Whether call's client went away already (while it waited for a
 * connection): then nothing runs for it. */
static int gone_before(const router_call *call, errdetail *de)
{
    if (!call || !call->gone || !call->gone(call->gone_ctx))
        return 0;
    return errdetail_set(de, CITRUS_ECLOSED,
                         "the client went away while its statement waited for a connection");
}

/* Runs one statement on c under the tenant's scope (docs/security.md,
 * "PostgreSQL least privilege and row isolation"): a keyed statement with
 * citrus.tenant = key (and citrus.scatter cleared), a scatter one (key
 * NULL) with citrus.tenant cleared and citrus.scatter = on, in a
 * transaction of its own on a database that has settings (PostgreSQL;
 * SQLite runs it alone, as before). A named statement the session lost
 * inside that transaction (SQLSTATE 26000, or 0A000 for a plan whose
 * result type changed) cannot be run again there: the transaction is
 * rolled back and run once more, now preparing it anew. */
static int exec_scoped(router *r, drv_conn *c, const char *key, const char *sql,
                       const value *params, size_t np, router_answer *out, errdetail *de)
{
    const drv_setting set[2] = {{"citrus.tenant", key ? key : ""},
                                {"citrus.scatter", key ? "" : "on"}};
    int rc = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        rc = drv_begin_scoped(c, set, 2, false, de);
        bool scoped = rc == 0 && drv_in_transaction(c);
        if (rc == 0)
            rc = drv_exec(c, sql, params, np, r->max_rows, &out->rs, &out->truncated, &out->changes,
                          de);
        if (rc == 0 && scoped)
            rc = drv_commit(c, de);
        else if (scoped)
            drv_rollback(c, NULL);
        bool stale = strcmp(de->sqlstate, "26000") == 0 || strcmp(de->sqlstate, "0A000") == 0;
        if (!(rc < 0 && scoped && stale && drv_alive(c)))
            break;
    }
    return rc;
}

/* Runs one statement on shard s: on a replica within the allowed lag for
 * an eventual read that has one, else on the primary. A replica whose
 * connection breaks under the read is left for the primary. */
static int run_on(router *r, const shard *s, const char *key, const router_call *rd,
                  const char *sql, const value *params, size_t np, router_answer *out, errdetail *e)
{
    pool_entry *pe = NULL;
    drv_conn *c = NULL;
    errdetail de = {0};
    int64_t t0 = clock_mono_ns(r->clock);
    bool want_replica = rd && rd->eventual && s->nreplicas && router_is_read(sql);
    int64_t max_lag = rd && rd->max_lag_ms >= 0 ? rd->max_lag_ms : r->default_max_lag_ms;
    int rc = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        bool replica = false;
        if (want_replica && attempt == 0 && (c = replica_checkout(r, s, max_lag, &pe)))
            replica = true;
        if (!c) {
            if (!(pe = pool_for(r, s->dsn)))
                return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
            rc = pool_get(pe->p, &c, &de);
            if (rc < 0) {
                rc = drv_to_router(rc, &de, s->id, e);
                record(r, s, pe->p, ROLE_PRIMARY, rc, t0);
                return rc;
            }
        }
        rs_init(&out->rs);
        arm(r, c, rd);
        rc = gone_before(rd, &de);
        if (rc == 0)
            rc = exec_scoped(r, c, key, sql, params, np, out, &de);
        disarm(c);
        bool broke = rc == CITRUS_EUNAVAILABLE && !drv_alive(c);
        pool_put(pe->p, c, false);
        c = NULL;
        if (rc < 0)
            rs_free(&out->rs);
        if (rc < 0 && replica && broke) {
            record(r, s, pe->p, ROLE_REPLICA, CITRUS_EUNAVAILABLE, t0);
            pthread_mutex_lock(&r->mu);
            pe->down_until_ns = clock_mono_ns(r->clock) + 1000000000;
            pthread_mutex_unlock(&r->mu);
            continue;
        }
        if (rc < 0)
            rc = drv_to_router(rc, &de, s->id, e);
        record(r, s, pe->p, replica ? ROLE_REPLICA : ROLE_PRIMARY, rc, t0);
        out->replica = replica;
        break;
    }
    if (rc < 0)
        return rc;
    snprintf(out->shard_id, sizeof(out->shard_id), "%s", s->id);
    return 0;
}

int router_query_key(router *r, const char *key, const router_call *rd, const char *sql,
                     const value *params, size_t nparams, router_answer *out, errdetail *e)
{
    memset(out, 0, sizeof(*out));
    shard s;
    int rc = resolve(r, key, router_is_read(sql), &s, &out->ring_version, &out->catalog_cached, e);
    if (rc < 0)
        return rc;
    rc = run_on(r, &s, key, rd, sql, params, nparams, out, e);
    shard_clear(&s);
    return rc;
}

int router_query_keys(router *r, const char *const *keys, size_t nkeys, const router_call *rd,
                      const char *sql, const value *params, size_t nparams, router_answer *out,
                      errdetail *e)
{
    memset(out, 0, sizeof(*out));
    const ring *rg;
    int64_t version;
    int rc = registry_ring(r->reg, &rg, &version, &out->catalog_cached);
    if (rc < 0)
        return errdetail_set(e, rc, "the catalog could not be read");
    char first[SHARD_ID_MAX + 1] = "";
    json_t *where = json_object();
    bool split = false;
    for (size_t i = 0; rc == 0 && i < nkeys; i++) {
        route_answer ra;
        rc = tenants_route(r->reg, rg, version, keys[i], &ra);
        if (rc < 0)
            break;
        if ((rc = strict_check(r, keys[i], &ra, e)) < 0) {
            registry_ring_release(r->reg, rg);
            json_decref(where);
            return rc;
        }
        json_object_set_new(where, keys[i], json_string(ra.shard_id));
        if (!first[0])
            snprintf(first, sizeof(first), "%s", ra.shard_id);
        split |= strcmp(first, ra.shard_id) != 0;
    }
    registry_ring_release(r->reg, rg);
    if (rc < 0) {
        json_decref(where);
        return errdetail_set(e, rc,
                             rc == CITRUS_EUNAVAILABLE ? "no shard owns any token yet"
                                                       : "the catalog could not be read");
    }
    if (split) { /* a cross-shard statement is the application's job (docs/requirements.md) */
        char *text = json_dumps(where, JSON_COMPACT | JSON_SORT_KEYS);
        errdetail_set(e, CITRUS_EUNPROCESSABLE,
                      "the keys are on different shards: %.600s; run one statement per shard",
                      text ? text : "");
        free(text);
        json_decref(where);
        return CITRUS_EUNPROCESSABLE;
    }
    json_decref(where);
    return router_query_key(r, keys[0], rd, sql, params, nparams, out, e);
}

int router_tx(router *r, const char *key, const router_call *call, const router_stmt *stmts,
              size_t n, router_answer *out, long *failed, errdetail *e)
{
    *failed = -1;
    memset(out, 0, n * sizeof(*out));
    bool read = true;
    for (size_t i = 0; i < n; i++)
        read = read && router_is_read(stmts[i].sql);
    shard s;
    int64_t version;
    bool cached;
    int rc = resolve(r, key, read, &s, &version, &cached, e);
    if (rc < 0)
        return rc;
    pool_entry *pe = pool_for(r, s.dsn);
    pool *p = pe ? pe->p : NULL;
    drv_conn *c = NULL;
    errdetail de = {0};
    rc = p ? pool_get(p, &c, &de) : CITRUS_ENOMEM;
    if (rc < 0) {
        rc = p ? drv_to_router(rc, &de, s.id, e) : errdetail_set(e, rc, "out of memory");
        shard_clear(&s);
        return rc;
    }
    arm(r, c, call);
    rc = gone_before(call, &de);
    const drv_setting set[2] = {{"citrus.tenant", key}, {"citrus.scatter", ""}};
    if (rc == 0)
        rc = drv_begin_scoped(c, set, 2, true, &de); /* the tenant's scope, as exec_scoped */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        out[i].ring_version = version;
        out[i].catalog_cached = cached;
        snprintf(out[i].shard_id, sizeof(out[i].shard_id), "%s", s.id);
        rs_init(&out[i].rs);
        rc = drv_exec(c, stmts[i].sql, stmts[i].params, stmts[i].nparams, r->max_rows, &out[i].rs,
                      &out[i].truncated, &out[i].changes, &de);
        if (rc < 0)
            *failed = (long)i;
    }
    if (rc == 0)
        rc = drv_commit(c, &de);
    disarm(c); /* the rollback is not cut short */
    if (rc < 0) {
        drv_rollback(c, NULL);
        drv_to_router(rc, &de, s.id, e);
        for (size_t i = 0; i < n; i++)
            router_answer_clear(&out[i]);
    }
    pool_put(p, c, rc < 0 && !drv_alive(c));
    shard_clear(&s);
    return rc;
}

/* ---- scatter ---- */

typedef struct scatter_job {
    router *r;
    const shard *s;
    const router_call *rd;
    const char *sql;
    const value *params;
    size_t np;
    router_answer ans;
    errdetail err;
    int rc;
} scatter_job;

/* Runs job i of jobs (a fanout_fn). */
static void scatter_one(void *ctx, size_t i)
{
    scatter_job *j = &((scatter_job *)ctx)[i];
    j->rc = run_on(j->r, j->s, NULL, j->rd, j->sql, j->params, j->np, &j->ans, &j->err);
}

int router_scatter(router *r, const router_call *rd, const char *sql, const value *params,
                   size_t nparams, const merge_spec *spec, bool partial, router_answer *out,
                   errdetail *e)
{
    memset(out, 0, sizeof(*out));
    bool read = router_is_read(sql);
    shard *v;
    size_t n;
    int rc = registry_shard_list_routing(r->reg, &v, &n);
    if (rc < 0)
        return errdetail_set(e, rc, "the catalog could not be read");
    const ring *rg;
    if (registry_ring(r->reg, &rg, &out->ring_version, &out->catalog_cached) == 0)
        registry_ring_release(r->reg, rg);
    scatter_job *jobs = calloc(n ? n : 1, sizeof(scatter_job));
    size_t njobs = 0;
    for (size_t i = 0; jobs && i < n; i++) /* every active shard (read_only too, for reads) */
        if (v[i].dsn && (v[i].state == SHARD_ACTIVE || (read && v[i].state == SHARD_READ_ONLY)))
            jobs[njobs++] = (scatter_job){
                .r = r, .s = &v[i], .rd = rd, .sql = sql, .params = params, .np = nparams};
    if (!jobs)
        rc = errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    else if (njobs == 0)
        rc = errdetail_set(e, CITRUS_EUNAVAILABLE, "no active shard");
    if (rc == 0)
        fanout_run(njobs, SCATTER_THREADS, scatter_one, jobs);
    result_set *parts = rc == 0 ? calloc(njobs ? njobs : 1, sizeof(*parts)) : NULL;
    size_t nparts = 0;
    out->shards = json_array();
    out->missing = json_array();
    for (size_t i = 0; rc == 0 && i < njobs; i++) {
        scatter_job *j = &jobs[i];
        if (j->rc == 0) {
            parts[nparts++] = j->ans.rs;
            rs_init(&j->ans.rs);
            out->truncated |= j->ans.truncated;
            out->changes += j->ans.changes;
            json_array_append_new(out->shards, json_string(j->s->id));
        } else if (partial) {
            json_array_append_new(out->missing, json_pack("{s:s,s:s}", "shard_id", j->s->id,
                                                          "error", j->err.message));
        } else {
            *e = j->err;
            snprintf(e->message, sizeof(e->message), "shard '%s' failed: %.600s", j->s->id,
                     j->err.message);
            rc = e->code;
        }
    }
    if (rc == 0) {
        rs_init(&out->rs);
        rc = merge_results(parts, nparts, spec, &out->rs, e);
        if (rc < 0)
            errdetail_prefix(e, "cannot merge the shards' results");
    } else {
        for (size_t i = 0; i < nparts; i++)
            rs_free(&parts[i]);
    }
    for (size_t i = 0; jobs && i < njobs; i++)
        router_answer_clear(&jobs[i].ans);
    free(parts);
    free(jobs);
    registry_shards_free(v, n);
    if (rc < 0)
        router_answer_clear(out);
    return rc;
}
