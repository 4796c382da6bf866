/* node/config.c — table-driven configuration: file, environment, flags. */
#include "node/config.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/principal.h"
#include "citrus/errors.h"
#include "core/dsn.h"
#include "sys/fs.h"
#include "wire/envelope.h"

/* F_LIST: a JSON array of strings, or comma-separated text, kept joined by
 * commas. F_NODES: a JSON array of {id, address, api_port}; F_SUBJECTS: a
 * JSON array of {subject, user, roles}; F_ROLE_GRANTS: a JSON array of
 * {role, grants} (all three JSON text in the environment or a flag). */
typedef enum { F_STR, F_INT, F_ENUM, F_LIST, F_NODES, F_SUBJECTS, F_ROLE_GRANTS } field_type;

typedef struct field {
    const char *section;
    const char *name;
    const char *flag; /* long flag without dashes, or NULL */
    field_type type;
    size_t offset;
    size_t size;         /* F_STR/F_ENUM: buffer size */
    int64_t min, max;    /* F_INT bounds */
    const char *choices; /* F_ENUM: '|'-separated */
    const char *help;
} field;

#define STR(sec, nm, flg, member, help)                                                            \
    {                                                                                              \
        sec, nm, flg, F_STR, offsetof(citrus_config, member),                                      \
            sizeof(((citrus_config *)0)->member), 0, 0, NULL, help                                 \
    }
#define INT(sec, nm, flg, member, lo, hi, help)                                                    \
    {                                                                                              \
        sec, nm, flg, F_INT, offsetof(citrus_config, member), 0, lo, hi, NULL, help                \
    }
#define LIST(sec, nm, flg, member, help)                                                           \
    {                                                                                              \
        sec, nm, flg, F_LIST, offsetof(citrus_config, member),                                     \
            sizeof(((citrus_config *)0)->member), 0, 0, NULL, help                                 \
    }
/* A boolean: "true"/"false" as text, true/false in JSON. */
#define BOOL(sec, nm, flg, member, help) ENUM(sec, nm, flg, member, "false|true", help)
#define ENUM(sec, nm, flg, member, choices, help)                                                  \
    {                                                                                              \
        sec, nm, flg, F_ENUM, offsetof(citrus_config, member),                                     \
            sizeof(((citrus_config *)0)->member), 0, 0, choices, help                              \
    }

