/* core/dsn.c — shape checks and redaction of shard connection strings
 * (pure: no I/O, and no libpq, so the core stays free of drivers).
 *
 * The checks are structural: they catch typos and garbage before a DSN is
 * stored in the catalog, with a message that says what is wrong; whether
 * the database is reachable is the driver's business (dbconn/driver.h). */
#include "core/dsn.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "core/strbuf.h"

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* ---- sqlite ---------------------------------------------------------- */

/* rest: what follows "sqlite:". */
static int parse_sqlite(const char *rest, dsn_info *out, errdetail *e)
{
    const char *path = rest;
    if (starts_with(rest, "//")) {
        if (rest[2] != '/')
            return errdetail_set(e, CITRUS_EINVAL,
                                 "sqlite dsn takes no host: use sqlite:///absolute/path or "
                                 "sqlite:relative/path");
        path = rest + 2;
    }
    size_t len = strlen(path);
    if (len == 0)
        return errdetail_set(e, CITRUS_EINVAL, "sqlite dsn: the path is empty");
    for (size_t i = 0; i < len; i++) {
        if (is_ctl((unsigned char)path[i]))
            return errdetail_set(e, CITRUS_EINVAL,
                                 "sqlite dsn: the path contains a control character");
        if (path[i] == '?')
            return errdetail_set(e, CITRUS_EINVAL,
                                 "sqlite dsn: query strings (?...) are not supported");
    }
    if (path[len - 1] == '/')
        return errdetail_set(e, CITRUS_EINVAL,
                             "sqlite dsn: the path names a directory, not a file");
    if (len >= sizeof(out->path))
        return errdetail_set(e, CITRUS_EINVAL, "sqlite dsn: the path is longer than %zu bytes",
                             sizeof(out->path) - 1);
    out->kind = DSN_SQLITE;
    memcpy(out->path, path, len + 1);
    return 0;
}

/* ---- postgres URIs --------------------------------------------------- */

/* Length of the scheme prefix ("postgres://" or "postgresql://"), or 0. */
static size_t pg_scheme_len(const char *dsn)
{
    if (starts_with(dsn, "postgresql://"))
        return strlen("postgresql://");
    if (starts_with(dsn, "postgres://"))
        return strlen("postgres://");
    return 0;
}

/* Every '%' starts a %XX escape; no spaces or control characters. */
static int check_uri_chars(const char *s, errdetail *e)
{
    for (size_t i = 0; s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || is_ctl(c))
            return errdetail_set(e, CITRUS_EINVAL,
                                 "postgres dsn contains a space or control character");
        if (c == '%' && !(is_hex(s[i + 1]) && is_hex(s[i + 2])))
            return errdetail_set(e, CITRUS_EINVAL,
                                 "postgres dsn has a '%%' not followed by two hex digits");
    }
    return 0;
}

static bool host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '.' ||
           c == '-' || c == '_' || c == '~' || c == '%';
}

/* One host[:port] of s[0..n): a name, a %-encoded socket path, [ipv6] or
 * empty (the default). */
static int check_hostport(const char *s, size_t n, errdetail *e)
{
    size_t i = 0;
    if (n > 0 && s[0] == '[') {
        while (i < n && s[i] != ']')
            i++;
        if (i == n)
            return errdetail_set(e, CITRUS_EINVAL,
                                 "postgres dsn: '[' of an IPv6 host is not closed");
        for (size_t j = 1; j < i; j++)
            if (!is_hex(s[j]) && s[j] != ':' && s[j] != '.' && s[j] != '%')
                return errdetail_set(e, CITRUS_EINVAL, "postgres dsn: bad character in IPv6 host");
        i++;
    } else {
        while (i < n && host_char(s[i]))
            i++;
    }
    if (i == n)
        return 0;
    if (s[i] != ':')
        return errdetail_set(e, CITRUS_EINVAL, "postgres dsn: bad character '%c' in host", s[i]);
    size_t digits = n - i - 1;
    unsigned long port = 0;
    for (size_t j = i + 1; j < n; j++) {
        if (!is_digit(s[j]) || digits > 5)
            return errdetail_set(e, CITRUS_EINVAL, "postgres dsn: the port must be a number");
        port = port * 10 + (unsigned long)(s[j] - '0');
    }
    if (digits == 0 || port == 0 || port > 65535)
        return errdetail_set(e, CITRUS_EINVAL, "postgres dsn: the port must be 1..65535");
    return 0;
}

