/* SPDX-License-Identifier: Apache-2.0 */
/* orca — replica load reports in response trailers (ORCA, gRFC A51) and
 * the small load-aware picks built on them (docs/routing.md, "Load
 * reports").
 *
 * Two header forms are read:
 *  - `endpoint-load-metrics`: "TEXT k=v, k=v, ..." (Envoy's text form); keys
 *    cpu_utilization, mem_utilization, rps_fractional,
 *    application_utilization, named_metrics.<name>; unknown keys are
 *    skipped;
 *  - `endpoint-load-metrics-bin`: a serialized xds.data.orca.v3
 *    .OrcaLoadReport (proto/xds/data/orca/v3/, decoded by protobuf-c),
 *    base64 in the header value as gRPC sends binary headers (padding
 *    optional; decoded by OpenSSL). Fields read: cpu_utilization,
 *    mem_utilization, rps_fractional, application_utilization (each when
 *    not zero: proto3 sends no zero, so zero is "not reported", as gRPC's
 *    weighted round robin reads it) and named_metrics; the others are
 *    ignored.
 * A report's load (0..1) is the largest of its utilization and
 * named_metrics.kv_cache_usage that it carries (the resource a replica runs
 * out of first), capped at 1; its utilization is application_utilization
 * when it carries one, else cpu_utilization (as gRPC's weighted round robin
 * reads them); queue_depth is kept but does not enter the load. A value that is not finite or
 * negative, or a mem_utilization or kv_cache_usage above 1, makes the report bad (parse returns -1
 * and the caller counts it); cpu_utilization may pass 1 (gRFC A51: past the replica's soft limits).
 * Pure: no I/O, no global state; any thread. gw_orca_parse_bin() allocates
 * (protobuf-c's unpacking) and frees before it returns.
 */
#ifndef INFERGW_ORCA_H
#define INFERGW_ORCA_H

#include <stddef.h>
#include <stdint.h>

#define GW_ORCA_HAS_CPU   1u
#define GW_ORCA_HAS_MEM   2u
#define GW_ORCA_HAS_RPS   4u
#define GW_ORCA_HAS_KV    8u
#define GW_ORCA_HAS_QUEUE 16u
#define GW_ORCA_HAS_APP   32u

struct gw_orca {
    double cpu, mem, rps, kv, queue, app; /* app: application_utilization */
    unsigned has;                         /* GW_ORCA_HAS_* */
};

/* Parses the text form value[0..len). Returns 0 (out filled; has may be 0
 * when no known key is present), or -1 when malformed or a value is bad. */
int gw_orca_parse_text(const char *value, size_t len, struct gw_orca *out);

/* Parses the -bin form: base64 value[0..len) of an OrcaLoadReport (at most
 * 4 KiB decoded). Returns 0 or -1 as gw_orca_parse_text. */
int gw_orca_parse_bin(const char *value, size_t len, struct gw_orca *out);

/* The report's load in 0..1 (above), or -1 when it carries none of
 * application_utilization, cpu_utilization and named_metrics.kv_cache_usage. */
double gw_orca_load(const struct gw_orca *o);

/* The decaying average: <sample> when <prev> < 0, else
 * prev + GW_ORCA_ALPHA x (sample - prev). */
#define GW_ORCA_ALPHA 0.3
double gw_orca_avg(double prev, double sample);

/* Power of two choices: two distinct candidates of 0..n-1 drawn from <r>
 * (a random 32-bit value), the one with the lower cost wins (ties: the
 * first drawn). n = 1 gives 0, n = 0 gives -1. */
int gw_p2c_pick(const double *cost, size_t n, uint32_t r);

/* The cost least_loaded compares: in-flight calls, scaled up by the
 * reported load when there is one: (inflight + 1) x (1 + load) - 1. */
double gw_p2c_cost(uint32_t inflight, double load);

#endif
