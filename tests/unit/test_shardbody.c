/* Unit tests for api/shardbody.c: the checks on POST /v1/shards and PATCH
 * bodies (every bad input must give an error that names the field), and
 * applying a patch to a record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/shardbody.h"
#include "citrus/errors.h"

static json_t *parse_json(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
    if (!j)
        fail_msg("bad test JSON %s: %s", text, e.text);
    return j;
}

/* A record with a zone, two tags and weight 2.5, at epoch 0. */
static void sample(shard *s)
{
    shard_init(s);
    strcpy(s->id, "orders-eu-1");
    s->zone = strdup("eu-west-1a");
    s->weight = 2.5;
    s->ntags = 2;
    s->tags = calloc(2, sizeof(shard_tag));
    s->tags[0].key = strdup("tier");
    s->tags[0].value = strdup("gold");
    s->tags[1].key = strdup("owner");
    s->tags[1].value = strdup("ops");
}

/* ---- POST bodies ----------------------------------------------------- */

static void spec_register(void **state)
{
    json_t *b = parse_json(
        "{\"id\":\"s-1\",\"dsn\":\"postgres://h/db\",\"replicas\":[\"postgres://r1/db\","
        "\"host=r2 dbname=db\"],\"zone\":\"z1\",\"weight\":3,\"tags\":{\"a\":\"1\",\"b\":\"\"},"
        "\"template\":\"orders\"}");
    shard_spec sp;
    errdetail e;
    if (shardbody_spec(b, &sp, &e) != 0)
        fail_msg("%s", e.message);
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
    shardbody_spec_clear(&sp);
    json_decref(b);
}

static void spec_minimal(void **state)
{
    json_t *b = parse_json("{\"dsn\":\"sqlite:x.db\",\"id\":null,\"zone\":null}");
    shard_spec sp;
    errdetail e;
    assert_int_equal(shardbody_spec(b, &sp, &e), 0);
    assert_string_equal(sp.id, "");
    assert_null(sp.zone);
    assert_true(sp.weight == 1.0);
    assert_int_equal(sp.nreplicas, 0);
    assert_int_equal(sp.ntags, 0);
    assert_null(sp.template_name);
    shardbody_spec_clear(&sp);
    json_decref(b);
}

static void spec_provision(void **state)
{
    json_t *b = parse_json("{\"provision\":{\"template\":\"orders\",\"params\":{\"size\":\"s\"}},"
                           "\"weight\":0.5}");
    shard_spec sp;
    errdetail e;
    if (shardbody_spec(b, &sp, &e) != 0)
        fail_msg("%s", e.message);
    json_decref(b); /* params are owned by the spec */
    assert_true(sp.provision);
    assert_null(sp.dsn);
    assert_string_equal(sp.template_name, "orders");
    assert_string_equal(json_string_value(json_object_get(sp.params, "size")), "s");
    assert_true(sp.weight == 0.5);
    shardbody_spec_clear(&sp);

    b = parse_json("{\"provision\":{},\"template\":\"t1\"}");
    assert_int_equal(shardbody_spec(b, &sp, &e), 0);
    assert_true(sp.provision);
    assert_string_equal(sp.template_name, "t1");
    shardbody_spec_clear(&sp);
    json_decref(b);

    b = parse_json("{\"provision\":{\"template\":\"t1\"},\"template\":\"t1\"}");
    assert_int_equal(shardbody_spec(b, &sp, &e), 0);
    shardbody_spec_clear(&sp);
    json_decref(b);
}

