/* wire/envelope.c — the CloudEvents envelope: strict checks, building,
 * encoding with unknown members kept.
 *
 * The event is kept as its parsed JSON object, never rebuilt from fields,
 * so members this code does not know (extensions, dataschema, data_base64)
 * go back out in their place with their values: jansson keeps the order of
 * an object's members, and reals are written with 17 significant digits,
 * which read back as the same double. */
#include "wire/envelope.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "citrus/errors.h"
#include "core/utf8.h"
#include "wire/base64.h"
#include "wire/shard_json.h"

#define ENCODE_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(17))

/* ---- characters ------------------------------------------------------ */

typedef enum {
    CS_VISIBLE, /* printable ASCII but space: id, type */
    CS_URI,     /* RFC 3986 URI-reference characters: source, dataschema */
    CS_TEXT,    /* any UTF-8 but control characters: subject */
    CS_MEDIA,   /* printable ASCII with a '/': datacontenttype */
    CS_CORR,    /* X-Correlation-Id's: [A-Za-z0-9._:-] */
} charset;

static bool alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool char_ok(charset cs, unsigned char c)
{
    switch (cs) {
    case CS_VISIBLE:
        return c > 0x20 && c < 0x7f;
    case CS_URI:
        return alnum(c) || (c && strchr("-._~:/?#[]@!$&'()*+,;=%", c));
    case CS_TEXT:
        return c >= 0x20 && c != 0x7f;
    case CS_MEDIA:
        return c >= 0x20 && c < 0x7f;
    case CS_CORR:
        return alnum(c) || (c && strchr("-._:", c));
    }
    return false;
}

static const char *const charset_what[] = {
    "printable ASCII without spaces",    "URI characters (RFC 3986)",
    "text without control characters",   "a media type, printable ASCII",
    "A-Z, a-z, 0-9, '.', '_', ':', '-'",
};

/* Copies s into buf (a message's quote of an untrusted name): at most 64
 * bytes, anything but printable ASCII as '?'. */
static const char *quote(const char *s, char *buf, size_t size)
{
    size_t i = 0;
    for (; i < 64 && i + 1 < size && s[i]; i++)
        buf[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    buf[i] = '\0';
    return buf;
}

/* A string member's value: a JSON string without NUL of 1..max bytes, each
 * character of cs. */
static int check_string(const char *name, json_t *v, charset cs, size_t max, const char **out,
                        errdetail *e)
{
    if (!json_is_string(v))
        return errdetail_set(e, CITRUS_EBADJSON, "%s: must be a string", name);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0 || n > max || strlen(s) != n)
        return errdetail_set(e, CITRUS_EINVAL, "%s: must be 1 to %zu bytes (no NUL)", name, max);
    if (cs == CS_TEXT && !utf8_valid((const unsigned char *)s, n))
        return errdetail_set(e, CITRUS_EINVAL, "%s: not UTF-8", name);
    for (size_t i = 0; i < n; i++)
        if (!char_ok(cs, (unsigned char)s[i]))
            return errdetail_set(e, CITRUS_EINVAL, "%s: byte %zu is not allowed (%s)", name, i,
                                 charset_what[cs]);
    if (cs == CS_MEDIA && (s[0] == '/' || s[0] == ' ' || !strchr(s, '/')))
        return errdetail_set(e, CITRUS_EINVAL, "%s: must be a media type (type/subtype)", name);
    *out = s;
    return 0;
}

/* ---- time, trace context, topics -------------------------------------- */

static int two_digits(const char *s)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return -1;
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* RFC 3339 date-time ("T"/"Z" in either case, any fraction, "Z" or an
 * offset) to Unix ms; -1 when s is not one. The calendar is
 * shard_json_parse_time's, given the UTC form. */
static int rfc3339_ms(const char *s, int64_t *ms)
{
    size_t n = strlen(s);
    if (n < 20 || n > 64)
        return -1;
    char norm[40];
    memcpy(norm, s, 19);
    norm[19] = '\0';
    if (norm[10] == 't')
        norm[10] = 'T';
    bool leap = strcmp(norm + 17, "60") == 0; /* a leap second counts as the next one */
    if (leap)
        memcpy(norm + 17, "59", 2);
    size_t k = 19;
    const char *p = s + 19;
    if (*p == '.') {
        norm[k++] = *p++;
        size_t d = 0;
        for (; *p >= '0' && *p <= '9'; p++, d++)
            if (d < 9)
                norm[k++] = *p;
        if (d == 0)
            return -1;
    }
    norm[k++] = 'Z';
    norm[k] = '\0';
    int64_t off = 0;
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        off = 0;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int hh = two_digits(p + 1), mm = two_digits(p + 4);
        if (hh < 0 || hh > 23 || mm < 0 || mm > 59)
            return -1;
        off = ((int64_t)hh * 60 + mm) * 60000 * (*p == '-' ? -1 : 1);
    } else {
        return -1;
    }
    if (shard_json_parse_time(norm, ms) < 0)
        return -1;
    *ms = *ms - off + (leap ? 1000 : 0);
    return 0;
}

