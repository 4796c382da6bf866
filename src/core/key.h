/* core/key.h — catalog key rules.
 *
 * A key is 1..max bytes of valid UTF-8 with no NUL or other control
 * character (C0, DEL or C1), made of '/'-separated segments that are neither empty nor "."
 * or "..", and that does not start or end with '/'. A prefix follows the
 * same rules but may be empty (everything) and may end with '/'. */
#ifndef CITRUS_CORE_KEY_H
#define CITRUS_CORE_KEY_H

#include <stdbool.h>
#include <stddef.h>

#define KEY_MAX_BYTES 1024

/* 0 when valid, else CITRUS_EBADKEY with a reason in *why (static). */
int key_validate(const char *key, size_t len, const char **why);
int key_validate_prefix(const char *prefix, size_t len, const char **why);

#endif
