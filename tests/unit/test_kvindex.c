/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/route/kvindex.c, the precise index: parsing
 * stream entries (good ones, and bad ones refused with a reason naming the
 * field), stored / evicted / cleared, gap detection per (replica, epoch),
 * replays ignored, a new epoch with and without cleared, snapshots (a
 * complete run replaces the set and makes the replica fresh, a broken run is
 * abandoned while the live set keeps answering), the pool-level usable
 * answer, the stream lost, forgetting a replica, the memory cap and the
 * replica limit, and a lossy stream from a simulated replica (a fresh view
 * is always exact). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/mem.h"
#include "route/kvindex.h"
#include "route/prefixidx.h"

#define R1 "127.0.0.1:7201"
#define R2 "127.0.0.1:7202"

/* Parses the NULL-terminated name, value, ... list. */
static int parse(struct gw_kv_event *ev, char *err, size_t errlen, ...)
{
    struct gw_kv_field f[16];
    size_t n = 0;
    va_list ap;
    const char *name;

    va_start(ap, errlen);
    while ((name = va_arg(ap, const char *)) != NULL && n < 16) {
        const char *value = va_arg(ap, const char *);
        f[n].name = name;
        f[n].name_len = strlen(name);
        f[n].value = value;
        f[n].value_len = strlen(value);
        n++;
    }
    va_end(ap);
    return gw_kv_event_parse(f, n, ev, err, errlen);
}

/* Builds and applies one event; returns the outcome. <h> is a comma list. */
static enum gw_kv_outcome apply(struct gw_kvidx *x, const char *r, const char *e, unsigned s,
                                const char *op, const char *h, const char *part, const char *parts)
{
    struct gw_kv_event ev;
    char err[256], seq[24], why[256];
    int rc;

    snprintf(seq, sizeof(seq), "%u", s);
    if (part)
        rc = parse(&ev, err, sizeof(err), "r", r, "e", e, "s", seq, "op", op, "h", h, "part", part,
                   "parts", parts, NULL);
    else
        rc = parse(&ev, err, sizeof(err), "r", r, "e", e, "s", seq, "op", op, "h", h, NULL);
    if (rc != 0)
        fail_msg("parse: %s", err);
    return gw_kvidx_apply(x, &ev, why, sizeof(why));
}

#define H1 "0000000000000001"
#define H2 "00000000000000a2"
#define H3 "ffffffffffffff03"
#define H4 "0123456789abcdef"

static uint32_t match(struct gw_kvidx *x, const char *r)
{
    static const uint64_t h[4] = {1, 0xa2, 0xffffffffffffff03ull, 0x0123456789abcdefull};
    uint64_t k = gw_pidx_replica_key(r, strlen(r));
    uint32_t d;
    gw_kvidx_longest_match(x, h, 4, &k, 1, &d);
    return d;
}

static int fresh(struct gw_kvidx *x, const char *r)
{
    uint64_t k = gw_pidx_replica_key(r, strlen(r));
    return gw_kvidx_usable(x, &k, 1);
}

static void test_parse_good(void **state)
{
    struct gw_kv_event ev;
    char err[256] = "";

    (void)state;
    assert_int_equal(parse(&ev, err, sizeof(err), "r", R1, "e", "1733212345000000000", "s", "1",
                           "op", "stored", "h", H1 "," H2 "," H3, NULL),
                     0);
    assert_string_equal(ev.replica, R1);
    assert_true(ev.rkey == gw_pidx_replica_key(R1, strlen(R1)));
    assert_true(ev.epoch == 1733212345000000000ull);
    assert_int_equal(ev.seq, 1);
    assert_int_equal(ev.op, GW_KV_STORED);
    assert_int_equal(ev.nhashes, 3);
    assert_true(ev.hashes[0] == 1 && ev.hashes[1] == 0xa2 && ev.hashes[2] == 0xffffffffffffff03ull);
    assert_int_equal(ev.part, 0);
    /* Field order does not matter; unknown fields are ignored. */
    assert_int_equal(parse(&ev, err, sizeof(err), "op", "cleared", "h", "", "x-later", "1", "s",
                           "18446744073709551615", "e", "0", "r", R2, NULL),
                     0);
    assert_int_equal(ev.op, GW_KV_CLEARED);
    assert_int_equal(ev.nhashes, 0);
    assert_true(ev.seq == UINT64_MAX);
    /* A snapshot part, possibly empty. */
    assert_int_equal(parse(&ev, err, sizeof(err), "r", R1, "e", "7", "s", "9", "op", "snapshot",
                           "h", "", "part", "1", "parts", "1", NULL),
                     0);
    assert_int_equal(ev.op, GW_KV_SNAPSHOT);
    assert_int_equal(ev.part, 1);
    assert_int_equal(ev.parts, 1);
    /* 64 hashes: the most. */
    {
        char h[64 * 17];
        size_t k = 0;
        for (int i = 0; i < 64; i++)
            k += (size_t)snprintf(h + k, sizeof(h) - k, "%s%016x", i ? "," : "", i + 1);
        assert_int_equal(parse(&ev, err, sizeof(err), "r", R1, "e", "7", "s", "9", "op", "evicted",
                               "h", h, NULL),
                         0);
        assert_int_equal(ev.nhashes, 64);
        assert_int_equal(ev.hashes[63], 64);
        assert_string_equal(gw_kv_op_name(ev.op), "evicted");
    }
}

