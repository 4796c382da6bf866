/* tests/unit/test_pool.c — per-shard connection pools (dbconn/pool.c).
 *
 * Most behaviour is checked on SQLite files (cheap connections). What
 * needs a server is checked on a throwaway PostgreSQL from support_pg:
 * the server-side connection count under concurrency, a connection broken
 * by the server, and the health check after a server restart (pg_restart:
 * the same port and data dir).
 *
 * Time: every decision the pool makes by time (idle expiry, lifetime, the
 * health check's idleness, the wait's deadline) is checked on a test clock
 * the test moves (clock_test_new): no sleeps, no assertions on how long
 * something took. A thread that waits in pool_get is awaited by watching
 * the pool's `waiting` count. */
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "support_pg.h"

#include "citrus/errors.h"
#include "dbconn/driver.h"
#include "dbconn/driver_ops.h" /* c->handle, the sqlite3 * */
#include "dbconn/pool.h"
#include "sys/clock.h"

#define T0 1000000 /* where the test clocks start */

static char tmpdir[PATH_MAX - 64];

/* ---- helpers ------------------------------------------------------------------ */

/* A fresh SQLite database file; its DSN into dsn. */
static void sqlite_db(const char *name, char *dsn, size_t len)
{
    snprintf(dsn, len, "sqlite://%s/%s", tmpdir, name);
    drv_conn *c = NULL;
    errdetail e;
    if (drv_open(dsn, &(drv_options){.create = true}, &c, &e) != 0)
        fail_msg("creating %s: %s", dsn, e.message);
    drv_close(c);
}

static pool *must_pool(const pool_options *o)
{
    pool *p = pool_new(o);
    assert_non_null(p);
    return p;
}

static drv_conn *must_get(pool *p)
{
    drv_conn *c = NULL;
    errdetail e;
    int rc = pool_get(p, &c, &e);
    if (rc)
        fail_msg("pool_get: %d %s", rc, e.message);
    assert_non_null(c);
    return c;
}

static pool_stats stats(pool *p)
{
    pool_stats s;
    pool_get_stats(p, &s);
    return s;
}

static int64_t query_int(drv_conn *c, const char *sql)
{
    result_set rs;
    rs_init(&rs);
    errdetail e;
    int rc = drv_exec(c, sql, NULL, 0, 0, &rs, NULL, NULL, &e);
    if (rc)
        fail_msg("\"%s\": %d %s", sql, rc, e.message);
    assert_int_equal(rs.nrows, 1);
    assert_true(val_ok(rs_cell(&rs, 0, 0), VAL_INT));
    int64_t v = rs_cell(&rs, 0, 0)->u.i;
    rs_free(&rs);
    return v;
}

/* ---- a thread that checks out one connection ---------------------------------------- */

typedef struct getter {
    pool *p;
    const sysclock *clock;
    pthread_t th;
    int rc;
    drv_conn *c;
    errdetail e;
    int64_t got_ms; /* clock's reading when pool_get returned */
    int64_t at;     /* pool_get_until's deadline (0: pool_get) */
    atomic_bool done;
} getter;

static void *getter_main(void *arg)
{
    getter *g = arg;
    g->rc = pool_get_until(g->p, g->at, &g->c, &g->e);
    g->got_ms = clock_mono_ms(g->clock);
    atomic_store(&g->done, true);
    return NULL;
}

/* Starts g's pool_get (pool_get_until at, when not 0) and returns once it
 * waits in it (or returned). */
static void getter_start_until(getter *g, pool *p, const sysclock *clock, int64_t at)
{
    memset(g, 0, sizeof(*g));
    g->p = p;
    g->clock = clock;
    g->at = at;
    assert_int_equal(pthread_create(&g->th, NULL, getter_main, g), 0);
    while (stats(p).waiting == 0 && !atomic_load(&g->done))
        sched_yield();
}

static void getter_start(getter *g, pool *p, const sysclock *clock)
{
    getter_start_until(g, p, clock, 0);
}

