/* The URI form of a DSN (core/dsn.c dsn_to_uri) against libpq itself and a
 * real PostgreSQL server (support_pg.h): every form the API answers is
 * something PQconnectdb takes verbatim, connecting as the right user to
 * the right database with the password unchanged (PQpass, and
 * PQconninfoParse for the parts), whatever characters it holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "core/dsn.h"
#include "support_pg.h"

#define PW "p@ss:w/rd?#1 'q' \\b %25 \xc3\xa9"
#define PW_CI "p@ss:w/rd?#1 \\'q\\' \\\\b %25 \xc3\xa9" /* as a quoted conninfo value */

static void exec_admin(const char *sql)
{
    PGconn *c = PQconnectdb(pg.admin_dsn);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

/* The value of keyword in libpq's parse of conninfo. */
static char *parsed(const char *conninfo, const char *keyword)
{
    char *err = NULL;
    PQconninfoOption *o = PQconninfoParse(conninfo, &err);
    if (!o)
        fail_msg("PQconninfoParse(%s): %s", conninfo, err ? err : "?");
    char *out = NULL;
    for (PQconninfoOption *p = o; p->keyword; p++)
        if (strcmp(p->keyword, keyword) == 0 && p->val)
            out = strdup(p->val);
    PQconninfoFree(o);
    return out;
}

/* Connects with uri as it is: user, database and password as expected. */
static void connects(const char *uri, const char *user, const char *db, const char *pw)
{
    PGconn *c = PQconnectdb(uri);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("PQconnectdb(%s): %s", uri, PQerrorMessage(c));
    assert_string_equal(PQuser(c), user);
    assert_string_equal(PQdb(c), db);
    assert_string_equal(PQpass(c), pw);
    PGresult *r = PQexec(c, "SELECT current_user, current_database()");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), user);
    assert_string_equal(PQgetvalue(r, 0, 1), db);
    PQclear(r);
    PQfinish(c);
}

static char *uri_of(const char *dsn)
{
    errdetail e = {0};
    char *u = dsn_to_uri(dsn, &e);
    if (!u)
        fail_msg("dsn_to_uri(%s): %s", dsn, e.message);
    assert_non_null(strstr(u, "postgresql://"));
    return u;
}

static void tcp_key_value(void **state)
{
    (void)state;
    char dsn[512];
    snprintf(dsn, sizeof(dsn),
             "host=127.0.0.1 port=%d dbname='my db' user='app user@x' password='%s' "
             "connect_timeout=5",
             pg.port, PW_CI);
    char *u = uri_of(dsn);
    char *pw = parsed(u, "password"), *user = parsed(u, "user"), *db = parsed(u, "dbname");
    assert_string_equal(pw, PW);
    assert_string_equal(user, "app user@x");
    assert_string_equal(db, "my db");
    free(pw);
    free(user);
    free(db);
    connects(u, "app user@x", "my db", PW);
    free(u);
}

static void socket_dir_and_host_lists(void **state)
{
    (void)state;
    char dsn[512];
    /* a Unix-socket directory: in the query */
    snprintf(dsn, sizeof(dsn), "host=%s/sock port=%d dbname=postgres user=postgres", pg.dir,
             pg.port);
    char *u = uri_of(dsn);
    assert_non_null(strstr(u, "?host=%2F"));
    connects(u, "postgres", "postgres", "");
    free(u);
    /* two hosts, the first refusing: libpq moves on to the second */
    snprintf(dsn, sizeof(dsn),
             "host=127.0.0.1,localhost port=%d,%d dbname=postgres user=postgres password=''",
             pg_free_port(), pg.port);
    u = uri_of(dsn);
    connects(u, "postgres", "postgres", "");
    free(u);
}

static int setup(void **state)
{
    if (pg_group_setup(state) != 0)
        return -1;
    exec_admin("CREATE ROLE \"app user@x\" LOGIN PASSWORD 'p@ss:w/rd?#1 ''q'' \\b %25 "
               "\xc3\xa9'");
    exec_admin("CREATE DATABASE \"my db\" OWNER \"app user@x\"");
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tcp_key_value),
        cmocka_unit_test(socket_dir_and_host_lists),
    };
    return cmocka_run_group_tests_name("dsn_libpq", tests, setup, pg_group_teardown);
}
