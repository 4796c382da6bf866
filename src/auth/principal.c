/* auth/principal.c — roles, tenant scopes and KV grants (see principal.h). */
#include "auth/principal.h"

#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "core/key.h"

static const struct {
    unsigned bit;
    const char *name;
} role_names[] = {
    {AUTH_ADMIN, "sm-admin"},
    {AUTH_OPERATOR, "sm-operator"},
    {AUTH_READER, "reader"},
    {AUTH_TENANT, "tenant"},
};
#define NROLES (sizeof(role_names) / sizeof(role_names[0]))

/* The catalog's own keys: shard records hold credentials, key records their
 * hashes. Only sm-admin (or an explicit grant) reads them through KV, and
 * nobody writes them there but sm-admin with unsafe. */
#define CATALOG_PREFIX "citrus/"

unsigned auth_role_bit(const char *name)
{
    for (size_t i = 0; name && i < NROLES; i++)
        if (strcmp(role_names[i].name, name) == 0)
            return role_names[i].bit;
    return 0;
}

const char *auth_role_name(unsigned bit)
{
    for (size_t i = 0; i < NROLES; i++)
        if (role_names[i].bit == bit)
            return role_names[i].name;
    return NULL;
}

void auth_roles_format(unsigned roles, char *buf, size_t len)
{
    size_t used = 0;
    if (len == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < NROLES; i++) {
        if (!(roles & role_names[i].bit))
            continue;
        size_t n = strlen(role_names[i].name) + (used ? 1 : 0);
        if (used + n + 1 > len)
            break;
        if (used)
            buf[used++] = ',';
        memcpy(buf + used, role_names[i].name, strlen(role_names[i].name) + 1);
        used += strlen(role_names[i].name);
    }
}

bool auth_level_allows(unsigned roles, unsigned need)
{
    switch (need) {
    case AUTH_READER:
        return (roles & (AUTH_READER | AUTH_OPERATOR | AUTH_ADMIN)) != 0;
    case AUTH_OPERATOR:
        return (roles & (AUTH_OPERATOR | AUTH_ADMIN)) != 0;
    case AUTH_ADMIN:
        return (roles & AUTH_ADMIN) != 0;
    case AUTH_TENANT:
        return (roles & AUTH_TENANT) != 0;
    default:
        return false;
    }
}

/* One half of a pattern: "*", or printable ASCII without blanks or ':'
 * where only the last character may be '*'. */
static bool part_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c >= 0x7f || c == ':')
            return false;
        if (c == '*' && i != n - 1)
            return false;
    }
    return true;
}

int auth_scope_check(const char *pattern, errdetail *e)
{
    size_t n = strlen(pattern);
    if (n == 0 || n > AUTH_MAX_PATTERN)
        return errdetail_set(e, CITRUS_EINVAL, "a tenant scope must be 1-%d characters",
                             AUTH_MAX_PATTERN);
    if (strcmp(pattern, "*") == 0)
        return 0;
    const char *colon = strchr(pattern, ':');
    if (!colon || !part_ok(pattern, (size_t)(colon - pattern)) ||
        !part_ok(colon + 1, strlen(colon + 1)) || (colon > pattern && colon[-1] == '*'))
        return errdetail_set(e, CITRUS_EINVAL,
                             "a tenant scope is \"*\" or <businessId>:<locationId> where the "
                             "location may be \"*\" or end in '*' (as acme:*)");
    return 0;
}

bool auth_scope_match(const char *pattern, const char *tenant_key)
{
    size_t n = strlen(pattern);
    if (n == 0)
        return false;
    if (pattern[n - 1] == '*')
        return strncmp(pattern, tenant_key, n - 1) == 0;
    return strcmp(pattern, tenant_key) == 0;
}

bool principal_tenant_allowed(const principal *p, const char *tenant_key)
{
    if (auth_level_allows(p->roles, AUTH_OPERATOR))
        return true;
    if (!(p->roles & AUTH_TENANT) || !tenant_key)
        return false;
    for (size_t i = 0; i < p->nscopes; i++)
        if (auth_scope_match(p->scopes[i], tenant_key))
            return true;
    return false;
}

