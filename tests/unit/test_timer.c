/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/base/timer.c: heap order, cancel, re-arm, growth
 * failure, and a randomized comparison against a plain array model. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "base/mem.h"
#include "base/timer.h"

static int fired;

static void count_cb(struct gw_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    fired++;
}

/* Checks that every parent expires no later than its children and that
 * every timer knows its slot. */
static void assert_heap_valid(const struct gw_timer_heap *h)
{
    for (size_t i = 0; i < h->n; i++) {
        assert_int_equal(h->v[i]->idx, i + 1);
        if (i > 0)
            assert_true(h->v[(i - 1) / 2]->when_ns <= h->v[i]->when_ns);
    }
}

static void test_empty_heap(void **state)
{
    struct gw_timer_heap h;

    (void)state;
    gw_timer_heap_init(&h);
    assert_int_equal(gw_timer_heap_next(&h), UINT64_MAX);
    assert_null(gw_timer_heap_pop_expired(&h, UINT64_MAX));
    gw_timer_heap_free(&h);
}

static void test_pops_in_expiry_order(void **state)
{
    static const uint64_t when[] = {50, 10, 40, 30, 20, 60, 5, 45};
    struct gw_timer t[8];
    struct gw_timer_heap h;
    struct gw_timer *p;
    uint64_t last = 0;
    int n = 0;

    (void)state;
    gw_timer_heap_init(&h);
    for (int i = 0; i < 8; i++) {
        gw_timer_init(&t[i], count_cb, &t[i]);
        assert_false(gw_timer_armed(&t[i]));
        assert_int_equal(gw_timer_heap_add(&h, &t[i], when[i]), 0);
        assert_true(gw_timer_armed(&t[i]));
        assert_heap_valid(&h);
    }
    assert_int_equal(gw_timer_heap_next(&h), 5);
    /* Nothing has expired before the earliest time. */
    assert_null(gw_timer_heap_pop_expired(&h, 4));
    /* At now = 30, exactly the four timers due by then come out, in order. */
    while ((p = gw_timer_heap_pop_expired(&h, 30)) != NULL) {
        assert_true(p->when_ns >= last);
        assert_true(p->when_ns <= 30);
        assert_false(gw_timer_armed(p));
        assert_ptr_equal(p->arg, p);
        last = p->when_ns;
        n++;
    }
    assert_int_equal(n, 4);
    assert_int_equal(h.n, 4);
    assert_int_equal(gw_timer_heap_next(&h), 40);
    while ((p = gw_timer_heap_pop_expired(&h, UINT64_MAX)) != NULL) {
        assert_true(p->when_ns >= last);
        last = p->when_ns;
        p->cb(p, p->arg);
    }
    assert_int_equal(last, 60);
    assert_int_equal(gw_timer_heap_next(&h), UINT64_MAX);
    gw_timer_heap_free(&h);
}

static void test_cancel_and_rearm(void **state)
{
    struct gw_timer a, b, c;
    struct gw_timer_heap h;

    (void)state;
    gw_timer_heap_init(&h);
    gw_timer_init(&a, count_cb, NULL);
    gw_timer_init(&b, count_cb, NULL);
    gw_timer_init(&c, count_cb, NULL);
    assert_int_equal(gw_timer_heap_add(&h, &a, 100), 0);
    assert_int_equal(gw_timer_heap_add(&h, &b, 200), 0);
    assert_int_equal(gw_timer_heap_add(&h, &c, 300), 0);

    gw_timer_heap_cancel(&h, &a);
    assert_false(gw_timer_armed(&a));
    assert_int_equal(h.n, 2);
    assert_int_equal(gw_timer_heap_next(&h), 200);
    gw_timer_heap_cancel(&h, &a); /* cancelling a disarmed timer is a no-op */
    assert_int_equal(h.n, 2);

    /* Re-arming an armed timer moves it instead of adding it twice. */
    assert_int_equal(gw_timer_heap_add(&h, &c, 50), 0);
    assert_int_equal(h.n, 2);
    assert_int_equal(gw_timer_heap_next(&h), 50);
    assert_int_equal(gw_timer_heap_add(&h, &c, 500), 0);
    assert_int_equal(gw_timer_heap_next(&h), 200);
    assert_heap_valid(&h);

    assert_ptr_equal(gw_timer_heap_pop_expired(&h, 1000), &b);
    assert_ptr_equal(gw_timer_heap_pop_expired(&h, 1000), &c);
    assert_null(gw_timer_heap_pop_expired(&h, 1000));
    gw_timer_heap_free(&h);
}

