/* tests/unit/catalog_conformance.h — the conformance suite every catalog
 * store implementation must pass.
 *
 * The suite is written against store.h only. An implementation's test file
 * fills a catalog_conformance_factory and runs the tests it returns (or calls
 * catalog_conformance_run). Each test opens its own fresh, empty store
 * through the factory and closes it at the end. */
#ifndef CITRUS_TESTS_CATALOG_CONFORMANCE_H
#define CITRUS_TESTS_CATALOG_CONFORMANCE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "catalog/store.h"

typedef struct catalog_conformance_factory {
    const char *name; /* shown in the group name, e.g. "sqlite" */
    void *ctx;        /* passed to every callback */
    /* Opens a fresh store holding no keys and no leases. 0 or an error. */
    int (*open)(void *ctx, store **out);
    /* Closes s (which may be NULL) and discards its data. */
    void (*close)(void *ctx, store *s);
    /* Optional (NULL skips the test that needs it): compacts history so that
     * rev becomes the oldest revision a watch can start from. May replace *s
     * (for instance by reopening the store); on failure *s may be NULL. */
    int (*compact)(void *ctx, store **s, int64_t rev);
    /* Optional: moves the store's lease clock forward by ms. Without it the
     * lease expiry test waits in real time. */
    void (*advance_ms)(void *ctx, int64_t ms);
} catalog_conformance_factory;

/* The suite's tests, bound to f. f is kept, not copied: it must stay valid
 * while the tests run. Sets *n to the number of tests. */
const struct CMUnitTest *catalog_conformance_tests(const catalog_conformance_factory *f, size_t *n);

/* Runs the whole suite as one cmocka group; returns the number of failures. */
int catalog_conformance_run(const catalog_conformance_factory *f);

#endif
