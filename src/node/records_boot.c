/* node/records_boot.c — the records store of a node (see records_boot.h). */
#include "node/records_boot.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "citrus/errors.h"
#include "obs/log.h"
#include "records/records.h"
#include "sys/clock.h"
#include "sys/fs.h"
#include "sys/ticker.h"

#define PURGE_EVERY_MS (3600 * 1000)

static struct {
    ticker *t;
    records *rec;
    int64_t keep_ms;
} purger;

static void purge(void *ctx)
{
    (void)ctx;
    int64_t deleted = 0;
    errdetail e;
    if (records_audit_purge(purger.rec, clock_wall_ms(NULL) - purger.keep_ms, &deleted, &e) < 0)
        log_warn("records", "audit retention: purge failed",
                 json_pack("{s:s}", "error", e.message));
    else if (deleted)
        log_info("records", "audit retention: rows deleted",
                 json_pack("{s:I}", "deleted", (json_int_t)deleted));
}

int records_boot(const citrus_config *cfg, const char *cmd, app *a)
{
    errdetail e;
    int rc;
    if (strcmp(cfg->records_backend, "postgres") == 0) {
        if (!cfg->records_pg_dsn[0]) {
            fprintf(stderr,
                    "citrus %s: invalid config: records.postgres.dsn: required with "
                    "records.backend postgres\n",
                    cmd);
            return CITRUS_EINVAL;
        }
        rc = records_open_postgres(cfg->records_pg_dsn, &a->rec, &e);
    } else {
        char path[PATH_MAX];
        if ((rc = config_data_file(cfg, cmd, "records.db", path, sizeof(path))) < 0)
            return rc;
        rc = records_open_sqlite(path, &a->rec, &e);
    }
    if (rc < 0) {
        fprintf(stderr, "citrus %s: cannot open the records store (audit log): %s\n", cmd,
                e.message);
        return rc;
    }
    a->audit_fail_open = strcmp(cfg->audit_fail_open, "true") == 0;
    purger.rec = a->rec;
    purger.keep_ms = cfg->audit_retention_days * 24 * 3600 * 1000;
    purge(NULL);
    purger.t = ticker_start("audit-purge", PURGE_EVERY_MS, purge, NULL);
    return 0;
}

void records_stop(app *a)
{
    ticker_stop(purger.t);
    purger.t = NULL;
    records_close(a->rec);
    a->rec = NULL;
}
