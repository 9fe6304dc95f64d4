/* SPDX-License-Identifier: Apache-2.0 */
/* kvevents — KV-cache events to a Redis Stream (see kvevents.h).
 *
 * The queue is a ring of fixed-size entries under one mutex; the publisher
 * takes up to BATCH entries at a time, pipelines their XADDs and reads the
 * replies. A failed connect or reply drops the batch and what the queue
 * holds until the next connect attempt.
 */
#include "kvevents.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "base/err.h"
#include "base/hostport.h"
#include "base/timer.h"
#include "jlog.h"

#define BATCH          64
#define BACKOFF_MIN_NS (100ull * 1000000)
#define BACKOFF_MAX_NS (2000ull * 1000000)
#define IO_TIMEOUT_MS  1000
#define STOP_FLUSH_NS  (1000ull * 1000000)

static const char *const op_name[] = {"stored", "evicted", "cleared", "snapshot"};

struct entry {
    uint64_t seq;
    enum rp_kvev_op op;
    uint32_t n, part, parts;
    uint64_t h[RP_KVEV_HASHES];
};

struct rp_kvev {
    char host[256];
    uint16_t port;
    char *key, *replica;
    char epoch[24], maxlen[24];
    uint64_t snapshot_ns;
    rp_kvev_snapshot_cb snapshot;
    void *arg;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct entry *ring;
    size_t cap, head, count;
    uint64_t seq; /* last seq given */
    uint64_t dropped_full, dropped_down, published;
    int stop;
    pthread_t thread;

    /* publisher thread only */
    redisContext *rc;
    uint64_t backoff_ns, retry_at, next_snapshot;
    uint64_t dropped_logged;
};

/* --- the queue ------------------------------------------------------------- */

/* Appends one entry (mutex held); drops it when full. */
static void enqueue(struct rp_kvev *ev, enum rp_kvev_op op, const uint64_t *h, size_t n,
                    uint32_t part, uint32_t parts)
{
    uint64_t seq = ++ev->seq;
    if (ev->count == ev->cap) {
        ev->dropped_full++;
        return;
    }
    struct entry *e = &ev->ring[(ev->head + ev->count) % ev->cap];
    e->seq = seq;
    e->op = op;
    e->n = (uint32_t)n;
    e->part = part;
    e->parts = parts;
    if (n)
        memcpy(e->h, h, n * sizeof(*h));
    ev->count++;
}

void rp_kvev_publish(struct rp_kvev *ev, enum rp_kvev_op op, const uint64_t *h, size_t n)
{
    pthread_mutex_lock(&ev->mu);
    for (size_t off = 0; off < n; off += RP_KVEV_HASHES) {
        size_t k = n - off < RP_KVEV_HASHES ? n - off : RP_KVEV_HASHES;
        enqueue(ev, op, h + off, k, 0, 0);
    }
    pthread_cond_signal(&ev->cv);
    pthread_mutex_unlock(&ev->mu);
}

void rp_kvev_snapshot(struct rp_kvev *ev, const uint64_t *h, size_t n)
{
    size_t parts = n ? (n + RP_KVEV_HASHES - 1) / RP_KVEV_HASHES : 1;

    pthread_mutex_lock(&ev->mu);
    if (ev->cap - ev->count < parts) {
        ev->seq += parts;
        ev->dropped_full += parts;
    } else {
        for (size_t p = 0; p < parts; p++) {
            size_t off = p * RP_KVEV_HASHES;
            size_t k = n - off < RP_KVEV_HASHES ? n - off : RP_KVEV_HASHES;
            enqueue(ev, RP_KVEV_SNAPSHOT, h + off, n ? k : 0, (uint32_t)p + 1, (uint32_t)parts);
        }
    }
    pthread_cond_signal(&ev->cv);
    pthread_mutex_unlock(&ev->mu);
}

/* Takes up to BATCH entries into <out> (mutex held). */
static size_t take(struct rp_kvev *ev, struct entry *out)
{
    size_t n = 0;
    while (n < BATCH && ev->count > 0) {
        out[n++] = ev->ring[ev->head];
        ev->head = (ev->head + 1) % ev->cap;
        ev->count--;
    }
    return n;
}

/* --- Redis ----------------------------------------------------------------- */

static void log_state(struct rp_kvev *ev, const char *event, const char *why)
{
    struct rp_jline l;
    uint64_t dropped;

    pthread_mutex_lock(&ev->mu);
    dropped = ev->dropped_full + ev->dropped_down;
    pthread_mutex_unlock(&ev->mu);
    rp_jlog_begin(&l, event, ev->replica);
    rp_jlog_str(&l, "stream", ev->key);
    if (why)
        rp_jlog_str(&l, "message", why);
    rp_jlog_num(&l, "dropped_events", dropped);
    rp_jlog_end(&l);
}

