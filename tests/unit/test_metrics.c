/* Unit tests for obs/metrics.c: counters, histograms, exposition text. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "obs/metrics.h"

static void counters_and_text(void **state)
{
    metrics_describe("t_requests_total", METRIC_COUNTER, "Requests.");
    metrics_counter_add("t_requests_total", "route=\"/a\"", 1);
    metrics_counter_add("t_requests_total", "route=\"/a\"", 2);
    metrics_counter_add("t_requests_total", "route=\"/b\"", 1);
    assert_true(metrics_value("t_requests_total", "route=\"/a\"") == 3.0);
    assert_true(metrics_value("t_requests_total", "route=\"/zz\"") == -1.0);
    size_t len;
    char *text = metrics_render(&len);
    assert_non_null(strstr(text, "# TYPE t_requests_total counter\n"));
    assert_non_null(strstr(text, "t_requests_total{route=\"/a\"} 3\n"));
    assert_non_null(strstr(text, "t_requests_total{route=\"/b\"} 1\n"));
    assert_int_equal(strlen(text), len);
    free(text);
}

static void histogram_buckets(void **state)
{
    metrics_describe("t_latency_seconds", METRIC_HISTOGRAM, "Latency.");
    metrics_histogram_observe("t_latency_seconds", "", 0.0002);
    metrics_histogram_observe("t_latency_seconds", "", 0.003);
    metrics_histogram_observe("t_latency_seconds", "", 20);
    size_t len;
    char *text = metrics_render(&len);
    assert_non_null(strstr(text, "t_latency_seconds_bucket{le=\"0.0001\"} 0\n"));
    assert_non_null(strstr(text, "t_latency_seconds_bucket{le=\"0.00025\"} 1\n"));
    assert_non_null(strstr(text, "t_latency_seconds_bucket{le=\"0.005\"} 2\n"));
    assert_non_null(strstr(text, "t_latency_seconds_bucket{le=\"10\"} 2\n"));
    assert_non_null(strstr(text, "t_latency_seconds_bucket{le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(text, "t_latency_seconds_count{} 3\n"));
    free(text);
}

/* Handles: the same series as by name; updates from many threads at once
 * lose nothing (counter, histogram count, buckets and sum all exact). */
#define THREADS 8
#define PER_THREAD 20000

static void *hammer(void *arg)
{
    metric_series **h = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        metric_add(h[0], 1);
        metric_observe(h[1], (i & 1) ? 0.5 : 0.00002); /* both exact in binary */
        metric_set(h[2], i);
    }
    return NULL;
}

static void handles_from_threads(void **state)
{
    metrics_describe("t_ops_total", METRIC_COUNTER, "Ops.");
    metrics_describe("t_op_seconds", METRIC_HISTOGRAM, "Op latency.");
    metric_series *h[3] = {metrics_series("t_ops_total", "k=\"x\"", METRIC_COUNTER),
                           metrics_series("t_op_seconds", "k=\"x\"", METRIC_HISTOGRAM),
                           metrics_series("t_level", "", METRIC_GAUGE)};
    assert_true(h[0] && h[1] && h[2]);
    assert_ptr_equal(h[0], metrics_series("t_ops_total", "k=\"x\"", METRIC_COUNTER));
    metrics_counter_add("t_ops_total", "k=\"x\"", 5); /* by name: the same series */
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, h), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_true(metrics_value("t_ops_total", "k=\"x\"") == 5.0 + THREADS * PER_THREAD);
    assert_true(metrics_value("t_op_seconds", "k=\"x\"") == (double)THREADS * PER_THREAD);
    assert_true(metrics_value("t_level", "") == PER_THREAD - 1.0);
    size_t len;
    char *text = metrics_render(&len);
    char want[160];
    snprintf(want, sizeof(want), "t_op_seconds_bucket{k=\"x\",le=\"0.0001\"} %d\n",
             THREADS * PER_THREAD / 2);
    assert_non_null(strstr(text, want));
    snprintf(want, sizeof(want), "t_op_seconds_bucket{k=\"x\",le=\"0.5\"} %d\n",
             THREADS * PER_THREAD);
    assert_non_null(strstr(text, want));
    snprintf(want, sizeof(want), "t_op_seconds_count{k=\"x\"} %d\n", THREADS * PER_THREAD);
    assert_non_null(strstr(text, want));
    /* the sum: half the observations 0.5, half 2e-5 */
    const char *sum = strstr(text, "t_op_seconds_sum{k=\"x\"} ");
    assert_non_null(sum);
    double got = strtod(sum + strlen("t_op_seconds_sum{k=\"x\"} "), NULL);
    double exp = THREADS * PER_THREAD / 2 * (0.5 + 0.00002);
    assert_true(got > exp * (1 - 1e-9) && got < exp * (1 + 1e-9));
    free(text);
}

static void escaping(void **state)
{
    char buf[64];
    metrics_escape_label("a\"b\\c\nd", buf, sizeof(buf));
    assert_string_equal(buf, "a\\\"b\\\\c\\nd");
}

/* A deleted shard's series leave the exposition; the handles stay valid
 * and a series used again shows again, from zero. */
static void forget_by_label(void **state)
{
    (void)state;
    metrics_describe("t_forget_total", METRIC_COUNTER, "Forgotten.");
    metrics_describe("t_forget_seconds", METRIC_HISTOGRAM, "Forgotten.");
    metric_series *gone =
        metrics_series("t_forget_total", "shard=\"gone\",role=\"primary\"", METRIC_COUNTER);
    metric_series *lat = metrics_series("t_forget_seconds", "shard=\"gone\"", METRIC_HISTOGRAM);
    metrics_counter_add("t_forget_total", "shard=\"gone2\",role=\"primary\"", 1);
    metrics_counter_add("t_forget_total", "role=\"gone\",shard=\"kept\"", 1);
    metric_add(gone, 3);
    metric_observe(lat, 0.01);
    metrics_forget("shard", "gone");
    size_t len;
    char *text = metrics_render(&len);
    assert_null(strstr(text, "shard=\"gone\""));
    assert_non_null(strstr(text, "shard=\"gone2\"")); /* a longer id is another shard */
    assert_non_null(strstr(text, "shard=\"kept\""));  /* the label, not any value */
    free(text);
    assert_true(metrics_value("t_forget_total", "shard=\"gone\",role=\"primary\"") < 0);
    metric_add(gone, 1);
    assert_true(metrics_value("t_forget_total", "shard=\"gone\",role=\"primary\"") == 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counters_and_text),    cmocka_unit_test(histogram_buckets),
        cmocka_unit_test(handles_from_threads), cmocka_unit_test(escaping),
        cmocka_unit_test(forget_by_label),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
