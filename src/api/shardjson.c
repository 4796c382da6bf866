/* api/shardjson.c — JSON answers of the shard, tenant and routing
 * endpoints (see shardjson.h). */
#include "api/shardjson.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "core/dsn.h"
#include "provision/health.h"
#include "provision/service.h"
#include "wire/shard_json.h"

int shardjson_reply_no_manager(http_req *r)
{
    return http_reply_error(r, CITRUS_EUNAVAILABLE, "the shard manager is not running", NULL);
}

/* The tokens each of the n shards v[i] holds in the ring, into out (all 0
 * when the ring cannot be read). The ring is read strong, like the records
 * it goes with, so a shard just activated shows its tokens. */
static void tokens_owned(app *a, const shard *v, size_t n, size_t *out)
{
    const ring *rg;
    int64_t ver;
    const char **ids = calloc(n ? n : 1, sizeof(*ids));
    for (size_t i = 0; i < n; i++)
        out[i] = 0;
    if (ids && registry_ring_strong(a->shards->reg, &rg, &ver) == 0) {
        for (size_t i = 0; i < n; i++)
            ids[i] = v[i].id;
        ring_token_counts(rg, ids, n, out);
        registry_ring_release(a->shards->reg, rg);
    }
    free(ids);
}

static json_t *full_with_tokens(app *a, const shard *s, size_t tokens, bool with_history)
{
    json_t *j = shard_to_json(s, with_history);
    shardjson_set_connection(j, s->dsn, true); /* shardjson_redact masks it */
    size_t tenants = 0;
    registry_tenant_count(a->shards->reg, s->id, false, &tenants);
    json_object_set_new(j, "tokens", json_integer((json_int_t)tokens));
    json_object_set_new(j, "tenants", json_integer((json_int_t)tenants));
    json_object_set_new(j, "health", shardjson_health(a, s->id, s->epoch, false));
    return j;
}

json_t *shardjson_full(app *a, const shard *s, bool with_history)
{
    size_t tokens;
    tokens_owned(a, s, 1, &tokens);
    return full_with_tokens(a, s, tokens, with_history);
}

json_t *shardjson_list(app *a, const shard *v, size_t n)
{
    json_t *items = json_array();
    size_t *tokens = calloc(n ? n : 1, sizeof(*tokens));
    if (!items || !tokens) {
        json_decref(items);
        free(tokens);
        return NULL;
    }
    tokens_owned(a, v, n, tokens);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, full_with_tokens(a, &v[i], tokens[i], false));
    free(tokens);
    return items;
}

size_t shardjson_add_corrupt(app *a, json_t *items, const char *id_name)
{
    reg_corrupt *c = malloc(REG_CORRUPT_MAX * sizeof(*c));
    size_t n = c ? registry_corrupt(a->shards->reg, REG_SHARDS, c, REG_CORRUPT_MAX) : 0;
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items,
                              json_pack("{s:s,s:s,s:s}", id_name, c[i].key + strlen(REG_SHARDS),
                                        "key", c[i].key, "error", c[i].error));
    free(c);
    return n;
}

/* A wall time as RFC 3339, or null for 0 (never). */
static json_t *time_or_null(int64_t ms)
{
    char at[32];
    if (ms <= 0)
        return json_null();
    shard_json_time(ms, at, sizeof(at));
    return json_string(at);
}

json_t *shardjson_health(app *a, const char *id, int64_t epoch, bool camel)
{
    shard_health_view v = {0};
    if (a->health)
        shard_health_get(a->health, id, epoch, &v);
    json_t *j = json_pack(
        "{s:s,s:b,s:o,s:o,s:I}", "status", health_status_name(v.status), "reachable",
        v.status == HEALTH_REACHABLE, camel ? "lastOkAt" : "last_ok_at", time_or_null(v.last_ok_ms),
        camel ? "lastProbeAt" : "last_probe_at", time_or_null(v.last_probe_ms),
        camel ? "consecutiveFailures" : "consecutive_failures", (json_int_t)v.failures);
    if (j && v.status == HEALTH_REACHABLE)
        json_object_set_new(j, camel ? "latencyMs" : "latency_ms", json_integer(v.latency_ms));
    else if (j && v.error[0])
        json_object_set_new(j, "error", json_string(v.error));
    return j;
}

json_t *shardjson_change(const reg_result *res)
{
    return json_pack("{s:b,s:I,s:I,s:I,s:I,s:o,s:I}", "changed", res->ring_changed, "version",
                     (json_int_t)res->ring_version, "tokens_before", (json_int_t)res->tokens_before,
                     "tokens_after", (json_int_t)res->tokens_after, "tenants_affected",
                     (json_int_t)res->tenants_affected, "ranges",
                     res->ranges ? json_incref(res->ranges) : json_array(), "ranges_total",
                     (json_int_t)res->nranges);
}