struct bad {
    const char *f[16]; /* name, value pairs, NULL-terminated */
    const char *why;   /* in the message */
};

static void test_parse_bad(void **state)
{
    static const struct bad bad[] = {
        {{"e", "1", "s", "1", "op", "stored", "h", H1, NULL}, "field r missing"},
        {{"r", R1, "s", "1", "op", "stored", "h", H1, NULL}, "field e missing"},
        {{"r", R1, "e", "1", "op", "stored", "h", H1, NULL}, "field s missing"},
        {{"r", R1, "e", "1", "s", "1", "h", H1, NULL}, "field op missing"},
        {{"r", R1, "e", "1", "s", "1", "op", "stored", NULL}, "field h missing"},
        {{"r", R1, "r", R2, "e", "1", "s", "1", "op", "stored", "h", H1, NULL}, "r given twice"},
        {{"r", "", "e", "1", "s", "1", "op", "stored", "h", H1, NULL}, "field r ''"},
        {{"r", "a b", "e", "1", "s", "1", "op", "stored", "h", H1, NULL}, "field r 'a b'"},
        {{"r", "a,b", "e", "1", "s", "1", "op", "stored", "h", H1, NULL}, "field r"},
        {{"r", R1, "e", "-1", "s", "1", "op", "stored", "h", H1, NULL}, "field e '-1'"},
        {{"r", R1, "e", "18446744073709551616", "s", "1", "op", "stored", "h", H1, NULL},
         "field e"},
        {{"r", R1, "e", " 1", "s", "1", "op", "stored", "h", H1, NULL}, "field e ' 1'"},
        {{"r", R1, "e", "1", "s", "0", "op", "stored", "h", H1, NULL}, "field s '0'"},
        {{"r", R1, "e", "1", "s", "1x", "op", "stored", "h", H1, NULL}, "field s '1x'"},
        {{"r", R1, "e", "1", "s", "", "op", "stored", "h", H1, NULL}, "field s ''"},
        {{"r", R1, "e", "1", "s", "1", "op", "STORED", "h", H1, NULL}, "field op 'STORED'"},
        {{"r", R1, "e", "1", "s", "1", "op", "store", "h", H1, NULL}, "expected stored, evicted"},
        {{"r", R1, "e", "1", "s", "1", "op", "stored", "h", "", NULL}, "op stored without hashes"},
        {{"r", R1, "e", "1", "s", "1", "op", "evicted", "h", "", NULL}, "without hashes"},
        {{"r", R1, "e", "1", "s", "1", "op", "cleared", "h", H1, NULL}, "h must be empty"},
        {{"r", R1, "e", "1", "s", "1", "op", "stored", "h", "000000000000001", NULL},
         "hash 1 is not 16 hex digits"},
        {{"r", R1, "e", "1", "s", "1", "op", "stored", "h", "00000000000000011", NULL},
         "comma after hash 1"},
        {{"r", R1, "e", "1", "s", "1", "op", "stored", "h", "000000000000000A", NULL}, "lowercase"},
        {{"r", R1, "e", "1", "s", "1", "op", "stored", "h", "0x00000000000001", NULL}, "lowercase"},
        {{"r", R1, "e", "1", "s", "1", "op", "stored", "h", H1 ",", NULL}, "another hash"},
        {{"r", R1, "e", "1", "s", "1", "op", "stored", "h", "," H1, NULL}, "hash 1"},
        {{"r", R1, "e", "1", "s", "1", "op", "stored", "h", H1 ",," H2, NULL}, "hash 2"},
        {{"r", R1, "e", "1", "s", "1", "op", "stored", "h", H1 ", " H2, NULL}, "hash 2"},
        {{"r", R1, "e", "1", "s", "1", "op", "snapshot", "h", H1, NULL}, "without part"},
        {{"r", R1, "e", "1", "s", "1", "op", "snapshot", "h", H1, "part", "1", NULL},
         "without part"},
        {{"r", R1, "e", "1", "s", "1", "op", "snapshot", "h", H1, "part", "0", "parts", "1", NULL},
         "field part '0'"},
        {{"r", R1, "e", "1", "s", "1", "op", "snapshot", "h", H1, "part", "3", "parts", "2", NULL},
         "part 3 of 2"},
        {{"r", R1, "e", "1", "s", "1", "op", "snapshot", "h", H1, "part", "1", "parts",
          "4294967296", NULL},
         "field parts"},
        {{"r", R1, "e", "1", "s", "1", "op", "stored", "h", H1, "part", "1", "parts", "1", NULL},
         "part/parts given with op stored"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct gw_kv_field f[8];
        size_t n = 0;
        struct gw_kv_event ev;
        char err[256] = "";
        for (const char *const *p = bad[i].f; *p; p += 2, n++) {
            f[n].name = p[0];
            f[n].name_len = strlen(p[0]);
            f[n].value = p[1];
            f[n].value_len = strlen(p[1]);
        }
        if (gw_kv_event_parse(f, n, &ev, err, sizeof(err)) != -1)
            fail_msg("bad entry %zu accepted", i);
        if (!strstr(err, bad[i].why))
            fail_msg("bad entry %zu: message '%s' lacks '%s'", i, err, bad[i].why);
    }
    /* 65 hashes: one too many. */
    {
        char h[65 * 17];
        size_t k = 0;
        struct gw_kv_event ev;
        char err[256];
        for (int i = 0; i < 65; i++)
            k += (size_t)snprintf(h + k, sizeof(h) - k, "%s%016x", i ? "," : "", i + 1);
        assert_int_equal(
            parse(&ev, err, sizeof(err), "r", R1, "e", "7", "s", "9", "op", "stored", "h", h, NULL),
            -1);
        assert_non_null(strstr(err, "more than 64 hashes"));
    }
    /* A value with a NUL or control byte is shown without it. */
    {
        struct gw_kv_field f[5] = {
            {"r", 1, "a\nb", 3},    {"e", 1, "1", 1}, {"s", 1, "1", 1},
            {"op", 2, "stored", 6}, {"h", 1, H1, 16},
        };
        struct gw_kv_event ev;
        char err[256];
        assert_int_equal(gw_kv_event_parse(f, 5, &ev, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "'a?b'"));
        f[0].value = "ab\0c";
        f[0].value_len = 4;
        assert_int_equal(gw_kv_event_parse(f, 5, &ev, err, sizeof(err)), -1);
    }
}

static void test_stored_evicted_cleared(void **state)
{
    struct gw_kvidx *x = gw_kvidx_create(1u << 20, 16);
    struct gw_kv_replica_info info;

    (void)state;
    /* Never heard of: stale, no match. */
    assert_false(fresh(x, R1));
    assert_int_equal(match(x, R1), 0);
    assert_int_equal(apply(x, R1, "100", 1, "cleared", "", NULL, NULL), GW_KV_REFRESHED);
    assert_true(fresh(x, R1));
    assert_int_equal(apply(x, R1, "100", 2, "stored", H1 "," H2 "," H3, NULL, NULL), GW_KV_OK);
    assert_int_equal(match(x, R1), 3);
    assert_int_equal(apply(x, R1, "100", 3, "stored", H4, NULL, NULL), GW_KV_OK);
    assert_int_equal(match(x, R1), 4);
    assert_int_equal(apply(x, R1, "100", 4, "evicted", H2, NULL, NULL), GW_KV_OK);
    assert_int_equal(match(x, R1), 1); /* the chain breaks at block 1 */
    gw_kvidx_replica(x, gw_pidx_replica_key(R1, strlen(R1)), &info);
    assert_int_equal(info.known, 1);
    assert_int_equal(info.stale, 0);
    assert_int_equal(info.held, 3);
    assert_int_equal(info.seq, 4);
    assert_int_equal(info.epoch, 100);
    /* Evicting what is not there, storing twice: harmless. */
    assert_int_equal(apply(x, R1, "100", 5, "evicted", H2, NULL, NULL), GW_KV_OK);
    assert_int_equal(apply(x, R1, "100", 6, "stored", H1, NULL, NULL), GW_KV_OK);
    assert_int_equal(apply(x, R1, "100", 7, "cleared", "", NULL, NULL), GW_KV_OK);
    assert_int_equal(match(x, R1), 0);
    assert_true(fresh(x, R1));
    /* The hash 0 is a hash like any other. */
    assert_int_equal(apply(x, R1, "100", 8, "stored", "0000000000000000", NULL, NULL), GW_KV_OK);
    gw_kvidx_replica(x, gw_pidx_replica_key(R1, strlen(R1)), &info);
    assert_int_equal(info.held, 1);
    {
        uint64_t z = 0, k = gw_pidx_replica_key(R1, strlen(R1));
        uint32_t d;
        assert_int_equal(gw_kvidx_longest_match(x, &z, 1, &k, 1, &d), 1);
    }
    assert_int_equal(apply(x, R1, "100", 9, "evicted", "0000000000000000", NULL, NULL), GW_KV_OK);
    gw_kvidx_replica(x, gw_pidx_replica_key(R1, strlen(R1)), &info);
    assert_int_equal(info.held, 0);
    gw_kvidx_free(x);
}

/* Many stores and evictions against a reference (backward-shift deletion). */
static void test_set_against_reference(void **state)
{
    struct gw_kvidx *x = gw_kvidx_create(8u << 20, 4);
    static unsigned char ref[4096];
    uint64_t rng = 7, k = gw_pidx_replica_key(R1, strlen(R1));
    unsigned s = 1;

    (void)state;
    apply(x, R1, "1", s++, "cleared", "", NULL, NULL);
    for (int i = 0; i < 20000; i++) {
        char h[17];
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        unsigned v = (unsigned)(rng >> 40) % 4096;
        int del = (rng >> 20) & 1;
        snprintf(h, sizeof(h), "%016llx", (unsigned long long)v * 0x10001ull);
        assert_int_equal(apply(x, R1, "1", s++, del ? "evicted" : "stored", h, NULL, NULL),
                         GW_KV_OK);
        ref[v] = !del;
    }
    size_t held = 0;
    for (unsigned v = 0; v < 4096; v++) {
        uint64_t hv = (uint64_t)v * 0x10001ull;
        uint32_t d;
        gw_kvidx_longest_match(x, &hv, 1, &k, 1, &d);
        if (d != ref[v])
            fail_msg("hash %u: held %u, reference %u", v, d, ref[v]);
        held += ref[v];
    }
    struct gw_kv_replica_info info;
    gw_kvidx_replica(x, k, &info);
    assert_int_equal(info.held, held);
    gw_kvidx_free(x);
}

static void test_gaps_and_epochs(void **state)
{
    struct gw_kvidx *x = gw_kvidx_create(1u << 20, 16);
    struct gw_kv_event ev;
    char err[256], why[256];
    struct gw_kv_stats st;

    (void)state;
    assert_int_equal(apply(x, R1, "100", 1, "cleared", "", NULL, NULL), GW_KV_REFRESHED);
    assert_int_equal(apply(x, R1, "100", 2, "stored", H1 "," H2, NULL, NULL), GW_KV_OK);
    /* A replay (seq not after the last): ignored. */
    assert_int_equal(apply(x, R1, "100", 2, "evicted", H1, NULL, NULL), GW_KV_OLD);
    assert_int_equal(apply(x, R1, "100", 1, "evicted", H1, NULL, NULL), GW_KV_OLD);
    assert_int_equal(match(x, R1), 2);
    /* seq 3 lost: 4 is a gap. The reason says so. */
    assert_int_equal(
        parse(&ev, err, sizeof(err), "r", R1, "e", "100", "s", "4", "op", "stored", "h", H3, NULL),
        0);
    assert_int_equal(gw_kvidx_apply(x, &ev, why, sizeof(why)), GW_KV_LOST);
    assert_non_null(strstr(why, "gap: seq 4 after 2"));
    assert_false(fresh(x, R1));
    assert_int_equal(match(x, R1), 0); /* a stale view matches nothing */
    /* Later events in order do not make it fresh again. */
    assert_int_equal(apply(x, R1, "100", 5, "stored", H4, NULL, NULL), GW_KV_OK);
    assert_false(fresh(x, R1));
    /* cleared does: the cache is empty, exactly. */
    assert_int_equal(apply(x, R1, "100", 6, "cleared", "", NULL, NULL), GW_KV_REFRESHED);
    assert_true(fresh(x, R1));
    assert_int_equal(match(x, R1), 0);
    /* A restart: a new epoch that begins with cleared is fine. */
    assert_int_equal(apply(x, R1, "100", 7, "stored", H1, NULL, NULL), GW_KV_OK);
    assert_int_equal(apply(x, R1, "200", 1, "cleared", "", NULL, NULL), GW_KV_OK);
    assert_true(fresh(x, R1));
    assert_int_equal(match(x, R1), 0);
    /* A new epoch whose first entry is not cleared (it was lost): stale. */
    assert_int_equal(apply(x, R1, "200", 2, "stored", H1, NULL, NULL), GW_KV_OK);
    assert_int_equal(
        parse(&ev, err, sizeof(err), "r", R1, "e", "300", "s", "2", "op", "stored", "h", H2, NULL),
        0);
    assert_int_equal(gw_kvidx_apply(x, &ev, why, sizeof(why)), GW_KV_LOST);
    assert_non_null(strstr(why, "epoch 300 began without cleared"));
    assert_false(fresh(x, R1));
    /* Epochs are per replica: R2 is not affected, and seqs are per (r, e). */
    assert_int_equal(apply(x, R2, "100", 1, "cleared", "", NULL, NULL), GW_KV_REFRESHED);
    assert_int_equal(apply(x, R2, "100", 2, "stored", H1, NULL, NULL), GW_KV_OK);
    assert_true(fresh(x, R2));
    /* A replica first seen mid-stream (the stream was trimmed): stale. */
    assert_int_equal(parse(&ev, err, sizeof(err), "r", "127.0.0.1:7203", "e", "5", "s", "500", "op",
                           "stored", "h", H1, NULL),
                     0);
    assert_int_equal(gw_kvidx_apply(x, &ev, why, sizeof(why)), GW_KV_LOST);
    assert_non_null(strstr(why, "first event seen is seq 500 stored"));
    gw_kvidx_stats(x, &st);
    assert_int_equal(st.replicas, 3);
    assert_int_equal(st.stale_replicas, 2);
    assert_int_equal(st.lost, 3);
    assert_int_equal(st.old, 2);
    /* The stream was lost: every replica stale, with the caller's reason. */
    gw_kvidx_mark_stale(x, "redis connection lost");
    assert_false(fresh(x, R2));
    struct gw_kv_replica_info info;
    gw_kvidx_replica(x, gw_pidx_replica_key(R2, strlen(R2)), &info);
    assert_int_equal(info.stale, 1);
    assert_string_equal(info.why, "redis connection lost");
    gw_kvidx_free(x);
}

static void test_snapshots(void **state)
{
    struct gw_kvidx *x = gw_kvidx_create(1u << 20, 16);
    struct gw_kv_stats st;

    (void)state;
    assert_int_equal(apply(x, R1, "9", 1, "cleared", "", NULL, NULL), GW_KV_REFRESHED);
    assert_int_equal(apply(x, R1, "9", 2, "stored", H3 "," H4, NULL, NULL), GW_KV_OK);
    /* A gap: stale; the live set does not answer. */
    assert_int_equal(apply(x, R1, "9", 4, "stored", H1, NULL, NULL), GW_KV_LOST);
    assert_false(fresh(x, R1));
    /* A snapshot of 3 parts: stays stale until the last part. */
    assert_int_equal(apply(x, R1, "9", 5, "snapshot", H1, "1", "3"), GW_KV_OK);
    assert_false(fresh(x, R1));
    assert_int_equal(apply(x, R1, "9", 6, "snapshot", H2, "2", "3"), GW_KV_OK);
    assert_false(fresh(x, R1));
    assert_int_equal(apply(x, R1, "9", 7, "snapshot", H3, "3", "3"), GW_KV_REFRESHED);
    assert_true(fresh(x, R1));
    /* The snapshot replaced the set: H4 (stored before) is gone. */
    assert_int_equal(match(x, R1), 3);
    struct gw_kv_replica_info info;
    gw_kvidx_replica(x, gw_pidx_replica_key(R1, strlen(R1)), &info);
    assert_int_equal(info.held, 3);
    /* A fresh replica's snapshot replaces the set too (it stays fresh); the
     * live set answers while the run is read. */
    assert_int_equal(apply(x, R1, "9", 8, "snapshot", H1 "," H2, "1", "2"), GW_KV_OK);
    assert_int_equal(match(x, R1), 3);
    assert_int_equal(apply(x, R1, "9", 9, "snapshot", "", "2", "2"), GW_KV_OK);
    assert_int_equal(match(x, R1), 2);
    /* A run broken by a gap is abandoned: the replica stays stale. */
    assert_int_equal(apply(x, R1, "9", 10, "snapshot", H1, "1", "2"), GW_KV_OK);
    assert_int_equal(apply(x, R1, "9", 12, "snapshot", H2, "2", "2"), GW_KV_LOST);
    assert_false(fresh(x, R1));
    /* A run broken by another op is abandoned. */
    assert_int_equal(apply(x, R1, "9", 13, "snapshot", H1, "1", "2"), GW_KV_OK);
    assert_int_equal(apply(x, R1, "9", 14, "stored", H4, NULL, NULL), GW_KV_OK);
    assert_int_equal(apply(x, R1, "9", 15, "snapshot", H2, "2", "2"), GW_KV_OK);
    assert_false(fresh(x, R1));
    /* Parts out of order, or a run that changes its count: abandoned. */
    assert_int_equal(apply(x, R1, "9", 16, "snapshot", H1, "1", "3"), GW_KV_OK);
    assert_int_equal(apply(x, R1, "9", 17, "snapshot", H2, "3", "3"), GW_KV_OK);
    assert_false(fresh(x, R1));
    assert_int_equal(apply(x, R1, "9", 18, "snapshot", H1, "1", "2"), GW_KV_OK);
    assert_int_equal(apply(x, R1, "9", 19, "snapshot", H2, "2", "3"), GW_KV_OK);
    assert_false(fresh(x, R1));
    /* A one-part snapshot right after a restart without cleared: the gap and
     * the repair in one entry. */
    assert_int_equal(apply(x, R1, "10", 3, "snapshot", H1, "1", "1"), GW_KV_REFRESHED);
    assert_true(fresh(x, R1));
    assert_int_equal(match(x, R1), 1);
    gw_kvidx_stats(x, &st);
    assert_int_equal(st.snapshots, 3);
    assert_true(st.snapshots_abandoned >= 4);
    gw_kvidx_free(x);
}

static void test_usable(void **state)
{
    struct gw_kvidx *x = gw_kvidx_create(1u << 20, 16);
    uint64_t k[3] = {gw_pidx_replica_key(R1, strlen(R1)), gw_pidx_replica_key(R2, strlen(R2)),
                     gw_pidx_replica_key("127.0.0.1:7203", 14)};

    (void)state;
    assert_int_equal(gw_kvidx_usable(x, k, 0), 1);
    assert_int_equal(gw_kvidx_usable(x, k, 2), 0);
    apply(x, R1, "1", 1, "cleared", "", NULL, NULL);
    assert_int_equal(gw_kvidx_usable(x, k, 2), 0); /* R2 unknown */
    apply(x, R2, "1", 1, "cleared", "", NULL, NULL);
    assert_int_equal(gw_kvidx_usable(x, k, 2), 1);
    assert_int_equal(gw_kvidx_usable(x, k, 3), 0);  /* 7203 unknown */
    apply(x, R2, "1", 3, "stored", H1, NULL, NULL); /* gap */
    assert_int_equal(gw_kvidx_usable(x, k, 2), 0);
    assert_int_equal(gw_kvidx_usable(x, k, 1), 1); /* R1 alone is fine */
    /* R2 leaves the pool: forgotten, and the pool of R1 alone is usable. */
    gw_kvidx_forget(x, k[1]);
    struct gw_kv_stats st;
    gw_kvidx_stats(x, &st);
    assert_int_equal(st.replicas, 1);
    gw_kvidx_forget(x, k[1]); /* twice: no-op */
    gw_kvidx_free(x);
}

static void test_bounds(void **state)
{
    struct gw_kvidx *x = gw_kvidx_create(64u << 10, 2);
    struct gw_kv_stats st;
    struct gw_kv_event ev;
    char err[256], why[256], h[64 * 17];
    unsigned s = 2;

    (void)state;
    /* The replica limit: a third replica's events are refused. */
    apply(x, R1, "1", 1, "cleared", "", NULL, NULL);
    apply(x, R2, "1", 1, "cleared", "", NULL, NULL);
    assert_int_equal(parse(&ev, err, sizeof(err), "r", "127.0.0.1:7203", "e", "1", "s", "1", "op",
                           "cleared", "h", "", NULL),
                     0);
    assert_int_equal(gw_kvidx_apply(x, &ev, why, sizeof(why)), GW_KV_FULL);
    assert_non_null(strstr(why, "replica limit"));
    /* The memory cap: storing more than 64 KiB of slots leaves the replica
     * stale with its set dropped, and the byte count under the cap. */
    enum gw_kv_outcome out = GW_KV_OK;
    for (unsigned b = 0; b < 200 && out == GW_KV_OK; b++) {
        size_t k = 0;
        for (int i = 0; i < 64; i++)
            k += (size_t)snprintf(h + k, sizeof(h) - k, "%s%016x", i ? "," : "", b * 64 + i + 1);
        assert_int_equal(parse(&ev, err, sizeof(err), "r", R1, "e", "1", "s",
                               (snprintf(why, sizeof(why), "%u", s++), why), "op", "stored", "h", h,
                               NULL),
                         0);
        out = gw_kvidx_apply(x, &ev, why, sizeof(why));
        gw_kvidx_stats(x, &st);
        assert_true(st.bytes <= 64u << 10);
    }
    assert_int_equal(out, GW_KV_FULL);
    assert_non_null(strstr(why, "memory cap"));
    assert_false(fresh(x, R1));
    gw_kvidx_stats(x, &st);
    assert_int_equal(st.full, 2);
    assert_true(st.bytes <= 64u << 10);
    assert_int_equal(st.held, 0);
    /* A snapshot that fits makes it fresh again. */
    apply(x, R1, "1", s++, "snapshot", H1, "1", "1");
    assert_true(fresh(x, R1));
    assert_null(gw_kvidx_create(1, 0));
    gw_kvidx_free(x);
    gw_kvidx_free(NULL);
}

/* A simulated replica publishes events for a cache it holds (stores,
 * evictions, restarts with cleared, snapshots of up to 64 hashes a part),
 * and 3% of its entries are lost on the way. Whenever the index says the
 * replica is fresh and the latest entry arrived (a loss shows only with the
 * next entry's seq), its view is exactly the replica's cache; losses make it
 * stale and a later complete snapshot or cleared makes it fresh again. */
struct sim {
    unsigned char held[301]; /* hashes 1..300 */
    uint64_t epoch, seq;
    uint64_t rng;
    unsigned lost;
    int last_lost; /* the latest entry was lost: nothing can tell yet */
};

static unsigned sim_rand(struct sim *m, unsigned n)
{
    m->rng = m->rng * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned)(m->rng >> 33) % n;
}

