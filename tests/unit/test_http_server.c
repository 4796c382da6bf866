/* tests/unit/test_http_server.c — http/server.c's two steps: a bound server
 * has its port and queues connections but answers nothing and runs no
 * handler until it serves, so what a handler reads can be put in place in
 * between (the node registers its URL and starts its router there); a bound
 * server that never serves gives its port back; a port in use is a clear
 * error; the gate, before and done hooks. Real sockets on loopback. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "citrus/errors.h"
#include "http/server.h"

/* What the handler reads: set by the test after bind, before serve. */
typedef struct composed {
    const char *name;
} composed;

static int hello(http_req *r, void *ctx)
{
    const composed *c = ctx;
    return http_reply_json(r, 200, json_pack("{s:s?}", "name", c->name));
}

static const http_route routes[] = {
    {"GET", "/hello", hello, ROUTE_BODY_NONE, "reader", NULL},
};

static int connect_to(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* Reads fd until the peer closes it (the requests say Connection: close)
 * or ms milliseconds pass with nothing to read; the count (0 on none). */
static size_t read_within(int fd, char *buf, size_t cap, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    size_t n = 0;
    while (n + 1 < cap && poll(&p, 1, ms) == 1) {
        ssize_t k = read(fd, buf + n, cap - 1 - n);
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    buf[n] = '\0';
    return n;
}

/* Connects and sends GET /hello; returns the socket. */
static int send_hello(unsigned port)
{
    int fd = connect_to(port);
    const char req[] = "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
    return fd;
}

/* The answer on fd is a 200 whose body is want; closes fd. */
static void expect_hello(int fd, const char *want)
{
    char buf[4096];
    assert_true(read_within(fd, buf, sizeof(buf), 10000) > 0);
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    assert_non_null(strstr(buf, want));
    close(fd);
}

static void a_bound_server_answers_only_once_it_serves(void **state)
{
    (void)state;
    composed c = {NULL};
    http_server_options ho = {.listen = "127.0.0.1:0", .threads = 1, .component = "test"};
    http_server *srv = NULL;
    errdetail e;
    assert_int_equal(http_server_bind(&ho, routes, 1, &c, &srv, &e), 0);
    unsigned port = http_server_port(srv);
    assert_true(port > 0);

    /* the connection is accepted by the kernel's backlog, nothing answers */
    int fd = send_hello(port);
    char buf[4096];
    assert_int_equal(read_within(fd, buf, sizeof(buf), 200), 0);

    /* composed in between: the waiting request sees it */
    c.name = "composed";
    assert_int_equal(http_server_serve(srv, &e), 0);
    expect_hello(fd, "{\"name\":\"composed\"}");
    http_server_stop(srv);
}

static void a_bound_server_that_never_serves_gives_its_port_back(void **state)
{
    (void)state;
    composed c = {"x"};
    http_server_options ho = {.listen = "127.0.0.1:0", .component = "test"};
    http_server *srv = NULL;
    errdetail e;
    assert_int_equal(http_server_bind(&ho, routes, 1, &c, &srv, &e), 0);
    char listen[32];
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", http_server_port(srv));
    http_server_stop(srv);

    /* the same port binds again, and serves */
    http_server_options again = {.listen = listen, .threads = 1, .component = "test"};
    assert_int_equal(http_server_start(&again, routes, 1, &c, &srv, &e), 0);
    expect_hello(send_hello(http_server_port(srv)), "{\"name\":\"x\"}");
    http_server_stop(srv);
}

static void a_port_in_use_is_a_clear_error(void **state)
{
    (void)state;
    composed c = {"x"};
    http_server_options ho = {.listen = "127.0.0.1:0", .component = "test"};
    http_server *first = NULL, *second = NULL;
    errdetail e;
    assert_int_equal(http_server_start(&ho, routes, 1, &c, &first, &e), 0);
    char listen[32];
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", http_server_port(first));
    http_server_options same = {.listen = listen, .component = "test"};
    assert_int_equal(http_server_bind(&same, routes, 1, &c, &second, &e), CITRUS_EIO);
    assert_null(second);
    assert_non_null(strstr(e.message, "cannot listen on 127.0.0.1:"));
    assert_non_null(strstr(e.message, strerror(EADDRINUSE)));

    http_server_options bad = {.listen = "nowhere", .component = "test"};
    assert_int_equal(http_server_bind(&bad, routes, 1, &c, &second, &e), CITRUS_EINVAL);
    assert_null(second);
    http_server_stop(first);
}

/* ---- the gate, the before hook and the done hook ---- */

typedef struct hooks {
    atomic_int handled, done, denied_done;
    atomic_int handed; /* handlers first run off the pool, then handed to it */
} hooks;

static hooks hk;

static int offloaded(http_req *r, void *ctx)
{
    if (!http_offloaded(r)) {
        atomic_fetch_add(&hk.handed, 1);
        return http_offload(r, offloaded, ctx);
    }
    atomic_fetch_add(&hk.handled, 1);
    return http_reply_json(r, 201, json_pack("{s:s}", "ran", "on the pool"));
}

static const http_route hook_routes[] = {
    {"POST", "/parked", offloaded, ROUTE_BODY_RAW, NULL, NULL},
};

static bool gate(http_req *r, const http_route *route, void *ctx)
{
    (void)route;
    (void)ctx;
    if (http_req_header(r, "X-Deny")) {
        http_reply_error(r, CITRUS_EFORBIDDEN, "denied by the gate", NULL);
        return false;
    }
    return true;
}

static void resumed(http_req *r, void *ctx)
{
    (void)ctx;
    http_run_handler(r);
}

static void *waker(void *arg)
{
    usleep(1000);
    http_resume(arg);
    return NULL;
}

/* Parks the request and wakes it from another thread, as the audit log's
 * writer does; the handler then offloads itself to the work pool. With
 * X-Mode: pool it parks with http_suspend_to_pool (the handler then runs on
 * the pool from the start), and with X-Mode: pool-now it is also woken
 * before the hook returns (a row written at once). */
static void before(http_req *r, void *ctx)
{
    (void)ctx;
    const char *mode = http_req_header(r, "X-Mode");
    if (mode && strncmp(mode, "pool", 4) == 0)
        http_suspend_to_pool(r, resumed, NULL);
    else
        http_suspend(r, resumed, NULL);
    if (mode && strcmp(mode, "pool-now") == 0) {
        http_resume(r);
        return;
    }
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, waker, r), 0);
    pthread_detach(t);
}

