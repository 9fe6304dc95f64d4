/* SPDX-License-Identifier: Apache-2.0 */
/* infergw/plugin.h — the authentication plugin ABI of infergw (the only
 * public header of the gateway).
 *
 * A plugin is a shared object exporting one function,
 *
 *     const struct infergw_plugin *infergw_plugin_v1(void);
 *
 * that returns a static descriptor whose abi_version is
 * INFERGW_PLUGIN_ABI_VERSION. infergw loads it with `--plugin PATH.so[:ARGS]`
 * (repeatable; the flags give the chain order) and refuses to start (exit 2)
 * when the symbol is missing or the descriptor reports another ABI version.
 * The built-in authenticators (API key, JWT, mTLS) are written against this
 * same header and linked into the gateway.
 *
 * The chain. For every call (except the gateway's own grpc.health.v1
 * Check), once its request headers are complete, the gateway asks each
 * plugin in chain order: --plugin plugins first, then the built-ins API key,
 * JWT, mTLS (those enabled). Each answers one of
 *   INFERGW_AUTH_ACCEPT  the call is this tenant's (ans->tenant);
 *   INFERGW_AUTH_REJECT  the call is refused (ans->status, ans->reason and
 *                        ans->message, which must never contain the secret);
 *   INFERGW_AUTH_PASS    "not mine": the credentials are not of this kind.
 * The first ACCEPT or REJECT wins; the later plugins are not asked. When
 * every plugin passes, the call fails with UNAUTHENTICATED ("no
 * credentials"). An accepted tenant must then exist in the tenant records,
 * which decide the models it may call and its rate.
 *
 * Threads. init and destroy run once, on the main thread, before the
 * workers start and after they stopped; so do worker_init/worker_destroy,
 * once for each worker index. authenticate runs on the worker threads,
 * concurrently on different workers with the same <state> (treat it as
 * read-only) and each worker's own <wstate> (per-worker caches go there: no
 * locks needed). authenticate runs on the gateway's event loop: it must not
 * block (no network, no disk) and should cost microseconds.
 *
 * Compatibility. Fields are only ever appended to struct infergw_host in a
 * version; any other change bumps INFERGW_PLUGIN_ABI_VERSION and the name
 * of the exported symbol.
 */
#ifndef INFERGW_PLUGIN_H
#define INFERGW_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define INFERGW_PLUGIN_ABI_VERSION 1
#define INFERGW_PLUGIN_SYMBOL      "infergw_plugin_v1"

/* Longest tenant name (bytes, without the NUL) and reject message. */
#define INFERGW_TENANT_MAX  128
#define INFERGW_MESSAGE_MAX 256

/* gRPC status codes a plugin may reject with. */
#define INFERGW_STATUS_PERMISSION_DENIED 7
#define INFERGW_STATUS_UNAUTHENTICATED   16

enum infergw_auth_result {
    INFERGW_AUTH_PASS = 0,
    INFERGW_AUTH_ACCEPT = 1,
    INFERGW_AUTH_REJECT = 2,
};

/* Why a call was refused: the label of infergw_auth_failures_total{reason}. */
enum infergw_auth_reason {
    INFERGW_REASON_REFUSED = 0,    /* anything else a plugin refuses */
    INFERGW_REASON_NO_CREDENTIALS, /* nothing any plugin recognised */
    INFERGW_REASON_MALFORMED,      /* credentials present but unreadable */
    INFERGW_REASON_UNKNOWN_KEY,    /* no such API key, or no JWT key for it */
    INFERGW_REASON_EXPIRED,
    INFERGW_REASON_NOT_YET_VALID,
    INFERGW_REASON_BAD_SIGNATURE,
    INFERGW_REASON_BAD_ALGORITHM, /* alg none, or an alg that does not fit the key */
    INFERGW_REASON_BAD_CLAIMS,    /* issuer, audience, missing tenant claim */
    INFERGW_REASON_COUNT_PLUGIN   /* reasons a plugin may give end here */
};

/* One request metadata entry. Names are lowercase; neither is
 * NUL-terminated. Pseudo-headers are not included. */
