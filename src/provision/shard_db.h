/* provision/shard_db.h — control-plane connections to a shard's database
 * (SQLite file or PostgreSQL through libpq): reachability checks, running
 * migration scripts. Not the data plane (that is the router's pools).
 * Calls block (bounded by timeout_ms) and are meant for background threads
 * and offloaded handlers. */
#ifndef CITRUS_PROVISION_SHARD_DB_H
#define CITRUS_PROVISION_SHARD_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct shard_db shard_db;

/* Connects (PostgreSQL: connect_timeout from timeout_ms; SQLite: opens an
 * existing file, or creates it when create is set). 0, or a CITRUS_E*
 * code with the driver's message in err: CITRUS_EINVAL for a malformed
 * DSN, CITRUS_EUNAVAILABLE when the database cannot be reached (SQLite: a
 * missing file without create), CITRUS_EIO for an SQLite file that is not
 * a database. */
int shard_db_open(const char *dsn, int64_t timeout_ms, bool create, shard_db **out, char *err,
                  size_t errlen);
void shard_db_close(shard_db *db);

/* Runs a script of one or more SQL statements. 0 or CITRUS_EIO with the
 * driver's message. */
int shard_db_exec(shard_db *db, const char *sql, char *err, size_t errlen);

/* Runs sql (one statement) and gives the first column of every row as
 * strings (*rows malloc'd array of malloc'd strings; NULL column -> "").
 * 0 or CITRUS_EIO. */
int shard_db_query_column(shard_db *db, const char *sql, char ***rows, size_t *nrows, char *err,
                          size_t errlen);
void shard_db_free_rows(char **rows, size_t nrows);

/* Script runs inside one transaction: BEGIN, sql, then COMMIT or ROLLBACK
 * on error (SQLite and PostgreSQL both have transactional DDL). sql must
 * not contain BEGIN/COMMIT/ROLLBACK itself: a script that ends the
 * transaction is reported as CITRUS_EIO, but what it committed stays. */
int shard_db_exec_tx(shard_db *db, const char *sql, char *err, size_t errlen);

/* PostgreSQL only: the libpq connection (a PGconn *), for callers that need
 * libpq itself (PQescapeIdentifier, parameters); NULL for SQLite. Owned by
 * db. */
struct pg_conn;
struct pg_conn *shard_db_pg(shard_db *db);

/* Connects and runs "SELECT 1": reachable or not, and the round trip in ms
 * (connect included). 0 or CITRUS_EUNAVAILABLE/CITRUS_EINVAL with err. */
int shard_db_ping(const char *dsn, int64_t timeout_ms, double *latency_ms, char *err,
                  size_t errlen);

#endif
