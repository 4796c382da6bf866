/* tests/fuzz/fuzz_authz.c — authz_bearer and authz_parse.
 *
 * The input is an Authorization header value. The verdict is compared with
 * an oracle written from RFC 6750 §2.1 and RFC 9110 §11 (not from
 * authz_header.c): optional blanks around the value; the scheme "Bearer"
 * in any case; one or more SP or HTAB; a b64token of
 * [A-Za-z0-9-._~+/] then '=' only at the end, at most 8192 bytes. For
 * authz_parse: an accepted value splits into a scheme of tchars and a
 * token68 that, with blanks between and around, spell the whole input. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "auth/authz_header.h"
#include "check.h"
#include "citrus/errors.h"

static bool blank(uint8_t c)
{
    return c == ' ' || c == '\t';
}

static bool b64token_char(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("-._~+/", c));
}

static bool tchar(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c));
}

/* 1*b64token-char *"=" */
static bool oracle_token68(const uint8_t *t, size_t n)
{
    size_t eq = 0;
    while (eq < n && t[n - 1 - eq] == '=')
        eq++;
    if (eq == n)
        return false;
    for (size_t i = 0; i < n - eq; i++)
        if (!b64token_char(t[i]))
            return false;
    return n <= 8192;
}

/* The token's offset and length when value is a Bearer header. */
static bool oracle_bearer(const uint8_t *v, size_t n, size_t *off, size_t *len)
{
    size_t a = 0, b = n;
    while (a < b && blank(v[a]))
        a++;
    while (b > a && blank(v[b - 1]))
        b--;
    static const char scheme[] = "bearer";
    if (b - a < 7)
        return false;
    for (size_t i = 0; i < 6; i++)
        if ((v[a + i] | 0x20) != (uint8_t)scheme[i])
            return false;
    if (!blank(v[a + 6]))
        return false;
    size_t t = a + 6;
    while (t < b && blank(v[t]))
        t++;
    if (!oracle_token68(v + t, b - t))
        return false;
    *off = t;
    *len = b - t;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *v = (const char *)data;
    const char *tok = NULL;
    size_t toklen = 0, off = 0, len = 0;
    errdetail e = {0};
    int rc = authz_bearer(v, size, &tok, &toklen, &e);
    bool want = oracle_bearer(data, size, &off, &len);
    FUZZ_CHECK((rc == 0) == want, "authz_bearer %d, oracle %d: %s", rc, want, e.message);
    if (rc == 0)
        FUZZ_CHECK(tok == v + off && toklen == len, "token at %zu+%zu, oracle %zu+%zu",
                   (size_t)(tok - v), toklen, off, len);
    else
        FUZZ_CHECK(rc == CITRUS_EUNAUTHENTICATED && tok == NULL && e.message[0], "refusal");

    authz_credentials c;
    rc = authz_parse(v, size, &c, &e);
    if (want)
        FUZZ_CHECK(rc == 0 && c.token == tok && c.token_len == toklen, "parse disagrees");
    if (rc != 0)
        return 0;
    FUZZ_CHECK(c.scheme_len > 0 && c.token_len > 0, "empty part");
    for (size_t i = 0; i < c.scheme_len; i++)
        FUZZ_CHECK(tchar((uint8_t)c.scheme[i]), "scheme byte %zu", i);
    FUZZ_CHECK(oracle_token68((const uint8_t *)c.token, c.token_len), "token68");
    /* blanks, scheme, at least one blank, token, blanks: the whole input */
    size_t s0 = (size_t)(c.scheme - v), t0 = (size_t)(c.token - v);
    for (size_t i = 0; i < s0; i++)
        FUZZ_CHECK(blank(data[i]), "before the scheme");
    FUZZ_CHECK(t0 > s0 + c.scheme_len, "no blank after the scheme");
    for (size_t i = s0 + c.scheme_len; i < t0; i++)
        FUZZ_CHECK(blank(data[i]), "between scheme and token");
    for (size_t i = t0 + c.token_len; i < size; i++)
        FUZZ_CHECK(blank(data[i]), "after the token");
    return 0;
}
