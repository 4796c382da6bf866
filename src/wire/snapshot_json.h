/* wire/snapshot_json.h — JSON shapes of catalog entries, leases and snapshots.
 *
 * An entry is {"key","value"(base64),"create_revision","mod_revision",
 * "version","lease"}; a lease is {"id","ttl","remaining"}; a snapshot, as
 * GET /v1/snapshot answers, is {"revision","compact_revision","items":[entry],
 * "leases":[lease]}. Backup files (snapshot_file.h) store the same shapes.
 *
 * Decoders only check shapes and types (and that values decode); the catalog
 * invariants are snapshot_file_check's job. With strict set, a member that
 * the shape does not name is an error; without it, it is ignored (servers
 * may add fields). On failure they return CITRUS_EBADJSON (or CITRUS_ENOMEM)
 * with a reason in errbuf and leave nothing allocated in *out. */
#ifndef CITRUS_WIRE_SNAPSHOT_JSON_H
#define CITRUS_WIRE_SNAPSHOT_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/kv.h"

/* Fills *out (owned by the caller: kv_entry_clear) from j. */
int snapshot_json_entry_decode(const json_t *j, bool strict, kv_entry *out, char *errbuf,
                               size_t errlen);
/* A new JSON object for e (new reference), or NULL on allocation failure or
 * when e->key is not valid UTF-8. */
json_t *snapshot_json_entry_encode(const kv_entry *e);

int snapshot_json_lease_decode(const json_t *j, bool strict, kv_lease_info *out, char *errbuf,
                               size_t errlen);
/* A new JSON object for l (new reference), or NULL on allocation failure. */
json_t *snapshot_json_lease_encode(const kv_lease_info *l);

/* Fills *out (owned by the caller: kv_snapshot_free) from a GET /v1/snapshot
 * answer. Not strict. A missing "leases" array means no leases. */
int snapshot_json_decode(const json_t *j, kv_snapshot *out, char *errbuf, size_t errlen);

#endif
