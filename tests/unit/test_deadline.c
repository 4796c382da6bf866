/* tests/unit/test_deadline.c — sys/deadline.h on a test clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sys/clock.h"
#include "sys/deadline.h"

static void none_is_zero(void **state)
{
    (void)state;
    deadline d = {0};
    assert_false(deadline_set(&d));
    assert_false(deadline_set(NULL));
    assert_true(deadline_left_ms(&d) == INT64_MAX);
}

static void counts_down_on_its_clock(void **state)
{
    (void)state;
    sysclock *c = clock_test_new(1000, 0);
    deadline d = deadline_after(c, 250);
    assert_true(deadline_set(&d));
    assert_int_equal(deadline_left_ms(&d), 250);
    clock_test_advance(c, 249);
    assert_int_equal(deadline_left_ms(&d), 1);
    clock_test_advance(c, 1);
    assert_int_equal(deadline_left_ms(&d), 0);
    clock_test_advance(c, 100);
    assert_int_equal(deadline_left_ms(&d), 0); /* never negative */
    clock_test_free(c);
}

/* What is left may already be nothing (a request that waited in a queue
 * past its deadline): still a deadline, passed, not "none". */
static void already_passed_stays_set(void **state)
{
    (void)state;
    sysclock *c = clock_test_new(0, 0); /* even at monotonic 0 */
    deadline d = deadline_after(c, -5);
    assert_true(deadline_set(&d));
    assert_int_equal(deadline_left_ms(&d), 0);
    clock_test_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(none_is_zero),
        cmocka_unit_test(counts_down_on_its_clock),
        cmocka_unit_test(already_passed_stays_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
