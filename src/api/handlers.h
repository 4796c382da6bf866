/* api/handlers.h — every REST handler, one group per resource file. */
#ifndef CITRUS_API_HANDLERS_H
#define CITRUS_API_HANDLERS_H

#include "http/server.h"

/* kv.c */
int api_kv_get(http_req *r, void *app);
int api_kv_put(http_req *r, void *app);
int api_kv_delete(http_req *r, void *app);
/* txn.c */
int api_txn(http_req *r, void *app);
/* watch.c */
int api_watch(http_req *r, void *app); /* on the app's watch hub (watch.h) */
/* lease.c */
int api_lease_grant(http_req *r, void *app);
int api_lease_keepalive(http_req *r, void *app);
int api_lease_revoke(http_req *r, void *app);
/* health.c */
int api_health_live(http_req *r, void *app);
int api_health_ready(http_req *r, void *app);
int api_metrics(http_req *r, void *app);
/* cluster.c */
int api_cluster(http_req *r, void *app);
/* snapshot.c */
int api_snapshot(http_req *r, void *app);
/* maintenance.c */
int api_maintenance_compact(http_req *r, void *app);
int api_maintenance_defrag(http_req *r, void *app);

/* shards.c */
int api_shards_create(http_req *r, void *app);
int api_shards_list(http_req *r, void *app);
int api_shards_get(http_req *r, void *app);
int api_shards_patch(http_req *r, void *app);
int api_shards_action(http_req *r, void *app);
int api_shards_delete(http_req *r, void *app);
/* routing.c */
int api_route_get(http_req *r, void *app);
int api_route_batch(http_req *r, void *app);
/* tenants.c */
int api_tenants_list(http_req *r, void *app);
int api_tenants_get(http_req *r, void *app);
int api_tenants_put(http_req *r, void *app);
int api_tenants_delete(http_req *r, void *app);
/* citrus.c: the Citrus API (docs/requirements.md, "Citrus API and registration") */
int api_citrus_register(http_req *r, void *app);
int api_citrus_register_batch(http_req *r, void *app);
int api_citrus_shard(http_req *r, void *app);
int api_citrus_health(http_req *r, void *app);

/* authkeys.c: API keys (auth/keyring.h) */
int api_auth_keys_create(http_req *r, void *app);
int api_auth_keys_list(http_req *r, void *app);
int api_auth_keys_delete(http_req *r, void *app);
int api_auth_bootstrap(http_req *r, void *app);
/* audit.c: the audit log (GET /v1/audit) */
int api_audit_list(http_req *r, void *app);
/* notifications.c: the event notification worker's notifications */
int api_notifications_list(http_req *r, void *app);
/* manifests.c: enrollment manifests */
int api_manifests_put(http_req *r, void *app);
int api_manifests_get(http_req *r, void *app);

/* topics.c, consumers.c, dlq.c: operating the event bus (docs/events.md) */
int api_topics_list(http_req *r, void *app);
int api_topic_publish(http_req *r, void *app);
int api_topic_events(http_req *r, void *app);
int api_consumers_list(http_req *r, void *app);
int api_dlq_list(http_req *r, void *app);
int api_dlq_replay(http_req *r, void *app);
/* registrations.c: the registration queue (seed 003) */
int api_registrations_get(http_req *r, void *app);
int api_registrations_list(http_req *r, void *app);
int api_registrations_retry(http_req *r, void *app);
int api_business_register_shards(http_req *r, void *app);
struct tenant_reg;
/* Whether the caller asked for an asynchronous registration (?async=true
 * or Prefer: respond-async) into *async; false when ?async is no boolean
 * (400 sent). */
bool api_regq_wanted(http_req *r, bool *async);
/* Queues regs[0..n) (checked as the synchronous call checks them): one
 * registration each, 202 (or the error) sent. */
int api_regq_enqueue(http_req *r, app *a, const struct tenant_reg *regs, size_t n, bool batch);

/* query.c: the router (its own listener, router_routes) */
int api_query(http_req *r, void *app);
int api_tx(http_req *r, void *app);

#endif
