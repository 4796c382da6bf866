/* core/utf8.h — UTF-8 validation (pure). */
#ifndef CITRUS_CORE_UTF8_H
#define CITRUS_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length (1-4) of the well-formed character at s[0..n), 0 when the bytes
 * there are not one (overlong forms, surrogates and > U+10FFFF are not).
 * *cp, when non-NULL, gets the code point. */
size_t utf8_char_len(const unsigned char *s, size_t n, uint32_t *cp);

/* True when s[0..len) is entirely well-formed UTF-8. */
bool utf8_valid(const unsigned char *s, size_t len);

/* Copies s to out (size >= strlen(s) + 1), each byte that does not start a
 * well-formed character replaced by '?'. */
void utf8_sanitize(const char *s, char *out);

#endif
