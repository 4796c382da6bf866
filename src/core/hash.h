/* core/hash.h — the 64-bit key hashes of the ring (docs/ring.md).
 *
 * murmur3: MurmurHash3 x64_128 with seed 0 (libmurmurhash's lmmh_x64_128),
 * the first of its two 64-bit output words. xxhash64: XXH64 with seed 0
 * (libxxhash). Both are pure functions of the bytes. */
#ifndef CITRUS_CORE_HASH_H
#define CITRUS_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

typedef enum { CITRUS_HASH_MURMUR3 = 0, CITRUS_HASH_XXH64 = 1 } citrus_hash_fn;

uint64_t citrus_hash(citrus_hash_fn fn, const void *data, size_t len);

/* "murmur3" or "xxhash64". */
const char *citrus_hash_name(citrus_hash_fn fn);

/* Accepts "murmur3", "xxhash64" (also "xxhash", "xxh64"). 0, or
 * CITRUS_EINVAL for any other name. */
int citrus_hash_parse(const char *name, citrus_hash_fn *out);

#endif
