/* SPDX-License-Identifier: Apache-2.0 */
/* llmsim — the LLM simulation mode (see llmsim.h).
 *
 * The batch is --max-batch slots, each the time it frees; the running and
 * queued requests are kept as (start, end) reservations, at most
 * --max-batch + --max-queue of them once the ended ones are purged. The
 * request rate is an exponentially decayed count (time constant 1 s).
 */
#include "llmsim.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/timer.h"
#include "control/keys.h"
#include "kvcache.h"
#include "kvevents.h"
#include "route/prefix.h"
#include "tokens.h"
#include "xds/data/orca/v3/orca_load_report.pb-c.h"

struct resv {
    uint64_t start, end;
    uint32_t blocks; /* the request's prompt blocks, held while it runs */
};

struct rp_llm {
    const struct rp_config *cfg;
    struct rp_models models;
    struct gw_prefix_params pp;
    pthread_mutex_t mu;
    struct rp_kvcache cache;
    uint64_t *slot_free; /* max_batch */
    struct resv *resv;   /* max_batch + max_queue + 1 */
    size_t nresv, resv_cap;
    double rate;
    uint64_t rate_at;
    uint64_t *snap; /* kv_blocks, for snapshots */
    struct rp_kvev *ev;
};

/* --- the prompt --------------------------------------------------------------- */

/* The prompt's units (bytes of the first BYTES element, or ids) in input
 * <name> of <r>; 0 when absent. Mirrors route/prefix.c's reading. */
static long prompt_units(const Inference__ModelInferRequest *r, const char *name)
{
    for (size_t i = 0; i < r->n_inputs; i++) {
        const Inference__ModelInferRequest__InferInputTensor *in = r->inputs[i];
        const Inference__InferTensorContents *c = in->contents;
        int bytes = strcmp(in->datatype, "BYTES") == 0;
        size_t w = strcmp(in->datatype, "INT32") == 0 ? 4 : 8;
        if (strcmp(in->name, name) != 0)
            continue;
        if (c && (c->n_bytes_contents || c->n_int_contents || c->n_int64_contents))
            return bytes ? (c->n_bytes_contents ? (long)c->bytes_contents[0].len : 0)
                         : (long)(c->n_int_contents + c->n_int64_contents);
        if (i >= r->n_raw_input_contents)
            return 0;
        const ProtobufCBinaryData *raw = &r->raw_input_contents[i];
        if (!bytes)
            return (long)(raw->len / w);
        if (raw->len < 4)
            return 0;
        uint32_t n = (uint32_t)raw->data[0] | (uint32_t)raw->data[1] << 8 |
                     (uint32_t)raw->data[2] << 16 | (uint32_t)raw->data[3] << 24;
        return n <= raw->len - 4 ? (long)n : 0;
    }
    return 0;
}

static int is_llm(const struct rp_llm *sim, const char *name)
{
    for (size_t i = 0; i < sim->cfg->nllm_models; i++) {
        if (strcmp(sim->cfg->llm_models[i], name) == 0)
            return 1;
    }
    return 0;
}

/* --- the schedule --------------------------------------------------------------- */

/* Drops the ended reservations; counts the running and the queued ones and
 * the blocks the running ones hold (<held> may be NULL). */
static void purge(struct rp_llm *sim, uint64_t now, long *running, long *queued, uint64_t *held)
{
    uint64_t h = 0;
    *running = *queued = 0;
    for (size_t i = 0; i < sim->nresv;) {
        if (sim->resv[i].end <= now) {
            sim->resv[i] = sim->resv[--sim->nresv];
            continue;
        }
        if (sim->resv[i].start > now) {
            (*queued)++;
        } else {
            (*running)++;
            h += sim->resv[i].blocks;
        }
        i++;
    }
    if (held)
        *held = h;
}

static double rate_at(const struct rp_llm *sim, uint64_t now)
{
    double dt = now > sim->rate_at ? (double)(now - sim->rate_at) / 1e9 : 0.0;
    return sim->rate * exp(-dt);
}