/* ---- SQLite ---------------------------------------------------------------------------- */

typedef struct hammer {
    pool *p;
    const char *sql; /* run on each checkout */
    int rounds;
    atomic_int *out, *max_out, *max_size, *errors;
} hammer;

static void *hammer_main(void *arg)
{
    hammer *h = arg;
    for (int i = 0; i < h->rounds; i++) {
        drv_conn *c = NULL;
        if (pool_get(h->p, &c, NULL) != 0) {
            atomic_fetch_add(h->errors, 1);
            continue;
        }
        int now = atomic_fetch_add(h->out, 1) + 1;
        for (int m = atomic_load(h->max_out); now > m;)
            if (atomic_compare_exchange_weak(h->max_out, &m, now))
                break;
        pool_stats s;
        pool_get_stats(h->p, &s);
        for (int m = atomic_load(h->max_size); s.size > m;)
            if (atomic_compare_exchange_weak(h->max_size, &m, s.size))
                break;
        if (drv_exec(c, h->sql, NULL, 0, 0, NULL, NULL, NULL, NULL) != 0)
            atomic_fetch_add(h->errors, 1);
        atomic_fetch_sub(h->out, 1);
        pool_put(h->p, c, false);
    }
    return NULL;
}

/* Runs threads x rounds checkouts on p (no cmocka assertion: it may run
 * in a thread of its own); the most held at once, the largest pool size
 * seen and the number of failures. */
static int hammer_pool(pool *p, const char *sql, int threads, int rounds, int *max_size,
                       int *errors)
{
    atomic_int out = 0, max_out = 0, msize = 0, errs = 0;
    hammer h = {p, sql, rounds, &out, &max_out, &msize, &errs};
    pthread_t th[16];
    int started = 0;
    for (int i = 0; i < threads && i < 16; i++)
        if (pthread_create(&th[i], NULL, hammer_main, &h) == 0)
            started++;
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    *max_size = atomic_load(&msize);
    *errors = atomic_load(&errs) + (threads - started) * rounds;
    return atomic_load(&max_out);
}

static void test_max_size_under_concurrency(void **state)
{
    char dsn[PATH_MAX];
    sqlite_db("conc.db", dsn, sizeof(dsn));
    pool *p = must_pool(&(pool_options){.dsn = dsn, .max_size = 3, .wait_ms = 120000});
    int64_t t0 = mono_ms();
    int max_size = 0, errors = 0, max_out = hammer_pool(p, "SELECT 1", 8, 200, &max_size, &errors);
    assert_int_equal(errors, 0);
    pool_stats s = stats(p);
    print_message("8 x 200 checkouts, max_size 3: %lld ms, at most %d out, size <= %d, "
                  "opened %llu\n",
                  (long long)(mono_ms() - t0), max_out, max_size, (unsigned long long)s.opened);
    assert_true(max_out >= 1 && max_out <= 3);
    assert_true(max_size <= 3);
    assert_true(s.opened >= 1 && s.opened <= 3); /* nothing expired or failed */
    assert_int_equal(s.closed, 0);
    assert_int_equal(s.checkouts, 1600);
    assert_int_equal(s.exhausted, 0);
    assert_int_equal(s.in_use, 0);
    assert_int_equal(s.waiting, 0);
    assert_int_equal(s.size, (int)s.opened);
    assert_int_equal(s.idle, s.size);
    pool_free(p);
}

/* All connections out: a checkout waits wait_ms on the pool's clock, then
 * fails with pool_exhausted; it does not give up before. */
