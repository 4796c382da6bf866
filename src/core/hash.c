/* core/hash.c — the ring's 64-bit key hashes (see hash.h, docs/ring.md).
 *
 * Thin wrappers over libmurmurhash and libxxhash, so every part of Citrus
 * (and every client following docs/ring.md) hashes keys the same way. */
#include "core/hash.h"

#include <limits.h>
#include <string.h>

#include <murmurhash.h>
#include <xxhash.h>

#include "citrus/errors.h"

/* MurmurHash3 x64_128, seed 0: the first output word (h1). lmmh_x64_128
 * takes an unsigned length: an input over 4 GiB (never a key, which is at
 * most a few KiB) would be hashed as its first UINT_MAX bytes. */
static uint64_t murmur3(const void *data, size_t len)
{
    uint64_t out[2];
    lmmh_x64_128(data, len > UINT_MAX ? UINT_MAX : (unsigned)len, 0, out);
    return out[0];
}

uint64_t citrus_hash(citrus_hash_fn fn, const void *data, size_t len)
{
    if (fn == CITRUS_HASH_XXH64)
        return XXH64(data, len, 0);
    return murmur3(data, len);
}

const char *citrus_hash_name(citrus_hash_fn fn)
{
    return fn == CITRUS_HASH_XXH64 ? "xxhash64" : "murmur3";
}

int citrus_hash_parse(const char *name, citrus_hash_fn *out)
{
    if (!name)
        return CITRUS_EINVAL;
    if (strcmp(name, "murmur3") == 0) {
        *out = CITRUS_HASH_MURMUR3;
        return 0;
    }
    if (strcmp(name, "xxhash64") == 0 || strcmp(name, "xxhash") == 0 ||
        strcmp(name, "xxh64") == 0) {
        *out = CITRUS_HASH_XXH64;
        return 0;
    }
    return CITRUS_EINVAL;
}
