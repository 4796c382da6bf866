/* dbconn/pg_connect.h — opening a libpq connection to a shard database for
 * the PostgreSQL backend (driver_pg.c), and libpq's messages as one line. */
#ifndef CITRUS_DBCONN_PG_CONNECT_H
#define CITRUS_DBCONN_PG_CONNECT_H

#include <libpq-fe.h>
#include <stdint.h>

#include "core/errdetail.h"

/* The DSN (URI or key=value conninfo) is parsed by libpq itself
 * (PQconninfoParse) and connected without blocking (PQconnectStartParams,
 * then PQconnectPoll with poll() on its socket) so that the whole of it —
 * TCP, TLS, the startup packet and authentication — ends within timeout_ms
 * to the millisecond: a server that accepts the TCP connection but never
 * answers (a stopped postmaster: the kernel accepts for it) fails at
 * timeout_ms. The DSN's connect_timeout is replaced by ours (whole
 * seconds, minimum 2: libpq's floor; it matters only to tools that read
 * the options back) and client_encoding by UTF8 (our TEXT values are
 * UTF-8). (A host name is still resolved blocking, by libpq.) Going through the parsed
 * options instead of appending text is what makes URIs and conninfo
 * strings work alike. NOTICEs are dropped. 0 with *out; CITRUS_EINVAL
 * (malformed DSN), CITRUS_ENOMEM, CITRUS_EUNAVAILABLE (cannot connect),
 * with *out NULL and the reason in e, on one line. */
int pg_connect(const char *dsn, int64_t timeout_ms, PGconn **out, errdetail *e);

/* Sets e to code and libpq's message (which ends with a newline and may
 * span lines) after what, as one line: whitespace runs become one space.
 * Returns code. */
int pg_message(errdetail *e, int code, const char *what, const char *msg);

#endif
