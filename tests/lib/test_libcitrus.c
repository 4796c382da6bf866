/* test_libcitrus.c — libcitrus against a live `citrus dev` (started by
 * tests/integration/test_libcitrus.py, on the embedded and the etcd
 * catalog), through the shared library and the public header only.
 *
 * Environment: CITRUS_TEST_ENDPOINT (Citrus API), CITRUS_TEST_ROUTER,
 * CITRUS_TEST_DSNS (two sqlite:// DSNs of empty databases, comma-separated,
 * for shards the tests add). The server starts with its four dev shards.
 *
 * With CITRUS_TEST_TOKEN (an sm-admin API key of a server started with
 * --auth api_key) only the credential tests run, against that server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
// clang-format off
#include <cmocka.h>
// clang-format on
#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "citrus/citrus.h"

#define NKEYS 2000
#define NPINNED 300
#define DEADLINE_MS 10000

static const char *api, *router, *token;
static char dsn_a[512], dsn_b[512];

/* ---- a minimal admin client (the test's own, not the library's) ---- */

typedef struct buf {
    char *p;
    size_t n;
} buf;

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
    buf *b = ctx;
    char *q = realloc(b->p, b->n + size * n + 1);
    if (!q)
        return 0;
    memcpy(q + b->n, p, size * n);
    b->n += size * n;
    q[b->n] = '\0';
    b->p = q;
    return size * n;
}

