/* node/serve.c — `citrus dev` / `citrus server`: configuration, the catalog
 * store, the HTTP API, and a clean stop on SIGINT/SIGTERM. */
#include "node/serve.h"

#include <errno.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/app.h"
#include "api/audit.h"
#include "api/handlers.h"
#include "api/watch.h"
#include "catalog/cache.h"
#include "catalog/store_etcd.h"
#include "catalog/store_sqlite.h"
#include "citrus/errors.h"
#include "node/auth_boot.h"
#include "node/bus_boot.h"
#include "node/config.h"
#include "node/records_boot.h"
#include "node/workers_boot.h"
#include "node/router_boot.h"
#include "node/shards_boot.h"
#include "workers/relay.h"
#include "controller/session.h"
#include "http/server.h"
#include "obs/log.h"
#include "sys/fs.h"

/* The defaults of cmd: the table's, and for dev and router their own. */
static void cmd_defaults(const char *cmd, citrus_config *cfg)
{
    config_defaults(cfg);
    if (strcmp(cmd, "dev") == 0) { /* everything on one machine: SQLite shards */
        snprintf(cfg->prov_kind, sizeof(cfg->prov_kind), "sqlite");
        cfg->dev_shards = 4;
        snprintf(cfg->workers_enabled, sizeof(cfg->workers_enabled), "true");
        snprintf(cfg->router_listen, sizeof(cfg->router_listen), "127.0.0.1:8080");
    } else if (strcmp(cmd, "router") == 0) { /* a node whose job is the data plane */
        snprintf(cfg->router_listen, sizeof(cfg->router_listen), "127.0.0.1:8080");
    }
}

static void usage(const char *cmd, FILE *f)
{
    fprintf(f,
            "usage: citrus %s [--config FILE] [options]\n\n"
            "%s\n\n"
            "Options (each also settable in citrus.json and as an environment variable):\n",
            cmd,
            strcmp(cmd, "dev") == 0
                ? "Runs Citrus on one machine, everything embedded in one process: the catalog\n"
                  "KV and shard APIs on --listen with the store under --data-dir\n"
                  "(./citrus-data), four SQLite shards, and the router on --router-listen."
            : strcmp(cmd, "router") == 0
                ? "Runs a Citrus node whose router (SQL on shards, POST /v1/query) listens on\n"
                  "--router-listen (127.0.0.1:8080); otherwise as citrus server."
                : "Runs a Citrus server node: the catalog KV and shard APIs and health\n"
                  "endpoints (and the router when --router-listen is set).");
    citrus_config *d = calloc(1, sizeof(*d)); /* large: not on the stack */
    if (d)
        cmd_defaults(cmd, d);
    config_print_help(f, d);
    free(d);
    fprintf(f, "  --config FILE      citrus.json to read first (also CITRUS_CONFIG)\n");
}

/* Reads --config first, then env, then the other flags. Returns 0, 1 for
 * --help (already printed), or 2 for a usage error (already reported). */
static int load_config(int argc, char **argv, char **envp, citrus_config *cfg)
{
    errdetail err;
    cmd_defaults(argv[0], cfg);
    const char *file = getenv("CITRUS_CONFIG");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(argv[0], stdout);
            return 1;
        }
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            file = argv[i + 1];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            file = argv[i] + 9;
    }
    if (file && config_load_file(cfg, file, &err) < 0) {
        fprintf(stderr, "citrus %s: invalid config: %s\n", argv[0], err.message);
        return 2;
    }
    if (config_load_env(cfg, envp, &err) < 0) {
        fprintf(stderr, "citrus %s: invalid config: %s\n", argv[0], err.message);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "citrus %s: unexpected argument '%s' (see --help)\n", argv[0], a);
            return 2;
        }
        char name[64];
        const char *eq = strchr(a, '=');
        const char *val;
        size_t nlen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (nlen >= sizeof(name)) {
            fprintf(stderr, "citrus %s: unknown option '%s'\n", argv[0], a);
            return 2;
        }
        memcpy(name, a + 2, nlen);
        name[nlen] = '\0';
        if (eq) {
            val = eq + 1;
        } else if (config_flag_is_bool(name) &&
                   (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0)) {
            val = "true"; /* `--workers` alone */
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            fprintf(stderr, "citrus %s: option '%s' needs a value\n", argv[0], a);
            return 2;
        }
        if (strcmp(name, "config") == 0)
            continue;
        if (config_set_flag(cfg, name, val, &err) < 0) {
            fprintf(stderr, "citrus %s: %s\n", argv[0], err.message);
            return 2;
        }
    }
    if (config_validate(cfg, &err) < 0) {
        fprintf(stderr, "citrus %s: invalid config: %s\n", argv[0], err.message);
        return 2;
    }
    return 0;
}

