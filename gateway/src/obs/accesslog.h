/* SPDX-License-Identifier: Apache-2.0 */
/* accesslog — the optional access log (--access-log): one JSON line per
 * finished call with its request id, tenant, pool, method, the replicas its
 * attempts went to (kind and outcome of each), status and duration.
 *
 * Each worker formats lines into a buffer of its own and writes it with one
 * write(2) to a file opened with O_APPEND when it is nearly full or, at the
 * latest, GW_ACCESSLOG_FLUSH_MS after its first line, so the log costs no
 * system call per call and lines from different workers never interleave.
 * Strings are escaped for JSON; nothing secret is ever written (the request
 * id is the caller's x-request-id, length-limited, or the gateway's own).
 * The entry of a finished call is built here from the call's plain facts
 * (gw_accesslog_entry: the request id, the time); formatting is pure and
 * unit-tested; the fd is opened once before the workers start.
 */
#ifndef INFERGW_ACCESSLOG_H
#define INFERGW_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>

#define GW_ACCESSLOG_BUF          65536
#define GW_ACCESSLOG_FLUSH_MS     200
#define GW_ACCESSLOG_MAX_ATTEMPTS 12

struct gw_access_attempt {
    const char *replica; /* host:port */
    const char *kind;    /* primary, retry, hedge, resume */
    const char *outcome; /* a gRPC status name, CONNECT_FAILED, RESET, CONNECTION_LOST */
};

struct gw_access_entry {
    int64_t time_ms; /* wall clock, ms since the epoch: when the call ended */
    const char *request_id;
    const char *peer;
    const char *tenant; /* "" = none */
    const char *pool;   /* "" = none */
    const char *method; /* :path, or "" */
    int code;           /* gRPC status answered */
    uint64_t duration_us;
    uint64_t req_bytes, resp_bytes;
    const struct gw_access_attempt *attempts;
    size_t nattempts;
    /* stream resume: resume attempts started, replayed messages checked and
     * dropped, messages a continue attempt did not send again; written only
     * when resumes > 0 */
    uint32_t resumes, resume_dropped, resume_skipped;
};

/* A finished call's plain facts, as the call engine knows them. */
struct gw_access_call {
    int worker;
    uint64_t call_id;
    const char *given_request_id; /* the caller's x-request-id, NULL = none */
    size_t given_len;
    const char *peer;
    const char *tenant; /* "" = none */
    const char *pool;   /* "" = none */
    const char *method; /* :path, or "" */
    int code;
    uint64_t duration_ns;
    uint64_t req_bytes, resp_bytes;
    const struct gw_access_attempt *attempts; /* at most GW_ACCESSLOG_MAX_ATTEMPTS */
    size_t nattempts;
    uint32_t resumes, resume_dropped, resume_skipped;
};

/* Room for a request id (the caller's, at most 64 bytes, or the gateway's). */
#define GW_ACCESSLOG_RID_MAX 72

/* Builds the entry of call <f> into <e>, ended now (wall clock): its request
 * id is the caller's x-request-id when it is 1 to 64 bytes long, else the
 * gateway's own "<worker>-<call id in hex>", written into <rid> (which <e>
 * points at). */
void gw_accesslog_entry(struct gw_access_entry *e, char rid[GW_ACCESSLOG_RID_MAX],
                        const struct gw_access_call *f);

/* Opens <path> for appending ("-" = standard output), once, before the
 * workers start. Returns 0, or -1 with the reason in <err>. */
int gw_accesslog_open(const char *path, char *err, size_t errlen);
/* Whether an access log is open. */
int gw_accesslog_enabled(void);
/* Closes it (after the workers have flushed). */
void gw_accesslog_close(void);

/* Writes the JSON line of <e> (with its newline) into <out> of <cap> bytes.
 * Returns its length, or 0 if it does not fit. Pure. */
size_t gw_accesslog_format(char *out, size_t cap, const struct gw_access_entry *e);

/* A worker's buffer. */
struct gw_accesslog_buf {
    char *buf; /* GW_ACCESSLOG_BUF bytes, allocated on first use */
    size_t len;
    uint64_t dropped; /* lines lost to a full disk or out of memory */
};

/* Appends the line of <e> to <b>, writing the buffer out first when the
 * line would not fit. Returns 1 when the buffer was empty before (the
 * caller arms its flush timer), 0 otherwise. */
int gw_accesslog_append(struct gw_accesslog_buf *b, const struct gw_access_entry *e);
/* Writes out what <b> holds. */
void gw_accesslog_flush(struct gw_accesslog_buf *b);
/* Flushes and frees <b>. */
void gw_accesslog_buf_free(struct gw_accesslog_buf *b);

#endif