static const field fields[] = {
    STR("cluster", "node_id", "node-id", node_id, "this node's id"),
    STR("server", "listen", "listen", listen, "API listen address HOST:PORT"),
    INT("server", "threads", "threads", threads, 1, 256, "HTTP worker threads"),
    INT("server", "max_connections", "max-connections", max_connections, 1, 1000000,
        "concurrent connection limit"),
    INT("server", "idle_timeout_s", "idle-timeout", idle_timeout_s, 1, 86400,
        "idle connection timeout, seconds"),
    INT("server", "max_header_bytes", "max-header-bytes", max_header_bytes, 4096, 1048576,
        "per-connection header memory"),
    INT("server", "header_timeout_ms", "header-timeout", header_timeout_ms, 100, 600000,
        "a request's line and headers must arrive within this, ms, from the connection's "
        "opening or its previous request's end, else it is closed (both listeners)"),
    INT("server", "request_deadline_ms", "request-deadline", request_deadline_ms, 100, 600000,
        "the Citrus API (/api/register, /api/register/batch, /api/shard/{key}, "
        "/api/shards/health) answers within this, ms, from the request's arrival: a shard "
        "database that has not answered by then is 503 shard_unreachable with Retry-After "
        "(keep it below your clients' timeout)"),
    INT("server", "max_conns_per_ip", "max-conns-per-ip", max_conns_per_ip, 1, 1000000,
        "connections from one client address at once (both listeners)"),
    LIST("server.cors", "allowed_origins", "cors-allowed-origins", cors_origins,
         "Origins (scheme://host[:port]) whose cross-site requests are served and whose CORS "
         "preflights are answered; any other Origin is 403 cross_origin"),
    INT("server", "max_body_bytes", "max-body-bytes", max_body_bytes, 1024, 268435456,
        "request body limit"),
    INT("server", "max_response_bytes", "max-response-bytes", max_response_bytes, 65536,
        4294967296LL,
        "largest catalog answer: listings stop at it (more: true), a txn whose gets pass it and "
        "a snapshot past it are 413 response_too_large, a watch replay pages by it"),
    STR("server.tls", "cert_file", "tls-cert-file", tls_cert_file,
        "API over HTTPS: the certificate chain, PEM, leaf first (reloaded on SIGHUP)"),
    STR("server.tls", "key_file", "tls-key-file", tls_key_file,
        "API over HTTPS: the certificate's private key, PEM, unencrypted"),
    STR("server.tls", "client_ca_file", "tls-client-ca-file", tls_client_ca_file,
        "API: require client certificates signed by these CAs, PEM (the mtls auth mode)"),
    {"cluster", "nodes", "nodes", F_NODES, offsetof(citrus_config, nodes), 0, 0, 0, NULL,
     "static membership: [{id, address, api_port}, ...]"},
    ENUM("catalog", "backend", "catalog-backend", backend, "embedded|etcd",
         "catalog store backend"),
    LIST("catalog.etcd", "endpoints", "etcd-endpoints", etcd_endpoints,
         "etcd client URLs (comma-separated in env/flags)"),
    INT("catalog.etcd", "request_timeout_ms", "etcd-request-timeout", etcd_request_timeout_ms, 100,
        600000, "etcd request timeout, ms"),
    STR("catalog.etcd.tls", "ca_file", "etcd-ca-file", etcd_ca_file,
        "https etcd endpoints: the CAs their certificates chain to, PEM (else the system's)"),
    STR("catalog.etcd.tls", "cert_file", "etcd-cert-file", etcd_cert_file,
        "etcd client certificate auth: this node's certificate, PEM"),
    STR("catalog.etcd.tls", "key_file", "etcd-key-file", etcd_key_file,
        "etcd client certificate auth: its private key, PEM"),
    INT("catalog.etcd", "connect_timeout_ms", "etcd-connect-timeout", etcd_connect_timeout_ms, 50,
        60000, "etcd connect timeout, ms"),
    ENUM("catalog.etcd", "batch_puts", "etcd-batch-puts", etcd_batch_puts, "off|on",
         "send concurrent single-key puts to etcd as one txn (they then share a revision)"),
    INT("catalog", "max_staleness_ms", "max-staleness", max_staleness_ms, 100, 3600000,
        "bound on a bounded read's staleness, ms"),
    STR("catalog", "data_dir", "data-dir", data_dir, "data directory of the embedded store"),
    INT("catalog", "max_value_bytes", "max-value-bytes", max_value_bytes, 1, 268435456,
        "largest value accepted"),
    INT("catalog", "quota_bytes", "quota-bytes", quota_bytes, 0, 8LL << 40,
        "embedded store: past this database size writes are 507 no_space until `citrus kv "
        "compact`/`defrag` bring it back under (0: no quota; etcd has its own)"),
    INT("catalog", "history_keep", "history-keep", history_keep, 100, 100000000,
        "revisions of change history kept for watches"),
    INT("catalog", "max_watch_timeout_s", "max-watch-timeout", max_watch_timeout_s, 1, 3600,
        "longest long-poll wait, seconds"),
    ENUM("log", "level", "log-level", log_level, "debug|info|warn|error", "lowest level logged"),
    INT("cluster", "session_ttl_s", "session-ttl", session_ttl_s, 1, 300,
        "lease TTL of this node's registration and controller candidacy, seconds"),
    ENUM("shards", "hash", "ring-hash", ring_hash, "murmur3|xxhash64",
         "ring hash of a new catalog (an existing ring keeps its own)"),
    INT("shards", "vnodes", "vnodes", vnodes, 1, 4096,
        "virtual nodes per shard of weight 1 in a new catalog"),
    STR("shards", "templates_dir", "templates-dir", templates_dir,
        "schema templates: <dir>/<business type>/*.sql (citrus dev: <data_dir>/templates)"),
    BOOL("shards", "allow_untemplated_types", "allow-untemplated-types", allow_untemplated_types,
         "POST /api/register accepts a businessType without a template directory (else 422 "
         "unknown_business_type; with no templates_dir no type is known)"),
    INT("shards", "db_timeout_ms", "shard-db-timeout", shard_db_timeout_ms, 100, 600000,
        "connecting to shard databases, ms"),
    INT("shards", "probe_interval_ms", "shards-probe-interval", shard_probe_interval_ms, 100,
        3600000,
        "pause between two background probe rounds of every shard (health answers read the "
        "last), ms"),
    INT("shards", "dev_shards", "dev-shards", dev_shards, 0, 64,
        "SQLite shards citrus dev creates in an empty catalog"),
    STR("shards", "tls_dir", "shards-tls-dir", shards_tls_dir,
        "the only directory a PostgreSQL DSN's sslrootcert/sslcert/sslkey may name files in "
        "(unset: those options are refused)"),
    LIST("shards", "socket_dirs", "shards-socket-dirs", shards_socket_dirs,
         "Unix-socket directories a PostgreSQL DSN may name as host (unset: TCP hosts only)"),
    LIST("shards", "allowed_hosts", "shards-allowed-hosts", shards_allowed_hosts,
         "hosts PostgreSQL DSNs may point at: CIDRs, host names, .domain suffixes (unset: any)"),
    STR("router", "listen", "router-listen", router_listen,
        "router (SQL on shards) listen address HOST:PORT, or off (citrus dev: 127.0.0.1:8080)"),
    INT("router", "max_rows", "router-max-rows", router_max_rows, 1, 10000000,
        "rows kept in one answer (more: truncated)"),
    INT("router", "pool_size", "router-pool-size", router_pool_size, 1, 1000,
        "connections per shard database"),
    INT("router", "pool_wait_ms", "router-pool-wait", router_pool_wait_ms, 1, 600000,
        "how long a query waits for a free connection, ms"),
    INT("router", "max_connections", "router-max-connections", router_max_conns, 1, 100000,
        "client connections the router serves at once (a thread each)"),
    STR("router.tls", "cert_file", "router-tls-cert-file", router_tls_cert_file,
        "router over HTTPS: the certificate chain, PEM (reloaded on SIGHUP)"),
    STR("router.tls", "key_file", "router-tls-key-file", router_tls_key_file,
        "router over HTTPS: the certificate's private key, PEM"),
    STR("router.tls", "client_ca_file", "router-tls-client-ca-file", router_tls_client_ca_file,
        "router: require client certificates signed by these CAs, PEM"),
    INT("router", "statement_cache", "router-statement-cache", router_stmt_cache, 0, 100000,
        "prepared statements kept per shard connection (0: none; a PostgreSQL connection "
        "that cannot keep them stops by itself)"),
    INT("router", "query_timeout_ms", "router-query-timeout", router_query_timeout_ms, 1, 86400000,
        "how long a statement may run when the request names no timeout_ms, ms; past it the "
        "statement is cancelled, 504 query_timeout"),
    INT("router", "max_query_timeout_ms", "router-max-query-timeout", router_max_query_timeout_ms,
        1, 86400000,
        "the most timeout_ms a request may name, ms (more: 400); at least query_timeout_ms"),
    INT("router", "max_lag_ms", "router-max-lag", router_max_lag_ms, 1, 86400000,
        "eventual reads that name no max_lag_ms: the most replica lag they accept, ms"),
    ENUM("router", "int64", "router-int64", router_int64, "number|string",
         "how answers send 64-bit integers by default (a request's \"int64\" overrides): number "
         "(JSON numbers, strings past 2^53-1 where JavaScript would round) or string (always)"),
    BOOL("router", "require_registered", "require-registered", router_require_registered,
         "keyed queries for a key with no tenant directory entry are 404 unknown_tenant instead "
         "of following the ring (per business type: require_registered in the template's "
         "template.json)"),
    ENUM("provisioner", "kind", "provisioner", prov_kind, "none|sqlite|postgres|exec",
         "how new shard databases are created (citrus dev: sqlite)"),
    STR("provisioner", "sqlite_dir", "provisioner-sqlite-dir", prov_sqlite_dir,
        "sqlite: where shard files go (default <data_dir>/shards)"),
    STR("provisioner", "postgres_admin_dsn", "provisioner-postgres-dsn", prov_pg_admin_dsn,
        "postgres: a DSN allowed to CREATE DATABASE"),
    STR("provisioner", "postgres_db_prefix", "provisioner-postgres-prefix", prov_pg_prefix,
        "postgres: database name prefix"),
    STR("provisioner", "exec_path", "provisioner-exec", prov_exec_path,
        "exec: the program to run (JSON request on stdin, {dsn, replicas} on stdout)"),
    INT("provisioner", "exec_timeout_ms", "provisioner-exec-timeout", prov_exec_timeout_ms, 100,
        3600000, "exec: how long the program may run, ms"),
    LIST("provisioner.exec", "env", "provisioner-exec-env", prov_exec_env,
         "exec: environment the program gets besides PATH, HOME and LANG: NAME (passed on "
         "from the server's) or NAME=value; a list, or an object {NAME: value}"),
    LIST("auth", "modes", "auth", auth_modes,
         "how requests authenticate, in order: api_key, jwt, trusted_headers, mtls; or none "
         "(citrus dev's default while it listens on loopback)"),
    BOOL("auth", "allow_none", "auth-allow-none", auth_allow_none,
         "let citrus server run with auth.modes none (everyone is sm-admin)"),
    BOOL("auth", "metrics_anonymous", "metrics-anonymous", auth_metrics_anonymous,
         "serve /metrics without credentials (else it needs reader)"),
    LIST("auth.trusted_headers", "proxies", "trusted-proxies", auth_proxies,
         "trusted_headers: the CIDRs whose X-User/X-Roles are believed"),
    STR("auth.jwt", "issuer", "jwt-issuer", jwt_issuer, "jwt: the required iss"),
    STR("auth.jwt", "audience", "jwt-audience", jwt_audience, "jwt: the required aud"),
    STR("auth.jwt", "jwks_file", "jwt-jwks-file", jwt_jwks_file, "jwt: the keys, a JWKS file"),
    STR("auth.jwt", "jwks_url", "jwt-jwks-url", jwt_jwks_url,
        "jwt: the keys, a JWKS URL (https, or http on loopback)"),
    BOOL("auth.jwt", "discovery", "jwt-discovery", jwt_discovery,
         "jwt: find the JWKS URL by OIDC discovery from the issuer"),
    INT("auth.jwt", "clock_skew_s", "jwt-clock-skew", jwt_skew_s, 0, 3600,
        "jwt: tolerated clock difference for exp/nbf/iat, seconds"),
    STR("auth.jwt", "roles_claim", "jwt-roles-claim", jwt_roles_claim,
        "jwt: the claim holding the roles (a.b for nested)"),
    STR("auth.jwt", "tenants_claim", "jwt-tenants-claim", jwt_tenants_claim,
        "jwt: the claim holding the tenant scopes"),
    {"auth.jwt", "role_grants", "jwt-role-grants", F_ROLE_GRANTS,
     offsetof(citrus_config, jwt_role_grants), 0, 0, 0, NULL,
     "jwt: KV grants of token roles: [{role, grants: [{prefix, access}]}]"},
    STR("auth.jwt", "subject_claim", "jwt-subject-claim", jwt_subject_claim,
        "jwt: the claim naming the principal (sub; Azure AD apps: oid)"),
    {"auth.mtls", "subjects", "mtls-subjects", F_SUBJECTS, offsetof(citrus_config, mtls_subjects),
     0, 0, 0, NULL,
     "mtls: [{\"subject\": CN or SAN, \"user\": name, \"roles\": [\"reader\", ...]}, ...]"},
    BOOL("auth.audit", "fail_open", "audit-fail-open", audit_fail_open,
         "a mutation whose audit row cannot be written goes on (logged) instead of 503"),
    ENUM("records", "backend", "records-backend", records_backend, "sqlite|postgres",
         "the records store (audit log): sqlite (<data_dir>/records.db) or postgres"),
    STR("records.postgres", "dsn", "records-postgres-dsn", records_pg_dsn,
        "records.backend postgres: the database (libpq DSN)"),
    INT("records", "audit_retention_days", "audit-retention-days", audit_retention_days, 1, 36500,
        "audit rows older than this are deleted, days"),
    ENUM("bus", "backend", "bus-backend", bus_backend, "embedded|kafka",
         "the event bus: embedded (a durable log in the data dir) or kafka (bus.kafka.*)"),
    STR("bus", "topic_prefix", "bus-topic-prefix", bus_topic_prefix,
        "prefix of the default topic names (topics not named in bus.topics)"),
    STR("bus.topics", "enrollment_events", "bus-topic-enrollment-events",
        bus_topics[CONFIG_TOPIC_ENROLLMENT_EVENTS],
        "enrollment committed events (unset: <topic_prefix>enrollment.events)"),
    STR("bus.topics", "shard_ingest_commands", "bus-topic-shard-ingest-commands",
        bus_topics[CONFIG_TOPIC_SHARD_INGEST_COMMANDS],
        "shard ingest commands (unset: <topic_prefix>shard.ingest.commands)"),
    STR("bus.topics", "sm_commands", "bus-topic-sm-commands", bus_topics[CONFIG_TOPIC_SM_COMMANDS],
        "shard management commands (unset: <topic_prefix>sm.commands)"),
    STR("bus.topics", "sm_events", "bus-topic-sm-events", bus_topics[CONFIG_TOPIC_SM_EVENTS],
        "shard and tenant lifecycle events (unset: <topic_prefix>sm.events)"),
    STR("bus.topics", "platform_events", "bus-topic-platform-events",
        bus_topics[CONFIG_TOPIC_PLATFORM_EVENTS],
        "platform events, turned into notifications (unset: <topic_prefix>platform.events)"),
    STR("bus.topics", "registrations", "bus-topic-registrations",
        bus_topics[CONFIG_TOPIC_REGISTRATIONS],
        "asynchronous registrations, for the registration worker (unset: "
        "<topic_prefix>registrations)"),
    INT("bus", "max_event_bytes", "bus-max-event-bytes", bus_max_event_bytes, 1024, 67108864,
        "largest event (its envelope's JSON) accepted for publishing, bytes"),
    INT("bus", "partitions", "bus-partitions", bus_partitions, 1, 64,
        "partitions of each topic Citrus creates (messages of one key stay in order)"),
    INT("bus", "retention_hours", "bus-retention-hours", bus_retention_hours, 1, 87600,
        "events older than this are deleted from a topic, hours"),
    INT("bus", "retention_bytes", "bus-retention-bytes", bus_retention_bytes, 1048576,
        1099511627776LL, "a topic partition's oldest events go past this size, bytes"),
    INT("bus", "max_attempts", "bus-max-attempts", bus_max_attempts, 1, 100,
        "deliveries of an event before it goes to <topic>.dlq"),
    INT("bus", "backoff_base_ms", "bus-backoff-base-ms", bus_backoff_base_ms, 1, 86400000,
        "delay before the first retry, ms (doubled per attempt, with jitter)"),
    INT("bus", "backoff_cap_ms", "bus-backoff-cap-ms", bus_backoff_cap_ms, 1, 86400000,
        "longest delay between two attempts, ms"),
    INT("bus", "visibility_timeout_ms", "bus-visibility-timeout-ms", bus_visibility_ms, 100,
        43200000,
        "an event a worker took and neither finished nor failed within this is "
        "delivered again, ms"),
    LIST("bus.kafka", "bootstrap_servers", "kafka-bootstrap-servers", bus_kafka_bootstrap,
         "bus.backend kafka: the brokers to start from, host:port"),
    STR("bus.kafka", "client_id", "kafka-client-id", bus_kafka_client_id,
        "Kafka client.id of Citrus's producer and consumers"),
    ENUM("bus.kafka", "security_protocol", "kafka-security-protocol", bus_kafka_security_protocol,
         "plaintext|ssl|sasl_plaintext|sasl_ssl", "how Citrus talks to the brokers"),
    ENUM("bus.kafka", "sasl_mechanism", "kafka-sasl-mechanism", bus_kafka_sasl_mechanism,
         "PLAIN|SCRAM-SHA-256|SCRAM-SHA-512", "security_protocol sasl_*: the SASL mechanism"),
    STR("bus.kafka", "sasl_username", "kafka-sasl-username", bus_kafka_sasl_username,
        "security_protocol sasl_*: the SASL user"),
    STR("bus.kafka", "sasl_password", "kafka-sasl-password", bus_kafka_sasl_password,
        "security_protocol sasl_*: the SASL password (a secret: prefer the "
        "CITRUS_BUS_KAFKA_SASL_PASSWORD variable; never logged)"),
    STR("bus.kafka", "ssl_ca_file", "kafka-ssl-ca-file", bus_kafka_ssl_ca_file,
        "security_protocol ssl or sasl_ssl: the CAs the brokers' certificates chain to, PEM "
        "(else the system's)"),
    INT("bus.kafka", "publish_timeout_ms", "kafka-publish-timeout", bus_kafka_publish_timeout_ms,
        100, 600000,
        "a publish not acknowledged by the brokers within this, ms, fails (unavailable)"),
    INT("bus.kafka", "request_timeout_ms", "kafka-request-timeout", bus_kafka_request_timeout_ms,
        100, 600000, "bound on one request to the cluster (metadata, offsets, admin, fetch), ms"),
    INT("bus.kafka", "session_timeout_ms", "kafka-session-timeout", bus_kafka_session_timeout_ms,
        6000, 300000,
        "a worker's consumer that has not heartbeated within this, ms, leaves its group and its "
        "partitions go to the others (Kafka's session.timeout.ms; 6000 is the brokers' default "
        "group.min.session.timeout.ms)"),
    INT("bus.kafka", "replication_factor", "kafka-replication-factor", bus_kafka_replication_factor,
        0, 32,
        "replicas of the topics Citrus creates (0: the brokers' default.replication.factor)"),
    STR("bus.groups", "enrollment_ingest", "bus-group-enrollment-ingest",
        bus_groups[CONFIG_GROUP_ENROLLMENT_INGEST],
        "the enrollment ingest worker's consumer group"),
    STR("bus.groups", "shard_management", "bus-group-shard-management",
        bus_groups[CONFIG_GROUP_SHARD_MANAGEMENT], "the shard management worker's consumer group"),
    STR("bus.groups", "event_notification", "bus-group-event-notification",
        bus_groups[CONFIG_GROUP_EVENT_NOTIFICATION],
        "the event notification worker's consumer group"),
    STR("bus.groups", "registration", "bus-group-registration",
        bus_groups[CONFIG_GROUP_REGISTRATION], "the registration worker's consumer group"),
    BOOL("workers", "enabled", "workers", workers_enabled,
         "run the event workers (the event notification worker) in this process; `--workers` "
         "alone means true"),
    INT("workers", "threads", "worker-threads", workers_threads, 1, 16,
        "threads of each worker (each polls its consumer group)"),
    INT("workers", "batch", "worker-batch", workers_batch, 1, 1000,
        "events a worker takes per poll (recorded in one transaction)"),
    LIST("workers.notification_filter", "sources", "notification-filter-sources", notify_sources,
         "platform events stored as notifications: these sources only (an item ending in * is a "
         "prefix; none: every source)"),
    LIST("workers.notification_filter", "types", "notification-filter-types", notify_types,
         "these event types only (an item ending in * is a prefix; none: every type)"),
    LIST("workers.notification_filter", "severities", "notification-filter-severities",
         notify_severities,
         "these severities only, any case (the event's severity attribute, else its "
         "data.severity, else info; none: every severity)"),
    INT("workers", "notification_retention_days", "notification-retention-days",
        notify_retention_days, 1, 36500, "notifications older than this are deleted, days"),
    INT("workers", "registration_retention_days", "registration-retention-days",
        regq_retention_days, 1, 36500,
        "finished (succeeded or failed) registrations older than this are deleted, days"),
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

/* Sections reserved for later components: accepted if they are objects. */
static const char *const reserved_sections[] = {NULL}; /* notification_filter: under workers */

/* bus.topics.<key> and the default name's suffix, by config_topic. */
static const char *const topic_keys[CONFIG_NTOPICS] = {"enrollment_events", "shard_ingest_commands",
                                                       "sm_commands",       "sm_events",
                                                       "platform_events",   "registrations"};
static const char *const topic_suffixes[CONFIG_NTOPICS] = {
    "enrollment.events", "shard.ingest.commands", "sm.commands",
    "sm.events",         "platform.events",       "registrations"};
static const char *const group_keys[CONFIG_NGROUPS] = {"enrollment_ingest", "shard_management",
                                                       "event_notification", "registration"};

void config_defaults(citrus_config *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->node_id, sizeof(c->node_id), "node1");
    snprintf(c->listen, sizeof(c->listen), CONFIG_DEFAULT_LISTEN);
    c->threads = 4;
    c->max_connections = 4096;
    c->idle_timeout_s = 60;
    c->max_header_bytes = 32 * 1024LL;
    c->max_body_bytes = 1024 * 1024LL;
    c->header_timeout_ms = 10000;
    c->request_deadline_ms = 4000; /* below seed 003's 5 s client timeout */
    c->max_conns_per_ip = 256;
    snprintf(c->backend, sizeof(c->backend), "embedded");
    snprintf(c->data_dir, sizeof(c->data_dir), "./citrus-data");
    c->max_value_bytes = 1024 * 1024LL;
    c->history_keep = 100000;
    c->max_response_bytes = 64LL << 20;
    c->quota_bytes = 2LL << 30;
    c->max_watch_timeout_s = 300;
    snprintf(c->log_level, sizeof(c->log_level), "info");
    c->session_ttl_s = 5;
    c->etcd_request_timeout_ms = 5000;
    c->etcd_connect_timeout_ms = 1000;
    snprintf(c->etcd_batch_puts, sizeof(c->etcd_batch_puts), "off");
    c->max_staleness_ms = 5000;
    snprintf(c->ring_hash, sizeof(c->ring_hash), "murmur3");
    c->vnodes = 256;
    c->shard_db_timeout_ms = 5000;
    c->shard_probe_interval_ms = 2000;
    snprintf(c->prov_kind, sizeof(c->prov_kind), "none");
    snprintf(c->router_int64, sizeof(c->router_int64), "number");
    snprintf(c->prov_pg_prefix, sizeof(c->prov_pg_prefix), "citrus_");
    c->prov_exec_timeout_ms = 60000;
    snprintf(c->router_listen, sizeof(c->router_listen), "off");
    c->router_max_rows = 10000;
    c->router_pool_size = 8;
    c->router_pool_wait_ms = 2000;
    c->router_max_lag_ms = 1000;
    c->router_stmt_cache = 256;
    c->router_max_conns = 1024;
    c->router_query_timeout_ms = 30000;      /* as vttablet's queryserver-config-query-timeout */
    c->router_max_query_timeout_ms = 600000; /* 10 min */
    snprintf(c->auth_allow_none, sizeof(c->auth_allow_none), "false");
    snprintf(c->allow_untemplated_types, sizeof(c->allow_untemplated_types), "false");
    snprintf(c->router_require_registered, sizeof(c->router_require_registered), "false");
    snprintf(c->auth_metrics_anonymous, sizeof(c->auth_metrics_anonymous), "false");
    snprintf(c->jwt_discovery, sizeof(c->jwt_discovery), "false");
    c->jwt_skew_s = 60;
    snprintf(c->jwt_roles_claim, sizeof(c->jwt_roles_claim), "roles");
    snprintf(c->jwt_tenants_claim, sizeof(c->jwt_tenants_claim), "tenants");
    snprintf(c->jwt_subject_claim, sizeof(c->jwt_subject_claim), "sub");
    snprintf(c->audit_fail_open, sizeof(c->audit_fail_open), "false");
    snprintf(c->records_backend, sizeof(c->records_backend), "sqlite");
    c->audit_retention_days = 90;
    snprintf(c->bus_backend, sizeof(c->bus_backend), "embedded");
    snprintf(c->bus_topic_prefix, sizeof(c->bus_topic_prefix), "citrus.");
    c->bus_max_event_bytes = 1024 * 1024LL; /* as Kafka's default message.max.bytes */
    c->bus_partitions = 4;
    c->bus_retention_hours = 168;              /* 7 days, as Kafka's log.retention.hours */
    c->bus_retention_bytes = 1024 * 1048576LL; /* 1 GiB per partition */
    c->bus_max_attempts = 5;
    c->bus_backoff_base_ms = 1000;
    c->bus_backoff_cap_ms = 300000;
    c->bus_visibility_ms = 30000; /* as SQS's default visibility timeout */
    snprintf(c->workers_enabled, sizeof(c->workers_enabled), "false"); /* citrus dev: true */
    c->workers_threads = 1;
    c->workers_batch = 100;
    c->notify_retention_days = 30;
    c->regq_retention_days = 30;
    snprintf(c->bus_kafka_client_id, sizeof(c->bus_kafka_client_id), "citrus");
    snprintf(c->bus_kafka_security_protocol, sizeof(c->bus_kafka_security_protocol), "plaintext");
    snprintf(c->bus_kafka_sasl_mechanism, sizeof(c->bus_kafka_sasl_mechanism), "PLAIN");
    c->bus_kafka_publish_timeout_ms = 30000;
    c->bus_kafka_request_timeout_ms = 10000;
    c->bus_kafka_session_timeout_ms = 10000; /* a dead worker's partitions move within 10 s */
    for (size_t i = 0; i < CONFIG_NGROUPS; i++) {
        snprintf(c->bus_groups[i], sizeof(c->bus_groups[i]), "citrus-%s", group_keys[i]);
        for (char *p = c->bus_groups[i]; *p; p++)
            *p = *p == '_' ? '-' : *p;
    }
}

