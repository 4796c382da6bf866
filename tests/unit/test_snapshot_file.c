/* test_snapshot_file.c — backup file format: round trip and every way a
 * damaged file must be refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "cli/snapshot_file.h"

#define CREATED ((time_t)1714564800) /* 2024-05-01T12:00:00Z */

static kv_entry entry(const char *key, const void *value, size_t len, int64_t create, int64_t mod,
                      int64_t version, int64_t lease)
{
    kv_entry e = {.key = strdup(key),
                  .value_len = len,
                  .create_revision = create,
                  .mod_revision = mod,
                  .version = version,
                  .lease = lease};
    if (len) {
        e.value = malloc(len);
        memcpy(e.value, value, len);
    }
    return e;
}

/* A snapshot with the awkward cases: empty and binary values, a newline and
 * quotes in a value, UTF-8 in a key, keys on and off leases. */
static void sample(kv_snapshot *s)
{
    static const unsigned char bin[] = {0x00, 0xff, 0x10, '\n', '"', 0x7f};
    memset(s, 0, sizeof(*s));
    s->revision = 42;
    s->compact_revision = 7;
    s->count = 5;
    s->items = calloc(s->count, sizeof(*s->items));
    s->items[0] = entry("a", "1", 1, 3, 3, 1, 0);
    s->items[1] = entry("a/b", bin, sizeof(bin), 4, 40, 9, 11);
    s->items[2] = entry("config/caf\xc3\xa9", "line1\nline2 \"q\"", 15, 10, 12, 2, 0);
    s->items[3] = entry("empty", NULL, 0, 20, 20, 1, 12);
    s->items[4] = entry("z", "last", 4, 41, 42, 2, 0);
    s->nleases = 2;
    s->leases = calloc(s->nleases, sizeof(*s->leases));
    s->leases[0] = (kv_lease_info){.id = 11, .ttl = 30, .remaining = 25};
    s->leases[1] = (kv_lease_info){.id = 12, .ttl = 5, .remaining = 0};
}

/* Writes s to a fresh malloc'd buffer. */
static char *write_buf(const kv_snapshot *s, size_t *len)
{
    char *buf = NULL;
    errdetail err = {0};
    FILE *f = open_memstream(&buf, len);
    assert_non_null(f);
    int rc = snapshot_file_write(f, s, CREATED, &err);
    if (rc != 0)
        fail_msg("write: %s", err.message);
    assert_int_equal(fclose(f), 0);
    return buf;
}

/* snapshot_file_parse, checking that a failure's detail carries its code. */
static int parse(const char *buf, size_t len, kv_snapshot *out, errdetail *e)
{
    /* An exact-size heap copy, so ASan sees any read past the end. */
    char *copy = calloc(1, len ? len : 1);
    memcpy(copy, buf, len);
    int rc = snapshot_file_parse(copy, len, out, e);
    free(copy);
    if (rc < 0)
        assert_int_equal(e->code, rc);
    return rc;
}

/* Replaces the trailer with one that matches the (edited) body, so a test
 * reaches the checks behind the digest. */
static char *resign(const char *buf, size_t *len)
{
    size_t body = strlen(buf);
    assert_true(body > 1 && buf[body - 1] == '\n');
    body--;
    while (body > 0 && buf[body - 1] != '\n')
        body--;
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    assert_int_equal(EVP_Digest(buf, body, d, &n, EVP_sha256(), NULL), 1);
    char *out = malloc(body + 100);
    memcpy(out, buf, body);
    size_t o = body + (size_t)sprintf(out + body, "{\"sha256\":\"");
    for (unsigned i = 0; i < n; i++)
        o += (size_t)sprintf(out + o, "%02x", d[i]);
    o += (size_t)sprintf(out + o, "\"}\n");
    *len = o;
    return out;
}

/* A copy of buf with the first occurrence of from replaced by to. */
static char *replace(const char *buf, const char *from, const char *to)
{
    const char *at = strstr(buf, from);
    if (!at)
        fail_msg("\"%s\" not found in backup", from);
    size_t pre = (size_t)(at - buf), fl = strlen(from), tl = strlen(to);
    char *out = malloc(strlen(buf) - fl + tl + 1);
    memcpy(out, buf, pre);
    memcpy(out + pre, to, tl);
    strcpy(out + pre + tl, at + fl);
    return out;
}

/* Applies replace() and re-signs, then expects the parse to fail with a
 * message containing want. */
static void expect_corrupt_edit(const char *from, const char *to, const char *want)
{
    kv_snapshot s, got;
    sample(&s);
    size_t len;
    char *buf = write_buf(&s, &len);
    char *edited = replace(buf, from, to);
    char *signed_buf = resign(edited, &len);
    errdetail err = {0};
    assert_int_equal(parse(signed_buf, len, &got, &err), CITRUS_ECORRUPT);
    if (!strstr(err.message, want))
        fail_msg("error \"%s\" does not mention \"%s\"", err.message, want);
    assert_null(got.items);
    assert_int_equal(got.count, 0);
    free(signed_buf);
    free(edited);
    free(buf);
    kv_snapshot_free(&s);
}

