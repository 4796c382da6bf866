/* tests/unit/support_pg.h — a throwaway PostgreSQL server for unit tests.
 *
 * pg_start runs initdb in a fresh temp dir and starts a postmaster on a
 * free loopback port (as the postgres user when the test runs as root:
 * PostgreSQL refuses root), trusting local connections; pg_stop stops
 * exactly that postmaster by its PID and removes the dir. The binaries come
 * from /usr/lib/postgresql/15/bin (or $CITRUS_PG_BINDIR). Missing binaries
 * are an error, not a skip: callers fail the test binary.
 *
 * A test binary usually runs its PostgreSQL tests as one cmocka group with
 * pg_group_setup/pg_group_teardown, against the server `pg`; the time and
 * temp-dir helpers below are what those binaries share besides. */
#ifndef CITRUS_TESTS_SUPPORT_PG_H
#define CITRUS_TESTS_SUPPORT_PG_H

#include <stddef.h>
#include <stdint.h>
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

/* pg_halt then pg_resume: stops the running postmaster of pg and starts
 * it again with pg_start's command line on the same port and data dir; 0
 * once "SELECT 1" works again (deadline 60 s), or -1 with the reason on
 * stderr (pg->pid is 0 then unless the new postmaster is still
 * running: pg_stop ends it). */
int pg_restart(pg_instance *pg);

/* Stops the running postmaster of pg (fast shutdown, SIGKILL after 30 s),
 * keeping its data dir and port: the server is down until pg_resume (or
 * pg_stop). 0, or -1 when none was running. */
int pg_halt(pg_instance *pg);

/* Starts a halted server again (pg_start's command line, same port and
 * data dir); 0 once "SELECT 1" works (deadline 60 s), else -1 as
 * pg_restart. */
int pg_resume(pg_instance *pg);

/* A postgresql:// DSN for database dbname on pg (into out). */
void pg_dsn(const pg_instance *pg, const char *dbname, char *out, size_t outlen);

/* A loopback TCP port nobody listens on right now. */
int pg_free_port(void);

/* ---- the binary's server as a cmocka group ------------------------------------ */

/* The server pg_group_setup starts for the test binary (pid 0 before). */
extern pg_instance pg;

/* cmocka group setup: pg_start(&pg) and print where it runs; -1 (the group
 * fails and none of its tests run) when the server does not start. */
int pg_group_setup(void **state);

/* cmocka group teardown: pg_stop(&pg) (also fine when a test stopped it). */
int pg_group_teardown(void **state);

/* ---- time and temp dirs ------------------------------------------------------- */

/* CLOCK_MONOTONIC in milliseconds. */
int64_t mono_ms(void);

/* Sleeps ms milliseconds. */
void sleep_ms(int ms);

/* mkdtemp /tmp/citrus-<tag>-test-XXXXXX into dir (len bytes); 0, or -1
 * after perror. */
int tmp_dir_create(char *dir, size_t len, const char *tag);

/* Removes dir and everything below it (links are removed, not followed). */
void tmp_dir_remove(const char *dir);

/* Writes <dir>/<name>: some 7 KiB of text, not an SQLite database (nor any
 * other); its path into path (len bytes). 0, or -1 when it cannot. */
int tmp_write_garbage(const char *dir, const char *name, char *path, size_t len);

#endif
