/* http/workpool.h — a fixed set of threads for work that may block.
 *
 * HTTP pool threads must not wait on the network (every connection on the
 * thread would wait too); a handler that has to (a linearizable read from
 * etcd, a wait for this node's copy to catch up) moves its request here.
 * Jobs are intrusive (the caller embeds workpool_job), so posting never
 * allocates; the queue is bounded and a full or stopping pool refuses. */
#ifndef CITRUS_HTTP_WORKPOOL_H
#define CITRUS_HTTP_WORKPOOL_H

#include <stdbool.h>
#include <stddef.h>

typedef struct workpool workpool;

typedef struct workpool_job {
    void (*fn)(struct workpool_job *job);
    struct workpool_job *next; /* the pool's */
} workpool_job;

/* threads >= 1; max_queue: jobs waiting beyond the running ones. NULL when
 * out of memory or no thread could start. */
workpool *workpool_new(unsigned threads, size_t max_queue);

/* Queues job (job->fn set). false when the queue is full or the pool is
 * stopping: the job was not taken. */
bool workpool_post(workpool *p, workpool_job *job);

/* Refuses new jobs, runs every queued one, joins the threads, frees. NULL
 * is a no-op. */
void workpool_free(workpool *p);

#endif
