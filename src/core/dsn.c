/* core/dsn.c — shape checks and redaction of shard connection strings
 * (pure: no I/O, and no libpq, so the core stays free of drivers).
 *
 * The checks are structural: they catch typos and garbage before a DSN is
 * stored in the catalog, with a message that says what is wrong; whether
 * the database is reachable is the driver's business (dbconn/driver.h). */
#include "core/dsn.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

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

/* ---- options: what a PostgreSQL DSN asks libpq for -------------------- */

/* One option as libpq would see it: key and decoded value. */
typedef int (*opt_fn)(const char *key, const char *val, size_t vlen, void *ctx, errdetail *e);

static int hexval(char c)
{
    return is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* Calls fn with s[0..n) %-decoded (check_uri_chars vetted the escapes). */
static int uri_opt(const char *key, const char *s, size_t n, opt_fn fn, void *ctx, errdetail *e)
{
    char *v = malloc(n + 1);
    if (!v)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && is_hex(s[i + 1]) && is_hex(s[i + 2])) {
            v[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            v[o++] = s[i];
        }
    }
    v[o] = '\0';
    int rc = fn(key, v, o, ctx, e);
    free(v);
    return rc;
}

/* The hosts and ports of an authority's host list s[0..n). */
static int uri_hosts(const char *s, size_t n, opt_fn fn, void *ctx, errdetail *e)
{
    size_t start = 0;
    if (n == 0)
        return 0; /* none here: ?host= may name it, else dsn_check refuses */
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != ',')
            continue;
        const char *h = s + start;
        size_t hl = i - start, pl = 0;
        const char *port = NULL;
        const char *close = hl && h[0] == '[' ? memchr(h, ']', hl) : NULL;
        const char *colon =
            close ? (close + 1 < h + hl && close[1] == ':' ? close + 1 : NULL) : memchr(h, ':', hl);
        if (colon) {
            port = colon + 1;
            pl = (size_t)(h + hl - port);
            hl = (size_t)(colon - h);
        }
        int rc = close ? uri_opt("host", h + 1, (size_t)(close - h - 1), fn, ctx, e)
                       : uri_opt("host", h, hl, fn, ctx, e);
        if (rc == 0 && port)
            rc = uri_opt("port", port, pl, fn, ctx, e);
        if (rc < 0)
            return rc;
        start = i + 1;
    }
    return 0;
}

/* uri_options, calling auth_end (when not NULL) once the authority's
 * options (user, password, hosts, ports) are given. */
static int uri_options_ex(const char *dsn, opt_fn fn, void *ctx,
                          int (*auth_end)(void *ctx, errdetail *e), errdetail *e);

static int uri_options(const char *dsn, opt_fn fn, void *ctx, errdetail *e)
{
    return uri_options_ex(dsn, fn, ctx, NULL, e);
}

static int uri_options_ex(const char *dsn, opt_fn fn, void *ctx,
                          int (*auth_end)(void *ctx, errdetail *e), errdetail *e)
{
    const char *rest = dsn + pg_scheme_len(dsn);
    size_t auth_len = strcspn(rest, "/?");
    const char *at = memchr(rest, '@', auth_len), *hosts = rest;
    int rc = 0;
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        const char *uend = colon ? colon : at;
        rc = uri_opt("user", rest, (size_t)(uend - rest), fn, ctx, e);
        if (rc == 0 && colon)
            rc = uri_opt("password", colon + 1, (size_t)(at - colon - 1), fn, ctx, e);
        hosts = at + 1;
    }
    if (rc == 0)
        rc = uri_hosts(hosts, (size_t)(rest + auth_len - hosts), fn, ctx, e);
    if (rc == 0 && auth_end)
        rc = auth_end(ctx, e);
    const char *p = rest + auth_len;
    if (rc == 0 && *p == '/') {
        size_t db = strcspn(p + 1, "?");
        if (db)
            rc = uri_opt("dbname", p + 1, db, fn, ctx, e);
        p += 1 + db;
    }
    if (*p == '?')
        p++;
    while (rc == 0 && *p) {
        size_t n = strcspn(p, "&"), k = strcspn(p, "=");
        char key[64];
        snprintf(key, sizeof(key), "%.*s", (int)(k < n ? k : n), p);
        rc = uri_opt(key, p + k + 1, n > k ? n - k - 1 : 0, fn, ctx, e);
        p += n;
        if (*p)
            p++;
    }
    return rc;
}

