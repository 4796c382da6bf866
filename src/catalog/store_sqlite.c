/* catalog/store_sqlite.c — the embedded catalog store: store.h on SQLite.
 *
 * Threads and connections:
 *  - the writer thread owns the write connection. store_txn and the lease
 *    calls enqueue a request and wait; the writer drains the whole queue into
 *    one BEGIN IMMEDIATE … COMMIT (group commit: one fsync for the batch),
 *    each request under its own SAVEPOINT so a failing one leaves nothing;
 *  - the notifier thread feeds watches from the history table, always from
 *    each watcher's next revision up to the committed revision, so catch-up
 *    and live delivery are the same path and cannot lose or repeat events;
 *  - the lease thread expires leases through the writer queue;
 *  - reads use a small pool of reader connections (WAL: they never wait for
 *    the writer and see every commit made before they began).
 *
 * Locks: mu guards the queue, the published revisions and the watcher list;
 * lease_mu guards the in-memory lease expiry table; pool_mu the reader pool.
 * None of them is held while another is taken. */
#include "catalog/store_sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "citrus/errors.h"
#include "obs/log.h"

#define SCHEMA_VERSION 1
#define DEFAULT_HISTORY_KEEP 100000
#define READER_COUNT 4
#define WATCH_CHUNK_REVS 256 /* revisions read per watch group per round */
/* ... and at most about this many bytes of them (whole revisions; at least
 * one): a replay of big values is read a piece at a time */
#define WATCH_CHUNK_BYTES ((size_t)8 * 1024 * 1024)
#define LEASE_TICK_MS 50
#define RETRY_DELAY_MS 100
#define BUSY_TIMEOUT_MS 5000
#define MAX_VALUE_LEN ((size_t)512 * 1024 * 1024)

/* ---- SQL ---------------------------------------------------------------- */

/* Keys are BLOBs everywhere (bound with sqlite3_bind_blob), so comparisons
 * and ORDER BY are memcmp: bytewise. A key never contains a NUL byte, which
 * makes after||x'00' the smallest key greater than after. */
static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB NOT NULL,"
    " create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL, version INTEGER NOT NULL,"
    " lease INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS kv_lease ON kv (lease, key);"
    "CREATE TABLE IF NOT EXISTS history (rev INTEGER NOT NULL, sub INTEGER NOT NULL,"
    " type INTEGER NOT NULL, key BLOB NOT NULL, value BLOB, create_rev INTEGER NOT NULL,"
    " mod_rev INTEGER NOT NULL, version INTEGER NOT NULL, lease INTEGER NOT NULL,"
    " PRIMARY KEY (rev, sub)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS leases (id INTEGER PRIMARY KEY, ttl INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY CHECK (id = 0),"
    " revision INTEGER NOT NULL, compact_revision INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO meta VALUES (0, 1, 1);"
    "PRAGMA user_version = 1;";

#define KV_COLS "key, CASE WHEN ?4 THEN NULL ELSE value END, create_rev, mod_rev, version, lease"

#define STMT_TABLE(X)                                                                              \
    X(BEGIN, "BEGIN")                                                                              \
    X(BEGIN_IMMEDIATE, "BEGIN IMMEDIATE")                                                          \
    X(COMMIT, "COMMIT")                                                                            \
    X(ROLLBACK, "ROLLBACK")                                                                        \
    X(SAVEPOINT, "SAVEPOINT req")                                                                  \
    X(RELEASE, "RELEASE req")                                                                      \
    X(ROLLBACK_TO, "ROLLBACK TO req")                                                              \
    X(META_GET, "SELECT revision, compact_revision FROM meta WHERE id = 0")                        \
    X(META_SET, "UPDATE meta SET revision = ?1, compact_revision = ?2 WHERE id = 0")               \
    X(KV_GET, "SELECT " KV_COLS " FROM kv WHERE key = ?1")                                         \
    X(KV_RANGE, "SELECT " KV_COLS " FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key LIMIT ?3")   \
    X(KV_RANGE_OPEN, "SELECT " KV_COLS " FROM kv WHERE key >= ?1 ORDER BY key LIMIT ?3")           \
    X(KV_COUNT, "SELECT count(*) FROM kv WHERE key >= ?1 AND key < ?2")                            \
    X(KV_COUNT_OPEN, "SELECT count(*) FROM kv WHERE key >= ?1")                                    \
    X(KV_PUT, "INSERT OR REPLACE INTO kv VALUES (?1, ?2, ?3, ?4, ?5, ?6)")                         \
    X(KV_DEL, "DELETE FROM kv WHERE key = ?1")                                                     \
    X(KV_KEYS, "SELECT key FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key")                     \
    X(KV_KEYS_OPEN, "SELECT key FROM kv WHERE key >= ?1 ORDER BY key")                             \
    X(KV_DEL_RANGE, "DELETE FROM kv WHERE key >= ?1 AND key < ?2")                                 \
    X(KV_DEL_RANGE_OPEN, "DELETE FROM kv WHERE key >= ?1")                                         \
    X(KV_KEYS_LEASE, "SELECT key FROM kv WHERE lease = ?1 ORDER BY key")                           \
    X(KV_DEL_LEASE, "DELETE FROM kv WHERE lease = ?1")                                             \
    X(HIST_PUT, "INSERT INTO history VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")                 \
    X(HIST_READ, "SELECT type, key, value, create_rev, mod_rev, version, lease FROM history"       \
                 " WHERE rev >= ?1 AND rev <= ?2 ORDER BY rev, sub")                               \
    X(HIST_TRIM, "DELETE FROM history WHERE rev < ?1")                                             \
    X(LEASE_GET, "SELECT ttl FROM leases WHERE id = ?1")                                           \
    X(LEASE_PUT, "INSERT INTO leases VALUES (?1, ?2)")                                             \
    X(LEASE_DEL, "DELETE FROM leases WHERE id = ?1")                                               \
    X(LEASE_ALL, "SELECT id, ttl FROM leases ORDER BY id")                                         \
    X(PAGES_USED, "SELECT (SELECT page_count FROM pragma_page_count()) -"                          \
                  " (SELECT freelist_count FROM pragma_freelist_count()),"                         \
                  " (SELECT page_count FROM pragma_page_count()),"                                 \
                  " (SELECT page_size FROM pragma_page_size())")

typedef enum {
#define STMT_ENUM(name, sql) ST_##name,
    STMT_TABLE(STMT_ENUM)
#undef STMT_ENUM
        ST_COUNT
} stmt_id;

/* Some rows are concatenated literals, which the check mistakes for commas. */
static const char *const stmt_sql[ST_COUNT] = {
#define STMT_SQL(name, sql) sql,
    STMT_TABLE(STMT_SQL) // NOLINT(bugprone-suspicious-missing-comma)
#undef STMT_SQL
};

/* ---- types -------------------------------------------------------------- */

/* A connection with its prepared statements; used by one thread at a time. */
typedef struct conn {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
} conn;

typedef enum { REQ_TXN, REQ_GRANT, REQ_REVOKE, REQ_COMPACT, REQ_DEFRAG } req_kind;

/* A queued write. Synchronous ones live on the waiting caller's stack;
 * asynchronous ones (cb set) are heap-allocated and freed after cb runs. */
typedef struct write_req {
    req_kind kind;
    const kv_txn *txn; /* REQ_TXN */
    kv_txn_res *res;   /* REQ_TXN */
    int64_t lease_id;  /* REQ_GRANT: out; REQ_REVOKE: in; REQ_COMPACT: the revision */
    int64_t ttl;       /* REQ_GRANT */
    int rc;
    bool done;       /* guarded by mu */
    store_txn_cb cb; /* async completion, or NULL */
    void *cb_ctx;
    struct write_req *next;
} write_req;

typedef struct lease_slot {
    int64_t id, ttl, expires_ms;
} lease_slot;

typedef struct sqlite_store sqlite_store;

struct store_watch {
    sqlite_store *owner;
    char *prefix;
    size_t prefix_len;
    store_watch_cb cb;
    void *ctx;
    int64_t next_rev; /* guarded by mu; written only by the notifier after open */
    int pins;         /* > 0 while the notifier delivers to it; guarded by mu */
    bool dead;        /* a final err was delivered; guarded by mu */
    bool orphan;      /* closed from a callback while pinned: notifier frees it */
    atomic_bool closing;
    store_watch *prev, *next;
};

struct sqlite_store {
    store base;
    char *path;
    int lock_fd; /* holds the flock that keeps the file to this store */
    int64_t history_keep;
    const sysclock *clock;

    conn wconn; /* writer thread only (and open/close) */
    conn nconn; /* notifier thread only */
    conn readers[READER_COUNT];
    conn *free_readers[READER_COUNT];
    int nreaders, nfree;
    bool pool_closing;
    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cond;

    pthread_mutex_t mu;
    pthread_cond_t writer_cond, done_cond, notify_cond, watch_cond, lease_cond;
    write_req *q_head, *q_tail;
    int inflight; /* callers inside writer_submit */
    bool stopping, healthy;
    int64_t committed_rev, compact_rev; /* published after each commit */
    uint64_t commits;
    store_watch *watchers;

    pthread_mutex_t lease_mu;
    lease_slot *leases; /* sorted by id */
    size_t nleases, cap_leases;

    /* Writer-thread state: revisions including the batch being built. */
    int64_t w_rev, w_compact;

    /* The quota (0: none). nospace is the alarm: raised by a write that
     * would pass quota, cleared only by a compact or defrag that finds the
     * pages in use back under it. The sizes are refreshed after each commit. */
    int64_t quota;
    atomic_bool nospace;
    _Atomic int64_t used_bytes, file_bytes;

    bool sync_ready;
    pthread_t writer_th, notify_th, lease_th;
    bool writer_started, notify_started, lease_started;
};

/* The revision being written by one txn, and its events so far. */
typedef struct txn_ctx {
    int64_t rev;
    int64_t sub;
    bool wrote;
    size_t max_get_bytes, get_bytes; /* kv_txn.max_get_bytes, and the gets' so far */
} txn_ctx;

/* One history row to insert; key and value are not NUL-terminated. */
typedef struct hist_row {
    kv_event_type type;
    const void *key;
    size_t key_len;
    const void *value; /* NULL for deletes */
    size_t value_len;
    int64_t create_rev, version, lease;
} hist_row;

/* Bounds of a prefix scan: [lo, hi), or [lo, ∞) when !has_hi. */
typedef struct key_bounds {
    const char *lo;
    size_t lo_len;
    char *hi;
    size_t hi_len;
    bool has_hi;
} key_bounds;

