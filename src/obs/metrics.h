/* obs/metrics.h — a process-wide Prometheus registry (counters, gauges,
 * histograms), rendered in the text exposition format for GET /metrics.
 *
 * Series are named by family name plus a preformatted label string such as
 * `route="/v1/kv/{key}",method="GET"` (may be "" for none). Thread-safe. */
#ifndef CITRUS_OBS_METRICS_H
#define CITRUS_OBS_METRICS_H

#include <stddef.h>

typedef enum { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM } metric_type;

/* Declares a family (HELP/TYPE lines). Families observed without a
 * declaration are rendered as untyped. name and help must be static. */
void metrics_describe(const char *name, metric_type type, const char *help);

void metrics_counter_add(const char *name, const char *labels, double delta);
void metrics_gauge_set(const char *name, const char *labels, double value);
/* Observes a duration or size into the fixed latency buckets (seconds). */
void metrics_histogram_observe(const char *name, const char *labels, double value);

/* A handle on the series name{labels} (created on first use), for callers
 * that update it often: metric_add/set/observe take no lock and format no
 * labels. Valid for the life of the process; NULL when out of memory (the
 * updates then do nothing). */
typedef struct metric_series metric_series;
metric_series *metrics_series(const char *name, const char *labels, metric_type type);
void metric_add(metric_series *s, double delta);     /* counter */
void metric_set(metric_series *s, double value);     /* gauge */
void metric_observe(metric_series *s, double value); /* histogram */

/* Drops from the exposition every series with the label label="value"
 * (a deleted shard's, shard="<id>"), its values reset. The series stay
 * allocated, so handles never dangle; one that is used again shows again. */
void metrics_forget(const char *label, const char *value);

/* Returns the exposition text (malloc'd, caller frees). */
char *metrics_render(size_t *len);

/* Value of a counter/gauge series, or -1 when absent (for tests). */
double metrics_value(const char *name, const char *labels);

/* Escapes a label value per the exposition format into buf. */
void metrics_escape_label(const char *in, char *buf, size_t len);

#endif
