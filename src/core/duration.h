/* core/duration.h — a duration as people write it: "30s", "500ms", "2m" or
 * bare seconds ("1.5"), shared by the watch route's ?timeout= and the
 * CLI's waiting options (`citrus events tail --wait`). */
#ifndef CITRUS_CORE_DURATION_H
#define CITRUS_CORE_DURATION_H

#include <stdint.h>

/* The longest duration read: 30 days, in ms. A longer one reads as this
 * (callers bound it further), so no value overflows. */
#define DURATION_MAX_MS (30LL * 24 * 3600 * 1000)

/* Parses s (a non-negative finite number, then nothing, "s", "ms" or "m")
 * into *ms, at most DURATION_MAX_MS. 0, or -1 when s is not such a
 * duration (*ms untouched). */
int duration_parse_ms(const char *s, int64_t *ms);

#endif
