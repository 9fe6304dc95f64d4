/* SPDX-License-Identifier: Apache-2.0 */
/* tunables — routing tunables, defaults and validation; see tunables.h. */
#include "route/tunables.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/grpcwire.h"

const char *const gw_tunable_names[GW_TUN_COUNT] = {
    "balance_factor",     "hedge_delay_ms",     "hedge_budget_percent", "hedge_exclude",
    "retry_max_attempts", "retry_on",           "retry_budget_percent", "per_try_timeout_ms",
    "route_header",       "slo_target",         "stream_resume",        "route_by",
    "prefix_mode",        "prefix_input",       "prefix_block",         "prefix_max_blocks",
    "prefix_ttl_ms",      "prefix_load_weight", "prefix_imbalance",
};

static const char *const resume_names[] = {"off", "replay", "continue"};
static const char *const route_by_names[] = {"ring", "least_loaded", "prefix"};
static const char *const prefix_mode_names[] = {"estimate", "precise"};

const char *gw_resume_mode_name(int mode)
{
    return mode >= 0 && mode <= GW_RESUME_CONTINUE ? resume_names[mode] : NULL;
}

int gw_resume_mode_parse(const char *s)
{
    for (int i = 0; i <= GW_RESUME_CONTINUE; i++)
        if (!strcmp(s, resume_names[i]))
            return i;
    return -1;
}

void gw_tunables_defaults(struct gw_tunables *t)
{
    memset(t, 0, sizeof(*t));
    t->balance_factor = 1.25;
    t->hedge_delay_ms = GW_HEDGE_OFF;
    t->hedge_budget_percent = 10;
    t->retry_max_attempts = 3;
    t->retry_on = 1u << GW_GRPC_UNAVAILABLE;
    t->retry_budget_percent = 20;
    t->per_try_timeout_ms = 0;
    snprintf(t->route_header, sizeof(t->route_header), "x-route-key");
    t->slo_target_milli = 99900;
    t->route_by = GW_ROUTE_BY_RING;
    t->prefix_mode = GW_PREFIX_MODE_ESTIMATE;
    snprintf(t->prefix_input, sizeof(t->prefix_input), "text_input");
    t->prefix_block = 64;
    t->prefix_max_blocks = 128;
    t->prefix_ttl_ms = 600000;
    t->prefix_load_weight = 1.0;
    t->prefix_imbalance = 1.5;
}

void gw_tunables_default_resume(struct gw_tunables *t, const char *s)
{
    int m = gw_resume_mode_parse(s);
    t->stream_resume = (uint8_t)(m > 0 ? m : GW_RESUME_OFF);
}

int gw_tunables_field(const char *field)
{
    for (int i = 0; i < GW_TUN_COUNT; i++)
        if (!strcmp(field, gw_tunable_names[i]))
            return i;
    return -1;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A comma list of gRPC status names (or numbers), at least one. */
static int parse_codes(const char *s, uint32_t *mask)
{
    uint32_t m = 0;
    char tok[40];
    while (*s) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        if (n == 0 || n >= sizeof(tok))
            return -1;
        memcpy(tok, s, n);
        tok[n] = '\0';
        int code = gw_grpc_status_parse(tok);
        if (code <= 0)
            return -1; /* OK is never retried */
        m |= 1u << code;
        s = comma ? comma + 1 : s + n;
        if (comma && !*s)
            return -1;
    }
    if (!m)
        return -1;
    *mask = m;
    return 0;
}

static int valid_header(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

/* A plain decimal: digits, optionally a point and more digits. strtod
 * alone would also take white space, a sign, hex floats, exponents, inf and
 * nan. */
static int is_plain_decimal(const char *s)
{
    size_t i = 0;
    while (is_digit(s[i]))
        i++;
    if (i == 0)
        return 0;
    if (s[i] == '.') {
        size_t frac = ++i;
        while (is_digit(s[i]))
            i++;
        if (i == frac)
            return 0;
    }
    return s[i] == '\0';
}

/* A plain decimal in [lo, hi], or exactly 0 when <zero_ok> (0 = off). */
static int parse_decimal(const char *s, double lo, double hi, int zero_ok, double *out)
{
    char *end;
    double d;

    if (!is_plain_decimal(s))
        return -1;
    errno = 0;
    d = strtod(s, &end);
    if (*end || errno || !isfinite(d) || !((zero_ok && d == 0) || (d >= lo && d <= hi)))
        return -1;
    *out = d;
    return 0;
}

/* The index of <s> in <names>[0..n), or -1. */
static int parse_word(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i]))
            return i;
    return -1;
}

