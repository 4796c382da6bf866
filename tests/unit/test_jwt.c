/* test_jwt.c — auth/jwt, auth/jwks and auth/authz_header: tokens verified
 * and refused, key sets parsed, rotated and fetched, the verified-token
 * cache, the Authorization header.
 *
 * Keys are made at test time with the openssl command (RSA 2048, EC P-256,
 * an HS256 secret from openssl rand) into a temporary directory; the test
 * reads them back with OpenSSL, writes their public halves as JWKs and
 * signs its tokens itself (EVP_DigestSign, HMAC). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/authz_header.h"
#include "auth/jwks.h"
#include "auth/jwt.h"
#include "citrus/errors.h"
#include "support_fake_http.h"
#include "sys/clock.h"

#define NOW ((int64_t)1700000000)
#define SKEW 60
#define ISSUER "https://issuer.test/tenant"
#define AUDIENCE "citrus"

static char dir[64];
static EVP_PKEY *rsa1, *rsa2, *ec1, *rsa_small;
static unsigned char hs[32];
static sysclock *clk;
static jwks_source *src; /* from jwks.json: rsa1, ec1, hs1 and an encryption key */

static const jwt_policy policy = {.issuer = ISSUER, .audience = AUDIENCE, .skew_s = SKEW};

/* ---- making keys, JWKs and tokens ---- */

static char *b64url(const unsigned char *p, size_t n)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = malloc(n / 3 * 4 + 5), *o = out;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        for (int k = 3; k >= 0; k--)
            *o++ = a[(v >> (6 * k)) & 63];
    }
    if (n - i == 1) {
        *o++ = a[p[i] >> 2];
        *o++ = a[(p[i] & 3) << 4];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 8 | p[i + 1];
        *o++ = a[v >> 10];
        *o++ = a[(v >> 4) & 63];
        *o++ = a[(v & 15) << 2];
    }
    *o = '\0';
    return out;
}

static char *b64url_str(const char *s)
{
    return b64url((const unsigned char *)s, strlen(s));
}

static void run(const char *cmd)
{
    char full[512];
    snprintf(full, sizeof(full), "cd %s && %s 2>/dev/null", dir, cmd);
    assert_int_equal(system(full), 0);
}

static EVP_PKEY *load_key(const char *name)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(k);
    return k;
}

static char *bn_b64(const EVP_PKEY *k, const char *param, int pad)
{
    BIGNUM *bn = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
    unsigned char buf[1024];
    int n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    BN_free(bn);
    assert_true(n > 0);
    return b64url(buf, (size_t)n);
}

/* A JSON string of a malloc'd string, which it frees. */
static json_t *jtake(char *s)
{
    json_t *v = json_string(s);
    free(s);
    return v;
}

static json_t *jwk_of(EVP_PKEY *k, const char *kid)
{
    json_t *o = json_object();
    if (kid)
        json_object_set_new(o, "kid", json_string(kid));
    if (EVP_PKEY_is_a(k, "RSA")) {
        json_object_set_new(o, "kty", json_string("RSA"));
        json_object_set_new(o, "n", jtake(bn_b64(k, OSSL_PKEY_PARAM_RSA_N, 0)));
        json_object_set_new(o, "e", jtake(bn_b64(k, OSSL_PKEY_PARAM_RSA_E, 0)));
    } else {
        json_object_set_new(o, "kty", json_string("EC"));
        json_object_set_new(o, "crv", json_string("P-256"));
        json_object_set_new(o, "x", jtake(bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_X, 32)));
        json_object_set_new(o, "y", jtake(bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_Y, 32)));
    }
    return o;
}

static json_t *jwk_oct(const unsigned char *k, size_t n, const char *kid)
{
    json_t *o = json_pack("{s:s, s:s, s:s}", "kty", "oct", "kid", kid, "alg", "HS256");
    json_object_set_new(o, "k", jtake(b64url(k, n)));
    return o;
}

static void write_jwks(json_t *keys)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/jwks.json", dir);
    json_t *doc = json_pack("{s:o}", "keys", keys);
    assert_int_equal(json_dump_file(doc, path, 0), 0);
    json_decref(doc);
}

static json_t *base_keys(void)
{
    json_t *enc = jwk_of(rsa2, "enc1");
    json_object_set_new(enc, "use", json_string("enc"));
    json_t *rsa = jwk_of(rsa1, "rsa1");
    json_object_set_new(rsa, "use", json_string("sig"));
    json_object_set_new(rsa, "alg", json_string("RS256"));
    return json_pack("[o, o, o, o]", rsa, jwk_of(ec1, "ec1"), jwk_oct(hs, sizeof(hs), "hs1"), enc);
}

typedef enum { SIGN_RSA1, SIGN_RSA2, SIGN_EC1, SIGN_HS, SIGN_NONE } signer;

/* signature over input with the key; HMAC with (secret, n) when given */
static char *sign(signer s, const char *input, const unsigned char *secret, size_t n)
{
    unsigned char sig[1024];
    size_t siglen = sizeof(sig);
    if (s == SIGN_NONE)
        return strdup("");
    if (s == SIGN_HS) {
        unsigned int len = 0;
        if (!secret) {
            secret = hs;
            n = sizeof(hs);
        }
        HMAC(EVP_sha256(), secret, (int)n, (const unsigned char *)input, strlen(input), sig, &len);
        return b64url(sig, len);
    }
    EVP_PKEY *k = s == SIGN_RSA1 ? rsa1 : s == SIGN_RSA2 ? rsa2 : ec1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k), 1);
    assert_int_equal(EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)input, strlen(input)),
                     1);
    EVP_MD_CTX_free(ctx);
    if (s != SIGN_EC1)
        return b64url(sig, siglen);
    /* DER ECDSA-Sig-Value -> JWS r || s */
    const unsigned char *p = sig;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
    unsigned char raw[64];
    BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32);
    ECDSA_SIG_free(es);
    return b64url(raw, 64);
}

