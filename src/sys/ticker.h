/* sys/ticker.h — a thread that runs one job every period: retention
 * purges, trims and other housekeeping of a node. */
#ifndef CITRUS_SYS_TICKER_H
#define CITRUS_SYS_TICKER_H

#include <stdint.h>

typedef struct ticker ticker;

/* Starts a thread calling fn(ctx) every period_ms (the first call one
 * period after the start). NULL when the thread cannot be started. */
ticker *ticker_start(const char *name, int64_t period_ms, void (*fn)(void *ctx), void *ctx);
/* Wakes the thread, waits for a call under way to end, joins it and frees
 * t. NULL is a no-op. */
void ticker_stop(ticker *t);

#endif
