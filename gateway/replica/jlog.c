/* SPDX-License-Identifier: Apache-2.0 */
/* jlog — JSON lines on stderr for the reference replica (see jlog.h). */
#include "jlog.h"

#include <stdio.h>
#include <string.h>

#include <grpc/support/log.h>

static void put(struct rp_jline *l, const char *s, size_t n)
{
    /* Two bytes stay free for the closing "}\n". */
    size_t room = sizeof(l->buf) - 2 - l->len;
    if (n > room)
        n = room;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

/* Appends <s> as the inside of a JSON string, at most RP_JLOG_MAX_VALUE
 * bytes of it; a value cut short never ends in half an escape sequence. */
static void put_escaped(struct rp_jline *l, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = l->len;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[7];
        size_t n;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            n = 2;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        } else {
            esc[0] = (char)c;
            n = 1;
        }
        /* Keep room for the closing quote. */
        if (l->len + n - start > RP_JLOG_MAX_VALUE || l->len + n + 1 > sizeof(l->buf) - 2)
            return;
        put(l, esc, n);
    }
}

static void put_key(struct rp_jline *l, const char *key)
{
    put(l, l->first ? "\"" : ",\"", l->first ? 1 : 2);
    l->first = 0;
    put_escaped(l, key);
    put(l, "\":", 2);
}

void rp_jlog_begin(struct rp_jline *l, const char *event, const char *replica)
{
    l->len = 0;
    l->first = 1;
    put(l, "{", 1);
    rp_jlog_str(l, "event", event);
    rp_jlog_str(l, "replica", replica);
}

void rp_jlog_str(struct rp_jline *l, const char *key, const char *value)
{
    put_key(l, key);
    put(l, "\"", 1);
    put_escaped(l, value ? value : "");
    put(l, "\"", 1);
}

void rp_jlog_num(struct rp_jline *l, const char *key, unsigned long long value)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%llu", value);
    put_key(l, key);
    put(l, num, (size_t)n);
}

void rp_jlog_bool(struct rp_jline *l, const char *key, int value)
{
    put_key(l, key);
    if (value)
        put(l, "true", 4);
    else
        put(l, "false", 5);
}

void rp_jlog_end(struct rp_jline *l)
{
    l->buf[l->len++] = '}';
    l->buf[l->len++] = '\n';
    /* stdio locks the stream for each call: one fwrite is one whole line. */
    fwrite(l->buf, 1, l->len, stderr);
    fflush(stderr);
}

static const char *g_grpc_log_replica = "";

static void grpc_log_to_json(gpr_log_func_args *args)
{
    struct rp_jline l;
    rp_jlog_begin(&l, "grpc_log", g_grpc_log_replica);
    rp_jlog_str(&l, "severity", gpr_log_severity_string(args->severity));
    rp_jlog_str(&l, "message", args->message);
    rp_jlog_end(&l);
}

void rp_jlog_capture_grpc(const char *replica)
{
    g_grpc_log_replica = replica;
    gpr_set_log_verbosity(GPR_LOG_SEVERITY_ERROR);
    gpr_set_log_function(grpc_log_to_json);
}