/* header.payload.signature from JSON texts */
static char *token_raw(const char *hdr, const char *payload, signer s, const unsigned char *secret,
                       size_t n)
{
    char *h = b64url_str(hdr), *p = b64url_str(payload);
    char *input = malloc(strlen(h) + strlen(p) + 2);
    sprintf(input, "%s.%s", h, p);
    char *sig = sign(s, input, secret, n);
    char *tok = malloc(strlen(input) + strlen(sig) + 2);
    sprintf(tok, "%s.%s", input, sig);
    free(h);
    free(p);
    free(input);
    free(sig);
    return tok;
}

static json_t *claims(void)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:[s,s], s:[s,s]}", "iss", ISSUER, "aud", AUDIENCE,
                     "sub", "user-1", "iat", (json_int_t)NOW - 10, "exp", (json_int_t)NOW + 600,
                     "roles", "admin", "reader", "tenants", "t1", "t2");
}

static char *claims_text(void)
{
    json_t *c = claims();
    char *s = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    return s;
}

static const char *alg_name(signer s)
{
    return s == SIGN_HS ? "HS256" : s == SIGN_EC1 ? "ES256" : "RS256";
}

/* A token signed by s with kid (NULL: none) over c (taken). */
static char *token(signer s, const char *kid, json_t *c)
{
    json_t *h = json_pack("{s:s, s:s}", "alg", alg_name(s), "typ", "JWT");
    if (kid)
        json_object_set_new(h, "kid", json_string(kid));
    char *hs_ = json_dumps(h, JSON_COMPACT), *ps = json_dumps(c, JSON_COMPACT);
    char *t = token_raw(hs_, ps, s, NULL, 0);
    free(hs_);
    free(ps);
    json_decref(h);
    json_decref(c);
    return t;
}

static int verify(const char *tok, int64_t now, jwt_claims *c, errdetail *e)
{
    return jwt_verify(src, &policy, tok, strlen(tok), now, c, e);
}

/* Refused with a message holding want. */
static void refused(const char *tok, const char *want)
{
    jwt_claims c;
    errdetail e = {0};
    int rc = verify(tok, NOW, &c, &e);
    if (rc != CITRUS_EUNAUTHENTICATED || !strstr(e.message, want))
        fail_msg("want refusal with \"%s\", got %d \"%s\"", want, rc, e.message);
    assert_null(c.subject);
    /* a message never quotes the token */
    assert_null(strstr(e.message, tok));
}

static void accepted(const char *tok, int64_t now)
{
    jwt_claims c;
    errdetail e = {0};
    int rc = verify(tok, now, &c, &e);
    if (rc != 0)
        fail_msg("refused: %s", e.message);
    jwt_claims_free(&c);
}

/* ---- fixture ---- */

static int setup(void **state)
{
    strcpy(dir, "/tmp/citrus-jwt.XXXXXX");
    assert_non_null(mkdtemp(dir));
    run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa1.pem");
    run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa2.pem");
    run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out small.pem");
    run("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec1.pem");
    run("openssl rand -out hs.key 32");
    rsa1 = load_key("rsa1.pem");
    rsa2 = load_key("rsa2.pem");
    rsa_small = load_key("small.pem");
    ec1 = load_key("ec1.pem");
    char path[128];
    snprintf(path, sizeof(path), "%s/hs.key", dir);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(hs, 1, sizeof(hs), f), sizeof(hs));
    fclose(f);

    write_jwks(base_keys());
    clk = clock_test_new(1000000, NOW * 1000);
    snprintf(path, sizeof(path), "%s/jwks.json", dir);
    errdetail e = {0};
    jwks_source_options o = {.file = path, .clock = clk};
    if (jwks_source_new(&o, &src, &e) != 0)
        fail_msg("%s", e.message);
    return 0;
}