static void test_exhausted(void **state)
{
    char dsn[PATH_MAX];
    sqlite_db("exh.db", dsn, sizeof(dsn));
    sysclock *clock = clock_test_new(T0, 0);
    pool *p = must_pool(&(pool_options){.dsn = dsn, .max_size = 2, .wait_ms = 50, .clock = clock});
    drv_conn *a = must_get(p), *b = must_get(p);
    pool_stats s = stats(p);
    assert_int_equal(s.size, 2);
    assert_int_equal(s.in_use, 2);
    getter g;
    getter_start(&g, p, clock);
    assert_false(atomic_load(&g.done)); /* waiting: its deadline is T0 + 50 */
    clock_test_advance(clock, 49);
    clock_test_advance(clock, 1);
    pthread_join(g.th, NULL);
    print_message("exhausted at clock %lld: %s\n", (long long)(g.got_ms - T0), g.e.message);
    assert_int_equal(g.rc, CITRUS_EPOOL);
    assert_int_equal(g.e.code, CITRUS_EPOOL);
    assert_null(g.c);
    assert_true(g.got_ms >= T0 + 50); /* not before its time */
    assert_non_null(strstr(g.e.message, "pool_exhausted"));
    s = stats(p);
    assert_int_equal(s.exhausted, 1);
    assert_int_equal(s.waiting, 0);
    assert_int_equal(s.size, 2);
    /* a return makes the next checkout immediate */
    pool_put(p, a, false);
    drv_conn *c = must_get(p);
    assert_ptr_equal(c, a);
    pool_put(p, b, false);
    pool_put(p, c, false);
    s = stats(p);
    assert_int_equal(s.opened, 2);
    assert_int_equal(s.idle, 2);
    pool_free(p);
    clock_test_free(clock);
}

/* pool_get_until: the wait for a connection ends at the caller's deadline
 * when that comes before wait_ms; the connection it gives carries the
 * deadline (a statement past it is interrupted), and pool_put takes it
 * off again. */
static void test_get_until_deadline(void **state)
{
    char dsn[PATH_MAX];
    sqlite_db("until.db", dsn, sizeof(dsn));
    sysclock *clock = clock_test_new(T0, 0);
    pool *p =
        must_pool(&(pool_options){.dsn = dsn, .max_size = 1, .wait_ms = 5000, .clock = clock});
    drv_conn *a = NULL;
    errdetail e;
    assert_int_equal(pool_get_until(p, T0 + 100, &a, &e), 0);
    static const char slow[] = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n "
                               "WHERE x < 200000) SELECT count(*) FROM n";
    assert_int_equal(query_int(a, slow), 200000); /* before the deadline: runs */
    getter g;
    getter_start_until(&g, p, clock, T0 + 30);
    assert_false(atomic_load(&g.done));
    clock_test_advance(clock, 30);
    pthread_join(g.th, NULL);
    assert_int_equal(g.rc, CITRUS_EPOOL);
    assert_true(g.got_ms >= T0 + 30 && g.got_ms < T0 + 5000);
    clock_test_advance(clock, 70); /* a's deadline, T0 + 100, passed */
    assert_int_equal(drv_exec(a, slow, NULL, 0, 0, NULL, NULL, NULL, &e), CITRUS_EQUERYTIMEOUT);
    assert_non_null(strstr(e.message, "deadline"));
    pool_put(p, a, false);
    drv_conn *b = must_get(p); /* the same connection, without the deadline */
    assert_ptr_equal(b, a);
    assert_int_equal(query_int(b, slow), 200000);
    pool_put(p, b, false);
    pool_free(p);
    clock_test_free(clock);
}

/* A waiter is served by a return or a freed slot, with the clock standing
 * still: it is woken by them, not by time. */
static void test_waiter_gets_returned_connection(void **state)
{
    char dsn[PATH_MAX];
    sqlite_db("wait.db", dsn, sizeof(dsn));
    sysclock *clock = clock_test_new(T0, 0);
    pool *p = must_pool(&(pool_options){.dsn = dsn, .max_size = 1, .wait_ms = 50, .clock = clock});
    drv_conn *a = must_get(p);
    getter g;
    getter_start(&g, p, clock);
    assert_false(atomic_load(&g.done));
    pool_put(p, a, false);
    pthread_join(g.th, NULL);
    assert_int_equal(g.rc, 0);
    assert_ptr_equal(g.c, a);
    assert_int_equal(g.got_ms, T0);
    pool_stats s = stats(p);
    assert_int_equal(s.opened, 1);
    assert_int_equal(s.exhausted, 0);
    assert_int_equal(s.checkouts, 2);

    /* a slot freed by a discard also wakes a waiter, who opens a new one */
    getter_start(&g, p, clock);
    assert_false(atomic_load(&g.done));
    pool_put(p, a, true);
    pthread_join(g.th, NULL);
    assert_int_equal(g.rc, 0);
    s = stats(p);
    assert_int_equal(s.opened, 2);
    assert_int_equal(s.closed, 1);
    pool_put(p, g.c, false);
    pool_free(p);
    clock_test_free(clock);
}

