/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/control/kvview.c, the process-wide precise
 * view: only pools with route_by = prefix and prefix_mode = precise are
 * followed, and pools come and go with snapshots; a followed pool is usable
 * only while the stream is up and every candidate is fresh; the stream lost
 * marks every replica stale until its next cleared; entries are counted by
 * result; the metrics and the describe JSON say the same. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "control/kvview.h"
#include "route/prefixidx.h"
#include "route/route.h"
#include "route/tunables.h"

#define R1 "127.0.0.1:7201"
#define R2 "127.0.0.1:7202"

static char *addrs[] = {R1, R2};

/* A snapshot of pools "p" (precise when <precise>) and "q" (estimation). */
static void want(struct gw_kvview *v, int precise)
{
    struct gw_pool pools[2];
    memset(pools, 0, sizeof(pools));
    pools[0].name = "p";
    pools[0].name_len = 1;
    pools[0].ring.replicas = addrs;
    pools[0].ring.nreplicas = 2;
    pools[0].tun.route_by = GW_ROUTE_BY_PREFIX;
    pools[0].tun.prefix_mode = precise ? GW_PREFIX_MODE_PRECISE : GW_PREFIX_MODE_ESTIMATE;
    pools[1] = pools[0];
    pools[1].name = "q";
    pools[1].tun.prefix_mode = GW_PREFIX_MODE_ESTIMATE;
    struct gw_routes rt;
    memset(&rt, 0, sizeof(rt));
    rt.pools = pools;
    rt.npools = 2;
    gw_kvview_want(v, &rt);
}

static enum gw_kvview_result feed(struct gw_kvview *v, const char *id, const char *r, unsigned s,
                                  const char *op, const char *h)
{
    char seq[16];
    snprintf(seq, sizeof(seq), "%u", s);
    struct gw_kv_field f[5] = {
        {"r", 1, r, strlen(r)},    {"e", 1, "7", 1},       {"s", 1, seq, strlen(seq)},
        {"op", 2, op, strlen(op)}, {"h", 1, h, strlen(h)},
    };
    return gw_kvview_apply(v, 0, id, f, 5);
}

static int match(struct gw_kvview *v, uint32_t *depth)
{
    uint64_t cands[2] = {gw_pidx_replica_key(R1, strlen(R1)), gw_pidx_replica_key(R2, strlen(R2))};
    uint64_t hashes[2] = {0x1111111111111111ull, 0x2222222222222222ull};
    return gw_kvview_match(v, "p", 1, hashes, 2, cands, 2, depth);
}

