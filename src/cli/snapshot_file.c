/* cli/snapshot_file.c — writing and verifying backup files. */
#include "cli/snapshot_file.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "wire/digest.h"
#include "wire/kvjson.h"
#include "core/key.h"
#include "core/utf8.h"

#define SHA256_HEX_LEN 64

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int snapshot_file_check(const kv_snapshot *snap, errdetail *err)
{
    int rc = CITRUS_ECORRUPT;
    int64_t *ids = NULL;
    if (snap->revision < 0 || snap->compact_revision < 0)
        return errdetail_set(err, CITRUS_ECORRUPT, "negative revision");
    /* Sorted lease ids: duplicates show up as neighbours, lookups bisect. */
    ids = malloc((snap->nleases ? snap->nleases : 1) * sizeof(*ids));
    if (!ids)
        return errdetail_set(err, CITRUS_ENOMEM, "out of memory");
    for (size_t i = 0; i < snap->nleases; i++) {
        const kv_lease_info *l = &snap->leases[i];
        if (l->id <= 0 || l->ttl < 1 || l->remaining < 0) {
            errdetail_set(err, CITRUS_ECORRUPT,
                          "lease %" PRId64 ": bad id, ttl or remaining (ttl %" PRId64
                          ", remaining %" PRId64 ")",
                          l->id, l->ttl, l->remaining);
            goto out;
        }
        ids[i] = l->id;
    }
    qsort(ids, snap->nleases, sizeof(*ids), cmp_i64);
    for (size_t i = 1; i < snap->nleases; i++) {
        if (ids[i] == ids[i - 1]) {
            errdetail_set(err, CITRUS_ECORRUPT, "lease %" PRId64 " appears twice", ids[i]);
            goto out;
        }
    }
    for (size_t i = 0; i < snap->count; i++) {
        const kv_entry *e = &snap->items[i];
        const char *why;
        if (!e->key || key_validate(e->key, strlen(e->key), &why) < 0) {
            errdetail_set(err, CITRUS_ECORRUPT, "item %zu: invalid key: %s", i + 1,
                          e->key ? why : "key missing");
            goto out;
        }
        if (i > 0 && strcmp(snap->items[i - 1].key, e->key) >= 0) {
            errdetail_set(err, CITRUS_ECORRUPT, "item %zu: key \"%.100s\" out of order or repeated",
                          i + 1, e->key);
            goto out;
        }
        if (e->create_revision < 1 || e->create_revision > e->mod_revision ||
            e->mod_revision > snap->revision || e->version < 1) {
            errdetail_set(err, CITRUS_ECORRUPT,
                          "item \"%.100s\": impossible revisions (create %" PRId64 ", mod %" PRId64
                          ", version %" PRId64 ", snapshot revision %" PRId64 ")",
                          e->key, e->create_revision, e->mod_revision, e->version, snap->revision);
            goto out;
        }
        if (e->lease != 0 && !bsearch(&e->lease, ids, snap->nleases, sizeof(*ids), cmp_i64)) {
            errdetail_set(err, CITRUS_ECORRUPT,
                          "item \"%.100s\": lease %" PRId64 " is not in the snapshot", e->key,
                          e->lease);
            goto out;
        }
    }
    rc = 0;
out:
    free(ids);
    return rc;
}

static void hex_digest(EVP_MD_CTX *md, char hex[SHA256_HEX_LEN + 1])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_DigestFinal_ex(md, d, &n);
    digest_hex(d, n < 32 ? n : 32, hex);
}

/* Writes j as one compact line (taking the reference), hashing it when md. */
static int write_line(FILE *f, EVP_MD_CTX *md, json_t *j, errdetail *err)
{
    if (!j)
        return errdetail_set(err, CITRUS_ENOMEM, "out of memory");
    /* Compact output escapes control characters, so one object is one line. */
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!s)
        return errdetail_set(err, CITRUS_ENOMEM, "out of memory");
    size_t n = strlen(s);
    s[n] = '\n'; /* replaces the NUL; the length is known */
    int rc = 0;
    if (fwrite(s, 1, n + 1, f) != n + 1) {
        rc = errdetail_set(err, CITRUS_EIO, "write failed: %s", strerror(errno));
    } else if (md && EVP_DigestUpdate(md, s, n + 1) != 1)
        rc = errdetail_set(err, CITRUS_EINTERNAL, "sha256 failed");
    free(s);
    return rc;
}

