/* Unit tests for sys/fanout.c: every job runs exactly once, never more than
 * k at a time, k of them really at once (a rendezvous that a serial run
 * could not reach), and the edges (no jobs, k 0, k above n). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sys/clock.h"
#include "sys/fanout.h"

#define N 2000

typedef struct counting {
    atomic_int runs[N];
    atomic_int running, most;
} counting;

static void count(void *ctx, size_t i)
{
    counting *c = ctx;
    int now = atomic_fetch_add(&c->running, 1) + 1;
    for (int m = atomic_load(&c->most);
         now > m && !atomic_compare_exchange_weak(&c->most, &m, now);)
        ;
    atomic_fetch_add(&c->runs[i], 1);
    atomic_fetch_sub(&c->running, 1);
}

static void each_job_once_at_most_k_at_a_time(void **state)
{
    size_t ks[] = {1, 3, 8};
    for (size_t t = 0; t < sizeof(ks) / sizeof(ks[0]); t++) {
        counting *c = calloc(1, sizeof(*c));
        fanout_run(N, ks[t], count, c);
        for (size_t i = 0; i < N; i++)
            if (atomic_load(&c->runs[i]) != 1)
                fail_msg("k=%zu: job %zu ran %d times", ks[t], i, atomic_load(&c->runs[i]));
        assert_true(atomic_load(&c->most) >= 1);
        assert_true((size_t)atomic_load(&c->most) <= ks[t]);
        assert_int_equal(atomic_load(&c->running), 0); /* all done on return */
        free(c);
    }
}

/* k jobs that each wait for all k to have started: only a run with k
 * threads at once gets through (a serial one would wait out the 10 s
 * deadline and fail). */
typedef struct rendezvous {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t arrived, want;
    bool all_met;
} rendezvous;

static void meet(void *ctx, size_t i)
{
    rendezvous *r = ctx;
    pthread_mutex_lock(&r->mu);
    r->arrived++;
    pthread_cond_broadcast(&r->cv);
    struct timespec dl = clock_cond_deadline(10000);
    while (r->arrived < r->want)
        if (pthread_cond_timedwait(&r->cv, &r->mu, &dl) != 0)
            break;
    if (r->arrived < r->want)
        r->all_met = false;
    pthread_mutex_unlock(&r->mu);
}

static void k_jobs_run_at_once(void **state)
{
    rendezvous r = {.want = 4, .all_met = true};
    pthread_mutex_init(&r.mu, NULL);
    clock_cond_init(&r.cv);
    fanout_run(4, 4, meet, &r);
    assert_int_equal(r.arrived, 4);
    assert_true(r.all_met);
    pthread_cond_destroy(&r.cv);
    pthread_mutex_destroy(&r.mu);
}

static void edges(void **state)
{
    counting *c = calloc(1, sizeof(*c));
    fanout_run(0, 4, count, c); /* nothing to do */
    assert_int_equal(atomic_load(&c->most), 0);
    fanout_run(5, 0, count, c); /* k 0: one at a time */
    assert_int_equal(atomic_load(&c->most), 1);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(atomic_load(&c->runs[i]), 1);
    memset(c, 0, sizeof(*c));
    fanout_run(3, 64, count, c); /* more threads than jobs: at most one each */
    assert_true(atomic_load(&c->most) <= 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(atomic_load(&c->runs[i]), 1);
    assert_int_equal(atomic_load(&c->runs[3]), 0);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_job_once_at_most_k_at_a_time),
        cmocka_unit_test(k_jobs_run_at_once),
        cmocka_unit_test(edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
