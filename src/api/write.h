/* api/write.h — runs a catalog write without holding an HTTP worker thread,
 * and makes it idempotent when the request carries an Idempotency-Key.
 *
 * The connection is parked while the write waits for its (group) commit and
 * resumed by the store's completion, so the number of writes in one commit
 * is bounded by the clients, not by the size of the HTTP thread pool.
 *
 * Idempotency-Key (1-128 of [A-Za-z0-9._:-]): before the write, a record
 * citrus/idempotency/<key> is created (create-if-absent) holding a
 * fingerprint of the request, under its own lease (catalog TTL). The write's
 * txn also marks the record "applied" in the same revision, in whichever
 * branch runs; once answered, the record keeps the answer. A retry with the
 * same key and request gets that answer again (Idempotency-Replayed: true)
 * and is not applied again; with another request, 422; while the first is
 * still in flight (or its answer was lost after it was applied), 409. A
 * definite failure (nothing applied) drops the record, so a retry runs. */
#ifndef CITRUS_API_WRITE_H
#define CITRUS_API_WRITE_H

#include "api/app.h"

#define IDEMPOTENCY_PREFIX "citrus/idempotency/"

typedef struct api_write api_write;

/* Runs on an HTTP worker thread once the outcome is known: must answer
 * through api_write_finish or api_write_fail, then release w->res and the
 * object that embeds w. */
typedef void (*api_write_done)(api_write *w, http_req *r, int rc);

struct api_write {
    kv_txn_res res;
    int rc;
    http_req *req;
    api_write_done done;
    app *a;
    /* idempotency (record empty when the request has no key) */
    char record[192];
    char fingerprint[65];
    int64_t lease;
    kv_op *ops;    /* the txn's branches with the record's op added */
    char *applied; /* the "applied" record value those ops write */
    kv_txn txn;
};

/* Embed w in a heap object that also holds the txn and everything it points
 * to; all of it must stay valid until done runs. Returns 0 when done will
 * run; otherwise the request is already answered (a replay, a conflict, or
 * an error) and the caller frees its object at once. */
int api_write_submit(api_write *w, http_req *r, app *a, const kv_txn *txn, api_write_done done);

/* Answers the write (body's reference stolen), recording the answer for
 * idempotent retries. */
void api_write_finish(api_write *w, http_req *r, unsigned status, json_t *body);
/* Answers with an error (as http_reply_error). */
void api_write_fail(api_write *w, http_req *r, int err, const char *message, json_t *extra);

#endif
