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
    "balance_factor",     "hedge_delay_ms", "hedge_budget_percent", "hedge_exclude",
    "retry_max_attempts", "retry_on",       "retry_budget_percent", "per_try_timeout_ms",
    "route_header",       "slo_target",     "stream_resume",
};

static const char *const resume_names[] = {"off", "replay", "continue"};

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
    case GW_TUN_BALANCE_FACTOR: {
        char *end;
        errno = 0;
        double d = strtod(value, &end);
        if (!is_plain_decimal(value) || *end || errno || !isfinite(d) ||
            !(d == 0 || (d >= 1.0 && d <= 100.0))) {
            gw_errf(err, errlen,
                    "balance_factor '%s': expected 0 (off) or a number from 1.0 to 100", value);
            return -2;
        }
        t->balance_factor = d;
        break;
    }
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
    }
    t->set |= 1u << f;
    return 0;
}

size_t gw_tunables_format(const struct gw_tunables *t, enum gw_tunable_field f, char *out,
                          size_t cap)
{
    int n = 0;
    switch (f) {
    case GW_TUN_BALANCE_FACTOR: {
        /* The shortest text that reads back as the same double: %g alone
         * keeps 6 digits, so 1.123456789 would come back as 1.12346. Values
         * are 0 or 1..100, so from 3 significant digits on %g never uses an
         * exponent, which set would refuse. */
        char num[32];
        for (int prec = 3; prec <= 17; prec++) {
            snprintf(num, sizeof(num), "%.*g", prec, t->balance_factor);
            if (strtod(num, NULL) == t->balance_factor)
                break;
        }
        n = snprintf(out, cap, "%s", num);
        break;
    }
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
    dst->set |= over->set;
}
