/* Unit tests for core/dsn.c: the accepted DSN shapes (sqlite, postgres
 * URIs, key=value conninfo), the messages for bad ones, and redaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
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

static void redaction_quoted_password(void **state)
{
    redacts("host=h password='p@ss:w/rd?#1' dbname=d", "host=h password=*** dbname=d");
    redacts("postgresql://u:p%40ss%3Aw%2Frd%3F%231@h/db", "postgresql://u:***@h/db");
}

/* dsn_check with policy p: 0, or the message contains why. */
static void checks(const char *dsn, const dsn_policy *p, const char *why)
{
    errdetail e;
    errdetail_clear(&e);
    int rc = dsn_check(dsn, p, &e);
    if (!why && rc != 0)
        fail_msg("%s: refused: %s", dsn, e.message);
    if (why && (rc != CITRUS_EINVAL || !strstr(e.message, why)))
        fail_msg("%s: rc %d '%s', want '%s'", dsn, rc, e.message, why);
}

static void allow_list(void **state)
{
    const dsn_policy none = {0};
    const char *good[] = {
        "postgres://u:p@10.0.0.1:5432/app?sslmode=require&connect_timeout=5",
        "host=db.example.com port=5432 dbname=app user=u password='x y'",
        "postgres://h1,h2:5433/app?target_session_attrs=read-write&application_name=c",
        "host=h keepalives=1 keepalives_idle=5 keepalives_interval=5 keepalives_count=3",
        "hostaddr=10.1.2.3 dbname=x",
        "postgres:///app?host=10.0.0.9",
        "postgres://[::1]:5432/app",
        "sqlite:///tmp/x.db", /* not PostgreSQL: no options */
    };
    for (size_t i = 0; i < N(good); i++)
        checks(good[i], &none, NULL);
    checks("host=h passfile=/etc/shadow", &none, "'passfile' is not allowed");
    checks("postgres://h/db?passfile=/etc/shadow", &none, "'passfile' is not allowed");
    checks("host=h service=prod", &none, "'service' is not allowed");
    checks("postgres://h/db?servicefile=/x", &none, "'servicefile' is not allowed");
    checks("host=h options='-c x=y'", &none, "'options' is not allowed");
    checks("host=h sslpassword=x", &none, "'sslpassword' is not allowed");
    checks("host=/var/run/postgresql dbname=x", &none, "Unix socket");
    checks("host=h,/tmp dbname=x", &none, "Unix socket");
    checks("host=@abstract dbname=x", &none, "Unix socket");
    checks("postgres://%2Fvar%2Frun%2Fpostgresql/app", &none, "Unix socket");
    checks("postgres://?host=/tmp&dbname=app", &none, "Unix socket");
    checks("postgres:///app", &none, "names no host");
    checks("dbname=app user=u", &none, "names no host");
    checks("host=h sslkey=/etc/ssl/k.pem", &none, "no shards.tls_dir");
    const dsn_policy pol = {.tls_dir = "/etc/citrus/tls/",
                            .socket_dirs = "/var/run/postgresql,/tmp/pg",
                            .allowed_hosts = "10.0.0.0/8,fd00::/8,db.example.com,.corp.test"};
    checks("host=/var/run/postgresql dbname=x", &pol, NULL);
    checks("postgres://%2Ftmp%2Fpg/app", &pol, NULL);
    checks("host=/var/run/postgresql/../../etc dbname=x", &pol, "Unix socket");
    checks("host=/var/run dbname=x", &pol, "Unix socket");
    checks("host=10.2.3.4 sslmode=verify-full sslrootcert=/etc/citrus/tls/ca.pem "
           "sslcert=/etc/citrus/tls/c.pem sslkey=/etc/citrus/tls/c.key",
           &pol, NULL);
    checks("host=10.2.3.4 sslkey=/etc/citrus/tls/../../shadow", &pol, "under shards.tls_dir");
    checks("host=10.2.3.4 sslkey=/etc/citrus/tlsx/k", &pol, "under shards.tls_dir");
    checks("host=10.2.3.4 sslkey=k.pem", &pol, "under shards.tls_dir");
    checks("host=db.example.com", &pol, NULL);
    checks("host=DB.Example.com", &pol, NULL);
    checks("host=a.corp.test", &pol, NULL);
    checks("postgres://[fd00::5]/app", &pol, NULL);
    checks("host=11.0.0.1", &pol, "'11.0.0.1' is not in shards.allowed_hosts");
    checks("host=evil.example.com", &pol, "not in shards.allowed_hosts");
    checks("host=corp.test.evil", &pol, "not in shards.allowed_hosts");
    checks("host=10.0.0.1,169.254.169.254", &pol, "169.254.169.254");
    checks("postgres://[::1]/app", &pol, "not in shards.allowed_hosts");
    /* hostaddr is where libpq connects: it is the one checked */
    checks("host=db.example.com hostaddr=127.0.0.1", &pol, "hostaddr '127.0.0.1'");
    checks("host=elsewhere hostaddr=10.9.9.9", &pol, NULL);
    /* allowed_hosts lists */
    errdetail e;
    assert_int_equal(dsn_policy_hosts_check("10.0.0.0/8,::1,db-1.x,.corp", &e), 0);
    assert_int_equal(dsn_policy_hosts_check("10.0.0.0/33", &e), CITRUS_EINVAL);
    assert_int_equal(dsn_policy_hosts_check("a b", &e), CITRUS_EINVAL);
    assert_int_equal(dsn_policy_hosts_check("x/8", &e), CITRUS_EINVAL);
}