typedef struct event_buf {
    kv_event *ev;
    size_t n, cap;
} event_buf;

typedef struct watch_pin {
    store_watch *w;
    int64_t next;
    int err;
} watch_pin;

static const store_ops sqlite_ops;

/* ---- small helpers ------------------------------------------------------ */

static void report_error(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_emit(LOG_ERROR, "store_sqlite", msg, NULL);
}

static int bytes_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int r = n ? memcmp(a, b, n) : 0;
    if (r)
        return r;
    return alen < blen ? -1 : alen > blen;
}

static int i64_cmp(int64_t a, int64_t b)
{
    return a < b ? -1 : a > b;
}

/* ---- connections and statements ----------------------------------------- */

static int conn_fail(conn *c, const char *what)
{
    report_error("%s: %s", what, sqlite3_errmsg(c->db));
    return CITRUS_EIO;
}

/* Statement id of c, prepared on first use. Callers reset it after use. */
static sqlite3_stmt *conn_stmt(conn *c, stmt_id id)
{
    if (!c->st[id] && sqlite3_prepare_v3(c->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                         &c->st[id], NULL) != SQLITE_OK) {
        conn_fail(c, stmt_sql[id]);
        return NULL;
    }
    return c->st[id];
}

static void stmt_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Runs a bound statement that returns no rows, then resets it. */
static int stmt_run(conn *c, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : conn_fail(c, sqlite3_sql(st));
    stmt_done(st);
    return rc;
}

static int exec_id(conn *c, stmt_id id)
{
    sqlite3_stmt *st = conn_stmt(c, id);
    return st ? stmt_run(c, st) : CITRUS_EIO;
}

/* Binds bytes as a BLOB; an empty value is an empty BLOB, never NULL. */
static void bind_bytes(sqlite3_stmt *st, int i, const void *p, size_t n)
{
    sqlite3_bind_blob(st, i, n ? p : "", (int)n, SQLITE_STATIC);
}

static void bind_key(sqlite3_stmt *st, int i, const char *key)
{
    bind_bytes(st, i, key, strlen(key));
}

static void conn_close(conn *c)
{
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(c->st[i]);
    if (c->db && sqlite3_close(c->db) != SQLITE_OK)
        report_error("close: %s", sqlite3_errmsg(c->db));
    memset(c, 0, sizeof(*c));
}

static int conn_open(conn *c, const char *path, bool reader, errdetail *err)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (reader ? 0 : SQLITE_OPEN_CREATE);
    int rc = sqlite3_open_v2(path, &c->db, flags, NULL);
    if (rc != SQLITE_OK)
        return errdetail_set(err, CITRUS_EIO, "sqlite open %s: %s", path,
                             c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
    sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
    const char *pragmas = reader ? "PRAGMA query_only = ON" : "PRAGMA synchronous = FULL";
    if (sqlite3_exec(c->db, pragmas, NULL, NULL, NULL) != SQLITE_OK)
        return errdetail_set(err, CITRUS_EIO, "sqlite %s on %s: %s", pragmas, path,
                             sqlite3_errmsg(c->db));
    return 0;
}

