/* auth/jwt.c — JWS compact-form verification (RFC 7515, 7518) and the JWT
 * claims checks (RFC 7519) behind jwt.h, and the verified-token cache.
 *
 * Order matters: the header is read only to choose a key, the signature is
 * checked over the encoded header and payload as received, and only then
 * is the payload parsed — nothing from an unverified payload reaches a
 * decision or a message. */
#include "auth/jwt.h"

#include <jansson.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "citrus/errors.h"

#define ES256_SIG_BYTES 64
#define HS256_SIG_BYTES 32
#define MAX_CLAIM_PATH 256
#define MAX_SKEW_S 86400 /* keeps now ± skew far from overflow */

static int refuse(errdetail *e, const char *why)
{
    return errdetail_set(e, CITRUS_EUNAUTHENTICATED, "invalid token: %s", why);
}

/* ---- signatures ---- */

static bool verify_hs256(const jwk *k, const unsigned char *in, size_t inlen,
                         const unsigned char *sig, size_t siglen)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (siglen != HS256_SIG_BYTES ||
        !HMAC(EVP_sha256(), k->secret, (int)k->secret_len, in, inlen, mac, &maclen) ||
        maclen != HS256_SIG_BYTES)
        return false;
    /* constant time: a byte-by-byte compare tells a forger how far they got */
    bool ok = CRYPTO_memcmp(mac, sig, HS256_SIG_BYTES) == 0;
    OPENSSL_cleanse(mac, sizeof(mac));
    return ok;
}

static bool verify_pkey(EVP_PKEY *pkey, const unsigned char *in, size_t inlen,
                        const unsigned char *sig, size_t siglen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pkey) == 1 &&
              EVP_DigestVerify(ctx, sig, siglen, in, inlen) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

/* JWS carries an ES256 signature as r || s, 32 bytes each (RFC 7518
 * 3.4); OpenSSL verifies the DER form. */
static bool verify_es256(const jwk *k, const unsigned char *in, size_t inlen,
                         const unsigned char *sig, size_t siglen)
{
    if (siglen != ES256_SIG_BYTES)
        return false;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, ES256_SIG_BYTES / 2, NULL);
    BIGNUM *s = BN_bin2bn(sig + ES256_SIG_BYTES / 2, ES256_SIG_BYTES / 2, NULL);
    if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        return false;
    }
    unsigned char *der = NULL;
    int derlen = i2d_ECDSA_SIG(es, &der);
    ECDSA_SIG_free(es);
    bool ok = derlen > 0 && verify_pkey(k->pkey, in, inlen, der, (size_t)derlen);
    OPENSSL_free(der);
    return ok;
}

static bool verify_sig(const jwk *k, const unsigned char *in, size_t inlen,
                       const unsigned char *sig, size_t siglen)
{
    bool ok = k->kty == JWK_OCT   ? verify_hs256(k, in, inlen, sig, siglen)
              : k->kty == JWK_RSA ? verify_pkey(k->pkey, in, inlen, sig, siglen)
                                  : verify_es256(k, in, inlen, sig, siglen);
    ERR_clear_error(); /* a failed verify leaves entries nobody else should see */
    return ok;
}

/* ---- parts ---- */

/* Decodes a base64url part that must be a JSON object. */
static json_t *decode_json(const char *s, size_t n, unsigned char *buf, size_t cap)
{
    size_t len = 0;
    if (jwks_b64url_decode(s, n, buf, cap, &len) != 0)
        return NULL;
    json_t *v = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(v)) {
        json_decref(v);
        return NULL;
    }
    return v;
}

static const char *alg_of(json_t *hdr, jwk_kty *kty)
{
    json_t *alg = json_object_get(hdr, "alg");
    if (!json_is_string(alg))
        return "its header has no alg";
    const char *a = json_string_value(alg);
    if (strcmp(a, "HS256") == 0)
        *kty = JWK_OCT;
    else if (strcmp(a, "RS256") == 0)
        *kty = JWK_RSA;
    else if (strcmp(a, "ES256") == 0)
        *kty = JWK_EC;
    else if (strcasecmp(a, "none") == 0)
        return "alg \"none\" is not allowed";
    else
        return "alg is not one of HS256, RS256, ES256";
    return NULL;
}

/* ---- claims ---- */

/* A claim by name, or, when no claim has that name and it holds dots, by
 * the path of objects it spells. */
static json_t *claim(json_t *payload, const char *name)
{
    json_t *v = json_object_get(payload, name);
    if (v || !strchr(name, '.') || strlen(name) >= MAX_CLAIM_PATH)
        return v;
    char path[MAX_CLAIM_PATH];
    strcpy(path, name);
    v = payload;
    for (char *seg = path, *dot; v; seg = dot + 1) {
        dot = strchr(seg, '.');
        if (dot)
            *dot = '\0';
        v = json_object_get(v, seg);
        if (!dot)
            break;
    }
    return v;
}

