/* http/base64.c — thin wrappers over OpenSSL's EVP block coders. */
#include "http/base64.h"

#include <openssl/evp.h>
#include <stdlib.h>

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

unsigned char *base64_decode(const char *text, size_t text_len, size_t *out_len)
{
    if (text_len % 4 != 0)
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
