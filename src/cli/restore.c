/* cli/restore.c — `citrus restore FILE --data-dir DIR`.
 *
 * Order matters: the backup is read and verified in full before anything is
 * created, so a damaged file leaves the file system untouched; an existing
 * catalog is never overwritten. */
#include "cli/restore.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "catalog/store_sqlite.h"
#include "citrus/errors.h"
#include "cli/input.h"
#include "cli/snapshot_file.h"
#include "sys/fs.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

static const char usage_text[] =
    "usage: citrus restore FILE --data-dir DIR\n"
    "\n"
    "Verifies the backup FILE (made by 'citrus backup'; - reads standard input)\n"
    "and creates DIR/" RESTORE_CATALOG_FILE " from it, with the same keys, revisions and\n"
    "leases. DIR is created if needed; an existing catalog there is never\n"
    "overwritten. Start 'citrus dev --data-dir DIR' (or a server) on it afterwards.\n"
    "\n"
    "options:\n"
    "  --data-dir DIR  data directory to restore into\n"
    "  -h, --help      show this help\n";

/* mkdir -p: creates dir and its missing parents (mode 0700: a catalog holds
 * secrets). */
static int make_dirs(const char *dir, errdetail *e)
{
    if (fs_mkdirs(dir, 0700) == 0)
        return 0;
    return errdetail_set(e, CITRUS_EIO, "cannot create directory %s: %s", dir,
                         errno == ENOTDIR ? "not a directory" : strerror(errno));
}

/* Fails when the catalog or one of SQLite's side files already exists (a
 * stale -wal next to a new database would be replayed into it). */
static int check_no_catalog(const char *db, errdetail *e)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        struct stat st;
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s%s", db, suffixes[i]);
        if (lstat(path, &st) == 0)
            return errdetail_set(e, CITRUS_EEXISTS,
                                 "%s already exists; refusing to overwrite a catalog. Restore "
                                 "into an empty data directory, or stop the server and remove "
                                 "%s* first",
                                 path, db);
        if (errno != ENOENT)
            return errdetail_set(e, CITRUS_EIO, "%s: %s", path, strerror(errno));
    }
    return 0;
}

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "citrus restore: %s%s\nTry 'citrus restore --help'.\n", msg, arg);
    return EXIT_USAGE;
}

int cli_restore_main(int argc, char **argv)
{
    enum { OPT_DATA_DIR = 256 };
    static const struct option opts[] = {
        {"data-dir", required_argument, NULL, OPT_DATA_DIR},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    umask(077); /* the restored catalog (every DSN) and its side files: 0600 */
    const char *dir = NULL;
    optind = 0; /* GNU: full re-initialisation */
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case OPT_DATA_DIR:
            dir = optarg;
            break;
        case ':':
            return usage_error("missing value for ", argv[optind - 1]);
        default:
            return usage_error("unknown option ", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return usage_error("missing backup FILE", "");
    if (argc - optind > 1)
        return usage_error("unexpected argument ", argv[optind + 1]);
    if (!dir || !dir[0])
        return usage_error("missing --data-dir DIR", "");
    const char *file = argv[optind];

    int rc = EXIT_RUNTIME;
    char *buf, *db = NULL;
    errdetail why;
    size_t len;
    if (input_read(file, &buf, &len, &why) < 0) {
        fprintf(stderr, "restore: %s\n", why.message);
        return EXIT_RUNTIME;
    }
    kv_snapshot snap;
    int err = snapshot_file_parse(buf, len, &snap, &why);
    free(buf);
    if (err == CITRUS_ECORRUPT) {
        fprintf(stderr, "restore: %s is corrupt: %s\n", file, why.message);
        return EXIT_RUNTIME;
    }
    if (err < 0) {
        fprintf(stderr, "restore: %s: %s\n", file, why.message);
        return EXIT_RUNTIME;
    }

    size_t dlen = strlen(dir) + sizeof("/" RESTORE_CATALOG_FILE);
    if (!(db = malloc(dlen))) {
        fprintf(stderr, "restore: out of memory\n");
        goto out;
    }
    snprintf(db, dlen, "%s/%s", dir, RESTORE_CATALOG_FILE);
    if (make_dirs(dir, &why) < 0) {
        fprintf(stderr, "restore: %s\n", why.message);
        goto out;
    }
    if (check_no_catalog(db, &why) < 0) {
        fprintf(stderr, "restore: %s\n", why.message);
        goto out;
    }
    errdetail_clear(&why);
    if ((err = store_sqlite_restore(db, &snap, &why)) < 0) {
        fprintf(stderr, "restore: cannot create %s: %s\n", db,
                why.message[0] ? why.message : citrus_strerror(err));
        goto out;
    }
    printf("restore: %zu keys at revision %" PRId64 " -> %s\n", snap.count, snap.revision, dir);
    rc = 0;
out:
    free(db);
    kv_snapshot_free(&snap);
    return rc;
}