/* Reserves a slot for <work_ns>: 0 with *start_ns set, or -1 (queue full)
 * with the refusal in <err>. Mutex held. */
static int admit(struct rp_llm *sim, uint64_t now, uint64_t work_ns, uint32_t blocks,
                 uint64_t *start_ns, struct rp_error *err)
{
    const struct rp_config *cfg = sim->cfg;
    long running, queued;
    size_t best = 0;

    purge(sim, now, &running, &queued, NULL);
    for (size_t i = 1; i < (size_t)cfg->max_batch; i++) {
        if (sim->slot_free[i] < sim->slot_free[best])
            best = i;
    }
    uint64_t start = sim->slot_free[best] > now ? sim->slot_free[best] : now;
    if (start > now && queued >= cfg->max_queue)
        return rp_fail(err, GRPC_STATUS_RESOURCE_EXHAUSTED,
                       "replica %s is full: %ld requests running (--max-batch %ld) and %ld "
                       "queued (--max-queue %ld)",
                       cfg->id, running, cfg->max_batch, queued, cfg->max_queue);
    sim->slot_free[best] = start + work_ns;
    sim->resv[sim->nresv++] = (struct resv){start, start + work_ns, blocks};
    sim->rate = rate_at(sim, now) + 1.0;
    sim->rate_at = now;
    *start_ns = start;
    return 0;
}

/* --- replies ------------------------------------------------------------------- */

/* A ModelInfer answer: every token at once, token_id INT64 [n] and text
 * BYTES [1] (the tokens' texts concatenated). */
static int pack_unary(const struct rp_tokens *t, struct rp_reply *out)
{
    Inference__ModelInferResponse ir = INFERENCE__MODEL_INFER_RESPONSE__INIT;
    struct rp_token_outputs o;
    int64_t *ids = malloc((size_t)t->end * sizeof(*ids));
    char *text = malloc((size_t)t->end * 16 + 1);
    size_t off = 0;

    if (!ids || !text) {
        free(ids);
        free(text);
        return -1;
    }
    for (long i = 0; i < t->end; i++) {
        char tok[16];
        uint32_t id = rp_tokens_id(t->key, i);
        ids[i] = id;
        rp_tokens_text(id, tok);
        size_t l = strlen(tok);
        memcpy(text + off, tok, l);
        off += l;
    }
    rp_token_outputs_init(&o, ids, (size_t)t->end, text, off);
    ir.model_name = t->model;
    ir.model_version = RP_MODEL_VERSION;
    ir.id = t->id;
    ir.n_outputs = 2;
    ir.outputs = o.outs;
    out->msg_len = protobuf_c_message_get_packed_size(&ir.base);
    out->msg = malloc(out->msg_len + 1);
    if (out->msg)
        protobuf_c_message_pack(&ir.base, out->msg);
    free(ids);
    free(text);
    out->count = 1;
    out->code = GRPC_STATUS_OK;
    return out->msg ? 0 : -1;
}

/* A refusal: a status for ModelInfer and for RESOURCE_EXHAUSTED, else (a
 * bad request on a stream) a response with error_message, as
 * rp_service_stream() answers. */
static void refuse(const Inference__ModelInferRequest *r, int unary, const struct rp_error *err,
                   struct rp_reply *out)
{
    Inference__ModelStreamInferResponse resp = INFERENCE__MODEL_STREAM_INFER_RESPONSE__INIT;
    Inference__ModelInferResponse ids = INFERENCE__MODEL_INFER_RESPONSE__INIT;

    out->code = err->code;
    snprintf(out->detail, sizeof(out->detail), "%s", err->msg);
    if (unary || err->code == GRPC_STATUS_RESOURCE_EXHAUSTED)
        return;
    ids.model_name = r->model_name;
    ids.id = r->id;
    resp.error_message = (char *)err->msg;
    resp.infer_response = &ids;
    out->msg_len = protobuf_c_message_get_packed_size(&resp.base);
    out->msg = malloc(out->msg_len + 1);
    if (!out->msg) {
        out->code = GRPC_STATUS_RESOURCE_EXHAUSTED;
        snprintf(out->detail, sizeof(out->detail), "out of memory");
        return;
    }
    protobuf_c_message_pack(&resp.base, out->msg);
    out->count = 1;
    out->code = GRPC_STATUS_OK;
}