static void test_follow_match_lose(void **state)
{
    (void)state;
    assert_int_equal(gw_kvview_init(1 << 20), 0);
    struct gw_kvview *v = gw_kvview_global();
    assert_non_null(v);
    uint32_t depth[2];
    assert_int_equal(match(v, depth), -1); /* nothing followed */
    want(v, 1);
    assert_int_equal(gw_kvview_sync(v), 1); /* only p */
    assert_string_equal(gw_kvview_pool_name(v, 0), "p");
    assert_string_equal(gw_kvview_last_id(v, 0), "0-0");
    gw_kvview_set_up(v, 1, NULL);
    assert_int_equal(match(v, depth), -1); /* replicas never heard of */
    assert_int_equal(feed(v, "1-0", R1, 1, "cleared", ""), GW_KVV_APPLIED);
    assert_int_equal(feed(v, "1-1", R2, 1, "cleared", ""), GW_KVV_APPLIED);
    assert_int_equal(feed(v, "1-2", R1, 2, "stored", "1111111111111111,2222222222222222"),
                     GW_KVV_APPLIED);
    assert_int_equal(feed(v, "1-3", R2, 2, "stored", "1111111111111111"), GW_KVV_APPLIED);
    assert_int_equal(feed(v, "1-4", R2, 2, "stored", "1111111111111111"), GW_KVV_IGNORED);
    assert_int_equal(feed(v, "1-5", R2, 2, "stored", "XYZ"), GW_KVV_REJECTED);
    assert_string_equal(gw_kvview_last_id(v, 0), "1-5");
    assert_int_equal(match(v, depth), 2);
    assert_int_equal(depth[0], 2);
    assert_int_equal(depth[1], 1);
    assert_int_equal(gw_kvview_match(v, "q", 1, NULL, 0, NULL, 0, depth), -1);

    json_t *o = json_object();
    assert_int_equal(gw_kvview_describe(v, "p", o), 0);
    assert_true(json_is_true(json_object_get(o, "usable")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "events"), "applied")),
                     4);
    assert_int_equal(json_array_size(json_object_get(o, "replicas")), 2);
    json_decref(o);
    o = json_object();
    assert_int_equal(gw_kvview_describe(v, "q", o), 0);
    assert_true(json_is_false(json_object_get(o, "followed")));
    json_decref(o);

    /* A gap makes R2 stale: the pool is not usable. */
    assert_int_equal(feed(v, "1-6", R2, 5, "stored", "2222222222222222"), GW_KVV_LOST);
    assert_int_equal(match(v, depth), -1);
    assert_int_equal(feed(v, "1-7", R2, 6, "cleared", ""), GW_KVV_APPLIED);
    assert_int_equal(match(v, depth), 2); /* R1 still holds both */
    assert_int_equal(depth[1], 0);

    /* The stream lost: stale until each replica's next cleared. */
    gw_kvview_set_up(v, 0, "test");
    assert_int_equal(match(v, depth), -1);
    gw_kvview_set_up(v, 1, NULL);
    assert_int_equal(match(v, depth), -1);
    assert_int_equal(feed(v, "2-0", R1, 3, "cleared", ""), GW_KVV_APPLIED);
    assert_int_equal(feed(v, "2-1", R2, 7, "cleared", ""), GW_KVV_APPLIED);
    assert_int_equal(match(v, depth), 0);

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    gw_kvview_render_metrics(v, f);
    fclose(f);
    assert_non_null(strstr(buf, "infergw_kv_events_total{pool=\"p\",result=\"applied\"} 7\n"));
    assert_non_null(strstr(buf, "infergw_kv_events_total{pool=\"p\",result=\"lost\"} 1\n"));
    assert_non_null(strstr(buf, "infergw_kv_view_usable{pool=\"p\"} 1\n"));
    assert_non_null(strstr(buf, "infergw_kv_index_bytes "));
    free(buf);

    /* R2 leaves p's ring: it leaves the index too (and comes back unknown). */
    addrs[1] = "127.0.0.1:7203";
    want(v, 1);
    assert_int_equal(gw_kvview_sync(v), 1);
    addrs[1] = R2;
    want(v, 1);
    assert_int_equal(gw_kvview_sync(v), 1);
    assert_string_equal(gw_kvview_last_id(v, 0), "2-1"); /* the same index */
    assert_int_equal(match(v, depth), -1);               /* R2 never heard of again */
    assert_int_equal(feed(v, "2-2", R2, 1, "cleared", ""), GW_KVV_APPLIED);
    assert_int_equal(match(v, depth), 0);

    /* p stops being precise: no longer followed. */
    want(v, 0);
    assert_int_equal(gw_kvview_sync(v), 0);
    assert_int_equal(match(v, depth), -1);
    /* Back again: a new, empty index read from 0-0. */
    want(v, 1);
    assert_int_equal(gw_kvview_sync(v), 1);
    assert_string_equal(gw_kvview_last_id(v, 0), "0-0");
    assert_int_equal(match(v, depth), -1);
    gw_kvview_shutdown();
    assert_null(gw_kvview_global());
    assert_int_equal(gw_kvview_match(NULL, "p", 1, NULL, 0, NULL, 0, depth), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_follow_match_lose),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
