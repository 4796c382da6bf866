/* Unit tests for core/shard.c: the lifecycle table (checked against a matrix
 * written out here, so any change to the table must change this test too),
 * transition bookkeeping, ids, weights, state names and list copies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "citrus/errors.h"
#include "core/shard.h"

/* expected[from][to]; rows and columns in enum order:
 * pending provisioning initializing active read_only draining drained
 * retired failed */
// clang-format off
static const int expected[SHARD_NSTATES][SHARD_NSTATES] = {
    /*                  pe pr in ac ro dg dd re fa */
    /* pending      */ {0, 1, 1, 0, 0, 0, 0, 0, 1},
    /* provisioning */ {0, 0, 1, 0, 0, 0, 0, 0, 1},
    /* initializing */ {0, 0, 0, 1, 0, 0, 0, 0, 1},
    /* active       */ {0, 0, 0, 0, 1, 1, 0, 0, 1},
    /* read_only    */ {0, 0, 0, 1, 0, 0, 0, 0, 1},
    /* draining     */ {0, 0, 0, 1, 0, 0, 1, 0, 1},
    /* drained      */ {0, 0, 0, 0, 0, 0, 0, 1, 1},
    /* retired      */ {0, 0, 0, 0, 0, 0, 0, 0, 1},
    /* failed       */ {0, 1, 0, 0, 0, 0, 0, 0, 0},
};
// clang-format on

static void table_matches_matrix(void **state)
{
    for (int f = 0; f < SHARD_NSTATES; f++) {
        for (int t = 0; t < SHARD_NSTATES; t++) {
            bool ok = shard_transition_ok((shard_state)f, (shard_state)t);
            if (ok != (expected[f][t] != 0))
                fail_msg("%s -> %s: table says %d, expected %d", shard_state_name(f),
                         shard_state_name(t), ok, expected[f][t]);
        }
    }
    assert_false(shard_transition_ok((shard_state)SHARD_NSTATES, SHARD_FAILED));
    assert_false(shard_transition_ok(SHARD_ACTIVE, (shard_state)-1));
}

static void transitions_from_lists(void **state)
{
    for (int f = 0; f < SHARD_NSTATES; f++) {
        shard_state out[SHARD_NSTATES];
        size_t n = shard_transitions_from((shard_state)f, out);
        size_t k = 0;
        for (int t = 0; t < SHARD_NSTATES; t++) {
            if (!expected[f][t])
                continue;
            assert_true(k < n);
            assert_int_equal(out[k++], t); /* enum order */
        }
        assert_int_equal(k, n);
        assert_int_equal(shard_transitions_from((shard_state)f, NULL), n);
    }
    shard_state out[SHARD_NSTATES];
    assert_int_equal(shard_transitions_from(SHARD_FAILED, out), 1);
    assert_int_equal(out[0], SHARD_PROVISIONING);
    assert_int_equal(shard_transitions_from(SHARD_PENDING, out), 3);
    assert_int_equal(out[0], SHARD_PROVISIONING);
    assert_int_equal(out[1], SHARD_INITIALIZING);
    assert_int_equal(out[2], SHARD_FAILED);
}

static void serving_states(void **state)
{
    for (int s = 0; s < SHARD_NSTATES; s++) {
        bool r = s == SHARD_ACTIVE || s == SHARD_READ_ONLY || s == SHARD_DRAINING;
        bool w = s == SHARD_ACTIVE || s == SHARD_DRAINING;
        assert_int_equal(shard_state_serves_reads((shard_state)s), r);
        assert_int_equal(shard_state_serves_writes((shard_state)s), w);
    }
}

static void state_names(void **state)
{
    static const char *const names[SHARD_NSTATES] = {"pending", "provisioning", "initializing",
                                                     "active",  "read_only",    "draining",
                                                     "drained", "retired",      "failed"};
    for (int s = 0; s < SHARD_NSTATES; s++) {
        assert_string_equal(shard_state_name((shard_state)s), names[s]);
        shard_state back = SHARD_FAILED;
        assert_int_equal(shard_state_parse(names[s], &back), 0);
        assert_int_equal(back, s);
    }
    shard_state x;
    assert_int_equal(shard_state_parse("Active", &x), CITRUS_EINVAL);
    assert_int_equal(shard_state_parse("", &x), CITRUS_EINVAL);
    assert_int_equal(shard_state_parse("read-only", &x), CITRUS_EINVAL);
    assert_int_equal(shard_state_parse(NULL, &x), CITRUS_EINVAL);
    assert_string_equal(shard_state_name((shard_state)42), "unknown");
}

