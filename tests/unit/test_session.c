/* Unit tests for controller/session.c and controller/election.c on the
 * embedded store: one leader at a time, failover, fencing, registration.
 * Most drive sessions round by round (session_run_once) on a test clock;
 * one runs the sessions' own threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "catalog/store_sqlite.h"
#include "citrus/errors.h"
#include "controller/election.h"
#include "controller/session.h"
#include "sys/clock.h"

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
    errdetail err;
    store_sqlite_options o = {.path = f->path};
    assert_int_equal(store_sqlite_open(&o, &f->st, &err), 0);
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

/* Polls until exactly one of a/b leads; returns it (deadline 5 s). */
static session *wait_one_leader(session *a, session *b, session *not_this, int64_t *token)
{
    int64_t deadline = clock_mono_ms(NULL) + 5000;
    while (clock_mono_ms(NULL) < deadline) {
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
    int64_t deadline = clock_mono_ms(NULL) + 3000;
    while (count_nodes(f->st) < 2 && clock_mono_ms(NULL) < deadline)
        usleep(10000);
    assert_int_equal(count_nodes(f->st), 2);
    session *other = l1 == a ? b : a;
    int64_t t0 = clock_mono_ms(NULL);
    session_stop(l1); /* resigns: the lease is revoked */
    int64_t t2;
    session *l2 = wait_one_leader(other == a ? a : NULL, other == b ? b : NULL, NULL, &t2);
    assert_ptr_equal(l2, other);
    assert_true(clock_mono_ms(NULL) - t0 < 2000); /* well inside the TTL */
    assert_true(t2 > t1);
    assert_false(fenced_write(f->st, t1)); /* the deposed token is fenced off */
    assert_true(fenced_write(f->st, t2));
    assert_int_equal(count_nodes(f->st), 1);
    session_stop(other);
    assert_int_equal(count_nodes(f->st), 0);
}

/* A session on clk, driven by session_run_once (no thread). */
static session *stepped(fixture *f, const char *id, int64_t ttl_s, sysclock *clk)
{
    session_options o = {
        .st = f->st, .node_id = id, .api_url = "", .ttl_s = ttl_s, .campaign = true, .clock = clk};
    session *s;
    assert_int_equal(session_new(&o, &s), 0);
    return s;
}

/* A node counts itself leader (and ready) only until the send time of its
 * last successful keepalive plus the TTL, whatever the catalog says: past
 * that, another node may already hold the key. */
static void leadership_ends_with_the_ttl(void **state)
{
    fixture *f = *state;
    sysclock *clk = clock_test_new(1000, 1000);
    session *a = stepped(f, "a", 5, clk); /* the store's lease: 5 s of real time */
    int64_t token;
    assert_false(session_is_leader(a, &token));
    assert_false(session_ready(a));
    session_run_once(a); /* grant at t=1000, register, campaign */
    assert_true(session_is_leader(a, &token));
    assert_true(token > 0);
    assert_true(session_ready(a));
    assert_int_equal(count_nodes(f->st), 1);

    clock_test_advance(clk, 4999);
    assert_true(session_is_leader(a, NULL));
    clock_test_advance(clk, 1); /* t = 1000 + TTL */
    int64_t t = 1;
    assert_false(session_is_leader(a, &t));
    assert_int_equal(t, 0);
    assert_false(session_ready(a));

    session_run_once(a); /* a keepalive sent at t=6000: until 11000 */
    assert_true(session_is_leader(a, &t));
    assert_int_equal(t, token); /* the same lease, the same token */
    clock_test_advance(clk, 4999);
    assert_true(session_is_leader(a, NULL));
    clock_test_advance(clk, 1);
    assert_false(session_is_leader(a, NULL));
    session_stop(a);
    assert_int_equal(count_nodes(f->st), 0);
    clock_test_free(clk);
}

/* Round by round: the first to campaign leads; when it stops (revoking its
 * lease) the next round of the other takes over with a newer token, and
 * the deposed token is fenced off. */
static void failover_round_by_round(void **state)
{
    fixture *f = *state;
    sysclock *clk = clock_test_new(1000, 1000);
    session *a = stepped(f, "a", 5, clk), *b = stepped(f, "b", 5, clk);
    session_run_once(a);
    session_run_once(b);
    int64_t t1, t2;
    assert_true(session_is_leader(a, &t1));
    assert_false(session_is_leader(b, &t2));
    assert_true(session_ready(b)); /* registered, and campaigned once */
    assert_int_equal(count_nodes(f->st), 2);
    assert_true(fenced_write(f->st, t1));
    session_stop(a);
    session_run_once(b);
    assert_true(session_is_leader(b, &t2));
    assert_true(t2 > t1);
    assert_false(fenced_write(f->st, t1));
    assert_true(fenced_write(f->st, t2));
    session_stop(b);
    clock_test_free(clk);
}

/* The catalog loses the lease (as after an outage longer than the TTL):
 * the next round starts a new one, registers again and wins again, with a
 * newer token. */
static void lost_lease_is_replaced(void **state)
{
    fixture *f = *state;
    sysclock *clk = clock_test_new(1000, 1000);
    session *a = stepped(f, "solo", 1, clk);
    session_run_once(a);
    int64_t t1, t2;
    assert_true(session_is_leader(a, &t1));
    int64_t lease = session_lease(a);
    assert_true(lease > 0);
    assert_int_equal(store_lease_revoke(f->st, lease), 0);
    assert_int_equal(count_nodes(f->st), 0);
    session_run_once(a);
    assert_int_not_equal(session_lease(a), lease);
    assert_true(session_is_leader(a, &t2));
    assert_true(t2 > t1);
    assert_false(fenced_write(f->st, t1));
    assert_int_equal(count_nodes(f->st), 1); /* registered again under the new lease */
    session_stop(a);
    clock_test_free(clk);
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
        cmocka_unit_test_setup_teardown(leadership_ends_with_the_ttl, setup, teardown),
        cmocka_unit_test_setup_teardown(failover_round_by_round, setup, teardown),
        cmocka_unit_test_setup_teardown(lost_lease_is_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(observer_sees_holder, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