/* n lower-case hex digits at s; *nonzero when one is not '0'. */
static bool lower_hex(const char *s, size_t n, bool *nonzero)
{
    *nonzero = false;
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
        *nonzero |= s[i] != '0';
    }
    return true;
}

int envelope_traceparent_check(const char *name, const char *s, errdetail *e)
{
    size_t n = strlen(s);
    bool v_nz, t_nz, p_nz, f_nz;
    bool ok = n >= 55 && n <= 512 && s[2] == '-' && s[35] == '-' && s[52] == '-' &&
              lower_hex(s, 2, &v_nz) && lower_hex(s + 3, 32, &t_nz) &&
              lower_hex(s + 36, 16, &p_nz) && lower_hex(s + 53, 2, &f_nz);
    if (!ok)
        return errdetail_set(e, CITRUS_EINVAL,
                             "%s: must be W3C trace context, version-traceid-parentid-flags "
                             "(2, 32, 16 and 2 lower-case hex digits)",
                             name);
    if (strncmp(s, "ff", 2) == 0)
        return errdetail_set(e, CITRUS_EINVAL, "%s: version ff is not allowed", name);
    if (!t_nz || !p_nz)
        return errdetail_set(e, CITRUS_EINVAL, "%s: an all-zero trace-id or parent-id", name);
    /* Version 00 has exactly four fields; a later one may add "-..." after them. */
    if (n > 55 && (strncmp(s, "00", 2) == 0 || s[55] != '-'))
        return errdetail_set(e, CITRUS_EINVAL, "%s: text after the flags", name);
    for (size_t i = 55; i < n; i++)
        if (s[i] <= 0x20 || s[i] >= 0x7f)
            return errdetail_set(e, CITRUS_EINVAL, "%s: byte %zu is not allowed", name, i);
    return 0;
}

