/* wire/kvjson.c — catalog entries, events, leases, range and watch answers
 * and snapshots to and from JSON (see kvjson.h). */
#include "wire/kvjson.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "core/strbuf.h"
#include "wire/base64.h"

/* ---------------- encoders ---------------- */

json_t *kvjson_entry_encode(const kv_entry *e, bool with_value)
{
    char *b64 = with_value ? base64_encode(e->value, e->value_len) : NULL;
    json_t *o = json_object();
    /* A NULL member (no memory, or json_string refusing a key that is not
     * UTF-8) makes its set fail; the sets take their member either way. */
    int bad = json_object_set_new(o, "key", json_string(e->key));
    if (with_value)
        bad |= json_object_set_new(o, "value", json_string(b64));
    bad |= json_object_set_new(o, "create_revision", json_integer(e->create_revision));
    bad |= json_object_set_new(o, "mod_revision", json_integer(e->mod_revision));
    bad |= json_object_set_new(o, "version", json_integer(e->version));
    bad |= json_object_set_new(o, "lease", json_integer(e->lease));
    free(b64);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *kvjson_event_encode(const kv_event *ev)
{
    bool put = ev->type == KV_EVENT_PUT;
    json_t *o = kvjson_entry_encode(&ev->kv, put);
    if (o && json_object_set_new(o, "type", json_string(put ? "put" : "delete")) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *kvjson_lease_encode(const kv_lease_info *l)
{
    return json_pack("{s:I, s:I, s:I}", "id", (json_int_t)l->id, "ttl", (json_int_t)l->ttl,
                     "remaining", (json_int_t)l->remaining);
}

static json_t *entries_encode(const kv_entry *items, size_t n, bool with_value)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, kvjson_entry_encode(&items[i], with_value)) < 0) {
            json_decref(a);
            a = NULL;
        }
    return a;
}

json_t *kvjson_items_encode(const kv_range_res *r, bool with_value)
{
    return entries_encode(r->items, r->count, with_value);
}

json_t *kvjson_range_encode(const kv_range_res *r, bool with_value)
{
    json_t *items = kvjson_items_encode(r, with_value);
    if (!items)
        return NULL;
    return json_pack("{s:I, s:o, s:b}", "revision", (json_int_t)r->revision, "items", items, "more",
                     r->more);
}

json_t *kvjson_snapshot_encode(const kv_snapshot *s)
{
    json_t *items = entries_encode(s->items, s->count, true), *leases = json_array();
    for (size_t i = 0; leases && i < s->nleases; i++)
        if (json_array_append_new(leases, kvjson_lease_encode(&s->leases[i])) < 0) {
            json_decref(leases);
            leases = NULL;
        }
    if (!items || !leases) {
        json_decref(items);
        json_decref(leases);
        return NULL;
    }
    return json_pack("{s:I, s:I, s:o, s:o}", "revision", (json_int_t)s->revision,
                     "compact_revision", (json_int_t)s->compact_revision, "items", items, "leases",
                     leases);
}

/* Appends the compact text of j (a reference taken) to b; false when j is
 * NULL or does not encode. */
static bool dump_json(strbuf *b, json_t *j)
{
    char *t = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    if (!t)
        return false;
    strbuf_str(b, t);
    free(t);
    return true;
}

/* ,"items":[...] of the dump encoders: each entry is encoded alone (its
 * value freed after), so the only big allocation is b's. */
static bool items_dump(strbuf *b, kv_entry *items, size_t n, bool with_value)
{
    size_t need = 16;
    for (size_t i = 0; i < n; i++)
        need += kv_entry_wire_size(strlen(items[i].key), items[i].value_len, with_value);
    strbuf_reserve(b, need);
    strbuf_str(b, "\"items\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            strbuf_add(b, ",", 1);
        if (!dump_json(b, kvjson_entry_encode(&items[i], with_value)))
            return false;
        free(items[i].value);
        items[i].value = NULL;
        items[i].value_len = 0;
    }
    strbuf_add(b, "]", 1);
    return b->err == 0;
}

static char *dump_finish(strbuf *b, bool ok, size_t *len)
{
    if (!ok) {
        strbuf_free(b);
        return NULL;
    }
    strbuf_add(b, "}\n", 2);
    return strbuf_take(b, len);
}

char *kvjson_range_dump(kv_range_res *r, bool with_value, size_t *len)
{
    strbuf b = STRBUF_INIT;
    strbuf_printf(&b, "{\"revision\":%" PRId64 ",", r->revision);
    bool ok = items_dump(&b, r->items, r->count, with_value);
    strbuf_printf(&b, ",\"more\":%s", r->more ? "true" : "false");
    return dump_finish(&b, ok, len);
}

