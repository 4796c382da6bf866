/* api/kvreq.h — the request side shared by the KV, watch, lease and cluster
 * handlers: checks of a request's key, and the answer to a
 * store error. (Their JSON is wire/kvjson.h.) */
#ifndef CITRUS_API_KVREQ_H
#define CITRUS_API_KVREQ_H

#include <stdbool.h>

#include "http/server.h"

/* Validates a key (or a prefix) from a request; on failure replies 400
 * invalid_key and returns the error. */
int kvreq_check_key(http_req *r, const char *key, bool prefix);
/* Replies with the status of a store error. */
int kvreq_reply_store_error(http_req *r, int err);

#endif
