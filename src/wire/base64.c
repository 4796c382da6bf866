/* wire/base64.c — thin wrappers over OpenSSL's EVP block coders. */
#include "wire/base64.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

char *base64_encode(const unsigned char *data, size_t len)
{
    size_t cap = 4 * ((len + 2) / 3) + 1;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    int n = len ? EVP_EncodeBlock((unsigned char *)out, data, (int)len) : 0;
    out[n] = '\0';
    return out;
}

/* Strict RFC 4648 form: only alphabet characters, '=' only as one or two
 * final padding characters (EVP_DecodeBlock alone is more lenient). */
static int well_formed(const char *t, size_t n)
{
    if (n % 4 != 0)
        return 0;
    size_t pad = 0;
    if (n && t[n - 1] == '=')
        pad = n >= 2 && t[n - 2] == '=' ? 2 : 1;
    for (size_t i = 0; i < n - pad; i++) {
        char c = t[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '+' || c == '/';
        if (!ok)
            return 0;
    }
    if (pad == 0)
        return 1;
    /* Canonical form: the bits that padding leaves unused are zero. */
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int last = (int)(strchr(alphabet, t[n - pad - 1]) - alphabet);
    return (last & (pad == 2 ? 0x0f : 0x03)) == 0;
}

unsigned char *base64_decode(const char *text, size_t text_len, size_t *out_len)
{
    if (!well_formed(text, text_len))
        return NULL;
    unsigned char *out = malloc(text_len / 4 * 3 + 1);
    if (!out)
        return NULL;
    if (text_len == 0) {
        *out_len = 0;
        return out;
    }
    int n = EVP_DecodeBlock(out, (const unsigned char *)text, (int)text_len);
    if (n < 0) {
        free(out);
        return NULL;
    }
    /* EVP_DecodeBlock counts padding as data: take it back off. */
    size_t pad = 0;
    if (text[text_len - 1] == '=')
        pad++;
    if (text[text_len - 2] == '=')
        pad++;
    *out_len = (size_t)n - pad;
    return out;
}
