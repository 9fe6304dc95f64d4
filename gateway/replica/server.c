/* SPDX-License-Identifier: Apache-2.0 */
/* server — the replica's gRPC server on the grpc core C API (see server.h):
 * the grpc server and its credentials, the worker threads with their
 * completion queues and outstanding request slots, and shutdown. What
 * happens to a call once it has arrived is in call.c.
 */
#include "server.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

#include "base/err.h"
#include "base/timer.h"
#include "call.h"
#include "jlog.h"

#ifndef RP_VERSION
#define RP_VERSION "0"
#endif

#define MAX_MESSAGE  (64 << 20)
#define IDLE_WAKE_NS (50ull * 1000000) /* workers look at the stop flags this often */

/* --- time and randomness ---------------------------------------------------- */

/* Times are gw_now_ns() (CLOCK_MONOTONIC), the clock of the timer heaps.
 * gpr's monotonic clock is offset from it, so grpc core is handed deadlines
 * relative to now (GPR_TIMESPAN), never absolute times. */
static gpr_timespec in_ns(uint64_t ns)
{
    return gpr_time_from_nanos((int64_t)ns, GPR_TIMESPAN);
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* --nondeterministic: a value no other process shares (never 0). */
static uint64_t random_salt(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
        v = gw_now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&v;
    return splitmix64(v) | 1;
}

/* --- workers ---------------------------------------------------------------- */

static void slot_request(struct slot *sl)
{
    struct worker *w = sl->w;
    grpc_call_error e;

    sl->call = NULL;
    e = grpc_server_request_call(w->s->server, &sl->call, &sl->details, &sl->md, w->cq, w->cq, sl);
    if (e == GRPC_CALL_OK) {
        w->pending_requests++;
    } else {
        struct rp_jline l;
        rp_jlog_begin(&l, "internal_error", w->s->cfg->id);
        rp_jlog_str(&l, "message", grpc_call_error_to_string(e));
        rp_jlog_end(&l);
    }
}
static void on_new(struct slot *sl, int ok)
{
    struct worker *w = sl->w;
    struct call *c;

    w->pending_requests--;
    if (!ok)
        return; /* the server is shutting down: no more calls */
    c = calloc(1, sizeof(*c));
    if (!c) {
        grpc_call_cancel_with_status(sl->call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory",
                                     NULL);
        grpc_call_unref(sl->call);
        grpc_call_details_destroy(&sl->details);
        grpc_metadata_array_destroy(&sl->md);
    } else {
        c->w = w;
        gw_timer_init(&c->timer, rp_call_on_timer, c);
        c->call = sl->call;
        c->details = sl->details;
        c->md = sl->md;
        c->next = w->calls;
        if (w->calls)
            w->calls->prev = c;
        w->calls = c;
        w->live_calls++;
        atomic_fetch_add(&w->s->live_calls, 1);
    }
    grpc_call_details_init(&sl->details);
    grpc_metadata_array_init(&sl->md);
    slot_request(sl);
    if (c)
        rp_call_start(c);
}

static void dispatch(void *tag, int ok)
{
    struct tag *t = tag;

    if (t->kind == TAG_NEW)
        on_new((struct slot *)tag, ok);
    else
        rp_call_complete(t, ok);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct rp_server *s = w->s;

    for (int i = 0; i < SLOTS_PER_WORKER; i++) {
        struct slot *sl = &w->slots[i];
        sl->kind = TAG_NEW;
        sl->w = w;
        grpc_call_details_init(&sl->details);
        grpc_metadata_array_init(&sl->md);
        slot_request(sl);
    }
    for (;;) {
        uint64_t now = gw_now_ns(), wake;
        struct gw_timer *t;
        grpc_event ev;

        while ((t = gw_timer_heap_pop_expired(&w->timers, now)))
            t->cb(t, t->arg);
        if (atomic_load(&s->cancel_all) && !w->cancelled_all) {
            w->cancelled_all = 1;
            for (struct call *c = w->calls; c; c = c->next)
                grpc_call_cancel_with_status(c->call, GRPC_STATUS_UNAVAILABLE,
                                             "replica shutting down", NULL);
        }
        if (atomic_load(&s->exiting) && w->pending_requests == 0 && w->live_calls == 0)
            break;
        /* grpc core has no timer or alarm API in C: the worker sleeps no
         * longer than until the earliest expiry in its own heap. */
        wake = gw_timer_heap_next(&w->timers);
        if (wake > now + IDLE_WAKE_NS)
            wake = now + IDLE_WAKE_NS;
        ev = grpc_completion_queue_next(w->cq, in_ns(wake > now ? wake - now : 0), NULL);
        if (ev.type == GRPC_OP_COMPLETE)
            dispatch(ev.tag, ev.success);
        else if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
    }
    for (int i = 0; i < SLOTS_PER_WORKER; i++) {
        grpc_call_details_destroy(&w->slots[i].details);
        grpc_metadata_array_destroy(&w->slots[i].md);
    }
    gw_timer_heap_free(&w->timers);
    return NULL;
}

/* --- server ----------------------------------------------------------------- */

static void drain_and_destroy(grpc_completion_queue *cq)
{
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
}

/* The address with the bound port: "127.0.0.1:0" becomes "127.0.0.1:41234". */
static void format_addr(char *buf, size_t len, const char *listen, int port)
{
    const char *colon = strrchr(listen, ':');
    if (strncmp(listen, "unix:", 5) == 0 || !colon)
        snprintf(buf, len, "%s", listen);
    else
        snprintf(buf, len, "%.*s:%d", (int)(colon - listen), listen, port);
}

static void wait_live_calls(struct rp_server *s, uint64_t until_ns)
{
    struct timespec pause = {0, 2 * 1000000};
    while (atomic_load(&s->live_calls) > 0 && gw_now_ns() < until_ns)
        nanosleep(&pause, NULL);
}

/* Waits for the server's shutdown tag on the private queue; 1 if it came
 * before <deadline>. */
static int wait_shutdown_tag(struct rp_server *s, gpr_timespec deadline)
{
    return grpc_completion_queue_next(s->shutdown_cq, deadline, NULL).type == GRPC_OP_COMPLETE;
}

void rp_server_stop(struct rp_server *s, long grace_ms, struct rp_stats *stats)
{
    uint64_t grace_ns = (uint64_t)grace_ms * NS_PER_MS, until = gw_now_ns() + grace_ns;

    grpc_server_shutdown_and_notify(s->server, s->shutdown_cq, s);
    if (!wait_shutdown_tag(s, in_ns(grace_ns))) {
        grpc_server_cancel_all_calls(s->server);
        atomic_store(&s->cancel_all, 1);
        wait_shutdown_tag(s, gpr_inf_future(GPR_CLOCK_MONOTONIC));
    }
    /* Calls finish on their workers; the ones that outlive the grace are
     * cancelled there (a delayed call may not be known to grpc core as
     * running, so cancel_all_calls alone cannot reach it). */
    wait_live_calls(s, until);
    atomic_store(&s->cancel_all, 1);
    wait_live_calls(s, UINT64_MAX);
    grpc_server_destroy(s->server);

    atomic_store(&s->exiting, 1);
    for (int i = 0; i < s->nworkers; i++) {
        if (s->workers[i].thread_started)
            pthread_join(s->workers[i].thread, NULL);
        drain_and_destroy(s->workers[i].cq);
    }
    drain_and_destroy(s->shutdown_cq);
    rp_llm_destroy(s->llm);

    stats->calls = atomic_load(&s->calls);
    stats->ok = atomic_load(&s->ok);
    stats->errors = atomic_load(&s->errors);
    stats->injected_errors = atomic_load(&s->injected);
    stats->cancelled = atomic_load(&s->cancelled);
    free(s->workers);
    free(s);
}

const char *rp_server_addr(const struct rp_server *s)
{
    return s->addr;
}

void rp_server_set_serving(struct rp_server *s, int serving)
{
    atomic_store(&s->serving, serving ? 1 : 0);
}

/* Reads all of text file <path> into a NUL-terminated buffer (caller
 * frees), or NULL with the reason in <err>. */
static char *read_pem(const char *flag, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (!f) {
        gw_errf(err, errlen, "%s '%s': %s", flag, path, strerror(errno));
        return NULL;
    }
    for (;;) {
        if (len + 4096 + 1 > cap) {
            char *nb = realloc(buf, cap = cap ? cap * 2 : 8192);
            if (!nb) {
                gw_errf(err, errlen, "%s '%s': out of memory", flag, path);
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad || len == 0 || !strstr(buf, "-----BEGIN")) {
        gw_errf(err, errlen, "%s '%s': %s", flag, path, bad ? strerror(errno) : "not a PEM file");
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

/* Server credentials: TLS from --tls-cert/--tls-key (with --tls-client-ca,
 * a verified client certificate is required), else plaintext. NULL with a
 * message in <err> when a file cannot be read. */
static grpc_server_credentials *server_credentials(const struct rp_config *cfg, char *err,
                                                   size_t errlen)
{
    if (!cfg->tls_cert)
        return grpc_insecure_server_credentials_create();
    grpc_ssl_pem_key_cert_pair pair;
    char *cert = read_pem("--tls-cert", cfg->tls_cert, err, errlen);
    char *key = cert ? read_pem("--tls-key", cfg->tls_key, err, errlen) : NULL;
    char *ca = key && cfg->tls_client_ca
                   ? read_pem("--tls-client-ca", cfg->tls_client_ca, err, errlen)
                   : NULL;
    grpc_server_credentials *creds = NULL;
    if (cert && key && (ca || !cfg->tls_client_ca)) {
        pair.cert_chain = cert;
        pair.private_key = key;
        creds = grpc_ssl_server_credentials_create_ex(
            ca, &pair, 1,
            ca ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
               : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
            NULL);
        if (!creds)
            gw_errf(err, errlen, "--tls-cert/--tls-key: grpc refused the certificate or key");
    }
    if (key) {
        memset(key, 0, strlen(key)); /* no copy of the key left behind */
        free(key);
    }
    free(cert);
    free(ca);
    return creds;
}

static grpc_completion_queue *non_listening_cq(void)
{
    grpc_completion_queue_attributes attr;
    memset(&attr, 0, sizeof(attr));
    attr.version = GRPC_CQ_CURRENT_VERSION;
    attr.cq_completion_type = GRPC_CQ_NEXT;
    attr.cq_polling_type = GRPC_CQ_NON_LISTENING;
    return grpc_completion_queue_create(grpc_completion_queue_factory_lookup(&attr), &attr, NULL);
}

struct rp_server *rp_server_start(const struct rp_config *cfg, char *err, size_t errlen)
{
    grpc_arg args[3];
    grpc_channel_args chargs = {3, args};
    grpc_server_credentials *creds;
    struct rp_server *s;
    int port;

    s = calloc(1, sizeof(*s));
    if (!s)
        goto fail_oom;
    s->cfg = cfg;
    s->nworkers = cfg->threads;
    s->workers = calloc((size_t)s->nworkers, sizeof(*s->workers));
    if (!s->workers)
        goto fail_workers;
    atomic_init(&s->serving, 1);
    s->svc.models.names = cfg->models;
    s->svc.models.n = cfg->nmodels;
    s->svc.models.replica_id = cfg->id;
    s->svc.server_version = RP_VERSION;
    s->svc.serving = &s->serving;
    s->svc.models.tokens = cfg->token_models;
    s->svc.models.ntokens = cfg->ntoken_models;
    s->svc.models.llm = cfg->llm_models;
    s->svc.models.nllm = cfg->nllm_models;
    s->svc.models.llm_input = cfg->prefix_input;
    s->svc.max_tokens = cfg->max_tokens;
    s->svc.salt = cfg->nondeterministic ? random_salt() : 0;
    if (cfg->nllm_models && !(s->llm = rp_llm_create(cfg, err, errlen))) {
        free(s->workers);
        free(s);
        return NULL;
    }

    memset(args, 0, sizeof(args));
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = MAX_MESSAGE;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer = MAX_MESSAGE;
    /* Without SO_REUSEPORT a port that is in use fails to bind instead of
     * being shared silently with a leftover process. */
    args[2].type = GRPC_ARG_INTEGER;
    args[2].key = GRPC_ARG_ALLOW_REUSEPORT;
    args[2].value.integer = 0;
    s->server = grpc_server_create(&chargs, NULL);

    for (int i = 0; i < s->nworkers; i++) {
        struct worker *w = &s->workers[i];
        w->s = s;
        w->index = i;
        w->rng = splitmix64(cfg->seed + (uint64_t)i) | 1;
        gw_timer_heap_init(&w->timers);
        w->cq = grpc_completion_queue_create_for_next(NULL);
        grpc_server_register_completion_queue(s->server, w->cq, NULL);
    }
    /* Only the main thread waits on this one, and only for the shutdown tag,
     * so it must not be handed listening sockets to poll. */
    s->shutdown_cq = non_listening_cq();
    grpc_server_register_completion_queue(s->server, s->shutdown_cq, NULL);

    creds = server_credentials(cfg, err, errlen);
    if (!creds)
        goto fail_server;
    port = grpc_server_add_http2_port(s->server, cfg->listen, creds);
    grpc_server_credentials_release(creds);
    if (port == 0) {
        gw_errf(err, errlen, "cannot listen on %s: the address is in use or not available%s",
                cfg->listen, cfg->tls_cert ? ", or the TLS certificate and key do not load" : "");
        goto fail_server;
    }
    format_addr(s->addr, sizeof(s->addr), cfg->listen, port);
    grpc_server_start(s->server);

    for (int i = 0; i < s->nworkers; i++) {
        struct worker *w = &s->workers[i];
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            struct rp_stats ignored;
            gw_errf(err, errlen, "cannot start worker thread %d", i);
            rp_server_stop(s, 0, &ignored);
            return NULL;
        }
        w->thread_started = 1;
    }
    return s;

fail_server:
    /* An unstarted server still needs its shutdown before it is destroyed. */
    grpc_server_shutdown_and_notify(s->server, s->shutdown_cq, s);
    wait_shutdown_tag(s, gpr_inf_future(GPR_CLOCK_MONOTONIC));
    grpc_server_destroy(s->server);
    for (int i = 0; i < s->nworkers; i++)
        drain_and_destroy(s->workers[i].cq);
    drain_and_destroy(s->shutdown_cq);
    rp_llm_destroy(s->llm);
    free(s->workers);
    free(s);
    return NULL;
fail_workers:
    free(s);
fail_oom:
    gw_errf(err, errlen, "out of memory");
    return NULL;
}