static void redacts_text(const char *in, const char *want)
{
    char *got = dsn_redact_text(in);
    assert_non_null(got);
    if (strcmp(got, want) != 0)
        fail_msg("redact_text(%s) = '%s', want '%s'", in, got, want);
    free(got);
}

static void text_redaction(void **state)
{
    redacts_text("connect postgres://admin:s3cret@db:5432/x failed",
                 "connect postgres://admin:***@db:5432/x failed");
    redacts_text("uri=postgresql://a:p@ss/w@h/db?password=q end",
                 "uri=postgresql://a:***@h/db?password=*** end");
    redacts_text("host=h password='p@ss:w/rd?#1' dbname=d", "host=h password=*** dbname=d");
    redacts_text("PGPASSWORD=hunter2 API_TOKEN: abc.def x", "PGPASSWORD=*** API_TOKEN: *** x");
    redacts_text("{\"client_secret\": \"zz\"}", "{\"client_secret\": \"***\"}");
    redacts_text("{\"dsn\":\"postgresql://u:pw@h/db\",\"password\":\"a\\\"b\"}",
                 "{\"dsn\":\"postgresql://u:***@h/db\",\"password\":\"***\"}");
    /* a JSON log line stays JSON: a number under a secret-like name is no secret */
    redacts_text("{\"fields\":{\"node_id\":\"n1\",\"token\":42,\"secret\":null}}",
                 "{\"fields\":{\"node_id\":\"n1\",\"token\":42,\"secret\":null}}");
    redacts_text("nothing here, user=bob", "nothing here, user=bob");
    redacts_text("postgres://h/db", "postgres://h/db");
    redacts_text("", "");
    assert_null(dsn_redact_text(NULL));
}

/* ---- the URI form and identity ---------------------------------------- */

static char *uri_of(const char *dsn)
{
    errdetail e = {0};
    char *u = dsn_to_uri(dsn, &e);
    if (!u)
        fail_msg("dsn_to_uri(%s): %s", dsn, e.message);
    /* idempotent, and what it gives parses */
    char *again = dsn_to_uri(u, &e);
    if (!again || strcmp(again, u) != 0)
        fail_msg("dsn_to_uri not idempotent: %s -> %s", u, again ? again : e.message);
    free(again);
    return u;
}

static void expect_uri(const char *dsn, const char *want)
{
    char *u = uri_of(dsn);
    if (strcmp(u, want) != 0)
        fail_msg("dsn_to_uri(%s) = %s, want %s", dsn, u, want);
    free(u);
}

/* The option key of dsn's parts is want (NULL: absent). */
static void expect_opt(const char *dsn, const char *key, const char *want)
{
    dsn_parts p;
    errdetail e = {0};
    if (dsn_split(dsn, &p, &e) != 0)
        fail_msg("dsn_split(%s): %s", dsn, e.message);
    const char *v = dsn_parts_get(&p, key);
    if (want ? !v || strcmp(v, want) != 0 : v != NULL)
        fail_msg("%s: %s = %s, want %s", dsn, key, v ? v : "(none)", want ? want : "(none)");
    dsn_parts_clear(&p);
}