static void test_discard_and_transaction(void **state)
{
    char dsn[PATH_MAX];
    sqlite_db("discard.db", dsn, sizeof(dsn));
    pool *p = must_pool(&(pool_options){.dsn = dsn, .max_size = 2});
    drv_conn *c = must_get(p);
    pool_put(p, c, true);
    pool_stats s = stats(p);
    assert_int_equal(s.closed, 1);
    assert_int_equal(s.size, 0);
    assert_int_equal(s.idle, 0);

    /* returned inside a transaction: closed, never handed to someone else */
    c = must_get(p);
    assert_int_equal(stats(p).opened, 2);
    assert_int_equal(drv_begin(c, NULL), 0);
    pool_put(p, c, false);
    s = stats(p);
    assert_int_equal(s.closed, 2);
    assert_int_equal(s.idle, 0);

    /* a healthy one is kept and reused */
    c = must_get(p);
    pool_put(p, c, false);
    drv_conn *d = must_get(p);
    assert_ptr_equal(c, d);
    s = stats(p);
    assert_int_equal(s.opened, 3);
    assert_int_equal(s.checkouts, 4);
    pool_put(p, d, false);
    /* NULL is ignored */
    pool_put(p, NULL, false);
    pool_free(p);
}

static void test_lifo_reuse(void **state)
{
    char dsn[PATH_MAX];
    sqlite_db("lifo.db", dsn, sizeof(dsn));
    pool *p = must_pool(&(pool_options){.dsn = dsn, .max_size = 3});
    drv_conn *a = must_get(p), *b = must_get(p), *c = must_get(p);
    pool_put(p, a, false);
    pool_put(p, c, false);
    pool_put(p, b, false);
    assert_ptr_equal(must_get(p), b); /* most recently returned first */
    assert_ptr_equal(must_get(p), c);
    assert_ptr_equal(must_get(p), a);
    pool_put(p, a, false);
    pool_put(p, b, false);
    pool_put(p, c, false);
    pool_free(p);
}

/* Idle past idle_timeout_ms: closed at the next checkout or return. */
static void test_idle_timeout(void **state)
{
    char dsn[PATH_MAX];
    sqlite_db("idle.db", dsn, sizeof(dsn));
    sysclock *clock = clock_test_new(T0, 0);
    pool *p = must_pool(
        &(pool_options){.dsn = dsn, .max_size = 3, .idle_timeout_ms = 200, .clock = clock});
    drv_conn *a = must_get(p);
    pool_put(p, a, false);
    clock_test_advance(clock, 199);
    assert_ptr_equal(must_get(p), a); /* not yet */
    pool_put(p, a, false);
    clock_test_advance(clock, 200);
    drv_conn *b = must_get(p); /* the idle one expired at checkout */
    pool_stats s = stats(p);
    assert_int_equal(s.closed, 1);
    assert_int_equal(s.opened, 2);
    assert_int_equal(s.size, 1);

    /* and on return: c goes idle, expires, and is swept when b comes back */
    drv_conn *c = must_get(p);
    pool_put(p, c, false);
    clock_test_advance(clock, 200);
    pool_put(p, b, false);
    s = stats(p);
    assert_int_equal(s.closed, 2);
    assert_int_equal(s.idle, 1);
    assert_int_equal(s.size, 1);
    pool_free(p);
    clock_test_free(clock);
}

/* Older than max_lifetime_ms: closed on return, replaced at checkout,
 * however recently used. */