/* A tensor name: 1..127 bytes of printable ASCII, no space or comma. */
static int valid_tensor_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= 128)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == ',')
            return 0;
    return 1;
}

/* An SLO target in percent: a plain decimal above 50 and below 100 with at
 * most 3 decimals, as thousandths of a percent (exact: no rounding). */
static int parse_slo_target(const char *s, uint32_t *milli)
{
    if (!is_plain_decimal(s))
        return -1;
    const char *dot = strchr(s, '.');
    size_t ilen = dot ? (size_t)(dot - s) : strlen(s), flen = dot ? strlen(dot + 1) : 0;
    if (ilen > 3 || flen > 3)
        return -1;
    uint32_t v = 0;
    for (size_t i = 0; i < ilen; i++)
        v = v * 10 + (uint32_t)(s[i] - '0');
    v *= 1000;
    uint32_t scale = 100;
    for (size_t i = 0; i < flen; i++, scale /= 10)
        v += (uint32_t)(dot[1 + i] - '0') * scale;
    if (v <= 50000 || v >= 100000)
        return -1;
    *milli = v;
    return 0;
}

/* A comma list of "/service/method" paths: exactly two slashes, neither part
 * empty. */
static int valid_paths(const char *s)
{
    if (strlen(s) >= 512)
        return 0;
    while (*s) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        const char *slash = n ? memchr(s + 1, '/', n - 1) : NULL;
        if (n < 4 || s[0] != '/' || !slash || slash == s + 1 || slash == s + n - 1 ||
            memchr(slash + 1, '/', (size_t)(s + n - slash - 1)))
            return 0;
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
                return 0;
        s = comma ? comma + 1 : s + n;
        if (comma && !*s)
            return 0;
    }
    return 1;
}

/* route_by and prefix_mode: one word of a list. */
static int set_word(struct gw_tunables *t, int f, const char *value, char *err, size_t errlen)
{
    int ring = f == GW_TUN_ROUTE_BY;
    int v = ring ? parse_word(value, route_by_names, 3) : parse_word(value, prefix_mode_names, 2);

    if (v < 0) {
        gw_errf(err, errlen, "%s '%s': expected %s", gw_tunable_names[f], value,
                ring ? "ring, least_loaded or prefix" : "estimate or precise");
        return -2;
    }
    if (ring)
        t->route_by = (uint32_t)v;
    else
        t->prefix_mode = (uint32_t)v;
    t->set |= 1u << f;
    return 0;
}

/* prefix_block, prefix_max_blocks, prefix_ttl_ms: whole numbers in a range. */
static int set_u32(struct gw_tunables *t, int f, const char *value, char *err, size_t errlen)
{
    uint32_t lo = 1, hi = 1024, u, *dst = &t->prefix_block;

    if (f == GW_TUN_PREFIX_MAX_BLOCKS)
        dst = &t->prefix_max_blocks;
    else if (f == GW_TUN_PREFIX_TTL_MS) {
        dst = &t->prefix_ttl_ms;
        lo = 1000;
        hi = 86400000;
    }
    if (gw_parse_u32(value, lo, hi, &u) < 0) {
        gw_errf(err, errlen, "%s '%s': expected %u..%u", gw_tunable_names[f], value, lo, hi);
        return -2;
    }
    *dst = u;
    t->set |= 1u << f;
    return 0;
}

