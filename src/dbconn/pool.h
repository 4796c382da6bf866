/* dbconn/pool.h — a connection pool per shard database (one per DSN).
 *
 * At most max_size connections; a checkout takes an idle one (most recently
 * used first), health-checked when it was idle longer than check_idle_ms
 * (drv_ping; a dead one is closed and replaced, and the other idle ones
 * are then checked on their next checkout whatever their idleness), or
 * opens a new one below max_size, or waits up to wait_ms for a return, then
 * fails with CITRUS_EPOOL (pool_exhausted, 503). Connections idle longer
 * than idle_timeout_ms or older than max_lifetime_ms are closed (on return
 * or checkout; no thread needed). A connection returned broken (drv_alive
 * false), still in a transaction, or with `discard`, is closed. No lock is
 * held while connecting, pinging or closing. Thread-safe.
 *
 * Every decision by time (idleness, age, the wait's deadline) reads the
 * pool's clock, so a test clock decides them; the wait itself is on a
 * condition variable (CLOCK_MONOTONIC), woken by a return, a freed slot or
 * pool_free, and re-reads the clock each time it wakes. */
#ifndef CITRUS_DBCONN_POOL_H
#define CITRUS_DBCONN_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/errdetail.h"
#include "dbconn/driver.h"
#include "sys/clock.h"

typedef struct pool pool;

typedef struct pool_options {
    const char *dsn;            /* copied */
    int max_size;               /* 0 = 8 */
    int64_t wait_ms;            /* 0 = 2000 */
    int64_t idle_timeout_ms;    /* 0 = 60000 */
    int64_t max_lifetime_ms;    /* 0 = 1800000 */
    int64_t check_idle_ms;      /* 0 = 1000; health check after this much idleness */
    int64_t connect_timeout_ms; /* 0 = 5000 */
    size_t statement_cache;     /* per connection, see drv_set_statement_cache; 0 = none */
    drv_sandbox sandbox;        /* SQLite: what its connections may run (drv_options) */
    const sysclock *clock;      /* kept (must outlive the pool and its connections); NULL = real */
} pool_options;

typedef struct pool_stats {
    int size, idle, in_use, waiting;
    uint64_t opened, closed, exhausted, checkouts;
} pool_stats;

/* NULL when out of memory or without a DSN (a bad DSN shows at pool_get).
 * Options <= 0 take the defaults. */
pool *pool_new(const pool_options *o);
/* Closes idle connections; those checked out are closed when returned
 * (the pool is freed with the last one). Threads waiting in pool_get get
 * CITRUS_ECLOSED; no pool_get may start after pool_free. */
void pool_free(pool *p);

/* 0 with *out, or the error of drv_open (CITRUS_EINVAL, CITRUS_EUNAVAILABLE,
 * ...), CITRUS_EPOOL after wait_ms, CITRUS_ECLOSED when the pool is freed
 * meanwhile; e (may be NULL) filled. */
int pool_get(pool *p, drv_conn **out, errdetail *e);
/* pool_get within a deadline: at_ms on the pool's clock (clock_mono_ms; 0:
 * none, as pool_get). The wait for a free connection, the connect and the
 * health check of an idle one all end by then (the connect gets what is
 * left, if less than connect_timeout_ms), and the connection comes out
 * with drv_set_deadline(at_ms), so what the caller runs on it ends by
 * then too; pool_put takes the deadline off again. Past it: CITRUS_EPOOL
 * while waiting for a connection, else the connect's or the check's error. */
int pool_get_until(pool *p, int64_t at_ms, drv_conn **out, errdetail *e);
/* Gives back a connection from pool_get (NULL is ignored); its
 * drv_set_deadline, if any, is cleared. */
void pool_put(pool *p, drv_conn *c, bool discard);
/* size: connections open (or being opened or closed); idle; in_use:
 * checked out; waiting: threads in pool_get waiting for one. Counters
 * since pool_new: connections opened and closed, checkouts that failed
 * with CITRUS_EPOOL, successful checkouts. */
void pool_get_stats(pool *p, pool_stats *out);

#endif
