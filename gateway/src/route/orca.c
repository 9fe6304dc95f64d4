/* SPDX-License-Identifier: Apache-2.0 */
/* orca — ORCA load report parsing, the decaying average and power of two
 * choices. See orca.h. */
#include "route/orca.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "xds/data/orca/v3/orca_load_report.pb-c.h"

#define ORCA_BIN_MAX 4096                   /* a decoded report, at most */
#define ORCA_B64_MAX (ORCA_BIN_MAX / 3 * 4) /* its base64 text, at most */

static int set_value(struct gw_orca *o, const char *key, size_t klen, double v)
{
    if (!isfinite(v) || v < 0)
        return -1;
#define KEY(lit) (klen == sizeof(lit) - 1 && memcmp(key, lit, klen) == 0)
    /* Fractions of a whole; cpu_utilization and application_utilization may
     * pass 1 (gRFC A51: usage past the replica's soft limits), and
     * gw_orca_load() caps them. */
    if ((KEY("kv_cache_usage") || KEY("mem_utilization")) && v > 1)
        return -1;
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
    } else if (KEY("application_utilization")) {
        o->app = v;
        o->has |= GW_ORCA_HAS_APP;
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

/* Base64 value[0..len) (standard or URL alphabet, padding optional, as gRPC
 * sends -bin headers) into out[0..cap) with OpenSSL's decoder, which wants
 * the standard alphabet padded to a multiple of four. Returns the decoded
 * length or -1. */
static long b64_decode(const char *value, size_t len, uint8_t *out, size_t cap)
{
    for (int k = 0; k < 2 && len && value[len - 1] == '='; k++)
        len--;
    size_t pad = (4 - len % 4) % 4;
    char text[ORCA_B64_MAX + 4];
    if (pad == 3 || len + pad > sizeof(text) - 1 || (len + pad) / 4 * 3 > cap)
        return -1;
    /* Only the alphabet: EVP_DecodeBlock would also take blanks at either
     * end and '=' within. */
    for (size_t i = 0; i < len; i++) {
        char ch = value[i];
        if (ch == '-' || ch == '_')
            ch = ch == '-' ? '+' : '/';
        else if (!isalnum((unsigned char)ch) && ch != '+' && ch != '/')
            return -1;
        text[i] = ch;
    }
    memset(text + len, '=', pad);
    int n = EVP_DecodeBlock(out, (const unsigned char *)text, (int)(len + pad));
    return n < 0 ? -1 : (long)n - (long)pad;
}

/* The fields a proto3 encoder sends only when they are not zero: a zero
 * (absent) one is not reported, as gRPC's own weighted round robin reads
 * cpu_utilization. */
static int set_nonzero(struct gw_orca *o, const char *key, double v)
{
    return v == 0 ? 0 : set_value(o, key, strlen(key), v);
}

int gw_orca_parse_bin(const char *value, size_t len, struct gw_orca *out)
{
    memset(out, 0, sizeof(*out));
    uint8_t buf[ORCA_BIN_MAX];
    long n = b64_decode(value, len, buf, sizeof(buf));
    if (n < 0)
        return -1;
    Xds__Data__Orca__V3__OrcaLoadReport *r =
        xds__data__orca__v3__orca_load_report__unpack(NULL, (size_t)n, buf);
    if (!r)
        return -1;
    int rc = 0;
    if (set_nonzero(out, "cpu_utilization", r->cpu_utilization) < 0 ||
        set_nonzero(out, "mem_utilization", r->mem_utilization) < 0 ||
        set_nonzero(out, "rps_fractional", r->rps_fractional) < 0 ||
        set_nonzero(out, "application_utilization", r->application_utilization) < 0)
        rc = -1;
    for (size_t i = 0; rc == 0 && i < r->n_named_metrics; i++) {
        const Xds__Data__Orca__V3__OrcaLoadReport__NamedMetricsEntry *e = r->named_metrics[i];
        rc = set_value(out, e->key, strlen(e->key), e->value);
    }
    xds__data__orca__v3__orca_load_report__free_unpacked(r, NULL);
    return rc;
}

double gw_orca_load(const struct gw_orca *o)
{
    double l = -1;
    if (o->has & GW_ORCA_HAS_APP)
        l = o->app;
    else if (o->has & GW_ORCA_HAS_CPU)
        l = o->cpu;
    if ((o->has & GW_ORCA_HAS_KV) && o->kv > l)
        l = o->kv;
    return l > 1 ? 1 : l;
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
