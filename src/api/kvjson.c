/* api/kvjson.c — JSON encoding of entries and events; shared request checks. */
#include "api/kvjson.h"

#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "core/key.h"
#include "wire/base64.h"

json_t *kvjson_entry(const kv_entry *e, bool with_value)
{
    json_t *o = json_object();
    json_object_set_new(o, "key", json_string(e->key));
    if (with_value) {
        char *b64 = base64_encode(e->value, e->value_len);
        json_object_set_new(o, "value", b64 ? json_string(b64) : json_null());
        free(b64);
    }
    json_object_set_new(o, "create_revision", json_integer(e->create_revision));
    json_object_set_new(o, "mod_revision", json_integer(e->mod_revision));
    json_object_set_new(o, "version", json_integer(e->version));
    json_object_set_new(o, "lease", json_integer(e->lease));
    return o;
}

json_t *kvjson_event(const kv_event *ev)
{
    json_t *o = kvjson_entry(&ev->kv, ev->type == KV_EVENT_PUT);
    json_object_set_new(o, "type", json_string(ev->type == KV_EVENT_PUT ? "put" : "delete"));
    return o;
}

json_t *kvjson_items(const kv_range_res *r, bool with_value)
{
    json_t *a = json_array();
    for (size_t i = 0; i < r->count; i++)
        json_array_append_new(a, kvjson_entry(&r->items[i], with_value));
    return a;
}

int kvjson_check_key(http_req *r, const char *key, bool prefix)
{
    const char *why = NULL;
    size_t len = strlen(key);
    int rc = prefix ? key_validate_prefix(key, len, &why) : key_validate(key, len, &why);
    if (rc < 0)
        http_reply_error(r, rc, why, NULL);
    return rc;
}

int kvjson_reply_store_error(http_req *r, int err)
{
    return http_reply_error(r, err, NULL, NULL);
}
