/* tests/unit/test_authn.c — who a request is and what it may do
 * (auth/principal.h, auth/authn.h): roles and their levels, tenant scopes,
 * the KV rules around citrus/, the mode list, trusted headers only from
 * the configured proxies, and the route decision for each scope kind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "auth/authn.h"
#include "auth/principal.h"
#include "citrus/errors.h"

static principal mk(unsigned roles, char **scopes, size_t nscopes, auth_grant *grants,
                    size_t ngrants)
{
    principal p = {.name = (char *)"t",
                   .method = "test",
                   .roles = roles,
                   .scopes = scopes,
                   .nscopes = nscopes,
                   .grants = grants,
                   .ngrants = ngrants};
    return p;
}

static void roles_and_levels(void **state)
{
    (void)state;
    assert_int_equal(auth_role_bit("sm-admin"), AUTH_ADMIN);
    assert_int_equal(auth_role_bit("sm-operator"), AUTH_OPERATOR);
    assert_int_equal(auth_role_bit("reader"), AUTH_READER);
    assert_int_equal(auth_role_bit("tenant"), AUTH_TENANT);
    assert_int_equal(auth_role_bit("admin"), 0);
    assert_int_equal(auth_role_bit(NULL), 0);
    char buf[64];
    auth_roles_format(AUTH_ADMIN | AUTH_READER, buf, sizeof(buf));
    assert_string_equal(buf, "sm-admin,reader");
    auth_roles_format(0, buf, sizeof(buf));
    assert_string_equal(buf, "");
    /* admin > operator > reader; tenant apart */
    assert_true(auth_level_allows(AUTH_ADMIN, AUTH_READER));
    assert_true(auth_level_allows(AUTH_ADMIN, AUTH_OPERATOR));
    assert_true(auth_level_allows(AUTH_OPERATOR, AUTH_READER));
    assert_false(auth_level_allows(AUTH_OPERATOR, AUTH_ADMIN));
    assert_false(auth_level_allows(AUTH_READER, AUTH_OPERATOR));
    assert_false(auth_level_allows(AUTH_TENANT, AUTH_READER));
    assert_false(auth_level_allows(AUTH_ADMIN, AUTH_TENANT));
}

