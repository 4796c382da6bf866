/* tests/unit/test_keyring.c — API keys (auth/keyring.h) on an embedded
 * catalog store: made, checked, expired, revoked; what the catalog keeps
 * (a hash, never the secret); bootstrap exactly once; another node's copy
 * following through the watch; last use written at most once per flush
 * interval. Time is a test clock; the loader thread is off
 * (keyring_run_once), except where the watch is the point. */
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "support_sqlite.h"

#include "auth/keyring.h"
#include "citrus/errors.h"
#include "sys/clock.h"

#define T0 1000000

typedef struct fixture {
    sqlite_dir d;
    sysclock *clk;
    keyring *k;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    sqlite_dir_open(&f->d, "keyring", 0);
    f->clk = clock_test_new(T0, 1700000000000LL);
    keyring_options o = {.st = f->d.st, .clock = f->clk, .flush_ms = 60000, .no_thread = true};
    errdetail e;
    assert_int_equal(keyring_start(&o, &f->k, &e), 0);
    assert_true(keyring_loaded(f->k));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    keyring_stop(f->k);
    sqlite_dir_close(&f->d);
    clock_test_free(f->clk);
    free(f);
    return 0;
}

static json_t *parse(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    return j;
}

/* Makes a key from a JSON spec; returns its token in tok. */
static void make(fixture *f, const char *spec_json, char tok[APIKEY_TOKEN_LEN + 1], char id[17])
{
    apikey_spec spec;
    errdetail e;
    json_t *body = parse(spec_json);
    assert_int_equal(apikey_spec_parse(body, clock_wall_ms(f->clk), &spec, &e), 0);
    json_decref(body);
    json_t *view = NULL;
    int64_t rev = 0;
    assert_int_equal(keyring_create(f->k, &spec, false, tok, &view, &rev, &e), 0);
    assert_true(rev > 0);
    assert_null(json_object_get(view, "hash"));
    if (id)
        snprintf(id, 17, "%s", json_string_value(json_object_get(view, "id")));
    json_decref(view);
    apikey_spec_clear(&spec);
}

static void made_and_checked(void **state)
{
    fixture *f = *state;
    char tok[APIKEY_TOKEN_LEN + 1], id[17];
    make(f,
         "{\"name\":\"ci\",\"roles\":[\"tenant\",\"reader\"],\"tenants\":[\"acme:*\"],"
         "\"grants\":[{\"prefix\":\"app/\",\"access\":\"readwrite\"}]}",
         tok, id);
    assert_int_equal(strlen(tok), APIKEY_TOKEN_LEN);
    assert_memory_equal(tok, "ck_", 3);
    assert_true(apikey_shaped(tok, strlen(tok)));
    principal p;
    errdetail e;
    assert_int_equal(keyring_verify(f->k, tok, strlen(tok), &p, &e), 0);
    char want[64];
    snprintf(want, sizeof(want), "key:%s/ci", id);
    assert_string_equal(p.name, want);
    assert_string_equal(p.method, "api_key");
    assert_int_equal(p.roles, AUTH_TENANT | AUTH_READER);
    assert_int_equal(p.nscopes, 1);
    assert_string_equal(p.scopes[0], "acme:*");
    assert_int_equal(p.ngrants, 1);
    assert_string_equal(p.grants[0].prefix, "app/");
    assert_true(p.grants[0].write);
    principal_clear(&p);

    /* the catalog keeps the hash of the secret, never the secret */
    char key[64];
    snprintf(key, sizeof(key), "citrus/auth/keys/%s", id);
    kv_range_req req = {.key = key};
    kv_range_res res;
    assert_int_equal(store_range(f->d.st, &req, &res), 0);
    assert_int_equal(res.count, 1);
    char *stored = strndup((const char *)res.items[0].value, res.items[0].value_len);
    assert_null(strstr(stored, tok + 4 + APIKEY_ID_LEN));
    assert_non_null(strstr(stored, "\"hash\""));
    free(stored);
    kv_range_res_free(&res);

    /* one changed secret digit, a malformed key, another id: all refused */
    char bad[APIKEY_TOKEN_LEN + 1];
    memcpy(bad, tok, sizeof(bad));
    bad[APIKEY_TOKEN_LEN - 1] = bad[APIKEY_TOKEN_LEN - 1] == '0' ? '1' : '0';
    assert_int_equal(keyring_verify(f->k, bad, strlen(bad), &p, &e), CITRUS_EUNAUTHENTICATED);
    assert_null(strstr(e.message, bad));
    assert_int_equal(keyring_verify(f->k, tok, strlen(tok) - 1, &p, &e), CITRUS_EUNAUTHENTICATED);
    memcpy(bad, tok, sizeof(bad));
    bad[3] = bad[3] == 'a' ? 'b' : 'a';
    assert_int_equal(keyring_verify(f->k, bad, strlen(bad), &p, &e), CITRUS_EUNAUTHENTICATED);
    assert_int_equal(keyring_verify(f->k, "ck_x", 4, &p, &e), CITRUS_EUNAUTHENTICATED);
}

