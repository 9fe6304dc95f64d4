/* SPDX-License-Identifier: Apache-2.0 */
/* infergw-prefix-bench — the cost of a prefix-cache routing decision
 * (gateway/src/route/prefix.c, prefixidx.c, kvindex.c, prefixscore.c).
 *
 * The request: a KServe v2 ModelInferRequest whose BYTES input text_input
 * holds a 4 KB text prompt, hashed in blocks of 64 bytes (64 blocks). 1,024
 * such prompts: 32 system prompts of 2 KB (32 blocks) each followed by 32
 * different 2 KB conversations. A decision is: gw_prefix_hash over the whole
 * message, gw_pidx_longest_match over the eligible replicas (4 or 64), and
 * gw_pscore_pick; "+ record" adds gw_pidx_record of the chosen replica, which
 * the gateway does for every routed call. The index is warm: every prompt was
 * recorded once before timing, so lookups walk all 64 blocks. Then the same
 * with the precise index (gw_kvidx_usable + gw_kvidx_longest_match instead of
 * the estimation lookup, no record).
 *
 * Two threads: both run "+ record" decisions for --ms, first on one shared
 * index (GW_PIDX_SHARED, one mutex), then each on its own private index
 * (GW_PIDX_PRIVATE, half the cap each), and print ns per decision per thread
 * and decisions per second in all. Each single-thread figure is the best of
 * three runs of --ms milliseconds.
 *
 * Memory: 1,000,000 distinct prefixes of 64 blocks recorded into a 64 MiB
 * index (--prefix-index-bytes' default): the index's own byte count, entries
 * used, evictions, the process's resident set before and after, and the time
 * per recorded prefix.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "route/kvindex.h"
#include "route/prefix.h"
#include "route/prefixidx.h"
#include "route/prefixscore.h"
#include "route/ring.h"

#define NPROMPTS   1024
#define PROMPT_LEN 4096
#define BLOCK      64
#define NBLOCKS    64
#define MSG_CAP    (PROMPT_LEN + 128)
#define POOL       7

struct msg {
    uint8_t b[MSG_CAP];
    size_t len;
};

static struct msg msgs[NPROMPTS];
static uint64_t keys64[64];
static unsigned bench_ms = 300;

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t now_ms(void)
{
    return (uint64_t)(now_s() * 1000.0);
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---- a ModelInferRequest, written by hand --------------------------------- */

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static size_t put_bytes(uint8_t *p, unsigned field, const void *data, size_t len)
{
    size_t n = put_varint(p, (uint64_t)field << 3 | 2);
    n += put_varint(p + n, len);
    memcpy(p + n, data, len);
    return n + len;
}

/* model_name "llm", inputs[0] = {name text_input, datatype BYTES, shape [1],
 * contents.bytes_contents [prompt]}. */
static void build(struct msg *m, const char *prompt)
{
    uint8_t contents[PROMPT_LEN + 16], tensor[PROMPT_LEN + 64];
    size_t nc = put_bytes(contents, 8, prompt, PROMPT_LEN), nt = 0;
    uint8_t shape[2] = {1};

    nt += put_bytes(tensor + nt, 1, "text_input", 10);
    nt += put_bytes(tensor + nt, 2, "BYTES", 5);
    nt += put_bytes(tensor + nt, 3, shape, 1); /* packed int64 [1] */
    nt += put_bytes(tensor + nt, 5, contents, nc);
    m->len = put_bytes(m->b, 1, "llm", 3);
    m->len += put_bytes(m->b + m->len, 5, tensor, nt);
}

static void build_prompts(void)
{
    char prompt[PROMPT_LEN + 1];

    for (int i = 0; i < NPROMPTS; i++) {
        uint64_t sys = (uint64_t)(i / 32), conv = (uint64_t)i;
        for (int k = 0; k < PROMPT_LEN; k++) {
            uint64_t seed =
                k < PROMPT_LEN / 2 ? sys * 7919 + (uint64_t)k : conv * 104729 + (uint64_t)k;
            prompt[k] = (char)('a' + rng_next(&seed) % 26);
        }
        prompt[PROMPT_LEN] = '\0';
        build(&msgs[i], prompt);
    }
    for (int r = 0; r < 64; r++) {
        char addr[32];
        int n = snprintf(addr, sizeof(addr), "10.0.%d.%d:7000", r / 250, r % 250 + 1);
        keys64[r] = gw_pidx_replica_key(addr, (size_t)n);
    }
}