/* A conninfo value (raw, quotes included) unquoted and unescaped. */
static int ci_opt(const ci_pair *pair, opt_fn fn, void *ctx, errdetail *e)
{
    char key[64];
    snprintf(key, sizeof(key), "%.*s", (int)pair->klen, pair->key);
    char *v = malloc(pair->vlen + 1);
    if (!v)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    const char *s = pair->val, *end = pair->val + pair->vlen;
    bool quoted = s < end && *s == '\'';
    if (quoted) {
        s++;
        end--;
    }
    size_t o = 0;
    for (; s < end; s++) {
        if (*s == '\\' && s + 1 < end)
            s++;
        v[o++] = *s;
    }
    v[o] = '\0';
    int rc = fn(key, v, o, ctx, e);
    free(v);
    return rc;
}

static int conninfo_options(const char *dsn, opt_fn fn, void *ctx, errdetail *e)
{
    const char *p = dsn;
    ci_pair pair = {0};
    const char *why;
    int rc;
    while ((rc = ci_next(&p, &pair, &why)) > 0)
        if ((rc = ci_opt(&pair, fn, ctx, e)) < 0)
            return rc;
    return rc;
}

/* ---- the allow list ----------------------------------------------------- */

typedef struct check_ctx {
    const dsn_policy *p;
    bool host_named;     /* a host or hostaddr was given */
    bool hostaddr_named; /* then hostaddr is where it connects */
    char hosts[1024];    /* host values, '\n'-separated, checked at the end */
} check_ctx;

static const char *const allowed_opts[] = {"host",
                                           "hostaddr",
                                           "port",
                                           "dbname",
                                           "user",
                                           "password",
                                           "sslmode",
                                           "sslrootcert",
                                           "sslcert",
                                           "sslkey",
                                           "application_name",
                                           "connect_timeout",
                                           "target_session_attrs",
                                           "keepalives",
                                           "keepalives_idle",
                                           "keepalives_interval",
                                           "keepalives_count",
                                           NULL};

/* Whether item (n bytes) is one of list's comma-separated items (a
 * trailing '/' on either side ignored). */
static bool in_list(const char *list, const char *item, size_t n)
{
    while (n > 1 && item[n - 1] == '/')
        n--;
    for (const char *p = list ? list : ""; *p;) {
        size_t m = strcspn(p, ","), k = m;
        while (k > 1 && p[k - 1] == '/')
            k--;
        if (k == n && strncmp(p, item, n) == 0)
            return true;
        p += m;
        if (*p)
            p++;
    }
    return false;
}

/* An absolute path with no "." or ".." component. */
static bool plain_abs_path(const char *v)
{
    if (v[0] != '/')
        return false;
    for (const char *p = v; (p = strchr(p, '/')) != NULL;) {
        p++;
        size_t n = strcspn(p, "/");
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return false;
    }
    return true;
}

static int check_tls_file(const check_ctx *c, const char *key, const char *v, errdetail *e)
{
    const char *dir = c->p ? c->p->tls_dir : NULL;
    if (!dir || !*dir)
        return errdetail_set(e, CITRUS_EINVAL,
                             "dsn option '%s' is not allowed: no shards.tls_dir is configured",
                             key);
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    if (!plain_abs_path(v) || strncmp(v, dir, n) != 0 || v[n] != '/' || !v[n + 1])
        return errdetail_set(e, CITRUS_EINVAL,
                             "dsn option '%s' must name a file under shards.tls_dir (%.*s)", key,
                             (int)n, dir);
    return 0;
}

