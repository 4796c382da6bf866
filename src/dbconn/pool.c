/* dbconn/pool.c — a connection pool per shard database (see pool.h).
 *
 * One mutex and one condition variable (on CLOCK_MONOTONIC, so the wait
 * ignores wall-clock jumps). The wait's deadline is on the pool's clock: a
 * waiter sleeps until then as that clock reads now, and decides again by
 * it on every wake-up. `size` counts every connection the
 * pool answers for: idle, checked out, and those being opened, pinged or
 * closed outside the lock — a slot is reserved (size++) before connecting
 * and released (size--) only after the close, so max_size bounds the
 * connections that really exist at any instant. Connecting, pinging and
 * closing always happen with the lock released.
 *
 * Idle connections are a stack (LIFO): the most recently used is reused
 * first, so under light load the others age out by idle_timeout_ms.
 * Expired idle connections are swept on every checkout and return, at most
 * SWEEP_MAX at a time (no allocation; the rest go on the next call).
 *
 * A waiter is woken (signal) when a connection comes back or a slot frees
 * up; it may lose the race to a newcomer and waits again until its own
 * deadline: no FIFO fairness, which keeps the code simple.
 *
 * pool_free sets `freed`, closes the idle connections and wakes the
 * waiters (CITRUS_ECLOSED); the struct itself goes with whichever thread
 * leaves it with nothing open and nobody waiting (unlock_leave). */
#include "dbconn/pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"

#define DEFAULT_MAX_SIZE 8
#define DEFAULT_WAIT_MS 2000
#define DEFAULT_IDLE_TIMEOUT_MS 60000
#define DEFAULT_MAX_LIFETIME_MS 1800000
#define DEFAULT_CHECK_IDLE_MS 1000
#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define SWEEP_MAX 16

typedef struct pconn {
    drv_conn *c;
    int64_t created_ms, used_ms;
    bool must_check; /* a sibling failed its health check */
} pconn;

struct pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *dsn;
    int max_size;
    int64_t wait_ms, idle_timeout_ms, max_lifetime_ms, check_idle_ms, connect_timeout_ms;
    size_t statement_cache;
    drv_sandbox sandbox;
    const sysclock *clock;
    pconn *idle; /* stack: idle[nidle - 1] is the most recently used */
    pconn *out;  /* checked out, unordered */
    int nidle, nout;
    int size, waiting;
    bool freed;
    uint64_t opened, closed, exhausted, checkouts;
};

/* A new connection with the pool's settings, connected by at (0: none;
 * the connection then carries it, see pool_get_until). */
static int open_conn(pool *p, int64_t at, drv_conn **c, errdetail *e)
{
    int64_t timeout = p->connect_timeout_ms;
    if (at) {
        int64_t left = at - clock_mono_ms(p->clock);
        if (left <= 0)
            return errdetail_set(e, CITRUS_EUNAVAILABLE, "no time left to connect");
        if (left < timeout)
            timeout = left;
    }
    drv_options o = {.timeout_ms = timeout, .clock = p->clock, .sandbox = p->sandbox};
    int rc = drv_open(p->dsn, &o, c, e);
    if (rc == 0) {
        drv_set_statement_cache(*c, p->statement_cache);
        drv_set_deadline(*c, at);
    }
    return rc;
}