static int teardown(void **state)
{
    jwks_source_free(src);
    clock_test_free(clk);
    EVP_PKEY_free(rsa1);
    EVP_PKEY_free(rsa2);
    EVP_PKEY_free(rsa_small);
    EVP_PKEY_free(ec1);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- accepted ---- */

static void test_rs256_accepted(void **state)
{
    json_t *c = claims();
    json_object_set_new(c, "aud", json_pack("[s, s]", "other", AUDIENCE));
    char *t = token(SIGN_RSA1, "rsa1", c);
    jwt_claims out;
    errdetail e = {0};
    assert_int_equal(verify(t, NOW, &out, &e), 0);
    assert_string_equal(out.subject, "user-1");
    assert_int_equal(out.nroles, 2);
    assert_string_equal(out.roles[0], "admin");
    assert_string_equal(out.roles[1], "reader");
    assert_int_equal(out.nscopes, 2);
    assert_string_equal(out.scopes[1], "t2");
    assert_int_equal(out.exp, NOW + 600);
    jwt_claims_free(&out);
    free(t);
}

static void test_es256_accepted(void **state)
{
    char *t = token(SIGN_EC1, "ec1", claims());
    accepted(t, NOW);
    free(t);
}

static void test_hs256_accepted(void **state)
{
    json_t *c = claims();
    json_object_set_new(c, "roles", json_string("admin reader,writer"));
    json_object_del(c, "tenants");
    char *t = token(SIGN_HS, "hs1", c);
    jwt_claims out;
    errdetail e = {0};
    assert_int_equal(verify(t, NOW, &out, &e), 0);
    assert_int_equal(out.nroles, 3);
    assert_string_equal(out.roles[2], "writer");
    assert_int_equal(out.nscopes, 0);
    jwt_claims_free(&out);
    free(t);
    /* without a kid: the set's only oct key */
    t = token(SIGN_HS, NULL, claims());
    accepted(t, NOW);
    free(t);
}

/* Azure AD: the subject from another claim; Keycloak: roles in an object. */
static void test_claim_names(void **state)
{
    json_t *c = claims();
    json_object_set_new(c, "oid", json_string("object-9"));
    json_object_set_new(c, "realm_access", json_pack("{s:[s]}", "roles", "ops"));
    char *t = token(SIGN_RSA1, "rsa1", c);
    jwt_policy p = policy;
    p.subject_claim = "oid";
    p.roles_claim = "realm_access.roles";
    jwt_claims out;
    errdetail e = {0};
    assert_int_equal(jwt_verify(src, &p, t, strlen(t), NOW, &out, &e), 0);
    assert_string_equal(out.subject, "object-9");
    assert_int_equal(out.nroles, 1);
    assert_string_equal(out.roles[0], "ops");
    jwt_claims_free(&out);
    free(t);
}

/* ---- refused: claims ---- */

static void test_expired(void **state)
{
    json_t *c = claims();
    json_object_set_new(c, "exp", json_integer(NOW - SKEW));
    char *t = token(SIGN_RSA1, "rsa1", c);
    refused(t, "expired");
    free(t);
    c = claims();
    json_object_set_new(c, "exp", json_integer(NOW - SKEW + 1)); /* just inside the skew */
    t = token(SIGN_RSA1, "rsa1", c);
    accepted(t, NOW);
    free(t);
    c = claims();
    json_object_del(c, "exp");
    t = token(SIGN_RSA1, "rsa1", c);
    refused(t, "no 'exp' claim");
    free(t);
}

static void test_nbf_iat_future(void **state)
{
    json_t *c = claims();
    json_object_set_new(c, "nbf", json_integer(NOW + SKEW + 1));
    char *t = token(SIGN_RSA1, "rsa1", c);
    refused(t, "not valid yet");
    free(t);
    c = claims();
    json_object_set_new(c, "nbf", json_integer(NOW + SKEW));
    t = token(SIGN_RSA1, "rsa1", c);
    accepted(t, NOW);
    free(t);
    c = claims();
    json_object_set_new(c, "iat", json_integer(NOW + SKEW + 100));
    t = token(SIGN_RSA1, "rsa1", c);
    refused(t, "issued in the future");
    free(t);
}

static void test_wrong_iss_aud(void **state)
{
    json_t *c = claims();
    json_object_set_new(c, "iss", json_string("https://evil.test/tenant"));
    char *t = token(SIGN_RSA1, "rsa1", c);
    refused(t, "issuer");
    free(t);
    c = claims();
    json_object_set_new(c, "aud", json_string("someone-else"));
    t = token(SIGN_RSA1, "rsa1", c);
    refused(t, "audience");
    free(t);
    c = claims();
    json_object_set_new(c, "aud", json_pack("[s, s]", "a", "citrus2"));
    t = token(SIGN_RSA1, "rsa1", c);
    refused(t, "audience");
    free(t);
    c = claims();
    json_object_del(c, "aud");
    t = token(SIGN_RSA1, "rsa1", c);
    refused(t, "audience");
    free(t);
}

static void test_missing_roles(void **state)
{
    json_t *c = claims();
    json_object_del(c, "roles");
    char *t = token(SIGN_RSA1, "rsa1", c);
    refused(t, "token has no 'roles' claim");
    free(t);
    c = claims();
    json_object_set_new(c, "roles", json_integer(3));
    t = token(SIGN_RSA1, "rsa1", c);
    refused(t, "'roles' is not an array");
    free(t);
    c = claims();
    json_object_del(c, "sub");
    t = token(SIGN_RSA1, "rsa1", c);
    refused(t, "no 'sub' claim");
    free(t);
}

/* ---- refused: algorithms and keys ---- */

static void test_alg_none(void **state)
{
    char *p = claims_text();
    char *t = token_raw("{\"alg\":\"none\"}", p, SIGN_NONE, NULL, 0);
    assert_int_equal(t[strlen(t) - 1], '.'); /* no signature part */
    refused(t, "\"none\" is not allowed");
    free(t);
    /* with a signature part, and with a kid naming a real key */
    t = token_raw("{\"alg\":\"none\",\"kid\":\"hs1\"}", p, SIGN_HS, NULL, 0);
    refused(t, "\"none\" is not allowed");
    free(t);
    t = token_raw("{\"alg\":\"HS512\",\"kid\":\"hs1\"}", p, SIGN_HS, NULL, 0);
    refused(t, "not one of HS256, RS256, ES256");
    free(t);
    free(p);
}

/* The classic confusion: alg HS256 with the RSA public key (its PEM, or its
 * DER) as the HMAC secret, hoping the verifier feeds the key it has for the
 * kid to HMAC. */
static void test_hs256_with_rsa_public_key(void **state)
{
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, rsa1), 1);
    char *pem = NULL;
    long pemlen = BIO_get_mem_data(bio, &pem);
    unsigned char *der = NULL;
    int derlen = i2d_PUBKEY(rsa1, &der);
    assert_true(derlen > 0);
    char *p = claims_text();
    const char *hdrs[] = {"{\"alg\":\"HS256\",\"kid\":\"rsa1\"}", "{\"alg\":\"HS256\"}"};
    for (size_t i = 0; i < 2; i++) {
        char *t = token_raw(hdrs[i], p, SIGN_HS, (const unsigned char *)pem, (size_t)pemlen);
        refused(t, i == 0 ? "not of type oct" : "bad signature");
        free(t);
        t = token_raw(hdrs[i], p, SIGN_HS, der, (size_t)derlen);
        refused(t, i == 0 ? "not of type oct" : "bad signature");
        free(t);
    }
    free(p);
    OPENSSL_free(der);
    BIO_free(bio);
}

