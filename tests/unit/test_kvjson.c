/* Unit tests for wire/kvjson.c: the encoders give the exact bytes the API
 * has always answered (members and their order), the decoders read them
 * back, strict decoding refuses what a backup line may not hold, and a
 * refused input leaves nothing behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "citrus/errors.h"
#include "wire/kvjson.h"

/* The compact text of j (which it takes), as http_reply_json sends it. */
static char *text_of(json_t *j)
{
    assert_non_null(j);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    assert_non_null(s);
    return s;
}

static void assert_text(json_t *j, const char *want)
{
    char *got = text_of(j);
    assert_string_equal(got, want);
    free(got);
}

static json_t *parse(const char *s)
{
    json_t *j = json_loads(s, 0, NULL);
    assert_non_null(j);
    return j;
}

static kv_entry entry_a = {.key = "app/a",
                           .value = (unsigned char *)"1",
                           .value_len = 1,
                           .create_revision = 3,
                           .mod_revision = 5,
                           .version = 2,
                           .lease = 7};

static void encoders_give_the_api_bytes(void **state)
{
    assert_text(kvjson_entry_encode(&entry_a, true),
                "{\"key\":\"app/a\",\"value\":\"MQ==\",\"create_revision\":3,\"mod_revision\":5,"
                "\"version\":2,\"lease\":7}");
    assert_text(kvjson_entry_encode(&entry_a, false),
                "{\"key\":\"app/a\",\"create_revision\":3,\"mod_revision\":5,\"version\":2,"
                "\"lease\":7}");
    kv_event put = {.type = KV_EVENT_PUT, .kv = entry_a};
    assert_text(kvjson_event_encode(&put),
                "{\"key\":\"app/a\",\"value\":\"MQ==\",\"create_revision\":3,\"mod_revision\":5,"
                "\"version\":2,\"lease\":7,\"type\":\"put\"}");
    kv_event del = {.type = KV_EVENT_DELETE, .kv = {.key = "app/a", .mod_revision = 9}};
    assert_text(kvjson_event_encode(&del),
                "{\"key\":\"app/a\",\"create_revision\":0,\"mod_revision\":9,\"version\":0,"
                "\"lease\":0,\"type\":\"delete\"}");
    kv_entry empty = {.key = "e", .create_revision = 1, .mod_revision = 1, .version = 1};
    kv_entry items[] = {entry_a, empty};
    kv_range_res r = {.revision = 11, .items = items, .count = 2, .more = true};
    assert_text(kvjson_range_encode(&r, true),
                "{\"revision\":11,\"items\":[{\"key\":\"app/a\",\"value\":\"MQ==\","
                "\"create_revision\":3,\"mod_revision\":5,\"version\":2,\"lease\":7},"
                "{\"key\":\"e\",\"value\":\"\",\"create_revision\":1,\"mod_revision\":1,"
                "\"version\":1,\"lease\":0}],\"more\":true}");
    kv_lease_info lease = {.id = 7, .ttl = 60, .remaining = 42};
    kv_snapshot s = {.revision = 11,
                     .compact_revision = 2,
                     .items = items,
                     .count = 1,
                     .leases = &lease,
                     .nleases = 1};
    assert_text(kvjson_snapshot_encode(&s),
                "{\"revision\":11,\"compact_revision\":2,\"items\":[{\"key\":\"app/a\","
                "\"value\":\"MQ==\",\"create_revision\":3,\"mod_revision\":5,\"version\":2,"
                "\"lease\":7}],\"leases\":[{\"id\":7,\"ttl\":60,\"remaining\":42}]}");
}

static void encoders_refuse_keys_json_cannot_hold(void **state)
{
    kv_entry bad = entry_a;
    bad.key = "bad\xff";
    assert_null(kvjson_entry_encode(&bad, true));
    kv_event ev = {.type = KV_EVENT_DELETE, .kv = bad};
    assert_null(kvjson_event_encode(&ev));
    kv_entry items[] = {entry_a, bad};
    kv_range_res r = {.revision = 1, .items = items, .count = 2};
    assert_null(kvjson_items_encode(&r, false));
    assert_null(kvjson_range_encode(&r, false));
    kv_snapshot s = {.revision = 1, .items = items, .count = 2};
    assert_null(kvjson_snapshot_encode(&s));
}

