/* tests/unit/test_bus_kafka.c — the Kafka bus on librdkafka's mock cluster
 * (rdkafka_mock.h: brokers in this process on loopback, no real Kafka): the
 * bus conformance suite, then what only Kafka has: a broker down then up,
 * request errors injected into Produce, a consumer closed mid-batch
 * without commits and a new handle on the same group, the Admin API's
 * clear failure where the cluster has none, bad options.
 *
 * The mock cluster answers neither CreateTopics nor DescribeConfigs (it
 * has no controller): topics are made through bus_kafka_opts.admin with
 * rd_kafka_mock_topic_create, and their retention configs kept here. */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus_kafka.h"
#include "bus_conformance.h"

#include "citrus/errors.h"

#define PUBLISH_TIMEOUT_MS 1500
#define REQUEST_TIMEOUT_MS 3000
#define MAX_CONFIGS 64
#define KAFKA_API_PRODUCE 0 /* the Produce request's ApiKey in the Kafka protocol */

/* One mock cluster and the retention configs of the topics made on it. */
typedef struct mock {
    rd_kafka_t *rk; /* the cluster's owner */
    rd_kafka_mock_cluster_t *mc;
    struct {
        char name[BUS_NAME_MAX + 1];
        int64_t ms, bytes;
    } cfg[MAX_CONFIGS];
    int ncfg;
    int creates;
} mock;

static mock *mock_new(int brokers)
{
    mock *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    char err[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "log_level", "0", err, sizeof(err));
    m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
    assert_non_null(m->rk);
    m->mc = rd_kafka_mock_cluster_new(m->rk, brokers);
    assert_non_null(m->mc);
    return m;
}

static void mock_free(mock *m)
{
    rd_kafka_mock_cluster_destroy(m->mc);
    rd_kafka_destroy(m->rk);
    free(m);
}

static int mock_create(void *ctx, const char *name, int partitions, int64_t ms, int64_t bytes,
                       errdetail *e)
{
    mock *m = ctx;
    if (m->ncfg == MAX_CONFIGS)
        return errdetail_set(e, CITRUS_ETOOMANY, "mock: too many topics");
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(m->mc, name, partitions, 1);
    if (err)
        return errdetail_set(e, CITRUS_EIO, "mock: %s", rd_kafka_err2str(err));
    snprintf(m->cfg[m->ncfg].name, sizeof(m->cfg[m->ncfg].name), "%s", name);
    m->cfg[m->ncfg].ms = ms;
    m->cfg[m->ncfg++].bytes = bytes;
    m->creates++;
    return 0;
}

static int mock_retention(void *ctx, const char *name, int64_t *ms, int64_t *bytes, errdetail *e)
{
    mock *m = ctx;
    for (int i = 0; i < m->ncfg; i++)
        if (strcmp(m->cfg[i].name, name) == 0) {
            *ms = m->cfg[i].ms;
            *bytes = m->cfg[i].bytes;
            return 0;
        }
    return errdetail_set(e, CITRUS_ENOTFOUND, "mock: no configs for %s", name);
}

static bus_kafka_admin mock_admin(mock *m)
{
    return (bus_kafka_admin){.ctx = m, .create = mock_create, .retention = mock_retention};
}

static int open_on(mock *m, const bus_config *cfg, bus **out, errdetail *e)
{
    bus_kafka_admin admin = mock_admin(m);
    bus_kafka_opts o = {.bootstrap_servers = rd_kafka_mock_cluster_bootstraps(m->mc),
                        .client_id = "citrus-test",
                        .publish_timeout_ms = PUBLISH_TIMEOUT_MS,
                        .request_timeout_ms = REQUEST_TIMEOUT_MS,
                        .admin = &admin};
    return bus_open_kafka(&o, cfg, out, e);
}

/* ---- the conformance suite: a fresh cluster per test ---- */

static mock *conf_mock;

static int conf_open(void *ctx, const bus_config *cfg, bus **out)
{
    (void)ctx;
    conf_mock = mock_new(1);
    errdetail e = {0};
    int rc = open_on(conf_mock, cfg, out, &e);
    if (rc != 0)
        fprintf(stderr, "bus_open_kafka: %s\n", e.message);
    return rc;
}

static void conf_close(void *ctx, bus *b)
{
    (void)ctx;
    bus_close(b);
    mock_free(conf_mock);
    conf_mock = NULL;
}

