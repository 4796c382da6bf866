/* tests/fuzz/fuzz_key.c — key_validate, key_validate_prefix, utf8_valid.
 *
 * The input is the key as raw bytes. Each verdict is compared with an
 * independent oracle written from the rules in core/key.h, not from key.c:
 * UTF-8 by the well-formed byte ranges of Unicode Table 3-7, control bytes,
 * and segments split at '/'. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "citrus/errors.h"
#include "core/key.h"
#include "core/utf8.h"

/* Unicode 15, Table 3-7: well-formed UTF-8 byte sequences. */
static bool oracle_utf8(const uint8_t *s, size_t n)
{
    static const struct {
        uint8_t lead_lo, lead_hi, second_lo, second_hi;
        int len;
    } forms[] = {
        {0xc2, 0xdf, 0x80, 0xbf, 2}, {0xe0, 0xe0, 0xa0, 0xbf, 3}, {0xe1, 0xec, 0x80, 0xbf, 3},
        {0xed, 0xed, 0x80, 0x9f, 3}, {0xee, 0xef, 0x80, 0xbf, 3}, {0xf0, 0xf0, 0x90, 0xbf, 4},
        {0xf1, 0xf3, 0x80, 0xbf, 4}, {0xf4, 0xf4, 0x80, 0x8f, 4},
    };
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        int len = 0;
        for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
            if (s[i] >= forms[f].lead_lo && s[i] <= forms[f].lead_hi) {
                if (i + 1 >= n || s[i + 1] < forms[f].second_lo || s[i + 1] > forms[f].second_hi)
                    return false;
                len = forms[f].len;
                break;
            }
        }
        if (len == 0)
            return false;
        if (i + (size_t)len > n)
            return false;
        for (int k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xbf)
                return false;
        i += (size_t)len;
    }
    return true;
}

static bool oracle_bytes(const uint8_t *s, size_t n)
{
    if (n > KEY_MAX_BYTES)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x20 || s[i] == 0x7f)
            return false;
        /* C1 controls U+0080..U+009F are encoded C2 80 .. C2 9F */
        if (s[i] == 0xc2 && i + 1 < n && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f)
            return false;
    }
    return oracle_utf8(s, n);
}

/* Every '/'-separated segment non-empty and not "." or ".."; with open_end a
 * single trailing '/' is allowed (the segment after it is then empty). */
static bool oracle_segments(const uint8_t *s, size_t n, bool open_end)
{
    const uint8_t *p = s, *end = s + n;
    for (;;) {
        const uint8_t *slash = memchr(p, '/', (size_t)(end - p));
        const uint8_t *seg_end = slash ? slash : end;
        size_t len = (size_t)(seg_end - p);
        if (len == 0)
            return open_end && !slash && p == end && n > 0 && s[n - 1] == '/';
        if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        if (!slash)
            return true;
        p = slash + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *key = (const char *)data;
    const char *why = NULL;

    bool utf8 = utf8_valid(data, size);
    FUZZ_CHECK(utf8 == oracle_utf8(data, size), "utf8_valid says %d for %zu bytes", utf8, size);

    bool want_key = size > 0 && oracle_bytes(data, size) && oracle_segments(data, size, false);
    int rc = key_validate(key, size, &why);
    FUZZ_CHECK(rc == 0 || rc == CITRUS_EBADKEY, "key_validate returned %d", rc);
    FUZZ_CHECK((rc == 0) == want_key, "key_validate returned %d, oracle says %s (why: %s)", rc,
               want_key ? "valid" : "invalid", rc ? why : "-");
    if (rc != 0)
        FUZZ_CHECK(why && why[0], "key_validate refused without a reason");

    why = NULL;
    bool want_prefix = size == 0 || (oracle_bytes(data, size) && oracle_segments(data, size, true));
    rc = key_validate_prefix(key, size, &why);
    FUZZ_CHECK(rc == 0 || rc == CITRUS_EBADKEY, "key_validate_prefix returned %d", rc);
    FUZZ_CHECK((rc == 0) == want_prefix, "key_validate_prefix returned %d, oracle says %s (%s)", rc,
               want_prefix ? "valid" : "invalid", rc ? why : "-");
    if (rc != 0)
        FUZZ_CHECK(why && why[0], "key_validate_prefix refused without a reason");

    /* Every valid key is a valid prefix, and so is the key with a '/'. */
    if (want_key) {
        FUZZ_CHECK(want_prefix, "a valid key is not a valid prefix");
        if (size < KEY_MAX_BYTES) {
            char buf[KEY_MAX_BYTES + 1];
            memcpy(buf, data, size);
            buf[size] = '/';
            FUZZ_CHECK(key_validate_prefix(buf, size + 1, &why) == 0,
                       "key + '/' refused as a prefix: %s", why);
            FUZZ_CHECK(key_validate(buf, size + 1, &why) == CITRUS_EBADKEY,
                       "key + '/' accepted as a key");
        }
    }
    return 0;
}
