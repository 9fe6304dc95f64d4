/* SPDX-License-Identifier: Apache-2.0 */
/* llmsim — the replica's LLM simulation mode (--llm-model;
 * docs/llm-simulation.md): a prefill cost per uncached prompt unit, a
 * decode cost per token, a bounded running batch with a bounded FIFO
 * queue, a KV cache of chained block hashes (kvcache.h) shared by every
 * call of the replica, load reports, and KV-cache events (kvevents.h).
 *
 * The schedule is computed when a request arrives, so no call ever waits
 * on another thread: the request takes the batch slot that frees first
 * (--max-batch slots) and starts at max(now, that time); it then holds the
 * slot for prefill (uncached units x --prefill-us-per-unit) plus decode
 * (tokens x --decode-us-per-token). A request that would start later
 * than now is queued; with --max-queue requests queued already it is
 * refused (RESOURCE_EXHAUSTED). The hit is looked up on arrival; the
 * prompt's blocks are stored when its prefill is over (rp_llm_prefilled,
 * from the call's timer). A cancelled call keeps its slot until its
 * reserved time is over, as an engine finishing a step would.
 *
 * Shared by the worker threads: one mutex guards the cache and the
 * schedule; nothing under it blocks (KV events go to a bounded queue).
 */
#ifndef INFERGW_REPLICA_LLMSIM_H
#define INFERGW_REPLICA_LLMSIM_H

#include <stddef.h>
#include <stdint.h>

#include "options.h"
#include "service.h"

struct rp_llm;

/* A call's cache figures, for its trailers. */
struct rp_llm_kv {
    long prompt_blocks, hit_blocks, prompt_units, hit_units;
};

/* An admitted request: what its job needs. */
struct rp_llm_call {
    struct rp_llm_kv kv;
    uint64_t *hashes; /* the prompt's blocks, stored after prefill */
    size_t n;
    uint64_t delay_ns; /* queue wait + prefill */
    uint64_t gap_ns;   /* before each message: one token (stream) or all of them (unary) */
};

/* The trailers of a call (docs/llm-simulation.md, "Trailers"). */
struct rp_llm_trailers {
    char prompt_blocks[24], hit_blocks[24], prompt_units[24], hit_units[24];
    char text[300];
    uint8_t bin[160];
    size_t bin_len;
};

/* Creates the simulation for cfg's --llm-model models (and starts the KV
 * event publisher with --kv-events-redis). NULL with a message in <err>. */
struct rp_llm *rp_llm_create(const struct rp_config *cfg, char *err, size_t errlen);
void rp_llm_destroy(struct rp_llm *sim);

/* Handles request <p>/<len> of ModelInfer (<unary>) or ModelStreamInfer if
 * it names an LLM model: returns 1 with <out> filled as rp_service_unary()
 * or rp_service_stream() would, and *call set (malloc'd; free with
 * rp_llm_call_free) when the request was admitted. Returns 0, touching
 * nothing, when the request is not for an LLM model (or undecodable). */
int rp_llm_request(struct rp_llm *sim, const uint8_t *p, size_t len, int unary,
                   struct rp_reply *out, struct rp_llm_call **call);

/* The prefill of <call> is over: its blocks enter the cache. */
void rp_llm_prefilled(struct rp_llm *sim, const struct rp_llm_call *call);
void rp_llm_call_free(struct rp_llm_call *call);

/* Fills <out> with <kv> and the replica's load now. */
void rp_llm_trailers(struct rp_llm *sim, const struct rp_llm_kv *kv, struct rp_llm_trailers *out);

/* The protobuf encoding of an xds.data.orca.v3.OrcaLoadReport with
 * cpu_utilization (1), rps_fractional (6) and named_metrics (8)
 * kv_cache_usage and queue_depth, into buf (>= 160 bytes); its length. */
size_t rp_llm_orca_bin(uint8_t *buf, double cpu, double rps, double kv_usage, double queue);

#endif