static void expiry(void **state)
{
    fixture *f = *state;
    char tok[APIKEY_TOKEN_LEN + 1];
    make(f, "{\"name\":\"short\",\"roles\":[\"reader\"],\"expires_in_s\":60}", tok, NULL);
    principal p;
    errdetail e;
    assert_int_equal(keyring_verify(f->k, tok, strlen(tok), &p, &e), 0);
    principal_clear(&p);
    clock_test_advance(f->clk, 59999);
    assert_int_equal(keyring_verify(f->k, tok, strlen(tok), &p, &e), 0);
    principal_clear(&p);
    clock_test_advance(f->clk, 1);
    assert_int_equal(keyring_verify(f->k, tok, strlen(tok), &p, &e), CITRUS_EUNAUTHENTICATED);
    assert_non_null(strstr(e.message, "expired"));
}

static void revoked(void **state)
{
    fixture *f = *state;
    char tok[APIKEY_TOKEN_LEN + 1], id[17];
    make(f, "{\"name\":\"gone\",\"roles\":[\"sm-operator\"]}", tok, id);
    assert_int_equal(keyring_count(f->k), 1);
    int64_t rev;
    errdetail e;
    assert_int_equal(keyring_delete(f->k, id, &rev, &e), 0);
    principal p;
    /* refused at once on this node, before the watch brings the delete */
    assert_int_equal(keyring_verify(f->k, tok, strlen(tok), &p, &e), CITRUS_EUNAUTHENTICATED);
    assert_int_equal(keyring_count(f->k), 0);
    assert_int_equal(keyring_delete(f->k, id, &rev, &e), CITRUS_ENOTFOUND);
    assert_int_equal(keyring_delete(f->k, "not-an-id", &rev, &e), CITRUS_ENOTFOUND);
    json_t *items;
    assert_int_equal(keyring_list(f->k, &items, &rev, &e), 0);
    assert_int_equal(json_array_size(items), 0);
    json_decref(items);
}

static void bootstrap_once(void **state)
{
    fixture *f = *state;
    apikey_spec spec = {.roles = AUTH_ADMIN};
    snprintf(spec.name, sizeof(spec.name), "bootstrap");
    char tok[APIKEY_TOKEN_LEN + 1];
    json_t *view;
    int64_t rev;
    errdetail e;
    assert_int_equal(keyring_create(f->k, &spec, true, tok, &view, &rev, &e), 0);
    json_decref(view);
    principal p;
    assert_int_equal(keyring_verify(f->k, tok, strlen(tok), &p, &e), 0);
    assert_true(p.roles & AUTH_ADMIN);
    principal_clear(&p);
    char tok2[APIKEY_TOKEN_LEN + 1];
    assert_int_equal(keyring_create(f->k, &spec, true, tok2, &view, &rev, &e), CITRUS_EFORBIDDEN);
    assert_null(view);
    /* even with every key revoked: once is once */
    json_t *items;
    assert_int_equal(keyring_list(f->k, &items, &rev, &e), 0);
    const char *id = json_string_value(json_object_get(json_array_get(items, 0), "id"));
    assert_int_equal(keyring_delete(f->k, id, &rev, &e), 0);
    json_decref(items);
    assert_int_equal(keyring_create(f->k, &spec, true, tok2, &view, &rev, &e), CITRUS_EFORBIDDEN);
}

static void bad_specs(void **state)
{
    fixture *f = *state;
    const char *bad[] = {
        "[]",
        "{\"roles\":[\"reader\"]}",
        "{\"name\":\"\",\"roles\":[\"reader\"]}",
        "{\"name\":\"x\"}",
        "{\"name\":\"x\",\"roles\":[]}",
        "{\"name\":\"x\",\"roles\":[\"root\"]}",
        "{\"name\":\"x\",\"roles\":[\"tenant\"]}",
        "{\"name\":\"x\",\"roles\":[\"tenant\"],\"tenants\":[\"acme\"]}",
        "{\"name\":\"x\",\"roles\":[\"reader\"],\"grants\":[{\"prefix\":\"a/\"}]}",
        "{\"name\":\"x\",\"roles\":[\"reader\"],\"grants\":[{\"prefix\":\"a/"
        "\",\"access\":\"all\"}]}",
        "{\"name\":\"x\",\"roles\":[\"reader\"],\"expires_in_s\":0}",
        "{\"name\":\"x\",\"roles\":[\"reader\"],\"expires_in_s\":\"1\"}",
        "{\"name\":\"x\",\"roles\":[\"reader\"],\"admin\":true}",
        "{\"name\":\"a\\nb\",\"roles\":[\"reader\"]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        apikey_spec spec;
        errdetail e;
        json_t *j = parse(bad[i]);
        int rc = apikey_spec_parse(j, clock_wall_ms(f->clk), &spec, &e);
        json_decref(j);
        if (rc != CITRUS_EINVAL)
            fail_msg("accepted: %s", bad[i]);
        assert_true(e.message[0] != '\0');
    }
}