static void ids(void **state)
{
    const char *good[] = {"a", "0", "s1", "shard_01", "eu-west-3", "a_-", "9z"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(shard_id_valid(good[i]));
    char max[SHARD_ID_MAX + 2];
    memset(max, 'a', SHARD_ID_MAX);
    max[SHARD_ID_MAX] = '\0';
    assert_true(shard_id_valid(max));
    max[SHARD_ID_MAX] = 'a';
    max[SHARD_ID_MAX + 1] = '\0';
    assert_false(shard_id_valid(max)); /* 64 chars */
    const char *bad[] = {"", "-a", "_a", "A", "shardA", "a b", "a.b", "a/b", "é", "a\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(shard_id_valid(bad[i]));
    assert_false(shard_id_valid(NULL));
}

static void init_and_clear(void **state)
{
    shard s;
    shard_init(&s);
    assert_int_equal(s.state, SHARD_PENDING);
    assert_true(s.weight == 1.0);
    assert_null(s.dsn);
    assert_int_equal(s.epoch, 0);
    assert_int_equal(s.nhistory, 0);
    assert_int_equal(shard_transition(&s, SHARD_PROVISIONING, "go", "api", 5), 0);
    shard_clear(&s);
    assert_int_equal(s.state, SHARD_PENDING);
    assert_null(s.history);
    assert_int_equal(s.nhistory, 0);
    shard_clear(&s); /* twice is fine */
}

static void transition_bookkeeping(void **state)
{
    shard s;
    shard_init(&s);
    s.created_ms = 10;
    assert_int_equal(shard_transition(&s, SHARD_PROVISIONING, "create", "api", 100), 0);
    assert_int_equal(s.state, SHARD_PROVISIONING);
    assert_int_equal(s.epoch, 1);
    assert_int_equal(s.updated_ms, 100);
    assert_null(s.error);
    assert_int_equal(s.nhistory, 1);
    assert_int_equal(s.history[0].from, SHARD_PENDING);
    assert_int_equal(s.history[0].to, SHARD_PROVISIONING);
    assert_string_equal(s.history[0].reason, "create");
    assert_string_equal(s.history[0].actor, "api");
    assert_int_equal(s.history[0].at_ms, 100);

    /* Refused: nothing changes. */
    assert_int_equal(shard_transition(&s, SHARD_ACTIVE, "skip", "api", 200), CITRUS_ECONFLICT);
    assert_int_equal(s.state, SHARD_PROVISIONING);
    assert_int_equal(s.epoch, 1);
    assert_int_equal(s.updated_ms, 100);
    assert_int_equal(s.nhistory, 1);

    /* failed sets error to the reason... */
    assert_int_equal(shard_transition(&s, SHARD_FAILED, "disk full", "provisioner", 300), 0);
    assert_string_equal(s.error, "disk full");
    assert_int_equal(s.epoch, 2);
    assert_int_equal(shard_transition(&s, SHARD_FAILED, "again", "x", 301), CITRUS_ECONFLICT);
    assert_string_equal(s.error, "disk full");
    /* ...and the retry clears it. */
    assert_int_equal(shard_transition(&s, SHARD_PROVISIONING, "retry", "api", 400), 0);
    assert_null(s.error);
    assert_int_equal(s.epoch, 3);
    assert_int_equal(s.nhistory, 3);
    assert_int_equal(s.history[2].from, SHARD_FAILED);

    /* NULL reason and actor are recorded as "" (and failed's error too). */
    assert_int_equal(shard_transition(&s, SHARD_FAILED, NULL, NULL, 500), 0);
    assert_string_equal(s.error, "");
    assert_string_equal(s.history[3].reason, "");
    assert_string_equal(s.history[3].actor, "");
    shard_clear(&s);
}

static void drain_and_cancel(void **state)
{
    shard s;
    shard_init(&s);
    const shard_state path[] = {SHARD_INITIALIZING, SHARD_ACTIVE, SHARD_DRAINING, SHARD_ACTIVE,
                                SHARD_READ_ONLY,    SHARD_ACTIVE, SHARD_DRAINING, SHARD_DRAINED,
                                SHARD_RETIRED,      SHARD_FAILED};
    for (size_t i = 0; i < sizeof(path) / sizeof(path[0]); i++)
        assert_int_equal(shard_transition(&s, path[i], "step", "test", (int64_t)i), 0);
    assert_int_equal(s.epoch, 10);
    assert_int_equal(s.nhistory, 10);
    shard_clear(&s);
}

static void history_is_capped(void **state)
{
    shard s;
    shard_init(&s);
    assert_int_equal(shard_transition(&s, SHARD_INITIALIZING, "r0", "t", 0), 0);
    assert_int_equal(shard_transition(&s, SHARD_ACTIVE, "r1", "t", 1), 0);
    const int flips = SHARD_HISTORY_MAX + 30;
    for (int i = 0; i < flips; i++) {
        char reason[32];
        snprintf(reason, sizeof(reason), "flip %d", i);
        shard_state to = i % 2 == 0 ? SHARD_READ_ONLY : SHARD_ACTIVE;
        assert_int_equal(shard_transition(&s, to, reason, "t", 2 + i), 0);
    }
    assert_int_equal(s.epoch, 2 + flips);
    assert_int_equal(s.nhistory, SHARD_HISTORY_MAX);
    /* Oldest first, newest last: the first 32 events were dropped. */
    char want[32];
    snprintf(want, sizeof(want), "flip %d", flips - SHARD_HISTORY_MAX);
    assert_string_equal(s.history[0].reason, want);
    snprintf(want, sizeof(want), "flip %d", flips - 1);
    assert_string_equal(s.history[SHARD_HISTORY_MAX - 1].reason, want);
    assert_int_equal(s.history[SHARD_HISTORY_MAX - 1].at_ms, 2 + flips - 1);
    assert_int_equal(s.updated_ms, 2 + flips - 1);
    shard_clear(&s);
}

static void weights(void **state)
{
    assert_true(shard_weight_valid(1));
    assert_true(shard_weight_valid(0.001));
    assert_true(shard_weight_valid(SHARD_WEIGHT_MAX));
    assert_false(shard_weight_valid(0));
    assert_false(shard_weight_valid(-1));
    assert_false(shard_weight_valid(SHARD_WEIGHT_MAX + 0.5));
    assert_false(shard_weight_valid(NAN));
    assert_false(shard_weight_valid(INFINITY));
}

static void list_copies(void **state)
{
    char *v[] = {"a", "bc"};
    char **c = shard_strings_copy(v, 2);
    assert_non_null(c);
    assert_ptr_not_equal(c[0], v[0]);
    assert_string_equal(c[0], "a");
    assert_string_equal(c[1], "bc");
    shard_strings_free(c, 2);
    c = shard_strings_copy(NULL, 0); /* empty, not NULL */
    assert_non_null(c);
    shard_strings_free(c, 0);

    shard_tag t[] = {{"k1", "v1"}, {"k2", ""}};
    shard_tag *ct = shard_tags_copy(t, 2);
    assert_non_null(ct);
    assert_string_equal(ct[0].key, "k1");
    assert_string_equal(ct[0].value, "v1");
    assert_string_equal(ct[1].key, "k2");
    assert_string_equal(ct[1].value, "");
    assert_ptr_not_equal(ct[1].key, t[1].key);
    shard_tags_free(ct, 2);
    shard_tags_free(NULL, 0);
    shard_strings_free(NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table_matches_matrix),
        cmocka_unit_test(transitions_from_lists),
        cmocka_unit_test(serving_states),
        cmocka_unit_test(state_names),
        cmocka_unit_test(ids),
        cmocka_unit_test(weights),
        cmocka_unit_test(list_copies),
        cmocka_unit_test(init_and_clear),
        cmocka_unit_test(transition_bookkeeping),
        cmocka_unit_test(drain_and_cancel),
        cmocka_unit_test(history_is_capped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
