/* SPDX-License-Identifier: Apache-2.0 */
/* flags — the flag table and one parser per kind of value; see flags.h.
 *
 * Adding a flag is adding a row: getopt_long, the defaults, --help and
 * docs/flags.md all follow. Rows whose value needs more than a range or a
 * character check (--pool, --admin, --access-log, --auth, --log-level)
 * point at a parser of their own below the table's helpers.
 */
#include "base/flags.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/names.h"
#include "base/hostport.h"

/* ---- value checks (1 = acceptable) ------------------------------------- */

static int valid_hostport(const char *v)
{
    char host[256];
    uint16_t port;
    return gw_hostport_split(v, host, sizeof(host), &port) == 0;
}

static int valid_nonempty(const char *v)
{
    return v[0] != '\0';
}

/* A lowercase gRPC metadata key. */
static int valid_metadata_key(const char *v)
{
    if (!v[0])
        return 0;
    for (const char *p = v; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
              *p == '.'))
            return 0;
    return 1;
}

/* A stream_resume mode (route/tunables.h spells the same three). */
static int valid_resume_mode(const char *v)
{
    return !strcmp(v, "off") || !strcmp(v, "replay") || !strcmp(v, "continue");
}

static int valid_redis_url(const char *v)
{
    return !strncmp(v, "redis://", 8) || !strncmp(v, "sentinel://", 11);
}

/* Printable ASCII, no space, at least one character. */
static int valid_printable(const char *v)
{
    if (!v[0])
        return 0;
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return 0;
    return 1;
}

static int valid_gateway_id(const char *v)
{
    return v[0] && !strpbrk(v, " \t\r\n");
}

/* Values handed to the built-in JWT plugin as "key=value,..." arguments:
 * no control character, no comma. */
static int valid_plain(const char *v)
{
    if (!v[0])
        return 0;
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f || *p == ',')
            return 0;
    return 1;
}

static int valid_claim(const char *v)
{
    return valid_plain(v) && !strchr(v, '=');
}

static int valid_jwt_keys(const char *v)
{
    return valid_plain(v) && strlen(v) < 1024;
}

static int valid_plugin(const char *v)
{
    return v[0] && v[0] != ':';
}

static int valid_mtls_from(const char *v)
{
    return !strcmp(v, "cn") || !strcmp(v, "san-dns") || !strcmp(v, "san-uri");
}

/* ---- the flags with a parser of their own ------------------------------ */

/* Appends replica <addr> to <p>; a replica listed twice is refused. */
static int pool_add_replica(struct gw_pool_conf *p, const char *addr, char *err, size_t errlen)
{
    char host[256];
    uint16_t port;
    if (gw_hostport_split(addr, host, sizeof(host), &port) < 0)
        return gw_errf(err, errlen, "--pool %s: replica '%s' is not HOST:PORT", p->name, addr);
    for (size_t i = 0; i < p->naddrs; i++)
        if (!strcmp(p->addrs[i], addr))
            return gw_errf(err, errlen, "--pool %s: replica %s listed twice", p->name, addr);
    char **na = gw_realloc(p->addrs, (p->naddrs + 1) * sizeof(*na));
    if (!na)
        return gw_errf(err, errlen, "out of memory");
    p->addrs = na;
    if (!(na[p->naddrs] = gw_strdup(addr)))
        return gw_errf(err, errlen, "out of memory");
    p->naddrs++;
    return 0;
}

/* --pool NAME=HOST:PORT[,HOST:PORT...]; a second --pool for the same name
 * is refused rather than silently merged. */
