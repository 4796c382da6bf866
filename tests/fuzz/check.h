/* tests/fuzz/check.h — invariant checks for the fuzz targets.
 *
 * FUZZ_CHECK works whatever NDEBUG says and aborts with the failed condition
 * and a message, so libFuzzer saves the input as a crash artifact. */
#ifndef CITRUS_FUZZ_CHECK_H
#define CITRUS_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s: ", __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
