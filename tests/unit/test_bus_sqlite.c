/* tests/unit/test_bus_sqlite.c — the embedded bus: the bus conformance
 * suite, then what only the file has: files that cannot be opened or are no
 * bus log, leases and committed offsets kept across a reopen, every
 * acknowledged publish kept across kill -9 of the publishing process, no
 * answer before the fdatasync that covers it, a failed write leaving
 * nothing (and no offset skipped), and a failed fdatasync failing its
 * callers and every later call.
 *
 * Every log is a fresh file in one mkdtemp directory, removed at the end. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus/bus_sqlite.h"
#include "sys/clock.h"
#include "bus_conformance.h"
#include "support_pg.h"

#include "citrus/errors.h"

static char tmpdir[128];
static int db_seq;

static void new_path(char *buf, size_t len)
{
    snprintf(buf, len, "%s/bus-%03d.db", tmpdir, ++db_seq);
}

/* ---- the conformance suite ---- */

static int conf_open(void *ctx, const bus_config *cfg, bus **out)
{
    char path[PATH_MAX];
    new_path(path, sizeof(path));
    errdetail e = {0};
    int rc = bus_open_sqlite(path, cfg, out, &e);
    if (rc != 0)
        fprintf(stderr, "bus_open_sqlite(%s): %s\n", path, e.message);
    return rc;
}

static void conf_close(void *ctx, bus *b)
{
    bus_close(b);
}

static const bus_conformance_factory factory = {
    .name = "embedded", .open = conf_open, .close = conf_close};

/* ---- the file ---- */

static void expect_open_fails(const char *path)
{
    bus *b = (bus *)&b;
    errdetail e = {0};
    assert_int_equal(bus_open_sqlite(path, NULL, &b, &e), CITRUS_EIO);
    assert_null(b);
    assert_non_null(strstr(e.message, "bus"));
}

static void test_open_fails(void **state)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/no-such-dir/bus.db", tmpdir);
    expect_open_fails(path);
    assert_int_equal(tmp_write_garbage(tmpdir, "garbage.db", path, sizeof(path)), 0);
    expect_open_fails(path);
    new_path(path, sizeof(path));
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    expect_open_fails(path);
    bus *b = NULL;
    assert_int_equal(bus_open_sqlite("", NULL, &b, NULL), CITRUS_EINVAL);
    /* a message limit below the key limit: the key alone can pass it */
    bus_config small = {.max_message_bytes = 10};
    new_path(path, sizeof(path));
    assert_int_equal(bus_open_sqlite(path, &small, &b, NULL), 0);
    assert_int_equal(bus_topic_create(b, "t", &(bus_topic_opts){.partitions = 1}, NULL), 0);
    assert_int_equal(bus_publish(b, "t", "0123456789x", 11, NULL, 0, NULL, NULL, NULL),
                     CITRUS_ETOOBIGVAL);
    assert_int_equal(bus_publish(b, "t", "01234", 5, "56789", 5, NULL, NULL, NULL), 0);
    assert_int_equal(bus_publish(b, "t", "01234", 5, "56789x", 6, NULL, NULL, NULL),
                     CITRUS_ETOOBIGVAL);
    bus_close(b);
    bus_config bad = {.backoff_base_ms = 10, .backoff_cap_ms = 5};
    new_path(path, sizeof(path));
    assert_int_equal(bus_open_sqlite(path, &bad, &b, NULL), CITRUS_EINVAL);
    assert_null(b);
    bad = (bus_config){.backoff_cap_ms = BUS_BACKOFF_MAX_MS + 1};
    assert_int_equal(bus_open_sqlite(path, &bad, &b, NULL), CITRUS_EINVAL);
}

/* Committed offsets and leases are in the file: a reopened log redelivers
 * what was leased and not committed (attempt counted on), nothing else. */
