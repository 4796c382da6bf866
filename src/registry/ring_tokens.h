/* registry/ring_tokens.h — the ring as the catalog stores it: every shard's
 * token list (citrus/ring/tokens/<id>) and the ring version (the
 * mod_revision of citrus/ring/meta), and what the registry computes from
 * them: which token ranges a change moves, and where a new tenant goes.
 * No registry object, no I/O: the callers read and write the keys. */
#ifndef CITRUS_REGISTRY_RING_TOKENS_H
#define CITRUS_REGISTRY_RING_TOKENS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog/store.h"
#include "core/ring.h"
#include "core/shard.h"

/* Every owner's tokens, and the ring version (0 when there is no meta). */
typedef struct ring_tokens {
    ring_owner *v; /* shard ids and token lists malloc'd */
    size_t n;
    int64_t version;
} ring_tokens;

/* From a read of the prefix citrus/ring/ (the meta and every token list;
 * other keys are skipped). 0, CITRUS_ECORRUPT for an unreadable token list,
 * or CITRUS_ENOMEM; on error out holds nothing. */
int ring_tokens_from_range(const kv_range_res *res, ring_tokens *out);
void ring_tokens_free(ring_tokens *t);

/* The stored value of a token list: {"tokens":["<u64>",...]}; NULL when out
 * of memory. */
json_t *ring_tokens_json(const uint64_t *tokens, size_t n);

/* The token ranges whose owner differs between two rings (either may be
 * NULL: no ring), as [{start,end,from,to}] (at most 1000 listed; *n counts
 * all); NULL when out of memory. */
json_t *ring_tokens_diff(const ring *a, const ring *b, size_t *n);

/* The shard a new tenant goes to: the owner of the first token >= hash
 * whose shard (looked up in shards) is active, walking the ring. *shard_id
 * points into shards. CITRUS_EUNAVAILABLE when none is. */
int ring_tokens_pick_active(const ring *rg, uint64_t hash, const shard *shards, size_t nshards,
                            const char **shard_id, uint64_t *token);

#endif