static bool enum_ok(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0)
            return true;
        p += len + (bar ? 1 : 0);
    }
    return false;
}

/* Sets cluster.nodes from a JSON array; names the bad member. */
static int set_nodes_json(citrus_config *c, const field *f, json_t *v, errdetail *err)
{
    if (!json_is_array(v) || json_array_size(v) > CONFIG_MAX_NODES)
        return errdetail_set(err, CITRUS_EINVAL, "%s.%s: must be an array of at most %d nodes",
                             f->section, f->name, CONFIG_MAX_NODES);
    config_node nodes[CONFIG_MAX_NODES] = {0};
    size_t i;
    json_t *n;
    json_array_foreach(v, i, n)
    {
        json_t *id = json_object_get(n, "id"), *addr = json_object_get(n, "address"),
               *port = json_object_get(n, "api_port");
        if (!json_is_object(n) || json_object_size(n) != 3 || !json_is_string(id) ||
            !json_is_string(addr) || !json_is_integer(port) || json_string_length(id) == 0 ||
            json_string_length(id) >= sizeof(nodes[i].id) || json_string_length(addr) == 0 ||
            json_string_length(addr) >= sizeof(nodes[i].address) || json_integer_value(port) < 1 ||
            json_integer_value(port) > 65535)
            return errdetail_set(
                err, CITRUS_EINVAL,
                "%s.%s[%zu]: must be {\"id\": string, \"address\": string, \"api_port\": "
                "1-65535}",
                f->section, f->name, i);
        snprintf(nodes[i].id, sizeof(nodes[i].id), "%s", json_string_value(id));
        snprintf(nodes[i].address, sizeof(nodes[i].address), "%s", json_string_value(addr));
        nodes[i].api_port = json_integer_value(port);
        for (size_t k = 0; k < i; k++)
            if (strcmp(nodes[k].id, nodes[i].id) == 0)
                return errdetail_set(err, CITRUS_EINVAL, "%s.%s[%zu]: duplicate id '%s'",
                                     f->section, f->name, i, nodes[i].id);
    }
    memcpy(c->nodes, nodes, sizeof(nodes));
    c->nnodes = json_array_size(v);
    return 0;
}