static void test_reopen_keeps_groups(void **state)
{
    char path[PATH_MAX];
    new_path(path, sizeof(path));
    sysclock *clk = clock_test_new(0, 1700000000000LL);
    bus_config cfg = {.clock = clk};
    bus *b;
    assert_int_equal(bus_open_sqlite(path, &cfg, &b, NULL), 0);
    assert_int_equal(bus_topic_create(b, "t", &(bus_topic_opts){.partitions = 1}, NULL), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(bus_publish(b, "t", "k", 1, "v", 1, NULL, NULL, NULL), 0);
    bus_message *m;
    size_t n;
    assert_int_equal(bus_poll(b, "g", "t", 2, 1000, &m, &n, NULL), 0);
    assert_int_equal(n, 2);
    assert_int_equal(bus_commit(b, "g", &m[0], NULL), 0);
    bus_messages_free(m, n);
    bus_close(b);

    assert_int_equal(bus_open_sqlite(path, &cfg, &b, NULL), 0);
    assert_int_equal(bus_poll(b, "g", "t", 10, 1000, &m, &n, NULL), 0);
    assert_int_equal(n, 0); /* offset 1's lease still runs */
    clock_test_advance(clk, 1000);
    assert_int_equal(bus_poll(b, "g", "t", 10, 1000, &m, &n, NULL), 0);
    assert_int_equal(n, 2);
    assert_int_equal(m[0].offset, 1);
    assert_int_equal(m[0].attempt, 2);
    assert_int_equal(m[1].offset, 2);
    assert_int_equal(m[1].attempt, 1);
    bus_messages_free(m, n);
    bus_close(b);
    clock_test_free(clk);
}

#define GC_THREADS 8
#define GC_EACH 100

static void *gc_publish(void *arg)
{
    for (int i = 0; i < GC_EACH; i++)
        if (bus_publish(arg, "t", "k", 1, "v", 1, NULL, NULL, NULL) != 0)
            return arg;
    return NULL;
}

/* Concurrent publishers share commits: 800 publishes in fewer
 * transactions (each one an fsync). */
static void test_group_commit(void **state)
{
    char path[PATH_MAX];
    new_path(path, sizeof(path));
    bus *b;
    assert_int_equal(bus_open_sqlite(path, NULL, &b, NULL), 0);
    assert_int_equal(bus_topic_create(b, "t", &(bus_topic_opts){.partitions = 2}, NULL), 0);
    int64_t c0 = bus_sqlite_commits(b);
    assert_int_equal(c0, 1);
    pthread_t th[GC_THREADS];
    for (int i = 0; i < GC_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, gc_publish, b), 0);
    for (int i = 0; i < GC_THREADS; i++) {
        void *failed = b;
        pthread_join(th[i], &failed);
        assert_null(failed);
    }
    int64_t commits = bus_sqlite_commits(b) - c0;
    assert_true(commits < GC_THREADS * GC_EACH);
    assert_true(bus_sqlite_syncs(b) <= bus_sqlite_commits(b)); /* a sync covers >= 1 commit */
    bus_topic_info info;
    assert_int_equal(bus_topic_describe(b, "t", &info, NULL), 0);
    assert_int_equal(info.messages, GC_THREADS * GC_EACH);
    bus_close(b);
}

/* What the child reports per acknowledged publish. */
typedef struct ack {
    int seq, partition;
    int64_t offset;
} ack;

#define KILL_AFTER 300

static void child_publish(const char *path, int fd)
{
    bus *b;
    if (bus_open_sqlite(path, NULL, &b, NULL) != 0)
        _exit(2);
    for (int i = 0;; i++) {
        char key[16], val[32];
        snprintf(key, sizeof(key), "k%d", i % 8);
        snprintf(val, sizeof(val), "v%d", i);
        ack a = {.seq = i};
        if (bus_publish(b, "t", key, strlen(key), val, strlen(val), &a.partition, &a.offset,
                        NULL) != 0 ||
            write(fd, &a, sizeof(a)) != (ssize_t)sizeof(a))
            _exit(3);
    }
}

