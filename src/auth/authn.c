/* auth/authn.c — authentication modes and the route decision (see
 * authn.h). */
#include "auth/authn.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "citrus/errors.h"

static const struct {
    unsigned bit;
    const char *name;
} mode_names[] = {
    {AUTHN_NONE, "none"}, {AUTHN_API_KEY, "api_key"},
    {AUTHN_JWT, "jwt"},   {AUTHN_HEADERS, "trusted_headers"},
    {AUTHN_MTLS, "mtls"},
};
#define NMODES (sizeof(mode_names) / sizeof(mode_names[0]))

/* Splits a comma-separated list, trimming blanks; calls fn for each item. */
static int each_item(const char *list, int (*fn)(void *ctx, const char *item, errdetail *e),
                     void *ctx, errdetail *e)
{
    char item[128];
    for (const char *p = list; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        while (n && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n >= sizeof(item))
            return errdetail_set(e, CITRUS_EINVAL, "'%.32s...' is too long", p);
        memcpy(item, p, n);
        item[n] = '\0';
        if (n) {
            int rc = fn(ctx, item, e);
            if (rc < 0)
                return rc;
        }
        p = comma ? comma + 1 : NULL;
    }
    return 0;
}

static int add_mode(void *ctx, const char *item, errdetail *e)
{
    authn *a = ctx;
    for (size_t i = 0; i < NMODES; i++) {
        if (strcmp(mode_names[i].name, item) != 0)
            continue;
        if (a->modes & mode_names[i].bit)
            return errdetail_set(e, CITRUS_EINVAL, "mode '%s' is listed twice", item);
        a->modes |= mode_names[i].bit;
        a->order[a->norder++] = mode_names[i].bit;
        return 0;
    }
    return errdetail_set(e, CITRUS_EINVAL,
                         "unknown mode '%s' (api_key, jwt, trusted_headers, mtls, none)", item);
}

int authn_modes_parse(authn *a, const char *list, errdetail *e)
{
    a->modes = 0;
    a->norder = 0;
    int rc = each_item(list, add_mode, a, e);
    if (rc < 0)
        return rc;
    if ((a->modes & AUTHN_NONE) && a->modes != AUTHN_NONE)
        return errdetail_set(e, CITRUS_EINVAL,
                             "mode none allows everything: it cannot be "
                             "combined with another mode");
    return 0;
}

int authn_cidr_parse(const char *s, authn_cidr *out, errdetail *e)
{
    char ip[32];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    long bits = 32;
    if (slash) {
        char *end;
        bits = strtol(slash + 1, &end, 10);
        if (!slash[1] || *end || bits < 0 || bits > 32)
            n = sizeof(ip); /* refused below */
    }
    struct in_addr in;
    if (n >= sizeof(ip))
        return errdetail_set(e, CITRUS_EINVAL, "'%.64s' is not an IPv4 CIDR (as 10.0.0.0/8)", s);
    memcpy(ip, s, n);
    ip[n] = '\0';
    if (inet_pton(AF_INET, ip, &in) != 1)
        return errdetail_set(e, CITRUS_EINVAL, "'%.64s' is not an IPv4 CIDR (as 10.0.0.0/8)", s);
    out->mask = bits == 0 ? 0 : 0xffffffffu << (32 - bits);
    out->net = ntohl(in.s_addr) & out->mask;
    return 0;
}

static int add_proxy(void *ctx, const char *item, errdetail *e)
{
    authn *a = ctx;
    if (a->nproxies == AUTHN_MAX_PROXIES)
        return errdetail_set(e, CITRUS_EINVAL, "at most %d proxies", AUTHN_MAX_PROXIES);
    int rc = authn_cidr_parse(item, &a->proxies[a->nproxies], e);
    if (rc == 0)
        a->nproxies++;
    return rc;
}

int authn_proxies_parse(authn *a, const char *list, errdetail *e)
{
    a->nproxies = 0;
    return each_item(list, add_proxy, a, e);
}

static bool from_proxy(const authn *a, const authn_request *req)
{
    if (!req->peer_ipv4)
        return false;
    for (size_t i = 0; i < a->nproxies; i++)
        if ((req->peer_ip & a->proxies[i].mask) == a->proxies[i].net)
            return true;
    return false;
}

static int set_name(principal *p, const char *method, const char *name, unsigned roles,
                    errdetail *e)
{
    memset(p, 0, sizeof(*p));
    p->method = method;
    p->roles = roles;
    size_t n = strnlen(name, AUTH_MAX_NAME);
    p->name = malloc(n + 1);
    if (!p->name)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    memcpy(p->name, name, n);
    p->name[n] = '\0';
    return 0;
}

