/* test_kv.c — `citrus kv` against a scripted server: the requests it sends
 * (exact targets), what it prints, and its exit codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/kv.h"
#include "support_fake_http.h"

#define MAX_REQ 8

typedef struct seen {
    char method[16];
    char target[512];
    char content_type[64];
    char body[512];
    size_t body_len;
} seen;

/* Replies served in order (the last one repeats); requests recorded. */
typedef struct script {
    pthread_mutex_t mu;
    fake_http_reply replies[MAX_REQ];
    size_t nreplies;
    seen reqs[MAX_REQ];
    size_t nreq;
} script;

static script S;
static fake_http *srv;

static void on_req(void *ctx, const fake_http_req *req, fake_http_reply *out)
{
    script *s = ctx;
    pthread_mutex_lock(&s->mu);
    if (s->nreq < MAX_REQ) {
        seen *r = &s->reqs[s->nreq];
        snprintf(r->method, sizeof(r->method), "%s", req->method);
        snprintf(r->target, sizeof(r->target), "%s", req->target);
        snprintf(r->content_type, sizeof(r->content_type), "%s",
                 req->content_type ? req->content_type : "");
        r->body_len = req->body_len < sizeof(r->body) ? req->body_len : sizeof(r->body);
        memcpy(r->body, req->body, r->body_len);
    }
    size_t i = s->nreq < s->nreplies ? s->nreq : s->nreplies - 1;
    *out = s->nreplies ? s->replies[i] : (fake_http_reply){.status = 500, .body = "no script"};
    s->nreq++;
    pthread_mutex_unlock(&s->mu);
}

static int setup(void **state)
{
    pthread_mutex_init(&S.mu, NULL);
    srv = fake_http_start(on_req, &S);
    return srv ? 0 : -1;
}

static int teardown(void **state)
{
    fake_http_stop(srv);
    pthread_mutex_destroy(&S.mu);
    return 0;
}

static int reset(void **state)
{
    pthread_mutex_lock(&S.mu);
    memset(S.replies, 0, sizeof(S.replies));
    memset(S.reqs, 0, sizeof(S.reqs));
    S.nreplies = S.nreq = 0;
    pthread_mutex_unlock(&S.mu);
    return 0;
}

static void reply(unsigned status, const char *body)
{
    S.replies[S.nreplies++] = (fake_http_reply){.status = status, .body = body};
}

static char out[4096], err[4096];
static size_t out_len;

static void slurp(FILE *f, char *buf, size_t cap, size_t *len)
{
    rewind(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    if (len)
        *len = n;
    fclose(f);
}

/* Runs `citrus kv ARGS... --endpoint <fake>` with stdout/stderr captured in
 * out/err (and stdin from stdin_data when not NULL); returns the exit code. */
static int run_kv(const char *stdin_data, size_t stdin_len, ...)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = strdup("kv");
    va_list ap;
    va_start(ap, stdin_len);
    for (const char *a; (a = va_arg(ap, const char *));)
        argv[argc++] = strdup(a);
    va_end(ap);
    argv[argc++] = strdup("--endpoint");
    argv[argc++] = strdup(fake_http_url(srv));
    argv[argc] = NULL;

    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2), si = dup(0);
    FILE *fo = tmpfile(), *fe = tmpfile(), *fi = NULL;
    dup2(fileno(fo), 1);
    dup2(fileno(fe), 2);
    if (stdin_data) {
        fi = tmpfile();
        fwrite(stdin_data, 1, stdin_len, fi);
        rewind(fi);
        dup2(fileno(fi), 0);
        clearerr(stdin);
    }
    int rc = cli_kv_main(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    dup2(si, 0);
    close(so);
    close(se);
    close(si);
    if (fi)
        fclose(fi);
    slurp(fo, out, sizeof(out), &out_len);
    slurp(fe, err, sizeof(err), NULL);
    for (int i = 0; i < argc; i++)
        free(argv[i]);
    return rc;
}

#define KV(...) run_kv(NULL, 0, __VA_ARGS__, NULL)

static void expect_request(size_t i, const char *method, const char *target)
{
    assert_true(S.nreq > i);
    assert_string_equal(S.reqs[i].method, method);
    assert_string_equal(S.reqs[i].target, target);
}

