/* sys/clock.h — time, injected: every module that decides by time (the
 * registry, the pool, the controller session, the catalog copy, the etcd
 * store, the watch reaper, the provisioning worker) reads it from a
 * sysclock it was given, so a test can hand it a clock it moves itself and
 * check timeouts, expiry and retries without sleeping.
 *
 * Two readings: monotonic (for durations and deadlines; an arbitrary
 * origin, never goes back) and wall (Unix time, for what is recorded or
 * shown). Both in milliseconds.
 *
 * Threads: every call is safe from any thread. */
#ifndef CITRUS_SYS_CLOCK_H
#define CITRUS_SYS_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

typedef struct sysclock sysclock;

/* The process's real clock (CLOCK_MONOTONIC, CLOCK_REALTIME). Static; never
 * freed. */
const sysclock *clock_real(void);

/* Readings of c; c NULL means clock_real(). */
int64_t clock_mono_ms(const sysclock *c);
int64_t clock_wall_ms(const sysclock *c);
/* The monotonic reading in nanoseconds, for durations finer than a
 * millisecond (latency histograms); a test clock's is its ms reading. */
int64_t clock_mono_ns(const sysclock *c);

/* ---- a clock for tests: it moves only when told ---- */

/* A new test clock reading mono_ms and wall_ms; NULL on allocation
 * failure. Free with clock_test_free. */
sysclock *clock_test_new(int64_t mono_ms, int64_t wall_ms);
/* Moves both readings forward by ms (>= 0). */
void clock_test_advance(sysclock *c, int64_t ms);
void clock_test_free(sysclock *c);

/* ---- waiting on real threads ----
 * A condition variable's deadline ms from now, on the clock it was made
 * with: clock_cond_init makes it wait on CLOCK_MONOTONIC, so a step of the
 * wall clock neither shortens nor stretches a wait. */
int clock_cond_init(pthread_cond_t *cv);
struct timespec clock_cond_deadline(int64_t ms);

#endif
