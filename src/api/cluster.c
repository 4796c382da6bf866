/* api/cluster.c — GET /v1/cluster: the citrus nodes (registered under their
 * session leases), the catalog and the controller leader. */
#include <string.h>

#include "api/app.h"
#include "api/handlers.h"
#include "api/kvjson.h"
#include "controller/election.h"
#include "controller/session.h"

/* Registrations are JSON written by the nodes; anything else is skipped. */
static json_t *nodes_json(const kv_range_res *r)
{
    json_t *nodes = json_array();
    for (size_t i = 0; i < r->count; i++) {
        json_t *n = json_loadb((const char *)r->items[i].value, r->items[i].value_len, 0, NULL);
        if (!json_is_object(n)) {
            json_decref(n);
            continue;
        }
        json_object_set_new(n, "lease", json_integer(r->items[i].lease));
        json_array_append_new(nodes, n);
    }
    return nodes;
}

int api_cluster(http_req *r, void *ctx)
{
    app *a = ctx;
    kv_range_req req = {.key = SESSION_NODES_PREFIX, .prefix = true};
    kv_range_res nodes;
    int rc = store_range(a->st, &req, &nodes);
    if (rc < 0)
        return kvjson_reply_store_error(r, rc);
    election_view v;
    rc = election_observe(a->st, ELECTION_KEY, &v);
    store_status st;
    if (rc == 0)
        rc = store_status_get(a->st, &st);
    if (rc < 0) {
        kv_range_res_free(&nodes);
        return kvjson_reply_store_error(r, rc);
    }
    json_t *controller =
        v.held ? json_pack("{s:s,s:I}", "leader", v.leader, "token", (json_int_t)v.token)
               : json_pack("{s:n,s:I}", "leader", "token", (json_int_t)0);
    json_t *catalog =
        json_pack("{s:s,s:b,s:I,s:s?,s:i,s:i,s:b}", "backend", st.backend, "writable", st.writable,
                  "revision", (json_int_t)st.revision, "leader", st.leader[0] ? st.leader : NULL,
                  "members", st.members, "healthy", st.healthy_members, "quorum", st.quorum);
    json_t *body = json_pack("{s:s,s:o,s:o,s:o}", "node_id", a->node_id, "nodes",
                             nodes_json(&nodes), "catalog", catalog, "controller", controller);
    kv_range_res_free(&nodes);
    return http_reply_json(r, 200, body);
}