char *kvjson_snapshot_dump(kv_snapshot *s, size_t *len)
{
    strbuf b = STRBUF_INIT;
    strbuf_printf(&b, "{\"revision\":%" PRId64 ",\"compact_revision\":%" PRId64 ",", s->revision,
                  s->compact_revision);
    bool ok = items_dump(&b, s->items, s->count, true);
    strbuf_str(&b, ",\"leases\":[");
    for (size_t i = 0; ok && i < s->nleases; i++) {
        if (i)
            strbuf_add(&b, ",", 1);
        ok = dump_json(&b, kvjson_lease_encode(&s->leases[i]));
    }
    strbuf_add(&b, "]", 1);
    return dump_finish(&b, ok, len);
}

/* ---------------- decoders ---------------- */

/* In strict mode, fails on any member of j not listed in names. */
static int check_members(const json_t *j, bool strict, const char *const *names, const char *what,
                         errdetail *e)
{
    if (!json_is_object(j))
        return errdetail_set(e, CITRUS_EBADJSON, "%s is not a JSON object", what);
    if (!strict)
        return 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)j, k, v)
    {
        size_t i = 0;
        while (names[i] && strcmp(names[i], k) != 0)
            i++;
        if (!names[i])
            return errdetail_set(e, CITRUS_EBADJSON, "%s has an unexpected member \"%s\"", what, k);
    }
    return 0;
}

/* Reads integer member name of j; absent gives def when optional. */
static int get_int(const json_t *j, const char *name, bool optional, int64_t def, int64_t *out,
                   const char *what, errdetail *e)
{
    json_t *v = json_object_get(j, name);
    if (!v && optional) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v))
        return errdetail_set(e, CITRUS_EBADJSON, "%s: \"%s\" is %s", what, name,
                             v ? "not an integer" : "missing");
    *out = (int64_t)json_integer_value(v);
    return 0;
}

/* The array member name of j (absent gives NULL when optional). */
static int get_array(const json_t *j, const char *name, bool optional, json_t **out,
                     const char *what, errdetail *e)
{
    *out = json_object_get(j, name);
    if ((!*out && optional) || json_is_array(*out))
        return 0;
    return errdetail_set(e, CITRUS_EBADJSON, "%s: \"%s\" is %s", what, name,
                         *out ? "not an array" : "missing");
}

/* An entry (what: "item" or "event", for messages). */
static int entry_decode(const json_t *j, bool strict, bool with_value, const char *what,
                        kv_entry *out, errdetail *e)
{
    /* Without the value, the shape is these names after the first. */
    static const char *const names[] = {
        "value", "key", "create_revision", "mod_revision", "version", "lease", NULL};
    memset(out, 0, sizeof(*out));
    int rc = check_members(j, strict, names + (with_value ? 0 : 1), what, e);
    if (rc < 0)
        return rc;
    json_t *key = json_object_get(j, "key"), *val = json_object_get(j, "value");
    if (!json_is_string(key))
        return errdetail_set(e, CITRUS_EBADJSON, "%s: \"key\" is %s", what,
                             key ? "not a string" : "missing");
    size_t klen = json_string_length(key);
    const char *ks = json_string_value(key);
    if (memchr(ks, '\0', klen))
        return errdetail_set(e, CITRUS_EBADJSON, "%s: key contains NUL", what);
    if (with_value && !json_is_string(val))
        return errdetail_set(e, CITRUS_EBADJSON, "%s \"%s\": \"value\" is %s", what, ks,
                             val ? "not a string" : "missing");
    char where[64];
    snprintf(where, sizeof(where), "%s \"%.40s\"", what, ks);
    if ((rc = get_int(j, "create_revision", false, 0, &out->create_revision, where, e)) < 0 ||
        (rc = get_int(j, "mod_revision", false, 0, &out->mod_revision, where, e)) < 0 ||
        (rc = get_int(j, "version", false, 0, &out->version, where, e)) < 0 ||
        (rc = get_int(j, "lease", !strict, 0, &out->lease, where, e)) < 0)
        goto fail;

    size_t vlen = 0;
    unsigned char *value = NULL;
    if (with_value &&
        !(value = base64_decode(json_string_value(val), json_string_length(val), &vlen))) {
        rc = errdetail_set(e, CITRUS_EBADJSON, "%s: \"value\" is not valid base64", where);
        goto fail;
    }
    out->key = strdup(ks);
    if (!out->key) {
        free(value);
        rc = errdetail_set(e, CITRUS_ENOMEM, "out of memory");
        goto fail;
    }
    if (vlen == 0) { /* kv_entry: no value is NULL */
        free(value);
        value = NULL;
    }
    out->value = value;
    out->value_len = vlen;
    return 0;

fail:
    memset(out, 0, sizeof(*out));
    return rc;
}

int kvjson_entry_decode(const json_t *j, bool strict, bool with_value, kv_entry *out, errdetail *e)
{
    return entry_decode(j, strict, with_value, "item", out, e);
}

