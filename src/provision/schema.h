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

#include <stddef.h>
#include <stdint.h>

#include "core/errdetail.h"

typedef struct schema_result {
    size_t applied;        /* files run now */
    size_t skipped;        /* already recorded */
    char failed_file[256]; /* the file that failed, "" if none */
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

#endif