static void assert_same(const kv_snapshot *a, const kv_snapshot *b)
{
    assert_int_equal(a->revision, b->revision);
    assert_int_equal(a->compact_revision, b->compact_revision);
    assert_int_equal(a->count, b->count);
    assert_int_equal(a->nleases, b->nleases);
    for (size_t i = 0; i < a->count; i++) {
        const kv_entry *x = &a->items[i], *y = &b->items[i];
        assert_string_equal(x->key, y->key);
        assert_int_equal(x->value_len, y->value_len);
        if (x->value_len)
            assert_memory_equal(x->value, y->value, x->value_len);
        else
            assert_null(y->value);
        assert_int_equal(x->create_revision, y->create_revision);
        assert_int_equal(x->mod_revision, y->mod_revision);
        assert_int_equal(x->version, y->version);
        assert_int_equal(x->lease, y->lease);
    }
    for (size_t i = 0; i < a->nleases; i++) {
        assert_int_equal(a->leases[i].id, b->leases[i].id);
        assert_int_equal(a->leases[i].ttl, b->leases[i].ttl);
        assert_int_equal(a->leases[i].remaining, b->leases[i].remaining);
    }
}

static void test_round_trip(void **state)
{
    kv_snapshot s, got;
    sample(&s);
    assert_int_equal(snapshot_file_check(&s, NULL), 0);
    size_t len;
    char *buf = write_buf(&s, &len);
    errdetail err = {0};
    int rc = parse(buf, len, &got, &err);
    if (rc != 0)
        fail_msg("parse: %s", err.message);
    assert_same(&s, &got);
    kv_snapshot_free(&got);
    free(buf);
    kv_snapshot_free(&s);
}

static void test_layout(void **state)
{
    kv_snapshot s;
    sample(&s);
    size_t len;
    char *buf = write_buf(&s, &len);
    assert_int_equal(strlen(buf), len);
    const char *want_header =
        "{\"format\":\"citrus-backup\",\"version\":1,\"revision\":42,\"compact_revision\":7,"
        "\"count\":5,\"leases\":2,\"created\":\"2024-05-01T12:00:00Z\"}\n"
        "{\"lease\":{\"id\":11,\"ttl\":30,\"remaining\":25}}\n"
        "{\"lease\":{\"id\":12,\"ttl\":5,\"remaining\":0}}\n"
        "{\"key\":\"a\",\"value\":\"MQ==\",\"create_revision\":3,\"mod_revision\":3,"
        "\"version\":1,\"lease\":0}\n";
    assert_memory_equal(buf, want_header, strlen(want_header));
    /* 1 header + 2 leases + 5 items + trailer, one object per line. */
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += buf[i] == '\n';
    assert_int_equal(lines, 9);
    assert_non_null(strstr(buf, "\n{\"sha256\":\""));
    free(buf);
    kv_snapshot_free(&s);
}

static void test_empty_snapshot(void **state)
{
    kv_snapshot s = {.revision = 0}, got;
    size_t len;
    char *buf = write_buf(&s, &len);
    errdetail err = {0};
    assert_int_equal(parse(buf, len, &got, &err), 0);
    assert_int_equal(got.count, 0);
    assert_int_equal(got.nleases, 0);
    assert_int_equal(got.revision, 0);
    kv_snapshot_free(&got);
    free(buf);
}

/* Every single-bit change anywhere in the file is caught. */
static void test_flipped_byte(void **state)
{
    kv_snapshot s, got;
    sample(&s);
    size_t len;
    char *buf = write_buf(&s, &len);
    for (size_t i = 0; i < len; i++) {
        for (unsigned bit = 0; bit < 8; bit += 7) {
            buf[i] ^= (char)(1u << bit);
            errdetail err = {0};
            int rc = parse(buf, len, &got, &err);
            if (rc != CITRUS_ECORRUPT)
                fail_msg("flipping bit %u of byte %zu: rc %d", bit, i, rc);
            assert_true(err.message[0] != '\0');
            buf[i] ^= (char)(1u << bit);
        }
    }
    free(buf);
    kv_snapshot_free(&s);
}

/* A file cut short at any byte is refused. */
static void test_truncated(void **state)
{
    kv_snapshot s, got;
    sample(&s);
    size_t len;
    char *buf = write_buf(&s, &len);
    for (size_t cut = 0; cut < len; cut++) {
        errdetail err = {0};
        int rc = parse(buf, cut, &got, &err);
        if (rc != CITRUS_ECORRUPT)
            fail_msg("truncated to %zu of %zu bytes: rc %d", cut, len, rc);
        assert_true(err.message[0] != '\0');
    }
    free(buf);
    kv_snapshot_free(&s);
}

static void test_missing_trailer(void **state)
{
    kv_snapshot s, got;
    sample(&s);
    size_t len;
    char *buf = write_buf(&s, &len);
    char *t = strstr(buf, "{\"sha256\"");
    assert_non_null(t);
    errdetail err = {0};
    assert_int_equal(parse(buf, (size_t)(t - buf), &got, &err), CITRUS_ECORRUPT);
    assert_non_null(strstr(err.message, "trailer"));
    free(buf);
    kv_snapshot_free(&s);
}

