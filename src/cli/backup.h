/* cli/backup.h — `citrus backup`: a consistent copy of a server's catalog
 * (GET /v1/snapshot) written to a verified backup file (snapshot_file.h). */
#ifndef CITRUS_CLI_BACKUP_H
#define CITRUS_CLI_BACKUP_H

/* argv[0] is "backup". Returns the exit code: 0 ok, 1 runtime error, 2 usage
 * error. Resets getopt's state. */
int cli_backup_main(int argc, char **argv);

#endif