int gw_tunables_set(struct gw_tunables *t, const char *field, const char *value, char *err,
                    size_t errlen)
{
    int f = gw_tunables_field(field);
    if (f < 0) {
        gw_errf(err, errlen, "unknown field '%s'", field);
        return -1;
    }
    uint32_t u;
    switch (f) {
    case GW_TUN_BALANCE_FACTOR:
        if (parse_decimal(value, 1.0, 100.0, 1, &t->balance_factor) < 0) {
            gw_errf(err, errlen,
                    "balance_factor '%s': expected 0 (off) or a number from 1.0 to 100", value);
            return -2;
        }
        break;
    case GW_TUN_HEDGE_DELAY_MS:
        if (!strcmp(value, "off"))
            t->hedge_delay_ms = GW_HEDGE_OFF;
        else if (!strcmp(value, "auto"))
            t->hedge_delay_ms = GW_HEDGE_AUTO;
        else if (gw_parse_u32(value, 1, 600000, &u) == 0)
            t->hedge_delay_ms = (int32_t)u;
        else {
            gw_errf(err, errlen, "hedge_delay_ms '%s': expected off, auto, or 1..600000", value);
            return -2;
        }
        break;
    case GW_TUN_HEDGE_BUDGET_PERCENT:
    case GW_TUN_RETRY_BUDGET_PERCENT:
        if (gw_parse_u32(value, 0, 100, &u) < 0) {
            gw_errf(err, errlen, "%s '%s': expected 0..100", field, value);
            return -2;
        }
        if (f == GW_TUN_HEDGE_BUDGET_PERCENT)
            t->hedge_budget_percent = u;
        else
            t->retry_budget_percent = u;
        break;
    case GW_TUN_HEDGE_EXCLUDE:
        if (!valid_paths(value)) {
            gw_errf(err, errlen,
                    "hedge_exclude '%s': expected a comma list of /package.Service/Method paths",
                    value);
            return -2;
        }
        snprintf(t->hedge_exclude, sizeof(t->hedge_exclude), "%s", value);
        break;
    case GW_TUN_RETRY_MAX_ATTEMPTS:
        if (gw_parse_u32(value, 1, 10, &u) < 0) {
            gw_errf(err, errlen, "retry_max_attempts '%s': expected 1..10", value);
            return -2;
        }
        t->retry_max_attempts = u;
        break;
    case GW_TUN_RETRY_ON:
        if (parse_codes(value, &u) < 0) {
            gw_errf(err, errlen,
                    "retry_on '%s': expected a comma list of gRPC status names other than OK "
                    "(e.g. UNAVAILABLE,RESOURCE_EXHAUSTED)",
                    value);
            return -2;
        }
        t->retry_on = u;
        break;
    case GW_TUN_PER_TRY_TIMEOUT_MS:
        if (gw_parse_u32(value, 0, 3600000, &u) < 0) {
            gw_errf(err, errlen, "per_try_timeout_ms '%s': expected 0 (none) or 1..3600000", value);
            return -2;
        }
        t->per_try_timeout_ms = u;
        break;
    case GW_TUN_ROUTE_HEADER:
        if (!valid_header(value)) {
            gw_errf(
                err, errlen,
                "route_header '%s': expected a lowercase metadata key (a-z 0-9 - _ .), under 64 "
                "bytes",
                value);
            return -2;
        }
        snprintf(t->route_header, sizeof(t->route_header), "%s", value);
        break;
    case GW_TUN_SLO_TARGET:
        if (parse_slo_target(value, &u) < 0) {
            gw_errf(err, errlen,
                    "slo_target '%s': expected a percentage above 50 and below 100 with at most 3 "
                    "decimals (e.g. 99.9)",
                    value);
            return -2;
        }
        t->slo_target_milli = u;
        break;
    case GW_TUN_STREAM_RESUME: {
        int m = gw_resume_mode_parse(value);
        if (m < 0) {
            gw_errf(err, errlen, "stream_resume '%s': expected off, replay or continue", value);
            return -2;
        }
        t->stream_resume = (uint8_t)m;
        break;
    }
    case GW_TUN_ROUTE_BY:
    case GW_TUN_PREFIX_MODE:
        return set_word(t, f, value, err, errlen);
    case GW_TUN_PREFIX_INPUT:
        if (!valid_tensor_name(value)) {
            gw_errf(err, errlen,
                    "prefix_input '%s': expected an input tensor name (1..127 bytes of printable "
                    "ASCII without spaces or commas)",
                    value);
            return -2;
        }
        snprintf(t->prefix_input, sizeof(t->prefix_input), "%s", value);
        break;
    case GW_TUN_PREFIX_BLOCK:
    case GW_TUN_PREFIX_MAX_BLOCKS:
    case GW_TUN_PREFIX_TTL_MS:
        return set_u32(t, f, value, err, errlen);
    case GW_TUN_PREFIX_LOAD_WEIGHT:
        if (parse_decimal(value, 0.0, 100.0, 1, &t->prefix_load_weight) < 0) {
            gw_errf(err, errlen, "prefix_load_weight '%s': expected a number from 0 to 100", value);
            return -2;
        }
        break;
    case GW_TUN_PREFIX_IMBALANCE:
        if (parse_decimal(value, 1.0, 100.0, 1, &t->prefix_imbalance) < 0) {
            gw_errf(err, errlen,
                    "prefix_imbalance '%s': expected 0 (off) or a number from 1.0 to 100", value);
            return -2;
        }
        break;
    }
    t->set |= 1u << f;
    return 0;
}

