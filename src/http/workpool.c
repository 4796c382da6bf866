/* http/workpool.c — a fixed set of threads for work that may block (see
 * workpool.h). */
#include "http/workpool.h"

#include <pthread.h>
#include <stdlib.h>

struct workpool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    workpool_job *head, *tail; /* guarded by mu */
    size_t queued, max_queue;  /* guarded by mu */
    bool stopping;             /* guarded by mu */
    unsigned nthreads;
    pthread_t *threads;
};

static void *worker(void *arg)
{
    workpool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        workpool_job *job = p->head;
        if (!job) { /* stopping, and the queue is drained */
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        p->head = job->next;
        if (!p->head)
            p->tail = NULL;
        p->queued--;
        pthread_mutex_unlock(&p->mu);
        job->next = NULL;
        job->fn(job);
    }
}

workpool *workpool_new(unsigned threads, size_t max_queue)
{
    workpool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->threads = calloc(threads ? threads : 1, sizeof(*p->threads));
    if (!p->threads) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->max_queue = max_queue;
    for (unsigned i = 0; i < (threads ? threads : 1); i++) {
        if (pthread_create(&p->threads[i], NULL, worker, p) != 0)
            break;
        p->nthreads++;
    }
    if (p->nthreads == 0) {
        workpool_free(p);
        return NULL;
    }
    return p;
}

bool workpool_post(workpool *p, workpool_job *job)
{
    pthread_mutex_lock(&p->mu);
    bool ok = !p->stopping && p->queued < p->max_queue;
    if (ok) {
        job->next = NULL;
        if (p->tail)
            p->tail->next = job;
        else
            p->head = job;
        p->tail = job;
        p->queued++;
        pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return ok;
}

void workpool_free(workpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}
