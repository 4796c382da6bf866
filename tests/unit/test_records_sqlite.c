/* tests/unit/test_records_sqlite.c — the records store on SQLite: the
 * records conformance suite, then what only the file has (a path that
 * cannot be opened, a file that is no database, WAL on disk, a write that
 * fails under an open store, a schema from a newer build).
 *
 * Every store is a fresh file in one mkdtemp directory, removed at the end.
 * The tests run as root, so a chmod would not stop a write: unwritable
 * means a parent that is a regular file, or the store's WAL descriptor
 * swapped for a read-only one under it. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "records_conformance.h"
#include "support_pg.h"

#include "citrus/errors.h"
#include "records/registrations.h"

static char tmpdir[128];
static int db_seq;
static char last_path[PATH_MAX];

static void new_path(char *buf, size_t len)
{
    snprintf(buf, len, "%s/records-%03d.db", tmpdir, ++db_seq);
}

/* ---- the conformance suite ---------------------------------------------------- */

static int conf_open(void *ctx, records **out)
{
    new_path(last_path, sizeof(last_path));
    errdetail e = {0};
    int rc = records_open_sqlite(last_path, out, &e);
    if (rc != 0)
        fprintf(stderr, "records_open_sqlite(%s): %s\n", last_path, e.message);
    return rc;
}

static int conf_reopen(void *ctx, records **out)
{
    errdetail e = {0};
    int rc = records_open_sqlite(last_path, out, &e);
    if (rc != 0)
        fprintf(stderr, "records_open_sqlite(%s) again: %s\n", last_path, e.message);
    return rc;
}

static int fd_of(const char *path);

/* The WAL of the last store opened, swapped for a read-only descriptor
 * (see test_write_fails_under_open_store) and back. */
static int wal_fd = -1, wal_keep = -1;

static int conf_break_writes(void *ctx, records *r)
{
    char wal[PATH_MAX + 8];
    snprintf(wal, sizeof(wal), "%s-wal", last_path);
    wal_fd = fd_of(wal);
    int ro = open(wal, O_RDONLY | O_CLOEXEC);
    wal_keep = wal_fd >= 0 ? dup(wal_fd) : -1;
    int rc = wal_fd >= 0 && wal_keep >= 0 && ro >= 0 && dup2(ro, wal_fd) == wal_fd ? 0 : -1;
    if (ro >= 0)
        close(ro);
    return rc;
}

static int conf_mend_writes(void *ctx, records *r)
{
    int rc = dup2(wal_keep, wal_fd) == wal_fd ? 0 : -1;
    close(wal_keep);
    wal_keep = wal_fd = -1;
    return rc;
}

static const records_conformance_factory factory = {.name = "sqlite",
                                                    .open = conf_open,
                                                    .reopen = conf_reopen,
                                                    .break_writes = conf_break_writes,
                                                    .mend_writes = conf_mend_writes};

/* ---- SQLite only ---------------------------------------------------------------- */

static audit_row sample(void)
{
    return (audit_row){.time_ms = 1,
                       .principal = "alice",
                       .roles = "",
                       .auth_method = "none",
                       .peer = "127.0.0.1:1",
                       .method = "PUT",
                       .route = "/v1/kv/{key*}",
                       .action = "kv.put",
                       .target = "k",
                       .correlation_id = "c"};
}

static void expect_open_fails(const char *path)
{
    records *r = (records *)&r;
    errdetail e = {0};
    assert_int_equal(records_open_sqlite(path, &r, &e), CITRUS_EAUDIT);
    assert_null(r);
    assert_int_equal(e.code, CITRUS_EAUDIT);
    assert_non_null(strstr(e.message, "records store (sqlite) unavailable"));
}

/* A directory that does not exist, a parent that is a file, no path. */
static void test_open_unopenable(void **state)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/no-such-dir/records.db", tmpdir);
    expect_open_fails(path);
    char file[PATH_MAX - 16];
    snprintf(file, sizeof(file), "%s/a-file", tmpdir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/records.db", file);
    expect_open_fails(path);
    records *r;
    assert_int_equal(records_open_sqlite("", &r, NULL), CITRUS_EINVAL);
    assert_null(r);
}

/* A file that is not an SQLite database is not overwritten: EAUDIT. */
static void test_open_not_a_database(void **state)
{
    char path[PATH_MAX];
    assert_int_equal(tmp_write_garbage(tmpdir, "garbage.db", path, sizeof(path)), 0);
    expect_open_fails(path);
}

/* A database written by a newer build (a higher schema version) is refused. */
static void test_open_newer_schema(void **state)
{
    char path[PATH_MAX];
    new_path(path, sizeof(path));
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    records *r;
    errdetail e = {0};
    assert_int_equal(records_open_sqlite(path, &r, &e), CITRUS_EAUDIT);
    assert_non_null(strstr(e.message, "schema version 99"));
}

/* A registrations table made before drive_attempts existed: opening adds
 * the column (0 for the rows there), and the rows read and update. */
