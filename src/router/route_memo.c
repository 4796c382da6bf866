/* router/route_memo.c — routes held between catalog changes (see
 * route_memo.h). A chained hash table of keys, each pointing at its shard's
 * entry; everything belongs to one revision and goes when it passes. */
#include "router/route_memo.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"

typedef struct memo_shard {
    struct memo_shard *next;
    shard s; /* id, state, dsn, replicas only */
} memo_shard;

typedef struct memo_key {
    struct memo_key *next; /* in its bucket */
    route_answer ra;
    memo_shard *sh;
    char key[]; /* NUL-terminated */
} memo_key;

struct route_memo {
    pthread_mutex_t mu;
    int64_t rev; /* of everything held; -1 before the first put */
    memo_key **buckets;
    size_t nbuckets, nkeys, max_keys;
    memo_shard *shards;
};

route_memo *route_memo_new(size_t max_keys)
{
    route_memo *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->max_keys = max_keys ? max_keys : 65536;
    m->nbuckets = 64;
    while (m->nbuckets < m->max_keys)
        m->nbuckets *= 2;
    m->buckets = calloc(m->nbuckets, sizeof(memo_key *));
    if (!m->buckets) {
        free(m);
        return NULL;
    }
    m->rev = -1;
    pthread_mutex_init(&m->mu, NULL);
    return m;
}

static void drop_keys(route_memo *m)
{
    for (size_t i = 0; m->nkeys && i < m->nbuckets; i++) {
        for (memo_key *k = m->buckets[i], *next; k; k = next) {
            next = k->next;
            free(k);
            m->nkeys--;
        }
        m->buckets[i] = NULL;
    }
}

static void drop_all(route_memo *m)
{
    drop_keys(m);
    for (memo_shard *s = m->shards, *next; s; s = next) {
        next = s->next;
        shard_clear(&s->s);
        free(s);
    }
    m->shards = NULL;
}

void route_memo_free(route_memo *m)
{
    if (!m)
        return;
    drop_all(m);
    free(m->buckets);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static memo_key **slot(route_memo *m, const char *key)
{
    uint64_t h = citrus_hash(CITRUS_HASH_XXH64, key, strlen(key));
    memo_key **p = &m->buckets[h & (m->nbuckets - 1)];
    while (*p && strcmp((*p)->key, key) != 0)
        p = &(*p)->next;
    return p;
}

/* The routing fields of src into dst (shard_init'ed); false when out of
 * memory (dst then cleared). */
static bool copy_routing(shard *dst, const shard *src)
{
    memcpy(dst->id, src->id, sizeof(dst->id));
    dst->state = src->state;
    bool ok = !src->dsn || (dst->dsn = strdup(src->dsn));
    if (ok && src->nreplicas) {
        ok = (dst->replicas = calloc(src->nreplicas, sizeof(char *))) != NULL;
        for (size_t i = 0; ok && i < src->nreplicas; i++, dst->nreplicas++)
            ok = (dst->replicas[i] = strdup(src->replicas[i])) != NULL;
    }
    if (!ok)
        shard_clear(dst);
    return ok;
}

bool route_memo_get(route_memo *m, int64_t rev, const char *key, route_answer *ra, shard *s)
{
    shard_init(s);
    bool hit = false;
    pthread_mutex_lock(&m->mu);
    if (m->rev == rev) {
        memo_key *k = *slot(m, key);
        if (k) {
            *ra = k->ra;
            hit = copy_routing(s, &k->sh->s);
        }
    }
    pthread_mutex_unlock(&m->mu);
    return hit;
}

/* The entry of s (made when missing, or remade when s differs, which a
 * read newer than rev can bring). NULL when out of memory. */
static memo_shard *shard_entry(route_memo *m, const shard *s)
{
    for (memo_shard *e = m->shards; e; e = e->next)
        if (strcmp(e->s.id, s->id) == 0 && e->s.state == s->state)
            return e;
    memo_shard *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    shard_init(&e->s);
    if (!copy_routing(&e->s, s)) {
        free(e);
        return NULL;
    }
    e->next = m->shards;
    m->shards = e;
    return e;
}

void route_memo_put(route_memo *m, int64_t rev, const char *key, const route_answer *ra,
                    const shard *s)
{
    pthread_mutex_lock(&m->mu);
    if (rev > m->rev) {
        drop_all(m);
        m->rev = rev;
    }
    if (rev == m->rev) {
        if (m->nkeys >= m->max_keys)
            drop_keys(m);
        memo_key **p = slot(m, key);
        memo_shard *sh = *p ? NULL : shard_entry(m, s);
        size_t len = strlen(key);
        memo_key *k = sh ? malloc(sizeof(*k) + len + 1) : NULL;
        if (k) {
            k->next = NULL;
            k->ra = *ra;
            k->sh = sh;
            memcpy(k->key, key, len + 1);
            *p = k;
            m->nkeys++;
        }
    }
    pthread_mutex_unlock(&m->mu);
}

size_t route_memo_size(route_memo *m)
{
    pthread_mutex_lock(&m->mu);
    size_t n = m->nkeys;
    pthread_mutex_unlock(&m->mu);
    return n;
}
