/* core/strbuf.c — the growable byte buffer (see strbuf.h). */
#include "core/strbuf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"

void strbuf_init_max(strbuf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

/* Room for n more bytes and the NUL. */
static int reserve(strbuf *b, size_t n)
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

int strbuf_reserve(strbuf *b, size_t n)
{
    if (b->err || (b->data && b->len + n + 1 <= b->cap))
        return b->err;
    if (b->max && n > b->max - b->len)
        n = b->max - b->len;
    if (n > SIZE_MAX / 4 - b->len)
        return b->err = CITRUS_ENOMEM;
    char *d = realloc(b->data, b->len + n + 1);
    if (!d)
        return b->err = CITRUS_ENOMEM;
    b->data = d;
    b->cap = b->len + n + 1;
    return 0;
}

int strbuf_add(strbuf *b, const void *p, size_t n)
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

int strbuf_str(strbuf *b, const char *s)
{
    return strbuf_add(b, s, strlen(s));
}

int strbuf_printf(strbuf *b, const char *fmt, ...)
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

const char *strbuf_cstr(const strbuf *b)
{
    return b->data ? b->data : "";
}

char *strbuf_take(strbuf *b, size_t *len)
{
    if (b->err) {
        strbuf_free(b);
        return NULL;
    }
    char *d = b->data ? b->data : strdup("");
    if (len)
        *len = b->data ? b->len : 0;
    size_t max = b->max;
    strbuf_init_max(b, max);
    return d;
}

void strbuf_consume(strbuf *b, size_t n)
{
    if (!b->data)
        return;
    if (n > b->len)
        n = b->len;
    memmove(b->data, b->data + n, b->len - n + 1);
    b->len -= n;
}

void strbuf_reset(strbuf *b)
{
    b->len = 0;
    b->err = 0;
    if (b->data)
        b->data[0] = '\0';
}

void strbuf_free(strbuf *b)
{
    free(b->data);
    size_t max = b->max;
    strbuf_init_max(b, max);
}
