/* lib/deadline.h — the deadline of a wait on a condition variable, for the
 * handle (citrus_wait_revision, tenant registration) and the feed (its
 * back-off pauses). libcitrus is built without the sys layer, so it does not
 * use sys/clock.h. */
#ifndef CITRUS_LIB_DEADLINE_H
#define CITRUS_LIB_DEADLINE_H

#include <time.h>

/* The CLOCK_REALTIME time ms from now (for pthread_cond_timedwait on a
 * condition variable with the default clock). */
struct timespec deadline_in_ms(long ms);

#endif
