/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/base/buf.c: bytes come out in order and intact
 * across chunk boundaries and any read sizes, chunks are freed as they drain,
 * and a failed allocation leaves the queue unchanged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/mem.h"

static uint8_t pattern(size_t i)
{
    return (uint8_t)(i * 131 + 7);
}

static int reset_hook(void **state)
{
    (void)state;
    gw_mem_fail_after(-1);
    return 0;
}

/* Appends <total> bytes in pieces of <wsize> and reads them back in pieces of
 * <rsize>, interleaved, checking every byte and the queued length. */
static void roundtrip(size_t total, size_t wsize, size_t rsize)
{
    static uint8_t src[200000], dst[200000];
    for (size_t i = 0; i < total; i++)
        src[i] = pattern(i);
    struct gw_bufq q;
    gw_bufq_init(&q);
    size_t wrote = 0, read = 0;
    while (read < total) {
        if (wrote < total) {
            size_t k = total - wrote < wsize ? total - wrote : wsize;
            assert_int_equal(gw_bufq_append(&q, src + wrote, k), 0);
            wrote += k;
        }
        assert_int_equal(q.len, wrote - read);
        size_t got = gw_bufq_read(&q, dst + read, rsize);
        size_t expect = wrote - read < rsize ? wrote - read : rsize;
        assert_int_equal(got, expect);
        read += got;
    }
    assert_int_equal(q.len, 0);
    assert_memory_equal(src, dst, total);
    assert_int_equal(gw_bufq_read(&q, dst, 10), 0);
    gw_bufq_reset(&q);
}

static void test_roundtrip_shapes(void **state)
{
    (void)state;
    long before = gw_mem_live();
    roundtrip(1, 1, 1);
    roundtrip(100, 100, 16384);
    roundtrip(100000, 7, 5);
    roundtrip(100000, 16384, 16384);
    roundtrip(150000, 40000, 333);
    roundtrip(150000, 300, 70000);
    roundtrip(65536, 65536, 1);
    assert_int_equal(gw_mem_live(), before);
}

static void test_small_message_small_allocation(void **state)
{
    (void)state;
    struct gw_bufq q;
    gw_bufq_init(&q);
    uint8_t b[100] = {1};
    long before = gw_mem_live();
    assert_int_equal(gw_bufq_append(&q, b, sizeof(b)), 0);
    /* One chunk for a small message, reused once drained. */
    assert_int_equal(gw_mem_live(), before + 1);
    uint8_t out[100];
    assert_int_equal(gw_bufq_read(&q, out, sizeof(out)), 100);
    assert_int_equal(gw_bufq_append(&q, b, sizeof(b)), 0);
    assert_int_equal(gw_mem_live(), before + 1);
    gw_bufq_reset(&q);
    assert_int_equal(gw_mem_live(), before);
}

static void test_chunks_freed_as_they_drain(void **state)
{
    (void)state;
    static uint8_t big[100000];
    struct gw_bufq q;
    gw_bufq_init(&q);
    long before = gw_mem_live();
    assert_int_equal(gw_bufq_append(&q, big, sizeof(big)), 0);
    long full = gw_mem_live() - before;
    assert_true(full >= (long)(sizeof(big) / GW_BUF_CHUNK));
    static uint8_t out[100000];
    assert_int_equal(gw_bufq_read(&q, out, 90000), 90000);
    assert_true(gw_mem_live() - before < full);
    gw_bufq_reset(&q);
    assert_int_equal(gw_mem_live(), before);
}

