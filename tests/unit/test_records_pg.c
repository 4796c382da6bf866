/* tests/unit/test_records_pg.c — the records store on PostgreSQL: the
 * records conformance suite against a throwaway real server (support_pg.h;
 * missing PostgreSQL binaries fail the binary, they do not skip it), then
 * what only a server has: it goes down (EAUDIT within seconds) and comes
 * back (the same store reconnects), it restarts between two calls (one
 * call reconnects and succeeds), it does not answer (connect_timeout), the
 * DSN's password stays out of every message, and two stores (two nodes)
 * append to one table at once.
 *
 * Every test runs in one cmocka group against the binary's server `pg`;
 * a fresh store is the table dropped first. */
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "records_conformance.h"
#include "support_pg.h"

#include "citrus/errors.h"

#define FAIL_WITHIN_MS 6000 /* connect_timeout is 3 s; a refused connection is at once */

static void dsn(char *out, size_t len)
{
    pg_dsn(&pg, "postgres", out, len);
}

static void no_notices(void *arg, const char *msg)
{
}

static void admin_exec(const char *sql)
{
    PGconn *c = PQconnectdb(pg.admin_dsn);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PQsetNoticeProcessor(c, no_notices, NULL); /* "does not exist, skipping" */
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
}

/* ---- the conformance suite ---------------------------------------------------- */

static int conf_reopen(void *ctx, records **out)
{
    char d[256];
    dsn(d, sizeof(d));
    errdetail e = {0};
    int rc = records_open_postgres(d, out, &e);
    if (rc != 0)
        fprintf(stderr, "records_open_postgres: %s\n", e.message);
    return rc;
}

static int conf_open(void *ctx, records **out)
{
    admin_exec("DROP TABLE IF EXISTS citrus_audit, citrus_processed, citrus_notifications,"
               " citrus_manifests, citrus_registrations");
    return conf_reopen(ctx, out);
}

/* The server goes down (the store's connection with it) and comes back. */
static int conf_break_writes(void *ctx, records *r)
{
    return pg_halt(&pg);
}

static int conf_mend_writes(void *ctx, records *r)
{
    return pg_resume(&pg);
}

static const records_conformance_factory factory = {.name = "postgres",
                                                    .open = conf_open,
                                                    .reopen = conf_reopen,
                                                    .break_writes = conf_break_writes,
                                                    .mend_writes = conf_mend_writes,
                                                    .failed_may_commit = true};

/* ---- PostgreSQL only ------------------------------------------------------------- */

static audit_row sample(int64_t t)
{
    return (audit_row){.time_ms = t,
                       .principal = "alice",
                       .roles = "sm-admin",
                       .auth_method = "jwt",
                       .peer = "127.0.0.1:1",
                       .method = "POST",
                       .route = "/v1/shards/{id}/drain",
                       .action = "shard.drain",
                       .target = "s1",
                       .correlation_id = "c"};
}

static records *fresh(void)
{
    records *r = NULL;
    assert_int_equal(conf_open(NULL, &r), 0);
    return r;
}

static size_t count_rows(records *r)
{
    audit_row *rows;
    size_t n;
    assert_int_equal(records_audit_query(r, NULL, &rows, &n, NULL, NULL), 0);
    audit_rows_free(rows, n);
    return n;
}

/* The server goes down: appends (and queries, and finishes) fail with
 * EAUDIT within seconds, not after a TCP timeout. It comes back: the same
 * store reconnects on its next call. */
static void test_server_down_then_back(void **state)
{
    records *r = fresh();
    audit_row row = sample(1);
    int64_t first;
    assert_int_equal(records_audit_append(r, &row, &first, NULL), 0);
    assert_int_equal(pg_halt(&pg), 0);

    for (int i = 0; i < 2; i++) { /* on the broken connection, then on the failed reset */
        errdetail e = {0};
        int64_t t0 = mono_ms(), id = 5;
        assert_int_equal(records_audit_append(r, &row, &id, &e), CITRUS_EAUDIT);
        int64_t took = mono_ms() - t0;
        print_message("append with the server down: %lld ms: %s\n", (long long)took, e.message);
        assert_true(took < FAIL_WITHIN_MS);
        assert_int_equal(id, 0);
        assert_non_null(strstr(e.message, "records store (postgres) unavailable"));
        assert_null(strchr(e.message, '\n'));
    }
    audit_row *rows;
    size_t n;
    assert_int_equal(records_audit_query(r, NULL, &rows, &n, NULL, NULL), CITRUS_EAUDIT);
    assert_int_equal(records_audit_finish(r, first, 200, NULL), CITRUS_EAUDIT);
    assert_int_equal(records_audit_purge(r, 1000, NULL, NULL), CITRUS_EAUDIT);

    if (pg_resume(&pg) != 0)
        fail_msg("could not start postgres again");
    int64_t again;
    errdetail e = {0};
    if (records_audit_append(r, &row, &again, &e) != 0)
        fail_msg("append after the server came back: %s", e.message);
    assert_true(again > first);
    assert_int_equal(records_audit_finish(r, first, 200, NULL), 0);
    assert_int_equal(count_rows(r), 2); /* the refused appends wrote nothing */
    records_close(r);
}

/* A restart between two calls breaks the connection without a failed call
 * to notice it: the next call fails on it, resets, and succeeds. */