/* method url body -> the answer's JSON (*status set); asserts transport. */
static json_t *http(const char *method, const char *path, json_t *body, long *status)
{
    char url[2048];
    snprintf(url, sizeof(url), "%s%s", api, path);
    CURL *h = curl_easy_init();
    buf b = {0};
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: application/json");
    char auth[1024];
    if (token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        hl = curl_slist_append(hl, auth);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    if (text)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    json_t *j = b.p ? json_loads(b.p, 0, NULL) : NULL;
    if (*status >= 300)
        fprintf(stderr, "%s %s: %ld %s\n", method, path, *status, b.p ? b.p : "");
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    free(text);
    free(b.p);
    json_decref(body);
    return j;
}

static json_t *http_ok(const char *method, const char *path, json_t *body)
{
    long status;
    json_t *j = http(method, path, body, &status);
    assert_true(status >= 200 && status < 300);
    return j;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static citrus_client *connect_to(const char *const *eps, size_t n, const char *rt)
{
    citrus_options o = {.endpoints = eps, .nendpoints = n, .router_url = rt};
    citrus_error e;
    citrus_client *c = citrus_connect(&o, &e);
    if (!c)
        fprintf(stderr, "connect: %s: %s\n", e.name, e.message);
    assert_non_null(c);
    return c;
}

static citrus_client *connect_default(void)
{
    const char *eps[] = {api};
    return connect_to(eps, 1, router);
}

/* ---- agreement with the server ---- */

static char *test_key(size_t i)
{
    static const char *const odd[] = {"a/b", "ünïcode:ключ", "x y", ".", "..", "%2F", "k\\t"};
    char *k;
    if (i < sizeof(odd) / sizeof(odd[0]))
        k = strdup(odd[i]);
    else if (i == 10) { /* the longest key there is */
        k = malloc(1025);
        memset(k, 'z', 1024);
        k[1024] = '\0';
    } else if (i < NPINNED)
        (void)!asprintf(&k, "biz%zu:loc%zu", i % 37, i);
    else
        (void)!asprintf(&k, "key-%zu", i);
    return k;
}

/* Compares citrus_resolve with POST /v1/route for NKEYS keys: 0 when every
 * answer agrees, else how many differ (printing the first). */
static int disagreements(citrus_client *c, bool quiet)
{
    json_t *keys = json_array();
    for (size_t i = 0; i < NKEYS; i++) {
        char *k = test_key(i);
        json_array_append_new(keys, json_string(k));
        free(k);
    }
    json_t *ans = http_ok("POST", "/v1/route", json_pack("{s:o}", "keys", json_incref(keys)));
    json_t *routes = json_object_get(ans, "routes");
    assert_int_equal(json_array_size(routes), NKEYS);
    int bad = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        json_t *want = json_array_get(routes, i);
        const char *key = json_string_value(json_array_get(keys, i));
        citrus_route *r;
        citrus_error e;
        assert_int_equal(citrus_resolve(c, key, &r, &e), 0);
        char tok[24];
        snprintf(tok, sizeof(tok), "%" PRIu64, citrus_route_token(r));
        const char *src = citrus_route_source(r) == CITRUS_SOURCE_DIRECTORY ? "directory" : "ring";
        const char *wdsn = json_string_value(json_object_get(want, "dsn"));
        const char *wstate = json_string_value(json_object_get(want, "state"));
        json_t *reps = json_object_get(want, "replicas");
        bool same = strcmp(citrus_route_shard_id(r),
                           json_string_value(json_object_get(want, "shard_id"))) == 0 &&
                    strcmp(src, json_string_value(json_object_get(want, "source"))) == 0 &&
                    strcmp(tok, json_string_value(json_object_get(want, "token"))) == 0 &&
                    citrus_route_ring_version(r) ==
                        json_integer_value(json_object_get(want, "ring_version")) &&
                    (wdsn && citrus_route_dsn(r) ? strcmp(wdsn, citrus_route_dsn(r)) == 0
                                                 : wdsn == citrus_route_dsn(r)) &&
                    (wstate && citrus_route_state(r) ? strcmp(wstate, citrus_route_state(r)) == 0
                                                     : wstate == citrus_route_state(r)) &&
                    citrus_route_replica_count(r) == json_array_size(reps);
        if (!same && bad++ == 0 && !quiet)
            fprintf(stderr, "key %s: server %s, library %s %s %s v%" PRId64 "\n", key,
                    json_dumps(want, JSON_COMPACT), citrus_route_shard_id(r), src, tok,
                    citrus_route_ring_version(r));
        citrus_route_free(r);
    }
    json_decref(ans);
    json_decref(keys);
    return bad;
}

/* Polls until the library agrees with the server on every key. */
static void agree_within(citrus_client *c, int64_t ms)
{
    int64_t end = now_ms() + ms;
    while (disagreements(c, true) != 0 && now_ms() < end) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(disagreements(c, false), 0);
}

/* Pins the first NPINNED keys that are tenant keys to a shard other than
 * their ring owner. */
static void pin_away(void)
{
    json_t *shards = http_ok("GET", "/v1/shards", NULL);
    json_t *list = json_object_get(shards, "shards");
    size_t ns = json_array_size(list);
    assert_true(ns >= 2);
    for (size_t i = 11; i < NPINNED; i++) {
        char *k = test_key(i), path[256];
        snprintf(path, sizeof(path), "/v1/route/%s", k);
        json_t *rt = http_ok("GET", path, NULL);
        const char *owner = json_string_value(json_object_get(rt, "shard_id"));
        const char *to = NULL;
        for (size_t s = 0; s < ns && !to; s++) {
            json_t *sh = json_array_get(list, (i + s) % ns);
            const char *id = json_string_value(json_object_get(sh, "id"));
            if (strcmp(id, owner) != 0 &&
                strcmp(json_string_value(json_object_get(sh, "state")), "active") == 0)
                to = id;
        }
        snprintf(path, sizeof(path), "/v1/tenants/%s", k);
        json_decref(http_ok("PUT", path, json_pack("{s:s}", "shard_id", to)));
        json_decref(rt);
        free(k);
    }
    json_decref(shards);
}

static void test_resolve_agrees_with_route_api(void **state)
{
    pin_away();
    citrus_client *c = connect_default();
    /* Loaded after the pins were written: agrees at once. */
    assert_int_equal(disagreements(c, false), 0);
    assert_true(citrus_ring_version(c) > 0);
    assert_true(citrus_revision(c) >= citrus_ring_version(c));
    citrus_close(c);
}

/* ---- the watch ---- */

static void test_watch_follows_shard_and_pin_changes(void **state)
{
    citrus_client *c = connect_default();
    int64_t v0 = citrus_ring_version(c);
    /* A new shard takes tokens: the ring version moves and keys move. */
    json_t *ans =
        http_ok("POST", "/v1/shards", json_pack("{s:s,s:s}", "id", "extra-a", "dsn", dsn_a));
    int64_t v1 = json_integer_value(json_object_get(json_object_get(ans, "ring"), "version"));
    json_decref(ans);
    assert_true(v1 > v0);
    int64_t end = now_ms() + DEADLINE_MS;
    while (citrus_ring_version(c) < v1 && now_ms() < end)
        assert_int_equal(citrus_wait_revision(c, citrus_revision(c) + 1, 100) <= 0, 1);
    assert_int_equal(citrus_ring_version(c), v1);
    agree_within(c, DEADLINE_MS);
    /* A new pin, seen without reconnecting. */
    json_decref(http_ok("PUT", "/v1/tenants/watch:me", json_pack("{s:s}", "shard_id", "extra-a")));
    end = now_ms() + DEADLINE_MS;
    citrus_route *r = NULL;
    for (;;) {
        assert_int_equal(citrus_resolve(c, "watch:me", &r, NULL), 0);
        if (citrus_route_source(r) == CITRUS_SOURCE_DIRECTORY || now_ms() > end)
            break;
        citrus_route_free(r);
        citrus_wait_revision(c, citrus_revision(c) + 1, 100);
    }
    assert_int_equal(citrus_route_source(r), CITRUS_SOURCE_DIRECTORY);
    assert_string_equal(citrus_route_shard_id(r), "extra-a");
    assert_string_equal(citrus_route_state(r), "active");
    assert_string_equal(citrus_route_dsn(r), dsn_a);
    citrus_route_free(r);
    /* An unpin puts it back on the ring. */
    json_decref(http_ok("DELETE", "/v1/tenants/watch:me", NULL));
    agree_within(c, DEADLINE_MS);
    char *dsn;
    assert_int_equal(citrus_shard_dsn(c, "watch:me", CITRUS_EVENTUAL, &dsn, NULL), 0);
    citrus_route *now;
    assert_int_equal(citrus_resolve(c, "watch:me", &now, NULL), 0);
    assert_string_equal(dsn, citrus_route_dsn(now)); /* no replicas: the primary */
    citrus_route_free(now);
    citrus_free(dsn);
    citrus_close(c);
}

/* ---- queries ---- */

static void test_query_and_tx_round_trip(void **state)
{
    citrus_client *c = connect_default();
    citrus_result *res;
    citrus_error e;
    int rc = citrus_scatter(c,
                            "CREATE TABLE IF NOT EXISTS lt (k TEXT, i INTEGER, r REAL, s TEXT, "
                            "b BLOB, n INTEGER)",
                            NULL, 0, NULL, &res, &e);
    if (rc)
        fprintf(stderr, "scatter: %s %s\n", e.name, e.message);
    assert_int_equal(rc, 0);
    citrus_result_free(res);
    static const unsigned char blob[] = {0, 1, 2, 255, 0};
    const char *key = "acme:north";
    citrus_param p[] = {citrus_param_text(key),
                        citrus_param_int(INT64_MIN + 1),
                        citrus_param_real(2.5),
                        citrus_param_textn("h€éxyz", 8),
                        citrus_param_blob(blob, sizeof(blob)),
                        citrus_param_null()};
    assert_int_equal(citrus_query(c, key, "INSERT INTO lt VALUES ($1, $2, $3, $4, $5, $6)", p, 6,
                                  NULL, &res, &e),
                     0);
    assert_int_equal(citrus_result_changes(res), 1);
    citrus_route *r;
    assert_int_equal(citrus_resolve(c, key, &r, NULL), 0);
    assert_string_equal(citrus_result_shard_id(res), citrus_route_shard_id(r));
    assert_int_equal(citrus_result_from_replica(res), 0); /* strong: the primary */
    assert_int_equal(citrus_result_ring_version(res), citrus_route_ring_version(r));
    citrus_route_free(r);
    citrus_result_free(res);
    citrus_query_opts strong = {.consistency = CITRUS_STRONG};
    assert_int_equal(citrus_query(c, key,
                                  "SELECT k, i, r, s, b, n, 1 = 1 AS t FROM lt WHERE k = $1", p, 1,
                                  &strong, &res, &e),
                     0);
    assert_int_equal(citrus_result_row_count(res), 1);
    assert_int_equal(citrus_result_column_count(res), 7);
    assert_string_equal(citrus_result_column_name(res, 1), "i");
    assert_null(citrus_result_column_name(res, 7));
    assert_int_equal(citrus_result_type(res, 0, 1), CITRUS_INT);
    assert_true(citrus_result_int(res, 0, 1) == INT64_MIN + 1);
    assert_int_equal(citrus_result_type(res, 0, 2), CITRUS_REAL);
    assert_true(citrus_result_real(res, 0, 2) == 2.5);
    size_t len;
    const char *s = citrus_result_text(res, 0, 3, &len);
    assert_int_equal(len, 8); /* the bytes given, not up to a NUL */
    assert_memory_equal(s, "h€éxy", 8);
    assert_int_equal(citrus_result_type(res, 0, 4), CITRUS_BLOB);
    const void *b = citrus_result_blob(res, 0, 4, &len);
    assert_int_equal(len, sizeof(blob));
    assert_memory_equal(b, blob, sizeof(blob));
    assert_int_equal(citrus_result_type(res, 0, 5), CITRUS_NULL);
    assert_int_equal(citrus_result_int(res, 0, 6), 1);
    assert_null(citrus_result_text(res, 0, 1, NULL));             /* not text */
    assert_int_equal(citrus_result_type(res, 5, 0), CITRUS_NULL); /* out of range */
    citrus_result_free(res);

    /* A transaction: all or nothing. */
    citrus_param k2[] = {citrus_param_text("tx-1"), citrus_param_bool(1)};
    citrus_stmt ok[] = {{"INSERT INTO lt (k, i) VALUES ($1, $2)", k2, 2},
                        {"SELECT count(*) AS n FROM lt WHERE k = $1", k2, 1}};
    citrus_result *out[2];
    assert_int_equal(citrus_tx(c, key, ok, 2, out, &e), 0);
    assert_int_equal(citrus_result_changes(out[0]), 1);
    assert_int_equal(citrus_result_int(out[1], 0, 0), 1);
    assert_string_equal(citrus_result_shard_id(out[1]), citrus_result_shard_id(out[0]));
    citrus_result_free(out[0]);
    citrus_result_free(out[1]);
    citrus_param k3[] = {citrus_param_text("tx-2")};
    citrus_stmt bad[] = {{"INSERT INTO lt (k) VALUES ($1)", k3, 1},
                         {"INSERT INTO no_such_table VALUES (1)", NULL, 0}};
    out[0] = out[1] = NULL;
    assert_int_equal(citrus_tx(c, key, bad, 2, out, &e), CITRUS_ESQL);
    assert_int_equal(e.statement, 1);
    assert_null(out[0]);
    assert_int_equal(
        citrus_query(c, key, "SELECT count(*) FROM lt WHERE k = $1", k3, 1, NULL, &res, NULL), 0);
    assert_int_equal(citrus_result_int(res, 0, 0), 0); /* rolled back */
    citrus_result_free(res);
    citrus_close(c);
}

/* Integers past 2^53 come from the router as strings (column type
 * "int64-string"): they read back as CITRUS_INT, exactly; a text cell
 * holding an integer reads exactly through citrus_result_int too. */
static void test_int64_string_form(void **state)
{
    citrus_client *c = connect_default();
    citrus_result *res;
    citrus_error e;
    assert_int_equal(citrus_query(c, "acme:north",
                                  "SELECT 9007199254740993 AS big, -9223372036854775807 AS low, "
                                  "'9007199254740993' AS txt, 7 AS small, '1.50' AS dec",
                                  NULL, 0, NULL, &res, &e),
                     0);
    assert_int_equal(citrus_result_type(res, 0, 0), CITRUS_INT);
    assert_true(citrus_result_int(res, 0, 0) == INT64_C(9007199254740993));
    assert_true(citrus_result_int(res, 0, 1) == -INT64_MAX);
    assert_int_equal(citrus_result_type(res, 0, 2), CITRUS_TEXT);
    assert_string_equal(citrus_result_text(res, 0, 2, NULL), "9007199254740993");
    assert_true(citrus_result_int(res, 0, 2) == INT64_C(9007199254740993));
    assert_int_equal(citrus_result_type(res, 0, 3), CITRUS_INT);
    assert_int_equal(citrus_result_int(res, 0, 3), 7);
    assert_true(citrus_result_real(res, 0, 4) == 1.5); /* a decimal's text */
    citrus_result_free(res);
    citrus_close(c);
}

static void test_sql_error_is_reported(void **state)
{
    citrus_client *c = connect_default();
    citrus_result *res = (citrus_result *)1;
    citrus_error e;
    assert_int_equal(citrus_query(c, "k", "SELEC nothing", NULL, 0, NULL, &res, &e), CITRUS_ESQL);
    assert_null(res);
    assert_string_equal(e.name, "sql_error");
    assert_int_equal(e.http_status, 400);
    assert_non_null(strstr(e.message, "syntax"));
    assert_int_equal(citrus_query(c, "k", "SELECT $1", NULL, 1, NULL, &res, &e), CITRUS_EINVAL);
    citrus_param bad_utf8 = citrus_param_textn("\xff", 1);
    assert_int_equal(citrus_query(c, "k", "SELECT $1", &bad_utf8, 1, NULL, &res, &e),
                     CITRUS_EINVAL);
    citrus_close(c);
}

/* A statement that outlives the client's request timeout is cancelled by
 * the router (90 % of it) and reported as query_timeout, not left running:
 * the next query on the same client works. */
static void test_request_timeout_cancels_the_statement(void **state)
{
    const char *eps[] = {api};
    citrus_options o = {.endpoints = eps,
                        .nendpoints = 1,
                        .router_url = router,
                        .request_timeout_ms = 4000,
                        .no_watch = 1};
    citrus_error e;
    citrus_client *c = citrus_connect(&o, &e);
    assert_non_null(c);
    citrus_result *res = NULL;
    int64_t t0 = now_ms();
    int rc = citrus_query(c, "slow",
                          "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) "
                          "SELECT count(*) FROM n",
                          NULL, 0, NULL, &res, &e);
    int64_t took = now_ms() - t0;
    assert_int_equal(rc, CITRUS_EQUERYTIMEOUT);
    assert_null(res);
    assert_string_equal(e.name, "query_timeout");
    assert_int_equal(e.http_status, 504);
    assert_non_null(strstr(e.message, "timeout of 3600 ms"));
    assert_true(took >= 3600 && took < 4000); /* before the request would time out */
    citrus_param p = citrus_param_int(5);
    assert_int_equal(citrus_query(c, "slow", "SELECT $1 AS v", &p, 1, NULL, &res, &e), 0);
    assert_int_equal(citrus_result_int(res, 0, 0), 5);
    citrus_result_free(res);
    citrus_close(c);
}

/* ---- threads ---- */

typedef struct worker {
    citrus_client *c;
    int id, resolves, queries, failures;
    atomic_int *stop;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    int64_t last_version = 0;
    for (int i = 0; !atomic_load(w->stop) || i < 200; i++) {
        char key[64];
        snprintf(key, sizeof(key), "w%d-%d", w->id, i % 500);
        citrus_route *r;
        if (citrus_resolve(w->c, key, &r, NULL) != 0 || !*citrus_route_shard_id(r) ||
            citrus_route_ring_version(r) < last_version)
            w->failures++;
        else
            last_version = citrus_route_ring_version(r);
        citrus_route_free(r);
        w->resolves++;
        if (i % 20 == 0) {
            citrus_param p = citrus_param_int(i);
            citrus_result *res;
            citrus_error e;
            int rc = citrus_query(w->c, key, "SELECT $1 AS v", &p, 1, NULL, &res, &e);
            if (rc != 0 || citrus_result_int(res, 0, 0) != i) {
                fprintf(stderr, "thread %d: %s %s\n", w->id, e.name, e.message);
                w->failures++;
            }
            citrus_result_free(res);
            w->queries++;
        }
    }
    return NULL;
}

static void test_threads_while_the_ring_changes(void **state)
{
    citrus_client *c = connect_default();
    atomic_int stop = 0;
    worker w[8];
    pthread_t t[8];
    for (int i = 0; i < 8; i++) {
        w[i] = (worker){.c = c, .id = i, .stop = &stop};
        assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    int64_t v = citrus_ring_version(c);
    json_decref(
        http_ok("POST", "/v1/shards", json_pack("{s:s,s:s}", "id", "extra-b", "dsn", dsn_b)));
    json_decref(http_ok("PATCH", "/v1/shards/extra-b", json_pack("{s:f}", "weight", 2.0)));
    json_decref(http_ok("PATCH", "/v1/shards/extra-b", json_pack("{s:f}", "weight", 0.5)));
    int64_t end = now_ms() + DEADLINE_MS;
    while (citrus_ring_version(c) == v && now_ms() < end)
        citrus_wait_revision(c, citrus_revision(c) + 1, 100);
    atomic_store(&stop, 1);
    int failures = 0, queries = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        failures += w[i].failures;
        queries += w[i].queries;
    }
    assert_int_equal(failures, 0);
    assert_true(queries >= 80);
    assert_true(citrus_ring_version(c) > v);
    agree_within(c, DEADLINE_MS);
    citrus_close(c);
}

/* ---- endpoints and bad input ---- */

static void test_failover_to_the_next_endpoint(void **state)
{
    const char *eps[] = {"http://127.0.0.1:1", api};
    citrus_client *c = connect_to(eps, 2, router);
    agree_within(c, DEADLINE_MS);
    /* ... and the watch runs on the live one. */
    json_decref(http_ok("PUT", "/v1/tenants/fail:over", json_pack("{s:s}", "shard_id", "extra-a")));
    agree_within(c, DEADLINE_MS);
    char *key = NULL;
    citrus_error e;
    int rc = citrus_register_tenant(c, "acme", "west", "retail", &key, &e);
    if (rc)
        fprintf(stderr, "register: %s %s\n", e.name, e.message);
    assert_int_equal(rc, 0);
    assert_string_equal(key, "acme:west");
    citrus_route *r;
    assert_int_equal(citrus_resolve(c, key, &r, NULL), 0); /* read-your-registration */
    assert_int_equal(citrus_route_source(r), CITRUS_SOURCE_DIRECTORY);
    citrus_route_free(r);
    citrus_free(key);
    citrus_close(c);
}

static void test_bad_input_is_refused_clearly(void **state)
{
    citrus_error e;
    assert_null(citrus_connect(NULL, &e));
    assert_int_equal(e.code, CITRUS_EINVAL);
    const char *bad[] = {"ftp://x"};
    citrus_options o = {.endpoints = bad, .nendpoints = 1};
    assert_null(citrus_connect(&o, &e));
    assert_int_equal(e.code, CITRUS_EINVAL);
    assert_non_null(strstr(e.message, "ftp://x"));
    const char *dead[] = {"http://127.0.0.1:1", "http://127.0.0.1:2"};
    o = (citrus_options){.endpoints = dead, .nendpoints = 2, .connect_timeout_ms = 500};
    assert_null(citrus_connect(&o, &e));
    assert_int_equal(e.code, CITRUS_EUNAVAILABLE);
    assert_string_equal(e.name, "unavailable");
    assert_non_null(strstr(e.message, "127.0.0.1"));

    const char *eps[] = {api};
    o = (citrus_options){.endpoints = eps, .nendpoints = 1, .no_watch = 1};
    citrus_client *c = citrus_connect(&o, &e);
    assert_non_null(c);
    citrus_route *r = (citrus_route *)1;
    assert_int_equal(citrus_resolve(c, NULL, &r, &e), CITRUS_EINVAL);
    assert_null(r);
    assert_int_equal(citrus_resolve(c, "", &r, &e), CITRUS_EINVAL);
    char long_key[1026];
    memset(long_key, 'k', 1025);
    long_key[1025] = '\0';
    assert_int_equal(citrus_resolve(c, long_key, &r, &e), CITRUS_EINVAL);
    citrus_result *res = (citrus_result *)1;
    assert_int_equal(citrus_query(c, "k", "SELECT 1", NULL, 0, NULL, &res, &e), CITRUS_EINVAL);
    assert_null(res);
    assert_non_null(strstr(e.message, "no router"));
    assert_int_equal(citrus_query(c, NULL, "SELECT 1", NULL, 0, NULL, &res, &e), CITRUS_EINVAL);
    citrus_stmt none[1] = {{"SELECT 1", NULL, 0}};
    citrus_result *out[1];
    assert_int_equal(citrus_tx(c, "k", none, 0, out, &e), CITRUS_EINVAL);
    char *dsn = (char *)1;
    assert_int_equal(citrus_shard_dsn(c, "k", (citrus_consistency)7, &dsn, &e), CITRUS_EINVAL);
    assert_null(dsn);
    /* Without a watch the copy moves only on refresh. */
    int64_t rev = citrus_revision(c);
    json_decref(http_ok("PUT", "/v1/tenants/no:watch", json_pack("{s:s}", "shard_id", "extra-a")));
    assert_int_equal(citrus_wait_revision(c, rev + 1, 200), CITRUS_ETIMEOUT);
    assert_int_equal(citrus_refresh(c, &e), 0);
    assert_true(citrus_revision(c) > rev);
    assert_int_equal(citrus_resolve(c, "no:watch", &r, &e), 0);
    assert_int_equal(citrus_route_source(r), CITRUS_SOURCE_DIRECTORY);
    citrus_route_free(r);
    citrus_close(c);
    citrus_close(NULL);
}

/* citrus_close ends the watch's long poll at once rather than at libcurl's
 * next once-a-second progress call: three closes in a row, each while the
 * poll is waiting on the server, all well under that second (without the
 * interrupt each would take 0..1 s, so all three under 300 ms by chance is
 * a 3 % event). */
static void test_close_does_not_wait_for_the_long_poll(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++) {
        citrus_client *c = connect_default();
        struct timespec ts = {0, 200 * 1000000L}; /* the poll is in flight */
        nanosleep(&ts, NULL);
        int64_t t0 = now_ms();
        citrus_close(c);
        int64_t took = now_ms() - t0;
        if (took >= 300)
            fail_msg("citrus_close took %lld ms", (long long)took);
    }
}

