/* tests/unit/test_clock.c — sys/clock.c: the real clock moves forward, the
 * test clock moves only when told, condition deadlines are on the
 * monotonic clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "sys/clock.h"

static void test_real_clock(void **state)
{
    (void)state;
    int64_t a = clock_mono_ms(clock_real()), b = clock_mono_ms(NULL);
    assert_true(a > 0);
    assert_true(b >= a);
    int64_t ns = clock_mono_ns(NULL);
    assert_true(ns / 1000000 >= b && ns / 1000000 <= clock_mono_ms(NULL));
    /* wall time is Unix time in ms: after 2020-01-01 */
    assert_true(clock_wall_ms(clock_real()) > 1577836800000LL);
    clock_test_advance((sysclock *)clock_real(), 1000000); /* not a test clock: ignored */
    assert_true(clock_mono_ms(NULL) < b + 1000000);
    clock_test_free((sysclock *)clock_real()); /* ignored too */
}

static void test_test_clock(void **state)
{
    (void)state;
    sysclock *c = clock_test_new(1000, 1700000000000LL);
    assert_non_null(c);
    assert_int_equal(clock_mono_ms(c), 1000);
    assert_int_equal(clock_mono_ns(c), 1000000000LL);
    assert_int_equal(clock_wall_ms(c), 1700000000000LL);
    assert_int_equal(clock_mono_ms(c), 1000); /* still: it does not move by itself */
    clock_test_advance(c, 250);
    assert_int_equal(clock_mono_ms(c), 1250);
    assert_int_equal(clock_wall_ms(c), 1700000000250LL);
    clock_test_advance(c, -5); /* never backwards */
    assert_int_equal(clock_mono_ms(c), 1250);
    clock_test_free(c);
}

static void test_cond_deadline(void **state)
{
    (void)state;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv;
    assert_int_equal(clock_cond_init(&cv), 0);
    int64_t before = clock_mono_ms(NULL);
    struct timespec dl = clock_cond_deadline(20);
    int64_t dl_ms = (int64_t)dl.tv_sec * 1000 + dl.tv_nsec / 1000000;
    assert_true(dl.tv_nsec >= 0 && dl.tv_nsec < 1000000000L);
    assert_true(dl_ms >= before + 20);
    pthread_mutex_lock(&mu);
    int rc = 0;
    while (rc == 0)
        rc = pthread_cond_timedwait(&cv, &mu, &dl); /* nobody signals: times out */
    pthread_mutex_unlock(&mu);
    assert_true(clock_mono_ms(NULL) >= before + 20);
    pthread_cond_destroy(&cv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_clock),
        cmocka_unit_test(test_test_clock),
        cmocka_unit_test(test_cond_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