static void test_max_lifetime(void **state)
{
    char dsn[PATH_MAX];
    sqlite_db("life.db", dsn, sizeof(dsn));
    sysclock *clock = clock_test_new(T0, 0);
    pool *p = must_pool(
        &(pool_options){.dsn = dsn, .max_size = 2, .max_lifetime_ms = 300, .clock = clock});
    drv_conn *a = must_get(p);
    clock_test_advance(clock, 300);
    pool_put(p, a, false); /* too old: closed on return */
    pool_stats s = stats(p);
    assert_int_equal(s.closed, 1);
    assert_int_equal(s.idle, 0);
    assert_int_equal(s.size, 0);

    drv_conn *b = must_get(p);
    clock_test_advance(clock, 299);
    pool_put(p, b, false); /* young: kept */
    assert_int_equal(stats(p).idle, 1);
    assert_ptr_equal(must_get(p), b);
    pool_put(p, b, false);
    clock_test_advance(clock, 1);
    drv_conn *c = must_get(p); /* too old at checkout: replaced */
    s = stats(p);
    assert_int_equal(s.opened, 3);
    assert_int_equal(s.closed, 2);
    assert_int_equal(s.size, 1);
    pool_put(p, c, true);
    pool_free(p);
    clock_test_free(clock);
}

/* Overwrites the first n bytes of an SQLite file under its open
 * connections, keeping them in keep (what each connection had read is
 * dropped once the WAL was checkpointed away, so they read the garbage
 * next). */
static void scribble_header(const char *dsn, unsigned char *keep, size_t n)
{
    drv_conn *c = NULL;
    assert_int_equal(drv_open(dsn, &(drv_options){.sandbox = DRV_SANDBOX_SCHEMA}, &c, NULL), 0);
    assert_int_equal(
        drv_run_script(c, "CREATE TABLE IF NOT EXISTS t (a); INSERT INTO t VALUES (1)", NULL), 0);
    /* the C call: the sandbox refuses PRAGMA wal_checkpoint */
    assert_int_equal(
        sqlite3_wal_checkpoint_v2(c->handle, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL),
        SQLITE_OK);
    drv_close(c);
    FILE *f = fopen(dsn + strlen("sqlite://"), "r+b");
    assert_non_null(f);
    assert_int_equal(fread(keep, 1, n, f), n);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(fputc('x', f), 'x');
    fclose(f);
}

static void restore_header(const char *dsn, const unsigned char *keep, size_t n)
{
    FILE *f = fopen(dsn + strlen("sqlite://"), "r+b");
    assert_non_null(f);
    assert_int_equal(fwrite(keep, 1, n, f), n);
    fclose(f);
}

/* Idle less than check_idle_ms: handed out as is. Longer: pinged first,
 * and a connection that fails its ping is closed (and replaced when the
 * database can be reached; here it cannot, until it is repaired). */
static void test_health_check_on_checkout(void **state)
{
    char dsn[PATH_MAX];
    sqlite_db("health.db", dsn, sizeof(dsn));
    sysclock *clock = clock_test_new(T0, 0);
    pool *p =
        must_pool(&(pool_options){.dsn = dsn, .max_size = 2, .check_idle_ms = 100, .clock = clock});
    drv_conn *a = must_get(p);
    pool_put(p, a, false);
    unsigned char header[100];
    scribble_header(dsn, header, sizeof(header));

    clock_test_advance(clock, 99);
    assert_ptr_equal(must_get(p), a); /* not pinged: the ping would have failed */
    pool_stats s = stats(p);
    assert_int_equal(s.opened, 1);
    assert_int_equal(s.closed, 0);
    pool_put(p, a, false);

    clock_test_advance(clock, 100);
    drv_conn *c = NULL;
    errdetail e;
    assert_int_equal(pool_get(p, &c, &e), CITRUS_EUNAVAILABLE); /* pinged, closed, not reopened */
    print_message("health check: %s\n", e.message);
    assert_null(c);
    s = stats(p);
    assert_int_equal(s.closed, 1);
    assert_int_equal(s.size, 0);
    assert_int_equal(s.idle, 0);

    restore_header(dsn, header, sizeof(header));
    c = must_get(p);
    assert_int_equal(query_int(c, "SELECT count(*) FROM t"), 1);
    assert_int_equal(stats(p).opened, 2);
    pool_put(p, c, false);
    pool_free(p);
    clock_test_free(clock);
}