static int parse_pool(struct gw_config *cfg, const char *spec, char *err, size_t errlen)
{
    const char *eq = strchr(spec, '=');
    if (!eq || !gw_pool_name_valid(spec, (size_t)(eq - spec)))
        return gw_errf(err, errlen,
                       "--pool '%s': expected NAME=HOST:PORT[,HOST:PORT...] with a non-empty name "
                       "of printable characters",
                       spec);
    size_t nlen = (size_t)(eq - spec);
    for (size_t i = 0; i < cfg->npools; i++)
        if (strlen(cfg->pools[i].name) == nlen && !memcmp(cfg->pools[i].name, spec, nlen))
            return gw_errf(err, errlen,
                           "--pool '%.*s' given twice; list all its replicas in one flag",
                           (int)nlen, spec);
    struct gw_pool_conf *np = gw_realloc(cfg->pools, (cfg->npools + 1) * sizeof(*np));
    if (!np)
        return gw_errf(err, errlen, "out of memory");
    cfg->pools = np;
    struct gw_pool_conf *p = &cfg->pools[cfg->npools];
    memset(p, 0, sizeof(*p));
    if (!(p->name = gw_strndup(spec, nlen)))
        return gw_errf(err, errlen, "out of memory");
    cfg->npools++;
    for (const char *s = eq + 1; *s;) {
        const char *comma = strchr(s, ',');
        size_t alen = comma ? (size_t)(comma - s) : strlen(s);
        char addr[300];
        if (alen == 0 || alen >= sizeof(addr))
            return gw_errf(err, errlen, "--pool %s: empty or overlong replica address", p->name);
        memcpy(addr, s, alen);
        addr[alen] = '\0';
        if (pool_add_replica(p, addr, err, errlen) < 0)
            return -1;
        s = comma ? comma + 1 : s + alen;
    }
    if (p->naddrs == 0)
        return gw_errf(err, errlen, "--pool %s: no replica given", p->name);
    return 0;
}

/* --admin HOST:PORT|off; cfg->admin_explicit says it was given. */
static int parse_admin(struct gw_config *cfg, const char *v, char *err, size_t errlen)
{
    int off = !strcmp(v, "off");
    if (!off && (strlen(v) >= sizeof(cfg->admin) || !valid_hostport(v)))
        return gw_errf(err, errlen, "--admin '%s': expected HOST:PORT or off", v);
    snprintf(cfg->admin, sizeof(cfg->admin), "%s", off ? "" : v);
    cfg->admin_explicit = 1;
    return 0;
}

static int parse_access_log(struct gw_config *cfg, const char *v, char *err, size_t errlen)
{
    if (strlen(v) >= sizeof(cfg->access_log))
        return gw_errf(err, errlen, "--access-log: path longer than %zu bytes",
                       sizeof(cfg->access_log) - 1);
    snprintf(cfg->access_log, sizeof(cfg->access_log), "%s", strcmp(v, "off") ? v : "");
    return 0;
}

static int parse_auth(struct gw_config *cfg, const char *v, char *err, size_t errlen)
{
    if (strcmp(v, "none") != 0 && strcmp(v, "on") != 0)
        return gw_errf(err, errlen, "--auth '%s': expected on or none", v);
    cfg->auth.none = !strcmp(v, "none");
    return 0;
}

static int parse_log_level(struct gw_config *cfg, const char *v, char *err, size_t errlen)
{
    int l = gw_log_level_parse(v);
    if (l < 0)
        return gw_errf(err, errlen, "--log-level '%s': expected debug, info, warn or error", v);
    cfg->log_level = l;
    return 0;
}

static void workers_default(struct gw_config *cfg)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->workers = ncpu > 0 ? (int)ncpu : 1;
}

/* ---- the table --------------------------------------------------------- */

#define AT(field)                                                                                  \
    .off = offsetof(struct gw_config, field), .size = sizeof(((struct gw_config *)0)->field)
#define U32(field, lo, hi)       .kind = GW_FLAG_U32, AT(field), .min = (lo), .max = (hi)
#define INT(field, lo, hi)       .kind = GW_FLAG_INT, AT(field), .min = (lo), .max = (hi)
#define TEXT(field, check, what) .kind = GW_FLAG_TEXT, AT(field), .valid = (check), .expect = (what)
#define PATH(field)              .kind = GW_FLAG_PATH, AT(field)
#define LIST(field, nfield, check, what)                                                           \
    .kind = GW_FLAG_LIST, AT(field), .off_n = offsetof(struct gw_config, nfield),                  \
    .valid = (check), .expect = (what)
