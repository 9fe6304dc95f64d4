/* SPDX-License-Identifier: Apache-2.0 */
/* infergw-bench — an open-loop gRPC load generator on nghttp2.
 *
 * One epoll loop (the gateway's loop/conn modules) drives M HTTP/2 client
 * connections (h2c, prior knowledge) and issues unary gRPC calls either at a
 * fixed arrival rate (open loop: uniform or Poisson inter-arrival times) or
 * with N calls always in flight (closed loop). In open loop every call is
 * timed from its SCHEDULED start, not from when it was written: a call the
 * generator could not send on time (the loop was busy, the connection was
 * full, nghttp2 held it back behind MAX_CONCURRENT_STREAMS) still counts the
 * wait, so queueing delay shows in the tail instead of being hidden the way
 * a closed-loop tool hides it (coordinated omission). Latencies go into a
 * log-linear histogram (hist.c, <= 1% error); grpc-status is read from the
 * trailers (or a trailers-only HEADERS frame) and counted by name.
 *
 * Streaming (--stream-tokens M): each call is a ModelStreamInfer request for
 * M token messages of the replica's token model; the report adds messages/s,
 * the time to each call's first message and the gap between one message and
 * the next (the per-message relay latency when the replica is unpaced), and
 * the CPU per message.
 *
 * This file holds the options, the report and main(); the connections,
 * calls and schedule are in gen.c.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "base/config.h"
#include "base/hostport.h"
#include "base/mem.h"
#include "gen.h"

/* --- CPU of another process ------------------------------------------------ */

