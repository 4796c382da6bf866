/* auth/jwks.c — JWKS parsing into OpenSSL keys and the key source that
 * fetches, keeps and refetches a set (see jwks.h).
 *
 * Threads: a source's set pointer and its fetch bookkeeping are under mu,
 * held only for moments; a fetch itself (file or HTTP) runs outside mu, one
 * at a time (fetching says one is under way), so verifiers keep using the
 * current set while a new one is read. */
#include "auth/jwks.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/param_build.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "citrus/errors.h"
#include "core/strbuf.h"

#define MAX_URL_BYTES 2048
#define MAX_RSA_BYTES 1024 /* 8192-bit modulus */
#define P256_COORD 32

struct jwks {
    atomic_int refs;
    size_t n;
    jwk keys[JWKS_MAX_KEYS];
};

struct jwks_source {
    const sysclock *clock;
    char *file, *url, *json; /* url: the JWKS URL (from discovery when that was asked) */
    long timeout_ms;
    int64_t min_refetch_ms, max_age_ms;
    pthread_mutex_t mu;
    jwks *set;           /* under mu; never NULL after new */
    int64_t loaded_ms;   /* under mu: when set was loaded (monotonic) */
    int64_t last_try_ms; /* under mu: when the last fetch started */
    bool fetching;       /* under mu */
    atomic_uint_fast64_t fetches;
};

const char *jwk_kty_alg(jwk_kty kty)
{
    return kty == JWK_OCT ? "HS256" : kty == JWK_RSA ? "RS256" : "ES256";
}

const char *jwk_kty_name(jwk_kty kty)
{
    return kty == JWK_OCT ? "oct" : kty == JWK_RSA ? "RSA" : "EC";
}

/* ---- base64url ---- */

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int jwks_b64url_decode(const char *s, size_t n, unsigned char *out, size_t cap, size_t *outlen)
{
    if (n % 4 == 1)
        return -1;
    size_t need = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
    if (need > cap)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* leftover bits (2 or 4) must be zero, or two texts would give one value */
    if (acc != 0)
        return -1;
    *outlen = o;
    return 0;
}

/* Decodes a JWK member that must be a base64url string of 1..max bytes into a
 * new buffer. */
static unsigned char *member_b64(json_t *o, const char *name, size_t max, size_t *len)
{
    json_t *v = json_object_get(o, name);
    if (!json_is_string(v))
        return NULL;
    size_t n = json_string_length(v);
    if (n == 0 || n > (max / 3 + 1) * 4)
        return NULL;
    unsigned char *buf = malloc(n / 4 * 3 + 3);
    if (!buf)
        return NULL;
    if (jwks_b64url_decode(json_string_value(v), n, buf, n / 4 * 3 + 3, len) != 0 || *len == 0 ||
        *len > max) {
        OPENSSL_cleanse(buf, n / 4 * 3 + 3);
        free(buf);
        return NULL;
    }
    return buf;
}

static EVP_PKEY *pkey_from(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pkey = NULL;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    if (!pkey)
        return NULL;
    /* the point is on the curve, the modulus is odd and not tiny, ... */
    EVP_PKEY_CTX *check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    int ok = check && EVP_PKEY_public_check(check) == 1;
    EVP_PKEY_CTX_free(check);
    if (!ok) {
        EVP_PKEY_free(pkey);
        return NULL;
    }
    return pkey;
}