/* --- requests ------------------------------------------------------------------ */

/* Hashes the prompt and admits the request: fills <c> (hashes allocated).
 * 0, or -1 with <err>. */
static int plan(struct rp_llm *sim, const uint8_t *p, size_t len,
                const Inference__ModelInferRequest *r, const struct rp_tokens *t, int unary,
                struct rp_llm_call *c, struct rp_error *err)
{
    const struct rp_config *cfg = sim->cfg;
    const char *why = NULL;
    uint64_t start = 0, now;

    c->hashes = malloc(sim->pp.max_blocks * sizeof(*c->hashes));
    if (!c->hashes)
        return rp_fail(err, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    int rc = gw_prefix_hash(p, len, &sim->pp, c->hashes, &c->n, &why);
    if (rc == GW_PREFIX_NO_INPUT)
        return rp_fail(err, GRPC_STATUS_INVALID_ARGUMENT,
                       "model '%.200s' needs its prompt in input '%.100s' (--prefix-input)",
                       r->model_name, sim->pp.input);
    if (rc != GW_PREFIX_OK)
        return rp_fail(err, GRPC_STATUS_INVALID_ARGUMENT, "input '%.100s': %s", sim->pp.input, why);
    c->kv.prompt_units = prompt_units(r, sim->pp.input);
    c->kv.prompt_blocks = (long)c->n;
    pthread_mutex_lock(&sim->mu);
    c->kv.hit_blocks = (long)rp_kvcache_hit(&sim->cache, c->hashes, c->n);
    c->kv.hit_units = c->kv.hit_blocks * (long)sim->pp.block;
    long uncached = c->kv.prompt_units > c->kv.hit_units ? c->kv.prompt_units - c->kv.hit_units : 0;
    uint64_t prefill = (uint64_t)uncached * (uint64_t)cfg->prefill_us_per_unit * 1000ull;
    uint64_t token = (uint64_t)cfg->decode_us_per_token * 1000ull;
    now = gw_now_ns();
    rc = admit(sim, now, prefill + token * (uint64_t)t->end, (uint32_t)c->n, &start, err);
    pthread_mutex_unlock(&sim->mu);
    if (rc < 0)
        return -1;
    c->delay_ns = start - now + prefill;
    c->gap_ns = unary ? token * (uint64_t)t->end : token;
    return 0;
}

int rp_llm_request(struct rp_llm *sim, const uint8_t *p, size_t len, int unary,
                   struct rp_reply *out, struct rp_llm_call **call)
{
    Inference__ModelInferRequest *r = inference__model_infer_request__unpack(NULL, len, p);
    struct rp_llm_call *c = NULL;
    struct rp_tokens *t = NULL;
    struct rp_error err;

