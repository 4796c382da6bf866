/* Unit tests for wire/envelope.c: a valid event parses with every member
 * in place; each required member missing, each member of the wrong type
 * and each value out of its rules is refused naming the member; unknown
 * members go back out as they came; traceparent's forms; the size limit;
 * UTF-8; building with a given id and clock, or a UUIDv4. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "citrus/errors.h"
#include "wire/envelope.h"

#define TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static const char full[] =
    "{\"specversion\":\"1.0\",\"id\":\"e-1\",\"source\":\"/citrus/api\","
    "\"type\":\"citrus.shard.state_changed\",\"subject\":\"shard-7\","
    "\"time\":\"2026-12-07T01:02:03.456Z\",\"datacontenttype\":\"application/json\","
    "\"schemaversion\":1,\"correlationid\":\"req-42\",\"traceparent\":\"" TP "\","
    "\"data\":{\"from\":\"active\",\"to\":\"draining\"}}";

static int parse(const char *text, envelope *ev, errdetail *e)
{
    return envelope_parse(text, strlen(text), 0, ev, e);
}

/* Parses text, which must fail with code and a message holding what. */
static void refused(const char *text, int code, const char *what)
{
    envelope ev;
    errdetail e = {0};
    int rc = parse(text, &ev, &e);
    if (rc != code || !strstr(e.message, what))
        fail_msg("%s: got %d '%s', want %d with '%s'", text, rc, e.message, code, what);
    assert_null(ev.doc);
}

static void valid_event(void **state)
{
    (void)state;
    envelope ev;
    errdetail e;
    assert_int_equal(parse(full, &ev, &e), 0);
    assert_string_equal(ev.id, "e-1");
    assert_string_equal(ev.source, "/citrus/api");
    assert_string_equal(ev.type, "citrus.shard.state_changed");
    assert_string_equal(ev.subject, "shard-7");
    assert_string_equal(ev.time, "2026-12-07T01:02:03.456Z");
    assert_int_equal(ev.time_ms, 1796605323456LL);
    assert_string_equal(ev.datacontenttype, "application/json");
    assert_int_equal(ev.schemaversion, 1);
    assert_string_equal(ev.correlationid, "req-42");
    assert_string_equal(ev.traceparent, TP);
    assert_string_equal(json_string_value(json_object_get(ev.data, "to")), "draining");
    size_t len;
    char *text = envelope_encode(&ev, &len);
    assert_string_equal(text, full); /* compact input comes back byte for byte */
    assert_int_equal(len, strlen(full));
    free(text);
    envelope_clear(&ev);
    envelope_clear(&ev); /* a cleared envelope clears again */

    /* The least a CloudEvent needs; the defaults of what is absent. */
    assert_int_equal(
        parse("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\"}", &ev, &e),
        0);
    assert_null(ev.subject);
    assert_null(ev.time);
    assert_null(ev.data);
    assert_null(ev.correlationid);
    assert_null(ev.traceparent);
    assert_string_equal(ev.datacontenttype, "application/json");
    assert_int_equal(ev.schemaversion, 1);
    envelope_clear(&ev);
}

static void missing_members(void **state)
{
    (void)state;
    refused("{\"id\":\"1\",\"source\":\"s\",\"type\":\"t\"}", CITRUS_EBADJSON,
            "specversion: required");
    refused("{\"specversion\":\"1.0\",\"source\":\"s\",\"type\":\"t\"}", CITRUS_EBADJSON,
            "id: required");
    refused("{\"specversion\":\"1.0\",\"id\":\"1\",\"type\":\"t\"}", CITRUS_EBADJSON,
            "source: required");
    refused("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\"}", CITRUS_EBADJSON,
            "type: required");
    refused("[]", CITRUS_EBADJSON, "event: must be a JSON object");
    refused("\"x\"", CITRUS_EBADJSON, "event: must be a JSON object");
    refused("{\"specversion\":\"1.0\",", CITRUS_EBADJSON, "event: not JSON");
    refused("", CITRUS_EBADJSON, "event: not JSON");
    refused("{\"specversion\":\"1.0\",\"id\":\"1\",\"id\":\"2\",\"source\":\"s\",\"type\":\"t\"}",
            CITRUS_EBADJSON, "not JSON");
}

