/* api/routes.c — the route table of the server API (docs/openapi.yaml
 * describes each; tests/integration/test_openapi.py checks they agree). */
#include "api/app.h"
#include "api/handlers.h"

const http_route api_routes[] = {
    {"GET", "/v1/kv/{key*}", api_kv_get, ROUTE_BODY_NONE, "reader"},
    {"PUT", "/v1/kv/{key*}", api_kv_put, ROUTE_BODY_RAW, "operator"},
    {"DELETE", "/v1/kv/{key*}", api_kv_delete, ROUTE_BODY_NONE, "operator"},
    {"POST", "/v1/txn", api_txn, ROUTE_BODY_JSON, "operator"},
    {"GET", "/v1/watch/{prefix*}", api_watch, ROUTE_BODY_NONE, "reader"},
    {"POST", "/v1/leases", api_lease_grant, ROUTE_BODY_JSON, "operator"},
    {"POST", "/v1/leases/{id}/keepalive", api_lease_keepalive, ROUTE_BODY_NONE, "operator"},
    {"DELETE", "/v1/leases/{id}", api_lease_revoke, ROUTE_BODY_NONE, "operator"},
    {"GET", "/v1/snapshot", api_snapshot, ROUTE_BODY_NONE, "admin"},
    {"GET", "/v1/cluster", api_cluster, ROUTE_BODY_NONE, "reader"},
    {"POST", "/v1/shards", api_shards_create, ROUTE_BODY_JSON, "admin"},
    {"GET", "/v1/shards", api_shards_list, ROUTE_BODY_NONE, "reader"},
    {"GET", "/v1/shards/{id}", api_shards_get, ROUTE_BODY_NONE, "reader"},
    {"PATCH", "/v1/shards/{id}", api_shards_patch, ROUTE_BODY_JSON, "admin"},
    {"DELETE", "/v1/shards/{id}", api_shards_delete, ROUTE_BODY_NONE, "admin"},
    {"POST", "/v1/shards/{id}/{action}", api_shards_action, ROUTE_BODY_NONE, "admin"},
    {"GET", "/v1/route/{key*}", api_route_get, ROUTE_BODY_NONE, "reader"},
    {"POST", "/v1/route", api_route_batch, ROUTE_BODY_JSON, "reader"},
    {"GET", "/v1/tenants", api_tenants_list, ROUTE_BODY_NONE, "reader"},
    {"GET", "/v1/tenants/{key}", api_tenants_get, ROUTE_BODY_NONE, "reader"},
    {"PUT", "/v1/tenants/{key}", api_tenants_put, ROUTE_BODY_JSON, "operator"},
    {"DELETE", "/v1/tenants/{key}", api_tenants_delete, ROUTE_BODY_NONE, "operator"},
    {"POST", "/api/register", api_citrus_register, ROUTE_BODY_JSON, "operator"},
    {"POST", "/api/register/batch", api_citrus_register_batch, ROUTE_BODY_JSON, "operator"},
    {"GET", "/api/shard/{shardKey}", api_citrus_shard, ROUTE_BODY_NONE, "reader"},
    {"GET", "/api/shards/health", api_citrus_health, ROUTE_BODY_NONE, "reader"},
    {"GET", "/health/live", api_health_live, ROUTE_BODY_NONE, NULL},
    {"GET", "/health/ready", api_health_ready, ROUTE_BODY_NONE, NULL},
    {"GET", "/metrics", api_metrics, ROUTE_BODY_NONE, NULL},
};

const size_t api_nroutes = sizeof(api_routes) / sizeof(api_routes[0]);

const http_route router_routes[] = {
    {"POST", "/v1/query", api_query, ROUTE_BODY_JSON, "operator"},
    {"POST", "/v1/tx", api_tx, ROUTE_BODY_JSON, "operator"},
    {"GET", "/health/live", api_health_live, ROUTE_BODY_NONE, NULL},
    {"GET", "/health/ready", api_health_ready, ROUTE_BODY_NONE, NULL},
    {"GET", "/metrics", api_metrics, ROUTE_BODY_NONE, NULL},
};

const size_t router_nroutes = sizeof(router_routes) / sizeof(router_routes[0]);
