/* Unit tests for obs/metrics.c: counters, histograms, exposition text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
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

static void escaping(void **state)
{
    char buf[64];
    metrics_escape_label("a\"b\\c\nd", buf, sizeof(buf));
    assert_string_equal(buf, "a\\\"b\\\\c\\nd");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counters_and_text),
        cmocka_unit_test(histogram_buckets),
        cmocka_unit_test(escaping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
