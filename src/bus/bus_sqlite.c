/* bus/bus_sqlite.c — the embedded bus: bus.h on one SQLite file.
 *
 * Durability: WAL. bus_publish returns only after an fdatasync of the WAL
 * that covers the COMMIT holding its message, so an acknowledged message
 * survives kill -9 and power loss; so does every other answer (a poll's
 * leases, a commit's offset, a read).
 *
 * Threads: one writer thread owns the only connection. Every call queues a
 * request and waits; the writer drains the whole queue into one BEGIN
 * IMMEDIATE … COMMIT (group commit, as the catalog store's: concurrent
 * publishers share one fsync). Polls, commits and nacks go through the same
 * queue: they write leases and offsets, and their order with publishes is
 * the queue's.
 *
 * Batches: a request that fails leaves nothing. Most run under a SAVEPOINT
 * of their own, rolled back when they fail. Publishes are "bare", without
 * one (a savepoint and its release cost as much as the insert): all they
 * check (the topic, the partition) they check before their first write, so
 * such a failure leaves nothing by itself; a write that fails (the disk, not
 * the input: CITRUS_EIO) fails the whole batch, rolled back, every request
 * of it answered CITRUS_EIO.
 *
 * Offsets: a partition's next offset is one past its last message, and
 * never below the floor bus_partitions.next_offset keeps; a publish writes
 * only its message (not the floor: one page less in each commit's frames),
 * and a retention trim raises the floor to the next offset before it
 * deletes the messages it is read from, so an offset is never reused, also
 * once a partition is empty and the log reopened (schema version 2: a
 * version 1 file's floors are exact, so it opens as it is; a build of
 * version 1, which would take the floor alone, refuses a version 2 file).
 *
 * The writer's cache: topic rows and each partition's next offset, as read
 * or written in the writer's transactions, spare a publish two SELECTs.
 * Any ROLLBACK (TO) drops it whole, so it never holds what the log does
 * not (topics are never changed or removed, and an absent one is not
 * cached); it holds at most TCACHE_MAX topics.
 *
 * Pipelined sync: the connection runs with synchronous = NORMAL, so a
 * COMMIT only writes its WAL frames; a second thread, the syncer, makes
 * them durable with fdatasync on the WAL file and only then wakes the
 * callers. While the syncer syncs, the writer already applies and commits
 * what came meanwhile, and the next fdatasync covers every batch committed
 * since the last one began: the disk is never idle while callers wait.
 * (With N steady publishers this settles into two cohorts of about N/2,
 * one being synced while the other is committed: the disk's fsync rate,
 * not the publishers' turnaround, bounds the throughput.) A lone caller
 * (the last sync held one, no sync under way, nothing queued) is synced by
 * the writer itself, sparing it the hand-off to the syncer.
 *
 * Answers are released in commit order and only after a sync that covers
 * their batch, so no caller ever sees (through a poll or a read) a message
 * that is not durable yet. Crash safety between syncs is the WAL's own
 * under NORMAL: frames carry salts and cumulative checksums, so recovery
 * drops a torn tail of unsynced commits and keeps every synced one, and a
 * checkpoint (SQLite's automatic one, in the writer's COMMIT) syncs the
 * WAL before it copies frames into the database and the database before
 * the WAL is reused.
 *
 * Two things shorten each fdatasync: right after a COMMIT the writer
 * starts the writeback of its frames (sync_file_range, which does not
 * wait), so the sync that follows mostly waits for writes already in
 * flight and the disk's cache flush; and checkpoints run every CKPT_FRAMES
 * frames (a WAL of 40 MiB at most with 4 KiB pages) instead of SQLite's
 * 1000, so their own syncs and copies come ten times less often (a
 * checkpoint copies a page once however often it was rewritten).
 *
 * A failed fdatasync breaks the bus: the callers it held and every later
 * call get CITRUS_EIO (after a failed fsync the page cache's state is
 * unknown; retrying it could report lost writes as durable).
 *
 * Each caller waits on its own futex (see done_wait): a sync wakes only the
 * callers it holds.
 *
 * Tables: bus_topics; bus_partitions (the next offset of each partition,
 * kept apart from the messages so trimming never reuses an offset);
 * bus_messages (dead letters too, under <topic>.dlq, with their error,
 * attempts and source); bus_offsets (each group's committed offset per
 * partition: every message below it is done); bus_leases (a group's
 * delivered messages at or past its offset: attempts, the wall-clock time
 * they become visible again, done once committed or dead-lettered).
 *
 * Locks: mu guards the queue, the committed list, stopping, broken and each
 * request's done flag. */
#include "bus/bus_sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "citrus/errors.h"

