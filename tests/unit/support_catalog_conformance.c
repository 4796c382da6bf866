/* tests/unit/support_catalog_conformance.c — the catalog store conformance
 * suite (see catalog_conformance.h): etcd-v3 semantics of store.h, checked
 * through the interface only. Waits poll with deadlines; no test depends on
 * randomness. */
#include "catalog_conformance.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "citrus/errors.h"

#define WAIT_MS 30000                      /* generous: only reached when a test fails */
#define UNKNOWN_LEASE 0x7edcba9876543210LL /* never granted in practice */

static const catalog_conformance_factory *factory;

typedef struct fixture {
    store *s;
} fixture;

/* ---- helpers ---------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void deadline_in(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static store *S(void **state)
{
    return ((fixture *)*state)->s;
}

static int64_t rev_now(store *s)
{
    store_status st;
    assert_int_equal(store_status_get(s, &st), 0);
    return st.revision;
}

static int64_t put_lease(store *s, const char *k, const char *v, int64_t lease)
{
    int64_t rev = 0;
    assert_int_equal(
        store_put(s, k, (const unsigned char *)v, strlen(v), lease, -1, NULL, &rev, NULL), 0);
    return rev;
}

static int64_t put(store *s, const char *k, const char *v)
{
    return put_lease(s, k, v, 0);
}

static void get_key(store *s, const char *k, kv_range_res *r)
{
    kv_range_req q = {.key = k};
    assert_int_equal(store_range(s, &q, r), 0);
}

static size_t count_prefix(store *s, const char *prefix)
{
    kv_range_req q = {.key = prefix, .prefix = true, .keys_only = true};
    kv_range_res r;
    assert_int_equal(store_range(s, &q, &r), 0);
    size_t n = r.count;
    kv_range_res_free(&r);
    return n;
}

static void assert_value(const kv_entry *e, const char *v)
{
    assert_int_equal(e->value_len, strlen(v));
    if (e->value_len)
        assert_memory_equal(e->value, v, e->value_len);
}

static void assert_keys(const kv_range_res *r, const char *const *keys, size_t n)
{
    assert_int_equal(r->count, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(r->items[i].key, keys[i]);
}

static int64_t lease_grant(store *s, int64_t ttl, int64_t *granted)
{
    int64_t id = 0, g = 0;
    assert_int_equal(store_lease_grant(s, ttl, &id, &g), 0);
    assert_true(id > 0);
    assert_true(g >= ttl);
    if (granted)
        *granted = g;
    return id;
}

#define PUT_OP(k, v)                                                                               \
    {                                                                                              \
        .type = KV_OP_PUT, .key = (k), .value = (const unsigned char *)(v),                        \
        .value_len = sizeof(v) - 1                                                                 \
    }
#define GET_OP(k)                                                                                  \
    {                                                                                              \
        .type = KV_OP_GET, .key = (k)                                                              \
    }
#define DEL_OP(k)                                                                                  \
    {                                                                                              \
        .type = KV_OP_DELETE, .key = (k)                                                           \
    }

/* ---- watch collector: records every callback and checks the contract --------- */

typedef struct collector {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    kv_event *ev; /* deep copies, in delivery order */
    size_t n, cap;
    size_t calls;     /* callbacks with events */
    int64_t last_rev; /* revision of the last callback */
    int err;          /* first error delivered */
    size_t nerr;
    bool broken; /* mixed revisions in a call, order, overlap, calls after err */
    atomic_int inside;
} collector;

static void collector_init(collector *c)
{
    memset(c, 0, sizeof(*c));
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&c->mu, NULL);
    atomic_init(&c->inside, 0);
}

static void collector_free(collector *c)
{
    for (size_t i = 0; i < c->n; i++)
        kv_entry_clear(&c->ev[i].kv);
    free(c->ev);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cond);
}

static bool collector_push(collector *c, const kv_event *e)
{
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 64;
        kv_event *ev = realloc(c->ev, ncap * sizeof(*ev));
        if (!ev)
            return false;
        c->ev = ev;
        c->cap = ncap;
    }
    kv_event *d = &c->ev[c->n++];
    *d = *e;
    d->kv.key = strdup(e->kv.key);
    d->kv.value = e->kv.value_len ? malloc(e->kv.value_len) : NULL;
    if (d->kv.value)
        memcpy(d->kv.value, e->kv.value, e->kv.value_len);
    return d->kv.key && (d->kv.value || !e->kv.value_len);
}

static void collector_cb(void *ctx, const kv_event *events, size_t n, int err)
{
    collector *c = ctx;
    bool overlap = atomic_fetch_add(&c->inside, 1) != 0;
    pthread_mutex_lock(&c->mu);
    if (overlap || c->nerr || (!err && n == 0))
        c->broken = true;
    if (err) {
        if (!c->nerr)
            c->err = err;
        c->nerr++;
    } else if (n) {
        int64_t rev = events[0].kv.mod_revision;
        if (rev <= c->last_rev)
            c->broken = true;
        c->last_rev = rev;
        for (size_t i = 0; i < n; i++)
            if (events[i].kv.mod_revision != rev || !collector_push(c, &events[i]))
                c->broken = true;
        c->calls++;
    }
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
    atomic_fetch_sub(&c->inside, 1);
}

/* Waits until at least n events (or any error) arrived; true if n did. */
static bool collector_wait(collector *c, size_t n, int64_t timeout_ms)
{
    struct timespec ts;
    deadline_in(&ts, timeout_ms);
    pthread_mutex_lock(&c->mu);
    while (c->n < n && !c->nerr && pthread_cond_timedwait(&c->cond, &c->mu, &ts) != ETIMEDOUT)
        ;
    bool ok = c->n >= n;
    pthread_mutex_unlock(&c->mu);
    return ok;
}

static size_t collector_count(collector *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->n;
    pthread_mutex_unlock(&c->mu);
    return n;
}

static store_watch *watch(store *s, const char *prefix, int64_t from, collector *c)
{
    store_watch *w = NULL;
    int64_t compact = -1;
    assert_int_equal(store_watch_open(s, prefix, from, collector_cb, c, &w, &compact), 0);
    assert_non_null(w);
    return w;
}

static void assert_event(const kv_event *e, kv_event_type type, const char *key, const char *value,
                         int64_t create, int64_t mod, int64_t version)
{
    assert_int_equal(e->type, type);
    assert_string_equal(e->kv.key, key);
    assert_value(&e->kv, value);
    assert_int_equal(e->kv.create_revision, create);
    assert_int_equal(e->kv.mod_revision, mod);
    assert_int_equal(e->kv.version, version);
}

/* ---- setup ---------------------------------------------------------------------- */

