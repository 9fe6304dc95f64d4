/* SPDX-License-Identifier: Apache-2.0 */
/* infergw-ring-bench — lookups per second of the ring (gateway/src/route/ring.c).
 *
 * For rings of 10, 100 and 1,000 replicas x 100 vnodes it times, on one
 * thread: gw_ring_pick (the plain clockwise walk), gw_ring_pick_bounded
 * (bounded loads, c = 1.25, which also counts the eligible replicas and their
 * calls in flight on every pick), gw_ring_pick_capped (bounded loads with
 * a cap given) and "gateway": the gateway's ring pick, which computes the
 * floored cap (gw_ring_load_cap_floor) from the running totals it keeps
 * (struct gw_ring_tally, engine/poolload.h) on every pick and walks with
 * gw_ring_pick_capped: no census, each with the key's
 * hash (gw_key_hash32, XXH3-64) inside the timed loop and without it (points
 * hashed beforehand); first, what one hash of a key costs, the key hash and
 * the ring tokens' SHA-256 (gw_hash32, the key hash before 1.0). Keys are
 * random (fixed seed); every pick goes through an eligibility callback that
 * reads a per-replica flag, as the gateway's does; in-flight counts are
 * random around 20 per replica, so bounded picks sometimes walk past a full
 * replica. Each figure is the best of three runs of at least --ms
 * milliseconds. Then key movement: the share of keys that change replica
 * when one joins, leaves, or is passed over (drained, ejected), and whether
 * any key moved where consistent hashing says it must not.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "route/ring.h"

#define NKEYS   (1u << 20)
#define KEY_LEN 24

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int healthy(uint32_t idx, void *ctx)
{
    return ((const unsigned char *)ctx)[idx];
}

enum op { OP_PICK, OP_BOUNDED, OP_CAPPED, OP_GATEWAY };
static const char *const op_names[] = {"gw_ring_pick", "gw_ring_pick_bounded",
                                       "gw_ring_pick_capped", "gateway (floor+capped)"};

struct bench {
    const struct gw_ring *ring;
    const char (*keys)[KEY_LEN];
    const uint8_t *key_len;
    const uint32_t *points;
    unsigned char *up;
    const uint32_t *inflight;
    struct gw_ring_tally tally;
    uint64_t cap;
};

/* Runs <n> lookups starting at key <from>; returns a checksum so the
 * compiler cannot drop the work. */
static uint64_t run(const struct bench *b, enum op op, int hash, size_t from, size_t n)
{
    uint64_t sum = 0;

    for (size_t i = 0; i < n; i++) {
        size_t k = (from + i) & (NKEYS - 1);
        uint32_t point = hash ? gw_key_hash32(b->keys[k], b->key_len[k]) : b->points[k];
        int r;

        switch (op) {
        case OP_PICK:
            r = gw_ring_pick(b->ring, point, healthy, b->up, NULL, 0);
            break;
        case OP_BOUNDED:
            r = gw_ring_pick_bounded(b->ring, point, healthy, b->up, NULL, 0, b->inflight, 1.25);
            break;
        case OP_CAPPED:
            r = gw_ring_pick_capped(b->ring, point, healthy, b->up, NULL, 0, b->inflight, b->cap);
            break;
        default: /* what call__attempt_start does per pick (engine/poolload.h) */
            r = gw_ring_pick_capped(
                b->ring, point, healthy, b->up, NULL, 0, b->inflight,
                gw_ring_load_cap_floor(b->tally.inflight, b->tally.n_eligible, 1.25));
            break;
        }
        sum += (uint64_t)r;
    }
    return sum;
}

/* Best lookups per second over three runs of at least <min_s> seconds. */
static double measure(const struct bench *b, enum op op, int hash, double min_s, uint64_t *sink)
{
    double best = 0;
    size_t from = 0;

    for (int rep = 0; rep < 3; rep++) {
        size_t done = 0, batch = 1 << 14;
        double t0 = now_s(), t;

        do {
            *sink += run(b, op, hash, from, batch);
            from += batch;
            done += batch;
            t = now_s() - t0;
        } while (t < min_s);
        if ((double)done / t > best)
            best = (double)done / t;
    }
    return best;
}

/* Nanoseconds per census of <b>'s ring (gw_ring_tally_census with the
 * eligibility callback), which the gateway takes at most once per
 * millisecond per pool and worker; best of three runs of at least <min_s>
 * seconds. */
