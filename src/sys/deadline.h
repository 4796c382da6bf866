/* sys/deadline.h — a point in time a piece of work must be done by, on an
 * injected clock (sys/clock.h): the server's per-request deadline
 * (server.request_deadline_ms) handed down from an API handler to the
 * shard connections it waits on, each wait bounded by what is left.
 *
 * A deadline is a value (no allocation); the zero value is "none". */
#ifndef CITRUS_SYS_DEADLINE_H
#define CITRUS_SYS_DEADLINE_H

#include <stdbool.h>
#include <stdint.h>

#include "sys/clock.h"

typedef struct deadline {
    const sysclock *clock; /* NULL: the real clock */
    int64_t at_ms;         /* clock_mono_ms of clock; 0: none */
} deadline;

/* ms from now on clock (NULL: the real one); ms <= 0: already passed. */
deadline deadline_after(const sysclock *clock, int64_t ms);
/* Whether d is set at all (the zero value is not). */
bool deadline_set(const deadline *d);
/* ms left (0 once passed); INT64_MAX without a deadline. */
int64_t deadline_left_ms(const deadline *d);
#endif
