/* bus/bus_kafka.h — the Kafka bus: bus.h on librdkafka (idempotent
 * producer, manual offset commits). See bus_kafka.c and docs/events.md,
 * "Kafka backend". */
#ifndef CITRUS_BUS_BUS_KAFKA_H
#define CITRUS_BUS_BUS_KAFKA_H

#include "bus/bus.h"

/* Topic administration without Kafka's Admin API. librdkafka's mock
 * cluster (the tests' broker) has no handler for CreateTopics nor
 * DescribeConfigs: the tests give these instead.
 * NULL in bus_kafka_opts: the Admin API. */
typedef struct bus_kafka_admin {
    void *ctx;
    /* Creates topic name with partitions and the retention configs
     * (retention.ms, retention.bytes: -1 for no limit). */
    int (*create)(void *ctx, const char *name, int partitions, int64_t retention_ms,
                  int64_t retention_bytes, errdetail *e);
    /* The retention configs of an existing topic (-1: no limit). */
    int (*retention)(void *ctx, const char *name, int64_t *retention_ms, int64_t *retention_bytes,
                     errdetail *e);
} bus_kafka_admin;

typedef struct bus_kafka_opts {
    const char *bootstrap_servers; /* host:port,... (required) */
    const char *client_id;         /* NULL: "citrus" */
    /* Optional security (NULL: librdkafka's defaults, plaintext). The
     * password never appears in an error or a log line. */
    const char *security_protocol; /* plaintext | ssl | sasl_plaintext | sasl_ssl */
    const char *sasl_mechanism;    /* PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512 */
    const char *sasl_username;
    const char *sasl_password;
    const char *ssl_ca_file;
    /* Bounds (0: the defaults): how long a publish waits for its
     * acknowledgement (librdkafka's message.timeout.ms; 30 s), and one
     * request to the cluster: metadata, offsets, admin, a poll's fetch (10 s). */
    int publish_timeout_ms;
    int request_timeout_ms;
    int replication_factor; /* of created topics; 0: the broker's default */
    /* A group member that has not heartbeated for this long is out of its
     * group and its partitions go to the others (session.timeout.ms;
     * 0: 10 s (librdkafka's own default is 45 s); brokers refuse less than their
     * group.min.session.timeout.ms, 6 s by default, and more than
     * group.max.session.timeout.ms, 30 min). bus.kafka.session_timeout_ms. */
    int session_timeout_ms;
    const bus_kafka_admin *admin; /* NULL: the Admin API (copied) */
    /* Consumer groups bus_groups_describe shows besides those the cluster
     * lists (ListGroups) and those the handle polls: where the
     * cluster does not answer ListGroups (the mock cluster), these are how
     * a process learns of groups that only other processes poll (the
     * workers' group ids). NULL-terminated, each a valid bus name; NULL:
     * none. Copied. */
    const char *const *groups;
} bus_kafka_opts;

/* Connects to the cluster (the producer starts; consumers start on the
 * first poll of each (group, topic)) with cfg (NULL: defaults; copied).
 * 0; CITRUS_EINVAL for a bad option (named, never its secret value);
 * CITRUS_ENOMEM. The cluster being down is not an error here: calls then
 * fail with CITRUS_EUNAVAILABLE within their bound. Close with bus_close. */
int bus_open_kafka(const bus_kafka_opts *o, const bus_config *cfg, bus **out, errdetail *e);

/* The value of librdkafka property name (e.g. "session.timeout.ms") in
 * the consumer config of group's member consuming topic on this handle
 * (made by its first poll), into buf (at most len bytes with the NUL).
 * 0; CITRUS_ENOTFOUND when the handle has no such member or the property
 * is unknown; CITRUS_EINVAL when b is not a Kafka bus or buf is too small. */
int bus_kafka_member_config(bus *b, const char *group, const char *topic, const char *name,
                            char *buf, size_t len);

#endif