static void scopes(void **state)
{
    (void)state;
    errdetail e;
    const char *good[] = {"*", "acme:*", "acme:store-1", "acme:st*", "a:b"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(auth_scope_check(good[i], &e), 0);
    const char *bad[] = {"", "acme", "acme:", ":x", "ac*me:x", "a*:x", "a:b c", "a:b:c", "a:*x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(auth_scope_check(bad[i], &e), CITRUS_EINVAL);
    assert_true(auth_scope_match("acme:*", "acme:store-1"));
    assert_false(auth_scope_match("acme:*", "acmex:store-1"));
    assert_false(auth_scope_match("acme:*", "other:1"));
    assert_true(auth_scope_match("acme:1", "acme:1"));
    assert_false(auth_scope_match("acme:1", "acme:10"));
    assert_true(auth_scope_match("*", "anything:at-all"));

    char *acme[] = {"acme:*"};
    principal t = mk(AUTH_TENANT, acme, 1, NULL, 0);
    assert_true(principal_tenant_allowed(&t, "acme:s1"));
    assert_false(principal_tenant_allowed(&t, "globex:s1"));
    assert_false(principal_scatter_allowed(&t));
    char *all[] = {"*"};
    principal ta = mk(AUTH_TENANT, all, 1, NULL, 0);
    assert_true(principal_scatter_allowed(&ta));
    principal op = mk(AUTH_OPERATOR, NULL, 0, NULL, 0);
    assert_true(principal_tenant_allowed(&op, "globex:s1"));
    assert_true(principal_scatter_allowed(&op));
    principal rd = mk(AUTH_READER, NULL, 0, NULL, 0);
    assert_false(principal_tenant_allowed(&rd, "acme:s1"));
    assert_false(principal_scatter_allowed(&rd));
    /* scopes without the tenant role give nothing */
    principal noscope = mk(AUTH_READER, acme, 1, NULL, 0);
    assert_false(principal_tenant_allowed(&noscope, "acme:s1"));
}

static void kv_rules(void **state)
{
    (void)state;
    principal admin = mk(AUTH_ADMIN, NULL, 0, NULL, 0);
    principal op = mk(AUTH_OPERATOR, NULL, 0, NULL, 0);
    principal rd = mk(AUTH_READER, NULL, 0, NULL, 0);
    auth_grant g[] = {{(char *)"app/billing/", true}, {(char *)"app/public/", false}};
    principal tg = mk(AUTH_TENANT, NULL, 0, g, 2);

    assert_true(principal_kv_allowed(&admin, "citrus/shards/x", false, true));
    assert_true(principal_kv_allowed(&admin, "", true, true));
    /* outside citrus/: operator readwrite, reader read */
    assert_true(principal_kv_allowed(&op, "app/x", false, true));
    assert_true(principal_kv_allowed(&op, "app/", true, true));
    assert_true(principal_kv_allowed(&rd, "app/x", false, false));
    assert_false(principal_kv_allowed(&rd, "app/x", false, true));
    /* citrus/ itself: neither, not even for a read or through a wider prefix */
    assert_false(principal_kv_allowed(&op, "citrus/shards/x", false, false));
    assert_false(principal_kv_allowed(&rd, "citrus/auth/keys/", true, false));
    assert_false(principal_kv_allowed(&op, "", true, false));
    assert_false(principal_kv_allowed(&op, "cit", true, true));
    assert_false(principal_kv_allowed(&rd, "citrus/", true, false));
    /* "cit" as a key (not a prefix) is outside */
    assert_true(principal_kv_allowed(&op, "cit", false, true));
    assert_true(principal_kv_allowed(&op, "citrusx", true, true));
    /* grants: the prefix and the access */
    assert_true(principal_kv_allowed(&tg, "app/billing/a", false, true));
    assert_true(principal_kv_allowed(&tg, "app/billing/", true, true));
    assert_false(principal_kv_allowed(&tg, "app/", true, false)); /* wider than the grant */
    assert_true(principal_kv_allowed(&tg, "app/public/x", false, false));
    assert_false(principal_kv_allowed(&tg, "app/public/x", false, true));
    assert_false(principal_kv_allowed(&tg, "app/other", false, false));
    /* a reader with a write grant writes there, only there */
    principal rg = mk(AUTH_READER, NULL, 0, g, 1);
    assert_true(principal_kv_allowed(&rg, "app/billing/z", false, true));
    assert_false(principal_kv_allowed(&rg, "app/z", false, true));
}

/* Raw writes of the catalog's own keys: reserved for every role and
 * grant, sm-admin passes only with unsafe (docs/security.md, "Catalog
 * integrity"). */
static void kv_reserved(void **state)
{
    (void)state;
    principal admin = mk(AUTH_ADMIN, NULL, 0, NULL, 0);
    principal op = mk(AUTH_OPERATOR, NULL, 0, NULL, 0);
    auth_grant g[] = {{(char *)"citrus/", true}, {(char *)"", true}};
    principal granted = mk(AUTH_READER, NULL, 0, g, 2);
    errdetail e;
    /* what counts: keys under citrus/, ranges that overlap it */
    assert_true(auth_kv_reserved("citrus/shards/x", false));
    assert_true(auth_kv_reserved("citrus/", true));
    assert_true(auth_kv_reserved("cit", true));
    assert_true(auth_kv_reserved("", true));
    assert_false(auth_kv_reserved("cit", false));
    assert_false(auth_kv_reserved("citrusx", true));
    assert_false(auth_kv_reserved("citrus", false)); /* the key "citrus" itself */
    assert_false(auth_kv_reserved("app/", true));
    assert_false(auth_kv_reserved("d", true));
    /* refused for everyone, grants included; even sm-admin without unsafe */
    const principal *who[] = {&op, &granted, &admin};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(principal_kv_write_reserved(who[i], "citrus/shards/x", false, false, &e),
                         CITRUS_ERESERVED);
        assert_int_equal(principal_kv_write_reserved(who[i], "", true, false, &e),
                         CITRUS_ERESERVED);
    }
    assert_non_null(strstr(e.message, "unsafe"));
    /* unsafe is sm-admin's only */
    assert_int_equal(principal_kv_write_reserved(&op, "citrus/x", false, true, &e),
                     CITRUS_ERESERVED);
    assert_int_equal(principal_kv_write_reserved(&granted, "cit", true, true, &e),
                     CITRUS_ERESERVED);
    assert_int_equal(principal_kv_write_reserved(&admin, "citrus/x", false, true, &e), 0);
    assert_int_equal(principal_kv_write_reserved(&admin, "", true, true, &e), 0);
    /* elsewhere the rule says nothing */
    assert_int_equal(principal_kv_write_reserved(&op, "app/x", false, false, &e), 0);
}

static void modes(void **state)
{
    (void)state;
    authn a;
    errdetail e;
    memset(&a, 0, sizeof(a));
    assert_int_equal(authn_modes_parse(&a, "api_key, jwt", &e), 0);
    assert_int_equal(a.norder, 2);
    assert_int_equal(a.order[0], AUTHN_API_KEY);
    assert_int_equal(a.order[1], AUTHN_JWT);
    assert_int_equal(authn_modes_parse(&a, "none", &e), 0);
    assert_int_equal(a.modes, AUTHN_NONE);
    assert_int_equal(authn_modes_parse(&a, "none,api_key", &e), CITRUS_EINVAL);
    assert_non_null(strstr(e.message, "none"));
    assert_int_equal(authn_modes_parse(&a, "api_key,api_key", &e), CITRUS_EINVAL);
    assert_int_equal(authn_modes_parse(&a, "kerberos", &e), CITRUS_EINVAL);
    assert_non_null(strstr(e.message, "kerberos"));

    authn_cidr c;
    assert_int_equal(authn_cidr_parse("10.1.2.3/8", &c, &e), 0);
    assert_int_equal(c.net, 0x0a000000u);
    assert_int_equal(c.mask, 0xff000000u);
    assert_int_equal(authn_cidr_parse("127.0.0.1", &c, &e), 0);
    assert_int_equal(c.mask, 0xffffffffu);
    assert_int_equal(authn_cidr_parse("0.0.0.0/0", &c, &e), 0);
    assert_int_equal(c.mask, 0);
    const char *bad[] = {"10.0.0.0/33", "10.0.0/8", "x", "10.0.0.0/", "::1/128", "1.2.3.4/-1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(authn_cidr_parse(bad[i], &c, &e), CITRUS_EINVAL);
}

static void trusted_headers(void **state)
{
    (void)state;
    authn a;
    errdetail e;
    memset(&a, 0, sizeof(a));
    assert_int_equal(authn_modes_parse(&a, "trusted_headers", &e), 0);
    assert_int_equal(authn_proxies_parse(&a, "10.0.0.0/8,192.168.1.1", &e), 0);
    principal p;
    authn_request q = {.peer_ipv4 = true,
                       .peer_ip = 0x0a000005u,
                       .x_user = "alice",
                       .x_roles = "sm-operator, reader,unknown tenant"};
    assert_int_equal(authn_authenticate(&a, &q, &p, &e), 0);
    assert_string_equal(p.name, "alice");
    assert_string_equal(p.method, "trusted_headers");
    /* tenant is not taken from a header: it would have no scopes */
    assert_int_equal(p.roles, AUTH_OPERATOR | AUTH_READER);
    principal_clear(&p);
    /* from outside the proxies: ignored, the request is anonymous */
    q.peer_ip = 0x0b000005u;
    assert_int_equal(authn_authenticate(&a, &q, &p, &e), CITRUS_ENOTFOUND);
    q.peer_ipv4 = false;
    assert_int_equal(authn_authenticate(&a, &q, &p, &e), CITRUS_ENOTFOUND);
    /* a control character in X-User is refused */
    q.peer_ipv4 = true;
    q.peer_ip = 0xc0a80101u;
    q.x_user = "al\nice";
    assert_int_equal(authn_authenticate(&a, &q, &p, &e), CITRUS_EUNAUTHENTICATED);
    /* a bearer token nobody takes is refused, not ignored */
    q.x_user = NULL;
    q.authorization = "Bearer abc";
    assert_int_equal(authn_authenticate(&a, &q, &p, &e), CITRUS_EUNAUTHENTICATED);
    q.authorization = "Basic YTpi";
    assert_int_equal(authn_authenticate(&a, &q, &p, &e), CITRUS_EUNAUTHENTICATED);
    /* mode none: everyone is sm-admin */
    assert_int_equal(authn_modes_parse(&a, "none", &e), 0);
    authn_request none = {0};
    assert_int_equal(authn_authenticate(&a, &none, &p, &e), 0);
    assert_true(p.roles & AUTH_ADMIN);
    principal_clear(&p);
}

static void route_decisions(void **state)
{
    (void)state;
    authn a;
    memset(&a, 0, sizeof(a));
    errdetail e;
    char *acme[] = {"acme:*"};
    principal t = mk(AUTH_TENANT, acme, 1, NULL, 0);
    principal rd = mk(AUTH_READER, NULL, 0, NULL, 0);
    principal op = mk(AUTH_OPERATOR, NULL, 0, NULL, 0);
    principal anon = mk(0, NULL, 0, NULL, 0);
    /* anyone */
    assert_int_equal(authn_authorize(&a, &anon, NULL, NULL, NULL, false, false, &e), 0);
    /* by level */
    assert_int_equal(authn_authorize(&a, &rd, "reader", NULL, NULL, false, false, &e), 0);
    assert_int_equal(authn_authorize(&a, &rd, "sm-operator", NULL, NULL, false, true, &e),
                     CITRUS_EFORBIDDEN);
    assert_non_null(strstr(e.message, "sm-operator"));
    assert_int_equal(authn_authorize(&a, &op, "sm-admin", NULL, NULL, false, true, &e),
                     CITRUS_EFORBIDDEN);
    /* tenant scope on a path key */
    assert_int_equal(authn_authorize(&a, &t, "reader", "tenant", "acme:1", false, false, &e), 0);
    assert_int_equal(authn_authorize(&a, &t, "reader", "tenant", "globex:1", false, false, &e),
                     CITRUS_EFORBIDDEN);
    assert_int_equal(authn_authorize(&a, &t, "reader", NULL, "acme:1", false, false, &e),
                     CITRUS_EFORBIDDEN);
    /* tenant-body: tenants pass the gate, the handler checks the body */
    assert_int_equal(authn_authorize(&a, &t, "sm-operator", "tenant-body", NULL, false, true, &e),
                     0);
    assert_int_equal(authn_authorize(&a, &rd, "sm-operator", "tenant-body", NULL, false, true, &e),
                     CITRUS_EFORBIDDEN);
    /* kv: the KV rules instead of the level */
    assert_int_equal(authn_authorize(&a, &rd, "sm-operator", "kv", "app/x", false, true, &e),
                     CITRUS_EFORBIDDEN);
    assert_int_equal(authn_authorize(&a, &op, "sm-operator", "kv", "app/x", false, true, &e), 0);
    assert_int_equal(authn_authorize(&a, &op, "reader", "kv", "citrus/shards/", true, false, &e),
                     CITRUS_EFORBIDDEN);
    /* kv-body: only principals with grants get past a level they lack */
    assert_int_equal(authn_authorize(&a, &t, "reader", "kv-body", NULL, false, true, &e),
                     CITRUS_EFORBIDDEN);
    auth_grant g[] = {{(char *)"app/", true}};
    principal tg = mk(AUTH_TENANT, NULL, 0, g, 1);
    assert_int_equal(authn_authorize(&a, &tg, "reader", "kv-body", NULL, false, true, &e), 0);
    /* metrics: reader, or anyone with metrics_anonymous */
    assert_int_equal(authn_authorize(&a, &anon, "reader", "metrics", NULL, false, false, &e),
                     CITRUS_EFORBIDDEN);
    a.metrics_anonymous = true;
    assert_int_equal(authn_authorize(&a, &anon, "reader", "metrics", NULL, false, false, &e), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(roles_and_levels),
        cmocka_unit_test(scopes),
        cmocka_unit_test(kv_rules),
        cmocka_unit_test(kv_reserved),
        cmocka_unit_test(modes),
        cmocka_unit_test(trusted_headers),
        cmocka_unit_test(route_decisions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
