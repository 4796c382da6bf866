/* dbconn/stmt_cache.c — see stmt_cache.h.
 *
 * A flat array of cap entries, each with a 64-bit hash of its text and
 * types (XXH3): a lookup compares hashes in one pass and the full text only
 * on a hash match. Recency is a per-cache tick stamped on use; eviction
 * scans for the smallest. With caps in the hundreds both cost well under a
 * microsecond, less than the prepare they save. */
#include "dbconn/stmt_cache.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

typedef struct entry {
    uint64_t hash;
    uint64_t used; /* tick of the last use; 0 = free slot */
    char *sql;
    unsigned *types;
    size_t ntypes;
    stmt_ref ref;
} entry;

struct stmt_cache {
    entry *v;
    size_t cap, count;
    uint64_t tick, next_id;
    stmt_release_fn release;
};

stmt_cache *stmt_cache_new(size_t cap, stmt_release_fn release)
{
    if (cap == 0)
        return NULL;
    stmt_cache *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->v = calloc(cap, sizeof(*s->v));
    if (!s->v) {
        free(s);
        return NULL;
    }
    s->cap = cap;
    s->release = release;
    return s;
}

/* Empties a slot; the handle goes to the release function when release. */
static void slot_free(stmt_cache *s, entry *e, bool release)
{
    if (release && s->release && e->ref.handle)
        s->release(e->ref.handle);
    free(e->sql);
    free(e->types);
    memset(e, 0, sizeof(*e));
    s->count--;
}

void stmt_cache_clear(stmt_cache *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->cap; i++)
        if (s->v[i].used)
            slot_free(s, &s->v[i], true);
}

void stmt_cache_free(stmt_cache *s)
{
    if (!s)
        return;
    stmt_cache_clear(s);
    free(s->v);
    free(s);
}

static uint64_t key_hash(const char *sql, const unsigned *types, size_t n)
{
    uint64_t h = XXH3_64bits(sql, strlen(sql));
    if (n)
        h ^= XXH3_64bits_withSeed(types, n * sizeof(*types), n);
    return h;
}

static bool same(const entry *e, uint64_t h, const char *sql, const unsigned *types, size_t n)
{
    return e->used && e->hash == h && e->ntypes == n && strcmp(e->sql, sql) == 0 &&
           (n == 0 || memcmp(e->types, types, n * sizeof(*types)) == 0);
}

const stmt_ref *stmt_cache_find(stmt_cache *s, const char *sql, const unsigned *types, size_t n)
{
    uint64_t h = key_hash(sql, types, n);
    for (size_t i = 0; i < s->cap; i++) {
        entry *e = &s->v[i];
        if (same(e, h, sql, types, n)) {
            e->used = ++s->tick;
            return &e->ref;
        }
    }
    return NULL;
}

int stmt_cache_add(stmt_cache *s, const char *sql, const unsigned *types, size_t n, void *handle,
                   const stmt_ref **added, stmt_ref *evicted)
{
    memset(evicted, 0, sizeof(*evicted));
    char *copy = strdup(sql);
    unsigned *tcopy = n ? malloc(n * sizeof(*types)) : NULL;
    if (!copy || (n && !tcopy)) {
        free(copy);
        free(tcopy);
        return -1;
    }
    if (n)
        memcpy(tcopy, types, n * sizeof(*types));
    entry *slot = NULL;
    for (size_t i = 0; i < s->cap && !slot; i++)
        if (!s->v[i].used)
            slot = &s->v[i];
    if (!slot) { /* full: the least recently used goes, to the caller */
        slot = &s->v[0];
        for (size_t i = 1; i < s->cap; i++)
            if (s->v[i].used < slot->used)
                slot = &s->v[i];
        *evicted = slot->ref;
        slot_free(s, slot, false);
    }
    slot->hash = key_hash(sql, types, n);
    slot->used = ++s->tick;
    slot->sql = copy;
    slot->types = tcopy;
    slot->ntypes = n;
    slot->ref.handle = handle;
    snprintf(slot->ref.name, sizeof(slot->ref.name), "citrus_s%llu",
             (unsigned long long)++s->next_id);
    *added = &slot->ref;
    s->count++;
    return 0;
}

void stmt_cache_drop(stmt_cache *s, const char *name)
{
    for (size_t i = 0; i < s->cap; i++) {
        if (s->v[i].used && strcmp(s->v[i].ref.name, name) == 0) {
            slot_free(s, &s->v[i], true);
            return;
        }
    }
}

size_t stmt_cache_count(const stmt_cache *s)
{
    return s->count;
}

bool stmt_cache_full(const stmt_cache *s)
{
    return s->count == s->cap;
}
