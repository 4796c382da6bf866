/* dbconn/pg_connect.c — see pg_connect.h. */
#include "dbconn/pg_connect.h"

#include <stdio.h>
#include <string.h>

#include "citrus/errors.h"
#include "core/errfmt.h"

#define MIN_CONNECT_TIMEOUT_S 2
#define MAX_KEYWORDS 64

void pg_message(char *err, size_t errlen, const char *what, const char *msg)
{
    errfmt(err, errlen, "%s%s", what, msg && *msg ? msg : "unknown error");
    if (!err || errlen == 0)
        return;
    char *w = err;
    for (const char *r = err; *r; r++) {
        bool space = *r == '\n' || *r == '\t' || *r == ' ' || *r == '\r';
        if (!space)
            *w++ = *r;
        else if (w > err && w[-1] != ' ')
            *w++ = ' ';
    }
    while (w > err && w[-1] == ' ')
        w--;
    *w = '\0';
}

static void quiet_notices(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

int pg_connect(const char *dsn, int64_t timeout_ms, bool utf8, PGconn **out, char *err,
               size_t errlen)
{
    *out = NULL;
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn, &perr);
    if (!opts) {
        pg_message(err, errlen, "malformed PostgreSQL DSN: ", perr);
        PQfreemem(perr);
        return CITRUS_EINVAL;
    }
    const char *keys[MAX_KEYWORDS + 1], *vals[MAX_KEYWORDS + 1];
    size_t n = 0;
    for (PQconninfoOption *o = opts; o->keyword && n < MAX_KEYWORDS - 2; o++) {
        if (o->val && strcmp(o->keyword, "connect_timeout") != 0 &&
            !(utf8 && strcmp(o->keyword, "client_encoding") == 0)) {
            keys[n] = o->keyword;
            vals[n++] = o->val;
        }
    }
    int64_t secs = timeout_ms > 0 ? (timeout_ms + 999) / 1000 : 0;
    if (secs < MIN_CONNECT_TIMEOUT_S)
        secs = MIN_CONNECT_TIMEOUT_S;
    char tbuf[24];
    snprintf(tbuf, sizeof(tbuf), "%lld", (long long)secs);
    keys[n] = "connect_timeout";
    vals[n++] = tbuf;
    if (utf8) {
        keys[n] = "client_encoding";
        vals[n++] = "UTF8";
    }
    keys[n] = vals[n] = NULL;
    PGconn *pg = PQconnectdbParams(keys, vals, 0);
    PQconninfoFree(opts);
    if (!pg) {
        errfmt(err, errlen, "out of memory");
        return CITRUS_ENOMEM;
    }
    if (PQstatus(pg) != CONNECTION_OK) {
        pg_message(err, errlen, "", PQerrorMessage(pg));
        PQfinish(pg);
        return CITRUS_EUNAVAILABLE;
    }
    PQsetNoticeProcessor(pg, quiet_notices, NULL);
    *out = pg;
    return 0;
}
