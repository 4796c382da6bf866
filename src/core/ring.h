/* core/ring.h — the consistent-hash ring (docs/requirements.md, "Routing";
 * algorithm and test vectors in docs/ring.md). Pure: no I/O, no locks (a built ring is
 * immutable and may be read from any number of threads).
 *
 * Tokens are 64-bit hashes. Shard s owns the tokens it was given (they are
 * stored, so clients fetch them rather than derive them); with V virtual
 * nodes per unit of weight, a new shard gets ring_vnodes_for_weight(V,
 * weight) tokens chosen by ring_choose_tokens among the candidates
 * hash("<s>#<i>") so as to keep the ring balanced. A key
 * belongs to the shard owning the first token >= hash(key), wrapping to the
 * smallest token past the largest. Token i of the sorted ring covers the
 * hashes in (token[i-1], token[i]] (token 0 covers the wrap-around range).
 * When two shards hold the same token value, the one whose id sorts first
 * (strcmp) owns it; the other's copy is ignored. */
#ifndef CITRUS_CORE_RING_H
#define CITRUS_CORE_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/hash.h"

typedef struct ring ring;

/* One shard's tokens, as the catalog stores them. */
typedef struct ring_owner {
    const char *shard_id;
    const uint64_t *tokens;
    size_t ntokens;
} ring_owner;

typedef struct ring_hit {
    const char *shard_id; /* borrowed from the ring */
    uint64_t hash;        /* of the key */
    uint64_t token;       /* the owning token */
    size_t index;         /* of that token in the sorted ring */
} ring_hit;

/* Most owners a ring takes (owner indexes are 16-bit, to keep the ring
 * small enough for the cache). */
#define RING_MAX_OWNERS 65535

/* Builds a ring (ids and tokens are copied). 0, CITRUS_ENOMEM,
 * CITRUS_EINVAL (an owner without an id, or ntokens > 0 with no tokens, or
 * more than 2^32 - 1 tokens in all) or CITRUS_ETOOMANY (n > RING_MAX_OWNERS).
 * n may be 0 (an empty ring). */
int ring_build(citrus_hash_fn fn, const ring_owner *owners, size_t n, ring **out);
void ring_free(ring *r);

citrus_hash_fn ring_hash_fn(const ring *r);
/* Tokens in the ring (after ties were resolved). */
size_t ring_size(const ring *r);
/* Bytes the ring occupies in memory (struct, token and owner arrays, ids). */
size_t ring_memory(const ring *r);
/* Token i of the sorted ring and its owner (i < ring_size; shard_id may be
 * NULL). */
uint64_t ring_token_at(const ring *r, size_t i, const char **shard_id);

/* The owner of key. CITRUS_ENOTFOUND when the ring is empty. */
int ring_lookup(const ring *r, const void *key, size_t len, ring_hit *out);
/* The owner of a hash. CITRUS_ENOTFOUND when the ring is empty. */
int ring_lookup_hash(const ring *r, uint64_t hash, ring_hit *out);

/* Virtual nodes for a shard of this weight: max(1, round(vnodes * weight)). */
size_t ring_vnodes_for_weight(size_t vnodes, double weight);

/* hash("<shard_id>#<i>") for i in [first, first + count), into out. 0, or
 * CITRUS_ENOMEM (only for a shard id longer than 200 bytes, which needs a
 * heap buffer), or CITRUS_EINVAL (a NULL shard_id). */
int ring_vnode_tokens(citrus_hash_fn fn, const char *shard_id, size_t first, size_t count,
                      uint64_t *out);

/* Candidates per token when ring_choose_tokens is given candidates = 0. */
#define RING_CANDIDATES_PER_TOKEN 8

/* Chooses count tokens for shard_id joining the ring `current` (or growing
 * in it) so that the ring stays balanced: they are picked one at a time
 * from the candidates hash("<shard_id>#<i>") for i in [first, first +
 * candidates) (ring_vnode_tokens), by the greedy rule of docs/ring.md
 * ("Choosing tokens"; details in ring.c): each token takes its piece of
 * hash space from the owner whose load (owned fraction / weight) is the
 * largest at that moment, the piece being as close as the candidates allow
 * to what the shard still needs per remaining token. Pure and
 * deterministic: the same ring (token set, owner ids and weights), id,
 * weight and counts give the same tokens in the same order, whatever order
 * the ring's owners were given in.
 *
 *   current    the ring as it stands, built from every owner's stored tokens
 *              (including shard_id's own current tokens, if any); NULL or
 *              empty for the first shard.
 *   weights    the weight of each owner of `current`, indexed like the
 *              owners array given to ring_build (as many entries); NULL:
 *              every owner weighs 1. The entry of an owner whose id is
 *              shard_id is ignored (`weight` counts), owners without tokens
 *              do not count, and a weight <= 0 (or NaN) makes that owner
 *              the first to give up space.
 *   fn         the ring's hash function (CITRUS_EINVAL if it differs from
 *              current's).
 *   weight     shard_id's weight: its target share is weight / (weight +
 *              the weights of the other owners holding tokens).
 *   first      the first candidate index: the number of tokens the shard
 *              keeps (its list is extended). Candidates equal to a token
 *              already in the ring are skipped, so overlapping the indexes
 *              of an earlier choice is harmless.
 *   count      tokens wanted; out receives them in the order chosen (each
 *              prefix is roughly a proportional share, so dropping tokens
 *              from the end sheds load about evenly).
 *   candidates how many to consider (>= count), or 0 for the default:
 *              max(RING_CANDIDATES_PER_TOKEN x count, ring_size(current)).
 *              Pass 0. Fewer candidates than the ring has tokens means
 *              they are spaced wider than its ranges, and long ranges then
 *              move in large chunks (see ring.c).
 *
 * 0; CITRUS_EINVAL (NULL shard_id, out NULL with count > 0, candidates <
 * count, first + candidates overflowing, a hash function other than
 * current's, or fewer than count candidates left once those already in the
 * ring are dropped); CITRUS_ENOMEM. The ring is not changed: build a new
 * one with the tokens added. Time: O(ring size + C + count x (C / owners +
 * log owners)) for C candidates; for 256 tokens, 30-40 ms joining 1024
 * shards of 256 tokens (C = 262,144) and under 1 ms joining 16. The
 * count x C / owners term dominates when few owners hold many tokens:
 * 4096 tokens joining a single shard of 4096 take about 0.5 s. */
int ring_choose_tokens(const ring *current, const double *weights, citrus_hash_fn fn,
                       const char *shard_id, double weight, size_t first, size_t count,
                       size_t candidates, uint64_t *out);

/* The fraction of the hash space (0..1) each shard owns, in the order of
 * owners given to ring_build; out has n entries. Owners are matched by id,
 * so any list (order, subset) works; an id the ring does not know gets 0. */
void ring_ownership(const ring *r, const ring_owner *owners, size_t n, double *out);

/* How many tokens each of the n shards ids[i] holds, into out[i] (0 for an
 * id the ring does not know): one pass over the ring, then ids matched by
 * id. */
void ring_token_counts(const ring *r, const char *const *ids, size_t n, size_t *out);

#endif