/* One auth.mtls.subjects item: {subject, user, roles}, nothing else. */
static int set_subject(const field *f, size_t i, json_t *n, authn_subject *out, errdetail *err)
{
    json_t *subj = json_object_get(n, "subject"), *user = json_object_get(n, "user"),
           *roles = json_object_get(n, "roles");
    if (!json_is_object(n) || !json_is_string(subj) || !json_is_string(user) ||
        !json_is_array(roles) || json_object_size(n) != 3 || json_string_length(subj) == 0 ||
        json_string_length(subj) >= sizeof(out->subject) || json_string_length(user) == 0 ||
        json_string_length(user) >= sizeof(out->user) ||
        strlen(json_string_value(subj)) != json_string_length(subj) ||
        strlen(json_string_value(user)) != json_string_length(user))
        return errdetail_set(err, CITRUS_EINVAL,
                             "%s.%s[%zu]: must be {\"subject\": 1-%zu characters, \"user\": "
                             "1-%zu characters, \"roles\": [role, ...]}",
                             f->section, f->name, i, sizeof(out->subject) - 1,
                             sizeof(out->user) - 1);
    snprintf(out->subject, sizeof(out->subject), "%s", json_string_value(subj));
    snprintf(out->user, sizeof(out->user), "%s", json_string_value(user));
    out->roles = 0;
    size_t k;
    json_t *r;
    json_array_foreach(roles, k, r)
    {
        unsigned bit = json_is_string(r) ? auth_role_bit(json_string_value(r)) : 0;
        /* tenant needs scopes, which a certificate mapping does not carry */
        if (!bit || bit == AUTH_TENANT)
            return errdetail_set(err, CITRUS_EINVAL,
                                 "%s.%s[%zu].roles[%zu]: must be sm-admin, sm-operator or reader",
                                 f->section, f->name, i, k);
        out->roles |= bit;
    }
    return 0;
}

