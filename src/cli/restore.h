/* cli/restore.h — `citrus restore`: a backup file turned into a fresh
 * embedded catalog (DIR/catalog.db) for `citrus dev` / `citrus server`. */
#ifndef CITRUS_CLI_RESTORE_H
#define CITRUS_CLI_RESTORE_H

/* The catalog file inside a data directory. */
#define RESTORE_CATALOG_FILE "catalog.db"

/* argv[0] is "restore". Returns the exit code: 0 ok, 1 runtime error
 * (corrupt file, existing catalog, I/O), 2 usage error. The whole file is
 * verified before anything is written. Resets getopt's state. */
int cli_restore_main(int argc, char **argv);

#endif
