/* node/shards_boot.h — starting the shard manager inside `citrus dev` and
 * `citrus server`: registry, provisioner and templates from the config;
 * in dev, the example template and the first SQLite shards. */
#ifndef CITRUS_NODE_SHARDS_BOOT_H
#define CITRUS_NODE_SHARDS_BOOT_H

#include <stdbool.h>

#include "api/app.h"
#include "node/config.h"
#include "provision/service.h"

/* Sets a->shards. dev with dev_shards > 0: write the example template when
 * the templates dir is the default, and create cfg->dev_shards SQLite
 * shards when the catalog has none. 0, or an error already reported on
 * stderr. */
int shards_boot(const citrus_config *cfg, bool dev, app *a);
/* Starts the provisioning worker (sess may be NULL). */
void shards_start_worker(app *a, session *sess);
/* Stops the worker and frees the service. */
void shards_stop(app *a);

#endif
