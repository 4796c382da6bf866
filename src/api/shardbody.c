/* api/shardbody.c — the POST and PATCH bodies of /v1/shards (see
 * shardbody.h). The list members are decoded by wire/shard_json.c, with
 * the API's own checks on each item. */
#include "api/shardbody.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "dbconn/driver.h"
#include "provision/schema.h"
#include "wire/shard_json.h"

/* Characters (code points) of a valid UTF-8 string. */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static bool has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* The first member of o not in names, or NULL. */
static const char *unknown_member(json_t *o, const char *const *names)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        size_t i = 0;
        while (names[i] && strcmp(names[i], k) != 0)
            i++;
        if (!names[i])
            return k;
    }
    return NULL;
}

/* A body that is an object of only the members in names; else the error,
 * with unknown (what the member is said to be) after its name. */
static int body_members(json_t *body, const char *const *names, const char *unknown, errdetail *e)
{
    if (!json_is_object(body))
        return errdetail_set(e, CITRUS_EBADJSON, "body: must be a JSON object");
    const char *bad = unknown_member(body, names);
    if (bad)
        return errdetail_set(e, CITRUS_EBADJSON, "%.64s: %s", bad, unknown);
    return 0;
}

/* Absent members and null count as not given. */
static json_t *given(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    return json_is_null(v) ? NULL : v;
}

/* ---- fields ---------------------------------------------------------- */

/* A replica: a DSN the process's DSN rules accept (a
 * shard_json_string_check). */
static int check_dsn(const char *name, size_t i, const char *dsn, errdetail *e)
{
    int rc = drv_dsn_check(dsn, e);
    if (rc < 0)
        errdetail_prefix(e, "%s[%zu]", name, i);
    return rc;
}

/* A tag within the API's limits (a shard_json_tag_check). */
static int check_tag(const char *key, const char *val, errdetail *e)
{
    size_t kn = utf8_chars(key);
    if (kn == 0 || kn > SHARDBODY_TAG_KEY_MAX || has_ctl(key))
        return errdetail_set(e, CITRUS_EINVAL,
                             "tags: keys must be 1..%d characters, without control characters",
                             SHARDBODY_TAG_KEY_MAX);
    if (utf8_chars(val) > SHARDBODY_TAG_VALUE_MAX)
        return errdetail_set(e, CITRUS_EINVAL, "tags.%s: at most %d characters", key,
                             SHARDBODY_TAG_VALUE_MAX);
    return 0;
}

static int tags_from(json_t *v, shard_tag **out, size_t *n, errdetail *e)
{
    if (json_object_size(v) > SHARD_MAX_TAGS)
        return errdetail_set(e, CITRUS_ETOOMANY, "tags: at most %d tags", SHARD_MAX_TAGS);
    return shard_json_tags(v, check_tag, out, n, e);
}

/* A template name at v (where names it). */
static int template_from(json_t *v, const char *where, char **out, errdetail *e)
{
    if (!json_is_string(v))
        return errdetail_set(e, CITRUS_EBADJSON, "%s: must be a string", where);
    const char *s = json_string_value(v);
    if (!schema_template_valid(s))
        return errdetail_set(e, CITRUS_EINVAL, "%s: must be 1..64 characters of [A-Za-z0-9_-]",
                             where);
    if (*out && strcmp(*out, s) != 0)
        return errdetail_set(e, CITRUS_EINVAL, "%s: differs from the top-level template", where);
    if (!*out && !(*out = strdup(s)))
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    return 0;
}

static int zone_from(json_t *v, char **out, errdetail *e)
{
    if (!json_is_string(v))
        return errdetail_set(e, CITRUS_EBADJSON, "zone: must be a string");
    const char *s = json_string_value(v);
    size_t n = utf8_chars(s);
    if (n == 0 || n > SHARDBODY_ZONE_MAX || has_ctl(s))
        return errdetail_set(e, CITRUS_EINVAL, "zone: must be 1..%d characters",
                             SHARDBODY_ZONE_MAX);
    *out = strdup(s);
    return *out ? 0 : errdetail_set(e, CITRUS_ENOMEM, "out of memory");
}

