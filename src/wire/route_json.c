/* wire/route_json.c — decoding the ring meta, token lists and tenant pins
 * (see route_json.h). */
#include "wire/route_json.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "citrus/errors.h"

int route_json_meta(const void *v, size_t len, citrus_hash_fn *hash, size_t *vnodes)
{
    json_t *j = json_loadb(v, len, 0, NULL);
    json_t *vn = json_object_get(j, "vnodes");
    int rc = CITRUS_ECORRUPT;
    if (citrus_hash_parse(json_string_value(json_object_get(j, "hash")), hash) == 0 &&
        json_is_integer(vn) && json_integer_value(vn) >= 1) {
        *vnodes = (size_t)json_integer_value(vn);
        rc = 0;
    }
    json_decref(j);
    return rc;
}

int route_json_tokens(const void *v, size_t len, uint64_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    json_t *j = json_loadb(v, len, 0, NULL);
    json_t *a = json_object_get(j, "tokens");
    if (!json_is_array(a)) {
        json_decref(j);
        return CITRUS_ECORRUPT;
    }
    size_t cnt = json_array_size(a);
    uint64_t *t = cnt ? malloc(cnt * sizeof(*t)) : NULL;
    if (cnt && !t) {
        json_decref(j);
        return CITRUS_ENOMEM;
    }
    for (size_t i = 0; i < cnt; i++) {
        const char *s = json_string_value(json_array_get(a, i));
        char *end = NULL;
        t[i] = s ? strtoull(s, &end, 10) : 0;
        if (!s || !*s || *end) {
            free(t);
            json_decref(j);
            return CITRUS_ECORRUPT;
        }
    }
    json_decref(j);
    *out = t;
    *n = cnt;
    return 0;
}

static uint64_t u64_field(json_t *j, const char *name)
{
    const char *s = json_string_value(json_object_get(j, name));
    return s ? strtoull(s, NULL, 10) : 0;
}

int route_json_pin(const void *v, size_t len, struct tenant_pin *out)
{
    json_t *j = json_loadb(v, len, 0, NULL);
    const char *sid = json_string_value(json_object_get(j, "shard_id"));
    if (!sid) {
        json_decref(j);
        return CITRUS_ECORRUPT;
    }
    snprintf(out->shard_id, sizeof(out->shard_id), "%s", sid);
    out->hash = u64_field(j, "hash");
    out->token = u64_field(j, "token");
    out->pinned_ms = json_integer_value(json_object_get(j, "pinned_ms"));
    const char *bt = json_string_value(json_object_get(j, "business_type"));
    snprintf(out->business_type, sizeof(out->business_type), "%s", bt ? bt : "");
    json_decref(j);
    return 0;
}
