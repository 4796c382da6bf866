/* shard/route_json.h — the catalog values that routing reads, decoded
 * (pure: no I/O): the ring meta, a shard's token list and a tenant pin
 * (layout in shard/registry.h). Shared by the registry and libcitrus, which
 * keeps its own copy of these keys. */
#ifndef CITRUS_SHARD_ROUTE_JSON_H
#define CITRUS_SHARD_ROUTE_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "core/hash.h"

struct tenant_pin;

/* citrus/ring/meta: {"hash","vnodes"}. 0 or CITRUS_ECORRUPT. */
int route_json_meta(const void *v, size_t len, citrus_hash_fn *hash, size_t *vnodes);

/* citrus/ring/tokens/<id>: {"tokens":["<u64>",...]} -> *out (malloc'd,
 * NULL when empty; caller frees) and *n. 0, CITRUS_ECORRUPT or
 * CITRUS_ENOMEM. */
int route_json_tokens(const void *v, size_t len, uint64_t **out, size_t *n);

/* citrus/tenants/<key>: fills shard_id, hash, token, pinned_ms and
 * business_type of *out (the rest is left as it is). 0 or
 * CITRUS_ECORRUPT (no shard_id). */
int route_json_pin(const void *v, size_t len, struct tenant_pin *out);

#endif