/* utime + stime of <pid> in clock ticks, or -1. */
static long long lg_proc_cpu_ticks(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    /* The command name may hold spaces and parentheses: fields start after
     * the last ')'. utime and stime are fields 14 and 15. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
    unsigned long long ut, st;
    if (sscanf(p, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (long long)(ut + st);
}

/* --- options --------------------------------------------------------------- */

static void lg_usage(FILE *out)
{
    fprintf(
        out,
        "Usage: infergw-bench [flags] TARGET\n"
        "\n"
        "An open-loop gRPC load generator (HTTP/2 over cleartext, prior knowledge).\n"
        "Open loop (--rate) times every call from its scheduled start, so queueing\n"
        "delay shows in the tail; closed loop (--concurrency) keeps N calls in flight.\n"
        "One of --duration or --count is required.\n"
        "\n"
        "  TARGET, --target ADDR     host:port or http://host:port (required)\n"
        "  --method PATH             gRPC method path\n"
        "                            [/inference.GRPCInferenceService/ModelInfer, or\n"
        "                            .../ModelStreamInfer with --stream-tokens]\n"
        "  --payload-file FILE       a serialized protobuf message, sent gRPC-framed [none]\n"
        "  --payload-bytes N         else a ModelInferRequest with N bytes of FP32 input,\n"
        "                            0..67108864 [100]\n"
        "  --model NAME              model_name of that request [demo]\n"
        "  --metadata K:V            request metadata, repeatable (up to 32) [none]\n"
        "  --route-keys N            send x-route-key drawn from N keys 'key-<i>'; 0 = none [0]\n"
        "  --key-dist uniform|zipf   how keys are drawn (zipf: s = 1.1) [uniform]\n"
        "  --rate R                  open loop: R calls/s (0 = closed loop) [0]\n"
        "  --arrival uniform|poisson inter-arrival times in open loop [uniform]\n"
        "  --concurrency N           closed loop: calls in flight [16]\n"
        "  --connections M           HTTP/2 connections, calls spread round robin [1]\n"
        "  --duration S              run S seconds (at most 3600) [none]\n"
        "  --count N                 or issue N calls [none]\n"
        "  --deadline-ms MS          per-call deadline, sent as grpc-timeout; 0 = none [0]\n"
        "  --cpu-pid PID             report the CPU time of process PID per call [none]\n"
        "  --seed N                  random seed for arrivals and keys [1]\n"
        "  --stream-tokens M         streaming: each call is a ModelStreamInfer request for\n"
        "                            M token messages (the replica's --token-model; give\n"
        "                            its name with --model), 1..100000; reports messages/s,\n"
        "                            time to first message and the gap between messages [0]\n"
        "  --json                    print one JSON object instead of text\n"
        "  -h, --help                this help\n"
        "\n"
        "Latency is in microseconds, from each call's scheduled start to its end; calls\n"
        "that end without a grpc-status are counted as 'no_status' (connection lost:\n"
        "'connection_lost'). Exit status: 0 when the run completed, 2 on a bad flag.\n"
        "\n"
        "Examples:\n"
        "  infergw-bench --rate 2000 --arrival poisson --duration 30 --connections 4 \\\n"
        "      --route-keys 1000 --key-dist zipf --metadata 'authorization:Bearer KEY' \\\n"
        "      --cpu-pid $(pidof infergw) --json 127.0.0.1:8080\n"
        "  infergw-bench --concurrency 64 --count 100000 --payload-bytes 4096 127.0.0.1:8080\n"
        "  infergw-bench --stream-tokens 200 --model llm --concurrency 100 --count 1000 \\\n"
        "      --connections 4 127.0.0.1:8080\n");
}

static int lg_parse_long(const char *flag, const char *s, long min, long max, long *out, char *err,
                         size_t errlen)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        snprintf(err, errlen, "%s '%s': expected an integer in %ld..%ld", flag, s, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

static int lg_parse_double(const char *flag, const char *s, double min, double max, double *out,
                           char *err, size_t errlen)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= min && v <= max)) {
        snprintf(err, errlen, "%s '%s': expected a number in %g..%g", flag, s, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

/* Returns 0 to run, 1 after --help, -1 on a bad command line (reason in err). */
static int lg_parse(struct lg_opts *o, int argc, char **argv, char *err, size_t errlen)
{
    enum {
        O_TARGET = 256,
        O_METHOD,
        O_PFILE,
        O_PBYTES,
        O_MODEL,
        O_MD,
        O_KEYS,
        O_KDIST,
        O_RATE,
        O_ARRIVAL,
        O_CONC,
        O_CONNS,
        O_DUR,
        O_COUNT,
        O_DEADLINE,
        O_CPU,
        O_SEED,
        O_JSON,
        O_STREAM
    };
    static const struct option opts[] = {{"target", required_argument, NULL, O_TARGET},
                                         {"method", required_argument, NULL, O_METHOD},
                                         {"payload-file", required_argument, NULL, O_PFILE},
                                         {"payload-bytes", required_argument, NULL, O_PBYTES},
                                         {"model", required_argument, NULL, O_MODEL},
                                         {"metadata", required_argument, NULL, O_MD},
                                         {"route-keys", required_argument, NULL, O_KEYS},
                                         {"key-dist", required_argument, NULL, O_KDIST},
                                         {"rate", required_argument, NULL, O_RATE},
                                         {"arrival", required_argument, NULL, O_ARRIVAL},
                                         {"concurrency", required_argument, NULL, O_CONC},
                                         {"connections", required_argument, NULL, O_CONNS},
                                         {"duration", required_argument, NULL, O_DUR},
                                         {"count", required_argument, NULL, O_COUNT},
                                         {"deadline-ms", required_argument, NULL, O_DEADLINE},
                                         {"cpu-pid", required_argument, NULL, O_CPU},
                                         {"seed", required_argument, NULL, O_SEED},
                                         {"json", no_argument, NULL, O_JSON},
                                         {"stream-tokens", required_argument, NULL, O_STREAM},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof(*o));
    o->path = NULL; /* ModelInfer, or ModelStreamInfer with --stream-tokens */
    o->model = "demo";
    o->payload_bytes = 100;
    o->concurrency = 16;
    o->connections = 1;
    o->seed = 1;
    o->cpu_pid = -1;
    long seed = 1;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case O_TARGET:
            o->target = optarg;
            break;
        case O_METHOD:
            if (optarg[0] != '/') {
                snprintf(err, errlen, "--method '%s': expected /package.Service/Method", optarg);
                return -1;
            }
            o->path = optarg;
            break;
        case O_PFILE:
            o->payload_file = optarg;
            break;
        case O_PBYTES:
            rc = lg_parse_long("--payload-bytes", optarg, 0, LG_MAX_PAYLOAD, &o->payload_bytes, err,
                               errlen);
            break;
        case O_MODEL:
            o->model = optarg;
            break;
        case O_MD: {
            char *colon = strchr(optarg, ':');
            if (!colon || colon == optarg || o->n_md == LG_MAX_METADATA) {
                snprintf(err, errlen, "--metadata '%s': expected KEY:VALUE (at most %d)", optarg,
                         LG_MAX_METADATA);
                return -1;
            }
            *colon = 0;
            for (char *p = optarg; *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                    *p = (char)(*p - 'A' + 'a'); /* HTTP/2 header names are lower case */
            o->md_name[o->n_md] = optarg;
            o->md_value[o->n_md++] = colon + 1;
            break;
        }
        case O_KEYS:
            rc = lg_parse_long("--route-keys", optarg, 0, LG_MAX_KEYS, &o->route_keys, err, errlen);
            break;
        case O_KDIST:
            if (strcmp(optarg, "uniform") == 0)
                o->key_dist = LG_UNIFORM;
            else if (strcmp(optarg, "zipf") == 0)
                o->key_dist = LG_ZIPF;
            else {
                snprintf(err, errlen, "--key-dist '%s': expected uniform or zipf", optarg);
                return -1;
            }
            break;
        case O_RATE:
            rc = lg_parse_double("--rate", optarg, 0, 10e6, &o->rate, err, errlen);
            break;
        case O_ARRIVAL:
            if (strcmp(optarg, "uniform") == 0)
                o->arrival = LG_UNIFORM;
            else if (strcmp(optarg, "poisson") == 0)
                o->arrival = LG_POISSON;
            else {
                snprintf(err, errlen, "--arrival '%s': expected uniform or poisson", optarg);
                return -1;
            }
            break;
        case O_CONC:
            rc = lg_parse_long("--concurrency", optarg, 1, 100000, &o->concurrency, err, errlen);
            break;
        case O_CONNS:
            rc = lg_parse_long("--connections", optarg, 1, 10000, &o->connections, err, errlen);
            break;
        case O_DUR:
            rc = lg_parse_double("--duration", optarg, 0.001, LG_MAX_DURATION_S, &o->duration_s,
                                 err, errlen);
            break;
        case O_COUNT:
            rc = lg_parse_long("--count", optarg, 1, 1000000000L, &o->count, err, errlen);
            break;
        case O_DEADLINE:
            rc = lg_parse_long("--deadline-ms", optarg, 0, 86400000L, &o->deadline_ms, err, errlen);
            break;
        case O_CPU:
            rc = lg_parse_long("--cpu-pid", optarg, 1, 1L << 30, &o->cpu_pid, err, errlen);
            break;
        case O_SEED:
            rc = lg_parse_long("--seed", optarg, 0, 1L << 62, &seed, err, errlen);
            break;
        case O_JSON:
            o->json = 1;
            break;
        case O_STREAM:
            rc =
                lg_parse_long("--stream-tokens", optarg, 1, 100000, &o->stream_tokens, err, errlen);
            break;
        case 'h':
            return 1;
        default:
            snprintf(err, errlen, "unknown flag (see --help)");
            return -1;
        }
        if (rc < 0)
            return -1;
    }
    if (optind < argc && !o->target)
        o->target = argv[optind++];
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
        return -1;
    }
    if (!o->target) {
        snprintf(err, errlen, "no target: give host:port");
        return -1;
    }
    if (!o->path)
        o->path = o->stream_tokens > 0 ? "/inference.GRPCInferenceService/ModelStreamInfer"
                                       : "/inference.GRPCInferenceService/ModelInfer";
    if (o->duration_s <= 0 && o->count <= 0) {
        snprintf(err, errlen, "refusing an unbounded run: give --duration S or --count N");
        return -1;
    }
    o->seed = (uint64_t)seed * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;
    const char *t = o->target;
    if (strncmp(t, "http://", 7) == 0)
        t += 7;
    else if (strstr(t, "://")) {
        snprintf(err, errlen, "target '%s': only http:// (h2c) is supported", o->target);
        return -1;
    }
    char addr[300];
    snprintf(addr, sizeof(addr), "%s", t);
    size_t al = strlen(addr);
    if (al && addr[al - 1] == '/')
        addr[al - 1] = 0;
    if (gw_hostport_split(addr, o->host, sizeof(o->host), &o->port) < 0) {
        snprintf(err, errlen, "target '%s': expected host:port", o->target);
        return -1;
    }
    snprintf(o->authority, sizeof(o->authority), "%s", addr);
    return 0;
}