/* RSA (n, e). Returns 1 kept, 0 skipped (*why set), -1 malformed. */
static int parse_rsa(json_t *o, jwk *k, const char **why)
{
    size_t nlen = 0, elen = 0;
    unsigned char *n = member_b64(o, "n", MAX_RSA_BYTES, &nlen);
    unsigned char *ex = member_b64(o, "e", 8, &elen);
    int rc = -1;
    BIGNUM *bn = NULL, *be = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    if (!n || !ex)
        goto out;
    size_t lead = 0;
    while (lead < nlen && n[lead] == 0)
        lead++;
    if ((nlen - lead) * 8 < JWKS_MIN_RSA_BITS) {
        *why = "an RSA key shorter than 2048 bits";
        rc = 0;
        goto out;
    }
    bn = BN_bin2bn(n, (int)nlen, NULL);
    be = BN_bin2bn(ex, (int)elen, NULL);
    bld = OSSL_PARAM_BLD_new();
    if (!bn || !be || !bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
        goto out;
    k->pkey = pkey_from("RSA", bld);
    rc = k->pkey ? 1 : -1;
out:
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    free(n);
    free(ex);
    return rc;
}

/* EC P-256 (x, y): the point as an uncompressed octet string. */
static int parse_ec(json_t *o, jwk *k, const char **why)
{
    json_t *crv = json_object_get(o, "crv");
    if (!json_is_string(crv))
        return -1;
    if (strcmp(json_string_value(crv), "P-256") != 0) {
        *why = "an EC key on a curve other than P-256";
        return 0;
    }
    size_t xlen = 0, ylen = 0;
    unsigned char *x = member_b64(o, "x", P256_COORD, &xlen);
    unsigned char *y = member_b64(o, "y", P256_COORD, &ylen);
    int rc = -1;
    OSSL_PARAM_BLD *bld = NULL;
    /* RFC 7518 6.2.1.2: the full coordinate size, leading zeros kept */
    if (!x || !y || xlen != P256_COORD || ylen != P256_COORD)
        goto out;
    unsigned char point[1 + 2 * P256_COORD];
    point[0] = 0x04;
    memcpy(point + 1, x, P256_COORD);
    memcpy(point + 1 + P256_COORD, y, P256_COORD);
    bld = OSSL_PARAM_BLD_new();
    if (!bld ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)))
        goto out;
    k->pkey = pkey_from("EC", bld);
    rc = k->pkey ? 1 : -1;
out:
    OSSL_PARAM_BLD_free(bld);
    free(x);
    free(y);
    return rc;
}

static int parse_oct(json_t *o, jwk *k, const char **why)
{
    size_t len = 0;
    unsigned char *secret = member_b64(o, "k", 4096, &len);
    if (!secret)
        return -1;
    if (len < JWKS_MIN_OCT_BYTES) {
        OPENSSL_cleanse(secret, len);
        free(secret);
        *why = "an oct key shorter than 32 bytes";
        return 0;
    }
    k->secret = secret;
    k->secret_len = len;
    return 1;
}

static void jwk_clear(jwk *k)
{
    free(k->kid);
    EVP_PKEY_free(k->pkey);
    if (k->secret) {
        OPENSSL_cleanse(k->secret, k->secret_len);
        free(k->secret);
    }
    memset(k, 0, sizeof(*k));
}

/* One member of "keys". 1 kept, 0 skipped (*why), -1 malformed (*why). */
static int parse_key(json_t *o, jwk *k, const char **why)
{
    memset(k, 0, sizeof(*k));
    if (!json_is_object(o)) {
        *why = "not an object";
        return -1;
    }
    json_t *kty = json_object_get(o, "kty"), *kid = json_object_get(o, "kid");
    json_t *use = json_object_get(o, "use"), *alg = json_object_get(o, "alg");
    if (!json_is_string(kty) || (kid && !json_is_string(kid)) || (use && !json_is_string(use)) ||
        (alg && !json_is_string(alg))) {
        *why = "kty missing, or kty, kid, use or alg not a string";
        return -1;
    }
    if (kid && (json_string_length(kid) == 0 || json_string_length(kid) > JWKS_MAX_KID_BYTES ||
                strlen(json_string_value(kid)) != json_string_length(kid))) {
        *why = "kid empty, too long or holding a NUL";
        return -1;
    }
    if (use && strcmp(json_string_value(use), "sig") != 0) {
        *why = "not a signing key (use is not \"sig\")";
        return 0;
    }
    const char *t = json_string_value(kty);
    if (strcmp(t, "RSA") == 0)
        k->kty = JWK_RSA;
    else if (strcmp(t, "EC") == 0)
        k->kty = JWK_EC;
    else if (strcmp(t, "oct") == 0)
        k->kty = JWK_OCT;
    else {
        *why = "a key type other than RSA, EC and oct";
        return 0;
    }
    /* the key's own alg, when it names one, must be the one its type verifies */
    if (alg && strcmp(json_string_value(alg), jwk_kty_alg(k->kty)) != 0) {
        *why = "an alg other than HS256, RS256 or ES256 for its key type";
        return 0;
    }
    int rc = k->kty == JWK_RSA  ? parse_rsa(o, k, why)
             : k->kty == JWK_EC ? parse_ec(o, k, why)
                                : parse_oct(o, k, why);
    if (rc < 0)
        *why = k->kty == JWK_RSA  ? "an RSA key whose n or e is missing or invalid"
               : k->kty == JWK_EC ? "an EC key whose crv, x or y is missing or invalid"
                                  : "an oct key whose k is missing or invalid";
    if (rc == 1 && kid && !(k->kid = strdup(json_string_value(kid)))) {
        *why = "out of memory";
        rc = -1;
    }
    if (rc != 1)
        jwk_clear(k);
    return rc;
}

