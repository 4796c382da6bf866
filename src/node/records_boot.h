/* node/records_boot.h — the records store of a node (records.backend):
 * SQLite at <data-dir>/records.db, or PostgreSQL (records.postgres.dsn);
 * the audit log's retention (records.audit_retention_days), applied at
 * start and every hour. */
#ifndef CITRUS_NODE_RECORDS_BOOT_H
#define CITRUS_NODE_RECORDS_BOOT_H

#include "api/app.h"
#include "node/config.h"

/* Sets a->rec and a->audit_fail_open. 0, or an error reported on stderr. */
int records_boot(const citrus_config *cfg, const char *cmd, app *a);
void records_stop(app *a);

#endif
