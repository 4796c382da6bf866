/* api/registrations.c — the registration queue (seed 003; docs/events.md,
 * "Registration queue"):
 *   POST /api/register[/batch]?async=true (or Prefer: respond-async), after
 *        the synchronous call's own checks (api/citrus.c): one registration
 *        per location (state queued, a UUID), its message on
 *        bus.topics.registrations; 202 with the id(s), Location and
 *        Preference-Applied: respond-async;
 *   GET  /v1/registrations/{id}            (reader)
 *   GET  /v1/registrations?state=&business_id=&limit=&after=   (reader)
 *   POST /v1/registrations/{id}/retry      (sm-operator): a failed one back
 *        to queued and published again; 409 when it is not failed;
 *   POST /v1/businesses/{id}/register-shards  (sm-operator): every failed
 *        registration of the business re-driven so (at most
 *        REDRIVE_MAX per call; "more" says whether some are left).
 * The registration worker (workers/registration.c) does the rest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/app.h"
#include "api/audit.h"
#include "api/handlers.h"
#include "bus/bus.h"
#include "citrus/errors.h"
#include "records/registrations.h"
#include "registry/tenants.h"
#include "sys/clock.h"
#include "wire/envelope.h"
#include "wire/regmsg.h"
#include "wire/shard_json.h"

#define REDRIVE_MAX 1000

bool api_regq_wanted(http_req *r, bool *async)
{
    const char *prefer = http_req_header(r, "Prefer");
    /* Prefer: a comma-separated list of preferences (RFC 7240) */
    bool pref = false;
    for (const char *p = prefer; p && *p && !pref;) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, ",;");
        size_t trim = len;
        while (trim > 0 && (p[trim - 1] == ' ' || p[trim - 1] == '\t'))
            trim--;
        pref = trim == 13 && strncasecmp(p, "respond-async", 13) == 0;
        p += strcspn(p, ",");
    }
    if (http_req_query_bool(r, "async", false, async) < 0)
        return false;
    *async = *async || pref;
    return true;
}

/* Publishes row's message: key "<business>:<location>" (one location's
 * messages in order), a fresh event id, the row's correlation id (the
 * request's when the row has none). */
static int publish(http_req *r, app *a, const reg_row *row, errdetail *e)
{
    regmsg m = {.registration_id = row->id,
                .business_id = row->business_id,
                .location_id = row->location_id,
                .business_type = row->business_type,
                .type = RECORDS_REG_EVENT_TYPE,
                .source = "/citrus/api/registrations",
                .correlationid = row->correlation_id[0] ? row->correlation_id
                                 : r                    ? http_req_correlation(r)
                                                        : NULL,
                .time_ms = clock_wall_ms(NULL)};
    size_t len = 0;
    char *text = NULL;
    int rc = regmsg_encode(&m, &text, &len, e);
    if (rc != 0)
        return rc;
    char key[2 * RECORDS_MAX_REG_TENANT + 2];
    size_t klen = records_reg_key(row, key, sizeof(key));
    int part;
    int64_t off;
    rc = bus_publish(a->bus, a->regq_topic, key, klen, text, len, &part, &off, e);
    free(text);
    return rc;
}

/* A registration that could not be published: failed, saying so (a retry
 * publishes it again). */
static void publish_failed(app *a, reg_row *row, const errdetail *pe)
{
    row->state = REG_FAILED;
    snprintf(row->last_error, sizeof(row->last_error), "could not be queued: %s", pe->message);
    row->updated_ms = clock_wall_ms(NULL);
    errdetail e;
    records_reg_update(a->rec, row, REG_NSTATES, NULL, &e);
}

static int no_queue(http_req *r, app *a)
{
    if (a->bus && a->rec && a->regq_topic[0])
        return 0;
    http_reply_error(r, CITRUS_EUNAVAILABLE,
                     "asynchronous registration needs the event bus and the records store: this "
                     "node has none",
                     NULL);
    return CITRUS_EUNAVAILABLE; /* replied */
}