static int open_embedded(const citrus_config *cfg, store **st)
{
    char path[PATH_MAX];
    errdetail err;
    if (config_data_file(cfg, NULL, "catalog.db", path, sizeof(path)) < 0)
        return CITRUS_EIO;
    store_sqlite_options so = {
        .path = path, .history_keep = cfg->history_keep, .quota_bytes = cfg->quota_bytes};
    int rc = store_sqlite_open(&so, st, &err);
    if (rc < 0)
        fprintf(stderr, "citrus: cannot open catalog store %s: %s\n", path, err.message);
    return rc;
}

static int open_etcd(const citrus_config *cfg, store **st)
{
    char list[sizeof(cfg->etcd_endpoints)];
    errdetail err;
    const char *eps[32];
    size_t n = 0;
    snprintf(list, sizeof(list), "%s", cfg->etcd_endpoints);
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t && n < 32;
         t = strtok_r(NULL, ",", &save))
        eps[n++] = t;
    store_etcd_options eo = {.endpoints = eps,
                             .nendpoints = n,
                             .ca_file = cfg->etcd_ca_file,
                             .cert_file = cfg->etcd_cert_file,
                             .key_file = cfg->etcd_key_file,
                             .connect_timeout_ms = cfg->etcd_connect_timeout_ms,
                             .request_timeout_ms = cfg->etcd_request_timeout_ms,
                             .batch_puts = strcmp(cfg->etcd_batch_puts, "on") == 0};
    int rc = store_etcd_open(&eo, st, &err);
    if (rc < 0)
        fprintf(stderr, "citrus: cannot open the etcd catalog at %s: %s\n", cfg->etcd_endpoints,
                err.message);
    return rc;
}

/* Waits up to ms for SIGINT/SIGTERM (blocked in every thread); true if one
 * came. */
static bool stop_signal_within(long ms)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    return sigtimedwait(&set, NULL, &ts) > 0;
}

/* etcd may still be starting (a whole cluster brought up at once): keep
 * trying for a while rather than exit at the first refusal. */
#define ETCD_OPEN_ATTEMPTS 30

static int open_store(const citrus_config *cfg, store **st)
{
    if (strcmp(cfg->backend, "etcd") != 0)
        return open_embedded(cfg, st);
    int rc = CITRUS_EUNAVAILABLE;
    for (int i = 0; i < ETCD_OPEN_ATTEMPTS && rc == CITRUS_EUNAVAILABLE; i++) {
        if (i && stop_signal_within(1000))
            return CITRUS_ECLOSED;
        rc = open_etcd(cfg, st);
    }
    return rc;
}

/* SIGHUP: both listeners read their certificate files again (a failed
 * reload keeps the old ones). */
static void reload_tls(http_server *srv, const char *name, const char *cert_file)
{
    if (!srv || !http_server_tls(srv))
        return;
    errdetail err;
    if (http_server_reload_tls(srv, &err) < 0)
        log_error("server", "TLS reload failed: the old certificate stays",
                  json_pack("{s:s,s:s}", "listener", name, "error", err.message));
    else
        log_info("server", "TLS certificate reloaded",
                 json_pack("{s:s,s:s}", "listener", name, "cert_file", cert_file));
}

/* Waits for SIGINT/SIGTERM, reloading certificates on every SIGHUP meanwhile. */
static int wait_for_signal(const citrus_config *cfg, http_server *srv, http_server *rsrv)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            return sig;
        reload_tls(srv, "server.tls", cfg->tls_cert_file);
        reload_tls(rsrv, "router.tls", cfg->router_tls_cert_file);
    }
}