static void test_get_raw(void **state)
{
    S.replies[S.nreplies++] = (fake_http_reply){.body = "v\0x\n", .body_len = 4};
    assert_int_equal(KV("get", "a b/caf\xc3\xa9"), 0);
    expect_request(0, "GET", "/v1/kv/a%20b/caf%C3%A9");
    /* Exactly the value's bytes: nothing added. */
    assert_int_equal(out_len, 4);
    assert_memory_equal(out, "v\0x\n", 4);
    assert_string_equal(err, "");
}

static void test_get_json(void **state)
{
    reply(200, "{\"key\":\"k\",\"value\":\"dg==\"}");
    assert_int_equal(KV("get", "-o", "json", "k", "--consistency", "strong"), 0);
    expect_request(0, "GET", "/v1/kv/k?format=json&consistency=strong");
    assert_string_equal(out, "{\"key\":\"k\",\"value\":\"dg==\"}\n");
}

static void test_get_not_found(void **state)
{
    reply(404, "{\"error\":{\"code\":\"not_found\",\"message\":\"key 'k' not found\"}}");
    assert_int_equal(KV("get", "k"), 1);
    assert_string_equal(out, "");
    assert_string_equal(err, "error: not_found: key 'k' not found\n");
}

static void test_put(void **state)
{
    reply(200, "{\"key\":\"k\",\"revision\":3,\"create_revision\":3,\"mod_revision\":3,"
               "\"version\":1}");
    assert_int_equal(KV("put", "k", "some value", "--cas", "0", "--lease", "5"), 0);
    expect_request(0, "PUT", "/v1/kv/k?cas=0&lease=5");
    assert_string_equal(S.reqs[0].content_type, "application/octet-stream");
    assert_int_equal(S.reqs[0].body_len, 10);
    assert_memory_equal(S.reqs[0].body, "some value", 10);
    assert_string_equal(out, "OK revision=3 mod_revision=3 version=1\n");
}

static void test_put_stdin(void **state)
{
    reply(200, "{\"revision\":4,\"mod_revision\":4,\"version\":2}");
    assert_int_equal(run_kv("a\0b\n", 4, "put", "k", "-", NULL), 0);
    expect_request(0, "PUT", "/v1/kv/k");
    assert_int_equal(S.reqs[0].body_len, 4);
    assert_memory_equal(S.reqs[0].body, "a\0b\n", 4);
    assert_string_equal(out, "OK revision=4 mod_revision=4 version=2\n");
}

static void test_put_conflict(void **state)
{
    reply(409, "{\"error\":{\"code\":\"compare_failed\",\"message\":\"mod_revision compare "
               "failed\",\"mod_revision\":5}}");
    assert_int_equal(KV("put", "k", "v", "--cas", "4"), 1);
    assert_string_equal(err,
                        "error: compare_failed: mod_revision compare failed (mod_revision 5)\n");
    assert_string_equal(out, "");
}

static void test_del(void **state)
{
    reply(200, "{\"deleted\":2,\"revision\":9}");
    assert_int_equal(KV("del", "p/", "--prefix"), 0);
    expect_request(0, "DELETE", "/v1/kv/p/?prefix=true");
    assert_string_equal(out, "deleted 2 (revision 9)\n");
    reply(200, "{\"deleted\":1,\"revision\":10}");
    assert_int_equal(KV("del", "k", "--cas", "7", "-o", "json"), 0);
    expect_request(1, "DELETE", "/v1/kv/k?cas=7");
    assert_string_equal(out, "{\"deleted\":1,\"revision\":10}\n");
}

static void test_ls_follows_pages(void **state)
{
    reply(200, "{\"revision\":5,\"items\":[{\"key\":\"p/a\",\"value\":\"MQ==\"},"
               "{\"key\":\"p/b\",\"value\":\"Mg==\"}],\"more\":true}");
    reply(200, "{\"revision\":6,\"items\":[{\"key\":\"p/c\",\"value\":\"\"}],\"more\":false}");
    assert_int_equal(KV("ls", "p/"), 0);
    assert_int_equal(S.nreq, 2);
    expect_request(0, "GET", "/v1/kv/p/?prefix=true");
    expect_request(1, "GET", "/v1/kv/p/?prefix=true&after=p%2Fb");
    assert_string_equal(out, "p/a\t1\np/b\t2\np/c\t\n");
}

