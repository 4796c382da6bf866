/* api/watch.h — the watch hub: the open long polls and SSE streams of
 * GET /v1/watch (api_watch, handlers.h) and the reaper that ends polls at
 * their deadline, pings idle streams and, at shutdown, answers them all.
 *
 * One hub per server (app.watches), created, started and stopped with it
 * (node/serve.c), so two servers in one process keep their own waiters.
 * Deadlines and pings run on the hub's clock.
 *
 * Threads: every call is safe from any thread; the reaper is the hub's
 * own. */
#ifndef CITRUS_API_WATCH_H
#define CITRUS_API_WATCH_H

#include <stddef.h>

#include "sys/clock.h"

typedef struct watch_hub watch_hub;

/* A hub on clock (borrowed, outlives the hub; NULL: the real clock), its
 * reaper not started. NULL on allocation failure. */
watch_hub *watch_hub_new(const sysclock *clock);
/* Starts the reaper thread (watch_hub_reap every 50 ms). 0 or
 * CITRUS_ENOMEM. */
int watch_hub_start(watch_hub *h);
/* One pass of the reaper at the hub's clock: wakes the polls that are due
 * to answer (at their deadline once caught up, a grace period later
 * regardless) and pings streams idle for 15 s. Returns how many polls it
 * woke. For tests that drive the hub without its thread. */
size_t watch_hub_reap(watch_hub *h);
/* How many polls and streams are open. */
size_t watch_hub_waiting(watch_hub *h);
/* Refuses new watches (503), answers every poll and ends every stream,
 * waits up to 5 s for them to leave, and stops the reaper. Returns how
 * many there were. Call before the HTTP server stops. */
size_t watch_hub_shutdown(watch_hub *h);
/* Shuts the hub down if that was not done yet, and frees it (after the
 * HTTP server has stopped). NULL is a no-op. */
void watch_hub_free(watch_hub *h);

#endif
