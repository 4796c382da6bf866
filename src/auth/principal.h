/* auth/principal.h — who a request is (a principal), the roles it holds,
 * and the decisions every route makes from them: a role level, a tenant
 * scope, a KV grant.
 *
 * Roles (docs/security.md):
 *  - sm-admin: everything, including keys, backups, shard add/retire/delete
 *    and revealing credentials;
 *  - sm-operator: lifecycle changes that keep data, tenants, routing,
 *    scatter queries, KV readwrite outside citrus/;
 *  - reader: reads without secrets, /metrics, cluster status, KV reads
 *    outside citrus/;
 *  - tenant: its own tenants only (scopes such as "acme:*"), KV only through
 *    its grants.
 * sm-admin holds what sm-operator holds, which holds what reader holds;
 * tenant stands apart. The catalog's own keys (citrus/) are read through the
 * KV API by sm-admin only (or an explicit grant): shard records carry
 * credentials and key records their hashes. They are written through their
 * routes only: a raw KV write there is reserved for everyone
 * (principal_kv_write_reserved). */
#ifndef CITRUS_AUTH_PRINCIPAL_H
#define CITRUS_AUTH_PRINCIPAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/errdetail.h"

enum {
    AUTH_READER = 1u << 0,
    AUTH_OPERATOR = 1u << 1,
    AUTH_ADMIN = 1u << 2,
    AUTH_TENANT = 1u << 3,
};

#define AUTH_MAX_SCOPES 64
#define AUTH_MAX_GRANTS 64
#define AUTH_MAX_NAME 256
#define AUTH_MAX_PATTERN 256
#define AUTH_MAX_GRANT_PREFIX 512

typedef struct auth_grant {
    char *prefix; /* a KV key prefix ("" = every key) */
    bool write;   /* readwrite; else read */
} auth_grant;

typedef struct principal {
    char *name;         /* "key:<id>/<name>", a JWT subject, X-User, a certificate subject */
    const char *method; /* static: "none", "api_key", "jwt", "trusted_headers", "mtls" */
    unsigned roles;     /* AUTH_* bits */
    char **scopes;      /* tenant patterns: "acme:store-1", "acme:*", "*" */
    size_t nscopes;
    auth_grant *grants;
    size_t ngrants;
} principal;

/* A role name ("sm-admin", "sm-operator", "reader", "tenant") into its bit;
 * 0 for anything else. */
unsigned auth_role_bit(const char *name);
/* The name of one role bit (static), or NULL. */
const char *auth_role_name(unsigned bit);
/* The roles as "sm-admin,reader" into buf (always NUL-terminated). */
void auth_roles_format(unsigned roles, char *buf, size_t len);

/* Whether roles reach the level of the role bit need (sm-admin >
 * sm-operator > reader; tenant only by itself). */
bool auth_level_allows(unsigned roles, unsigned need);

/* Checks a tenant scope pattern: "*", or "<businessId>:<locationId>" with
 * either part "*" or ending in '*' (a prefix), printable ASCII without
 * blanks, at most AUTH_MAX_PATTERN bytes. */
int auth_scope_check(const char *pattern, errdetail *e);
/* Whether the pattern covers the tenant key "<businessId>:<locationId>". */
bool auth_scope_match(const char *pattern, const char *tenant_key);

/* Whether p may act on the tenant key: sm-operator and up always, a tenant
 * within one of its scopes. */
bool principal_tenant_allowed(const principal *p, const char *tenant_key);
/* Whether p may run a statement on every shard: sm-operator and up, or a
 * tenant whose scopes include "*". */
bool principal_scatter_allowed(const principal *p);
/* Whether p may read (write false) or write one key, or every key under a
 * prefix (prefix true), through the KV API. */
bool principal_kv_allowed(const principal *p, const char *key, bool prefix, bool write);
/* Whether a raw KV write of key (or a delete of every key under the
 * prefix, prefix true) touches the catalog's own keys (citrus/): a key
 * under it, or a range that overlaps it ("cit", ""). */
bool auth_kv_reserved(const char *key, bool prefix);
/* The rule for raw KV writes there (docs/security.md, "Catalog
 * integrity"): the catalog's keys are written only through their routes,
 * so such a write is CITRUS_ERESERVED for every role and grant, except
 * sm-admin asking for it explicitly (unsafe, ?unsafe=true). 0 when key is
 * not reserved or the write may go on; else CITRUS_ERESERVED with the
 * reason in e. */
int principal_kv_write_reserved(const principal *p, const char *key, bool prefix, bool unsafe,
                                errdetail *e);

/* KV grants from JSON, [{"prefix": "app/x/", "access": "read" |
 * "readwrite"}, ...] (at most max; a prefix is a valid key prefix of at
 * most AUTH_MAX_GRANT_PREFIX bytes, "" for every key), appended to out[*n]
 * (the prefixes are the caller's to free). CITRUS_EINVAL naming the bad
 * grant. */
int auth_grants_parse(json_t *v, size_t max, auth_grant *out, size_t *n, errdetail *e);

/* A deep copy of p; NULL on allocation failure. */
principal *principal_dup(const principal *p);
/* Frees what p owns and p itself (NULL is a no-op). */
void principal_free(principal *p);
/* Frees what p owns, not p. */
void principal_clear(principal *p);

#endif