/* The single integer or text result of a PRAGMA, as text in buf. */
static int pragma_text(conn *c, const char *sql, char *buf, size_t len)
{
    sqlite3_stmt *st = NULL;
    int rc = CITRUS_EIO;
    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(buf, len, "%s", t ? (const char *)t : "");
        rc = 0;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Creates the tables (idempotent) after checking the schema version. */
static int schema_init(conn *c, bool wal, errdetail *err)
{
    char v[32];
    if (pragma_text(c, "PRAGMA user_version", v, sizeof(v)) < 0 || atoi(v) > SCHEMA_VERSION)
        return errdetail_set(err, CITRUS_EIO,
                             "sqlite: unreadable or unsupported schema version (%s)",
                             sqlite3_errmsg(c->db));
    if (wal &&
        (pragma_text(c, "PRAGMA journal_mode = WAL", v, sizeof(v)) < 0 || strcmp(v, "wal") != 0))
        return errdetail_set(err, CITRUS_EIO, "sqlite: cannot enable WAL mode: %s",
                             sqlite3_errmsg(c->db));
    if (sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(c->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        errdetail_set(err, CITRUS_EIO, "sqlite: creating schema: %s", sqlite3_errmsg(c->db));
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        return CITRUS_EIO;
    }
    return 0;
}

static int meta_read(conn *c, int64_t *rev, int64_t *compact)
{
    sqlite3_stmt *st = conn_stmt(c, ST_META_GET);
    if (!st)
        return CITRUS_EIO;
    int rc = CITRUS_EIO;
    if (sqlite3_step(st) == SQLITE_ROW) {
        *rev = sqlite3_column_int64(st, 0);
        if (compact)
            *compact = sqlite3_column_int64(st, 1);
        rc = 0;
    } else {
        conn_fail(c, "reading meta");
    }
    stmt_done(st);
    return rc;
}

static int meta_write(conn *c, int64_t rev, int64_t compact)
{
    sqlite3_stmt *st = conn_stmt(c, ST_META_SET);
    if (!st)
        return CITRUS_EIO;
    sqlite3_bind_int64(st, 1, rev);
    sqlite3_bind_int64(st, 2, compact);
    return stmt_run(c, st);
}

/* ---- reading keys -------------------------------------------------------- */

static int bounds_init(key_bounds *b, const char *prefix, const char *after)
{
    size_t plen = strlen(prefix);
    b->hi = malloc(plen + 1);
    if (!b->hi)
        return CITRUS_ENOMEM;
    b->has_hi = store_prefix_end(prefix, b->hi);
    b->hi_len = strlen(b->hi);
    b->lo = prefix;
    b->lo_len = plen;
    if (after) {
        size_t alen = strlen(after) + 1; /* with its NUL: the smallest key above after */
        if (bytes_cmp(after, alen, prefix, plen) > 0) {
            b->lo = after;
            b->lo_len = alen;
        }
    }
    return 0;
}

static void bounds_bind(sqlite3_stmt *st, const key_bounds *b)
{
    bind_bytes(st, 1, b->lo, b->lo_len);
    if (b->has_hi)
        bind_bytes(st, 2, b->hi, b->hi_len);
}

/* Copies the row's columns key, value, create, mod, version, lease. */
static int entry_from_row(sqlite3_stmt *st, kv_entry *e)
{
    const void *k = sqlite3_column_blob(st, 0);
    size_t klen = (size_t)sqlite3_column_bytes(st, 0);
    const void *v = sqlite3_column_blob(st, 1);
    size_t vlen = (size_t)sqlite3_column_bytes(st, 1);
    e->key = malloc(klen + 1);
    if (!e->key)
        return CITRUS_ENOMEM;
    if (klen)
        memcpy(e->key, k, klen);
    e->key[klen] = '\0';
    if (vlen) {
        e->value = malloc(vlen);
        if (!e->value)
            return CITRUS_ENOMEM;
        memcpy(e->value, v, vlen);
        e->value_len = vlen;
    }
    e->create_revision = sqlite3_column_int64(st, 2);
    e->mod_revision = sqlite3_column_int64(st, 3);
    e->version = sqlite3_column_int64(st, 4);
    e->lease = sqlite3_column_int64(st, 5);
    return 0;
}

static kv_entry *range_push(kv_range_res *r, size_t *cap)
{
    if (r->count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        kv_entry *items = realloc(r->items, ncap * sizeof(*items));
        if (!items)
            return NULL;
        r->items = items;
        *cap = ncap;
    }
    kv_entry *e = &r->items[r->count++];
    memset(e, 0, sizeof(*e));
    return e;
}

/* Steps a bound KV_* select into out, at most limit items (0: all) and
 * items of at most max_bytes together (kv_range_req.max_bytes; 0: no bound;
 * the first item always comes). *used (may be NULL) gets their size, or
 * SIZE_MAX when max_bytes cut the list. */
static int range_collect(conn *c, sqlite3_stmt *st, size_t limit, size_t max_bytes, bool values,
                         kv_range_res *out, size_t *used)
{
    size_t cap = out->count, bytes = 0;
    int rc = 0, src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        size_t sz = kv_entry_wire_size((size_t)sqlite3_column_bytes(st, 0),
                                       (size_t)sqlite3_column_bytes(st, 1), values);
        if (limit && out->count == limit) {
            out->more = true;
            break;
        }
        if (max_bytes && out->count && bytes + sz > max_bytes) {
            out->more = true;
            bytes = SIZE_MAX;
            break;
        }
        bytes += sz;
        kv_entry *e = range_push(out, &cap);
        rc = e ? entry_from_row(st, e) : CITRUS_ENOMEM;
        if (rc < 0)
            break;
    }
    if (rc == 0 && src != SQLITE_ROW && src != SQLITE_DONE)
        rc = conn_fail(c, "range");
    stmt_done(st);
    if (used)
        *used = bytes;
    return rc;
}

static int range_get_one(conn *c, const char *key, bool keys_only, kv_range_res *out)
{
    sqlite3_stmt *st = conn_stmt(c, ST_KV_GET);
    if (!st)
        return CITRUS_EIO;
    bind_key(st, 1, key);
    sqlite3_bind_int(st, 4, keys_only);
    return range_collect(c, st, 0, 0, !keys_only, out, NULL);
}

/* How many keys a count_only read matches (bounds bound). */
static int range_count(conn *c, const key_bounds *b, kv_range_res *out)
{
    sqlite3_stmt *st = conn_stmt(c, b->has_hi ? ST_KV_COUNT : ST_KV_COUNT_OPEN);
    if (!st)
        return CITRUS_EIO;
    bounds_bind(st, b);
    int rc = 0;
    if (sqlite3_step(st) == SQLITE_ROW)
        out->count = (size_t)sqlite3_column_int64(st, 0);
    else
        rc = conn_fail(c, "count");
    stmt_done(st);
    return rc;
}

/* Reads a key or prefix on c, inside whatever transaction c has open;
 * *used (may be NULL) gets the items' kv_entry_wire_size total. */
static int range_read(conn *c, const kv_range_req *req, kv_range_res *out, size_t *used)
{
    if (used)
        *used = 0;
    if (!req->prefix) {
        int rc = range_get_one(c, req->key, req->keys_only || req->count_only, out);
        if (rc == 0 && used && out->count && !req->count_only)
            *used = kv_entry_wire_size(strlen(out->items[0].key), out->items[0].value_len,
                                       !req->keys_only);
        if (rc == 0 && req->count_only) { /* 0 or 1, without the item */
            for (size_t i = 0; i < out->count; i++)
                kv_entry_clear(&out->items[i]);
            free(out->items);
            out->items = NULL;
        }
        return rc;
    }
    key_bounds b;
    int rc = bounds_init(&b, req->key, req->after);
    if (rc < 0)
        return rc;
    if (req->count_only) {
        rc = range_count(c, &b, out);
        free(b.hi);
        return rc;
    }
    sqlite3_stmt *st = conn_stmt(c, b.has_hi ? ST_KV_RANGE : ST_KV_RANGE_OPEN);
    if (st) {
        bounds_bind(st, &b);
        int64_t lim = req->limit && req->limit < (size_t)INT64_MAX ? (int64_t)req->limit + 1 : -1;
        sqlite3_bind_int64(st, 3, lim);
        sqlite3_bind_int(st, 4, req->keys_only);
        rc = range_collect(c, st, req->limit, req->max_bytes, !req->keys_only, out, used);
    } else {
        rc = CITRUS_EIO;
    }
    free(b.hi);
    return rc;
}

/* ---- reader pool ---------------------------------------------------------- */

static conn *reader_acquire(sqlite_store *s)
{
    conn *c = NULL;
    pthread_mutex_lock(&s->pool_mu);
    while (!s->pool_closing && s->nfree == 0)
        pthread_cond_wait(&s->pool_cond, &s->pool_mu);
    if (!s->pool_closing)
        c = s->free_readers[--s->nfree];
    pthread_mutex_unlock(&s->pool_mu);
    return c;
}

static void reader_release(sqlite_store *s, conn *c)
{
    pthread_mutex_lock(&s->pool_mu);
    s->free_readers[s->nfree++] = c;
    pthread_cond_broadcast(&s->pool_cond);
    pthread_mutex_unlock(&s->pool_mu);
}

typedef int (*read_fn)(sqlite_store *s, conn *c, void *arg);

/* Runs fn inside one read transaction on a pooled reader connection. */
static int read_txn(sqlite_store *s, read_fn fn, void *arg)
{
    conn *c = reader_acquire(s);
    if (!c)
        return CITRUS_ECLOSED;
    int rc = exec_id(c, ST_BEGIN);
    if (rc == 0) {
        rc = fn(s, c, arg);
        int end = exec_id(c, ST_COMMIT);
        if (rc == 0)
            rc = end;
    }
    reader_release(s, c);
    return rc;
}

/* ---- leases in memory ------------------------------------------------------ */

static size_t lease_pos(const sqlite_store *s, int64_t id)
{
    size_t lo = 0, hi = s->nleases;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->leases[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static lease_slot *lease_find(sqlite_store *s, int64_t id)
{
    size_t i = lease_pos(s, id);
    return i < s->nleases && s->leases[i].id == id ? &s->leases[i] : NULL;
}

static int lease_set(sqlite_store *s, int64_t id, int64_t ttl, int64_t expires)
{
    lease_slot *l = lease_find(s, id);
    if (!l) {
        if (s->nleases == s->cap_leases) {
            size_t ncap = s->cap_leases ? s->cap_leases * 2 : 16;
            lease_slot *n = realloc(s->leases, ncap * sizeof(*n));
            if (!n)
                return CITRUS_ENOMEM;
            s->leases = n;
            s->cap_leases = ncap;
        }
        size_t i = lease_pos(s, id);
        memmove(&s->leases[i + 1], &s->leases[i], (s->nleases - i) * sizeof(*l));
        s->nleases++;
        l = &s->leases[i];
    }
    *l = (lease_slot){.id = id, .ttl = ttl, .expires_ms = expires};
    return 0;
}

static void lease_unset(sqlite_store *s, int64_t id)
{
    size_t i = lease_pos(s, id);
    if (i < s->nleases && s->leases[i].id == id) {
        memmove(&s->leases[i], &s->leases[i + 1], (s->nleases - i - 1) * sizeof(lease_slot));
        s->nleases--;
    }
}

/* Seconds left on a lease, rounded up; 0 when unknown or expiring. */
static int64_t lease_remaining(sqlite_store *s, int64_t id, int64_t now)
{
    pthread_mutex_lock(&s->lease_mu);
    lease_slot *l = lease_find(s, id);
    int64_t left = l ? l->expires_ms - now : 0;
    pthread_mutex_unlock(&s->lease_mu);
    return left > 0 ? (left + 999) / 1000 : 0;
}

/* ---- writing: history and ops --------------------------------------------- */

static int history_add(conn *w, txn_ctx *t, const hist_row *h)
{
    sqlite3_stmt *st = conn_stmt(w, ST_HIST_PUT);
    if (!st)
        return CITRUS_EIO;
    sqlite3_bind_int64(st, 1, t->rev);
    sqlite3_bind_int64(st, 2, t->sub);
    sqlite3_bind_int(st, 3, (int)h->type);
    bind_bytes(st, 4, h->key, h->key_len);
    if (h->value)
        bind_bytes(st, 5, h->value, h->value_len);
    else
        sqlite3_bind_null(st, 5);
    sqlite3_bind_int64(st, 6, h->create_rev);
    sqlite3_bind_int64(st, 7, t->rev);
    sqlite3_bind_int64(st, 8, h->version);
    sqlite3_bind_int64(st, 9, h->lease);
    int rc = stmt_run(w, st);
    if (rc == 0) {
        t->sub++;
        t->wrote = true;
    }
    return rc;
}

static int lease_exists(conn *w, int64_t id, bool *found)
{
    sqlite3_stmt *st = conn_stmt(w, ST_LEASE_GET);
    if (!st)
        return CITRUS_EIO;
    sqlite3_bind_int64(st, 1, id);
    int src = sqlite3_step(st);
    int rc = src == SQLITE_ROW || src == SQLITE_DONE ? 0 : conn_fail(w, "lease lookup");
    *found = src == SQLITE_ROW;
    stmt_done(st);
    return rc;
}

/* The key's current create_revision and version (0, 0 when absent). */
static int kv_state(conn *w, const char *key, int64_t *create, int64_t *version)
{
    kv_range_res cur = {0};
    int rc = range_get_one(w, key, true, &cur);
    *create = cur.count ? cur.items[0].create_revision : 0;
    *version = cur.count ? cur.items[0].version : 0;
    kv_range_res_free(&cur);
    return rc;
}

static int op_put(sqlite_store *s, txn_ctx *t, const kv_op *op, kv_op_result *res)
{
    conn *w = &s->wconn;
    bool found = true;
    int64_t create = 0, version = 0;
    int rc = op->lease ? lease_exists(w, op->lease, &found) : 0;
    if (rc == 0 && !found)
        rc = CITRUS_ENOLEASE;
    if (rc == 0)
        rc = kv_state(w, op->key, &create, &version);
    if (rc < 0)
        return rc;
    create = version ? create : t->rev;
    version++;
    sqlite3_stmt *st = conn_stmt(w, ST_KV_PUT);
    if (!st)
        return CITRUS_EIO;
    bind_key(st, 1, op->key);
    bind_bytes(st, 2, op->value, op->value_len);
    sqlite3_bind_int64(st, 3, create);
    sqlite3_bind_int64(st, 4, t->rev);
    sqlite3_bind_int64(st, 5, version);
    sqlite3_bind_int64(st, 6, op->lease);
    rc = stmt_run(w, st);
    hist_row h = {.type = KV_EVENT_PUT,
                  .key = op->key,
                  .key_len = strlen(op->key),
                  .value = op->value_len ? (const void *)op->value : "",
                  .value_len = op->value_len,
                  .create_rev = create,
                  .version = version,
                  .lease = op->lease};
    if (rc == 0)
        rc = history_add(w, t, &h);
    res->create_revision = create;
    res->mod_revision = t->rev;
    res->version = version;
    return rc;
}

/* Records a delete event for each key that sel yields, then runs del. */
static int delete_rows(conn *w, txn_ctx *t, sqlite3_stmt *sel, sqlite3_stmt *del, int64_t *deleted)
{
    int rc = 0, src = SQLITE_DONE;
    int64_t n = 0;
    while (rc == 0 && (src = sqlite3_step(sel)) == SQLITE_ROW) {
        hist_row h = {.type = KV_EVENT_DELETE, .key = sqlite3_column_blob(sel, 0)};
        h.key_len = (size_t)sqlite3_column_bytes(sel, 0);
        rc = history_add(w, t, &h);
        n++;
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = conn_fail(w, "selecting keys to delete");
    stmt_done(sel);
    if (rc == 0)
        rc = stmt_run(w, del);
    else
        stmt_done(del);
    *deleted = n;
    return rc;
}

static int delete_key(conn *w, txn_ctx *t, const char *key, int64_t *deleted)
{
    sqlite3_stmt *st = conn_stmt(w, ST_KV_DEL);
    if (!st)
        return CITRUS_EIO;
    bind_key(st, 1, key);
    int rc = stmt_run(w, st);
    *deleted = rc == 0 ? sqlite3_changes(w->db) : 0;
    hist_row h = {.type = KV_EVENT_DELETE, .key = key, .key_len = strlen(key)};
    if (rc == 0 && *deleted)
        rc = history_add(w, t, &h);
    return rc;
}

static int op_delete(sqlite_store *s, txn_ctx *t, const kv_op *op, kv_op_result *res)
{
    conn *w = &s->wconn;
    if (!op->prefix)
        return delete_key(w, t, op->key, &res->deleted);
    key_bounds b;
    int rc = bounds_init(&b, op->key, NULL);
    if (rc < 0)
        return rc;
    sqlite3_stmt *sel = conn_stmt(w, b.has_hi ? ST_KV_KEYS : ST_KV_KEYS_OPEN);
    sqlite3_stmt *del = conn_stmt(w, b.has_hi ? ST_KV_DEL_RANGE : ST_KV_DEL_RANGE_OPEN);
    if (sel && del) {
        bounds_bind(sel, &b);
        bounds_bind(del, &b);
        rc = delete_rows(w, t, sel, del, &res->deleted);
    } else {
        rc = CITRUS_EIO;
    }
    free(b.hi);
    return rc;
}

static int op_get(sqlite_store *s, txn_ctx *t, const kv_op *op, kv_op_result *res)
{
    kv_range_req req = {.key = op->key,
                        .prefix = op->prefix,
                        .after = op->after,
                        .limit = op->limit,
                        .keys_only = op->keys_only};
    res->range.revision = t->wrote ? t->rev : s->w_rev;
    if (!t->max_get_bytes)
        return range_read(&s->wconn, &req, &res->range, NULL);
    /* the txn's answer is bounded: a get that does not fit fails it (its
     * savepoint rolls back every write made so far) */
    size_t used;
    req.max_bytes = t->max_get_bytes > t->get_bytes ? t->max_get_bytes - t->get_bytes : 1;
    int rc = range_read(&s->wconn, &req, &res->range, &used);
    if (rc == 0 && (used == SIZE_MAX || t->get_bytes + used > t->max_get_bytes))
        rc = CITRUS_ERESPTOOBIG;
    t->get_bytes += rc == 0 ? used : 0;
    return rc;
}

static int op_apply(sqlite_store *s, txn_ctx *t, const kv_op *op, kv_op_result *res)
{
    res->type = op->type;
    switch (op->type) {
    case KV_OP_PUT:
        return op_put(s, t, op, res);
    case KV_OP_DELETE:
        return op_delete(s, t, op, res);
    case KV_OP_GET:
        return op_get(s, t, op, res);
    }
    return CITRUS_EINVAL;
}

static bool cmp_holds(kv_cmp_op op, int r)
{
    switch (op) {
    case KV_CMP_EQ:
        return r == 0;
    case KV_CMP_NE:
        return r != 0;
    case KV_CMP_LT:
        return r < 0;
    case KV_CMP_GT:
        return r > 0;
    }
    return false;
}

/* Evaluates one compare against the state including earlier writes. */
static int compare_eval(conn *w, const kv_compare *c, bool *ok)
{
    kv_range_res cur = {0};
    int rc = range_get_one(w, c->key, c->target != KV_CMP_VALUE, &cur);
    if (rc < 0) {
        kv_range_res_free(&cur);
        return rc;
    }
    kv_entry none = {0};
    const kv_entry *e = cur.count ? &cur.items[0] : &none;
    int r = 0;
    switch (c->target) {
    case KV_CMP_VALUE:
        r = bytes_cmp(e->value, e->value_len, c->value, c->value_len);
        break;
    case KV_CMP_MOD:
        r = i64_cmp(e->mod_revision, c->number);
        break;
    case KV_CMP_CREATE:
        r = i64_cmp(e->create_revision, c->number);
        break;
    case KV_CMP_VERSION:
        r = i64_cmp(e->version, c->number);
        break;
    case KV_CMP_LEASE:
        r = i64_cmp(e->lease, c->number);
        break;
    }
    *ok = cmp_holds(c->op, r);
    kv_range_res_free(&cur);
    return 0;
}

static int txn_apply(sqlite_store *s, const kv_txn *txn, kv_txn_res *res)
{
    bool ok = true;
    for (size_t i = 0; ok && i < txn->ncompares; i++) {
        int rc = compare_eval(&s->wconn, &txn->compares[i], &ok);
        if (rc < 0)
            return rc;
    }
    const kv_op *ops = ok ? txn->success : txn->failure;
    size_t n = ok ? txn->nsuccess : txn->nfailure;
    res->succeeded = ok;
    if (n) {
        res->results = calloc(n, sizeof(*res->results));
        if (!res->results)
            return CITRUS_ENOMEM;
        res->count = n;
    }
    txn_ctx t = {.rev = s->w_rev + 1, .max_get_bytes = txn->max_get_bytes};
    for (size_t i = 0; i < n; i++) {
        int rc = op_apply(s, &t, &ops[i], &res->results[i]);
        if (rc < 0)
            return rc;
    }
    if (t.wrote)
        s->w_rev = t.rev;
    res->revision = s->w_rev;
    return 0;
}

static int64_t lease_random_id(void)
{
    uint64_t u = 0;
    while (u == 0) {
        if (getrandom(&u, sizeof(u), 0) != (ssize_t)sizeof(u))
            u = (uint64_t)clock_mono_ms(NULL) * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)&u;
        u >>= 1; /* positive 63-bit */
    }
    return (int64_t)u;
}

static int lease_grant_apply(sqlite_store *s, write_req *r)
{
    conn *w = &s->wconn;
    for (int tries = 0; tries < 16; tries++) {
        int64_t id = lease_random_id();
        bool found;
        int rc = lease_exists(w, id, &found);
        if (rc < 0)
            return rc;
        if (found)
            continue;
        sqlite3_stmt *st = conn_stmt(w, ST_LEASE_PUT);
        if (!st)
            return CITRUS_EIO;
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, r->ttl);
        r->lease_id = id;
        return stmt_run(w, st);
    }
    return CITRUS_EINTERNAL;
}

/* Deletes the lease and, in one revision, every key attached to it. */
static int lease_revoke_apply(sqlite_store *s, int64_t id)
{
    conn *w = &s->wconn;
    bool found;
    int rc = lease_exists(w, id, &found);
    if (rc < 0)
        return rc;
    if (!found)
        return CITRUS_ENOLEASE;
    sqlite3_stmt *sel = conn_stmt(w, ST_KV_KEYS_LEASE);
    sqlite3_stmt *del = conn_stmt(w, ST_KV_DEL_LEASE);
    sqlite3_stmt *ldel = conn_stmt(w, ST_LEASE_DEL);
    if (!sel || !del || !ldel)
        return CITRUS_EIO;
    sqlite3_bind_int64(sel, 1, id);
    sqlite3_bind_int64(del, 1, id);
    txn_ctx t = {.rev = s->w_rev + 1};
    int64_t n;
    rc = delete_rows(w, &t, sel, del, &n);
    sqlite3_bind_int64(ldel, 1, id);
    if (rc == 0)
        rc = stmt_run(w, ldel);
    else
        stmt_done(ldel);
    if (rc == 0 && t.wrote)
        s->w_rev = t.rev;
    return rc;
}

/* ---- the quota -------------------------------------------------------------- */

/* The bytes of the pages in use (free pages aside: SQLite reuses them) and
 * of the whole file, as c sees the database (its open transaction too). */
static int pages_read(conn *c, int64_t *used, int64_t *file)
{
    sqlite3_stmt *st = conn_stmt(c, ST_PAGES_USED);
    if (!st)
        return CITRUS_EIO;
    int rc = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        int64_t page = sqlite3_column_int64(st, 2);
        *used = sqlite3_column_int64(st, 0) * page;
        *file = sqlite3_column_int64(st, 1) * page;
    } else {
        rc = conn_fail(c, "reading the page count");
    }
    stmt_done(st);
    return rc;
}

/* Writer thread: publishes the sizes; with clear, drops the alarm when the
 * pages in use are back under the quota. */
static void quota_refresh(sqlite_store *s, bool clear)
{
    int64_t used, file;
    if (pages_read(&s->wconn, &used, &file) < 0)
        return;
    atomic_store(&s->used_bytes, used);
    atomic_store(&s->file_bytes, file);
    if (clear && (!s->quota || used < s->quota))
        atomic_store(&s->nospace, false);
}

/* What a write adds at most: its puts' keys and values (twice: the key's
 * row and its history row), or a lease row. 0 when it only deletes or reads. */
static int64_t req_growth(const write_req *r)
{
    if (r->kind == REQ_GRANT)
        return 64;
    if (r->kind != REQ_TXN)
        return 0;
    int64_t n = 0;
    const kv_op *branches[2] = {r->txn->success, r->txn->failure};
    size_t counts[2] = {r->txn->nsuccess, r->txn->nfailure};
    for (size_t b = 0; b < 2; b++)
        for (size_t i = 0; i < counts[b]; i++)
            if (branches[b][i].type == KV_OP_PUT)
                n += 2 * (int64_t)(strlen(branches[b][i].key) + branches[b][i].value_len + 64);
    return n;
}

/* As etcd's quota: a write that could grow the store is refused with
 * CITRUS_ENOSPACE while the alarm is up, and raises it when it would take
 * the pages in use past the quota. Deletes, reads, revokes and compaction
 * always pass, so an operator can make room. */
static int quota_check(sqlite_store *s, const write_req *r)
{
    int64_t grow = s->quota ? req_growth(r) : 0;
    if (!grow)
        return 0;
    if (atomic_load(&s->nospace))
        return CITRUS_ENOSPACE;
    int64_t used, file;
    int rc = pages_read(&s->wconn, &used, &file);
    if (rc < 0)
        return rc;
    if (used + grow <= s->quota)
        return 0;
    if (!atomic_exchange(&s->nospace, true))
        report_error("catalog past its quota (%lld bytes in use + %lld > %lld): NOSPACE alarm "
                     "raised; writes are refused until `citrus kv compact`/`defrag` make room",
                     (long long)used, (long long)grow, (long long)s->quota);
    return CITRUS_ENOSPACE;
}

static int history_trim(sqlite_store *s);

/* Drops the history older than rev (<= 0: the current revision); watches
 * from before it then get CITRUS_ECOMPACTED. */
static int compact_apply(sqlite_store *s, int64_t rev)
{
    if (rev <= 0)
        rev = s->w_rev;
    if (rev > s->w_rev)
        return CITRUS_EINVAL;
    if (rev < s->w_compact)
        return CITRUS_ECOMPACTED;
    int64_t keep = s->history_keep;
    s->history_keep = s->w_rev - rev + 1;
    int rc = history_trim(s);
    s->history_keep = keep;
    return rc;
}

/* ---- the writer ------------------------------------------------------------ */

static int req_dispatch(sqlite_store *s, write_req *r)
{
    int rc = quota_check(s, r);
    if (rc < 0)
        return rc;
    switch (r->kind) {
    case REQ_TXN:
        return txn_apply(s, r->txn, r->res);
    case REQ_GRANT:
        return lease_grant_apply(s, r);
    case REQ_REVOKE:
        return lease_revoke_apply(s, r->lease_id);
    case REQ_COMPACT:
        return compact_apply(s, r->lease_id);
    case REQ_DEFRAG:
        return 0; /* after the commit: VACUUM runs outside a transaction */
    }
    return CITRUS_EINVAL;
}

/* Applies one request under a savepoint. Sets r->rc; returns an error only
 * when the whole batch is lost (SQLite rolled the transaction back). */
static int req_apply(sqlite_store *s, write_req *r)
{
    conn *w = &s->wconn;
    int rc = exec_id(w, ST_SAVEPOINT);
    if (rc < 0)
        return rc;
    int64_t rev0 = s->w_rev;
    r->rc = req_dispatch(s, r);
    if (r->rc == 0)
        return exec_id(w, ST_RELEASE);
    s->w_rev = rev0;
    if (r->kind == REQ_TXN)
        kv_txn_res_free(r->res);
    if (sqlite3_get_autocommit(w->db))
        return CITRUS_EIO;
    rc = exec_id(w, ST_ROLLBACK_TO);
    return rc < 0 ? rc : exec_id(w, ST_RELEASE);
}

/* Drops history older than history_keep revisions. */
static int history_trim(sqlite_store *s)
{
    int64_t oldest = s->w_rev - s->history_keep + 1;
    if (oldest <= s->w_compact)
        return 0;
    sqlite3_stmt *st = conn_stmt(&s->wconn, ST_HIST_TRIM);
    if (!st)
        return CITRUS_EIO;
    sqlite3_bind_int64(st, 1, oldest);
    int rc = stmt_run(&s->wconn, st);
    if (rc == 0)
        s->w_compact = oldest;
    return rc;
}

/* Applies every request of the batch in one transaction and commits it.
 * Returns false (every request failed with CITRUS_EIO) if it did not commit. */
static bool batch_commit(sqlite_store *s, write_req *batch)
{
    conn *w = &s->wconn;
    int64_t rev0 = s->w_rev, compact0 = s->w_compact;
    int rc = exec_id(w, ST_BEGIN_IMMEDIATE);
    for (write_req *r = batch; rc == 0 && r; r = r->next)
        rc = req_apply(s, r);
    if (rc == 0)
        rc = history_trim(s);
    if (rc == 0 && (s->w_rev != rev0 || s->w_compact != compact0))
        rc = meta_write(w, s->w_rev, s->w_compact);
    if (rc == 0)
        rc = exec_id(w, ST_COMMIT);
    if (rc == 0) {
        bool clear = false;
        for (write_req *r = batch; r; r = r->next) {
            if (r->kind == REQ_DEFRAG && r->rc == 0 &&
                sqlite3_exec(w->db, "VACUUM", NULL, NULL, NULL) != SQLITE_OK)
                r->rc = conn_fail(w, "VACUUM");
            clear |= (r->kind == REQ_DEFRAG || r->kind == REQ_COMPACT) && r->rc == 0;
        }
        quota_refresh(s, clear);
        return true;
    }
    if (!sqlite3_get_autocommit(w->db))
        exec_id(w, ST_ROLLBACK);
    s->w_rev = rev0;
    s->w_compact = compact0;
    for (write_req *r = batch; r; r = r->next) {
        if (r->kind == REQ_TXN)
            kv_txn_res_free(r->res);
        r->rc = CITRUS_EIO;
    }
    report_error("group commit of a batch failed; every write in it reported an I/O error");
    return false;
}

/* Mirrors committed grants and revokes into the in-memory lease table. */
static void batch_leases_update(sqlite_store *s, write_req *batch)
{
    int64_t now = clock_mono_ms(s->clock);
    pthread_mutex_lock(&s->lease_mu);
    for (write_req *r = batch; r; r = r->next) {
        if (r->rc < 0)
            continue;
        if (r->kind == REQ_GRANT && lease_set(s, r->lease_id, r->ttl, now + r->ttl * 1000) < 0)
            report_error("out of memory tracking lease %lld", (long long)r->lease_id);
        else if (r->kind == REQ_REVOKE)
            lease_unset(s, r->lease_id);
    }
    pthread_mutex_unlock(&s->lease_mu);
}

/* Under mu: publishes the batch's outcome and wakes its waiters. */
/* Marks every request of a finished batch done and wakes the synchronous
 * waiters; returns the asynchronous ones, chained, for async_complete().
 * mu held. */
static write_req *batch_publish(sqlite_store *s, write_req *batch, bool committed)
{
    if (committed) {
        s->committed_rev = s->w_rev;
        s->compact_rev = s->w_compact;
        s->commits++;
    }
    s->healthy = committed;
    write_req *async = NULL;
    for (write_req *r = batch, *next; r; r = next) {
        next = r->next;
        r->done = true;
        if (r->cb) {
            r->next = async;
            async = r;
        }
    }
    pthread_cond_broadcast(&s->done_cond);
    pthread_cond_signal(&s->notify_cond);
    return async;
}

/* Runs the callbacks of finished asynchronous requests and frees them.
 * Called without mu: a callback may take other locks. */
static void async_complete(sqlite_store *s, write_req *async)
{
    size_t n = 0;
    for (write_req *r = async, *next; r; r = next) {
        next = r->next;
        r->cb(r->cb_ctx, r->rc);
        free(r);
        n++;
    }
    if (n == 0)
        return;
    pthread_mutex_lock(&s->mu);
    s->inflight -= n;
    if (s->inflight == 0 && s->stopping)
        pthread_cond_broadcast(&s->done_cond);
    pthread_mutex_unlock(&s->mu);
}

static void *writer_main(void *arg)
{
    sqlite_store *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->stopping && !s->q_head)
            pthread_cond_wait(&s->writer_cond, &s->mu);
        if (s->stopping)
            break;
        write_req *batch = s->q_head;
        s->q_head = s->q_tail = NULL;
        pthread_mutex_unlock(&s->mu);
        bool committed = batch_commit(s, batch);
        if (committed)
            batch_leases_update(s, batch);
        pthread_mutex_lock(&s->mu);
        write_req *async = batch_publish(s, batch, committed);
        pthread_mutex_unlock(&s->mu);
        async_complete(s, async);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Appends r to the writer's queue; mu held. False when stopping. */
static bool writer_enqueue(sqlite_store *s, write_req *r)
{
    if (s->stopping)
        return false;
    s->inflight++;
    r->next = NULL;
    r->done = false;
    if (s->q_tail)
        s->q_tail->next = r;
    else
        s->q_head = r;
    s->q_tail = r;
    pthread_cond_signal(&s->writer_cond);
    return true;
}

/* Queues r for the writer and waits for its outcome. */
static int writer_submit(sqlite_store *s, write_req *r)
{
    pthread_mutex_lock(&s->mu);
    if (!writer_enqueue(s, r)) {
        pthread_mutex_unlock(&s->mu);
        return CITRUS_ECLOSED;
    }
    while (!r->done)
        pthread_cond_wait(&s->done_cond, &s->mu);
    if (--s->inflight == 0 && s->stopping)
        pthread_cond_broadcast(&s->done_cond);
    pthread_mutex_unlock(&s->mu);
    return r->rc;
}

/* ---- lease expiry ------------------------------------------------------------ */

/* Takes up to max expired leases out of the table. */
static size_t leases_take_expired(sqlite_store *s, int64_t now, lease_slot *out, size_t max)
{
    size_t n = 0, keep = 0;
    pthread_mutex_lock(&s->lease_mu);
    for (size_t i = 0; i < s->nleases; i++) {
        if (n < max && s->leases[i].expires_ms <= now)
            out[n++] = s->leases[i];
        else
            s->leases[keep++] = s->leases[i];
    }
    s->nleases = keep;
    pthread_mutex_unlock(&s->lease_mu);
    return n;
}

static void leases_expire(sqlite_store *s)
{
    lease_slot due[64];
    size_t n = leases_take_expired(s, clock_mono_ms(s->clock), due, 64);
    for (size_t i = 0; i < n; i++) {
        write_req r = {.kind = REQ_REVOKE, .lease_id = due[i].id};
        int rc = writer_submit(s, &r);
        if (rc == CITRUS_ECLOSED)
            return;
        if (rc < 0 && rc != CITRUS_ENOLEASE) { /* retry on a later tick */
            pthread_mutex_lock(&s->lease_mu);
            lease_set(s, due[i].id, due[i].ttl, due[i].expires_ms);
            pthread_mutex_unlock(&s->lease_mu);
        }
    }
}

static void *lease_main(void *arg)
{
    sqlite_store *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        struct timespec ts = clock_cond_deadline(LEASE_TICK_MS);
        pthread_cond_timedwait(&s->lease_cond, &s->mu, &ts);
        if (s->stopping)
            break;
        pthread_mutex_unlock(&s->mu);
        leases_expire(s);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- watches: the notifier ---------------------------------------------------- */

static void event_buf_free(event_buf *b)
{
    for (size_t i = 0; i < b->n; i++)
        kv_entry_clear(&b->ev[i].kv);
    free(b->ev);
    memset(b, 0, sizeof(*b));
}

static int event_from_row(sqlite3_stmt *st, event_buf *b)
{
    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 64;
        kv_event *ev = realloc(b->ev, ncap * sizeof(*ev));
        if (!ev)
            return CITRUS_ENOMEM;
        b->ev = ev;
        b->cap = ncap;
    }
    kv_event *e = &b->ev[b->n++];
    memset(e, 0, sizeof(*e));
    e->type = sqlite3_column_int(st, 0) == KV_EVENT_DELETE ? KV_EVENT_DELETE : KV_EVENT_PUT;
    /* columns 1..6 are key, value, create, mod, version, lease */
    const void *k = sqlite3_column_blob(st, 1);
    size_t klen = (size_t)sqlite3_column_bytes(st, 1);
    const void *v = sqlite3_column_blob(st, 2);
    size_t vlen = (size_t)sqlite3_column_bytes(st, 2);
    e->kv.key = malloc(klen + 1);
    e->kv.value = vlen ? malloc(vlen) : NULL;
    if (!e->kv.key || (vlen && !e->kv.value))
        return CITRUS_ENOMEM;
    if (klen)
        memcpy(e->kv.key, k, klen);
    e->kv.key[klen] = '\0';
    if (vlen)
        memcpy(e->kv.value, v, vlen);
    e->kv.value_len = vlen;
    e->kv.create_revision = sqlite3_column_int64(st, 3);
    e->kv.mod_revision = sqlite3_column_int64(st, 4);
    e->kv.version = sqlite3_column_int64(st, 5);
    e->kv.lease = sqlite3_column_int64(st, 6);
    return 0;
}

/* Reads events of revisions [from, *to] in one read transaction, or
 * CITRUS_ECOMPACTED when from is older than the kept history. Stops after
 * the first whole revision that takes it past WATCH_CHUNK_BYTES, and then
 * lowers *to to that revision. */
static int history_read(conn *c, int64_t from, int64_t *to, event_buf *out)
{
    int64_t rev, compact;
    int rc = meta_read(c, &rev, &compact);
    if (rc == 0 && from < compact)
        rc = CITRUS_ECOMPACTED;
    sqlite3_stmt *st = rc == 0 ? conn_stmt(c, ST_HIST_READ) : NULL;
    if (rc < 0 || !st)
        return rc < 0 ? rc : CITRUS_EIO;
    sqlite3_bind_int64(st, 1, from);
    sqlite3_bind_int64(st, 2, *to);
    int src = SQLITE_DONE;
    size_t bytes = 0;
    while (rc == 0 && (src = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t r = sqlite3_column_int64(st, 4); /* the event's revision */
        if (bytes > WATCH_CHUNK_BYTES && out->n && out->ev[out->n - 1].kv.mod_revision != r) {
            *to = out->ev[out->n - 1].kv.mod_revision;
            src = SQLITE_DONE;
            break;
        }
        bytes += (size_t)sqlite3_column_bytes(st, 1) + (size_t)sqlite3_column_bytes(st, 2);
        rc = event_from_row(st, out);
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = conn_fail(c, "reading history");
    stmt_done(st);
    return rc;
}

static int history_load(sqlite_store *s, int64_t from, int64_t *to, event_buf *out)
{
    conn *c = &s->nconn;
    int rc = exec_id(c, ST_BEGIN);
    if (rc == 0) {
        rc = history_read(c, from, to, out);
        exec_id(c, ST_COMMIT);
    }
    if (rc < 0)
        event_buf_free(out);
    return rc;
}

/* Calls w's callback once per revision that has events under its prefix. */
static void watch_deliver(store_watch *w, const event_buf *b, kv_event *scratch)
{
    for (size_t i = 0, j; i < b->n; i = j) {
        int64_t rev = b->ev[i].kv.mod_revision;
        for (j = i; j < b->n && b->ev[j].kv.mod_revision == rev; j++)
            ;
        const kv_event *batch = &b->ev[i];
        size_t m = j - i;
        if (w->prefix_len) {
            m = 0;
            for (size_t k = i; k < j; k++)
                if (strncmp(b->ev[k].kv.key, w->prefix, w->prefix_len) == 0)
                    scratch[m++] = b->ev[k];
            batch = scratch;
        }
        if (m && !atomic_load(&w->closing))
            w->cb(w->ctx, batch, m, 0);
    }
}

/* Serves one group of watchers that all wait for the same next revision:
 * one history read for all of them. */
static int notify_group(sqlite_store *s, watch_pin *g, size_t n, int64_t upto)
{
    int64_t from = g[0].next;
    int64_t to = upto - from >= WATCH_CHUNK_REVS ? from + WATCH_CHUNK_REVS - 1 : upto;
    event_buf b = {0};
    int rc = history_load(s, from, &to, &b);
    if (rc == CITRUS_ECOMPACTED) {
        for (size_t k = 0; k < n; k++) {
            if (!atomic_load(&g[k].w->closing))
                g[k].w->cb(g[k].w->ctx, NULL, 0, CITRUS_ECOMPACTED);
            g[k].err = CITRUS_ECOMPACTED;
        }
        return 0;
    }
    kv_event *scratch = rc == 0 && b.n ? malloc(b.n * sizeof(*scratch)) : NULL;
    if (rc == 0 && b.n && !scratch)
        rc = CITRUS_ENOMEM;
    for (size_t k = 0; rc == 0 && k < n; k++) {
        watch_deliver(g[k].w, &b, scratch);
        g[k].next = to + 1;
    }
    free(scratch);
    event_buf_free(&b);
    return rc;
}

static int pin_cmp(const void *a, const void *b)
{
    return i64_cmp(((const watch_pin *)a)->next, ((const watch_pin *)b)->next);
}

/* One round: every group of ready watchers advances by up to one chunk.
 * Returns false when some group could not be served (retry later). */
static bool notify_round(sqlite_store *s, watch_pin *pins, size_t n, int64_t upto)
{
    bool ok = true;
    qsort(pins, n, sizeof(*pins), pin_cmp);
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && pins[j].next == pins[i].next; j++)
            ;
        if (notify_group(s, &pins[i], j - i, upto) < 0)
            ok = false;
    }
    return ok;
}

static bool watch_ready(const sqlite_store *s, store_watch *w)
{
    return !w->dead && !atomic_load(&w->closing) && w->next_rev <= s->committed_rev;
}

static void watch_unlink(sqlite_store *s, store_watch *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        s->watchers = w->next;
    if (w->next)
        w->next->prev = w->prev;
}

static void watch_free(store_watch *w)
{
    free(w->prefix);
    free(w);
}

/* Under mu: pins every ready watcher. NULL when there is none (*n = 0) or
 * no memory (*n > 0). */
static watch_pin *watch_pin_ready(sqlite_store *s, size_t *n)
{
    size_t count = 0, i = 0;
    for (store_watch *w = s->watchers; w; w = w->next)
        count += watch_ready(s, w);
    watch_pin *pins = count ? malloc(count * sizeof(*pins)) : NULL;
    *n = count;
    for (store_watch *w = s->watchers; pins && w && i < count; w = w->next) {
        if (!watch_ready(s, w))
            continue;
        w->pins++;
        pins[i++] = (watch_pin){.w = w, .next = w->next_rev};
    }
    /* watch_close sets closing without mu, so a watcher counted above may
     * have dropped out: only the pins actually taken are handed back. */
    if (pins)
        *n = i;
    if (pins && i == 0) {
        free(pins);
        pins = NULL;
    }
    return pins;
}

/* Under mu: records progress and releases the pins. */
static void watch_unpin(sqlite_store *s, watch_pin *pins, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        store_watch *w = pins[i].w;
        w->pins--;
        if (pins[i].err)
            w->dead = true;
        else
            w->next_rev = pins[i].next;
        if (w->orphan && w->pins == 0) {
            watch_unlink(s, w);
            watch_free(w);
        }
    }
    pthread_cond_broadcast(&s->watch_cond);
}

