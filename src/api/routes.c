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
    {"GET", "/health/live", api_health_live, ROUTE_BODY_NONE, NULL},
    {"GET", "/health/ready", api_health_ready, ROUTE_BODY_NONE, NULL},
    {"GET", "/metrics", api_metrics, ROUTE_BODY_NONE, NULL},
};

const size_t api_nroutes = sizeof(api_routes) / sizeof(api_routes[0]);
