/* workers/ingest.c — the enrollment ingest worker's handler (see ingest.h). */
#include "workers/ingest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"

/* The manifest's tenant key and version, or a permanent failure. */
static int load_manifest(ingest_ctx *c, const char *id, char *tenant, size_t len, int64_t *version,
                         worker_effect *fx, errdetail *e)
{
    manifest_row m;
    int rc = records_manifest_get(c->rec, id, &m, e);
    if (rc == CITRUS_ENOTFOUND)
        return errdetail_set(e, CITRUS_ENOTFOUND, "manifest %s not found (yet)", id);
    if (rc == CITRUS_EINVAL)
        fx->permanent = true; /* a bad id never becomes good */
    if (rc < 0)
        return rc;
    json_t *doc = json_loads(m.body, 0, NULL);
    free(m.body);
    const char *t = json_string_value(json_object_get(doc, "tenant_key"));
    if (!t || !*t || strlen(t) >= len) {
        json_decref(doc);
        fx->permanent = true;
        return errdetail_set(e, CITRUS_EINVAL, "manifest %s has no valid tenant_key", id);
    }
    snprintf(tenant, len, "%s", t);
    *version = m.version;
    json_decref(doc);
    return 0;
}

int ingest_handle(void *ctx, const envelope *ev, const bus_message *m, worker_effect *fx,
                  errdetail *e)
{
    (void)m;
    ingest_ctx *c = ctx;
    const char *mid = json_string_value(json_object_get(ev->data, "manifest_id"));
    if (!mid)
        mid = ev->subject;
    if (!mid || !*mid) {
        fx->permanent = true;
        return errdetail_set(e, CITRUS_EINVAL,
                             "the event names no manifest (data.manifest_id or subject)");
    }
    char tenant[300];
    int64_t version = 0;
    int rc = load_manifest(c, mid, tenant, sizeof(tenant), &version, fx, e);
    if (rc < 0)
        return rc;
    ingest_target t = {0};
    if ((rc = c->route(c->route_ctx, tenant, &t, e)) < 0)
        return rc;
    char ref[96];
    snprintf(ref, sizeof(ref), "/v1/shards/%s", t.shard_id);
    json_t *data =
        json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:s,s:I}", "shard_id", t.shard_id, "connection_ref",
                  ref, "tenant_key", tenant, "manifest_id", mid, "manifest_version",
                  (json_int_t)version, "enrollment_event_id", ev->id, "routed_by",
                  t.pinned ? "directory" : "ring", "ring_version", (json_int_t)t.ring_version);
    if (!data)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    envelope_spec spec = {.id = ev->id,
                          .type = INGEST_COMMAND_TYPE,
                          .source = INGEST_SOURCE,
                          .subject = t.shard_id,
                          .time_ms = clock_wall_ms(c->clock),
                          .correlationid = ev->correlationid,
                          .traceparent = ev->traceparent,
                          .data = data};
    envelope cmd;
    rc = envelope_build(&spec, &cmd, e);
    json_decref(data);
    if (rc < 0)
        return rc;
    size_t len = 0;
    char *text = envelope_encode(&cmd, &len);
    envelope_clear(&cmd);
    if (!text)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    if (c->max_event_bytes && len > c->max_event_bytes) {
        free(text);
        fx->permanent = true;
        return errdetail_set(e, CITRUS_ETOOBIG, "the ingest command would be %zu bytes", len);
    }
    /* published by the runner with the batch's other commands, before the
     * ledger records the event */
    char *key = strdup(tenant);
    if (!key) {
        free(text);
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    }
    fx->owned[0] = text;
    fx->owned[1] = key;
    fx->publish_topic = c->topic;
    fx->publish = (bus_record){.key = key, .key_len = strlen(key), .value = text, .value_len = len};
    return 0;
}