/* Under mu, on the notifier at shutdown: a final CITRUS_ECLOSED to each. */
static void watch_close_all(sqlite_store *s)
{
    for (store_watch *w = s->watchers; w; w = w->next) {
        if (w->dead || atomic_load(&w->closing))
            continue;
        w->dead = true;
        w->pins++;
        pthread_mutex_unlock(&s->mu);
        w->cb(w->ctx, NULL, 0, CITRUS_ECLOSED);
        pthread_mutex_lock(&s->mu);
        w->pins--;
        pthread_cond_broadcast(&s->watch_cond);
    }
}

static void *notify_main(void *arg)
{
    sqlite_store *s = arg;
    bool backoff = false;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        size_t n = 0;
        watch_pin *pins = backoff ? NULL : watch_pin_ready(s, &n);
        if (!pins) {
            struct timespec ts = clock_cond_deadline(RETRY_DELAY_MS);
            if (backoff || n)
                pthread_cond_timedwait(&s->notify_cond, &s->mu, &ts);
            else
                pthread_cond_wait(&s->notify_cond, &s->mu);
            backoff = false;
            continue;
        }
        int64_t upto = s->committed_rev;
        pthread_mutex_unlock(&s->mu);
        backoff = !notify_round(s, pins, n, upto);
        pthread_mutex_lock(&s->mu);
        watch_unpin(s, pins, n);
        free(pins);
    }
    watch_close_all(s);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- store_ops ---------------------------------------------------------------- */