int envelope_topic_check(const char *name, const char *s, errdetail *e)
{
    size_t n = strlen(s);
    if (n == 0 || n > ENVELOPE_TOPIC_MAX)
        return errdetail_set(e, CITRUS_EINVAL, "%s: must be 1 to %d characters", name,
                             ENVELOPE_TOPIC_MAX);
    if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return errdetail_set(e, CITRUS_EINVAL, "%s: may not be '.' or '..'", name);
    for (size_t i = 0; i < n; i++)
        if (!alnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return errdetail_set(e, CITRUS_EINVAL,
                                 "%s: must be made of A-Z, a-z, 0-9, '.', '_', '-' (byte "
                                 "%zu is not)",
                                 name, i);
    return 0;
}

/* ---- checking an event ----------------------------------------------- */

/* The string members, their rules and where they go (SIZE_MAX: checked,
 * not kept). */
static const struct {
    const char *name;
    charset cs;
    size_t max;
    size_t off;
} string_members[] = {
    {"id", CS_VISIBLE, ENVELOPE_ID_MAX, offsetof(envelope, id)},
    {"source", CS_URI, ENVELOPE_SOURCE_MAX, offsetof(envelope, source)},
    {"type", CS_VISIBLE, ENVELOPE_TYPE_MAX, offsetof(envelope, type)},
    {"subject", CS_TEXT, ENVELOPE_SUBJECT_MAX, offsetof(envelope, subject)},
    {"datacontenttype", CS_MEDIA, ENVELOPE_CONTENT_TYPE_MAX, offsetof(envelope, datacontenttype)},
    {"dataschema", CS_URI, ENVELOPE_SOURCE_MAX, SIZE_MAX},
    {"correlationid", CS_CORR, ENVELOPE_CORRELATION_MAX, offsetof(envelope, correlationid)},
};
#define NSTRING_MEMBERS (sizeof(string_members) / sizeof(string_members[0]))

static int check_extension(const char *k, errdetail *e)
{
    size_t n = strlen(k);
    bool ok = n >= 1 && n <= ENVELOPE_EXT_NAME_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = (k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' && k[i] <= '9');
    char q[72];
    if (!ok)
        return errdetail_set(e, CITRUS_EINVAL,
                             "%s: not an attribute name (an extension's is 1 to %d of a-z, 0-9)",
                             quote(k, q, sizeof(q)), ENVELOPE_EXT_NAME_MAX);
    return 0;
}

static int check_member(const char *k, json_t *v, envelope *ev, errdetail *e)
{
    for (size_t i = 0; i < NSTRING_MEMBERS; i++) {
        if (strcmp(k, string_members[i].name) != 0)
            continue;
        const char *unused = NULL, **to = string_members[i].off == SIZE_MAX
                                              ? &unused
                                              : (const char **)((char *)ev + string_members[i].off);
        return check_string(k, v, string_members[i].cs, string_members[i].max, to, e);
    }
    if (strcmp(k, "specversion") == 0) {
        if (!json_is_string(v))
            return errdetail_set(e, CITRUS_EBADJSON, "specversion: must be a string");
        if (strcmp(json_string_value(v), ENVELOPE_SPECVERSION) != 0 ||
            json_string_length(v) != strlen(ENVELOPE_SPECVERSION))
            return errdetail_set(e, CITRUS_EINVAL, "specversion: must be \"%s\"",
                                 ENVELOPE_SPECVERSION);
        return 0;
    }
    if (strcmp(k, "time") == 0) {
        if (!json_is_string(v))
            return errdetail_set(e, CITRUS_EBADJSON, "time: must be a string");
        if (strlen(json_string_value(v)) != json_string_length(v) ||
            rfc3339_ms(json_string_value(v), &ev->time_ms) < 0)
            return errdetail_set(e, CITRUS_EINVAL,
                                 "time: must be an RFC 3339 time (2026-12-07T01:02:03.456Z, or "
                                 "with an offset such as +02:00)");
        ev->time = json_string_value(v);
        return 0;
    }
    if (strcmp(k, "traceparent") == 0) {
        if (!json_is_string(v))
            return errdetail_set(e, CITRUS_EBADJSON, "traceparent: must be a string");
        if (strlen(json_string_value(v)) != json_string_length(v))
            return errdetail_set(e, CITRUS_EINVAL, "traceparent: holds a NUL");
        ev->traceparent = json_string_value(v);
        return envelope_traceparent_check(k, ev->traceparent, e);
    }
    if (strcmp(k, "schemaversion") == 0) {
        if (!json_is_integer(v))
            return errdetail_set(e, CITRUS_EBADJSON, "schemaversion: must be an integer");
        ev->schemaversion = json_integer_value(v);
        if (ev->schemaversion < 1 || ev->schemaversion > ENVELOPE_SCHEMA_VERSION)
            return errdetail_set(e, CITRUS_EINVAL,
                                 "schemaversion: must be from 1 to %d (this Citrus knows no "
                                 "newer envelope schema)",
                                 ENVELOPE_SCHEMA_VERSION);
        return 0;
    }
    if (strcmp(k, "data") == 0) {
        ev->data = v;
        return 0;
    }
    if (strcmp(k, "data_base64") == 0) {
        if (!json_is_string(v))
            return errdetail_set(e, CITRUS_EBADJSON, "data_base64: must be a string");
        size_t n;
        unsigned char *raw = base64_decode(json_string_value(v), json_string_length(v), &n);
        if (!raw)
            return errdetail_set(e, CITRUS_EINVAL, "data_base64: not canonical padded base64");
        free(raw);
        return 0;
    }
    return check_extension(k, e);
}

/* Checks the object j, filling out's borrowed pointers (out->doc is the
 * caller's to set). */
static int check_event(json_t *j, envelope *out, errdetail *e)
{
    envelope ev = {.schemaversion = 1, .datacontenttype = ENVELOPE_DEFAULT_CONTENT_TYPE};
    static const char *const required[] = {"specversion", "id", "source", "type"};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
        if (!json_object_get(j, required[i]))
            return errdetail_set(e, CITRUS_EBADJSON, "%s: required", required[i]);
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v)
    {
        int rc = check_member(k, v, &ev, e);
        if (rc < 0)
            return rc;
    }
    if (ev.data && json_object_get(j, "data_base64"))
        return errdetail_set(e, CITRUS_EINVAL,
                             "data_base64: not allowed with data (one or the "
                             "other)");
    *out = ev;
    return 0;
}

/* ---- entry points ---------------------------------------------------- */

int envelope_parse(const char *text, size_t len, size_t max_bytes, envelope *out, errdetail *e)
{
    memset(out, 0, sizeof(*out));
    if (max_bytes && len > max_bytes)
        return errdetail_set(e, CITRUS_ETOOBIG, "event: %zu bytes, more than the limit of %zu", len,
                             max_bytes);
    json_error_t je;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!j)
        return errdetail_set(e, CITRUS_EBADJSON, "event: not JSON (line %d, column %d: %s)",
                             je.line, je.column, je.text);
    int rc = json_is_object(j) ? check_event(j, out, e)
                               : errdetail_set(e, CITRUS_EBADJSON, "event: must be a JSON object");
    if (rc < 0) {
        json_decref(j);
        memset(out, 0, sizeof(*out));
        return rc;
    }
    out->doc = j;
    return 0;
}

