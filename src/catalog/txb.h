/* catalog/txb.h — builds a catalog txn whose keys and values it owns,
 * for the registry's multi-key changes (a shard, its tokens, the ring
 * version, tenant pins: one revision). Every adder copies its inputs; an
 * allocation failure is remembered and reported by txb_commit. */
#ifndef CITRUS_CATALOG_TXB_H
#define CITRUS_CATALOG_TXB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog/store.h"

typedef struct txb {
    kv_compare *cmps;
    size_t ncmps, capc;
    kv_op *ops;
    size_t nops, capo;
    char **owned;
    size_t nowned, capw;
    bool oom;
} txb;

void txb_init(txb *t);
void txb_free(txb *t);

/* version(key) == v (0: the key must be absent). */
void txb_cmp_version(txb *t, const char *key, int64_t v);
/* mod_revision(key) == mod. */
void txb_cmp_mod(txb *t, const char *key, int64_t mod);
/* Any compare (its key is copied; a value compare's bytes are not used). */
void txb_cmp(txb *t, kv_compare c);
/* Puts value (JSON, reference stolen) at key. */
void txb_put_json(txb *t, const char *key, json_t *value);
void txb_del(txb *t, const char *key, bool prefix);

/* Runs it: every compare holds -> the ops, else nothing. 0 with
 * *succeeded, or a store error. *revision: the txn's revision. */
int txb_commit(txb *t, store *st, bool *succeeded, int64_t *revision);

#endif
