/* tests/unit/support_kafka_mock.c — librdkafka's mock cluster for tests
 * (support_kafka_mock.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "support_kafka_mock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"

mock *mock_new(int brokers)
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

void mock_free(mock *m)
{
    rd_kafka_mock_cluster_destroy(m->mc);
    rd_kafka_destroy(m->rk);
    free(m);
}

int mock_create(void *ctx, const char *name, int partitions, int64_t ms, int64_t bytes,
                errdetail *e)
{
    mock *m = ctx;
    if (m->ncfg == MOCK_MAX_CONFIGS)
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

int mock_retention(void *ctx, const char *name, int64_t *ms, int64_t *bytes, errdetail *e)
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

bus_kafka_admin mock_admin(mock *m)
{
    return (bus_kafka_admin){.ctx = m, .create = mock_create, .retention = mock_retention};
}