static void test_enomem_leaves_queue_unchanged(void **state)
{
    (void)state;
    static uint8_t big[50000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = pattern(i);
    struct gw_bufq q;
    gw_bufq_init(&q);
    assert_int_equal(gw_bufq_append(&q, big, 10), 0);
    long before = gw_mem_live();
    /* Fail the 1st, 2nd, ... allocation of a multi-chunk append in turn,
     * until the first run in which nothing failed appends it. */
    for (long n = 0;; n++) {
        gw_mem_fail_after(n);
        int rc = gw_bufq_append(&q, big + 10, sizeof(big) - 10);
        gw_mem_fail_after(-1);
        if (rc == 0)
            break;
        assert_int_equal(rc, -12); /* -ENOMEM */
        assert_int_equal(q.len, 10);
        assert_int_equal(gw_mem_live(), before);
        assert_true(n < 6);
    }
    assert_int_equal(q.len, sizeof(big));
    static uint8_t out[50000];
    gw_bufq_reset(&q);
    assert_int_equal(gw_bufq_append(&q, big, sizeof(big)), 0);
    assert_int_equal(gw_bufq_read(&q, out, sizeof(out)), sizeof(big));
    assert_memory_equal(big, out, sizeof(big));
    gw_bufq_reset(&q);
}

/* A replay log: several readers peek at their own offsets across chunk
 * boundaries while the front is dropped once everyone has read it. */
static void test_peek_at_offsets_and_drop(void **state)
{
    (void)state;
    struct gw_bufq q;
    gw_bufq_init(&q);
    static uint8_t src[70000], out[70000];
    for (size_t i = 0; i < sizeof(src); i++)
        src[i] = (uint8_t)(i * 7 + 3);
    for (size_t off = 0; off < sizeof(src); off += 1000)
        assert_int_equal(gw_bufq_append(&q, src + off, 1000), 0);
    /* Two readers: one at the front, one 20000 bytes in. */
    assert_int_equal(gw_bufq_peek(&q, 0, out, 5), 5);
    assert_memory_equal(out, src, 5);
    assert_int_equal(gw_bufq_peek(&q, 20000, out, 30000), 30000);
    assert_memory_equal(out, src + 20000, 30000);
    /* Past the end: only what is there. */
    assert_int_equal(gw_bufq_peek(&q, 69990, out, 100), 10);
    assert_memory_equal(out, src + 69990, 10);
    assert_int_equal(gw_bufq_peek(&q, 70000, out, 100), 0);
    assert_int_equal(q.len, sizeof(src)); /* peeking drops nothing */
    /* Dropping moves the front; offsets are then relative to it. */
    assert_int_equal(gw_bufq_drop(&q, 33333), 33333);
    assert_int_equal(q.len, sizeof(src) - 33333);
    assert_int_equal(gw_bufq_peek(&q, 1, out, 40000), sizeof(src) - 33334);
    assert_memory_equal(out, src + 33334, sizeof(src) - 33334);
    assert_int_equal(gw_bufq_drop(&q, 100000), sizeof(src) - 33333);
    assert_int_equal(q.len, 0);
    gw_bufq_reset(&q);
}

/* Splicing moves bytes in order without a copy, whatever state either
 * queue is in (empty, drained, partly read), and leaves the source empty
 * and reusable. */
static void test_splice(void **state)
{
    (void)state;
    static uint8_t src[50000], out[50000];
    for (size_t i = 0; i < sizeof(src); i++)
        src[i] = pattern(i);
    struct gw_bufq a, b;
    gw_bufq_init(&a);
    gw_bufq_init(&b);
    /* empty into empty */
    gw_bufq_splice(&a, &b);
    assert_int_equal(a.len, 0);
    /* into an empty queue, then behind bytes partly read */
    assert_int_equal(gw_bufq_append(&b, src, 300), 0);
    gw_bufq_splice(&a, &b);
    assert_int_equal(a.len, 300);
    assert_int_equal(b.len, 0);
    assert_int_equal(gw_bufq_read(&a, out, 100), 100);
    assert_int_equal(gw_bufq_append(&b, src + 300, 20000), 0);
    assert_int_equal(gw_bufq_read(&b, out, 0), 0);
    gw_bufq_splice(&a, &b);
    assert_int_equal(a.len, 20200);
    /* a source read from first: only its unread bytes move */
    assert_int_equal(gw_bufq_append(&b, src + 20000, 500), 0);
    assert_int_equal(gw_bufq_read(&b, out, 200), 200);
    assert_memory_equal(out, src + 20000, 200);
    assert_int_equal(gw_bufq_append(&b, src + 20500, 29500), 0);
    gw_bufq_splice(&a, &b);
    assert_int_equal(a.len, 20200 + 29800);
    /* appends after a splice go behind the spliced bytes */
    assert_int_equal(gw_bufq_append(&b, src, 10), 0); /* the source is reusable */
    assert_int_equal(b.len, 10);
    gw_bufq_reset(&b);
    size_t got = gw_bufq_read(&a, out, sizeof(out));
    assert_int_equal(got, 20200 + 29800);
    assert_memory_equal(out, src + 100, 20200);
    assert_memory_equal(out + 20200, src + 20200, 29800);
    assert_int_equal(a.len, 0);
    gw_bufq_reset(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_roundtrip_shapes, reset_hook),
        cmocka_unit_test_setup(test_small_message_small_allocation, reset_hook),
        cmocka_unit_test_setup(test_chunks_freed_as_they_drain, reset_hook),
        cmocka_unit_test_setup(test_enomem_leaves_queue_unchanged, reset_hook),
        cmocka_unit_test_setup(test_peek_at_offsets_and_drop, reset_hook),
        cmocka_unit_test_setup(test_splice, reset_hook),
    };
    return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