struct infergw_metadata {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* Who is calling. All strings NUL-terminated, borrowed for the duration of
 * the authenticate callback. cn and sans are set only when the client
 * presented a certificate that verified (mutual TLS). */
struct infergw_peer {
    const char *addr;        /* "ip:port" */
    int tls;                 /* the connection is TLS */
    int verified;            /* the client certificate verified against the client CA */
    const char *cn;          /* subject CN, or NULL */
    const char *const *sans; /* "DNS:<name>", "URI:<uri>", "IP:<addr>" */
    size_t nsans;
};

struct infergw_auth_request {
    const char *path; /* :path, e.g. "/inference.GRPCInferenceService/ModelInfer" */
    const struct infergw_metadata *md;
    size_t nmd;
    /* The token of "authorization: Bearer <token>" (scheme case-insensitive,
     * surrounding blanks removed), or NULL when there is no authorization
     * metadata or it is not a Bearer credential (then bad_authorization
     * says whether an authorization entry was present but unreadable). */
    const char *bearer;
    size_t bearer_len;
    int bad_authorization;
    const struct infergw_peer *peer;
};

/* Filled by authenticate; zeroed by the gateway before each call. */
struct infergw_auth_answer {
    char tenant[INFERGW_TENANT_MAX + 1];   /* ACCEPT: the tenant, NUL-terminated */
    int status;                            /* REJECT: 16 (default) or 7 */
    int reason;                            /* REJECT: enum infergw_auth_reason */
    char message[INFERGW_MESSAGE_MAX + 1]; /* REJECT: why, sent as grpc-message */
};

/* Services of the gateway. Borrowed; valid from init until destroy. Every
 * function is callable from the thread the plugin was called on. */
struct infergw_host {
    uint32_t abi_version; /* the gateway's INFERGW_PLUGIN_ABI_VERSION */
    /* Looks up the API key whose SHA-256 is <sha256> in the gateway's
     * current tenant records. Returns its tenant (borrowed, valid until the
     * callback returns) and sets *expires_at (unix seconds, 0 = never), or
     * returns NULL when no record matches. Worker threads only. */
    const char *(*apikey_lookup)(const struct infergw_host *host, const uint8_t sha256[32],
                                 int64_t *expires_at);
    /* Wall-clock time in unix seconds. */
    int64_t (*now_unix)(const struct infergw_host *host);
    /* Monotonic time in nanoseconds (the event loop's time on workers). */
    uint64_t (*now_ns)(const struct infergw_host *host);
    /* Writes a JSON log line {"event": <event>, "message": <message>} at
     * <level> (0 debug .. 3 error). Never pass secrets. */
    void (*log)(const struct infergw_host *host, int level, const char *event, const char *message);
    /* The gateway's allocator (counted and testable). */
    void *(*alloc)(size_t n);
    void *(*zalloc)(size_t n);
    void (*free)(void *p);
    int nworkers; /* worker threads: worker_init is called with 0..nworkers-1 */
    void *impl;   /* the gateway's own; do not touch */
};

struct infergw_plugin {
    uint32_t abi_version; /* INFERGW_PLUGIN_ABI_VERSION */
    const char *name;     /* short, e.g. "apikey"; used in logs */
    /* Parses <args> (the text after the ':' of --plugin, or "" — the plugin
     * defines its syntax) and creates the plugin's state. Returns 0 with
     * *state set, or -1 with a message in <err> (the gateway exits 2). */
    int (*init)(const char *args, const struct infergw_host *host, void **state, char *err,
                size_t errlen);
    /* Optional (NULL): per-worker state for worker <index>. Returns it (NULL
     * is a valid state), or sets *failed to 1 on failure. */
    void *(*worker_init)(void *state, int index, int *failed);
    void (*worker_destroy)(void *state, void *wstate); /* optional */
    /* Decides one call; see the chain above. Must not block. */
    enum infergw_auth_result (*authenticate)(void *state, void *wstate,
                                             const struct infergw_auth_request *req,
                                             const struct infergw_host *host,
                                             struct infergw_auth_answer *ans);
    void (*destroy)(void *state); /* optional */
    /* Optional: re-reads the plugin's files (e.g. keys) on SIGHUP. Runs on
     * the main thread while the workers keep calling authenticate, so the
     * plugin publishes the new data atomically and keeps the old until
     * destroy (or knows no worker uses it). Returns 0, or -1 with the
     * reason in <err> (the plugin keeps what it had). */
    int (*reload)(void *state, char *err, size_t errlen);
};

/* Fills <ans> for a REJECT with UNAUTHENTICATED, <reason> and <message>
 * (truncated to INFERGW_MESSAGE_MAX bytes) and returns INFERGW_AUTH_REJECT. */
static inline enum infergw_auth_result infergw_auth_reject(struct infergw_auth_answer *ans,
                                                           int reason, const char *message)
{
    size_t i = 0;
    for (; message[i] && i < INFERGW_MESSAGE_MAX; i++)
        ans->message[i] = message[i];
    ans->message[i] = '\0';
    ans->status = INFERGW_STATUS_UNAUTHENTICATED;
    ans->reason = reason;
    return INFERGW_AUTH_REJECT;
}

/* Copies <tenant> (<len> bytes) into <ans> and returns INFERGW_AUTH_ACCEPT,
 * or rejects (BAD_CLAIMS) when it is empty or longer than INFERGW_TENANT_MAX. */
static inline enum infergw_auth_result infergw_auth_accept(struct infergw_auth_answer *ans,
                                                           const char *tenant, size_t len)
{
    if (len == 0 || len > INFERGW_TENANT_MAX)
        return infergw_auth_reject(ans, INFERGW_REASON_BAD_CLAIMS,
                                   "tenant name is empty or longer than 128 bytes");
    for (size_t i = 0; i < len; i++)
        ans->tenant[i] = tenant[i];
    ans->tenant[len] = '\0';
    return INFERGW_AUTH_ACCEPT;
}

/* The entry point every plugin exports (INFERGW_PLUGIN_SYMBOL): returns
 * the plugin's static descriptor. */
typedef const struct infergw_plugin *(*infergw_plugin_entry_fn)(void);
const struct infergw_plugin *infergw_plugin_v1(void);

#ifdef __cplusplus
}
#endif

#endif
