/* api/write.h — runs a catalog write without holding an HTTP worker thread.
 *
 * The connection is parked while the write waits for its (group) commit and
 * resumed by the store's completion, so the number of writes in one commit
 * is bounded by the clients, not by the size of the HTTP thread pool. */
#ifndef CITRUS_API_WRITE_H
#define CITRUS_API_WRITE_H

#include "api/app.h"

typedef struct api_write api_write;

/* Runs on an HTTP worker thread once the outcome is known: must reply, then
 * release w->res and the object that embeds w. */
typedef void (*api_write_done)(api_write *w, http_req *r, int rc);

struct api_write {
    kv_txn_res res;
    int rc;
    http_req *req;
    api_write_done done;
};

/* Embed w in a heap object that also holds the txn and everything it points
 * to; all of it must stay valid until done runs. */
void api_write_submit(api_write *w, http_req *r, app *a, const kv_txn *txn, api_write_done done);

#endif