static void location_header(http_req *r, const char *id)
{
    char loc[64 + RECORDS_MAX_REG_ID];
    snprintf(loc, sizeof(loc), "/v1/registrations/%s", id);
    http_add_header(r, "Location", loc);
}

int api_regq_enqueue(http_req *r, app *a, const tenant_reg *regs, size_t n, bool batch)
{
    int rc = no_queue(r, a);
    if (rc < 0)
        return rc;
    json_t *items = json_array();
    int64_t now = clock_wall_ms(NULL);
    char first[RECORDS_MAX_REG_ID + 1] = "";
    for (size_t i = 0; i < n && rc == 0; i++) {
        reg_row row = {.state = REG_QUEUED, .created_ms = now};
        errdetail e = {0};
        rc = envelope_new_id(row.id, &e);
        snprintf(row.business_id, sizeof(row.business_id), "%s", regs[i].business_id);
        snprintf(row.location_id, sizeof(row.location_id), "%s", regs[i].location_id);
        snprintf(row.business_type, sizeof(row.business_type), "%s", regs[i].business_type);
        snprintf(row.correlation_id, sizeof(row.correlation_id), "%s", http_req_correlation(r));
        if (rc == 0)
            rc = records_reg_create(a->rec, &row, &e);
        if (rc == 0 && (rc = publish(r, a, &row, &e)) != 0)
            publish_failed(a, &row, &e);
        if (rc != 0) {
            json_decref(items);
            return http_reply_error(r, rc, e.message, NULL);
        }
        if (!first[0])
            snprintf(first, sizeof(first), "%s", row.id);
        char self[64 + RECORDS_MAX_REG_ID];
        snprintf(self, sizeof(self), "/v1/registrations/%s", row.id);
        json_array_append_new(items,
                              json_pack("{s:s,s:s,s:s,s:s}", "registrationId", row.id, "locationId",
                                        row.location_id, "state", "queued", "location", self));
    }
    location_header(r, first);
    http_add_header(r, "Preference-Applied", "respond-async");
    json_t *out;
    if (batch) {
        out = json_pack("{s:s,s:o}", "businessId", regs[0].business_id, "registrations", items);
    } else {
        out = json_incref(json_array_get(items, 0));
        json_object_set_new(out, "businessId", json_string(regs[0].business_id));
        json_object_set_new(out, "businessType", json_string(regs[0].business_type));
        json_decref(items);
    }
    return http_reply_json(r, 202, out);
}

/* ---- reads ---- */

static json_t *time_or_null(int64_t ms)
{
    if (ms <= 0)
        return json_null();
    char when[40];
    shard_json_time(ms, when, sizeof(when));
    return json_string(when);
}

static json_t *reg_json(const reg_row *g)
{
    json_t *j =
        json_pack("{s:s,s:s,s:i,s:s,s:s,s:s}", "id", g->id, "state", reg_state_name(g->state),
                  "attempts", g->attempts, "business_id", g->business_id, "location_id",
                  g->location_id, "business_type", g->business_type);
    json_object_set_new(j, "last_error",
                        g->last_error[0] ? json_string(g->last_error) : json_null());
    json_object_set_new(j, "shard_id", g->shard_id[0] ? json_string(g->shard_id) : json_null());
    json_object_set_new(j, "next_attempt_at",
                        g->state == REG_RETRYING || g->state == REG_RUNNING
                            ? time_or_null(g->next_attempt_ms) /* running: its deadline */
                            : json_null());
    json_object_set_new(j, "created_at", time_or_null(g->created_ms));
    json_object_set_new(j, "updated_at", time_or_null(g->updated_ms));
    json_object_set_new(j, "finished_at", time_or_null(g->finished_ms));
    json_object_set_new(j, "correlation_id",
                        g->correlation_id[0] ? json_string(g->correlation_id) : json_null());
    return j;
}