static void entry_strict_and_lenient(void **state)
{
    errdetail why;
    kv_entry e;
    json_t *j = parse("{\"key\":\"k\",\"value\":\"MQ==\",\"create_revision\":1,"
                      "\"mod_revision\":2,\"version\":1,\"extra\":true}");
    assert_int_equal(kvjson_entry_decode(j, true, true, &e, &why), CITRUS_EBADJSON);
    assert_int_equal(why.code, CITRUS_EBADJSON);
    assert_non_null(strstr(why.message, "unexpected member \"extra\""));
    assert_null(e.key);
    /* Lenient: the extra member is ignored and a missing lease is 0. */
    assert_int_equal(kvjson_entry_decode(j, false, true, &e, &why), 0);
    assert_string_equal(e.key, "k");
    assert_int_equal(e.value_len, 1);
    assert_memory_equal(e.value, "1", 1);
    assert_int_equal(e.mod_revision, 2);
    assert_int_equal(e.lease, 0);
    kv_entry_clear(&e);
    json_object_del(j, "extra");
    assert_int_equal(kvjson_entry_decode(j, true, true, &e, &why), CITRUS_EBADJSON);
    assert_int_equal(why.code, CITRUS_EBADJSON);
    assert_non_null(strstr(why.message, "\"lease\" is missing"));
    /* Without the value: strict refuses one, lenient ignores it. */
    json_object_set_new(j, "lease", json_integer(0));
    assert_int_equal(kvjson_entry_decode(j, true, false, &e, &why), CITRUS_EBADJSON);
    assert_int_equal(kvjson_entry_decode(j, false, false, &e, &why), 0);
    assert_null(e.value);
    assert_int_equal(e.value_len, 0);
    kv_entry_clear(&e);
    /* An empty value is no value (NULL), as the stores give it. */
    json_object_set_new(j, "value", json_string(""));
    assert_int_equal(kvjson_entry_decode(j, true, true, &e, &why), 0);
    assert_null(e.value);
    kv_entry_clear(&e);
    json_object_set_new(j, "value", json_string("MQ="));
    assert_int_equal(kvjson_entry_decode(j, false, true, &e, &why), CITRUS_EBADJSON);
    assert_int_equal(why.code, CITRUS_EBADJSON);
    assert_non_null(strstr(why.message, "base64"));
    assert_null(e.key);
    json_object_set_new(j, "key", json_stringn("a\0b", 3));
    assert_int_equal(kvjson_entry_decode(j, false, true, &e, &why), CITRUS_EBADJSON);
    assert_int_equal(why.code, CITRUS_EBADJSON);
    assert_non_null(strstr(why.message, "NUL"));
    json_decref(j);
}

static void lease_defaults(void **state)
{
    errdetail why;
    kv_lease_info l;
    json_t *j = parse("{\"id\":7,\"ttl\":60}");
    assert_int_equal(kvjson_lease_decode(j, true, &l, &why), CITRUS_EBADJSON);
    assert_int_equal(l.id, 0);
    assert_int_equal(kvjson_lease_decode(j, false, &l, &why), 0);
    assert_int_equal(l.remaining, 60); /* absent: the whole ttl */
    json_decref(j);
}