/* body must be refused with an error starting with want (the field). */
static void spec_bad(const char *body, const char *want)
{
    json_t *b = parse_json(body);
    shard_spec sp;
    errdetail e;
    int rc = shardbody_spec(b, &sp, &e);
    if (rc == 0)
        fail_msg("accepted %s", body);
    assert_true(rc == CITRUS_EINVAL || rc == CITRUS_EBADJSON || rc == CITRUS_ETOOMANY);
    if (strncmp(e.message, want, strlen(want)) != 0)
        fail_msg("%s: message '%s' does not start with '%s'", body, e.message, want);
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
    errdetail e;
    assert_int_equal(shardbody_spec(b, &sp, &e), 0);
    assert_int_equal(sp.nreplicas, SHARD_MAX_REPLICAS);
    shardbody_spec_clear(&sp);
    json_array_append_new(reps, json_string("sqlite:extra.db"));
    assert_int_equal(shardbody_spec(b, &sp, &e), CITRUS_ETOOMANY);
    assert_int_equal(strncmp(e.message, "replicas:", 9), 0);
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
    assert_int_equal(shardbody_spec(b, &sp, &e), 0);
    assert_int_equal(sp.ntags, SHARD_MAX_TAGS);
    shardbody_spec_clear(&sp);
    json_object_set_new(tags, "one-more", json_string("v"));
    assert_int_equal(shardbody_spec(b, &sp, &e), CITRUS_ETOOMANY);
    assert_int_equal(strncmp(e.message, "tags:", 5), 0);
    json_object_clear(tags);

    /* Key and value lengths (counted in characters). */
    char key[SHARDBODY_TAG_KEY_MAX + 2], val[2 * SHARDBODY_TAG_VALUE_MAX + 3];
    memset(key, 'k', SHARDBODY_TAG_KEY_MAX);
    key[SHARDBODY_TAG_KEY_MAX] = '\0';
    for (int i = 0; i < SHARDBODY_TAG_VALUE_MAX; i++)
        memcpy(val + 2 * i, "\xc3\xa9", 2);
    val[2 * SHARDBODY_TAG_VALUE_MAX] = '\0';
    json_object_set_new(tags, key, json_string(val));
    assert_int_equal(shardbody_spec(b, &sp, &e), 0);
    shardbody_spec_clear(&sp);
    strcat(val, "x");
    json_object_set_new(tags, key, json_string(val));
    assert_int_equal(shardbody_spec(b, &sp, &e), CITRUS_EINVAL);
    assert_int_equal(strncmp(e.message, "tags.kkk", 8), 0);
    json_object_clear(tags);
    strcat(key, "k");
    json_object_set_new(tags, key, json_string("v"));
    assert_int_equal(shardbody_spec(b, &sp, &e), CITRUS_EINVAL);
    assert_int_equal(strncmp(e.message, "tags: keys", 10), 0);
    json_decref(tags);

    /* Zone: 64 characters, not 65. */
    json_object_del(b, "tags");
    char zone[SHARDBODY_ZONE_MAX + 2];
    memset(zone, 'z', SHARDBODY_ZONE_MAX);
    zone[SHARDBODY_ZONE_MAX] = '\0';
    json_object_set_new(b, "zone", json_string(zone));
    assert_int_equal(shardbody_spec(b, &sp, &e), 0);
    shardbody_spec_clear(&sp);
    strcat(zone, "z");
    json_object_set_new(b, "zone", json_string(zone));
    assert_int_equal(shardbody_spec(b, &sp, &e), CITRUS_EINVAL);
    assert_int_equal(strncmp(e.message, "zone:", 5), 0);

    /* Weight 100 is the top. */
    json_object_del(b, "zone");
    json_object_set_new(b, "weight", json_integer(100));
    assert_int_equal(shardbody_spec(b, &sp, &e), 0);
    assert_true(sp.weight == 100.0);
    shardbody_spec_clear(&sp);
    json_decref(b);
}

/* ---- PATCH bodies ---------------------------------------------------- */

static void patch_good(void **state)
{
    json_t *b = parse_json("{\"weight\":4,\"zone\":null,\"tags\":{\"x\":\"y\"}}");
    shard_patch p;
    errdetail e;
    if (shardbody_patch(b, &p, &e) != 0)
        fail_msg("%s", e.message);
    assert_true(p.has_weight && p.has_zone && p.has_tags);
    assert_true(p.weight == 4.0);
    assert_null(p.zone);
    assert_int_equal(p.ntags, 1);

    shard s;
    sample(&s);
    int64_t epoch = s.epoch;
    assert_int_equal(shardbody_patch_apply(&s, &p, 5000), 0);
    assert_true(s.weight == 4.0);
    assert_null(s.zone);
    assert_int_equal(s.ntags, 1); /* replaced, not merged */
    assert_string_equal(s.tags[0].key, "x");
    assert_string_equal(s.tags[0].value, "y");
    assert_int_equal(s.epoch, epoch + 1);
    assert_int_equal(s.updated_ms, 5000);
    shardbody_patch_clear(&p);
    json_decref(b);

    b = parse_json("{\"tags\":{}}");
    assert_int_equal(shardbody_patch(b, &p, &e), 0);
    assert_false(p.has_weight || p.has_zone);
    assert_int_equal(shardbody_patch_apply(&s, &p, 6000), 0);
    assert_int_equal(s.ntags, 0);
    assert_true(s.weight == 4.0); /* untouched */
    shardbody_patch_clear(&p);
    json_decref(b);

    b = parse_json("{\"zone\":\"z9\"}");
    assert_int_equal(shardbody_patch(b, &p, &e), 0);
    assert_int_equal(shardbody_patch_apply(&s, &p, 7000), 0);
    assert_string_equal(s.zone, "z9");
    shardbody_patch_clear(&p);
    json_decref(b);
    shard_clear(&s);
}

static void patch_bad(const char *body, const char *want)
{
    json_t *b = parse_json(body);
    shard_patch p;
    errdetail e;
    if (shardbody_patch(b, &p, &e) == 0)
        fail_msg("accepted %s", body);
    if (strncmp(e.message, want, strlen(want)) != 0)
        fail_msg("%s: message '%s' does not start with '%s'", body, e.message, want);
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
        cmocka_unit_test(spec_register),  cmocka_unit_test(spec_minimal),
        cmocka_unit_test(spec_provision), cmocka_unit_test(spec_errors),
        cmocka_unit_test(spec_limits),    cmocka_unit_test(patch_good),
        cmocka_unit_test(patch_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
