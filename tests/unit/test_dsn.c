/* Unit tests for core/dsn.c: the accepted DSN shapes (sqlite, postgres
 * URIs, key=value conninfo), the messages for bad ones, and redaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "citrus/errors.h"
#include "core/dsn.h"

/* dsn_parse, checking that the detail's code is the returned one. */
static int parse(const char *dsn, dsn_info *info, errdetail *e)
{
    errdetail_clear(e);
    int rc = dsn_parse(dsn, info, e);
    assert_int_equal(e->code, rc);
    return rc;
}

/* Every DSN in good parses as a postgres DSN. */
static void expect_postgres(const char *const *good, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        dsn_info info;
        errdetail e;
        if (parse(good[i], &info, &e) != 0)
            fail_msg("%s: %s", good[i], e.message);
        assert_int_equal(info.kind, DSN_POSTGRES);
    }
}

typedef struct {
    const char *dsn, *why; /* why: a part of the expected message */
} bad_dsn;

/* Every DSN in bad is refused with a message that contains its why. */
static void expect_refused(const bad_dsn *bad, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        dsn_info info;
        errdetail e;
        if (parse(bad[i].dsn, &info, &e) != CITRUS_EINVAL)
            fail_msg("%s: accepted", bad[i].dsn);
        if (!strstr(e.message, bad[i].why))
            fail_msg("%s: message '%s' lacks '%s'", bad[i].dsn, e.message, bad[i].why);
    }
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void sqlite_good(void **state)
{
    static const struct {
        const char *dsn, *path;
    } good[] = {
        {"sqlite:///var/lib/citrus/s1.db", "/var/lib/citrus/s1.db"},
        {"sqlite:data/s1.db", "data/s1.db"},
        {"sqlite:s1.db", "s1.db"},
        {"sqlite:/tmp/x.db", "/tmp/x.db"},
        {"sqlite:///tmp/with space.db", "/tmp/with space.db"},
    };
    for (size_t i = 0; i < N(good); i++) {
        dsn_info info;
        errdetail e;
        if (parse(good[i].dsn, &info, &e) != 0)
            fail_msg("%s: %s", good[i].dsn, e.message);
        assert_int_equal(info.kind, DSN_SQLITE);
        assert_string_equal(info.path, good[i].path);
    }
}

static void sqlite_bad(void **state)
{
    static const bad_dsn bad[] = {
        {"sqlite:", "empty"},
        {"sqlite://", "no host"},
        {"sqlite://host/x.db", "no host"},
        {"sqlite:///", "directory"},
        {"sqlite:///tmp/", "directory"},
        {"sqlite:///tmp/x.db?mode=ro", "query"},
        {"sqlite:x.db?cache=shared", "query"},
        {"sqlite:///tmp/x\n.db", "control"},
        {"sqlite:a\tb", "control"},
    };
    expect_refused(bad, N(bad));
    char *big = malloc(4200);
    strcpy(big, "sqlite:///");
    memset(big + 10, 'a', 4100);
    big[4110] = '\0';
    dsn_info info;
    errdetail e;
    assert_int_equal(parse(big, &info, &e), CITRUS_EINVAL);
    assert_non_null(strstr(e.message, "longer"));
    free(big);
}

static void postgres_uri_good(void **state)
{
    static const char *const good[] = {
        "postgres://localhost",
        "postgresql://localhost",
        "postgres://db.example.com:5432/app",
        "postgres://user@host/db",
        "postgres://user:secret@host:6543/db?sslmode=require&connect_timeout=5",
        "postgresql://user:p%40ss@host/db",
        "postgres:///app",
        "postgres://?host=/var/run/postgresql&dbname=app",
        "postgres:///app?host=/tmp",
        "postgres://%2Fvar%2Frun%2Fpostgresql/app",
        "postgres://[::1]:5432/app",
        "postgres://[2001:db8::1]/app",
        "postgres://h1:5432,h2:5433/app?target_session_attrs=read-write",
        "postgres://user@",
        "postgres://host/db?application_name=",
    };
    expect_postgres(good, N(good));
}

static void postgres_uri_bad(void **state)
{
    static const bad_dsn bad[] = {
        {"postgres://", "nothing after the scheme"},
        {"postgresql://", "nothing after the scheme"},
        {"postgres:///", "names no host"},
        {"postgres://host name/db", "space"},
        {"postgres://host/db name", "space"},
        {"postgres://host/db\x01", "control"},
        {"postgres://host:/db", "port"},
        {"postgres://host:0/db", "port"},
        {"postgres://host:65536/db", "port"},
        {"postgres://host:54x/db", "port"},
        {"postgres://host:123456/db", "port"},
        {"postgres://@host/db", "user name"},
        {"postgres://ho$t/db", "bad character"},
        {"postgres://[::1/db", "IPv6"},
        {"postgres://[::g]/db", "IPv6"},
        {"postgres://host/db?sslmode", "key=value"},
        {"postgres://host/db?", "key=value"},
        {"postgres://host/db?a=1&&b=2", "key=value"},
        {"postgres://host/db?SSLMODE=x", "key=value"},
        {"postgres://host/%zz", "hex"},
        {"postgres://host/%4", "hex"},
    };
    expect_refused(bad, N(bad));
}

