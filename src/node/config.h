/* node/config.h — citrus.json, CITRUS_* environment overrides and flags.
 *
 * Precedence: built-in defaults < config file < environment < flags. Every
 * setting is one row of a table (section, name, type, bounds, flag), so the
 * file field "server.listen", the variable CITRUS_SERVER_LISTEN and the flag
 * --listen are the same setting. Unknown fields and bad values are refused
 * with the field named. */
#ifndef CITRUS_NODE_CONFIG_H
#define CITRUS_NODE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "auth/authn.h"
#include "auth/authn_jwt.h"
#include "core/errdetail.h"

#define CONFIG_STR 256
#define CONFIG_MAX_NODES 16
#define CONFIG_DEFAULT_LISTEN "127.0.0.1:8081"

/* The topics of seed 000 (bus.topics.<name>; config_bus_topic gives the
 * name in use) and the consumer groups of its workers (bus.groups.<name>). */
typedef enum {
    CONFIG_TOPIC_ENROLLMENT_EVENTS,
    CONFIG_TOPIC_SHARD_INGEST_COMMANDS,
    CONFIG_TOPIC_SM_COMMANDS,
    CONFIG_TOPIC_SM_EVENTS,
    CONFIG_TOPIC_PLATFORM_EVENTS,
    CONFIG_TOPIC_REGISTRATIONS, /* the registration queue (seed 003) */
    CONFIG_NTOPICS
} config_topic;
typedef enum {
    CONFIG_GROUP_ENROLLMENT_INGEST,
    CONFIG_GROUP_SHARD_MANAGEMENT,
    CONFIG_GROUP_EVENT_NOTIFICATION,
    CONFIG_GROUP_REGISTRATION,
    CONFIG_NGROUPS
} config_group;

/* One member of cluster.nodes (static membership: docs/requirements.md, "Catalog"). */
typedef struct config_node {
    char id[64];
    char address[64];
    int64_t api_port;
} config_node;