static void uri_form(void **state)
{
    (void)state;
    expect_uri("host=db.example.com port=5433 dbname=shop user=app password='p@ss:w/rd?#1'",
               "postgresql://app:p%40ss%3Aw%2Frd%3F%231@db.example.com:5433/shop");
    expect_uri("host=h dbname=d user=u sslmode=require connect_timeout=5",
               "postgresql://u@h/d?sslmode=require&connect_timeout=5");
    expect_uri("postgres://u:pw@h:1/d", "postgresql://u:pw@h:1/d");
    /* a Unix-socket directory: in the query, where every driver reads it */
    expect_uri("host=/var/run/postgresql dbname=d user=u",
               "postgresql://u@/d?host=%2Fvar%2Frun%2Fpostgresql");
    expect_uri("host=/tmp port=5433 dbname=d user=u", "postgresql://u@/d?host=%2Ftmp&port=5433");
    /* IPv6 in brackets; several hosts, one port each or one for all */
    expect_uri("host=::1 port=5432 dbname=d user=u", "postgresql://u@[::1]:5432/d");
    expect_uri("postgresql://u@[::1]:5432/d", "postgresql://u@[::1]:5432/d");
    expect_uri("host=a,b port=1,2 dbname=d user=u", "postgresql://u@a:1,b:2/d");
    expect_uri("host=a,b port=7 dbname=d user=u", "postgresql://u@a:7,b:7/d");
    expect_uri("host=a,b,c port=1,2 dbname=d user=u",
               "postgresql://u@/d?host=a%2Cb%2Cc&port=1%2C2");
    /* empty password, no user, empty user, a password without a user */
    expect_uri("host=h user=u password='' dbname=d", "postgresql://u:@h/d");
    expect_uri("host=h dbname=d", "postgresql://h/d");
    expect_uri("host=h user='' dbname=d", "postgresql://h/d?user=");
    expect_uri("host=h password=pw dbname=d", "postgresql://h/d?password=pw");
    /* tricky characters: space, quote, backslash, %, unicode */
    expect_uri("host=h user=u dbname='my db' password='a b\\'c\\\\d%e\xc3\xa9'",
               "postgresql://u:a%20b%27c%5Cd%25e%C3%A9@h/my%20db");
    /* the last of a key wins, as in libpq */
    expect_uri("host=h dbname=a dbname=b", "postgresql://h/b");
    /* SQLite: kept */
    expect_uri("sqlite:///var/lib/s1.db", "sqlite:///var/lib/s1.db");
    expect_uri("sqlite:data/s1.db", "sqlite:data/s1.db");
    errdetail e = {0};
    assert_null(dsn_to_uri("nonsense", &e));
    assert_int_equal(e.code, CITRUS_EINVAL);
    assert_null(dsn_to_uri("host=h password='a%00'x", &e));
}

static void uri_round_trip(void **state)
{
    (void)state;
    static const char *const passwords[] = {
        "p@ss:w/rd?#1", "100%", "a b", "it's", "back\\slash", "\xe2\x82\xac uro", "", "&=+;,[]",
    };
    for (size_t i = 0; i < N(passwords); i++) {
        char ci[256], esc[128];
        size_t o = 0;
        for (const char *p = passwords[i]; *p; p++) {
            if (*p == '\'' || *p == '\\')
                esc[o++] = '\\';
            esc[o++] = *p;
        }
        esc[o] = '\0';
        snprintf(ci, sizeof(ci), "host=h port=5432 dbname='d b' user='us@r' password='%s'", esc);
        char *u = uri_of(ci);
        expect_opt(u, "password", passwords[i]);
        expect_opt(u, "user", "us@r");
        expect_opt(u, "dbname", "d b");
        expect_opt(u, "host", "h");
        expect_opt(u, "port", "5432");
        /* the redacted URI shows no password */
        char *r = dsn_redact(u);
        assert_non_null(strstr(r, "us%40r:***@h"));
        free(r);
        free(u);
    }
}

static void expect_identity(const char *dsn, const char *want)
{
    errdetail e = {0};
    char *id = dsn_identity(dsn, &e);
    if (!id)
        fail_msg("dsn_identity(%s): %s", dsn, e.message);
    if (strcmp(id, want) != 0)
        fail_msg("dsn_identity(%s) = %s, want %s", dsn, id, want);
    free(id);
}

static void identity(void **state)
{
    (void)state;
    const char *same = "postgresql://localhost:5432/shop";
    expect_identity("host=localhost dbname=shop user=a", same);
    expect_identity("postgresql://b:pw@127.0.0.1/shop", same);
    expect_identity("postgresql://c@[::1]:5432/shop", same);
    expect_identity("host=LOCALHOST. port=05432 dbname=shop", same);
    expect_identity("host=DB.Example.com dbname=shop", "postgresql://db.example.com:5432/shop");
    /* the database defaults to the user, as in libpq; names are exact */
    expect_identity("host=h user=Shop", "postgresql://h:5432/Shop");
    /* hostaddr is where libpq connects */
    expect_identity("host=name hostaddr=10.0.0.1 dbname=d", "postgresql://10.0.0.1:5432/d");
    /* a socket directory is not the TCP host */
    expect_identity("host=/var/run/postgresql/ dbname=d",
                    "postgresql://unix:/var/run/postgresql:5432/d");
    expect_identity("host=a,b port=1,2 dbname=d", "postgresql://a:1/d\npostgresql://b:2/d");
    expect_identity("sqlite:///x/y.db", "sqlite:/x/y.db");
    /* no password in it */
    expect_identity("host=h user=u password=secret dbname=d", "postgresql://h:5432/d");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sqlite_good),
        cmocka_unit_test(sqlite_bad),
        cmocka_unit_test(postgres_uri_good),
        cmocka_unit_test(postgres_uri_bad),
        cmocka_unit_test(conninfo_good),
        cmocka_unit_test(conninfo_bad),
        cmocka_unit_test(unknown_forms),
        cmocka_unit_test(redaction),
        cmocka_unit_test(redaction_quoted_password),
        cmocka_unit_test(allow_list),
        cmocka_unit_test(text_redaction),
        cmocka_unit_test(uri_form),
        cmocka_unit_test(uri_round_trip),
        cmocka_unit_test(identity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