/* A NumericDate: -1 wrong type, 0 absent, 1 present (*out, whole seconds). */
static int numeric_date(json_t *payload, const char *name, int64_t *out)
{
    json_t *v = json_object_get(payload, name);
    if (!v)
        return 0;
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 1;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!isfinite(d) || d < -9e15 || d > 9e15)
            return -1;
        *out = (int64_t)floor(d);
        return 1;
    }
    return -1;
}

static bool string_is(json_t *v, const char *want)
{
    return json_is_string(v) && json_string_length(v) == strlen(want) &&
           memcmp(json_string_value(v), want, json_string_length(v)) == 0;
}

static bool aud_matches(json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return string_is(aud, want);
    if (!json_is_array(aud))
        return false;
    for (size_t i = 0; i < json_array_size(aud); i++)
        if (string_is(json_array_get(aud, i), want))
            return true;
    return false;
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int push(char ***v, size_t *n, const char *s, size_t len)
{
    if (*n == JWT_MAX_LIST)
        return CITRUS_ETOOMANY;
    char **nv = realloc(*v, (*n + 1) * sizeof(*nv));
    if (!nv)
        return CITRUS_ENOMEM;
    *v = nv;
    if (!(nv[*n] = strndup(s, len)))
        return CITRUS_ENOMEM;
    (*n)++;
    return 0;
}

/* An array of strings, or one string of names separated by blanks or
 * commas (the OAuth "scope" form, and some issuers' roles). 0, or
 * CITRUS_EINVAL (wrong form), CITRUS_ETOOMANY, CITRUS_ENOMEM. */
static int read_list(json_t *v, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    int rc = 0;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v) && rc == 0; i++) {
            json_t *s = json_array_get(v, i);
            if (!json_is_string(s) || json_string_length(s) == 0)
                rc = CITRUS_EINVAL;
            else
                rc = push(out, n, json_string_value(s), json_string_length(s));
        }
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        while (*s && rc == 0) {
            size_t sep = strspn(s, " ,\t");
            s += sep;
            size_t len = strcspn(s, " ,\t");
            if (len)
                rc = push(out, n, s, len);
            s += len;
        }
    } else {
        rc = CITRUS_EINVAL;
    }
    if (rc != 0) {
        free_list(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

static int list_error(int rc, const char *name, errdetail *e)
{
    if (rc == CITRUS_ENOMEM)
        return errdetail_set(e, CITRUS_ENOMEM, "token claims: out of memory");
    if (rc == CITRUS_ETOOMANY)
        return errdetail_set(e, CITRUS_EUNAUTHENTICATED,
                             "invalid token: more than %d names in '%.64s'", JWT_MAX_LIST, name);
    return errdetail_set(e, CITRUS_EUNAUTHENTICATED,
                         "invalid token: claim '%.64s' is not an array of non-empty strings or a "
                         "string of names",
                         name);
}

static int check_claims(json_t *pl, const jwt_policy *p, int64_t now_s, jwt_claims *out,
                        errdetail *e)
{
    int64_t skew = p->skew_s <= 0 ? 0 : p->skew_s > MAX_SKEW_S ? MAX_SKEW_S : p->skew_s;
    int64_t exp = 0, nbf = 0, iat = 0;
    int has = numeric_date(pl, "exp", &exp);
    if (has < 0)
        return refuse(e, "exp is not a number");
    if (has == 0)
        return refuse(e, "token has no 'exp' claim");
    if (now_s - skew >= exp)
        return refuse(e, "token expired");
    has = numeric_date(pl, "nbf", &nbf);
    if (has < 0)
        return refuse(e, "nbf is not a number");
    if (has && nbf > now_s + skew)
        return refuse(e, "token not valid yet (nbf in the future)");
    has = numeric_date(pl, "iat", &iat);
    if (has < 0)
        return refuse(e, "iat is not a number");
    if (has && iat > now_s + skew)
        return refuse(e, "token issued in the future (iat)");
    if (p->issuer && !string_is(json_object_get(pl, "iss"), p->issuer))
        return refuse(e, "wrong or missing issuer (iss)");
    if (p->audience && !aud_matches(json_object_get(pl, "aud"), p->audience))
        return refuse(e, "wrong or missing audience (aud)");

    const char *subj_name = p->subject_claim ? p->subject_claim : JWT_DEFAULT_SUBJECT_CLAIM;
    const char *roles_name = p->roles_claim ? p->roles_claim : JWT_DEFAULT_ROLES_CLAIM;
    const char *scopes_name = p->scopes_claim ? p->scopes_claim : JWT_DEFAULT_SCOPES_CLAIM;
    json_t *subj = claim(pl, subj_name);
    if (!json_is_string(subj) || json_string_length(subj) == 0 ||
        strlen(json_string_value(subj)) != json_string_length(subj))
        return errdetail_set(e, CITRUS_EUNAUTHENTICATED,
                             "invalid token: token has no '%.64s' claim (a non-empty string)",
                             subj_name);
    json_t *roles = claim(pl, roles_name);
    if (!roles)
        return errdetail_set(e, CITRUS_EUNAUTHENTICATED,
                             "invalid token: token has no '%.64s' claim", roles_name);
    int rc = read_list(roles, &out->roles, &out->nroles);
    if (rc != 0)
        return list_error(rc, roles_name, e);
    json_t *scopes = claim(pl, scopes_name);
    if (scopes && (rc = read_list(scopes, &out->scopes, &out->nscopes)) != 0)
        return list_error(rc, scopes_name, e);
    if (!(out->subject = strdup(json_string_value(subj))))
        return errdetail_set(e, CITRUS_ENOMEM, "token claims: out of memory");
    out->exp = exp;
    return 0;
}

/* ---- the whole token ---- */

int jwt_verify(jwks_source *src, const jwt_policy *p, const char *token, size_t len, int64_t now_s,
               jwt_claims *out, errdetail *e)
{
    memset(out, 0, sizeof(*out));
    size_t max = p->max_token_bytes && p->max_token_bytes < JWT_MAX_TOKEN_BYTES
                     ? p->max_token_bytes
                     : JWT_MAX_TOKEN_BYTES;
    if (len > max)
        return errdetail_set(e, CITRUS_EUNAUTHENTICATED,
                             "invalid token: %zu bytes, over the %zu-byte limit", len, max);
    const char *d1 = memchr(token, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)))
        return refuse(e, "not three base64url parts separated by dots");
    size_t hlen = (size_t)(d1 - token), plen = (size_t)(d2 - d1 - 1);
    size_t slen = len - (size_t)(d2 + 1 - token);
    if (hlen == 0 || plen == 0)
        return refuse(e, "empty header or payload");

    /* one buffer for every decoded part: none is longer than the token */
    unsigned char *buf = malloc(len + 3);
    if (!buf)
        return errdetail_set(e, CITRUS_ENOMEM, "token: out of memory");
    int rc = 0;
    jwks *set = NULL;
    json_t *hdr = decode_json(token, hlen, buf, len + 3), *pl = NULL;
    if (!hdr) {
        rc = refuse(e, "the header is not base64url of a JSON object");
        goto out;
    }
    jwk_kty kty = JWK_OCT;
    const char *why = alg_of(hdr, &kty);
    if (why) {
        rc = refuse(e, why);
        goto out;
    }
    if (json_object_get(hdr, "crit")) {
        rc = refuse(e, "the header has crit extensions, none of which is understood");
        goto out;
    }
    json_t *kidv = json_object_get(hdr, "kid");
    if (kidv && (!json_is_string(kidv) || json_string_length(kidv) == 0 ||
                 json_string_length(kidv) > JWKS_MAX_KID_BYTES ||
                 strlen(json_string_value(kidv)) != json_string_length(kidv))) {
        rc = refuse(e, "kid is not a non-empty string");
        goto out;
    }
    const char *kid = kidv ? json_string_value(kidv) : NULL;
    if (slen == 0) {
        rc = refuse(e, "no signature");
        goto out;
    }

    set = jwks_source_get(src);
    bool kid_known = false;
    const jwk *key = jwks_find(set, kid, kty, &kid_known);
    if (!key && kid && !kid_known) {
        /* maybe the issuer rotated its keys: fetch again, if allowed now */
        errdetail fe;
        if (jwks_source_refetch(src, &fe) == 1) {
            jwks_free(set);
            set = jwks_source_get(src);
            key = jwks_find(set, kid, kty, &kid_known);
        }
    }
    if (!key) {
        if (kid_known)
            rc = errdetail_set(e, CITRUS_EUNAUTHENTICATED,
                               "invalid token: its kid names a key that is not of type %s, the "
                               "only type alg %s may use",
                               jwk_kty_name(kty), jwk_kty_alg(kty));
        else if (kid)
            rc = refuse(e, "unknown kid (no such key in the key set)");
        else
            rc = errdetail_set(e, CITRUS_EUNAUTHENTICATED,
                               "invalid token: no kid, and the key set has not exactly one %s key",
                               jwk_kty_name(kty));
        goto out;
    }
    size_t siglen = 0;
    if (jwks_b64url_decode(d2 + 1, slen, buf, len + 3, &siglen) != 0) {
        rc = refuse(e, "the signature is not base64url");
        goto out;
    }
    if (!verify_sig(key, (const unsigned char *)token, hlen + 1 + plen, buf, siglen)) {
        rc = refuse(e, "bad signature");
        goto out;
    }
    pl = decode_json(d1 + 1, plen, buf, len + 3);
    if (!pl) {
        rc = refuse(e, "the payload is not base64url of a JSON object");
        goto out;
    }
    rc = check_claims(pl, p, now_s, out, e);
out:
    json_decref(hdr);
    json_decref(pl);
    jwks_free(set);
    free(buf);
    if (rc != 0)
        jwt_claims_free(out);
    return rc;
}

