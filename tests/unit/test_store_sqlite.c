/* tests/unit/test_store_sqlite.c — the embedded catalog store: the catalog
 * conformance suite on store_sqlite, then what only SQLite has (files,
 * reopen, history_keep, restore, group commit, kill -9 durability).
 *
 * Every store lives in a fresh mkdtemp directory (removed when all pass).
 * Lease time runs on a test clock (sys/clock.h) that moves only when a test
 * moves it, so expiry tests need not wait for it. No test uses randomness. */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "catalog_conformance.h"

#include "catalog/store_sqlite.h"
#include "citrus/errors.h"

#define WAIT_MS 30000

static char tmpdir[PATH_MAX - 64];
static int db_seq;
static sysclock *lease_clock; /* every store's */

/* ---- helpers ------------------------------------------------------------------ */

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void new_path(char *buf, size_t len)
{
    snprintf(buf, len, "%s/store-%03d.db", tmpdir, ++db_seq);
}

static void remove_db(const char *path)
{
    const char *suffix[] = {"", "-wal", "-shm", ".tmp", "-journal"};
    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
        unlink(p);
    }
}

static int open_at(const char *path, int64_t keep, store **out)
{
    store_sqlite_options o = {.path = path, .history_keep = keep, .clock = lease_clock};
    errdetail err;
    int rc = store_sqlite_open(&o, out, &err);
    if (rc)
        print_message("open %s: %s (%d)\n", path, err.message, rc);
    return rc;
}

static store *must_open(const char *path, int64_t keep)
{
    store *s = NULL;
    assert_int_equal(open_at(path, keep, &s), 0);
    return s;
}

static int64_t rev_now(store *s)
{
    store_status st;
    assert_int_equal(store_status_get(s, &st), 0);
    return st.revision;
}

static int64_t put_lease(store *s, const char *k, const char *v, int64_t lease)
{
    int64_t rev = 0;
    assert_int_equal(
        store_put(s, k, (const unsigned char *)v, strlen(v), lease, -1, NULL, &rev, NULL), 0);
    return rev;
}

static int64_t put(store *s, const char *k, const char *v)
{
    return put_lease(s, k, v, 0);
}

static size_t count_key(store *s, const char *k)
{
    kv_range_req q = {.key = k, .keys_only = true};
    kv_range_res r;
    assert_int_equal(store_range(s, &q, &r), 0);
    size_t n = r.count;
    kv_range_res_free(&r);
    return n;
}

static const kv_lease_info *find_lease(const kv_snapshot *snap, int64_t id)
{
    for (size_t i = 0; i < snap->nleases; i++)
        if (snap->leases[i].id == id)
            return &snap->leases[i];
    return NULL;
}

/* Counts callbacks; the first call can be made to block until released. */
typedef struct counter {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    size_t events, calls, errs;
    int err;
    int64_t last_rev;
    bool gate, entered, released;
} counter;

static void counter_init(counter *c, bool gate)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->gate = gate;
}

static void counter_free(counter *c)
{
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cond);
}