/* One host entry: TCP, or an allowed socket directory. */
static int check_host_entry(const check_ctx *c, const char *h, size_t n, errdetail *e)
{
    if (n == 0 || h[0] == '/' || h[0] == '@') {
        const char *dirs = c->p ? c->p->socket_dirs : NULL;
        char path[512];
        snprintf(path, sizeof(path), "%.*s", (int)n, h);
        if (n > 0 && h[0] == '/' && plain_abs_path(path) && in_list(dirs, h, n))
            return 0;
        return errdetail_set(e, CITRUS_EINVAL,
                             "dsn host '%.*s' is a Unix socket%s, which is outside "
                             "shards.socket_dirs: name a TCP host",
                             (int)(n > 200 ? 200 : n), h, n == 0 ? " (empty host)" : "");
    }
    return 0;
}

static int check_opt(const char *key, const char *v, size_t vlen, void *vctx, errdetail *e)
{
    check_ctx *c = vctx;
    bool known = false;
    for (size_t i = 0; allowed_opts[i]; i++)
        known = known || strcmp(key, allowed_opts[i]) == 0;
    if (!known)
        return errdetail_set(e, CITRUS_EINVAL,
                             "dsn option '%.60s' is not allowed (allowed: host, hostaddr, port, "
                             "dbname, user, password, sslmode, sslrootcert, sslcert, sslkey, "
                             "application_name, connect_timeout, target_session_attrs, "
                             "keepalives*)",
                             key);
    if (memchr(v, '\0', vlen))
        return errdetail_set(e, CITRUS_EINVAL, "dsn option '%s' contains a NUL byte", key);
    if (strcmp(key, "sslrootcert") == 0 || strcmp(key, "sslcert") == 0 ||
        strcmp(key, "sslkey") == 0)
        return check_tls_file(c, key, v, e);
    bool host = strcmp(key, "host") == 0, addr = strcmp(key, "hostaddr") == 0;
    if (!host && !addr)
        return 0;
    c->host_named = true;
    c->hostaddr_named = c->hostaddr_named || addr;
    for (const char *p = v;;) { /* a comma-separated list, as libpq takes it */
        size_t n = strcspn(p, ",");
        int rc = host ? check_host_entry(c, p, n, e) : 0;
        if (rc < 0)
            return rc;
        if (addr && n == 0)
            return errdetail_set(e, CITRUS_EINVAL, "dsn option 'hostaddr' has an empty item");
        size_t used = strlen(c->hosts);
        if (used + n + 3 > sizeof(c->hosts))
            return errdetail_set(e, CITRUS_EINVAL, "dsn names too many hosts");
        snprintf(c->hosts + used, sizeof(c->hosts) - used, "%c%.*s\n", addr ? 'a' : 'h', (int)n, p);
        p += n;
        if (!*p)
            break;
        p++;
    }
    return 0;
}

/* ---- allowed hosts ------------------------------------------------------ */

/* An IPv4 or IPv6 address, as 16 bytes (IPv4 in the first 4), or false. */
static bool parse_ip(const char *s, size_t n, unsigned char out[16], int *family)
{
    char buf[64];
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    memset(out, 0, 16);
    if (inet_pton(AF_INET, buf, out) == 1) {
        *family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, buf, out) == 1) {
        *family = AF_INET6;
        return true;
    }
    return false;
}

/* item as CIDR (or a bare address): 1 when parsed into net/bits, 0 when it
 * is no address (a name), -1 when it looks like a CIDR but is malformed. */
static int parse_cidr(const char *item, size_t n, unsigned char net[16], int *family, long *bits)
{
    const char *slash = memchr(item, '/', n);
    size_t an = slash ? (size_t)(slash - item) : n;
    if (!parse_ip(item, an, net, family))
        return slash ? -1 : 0;
    long max = *family == AF_INET ? 32 : 128;
    *bits = max;
    if (slash) {
        char buf[8];
        size_t bn = n - an - 1;
        if (bn == 0 || bn >= sizeof(buf))
            return -1;
        memcpy(buf, slash + 1, bn);
        buf[bn] = '\0';
        char *end;
        *bits = strtol(buf, &end, 10);
        if (*end || *bits < 0 || *bits > max)
            return -1;
    }
    return 1;
}