/* X-Roles: role names separated by commas or blanks; unknown ones are
 * ignored. */
static unsigned header_roles(const char *v)
{
    unsigned roles = 0;
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", v ? v : "");
    for (char *save = NULL, *t = strtok_r(buf, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save))
        roles |= auth_role_bit(t);
    return roles & ~(unsigned)AUTH_TENANT; /* a tenant needs scopes a header does not carry */
}

/* "Bearer <token>": the token, or NULL when the header is not a bearer. */
static const char *bearer(const char *h, size_t *len)
{
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    *len = strlen(h);
    while (*len && h[*len - 1] == ' ')
        (*len)--;
    return *len ? h : NULL;
}

int authn_authenticate(const authn *a, const authn_request *req, principal *p, errdetail *e)
{
    memset(p, 0, sizeof(*p));
    if (a->modes & AUTHN_NONE)
        return set_name(p, "none", "anonymous", AUTH_ADMIN | AUTH_OPERATOR | AUTH_READER, e);
    size_t tlen = 0;
    const char *token = bearer(req->authorization, &tlen);
    if (req->authorization && !token)
        return errdetail_set(e, CITRUS_EUNAUTHENTICATED,
                             "the Authorization header must be \"Bearer <token>\"");
    for (size_t i = 0; i < a->norder; i++) {
        switch (a->order[i]) {
        case AUTHN_API_KEY:
            if (token && apikey_shaped(token, tlen) && a->keys)
                return keyring_verify(a->keys, token, tlen, p, e);
            break;
        case AUTHN_JWT:
            if (token && !apikey_shaped(token, tlen) && a->jwt)
                return a->jwt(a->jwt_ctx, token, tlen, p, e);
            break;
        case AUTHN_HEADERS:
            if (req->x_user && *req->x_user && from_proxy(a, req)) {
                for (const char *c = req->x_user; *c; c++)
                    if ((unsigned char)*c < 0x20 || *c == 0x7f)
                        return errdetail_set(e, CITRUS_EUNAUTHENTICATED,
                                             "X-User has control characters");
                return set_name(p, "trusted_headers", req->x_user, header_roles(req->x_roles), e);
            }
            break;
        case AUTHN_MTLS:
            for (size_t s = 0; s < req->ntls_subjects; s++)
                for (size_t m = 0; m < a->nsubjects; m++)
                    if (strcmp(req->tls_subjects[s], a->subjects[m].subject) == 0)
                        return set_name(p, "mtls", a->subjects[m].user, a->subjects[m].roles, e);
            break;
        default:
            break;
        }
    }
    if (token)
        return errdetail_set(e, CITRUS_EUNAUTHENTICATED,
                             "the bearer token is not one this server accepts");
    return errdetail_set(e, CITRUS_ENOTFOUND, "no credentials");
}

static unsigned level_of(const char *role)
{
    return auth_role_bit(role);
}

int authn_authorize(const authn *a, const principal *p, const char *role, const char *scope,
                    const char *target, bool prefix, bool write, errdetail *e)
{
    if (!role)
        return 0;
    if (scope && strcmp(scope, "metrics") == 0 && a->metrics_anonymous)
        return 0;
    if (scope && strcmp(scope, "kv") == 0) {
        if (principal_kv_allowed(p, target ? target : "", prefix, write))
            return 0;
        return errdetail_set(e, CITRUS_EFORBIDDEN, "%s may not %s %s'%.200s'", p->name,
                             write ? "write" : "read", prefix ? "the keys under " : "",
                             target ? target : "");
    }
    unsigned need = level_of(role);
    if (need && auth_level_allows(p->roles, need))
        return 0;
    if (scope && strcmp(scope, "tenant") == 0 && target && principal_tenant_allowed(p, target))
        return 0;
    if (scope && (strcmp(scope, "tenant-body") == 0 || strcmp(scope, "tenant-own") == 0) &&
        (p->roles & AUTH_TENANT))
        return 0;
    if (scope && strcmp(scope, "kv-body") == 0 && p->ngrants)
        return 0;
    if (scope && strcmp(scope, "tenant") == 0 && (p->roles & AUTH_TENANT))
        return errdetail_set(e, CITRUS_EFORBIDDEN, "%s may not act on tenant '%.200s'", p->name,
                             target ? target : "");
    return errdetail_set(e, CITRUS_EFORBIDDEN, "%s needs the role %s here", p->name, role);
}