typedef struct range_arg {
    const kv_range_req *req;
    kv_range_res *out;
} range_arg;

static int range_in_txn(sqlite_store *s, conn *c, void *arg)
{
    range_arg *a = arg;
    int rc = meta_read(c, &a->out->revision, NULL);
    return rc < 0 ? rc : range_read(c, a->req, a->out, NULL);
}

static int sqlite_range(store *st, const kv_range_req *req, kv_range_res *out)
{
    if (!req || !req->key)
        return CITRUS_EINVAL;
    range_arg a = {.req = req, .out = out};
    int rc = read_txn((sqlite_store *)st, range_in_txn, &a);
    if (rc < 0)
        kv_range_res_free(out);
    return rc;
}

/* The store's own limit (the shape of the txn is checked by store.c). */
static int txn_validate(const kv_txn *t)
{
    for (size_t i = 0; i < t->nsuccess; i++)
        if (t->success[i].type == KV_OP_PUT && t->success[i].value_len > MAX_VALUE_LEN)
            return CITRUS_ETOOBIGVAL;
    for (size_t i = 0; i < t->nfailure; i++)
        if (t->failure[i].type == KV_OP_PUT && t->failure[i].value_len > MAX_VALUE_LEN)
            return CITRUS_ETOOBIGVAL;
    return 0;
}