static void counter_cb(void *ctx, const kv_event *events, size_t n, int err)
{
    counter *c = ctx;
    pthread_mutex_lock(&c->mu);
    if (err) {
        c->errs++;
        c->err = err;
    } else if (n) {
        c->events += n;
        c->calls++;
        c->last_rev = events[n - 1].kv.mod_revision;
    }
    c->entered = true;
    pthread_cond_broadcast(&c->cond);
    while (c->gate && !c->released)
        pthread_cond_wait(&c->cond, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

static void counter_release(counter *c)
{
    pthread_mutex_lock(&c->mu);
    c->released = true;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
}

/* Polls (the counter is fed from the store's thread) until pred holds. */
static bool counter_until(counter *c, size_t events, size_t errs)
{
    int64_t until = clock_mono_ms(NULL) + WAIT_MS;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        bool ok = c->events >= events && c->errs >= errs;
        pthread_mutex_unlock(&c->mu);
        if (ok || clock_mono_ms(NULL) > until)
            return ok;
        sleep_ms(2);
    }
}

/* ---- the conformance factory ---------------------------------------------------- */

static char conf_path[PATH_MAX];

static int conf_open(void *ctx, store **out)
{
    new_path(conf_path, sizeof(conf_path));
    return open_at(conf_path, 0, out);
}

static void conf_close(void *ctx, store *s)
{
    store_close(s);
    remove_db(conf_path);
}

/* Reopens with history_keep chosen so that the open trims history to rev. */
static int conf_compact(void *ctx, store **s, int64_t rev)
{
    int64_t cur = rev_now(*s);
    store_close(*s);
    *s = NULL;
    return open_at(conf_path, cur - rev + 1, s);
}

static void conf_advance(void *ctx, int64_t ms)
{
    clock_test_advance(lease_clock, ms);
}

/* ---- sqlite-only tests -------------------------------------------------------------- */

static void test_fresh_status(void **state)
{
    char path[PATH_MAX];
    new_path(path, sizeof(path));
    store *s = must_open(path, 0);
    store_status st;
    assert_int_equal(store_status_get(s, &st), 0);
    assert_int_equal(st.revision, 1);
    assert_int_equal(st.compact_revision, 1);
    assert_true(st.writable);
    assert_string_equal(st.backend, "embedded");
    assert_int_equal(put(s, "a", "1"), 2);
    store_close(s);
    remove_db(path);
}

static void test_open_errors(void **state)
{
    store *s = (store *)&s;
    errdetail err = {0};
    store_sqlite_options o = {.path = "/nonexistent-citrus-dir/x.db"};
    assert_int_equal(store_sqlite_open(&o, &s, &err), CITRUS_EIO);
    assert_int_equal(err.code, CITRUS_EIO);
    assert_null(s);
    assert_true(strlen(err.message) > 0);
    print_message("expected error: %s\n", err.message);
    o.path = NULL;
    assert_int_equal(store_sqlite_open(&o, &s, &err), CITRUS_EINVAL);
    assert_int_equal(err.code, CITRUS_EINVAL);

    char path[PATH_MAX];
    new_path(path, sizeof(path));
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("this is not a database file, not at all; it is long enough to have a header\n", f);
    fclose(f);
    o.path = path;
    errdetail_clear(&err);
    assert_int_equal(store_sqlite_open(&o, &s, &err), CITRUS_EIO);
    assert_int_equal(err.code, CITRUS_EIO);
    assert_true(strlen(err.message) > 0);
    print_message("expected error: %s\n", err.message);
    remove_db(path);

    store *first = must_open(path, 0); /* one store per file */
    errdetail_clear(&err);
    assert_int_equal(store_sqlite_open(&o, &s, &err), CITRUS_EIO);
    assert_int_equal(err.code, CITRUS_EIO);
    assert_null(s);
    print_message("expected error: %s\n", err.message);
    put(first, "k", "v");
    store_close(first);
    s = must_open(path, 0);
    assert_int_equal(rev_now(s), 2);
    store_close(s);
    remove_db(path);
}

/* A batch that cannot commit fails every write in it and applies nothing;
 * the store recovers once the database can be written again. */
static void test_batch_failure(void **state)
{
    char path[PATH_MAX];
    new_path(path, sizeof(path));
    store *s = must_open(path, 0);
    assert_int_equal(put(s, "bf/a", "1"), 2);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    int64_t t0 = clock_mono_ms(NULL);
    assert_int_equal(store_put(s, "bf/b", (const unsigned char *)"2", 1, 0, -1, NULL, NULL, NULL),
                     CITRUS_EIO);
    print_message("write failed with CITRUS_EIO after %lld ms (busy timeout)\n",
                  (long long)(clock_mono_ms(NULL) - t0));
    store_status st;
    assert_int_equal(store_status_get(s, &st), 0);
    assert_false(st.writable);
    assert_int_equal(st.revision, 2);
    assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(put(s, "bf/c", "3"), 3);
    assert_int_equal(store_status_get(s, &st), 0);
    assert_true(st.writable);
    assert_int_equal(count_key(s, "bf/b"), 0);
    store_close(s);
    remove_db(path);
}

static void test_reopen_persists(void **state)
{
    char path[PATH_MAX];
    new_path(path, sizeof(path));
    store *s = must_open(path, 0);
    int64_t id = 0, ttl = 0;
    assert_int_equal(store_lease_grant(s, 30, &id, NULL), 0);
    assert_int_equal(put(s, "a", "1"), 2);
    assert_int_equal(put_lease(s, "b", "2", id), 3);
    assert_int_equal(put(s, "a", "3"), 4);
    assert_int_equal(put(s, "c", "4"), 5);
    assert_int_equal(store_delete(s, "c", false, -1, NULL, NULL, NULL), 0);
    clock_test_advance(lease_clock, 20000);
    kv_snapshot snap;
    assert_int_equal(store_snapshot(s, &snap), 0);
    assert_true(find_lease(&snap, id)->remaining <= 10);
    kv_snapshot_free(&snap);
    store_close(s);

    s = must_open(path, 0);
    assert_int_equal(rev_now(s), 6);
    kv_range_req q = {.key = "", .prefix = true};
    kv_range_res r;
    assert_int_equal(store_range(s, &q, &r), 0);
    assert_int_equal(r.count, 2);
    assert_string_equal(r.items[0].key, "a");
    assert_int_equal(r.items[0].create_revision, 2);
    assert_int_equal(r.items[0].mod_revision, 4);
    assert_int_equal(r.items[0].version, 2);
    assert_memory_equal(r.items[0].value, "3", 1);
    assert_int_equal(r.items[1].lease, id);
    kv_range_res_free(&r);
    assert_int_equal(store_snapshot(s, &snap), 0);
    const kv_lease_info *l = find_lease(&snap, id);
    assert_non_null(l);
    assert_int_equal(l->ttl, 30);
    assert_int_equal(l->remaining, 30); /* a full fresh TTL after restart */
    kv_snapshot_free(&snap);
    assert_int_equal(store_lease_keepalive(s, id, &ttl), 0);
    assert_int_equal(ttl, 30);

    counter c;
    counter_init(&c, false);
    store_watch *w = NULL;
    assert_int_equal(store_watch_open(s, "", 2, counter_cb, &c, &w, NULL), 0);
    assert_true(counter_until(&c, 5, 0));
    store_watch_close(s, w);
    assert_int_equal(c.events, 5);
    assert_int_equal(c.last_rev, 6);
    counter_free(&c);
    assert_int_equal(put(s, "d", "5"), 7);
    store_close(s);
    remove_db(path);
}

static void test_history_keep(void **state)
{
    char path[PATH_MAX];
    new_path(path, sizeof(path));
    store *s = must_open(path, 8);
    for (int i = 0; i < 20; i++)
        put(s, "hk/k", "v");
    store_status st;
    assert_int_equal(store_status_get(s, &st), 0);
    assert_int_equal(st.revision, 21);
    assert_int_equal(st.compact_revision, 14);
    counter c;
    counter_init(&c, false);
    store_watch *w = NULL;
    int64_t compact = 0;
    assert_int_equal(store_watch_open(s, "", 13, counter_cb, &c, &w, &compact), CITRUS_ECOMPACTED);
    assert_int_equal(compact, 14);
    assert_null(w);
    assert_int_equal(store_watch_open(s, "", 14, counter_cb, &c, &w, &compact), 0);
    assert_true(counter_until(&c, 8, 0));
    store_watch_close(s, w);
    assert_int_equal(c.events, 8);
    assert_int_equal(c.last_rev, 21);
    counter_free(&c);
    put(s, "hk/k", "v");
    assert_int_equal(store_status_get(s, &st), 0);
    assert_int_equal(st.compact_revision, 15);
    store_close(s);
    remove_db(path);
}

/* kv_range_req.max_bytes and kv_txn.max_get_bytes: a listing stops before
 * the item that passes the bound (more = true, the first item always); a
 * txn whose gets pass it fails with CITRUS_ERESPTOOBIG and applies nothing;
 * a bounded snapshot is refused. */
static void test_bounded_reads(void **state)
{
    char path[PATH_MAX];
    new_path(path, sizeof(path));
    store *s = must_open(path, 0);
    static unsigned char big[10000];
    memset(big, 'b', sizeof(big));
    for (int i = 0; i < 10; i++) {
        char k[16];
        snprintf(k, sizeof(k), "bd/k%d", i);
        assert_int_equal(store_put(s, k, big, sizeof(big), 0, -1, NULL, NULL, NULL), 0);
    }
    size_t one = kv_entry_wire_size(strlen("bd/k0"), sizeof(big), true);
    kv_range_req q = {.key = "bd/", .prefix = true, .max_bytes = 3 * one + 10};
    kv_range_res r;
    assert_int_equal(store_range(s, &q, &r), 0);
    assert_int_equal(r.count, 3);
    assert_true(r.more);
    kv_range_res_free(&r);
    q.max_bytes = 1; /* the first item always comes */
    assert_int_equal(store_range(s, &q, &r), 0);
    assert_int_equal(r.count, 1);
    assert_true(r.more);
    kv_range_res_free(&r);
    q.keys_only = true;
    q.max_bytes = 3 * one;
    assert_int_equal(store_range(s, &q, &r), 0);
    assert_int_equal(r.count, 10);
    assert_false(r.more);
    kv_range_res_free(&r);

    int64_t rev = rev_now(s);
    kv_op ops[] = {{.type = KV_OP_PUT, .key = "bd/marker", .value = big, .value_len = 1},
                   {.type = KV_OP_DELETE, .key = "bd/k0"},
                   {.type = KV_OP_GET, .key = "bd/", .prefix = true},
                   {.type = KV_OP_GET, .key = "bd/", .prefix = true}};
    kv_txn t = {.success = ops, .nsuccess = 4, .max_get_bytes = 12 * one};
    kv_txn_res tr;
    assert_int_equal(store_txn(s, &t, &tr), CITRUS_ERESPTOOBIG);
    assert_int_equal(rev_now(s), rev);
    kv_range_req mk = {.key = "bd/marker"};
    assert_int_equal(store_range(s, &mk, &r), 0);
    assert_int_equal(r.count, 0);
    kv_range_res_free(&r);
    t.max_get_bytes = 20 * one; /* both gets fit: applied */
    assert_int_equal(store_txn(s, &t, &tr), 0);
    assert_int_equal(tr.results[2].range.count, 10);
    kv_txn_res_free(&tr);
    assert_int_equal(rev_now(s), rev + 1);

    kv_snapshot snap;
    assert_int_equal(store_snapshot_bounded(s, 5 * one, &snap), CITRUS_ERESPTOOBIG);
    assert_int_equal(snap.count, 0);
    assert_int_equal(store_snapshot_bounded(s, 100 * one, &snap), 0);
    assert_int_equal(snap.count, 10);
    kv_snapshot_free(&snap);
    store_close(s);
    remove_db(path);
}

/* catalog.quota_bytes: past it puts and grants are CITRUS_ENOSPACE and the
 * alarm stays up through deletes; compaction frees the history's pages and
 * clears it; defrag shrinks the file. */
static void test_quota(void **state)
{
    char path[PATH_MAX];
    new_path(path, sizeof(path));
    store_sqlite_options o = {.path = path, .clock = lease_clock, .quota_bytes = 512 * 1024};
    errdetail err;
    store *s = NULL;
    assert_int_equal(store_sqlite_open(&o, &s, &err), 0);
    static unsigned char v[50000];
    memset(v, 'q', sizeof(v));
    int rc = 0, n = 0;
    for (; n < 40 && rc == 0; n++) {
        char k[16];
        snprintf(k, sizeof(k), "qt/k%02d", n);
        rc = store_put(s, k, v, sizeof(v), 0, -1, NULL, NULL, NULL);
    }
    assert_int_equal(rc, CITRUS_ENOSPACE);
    store_status st;
    assert_int_equal(store_status_get(s, &st), 0);
    assert_true(st.nospace);
    assert_int_equal(st.quota_bytes, 512 * 1024);
    assert_true(st.db_size_in_use > 0 && st.db_size >= st.db_size_in_use);
    assert_int_equal(store_put(s, "qt/small", v, 1, 0, -1, NULL, NULL, NULL), CITRUS_ENOSPACE);
    int64_t id, ttl;
    assert_int_equal(store_lease_grant(s, 10, &id, &ttl), CITRUS_ENOSPACE);
    int64_t deleted = 0;
    assert_int_equal(store_delete(s, "qt/", true, -1, &deleted, NULL, NULL), 0);
    assert_int_equal(deleted, n - 1);
    assert_int_equal(store_put(s, "qt/small", v, 1, 0, -1, NULL, NULL, NULL), CITRUS_ENOSPACE);
    assert_int_equal(store_compact(s, rev_now(s) + 5), CITRUS_EINVAL);
    assert_int_equal(store_compact(s, 0), 0);
    assert_int_equal(store_status_get(s, &st), 0);
    assert_false(st.nospace);
    assert_int_equal(st.compact_revision, st.revision);
    assert_int_equal(store_compact(s, 1), CITRUS_ECOMPACTED);
    assert_int_equal(store_put(s, "qt/small", v, 1, 0, -1, NULL, NULL, NULL), 0);
    int64_t before = st.db_size;
    assert_int_equal(store_defrag(s), 0);
    assert_int_equal(store_status_get(s, &st), 0);
    assert_true(st.db_size < before);
    store_close(s);
    remove_db(path);
}

static void test_watch_falls_behind(void **state)
{
    char path[PATH_MAX];
    new_path(path, sizeof(path));
    store *s = must_open(path, 8);
    counter slow, sync;
    counter_init(&slow, true);
    counter_init(&sync, false);
    store_watch *w = NULL, *ws = NULL;
    assert_int_equal(store_watch_open(s, "", 0, counter_cb, &slow, &w, NULL), 0);
    put(s, "fb/k", "v");
    assert_true(counter_until(&slow, 1, 0)); /* now blocked inside its first callback */
    for (int i = 0; i < 20; i++)
        put(s, "fb/k", "v");
    counter_release(&slow);
    assert_true(counter_until(&slow, 1, 1));
    assert_int_equal(slow.err, CITRUS_ECOMPACTED);
    assert_int_equal(store_watch_open(s, "", 0, counter_cb, &sync, &ws, NULL), 0);
    for (int i = 0; i < 5; i++)
        put(s, "fb/k", "v");
    assert_true(counter_until(&sync, 5, 0)); /* the notifier went past those revisions */
    store_watch_close(s, w);
    store_watch_close(s, ws);
    assert_int_equal(slow.events, 1);
    assert_int_equal(slow.errs, 1);
    counter_free(&slow);
    counter_free(&sync);
    store_close(s);
    remove_db(path);
}

static void test_restore_roundtrip(void **state)
{
    char p1[PATH_MAX], p2[PATH_MAX], tmp[PATH_MAX + 8];
    errdetail err;
    new_path(p1, sizeof(p1));
    new_path(p2, sizeof(p2));
    store *s = must_open(p1, 0);
    int64_t id = 0, ttl = 0;
    assert_int_equal(store_lease_grant(s, 45, &id, NULL), 0);
    put(s, "r/a", "1");
    put_lease(s, "r/b", "2", id);
    put(s, "r/c", "3");
    assert_int_equal(store_delete(s, "r/c", false, -1, NULL, NULL, NULL), 0);
    put(s, "r/a", "");
    put(s, "r/\xc3\xa9\x80", "bin\x01");
    kv_snapshot s1, s2;
    assert_int_equal(store_snapshot(s, &s1), 0);
    store_close(s);

    assert_int_equal(store_sqlite_restore(p2, &s1, &err), 0);
    snprintf(tmp, sizeof(tmp), "%s.tmp", p2);
    assert_int_equal(access(tmp, F_OK), -1);
    s = must_open(p2, 0);
    store_status st;
    assert_int_equal(store_status_get(s, &st), 0);
    assert_int_equal(st.revision, s1.revision);
    assert_int_equal(st.compact_revision, s1.revision + 1);
    assert_int_equal(store_snapshot(s, &s2), 0);
    assert_int_equal(s2.revision, s1.revision);
    assert_int_equal(s2.count, s1.count);
    for (size_t i = 0; i < s1.count; i++) {
        const kv_entry *a = &s1.items[i], *b = &s2.items[i];
        assert_string_equal(a->key, b->key);
        assert_int_equal(a->value_len, b->value_len);
        if (a->value_len)
            assert_memory_equal(a->value, b->value, a->value_len);
        assert_int_equal(a->create_revision, b->create_revision);
        assert_int_equal(a->mod_revision, b->mod_revision);
        assert_int_equal(a->version, b->version);
        assert_int_equal(a->lease, b->lease);
    }
    assert_int_equal(s2.nleases, 1);
    assert_int_equal(s2.leases[0].id, id);
    assert_int_equal(s2.leases[0].ttl, 45);

    store_watch *w = NULL;
    int64_t compact = 0;
    counter c;
    counter_init(&c, false);
    assert_int_equal(store_watch_open(s, "", s1.revision, counter_cb, &c, &w, &compact),
                     CITRUS_ECOMPACTED);
    assert_int_equal(compact, s1.revision + 1);
    assert_int_equal(store_watch_open(s, "", s1.revision + 1, counter_cb, &c, &w, &compact), 0);
    assert_int_equal(put(s, "r/new", "x"), s1.revision + 1);
    assert_true(counter_until(&c, 1, 0));
    store_watch_close(s, w);
    counter_free(&c);
    assert_int_equal(store_lease_keepalive(s, id, &ttl), 0);
    assert_int_equal(store_lease_revoke(s, id), 0);
    assert_int_equal(count_key(s, "r/b"), 0);
    kv_snapshot_free(&s1);
    kv_snapshot_free(&s2);
    store_close(s);
    remove_db(p1);
    remove_db(p2);
}

static void test_restore_refuses(void **state)
{
    char path[PATH_MAX];
    errdetail err = {0};
    new_path(path, sizeof(path));
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("keep me", f);
    fclose(f);
    kv_snapshot snap = {.revision = 5};
    assert_int_equal(store_sqlite_restore(path, &snap, &err), CITRUS_EEXISTS);
    assert_int_equal(err.code, CITRUS_EEXISTS);
    assert_true(strlen(err.message) > 0);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 7);
    remove_db(path);

    errdetail_clear(&err);
    assert_int_equal(store_sqlite_restore("/nonexistent-citrus-dir/x.db", &snap, &err), CITRUS_EIO);
    assert_int_equal(err.code, CITRUS_EIO);
    assert_true(strlen(err.message) > 0);

    kv_entry bad = {.key = (char *)""};
    snap = (kv_snapshot){.revision = 5, .items = &bad, .count = 1};
    assert_int_equal(store_sqlite_restore(path, &snap, &err), CITRUS_EINVAL);
    assert_int_equal(err.code, CITRUS_EINVAL);
    assert_int_equal(access(path, F_OK), -1);

    kv_entry dangling = {
        .key = (char *)"k", .create_revision = 2, .mod_revision = 2, .version = 1, .lease = 77};
    snap = (kv_snapshot){.revision = 5, .items = &dangling, .count = 1};
    assert_int_equal(store_sqlite_restore(path, &snap, &err), CITRUS_ECORRUPT);
    assert_int_equal(err.code, CITRUS_ECORRUPT);
    print_message("expected error: %s\n", err.message);
    assert_int_equal(access(path, F_OK), -1);
}

