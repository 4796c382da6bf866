/* auth/jwt.h — verifying a JSON Web Token (RFC 7519, JWS compact form) from
 * an Authorization: Bearer header against a key source and a policy, and a
 * cache of tokens already verified.
 *
 * Accepted algorithms: HS256, RS256 and ES256, each only with a key of its
 * type (oct, RSA, EC P-256): "none", and an HS256 token "signed" with an RSA
 * public key as the HMAC secret, are refused. Header parameters that point
 * at keys (jku, x5u, jwk) are never followed; a "crit" header is refused
 * (no extension is understood). A token's claims: exp required; nbf and iat
 * checked when present; iss and aud against the policy; the subject, the
 * roles and the tenant scopes read from configurable claims.
 *
 * Error messages say what was wrong, never the token, a claim's value from
 * an unverified token, or key material. Every failure is
 * CITRUS_EUNAUTHENTICATED except CITRUS_ENOMEM. */
#ifndef CITRUS_AUTH_JWT_H
#define CITRUS_AUTH_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "auth/jwks.h"
#include "core/errdetail.h"

#define JWT_MAX_TOKEN_BYTES 8192
#define JWT_MAX_LIST 256                /* roles or scopes in one token */
#define JWT_DEFAULT_ROLES_CLAIM "roles" /* Azure AD app roles arrive there */
#define JWT_DEFAULT_SCOPES_CLAIM "tenants"
#define JWT_DEFAULT_SUBJECT_CLAIM "sub"

typedef struct jwt_policy {
    const char *issuer;        /* required iss; NULL: not checked */
    const char *audience;      /* required aud (the string, or one member of the array); NULL:
                                  not checked */
    int64_t skew_s;            /* allowed clock skew for exp, nbf and iat (0..86400) */
    const char *roles_claim;   /* NULL: "roles". An array of strings, or one string of names
                                  separated by spaces or commas. Required. */
    const char *scopes_claim;  /* NULL: "tenants"; same forms; optional */
    const char *subject_claim; /* NULL: "sub" (Azure AD: "oid" or "azp" for apps); required */
    size_t max_token_bytes;    /* 0: JWT_MAX_TOKEN_BYTES (also the most allowed) */
} jwt_policy;

/* A claim name with dots that is not itself a claim is followed as a path
 * of objects ("realm_access.roles" in Keycloak); the literal name is tried
 * first, since namespaced claims ("https://example.com/roles") hold dots. */

typedef struct jwt_claims {
    char *subject;
    char **roles; /* nroles strings */
    size_t nroles;
    char **scopes; /* nscopes strings; none when the claim is absent */
    size_t nscopes;
    int64_t exp; /* Unix seconds */
} jwt_claims;

/* Verifies token (len bytes, not NUL-terminated necessarily) at now_s (Unix
 * seconds) and fills *out (release with jwt_claims_free). A token whose kid
 * the current set lacks makes the source refetch its set (if allowed) and
 * is looked up once more. 0, or CITRUS_EUNAUTHENTICATED / CITRUS_ENOMEM
 * with e saying why (*out then empty). */
int jwt_verify(jwks_source *src, const jwt_policy *p, const char *token, size_t len, int64_t now_s,
               jwt_claims *out, errdetail *e);

/* Frees what *c holds and zeroes it. NULL is a no-op. */
void jwt_claims_free(jwt_claims *c);

/* ---- verified tokens, cached ----
 * By the SHA-256 of the token, for at most min(exp, verification + ttl):
 * a hit skips the signature check. Bounded (entries; a new token evicts the
 * one in its slot). One cache per (source, policy): a hit is not checked
 * against the policy again. Thread-safe. */
typedef struct jwt_cache jwt_cache;

#define JWT_CACHE_DEFAULT_ENTRIES 4096
#define JWT_CACHE_DEFAULT_TTL_S 300

/* entries 0: the default; ttl_s 0: the default. NULL on allocation failure. */
jwt_cache *jwt_cache_new(size_t entries, int64_t ttl_s);
void jwt_cache_free(jwt_cache *c);

/* jwt_verify through the cache (c may be NULL: no cache). *hit (may be
 * NULL) says whether the claims came from the cache. */
int jwt_verify_cached(jwt_cache *c, jwks_source *src, const jwt_policy *p, const char *token,
                      size_t len, int64_t now_s, jwt_claims *out, int *hit, errdetail *e);

#endif
