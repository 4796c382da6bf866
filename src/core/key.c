/* core/key.c — catalog key validation (pure). */
#include "core/key.h"

#include <string.h>

#include "citrus/errors.h"

bool key_utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        unsigned cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + n >= len) /* truncated sequence */
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        static const unsigned min_cp[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

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
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        /* The HTTP layer decodes %00 to C0 80 (see http/server.c). */
        bool nul = c == 0 || (c == 0xc0 && i + 1 < len && (unsigned char)s[i + 1] == 0x80);
        if (nul) {
            *why = "key contains NUL";
            return CITRUS_EBADKEY;
        }
        if (c < 0x20 || c == 0x7f) {
            *why = "key contains a control character";
            return CITRUS_EBADKEY;
        }
    }
    if (!key_utf8_valid((const unsigned char *)s, len)) {
        *why = "key is not valid UTF-8";
        return CITRUS_EBADKEY;
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
