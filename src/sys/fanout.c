/* sys/fanout.c — n jobs over at most k threads (see fanout.h): each thread
 * takes the next index until none is left. */
#include "sys/fanout.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

typedef struct fanout {
    fanout_fn job;
    void *ctx;
    size_t n;
    atomic_size_t next; /* the next index to take */
} fanout;

static void *take_jobs(void *arg)
{
    fanout *f = arg;
    for (size_t i; (i = atomic_fetch_add(&f->next, 1)) < f->n;)
        f->job(f->ctx, i);
    return NULL;
}

void fanout_run(size_t n, size_t k, fanout_fn job, void *ctx)
{
    fanout f = {.job = job, .ctx = ctx, .n = n};
    atomic_init(&f.next, 0);
    size_t extra = (k < n ? k : n);
    extra = extra > 1 ? extra - 1 : 0; /* the caller is one of them */
    pthread_t *th = extra ? malloc(extra * sizeof(*th)) : NULL;
    size_t started = 0;
    while (th && started < extra && pthread_create(&th[started], NULL, take_jobs, &f) == 0)
        started++;
    take_jobs(&f);
    for (size_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    free(th);
}