/* Sets auth.mtls.subjects from a JSON array; names the bad member. */
static int set_subjects_json(citrus_config *c, const field *f, json_t *v, errdetail *err)
{
    if (!json_is_array(v) || json_array_size(v) > AUTHN_MAX_SUBJECTS)
        return errdetail_set(err, CITRUS_EINVAL, "%s.%s: must be an array of at most %d subjects",
                             f->section, f->name, AUTHN_MAX_SUBJECTS);
    authn_subject subs[AUTHN_MAX_SUBJECTS] = {0};
    size_t i;
    json_t *n;
    json_array_foreach(v, i, n)
    {
        int rc = set_subject(f, i, n, &subs[i], err);
        if (rc < 0)
            return rc;
        for (size_t k = 0; k < i; k++)
            if (strcmp(subs[k].subject, subs[i].subject) == 0)
                return errdetail_set(err, CITRUS_EINVAL, "%s.%s[%zu]: duplicate subject '%s'",
                                     f->section, f->name, i, subs[i].subject);
    }
    memcpy(c->mtls_subjects, subs, sizeof(subs));
    c->nmtls_subjects = json_array_size(v);
    return 0;
}

/* Sets auth.jwt.role_grants from a JSON array of {role, grants}. */
static int set_role_grants_json(citrus_config *c, const field *f, json_t *v, errdetail *err)
{
    if (!json_is_array(v) || json_array_size(v) > AUTHN_MAX_ROLE_GRANTS)
        return errdetail_set(err, CITRUS_EINVAL, "%s.%s: must be an array of at most %d roles",
                             f->section, f->name, AUTHN_MAX_ROLE_GRANTS);
    authn_role_grants rg[AUTHN_MAX_ROLE_GRANTS];
    memset(rg, 0, sizeof(rg));
    size_t i;
    json_t *n;
    json_array_foreach(v, i, n)
    {
        json_t *role = json_object_get(n, "role"), *grants = json_object_get(n, "grants");
        if (!json_is_object(n) || json_object_size(n) != 2 || !json_is_string(role) ||
            json_string_length(role) == 0 || json_string_length(role) >= sizeof(rg[i].role) ||
            strlen(json_string_value(role)) != json_string_length(role))
            return errdetail_set(err, CITRUS_EINVAL,
                                 "%s.%s[%zu]: must be {\"role\": 1-63 characters, \"grants\": "
                                 "[{\"prefix\", \"access\"}, ...]}",
                                 f->section, f->name, i);
        snprintf(rg[i].role, sizeof(rg[i].role), "%s", json_string_value(role));
        auth_grant tmp[AUTHN_ROLE_GRANTS];
        size_t nt = 0;
        errdetail ge;
        int rc = auth_grants_parse(grants, AUTHN_ROLE_GRANTS, tmp, &nt, &ge);
        for (size_t k = 0; k < nt; k++) {
            snprintf(rg[i].g[k].prefix, sizeof(rg[i].g[k].prefix), "%s", tmp[k].prefix);
            rg[i].g[k].write = tmp[k].write;
            free(tmp[k].prefix);
        }
        rg[i].n = nt;
        if (rc < 0)
            return errdetail_set(err, CITRUS_EINVAL, "%s.%s[%zu].%s", f->section, f->name, i,
                                 ge.message);
        for (size_t k = 0; k < i; k++)
            if (strcmp(rg[k].role, rg[i].role) == 0)
                return errdetail_set(err, CITRUS_EINVAL, "%s.%s[%zu]: duplicate role '%s'",
                                     f->section, f->name, i, rg[i].role);
    }
    memcpy(c->jwt_role_grants, rg, sizeof(rg));
    c->njwt_role_grants = json_array_size(v);
    return 0;
}

