/* tests/unit/test_watch.c — api/watch.c's hub: a long poll ends at its
 * deadline on the hub's clock, and each server's hub answers its own
 * waiters only. Real HTTP servers on loopback over the embedded store; the
 * reaper runs when the test calls watch_hub_reap, on a test clock. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "api/app.h"
#include "api/handlers.h"
#include "api/watch.h"
#include "citrus/errors.h"
#include "net/client.h"
#include "support_sqlite.h"
#include "sys/clock.h"

static const http_route routes[] = {
    {"GET", "/v1/watch/{prefix*}", api_watch, ROUTE_BODY_NONE, "reader", NULL},
};

/* One server with its own hub and clock, over a shared store. */
typedef struct node {
    sysclock *clk;
    app a;
    http_server *srv;
    char url[64];
} node;

typedef struct fixture {
    sqlite_dir d;
    node n[2];
} fixture;

static void node_start(node *n, store *st)
{
    n->clk = clock_test_new(1000, 1000);
    n->a = (app){.st = st, .node_id = "test", .max_watch_timeout_ms = 60000};
    n->a.watches = watch_hub_new(n->clk);
    assert_non_null(n->a.watches);
    http_server_options ho = {.listen = "127.0.0.1:0", .threads = 2, .component = "api"};
    assert_int_equal(http_server_start(&ho, routes, 1, &n->a, &n->srv, NULL), 0);
    snprintf(n->url, sizeof(n->url), "http://127.0.0.1:%u", http_server_port(n->srv));
}

static void node_stop(node *n)
{
    if (!n->srv)
        return;
    watch_hub_shutdown(n->a.watches);
    http_server_stop(n->srv);
    watch_hub_free(n->a.watches);
    clock_test_free(n->clk);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    sqlite_dir_open(&f->d, "watch", 100);
    node_start(&f->n[0], f->d.st);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    node_stop(&f->n[1]);
    node_stop(&f->n[0]);
    sqlite_dir_close(&f->d);
    free(f);
    return 0;
}

/* A long poll in flight on its own thread. */
typedef struct poll_call {
    pthread_t th;
    char url[64];
    char path[96];
    int rc;
    client_response resp;
} poll_call;

static void *poll_main(void *arg)
{
    poll_call *p = arg;
    client *c = client_new(p->url);
    p->rc = c ? client_request(c, "GET", p->path, NULL, 0, NULL, &p->resp) : CITRUS_ENOMEM;
    client_free(c);
    return NULL;
}

/* Starts GET /v1/watch/k/?timeout=... on n and returns once n's hub lists
 * it. */
static void poll_start(poll_call *p, node *n, const char *timeout)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->url, sizeof(p->url), "%s", n->url);
    snprintf(p->path, sizeof(p->path), "/v1/watch/k/?timeout=%s", timeout);
    size_t before = watch_hub_waiting(n->a.watches);
    assert_int_equal(pthread_create(&p->th, NULL, poll_main, p), 0);
    /* the request arrives on the server's threads: wait for it (no time
     * passes on the hub's clock meanwhile) */
    struct timespec tick = {0, 1000000};
    for (int i = 0; i < 5000 && watch_hub_waiting(n->a.watches) == before; i++)
        nanosleep(&tick, NULL);
    assert_int_equal(watch_hub_waiting(n->a.watches), before + 1);
}

/* Waits for the poll's answer: 200 with no events, at revision rev. */
static void poll_answered_empty(poll_call *p, int64_t rev)
{
    pthread_join(p->th, NULL);
    assert_int_equal(p->rc, 0);
    assert_int_equal(p->resp.status, 200);
    json_t *body = json_loadb(p->resp.body, p->resp.body_len, 0, NULL);
    assert_non_null(body);
    assert_int_equal(json_array_size(json_object_get(body, "events")), 0);
    assert_int_equal(json_integer_value(json_object_get(body, "revision")), rev);
    json_decref(body);
    client_response_free(&p->resp);
}

/* Nothing happens under k/: the poll answers, empty, when the hub's clock
 * reaches its deadline, not a millisecond before. */
static void a_poll_ends_at_its_deadline(void **state)
{
    fixture *f = *state;
    node *n = &f->n[0];
    int64_t rev = sqlite_dir_put(f->d.st, "other", "x");
    poll_call p;
    poll_start(&p, n, "2s");
    assert_int_equal(watch_hub_reap(n->a.watches), 0);
    clock_test_advance(n->clk, 1999);
    assert_int_equal(watch_hub_reap(n->a.watches), 0);
    assert_int_equal(watch_hub_waiting(n->a.watches), 1);
    clock_test_advance(n->clk, 1);
    assert_int_equal(watch_hub_reap(n->a.watches), 1);
    poll_answered_empty(&p, rev);
    assert_int_equal(watch_hub_waiting(n->a.watches), 0);
}

/* Two servers in one process: shutting one's hub down answers its own
 * polls and refuses new ones; the other's keep waiting for their own
 * deadline. */
static void each_server_has_its_own_hub(void **state)
{
    fixture *f = *state;
    node_start(&f->n[1], f->d.st);
    node *a = &f->n[0], *b = &f->n[1];
    int64_t rev = sqlite_dir_put(f->d.st, "other", "x");
    poll_call pa, pb;
    poll_start(&pa, a, "10s");
    poll_start(&pb, b, "1s");
    assert_int_equal(watch_hub_waiting(a->a.watches), 1);
    assert_int_equal(watch_hub_waiting(b->a.watches), 1);

    assert_int_equal(watch_hub_shutdown(a->a.watches), 1);
    poll_answered_empty(&pa, rev);
    assert_int_equal(watch_hub_waiting(b->a.watches), 1);
    client *c = client_new(a->url); /* a refuses new watches now */
    client_response resp;
    assert_int_equal(client_request(c, "GET", "/v1/watch/k/?timeout=1s", NULL, 0, NULL, &resp), 0);
    assert_int_equal(resp.status, 503);
    client_response_free(&resp);
    client_free(c);

    clock_test_advance(a->clk, 60000); /* a's clock says nothing to b */
    assert_int_equal(watch_hub_reap(b->a.watches), 0);
    clock_test_advance(b->clk, 1000);
    assert_int_equal(watch_hub_reap(b->a.watches), 1);
    poll_answered_empty(&pb, rev);
}

/* A client that goes away while its poll waits: once the poll is woken (at
 * its deadline) the hub lets it go, so it is neither kept nor leaked until
 * shutdown (libmicrohttpd closes such a connection without running the
 * handler again; the server still runs the poll's resume). */
static void a_poll_whose_client_left_is_released(void **state)
{
    fixture *f = *state;
    node *n = &f->n[0];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(http_server_port(n->srv))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    const char req[] = "GET /v1/watch/k/?timeout=2s HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
    struct timespec tick = {0, 1000000};
    for (int i = 0; i < 5000 && watch_hub_waiting(n->a.watches) == 0; i++)
        nanosleep(&tick, NULL);
    assert_int_equal(watch_hub_waiting(n->a.watches), 1);
    shutdown(fd, SHUT_RDWR);
    close(fd);
    clock_test_advance(n->clk, 2000);
    assert_int_equal(watch_hub_reap(n->a.watches), 1);
    for (int i = 0; i < 5000 && watch_hub_waiting(n->a.watches) > 0; i++)
        nanosleep(&tick, NULL);
    assert_int_equal(watch_hub_waiting(n->a.watches), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_poll_ends_at_its_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(each_server_has_its_own_hub, setup, teardown),
        cmocka_unit_test_setup_teardown(a_poll_whose_client_left_is_released, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