static int sqlite_txn(store *st, const kv_txn *txn, kv_txn_res *out)
{
    int rc = txn ? txn_validate(txn) : CITRUS_EINVAL;
    if (rc < 0)
        return rc;
    write_req r = {.kind = REQ_TXN, .txn = txn, .res = out};
    return writer_submit((sqlite_store *)st, &r);
}

static void sqlite_txn_async(store *st, const kv_txn *txn, kv_txn_res *out, store_txn_cb cb,
                             void *ctx)
{
    sqlite_store *s = (sqlite_store *)st;
    int rc = txn ? txn_validate(txn) : CITRUS_EINVAL;
    write_req *r = rc == 0 ? calloc(1, sizeof(*r)) : NULL;
    if (rc == 0 && !r)
        rc = CITRUS_ENOMEM;
    if (r) {
        *r = (write_req){.kind = REQ_TXN, .txn = txn, .res = out, .cb = cb, .cb_ctx = ctx};
        pthread_mutex_lock(&s->mu);
        bool queued = writer_enqueue(s, r);
        pthread_mutex_unlock(&s->mu);
        if (queued)
            return;
        free(r);
        rc = CITRUS_ECLOSED;
    }
    cb(ctx, rc);
}

static int sqlite_watch_open(store *st, const char *prefix, int64_t from_rev, store_watch_cb cb,
                             void *ctx, store_watch **out, int64_t *compact_rev)
{
    sqlite_store *s = (sqlite_store *)st;
    if (!prefix || !cb)
        return CITRUS_EINVAL;
    store_watch *w = calloc(1, sizeof(*w));
    if (!w || !(w->prefix = strdup(prefix))) {
        free(w);
        return CITRUS_ENOMEM;
    }
    w->owner = s;
    w->prefix_len = strlen(prefix);
    w->cb = cb;
    w->ctx = ctx;
    atomic_init(&w->closing, false);
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    if (s->stopping)
        rc = CITRUS_ECLOSED;
    else if (from_rev > 0 && from_rev < s->compact_rev)
        rc = CITRUS_ECOMPACTED;
    if (compact_rev)
        *compact_rev = s->compact_rev;
    if (rc == 0) {
        w->next_rev = from_rev > 0 ? from_rev : s->committed_rev + 1;
        w->next = s->watchers;
        if (s->watchers)
            s->watchers->prev = w;
        s->watchers = w;
        pthread_cond_signal(&s->notify_cond);
    }
    pthread_mutex_unlock(&s->mu);
    if (rc < 0)
        watch_free(w);
    else
        *out = w;
    return rc;
}

/* From another thread: waits until the notifier is done with w. From a
 * callback (the notifier thread) closing another watch: the notifier frees
 * it when it lets go, as it will not call it again. */