/* The shortest text that reads back as the same double: %g alone keeps 6
 * digits, so 1.123456789 would come back as 1.12346. Values are 0 or
 * up to 100; from 3 significant digits on, %g writes those without an
 * exponent (which set would refuse) except below 1e-4, where fixed-point
 * digits are used instead. */
static int format_decimal(double d, char *out, size_t cap)
{
    char num[40];

    for (int prec = 3; prec <= 17; prec++) {
        snprintf(num, sizeof(num), "%.*g", prec, d);
        if (strtod(num, NULL) == d)
            break;
    }
    if (strchr(num, 'e')) /* below 1e-4 (prefix_load_weight): plain digits */
        for (int prec = 5; prec <= 30; prec++) {
            snprintf(num, sizeof(num), "%.*f", prec, d);
            if (strtod(num, NULL) == d)
                break;
        }
    return snprintf(out, cap, "%s", num);
}

size_t gw_tunables_format(const struct gw_tunables *t, enum gw_tunable_field f, char *out,
                          size_t cap)
{
    int n = 0;
    switch (f) {
    case GW_TUN_BALANCE_FACTOR:
        n = format_decimal(t->balance_factor, out, cap);
        break;
    case GW_TUN_HEDGE_DELAY_MS:
        if (t->hedge_delay_ms == GW_HEDGE_OFF)
            n = snprintf(out, cap, "off");
        else if (t->hedge_delay_ms == GW_HEDGE_AUTO)
            n = snprintf(out, cap, "auto");
        else
            n = snprintf(out, cap, "%d", (int)t->hedge_delay_ms);
        break;
    case GW_TUN_HEDGE_BUDGET_PERCENT:
        n = snprintf(out, cap, "%u", t->hedge_budget_percent);
        break;
    case GW_TUN_HEDGE_EXCLUDE:
        n = snprintf(out, cap, "%s", t->hedge_exclude);
        break;
    case GW_TUN_RETRY_MAX_ATTEMPTS:
        n = snprintf(out, cap, "%u", t->retry_max_attempts);
        break;
    case GW_TUN_RETRY_ON: {
        /* Built in full here, then cut to <cap>: writing in place would
         * touch out[0] when cap is 0. 16 names and commas fit in 256. */
        char list[256];
        size_t len = 0;
        list[0] = '\0';
        for (int code = 1; code <= 16; code++) {
            if (!(t->retry_on & (1u << code)))
                continue;
            int k = snprintf(list + len, sizeof(list) - len, "%s%s", len ? "," : "",
                             gw_grpc_status_name(code));
            if (k > 0 && (size_t)k < sizeof(list) - len)
                len += (size_t)k;
        }
        n = snprintf(out, cap, "%s", list);
        break;
    }
    case GW_TUN_RETRY_BUDGET_PERCENT:
        n = snprintf(out, cap, "%u", t->retry_budget_percent);
        break;
    case GW_TUN_PER_TRY_TIMEOUT_MS:
        n = snprintf(out, cap, "%u", t->per_try_timeout_ms);
        break;
    case GW_TUN_ROUTE_HEADER:
        n = snprintf(out, cap, "%s", t->route_header);
        break;
    case GW_TUN_SLO_TARGET: {
        /* 99900 -> "99.9", 99000 -> "99", 99995 -> "99.995". */
        char num[16];
        int k = snprintf(num, sizeof(num), "%u.%03u", t->slo_target_milli / 1000,
                         t->slo_target_milli % 1000);
        while (k > 0 && num[k - 1] == '0')
            num[--k] = '\0';
        if (k > 0 && num[k - 1] == '.')
            num[--k] = '\0';
        n = snprintf(out, cap, "%s", num);
        break;
    }
    case GW_TUN_STREAM_RESUME:
        n = snprintf(out, cap, "%s", gw_resume_mode_name(t->stream_resume));
        break;
    case GW_TUN_ROUTE_BY:
        n = snprintf(out, cap, "%s", route_by_names[t->route_by < 3 ? t->route_by : 0]);
        break;
    case GW_TUN_PREFIX_MODE:
        n = snprintf(out, cap, "%s", prefix_mode_names[t->prefix_mode < 2 ? t->prefix_mode : 0]);
        break;
    case GW_TUN_PREFIX_INPUT:
        n = snprintf(out, cap, "%s", t->prefix_input);
        break;
    case GW_TUN_PREFIX_BLOCK:
        n = snprintf(out, cap, "%u", t->prefix_block);
        break;
    case GW_TUN_PREFIX_MAX_BLOCKS:
        n = snprintf(out, cap, "%u", t->prefix_max_blocks);
        break;
    case GW_TUN_PREFIX_TTL_MS:
        n = snprintf(out, cap, "%u", t->prefix_ttl_ms);
        break;
    case GW_TUN_PREFIX_LOAD_WEIGHT:
        n = format_decimal(t->prefix_load_weight, out, cap);
        break;
    case GW_TUN_PREFIX_IMBALANCE:
        n = format_decimal(t->prefix_imbalance, out, cap);
        break;
    default:
        if (cap)
            out[0] = '\0';
        break;
    }
    if (n < 0)
        n = 0;
    return (size_t)n < cap ? (size_t)n : (cap ? cap - 1 : 0);
}

