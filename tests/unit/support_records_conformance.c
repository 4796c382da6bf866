/* tests/unit/support_records_conformance.c — the records store conformance
 * suite (see records_conformance.h): the audit log's contract, checked
 * through records.h only, the same for every backend. No test depends on
 * randomness; two wait for other threads (with deadlines of seconds): the
 * failed batch for the threads' appends to fail and then succeed, and a
 * status written with no query after it for the writer's own flush. */
#include "records_conformance.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "citrus/errors.h"
#include "records/ledger.h"
#include "records/registrations.h"

static const records_conformance_factory *factory;

typedef struct fixture {
    records *r;
} fixture;

/* ---- helpers ---------------------------------------------------------------- */

static records *R(void **state)
{
    return ((fixture *)*state)->r;
}

static audit_row mkrow(int64_t time_ms, const char *principal, const char *action,
                       const char *target)
{
    return (audit_row){.time_ms = time_ms,
                       .principal = principal,
                       .roles = "sm-admin,reader",
                       .auth_method = "api_key",
                       .peer = "127.0.0.1:53412",
                       .method = "POST",
                       .route = "/v1/things/{id}",
                       .action = action,
                       .target = target,
                       .correlation_id = "corr-1"};
}

static int64_t append_ok(records *r, const audit_row *row)
{
    int64_t id = -1;
    errdetail e = {0};
    int rc = records_audit_append(r, row, &id, &e);
    if (rc != 0)
        fail_msg("append: %d %s", rc, e.message);
    assert_true(id > 0);
    return id;
}

static int64_t add(records *r, int64_t t, const char *principal, const char *action,
                   const char *target)
{
    audit_row row = mkrow(t, principal, action, target);
    return append_ok(r, &row);
}

/* Runs q; the ids it returns into ids (at most max), their count. */
static size_t query_ids(records *r, const audit_query *q, int64_t *ids, size_t max,
                        int64_t *next_after)
{
    audit_row *rows = NULL;
    size_t n = 99;
    errdetail e = {0};
    int rc = records_audit_query(r, q, &rows, &n, next_after, &e);
    if (rc != 0)
        fail_msg("query: %d %s", rc, e.message);
    assert_true(n <= max);
    for (size_t i = 0; i < n; i++)
        ids[i] = rows[i].id;
    if (n == 0)
        assert_null(rows);
    audit_rows_free(rows, n);
    return n;
}

/* Asserts that q returns exactly the ids want[0..nwant) (one page). */
static void expect_ids(records *r, const audit_query *q, const int64_t *want, size_t nwant)
{
    int64_t got[64], next = -1;
    size_t n = query_ids(r, q, got, 64, &next);
    if (n != nwant) {
        for (size_t i = 0; i < n; i++)
            print_message("  got id %lld\n", (long long)got[i]);
        fail_msg("expected %zu rows, got %zu", nwant, n);
    }
    for (size_t i = 0; i < n; i++)
        assert_int_equal(got[i], want[i]);
    assert_int_equal(next, 0);
}

/* The single row with id (fails when absent); free with audit_rows_free(row, 1). */
static audit_row *get_row(records *r, int64_t id)
{
    audit_query q = {.after_id = id - 1, .limit = 1};
    audit_row *rows = NULL;
    size_t n = 0;
    errdetail e = {0};
    assert_int_equal(records_audit_query(r, &q, &rows, &n, NULL, &e), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].id, id);
    return rows;
}

static int status_of(records *r, int64_t id)
{
    audit_row *row = get_row(r, id);
    int s = row->status;
    audit_rows_free(row, 1);
    return s;
}

static void assert_row_equal(const audit_row *got, const audit_row *want)
{
    assert_int_equal(got->time_ms, want->time_ms);
    assert_int_equal(got->status, want->status);
#define SAME(f) assert_string_equal(got->f, want->f ? want->f : "")
    SAME(principal);
    SAME(roles);
    SAME(auth_method);
    SAME(peer);
    SAME(method);
    SAME(route);
    SAME(action);
    SAME(target);
    SAME(correlation_id);
#undef SAME
}

/* ---- fixture ---------------------------------------------------------------- */