static void test_open_failures(void **state)
{
    char dsn[PATH_MAX + 32];
    snprintf(dsn, sizeof(dsn), "sqlite://%s/not-yet.db", tmpdir);
    pool *p = must_pool(&(pool_options){.dsn = dsn, .max_size = 1});
    drv_conn *c = NULL;
    errdetail e;
    assert_int_equal(pool_get(p, &c, &e), CITRUS_EUNAVAILABLE);
    assert_null(c);
    assert_true(e.message[0] != '\0');
    pool_stats s = stats(p);
    assert_int_equal(s.size, 0); /* the slot was given back */
    assert_int_equal(s.opened, 0);
    assert_int_equal(s.checkouts, 0);
    char real[PATH_MAX];
    sqlite_db("not-yet.db", real, sizeof(real));
    c = must_get(p);
    pool_put(p, c, false);
    pool_free(p);

    p = must_pool(&(pool_options){.dsn = "nonsense"});
    assert_int_equal(pool_get(p, &c, &e), CITRUS_EINVAL);
    assert_int_equal(stats(p).size, 0);
    pool_free(p);
    assert_null(pool_new(&(pool_options){.dsn = NULL}));
    assert_null(pool_new(NULL));
}

/* pool_free with connections out and a thread waiting: the waiter gets
 * CITRUS_ECLOSED, the connections out still work and are closed when
 * returned; the pool goes with the last one (the sanitizer builds check
 * there is no use after free and no leak). */
static void test_free_with_connections_out(void **state)
{
    char dsn[PATH_MAX];
    sqlite_db("free.db", dsn, sizeof(dsn));
    pool *p = must_pool(&(pool_options){.dsn = dsn, .max_size = 3, .wait_ms = 120000});
    drv_conn *a = must_get(p), *b = must_get(p), *c = must_get(p);
    getter g;
    getter_start(&g, p, NULL);
    pool_put(p, c, true); /* the waiter opens a new one */
    pthread_join(g.th, NULL);
    assert_int_equal(g.rc, 0);
    c = g.c; /* three out again */

    getter_start(&g, p, NULL);
    pool_free(p);
    pthread_join(g.th, NULL);
    assert_int_equal(g.rc, CITRUS_ECLOSED);
    assert_null(g.c);
    assert_int_equal(query_int(a, "SELECT 41 + 1"), 42);
    pool_put(p, a, false);
    pool_put(p, c, true);
    pool_put(p, b, false); /* the last one: the pool is gone now */

    /* freeing an unused or an idle-only pool */
    pool_free(must_pool(&(pool_options){.dsn = dsn}));
    p = must_pool(&(pool_options){.dsn = dsn});
    pool_put(p, must_get(p), false);
    pool_free(p);
    pool_free(NULL);
}

/* ---- PostgreSQL ------------------------------------------------------------------------ */

static void pg_pool_dsn(const char *app, char *out, size_t len)
{
    snprintf(out, len, "postgresql://postgres@127.0.0.1:%d/postgres?application_name=%s", pg.port,
             app);
}

static int64_t server_connections(drv_conn *admin, const char *app)
{
    value v = val_text(app, strlen(app));
    result_set rs;
    rs_init(&rs);
    int rc =
        drv_exec(admin, "SELECT count(*)::int8 FROM pg_stat_activity WHERE application_name = $1",
                 &v, 1, 0, &rs, NULL, NULL, NULL);
    val_free(&v);
    assert_int_equal(rc, 0);
    int64_t n = rs_cell(&rs, 0, 0)->u.i;
    rs_free(&rs);
    return n;
}