static void disconnect(struct rp_kvev *ev, const char *why, uint64_t now)
{
    if (ev->rc) {
        log_state(ev, "kv_events_down", why);
        redisFree(ev->rc);
        ev->rc = NULL;
    }
    ev->backoff_ns = ev->backoff_ns ? ev->backoff_ns * 2 : BACKOFF_MIN_NS;
    if (ev->backoff_ns > BACKOFF_MAX_NS)
        ev->backoff_ns = BACKOFF_MAX_NS;
    ev->retry_at = now + ev->backoff_ns;
}

static void try_connect(struct rp_kvev *ev, uint64_t now)
{
    struct timeval tv = {IO_TIMEOUT_MS / 1000, (IO_TIMEOUT_MS % 1000) * 1000};
    redisContext *rc = redisConnectWithTimeout(ev->host, ev->port, tv);

    if (!rc || rc->err || redisSetTimeout(rc, tv) != REDIS_OK) {
        if (rc)
            redisFree(rc);
        disconnect(ev, NULL, now);
        return;
    }
    ev->rc = rc;
    ev->backoff_ns = 0;
    ev->next_snapshot = now; /* a complete view at once after a gap */
    log_state(ev, "kv_events_up", NULL);
}

/* Appends the XADD of <e> to the pipeline. */
static int append_xadd(struct rp_kvev *ev, const struct entry *e)
{
    char hs[RP_KVEV_HASHES * 17 + 1], seq[24], part[16], parts[16];
    const char *argv[20];
    size_t lens[20], argc = 0, off = 0;

    hs[0] = '\0';
    for (uint32_t i = 0; i < e->n; i++)
        off += (size_t)snprintf(hs + off, sizeof(hs) - off, "%s%016llx", i ? "," : "",
                                (unsigned long long)e->h[i]);
    snprintf(seq, sizeof(seq), "%llu", (unsigned long long)e->seq);
    const char *fixed[] = {"XADD", ev->key,        "MAXLEN", "~",       ev->maxlen, "*",
                           "r",    ev->replica,    "e",      ev->epoch, "s",        seq,
                           "op",   op_name[e->op], "h",      hs};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        argv[argc++] = fixed[i];
    if (e->op == RP_KVEV_SNAPSHOT) {
        snprintf(part, sizeof(part), "%u", e->part);
        snprintf(parts, sizeof(parts), "%u", e->parts);
        argv[argc++] = "part";
        argv[argc++] = part;
        argv[argc++] = "parts";
        argv[argc++] = parts;
    }
    for (size_t i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return redisAppendCommandArgv(ev->rc, (int)argc, argv, lens) == REDIS_OK ? 0 : -1;
}

/* Sends entries b[0..n): 0, or -1 (connection dropped) with the number
 * that made it in *sent. */
static int send_batch(struct rp_kvev *ev, const struct entry *b, size_t n, size_t *sent)
{
    *sent = 0;
    for (size_t i = 0; i < n; i++) {
        if (append_xadd(ev, &b[i]) < 0)
            return -1;
    }
    for (size_t i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(ev->rc, (void **)&r) != REDIS_OK || !r)
            return -1;
        int bad = r->type == REDIS_REPLY_ERROR;
        freeReplyObject(r);
        if (bad)
            return -1;
        (*sent)++;
    }
    return 0;
}

/* --- the publisher thread -------------------------------------------------- */

static void wait_work(struct rp_kvev *ev)
{
    uint64_t now = gw_now_ns(), until = ev->next_snapshot;
    if (!ev->rc && ev->retry_at < until)
        until = ev->retry_at;
    if (ev->count > 0 || ev->stop || until <= now)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t wait = until - now;
    ts.tv_sec += (time_t)(wait / 1000000000ull);
    ts.tv_nsec += (long)(wait % 1000000000ull);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&ev->cv, &ev->mu, &ts);
}