/* Each member with a value of the wrong JSON type. */
static void wrong_types(void **state)
{
    (void)state;
    static const char *const members[] = {
        "specversion", "id",          "source",        "type",          "subject",
        "time",        "traceparent", "correlationid", "schemaversion", "datacontenttype",
        "dataschema",  "data_base64"};
    static const char *const values[] = {"1", "true", "null", "[\"x\"]", "{}", "1.5"};
    for (size_t m = 0; m < sizeof(members) / sizeof(members[0]); m++)
        for (size_t v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
            char doc[512], want[64];
            json_t *j = json_pack("{s:s,s:s,s:s,s:s}", "specversion", "1.0", "id", "1", "source",
                                  "s", "type", "t");
            json_object_set_new(j, members[m], json_loads(values[v], JSON_DECODE_ANY, NULL));
            char *t = json_dumps(j, JSON_COMPACT);
            snprintf(doc, sizeof(doc), "%s", t);
            free(t);
            json_decref(j);
            if (strcmp(members[m], "schemaversion") == 0 && strcmp(values[v], "1") == 0)
                continue; /* the right type */
            snprintf(want, sizeof(want), "%s: must be", members[m]);
            refused(doc, CITRUS_EBADJSON, want);
        }
}

#define HEAD "{\"specversion\":\"1.0\",\"source\":\"s\",\"type\":\"t\","

static void bounds_and_rules(void **state)
{
    (void)state;
    char doc[4096], big[2048];
    /* id: 1..256 visible ASCII */
    memset(big, 'i', 256);
    big[256] = '\0';
    snprintf(doc, sizeof(doc), HEAD "\"id\":\"%s\"}", big);
    envelope ev;
    errdetail e;
    assert_int_equal(parse(doc, &ev, &e), 0);
    envelope_clear(&ev);
    big[256] = 'i';
    big[257] = '\0';
    snprintf(doc, sizeof(doc), HEAD "\"id\":\"%s\"}", big);
    refused(doc, CITRUS_EINVAL, "id: must be 1 to 256 bytes");
    refused(HEAD "\"id\":\"\"}", CITRUS_EINVAL, "id: must be 1 to 256 bytes");
    refused(HEAD "\"id\":\"a b\"}", CITRUS_EINVAL, "id: byte 1 is not allowed");
    refused(HEAD "\"id\":\"caf\xc3\xa9\"}", CITRUS_EINVAL, "id: byte 3 is not allowed");
    refused(HEAD "\"id\":\"a\\u0000b\"}", CITRUS_EBADJSON, "not JSON"); /* NUL refused */
#define ID "\"id\":\"1\","
    /* type, source, subject, datacontenttype, correlationid */
    refused("{\"specversion\":\"1.0\"," ID "\"source\":\"s\",\"type\":\"a\\tb\"}", CITRUS_EINVAL,
            "type: byte 1");
    refused("{\"specversion\":\"1.0\"," ID "\"source\":\"a b\",\"type\":\"t\"}", CITRUS_EINVAL,
            "source: byte 1");
    memset(big, 's', 1025);
    big[1025] = '\0';
    snprintf(doc, sizeof(doc), "{\"specversion\":\"1.0\"," ID "\"source\":\"%s\",\"type\":\"t\"}",
             big);
    refused(doc, CITRUS_EINVAL, "source: must be 1 to 1024 bytes");
    snprintf(doc, sizeof(doc), HEAD ID "\"subject\":\"%s\"}", big);
    refused(doc, CITRUS_EINVAL, "subject: must be 1 to 1024 bytes");
    refused(HEAD ID "\"subject\":\"a\\nb\"}", CITRUS_EINVAL, "subject: byte 1");
    refused(HEAD ID "\"datacontenttype\":\"json\"}", CITRUS_EINVAL,
            "datacontenttype: must be a "
            "media type");
    refused(HEAD ID "\"correlationid\":\"a/b\"}", CITRUS_EINVAL, "correlationid: byte 1");
    memset(big, 'c', 129);
    big[129] = '\0';
    snprintf(doc, sizeof(doc), HEAD ID "\"correlationid\":\"%s\"}", big);
    refused(doc, CITRUS_EINVAL, "correlationid: must be 1 to 128 bytes");
    /* specversion, schemaversion, time */
    refused("{\"specversion\":\"0.3\"," ID "\"source\":\"s\",\"type\":\"t\"}", CITRUS_EINVAL,
            "specversion: must be \"1.0\"");
    refused(HEAD ID "\"schemaversion\":0}", CITRUS_EINVAL, "schemaversion: must be from 1 to 1");
    refused(HEAD ID "\"schemaversion\":2}", CITRUS_EINVAL, "schemaversion: must be from 1 to 1");
    static const char *const bad_times[] = {"2026-12-07",
                                            "2026-12-07T01:02:03",
                                            "2026-13-07T01:02:03Z",
                                            "2026-02-30T01:02:03Z",
                                            "2026-12-07T24:00:00Z",
                                            "2026-12-07T01:02:03.Z",
                                            "2026-12-07T01:02:03+2",
                                            "2026-12-07T01:02:03+24:00",
                                            "2026-12-07 01:02:03Z",
                                            "2026-12-07T01:02:03ZZ"};
    for (size_t i = 0; i < sizeof(bad_times) / sizeof(bad_times[0]); i++) {
        snprintf(doc, sizeof(doc), HEAD ID "\"time\":\"%s\"}", bad_times[i]);
        refused(doc, CITRUS_EINVAL, "time: must be an RFC 3339 time");
    }
    /* data and data_base64: one or the other; base64 canonical */
    refused(HEAD ID "\"data\":1,\"data_base64\":\"AA==\"}", CITRUS_EINVAL,
            "data_base64: not "
            "allowed with data");
    refused(HEAD ID "\"data_base64\":\"A\"}", CITRUS_EINVAL, "data_base64: not canonical");
    /* extension names */
    refused(HEAD ID "\"Upper\":1}", CITRUS_EINVAL, "Upper: not an attribute name");
    refused(HEAD ID "\"with_underscore\":1}", CITRUS_EINVAL, "with_underscore: not an attribute");
    refused(HEAD ID "\"\":1}", CITRUS_EINVAL, ": not an attribute name");
    memset(big, 'x', 65);
    big[65] = '\0';
    snprintf(doc, sizeof(doc), HEAD ID "\"%s\":1}", big);
    refused(doc, CITRUS_EINVAL, "not an attribute name");
}

