/* dbconn/pg_connect.c — see pg_connect.h. */
#include "dbconn/pg_connect.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "citrus/errors.h"
#include "sys/clock.h"

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

/* Drives PQconnectPoll until the connection is made, fails, or the
 * deadline (clock_mono_ms) passes. */
static int connect_poll(PGconn *pg, int64_t deadline, int64_t timeout_ms, errdetail *e)
{
    /* As if PQconnectPoll had last said WRITING (libpq's rule). */
    PostgresPollingStatusType st =
        PQstatus(pg) == CONNECTION_BAD ? PGRES_POLLING_FAILED : PGRES_POLLING_WRITING;
    while (st != PGRES_POLLING_OK) {
        if (st == PGRES_POLLING_FAILED)
            return pg_message(e, CITRUS_EUNAVAILABLE, "", PQerrorMessage(pg));
        int64_t left = deadline - clock_mono_ms(NULL);
        if (left <= 0)
            return errdetail_set(e, CITRUS_EUNAVAILABLE,
                                 "the server did not complete the connection within %lld ms",
                                 (long long)timeout_ms);
        struct pollfd p = {.fd = PQsocket(pg),
                           .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT};
        if (p.fd < 0)
            return pg_message(e, CITRUS_EUNAVAILABLE, "", PQerrorMessage(pg));
        int n = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (n < 0 && errno != EINTR)
            return errdetail_set(e, CITRUS_EUNAVAILABLE, "poll: %s", strerror(errno));
        if (n > 0)
            st = PQconnectPoll(pg);
    }
    return 0;
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
    int64_t limit = timeout_ms > 0 ? timeout_ms : secs * 1000;
    int64_t deadline = clock_mono_ms(NULL) + limit;
    PGconn *pg = PQconnectStartParams(keys, vals, 0);
    PQconninfoFree(opts);
    if (!pg)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    int rc = connect_poll(pg, deadline, limit, e);
    if (rc) {
        PQfinish(pg);
        return rc;
    }
    PQsetNoticeProcessor(pg, quiet_notices, NULL);
    *out = pg;
    return 0;
}
