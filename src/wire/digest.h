/* wire/digest.h — SHA-256 as lowercase hex: the one home for what the
 * idempotency fingerprints, schema checksums, snapshot files and API key
 * hashes compute. */
#ifndef CITRUS_WIRE_DIGEST_H
#define CITRUS_WIRE_DIGEST_H

#include <stddef.h>

#define DIGEST_SHA256_HEX 64

/* SHA-256 of data[0..len) into hex (65 bytes with the NUL). Returns 0, or
 * CITRUS_EINTERNAL when the digest is unavailable (hex is then ""). */
int digest_sha256_hex(const void *data, size_t len, char hex[DIGEST_SHA256_HEX + 1]);
/* Lowercase hex of n bytes into out (2n + 1 bytes with the NUL). */
void digest_hex(const unsigned char *bytes, size_t n, char *out);

#endif