static double census_ns(const struct bench *b, double min_s, uint64_t *sink)
{
    double best = 0;

    for (int rep = 0; rep < 3; rep++) {
        size_t done = 0;
        double t0 = now_s(), t;

        do {
            struct gw_ring_tally t1;

            gw_ring_tally_census(&t1, b->ring, healthy, b->up, b->inflight);
            *sink += t1.inflight;
            done++;
            t = now_s() - t0;
        } while (t < min_s);
        if (best == 0 || t * 1e9 / (double)done < best)
            best = t * 1e9 / (double)done;
    }
    return best;
}

/* Nanoseconds per hash of the bench's keys: gw_key_hash32, or gw_hash32
 * (SHA-256) when <sha>; best of three runs of at least <min_s> seconds. */
static double hash_ns(const char (*keys)[KEY_LEN], const uint8_t *key_len, int sha, double min_s,
                      uint64_t *sink)
{
    double best = 0;
    size_t from = 0;

    for (int rep = 0; rep < 3; rep++) {
        size_t done = 0;
        double t0 = now_s(), t;

        do {
            for (size_t i = 0; i < 1 << 14; i++, from++) {
                size_t k = from & (NKEYS - 1);

                *sink += sha ? gw_hash32(keys[k], key_len[k]) : gw_key_hash32(keys[k], key_len[k]);
            }
            done += 1 << 14;
            t = now_s() - t0;
        } while (t < min_s);
        if (best == 0 || t * 1e9 / (double)done < best)
            best = t * 1e9 / (double)done;
    }
    return best;
}

/* Key movement: the share of NKEYS keys whose replica changes when one
 * replica joins a ring of <n>, leaves it, or is passed over (drain or
 * ejection: not eligible), and how many of the moved keys went anywhere but
 * where they must (the new replica; away from the one that left). Consistent
 * hashing promises ~1/n moved and 0 misplaced. */
static int gone_idx = -1;
static int eligible_but_gone(uint32_t idx, void *ctx)
{
    (void)ctx;
    return (int)idx != gone_idx;
}

static int movement(size_t n, const uint32_t *points)
{
    char(*names)[32] = malloc((n + 1) * sizeof(*names));
    const char **addrs = malloc((n + 1) * sizeof(*addrs));
    struct gw_ring small, big;
    if (!names || !addrs)
        return -1;
    for (size_t i = 0; i <= n; i++) {
        snprintf(names[i], sizeof(names[i]), "10.1.%u.%u:8000", (unsigned)(i / 250),
                 (unsigned)(i % 250 + 1));
        addrs[i] = names[i];
    }
    if (gw_ring_build(&small, addrs, NULL, n) != 0 || gw_ring_build(&big, addrs, NULL, n + 1) != 0)
        return -1;
    size_t moved = 0, wrong = 0, pass_moved = 0, pass_wrong = 0;
    gone_idx = 0;
    for (size_t k = 0; k < NKEYS; k++) {
        /* Replica n joins (<small> to <big>), or leaves (<big> to <small>):
         * the keys that differ must be exactly those <big> gives replica n. */
        int a = gw_ring_pick(&small, points[k], NULL, NULL, NULL, 0);
        int b = gw_ring_pick(&big, points[k], NULL, NULL, NULL, 0);
        if (a != b) {
            moved++;
            wrong += b != (int)n;
        }
        /* Replica 0 passed over: only its keys may move. */
        int c = gw_ring_pick(&small, points[k], eligible_but_gone, NULL, NULL, 0);
        if (c != a) {
            pass_moved++;
            pass_wrong += a != 0;
        }
    }
    printf("%-9zu %10.4f %10.4f %8zu %10.4f %10.4f %8zu\n", n, 1.0 / (double)(n + 1),
           (double)moved / NKEYS, wrong, 1.0 / (double)n, (double)pass_moved / NKEYS, pass_wrong);
    gw_ring_free(&small);
    gw_ring_free(&big);
    free(names);
    free(addrs);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: infergw-ring-bench [--ms N]\n"
               "  Prints ring lookups per second for 10, 100 and 1000 replicas x 100 vnodes:\n"
               "  gw_ring_pick, gw_ring_pick_bounded (c = 1.25), gw_ring_pick_capped and\n"
               "  the gateway's pick (floored cap from running totals + capped walk), with\n"
               "  the key's gw_key_hash32 (XXH3-64) timed and without it, after the cost of\n"
               "  one key hash and of one SHA-256 (gw_hash32), and what one census of\n"
               "  the ring costs; then the share of keys\n"
               "  that move when a replica joins, leaves or is passed over.\n"
               "  --ms N   minimum milliseconds per run, best of 3 runs [300]\n"
               "  example: infergw-ring-bench --ms 1000\n");
}