/* --- report ---------------------------------------------------------------- */

static const double lg_pcts[] = {50, 90, 99, 99.9};
static const char *const lg_pct_names[] = {"p50", "p90", "p99", "p99.9"};

/* The streaming part of the report (--stream-tokens): JSON members into <j>,
 * or text lines when <j> is NULL. */
static void lg_report_stream(struct lg_gen *g, double elapsed_s, double cpu_s, json_t *j)
{
    const struct bench_hist *hs[2] = {&g->first_hist, &g->gap_hist};
    static const char *const names[2] = {"first_message_us", "message_gap_us"};
    double rate = elapsed_s > 0 ? (double)g->msgs / elapsed_s : 0;
    double cpu_msg = cpu_s >= 0 && g->msgs ? cpu_s * 1e6 / (double)g->msgs : -1;
    if (j) {
        json_object_set_new(j, "stream_tokens", json_integer(g->o->stream_tokens));
        json_object_set_new(j, "messages", json_integer((json_int_t)g->msgs));
        json_object_set_new(j, "messages_per_s", json_real(rate));
        json_object_set_new(j, "short_calls", json_integer((json_int_t)g->short_calls));
        for (int k = 0; k < 2; k++) {
            json_t *lat = json_object();
            json_object_set_new(lat, "mean", json_real(bench_hist_mean(hs[k]) / 1e3));
            for (int i = 0; i < 4; i++)
                json_object_set_new(
                    lat, lg_pct_names[i],
                    json_real((double)bench_hist_percentile(hs[k], lg_pcts[i]) / 1e3));
            json_object_set_new(j, names[k], lat);
        }
        if (cpu_msg >= 0)
            json_object_set_new(j, "cpu_us_per_message", json_real(cpu_msg));
        return;
    }
    printf("messages: %llu in %.3f s = %.1f messages/s (%ld per call asked, %llu calls ended "
           "OK with another count)\n",
           (unsigned long long)g->msgs, elapsed_s, rate, g->o->stream_tokens,
           (unsigned long long)g->short_calls);
    for (int k = 0; k < 2; k++) {
        printf("%s: mean %.1f", k ? "message gap (us)" : "first message (us, from call start)",
               bench_hist_mean(hs[k]) / 1e3);
        for (int i = 0; i < 4; i++)
            printf(" %s %.1f", lg_pct_names[i],
                   (double)bench_hist_percentile(hs[k], lg_pcts[i]) / 1e3);
        printf("\n");
    }
    if (cpu_msg >= 0)
        printf("cpu of pid %ld: %.2f us per message\n", g->o->cpu_pid, cpu_msg);
}

