/* core/dsn.h — shard connection strings (pure).
 *
 * Accepted forms:
 *   sqlite:///absolute/path.db   (also sqlite:relative/path.db)
 *   postgres://... and postgresql://...  (libpq URIs)
 *   host=... dbname=... (libpq key=value conninfo)
 * dsn_parse checks the shape only (no connection). */
#ifndef CITRUS_CORE_DSN_H
#define CITRUS_CORE_DSN_H

#include <stddef.h>

#include "core/errdetail.h"

typedef enum { DSN_SQLITE, DSN_POSTGRES } dsn_kind;

typedef struct dsn_info {
    dsn_kind kind;
    char path[4096]; /* DSN_SQLITE: the file path */
} dsn_info;

/* 0, or CITRUS_EINVAL with a message naming what is wrong. */
int dsn_parse(const char *dsn, dsn_info *out, errdetail *e);

/* The DSN with any password replaced by "***" (for logs); malloc'd. */
char *dsn_redact(const char *dsn);

#endif