#define GC_THREADS 16
#define GC_WRITES 100

typedef struct gc_arg {
    store *s;
    int id;
    int failures;
} gc_arg;

static void *gc_writer(void *p)
{
    gc_arg *a = p;
    for (int i = 0; i < GC_WRITES; i++) {
        char k[32];
        snprintf(k, sizeof(k), "gc/%02d/%03d", a->id, i);
        if (store_put(a->s, k, (const unsigned char *)"v", 1, 0, -1, NULL, NULL, NULL))
            a->failures++;
    }
    return NULL;
}

static void test_group_commit(void **state)
{
    char path[PATH_MAX];
    new_path(path, sizeof(path));
    store *s = must_open(path, 0);
    uint64_t c0 = store_sqlite_commit_count(s);
    pthread_t th[GC_THREADS];
    gc_arg args[GC_THREADS];
    int64_t t0 = clock_mono_ms(NULL);
    for (int i = 0; i < GC_THREADS; i++) {
        args[i] = (gc_arg){.s = s, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, gc_writer, &args[i]), 0);
    }
    for (int i = 0; i < GC_THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    int64_t ms = clock_mono_ms(NULL) - t0;
    uint64_t commits = store_sqlite_commit_count(s) - c0;
    int writes = GC_THREADS * GC_WRITES;
    print_message("group commit: %d writes in %llu commits, %lld ms (%.0f writes/s)\n", writes,
                  (unsigned long long)commits, (long long)ms, writes * 1000.0 / (ms ? ms : 1));
    assert_true(commits >= 1);
    assert_true(commits < (uint64_t)writes);
    assert_int_equal(rev_now(s), 1 + writes);
    assert_int_equal(store_sqlite_commit_count(NULL), 0);
    store_close(s);
    remove_db(path);
}