static void test_ls_limit_keys_only(void **state)
{
    reply(200, "{\"revision\":5,\"items\":[{\"key\":\"a\"},{\"key\":\"b\"}],\"more\":true}");
    reply(200, "{\"revision\":5,\"items\":[{\"key\":\"c\"}],\"more\":true}");
    assert_int_equal(KV("ls", "--limit", "3", "--keys-only"), 0);
    assert_int_equal(S.nreq, 2);
    expect_request(0, "GET", "/v1/kv/?prefix=true&limit=3&keys_only=true");
    expect_request(1, "GET", "/v1/kv/?prefix=true&limit=1&keys_only=true&after=b");
    assert_string_equal(out, "a\nb\nc\n");
}

static void test_ls_json_merges_pages(void **state)
{
    reply(200, "{\"revision\":5,\"items\":[{\"key\":\"a\",\"value\":\"MQ==\"}],\"more\":true}");
    reply(200, "{\"revision\":6,\"items\":[{\"key\":\"b\",\"value\":\"Mg==\"}],\"more\":false}");
    assert_int_equal(KV("ls", "-o", "json"), 0);
    assert_string_equal(out, "{\"revision\":5,\"items\":[{\"key\":\"a\",\"value\":\"MQ==\"},"
                             "{\"key\":\"b\",\"value\":\"Mg==\"}],\"more\":false}\n");
}

static void test_ls_bad_pages(void **state)
{
    reply(200, "{\"revision\":5,\"items\":[],\"more\":true}");
    assert_int_equal(KV("ls"), 1);
    assert_non_null(strstr(err, "more"));
    reset(NULL);
    reply(200, "{\"revision\":5,\"items\":[{\"key\":\"a\",\"value\":\"!!\"}],\"more\":false}");
    assert_int_equal(KV("ls"), 1);
    assert_non_null(strstr(err, "base64"));
}

static void test_watch(void **state)
{
    reply(200, "{\"revision\":7,\"events\":[{\"type\":\"put\",\"key\":\"p/a\",\"value\":\"MQ==\","
               "\"mod_revision\":6},{\"type\":\"delete\",\"key\":\"p/b\",\"mod_revision\":7}]}");
    reply(200, "{\"revision\":9,\"events\":[]}"); /* a poll that timed out */
    reply(200, "{\"revision\":12,\"events\":[{\"type\":\"put\",\"key\":\"p/c\",\"value\":\"Mw==\","
               "\"mod_revision\":12},{\"type\":\"put\",\"key\":\"p/d\",\"value\":\"NA==\","
               "\"mod_revision\":12}]}");
    assert_int_equal(KV("watch", "p/", "--count", "3"), 0);
    assert_int_equal(S.nreq, 3);
    expect_request(0, "GET", "/v1/watch/p/?timeout=30s");
    expect_request(1, "GET", "/v1/watch/p/?from_revision=8&timeout=30s");
    expect_request(2, "GET", "/v1/watch/p/?from_revision=10&timeout=30s");
    assert_string_equal(out, "PUT p/a 1 (rev 6)\nDELETE p/b (rev 7)\nPUT p/c 3 (rev 12)\n");
}

static void test_watch_json_from_revision(void **state)
{
    reply(200, "{\"revision\":3,\"events\":[{\"type\":\"put\",\"key\":\"k\",\"value\":\"MQ==\","
               "\"mod_revision\":3}]}");
    assert_int_equal(KV("watch", "", "--from-revision", "2", "--count", "1", "-o", "json"), 0);
    expect_request(0, "GET", "/v1/watch/?from_revision=2&timeout=30s");
    assert_string_equal(out,
                        "{\"type\":\"put\",\"key\":\"k\",\"value\":\"MQ==\",\"mod_revision\":3}\n");
}

static void test_watch_compacted(void **state)
{
    reply(410, "{\"error\":{\"code\":\"compacted\",\"message\":\"revision 2 is compacted\","
               "\"compact_revision\":4}}");
    assert_int_equal(KV("watch", "p/", "--from-revision", "2"), 1);
    assert_string_equal(err, "error: compacted: revision 2 is compacted (compact_revision 4)\n");
}