static void sim_send(struct sim *m, struct gw_kvidx *x, enum gw_kv_op op, const uint64_t *h,
                     size_t n, uint32_t part, uint32_t parts)
{
    struct gw_kv_event ev;
    char why[256];

    memset(&ev, 0, sizeof(ev));
    snprintf(ev.replica, sizeof(ev.replica), "%s", R1);
    ev.rkey = gw_pidx_replica_key(R1, strlen(R1));
    ev.epoch = m->epoch;
    ev.seq = ++m->seq;
    ev.op = op;
    if (n)
        memcpy(ev.hashes, h, n * sizeof(*h));
    ev.nhashes = n;
    ev.part = part;
    ev.parts = parts;
    m->last_lost = sim_rand(m, 100) < 3;
    if (m->last_lost) {
        m->lost++;
        return;
    }
    gw_kvidx_apply(x, &ev, why, sizeof(why));
}

static void sim_snapshot(struct sim *m, struct gw_kvidx *x)
{
    uint64_t h[GW_KV_HASHES_MAX];
    size_t count = 0, n = 0;
    uint32_t parts, part = 1;

    for (unsigned v = 1; v <= 300; v++)
        count += m->held[v];
    parts = count ? (uint32_t)((count + GW_KV_HASHES_MAX - 1) / GW_KV_HASHES_MAX) : 1;
    for (unsigned v = 1; v <= 300; v++) {
        if (!m->held[v])
            continue;
        h[n++] = v;
        if (n == GW_KV_HASHES_MAX) {
            sim_send(m, x, GW_KV_SNAPSHOT, h, n, part++, parts);
            n = 0;
        }
    }
    if (n || count == 0)
        sim_send(m, x, GW_KV_SNAPSHOT, h, n, part, parts);
}