void gw_tunables_overlay(struct gw_tunables *dst, const struct gw_tunables *over)
{
    if (over->set & (1u << GW_TUN_BALANCE_FACTOR))
        dst->balance_factor = over->balance_factor;
    if (over->set & (1u << GW_TUN_HEDGE_DELAY_MS))
        dst->hedge_delay_ms = over->hedge_delay_ms;
    if (over->set & (1u << GW_TUN_HEDGE_BUDGET_PERCENT))
        dst->hedge_budget_percent = over->hedge_budget_percent;
    if (over->set & (1u << GW_TUN_HEDGE_EXCLUDE))
        memcpy(dst->hedge_exclude, over->hedge_exclude, sizeof(dst->hedge_exclude));
    if (over->set & (1u << GW_TUN_RETRY_MAX_ATTEMPTS))
        dst->retry_max_attempts = over->retry_max_attempts;
    if (over->set & (1u << GW_TUN_RETRY_ON))
        dst->retry_on = over->retry_on;
    if (over->set & (1u << GW_TUN_RETRY_BUDGET_PERCENT))
        dst->retry_budget_percent = over->retry_budget_percent;
    if (over->set & (1u << GW_TUN_PER_TRY_TIMEOUT_MS))
        dst->per_try_timeout_ms = over->per_try_timeout_ms;
    if (over->set & (1u << GW_TUN_ROUTE_HEADER))
        memcpy(dst->route_header, over->route_header, sizeof(dst->route_header));
    if (over->set & (1u << GW_TUN_SLO_TARGET))
        dst->slo_target_milli = over->slo_target_milli;
    if (over->set & (1u << GW_TUN_STREAM_RESUME))
        dst->stream_resume = over->stream_resume;
    if (over->set & (1u << GW_TUN_ROUTE_BY))
        dst->route_by = over->route_by;
    if (over->set & (1u << GW_TUN_PREFIX_MODE))
        dst->prefix_mode = over->prefix_mode;
    if (over->set & (1u << GW_TUN_PREFIX_INPUT))
        memcpy(dst->prefix_input, over->prefix_input, sizeof(dst->prefix_input));
    if (over->set & (1u << GW_TUN_PREFIX_BLOCK))
        dst->prefix_block = over->prefix_block;
    if (over->set & (1u << GW_TUN_PREFIX_MAX_BLOCKS))
        dst->prefix_max_blocks = over->prefix_max_blocks;
    if (over->set & (1u << GW_TUN_PREFIX_TTL_MS))
        dst->prefix_ttl_ms = over->prefix_ttl_ms;
    if (over->set & (1u << GW_TUN_PREFIX_LOAD_WEIGHT))
        dst->prefix_load_weight = over->prefix_load_weight;
    if (over->set & (1u << GW_TUN_PREFIX_IMBALANCE))
        dst->prefix_imbalance = over->prefix_imbalance;
    dst->set |= over->set;
}
