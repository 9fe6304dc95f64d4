/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for ORCA load reports (route/orca.c), as a replica's trailers
 * bring them. The first byte picks the form: even, the rest is an
 * endpoint-load-metrics text value; odd, an endpoint-load-metrics-bin value
 * (base64 of an OrcaLoadReport, decoded by OpenSSL and protobuf-c).
 *
 * A report parsed is in range: every value it carries finite and not
 * negative, kv_cache_usage and mem_utilization at most 1, its load -1 or in
 * 0..1. Packed again with protobuf-c (as the reference replica packs its
 * own) and parsed as -bin, it gives the same values; its zero scalars are
 * not on the wire (proto3), so they come back as not reported. A report
 * refused leaves nothing reported. */
#include "fuzz.h"
#include "route/orca.h"

#include <math.h>
#include <openssl/evp.h>
#include <string.h>

#include "xds/data/orca/v3/orca_load_report.pb-c.h"

static void check_range(const struct gw_orca *o)
{
    const double v[] = {o->cpu, o->mem, o->rps, o->kv, o->queue, o->app};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        FUZZ_CHECK(isfinite(v[i]) && v[i] >= 0);
    FUZZ_CHECK(!(o->has & GW_ORCA_HAS_KV) || o->kv <= 1);
    FUZZ_CHECK(!(o->has & GW_ORCA_HAS_MEM) || o->mem <= 1);
    double l = gw_orca_load(o);
    FUZZ_CHECK(l == -1 || (l >= 0 && l <= 1));
    FUZZ_CHECK((l == -1) == !(o->has & (GW_ORCA_HAS_CPU | GW_ORCA_HAS_KV | GW_ORCA_HAS_APP)));
}

/* <o> packed as an OrcaLoadReport, in base64 without padding, parsed back. */
static void check_round_trip(const struct gw_orca *o)
{
    Xds__Data__Orca__V3__OrcaLoadReport__NamedMetricsEntry
        kv = XDS__DATA__ORCA__V3__ORCA_LOAD_REPORT__NAMED_METRICS_ENTRY__INIT,
        q = XDS__DATA__ORCA__V3__ORCA_LOAD_REPORT__NAMED_METRICS_ENTRY__INIT;
    Xds__Data__Orca__V3__OrcaLoadReport__NamedMetricsEntry *named[2];
    Xds__Data__Orca__V3__OrcaLoadReport r = XDS__DATA__ORCA__V3__ORCA_LOAD_REPORT__INIT;
    kv.key = (char *)"kv_cache_usage";
    kv.value = o->kv;
    q.key = (char *)"queue_depth";
    q.value = o->queue;
    if (o->has & GW_ORCA_HAS_KV)
        named[r.n_named_metrics++] = &kv;
    if (o->has & GW_ORCA_HAS_QUEUE)
        named[r.n_named_metrics++] = &q;
    r.named_metrics = named;
    r.cpu_utilization = o->has & GW_ORCA_HAS_CPU ? o->cpu : 0;
    r.mem_utilization = o->has & GW_ORCA_HAS_MEM ? o->mem : 0;
    r.rps_fractional = o->has & GW_ORCA_HAS_RPS ? o->rps : 0;
    r.application_utilization = o->has & GW_ORCA_HAS_APP ? o->app : 0;
    uint8_t buf[256];
    char text[400];
    size_t n = xds__data__orca__v3__orca_load_report__pack(&r, buf);
    FUZZ_CHECK(n <= sizeof(buf));
    int len = EVP_EncodeBlock((unsigned char *)text, buf, (int)n);
    while (len > 0 && text[len - 1] == '=')
        len--;
    struct gw_orca back;
    FUZZ_CHECK(gw_orca_parse_bin(text, (size_t)len, &back) == 0);
    unsigned zero = (o->cpu == 0 ? GW_ORCA_HAS_CPU : 0) | (o->mem == 0 ? GW_ORCA_HAS_MEM : 0) |
                    (o->rps == 0 ? GW_ORCA_HAS_RPS : 0) | (o->app == 0 ? GW_ORCA_HAS_APP : 0);
    FUZZ_CHECK(back.has == (o->has & ~zero));
    FUZZ_CHECK(!(back.has & GW_ORCA_HAS_CPU) || back.cpu == o->cpu);
    FUZZ_CHECK(!(back.has & GW_ORCA_HAS_MEM) || back.mem == o->mem);
    FUZZ_CHECK(!(back.has & GW_ORCA_HAS_RPS) || back.rps == o->rps);
    FUZZ_CHECK(!(back.has & GW_ORCA_HAS_KV) || back.kv == o->kv);
    FUZZ_CHECK(!(back.has & GW_ORCA_HAS_QUEUE) || back.queue == o->queue);
    FUZZ_CHECK(!(back.has & GW_ORCA_HAS_APP) || back.app == o->app);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *value = (const char *)data + 1;
    struct gw_orca o;
    int rc = data[0] & 1 ? gw_orca_parse_bin(value, size - 1, &o)
                         : gw_orca_parse_text(value, size - 1, &o);
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (rc < 0)
        return 0;
    check_range(&o);
    check_round_trip(&o);
    return 0;
}
