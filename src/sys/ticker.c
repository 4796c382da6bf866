/* sys/ticker.c — a periodic job on its own thread (see ticker.h). */
#include "sys/ticker.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "sys/clock.h"

struct ticker {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping; /* under mu */
    int64_t period_ms;
    void (*fn)(void *ctx);
    void *ctx;
};

static void *ticker_main(void *arg)
{
    ticker *t = arg;
    pthread_mutex_lock(&t->mu);
    while (!t->stopping) {
        struct timespec ts = clock_cond_deadline(t->period_ms);
        if (pthread_cond_timedwait(&t->cv, &t->mu, &ts) == 0 || t->stopping)
            continue;
        pthread_mutex_unlock(&t->mu);
        t->fn(t->ctx);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

ticker *ticker_start(const char *name, int64_t period_ms, void (*fn)(void *ctx), void *ctx)
{
    ticker *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->period_ms = period_ms;
    t->fn = fn;
    t->ctx = ctx;
    pthread_mutex_init(&t->mu, NULL);
    clock_cond_init(&t->cv);
    if (pthread_create(&t->th, NULL, ticker_main, t) != 0) {
        pthread_cond_destroy(&t->cv);
        pthread_mutex_destroy(&t->mu);
        free(t);
        return NULL;
    }
    if (name) {
        char n[16];
        snprintf(n, sizeof(n), "%s", name); /* a thread's name: 15 bytes at most */
        pthread_setname_np(t->th, n);
    }
    return t;
}

void ticker_stop(ticker *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    t->stopping = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->th, NULL);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
