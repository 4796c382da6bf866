/* catalog/etcd_codec.h — store.h types to and from the JSON of etcd's v3
 * gateway (the proto3 JSON mapping of api/etcdserverpb/rpc.proto).
 *
 * Keys and values travel as base64 strings, int64 fields as decimal
 * strings, and answers leave out every field at its zero value (a PUT
 * event has no "type", an empty value no "value", "more": false is absent).
 * A store key never contains a NUL byte, so the key "\0" stands where etcd
 * needs a non-empty key that matches nothing (a single-key read or compare
 * of ""), and the range end "\0" means "to the end of the keyspace".
 *
 * Builders return a new JSON value (owned by the caller) or NULL when out
 * of memory. Decoders fill caller-provided structs; on error the struct
 * may be partly filled and must still be released with its *_free. */
#ifndef CITRUS_CATALOG_ETCD_CODEC_H
#define CITRUS_CATALOG_ETCD_CODEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog/store.h"

/* An int64 as etcd's JSON wants it ("123"). */
json_t *etcd_codec_i64(int64_t v);
/* The int64 field of obj (a string or a number); 0 when absent or invalid. */
int64_t etcd_codec_int(json_t *obj, const char *field);
/* obj.header.revision, or 0. */
int64_t etcd_codec_revision(json_t *answer);

/* Sets "key" and "range_end" of a range-shaped request (range, delete,
 * watch) to cover one key, or every key under prefix; with after, only
 * keys strictly greater than after. Returns false when out of memory. */
bool etcd_codec_set_range(json_t *req, const char *key, bool prefix, const char *after);

/* The body of /v3/kv/range for q (linearizable). */
json_t *etcd_codec_range_req(const kv_range_req *q);
/* A RangeResponse into out: items, more, and the header's revision (or
 * fallback_rev when the answer has none). */
int etcd_codec_range_res(json_t *ans, int64_t fallback_rev, kv_range_res *out);

/* A mvccpb.Event into ev (a DELETE carries key and mod_revision only). */
int etcd_codec_event(json_t *event, kv_event *ev);

/* A TxnRequest for txn. Compares whose drop[i] is set are left out (drop
 * may be NULL). Puts ask for prev_kv: etcd's put answer has no revisions of
 * its own, so the key's state after the put is computed from the state
 * before it (see etcd_codec_txn_res). */
json_t *etcd_codec_txn_req(const kv_txn *txn, const bool *drop);
/* A TxnResponse (or a nested response_txn) of txn into out, as store.h
 * defines kv_txn_res; rev is the txn's header revision. A put's
 * mod_revision is rev, its version the previous one + 1 (1 if the key was
 * absent) and its create_revision the previous one (rev if absent). */
int etcd_codec_txn_res(json_t *ans, const kv_txn *txn, int64_t rev, kv_txn_res *out);

/* The fast path of a txn that is one put or one delete, without compares
 * or failure ops: the body of /v3/kv/put or /v3/kv/deleterange (etcd's
 * gateway takes those at a fraction of a txn's cost), with *path set; NULL
 * for any other txn (or out of memory). */
json_t *etcd_codec_single_req(const kv_txn *txn, const char **path);
/* The answer of such a call into out, as etcd_codec_txn_res would give it. */
int etcd_codec_single_res(json_t *ans, const kv_txn *txn, int64_t rev, kv_txn_res *out);

#endif