static void test_free_disarms_remaining(void **state)
{
    struct gw_timer a;
    struct gw_timer_heap h;

    (void)state;
    gw_timer_heap_init(&h);
    gw_timer_init(&a, count_cb, NULL);
    assert_int_equal(gw_timer_heap_add(&h, &a, 1), 0);
    gw_timer_heap_free(&h);
    assert_false(gw_timer_armed(&a));
    assert_int_equal(h.n, 0);
    assert_null(h.v);
}

static void test_growth_failure_leaves_timer_unarmed(void **state)
{
    struct gw_timer t[40];
    struct gw_timer_heap h;
    long base;
    size_t i;

    (void)state;
    gw_mem_fail_after(-1);
    base = gw_mem_live();
    gw_timer_heap_init(&h);
    gw_timer_init(&t[0], count_cb, NULL);
    gw_mem_fail_after(0);
    assert_int_equal(gw_timer_heap_add(&h, &t[0], 1), -ENOMEM);
    assert_false(gw_timer_armed(&t[0]));
    assert_int_equal(h.n, 0);

    /* One allocation lets the heap reach its first capacity; growing past
     * it fails cleanly and keeps every armed timer. */
    gw_mem_fail_after(1);
    for (i = 0; i < 40; i++) {
        gw_timer_init(&t[i], count_cb, NULL);
        if (gw_timer_heap_add(&h, &t[i], 1000 - i) != 0)
            break;
    }
    assert_true(i > 0 && i < 40);
    assert_int_equal(h.n, i);
    assert_false(gw_timer_armed(&t[i]));
    assert_heap_valid(&h);
    /* Re-arming an armed timer needs no memory even now. */
    assert_int_equal(gw_timer_heap_add(&h, &t[0], 1), 0);
    assert_int_equal(gw_timer_heap_next(&h), 1);
    gw_mem_fail_after(-1);
    assert_int_equal(gw_timer_heap_add(&h, &t[i], 2), 0);
    assert_int_equal(h.n, i + 1);
    gw_timer_heap_free(&h);
    assert_int_equal(gw_mem_live(), base);
}

/* Random adds, re-arms, cancels and pops, checked against the minimum of a
 * plain array of the armed timers. */
static void test_random_against_model(void **state)
{
    enum { N = 200, OPS = 20000 };
    static struct gw_timer t[N];
    struct gw_timer_heap h;
    unsigned seed = 12345;
    size_t armed = 0;

    (void)state;
    gw_timer_heap_init(&h);
    for (int i = 0; i < N; i++)
        gw_timer_init(&t[i], count_cb, NULL);
    for (int op = 0; op < OPS; op++) {
        int i = rand_r(&seed) % N;
        int kind = rand_r(&seed) % 4;
        uint64_t min = UINT64_MAX;

        if (kind <= 1) {
            armed += !gw_timer_armed(&t[i]);
            assert_int_equal(gw_timer_heap_add(&h, &t[i], (uint64_t)(rand_r(&seed) % 1000)), 0);
        } else if (kind == 2) {
            armed -= gw_timer_armed(&t[i]);
            gw_timer_heap_cancel(&h, &t[i]);
        } else {
            struct gw_timer *p;
            uint64_t now = (uint64_t)(rand_r(&seed) % 1000);

            for (int j = 0; j < N; j++)
                if (gw_timer_armed(&t[j]) && t[j].when_ns < min)
                    min = t[j].when_ns;
            p = gw_timer_heap_pop_expired(&h, now);
            if (min <= now) {
                assert_non_null(p);
                assert_int_equal(p->when_ns, min);
                armed--;
            } else {
                assert_null(p);
            }
            min = UINT64_MAX;
        }
        for (int j = 0; j < N; j++)
            if (gw_timer_armed(&t[j]) && t[j].when_ns < min)
                min = t[j].when_ns;
        assert_int_equal(h.n, armed);
        assert_int_equal(gw_timer_heap_next(&h), min);
    }
    assert_heap_valid(&h);
    gw_timer_heap_free(&h);
}

static void test_now_is_monotonic_clock(void **state)
{
    struct timespec ts;
    uint64_t a, b, ref;

    (void)state;
    a = gw_now_ns();
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ref = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    b = gw_now_ns();
    assert_true(a <= ref);
    assert_true(ref <= b);
    assert_true(b - a < 1000000000u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_heap),
        cmocka_unit_test(test_pops_in_expiry_order),
        cmocka_unit_test(test_cancel_and_rearm),
        cmocka_unit_test(test_free_disarms_remaining),
        cmocka_unit_test(test_growth_failure_leaves_timer_unarmed),
        cmocka_unit_test(test_random_against_model),
        cmocka_unit_test(test_now_is_monotonic_clock),
    };
    return cmocka_run_group_tests_name("timer", tests, NULL, NULL);
}
