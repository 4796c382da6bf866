/* tests/fuzz/fuzz_snapshot.c — the backup file parser (snapshot_file_parse)
 * and the decoders of the KV answers (wire/kvjson.h): snapshot, range and
 * watch.
 *
 * The first byte picks what the rest is:
 *   0 mod 3  a whole backup file, as restore reads it;
 *   1 mod 3  a backup without its trailer: the harness appends a correct
 *            sha256 trailer, so mutations reach the header, lease and item
 *            lines instead of stopping at the checksum;
 *   2 mod 3  a JSON answer, given to kvjson_snapshot_decode,
 *            kvjson_range_decode (with and without values) and
 *            kvjson_watch_decode.
 * Invariants: no crash or leak; failures return CITRUS_ECORRUPT (or
 * CITRUS_EBADJSON for the decoders) with a message and leave *out empty; an
 * accepted file passes snapshot_file_check, and writing it with
 * snapshot_file_write and parsing that gives the same snapshot back; an
 * accepted range or watch answer encodes and decodes to the same values. */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "citrus/errors.h"
#include "cli/snapshot_file.h"
#include "wire/kvjson.h"

static void check_empty(const kv_snapshot *s)
{
    FUZZ_CHECK(s->items == NULL && s->leases == NULL && s->count == 0 && s->nleases == 0,
               "a failed parse left data in *out");
}

static void check_same_entry(const kv_entry *x, const kv_entry *y)
{
    FUZZ_CHECK(strcmp(x->key, y->key) == 0, "key '%s' differs after a round trip", x->key);
    FUZZ_CHECK(x->value_len == y->value_len &&
                   (x->value_len == 0 || memcmp(x->value, y->value, x->value_len) == 0),
               "value of '%s' differs after a round trip", x->key);
    FUZZ_CHECK(x->create_revision == y->create_revision && x->mod_revision == y->mod_revision &&
                   x->version == y->version && x->lease == y->lease,
               "revisions of '%s' differ after a round trip", x->key);
}

static void check_same(const kv_snapshot *a, const kv_snapshot *b)
{
    FUZZ_CHECK(a->revision == b->revision && a->compact_revision == b->compact_revision,
               "revisions differ after a round trip");
    FUZZ_CHECK(a->count == b->count && a->nleases == b->nleases,
               "counts differ after a round trip: %zu/%zu items, %zu/%zu leases", a->count,
               b->count, a->nleases, b->nleases);
    for (size_t i = 0; i < a->nleases; i++)
        FUZZ_CHECK(memcmp(&a->leases[i], &b->leases[i], sizeof(a->leases[i])) == 0,
                   "lease %zu differs after a round trip", i);
    for (size_t i = 0; i < a->count; i++)
        check_same_entry(&a->items[i], &b->items[i]);
}

/* Writes snap as a backup file and parses it back. */
static void check_round_trip(const kv_snapshot *snap)
{
    errdetail err = {0};
    FUZZ_CHECK(snapshot_file_check(snap, &err) == 0, "accepted but check fails: %s", err.message);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    FUZZ_CHECK(f != NULL, "open_memstream failed");
    int rc = snapshot_file_write(f, snap, 0, &err);
    FUZZ_CHECK(fclose(f) == 0, "fclose failed");
    FUZZ_CHECK(rc == 0, "snapshot_file_write refused an accepted snapshot: %s", err.message);
    kv_snapshot back;
    rc = snapshot_file_parse(buf, len, &back, &err);
    FUZZ_CHECK(rc == 0, "the written backup does not parse: %s", err.message);
    check_same(snap, &back);
    kv_snapshot_free(&back);
    free(buf);
}

static void fuzz_file(const char *buf, size_t len)
{
    kv_snapshot snap;
    errdetail err = {0};
    int rc = snapshot_file_parse(buf, len, &snap, &err);
    if (rc < 0) {
        FUZZ_CHECK(rc == CITRUS_ECORRUPT || rc == CITRUS_ENOMEM, "parse returned %d", rc);
        FUZZ_CHECK(err.code == rc, "refused with code %d in the detail", err.code);
        FUZZ_CHECK(err.message[0] != '\0', "refused without a message");
        check_empty(&snap);
        return;
    }
    FUZZ_CHECK(rc == 0, "parse returned %d", rc);
    check_round_trip(&snap);
    kv_snapshot_free(&snap);
}

/* Appends the trailer a writer would put after body (plus a final '\n' if
 * the body lacks one) and parses the result. */
