/* config — command-line parsing with getopt_long; see config.h. */
#include "base/config.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/names.h"

#ifndef INFERGW_VERSION
#define INFERGW_VERSION "0.1.0"
#endif

enum {
    OPT_LISTEN = 256,
    OPT_WORKERS,
    OPT_POOL,
    OPT_UPSTREAM_CONNS,
    OPT_MAX_MESSAGE,
    OPT_RETRY_BUFFER,
    OPT_REPLAY_TOTAL,
    OPT_STREAM_ID_LIMIT,
    OPT_STREAM_WINDOW,
    OPT_CONN_WINDOW,
    OPT_MAX_STREAMS,
    OPT_MAX_HEADERS,
    OPT_GRACE,
    OPT_CONNECT_TIMEOUT,
    OPT_ROUTE_HEADER,
    OPT_AUTH,
    OPT_LOG_LEVEL,
    OPT_REDIS,
    OPT_REDIS_PREFIX,
    OPT_REDIS_TIMEOUT,
    OPT_REDIS_POLL,
    OPT_GATEWAY_ID,
    OPT_ADMIN,
    OPT_TENANTS,
    OPT_API_KEYS,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_TLS_CLIENT_CA,
    OPT_TLS_HS_TIMEOUT,
    OPT_UP_TLS_CA,
    OPT_UP_TLS_CERT,
    OPT_UP_TLS_KEY,
    OPT_KEEPALIVE,
    OPT_KEEPALIVE_TIMEOUT,
    OPT_HEALTH_INTERVAL,
    OPT_HEALTH_TIMEOUT,
    OPT_HEALTHY_THRESHOLD,
    OPT_UNHEALTHY_THRESHOLD,
    OPT_OUTLIER_FAILURES,
    OPT_OUTLIER_BASE,
    OPT_OUTLIER_MAX,
    OPT_OUTLIER_MAX_PERCENT,
    OPT_ACCESS_LOG,
    OPT_VERSION,
    OPT_PLUGIN,
    OPT_JWT_KEYS,
    OPT_JWT_ISSUER,
    OPT_JWT_AUDIENCE,
    OPT_JWT_TENANT_CLAIM,
    OPT_JWT_LEEWAY,
    OPT_JWT_CACHE,
    OPT_MTLS_TENANT_FROM,
    OPT_MAX_HEADER_COUNT,
    OPT_MAX_CONNS,
    OPT_MAX_CONNS_PER_WORKER,
    OPT_PREFACE_TIMEOUT,
    OPT_IDLE_TIMEOUT,
    OPT_STREAM_IDLE_TIMEOUT,
    OPT_MAX_DEADLINE,
    OPT_MAX_PUSHBACK,
    OPT_MAX_CONN_BUFFER,
};

static const struct option long_opts[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"pool", required_argument, NULL, OPT_POOL},
    {"upstream-conns", required_argument, NULL, OPT_UPSTREAM_CONNS},
    {"max-message-bytes", required_argument, NULL, OPT_MAX_MESSAGE},
    {"retry-buffer-bytes", required_argument, NULL, OPT_RETRY_BUFFER},
    {"replay-buffer-total", required_argument, NULL, OPT_REPLAY_TOTAL},
    {"upstream-stream-id-limit", required_argument, NULL, OPT_STREAM_ID_LIMIT},
    {"stream-window-bytes", required_argument, NULL, OPT_STREAM_WINDOW},
    {"conn-window-bytes", required_argument, NULL, OPT_CONN_WINDOW},
    {"max-concurrent-streams", required_argument, NULL, OPT_MAX_STREAMS},
    {"max-header-list-bytes", required_argument, NULL, OPT_MAX_HEADERS},
    {"max-header-count", required_argument, NULL, OPT_MAX_HEADER_COUNT},
    {"max-conns", required_argument, NULL, OPT_MAX_CONNS},
    {"max-conns-per-worker", required_argument, NULL, OPT_MAX_CONNS_PER_WORKER},
    {"preface-timeout-ms", required_argument, NULL, OPT_PREFACE_TIMEOUT},
    {"idle-timeout-ms", required_argument, NULL, OPT_IDLE_TIMEOUT},
    {"stream-idle-timeout-ms", required_argument, NULL, OPT_STREAM_IDLE_TIMEOUT},
    {"max-deadline-ms", required_argument, NULL, OPT_MAX_DEADLINE},
    {"max-pushback-ms", required_argument, NULL, OPT_MAX_PUSHBACK},
    {"max-conn-buffer-bytes", required_argument, NULL, OPT_MAX_CONN_BUFFER},
    {"shutdown-grace-ms", required_argument, NULL, OPT_GRACE},
    {"connect-timeout-ms", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"route-header", required_argument, NULL, OPT_ROUTE_HEADER},
    {"auth", required_argument, NULL, OPT_AUTH},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"redis", required_argument, NULL, OPT_REDIS},
    {"redis-prefix", required_argument, NULL, OPT_REDIS_PREFIX},
    {"redis-timeout-ms", required_argument, NULL, OPT_REDIS_TIMEOUT},
    {"redis-poll-ms", required_argument, NULL, OPT_REDIS_POLL},
    {"gateway-id", required_argument, NULL, OPT_GATEWAY_ID},
    {"admin", required_argument, NULL, OPT_ADMIN},
    {"tenants", required_argument, NULL, OPT_TENANTS},
    {"api-keys", required_argument, NULL, OPT_API_KEYS},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"tls-client-ca", required_argument, NULL, OPT_TLS_CLIENT_CA},
    {"tls-handshake-timeout-ms", required_argument, NULL, OPT_TLS_HS_TIMEOUT},
    {"upstream-tls-ca", required_argument, NULL, OPT_UP_TLS_CA},
    {"upstream-tls-cert", required_argument, NULL, OPT_UP_TLS_CERT},
    {"upstream-tls-key", required_argument, NULL, OPT_UP_TLS_KEY},
    {"keepalive-ms", required_argument, NULL, OPT_KEEPALIVE},
    {"keepalive-timeout-ms", required_argument, NULL, OPT_KEEPALIVE_TIMEOUT},
    {"health-interval-ms", required_argument, NULL, OPT_HEALTH_INTERVAL},
    {"health-timeout-ms", required_argument, NULL, OPT_HEALTH_TIMEOUT},
    {"healthy-threshold", required_argument, NULL, OPT_HEALTHY_THRESHOLD},
    {"unhealthy-threshold", required_argument, NULL, OPT_UNHEALTHY_THRESHOLD},
    {"outlier-failures", required_argument, NULL, OPT_OUTLIER_FAILURES},
    {"outlier-base-ms", required_argument, NULL, OPT_OUTLIER_BASE},
    {"outlier-max-ms", required_argument, NULL, OPT_OUTLIER_MAX},
    {"outlier-max-percent", required_argument, NULL, OPT_OUTLIER_MAX_PERCENT},
    {"access-log", required_argument, NULL, OPT_ACCESS_LOG},
    {"version", no_argument, NULL, OPT_VERSION},
    {"plugin", required_argument, NULL, OPT_PLUGIN},
    {"jwt-keys", required_argument, NULL, OPT_JWT_KEYS},
    {"jwt-issuer", required_argument, NULL, OPT_JWT_ISSUER},
    {"jwt-audience", required_argument, NULL, OPT_JWT_AUDIENCE},
    {"jwt-tenant-claim", required_argument, NULL, OPT_JWT_TENANT_CLAIM},
    {"jwt-leeway-s", required_argument, NULL, OPT_JWT_LEEWAY},
    {"jwt-cache-size", required_argument, NULL, OPT_JWT_CACHE},
    {"mtls-tenant-from", required_argument, NULL, OPT_MTLS_TENANT_FROM},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

