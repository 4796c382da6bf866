/* auth/authn_jwt.c — the jwt mode (see authn_jwt.h). */
#include "auth/authn_jwt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwks.h"
#include "auth/jwt.h"
#include "citrus/errors.h"

struct authn_jwt {
    char issuer[256], audience[256], roles[64], tenants[64], subject[64];
    jwt_policy pol;
    jwks_source *src;
    jwt_cache *cache;
    const sysclock *clock;
    authn_role_grants grants[AUTHN_MAX_ROLE_GRANTS];
    size_t ngrants;
};

int authn_jwt_new(const authn_jwt_options *o, authn_jwt **out, errdetail *e)
{
    if (!o->issuer || !*o->issuer || !o->audience || !*o->audience)
        return errdetail_set(e, CITRUS_EINVAL,
                             "auth.jwt.issuer and auth.jwt.audience are required with mode jwt");
    int sources =
        (o->jwks_file && *o->jwks_file) + (o->jwks_url && *o->jwks_url) + (o->discovery ? 1 : 0);
    if (sources != 1)
        return errdetail_set(e, CITRUS_EINVAL,
                             "mode jwt needs exactly one of auth.jwt.jwks_file, "
                             "auth.jwt.jwks_url and auth.jwt.discovery: true");
    authn_jwt *j = calloc(1, sizeof(*j));
    if (!j)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    snprintf(j->issuer, sizeof(j->issuer), "%s", o->issuer);
    snprintf(j->audience, sizeof(j->audience), "%s", o->audience);
    snprintf(j->roles, sizeof(j->roles), "%s", o->roles_claim ? o->roles_claim : "roles");
    snprintf(j->tenants, sizeof(j->tenants), "%s", o->tenants_claim ? o->tenants_claim : "tenants");
    snprintf(j->subject, sizeof(j->subject), "%s", o->subject_claim ? o->subject_claim : "sub");
    j->pol = (jwt_policy){.issuer = j->issuer,
                          .audience = j->audience,
                          .skew_s = o->skew_s,
                          .roles_claim = j->roles,
                          .scopes_claim = j->tenants,
                          .subject_claim = j->subject,
                          .max_token_bytes = 8192};
    j->clock = o->clock;
    j->ngrants = o->nrole_grants < AUTHN_MAX_ROLE_GRANTS ? o->nrole_grants : AUTHN_MAX_ROLE_GRANTS;
    if (j->ngrants)
        memcpy(j->grants, o->role_grants, j->ngrants * sizeof(*j->grants));
    jwks_source_options so = {.file = o->jwks_file && *o->jwks_file ? o->jwks_file : NULL,
                              .url = o->jwks_url && *o->jwks_url ? o->jwks_url : NULL,
                              .issuer_discovery = o->discovery ? j->issuer : NULL,
                              .clock = o->clock,
                              .fetch_timeout_ms = 5000,
                              .min_refetch_ms = 30000};
    int rc = jwks_source_new(&so, &j->src, e);
    if (rc == 0 && !(j->cache = jwt_cache_new(4096, 300)))
        rc = errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    if (rc < 0) {
        authn_jwt_free(j);
        return rc;
    }
    *out = j;
    return 0;
}

void authn_jwt_free(authn_jwt *j)
{
    if (!j)
        return;
    jwt_cache_free(j->cache);
    jwks_source_free(j->src);
    free(j);
}

int authn_jwt_verify(void *ctx, const char *token, size_t len, principal *p, errdetail *e)
{
    authn_jwt *j = ctx;
    jwt_claims c;
    memset(p, 0, sizeof(*p));
    int rc = jwt_verify_cached(j->cache, j->src, &j->pol, token, len,
                               clock_wall_ms(j->clock) / 1000, &c, NULL, e);
    if (rc < 0)
        return rc;
    p->method = "jwt";
    for (size_t i = 0; i < c.nroles; i++)
        p->roles |= auth_role_bit(c.roles[i]);
    p->scopes = calloc(c.nscopes ? c.nscopes : 1, sizeof(*p->scopes));
    for (size_t i = 0; p->scopes && i < c.nscopes && p->nscopes < AUTH_MAX_SCOPES; i++)
        if (auth_scope_check(c.scopes[i], NULL) == 0 && (p->scopes[p->nscopes] = c.scopes[i])) {
            c.scopes[i] = NULL; /* moved */
            p->nscopes++;
        }
    p->name = c.subject;
    c.subject = NULL;
    bool oom = false;
    for (size_t i = 0; i < c.nroles; i++) /* the KV grants of the token's roles */
        for (size_t k = 0; k < j->ngrants; k++) {
            if (strcmp(c.roles[i], j->grants[k].role) != 0)
                continue;
            for (size_t g = 0; g < j->grants[k].n && p->ngrants < AUTH_MAX_GRANTS; g++) {
                auth_grant *ng = realloc(p->grants, (p->ngrants + 1) * sizeof(*ng));
                char *pre = ng ? strdup(j->grants[k].g[g].prefix) : NULL;
                if (ng)
                    p->grants = ng;
                if (!pre) {
                    oom = true;
                    break;
                }
                p->grants[p->ngrants].prefix = pre;
                p->grants[p->ngrants++].write = j->grants[k].g[g].write;
            }
        }
    jwt_claims_free(&c);
    if (!p->scopes || !p->name || oom) {
        principal_clear(p);
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    }
    return 0;
}