/* ---- credentials (CITRUS_TEST_TOKEN) ---- */

/* A new API key with role (POST /v1/auth/keys): its token (caller frees)
 * and, when id is not NULL, its id. */
static char *make_key(const char *name, const char *role, char *id, size_t idlen)
{
    json_t *j =
        http_ok("POST", "/v1/auth/keys", json_pack("{s:s,s:[s]}", "name", name, "roles", role));
    char *key = strdup(json_string_value(json_object_get(j, "key")));
    if (id)
        snprintf(id, idlen, "%s", json_string_value(json_object_get(j, "id")));
    json_decref(j);
    return key;
}

static citrus_client *connect_with(const char *tok, int no_watch, citrus_error *e)
{
    const char *eps[] = {api};
    citrus_options o = {.endpoints = eps, .nendpoints = 1, .no_watch = no_watch, .token = tok};
    return citrus_connect(&o, e);
}

static void test_token_is_accepted(void **state)
{
    (void)state;
    citrus_error e;
    citrus_client *c = connect_with(token, 0, &e);
    if (!c)
        fprintf(stderr, "connect: %s: %s\n", e.name, e.message);
    assert_non_null(c);
    assert_int_equal(citrus_refresh(c, &e), 0);
    /* The watch carries the token too: it sees a write under citrus/ (an
     * sm-admin repair, ?unsafe=true: raw writes there are reserved). */
    json_t *put = http_ok("PUT", "/v1/kv/citrus/test/watched?unsafe=true", json_string("x"));
    int64_t rev = json_integer_value(json_object_get(put, "mod_revision"));
    json_decref(put);
    assert_true(rev > 0);
    assert_int_equal(citrus_wait_revision(c, rev, DEADLINE_MS), 0);
    citrus_close(c);
}

