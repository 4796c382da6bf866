/* dbconn/pg_connect.h — opening a libpq connection to a shard database, the
 * one way both the data plane's driver (driver_pg.c) and the control
 * plane's shard_db.c do it. */
#ifndef CITRUS_DBCONN_PG_CONNECT_H
#define CITRUS_DBCONN_PG_CONNECT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The DSN (URI or key=value conninfo) is parsed by libpq itself
 * (PQconninfoParse) and connected with PQconnectdbParams, with our
 * connect_timeout in place of any the DSN had (timeout_ms rounded up to
 * whole seconds, minimum 2: libpq's floor) and, when utf8, client_encoding
 * UTF8 in place of the DSN's. Going through the parsed options instead of
 * appending text is what makes URIs and conninfo strings work alike.
 * NOTICEs are dropped. 0 with *out; CITRUS_EINVAL (malformed DSN),
 * CITRUS_ENOMEM, CITRUS_EUNAVAILABLE (cannot connect), with *out NULL and
 * the reason in err, on one line. */
int pg_connect(const char *dsn, int64_t timeout_ms, bool utf8, PGconn **out, char *err,
               size_t errlen);

/* Copies libpq's message (which ends with a newline and may span lines)
 * after what into err as one line: whitespace runs become one space. */
void pg_message(char *err, size_t errlen, const char *what, const char *msg);

#endif
