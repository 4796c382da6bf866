/* tests/fuzz/fuzz_base64.c — base64_encode and base64_decode.
 *
 * Two properties per input: decode(encode(x)) == x with the padded length
 * 4 * ceil(n / 3); and decoding the input as text agrees with an independent
 * reference decoder of the strict RFC 4648 form base64.h promises (alphabet
 * only, length a multiple of 4, '=' only as one or two final characters). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "wire/base64.h"

static int sextet(uint8_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decodes t[0..n) into out (n / 4 * 3 bytes); returns the length or -1. */
static long reference_decode(const uint8_t *t, size_t n, uint8_t *out)
{
    if (n % 4 != 0)
        return -1;
    size_t pad = 0;
    while (pad < 2 && pad < n && t[n - 1 - pad] == '=')
        pad++;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = 0;
        for (size_t k = 0; k < 4; k++) {
            int s = 0;
            if (i + k < n - pad) {
                s = sextet(t[i + k]);
                if (s < 0)
                    return -1;
            }
            v = v << 6 | (uint32_t)s;
        }
        /* canonical: the bits padding leaves unused are zero */
        if (i + 4 == n && pad && (v & (pad == 1 ? 0xffu : 0xffffu)) != 0)
            return -1;
        out[o++] = (uint8_t)(v >> 16);
        out[o++] = (uint8_t)(v >> 8);
        out[o++] = (uint8_t)v;
    }
    return (long)(o - pad);
}

static void check_round_trip(const uint8_t *data, size_t size)
{
    char *enc = base64_encode(data, size);
    FUZZ_CHECK(enc != NULL, "base64_encode failed for %zu bytes", size);
    size_t elen = strlen(enc);
    FUZZ_CHECK(elen == 4 * ((size + 2) / 3), "encoding of %zu bytes has %zu characters", size,
               elen);
    size_t dlen = (size_t)-1;
    unsigned char *dec = base64_decode(enc, elen, &dlen);
    FUZZ_CHECK(dec != NULL, "decode(encode(x)) refused \"%s\"", enc);
    FUZZ_CHECK(dlen == size, "decode(encode(x)) has %zu bytes, x has %zu", dlen, size);
    FUZZ_CHECK(size == 0 || memcmp(dec, data, size) == 0, "decode(encode(x)) != x");
    free(dec);
    free(enc);
}

static void check_decode(const uint8_t *data, size_t size)
{
    uint8_t *want = malloc(size / 4 * 3 + 1);
    FUZZ_CHECK(want != NULL, "out of memory");
    long wlen = reference_decode(data, size, want);
    size_t dlen = (size_t)-1;
    unsigned char *got = base64_decode((const char *)data, size, &dlen);
    FUZZ_CHECK((got != NULL) == (wlen >= 0), "base64_decode %s what the reference %s",
               got ? "accepted" : "refused", wlen >= 0 ? "accepts" : "refuses");
    if (got) {
        FUZZ_CHECK(dlen == (size_t)wlen, "decoded %zu bytes, reference %ld", dlen, wlen);
        FUZZ_CHECK(dlen == 0 || memcmp(got, want, dlen) == 0, "decoded bytes differ");
        /* Only canonical text is accepted, so re-encoding gives it back. */
        char *again = base64_encode(got, dlen);
        FUZZ_CHECK(again && strlen(again) == size, "re-encoding changed the length");
        FUZZ_CHECK(memcmp(again, data, size) == 0, "re-encoding differs");
        free(again);
        free(got);
    }
    free(want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_round_trip(data, size);
    check_decode(data, size);
    return 0;
}