void gw_config_usage(FILE *out)
{
    fprintf(
        out,
        "Usage: infergw [flags]\n"
        "\n"
        "infergw is a gRPC inference gateway: it authenticates each call, routes it to a\n"
        "model replica by consistent hashing, and relays it over HTTP/2.\n"
        "\n"
        "Flags (default in brackets):\n"
        "  --listen HOST:PORT            address clients connect to: TLS with ALPN h2 when\n"
        "                                --tls-cert is given, else h2c [127.0.0.1:7100]\n"
        "  --workers N                   worker threads, each with its own epoll loop and\n"
        "                                SO_REUSEPORT listener [one per online CPU]\n"
        "  --pool NAME=HOST:PORT[,...]   a static pool (model) and its replicas; repeatable.\n"
        "                                Calls that name no model use pool 'default'. With\n"
        "                                --redis, Redis wins for the pools it defines [none]\n"
        "  --redis URL                   control plane: redis://[:password@]host:port[/db] or\n"
        "                                sentinel://[:password@]h:p,h:p/MASTER[/db]; pools,\n"
        "                                rings, tunables and drains are read from there and\n"
        "                                follow every change [none: --pool only]\n"
        "  --redis-prefix P              prefix of every Redis key [infergw:]\n"
        "  --redis-timeout-ms N          connect and command timeout towards Redis [1000]\n"
        "  --redis-poll-ms N             how often infergw:version is polled, in case a\n"
        "                                change message was lost [1000]\n"
        "  --gateway-id ID               name of this gateway's health report in Redis\n"
        "                                (<prefix>gateway:<ID>, read by infergw-ctl status)\n"
        "                                [hostname:listen-port]\n"
        "  --access-log PATH|-|off       one JSON line per call (request id, tenant, pool,\n"
        "                                method, replicas tried, status, duration) appended\n"
        "                                to PATH, or - for stdout [off]\n"
        "  --admin HOST:PORT|off         admin HTTP: /metrics (Prometheus), /healthz, /readyz,\n"
        "                                /debug/replicas; 'off' disables it. A taken default\n"
        "                                port is logged and skipped; a taken --admin address\n"
        "                                is an error [127.0.0.1:7190]\n"
        "  --tenants FILE                tenants without Redis, one a line:\n"
        "                                NAME models=A,B|* [rps=N] [burst=N]; not with\n"
        "                                --redis (Redis holds them there) [none]\n"
        "  --api-keys FILE               API keys without Redis, one a line: the SHA-256 hex\n"
        "                                of the key (never the key), tenant=NAME\n"
        "                                [expires_at=UNIX]; needs --tenants [none]\n"
        "  --upstream-conns N            HTTP/2 connections per replica per worker [2]\n"
        "  --max-message-bytes N         largest gRPC message either way; larger ones end\n"
        "                                the call with RESOURCE_EXHAUSTED [16777216]\n"
        "  --retry-buffer-bytes N        request bytes kept per call for retries and hedges;\n"
        "                                a longer request is sent to one replica only\n"
        "                                (0 = never retry or hedge) [4194304]\n"
        "  --replay-buffer-total N       request bytes all calls of a worker may keep for\n"
        "                                replay; a call that would go past it runs\n"
        "                                single-attempt [268435456]\n"
        "  --upstream-stream-id-limit N  last HTTP/2 stream id used on an upstream\n"
        "                                connection; it is retired and replaced when\n"
        "                                1/16 of the ids are left (lower it to test)\n"
        "                                [2147483647]\n"
        "  --stream-window-bytes N       HTTP/2 flow-control window per stream: the most\n"
        "                                the gateway buffers per call and direction [1048576]\n"
        "  --conn-window-bytes N         HTTP/2 flow-control window per connection [16777216]\n"
        "  --max-concurrent-streams N    concurrent calls per client connection [1024]\n"
        "  --max-header-list-bytes N     largest header block (RFC 9113 size: name + value\n"
        "                                + 32 per field) accepted from a client or replica,\n"
        "                                counted while HPACK decodes it; a client's stream\n"
        "                                is refused (RESOURCE_EXHAUSTED), a replica's reset\n"
        "                                [65536]\n"
        "  --max-header-count N          most fields in one header block, either side [256]\n"
        "  --max-conns N                 client connections open at once, all workers; more\n"
        "                                are accepted and closed at once [10000]\n"
        "  --max-conns-per-worker N      the same per worker; 0 = only --max-conns [0]\n"
        "  --preface-timeout-ms N        a client must send the HTTP/2 preface and SETTINGS\n"
        "                                within N ms of connecting (TLS handshake included),\n"
        "                                or is disconnected [10000]\n"
        "  --idle-timeout-ms N           a client connection with no call and no frame for\n"
        "                                N ms gets GOAWAY and is closed; 0 = never [300000]\n"
        "  --stream-idle-timeout-ms N    a call that moves no bytes either way for N ms\n"
        "                                ends with DEADLINE_EXCEEDED; 0 = never [300000]\n"
        "  --max-deadline-ms N           the longest a call may last: calls without\n"
        "                                grpc-timeout get it, longer grpc-timeout values are\n"
        "                                cut to it; 0 = no limit [3600000]\n"
        "  --max-pushback-ms N           a replica's grpc-retry-pushback-ms above N is cut to\n"
        "                                N before the call waits to retry [30000]\n"
        "  --max-conn-buffer-bytes N     response bytes the calls of one client connection\n"
        "                                may hold unread; the call that goes past it ends\n"
        "                                with RESOURCE_EXHAUSTED [67108864]\n"
        "  --shutdown-grace-ms N         on SIGTERM, how long in-flight calls may take to\n"
        "                                finish after GOAWAY before the gateway exits [15000]\n"
        "  --connect-timeout-ms N        TCP connect (and, with --upstream-tls-ca, TLS\n"
        "                                handshake) timeout towards replicas [1000]\n"
        "  --route-header NAME           metadata key holding the routing key [x-route-key]\n"
        "  --auth on|none                on: every call must authenticate (API key, JWT,\n"
        "                                mTLS, --plugin chain); none: no authentication, for\n"
        "                                local development only (logged as a warning) [on]\n"
        "  --plugin PATH.so[:ARGS]       an authentication plugin (infergw/plugin.h), asked\n"
        "                                before the built-ins; repeatable, in order [none]\n"
        "  --jwt-keys FILE               JWT verification keys: a PEM public key (kid = file\n"
        "                                name without extension) or a JWKS file (RSA, EC\n"
        "                                P-256, oct); repeatable; enables JWT; SIGHUP\n"
        "                                reads them again [none]\n"
        "  --jwt-issuer ISS              required iss claim [not checked]\n"
        "  --jwt-audience AUD            required in the aud claim [not checked]\n"
        "  --jwt-tenant-claim NAME       claim holding the tenant [sub]\n"
        "  --jwt-leeway-s N              clock skew allowed on exp and nbf [30]\n"
        "  --jwt-cache-size N            verified tokens cached per worker [4096]\n"
        "  --mtls-tenant-from cn|san-dns|san-uri\n"
        "                                tenant of a verified client certificate: its\n"
        "                                subject CN or first DNS/URI SAN [off]\n"
        "  --tls-cert FILE               PEM certificate chain clients see; turns on TLS\n"
        "                                (1.2+, ALPN h2 required). SIGHUP reloads it and\n"
        "                                --tls-key; a bad pair keeps the old one [none: h2c]\n"
        "  --tls-key FILE                PEM private key of --tls-cert [none]\n"
        "  --tls-client-ca FILE          mutual TLS: require a client certificate issued by\n"
        "                                a CA in this PEM bundle [none: no client cert]\n"
        "  --tls-handshake-timeout-ms N  a client must finish its TLS handshake within\n"
        "                                this time, or is disconnected [10000]\n"
        "  --upstream-tls-ca FILE        connect to replicas over TLS (ALPN h2), verifying\n"
        "                                their certificate against this PEM CA bundle and\n"
        "                                their address (IP or name); SIGHUP reloads it\n"
        "                                and the client pair below [none: h2c]\n"
        "  --upstream-tls-cert FILE      client certificate presented to replicas (with\n"
        "                                --upstream-tls-key) [none]\n"
        "  --upstream-tls-key FILE       PEM private key of --upstream-tls-cert [none]\n"
        "  --keepalive-ms N              send an HTTP/2 PING on an upstream connection that\n"
        "                                carries calls and has heard nothing for N ms; 0 = off\n"
        "                                [1000]\n"
        "  --keepalive-timeout-ms N      close the connection (its calls fail over) and count\n"
        "                                a replica failure when the PING ACK takes longer [1000]\n"
        "  --health-interval-ms N        grpc.health.v1 Check of every replica every N ms;\n"
        "                                0 = off [1000]\n"
        "  --health-timeout-ms N         a check without an answer by then failed [500]\n"
        "  --healthy-threshold N         consecutive SERVING answers that make a replica\n"
        "                                healthy again [2]\n"
        "  --unhealthy-threshold N       consecutive NOT_SERVING / failed checks that take a\n"
        "                                replica out of routing [2]\n"
        "  --outlier-failures N          consecutive failed calls (UNAVAILABLE, reset, lost\n"
        "                                connection, per-try timeout) that eject a replica;\n"
        "                                0 = never [5]\n"
        "  --outlier-base-ms N           ejection time per time ejected [10000]\n"
        "  --outlier-max-ms N            longest ejection [300000]\n"
        "  --outlier-max-percent N       most of a pool (percent) ejected at once [50]\n"
        "  --log-level LEVEL             debug, info, warn or error [info]\n"
        "  --version                     print the version and exit\n"
        "  -h, --help                    print this help and exit\n"
        "\n"
        "Pool of a call: metadata 'x-model', else the KServe v2 'model_name' of the first\n"
        "request message, else 'default'. Same routing key, same replica.\n"
        "\n"
        "Example:\n"
        "  infergw --listen 127.0.0.1:7100 --auth=none \\\n"
        "      --pool demo=127.0.0.1:7201,127.0.0.1:7202 --pool default=127.0.0.1:7201\n"
        "  infergw --auth=none --redis redis://127.0.0.1:6379\n"
        "  infergw --redis redis://127.0.0.1:6379 --jwt-keys /etc/infergw/jwks.json \\\n"
        "      --jwt-issuer https://idp.example --jwt-audience infergw\n"
        "  infergw --auth=none --pool demo=127.0.0.1:7201 --tls-cert /etc/infergw/cert.pem \\\n"
        "      --tls-key /etc/infergw/key.pem --tls-client-ca /etc/infergw/clients-ca.pem\n"
        "  infergw --auth=none --pool demo=127.0.0.1:7201,127.0.0.1:7202,127.0.0.1:7203 \\\n"
        "      --health-interval-ms 500 --unhealthy-threshold 2 --outlier-failures 5\n");
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Stores a copy of file path <v> of flag <flag> in <*dst> (a later flag
 * replaces an earlier one). Returns 0 or -1 with the reason in <err>. */
static int set_path(char **dst, const char *flag, const char *v, char *err, size_t errlen)
{
    if (!v[0]) {
        set_err(err, errlen, "%s needs a file name", flag);
        return -1;
    }
    char *p = gw_strdup(v);
    if (!p) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    gw_free(*dst);
    *dst = p;
    return 0;
}

/* The combinations of TLS flags that make sense. */
static int check_tls_flags(const struct gw_config *cfg, char *err, size_t errlen)
{
    if (!cfg->tls_cert != !cfg->tls_key) {
        set_err(err, errlen, "%s given without %s: both are needed to serve TLS",
                cfg->tls_cert ? "--tls-cert" : "--tls-key",
                cfg->tls_cert ? "--tls-key" : "--tls-cert");
        return -1;
    }
    if (cfg->tls_client_ca && !cfg->tls_cert) {
        set_err(err, errlen,
                "--tls-client-ca needs --tls-cert and --tls-key: mutual TLS runs over TLS");
        return -1;
    }
    if (!cfg->upstream_tls_cert != !cfg->upstream_tls_key) {
        set_err(err, errlen, "%s given without %s",
                cfg->upstream_tls_cert ? "--upstream-tls-cert" : "--upstream-tls-key",
                cfg->upstream_tls_cert ? "--upstream-tls-key" : "--upstream-tls-cert");
        return -1;
    }
    if (cfg->upstream_tls_cert && !cfg->upstream_tls_ca) {
        set_err(err, errlen,
                "--upstream-tls-cert needs --upstream-tls-ca: replicas are reached over TLS "
                "only with a CA to verify them");
        return -1;
    }
    return 0;
}

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* The replica health flags, the client-edge limits and the upstream limits:
 * one table of name, field and range. */
static int parse_table_flag(struct gw_config *cfg, int opt, const char *arg, char *err,
                            size_t errlen)
{
    static const struct {
        int opt;
        const char *name;
        size_t off;
        uint32_t min, max;
    } flags[] = {
        {OPT_KEEPALIVE, "--keepalive-ms", offsetof(struct gw_config, keepalive_ms), 0, 3600000},
        {OPT_KEEPALIVE_TIMEOUT, "--keepalive-timeout-ms",
         offsetof(struct gw_config, keepalive_timeout_ms), 10, 600000},
        {OPT_HEALTH_INTERVAL, "--health-interval-ms",
         offsetof(struct gw_config, health_interval_ms), 0, 3600000},
        {OPT_HEALTH_TIMEOUT, "--health-timeout-ms", offsetof(struct gw_config, health_timeout_ms),
         10, 600000},
        {OPT_HEALTHY_THRESHOLD, "--healthy-threshold",
         offsetof(struct gw_config, healthy_threshold), 1, 100},
        {OPT_UNHEALTHY_THRESHOLD, "--unhealthy-threshold",
         offsetof(struct gw_config, unhealthy_threshold), 1, 100},
        {OPT_OUTLIER_FAILURES, "--outlier-failures", offsetof(struct gw_config, outlier_failures),
         0, 100000},
        {OPT_OUTLIER_BASE, "--outlier-base-ms", offsetof(struct gw_config, outlier_base_ms), 1,
         86400000},
        {OPT_OUTLIER_MAX, "--outlier-max-ms", offsetof(struct gw_config, outlier_max_ms), 1,
         86400000},
        {OPT_OUTLIER_MAX_PERCENT, "--outlier-max-percent",
         offsetof(struct gw_config, outlier_max_percent), 0, 100},
        {OPT_MAX_HEADER_COUNT, "--max-header-count", offsetof(struct gw_config, max_header_count),
         16, 65536},
        {OPT_MAX_CONNS, "--max-conns", offsetof(struct gw_config, max_conns), 1, 10000000},
        {OPT_MAX_CONNS_PER_WORKER, "--max-conns-per-worker",
         offsetof(struct gw_config, max_conns_per_worker), 0, 10000000},
        {OPT_PREFACE_TIMEOUT, "--preface-timeout-ms",
         offsetof(struct gw_config, preface_timeout_ms), 100, 600000},
        {OPT_IDLE_TIMEOUT, "--idle-timeout-ms", offsetof(struct gw_config, idle_timeout_ms), 0,
         86400000},
        {OPT_STREAM_IDLE_TIMEOUT, "--stream-idle-timeout-ms",
         offsetof(struct gw_config, stream_idle_timeout_ms), 0, 86400000},
        {OPT_MAX_DEADLINE, "--max-deadline-ms", offsetof(struct gw_config, max_deadline_ms), 0,
         604800000},
        {OPT_MAX_PUSHBACK, "--max-pushback-ms", offsetof(struct gw_config, max_pushback_ms), 0,
         3600000},
        {OPT_MAX_CONN_BUFFER, "--max-conn-buffer-bytes",
         offsetof(struct gw_config, max_conn_buffer_bytes), 65536, 4294967295u},
        {OPT_REPLAY_TOTAL, "--replay-buffer-total", offsetof(struct gw_config, replay_buffer_total),
         0, 4294967295u},
        {OPT_STREAM_ID_LIMIT, "--upstream-stream-id-limit",
         offsetof(struct gw_config, upstream_stream_id_limit), 33, 2147483647u},
    };
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        if (flags[i].opt != opt)
            continue;
        uint32_t *field = (uint32_t *)((char *)cfg + flags[i].off);
        if (parse_u32(arg, flags[i].min, flags[i].max, field) < 0) {
            set_err(err, errlen, "%s '%s': expected %u..%u", flags[i].name, arg,
                    (unsigned)flags[i].min, (unsigned)flags[i].max);
            return -1;
        }
        return 0;
    }
    return -1;
}

