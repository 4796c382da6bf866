/* sys/clock.c — the real clock, the test clock and condition-variable
 * deadlines (see clock.h). */
#include "sys/clock.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

struct sysclock {
    bool test;
    _Atomic int64_t mono_ms, wall_ms; /* a test clock's readings */
};

static const sysclock real_clock = {.test = false};

static int64_t read_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const sysclock *clock_real(void)
{
    return &real_clock;
}

int64_t clock_mono_ms(const sysclock *c)
{
    if (c && c->test)
        return atomic_load(&c->mono_ms);
    return read_ms(CLOCK_MONOTONIC);
}

int64_t clock_mono_ns(const sysclock *c)
{
    if (c && c->test)
        return atomic_load(&c->mono_ms) * 1000000;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t clock_wall_ms(const sysclock *c)
{
    if (c && c->test)
        return atomic_load(&c->wall_ms);
    return read_ms(CLOCK_REALTIME);
}

sysclock *clock_test_new(int64_t mono_ms, int64_t wall_ms)
{
    sysclock *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->test = true;
    atomic_store(&c->mono_ms, mono_ms);
    atomic_store(&c->wall_ms, wall_ms);
    return c;
}

void clock_test_advance(sysclock *c, int64_t ms)
{
    if (!c || !c->test || ms < 0)
        return;
    atomic_fetch_add(&c->mono_ms, ms);
    atomic_fetch_add(&c->wall_ms, ms);
}

void clock_test_free(sysclock *c)
{
    if (c && c->test)
        free(c);
}

int clock_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    int rc = pthread_condattr_init(&a);
    if (rc != 0)
        return rc;
    rc = pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
    return rc;
}

struct timespec clock_cond_deadline(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (ms < 0)
        ms = 0;
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}
