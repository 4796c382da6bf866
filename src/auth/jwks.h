/* auth/jwks.h — JSON Web Key Sets (RFC 7517) for verifying JWTs: parsing a
 * set into OpenSSL keys, and a key source that loads one from a file, a URL
 * or an OpenID Connect issuer's discovery document, keeps it, and fetches it
 * again when a token names a key it does not hold (an issuer rotated its
 * keys), at most once every 30 s so that tokens with made-up kids cannot
 * turn the node into a load generator against the issuer.
 *
 * Only signing keys of the three algorithms Citrus accepts are kept: RSA
 * (RS256, at least 2048 bits), EC P-256 (ES256) and oct (HS256, at least 32
 * bytes). A key with "use" other than "sig", or an "alg" other than the one
 * its type allows, or of another type or curve, is skipped, not an error: an
 * issuer's set often holds encryption keys too. A key of a kept type that is
 * malformed makes the whole document an error. */
#ifndef CITRUS_AUTH_JWKS_H
#define CITRUS_AUTH_JWKS_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/errdetail.h"
#include "sys/clock.h"

#define JWKS_MAX_DOC_BYTES ((size_t)1024 * 1024) /* a JWKS document, file or URL */
#define JWKS_MAX_KEYS 64                         /* keys kept from one document */
#define JWKS_MAX_KID_BYTES 256
#define JWKS_MIN_RSA_BITS 2048
#define JWKS_MIN_OCT_BYTES 32 /* RFC 7518 3.2: an HS256 key is at least the hash's size */
#define JWKS_DEFAULT_REFETCH_MS 30000
#define JWKS_DEFAULT_MAX_AGE_MS 3600000
#define JWKS_DEFAULT_FETCH_TIMEOUT_MS 5000

/* The key types, each tied to the one JWS algorithm it may verify. */
typedef enum jwk_kty {
    JWK_OCT = 1, /* HS256 */
    JWK_RSA,     /* RS256 */
    JWK_EC,      /* ES256 (P-256) */
} jwk_kty;

typedef struct jwk {
    char *kid;             /* NULL when the key has none */
    jwk_kty kty;           /* the algorithm it verifies: jwk_kty_alg(kty) */
    EVP_PKEY *pkey;        /* RSA / EC public key; NULL for oct */
    unsigned char *secret; /* oct: the HMAC key (secret_len bytes); NULL otherwise */
    size_t secret_len;
} jwk;

/* An immutable parsed key set, reference-counted: a source hands out
 * references (jwks_source_get) that stay valid after the source replaced
 * the set. */
typedef struct jwks jwks;

/* "HS256", "RS256" or "ES256". */
const char *jwk_kty_alg(jwk_kty kty);
/* "oct", "RSA" or "EC". */
const char *jwk_kty_name(jwk_kty kty);

/* Parses a JWKS document ({"keys": [...]}, duplicate names refused, at most
 * JWKS_MAX_DOC_BYTES) into *out (refcount 1). CITRUS_EBADJSON when it is
 * not such a document, CITRUS_EINVAL when a key is malformed or none is
 * usable; e says which key (by index and kid), never its material. */
int jwks_parse(const char *json, size_t len, jwks **out, errdetail *e);
/* Another reference to k (k returned). */
jwks *jwks_ref(jwks *k);
/* Drops a reference; frees at the last. NULL is a no-op. */
void jwks_free(jwks *k);
/* Number of keys kept, and the i-th. */
size_t jwks_count(const jwks *k);
const jwk *jwks_key(const jwks *k, size_t i);

/* The key for a token's header: kid (NULL when the token has none) and the
 * type its alg needs. With a kid: the key with that kid and type. Without:
 * the set's only key of that type, if it has exactly one.
 * Returns the key, or NULL with *kid_known telling whether some key (of
 * another type) has that kid — a type mismatch, not an unknown key. */
const jwk *jwks_find(const jwks *k, const char *kid, jwk_kty kty, bool *kid_known);

/* Strict base64url (RFC 4648 §5) without padding, as JWS uses: the alphabet
 * [A-Za-z0-9_-] only, no '=', a length that is not 1 mod 4, and the unused
 * low bits of the last character zero (one text per byte string). Decodes
 * n characters of s into out (room for cap bytes; n / 4 * 3 + 2 is
 * enough); 0 with *outlen set, or -1 when s is not such text or does not
 * fit. */
int jwks_b64url_decode(const char *s, size_t n, unsigned char *out, size_t cap, size_t *outlen);

/* ---- a key source ---- */

typedef struct jwks_source jwks_source;

typedef struct jwks_source_options {
    /* Exactly one of these four. URLs are https://, or http:// to a
     * loopback address (127.0.0.0/8, [::1], localhost). */
    const char *file;             /* a JWKS file, read again on refetch */
    const char *url;              /* a JWKS URL */
    const char *issuer_discovery; /* an issuer: its /.well-known/openid-configuration
                                     gives jwks_uri (its "issuer" must match) */
    const char *json;             /* an inline JWKS document (never refetched) */
    const sysclock *clock;        /* NULL: the real clock */
    long fetch_timeout_ms;        /* 0: JWKS_DEFAULT_FETCH_TIMEOUT_MS */
    int64_t min_refetch_ms;       /* 0: JWKS_DEFAULT_REFETCH_MS; the least time between fetches */
    int64_t max_age_ms;           /* 0: JWKS_DEFAULT_MAX_AGE_MS; a set this old is fetched again
                                     (when allowed) on its next use; a failed fetch keeps it */
} jwks_source_options;

/* Creates a source and loads its set once: a source that cannot load is an
 * error here (CITRUS_EINVAL for options or a document, CITRUS_EIO for a
 * file, CITRUS_EUNAVAILABLE / CITRUS_ETIMEOUT for a URL), not later. */
int jwks_source_new(const jwks_source_options *o, jwks_source **out, errdetail *e);
/* NULL is a no-op. No call may be in progress. */
void jwks_source_free(jwks_source *s);

/* A reference to the current set (release with jwks_free); refetches first
 * when the set is older than max_age_ms and a fetch is allowed. Never NULL
 * after a successful jwks_source_new. Thread-safe. */
jwks *jwks_source_get(jwks_source *s);

/* Fetches the set again if min_refetch_ms passed since the last fetch (or
 * attempt): 1 when a new set was loaded, 0 when not allowed yet (or another
 * thread is fetching), or a CITRUS_E* error (the old set stays; e says why).
 * Called on a token with an unknown kid. Thread-safe. */
int jwks_source_refetch(jwks_source *s, errdetail *e);

/* Fetches attempted so far, the first one included (tests and metrics). */
uint64_t jwks_source_fetches(const jwks_source *s);

#endif