static bool prefix_equal(const unsigned char *a, const unsigned char *b, long bits)
{
    long full = bits / 8;
    if (memcmp(a, b, (size_t)full) != 0)
        return false;
    if (bits % 8 == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - bits % 8));
    return (a[full] & mask) == (b[full] & mask);
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '.' ||
           c == '-' || c == '_';
}

int dsn_policy_hosts_check(const char *list, errdetail *e)
{
    for (const char *p = list ? list : ""; *p;) {
        size_t n = strcspn(p, ",");
        unsigned char net[16];
        int fam = 0;
        long bits;
        int rc = parse_cidr(p, n, net, &fam, &bits);
        bool name = n > 0;
        for (size_t i = 0; i < n && rc == 0; i++)
            name = name && name_char(p[i]);
        if (rc < 0 || (rc == 0 && !name))
            return errdetail_set(e, CITRUS_EINVAL,
                                 "'%.*s' is neither a CIDR (10.0.0.0/8, fd00::/8), an address "
                                 "nor a host name",
                                 (int)(n > 100 ? 100 : n), p);
        p += n;
        if (*p)
            p++;
    }
    return 0;
}

/* Whether host h[0..n) is in the list: an address in one of its CIDRs, a
 * name equal to one of its names or under one of its ".suffix"es. */
static bool host_allowed(const char *list, const char *h, size_t n)
{
    unsigned char ip[16];
    int fam = 0;
    bool is_ip = parse_ip(h, n, ip, &fam);
    for (const char *p = list; *p;) {
        size_t m = strcspn(p, ",");
        unsigned char net[16];
        int nfam = 0;
        long bits;
        int rc = parse_cidr(p, m, net, &nfam, &bits);
        if (rc > 0 && is_ip && nfam == fam && prefix_equal(ip, net, bits))
            return true;
        if (rc == 0 && !is_ip) {
            bool suffix = p[0] == '.' && n > m && strncasecmp(h + n - m, p, m) == 0;
            if (suffix || (m == n && strncasecmp(h, p, n) == 0))
                return true;
        }
        p += m;
        if (*p)
            p++;
    }
    return false;
}

/* After every option: a host was named, and each TCP one is allowed. */
static int check_hosts_allowed(const check_ctx *c, errdetail *e)
{
    if (!c->host_named)
        return errdetail_set(e, CITRUS_EINVAL,
                             "dsn names no host: libpq would connect to a default Unix socket, "
                             "which is outside shards.socket_dirs; name a TCP host");
    const char *list = c->p ? c->p->allowed_hosts : NULL;
    if (!list || !*list)
        return 0;
    char want = c->hostaddr_named ? 'a' : 'h'; /* where libpq connects */
    for (const char *p = c->hosts; *p;) {
        size_t n = strcspn(p, "\n");
        bool socket = n > 1 && (p[1] == '/' || p[1] == '@');
        if (p[0] == want && !socket && !host_allowed(list, p + 1, n - 1))
            return errdetail_set(e, CITRUS_EINVAL, "dsn %s '%.*s' is not in shards.allowed_hosts",
                                 want == 'a' ? "hostaddr" : "host", (int)(n > 201 ? 200 : n - 1),
                                 p + 1);
        p += n;
        if (*p)
            p++;
    }
    return 0;
}

int dsn_check(const char *dsn, const dsn_policy *p, errdetail *e)
{
    dsn_info info;
    int rc = dsn_parse(dsn, &info, e);
    if (rc < 0 || info.kind != DSN_POSTGRES)
        return rc;
    check_ctx *c = calloc(1, sizeof(*c));
    if (!c)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    c->p = p;
    rc = pg_scheme_len(dsn) ? uri_options(dsn, check_opt, c, e)
                            : conninfo_options(dsn, check_opt, c, e);
    if (rc == 0)
        rc = check_hosts_allowed(c, e);
    free(c);
    return rc;
}

