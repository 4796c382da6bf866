/* lib/kmap.h — a sorted map from catalog keys to values with their
 * mod_revision, for libcitrus's copy of the catalog. Single-threaded. */
#ifndef CITRUS_LIB_KMAP_H
#define CITRUS_LIB_KMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct kmap_entry {
    char *key; /* owned */
    int64_t mod_revision;
    void *val; /* owned: freed with the map's free_val */
} kmap_entry;

typedef struct kmap {
    kmap_entry *v; /* by key (strcmp) */
    size_t n, cap;
    void (*free_val)(void *val);
} kmap;

void kmap_init(kmap *m, void (*free_val)(void *val));
/* Frees every entry; the map stays usable. */
void kmap_clear(kmap *m);

/* Whether a change at mod_revision is newer than what the map holds for
 * key (events replayed from before a listing are skipped this way). */
int kmap_is_newer(const kmap *m, const char *key, int64_t mod_revision);

/* Sets key to val (taking it; the old value is freed). 0 or CITRUS_ENOMEM
 * (val then freed). */
int kmap_put(kmap *m, const char *key, int64_t mod_revision, void *val);
void kmap_del(kmap *m, const char *key);

#endif
