/* wire/digest.c — SHA-256 as hex (OpenSSL's EVP). */
#include "wire/digest.h"

#include <openssl/evp.h>

#include "citrus/errors.h"

void digest_hex(const unsigned char *bytes, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[bytes[i] >> 4];
        out[2 * i + 1] = hex[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

int digest_sha256_hex(const void *data, size_t len, char hex[DIGEST_SHA256_HEX + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    hex[0] = '\0';
    if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
        return CITRUS_EINTERNAL;
    digest_hex(md, 32, hex);
    return 0;
}
