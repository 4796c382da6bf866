/* catalog/reader.h — the node's catalog read policy: which reads its copy
 * (catalog/cache.h) answers and which go to the store.
 *
 * A read asks for one of three levels (reader_level):
 *  - strong: the store (linearizable; across the network with etcd);
 *  - bounded: the copy, once it holds this node's floor (below), waiting up
 *    to the staleness bound for it, and only while its staleness is within
 *    the bound; else CITRUS_ESTALE;
 *  - any: the copy at once, whatever its age.
 * Without a copy (the embedded store) every level reads the store.
 *
 * The floor is the highest revision this node acknowledged a write at or
 * answered a store read at: the copy answers only once it holds it, so a
 * node's reads see its own writes and never go back (one request read a
 * shard from the store and its ring from a copy one revision behind, and
 * saw an active shard with no tokens).
 *
 * Routing reads (the registry's, reader_routing_read) take the copy when it
 * holds the floor and is within the bound, and whatever its age while the
 * catalog is down (its latest check failed, found no quorum, or is over a
 * second old): the data plane keeps routing rather than wait on etcd
 * (docs/requirements.md, "Routing": catalog outage), and each read says when it did so (*cached),
 * so the answer can. Otherwise they read the store, which raises the floor.
 *
 * Threads: every call is safe from any thread. */
#ifndef CITRUS_CATALOG_READER_H
#define CITRUS_CATALOG_READER_H

#include <stdbool.h>
#include <stdint.h>

#include "catalog/cache.h"
#include "catalog/store.h"

typedef enum reader_level {
    READER_STRONG,
    READER_BOUNDED,
    READER_ANY,
} reader_level;

/* "strong", "bounded" or "any" into *out; CITRUS_EINVAL for anything
 * else. */
int reader_level_parse(const char *s, reader_level *out);
/* The level's name as reader_level_parse reads it (static storage). */
const char *reader_level_name(reader_level level);

typedef struct reader reader;

typedef struct reader_options {
    store *st;                /* borrowed; outlives the reader */
    cache *copy;              /* borrowed, outlives the reader; NULL: reads go to st */
    int64_t max_staleness_ms; /* the bound of bounded and routing reads */
} reader_options;

/* NULL on allocation failure. Free with reader_free (NULL is a no-op). */
reader *reader_new(const reader_options *opts);
void reader_free(reader *rd);

/* Where a reader_read answer came from, for the answer's headers. */
typedef struct reader_info {
    reader_level level;   /* what it meets: strong (the store), bounded (the copy within
                           * the bound, holding the floor) or any (the copy otherwise) */
    int64_t staleness_ms; /* 0 from the store; from the copy its staleness (-1: never
                           * confirmed) */
    int64_t bound_ms;     /* the staleness bound it was held to */
    bool loaded;          /* false: the copy has no snapshot yet (then CITRUS_ESTALE) */
} reader_info;

/* Reads at level (see above). 0 with *out filled (free with
 * kv_range_res_free) and *info saying where it came from; CITRUS_ESTALE
 * when a bounded read finds the copy over the bound or behind the floor,
 * or any copy read finds it not loaded (*info says which, and how stale);
 * else the store's error. A read from the store raises the floor. */
int reader_read(reader *rd, reader_level level, const kv_range_req *req, kv_range_res *out,
                reader_info *info);
/* Whether reader_read at level may wait: a strong read when the store is
 * remote (there is a copy), or a bounded read before the copy holds the
 * floor. */
bool reader_blocks(reader *rd, reader_level level);

/* Raises the floor to rev (never lowers it): this node acknowledged a
 * write at rev. */
void reader_note_write(reader *rd, int64_t rev);
/* reader_note_write with the reader as a void * (a registry commit hook,
 * reg_commit_fn). */
void reader_note_commit(void *rd, int64_t rev);

/* A routing read (the registry's reg_read_fn; rd is a reader): the copy
 * when it may answer (see above), else the store. *cached (may be NULL)
 * is set to whether the copy answered because the catalog is down. */
int reader_routing_read(void *rd, const kv_range_req *req, kv_range_res *out, bool *cached);
/* The revision reader_routing_read would now answer at without reading the
 * store (the copy's; without a copy, the store's newest commit), or -1 when
 * it would read the store (the registry's reg_revision_fn). *cached (may
 * be NULL) as for reader_routing_read. */
int64_t reader_routing_revision(void *rd, bool *cached);
/* Whether a routing read would go to the store now (a handler that would
 * wait on it moves to the work pool). False without a copy. */
bool reader_routing_blocks(reader *rd);

/* Whether the catalog is down, so routing reads come from the copy alone
 * (never without a copy). */
bool reader_catalog_down(reader *rd);
/* Whether the copy is known to be within the staleness bound (true
 * without a copy). */
bool reader_fresh(reader *rd);

#endif