#define SCHEMA_VERSION 2 /* 2: bus_partitions.next_offset is a floor (see Offsets) */
#define BUSY_TIMEOUT_MS 5000
#define CKPT_FRAMES 10000 /* WAL frames that trigger a checkpoint (see Pipelined sync) */
#define FETCH_CHUNK 256   /* rows a poll reads at a time */
#define TCACHE_MAX 64     /* topics the writer's cache holds (then it starts over) */

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS bus_topics (name TEXT PRIMARY KEY, partitions INTEGER NOT NULL,"
    " retention_ms INTEGER NOT NULL, retention_bytes INTEGER NOT NULL, dlq INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS bus_partitions (topic TEXT NOT NULL, part INTEGER NOT NULL,"
    " next_offset INTEGER NOT NULL, PRIMARY KEY (topic, part)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS bus_messages (topic TEXT NOT NULL, part INTEGER NOT NULL,"
    " off INTEGER NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL, time_ms INTEGER NOT NULL,"
    " error TEXT, attempts INTEGER NOT NULL, src_part INTEGER NOT NULL, src_off INTEGER NOT NULL,"
    " PRIMARY KEY (topic, part, off));"
    "CREATE TABLE IF NOT EXISTS bus_offsets (grp TEXT NOT NULL, topic TEXT NOT NULL,"
    " part INTEGER NOT NULL, next_offset INTEGER NOT NULL, PRIMARY KEY (grp, topic, part))"
    " WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS bus_leases (grp TEXT NOT NULL, topic TEXT NOT NULL,"
    " part INTEGER NOT NULL, off INTEGER NOT NULL, attempts INTEGER NOT NULL,"
    " visible_ms INTEGER NOT NULL, done INTEGER NOT NULL, error TEXT,"
    " PRIMARY KEY (grp, topic, part, off)) WITHOUT ROWID;"
    "PRAGMA user_version = 2;";

#define KEYP "topic = ?1 AND part = ?2"
#define KEYG "grp = ?1 AND topic = ?2 AND part = ?3"
#define STMT_TABLE(X)                                                                              \
    X(BEGIN, "BEGIN IMMEDIATE")                                                                    \
    X(COMMIT, "COMMIT")                                                                            \
    X(ROLLBACK, "ROLLBACK")                                                                        \
    X(SAVEPOINT, "SAVEPOINT req")                                                                  \
    X(RELEASE, "RELEASE req")                                                                      \
    X(ROLLBACK_TO, "ROLLBACK TO req")                                                              \
    X(TOPIC_GET, "SELECT partitions, retention_ms, retention_bytes, dlq FROM bus_topics"           \
                 " WHERE name = ?1")                                                               \
    X(TOPIC_COUNT, "SELECT count(*) FROM bus_topics WHERE dlq = 0")                                \
    X(TOPIC_INSERT, "INSERT INTO bus_topics VALUES (?1, ?2, ?3, ?4, ?5)")                          \
    X(TOPIC_NAMES, "SELECT name FROM bus_topics ORDER BY name")                                    \
    X(TOPIC_MSGS, "SELECT count(*) FROM bus_messages WHERE topic = ?1")                            \
    X(PART_INSERT, "INSERT INTO bus_partitions VALUES (?1, ?2, 0)")                                \
    X(PART_NEXT, "SELECT max(next_offset, coalesce((SELECT max(off) FROM bus_messages WHERE " KEYP \
                 ") + 1, 0)) FROM bus_partitions WHERE " KEYP)                                     \
    X(PART_SET, "UPDATE bus_partitions SET next_offset = ?3 WHERE " KEYP)                          \
    X(MSG_INSERT, "INSERT INTO bus_messages VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)")     \
    X(MSG_FIRST, "SELECT min(off) FROM bus_messages WHERE " KEYP)                                  \
    X(MSG_FROM, "SELECT off, key, value, time_ms, error, attempts, src_part, src_off"              \
                " FROM bus_messages WHERE " KEYP " AND off >= ?3 ORDER BY off LIMIT ?4")           \
    X(MSG_OLD, "SELECT max(off) FROM bus_messages WHERE " KEYP " AND time_ms < ?3")                \
    X(MSG_SIZES, "SELECT off, length(key) + length(value) FROM bus_messages WHERE " KEYP           \
                 " ORDER BY off DESC")                                                             \
    X(MSG_TRIM, "DELETE FROM bus_messages WHERE " KEYP " AND off <= ?3")                           \
    X(GRP_GET, "SELECT next_offset FROM bus_offsets WHERE " KEYG)                                  \
    X(GRP_SET, "INSERT INTO bus_offsets VALUES (?1, ?2, ?3, ?4) ON CONFLICT (grp, topic, part)"    \
               " DO UPDATE SET next_offset = excluded.next_offset")                                \
    X(LEASE_BLOCKED, "SELECT 1 FROM bus_leases WHERE " KEYG " AND done = 0 AND visible_ms > ?4"    \
                     " LIMIT 1")                                                                   \
    X(LEASE_GET, "SELECT attempts, done, error FROM bus_leases WHERE " KEYG " AND off = ?4")       \
    X(LEASE_PUT,                                                                                   \
      "INSERT INTO bus_leases VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, NULL)"                            \
      " ON CONFLICT (grp, topic, part, off) DO UPDATE SET attempts = excluded.attempts,"           \
      " visible_ms = excluded.visible_ms")                                                         \
    X(LEASE_RETRY,                                                                                 \
      "UPDATE bus_leases SET visible_ms = ?5, error = ?6 WHERE " KEYG " AND off = ?4")             \
    X(LEASE_DONE, "UPDATE bus_leases SET done = 1 WHERE " KEYG " AND off = ?4")                    \
    X(LEASE_DROP, "DELETE FROM bus_leases WHERE " KEYG " AND off < ?4")                            \
    X(LEASE_OPEN, "SELECT count(*) FROM bus_leases WHERE " KEYG " AND done = 0")                   \
    X(GRP_ALL, "SELECT grp, topic, part, next_offset FROM bus_offsets"                             \
               " ORDER BY grp, topic, part LIMIT ?1")                                              \
    X(GRP_ONE, "SELECT grp, topic, part, next_offset FROM bus_offsets WHERE grp = ?2"              \
               " ORDER BY grp, topic, part LIMIT ?1")

enum {
#define STMT_ENUM(name, sql) ST_##name,
    STMT_TABLE(STMT_ENUM)
#undef STMT_ENUM
        ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
#define STMT_SQL(name, sql) sql,
    STMT_TABLE(STMT_SQL)
#undef STMT_SQL
};

typedef struct bsq bsq;
typedef struct req req;

/* ---- the writer's cache ---- */

typedef struct topic_row {
    int partitions;
    int64_t retention_ms, retention_bytes;
    bool dlq;
} topic_row;

/* A topic's row and its partitions' next offsets (-1: not read yet) as the
 * writer last read or wrote them in the open transaction or a committed
 * one. Dropped whole whenever anything is rolled back (see cache_drop), so
 * it never holds what the log does not. */
typedef struct {
    char *name;
    topic_row t;
    int64_t *next;
} tcache;

/* One call, queued for the writer: its arguments, its results, and run
 * (applied inside the batch's transaction, under a savepoint). */
struct req {
    req *next;
    int (*run)(bsq *s, req *r);
    bool bare; /* run without a savepoint: fails before its first write, or with CITRUS_EIO */
    errdetail *e;
    int rc;
    atomic_int done; /* 1 once rc is set: a futex its caller waits on */
    const char *topic, *group, *error;
    const bus_topic_opts *opts;
    const void *key, *value;
    size_t key_len, value_len, max;
    const bus_message *m;
    int partition;
    int64_t offset, vis_ms, retry_at;
    bool dead;
    /* results */
    bus_message *msgs;
    size_t nmsgs;
    bus_topic_info *info;
    int64_t deleted;
    bus_topic_entry *topics;
    size_t ntopics;
    bus_group_entry *groups;
    bool more;
    const bus_message *const *cmsgs; /* commit_batch: max messages, outcomes to crcs */
    int *crcs;
    const bus_record *recs; /* publish_batch: n = max records, out to parts/offs */
    int *parts;
    int64_t *offs;
};

struct bsq {
    bus b; /* first: a bsq is a bus */
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    unsigned rr;              /* the partition a poll starts at (writer only) */
    tcache cache[TCACHE_MAX]; /* the writer's copy of topic rows and next offsets */
    int ncache;
    char *wal_path;
    int wal_fd;          /* the WAL, opened for fdatasync (-1: not yet) */
    int (*sync)(int fd); /* fdatasync (a test's fault injection) */
    pthread_t writer, syncer;
    bool writer_started, syncer_started;
    pthread_mutex_t mu;
    pthread_cond_t writer_cond; /* a request queued, or stopping */
    pthread_cond_t syncer_cond; /* a batch committed, or the writer done */
    req *q_head, *q_tail;       /* queued for the writer */
    req *c_head, *c_tail;       /* committed, waiting for a sync */
    bool stopping, writer_done;
    bool syncing;       /* an fdatasync is under way (the syncer's or the writer's) */
    size_t last_sync_n; /* the callers the last sync released */
    int broken;         /* errno of a failed fdatasync: every call fails (0: fine) */
    int64_t commits;    /* transactions committed */
    int64_t syncs;      /* fdatasyncs that released callers */
};

/* ---- statements ---- */

static int db_fail(bsq *s, errdetail *e, const char *what)
{
    return errdetail_set(e, CITRUS_EIO, "bus: %s: %s", what, sqlite3_errmsg(s->db));
}

/* The cached statement id, reset and unbound; NULL when it cannot be
 * prepared. */
static sqlite3_stmt *stmt(bsq *s, int id)
{
    if (!s->st[id] && sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                         &s->st[id], NULL) != SQLITE_OK)
        return NULL;
    sqlite3_reset(s->st[id]);
    sqlite3_clear_bindings(s->st[id]);
    return s->st[id];
}

/* Runs a statement that returns no row. */
static int run_stmt(bsq *s, sqlite3_stmt *st, errdetail *e)
{
    if (!st)
        return db_fail(s, e, "prepare");
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : db_fail(s, e, "write");
}

static void cache_drop(bsq *s)
{
    for (int i = 0; i < s->ncache; i++) {
        free(s->cache[i].name);
        free(s->cache[i].next);
    }
    s->ncache = 0;
}

static tcache *cache_find(bsq *s, const char *name)
{
    for (int i = 0; i < s->ncache; i++)
        if (strcmp(s->cache[i].name, name) == 0)
            return &s->cache[i];
    return NULL;
}

/* Remembers t for name (nothing when out of memory: the cache is only a
 * shortcut). */
static void cache_put(bsq *s, const char *name, const topic_row *t)
{
    if (s->ncache == TCACHE_MAX)
        cache_drop(s);
    tcache *c = &s->cache[s->ncache];
    c->name = strdup(name);
    c->next = malloc(sizeof(int64_t) * (size_t)t->partitions);
    if (!c->name || !c->next) {
        free(c->name);
        free(c->next);
        return;
    }
    for (int p = 0; p < t->partitions; p++)
        c->next[p] = -1;
    c->t = *t;
    s->ncache++;
}

