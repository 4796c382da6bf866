/* tests/unit/bus_conformance.h — the conformance suite every bus backend
 * must pass (bus/bus.h).
 *
 * Written against bus.h only. A backend's test file fills a
 * bus_conformance_factory and runs the tests it returns as one cmocka
 * group. Each test opens its own fresh, empty bus through the factory with
 * the config it needs (a test clock, a scripted random source, small
 * limits) and closes it at the end. */
#ifndef CITRUS_TESTS_BUS_CONFORMANCE_H
#define CITRUS_TESTS_BUS_CONFORMANCE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bus/bus.h"

typedef struct bus_conformance_factory {
    const char *name; /* shown in the group name: "embedded", "kafka" */
    void *ctx;        /* passed to every callback */
    /* Opens a fresh bus with no topics, with cfg. 0 or an error. */
    int (*open)(void *ctx, const bus_config *cfg, bus **out);
    /* Closes b (which may be NULL) and discards its data. */
    void (*close)(void *ctx, bus *b);
    /* Retention is the brokers' (Kafka): bus_trim deletes nothing, so the
     * two trim tests give way to one that checks the topics' retention
     * settings were set and that bus_trim leaves the messages. */
    bool broker_retention;
} bus_conformance_factory;

/* The suite's tests, bound to f (kept, not copied: it must stay valid while
 * the tests run). Sets *n to the number of tests. */
const struct CMUnitTest *bus_conformance_tests(const bus_conformance_factory *f, size_t *n);

#endif
