/* node/router_boot.c — the router inside `citrus dev` / `citrus server`
 * (see router_boot.h). */
#include "node/router_boot.h"

#include "api/audit.h"

#include <stdio.h>
#include <string.h>

#include "api/handlers.h"
#include "citrus/errors.h"
#include "obs/log.h"
#include "router/router.h"
#include "provision/service.h"

int router_boot(const citrus_config *cfg, app *a, http_server **srv)
{
    *srv = NULL;
    if (strcmp(cfg->router_listen, "off") == 0)
        return 0;
    if (!a->shards) {
        fprintf(stderr, "citrus: the router needs the shard manager\n");
        return CITRUS_EINVAL;
    }
    router_options ro = {.reg = a->shards->reg,
                         .max_rows = (size_t)cfg->router_max_rows,
                         .pool_size = (int)cfg->router_pool_size,
                         .pool_wait_ms = cfg->router_pool_wait_ms,
                         .default_max_lag_ms = cfg->router_max_lag_ms,
                         .statement_cache =
                             cfg->router_stmt_cache ? (int)cfg->router_stmt_cache : -1,
                         .connect_timeout_ms = cfg->shard_db_timeout_ms,
                         .query_timeout_ms = cfg->router_query_timeout_ms,
                         .max_query_timeout_ms = cfg->router_max_query_timeout_ms,
                         .int64_as_string = strcmp(cfg->router_int64, "string") == 0,
                         .require_registered = strcmp(cfg->router_require_registered, "true") == 0,
                         .type_strict = svc_type_strict,
                         .type_strict_ctx = a->shards};
    a->router = router_new(&ro);
    if (!a->router) {
        fprintf(stderr, "citrus: out of memory starting the router\n");
        return CITRUS_ENOMEM;
    }
    http_server_options ho = {.listen = cfg->router_listen,
                              .thread_per_connection = true,
                              .max_conns = (unsigned)cfg->router_max_conns,
                              .idle_timeout_s = (unsigned)cfg->idle_timeout_s,
                              /* Small requests: headers up to 16 KiB (a JWT may
                               * take 8; the JSON body is read into the request's
                               * own buffer), so that libmicrohttpd's pool, zeroed
                               * per request, stays small. */
                              .max_header_bytes = (size_t)16 * 1024,
                              .connection_memory_bytes = (size_t)40 * 1024,
                              .gate = api_gate,
                              .gate_ctx = a,
                              .before = api_audit_before,
                              .done = api_audit_done,
                              .max_body_bytes = (size_t)cfg->max_body_bytes,
                              .component = "router",
                              .header_timeout_ms = (unsigned)cfg->header_timeout_ms,
                              .max_conns_per_ip = (unsigned)cfg->max_conns_per_ip,
                              .cors_allowed_origins = cfg->cors_origins,
                              .loopback_host_only = !a->auth || a->auth->modes == AUTHN_NONE,
                              .tls_cert_file = cfg->router_tls_cert_file,
                              .tls_key_file = cfg->router_tls_key_file,
                              .tls_client_ca_file = cfg->router_tls_client_ca_file,
                              .tls_name = "router.tls"};
    errdetail err;
    int rc = http_server_start(&ho, router_routes, router_nroutes, a, srv, &err);
    if (rc < 0) {
        /* EINVAL: a TLS file that cannot be used, a configuration error */
        fprintf(stderr, "citrus: %srouter: %s\n", rc == CITRUS_EINVAL ? "invalid config: " : "",
                err.message);
        router_free(a->router);
        a->router = NULL;
        return rc == CITRUS_EINVAL ? CITRUS_EINVAL : CITRUS_EIO;
    }
    const char *scheme = http_server_tls(*srv) ? "https" : "http";
    log_info("router", "router listening",
             json_pack("{s:s,s:i,s:s}", "listen", cfg->router_listen, "port",
                       (int)http_server_port(*srv), "scheme", scheme));
    fprintf(stderr, "  router   %s://%.*s:%u/v1/query\n", scheme,
            (int)(strrchr(cfg->router_listen, ':') - cfg->router_listen), cfg->router_listen,
            http_server_port(*srv));
    return 0;
}

void router_stop(app *a, http_server *srv)
{
    http_server_stop(srv);
    router_free(a->router);
    a->router = NULL;
}
