/* core/buf.h — the growable byte buffer: appends bytes, strings and printf
 * output, stays NUL-terminated, and remembers a failed allocation (or a
 * passed bound) so a caller checks once at the end instead of after every
 * append.
 *
 * A zeroed buf (or BUF_INIT) is empty and unbounded; buf_init_max bounds
 * it. Not thread-safe: one owner at a time. */
#ifndef CITRUS_CORE_BUF_H
#define CITRUS_CORE_BUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct buf {
    char *data; /* NUL-terminated when not NULL; NULL while nothing was added */
    size_t len, cap;
    size_t max; /* 0: no bound; else len never passes it */
    int err;    /* 0, CITRUS_ENOMEM, or CITRUS_ETOOBIG (max passed); sticky */
} buf;

#define BUF_INIT                                                                                   \
    {                                                                                              \
        0                                                                                          \
    }

/* An empty buffer that refuses to grow past max bytes (0: no bound). */
void buf_init_max(buf *b, size_t max);

/* Appends; 0, or the buffer's sticky error (nothing appended then). */
int buf_add(buf *b, const void *p, size_t n);
int buf_str(buf *b, const char *s);
int buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The contents ("" when empty; never NULL), owned by the buffer. */
const char *buf_cstr(const buf *b);
/* Hands the contents over (caller frees; "" allocated when empty), with
 * its length in *len (may be NULL), and leaves b empty. NULL after an
 * error (b is then freed). */
char *buf_take(buf *b, size_t *len);
/* Empties b, keeping its memory and bound; clears the error. */
void buf_reset(buf *b);
/* Frees the contents; b is empty (bound kept) afterwards. */
void buf_free(buf *b);

#endif