static void test_missing_or_bad_token_is_refused(void **state)
{
    (void)state;
    citrus_error e;
    assert_null(connect_with(NULL, 1, &e));
    assert_int_equal(e.code, CITRUS_EUNAUTHENTICATED);
    assert_int_equal(e.http_status, 401);
    assert_string_equal(e.name, "unauthenticated");
    char want[600];
    snprintf(want, sizeof(want), "401 from %s: ", api);
    if (strncmp(e.message, want, strlen(want)) != 0)
        fail_msg("message: %s", e.message);
    assert_true(strlen(e.message) > strlen(want));
    /* A key the server never made. */
    assert_null(connect_with("ck_0123456789abcdef_0123456789abcdef0123456789abcdef0123456789abcdef"
                             "0123456789abcdef",
                             1, &e));
    assert_int_equal(e.code, CITRUS_EUNAUTHENTICATED);
    /* A reader without KV grants may not read the routing keys. */
    char *reader = make_key("lib-reader", "reader", NULL, 0);
    assert_null(connect_with(reader, 1, &e));
    assert_int_equal(e.code, CITRUS_EFORBIDDEN);
    assert_int_equal(e.http_status, 403);
    snprintf(want, sizeof(want), "403 from %s: ", api);
    assert_int_equal(strncmp(e.message, want, strlen(want)), 0);
    free(reader);
    /* Tokens that cannot be sent, and both ways at once. */
    assert_null(connect_with("two words", 1, &e));
    assert_int_equal(e.code, CITRUS_EINVAL);
    assert_null(strstr(e.message, "two words"));
    const char *eps[] = {api};
    citrus_options o = {.endpoints = eps,
                        .nendpoints = 1,
                        .token = token,
                        .token_cb = (int (*)(void *, char *, size_t))1};
    assert_null(citrus_connect(&o, &e));
    assert_int_equal(e.code, CITRUS_EINVAL);
}