/* ---- one decision ------------------------------------------------------- */

struct ctx {
    struct gw_pidx *idx;
    struct gw_kvidx *kv;
    size_t nrep;
    uint32_t inflight[64];
    int record;
    int precise;
    uint64_t decisions, prefix_hits;
};

static const struct gw_prefix_params pp = {
    .input = "text_input", .block = BLOCK, .max_blocks = NBLOCKS};

static int decide(struct ctx *c, const struct msg *m, uint64_t now)
{
    uint64_t h[NBLOCKS];
    uint32_t depth[64];
    struct gw_pscore_cand cand[64];
    struct gw_pscore_params sp = {.nblocks = 0, .load_weight = 1.0, .imbalance = 1.5};
    struct gw_pscore_result res;
    size_t n = 0;
    const char *err;
    uint64_t total = 0;

    if (gw_prefix_hash(m->b, m->len, &pp, h, &n, &err) != GW_PREFIX_OK)
        abort();
    if (c->precise) {
        if (!gw_kvidx_usable(c->kv, keys64, c->nrep))
            abort();
        gw_kvidx_longest_match(c->kv, h, n, keys64, c->nrep, depth);
    } else {
        gw_pidx_longest_match(c->idx, POOL, h, n, now, 600000, keys64, c->nrep, depth);
    }
    for (size_t j = 0; j < c->nrep; j++) {
        cand[j].key = keys64[j];
        cand[j].inflight = c->inflight[j];
        cand[j].matched = depth[j];
        cand[j].load = -1;
        total += c->inflight[j];
    }
    sp.nblocks = (uint32_t)n;
    sp.cap = gw_ring_load_cap_floor(total, c->nrep, 1.25);
    int pick = gw_pscore_pick(cand, c->nrep, &sp, &res);
    if (pick < 0) /* ring fallback: the bench stands in a fixed spread */
        pick = (int)(h[0] % c->nrep);
    else
        c->prefix_hits++;
    if (c->record)
        gw_pidx_record(c->idx, POOL, h, n, keys64[pick], now);
    c->decisions++;
    return pick;
}

/* ns per decision over about bench_ms, starting at prompt <from>. */
static double run(struct ctx *c, unsigned from)
{
    double t0 = now_s(), t;
    uint64_t done = 0, now = now_ms();
    unsigned i = from;

    do {
        for (int k = 0; k < 256; k++, i++)
            decide(c, &msgs[(i * 7) % NPROMPTS], now);
        done += 256;
        t = now_s();
    } while (t - t0 < bench_ms / 1000.0);
    return (t - t0) * 1e9 / (double)done;
}

static double best_of_3(struct ctx *c)
{
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double v = run(c, (unsigned)r * 100);
        if (v < best)
            best = v;
    }
    return best;
}

static void warm(struct ctx *c)
{
    int rec = c->record;
    c->record = 1;
    for (int i = 0; i < NPROMPTS; i++)
        decide(c, &msgs[i], now_ms());
    c->record = rec;
}

static void feed_kv(struct gw_kvidx *kv, struct gw_pidx *idx, size_t nrep)
{
    /* Every replica announces itself (cleared), then holds the prompts the
     * estimation index sent it: replay each prompt's chain as stored
     * events. */
    struct gw_kv_event ev;
    uint64_t seq[64];
    char why[128];

    for (size_t r = 0; r < nrep; r++) {
        memset(&ev, 0, sizeof(ev));
        snprintf(ev.replica, sizeof(ev.replica), "r%zu", r);
        ev.rkey = keys64[r];
        ev.epoch = 1;
        ev.seq = seq[r] = 1;
        ev.op = GW_KV_CLEARED;
        gw_kvidx_apply(kv, &ev, why, sizeof(why));
    }
    for (int i = 0; i < NPROMPTS; i++) {
        uint64_t h[NBLOCKS];
        uint32_t depth[64];
        size_t n;
        const char *err;
        gw_prefix_hash(msgs[i].b, msgs[i].len, &pp, h, &n, &err);
        gw_pidx_longest_match(idx, POOL, h, n, now_ms(), 600000, keys64, nrep, depth);
        for (size_t r = 0; r < nrep; r++) {
            if (depth[r] != n)
                continue;
            memset(&ev, 0, sizeof(ev));
            ev.rkey = keys64[r];
            ev.epoch = 1;
            ev.seq = ++seq[r];
            ev.op = GW_KV_STORED;
            memcpy(ev.hashes, h, n * sizeof(h[0]));
            ev.nhashes = n;
            gw_kvidx_apply(kv, &ev, why, sizeof(why));
        }
    }
}