static void sqlite_watch_close(store_watch *w)
{
    sqlite_store *s = w->owner;
    atomic_store(&w->closing, true);
    pthread_mutex_lock(&s->mu);
    bool on_notifier = s->notify_started && pthread_equal(pthread_self(), s->notify_th);
    if (on_notifier && w->pins) {
        w->orphan = true;
        w = NULL;
    }
    while (w && w->pins)
        pthread_cond_wait(&s->watch_cond, &s->mu);
    if (w)
        watch_unlink(s, w);
    pthread_mutex_unlock(&s->mu);
    if (w)
        watch_free(w);
}

/* next_rev moves only after the callbacks for the revisions before it have
 * returned, so next_rev - 1 is a revision the caller has fully seen. */
static int64_t sqlite_watch_progress(store_watch *w)
{
    sqlite_store *s = w->owner;
    pthread_mutex_lock(&s->mu);
    int64_t rev = w->next_rev - 1;
    pthread_mutex_unlock(&s->mu);
    return rev;
}

static int sqlite_lease_grant(store *st, int64_t ttl, int64_t *id, int64_t *granted_ttl)
{
    write_req r = {.kind = REQ_GRANT, .ttl = ttl};
    int rc = writer_submit((sqlite_store *)st, &r);
    if (rc == 0) {
        *id = r.lease_id;
        if (granted_ttl)
            *granted_ttl = ttl;
    }
    return rc;
}

static int sqlite_lease_keepalive(store *st, int64_t id, int64_t *ttl)
{
    sqlite_store *s = (sqlite_store *)st;
    int64_t now = clock_mono_ms(s->clock);
    int rc = CITRUS_ENOLEASE;
    pthread_mutex_lock(&s->lease_mu);
    lease_slot *l = lease_find(s, id);
    if (l && now < l->expires_ms) {
        l->expires_ms = now + l->ttl * 1000;
        if (ttl)
            *ttl = l->ttl;
        rc = 0;
    }
    pthread_mutex_unlock(&s->lease_mu);
    return rc;
}

static int sqlite_lease_revoke(store *st, int64_t id)
{
    write_req r = {.kind = REQ_REVOKE, .lease_id = id};
    return writer_submit((sqlite_store *)st, &r);
}

static int sqlite_compact(store *st, int64_t rev)
{
    write_req r = {.kind = REQ_COMPACT, .lease_id = rev};
    return writer_submit((sqlite_store *)st, &r);
}

static int sqlite_defrag(store *st)
{
    write_req r = {.kind = REQ_DEFRAG};
    return writer_submit((sqlite_store *)st, &r);
}

static int64_t sqlite_revision(store *st)
{
    sqlite_store *s = (sqlite_store *)st;
    pthread_mutex_lock(&s->mu);
    int64_t rev = s->committed_rev;
    pthread_mutex_unlock(&s->mu);
    return rev;
}

static int sqlite_status(store *st, store_status *out)
{
    sqlite_store *s = (sqlite_store *)st;
    pthread_mutex_lock(&s->mu);
    out->revision = s->committed_rev;
    out->compact_revision = s->compact_rev;
    out->writable = s->healthy && !s->stopping;
    pthread_mutex_unlock(&s->mu);
    out->backend = "embedded";
    snprintf(out->leader, sizeof(out->leader), "embedded");
    out->members = out->healthy_members = 1;
    out->member[0] = (store_member){.name = "embedded", .healthy = true, .leader = true};
    out->quorum = out->writable;
    out->nospace = atomic_load(&s->nospace);
    out->db_size = atomic_load(&s->file_bytes);
    out->db_size_in_use = atomic_load(&s->used_bytes);
    out->quota_bytes = s->quota;
    return 0;
}

static int leases_read(sqlite_store *s, conn *c, kv_snapshot *out)
{
    sqlite3_stmt *st = conn_stmt(c, ST_LEASE_ALL);
    if (!st)
        return CITRUS_EIO;
    int64_t now = clock_mono_ms(s->clock);
    size_t cap = 0;
    int rc = 0, src = SQLITE_DONE;
    while (rc == 0 && (src = sqlite3_step(st)) == SQLITE_ROW) {
        if (out->nleases == cap) {
            cap = cap ? cap * 2 : 16;
            kv_lease_info *n = realloc(out->leases, cap * sizeof(*n));
            if (!n) {
                rc = CITRUS_ENOMEM;
                break;
            }
            out->leases = n;
        }
        kv_lease_info *l = &out->leases[out->nleases++];
        l->id = sqlite3_column_int64(st, 0);
        l->ttl = sqlite3_column_int64(st, 1);
        l->remaining = lease_remaining(s, l->id, now);
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = conn_fail(c, "reading leases");
    stmt_done(st);
    return rc;
}

typedef struct snapshot_arg {
    size_t max_bytes;
    kv_snapshot *out;
} snapshot_arg;

static int snapshot_in_txn(sqlite_store *s, conn *c, void *arg)
{
    snapshot_arg *a = arg;
    kv_snapshot *out = a->out;
    kv_range_req all = {.key = "", .prefix = true, .max_bytes = a->max_bytes};
    kv_range_res items = {0};
    size_t used = 0;
    int rc = meta_read(c, &out->revision, &out->compact_revision);
    if (rc == 0)
        rc = range_read(c, &all, &items, &used);
    out->items = items.items;
    out->count = items.count;
    if (rc == 0 && used == SIZE_MAX)
        rc = CITRUS_ERESPTOOBIG;
    return rc < 0 ? rc : leases_read(s, c, out);
}

static int sqlite_snapshot(store *st, size_t max_bytes, kv_snapshot *out)
{
    snapshot_arg a = {.max_bytes = max_bytes, .out = out};
    int rc = read_txn((sqlite_store *)st, snapshot_in_txn, &a);
    if (rc < 0)
        kv_snapshot_free(out);
    return rc;
}

/* ---- open and close -------------------------------------------------------------- */

static void store_stop(sqlite_store *s)
{
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->writer_cond);
    pthread_cond_broadcast(&s->notify_cond);
    pthread_cond_broadcast(&s->lease_cond);
    pthread_mutex_unlock(&s->mu);
    if (s->writer_started)
        pthread_join(s->writer_th, NULL);
    pthread_mutex_lock(&s->mu);
    write_req *async = NULL;
    for (write_req *r = s->q_head, *next; r; r = next) {
        next = r->next;
        r->rc = CITRUS_ECLOSED;
        r->done = true;
        if (r->cb) {
            r->next = async;
            async = r;
        }
    }
    s->q_head = s->q_tail = NULL;
    pthread_cond_broadcast(&s->done_cond);
    pthread_mutex_unlock(&s->mu);
    async_complete(s, async);
    pthread_mutex_lock(&s->mu);
    while (s->inflight)
        pthread_cond_wait(&s->done_cond, &s->mu);
    pthread_mutex_unlock(&s->mu);
    if (s->lease_started)
        pthread_join(s->lease_th, NULL);
    if (s->notify_started)
        pthread_join(s->notify_th, NULL);
    pthread_mutex_lock(&s->pool_mu);
    s->pool_closing = true;
    pthread_cond_broadcast(&s->pool_cond);
    while (s->nfree < s->nreaders)
        pthread_cond_wait(&s->pool_cond, &s->pool_mu);
    pthread_mutex_unlock(&s->pool_mu);
}

static void store_free(sqlite_store *s)
{
    while (s->watchers) {
        store_watch *w = s->watchers;
        s->watchers = w->next;
        watch_free(w);
    }
    conn_close(&s->nconn);
    for (int i = 0; i < READER_COUNT; i++)
        conn_close(&s->readers[i]);
    conn_close(&s->wconn);
    if (s->lock_fd >= 0) /* only now: closing an fd drops SQLite's POSIX locks */
        close(s->lock_fd);
    free(s->leases);
    if (s->sync_ready) {
        pthread_mutex_destroy(&s->mu);
        pthread_mutex_destroy(&s->pool_mu);
        pthread_mutex_destroy(&s->lease_mu);
        pthread_cond_destroy(&s->writer_cond);
        pthread_cond_destroy(&s->done_cond);
        pthread_cond_destroy(&s->notify_cond);
        pthread_cond_destroy(&s->watch_cond);
        pthread_cond_destroy(&s->lease_cond);
        pthread_cond_destroy(&s->pool_cond);
    }
    free(s->path);
    free(s);
}

static void sqlite_close(store *st)
{
    sqlite_store *s = (sqlite_store *)st;
    store_stop(s);
    store_free(s);
}

static int sync_init(sqlite_store *s)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return CITRUS_ENOMEM;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_t *conds[] = {&s->writer_cond, &s->done_cond,  &s->notify_cond,
                               &s->watch_cond,  &s->lease_cond, &s->pool_cond};
    for (size_t i = 0; i < sizeof(conds) / sizeof(conds[0]); i++)
        pthread_cond_init(conds[i], &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->pool_mu, NULL);
    pthread_mutex_init(&s->lease_mu, NULL);
    s->sync_ready = true;
    return 0;
}

