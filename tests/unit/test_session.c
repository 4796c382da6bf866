/* Unit tests for controller/session.c and controller/election.c on the
 * embedded store: one leader at a time, failover, fencing, registration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "catalog/store_sqlite.h"
#include "citrus/errors.h"
#include "controller/election.h"
#include "controller/session.h"

typedef struct fixture {
    char dir[64];
    char path[96];
    store *st;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/citrus-session-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/catalog.db", f->dir);
    char err[256];
    store_sqlite_options o = {.path = f->path};
    assert_int_equal(store_sqlite_open(&o, &f->st, err, sizeof(err)), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    store_close(f->st);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Polls until exactly one of a/b leads; returns it (deadline 5 s). */
static session *wait_one_leader(session *a, session *b, session *not_this, int64_t *token)
{
    int64_t deadline = mono_ms() + 5000;
    while (mono_ms() < deadline) {
        int64_t ta = 0, tb = 0;
        bool la = a && session_is_leader(a, &ta), lb = b && session_is_leader(b, &tb);
        assert_false(la && lb); /* never two at once */
        session *l = la ? a : lb ? b : NULL;
        if (l && l != not_this) {
            *token = la ? ta : tb;
            return l;
        }
        usleep(10000);
    }
    fail_msg("no leader within 5 s");
    return NULL;
}

static size_t count_nodes(store *st)
{
    kv_range_req req = {.key = SESSION_NODES_PREFIX, .prefix = true, .keys_only = true};
    kv_range_res r;
    assert_int_equal(store_range(st, &req, &r), 0);
    size_t n = r.count;
    kv_range_res_free(&r);
    return n;
}

/* A write fenced by token: succeeds only while token is the current one. */
static bool fenced_write(store *st, int64_t token)
{
    kv_compare fence = election_fence(ELECTION_KEY, token);
    kv_op put = {
        .type = KV_OP_PUT, .key = "ctl/x", .value = (const unsigned char *)"1", .value_len = 1};
    kv_txn txn = {.compares = &fence, .ncompares = 1, .success = &put, .nsuccess = 1};
    kv_txn_res res;
    assert_int_equal(store_txn(st, &txn, &res), 0);
    bool ok = res.succeeded;
    kv_txn_res_free(&res);
    return ok;
}

static void one_leader_and_failover_on_stop(void **state)
{
    fixture *f = *state;
    session *a, *b;
    session_options oa = {
        .st = f->st, .node_id = "a", .api_url = "http://a", .ttl_s = 2, .campaign = true};
    session_options ob = oa;
    ob.node_id = "b";
    assert_int_equal(session_start(&oa, &a), 0);
    assert_int_equal(session_start(&ob, &b), 0);
    int64_t t1;
    session *l1 = wait_one_leader(a, b, NULL, &t1);
    assert_true(t1 > 0);
    assert_true(fenced_write(f->st, t1));
    int64_t deadline = mono_ms() + 3000;
    while (count_nodes(f->st) < 2 && mono_ms() < deadline)
        usleep(10000);
    assert_int_equal(count_nodes(f->st), 2);
    session *other = l1 == a ? b : a;
    int64_t t0 = mono_ms();
    session_stop(l1); /* resigns: the lease is revoked */
    int64_t t2;
    session *l2 = wait_one_leader(other == a ? a : NULL, other == b ? b : NULL, NULL, &t2);
    assert_ptr_equal(l2, other);
    assert_true(mono_ms() - t0 < 2000); /* well inside the TTL */
    assert_true(t2 > t1);
    assert_false(fenced_write(f->st, t1)); /* the deposed token is fenced off */
    assert_true(fenced_write(f->st, t2));
    assert_int_equal(count_nodes(f->st), 1);
    session_stop(other);
    assert_int_equal(count_nodes(f->st), 0);
}

static void lost_lease_is_replaced(void **state)
{
    fixture *f = *state;
    session *a;
    session_options oa = {
        .st = f->st, .node_id = "solo", .api_url = "", .ttl_s = 1, .campaign = true};
    assert_int_equal(session_start(&oa, &a), 0);
    int64_t t1;
    wait_one_leader(a, NULL, NULL, &t1);
    int64_t lease = session_lease(a);
    assert_true(lease > 0);
    /* the catalog loses the lease (as after an outage longer than the TTL) */
    assert_int_equal(store_lease_revoke(f->st, lease), 0);
    int64_t deadline = mono_ms() + 5000, t2 = 0;
    while (mono_ms() < deadline) {
        if (session_lease(a) != lease && session_is_leader(a, &t2))
            break;
        usleep(10000);
    }
    assert_int_not_equal(session_lease(a), lease);
    assert_true(t2 > t1);
    assert_false(fenced_write(f->st, t1));
    assert_int_equal(count_nodes(f->st), 1); /* registered again under the new lease */
    session_stop(a);
}

static void observer_sees_holder(void **state)
{
    fixture *f = *state;
    election_view v;
    assert_int_equal(election_observe(f->st, ELECTION_KEY, &v), 0);
    assert_false(v.held);
    int64_t lease, ttl;
    assert_int_equal(store_lease_grant(f->st, 10, &lease, &ttl), 0);
    bool won = false;
    assert_int_equal(election_campaign(f->st, ELECTION_KEY, "n1", lease, &won, &v), 0);
    assert_true(won);
    int64_t token = v.token;
    /* a second campaign by the holder keeps it; another node loses */
    assert_int_equal(election_campaign(f->st, ELECTION_KEY, "n1", lease, &won, &v), 0);
    assert_true(won);
    assert_int_equal(v.token, token);
    int64_t lease2;
    assert_int_equal(store_lease_grant(f->st, 10, &lease2, &ttl), 0);
    assert_int_equal(election_campaign(f->st, ELECTION_KEY, "n2", lease2, &won, &v), 0);
    assert_false(won);
    assert_string_equal(v.leader, "n1");
    assert_int_equal(election_observe(f->st, ELECTION_KEY, &v), 0);
    assert_true(v.held);
    assert_int_equal(v.lease, lease);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(one_leader_and_failover_on_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(lost_lease_is_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(observer_sees_holder, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
