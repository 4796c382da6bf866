/* obs/metrics.c — Prometheus registry: a mutex-guarded hash of series. */
#include "obs/metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 16
static const double bucket_le[NBUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                           0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                           1,      2.5,     5,      10};

typedef struct series {
    struct series *next; /* hash chain */
    char *name;
    char *labels;
    metric_type type;
    double value; /* counter/gauge value; histogram sum */
    unsigned long long count;
    unsigned long long buckets[NBUCKETS];
} series;

typedef struct family {
    const char *name;
    const char *help;
    metric_type type;
} family;

#define NSLOTS 1024
#define MAXFAM 128
static series *slots[NSLOTS];
static family families[MAXFAM];
static size_t nfamilies;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned hash2(const char *a, const char *b)
{
    unsigned h = 2166136261u;
    for (; *a; a++)
        h = (h ^ (unsigned char)*a) * 16777619u;
    h = (h ^ 0xff) * 16777619u;
    for (; *b; b++)
        h = (h ^ (unsigned char)*b) * 16777619u;
    return h % NSLOTS;
}

/* Finds or creates a series; lock held. NULL on allocation failure. */
static series *series_get(const char *name, const char *labels, metric_type type)
{
    unsigned h = hash2(name, labels);
    for (series *s = slots[h]; s; s = s->next)
        if (strcmp(s->name, name) == 0 && strcmp(s->labels, labels) == 0)
            return s;
    series *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->name = strdup(name);
    s->labels = strdup(labels);
    if (!s->name || !s->labels) {
        free(s->name);
        free(s->labels);
        free(s);
        return NULL;
    }
    s->type = type;
    s->next = slots[h];
    slots[h] = s;
    return s;
}

void metrics_describe(const char *name, metric_type type, const char *help)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nfamilies; i++)
        if (strcmp(families[i].name, name) == 0)
            goto out;
    if (nfamilies < MAXFAM)
        families[nfamilies++] = (family){name, help, type};
out:
    pthread_mutex_unlock(&lock);
}

void metrics_counter_add(const char *name, const char *labels, double delta)
{
    pthread_mutex_lock(&lock);
    series *s = series_get(name, labels ? labels : "", METRIC_COUNTER);
    if (s)
        s->value += delta;
    pthread_mutex_unlock(&lock);
}

void metrics_gauge_set(const char *name, const char *labels, double value)
{
    pthread_mutex_lock(&lock);
    series *s = series_get(name, labels ? labels : "", METRIC_GAUGE);
    if (s)
        s->value = value;
    pthread_mutex_unlock(&lock);
}

void metrics_histogram_observe(const char *name, const char *labels, double value)
{
    pthread_mutex_lock(&lock);
    series *s = series_get(name, labels ? labels : "", METRIC_HISTOGRAM);
    if (s) {
        s->value += value;
        s->count++;
        for (int i = 0; i < NBUCKETS; i++)
            if (value <= bucket_le[i])
                s->buckets[i]++;
    }
    pthread_mutex_unlock(&lock);
}

double metrics_value(const char *name, const char *labels)
{
    double v = -1;
    pthread_mutex_lock(&lock);
    unsigned h = hash2(name, labels);
    for (series *s = slots[h]; s; s = s->next)
        if (strcmp(s->name, name) == 0 && strcmp(s->labels, labels) == 0)
            v = s->type == METRIC_HISTOGRAM ? (double)s->count : s->value;
    pthread_mutex_unlock(&lock);
    return v;
}

void metrics_escape_label(const char *in, char *buf, size_t len)
{
    size_t o = 0;
    for (; *in && o + 3 < len; in++) {
        if (*in == '\\' || *in == '"') {
            buf[o++] = '\\';
            buf[o++] = *in;
        } else if (*in == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else {
            buf[o++] = *in;
        }
    }
    buf[o] = '\0';
}

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *p = realloc(b->p, cap);
        if (!p)
            return;
        b->p = p;
        b->cap = cap;
    }
}

static const char *type_name(metric_type t)
{
    return t == METRIC_COUNTER ? "counter" : t == METRIC_GAUGE ? "gauge" : "histogram";
}

static void render_series(sbuf *b, const series *s)
{
    const char *sep = s->labels[0] ? "," : "";
    if (s->type != METRIC_HISTOGRAM) {
        sb_printf(b, "%s{%s} %.17g\n", s->name, s->labels, s->value);
        return;
    }
    for (int i = 0; i < NBUCKETS; i++)
        sb_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", s->name, s->labels, sep, bucket_le[i],
                  s->buckets[i]);
    sb_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", s->name, s->labels, sep, s->count);
    sb_printf(b, "%s_sum{%s} %.17g\n", s->name, s->labels, s->value);
    sb_printf(b, "%s_count{%s} %llu\n", s->name, s->labels, s->count);
}

char *metrics_render(size_t *len)
{
    sbuf b = {0};
    sb_printf(&b, "%s", "");
    pthread_mutex_lock(&lock);
    for (size_t f = 0; f < nfamilies; f++) {
        sb_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", families[f].name, families[f].help,
                  families[f].name, type_name(families[f].type));
        for (size_t i = 0; i < NSLOTS; i++)
            for (series *s = slots[i]; s; s = s->next)
                if (strcmp(s->name, families[f].name) == 0)
                    render_series(&b, s);
    }
    pthread_mutex_unlock(&lock);
    *len = b.len;
    return b.p;
}
