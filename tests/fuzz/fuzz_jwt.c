/* tests/fuzz/fuzz_jwt.c — jwt_verify, jwks_parse and jwks_b64url_decode.
 *
 * The input is a token, verified against a fixed key set with one key of
 * each type (RSA, EC P-256, oct) at a fixed time. Invariants:
 *   - the only tokens accepted are the three valid ones below, byte for
 *     byte: no mutation of a signed token (its header, its claims, a
 *     non-canonical spelling of its base64url) passes, and nothing else;
 *   - a refusal is CITRUS_EUNAUTHENTICATED with a message that never
 *     quotes the input;
 *   - jwks_b64url_decode agrees with an independent decoder written from
 *     RFC 4648 §5 and RFC 7515 §2 (groups of four, no padding, canonical
 *     last character), and decodes what an independent encoder makes;
 *   - the input as a JWKS document parses to 1..JWKS_MAX_KEYS keys or an
 *     error, never a crash.
 * The keys and tokens were made once with the openssl command (RSA 2048,
 * EC P-256, 32 random bytes; exp in 2100); the private keys were not
 * kept. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwks.h"
#include "auth/jwt.h"
#include "check.h"
#include "citrus/errors.h"

#define NOW ((int64_t)1700000000)

static const char *const JWKS =
    "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"rsa1\",\"use\":\"sig\",\"alg\":\"RS256\",\"n\":\"urNrn_"
    "C6rOvYvYL2-3DdUk1zlnUtP8nWrB2LVSZhlGmnW3o6SlzPFhVbMd51BMgnJhh7Tsg1f5ChVvvIVDbb0bwGFdYhVhxm85-"
    "UHlGcqLKBRuB8MKbAUHTr2DOdoLkwja79I3o6r1PBlpm2zoiVgpe49JGdaxaIdymq0imsTBVYPOryRfP5-"
    "hIM3NTIeoG1KGjxsSXtN8ZWI8Sht7WNxs3hSavGjWjotwI3TG86PHQVfX70G5bkI82OsScCyD0rDoSVqUbAEw-"
    "c07jiCreKds4WghejgYl0_p8XRmCLftqb6ttG2Wz-lEIVcBauWkFao5_U5ea_ipRjzCVSWHLkCQ\",\"e\":\"AQAB\"},"
    "{\"kty\":\"EC\",\"kid\":\"ec1\",\"crv\":\"P-256\",\"x\":"
    "\"0xFoeh2tMVs3og6SSq5bnBAjXBS6rTavRr5UOCC8kuw\",\"y\":"
    "\"iGO0RLUPf4uNxfVP3boBv2tx2N9W55GHXvLBNn0V9qg\"},{\"kty\":\"oct\",\"kid\":\"hs1\",\"k\":"
    "\"gOh2L0bFVkTjK9qYc2FeYKgRx3cxDR9vZG_HUd4JZKQ\"}]}";

static const char *const VALID[] = {
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InJzYTEifQ."
    "eyJpc3MiOiJodHRwczovL2lzc3Vlci50ZXN0IiwiYXVkIjpbIngiLCJjaXRydXMiXSwic3ViIjoiZnV6eiIsImlhdCI6MT"
    "YwMDAwMDAwMCwibmJmIjoxNjAwMDAwMDAwLCJleHAiOjQxMDI0NDQ4MDAsInJvbGVzIjpbImFkbWluIiwicmVhZGVyIl0s"
    "InRlbmFudHMiOiJ0MSB0MiJ9.UK73zHoo2bnRvhXmjUQ-5QJqjsAsyYiFR_yUdq6CkQ_5RUpFkdGMnfi9OOTNMXF9r8_"
    "au1iMSH_ubhYIZAN34zwXbvbNiO8hGAlDFA8Dj7ob8pELSmJ9X2Vv6Q-"
    "PZYsi7PIIQDZVONAz9BmuMWpQOanUDZCVwhsuLeV--"
    "sOSFWhsn1mPSnBGIadotYXpsha0ZXjYsp2p0Ap5jABWPwp6Hi2C48j-ECv8Rr0B5X-HeLSo2IZ8CjvhU13mhIE5fL_"
    "3SxBjFwNa56Aq8e65CytX81ysc2Xg8vPg4263reE7pLWqi8s0L6yLgED3umg1NUyQxGLTfMO4X260MY13pCnf7w",
    "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImVjMSJ9."
    "eyJpc3MiOiJodHRwczovL2lzc3Vlci50ZXN0IiwiYXVkIjpbIngiLCJjaXRydXMiXSwic3ViIjoiZnV6eiIsImlhdCI6MT"
    "YwMDAwMDAwMCwibmJmIjoxNjAwMDAwMDAwLCJleHAiOjQxMDI0NDQ4MDAsInJvbGVzIjpbImFkbWluIiwicmVhZGVyIl0s"
    "InRlbmFudHMiOiJ0MSB0MiJ9."
    "18WPtNR7ZTWtzrOEsWoYTMvyagVf5lLLJzWgwJy1wfWzZFcU48Gyohd4G2TRazPZ7kgeBqZ2QyN40Bhflu6blA",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImhzMSJ9."
    "eyJpc3MiOiJodHRwczovL2lzc3Vlci50ZXN0IiwiYXVkIjpbIngiLCJjaXRydXMiXSwic3ViIjoiZnV6eiIsImlhdCI6MT"
    "YwMDAwMDAwMCwibmJmIjoxNjAwMDAwMDAwLCJleHAiOjQxMDI0NDQ4MDAsInJvbGVzIjoid3JpdGVyIiwidGVuYW50cyI6"
    "InQxIHQyIn0.WaALIeWsEi6I-EaSXLDh1BEnqI4Cm3I8Cg_wgJ3De0w",
};
#define NVALID (sizeof(VALID) / sizeof(VALID[0]))

static const jwt_policy policy = {
    .issuer = "https://issuer.test", .audience = "citrus", .skew_s = 60};

static jwks_source *src;

/* RFC 4648 §5 alphabet */
static int value(uint8_t c)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char *p = c ? memchr(a, c, 64) : NULL;
    return p ? (int)(p - a) : -1;
}