pool *pool_new(const pool_options *o)
{
    if (!o || !o->dsn)
        return NULL;
    pool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->max_size = o->max_size > 0 ? o->max_size : DEFAULT_MAX_SIZE;
    p->wait_ms = o->wait_ms > 0 ? o->wait_ms : DEFAULT_WAIT_MS;
    p->idle_timeout_ms = o->idle_timeout_ms > 0 ? o->idle_timeout_ms : DEFAULT_IDLE_TIMEOUT_MS;
    p->max_lifetime_ms = o->max_lifetime_ms > 0 ? o->max_lifetime_ms : DEFAULT_MAX_LIFETIME_MS;
    p->check_idle_ms = o->check_idle_ms > 0 ? o->check_idle_ms : DEFAULT_CHECK_IDLE_MS;
    p->connect_timeout_ms =
        o->connect_timeout_ms > 0 ? o->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
    p->statement_cache = o->statement_cache;
    p->sandbox = o->sandbox;
    p->clock = o->clock ? o->clock : clock_real();
    p->dsn = strdup(o->dsn);
    p->idle = calloc((size_t)p->max_size, sizeof(*p->idle));
    p->out = calloc((size_t)p->max_size, sizeof(*p->out));
    bool mu_ok = pthread_mutex_init(&p->mu, NULL) == 0;
    bool cv_ok = clock_cond_init(&p->cv) == 0;
    if (!p->dsn || !p->idle || !p->out || !mu_ok || !cv_ok) {
        if (mu_ok)
            pthread_mutex_destroy(&p->mu);
        if (cv_ok)
            pthread_cond_destroy(&p->cv);
        free(p->dsn);
        free(p->idle);
        free(p->out);
        free(p);
        return NULL;
    }
    return p;
}

static void destroy(pool *p)
{
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->dsn);
    free(p->idle);
    free(p->out);
    free(p);
}

/* Unlocks; frees p when it was freed and nothing is left in it. Every
 * path that gives something back (a slot, a wait) ends here, so the
 * thread that makes the pool empty is the one that frees it. */
static void unlock_leave(pool *p)
{
    bool last = p->freed && p->size == 0 && p->waiting == 0;
    pthread_mutex_unlock(&p->mu);
    if (last)
        destroy(p);
}

/* Moves up to SWEEP_MAX expired idle connections into doomed (they stay
 * counted in size until release_closed); the others keep their order. */
static int sweep(pool *p, int64_t now, drv_conn **doomed)
{
    int n = 0, kept = 0;
    for (int i = 0; i < p->nidle; i++) {
        pconn *pc = &p->idle[i];
        bool expired =
            now - pc->used_ms >= p->idle_timeout_ms || now - pc->created_ms >= p->max_lifetime_ms;
        if (expired && n < SWEEP_MAX)
            doomed[n++] = pc->c;
        else
            p->idle[kept++] = *pc;
    }
    p->nidle = kept;
    return n;
}

/* Closes n connections with the lock released, then gives their slots
 * back (lock held again on return). */
static void close_unlocked(pool *p, drv_conn **conns, int n)
{
    if (n == 0)
        return;
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < n; i++)
        drv_close(conns[i]);
    pthread_mutex_lock(&p->mu);
    p->size -= n;
    p->closed += (uint64_t)n;
    if (n == 1)
        pthread_cond_signal(&p->cv);
    else
        pthread_cond_broadcast(&p->cv);
}

static int find_out(pool *p, drv_conn *c)
{
    for (int i = 0; i < p->nout; i++)
        if (p->out[i].c == c)
            return i;
    return -1;
}

int pool_get(pool *p, drv_conn **out, errdetail *e)
{
    return pool_get_until(p, 0, out, e);
}

