/* SPDX-License-Identifier: Apache-2.0 */
/* tunables — the routing tunables operators set in Redis (infergw:conf for
 * all pools, infergw:pool:<pool>:conf per pool), their defaults, and their
 * validation. Pure logic shared by the gateway (which validates what it
 * loads: a bad value is refused and the last good one stays) and by
 * infergw-ctl (which refuses to write a bad value), so both accept exactly
 * the same values.
 *
 * Field            value                              default
 * balance_factor   0 (off) or a decimal 1.0..100      1.25
 * hedge_delay_ms   off | auto (observed p95) | 1..600000   off
 * hedge_budget_percent   0..100                     10
 * hedge_exclude    comma list of /service/method paths ""
 * retry_max_attempts     1..10                       3
 * retry_on         comma list of gRPC status names   UNAVAILABLE
 * retry_budget_percent   0..100                     20
 * per_try_timeout_ms     0 (none) | 1..3600000     0
 * route_header     lowercase metadata key             x-route-key
 * slo_target       availability objective in percent, 99.9
 *                  a decimal above 50 and below 100
 *                  with at most 3 decimals (docs/slo.md)
 * stream_resume    off | replay | continue             off (the gateway's
 *                  (docs/stream-resume.md)             --stream-resume when
 *                                                      no key sets it)
 */
#ifndef INFERGW_TUNABLES_H
#define INFERGW_TUNABLES_H

#include <stddef.h>
#include <stdint.h>

#define GW_HEDGE_OFF  0
#define GW_HEDGE_AUTO (-1)

enum gw_tunable_field {
    GW_TUN_BALANCE_FACTOR = 0,
    GW_TUN_HEDGE_DELAY_MS,
    GW_TUN_HEDGE_BUDGET_PERCENT,
    GW_TUN_HEDGE_EXCLUDE,
    GW_TUN_RETRY_MAX_ATTEMPTS,
    GW_TUN_RETRY_ON,
    GW_TUN_RETRY_BUDGET_PERCENT,
    GW_TUN_PER_TRY_TIMEOUT_MS,
    GW_TUN_ROUTE_HEADER,
    GW_TUN_SLO_TARGET,
    GW_TUN_STREAM_RESUME,
    GW_TUN_COUNT,
};

/* stream_resume: how a committed stream whose replica is lost carries on. */
enum gw_resume_mode { GW_RESUME_OFF = 0, GW_RESUME_REPLAY, GW_RESUME_CONTINUE };

/* "off", "replay", "continue"; NULL out of range. */
const char *gw_resume_mode_name(int mode);
/* The mode named <s>, or -1. */
int gw_resume_mode_parse(const char *s);

struct gw_tunables {
    double balance_factor;
    int32_t hedge_delay_ms; /* GW_HEDGE_OFF, GW_HEDGE_AUTO or milliseconds */
    uint32_t hedge_budget_percent;
    char hedge_exclude[512];
    uint32_t retry_max_attempts;
    uint32_t retry_on; /* bit (1 << code) per gRPC status */
    uint32_t retry_budget_percent;
    uint32_t per_try_timeout_ms;
    char route_header[64];
    uint32_t slo_target_milli; /* objective in thousandths of a percent: 99.9% = 99900 */
    uint8_t stream_resume;     /* enum gw_resume_mode */
    uint32_t set;              /* bit (1 << field) for each field given explicitly */
};

/* The field names, indexed by enum gw_tunable_field. */
extern const char *const gw_tunable_names[GW_TUN_COUNT];

void gw_tunables_defaults(struct gw_tunables *t);
/* Looks up <field>; returns its enum value or -1. */
int gw_tunables_field(const char *field);
/* Validates <value> for <field> and stores it in <t> (marking it set).
 * Returns 0; -1 for an unknown field; -2 for a bad value. In both failure
 * cases <t> is untouched and <err> says what was wrong and what is
 * accepted. */
int gw_tunables_set(struct gw_tunables *t, const char *field, const char *value, char *err,
                    size_t errlen);
/* Writes the current value of <field> in the same syntax gw_tunables_set
 * accepts. Returns the length written (truncated to <cap>-1). */
size_t gw_tunables_format(const struct gw_tunables *t, enum gw_tunable_field f, char *out,
                          size_t cap);
/* Copies into <dst> every field that <over> has set (pool over global). */
void gw_tunables_overlay(struct gw_tunables *dst, const struct gw_tunables *over);

/* Sets <t>'s stream_resume default to the mode named <s> (the gateway's
 * --stream-resume; an unknown name leaves it off), not marking it set. */
void gw_tunables_default_resume(struct gw_tunables *t, const char *s);

#endif