/* Leases found on disk restart their full TTL (as etcd does). */
static int leases_load(sqlite_store *s, errdetail *err)
{
    sqlite3_stmt *st = conn_stmt(&s->wconn, ST_LEASE_ALL);
    int64_t now = clock_mono_ms(s->clock);
    int rc = st ? 0 : CITRUS_EIO, src = SQLITE_DONE;
    while (rc == 0 && (src = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t ttl = sqlite3_column_int64(st, 1);
        rc = lease_set(s, sqlite3_column_int64(st, 0), ttl, now + ttl * 1000);
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = CITRUS_EIO;
    if (st)
        stmt_done(st);
    if (rc < 0)
        errdetail_set(err, rc, "sqlite: loading leases: %s", sqlite3_errmsg(s->wconn.db));
    return rc;
}

/* Reads revisions and leases, and trims history to history_keep. */
static int state_load(sqlite_store *s, errdetail *err)
{
    conn *w = &s->wconn;
    int rc = meta_read(w, &s->w_rev, &s->w_compact);
    if (rc < 0) {
        return errdetail_set(err, rc, "sqlite: reading meta of %s: %s", s->path,
                             sqlite3_errmsg(w->db));
    }
    int64_t compact0 = s->w_compact;
    rc = exec_id(w, ST_BEGIN_IMMEDIATE);
    if (rc == 0)
        rc = history_trim(s);
    if (rc == 0 && s->w_compact != compact0)
        rc = meta_write(w, s->w_rev, s->w_compact);
    if (rc == 0)
        rc = exec_id(w, ST_COMMIT);
    if (rc < 0) {
        if (!sqlite3_get_autocommit(w->db))
            exec_id(w, ST_ROLLBACK);
        return errdetail_set(err, rc, "sqlite: trimming history of %s: %s", s->path,
                             sqlite3_errmsg(w->db));
    }
    s->committed_rev = s->w_rev;
    s->compact_rev = s->w_compact;
    return leases_load(s, err);
}

/* One store per database file: a second one (in this process or another)
 * would keep its own revision counter and corrupt the history. flock is
 * independent of SQLite's fcntl locks. */
static int file_lock(sqlite_store *s, errdetail *err)
{
    s->lock_fd = open(s->path, O_RDONLY | O_CLOEXEC);
    if (s->lock_fd >= 0 && flock(s->lock_fd, LOCK_EX | LOCK_NB) == 0)
        return 0;
    return errdetail_set(err, CITRUS_EIO, "store_sqlite: %s: %s", s->path,
                         errno == EWOULDBLOCK ? "already open in this or another process"
                                              : strerror(errno));
}

static int conns_open(sqlite_store *s, errdetail *err)
{
    int rc = conn_open(&s->wconn, s->path, false, err);
    if (rc == 0)
        rc = file_lock(s, err);
    if (rc == 0)
        rc = schema_init(&s->wconn, true, err);
    if (rc == 0)
        rc = state_load(s, err);
    if (rc == 0)
        rc = conn_open(&s->nconn, s->path, true, err);
    for (int i = 0; rc == 0 && i < READER_COUNT; i++) {
        rc = conn_open(&s->readers[i], s->path, true, err);
        if (rc == 0)
            s->free_readers[s->nreaders++] = &s->readers[i];
    }
    s->nfree = s->nreaders;
    return rc;
}

static int threads_start(sqlite_store *s, errdetail *err)
{
    int e = pthread_create(&s->writer_th, NULL, writer_main, s);
    s->writer_started = e == 0;
    if (e == 0) {
        e = pthread_create(&s->notify_th, NULL, notify_main, s);
        s->notify_started = e == 0;
    }
    if (e == 0) {
        e = pthread_create(&s->lease_th, NULL, lease_main, s);
        s->lease_started = e == 0;
    }
    if (e != 0)
        return errdetail_set(err, CITRUS_ENOMEM, "store_sqlite: starting threads: %s", strerror(e));
    return 0;
}

int store_sqlite_open(const store_sqlite_options *opts, store **out, errdetail *err)
{
    *out = NULL;
    errdetail_clear(err);
    if (!opts || !opts->path || !opts->path[0])
        return errdetail_set(err, CITRUS_EINVAL, "store_sqlite: no database path");
    sqlite_store *s = calloc(1, sizeof(*s));
    if (!s || !(s->path = strdup(opts->path)) || sync_init(s) < 0) {
        errdetail_set(err, CITRUS_ENOMEM, "store_sqlite: out of memory");
        if (s)
            free(s->path);
        free(s);
        return CITRUS_ENOMEM;
    }
    s->base.ops = &sqlite_ops;
    s->lock_fd = -1;
    s->history_keep = opts->history_keep > 0 ? opts->history_keep : DEFAULT_HISTORY_KEEP;
    s->clock = opts->clock;
    s->healthy = true;
    s->quota = opts->quota_bytes > 0 ? opts->quota_bytes : 0;
    int rc = conns_open(s, err);
    if (rc == 0) {
        quota_refresh(s, false);
        if (s->quota && atomic_load(&s->used_bytes) > s->quota) /* as it was left */
            atomic_store(&s->nospace, true);
    }
    if (rc == 0)
        rc = threads_start(s, err);
    if (rc < 0) {
        store_stop(s);
        store_free(s);
        return rc;
    }
    *out = &s->base;
    return 0;
}

uint64_t store_sqlite_commit_count(store *st)
{
    if (!st || st->ops != &sqlite_ops)
        return 0;
    sqlite_store *s = (sqlite_store *)st;
    pthread_mutex_lock(&s->mu);
    uint64_t n = s->commits;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* ---- restore ------------------------------------------------------------------------- */

static int restore_items(conn *c, const kv_snapshot *snap, errdetail *err)
{
    for (size_t i = 0; i < snap->count; i++) {
        const kv_entry *e = &snap->items[i];
        sqlite3_stmt *st = conn_stmt(c, ST_KV_PUT);
        if (!e->key || !e->key[0] || (e->value_len && !e->value))
            return errdetail_set(err, CITRUS_EINVAL, "restore: snapshot item %zu is invalid", i);
        if (!st)
            return CITRUS_EIO;
        bind_key(st, 1, e->key);
        bind_bytes(st, 2, e->value, e->value_len);
        sqlite3_bind_int64(st, 3, e->create_revision);
        sqlite3_bind_int64(st, 4, e->mod_revision);
        sqlite3_bind_int64(st, 5, e->version);
        sqlite3_bind_int64(st, 6, e->lease);
        if (stmt_run(c, st) < 0)
            return errdetail_set(err, CITRUS_EIO, "restore: writing key %s: %s", e->key,
                                 sqlite3_errmsg(c->db));
    }
    return 0;
}

static int restore_leases(conn *c, const kv_snapshot *snap, errdetail *err)
{
    for (size_t i = 0; i < snap->nleases; i++) {
        sqlite3_stmt *st = conn_stmt(c, ST_LEASE_PUT);
        if (!st)
            return CITRUS_EIO;
        sqlite3_bind_int64(st, 1, snap->leases[i].id);
        sqlite3_bind_int64(st, 2, snap->leases[i].ttl);
        if (stmt_run(c, st) < 0)
            return errdetail_set(err, CITRUS_EIO, "restore: writing lease %lld: %s",
                                 (long long)snap->leases[i].id, sqlite3_errmsg(c->db));
    }
    return 0;
}

/* Every key's lease must be one of the snapshot's: a key attached to a
 * missing lease would never expire. */
static int restore_check_leases(conn *c, errdetail *err)
{
    static const char sql[] =
        "SELECT count(*) FROM kv WHERE lease != 0 AND lease NOT IN (SELECT id FROM leases)";
    sqlite3_stmt *st = NULL;
    int64_t dangling = -1;
    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        dangling = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (dangling < 0)
        return conn_fail(c, sql);
    if (dangling > 0)
        return errdetail_set(err, CITRUS_ECORRUPT,
                             "restore: %lld keys are attached to leases missing from the snapshot",
                             (long long)dangling);
    return 0;
}

/* Writes the snapshot into the fresh database behind c, in one transaction. */
static int restore_fill(conn *c, const kv_snapshot *snap, errdetail *err)
{
    int rc = schema_init(c, false, err);
    if (rc < 0)
        return rc;
    rc = exec_id(c, ST_BEGIN_IMMEDIATE);
    if (rc == 0)
        rc = restore_items(c, snap, err);
    if (rc == 0)
        rc = restore_leases(c, snap, err);
    if (rc == 0)
        rc = restore_check_leases(c, err);
    if (rc == 0)
        rc = meta_write(c, snap->revision, snap->revision + 1);
    if (rc == 0)
        rc = exec_id(c, ST_COMMIT);
    if (rc < 0 && err && !err->message[0])
        errdetail_set(err, rc, "restore: %s", sqlite3_errmsg(c->db));
    if (rc < 0 && !sqlite3_get_autocommit(c->db))
        exec_id(c, ST_ROLLBACK);
    return rc;
}

static int fsync_path(const char *path, bool dir)
{
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDWR) | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Renames tmp to path unless path exists; then makes the rename durable. */
static int restore_publish(const char *tmp, const char *path, errdetail *err)
{
    int rc = renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE);
    if (rc < 0 && (errno == EINVAL || errno == ENOSYS)) { /* no RENAME_NOREPLACE here */
        rc = link(tmp, path);
        if (rc == 0)
            unlink(tmp);
    }
    if (rc < 0) {
        int e = errno;
        return errdetail_set(err, e == EEXIST ? CITRUS_EEXISTS : CITRUS_EIO,
                             "restore: rename %s to %s: %s", tmp, path, strerror(e));
    }
    char *dir = strdup(path);
    if (!dir)
        return CITRUS_ENOMEM;
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[slash == dir] = '\0'; /* "/x" -> "/", "a/x" -> "a" */
    rc = fsync_path(slash ? dir : ".", true);
    free(dir);
    if (rc < 0)
        return errdetail_set(err, CITRUS_EIO, "restore: fsync directory of %s: %s", path,
                             strerror(errno));
    return 0;
}

static char *path_with_suffix(const char *path, const char *suffix)
{
    size_t len = strlen(path) + strlen(suffix) + 1;
    char *p = malloc(len);
    if (p)
        snprintf(p, len, "%s%s", path, suffix);
    return p;
}

int store_sqlite_restore(const char *path, const kv_snapshot *snap, errdetail *err)
{
    errdetail_clear(err);
    if (!path || !path[0] || !snap)
        return CITRUS_EINVAL;
    struct stat sb;
    if (lstat(path, &sb) == 0)
        return errdetail_set(err, CITRUS_EEXISTS, "restore: %s already exists", path);
    char *tmp = path_with_suffix(path, ".tmp");
    char *tmp_journal = path_with_suffix(path, ".tmp-journal");
    conn c = {0};
    int rc = tmp && tmp_journal ? 0 : CITRUS_ENOMEM;
    if (rc < 0)
        goto out;
    unlink(tmp); /* a leftover of an earlier failed restore */
    unlink(tmp_journal);
    rc = conn_open(&c, tmp, false, err);
    if (rc == 0)
        rc = restore_fill(&c, snap, err);
    conn_close(&c);
    if (rc == 0 && fsync_path(tmp, false) < 0)
        rc = errdetail_set(err, CITRUS_EIO, "restore: fsync %s: %s", tmp, strerror(errno));
    if (rc == 0)
        rc = restore_publish(tmp, path, err);
    if (rc < 0)
        unlink(tmp);
out:
    free(tmp_journal);
    free(tmp);
    return rc;
}

static const store_ops sqlite_ops = {
    .range = sqlite_range,
    .txn = sqlite_txn,
    .txn_async = sqlite_txn_async,
    .watch_open = sqlite_watch_open,
    .watch_close = sqlite_watch_close,
    .watch_progress = sqlite_watch_progress,
    .lease_grant = sqlite_lease_grant,
    .lease_keepalive = sqlite_lease_keepalive,
    .lease_revoke = sqlite_lease_revoke,
    .status = sqlite_status,
    .revision = sqlite_revision,
    .snapshot = sqlite_snapshot,
    .compact = sqlite_compact,
    .defrag = sqlite_defrag,
    .close = sqlite_close,
};