/* Groups of four characters give three bytes; a last group of two or three
 * gives one or two, and the bits it does not use must be zero; a last group
 * of one is no encoding at all. Returns the length or -1. */
static long oracle_decode(const uint8_t *t, size_t n, uint8_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        size_t g = n - i < 4 ? n - i : 4;
        if (g == 1)
            return -1;
        uint32_t v = 0;
        for (size_t k = 0; k < 4; k++) {
            int s = 0;
            if (k < g && (s = value(t[i + k])) < 0)
                return -1;
            v = v << 6 | (uint32_t)s;
        }
        size_t bytes = g - 1;
        if (bytes < 3 && (v & (bytes == 1 ? 0xffffu : 0xffu)) != 0)
            return -1;
        for (size_t k = 0; k < bytes; k++)
            out[o++] = (uint8_t)(v >> (16 - 8 * k));
    }
    return (long)o;
}

static size_t oracle_encode(const uint8_t *p, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        size_t g = n - i < 3 ? n - i : 3;
        uint32_t v = 0;
        for (size_t k = 0; k < 3; k++)
            v = v << 8 | (k < g ? p[i + k] : 0);
        for (size_t k = 0; k < g + 1; k++)
            out[o++] = a[(v >> (18 - 6 * k)) & 63];
    }
    return o;
}

static void check_b64url(const uint8_t *data, size_t size)
{
    uint8_t *want = malloc(size + 3), *got = malloc(size + 3);
    char *enc = malloc(size / 3 * 4 + 4);
    FUZZ_CHECK(want && got && enc, "out of memory");
    long wn = oracle_decode(data, size, want);
    size_t gn = 0;
    int rc = jwks_b64url_decode((const char *)data, size, got, size + 3, &gn);
    FUZZ_CHECK((rc == 0) == (wn >= 0), "decoder says %d, oracle %ld", rc, wn);
    if (rc == 0)
        FUZZ_CHECK(gn == (size_t)wn && memcmp(got, want, gn) == 0, "decoded bytes differ");
    /* the input as bytes: encoded independently, decoded back */
    size_t en = oracle_encode(data, size, enc);
    rc = jwks_b64url_decode(enc, en, got, size + 3, &gn);
    FUZZ_CHECK(rc == 0 && gn == size && memcmp(got, data, size) == 0, "round trip failed");
    free(want);
    free(got);
    free(enc);
}

static void check_verdict(const uint8_t *data, size_t size)
{
    jwt_claims c;
    errdetail e = {0};
    int rc = jwt_verify(src, &policy, (const char *)data, size, NOW, &c, &e);
    bool known = false;
    for (size_t i = 0; i < NVALID; i++)
        known |= size == strlen(VALID[i]) && memcmp(data, VALID[i], size) == 0;
    if (rc == 0) {
        FUZZ_CHECK(known, "accepted a token that is not one of the valid ones");
        FUZZ_CHECK(c.subject && strcmp(c.subject, "fuzz") == 0 && c.nroles >= 1 && c.nscopes == 2,
                   "claims of an accepted token");
        jwt_claims_free(&c);
        return;
    }
    FUZZ_CHECK(!known, "refused a valid token: %s", e.message);
    FUZZ_CHECK(rc == CITRUS_EUNAUTHENTICATED || rc == CITRUS_ENOMEM, "rc %d", rc);
    FUZZ_CHECK(e.code == rc && e.message[0] != '\0', "no message");
    FUZZ_CHECK(c.subject == NULL && c.roles == NULL && c.scopes == NULL, "claims left on refusal");
    /* the message never quotes the input (16 bytes of it or more) */
    if (size >= 16)
        FUZZ_CHECK(!memmem(e.message, strlen(e.message), data, size), "message quotes the token");
}

static void check_jwks(const uint8_t *data, size_t size)
{
    jwks *k = NULL;
    errdetail e = {0};
    if (jwks_parse((const char *)data, size, &k, &e) == 0) {
        FUZZ_CHECK(jwks_count(k) >= 1 && jwks_count(k) <= JWKS_MAX_KEYS, "key count");
        jwks_free(k);
    } else {
        FUZZ_CHECK(k == NULL && e.code != 0, "failed parse left a set or no code");
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    errdetail e = {0};
    jwks_source_options o = {.json = JWKS};
    FUZZ_CHECK(jwks_source_new(&o, &src, &e) == 0, "%s", e.message);
    for (size_t i = 0; i < NVALID; i++) {
        jwt_claims c;
        FUZZ_CHECK(jwt_verify(src, &policy, VALID[i], strlen(VALID[i]), NOW, &c, &e) == 0,
                   "valid token %zu: %s", i, e.message);
        jwt_claims_free(&c);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_verdict(data, size);
    check_b64url(data, size);
    check_jwks(data, size);
    return 0;
}