int snapshot_file_write(FILE *f, const kv_snapshot *snap, time_t created, errdetail *err)
{
    int rc = CITRUS_EINTERNAL;
    char when[32], hex[SHA256_HEX_LEN + 1];
    struct tm tm;
    if (!gmtime_r(&created, &tm) || !strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm))
        return errdetail_set(err, CITRUS_EINVAL, "cannot format the creation time");
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        errdetail_set(err, CITRUS_EINTERNAL, "sha256 unavailable");
        goto out;
    }
    rc = write_line(f, md,
                    json_pack("{s:s, s:i, s:I, s:I, s:I, s:I, s:s}", "format", SNAPSHOT_FILE_FORMAT,
                              "version", SNAPSHOT_FILE_VERSION, "revision",
                              (json_int_t)snap->revision, "compact_revision",
                              (json_int_t)snap->compact_revision, "count", (json_int_t)snap->count,
                              "leases", (json_int_t)snap->nleases, "created", when),
                    err);
    for (size_t i = 0; rc == 0 && i < snap->nleases; i++) {
        json_t *l = kvjson_lease_encode(&snap->leases[i]);
        rc = write_line(f, md, l ? json_pack("{s:o}", "lease", l) : NULL, err);
    }
    for (size_t i = 0; rc == 0 && i < snap->count; i++) {
        const char *key = snap->items[i].key;
        if (!utf8_valid((const unsigned char *)key, strlen(key))) {
            rc = errdetail_set(err, CITRUS_EBADKEY, "key %zu is not valid UTF-8", i + 1);
            break;
        }
        rc = write_line(f, md, kvjson_entry_encode(&snap->items[i], true), err);
    }
    if (rc < 0)
        goto out;
    hex_digest(md, hex);
    rc = write_line(f, NULL, json_pack("{s:s}", "sha256", hex), err);
out:
    EVP_MD_CTX_free(md);
    return rc;
}

/* Parses line [p, p+n) as a JSON object (new reference) or says why not. */
static json_t *parse_line(const char *p, size_t n, size_t lineno, errdetail *err)
{
    json_error_t je;
    json_t *j = json_loadb(p, n, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        errdetail_set(err, CITRUS_ECORRUPT, "line %zu: bad JSON: %s", lineno, je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        errdetail_set(err, CITRUS_ECORRUPT, "line %zu: not a JSON object", lineno);
        return NULL;
    }
    return j;
}

/* The header fields; members other than these make the header invalid. */
typedef struct header {
    json_int_t version, revision, compact_revision, count, leases;
} header;

static int parse_header(const char *p, size_t n, header *h, errdetail *err)
{
    json_t *j = parse_line(p, n, 1, err);
    if (!j)
        return CITRUS_ECORRUPT;
    int rc = CITRUS_ECORRUPT;
    const char *format = NULL, *created = NULL;
    json_error_t je;
    if (json_unpack_ex(j, &je, JSON_STRICT, "{s:s, s:I, s:I, s:I, s:I, s:I, s:s}", "format",
                       &format, "version", &h->version, "revision", &h->revision,
                       "compact_revision", &h->compact_revision, "count", &h->count, "leases",
                       &h->leases, "created", &created) < 0) {
        if (json_is_string(json_object_get(j, "format")) &&
            strcmp(json_string_value(json_object_get(j, "format")), SNAPSHOT_FILE_FORMAT) != 0)
            errdetail_set(err, CITRUS_ECORRUPT, "not a citrus backup (format \"%.40s\")",
                          json_string_value(json_object_get(j, "format")));
        else
            errdetail_set(err, CITRUS_ECORRUPT, "line 1: bad header: %s", je.text);
        goto out;
    }
    if (strcmp(format, SNAPSHOT_FILE_FORMAT) != 0) {
        errdetail_set(err, CITRUS_ECORRUPT, "not a citrus backup (format \"%.40s\")", format);
        goto out;
    }
    if (h->version != SNAPSHOT_FILE_VERSION) {
        errdetail_set(err, CITRUS_ECORRUPT, "unsupported backup version %" JSON_INTEGER_FORMAT,
                      h->version);
        goto out;
    }
    if (h->count < 0 || h->leases < 0) {
        errdetail_set(err, CITRUS_ECORRUPT, "line 1: negative count");
        goto out;
    }
    rc = 0;
out:
    json_decref(j);
    return rc;
}

/* Checks the trailer line [p, p+n) against the digest of buf[0..body_len). */
static int check_trailer(const char *buf, size_t body_len, const char *p, size_t n, errdetail *err)
{
    json_t *j = json_loadb(p, n, JSON_REJECT_DUPLICATES, NULL);
    const char *want = NULL;
    int rc = CITRUS_ECORRUPT;
    if (!j || json_unpack(j, "{s:s !}", "sha256", &want) < 0 || strlen(want) != SHA256_HEX_LEN) {
        errdetail_set(err, CITRUS_ECORRUPT, "no sha256 trailer at the end (file truncated?)");
        goto out;
    }
    char got[SHA256_HEX_LEN + 1];
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(md, buf, body_len) != 1) {
        EVP_MD_CTX_free(md);
        rc = errdetail_set(err, CITRUS_EINTERNAL, "sha256 unavailable");
        goto out;
    }
    hex_digest(md, got);
    EVP_MD_CTX_free(md);
    if (strcmp(got, want) != 0) {
        errdetail_set(err, CITRUS_ECORRUPT, "sha256 mismatch: the file was changed or damaged");
        goto out;
    }
    rc = 0;
out:
    json_decref(j);
    return rc;
}