static void sim_step(struct sim *m, struct gw_kvidx *x)
{
    uint64_t h[GW_KV_HASHES_MAX];
    size_t n = 0, want = 1 + sim_rand(m, 20);
    unsigned r = sim_rand(m, 100);

    if (r < 45) {
        while (n < want) {
            unsigned v = 1 + sim_rand(m, 300);
            m->held[v] = 1;
            h[n++] = v;
        }
        sim_send(m, x, GW_KV_STORED, h, n, 0, 0);
    } else if (r < 85) {
        for (unsigned v = 1; v <= 300 && n < want; v += 1 + sim_rand(m, 9))
            if (m->held[v]) {
                m->held[v] = 0;
                h[n++] = v;
            }
        if (n)
            sim_send(m, x, GW_KV_EVICTED, h, n, 0, 0);
    } else if (r < 88) {
        memset(m->held, 0, sizeof(m->held));
        m->epoch++;
        m->seq = 0;
        sim_send(m, x, GW_KV_CLEARED, NULL, 0, 0, 0);
    } else {
        sim_snapshot(m, x);
    }
}

static void test_lossy_stream(void **state)
{
    struct gw_kvidx *x = gw_kvidx_create(4u << 20, 4);
    struct sim m = {.epoch = 1000, .rng = 99};
    uint64_t k = gw_pidx_replica_key(R1, strlen(R1));
    unsigned fresh_checks = 0, stale_steps = 0, recoveries = 0;
    int was_fresh = 0;

    (void)state;
    sim_send(&m, x, GW_KV_CLEARED, NULL, 0, 0, 0);
    for (int step = 0; step < 5000; step++) {
        sim_step(&m, x);
        int now_fresh = gw_kvidx_usable(x, &k, 1);
        if (m.last_lost)
            continue;
        if (!now_fresh) {
            stale_steps++;
            was_fresh = 0;
            continue;
        }
        recoveries += !was_fresh;
        was_fresh = 1;
        fresh_checks++;
        size_t held = 0;
        for (unsigned v = 1; v <= 300; v++) {
            uint64_t hv = v;
            uint32_t d;
            gw_kvidx_longest_match(x, &hv, 1, &k, 1, &d);
            if (d != m.held[v])
                fail_msg("step %d: fresh view says %u for hash %u, the replica %u", step, d, v,
                         m.held[v]);
            held += m.held[v];
        }
        struct gw_kv_replica_info info;
        gw_kvidx_replica(x, k, &info);
        assert_int_equal(info.held, held);
    }
    struct gw_kv_stats st;
    gw_kvidx_stats(x, &st);
    assert_true(st.bytes <= st.max_bytes);
    /* Losses happened, were noticed, and were repaired more than once. */
    assert_true(m.lost > 50);
    assert_true(st.lost > 0);
    assert_true(stale_steps > 0);
    assert_true(recoveries > 5);
    assert_true(fresh_checks > 1000);
    gw_kvidx_free(x);
}

