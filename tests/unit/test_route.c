/* Unit tests for http/route.c: pattern matching, 404 vs 405, Allow lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "citrus/errors.h"
#include "http/route.h"

static int h(http_req *r, void *app)
{
    return 0;
}

static const http_route routes[] = {
    {"GET", "/v1/kv/{key*}", h, ROUTE_BODY_NONE, "reader", NULL},
    {"PUT", "/v1/kv/{key*}", h, ROUTE_BODY_RAW, "operator", NULL},
    {"POST", "/v1/leases", h, ROUTE_BODY_JSON, "operator", NULL},
    {"POST", "/v1/leases/{id}/keepalive", h, ROUTE_BODY_NONE, "operator", NULL},
    {"DELETE", "/v1/leases/{id}", h, ROUTE_BODY_NONE, "operator", NULL},
};
#define N (sizeof(routes) / sizeof(routes[0]))

static void rest_capture(void **state)
{
    const http_route *f = NULL;
    route_match m = {0};
    char allow[64];
    assert_int_equal(route_find(routes, N, "GET", "/v1/kv/a/b/c", &f, &m, allow, sizeof(allow)), 0);
    assert_ptr_equal(f, &routes[0]);
    assert_string_equal(route_match_param(&m, "key"), "a/b/c");
    route_match_clear(&m);
    assert_int_equal(route_find(routes, N, "GET", "/v1/kv/", &f, &m, allow, sizeof(allow)), 0);
    assert_string_equal(route_match_param(&m, "key"), "");
    route_match_clear(&m);
}

static void segment_capture(void **state)
{
    const http_route *f = NULL;
    route_match m = {0};
    char allow[64];
    assert_int_equal(
        route_find(routes, N, "POST", "/v1/leases/42/keepalive", &f, &m, allow, sizeof(allow)), 0);
    assert_ptr_equal(f, &routes[3]);
    assert_string_equal(route_match_param(&m, "id"), "42");
    assert_null(route_match_param(&m, "nope"));
    route_match_clear(&m);
}

static void not_found(void **state)
{
    const http_route *f = NULL;
    route_match m = {0};
    char allow[64];
    assert_int_equal(route_find(routes, N, "GET", "/v1/nothing", &f, &m, allow, sizeof(allow)),
                     CITRUS_ENOROUTE);
    assert_int_equal(route_find(routes, N, "GET", "/v1/kv", &f, &m, allow, sizeof(allow)),
                     CITRUS_ENOROUTE);
    assert_int_equal(
        route_find(routes, N, "POST", "/v1/leases//keepalive", &f, &m, allow, sizeof(allow)),
        CITRUS_ENOROUTE);
    assert_int_equal(m.nparams, 0);
}

static void method_not_allowed(void **state)
{
    const http_route *f = NULL;
    route_match m = {0};
    char allow[64];
    assert_int_equal(route_find(routes, N, "POST", "/v1/kv/a", &f, &m, allow, sizeof(allow)),
                     CITRUS_EMETHOD);
    assert_string_equal(allow, "GET, PUT");
    assert_int_equal(route_find(routes, N, "GET", "/v1/leases/7", &f, &m, allow, sizeof(allow)),
                     CITRUS_EMETHOD);
    assert_string_equal(allow, "DELETE");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rest_capture),
        cmocka_unit_test(segment_capture),
        cmocka_unit_test(not_found),
        cmocka_unit_test(method_not_allowed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
