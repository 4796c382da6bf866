/* api/cluster.c — GET /v1/cluster: the citrus nodes (registered under their
 * session leases), the catalog and the controller leader. */
#include "citrus/errors.h"

#include "api/app.h"
#include "api/handlers.h"
#include "api/kvreq.h"
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

static json_t *members_json(const store_status *st)
{
    json_t *a = json_array();
    int n = st->members < STORE_MAX_MEMBERS ? st->members : STORE_MAX_MEMBERS;
    for (int i = 0; a && i < n; i++) {
        const store_member *m = &st->member[i];
        json_array_append_new(a, json_pack("{s:s,s:s?,s:b,s:b}", "name", m->name, "url",
                                           m->url[0] ? m->url : NULL, "healthy", m->healthy,
                                           "leader", m->leader));
    }
    return a;
}

/* The catalog's status without waiting on it: with a copy, its latest
 * periodic check (at most a second old while the catalog answers). */
static int catalog_status(app *a, store_status *st)
{
    int64_t age;
    return a->cache ? cache_status(a->cache, st, &age) : store_status_get(a->st, st);
}

int api_cluster(http_req *r, void *ctx)
{
    app *a = ctx;
    reader_level level; /* a status page: by default it answers in an outage too */
    if (app_consistency(r, READER_ANY, &level) < 0)
        return CITRUS_EINVAL;
    if (!http_offloaded(r) && reader_blocks(a->rd, level))
        return http_offload(r, api_cluster, ctx);
    kv_range_req req = {.key = SESSION_NODES_PREFIX, .prefix = true};
    kv_range_res nodes;
    reader_info from;
    int rc = app_read(a, r, level, &req, &nodes, &from);
    if (rc < 0)
        return rc; /* answered */
    /* The leader key from the same source as the nodes. */
    kv_range_req lreq = {.key = ELECTION_KEY};
    kv_range_res lres;
    rc = from.level != READER_STRONG ? cache_range(a->cache, &lreq, &lres, NULL)
                                     : store_range(a->st, &lreq, &lres);
    election_view v = {0};
    if (rc == 0)
        election_view_from(&lres, &v);
    kv_range_res_free(&lres);
    store_status st;
    int src = rc == 0 ? catalog_status(a, &st) : rc;
    if (rc < 0) {
        kv_range_res_free(&nodes);
        return kvreq_reply_store_error(r, rc);
    }
    json_t *controller =
        v.held ? json_pack("{s:s,s:I}", "leader", v.leader, "token", (json_int_t)v.token)
               : json_pack("{s:n,s:I}", "leader", "token", (json_int_t)0);
    json_t *catalog =
        src == 0
            ? json_pack("{s:s,s:b,s:I,s:s?,s:i,s:i,s:b,s:o}", "backend", st.backend, "writable",
                        st.writable, "revision", (json_int_t)st.revision, "leader",
                        st.leader[0] ? st.leader : NULL, "members", st.members, "healthy",
                        st.healthy_members, "quorum", st.quorum, "member_list", members_json(&st))
            : json_pack("{s:s,s:b,s:I,s:n,s:i,s:i,s:b,s:[]}", "backend", "unknown", "writable", 0,
                        "revision", (json_int_t)0, "leader", "members", 0, "healthy", 0, "quorum",
                        0, "member_list");
    json_t *body = json_pack("{s:s,s:o,s:o,s:o}", "node_id", a->node_id, "nodes",
                             nodes_json(&nodes), "catalog", catalog, "controller", controller);
    kv_range_res_free(&nodes);
    return http_reply_json(r, 200, body);
}
