/* core/kv.c — releasing the catalog's result values (see kv.h). */
#include "core/kv.h"

#include <stdlib.h>
#include <string.h>

void kv_entry_clear(kv_entry *e)
{
    if (!e)
        return;
    free(e->key);
    free(e->value);
    memset(e, 0, sizeof(*e));
}

void kv_range_res_free(kv_range_res *r)
{
    if (!r)
        return;
    for (size_t i = 0; r->items && i < r->count; i++) /* count_only: no items */
        kv_entry_clear(&r->items[i]);
    free(r->items);
    memset(r, 0, sizeof(*r));
}

void kv_txn_res_free(kv_txn_res *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->count; i++)
        kv_range_res_free(&r->results[i].range);
    free(r->results);
    memset(r, 0, sizeof(*r));
}

void kv_snapshot_free(kv_snapshot *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->count; i++)
        kv_entry_clear(&s->items[i]);
    free(s->items);
    free(s->leases);
    memset(s, 0, sizeof(*s));
}
