/* node/workers_boot.h — the workers role of a node (workers.enabled; on in
 * `citrus dev`, off by default in `citrus server`): the event notification
 * worker on bus.topics.platform_events with group
 * bus.groups.event_notification, filtered by workers.notification_filter;
 * the enrollment ingest worker (bus.topics.enrollment_events, group
 * bus.groups.enrollment_ingest → bus.topics.shard_ingest_commands) when the
 * node runs the shard manager; the shard management worker
 * (bus.topics.sm_commands, group bus.groups.shard_management, outcomes on
 * bus.topics.sm_events) there too;
 * and the hourly retention of the processed-ids ledger (bus retention + 1
 * day) and of the notifications (workers.notification_retention_days).
 * Started after the bus and the shard manager, stopped before them. */
#ifndef CITRUS_NODE_WORKERS_BOOT_H
#define CITRUS_NODE_WORKERS_BOOT_H

#include "api/app.h"
#include "controller/session.h"
#include "node/config.h"
#include "workers/ingest.h"

/* 0 (also when the role is off), or an error reported on stderr:
 * CITRUS_EINVAL for a bad filter (exit status 2). Needs a->bus and a->rec. */
int workers_boot(const citrus_config *cfg, const char *cmd, app *a);
/* The registration worker (workers/registration.h) on
 * bus.topics.registrations with group bus.groups.registration, when the
 * role is on and this node runs the shard manager; started after it,
 * stopped (workers_regq_stop) before it. Finished registrations are
 * deleted after workers.registration_retention_days by the role's hourly
 * retention. */
int workers_regq_boot(const citrus_config *cfg, const char *cmd, app *a);
void workers_regq_stop(void);
/* The node's controller session, once started (NULL: none could be
 * started): the shard management worker polls no command before this is
 * called, then only while the session leads (its writes fenced by its
 * token; with NULL, unfenced). Call before the session stops and keep it
 * alive until workers_stop. */
void workers_set_session(session *s);
/* The enrollment ingest worker's routing (an ingest_route_fn; ctx is the
 * node's registry): the directory's pin, else the ring's owner, as
 * GET /v1/route answers. Public for bench/bench_ingest.c. */
int workers_ingest_route(void *ctx, const char *tenant_key, ingest_target *out, errdetail *e);
/* Stops the workers (each finishes its batch) and the retention job. */
void workers_stop(void);

#endif