int jwks_parse(const char *json, size_t len, jwks **out, errdetail *e)
{
    *out = NULL;
    if (len > JWKS_MAX_DOC_BYTES)
        return errdetail_set(e, CITRUS_EINVAL, "JWKS document of %zu bytes is over the %zu limit",
                             len, JWKS_MAX_DOC_BYTES);
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *keys = json_is_object(doc) ? json_object_get(doc, "keys") : NULL;
    if (!json_is_array(keys)) {
        json_decref(doc);
        return errdetail_set(e, CITRUS_EBADJSON, "JWKS: %s",
                             doc ? "not an object with a \"keys\" array" : jerr.text);
    }
    jwks *set = calloc(1, sizeof(*set));
    if (!set) {
        json_decref(doc);
        return errdetail_set(e, CITRUS_ENOMEM, "JWKS: out of memory");
    }
    atomic_init(&set->refs, 1);
    const char *first_skip = NULL;
    size_t first_skip_at = 0;
    int rc = 0;
    for (size_t i = 0; i < json_array_size(keys); i++) {
        json_t *o = json_array_get(keys, i);
        const char *why = NULL;
        if (set->n == JWKS_MAX_KEYS) {
            rc = errdetail_set(e, CITRUS_EINVAL, "JWKS: more than %d usable keys", JWKS_MAX_KEYS);
            break;
        }
        int r = parse_key(o, &set->keys[set->n], &why);
        if (r < 0) {
            json_t *kid = json_is_object(o) ? json_object_get(o, "kid") : NULL;
            rc = errdetail_set(e, CITRUS_EINVAL, "JWKS: key %zu%s%.64s%s: %s", i,
                               json_is_string(kid) ? " (kid \"" : "",
                               json_is_string(kid) ? json_string_value(kid) : "",
                               json_is_string(kid) ? "\")" : "", why);
            break;
        }
        if (r == 0 && !first_skip) {
            first_skip = why;
            first_skip_at = i;
        }
        if (r == 1)
            set->n++;
    }
    json_decref(doc);
    if (rc == 0 && set->n == 0) {
        if (first_skip)
            rc = errdetail_set(e, CITRUS_EINVAL, "JWKS: no usable signing key (key %zu is %s)",
                               first_skip_at, first_skip);
        else
            rc = errdetail_set(e, CITRUS_EINVAL, "JWKS: no keys");
    }
    if (rc != 0) {
        jwks_free(set);
        return rc;
    }
    *out = set;
    return 0;
}

jwks *jwks_ref(jwks *k)
{
    atomic_fetch_add(&k->refs, 1);
    return k;
}

void jwks_free(jwks *k)
{
    if (!k || atomic_fetch_sub(&k->refs, 1) != 1)
        return;
    for (size_t i = 0; i < k->n; i++)
        jwk_clear(&k->keys[i]);
    free(k);
}

size_t jwks_count(const jwks *k)
{
    return k->n;
}

const jwk *jwks_key(const jwks *k, size_t i)
{
    return i < k->n ? &k->keys[i] : NULL;
}

const jwk *jwks_find(const jwks *k, const char *kid, jwk_kty kty, bool *kid_known)
{
    *kid_known = false;
    const jwk *only = NULL;
    size_t of_type = 0;
    for (size_t i = 0; i < k->n; i++) {
        const jwk *key = &k->keys[i];
        if (kid) {
            if (!key->kid || strcmp(key->kid, kid) != 0)
                continue;
            if (key->kty == kty)
                return key;
            *kid_known = true;
        } else if (key->kty == kty) {
            only = key;
            of_type++;
        }
    }
    return of_type == 1 ? only : NULL;
}

