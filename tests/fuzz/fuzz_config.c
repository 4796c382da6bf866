/* tests/fuzz/fuzz_config.c — config_load_text (what config_load_file does
 * after reading the file).
 *
 * Invariants: it never crashes or leaks; it returns 0 or CITRUS_EINVAL; on
 * failure the message is non-empty and names what is wrong: a parse error's
 * line, or a top-level member of the document ("section: ..." or
 * "section.field: ..."); on success every setting is within its documented
 * bounds, and writing the settings back out as a citrus.json and loading
 * that gives the same settings. */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "citrus/errors.h"
#include "node/config.h"

static void check_str(const char *s, size_t size, const char *what)
{
    size_t n = strnlen(s, size);
    FUZZ_CHECK(n > 0 && n < size, "%s has length %zu (buffer %zu)", what, n, size);
}

#define CHECK_STR(c, member) check_str((c)->member, sizeof((c)->member), #member)
#define CHECK_INT(c, member, lo, hi)                                                               \
    FUZZ_CHECK((c)->member >= (lo) && (c)->member <= (hi), #member " is %lld",                     \
               (long long)(c)->member)

static void check_bounds(const citrus_config *c)
{
    CHECK_STR(c, node_id);
    CHECK_STR(c, listen);
    CHECK_STR(c, data_dir);
    CHECK_STR(c, backend);
    CHECK_STR(c, log_level);
    CHECK_INT(c, threads, 1, 256);
    CHECK_INT(c, max_connections, 1, 1000000);
    CHECK_INT(c, idle_timeout_s, 1, 86400);
    CHECK_INT(c, max_header_bytes, 4096, 1048576);
    CHECK_INT(c, max_body_bytes, 1024, 268435456);
    CHECK_INT(c, max_value_bytes, 1, 268435456);
    CHECK_INT(c, history_keep, 100, 100000000);
    CHECK_INT(c, max_watch_timeout_s, 1, 3600);
    CHECK_INT(c, session_ttl_s, 1, 300);
    CHECK_INT(c, etcd_request_timeout_ms, 100, 600000);
    CHECK_INT(c, etcd_connect_timeout_ms, 50, 60000);
    CHECK_INT(c, max_staleness_ms, 100, 3600000);
    CHECK_INT(c, bus_max_event_bytes, 1024, 67108864);
    CHECK_INT(c, bus_kafka_session_timeout_ms, 6000, 300000);
    CHECK_STR(c, bus_backend);
    CHECK_STR(c, bus_topic_prefix);
    FUZZ_CHECK(strcmp(c->bus_backend, "embedded") == 0 || strcmp(c->bus_backend, "kafka") == 0,
               "bus backend '%s'", c->bus_backend);
    FUZZ_CHECK(strcmp(c->backend, "embedded") == 0 || strcmp(c->backend, "etcd") == 0,
               "backend '%s'", c->backend);
    FUZZ_CHECK(c->nnodes <= CONFIG_MAX_NODES, "%zu nodes", c->nnodes);
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    bool level_ok = false;
    for (size_t i = 0; i < 4; i++)
        level_ok |= strcmp(c->log_level, levels[i]) == 0;
    FUZZ_CHECK(level_ok, "log level '%s'", c->log_level);
}

/* A list setting (comma-joined) as a JSON array of its items. */
static json_t *list_json(const char *joined)
{
    json_t *a = json_array();
    char copy[4096];
    snprintf(copy, sizeof(copy), "%s", joined);
    for (char *save = NULL, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        json_array_append_new(a, json_string(t));
    return a;
}

/* The bus section of c (topics and Kafka servers only when set). */
static json_t *bus_json(const citrus_config *c)
{
    static const char *const topics[CONFIG_NTOPICS] = {"enrollment_events", "shard_ingest_commands",
                                                       "sm_commands", "sm_events",
                                                       "platform_events"};
    static const char *const groups[CONFIG_NGROUPS] = {"enrollment_ingest", "shard_management",
                                                       "event_notification"};
    json_t *bus =
        json_pack("{s:s,s:s,s:I}", "backend", c->bus_backend, "topic_prefix", c->bus_topic_prefix,
                  "max_event_bytes", (json_int_t)c->bus_max_event_bytes);
    FUZZ_CHECK(bus != NULL, "the bus settings cannot be written as JSON (not UTF-8?)");
    json_t *t = json_object(), *g = json_object();
    for (size_t i = 0; i < CONFIG_NTOPICS; i++)
        if (c->bus_topics[i][0])
            json_object_set_new(t, topics[i], json_string(c->bus_topics[i]));
    for (size_t i = 0; i < CONFIG_NGROUPS; i++)
        json_object_set_new(g, groups[i], json_string(c->bus_groups[i]));
    json_object_set_new(bus, "topics", t);
    json_object_set_new(bus, "groups", g);
    json_t *k = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I}", "client_id", c->bus_kafka_client_id,
                          "security_protocol", c->bus_kafka_security_protocol, "sasl_mechanism",
                          c->bus_kafka_sasl_mechanism, "publish_timeout_ms",
                          (json_int_t)c->bus_kafka_publish_timeout_ms, "request_timeout_ms",
                          (json_int_t)c->bus_kafka_request_timeout_ms, "replication_factor",
                          (json_int_t)c->bus_kafka_replication_factor, "session_timeout_ms",
                          (json_int_t)c->bus_kafka_session_timeout_ms);
    FUZZ_CHECK(k != NULL, "the bus.kafka settings cannot be written as JSON (not UTF-8?)");
    if (c->bus_kafka_bootstrap[0])
        json_object_set_new(k, "bootstrap_servers", list_json(c->bus_kafka_bootstrap));
    const char *const opt[][2] = {{"sasl_username", c->bus_kafka_sasl_username},
                                  {"sasl_password", c->bus_kafka_sasl_password},
                                  {"ssl_ca_file", c->bus_kafka_ssl_ca_file}};
    for (size_t i = 0; i < sizeof(opt) / sizeof(opt[0]); i++)
        if (opt[i][1][0])
            json_object_set_new(k, opt[i][0], json_string(opt[i][1]));
    json_object_set_new(bus, "kafka", k);
    return bus;
}