int envelope_from_json(json_t *j, size_t max_bytes, envelope *out, errdetail *e)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return errdetail_set(e, CITRUS_EBADJSON, "event: must be a JSON object");
    if (max_bytes) {
        size_t n = json_dumpb(j, NULL, 0, ENCODE_FLAGS);
        if (n > max_bytes)
            return errdetail_set(e, CITRUS_ETOOBIG, "event: %zu bytes, more than the limit of %zu",
                                 n, max_bytes);
    }
    int rc = check_event(j, out, e);
    if (rc < 0) {
        memset(out, 0, sizeof(*out));
        return rc;
    }
    out->doc = json_incref(j);
    return 0;
}

/* A version 4 (random) UUID of r, in its 36-character form. */
static void uuid4(const unsigned char r[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    memcpy(b, r, sizeof(b));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    size_t k = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[k++] = '-';
        out[k++] = hex[b[i] >> 4];
        out[k++] = hex[b[i] & 15];
    }
    out[k] = '\0';
}

int envelope_new_id(char out[37], errdetail *e)
{
    unsigned char r[16];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        return errdetail_set(e, CITRUS_EIO, "no random bytes for a UUID");
    uuid4(r, out);
    return 0;
}

/* Sets doc[name] to the string v (nothing when v is NULL). */
static int put_string(json_t *doc, const char *name, const char *v, errdetail *e)
{
    if (!v)
        return 0;
    json_t *s = json_string(v);
    if (!s)
        return errdetail_set(e, CITRUS_EINVAL, "%s: not UTF-8", name);
    if (json_object_set_new(doc, name, s) < 0)
        return errdetail_set(e, CITRUS_ENOMEM, "%s: out of memory", name);
    return 0;
}

int envelope_build(const envelope_spec *s, envelope *out, errdetail *e)
{
    memset(out, 0, sizeof(*out));
    char id[37], when[32];
    const char *idp = s->id;
    if (!idp) {
        unsigned char r[16];
        if (s->random)
            memcpy(r, s->random, sizeof(r));
        else if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
            return errdetail_set(e, CITRUS_EIO, "id: no random bytes for a UUID");
        uuid4(r, id);
        idp = id;
    }
    /* Years 0000-9999 only: RFC 3339 has four digits for them. */
    if (s->time_ms < 0 || s->time_ms > 253402300799999LL)
        return errdetail_set(e, CITRUS_EINVAL, "time: %lld ms is outside years 1970 to 9999",
                             (long long)s->time_ms);
    shard_json_time(s->time_ms, when, sizeof(when));
    json_t *doc = json_object();
    if (!doc)
        return errdetail_set(e, CITRUS_ENOMEM, "event: out of memory");
    int rc = put_string(doc, "specversion", ENVELOPE_SPECVERSION, e);
    if (rc == 0)
        rc = put_string(doc, "id", idp, e);
    if (rc == 0)
        rc = put_string(doc, "source", s->source, e);
    if (rc == 0)
        rc = put_string(doc, "type", s->type, e);
    if (rc == 0)
        rc = put_string(doc, "subject", s->subject, e);
    if (rc == 0)
        rc = put_string(doc, "time", when, e);
    if (rc == 0)
        rc = put_string(doc, "datacontenttype",
                        s->datacontenttype ? s->datacontenttype : ENVELOPE_DEFAULT_CONTENT_TYPE, e);
    if (rc == 0 &&
        json_object_set_new(doc, "schemaversion", json_integer(ENVELOPE_SCHEMA_VERSION)) < 0)
        rc = errdetail_set(e, CITRUS_ENOMEM, "schemaversion: out of memory");
    if (rc == 0)
        rc = put_string(doc, "correlationid", s->correlationid, e);
    if (rc == 0)
        rc = put_string(doc, "traceparent", s->traceparent, e);
    if (rc == 0 && s->data && json_object_set(doc, "data", s->data) < 0)
        rc = errdetail_set(e, CITRUS_ENOMEM, "data: out of memory");
    if (rc == 0)
        rc = envelope_from_json(doc, 0, out, e);
    json_decref(doc);
    return rc;
}

char *envelope_encode(const envelope *ev, size_t *len)
{
    char *text = json_dumps(ev->doc, ENCODE_FLAGS);
    if (text && len)
        *len = strlen(text);
    return text;
}

void envelope_clear(envelope *ev)
{
    json_decref(ev->doc);
    memset(ev, 0, sizeof(*ev));
}
