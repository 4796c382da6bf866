/* sys/fs.c — file-system helpers (see fs.h). */
#include "sys/fs.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

/* One directory: created, or already a directory. */
static int one(const char *path, mode_t mode)
{
    if (mkdir(path, mode) == 0)
        return 0;
    if (errno != EEXIST)
        return -1;
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

int fs_mkdirs(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (one(buf, mode) < 0)
            return -1;
        *p = '/';
    }
    return one(buf, mode);
}

static int private_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)ftw;
    if (type != FTW_F && type != FTW_D && type != FTW_DP)
        return 0;                     /* links, sockets and the like keep theirs */
    mode_t want = st->st_mode & 0700; /* the owner's bits only */
    if ((st->st_mode & 07777) == want)
        return 0;
    return chmod(path, want) == 0 ? 0 : -1;
}

int fs_make_private(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    return nftw(path, private_one, 16, FTW_PHYS);
}

char *fs_canonical_path(const char *path)
{
    char *real = realpath(path, NULL);
    if (real)
        return real;
    char *out = NULL;
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    const char *name = slash ? slash + 1 : path;
    char *rdir = dir ? realpath(dir, NULL) : NULL;
    if (rdir && *name &&
        asprintf(&out, "%s%s%s", rdir, strcmp(rdir, "/") == 0 ? "" : "/", name) < 0)
        out = NULL;
    if (!out && path[0] == '/')
        out = strdup(path);
    char cwd[PATH_MAX];
    if (!out && path[0] != '/' && getcwd(cwd, sizeof(cwd)) &&
        asprintf(&out, "%s/%s", cwd, path) < 0)
        out = NULL;
    free(dir);
    free(rdir);
    return out;
}
