/* tests/unit/test_audit_routes.c — the route tables and the audit log
 * agree: every route of the API that changes something (every method but
 * GET) has its audit action (api/audit.c), so a new mutation route cannot
 * go unaudited; only the health probes and bootstrap answer anonymous
 * callers; every role named is one the gate knows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api/app.h"
#include "api/audit.h"
#include "auth/principal.h"

static void every_mutation_is_audited(void **state)
{
    (void)state;
    for (size_t i = 0; i < api_nroutes; i++) {
        const http_route *r = &api_routes[i];
        if (strcmp(r->method, "GET") != 0 && strcmp(r->pattern, "/v1/route") != 0 &&
            !api_audit_action(r))
            fail_msg("%s %s changes something but has no audit action", r->method, r->pattern);
    }
    /* a read that hands out every credential is audited too */
    for (size_t i = 0; i < api_nroutes; i++)
        if (strcmp(api_routes[i].pattern, "/v1/snapshot") == 0)
            assert_non_null(api_audit_action(&api_routes[i]));
}

static void roles_are_known(void **state)
{
    (void)state;
    static const char *const anonymous[] = {"/health/live", "/health/ready", "/v1/auth/bootstrap"};
    const http_route *tables[] = {api_routes, router_routes};
    size_t sizes[] = {api_nroutes, router_nroutes};
    for (size_t t = 0; t < 2; t++)
        for (size_t i = 0; i < sizes[t]; i++) {
            const http_route *r = &tables[t][i];
            if (!r->role) {
                bool ok = false;
                for (size_t k = 0; k < sizeof(anonymous) / sizeof(anonymous[0]); k++)
                    ok |= strcmp(anonymous[k], r->pattern) == 0;
                if (!ok)
                    fail_msg("%s %s answers anonymous callers", r->method, r->pattern);
                continue;
            }
            unsigned bit = auth_role_bit(r->role);
            if (bit != AUTH_READER && bit != AUTH_OPERATOR && bit != AUTH_ADMIN)
                fail_msg("%s %s: unknown role '%s'", r->method, r->pattern, r->role);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_mutation_is_audited),
        cmocka_unit_test(roles_are_known),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