int cli_serve_main(int argc, char **argv, char **envp)
{
    citrus_config cfg;
    int rc = load_config(argc, argv, envp, &cfg);
    if (rc)
        return rc == 1 ? 0 : 2;
    log_set_level((log_level)log_level_parse(cfg.log_level));
    /* Everything the server writes is its own alone: the catalog (every
     * DSN), its -wal and -shm, shard files, records, keys. What an older
     * version left readable is tightened here. */
    umask(077);
    const char *private_dirs[] = {cfg.data_dir, cfg.prov_sqlite_dir};
    for (size_t i = 0; i < sizeof(private_dirs) / sizeof(private_dirs[0]); i++)
        if (private_dirs[i][0] && fs_make_private(private_dirs[i]) < 0)
            fprintf(stderr, "citrus %s: warning: cannot make %s private (mode 0700/0600): %s\n",
                    argv[0], private_dirs[i], strerror(errno));

    /* Block the stop signals and SIGHUP (reload) in every thread; the main
     * thread waits for them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
#ifdef __GLIBC__
    /* Big values and answers (up to server.max_response_bytes) come from
     * mmap and go back to the system when freed: glibc's default raises
     * the threshold after the first such free, and each thread's arena then
     * keeps its peak of freed megabytes (docs/BENCHMARKS.md, memory run). */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
#endif

    store *st = NULL;
    if ((rc = open_store(&cfg, &st)) < 0)
        return rc == CITRUS_EINVAL ? 2 : 1; /* EINVAL: what the config names is unusable */
    int exit_code = 1;
    app a = {.st = st,
             .max_value_bytes = (size_t)cfg.max_value_bytes,
             .max_response_bytes = (size_t)cfg.max_response_bytes,
             .node_id = cfg.node_id,
             .max_watch_timeout_ms = cfg.max_watch_timeout_s * 1000,
             .request_deadline_ms = cfg.request_deadline_ms};
    http_server *srv = NULL, *rsrv = NULL;
    relay *lifecycle = NULL;
    /* A replicated catalog is read through this node's watch-fed copy; the
     * embedded store is local and answers every read from committed state. */
    if (strcmp(cfg.backend, "etcd") == 0) {
        cache_options co = {.st = st};
        if (cache_start(&co, &a.cache) < 0) {
            fprintf(stderr, "citrus %s: cannot start the catalog copy\n", argv[0]);
            goto close_store;
        }
    }
    reader_options ro = {.st = st, .copy = a.cache, .max_staleness_ms = cfg.max_staleness_ms};
    a.rd = reader_new(&ro);
    a.watches = watch_hub_new(NULL);
    if (!a.rd || !a.watches || watch_hub_start(a.watches) < 0) {
        fprintf(stderr, "citrus %s: out of memory\n", argv[0]);
        goto free_app;
    }
    char listen[96];
    config_listen(&cfg, listen, sizeof(listen));
    if (auth_boot(&cfg, argv[0], listen, &a) < 0) {
        exit_code = 2;
        goto free_app;
    }
    if (records_boot(&cfg, argv[0], &a) < 0)
        goto stop_auth;
    if ((rc = bus_boot(&cfg, argv[0], &a)) < 0) {
        if (rc == CITRUS_EINVAL)
            exit_code = 2;
        goto stop_records;
    }
    if (shards_boot(&cfg, strcmp(argv[0], "dev") == 0, &a) < 0)
        goto stop_bus;
    /* after the bus and the shard manager (the enrollment ingest worker
     * routes through its registry), stopped before both */
    if ((rc = workers_boot(&cfg, argv[0], &a)) < 0) {
        if (rc == CITRUS_EINVAL)
            exit_code = 2;
        goto stop_shards;
    }
    /* the registration worker needs the shard manager */
    if ((rc = workers_regq_boot(&cfg, argv[0], &a)) < 0)
        goto stop_workers;
    http_server_options ho = {.listen = listen,
                              .threads = (unsigned)cfg.threads,
                              .max_conns = (unsigned)cfg.max_connections,
                              .idle_timeout_s = (unsigned)cfg.idle_timeout_s,
                              .max_header_bytes = (size_t)cfg.max_header_bytes,
                              .max_body_bytes = (size_t)cfg.max_body_bytes,
                              .component = "api",
                              .header_timeout_ms = (unsigned)cfg.header_timeout_ms,
                              .max_conns_per_ip = (unsigned)cfg.max_conns_per_ip,
                              .cors_allowed_origins = cfg.cors_origins,
                              .loopback_host_only = !a.auth || a.auth->modes == AUTHN_NONE,
                              .gate = api_gate,
                              .gate_ctx = &a,
                              .before = api_audit_before,
                              .done = api_audit_done,
                              .tls_cert_file = cfg.tls_cert_file,
                              .tls_key_file = cfg.tls_key_file,
                              .tls_client_ca_file = cfg.tls_client_ca_file,
                              .tls_name = "server.tls"};
    errdetail err;
    /* Bound first, so that the URL is known (the session registers it), and
     * served only once app is complete: no request sees it half composed.
     * A TLS file that cannot be used is a configuration error (exit 2), as
     * other files the config names are. */
    if ((rc = http_server_bind(&ho, api_routes, api_nroutes, &a, &srv, &err)) < 0) {
        fprintf(stderr, "citrus %s: %s%s\n", argv[0], rc == CITRUS_EINVAL ? "invalid config: " : "",
                err.message);
        if (rc == CITRUS_EINVAL)
            exit_code = 2;
        goto stop_workers;
    }
    char url[128];
    char host[64];
    snprintf(host, sizeof(host), "%.*s", (int)(strrchr(listen, ':') - listen), listen);
    snprintf(url, sizeof(url), "%s://%s:%u", http_server_tls(srv) ? "https" : "http", host,
             http_server_port(srv));
    if ((rc = router_boot(&cfg, &a, &rsrv)) < 0) {
        if (rc == CITRUS_EINVAL)
            exit_code = 2;
        goto stop_server;
    }

    session_options so = {.st = st,
                          .node_id = cfg.node_id,
                          .api_url = url,
                          .ttl_s = cfg.session_ttl_s,
                          .campaign = true};
    if (session_start(&so, &a.sess) < 0)
        log_error("server", "cannot start the node session", NULL);
    /* a.sess: /health/ready waits for the registration */
    shards_start_worker(&a, a.sess);
    workers_set_session(a.sess); /* the shard management worker's leadership and fence */
    if (a.bus && a.sess) {
        /* every shard and tenant change, on the lifecycle topic (the leader's job) */
        char topic[256];
        config_bus_topic(&cfg, CONFIG_TOPIC_SM_EVENTS, topic, sizeof(topic));
        relay_options lo = {.st = st, .b = a.bus, .topic = topic, .sess = a.sess};
        if (relay_start(&lo, &lifecycle) < 0)
            log_error("server", "cannot start the lifecycle relay", NULL);
    }
    auth_dev_key(&cfg, argv[0], &a); /* written before anything is answered */
    if (http_server_serve(srv, &err) < 0) {
        fprintf(stderr, "citrus %s: %s\n", argv[0], err.message);
        goto stop_router;
    }
    log_info("server", "listening",
             json_pack("{s:s,s:s,s:i,s:s,s:s}", "mode", argv[0], "api", url, "port",
                       (int)http_server_port(srv), "data_dir", cfg.data_dir, "node_id",
                       cfg.node_id));
    fprintf(stderr,
            "citrus %s ready\n  API      %s/v1/kv/\n  health   %s/health/ready\n"
            "  metrics  %s/metrics\n  data     %s\n  auth     %s\n",
            argv[0], url, url, url, cfg.data_dir, auth_banner(&a));
    fprintf(stderr, "Stop with Ctrl-C.\n");

    int sig = wait_for_signal(&cfg, srv, rsrv);
    log_info("server", "stopping", json_pack("{s:i}", "signal", sig));
    exit_code = 0;
    if (watch_hub_shutdown(a.watches) > 0)
        usleep(200 * 1000); /* let those answers reach their clients before the sockets close */
    /* The API answers nothing more before anything its handlers read (the
     * router, the session, the shards) goes. */
    http_server_stop(srv);
    srv = NULL;
stop_router:
    relay_stop(lifecycle); /* publishes what it was told and records where it got to */
    router_stop(&a, rsrv);
stop_server:
    http_server_stop(srv);
stop_workers:
    workers_regq_stop(); /* it registers through the shard manager */
    workers_stop();      /* each worker finishes its batch while the bus and registry are there */
stop_shards:
    shards_stop(&a);      /* the worker stops while the session can still fence its writes */
    session_stop(a.sess); /* revokes the lease: registration and leadership end now */
stop_bus:
    bus_stop(&a);
stop_records:
    records_stop(&a);
stop_auth:
    auth_stop(&a);
free_app:
    watch_hub_free(a.watches);
    reader_free(a.rd);
    cache_stop(a.cache);
close_store:
    store_close(st);
    if (exit_code == 0)
        log_info("server", "stopped", NULL);
    return exit_code;
}
