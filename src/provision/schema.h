/* provision/schema.h — schema templates: per business type, a directory of
 * ordered SQL migration files applied to a shard when it is initialized.
 *
 * Layout: <templates_dir>/<template>/<NNN_name>.sql, applied in byte order
 * of file name; <NNN_name>.pg.sql only on PostgreSQL and
 * <NNN_name>.sqlite.sql only on SQLite (dialect-specific steps). Each file runs in its own
 * transaction together with its row in the shard's citrus_migrations(name TEXT PRIMARY KEY,
 * checksum TEXT, applied_at TEXT) table, so a file is applied exactly once: applying the template
 * again is a no-op. A file whose name is recorded with another checksum (edited after it was
 * applied) is an error, not re-run.
 *
 * Files: at most 16 MiB, no NUL bytes, names of [A-Za-z0-9._-] (hidden
 * files and other extensions are ignored), and no transaction control:
 * BEGIN/COMMIT/ROLLBACK in a file are not allowed (nor statements that
 * cannot run inside a transaction, such as CREATE INDEX CONCURRENTLY). */
#ifndef CITRUS_PROVISION_SCHEMA_H
#define CITRUS_PROVISION_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dsn.h"
#include "core/errdetail.h"
#include "dbconn/driver.h"

typedef struct schema_result {
    size_t applied;        /* files run now */
    size_t skipped;        /* already recorded */
    char failed_file[256]; /* the file that failed, "" if none */
    /* SHA-256 (hex) over the template's files for this kind of database,
     * names and checksums in order: what a caller may remember as applied */
    char digest[65];
    /* schema_apply_conn found digest already known: only a ping was run */
    bool known;
    /* the failure was the database not answering (connect, a broken
     * connection, a deadline), not the template's fault */
    bool unreachable;
} schema_result;

/* Template names: [A-Za-z0-9_-], 1..64 chars (no path tricks). */
int schema_template_valid(const char *name);

/* Applies templates_dir/template to the database at dsn. 0, or a
 * CITRUS_E* code with e naming the file and the driver's error (and its
 * SQLSTATE):
 * CITRUS_ENOTFOUND when the template directory does not exist, CITRUS_EIO
 * when a file failed (result->failed_file), CITRUS_EUNAVAILABLE when the
 * database cannot be reached, CITRUS_ECONFLICT for an edited file (checked
 * for every file before any runs), CITRUS_EINVAL for an invalid template
 * name or a file breaking the rules above. SQLite files are opened, not
 * created. */
int schema_apply(const char *dsn, const char *templates_dir, const char *template,
                 int64_t timeout_ms, schema_result *result, errdetail *e);

/* The same on an open connection to a database of this kind (the caller's,
 * say pooled and carrying a deadline: drv_set_deadline). known_digest (may
 * be NULL): a digest the caller recorded for this template on this
 * database; when the files still give it, nothing is read from or run on
 * the database but a drv_ping (result->known, all files skipped). On
 * success result->digest is what to record. A connection that broke is
 * left broken (drv_alive false) for the caller to discard. */
int schema_apply_conn(drv_conn *db, dsn_kind kind, const char *templates_dir, const char *template,
                      const char *known_digest, schema_result *result, errdetail *e);

#endif
