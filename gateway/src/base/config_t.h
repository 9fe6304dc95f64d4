/* SPDX-License-Identifier: Apache-2.0 */
/* config_t — the types of the gateway's settings (struct gw_config).
 *
 * Apart from config.h so that the flag table (flags.h), which names the
 * field each flag sets, and the parser (config.c), which walks the table,
 * depend on these types without depending on each other both ways.
 */
#ifndef INFERGW_CONFIG_T_H
#define INFERGW_CONFIG_T_H

#include <stddef.h>
#include <stdint.h>

struct gw_pool_conf {
    char *name;
    char **addrs; /* "host:port" */
    size_t naddrs;
};

/* Authentication (auth.c builds the plugin chain from this). */
struct gw_auth_conf {
    int none;       /* --auth=none: no authentication at all */
    char **plugins; /* --plugin PATH[:ARGS], in chain order */
    size_t nplugins;
    char **jwt_keys; /* --jwt-keys FILE (PEM or JWKS); JWT is on when any */
    size_t njwt_keys;
    char jwt_issuer[256];   /* "" = not checked */
    char jwt_audience[256]; /* "" = not checked */
    char jwt_tenant_claim[64];
    uint32_t jwt_leeway_s;
    uint32_t jwt_cache_size;   /* verified tokens cached per worker */
    char mtls_tenant_from[16]; /* "", "cn", "san-dns", "san-uri" */
};

struct gw_config {
    char listen[128];
    int workers;
    struct gw_pool_conf *pools;
    size_t npools;
    int upstream_conns;
    uint32_t max_message_bytes;
    uint32_t retry_buffer_bytes;       /* request bytes kept for replay (retries, hedges) */
    uint32_t replay_buffer_total;      /* all calls' replay bytes per worker */
    uint32_t upstream_stream_id_limit; /* last stream id used upstream (testable) */
    uint32_t stream_window_bytes;
    uint32_t conn_window_bytes;
    uint32_t max_concurrent_streams;
    uint32_t max_header_list_bytes;  /* RFC 9113 size of a header block, both sides */
    uint32_t max_header_count;       /* fields in a header block, both sides */
    uint32_t max_conns;              /* client connections, all workers together */
    uint32_t max_conns_per_worker;   /* client connections per worker; 0 = only max_conns */
    uint32_t preface_timeout_ms;     /* accept to the client's first frame */
    uint32_t idle_timeout_ms;        /* no call and no frame on a connection; 0 = off */
    uint32_t stream_idle_timeout_ms; /* a call moving no bytes either way; 0 = off */
    uint32_t max_deadline_ms;        /* the longest a call may last; 0 = off */
    uint32_t max_pushback_ms;        /* cap on a replica's grpc-retry-pushback-ms */
    uint32_t max_conn_buffer_bytes;  /* response bytes one client connection may hold unread */
    uint32_t shutdown_grace_ms;
    uint32_t connect_timeout_ms;
    char route_header[64];
    char stream_resume[16]; /* off | replay | continue: the stream_resume tunable's default */
    int log_level;
    char redis_url[512]; /* "" = no control plane */
    char redis_prefix[128];
    uint32_t redis_timeout_ms;
    uint32_t redis_poll_ms;
    char gateway_id[256]; /* --gateway-id: names this gateway's <prefix>gateway:<id> report */
    /* replica health (health.h, upstream.h) */
    uint32_t keepalive_ms;         /* PING interval on silent busy connections; 0 = off */
    uint32_t keepalive_timeout_ms; /* PING ACK deadline */
    uint32_t health_interval_ms;   /* active grpc.health.v1 checks; 0 = off */
    uint32_t health_timeout_ms;
    uint32_t healthy_threshold, unhealthy_threshold;
    uint32_t outlier_failures; /* consecutive failures that eject; 0 = never */
    uint32_t outlier_base_ms, outlier_max_ms, outlier_max_percent;
    char admin[128];         /* admin HTTP address; "" = off */
    char access_log[512];    /* --access-log path, "-" = stdout, "" = off */
    int admin_explicit;      /* --admin given: failing to listen there is fatal */
    char tenants_file[512];  /* --tenants; "" = none (authdb.h gives the format) */
    char api_keys_file[512]; /* --api-keys; "" = none */
    struct gw_auth_conf auth;
    /* TLS: file paths (owned), NULL when not given. No --tls-cert = h2c. */
    char *tls_cert, *tls_key, *tls_client_ca;
    uint32_t tls_handshake_timeout_ms;
    char *upstream_tls_ca, *upstream_tls_cert, *upstream_tls_key;
};

#endif
