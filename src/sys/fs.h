/* sys/fs.h — file-system helpers shared by the commands and the
 * provisioners. */
#ifndef CITRUS_SYS_FS_H
#define CITRUS_SYS_FS_H

#include <sys/types.h>

/* mkdir -p: creates path and its missing parents with mode (an existing
 * directory is fine). 0, or -1 with errno set (ENOTDIR when a part exists
 * but is not a directory, ENAMETOOLONG, or mkdir's own). */
int fs_mkdirs(const char *path, mode_t mode);

/* Makes the tree at path private to its owner, as a data directory must
 * be (it holds the catalog with every DSN, the shard files, the records
 * and keys): directories and regular files lose every group and other
 * bit (0700 and 0600 for what the server makes). Symbolic links are not followed. A
 * missing path is fine. 0, or -1 with errno set. */
int fs_make_private(const char *path);

/* The absolute path a file path names, symbolic links, "." and ".."
 * resolved (realpath), also for a file that does not exist yet (its
 * directory resolved, the name kept; failing that the path made
 * absolute against the working directory, unresolved). malloc'd; NULL
 * with errno set. */
char *fs_canonical_path(const char *path);

#endif