/* Writes every setting of c as a citrus.json and loads it over defaults. */
static void check_round_trip(const citrus_config *c)
{
    json_t *doc = json_pack(
        "{s:{s:s, s:I}, s:{s:s, s:I, s:I, s:I, s:I, s:I}, s:{s:s, s:s, s:I, s:I, s:I}, s:{s:s}}",
        "cluster", "node_id", c->node_id, "session_ttl_s", (json_int_t)c->session_ttl_s, "server",
        "listen", c->listen, "threads", (json_int_t)c->threads, "max_connections",
        (json_int_t)c->max_connections, "idle_timeout_s", (json_int_t)c->idle_timeout_s,
        "max_header_bytes", (json_int_t)c->max_header_bytes, "max_body_bytes",
        (json_int_t)c->max_body_bytes, "catalog", "backend", c->backend, "data_dir", c->data_dir,
        "max_value_bytes", (json_int_t)c->max_value_bytes, "history_keep",
        (json_int_t)c->history_keep, "max_watch_timeout_s", (json_int_t)c->max_watch_timeout_s,
        "log", "level", c->log_level);
    FUZZ_CHECK(doc != NULL, "the loaded settings cannot be written as JSON (not UTF-8?)");
    json_t *cluster = json_object_get(doc, "cluster"), *catalog = json_object_get(doc, "catalog");
    json_object_set_new(catalog, "max_staleness_ms", json_integer(c->max_staleness_ms));
    json_t *nodes = json_array();
    for (size_t i = 0; i < c->nnodes; i++)
        json_array_append_new(nodes,
                              json_pack("{s:s,s:s,s:I}", "id", c->nodes[i].id, "address",
                                        c->nodes[i].address, (json_int_t)c->nodes[i].api_port));
    if (c->nnodes)
        json_object_set_new(cluster, "nodes", nodes);
    else
        json_decref(nodes);
    json_t *etcd =
        json_pack("{s:I,s:I}", "request_timeout_ms", (json_int_t)c->etcd_request_timeout_ms,
                  "connect_timeout_ms", (json_int_t)c->etcd_connect_timeout_ms);
    if (c->etcd_endpoints[0]) {
        json_t *eps = json_array();
        char copy[sizeof(c->etcd_endpoints)];
        memcpy(copy, c->etcd_endpoints, sizeof(copy));
        for (char *save = NULL, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
            json_array_append_new(eps, json_string(t));
        json_object_set_new(etcd, "endpoints", eps);
    }
    json_object_set_new(catalog, "etcd", etcd);
    json_object_set_new(doc, "bus", bus_json(c));
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    FUZZ_CHECK(text != NULL, "json_dumps failed");
    citrus_config again;
    errdetail err = {0};
    config_defaults(&again);
    int rc = config_load_text(&again, text, strlen(text), &err);
    FUZZ_CHECK(rc == 0, "reloading the written settings failed: %s (%s)", err.message, text);
    FUZZ_CHECK(memcmp(&again, c, sizeof(again)) == 0, "reloaded settings differ: %s", text);
    free(text);
}

/* A failure names a parse error's line, or a top-level member of the
 * document ("member: ..." or "member.field: ..."), or the document itself. */
static void check_message(const uint8_t *data, size_t size, const errdetail *e)
{
    const char *err = e->message;
    FUZZ_CHECK(e->code == CITRUS_EINVAL, "failure with code %d", e->code);
    FUZZ_CHECK(err[0] != '\0', "failure without a message");
    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!root) {
        FUZZ_CHECK(strncmp(err, "config: line ", 13) == 0, "parse error message '%s'", err);
        return;
    }
    if (!json_is_object(root)) {
        FUZZ_CHECK(strcmp(err, "config: must be a JSON object") == 0, "message '%s'", err);
    } else {
        bool named = false;
        const char *k;
        json_t *v;
        json_object_foreach(root, k, v)
        {
            size_t n = strlen(k);
            named |= strncmp(err, k, n) == 0 && (err[n] == ':' || err[n] == '.');
        }
        /* A name longer than the buffer is cut short with the message. */
        FUZZ_CHECK(named || strlen(err) == sizeof(e->message) - 1, "message '%s' names no member",
                   err);
    }
    json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    citrus_config c;
    errdetail err;
    memset(&err, 0, sizeof(err));
    config_defaults(&c);
    int rc = config_load_text(&c, (const char *)data, size, &err);
    FUZZ_CHECK(rc == 0 || rc == CITRUS_EINVAL, "config_load_text returned %d", rc);
    /* Settings stay in bounds even after a failure part-way through. */
    check_bounds(&c);
    if (rc == 0) {
        check_round_trip(&c);
    } else {
        check_message(data, size, &err);
    }
    return 0;
}
