/* node/bus_boot.c — the event bus of a node (see bus_boot.h). */
#include "node/bus_boot.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "bus/bus.h"
#include "bus/bus_kafka.h"
#include "bus/bus_sqlite.h"
#include "citrus/errors.h"
#include "obs/log.h"
#include "sys/fs.h"
#include "sys/ticker.h"

#define TRIM_EVERY_MS (60 * 1000)

static ticker *trimmer;

static void trim(void *ctx)
{
    int64_t deleted = 0;
    errdetail e;
    if (bus_trim(ctx, &deleted, &e) < 0)
        log_warn("bus", "retention: trim failed", json_pack("{s:s}", "error", e.message));
    else if (deleted)
        log_info("bus", "retention: events deleted",
                 json_pack("{s:I}", "deleted", (json_int_t)deleted));
}

/* Creates each topic of seed 000 that does not exist yet; one that does
 * keeps its partitions and retention (as Kafka's auto-created topics). */
static int topics_create(const citrus_config *cfg, const char *cmd, bus *b)
{
    bus_topic_opts o = {.partitions = (int)cfg->bus_partitions,
                        .retention_ms = cfg->bus_retention_hours * 3600 * 1000,
                        .retention_bytes = cfg->bus_retention_bytes};
    for (size_t t = 0; t < CONFIG_NTOPICS; t++) {
        char name[256];
        errdetail e;
        config_bus_topic(cfg, (config_topic)t, name, sizeof(name));
        int rc = bus_topic_create(b, name, &o, &e);
        if (rc < 0 && rc != CITRUS_EEXISTS) {
            fprintf(stderr, "citrus %s: cannot create topic %s: %s\n", cmd, name, e.message);
            return rc;
        }
    }
    return 0;
}

/* The Kafka backend (bus.kafka.*): opening needs no broker; calls made
 * while none answers fail within their timeouts. */
static int open_kafka(const citrus_config *cfg, const bus_config *bc, bus **b, errdetail *e)
{
    /* the workers' groups: described even where the cluster cannot list groups */
    const char *groups[CONFIG_NGROUPS + 1] = {0};
    size_t ng = 0;
    for (size_t i = 0; i < CONFIG_NGROUPS; i++)
        if (cfg->bus_groups[i][0])
            groups[ng++] = cfg->bus_groups[i];
    bus_kafka_opts ko = {.bootstrap_servers = cfg->bus_kafka_bootstrap,
                         .client_id = cfg->bus_kafka_client_id,
                         .security_protocol = cfg->bus_kafka_security_protocol,
                         .sasl_mechanism = cfg->bus_kafka_sasl_mechanism,
                         .sasl_username = cfg->bus_kafka_sasl_username,
                         .sasl_password = cfg->bus_kafka_sasl_password,
                         .ssl_ca_file = cfg->bus_kafka_ssl_ca_file,
                         .publish_timeout_ms = (int)cfg->bus_kafka_publish_timeout_ms,
                         .request_timeout_ms = (int)cfg->bus_kafka_request_timeout_ms,
                         .replication_factor = (int)cfg->bus_kafka_replication_factor,
                         .session_timeout_ms = (int)cfg->bus_kafka_session_timeout_ms,
                         .groups = groups};
    return bus_open_kafka(&ko, bc, b, e);
}

int bus_boot(const citrus_config *cfg, const char *cmd, app *a)
{
    bool kafka = strcmp(cfg->bus_backend, "kafka") == 0;
    bus_config bc = {.max_message_bytes = (size_t)cfg->bus_max_event_bytes + BUS_KEY_MAX,
                     .max_attempts = (int)cfg->bus_max_attempts,
                     .backoff_base_ms = cfg->bus_backoff_base_ms,
                     .backoff_cap_ms = cfg->bus_backoff_cap_ms};
    errdetail e;
    bus *b = NULL;
    char path[PATH_MAX] = "kafka";
    int rc = kafka ? 0 : config_data_file(cfg, cmd, "bus.db", path, sizeof(path));
    if (rc < 0)
        return rc;
    rc = kafka ? open_kafka(cfg, &bc, &b, &e) : bus_open_sqlite(path, &bc, &b, &e);
    if (rc < 0) {
        fprintf(stderr, "citrus %s: cannot open the event bus %s: %s\n", cmd, path, e.message);
        return rc;
    }
    if ((rc = topics_create(cfg, cmd, b)) < 0) {
        bus_close(b);
        return rc;
    }
    if (!kafka) { /* Kafka's retention is the brokers' */
        trim(b);
        trimmer = ticker_start("bus-trim", TRIM_EVERY_MS, trim, b);
    }
    a->bus = b;
    a->max_event_bytes = (size_t)cfg->bus_max_event_bytes;
    config_bus_topic(cfg, CONFIG_TOPIC_SM_COMMANDS, a->admin_topic, sizeof(a->admin_topic));
    config_bus_topic(cfg, CONFIG_TOPIC_REGISTRATIONS, a->regq_topic, sizeof(a->regq_topic));
    return 0;
}

void bus_stop(app *a)
{
    ticker_stop(trimmer);
    trimmer = NULL;
    if (a->bus)
        bus_close(a->bus);
    a->bus = NULL;
}