/* Another node (a second keyring on the same store, with its loader
 * thread) sees a key made here and its revocation through the watch. */
static void other_node_follows(void **state)
{
    fixture *f = *state;
    keyring *other;
    keyring_options o = {.st = f->d.st, .clock = f->clk, .check_ms = 50};
    errdetail e;
    assert_int_equal(keyring_start(&o, &other, &e), 0);
    char tok[APIKEY_TOKEN_LEN + 1], id[17];
    make(f, "{\"name\":\"shared\",\"roles\":[\"reader\"]}", tok, id);
    principal p;
    int rc = CITRUS_EUNAUTHENTICATED;
    for (int i = 0; i < 2000 && rc != 0; i++) { /* the watch thread: up to 2 s */
        rc = keyring_verify(other, tok, strlen(tok), &p, &e);
        if (rc)
            nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    assert_int_equal(rc, 0);
    principal_clear(&p);
    int64_t rev;
    assert_int_equal(keyring_delete(f->k, id, &rev, &e), 0);
    for (int i = 0; i < 2000 && rc == 0; i++) {
        rc = keyring_verify(other, tok, strlen(tok), &p, &e);
        if (rc == 0) {
            principal_clear(&p);
            nanosleep(&(struct timespec){0, 1000000}, NULL);
        }
    }
    assert_int_equal(rc, CITRUS_EUNAUTHENTICATED);
    keyring_stop(other);
}

/* Last use: noted in memory, written at most once per flush interval. */
static void last_used(void **state)
{
    fixture *f = *state;
    char tok[APIKEY_TOKEN_LEN + 1], id[17];
    make(f, "{\"name\":\"busy\",\"roles\":[\"reader\"]}", tok, id);
    char key[64];
    snprintf(key, sizeof(key), "citrus/auth/keys/%s", id);
    kv_range_req req = {.key = key};
    kv_range_res res;
    assert_int_equal(store_range(f->d.st, &req, &res), 0);
    int64_t v0 = res.items[0].version;
    kv_range_res_free(&res);

    principal p;
    errdetail e;
    assert_int_equal(keyring_verify(f->k, tok, strlen(tok), &p, &e), 0);
    principal_clear(&p);
    keyring_run_once(f->k); /* first use: written */
    assert_int_equal(store_range(f->d.st, &req, &res), 0);
    int64_t v1 = res.items[0].version;
    assert_int_equal(v1, v0 + 1);
    assert_non_null(memmem(res.items[0].value, res.items[0].value_len, "\"last_used_ms\":17",
                           strlen("\"last_used_ms\":17")));
    kv_range_res_free(&res);

    clock_test_advance(f->clk, 1000);
    assert_int_equal(keyring_verify(f->k, tok, strlen(tok), &p, &e), 0);
    principal_clear(&p);
    keyring_run_once(f->k); /* used again within the interval: not written */
    assert_int_equal(store_range(f->d.st, &req, &res), 0);
    assert_int_equal(res.items[0].version, v1);
    kv_range_res_free(&res);

    clock_test_advance(f->clk, 60000);
    keyring_run_once(f->k); /* the interval passed: written */
    assert_int_equal(store_range(f->d.st, &req, &res), 0);
    assert_int_equal(res.items[0].version, v1 + 1);
    kv_range_res_free(&res);
    /* the list shows it */
    json_t *items;
    int64_t rev;
    assert_int_equal(keyring_list(f->k, &items, &rev, &e), 0);
    assert_true(json_is_string(json_object_get(json_array_get(items, 0), "last_used_at")));
    json_decref(items);
    /* and the key still works after its record changed */
    assert_int_equal(keyring_verify(f->k, tok, strlen(tok), &p, &e), 0);
    principal_clear(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(made_and_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(revoked, setup, teardown),
        cmocka_unit_test_setup_teardown(bootstrap_once, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_specs, setup, teardown),
        cmocka_unit_test_setup_teardown(other_node_follows, setup, teardown),
        cmocka_unit_test_setup_teardown(last_used, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