int main(int argc, char **argv)
{
    static const size_t sizes[] = {10, 100, 1000};
    static char(*keys)[KEY_LEN];
    uint8_t *key_len;
    uint32_t *points;
    double min_s = 0.3;
    uint64_t seed = 1, sink = 0;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--ms") && i + 1 < argc && atoi(argv[i + 1]) > 0) {
            min_s = atoi(argv[++i]) / 1000.0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    keys = malloc(NKEYS * sizeof(*keys));
    key_len = malloc(NKEYS);
    points = malloc(NKEYS * sizeof(*points));
    if (!keys || !key_len || !points) {
        fprintf(stderr, "infergw-ring-bench: out of memory\n");
        return 1;
    }
    for (size_t k = 0; k < NKEYS; k++) {
        int n = snprintf(keys[k], KEY_LEN, "user-%llu",
                         (unsigned long long)(rng_next(&seed) % 100000000000ull));

        key_len[k] = (uint8_t)n;
        points[k] = gw_key_hash32(keys[k], (size_t)n);
    }

    printf("hash of a key (\"user-<n>\", 6 to 16 bytes): gw_key_hash32 (XXH3-64) %.1f ns, "
           "gw_hash32 (SHA-256) %.1f ns\n\n",
           hash_ns((const char(*)[KEY_LEN])keys, key_len, 0, min_s, &sink),
           hash_ns((const char(*)[KEY_LEN])keys, key_len, 1, min_s, &sink));

    printf("%-9s %-8s %-22s %-6s %14s %10s\n", "replicas", "points", "lookup", "hash", "lookups/s",
           "ns/lookup");
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t n = sizes[s];
        char(*names)[32] = malloc(n * sizeof(*names));
        const char **addrs = malloc(n * sizeof(*addrs));
        uint32_t *inflight = malloc(n * sizeof(*inflight));
        unsigned char *up = malloc(n);
        uint64_t total = 0;
        struct gw_ring ring;
        struct bench b;

        if (!names || !addrs || !inflight || !up) {
            fprintf(stderr, "infergw-ring-bench: out of memory\n");
            return 1;
        }
        for (size_t i = 0; i < n; i++) {
            snprintf(names[i], sizeof(names[i]), "10.0.%u.%u:8000", (unsigned)(i / 250),
                     (unsigned)(i % 250 + 1));
            addrs[i] = names[i];
            inflight[i] = (uint32_t)(16 + rng_next(&seed) % 9); /* 16..24 */
            total += inflight[i];
            up[i] = 1;
        }
        if (gw_ring_build(&ring, addrs, NULL, n) != 0) {
            fprintf(stderr, "infergw-ring-bench: cannot build a ring of %zu\n", n);
            return 1;
        }
        b = (struct bench){
            .ring = &ring,
            .keys = (const char(*)[KEY_LEN])keys,
            .key_len = key_len,
            .points = points,
            .up = up,
            .inflight = inflight,
            .cap = gw_ring_load_cap(total, n, 1.25),
        };
        gw_ring_tally_census(&b.tally, &ring, healthy, up, inflight);
        for (int op = OP_PICK; op <= OP_GATEWAY; op++) {
            for (int hash = 1; hash >= 0; hash--) {
                double rate = measure(&b, (enum op)op, hash, min_s, &sink);

                printf("%-9zu %-8zu %-22s %-6s %14.0f %10.1f\n", n, ring.npoints, op_names[op],
                       hash ? "yes" : "no", rate, 1e9 / rate);
                fflush(stdout);
            }
        }
        printf("%-9zu census (gateway: once per ms per pool and worker): %.0f ns\n", n,
               census_ns(&b, min_s, &sink));
        fflush(stdout);
        gw_ring_free(&ring);
        free(names);
        free(addrs);
        free(inflight);
        free(up);
    }
    printf("\nkey movement over %u keys (100 vnodes each): share of keys whose replica "
           "changes, and moved keys that went elsewhere than they must\n",
           NKEYS);
    printf("%-9s %10s %10s %8s %10s %10s %8s\n", "replicas", "1/(n+1)", "join/leave", "wrong",
           "1/n", "passed", "wrong");
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
        if (movement(sizes[s], points) < 0) {
            fprintf(stderr, "infergw-ring-bench: cannot build rings of %zu\n", sizes[s]);
            return 1;
        }
    fprintf(stderr, "(checksum %llu)\n", (unsigned long long)sink);
    free(keys);
    free(key_len);
    free(points);
    return 0;
}
