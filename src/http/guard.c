/* http/guard.c — strict request framing and the header deadline (see
 * guard.h). */
#include "http/guard.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "obs/metrics.h"
#include "sys/clock.h"

/* ---------------- framing ---------------- */

const char *guard_target(const char *target)
{
    if (!target || !*target)
        return "no request target";
    for (const unsigned char *p = (const unsigned char *)target; *p; p++) {
        if (*p == ' ')
            return "a raw space in the request target";
        if (*p < 0x20 || *p == 0x7f)
            return "a control character in the request target";
    }
    return NULL;
}

/* RFC 9110 tchar. */
static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool name_is(const guard_field *f, const char *name)
{
    return f->name_len == strlen(name) && strncasecmp(f->name, name, f->name_len) == 0;
}

const char *guard_fields(const guard_field *f, size_t n)
{
    size_t content_length = 0, transfer_encoding = 0;
    for (size_t i = 0; i < n; i++) {
        if (f[i].name_len == 0)
            return "an empty header field name";
        for (size_t k = 0; k < f[i].name_len; k++)
            if (!is_tchar((unsigned char)f[i].name[k]))
                return "a header field name with a character outside a token";
        for (size_t k = 0; k < f[i].value_len; k++) {
            unsigned char c = (unsigned char)f[i].value[k];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return "a control character in a header field value";
        }
        if (name_is(&f[i], "Content-Length")) {
            if (++content_length > 1)
                return "more than one Content-Length";
            if (f[i].value_len == 0 || strspn(f[i].value, "0123456789") != f[i].value_len)
                return "a Content-Length that is not a number";
        } else if (name_is(&f[i], "Transfer-Encoding")) {
            if (++transfer_encoding > 1)
                return "more than one Transfer-Encoding";
            if (f[i].value_len != 7 || strncasecmp(f[i].value, "chunked", 7) != 0)
                return "a Transfer-Encoding other than chunked";
        }
    }
    if (content_length && transfer_encoding)
        return "both Content-Length and Transfer-Encoding";
    return NULL;
}

/* After the NUL at p that ended a line (its CR, or a bare LF): where the
 * next line starts when it starts at next (one more NUL for a CR LF). */
static bool next_line_at(const char *p, const char *next)
{
    return next == p + 1 || (next == p + 2 && p[1] == '\0');
}

const char *guard_layout(const char *line_end, const char *end, const guard_field *f, size_t n)
{
    static const char *const why = "a NUL or a folded line in the request head";
    if (!line_end || !end || end <= line_end || *line_end != '\0')
        return why;
    const char *p = line_end; /* the NUL that ended the previous line */
    for (size_t i = 0; i < n; i++) {
        if (f[i].name < p || f[i].name >= end || !next_line_at(p, f[i].name))
            return why;
        const char *q = f[i].name + f[i].name_len;
        if (q >= end || *q != '\0') /* the colon */
            return why;
        q++;
        while (q < end && (*q == ' ' || *q == '\t'))
            q++;
        if (q != f[i].value)
            return why;
        p = f[i].value + f[i].value_len;
        if (p >= end || *p != '\0')
            return why;
    }
    /* The last line's end, then the empty line: 2 to 4 NULs in all. */
    size_t left = (size_t)(end - p);
    if (left < 2 || left > 4)
        return why;
    for (size_t k = 0; k < left; k++)
        if (p[k] != '\0')
            return why;
    return NULL;
}

/* ---------------- the header deadline ---------------- */

struct guard_conn {
    guard_conn *prev, *next;
    int fd;
    int64_t deadline_ms; /* 0: none (a request runs, or it was cut) */
    void *data;
};

struct guard_conns {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool stop;
    int64_t timeout_ms;
    guard_conn *head;
    uint64_t cut;
    metric_series *cut_metric;
};

static void *sweeper(void *arg)
{
    guard_conns *g = arg;
    int64_t step = g->timeout_ms / 4;
    if (step < 10)
        step = 10;
    if (step > 250)
        step = 250;
    pthread_mutex_lock(&g->mu);
    while (!g->stop) {
        int64_t now = clock_mono_ms(NULL);
        for (guard_conn *c = g->head; c; c = c->next) {
            if (c->deadline_ms && now >= c->deadline_ms) {
                /* libmicrohttpd sees the end of the stream and closes it;
                 * the entry goes when it does (guard_conn_remove). */
                shutdown(c->fd, SHUT_RDWR);
                c->deadline_ms = 0;
                g->cut++;
                metric_add(g->cut_metric, 1);
            }
        }
        struct timespec ts = clock_cond_deadline(step);
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

guard_conns *guard_conns_new(int64_t timeout_ms, const char *component)
{
    guard_conns *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    char labels[96];
    snprintf(labels, sizeof(labels), "server=\"%s\"", component ? component : "http");
    metrics_describe("citrus_http_header_timeouts_total", METRIC_COUNTER,
                     "Connections closed because a request's line and headers missed "
                     "server.header_timeout_ms.");
    g->cut_metric = metrics_series("citrus_http_header_timeouts_total", labels, METRIC_COUNTER);
    g->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
    pthread_mutex_init(&g->mu, NULL);
    clock_cond_init(&g->cv);
    if (pthread_create(&g->thread, NULL, sweeper, g) != 0) {
        pthread_cond_destroy(&g->cv);
        pthread_mutex_destroy(&g->mu);
        free(g);
        return NULL;
    }
    return g;
}

void guard_conns_free(guard_conns *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    g->stop = true;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->thread, NULL);
    while (g->head) {
        guard_conn *c = g->head;
        g->head = c->next;
        free(c);
    }
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

guard_conn *guard_conn_add(guard_conns *g, int fd)
{
    guard_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->fd = fd;
    pthread_mutex_lock(&g->mu);
    c->deadline_ms = clock_mono_ms(NULL) + g->timeout_ms;
    c->next = g->head;
    if (g->head)
        g->head->prev = c;
    g->head = c;
    pthread_mutex_unlock(&g->mu);
    return c;
}

void guard_conn_headers_done(guard_conns *g, guard_conn *c)
{
    pthread_mutex_lock(&g->mu);
    c->deadline_ms = 0;
    pthread_mutex_unlock(&g->mu);
}

void guard_conn_request_done(guard_conns *g, guard_conn *c)
{
    pthread_mutex_lock(&g->mu);
    c->deadline_ms = clock_mono_ms(NULL) + g->timeout_ms;
    pthread_mutex_unlock(&g->mu);
}

void guard_conn_remove(guard_conns *g, guard_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&g->mu);
    if (c->prev)
        c->prev->next = c->next;
    else
        g->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&g->mu);
    free(c);
}

void **guard_conn_data(guard_conn *c)
{
    return &c->data;
}

uint64_t guard_conns_cut(const guard_conns *g)
{
    pthread_mutex_t *mu = (pthread_mutex_t *)&g->mu;
    pthread_mutex_lock(mu);
    uint64_t n = g->cut;
    pthread_mutex_unlock(mu);
    return n;
}