typedef struct citrus_config {
    char node_id[64];
    char listen[64];
    int64_t threads;
    int64_t max_connections;
    int64_t idle_timeout_s;
    int64_t max_header_bytes;
    int64_t max_body_bytes;
    int64_t header_timeout_ms;      /* server.header_timeout_ms (both listeners) */
    int64_t request_deadline_ms;    /* server.request_deadline_ms: Citrus API answers */
    int64_t max_conns_per_ip;       /* server.max_conns_per_ip (both listeners) */
    char cors_origins[1024];        /* server.cors.allowed_origins, comma-separated */
    int64_t max_response_bytes;     /* bound on a catalog answer (listings, txn gets, snapshot) */
    char tls_cert_file[CONFIG_STR]; /* server.tls: "" = plain HTTP */
    char tls_key_file[CONFIG_STR];
    char tls_client_ca_file[CONFIG_STR];
    char data_dir[CONFIG_STR];
    char backend[16];
    int64_t max_value_bytes;
    int64_t history_keep;
    int64_t quota_bytes; /* embedded store size past which writes are no_space; 0 = none */
    int64_t max_watch_timeout_s;
    char log_level[8];
    int64_t session_ttl_s;
    config_node nodes[CONFIG_MAX_NODES];
    size_t nnodes;
    char etcd_endpoints[1024]; /* comma-separated URLs */
    int64_t etcd_request_timeout_ms;
    char etcd_batch_puts[8]; /* "off" | "on" */
    int64_t etcd_connect_timeout_ms;
    char etcd_ca_file[CONFIG_STR]; /* catalog.etcd.tls: https endpoints */
    char etcd_cert_file[CONFIG_STR];
    char etcd_key_file[CONFIG_STR];
    int64_t max_staleness_ms;
    /* shards */
    char ring_hash[16]; /* murmur3 | xxhash64 */
    int64_t vnodes;
    char templates_dir[CONFIG_STR];
    int64_t shard_db_timeout_ms;
    int64_t shard_probe_interval_ms; /* between background probe rounds */
    char allow_untemplated_types[8]; /* "false" | "true" */
    int64_t dev_shards;              /* SQLite shards `citrus dev` creates in an empty catalog */
    char shards_tls_dir[CONFIG_STR]; /* sslrootcert/sslcert/sslkey must be under it */
    char shards_socket_dirs[1024];   /* Unix-socket dirs a DSN may name, comma-separated */
    char shards_allowed_hosts[4096]; /* CIDRs, names, .suffixes, comma-separated */
    /* router */
    char router_listen[64]; /* HOST:PORT, or "off" */
    int64_t router_max_rows;
    int64_t router_pool_size;
    int64_t router_pool_wait_ms;
    int64_t router_max_lag_ms;
    char router_int64[8];              /* number | string: how answers send 64-bit integers */
    char router_require_registered[8]; /* "false" | "true" */
    int64_t router_stmt_cache;
    int64_t router_query_timeout_ms;     /* a statement's limit when the request names none */
    int64_t router_max_query_timeout_ms; /* the most a request may name */
    int64_t router_max_conns;
    char router_tls_cert_file[CONFIG_STR]; /* router.tls */
    char router_tls_key_file[CONFIG_STR];
    char router_tls_client_ca_file[CONFIG_STR];
    /* provisioner */
    char prov_kind[16]; /* none | sqlite | postgres | exec */
    char prov_sqlite_dir[CONFIG_STR];
    char prov_pg_admin_dsn[1024];
    char prov_pg_prefix[64];
    char prov_exec_path[CONFIG_STR];
    int64_t prov_exec_timeout_ms;
    char prov_exec_env[4096]; /* NAME or NAME=value, comma-separated: the child's extra env */
    /* auth */
    char auth_modes[128];           /* "" = the command's default */
    char auth_allow_none[8];        /* "false" | "true" */
    char auth_metrics_anonymous[8]; /* "false" | "true" */
    char auth_proxies[1024];        /* CIDRs, comma-separated */
    char jwt_issuer[CONFIG_STR];
    char jwt_audience[CONFIG_STR];
    char jwt_jwks_file[CONFIG_STR];
    char jwt_jwks_url[CONFIG_STR];
    char jwt_discovery[8];
    int64_t jwt_skew_s;
    char jwt_roles_claim[64];
    char jwt_tenants_claim[64];
    char jwt_subject_claim[64];
    authn_role_grants jwt_role_grants[AUTHN_MAX_ROLE_GRANTS];
    size_t njwt_role_grants;
    char audit_fail_open[8];
    /* auth.mtls.subjects: a client certificate's CN or SAN → user, roles */
    authn_subject mtls_subjects[AUTHN_MAX_SUBJECTS];
    size_t nmtls_subjects;
    /* records */
    char records_backend[16]; /* sqlite | postgres */
    char records_pg_dsn[1024];
    int64_t audit_retention_days;
    /* bus (docs/events.md, "Topics") */
    char bus_backend[16];                 /* embedded | kafka */
    char bus_topic_prefix[128];           /* prefix of the default topic names */
    char bus_topics[CONFIG_NTOPICS][256]; /* "" = bus_topic_prefix + the default suffix */
    int64_t bus_max_event_bytes;
    char bus_kafka_bootstrap[1024]; /* host:port, comma-separated */
    char bus_kafka_client_id[128];
    char bus_kafka_security_protocol[16]; /* plaintext | ssl | sasl_plaintext | sasl_ssl */
    char bus_kafka_sasl_mechanism[16];    /* PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512 */
    char bus_kafka_sasl_username[256];
    char bus_kafka_sasl_password[256]; /* a secret: never logged or echoed */
    char bus_kafka_ssl_ca_file[CONFIG_STR];
    int64_t bus_kafka_publish_timeout_ms;
    int64_t bus_kafka_request_timeout_ms;
    int64_t bus_kafka_session_timeout_ms; /* the consumers' session.timeout.ms */
    int64_t bus_kafka_replication_factor; /* of the topics Citrus creates; 0: the brokers' */
    char bus_groups[CONFIG_NGROUPS][256]; /* consumer group ids, one per worker */
    int64_t bus_partitions;               /* of each topic Citrus creates */
    int64_t bus_retention_hours;          /* a topic's retention by age */
    int64_t bus_retention_bytes;          /* and by size, per partition */
    int64_t bus_max_attempts;             /* deliveries before the dead-letter topic */
    int64_t bus_backoff_base_ms;          /* the first retry's delay (doubling, jittered) */
    int64_t bus_backoff_cap_ms;           /* the longest delay between attempts */
    int64_t bus_visibility_ms;            /* a consumer's lease on what it polled */
    char workers_enabled[8];              /* workers.enabled: the workers role */
    int64_t workers_threads;              /* threads per worker */
    int64_t workers_batch;                /* events per poll */
    char notify_sources[1024];            /* workers.notification_filter.sources */
    char notify_types[1024];              /* .types */
    char notify_severities[512];          /* .severities */
    int64_t regq_retention_days;          /* finished registrations older than this are deleted */
    int64_t notify_retention_days;        /* notifications older than this are deleted */
} citrus_config;

