/* controller/election.c — campaign and observe the leader key. */
#include "controller/election.h"

#include <stdio.h>
#include <string.h>

#include "citrus/errors.h"

void election_view_from(const kv_range_res *r, election_view *v)
{
    memset(v, 0, sizeof(*v));
    if (r->count == 0)
        return;
    const kv_entry *e = &r->items[0];
    v->held = true;
    v->token = e->create_revision;
    v->lease = e->lease;
    size_t n = e->value_len < sizeof(v->leader) - 1 ? e->value_len : sizeof(v->leader) - 1;
    memcpy(v->leader, e->value, n);
    v->leader[n] = '\0';
}

int election_observe(store *st, const char *key, election_view *view)
{
    kv_range_req req = {.key = key};
    kv_range_res res;
    int rc = store_range(st, &req, &res);
    if (rc == 0)
        election_view_from(&res, view);
    kv_range_res_free(&res);
    return rc;
}

int election_campaign(store *st, const char *key, const char *node_id, int64_t lease, bool *won,
                      election_view *view)
{
    kv_compare absent = {.key = key, .target = KV_CMP_VERSION, .op = KV_CMP_EQ, .number = 0};
    kv_op put = {.type = KV_OP_PUT,
                 .key = key,
                 .value = (const unsigned char *)node_id,
                 .value_len = strlen(node_id),
                 .lease = lease};
    kv_op get = {.type = KV_OP_GET, .key = key};
    kv_txn txn = {.compares = &absent,
                  .ncompares = 1,
                  .success = (kv_op[]){put, get},
                  .nsuccess = 2,
                  .failure = &get,
                  .nfailure = 1};
    kv_txn_res res;
    int rc = store_txn(st, &txn, &res);
    if (rc == 0) {
        election_view_from(&res.results[res.succeeded ? 1 : 0].range, view);
        *won = view->held && view->lease == lease && strcmp(view->leader, node_id) == 0;
    }
    kv_txn_res_free(&res);
    return rc;
}

kv_compare election_fence(const char *key, int64_t token)
{
    return (kv_compare){.key = key, .target = KV_CMP_CREATE, .op = KV_CMP_EQ, .number = token};
}
