/* core/errdetail.c — see errdetail.h. */
#include "core/errdetail.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int errdetail_set(errdetail *e, int code, const char *fmt, ...)
{
    if (!e)
        return code;
    e->code = code;
    e->sqlstate[0] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return code;
}

void errdetail_sqlstate(errdetail *e, const char *sqlstate)
{
    if (!e)
        return;
    e->sqlstate[0] = '\0';
    if (sqlstate && strlen(sqlstate) == 5)
        memcpy(e->sqlstate, sqlstate, 6);
}

void errdetail_prefix(errdetail *e, const char *fmt, ...)
{
    if (!e)
        return;
    char msg[sizeof(e->message)];
    memcpy(msg, e->message, sizeof(msg));
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(e->message) - 1)
        return; /* the context alone fills it */
    size_t len = (size_t)n, room = sizeof(e->message) - 1 - len;
    const char *sep = ": ";
    size_t add = strlen(sep) < room ? strlen(sep) : room;
    memcpy(e->message + len, sep, add);
    len += add;
    room -= add;
    size_t mlen = strnlen(msg, sizeof(msg));
    add = mlen < room ? mlen : room;
    memcpy(e->message + len, msg, add);
    e->message[len + add] = '\0';
}

void errdetail_clear(errdetail *e)
{
    if (e)
        memset(e, 0, sizeof(*e));
}