/* Thousands of open watches (one per long-poll request) on two prefixes. */
static void test_many_watchers(void **state)
{
    enum { NW = 2000, NPUT = 10 };
    struct slot {
        counter c;
        store_watch *w;
    } *slot = calloc(NW, sizeof(struct slot));
    assert_non_null(slot);
    char path[PATH_MAX];
    new_path(path, sizeof(path));
    store *s = must_open(path, 0);
    for (int i = 0; i < NW; i++) {
        counter_init(&slot[i].c, false);
        assert_int_equal(store_watch_open(s, i % 2 ? "mwa/" : "mwb/", 0, counter_cb, &slot[i].c,
                                          &slot[i].w, NULL),
                         0);
    }
    int64_t t0 = clock_mono_ms(NULL);
    for (int i = 0; i < NPUT; i++)
        put(s, i % 2 ? "mwa/k" : "mwb/k", "v");
    for (int i = 0; i < NW; i++)
        assert_true(counter_until(&slot[i].c, NPUT / 2, 0));
    print_message("%d watchers x %d writes delivered in %lld ms\n", NW, NPUT,
                  (long long)(clock_mono_ms(NULL) - t0));
    for (int i = 0; i < NW; i++) {
        store_watch_close(s, slot[i].w);
        assert_int_equal(slot[i].c.events, NPUT / 2);
        assert_int_equal(slot[i].c.calls, NPUT / 2);
        counter_free(&slot[i].c);
    }
    free(slot);
    store_close(s);
    remove_db(path);
}

