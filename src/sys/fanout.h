/* sys/fanout.h — running n independent jobs on at most k threads and
 * waiting for all of them: the shard health probes and the router's
 * scatter, where each job blocks on a database of its own.
 *
 * Threads: fanout_run blocks its caller, which runs jobs too, with up to
 * k - 1 threads it starts and joins; job is called from any of them, once
 * per index, and must be safe to run concurrently with itself for other
 * indexes. Nothing is shared between calls. */
#ifndef CITRUS_SYS_FANOUT_H
#define CITRUS_SYS_FANOUT_H

#include <stddef.h>

typedef void (*fanout_fn)(void *ctx, size_t i);

/* Calls job(ctx, i) exactly once for every i < n, at most k at a time (k 0
 * counts as 1; never more threads than jobs), and returns when every call
 * has. When threads cannot be started, fewer run them (at worst the caller
 * alone). */
void fanout_run(size_t n, size_t k, fanout_fn job, void *ctx);

#endif