static int weight_from(json_t *v, double *out, errdetail *e)
{
    if (!json_is_number(v) || !shard_weight_valid(json_number_value(v)))
        return errdetail_set(e, CITRUS_EINVAL, "weight: must be a number > 0 and <= 100");
    *out = json_number_value(v);
    return 0;
}

/* ---- POST /v1/shards --------------------------------------------------- */

static int spec_id(json_t *v, shard_spec *out, errdetail *e)
{
    if (!json_is_string(v))
        return errdetail_set(e, CITRUS_EBADJSON, "id: must be a string");
    if (!shard_id_valid(json_string_value(v)))
        return errdetail_set(
            e, CITRUS_EINVAL,
            "id: must be 1..%d characters of [a-z0-9_-], starting with a letter or digit",
            SHARD_ID_MAX);
    snprintf(out->id, sizeof(out->id), "%s", json_string_value(v));
    return 0;
}

static int spec_dsn(json_t *v, shard_spec *out, errdetail *e)
{
    if (!json_is_string(v))
        return errdetail_set(e, CITRUS_EBADJSON, "dsn: must be a string");
    int rc = drv_dsn_check(json_string_value(v), e);
    if (rc < 0) {
        errdetail_prefix(e, "dsn");
        return rc;
    }
    out->dsn = strdup(json_string_value(v));
    return out->dsn ? 0 : errdetail_set(e, CITRUS_ENOMEM, "out of memory");
}

/* Replicas may not repeat each other or the primary. */
static int spec_replicas_distinct(const shard_spec *s, errdetail *e)
{
    for (size_t i = 0; i < s->nreplicas; i++) {
        bool primary = s->dsn && strcmp(s->replicas[i], s->dsn) == 0, dup = primary;
        for (size_t k = 0; !dup && k < i; k++)
            dup = strcmp(s->replicas[i], s->replicas[k]) == 0;
        if (dup)
            return errdetail_set(e, CITRUS_EINVAL, "replicas[%zu]: repeats %s", i,
                                 primary ? "dsn" : "an earlier replica");
    }
    return 0;
}

static int spec_provision(json_t *v, shard_spec *out, errdetail *e)
{
    static const char *const names[] = {"template", "params", NULL};
    if (!json_is_object(v))
        return errdetail_set(e, CITRUS_EBADJSON, "provision: must be an object");
    const char *bad = unknown_member(v, names);
    if (bad)
        return errdetail_set(e, CITRUS_EBADJSON,
                             "provision.%.64s: unknown field (allowed: template, params)", bad);
    out->provision = true;
    json_t *t = given(v, "template");
    int rc = t ? template_from(t, "provision.template", &out->template_name, e) : 0;
    json_t *p = given(v, "params");
    if (rc == 0 && p && !json_is_object(p))
        return errdetail_set(e, CITRUS_EBADJSON, "provision.params: must be an object");
    if (rc == 0 && p)
        out->params = json_incref(p);
    return rc;
}

/* The fields of a spec other than dsn/provision. */
static int spec_fields(json_t *body, shard_spec *out, errdetail *e)
{
    json_t *v;
    int rc = 0;
    if ((v = given(body, "id")))
        rc = spec_id(v, out, e);
    if (rc == 0 && (v = given(body, "zone")))
        rc = zone_from(v, &out->zone, e);
    if (rc == 0 && (v = given(body, "weight")))
        rc = weight_from(v, &out->weight, e);
    if (rc == 0 && (v = given(body, "tags")))
        rc = tags_from(v, &out->tags, &out->ntags, e);
    if (rc == 0 && (v = given(body, "template")))
        rc = template_from(v, "template", &out->template_name, e);
    return rc;
}