static void test_close_notifies_watchers(void **state)
{
    char path[PATH_MAX];
    new_path(path, sizeof(path));
    store *s = must_open(path, 0);
    counter c;
    counter_init(&c, false);
    store_watch *w = NULL;
    assert_int_equal(store_watch_open(s, "", 0, counter_cb, &c, &w, NULL), 0);
    put(s, "k", "v");
    assert_true(counter_until(&c, 1, 0));
    store_close(s); /* frees the open watch after a final CITRUS_ECLOSED */
    assert_int_equal(c.errs, 1);
    assert_int_equal(c.err, CITRUS_ECLOSED);
    counter_free(&c);
    remove_db(path);
}

static void test_lease_clock(void **state)
{
    char path[PATH_MAX];
    new_path(path, sizeof(path));
    store *s = must_open(path, 0);
    int64_t id = 0, ttl = 0;
    assert_int_equal(store_lease_grant(s, 2, &id, NULL), 0);
    put_lease(s, "lc/k", "v", id);
    clock_test_advance(lease_clock, 1500);
    assert_int_equal(store_lease_keepalive(s, id, &ttl), 0);
    assert_int_equal(ttl, 2);
    clock_test_advance(lease_clock, 1500); /* 3 s after grant, 1.5 s after keepalive */
    sleep_ms(300);                         /* several expiry ticks */
    assert_int_equal(count_key(s, "lc/k"), 1);
    clock_test_advance(lease_clock, 600);
    int64_t until = clock_mono_ms(NULL) + WAIT_MS;
    while (count_key(s, "lc/k") && clock_mono_ms(NULL) < until)
        sleep_ms(10);
    assert_int_equal(count_key(s, "lc/k"), 0);
    assert_int_equal(store_lease_keepalive(s, id, &ttl), CITRUS_ENOLEASE);
    store_close(s);
    remove_db(path);
}