/* F_NODES, F_SUBJECTS and F_ROLE_GRANTS from text (the environment, a flag): JSON. */
static int set_json_text(citrus_config *c, const field *f, const char *v, errdetail *err)
{
    json_t *j = json_loads(v, JSON_REJECT_DUPLICATES, NULL);
    if (!j)
        return errdetail_set(err, CITRUS_EINVAL, "%s.%s: must be a JSON array", f->section,
                             f->name);
    int rc = f->type == F_NODES      ? set_nodes_json(c, f, j, err)
             : f->type == F_SUBJECTS ? set_subjects_json(c, f, j, err)
                                     : set_role_grants_json(c, f, j, err);
    json_decref(j);
    return rc;
}

/* Sets one field from text. */
static int set_field(citrus_config *c, const field *f, const char *v, errdetail *err)
{
    char *base = (char *)c + f->offset;
    if (f->type == F_INT) {
        char *end;
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (!*v || *end || errno || n < f->min || n > f->max)
            return errdetail_set(err, CITRUS_EINVAL,
                                 "%s.%s: must be an integer from %lld to %lld (got '%s')",
                                 f->section, f->name, (long long)f->min, (long long)f->max, v);
        *(int64_t *)base = n;
        return 0;
    }
    if (f->type == F_NODES || f->type == F_SUBJECTS || f->type == F_ROLE_GRANTS)
        return set_json_text(c, f, v, err);
    if (f->type == F_LIST && *v && (strstr(v, ",,") || v[0] == ',' || v[strlen(v) - 1] == ','))
        return errdetail_set(err, CITRUS_EINVAL, "%s.%s: empty item in '%s'", f->section, f->name,
                             v);
    if (f->type == F_ENUM && !enum_ok(f->choices, v))
        return errdetail_set(err, CITRUS_EINVAL, "%s.%s: must be one of %s (got '%s')", f->section,
                             f->name, f->choices, v);
    if (strlen(v) == 0 || strlen(v) >= f->size)
        return errdetail_set(err, CITRUS_EINVAL, "%s.%s: must be 1 to %zu characters", f->section,
                             f->name, f->size - 1);
    memcpy(base, v, strlen(v) + 1);
    return 0;
}

static const field *find_field(const char *section, const char *name)
{
    for (size_t i = 0; i < NFIELDS; i++)
        if (strcmp(fields[i].section, section) == 0 && strcmp(fields[i].name, name) == 0)
            return &fields[i];
    return NULL;
}

static bool section_in_table(const char *s)
{
    for (size_t i = 0; i < NFIELDS; i++)
        if (strcmp(fields[i].section, s) == 0)
            return true;
    return false;
}

static bool section_known(const char *s)
{
    if (section_in_table(s))
        return true;
    for (size_t i = 0; reserved_sections[i]; i++)
        if (strcmp(reserved_sections[i], s) == 0)
            return true;
    return false;
}

/* A JSON array of non-empty strings without commas, joined by commas. */
/* An object {NAME: "value"} (provisioner.exec.env) as NAME=value items. */
static int set_env_object(citrus_config *c, const field *f, json_t *v, errdetail *err)
{
    char joined[4096] = "";
    size_t used = 0;
    const char *k;
    json_t *item;
    json_object_foreach(v, k, item)
    {
        const char *t = json_string_value(item);
        if (!t || strchr(t, ',') || strchr(k, ',') ||
            used + strlen(k) + strlen(t) + 3 > sizeof(joined))
            return errdetail_set(err, CITRUS_EINVAL, "%s.%s: values must be strings without commas",
                                 f->section, f->name);
        used += (size_t)snprintf(joined + used, sizeof(joined) - used, "%s%s=%s", used ? "," : "",
                                 k, t);
    }
    if (!used)
        return errdetail_set(err, CITRUS_EINVAL, "%s.%s: empty", f->section, f->name);
    return set_field(c, f, joined, err);
}

static int set_list_json(citrus_config *c, const field *f, json_t *v, errdetail *err)
{
    char joined[4096] = "";
    size_t used = 0, i;
    json_t *item;
    if (json_is_object(v) && strcmp(f->name, "env") == 0)
        return set_env_object(c, f, v, err);
    if (!json_is_array(v) || json_array_size(v) == 0)
        goto bad;
    json_array_foreach(v, i, item)
    {
        const char *t = json_string_value(item);
        if (!t || !*t || strchr(t, ',') || used + strlen(t) + 2 > sizeof(joined))
            goto bad;
        used += (size_t)snprintf(joined + used, sizeof(joined) - used, "%s%s", i ? "," : "", t);
    }
    return set_field(c, f, joined, err);
bad:
    return errdetail_set(err, CITRUS_EINVAL, "%s.%s: must be a non-empty array of strings",
                         f->section, f->name);
}

static int apply_section(citrus_config *c, const char *sec, json_t *obj, errdetail *err);

static int apply_json_field(citrus_config *c, const char *sec, const char *name, json_t *v,
                            errdetail *err)
{
    const field *f = find_field(sec, name);
    char sub[96];
    snprintf(sub, sizeof(sub), "%s.%s", sec, name);
    if (!f && json_is_object(v) && section_in_table(sub))
        return apply_section(c, sub, v, err);
    if (!f)
        return errdetail_set(err, CITRUS_EINVAL, "%s.%s: unknown field", sec, name);
    if (f->type == F_NODES)
        return set_nodes_json(c, f, v, err);
    if (f->type == F_SUBJECTS)
        return set_subjects_json(c, f, v, err);
    if (f->type == F_ROLE_GRANTS)
        return set_role_grants_json(c, f, v, err);
    if (f->type == F_LIST)
        return set_list_json(c, f, v, err);
    char buf[64];
    if (f->type == F_ENUM && json_is_boolean(v) && strcmp(f->choices, "false|true") == 0)
        return set_field(c, f, json_is_true(v) ? "true" : "false", err);
    if (f->type == F_INT) {
        if (!json_is_integer(v))
            return errdetail_set(err, CITRUS_EINVAL, "%s.%s: must be an integer", sec, name);
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
        return set_field(c, f, buf, err);
    }
    if (!json_is_string(v))
        return errdetail_set(err, CITRUS_EINVAL, "%s.%s: must be a string", sec, name);
    return set_field(c, f, json_string_value(v), err);
}

/* Applies a parsed config document; path names it in the one message that
 * has no field to name. Takes the reference to root. */