/* Every allocation failing in turn: creation gives NULL, an event that
 * cannot allocate is refused as FULL (or leaves the replica stale), and
 * nothing leaks. */
static void test_allocation_failures(void **state)
{
    (void)state;
    gw_mem_fail_after(-1);
    long base = gw_mem_live();
    int done = 0;
    for (long n = 0; !done && n < 200; n++) {
        gw_mem_fail_after(n);
        struct gw_kvidx *x = gw_kvidx_create(1u << 20, 4);
        if (!x) {
            gw_mem_fail_after(-1);
            assert_int_equal(gw_mem_live(), base);
            continue;
        }
        enum gw_kv_outcome o[5];
        o[0] = apply(x, R1, "1", 1, "cleared", "", NULL, NULL);
        o[1] = apply(x, R1, "1", 2, "stored", H1 "," H2 "," H3, NULL, NULL);
        o[2] = apply(x, R2, "1", 1, "cleared", "", NULL, NULL);
        o[3] = apply(x, R1, "1", 3, "snapshot", H4, "1", "1");
        o[4] = apply(x, R1, "1", 4, "evicted", H4, NULL, NULL);
        done = 1;
        for (int i = 0; i < 5; i++)
            if (o[i] == GW_KV_FULL)
                done = 0;
        gw_mem_fail_after(-1);
        if (done) { /* nothing failed: the full answer */
            assert_int_equal(match(x, R1), 0);
            assert_true(fresh(x, R1));
            assert_true(fresh(x, R2));
        }
        gw_kvidx_free(x);
        assert_int_equal(gw_mem_live(), base);
    }
    assert_true(done);
}