static void done(http_req *r, unsigned status, void *ctx)
{
    (void)r;
    (void)ctx;
    atomic_fetch_add(status == 403 ? &hk.denied_done : &hk.done, 1);
}

/* header: one more header line ("" none). */
static int post(unsigned port, const char *header, char *buf, size_t cap)
{
    int fd = connect_to(port);
    char req[256];
    int n = snprintf(req, sizeof(req),
                     "POST /parked HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s"
                     "Content-Length: 2\r\n\r\nhi",
                     header);
    assert_int_equal(write(fd, req, (size_t)n), n);
    read_within(fd, buf, cap, 10000);
    close(fd);
    return 0;
}

/* A gate refusal runs no handler; a request parked by the before hook and
 * woken from another thread runs its handler (which moves to the work
 * pool) exactly once; done sees every request with its status. Under
 * ThreadSanitizer (make tsan) this is where a resumed request's hand-off to
 * the pool must not be read back by the HTTP thread. */
static void gate_before_and_done_hooks(void **state)
{
    (void)state;
    http_server_options ho = {.listen = "127.0.0.1:0",
                              .threads = 2,
                              .component = "test",
                              .gate = gate,
                              .before = before,
                              .done = done};
    http_server *srv = NULL;
    errdetail e;
    assert_int_equal(http_server_start(&ho, hook_routes, 1, NULL, &srv, &e), 0);
    unsigned port = http_server_port(srv);
    char buf[4096];
    post(port, "X-Deny: 1\r\n", buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 403"));
    assert_int_equal(atomic_load(&hk.handled), 0);
    for (int i = 0; i < 40; i++) {
        post(port, "", buf, sizeof(buf));
        assert_non_null(strstr(buf, "HTTP/1.1 201"));
        assert_non_null(strstr(buf, "on the pool"));
    }
    assert_int_equal(atomic_load(&hk.handed), 40);
    /* parked for the pool: the handler runs there at once, woken after the
     * hook returned or while it ran */
    for (int i = 0; i < 40; i++) {
        post(port, i % 2 ? "X-Mode: pool\r\n" : "X-Mode: pool-now\r\n", buf, sizeof(buf));
        assert_non_null(strstr(buf, "HTTP/1.1 201"));
        assert_non_null(strstr(buf, "on the pool"));
    }
    assert_int_equal(atomic_load(&hk.handed), 40);
    http_server_stop(srv); /* done has run for every request once stop returns */
    assert_int_equal(atomic_load(&hk.handled), 80);
    assert_int_equal(atomic_load(&hk.done), 80);
    assert_int_equal(atomic_load(&hk.denied_done), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_bound_server_answers_only_once_it_serves),
        cmocka_unit_test(a_bound_server_that_never_serves_gives_its_port_back),
        cmocka_unit_test(a_port_in_use_is_a_clear_error),
        cmocka_unit_test(gate_before_and_done_hooks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