/* ---- parts, the URI form, identity ------------------------------------- */

void dsn_parts_clear(dsn_parts *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nopts; i++) {
        free(p->opts[i].key);
        free(p->opts[i].val);
    }
    free(p->opts);
    p->opts = NULL;
    p->nopts = 0;
}

const char *dsn_parts_get(const dsn_parts *p, const char *key)
{
    for (size_t i = 0; i < p->nopts; i++)
        if (strcmp(p->opts[i].key, key) == 0)
            return p->opts[i].val;
    return NULL;
}

static int split_opt(const char *key, const char *v, size_t vlen, void *vctx, errdetail *e)
{
    dsn_parts *p = vctx;
    if (memchr(v, '\0', vlen))
        return errdetail_set(e, CITRUS_EINVAL, "dsn option '%.60s' contains a NUL byte", key);
    char *val = strdup(v);
    if (!val)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    for (size_t i = 0; i < p->nopts; i++)
        if (strcmp(p->opts[i].key, key) == 0) { /* the last one wins, as in libpq */
            free(p->opts[i].val);
            p->opts[i].val = val;
            return 0;
        }
    dsn_opt *o = realloc(p->opts, (p->nopts + 1) * sizeof(*o));
    char *k = o ? strdup(key) : NULL;
    if (!k) {
        if (o)
            p->opts = o;
        free(val);
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    }
    p->opts = o;
    p->opts[p->nopts++] = (dsn_opt){k, val};
    return 0;
}

/* A URI's authority gives its hosts and ports one by one (uri_hosts):
 * they are joined into the comma lists libpq makes of them, a port slot
 * per host (empty where the host has none). */
typedef struct split_ctx {
    dsn_parts *p;
    bool uri, auth_done, any_port;
    size_t nhosts;
    strbuf hosts, ports;
} split_ctx;

static int split_flush(void *vctx, errdetail *e)
{
    split_ctx *c = vctx;
    int rc = 0;
    c->auth_done = true;
    if (c->hosts.err || c->ports.err)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    if (c->nhosts)
        rc = split_opt("host", c->hosts.data ? c->hosts.data : "", c->hosts.len, c->p, e);
    if (rc == 0 && c->any_port)
        rc = split_opt("port", c->ports.data ? c->ports.data : "", c->ports.len, c->p, e);
    return rc;
}

static int split_uri_opt(const char *key, const char *v, size_t vlen, void *vctx, errdetail *e)
{
    split_ctx *c = vctx;
    bool host = strcmp(key, "host") == 0, port = strcmp(key, "port") == 0;
    if (c->uri && !c->auth_done && host) {
        if (memchr(v, '\0', vlen))
            return errdetail_set(e, CITRUS_EINVAL, "dsn option 'host' contains a NUL byte");
        if (c->nhosts++) {
            strbuf_add(&c->hosts, ",", 1);
            strbuf_add(&c->ports, ",", 1);
        }
        strbuf_add(&c->hosts, v, vlen);
        return 0;
    }
    if (c->uri && !c->auth_done && port) {
        c->any_port = true;
        strbuf_add(&c->ports, v, vlen);
        return 0;
    }
    return split_opt(key, v, vlen, c->p, e);
}

int dsn_split(const char *dsn, dsn_parts *out, errdetail *e)
{
    memset(out, 0, sizeof(*out));
    dsn_info info;
    int rc = dsn_parse(dsn, &info, e);
    if (rc < 0)
        return rc;
    out->kind = info.kind;
    if (info.kind == DSN_SQLITE) {
        memcpy(out->path, info.path, sizeof(out->path));
        return 0;
    }
    split_ctx c = {.p = out, .uri = pg_scheme_len(dsn) > 0};
    rc = c.uri ? uri_options_ex(dsn, split_uri_opt, &c, split_flush, e)
               : conninfo_options(dsn, split_uri_opt, &c, e);
    strbuf_free(&c.hosts);
    strbuf_free(&c.ports);
    if (rc < 0)
        dsn_parts_clear(out);
    return rc;
}

