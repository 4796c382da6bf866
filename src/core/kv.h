/* core/kv.h — the catalog's data: entries, range and txn requests and
 * their results, events, leases and snapshots (pure values; the store
 * interface that moves them is catalog/store.h, their JSON wire/kvjson.h).
 *
 * Ownership: request structs and the strings they point to stay owned by the
 * caller. Result structs are filled by their producer and released by the
 * caller with the matching *_free / *_clear function below. */
#ifndef CITRUS_CORE_KV_H
#define CITRUS_CORE_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kv_entry {
    char *key;            /* NUL-terminated, owned */
    unsigned char *value; /* owned; NULL when value_len == 0 or keys_only */
    size_t value_len;
    int64_t create_revision;
    int64_t mod_revision;
    int64_t version;
    int64_t lease; /* 0 = none */
} kv_entry;

void kv_entry_clear(kv_entry *e);
/* A deep copy of src into dst (its value too when with_value): 0, or
 * CITRUS_ENOMEM with dst cleared. */
int kv_entry_copy(kv_entry *dst, const kv_entry *src, bool with_value);

/* What one item costs in a JSON answer, a bound on its encoded size: the key
 * (escaped), the value in base64 (when with_value) and the revision fields. */
size_t kv_entry_wire_size(size_t key_len, size_t value_len, bool with_value);

typedef struct kv_range_req {
    const char *key; /* the key, or the prefix when prefix is set ("" = all) */
    bool prefix;
    const char *after; /* with prefix: only keys strictly greater; NULL = none */
    size_t limit;      /* with prefix: at most this many items; 0 = no limit */
    bool keys_only;    /* items carry no value */
    bool count_only;   /* no items: count says how many keys match (limit ignored) */
    /* with prefix: stop (more = true) before the item whose kv_entry_wire_size
     * would take the answer past this many bytes; the first item always
     * comes, so a reader continuing with after= always moves on. 0 = none. */
    size_t max_bytes;
} kv_range_req;

typedef struct kv_range_res {
    int64_t revision; /* store revision the read was served at */
    kv_entry *items;  /* sorted by key (bytewise) */
    size_t count;
    bool more; /* limit cut the list short */
} kv_range_res;

void kv_range_res_free(kv_range_res *r);

typedef enum {
    KV_CMP_VALUE,
    KV_CMP_MOD,
    KV_CMP_CREATE,
    KV_CMP_VERSION,
    KV_CMP_LEASE
} kv_cmp_target;
typedef enum { KV_CMP_EQ, KV_CMP_NE, KV_CMP_LT, KV_CMP_GT } kv_cmp_op;

/* A comparison on one key. An absent key has value "" (length 0) and every
 * revision/version/lease field 0, so "exists" is version > 0 and "must not
 * exist" is version == 0 (or mod_revision == 0). */
typedef struct kv_compare {
    const char *key;
    kv_cmp_target target;
    kv_cmp_op op;
    int64_t number;             /* for every target but VALUE */
    const unsigned char *value; /* for VALUE, bytewise comparison */
    size_t value_len;
} kv_compare;

typedef enum { KV_OP_PUT, KV_OP_DELETE, KV_OP_GET } kv_op_type;

typedef struct kv_op {
    kv_op_type type;
    const char *key;
    bool prefix;                /* DELETE and GET: key is a prefix */
    const unsigned char *value; /* PUT */
    size_t value_len;           /* PUT */
    int64_t lease;              /* PUT: 0 = none; must exist (CITRUS_ENOLEASE) */
    const char *after;          /* GET with prefix, as kv_range_req */
    size_t limit;               /* GET with prefix, as kv_range_req */
    bool keys_only;             /* GET */
} kv_op;

typedef struct kv_op_result {
    kv_op_type type;
    /* PUT: the key's state after the put (value not filled in). */
    int64_t create_revision, mod_revision, version;
    /* DELETE: how many keys were deleted. */
    int64_t deleted;
    /* GET: the items, as seen inside the txn before later ops of it. */
    kv_range_res range;
} kv_op_result;

typedef struct kv_txn {
    const kv_compare *compares;
    size_t ncompares;
    const kv_op *success; /* run when every compare holds */
    size_t nsuccess;
    const kv_op *failure; /* run otherwise */
    size_t nfailure;
    /* The gets' items together (kv_entry_wire_size) may not pass this many
     * bytes: past it the txn fails with CITRUS_ERESPTOOBIG and nothing of it
     * is applied. 0 = no bound. */
    size_t max_get_bytes;
} kv_txn;

typedef struct kv_txn_res {
    bool succeeded;
    int64_t revision;      /* the txn's revision if it wrote, else the store's */
    kv_op_result *results; /* one per op of the branch that ran, in order */
    size_t count;
} kv_txn_res;

void kv_txn_res_free(kv_txn_res *r);

typedef enum { KV_EVENT_PUT, KV_EVENT_DELETE } kv_event_type;

/* A change. For DELETE, kv.mod_revision is the revision of the delete,
 * version/create_revision are 0 and there is no value. */
typedef struct kv_event {
    kv_event_type type;
    kv_entry kv;
} kv_event;

typedef struct kv_lease_info {
    int64_t id;
    int64_t ttl;       /* granted TTL, seconds */
    int64_t remaining; /* seconds left before expiry */
} kv_lease_info;

/* A consistent copy of the whole store at one revision. */
typedef struct kv_snapshot {
    int64_t revision;
    int64_t compact_revision;
    kv_entry *items; /* sorted by key */
    size_t count;
    kv_lease_info *leases;
    size_t nleases;
} kv_snapshot;

void kv_snapshot_free(kv_snapshot *s);

#endif
