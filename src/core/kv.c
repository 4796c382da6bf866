/* core/kv.c — copying and releasing the catalog's values (see kv.h). */
#include "core/kv.h"

#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"

int kv_entry_copy(kv_entry *dst, const kv_entry *src, bool with_value)
{
    *dst = *src;
    dst->key = strdup(src->key);
    dst->value = NULL;
    dst->value_len = 0;
    if (with_value && src->value_len) {
        dst->value = malloc(src->value_len);
        if (dst->value) {
            memcpy(dst->value, src->value, src->value_len);
            dst->value_len = src->value_len;
        }
    }
    if (!dst->key || (with_value && src->value_len && !dst->value)) {
        kv_entry_clear(dst);
        return CITRUS_ENOMEM;
    }
    return 0;
}

void kv_entry_clear(kv_entry *e)
{
    if (!e)
        return;
    free(e->key);
    free(e->value);
    memset(e, 0, sizeof(*e));
}

size_t kv_entry_wire_size(size_t key_len, size_t value_len, bool with_value)
{
    /* keys are printable (core/key.h) but may need \" or \\: twice is enough;
     * 160 covers the names and numbers of an item's revision fields */
    size_t n = 2 * key_len + 160;
    if (with_value)
        n += (value_len + 2) / 3 * 4;
    return n;
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
