/* api/gate.c — the gate every request of the API and the router passes
 * (see api_gate in app.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/audit.h"
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
    const api_reqctx *c = http_req_principal(r);
    return c ? &c->p : &none_principal;
}

static void free_ctx(void *p)
{
    api_reqctx *c = p;
    principal_clear(&c->p);
    free(c);
}

int api_forbid(http_req *r, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    api_audit_now(r, "auth.forbidden", NULL, 403);
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
static bool route_prefix(http_req *r)
{
    if (http_req_param(r, "prefix"))
        return true;
    const char *v = http_req_query(r, "prefix");
    return v && strcmp(v, "false") != 0 && strcmp(v, "0") != 0;
}

int api_kv_write_check(http_req *r, const char *key, bool prefix)
{
    if (!auth_kv_reserved(key, prefix))
        return 0;
    bool unsafe;
    if (http_req_query_bool(r, "unsafe", false, &unsafe) < 0)
        return CITRUS_EINVAL;
    errdetail e;
    int rc = principal_kv_write_reserved(api_principal(r), key, prefix, unsafe, &e);
    if (rc < 0) {
        api_audit_now(r, "kv.reserved", key, 403);
        http_reply_error(r, rc, e.message, NULL);
    }
    return rc;
}

/* PUT and DELETE /v1/kv/...: a write of the catalog's own keys is refused
 * here, whatever the caller's role or grants (api_kv_write_check). */
static bool kv_write_ok(http_req *r, const http_route *route)
{
    if (!route->scope || strcmp(route->scope, "kv") != 0 || strcmp(http_req_method(r), "GET") == 0)
        return true;
    const char *t = route_target(r);
    return api_kv_write_check(r, t ? t : "", route_prefix(r)) == 0;
}

static bool unauthenticated(http_req *r, const char *why, bool bad_token)
{
    api_audit_now(r, "auth.unauthenticated", NULL, 401);
    http_add_header(r, "WWW-Authenticate",
                    bad_token ? "Bearer realm=\"citrus\", error=\"invalid_token\""
                              : "Bearer realm=\"citrus\"");
    http_reply_error(r, CITRUS_EUNAUTHENTICATED, why, NULL);
    return false;
}

/* The principal of a request that brought no (usable) credentials. */
static int anonymous(principal *p)
{
    principal_clear(p);
    p->method = "anonymous";
    p->name = strdup("anonymous");
    return p->name ? 0 : CITRUS_ENOMEM;
}

bool api_gate(http_req *r, const http_route *route, void *ctx)
{
    app *a = ctx;
    if (!a->auth)
        return kv_write_ok(r, route);
    authn_request q = {
        .authorization = http_req_header(r, "Authorization"),
        .x_user = http_req_header(r, "X-User"),
        .x_roles = http_req_header(r, "X-Roles"),
    };
    q.peer_ipv4 = http_req_peer_ipv4(r, &q.peer_ip);
    /* only a certificate the handshake verified against the client CA */
    q.ntls_subjects = http_req_tls_subjects(r, q.tls_subjects,
                                            sizeof(q.tls_subjects) / sizeof(q.tls_subjects[0]));
    api_reqctx *c = calloc(1, sizeof(*c));
    if (!c) {
        http_reply_error(r, CITRUS_ENOMEM, "out of memory", NULL);
        return false;
    }
    c->a = a;
    http_req_set_principal(r, c, free_ctx);
    principal *p = &c->p;
    errdetail e;
    int rc = authn_authenticate(a->auth, &q, p, &e);
    bool bad_token = rc == CITRUS_EUNAUTHENTICATED;
    if (rc == CITRUS_ENOTFOUND || (bad_token && !route->role))
        rc = anonymous(p); /* fine where the route needs no role */
    if (rc == CITRUS_EUNAUTHENTICATED) {
        anonymous(p);
        return unauthenticated(r, e.message, true);
    }
    if (rc < 0) {
        anonymous(p);
        http_reply_error(r, rc == CITRUS_EUNAVAILABLE ? rc : CITRUS_EINTERNAL,
                         rc == CITRUS_ENOMEM ? "out of memory" : e.message, NULL);
        return false;
    }
    /* reserved comes before the role: refused as such for every role */
    if (strcmp(p->method, "anonymous") != 0 && !kv_write_ok(r, route))
        return false;
    bool write = strcmp(http_req_method(r), "GET") != 0;
    if (authn_authorize(a->auth, p, route->role, route->scope, route_target(r), route_prefix(r),
                        write, &e) < 0) {
        if (strcmp(p->method, "anonymous") == 0)
            return unauthenticated(r,
                                   "this route needs credentials: Authorization: Bearer <API key "
                                   "or token>",
                                   false);
        api_audit_now(r, "auth.forbidden", NULL, 403);
        http_reply_error(r, CITRUS_EFORBIDDEN, e.message, NULL);
        return false;
    }
    return true;
}

/* Whether the request may see a DSN's credentials (api_dsn_view). */
static bool may_reveal(http_req *r, const char *tenant_key)
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
    if (!may_reveal(r, tenant_key))
        return dsn_redact(dsn);
    api_note_reveal(r, tenant_key);
    return strdup(dsn);
}

int api_reveal_query(http_req *r, bool *reveal)
{
    if (http_req_query_bool(r, "reveal", false, reveal) < 0)
        return CITRUS_EINVAL;
    if (*reveal && !(api_principal(r)->roles & AUTH_ADMIN))
        return api_forbid(r, "?reveal=true (credentials in DSNs) needs sm-admin");
    return 0;
}

void api_note_reveal(http_req *r, const char *target)
{
    api_reqctx *c = http_req_principal(r);
    if (c && !c->revealed) { /* one row per request, however many DSNs it shows */
        c->revealed = true;
        api_audit_now(r, "credential.reveal", target, 200);
    }
}

int api_check_tenant(http_req *r, const char *tenant_key)
{
    const principal *p = api_principal(r);
    if (principal_tenant_allowed(p, tenant_key))
        return 0;
    return api_forbid(r, "%s may not act on tenant '%.200s'", p->name, tenant_key);
}
