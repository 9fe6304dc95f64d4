/* SPDX-License-Identifier: Apache-2.0 */
/* log — JSON lines on stderr, one object per event.
 *
 * Each line has "time" (RFC 3339, UTC, milliseconds), "level" and "event",
 * then the fields the caller packs with a jansson format string
 * ("{s:s, s:i}"-style, see json_pack), so every value is escaped by the
 * library. A single write(2) per line keeps lines from different threads
 * whole. Secrets (authorization values, keys) are never passed here.
 * Callable from any thread.
 */
#ifndef INFERGW_LOG_H
#define INFERGW_LOG_H

#include <stdint.h>

enum gw_log_level { GW_LOG_DEBUG = 0, GW_LOG_INFO = 1, GW_LOG_WARN = 2, GW_LOG_ERROR = 3 };

/* Sets the lowest level written (default GW_LOG_INFO). Call before threads start. */
void gw_log_set_level(enum gw_log_level level);
/* Parses "debug" | "info" | "warn" | "error"; returns the level or -1. */
int gw_log_level_parse(const char *s);
int gw_log_enabled(enum gw_log_level level);

/* Logs <event> with the fields described by <fmt> (a json_pack object
 * format such as "{s:s, s:I}", or NULL for none). A format error is itself
 * logged rather than lost. Values passed with "o" are taken over (freed)
 * whether or not the level is written. */
void gw_log(enum gw_log_level level, const char *event, const char *fmt, ...);

/* At most one line a second for an event that can repeat at a peer's will
 * (a limit hit): one per thread and event, zeroed to start. */
struct gw_log_limit {
    uint64_t next_ns; /* no line before this time */
    uint64_t held;    /* occurrences since the last line */
};
/* Counts one occurrence at monotonic time <now_ns>. Returns 0 when no line
 * may be written yet, else the number of occurrences the line written now
 * stands for (this one and those held back since the last line). */
uint64_t gw_log_limit_pass(struct gw_log_limit *l, uint64_t now_ns);

#endif
