/* core/utf8.c — UTF-8 validation (pure). */
#include "core/utf8.h"

#include <string.h>

size_t utf8_char_len(const unsigned char *s, size_t n, uint32_t *cp)
{
    static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
    if (n == 0)
        return 0;
    unsigned c = s[0];
    size_t extra;
    uint32_t v;
    if (c < 0x80) {
        extra = 0;
        v = c;
    } else if ((c & 0xe0) == 0xc0) {
        extra = 1;
        v = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        extra = 2;
        v = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        extra = 3;
        v = c & 0x07;
    } else {
        return 0;
    }
    if (extra >= n)
        return 0; /* truncated */
    for (size_t k = 1; k <= extra; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[k] & 0x3f);
    }
    if (v < min_cp[extra] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    if (cp)
        *cp = v;
    return extra + 1;
}

bool utf8_valid(const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t n = utf8_char_len(s + i, len - i, NULL);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

void utf8_sanitize(const char *s, char *out)
{
    size_t len = strlen(s);
    for (size_t i = 0; i < len;) {
        size_t n = utf8_char_len((const unsigned char *)s + i, len - i, NULL);
        if (n == 0) {
            out[i++] = '?';
            continue;
        }
        memcpy(out + i, s + i, n);
        i += n;
    }
    out[len] = '\0';
}
