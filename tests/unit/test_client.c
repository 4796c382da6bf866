/* test_client.c — the CLI's HTTP client against a scripted loopback server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "citrus/errors.h"
#include "net/client.h"
#include "support_fake_http.h"

/* What the fake server saw last, and what it answers. */
typedef struct script {
    pthread_mutex_t mu;
    char method[16];
    char target[512];
    char content_type[128];
    char *body;
    size_t body_len;
    unsigned conn_ids[8];
    size_t nreq;
    fake_http_reply reply;
} script;

static void on_req(void *ctx, const fake_http_req *req, fake_http_reply *out)
{
    script *s = ctx;
    pthread_mutex_lock(&s->mu);
    snprintf(s->method, sizeof(s->method), "%s", req->method);
    snprintf(s->target, sizeof(s->target), "%s", req->target);
    snprintf(s->content_type, sizeof(s->content_type), "%s",
             req->content_type ? req->content_type : "");
    free(s->body);
    s->body = malloc(req->body_len + 1);
    memcpy(s->body, req->body, req->body_len + 1);
    s->body_len = req->body_len;
    if (s->nreq < 8)
        s->conn_ids[s->nreq] = req->conn_id;
    s->nreq++;
    *out = s->reply;
    pthread_mutex_unlock(&s->mu);
}

typedef struct fixture {
    script s;
    fake_http *srv;
    client *c;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    pthread_mutex_init(&f->s.mu, NULL);
    f->srv = fake_http_start(on_req, &f->s);
    assert_non_null(f->srv);
    f->c = client_new(fake_http_url(f->srv));
    assert_non_null(f->c);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    client_free(f->c);
    fake_http_stop(f->srv);
    free(f->s.body);
    pthread_mutex_destroy(&f->s.mu);
    free(f);
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_escape(void **state)
{
    char *p = client_escape_path("a b/c~d_e.f-g/caf\xc3\xa9?x#y%z+&");
    assert_string_equal(p, "a%20b/c~d_e.f-g/caf%C3%A9%3Fx%23y%25z%2B%26");
    free(p);
    p = client_escape_path("");
    assert_string_equal(p, "");
    free(p);
    p = client_escape_query("a/b&c=d e");
    assert_string_equal(p, "a%2Fb%26c%3Dd%20e");
    free(p);
}

static void test_endpoints(void **state)
{
    assert_null(client_new("ftp://127.0.0.1"));
    assert_null(client_new("127.0.0.1:8081"));
    client *c = client_new("http://127.0.0.1:9/base//");
    assert_non_null(c);
    assert_string_equal(client_endpoint(c), "http://127.0.0.1:9/base");
    client_free(c);

    unsetenv("CITRUS_ENDPOINT");
    assert_string_equal(client_default_endpoint(), CLIENT_DEFAULT_ENDPOINT);
    setenv("CITRUS_ENDPOINT", "", 1);
    assert_string_equal(client_default_endpoint(), CLIENT_DEFAULT_ENDPOINT);
    setenv("CITRUS_ENDPOINT", "http://10.0.0.1:1", 1);
    assert_string_equal(client_default_endpoint(), "http://10.0.0.1:1");
    unsetenv("CITRUS_ENDPOINT");
}

static void test_get_and_reuse(void **state)
{
    fixture *f = *state;
    f->s.reply =
        (fake_http_reply){.status = 200, .body = "hello", .header = "X-Citrus-Revision: 7"};
    client_response r;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(client_request(f->c, "GET", "/v1/kv/a%20b?x=1", NULL, 0, NULL, &r), 0);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.body_len, 5);
        assert_string_equal(r.body, "hello");
        assert_string_equal(client_response_header(&r, "x-citrus-revision"), "7");
        assert_null(client_response_header(&r, "X-Nope"));
        /* Every header of the answer, each name with its own value. */
        assert_true(r.nheaders >= 3);
        assert_string_equal(client_response_header(&r, "Content-Length"), "5");
        client_response_free(&r);
    }
    assert_string_equal(f->s.method, "GET");
    assert_string_equal(f->s.target, "/v1/kv/a%20b?x=1");
    /* One connection for all three requests. */
    assert_int_equal(f->s.nreq, 3);
    assert_int_equal(f->s.conn_ids[0], f->s.conn_ids[1]);
    assert_int_equal(f->s.conn_ids[1], f->s.conn_ids[2]);
}

