/* lib/kmap.c — a sorted array map (see kmap.h). */
#include "lib/kmap.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"

void kmap_init(kmap *m, void (*free_val)(void *val))
{
    memset(m, 0, sizeof(*m));
    m->free_val = free_val;
}

void kmap_clear(kmap *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->v[i].key);
        m->free_val(m->v[i].val);
    }
    free(m->v);
    m->v = NULL;
    m->n = m->cap = 0;
}

/* The index of key, or where it would go. */
static size_t find(const kmap *m, const char *key, bool *found)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(m->v[mid].key, key);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static kmap_entry *kmap_find(const kmap *m, const char *key)
{
    bool found;
    size_t i = find(m, key, &found);
    return found ? &m->v[i] : NULL;
}

int kmap_is_newer(const kmap *m, const char *key, int64_t mod_revision)
{
    const kmap_entry *e = kmap_find(m, key);
    return !e || mod_revision > e->mod_revision;
}

int kmap_put(kmap *m, const char *key, int64_t mod_revision, void *val)
{
    bool found;
    size_t i = find(m, key, &found);
    if (found) {
        m->free_val(m->v[i].val);
        m->v[i].val = val;
        m->v[i].mod_revision = mod_revision;
        return 0;
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        kmap_entry *v = realloc(m->v, cap * sizeof(*v));
        if (!v) {
            m->free_val(val);
            return CITRUS_ENOMEM;
        }
        m->v = v;
        m->cap = cap;
    }
    char *k = strdup(key);
    if (!k) {
        m->free_val(val);
        return CITRUS_ENOMEM;
    }
    memmove(&m->v[i + 1], &m->v[i], (m->n - i) * sizeof(*m->v));
    m->v[i] = (kmap_entry){.key = k, .mod_revision = mod_revision, .val = val};
    m->n++;
    return 0;
}

void kmap_del(kmap *m, const char *key)
{
    bool found;
    size_t i = find(m, key, &found);
    if (!found)
        return;
    free(m->v[i].key);
    m->free_val(m->v[i].val);
    memmove(&m->v[i], &m->v[i + 1], (m->n - i - 1) * sizeof(*m->v));
    m->n--;
}