static int exec_id(bsq *s, int id, errdetail *e)
{
    if (id == ST_ROLLBACK || id == ST_ROLLBACK_TO)
        cache_drop(s); /* it may hold what is undone */
    sqlite3_stmt *st = stmt(s, id);
    return run_stmt(s, st, e);
}

/* Binds ?1 topic, ?2 partition (grp = NULL) or ?1 grp, ?2 topic, ?3 partition. */
static sqlite3_stmt *stmt_at(bsq *s, int id, const char *grp, const char *topic, int part)
{
    sqlite3_stmt *st = stmt(s, id);
    if (!st)
        return NULL;
    int i = 1;
    if (grp)
        sqlite3_bind_text(st, i++, grp, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, i++, topic, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, i, part);
    return st;
}

/* One integer from a one-row statement (st reset after): 1 with *v set, 0
 * for no row or a NULL, CITRUS_EIO. */
static int one_int(bsq *s, sqlite3_stmt *st, int64_t *v, errdetail *e)
{
    if (!st)
        return db_fail(s, e, "prepare");
    int rc = sqlite3_step(st), got = 0;
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        *v = sqlite3_column_int64(st, 0);
        got = 1;
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? got : db_fail(s, e, "read");
}

/* ---- helpers inside a transaction ---- */

static int topic_get(bsq *s, const char *name, topic_row *t, errdetail *e)
{
    tcache *c = cache_find(s, name);
    if (c) {
        *t = c->t;
        return 0;
    }
    sqlite3_stmt *st = stmt(s, ST_TOPIC_GET);
    if (!st)
        return db_fail(s, e, "prepare");
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *t = (topic_row){.partitions = sqlite3_column_int(st, 0),
                         .retention_ms = sqlite3_column_int64(st, 1),
                         .retention_bytes = sqlite3_column_int64(st, 2),
                         .dlq = sqlite3_column_int(st, 3) != 0};
    sqlite3_reset(st);
    if (rc == SQLITE_ROW)
        cache_put(s, name, t);
    if (rc == SQLITE_DONE)
        return errdetail_set(e, CITRUS_ENOTFOUND, "bus: no topic %s", name);
    return rc == SQLITE_ROW ? 0 : db_fail(s, e, "read topic");
}

/* The topic, and partition checked against it. */
static int topic_part(bsq *s, const char *name, int part, topic_row *t, errdetail *e)
{
    int rc = topic_get(s, name, t, e);
    if (rc == 0 && part >= t->partitions)
        rc = errdetail_set(e, CITRUS_EINVAL, "bus: topic %s has partitions 0..%d, not %d", name,
                           t->partitions - 1, part);
    return rc;
}

static int part_next(bsq *s, const char *topic, int part, int64_t *next, errdetail *e)
{
    tcache *c = cache_find(s, topic);
    if (c && part < c->t.partitions && c->next[part] >= 0) {
        *next = c->next[part];
        return 0;
    }
    int rc = one_int(s, stmt_at(s, ST_PART_NEXT, NULL, topic, part), next, e);
    if (rc == 1 && c && part < c->t.partitions)
        c->next[part] = *next;
    return rc == 1 ? 0 : rc < 0 ? rc : db_fail(s, e, "partition without its row");
}

/* The oldest offset retained (the next offset when none is). */
static int part_first(bsq *s, const char *topic, int part, int64_t *first, errdetail *e)
{
    int rc = one_int(s, stmt_at(s, ST_MSG_FIRST, NULL, topic, part), first, e);
    return rc == 0 ? part_next(s, topic, part, first, e) : rc < 0 ? rc : 0;
}

/* Appends one message at the partition's next offset. */
static int append(bsq *s, const char *topic, int part, const bus_message *m, int64_t *off,
                  errdetail *e)
{
    int rc = part_next(s, topic, part, off, e);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = stmt_at(s, ST_MSG_INSERT, NULL, topic, part);
    if (!st)
        return db_fail(s, e, "prepare");
    sqlite3_bind_int64(st, 3, *off);
    sqlite3_bind_blob64(st, 4, m->key, m->key_len, SQLITE_STATIC);
    sqlite3_bind_blob64(st, 5, m->value, m->value_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, clock_wall_ms(s->b.cfg.clock));
    if (m->error)
        sqlite3_bind_text(st, 7, m->error, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 8, m->attempts);
    sqlite3_bind_int(st, 9, m->src_partition);
    sqlite3_bind_int64(st, 10, m->src_offset);
    rc = run_stmt(s, st, e);
    if (rc < 0)
        return rc;
    tcache *c = cache_find(s, topic);
    if (c && part < c->t.partitions)
        c->next[part] = *off + 1;
    return 0;
}

static char *dup_bytes(const void *p, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        if (n)
            memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

/* Fills m (zeroed) from a MSG_FROM row. */
static int row_copy(sqlite3_stmt *st, const char *topic, int part, bus_message *m, errdetail *e)
{
    snprintf(m->topic, sizeof(m->topic), "%s", topic);
    m->partition = part;
    m->offset = sqlite3_column_int64(st, 0);
    m->key_len = (size_t)sqlite3_column_bytes(st, 1);
    m->key = (uint8_t *)dup_bytes(sqlite3_column_blob(st, 1), m->key_len);
    m->value_len = (size_t)sqlite3_column_bytes(st, 2);
    m->value = (uint8_t *)dup_bytes(sqlite3_column_blob(st, 2), m->value_len);
    m->time_ms = sqlite3_column_int64(st, 3);
    const unsigned char *err = sqlite3_column_text(st, 4);
    if (err)
        m->error = dup_bytes(err, strlen((const char *)err));
    m->attempts = sqlite3_column_int(st, 5);
    m->src_partition = sqlite3_column_int(st, 6);
    m->src_offset = sqlite3_column_int64(st, 7);
    if (!m->key || !m->value || (err && !m->error))
        return errdetail_set(e, CITRUS_ENOMEM, "bus: out of memory copying a message");
    return 0;
}

/* Up to limit messages of a partition from offset from, appended to
 * out[*n..]. */
static int fetch(bsq *s, const char *topic, int part, int64_t from, size_t limit, bus_message *out,
                 size_t *n, errdetail *e)
{
    sqlite3_stmt *st = stmt_at(s, ST_MSG_FROM, NULL, topic, part);
    if (!st)
        return db_fail(s, e, "prepare");
    sqlite3_bind_int64(st, 3, from);
    sqlite3_bind_int64(st, 4, (int64_t)limit);
    int rc = 0, step;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW)
        rc = row_copy(st, topic, part, &out[(*n)++], e);
    if (rc == 0 && step != SQLITE_DONE)
        rc = db_fail(s, e, "read messages");
    sqlite3_reset(st);
    return rc;
}

typedef struct lease_row {
    int attempts;
    bool done;
    char error[BUS_ERROR_MAX + 1];
} lease_row;

/* 1 with *l, 0 when there is no lease, CITRUS_EIO. */
static int lease_get(bsq *s, const char *grp, const char *topic, int part, int64_t off,
                     lease_row *l, errdetail *e)
{
    sqlite3_stmt *st = stmt_at(s, ST_LEASE_GET, grp, topic, part);
    if (!st)
        return db_fail(s, e, "prepare");
    sqlite3_bind_int64(st, 4, off);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *err = sqlite3_column_text(st, 2);
        l->attempts = sqlite3_column_int(st, 0);
        l->done = sqlite3_column_int(st, 1) != 0;
        snprintf(l->error, sizeof(l->error), "%s", err ? (const char *)err : "");
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : db_fail(s, e, "read lease");
}

