/* tests/unit/support_sqlite.h — an embedded catalog store in a temp dir,
 * for unit tests of what sits on top of a store. */
#ifndef CITRUS_TESTS_SUPPORT_SQLITE_H
#define CITRUS_TESTS_SUPPORT_SQLITE_H

#include <stdint.h>

#include "catalog/store.h"

typedef struct sqlite_dir {
    char dir[64];  /* the temp dir, removed by sqlite_dir_close */
    char path[96]; /* dir/catalog.db */
    store *st;
} sqlite_dir;

/* Opens a store on a fresh temp dir named /tmp/citrus-<tag>-XXXXXX
 * (history_keep: revisions kept for watches, 0 for the default); fails
 * the test on error. */
void sqlite_dir_open(sqlite_dir *d, const char *tag, int64_t history_keep);
/* Closes the store and removes the dir. */
void sqlite_dir_close(sqlite_dir *d);
/* Puts k=v without a lease; the revision of the put. */
int64_t sqlite_dir_put(store *st, const char *k, const char *v);
/* Asserts r holds one item of value want (want NULL: no item). */
void assert_single_value(const kv_range_res *r, const char *want);

#endif
