/* SPDX-License-Identifier: Apache-2.0 */
/* accesslog — per-worker buffered JSON access log; see accesslog.h. */
#include "obs/accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/grpcwire.h"
#include "base/mem.h"

static int alog_fd = -1;
static int alog_owned;

int gw_accesslog_open(const char *path, char *err, size_t errlen)
{
    if (strcmp(path, "-") == 0) {
        alog_fd = STDOUT_FILENO;
        alog_owned = 0;
        return 0;
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open '%s' for appending: %s", path, strerror(errno));
        return -1;
    }
    alog_fd = fd;
    alog_owned = 1;
    return 0;
}

int gw_accesslog_enabled(void)
{
    return alog_fd >= 0;
}

void gw_accesslog_close(void)
{
    if (alog_owned && alog_fd >= 0)
        close(alog_fd);
    alog_fd = -1;
}

/* A bounded writer: <o>, <cap>, <len>; once something does not fit it stays
 * failed. */
struct out {
    char *p;
    size_t cap, len;
    int full;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->full || o->len + n > o->cap) {
        o->full = 1;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void put_lit(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* A JSON string: quotes, backslashes and control bytes escaped (bytes of
 * 0x80 and above pass through: names and paths come from HTTP/2 headers). */
static void put_str(struct out *o, const char *s)
{
    put(o, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)(s ? s : ""); *c; c++) {
        if (*c == '"' || *c == '\\') {
            char e[2] = {'\\', (char)*c};
            put(o, e, 2);
        } else if (*c < 0x20 || *c == 0x7f) {
            static const char hex[] = "0123456789abcdef";
            char u[6] = {'\\', 'u', '0', '0', hex[*c >> 4], hex[*c & 15]};
            put(o, u, sizeof(u));
        } else {
            put(o, (const char *)c, 1);
        }
    }
    put(o, "\"", 1);
}

/* A decimal number, without printf (this runs once per call). */
static void put_u64(struct out *o, uint64_t v)
{
    char d[20];
    size_t n = 0;
    do {
        d[sizeof(d) - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(o, d + sizeof(d) - n, n);
}

/* ".ddd": the last three decimal digits of <v>. */
static void put_frac3(struct out *o, uint64_t v)
{
    char f[4] = {'.', (char)('0' + v / 100 % 10), (char)('0' + v / 10 % 10), (char)('0' + v % 10)};
    put(o, f, 4);
}

/* <v> thousandths as "<v/1000>.ddd". */
static void put_milli(struct out *o, uint64_t v)
{
    put_u64(o, v / 1000);
    put_frac3(o, v);
}

/* "YYYY-MM-DDTHH:MM:SS" of <sec>, remembered per thread for the second it
 * was made in: gmtime and strftime once a second, not once a call. */
static const char *second_text(time_t sec)
{
    static _Thread_local time_t cached = -1;
    static _Thread_local char text[32];
    if (sec != cached) {
        struct tm tm;
        gmtime_r(&sec, &tm);
        strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &tm);
        cached = sec;
    }
    return text;
}

static void put_key(struct out *o, const char *key)
{
    if (o->len > 1)
        put(o, ",", 1);
    put(o, "\"", 1);
    put(o, key, strlen(key));
    put(o, "\":", 2);
}

size_t gw_accesslog_format(char *buf, size_t cap, const struct gw_access_entry *e)
{
    struct out o = {buf, cap, 0, 0};
    put(&o, "{", 1);
    put_key(&o, "time");
    put(&o, "\"", 1);
    put_lit(&o, second_text((time_t)(e->time_ms / 1000)));
    put_frac3(&o, (uint64_t)(e->time_ms % 1000));
    put_lit(&o, "Z\"");
    put_key(&o, "request_id");
    put_str(&o, e->request_id);
    put_key(&o, "peer");
    put_str(&o, e->peer);
    put_key(&o, "tenant");
    put_str(&o, e->tenant);
    put_key(&o, "pool");
    put_str(&o, e->pool);
    put_key(&o, "method");
    put_str(&o, e->method);
    put_key(&o, "status");
    put_str(&o, gw_grpc_status_name(e->code));
    put_key(&o, "code");
    put_u64(&o, (uint64_t)(e->code < 0 ? 0 : e->code));
    put_key(&o, "duration_ms");
    put_milli(&o, e->duration_us);
    put_key(&o, "request_bytes");
    put_u64(&o, e->req_bytes);
    put_key(&o, "response_bytes");
    put_u64(&o, e->resp_bytes);
    put_key(&o, "attempts");
    put_u64(&o, e->nattempts);
    if (e->resumes) {
        put_key(&o, "resumes");
        put_u64(&o, e->resumes);
        put_key(&o, "resume_dropped");
        put_u64(&o, e->resume_dropped);
        put_key(&o, "resume_skipped");
        put_u64(&o, e->resume_skipped);
    }
    put_key(&o, "upstream");
    put(&o, "[", 1);
    for (size_t i = 0; i < e->nattempts; i++) {
        const struct gw_access_attempt *a = &e->attempts[i];
        put_lit(&o, i ? ",{\"replica\":" : "{\"replica\":");
        put_str(&o, a->replica);
        put_lit(&o, ",\"kind\":");
        put_str(&o, a->kind);
        put_lit(&o, ",\"outcome\":");
        put_str(&o, a->outcome);
        put_lit(&o, "}");
    }
    put_lit(&o, "]}\n");
    return o.full ? 0 : o.len;
}

static void write_all(struct gw_accesslog_buf *b)
{
    size_t off = 0;
    while (off < b->len) {
        ssize_t n = write(alog_fd, b->buf + off, b->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            /* A full disk or a closed pipe: count what is lost, never block. */
            for (size_t i = off; i < b->len; i++)
                b->dropped += b->buf[i] == '\n';
            break;
        }
        off += (size_t)n;
    }
    b->len = 0;
}

void gw_accesslog_flush(struct gw_accesslog_buf *b)
{
    if (b->len > 0 && alog_fd >= 0)
        write_all(b);
}

int gw_accesslog_append(struct gw_accesslog_buf *b, const struct gw_access_entry *e)
{
    if (alog_fd < 0)
        return 0;
    if (!b->buf) {
        b->buf = gw_malloc(GW_ACCESSLOG_BUF);
        if (!b->buf) {
            b->dropped++;
            return 0;
        }
    }
    int was_empty = b->len == 0;
    size_t n = gw_accesslog_format(b->buf + b->len, GW_ACCESSLOG_BUF - b->len, e);
    if (n == 0 && b->len > 0) {
        write_all(b);
        was_empty = 1;
        n = gw_accesslog_format(b->buf, GW_ACCESSLOG_BUF, e);
    }
    if (n == 0) {
        b->dropped++; /* longer than the whole buffer: cannot happen with bounded fields */
        return 0;
    }
    b->len += n;
    return was_empty;
}

void gw_accesslog_buf_free(struct gw_accesslog_buf *b)
{
    gw_accesslog_flush(b);
    gw_free(b->buf);
    b->buf = NULL;
}

/* "<worker>-<call id in hex>", written without printf (per call). */
static void own_request_id(char *rid, int worker, uint64_t id)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[24];
    size_t nd = 0, k = 0;
    for (uint64_t v = id; nd == 0 || v; v >>= 4)
        tmp[nd++] = hex[v & 15];
    for (int wi = worker; k == 0 || wi; wi /= 10)
        rid[k++] = (char)('0' + wi % 10);
    for (size_t i = 0; i < k / 2; i++) {
        char t = rid[i];
        rid[i] = rid[k - 1 - i];
        rid[k - 1 - i] = t;
    }
    rid[k++] = '-';
    while (nd)
        rid[k++] = tmp[--nd];
    rid[k] = '\0';
}

void gw_accesslog_entry(struct gw_access_entry *e, char rid[GW_ACCESSLOG_RID_MAX],
                        const struct gw_access_call *f)
{
    if (f->given_request_id && f->given_len > 0 && f->given_len <= 64) {
        memcpy(rid, f->given_request_id, f->given_len);
        rid[f->given_len] = '\0';
    } else {
        own_request_id(rid, f->worker, f->call_id);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    *e = (struct gw_access_entry){
        .time_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
        .request_id = rid,
        .peer = f->peer,
        .tenant = f->tenant,
        .pool = f->pool,
        .method = f->method,
        .code = f->code,
        .duration_us = f->duration_ns / 1000,
        .req_bytes = f->req_bytes,
        .resp_bytes = f->resp_bytes,
        .attempts = f->attempts,
        .nattempts =
            f->nattempts < GW_ACCESSLOG_MAX_ATTEMPTS ? f->nattempts : GW_ACCESSLOG_MAX_ATTEMPTS,
        .resumes = f->resumes,
        .resume_dropped = f->resume_dropped,
        .resume_skipped = f->resume_skipped,
    };
}