/* ---- fetching ---- */

/* https://, or http:// to loopback: keys fetched in clear text from
 * elsewhere could be replaced on the way. No user info ("a@b" hides the
 * real host from a reader). */
static int check_url(const char *url, errdetail *e)
{
    size_t len = strlen(url);
    if (len == 0 || len > MAX_URL_BYTES)
        return errdetail_set(e, CITRUS_EINVAL, "JWKS URL is empty or over %d bytes", MAX_URL_BYTES);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f)
            return errdetail_set(e, CITRUS_EINVAL, "JWKS URL holds a blank or control character");
    const char *host;
    bool tls;
    if (strncasecmp(url, "https://", 8) == 0) {
        host = url + 8;
        tls = true;
    } else if (strncasecmp(url, "http://", 7) == 0) {
        host = url + 7;
        tls = false;
    } else {
        return errdetail_set(e, CITRUS_EINVAL,
                             "JWKS URL %.200s: only https:// (or http:// on loopback) is allowed",
                             url);
    }
    size_t hlen = strcspn(host, "/?#");
    if (memchr(host, '@', hlen))
        return errdetail_set(e, CITRUS_EINVAL, "JWKS URL %.200s: user info is not allowed", url);
    if (hlen == 0)
        return errdetail_set(e, CITRUS_EINVAL, "JWKS URL %.200s: no host", url);
    if (tls)
        return 0;
    char h[256];
    if (hlen >= sizeof(h))
        return errdetail_set(e, CITRUS_EINVAL, "JWKS URL: host too long");
    memcpy(h, host, hlen);
    h[hlen] = '\0';
    /* drop the port */
    char *colon = h[0] == '[' ? strchr(h, ']') : h;
    if (colon && (colon = strchr(colon, ':')))
        *colon = '\0';
    bool loop = strcasecmp(h, "localhost") == 0 || strcmp(h, "[::1]") == 0;
    unsigned a, b, c, d;
    char tail;
    if (sscanf(h, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4 && a == 127 && b < 256 && c < 256 &&
        d < 256)
        loop = true;
    if (!loop)
        return errdetail_set(e, CITRUS_EINVAL,
                             "JWKS URL %.200s: http:// is allowed only on loopback; use https://",
                             url);
    return 0;
}

typedef struct fetch_buf {
    strbuf body;
} fetch_buf;

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    fetch_buf *f = ctx;
    return strbuf_add(&f->body, p, size * n) == 0 ? size * n : 0;
}

/* GETs url (checked) into *body (malloc'd, NUL-terminated), at most
 * JWKS_MAX_DOC_BYTES, status 200 only, no redirects. */
static int http_get(const char *url, long timeout_ms, char **body, size_t *len, errdetail *e)
{
    *body = NULL;
    int rc = check_url(url, e);
    if (rc != 0)
        return rc;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return errdetail_set(e, CITRUS_EIO, "JWKS: curl_global_init failed");
    CURL *h = curl_easy_init();
    if (!h)
        return errdetail_set(e, CITRUS_ENOMEM, "JWKS: curl_easy_init failed");
    fetch_buf f;
    strbuf_init_max(&f.body, JWKS_MAX_DOC_BYTES);
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)JWKS_MAX_DOC_BYTES);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "citrus-jwks/" CITRUS_VERSION);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &f);
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    if (cc == CURLE_FILESIZE_EXCEEDED || (cc == CURLE_WRITE_ERROR && f.body.err == CITRUS_ETOOBIG))
        rc = errdetail_set(e, CITRUS_EINVAL, "%.200s: answer over %zu bytes", url,
                           JWKS_MAX_DOC_BYTES);
    else if (cc == CURLE_OPERATION_TIMEDOUT)
        rc = errdetail_set(e, CITRUS_ETIMEOUT, "%.200s: timed out after %ld ms", url, timeout_ms);
    else if (cc != CURLE_OK)
        rc = errdetail_set(e, f.body.err == CITRUS_ENOMEM ? CITRUS_ENOMEM : CITRUS_EUNAVAILABLE,
                           "%.200s: %s", url, cerr[0] ? cerr : curl_easy_strerror(cc));
    else if (status != 200)
        rc = errdetail_set(e, CITRUS_EUNAVAILABLE, "%.200s: HTTP status %ld", url, status);
    if (rc != 0) {
        strbuf_free(&f.body);
        return rc;
    }
    *body = strbuf_take(&f.body, len);
    if (!*body)
        return errdetail_set(e, CITRUS_ENOMEM, "JWKS: out of memory");
    return 0;
}

