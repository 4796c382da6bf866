/* api/routes.c — the route tables of the server API and the router
 * (docs/openapi.yaml describes each route; tests/integration/test_openapi.py
 * checks they agree). Every route names the role it needs and what else
 * decides (auth/authn.h: authn_authorize); api/gate.c enforces both before
 * the handler runs, and docs/security.md lists them (test_auth.py checks
 * the list against this table). */
#include "api/app.h"
#include "api/handlers.h"

#define ADMIN "sm-admin"
#define OPERATOR "sm-operator"
#define READER "reader"

const http_route api_routes[] = {
    {"GET", "/v1/kv/{key*}", api_kv_get, ROUTE_BODY_NONE, READER, "kv"},
    {"PUT", "/v1/kv/{key*}", api_kv_put, ROUTE_BODY_RAW, OPERATOR, "kv"},
    {"DELETE", "/v1/kv/{key*}", api_kv_delete, ROUTE_BODY_NONE, OPERATOR, "kv"},
    {"POST", "/v1/txn", api_txn, ROUTE_BODY_JSON, READER, "kv-body"},
    {"GET", "/v1/watch/{prefix*}", api_watch, ROUTE_BODY_NONE, READER, "kv"},
    {"POST", "/v1/leases", api_lease_grant, ROUTE_BODY_JSON, OPERATOR, "kv-body"},
    {"POST", "/v1/leases/{id}/keepalive", api_lease_keepalive, ROUTE_BODY_NONE, OPERATOR,
     "kv-body"},
    {"DELETE", "/v1/leases/{id}", api_lease_revoke, ROUTE_BODY_NONE, ADMIN, NULL},
    {"GET", "/v1/snapshot", api_snapshot, ROUTE_BODY_NONE, ADMIN, NULL},
    {"POST", "/v1/maintenance/compact", api_maintenance_compact, ROUTE_BODY_JSON, ADMIN, NULL},
    {"POST", "/v1/maintenance/defrag", api_maintenance_defrag, ROUTE_BODY_JSON, ADMIN, NULL},
    {"GET", "/v1/cluster", api_cluster, ROUTE_BODY_NONE, READER, NULL},
    {"POST", "/v1/shards", api_shards_create, ROUTE_BODY_JSON, ADMIN, NULL},
    {"GET", "/v1/shards", api_shards_list, ROUTE_BODY_NONE, READER, NULL},
    {"GET", "/v1/shards/{id}", api_shards_get, ROUTE_BODY_NONE, READER, NULL},
    {"PATCH", "/v1/shards/{id}", api_shards_patch, ROUTE_BODY_JSON, ADMIN, NULL},
    {"DELETE", "/v1/shards/{id}", api_shards_delete, ROUTE_BODY_NONE, ADMIN, NULL},
    /* retire needs sm-admin (the handler checks); the others keep data */
    {"POST", "/v1/shards/{id}/{action}", api_shards_action, ROUTE_BODY_NONE, OPERATOR, NULL},
    {"GET", "/v1/route/{key*}", api_route_get, ROUTE_BODY_NONE, READER, "tenant"},
    {"POST", "/v1/route", api_route_batch, ROUTE_BODY_JSON, READER, "tenant-body"},
    {"GET", "/v1/tenants", api_tenants_list, ROUTE_BODY_NONE, READER, NULL},
    {"GET", "/v1/tenants/{key}", api_tenants_get, ROUTE_BODY_NONE, READER, "tenant"},
    {"PUT", "/v1/tenants/{key}", api_tenants_put, ROUTE_BODY_JSON, OPERATOR, NULL},
    {"DELETE", "/v1/tenants/{key}", api_tenants_delete, ROUTE_BODY_NONE, OPERATOR, NULL},
    {"POST", "/api/register", api_citrus_register, ROUTE_BODY_JSON, OPERATOR, "tenant-body"},
    {"POST", "/api/register/batch", api_citrus_register_batch, ROUTE_BODY_JSON, OPERATOR,
     "tenant-body"},
    {"GET", "/api/shard/{shardKey}", api_citrus_shard, ROUTE_BODY_NONE, READER, "tenant"},
    {"GET", "/api/shards/health", api_citrus_health, ROUTE_BODY_NONE, READER, NULL},
    {"POST", "/v1/auth/keys", api_auth_keys_create, ROUTE_BODY_JSON, ADMIN, NULL},
    {"GET", "/v1/auth/keys", api_auth_keys_list, ROUTE_BODY_NONE, ADMIN, NULL},
    {"DELETE", "/v1/auth/keys/{id}", api_auth_keys_delete, ROUTE_BODY_NONE, ADMIN, NULL},
    {"GET", "/v1/audit", api_audit_list, ROUTE_BODY_NONE, ADMIN, NULL},
    {"GET", "/v1/topics", api_topics_list, ROUTE_BODY_NONE, READER, NULL},
    {"POST", "/v1/topics/{topic}/events", api_topic_publish, ROUTE_BODY_JSON, OPERATOR, NULL},
    {"GET", "/v1/topics/{topic}/events", api_topic_events, ROUTE_BODY_NONE, READER, NULL},
    {"GET", "/v1/consumers", api_consumers_list, ROUTE_BODY_NONE, READER, NULL},
    {"GET", "/v1/dlq/{topic}", api_dlq_list, ROUTE_BODY_NONE, READER, NULL},
    {"POST", "/v1/dlq/{topic}/{id}/replay", api_dlq_replay, ROUTE_BODY_NONE, OPERATOR, NULL},
    {"GET", "/v1/notifications", api_notifications_list, ROUTE_BODY_NONE, READER, NULL},
    {"PUT", "/v1/manifests/{id}", api_manifests_put, ROUTE_BODY_JSON, OPERATOR, NULL},
    {"GET", "/v1/manifests/{id}", api_manifests_get, ROUTE_BODY_NONE, READER, NULL},
    {"GET", "/v1/registrations", api_registrations_list, ROUTE_BODY_NONE, READER, "tenant-own"},
    {"GET", "/v1/registrations/{id}", api_registrations_get, ROUTE_BODY_NONE, READER, "tenant-own"},
    {"POST", "/v1/registrations/{id}/retry", api_registrations_retry, ROUTE_BODY_NONE, OPERATOR,
     NULL},
    {"POST", "/v1/businesses/{id}/register-shards", api_business_register_shards, ROUTE_BODY_NONE,
     OPERATOR, NULL},
    /* anyone, exactly once per cluster (the catalog's txn decides) */
    {"POST", "/v1/auth/bootstrap", api_auth_bootstrap, ROUTE_BODY_NONE, NULL, NULL},
    {"GET", "/health/live", api_health_live, ROUTE_BODY_NONE, NULL, NULL},
    {"GET", "/health/ready", api_health_ready, ROUTE_BODY_NONE, NULL, NULL},
    {"GET", "/metrics", api_metrics, ROUTE_BODY_NONE, READER, "metrics"},
};

const size_t api_nroutes = sizeof(api_routes) / sizeof(api_routes[0]);

const http_route router_routes[] = {
    {"POST", "/v1/query", api_query, ROUTE_BODY_JSON, OPERATOR, "tenant-body"},
    {"POST", "/v1/tx", api_tx, ROUTE_BODY_JSON, OPERATOR, "tenant-body"},
    {"GET", "/health/live", api_health_live, ROUTE_BODY_NONE, NULL, NULL},
    {"GET", "/health/ready", api_health_ready, ROUTE_BODY_NONE, NULL, NULL},
    {"GET", "/metrics", api_metrics, ROUTE_BODY_NONE, READER, "metrics"},
};

const size_t router_nroutes = sizeof(router_routes) / sizeof(router_routes[0]);
