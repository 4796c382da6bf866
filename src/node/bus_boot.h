/* node/bus_boot.h — the event bus of a node (bus.backend): the embedded
 * durable log at <data-dir>/bus.db, or Kafka (bus.kafka.*); the topics of seed 000 (bus.topics,
 * with their dead-letter topics) created at start when missing, with
 * bus.partitions and the retention settings; retention applied at start
 * and every minute. */
#ifndef CITRUS_NODE_BUS_BOOT_H
#define CITRUS_NODE_BUS_BOOT_H

#include "api/app.h"
#include "node/config.h"

/* Sets a->bus and a->max_event_bytes. 0, or an error reported on stderr. */
int bus_boot(const citrus_config *cfg, const char *cmd, app *a);
/* Stops the retention ticker and closes a->bus (NULL is fine). */
void bus_stop(app *a);

#endif