static int lease_off(bsq *s, int id, const char *grp, const char *topic, int part, int64_t off,
                     errdetail *e)
{
    sqlite3_stmt *st = stmt_at(s, id, grp, topic, part);
    if (!st)
        return db_fail(s, e, "prepare");
    sqlite3_bind_int64(st, 4, off);
    return run_stmt(s, st, e);
}

static int group_set(bsq *s, const char *grp, const char *topic, int part, int64_t next,
                     errdetail *e)
{
    sqlite3_stmt *st = stmt_at(s, ST_GRP_SET, grp, topic, part);
    if (!st)
        return db_fail(s, e, "prepare");
    sqlite3_bind_int64(st, 4, next);
    int rc = run_stmt(s, st, e);
    return rc < 0 ? rc : lease_off(s, ST_LEASE_DROP, grp, topic, part, next, e);
}

/* The group's committed offset: 1 with *c, 0 when the group never polled
 * the partition. */
static int group_get(bsq *s, const char *grp, const char *topic, int part, int64_t *c, errdetail *e)
{
    return one_int(s, stmt_at(s, ST_GRP_GET, grp, topic, part), c, e);
}

/* Moves the group's offset from c past every done message at its head. */
static int advance(bsq *s, const char *grp, const char *topic, int part, int64_t c, errdetail *e)
{
    int64_t c0 = c;
    lease_row l;
    int rc;
    while ((rc = lease_get(s, grp, topic, part, c, &l, e)) == 1 && l.done)
        c++;
    if (rc < 0)
        return rc;
    return c == c0 ? 0 : group_set(s, grp, topic, part, c, e);
}

/* m to topic.dlq (same partition), with its error and attempts. */
static int dead_letter(bsq *s, const char *topic, const bus_message *m, const char *error,
                       int attempts, errdetail *e)
{
    char dlq[BUS_NAME_MAX + 8];
    snprintf(dlq, sizeof(dlq), "%s" BUS_DLQ_SUFFIX, topic);
    char err[BUS_ERROR_MAX + 1];
    snprintf(err, sizeof(err), "%s", error);
    bus_message d = *m;
    d.error = err;
    d.attempts = attempts;
    d.src_partition = m->partition;
    d.src_offset = m->offset;
    int64_t off;
    return append(s, dlq, m->partition, &d, &off, e);
}

/* ---- the requests ---- */

static int do_topic_create(bsq *s, req *r)
{
    topic_row t;
    int rc = topic_get(s, r->topic, &t, r->e);
    if (rc == 0)
        return errdetail_set(r->e, CITRUS_EEXISTS, "bus: topic %s exists", r->topic);
    if (rc != CITRUS_ENOTFOUND)
        return rc;
    int64_t n = 0;
    rc = one_int(s, stmt(s, ST_TOPIC_COUNT), &n, r->e);
    if (rc < 0)
        return rc;
    if (n >= s->b.cfg.max_topics)
        return errdetail_set(r->e, CITRUS_ETOOMANY, "bus: at most %d topics", s->b.cfg.max_topics);
    char dlq[BUS_NAME_MAX + 8];
    snprintf(dlq, sizeof(dlq), "%s" BUS_DLQ_SUFFIX, r->topic);
    const char *names[2] = {r->topic, dlq};
    for (int i = 0; i < 2; i++) {
        sqlite3_stmt *st = stmt(s, ST_TOPIC_INSERT);
        if (!st)
            return db_fail(s, r->e, "prepare");
        sqlite3_bind_text(st, 1, names[i], -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, r->opts->partitions);
        sqlite3_bind_int64(st, 3, r->opts->retention_ms);
        sqlite3_bind_int64(st, 4, r->opts->retention_bytes);
        sqlite3_bind_int(st, 5, i);
        if ((rc = run_stmt(s, st, r->e)) < 0)
            return rc;
        for (int p = 0; p < r->opts->partitions; p++)
            if ((rc = run_stmt(s, stmt_at(s, ST_PART_INSERT, NULL, names[i], p), r->e)) < 0)
                return rc;
    }
    return 0;
}

static int do_topic_describe(bsq *s, req *r)
{
    topic_row t;
    int rc = topic_get(s, r->topic, &t, r->e);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = stmt(s, ST_TOPIC_MSGS);
    if (st)
        sqlite3_bind_text(st, 1, r->topic, -1, SQLITE_STATIC);
    int64_t n = 0;
    rc = one_int(s, st, &n, r->e);
    *r->info = (bus_topic_info){.partitions = t.partitions,
                                .retention_ms = t.retention_ms,
                                .retention_bytes = t.retention_bytes,
                                .messages = n};
    return rc < 0 ? rc : 0;
}

static int do_publish(bsq *s, req *r)
{
    topic_row t;
    int rc = topic_get(s, r->topic, &t, r->e);
    if (rc < 0)
        return rc;
    bus_message m = {.key = (uint8_t *)r->key,
                     .key_len = r->key_len,
                     .value = (uint8_t *)r->value,
                     .value_len = r->value_len,
                     .src_partition = -1,
                     .src_offset = -1};
    r->partition = bus_partition_for(r->key, r->key_len, t.partitions);
    return append(s, r->topic, r->partition, &m, &r->offset, r->e);
}

/* Every record or none: the request's savepoint undoes the ones before a
 * failure. */
static int do_publish_batch(bsq *s, req *r)
{
    topic_row t;
    int rc = topic_get(s, r->topic, &t, r->e);
    for (size_t i = 0; rc == 0 && i < r->max; i++) {
        const bus_record *rec = &r->recs[i];
        bus_message m = {.key = (uint8_t *)rec->key,
                         .key_len = rec->key_len,
                         .value = (uint8_t *)rec->value,
                         .value_len = rec->value_len,
                         .src_partition = -1,
                         .src_offset = -1};
        r->parts[i] = bus_partition_for(rec->key, rec->key_len, t.partitions);
        rc = append(s, r->topic, r->parts[i], &m, &r->offs[i], r->e);
    }
    return rc;
}

/* A poll of one partition: up to r->max - r->nmsgs messages from the
 * group's offset, unless a lease not yet ended blocks the partition. */
static int poll_partition(bsq *s, req *r, const topic_row *t, int part, int64_t now)
{
    int64_t c = 0, first = 0;
    int known = group_get(s, r->group, r->topic, part, &c, r->e);
    int rc = known < 0 ? known : part_first(s, r->topic, part, &first, r->e);
    if (rc < 0)
        return rc;
    if (known == 0 || c < first) {
        /* a new group starts at the oldest message; one behind retention
         * skips what was trimmed */
        c = first;
        if ((rc = group_set(s, r->group, r->topic, part, c, r->e)) < 0)
            return rc;
    }
    sqlite3_stmt *st = stmt_at(s, ST_LEASE_BLOCKED, r->group, r->topic, part);
    if (st)
        sqlite3_bind_int64(st, 4, now);
    int64_t blocked = 0;
    if ((rc = one_int(s, st, &blocked, r->e)) != 0)
        return rc < 0 ? rc : 0;
    int64_t from = c;
    while (r->nmsgs < r->max) {
        size_t n0 = r->nmsgs, want = r->max - r->nmsgs;
        if ((rc = fetch(s, r->topic, part, from, want < FETCH_CHUNK ? want : FETCH_CHUNK, r->msgs,
                        &r->nmsgs, r->e)) < 0)
            return rc;
        if (r->nmsgs == n0)
            break;
        size_t keep = n0;
        for (size_t i = n0; i < r->nmsgs; i++) {
            bus_message *m = &r->msgs[i];
            from = m->offset + 1;
            lease_row l = {0};
            if ((rc = lease_get(s, r->group, r->topic, part, m->offset, &l, r->e)) < 0)
                return rc;
            bool skip = l.done;
            if (!skip && l.attempts >= s->b.cfg.max_attempts && !t->dlq) {
                /* its last lease ended with no commit: a handler that never
                 * returns must not hold the partition forever */
                char why[BUS_ERROR_MAX + 64];
                snprintf(why, sizeof(why), "%s%svisibility timeout after attempt %d", l.error,
                         l.error[0] ? "; then " : "", l.attempts);
                if ((rc = dead_letter(s, r->topic, m, why, l.attempts, r->e)) < 0 ||
                    (rc = lease_off(s, ST_LEASE_DONE, r->group, r->topic, part, m->offset, r->e)) <
                        0)
                    return rc;
                skip = true;
            }
            if (skip) {
                free(m->key);
                free(m->value);
                free(m->error);
                memset(m, 0, sizeof(*m));
                continue;
            }
            sqlite3_stmt *put = stmt_at(s, ST_LEASE_PUT, r->group, r->topic, part);
            if (!put)
                return db_fail(s, r->e, "prepare");
            sqlite3_bind_int64(put, 4, m->offset);
            sqlite3_bind_int(put, 5, l.attempts + 1);
            sqlite3_bind_int64(put, 6, now + r->vis_ms);
            if ((rc = run_stmt(s, put, r->e)) < 0)
                return rc;
            m->attempt = l.attempts + 1;
            if (keep != i) {
                r->msgs[keep] = *m;
                memset(m, 0, sizeof(*m));
            }
            keep++;
        }
        r->nmsgs = keep;
    }
    return advance(s, r->group, r->topic, part, c, r->e);
}

