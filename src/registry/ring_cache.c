/* registry/ring_cache.c — the shared ring per version (see ring_cache.h):
 * the current ring, and the older ones callers still hold, each with its
 * reference count. */
#include "registry/ring_cache.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct ring_ref {
    ring *rg;
    int64_t version;
    int refs;              /* guarded by ring_cache.mu */
    struct ring_ref *next; /* in ring_cache.retired */
} ring_ref;

struct ring_cache {
    pthread_mutex_t mu;
    ring_ref *cur;     /* the newest ring; guarded by mu */
    ring_ref *retired; /* older rings callers still hold; guarded by mu */
};

ring_cache *ring_cache_new(void)
{
    ring_cache *c = calloc(1, sizeof(*c));
    if (c)
        pthread_mutex_init(&c->mu, NULL);
    return c;
}

void ring_cache_free(ring_cache *c)
{
    if (!c)
        return;
    if (c->cur) {
        ring_free(c->cur->rg);
        free(c->cur);
    }
    while (c->retired) { /* only when a caller leaked a ring */
        ring_ref *n = c->retired->next;
        ring_free(c->retired->rg);
        free(c->retired);
        c->retired = n;
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Drops a reference; a ring no one holds any more is freed. */
static void ref_drop_locked(ring_cache *c, ring_ref *ref)
{
    if (!ref || --ref->refs > 0)
        return;
    for (ring_ref **p = &c->retired; *p; p = &(*p)->next)
        if (*p == ref) {
            *p = ref->next;
            break;
        }
    ring_free(ref->rg);
    free(ref);
}

const ring *ring_cache_hold(ring_cache *c, int64_t min_version, int64_t *version)
{
    const ring *rg = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->cur && c->cur->version >= min_version) {
        c->cur->refs++;
        rg = c->cur->rg;
        *version = c->cur->version;
    }
    pthread_mutex_unlock(&c->mu);
    return rg;
}

const ring *ring_cache_put(ring_cache *c, ring *rg, int64_t version, int64_t *have)
{
    ring_ref *ref = calloc(1, sizeof(*ref));
    if (!ref) {
        ring_free(rg);
        return NULL;
    }
    pthread_mutex_lock(&c->mu);
    if (c->cur && c->cur->version >= version) { /* another thread was first */
        ring_free(rg);
        free(ref);
        ref = c->cur;
        ref->refs++;
    } else {
        *ref = (ring_ref){.rg = rg, .version = version, .refs = 2}; /* the cache's, the caller's */
        ring_ref *old = c->cur;
        if (old) { /* callers may still hold it */
            old->next = c->retired;
            c->retired = old;
        }
        c->cur = ref;
        ref_drop_locked(c, old);
    }
    *have = ref->version;
    pthread_mutex_unlock(&c->mu);
    return ref->rg;
}

void ring_cache_release(ring_cache *c, const ring *rg)
{
    if (!rg)
        return;
    pthread_mutex_lock(&c->mu);
    ring_ref *ref = c->cur && c->cur->rg == rg ? c->cur : NULL;
    for (ring_ref *p = c->retired; !ref && p; p = p->next)
        if (p->rg == rg)
            ref = p;
    ref_drop_locked(c, ref);
    pthread_mutex_unlock(&c->mu);
}
