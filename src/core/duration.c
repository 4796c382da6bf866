/* core/duration.c — "30s", "500ms", "2m", bare seconds (see duration.h). */
#include "core/duration.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int duration_parse_ms(const char *s, int64_t *ms)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || !isfinite(v) || v < 0)
        return -1;
    double scale;
    if (*end == '\0' || strcmp(end, "s") == 0)
        scale = 1000;
    else if (strcmp(end, "ms") == 0)
        scale = 1;
    else if (strcmp(end, "m") == 0)
        scale = 60000;
    else
        return -1;
    double total = v * scale;
    *ms = total > (double)DURATION_MAX_MS ? DURATION_MAX_MS : (int64_t)total;
    return 0;
}