static int apply_root(citrus_config *c, json_t *root, const char *path, errdetail *err)
{
    int rc = 0;
    if (!json_is_object(root)) {
        rc = errdetail_set(err, CITRUS_EINVAL, "%s: must be a JSON object", path);
        goto out;
    }
    const char *sec;
    json_t *obj;
    json_object_foreach(root, sec, obj)
    {
        if (!section_known(sec)) {
            rc = errdetail_set(err, CITRUS_EINVAL, "%s: unknown section", sec);
            goto out;
        }
        if (!json_is_object(obj)) {
            rc = errdetail_set(err, CITRUS_EINVAL, "%s: must be an object", sec);
            goto out;
        }
        if (!section_in_table(sec))
            continue; /* a reserved section, read by components that come later */
        if ((rc = apply_section(c, sec, obj, err)) < 0)
            goto out;
    }
out:
    json_decref(root);
    return rc;
}

static int apply_section(citrus_config *c, const char *sec, json_t *obj, errdetail *err)
{
    const char *name;
    json_t *v;
    json_object_foreach(obj, name, v)
    {
        int rc = apply_json_field(c, sec, name, v, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int config_load_file(citrus_config *c, const char *path, errdetail *err)
{
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return errdetail_set(err, CITRUS_EINVAL, "%s: line %d: %s", path, je.line, je.text);
    return apply_root(c, root, path, err);
}

int config_load_text(citrus_config *c, const char *text, size_t len, errdetail *err)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return errdetail_set(err, CITRUS_EINVAL, "config: line %d: %s", je.line, je.text);
    return apply_root(c, root, "config", err);
}

int config_load_env(citrus_config *c, char *const *envp, errdetail *err)
{
    for (size_t i = 0; i < NFIELDS; i++) {
        char var[96];
        int n = snprintf(var, sizeof(var), "CITRUS_%s_%s=", fields[i].section, fields[i].name);
        for (int k = 0; k < n; k++)
            var[k] = var[k] == '.' ? '_' : (char)toupper((unsigned char)var[k]);
        for (char *const *e = envp; e && *e; e++) {
            if (strncmp(*e, var, (size_t)n) != 0)
                continue;
            int rc = set_field(c, &fields[i], *e + n, err);
            if (rc < 0) {
                if (err) {
                    size_t used = strlen(err->message);
                    snprintf(err->message + used, sizeof(err->message) - used, " (from %.*s)",
                             n - 1, var);
                }
                return rc;
            }
        }
    }
    return 0;
}

int config_flag_is_bool(const char *flag)
{
    for (size_t i = 0; i < NFIELDS; i++)
        if (fields[i].flag && strcmp(fields[i].flag, flag) == 0)
            return fields[i].type == F_ENUM && strcmp(fields[i].choices, "false|true") == 0;
    return 0;
}

int config_set_flag(citrus_config *c, const char *flag, const char *value, errdetail *err)
{
    for (size_t i = 0; i < NFIELDS; i++)
        if (fields[i].flag && strcmp(fields[i].flag, flag) == 0)
            return set_field(c, &fields[i], value, err);
    return errdetail_set(err, CITRUS_ENOTFOUND, "--%s: unknown option", flag);
}

void config_print_help(void *file, const citrus_config *defaults)
{
    FILE *f = file;
    citrus_config *own = defaults ? NULL : calloc(1, sizeof(*own));
    if (own)
        config_defaults(own);
    const citrus_config *d = defaults ? defaults : own;
    for (size_t i = 0; d && i < NFIELDS; i++) {
        const field *fl = &fields[i];
        char def[CONFIG_STR];
        const char *base = (const char *)d + fl->offset;
        if (fl->type == F_INT)
            snprintf(def, sizeof(def), "%lld", (long long)*(const int64_t *)base);
        else
            snprintf(def, sizeof(def), "%s", *base ? base : "none");
        char var[96];
        int n = snprintf(var, sizeof(var), "CITRUS_%s_%s", fl->section, fl->name);
        for (int k = 0; k < n; k++)
            var[k] = var[k] == '.' ? '_' : (char)toupper((unsigned char)var[k]);
        fprintf(f, "  --%-18s %-32s %s (default %s)\n", fl->flag, var, fl->help, def);
    }
    free(own);
}

/* A section's TLS files: a certificate and its key together; a CA for
 * client certificates only with a certificate of our own. */
static int tls_pair(const char *sec, const char *cert, const char *key, const char *client_ca,
                    errdetail *err)
{
    if (*cert && !*key)
        return errdetail_set(err, CITRUS_EINVAL, "%s.key_file: required with %s.cert_file", sec,
                             sec);
    if (*key && !*cert)
        return errdetail_set(err, CITRUS_EINVAL, "%s.cert_file: required with %s.key_file", sec,
                             sec);
    if (client_ca && *client_ca && !*cert)
        return errdetail_set(err, CITRUS_EINVAL,
                             "%s.client_ca_file: needs %s.cert_file and key_file (HTTPS)", sec,
                             sec);
    return 0;
}

/* server.cors.allowed_origins: each an Origin as browsers send it,
 * scheme://host[:port] (http or https; no path, no wildcard). */
static int cors_origins_ok(const char *list, errdetail *err)
{
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        const char *host = NULL;
        if (n > 7 && strncmp(p, "http://", 7) == 0)
            host = p + 7;
        else if (n > 8 && strncmp(p, "https://", 8) == 0)
            host = p + 8;
        bool ok = host && host < p + n;
        for (const char *q = host; ok && q < p + n; q++)
            ok = isalnum((unsigned char)*q) || strchr("-.:[]", *q);
        if (!ok)
            return errdetail_set(err, CITRUS_EINVAL,
                                 "server.cors.allowed_origins: '%.*s' is not "
                                 "http(s)://host[:port]",
                                 (int)n, p);
        p += n + (p[n] == ',');
    }
    return 0;
}

/* Each comma-separated item of list is an absolute path. */
static int abs_paths(const char *name, const char *list, errdetail *err)
{
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if (p[0] != '/')
            return errdetail_set(err, CITRUS_EINVAL, "%s: '%.*s' is not an absolute path", name,
                                 (int)(n > 200 ? 200 : n), p);
        p += n;
        if (*p)
            p++;
    }
    return 0;
}

/* provisioner.exec.env items: NAME or NAME=value, NAME of [A-Za-z0-9_]. */
static int env_items(const char *list, errdetail *err)
{
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ","), k = strcspn(p, "=,");
        bool ok = k > 0 && !isdigit((unsigned char)p[0]);
        for (size_t i = 0; i < k; i++)
            ok = ok && (isalnum((unsigned char)p[i]) || p[i] == '_');
        if (!ok)
            return errdetail_set(err, CITRUS_EINVAL,
                                 "provisioner.exec.env: '%.*s' is not NAME or NAME=value",
                                 (int)(n > 200 ? 200 : n), p);
        p += n;
        if (*p)
            p++;
    }
    return 0;
}

static int dsn_rules_check(const citrus_config *c, errdetail *err)
{
    int rc = abs_paths("shards.socket_dirs", c->shards_socket_dirs, err);
    if (rc == 0)
        rc = abs_paths("shards.tls_dir", c->shards_tls_dir, err);
    if (rc == 0 && (rc = dsn_policy_hosts_check(c->shards_allowed_hosts, err)) < 0)
        errdetail_prefix(err, "shards.allowed_hosts");
    if (rc == 0)
        rc = env_items(c->prov_exec_env, err);
    return rc;
}

int config_data_file(const citrus_config *c, const char *cmd, const char *name, char *path,
                     size_t len)
{
    if (fs_mkdirs(c->data_dir, 0700) < 0) {
        fprintf(stderr, "citrus%s%s: cannot create data dir %s: %s\n", cmd ? " " : "",
                cmd ? cmd : "", c->data_dir, strerror(errno));
        return CITRUS_EIO;
    }
    snprintf(path, len, "%s/%s", c->data_dir, name);
    return 0;
}