void config_defaults(citrus_config *c);

/* Applies a JSON config file. Returns 0, or CITRUS_EINVAL with "FIELD: why"
 * in err (the file's parse error, a bad value, or an unknown field). */
int config_load_file(citrus_config *c, const char *path, errdetail *err);
/* The same for a document held in text[0..len) (need not be NUL-terminated);
 * messages that would name the file say "config" instead. */
int config_load_text(citrus_config *c, const char *text, size_t len, errdetail *err);
/* Applies CITRUS_<SECTION>_<NAME> variables from envp (NULL-terminated). */
int config_load_env(citrus_config *c, char *const *envp, errdetail *err);
/* Whether the flag ("workers") is a boolean setting: given alone on the
 * command line (no value after it) it means true. */
int config_flag_is_bool(const char *flag);
/* Sets the field with the given long flag name ("listen", "data-dir", ...).
 * Returns CITRUS_ENOTFOUND when no field has that flag. */
int config_set_flag(citrus_config *c, const char *flag, const char *value, errdetail *err);
/* Checks what no single field can: the etcd backend needs endpoints; with
 * cluster.nodes given, node_id must be one of them; TLS files that go
 * together (cert_file and key_file, a client CA only with a certificate);
 * the bus's topic names in use (Kafka's rule, room for the ".dlq" suffix,
 * no two alike) and, for bus.backend kafka, bootstrap servers. */
int config_validate(const citrus_config *c, errdetail *err);
/* This node's entry in cluster.nodes, or NULL. */
const config_node *config_self(const citrus_config *c);

/* The address to listen on: server.listen, except that when it was left at
 * its default and cluster.nodes lists this node, that entry's
 * address:api_port. */
void config_listen(const citrus_config *c, char *buf, size_t len);

/* <data_dir>/<name> into path, creating data_dir (0700) when missing: 0, or
 * CITRUS_EIO reported on stderr as `citrus <cmd>: cannot create data dir` (cmd
 * may be NULL). */
int config_data_file(const citrus_config *c, const char *cmd, const char *name, char *path,
                     size_t len);

/* The name topic t has: bus.topics.<t> when set, else bus.topic_prefix
 * followed by its default suffix ("enrollment.events", ...), in buf (256
 * bytes are enough). Returns buf. */
const char *config_bus_topic(const citrus_config *c, config_topic t, char *buf, size_t len);

/* Prints every setting with its flag, variable and default: defaults's
 * (a command's own, see `citrus dev`), or config_defaults' when NULL. */
void config_print_help(void *file, const citrus_config *defaults);

#endif