static void fuzz_file_with_trailer(const uint8_t *body, size_t n)
{
    bool nl = n > 0 && body[n - 1] == '\n';
    size_t blen = n + (nl ? 0 : 1);
    char trailer[96];
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dn = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    FUZZ_CHECK(md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
                   EVP_DigestUpdate(md, body, n) == 1 &&
                   (nl || EVP_DigestUpdate(md, "\n", 1) == 1) &&
                   EVP_DigestFinal_ex(md, d, &dn) == 1 && dn == 32,
               "sha256 failed");
    EVP_MD_CTX_free(md);
    size_t tlen = (size_t)sprintf(trailer, "{\"sha256\":\"");
    for (unsigned i = 0; i < dn; i++)
        tlen += (size_t)sprintf(trailer + tlen, "%02x", d[i]);
    tlen += (size_t)sprintf(trailer + tlen, "\"}\n");
    /* Exactly the file's size, so ASan sees any read past the end. */
    char *buf = malloc(blen + tlen);
    FUZZ_CHECK(buf != NULL, "out of memory");
    if (n)
        memcpy(buf, body, n);
    if (!nl)
        buf[n] = '\n';
    memcpy(buf + blen, trailer, tlen);
    fuzz_file(buf, blen + tlen);
    free(buf);
}

/* A decoder's refusal: a code and a message. */
static void check_refusal(int rc, const errdetail *e)
{
    FUZZ_CHECK(rc == CITRUS_EBADJSON || rc == CITRUS_ENOMEM, "decode returned %d", rc);
    FUZZ_CHECK(e->code == rc, "refused with code %d in the detail", e->code);
    FUZZ_CHECK(e->message[0] != '\0', "refused without a message");
}

/* A listing page: accepted ones encode and decode back to the same. */
static void fuzz_range(const json_t *j, bool with_value)
{
    kv_range_res r, back;
    errdetail err = {0};
    int rc = kvjson_range_decode(j, with_value, &r, &err);
    if (rc < 0) {
        check_refusal(rc, &err);
        FUZZ_CHECK(r.items == NULL && r.count == 0, "a failed decode left data in *out");
        return;
    }
    json_t *again = kvjson_range_encode(&r, with_value);
    /* NULL only out of memory: what jansson parsed is UTF-8, and NUL is refused. */
    if (again) {
        rc = kvjson_range_decode(again, with_value, &back, &err);
        FUZZ_CHECK(rc == 0, "an encoded range does not decode: %s", err.message);
        FUZZ_CHECK(back.revision == r.revision && back.more == r.more && back.count == r.count,
                   "range differs after a round trip");
        for (size_t i = 0; i < r.count; i++)
            check_same_entry(&r.items[i], &back.items[i]);
        kv_range_res_free(&back);
    }
    json_decref(again);
    kv_range_res_free(&r);
}

/* A long-poll answer: accepted events encode and decode back to the same. */
static void fuzz_watch(const json_t *j)
{
    kvjson_watch w;
    errdetail err = {0};
    int rc = kvjson_watch_decode(j, &w, &err);
    if (rc < 0) {
        check_refusal(rc, &err);
        FUZZ_CHECK(w.events == NULL && w.count == 0, "a failed decode left data in *out");
        return;
    }
    for (size_t i = 0; i < w.count; i++) {
        const kv_event *ev = &w.events[i];
        FUZZ_CHECK(ev->type == KV_EVENT_PUT || ev->kv.value == NULL, "a delete with a value");
        json_t *again = kvjson_event_encode(ev);
        if (!again)
            continue;
        kv_event back;
        rc = kvjson_event_decode(again, &back, &err);
        FUZZ_CHECK(rc == 0, "an encoded event does not decode: %s", err.message);
        FUZZ_CHECK(back.type == ev->type, "event type differs after a round trip");
        check_same_entry(&ev->kv, &back.kv);
        kv_entry_clear(&back.kv);
        json_decref(again);
    }
    kvjson_watch_free(&w);
}

static void fuzz_json(const uint8_t *data, size_t size)
{
    json_t *j = json_loadb((const char *)data, size, 0, NULL);
    if (!j)
        return;
    fuzz_range(j, true);
    fuzz_range(j, false);
    fuzz_watch(j);
    kv_snapshot snap;
    errdetail err = {0};
    int rc = kvjson_snapshot_decode(j, &snap, &err);
    json_decref(j);
    if (rc < 0) {
        check_refusal(rc, &err);
        check_empty(&snap);
        return;
    }
    for (size_t i = 0; i < snap.count; i++)
        FUZZ_CHECK(snap.items[i].key != NULL, "item %zu has no key", i);
    /* What backup would write: only snapshots that pass the check. */
    if (snapshot_file_check(&snap, &err) == 0)
        check_round_trip(&snap);
    kv_snapshot_free(&snap);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % 3) {
    case 0: {
        /* An exact-size copy, so ASan sees any read past the end. */
        char *copy = malloc(size - 1 ? size - 1 : 1);
        FUZZ_CHECK(copy != NULL, "out of memory");
        memcpy(copy, data + 1, size - 1);
        fuzz_file(copy, size - 1);
        free(copy);
        break;
    }
    case 1:
        fuzz_file_with_trailer(data + 1, size - 1);
        break;
    default:
        fuzz_json(data + 1, size - 1);
        break;
    }
    return 0;
}
