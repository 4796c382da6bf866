/* Unit tests for lib/feed.c against a scripted catalog node
 * (support_fake_http): a load lists every routing prefix page by page and
 * publishes once, at the lowest revision a page was read at; a listing that
 * does not decode fails the load and publishes nothing; the watch applies
 * long-poll answers, loads anew after one that does not decode, and
 * feed_stop ends a long poll the node is still holding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <time.h>

#include "citrus/errors.h"
#include "lib/feed.h"
#include "support_fake_http.h"
#include "wire/base64.h"

static const char shard_a[] = "{\"id\":\"a\",\"state\":\"active\",\"dsn\":\"sqlite:///a.db\","
                              "\"epoch\":1,\"created_at\":\"2026-01-01T00:00:00.000Z\","
                              "\"updated_at\":\"2026-01-01T00:00:00.000Z\"}";
static const char shard_b[] = "{\"id\":\"b\",\"state\":\"active\",\"dsn\":\"sqlite:///b.db\","
                              "\"epoch\":1,\"created_at\":\"2026-01-01T00:00:00.000Z\","
                              "\"updated_at\":\"2026-01-01T00:00:00.000Z\"}";

/* What the node answers, and what the test saw. */
typedef struct node {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* script */
    bool bad_listing;     /* the tenants listing holds a value that is not base64 */
    bool bad_first_watch; /* the first long poll answers something else */
    /* seen (guarded by mu) */
    int shard_lists;     /* first pages of citrus/shards/ served */
    int polls;           /* long polls received */
    char first_poll[64]; /* the query of the first */
    int holding;         /* long polls held until released */
    bool release;
    int published;
    snap *last;
    char **bodies; /* every reply body, freed at the end (fake_http reads them after answer) */
    size_t nbodies;
} node;

static char *b64(const char *s)
{
    char *e = base64_encode((const unsigned char *)s, strlen(s));
    assert_non_null(e);
    return e;
}

/* A listed entry; value is base64-encoded unless raw. */
static char *item(const char *key, const char *value, int64_t rev, bool raw)
{
    char *v = raw ? strdup(value) : b64(value), *out;
    assert_true(asprintf(&out,
                         "{\"key\":\"%s\",\"value\":\"%s\",\"create_revision\":%lld,"
                         "\"mod_revision\":%lld,\"version\":1,\"lease\":0}",
                         key, v, (long long)rev, (long long)rev) > 0);
    free(v);
    return out;
}

/* Keeps b for the node's lifetime and returns it. */
static const char *keep(node *n, char *b)
{
    assert_non_null(b);
    pthread_mutex_lock(&n->mu);
    char **v = realloc(n->bodies, (n->nbodies + 1) * sizeof(*v));
    assert_non_null(v);
    n->bodies = v;
    v[n->nbodies++] = b;
    pthread_mutex_unlock(&n->mu);
    return b;
}

static void answer(void *ctx, const fake_http_req *req, fake_http_reply *out)
{
    node *n = ctx;
    char *body = NULL, *it = NULL;
    const char *t = req->target;
    if (strcmp(t, "/v1/kv/citrus/shards/?prefix=true") == 0) {
        it = item("citrus/shards/a", shard_a, 10, false);
        assert_true(asprintf(&body, "{\"revision\":10,\"items\":[%s],\"more\":true}", it) > 0);
        pthread_mutex_lock(&n->mu);
        n->shard_lists++;
        pthread_mutex_unlock(&n->mu);
    } else if (strcmp(t, "/v1/kv/citrus/shards/?prefix=true&after=citrus%2Fshards%2Fa") == 0) {
        it = item("citrus/shards/b", shard_b, 8, false);
        assert_true(asprintf(&body, "{\"revision\":9,\"items\":[%s],\"more\":false}", it) > 0);
    } else if (strcmp(t, "/v1/kv/citrus/ring/?prefix=true") == 0) {
        body = strdup("{\"revision\":10,\"items\":[],\"more\":false}");
    } else if (strcmp(t, "/v1/kv/citrus/tenants/?prefix=true") == 0) {
        it = n->bad_listing
                 ? item("citrus/tenants/t1", "!!!!", 11, true)
                 : item("citrus/tenants/t1", "{\"shard_id\":\"a\",\"token\":\"7\"}", 11, false);
        assert_true(asprintf(&body, "{\"revision\":11,\"items\":[%s]}", it) > 0);
    } else if (strncmp(t, "/v1/watch/citrus/?from_revision=", 32) == 0) {
        pthread_mutex_lock(&n->mu);
        int poll = ++n->polls;
        if (poll == 1)
            snprintf(n->first_poll, sizeof(n->first_poll), "%s", t + 32);
        if (poll == 1 && n->bad_first_watch) {
            body = strdup("{\"revision\":\"soon\",\"events\":[]}");
        } else if (poll == 1) {
            it = item("citrus/tenants/t2", "{\"shard_id\":\"b\",\"token\":\"9\"}", 12, false);
            it[strlen(it) - 1] = '\0';
            assert_true(asprintf(&body, "{\"revision\":13,\"events\":[%s,\"type\":\"put\"}]}", it) >
                        0);
        } else { /* held until the test releases it */
            n->holding++;
            pthread_cond_broadcast(&n->cv);
            while (!n->release)
                pthread_cond_wait(&n->cv, &n->mu);
            body = strdup("{\"revision\":13,\"events\":[]}");
        }
        pthread_mutex_unlock(&n->mu);
    } else {
        out->status = 404;
    }
    free(it);
    if (body)
        out->body = keep(n, body);
}

