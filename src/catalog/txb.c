/* catalog/txb.c — a catalog txn that owns its keys and values (see txb.h). */
#include "catalog/txb.h"

#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"

void txb_init(txb *t)
{
    memset(t, 0, sizeof(*t));
}

void txb_free(txb *t)
{
    for (size_t i = 0; i < t->nowned; i++)
        free(t->owned[i]);
    free(t->owned);
    free(t->cmps);
    free(t->ops);
    memset(t, 0, sizeof(*t));
}

static bool grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return true;
    size_t ncap = *cap ? *cap * 2 : 8;
    void *p = realloc(*arr, ncap * elem);
    if (!p)
        return false;
    *arr = p;
    *cap = ncap;
    return true;
}

/* Keeps s (malloc'd) until txb_free; NULL when out of memory. */
static char *own(txb *t, char *s)
{
    if (!s || !grow((void **)&t->owned, &t->capw, t->nowned, sizeof(char *))) {
        free(s);
        t->oom = true;
        return NULL;
    }
    t->owned[t->nowned++] = s;
    return s;
}

void txb_cmp(txb *t, kv_compare c)
{
    c.key = own(t, strdup(c.key));
    if (!c.key || !grow((void **)&t->cmps, &t->capc, t->ncmps, sizeof(kv_compare))) {
        t->oom = true;
        return;
    }
    t->cmps[t->ncmps++] = c;
}

void txb_cmp_version(txb *t, const char *key, int64_t v)
{
    txb_cmp(t, (kv_compare){.key = key, .target = KV_CMP_VERSION, .op = KV_CMP_EQ, .number = v});
}

void txb_cmp_mod(txb *t, const char *key, int64_t mod)
{
    txb_cmp(t, (kv_compare){.key = key, .target = KV_CMP_MOD, .op = KV_CMP_EQ, .number = mod});
}

static void add_op(txb *t, kv_op op)
{
    if (!grow((void **)&t->ops, &t->capo, t->nops, sizeof(kv_op))) {
        t->oom = true;
        return;
    }
    t->ops[t->nops++] = op;
}

void txb_put_json(txb *t, const char *key, json_t *value)
{
    char *text = value ? json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(value);
    char *k = own(t, strdup(key));
    char *v = own(t, text);
    if (!k || !v)
        return;
    add_op(t, (kv_op){.type = KV_OP_PUT,
                      .key = k,
                      .value = (const unsigned char *)v,
                      .value_len = strlen(v)});
}

void txb_del(txb *t, const char *key, bool prefix)
{
    char *k = own(t, strdup(key));
    if (k)
        add_op(t, (kv_op){.type = KV_OP_DELETE, .key = k, .prefix = prefix});
}

int txb_commit(txb *t, store *st, bool *succeeded, int64_t *revision)
{
    *succeeded = false;
    if (t->oom)
        return CITRUS_ENOMEM;
    kv_txn txn = {
        .compares = t->cmps, .ncompares = t->ncmps, .success = t->ops, .nsuccess = t->nops};
    kv_txn_res res;
    int rc = store_txn(st, &txn, &res);
    if (rc == 0) {
        *succeeded = res.succeeded;
        if (revision)
            *revision = res.revision;
    }
    kv_txn_res_free(&res);
    return rc;
}