typedef struct pg_hammer {
    pool *p;
    int max_size, errors;
    atomic_bool done;
} pg_hammer;

static void *pg_hammer_main(void *arg)
{
    pg_hammer *h = arg;
    hammer_pool(h->p, "SELECT pg_sleep(0.002)", 6, 50, &h->max_size, &h->errors);
    atomic_store(&h->done, true);
    return NULL;
}

/* The server never sees more than max_size connections from the pool. */
static void test_pg_max_size_server_side(void **state)
{
    char dsn[256];
    pg_pool_dsn("pool_conc", dsn, sizeof(dsn));
    pool *p = must_pool(&(pool_options){.dsn = dsn, .max_size = 3, .wait_ms = 120000});
    drv_conn *admin = NULL;
    assert_int_equal(drv_open(pg.admin_dsn, NULL, &admin, NULL), 0);
    pg_hammer h = {.p = p};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, pg_hammer_main, &h), 0);
    int64_t most = 0, samples = 0;
    while (!atomic_load(&h.done)) {
        int64_t n = server_connections(admin, "pool_conc");
        most = n > most ? n : most;
        samples++;
        sleep_ms(5);
    }
    pthread_join(th, NULL);
    assert_int_equal(h.errors, 0);
    assert_true(h.max_size <= 3);
    pool_stats s = stats(p);
    print_message("postgres: 6 x 50 checkouts: at most %lld server connections seen in %lld "
                  "samples, opened %llu\n",
                  (long long)most, (long long)samples, (unsigned long long)s.opened);
    assert_true(most <= 3);
    assert_true(s.opened <= 3);
    assert_int_equal(s.checkouts, 300);
    pool_free(p);
    /* all closed by pool_free (the server may take a moment to notice) */
    int64_t until = mono_ms() + 20000;
    while (server_connections(admin, "pool_conc") != 0 && mono_ms() < until)
        sleep_ms(20);
    assert_int_equal(server_connections(admin, "pool_conc"), 0);
    drv_close(admin);
}

/* A connection the server killed comes back broken and is not reused. */
static void test_pg_broken_not_reused(void **state)
{
    char dsn[256];
    pg_pool_dsn("pool_broken", dsn, sizeof(dsn));
    pool *p = must_pool(&(pool_options){.dsn = dsn, .max_size = 2, .check_idle_ms = 600000});
    drv_conn *admin = NULL;
    assert_int_equal(drv_open(pg.admin_dsn, NULL, &admin, NULL), 0);
    drv_conn *c = must_get(p);
    int64_t pid = query_int(c, "SELECT pg_backend_pid()::int8");
    value v = val_int(pid);
    assert_int_equal(
        drv_exec(admin, "SELECT pg_terminate_backend($1::int)", &v, 1, 0, NULL, NULL, NULL, NULL),
        0);
    /* the caller finds out by using it */
    int64_t until = mono_ms() + 20000;
    int rc;
    while ((rc = drv_exec(c, "SELECT 1", NULL, 0, 0, NULL, NULL, NULL, NULL)) == 0 &&
           mono_ms() < until)
        sleep_ms(20);
    assert_int_equal(rc, CITRUS_EUNAVAILABLE);
    pool_put(p, c, false);
    pool_stats s = stats(p);
    assert_int_equal(s.closed, 1);
    assert_int_equal(s.idle, 0);
    c = must_get(p);
    assert_true(query_int(c, "SELECT pg_backend_pid()::int8") != pid);
    assert_int_equal(stats(p).opened, 2);
    pool_put(p, c, false);
    pool_free(p);
    drv_close(admin);
}

/* After a server restart, idle connections are dead. Idle past
 * check_idle_ms, a checkout pings, closes and replaces them; below it, the
 * caller gets the dead one, sees CITRUS_EUNAVAILABLE, and returns it to be
 * closed. */
