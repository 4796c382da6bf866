/* wire/snapshot_json.c — entries, leases and snapshots to and from JSON. */
#include "wire/snapshot_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "wire/base64.h"

/* In strict mode, fails on any member of j not listed in names. */
static int check_members(const json_t *j, bool strict, const char *const *names, const char *what,
                         char *errbuf, size_t errlen)
{
    if (!json_is_object(j)) {
        snprintf(errbuf, errlen, "%s is not a JSON object", what);
        return CITRUS_EBADJSON;
    }
    if (!strict)
        return 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)j, k, v)
    {
        size_t i = 0;
        while (names[i] && strcmp(names[i], k) != 0)
            i++;
        if (!names[i]) {
            snprintf(errbuf, errlen, "%s has an unexpected member \"%s\"", what, k);
            return CITRUS_EBADJSON;
        }
    }
    return 0;
}

/* Reads integer member name of j; absent gives def when optional. */
static int get_int(const json_t *j, const char *name, bool optional, int64_t def, int64_t *out,
                   const char *what, char *errbuf, size_t errlen)
{
    json_t *v = json_object_get(j, name);
    if (!v && optional) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v)) {
        snprintf(errbuf, errlen, "%s: \"%s\" is %s", what, name, v ? "not an integer" : "missing");
        return CITRUS_EBADJSON;
    }
    *out = (int64_t)json_integer_value(v);
    return 0;
}

int snapshot_json_entry_decode(const json_t *j, bool strict, kv_entry *out, char *errbuf,
                               size_t errlen)
{
    static const char *const names[] = {
        "key", "value", "create_revision", "mod_revision", "version", "lease", NULL};
    memset(out, 0, sizeof(*out));
    int rc = check_members(j, strict, names, "item", errbuf, errlen);
    if (rc < 0)
        return rc;
    json_t *key = json_object_get(j, "key"), *val = json_object_get(j, "value");
    if (!json_is_string(key)) {
        snprintf(errbuf, errlen, "item: \"key\" is %s", key ? "not a string" : "missing");
        return CITRUS_EBADJSON;
    }
    size_t klen = json_string_length(key);
    const char *ks = json_string_value(key);
    if (memchr(ks, '\0', klen)) {
        snprintf(errbuf, errlen, "item: key contains NUL");
        return CITRUS_EBADJSON;
    }
    if (!json_is_string(val)) {
        snprintf(errbuf, errlen, "item \"%s\": \"value\" is %s", ks,
                 val ? "not a string" : "missing");
        return CITRUS_EBADJSON;
    }
    char what[64];
    snprintf(what, sizeof(what), "item \"%.40s\"", ks);
    if ((rc = get_int(j, "create_revision", false, 0, &out->create_revision, what, errbuf,
                      errlen)) < 0 ||
        (rc = get_int(j, "mod_revision", false, 0, &out->mod_revision, what, errbuf, errlen)) < 0 ||
        (rc = get_int(j, "version", false, 0, &out->version, what, errbuf, errlen)) < 0 ||
        (rc = get_int(j, "lease", !strict, 0, &out->lease, what, errbuf, errlen)) < 0)
        goto fail;

    size_t vlen;
    unsigned char *value = base64_decode(json_string_value(val), json_string_length(val), &vlen);
    if (!value) {
        snprintf(errbuf, errlen, "%s: \"value\" is not valid base64", what);
        rc = CITRUS_EBADJSON;
        goto fail;
    }
    out->key = strdup(ks);
    if (!out->key) {
        free(value);
        snprintf(errbuf, errlen, "out of memory");
        rc = CITRUS_ENOMEM;
        goto fail;
    }
    if (vlen == 0) {
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

json_t *snapshot_json_entry_encode(const kv_entry *e)
{
    char *b64 = base64_encode(e->value, e->value_len);
    if (!b64)
        return NULL;
    /* "s" fails (NULL) on a key that is not UTF-8, as it should. */
    json_t *j =
        json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "key", e->key, "value", b64, "create_revision",
                  (json_int_t)e->create_revision, "mod_revision", (json_int_t)e->mod_revision,
                  "version", (json_int_t)e->version, "lease", (json_int_t)e->lease);
    free(b64);
    return j;
}

int snapshot_json_lease_decode(const json_t *j, bool strict, kv_lease_info *out, char *errbuf,
                               size_t errlen)
{
    static const char *const names[] = {"id", "ttl", "remaining", NULL};
    memset(out, 0, sizeof(*out));
    int rc = check_members(j, strict, names, "lease", errbuf, errlen);
    if (rc < 0)
        return rc;
    if ((rc = get_int(j, "id", false, 0, &out->id, "lease", errbuf, errlen)) < 0 ||
        (rc = get_int(j, "ttl", false, 0, &out->ttl, "lease", errbuf, errlen)) < 0 ||
        (rc = get_int(j, "remaining", !strict, out->ttl, &out->remaining, "lease", errbuf,
                      errlen)) < 0) {
        memset(out, 0, sizeof(*out));
        return rc;
    }
    return 0;
}

json_t *snapshot_json_lease_encode(const kv_lease_info *l)
{
    return json_pack("{s:I, s:I, s:I}", "id", (json_int_t)l->id, "ttl", (json_int_t)l->ttl,
                     "remaining", (json_int_t)l->remaining);
}

int snapshot_json_decode(const json_t *j, kv_snapshot *out, char *errbuf, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    int rc;
    if (!json_is_object(j)) {
        snprintf(errbuf, errlen, "snapshot is not a JSON object");
        return CITRUS_EBADJSON;
    }
    if ((rc = get_int(j, "revision", false, 0, &out->revision, "snapshot", errbuf, errlen)) < 0 ||
        (rc = get_int(j, "compact_revision", true, 0, &out->compact_revision, "snapshot", errbuf,
                      errlen)) < 0)
        goto fail;
    json_t *items = json_object_get(j, "items"), *leases = json_object_get(j, "leases");
    if (!json_is_array(items) || (leases && !json_is_array(leases))) {
        snprintf(errbuf, errlen, "snapshot: \"%s\" is not an array",
                 json_is_array(items) ? "leases" : "items");
        rc = CITRUS_EBADJSON;
        goto fail;
    }
    size_t n = json_array_size(items), m = json_array_size(leases);
    out->items = calloc(n ? n : 1, sizeof(*out->items));
    out->leases = calloc(m ? m : 1, sizeof(*out->leases));
    if (!out->items || !out->leases) {
        snprintf(errbuf, errlen, "out of memory");
        rc = CITRUS_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < n; i++, out->count++)
        if ((rc = snapshot_json_entry_decode(json_array_get(items, i), false, &out->items[i],
                                             errbuf, errlen)) < 0)
            goto fail;
    for (size_t i = 0; i < m; i++, out->nleases++)
        if ((rc = snapshot_json_lease_decode(json_array_get(leases, i), false, &out->leases[i],
                                             errbuf, errlen)) < 0)
            goto fail;
    return 0;

fail:
    kv_snapshot_free(out);
    return rc;
}