static void events_by_type(void **state)
{
    errdetail why;
    kv_event ev;
    json_t *j = parse("{\"key\":\"k\",\"create_revision\":0,\"mod_revision\":9,\"version\":0,"
                      "\"lease\":0,\"type\":\"delete\"}");
    assert_int_equal(kvjson_event_decode(j, &ev, &why), 0);
    assert_int_equal(ev.type, KV_EVENT_DELETE);
    assert_int_equal(ev.kv.mod_revision, 9);
    assert_null(ev.kv.value);
    kv_entry_clear(&ev.kv);
    /* A put needs its value. */
    json_object_set_new(j, "type", json_string("put"));
    assert_int_equal(kvjson_event_decode(j, &ev, &why), CITRUS_EBADJSON);
    assert_int_equal(why.code, CITRUS_EBADJSON);
    assert_non_null(strstr(why.message, "\"value\" is missing"));
    assert_null(ev.kv.key);
    json_object_set_new(j, "type", json_string("patch"));
    assert_int_equal(kvjson_event_decode(j, &ev, &why), CITRUS_EBADJSON);
    assert_int_equal(why.code, CITRUS_EBADJSON);
    assert_non_null(strstr(why.message, "type"));
    json_decref(j);
}

static void range_round_trip(void **state)
{
    errdetail why;
    kv_range_res r;
    kv_entry items[] = {entry_a};
    kv_range_res src = {.revision = 4, .items = items, .count = 1, .more = true};
    json_t *j = kvjson_range_encode(&src, false);
    assert_int_equal(kvjson_range_decode(j, false, &r, &why), 0);
    assert_int_equal(r.revision, 4);
    assert_true(r.more);
    assert_int_equal(r.count, 1);
    assert_string_equal(r.items[0].key, "app/a");
    assert_int_equal(r.items[0].lease, 7);
    assert_null(r.items[0].value);
    kv_range_res_free(&r);
    /* "more" may be left out; a bad item fails the whole page. */
    json_object_del(j, "more");
    assert_int_equal(kvjson_range_decode(j, false, &r, &why), 0);
    assert_false(r.more);
    kv_range_res_free(&r);
    assert_int_equal(kvjson_range_decode(j, true, &r, &why), CITRUS_EBADJSON);
    assert_int_equal(why.code, CITRUS_EBADJSON);
    assert_non_null(strstr(why.message, "\"value\" is missing"));
    assert_null(r.items);
    assert_int_equal(r.count, 0);
    json_object_set_new(j, "items", json_object());
    assert_int_equal(kvjson_range_decode(j, false, &r, &why), CITRUS_EBADJSON);
    assert_int_equal(why.code, CITRUS_EBADJSON);
    assert_non_null(strstr(why.message, "\"items\" is not an array"));
    json_decref(j);
}

static void watch_answers(void **state)
{
    errdetail why;
    kvjson_watch w;
    json_t *j = parse("{\"revision\":12,\"events\":[{\"key\":\"a\",\"value\":\"eA==\","
                      "\"create_revision\":10,\"mod_revision\":10,\"version\":1,\"lease\":0,"
                      "\"type\":\"put\"},{\"key\":\"b\",\"create_revision\":0,"
                      "\"mod_revision\":11,\"version\":0,\"lease\":0,\"type\":\"delete\"}]}");
    assert_int_equal(kvjson_watch_decode(j, &w, &why), 0);
    assert_int_equal(w.revision, 12);
    assert_int_equal(w.count, 2);
    assert_int_equal(w.events[0].type, KV_EVENT_PUT);
    assert_memory_equal(w.events[0].kv.value, "x", 1);
    assert_int_equal(w.events[1].type, KV_EVENT_DELETE);
    assert_string_equal(w.events[1].kv.key, "b");
    kvjson_watch_free(&w);
    json_object_del(json_array_get(json_object_get(j, "events"), 1), "type");
    assert_int_equal(kvjson_watch_decode(j, &w, &why), CITRUS_EBADJSON);
    assert_null(w.events);
    assert_int_equal(w.count, 0);
    json_object_del(j, "revision");
    assert_int_equal(kvjson_watch_decode(j, &w, &why), CITRUS_EBADJSON);
    assert_int_equal(why.code, CITRUS_EBADJSON);
    assert_non_null(strstr(why.message, "\"revision\" is missing"));
    json_decref(j);
}

