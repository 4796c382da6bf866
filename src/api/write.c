/* api/write.c — a write parked on its connection until the store commits. */
#include "api/write.h"

static void on_commit(void *ctx, int rc)
{
    api_write *w = ctx;
    w->rc = rc;
    http_resume(w->req);
}

static void on_resume(http_req *r, void *ctx)
{
    api_write *w = ctx;
    w->done(w, r, w->rc);
}

void api_write_submit(api_write *w, http_req *r, app *a, const kv_txn *txn, api_write_done done)
{
    w->req = r;
    w->done = done;
    /* Suspend first: the completion may run before store_txn_async returns. */
    http_suspend(r, on_resume, w);
    store_txn_async(a->st, txn, &w->res, on_commit, w);
}