static void test_kid_of_other_type(void **state)
{
    char *t = token(SIGN_RSA1, "ec1", claims());
    refused(t, "not of type RSA");
    free(t);
    /* an ES256 token with the RSA key's kid */
    t = token(SIGN_EC1, "rsa1", claims());
    refused(t, "not of type EC");
    free(t);
    /* the encryption key is not in the set at all */
    t = token(SIGN_RSA2, "enc1", claims());
    refused(t, "unknown kid");
    free(t);
}

static void test_unknown_kid(void **state)
{
    char *t = token(SIGN_RSA1, "nobody", claims());
    refused(t, "unknown kid");
    free(t);
    /* no kid, and two RSA keys would be ambiguous: here one, but signed by another */
    t = token(SIGN_RSA2, NULL, claims());
    refused(t, "bad signature");
    free(t);
}

/* one byte of a decoded part changed, the part re-encoded */
static char *tamper(const char *tok, int part, size_t at)
{
    char *t = strdup(tok);
    char *d1 = strchr(t, '.'), *d2 = strchr(d1 + 1, '.');
    char *start = part == 1 ? d1 + 1 : d2 + 1;
    size_t n = part == 1 ? (size_t)(d2 - start) : strlen(start);
    unsigned char buf[8192];
    size_t len = 0;
    assert_int_equal(jwks_b64url_decode(start, n, buf, sizeof(buf), &len), 0);
    buf[at % len] ^= 0x01;
    char *enc = b64url(buf, len);
    char *out = malloc(strlen(tok) + 8);
    if (part == 1)
        sprintf(out, "%.*s.%s.%s", (int)(d1 - t), t, enc, d2 + 1);
    else
        sprintf(out, "%.*s.%s", (int)(d2 - t), t, enc);
    free(enc);
    free(t);
    return out;
}

static void test_tampered(void **state)
{
    signer ss[] = {SIGN_RSA1, SIGN_EC1, SIGN_HS};
    const char *kids[] = {"rsa1", "ec1", "hs1"};
    for (size_t i = 0; i < 3; i++) {
        char *t = token(ss[i], kids[i], claims());
        accepted(t, NOW);
        char *p = tamper(t, 1, 30);
        refused(p, "bad signature");
        char *s = tamper(t, 2, 5);
        refused(s, "bad signature");
        free(p);
        free(s);
        free(t);
    }
}

static void test_too_big(void **state)
{
    json_t *c = claims();
    char *pad = malloc(7000);
    memset(pad, 'x', 6999);
    pad[6999] = '\0';
    json_object_set_new(c, "pad", json_string(pad));
    free(pad);
    char *t = token(SIGN_RSA1, "rsa1", c);
    assert_true(strlen(t) > 8192);
    refused(t, "over the 8192-byte limit");
    free(t);
}

static void test_malformed(void **state)
{
    char *t = token(SIGN_RSA1, "rsa1", claims());
    accepted(t, NOW);
    char *d1 = strchr(t, '.'), *d2 = strchr(d1 + 1, '.');
    char buf[4096];

    snprintf(buf, sizeof(buf), "%.*s", (int)(d2 - t), t); /* two parts */
    refused(buf, "three base64url parts");
    snprintf(buf, sizeof(buf), "%s.abc", t); /* four parts */
    refused(buf, "three base64url parts");
    snprintf(buf, sizeof(buf), "%s=", t); /* padding */
    refused(buf, "signature is not base64url");
    snprintf(buf, sizeof(buf), "%.*s+%s", (int)(d2 - t) - 1, t, d2); /* '+' is base64, not url */
    refused(buf, "bad signature");
    snprintf(buf, sizeof(buf), "*%s", t); /* bad character in the header */
    refused(buf, "header is not base64url");
    snprintf(buf, sizeof(buf), "%.*s*.%s", (int)(d2 - t), t, d2 + 1);
    refused(buf, "bad signature");
    snprintf(buf, sizeof(buf), "..%s", d2 + 1);
    refused(buf, "empty header or payload");
    free(t);

    char *p = claims_text();
    t = token_raw("not json", p, SIGN_RSA1, NULL, 0);
    refused(t, "header is not base64url of a JSON object");
    free(t);
    t = token_raw("{\"alg\":\"RS256\",\"alg\":\"RS256\",\"kid\":\"rsa1\"}", p, SIGN_RSA1, NULL, 0);
    refused(t, "header is not base64url of a JSON object");
    free(t);
    t = token_raw("{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"crit\":[\"x\"]}", p, SIGN_RSA1, NULL, 0);
    refused(t, "crit");
    free(t);
    free(p);
    /* a payload with a duplicate name, correctly signed */
    char dup[512];
    snprintf(dup, sizeof(dup),
             "{\"iss\":\"%s\",\"aud\":\"%s\",\"sub\":\"a\",\"exp\":%lld,\"roles\":[\"admin\"],"
             "\"roles\":[\"reader\"]}",
             ISSUER, AUDIENCE, (long long)NOW + 100);
    t = token_raw("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", dup, SIGN_RSA1, NULL, 0);
    refused(t, "payload is not base64url of a JSON object");
    free(t);
}