/* Two pools' indexes in one budget: what one holds, the other cannot; a
 * freed index gives its bytes back. */
static void test_shared_budget(void **state)
{
    struct gw_kv_budget b = {.max = 64u << 10};
    struct gw_kvidx *p1 = gw_kvidx_create_in(&b, 4), *p2 = gw_kvidx_create_in(&b, 4);
    struct gw_kv_stats st;
    char h[64 * 17];
    unsigned s = 2;
    enum gw_kv_outcome out = GW_KV_OK;

    (void)state;
    assert_non_null(p1);
    assert_non_null(p2);
    assert_null(gw_kvidx_create_in(NULL, 4));
    apply(p1, R1, "1", 1, "cleared", "", NULL, NULL);
    apply(p2, R1, "1", 1, "cleared", "", NULL, NULL);
    /* p1 fills the budget. */
    for (unsigned blk = 0; blk < 200 && out == GW_KV_OK; blk++) {
        size_t k = 0;
        for (int i = 0; i < 64; i++)
            k += (size_t)snprintf(h + k, sizeof(h) - k, "%s%016x", i ? "," : "", blk * 64 + i + 1);
        out = apply(p1, R1, "1", s++, "stored", h, NULL, NULL);
        assert_true(b.used <= b.max);
    }
    assert_int_equal(out, GW_KV_FULL);
    /* Refill p1 up to just under the cap, then p2 cannot grow past it. */
    apply(p1, R1, "1", s++, "cleared", "", NULL, NULL);
    for (unsigned blk = 0; blk < 40; blk++) {
        size_t k = 0;
        for (int i = 0; i < 64; i++)
            k += (size_t)snprintf(h + k, sizeof(h) - k, "%s%016x", i ? "," : "", blk * 64 + i + 1);
        if (apply(p1, R1, "1", s++, "stored", h, NULL, NULL) != GW_KV_OK)
            break;
    }
    gw_kvidx_stats(p1, &st);
    size_t p1_bytes = st.bytes;
    assert_int_equal(st.budget_used, b.used);
    assert_int_equal(st.max_bytes, 64u << 10);
    out = GW_KV_OK;
    unsigned s2 = 2;
    for (unsigned blk = 0; blk < 200 && out == GW_KV_OK; blk++) {
        size_t k = 0;
        for (int i = 0; i < 64; i++)
            k += (size_t)snprintf(h + k, sizeof(h) - k, "%s%016x", i ? "," : "", blk * 64 + i + 1);
        out = apply(p2, R1, "1", s2++, "stored", h, NULL, NULL);
        assert_true(b.used <= b.max);
    }
    assert_int_equal(out, GW_KV_FULL);
    gw_kvidx_stats(p2, &st);
    assert_true(st.bytes + p1_bytes <= b.max);
    /* Freeing p1 gives its bytes back to the budget. */
    gw_kvidx_free(p1);
    gw_kvidx_stats(p2, &st);
    assert_int_equal(b.used, st.bytes);
    gw_kvidx_free(p2);
    assert_int_equal(b.used, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_stored_evicted_cleared),
        cmocka_unit_test(test_set_against_reference),
        cmocka_unit_test(test_gaps_and_epochs),
        cmocka_unit_test(test_snapshots),
        cmocka_unit_test(test_usable),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_lossy_stream),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_shared_budget),
    };
    return cmocka_run_group_tests_name("kvindex", tests, NULL, NULL);
}