static int read_file(const char *path, char **body, size_t *len, errdetail *e)
{
    *body = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errdetail_set(e, CITRUS_EIO, "JWKS file %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)JWKS_MAX_DOC_BYTES) {
        close(fd);
        return errdetail_set(e, CITRUS_EINVAL,
                             "JWKS file %s: not a regular file of at most %zu bytes", path,
                             JWKS_MAX_DOC_BYTES);
    }
    /* read to the end, not st_size: the file may be rewritten meanwhile */
    strbuf b;
    strbuf_init_max(&b, JWKS_MAX_DOC_BYTES);
    char chunk[16384];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            close(fd);
            strbuf_free(&b);
            return errdetail_set(e, CITRUS_EIO, "JWKS file %s: %s", path, strerror(err));
        }
        if (n == 0)
            break;
        if (strbuf_add(&b, chunk, (size_t)n) != 0)
            break;
    }
    close(fd);
    if (b.err) {
        int err = b.err;
        strbuf_free(&b);
        return errdetail_set(e, err == CITRUS_ETOOBIG ? CITRUS_EINVAL : err,
                             "JWKS file %s: over %zu bytes or out of memory", path,
                             JWKS_MAX_DOC_BYTES);
    }
    *body = strbuf_take(&b, len);
    return *body ? 0 : errdetail_set(e, CITRUS_ENOMEM, "JWKS: out of memory");
}

/* OpenID Connect Discovery 1.0 §4: issuer + "/.well-known/openid-configuration";
 * the document's issuer must be the one asked for (§4.3). */
static int discover(const char *issuer, long timeout_ms, char **jwks_uri, errdetail *e)
{
    size_t ilen = strlen(issuer);
    while (ilen > 0 && issuer[ilen - 1] == '/')
        ilen--;
    if (ilen == 0 || ilen > MAX_URL_BYTES)
        return errdetail_set(e, CITRUS_EINVAL, "OIDC issuer is empty or too long");
    char url[MAX_URL_BYTES + 64];
    snprintf(url, sizeof(url), "%.*s/.well-known/openid-configuration", (int)ilen, issuer);
    char *body = NULL;
    size_t len = 0;
    int rc = http_get(url, timeout_ms, &body, &len, e);
    if (rc != 0)
        return rc;
    json_error_t jerr;
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    free(body);
    json_t *iss = json_object_get(doc, "issuer"), *uri = json_object_get(doc, "jwks_uri");
    if (!json_is_string(iss) || !json_is_string(uri)) {
        json_decref(doc);
        return errdetail_set(e, CITRUS_EBADJSON, "%.200s: no issuer and jwks_uri strings", url);
    }
    size_t dlen = json_string_length(iss);
    const char *d = json_string_value(iss);
    while (dlen > 0 && d[dlen - 1] == '/')
        dlen--;
    if (dlen != ilen || memcmp(d, issuer, ilen) != 0) {
        json_decref(doc);
        return errdetail_set(e, CITRUS_EINVAL, "%.200s: its issuer is not %.*s", url, (int)ilen,
                             issuer);
    }
    rc = check_url(json_string_value(uri), e);
    if (rc == 0 && !(*jwks_uri = strdup(json_string_value(uri))))
        rc = errdetail_set(e, CITRUS_ENOMEM, "JWKS: out of memory");
    json_decref(doc);
    return rc;
}

/* Reads and parses the source's document, outside mu. */
static int load(jwks_source *s, jwks **out, errdetail *e)
{
    atomic_fetch_add(&s->fetches, 1);
    if (s->json)
        return jwks_parse(s->json, strlen(s->json), out, e);
    char *body = NULL;
    size_t len = 0;
    int rc = s->file ? read_file(s->file, &body, &len, e)
                     : http_get(s->url, s->timeout_ms, &body, &len, e);
    if (rc == 0) {
        rc = jwks_parse(body, len, out, e);
        if (rc != 0)
            errdetail_prefix(e, "%.200s", s->file ? s->file : s->url);
    }
    free(body);
    return rc;
}