static bool need_rec(http_req *r, app *a)
{
    if (a->rec)
        return true;
    http_reply_error(r, CITRUS_EUNAVAILABLE, "this node has no records store", NULL);
    return false;
}

/* Whether the caller may see g: a reader (and up), or a tenant whose
 * scopes cover g's tenant key (the routes' "tenant-own" scope). */
static bool visible(http_req *r, const reg_row *g)
{
    const principal *p = api_principal(r);
    if (auth_level_allows(p->roles, AUTH_READER))
        return true;
    char key[2 * RECORDS_MAX_REG_TENANT + 2];
    snprintf(key, sizeof(key), "%s:%s", g->business_id, g->location_id);
    return principal_tenant_allowed(p, key);
}

/* The registration of the path's {id}: 0, or replied 404 / 503. One the
 * caller may not see is 404 as an unknown id is (no existence leak). */
static int load(http_req *r, app *a, reg_row *g)
{
    const char *id = http_req_param(r, "id");
    errdetail e = {0};
    int rc = records_reg_get(a->rec, id ? id : "", g, &e);
    if (rc == 0 && !visible(r, g))
        rc = CITRUS_ENOTFOUND;
    if (rc == CITRUS_ENOTFOUND)
        http_reply_errorf(r, rc, "registration '%.64s' not found", id ? id : "");
    else if (rc < 0)
        http_reply_error(r, rc, e.message, NULL);
    return rc; /* replied when < 0 */
}

int api_registrations_get(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_registrations_get, ctx);
    app *a = ctx;
    if (!need_rec(r, a))
        return CITRUS_EUNAVAILABLE;
    reg_row g;
    int rc = load(r, a, &g);
    if (rc < 0)
        return rc;
    return http_reply_json(r, 200, reg_json(&g));
}

int api_registrations_list(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_registrations_list, ctx);
    app *a = ctx;
    if (!need_rec(r, a))
        return CITRUS_EUNAVAILABLE;
    reg_query q = {0};
    const char *state = http_req_query(r, "state");
    const char *biz = http_req_query(r, "business_id");
    const char *limit_s = http_req_query(r, "limit");
    const char *after_s = http_req_query(r, "after");
    if (state && reg_state_parse(state, &q.state) != 0)
        return http_reply_error(r, CITRUS_EINVAL,
                                "state: one of queued, running, retrying, succeeded, failed", NULL);
    q.has_state = state != NULL;
    if (biz && !tenant_id_valid(biz))
        return http_reply_error(r, CITRUS_EINVAL,
                                "business_id: 1..128 characters of [A-Za-z0-9._@-]", NULL);
    q.business_id = biz;
    int64_t limit = RECORDS_QUERY_DEFAULT_LIMIT, after = 0;
    if (limit_s &&
        (api_parse_int(limit_s, &limit) < 0 || limit < 1 || limit > RECORDS_QUERY_MAX_LIMIT))
        return http_reply_errorf(r, CITRUS_EINVAL, "limit: an integer 1..%d",
                                 RECORDS_QUERY_MAX_LIMIT);
    if (after_s && (api_parse_int(after_s, &after) < 0 || after < 0))
        return http_reply_error(
            r, CITRUS_EINVAL, "after: the next_after of the previous page (an integer >= 0)", NULL);
    q.limit = (size_t)limit;
    q.after_seq = after;
    reg_row *rows = NULL;
    size_t n = 0;
    int64_t next = 0;
    errdetail e = {0};
    int rc = records_reg_query(a->rec, &q, &rows, &n, &next, &e);
    if (rc < 0)
        return http_reply_error(r, rc, e.message, NULL);
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        if (visible(r, &rows[i])) /* a tenant's page holds its own only (maybe fewer) */
            json_array_append_new(items, reg_json(&rows[i]));
    free(rows);
    return http_reply_json(r, 200,
                           json_pack("{s:o,s:o}", "registrations", items, "next_after",
                                     next ? json_integer(next) : json_null()));
}