/* A comma-separated host list s[0..n); *any set when a host is named. */
static int check_hosts(const char *s, size_t n, bool *any, errdetail *e)
{
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != ',')
            continue;
        int rc = check_hostport(s + start, i - start, e);
        if (rc < 0)
            return rc;
        if (i > start)
            *any = true;
        start = i + 1;
    }
    return 0;
}

/* key=value pairs joined by '&'. */
static int check_uri_params(const char *s, errdetail *e)
{
    for (;;) {
        size_t k = 0;
        while (is_key_char(s[k]))
            k++;
        if (k == 0 || s[k] != '=')
            return errdetail_set(e, CITRUS_EINVAL,
                                 "postgres dsn: query parameters must be key=value joined by '&' "
                                 "(keys are [a-z_])");
        s += k + 1;
        s += strcspn(s, "&");
        if (!*s)
            return 0;
        s++;
    }
}

static int parse_postgres_uri(const char *dsn, dsn_info *out, errdetail *e)
{
    const char *rest = dsn + pg_scheme_len(dsn);
    if (!*rest)
        return errdetail_set(e, CITRUS_EINVAL, "postgres dsn has nothing after the scheme");
    int rc = check_uri_chars(rest, e);
    if (rc < 0)
        return rc;
    size_t auth_len = strcspn(rest, "/?");
    const char *at = memchr(rest, '@', auth_len);
    bool named = false; /* a user, host, database or parameter is given */
    const char *hosts = rest;
    if (at) {
        if (at == rest)
            return errdetail_set(e, CITRUS_EINVAL,
                                 "postgres dsn: the user name before '@' is empty");
        named = true;
        hosts = at + 1;
    }
    rc = check_hosts(hosts, (size_t)(rest + auth_len - hosts), &named, e);
    if (rc < 0)
        return rc;
    const char *p = rest + auth_len;
    if (*p == '/') {
        size_t db = strcspn(p + 1, "?");
        named = named || db > 0;
        p += 1 + db;
    }
    if (*p == '?') {
        rc = check_uri_params(p + 1, e);
        if (rc < 0)
            return rc;
        named = true;
    }
    if (!named)
        return errdetail_set(e, CITRUS_EINVAL, "postgres dsn names no host, database or parameter");
    out->kind = DSN_POSTGRES;
    return 0;
}

/* ---- key=value conninfo ---------------------------------------------- */

typedef struct ci_pair {
    const char *key, *val; /* val spans the raw text, quotes included */
    size_t klen, vlen;
} ci_pair;

/* Reads a quoted value at *p (just past the opening quote); 0 or -1. */
static int ci_quoted(const char **p, const char **why)
{
    const char *s = *p;
    for (;;) {
        if (!*s || (*s == '\\' && !s[1])) {
            *why = "has an unterminated quoted value";
            return -1;
        }
        if (*s == '\\') {
            s += 2;
            continue;
        }
        if (*s == '\'')
            break;
        s++;
    }
    s++;
    if (*s && !is_space(*s)) {
        *why = "has text right after its closing quote";
        return -1;
    }
    *p = s;
    return 0;
}

static int ci_unquoted(const char **p, const char **why)
{
    const char *s = *p;
    while (*s && !is_space(*s)) {
        if (*s == '\\' && s[1])
            s++;
        s++;
    }
    if (s == *p) {
        *why = "has no value";
        return -1;
    }
    *p = s;
    return 0;
}

/* Next pair at *p: 1, 0 at the end, -1 with *why when malformed (then
 * out->key is where the bad pair starts, out->klen its key's length). */
static int ci_next(const char **p, ci_pair *out, const char **why)
{
    const char *s = *p;
    while (is_space(*s))
        s++;
    if (!*s)
        return 0;
    out->key = s;
    while (is_key_char(*s))
        s++;
    out->klen = (size_t)(s - out->key);
    while (is_space(*s))
        s++;
    if (out->klen == 0) {
        *why = "expected a key ([a-z_])";
        return -1;
    }
    if (*s != '=') {
        *why = "has no '='";
        return -1;
    }
    s++;
    while (is_space(*s))
        s++;
    out->val = s;
    int rc = *s == '\'' ? (s++, ci_quoted(&s, why)) : ci_unquoted(&s, why);
    if (rc < 0)
        return -1;
    out->vlen = (size_t)(s - out->val);
    for (size_t i = 0; i < out->vlen; i++) {
        if (is_ctl((unsigned char)out->val[i])) {
            *why = "has a control character in its value";
            return -1;
        }
    }
    *p = s;
    return 1;
}