static void lg_report(struct lg_gen *g, double elapsed_s, double cpu_s)
{
    const struct lg_opts *o = g->o;
    double rate = elapsed_s > 0 ? (double)g->done / elapsed_s : 0;
    double us[4];
    for (int i = 0; i < 4; i++)
        us[i] = (double)bench_hist_percentile(&g->hist, lg_pcts[i]) / 1e3;
    if (o->json) {
        json_t *j = json_object();
        json_t *lat = json_object(), *st = json_object();
        json_object_set_new(j, "target", json_string(o->authority));
        json_object_set_new(j, "method", json_string(o->path));
        json_object_set_new(j, "mode", json_string(o->rate > 0 ? "open" : "closed"));
        if (o->rate > 0) {
            json_object_set_new(j, "offered_rate", json_real(o->rate));
            json_object_set_new(j, "arrival",
                                json_string(o->arrival == LG_POISSON ? "poisson" : "uniform"));
        } else {
            json_object_set_new(j, "concurrency", json_integer(o->concurrency));
        }
        json_object_set_new(j, "connections", json_integer(o->connections));
        json_object_set_new(j, "request_bytes", json_integer((json_int_t)g->req_len));
        json_object_set_new(j, "issued", json_integer(g->issued));
        json_object_set_new(j, "completed", json_integer(g->done));
        json_object_set_new(j, "elapsed_s", json_real(elapsed_s));
        json_object_set_new(j, "achieved_rate", json_real(rate));
        json_object_set_new(lat, "min", json_real((double)g->hist.min / 1e3));
        json_object_set_new(lat, "mean", json_real(bench_hist_mean(&g->hist) / 1e3));
        for (int i = 0; i < 4; i++)
            json_object_set_new(lat, lg_pct_names[i], json_real(us[i]));
        json_object_set_new(lat, "max", json_real((double)g->hist.max / 1e3));
        if (g->hist.total == 0)
            json_object_set_new(lat, "min", json_real(0));
        json_object_set_new(j, "latency_us", lat);
        for (int i = 0; i < LG_NSTATUS; i++)
            if (g->by_status[i])
                json_object_set_new(st, gw_grpc_status_name(i),
                                    json_integer((json_int_t)g->by_status[i]));
        json_object_set_new(j, "status", st);
        json_object_set_new(j, "no_status", json_integer((json_int_t)g->no_status));
        json_object_set_new(j, "connection_lost", json_integer((json_int_t)g->conn_lost));
        json_object_set_new(j, "unfinished", json_integer((json_int_t)g->unfinished));
        json_object_set_new(j, "connection_closes", json_integer(g->conn_errors));
        json_object_set_new(j, "max_schedule_lag_us", json_real((double)g->late_ns_max / 1e3));
        if (cpu_s >= 0) {
            json_object_set_new(j, "cpu_pid", json_integer(o->cpu_pid));
            json_object_set_new(j, "cpu_s", json_real(cpu_s));
            json_object_set_new(j, "cpu_us_per_call",
                                json_real(g->done ? cpu_s * 1e6 / (double)g->done : 0));
        }
        if (o->stream_tokens > 0)
            lg_report_stream(g, elapsed_s, cpu_s, j);
        char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9));
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(j);
        return;
    }
    printf("target %s%s, %s loop", o->authority, o->path, o->rate > 0 ? "open" : "closed");
    if (o->rate > 0)
        printf(" at %.1f calls/s (%s)", o->rate, o->arrival == LG_POISSON ? "poisson" : "uniform");
    else
        printf(" with %ld in flight", o->concurrency);
    printf(", %ld connection(s), %zu-byte request\n", o->connections, g->req_len);
    printf("calls: %ld issued, %ld completed in %.3f s = %.1f calls/s\n", g->issued, g->done,
           elapsed_s, rate);
    printf("latency (us, from scheduled start): mean %.1f", bench_hist_mean(&g->hist) / 1e3);
    for (int i = 0; i < 4; i++)
        printf(" %s %.1f", lg_pct_names[i], us[i]);
    printf(" max %.1f\n", (double)g->hist.max / 1e3);
    printf("status:");
    for (int i = 0; i < LG_NSTATUS; i++)
        if (g->by_status[i])
            printf(" %s %llu", gw_grpc_status_name(i), (unsigned long long)g->by_status[i]);
    if (g->no_status)
        printf(" no_status %llu", (unsigned long long)g->no_status);
    if (g->conn_lost)
        printf(" connection_lost %llu", (unsigned long long)g->conn_lost);
    if (g->unfinished)
        printf(" unfinished %llu", (unsigned long long)g->unfinished);
    printf("\n");
    if (cpu_s >= 0)
        printf("cpu of pid %ld: %.3f s = %.2f us per call\n", o->cpu_pid, cpu_s,
               g->done ? cpu_s * 1e6 / (double)g->done : 0);
    if (o->stream_tokens > 0)
        lg_report_stream(g, elapsed_s, cpu_s, NULL);
}

