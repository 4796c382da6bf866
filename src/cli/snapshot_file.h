/* cli/snapshot_file.h — the backup file format (citrus backup / restore).
 *
 * A backup is UTF-8 text, one JSON object per '\n'-terminated line:
 *
 *   {"format":"citrus-backup","version":1,"revision":R,"compact_revision":C,
 *    "count":N,"leases":M,"created":"2024-05-01T12:00:00Z"}
 *   {"lease":{"id":..,"ttl":..,"remaining":..}}               M lines
 *   {"key":..,"value":base64,"create_revision":..,"mod_revision":..,
 *    "version":..,"lease":..}                                  N lines, by key
 *   {"sha256":"<64 lowercase hex digits>"}
 *
 * The trailer's digest covers every byte before the trailer line, so a file
 * cut short anywhere, or changed anywhere, is rejected. Writing and parsing
 * work on FILE* and memory only; the commands do the file system work. */
#ifndef CITRUS_CLI_SNAPSHOT_FILE_H
#define CITRUS_CLI_SNAPSHOT_FILE_H

#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include "catalog/store.h"
#include "core/errdetail.h"

#define SNAPSHOT_FILE_FORMAT "citrus-backup"
#define SNAPSHOT_FILE_VERSION 1

/* Checks what a restore relies on: revisions >= 0; every key valid
 * (core/key.h) and the keys strictly increasing (sorted, no duplicates);
 * 1 <= create_revision <= mod_revision <= revision and version >= 1 for each
 * item; leases with distinct ids > 0, ttl >= 1 and remaining >= 0; every
 * item's lease 0 or one of the snapshot's leases. Returns 0, or
 * CITRUS_ECORRUPT with the first violation in err. */
int snapshot_file_check(const kv_snapshot *snap, errdetail *err);

/* Writes snap to f in the format above, with "created" set from created
 * (UTC). snap is only read and should pass snapshot_file_check (not checked
 * here). Returns 0, CITRUS_EIO when writing fails (errno kept),
 * CITRUS_EBADKEY for a key that JSON cannot hold, or CITRUS_ENOMEM; err
 * says why. f is not flushed or closed. */
int snapshot_file_write(FILE *f, const kv_snapshot *snap, time_t created, errdetail *err);

/* Parses and verifies a whole backup held in buf[0..len): the trailer's
 * digest, the header (format, version), every line's shape, that the header's
 * counts match the lines, and snapshot_file_check. On success fills *out
 * (caller frees with kv_snapshot_free). On failure returns CITRUS_ECORRUPT
 * (or CITRUS_ENOMEM) with the reason in err, and *out is empty. */
int snapshot_file_parse(const char *buf, size_t len, kv_snapshot *out, errdetail *err);

#endif