/* Offsets, lower-case letters, fractions and leap seconds all read to the
 * same instant; the text stays as it was sent. */
static void times(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        long long ms;
    } cases[] = {
        {"2026-12-07T01:02:03Z", 1796605323000LL},
        {"2026-12-07t01:02:03z", 1796605323000LL},
        {"2026-12-07T03:02:03.5+02:00", 1796605323500LL},
        {"2026-12-06T23:32:03.123456789-01:30", 1796605323123LL},
        {"1970-01-01T00:00:00Z", 0},
        {"2016-12-31T23:59:60Z", 1483228800000LL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char doc[256];
        snprintf(doc, sizeof(doc), HEAD ID "\"time\":\"%s\"}", cases[i].text);
        envelope ev;
        errdetail e;
        if (parse(doc, &ev, &e) != 0)
            fail_msg("%s: %s", cases[i].text, e.message);
        assert_int_equal(ev.time_ms, cases[i].ms);
        assert_string_equal(ev.time, cases[i].text);
        envelope_clear(&ev);
    }
}

/* Unknown members (extensions, dataschema, data_base64) keep their place
 * and value through parse -> encode -> parse. */
static void unknown_members_kept(void **state)
{
    (void)state;
    const char *in = "{\"zext\":{\"n\":[1,2.5,-0.0,true,null],\"s\":\"\\u00e9\\n\"},"
                     "\"specversion\":\"1.0\",\"id\":\"1\",\"partitionkey\":\"k7\","
                     "\"source\":\"urn:x\",\"type\":\"t\",\"dataschema\":\"https://x/s.json\","
                     "\"data_base64\":\"aGk=\",\"seq\":12345678901234,\"real\":0.1,"
                     "\"big\":1e300}";
    envelope ev, again;
    errdetail e;
    assert_int_equal(parse(in, &ev, &e), 0);
    assert_null(ev.data);
    char *out = envelope_encode(&ev, NULL);
    assert_non_null(out);
    /* order kept */
    assert_true(strncmp(out, "{\"zext\":{", 9) == 0);
    assert_true(strstr(out, "\"id\":\"1\",\"partitionkey\":\"k7\",\"source\"") != NULL);
    assert_true(strstr(out, "\"real\":0.10000000000000001") != NULL ||
                strstr(out, "\"real\":0.1") != NULL);
    assert_int_equal(parse(out, &again, &e), 0);
    assert_true(json_equal(ev.doc, again.doc));
    json_t *orig = json_loads(in, 0, NULL);
    assert_true(json_equal(orig, again.doc));
    json_decref(orig);
    char *out2 = envelope_encode(&again, NULL);
    assert_string_equal(out, out2); /* a fixed point */
    free(out);
    free(out2);
    envelope_clear(&ev);
    envelope_clear(&again);
}