static void test_restart_between_calls(void **state)
{
    records *r = fresh();
    audit_row row = sample(1);
    int64_t first, second;
    assert_int_equal(records_audit_append(r, &row, &first, NULL), 0);
    if (pg_restart(&pg) != 0)
        fail_msg("could not restart postgres");
    errdetail e = {0};
    if (records_audit_append(r, &row, &second, &e) != 0)
        fail_msg("append after a restart: %s", e.message);
    assert_true(second > first);
    if (pg_restart(&pg) != 0)
        fail_msg("could not restart postgres");
    assert_int_equal(count_rows(r), 2); /* a query reconnects as well */
    records_close(r);
}

/* A port where something accepts the connection and never answers: the
 * open fails at connect_timeout, not never. */
static void test_silent_server_times_out(void **state)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 16), 0); /* the kernel completes handshakes; nobody reads */
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char d[128];
    snprintf(d, sizeof(d), "postgresql://postgres@127.0.0.1:%d/postgres", ntohs(a.sin_port));
    records *r = (records *)&r;
    errdetail e = {0};
    int64_t t0 = mono_ms();
    assert_int_equal(records_open_postgres(d, &r, &e), CITRUS_EAUDIT);
    int64_t took = mono_ms() - t0;
    print_message("open against a silent server: %lld ms: %s\n", (long long)took, e.message);
    assert_true(took >= 1000 && took < FAIL_WITHIN_MS);
    assert_null(r);
    close(fd);
}

/* The DSN's password is in no message: not when the server is not there,
 * not when the DSN cannot be parsed, not when authentication fails. */
static void test_password_never_shown(void **state)
{
    char d[256];
    errdetail e = {0};
    records *r;
    snprintf(d, sizeof(d), "postgresql://postgres:s3cr3t-pw@127.0.0.1:%d/postgres", pg_free_port());
    assert_int_equal(records_open_postgres(d, &r, &e), CITRUS_EAUDIT);
    assert_null(strstr(e.message, "s3cr3t"));
    assert_non_null(strstr(e.message, "records store (postgres) unavailable"));
    assert_int_equal(
        records_open_postgres("host=127.0.0.1 password=s3cr3t-pw bogus_option=1", &r, &e),
        CITRUS_EINVAL);
    assert_null(strstr(e.message, "s3cr3t"));
    assert_int_equal(records_open_postgres("postgresql://u:s3cr3t-pw@[::1/x", &r, &e),
                     CITRUS_EINVAL);
    assert_null(strstr(e.message, "s3cr3t"));
    /* A database that does not exist: the server's own refusal. */
    snprintf(d, sizeof(d), "postgresql://postgres:s3cr3t-pw@127.0.0.1:%d/no_such_db", pg.port);
    assert_int_equal(records_open_postgres(d, &r, &e), CITRUS_EAUDIT);
    print_message("%s\n", e.message);
    assert_non_null(strstr(e.message, "no_such_db"));
    assert_null(strstr(e.message, "s3cr3t"));
}

typedef struct node_writer {
    records *r;
    int node;
    int failures;
} node_writer;

static void *node_main(void *arg)
{
    node_writer *w = arg;
    for (int i = 0; i < 25; i++) {
        audit_row row = sample(i);
        char principal[16];
        snprintf(principal, sizeof(principal), "node-%d", w->node);
        row.principal = principal;
        if (records_audit_append(w->r, &row, NULL, NULL) != 0)
            w->failures++;
    }
    return NULL;
}

/* Two stores on one table (two nodes of a cluster), each with two threads
 * appending: every row lands, ids distinct and in order, and both see all. */
static void test_two_nodes_one_table(void **state)
{
    records *a = fresh(), *b = NULL;
    assert_int_equal(conf_reopen(NULL, &b), 0);
    node_writer w[4] = {
        {.r = a, .node = 0}, {.r = a, .node = 0}, {.r = b, .node = 1}, {.r = b, .node = 1}};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, node_main, &w[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    audit_row *rows;
    size_t n;
    audit_query q = {.limit = 1000};
    assert_int_equal(records_audit_query(b, &q, &rows, &n, NULL, NULL), 0);
    assert_int_equal(n, 100);
    int per_node[2] = {0};
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            assert_true(rows[i].id > rows[i - 1].id);
        per_node[strcmp(rows[i].principal, "node-1") == 0]++;
    }
    assert_int_equal(per_node[0], 50);
    assert_int_equal(per_node[1], 50);
    audit_rows_free(rows, n);
    assert_int_equal(count_rows(a), 100);
    records_close(a);
    records_close(b);
}

int main(void)
{
    size_t nconf;
    const struct CMUnitTest *conf = records_conformance_tests(&factory, &nconf);
    const struct CMUnitTest own[] = {
        cmocka_unit_test(test_password_never_shown),
        cmocka_unit_test(test_silent_server_times_out),
        cmocka_unit_test(test_two_nodes_one_table),
        cmocka_unit_test(test_restart_between_calls),
        cmocka_unit_test(test_server_down_then_back),
    };
    size_t nown = sizeof(own) / sizeof(own[0]);
    struct CMUnitTest *all = calloc(nconf + nown, sizeof(*all));
    if (!all)
        return 1;
    memcpy(all, conf, nconf * sizeof(*all));
    memcpy(all + nconf, own, sizeof(own));
    /* One server for the whole binary: the suite and the server-only tests. */
    int failed = _cmocka_run_group_tests("records_postgres", all, nconf + nown, pg_group_setup,
                                         pg_group_teardown);
    free(all);
    return failed ? 1 : 0;
}