static void test_registrations_column_added(void **state)
{
    (void)state;
    char path[PATH_MAX];
    new_path(path, sizeof(path));
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "CREATE TABLE citrus_registrations (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                     " id TEXT NOT NULL UNIQUE, business_id TEXT NOT NULL, location_id TEXT NOT "
                     "NULL, business_type TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT"
                     " NULL, last_error TEXT NOT NULL, next_attempt_ms INTEGER NOT NULL, shard_id"
                     " TEXT NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
                     " finished_ms INTEGER NOT NULL);"
                     "INSERT INTO citrus_registrations (id, business_id, location_id,"
                     " business_type, state, attempts, last_error, next_attempt_ms, shard_id,"
                     " created_ms, updated_ms, finished_ms) VALUES ('old-1', 'acme', 'n',"
                     " 'retail', 'retrying', 2, 'x', 5, '', 1, 2, 0);"
                     "PRAGMA user_version = 1;",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    records *r;
    errdetail e = {0};
    assert_int_equal(records_open_sqlite(path, &r, &e), 0);
    reg_row g;
    assert_int_equal(records_reg_get(r, "old-1", &g, &e), 0);
    assert_int_equal(g.state, REG_RETRYING);
    assert_int_equal(g.attempts, 2);
    assert_int_equal(g.drive_attempts, 0);
    g.drive_attempts = 3;
    bool changed = false;
    assert_int_equal(records_reg_update_if(r, &g, REG_RETRYING, 2, &changed, &e), 0);
    assert_true(changed);
    records_close(r);
    assert_int_equal(records_open_sqlite(path, &r, &e), 0); /* opened again: nothing to add */
    assert_int_equal(records_reg_get(r, "old-1", &g, &e), 0);
    assert_int_equal(g.drive_attempts, 3);
    records_close(r);
}

/* The file is in WAL mode (seen from another connection), and a row is on
 * disk for another connection as soon as append returned. */
static void test_wal_and_visible(void **state)
{
    char path[PATH_MAX];
    new_path(path, sizeof(path));
    records *r;
    assert_int_equal(records_open_sqlite(path, &r, NULL), 0);
    audit_row row = sample();
    int64_t id;
    assert_int_equal(records_audit_append(r, &row, &id, NULL), 0);
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT principal FROM citrus_audit WHERE id = ?1", -1, &st, NULL),
        SQLITE_OK);
    sqlite3_bind_int64(st, 1, id);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "alice");
    sqlite3_finalize(st);
    sqlite3_close(db);
    records_close(r);
}

/* The descriptor this process has open on path, or -1. */
static int fd_of(const char *path)
{
    char want[PATH_MAX];
    if (!realpath(path, want))
        return -1;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int found = -1;
    struct dirent *de;
    while ((de = readdir(d)) && found < 0) {
        char link[300], target[PATH_MAX];
        snprintf(link, sizeof(link), "/proc/self/fd/%s", de->d_name);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (strcmp(target, want) == 0)
            found = atoi(de->d_name);
    }
    closedir(d);
    return found;
}

/* The disk refuses a write under an open store: the append is EAUDIT (the
 * caller refuses its mutation), nothing is half-written, and the store
 * works again once the disk does. */
static void test_write_fails_under_open_store(void **state)
{
    char path[PATH_MAX - 8], wal[PATH_MAX];
    new_path(path, sizeof(path));
    snprintf(wal, sizeof(wal), "%s-wal", path);
    records *r;
    assert_int_equal(records_open_sqlite(path, &r, NULL), 0);
    audit_row row = sample();
    int64_t first;
    assert_int_equal(records_audit_append(r, &row, &first, NULL), 0);
    int fd = fd_of(wal);
    assert_true(fd >= 0);
    int keep = dup(fd);
    int ro = open(wal, O_RDONLY | O_CLOEXEC);
    assert_true(keep >= 0 && ro >= 0);
    assert_int_equal(dup2(ro, fd), fd); /* writes to the WAL now fail: EBADF */
    close(ro);

    errdetail e = {0};
    int64_t id = 77;
    assert_int_equal(records_audit_append(r, &row, &id, &e), CITRUS_EAUDIT);
    assert_int_equal(id, 0);
    assert_non_null(strstr(e.message, "records store (sqlite) unavailable"));
    assert_int_equal(records_audit_finish(r, first, 200, &e), CITRUS_EAUDIT);

    assert_int_equal(dup2(keep, fd), fd); /* the disk is back */
    close(keep);
    int64_t after;
    assert_int_equal(records_audit_append(r, &row, &after, NULL), 0);
    assert_true(after > first);
    audit_row *rows;
    size_t n;
    assert_int_equal(records_audit_query(r, NULL, &rows, &n, NULL, NULL), 0);
    assert_int_equal(n, 2); /* the refused append left nothing */
    assert_int_equal(rows[0].status, 0);
    audit_rows_free(rows, n);
    records_close(r);
}

int main(void)
{
    if (tmp_dir_create(tmpdir, sizeof(tmpdir), "records") != 0)
        return 1;
    size_t n;
    const struct CMUnitTest *conf = records_conformance_tests(&factory, &n);
    int failed = _cmocka_run_group_tests("records_conformance(sqlite)", conf, n, NULL, NULL);
    const struct CMUnitTest own[] = {
        cmocka_unit_test(test_open_unopenable),
        cmocka_unit_test(test_open_not_a_database),
        cmocka_unit_test(test_open_newer_schema),
        cmocka_unit_test(test_registrations_column_added),
        cmocka_unit_test(test_wal_and_visible),
        cmocka_unit_test(test_write_fails_under_open_store),
    };
    failed += cmocka_run_group_tests_name("records_sqlite", own, NULL, NULL);
    if (failed == 0)
        tmp_dir_remove(tmpdir);
    return failed ? 1 : 0;
}