static void traceparent_forms(void **state)
{
    (void)state;
    errdetail e;
    assert_int_equal(envelope_traceparent_check("tp", TP, &e), 0);
    assert_int_equal(envelope_traceparent_check("tp",
                                                "00-4bf92f3577b34da6a3ce929d0e0e4736-"
                                                "00f067aa0ba902b7-00",
                                                &e),
                     0);
    /* a later version may append fields */
    assert_int_equal(envelope_traceparent_check("tp",
                                                "01-4bf92f3577b34da6a3ce929d0e0e4736-"
                                                "00f067aa0ba902b7-01-extra",
                                                &e),
                     0);
    static const char *const bad[] = {
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (envelope_traceparent_check("tp", bad[i], &e) != CITRUS_EINVAL)
            fail_msg("'%s' accepted", bad[i]);
        assert_true(strncmp(e.message, "tp: ", 4) == 0);
    }
    refused(HEAD ID "\"traceparent\":\"00-abc\"}", CITRUS_EINVAL, "traceparent: must be W3C");
}

static void oversize(void **state)
{
    (void)state;
    envelope ev;
    errdetail e;
    size_t n = strlen(full);
    assert_int_equal(envelope_parse(full, n, n, &ev, &e), 0);
    envelope_clear(&ev);
    assert_int_equal(envelope_parse(full, n, n - 1, &ev, &e), CITRUS_ETOOBIG);
    assert_non_null(strstr(e.message, "more than the limit of"));
    assert_null(ev.doc);
    /* not NUL-terminated: only len bytes are read */
    char *copy = malloc(n + 5);
    memcpy(copy, full, n);
    memcpy(copy + n, "junk", 4);
    assert_int_equal(envelope_parse(copy, n, 0, &ev, &e), 0);
    envelope_clear(&ev);
    free(copy);
    /* envelope_from_json measures the compact encoding */
    json_t *j = json_loads(full, 0, NULL);
    assert_int_equal(envelope_from_json(j, n, &ev, &e), 0);
    envelope_clear(&ev);
    assert_int_equal(envelope_from_json(j, n - 1, &ev, &e), CITRUS_ETOOBIG);
    assert_int_equal(json_object_set_new(j, "id", json_integer(1)), 0);
    assert_int_equal(envelope_from_json(j, 0, &ev, &e), CITRUS_EBADJSON);
    assert_non_null(strstr(e.message, "id: must be a string"));
    assert_int_equal(envelope_from_json(json_object_get(j, "data"), 0, &ev, &e), CITRUS_EBADJSON);
    json_decref(j);
}

static void unicode(void **state)
{
    (void)state;
    envelope ev;
    errdetail e;
    /* subject and data are UTF-8 text; escapes and raw characters alike */
    const char *in = HEAD ID "\"subject\":\"caf\xc3\xa9 \\u2615 \xf0\x9f\x8d\x8b\","
                             "\"data\":{\"n\\u00e4me\":\"\\ud83c\\udf4b\"}}";
    assert_int_equal(parse(in, &ev, &e), 0);
    assert_string_equal(ev.subject, "caf\xc3\xa9 \xe2\x98\x95 \xf0\x9f\x8d\x8b");
    char *out = envelope_encode(&ev, NULL);
    assert_non_null(strstr(out, "\"n\xc3\xa4me\":\"\xf0\x9f\x8d\x8b\""));
    envelope clone;
    assert_int_equal(parse(out, &clone, &e), 0);
    assert_true(json_equal(ev.doc, clone.doc));
    envelope_clear(&clone);
    free(out);
    envelope_clear(&ev);
    /* not UTF-8; a lone surrogate */
    refused(HEAD ID "\"subject\":\"\xc3\x28\"}", CITRUS_EBADJSON, "not JSON");
    refused(HEAD ID "\"subject\":\"\\ud83c\"}", CITRUS_EBADJSON, "not JSON");
}