static int do_poll(bsq *s, req *r)
{
    topic_row t;
    int rc = topic_get(s, r->topic, &t, r->e);
    if (rc < 0)
        return rc;
    r->msgs = calloc(r->max, sizeof(*r->msgs));
    if (!r->msgs)
        return errdetail_set(r->e, CITRUS_ENOMEM, "bus: out of memory for a poll");
    int64_t now = clock_wall_ms(s->b.cfg.clock);
    unsigned start = s->rr++;
    for (int i = 0; rc == 0 && i < t.partitions && r->nmsgs < r->max; i++)
        rc = poll_partition(s, r, &t, (int)((start + (unsigned)i) % (unsigned)t.partitions), now);
    return rc;
}

/* The checks commit and nack share: the topic, the partition, the offset
 * (below the partition's next) and the group's offset (*c). */
static int lease_checks(bsq *s, req *r, topic_row *t, int64_t *c)
{
    const bus_message *m = r->m;
    int64_t next;
    int rc = topic_part(s, m->topic, m->partition, t, r->e);
    if (rc == 0)
        rc = part_next(s, m->topic, m->partition, &next, r->e);
    if (rc == 0 && m->offset >= next)
        rc = errdetail_set(r->e, CITRUS_EINVAL, "bus: %s/%d has offsets below %lld, not %lld",
                           m->topic, m->partition, (long long)next, (long long)m->offset);
    if (rc < 0)
        return rc;
    rc = group_get(s, r->group, m->topic, m->partition, c, r->e);
    if (rc == 0)
        return errdetail_set(r->e, CITRUS_ENOTFOUND, "bus: group %s never polled %s/%d", r->group,
                             m->topic, m->partition);
    return rc < 0 ? rc : 0;
}

static int do_commit(bsq *s, req *r)
{
    const bus_message *m = r->m;
    topic_row t;
    int64_t c;
    int rc = lease_checks(s, r, &t, &c);
    if (rc < 0 || m->offset < c)
        return rc;
    lease_row l;
    rc = lease_get(s, r->group, m->topic, m->partition, m->offset, &l, r->e);
    if (rc == 0)
        return errdetail_set(r->e, CITRUS_ENOTFOUND,
                             "bus: %s/%d@%lld was never delivered to group %s", m->topic,
                             m->partition, (long long)m->offset, r->group);
    if (rc < 0 || l.done)
        return rc < 0 ? rc : 0;
    rc = lease_off(s, ST_LEASE_DONE, r->group, m->topic, m->partition, m->offset, r->e);
    return rc < 0 ? rc : advance(s, r->group, m->topic, m->partition, c, r->e);
}

/* Each message's commit under a savepoint of its own, its outcome in
 * crcs, the first failure's detail in r->e: one failing commit writes
 * nothing and leaves the others. The request fails only when the
 * savepoints themselves do. */
static int do_commit_batch(bsq *s, req *r)
{
    errdetail *first = r->e;
    bool failed = false;
    for (size_t i = 0; i < r->max; i++) {
        errdetail e = {0};
        int rc = exec_id(s, ST_SAVEPOINT, &e);
        if (rc < 0)
            return first ? (*first = e, rc) : rc;
        r->m = r->cmsgs[i];
        r->e = &e;
        r->crcs[i] = do_commit(s, r);
        r->e = first;
        rc = exec_id(s, r->crcs[i] < 0 ? ST_ROLLBACK_TO : ST_RELEASE, first);
        if (rc == 0 && r->crcs[i] < 0)
            rc = exec_id(s, ST_RELEASE, first); /* ROLLBACK TO keeps the savepoint */
        if (rc < 0)
            return rc;
        if (r->crcs[i] < 0 && !failed && first)
            *first = e;
        failed |= r->crcs[i] < 0;
    }
    return 0;
}

static int do_nack(bsq *s, req *r)
{
    const bus_message *m = r->m;
    topic_row t;
    int64_t c;
    int rc = lease_checks(s, r, &t, &c);
    if (rc < 0)
        return rc;
    lease_row l = {0};
    rc = m->offset < c ? 0 : lease_get(s, r->group, m->topic, m->partition, m->offset, &l, r->e);
    if (rc < 0)
        return rc;
    if (rc == 0 && m->offset >= c)
        return errdetail_set(r->e, CITRUS_ENOTFOUND,
                             "bus: %s/%d@%lld was never delivered to group %s", m->topic,
                             m->partition, (long long)m->offset, r->group);
    if (rc == 0 || l.done || l.attempts != m->attempt)
        return errdetail_set(r->e, CITRUS_ECONFLICT,
                             "bus: the lease of %s/%d@%lld attempt %d is over (committed, or"
                             " delivered again)",
                             m->topic, m->partition, (long long)m->offset, m->attempt);
    if (!r->dead) {
        char err[BUS_ERROR_MAX + 1];
        snprintf(err, sizeof(err), "%s", r->error);
        sqlite3_stmt *st = stmt_at(s, ST_LEASE_RETRY, r->group, m->topic, m->partition);
        if (!st)
            return db_fail(s, r->e, "prepare");
        sqlite3_bind_int64(st, 4, m->offset);
        sqlite3_bind_int64(st, 5, r->retry_at);
        sqlite3_bind_text(st, 6, err, -1, SQLITE_TRANSIENT);
        return run_stmt(s, st, r->e);
    }
    /* the stored message, not the caller's copy, goes to the dead letters */
    bus_message stored[1];
    memset(stored, 0, sizeof(stored));
    size_t n = 0;
    rc = fetch(s, m->topic, m->partition, m->offset, 1, stored, &n, r->e);
    if (rc == 0 && n == 1 && stored[0].offset == m->offset)
        rc = dead_letter(s, m->topic, &stored[0], r->error, m->attempt, r->e);
    for (size_t i = 0; i < n; i++) {
        free(stored[i].key);
        free(stored[i].value);
        free(stored[i].error);
    }
    if (rc == 0)
        rc = lease_off(s, ST_LEASE_DONE, r->group, m->topic, m->partition, m->offset, r->e);
    return rc < 0 ? rc : advance(s, r->group, m->topic, m->partition, c, r->e);
}

