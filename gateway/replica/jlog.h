/* SPDX-License-Identifier: Apache-2.0 */
/* jlog — JSON lines on stderr for the reference replica.
 *
 * Every line the replica prints is one JSON object on one line, written with
 * a single fwrite and flushed at once, so lines from different threads never
 * interleave and a test reading stderr sees each event as soon as it happens.
 * Strings that come from outside (method paths, model names, the replica id)
 * are escaped here, so callers never build JSON by hand.
 */
#ifndef INFERGW_REPLICA_JLOG_H
#define INFERGW_REPLICA_JLOG_H

#include <stddef.h>

/* Longest value written, escaped; longer ones are cut (the line stays valid
 * JSON). A line holds a few such values, so it never fills the buffer. */
#define RP_JLOG_MAX_VALUE 2048

/* A line under construction. */
struct rp_jline {
    char buf[4 * RP_JLOG_MAX_VALUE];
    size_t len;
    int first;
};

/* Starts a line with {"event":"<event>","replica":"<replica>". */
void rp_jlog_begin(struct rp_jline *l, const char *event, const char *replica);
/* Appends ,"<key>":"<escaped value>". */
void rp_jlog_str(struct rp_jline *l, const char *key, const char *value);
/* Appends ,"<key>":<value> for a number. */
void rp_jlog_num(struct rp_jline *l, const char *key, unsigned long long value);
/* Appends ,"<key>":true or false. */
void rp_jlog_bool(struct rp_jline *l, const char *key, int value);
/* Closes the object, writes the line to stderr and flushes it. Thread-safe. */
void rp_jlog_end(struct rp_jline *l);

/* Routes grpc core's own log messages (errors only) through rp_jlog as
 * {"event":"grpc_log",...} lines so that stderr stays all JSON. */
void rp_jlog_capture_grpc(const char *replica);

#endif