    *call = NULL;
    if (!r || !is_llm(sim, r->model_name)) {
        if (r)
            inference__model_infer_request__free_unpacked(r, NULL);
        return 0;
    }
    memset(out, 0, sizeof(*out));
    c = calloc(1, sizeof(*c));
    t = calloc(1, sizeof(*t));
    if (!c || !t) {
        rp_fail(&err, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        goto refused;
    }
    if (rp_model_check(&sim->models, r->model_name, r->model_version, &err) < 0 ||
        rp_tokens_init(t, r, sim->cfg->decode_tokens, sim->cfg->seed, &err) < 0)
        goto refused;
    if (plan(sim, p, len, r, t, unary, c, &err) < 0)
        goto refused;
    if (unary) {
        int rc = pack_unary(t, out);
        rp_tokens_free(t);
        free(t);
        if (rc < 0) {
            rp_fail(&err, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
            t = NULL;
            goto refused;
        }
    } else {
        out->code = GRPC_STATUS_OK;
        out->tokens = t;
    }
    *call = c;
    inference__model_infer_request__free_unpacked(r, NULL);
    return 1;
refused:
    refuse(r, unary, &err, out);
    if (t) {
        rp_tokens_free(t);
        free(t);
    }
    rp_llm_call_free(c);
    inference__model_infer_request__free_unpacked(r, NULL);
    return 1;
}

void rp_llm_call_free(struct rp_llm_call *c)
{
    if (c) {
        free(c->hashes);
        free(c);
    }
}

void rp_llm_prefilled(struct rp_llm *sim, const struct rp_llm_call *c)
{
    uint64_t stored[GW_PREFIX_BLOCKS_MAX], evicted[GW_PREFIX_BLOCKS_MAX];
    size_t ns, ne;

    pthread_mutex_lock(&sim->mu);
    rp_kvcache_store(&sim->cache, c->hashes, c->n, stored, &ns, evicted, &ne);
    /* Disjoint lists; published under the lock, in the order of the cache's
     * changes relative to snapshots. */
    if (sim->ev) {
        rp_kvev_publish(sim->ev, RP_KVEV_EVICTED, evicted, ne);
        rp_kvev_publish(sim->ev, RP_KVEV_STORED, stored, ns);
    }
    pthread_mutex_unlock(&sim->mu);
}

/* --- load reports -------------------------------------------------------------- */

size_t rp_llm_orca_bin(uint8_t *buf, double cpu, double rps, double kv_usage, double queue)
{
    Xds__Data__Orca__V3__OrcaLoadReport__NamedMetricsEntry
        kv = XDS__DATA__ORCA__V3__ORCA_LOAD_REPORT__NAMED_METRICS_ENTRY__INIT,
        q = XDS__DATA__ORCA__V3__ORCA_LOAD_REPORT__NAMED_METRICS_ENTRY__INIT;
    Xds__Data__Orca__V3__OrcaLoadReport__NamedMetricsEntry *named[] = {&kv, &q};
    Xds__Data__Orca__V3__OrcaLoadReport r = XDS__DATA__ORCA__V3__ORCA_LOAD_REPORT__INIT;
    kv.key = (char *)"kv_cache_usage";
    kv.value = kv_usage;
    q.key = (char *)"queue_depth";
    q.value = queue;
    r.cpu_utilization = cpu;
    r.rps_fractional = rps;
    r.n_named_metrics = 2;
    r.named_metrics = named;
    return xds__data__orca__v3__orca_load_report__pack(&r, buf);
}

void rp_llm_trailers(struct rp_llm *sim, const struct rp_llm_kv *kv, struct rp_llm_trailers *out)
{
    long running, queued;
    uint64_t held;
    double rps;
    uint64_t now = gw_now_ns();

    pthread_mutex_lock(&sim->mu);
    purge(sim, now, &running, &queued, &held);
    rps = rate_at(sim, now);
    pthread_mutex_unlock(&sim->mu);
    /* Sampled as the call ends, when its own reservation has (about) run
     * out: it is counted as running, within the bound, and so are its
     * blocks. */
    if (running < sim->cfg->max_batch) {
        running++;
        held += (uint64_t)kv->prompt_blocks;
    }
    double cpu = (double)running / (double)sim->cfg->max_batch;
    /* As vLLM's kv_cache_usage: the blocks the running requests hold. Cached
     * blocks no request holds are free (evictable) and do not count, so a
     * full cache of idle prefixes is not load. */
    double usage = (double)held / (double)sim->cache.capacity;
    if (usage > 1.0)
        usage = 1.0;
    snprintf(out->prompt_blocks, sizeof(out->prompt_blocks), "%ld", kv->prompt_blocks);
    snprintf(out->hit_blocks, sizeof(out->hit_blocks), "%ld", kv->hit_blocks);
    snprintf(out->prompt_units, sizeof(out->prompt_units), "%ld", kv->prompt_units);
    snprintf(out->hit_units, sizeof(out->hit_units), "%ld", kv->hit_units);
    snprintf(out->text, sizeof(out->text),
             "TEXT cpu_utilization=%.4f, rps_fractional=%.3f, named_metrics.kv_cache_usage=%.4f, "
             "named_metrics.queue_depth=%ld",
             cpu, rps, usage, queued);
    out->bin_len = rp_llm_orca_bin(out->bin, cpu, rps, usage, (double)queued);
}

/* --- life ---------------------------------------------------------------------- */

/* The publisher's snapshot callback: the whole cache, under the lock. */
static void snapshot(struct rp_kvev *ev, void *arg)
{
    struct rp_llm *sim = arg;
    pthread_mutex_lock(&sim->mu);
    size_t n = rp_kvcache_list(&sim->cache, sim->snap);
    rp_kvev_snapshot(ev, sim->snap, n);
    pthread_mutex_unlock(&sim->mu);
}

static int start_events(struct rp_llm *sim, char *err, size_t errlen)
{
    const struct rp_config *cfg = sim->cfg;
    char key[GW_KEY_LEN];
    struct rp_kvev_config ec;

    if (gw_key_pool_kv(key, sizeof(key), cfg->kv_prefix, cfg->kv_pool) < 0) {
        snprintf(err, errlen, "--kv-events-prefix and --kv-pool '%s%s' are too long",
                 cfg->kv_prefix, cfg->kv_pool);
        return -1;
    }
    sim->snap = malloc((size_t)cfg->kv_blocks * sizeof(*sim->snap));
    if (!sim->snap) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memset(&ec, 0, sizeof(ec));
    ec.redis = cfg->kv_events_redis;
    ec.key = key;
    ec.replica = cfg->kv_id;
    ec.maxlen = cfg->kv_events_maxlen;
    ec.snapshot_ms = cfg->kv_snapshot_ms;
    /* Room for two snapshots and the events of many calls. */
    ec.queue_entries = 4096 + 2 * ((size_t)cfg->kv_blocks / RP_KVEV_HASHES + 1);
    ec.snapshot = snapshot;
    ec.arg = sim;
    sim->ev = rp_kvev_start(&ec, err, errlen);
    return sim->ev ? 0 : -1;
}

struct rp_llm *rp_llm_create(const struct rp_config *cfg, char *err, size_t errlen)
{
    struct rp_llm *sim = calloc(1, sizeof(*sim));

    if (!sim)
        goto oom;
    sim->cfg = cfg;
    sim->models.names = cfg->models;
    sim->models.n = cfg->nmodels;
    sim->models.replica_id = cfg->id;
    sim->pp.input = cfg->prefix_input;
    sim->pp.block = (uint32_t)cfg->prefix_block;
    sim->pp.max_blocks = (uint32_t)cfg->prefix_max_blocks;
    sim->resv_cap = (size_t)(cfg->max_batch + cfg->max_queue + 1);
    sim->slot_free = calloc((size_t)cfg->max_batch, sizeof(*sim->slot_free));
    sim->resv = calloc(sim->resv_cap, sizeof(*sim->resv));
    if (!sim->slot_free || !sim->resv || rp_kvcache_init(&sim->cache, (uint32_t)cfg->kv_blocks) < 0)
        goto oom;
    pthread_mutex_init(&sim->mu, NULL);
    if (cfg->kv_events_redis && start_events(sim, err, errlen) < 0) {
        pthread_mutex_destroy(&sim->mu);
        goto fail;
    }
    return sim;
oom:
    snprintf(err, errlen, "out of memory for the LLM simulation (--kv-blocks %ld)", cfg->kv_blocks);
fail:
    if (sim) {
        rp_kvcache_free(&sim->cache);
        free(sim->slot_free);
        free(sim->resv);
        free(sim->snap);
        free(sim);
    }
    return NULL;
}

void rp_llm_destroy(struct rp_llm *sim)
{
    if (!sim)
        return;
    if (sim->ev)
        rp_kvev_stop(sim->ev);
    pthread_mutex_destroy(&sim->mu);
    rp_kvcache_free(&sim->cache);
    free(sim->slot_free);
    free(sim->resv);
    free(sim->snap);
    free(sim);
}