static int do_read(bsq *s, req *r)
{
    topic_row t;
    int64_t next, first;
    int rc = topic_part(s, r->topic, r->partition, &t, r->e);
    if (rc == 0)
        rc = part_next(s, r->topic, r->partition, &next, r->e);
    if (rc == 0)
        rc = part_first(s, r->topic, r->partition, &first, r->e);
    if (rc < 0)
        return rc;
    if (r->offset > next)
        return errdetail_set(r->e, CITRUS_EINVAL, "bus: %s/%d has offsets below %lld, not %lld",
                             r->topic, r->partition, (long long)next, (long long)r->offset);
    if (r->offset < first)
        return errdetail_set(r->e, CITRUS_ECOMPACTED,
                             "bus: %s/%d keeps offsets from %lld; %lld was trimmed", r->topic,
                             r->partition, (long long)first, (long long)r->offset);
    r->msgs = calloc(r->max, sizeof(*r->msgs));
    if (!r->msgs)
        return errdetail_set(r->e, CITRUS_ENOMEM, "bus: out of memory for a read");
    return fetch(s, r->topic, r->partition, r->offset, r->max, r->msgs, &r->nmsgs, r->e);
}

/* Deletes messages of one partition up to offset upto. */
static int trim_to(bsq *s, const char *topic, int part, int64_t upto, req *r)
{
    /* the partition's next offset, kept before the messages it is read
     * from go (see Offsets) */
    int64_t next = 0;
    int rc = part_next(s, topic, part, &next, r->e);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = stmt_at(s, ST_PART_SET, NULL, topic, part);
    if (!st)
        return db_fail(s, r->e, "prepare");
    sqlite3_bind_int64(st, 3, next);
    if ((rc = run_stmt(s, st, r->e)) < 0)
        return rc;
    st = stmt_at(s, ST_MSG_TRIM, NULL, topic, part);
    if (!st)
        return db_fail(s, r->e, "prepare");
    sqlite3_bind_int64(st, 3, upto);
    rc = run_stmt(s, st, r->e);
    if (rc == 0)
        r->deleted += sqlite3_changes(s->db);
    return rc;
}

static int trim_partition(bsq *s, const char *topic, const topic_row *t, int part, req *r)
{
    int rc = 0;
    int64_t upto = 0;
    if (t->retention_ms > 0) {
        sqlite3_stmt *st = stmt_at(s, ST_MSG_OLD, NULL, topic, part);
        if (st)
            sqlite3_bind_int64(st, 3, clock_wall_ms(s->b.cfg.clock) - t->retention_ms);
        rc = one_int(s, st, &upto, r->e);
        if (rc == 1)
            rc = trim_to(s, topic, part, upto, r);
    }
    if (rc < 0 || t->retention_bytes <= 0)
        return rc < 0 ? rc : 0;
    sqlite3_stmt *st = stmt_at(s, ST_MSG_SIZES, NULL, topic, part);
    if (!st)
        return db_fail(s, r->e, "prepare");
    int64_t sum = 0;
    bool over = false;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        sum += sqlite3_column_int64(st, 1);
        if (sum > t->retention_bytes) {
            upto = sqlite3_column_int64(st, 0);
            over = true;
            break;
        }
    }
    sqlite3_reset(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return db_fail(s, r->e, "read sizes");
    return over ? trim_to(s, topic, part, upto, r) : 0;
}

static int do_trim(bsq *s, req *r)
{
    sqlite3_stmt *st = stmt(s, ST_TOPIC_NAMES);
    if (!st)
        return db_fail(s, r->e, "prepare");
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0, step;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            char **g = realloc(names, (cap = cap ? cap * 2 : 16) * sizeof(*names));
            if (!g) {
                rc = errdetail_set(r->e, CITRUS_ENOMEM, "bus: out of memory trimming");
                break;
            }
            names = g;
        }
        const char *name = (const char *)sqlite3_column_text(st, 0);
        if (!(names[n] = dup_bytes(name, strlen(name))))
            rc = errdetail_set(r->e, CITRUS_ENOMEM, "bus: out of memory trimming");
        else
            n++;
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = db_fail(s, r->e, "list topics");
    sqlite3_reset(st);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        topic_row t;
        rc = topic_get(s, names[i], &t, r->e);
        for (int p = 0; rc == 0 && p < t.partitions; p++)
            rc = trim_partition(s, names[i], &t, p, r);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

/* Every topic with its partitions' ranges (topics_list). */
static int do_topics_list(bsq *s, req *r)
{
    sqlite3_stmt *st = stmt(s, ST_TOPIC_NAMES);
    if (!st)
        return db_fail(s, r->e, "prepare");
    size_t cap = 0;
    int rc = 0, step;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        if (r->ntopics == cap) {
            bus_topic_entry *g =
                realloc(r->topics, (cap = cap ? cap * 2 : 16) * sizeof(*r->topics));
            if (!g) {
                rc = errdetail_set(r->e, CITRUS_ENOMEM, "bus: out of memory listing topics");
                break;
            }
            r->topics = g;
        }
        bus_topic_entry *t = &r->topics[r->ntopics++];
        memset(t, 0, sizeof(*t));
        snprintf(t->name, sizeof(t->name), "%s", (const char *)sqlite3_column_text(st, 0));
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = db_fail(s, r->e, "list topics");
    sqlite3_reset(st);
    for (size_t i = 0; rc == 0 && i < r->ntopics; i++) {
        bus_topic_entry *t = &r->topics[i];
        topic_row row;
        if ((rc = topic_get(s, t->name, &row, r->e)) < 0)
            break;
        t->dlq = row.dlq;
        t->info = (bus_topic_info){.partitions = row.partitions,
                                   .retention_ms = row.retention_ms,
                                   .retention_bytes = row.retention_bytes};
        t->parts = calloc((size_t)row.partitions, sizeof(*t->parts));
        if (!t->parts)
            rc = errdetail_set(r->e, CITRUS_ENOMEM, "bus: out of memory listing topics");
        for (int p = 0; rc == 0 && p < row.partitions; p++) {
            bus_partition_range *pr = &t->parts[p];
            rc = part_next(s, t->name, p, &pr->high, r->e);
            if (rc == 0)
                rc = part_first(s, t->name, p, &pr->low, r->e);
            t->info.messages += pr->high - pr->low;
        }
    }
    return rc;
}

/* One row of groups_describe from a GRP_ALL/GRP_ONE row. */
static int group_row(bsq *s, sqlite3_stmt *st, bus_group_entry *g, errdetail *e)
{
    memset(g, 0, sizeof(*g));
    snprintf(g->group, sizeof(g->group), "%s", (const char *)sqlite3_column_text(st, 0));
    snprintf(g->topic, sizeof(g->topic), "%s", (const char *)sqlite3_column_text(st, 1));
    g->partition = sqlite3_column_int(st, 2);
    g->committed = sqlite3_column_int64(st, 3);
    int64_t low = 0;
    int rc = part_next(s, g->topic, g->partition, &g->end, e);
    if (rc == 0)
        rc = part_first(s, g->topic, g->partition, &low, e);
    if (rc < 0)
        return rc;
    g->lag = g->end - (g->committed > low ? g->committed : low);
    if (g->lag < 0)
        g->lag = 0;
    rc = one_int(s, stmt_at(s, ST_LEASE_OPEN, g->group, g->topic, g->partition), &g->in_flight, e);
    return rc < 0 ? rc : 0;
}

static int do_groups_describe(bsq *s, req *r)
{
    sqlite3_stmt *st = stmt(s, r->group ? ST_GRP_ONE : ST_GRP_ALL);
    if (!st)
        return db_fail(s, r->e, "prepare");
    sqlite3_bind_int64(st, 1, (int64_t)r->max + 1);
    if (r->group)
        sqlite3_bind_text(st, 2, r->group, -1, SQLITE_STATIC);
    r->groups = calloc(r->max, sizeof(*r->groups));
    if (!r->groups)
        return errdetail_set(r->e, CITRUS_ENOMEM, "bus: out of memory describing groups");
    int rc = 0, step;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        if (r->nmsgs == r->max) {
            r->more = true;
            break;
        }
        rc = group_row(s, st, &r->groups[r->nmsgs++], r->e);
    }
    if (rc == 0 && !r->more && step != SQLITE_DONE)
        rc = db_fail(s, r->e, "list groups");
    sqlite3_reset(st);
    return rc;
}