/* The parts alone, on pre-hashed prompts: ns per longest_match and per
 * record, <nrep> candidates. */
static void parts(struct gw_pidx *idx, size_t nrep, const char *what)
{
    static uint64_t hs[NPROMPTS][NBLOCKS];
    uint32_t depth[64];
    size_t n;
    const char *err;
    uint64_t now = now_ms(), iters = 0, sum = 0;
    double t0, t;

    for (int i = 0; i < NPROMPTS; i++)
        gw_prefix_hash(msgs[i].b, msgs[i].len, &pp, hs[i], &n, &err);
    t0 = now_s();
    do {
        for (int k = 0; k < 256; k++, iters++)
            sum += gw_pidx_longest_match(idx, POOL, hs[(iters * 7) % NPROMPTS], NBLOCKS, now,
                                         600000, keys64, nrep, depth);
        t = now_s();
    } while (t - t0 < bench_ms / 1000.0);
    printf("| %zu | estimate (%s) | gw_pidx_longest_match alone | %.0f | %.1f blocks |\n", nrep,
           what, (t - t0) * 1e9 / (double)iters, (double)sum / (double)iters);
    t0 = now_s();
    iters = 0;
    do {
        for (int k = 0; k < 256; k++, iters++)
            gw_pidx_record(idx, POOL, hs[(iters * 7) % NPROMPTS], NBLOCKS, keys64[iters % nrep],
                           now);
        t = now_s();
    } while (t - t0 < bench_ms / 1000.0);
    printf("| %zu | estimate (%s) | gw_pidx_record alone | %.0f | - |\n", nrep, what,
           (t - t0) * 1e9 / (double)iters);
}

static void single_thread(void)
{
    uint64_t h[NBLOCKS];
    size_t n;
    const char *err;
    double t0, t;
    uint64_t iters = 0;

    t0 = now_s();
    do {
        for (int k = 0; k < 256; k++, iters++)
            gw_prefix_hash(msgs[iters % NPROMPTS].b, msgs[iters % NPROMPTS].len, &pp, h, &n, &err);
        t = now_s();
    } while (t - t0 < bench_ms / 1000.0);
    printf("gw_prefix_hash, 4 KB text prompt, 64 blocks of 64 bytes: %.1f ns\n\n",
           (t - t0) * 1e9 / (double)iters);

    printf("| replicas | index | decision | ns/decision | prefix picks |\n|---|---|---|---|---|\n");
    size_t reps[2] = {4, 64};
    for (int ri = 0; ri < 2; ri++) {
        for (int mode = 0; mode < 2; mode++) {
            struct ctx c = {.nrep = reps[ri]};
            c.idx = gw_pidx_create(64u << 20, mode == 0 ? GW_PIDX_SHARED : GW_PIDX_PRIVATE);
            warm(&c);
            for (int rec = 0; rec < 2; rec++) {
                c.record = rec;
                c.decisions = c.prefix_hits = 0;
                double ns = best_of_3(&c);
                printf("| %zu | estimate (%s) | hash + match + score%s | %.0f | %.1f%% |\n",
                       reps[ri], mode == 0 ? "shared" : "private", rec ? " + record" : "", ns,
                       100.0 * (double)c.prefix_hits / (double)c.decisions);
            }
            if (mode == 0) {
                c.kv = gw_kvidx_create(256u << 20, 64);
                feed_kv(c.kv, c.idx, c.nrep);
                c.precise = 1;
                c.record = 0;
                c.decisions = c.prefix_hits = 0;
                double ns = best_of_3(&c);
                printf("| %zu | precise | hash + usable + match + score | %.0f | %.1f%% |\n",
                       reps[ri], ns, 100.0 * (double)c.prefix_hits / (double)c.decisions);
                gw_kvidx_free(c.kv);
            }
            /* Last: its records spread every prompt over every replica. */
            parts(c.idx, c.nrep, mode == 0 ? "shared" : "private");
            gw_pidx_free(c.idx);
        }
    }
}