static void test_put_binary_body(void **state)
{
    fixture *f = *state;
    f->s.reply = (fake_http_reply){.status = 200, .body = "{}"};
    size_t n = 200 * 1024;
    unsigned char *body = malloc(n);
    for (size_t i = 0; i < n; i++)
        body[i] = (unsigned char)(i * 7);
    const char *hdrs[] = {"Content-Type: application/octet-stream", NULL};
    client_response r;
    int64_t t0 = now_ms();
    assert_int_equal(client_request(f->c, "PUT", "/v1/kv/k", body, n, hdrs, &r), 0);
    /* No "Expect: 100-continue" pause on a big body. */
    assert_true(now_ms() - t0 < 900);
    assert_int_equal(r.status, 200);
    assert_string_equal(f->s.method, "PUT");
    assert_string_equal(f->s.content_type, "application/octet-stream");
    assert_int_equal(f->s.body_len, n);
    assert_memory_equal(f->s.body, body, n);
    client_response_free(&r);
    free(body);
}

static void test_post_empty_and_delete(void **state)
{
    fixture *f = *state;
    f->s.reply = (fake_http_reply){.status = 204};
    client_response r;
    assert_int_equal(client_request(f->c, "POST", "/v1/leases/5/keepalive", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.body_len, 0);
    assert_non_null(r.body);
    assert_string_equal(r.body, "");
    assert_string_equal(f->s.method, "POST");
    assert_int_equal(f->s.body_len, 0);
    client_response_free(&r);
    assert_int_equal(client_request(f->c, "DELETE", "/v1/kv/x?prefix=true", NULL, 0, NULL, &r), 0);
    assert_string_equal(f->s.method, "DELETE");
    assert_string_equal(f->s.target, "/v1/kv/x?prefix=true");
    client_response_free(&r);
    assert_int_equal(client_request(f->c, "GET", "no-slash", NULL, 0, NULL, &r), CITRUS_EINVAL);
}

static void test_error_text(void **state)
{
    fixture *f = *state;
    client_response r;
    char msg[256];
    f->s.reply = (fake_http_reply){
        .status = 409,
        .body = "{\"error\":{\"code\":\"compare_failed\",\"message\":\"mod_revision compare "
                "failed\",\"mod_revision\":5}}"};
    assert_int_equal(client_request(f->c, "PUT", "/v1/kv/k?cas=1", "v", 1, NULL, &r), 0);
    assert_int_equal(r.status, 409);
    client_response_error(&r, msg, sizeof(msg));
    assert_string_equal(msg, "compare_failed: mod_revision compare failed (mod_revision 5)");
    client_response_free(&r);

    f->s.reply = (fake_http_reply){.status = 502, .body = "bad gateway\n"};
    assert_int_equal(client_request(f->c, "GET", "/", NULL, 0, NULL, &r), 0);
    client_response_error(&r, msg, sizeof(msg));
    assert_string_equal(msg, "http_502: bad gateway");
    errdetail why;
    assert_null(client_response_json(&r, &why));
    assert_int_equal(why.code, CITRUS_EBADJSON);
    assert_non_null(strstr(why.message, "not JSON"));
    client_response_free(&r);

    f->s.reply = (fake_http_reply){.status = 200, .body = "[1]"};
    assert_int_equal(client_request(f->c, "GET", "/", NULL, 0, NULL, &r), 0);
    assert_null(client_response_json(&r, &why));
    assert_int_equal(why.code, CITRUS_EBADJSON);
    assert_string_equal(why.message, "response is not a JSON object");
    client_response_free(&r);
}

static void test_unreachable(void **state)
{
    fake_http *srv = fake_http_start(on_req, NULL);
    client *c = client_new(fake_http_url(srv));
    fake_http_stop(srv); /* nothing listens there now */
    client_response r;
    assert_int_equal(client_request(c, "GET", "/v1/kv/a", NULL, 0, NULL, &r), CITRUS_EUNAVAILABLE);
    assert_non_null(strstr(client_error(c), "/v1/kv/a"));
    assert_null(r.body);
    client_free(c);
}

static void test_timeout(void **state)
{
    fixture *f = *state;
    f->s.reply = (fake_http_reply){.status = 200, .body = "late", .delay_ms = 1500};
    client_set_timeout_ms(f->c, 200);
    client_response r;
    int64_t t0 = now_ms();
    assert_int_equal(client_request(f->c, "GET", "/slow", NULL, 0, NULL, &r), CITRUS_ETIMEOUT);
    assert_true(now_ms() - t0 < 1000);
    assert_non_null(strstr(client_error(f->c), "timed out"));
}

static atomic_bool stop_flag;

static void test_abort_flag(void **state)
{
    fixture *f = *state;
    f->s.reply = (fake_http_reply){.status = 200, .body = "late", .delay_ms = 3000};
    atomic_store(&stop_flag, true);
    client_set_abort_flag(f->c, &stop_flag);
    client_response r;
    int64_t t0 = now_ms();
    assert_int_equal(client_request(f->c, "GET", "/slow", NULL, 0, NULL, &r), CITRUS_ECLOSED);
    assert_true(now_ms() - t0 < 2500);
    client_set_abort_flag(f->c, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_endpoints),
        cmocka_unit_test_setup_teardown(test_get_and_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_binary_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_empty_and_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_text, setup, teardown),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_flag, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
