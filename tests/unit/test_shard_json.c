/* Unit tests for wire/shard_json.c: the record's JSON form and its round
 * trip, and times (the request bodies are test_shardbody.c's). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "citrus/errors.h"
#include "wire/shard_json.h"

static json_t *parse_json(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
    if (!j)
        fail_msg("bad test JSON %s: %s", text, e.text);
    return j;
}

/* A shard with every field set and a few transitions behind it. */
static void sample(shard *s)
{
    shard_init(s);
    strcpy(s->id, "orders-eu-1");
    s->dsn = strdup("postgres://citrus:pw@db1:5432/orders");
    s->nreplicas = 2;
    s->replicas = calloc(2, sizeof(char *));
    s->replicas[0] = strdup("postgres://db2/orders");
    s->replicas[1] = strdup("postgres://db3/orders");
    s->zone = strdup("eu-west-1a");
    s->weight = 2.5;
    s->ntags = 2;
    s->tags = calloc(2, sizeof(shard_tag));
    s->tags[0].key = strdup("tier");
    s->tags[0].value = strdup("gold");
    s->tags[1].key = strdup("owner");
    s->tags[1].value = strdup("caf\xc3\xa9");
    s->template_name = strdup("orders");
    s->created_ms = 1795333200123LL;
    assert_int_equal(shard_transition(s, SHARD_PROVISIONING, "create", "api", s->created_ms), 0);
    assert_int_equal(shard_transition(s, SHARD_FAILED, "disk full", "provisioner", 1795333201000),
                     0);
    s->base_epoch = 1;
}

