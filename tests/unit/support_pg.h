/* tests/unit/support_pg.h — a throwaway PostgreSQL server for unit tests.
 *
 * pg_start runs initdb in a fresh temp dir and starts a postmaster on a
 * free loopback port (as the postgres user when the test runs as root:
 * PostgreSQL refuses root), trusting local connections; pg_stop stops
 * exactly that postmaster by its PID and removes the dir. The binaries come
 * from /usr/lib/postgresql/15/bin (or $CITRUS_PG_BINDIR). Missing binaries
 * are an error, not a skip: callers fail the test binary. */
#ifndef CITRUS_TESTS_SUPPORT_PG_H
#define CITRUS_TESTS_SUPPORT_PG_H

#include <stddef.h>
#include <sys/types.h>

typedef struct pg_instance {
    pid_t pid; /* the postmaster, 0 when not running */
    int port;
    char dir[256];       /* temp root: data/, sock/, *.log */
    char admin_dsn[128]; /* postgresql://postgres@127.0.0.1:PORT/postgres */
} pg_instance;

/* 0 once "SELECT 1" works (deadline 30 s), or -1 with the reason (and the
 * server log) on stderr; nothing is left running or on disk then. */
int pg_start(pg_instance *pg);

/* SIGINT (fast shutdown), SIGKILL after 15 s, waitpid; removes the temp
 * dir. Safe to call twice or after a failed start. */
void pg_stop(pg_instance *pg);

/* A postgresql:// DSN for database dbname on pg (into out). */
void pg_dsn(const pg_instance *pg, const char *dbname, char *out, size_t outlen);

/* A loopback TCP port nobody listens on right now. */
int pg_free_port(void);

#endif
