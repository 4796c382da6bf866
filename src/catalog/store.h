/* catalog/store.h — the catalog store interface: an etcd-v3-shaped KV.
 *
 * One global revision counts every committed change. Each key carries
 * create_revision (revision of the put that created it), mod_revision (last
 * change) and version (number of puts since creation; 0 = absent). A txn
 * that writes anything commits at exactly one new revision, whatever number
 * of keys it touches; a txn that writes nothing does not move the revision.
 *
 * Implementations: store_sqlite.c (embedded) and store_etcd.c (an etcd
 * cluster). Each one fills a store_ops table; callers use only the store_*
 * functions below. Every implementation is thread-safe and passes the one
 * conformance suite (tests/unit/support_catalog_conformance.c), which
 * test_store_sqlite.c and test_store_etcd.c both run.
 *
 * The entries, requests and results it moves are core/kv.h's.
 *
 * Ownership: request structs and the strings they point to stay owned by the
 * caller and are only read during the call. Result structs are filled by the
 * callee and released by the caller with the matching *_free function. */
#ifndef CITRUS_CATALOG_STORE_H
#define CITRUS_CATALOG_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/kv.h"

/* A member of the replicated store, as the cluster view saw it. */
#define STORE_MAX_MEMBERS 16
typedef struct store_member {
    char name[64]; /* etcd's member name (its ID when unnamed); "embedded" */
    char url[128]; /* its first client URL; "" for the embedded store */
    bool healthy;  /* answered for itself at the last look */
    bool leader;
} store_member;

typedef struct store_status {
    int64_t revision;
    int64_t compact_revision; /* oldest revision a watch may start from */
    bool writable;
    const char *backend; /* static string: "embedded", "etcd" */
    /* The replicated store's view (the embedded store is one member that
     * leads itself): the leader's member name ("" when none is known), how
     * many members there are and how many answered, and whether there is a
     * leader and a majority answered. */
    char leader[64];
    int members;
    int healthy_members;
    bool quorum;
    /* The first min(members, STORE_MAX_MEMBERS) members, in the order the
     * store lists them. */
    store_member member[STORE_MAX_MEMBERS];
    /* The quota (docs/security.md, "Bounded answers and the store quota"):
     * nospace is its alarm (writes that grow the store are CITRUS_ENOSPACE
     * until a compact or defrag clears it); the database's size, the part
     * of it in use, and the quota (0: unknown or none). */
    bool nospace;
    int64_t db_size, db_size_in_use, quota_bytes;
} store_status;

/* Called with events in revision order, with no gap, starting at the
 * watch's from_rev; all events of one revision come in one call. Runs on a
 * store-owned thread, never concurrently for the same watch. It must not
 * block, and must not call store_watch_close on its own watch. err is 0, or
 * CITRUS_ECOMPACTED if the watcher fell behind compaction, or CITRUS_ECLOSED
 * when the store is closing; after a non-zero err the watch delivers nothing
 * more. The events and their memory belong to the store: copy what you keep. */
typedef void (*store_watch_cb)(void *ctx, const kv_event *events, size_t n, int err);

typedef struct store store;
typedef struct store_watch store_watch;

/* Completion of store_txn_async: rc as store_txn would return it. */
typedef void (*store_txn_cb)(void *ctx, int rc);

typedef struct store_ops {
    int (*range)(store *s, const kv_range_req *req, kv_range_res *out);
    int (*txn)(store *s, const kv_txn *txn, kv_txn_res *out);
    /* Optional; without it store_txn_async runs txn inline. */
    void (*txn_async)(store *s, const kv_txn *txn, kv_txn_res *out, store_txn_cb cb, void *ctx);
    int (*watch_open)(store *s, const char *prefix, int64_t from_rev, store_watch_cb cb, void *ctx,
                      store_watch **out, int64_t *compact_rev);
    void (*watch_close)(store_watch *w);
    int64_t (*watch_progress)(store_watch *w);
    /* Optional: the revision of the newest commit, from memory. */
    int64_t (*revision)(store *s);
    int (*lease_grant)(store *s, int64_t ttl, int64_t *id, int64_t *granted_ttl);
    int (*lease_keepalive)(store *s, int64_t id, int64_t *ttl);
    int (*lease_revoke)(store *s, int64_t id);
    int (*status)(store *s, store_status *out);
    /* max_bytes as store_snapshot_bounded's (0: none). */
    int (*snapshot)(store *s, size_t max_bytes, kv_snapshot *out);
    /* Optional; without them store_compact / store_defrag are
     * CITRUS_EUNAVAILABLE. */
    int (*compact)(store *s, int64_t rev);
    int (*defrag)(store *s);
    void (*close)(store *s);
} store_ops;

/* Every implementation's handle begins with this. */
struct store {
    const store_ops *ops;
};

/* Reads one key or a prefix (see kv_range_req). Never fails for absence:
 * an absent key gives count 0. */
int store_range(store *s, const kv_range_req *req, kv_range_res *out);