static void *publisher(void *arg)
{
    struct rp_kvev *ev = arg;
    struct entry *batch = malloc(BATCH * sizeof(*batch));
    uint64_t stop_by = 0;

    for (;;) {
        uint64_t now = gw_now_ns();
        size_t n = 0, sent = 0;

        if (!ev->rc && now >= ev->retry_at && !stop_by)
            try_connect(ev, now);
        if (ev->rc && now >= ev->next_snapshot && !stop_by) {
            ev->next_snapshot = now + ev->snapshot_ns;
            ev->snapshot(ev, ev->arg);
        }
        pthread_mutex_lock(&ev->mu);
        if (ev->stop && !stop_by)
            stop_by = now + STOP_FLUSH_NS;
        if (!stop_by)
            wait_work(ev);
        if (batch)
            n = take(ev, batch);
        else
            ev->count = 0; /* no memory for a batch: every event is lost */
        int done = stop_by && (ev->count == 0 || !ev->rc || now > stop_by) && n == 0;
        pthread_mutex_unlock(&ev->mu);
        if (done)
            break;
        if (n == 0)
            continue;
        if (ev->rc && send_batch(ev, batch, n, &sent) < 0)
            disconnect(ev, ev->rc->errstr[0] ? ev->rc->errstr : "error reply", gw_now_ns());
        pthread_mutex_lock(&ev->mu);
        ev->published += sent;
        ev->dropped_down += n - sent;
        if (stop_by && !ev->rc) {
            ev->dropped_down += ev->count;
            ev->count = 0;
        }
        pthread_mutex_unlock(&ev->mu);
    }
    free(batch);
    return NULL;
}

/* --- start and stop ---------------------------------------------------------- */

struct rp_kvev *rp_kvev_start(const struct rp_kvev_config *cfg, char *err, size_t errlen)
{
    struct rp_kvev *ev = calloc(1, sizeof(*ev));
    struct timespec now;

    if (!ev) {
        gw_errf(err, errlen, "out of memory");
        return NULL;
    }
    if (gw_hostport_split(cfg->redis, ev->host, sizeof(ev->host), &ev->port) < 0) {
        gw_errf(err, errlen, "--kv-events-redis: '%s' is not HOST:PORT", cfg->redis);
        free(ev);
        return NULL;
    }
    ev->key = strdup(cfg->key);
    ev->replica = strdup(cfg->replica);
    ev->cap = cfg->queue_entries;
    ev->ring = calloc(ev->cap, sizeof(*ev->ring));
    if (!ev->key || !ev->replica || !ev->ring) {
        gw_errf(err, errlen, "out of memory for the KV event queue (%zu entries)", ev->cap);
        goto fail;
    }
    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(ev->epoch, sizeof(ev->epoch), "%llu",
             (unsigned long long)now.tv_sec * 1000000000ull + (unsigned long long)now.tv_nsec);
    snprintf(ev->maxlen, sizeof(ev->maxlen), "%ld", cfg->maxlen);
    ev->snapshot_ns = (uint64_t)cfg->snapshot_ms * 1000000ull;
    ev->snapshot = cfg->snapshot;
    ev->arg = cfg->arg;
    ev->next_snapshot = gw_now_ns() + ev->snapshot_ns;
    pthread_mutex_init(&ev->mu, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&ev->cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    enqueue(ev, RP_KVEV_CLEARED, NULL, 0, 0, 0); /* no thread yet: no lock needed */
    if (pthread_create(&ev->thread, NULL, publisher, ev) != 0) {
        gw_errf(err, errlen, "cannot start the KV event publisher thread: %s", strerror(errno));
        pthread_cond_destroy(&ev->cv);
        pthread_mutex_destroy(&ev->mu);
        goto fail;
    }
    return ev;
fail:
    free(ev->ring);
    free(ev->key);
    free(ev->replica);
    free(ev);
    return NULL;
}

void rp_kvev_stop(struct rp_kvev *ev)
{
    struct rp_jline l;

    pthread_mutex_lock(&ev->mu);
    ev->stop = 1;
    pthread_cond_signal(&ev->cv);
    pthread_mutex_unlock(&ev->mu);
    pthread_join(ev->thread, NULL);
    if (ev->rc)
        redisFree(ev->rc);
    rp_jlog_begin(&l, "kv_events", ev->replica);
    rp_jlog_str(&l, "stream", ev->key);
    rp_jlog_num(&l, "epoch", strtoull(ev->epoch, NULL, 10));
    rp_jlog_num(&l, "last_seq", ev->seq);
    rp_jlog_num(&l, "published", ev->published);
    rp_jlog_num(&l, "dropped_queue_full", ev->dropped_full);
    rp_jlog_num(&l, "dropped_redis_down", ev->dropped_down + ev->count);
    rp_jlog_end(&l);
    pthread_cond_destroy(&ev->cv);
    pthread_mutex_destroy(&ev->mu);
    free(ev->ring);
    free(ev->key);
    free(ev->replica);
    free(ev);
}
