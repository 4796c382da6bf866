/* api/consumers.c — GET /v1/consumers: where each consumer group is in each
 * partition it reads (docs/events.md, "Operating the bus"). */
#include <stdlib.h>

#include "api/app.h"
#include "api/events.h"
#include "api/handlers.h"
#include "citrus/errors.h"

static json_t *row_json(const bus_group_entry *g)
{
    return json_pack("{s:s,s:s,s:i,s:I,s:I,s:I,s:I}", "group", g->group, "topic", g->topic,
                     "partition", g->partition, "committed", (json_int_t)g->committed, "end",
                     (json_int_t)g->end, "lag", (json_int_t)g->lag, "in_flight",
                     (json_int_t)g->in_flight);
}

int api_consumers_list(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_consumers_list, ctx);
    app *a = ctx;
    if (api_events_bus(r, a) < 0)
        return CITRUS_EUNAVAILABLE;
    const char *group = http_req_query(r, "group");
    size_t max = a->bus->cfg.poll_max < EVENTS_PAGE_MAX ? a->bus->cfg.poll_max : EVENTS_PAGE_MAX;
    int64_t limit;
    if (http_req_query_int(r, "limit", (int64_t)max, &limit) < 0)
        return CITRUS_EINVAL;
    if (limit < 1 || (uint64_t)limit > max)
        return http_reply_errorf(r, CITRUS_EINVAL, "limit: 1..%zu", max);
    bus_group_entry *g = NULL;
    size_t n = 0;
    bool more = false;
    errdetail e;
    int rc = bus_groups_describe(a->bus, group, (size_t)limit, &g, &n, &more, &e);
    if (rc < 0)
        return http_reply_error(r, rc, e.message, NULL);
    json_t *items = json_array();
    size_t bytes = 0, shown = 0;
    while (shown < n &&
           api_events_append(items, row_json(&g[shown]), a->max_response_bytes, &bytes))
        shown++;
    free(g);
    return http_reply_json(r, 200,
                           json_pack("{s:o,s:b}", "consumers", items, "more", more || shown < n));
}