/* s percent-encoded: RFC 3986 unreserved characters kept, all else %XX. */
static void add_enc(strbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit((char)c) ||
                    c == '-' || c == '.' || c == '_' || c == '~';
        if (keep) {
            strbuf_add(b, s + i, 1);
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            strbuf_add(b, esc, 3);
        }
    }
}

static void add_enc_str(strbuf *b, const char *s)
{
    add_enc(b, s, strlen(s));
}

/* How many items a comma-separated list has ("" is one, empty, item). */
static size_t list_count(const char *s)
{
    size_t n = 1;
    for (; *s; s++)
        n += *s == ',';
    return n;
}

/* Item i of a comma-separated list: start and length. */
static const char *list_item(const char *s, size_t i, size_t *len)
{
    for (; i > 0; i--) {
        const char *c = strchr(s, ',');
        if (!c) {
            *len = 0;
            return "";
        }
        s = c + 1;
    }
    *len = strcspn(s, ",");
    return s;
}

/* Whether the hosts can sit in the URI's authority: every item a TCP host
 * (no socket directory, none empty) and the ports one or one per host. */
static bool hosts_in_authority(const char *host, const char *port)
{
    if (!host || !*host)
        return false;
    size_t nh = list_count(host);
    for (size_t i = 0; i < nh; i++) {
        size_t n;
        const char *h = list_item(host, i, &n);
        if (n == 0 || h[0] == '/' || h[0] == '@')
            return false;
        bool v6 = memchr(h, ':', n) != NULL; /* then an IPv6 literal, in [] */
        for (size_t j = 0; v6 && j < n; j++)
            if (!is_hex(h[j]) && h[j] != ':' && h[j] != '.' && h[j] != '%')
                return false;
    }
    if (!port)
        return true;
    size_t np = list_count(port);
    for (size_t i = 0; i < np; i++) {
        size_t n;
        const char *p = list_item(port, i, &n);
        unsigned long num = 0;
        for (size_t j = 0; j < n; j++) {
            if (!is_digit(p[j]) || j >= 5)
                return false; /* what the URI's authority takes: 1..65535 */
            num = num * 10 + (unsigned long)(p[j] - '0');
        }
        if ((n == 0 && np > 1) || (n > 0 && (num == 0 || num > 65535)))
            return false;
    }
    return np == 1 || np == nh;
}

static void add_authority_hosts(strbuf *b, const char *host, const char *port)
{
    size_t nh = list_count(host), np = port ? list_count(port) : 0;
    for (size_t i = 0; i < nh; i++) {
        size_t hl, pl = 0;
        const char *h = list_item(host, i, &hl);
        const char *p = np ? list_item(port, np == 1 ? 0 : i, &pl) : NULL;
        if (i)
            strbuf_add(b, ",", 1);
        bool v6 = memchr(h, ':', hl) != NULL;
        if (v6)
            strbuf_add(b, "[", 1);
        for (size_t j = 0; j < hl; j++) { /* ':' and hex stay bare inside [] */
            if (v6 && h[j] == ':')
                strbuf_add(b, ":", 1);
            else
                add_enc(b, h + j, 1);
        }
        if (v6)
            strbuf_add(b, "]", 1);
        if (pl) {
            strbuf_add(b, ":", 1);
            strbuf_add(b, p, pl);
        }
    }
}

static void add_query(strbuf *b, bool *first, const char *key, const char *val)
{
    strbuf_add(b, *first ? "?" : "&", 1);
    *first = false;
    strbuf_str(b, key);
    strbuf_add(b, "=", 1);
    add_enc_str(b, val);
}

