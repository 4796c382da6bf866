/* api/kvjson.h — JSON shapes of catalog entries and events, and the
 * per-request checks shared by the KV handlers. */
#ifndef CITRUS_API_KVJSON_H
#define CITRUS_API_KVJSON_H

#include <jansson.h>
#include <stdbool.h>

#include "catalog/store.h"
#include "http/server.h"

/* {"key","value"(base64, absent when !with_value),"create_revision",
 *  "mod_revision","version","lease"} */
json_t *kvjson_entry(const kv_entry *e, bool with_value);
/* {"type":"put"|"delete","key","value","mod_revision","create_revision","version"} */
json_t *kvjson_event(const kv_event *ev);
/* Items array of a range result. */
json_t *kvjson_items(const kv_range_res *r, bool with_value);

/* Validates a key (or a prefix) from a request; on failure replies 400
 * invalid_key and returns the error. */
int kvjson_check_key(http_req *r, const char *key, bool prefix);
/* Replies with the status of a store error. */
int kvjson_reply_store_error(http_req *r, int err);

#endif
