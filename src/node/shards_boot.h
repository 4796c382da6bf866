/* node/shards_boot.h — starting the shard manager inside `citrus dev` and
 * `citrus server`: registry, provisioner and templates from the config;
 * in dev, the example template and the first SQLite shards. */
#ifndef CITRUS_NODE_SHARDS_BOOT_H
#define CITRUS_NODE_SHARDS_BOOT_H

#include <stdbool.h>

#include "api/app.h"
#include "node/config.h"
#include "provision/service.h"

/* Sets a->shards and a->health (not started). dev with dev_shards > 0: write the example template
 * when the templates dir is the default, and create cfg->dev_shards SQLite shards when the catalog
 * has none. 0, or an error already reported on stderr. */
int shards_boot(const citrus_config *cfg, bool dev, app *a);
/* Starts the provisioning worker (sess may be NULL) and the health probes,
 * after a first probe round on the caller's thread (at most one probe
 * timeout), so health answers know every shard once the node serves. */
void shards_start_worker(app *a, session *sess);
/* Stops the probes and the worker and frees them and the service. */
void shards_stop(app *a);

#endif