int kvjson_event_decode(const json_t *j, kv_event *out, errdetail *e)
{
    memset(out, 0, sizeof(*out));
    const char *type = json_string_value(json_object_get(j, "type"));
    bool put = type && strcmp(type, "put") == 0;
    if (!put && !(type && strcmp(type, "delete") == 0))
        return errdetail_set(e, CITRUS_EBADJSON, "event: \"type\" is not \"put\" or \"delete\"");
    out->type = put ? KV_EVENT_PUT : KV_EVENT_DELETE;
    int rc = entry_decode(j, false, put, "event", &out->kv, e);
    if (rc < 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

int kvjson_lease_decode(const json_t *j, bool strict, kv_lease_info *out, errdetail *e)
{
    static const char *const names[] = {"id", "ttl", "remaining", NULL};
    memset(out, 0, sizeof(*out));
    int rc = check_members(j, strict, names, "lease", e);
    if (rc < 0)
        return rc;
    if ((rc = get_int(j, "id", false, 0, &out->id, "lease", e)) < 0 ||
        (rc = get_int(j, "ttl", false, 0, &out->ttl, "lease", e)) < 0 ||
        (rc = get_int(j, "remaining", !strict, out->ttl, &out->remaining, "lease", e)) < 0) {
        memset(out, 0, sizeof(*out));
        return rc;
    }
    return 0;
}

/* Room for the n elements of an array member (one at least, so that an
 * empty array is not NULL), zeroed; NULL with the reason in e. */
static void *slots(size_t n, size_t size, errdetail *e)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    return p;
}

/* Decodes the entries of array a (not strict) into *items; *n counts them,
 * on failure up to the one that failed (left zeroed), for the caller's
 * free. */
static int entries_decode(const json_t *a, bool with_value, kv_entry **items, size_t *n,
                          errdetail *e)
{
    size_t len = json_array_size(a);
    int rc = (*items = slots(len, sizeof(**items), e)) ? 0 : CITRUS_ENOMEM;
    for (*n = 0; rc == 0 && *n < len; (*n)++)
        rc = kvjson_entry_decode(json_array_get(a, *n), false, with_value, &(*items)[*n], e);
    return rc;
}

int kvjson_range_decode(const json_t *j, bool with_value, kv_range_res *out, errdetail *e)
{
    memset(out, 0, sizeof(*out));
    json_t *items = NULL, *more = json_object_get(j, "more");
    int rc = check_members(j, false, NULL, "range", e);
    if (rc == 0)
        rc = get_int(j, "revision", false, 0, &out->revision, "range", e);
    if (rc == 0)
        rc = get_array(j, "items", false, &items, "range", e);
    if (rc == 0 && more && !json_is_boolean(more))
        rc = errdetail_set(e, CITRUS_EBADJSON, "range: \"more\" is not true or false");
    if (rc == 0)
        rc = entries_decode(items, with_value, &out->items, &out->count, e);
    if (rc < 0) {
        kv_range_res_free(out);
        return rc;
    }
    out->more = json_is_true(more);
    return 0;
}

int kvjson_watch_decode(const json_t *j, kvjson_watch *out, errdetail *e)
{
    memset(out, 0, sizeof(*out));
    json_t *events = NULL;
    int rc = check_members(j, false, NULL, "watch answer", e);
    if (rc == 0)
        rc = get_int(j, "revision", false, 0, &out->revision, "watch answer", e);
    if (rc == 0)
        rc = get_array(j, "events", false, &events, "watch answer", e);
    size_t n = json_array_size(events);
    if (rc == 0 && !(out->events = slots(n, sizeof(*out->events), e)))
        rc = CITRUS_ENOMEM;
    for (; rc == 0 && out->count < n; out->count++)
        rc = kvjson_event_decode(json_array_get(events, out->count), &out->events[out->count], e);
    if (rc < 0)
        kvjson_watch_free(out);
    return rc;
}

void kvjson_watch_free(kvjson_watch *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->count; i++)
        kv_entry_clear(&w->events[i].kv);
    free(w->events);
    memset(w, 0, sizeof(*w));
}

int kvjson_snapshot_decode(const json_t *j, kv_snapshot *out, errdetail *e)
{
    memset(out, 0, sizeof(*out));
    json_t *items = NULL, *leases = NULL;
    int rc = check_members(j, false, NULL, "snapshot", e);
    if (rc == 0)
        rc = get_int(j, "revision", false, 0, &out->revision, "snapshot", e);
    if (rc == 0)
        rc = get_int(j, "compact_revision", true, 0, &out->compact_revision, "snapshot", e);
    if (rc == 0)
        rc = get_array(j, "items", false, &items, "snapshot", e);
    if (rc == 0)
        rc = get_array(j, "leases", true, &leases, "snapshot", e);
    if (rc == 0)
        rc = entries_decode(items, true, &out->items, &out->count, e);
    size_t m = json_array_size(leases);
    if (rc == 0 && !(out->leases = slots(m, sizeof(*out->leases), e)))
        rc = CITRUS_ENOMEM;
    for (size_t i = 0; rc == 0 && i < m; i++, out->nleases++)
        rc = kvjson_lease_decode(json_array_get(leases, i), false, &out->leases[i], e);
    if (rc < 0)
        kv_snapshot_free(out);
    return rc;
}