static void snapshot_answers(void **state)
{
    errdetail why;
    kv_snapshot s;
    json_t *j = parse("{\"revision\":5,\"items\":[{\"key\":\"a\",\"value\":\"eA==\","
                      "\"create_revision\":2,\"mod_revision\":3,\"version\":2,\"lease\":0,"
                      "\"new_field\":1}],\"server\":\"x\"}");
    assert_int_equal(kvjson_snapshot_decode(j, &s, &why), 0);
    assert_int_equal(s.revision, 5);
    assert_int_equal(s.compact_revision, 0);
    assert_int_equal(s.count, 1);
    assert_int_equal(s.nleases, 0);
    assert_int_equal(s.items[0].version, 2);
    /* Encoded again it is what GET /v1/snapshot answers. */
    assert_text(kvjson_snapshot_encode(&s),
                "{\"revision\":5,\"compact_revision\":0,\"items\":[{\"key\":\"a\","
                "\"value\":\"eA==\",\"create_revision\":2,\"mod_revision\":3,\"version\":2,"
                "\"lease\":0}],\"leases\":[]}");
    kv_snapshot_free(&s);
    json_object_set_new(j, "leases", json_pack("[{s:s}]", "id", "7"));
    assert_int_equal(kvjson_snapshot_decode(j, &s, &why), CITRUS_EBADJSON);
    assert_int_equal(why.code, CITRUS_EBADJSON);
    assert_non_null(strstr(why.message, "\"id\" is not an integer"));
    assert_null(s.items);
    assert_int_equal(s.count, 0);
    json_decref(j);
}

/* The dump encoders write the same text as the tree encoders (plus the
 * final newline), free each value as they go, and stay within the size
 * kv_entry_wire_size promised. */
static void dumps_match_the_tree_encoders(void **state)
{
    (void)state;
    kv_entry items[3];
    size_t bound = 64;
    for (int i = 0; i < 3; i++) {
        items[i] = (kv_entry){.key = strdup(i ? "a/\"q\"\\x" : "a/b"),
                              .value = malloc(1000 + (size_t)i),
                              .value_len = 1000 + (size_t)i,
                              .create_revision = i + 1,
                              .mod_revision = 2 * i + 1,
                              .version = i,
                              .lease = 7 * i};
        memset(items[i].value, 'a' + i, items[i].value_len);
        bound += kv_entry_wire_size(strlen(items[i].key), items[i].value_len, true);
    }
    kv_range_res r = {.revision = 42, .items = items, .count = 3, .more = true};
    json_t *tree = kvjson_range_encode(&r, true);
    char *want = json_dumps(tree, JSON_COMPACT);
    json_decref(tree);
    size_t len = 0;
    char *got = kvjson_range_dump(&r, true, &len);
    assert_non_null(got);
    assert_int_equal(len, strlen(want) + 1);
    assert_memory_equal(got, want, strlen(want));
    assert_int_equal(got[len - 1], '\n');
    assert_true(len <= bound);
    assert_null(r.items[0].value);
    free(got);
    free(want);

    kv_lease_info leases[] = {{.id = 5, .ttl = 10, .remaining = 3}};
    kv_snapshot snap = {.revision = 9,
                        .compact_revision = 2,
                        .items = items,
                        .count = 3,
                        .leases = leases,
                        .nleases = 1};
    tree = kvjson_snapshot_encode(&snap);
    want = json_dumps(tree, JSON_COMPACT);
    json_decref(tree);
    got = kvjson_snapshot_dump(&snap, &len);
    assert_non_null(got);
    assert_int_equal(len, strlen(want) + 1);
    assert_memory_equal(got, want, strlen(want));
    free(got);
    free(want);
    for (int i = 0; i < 3; i++)
        kv_entry_clear(&items[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(encoders_give_the_api_bytes),
        cmocka_unit_test(dumps_match_the_tree_encoders),
        cmocka_unit_test(encoders_refuse_keys_json_cannot_hold),
        cmocka_unit_test(entry_strict_and_lenient),
        cmocka_unit_test(lease_defaults),
        cmocka_unit_test(events_by_type),
        cmocka_unit_test(range_round_trip),
        cmocka_unit_test(watch_answers),
        cmocka_unit_test(snapshot_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