/* The line starting at *pos within [0, end): sets *n to its length without
 * the '\n' and moves *pos past the '\n'. The caller guarantees one exists. */
static const char *next_line(const char *buf, size_t end, size_t *pos, size_t *n)
{
    const char *p = buf + *pos;
    const char *nl = memchr(p, '\n', end - *pos);
    *n = (size_t)(nl - p);
    *pos += *n + 1;
    return p;
}

/* Parses lease lines and item lines of buf[pos, end) into out. */
static int parse_body(const char *buf, size_t pos, size_t end, kv_snapshot *out, errdetail *err)
{
    errdetail why;
    size_t lineno = 1, n;
    for (size_t i = 0; i < out->nleases; i++) {
        const char *p = next_line(buf, end, &pos, &n);
        json_t *j = parse_line(p, n, ++lineno, err);
        if (!j)
            return CITRUS_ECORRUPT;
        json_t *l = json_object_get(j, "lease");
        int rc = CITRUS_EBADJSON;
        if (json_object_size(j) != 1 || !l)
            errdetail_set(&why, rc, "expected a lease line");
        else
            rc = kvjson_lease_decode(l, true, &out->leases[i], &why);
        json_decref(j);
        if (rc < 0)
            return errdetail_set(err, rc == CITRUS_ENOMEM ? rc : CITRUS_ECORRUPT, "line %zu: %s",
                                 lineno, why.message);
    }
    for (size_t i = 0; i < out->count; i++) {
        const char *p = next_line(buf, end, &pos, &n);
        json_t *j = parse_line(p, n, ++lineno, err);
        if (!j)
            return CITRUS_ECORRUPT;
        int rc = kvjson_entry_decode(j, true, true, &out->items[i], &why);
        json_decref(j);
        if (rc < 0)
            return errdetail_set(err, rc == CITRUS_ENOMEM ? rc : CITRUS_ECORRUPT, "line %zu: %s",
                                 lineno, why.message);
    }
    return 0;
}

int snapshot_file_parse(const char *buf, size_t len, kv_snapshot *out, errdetail *err)
{
    memset(out, 0, sizeof(*out));
    const char *first_nl = memchr(buf, '\n', len);
    if (len == 0 || !first_nl)
        return errdetail_set(err, CITRUS_ECORRUPT,
                             len ? "no complete line (file truncated?)" : "file is empty");
    header h;
    int rc = parse_header(buf, (size_t)(first_nl - buf), &h, err);
    if (rc < 0)
        return rc;
    if (buf[len - 1] != '\n')
        return errdetail_set(err, CITRUS_ECORRUPT, "last line incomplete (file truncated?)");
    /* The trailer is the last line; the digest covers everything before it. */
    size_t trailer = len - 1;
    while (trailer > 0 && buf[trailer - 1] != '\n')
        trailer--;
    size_t header_end = (size_t)(first_nl - buf) + 1;
    if (trailer < header_end)
        return errdetail_set(err, CITRUS_ECORRUPT,
                             "no sha256 trailer at the end (file truncated?)");
    if ((rc = check_trailer(buf, trailer, buf + trailer, len - 1 - trailer, err)) < 0)
        return rc;

    /* Count lines before trusting the header's numbers with allocations. */
    size_t lines = 0;
    for (const char *p = buf + header_end; (p = memchr(p, '\n', (size_t)(buf + trailer - p))); p++)
        lines++;
    if ((uint64_t)h.count + (uint64_t)h.leases != lines)
        return errdetail_set(err, CITRUS_ECORRUPT,
                             "header promises %" JSON_INTEGER_FORMAT
                             " keys and %" JSON_INTEGER_FORMAT
                             " leases but the file holds %zu lines",
                             h.count, h.leases, lines);
    out->revision = h.revision;
    out->compact_revision = h.compact_revision;
    out->items = calloc(h.count ? (size_t)h.count : 1, sizeof(*out->items));
    out->leases = calloc(h.leases ? (size_t)h.leases : 1, sizeof(*out->leases));
    if (!out->items || !out->leases) {
        rc = errdetail_set(err, CITRUS_ENOMEM, "out of memory");
        goto fail;
    }
    out->count = (size_t)h.count;
    out->nleases = (size_t)h.leases;
    if ((rc = parse_body(buf, header_end, trailer, out, err)) < 0 ||
        (rc = snapshot_file_check(out, err)) < 0)
        goto fail;
    return 0;

fail:
    kv_snapshot_free(out);
    return rc;
}
