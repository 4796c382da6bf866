/* api/gate.c — the gate every request of the API and the router passes
 * (see api_gate in app.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "citrus/errors.h"
#include "core/dsn.h"
#include "obs/log.h"

static const principal none_principal = {
    .name = (char *)"anonymous",
    .method = "none",
    .roles = AUTH_ADMIN | AUTH_OPERATOR | AUTH_READER,
};

const principal *api_principal(http_req *r)
{
    const principal *p = http_req_principal(r);
    return p ? p : &none_principal;
}

static void free_principal(void *p)
{
    principal_free(p);
}

int api_forbid(http_req *r, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    http_reply_error(r, CITRUS_EFORBIDDEN, msg, NULL);
    return CITRUS_EFORBIDDEN;
}

/* The key or tenant a route's path names. */
static const char *route_target(http_req *r)
{
    static const char *const names[] = {"key", "prefix", "shardKey"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *v = http_req_param(r, names[i]);
        if (v)
            return v;
    }
    return NULL;
}

/* Whether a KV route reads or deletes a whole prefix: a watch always; a
 * GET or DELETE with ?prefix (anything but false/0 counts: the handler
 * refuses a bad value anyway, so the gate judges the wider reading). */
static bool route_prefix(http_req *r, const http_route *route)
{
    if (http_req_param(r, "prefix"))
        return true;
    const char *v = http_req_query(r, "prefix");
    return v && strcmp(v, "false") != 0 && strcmp(v, "0") != 0;
}

static bool unauthenticated(http_req *r, const char *why, bool bad_token)
{
    http_add_header(r, "WWW-Authenticate",
                    bad_token ? "Bearer realm=\"citrus\", error=\"invalid_token\""
                              : "Bearer realm=\"citrus\"");
    http_reply_error(r, CITRUS_EUNAUTHENTICATED, why, NULL);
    return false;
}

bool api_gate(http_req *r, const http_route *route, void *ctx)
{
    app *a = ctx;
    if (!a->auth)
        return true;
    authn_request q = {
        .authorization = http_req_header(r, "Authorization"),
        .x_user = http_req_header(r, "X-User"),
        .x_roles = http_req_header(r, "X-Roles"),
    };
    q.peer_ipv4 = http_req_peer_ipv4(r, &q.peer_ip);
    principal *p = calloc(1, sizeof(*p));
    if (!p) {
        http_reply_error(r, CITRUS_ENOMEM, "out of memory", NULL);
        return false;
    }
    errdetail e;
    int rc = authn_authenticate(a->auth, &q, p, &e);
    if (rc == CITRUS_ENOTFOUND || (rc == CITRUS_EUNAUTHENTICATED && !route->role)) {
        /* anonymous: fine where the route needs no role */
        principal_clear(p);
        p->method = "anonymous";
        p->name = strdup("anonymous");
        rc = p->name ? 0 : CITRUS_ENOMEM;
        if (rc == 0 && route->role &&
            authn_authorize(a->auth, p, route->role, route->scope, NULL, false, false, &e) < 0) {
            principal_free(p);
            return unauthenticated(r, "this route needs credentials: Authorization: Bearer "
                                      "<API key or token>",
                                   false);
        }
    }
    if (rc == CITRUS_EUNAUTHENTICATED) {
        principal_free(p);
        return unauthenticated(r, e.message, true);
    }
    if (rc < 0) {
        principal_free(p);
        http_reply_error(r, rc == CITRUS_EUNAVAILABLE ? rc : CITRUS_EINTERNAL,
                         rc == CITRUS_ENOMEM ? "out of memory" : e.message, NULL);
        return false;
    }
    http_req_set_principal(r, p, free_principal);
    bool write = strcmp(http_req_method(r), "GET") != 0;
    if (authn_authorize(a->auth, p, route->role, route->scope, route_target(r),
                        route_prefix(r, route), write, &e) < 0) {
        http_reply_error(r, CITRUS_EFORBIDDEN, e.message, NULL);
        return false;
    }
    return true;
}

bool api_may_reveal(http_req *r, const char *tenant_key)
{
    const principal *p = api_principal(r);
    if (p->roles & AUTH_ADMIN)
        return true;
    if (!(p->roles & AUTH_TENANT) || !tenant_key)
        return false;
    for (size_t i = 0; i < p->nscopes; i++)
        if (auth_scope_match(p->scopes[i], tenant_key))
            return true;
    return false;
}

char *api_dsn_view(http_req *r, const char *dsn, const char *tenant_key)
{
    if (!dsn)
        return NULL;
    return api_may_reveal(r, tenant_key) ? strdup(dsn) : dsn_redact(dsn);
}

int api_check_tenant(http_req *r, const char *tenant_key)
{
    const principal *p = api_principal(r);
    if (principal_tenant_allowed(p, tenant_key))
        return 0;
    return api_forbid(r, "%s may not act on tenant '%.200s'", p->name, tenant_key);
}
