/* Unit tests for wire/shard_json.c: the record's JSON form and its round
 * trip, times, and the checks on POST /v1/shards and PATCH bodies (every
 * bad input must give an error that names the field). */
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
    char err[256] = "";
    if (shard_from_json(back, &t, err, sizeof(err)) != 0)
        fail_msg("from_json: %s", err);
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
    char err[256];
    assert_int_equal(shard_from_json(j, &s, err, sizeof(err)), 0);
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
    char err[256];
    assert_int_equal(shard_from_json(j, &t, err, sizeof(err)), 0);
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
    char err[256] = "";
    shard t;
    int rc = shard_from_json(j, &t, err, sizeof(err));
    if (rc != CITRUS_EBADJSON)
        fail_msg("%s=%s: rc %d (%s)", name, value ? value : "(absent)", rc, err);
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("%s=%s: message '%s' does not start with '%s'", name, value, err, want);
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
    char err[64];
    shard t;
    json_t *arr = json_array();
    assert_int_equal(shard_from_json(arr, &t, err, sizeof(err)), CITRUS_EBADJSON);
    json_decref(arr);
}

/* ---- POST bodies ----------------------------------------------------- */

static void spec_register(void **state)
{
    json_t *b = parse_json(
        "{\"id\":\"s-1\",\"dsn\":\"postgres://h/db\",\"replicas\":[\"postgres://r1/db\","
        "\"host=r2 dbname=db\"],\"zone\":\"z1\",\"weight\":3,\"tags\":{\"a\":\"1\",\"b\":\"\"},"
        "\"template\":\"orders\"}");
    shard_spec sp;
    char err[256] = "";
    if (shard_spec_from_json(b, &sp, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_string_equal(sp.id, "s-1");
    assert_string_equal(sp.dsn, "postgres://h/db");
    assert_int_equal(sp.nreplicas, 2);
    assert_string_equal(sp.replicas[1], "host=r2 dbname=db");
    assert_string_equal(sp.zone, "z1");
    assert_true(sp.weight == 3.0);
    assert_int_equal(sp.ntags, 2);
    assert_false(sp.provision);
    assert_string_equal(sp.template_name, "orders");
    assert_null(sp.params);
    shard_spec_clear(&sp);
    json_decref(b);
}

static void spec_minimal(void **state)
{
    json_t *b = parse_json("{\"dsn\":\"sqlite:x.db\",\"id\":null,\"zone\":null}");
    shard_spec sp;
    char err[256] = "";
    assert_int_equal(shard_spec_from_json(b, &sp, err, sizeof(err)), 0);
    assert_string_equal(sp.id, "");
    assert_null(sp.zone);
    assert_true(sp.weight == 1.0);
    assert_int_equal(sp.nreplicas, 0);
    assert_int_equal(sp.ntags, 0);
    assert_null(sp.template_name);
    shard_spec_clear(&sp);
    json_decref(b);
}

static void spec_provision(void **state)
{
    json_t *b = parse_json("{\"provision\":{\"template\":\"orders\",\"params\":{\"size\":\"s\"}},"
                           "\"weight\":0.5}");
    shard_spec sp;
    char err[256] = "";
    if (shard_spec_from_json(b, &sp, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    json_decref(b); /* params are owned by the spec */
    assert_true(sp.provision);
    assert_null(sp.dsn);
    assert_string_equal(sp.template_name, "orders");
    assert_string_equal(json_string_value(json_object_get(sp.params, "size")), "s");
    assert_true(sp.weight == 0.5);
    shard_spec_clear(&sp);

    b = parse_json("{\"provision\":{},\"template\":\"t1\"}");
    assert_int_equal(shard_spec_from_json(b, &sp, err, sizeof(err)), 0);
    assert_true(sp.provision);
    assert_string_equal(sp.template_name, "t1");
    shard_spec_clear(&sp);
    json_decref(b);

    b = parse_json("{\"provision\":{\"template\":\"t1\"},\"template\":\"t1\"}");
    assert_int_equal(shard_spec_from_json(b, &sp, err, sizeof(err)), 0);
    shard_spec_clear(&sp);
    json_decref(b);
}

/* body must be refused with an error starting with want (the field). */
static void spec_bad(const char *body, const char *want)
{
    json_t *b = parse_json(body);
    shard_spec sp;
    char err[256] = "";
    int rc = shard_spec_from_json(b, &sp, err, sizeof(err));
    if (rc == 0)
        fail_msg("accepted %s", body);
    assert_true(rc == CITRUS_EINVAL || rc == CITRUS_EBADJSON || rc == CITRUS_ETOOMANY);
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("%s: message '%s' does not start with '%s'", body, err, want);
    assert_null(sp.dsn); /* cleared on error */
    assert_null(sp.params);
    json_decref(b);
}

static void spec_errors(void **state)
{
    spec_bad("[]", "body:");
    spec_bad("{}", "dsn, provision: give one");
    spec_bad("{\"id\":\"s1\"}", "dsn, provision: give one");
    spec_bad("{\"dsn\":\"sqlite:x.db\",\"provision\":{}}", "dsn, provision: give only one");
    spec_bad("{\"id\":\"Bad\",\"dsn\":\"sqlite:x.db\"}", "id: must be 1..63");
    spec_bad("{\"id\":\"-x\",\"dsn\":\"sqlite:x.db\"}", "id:");
    spec_bad("{\"id\":5,\"dsn\":\"sqlite:x.db\"}", "id: must be a string");
    spec_bad("{\"dsn\":\"mysql://h/db\"}", "dsn: dsn must start with sqlite:");
    spec_bad("{\"dsn\":\"postgres://\"}", "dsn: postgres dsn has nothing");
    spec_bad("{\"dsn\":7}", "dsn: must be a string");
    spec_bad("{\"dsn\":\"sqlite:x.db\",\"replicas\":\"sqlite:y.db\"}",
             "replicas: must be an array");
    spec_bad("{\"dsn\":\"sqlite:x.db\",\"replicas\":[\"sqlite:y.db\",\"nope\"]}",
             "replicas[1]: dsn must start");
    spec_bad("{\"dsn\":\"sqlite:x.db\",\"replicas\":[3]}", "replicas[0]: must be a string");
    spec_bad("{\"dsn\":\"sqlite:x.db\",\"replicas\":[\"sqlite:x.db\"]}",
             "replicas[0]: repeats dsn");
    spec_bad("{\"dsn\":\"sqlite:x.db\",\"replicas\":[\"sqlite:y.db\",\"sqlite:y.db\"]}",
             "replicas[1]: repeats");
    spec_bad("{\"provision\":{},\"replicas\":[\"sqlite:y.db\"]}", "replicas: only with dsn");
    spec_bad("{\"dsn\":\"sqlite:x.db\",\"weight\":0}", "weight: must be a number > 0 and <= 100");
    spec_bad("{\"dsn\":\"sqlite:x.db\",\"weight\":-1}", "weight:");
    spec_bad("{\"dsn\":\"sqlite:x.db\",\"weight\":\"2\"}", "weight:");
    spec_bad("{\"dsn\":\"sqlite:x.db\",\"weight\":101}", "weight:");
    spec_bad("{\"dsn\":\"sqlite:x.db\",\"weight\":100.5}", "weight:");
    spec_bad("{\"dsn\":\"sqlite:x.db\",\"weight\":true}", "weight:");
    spec_bad("{\"dsn\":\"sqlite:x.db\",\"tags\":[]}", "tags: must be an object");
    spec_bad("{\"dsn\":\"sqlite:x.db\",\"tags\":\"a=b\"}", "tags: must be an object");
    spec_bad("{\"dsn\":\"sqlite:x.db\",\"tags\":{\"a\":1}}", "tags.a: must be a string");
    spec_bad("{\"dsn\":\"sqlite:x.db\",\"tags\":{\"a\":null}}", "tags.a: must be a string");
    spec_bad("{\"dsn\":\"sqlite:x.db\",\"tags\":{\"\":\"x\"}}", "tags: keys must be");
    spec_bad("{\"dsn\":\"sqlite:x.db\",\"zone\":5}", "zone: must be a string");
    spec_bad("{\"dsn\":\"sqlite:x.db\",\"zone\":\"\"}", "zone: must be 1..64");
    spec_bad("{\"dsn\":\"sqlite:x.db\",\"template\":\"../etc\"}", "template:");
    spec_bad("{\"dsn\":\"sqlite:x.db\",\"template\":1}", "template: must be a string");
    spec_bad("{\"dsn\":\"sqlite:x.db\",\"shard\":\"x\"}", "shard: unknown field");
    spec_bad("{\"dsn\":\"sqlite:x.db\",\"Weight\":2}", "Weight: unknown field");
    spec_bad("{\"provision\":true}", "provision: must be an object");
    spec_bad("{\"provision\":{\"size\":1}}", "provision.size: unknown field");
    spec_bad("{\"provision\":{\"params\":[1]}}", "provision.params: must be an object");
    spec_bad("{\"provision\":{\"template\":\"a b\"}}", "provision.template:");
    spec_bad("{\"provision\":{\"template\":\"t2\"},\"template\":\"t1\"}",
             "provision.template: differs");
}

static void spec_limits(void **state)
{
    /* Too many replicas, and just enough. */
    json_t *b = parse_json("{\"dsn\":\"sqlite:x.db\"}");
    json_t *reps = json_array();
    for (int i = 0; i < SHARD_MAX_REPLICAS; i++) {
        char d[32];
        snprintf(d, sizeof(d), "sqlite:r%d.db", i);
        json_array_append_new(reps, json_string(d));
    }
    json_object_set(b, "replicas", reps);
    shard_spec sp;
    char err[256] = "";
    assert_int_equal(shard_spec_from_json(b, &sp, err, sizeof(err)), 0);
    assert_int_equal(sp.nreplicas, SHARD_MAX_REPLICAS);
    shard_spec_clear(&sp);
    json_array_append_new(reps, json_string("sqlite:extra.db"));
    assert_int_equal(shard_spec_from_json(b, &sp, err, sizeof(err)), CITRUS_ETOOMANY);
    assert_int_equal(strncmp(err, "replicas:", 9), 0);
    json_decref(reps);
    json_object_del(b, "replicas");

    /* Too many tags, and just enough. */
    json_t *tags = json_object();
    for (int i = 0; i < SHARD_MAX_TAGS; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        json_object_set_new(tags, k, json_string("v"));
    }
    json_object_set(b, "tags", tags);
    assert_int_equal(shard_spec_from_json(b, &sp, err, sizeof(err)), 0);
    assert_int_equal(sp.ntags, SHARD_MAX_TAGS);
    shard_spec_clear(&sp);
    json_object_set_new(tags, "one-more", json_string("v"));
    assert_int_equal(shard_spec_from_json(b, &sp, err, sizeof(err)), CITRUS_ETOOMANY);
    assert_int_equal(strncmp(err, "tags:", 5), 0);
    json_object_clear(tags);

    /* Key and value lengths (counted in characters). */
    char key[SHARD_TAG_KEY_MAX + 2], val[2 * SHARD_TAG_VALUE_MAX + 3];
    memset(key, 'k', SHARD_TAG_KEY_MAX);
    key[SHARD_TAG_KEY_MAX] = '\0';
    for (int i = 0; i < SHARD_TAG_VALUE_MAX; i++)
        memcpy(val + 2 * i, "\xc3\xa9", 2);
    val[2 * SHARD_TAG_VALUE_MAX] = '\0';
    json_object_set_new(tags, key, json_string(val));
    assert_int_equal(shard_spec_from_json(b, &sp, err, sizeof(err)), 0);
    shard_spec_clear(&sp);
    strcat(val, "x");
    json_object_set_new(tags, key, json_string(val));
    assert_int_equal(shard_spec_from_json(b, &sp, err, sizeof(err)), CITRUS_EINVAL);
    assert_int_equal(strncmp(err, "tags.kkk", 8), 0);
    json_object_clear(tags);
    strcat(key, "k");
    json_object_set_new(tags, key, json_string("v"));
    assert_int_equal(shard_spec_from_json(b, &sp, err, sizeof(err)), CITRUS_EINVAL);
    assert_int_equal(strncmp(err, "tags: keys", 10), 0);
    json_decref(tags);

    /* Zone: 64 characters, not 65. */
    json_object_del(b, "tags");
    char zone[SHARD_ZONE_MAX + 2];
    memset(zone, 'z', SHARD_ZONE_MAX);
    zone[SHARD_ZONE_MAX] = '\0';
    json_object_set_new(b, "zone", json_string(zone));
    assert_int_equal(shard_spec_from_json(b, &sp, err, sizeof(err)), 0);
    shard_spec_clear(&sp);
    strcat(zone, "z");
    json_object_set_new(b, "zone", json_string(zone));
    assert_int_equal(shard_spec_from_json(b, &sp, err, sizeof(err)), CITRUS_EINVAL);
    assert_int_equal(strncmp(err, "zone:", 5), 0);

    /* Weight 100 is the top. */
    json_object_del(b, "zone");
    json_object_set_new(b, "weight", json_integer(100));
    assert_int_equal(shard_spec_from_json(b, &sp, err, sizeof(err)), 0);
    assert_true(sp.weight == 100.0);
    shard_spec_clear(&sp);
    json_decref(b);
}

/* ---- PATCH bodies ---------------------------------------------------- */

static void patch_good(void **state)
{
    json_t *b = parse_json("{\"weight\":4,\"zone\":null,\"tags\":{\"x\":\"y\"}}");
    shard_patch p;
    char err[256] = "";
    if (shard_patch_from_json(b, &p, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_true(p.has_weight && p.has_zone && p.has_tags);
    assert_true(p.weight == 4.0);
    assert_null(p.zone);
    assert_int_equal(p.ntags, 1);

    shard s;
    sample(&s);
    int64_t epoch = s.epoch;
    assert_int_equal(shard_patch_apply(&s, &p, 5000), 0);
    assert_true(s.weight == 4.0);
    assert_null(s.zone);
    assert_int_equal(s.ntags, 1); /* replaced, not merged */
    assert_string_equal(s.tags[0].key, "x");
    assert_string_equal(s.tags[0].value, "y");
    assert_int_equal(s.epoch, epoch + 1);
    assert_int_equal(s.updated_ms, 5000);
    shard_patch_clear(&p);
    json_decref(b);

    b = parse_json("{\"tags\":{}}");
    assert_int_equal(shard_patch_from_json(b, &p, err, sizeof(err)), 0);
    assert_false(p.has_weight || p.has_zone);
    assert_int_equal(shard_patch_apply(&s, &p, 6000), 0);
    assert_int_equal(s.ntags, 0);
    assert_true(s.weight == 4.0); /* untouched */
    shard_patch_clear(&p);
    json_decref(b);

    b = parse_json("{\"zone\":\"z9\"}");
    assert_int_equal(shard_patch_from_json(b, &p, err, sizeof(err)), 0);
    assert_int_equal(shard_patch_apply(&s, &p, 7000), 0);
    assert_string_equal(s.zone, "z9");
    shard_patch_clear(&p);
    json_decref(b);
    shard_clear(&s);
}

static void patch_bad(const char *body, const char *want)
{
    json_t *b = parse_json(body);
    shard_patch p;
    char err[256] = "";
    if (shard_patch_from_json(b, &p, err, sizeof(err)) == 0)
        fail_msg("accepted %s", body);
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("%s: message '%s' does not start with '%s'", body, err, want);
    assert_null(p.zone);
    assert_null(p.tags);
    json_decref(b);
}

static void patch_errors(void **state)
{
    patch_bad("{}", "body: give at least one");
    patch_bad("[]", "body: must be a JSON object");
    patch_bad("{\"dsn\":\"sqlite:x.db\"}", "dsn: unknown field or not changeable");
    patch_bad("{\"weight\":2,\"id\":\"s2\"}", "id: unknown field");
    patch_bad("{\"state\":\"active\"}", "state: unknown field");
    patch_bad("{\"weight\":0}", "weight:");
    patch_bad("{\"weight\":null}", "weight:");
    patch_bad("{\"weight\":\"3\"}", "weight:");
    patch_bad("{\"zone\":3}", "zone:");
    patch_bad("{\"zone\":\"z\",\"tags\":[]}", "tags:");
    patch_bad("{\"tags\":null}", "tags:");
    patch_bad("{\"tags\":{\"a\":false}}", "tags.a:");
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
        cmocka_unit_test(spec_register),
        cmocka_unit_test(spec_minimal),
        cmocka_unit_test(spec_provision),
        cmocka_unit_test(spec_errors),
        cmocka_unit_test(spec_limits),
        cmocka_unit_test(patch_good),
        cmocka_unit_test(patch_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