#define CUSTOM(fn) .kind = GW_FLAG_CUSTOM, .parse = (fn)

const char *const gw_flag_section_titles[GW_SEC_COUNT] = {
    [GW_SEC_LISTEN] = "Listening, and TLS towards clients",
    [GW_SEC_POOLS] = "Pools and the control plane",
    [GW_SEC_AUTH] = "Authentication",
    [GW_SEC_UPSTREAM] = "Connections to replicas",
    [GW_SEC_HEALTH] = "Replica health and outlier ejection",
    [GW_SEC_LIMITS] = "Limits and timeouts",
    [GW_SEC_OBSERVE] = "Logs and the admin endpoint",
    [GW_SEC_OTHER] = "Other",
};

const struct gw_flag gw_flags[] = {
    /* Listening, and TLS towards clients */
    {.name = "listen",
     .arg = "HOST:PORT",
     .section = GW_SEC_LISTEN,
     TEXT(listen, valid_hostport, "HOST:PORT"),
     .def = "127.0.0.1:7100",
     .help = "address clients connect to: TLS with ALPN h2 when --tls-cert is given, else h2c "
             "(prior knowledge); refused if another process listens there"},
    {.name = "workers",
     .arg = "N",
     .section = GW_SEC_LISTEN,
     INT(workers, 1, 256),
     .machine_default = workers_default,
     .shown = "one per online CPU",
     .help = "worker threads, each with its own epoll loop, SO_REUSEPORT listener and replica "
             "connections"},
    {.name = "tls-cert",
     .arg = "FILE",
     .section = GW_SEC_LISTEN,
     PATH(tls_cert),
     .shown = "none: h2c",
     .help = "PEM certificate chain clients see; turns on TLS (1.2+, ALPN h2 required). SIGHUP "
             "reloads it and --tls-key; a bad pair keeps the old one"},
    {.name = "tls-key",
     .arg = "FILE",
     .section = GW_SEC_LISTEN,
     PATH(tls_key),
     .shown = "none",
     .help = "PEM private key of --tls-cert (must match it, or the gateway refuses to start)"},
    {.name = "tls-client-ca",
     .arg = "FILE",
     .section = GW_SEC_LISTEN,
     PATH(tls_client_ca),
     .shown = "none: no client cert",
     .help = "mutual TLS: require a client certificate issued by a CA in this PEM bundle"},
    {.name = "tls-handshake-timeout-ms",
     .arg = "N",
     .section = GW_SEC_LISTEN,
     U32(tls_handshake_timeout_ms, 100, 600000),
     .def = "10000",
     .help = "a client must finish its TLS handshake within this time, or is disconnected"},

    /* Pools and the control plane */
    {.name = "pool",
     .arg = "NAME=HOST:PORT[,...]",
     .section = GW_SEC_POOLS,
     CUSTOM(parse_pool),
     .shown = "none",
     .help = "a static pool (model) and its replicas; repeatable. Calls that name no model use "
             "pool 'default'. With --redis, Redis wins for the pools it defines"},
    {.name = "route-header",
     .arg = "NAME",
     .section = GW_SEC_POOLS,
     TEXT(route_header, valid_metadata_key, "a lowercase metadata key (a-z 0-9 - _ .)"),
     .def = "x-route-key",
     .help = "metadata key holding the routing key (the default of the route_header tunable)"},
    {.name = "stream-resume",
     .arg = "MODE",
     .section = GW_SEC_POOLS,
     TEXT(stream_resume, valid_resume_mode, "off, replay or continue"),
     .def = "off",
     .help = "how a committed stream carries on when its replica is lost or leaves: off, replay "
             "(re-send the request, drop what the caller has) or continue (x-resume-from); the "
             "default of the stream_resume tunable (docs/stream-resume.md)"},
    {.name = "prefix-index-bytes",
     .arg = "N",
     .section = GW_SEC_POOLS,
     U32(prefix_index_bytes, 1u << 20, 4294967295u),
     .def = "67108864",
     .help = "memory cap of the prefix-cache estimation index, all pools and workers together "
             "(LRU beyond it), and separately of the precise view (prefix_mode precise: every "
             "pool's KV index together; events past it are refused) (docs/routing.md, "
             "Prefix-cache routing)"},
    {.name = "redis",
     .arg = "URL",
     .section = GW_SEC_POOLS,
     TEXT(redis_url, valid_redis_url,
          "redis://[:password@]host:port[/db] or sentinel://[:password@]h:p[,h:p...]/MASTER[/db]"),
     .shown = "none: --pool only",
     .help = "control plane: redis://[:password@]host:port[/db] or "
             "sentinel://[:password@]h:p,h:p/MASTER[/db]; pools, rings, tunables and drains are "
             "read from there and follow every change"},
    {.name = "redis-prefix",
     .arg = "P",
     .section = GW_SEC_POOLS,
     TEXT(redis_prefix, valid_printable, "1..127 printable characters"),
     .def = "infergw:",
     .help = "prefix of every Redis key and of the channel"},
    {.name = "redis-timeout-ms",
     .arg = "N",
     .section = GW_SEC_POOLS,
     U32(redis_timeout_ms, 10, 60000),
     .def = "1000",
     .help = "connect and command timeout towards Redis"},
    {.name = "redis-poll-ms",
     .arg = "N",
     .section = GW_SEC_POOLS,
     U32(redis_poll_ms, 50, 60000),
     .def = "1000",
     .help = "how often infergw:version is polled, in case a change message was lost, and the "
             "leases of registered replicas checked"},
    {.name = "gateway-id",
     .arg = "ID",
     .section = GW_SEC_POOLS,
     TEXT(gateway_id, valid_gateway_id, "1..255 characters, no spaces"),
     .shown = "hostname:listen-port",
     .help = "name of this gateway's health report in Redis (<prefix>gateway:<ID>, read by "
             "infergw-ctl status); give each gateway its own"},

    /* Authentication */
    {.name = "auth",
     .arg = "on|none",
     .section = GW_SEC_AUTH,
     CUSTOM(parse_auth),
     .def = "on",
     .help = "on: every call must authenticate (API key, JWT, mTLS, --plugin chain); none: no "
             "authentication, for local development only (logged as a warning)"},
    {.name = "tenants",
     .arg = "FILE",
     .section = GW_SEC_AUTH,
     TEXT(tenants_file, valid_nonempty, "a file path"),
     .shown = "none",
     .help = "tenants without Redis, one a line: NAME models=A,B|* [rps=N] [burst=N]; not with "
             "--redis (Redis holds them there)"},
    {.name = "api-keys",
     .arg = "FILE",
     .section = GW_SEC_AUTH,
     TEXT(api_keys_file, valid_nonempty, "a file path"),
     .shown = "none",
     .help = "API keys without Redis, one a line: the SHA-256 hex of the key (never the key), "
             "tenant=NAME [expires_at=UNIX]; needs --tenants"},
    {.name = "plugin",
     .arg = "PATH.so[:ARGS]",
     .section = GW_SEC_AUTH,
     LIST(auth.plugins, auth.nplugins, valid_plugin, "PATH.so[:ARGS]"),
     .shown = "none",
     .help = "an authentication plugin (infergw/plugin.h), asked before the built-ins; "
             "repeatable, in order"},
    {.name = "jwt-keys",
     .arg = "FILE",
     .section = GW_SEC_AUTH,
     LIST(auth.jwt_keys, auth.njwt_keys, valid_jwt_keys, "a file path without commas"),
     .shown = "none",
     .help = "JWT verification keys: a PEM public key (kid = file name without extension) or a "
             "JWKS file (RSA, EC P-256, oct); repeatable; enables JWT; SIGHUP reads them again"},
    {.name = "jwt-issuer",
     .arg = "ISS",
     .section = GW_SEC_AUTH,
     TEXT(auth.jwt_issuer, valid_plain, "1..255 printable characters, no comma"),
     .shown = "not checked",
     .help = "required iss claim"},
    {.name = "jwt-audience",
     .arg = "AUD",
     .section = GW_SEC_AUTH,
     TEXT(auth.jwt_audience, valid_plain, "1..255 printable characters, no comma"),
     .shown = "not checked",
     .help = "required in the aud claim (a string or an array)"},
    {.name = "jwt-tenant-claim",
     .arg = "NAME",
     .section = GW_SEC_AUTH,
     TEXT(auth.jwt_tenant_claim, valid_claim, "a claim name (1..63 bytes)"),
     .def = "sub",
     .help = "claim holding the tenant"},
    {.name = "jwt-leeway-s",
     .arg = "N",
     .section = GW_SEC_AUTH,
     U32(auth.jwt_leeway_s, 0, 3600),
     .def = "30",
     .help = "clock skew allowed on exp and nbf"},
    {.name = "jwt-cache-size",
     .arg = "N",
     .section = GW_SEC_AUTH,
     U32(auth.jwt_cache_size, 0, 1u << 20),
     .def = "4096",
     .expect = "0..1048576 (0 = no cache)",
     .help = "verified tokens cached per worker; 0 = verify every call"},
    {.name = "mtls-tenant-from",
     .arg = "cn|san-dns|san-uri",
     .section = GW_SEC_AUTH,
     TEXT(auth.mtls_tenant_from, valid_mtls_from, "cn, san-dns or san-uri"),
     .shown = "off",
     .help = "tenant of a verified client certificate: its subject CN or first DNS/URI SAN"},

    /* Connections to replicas */
    {.name = "upstream-conns",
     .arg = "N",
     .section = GW_SEC_UPSTREAM,
     INT(upstream_conns, 1, 64),
     .def = "2",
     .help = "HTTP/2 connections per replica per worker (opened as load grows)"},
    {.name = "connect-timeout-ms",
     .arg = "N",
     .section = GW_SEC_UPSTREAM,
     U32(connect_timeout_ms, 1, 600000),
     .def = "1000",
     .help = "TCP connect (and, with --upstream-tls-ca, TLS handshake) timeout towards "
             "replicas; also how long a new connection may wait for the replica's SETTINGS"},
    {.name = "upstream-tls-ca",
     .arg = "FILE",
     .section = GW_SEC_UPSTREAM,
     PATH(upstream_tls_ca),
     .shown = "none: h2c",
     .help = "connect to replicas over TLS (ALPN h2), verifying their certificate against this "
             "PEM CA bundle and their address (IP or name); SIGHUP reloads it and the client "
             "pair below"},
    {.name = "upstream-tls-cert",
     .arg = "FILE",
     .section = GW_SEC_UPSTREAM,
     PATH(upstream_tls_cert),
     .shown = "none",
     .help = "client certificate presented to replicas (with --upstream-tls-key)"},
    {.name = "upstream-tls-key",
     .arg = "FILE",
     .section = GW_SEC_UPSTREAM,
     PATH(upstream_tls_key),
     .shown = "none",
     .help = "PEM private key of --upstream-tls-cert"},
    {.name = "upstream-stream-id-limit",
     .arg = "N",
     .section = GW_SEC_UPSTREAM,
     U32(upstream_stream_id_limit, 33, 2147483647u),
     .def = "2147483647",
     .help = "last HTTP/2 stream id used on an upstream connection; it is retired and replaced "
             "when 1/16 of the ids are left (lower it to test)"},
    {.name = "keepalive-ms",
     .arg = "N",
     .section = GW_SEC_UPSTREAM,
     U32(keepalive_ms, 0, 3600000),
     .def = "1000",
     .help = "send an HTTP/2 PING on an upstream connection that carries calls and has heard "
             "nothing for N ms; 0 = off"},
    {.name = "keepalive-timeout-ms",
     .arg = "N",
     .section = GW_SEC_UPSTREAM,
     U32(keepalive_timeout_ms, 10, 600000),
     .def = "1000",
     .help = "close the connection (its calls fail over) and count a replica failure when the "
             "PING ACK takes longer"},

    /* Replica health and outlier ejection */
    {.name = "health-interval-ms",
     .arg = "N",
     .section = GW_SEC_HEALTH,
     U32(health_interval_ms, 0, 3600000),
     .def = "1000",
     .help = "grpc.health.v1 Check of every replica every N ms (from worker 0); 0 = off"},
    {.name = "health-timeout-ms",
     .arg = "N",
     .section = GW_SEC_HEALTH,
     U32(health_timeout_ms, 10, 600000),
     .def = "500",
     .help = "a check without an answer by then failed; at most --health-interval-ms"},
    {.name = "healthy-threshold",
     .arg = "N",
     .section = GW_SEC_HEALTH,
     U32(healthy_threshold, 1, 100),
     .def = "2",
     .help = "consecutive SERVING answers that make a replica healthy again"},
    {.name = "unhealthy-threshold",
     .arg = "N",
     .section = GW_SEC_HEALTH,
     U32(unhealthy_threshold, 1, 100),
     .def = "2",
     .help = "consecutive NOT_SERVING / failed checks that take a replica out of routing"},
    {.name = "outlier-failures",
     .arg = "N",
     .section = GW_SEC_HEALTH,
     U32(outlier_failures, 0, 100000),
     .def = "5",
     .help = "consecutive failed calls (UNAVAILABLE, reset, lost connection, per-try timeout) "
             "that eject a replica; 0 = never"},
    {.name = "outlier-base-ms",
     .arg = "N",
     .section = GW_SEC_HEALTH,
     U32(outlier_base_ms, 1, 86400000),
     .def = "10000",
     .help = "ejection time per time ejected (10 s, 20 s, ... with the default)"},
    {.name = "outlier-max-ms",
     .arg = "N",
     .section = GW_SEC_HEALTH,
     U32(outlier_max_ms, 1, 86400000),
     .def = "300000",
     .help = "longest ejection; not below --outlier-base-ms"},
    {.name = "outlier-max-percent",
     .arg = "N",
     .section = GW_SEC_HEALTH,
     U32(outlier_max_percent, 0, 100),
     .def = "50",
     .help = "most of a pool (percent) ejected at once"},

    /* Limits and timeouts */
    {.name = "max-message-bytes",
     .arg = "N",
     .section = GW_SEC_LIMITS,
     U32(max_message_bytes, 1024, 1u << 30),
     .def = "16777216",
     .help = "largest gRPC message either way; larger ones end the call with RESOURCE_EXHAUSTED"},
    {.name = "retry-buffer-bytes",
     .arg = "N",
     .section = GW_SEC_LIMITS,
     U32(retry_buffer_bytes, 0, 1u << 30),
     .def = "4194304",
     .help = "request bytes kept per call for retries and hedges; a longer request is sent to "
             "one replica only (0 = never retry or hedge)"},
    {.name = "replay-buffer-total",
     .arg = "N",
     .section = GW_SEC_LIMITS,
     U32(replay_buffer_total, 0, 4294967295u),
     .def = "268435456",
     .help = "request bytes all calls of a worker may keep for replay, and the message hashes "
             "(8 bytes each) of its resumable streams; a call that would go past it runs "
             "single-attempt, a stream is not resumed past it"},
    {.name = "stream-window-bytes",
     .arg = "N",
     .section = GW_SEC_LIMITS,
     U32(stream_window_bytes, 65535, 2147483647u),
     .def = "1048576",
     .help = "HTTP/2 flow-control window per stream: the most the gateway buffers per call and "
             "direction"},
    {.name = "conn-window-bytes",
     .arg = "N",
     .section = GW_SEC_LIMITS,
     U32(conn_window_bytes, 65535, 2147483647u),
     .def = "16777216",
     .help = "HTTP/2 flow-control window per connection"},
    {.name = "max-concurrent-streams",
     .arg = "N",
     .section = GW_SEC_LIMITS,
     U32(max_concurrent_streams, 1, 1u << 20),
     .def = "1024",
     .help = "concurrent calls per client connection"},
    {.name = "max-header-list-bytes",
     .arg = "N",
     .section = GW_SEC_LIMITS,
     U32(max_header_list_bytes, 4096, 1u << 24),
     .def = "65536",
     .help = "largest header block (RFC 9113 size: name + value + 32 per field) accepted from a "
             "client or replica, counted while HPACK decodes it; a client's stream is refused "
             "(RESOURCE_EXHAUSTED), a replica's reset"},
    {.name = "max-header-count",
     .arg = "N",
     .section = GW_SEC_LIMITS,
     U32(max_header_count, 16, 65536),
     .def = "256",
     .help = "most fields in one header block, either side"},
    {.name = "max-conns",
     .arg = "N",
     .section = GW_SEC_LIMITS,
     U32(max_conns, 1, 10000000),
     .def = "10000",
     .help = "client connections open at once, all workers; more are accepted and closed at "
             "once"},
    {.name = "max-conns-per-worker",
     .arg = "N",
     .section = GW_SEC_LIMITS,
     U32(max_conns_per_worker, 0, 10000000),
     .def = "0",
     .help = "the same per worker; 0 = only --max-conns"},
    {.name = "preface-timeout-ms",
     .arg = "N",
     .section = GW_SEC_LIMITS,
     U32(preface_timeout_ms, 100, 600000),
     .def = "10000",
     .help = "a client must send the HTTP/2 preface and SETTINGS within N ms of connecting (TLS "
             "handshake included), or gets GOAWAY SETTINGS_TIMEOUT and is disconnected"},
    {.name = "idle-timeout-ms",
     .arg = "N",
     .section = GW_SEC_LIMITS,
     U32(idle_timeout_ms, 0, 86400000),
     .def = "300000",
     .help = "a client connection with no call and no frame for N ms gets GOAWAY NO_ERROR and is "
             "closed; 0 = never"},
    {.name = "stream-idle-timeout-ms",
     .arg = "N",
     .section = GW_SEC_LIMITS,
     U32(stream_idle_timeout_ms, 0, 86400000),
     .def = "300000",
     .help = "a call that moves no bytes either way for N ms ends with DEADLINE_EXCEEDED; 0 = "
             "never"},
    {.name = "max-deadline-ms",
     .arg = "N",
     .section = GW_SEC_LIMITS,
     U32(max_deadline_ms, 0, 604800000),
     .def = "3600000",
     .help = "the longest a call may last: calls without grpc-timeout get it, longer "
             "grpc-timeout values are cut to it (the replica sees the shorter one); 0 = no limit"},
    {.name = "max-pushback-ms",
     .arg = "N",
     .section = GW_SEC_LIMITS,
     U32(max_pushback_ms, 0, 3600000),
     .def = "30000",
     .help = "a replica's grpc-retry-pushback-ms above N is cut to N before the call waits to "
             "retry"},
    {.name = "max-conn-buffer-bytes",
     .arg = "N",
     .section = GW_SEC_LIMITS,
     U32(max_conn_buffer_bytes, 65536, 4294967295u),
     .def = "67108864",
     .help = "bytes the calls of one client connection may hold (answers it has not read, "
             "requests no replica has taken); the call that goes past it ends with "
             "RESOURCE_EXHAUSTED"},
    {.name = "shutdown-grace-ms",
     .arg = "N",
     .section = GW_SEC_LIMITS,
     U32(shutdown_grace_ms, 0, 3600000),
     .def = "15000",
     .help = "on SIGTERM, how long in-flight calls may take to finish after GOAWAY before the "
             "gateway exits"},

    /* Logs and the admin endpoint */
    {.name = "admin",
     .arg = "HOST:PORT|off",
     .section = GW_SEC_OBSERVE,
     CUSTOM(parse_admin),
     .def = "127.0.0.1:7190",
     .help = "admin HTTP: /metrics (Prometheus), /healthz, /readyz, /debug/replicas; 'off' "
             "disables it. A taken default port is logged and skipped; a taken --admin address "
             "is an error"},
    {.name = "access-log",
     .arg = "PATH|-|off",
     .section = GW_SEC_OBSERVE,
     CUSTOM(parse_access_log),
     .def = "off",
     .help = "one JSON line per finished call appended to PATH, or - for stdout: time, "
             "request_id (the caller's x-request-id up to 64 bytes, else the gateway's), peer, "
             "tenant, pool, method, status, code, duration_ms, request_bytes, response_bytes, "
             "attempts, upstream (each attempt's replica, kind, outcome). Each worker writes "
             "whole lines with O_APPEND at most 200 ms later; rotate with copytruncate"},
    {.name = "log-level",
     .arg = "LEVEL",
     .section = GW_SEC_OBSERVE,
     CUSTOM(parse_log_level),
     .def = "info",
     .help = "debug, info, warn or error"},

    /* Other */
    {.name = "version",
     .kind = GW_FLAG_VERSION,
     .section = GW_SEC_OTHER,
     .help = "print the version and exit"},
    {.name = "help",
     .kind = GW_FLAG_HELP,
     .section = GW_SEC_OTHER,
     .help = "print this help and exit"},
};