/* ---- the writer ---- */

/* Applies the batch in one transaction. False (every request failed with
 * CITRUS_EIO) when it did not commit. */
static bool batch_commit(bsq *s, req *batch)
{
    errdetail e = {0};
    int rc = exec_id(s, ST_BEGIN, &e);
    for (req *r = batch; rc == 0 && r; r = r->next) {
        if (r->bare) { /* see Batches */
            r->rc = r->run(s, r);
            if (r->rc == CITRUS_EIO) { /* it may have written part of itself */
                if (r->e)
                    e = *r->e;
                else
                    errdetail_set(&e, CITRUS_EIO, "bus: a write of the batch failed");
                rc = CITRUS_EIO;
            }
            continue;
        }
        if ((rc = exec_id(s, ST_SAVEPOINT, &e)) < 0)
            break;
        r->rc = r->run(s, r);
        if (r->rc < 0)
            rc = exec_id(s, ST_ROLLBACK_TO, &e);
        if (rc == 0)
            rc = exec_id(s, ST_RELEASE, &e);
    }
    if (rc == 0)
        rc = exec_id(s, ST_COMMIT, &e);
    if (rc == 0)
        return true;
    if (!sqlite3_get_autocommit(s->db))
        exec_id(s, ST_ROLLBACK, NULL);
    for (req *r = batch; r; r = r->next) {
        r->rc = CITRUS_EIO;
        if (r->e)
            *r->e = e;
    }
    return false;
}

/* A caller waits for its request's outcome on r->done as a futex, not on a
 * condition variable under mu: a sync wakes its callers without holding mu,
 * and each wakes once instead of waking and then queueing for mu behind the
 * others. The waker may call FUTEX_WAKE after the caller has returned (its
 * request gone): the kernel only hashes the address, and a wait that reuses
 * it rechecks its own flag. */
