/* tests/unit/support_records_conformance.c — the records store conformance
 * suite (see records_conformance.h): the audit log's contract, checked
 * through records.h only, the same for every backend. No test depends on
 * randomness or on time passing. */
#include "records_conformance.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"

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

/* A row appended with status 0 gets its status once; a set status stays. */
static void test_finish_once(void **state)
{
    records *r = R(state);
    int64_t a = add(r, 10, "alice", "kv.put", "k");
    int64_t b = add(r, 11, "alice", "kv.put", "k");
    audit_row known = mkrow(12, "bob", "auth.denied", "");
    known.status = 403;
    int64_t c = append_ok(r, &known);
    assert_int_equal(status_of(r, a), 0);

    errdetail e = {0};
    assert_int_equal(records_audit_finish(r, a, 201, &e), 0);
    assert_int_equal(status_of(r, a), 201);
    assert_int_equal(status_of(r, b), 0); /* only a changed */
    assert_int_equal(records_audit_finish(r, a, 500, &e), CITRUS_ECONFLICT);
    assert_non_null(strstr(e.message, "201"));
    assert_int_equal(status_of(r, a), 201);
    assert_int_equal(records_audit_finish(r, a, 201, &e), 0); /* the same again: no change */
    assert_int_equal(status_of(r, a), 201);

    assert_int_equal(records_audit_finish(r, c, 200, &e), CITRUS_ECONFLICT);
    assert_int_equal(status_of(r, c), 403);
    assert_int_equal(records_audit_finish(r, c + 1000, 200, &e), CITRUS_ENOTFOUND);
    assert_int_equal(records_audit_finish(r, b, 0, &e), CITRUS_EINVAL);
    assert_int_equal(records_audit_finish(r, b, 1000, &e), CITRUS_EINVAL);
    assert_int_equal(records_audit_finish(r, 0, 200, &e), CITRUS_EINVAL);
    assert_int_equal(status_of(r, b), 0);
    assert_int_equal(records_audit_finish(r, b, 503, &e), 0);
    assert_int_equal(status_of(r, b), 503);
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
    assert_int_equal(records_audit_finish(r, ids[0], 200, &e), CITRUS_ENOTFOUND);
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

#define CONF_TEST(f) cmocka_unit_test_setup_teardown(f, conf_setup, conf_teardown)

static const struct CMUnitTest conformance_tests[] = {
    CONF_TEST(test_append_ids_increase),    CONF_TEST(test_fields_round_trip),
    CONF_TEST(test_invalid_utf8_replaced),  CONF_TEST(test_finish_once),
    CONF_TEST(test_query_filters),          CONF_TEST(test_pagination),
    CONF_TEST(test_limit_clamped),          CONF_TEST(test_purge),
    CONF_TEST(test_long_strings_truncated), CONF_TEST(test_concurrent_appends),
    CONF_TEST(test_reopen_keeps_rows),      CONF_TEST(test_query_empty),
};

const struct CMUnitTest *records_conformance_tests(const records_conformance_factory *f, size_t *n)
{
    factory = f;
    *n = sizeof(conformance_tests) / sizeof(conformance_tests[0]);
    return conformance_tests;
}
