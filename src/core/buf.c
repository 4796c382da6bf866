/* core/buf.c — the growable byte buffer (see buf.h). */
#include "core/buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"

void buf_init_max(buf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

/* Room for n more bytes and the NUL. */
static int reserve(buf *b, size_t n)
{
    if (b->err)
        return b->err;
    if (n > SIZE_MAX / 4 - b->len || (b->max && b->len + n > b->max))
        return b->err = n > SIZE_MAX / 4 - b->len ? CITRUS_ENOMEM : CITRUS_ETOOBIG;
    if (b->data && b->len + n + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d)
        return b->err = CITRUS_ENOMEM;
    b->data = d;
    b->cap = cap;
    return 0;
}

int buf_add(buf *b, const void *p, size_t n)
{
    int rc = reserve(b, n);
    if (rc < 0)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int buf_str(buf *b, const char *s)
{
    return buf_add(b, s, strlen(s));
}

int buf_printf(buf *b, const char *fmt, ...)
{
    if (b->err)
        return b->err;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return b->err = CITRUS_EINVAL;
    int rc = reserve(b, (size_t)n);
    if (rc < 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

const char *buf_cstr(const buf *b)
{
    return b->data ? b->data : "";
}

char *buf_take(buf *b, size_t *len)
{
    if (b->err) {
        buf_free(b);
        return NULL;
    }
    char *d = b->data ? b->data : strdup("");
    if (len)
        *len = b->data ? b->len : 0;
    size_t max = b->max;
    buf_init_max(b, max);
    return d;
}

void buf_reset(buf *b)
{
    b->len = 0;
    b->err = 0;
    if (b->data)
        b->data[0] = '\0';
}

void buf_free(buf *b)
{
    free(b->data);
    size_t max = b->max;
    buf_init_max(b, max);
}