int pool_get_until(pool *p, int64_t at, drv_conn **out, errdetail *e)
{
    errdetail scratch;
    if (!e)
        e = &scratch;
    errdetail_clear(e);
    *out = NULL;
    drv_conn *doomed[SWEEP_MAX];
    int64_t deadline = clock_mono_ms(p->clock) + p->wait_ms;
    if (at && at < deadline)
        deadline = at;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (p->freed) {
            errdetail_set(e, CITRUS_ECLOSED, "the connection pool is closed");
            unlock_leave(p);
            return CITRUS_ECLOSED;
        }
        int64_t now = clock_mono_ms(p->clock);
        int n = sweep(p, now, doomed);
        if (n) {
            close_unlocked(p, doomed, n);
            continue; /* things may have changed meanwhile */
        }
        if (p->nidle > 0) {
            pconn pc = p->idle[--p->nidle];
            if (!pc.must_check && now - pc.used_ms < p->check_idle_ms) {
                p->out[p->nout++] = pc;
                p->checkouts++;
                *out = pc.c;
                drv_set_deadline(pc.c, at);
                unlock_leave(p);
                return 0;
            }
            /* Health check, with the lock released; the slot stays counted
             * in size (and out of the idle and checked-out lists). */
            pthread_mutex_unlock(&p->mu);
            drv_conn *c = pc.c;
            bool replaced = false;
            drv_set_deadline(c, at);
            int rc = drv_ping(c, e);
            if (rc) {
                replaced = true;
                drv_close(c);
                c = NULL;
                rc = open_conn(p, at, &c, e);
            }
            now = clock_mono_ms(p->clock);
            pthread_mutex_lock(&p->mu);
            if (replaced) {
                p->closed++;
                /* The server may have gone away under all of them: check
                 * each idle one on its next checkout, however briefly it
                 * was idle. */
                for (int i = 0; i < p->nidle; i++)
                    p->idle[i].must_check = true;
            }
            if (rc) {
                p->size--;
                pthread_cond_signal(&p->cv);
            } else {
                if (replaced) {
                    p->opened++;
                    pc = (pconn){.c = c, .created_ms = now};
                    errdetail_clear(e); /* the ping's error */
                }
                pc.must_check = false;
                pc.used_ms = now;
                p->out[p->nout++] = pc;
                p->checkouts++;
                *out = c;
            }
            unlock_leave(p);
            return rc;
        }
        if (p->size < p->max_size) {
            p->size++; /* the slot is ours while we connect */
            pthread_mutex_unlock(&p->mu);
            drv_conn *c = NULL;
            int rc = open_conn(p, at, &c, e);
            now = clock_mono_ms(p->clock);
            pthread_mutex_lock(&p->mu);
            if (rc) {
                p->size--;
                pthread_cond_signal(&p->cv); /* someone else may have better luck */
            } else {
                p->opened++;
                p->checkouts++;
                p->out[p->nout++] = (pconn){.c = c, .created_ms = now, .used_ms = now};
                *out = c;
            }
            unlock_leave(p);
            return rc;
        }
        if (now >= deadline) {
            p->exhausted++;
            errdetail_set(e, CITRUS_EPOOL,
                          "pool_exhausted: all %d connections stayed in use for %lld ms",
                          p->max_size, (long long)p->wait_ms);
            unlock_leave(p);
            return CITRUS_EPOOL;
        }
        struct timespec ts = clock_cond_deadline(deadline - now);
        p->waiting++;
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
        p->waiting--;
    }
}

void pool_put(pool *p, drv_conn *c, bool discard)
{
    if (!c)
        return;
    bool bad = discard || !drv_alive(c) || drv_in_transaction(c);
    drv_set_deadline(c, 0);
    drv_conn *doomed[SWEEP_MAX];
    pthread_mutex_lock(&p->mu);
    int i = find_out(p, c);
    if (i < 0) { /* not ours: nothing to account for */
        pthread_mutex_unlock(&p->mu);
        drv_close(c);
        return;
    }
    pconn pc = p->out[i];
    p->out[i] = p->out[--p->nout];
    int64_t now = clock_mono_ms(p->clock);
    if (p->freed || now - pc.created_ms >= p->max_lifetime_ms)
        bad = true;
    if (bad) {
        close_unlocked(p, &c, 1);
    } else {
        pc.used_ms = now;
        p->idle[p->nidle++] = pc;
        pthread_cond_signal(&p->cv);
    }
    if (!p->freed)
        close_unlocked(p, doomed, sweep(p, now, doomed));
    unlock_leave(p);
}

void pool_free(pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    if (p->freed) {
        pthread_mutex_unlock(&p->mu);
        return;
    }
    p->freed = true;
    pthread_cond_broadcast(&p->cv); /* waiters: CITRUS_ECLOSED */
    while (p->nidle > 0) {
        drv_conn *c = p->idle[--p->nidle].c;
        close_unlocked(p, &c, 1);
    }
    unlock_leave(p);
}

void pool_get_stats(pool *p, pool_stats *out)
{
    pthread_mutex_lock(&p->mu);
    *out = (pool_stats){
        .size = p->size,
        .idle = p->nidle,
        .in_use = p->nout,
        .waiting = p->waiting,
        .opened = p->opened,
        .closed = p->closed,
        .exhausted = p->exhausted,
        .checkouts = p->checkouts,
    };
    pthread_mutex_unlock(&p->mu);
}