int jwks_source_new(const jwks_source_options *o, jwks_source **out, errdetail *e)
{
    *out = NULL;
    int given = !!o->file + !!o->url + !!o->issuer_discovery + !!o->json;
    if (given != 1)
        return errdetail_set(
            e, CITRUS_EINVAL,
            "JWKS source: give exactly one of a file, a URL, an issuer or a document");
    jwks_source *s = calloc(1, sizeof(*s));
    if (!s)
        return errdetail_set(e, CITRUS_ENOMEM, "JWKS source: out of memory");
    pthread_mutex_init(&s->mu, NULL);
    atomic_init(&s->fetches, 0);
    s->clock = o->clock;
    s->timeout_ms = o->fetch_timeout_ms > 0 ? o->fetch_timeout_ms : JWKS_DEFAULT_FETCH_TIMEOUT_MS;
    s->min_refetch_ms = o->min_refetch_ms > 0 ? o->min_refetch_ms : JWKS_DEFAULT_REFETCH_MS;
    s->max_age_ms = o->max_age_ms > 0 ? o->max_age_ms : JWKS_DEFAULT_MAX_AGE_MS;
    int rc = 0;
    if (o->file && !(s->file = strdup(o->file)))
        rc = errdetail_set(e, CITRUS_ENOMEM, "JWKS source: out of memory");
    if (o->json && !(s->json = strdup(o->json)))
        rc = errdetail_set(e, CITRUS_ENOMEM, "JWKS source: out of memory");
    if (o->url) {
        rc = check_url(o->url, e);
        if (rc == 0 && !(s->url = strdup(o->url)))
            rc = errdetail_set(e, CITRUS_ENOMEM, "JWKS source: out of memory");
    }
    if (o->issuer_discovery)
        rc = discover(o->issuer_discovery, s->timeout_ms, &s->url, e);
    s->last_try_ms = clock_mono_ms(s->clock);
    if (rc == 0)
        rc = load(s, &s->set, e);
    if (rc != 0) {
        jwks_source_free(s);
        return rc;
    }
    s->loaded_ms = s->last_try_ms;
    *out = s;
    return 0;
}

void jwks_source_free(jwks_source *s)
{
    if (!s)
        return;
    jwks_free(s->set);
    pthread_mutex_destroy(&s->mu);
    free(s->file);
    free(s->url);
    free(s->json);
    free(s);
}

/* One fetch if allowed: 1 loaded, 0 not allowed now, or an error. */
static int refetch(jwks_source *s, bool only_if_old, errdetail *e)
{
    if (s->json)
        return 0;
    pthread_mutex_lock(&s->mu);
    int64_t now = clock_mono_ms(s->clock);
    bool allowed = !s->fetching && now - s->last_try_ms >= s->min_refetch_ms &&
                   (!only_if_old || now - s->loaded_ms >= s->max_age_ms);
    if (allowed) {
        s->fetching = true;
        s->last_try_ms = now;
    }
    pthread_mutex_unlock(&s->mu);
    if (!allowed)
        return 0;
    jwks *set = NULL;
    int rc = load(s, &set, e);
    pthread_mutex_lock(&s->mu);
    s->fetching = false;
    jwks *old = NULL;
    if (rc == 0) {
        old = s->set;
        s->set = set;
        s->loaded_ms = now;
    }
    pthread_mutex_unlock(&s->mu);
    jwks_free(old);
    return rc == 0 ? 1 : rc;
}

jwks *jwks_source_get(jwks_source *s)
{
    errdetail ignored;
    /* a failed periodic fetch keeps the old set; the next unknown kid retries */
    (void)refetch(s, true, &ignored);
    pthread_mutex_lock(&s->mu);
    jwks *k = jwks_ref(s->set);
    pthread_mutex_unlock(&s->mu);
    return k;
}

int jwks_source_refetch(jwks_source *s, errdetail *e)
{
    return refetch(s, false, e);
}

uint64_t jwks_source_fetches(const jwks_source *s)
{
    return atomic_load(&((jwks_source *)s)->fetches);
}