void jwt_claims_free(jwt_claims *c)
{
    if (!c)
        return;
    free(c->subject);
    free_list(c->roles, c->nroles);
    free_list(c->scopes, c->nscopes);
    memset(c, 0, sizeof(*c));
}

static int copy_list(char **from, size_t n, char ***to)
{
    *to = NULL;
    if (n == 0)
        return 0;
    char **v = calloc(n, sizeof(*v));
    if (!v)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!(v[i] = strdup(from[i]))) {
            free_list(v, i);
            return -1;
        }
    *to = v;
    return 0;
}

static int claims_copy(const jwt_claims *from, jwt_claims *to)
{
    memset(to, 0, sizeof(*to));
    if (!(to->subject = strdup(from->subject)) ||
        copy_list(from->roles, from->nroles, &to->roles) != 0)
        goto fail;
    to->nroles = from->nroles;
    if (copy_list(from->scopes, from->nscopes, &to->scopes) != 0)
        goto fail;
    to->nscopes = from->nscopes;
    to->exp = from->exp;
    return 0;
fail:
    jwt_claims_free(to);
    return -1;
}

/* ---- the cache ---- */

typedef struct cache_entry {
    unsigned char hash[SHA256_DIGEST_LENGTH];
    int64_t until; /* 0: empty */
    jwt_claims claims;
} cache_entry;