const size_t gw_nflags = sizeof(gw_flags) / sizeof(gw_flags[0]);
_Static_assert(sizeof(gw_flags) / sizeof(gw_flags[0]) <= GW_FLAGS_MAX, "raise GW_FLAGS_MAX");

/* ---- one parser per kind ----------------------------------------------- */

static int refuse(const struct gw_flag *f, const char *v, char *err, size_t errlen)
{
    if (f->expect)
        return gw_errf(err, errlen, "--%s '%s': expected %s", f->name, v, f->expect);
    return gw_errf(err, errlen, "--%s '%s': expected %u..%u", f->name, v, (unsigned)f->min,
                   (unsigned)f->max);
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

int gw_flag_set(struct gw_config *cfg, const struct gw_flag *f, const char *v, char *err,
                size_t errlen)
{
    void *field = (char *)cfg + f->off;
    uint32_t u;
    switch (f->kind) {
    case GW_FLAG_U32:
    case GW_FLAG_INT:
        if (gw_parse_u32(v, f->min, f->max, &u) < 0)
            return refuse(f, v, err, errlen);
        if (f->kind == GW_FLAG_U32)
            *(uint32_t *)field = u;
        else
            *(int *)field = (int)u;
        return 0;
    case GW_FLAG_TEXT:
        if (strlen(v) >= f->size || (f->valid && !f->valid(v)))
            return refuse(f, v, err, errlen);
        memcpy(field, v, strlen(v) + 1);
        return 0;
    case GW_FLAG_PATH: {
        if (!v[0])
            return gw_errf(err, errlen, "--%s needs a file name", f->name);
        char *p = gw_strdup(v);
        if (!p)
            return gw_errf(err, errlen, "out of memory");
        gw_free(*(char **)field);
        *(char **)field = p;
        return 0;
    }
    case GW_FLAG_LIST:
        if (f->valid && !f->valid(v))
            return refuse(f, v, err, errlen);
        if (push_str((char ***)field, (size_t *)((char *)cfg + f->off_n), v) < 0)
            return gw_errf(err, errlen, "out of memory");
        return 0;
    case GW_FLAG_CUSTOM:
        return f->parse(cfg, v, err, errlen);
    case GW_FLAG_HELP:
    case GW_FLAG_VERSION:
        break;
    }
    return gw_errf(err, errlen, "--%s takes no value", f->name);
}

int gw_flags_defaults(struct gw_config *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < gw_nflags; i++) {
        const struct gw_flag *f = &gw_flags[i];
        if (f->machine_default)
            f->machine_default(cfg);
        else if (f->def && gw_flag_set(cfg, f, f->def, err, errlen) < 0)
            return -1;
    }
    cfg->admin_explicit = 0; /* the default address was not asked for */
    return 0;
}