/* Non-canonical base64url: the same bytes spelled otherwise. */
static void test_b64url(void **state)
{
    unsigned char out[16];
    size_t n = 0;
    assert_int_equal(jwks_b64url_decode("QUJD", 4, out, sizeof(out), &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(out, "ABC", 3);
    assert_int_equal(jwks_b64url_decode("QQ", 2, out, sizeof(out), &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(jwks_b64url_decode("QR", 2, out, sizeof(out), &n), -1);   /* low bits set */
    assert_int_equal(jwks_b64url_decode("QQ==", 4, out, sizeof(out), &n), -1); /* padding */
    assert_int_equal(jwks_b64url_decode("Q", 1, out, sizeof(out), &n), -1);
    assert_int_equal(jwks_b64url_decode("a+b/", 4, out, sizeof(out), &n), -1);
    assert_int_equal(jwks_b64url_decode("-_-_", 4, out, sizeof(out), &n), 0);
    assert_int_equal(jwks_b64url_decode("QUJD", 4, out, 2, &n), -1); /* does not fit */
    assert_int_equal(jwks_b64url_decode("", 0, out, sizeof(out), &n), 0);
    assert_int_equal(n, 0);
}

/* ---- key sets ---- */

static int parse(json_t *keys, errdetail *e, size_t *count)
{
    json_t *doc = json_pack("{s:o}", "keys", keys);
    char *s = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    jwks *k = NULL;
    int rc = jwks_parse(s, strlen(s), &k, e);
    free(s);
    if (rc == 0) {
        *count = jwks_count(k);
        for (size_t i = 0; i < *count; i++)
            assert_non_null(jwks_key(k, i));
        assert_null(jwks_key(k, *count));
        jwks_free(jwks_ref(k));
        jwks_free(k);
    }
    return rc;
}

static void test_jwks_parse(void **state)
{
    errdetail e = {0};
    size_t n = 0;
    assert_int_equal(parse(base_keys(), &e, &n), 0);
    assert_int_equal(n, 3); /* the enc key skipped */

    /* skipped: a 1024-bit RSA key, a short oct key, P-384, OKP, RS512 */
    unsigned char short_k[16] = {1};
    json_t *p384 =
        json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-384", "x", "AA", "y", "AA");
    json_t *rs512 = jwk_of(rsa1, "r512");
    json_object_set_new(rs512, "alg", json_string("RS512"));
    json_t *keys = json_pack("[o, o, o, {s:s, s:s, s:s}, o, o]", jwk_of(rsa_small, "small"),
                             jwk_oct(short_k, sizeof(short_k), "short"), p384, "kty", "OKP", "crv",
                             "Ed25519", "x", "AA", rs512, jwk_of(ec1, "ok"));
    assert_int_equal(parse(keys, &e, &n), 0);
    assert_int_equal(n, 1);
    keys = json_pack("[o]", jwk_of(rsa_small, "small"));
    assert_int_equal(parse(keys, &e, &n), CITRUS_EINVAL);
    assert_non_null(strstr(e.message, "no usable signing key"));
    assert_non_null(strstr(e.message, "2048"));

    /* malformed: bad n, EC x of 31 bytes, EC point not on the curve, kid not a string */
    json_t *bad = jwk_of(rsa1, "bad-n");
    json_object_set_new(bad, "n", json_string("QQ=="));
    assert_int_equal(parse(json_pack("[o]", bad), &e, &n), CITRUS_EINVAL);
    assert_non_null(strstr(e.message, "bad-n"));
    bad = jwk_of(ec1, "short-x");
    json_object_set_new(bad, "x", jtake(b64url(short_k, 16)));
    assert_int_equal(parse(json_pack("[o]", bad), &e, &n), CITRUS_EINVAL);
    unsigned char x[32];
    memset(x, 0x11, sizeof(x));
    bad = jwk_of(ec1, "off-curve");
    json_object_set_new(bad, "x", jtake(b64url(x, 32)));
    assert_int_equal(parse(json_pack("[o]", bad), &e, &n), CITRUS_EINVAL);
    assert_non_null(strstr(e.message, "off-curve"));
    bad = jwk_of(ec1, NULL);
    json_object_set_new(bad, "kid", json_integer(1));
    assert_int_equal(parse(json_pack("[o]", bad), &e, &n), CITRUS_EINVAL);

    /* too many keys */
    keys = json_array();
    for (int i = 0; i < JWKS_MAX_KEYS + 1; i++)
        json_array_append_new(keys, jwk_oct(hs, sizeof(hs), "k"));
    assert_int_equal(parse(keys, &e, &n), CITRUS_EINVAL);
    assert_non_null(strstr(e.message, "more than 64"));

    /* documents: duplicate names, not an object, too big */
    jwks *k = NULL;
    const char *dupdoc = "{\"keys\":[],\"keys\":[]}";
    assert_int_equal(jwks_parse(dupdoc, strlen(dupdoc), &k, &e), CITRUS_EBADJSON);
    assert_int_equal(jwks_parse("[]", 2, &k, &e), CITRUS_EBADJSON);
    assert_int_equal(jwks_parse("{\"keys\":[]}", 11, &k, &e), CITRUS_EINVAL);
    size_t big = JWKS_MAX_DOC_BYTES + 1;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    assert_int_equal(jwks_parse(huge, big, &k, &e), CITRUS_EINVAL);
    free(huge);
    assert_null(k);
}

/* A token with a new kid after the file is rewritten: refused until the
 * refetch is allowed, then accepted; unknown kids fetch at most once per
 * 30 s. */
static void test_rotation(void **state)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/rot.json", dir);
    json_t *doc = json_pack("{s:[o]}", "keys", jwk_of(rsa1, "rsa1"));
    assert_int_equal(json_dump_file(doc, path, 0), 0);
    json_decref(doc);
    jwks_source *s = NULL;
    errdetail e = {0};
    jwks_source_options o = {.file = path, .clock = clk};
    assert_int_equal(jwks_source_new(&o, &s, &e), 0);
    assert_int_equal(jwks_source_fetches(s), 1);

    char *t = token(SIGN_RSA2, "rsa2", claims());
    jwt_claims c;
    clock_test_advance(clk, 1000);
    doc = json_pack("{s:[o, o]}", "keys", jwk_of(rsa1, "rsa1"), jwk_of(rsa2, "rsa2"));
    assert_int_equal(json_dump_file(doc, path, 0), 0);
    json_decref(doc);
    /* the file has the key, but the last fetch was 1 s ago */
    assert_int_equal(jwt_verify(s, &policy, t, strlen(t), NOW, &c, &e), CITRUS_EUNAUTHENTICATED);
    assert_non_null(strstr(e.message, "unknown kid"));
    assert_int_equal(jwks_source_fetches(s), 1);
    clock_test_advance(clk, 29000);
    assert_int_equal(jwt_verify(s, &policy, t, strlen(t), NOW, &c, &e), 0);
    jwt_claims_free(&c);
    assert_int_equal(jwks_source_fetches(s), 2);

    /* a flood of made-up kids: one fetch per 30 s */
    for (int i = 0; i < 100; i++) {
        char kid[32];
        snprintf(kid, sizeof(kid), "made-up-%d", i);
        char *bad = token(SIGN_RSA1, kid, claims());
        assert_int_equal(jwt_verify(s, &policy, bad, strlen(bad), NOW, &c, &e),
                         CITRUS_EUNAUTHENTICATED);
        free(bad);
        clock_test_advance(clk, 1000); /* 100 s in all */
    }
    assert_int_equal(jwks_source_fetches(s), 2 + 3);
    /* a known kid never fetches */
    uint64_t before = jwks_source_fetches(s);
    clock_test_advance(clk, 60000);
    assert_int_equal(jwt_verify(s, &policy, t, strlen(t), NOW, &c, &e), 0);
    jwt_claims_free(&c);
    assert_int_equal(jwks_source_fetches(s), before);

    /* a broken file on refetch keeps the old set */
    FILE *f = fopen(path, "w");
    fputs("{broken", f);
    fclose(f);
    assert_int_equal(jwks_source_refetch(s, &e), CITRUS_EBADJSON);
    assert_int_equal(jwt_verify(s, &policy, t, strlen(t), NOW, &c, &e), 0);
    jwt_claims_free(&c);
    free(t);
    jwks_source_free(s);
}

/* ---- URL and discovery sources against a loopback server ---- */

typedef struct served {
    pthread_mutex_t mu;
    char *jwks;
    char issuer[128];
    atomic_int jwks_gets, disco_gets;
    char disco[1200];
} served;

static void on_req(void *ctx, const fake_http_req *req, fake_http_reply *out)
{
    served *s = ctx;
    pthread_mutex_lock(&s->mu);
    if (strcmp(req->target, "/keys") == 0) {
        atomic_fetch_add(&s->jwks_gets, 1);
        out->body = s->jwks;
    } else if (strcmp(req->target, "/tenant/.well-known/openid-configuration") == 0) {
        atomic_fetch_add(&s->disco_gets, 1);
        out->body = s->disco;
    } else {
        out->status = 404;
        out->body = "{}";
    }
    pthread_mutex_unlock(&s->mu);
}

static void test_url_and_discovery(void **state)
{
    served sv = {0};
    pthread_mutex_init(&sv.mu, NULL);
    json_t *doc = json_pack("{s:[o]}", "keys", jwk_of(ec1, "ec1"));
    sv.jwks = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    fake_http *srv = fake_http_start(on_req, &sv);
    assert_non_null(srv);
    const char *base = fake_http_url(srv);
    char url[256], issuer[256];
    snprintf(url, sizeof(url), "%s/keys", base);
    snprintf(issuer, sizeof(issuer), "%s/tenant", base);
    snprintf(sv.disco, sizeof(sv.disco), "{\"issuer\":\"%s\",\"jwks_uri\":\"%s\"}", issuer, url);

    errdetail e = {0};
    jwks_source *s = NULL;
    jwks_source_options o = {.url = url, .clock = clk};
    assert_int_equal(jwks_source_new(&o, &s, &e), 0);
    assert_int_equal(atomic_load(&sv.jwks_gets), 1);
    char *t = token(SIGN_EC1, "ec1", claims());
    jwt_claims c;
    assert_int_equal(jwt_verify(s, &policy, t, strlen(t), NOW, &c, &e), 0);
    jwt_claims_free(&c);
    /* a refetch after 30 s is a second GET */
    clock_test_advance(clk, 30000);
    assert_int_equal(jwks_source_refetch(s, &e), 1);
    assert_int_equal(atomic_load(&sv.jwks_gets), 2);
    assert_int_equal(jwks_source_refetch(s, &e), 0);
    /* the set grows old: the next use fetches it again */
    clock_test_advance(clk, JWKS_DEFAULT_MAX_AGE_MS);
    jwks_free(jwks_source_get(s));
    assert_int_equal(atomic_load(&sv.jwks_gets), 3);
    jwks_source_free(s);

    /* discovery: the issuer's document names the JWKS */
    o = (jwks_source_options){.issuer_discovery = issuer, .clock = clk};
    assert_int_equal(jwks_source_new(&o, &s, &e), 0);
    assert_int_equal(atomic_load(&sv.disco_gets), 1);
    assert_int_equal(atomic_load(&sv.jwks_gets), 4);
    assert_int_equal(jwt_verify(s, &policy, t, strlen(t), NOW, &c, &e), 0);
    jwt_claims_free(&c);
    jwks_source_free(s);
    /* a document naming another issuer is refused */
    pthread_mutex_lock(&sv.mu);
    snprintf(sv.disco, sizeof(sv.disco), "{\"issuer\":\"https://evil.test\",\"jwks_uri\":\"%s\"}",
             url);
    pthread_mutex_unlock(&sv.mu);
    assert_int_equal(jwks_source_new(&o, &s, &e), CITRUS_EINVAL);
    assert_non_null(strstr(e.message, "its issuer is not"));
    /* a 404 */
    snprintf(url, sizeof(url), "%s/nothing", base);
    o = (jwks_source_options){.url = url, .clock = clk};
    assert_int_equal(jwks_source_new(&o, &s, &e), CITRUS_EUNAVAILABLE);
    assert_non_null(strstr(e.message, "404"));
    free(t);
    fake_http_stop(srv);
    free(sv.jwks);

    /* URLs: https, or http on loopback only */
    const char *refused_urls[] = {"http://example.com/keys", "ftp://127.0.0.1/keys",
                                  "http://user@127.0.0.1/keys", "http://127.0.0.1.evil.test/k",
                                  "keys.json"};
    for (size_t i = 0; i < sizeof(refused_urls) / sizeof(refused_urls[0]); i++) {
        o = (jwks_source_options){.url = refused_urls[i], .clock = clk};
        assert_int_equal(jwks_source_new(&o, &s, &e), CITRUS_EINVAL);
    }
    assert_non_null(strstr(e.message, "only https://"));
    o = (jwks_source_options){.url = "http://example.com/keys", .clock = clk};
    jwks_source_new(&o, &s, &e);
    assert_non_null(strstr(e.message, "only on loopback"));
    /* exactly one source */
    o = (jwks_source_options){.url = url, .file = "/x", .clock = clk};
    assert_int_equal(jwks_source_new(&o, &s, &e), CITRUS_EINVAL);
    o = (jwks_source_options){.file = "/nonexistent/jwks.json", .clock = clk};
    assert_int_equal(jwks_source_new(&o, &s, &e), CITRUS_EIO);
}

/* Threads verifying, through one cache, tokens with known and made-up kids
 * while the clock moves and the set is fetched again: every known token is
 * accepted, every made-up one refused (run under TSan by make tsan-unit). */
typedef struct worker {
    jwt_cache *cache;
    const char *good, *bad;
    int failures;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < 200; i++) {
        jwt_claims c;
        errdetail e;
        const char *t = i % 3 ? w->good : w->bad;
        int rc = jwt_verify_cached(w->cache, src, &policy, t, strlen(t), NOW, &c, NULL, &e);
        if ((rc == 0) != (t == w->good))
            w->failures++;
        jwt_claims_free(&c);
        if (i % 50 == 0)
            clock_test_advance(clk, 31000);
    }
    return NULL;
}

static void test_threads(void **state)
{
    jwt_cache *cache = jwt_cache_new(16, 0);
    char *good = token(SIGN_EC1, "ec1", claims()), *bad = token(SIGN_EC1, "ec-new", claims());
    worker w[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){.cache = cache, .good = good, .bad = bad};
        assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    assert_true(jwks_source_fetches(src) > 1);
    jwt_cache_free(cache);
    free(good);
    free(bad);
}

/* ---- the verified-token cache ---- */

static void test_cache(void **state)
{
    jwt_cache *cache = jwt_cache_new(8, 3600);
    assert_non_null(cache);
    json_t *c = claims();
    json_object_set_new(c, "exp", json_integer(NOW + 100));
    char *t = token(SIGN_RSA1, "rsa1", c);
    jwt_claims a, b;
    errdetail e = {0};
    int hit = -1;
    assert_int_equal(jwt_verify_cached(cache, src, &policy, t, strlen(t), NOW, &a, &hit, &e), 0);
    assert_int_equal(hit, 0);
    assert_int_equal(jwt_verify_cached(cache, src, &policy, t, strlen(t), NOW + 99, &b, &hit, &e),
                     0);
    assert_int_equal(hit, 1);
    assert_string_equal(a.subject, b.subject);
    assert_int_equal(a.nroles, b.nroles);
    assert_string_equal(a.roles[1], b.roles[1]);
    assert_int_equal(a.nscopes, b.nscopes);
    assert_string_equal(a.scopes[0], b.scopes[0]);
    assert_int_equal(b.exp, NOW + 100);
    jwt_claims_free(&b);
    /* at exp the entry is gone: verified again (accepted within the skew, not cached) */
    assert_int_equal(jwt_verify_cached(cache, src, &policy, t, strlen(t), NOW + 100, &b, &hit, &e),
                     0);
    assert_int_equal(hit, 0);
    jwt_claims_free(&b);
    assert_int_equal(jwt_verify_cached(cache, src, &policy, t, strlen(t), NOW + 101, &b, &hit, &e),
                     0);
    assert_int_equal(hit, 0);
    jwt_claims_free(&b);
    /* past the skew: refused */
    assert_int_equal(
        jwt_verify_cached(cache, src, &policy, t, strlen(t), NOW + 100 + SKEW, &b, &hit, &e),
        CITRUS_EUNAUTHENTICATED);
    /* a refused token is not cached; a tampered one misses */
    char *p = tamper(t, 1, 10);
    assert_int_equal(jwt_verify_cached(cache, src, &policy, p, strlen(p), NOW, &b, &hit, &e),
                     CITRUS_EUNAUTHENTICATED);
    assert_int_equal(jwt_verify_cached(cache, src, &policy, p, strlen(p), NOW, &b, &hit, &e),
                     CITRUS_EUNAUTHENTICATED);
    assert_int_equal(hit, 0);
    free(p);
    jwt_claims_free(&a);
    free(t);

    /* more tokens than slots: evictions, never a wrong answer */
    for (int i = 0; i < 40; i++) {
        json_t *ci = claims();
        char sub[16];
        snprintf(sub, sizeof(sub), "user-%d", i);
        json_object_set_new(ci, "sub", json_string(sub));
        char *ti = token(SIGN_HS, "hs1", ci);
        for (int k = 0; k < 2; k++) {
            assert_int_equal(
                jwt_verify_cached(cache, src, &policy, ti, strlen(ti), NOW, &b, &hit, &e), 0);
            assert_string_equal(b.subject, sub);
            jwt_claims_free(&b);
        }
        free(ti);
    }
    jwt_cache_free(cache);
    /* no cache: plain verification */
    t = token(SIGN_HS, "hs1", claims());
    assert_int_equal(jwt_verify_cached(NULL, src, &policy, t, strlen(t), NOW, &b, &hit, &e), 0);
    jwt_claims_free(&b);
    free(t);
}

/* ---- the Authorization header ---- */

static void test_authz_header(void **state)
{
    const char *tok;
    size_t n;
    errdetail e = {0};
    struct {
        const char *value, *token;
    } ok[] = {
        {"Bearer abc.def.ghi", "abc.def.ghi"},
        {"bearer abc", "abc"},
        {"BEARER   a-b_c~d+e/f==", "a-b_c~d+e/f=="},
        {"  Bearer\tabc  ", "abc"},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (authz_bearer(ok[i].value, strlen(ok[i].value), &tok, &n, &e) != 0)
            fail_msg("%s: %s", ok[i].value, e.message);
        assert_int_equal(n, strlen(ok[i].token));
        assert_memory_equal(tok, ok[i].token, n);
    }
    const char *bad[] = {"",
                         "Bearer",
                         "Bearer ",
                         "Bearerabc",
                         "Basic dXNlcjpwYXNz",
                         "Bearer a b",
                         "Bearer =abc",
                         "Bearer abc=d",
                         "Bearer a,b",
                         "Bearer a\"b",
                         "Bear er abc",
                         "Bearer abc\r\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (authz_bearer(bad[i], strlen(bad[i]), &tok, &n, &e) != CITRUS_EUNAUTHENTICATED)
            fail_msg("accepted: \"%s\"", bad[i]);
        assert_null(tok);
    }
    assert_non_null(strstr(e.message, "Authorization"));
    /* a NUL inside is not a character of the grammar */
    assert_int_equal(authz_bearer("Bearer a\0b", 10, &tok, &n, &e), CITRUS_EUNAUTHENTICATED);
    /* 8192 bytes of token, and one more */
    char *big = malloc(7 + 8193 + 1);
    memcpy(big, "Bearer ", 7);
    memset(big + 7, 'a', 8193);
    assert_int_equal(authz_bearer(big, 7 + 8192, &tok, &n, &e), 0);
    assert_int_equal(n, 8192);
    assert_int_equal(authz_bearer(big, 7 + 8193, &tok, &n, &e), CITRUS_EUNAUTHENTICATED);
    assert_non_null(strstr(e.message, "over the 8192"));
    free(big);
    authz_credentials c;
    assert_int_equal(authz_parse("ApiKey k_123=", 13, &c, &e), 0);
    assert_int_equal(c.scheme_len, 6);
    assert_memory_equal(c.scheme, "ApiKey", 6);
    assert_memory_equal(c.token, "k_123=", 6);
    assert_int_equal(authz_bearer("ApiKey k_123", 12, &tok, &n, &e), CITRUS_EUNAUTHENTICATED);
    assert_non_null(strstr(e.message, "not Bearer"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rs256_accepted),
        cmocka_unit_test(test_es256_accepted),
        cmocka_unit_test(test_hs256_accepted),
        cmocka_unit_test(test_claim_names),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_nbf_iat_future),
        cmocka_unit_test(test_wrong_iss_aud),
        cmocka_unit_test(test_missing_roles),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_hs256_with_rsa_public_key),
        cmocka_unit_test(test_kid_of_other_type),
        cmocka_unit_test(test_unknown_kid),
        cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_b64url),
        cmocka_unit_test(test_jwks_parse),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_url_and_discovery),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_cache),
        cmocka_unit_test(test_authz_header),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