/* ---- two threads ---------------------------------------------------------- */

struct thr {
    struct ctx c;
    unsigned from;
    double ns;
};

static void *thr_run(void *arg)
{
    struct thr *t = arg;
    t->ns = run(&t->c, t->from);
    return NULL;
}

static void two_threads(void)
{
    printf("\nTwo threads, each deciding with + record for %u ms:\n\n", bench_ms);
    printf("| replicas | index | thread 1 ns/decision | thread 2 ns/decision | decisions/s in all "
           "|\n|---|---|---|---|---|\n");
    size_t reps[2] = {4, 64};
    for (int ri = 0; ri < 2; ri++)
        for (int mode = 0; mode < 2; mode++) {
            struct thr t[2];
            pthread_t tid[2];
            struct gw_pidx *shared = NULL;
            memset(t, 0, sizeof(t));
            if (mode == 0)
                shared = gw_pidx_create(64u << 20, GW_PIDX_SHARED);
            for (int k = 0; k < 2; k++) {
                t[k].c.nrep = reps[ri];
                t[k].c.idx = shared ? shared : gw_pidx_create(32u << 20, GW_PIDX_PRIVATE);
                t[k].c.record = 1;
                t[k].from = (unsigned)k * 512;
                warm(&t[k].c);
            }
            for (int k = 0; k < 2; k++)
                pthread_create(&tid[k], NULL, thr_run, &t[k]);
            for (int k = 0; k < 2; k++)
                pthread_join(tid[k], NULL);
            printf("| %zu | %s | %.0f | %.0f | %.0f |\n", reps[ri],
                   mode == 0 ? "one shared (mutex)" : "one private per thread", t[0].ns, t[1].ns,
                   1e9 / t[0].ns + 1e9 / t[1].ns);
            if (shared)
                gw_pidx_free(shared);
            else
                for (int k = 0; k < 2; k++)
                    gw_pidx_free(t[k].c.idx);
        }
}

/* ---- memory ----------------------------------------------------------------- */

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;

    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, "VmRSS:", 6))
            kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

static void memory(void)
{
    size_t cap = 64u << 20;
    long before = rss_kb();
    struct gw_pidx *x = gw_pidx_create(cap, GW_PIDX_SHARED);
    struct gw_pidx_stats st;
    uint64_t h[NBLOCKS];
    double t0 = now_s();

    for (uint64_t p = 0; p < 1000000; p++) {
        uint64_t prev = p + 1;
        for (size_t i = 0; i < NBLOCKS; i++)
            h[i] = prev = rng_next(&prev);
        gw_pidx_record(x, POOL, h, NBLOCKS, keys64[p & 3], p / 100);
    }
    double secs = now_s() - t0;
    gw_pidx_stats(x, &st);
    printf("\n1,000,000 distinct prefixes x 64 blocks into a %zu-byte index: index bytes %zu "
           "(%s the cap), entries %zu of %zu, %llu evicted, %.0f ns per prefix recorded; "
           "resident set %ld kB before, %ld kB after\n",
           cap, st.bytes, st.bytes <= cap ? "under" : "OVER", st.entries, st.capacity,
           (unsigned long long)st.evicted, secs * 1e9 / 1e6, before, rss_kb());
    gw_pidx_free(x);
}

int main(int argc, char **argv)
{
    int skip_memory = 0;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--ms") && i + 1 < argc)
            bench_ms = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-memory"))
            skip_memory = 1;
        else {
            fprintf(stderr, "usage: %s [--ms N] [--no-memory]\n", argv[0]);
            return 2;
        }
    }
    if (bench_ms == 0)
        bench_ms = 300;
    build_prompts();
    single_thread();
    two_threads();
    if (!skip_memory)
        memory();
    return 0;
}
