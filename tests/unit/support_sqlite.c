/* tests/unit/support_sqlite.c — see support_sqlite.h. */
#include "support_sqlite.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "catalog/store_sqlite.h"

void sqlite_dir_open(sqlite_dir *d, const char *tag, int64_t history_keep)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->dir, sizeof(d->dir), "/tmp/citrus-%s-XXXXXX", tag);
    assert_non_null(mkdtemp(d->dir));
    snprintf(d->path, sizeof(d->path), "%s/catalog.db", d->dir);
    errdetail err;
    store_sqlite_options o = {.path = d->path, .history_keep = history_keep};
    assert_int_equal(store_sqlite_open(&o, &d->st, &err), 0);
}

void sqlite_dir_close(sqlite_dir *d)
{
    store_close(d->st);
    d->st = NULL;
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", d->dir);
    assert_int_equal(system(cmd), 0);
}

int64_t sqlite_dir_put(store *st, const char *k, const char *v)
{
    int64_t rev = 0;
    assert_int_equal(store_put(st, k, (const unsigned char *)v, strlen(v), 0, -1, NULL, &rev, NULL),
                     0);
    return rev;
}

void assert_single_value(const kv_range_res *r, const char *want)
{
    if (!want) {
        assert_int_equal(r->count, 0);
        return;
    }
    assert_int_equal(r->count, 1);
    assert_int_equal(r->items[0].value_len, strlen(want));
    assert_memory_equal(r->items[0].value, want, strlen(want));
}
