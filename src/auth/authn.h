/* auth/authn.h — who a request is, from what it carries, by the modes the
 * node was configured with; and whether a route lets that principal in.
 *
 * Modes (auth.modes, in order: the first that recognises the credentials
 * decides):
 *  - api_key: "Authorization: Bearer ck_..." (auth/keyring.h);
 *  - jwt: another bearer token, checked against the configured issuer's keys;
 *  - trusted_headers: X-User and X-Roles, believed only from a peer inside
 *    one of the proxies' CIDRs (from anyone else they are ignored);
 *  - mtls: the subject of a verified client certificate, mapped to a user
 *    and roles by configuration;
 *  - none: everyone is sm-admin (citrus dev on loopback; never combined
 *    with another mode).
 * HTTP-free, so the decisions are unit-tested on their own
 * (tests/unit/test_authn.c); api/gate.c reads the request into an
 * authn_request and answers 401/403. */
#ifndef CITRUS_AUTH_AUTHN_H
#define CITRUS_AUTH_AUTHN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/keyring.h"
#include "auth/principal.h"
#include "core/errdetail.h"

enum {
    AUTHN_NONE = 1u << 0,
    AUTHN_API_KEY = 1u << 1,
    AUTHN_JWT = 1u << 2,
    AUTHN_HEADERS = 1u << 3,
    AUTHN_MTLS = 1u << 4,
};

#define AUTHN_MAX_PROXIES 32
#define AUTHN_MAX_SUBJECTS 64

typedef struct authn_cidr {
    uint32_t net, mask; /* host order */
} authn_cidr;

/* A certificate subject's mapping (auth.mtls.subjects). */
typedef struct authn_subject {
    char subject[256]; /* the CN or a DNS/email SAN, exactly */
    char user[128];
    unsigned roles;
} authn_subject;

/* A bearer token that is not an API key (the jwt mode): 0 with *p filled,
 * or CITRUS_EUNAUTHENTICATED with a reason. */
typedef int (*authn_token_fn)(void *ctx, const char *token, size_t len, principal *p, errdetail *e);

typedef struct authn {
    unsigned modes;    /* AUTHN_* */
    unsigned order[5]; /* the modes in configured order */
    size_t norder;
    keyring *keys;      /* api_key; borrowed */
    authn_token_fn jwt; /* jwt; NULL when not configured */
    void *jwt_ctx;
    authn_cidr proxies[AUTHN_MAX_PROXIES];
    size_t nproxies;
    authn_subject subjects[AUTHN_MAX_SUBJECTS];
    size_t nsubjects;
    bool metrics_anonymous;
} authn;

/* What a request carries (any may be NULL). */
typedef struct authn_request {
    const char *authorization; /* the Authorization header */
    bool peer_ipv4;            /* peer_ip is known */
    uint32_t peer_ip;          /* host order */
    const char *x_user, *x_roles;
    const char *tls_subjects[8]; /* a verified client certificate's CN and SANs */
    size_t ntls_subjects;
} authn_request;

/* Parses a mode list ("api_key,jwt", as config keeps lists) into a; an
 * unknown mode, a repeated one, or none with another is CITRUS_EINVAL. */
int authn_modes_parse(authn *a, const char *list, errdetail *e);
/* "10.0.0.0/8", "127.0.0.1" (a /32). */
int authn_cidr_parse(const char *s, authn_cidr *out, errdetail *e);
/* A comma-separated list of CIDRs into a->proxies. */
int authn_proxies_parse(authn *a, const char *list, errdetail *e);

/* Who the request is: 0 with *p filled (principal_clear it);
 * CITRUS_ENOTFOUND when it carries no credentials any mode takes
 * (anonymous); CITRUS_EUNAUTHENTICATED when its credentials are wrong (the
 * message says why, never the secret); CITRUS_EUNAVAILABLE when they cannot
 * be checked now (the keys are not loaded). */
int authn_authenticate(const authn *a, const authn_request *req, principal *p, errdetail *e);

/* Whether a route lets p in, by the route's role and scope (the route
 * table's strings; see api/routes.c):
 *   role NULL: anyone; "reader", "sm-operator", "sm-admin": that level;
 *   scope "kv": the KV rules on `target` (a key, or a prefix when prefix)
 *     decide instead of the level (write for a mutation);
 *   scope "tenant": a tenant principal within its scopes for `target` too;
 *   scope "tenant-body" / "kv-body": tenants / principals with grants get
 *     past the gate, and the handler checks what the body names;
 *   scope "tenant-own": tenants get past the gate, and the handler shows
 *     them only what concerns tenant keys within their scopes (the rest as
 *     if it did not exist);
 *   scope "metrics": anyone when metrics_anonymous.
 * Returns 0, or CITRUS_EFORBIDDEN with the reason in e. */
int authn_authorize(const authn *a, const principal *p, const char *role, const char *scope,
                    const char *target, bool prefix, bool write, errdetail *e);

#endif
