/* auth/authz_header.c — the Authorization header's grammar (see
 * authz_header.h). */
#include "auth/authz_header.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "citrus/errors.h"

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_alnum(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* RFC 9110 5.6.2 tchar */
static bool is_tchar(char c)
{
    return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* RFC 9110 11.2 token68, less the '=' tail */
static bool is_token68(char c)
{
    return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

int authz_parse(const char *value, size_t len, authz_credentials *out, errdetail *e)
{
    out->scheme = out->token = NULL;
    out->scheme_len = out->token_len = 0;
    size_t i = 0, end = len;
    while (i < end && is_blank(value[i]))
        i++;
    while (end > i && is_blank(value[end - 1]))
        end--;
    size_t s0 = i;
    while (i < end && is_tchar(value[i]))
        i++;
    if (i == s0)
        return errdetail_set(e, CITRUS_EUNAUTHENTICATED,
                             "Authorization header: no scheme (expected \"Bearer <token>\")");
    size_t s1 = i;
    while (i < end && is_blank(value[i]))
        i++;
    if (i == end)
        return errdetail_set(e, CITRUS_EUNAUTHENTICATED, "Authorization header: no credentials");
    if (i == s1)
        return errdetail_set(e, CITRUS_EUNAUTHENTICATED,
                             "Authorization header: the scheme holds a character not allowed");
    size_t t0 = i;
    while (i < end && is_token68(value[i]))
        i++;
    if (i == t0)
        return errdetail_set(e, CITRUS_EUNAUTHENTICATED,
                             "Authorization header: the credentials start with a character not "
                             "allowed");
    while (i < end && value[i] == '=')
        i++;
    if (i != end)
        return errdetail_set(e, CITRUS_EUNAUTHENTICATED,
                             "Authorization header: the credentials hold a character not allowed "
                             "(one token68 expected)");
    if (end - t0 > AUTHZ_MAX_CREDENTIALS)
        return errdetail_set(e, CITRUS_EUNAUTHENTICATED,
                             "Authorization header: credentials of %zu bytes, over the %d limit",
                             end - t0, AUTHZ_MAX_CREDENTIALS);
    out->scheme = value + s0;
    out->scheme_len = s1 - s0;
    out->token = value + t0;
    out->token_len = end - t0;
    return 0;
}

int authz_bearer(const char *value, size_t len, const char **tok, size_t *toklen, errdetail *e)
{
    *tok = NULL;
    *toklen = 0;
    authz_credentials c;
    int rc = authz_parse(value, len, &c, e);
    if (rc != 0)
        return rc;
    if (c.scheme_len != 6 || strncasecmp(c.scheme, "Bearer", 6) != 0)
        return errdetail_set(e, CITRUS_EUNAUTHENTICATED,
                             "Authorization header: the scheme is not Bearer");
    *tok = c.token;
    *toklen = c.token_len;
    return 0;
}
