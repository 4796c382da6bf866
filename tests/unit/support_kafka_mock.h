/* tests/unit/support_kafka_mock.h — librdkafka's mock cluster
 * (rdkafka_mock.h: brokers in this process on loopback, no real Kafka) for
 * the tests of the Kafka bus and of what runs on it.
 *
 * The mock cluster (librdkafka 2.0.2) answers neither CreateTopics nor
 * DescribeConfigs, DeleteRecords, ListGroups (no handler for them in
 * rdkafka_mock_handlers.c): topics are made through bus_kafka_opts.admin
 * (mock_admin) with rd_kafka_mock_topic_create, and their retention
 * configs kept here. */
#ifndef CITRUS_TESTS_SUPPORT_KAFKA_MOCK_H
#define CITRUS_TESTS_SUPPORT_KAFKA_MOCK_H

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdint.h>

#include "bus/bus_kafka.h"

#define MOCK_MAX_CONFIGS 64

/* One mock cluster and the retention configs of the topics made on it. */
typedef struct mock {
    rd_kafka_t *rk; /* the cluster's owner */
    rd_kafka_mock_cluster_t *mc;
    struct {
        char name[BUS_NAME_MAX + 1];
        int64_t ms, bytes;
    } cfg[MOCK_MAX_CONFIGS];
    int ncfg;
    int creates;
} mock;

/* A cluster of `brokers` brokers (cmocka asserts). */
mock *mock_new(int brokers);
void mock_free(mock *m);
/* bus_kafka_admin's calls on m (ctx: the mock). */
int mock_create(void *ctx, const char *name, int partitions, int64_t ms, int64_t bytes,
                errdetail *e);
int mock_retention(void *ctx, const char *name, int64_t *ms, int64_t *bytes, errdetail *e);
bus_kafka_admin mock_admin(mock *m);

#endif