static void publish(void *ctx, snap *s)
{
    node *n = ctx;
    pthread_mutex_lock(&n->mu);
    snap_unref(n->last);
    n->last = s;
    n->published++;
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
}

/* Waits until *v (read under mu) >= want, at most 10 s; whether it came.
 * (Tests assert with mu free, so a failure leaves no thread stuck on it.) */
static bool wait_for(node *n, const int *v, int want)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    pthread_mutex_lock(&n->mu);
    while (*v < want && pthread_cond_timedwait(&n->cv, &n->mu, &ts) == 0)
        ;
    bool ok = *v >= want;
    pthread_mutex_unlock(&n->mu);
    return ok;
}

typedef struct fixture {
    node n;
    fake_http *http;
    conns *cs;
    feed *f;
} fixture;

static int setup(void **state)
{
    fixture *x = calloc(1, sizeof(*x));
    pthread_mutex_init(&x->n.mu, NULL);
    pthread_cond_init(&x->n.cv, NULL);
    x->http = fake_http_start(answer, &x->n);
    assert_non_null(x->http);
    const char *url = fake_http_url(x->http);
    x->cs = conns_new(&url, 1, 2000, 5000);
    /* A held poll that feed_stop did not cut short would outlast ctest's
     * timeout (300 s): the watch's request may take this plus its poll. */
    x->f = feed_new(x->cs, 600000, publish, &x->n);
    assert_non_null(x->f);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    fixture *x = *state;
    feed_free(x->f);
    pthread_mutex_lock(&x->n.mu);
    x->n.release = true;
    pthread_cond_broadcast(&x->n.cv);
    pthread_mutex_unlock(&x->n.mu);
    fake_http_stop(x->http);
    conns_free(x->cs);
    snap_unref(x->n.last);
    for (size_t i = 0; i < x->n.nbodies; i++)
        free(x->n.bodies[i]);
    free(x->n.bodies);
    pthread_cond_destroy(&x->n.cv);
    pthread_mutex_destroy(&x->n.mu);
    free(x);
    return 0;
}

static void load_lists_every_prefix(void **state)
{
    fixture *x = *state;
    citrus_error e;
    assert_int_equal(feed_load(x->f, &e), 0);
    assert_int_equal(x->n.published, 1);
    assert_int_equal(x->n.last->revision, 9); /* the oldest page */
    assert_non_null(snap_shard(x->n.last, "a"));
    assert_non_null(snap_shard(x->n.last, "b")); /* from the second page */
    const snap_pin *p = snap_pin_find(x->n.last, "t1");
    assert_non_null(p);
    assert_string_equal(p->shard_id, "a");
    assert_false(feed_watching(x->f));
}

static void bad_listing_publishes_nothing(void **state)
{
    fixture *x = *state;
    x->n.bad_listing = true;
    citrus_error e;
    assert_int_equal(feed_load(x->f, &e), CITRUS_ECORRUPT);
    assert_int_equal(e.code, CITRUS_ECORRUPT);
    assert_non_null(strstr(e.message, "listing citrus/tenants/"));
    assert_non_null(strstr(e.message, "base64"));
    assert_int_equal(x->n.published, 0);
}

static void watch_applies_and_stops_a_held_poll(void **state)
{
    fixture *x = *state;
    assert_int_equal(feed_load(x->f, NULL), 0);
    assert_int_equal(feed_start(x->f), 0);
    assert_true(feed_watching(x->f));
    assert_true(wait_for(&x->n, &x->n.published, 2));
    assert_true(wait_for(&x->n, &x->n.holding, 1)); /* the next poll: no publish until it ends */
    assert_int_equal(x->n.last->revision, 13);
    assert_string_equal(x->n.first_poll, "10&timeout=20s"); /* after the listing's 9 */
    const snap_pin *p = snap_pin_find(x->n.last, "t2");
    assert_non_null(p);
    assert_string_equal(p->shard_id, "b");
    /* Returns while the node still holds the poll: the stop cut it short. */
    feed_stop(x->f);
    assert_false(feed_watching(x->f));
    pthread_mutex_lock(&x->n.mu);
    bool released = x->n.release;
    int published = x->n.published;
    pthread_mutex_unlock(&x->n.mu);
    assert_false(released);
    assert_int_equal(published, 2);
}

static void bad_watch_answer_loads_anew(void **state)
{
    fixture *x = *state;
    x->n.bad_first_watch = true;
    assert_int_equal(feed_load(x->f, NULL), 0);
    assert_int_equal(feed_start(x->f), 0);
    assert_true(wait_for(&x->n, &x->n.published, 2));
    assert_true(wait_for(&x->n, &x->n.holding, 1)); /* polling again after the load */
    feed_stop(x->f);
    assert_int_equal(x->n.shard_lists, 2);
    assert_int_equal(x->n.last->revision, 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(load_lists_every_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_listing_publishes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(watch_applies_and_stops_a_held_poll, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_watch_answer_loads_anew, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