static void test_txn(void **state)
{
    char path[] = "/tmp/test_kv_txn_XXXXXX";
    int fd = mkstemp(path);
    const char *body = "{\"compare\":[],\"success\":[{\"op\":\"get\",\"key\":\"a\"}]}";
    assert_int_equal(write(fd, body, strlen(body)), (ssize_t)strlen(body));
    close(fd);
    reply(200, "{\"succeeded\":false,\"revision\":8,\"results\":["
               "{\"op\":\"put\",\"mod_revision\":8,\"version\":2},"
               "{\"op\":\"delete\",\"deleted\":1},"
               "{\"op\":\"get\",\"items\":[{\"key\":\"a\",\"value\":\"eA==\"}],\"more\":false}]}");
    assert_int_equal(KV("txn", path), 0);
    expect_request(0, "POST", "/v1/txn");
    assert_string_equal(S.reqs[0].content_type, "application/json");
    assert_int_equal(S.reqs[0].body_len, strlen(body));
    assert_memory_equal(S.reqs[0].body, body, strlen(body));
    assert_string_equal(out, "FAILURE revision=8\nput mod_revision=8 version=2\n"
                             "delete deleted=1\nget count=1\na\tx\n");
    unlink(path);

    /* Not JSON: refused before anything is sent. */
    assert_int_equal(run_kv("{\"compare\":", 11, "txn", "-", NULL), 1);
    assert_int_equal(S.nreq, 1);
    assert_non_null(strstr(err, "standard input"));
    assert_int_equal(KV("txn", "/nonexistent/txn.json"), 1);
    assert_non_null(strstr(err, "/nonexistent/txn.json"));
}

static void test_usage(void **state)
{
    assert_int_equal(KV("--help"), 0);
    assert_non_null(strstr(out, "usage: citrus kv"));
    assert_int_equal(KV("get", "-h"), 0);
    static const char *const bad[][6] = {
        {"nope"},
        {"get"},
        {"get", "a", "b"},
        {"get", "k", "--cas", "1"},
        {"get", "k", "--consistency", "eventual"},
        {"put", "k"},
        {"put", "k", "v", "--cas", "x"},
        {"put", "k", "v", "--cas", "-1"},
        {"put", "k", "v", "--lease", "0"},
        {"del", "k", "--prefix", "--cas", "3"},
        {"ls", "--limit", "0"},
        {"ls", "-o", "yaml"},
        {"ls", "--bogus"},
        {"ls", "--limit"},
        {"watch"},
        {"watch", "p", "--count", "0"},
        {"txn"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = run_kv(NULL, 0, bad[i][0], bad[i][1], bad[i][2], bad[i][3], bad[i][4], NULL);
        if (rc != 2)
            fail_msg("case %zu (%s %s ...): exit %d, stderr: %s", i, bad[i][0],
                     bad[i][1] ? bad[i][1] : "", rc, err);
        assert_true(err[0] != '\0');
    }
    assert_int_equal(run_kv(NULL, 0, NULL), 2); /* no command at all */
    assert_int_equal(S.nreq, 0);
}

static void test_bad_endpoint(void **state)
{
    char *argv[] = {"kv", "--endpoint", "localhost:1", "get", "k", NULL};
    fflush(stderr);
    int se = dup(2);
    FILE *fe = tmpfile();
    dup2(fileno(fe), 2);
    int rc = cli_kv_main(5, argv);
    fflush(stderr);
    dup2(se, 2);
    close(se);
    slurp(fe, err, sizeof(err), NULL);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "--endpoint"));
}

static void test_unreachable(void **state)
{
    fake_http *dead = fake_http_start(on_req, &S);
    char url[64];
    snprintf(url, sizeof(url), "%s", fake_http_url(dead));
    fake_http_stop(dead);
    char *argv[] = {"kv", "get", "k", "--endpoint", url, NULL};
    fflush(stderr);
    int se = dup(2);
    FILE *fe = tmpfile();
    dup2(fileno(fe), 2);
    int rc = cli_kv_main(5, argv);
    fflush(stderr);
    dup2(se, 2);
    close(se);
    slurp(fe, err, sizeof(err), NULL);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "error: "));
    assert_non_null(strstr(err, url));
}

#define T(f) cmocka_unit_test_setup(f, reset)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_get_raw),
        T(test_get_json),
        T(test_get_not_found),
        T(test_put),
        T(test_put_stdin),
        T(test_put_conflict),
        T(test_del),
        T(test_ls_follows_pages),
        T(test_ls_limit_keys_only),
        T(test_ls_json_merges_pages),
        T(test_ls_bad_pages),
        T(test_watch),
        T(test_watch_json_from_revision),
        T(test_watch_compacted),
        T(test_txn),
        T(test_usage),
        T(test_bad_endpoint),
        T(test_unreachable),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