static const bus_conformance_factory factory = {
    .name = "kafka", .open = conf_open, .close = conf_close, .broker_retention = true};

/* ---- Kafka's own ---- */

static void create(bus *b, const char *name, int partitions)
{
    errdetail e = {0};
    int rc = bus_topic_create(b, name, &(bus_topic_opts){.partitions = partitions}, &e);
    if (rc != 0)
        fail_msg("create %s: %d %s", name, rc, e.message);
}

/* A fresh cluster, a handle on it, and topic t of one partition. */
static bus *open_with_t(mock **m)
{
    *m = mock_new(1);
    bus *b;
    assert_int_equal(open_on(*m, NULL, &b, NULL), 0);
    create(b, "t", 1);
    return b;
}

/* Reads t's partition 0 and checks it holds exactly the values given. */
static void t_holds(bus *b, const char *const *values, size_t count)
{
    bus_message *msgs;
    size_t n;
    assert_int_equal(bus_read(b, "t", 0, 0, 10, &msgs, &n, NULL), 0);
    assert_int_equal(n, count);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(msgs[i].value_len, strlen(values[i]));
        assert_memory_equal(msgs[i].value, values[i], msgs[i].value_len);
    }
    bus_messages_free(msgs, n);
}

/* A broker down: a publish fails within its bound with a clear
 * CITRUS_EUNAVAILABLE; once the broker is back, publishes go on, and what
 * failed was not written. */
static void test_broker_down_then_up(void **state)
{
    (void)state;
    mock *m;
    bus *b = open_with_t(&m);
    int p;
    int64_t off;
    assert_int_equal(bus_publish(b, "t", "k", 1, "before", 6, &p, &off, NULL), 0);
    assert_int_equal(off, 0);
    assert_int_equal(rd_kafka_mock_broker_set_down(m->mc, 1), 0);
    errdetail e = {0};
    int64_t t0 = clock_mono_ms(NULL);
    assert_int_equal(bus_publish(b, "t", "k", 1, "lost", 4, &p, &off, &e), CITRUS_EUNAVAILABLE);
    int64_t took = clock_mono_ms(NULL) - t0;
    assert_true(took < PUBLISH_TIMEOUT_MS + 1000);
    assert_non_null(strstr(e.message, "not acknowledged"));
    assert_int_equal(rd_kafka_mock_broker_set_up(m->mc, 1), 0);
    int rc = -1;
    for (int i = 0; i < 5 && rc != 0; i++) /* reconnecting may take one publish timeout */
        rc = bus_publish(b, "t", "k", 1, "after", 5, &p, &off, &e);
    assert_int_equal(rc, 0);
    assert_int_equal(off, 1);
    t_holds(b, (const char *const[]){"before", "after"}, 2);
    bus_close(b);
    mock_free(m);
}

/* Retriable errors on Produce: librdkafka retries, the publish succeeds
 * once, and no duplicate lands in the partition. (The mock fails an
 * injected request before appending, so this shows the retries, not the
 * idempotent producer's deduplication of a batch appended twice.) */