int gw_config_split_addr(const char *addr, char *host, size_t hostlen, uint16_t *port)
{
    const char *colon;
    const char *h = addr;
    size_t hl;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':')
            return -1;
        h = addr + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon)
            return -1;
        hl = (size_t)(colon - addr);
    }
    if (hl == 0 || hl >= hostlen)
        return -1;
    uint32_t p;
    if (parse_u32(colon + 1, 1, 65535, &p) < 0)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (uint16_t)p;
    return 0;
}

/* Adds "NAME=HOST:PORT[,HOST:PORT...]"; a second --pool for the same name
 * is refused rather than silently merged. */
static int add_pool(struct gw_config *cfg, const char *spec, char *err, size_t errlen)
{
    const char *eq = strchr(spec, '=');
    if (!eq || !gw_pool_name_valid(spec, (size_t)(eq - spec))) {
        set_err(err, errlen,
                "--pool '%s': expected NAME=HOST:PORT[,HOST:PORT...] with a non-empty name "
                "of printable characters",
                spec);
        return -1;
    }
    size_t nlen = (size_t)(eq - spec);
    for (size_t i = 0; i < cfg->npools; i++)
        if (strlen(cfg->pools[i].name) == nlen && !memcmp(cfg->pools[i].name, spec, nlen)) {
            set_err(err, errlen, "--pool '%.*s' given twice; list all its replicas in one flag",
                    (int)nlen, spec);
            return -1;
        }
    struct gw_pool_conf *np = gw_realloc(cfg->pools, (cfg->npools + 1) * sizeof(*np));
    if (!np) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    cfg->pools = np;
    struct gw_pool_conf *p = &cfg->pools[cfg->npools];
    memset(p, 0, sizeof(*p));
    p->name = gw_strndup(spec, nlen);
    if (!p->name) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    cfg->npools++;
    const char *s = eq + 1;
    while (*s) {
        const char *comma = strchr(s, ',');
        size_t alen = comma ? (size_t)(comma - s) : strlen(s);
        char addr[300], host[256];
        uint16_t port;
        if (alen == 0 || alen >= sizeof(addr)) {
            set_err(err, errlen, "--pool %s: empty or overlong replica address", p->name);
            return -1;
        }
        memcpy(addr, s, alen);
        addr[alen] = '\0';
        if (gw_config_split_addr(addr, host, sizeof(host), &port) < 0) {
            set_err(err, errlen, "--pool %s: replica '%s' is not HOST:PORT", p->name, addr);
            return -1;
        }
        for (size_t i = 0; i < p->naddrs; i++)
            if (!strcmp(p->addrs[i], addr)) {
                set_err(err, errlen, "--pool %s: replica %s listed twice", p->name, addr);
                return -1;
            }
        char **na = gw_realloc(p->addrs, (p->naddrs + 1) * sizeof(*na));
        if (!na || !(na[p->naddrs] = gw_strdup(addr))) {
            if (na)
                p->addrs = na;
            set_err(err, errlen, "out of memory");
            return -1;
        }
        p->addrs = na;
        p->naddrs++;
        s = comma ? comma + 1 : s + alen;
    }
    if (p->naddrs == 0) {
        set_err(err, errlen, "--pool %s: no replica given", p->name);
        return -1;
    }
    return 0;
}

