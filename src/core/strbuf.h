/* core/strbuf.h — the growable byte buffer: appends bytes, strings and printf
 * output, stays NUL-terminated, and remembers a failed allocation (or a
 * passed bound) so a caller checks once at the end instead of after every
 * append.
 *
 * A zeroed strbuf (or STRBUF_INIT) is empty and unbounded; strbuf_init_max bounds
 * it. Not thread-safe: one owner at a time. */
#ifndef CITRUS_CORE_STRBUF_H
#define CITRUS_CORE_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct strbuf {
    char *data; /* NUL-terminated when not NULL; NULL while nothing was added */
    size_t len, cap;
    size_t max; /* 0: no bound; else len never passes it */
    int err;    /* 0, CITRUS_ENOMEM, or CITRUS_ETOOBIG (max passed); sticky */
} strbuf;

/* clang-format off */
#define STRBUF_INIT {0}
/* clang-format on */

/* An empty buffer that refuses to grow past max bytes (0: no bound). */
void strbuf_init_max(strbuf *b, size_t max);

/* Makes room for n more bytes in one allocation, so appends up to them do
 * not copy (a big answer whose size is bounded up front: untouched pages
 * cost no memory). 0 or the sticky error. */
int strbuf_reserve(strbuf *b, size_t n);
/* Appends; 0, or the buffer's sticky error (nothing appended then). */
int strbuf_add(strbuf *b, const void *p, size_t n);
int strbuf_str(strbuf *b, const char *s);
int strbuf_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The contents ("" when empty; never NULL), owned by the buffer. */
const char *strbuf_cstr(const strbuf *b);
/* Hands the contents over (caller frees; "" allocated when empty), with
 * its length in *len (may be NULL), and leaves b empty. NULL after an
 * error (b is then freed). */
char *strbuf_take(strbuf *b, size_t *len);
/* Drops the first n bytes (at most len), moving the rest to the front. */
void strbuf_consume(strbuf *b, size_t n);
/* Empties b, keeping its memory and bound; clears the error. */
void strbuf_reset(strbuf *b);
/* Frees the contents; b is empty (bound kept) afterwards. */
void strbuf_free(strbuf *b);

#endif