static void pg_uri(const dsn_parts *p, strbuf *b)
{
    const char *user = dsn_parts_get(p, "user"), *pw = dsn_parts_get(p, "password");
    const char *host = dsn_parts_get(p, "host"), *port = dsn_parts_get(p, "port");
    const char *db = dsn_parts_get(p, "dbname");
    bool auth_hosts = hosts_in_authority(host, port);
    if (user && !*user)
        user = NULL; /* "user=''" is libpq's default user: kept in the query */
    strbuf_str(b, "postgresql://");
    if (user) {
        add_enc_str(b, user);
        if (pw) {
            strbuf_add(b, ":", 1);
            add_enc_str(b, pw);
        }
        strbuf_add(b, "@", 1);
    }
    if (auth_hosts)
        add_authority_hosts(b, host, port);
    if (db) {
        strbuf_add(b, "/", 1);
        add_enc_str(b, db);
    }
    bool first = true;
    for (size_t i = 0; i < p->nopts; i++) {
        const char *k = p->opts[i].key;
        bool in_auth = (user && strcmp(k, "user") == 0) || strcmp(k, "dbname") == 0 ||
                       (user && strcmp(k, "password") == 0) ||
                       (auth_hosts && (strcmp(k, "host") == 0 || strcmp(k, "port") == 0));
        if (!in_auth)
            add_query(b, &first, k, p->opts[i].val);
    }
}

/* One host of a list as the identity names it. */
static void identity_host(strbuf *b, const char *h, size_t n)
{
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n == 0) {
        strbuf_str(b, "unix:"); /* libpq's default socket directory */
        return;
    }
    if (h[0] == '/' || h[0] == '@') {
        while (n > 1 && h[n - 1] == '/')
            n--;
        strbuf_str(b, "unix:");
        strbuf_add(b, h, n);
        return;
    }
    while (n > 1 && h[n - 1] == '.')
        n--; /* "db.example.com." is "db.example.com" */
    static const char *const loopback[] = {"localhost", "127.0.0.1", "::1", NULL};
    for (size_t i = 0; loopback[i]; i++)
        if (strlen(loopback[i]) == n && strncasecmp(h, loopback[i], n) == 0) {
            strbuf_str(b, "localhost");
            return;
        }
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        c = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
        strbuf_add(b, &c, 1);
    }
}

static void pg_identity(const dsn_parts *p, strbuf *b)
{
    const char *addr = dsn_parts_get(p, "hostaddr"), *host = dsn_parts_get(p, "host");
    const char *hosts = addr && *addr ? addr : host ? host : "";
    const char *port = dsn_parts_get(p, "port"), *db = dsn_parts_get(p, "dbname");
    if (!db || !*db)
        db = dsn_parts_get(p, "user");
    size_t nh = list_count(hosts), np = port ? list_count(port) : 0;
    for (size_t i = 0; i < nh; i++) {
        size_t hl, pl = 0;
        const char *h = list_item(hosts, i, &hl);
        const char *pt = np ? list_item(port, np == 1 ? 0 : i, &pl) : NULL;
        unsigned long num = 0;
        for (size_t j = 0; j < pl && is_digit(pt[j]) && num < 100000; j++)
            num = num * 10 + (unsigned long)(pt[j] - '0');
        if (i)
            strbuf_add(b, "\n", 1);
        strbuf_str(b, "postgresql://");
        identity_host(b, h, hl);
        char pbuf[24];
        snprintf(pbuf, sizeof(pbuf), ":%lu/", num ? num : 5432ul);
        strbuf_str(b, pbuf);
        add_enc_str(b, db ? db : "");
    }
}

/* dsn_to_uri (identity false) or dsn_identity. */
static char *render(const char *dsn, bool identity, errdetail *e)
{
    dsn_parts p;
    if (dsn_split(dsn, &p, e) < 0)
        return NULL;
    strbuf b = STRBUF_INIT;
    if (p.kind == DSN_SQLITE) {
        strbuf_str(&b, identity || p.path[0] != '/' ? "sqlite:" : "sqlite://");
        strbuf_str(&b, p.path);
    } else if (identity) {
        pg_identity(&p, &b);
    } else {
        pg_uri(&p, &b);
    }
    dsn_parts_clear(&p);
    char *out = strbuf_take(&b, NULL);
    if (!out)
        errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    return out;
}