/* ---- kill -9: every acknowledged write survives ----------------------------------- */

#define K9_THREADS 4

typedef struct k9_rec {
    int thread, index;
    int64_t rev;
} k9_rec;

typedef struct k9_arg {
    store *s;
    int id, fd;
} k9_arg;

static void *k9_writer(void *p)
{
    k9_arg *a = p;
    for (int i = 0;; i++) {
        char k[32];
        snprintf(k, sizeof(k), "k9/%d/%06d", a->id, i);
        k9_rec rec = {.thread = a->id, .index = i};
        if (store_put(a->s, k, (const unsigned char *)k, strlen(k), 0, -1, NULL, &rec.rev, NULL))
            _exit(3);
        if (write(a->fd, &rec, sizeof(rec)) != (ssize_t)sizeof(rec))
            _exit(4);
    }
    return NULL;
}

static void k9_child(const char *path, int fd)
{
    store *s = NULL;
    if (open_at(path, 0, &s))
        _exit(2);
    pthread_t th[K9_THREADS];
    k9_arg args[K9_THREADS];
    for (int i = 0; i < K9_THREADS; i++) {
        args[i] = (k9_arg){.s = s, .id = i, .fd = fd};
        if (pthread_create(&th[i], NULL, k9_writer, &args[i]))
            _exit(5);
    }
    for (;;)
        pause();
}

