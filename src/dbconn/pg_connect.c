/* dbconn/pg_connect.c — see pg_connect.h. */
#include "dbconn/pg_connect.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "citrus/errors.h"

#define MIN_CONNECT_TIMEOUT_S 2
#define MAX_KEYWORDS 64

int pg_message(errdetail *e, int code, const char *what, const char *msg)
{
    errdetail_set(e, code, "%s%s", what, msg && *msg ? msg : "unknown error");
    if (!e)
        return code;
    char *w = e->message;
    for (const char *r = e->message; *r; r++) {
        bool space = *r == '\n' || *r == '\t' || *r == ' ' || *r == '\r';
        if (!space)
            *w++ = *r;
        else if (w > e->message && w[-1] != ' ')
            *w++ = ' ';
    }
    while (w > e->message && w[-1] == ' ')
        w--;
    *w = '\0';
    return code;
}

static void quiet_notices(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

int pg_connect(const char *dsn, int64_t timeout_ms, PGconn **out, errdetail *e)
{
    *out = NULL;
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn, &perr);
    if (!opts) {
        pg_message(e, CITRUS_EINVAL, "malformed PostgreSQL DSN: ", perr);
        PQfreemem(perr);
        return CITRUS_EINVAL;
    }
    const char *keys[MAX_KEYWORDS + 1], *vals[MAX_KEYWORDS + 1];
    size_t n = 0;
    for (PQconninfoOption *o = opts; o->keyword && n < MAX_KEYWORDS - 2; o++) {
        if (o->val && strcmp(o->keyword, "connect_timeout") != 0 &&
            strcmp(o->keyword, "client_encoding") != 0) {
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
    keys[n] = "client_encoding";
    vals[n++] = "UTF8";
    keys[n] = vals[n] = NULL;
    PGconn *pg = PQconnectdbParams(keys, vals, 0);
    PQconninfoFree(opts);
    if (!pg)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    if (PQstatus(pg) != CONNECTION_OK) {
        pg_message(e, CITRUS_EUNAVAILABLE, "", PQerrorMessage(pg));
        PQfinish(pg);
        return CITRUS_EUNAVAILABLE;
    }
    PQsetNoticeProcessor(pg, quiet_notices, NULL);
    *out = pg;
    return 0;
}