/* Whether dsn starts like conninfo: spaces, a [a-z_] key, spaces, '='. */
static bool looks_like_conninfo(const char *s)
{
    while (is_space(*s))
        s++;
    const char *k = s;
    while (is_key_char(*s))
        s++;
    if (s == k)
        return false;
    while (is_space(*s))
        s++;
    return *s == '=';
}

static int parse_conninfo(const char *dsn, dsn_info *out, errdetail *e)
{
    const char *p = dsn;
    ci_pair pair = {0};
    const char *why = NULL;
    int rc;
    while ((rc = ci_next(&p, &pair, &why)) > 0)
        ;
    if (rc < 0 && pair.klen == 0)
        return errdetail_set(e, CITRUS_EINVAL, "dsn key=value pairs: %s at byte %zu", why,
                             (size_t)(pair.key - dsn));
    if (rc < 0)
        return errdetail_set(e, CITRUS_EINVAL, "dsn key=value pairs: '%.*s' %s", (int)pair.klen,
                             pair.key, why);
    out->kind = DSN_POSTGRES;
    return 0;
}

int dsn_parse(const char *dsn, dsn_info *out, errdetail *e)
{
    dsn_info scratch;
    if (!out)
        out = &scratch;
    memset(out, 0, sizeof(*out));
    if (!dsn || !*dsn)
        return errdetail_set(e, CITRUS_EINVAL, "dsn is empty");
    if (starts_with(dsn, "sqlite:"))
        return parse_sqlite(dsn + strlen("sqlite:"), out, e);
    if (pg_scheme_len(dsn))
        return parse_postgres_uri(dsn, out, e);
    if (looks_like_conninfo(dsn))
        return parse_conninfo(dsn, out, e);
    return errdetail_set(
        e, CITRUS_EINVAL,
        "dsn must start with sqlite:, postgres:// or postgresql://, or be key=value "
        "pairs");
}

/* ---- redaction ------------------------------------------------------- */

static const char stars[] = "***";

/* user:pass@ in the authority, and password=... among the parameters. */
static void redact_uri(const char *dsn, strbuf *b)
{
    size_t scheme = pg_scheme_len(dsn);
    const char *rest = dsn + scheme;
    size_t auth_len = strcspn(rest, "/?");
    const char *at = memchr(rest, '@', auth_len);
    const char *colon = at ? memchr(rest, ':', (size_t)(at - rest)) : NULL;
    const char *p = dsn;
    if (colon) {
        strbuf_add(b, p, (size_t)(colon + 1 - p));
        strbuf_add(b, stars, 3);
        p = at;
    }
    const char *q = strchr(p, '?');
    if (!q) {
        strbuf_add(b, p, strlen(p));
        return;
    }
    strbuf_add(b, p, (size_t)(q + 1 - p));
    for (p = q + 1; *p;) {
        size_t n = strcspn(p, "&");
        const char *key = "password=";
        if (n >= strlen(key) && strncmp(p, key, strlen(key)) == 0) {
            strbuf_add(b, p, strlen(key));
            strbuf_add(b, stars, 3);
        } else {
            strbuf_add(b, p, n);
        }
        p += n;
        if (*p)
            strbuf_add(b, p++, 1);
    }
}

/* password=... pairs; an unparseable tail is kept unless it mentions a
 * password, then it is dropped for "***". */
static void redact_conninfo(const char *dsn, strbuf *b)
{
    const char *p = dsn;
    ci_pair pair = {0};
    const char *why;
    int rc;
    while ((rc = ci_next(&p, &pair, &why)) > 0) {
        bool secret = pair.klen == 8 && strncmp(pair.key, "password", 8) == 0;
        if (!secret)
            continue;
        strbuf_add(b, dsn, (size_t)(pair.val - dsn));
        strbuf_add(b, stars, 3);
        dsn = p;
    }
    if (rc < 0 && strstr(pair.key, "password")) {
        strbuf_add(b, dsn, (size_t)(pair.key - dsn));
        strbuf_add(b, stars, 3);
        return;
    }
    strbuf_add(b, dsn, strlen(dsn));
}

char *dsn_redact(const char *dsn)
{
    if (!dsn)
        return NULL;
    strbuf b = STRBUF_INIT;
    if (pg_scheme_len(dsn))
        redact_uri(dsn, &b);
    else if (looks_like_conninfo(dsn))
        redact_conninfo(dsn, &b);
    else
        strbuf_add(&b, dsn, strlen(dsn));
    return strbuf_take(&b, NULL);
}