static const char *str_member(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static void times(void **state)
{
    char buf[32];
    shard_json_time(0, buf, sizeof(buf));
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
    shard_json_time(1795333200123LL, buf, sizeof(buf));
    assert_string_equal(buf, "2026-11-22T07:40:00.123Z");
    shard_json_time(951782400000LL, buf, sizeof(buf)); /* leap day */
    assert_string_equal(buf, "2000-02-29T00:00:00.000Z");
    shard_json_time(-1, buf, sizeof(buf));
    assert_string_equal(buf, "1969-12-31T23:59:59.999Z");

    int64_t ms = 0;
    assert_int_equal(shard_json_parse_time("2026-11-22T07:40:00.123Z", &ms), 0);
    assert_int_equal(ms, 1795333200123LL);
    assert_int_equal(shard_json_parse_time("2026-11-22T07:40:00Z", &ms), 0);
    assert_int_equal(ms, 1795333200000LL);
    assert_int_equal(shard_json_parse_time("2026-11-22T07:40:00.1Z", &ms), 0);
    assert_int_equal(ms, 1795333200100LL);
    assert_int_equal(shard_json_parse_time("2026-11-22T07:40:00.123456Z", &ms), 0);
    assert_int_equal(ms, 1795333200123LL);
    assert_int_equal(shard_json_parse_time("1969-12-31T23:59:59.999Z", &ms), 0);
    assert_int_equal(ms, -1);
    assert_int_equal(shard_json_parse_time("2000-02-29T00:00:00.000Z", &ms), 0);
    const char *bad[] = {"",
                         "2026-11-22",
                         "2026-11-22T07:40:00.123",
                         "2026-11-22T07:40:00.123+01:00",
                         "2026-11-22 07:40:00.123Z",
                         "2026-13-01T00:00:00Z",
                         "2026-02-29T00:00:00Z",
                         "2026-11-31T00:00:00Z",
                         "2026-11-22T24:00:00Z",
                         "2026-11-22T07:60:00Z",
                         "2026-11-22T07:40:60Z",
                         "2026-11-22T07:40:00.Z",
                         "2026-11-22T07:40:00.123Zx",
                         "+026-11-22T07:40:00Z",
                         "2026-1a-22T07:40:00Z"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (shard_json_parse_time(bad[i], &ms) != CITRUS_EINVAL)
            fail_msg("accepted time '%s'", bad[i]);
}

static void record_form(void **state)
{
    shard s;
    sample(&s);
    json_t *j = shard_to_json(&s, true);
    assert_non_null(j);
    assert_string_equal(str_member(j, "id"), "orders-eu-1");
    assert_string_equal(str_member(j, "state"), "failed");
    assert_string_equal(str_member(j, "dsn"), "postgres://citrus:pw@db1:5432/orders");
    assert_int_equal(json_array_size(json_object_get(j, "replicas")), 2);
    assert_string_equal(str_member(j, "zone"), "eu-west-1a");
    assert_true(json_number_value(json_object_get(j, "weight")) == 2.5);
    assert_string_equal(str_member(json_object_get(j, "tags"), "tier"), "gold");
    assert_int_equal(json_integer_value(json_object_get(j, "epoch")), 2);
    assert_string_equal(str_member(j, "created_at"), "2026-11-22T07:40:00.123Z");
    assert_string_equal(str_member(j, "updated_at"), "2026-11-22T07:40:01.000Z");
    assert_string_equal(str_member(j, "template"), "orders");
    assert_string_equal(str_member(j, "error"), "disk full");
    json_t *h = json_object_get(j, "history");
    assert_int_equal(json_array_size(h), 2);
    json_t *e = json_array_get(h, 1);
    assert_string_equal(str_member(e, "at"), "2026-11-22T07:40:01.000Z");
    assert_string_equal(str_member(e, "from"), "provisioning");
    assert_string_equal(str_member(e, "to"), "failed");
    assert_string_equal(str_member(e, "reason"), "disk full");
    assert_string_equal(str_member(e, "actor"), "provisioner");
    json_decref(j);

    j = shard_to_json(&s, false);
    assert_null(json_object_get(j, "history"));
    json_decref(j);
    shard_clear(&s);
}

static void absent_fields_are_null(void **state)
{
    shard s;
    shard_init(&s);
    strcpy(s.id, "s1");
    json_t *j = shard_to_json(&s, true);
    const char *nulls[] = {"dsn", "zone", "template", "error"};
    for (size_t i = 0; i < 4; i++)
        assert_true(json_is_null(json_object_get(j, nulls[i])));
    assert_int_equal(json_array_size(json_object_get(j, "replicas")), 0);
    assert_int_equal(json_object_size(json_object_get(j, "tags")), 0);
    assert_int_equal(json_array_size(json_object_get(j, "history")), 0);
    assert_string_equal(str_member(j, "state"), "pending");
    json_decref(j);
}

static void invalid_utf8_is_sanitized(void **state)
{
    shard s;
    shard_init(&s);
    strcpy(s.id, "s1");
    assert_int_equal(shard_transition(&s, SHARD_FAILED, "driver said \xff\xfe", "x", 1), 0);
    json_t *j = shard_to_json(&s, true);
    assert_non_null(j);
    assert_string_equal(str_member(j, "error"), "driver said ??");
    json_decref(j);
    shard_clear(&s);
}

static void round_trip(void **state)
{
    shard s;
    sample(&s);
    json_t *j = shard_to_json(&s, true);
    char *text = json_dumps(j, JSON_COMPACT);
    json_t *back = parse_json(text);
    shard t;
    errdetail err;
    if (shard_from_json(back, &t, &err) != 0)
        fail_msg("from_json: %s", err.message);
    assert_string_equal(t.id, s.id);
    assert_int_equal(t.state, s.state);
    assert_string_equal(t.dsn, s.dsn);
    assert_int_equal(t.nreplicas, 2);
    assert_string_equal(t.replicas[1], s.replicas[1]);
    assert_string_equal(t.zone, s.zone);
    assert_true(t.weight == s.weight);
    assert_int_equal(t.ntags, 2);
    for (size_t i = 0; i < 2; i++) {
        bool found = false;
        for (size_t k = 0; k < 2; k++)
            found |= strcmp(t.tags[i].key, s.tags[k].key) == 0 &&
                     strcmp(t.tags[i].value, s.tags[k].value) == 0;
        assert_true(found);
    }
    assert_int_equal(t.epoch, s.epoch);
    assert_int_equal(t.created_ms, s.created_ms);
    assert_int_equal(t.updated_ms, s.updated_ms);
    assert_string_equal(t.template_name, s.template_name);
    assert_string_equal(t.error, s.error);
    assert_int_equal(t.nhistory, 2);
    assert_int_equal(t.history[1].at_ms, s.history[1].at_ms);
    assert_int_equal(t.history[1].from, SHARD_PROVISIONING);
    assert_int_equal(t.history[1].to, SHARD_FAILED);
    assert_string_equal(t.history[1].reason, "disk full");
    assert_string_equal(t.history[1].actor, "provisioner");
    /* the epochs the lifecycle relay reads: each change's, and the base */
    assert_int_equal(t.base_epoch, s.base_epoch);
    assert_true(s.history[1].epoch > 0);
    assert_int_equal(t.history[1].epoch, s.history[1].epoch);
    assert_int_equal(t.history[0].epoch, s.history[0].epoch);
    /* And the loaded record renders identically. */
    json_t *again = shard_to_json(&t, true);
    assert_true(json_equal(j, again));
    json_decref(again);
    json_decref(back);
    free(text);
    json_decref(j);
    shard_clear(&t);
    shard_clear(&s);
}

static void from_json_minimal_and_lenient(void **state)
{
    json_t *j = parse_json("{\"id\":\"s1\",\"state\":\"active\",\"epoch\":3,"
                           "\"created_at\":\"2026-01-01T00:00:00.000Z\","
                           "\"updated_at\":\"2026-01-01T00:00:01Z\",\"future_field\":[1]}");
    shard s;
    errdetail err;
    assert_int_equal(shard_from_json(j, &s, &err), 0);
    assert_int_equal(s.state, SHARD_ACTIVE);
    assert_null(s.dsn);
    assert_true(s.weight == 1.0);
    assert_int_equal(s.nhistory, 0);
    shard_clear(&s);
    json_decref(j);
}

static void from_json_keeps_newest_history(void **state)
{
    shard s;
    shard_init(&s);
    strcpy(s.id, "s1");
    json_t *j = shard_to_json(&s, false);
    json_t *h = json_array();
    for (int i = 0; i < SHARD_HISTORY_MAX + 5; i++) {
        char reason[16];
        snprintf(reason, sizeof(reason), "r%d", i);
        json_array_append_new(h, json_pack("{s:s,s:s,s:s,s:s,s:s}", "at",
                                           "2026-01-01T00:00:00.000Z", "from", "active", "to",
                                           "read_only", "reason", reason, "actor", "t"));
    }
    json_object_set_new(j, "history", h);
    shard t;
    errdetail err;
    assert_int_equal(shard_from_json(j, &t, &err), 0);
    assert_int_equal(t.nhistory, SHARD_HISTORY_MAX);
    assert_string_equal(t.history[0].reason, "r5");
    shard_clear(&t);
    json_decref(j);
}

/* Replaces member name of a valid stored record with the JSON in value
 * (NULL: deletes it) and expects an error starting with want. */
static void stored_bad(const char *name, const char *value, const char *want)
{
    shard s;
    sample(&s);
    json_t *j = shard_to_json(&s, true);
    shard_clear(&s);
    if (value)
        json_object_set_new(j, name, parse_json(value));
    else
        json_object_del(j, name);
    errdetail err;
    shard t;
    int rc = shard_from_json(j, &t, &err);
    if (rc != CITRUS_EBADJSON)
        fail_msg("%s=%s: rc %d (%s)", name, value ? value : "(absent)", rc, err.message);
    assert_int_equal(err.code, CITRUS_EBADJSON);
    if (strncmp(err.message, want, strlen(want)) != 0)
        fail_msg("%s=%s: message '%s' does not start with '%s'", name, value, err.message, want);
    assert_int_equal(t.nhistory, 0); /* cleared */
    assert_null(t.dsn);
    json_decref(j);
}

static void from_json_strict_types(void **state)
{
    stored_bad("id", "7", "id:");
    stored_bad("id", NULL, "id: missing");
    stored_bad("id", "\"Bad Id\"", "id:");
    stored_bad("state", "\"gone\"", "state:");
    stored_bad("state", "null", "state:");
    stored_bad("epoch", "\"2\"", "epoch:");
    stored_bad("epoch", "-1", "epoch:");
    stored_bad("epoch", NULL, "epoch: missing");
    stored_bad("created_at", "12345", "created_at:");
    stored_bad("updated_at", "\"yesterday\"", "updated_at:");
    stored_bad("dsn", "42", "dsn:");
    stored_bad("zone", "[]", "zone:");
    stored_bad("template", "true", "template:");
    stored_bad("error", "{}", "error:");
    stored_bad("weight", "\"2\"", "weight:");
    stored_bad("weight", "0", "weight:");
    stored_bad("replicas", "\"x\"", "replicas:");
    stored_bad("replicas", "[\"a\", 1]", "replicas[1]:");
    stored_bad("tags", "[]", "tags:");
    stored_bad("tags", "{\"k\": 1}", "tags.k:");
    stored_bad("history", "{}", "history:");
    stored_bad("history", "[1]", "history[0]:");
    stored_bad("history",
               "[{\"at\":\"2026-01-01T00:00:00Z\",\"from\":\"nowhere\",\"to\":\"active\"}]",
               "history[0].from:");
    stored_bad("history", "[{\"at\":5,\"from\":\"active\",\"to\":\"active\"}]", "history[0].at:");
    stored_bad("history",
               "[{\"at\":\"2026-01-01T00:00:00Z\",\"from\":\"active\",\"to\":\"failed\","
               "\"actor\":3}]",
               "history[0].actor:");
    errdetail err;
    shard t;
    json_t *arr = json_array();
    assert_int_equal(shard_from_json(arr, &t, &err), CITRUS_EBADJSON);
    assert_int_equal(err.code, CITRUS_EBADJSON);
    json_decref(arr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(times),
        cmocka_unit_test(record_form),
        cmocka_unit_test(absent_fields_are_null),
        cmocka_unit_test(invalid_utf8_is_sanitized),
        cmocka_unit_test(round_trip),
        cmocka_unit_test(from_json_minimal_and_lenient),
        cmocka_unit_test(from_json_keeps_newest_history),
        cmocka_unit_test(from_json_strict_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
