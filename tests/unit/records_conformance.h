/* tests/unit/records_conformance.h — the conformance suite every records
 * store backend must pass (records/records.h).
 *
 * Written against records.h only. A backend's test file fills a
 * records_conformance_factory and runs the tests it returns as one cmocka
 * group. Each test opens its own fresh, empty store through the factory
 * and closes it at the end. */
#ifndef CITRUS_TESTS_RECORDS_CONFORMANCE_H
#define CITRUS_TESTS_RECORDS_CONFORMANCE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "records/records.h"

typedef struct records_conformance_factory {
    const char *name; /* records_backend() of the stores it opens: "sqlite", "postgres" */
    void *ctx;        /* passed to every callback */
    /* Opens a fresh store holding no rows. 0 or an error. */
    int (*open)(void *ctx, records **out);
    /* Opens the store the last open made again (its rows kept), as a
     * restarted node would; also while that one is still open (a second
     * node on the same store). */
    int (*reopen)(void *ctx, records **out);
    /* Makes every write of r (the last store open made) fail, as a disk
     * that refuses writes or a server that went down would, until
     * mend_writes; 0 or -1. */
    int (*break_writes)(void *ctx, records *r);
    int (*mend_writes)(void *ctx, records *r);
    /* An append that failed may still have its row in the store
     * (PostgreSQL: the connection broke while COMMIT was in flight; see
     * records.h). False: a failed append never left a row. */
    bool failed_may_commit;
} records_conformance_factory;

/* The suite's tests, bound to f (kept, not copied: it must stay valid while
 * the tests run). Sets *n to the number of tests. */
const struct CMUnitTest *records_conformance_tests(const records_conformance_factory *f, size_t *n);

#endif
