/* shard/pg_stmts.c — see pg_stmts.h.
 *
 * A flat array of cap entries, each with a 64-bit hash of its text and
 * types (XXH3): a lookup compares hashes in one pass and the full text only
 * on a hash match. Recency is a per-cache tick stamped on use; eviction
 * scans for the smallest. With caps in the hundreds both cost well under a
 * microsecond, less than one server round trip saved. */
#include "shard/pg_stmts.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

typedef struct stmt {
    uint64_t hash;
    uint64_t used; /* tick of the last use; 0 = free slot */
    char *sql;
    unsigned *types;
    size_t ntypes;
    char name[PG_STMT_NAME];
} stmt;

struct pg_stmts {
    stmt *v;
    size_t cap, count;
    uint64_t tick, next_id;
};

pg_stmts *pg_stmts_new(size_t cap)
{
    if (cap == 0)
        return NULL;
    pg_stmts *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->v = calloc(cap, sizeof(*s->v));
    if (!s->v) {
        free(s);
        return NULL;
    }
    s->cap = cap;
    return s;
}

static void slot_free(stmt *e)
{
    free(e->sql);
    free(e->types);
    memset(e, 0, sizeof(*e));
}

void pg_stmts_clear(pg_stmts *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->cap; i++)
        if (s->v[i].used)
            slot_free(&s->v[i]);
    s->count = 0;
}

void pg_stmts_free(pg_stmts *s)
{
    if (!s)
        return;
    pg_stmts_clear(s);
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

static bool same(const stmt *e, uint64_t h, const char *sql, const unsigned *types, size_t n)
{
    return e->used && e->hash == h && e->ntypes == n && strcmp(e->sql, sql) == 0 &&
           (n == 0 || memcmp(e->types, types, n * sizeof(*types)) == 0);
}

const char *pg_stmts_find(pg_stmts *s, const char *sql, const unsigned *types, size_t n)
{
    uint64_t h = key_hash(sql, types, n);
    for (size_t i = 0; i < s->cap; i++) {
        stmt *e = &s->v[i];
        if (same(e, h, sql, types, n)) {
            e->used = ++s->tick;
            return e->name;
        }
    }
    return NULL;
}

int pg_stmts_add(pg_stmts *s, const char *sql, const unsigned *types, size_t n,
                 char name[PG_STMT_NAME], char evicted[PG_STMT_NAME])
{
    evicted[0] = '\0';
    char *copy = strdup(sql);
    unsigned *tcopy = n ? malloc(n * sizeof(*types)) : NULL;
    if (!copy || (n && !tcopy)) {
        free(copy);
        free(tcopy);
        return -1;
    }
    if (n)
        memcpy(tcopy, types, n * sizeof(*types));
    stmt *slot = NULL;
    for (size_t i = 0; i < s->cap && !slot; i++)
        if (!s->v[i].used)
            slot = &s->v[i];
    if (!slot) { /* full: the least recently used goes */
        slot = &s->v[0];
        for (size_t i = 1; i < s->cap; i++)
            if (s->v[i].used < slot->used)
                slot = &s->v[i];
        memcpy(evicted, slot->name, PG_STMT_NAME);
        slot_free(slot);
        s->count--;
    }
    slot->hash = key_hash(sql, types, n);
    slot->used = ++s->tick;
    slot->sql = copy;
    slot->types = tcopy;
    slot->ntypes = n;
    snprintf(slot->name, sizeof(slot->name), "citrus_s%llu", (unsigned long long)++s->next_id);
    memcpy(name, slot->name, PG_STMT_NAME);
    s->count++;
    return 0;
}

void pg_stmts_drop(pg_stmts *s, const char *name)
{
    for (size_t i = 0; i < s->cap; i++) {
        if (s->v[i].used && strcmp(s->v[i].name, name) == 0) {
            slot_free(&s->v[i]);
            s->count--;
            return;
        }
    }
}

size_t pg_stmts_count(const pg_stmts *s)
{
    return s->count;
}

bool pg_stmts_full(const pg_stmts *s)
{
    return s->count == s->cap;
}