static void done_wait(req *r)
{
    while (!atomic_load_explicit(&r->done, memory_order_acquire))
        syscall(SYS_futex, &r->done, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
}

/* Wakes every caller of list with its outcome (no lock needed: the list is
 * the caller's alone); fails them with CITRUS_EIO first when err (an errno)
 * is set. */
static void release(req *list, int err)
{
    for (req *r = list, *next; r; r = next) {
        next = r->next; /* r is its caller's: gone once it wakes */
        if (err) {
            r->rc = CITRUS_EIO;
            if (r->e)
                errdetail_set(r->e, CITRUS_EIO, "bus: fdatasync of the log: %s", strerror(err));
        }
        atomic_int *w = &r->done;
        atomic_store_explicit(w, 1, memory_order_release);
        syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
}

/* Syncs the WAL and wakes batch's callers (mu held on entry and on
 * return, not during the sync); syncing is set meanwhile. */
static void sync_release(bsq *s, req *batch)
{
    s->syncing = true;
    int err = s->broken;
    int (*sync)(int) = s->sync;
    pthread_mutex_unlock(&s->mu);
    if (!err && sync(s->wal_fd) != 0)
        err = errno ? errno : EIO;
    pthread_mutex_lock(&s->mu);
    if (err && !s->broken)
        s->broken = err;
    s->syncs += !err;
    s->syncing = false;
    s->last_sync_n = 0;
    for (req *r = batch; r; r = r->next)
        s->last_sync_n++;
    pthread_mutex_unlock(&s->mu);
    release(batch, err);
    pthread_mutex_lock(&s->mu);
}

static void *writer_main(void *arg)
{
    bsq *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->stopping && !s->q_head)
            pthread_cond_wait(&s->writer_cond, &s->mu);
        if (!s->q_head)
            break; /* stopping, and nothing left to do */
        req *batch = s->q_head, *tail = s->q_tail;
        s->q_head = s->q_tail = NULL;
        if (s->broken) {
            release(batch, s->broken);
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        bool committed = batch_commit(s, batch);
        if (committed) /* start the frames' writeback (see Pipelined sync) */
            sync_file_range(s->wal_fd, 0, 0, SYNC_FILE_RANGE_WRITE);
        pthread_mutex_lock(&s->mu);
        if (!committed) {
            release(batch, 0); /* failed with CITRUS_EIO, nothing written */
            continue;
        }
        s->commits++;
        if (!s->syncing && !s->c_head && !s->q_head && s->last_sync_n <= 1) {
            /* a lone caller (the last sync held one, nothing else waits):
             * sync here and spare it the hand-off to the syncer */
            sync_release(s, batch);
            continue;
        }
        if (s->c_tail)
            s->c_tail->next = batch;
        else
            s->c_head = batch;
        s->c_tail = tail;
        pthread_cond_signal(&s->syncer_cond);
    }
    s->writer_done = true;
    pthread_cond_signal(&s->syncer_cond);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Makes every committed batch durable, then wakes its callers: each
 * fdatasync covers all that was committed before it began. */
static void *syncer_main(void *arg)
{
    bsq *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->c_head && !s->writer_done)
            pthread_cond_wait(&s->syncer_cond, &s->mu);
        if (!s->c_head)
            break; /* the writer is done and everything is synced */
        req *batch = s->c_head;
        s->c_head = s->c_tail = NULL;
        sync_release(s, batch);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Queues r for the writer and waits for its outcome. */
static int submit(bsq *s, req *r, int (*run)(bsq *, req *), errdetail *e)
{
    r->run = run;
    r->e = e;
    r->next = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->stopping || s->broken) {
        int broken = s->broken;
        pthread_mutex_unlock(&s->mu);
        return broken ? errdetail_set(e, CITRUS_EIO, "bus: fdatasync of the log failed earlier: %s",
                                      strerror(broken))
                      : errdetail_set(e, CITRUS_ECLOSED, "bus: closed");
    }
    atomic_init(&r->done, 0);
    bool first = !s->q_head;
    if (s->q_tail)
        s->q_tail->next = r;
    else
        s->q_head = r;
    s->q_tail = r;
    if (first) /* the writer waits only for an empty queue to fill */
        pthread_cond_signal(&s->writer_cond);
    pthread_mutex_unlock(&s->mu);
    done_wait(r);
    return r->rc;
}

int64_t bus_sqlite_commits(bus *b)
{
    bsq *s = (bsq *)b;
    pthread_mutex_lock(&s->mu);
    int64_t n = s->commits;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void bus_sqlite_set_sync(bus *b, int (*sync)(int fd))
{
    bsq *s = (bsq *)b;
    pthread_mutex_lock(&s->mu);
    s->sync = sync ? sync : fdatasync;
    pthread_mutex_unlock(&s->mu);
}

int64_t bus_sqlite_syncs(bus *b)
{
    bsq *s = (bsq *)b;
    pthread_mutex_lock(&s->mu);
    int64_t n = s->syncs;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* ---- bus_ops ---- */

static int op_topic_create(bus *b, const char *name, const bus_topic_opts *o, errdetail *e)
{
    req r = {.topic = name, .opts = o};
    return submit((bsq *)b, &r, do_topic_create, e);
}

static int op_topic_describe(bus *b, const char *name, bus_topic_info *out, errdetail *e)
{
    req r = {.topic = name, .info = out};
    return submit((bsq *)b, &r, do_topic_describe, e);
}

static int op_publish(bus *b, const char *topic, const void *key, size_t key_len, const void *value,
                      size_t value_len, int *partition, int64_t *offset, errdetail *e)
{
    req r = {.topic = topic,
             .key = key,
             .key_len = key_len,
             .value = value,
             .value_len = value_len,
             .bare = true};
    int rc = submit((bsq *)b, &r, do_publish, e);
    *partition = r.partition;
    *offset = r.offset;
    return rc;
}

static int op_publish_batch(bus *b, const char *topic, const bus_record *recs, size_t n,
                            int *partitions, int64_t *offsets, errdetail *e)
{
    req r = {
        .topic = topic, .recs = recs, .max = n, .parts = partitions, .offs = offsets, .bare = true};
    return submit((bsq *)b, &r, do_publish_batch, e);
}

static int op_poll(bus *b, const char *group, const char *topic, size_t max, int64_t vis_ms,
                   bus_message **out, size_t *n, errdetail *e)
{
    req r = {.group = group, .topic = topic, .max = max, .vis_ms = vis_ms};
    int rc = submit((bsq *)b, &r, do_poll, e);
    *out = r.msgs;
    *n = r.nmsgs;
    if (rc == 0 && r.nmsgs == 0) {
        free(r.msgs);
        *out = NULL;
    }
    return rc;
}

static int op_commit(bus *b, const char *group, const bus_message *m, errdetail *e)
{
    req r = {.group = group, .m = m};
    return submit((bsq *)b, &r, do_commit, e);
}

static int op_commit_batch(bus *b, const char *group, const bus_message *const *msgs, size_t n,
                           int *rcs, errdetail *e)
{
    errdetail first = {0};
    req r = {.group = group, .cmsgs = msgs, .max = n, .crcs = rcs};
    int rc = submit((bsq *)b, &r, do_commit_batch, &first);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (rcs[i] < 0)
            rc = rcs[i];
    if (rc < 0 && e)
        *e = first;
    return rc;
}

static int op_nack(bus *b, const char *group, const bus_message *m, const char *error,
                   int64_t retry_at, bool dead, errdetail *e)
{
    req r = {.group = group, .m = m, .error = error, .retry_at = retry_at, .dead = dead};
    return submit((bsq *)b, &r, do_nack, e);
}

static int op_read(bus *b, const char *topic, int partition, int64_t from, size_t limit,
                   bus_message **out, size_t *n, errdetail *e)
{
    req r = {.topic = topic, .partition = partition, .offset = from, .max = limit};
    int rc = submit((bsq *)b, &r, do_read, e);
    *out = r.msgs;
    *n = r.nmsgs;
    if (rc == 0 && r.nmsgs == 0) {
        free(r.msgs);
        *out = NULL;
    }
    return rc;
}

static int op_trim(bus *b, int64_t *deleted, errdetail *e)
{
    req r = {0};
    int rc = submit((bsq *)b, &r, do_trim, e);
    *deleted = rc == 0 ? r.deleted : 0;
    return rc;
}

static int op_topics_list(bus *b, bus_topic_entry **out, size_t *n, errdetail *e)
{
    req r = {0};
    int rc = submit((bsq *)b, &r, do_topics_list, e);
    *out = r.topics;
    *n = r.ntopics;
    return rc;
}

static int op_groups_describe(bus *b, const char *group, size_t max, bus_group_entry **out,
                              size_t *n, bool *more, errdetail *e)
{
    req r = {.group = group, .max = max};
    int rc = submit((bsq *)b, &r, do_groups_describe, e);
    *out = r.groups;
    *n = r.nmsgs;
    *more = r.more;
    return rc;
}

static void op_close(bus *b)
{
    bsq *s = (bsq *)b;
    if (s->writer_started) {
        pthread_mutex_lock(&s->mu);
        s->stopping = true;
        pthread_cond_broadcast(&s->writer_cond);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->writer, NULL);
    }
    if (s->syncer_started) {
        pthread_mutex_lock(&s->mu);
        s->writer_done = true; /* also when the writer never started */
        pthread_cond_broadcast(&s->syncer_cond);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->syncer, NULL);
    }
    cache_drop(s);
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    if (s->db)
        sqlite3_close(s->db);
    if (s->wal_fd >= 0)
        close(s->wal_fd);
    free(s->wal_path);
    pthread_cond_destroy(&s->writer_cond);
    pthread_cond_destroy(&s->syncer_cond);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static const bus_ops sqlite_ops = {.name = "embedded",
                                   .topic_create = op_topic_create,
                                   .topic_describe = op_topic_describe,
                                   .publish = op_publish,
                                   .poll = op_poll,
                                   .commit = op_commit,
                                   .nack = op_nack,
                                   .read = op_read,
                                   .trim = op_trim,
                                   .close = op_close,
                                   .topics_list = op_topics_list,
                                   .groups_describe = op_groups_describe,
                                   .publish_batch = op_publish_batch,
                                   .commit_batch = op_commit_batch};

static int db_open(bsq *s, const char *path, errdetail *e)
{
    int rc = sqlite3_open_v2(
        path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK)
        return errdetail_set(e, CITRUS_EIO, "bus: open %s: %s", path,
                             s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    sqlite3_stmt *st = NULL;
    int version = -1;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version < 0 || version > SCHEMA_VERSION)
        return errdetail_set(e, CITRUS_EIO, "bus: %s is not a bus log this build reads (%s)", path,
                             version < 0 ? sqlite3_errmsg(s->db) : "newer schema");
    char *wal = NULL;
    st = NULL;
    if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        wal = (char *)sqlite3_column_text(st, 0);
    bool is_wal = wal && strcmp(wal, "wal") == 0;
    sqlite3_finalize(st);
    if (!is_wal)
        return errdetail_set(e, CITRUS_EIO, "bus: %s: cannot enable WAL: %s", path,
                             sqlite3_errmsg(s->db));
    if (sqlite3_exec(s->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(s->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        rc = errdetail_set(e, CITRUS_EIO, "bus: %s: creating tables: %s", path,
                           sqlite3_errmsg(s->db));
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    /* see Pipelined sync */
    size_t n = strlen(path) + sizeof("-wal");
    if (!(s->wal_path = malloc(n)))
        return errdetail_set(e, CITRUS_ENOMEM, "bus: out of memory");
    snprintf(s->wal_path, n, "%s-wal", path);
    /* the WAL exists from the commit above on, until the last connection
     * (this one) closes */
    if ((s->wal_fd = open(s->wal_path, O_RDONLY | O_CLOEXEC)) < 0)
        return errdetail_set(e, CITRUS_EIO, "bus: open %s: %s", s->wal_path, strerror(errno));
    if (sqlite3_exec(s->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(s, e, "synchronous = NORMAL");
    sqlite3_wal_autocheckpoint(s->db, CKPT_FRAMES);
    return 0;
}

int bus_open_sqlite(const char *path, const bus_config *cfg, bus **out, errdetail *e)
{
    *out = NULL;
    if (!path || !*path)
        return errdetail_set(e, CITRUS_EINVAL, "bus: no path");
    bsq *s = calloc(1, sizeof(*s));
    if (!s)
        return errdetail_set(e, CITRUS_ENOMEM, "bus: out of memory");
    s->b.ops = &sqlite_ops;
    s->wal_fd = -1;
    s->sync = fdatasync;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->writer_cond, NULL);
    pthread_cond_init(&s->syncer_cond, NULL);
    int rc = bus_config_complete(cfg, &s->b.cfg, e);
    if (rc == 0)
        rc = db_open(s, path, e);
    if (rc == 0) {
        if (pthread_create(&s->syncer, NULL, syncer_main, s) != 0)
            rc = errdetail_set(e, CITRUS_ENOMEM, "bus: cannot start the syncer thread");
        else
            s->syncer_started = true;
    }
    if (rc == 0) {
        if (pthread_create(&s->writer, NULL, writer_main, s) != 0)
            rc = errdetail_set(e, CITRUS_ENOMEM, "bus: cannot start the writer thread");
        else
            s->writer_started = true;
    }
    if (rc < 0) {
        op_close(&s->b);
        return rc;
    }
    *out = &s->b;
    return 0;
}