static int conf_setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (!f || factory->open(factory->ctx, &f->r) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int conf_teardown(void **state)
{
    fixture *f = *state;
    records_close(f->r);
    free(f);
    return 0;
}

/* ---- tests ------------------------------------------------------------------- */

/* Ids are positive and strictly increasing, in append order. */
static void test_append_ids_increase(void **state)
{
    records *r = R(state);
    assert_string_equal(records_backend(r), factory->name);
    int64_t prev = 0;
    for (int i = 0; i < 10; i++) {
        int64_t id = add(r, 1000 + i, "alice", "kv.put", "app/x");
        assert_true(id > prev);
        prev = id;
    }
    audit_row row = mkrow(1, "bob", "kv.put", "");
    assert_int_equal(records_audit_append(r, &row, NULL, NULL), 0); /* id not wanted */
    errdetail e = {0};
    assert_int_equal(records_audit_append(r, NULL, NULL, &e), CITRUS_EINVAL);
    row.status = -1;
    assert_int_equal(records_audit_append(r, &row, NULL, &e), CITRUS_EINVAL);
    int64_t next = add(r, 1, "bob", "kv.put", "");
    assert_true(next > prev + 1); /* the one without an id took prev + 1 or more */
}

/* Every field comes back byte for byte: Unicode, quotes, SQL and format
 * metacharacters, control characters, empty strings, NULL as "". */
static void test_fields_round_trip(void **state)
{
    records *r = R(state);
    audit_row want[4] = {
        {.time_ms = 1747000000123LL,
         .principal = "key:ab12cd/ci-bot",
         .roles = "sm-admin,reader",
         .auth_method = "api_key",
         .peer = "[::1]:53412",
         .method = "PUT",
         .route = "/v1/kv/{key*}",
         .action = "kv.put",
         .target = "app/x",
         .correlation_id = "c0ffee-1"},
        {.time_ms = 253402300799999LL, /* 9999-12-31 */
         .principal = "Zo\xc3\xab \xf0\x9f\x8d\x8b \xe5\x90\x8d\xe5\x89\x8d",
         .roles = "",
         .auth_method = "jwt",
         .peer = "10.0.0.7:1",
         .method = "DELETE",
         .route = "/v1/tenants/{key}",
         .action = "tenant.delete",
         .target = "cl\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac",
         .status = 204,
         .correlation_id = ""},
        {.time_ms = 1,
         .principal = "o'brien\"; DROP TABLE citrus_audit; --",
         .roles = "a','b",
         .auth_method = "trusted_headers",
         .peer = "$1 ?1 :name @x",
         .method = "POST",
         .route = "/v1/kv/{key*}' OR '1'='1",
         .action = "auth.denied",
         .target = "%_\\ %s %n \\x00 E'\\\\'",
         .status = 403,
         .correlation_id = "\t\n\r tab"},
        {.time_ms = 2, .action = "shard.drain"}, /* NULL strings: "" */
    };
    int64_t ids[4];
    for (int i = 0; i < 4; i++)
        ids[i] = append_ok(r, &want[i]);
    audit_row *rows = NULL;
    size_t n = 0;
    int64_t next = -1;
    errdetail e = {0};
    assert_int_equal(records_audit_query(r, NULL, &rows, &n, &next, &e), 0);
    assert_int_equal(n, 4);
    assert_int_equal(next, 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(rows[i].id, ids[i]);
        assert_row_equal(&rows[i], &want[i]);
    }
    audit_rows_free(rows, n);
    /* The table survived the third row's principal; filters take the same bytes. */
    audit_query q = {.principal = want[2].principal, .target = want[2].target};
    expect_ids(r, &q, &ids[2], 1);
    q = (audit_query){.target = want[1].target};
    expect_ids(r, &q, &ids[1], 1);
}

/* Bytes that are not UTF-8 are stored as U+FFFD each, the same on every
 * backend; a filter with the same bytes finds the row. */
static void test_invalid_utf8_replaced(void **state)
{
    records *r = R(state);
    audit_row row = mkrow(5,
                          "a\xff"
                          "b\xc3",
                          "kv.put", "\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80");
    int64_t id = append_ok(r, &row);
    audit_row *got = get_row(r, id);
    assert_string_equal(got->principal, "a\xef\xbf\xbd"
                                        "b\xef\xbf\xbd");
    assert_string_equal(got->target, "\xef\xbf\xbd\xef\xbf\xbd|"
                                     "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|"
                                     "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    audit_rows_free(got, 1);
    audit_query q = {.principal = "a\xff"
                                  "b\xc3"};
    expect_ids(r, &q, &id, 1);
}

/* A row appended with status 0 gets its status once; a set status stays.
 * Finish is fire-and-forget: a second status, a status for a row that has
 * one, or for no row, is accepted (0) and changes nothing, and a query
 * right after a finish sees what it did. */
static void test_finish_once(void **state)
{
    records *r = R(state);
    int64_t a = add(r, 10, "alice", "kv.put", "k");
    int64_t b = add(r, 11, "alice", "kv.put", "k");
    audit_row known = mkrow(12, "bob", "auth.denied", "");
    known.status = 403;
    int64_t c = append_ok(r, &known);
    int64_t d = add(r, 13, "alice", "kv.put", "k");
    assert_int_equal(status_of(r, a), 0);

    errdetail e = {0};
    assert_int_equal(records_audit_finish(r, a, 201, &e), 0);
    assert_int_equal(status_of(r, a), 201);
    assert_int_equal(status_of(r, b), 0);                     /* only a changed */
    assert_int_equal(records_audit_finish(r, a, 500, &e), 0); /* accepted, not applied */
    assert_int_equal(status_of(r, a), 201);
    assert_int_equal(records_audit_finish(r, a, 201, &e), 0); /* the same again: no change */
    assert_int_equal(status_of(r, a), 201);

    /* Two statuses queued together (no query between): the first wins. */
    assert_int_equal(records_audit_finish(r, d, 202, &e), 0);
    assert_int_equal(records_audit_finish(r, d, 500, &e), 0);
    assert_int_equal(status_of(r, d), 202);

    assert_int_equal(records_audit_finish(r, c, 200, &e), 0); /* appended with one */
    assert_int_equal(status_of(r, c), 403);
    assert_int_equal(records_audit_finish(r, d + 1000, 200, &e), 0); /* no such row */
    audit_query q = {.after_id = d};
    expect_ids(r, &q, NULL, 0); /* and none appeared */
    assert_int_equal(records_audit_finish(r, b, 0, &e), CITRUS_EINVAL);
    assert_int_equal(records_audit_finish(r, b, 1000, &e), CITRUS_EINVAL);
    assert_int_equal(records_audit_finish(r, 0, 200, &e), CITRUS_EINVAL);
    assert_int_equal(records_audit_finish(NULL, b, 200, &e), CITRUS_EINVAL);
    assert_int_equal(status_of(r, b), 0);
    assert_int_equal(records_audit_finish(r, b, 503, &e), 0);
    assert_int_equal(status_of(r, b), 503);
    q = (audit_query){0};
    expect_ids(r, &q, ((const int64_t[]){a, b, c, d}), 4);
}

/* Each filter alone and combined; the action prefix matches "shard." and
 * nothing that merely starts with "shard". */
static void test_query_filters(void **state)
{
    records *r = R(state);
    int64_t id[10];
    id[1] = add(r, 1000, "alice", "kv.put", "app/x");
    id[2] = add(r, 2000, "bob", "shard.drain", "s1");
    id[3] = add(r, 3000, "alice", "shard.retire", "s2");
    id[4] = add(r, 4000, "carol", "shards.list", "");
    id[5] = add(r, 5000, "alice", "shard", "s1");
    id[6] = add(r, 6000, "bob", "kv.delete", "app/x");
    id[7] = add(r, 7000, "alice", "shard.drain", "s1");
    id[8] = add(r, 8000, "bob", "shardx.y", "s1");
    id[9] = add(r, 9000, "alice", "shard/", "s2");
#define IDS(...) ((const int64_t[]){__VA_ARGS__})
#define EXPECT(q, ...)                                                                             \
    expect_ids(r, &(q), IDS(__VA_ARGS__), sizeof(IDS(__VA_ARGS__)) / sizeof(int64_t))
    audit_query q = {0};
    EXPECT(q, id[1], id[2], id[3], id[4], id[5], id[6], id[7], id[8], id[9]);
    q = (audit_query){.since_ms = 5000};
    EXPECT(q, id[5], id[6], id[7], id[8], id[9]);
    q = (audit_query){.since_ms = 5001};
    EXPECT(q, id[6], id[7], id[8], id[9]);
    q = (audit_query){.principal = "alice"};
    EXPECT(q, id[1], id[3], id[5], id[7], id[9]);
    q = (audit_query){.principal = "ALICE"};
    expect_ids(r, &q, NULL, 0);
    q = (audit_query){.principal = "ali"};
    expect_ids(r, &q, NULL, 0);
    q = (audit_query){.action = "shard.drain"};
    EXPECT(q, id[2], id[7]);
    q = (audit_query){.action = "shard.*"};
    EXPECT(q, id[2], id[3], id[7]);
    q = (audit_query){.action = "shard."};
    EXPECT(q, id[2], id[3], id[7]);
    q = (audit_query){.action = "shard"};
    EXPECT(q, id[5]);
    q = (audit_query){.action = "kv.*"};
    EXPECT(q, id[1], id[6]);
    q = (audit_query){.action = "*"};
    EXPECT(q, id[1], id[2], id[3], id[4], id[5], id[6], id[7], id[8], id[9]);
    q = (audit_query){.action = "nothing.*"};
    expect_ids(r, &q, NULL, 0);
    q = (audit_query){.target = "s1"};
    EXPECT(q, id[2], id[5], id[7], id[8]);
    q = (audit_query){.target = ""};
    EXPECT(q, id[4]);
    q = (audit_query){.principal = "alice", .action = "shard.*"};
    EXPECT(q, id[3], id[7]);
    q = (audit_query){.principal = "alice", .action = "shard.*", .target = "s1", .since_ms = 3000};
    EXPECT(q, id[7]);
    q = (audit_query){.principal = "bob", .target = "app/x"};
    EXPECT(q, id[6]);
    q = (audit_query){.principal = "bob", .action = "shard.*", .after_id = id[2]};
    expect_ids(r, &q, NULL, 0);
#undef EXPECT
#undef IDS
}

/* Pages of limit rows, each after the last id of the one before, return
 * every matching row exactly once; next_after is 0 on the last page only,
 * also when the rows fill it exactly. */
static void page_all(records *r, audit_query q, const int64_t *want, size_t nwant, size_t limit,
                     size_t expect_pages)
{
    int64_t got[64];
    size_t total = 0, pages = 0;
    q.limit = limit;
    q.after_id = 0;
    for (;;) {
        int64_t next = -1;
        size_t n = query_ids(r, &q, got + total, 64 - total, &next);
        pages++;
        assert_true(n <= limit);
        total += n;
        if (next == 0)
            break;
        assert_int_equal(n, limit); /* only a full page says more may follow */
        assert_int_equal(next, got[total - 1]);
        q.after_id = next;
        assert_true(pages < 100);
    }
    assert_int_equal(pages, expect_pages);
    assert_int_equal(total, nwant);
    for (size_t i = 0; i < total; i++)
        assert_int_equal(got[i], want[i]);
}

static void test_pagination(void **state)
{
    records *r = R(state);
    int64_t all[25], even[13];
    for (int i = 0; i < 25; i++) {
        all[i] = add(r, 100 + i, "alice", i % 2 ? "b.x" : "a.x", "t");
        if (i % 2 == 0)
            even[i / 2] = all[i];
    }
    page_all(r, (audit_query){0}, all, 25, 7, 4);
    page_all(r, (audit_query){0}, all, 25, 5, 5); /* exactly full pages */
    page_all(r, (audit_query){0}, all, 25, 25, 1);
    page_all(r, (audit_query){0}, all, 25, 1, 25);
    page_all(r, (audit_query){.action = "a.*"}, even, 13, 6, 3);
    page_all(r, (audit_query){.action = "a.*"}, even, 13, 13, 1);
    /* After the last id, or far beyond it: nothing. */
    audit_query q = {.after_id = all[24]};
    expect_ids(r, &q, NULL, 0);
    q.after_id = all[24] + 1000000;
    expect_ids(r, &q, NULL, 0);
    q = (audit_query){.after_id = all[20]};
    expect_ids(r, &q, all + 21, 4);
}

/* limit 0 is 100; above 1000 it is 1000. */
static void test_limit_clamped(void **state)
{
    records *r = R(state);
    enum { N = 1003 };
    int64_t *ids = malloc(N * sizeof(*ids));
    assert_non_null(ids);
    for (int i = 0; i < N; i++)
        ids[i] = add(r, i, "bulk", "kv.put", "k");
    audit_row *rows = NULL;
    size_t n = 0;
    int64_t next = 0;
    audit_query q = {.limit = 5000};
    assert_int_equal(records_audit_query(r, &q, &rows, &n, &next, NULL), 0);
    assert_int_equal(n, RECORDS_QUERY_MAX_LIMIT);
    assert_int_equal(rows[999].id, ids[999]);
    assert_int_equal(next, ids[999]);
    audit_rows_free(rows, n);
    q = (audit_query){.limit = 0};
    assert_int_equal(records_audit_query(r, &q, &rows, &n, &next, NULL), 0);
    assert_int_equal(n, RECORDS_QUERY_DEFAULT_LIMIT);
    assert_int_equal(next, ids[99]);
    audit_rows_free(rows, n);
    q = (audit_query){.limit = 1000, .after_id = ids[999]};
    assert_int_equal(records_audit_query(r, &q, &rows, &n, &next, NULL), 0);
    assert_int_equal(n, 3);
    assert_int_equal(next, 0);
    audit_rows_free(rows, n);
    free(ids);
}

/* Purge deletes exactly the rows older than the bound and counts them;
 * ids are never handed out again, even when the newest rows went. */
static void test_purge(void **state)
{
    records *r = R(state);
    int64_t ids[10];
    for (int i = 0; i < 10; i++)
        ids[i] = add(r, 100 * (i + 1), "alice", "kv.put", "k");
    int64_t deleted = -1;
    errdetail e = {0};
    assert_int_equal(records_audit_purge(r, 450, &deleted, &e), 0);
    assert_int_equal(deleted, 4);
    audit_query q = {0};
    expect_ids(r, &q, ids + 4, 6);
    assert_int_equal(records_audit_purge(r, 450, &deleted, &e), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(records_audit_purge(r, 500, &deleted, &e), 0); /* not the row at 500 */
    assert_int_equal(deleted, 0);
    assert_int_equal(records_audit_finish(r, ids[0], 200, &e), 0); /* gone: nothing to set */
    assert_int_equal(records_audit_purge(r, 1000000, &deleted, &e), 0);
    assert_int_equal(deleted, 6);
    expect_ids(r, &q, NULL, 0);
    int64_t again = add(r, 50, "alice", "kv.put", "k");
    assert_true(again > ids[9]);
    assert_int_equal(records_audit_purge(r, 0, NULL, &e), 0); /* nothing before 0 */
    expect_ids(r, &q, &again, 1);
}

static char *filled(size_t len, char c)
{
    char *s = malloc(len + 1);
    assert_non_null(s);
    memset(s, c, len);
    s[len] = '\0';
    return s;
}

/* Each text field longer than its limit is cut to it, never refused; a
 * multibyte character is never cut in half. */
static void test_long_strings_truncated(void **state)
{
    records *r = R(state);
    char *big = filled(5000, 'x');
    audit_row row = {.time_ms = 1,
                     .principal = big,
                     .roles = big,
                     .auth_method = big,
                     .peer = big,
                     .method = big,
                     .route = big,
                     .action = big,
                     .target = big,
                     .correlation_id = big};
    int64_t id = append_ok(r, &row);
    audit_row *got = get_row(r, id);
    assert_int_equal(strlen(got->principal), RECORDS_MAX_PRINCIPAL);
    assert_int_equal(strlen(got->roles), RECORDS_MAX_ROLES);
    assert_int_equal(strlen(got->auth_method), RECORDS_MAX_AUTH_METHOD);
    assert_int_equal(strlen(got->peer), RECORDS_MAX_PEER);
    assert_int_equal(strlen(got->method), RECORDS_MAX_METHOD);
    assert_int_equal(strlen(got->route), RECORDS_MAX_ROUTE);
    assert_int_equal(strlen(got->action), RECORDS_MAX_ACTION);
    assert_int_equal(strlen(got->target), RECORDS_MAX_TARGET);
    assert_int_equal(strlen(got->correlation_id), RECORDS_MAX_CORRELATION_ID);
    assert_memory_equal(got->target, big, RECORDS_MAX_TARGET);
    audit_rows_free(got, 1);
    /* The long original finds the row by the prefix it kept. */
    audit_query q = {.principal = big, .target = big, .action = big};
    expect_ids(r, &q, &id, 1);

    /* "€" is 3 bytes: 256 / 3 = 85 whole ones fit. */
    char euros[3 * 2000 + 1];
    for (int i = 0; i < 2000; i++)
        memcpy(euros + 3 * i, "\xe2\x82\xac", 3);
    euros[6000] = '\0';
    row = mkrow(2, euros, "kv.put", euros);
    id = append_ok(r, &row);
    got = get_row(r, id);
    assert_int_equal(strlen(got->principal), 255);
    assert_memory_equal(got->principal, euros, 255);
    assert_int_equal(strlen(got->target), 1023); /* 341 of them */
    audit_rows_free(got, 1);
    free(big);
}

typedef struct appender {
    records *r;
    int thread;
    int count;
    int64_t *ids;
    int failures;
} appender;

static void *appender_main(void *arg)
{
    appender *a = arg;
    char principal[32], target[32];
    snprintf(principal, sizeof(principal), "thread-%d", a->thread);
    for (int i = 0; i < a->count; i++) {
        snprintf(target, sizeof(target), "%d", i);
        audit_row row = mkrow(i, principal, "kv.put", target);
        if (records_audit_append(a->r, &row, &a->ids[i], NULL) != 0)
            a->failures++;
    }
    return NULL;
}

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

/* Appends from several threads at once all land, with distinct ids, each
 * thread's in its own order. */
static void test_concurrent_appends(void **state)
{
    records *r = R(state);
    enum { THREADS = 8, EACH = 40 };
    appender a[THREADS];
    pthread_t th[THREADS];
    int64_t *ids = calloc(THREADS * EACH, sizeof(*ids));
    assert_non_null(ids);
    for (int t = 0; t < THREADS; t++) {
        a[t] = (appender){.r = r, .thread = t, .count = EACH, .ids = ids + t * EACH};
        assert_int_equal(pthread_create(&th[t], NULL, appender_main, &a[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(a[t].failures, 0);
        for (int i = 1; i < EACH; i++)
            assert_true(a[t].ids[i] > a[t].ids[i - 1]);
    }
    qsort(ids, THREADS * EACH, sizeof(*ids), cmp_i64);
    for (int i = 1; i < THREADS * EACH; i++)
        assert_true(ids[i] > ids[i - 1]);
    /* All there, and each thread's rows in its order. */
    audit_row *rows = NULL;
    size_t n = 0;
    audit_query q = {.limit = 1000};
    assert_int_equal(records_audit_query(r, &q, &rows, &n, NULL, NULL), 0);
    assert_int_equal(n, THREADS * EACH);
    int seen[THREADS] = {0};
    for (size_t i = 0; i < n; i++) {
        int t = -1;
        assert_int_equal(sscanf(rows[i].principal, "thread-%d", &t), 1);
        assert_true(t >= 0 && t < THREADS);
        assert_int_equal(atoi(rows[i].target), seen[t]);
        assert_int_equal(rows[i].id, ids[i]);
        seen[t]++;
    }
    audit_rows_free(rows, n);
    free(ids);
}

/* ---- group commit -------------------------------------------------------------- */

/* Every row of r, oldest first (all pages). *n rows; free with audit_rows_free. */
static audit_row *all_rows(records *r, size_t *n)
{
    audit_row *out = NULL;
    size_t total = 0;
    audit_query q = {.limit = RECORDS_QUERY_MAX_LIMIT};
    for (;;) {
        audit_row *rows = NULL;
        size_t got = 0;
        int64_t next = 0;
        errdetail e = {0};
        if (records_audit_query(r, &q, &rows, &got, &next, &e) != 0)
            fail_msg("query: %s", e.message);
        audit_row *grown = realloc(out, (total + got + 1) * sizeof(*out));
        assert_non_null(grown);
        out = grown;
        if (got > 0)
            memcpy(out + total, rows, got * sizeof(*rows));
        total += got;
        free(rows); /* the strings moved to out */
        if (next == 0)
            break;
        q.after_id = next;
    }
    *n = total;
    return out;
}

/* A thread of the group commit tests: appends count rows with targets
 * "<thread>/<i>" (and finishes each with status 200 + thread when
 * finish), or, with count 0, appends until *stop (at most max). */
typedef struct burst {
    records *r;
    int thread;
    int count, max;
    bool finish;
    const atomic_int *stop;
    int64_t *ids; /* per attempt: the id, 0 when the append failed */
    int *rcs;     /* per attempt: what append returned */
    atomic_int attempts, oks, fails;
    int finish_failures;
} burst;

static void sleep_1ms(void)
{
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
}

static void *burst_main(void *arg)
{
    burst *b = arg;
    char principal[32], target[32];
    snprintf(principal, sizeof(principal), "thread-%d", b->thread);
    int limit = b->count ? b->count : b->max;
    for (int i = 0; i < limit; i++) {
        if (!b->count && atomic_load(b->stop))
            break;
        snprintf(target, sizeof(target), "%d/%d", b->thread, i);
        audit_row row = mkrow(i, principal, "kv.put", target);
        int64_t id = 0;
        b->rcs[i] = records_audit_append(b->r, &row, &id, NULL);
        b->ids[i] = b->rcs[i] == 0 ? id : 0;
        if (b->rcs[i] == 0 && b->finish &&
            records_audit_finish(b->r, id, 200 + b->thread, NULL) != 0)
            b->finish_failures++;
        atomic_fetch_add(b->rcs[i] == 0 ? &b->oks : &b->fails, 1);
        atomic_store(&b->attempts, i + 1);
        if (b->rcs[i] != 0)
            sleep_1ms(); /* as a client answered 503 would */
    }
    return NULL;
}

static void burst_start(burst *b, pthread_t *th, int threads, records *r, int count, int max,
                        bool finish, const atomic_int *stop)
{
    int each = count ? count : max;
    for (int t = 0; t < threads; t++) {
        b[t] = (burst){
            .r = r, .thread = t, .count = count, .max = max, .finish = finish, .stop = stop};
        b[t].ids = calloc((size_t)each, sizeof(*b[t].ids));
        b[t].rcs = calloc((size_t)each, sizeof(*b[t].rcs));
        assert_true(b[t].ids && b[t].rcs);
        assert_int_equal(pthread_create(&th[t], NULL, burst_main, &b[t]), 0);
    }
}

static void burst_free(burst *b, int threads)
{
    for (int t = 0; t < threads; t++) {
        free(b[t].ids);
        free(b[t].rcs);
    }
}

/* Checks the store against what the bursts' appends returned: every
 * append that returned 0 is there under its id, with its target, once;
 * no row is there that no append made; and no append that failed left a
 * row (unless the backend may: then they are counted). Each thread's ids
 * increase in the order its appends returned. Returns the rows (statuses
 * to check), n set. */
static audit_row *burst_check(records *r, burst *b, int threads, size_t *n)
{
    int64_t *found[64];
    assert_true(threads <= 64);
    size_t oks = 0;
    for (int t = 0; t < threads; t++) {
        int tried = atomic_load(&b[t].attempts);
        found[t] = calloc((size_t)tried + 1, sizeof(int64_t));
        assert_non_null(found[t]);
        int64_t prev = 0;
        for (int i = 0; i < tried; i++) {
            if (b[t].rcs[i] != 0) {
                assert_int_equal(b[t].rcs[i], CITRUS_EAUDIT); /* a failed batch: EAUDIT */
                continue;
            }
            oks++;
            assert_true(b[t].ids[i] > prev);
            prev = b[t].ids[i];
        }
    }
    audit_row *rows = all_rows(r, n);
    size_t extra = 0;
    for (size_t k = 0; k < *n; k++) {
        if (k > 0)
            assert_true(rows[k].id > rows[k - 1].id);
        int t = -1, i = -1;
        if (sscanf(rows[k].target, "%d/%d", &t, &i) != 2 || t < 0 || t >= threads || i < 0 ||
            i >= atomic_load(&b[t].attempts))
            fail_msg("row %lld (target %s) was appended by no one", (long long)rows[k].id,
                     rows[k].target);
        if (found[t][i] != 0)
            fail_msg("append %d/%d is in the store twice", t, i);
        found[t][i] = rows[k].id;
        if (b[t].rcs[i] == 0) {
            assert_int_equal(rows[k].id, b[t].ids[i]);
        } else if (factory->failed_may_commit) {
            extra++;
        } else {
            fail_msg("append %d/%d failed but its row %lld is in the store", t, i,
                     (long long)rows[k].id);
        }
    }
    for (int t = 0; t < threads; t++) {
        for (int i = 0; i < atomic_load(&b[t].attempts); i++)
            if (b[t].rcs[i] == 0 && found[t][i] == 0)
                fail_msg("append %d/%d returned id %lld but its row is missing", t, i,
                         (long long)b[t].ids[i]);
        free(found[t]);
    }
    assert_int_equal(*n, oks + extra);
    if (extra)
        print_message("%zu failed appends have their row anyway (allowed on %s)\n", extra,
                      factory->name);
    return rows;
}

/* 16 threads x 200 appends at once (each followed by its finish): all
 * land, with distinct ids, each thread's increasing in its order, and
 * every status is written. */
static void test_group_commit_many(void **state)
{
    records *r = R(state);
    enum { THREADS = 16, EACH = 200 };
    burst b[THREADS];
    pthread_t th[THREADS];
    burst_start(b, th, THREADS, r, EACH, 0, true, NULL);
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(atomic_load(&b[t].fails), 0);
        assert_int_equal(b[t].finish_failures, 0);
    }
    size_t n = 0;
    audit_row *rows = burst_check(r, b, THREADS, &n);
    assert_int_equal(n, THREADS * EACH);
    for (size_t k = 0; k < n; k++) {
        int t = atoi(rows[k].target);
        assert_int_equal(rows[k].status, 200 + t); /* the query wrote the queued statuses */
    }
    audit_rows_free(rows, n);
    burst_free(b, THREADS);
}

/* The appends of the bursts so far that returned 0 (or, fails, not). */
static int burst_sum(burst *b, int threads, bool fails)
{
    int sum = 0;
    for (int t = 0; t < threads; t++)
        sum += atomic_load(fails ? &b[t].fails : &b[t].oks);
    return sum;
}

/* Waits (at most ms) until burst_sum reaches want. */
static void burst_wait(burst *b, int threads, bool fails, int want, int ms)
{
    for (int waited = 0; waited < ms && burst_sum(b, threads, fails) < want; waited++)
        sleep_1ms();
}

/* Writes fail while threads append: the appends of a failed batch all
 * return CITRUS_EAUDIT and leave no row; every append that returned 0 is
 * in the store; once writes work again so do appends. */
static void test_failed_batch(void **state)
{
    if (!factory->break_writes) {
        skip();
        return;
    }
    records *r = R(state);
    enum { THREADS = 16, MAX = 20000 };
    burst b[THREADS];
    pthread_t th[THREADS];
    atomic_int stop = 0;
    burst_start(b, th, THREADS, r, 0, MAX, false, &stop);
    burst_wait(b, THREADS, false, 100, 10000);
    assert_int_equal(factory->break_writes(factory->ctx, r), 0);
    burst_wait(b, THREADS, true, 2 * THREADS, 20000);
    int before = burst_sum(b, THREADS, false);
    assert_int_equal(factory->mend_writes(factory->ctx, r), 0);
    burst_wait(b, THREADS, false, before + 100, 20000);
    atomic_store(&stop, 1);
    int fails = 0, oks = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        fails += atomic_load(&b[t].fails);
        oks += atomic_load(&b[t].oks);
    }
    print_message("%d appends returned 0, %d failed\n", oks, fails);
    assert_true(fails >= 2);          /* a batch failed, with more than one caller */
    assert_true(oks >= before + 100); /* and appends work again */
    size_t n = 0;
    audit_row *rows = burst_check(r, b, THREADS, &n);
    audit_rows_free(rows, n);
    burst_free(b, THREADS);
}

typedef struct status_reader {
    records *r;
    int64_t id;
    int status;
} status_reader;

static void *status_reader_main(void *arg)
{
    status_reader *s = arg;
    s->status = status_of(s->r, s->id);
    return NULL;
}

/* A status is visible to a query (from any thread) once finish returned,
 * is written on close, and is written without any query or append after
 * it (a second store on the same table sees it). */
static void test_finish_visible_and_kept(void **state)
{
    fixture *f = *state;
    int64_t a = add(f->r, 1, "alice", "kv.put", "k1");
    int64_t b = add(f->r, 2, "alice", "kv.put", "k2");
    int64_t c = add(f->r, 3, "alice", "kv.put", "k3");
    assert_int_equal(records_audit_finish(f->r, a, 201, NULL), 0);
    status_reader s = {.r = f->r, .id = a};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, status_reader_main, &s), 0);
    pthread_join(th, NULL);
    assert_int_equal(s.status, 201); /* another thread's query saw it */

    /* Queued, never queried: close writes them. */
    assert_int_equal(records_audit_finish(f->r, b, 202, NULL), 0);
    assert_int_equal(records_audit_finish(f->r, b, 500, NULL), 0);
    records_close(f->r);
    f->r = NULL;
    assert_int_equal(factory->reopen(factory->ctx, &f->r), 0);
    assert_int_equal(status_of(f->r, a), 201);
    assert_int_equal(status_of(f->r, b), 202);
    assert_int_equal(status_of(f->r, c), 0);

    /* Nothing after the finish on its store: it is written anyway, soon. */
    records *other = NULL;
    assert_int_equal(factory->reopen(factory->ctx, &other), 0);
    assert_int_equal(records_audit_finish(f->r, c, 203, NULL), 0);
    int seen = 0;
    for (int waited = 0; waited < 5000 && seen == 0; waited += 10) {
        seen = status_of(other, c);
        for (int i = 0; i < 10 && seen == 0; i++)
            sleep_1ms();
    }
    assert_int_equal(seen, 203);
    records_close(other);
}

/* Rows and their statuses outlive the store's close; ids go on from there. */
static void test_reopen_keeps_rows(void **state)
{
    fixture *f = *state;
    int64_t a = add(f->r, 1, "alice", "kv.put", "k1");
    int64_t b = add(f->r, 2, "bob", "kv.delete", "k2");
    assert_int_equal(records_audit_finish(f->r, a, 200, NULL), 0);
    records_close(f->r);
    f->r = NULL;
    assert_int_equal(factory->reopen(factory->ctx, &f->r), 0);
    audit_query q = {0};
    expect_ids(f->r, &q, ((const int64_t[]){a, b}), 2);
    assert_int_equal(status_of(f->r, a), 200);
    assert_int_equal(status_of(f->r, b), 0);
    assert_int_equal(records_audit_finish(f->r, b, 404, NULL), 0);
    assert_int_equal(status_of(f->r, b), 404);
    assert_true(add(f->r, 3, "carol", "kv.put", "k3") > b);
}

/* An empty result is no rows, NULL, and no next page. */
static void test_query_empty(void **state)
{
    records *r = R(state);
    audit_row *rows = (audit_row *)&rows; /* not NULL before the call */
    size_t n = 7;
    int64_t next = 7;
    assert_int_equal(records_audit_query(r, NULL, &rows, &n, &next, NULL), 0);
    assert_null(rows);
    assert_int_equal(n, 0);
    assert_int_equal(next, 0);
    int64_t deleted = 7;
    assert_int_equal(records_audit_purge(r, 1000, &deleted, NULL), 0);
    assert_int_equal(deleted, 0);
}

/* The async append: each callback runs once, on another thread, with the
 * id its row got; the row is there (and its texts were copied: the
 * caller's buffer is gone by then); a bad row is refused at once. */
typedef struct async_done {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls, rc;
    int64_t ids[8];
} async_done;

static void on_appended(void *ctx, int rc, int64_t id, const errdetail *e)
{
    async_done *d = ctx;
    (void)e;
    pthread_mutex_lock(&d->mu);
    d->rc |= rc;
    if (d->calls < 8)
        d->ids[d->calls] = id;
    d->calls++;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

static void test_append_async(void **state)
{
    records *r = R(state);
    async_done d = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    for (int i = 0; i < 8; i++) {
        char target[32];
        snprintf(target, sizeof(target), "async/%d", i);
        audit_row row = mkrow(5000 + i, "carol", "kv.put", target);
        assert_int_equal(records_audit_append_async(r, &row, on_appended, &d, NULL), 0);
        memset(target, 'x', sizeof(target) - 1); /* the store copied it */
    }
    pthread_mutex_lock(&d.mu);
    while (d.calls < 8)
        pthread_cond_wait(&d.cv, &d.mu);
    pthread_mutex_unlock(&d.mu);
    assert_int_equal(d.calls, 8);
    assert_int_equal(d.rc, 0);
    for (int i = 0; i < 8; i++)
        assert_true(d.ids[i] > 0);
    audit_query q = {.principal = "carol", .limit = 100};
    audit_row *rows;
    size_t n;
    int64_t next;
    assert_int_equal(records_audit_query(r, &q, &rows, &n, &next, NULL), 0);
    assert_int_equal(n, 8);
    for (size_t i = 0; i < n; i++) {
        char want[32];
        snprintf(want, sizeof(want), "async/%zu", i);
        assert_string_equal(rows[i].target, want);
    }
    audit_rows_free(rows, n);
    audit_row bad = mkrow(1, "carol", "kv.put", "");
    bad.status = 5000;
    errdetail e = {0};
    assert_int_equal(records_audit_append_async(r, &bad, on_appended, &d, &e), CITRUS_EINVAL);
    assert_int_equal(records_audit_append_async(r, &bad, NULL, &d, &e), CITRUS_EINVAL);
    assert_int_equal(d.calls, 8); /* no callback for a refused request */
}

/* ---- the workers' ledger and notifications (records/ledger.h) ----------------- */

static notification_row mknote(int64_t t, const char *id, const char *source, const char *type,
                               const char *severity)
{
    return (notification_row){.time_ms = t,
                              .event_id = id,
                              .source = source,
                              .type = type,
                              .severity = severity,
                              .subject = "shard-7",
                              .correlation_id = "corr-9",
                              .data = "{\"disk\":91}"};
}

static bool seen(records *r, const char *group, const char *id)
{
    bool s = false;
    errdetail e = {0};
    if (records_processed_seen(r, group, id, &s, &e) != 0)
        fail_msg("seen: %s", e.message);
    return s;
}

/* Records one entry; returns whether it was a duplicate. */
static bool record1(records *r, const char *group, const char *id, int64_t t,
                    const notification_row *n)
{
    processed_entry p = {.group = group, .event_id = id, .time_ms = t, .notification = n};
    errdetail e = {0};
    if (records_processed_record(r, &p, 1, &e) != 0)
        fail_msg("record: %s", e.message);
    return p.duplicate;
}

/* The notifications matching q: their count; rows kept in *out when not NULL. */
static size_t notes(records *r, const notification_query *q, notification_row **out, int64_t *next)
{
    notification_row *rows = NULL;
    size_t n = 0;
    errdetail e = {0};
    if (records_notifications_query(r, q, &rows, &n, next, &e) != 0)
        fail_msg("notifications: %s", e.message);
    if (out)
        *out = rows;
    else
        notification_rows_free(rows, n);
    return n;
}

/* An id is applied once: the second record of (group, id) is a duplicate
 * and writes no second notification; another group has its own ledger. */
static void test_ledger_once(void **state)
{
    records *r = R(state);
    assert_false(seen(r, "g1", "ev-1"));
    notification_row n = mknote(1000, "ev-1", "/src/a", "t.disk", "warning");
    assert_false(record1(r, "g1", "ev-1", 5000, &n));
    assert_true(seen(r, "g1", "ev-1"));
    assert_false(seen(r, "g2", "ev-1"));
    assert_false(seen(r, "g1", "ev-10"));
    assert_true(record1(r, "g1", "ev-1", 6000, &n));
    assert_int_equal(notes(r, NULL, NULL, NULL), 1);
    assert_false(record1(r, "g2", "ev-1", 6000, NULL)); /* no effect: the ledger alone */
    assert_true(seen(r, "g2", "ev-1"));
    assert_int_equal(notes(r, NULL, NULL, NULL), 1);
    notification_row *rows;
    assert_int_equal(notes(r, NULL, &rows, NULL), 1);
    assert_true(rows[0].id > 0);
    assert_int_equal(rows[0].time_ms, 1000);
    assert_string_equal(rows[0].event_id, "ev-1");
    assert_string_equal(rows[0].source, "/src/a");
    assert_string_equal(rows[0].type, "t.disk");
    assert_string_equal(rows[0].severity, "warning");
    assert_string_equal(rows[0].subject, "shard-7");
    assert_string_equal(rows[0].correlation_id, "corr-9");
    assert_string_equal(rows[0].data, "{\"disk\":91}");
    notification_rows_free(rows, 1);
}

/* One call is one transaction: two copies of an id in it keep the first;
 * a bad entry refuses the whole call before anything is written. */
static void test_ledger_batch(void **state)
{
    records *r = R(state);
    notification_row a = mknote(1, "a", "s", "t", "info"), b = mknote(2, "b", "s", "t", "info");
    processed_entry p[3] = {{.group = "g", .event_id = "a", .time_ms = 1, .notification = &a},
                            {.group = "g", .event_id = "a", .time_ms = 1, .notification = &a},
                            {.group = "g", .event_id = "b", .time_ms = 1, .notification = &b}};
    errdetail e = {0};
    assert_int_equal(records_processed_record(r, p, 3, &e), 0);
    assert_false(p[0].duplicate);
    assert_true(p[1].duplicate);
    assert_false(p[2].duplicate);
    assert_int_equal(notes(r, NULL, NULL, NULL), 2);

    /* bad keys, oversize data, bad counts: nothing of the call is written */
    char longid[RECORDS_MAX_EVENT_ID + 2];
    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    const char *bad_ids[] = {"", "has space", longid, "tab\t"};
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        processed_entry q[2] = {{.group = "g", .event_id = "c", .time_ms = 1, .notification = &a},
                                {.group = "g", .event_id = bad_ids[i], .time_ms = 1}};
        assert_int_equal(records_processed_record(r, q, 2, &e), CITRUS_EINVAL);
        bool s = true;
        assert_int_equal(records_processed_seen(r, "g", bad_ids[i], &s, &e), CITRUS_EINVAL);
    }
    processed_entry q = {.group = NULL, .event_id = "c", .time_ms = 1};
    assert_int_equal(records_processed_record(r, &q, 1, &e), CITRUS_EINVAL);
    char *big = malloc(RECORDS_MAX_NOTIFY_DATA + 2);
    assert_non_null(big);
    memset(big, '1', RECORDS_MAX_NOTIFY_DATA + 1);
    big[RECORDS_MAX_NOTIFY_DATA + 1] = '\0';
    notification_row c = mknote(3, "c", "s", "t", "info");
    c.data = big;
    processed_entry q2[2] = {{.group = "g", .event_id = "d", .time_ms = 1, .notification = &a},
                             {.group = "g", .event_id = "c", .time_ms = 1, .notification = &c}};
    assert_int_equal(records_processed_record(r, q2, 2, &e), CITRUS_ETOOBIGVAL);
    big[RECORDS_MAX_NOTIFY_DATA] = '\0'; /* at the limit: stored */
    assert_false(record1(r, "g", "c", 1, &c));
    free(big);
    assert_int_equal(records_processed_record(r, p, 0, &e), CITRUS_EINVAL);
    assert_int_equal(records_processed_record(r, p, RECORDS_PROCESSED_BATCH_MAX + 1, &e),
                     CITRUS_EINVAL);
    assert_true(seen(r, "g", "c"));
    assert_false(seen(r, "g", "d"));
    assert_int_equal(notes(r, NULL, NULL, NULL), 3);
}

/* Filters (exact source, type, severity; since), paging, texts cut. */
static void test_notifications_query(void **state)
{
    records *r = R(state);
    const char *src[] = {"/a", "/b", "/a", "/a", "/b", "/a"};
    const char *typ[] = {"x.up", "x.up", "x.down", "x.up", "x.down", "x.up"};
    const char *sev[] = {"info", "error", "error", "warning", "info", "error"};
    for (int i = 0; i < 6; i++) {
        char id[8];
        snprintf(id, sizeof(id), "e%d", i);
        notification_row n = mknote(100 * (i + 1), id, src[i], typ[i], sev[i]);
        assert_false(record1(r, "g", id, 1, &n));
    }
    notification_query q = {.source = "/a"};
    assert_int_equal(notes(r, &q, NULL, NULL), 4);
    q = (notification_query){.source = "/a", .type = "x.up"};
    assert_int_equal(notes(r, &q, NULL, NULL), 3);
    q = (notification_query){.source = "/a", .type = "x.up", .severity = "error"};
    notification_row *rows;
    assert_int_equal(notes(r, &q, &rows, NULL), 1);
    assert_string_equal(rows[0].event_id, "e5");
    notification_rows_free(rows, 1);
    q = (notification_query){.since_ms = 300};
    assert_int_equal(notes(r, &q, NULL, NULL), 4);
    q = (notification_query){.severity = "nope"};
    assert_int_equal(notes(r, &q, NULL, NULL), 0);
    /* pages of 4: e0..e3, then e4, e5 */
    int64_t next = -1;
    q = (notification_query){.limit = 4};
    assert_int_equal(notes(r, &q, &rows, &next), 4);
    assert_int_equal(next, rows[3].id);
    assert_string_equal(rows[3].event_id, "e3");
    notification_rows_free(rows, 4);
    q.after_id = next;
    assert_int_equal(notes(r, &q, &rows, &next), 2);
    assert_int_equal(next, 0);
    assert_string_equal(rows[1].event_id, "e5");
    notification_rows_free(rows, 2);
    /* a long source is cut at its limit (and found by its long original) */
    char longsrc[RECORDS_MAX_NOTIFY_SOURCE + 50];
    memset(longsrc, 's', sizeof(longsrc) - 1);
    longsrc[sizeof(longsrc) - 1] = '\0';
    notification_row n = mknote(1, "long", longsrc, "t", "info");
    n.data = NULL;
    assert_false(record1(r, "g", "long", 1, &n));
    q = (notification_query){.source = longsrc};
    assert_int_equal(notes(r, &q, &rows, NULL), 1);
    assert_int_equal(strlen(rows[0].source), RECORDS_MAX_NOTIFY_SOURCE);
    assert_string_equal(rows[0].data, "null");
    notification_rows_free(rows, 1);
}

/* Retention: the ledger by when it processed, notifications by their time. */
static void test_ledger_purge(void **state)
{
    records *r = R(state);
    notification_row n1 = mknote(100, "old", "s", "t", "info");
    notification_row n2 = mknote(900, "new", "s", "t", "info");
    assert_false(record1(r, "g", "old", 1000, &n1));
    assert_false(record1(r, "g", "new", 3000, &n2));
    int64_t deleted = -1;
    errdetail e = {0};
    assert_int_equal(records_processed_purge(r, 2000, &deleted, &e), 0);
    assert_int_equal(deleted, 1);
    assert_false(seen(r, "g", "old"));
    assert_true(seen(r, "g", "new"));
    assert_int_equal(notes(r, NULL, NULL, NULL), 2); /* notifications have their own */
    assert_int_equal(records_notifications_purge(r, 500, &deleted, &e), 0);
    assert_int_equal(deleted, 1);
    notification_row *rows;
    assert_int_equal(notes(r, NULL, &rows, NULL), 1);
    assert_string_equal(rows[0].event_id, "new");
    notification_rows_free(rows, 1);
    assert_int_equal(records_processed_purge(r, 2000, NULL, &e), 0);
}

/* The ledger outlives the store's process: a reopened store (a restarted
 * node) still knows what was applied. */
static void test_ledger_reopen(void **state)
{
    records *r = R(state);
    notification_row n = mknote(1, "ev", "s", "t", "info");
    assert_false(record1(r, "g", "ev", 1, &n));
    records *r2 = NULL;
    assert_int_equal(factory->reopen(factory->ctx, &r2), 0);
    assert_true(seen(r2, "g", "ev"));
    assert_true(record1(r2, "g", "ev", 2, &n));
    assert_int_equal(notes(r2, NULL, NULL, NULL), 1);
    records_close(r2);
}

/* A failed write applies nothing: neither the ledger entry nor its
 * notification; once the store is back the same entry is recorded. */
static void test_ledger_failed_write(void **state)
{
    if (!factory->break_writes) {
        skip();
        return;
    }
    records *r = R(state);
    notification_row n0 = mknote(1, "first", "s", "t", "info");
    assert_false(record1(r, "g", "first", 1, &n0));
    assert_int_equal(factory->break_writes(factory->ctx, r), 0);
    notification_row n = mknote(1, "ev", "s", "t", "info");
    processed_entry p = {.group = "g", .event_id = "ev", .time_ms = 1, .notification = &n};
    errdetail e = {0};
    assert_int_equal(records_processed_record(r, &p, 1, &e), CITRUS_EAUDIT);
    assert_int_equal(factory->mend_writes(factory->ctx, r), 0);
    assert_false(seen(r, "g", "ev"));
    assert_int_equal(notes(r, NULL, NULL, NULL), 1);
    assert_false(record1(r, "g", "ev", 1, &n));
    assert_int_equal(notes(r, NULL, NULL, NULL), 2);
}

/* Manifests: created, replaced (version + 1), read back; bad ids and sizes. */
static void test_manifests(void **state)
{
    records *r = R(state);
    manifest_row m;
    errdetail e = {0};
    assert_int_equal(records_manifest_get(r, "enr-1", &m, &e), CITRUS_ENOTFOUND);
    assert_null(m.body);
    bool created = false;
    int64_t version = 0;
    assert_int_equal(records_manifest_put(r, "enr-1", "{\"tenant_key\":\"acme:s1\"}", 100, &created,
                                          &version, &e),
                     0);
    assert_true(created);
    assert_int_equal(version, 1);
    assert_int_equal(records_manifest_put(r, "enr-1",
                                          "{\"tenant_key\":\"acme:s2\",\"n\":\"\xc3\xa9\"}", 200,
                                          &created, &version, &e),
                     0);
    assert_false(created);
    assert_int_equal(version, 2);
    assert_int_equal(records_manifest_get(r, "enr-1", &m, &e), 0);
    assert_string_equal(m.body, "{\"tenant_key\":\"acme:s2\",\"n\":\"\xc3\xa9\"}");
    assert_int_equal(m.updated_ms, 200);
    assert_int_equal(m.version, 2);
    free(m.body);
    assert_int_equal(records_manifest_get(r, "enr-2", &m, &e), CITRUS_ENOTFOUND);
    const char *bad[] = {"", "has space", "a/b", "x\xc3\xa9"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(records_manifest_put(r, bad[i], "{}", 1, NULL, NULL, &e), CITRUS_EINVAL);
        assert_int_equal(records_manifest_get(r, bad[i], &m, &e), CITRUS_EINVAL);
    }
    char longid[RECORDS_MAX_MANIFEST_ID + 2];
    memset(longid, 'a', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    assert_int_equal(records_manifest_put(r, longid, "{}", 1, NULL, NULL, &e), CITRUS_EINVAL);
    longid[RECORDS_MAX_MANIFEST_ID] = '\0';
    assert_int_equal(records_manifest_put(r, longid, "{}", 1, NULL, NULL, &e), 0);
    assert_int_equal(records_manifest_put(r, "x", "", 1, NULL, NULL, &e), CITRUS_EINVAL);
    char *big = malloc(RECORDS_MAX_MANIFEST + 2);
    assert_non_null(big);
    memset(big, ' ', RECORDS_MAX_MANIFEST + 1);
    big[RECORDS_MAX_MANIFEST + 1] = '\0';
    assert_int_equal(records_manifest_put(r, "big", big, 1, NULL, NULL, &e), CITRUS_ETOOBIGVAL);
    free(big);
    assert_int_equal(records_manifest_get(r, "big", &m, &e), CITRUS_ENOTFOUND);
    /* kept across a reopen */
    records *r2 = NULL;
    assert_int_equal(factory->reopen(factory->ctx, &r2), 0);
    assert_int_equal(records_manifest_get(r2, "enr-1", &m, &e), 0);
    assert_int_equal(m.version, 2);
    free(m.body);
    records_close(r2);
}

/* ---- the registration queue (records/registrations.h) ---------------------------- */

static reg_row mkreg(const char *id, const char *biz, const char *loc, int64_t t)
{
    reg_row g = {.state = REG_QUEUED, .created_ms = t};
    snprintf(g.id, sizeof(g.id), "%s", id);
    snprintf(g.business_id, sizeof(g.business_id), "%s", biz);
    snprintf(g.location_id, sizeof(g.location_id), "%s", loc);
    snprintf(g.business_type, sizeof(g.business_type), "retail");
    return g;
}

static int64_t reg_add(records *r, const char *id, const char *biz, const char *loc, int64_t t)
{
    reg_row g = mkreg(id, biz, loc, t);
    errdetail e = {0};
    if (records_reg_create(r, &g, &e) != 0)
        fail_msg("reg create: %s", e.message);
    assert_true(g.seq > 0);
    return g.seq;
}

/* Created, read back field by field; an id is taken once; bad fields are
 * refused before anything is written; an unknown id is not found. */
static void test_reg_create_get(void **state)
{
    records *r = R(state);
    int64_t s1 = reg_add(r, "r-1", "acme", "s1", 1000);
    int64_t s2 = reg_add(r, "r-2", "acme", "s2", 1001);
    assert_true(s2 > s1);
    reg_row g;
    errdetail e = {0};
    assert_int_equal(records_reg_get(r, "r-1", &g, &e), 0);
    assert_int_equal(g.seq, s1);
    assert_string_equal(g.id, "r-1");
    assert_string_equal(g.business_id, "acme");
    assert_string_equal(g.location_id, "s1");
    assert_string_equal(g.business_type, "retail");
    assert_int_equal(g.state, REG_QUEUED);
    assert_int_equal(g.attempts, 0);
    assert_string_equal(g.last_error, "");
    assert_string_equal(g.shard_id, "");
    assert_int_equal(g.created_ms, 1000);
    assert_int_equal(g.updated_ms, 1000);
    assert_int_equal(g.finished_ms, 0);
    assert_string_equal(g.correlation_id, "");
    /* the correlation id of the request that queued it, kept */
    reg_row withc = mkreg("r-c", "acme", "s3", 1002);
    snprintf(withc.correlation_id, sizeof(withc.correlation_id), "req-42:a.b_c");
    assert_int_equal(records_reg_create(r, &withc, &e), 0);
    assert_int_equal(records_reg_get(r, "r-c", &g, &e), 0);
    assert_string_equal(g.correlation_id, "req-42:a.b_c");
    reg_row dup = mkreg("r-1", "other", "x", 5);
    assert_int_equal(records_reg_create(r, &dup, &e), CITRUS_EEXISTS);
    assert_int_equal(records_reg_get(r, "r-1", &g, &e), 0);
    assert_string_equal(g.business_id, "acme");
    reg_row bad = mkreg("r-3", "", "x", 5);
    assert_int_equal(records_reg_create(r, &bad, &e), CITRUS_EINVAL);
    assert_int_equal(records_reg_get(r, "r-3", &g, &e), CITRUS_ENOTFOUND);
    assert_int_equal(records_reg_get(r, "nope", &g, &e), CITRUS_ENOTFOUND);
    char long_id[RECORDS_MAX_REG_ID + 10];
    memset(long_id, 'a', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    assert_int_equal(records_reg_get(r, long_id, &g, &e), CITRUS_ENOTFOUND);
}

/* An update applies only from the state it expects; finishing sets the
 * finish time; an error longer than its limit is cut at a character. */
static void test_reg_update(void **state)
{
    records *r = R(state);
    reg_add(r, "u-1", "acme", "s1", 1000);
    reg_row g;
    errdetail e = {0};
    assert_int_equal(records_reg_get(r, "u-1", &g, &e), 0);
    g.state = REG_RETRYING;
    g.attempts = 1;
    g.next_attempt_ms = 5000;
    g.updated_ms = 2000;
    memset(g.last_error, 'x', RECORDS_MAX_REG_ERROR);
    g.last_error[RECORDS_MAX_REG_ERROR - 1] = (char)0xc3; /* a character cut in half */
    g.last_error[RECORDS_MAX_REG_ERROR] = '\0';
    bool changed = false;
    assert_int_equal(records_reg_update(r, &g, REG_FAILED, &changed, &e), 0);
    assert_false(changed); /* it is queued, not failed */
    assert_int_equal(records_reg_update(r, &g, REG_QUEUED, &changed, &e), 0);
    assert_true(changed);
    reg_row got;
    assert_int_equal(records_reg_get(r, "u-1", &got, &e), 0);
    assert_int_equal(got.state, REG_RETRYING);
    assert_int_equal(got.attempts, 1);
    assert_int_equal(got.next_attempt_ms, 5000);
    assert_int_equal(got.updated_ms, 2000);
    assert_int_equal(got.finished_ms, 0);
    assert_true(strlen(got.last_error) < RECORDS_MAX_REG_ERROR);
    assert_true(strlen(got.last_error) >= RECORDS_MAX_REG_ERROR - 4);
    g.state = REG_SUCCEEDED;
    snprintf(g.shard_id, sizeof(g.shard_id), "shard-2");
    g.last_error[0] = '\0';
    g.updated_ms = 3000;
    assert_int_equal(records_reg_update(r, &g, REG_NSTATES, &changed, &e), 0);
    assert_true(changed);
    assert_int_equal(records_reg_get(r, "u-1", &got, &e), 0);
    assert_int_equal(got.state, REG_SUCCEEDED);
    assert_string_equal(got.shard_id, "shard-2");
    assert_int_equal(got.finished_ms, 3000);
    /* the attempts of the drive, and a compare on the attempts */
    g.state = REG_RUNNING;
    g.attempts = 2;
    g.drive_attempts = 7;
    assert_int_equal(records_reg_update_if(r, &g, REG_SUCCEEDED, 3, &changed, &e), 0);
    assert_false(changed); /* it has 1 */
    assert_int_equal(records_reg_update_if(r, &g, REG_SUCCEEDED, 1, &changed, &e), 0);
    assert_true(changed);
    assert_int_equal(records_reg_get(r, "u-1", &got, &e), 0);
    assert_int_equal(got.attempts, 2);
    assert_int_equal(got.drive_attempts, 7);
    assert_int_equal(got.finished_ms, 0);
    assert_string_equal(got.correlation_id, "");
    /* a re-drive's own correlation id replaces it; one at the limit is kept whole */
    snprintf(g.correlation_id, sizeof(g.correlation_id), "redrive-1");
    assert_int_equal(records_reg_update(r, &g, REG_NSTATES, &changed, &e), 0);
    assert_int_equal(records_reg_get(r, "u-1", &got, &e), 0);
    assert_string_equal(got.correlation_id, "redrive-1");
    reg_row big = got;
    memset(big.correlation_id, 'c', RECORDS_MAX_CORRELATION_ID);
    big.correlation_id[RECORDS_MAX_CORRELATION_ID] = '\0';
    assert_int_equal(records_reg_update(r, &big, REG_NSTATES, &changed, &e), 0);
    assert_true(changed);
    assert_int_equal(records_reg_get(r, "u-1", &got, &e), 0);
    assert_int_equal(strlen(got.correlation_id), RECORDS_MAX_CORRELATION_ID);
    /* one with no end within its bound: refused, by an update and a create,
     * nothing written */
    memset(big.correlation_id, 'd', sizeof(big.correlation_id));
    assert_int_equal(records_reg_update(r, &big, REG_NSTATES, &changed, &e), CITRUS_EINVAL);
    assert_non_null(strstr(e.message, "correlationId"));
    assert_int_equal(records_reg_get(r, "u-1", &got, &e), 0);
    assert_int_equal(got.correlation_id[0], 'c');
    snprintf(big.id, sizeof(big.id), "u-long");
    assert_int_equal(records_reg_create(r, &big, &e), CITRUS_EINVAL);
    assert_int_equal(records_reg_get(r, "u-long", &got, &e), CITRUS_ENOTFOUND);
    /* an id with no row: nothing changed, no error */
    snprintf(g.id, sizeof(g.id), "nope");
    assert_int_equal(records_reg_update(r, &g, REG_NSTATES, &changed, &e), 0);
    assert_false(changed);
}

static void reg_set_state(records *r, const char *id, reg_state st, int64_t t)
{
    reg_row g;
    errdetail e = {0};
    assert_int_equal(records_reg_get(r, id, &g, &e), 0);
    g.state = st;
    g.updated_ms = t;
    assert_int_equal(records_reg_update(r, &g, REG_NSTATES, NULL, &e), 0);
}

static size_t reg_ids(records *r, const reg_query *q, char ids[][RECORDS_MAX_REG_ID + 1],
                      int64_t *next)
{
    reg_row *rows = NULL;
    size_t n = 0;
    errdetail e = {0};
    if (records_reg_query(r, q, &rows, &n, next, &e) != 0)
        fail_msg("reg query: %s", e.message);
    for (size_t i = 0; i < n; i++)
        snprintf(ids[i], RECORDS_MAX_REG_ID + 1, "%s", rows[i].id);
    if (n == 0)
        assert_null(rows);
    free(rows);
    return n;
}

/* Filters by state and business, in queue order, paged; purge removes
 * the finished ones older than the bound only. */
static void test_reg_query_purge(void **state)
{
    records *r = R(state);
    reg_add(r, "q-1", "a", "1", 1);
    reg_add(r, "q-2", "b", "1", 2);
    reg_add(r, "q-3", "a", "2", 3);
    reg_add(r, "q-4", "a", "3", 4);
    reg_set_state(r, "q-1", REG_FAILED, 100);
    reg_set_state(r, "q-3", REG_FAILED, 300);
    reg_set_state(r, "q-2", REG_FAILED, 200);
    reg_set_state(r, "q-4", REG_SUCCEEDED, 400);
    char ids[8][RECORDS_MAX_REG_ID + 1];
    int64_t next = -1;
    reg_query q = {.has_state = true, .state = REG_FAILED, .business_id = "a"};
    assert_int_equal(reg_ids(r, &q, ids, &next), 2);
    assert_string_equal(ids[0], "q-1");
    assert_string_equal(ids[1], "q-3");
    assert_int_equal(next, 0);
    q = (reg_query){.has_state = true, .state = REG_FAILED, .limit = 2};
    assert_int_equal(reg_ids(r, &q, ids, &next), 2);
    assert_string_equal(ids[1], "q-2");
    assert_true(next > 0);
    q.after_seq = next;
    assert_int_equal(reg_ids(r, &q, ids, &next), 1);
    assert_string_equal(ids[0], "q-3");
    assert_int_equal(next, 0);
    q = (reg_query){.business_id = "a"};
    assert_int_equal(reg_ids(r, &q, ids, &next), 3);
    q = (reg_query){.business_id = "zzz"};
    assert_int_equal(reg_ids(r, &q, ids, &next), 0);
    assert_int_equal(reg_ids(r, NULL, ids, &next), 4);
    int64_t deleted = -1;
    errdetail e = {0};
    assert_int_equal(records_reg_purge(r, 250, &deleted, &e), 0);
    assert_int_equal(deleted, 2); /* q-1 (100) and q-2 (200) */
    assert_int_equal(reg_ids(r, NULL, ids, &next), 2);
    assert_string_equal(ids[0], "q-3");
    reg_add(r, "q-5", "a", "4", 5); /* not finished: never purged */
    assert_int_equal(records_reg_purge(r, 1000000, &deleted, &e), 0);
    assert_int_equal(deleted, 2);
    assert_int_equal(reg_ids(r, NULL, ids, &next), 1);
    assert_string_equal(ids[0], "q-5");
}

#define CONF_TEST(f) cmocka_unit_test_setup_teardown(f, conf_setup, conf_teardown)

static const struct CMUnitTest conformance_tests[] = {
    CONF_TEST(test_append_ids_increase),
    CONF_TEST(test_fields_round_trip),
    CONF_TEST(test_invalid_utf8_replaced),
    CONF_TEST(test_finish_once),
    CONF_TEST(test_query_filters),
    CONF_TEST(test_pagination),
    CONF_TEST(test_limit_clamped),
    CONF_TEST(test_purge),
    CONF_TEST(test_long_strings_truncated),
    CONF_TEST(test_concurrent_appends),
    CONF_TEST(test_reopen_keeps_rows),
    CONF_TEST(test_query_empty),
    CONF_TEST(test_group_commit_many),
    CONF_TEST(test_finish_visible_and_kept),
    CONF_TEST(test_failed_batch),
    CONF_TEST(test_append_async),
    CONF_TEST(test_ledger_once),
    CONF_TEST(test_ledger_batch),
    CONF_TEST(test_notifications_query),
    CONF_TEST(test_ledger_purge),
    CONF_TEST(test_ledger_reopen),
    CONF_TEST(test_ledger_failed_write),
    CONF_TEST(test_manifests),
    CONF_TEST(test_reg_create_get),
    CONF_TEST(test_reg_update),
    CONF_TEST(test_reg_query_purge),
};

const struct CMUnitTest *records_conformance_tests(const records_conformance_factory *f, size_t *n)
{
    factory = f;
    *n = sizeof(conformance_tests) / sizeof(conformance_tests[0]);
    return conformance_tests;
}
