/* SPDX-License-Identifier: Apache-2.0 */
/* orca — ORCA load report parsing, the decaying average and power of two
 * choices. See orca.h. */
#include "route/orca.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ORCA_BIN_MAX 4096

static int set_value(struct gw_orca *o, const char *key, size_t klen, double v)
{
    if (!isfinite(v) || v < 0)
        return -1;
#define KEY(lit) (klen == sizeof(lit) - 1 && memcmp(key, lit, klen) == 0)
    if (KEY("cpu_utilization") || KEY("kv_cache_usage") || KEY("mem_utilization")) {
        if (v > 1)
            return -1;
    }
    if (KEY("cpu_utilization")) {
        o->cpu = v;
        o->has |= GW_ORCA_HAS_CPU;
    } else if (KEY("mem_utilization")) {
        o->mem = v;
        o->has |= GW_ORCA_HAS_MEM;
    } else if (KEY("rps_fractional")) {
        o->rps = v;
        o->has |= GW_ORCA_HAS_RPS;
    } else if (KEY("kv_cache_usage")) {
        o->kv = v;
        o->has |= GW_ORCA_HAS_KV;
    } else if (KEY("queue_depth")) {
        o->queue = v;
        o->has |= GW_ORCA_HAS_QUEUE;
    }
#undef KEY
    return 0;
}

static int is_space(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* One "k=v" item of the text form, s[0..n) trimmed. */
static int text_item(struct gw_orca *o, const char *s, size_t n)
{
    while (n && is_space(*s))
        s++, n--;
    while (n && is_space(s[n - 1]))
        n--;
    const char *eq = memchr(s, '=', n);
    if (!eq || eq == s || (size_t)(eq - s) == n - 1)
        return -1;
    size_t klen = (size_t)(eq - s), vlen = n - klen - 1;
    char num[48];
    if (vlen >= sizeof(num))
        return -1;
    memcpy(num, eq + 1, vlen);
    num[vlen] = '\0';
    char *end;
    double v = strtod(num, &end);
    if (end == num || *end != '\0')
        return -1;
    static const char nm[] = "named_metrics.";
    if (klen > sizeof(nm) - 1 && memcmp(s, nm, sizeof(nm) - 1) == 0)
        return set_value(o, s + sizeof(nm) - 1, klen - (sizeof(nm) - 1), v);
    if (klen == 14 && memcmp(s, "kv_cache_usage", 14) == 0)
        return isfinite(v) && v >= 0 ? 0 : -1; /* only as a named metric */
    if (klen == 11 && memcmp(s, "queue_depth", 11) == 0)
        return isfinite(v) && v >= 0 ? 0 : -1;
    return set_value(o, s, klen, v);
}

int gw_orca_parse_text(const char *value, size_t len, struct gw_orca *out)
{
    memset(out, 0, sizeof(*out));
    if (len < 5 || memcmp(value, "TEXT", 4) != 0 || !is_space(value[4]))
        return -1;
    const char *p = value + 5, *end = value + len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        if (text_item(out, p, (size_t)(stop - p)) < 0)
            return -1;
        p = comma ? comma + 1 : end;
    }
    return 0;
}

static int b64_val(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+' || ch == '-')
        return 62;
    if (ch == '/' || ch == '_')
        return 63;
    return -1;
}

/* Base64 (standard or URL alphabet, padding optional) into out[0..cap).
 * Returns the decoded length or -1. */
static long b64_decode(const char *s, size_t n, uint8_t *out, size_t cap)
{
    while (n && s[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_val((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o == cap)
                return -1;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    return (long)o;
}

static int varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p == end)
            return -1;
        uint8_t b = *(*p)++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return 0;
        }
    }
    return -1;
}

static double le_double(const uint8_t *p)
{
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--)
        u = (u << 8) | p[i];
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

/* Skips a field of <wire> type. */
static int skip_field(const uint8_t **p, const uint8_t *end, unsigned wire)
{
    uint64_t v;
    switch (wire) {
    case 0:
        return varint(p, end, &v);
    case 1:
        if (end - *p < 8)
            return -1;
        *p += 8;
        return 0;
    case 2:
        if (varint(p, end, &v) < 0 || v > (uint64_t)(end - *p))
            return -1;
        *p += v;
        return 0;
    case 5:
        if (end - *p < 4)
            return -1;
        *p += 4;
        return 0;
    default:
        return -1;
    }
}

/* One named_metrics map entry p[0..n). */
static int map_entry(struct gw_orca *o, const uint8_t *p, const uint8_t *end)
{
    const uint8_t *key = NULL;
    size_t klen = 0;
    double val = 0;
    while (p < end) {
        uint64_t tag;
        if (varint(&p, end, &tag) < 0)
            return -1;
        unsigned field = (unsigned)(tag >> 3), wire = (unsigned)(tag & 7);
        if (field == 1 && wire == 2) {
            uint64_t l;
            if (varint(&p, end, &l) < 0 || l > (uint64_t)(end - p))
                return -1;
            key = p;
            klen = (size_t)l;
            p += l;
        } else if (field == 2 && wire == 1) {
            if (end - p < 8)
                return -1;
            val = le_double(p);
            p += 8;
        } else if (skip_field(&p, end, wire) < 0) {
            return -1;
        }
    }
    return key ? set_value(o, (const char *)key, klen, val) : 0;
}

int gw_orca_parse_bin(const char *value, size_t len, struct gw_orca *out)
{
    memset(out, 0, sizeof(*out));
    uint8_t buf[ORCA_BIN_MAX];
    long n = b64_decode(value, len, buf, sizeof(buf));
    if (n < 0)
        return -1;
    const uint8_t *p = buf, *end = buf + n;
    while (p < end) {
        uint64_t tag;
        if (varint(&p, end, &tag) < 0)
            return -1;
        unsigned field = (unsigned)(tag >> 3), wire = (unsigned)(tag & 7);
        if (wire == 1 && (field == 1 || field == 2 || field == 6)) {
            if (end - p < 8)
                return -1;
            double v = le_double(p);
            p += 8;
            const char *k = field == 1   ? "cpu_utilization"
                            : field == 2 ? "mem_utilization"
                                         : "rps_fractional";
            if (set_value(out, k, strlen(k), v) < 0)
                return -1;
        } else if (field == 8 && wire == 2) {
            uint64_t l;
            if (varint(&p, end, &l) < 0 || l > (uint64_t)(end - p))
                return -1;
            if (map_entry(out, p, p + l) < 0)
                return -1;
            p += l;
        } else if (skip_field(&p, end, wire) < 0) {
            return -1;
        }
    }
    return 0;
}

double gw_orca_load(const struct gw_orca *o)
{
    double l = -1;
    if (o->has & GW_ORCA_HAS_CPU)
        l = o->cpu;
    if ((o->has & GW_ORCA_HAS_KV) && o->kv > l)
        l = o->kv;
    return l;
}

double gw_orca_avg(double prev, double sample)
{
    return prev < 0 ? sample : prev + GW_ORCA_ALPHA * (sample - prev);
}

int gw_p2c_pick(const double *cost, size_t n, uint32_t r)
{
    if (n == 0)
        return -1;
    if (n == 1)
        return 0;
    size_t a = r % n;
    size_t b = (a + 1 + (r / (uint32_t)n) % (n - 1)) % n;
    return cost[b] < cost[a] ? (int)b : (int)a;
}

double gw_p2c_cost(uint32_t inflight, double load)
{
    double q = (double)inflight + 1;
    return (load >= 0 ? q * (1 + load) : q) - 1;
}
