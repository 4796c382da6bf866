/* wire/base64.h — standard base64 (RFC 4648, padded) for JSON payloads. */
#ifndef CITRUS_WIRE_BASE64_H
#define CITRUS_WIRE_BASE64_H

#include <stddef.h>

/* Encodes len bytes; returns a malloc'd NUL-terminated string (caller frees),
 * or NULL on allocation failure. */
char *base64_encode(const unsigned char *data, size_t len);

/* Decodes canonical padded base64 (alphabet only, "=" only as final padding,
 * unused bits zero; anything else is refused); returns a malloc'd buffer (caller frees,
 * never NULL on success even for empty input) and its length in *out_len.
 * Returns NULL on invalid input or allocation failure. */
unsigned char *base64_decode(const char *text, size_t text_len, size_t *out_len);

#endif