char *dsn_to_uri(const char *dsn, errdetail *e)
{
    return render(dsn, false, e);
}

char *dsn_identity(const char *dsn, errdetail *e)
{
    return render(dsn, true, e);
}

/* ---- redaction of free text -------------------------------------------- */

static bool secret_key(const char *k, size_t n)
{
    static const char *const words[] = {"password", "passwd", "pwd", "secret", "token", NULL};
    for (size_t i = 0; words[i]; i++) {
        size_t w = strlen(words[i]);
        for (size_t j = 0; j + w <= n; j++)
            if (strncasecmp(k + j, words[i], w) == 0)
                return true;
    }
    return false;
}

static bool word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' ||
           c == '-' || c == '.';
}

static bool token_end(char c)
{
    return !c || is_space(c) || c == '"' || c == '\'' || c == '<' || c == '>' || c == '`';
}

/* A postgres URI at s: its user:password@ masked (to the last '@' of the
 * token, whatever the password holds). Returns the bytes consumed. */
static size_t text_uri(const char *s, strbuf *b)
{
    size_t n = 0;
    while (!token_end(s[n]))
        n++;
    size_t scheme = strcspn(s, ":") + 3;
    const char *at = NULL;
    for (size_t i = scheme; i < n; i++)
        if (s[i] == '@')
            at = s + i;
    const char *colon = at ? memchr(s + scheme, ':', (size_t)(at - s - scheme)) : NULL;
    if (!colon) {
        strbuf_add(b, s, scheme);
        return scheme;
    }
    strbuf_add(b, s, (size_t)(colon + 1 - s));
    strbuf_add(b, stars, 3);
    return (size_t)(at - s);
}

/* A secret-like key at s followed by = or : and a value: the key and
 * separator copied, the value masked; 0 when s holds no such thing. */
static size_t text_pair(const char *s, strbuf *b)
{
    size_t k = 0;
    while (word_char(s[k]))
        k++;
    if (k == 0 || !secret_key(s, k))
        return 0;
    size_t i = k;
    bool quoted_key = s[i] == '"';
    if (s[i] == '"' || s[i] == '\'')
        i++;
    while (s[i] == ' ' || s[i] == '\t')
        i++;
    if (s[i] != '=' && s[i] != ':')
        return 0;
    i++;
    while (s[i] == ' ' || s[i] == '\t')
        i++;
    size_t v = i;
    /* "key": 12 in JSON (a number, true, null) is no secret: secrets are strings */
    if (quoted_key && s[i] != '"')
        return 0;
    if (s[i] == '\'' || s[i] == '"') {
        char q = s[i++];
        while (s[i] && s[i] != q) {
            if (s[i] == '\\' && s[i + 1])
                i++;
            i++;
        }
        if (s[i])
            i++;
    } else {
        while (s[i] && !is_space(s[i]) && s[i] != ',' && s[i] != ';' && s[i] != '&' &&
               s[i] != '"' && s[i] != '}')
            i++;
    }
    if (i == v)
        return 0;
    strbuf_add(b, s, v);
    if (s[v] == '"') /* JSON stays JSON */
        strbuf_add(b, "\"***\"", 5);
    else
        strbuf_add(b, stars, 3);
    return i;
}

char *dsn_redact_text(const char *text)
{
    if (!text)
        return NULL;
    strbuf b = STRBUF_INIT;
    const char *s = text;
    while (*s) {
        bool at_word = s == text || !word_char(s[-1]);
        size_t used = 0;
        if (at_word &&
            (strncasecmp(s, "postgres://", 11) == 0 || strncasecmp(s, "postgresql://", 13) == 0))
            used = text_uri(s, &b);
        else if (at_word)
            used = text_pair(s, &b);
        if (used == 0) {
            size_t n = 1;
            while (word_char(s[n - 1]) && word_char(s[n]))
                n++; /* the rest of a word: no key starts inside one */
            strbuf_add(&b, s, n);
            used = n;
        }
        s += used;
    }
    return strbuf_take(&b, NULL);
}