static void test_kill9_durability(void **state)
{
    char path[PATH_MAX];
    new_path(path, sizeof(path));
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        k9_child(path, fds[1]);
    }
    close(fds[1]);
    size_t n = 0, cap = 1024;
    k9_rec *recs = malloc(cap * sizeof(*recs));
    assert_non_null(recs);
    int64_t until = clock_mono_ms(NULL) + WAIT_MS;
    bool killed = false;
    for (;;) {
        if (!killed && (n >= 400 || clock_mono_ms(NULL) > until)) {
            kill(pid, SIGKILL);
            killed = true;
        }
        if (n == cap) {
            cap *= 2;
            recs = realloc(recs, cap * sizeof(*recs));
            assert_non_null(recs);
        }
        ssize_t got = read(fds[0], &recs[n], sizeof(*recs));
        if (got == 0)
            break; /* the child is gone and every ack it sent has been read */
        if (got < 0 && errno == EINTR)
            continue;
        assert_int_equal(got, sizeof(*recs));
        n++;
    }
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    assert_true(n >= 400);

    store *s = must_open(path, 0);
    int64_t maxrev = 0;
    for (size_t i = 0; i < n; i++) {
        char k[32];
        snprintf(k, sizeof(k), "k9/%d/%06d", recs[i].thread, recs[i].index);
        kv_range_req q = {.key = k};
        kv_range_res r;
        assert_int_equal(store_range(s, &q, &r), 0);
        if (r.count != 1 || r.items[0].mod_revision != recs[i].rev)
            fail_msg("acknowledged write %s at revision %lld lost", k, (long long)recs[i].rev);
        kv_range_res_free(&r);
        maxrev = recs[i].rev > maxrev ? recs[i].rev : maxrev;
    }
    assert_true(rev_now(s) >= maxrev);
    print_message("kill -9: %zu acknowledged writes all present after reopen (revision %lld)\n", n,
                  (long long)rev_now(s));
    free(recs);
    store_close(s);
    remove_db(path);
}