static int push_str(char ***list, size_t *n, const char *s)
{
    char **nl = gw_realloc(*list, (*n + 1) * sizeof(*nl));
    if (!nl)
        return -1;
    *list = nl;
    if (!(nl[*n] = gw_strdup(s)))
        return -1;
    (*n)++;
    return 0;
}

/* Values handed to the built-in JWT plugin as "key=value,..." arguments:
 * printable, no comma. */
static int plain_value(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n >= max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f || s[i] == ',')
            return 0;
    return 1;
}

/* The authentication flags (--plugin, --jwt-*, --mtls-tenant-from). */
static int auth_opt(struct gw_auth_conf *a, int opt, const char *v, char *err, size_t errlen)
{
    switch (opt) {
    case OPT_PLUGIN:
        if (!v[0] || v[0] == ':') {
            set_err(err, errlen, "--plugin '%s': expected PATH.so[:ARGS]", v);
            return -1;
        }
        if (push_str(&a->plugins, &a->nplugins, v) < 0)
            goto oom;
        return 0;
    case OPT_JWT_KEYS:
        if (!plain_value(v, 1024)) {
            set_err(err, errlen, "--jwt-keys '%s': expected a file path without commas", v);
            return -1;
        }
        if (push_str(&a->jwt_keys, &a->njwt_keys, v) < 0)
            goto oom;
        return 0;
    case OPT_JWT_ISSUER:
    case OPT_JWT_AUDIENCE: {
        char *dst = opt == OPT_JWT_ISSUER ? a->jwt_issuer : a->jwt_audience;
        if (!plain_value(v, sizeof(a->jwt_issuer))) {
            set_err(err, errlen, "%s '%s': expected 1..255 printable characters, no comma",
                    opt == OPT_JWT_ISSUER ? "--jwt-issuer" : "--jwt-audience", v);
            return -1;
        }
        snprintf(dst, sizeof(a->jwt_issuer), "%s", v);
        return 0;
    }
    case OPT_JWT_TENANT_CLAIM:
        if (!plain_value(v, sizeof(a->jwt_tenant_claim)) || strchr(v, '=')) {
            set_err(err, errlen, "--jwt-tenant-claim '%s': expected a claim name (1..63 bytes)", v);
            return -1;
        }
        snprintf(a->jwt_tenant_claim, sizeof(a->jwt_tenant_claim), "%s", v);
        return 0;
    case OPT_JWT_LEEWAY:
        if (parse_u32(v, 0, 3600, &a->jwt_leeway_s) < 0) {
            set_err(err, errlen, "--jwt-leeway-s '%s': expected 0..3600", v);
            return -1;
        }
        return 0;
    case OPT_JWT_CACHE:
        if (parse_u32(v, 0, 1u << 20, &a->jwt_cache_size) < 0) {
            set_err(err, errlen, "--jwt-cache-size '%s': expected 0..1048576 (0 = no cache)", v);
            return -1;
        }
        return 0;
    case OPT_MTLS_TENANT_FROM:
        if (strcmp(v, "cn") && strcmp(v, "san-dns") && strcmp(v, "san-uri")) {
            set_err(err, errlen, "--mtls-tenant-from '%s': expected cn, san-dns or san-uri", v);
            return -1;
        }
        snprintf(a->mtls_tenant_from, sizeof(a->mtls_tenant_from), "%s", v);
        return 0;
    }
    return 0;
oom:
    set_err(err, errlen, "out of memory");
    return -1;
}

