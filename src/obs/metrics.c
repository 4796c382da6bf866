/* obs/metrics.c — Prometheus registry: a mutex-guarded hash of series
 * whose values are atomics. The mutex guards the table (finding or adding
 * a series, rendering); updates through a handle (metrics_series) take no
 * lock. Series live as long as the process, so handles never dangle. A
 * histogram keeps per-bucket counts (not cumulative) and sums them when
 * rendered; a render that races with updates may show a count a step
 * ahead of its buckets, never a torn value. */
#include "obs/metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/strbuf.h"

#define NBUCKETS 16
static const double bucket_le[NBUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                           0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                           1,      2.5,     5,      10};

struct metric_series {
    struct metric_series *next; /* hash chain */
    char *name;
    char *labels;
    metric_type type;
    _Atomic uint64_t value; /* the bits of a double: counter/gauge value; histogram sum */
    _Atomic unsigned long long count;
    _Atomic unsigned long long buckets[NBUCKETS + 1]; /* per bucket; [NBUCKETS]: above all */
    _Atomic bool hidden; /* forgotten (metrics_forget) until it is used again */
};
typedef struct metric_series series;

static double load_double(const _Atomic uint64_t *a)
{
    uint64_t bits = atomic_load_explicit(a, memory_order_relaxed);
    double d;
    memcpy(&d, &bits, sizeof(d));
    return d;
}

static void store_double(_Atomic uint64_t *a, double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof(bits));
    atomic_store_explicit(a, bits, memory_order_relaxed);
}

static void add_double(_Atomic uint64_t *a, double delta)
{
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed), next;
    do {
        double d;
        memcpy(&d, &old, sizeof(d));
        d += delta;
        memcpy(&next, &d, sizeof(next));
    } while (!atomic_compare_exchange_weak_explicit(a, &old, next, memory_order_relaxed,
                                                    memory_order_relaxed));
}

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
        if (strcmp(s->name, name) == 0 && strcmp(s->labels, labels) == 0) {
            atomic_store_explicit(&s->hidden, false, memory_order_relaxed);
            return s;
        }
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

metric_series *metrics_series(const char *name, const char *labels, metric_type type)
{
    pthread_mutex_lock(&lock);
    series *s = series_get(name, labels ? labels : "", type);
    pthread_mutex_unlock(&lock);
    return s;
}

/* A forgotten series that is updated shows again. */
static void unhide(series *s)
{
    if (atomic_load_explicit(&s->hidden, memory_order_relaxed))
        atomic_store_explicit(&s->hidden, false, memory_order_relaxed);
}

void metric_add(metric_series *s, double delta)
{
    if (!s)
        return;
    unhide(s);
    add_double(&s->value, delta);
}

void metric_set(metric_series *s, double value)
{
    if (!s)
        return;
    unhide(s);
    store_double(&s->value, value);
}

void metric_observe(metric_series *s, double value)
{
    if (!s)
        return;
    unhide(s);
    int i = 0;
    while (i < NBUCKETS && !(value <= bucket_le[i]))
        i++;
    atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
    add_double(&s->value, value);
    atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
}

void metrics_counter_add(const char *name, const char *labels, double delta)
{
    metric_add(metrics_series(name, labels, METRIC_COUNTER), delta);
}

void metrics_gauge_set(const char *name, const char *labels, double value)
{
    metric_set(metrics_series(name, labels, METRIC_GAUGE), value);
}

void metrics_histogram_observe(const char *name, const char *labels, double value)
{
    metric_observe(metrics_series(name, labels, METRIC_HISTOGRAM), value);
}

double metrics_value(const char *name, const char *labels)
{
    double v = -1;
    pthread_mutex_lock(&lock);
    unsigned h = hash2(name, labels);
    for (series *s = slots[h]; s; s = s->next)
        if (strcmp(s->name, name) == 0 && strcmp(s->labels, labels) == 0 &&
            !atomic_load_explicit(&s->hidden, memory_order_relaxed))
            v = s->type == METRIC_HISTOGRAM ? (double)atomic_load(&s->count)
                                            : load_double(&s->value);
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

/* Whether a label string (a="x",b="y") carries label="want" (escaped). */
static bool has_label(const char *labels, const char *label, const char *want)
{
    size_t ll = strlen(label), wl = strlen(want);
    for (const char *p = labels; *p;) {
        if (strncmp(p, label, ll) == 0 && p[ll] == '=' && p[ll + 1] == '"' &&
            strncmp(p + ll + 2, want, wl) == 0 && p[ll + 2 + wl] == '"')
            return true;
        /* to the next label: past the closing quote of this value */
        const char *q = strchr(p, '"');
        while (q && (q = strchr(q + 1, '"')) && q[-1] == '\\')
            ;
        if (!q || q[1] != ',')
            break;
        p = q + 2;
    }
    return false;
}

void metrics_forget(const char *label, const char *value)
{
    char esc[512];
    metrics_escape_label(value, esc, sizeof(esc));
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < NSLOTS; i++)
        for (series *s = slots[i]; s; s = s->next)
            if (has_label(s->labels, label, esc)) {
                atomic_store_explicit(&s->hidden, true, memory_order_relaxed);
                /* shown again from zero when reused (a shard id given anew) */
                store_double(&s->value, 0);
                atomic_store_explicit(&s->count, 0, memory_order_relaxed);
                for (int k = 0; k <= NBUCKETS; k++)
                    atomic_store_explicit(&s->buckets[k], 0, memory_order_relaxed);
            }
    pthread_mutex_unlock(&lock);
}

static const char *type_name(metric_type t)
{
    return t == METRIC_COUNTER ? "counter" : t == METRIC_GAUGE ? "gauge" : "histogram";
}

static void render_series(strbuf *b, const series *s)
{
    if (atomic_load_explicit(&s->hidden, memory_order_relaxed))
        return;
    const char *sep = s->labels[0] ? "," : "";
    if (s->type != METRIC_HISTOGRAM) {
        strbuf_printf(b, "%s{%s} %.17g\n", s->name, s->labels, load_double(&s->value));
        return;
    }
    /* cumulative, from per-bucket counts read once each; the total of all
     * buckets is the count (read the same way, so +Inf and _count agree) */
    unsigned long long cum = 0;
    for (int i = 0; i < NBUCKETS; i++) {
        cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
        strbuf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", s->name, s->labels, sep, bucket_le[i],
                      cum);
    }
    cum += atomic_load_explicit(&s->buckets[NBUCKETS], memory_order_relaxed);
    strbuf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", s->name, s->labels, sep, cum);
    strbuf_printf(b, "%s_sum{%s} %.17g\n", s->name, s->labels, load_double(&s->value));
    strbuf_printf(b, "%s_count{%s} %llu\n", s->name, s->labels, cum);
}

char *metrics_render(size_t *len)
{
    strbuf b = STRBUF_INIT;
    pthread_mutex_lock(&lock);
    for (size_t f = 0; f < nfamilies; f++) {
        strbuf_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", families[f].name, families[f].help,
                      families[f].name, type_name(families[f].type));
        for (size_t i = 0; i < NSLOTS; i++)
            for (series *s = slots[i]; s; s = s->next)
                if (strcmp(s->name, families[f].name) == 0)
                    render_series(&b, s);
    }
    pthread_mutex_unlock(&lock);
    return strbuf_take(&b, len);
}