static int conf_setup(void **state)
{
    fixture *fx = calloc(1, sizeof(*fx));
    if (!fx)
        return -1;
    if (factory->open(factory->ctx, &fx->s) != 0 || !fx->s) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int conf_teardown(void **state)
{
    fixture *fx = *state;
    if (fx) {
        factory->close(factory->ctx, fx->s);
        free(fx);
    }
    return 0;
}

/* ---- revisions and keys ----------------------------------------------------------- */

static void test_revision_per_txn(void **state)
{
    store *s = S(state);
    int64_t r0 = rev_now(s);
    assert_true(r0 >= 0);
    assert_int_equal(put(s, "rev/a", "1"), r0 + 1);
    assert_int_equal(rev_now(s), r0 + 1);
    assert_int_equal(put(s, "rev/b", "2"), r0 + 2);

    kv_op ops[] = {PUT_OP("rev/c", "3"), PUT_OP("rev/d", "4"), PUT_OP("rev/a", "5")};
    kv_txn t = {.success = ops, .nsuccess = 3};
    kv_txn_res res;
    assert_int_equal(store_txn(s, &t, &res), 0);
    assert_true(res.succeeded);
    assert_int_equal(res.revision, r0 + 3);
    assert_int_equal(res.count, 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(res.results[i].mod_revision, r0 + 3);
    kv_txn_res_free(&res);

    kv_op get = GET_OP("rev/a");
    t = (kv_txn){.success = &get, .nsuccess = 1};
    assert_int_equal(store_txn(s, &t, &res), 0);
    assert_int_equal(res.revision, r0 + 3);
    kv_txn_res_free(&res);

    int64_t deleted = -1, rev = 0, cur = -1;
    assert_int_equal(store_delete(s, "rev/none", false, -1, &deleted, &rev, NULL), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(rev, r0 + 3);
    assert_int_equal(store_put(s, "rev/a", (const unsigned char *)"x", 1, 0, 1, NULL, NULL, &cur),
                     CITRUS_ECONFLICT);
    assert_int_equal(rev_now(s), r0 + 3);
    assert_int_equal(put(s, "rev/e", "6"), r0 + 4);

    kv_range_res r;
    get_key(s, "rev/a", &r);
    assert_int_equal(r.revision, r0 + 4);
    kv_range_res_free(&r);
}

static void test_key_bookkeeping(void **state)
{
    store *s = S(state);
    kv_op_result out;
    int64_t r1 = 0, r2 = 0, r3 = 0, deleted = 0;
    assert_int_equal(store_put(s, "bk/k", (const unsigned char *)"a", 1, 0, -1, &out, &r1, NULL),
                     0);
    assert_int_equal(out.create_revision, r1);
    assert_int_equal(out.mod_revision, r1);
    assert_int_equal(out.version, 1);
    kv_range_res r;
    get_key(s, "bk/k", &r);
    assert_int_equal(r.count, 1);
    assert_string_equal(r.items[0].key, "bk/k");
    assert_value(&r.items[0], "a");
    assert_int_equal(r.items[0].create_revision, r1);
    assert_int_equal(r.items[0].mod_revision, r1);
    assert_int_equal(r.items[0].version, 1);
    assert_int_equal(r.items[0].lease, 0);
    kv_range_res_free(&r);

    assert_int_equal(store_put(s, "bk/k", (const unsigned char *)"bb", 2, 0, -1, &out, &r2, NULL),
                     0);
    assert_int_equal(r2, r1 + 1);
    assert_int_equal(out.create_revision, r1);
    assert_int_equal(out.mod_revision, r2);
    assert_int_equal(out.version, 2);
    get_key(s, "bk/k", &r);
    assert_value(&r.items[0], "bb");
    assert_int_equal(r.items[0].create_revision, r1);
    assert_int_equal(r.items[0].mod_revision, r2);
    assert_int_equal(r.items[0].version, 2);
    kv_range_res_free(&r);

    assert_int_equal(store_delete(s, "bk/k", false, -1, &deleted, &r3, NULL), 0);
    assert_int_equal(deleted, 1);
    assert_int_equal(r3, r2 + 1);
    get_key(s, "bk/k", &r);
    assert_int_equal(r.count, 0);
    kv_range_res_free(&r);

    int64_t r4 = put(s, "bk/k", "");
    assert_int_equal(r4, r3 + 1);
    get_key(s, "bk/k", &r);
    assert_int_equal(r.count, 1);
    assert_int_equal(r.items[0].create_revision, r4);
    assert_int_equal(r.items[0].mod_revision, r4);
    assert_int_equal(r.items[0].version, 1);
    assert_int_equal(r.items[0].value_len, 0);
    kv_range_res_free(&r);
}

static void test_get_absent(void **state)
{
    store *s = S(state);
    put(s, "ga/x", "1");
    const char *absent[] = {"ga/y", "ga", "ga/x/", "zz"};
    for (size_t i = 0; i < 4; i++) {
        kv_range_res r;
        get_key(s, absent[i], &r);
        assert_int_equal(r.count, 0);
        assert_false(r.more);
        assert_int_equal(r.revision, rev_now(s));
        kv_range_res_free(&r);
    }
}

static void test_bad_key(void **state)
{
    store *s = S(state);
    int64_t r0 = rev_now(s);
    assert_true(store_put(s, "", (const unsigned char *)"v", 1, 0, -1, NULL, NULL, NULL) < 0);
    assert_int_equal(rev_now(s), r0);
}

/* ---- ranges ------------------------------------------------------------------------- */

static void test_range_bytewise(void **state)
{
    store *s = S(state);
    const char *keys[] = {"p/b", "p/a", "p/\x80x", "p/\xff", "p/B",      "p/a/x", "p/\x7f",    "p/",
                          "p0",  "o",   "p",       "\xff",   "\xff\xff", "\xfe",  "p/\xff\x01"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char v[64];
        snprintf(v, sizeof(v), "v:%s", keys[i]);
        put(s, keys[i], v);
    }
    const char *want[] = {"p/",     "p/B",     "p/a",    "p/a/x",     "p/b",
                          "p/\x7f", "p/\x80x", "p/\xff", "p/\xff\x01"};
    kv_range_req q = {.key = "p/", .prefix = true};
    kv_range_res r;
    assert_int_equal(store_range(s, &q, &r), 0);
    assert_keys(&r, want, 9);
    for (size_t i = 0; i < r.count; i++) {
        char v[64];
        snprintf(v, sizeof(v), "v:%s", want[i]);
        assert_value(&r.items[i], v);
        assert_int_equal(r.items[i].version, 1);
    }
    assert_false(r.more);
    assert_int_equal(r.revision, rev_now(s));
    kv_range_res_free(&r);

    const char *want_ff[] = {"p/\xff", "p/\xff\x01"};
    q.key = "p/\xff";
    assert_int_equal(store_range(s, &q, &r), 0);
    assert_keys(&r, want_ff, 2);
    kv_range_res_free(&r);

    const char *want_top[] = {"\xff", "\xff\xff"}; /* a prefix with no upper bound */
    q.key = "\xff";
    assert_int_equal(store_range(s, &q, &r), 0);
    assert_keys(&r, want_top, 2);
    kv_range_res_free(&r);
}

static void test_range_limit_after(void **state)
{
    store *s = S(state);
    char k[16], v[16];
    for (int i = 0; i < 10; i++) {
        snprintf(k, sizeof(k), "k/%d", i);
        snprintf(v, sizeof(v), "%d", i);
        put(s, k, v);
    }
    put(s, "k0", "outside");
    put(s, "j", "outside");
    struct {
        const char *after;
        size_t limit;
        int first, count;
        bool more;
    } cases[] = {
        {NULL, 3, 0, 3, true},   {"k/2", 3, 3, 3, true},  {"k/6", 3, 7, 3, false},
        {"k/8", 3, 9, 1, false}, {"k/9", 3, 0, 0, false}, {NULL, 10, 0, 10, false},
        {NULL, 0, 0, 10, false}, {"a", 2, 0, 2, true},    {"k/", 0, 0, 10, false},
        {"k/3x", 2, 4, 2, true}, {"k/9", 0, 0, 0, false},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        kv_range_req q = {
            .key = "k/", .prefix = true, .after = cases[c].after, .limit = cases[c].limit};
        kv_range_res r;
        assert_int_equal(store_range(s, &q, &r), 0);
        assert_int_equal(r.count, (size_t)cases[c].count);
        assert_int_equal(r.more, cases[c].more);
        for (size_t i = 0; i < r.count; i++) {
            snprintf(k, sizeof(k), "k/%d", cases[c].first + (int)i);
            assert_string_equal(r.items[i].key, k);
            assert_int_equal(r.items[i].value_len, 1);
        }
        kv_range_res_free(&r);
    }

    /* paging with after = last key sees every key once, in order */
    char after[16] = "";
    int seen = 0;
    for (bool more = true; more;) {
        kv_range_req q = {.key = "k/", .prefix = true, .after = seen ? after : NULL, .limit = 4};
        kv_range_res r;
        assert_int_equal(store_range(s, &q, &r), 0);
        for (size_t i = 0; i < r.count; i++, seen++) {
            snprintf(k, sizeof(k), "k/%d", seen);
            assert_string_equal(r.items[i].key, k);
        }
        more = r.more;
        if (r.count)
            snprintf(after, sizeof(after), "%s", r.items[r.count - 1].key);
        kv_range_res_free(&r);
    }
    assert_int_equal(seen, 10);

    kv_range_req q = {.key = "k/", .prefix = true, .keys_only = true};
    kv_range_res r;
    assert_int_equal(store_range(s, &q, &r), 0);
    assert_int_equal(r.count, 10);
    for (size_t i = 0; i < r.count; i++) {
        assert_null(r.items[i].value);
        assert_int_equal(r.items[i].value_len, 0);
        assert_int_equal(r.items[i].version, 1);
        assert_true(r.items[i].mod_revision > 0);
    }
    kv_range_res_free(&r);
    q = (kv_range_req){.key = "k/5", .keys_only = true};
    assert_int_equal(store_range(s, &q, &r), 0);
    assert_int_equal(r.count, 1);
    assert_null(r.items[0].value);
    kv_range_res_free(&r);
}

static void test_range_all(void **state)
{
    store *s = S(state);
    put(s, "z", "3");
    put(s, "a", "1");
    put(s, "b/c", "2");
    const char *want[] = {"a", "b/c", "z"};
    kv_range_req q = {.key = "", .prefix = true};
    kv_range_res r;
    assert_int_equal(store_range(s, &q, &r), 0);
    assert_keys(&r, want, 3);
    kv_range_res_free(&r);
    q.limit = 2;
    assert_int_equal(store_range(s, &q, &r), 0);
    assert_keys(&r, want, 2);
    assert_true(r.more);
    kv_range_res_free(&r);
}

/* count_only: how many keys match, with no items; limit does not cut it,
 * after does; a single key counts 0 or 1; the whole keyspace too. */
static void test_range_count_only(void **state)
{
    store *s = S(state);
    char k[16];
    for (int i = 0; i < 25; i++) {
        snprintf(k, sizeof(k), "c/%02d", i);
        put(s, k, "v");
    }
    put(s, "c0", "outside");
    put(s, "b", "outside");
    struct {
        const char *key;
        bool prefix;
        const char *after;
        size_t limit;
        size_t want;
    } cases[] = {
        {"c/", true, NULL, 0, 25},   {"c/", true, NULL, 3, 25},   {"c/", true, "c/09", 0, 15},
        {"c/", true, "c/24", 0, 0},  {"c/1", true, NULL, 0, 10},  {"d/", true, NULL, 0, 0},
        {"c/07", false, NULL, 0, 1}, {"c/99", false, NULL, 0, 0}, {"", true, NULL, 0, 27},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        kv_range_req q = {.key = cases[c].key,
                          .prefix = cases[c].prefix,
                          .after = cases[c].after,
                          .limit = cases[c].limit,
                          .count_only = true};
        kv_range_res r;
        assert_int_equal(store_range(s, &q, &r), 0);
        assert_int_equal(r.count, cases[c].want);
        assert_null(r.items);
        assert_false(r.more);
        assert_true(r.revision > 0);
        kv_range_res_free(&r);
    }
}

/* ---- put and delete with compare ------------------------------------------------------- */

static void test_put_cas(void **state)
{
    store *s = S(state);
    const unsigned char *two = (const unsigned char *)"2";
    int64_t r1 = put(s, "cas/k", "1"), cur = -1, rev = 0;
    kv_op_result out;
    assert_int_equal(store_put(s, "cas/k", two, 1, 0, 0, NULL, NULL, &cur), CITRUS_ECONFLICT);
    assert_int_equal(cur, r1);
    cur = -1;
    assert_int_equal(store_put(s, "cas/k", two, 1, 0, r1 + 5, NULL, NULL, &cur), CITRUS_ECONFLICT);
    assert_int_equal(cur, r1);
    assert_int_equal(rev_now(s), r1);
    assert_int_equal(store_put(s, "cas/k", two, 1, 0, r1, &out, &rev, NULL), 0);
    assert_int_equal(rev, r1 + 1);
    assert_int_equal(out.mod_revision, r1 + 1);
    assert_int_equal(out.version, 2);
    assert_int_equal(store_put(s, "cas/k", two, 1, 0, r1, NULL, NULL, &cur), CITRUS_ECONFLICT);
    assert_int_equal(cur, r1 + 1);

    assert_int_equal(store_put(s, "cas/new", two, 1, 0, 0, NULL, &rev, NULL), 0);
    assert_int_equal(store_put(s, "cas/new", two, 1, 0, 0, NULL, NULL, &cur), CITRUS_ECONFLICT);
    assert_int_equal(cur, rev);
    cur = -1;
    assert_int_equal(store_put(s, "cas/absent", two, 1, 0, 7, NULL, NULL, &cur), CITRUS_ECONFLICT);
    assert_int_equal(cur, 0);
    kv_range_res r;
    get_key(s, "cas/k", &r);
    assert_value(&r.items[0], "2");
    kv_range_res_free(&r);
}

static void test_delete_counts(void **state)
{
    store *s = S(state);
    put(s, "d/1", "1");
    put(s, "d/2", "2");
    put(s, "d/3/x", "3");
    put(s, "d", "not under d/");
    put(s, "e/1", "4");
    int64_t r = rev_now(s), deleted = -1, rev = 0;
    assert_int_equal(store_delete(s, "d/", true, -1, &deleted, &rev, NULL), 0);
    assert_int_equal(deleted, 3);
    assert_int_equal(rev, r + 1);
    assert_int_equal(count_prefix(s, "d/"), 0);
    assert_int_equal(count_prefix(s, "d"), 1);
    assert_int_equal(store_delete(s, "e/1", false, -1, &deleted, &rev, NULL), 0);
    assert_int_equal(deleted, 1);
    assert_int_equal(rev, r + 2);
    assert_int_equal(store_delete(s, "e/1", false, -1, &deleted, &rev, NULL), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(rev, r + 2);
    assert_int_equal(store_delete(s, "zz/", true, -1, &deleted, &rev, NULL), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(rev_now(s), r + 2);
}

static void test_delete_cas(void **state)
{
    store *s = S(state);
    int64_t rp = put(s, "dc/k", "1"), cur = -1, deleted = -1, rev = 0;
    assert_int_equal(store_delete(s, "dc/k", false, rp + 1, &deleted, NULL, &cur),
                     CITRUS_ECONFLICT);
    assert_int_equal(cur, rp);
    assert_int_equal(store_delete(s, "dc/k", false, 0, &deleted, NULL, &cur), CITRUS_ECONFLICT);
    assert_int_equal(count_prefix(s, "dc/"), 1);
    assert_int_equal(store_delete(s, "dc/k", false, rp, &deleted, &rev, NULL), 0);
    assert_int_equal(deleted, 1);
    assert_int_equal(rev, rp + 1);
    assert_int_equal(store_delete(s, "dc/k", false, 0, &deleted, &rev, NULL), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(rev_now(s), rp + 1);
    assert_int_equal(store_delete(s, "dc/", true, 0, &deleted, NULL, NULL), CITRUS_EINVAL);
}

/* ---- txn ------------------------------------------------------------------------------- */

static bool cmp_expect(kv_cmp_op op, int sign) /* sign of (actual - operand) */
{
    switch (op) {
    case KV_CMP_EQ:
        return sign == 0;
    case KV_CMP_NE:
        return sign != 0;
    case KV_CMP_LT:
        return sign < 0;
    case KV_CMP_GT:
        return sign > 0;
    }
    return false;
}

/* Runs "if cmp then get key else get absent" and checks the branch taken. */
static void check_compare(store *s, const kv_compare *cmp, bool expect)
{
    kv_op yes = GET_OP(cmp->key), no = GET_OP("cmp/absent");
    kv_txn t = {.compares = cmp,
                .ncompares = 1,
                .success = &yes,
                .nsuccess = 1,
                .failure = &no,
                .nfailure = 1};
    kv_txn_res res;
    assert_int_equal(store_txn(s, &t, &res), 0);
    if (res.succeeded != expect)
        fail_msg("compare target %d op %d number %lld value_len %zu on %s: got %d, want %d",
                 (int)cmp->target, (int)cmp->op, (long long)cmp->number, cmp->value_len, cmp->key,
                 res.succeeded, expect);
    assert_int_equal(res.count, 1);
    assert_int_equal(res.results[0].type, KV_OP_GET);
    kv_range_res r = res.results[0].range;
    assert_int_equal(r.count, expect && strcmp(cmp->key, "cmp/k") == 0 ? 1 : 0);
    kv_txn_res_free(&res);
}

static void check_numeric_compares(store *s, kv_cmp_target target, int64_t actual)
{
    for (kv_cmp_op op = KV_CMP_EQ; op <= KV_CMP_GT; op++)
        for (int delta = -1; delta <= 1; delta++) {
            kv_compare c = {.key = "cmp/k", .target = target, .op = op, .number = actual + delta};
            check_compare(s, &c, cmp_expect(op, -delta));
        }
}

static void test_txn_compares(void **state)
{
    store *s = S(state);
    int64_t lease = lease_grant(s, 60, NULL);
    int64_t a = put_lease(s, "cmp/k", "m", lease);
    int64_t b = put_lease(s, "cmp/k", "m", lease);
    int64_t r0 = rev_now(s);
    check_numeric_compares(s, KV_CMP_CREATE, a);
    check_numeric_compares(s, KV_CMP_MOD, b);
    check_numeric_compares(s, KV_CMP_VERSION, 2);
    check_numeric_compares(s, KV_CMP_LEASE, lease);
    struct {
        const char *v;
        int sign; /* of "m" - v */
    } values[] = {{"", 1}, {"l", 1}, {"m", 0}, {"ma", -1}, {"n", -1}, {"\x80", -1}};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
        for (kv_cmp_op op = KV_CMP_EQ; op <= KV_CMP_GT; op++) {
            kv_compare c = {.key = "cmp/k",
                            .target = KV_CMP_VALUE,
                            .op = op,
                            .value = (const unsigned char *)values[i].v,
                            .value_len = strlen(values[i].v)};
            check_compare(s, &c, cmp_expect(op, values[i].sign));
        }
    /* an absent key: value "", every number 0 */
    kv_compare absent[] = {
        {.key = "cmp/none", .target = KV_CMP_VERSION, .op = KV_CMP_EQ, .number = 0},
        {.key = "cmp/none", .target = KV_CMP_MOD, .op = KV_CMP_EQ, .number = 0},
        {.key = "cmp/none", .target = KV_CMP_CREATE, .op = KV_CMP_EQ, .number = 0},
        {.key = "cmp/none", .target = KV_CMP_LEASE, .op = KV_CMP_EQ, .number = 0},
        {.key = "cmp/none", .target = KV_CMP_VALUE, .op = KV_CMP_EQ},
        {.key = "cmp/none",
         .target = KV_CMP_VALUE,
         .op = KV_CMP_NE,
         .value = (const unsigned char *)"x",
         .value_len = 1},
        {.key = "cmp/none",
         .target = KV_CMP_VALUE,
         .op = KV_CMP_LT,
         .value = (const unsigned char *)"x",
         .value_len = 1},
    };
    for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
        check_compare(s, &absent[i], true);
    kv_compare absent_false[] = {
        {.key = "cmp/none", .target = KV_CMP_VERSION, .op = KV_CMP_GT},
        {.key = "cmp/none", .target = KV_CMP_VALUE, .op = KV_CMP_NE},
        {.key = "cmp/none", .target = KV_CMP_VALUE, .op = KV_CMP_GT},
        {.key = "cmp/none",
         .target = KV_CMP_VALUE,
         .op = KV_CMP_EQ,
         .value = (const unsigned char *)"x",
         .value_len = 1},
    };
    for (size_t i = 0; i < sizeof(absent_false) / sizeof(absent_false[0]); i++)
        check_compare(s, &absent_false[i], false);
    assert_int_equal(rev_now(s), r0);

    /* every compare must hold; the branch's writes are the ones applied */
    kv_compare both[] = {
        {.key = "cmp/k", .target = KV_CMP_VERSION, .op = KV_CMP_EQ, .number = 2},
        {.key = "cmp/k",
         .target = KV_CMP_VALUE,
         .op = KV_CMP_EQ,
         .value = (const unsigned char *)"x",
         .value_len = 1},
    };
    kv_op yes = PUT_OP("cmp/yes", "1"), no = PUT_OP("cmp/no", "1");
    kv_txn t = {.compares = both,
                .ncompares = 2,
                .success = &yes,
                .nsuccess = 1,
                .failure = &no,
                .nfailure = 1};
    kv_txn_res res;
    assert_int_equal(store_txn(s, &t, &res), 0);
    assert_false(res.succeeded);
    assert_int_equal(res.revision, r0 + 1);
    kv_txn_res_free(&res);
    assert_int_equal(count_prefix(s, "cmp/no"), 1);
    assert_int_equal(count_prefix(s, "cmp/yes"), 0);
    t.ncompares = 1;
    assert_int_equal(store_txn(s, &t, &res), 0);
    assert_true(res.succeeded);
    kv_txn_res_free(&res);
    assert_int_equal(count_prefix(s, "cmp/yes"), 1);
}

static void test_txn_atomic(void **state)
{
    store *s = S(state);
    put(s, "at/x", "0");
    int64_t r0 = rev_now(s);
    kv_op ops[] = {PUT_OP("at/a", "1"), PUT_OP("at/b", "2")};
    ops[1].lease = UNKNOWN_LEASE;
    kv_txn t = {.success = ops, .nsuccess = 2};
    kv_txn_res res;
    assert_int_equal(store_txn(s, &t, &res), CITRUS_ENOLEASE);
    assert_int_equal(count_prefix(s, "at/a"), 0);
    assert_int_equal(rev_now(s), r0);

    kv_op ops2[] = {DEL_OP("at/x"), PUT_OP("at/c", "3")};
    ops2[1].lease = UNKNOWN_LEASE;
    t = (kv_txn){.success = ops2, .nsuccess = 2};
    assert_int_equal(store_txn(s, &t, &res), CITRUS_ENOLEASE);
    assert_int_equal(count_prefix(s, "at/x"), 1);
    assert_int_equal(rev_now(s), r0);

    kv_compare no = {.key = "at/x", .target = KV_CMP_VERSION, .op = KV_CMP_EQ, .number = 9};
    t = (kv_txn){.compares = &no, .ncompares = 1, .failure = ops2, .nfailure = 2};
    assert_int_equal(store_txn(s, &t, &res), CITRUS_ENOLEASE);
    assert_int_equal(count_prefix(s, "at/x"), 1);
    assert_int_equal(put(s, "at/d", "4"), r0 + 1);
}

static void test_txn_one_revision(void **state)
{
    store *s = S(state);
    put(s, "sr/0", "z");
    int64_t r0 = rev_now(s);
    kv_op ops[] = {PUT_OP("sr/1", "a"), PUT_OP("sr/2", "b"), DEL_OP("sr/0")};
    kv_txn t = {.success = ops, .nsuccess = 3};
    kv_txn_res res;
    assert_int_equal(store_txn(s, &t, &res), 0);
    assert_int_equal(res.revision, r0 + 1);
    assert_int_equal(res.results[0].type, KV_OP_PUT);
    assert_int_equal(res.results[0].mod_revision, r0 + 1);
    assert_int_equal(res.results[0].create_revision, r0 + 1);
    assert_int_equal(res.results[1].mod_revision, r0 + 1);
    assert_int_equal(res.results[2].type, KV_OP_DELETE);
    assert_int_equal(res.results[2].deleted, 1);
    kv_txn_res_free(&res);
    assert_int_equal(rev_now(s), r0 + 1);
    kv_range_res r;
    get_key(s, "sr/2", &r);
    assert_int_equal(r.items[0].mod_revision, r0 + 1);
    kv_range_res_free(&r);
}

static void test_txn_get_inside(void **state)
{
    store *s = S(state);
    put(s, "gi/d", "x");
    int64_t r1 = put(s, "gi/k", "1");
    kv_op ops[] = {GET_OP("gi/k"), PUT_OP("gi/k", "2"), GET_OP("gi/k"), DEL_OP("gi/d"),
                   GET_OP("gi/d")};
    kv_txn t = {.success = ops, .nsuccess = 5};
    kv_txn_res res;
    assert_int_equal(store_txn(s, &t, &res), 0);
    assert_int_equal(res.count, 5);
    assert_int_equal(res.revision, r1 + 1);
    const kv_range_res *g0 = &res.results[0].range, *g1 = &res.results[2].range;
    assert_int_equal(g0->count, 1);
    assert_value(&g0->items[0], "1");
    assert_int_equal(g0->items[0].mod_revision, r1);
    assert_int_equal(res.results[1].mod_revision, r1 + 1);
    assert_int_equal(res.results[1].version, 2);
    assert_int_equal(g1->count, 1);
    assert_value(&g1->items[0], "2");
    assert_int_equal(g1->items[0].mod_revision, r1 + 1);
    assert_int_equal(res.results[3].deleted, 1);
    assert_int_equal(res.results[4].range.count, 0);
    kv_txn_res_free(&res);
    assert_int_equal(count_prefix(s, "gi/"), 1);
    assert_int_equal(rev_now(s), r1 + 1);
}

/* As etcd: a branch that writes one key twice is refused, applying nothing. */
static void test_txn_duplicate_writes_rejected(void **state)
{
    store *s = S(state);
    int64_t r0 = put(s, "dw/k", "0");
    kv_op two_puts[] = {PUT_OP("dw/k", "1"), PUT_OP("dw/k", "2")};
    kv_op put_del[] = {PUT_OP("dw/k", "1"), DEL_OP("dw/k")};
    kv_op in_range[] = {{.type = KV_OP_DELETE, .key = "dw/", .prefix = true}, PUT_OP("dw/k", "1")};
    kv_op two_dels[] = {DEL_OP("dw/k"), {.type = KV_OP_DELETE, .key = "dw/", .prefix = true}};
    kv_txn bad[] = {{.success = two_puts, .nsuccess = 2},
                    {.failure = put_del, .nfailure = 2},
                    {.success = in_range, .nsuccess = 2}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        kv_txn_res res;
        assert_int_equal(store_txn(s, &bad[i], &res), CITRUS_EINVAL);
        kv_txn_res_free(&res);
    }
    assert_int_equal(rev_now(s), r0);
    kv_txn ok = {.success = two_dels, .nsuccess = 2};
    kv_txn_res res;
    assert_int_equal(store_txn(s, &ok, &res), 0);
    assert_int_equal(res.revision, r0 + 1);
    kv_txn_res_free(&res);
}

/* store_txn_async: every completion runs exactly once with the result in
 * place; 64 writes in flight at once land at 64 distinct revisions. */
#define ASYNC_N 64
typedef struct async_state {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int rcs[ASYNC_N];
    int calls[ASYNC_N];
} async_state;

typedef struct async_slot {
    async_state *st;
    int i;
} async_slot;

static void async_cb(void *ctx, int rc)
{
    async_slot *slot = ctx;
    pthread_mutex_lock(&slot->st->mu);
    slot->st->rcs[slot->i] = rc;
    slot->st->calls[slot->i]++;
    slot->st->done++;
    pthread_cond_broadcast(&slot->st->cv);
    pthread_mutex_unlock(&slot->st->mu);
}

static void test_txn_async(void **state)
{
    store *s = S(state);
    int64_t r0 = rev_now(s);
    static async_state st = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}, {0}};
    st.done = 0;
    memset(st.calls, 0, sizeof(st.calls));
    static char keys[ASYNC_N][16];
    static kv_op ops[ASYNC_N];
    static kv_txn txns[ASYNC_N];
    static kv_txn_res res[ASYNC_N];
    static async_slot slots[ASYNC_N];
    for (int i = 0; i < ASYNC_N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "as/%02d", i);
        ops[i] = (kv_op){
            .type = KV_OP_PUT, .key = keys[i], .value = (const unsigned char *)"v", .value_len = 1};
        txns[i] = (kv_txn){.success = &ops[i], .nsuccess = 1};
        slots[i] = (async_slot){&st, i};
        store_txn_async(s, &txns[i], &res[i], async_cb, &slots[i]);
    }
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 20;
    pthread_mutex_lock(&st.mu);
    while (st.done < ASYNC_N && pthread_cond_timedwait(&st.cv, &st.mu, &dl) == 0) {
    }
    pthread_mutex_unlock(&st.mu);
    assert_int_equal(st.done, ASYNC_N);
    bool seen[ASYNC_N] = {false};
    for (int i = 0; i < ASYNC_N; i++) {
        assert_int_equal(st.calls[i], 1);
        assert_int_equal(st.rcs[i], 0);
        assert_true(res[i].succeeded);
        int64_t rev = res[i].revision - r0 - 1;
        assert_true(rev >= 0 && rev < ASYNC_N);
        assert_false(seen[rev]);
        seen[rev] = true;
        kv_txn_res_free(&res[i]);
    }
    assert_int_equal(rev_now(s), r0 + ASYNC_N);
    /* an invalid txn completes too, with its error */
    kv_op dup[] = {PUT_OP("as/x", "1"), PUT_OP("as/x", "2")};
    kv_txn bad = {.success = dup, .nsuccess = 2};
    kv_txn_res bres;
    st.done = 0;
    slots[0].i = 0;
    store_txn_async(s, &bad, &bres, async_cb, &slots[0]);
    pthread_mutex_lock(&st.mu);
    while (st.done < 1)
        pthread_cond_wait(&st.cv, &st.mu);
    pthread_mutex_unlock(&st.mu);
    assert_int_equal(st.rcs[0], CITRUS_EINVAL);
    kv_txn_res_free(&bres);
}

/* ---- watches ----------------------------------------------------------------------------- */

static void test_watch_history(void **state)
{
    store *s = S(state);
    int64_t r1 = put(s, "h/a", "1");
    int64_t r2 = put(s, "h/b", "2");
    int64_t r3 = put(s, "h/a", "3");
    int64_t r4 = 0, deleted;
    assert_int_equal(store_delete(s, "h/b", false, -1, &deleted, &r4, NULL), 0);
    kv_op ops[] = {PUT_OP("h/c", "4"), PUT_OP("h/d", "5")};
    kv_txn t = {.success = ops, .nsuccess = 2};
    kv_txn_res res;
    assert_int_equal(store_txn(s, &t, &res), 0);
    int64_t r5 = res.revision;
    kv_txn_res_free(&res);

    collector c;
    collector_init(&c);
    store_watch *w = watch(s, "h/", r1, &c);
    assert_true(collector_wait(&c, 6, WAIT_MS));
    assert_event(&c.ev[0], KV_EVENT_PUT, "h/a", "1", r1, r1, 1);
    assert_event(&c.ev[1], KV_EVENT_PUT, "h/b", "2", r2, r2, 1);
    assert_event(&c.ev[2], KV_EVENT_PUT, "h/a", "3", r1, r3, 2);
    assert_event(&c.ev[3], KV_EVENT_DELETE, "h/b", "", 0, r4, 0);
    assert_null(c.ev[3].kv.value);
    assert_event(&c.ev[4], KV_EVENT_PUT, "h/c", "4", r5, r5, 1);
    assert_event(&c.ev[5], KV_EVENT_PUT, "h/d", "5", r5, r5, 1);
    store_watch_close(s, w);
    assert_int_equal(c.calls, 5);
    assert_false(c.broken);
    assert_int_equal(c.nerr, 0);
    collector_free(&c);

    collector_init(&c);
    w = watch(s, "h/", r3, &c);
    assert_true(collector_wait(&c, 4, WAIT_MS));
    assert_event(&c.ev[0], KV_EVENT_PUT, "h/a", "3", r1, r3, 2);
    store_watch_close(s, w);
    assert_int_equal(c.n, 4);
    collector_free(&c);
}

static void test_watch_prefix(void **state)
{
    store *s = S(state);
    collector c;
    collector_init(&c);
    store_watch *w = watch(s, "w/", 0, &c);
    int64_t ra = put(s, "w/a", "1");
    put(s, "x/b", "2");
    int64_t rc = put(s, "w/c", "3");
    put(s, "w", "4");
    put(s, "x/w/d", "5");
    int64_t rd = 0, deleted = 0;
    assert_int_equal(store_delete(s, "w/", true, -1, &deleted, &rd, NULL), 0);
    int64_t rz = put(s, "w/z", "6");
    assert_true(collector_wait(&c, 5, WAIT_MS));
    store_watch_close(s, w);
    assert_int_equal(c.n, 5);
    assert_event(&c.ev[0], KV_EVENT_PUT, "w/a", "1", ra, ra, 1);
    assert_event(&c.ev[1], KV_EVENT_PUT, "w/c", "3", rc, rc, 1);
    assert_event(&c.ev[2], KV_EVENT_DELETE, "w/a", "", 0, rd, 0);
    assert_event(&c.ev[3], KV_EVENT_DELETE, "w/c", "", 0, rd, 0);
    assert_event(&c.ev[4], KV_EVENT_PUT, "w/z", "6", rz, rz, 1);
    assert_int_equal(c.calls, 4);
    assert_false(c.broken);
    collector_free(&c);
}

static void test_watch_live(void **state)
{
    store *s = S(state);
    put(s, "lv/old", "0");
    collector c;
    collector_init(&c);
    store_watch *w = watch(s, "lv/", 0, &c);
    int64_t r1 = put(s, "lv/a", "1");
    assert_true(collector_wait(&c, 1, WAIT_MS));
    assert_event(&c.ev[0], KV_EVENT_PUT, "lv/a", "1", r1, r1, 1);
    int64_t r2 = put(s, "lv/b", "2");
    assert_true(collector_wait(&c, 2, WAIT_MS));
    assert_event(&c.ev[1], KV_EVENT_PUT, "lv/b", "2", r2, r2, 1);
    store_watch_close(s, w);
    assert_int_equal(c.n, 2);
    assert_false(c.broken);
    collector_free(&c);
}

#define MW_THREADS 4
#define MW_WRITES 500
#define MW_TOTAL ((int64_t)MW_THREADS * MW_WRITES)

typedef struct mw_arg {
    store *s;
    int id;
    int failures;
} mw_arg;

/* Writes its own keys; every acknowledged write must be readable at once. */
static void *mw_writer(void *p)
{
    mw_arg *a = p;
    for (int i = 0; i < MW_WRITES; i++) {
        char k[32];
        snprintf(k, sizeof(k), "mw/%d/%04d", a->id, i);
        int64_t rev = 0;
        if (store_put(a->s, k, (const unsigned char *)k, strlen(k), 0, -1, NULL, &rev, NULL)) {
            a->failures++;
            continue;
        }
        kv_range_req q = {.key = k};
        kv_range_res r;
        if (store_range(a->s, &q, &r) || r.count != 1 || r.items[0].mod_revision != rev ||
            r.revision < rev)
            a->failures++;
        kv_range_res_free(&r);
    }
    return NULL;
}

static void check_mw_events(collector *c, int64_t r0)
{
    int next[MW_THREADS] = {0};
    assert_false(c->broken);
    assert_int_equal(c->n, MW_TOTAL);
    assert_int_equal(c->calls, MW_TOTAL);
    for (size_t i = 0; i < c->n; i++) {
        int t = -1, idx = -1;
        assert_int_equal(c->ev[i].kv.mod_revision, r0 + 1 + (int64_t)i);
        assert_int_equal(sscanf(c->ev[i].kv.key, "mw/%d/%d", &t, &idx), 2);
        assert_true(t >= 0 && t < MW_THREADS);
        assert_int_equal(idx, next[t]++);
    }
}

static void test_watch_many_writers(void **state)
{
    store *s = S(state);
    int64_t r0 = rev_now(s);
    collector live, late;
    collector_init(&live);
    collector_init(&late);
    store_watch *wl = watch(s, "mw/", 0, &live);
    pthread_t th[MW_THREADS];
    mw_arg args[MW_THREADS];
    for (int i = 0; i < MW_THREADS; i++) {
        args[i] = (mw_arg){.s = s, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, mw_writer, &args[i]), 0);
    }
    /* a second watcher starts in the past while writes go on: catch-up, then live */
    int64_t until = now_ms() + WAIT_MS;
    while (rev_now(s) < r0 + MW_TOTAL / 2 && now_ms() < until)
        sleep_ms(2);
    store_watch *wlate = watch(s, "mw/", r0 + 1, &late);
    for (int i = 0; i < MW_THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    assert_int_equal(rev_now(s), r0 + MW_TOTAL);
    assert_true(collector_wait(&live, (size_t)MW_TOTAL, WAIT_MS));
    assert_true(collector_wait(&late, (size_t)MW_TOTAL, WAIT_MS));
    store_watch_close(s, wl);
    store_watch_close(s, wlate);
    check_mw_events(&live, r0);
    check_mw_events(&late, r0);
    collector_free(&live);
    collector_free(&late);
}

static void test_watch_compacted(void **state)
{
    if (!factory->compact) {
        print_message("skipped: factory has no compact hook\n");
        skip();
    }
    fixture *fx = *state;
    int64_t r0 = rev_now(fx->s);
    for (int i = 1; i <= 10; i++) {
        char k[16];
        snprintf(k, sizeof(k), "cp/%d", i);
        assert_int_equal(put(fx->s, k, "v"), r0 + i);
    }
    assert_int_equal(factory->compact(factory->ctx, &fx->s, r0 + 6), 0);
    store *s = fx->s;
    assert_non_null(s);
    store_status st;
    assert_int_equal(store_status_get(s, &st), 0);
    assert_int_equal(st.compact_revision, r0 + 6);

    collector c;
    collector_init(&c);
    store_watch *w = NULL;
    int64_t compact = 0;
    assert_int_equal(store_watch_open(s, "", r0 + 5, collector_cb, &c, &w, &compact),
                     CITRUS_ECOMPACTED);
    assert_null(w);
    assert_int_equal(compact, r0 + 6);
    w = watch(s, "", r0 + 6, &c);
    assert_true(collector_wait(&c, 5, WAIT_MS));
    store_watch_close(s, w);
    assert_int_equal(c.n, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(c.ev[i].kv.mod_revision, r0 + 6 + i);
    assert_false(c.broken);
    collector_free(&c);
}

/* Progress follows the store even when no event matches the prefix. */
static void test_watch_progress(void **state)
{
    store *s = S(state);
    int64_t r0 = put(s, "other/a", "0");
    collector c;
    collector_init(&c);
    store_watch *w = watch(s, "wp/", 0, &c);
    int64_t p = store_watch_progress(s, w);
    if (p < 0) {
        store_watch_close(s, w);
        collector_free(&c);
        print_message("skipped: store does not report watch progress\n");
        skip();
    }
    assert_int_equal(p, r0);
    int64_t r1 = put(s, "other/b", "1");
    int64_t until = now_ms() + WAIT_MS;
    while ((p = store_watch_progress(s, w)) < r1 && now_ms() < until)
        sleep_ms(2);
    assert_int_equal(p, r1);
    assert_int_equal(collector_count(&c), 0);
    int64_t r2 = put(s, "wp/x", "2");
    assert_true(collector_wait(&c, 1, WAIT_MS));
    until = now_ms() + WAIT_MS;
    while ((p = store_watch_progress(s, w)) < r2 && now_ms() < until)
        sleep_ms(2);
    assert_int_equal(p, r2);
    assert_true(p <= rev_now(s));
    store_watch_close(s, w);
    collector_free(&c);

    collector_init(&c);
    w = watch(s, "wp/", r1, &c); /* from the past: nothing seen yet */
    p = store_watch_progress(s, w);
    assert_true(p == r1 - 1 || (p == r2 && collector_count(&c) == 1));
    store_watch_close(s, w);
    collector_free(&c);
}

typedef struct slow_watch {
    atomic_int inside, calls;
} slow_watch;

static void slow_cb(void *ctx, const kv_event *events, size_t n, int err)
{
    slow_watch *sw = ctx;
    atomic_store(&sw->inside, 1);
    sleep_ms(1); /* widens the window in which close races with a callback */
    atomic_fetch_add(&sw->calls, 1);
    atomic_store(&sw->inside, 0);
}

typedef struct churn {
    store *s;
    atomic_bool stop;
    int failures;
} churn;

static void *churn_writer(void *p)
{
    churn *c = p;
    while (!atomic_load(&c->stop))
        if (store_put(c->s, "wc2/k", (const unsigned char *)"v", 1, 0, -1, NULL, NULL, NULL))
            c->failures++;
    return NULL;
}

static void test_watch_close(void **state)
{
    store *s = S(state);
    collector a, b;
    collector_init(&a);
    collector_init(&b);
    store_watch *wa = watch(s, "wc/", 0, &a);
    put(s, "wc/1", "1");
    assert_true(collector_wait(&a, 1, WAIT_MS));
    store_watch_close(s, wa);
    int64_t r2 = put(s, "wc/2", "2");
    put(s, "wc/3", "3");
    store_watch *wb = watch(s, "wc/", r2, &b); /* once b saw both, a would have too */
    assert_true(collector_wait(&b, 2, WAIT_MS));
    store_watch_close(s, wb);
    assert_int_equal(collector_count(&a), 1);
    collector_free(&a);
    collector_free(&b);

    /* close while callbacks are running on the delivery thread */
    churn ch = {.s = s};
    atomic_init(&ch.stop, false);
    slow_watch sw;
    atomic_init(&sw.inside, 0);
    atomic_init(&sw.calls, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, churn_writer, &ch), 0);
    store_watch *w = NULL;
    int64_t compact;
    assert_int_equal(store_watch_open(s, "wc2/", 0, slow_cb, &sw, &w, &compact), 0);
    int64_t until = now_ms() + WAIT_MS;
    while (atomic_load(&sw.calls) < 20 && now_ms() < until)
        sleep_ms(1);
    assert_true(atomic_load(&sw.calls) >= 20);
    store_watch_close(s, w);
    assert_int_equal(atomic_load(&sw.inside), 0);
    int calls = atomic_load(&sw.calls);
    int64_t r = rev_now(s);
    until = now_ms() + WAIT_MS;
    while (rev_now(s) < r + 50 && now_ms() < until)
        sleep_ms(1);
    sleep_ms(50);
    assert_int_equal(atomic_load(&sw.calls), calls);
    atomic_store(&ch.stop, true);
    pthread_join(th, NULL);
    assert_int_equal(ch.failures, 0);
}

/* ---- leases ------------------------------------------------------------------------------- */

static void test_lease_basic(void **state)
{
    store *s = S(state);
    int64_t granted = 0;
    int64_t id = lease_grant(s, 60, &granted);
    int64_t id2 = lease_grant(s, 60, NULL);
    assert_true(id != id2);
    int64_t ttl = 0;
    assert_int_equal(store_lease_keepalive(s, id, &ttl), 0);
    assert_int_equal(ttl, granted);
    assert_int_equal(store_lease_revoke(s, id), 0);
    assert_int_equal(store_lease_keepalive(s, id, &ttl), CITRUS_ENOLEASE);
    assert_int_equal(store_lease_revoke(s, id), CITRUS_ENOLEASE);
    assert_int_equal(store_lease_keepalive(s, UNKNOWN_LEASE, &ttl), CITRUS_ENOLEASE);
    assert_int_equal(store_lease_revoke(s, UNKNOWN_LEASE), CITRUS_ENOLEASE);
    assert_int_equal(store_lease_keepalive(s, id2, &ttl), 0);
    assert_int_equal(store_lease_grant(s, 0, &id, NULL), CITRUS_EINVAL);
}

static void test_lease_revoke_deletes(void **state)
{
    store *s = S(state);
    int64_t id = lease_grant(s, 60, NULL);
    put_lease(s, "l/1", "1", id);
    put_lease(s, "l/2", "2", id);
    put_lease(s, "l/3", "3", id);
    put(s, "l/4", "4");
    kv_range_res r;
    get_key(s, "l/2", &r);
    assert_int_equal(r.items[0].lease, id);
    kv_range_res_free(&r);
    collector c;
    collector_init(&c);
    store_watch *w = watch(s, "l/", 0, &c);
    int64_t r0 = rev_now(s);
    assert_int_equal(store_lease_revoke(s, id), 0);
    assert_int_equal(rev_now(s), r0 + 1);
    const char *left[] = {"l/4"};
    kv_range_req q = {.key = "l/", .prefix = true};
    assert_int_equal(store_range(s, &q, &r), 0);
    assert_keys(&r, left, 1);
    kv_range_res_free(&r);
    assert_true(collector_wait(&c, 3, WAIT_MS));
    store_watch_close(s, w);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.calls, 1);
    for (int i = 0; i < 3; i++) {
        char k[16];
        snprintf(k, sizeof(k), "l/%d", i + 1);
        assert_event(&c.ev[i], KV_EVENT_DELETE, k, "", 0, r0 + 1, 0);
    }
    collector_free(&c);
}

static void test_lease_detach(void **state)
{
    store *s = S(state);
    int64_t id = lease_grant(s, 60, NULL);
    put_lease(s, "ld/k", "1", id);
    put(s, "ld/k", "2");
    assert_int_equal(store_lease_revoke(s, id), 0);
    kv_range_res r;
    get_key(s, "ld/k", &r);
    assert_int_equal(r.count, 1);
    assert_int_equal(r.items[0].lease, 0);
    kv_range_res_free(&r);
}

static void test_lease_expiry(void **state)
{
    store *s = S(state);
    int64_t granted = 0;
    int64_t id = lease_grant(s, 1, &granted);
    put_lease(s, "le/a", "1", id);
    put_lease(s, "le/b", "2", id);
    put(s, "le/c", "3");
    int64_t r0 = rev_now(s);
    if (factory->advance_ms)
        factory->advance_ms(factory->ctx, granted * 1000 + 100);
    int64_t until = now_ms() + granted * 1000 + WAIT_MS;
    while (count_prefix(s, "le/") != 1 && now_ms() < until)
        sleep_ms(20);
    assert_int_equal(count_prefix(s, "le/"), 1);
    assert_int_equal(count_prefix(s, "le/c"), 1);
    assert_int_equal(rev_now(s), r0 + 1);
    int64_t ttl;
    assert_int_equal(store_lease_keepalive(s, id, &ttl), CITRUS_ENOLEASE);
}

static void test_put_unknown_lease(void **state)
{
    store *s = S(state);
    int64_t r0 = rev_now(s);
    assert_int_equal(
        store_put(s, "ul/k", (const unsigned char *)"v", 1, UNKNOWN_LEASE, -1, NULL, NULL, NULL),
        CITRUS_ENOLEASE);
    assert_int_equal(count_prefix(s, "ul/"), 0);
    assert_int_equal(rev_now(s), r0);
}

/* ---- snapshot ------------------------------------------------------------------------------ */

static void test_snapshot(void **state)
{
    store *s = S(state);
    int64_t id = lease_grant(s, 60, NULL);
    int64_t rb = put_lease(s, "sn/b", "2", id);
    int64_t ra = put(s, "sn/a", "1");
    put(s, "sn/c", "3");
    assert_int_equal(store_delete(s, "sn/c", false, -1, NULL, NULL, NULL), 0);
    kv_snapshot snap;
    assert_int_equal(store_snapshot(s, &snap), 0);
    assert_int_equal(snap.revision, rev_now(s));
    assert_true(snap.compact_revision <= snap.revision + 1);
    assert_int_equal(snap.count, 2);
    assert_string_equal(snap.items[0].key, "sn/a");
    assert_value(&snap.items[0], "1");
    assert_int_equal(snap.items[0].mod_revision, ra);
    assert_int_equal(snap.items[0].lease, 0);
    assert_string_equal(snap.items[1].key, "sn/b");
    assert_value(&snap.items[1], "2");
    assert_int_equal(snap.items[1].create_revision, rb);
    assert_int_equal(snap.items[1].version, 1);
    assert_int_equal(snap.items[1].lease, id);
    assert_int_equal(snap.nleases, 1);
    assert_int_equal(snap.leases[0].id, id);
    assert_true(snap.leases[0].ttl >= 60);
    assert_true(snap.leases[0].remaining > 0 && snap.leases[0].remaining <= snap.leases[0].ttl);
    kv_snapshot_free(&snap);
}

/* ---- the suite ------------------------------------------------------------------------------ */

#define CONF_TEST(f) cmocka_unit_test_setup_teardown(f, conf_setup, conf_teardown)

static const struct CMUnitTest conformance_tests[] = {
    CONF_TEST(test_revision_per_txn),
    CONF_TEST(test_key_bookkeeping),
    CONF_TEST(test_get_absent),
    CONF_TEST(test_bad_key),
    CONF_TEST(test_range_bytewise),
    CONF_TEST(test_range_limit_after),
    CONF_TEST(test_range_all),
    CONF_TEST(test_range_count_only),
    CONF_TEST(test_put_cas),
    CONF_TEST(test_delete_counts),
    CONF_TEST(test_delete_cas),
    CONF_TEST(test_txn_compares),
    CONF_TEST(test_txn_atomic),
    CONF_TEST(test_txn_one_revision),
    CONF_TEST(test_txn_get_inside),
    CONF_TEST(test_txn_duplicate_writes_rejected),
    CONF_TEST(test_txn_async),
    CONF_TEST(test_watch_history),
    CONF_TEST(test_watch_prefix),
    CONF_TEST(test_watch_live),
    CONF_TEST(test_watch_many_writers),
    CONF_TEST(test_watch_compacted),
    CONF_TEST(test_watch_progress),
    CONF_TEST(test_watch_close),
    CONF_TEST(test_lease_basic),
    CONF_TEST(test_lease_revoke_deletes),
    CONF_TEST(test_lease_detach),
    CONF_TEST(test_lease_expiry),
    CONF_TEST(test_put_unknown_lease),
    CONF_TEST(test_snapshot),
};

const struct CMUnitTest *catalog_conformance_tests(const catalog_conformance_factory *f, size_t *n)
{
    factory = f;
    *n = sizeof(conformance_tests) / sizeof(conformance_tests[0]);
    return conformance_tests;
}

int catalog_conformance_run(const catalog_conformance_factory *f)
{
    size_t n;
    const struct CMUnitTest *tests = catalog_conformance_tests(f, &n);
    char name[128];
    snprintf(name, sizeof(name), "catalog_conformance(%s)", f->name ? f->name : "?");
    return _cmocka_run_group_tests(name, tests, n, NULL, NULL);
}
