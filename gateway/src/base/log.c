/* SPDX-License-Identifier: Apache-2.0 */
/* log — JSON lines on stderr; see log.h. Formatting goes through jansson so
 * that values (model names, addresses, messages from peers) are always
 * escaped correctly; logging happens on events, not per call, so its
 * allocations are off the hot path. */
#include "base/log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static enum gw_log_level min_level = GW_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void gw_log_set_level(enum gw_log_level level)
{
    min_level = level;
}

int gw_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

int gw_log_enabled(enum gw_log_level level)
{
    return level >= min_level;
}

void gw_log(enum gw_log_level level, const char *event, const char *fmt, ...)
{
    if (level < min_level) {
        /* An "o" value hands its reference over: take it and drop it even
         * when the line is not written, or it leaks ('o' appears in a pack
         * format only as that conversion). */
        if (fmt && strchr(fmt, 'o')) {
            va_list ap;
            va_start(ap, fmt);
            json_decref(json_vpack_ex(NULL, 0, fmt, ap));
            va_end(ap);
        }
        return;
    }
    json_t *obj = NULL;
    json_error_t err;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        obj = json_vpack_ex(&err, 0, fmt, ap);
        va_end(ap);
        if (!obj) {
            obj = json_object();
            json_object_set_new(obj, "log_format_error", json_string(err.text));
        }
    } else {
        obj = json_object();
    }
    if (!obj)
        return;

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[64];
    snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);

    /* Put time, level and event first so the line reads well in a terminal. */
    json_t *line =
        json_pack("{s:s, s:s, s:s}", "time", when, "level", level_names[level], "event", event);
    if (line) {
        json_object_update(line, obj);
        char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (text) {
            size_t len = strlen(text);
            text[len] = '\n'; /* json_dumps leaves room for the NUL we overwrite */
            ssize_t r = write(STDERR_FILENO, text, len + 1);
            (void)r;
            free(text);
        }
        json_decref(line);
    }
    json_decref(obj);
}

uint64_t gw_log_limit_pass(struct gw_log_limit *l, uint64_t now_ns)
{
    l->held++;
    if (now_ns < l->next_ns)
        return 0;
    l->next_ns = now_ns + 1000000000ULL;
    uint64_t n = l->held;
    l->held = 0;
    return n;
}
