/* sys/fs.h — file-system helpers shared by the commands and the
 * provisioners. */
#ifndef CITRUS_SYS_FS_H
#define CITRUS_SYS_FS_H

#include <sys/types.h>

/* mkdir -p: creates path and its missing parents with mode (an existing
 * directory is fine). 0, or -1 with errno set (ENOTDIR when a part exists
 * but is not a directory, ENAMETOOLONG, or mkdir's own). */
int fs_mkdirs(const char *path, mode_t mode);

#endif
