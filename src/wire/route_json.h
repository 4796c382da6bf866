/* wire/route_json.h — the catalog values that routing reads, decoded
 * (pure: no I/O): the ring meta, a shard's token list and a tenant pin
 * (layout in wire/catalog_keys.h). Shared by the registry and libcitrus, which
 * keeps its own copy of these keys. */
#ifndef CITRUS_WIRE_ROUTE_JSON_H
#define CITRUS_WIRE_ROUTE_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "core/hash.h"
#include "core/shard.h"

#define TENANT_KEY_MAX 256
#define TENANT_ID_MAX 128

/* A tenant pin (citrus/tenants/<key>). */
typedef struct tenant_pin {
    char key[TENANT_KEY_MAX + 1];
    char shard_id[SHARD_ID_MAX + 1];
    uint64_t hash, token;
    int64_t pinned_ms;
    char business_type[TENANT_ID_MAX + 1]; /* "" when not registered through the Citrus API */
    int64_t mod_revision;
} tenant_pin;

/* citrus/ring/meta: {"hash","vnodes"}. 0 or CITRUS_ECORRUPT. */
int route_json_meta(const void *v, size_t len, citrus_hash_fn *hash, size_t *vnodes);

/* citrus/ring/tokens/<id>: {"tokens":["<u64>",...]} -> *out (malloc'd,
 * NULL when empty; caller frees) and *n. 0, CITRUS_ECORRUPT or
 * CITRUS_ENOMEM. */
int route_json_tokens(const void *v, size_t len, uint64_t **out, size_t *n);

/* citrus/tenants/<key>: fills shard_id, hash, token, pinned_ms and
 * business_type of *out (the rest is left as it is). 0 or
 * CITRUS_ECORRUPT (no shard_id). */
int route_json_pin(const void *v, size_t len, tenant_pin *out);

#endif
