/* sys/deadline.c — see deadline.h. */
#include "sys/deadline.h"

deadline deadline_after(const sysclock *clock, int64_t ms)
{
    int64_t now = clock_mono_ms(clock);
    /* at_ms 0 means "none": a deadline already passed stays set */
    int64_t at = ms > 0 ? now + ms : now;
    return (deadline){.clock = clock, .at_ms = at ? at : -1};
}

bool deadline_set(const deadline *d)
{
    return d && d->at_ms != 0;
}

int64_t deadline_left_ms(const deadline *d)
{
    if (!deadline_set(d))
        return INT64_MAX;
    int64_t left = d->at_ms - clock_mono_ms(d->clock);
    return left > 0 ? left : 0;
}