/* A child publishes and reports each acknowledgement over a pipe; the
 * parent kills it with SIGKILL after KILL_AFTER of them. Every message
 * acknowledged (also those reported between the last read and the kill) is
 * in the reopened log, where it was acknowledged. */
static void test_kill9_keeps_acknowledged(void **state)
{
    char path[PATH_MAX];
    new_path(path, sizeof(path));
    bus *b;
    assert_int_equal(bus_open_sqlite(path, NULL, &b, NULL), 0);
    assert_int_equal(bus_topic_create(b, "t", &(bus_topic_opts){.partitions = 4}, NULL), 0);
    bus_close(b); /* no thread of ours left when we fork */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        child_publish(path, fds[1]);
    }
    close(fds[1]);
    static ack acks[1 << 16];
    size_t n = 0, got = 0;
    char *buf = (char *)acks;
    while (n < KILL_AFTER) {
        ssize_t r = read(fds[0], buf + got, sizeof(ack));
        assert_true(r > 0);
        got += (size_t)r;
        n = got / sizeof(ack);
    }
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    ssize_t r;
    while (got < sizeof(acks) && (r = read(fds[0], buf + got, sizeof(acks) - got)) > 0)
        got += (size_t)r;
    close(fds[0]);
    n = got / sizeof(ack);
    assert_true(n >= KILL_AFTER);

    assert_int_equal(bus_open_sqlite(path, NULL, &b, NULL), 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(acks[i].seq, (int)i);
        bus_message *m;
        size_t k;
        errdetail e = {0};
        int rc = bus_read(b, "t", acks[i].partition, acks[i].offset, 1, &m, &k, &e);
        if (rc != 0)
            fail_msg("ack %zu: %d %s", i, rc, e.message);
        assert_int_equal(k, 1);
        char want[32];
        snprintf(want, sizeof(want), "v%zu", i);
        assert_string_equal((char *)m[0].value, want);
        bus_messages_free(m, k);
    }
    bus_close(b);
}

/* The optional ops (bus.h): a backend without them answers
 * CITRUS_EUNSUPPORTED naming itself, and outputs stay empty. */
static void test_optional_ops_unsupported(void **state)
{
    (void)state;
    static const bus_ops none = {.name = "bare"};
    bus fb = {.ops = &none};
    assert_int_equal(bus_config_complete(NULL, &fb.cfg, NULL), 0);
    errdetail e = {0};
    bus_topic_entry *t = (bus_topic_entry *)&t;
    size_t n = 3;
    assert_int_equal(bus_topics_list(&fb, &t, &n, &e), CITRUS_EUNSUPPORTED);
    assert_null(t);
    assert_int_equal(n, 0);
    assert_non_null(strstr(e.message, "bare"));
    bus_group_entry *g = (bus_group_entry *)&g;
    bool more = true;
    n = 3;
    assert_int_equal(bus_groups_describe(&fb, NULL, 10, &g, &n, &more, &e), CITRUS_EUNSUPPORTED);
    assert_null(g);
    assert_int_equal(n, 0);
    assert_false(more);
    assert_non_null(strstr(e.message, "consumer groups"));
}

/* Without the backend's publish_batch, bus_publish_batch publishes one
 * record after another, through publish. */
static void test_publish_batch_fallback(void **state)
{
    (void)state;
    char path[PATH_MAX];
    new_path(path, sizeof(path));
    bus *b = NULL;
    assert_int_equal(bus_open_sqlite(path, NULL, &b, NULL), 0);
    const bus_ops *own = b->ops;
    bus_ops without = *own;
    without.publish_batch = NULL;
    b->ops = &without;
    assert_int_equal(bus_topic_create(b, "t", &(bus_topic_opts){.partitions = 1}, NULL), 0);
    int64_t commits = bus_sqlite_commits(b);
    bus_record recs[3] = {{"k", 1, "1", 1}, {"k", 1, "2", 1}, {"k", 1, "3", 1}};
    int64_t offs[3];
    size_t done = 0;
    assert_int_equal(bus_publish_batch(b, "t", recs, 3, NULL, offs, &done, NULL), 0);
    assert_int_equal(done, 3);
    assert_int_equal(offs[2], 2);
    assert_int_equal(bus_sqlite_commits(b) - commits, 3); /* one publish each */
    b->ops = own;
    commits = bus_sqlite_commits(b);
    assert_int_equal(bus_publish_batch(b, "t", recs, 3, NULL, offs, &done, NULL), 0);
    assert_int_equal(offs[0], 3);
    assert_int_equal(bus_sqlite_commits(b) - commits, 1); /* the op: one commit */
    bus_close(b);
}

