/* wire/kvjson.h — the JSON of the catalog's KV values (core/kv.h): what the
 * KV, watch and snapshot handlers answer, what the CLI, backup files and
 * libcitrus read back. One codec, so the two sides cannot drift apart.
 *
 * Shapes (members in this order when encoded):
 *   entry     {"key","value"(base64; absent without the value),
 *              "create_revision","mod_revision","version","lease"}
 *   event     an entry (the value for a put only) then "type":"put"|"delete"
 *   lease     {"id","ttl","remaining"}
 *   range     {"revision","items":[entry],"more"}         GET /v1/kv/..?prefix
 *   watch     {"revision","events":[event]}               GET /v1/watch long poll
 *   snapshot  {"revision","compact_revision","items":[entry],"leases":[lease]}
 *             GET /v1/snapshot; a backup file (cli/snapshot_file.h) holds the
 *             same entries and leases, one per line.
 *
 * Encoders return a new reference, or NULL on allocation failure or when a
 * key is not valid UTF-8 (JSON cannot hold it).
 *
 * Decoders only check shapes and types (and that values decode); the
 * catalog invariants are the caller's (snapshot_file_check). With strict
 * set, a member the shape does not name is an error and every member is
 * required; without it, unknown members are ignored (servers may add
 * fields) and "lease" of an entry and "remaining" of a lease may be absent
 * (0, and the ttl). Answers (range, watch, snapshot) are read without
 * strict. On failure they return CITRUS_EBADJSON (or CITRUS_ENOMEM) with a
 * reason in e and leave *out empty (zeroed). What they fill is the
 * caller's, freed with the matching core/kv.h function. */
#ifndef CITRUS_WIRE_KVJSON_H
#define CITRUS_WIRE_KVJSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/errdetail.h"
#include "core/kv.h"

/* ---- encoders ---- */

json_t *kvjson_entry_encode(const kv_entry *e, bool with_value);
json_t *kvjson_event_encode(const kv_event *ev);
json_t *kvjson_lease_encode(const kv_lease_info *l);
/* The items array of a range (or of a txn's get). */
json_t *kvjson_items_encode(const kv_range_res *r, bool with_value);
json_t *kvjson_range_encode(const kv_range_res *r, bool with_value);
json_t *kvjson_snapshot_encode(const kv_snapshot *s);

/* The same range and snapshot answers as compact text with a final
 * newline, written straight into one buffer sized up front from
 * kv_entry_wire_size: no tree of the whole answer, no second copy. Each
 * item's value is freed once written (the result keeps its keys and
 * count), so a big answer is in memory about once. NULL on allocation
 * failure or a key that is not UTF-8; *len gets the length. Caller frees. */
char *kvjson_range_dump(kv_range_res *r, bool with_value, size_t *len);
char *kvjson_snapshot_dump(kv_snapshot *s, size_t *len);

/* ---- decoders ---- */

/* with_value: whether "value" belongs to the shape (false for keys_only
 * items and delete events: the entry then has no value, and strict refuses
 * a "value"). kv_entry_clear frees *out. */
int kvjson_entry_decode(const json_t *j, bool strict, bool with_value, kv_entry *out, errdetail *e);
/* Not strict (events come in answers only). kv_entry_clear(&out->kv) frees
 * *out. */
int kvjson_event_decode(const json_t *j, kv_event *out, errdetail *e);
int kvjson_lease_decode(const json_t *j, bool strict, kv_lease_info *out, errdetail *e);
/* A missing "more" means false. kv_range_res_free frees *out. */
int kvjson_range_decode(const json_t *j, bool with_value, kv_range_res *out, errdetail *e);

/* A long-poll answer: every change under the prefix through revision. */
typedef struct kvjson_watch {
    int64_t revision;
    kv_event *events;
    size_t count;
} kvjson_watch;

/* kvjson_watch_free frees *out. */
int kvjson_watch_decode(const json_t *j, kvjson_watch *out, errdetail *e);
void kvjson_watch_free(kvjson_watch *w);

/* A missing "leases" array means no leases, a missing "compact_revision" 0.
 * kv_snapshot_free frees *out. */
int kvjson_snapshot_decode(const json_t *j, kv_snapshot *out, errdetail *e);

#endif