/* dsn (with replicas) or provision, exactly one. */
static int spec_source(json_t *body, shard_spec *out, errdetail *e)
{
    json_t *dsn = given(body, "dsn"), *prov = given(body, "provision");
    json_t *reps = given(body, "replicas");
    const char *why = NULL;
    if (!dsn && !prov)
        why = "dsn, provision: give one (dsn registers an existing database, provision creates "
              "one)";
    else if (dsn && prov)
        why = "dsn, provision: give only one of them";
    else if (reps && !dsn)
        why = "replicas: only with dsn (a provisioned shard gets its replicas from the "
              "provisioner)";
    if (why)
        return errdetail_set(e, CITRUS_EINVAL, "%s", why);
    if (prov)
        return spec_provision(prov, out, e);
    int rc = spec_dsn(dsn, out, e);
    if (rc == 0 && reps)
        rc = shard_json_strings(reps, "replicas", check_dsn, &out->replicas, &out->nreplicas, e);
    return rc == 0 ? spec_replicas_distinct(out, e) : rc;
}

int shardbody_spec(json_t *body, shard_spec *out, errdetail *e)
{
    static const char *const names[] = {"id",   "dsn",      "replicas",  "zone", "weight",
                                        "tags", "template", "provision", NULL};
    memset(out, 0, sizeof(*out));
    out->weight = 1.0;
    int rc = body_members(body, names,
                          "unknown field (allowed: id, dsn, replicas, zone, weight, tags, "
                          "template, provision)",
                          e);
    if (rc == 0)
        rc = spec_fields(body, out, e);
    if (rc == 0)
        rc = spec_source(body, out, e);
    if (rc < 0)
        shardbody_spec_clear(out);
    return rc;
}

void shardbody_spec_clear(shard_spec *s)
{
    free(s->dsn);
    shard_strings_free(s->replicas, s->nreplicas);
    free(s->zone);
    shard_tags_free(s->tags, s->ntags);
    free(s->template_name);
    json_decref(s->params);
    memset(s, 0, sizeof(*s));
    s->weight = 1.0;
}

/* ---- PATCH /v1/shards/{id} --------------------------------------------- */

static int patch_fields(json_t *body, shard_patch *out, errdetail *e)
{
    json_t *v;
    int rc = 0;
    if ((v = json_object_get(body, "weight"))) {
        out->has_weight = true;
        rc = weight_from(v, &out->weight, e);
    }
    if (rc == 0 && (v = json_object_get(body, "zone"))) {
        out->has_zone = true;
        rc = json_is_null(v) ? 0 : zone_from(v, &out->zone, e);
    }
    if (rc == 0 && (v = json_object_get(body, "tags"))) {
        out->has_tags = true;
        rc = tags_from(v, &out->tags, &out->ntags, e);
    }
    return rc;
}

int shardbody_patch(json_t *body, shard_patch *out, errdetail *e)
{
    static const char *const names[] = {"weight", "zone", "tags", NULL};
    memset(out, 0, sizeof(*out));
    int rc = body_members(body, names,
                          "unknown field or not changeable (allowed: weight, zone, tags)", e);
    if (rc < 0)
        return rc;
    if (json_object_size(body) == 0)
        return errdetail_set(e, CITRUS_EINVAL, "body: give at least one of weight, zone, tags");
    rc = patch_fields(body, out, e);
    if (rc < 0)
        shardbody_patch_clear(out);
    return rc;
}

void shardbody_patch_clear(shard_patch *p)
{
    free(p->zone);
    shard_tags_free(p->tags, p->ntags);
    memset(p, 0, sizeof(*p));
}

int shardbody_patch_apply(shard *s, const shard_patch *p, int64_t now_ms)
{
    char *zone = p->has_zone && p->zone ? strdup(p->zone) : NULL;
    shard_tag *tags = p->has_tags ? shard_tags_copy(p->tags, p->ntags) : NULL;
    if ((p->has_zone && p->zone && !zone) || (p->has_tags && !tags)) {
        free(zone);
        shard_tags_free(tags, p->ntags);
        return CITRUS_ENOMEM;
    }
    if (p->has_weight)
        s->weight = p->weight;
    if (p->has_zone) {
        free(s->zone);
        s->zone = zone;
    }
    if (p->has_tags) {
        shard_tags_free(s->tags, s->ntags);
        s->tags = tags;
        s->ntags = p->ntags;
    }
    s->epoch++;
    s->updated_ms = now_ms;
    return 0;
}