/* A new log with the topic "t" of one partition; its path in path. */
static bus *open_t(char *path, size_t len)
{
    new_path(path, len);
    bus *b = NULL;
    assert_int_equal(bus_open_sqlite(path, NULL, &b, NULL), 0);
    assert_int_equal(bus_topic_create(b, "t", &(bus_topic_opts){.partitions = 1}, NULL), 0);
    return b;
}

/* ---- a write that fails ---- */

/* Makes every insert of the value "boom" fail inside the bus's own
 * transaction (a trigger, added through a second connection), as a disk
 * error would: mid-request, after the partition's offset was read. */
static void arm_boom(const char *path, bool on)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    const char *sql = on ? "CREATE TRIGGER boom BEFORE INSERT ON bus_messages"
                           " WHEN CAST(NEW.value AS TEXT) = 'boom'"
                           " BEGIN SELECT RAISE(ABORT, 'injected'); END;"
                         : "DROP TRIGGER boom;";
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

typedef struct boom_arg {
    bus *b;
    int id;
    int ok;            /* publishes answered 0 */
    char vals[50][16]; /* their values */
    int64_t offs[50];  /* and offsets */
    int eio;           /* answered CITRUS_EIO */
} boom_arg;

static void *boom_pub(void *arg)
{
    boom_arg *a = arg;
    for (int i = 0; i < 50; i++) {
        char v[16];
        if (a->id == 0 && i % 10 == 0)
            snprintf(v, sizeof(v), "boom");
        else
            snprintf(v, sizeof(v), "%d-%d", a->id, i);
        int64_t off = -1;
        int rc = bus_publish(a->b, "t", v, strlen(v), v, strlen(v), NULL, &off, NULL);
        if (rc == 0) {
            snprintf(a->vals[a->ok], sizeof(a->vals[0]), "%s", v);
            a->offs[a->ok++] = off;
        } else {
            assert_int_equal(rc, CITRUS_EIO);
            a->eio++;
        }
    }
    return NULL;
}

/* A publish whose write fails leaves nothing, and takes its batch with it:
 * no half of a publish_batch, no offset skipped or reused afterwards (the
 * writer's cached next offsets are dropped with the rollback), every
 * publish answered 0 on the log at its offset, and none answered otherwise
 * there. */