/* Atomic compare-then-ops. Errors (CITRUS_ENOLEASE, CITRUS_EBADKEY,
 * CITRUS_EIO, ...) mean nothing was applied. */
int store_txn(store *s, const kv_txn *txn, kv_txn_res *out);

/* store_txn without waiting: cb(ctx, rc) runs exactly once when the outcome
 * is known, on a store thread, or on the caller's thread before this
 * returns (validation errors, or a backend without async support). txn,
 * everything it points to, and out must stay valid until cb has run. cb
 * must not block. Lets an HTTP handler park its connection during the
 * group commit instead of holding a worker thread. */
void store_txn_async(store *s, const kv_txn *txn, kv_txn_res *out, store_txn_cb cb, void *ctx);

/* A single-key write with an optional compare on the key's mod_revision,
 * as a txn: "if mod_revision(key) == cas then op else get key". */
typedef struct store_cas_txn {
    kv_compare cmp;
    kv_op op;
    kv_op get;
    kv_txn txn;
} store_cas_txn;

/* Builds c from op (copied; its strings are borrowed) and cas (< 0: no
 * compare). c must not move afterwards: c->txn points into it. */
void store_cas_txn_init(store_cas_txn *c, const kv_op *op, int64_t cas);
/* Interprets the outcome: rc when rc < 0; CITRUS_ECONFLICT with *cur_mod
 * set (0 when absent) when the compare failed; else 0. */
int store_cas_txn_outcome(const kv_txn_res *res, int rc, int64_t *cur_mod);

/* Put with an optional compare on the key's mod_revision: cas < 0 means no
 * compare, cas == 0 means "must not exist". On CITRUS_ECONFLICT, *cur_mod is
 * the key's current mod_revision (0 if absent). On success, *out has the
 * key's new revisions (out->key not filled). */
int store_put(store *s, const char *key, const unsigned char *value, size_t len, int64_t lease,
              int64_t cas, kv_op_result *out, int64_t *revision, int64_t *cur_mod);

/* Deletes a key, or every key under a prefix, with an optional compare on
 * the key's mod_revision (single key only; cas < 0: none). */
int store_delete(store *s, const char *key, bool prefix, int64_t cas, int64_t *deleted,
                 int64_t *revision, int64_t *cur_mod);

/* Watches every key starting with prefix ("" = all), from revision from_rev
 * (<= 0: from the next revision). CITRUS_ECOMPACTED when from_rev is older
 * than the kept history; *compact_rev then holds the oldest revision that
 * can still be watched. */
int store_watch_open(store *s, const char *prefix, int64_t from_rev, store_watch_cb cb, void *ctx,
                     store_watch **out, int64_t *compact_rev);
/* Stops a watch; when it returns, the callback is not running and will not
 * run again. NULL is a no-op. */
void store_watch_close(store *s, store_watch *w);

/* The revision through which every matching event of w has been passed to
 * its callback (from_rev - 1 before any). Lets a poller that saw no event
 * move its next from_rev forward safely. */
int64_t store_watch_progress(store *s, store_watch *w);

/* Leases: TTL in seconds (>= 1). Expiry (no keepalive for ttl seconds)
 * deletes every attached key in one revision; so does revoke. */
int store_lease_grant(store *s, int64_t ttl, int64_t *id, int64_t *granted_ttl);
int store_lease_keepalive(store *s, int64_t id, int64_t *ttl);
int store_lease_revoke(store *s, int64_t id);

int store_status_get(store *s, store_status *out);
/* The revision of the newest commit a read would now see, without a round
 * trip (every write this node was told committed is at or below it); -1
 * when the backend cannot tell from memory (etcd). */
int64_t store_revision(store *s);
int store_snapshot(store *s, kv_snapshot *out);
/* store_snapshot, but CITRUS_ERESPTOOBIG (nothing kept) as soon as the
 * items' kv_entry_wire_size passes max_bytes (0: no bound), so a big
 * catalog is never read into memory whole to be refused afterwards. */
int store_snapshot_bounded(store *s, size_t max_bytes, kv_snapshot *out);
/* Drops the change history older than rev (<= 0: the current revision):
 * watches from before it get CITRUS_ECOMPACTED. CITRUS_ECOMPACTED when rev
 * is already compacted, CITRUS_EINVAL when it is in the future. Clears the
 * NOSPACE alarm when the store is back under its quota. */
int store_compact(store *s, int64_t rev);
/* Gives the space that deletes and compaction freed back to the file
 * system (SQLite VACUUM, etcd defragment of every member); clears the
 * NOSPACE alarm when the store is back under its quota. Blocks writes
 * while it runs. */
int store_defrag(store *s);
/* Closes the store and frees it. NULL is a no-op. */
void store_close(store *s);

/* "b" for prefix "a" etc: the smallest string greater than every string that
 * starts with prefix, written to buf (size >= strlen(prefix)+1). Returns false
 * when there is none (prefix empty or all bytes 0xff): the range is open. */
bool store_prefix_end(const char *prefix, char *buf);

#endif
