/* core/key.c — catalog key validation (pure). */
#include "core/key.h"

#include <string.h>

#include "citrus/errors.h"
#include "core/utf8.h"

/* Checks segments of s[0..len); a trailing '/' is allowed when open_end. */
static int check_segments(const char *s, size_t len, bool open_end, const char **why)
{
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '/')
            continue;
        size_t seg = i - start;
        if (seg == 0) {
            if (i == len && open_end && len > 0)
                return 0;
            *why = i == 0 ? "key must not start with '/'" : "key has an empty segment";
            return CITRUS_EBADKEY;
        }
        if ((seg == 1 && s[start] == '.') || (seg == 2 && s[start] == '.' && s[start + 1] == '.')) {
            *why = "key segments may not be '.' or '..'";
            return CITRUS_EBADKEY;
        }
        start = i + 1;
    }
    return 0;
}

static int check_bytes(const char *s, size_t len, const char **why)
{
    if (len > KEY_MAX_BYTES) {
        *why = "key longer than 1024 bytes";
        return CITRUS_EBADKEY;
    }
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        /* The HTTP layer decodes %00 to C0 80 (see http/server.c). */
        if (u[i] == 0 || (u[i] == 0xc0 && i + 1 < len && u[i + 1] == 0x80)) {
            *why = "key contains NUL";
            return CITRUS_EBADKEY;
        }
        uint32_t cp;
        size_t n = utf8_char_len(u + i, len - i, &cp);
        if (n == 0) {
            *why = "key is not valid UTF-8";
            return CITRUS_EBADKEY;
        }
        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) { /* C0, DEL, C1 */
            *why = "key contains a control character";
            return CITRUS_EBADKEY;
        }
        i += n;
    }
    return 0;
}

int key_validate(const char *key, size_t len, const char **why)
{
    if (len == 0) {
        *why = "key is empty";
        return CITRUS_EBADKEY;
    }
    int rc = check_bytes(key, len, why);
    return rc ? rc : check_segments(key, len, false, why);
}

int key_validate_prefix(const char *prefix, size_t len, const char **why)
{
    if (len == 0)
        return 0;
    int rc = check_bytes(prefix, len, why);
    return rc ? rc : check_segments(prefix, len, true, why);
}