/* ---- main ---------------------------------------------------------------------------- */

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof(tmpdir), "%s/citrus-store-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    printf("store_sqlite tests in %s (no random seed: tests are deterministic)\n", tmpdir);
    lease_clock = clock_test_new(1000, 1000);

    catalog_conformance_factory f = {.name = "sqlite",
                                     .open = conf_open,
                                     .close = conf_close,
                                     .compact = conf_compact,
                                     .advance_ms = conf_advance};
    int failed = catalog_conformance_run(&f);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_status),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_batch_failure),
        cmocka_unit_test(test_reopen_persists),
        cmocka_unit_test(test_history_keep),
        cmocka_unit_test(test_watch_falls_behind),
        cmocka_unit_test(test_bounded_reads),
        cmocka_unit_test(test_quota),
        cmocka_unit_test(test_restore_roundtrip),
        cmocka_unit_test(test_restore_refuses),
        cmocka_unit_test(test_group_commit),
        cmocka_unit_test(test_many_watchers),
        cmocka_unit_test(test_close_notifies_watchers),
        cmocka_unit_test(test_lease_clock),
        cmocka_unit_test(test_kill9_durability),
    };
    failed += cmocka_run_group_tests_name("store_sqlite", tests, NULL, NULL);
    if (!failed)
        nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    clock_test_free(lease_clock);
    return failed;
}