bool principal_scatter_allowed(const principal *p)
{
    if (auth_level_allows(p->roles, AUTH_OPERATOR))
        return true;
    if (!(p->roles & AUTH_TENANT))
        return false;
    for (size_t i = 0; i < p->nscopes; i++)
        if (strcmp(p->scopes[i], "*") == 0)
            return true;
    return false;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Whether the key (or every key under the prefix) lies outside citrus/. */
static bool outside_catalog(const char *key, bool prefix)
{
    if (starts_with(key, CATALOG_PREFIX))
        return false;
    /* a prefix such as "cit" or "" covers citrus/ too */
    return !(prefix && starts_with(CATALOG_PREFIX, key));
}

bool auth_kv_reserved(const char *key, bool prefix)
{
    return !outside_catalog(key, prefix);
}

int principal_kv_write_reserved(const principal *p, const char *key, bool prefix, bool unsafe,
                                errdetail *e)
{
    if (!auth_kv_reserved(key, prefix) || (unsafe && (p->roles & AUTH_ADMIN)))
        return 0;
    return errdetail_set(e, CITRUS_ERESERVED,
                         "%s'%.200s' %s the catalog's own keys (citrus/), written only through "
                         "their routes%s",
                         prefix ? "the keys under " : "", key, prefix ? "include" : "is one of",
                         (p->roles & AUTH_ADMIN)
                             ? "; sm-admin may force it with ?unsafe=true (citrus kv --unsafe)"
                             : "");
}

bool principal_kv_allowed(const principal *p, const char *key, bool prefix, bool write)
{
    if (p->roles & AUTH_ADMIN)
        return true;
    for (size_t i = 0; i < p->ngrants; i++)
        if ((p->grants[i].write || !write) && starts_with(key, p->grants[i].prefix))
            return true;
    if (!outside_catalog(key, prefix))
        return false;
    if (p->roles & AUTH_OPERATOR)
        return true;
    return !write && (p->roles & AUTH_READER);
}

void principal_clear(principal *p)
{
    if (!p)
        return;
    free(p->name);
    for (size_t i = 0; i < p->nscopes; i++)
        free(p->scopes[i]);
    free(p->scopes);
    for (size_t i = 0; i < p->ngrants; i++)
        free(p->grants[i].prefix);
    free(p->grants);
    memset(p, 0, sizeof(*p));
}

void principal_free(principal *p)
{
    principal_clear(p);
    free(p);
}

principal *principal_dup(const principal *p)
{
    principal *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->method = p->method;
    d->roles = p->roles;
    d->name = strdup(p->name ? p->name : "");
    d->scopes = calloc(p->nscopes ? p->nscopes : 1, sizeof(*d->scopes));
    d->grants = calloc(p->ngrants ? p->ngrants : 1, sizeof(*d->grants));
    bool bad = !d->name || !d->scopes || !d->grants;
    for (size_t i = 0; !bad && i < p->nscopes; i++) {
        d->scopes[i] = strdup(p->scopes[i]);
        d->nscopes = i + 1;
        bad = !d->scopes[i];
    }
    for (size_t i = 0; !bad && i < p->ngrants; i++) {
        d->grants[i].prefix = strdup(p->grants[i].prefix);
        d->grants[i].write = p->grants[i].write;
        d->ngrants = i + 1;
        bad = !d->grants[i].prefix;
    }
    if (bad) {
        principal_free(d);
        return NULL;
    }
    return d;
}

int auth_grants_parse(json_t *v, size_t max, auth_grant *out, size_t *n, errdetail *e)
{
    size_t i;
    json_t *g;
    if (!json_is_array(v) || json_array_size(v) > max)
        return errdetail_set(e, CITRUS_EINVAL, "grants: must be an array of at most %zu grants",
                             max);
    json_array_foreach(v, i, g)
    {
        json_t *prefix = json_object_get(g, "prefix"), *access = json_object_get(g, "access");
        const char *why = NULL;
        if (!json_is_object(g) || json_object_size(g) != 2 || !json_is_string(prefix) ||
            !json_is_string(access))
            return errdetail_set(e, CITRUS_EINVAL,
                                 "grants[%zu]: must be {\"prefix\": \"...\", \"access\": "
                                 "\"read\" | \"readwrite\"}",
                                 i);
        const char *a = json_string_value(access), *p = json_string_value(prefix);
        size_t plen = json_string_length(prefix);
        if (strcmp(a, "read") != 0 && strcmp(a, "readwrite") != 0)
            return errdetail_set(e, CITRUS_EINVAL,
                                 "grants[%zu].access: must be \"read\" or \"readwrite\"", i);
        if (plen > AUTH_MAX_GRANT_PREFIX || strlen(p) != plen ||
            (plen && key_validate_prefix(p, plen, &why) < 0))
            return errdetail_set(e, CITRUS_EINVAL, "grants[%zu].prefix: %s", i,
                                 why ? why : "at most 512 bytes");
        if (!(out[*n].prefix = strdup(p)))
            return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
        out[*n].write = strcmp(a, "readwrite") == 0;
        (*n)++;
    }
    return 0;
}