static void test_data_after_trailer(void **state)
{
    kv_snapshot s, got;
    sample(&s);
    size_t len;
    char *buf = write_buf(&s, &len);
    char *more = malloc(len + 32);
    memcpy(more, buf, len);
    memcpy(more + len, "{\"x\":1}\n", 8);
    errdetail err = {0};
    assert_int_equal(parse(more, len + 8, &got, &err), CITRUS_ECORRUPT);
    free(more);
    free(buf);
    kv_snapshot_free(&s);
}

static void test_wrong_count(void **state)
{
    expect_corrupt_edit("\"count\":5", "\"count\":4", "header promises 4 keys");
    expect_corrupt_edit("\"count\":5", "\"count\":6", "header promises 6 keys");
    expect_corrupt_edit("\"leases\":2", "\"leases\":3", "3 leases");
    /* Same total of lines, split differently: a lease line read as an item. */
    expect_corrupt_edit("\"count\":5,\"leases\":2", "\"count\":6,\"leases\":1", "line 3");
}

static void test_bad_lines(void **state)
{
    expect_corrupt_edit("citrus-backup", "other-backup", "not a citrus backup");
    expect_corrupt_edit("\"version\":1", "\"version\":2", "unsupported backup version 2");
    expect_corrupt_edit("\"created\":\"2024", "\"extra\":1,\"created\":\"2024", "line 1");
    expect_corrupt_edit("\"value\":\"MQ==\"", "\"value\":\"M!==\"", "base64");
    expect_corrupt_edit("\"value\":\"MQ==\"", "\"value\":\"MQ=\"", "base64");
    expect_corrupt_edit("\"value\":\"MQ==\"", "\"value\":1", "value");
    expect_corrupt_edit("\"key\":\"a\",", "", "key");
    expect_corrupt_edit("\"key\":\"a\"", "\"key\":\"a\",\"key\":\"b\"", "line 4");
    expect_corrupt_edit("\"lease\":{\"id\":11", "\"lease\":{\"id\":\"11\"", "line 2");
    expect_corrupt_edit("\"mod_revision\":3,", "\"mod_revision\":3,\"color\":\"red\",", "color");
    expect_corrupt_edit("{\"key\":\"a\"", "[{\"key\":\"a\"", "line 4");
}

static void test_bad_content(void **state)
{
    expect_corrupt_edit("\"key\":\"a\"", "\"key\":\"\"", "key is empty");
    expect_corrupt_edit("\"key\":\"a\"", "\"key\":\"a//x\"", "invalid key");
    expect_corrupt_edit("\"key\":\"a\"", "\"key\":\"a\\u0000x\"", "line 4");
    expect_corrupt_edit("\"key\":\"a\"", "\"key\":\"zz\"", "out of order");
    expect_corrupt_edit("\"key\":\"a/b\"", "\"key\":\"a\"", "out of order");
    expect_corrupt_edit("\"lease\":11}", "\"lease\":99}", "lease 99 is not in the snapshot");
    expect_corrupt_edit("\"id\":12", "\"id\":11", "appears twice");
    expect_corrupt_edit("\"ttl\":30", "\"ttl\":0", "ttl");
    expect_corrupt_edit("\"mod_revision\":42", "\"mod_revision\":43", "impossible revisions");
    expect_corrupt_edit("\"create_revision\":3", "\"create_revision\":0", "impossible revisions");
    expect_corrupt_edit("\"version\":1,\"lease\":0", "\"version\":0,\"lease\":0",
                        "impossible revisions");
}

static void test_not_a_backup(void **state)
{
    kv_snapshot got;
    errdetail err = {0};
    assert_int_equal(parse("", 0, &got, &err), CITRUS_ECORRUPT);
    assert_non_null(strstr(err.message, "empty"));
    const char *junk = "hello world\n";
    assert_int_equal(parse(junk, strlen(junk), &got, &err), CITRUS_ECORRUPT);
    const char *json = "{\"revision\":3,\"items\":[]}\n";
    assert_int_equal(parse(json, strlen(json), &got, &err), CITRUS_ECORRUPT);
    assert_non_null(strstr(err.message, "line 1"));
}

static void test_write_rejects_non_utf8_key(void **state)
{
    kv_snapshot s = {.revision = 5, .count = 1};
    kv_entry e = entry("bad\xff", "v", 1, 1, 1, 1, 0);
    s.items = &e;
    char *buf = NULL;
    size_t len;
    errdetail err = {0};
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(snapshot_file_write(f, &s, CREATED, &err), CITRUS_EBADKEY);
    assert_int_equal(err.code, CITRUS_EBADKEY);
    assert_non_null(strstr(err.message, "UTF-8"));
    fclose(f);
    free(buf);
    kv_entry_clear(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_empty_snapshot),
        cmocka_unit_test(test_flipped_byte),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_missing_trailer),
        cmocka_unit_test(test_data_after_trailer),
        cmocka_unit_test(test_wrong_count),
        cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_bad_content),
        cmocka_unit_test(test_not_a_backup),
        cmocka_unit_test(test_write_rejects_non_utf8_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