static void build(void **state)
{
    (void)state;
    envelope ev, back;
    errdetail e;
    json_t *data = json_pack("{s:s}", "shard", "s-1");
    envelope_spec s = {.id = "rev-42",
                       .type = "citrus.shard.state_changed",
                       .source = "/citrus/node1",
                       .subject = "s-1",
                       .time_ms = 1796605323456LL,
                       .correlationid = "req-1",
                       .traceparent = TP,
                       .data = data};
    assert_int_equal(envelope_build(&s, &ev, &e), 0);
    char *text = envelope_encode(&ev, NULL);
    assert_string_equal(text,
                        "{\"specversion\":\"1.0\",\"id\":\"rev-42\",\"source\":\"/citrus/node1\","
                        "\"type\":\"citrus.shard.state_changed\",\"subject\":\"s-1\","
                        "\"time\":\"2026-12-07T01:02:03.456Z\","
                        "\"datacontenttype\":\"application/json\",\"schemaversion\":1,"
                        "\"correlationid\":\"req-1\",\"traceparent\":\"" TP "\","
                        "\"data\":{\"shard\":\"s-1\"}}");
    assert_int_equal(parse(text, &back, &e), 0);
    assert_int_equal(back.time_ms, s.time_ms);
    free(text);
    envelope_clear(&back);
    envelope_clear(&ev);
    json_decref(data);

    /* a UUIDv4 from the given bytes: version and variant bits set */
    static const unsigned char rnd[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                          0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    envelope_spec u = {.random = rnd, .type = "t", .source = "s", .time_ms = 0};
    assert_int_equal(envelope_build(&u, &ev, &e), 0);
    assert_string_equal(ev.id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
    assert_string_equal(ev.time, "1970-01-01T00:00:00.000Z");
    assert_null(ev.data);
    envelope_clear(&ev);
    /* from getrandom: two differ */
    u.random = NULL;
    assert_int_equal(envelope_build(&u, &ev, &e), 0);
    assert_int_equal(envelope_build(&u, &back, &e), 0);
    assert_int_equal(strlen(ev.id), 36);
    assert_int_equal(ev.id[14], '4');
    assert_string_not_equal(ev.id, back.id);
    envelope_clear(&ev);
    envelope_clear(&back);

    /* every member checked as parsing checks it */
    envelope_spec bad = s;
    bad.data = NULL;
    bad.traceparent = "00-zz";
    assert_int_equal(envelope_build(&bad, &ev, &e), CITRUS_EINVAL);
    assert_non_null(strstr(e.message, "traceparent"));
    assert_null(ev.doc);
    bad = s;
    bad.data = NULL;
    bad.type = NULL;
    assert_int_equal(envelope_build(&bad, &ev, &e), CITRUS_EBADJSON);
    assert_non_null(strstr(e.message, "type: required"));
    bad.type = "t";
    bad.datacontenttype = "nonsense";
    assert_int_equal(envelope_build(&bad, &ev, &e), CITRUS_EINVAL);
    bad.datacontenttype = NULL;
    bad.subject = "\xc3\x28";
    assert_int_equal(envelope_build(&bad, &ev, &e), CITRUS_EINVAL);
    assert_non_null(strstr(e.message, "subject: not UTF-8"));
    bad.subject = NULL;
    bad.time_ms = -1;
    assert_int_equal(envelope_build(&bad, &ev, &e), CITRUS_EINVAL);
    assert_non_null(strstr(e.message, "time"));
}

static void topic_names(void **state)
{
    (void)state;
    errdetail e;
    assert_int_equal(envelope_topic_check("t", "citrus.sm-events_2", &e), 0);
    char long_ok[250];
    memset(long_ok, 'a', 249);
    long_ok[249] = '\0';
    assert_int_equal(envelope_topic_check("t", long_ok, &e), 0);
    static const char *const bad[] = {"", ".", "..", "a b", "a/b", "caf\xc3\xa9", "a:b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (envelope_topic_check("bus.topics.x", bad[i], &e) != CITRUS_EINVAL)
            fail_msg("'%s' accepted", bad[i]);
        assert_true(strncmp(e.message, "bus.topics.x: ", 14) == 0);
    }
    char too_long[251];
    memset(too_long, 'a', 250);
    too_long[250] = '\0';
    assert_int_equal(envelope_topic_check("t", too_long, &e), CITRUS_EINVAL);
}

/* envelope_new_id: a version 4 UUID, 36 characters, a new one each time. */
static void new_ids(void **state)
{
    (void)state;
    char a[37], b[37];
    errdetail e = {0};
    assert_int_equal(envelope_new_id(a, &e), 0);
    assert_int_equal(envelope_new_id(b, &e), 0);
    assert_int_equal(strlen(a), 36);
    assert_string_not_equal(a, b);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(a[i], '-');
        else
            assert_non_null(strchr("0123456789abcdef", a[i]));
    }
    assert_int_equal(a[14], '4');           /* the version */
    assert_non_null(strchr("89ab", a[19])); /* the variant */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_event),
        cmocka_unit_test(missing_members),
        cmocka_unit_test(wrong_types),
        cmocka_unit_test(bounds_and_rules),
        cmocka_unit_test(times),
        cmocka_unit_test(unknown_members_kept),
        cmocka_unit_test(traceparent_forms),
        cmocka_unit_test(oversize),
        cmocka_unit_test(unicode),
        cmocka_unit_test(build),
        cmocka_unit_test(topic_names),
        cmocka_unit_test(new_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