static void test_pg_health_check_after_restart(void **state)
{
    char dsn[256];
    pg_pool_dsn("pool_health", dsn, sizeof(dsn));
    sysclock *clock = clock_test_new(T0, 0);
    pool *checked =
        must_pool(&(pool_options){.dsn = dsn, .max_size = 2, .check_idle_ms = 200, .clock = clock});
    pool *trusting = must_pool(
        &(pool_options){.dsn = dsn, .max_size = 1, .check_idle_ms = 600000, .clock = clock});
    drv_conn *a = must_get(checked), *b = must_get(checked), *t = must_get(trusting);
    int64_t pa = query_int(a, "SELECT pg_backend_pid()::int8");
    int64_t pb = query_int(b, "SELECT pg_backend_pid()::int8");
    pool_put(checked, a, false);
    pool_put(checked, b, false);
    pool_put(trusting, t, false);

    int64_t t0 = mono_ms();
    if (pg_restart(&pg) != 0)
        fail_msg("could not restart postgres");
    print_message("postgres restarted on port %d in %lld ms\n", pg.port,
                  (long long)(mono_ms() - t0));
    clock_test_advance(clock, 300); /* idle past check_idle_ms */

    /* b (most recent) is checked, found dead and replaced */
    drv_conn *c1 = must_get(checked);
    int64_t p1 = query_int(c1, "SELECT pg_backend_pid()::int8");
    pool_stats s = stats(checked);
    assert_int_equal(s.closed, 1);
    assert_int_equal(s.opened, 3);
    /* a too, even if it had been idle only briefly: a sibling died */
    drv_conn *c2 = must_get(checked);
    int64_t p2 = query_int(c2, "SELECT pg_backend_pid()::int8");
    s = stats(checked);
    assert_int_equal(s.closed, 2);
    assert_int_equal(s.opened, 4);
    assert_true(p1 != pa && p1 != pb && p2 != pa && p2 != pb && p1 != p2);
    pool_put(checked, c1, false);
    pool_put(checked, c2, false);
    s = stats(checked);
    assert_int_equal(s.idle, 2);
    assert_int_equal(s.size, 2);

    /* no check: the dead one is handed out, fails, and is closed on return */
    drv_conn *d = must_get(trusting);
    errdetail e;
    assert_int_equal(drv_exec(d, "SELECT 1", NULL, 0, 0, NULL, NULL, NULL, &e),
                     CITRUS_EUNAVAILABLE);
    assert_false(drv_alive(d));
    pool_put(trusting, d, false);
    s = stats(trusting);
    assert_int_equal(s.closed, 1);
    assert_int_equal(s.size, 0);
    d = must_get(trusting);
    assert_int_equal(query_int(d, "SELECT 5::int8"), 5);
    pool_put(trusting, d, false);

    pool_free(checked);
    pool_free(trusting);
    clock_test_free(clock);
}

/* ---- main ------------------------------------------------------------------------------- */

int main(void)
{
    if (tmp_dir_create(tmpdir, sizeof(tmpdir), "pool") != 0)
        return 1;
    const struct CMUnitTest lite[] = {
        cmocka_unit_test(test_max_size_under_concurrency),
        cmocka_unit_test(test_exhausted),
        cmocka_unit_test(test_get_until_deadline),
        cmocka_unit_test(test_waiter_gets_returned_connection),
        cmocka_unit_test(test_discard_and_transaction),
        cmocka_unit_test(test_lifo_reuse),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_max_lifetime),
        cmocka_unit_test(test_health_check_on_checkout),
        cmocka_unit_test(test_open_failures),
        cmocka_unit_test(test_free_with_connections_out),
    };
    int failed = cmocka_run_group_tests_name("pool_sqlite", lite, NULL, NULL);
    const struct CMUnitTest pgt[] = {
        cmocka_unit_test(test_pg_max_size_server_side),
        cmocka_unit_test(test_pg_broken_not_reused),
        cmocka_unit_test(test_pg_health_check_after_restart),
    };
    failed += cmocka_run_group_tests_name("pool_postgres", pgt, pg_group_setup, pg_group_teardown);
    tmp_dir_remove(tmpdir);
    return failed;
}
