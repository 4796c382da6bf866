/* wire/shard_json.c — the shard record to and from JSON.
 *
 * One codec for both sides: the API renders records with shard_to_json and
 * the catalog stores exactly that form (reading it back with
 * shard_from_json, as libcitrus does). The API's request bodies are
 * api/shardbody.c's; they share the list decoders below. */
#include "wire/shard_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "core/utf8.h"

/* ---- times ----------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

void shard_json_time(int64_t ms, char *buf, size_t len)
{
    int64_t secs = ms / 1000, frac = ms % 1000;
    if (frac < 0) {
        frac += 1000;
        secs--;
    }
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(buf, len, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)y, m, d,
             (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60), (int)frac);
}

/* n decimal digits at s; -1 when one is not a digit. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int days_in_month(int y, int m)
{
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dim[m - 1];
}

/* ".fff…" then "Z" at s; the milliseconds (truncated) or -1. */
static int parse_fraction(const char *s)
{
    int ms = 0, n = 0;
    if (*s == '.') {
        for (s++; *s >= '0' && *s <= '9'; s++, n++)
            if (n < 3)
                ms = ms * 10 + (*s - '0');
        if (n == 0 || n > 9)
            return -1;
        for (; n < 3; n++)
            ms *= 10;
    }
    return s[0] == 'Z' && s[1] == '\0' ? ms : -1;
}

int shard_json_parse_time(const char *s, int64_t *ms)
{
    if (!s || strlen(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':')
        return CITRUS_EINVAL;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int h = digits(s + 11, 2), mi = digits(s + 14, 2), sec = digits(s + 17, 2);
    int frac = parse_fraction(s + 19);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h < 0 || h > 23 ||
        mi < 0 || mi > 59 || sec < 0 || sec > 59 || frac < 0)
        return CITRUS_EINVAL;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + sec;
    *ms = secs * 1000 + frac;
    return 0;
}

/* ---- record -> JSON -------------------------------------------------- */

/* A JSON string of s (bytes that are not UTF-8 become '?'), null for NULL. */
static json_t *jstr(const char *s)
{
    if (!s)
        return json_null();
    size_t n = strlen(s);
    if (utf8_valid((const unsigned char *)s, n))
        return json_stringn(s, n);
    char *clean = malloc(n + 1);
    if (!clean)
        return NULL;
    utf8_sanitize(s, clean);
    json_t *j = json_stringn(clean, n);
    free(clean);
    return j;
}

static json_t *jtime(int64_t ms)
{
    char buf[32];
    shard_json_time(ms, buf, sizeof(buf));
    return json_string(buf);
}