typedef struct renewer {
    const char *first, *then;
    int calls;
} renewer;

/* Gives a revoked key the first time, the good one afterwards. */
static int renew(void *ctx, char *out, size_t len)
{
    renewer *r = ctx;
    const char *t = r->calls++ == 0 ? r->first : r->then;
    if (strlen(t) >= len)
        return -1;
    strcpy(out, t);
    return 0;
}

static int refuse(void *ctx, char *out, size_t len)
{
    (void)out;
    (void)len;
    ++*(int *)ctx;
    return 7;
}

static void test_token_cb_renews_after_401(void **state)
{
    (void)state;
    char id[64], path[128];
    char *revoked = make_key("lib-revoked", "sm-admin", id, sizeof(id));
    snprintf(path, sizeof(path), "/v1/auth/keys/%s", id);
    json_decref(http_ok("DELETE", path, NULL));

    renewer r = {.first = revoked, .then = token};
    const char *eps[] = {api};
    citrus_options o = {.endpoints = eps, .nendpoints = 1, .token_cb = renew, .token_ctx = &r};
    citrus_error e;
    citrus_client *c = citrus_connect(&o, &e);
    if (!c)
        fprintf(stderr, "connect: %s: %s\n", e.name, e.message);
    assert_non_null(c);
    /* Once before the first request, once after its 401: then the request
     * went again with the new token. */
    assert_int_equal(r.calls, 2);
    /* The good token stays: no more calls for later requests or the watch. */
    assert_int_equal(citrus_refresh(c, &e), 0);
    json_t *put = http_ok("PUT", "/v1/kv/citrus/test/renewed?unsafe=true", json_string("x"));
    int64_t rev = json_integer_value(json_object_get(put, "mod_revision"));
    json_decref(put);
    assert_int_equal(citrus_wait_revision(c, rev, DEADLINE_MS), 0);
    assert_int_equal(r.calls, 2);
    citrus_close(c);

    /* A callback that keeps giving a bad token: asked twice, then 401. */
    renewer bad = {.first = revoked, .then = revoked};
    o.token_ctx = &bad;
    assert_null(citrus_connect(&o, &e));
    assert_int_equal(e.code, CITRUS_EUNAUTHENTICATED);
    assert_int_equal(bad.calls, 2);
    /* A callback that fails: the request is not sent. */
    int fails = 0;
    o.token_cb = refuse;
    o.token_ctx = &fails;
    assert_null(citrus_connect(&o, &e));
    assert_int_equal(e.code, CITRUS_EUNAUTHENTICATED);
    assert_non_null(strstr(e.message, "token_cb"));
    assert_int_equal(fails, 1);
    free(revoked);
}