/* --- main ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    static struct lg_opts o;
    static struct lg_gen g; /* the histogram is ~30 KiB: keep it off the stack */
    char err[512];
    int rc = lg_parse(&o, argc, argv, err, sizeof(err));
    if (rc == 1) {
        lg_usage(stdout);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "infergw-bench: %s\n", err);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    g.o = &o;
    g.rng = o.seed;
    bench_hist_init(&g.hist);
    bench_hist_init(&g.first_hist);
    bench_hist_init(&g.gap_hist);
    if (lg_build_request(&g, err, sizeof(err)) < 0 || lg_build_headers(&g) < 0) {
        fprintf(stderr, "infergw-bench: %s\n", err[0] ? err : "out of memory");
        return 2;
    }
    if (o.route_keys > 0 && o.key_dist == LG_ZIPF &&
        !(g.zipf_cdf = lg_zipf_table(o.route_keys, 1.1)))
        return 1;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    char ps[8];
    snprintf(ps, sizeof(ps), "%u", o.port);
    if (getaddrinfo(o.host, ps, &hints, &g.addr) != 0) {
        fprintf(stderr, "infergw-bench: cannot resolve %s\n", o.host);
        return 1;
    }
    if (gw_loop_init(&g.loop, NULL, &g) < 0)
        return 1;
    nghttp2_session_callbacks_new(&g.cbs);
    nghttp2_session_callbacks_set_on_header_callback(g.cbs, lg_on_header);
    nghttp2_session_callbacks_set_on_stream_close_callback(g.cbs, lg_on_stream_close);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(g.cbs, lg_on_frame_not_send);
    if (o.stream_tokens > 0)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(g.cbs, lg_on_data);
    g.conns = gw_calloc((size_t)o.connections, sizeof(*g.conns));
    if (!g.conns)
        return 1;
    for (long i = 0; i < o.connections; i++) {
        g.conns[i] = gw_calloc(1, sizeof(**g.conns));
        if (!g.conns[i])
            return 1;
        g.conns[i]->gen = &g;
        int e = lg_conn_open(&g, g.conns[i]);
        if (e < 0) {
            fprintf(stderr, "infergw-bench: cannot connect to %s: %s\n", o.authority, strerror(-e));
            return 1;
        }
    }
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (tfd < 0 || gw_loop_add(&g.loop, &g.tick_io, tfd, EPOLLIN, lg_on_tick) < 0) {
        fprintf(stderr, "infergw-bench: timerfd: %s\n", strerror(errno));
        return 1;
    }
    gw_timer_init(&g.stop_timer, lg_on_stop, &g);

    long long cpu0 = o.cpu_pid > 0 ? lg_proc_cpu_ticks(o.cpu_pid) : -1;
    if (o.cpu_pid > 0 && cpu0 < 0) {
        fprintf(stderr, "infergw-bench: --cpu-pid %ld: cannot read /proc/%ld/stat\n", o.cpu_pid,
                o.cpu_pid);
        return 2;
    }
    g.start_ns = gw_now_ns();
    if (o.duration_s > 0)
        g.end_ns = g.start_ns + (uint64_t)(o.duration_s * 1e9);
    struct gw_timer start;
    if (o.rate > 0) {
        g.next_ns = g.start_ns;
        lg_arm_tick(&g, g.start_ns);
    } else {
        gw_timer_init(&start, lg_on_closed_loop_start, &g);
        gw_loop_timer_at(&g.loop, &start, g.start_ns);
        if (g.end_ns)
            gw_loop_timer_at(&g.loop, &g.stop_timer, g.end_ns);
    }
    gw_loop_run(&g.loop);
    uint64_t end = g.last_done_ns > g.start_ns ? g.last_done_ns : gw_now_ns();
    double elapsed = (double)(end - g.start_ns) / 1e9;
    double cpu_s = -1;
    if (cpu0 >= 0) {
        long long cpu1 = lg_proc_cpu_ticks(o.cpu_pid);
        if (cpu1 >= cpu0)
            cpu_s = (double)(cpu1 - cpu0) / (double)sysconf(_SC_CLK_TCK);
    }
    lg_report(&g, elapsed, cpu_s);

    for (long i = 0; i < o.connections; i++) {
        struct lg_conn *lc = g.conns[i];
        if (lc->alive) {
            while (lc->calls) { /* abandoned after the drain time */
                struct lg_call *c = lc->calls;
                lc->calls = c->next;
                gw_free(c);
            }
            nghttp2_session_del(lc->conn.sess);
            gw_loop_del(&g.loop, &lc->conn.io);
            close(lc->conn.io.fd);
            gw_conn_release(&lc->conn);
        }
        gw_free(lc);
    }
    gw_free(g.conns);
    gw_loop_del(&g.loop, &g.tick_io);
    close(tfd);
    nghttp2_session_callbacks_del(g.cbs);
    freeaddrinfo(g.addr);
    gw_loop_free(&g.loop);
    gw_free(g.req);
    gw_free(g.nv);
    gw_free(g.zipf_cdf);
    return 0;
}
