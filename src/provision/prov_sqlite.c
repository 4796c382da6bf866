/* provision/prov_sqlite.c — the SQLite provisioner: one database file per
 * shard, <dir>/<shard_id>.db, for development and small deployments.
 *
 * The directory is made absolute once (at provision time, after creating
 * it), so the DSN handed out, sqlite:///<abs path>, does not depend on the
 * working directory of whoever opens it. provision reuses an existing file
 * (idempotent); deprovision removes the file with its -wal and -shm
 * companions and succeeds when they are already gone. The path always
 * comes from the shard id, never from the dsn argument, so a deprovision
 * cannot delete a file outside the directory. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "citrus/errors.h"
#include "core/errdetail.h"
#include "obs/log.h"
#include "dbconn/driver.h"
#include "provision/provisioner.h"
#include "sys/fs.h"

#define OPEN_TIMEOUT_MS 5000

typedef struct prov_sqlite {
    provisioner base;
    char *dir;
} prov_sqlite;

/* <abs dir>/<id>.db into path, creating dir; 0 or a CITRUS_E* code. */
static int shard_path(prov_sqlite *p, const char *id, bool create_dir, char *path, size_t len,
                      errdetail *e)
{
    int rc = prov_shard_id_check(id, e);
    if (rc)
        return rc;
    if (create_dir && fs_mkdirs(p->dir, 0700) != 0)
        return errdetail_set(e, CITRUS_EIO, "creating %s: %s", p->dir, strerror(errno));
    char abs[PATH_MAX];
    if (!realpath(p->dir, abs)) {
        int en = errno;
        return errdetail_set(e, create_dir || en != ENOENT ? CITRUS_EIO : CITRUS_ENOTFOUND,
                             "%s: %s", p->dir, strerror(en));
    }
    if ((size_t)snprintf(path, len, "%s/%s.db", abs, id) >= len)
        return errdetail_set(e, CITRUS_EINVAL, "path too long");
    return 0;
}

static int sqlite_provision(provisioner *base, const prov_request *req, prov_result *out,
                            errdetail *e)
{
    prov_sqlite *p = (prov_sqlite *)base;
    memset(out, 0, sizeof(*out));
    char path[PATH_MAX];
    int rc = shard_path(p, req->shard_id, true, path, sizeof(path), e);
    if (rc)
        return rc;
    bool existed = access(path, F_OK) == 0;
    char *dsn = NULL;
    if (asprintf(&dsn, "sqlite://%s", path) < 0)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    drv_conn *db = NULL;
    errdetail scratch;
    if (!e)
        e = &scratch;
    rc = drv_open(dsn, &(drv_options){.timeout_ms = OPEN_TIMEOUT_MS, .create = true}, &db, e);
    drv_close(db);
    if (rc) {
        free(dsn);
        if (rc == CITRUS_EUNAVAILABLE)
            rc = e->code = CITRUS_EIO;
        return rc;
    }
    out->dsn = dsn;
    log_info("provisioner",
             existed ? "sqlite shard database reused" : "sqlite shard database created",
             json_pack("{s:s, s:s}", "shard_id", req->shard_id, "path", path));
    return 0;
}

static int remove_if_present(const char *path, errdetail *e)
{
    if (unlink(path) == 0 || errno == ENOENT)
        return 0;
    return errdetail_set(e, CITRUS_EIO, "removing %s: %s", path, strerror(errno));
}

static int sqlite_deprovision(provisioner *base, const char *shard_id, const char *dsn,
                              errdetail *e)
{
    prov_sqlite *p = (prov_sqlite *)base;
    char path[PATH_MAX - 8], side[PATH_MAX];
    int rc = shard_path(p, shard_id, false, path, sizeof(path), e);
    if (rc == CITRUS_ENOTFOUND) {
        errdetail_clear(e);
        return 0; /* no directory: nothing to remove */
    }
    if (rc)
        return rc;
    static const char *const suffixes[] = {"-wal", "-shm", ""};
    for (size_t i = 0; rc == 0 && i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        snprintf(side, sizeof(side), "%s%s", path, suffixes[i]);
        rc = remove_if_present(side, e);
    }
    if (rc == 0)
        log_info("provisioner", "sqlite shard database removed",
                 json_pack("{s:s, s:s}", "shard_id", shard_id, "path", path));
    return rc;
}

static json_t *sqlite_describe(provisioner *base)
{
    prov_sqlite *p = (prov_sqlite *)base;
    return json_pack("{s:s, s:s}", "kind", "sqlite", "dir", p->dir);
}

static void sqlite_free(provisioner *base)
{
    prov_sqlite *p = (prov_sqlite *)base;
    if (!p)
        return;
    free(p->dir);
    free(p);
}

provisioner *prov_sqlite_new(const char *dir)
{
    if (!dir || !*dir)
        return NULL;
    prov_sqlite *p = calloc(1, sizeof(*p));
    if (!p || !(p->dir = strdup(dir))) {
        free(p);
        return NULL;
    }
    p->base.kind = "sqlite";
    p->base.provision = sqlite_provision;
    p->base.deprovision = sqlite_deprovision;
    p->base.describe = sqlite_describe;
    p->base.free = sqlite_free;
    return &p->base;
}