static void test_produce_errors_retried(void **state)
{
    (void)state;
    mock *m;
    bus *b = open_with_t(&m);
    int p;
    int64_t off;
    assert_int_equal(bus_publish(b, "t", "k", 1, "v0", 2, &p, &off, NULL), 0);
    rd_kafka_mock_push_request_errors(
        m->mc, KAFKA_API_PRODUCE, 3, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
    errdetail e = {0};
    int rc = bus_publish(b, "t", "k", 1, "v1", 2, &p, &off, &e);
    if (rc != 0)
        fail_msg("publish: %d %s", rc, e.message);
    assert_int_equal(off, 1);
    assert_int_equal(bus_publish(b, "t", "k", 1, "v2", 2, &p, &off, NULL), 0);
    assert_int_equal(off, 2);
    t_holds(b, (const char *const[]){"v0", "v1", "v2"}, 3);
    bus_topic_info info;
    assert_int_equal(bus_topic_describe(b, "t", &info, NULL), 0);
    assert_int_equal(info.messages, 3);
    bus_close(b);
    mock_free(m);
}

/* A consumer closed mid-batch without committing everything: a new handle
 * on the same group resumes at Kafka's committed offset and gets the rest
 * again (attempts count from 1 again: leases live in the process). */
static void test_closed_mid_batch_redelivers(void **state)
{
    (void)state;
    mock *m;
    bus *b = open_with_t(&m);
    for (int i = 0; i < 5; i++) {
        char v[4];
        snprintf(v, sizeof(v), "%d", i);
        assert_int_equal(bus_publish(b, "t", "k", 1, v, 1, NULL, NULL, NULL), 0);
    }
    bus_message *msgs;
    size_t n;
    assert_int_equal(bus_poll(b, "g", "t", 10, 1000, &msgs, &n, NULL), 0);
    assert_int_equal(n, 5);
    assert_int_equal(bus_commit(b, "g", &msgs[0], NULL), 0);
    assert_int_equal(bus_commit(b, "g", &msgs[1], NULL), 0);
    assert_int_equal(bus_commit(b, "g", &msgs[3], NULL), 0); /* behind an uncommitted one */
    bus_messages_free(msgs, n);
    bus_close(b);

    assert_int_equal(open_on(m, NULL, &b, NULL), 0);
    assert_int_equal(bus_poll(b, "g", "t", 10, 1000, &msgs, &n, NULL), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(msgs[i].offset, (int64_t)i + 2);
        assert_int_equal(msgs[i].attempt, 1);
        assert_int_equal(bus_commit(b, "g", &msgs[i], NULL), 0);
    }
    bus_messages_free(msgs, n);
    bus_close(b);

    /* everything committed: a third handle gets nothing; another group all */
    assert_int_equal(open_on(m, NULL, &b, NULL), 0);
    assert_int_equal(bus_poll(b, "g", "t", 10, 1000, &msgs, &n, NULL), 0);
    assert_int_equal(n, 0);
    assert_int_equal(bus_poll(b, "other", "t", 10, 1000, &msgs, &n, NULL), 0);
    assert_int_equal(n, 5);
    bus_messages_free(msgs, n);
    bus_close(b);
    mock_free(m);
}

/* The brokers down at a commit: bus_commit (and a new group's poll) fail
 * within their bound (unavailable); once they are back, the commit again succeeds and Kafka
 * holds the offset (a new handle starts after the message). */
static void test_commit_while_down(void **state)
{
    (void)state;
    mock *m;
    bus *b = open_with_t(&m);
    assert_int_equal(bus_publish(b, "t", "k", 1, "a", 1, NULL, NULL, NULL), 0);
    assert_int_equal(bus_publish(b, "t", "k", 1, "b", 1, NULL, NULL, NULL), 0);
    bus_message *msgs;
    size_t n;
    assert_int_equal(bus_poll(b, "g", "t", 1, 1000, &msgs, &n, NULL), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rd_kafka_mock_broker_set_down(m->mc, 1), 0);
    errdetail e = {0};
    int64_t t0 = clock_mono_ms(NULL);
    assert_int_equal(bus_commit(b, "g", &msgs[0], &e), CITRUS_EUNAVAILABLE);
    assert_true(clock_mono_ms(NULL) - t0 < REQUEST_TIMEOUT_MS + 2000);
    assert_non_null(strstr(e.message, "commit"));
    bus_message *none = NULL;
    size_t k = 9;
    t0 = clock_mono_ms(NULL); /* a new group's first poll needs the brokers too */
    assert_int_equal(bus_poll(b, "g2", "t", 10, 1000, &none, &k, &e), CITRUS_EUNAVAILABLE);
    assert_true(clock_mono_ms(NULL) - t0 < REQUEST_TIMEOUT_MS + 2000);
    assert_int_equal(k, 0);
    assert_int_equal(rd_kafka_mock_broker_set_up(m->mc, 1), 0);
    int rc = -1;
    for (int i = 0; i < 5 && rc != 0; i++)
        rc = bus_commit(b, "g", &msgs[0], &e);
    assert_int_equal(rc, 0);
    bus_messages_free(msgs, n);
    bus_close(b);
    assert_int_equal(open_on(m, NULL, &b, NULL), 0);
    assert_int_equal(bus_poll(b, "g", "t", 10, 1000, &msgs, &n, NULL), 0);
    assert_int_equal(n, 1);
    assert_memory_equal(msgs[0].value, "b", 1);
    bus_messages_free(msgs, n);
    bus_close(b);
    mock_free(m);
}

/* Without the admin seam the Admin API is used: the mock cluster has no
 * controller to answer it, and topic creation fails within its bound with
 * a clear error instead of hanging. */
static void test_admin_api_unavailable(void **state)
{
    (void)state;
    mock *m = mock_new(1);
    bus_kafka_opts o = {.bootstrap_servers = rd_kafka_mock_cluster_bootstraps(m->mc),
                        .request_timeout_ms = 500};
    bus *b;
    assert_int_equal(bus_open_kafka(&o, NULL, &b, NULL), 0);
    errdetail e = {0};
    int64_t t0 = clock_mono_ms(NULL);
    assert_int_equal(bus_topic_create(b, "t", &(bus_topic_opts){.partitions = 1}, &e),
                     CITRUS_EUNAVAILABLE);
    assert_true(clock_mono_ms(NULL) - t0 < 5000);
    assert_non_null(strstr(e.message, "create topic t"));
    assert_int_equal(m->creates, 0);
    bus_close(b);
    mock_free(m);
}

/* Bad options are refused by name; a secret never shows in the message. */
static void test_bad_options(void **state)
{
    (void)state;
    bus *b = (bus *)&b;
    errdetail e = {0};
    assert_int_equal(bus_open_kafka(&(bus_kafka_opts){0}, NULL, &b, &e), CITRUS_EINVAL);
    assert_null(b);
    assert_int_equal(bus_open_kafka(NULL, NULL, &b, &e), CITRUS_EINVAL);
    bus_kafka_opts o = {.bootstrap_servers = "127.0.0.1:1", .security_protocol = "carrier-pigeon"};
    assert_int_equal(bus_open_kafka(&o, NULL, &b, &e), CITRUS_EINVAL);
    assert_non_null(strstr(e.message, "security.protocol"));
    o = (bus_kafka_opts){.bootstrap_servers = "127.0.0.1:1",
                         .security_protocol = "sasl_plaintext",
                         .sasl_mechanism = "NOT-A-MECHANISM",
                         .sasl_username = "u",
                         .sasl_password = "hunter2-secret"};
    assert_int_equal(bus_open_kafka(&o, NULL, &b, &e), CITRUS_EINVAL);
    assert_null(strstr(e.message, "hunter2"));
    o.sasl_mechanism = "PLAIN"; /* good settings: opens (no broker needed yet) */
    assert_int_equal(bus_open_kafka(&o, NULL, &b, &e), 0);
    bus_close(b);
    /* unset settings of a config ("") count as absent */
    o = (bus_kafka_opts){.bootstrap_servers = "127.0.0.1:1",
                         .client_id = "",
                         .security_protocol = "",
                         .sasl_username = "",
                         .sasl_password = "",
                         .ssl_ca_file = ""};
    assert_int_equal(bus_open_kafka(&o, NULL, &b, &e), 0);
    bus_close(b);
    bus_kafka_admin half = {.create = mock_create};
    o = (bus_kafka_opts){.bootstrap_servers = "127.0.0.1:1", .admin = &half};
    assert_int_equal(bus_open_kafka(&o, NULL, &b, &e), CITRUS_EINVAL);
    o = (bus_kafka_opts){.bootstrap_servers = "127.0.0.1:1", .publish_timeout_ms = -1};
    assert_int_equal(bus_open_kafka(&o, NULL, &b, &e), CITRUS_EINVAL);
    bus_config bad = {.backoff_base_ms = 10, .backoff_cap_ms = 5};
    o = (bus_kafka_opts){.bootstrap_servers = "127.0.0.1:1"};
    assert_int_equal(bus_open_kafka(&o, &bad, &b, &e), CITRUS_EINVAL);
    assert_null(b);
}

int main(void)
{
    size_t n;
    const struct CMUnitTest *conf = bus_conformance_tests(&factory, &n);
    int failed = _cmocka_run_group_tests("bus_conformance(kafka)", conf, n, NULL, NULL);
    const struct CMUnitTest own[] = {
        cmocka_unit_test(test_broker_down_then_up),
        cmocka_unit_test(test_produce_errors_retried),
        cmocka_unit_test(test_closed_mid_batch_redelivers),
        cmocka_unit_test(test_commit_while_down),
        cmocka_unit_test(test_admin_api_unavailable),
        cmocka_unit_test(test_bad_options),
    };
    failed += cmocka_run_group_tests_name("bus_kafka", own, NULL, NULL);
    return failed ? 1 : 0;
}