struct jwt_cache {
    pthread_mutex_t mu;
    int64_t ttl_s;
    size_t n;
    cache_entry *slots; /* direct-mapped by the hash: a new token evicts its slot's */
};

jwt_cache *jwt_cache_new(size_t entries, int64_t ttl_s)
{
    jwt_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->n = entries ? entries : JWT_CACHE_DEFAULT_ENTRIES;
    c->ttl_s = ttl_s > 0 ? ttl_s : JWT_CACHE_DEFAULT_TTL_S;
    if (!(c->slots = calloc(c->n, sizeof(*c->slots)))) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

void jwt_cache_free(jwt_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        jwt_claims_free(&c->slots[i].claims);
    free(c->slots);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static cache_entry *slot_of(jwt_cache *c, const unsigned char *hash)
{
    uint64_t h = 0;
    memcpy(&h, hash, sizeof(h));
    return &c->slots[h % c->n];
}

int jwt_verify_cached(jwt_cache *c, jwks_source *src, const jwt_policy *p, const char *token,
                      size_t len, int64_t now_s, jwt_claims *out, int *hit, errdetail *e)
{
    if (hit)
        *hit = 0;
    size_t max = p->max_token_bytes && p->max_token_bytes < JWT_MAX_TOKEN_BYTES
                     ? p->max_token_bytes
                     : JWT_MAX_TOKEN_BYTES;
    if (!c || len > max)
        return jwt_verify(src, p, token, len, now_s, out, e);
    unsigned char hash[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)token, len, hash);
    pthread_mutex_lock(&c->mu);
    cache_entry *s = slot_of(c, hash);
    int found = -1;
    if (s->until && CRYPTO_memcmp(s->hash, hash, sizeof(hash)) == 0) {
        if (now_s < s->until) {
            found = claims_copy(&s->claims, out);
        } else {
            jwt_claims_free(&s->claims);
            s->until = 0;
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (found == 0) {
        if (hit)
            *hit = 1;
        return 0;
    }
    int rc = jwt_verify(src, p, token, len, now_s, out, e);
    if (rc != 0)
        return rc;
    int64_t until = out->exp < now_s + c->ttl_s ? out->exp : now_s + c->ttl_s;
    jwt_claims copy;
    if (until <= now_s || claims_copy(out, &copy) != 0)
        return 0; /* not worth keeping (expiring within the skew), or no memory: uncached */
    pthread_mutex_lock(&c->mu);
    s = slot_of(c, hash);
    jwt_claims_free(&s->claims);
    memcpy(s->hash, hash, sizeof(hash));
    s->claims = copy;
    s->until = until;
    pthread_mutex_unlock(&c->mu);
    return 0;
}