const char *config_bus_topic(const citrus_config *c, config_topic t, char *buf, size_t len)
{
    if (c->bus_topics[t][0])
        snprintf(buf, len, "%s", c->bus_topics[t]);
    else
        snprintf(buf, len, "%s%s", c->bus_topic_prefix, topic_suffixes[t]);
    return buf;
}

/* Two topic names Kafka cannot both have: equal once '.' is '_' (its
 * metrics names would clash). */
static bool topics_collide(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (*a != *b && !(strchr("._", *a) && strchr("._", *b)))
            return false;
    return *a == *b;
}

/* bus.kafka.bootstrap_servers items: host:port, port 1-65535. */
static int bootstrap_items(const char *list, errdetail *err)
{
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        const char *colon = memrchr(p, ':', n);
        bool ok = colon && colon > p && colon + 1 < p + n && p + n - colon <= 6;
        long port = 0;
        for (const char *q = colon ? colon + 1 : p; ok && q < p + n; q++) {
            ok = *q >= '0' && *q <= '9';
            port = port * 10 + (*q - '0');
        }
        for (const char *q = p; ok && q < colon; q++)
            ok = isalnum((unsigned char)*q) || strchr("-.:[]_", *q);
        if (!ok || port < 1 || port > 65535)
            return errdetail_set(err, CITRUS_EINVAL,
                                 "bus.kafka.bootstrap_servers: '%.*s' is not host:port",
                                 (int)(n > 200 ? 200 : n), p);
        p += n + (p[n] == ',');
    }
    return 0;
}

/* The topic names in use, the group ids, Kafka's bootstrap servers. */
static int bus_check(const citrus_config *c, errdetail *err)
{
    char names[CONFIG_NTOPICS][400], key[64];
    for (size_t t = 0; t < CONFIG_NTOPICS; t++) {
        config_bus_topic(c, (config_topic)t, names[t], sizeof(names[t]));
        if (c->bus_topics[t][0])
            snprintf(key, sizeof(key), "bus.topics.%s", topic_keys[t]);
        else
            snprintf(key, sizeof(key), "bus.topic_prefix");
        int rc = envelope_topic_check(key, names[t], err);
        if (rc < 0)
            return rc;
        size_t n = strlen(names[t]);
        if (n > ENVELOPE_TOPIC_MAX - 4)
            return errdetail_set(err, CITRUS_EINVAL,
                                 "%s: '%s' leaves no room for its dead-letter topic (<name>.dlq): "
                                 "at most %d characters",
                                 key, names[t], ENVELOPE_TOPIC_MAX - 4);
        if (n >= 4 && strcmp(names[t] + n - 4, ".dlq") == 0)
            return errdetail_set(err, CITRUS_EINVAL,
                                 "%s: '%s' ends in .dlq, which names dead-letter topics", key,
                                 names[t]);
        for (size_t u = 0; u < t; u++)
            if (topics_collide(names[u], names[t]))
                return errdetail_set(err, CITRUS_EINVAL,
                                     "bus.topics.%s: '%s' is the name of bus.topics.%s too "
                                     "('.' and '_' count as one)",
                                     topic_keys[t], names[t], topic_keys[u]);
    }
    for (size_t g = 0; g < CONFIG_NGROUPS; g++) {
        snprintf(key, sizeof(key), "bus.groups.%s", group_keys[g]);
        int rc = envelope_topic_check(key, c->bus_groups[g], err);
        if (rc < 0)
            return rc;
    }
    if (c->bus_backoff_cap_ms < c->bus_backoff_base_ms)
        return errdetail_set(err, CITRUS_EINVAL,
                             "bus.backoff_cap_ms: %lld is below bus.backoff_base_ms (%lld)",
                             (long long)c->bus_backoff_cap_ms, (long long)c->bus_backoff_base_ms);
    if (strcmp(c->bus_backend, "kafka") == 0 && !c->bus_kafka_bootstrap[0])
        return errdetail_set(err, CITRUS_EINVAL,
                             "bus.kafka.bootstrap_servers: required when bus.backend is kafka");
    bool sasl = strncmp(c->bus_kafka_security_protocol, "sasl_", 5) == 0;
    if (sasl && (!c->bus_kafka_sasl_username[0] || !c->bus_kafka_sasl_password[0]))
        return errdetail_set(err, CITRUS_EINVAL,
                             "bus.kafka.sasl_username and bus.kafka.sasl_password: required "
                             "when bus.kafka.security_protocol is %s",
                             c->bus_kafka_security_protocol);
    if (!sasl && (c->bus_kafka_sasl_username[0] || c->bus_kafka_sasl_password[0]))
        return errdetail_set(err, CITRUS_EINVAL,
                             "bus.kafka.sasl_username, sasl_password: only with "
                             "bus.kafka.security_protocol sasl_plaintext or sasl_ssl");
    if (c->bus_kafka_ssl_ca_file[0] && !strstr(c->bus_kafka_security_protocol, "ssl"))
        return errdetail_set(err, CITRUS_EINVAL,
                             "bus.kafka.ssl_ca_file: only with bus.kafka.security_protocol ssl "
                             "or sasl_ssl");
    return bootstrap_items(c->bus_kafka_bootstrap, err);
}

int config_validate(const citrus_config *c, errdetail *err)
{
    if (cors_origins_ok(c->cors_origins, err) < 0)
        return CITRUS_EINVAL;
    int rc = tls_pair("server.tls", c->tls_cert_file, c->tls_key_file, c->tls_client_ca_file, err);
    if (rc == 0)
        rc = tls_pair("router.tls", c->router_tls_cert_file, c->router_tls_key_file,
                      c->router_tls_client_ca_file, err);
    if (rc == 0)
        rc = tls_pair("catalog.etcd.tls", c->etcd_cert_file, c->etcd_key_file, NULL, err);
    if (rc < 0)
        return rc;
    if (c->router_query_timeout_ms > c->router_max_query_timeout_ms)
        return errdetail_set(err, CITRUS_EINVAL,
                             "router.query_timeout_ms: %lld is more than "
                             "router.max_query_timeout_ms (%lld)",
                             (long long)c->router_query_timeout_ms,
                             (long long)c->router_max_query_timeout_ms);
    if (strcmp(c->backend, "etcd") == 0 && !c->etcd_endpoints[0])
        return errdetail_set(err, CITRUS_EINVAL,
                             "catalog.etcd.endpoints: required when catalog.backend is etcd");
    if (c->nnodes && !config_self(c))
        return errdetail_set(err, CITRUS_EINVAL,
                             "cluster.node_id: '%s' is not one of cluster.nodes", c->node_id);
    rc = dsn_rules_check(c, err);
    return rc < 0 ? rc : bus_check(c, err);
}

const config_node *config_self(const citrus_config *c)
{
    for (size_t i = 0; i < c->nnodes; i++)
        if (strcmp(c->nodes[i].id, c->node_id) == 0)
            return &c->nodes[i];
    return NULL;
}

void config_listen(const citrus_config *c, char *buf, size_t len)
{
    const config_node *self = config_self(c);
    if (self && strcmp(c->listen, CONFIG_DEFAULT_LISTEN) == 0)
        snprintf(buf, len, "%s:%lld", self->address, (long long)self->api_port);
    else
        snprintf(buf, len, "%s", c->listen);
}
