/* node/records_boot.c — the records store of a node (see records_boot.h). */
#include "node/records_boot.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "citrus/errors.h"
#include "obs/log.h"
#include "records/records.h"
#include "sys/clock.h"
#include "sys/fs.h"

#define PURGE_EVERY_MS (3600 * 1000)

static struct {
    pthread_t th;
    bool running, stopping;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    records *rec;
    int64_t keep_ms;
} purger = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void purge(void)
{
    int64_t deleted = 0;
    errdetail e;
    if (records_audit_purge(purger.rec, clock_wall_ms(NULL) - purger.keep_ms, &deleted, &e) < 0)
        log_warn("records", "audit retention: purge failed",
                 json_pack("{s:s}", "error", e.message));
    else if (deleted)
        log_info("records", "audit retention: rows deleted",
                 json_pack("{s:I}", "deleted", (json_int_t)deleted));
}

static void *purger_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&purger.mu);
    while (!purger.stopping) {
        struct timespec ts = clock_cond_deadline(PURGE_EVERY_MS);
        if (pthread_cond_timedwait(&purger.cv, &purger.mu, &ts) == 0 || purger.stopping)
            continue;
        pthread_mutex_unlock(&purger.mu);
        purge();
        pthread_mutex_lock(&purger.mu);
    }
    pthread_mutex_unlock(&purger.mu);
    return NULL;
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
        snprintf(path, sizeof(path), "%s/records.db", cfg->data_dir);
        if (fs_mkdirs(cfg->data_dir, 0700) < 0) {
            fprintf(stderr, "citrus %s: cannot create data dir %s: %s\n", cmd, cfg->data_dir,
                    strerror(errno));
            return CITRUS_EIO;
        }
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
    purger.stopping = false;
    purge();
    clock_cond_init(&purger.cv);
    purger.running = pthread_create(&purger.th, NULL, purger_main, NULL) == 0;
    return 0;
}

void records_stop(app *a)
{
    if (purger.running) {
        pthread_mutex_lock(&purger.mu);
        purger.stopping = true;
        pthread_cond_broadcast(&purger.cv);
        pthread_mutex_unlock(&purger.mu);
        pthread_join(purger.th, NULL);
        purger.running = false;
        pthread_cond_destroy(&purger.cv);
    }
    records_close(a->rec);
    a->rec = NULL;
}