static void test_failed_write_leaves_nothing(void **state)
{
    (void)state;
    char path[PATH_MAX];
    bus *b = open_t(path, sizeof(path));
    int64_t off = -1;
    assert_int_equal(bus_publish(b, "t", "k", 1, "a", 1, NULL, &off, NULL), 0);
    assert_int_equal(off, 0);
    arm_boom(path, true);
    bus_record recs[2] = {{"k", 1, "x", 1}, {"k", 1, "boom", 4}};
    int64_t offs[2];
    size_t done = 0;
    errdetail e = {0};
    assert_int_equal(bus_publish_batch(b, "t", recs, 2, NULL, offs, &done, &e), CITRUS_EIO);
    assert_non_null(strstr(e.message, "injected"));
    assert_int_equal(bus_publish(b, "t", "k", 1, "b", 1, NULL, &off, NULL), 0);
    assert_int_equal(off, 1); /* not 2: "x" went with its batch */

    boom_arg args[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        args[i] = (boom_arg){.b = b, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, boom_pub, &args[i]), 0);
    }
    int ok = 0, eio = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        ok += args[i].ok;
        eio += args[i].eio;
    }
    assert_true(eio >= 5); /* each boom, and whatever shared its batch */
    bus_message *m = NULL;
    size_t n = 0;
    assert_int_equal(bus_read(b, "t", 0, 0, 1000, &m, &n, NULL), 0);
    assert_int_equal(n, (size_t)ok + 2);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(m[i].offset, (int64_t)i); /* none skipped */
        assert_false(m[i].value_len == 4 && memcmp(m[i].value, "boom", 4) == 0);
    }
    for (int t = 0; t < 8; t++)
        for (int i = 0; i < args[t].ok; i++) {
            const bus_message *at = &m[args[t].offs[i]];
            assert_int_equal(at->value_len, strlen(args[t].vals[i]));
            assert_memory_equal(at->value, args[t].vals[i], at->value_len);
        }
    bus_messages_free(m, n);
    bus_close(b);

    /* the next offset comes from the file, not from a cache */
    arm_boom(path, false);
    assert_int_equal(bus_open_sqlite(path, NULL, &b, NULL), 0);
    assert_int_equal(bus_publish(b, "t", "k", 1, "c", 1, NULL, &off, NULL), 0);
    assert_int_equal(off, (int64_t)ok + 2);
    bus_close(b);
}

/* Offsets are never reused, also when retention emptied a partition and the
 * log was reopened: its next offset is kept in the file before the trim
 * deletes the messages it would otherwise be read from. */
static void test_trim_keeps_next_offset_across_reopen(void **state)
{
    (void)state;
    char path[PATH_MAX];
    new_path(path, sizeof(path));
    sysclock *clock = clock_test_new(5000, 1700000000000);
    bus_config cfg = {.clock = clock};
    bus *b;
    assert_int_equal(bus_open_sqlite(path, &cfg, &b, NULL), 0);
    assert_int_equal(
        bus_topic_create(b, "t", &(bus_topic_opts){.partitions = 1, .retention_ms = 1000}, NULL),
        0);
    int64_t off = -1;
    for (int i = 0; i < 3; i++)
        assert_int_equal(bus_publish(b, "t", "k", 1, "v", 1, NULL, &off, NULL), 0);
    assert_int_equal(off, 2);
    clock_test_advance(clock, 1001);
    int64_t deleted = 0;
    assert_int_equal(bus_trim(b, &deleted, NULL), 0);
    assert_int_equal(deleted, 3);
    bus_close(b);
    assert_int_equal(bus_open_sqlite(path, &cfg, &b, NULL), 0);
    bus_topic_info info;
    assert_int_equal(bus_topic_describe(b, "t", &info, NULL), 0);
    assert_int_equal(info.messages, 0);
    assert_int_equal(bus_publish(b, "t", "k", 1, "w", 1, NULL, &off, NULL), 0);
    assert_int_equal(off, 3);
    bus_close(b);
    clock_test_free(clock);
}

/* ---- the sync ---- */

static atomic_int gate_open, gate_syncs;
static int gated_sync(int fd)
{
    atomic_fetch_add(&gate_syncs, 1);
    while (!atomic_load(&gate_open))
        usleep(1000);
    return fdatasync(fd);
}

typedef struct pub_arg {
    bus *b;
    atomic_int done;
    int rc;
} pub_arg;

static void *pub_one(void *arg)
{
    pub_arg *a = arg;
    a->rc = bus_publish(a->b, "t", "k", 1, "v", 1, NULL, NULL, NULL);
    atomic_store(&a->done, 1);
    return NULL;
}

/* A publish is committed first, answered only once the fdatasync after
 * its commit has returned. */