static json_t *replicas_json(const shard *s)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < s->nreplicas; i++) {
        if (json_array_append_new(a, jstr(s->replicas[i])) < 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static json_t *tags_json(const shard_tag *tags, size_t ntags)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < ntags; i++) {
        if (json_object_set_new(o, tags[i].key, jstr(tags[i].value)) < 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static json_t *event_json(const shard_event *e)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = json_object_set_new(o, "at", jtime(e->at_ms));
    bad |= json_object_set_new(o, "from", json_string(shard_state_name(e->from)));
    bad |= json_object_set_new(o, "to", json_string(shard_state_name(e->to)));
    bad |= json_object_set_new(o, "reason", jstr(e->reason ? e->reason : ""));
    bad |= json_object_set_new(o, "actor", jstr(e->actor ? e->actor : ""));
    if (e->epoch > 0)
        bad |= json_object_set_new(o, "epoch", json_integer(e->epoch));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *history_json(const shard *s)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < s->nhistory; i++) {
        if (json_array_append_new(a, event_json(&s->history[i])) < 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

json_t *shard_to_json(const shard *s, bool with_history)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = json_object_set_new(o, "id", json_string(s->id));
    bad |= json_object_set_new(o, "state", json_string(shard_state_name(s->state)));
    bad |= json_object_set_new(o, "dsn", jstr(s->dsn));
    bad |= json_object_set_new(o, "replicas", replicas_json(s));
    bad |= json_object_set_new(o, "zone", jstr(s->zone));
    bad |= json_object_set_new(o, "weight", json_real(s->weight));
    bad |= json_object_set_new(o, "tags", tags_json(s->tags, s->ntags));
    bad |= json_object_set_new(o, "epoch", json_integer(s->epoch));
    bad |= json_object_set_new(o, "base_epoch", json_integer(s->base_epoch));
    bad |= json_object_set_new(o, "created_at", jtime(s->created_ms));
    bad |= json_object_set_new(o, "updated_at", jtime(s->updated_ms));
    bad |= json_object_set_new(o, "template", jstr(s->template_name));
    bad |= json_object_set_new(o, "error", jstr(s->error));
    if (with_history)
        bad |= json_object_set_new(o, "history", history_json(s));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- shared field readers -------------------------------------------- */

/* Optional string member: absent or null gives NULL. */
static int opt_string(json_t *j, const char *name, const char *where, char **out, errdetail *e)
{
    json_t *v = json_object_get(j, name);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return errdetail_set(e, CITRUS_EBADJSON, "%s%s: must be a string or null", where, name);
    *out = strdup(json_string_value(v));
    return *out ? 0 : errdetail_set(e, CITRUS_ENOMEM, "out of memory");
}

static int req_string(json_t *j, const char *name, const char *where, const char **out,
                      errdetail *e)
{
    json_t *v = json_object_get(j, name);
    if (!json_is_string(v))
        return errdetail_set(e, CITRUS_EBADJSON, "%s%s: %s", where, name,
                             v ? "must be a string" : "missing");
    *out = json_string_value(v);
    return 0;
}

static int req_time(json_t *j, const char *name, const char *where, int64_t *out, errdetail *e)
{
    const char *s = NULL;
    int rc = req_string(j, name, where, &s, e);
    if (rc < 0)
        return rc;
    if (shard_json_parse_time(s, out) < 0)
        return errdetail_set(e, CITRUS_EBADJSON,
                             "%s%s: must be an RFC 3339 UTC time like 2026-11-22T07:40:00.123Z",
                             where, name);
    return 0;
}

static int req_state(json_t *j, const char *name, const char *where, shard_state *out, errdetail *e)
{
    const char *s = NULL;
    int rc = req_string(j, name, where, &s, e);
    if (rc < 0)
        return rc;
    if (shard_state_parse(s, out) < 0)
        return errdetail_set(e, CITRUS_EBADJSON, "%s%s: unknown state '%.32s'", where, name, s);
    return 0;
}

/* Optional weight (absent gives 1). */
static int opt_weight(json_t *j, double *out, errdetail *e)
{
    json_t *v = json_object_get(j, "weight");
    *out = 1.0;
    if (!v)
        return 0;
    if (!json_is_number(v) || !shard_weight_valid(json_number_value(v)))
        return errdetail_set(e, CITRUS_EINVAL, "weight: must be a number > 0 and <= 100");
    *out = json_number_value(v);
    return 0;
}

static int strings_fill(json_t *a, const char *name, shard_json_string_check check, char **out,
                        size_t *n, errdetail *e)
{
    for (*n = 0; *n < json_array_size(a); (*n)++) {
        json_t *v = json_array_get(a, *n);
        if (!json_is_string(v))
            return errdetail_set(e, CITRUS_EBADJSON, "%s[%zu]: must be a string", name, *n);
        int rc = check ? check(name, *n, json_string_value(v), e) : 0;
        if (rc < 0)
            return rc;
        if (!(out[*n] = strdup(json_string_value(v))))
            return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    }
    return 0;
}

int shard_json_strings(json_t *a, const char *name, shard_json_string_check check, char ***out,
                       size_t *n, errdetail *e)
{
    *out = NULL;
    *n = 0;
    if (!json_is_array(a))
        return errdetail_set(e, CITRUS_EBADJSON, "%s: must be an array of DSN strings", name);
    size_t len = json_array_size(a);
    if (len > SHARD_MAX_REPLICAS)
        return errdetail_set(e, CITRUS_ETOOMANY, "%s: at most %d replicas", name,
                             SHARD_MAX_REPLICAS);
    char **v = calloc(len ? len : 1, sizeof(char *));
    if (!v)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    size_t k = 0;
    int rc = strings_fill(a, name, check, v, &k, e);
    if (rc < 0) {
        shard_strings_free(v, k);
        return rc;
    }
    *out = v;
    *n = k;
    return 0;
}

static int tags_fill(json_t *o, shard_json_tag_check check, shard_tag *out, size_t *n, errdetail *e)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        if (!json_is_string(v))
            return errdetail_set(e, CITRUS_EBADJSON, "tags.%.64s: must be a string", k);
        int rc = check ? check(k, json_string_value(v), e) : 0;
        if (rc < 0)
            return rc;
        shard_tag *t = &out[(*n)++];
        t->key = strdup(k);
        t->value = strdup(json_string_value(v));
        if (!t->key || !t->value)
            return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    }
    return 0;
}

int shard_json_tags(json_t *o, shard_json_tag_check check, shard_tag **out, size_t *n, errdetail *e)
{
    *out = NULL;
    *n = 0;
    if (!json_is_object(o))
        return errdetail_set(e, CITRUS_EBADJSON, "tags: must be an object of string values");
    size_t len = json_object_size(o);
    shard_tag *v = calloc(len ? len : 1, sizeof(shard_tag));
    if (!v)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    size_t k = 0;
    int rc = tags_fill(o, check, v, &k, e);
    if (rc < 0) {
        shard_tags_free(v, k);
        return rc;
    }
    *out = v;
    *n = k;
    return 0;
}

/* ---- JSON -> record -------------------------------------------------- */

/* An optional epoch (an integer >= 0; absent or null: 0). */
static int opt_epoch(json_t *j, const char *name, const char *where, int64_t *out, errdetail *e)
{
    json_t *v = json_object_get(j, name);
    *out = 0;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return errdetail_set(e, CITRUS_EBADJSON, "%s%s: must be an integer >= 0", where, name);
    *out = json_integer_value(v);
    return 0;
}

static int event_from_json(json_t *ev, size_t i, shard_event *out, errdetail *e)
{
    char where[40];
    snprintf(where, sizeof(where), "history[%zu].", i);
    if (!json_is_object(ev))
        return errdetail_set(e, CITRUS_EBADJSON, "history[%zu]: must be an object", i);
    int rc = req_time(ev, "at", where, &out->at_ms, e);
    if (rc == 0)
        rc = req_state(ev, "from", where, &out->from, e);
    if (rc == 0)
        rc = req_state(ev, "to", where, &out->to, e);
    if (rc == 0)
        rc = opt_string(ev, "reason", where, &out->reason, e);
    if (rc == 0)
        rc = opt_string(ev, "actor", where, &out->actor, e);
    if (rc == 0)
        rc = opt_epoch(ev, "epoch", where, &out->epoch, e);
    if (rc == 0 && !out->reason && !(out->reason = strdup("")))
        rc = errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    if (rc == 0 && !out->actor && !(out->actor = strdup("")))
        rc = errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    return rc;
}

/* The newest SHARD_HISTORY_MAX events of an optional "history" array. */
static int history_from_json(json_t *j, shard *out, errdetail *e)
{
    json_t *a = json_object_get(j, "history");
    if (!a || json_is_null(a))
        return 0;
    if (!json_is_array(a))
        return errdetail_set(e, CITRUS_EBADJSON, "history: must be an array");
    size_t len = json_array_size(a);
    size_t skip = len > SHARD_HISTORY_MAX ? len - SHARD_HISTORY_MAX : 0;
    out->history = calloc(len - skip ? len - skip : 1, sizeof(shard_event));
    if (!out->history)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    for (size_t i = skip; i < len; i++) {
        int rc = event_from_json(json_array_get(a, i), i, &out->history[out->nhistory++], e);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int id_from_json(json_t *j, char *id, errdetail *e)
{
    const char *s = NULL;
    int rc = req_string(j, "id", "", &s, e);
    if (rc < 0)
        return rc;
    if (!shard_id_valid(s))
        return errdetail_set(e, CITRUS_EBADJSON, "id: '%.64s' is not a valid shard id", s);
    snprintf(id, SHARD_ID_MAX + 1, "%s", s); /* valid: at most SHARD_ID_MAX */
    return 0;
}

static int epoch_from_json(json_t *j, int64_t *out, errdetail *e)
{
    json_t *v = json_object_get(j, "epoch");
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return errdetail_set(e, CITRUS_EBADJSON, "epoch: %s",
                             v ? "must be an integer >= 0" : "missing");
    *out = json_integer_value(v);
    return 0;
}

static int optional_lists(json_t *j, shard *out, errdetail *e)
{
    json_t *r = json_object_get(j, "replicas");
    int rc = 0;
    if (r && !json_is_null(r))
        rc = shard_json_strings(r, "replicas", NULL, &out->replicas, &out->nreplicas, e);
    json_t *t = json_object_get(j, "tags");
    if (rc == 0 && t && !json_is_null(t))
        rc = shard_json_tags(t, NULL, &out->tags, &out->ntags, e);
    return rc;
}

static int record_from_json(json_t *j, shard *out, errdetail *e)
{
    if (!json_is_object(j))
        return errdetail_set(e, CITRUS_EBADJSON, "shard: must be a JSON object");
    int rc = id_from_json(j, out->id, e);
    if (rc == 0)
        rc = req_state(j, "state", "", &out->state, e);
    if (rc == 0)
        rc = epoch_from_json(j, &out->epoch, e);
    if (rc == 0)
        rc = opt_epoch(j, "base_epoch", "", &out->base_epoch, e);
    if (rc == 0)
        rc = req_time(j, "created_at", "", &out->created_ms, e);
    if (rc == 0)
        rc = req_time(j, "updated_at", "", &out->updated_ms, e);
    if (rc == 0)
        rc = opt_string(j, "dsn", "", &out->dsn, e);
    if (rc == 0)
        rc = opt_string(j, "zone", "", &out->zone, e);
    if (rc == 0)
        rc = opt_string(j, "template", "", &out->template_name, e);
    if (rc == 0)
        rc = opt_string(j, "error", "", &out->error, e);
    if (rc == 0)
        rc = opt_weight(j, &out->weight, e);
    if (rc == 0)
        rc = optional_lists(j, out, e);
    if (rc == 0)
        rc = history_from_json(j, out, e);
    if ((rc == CITRUS_EINVAL || rc == CITRUS_ETOOMANY) && e)
        e->code = CITRUS_EBADJSON; /* a stored record is bad JSON, whatever the field said */
    return rc == CITRUS_EINVAL || rc == CITRUS_ETOOMANY ? CITRUS_EBADJSON : rc;
}

int shard_from_json(json_t *j, shard *out, errdetail *e)
{
    shard_init(out);
    int rc = record_from_json(j, out, e);
    if (rc < 0)
        shard_clear(out);
    return rc;
}