json_t *shardjson_pin(const tenant_pin *p)
{
    char h[24], t[24], at[32];
    snprintf(h, sizeof(h), "%" PRIu64, p->hash);
    snprintf(t, sizeof(t), "%" PRIu64, p->token);
    shard_json_time(p->pinned_ms, at, sizeof(at));
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s?}", "key", p->key, "shard_id", p->shard_id, "hash",
                     h, "token", t, "pinned_at", at, "business_type",
                     p->business_type[0] ? p->business_type : NULL);
}

/* A copy of d with its password masked (an empty string when out of
 * memory: never the secret). */
static json_t *redacted(const char *d)
{
    char *m = d ? dsn_redact(d) : NULL;
    json_t *j = json_string(m ? m : "");
    free(m);
    return j;
}

/* The parts of a PostgreSQL DSN (dsn_split) as the "connection" object. */
static json_t *pg_connection(const dsn_parts *p)
{
    const char *host = dsn_parts_get(p, "host"), *port = dsn_parts_get(p, "port");
    const char *db = dsn_parts_get(p, "dbname"), *user = dsn_parts_get(p, "user");
    const char *pw = dsn_parts_get(p, "password");
    json_t *hosts = json_array(), *opts = json_object();
    size_t np = 1;
    for (const char *c = port ? port : ""; *c; c++)
        np += *c == ',';
    for (size_t i = 0; host;) { /* host and port lists, paired as libpq pairs them */
        size_t hl = strcspn(host, ",");
        const char *pt = port ? port : "";
        for (size_t k = np == 1 ? 0 : i; k > 0 && strchr(pt, ','); k--)
            pt = strchr(pt, ',') + 1;
        long num = strtol(pt, NULL, 10);
        json_array_append_new(hosts, json_pack("{s:s%,s:I}", "host", host, hl, "port",
                                               (json_int_t)(num > 0 ? num : 5432)));
        host += hl;
        if (!*host++)
            break;
        i++;
    }
    for (size_t i = 0; i < p->nopts; i++) {
        const char *k = p->opts[i].key;
        if (strcmp(k, "host") && strcmp(k, "port") && strcmp(k, "dbname") && strcmp(k, "user") &&
            strcmp(k, "password"))
            json_object_set_new(opts, k, json_string(p->opts[i].val));
    }
    json_t *first = json_array_get(hosts, 0);
    json_t *j =
        json_pack("{s:s,s:O?,s:O?,s:s?,s:s?,s:s?,s:o}", "driver", "postgresql", "host",
                  json_object_get(first, "host"), "port", json_object_get(first, "port"),
                  "database", db && *db ? db : user, "user", user, "password", pw, "options", opts);
    if (!pw)
        json_object_del(j, "password"); /* none given: none shown, none redacted */
    if (json_array_size(hosts) > 1)
        json_object_set(j, "hosts", hosts);
    json_decref(hosts);
    return j;
}

void shardjson_set_connection(json_t *o, const char *dsn, bool reveal)
{
    if (!dsn)
        return;
    char *uri = dsn_to_uri(dsn, NULL);
    dsn_parts p;
    json_t *conn = NULL;
    if (uri && dsn_split(uri, &p, NULL) == 0) {
        conn = p.kind == DSN_SQLITE ? json_pack("{s:s,s:s}", "driver", "sqlite", "path", p.path)
                                    : pg_connection(&p);
        dsn_parts_clear(&p);
    }
    json_object_set_new(o, "connectionString", json_string(uri ? uri : dsn));
    json_object_set_new(o, "connection", conn ? conn : json_null());
    free(uri);
    if (!reveal)
        shardjson_redact(o);
}

void shardjson_redact(json_t *o)
{
    json_t *dsn = json_object_get(o, "dsn"), *reps = json_object_get(o, "replicas");
    json_t *cs = json_object_get(o, "connectionString"), *conn = json_object_get(o, "connection");
    if (json_is_string(dsn))
        json_object_set_new(o, "dsn", redacted(json_string_value(dsn)));
    if (json_is_string(cs))
        json_object_set_new(o, "connectionString", redacted(json_string_value(cs)));
    if (json_is_string(json_object_get(conn, "password"))) {
        json_object_del(conn, "password");
        json_object_set_new(conn, "passwordRedacted", json_true());
    }
    size_t i;
    json_t *rep;
    json_array_foreach(reps, i, rep)
    {
        if (json_is_string(rep))
            json_array_set_new(reps, i, redacted(json_string_value(rep)));
    }
}