static void conninfo_good(void **state)
{
    static const char *const good[] = {
        "host=localhost",
        "host=localhost dbname=app user=citrus",
        "  host = localhost   port=5432  ",
        "host=localhost password='it\\'s'",
        "host=h password='a b\\' c\\\\'",
        "password=''",
        "host=/var/run/postgresql dbname=app",
        "host=h\tdbname=x\napplication_name=citrus",
        "options=-c\\ search_path=x",
    };
    expect_postgres(good, N(good));
}

static void conninfo_bad(void **state)
{
    static const bad_dsn bad[] = {
        {"host=", "'host' has no value"},
        {"host=h dbname", "'dbname' has no '='"},
        {"host=h dbname=", "'dbname' has no value"},
        {"host=h password='open", "unterminated"},
        {"host=h password='x\\'", "unterminated"},
        {"host=h password='x'y", "closing quote"},
        {"host=h password='it''s'", "closing quote"}, /* '' is not an escape */
        {"host=h Port=5", "expected a key"},
        {"host=h =5", "expected a key"},
        {"host=h\x01", "control"},
        {"host=h password='a\x02'", "control"},
    };
    expect_refused(bad, N(bad));
}

static void unknown_forms(void **state)
{
    const char *bad[] = {"mysql://host/db", "postgres:host/db", "postgres//host", "localhost",
                         "/var/lib/x.db",   "HOST=x",           "file:x.db",      " ",
                         "sqlite"};
    for (size_t i = 0; i < N(bad); i++) {
        dsn_info info;
        errdetail e;
        if (parse(bad[i], &info, &e) != CITRUS_EINVAL)
            fail_msg("%s: accepted", bad[i]);
        assert_string_equal(e.message,
                            "dsn must start with sqlite:, postgres:// or postgresql://, or "
                            "be key=value pairs");
    }
    errdetail e;
    assert_int_equal(dsn_parse("", NULL, &e), CITRUS_EINVAL);
    assert_int_equal(e.code, CITRUS_EINVAL);
    assert_string_equal(e.message, "dsn is empty");
    assert_int_equal(dsn_parse(NULL, NULL, &e), CITRUS_EINVAL);
    /* out and e are optional. */
    assert_int_equal(dsn_parse("sqlite:x.db", NULL, NULL), 0);
    assert_int_equal(dsn_parse("nope", NULL, NULL), CITRUS_EINVAL);
}

static void redacts(const char *in, const char *want)
{
    char *got = dsn_redact(in);
    assert_non_null(got);
    if (strcmp(got, want) != 0)
        fail_msg("redact(%s) = '%s', want '%s'", in, got, want);
    free(got);
}

static void redaction(void **state)
{
    redacts("postgres://user:secret@host:5432/db", "postgres://user:***@host:5432/db");
    redacts("postgresql://u:p%40ss@h/db?sslmode=require",
            "postgresql://u:***@h/db?sslmode=require");
    redacts("postgres://user:@host/db", "postgres://user:***@host/db");
    redacts("postgres://user@host/db", "postgres://user@host/db");
    redacts("postgres://host/db?password=x&user=u", "postgres://host/db?password=***&user=u");
    redacts("postgres://host/db?user=u&password=x", "postgres://host/db?user=u&password=***");
    redacts("postgres://a:b@host/db?password=c", "postgres://a:***@host/db?password=***");
    redacts("postgres://host:5432/db", "postgres://host:5432/db");
    redacts("host=h password=secret dbname=d", "host=h password=*** dbname=d");
    redacts("host=h password = 'se cr\\'et' dbname=d", "host=h password = *** dbname=d");
    redacts("password=x", "password=***");
    redacts("password=''", "password=***");
    redacts("host=h passwordx=1", "host=h passwordx=1");
    redacts("host=h password=a password=b", "host=h password=*** password=***");
    /* A malformed tail that mentions a password is dropped. */
    redacts("host=h password='open", "host=h ***");
    redacts("host=h dbname", "host=h dbname");
    redacts("sqlite:///tmp/x.db", "sqlite:///tmp/x.db");
    redacts("", "");
    assert_null(dsn_redact(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sqlite_good),       cmocka_unit_test(sqlite_bad),
        cmocka_unit_test(postgres_uri_good), cmocka_unit_test(postgres_uri_bad),
        cmocka_unit_test(conninfo_good),     cmocka_unit_test(conninfo_bad),
        cmocka_unit_test(unknown_forms),     cmocka_unit_test(redaction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