static void test_answer_waits_for_sync(void **state)
{
    (void)state;
    char path[PATH_MAX];
    bus *b = open_t(path, sizeof(path));
    atomic_store(&gate_open, 0);
    atomic_store(&gate_syncs, 0);
    bus_sqlite_set_sync(b, gated_sync);
    int64_t c0 = bus_sqlite_commits(b);
    pub_arg a = {.b = b};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, pub_one, &a), 0);
    /* bounded: the commit and the sync's start take microseconds */
    for (int i = 0; i < 5000 && (bus_sqlite_commits(b) == c0 || !atomic_load(&gate_syncs)); i++)
        usleep(1000);
    assert_int_equal(bus_sqlite_commits(b), c0 + 1);
    assert_int_equal(atomic_load(&gate_syncs), 1);
    usleep(20000);
    assert_int_equal(atomic_load(&a.done), 0); /* committed, not yet durable: no answer */
    atomic_store(&gate_open, 1);
    pthread_join(th, NULL);
    assert_int_equal(a.rc, 0);
    bus_sqlite_set_sync(b, NULL);
    bus_close(b);
}

static int failing_sync(int fd)
{
    (void)fd;
    errno = EIO;
    return -1;
}

/* A failed fdatasync fails the publish it held with CITRUS_EIO, and every
 * later call too (the page cache's state is unknown after it), until the
 * log is reopened; what was acknowledged before is still there. */
static void test_failed_sync_breaks_the_bus(void **state)
{
    (void)state;
    char path[PATH_MAX];
    bus *b = open_t(path, sizeof(path));
    assert_int_equal(bus_publish(b, "t", "k", 1, "before", 6, NULL, NULL, NULL), 0);
    bus_sqlite_set_sync(b, failing_sync);
    errdetail e = {0};
    assert_int_equal(bus_publish(b, "t", "k", 1, "lost", 4, NULL, NULL, &e), CITRUS_EIO);
    assert_non_null(strstr(e.message, "fdatasync"));
    bus_sqlite_set_sync(b, NULL);
    e = (errdetail){0};
    assert_int_equal(bus_publish(b, "t", "k", 1, "after", 5, NULL, NULL, &e), CITRUS_EIO);
    assert_non_null(strstr(e.message, "fdatasync"));
    bus_topic_info info;
    assert_int_equal(bus_topic_describe(b, "t", &info, NULL), CITRUS_EIO);
    bus_close(b);
    assert_int_equal(bus_open_sqlite(path, NULL, &b, NULL), 0);
    bus_message *m = NULL;
    size_t n = 0;
    assert_int_equal(bus_read(b, "t", 0, 0, 10, &m, &n, NULL), 0);
    assert_true(n >= 1);
    assert_int_equal(m[0].value_len, 6);
    assert_memory_equal(m[0].value, "before", 6);
    bus_messages_free(m, n);
    bus_close(b);
}

int main(void)
{
    if (tmp_dir_create(tmpdir, sizeof(tmpdir), "bus") != 0)
        return 1;
    size_t n;
    const struct CMUnitTest *conf = bus_conformance_tests(&factory, &n);
    int failed = _cmocka_run_group_tests("bus_conformance(embedded)", conf, n, NULL, NULL);
    const struct CMUnitTest own[] = {
        cmocka_unit_test(test_open_fails),
        cmocka_unit_test(test_reopen_keeps_groups),
        cmocka_unit_test(test_group_commit),
        cmocka_unit_test(test_kill9_keeps_acknowledged),
        cmocka_unit_test(test_optional_ops_unsupported),
        cmocka_unit_test(test_publish_batch_fallback),
        cmocka_unit_test(test_failed_write_leaves_nothing),
        cmocka_unit_test(test_trim_keeps_next_offset_across_reopen),
        cmocka_unit_test(test_answer_waits_for_sync),
        cmocka_unit_test(test_failed_sync_breaks_the_bus),
    };
    failed += cmocka_run_group_tests_name("bus_sqlite", own, NULL, NULL);
    if (failed == 0)
        tmp_dir_remove(tmpdir);
    return failed ? 1 : 0;
}