int gw_config_parse(struct gw_config *cfg, int argc, char **argv, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->listen, sizeof(cfg->listen), "127.0.0.1:7100");
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->workers = ncpu > 0 ? (int)ncpu : 1;
    cfg->upstream_conns = 2;
    cfg->max_message_bytes = 16u << 20;
    cfg->retry_buffer_bytes = 4u << 20;
    cfg->replay_buffer_total = 256u << 20;
    cfg->upstream_stream_id_limit = 2147483647u;
    cfg->stream_window_bytes = 1u << 20;
    cfg->conn_window_bytes = 16u << 20;
    cfg->max_concurrent_streams = 1024;
    cfg->max_header_list_bytes = 65536;
    cfg->max_header_count = 256;
    cfg->max_conns = 10000;
    cfg->max_conns_per_worker = 0;
    cfg->preface_timeout_ms = 10000;
    cfg->idle_timeout_ms = 300000;
    cfg->stream_idle_timeout_ms = 300000;
    cfg->max_deadline_ms = 3600000;
    cfg->max_pushback_ms = 30000;
    cfg->max_conn_buffer_bytes = 64u << 20;
    cfg->shutdown_grace_ms = 15000;
    cfg->connect_timeout_ms = 1000;
    snprintf(cfg->route_header, sizeof(cfg->route_header), "x-route-key");
    cfg->log_level = GW_LOG_INFO;
    snprintf(cfg->redis_prefix, sizeof(cfg->redis_prefix), "infergw:");
    cfg->redis_timeout_ms = 1000;
    cfg->redis_poll_ms = 1000;
    snprintf(cfg->admin, sizeof(cfg->admin), "127.0.0.1:7190");
    snprintf(cfg->auth.jwt_tenant_claim, sizeof(cfg->auth.jwt_tenant_claim), "sub");
    cfg->auth.jwt_leeway_s = 30;
    cfg->auth.jwt_cache_size = 4096;
    cfg->tls_handshake_timeout_ms = 10000;
    cfg->keepalive_ms = 1000;
    cfg->keepalive_timeout_ms = 1000;
    cfg->health_interval_ms = 1000;
    cfg->health_timeout_ms = 500;
    cfg->healthy_threshold = 2;
    cfg->unhealthy_threshold = 2;
    cfg->outlier_failures = 5;
    cfg->outlier_base_ms = 10000;
    cfg->outlier_max_ms = 300000;
    cfg->outlier_max_percent = 50;

    optind = 0; /* 0, not 1: glibc then also resets its internal state */
    opterr = 0;
    int c;
    uint32_t v;
    while ((c = getopt_long(argc, argv, ":h", long_opts, NULL)) != -1) {
        const char *name = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
        switch (c) {
        case 'h':
            gw_config_usage(stdout);
            return 1;
        case OPT_VERSION:
            printf("infergw %s\n", INFERGW_VERSION);
            return 1;
        case OPT_LISTEN: {
            char host[256];
            uint16_t port;
            if (strlen(optarg) >= sizeof(cfg->listen) ||
                gw_config_split_addr(optarg, host, sizeof(host), &port) < 0) {
                set_err(err, errlen, "--listen '%s': expected HOST:PORT", optarg);
                return -1;
            }
            snprintf(cfg->listen, sizeof(cfg->listen), "%s", optarg);
            break;
        }
        case OPT_WORKERS:
            if (parse_u32(optarg, 1, 256, &v) < 0) {
                set_err(err, errlen, "--workers '%s': expected 1..256", optarg);
                return -1;
            }
            cfg->workers = (int)v;
            break;
        case OPT_POOL:
            if (add_pool(cfg, optarg, err, errlen) < 0)
                return -1;
            break;
        case OPT_UPSTREAM_CONNS:
            if (parse_u32(optarg, 1, 64, &v) < 0) {
                set_err(err, errlen, "--upstream-conns '%s': expected 1..64", optarg);
                return -1;
            }
            cfg->upstream_conns = (int)v;
            break;
        case OPT_MAX_MESSAGE:
            if (parse_u32(optarg, 1024, 1u << 30, &cfg->max_message_bytes) < 0) {
                set_err(err, errlen, "--max-message-bytes '%s': expected 1024..1073741824", optarg);
                return -1;
            }
            break;
        case OPT_RETRY_BUFFER:
            if (parse_u32(optarg, 0, 1u << 30, &cfg->retry_buffer_bytes) < 0) {
                set_err(err, errlen, "--retry-buffer-bytes '%s': expected 0..1073741824", optarg);
                return -1;
            }
            break;
        case OPT_STREAM_WINDOW:
            if (parse_u32(optarg, 65535, (1u << 31) - 1, &cfg->stream_window_bytes) < 0) {
                set_err(err, errlen, "--stream-window-bytes '%s': expected 65535..2147483647",
                        optarg);
                return -1;
            }
            break;
        case OPT_CONN_WINDOW:
            if (parse_u32(optarg, 65535, (1u << 31) - 1, &cfg->conn_window_bytes) < 0) {
                set_err(err, errlen, "--conn-window-bytes '%s': expected 65535..2147483647",
                        optarg);
                return -1;
            }
            break;
        case OPT_MAX_STREAMS:
            if (parse_u32(optarg, 1, 1u << 20, &cfg->max_concurrent_streams) < 0) {
                set_err(err, errlen, "--max-concurrent-streams '%s': expected 1..1048576", optarg);
                return -1;
            }
            break;
        case OPT_MAX_HEADERS:
            if (parse_u32(optarg, 4096, 1u << 24, &cfg->max_header_list_bytes) < 0) {
                set_err(err, errlen, "--max-header-list-bytes '%s': expected 4096..16777216",
                        optarg);
                return -1;
            }
            break;
        case OPT_GRACE:
            if (parse_u32(optarg, 0, 3600000, &cfg->shutdown_grace_ms) < 0) {
                set_err(err, errlen, "--shutdown-grace-ms '%s': expected 0..3600000", optarg);
                return -1;
            }
            break;
        case OPT_CONNECT_TIMEOUT:
            if (parse_u32(optarg, 1, 600000, &cfg->connect_timeout_ms) < 0) {
                set_err(err, errlen, "--connect-timeout-ms '%s': expected 1..600000", optarg);
                return -1;
            }
            break;
        case OPT_ROUTE_HEADER: {
            size_t n = strlen(optarg);
            int ok = n > 0 && n < sizeof(cfg->route_header);
            for (size_t i = 0; ok && i < n; i++)
                ok = (optarg[i] >= 'a' && optarg[i] <= 'z') ||
                     (optarg[i] >= '0' && optarg[i] <= '9') || optarg[i] == '-' ||
                     optarg[i] == '_' || optarg[i] == '.';
            if (!ok) {
                set_err(err, errlen,
                        "--route-header '%s': expected a lowercase metadata key (a-z 0-9 - _ .)",
                        optarg);
                return -1;
            }
            memcpy(cfg->route_header, optarg, n + 1);
            break;
        }
        case OPT_AUTH:
            if (strcmp(optarg, "none") != 0 && strcmp(optarg, "on") != 0) {
                set_err(err, errlen, "--auth '%s': expected on or none", optarg);
                return -1;
            }
            cfg->auth.none = !strcmp(optarg, "none");
            break;
        case OPT_PLUGIN:
        case OPT_JWT_KEYS:
        case OPT_JWT_ISSUER:
        case OPT_JWT_AUDIENCE:
        case OPT_JWT_TENANT_CLAIM:
        case OPT_JWT_LEEWAY:
        case OPT_JWT_CACHE:
        case OPT_MTLS_TENANT_FROM:
            if (auth_opt(&cfg->auth, c, optarg, err, errlen) < 0)
                return -1;
            break;
        case OPT_LOG_LEVEL: {
            int l = gw_log_level_parse(optarg);
            if (l < 0) {
                set_err(err, errlen, "--log-level '%s': expected debug, info, warn or error",
                        optarg);
                return -1;
            }
            cfg->log_level = l;
            break;
        }
        case OPT_REDIS:
            if (strlen(optarg) >= sizeof(cfg->redis_url) ||
                (strncmp(optarg, "redis://", 8) != 0 && strncmp(optarg, "sentinel://", 11) != 0)) {
                set_err(err, errlen,
                        "--redis '%s': expected redis://[:password@]host:port[/db] or "
                        "sentinel://[:password@]h:p[,h:p...]/MASTER[/db]",
                        optarg);
                return -1;
            }
            snprintf(cfg->redis_url, sizeof(cfg->redis_url), "%s", optarg);
            break;
        case OPT_REDIS_PREFIX: {
            size_t n = strlen(optarg);
            int ok = n > 0 && n < sizeof(cfg->redis_prefix);
            for (size_t i = 0; ok && i < n; i++)
                ok = (unsigned char)optarg[i] > 0x20 && (unsigned char)optarg[i] < 0x7f;
            if (!ok) {
                set_err(err, errlen, "--redis-prefix '%s': expected 1..127 printable characters",
                        optarg);
                return -1;
            }
            memcpy(cfg->redis_prefix, optarg, n + 1);
            break;
        }
        case OPT_REDIS_TIMEOUT:
            if (parse_u32(optarg, 10, 60000, &cfg->redis_timeout_ms) < 0) {
                set_err(err, errlen, "--redis-timeout-ms '%s': expected 10..60000", optarg);
                return -1;
            }
            break;
        case OPT_GATEWAY_ID:
            if (!optarg[0] || strlen(optarg) >= sizeof(cfg->gateway_id) ||
                strpbrk(optarg, " \t\r\n")) {
                set_err(err, errlen, "--gateway-id '%s': expected 1..255 characters, no spaces",
                        optarg);
                return -1;
            }
            snprintf(cfg->gateway_id, sizeof(cfg->gateway_id), "%s", optarg);
            break;
        case OPT_REDIS_POLL:
            if (parse_u32(optarg, 50, 60000, &cfg->redis_poll_ms) < 0) {
                set_err(err, errlen, "--redis-poll-ms '%s': expected 50..60000", optarg);
                return -1;
            }
            break;
        case OPT_ACCESS_LOG:
            if (strlen(optarg) >= sizeof(cfg->access_log)) {
                set_err(err, errlen, "--access-log: path longer than %zu bytes",
                        sizeof(cfg->access_log) - 1);
                return -1;
            }
            snprintf(cfg->access_log, sizeof(cfg->access_log), "%s",
                     strcmp(optarg, "off") ? optarg : "");
            break;
        case OPT_ADMIN: {
            char host[128];
            uint16_t port;
            if (strcmp(optarg, "off") != 0 &&
                (strlen(optarg) >= sizeof(cfg->admin) ||
                 gw_config_split_addr(optarg, host, sizeof(host), &port) < 0)) {
                set_err(err, errlen, "--admin '%s': expected HOST:PORT or off", optarg);
                return -1;
            }
            snprintf(cfg->admin, sizeof(cfg->admin), "%s", strcmp(optarg, "off") ? optarg : "");
            cfg->admin_explicit = 1;
            break;
        }
        case OPT_TENANTS:
        case OPT_API_KEYS: {
            char *dst = c == OPT_TENANTS ? cfg->tenants_file : cfg->api_keys_file;
            if (!optarg[0] || strlen(optarg) >= sizeof(cfg->tenants_file)) {
                set_err(err, errlen, "%s '%s': expected a file path",
                        c == OPT_TENANTS ? "--tenants" : "--api-keys", optarg);
                return -1;
            }
            snprintf(dst, sizeof(cfg->tenants_file), "%s", optarg);
            break;
        }
        case OPT_TLS_CERT:
            if (set_path(&cfg->tls_cert, "--tls-cert", optarg, err, errlen) < 0)
                return -1;
            break;
        case OPT_TLS_KEY:
            if (set_path(&cfg->tls_key, "--tls-key", optarg, err, errlen) < 0)
                return -1;
            break;
        case OPT_TLS_CLIENT_CA:
            if (set_path(&cfg->tls_client_ca, "--tls-client-ca", optarg, err, errlen) < 0)
                return -1;
            break;
        case OPT_TLS_HS_TIMEOUT:
            if (parse_u32(optarg, 100, 600000, &cfg->tls_handshake_timeout_ms) < 0) {
                set_err(err, errlen, "--tls-handshake-timeout-ms '%s': expected 100..600000",
                        optarg);
                return -1;
            }
            break;
        case OPT_UP_TLS_CA:
            if (set_path(&cfg->upstream_tls_ca, "--upstream-tls-ca", optarg, err, errlen) < 0)
                return -1;
            break;
        case OPT_UP_TLS_CERT:
            if (set_path(&cfg->upstream_tls_cert, "--upstream-tls-cert", optarg, err, errlen) < 0)
                return -1;
            break;
        case OPT_UP_TLS_KEY:
            if (set_path(&cfg->upstream_tls_key, "--upstream-tls-key", optarg, err, errlen) < 0)
                return -1;
            break;
        case OPT_KEEPALIVE:
        case OPT_KEEPALIVE_TIMEOUT:
        case OPT_HEALTH_INTERVAL:
        case OPT_HEALTH_TIMEOUT:
        case OPT_HEALTHY_THRESHOLD:
        case OPT_UNHEALTHY_THRESHOLD:
        case OPT_OUTLIER_FAILURES:
        case OPT_OUTLIER_BASE:
        case OPT_OUTLIER_MAX:
        case OPT_OUTLIER_MAX_PERCENT:
        case OPT_MAX_HEADER_COUNT:
        case OPT_MAX_CONNS:
        case OPT_MAX_CONNS_PER_WORKER:
        case OPT_PREFACE_TIMEOUT:
        case OPT_IDLE_TIMEOUT:
        case OPT_STREAM_IDLE_TIMEOUT:
        case OPT_MAX_DEADLINE:
        case OPT_MAX_PUSHBACK:
        case OPT_MAX_CONN_BUFFER:
        case OPT_REPLAY_TOTAL:
        case OPT_STREAM_ID_LIMIT:
            if (parse_table_flag(cfg, c, optarg, err, errlen) < 0)
                return -1;
            break;
        case ':':
            set_err(err, errlen, "%s needs a value", name);
            return -1;
        default:
            set_err(err, errlen, "unknown flag '%s' (see --help)", name);
            return -1;
        }
    }
    if (optind < argc) {
        set_err(err, errlen, "unexpected argument '%s' (see --help)", argv[optind]);
        return -1;
    }
    /* One source of truth for who may call: with Redis, a revoked key must
     * not live on in a file. */
    if (cfg->redis_url[0] && (cfg->tenants_file[0] || cfg->api_keys_file[0])) {
        set_err(err, errlen,
                "--tenants/--api-keys cannot be combined with --redis: with Redis, tenants and "
                "API keys are read from Redis (add them with infergw-ctl tenant/key)");
        return -1;
    }
    if (cfg->api_keys_file[0] && !cfg->tenants_file[0]) {
        set_err(err, errlen, "--api-keys needs --tenants (the tenants the keys belong to)");
        return -1;
    }
    if (check_tls_flags(cfg, err, errlen) < 0)
        return -1;
    if (cfg->outlier_max_ms < cfg->outlier_base_ms) {
        set_err(err, errlen,
                "--outlier-max-ms %u is below --outlier-base-ms %u: the longest ejection cannot "
                "be shorter than the first",
                (unsigned)cfg->outlier_max_ms, (unsigned)cfg->outlier_base_ms);
        return -1;
    }
    if (cfg->health_interval_ms > 0 && cfg->health_timeout_ms > cfg->health_interval_ms) {
        set_err(err, errlen,
                "--health-timeout-ms %u is above --health-interval-ms %u: a check must end "
                "before the next one starts",
                (unsigned)cfg->health_timeout_ms, (unsigned)cfg->health_interval_ms);
        return -1;
    }
    if (cfg->npools == 0 && !cfg->redis_url[0]) {
        set_err(err, errlen,
                "no pool configured: give at least one --pool NAME=HOST:PORT, or --redis URL");
        return -1;
    }
    return 0;
}

void gw_config_free(struct gw_config *cfg)
{
    for (size_t i = 0; i < cfg->npools; i++) {
        for (size_t j = 0; j < cfg->pools[i].naddrs; j++)
            gw_free(cfg->pools[i].addrs[j]);
        gw_free(cfg->pools[i].addrs);
        gw_free(cfg->pools[i].name);
    }
    gw_free(cfg->pools);
    cfg->pools = NULL;
    cfg->npools = 0;
    struct gw_auth_conf *a = &cfg->auth;
    for (size_t i = 0; i < a->nplugins; i++)
        gw_free(a->plugins[i]);
    for (size_t i = 0; i < a->njwt_keys; i++)
        gw_free(a->jwt_keys[i]);
    gw_free(a->plugins);
    gw_free(a->jwt_keys);
    a->plugins = a->jwt_keys = NULL;
    a->nplugins = a->njwt_keys = 0;
    char **paths[] = {&cfg->tls_cert,        &cfg->tls_key,           &cfg->tls_client_ca,
                      &cfg->upstream_tls_ca, &cfg->upstream_tls_cert, &cfg->upstream_tls_key};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        gw_free(*paths[i]);
        *paths[i] = NULL;
    }
}