static int run_credential_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_is_accepted),
        cmocka_unit_test(test_missing_or_bad_token_is_refused),
        cmocka_unit_test(test_token_cb_renews_after_401),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

int main(void)
{
    api = getenv("CITRUS_TEST_ENDPOINT");
    token = getenv("CITRUS_TEST_TOKEN");
    if (api && token) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        int rc = run_credential_tests();
        curl_global_cleanup();
        return rc;
    }
    router = getenv("CITRUS_TEST_ROUTER");
    const char *dsns = getenv("CITRUS_TEST_DSNS");
    if (!api || !router || !dsns || sscanf(dsns, "%511[^,],%511s", dsn_a, dsn_b) != 2) {
        fprintf(stderr, "set CITRUS_TEST_ENDPOINT, CITRUS_TEST_ROUTER and CITRUS_TEST_DSNS "
                        "(run through tests/integration/test_libcitrus.py)\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolve_agrees_with_route_api),
        cmocka_unit_test(test_watch_follows_shard_and_pin_changes),
        cmocka_unit_test(test_query_and_tx_round_trip),
        cmocka_unit_test(test_int64_string_form),
        cmocka_unit_test(test_sql_error_is_reported),
        cmocka_unit_test(test_request_timeout_cancels_the_statement),
        cmocka_unit_test(test_threads_while_the_ring_changes),
        cmocka_unit_test(test_failover_to_the_next_endpoint),
        cmocka_unit_test(test_bad_input_is_refused_clearly),
        cmocka_unit_test(test_close_does_not_wait_for_the_long_poll),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