/* ---- re-drives ---- */

/* g (failed) back to queued, then published again. Its messages keep the
 * correlation id of the request that queued it, unless this re-drive
 * brings its own X-Correlation-Id (then the re-drive's messages, the
 * sweeper's included, carry that one: stored with the record). 0;
 * CITRUS_ECONFLICT when it was no longer failed; else the store's or the
 * bus's error. */
static int requeue(http_req *r, app *a, reg_row *g, errdetail *e)
{
    reg_row q = *g;
    /* the server answers 400 to an invalid one: a header here is valid */
    const char *own = http_req_header(r, "X-Correlation-Id");
    if (own || !q.correlation_id[0])
        snprintf(q.correlation_id, sizeof(q.correlation_id), "%s", http_req_correlation(r));
    q.state = REG_QUEUED;
    q.next_attempt_ms = 0;
    q.drive_attempts = 0; /* bus.max_attempts more */
    q.updated_ms = clock_wall_ms(NULL);
    bool changed = false;
    int rc = records_reg_update(a->rec, &q, REG_FAILED, &changed, e);
    if (rc == 0 && !changed)
        rc = errdetail_set(e, CITRUS_ECONFLICT, "registration %s is not failed", g->id);
    if (rc == 0 && (rc = publish(r, a, &q, e)) != 0)
        publish_failed(a, &q, e);
    if (rc == 0)
        *g = q;
    return rc;
}

int api_registrations_retry(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_registrations_retry, ctx);
    app *a = ctx;
    int rc = no_queue(r, a);
    if (rc < 0)
        return rc;
    reg_row g;
    if ((rc = load(r, a, &g)) < 0)
        return rc;
    if (g.state != REG_FAILED)
        return http_reply_errorf(r, CITRUS_ECONFLICT,
                                 "registration %s is %s: only a failed one can be retried", g.id,
                                 reg_state_name(g.state));
    errdetail e = {0};
    if ((rc = requeue(r, a, &g, &e)) < 0)
        return http_reply_error(r, rc, e.message, NULL);
    location_header(r, g.id);
    return http_reply_json(r, 202, reg_json(&g));
}

int api_business_register_shards(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_business_register_shards, ctx);
    app *a = ctx;
    int rc = no_queue(r, a);
    if (rc < 0)
        return rc;
    const char *biz = http_req_param(r, "id");
    if (!biz || !tenant_id_valid(biz))
        return http_reply_error(r, CITRUS_EINVAL,
                                "business id: 1..128 characters of [A-Za-z0-9._@-]", NULL);
    reg_query q = {.has_state = true, .state = REG_FAILED, .business_id = biz, .limit = 0};
    json_t *ids = json_array();
    size_t done = 0;
    bool more = false;
    errdetail e = {0};
    while (rc == 0 && done < REDRIVE_MAX) {
        reg_row *rows = NULL;
        size_t n = 0;
        int64_t next = 0;
        q.limit = REDRIVE_MAX - done < RECORDS_QUERY_MAX_LIMIT ? REDRIVE_MAX - done
                                                               : RECORDS_QUERY_MAX_LIMIT;
        rc = records_reg_query(a->rec, &q, &rows, &n, &next, &e);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            int one = requeue(r, a, &rows[i], &e);
            if (one == CITRUS_ECONFLICT)
                continue; /* retried by someone else meanwhile */
            rc = one;
            if (rc == 0) {
                json_array_append_new(ids, json_string(rows[i].id));
                done++;
            }
        }
        free(rows);
        more = next != 0;
        if (!more)
            break;
        q.after_seq = next;
    }
    if (rc < 0) {
        json_decref(ids);
        return http_reply_error(r, rc, e.message, NULL);
    }
    return http_reply_json(r, 202,
                           json_pack("{s:s,s:I,s:o,s:b}", "businessId", biz, "requeued",
                                     (json_int_t)done, "registrations", ids, "more", more));
}
