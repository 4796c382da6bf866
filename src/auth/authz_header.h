/* auth/authz_header.h — the Authorization request header (RFC 9110 11.6.2,
 * RFC 6750 2.1): its scheme and token68 credentials, and the Bearer form.
 *
 * The grammar accepted, on the value as received (the server may or may
 * not have trimmed it):
 *   value  = OWS scheme 1*( SP / HTAB ) token68 OWS
 *   scheme = 1*tchar                    (compared case-insensitively)
 *   token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
 * with the credentials at most AUTHZ_MAX_CREDENTIALS bytes. Auth-param
 * lists (scheme a=b, c=d) are not token68 and are refused: Bearer and API
 * key credentials never use them. Messages never quote the credentials. */
#ifndef CITRUS_AUTH_AUTHZ_HEADER_H
#define CITRUS_AUTH_AUTHZ_HEADER_H

#include <stddef.h>

#include "core/errdetail.h"

#define AUTHZ_MAX_CREDENTIALS 8192

typedef struct authz_credentials {
    const char *scheme; /* into the value, not NUL-terminated */
    size_t scheme_len;
    const char *token; /* into the value, not NUL-terminated */
    size_t token_len;
} authz_credentials;

/* Splits value (len bytes) into scheme and credentials. 0, or
 * CITRUS_EUNAUTHENTICATED with e saying what is malformed. */
int authz_parse(const char *value, size_t len, authz_credentials *out, errdetail *e);

/* "Bearer <token>": *tok and *toklen point into value. 0, or
 * CITRUS_EUNAUTHENTICATED (malformed, or another scheme). */
int authz_bearer(const char *value, size_t len, const char **tok, size_t *toklen, errdetail *e);

#endif
