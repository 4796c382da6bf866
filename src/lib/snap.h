/* lib/snap.h — libcitrus's copy of the routing catalog: an immutable,
 * reference-counted snapshot (ring, shard records, tenant pins) that any
 * number of threads read, and the builder that applies catalog changes and
 * publishes a new snapshot after each batch (reusing the parts that did
 * not change).
 *
 * Keys and values are the server's (registry/registry.h): citrus/shards/<id>,
 * citrus/ring/meta, citrus/ring/tokens/<id>, citrus/tenants/<key>. The ring
 * is built with core/ring.c from the stored tokens and the meta's hash
 * function, as the server builds it, and the ring version is the meta's
 * mod_revision. */
#ifndef CITRUS_LIB_SNAP_H
#define CITRUS_LIB_SNAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/ring.h"
#include "core/shard.h"
#include "lib/kmap.h"

typedef struct snap_pin {
    char *key;
    char shard_id[SHARD_ID_MAX + 1];
    uint64_t token;
} snap_pin;

typedef struct snap_ring snap_ring;
typedef struct snap_shards snap_shards;
typedef struct snap_pins snap_pins;

typedef struct snap {
    atomic_int refs;
    int64_t revision;
    int64_t ring_version;
    snap_ring *ring;
    snap_shards *shards;
    snap_pins *pins;
} snap;

/* A new reference to s (returned). */
snap *snap_ref(snap *s);
/* Drops a reference; the last one frees. NULL is a no-op. */
void snap_unref(snap *s);

/* The ring (never NULL; may be empty). */
const ring *snap_ring_of(const snap *s);
/* The pin of key, or NULL. */
const snap_pin *snap_pin_find(const snap *s, const char *key);
/* The record of shard id, or NULL. */
const shard *snap_shard(const snap *s, const char *id);

/* The mutable copy the watch thread applies changes to. */
typedef struct snap_builder {
    kmap ring;   /* citrus/ring/...: raw values */
    kmap shards; /* citrus/shards/<id>: raw values */
    kmap pins;   /* citrus/tenants/<key>: decoded (snap_pin without key) */
    bool ring_dirty, shards_dirty, pins_dirty;
    snap *last; /* the last one published */
} snap_builder;

void snap_builder_init(snap_builder *b);
void snap_builder_clear(snap_builder *b);
/* Forgets every key (before loading anew); the next publish rebuilds all. */
void snap_builder_reset(snap_builder *b);

/* Applies a put (value v/len) or a delete of key at mod_revision; keys
 * outside the routing prefixes, and changes not newer than what the copy
 * holds, are ignored. 0, CITRUS_ECORRUPT (an undecodable pin: skipped) or
 * CITRUS_ENOMEM. */
int snap_builder_apply(snap_builder *b, const char *key, const void *v, size_t len,
                       int64_t mod_revision, bool deleted);

/* A snapshot of the copy at revision (a new reference, the caller's), or
 * NULL out of memory. */
snap *snap_builder_publish(snap_builder *b, int64_t revision);

#endif
