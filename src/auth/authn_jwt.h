/* auth/authn_jwt.h — the jwt mode of authn: a bearer token verified
 * (auth/jwt.h) against the configured issuer's keys, through the cache of
 * verified tokens, into a principal (its subject, roles and tenant
 * scopes). */
#ifndef CITRUS_AUTH_AUTHN_JWT_H
#define CITRUS_AUTH_AUTHN_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/principal.h"
#include "core/errdetail.h"
#include "sys/clock.h"

typedef struct authn_jwt authn_jwt;

/* KV grants a JWT role carries (auth.jwt.role_grants), as etcd's role
 * permissions: a token naming the role gets its grants. */
#define AUTHN_MAX_ROLE_GRANTS 16
#define AUTHN_ROLE_GRANTS 8
typedef struct authn_role_grants {
    char role[64];
    struct {
        char prefix[AUTH_MAX_GRANT_PREFIX + 1];
        bool write;
    } g[AUTHN_ROLE_GRANTS];
    size_t n;
} authn_role_grants;

typedef struct authn_jwt_options {
    const char *issuer, *audience;
    const char *jwks_file, *jwks_url; /* one of them, or discovery */
    bool discovery;                   /* the JWKS URL from <issuer>/.well-known/... */
    int64_t skew_s;
    const char *roles_claim, *tenants_claim, *subject_claim;
    const sysclock *clock;                /* NULL: the real clock */
    const authn_role_grants *role_grants; /* copied */
    size_t nrole_grants;
} authn_jwt_options;

/* Copies what it needs from o. Loads the keys now: a source that cannot be
 * read is an error (a node that cannot check tokens should not start). */
int authn_jwt_new(const authn_jwt_options *o, authn_jwt **out, errdetail *e);
void authn_jwt_free(authn_jwt *j);
/* An authn_token_fn (ctx: the authn_jwt). Roles the token names that
 * Citrus does not know are ignored unless auth.jwt.role_grants gives them
 * KV grants; tenant scopes that are not valid
 * patterns are dropped. */
int authn_jwt_verify(void *ctx, const char *token, size_t len, principal *p, errdetail *e);

#endif
