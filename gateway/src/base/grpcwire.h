/* SPDX-License-Identifier: Apache-2.0 */
/* grpcwire — the gRPC-over-HTTP/2 wire details the gateway needs, as pure
 * functions and small incremental state machines (no I/O, no allocation):
 *
 *  - grpc-timeout header parsing and formatting;
 *  - status code names (both directions) and grpc-message percent-encoding;
 *  - a message framer that follows the 5-byte length prefixes of a DATA
 *    stream chunk by chunk, to enforce the message size limit and know
 *    where messages start and end;
 *  - the model_name scanner: reads field 1 (string) of the first message's
 *    top-level protobuf fields as bytes arrive, without buffering the message
 *    (KServe ModelInferRequest.model_name, ModelReadyRequest.name and
 *    ModelMetadataRequest.name are all field 1);
 *  - the model_name check: walks every top-level field of every message of a
 *    request stream, skipping payloads without buffering them, and reports
 *    each field 1 (the model a replica runs: protobuf parsers keep the last
 *    of repeated values, so every occurrence counts);
 *  - a protobuf field reader over contiguous bytes (a whole message already
 *    held in memory), with the same tag and varint rules as the two scans
 *    above, for readers that look inside nested messages (route/prefix.c).
 *
 * Everything here is fuzzed (tests/fuzz) and unit-tested (tests/unit).
 */
#ifndef INFERGW_GRPCWIRE_H
#define INFERGW_GRPCWIRE_H

#include <stddef.h>
#include <stdint.h>

/* gRPC status codes. */
enum gw_grpc_status {
    GW_GRPC_OK = 0,
    GW_GRPC_CANCELLED = 1,
    GW_GRPC_UNKNOWN = 2,
    GW_GRPC_INVALID_ARGUMENT = 3,
    GW_GRPC_DEADLINE_EXCEEDED = 4,
    GW_GRPC_NOT_FOUND = 5,
    GW_GRPC_ALREADY_EXISTS = 6,
    GW_GRPC_PERMISSION_DENIED = 7,
    GW_GRPC_RESOURCE_EXHAUSTED = 8,
    GW_GRPC_FAILED_PRECONDITION = 9,
    GW_GRPC_ABORTED = 10,
    GW_GRPC_OUT_OF_RANGE = 11,
    GW_GRPC_UNIMPLEMENTED = 12,
    GW_GRPC_INTERNAL = 13,
    GW_GRPC_UNAVAILABLE = 14,
    GW_GRPC_DATA_LOSS = 15,
    GW_GRPC_UNAUTHENTICATED = 16,
};

/* "OK", "CANCELLED", ... ; "UNKNOWN_STATUS" for codes outside 0..16. */
const char *gw_grpc_status_name(int code);
/* The gRPC status a client reports for an HTTP response status without
 * grpc-status (gRPC's HTTP-to-gRPC status mapping): 400 INTERNAL,
 * 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED,
 * 429/502/503/504 UNAVAILABLE, anything else UNKNOWN. */
int gw_grpc_status_from_http(int http_status);
/* Parses a status given as a name ("UNAVAILABLE", case-insensitive) or a
 * decimal number 0..16. Returns the code, or -1 when it is neither. */
int gw_grpc_status_parse(const char *s);

/* Parses a grpc-timeout value (1 to 8 ASCII digits followed by one unit of
 * H M S m u n, per the gRPC HTTP/2 spec; nothing else, no spaces) into
 * nanoseconds, saturating at UINT64_MAX/2. A zero value parses to 0 (an
 * expired deadline). Returns 0 and sets *out_ns, or -1 when malformed
 * (out_ns untouched). <s> need not be NUL-terminated. */
int gw_grpc_timeout_parse(const char *s, size_t len, uint64_t *out_ns);
/* Formats <ns> as a grpc-timeout value of at most 8 digits, choosing the
 * finest unit that fits and rounding down within it, so the receiver never
 * sees more time than there is (0 ns gives "0n"; a positive <ns> never gives
 * 0, as "n" is exact below 100 ms). Writes a NUL-terminated string to <buf>
 * (at least GW_GRPC_TIMEOUT_BUFLEN bytes) and returns its length. */
#define GW_GRPC_TIMEOUT_BUFLEN 16
size_t gw_grpc_timeout_format(uint64_t ns, char *buf);

/* Percent-encodes <msg> for the grpc-message header (bytes outside 0x20..0x7E
 * and '%' become %XX). Writes at most <cap>-1 bytes plus a NUL, never cutting
 * an escape in half, and returns the length written. */
size_t gw_grpc_message_encode(const char *msg, char *out, size_t cap);

/* --- message framer ------------------------------------------------------ */
struct gw_framer {
    uint8_t hdr[5];
    uint8_t hdr_have;   /* bytes of the current prefix seen, 0..5 */
    uint32_t remaining; /* payload bytes still to come of the current message */
    uint64_t messages;  /* messages whose prefix has been seen */
    uint32_t last_len;  /* length of the latest message prefix seen */
};
void gw_framer_init(struct gw_framer *f);
/* Follows <n> bytes of a gRPC DATA stream. Returns 0, or -1 as soon as a
 * message prefix announces a length above <max_len> (f->last_len holds it;
 * the framer must not be fed again: if it is, it returns -1 again). */
int gw_framer_feed(struct gw_framer *f, const uint8_t *p, size_t n, uint32_t max_len);
/* 1 when the stream is between messages (no partial prefix or payload). */
int gw_framer_at_boundary(const struct gw_framer *f);

/* --- model_name scanner -------------------------------------------------- */
#define GW_MODEL_NAME_MAX 255
enum gw_scan_result {
    GW_SCAN_MORE = 0,   /* need more bytes */
    GW_SCAN_FOUND = 1,  /* s->name / s->name_len hold the model name */
    GW_SCAN_ABSENT = 2, /* the first message has no leading non-empty field 1 (or is compressed) */
    GW_SCAN_ERROR = 3,  /* malformed framing or protobuf, a name over GW_MODEL_NAME_MAX or with
                           a NUL byte; s->error says which */
};
struct gw_model_scan {
    int state;
    uint32_t msg_left; /* bytes of the first message not yet scanned */
    uint8_t hdr[5];
    uint8_t hdr_have;
    uint64_t varint;
    int varint_shift;
    uint32_t name_len;
    uint32_t name_have;
    int result;
    const char *error;                /* static string, set with GW_SCAN_ERROR */
    char name[GW_MODEL_NAME_MAX + 1]; /* NUL-terminated when FOUND */
};
void gw_model_scan_init(struct gw_model_scan *s);
/* Feeds the next <n> bytes of the request DATA stream (gRPC framing
 * included). The scan reads only the first message's top-level fields and
 * stops at the first one: if it is field 1 with wire type 2 the result is
 * FOUND; any other leading field, an empty first message, an empty field 1
 * (proto3 cannot tell it from an unset one), or a compressed message give
 * ABSENT (serializers write fields in number order, so a model_name that is
 * not first is not looked for, which keeps the scan O(1) in memory and never
 * waits for a large tensor). ERROR: compressed-flag byte other than 0/1, a
 * varint over 10 bytes or 64 bits, a tag over 32 bits, field number 0, wire
 * type 3/4/6/7, a varint or field 1 running past the message, a name over
 * GW_MODEL_NAME_MAX bytes or containing a NUL. The result does not depend on
 * how the stream is cut into calls. Once a result other than MORE is
 * returned, further calls return it again and consume nothing.
 * <consumed> (may be NULL) receives how many bytes of <p> were read. */
int gw_model_scan_feed(struct gw_model_scan *s, const uint8_t *p, size_t n, size_t *consumed);
/* Called at END_STREAM: turns a pending MORE into ABSENT (no message, or a
 * truncated one) and returns the final result. */
int gw_model_scan_finish(struct gw_model_scan *s);

/* --- model_name check ------------------------------------------------------ */
enum gw_check_result {
    GW_CHECK_MORE = 0,       /* every byte given was read, nothing to report */
    GW_CHECK_NAME = 1,       /* k->name (k->name_len bytes, NUL-terminated) is a field 1 of message
                                k->messages */
    GW_CHECK_COMPRESSED = 2, /* message k->messages is compressed: its fields cannot be read */
    GW_CHECK_ERROR = 3,      /* malformed framing or protobuf, or a field 1 over GW_MODEL_NAME_MAX
                                bytes or with a NUL byte; k->error says which */
};
struct gw_model_check {
    int state;
    uint8_t hdr[5];
    uint8_t hdr_have;
    uint32_t msg_left; /* bytes of the current message not yet read */
    uint64_t varint;
    int varint_shift;
    uint64_t skip;     /* bytes of the current field's payload still to skip */
    uint64_t field;    /* field number of the field being read */
    uint64_t messages; /* messages whose prefix has been read (1-based index of the current one) */
    uint32_t name_len;
    uint32_t name_have;
    const char *error; /* static string, set with GW_CHECK_ERROR */
    char name[GW_MODEL_NAME_MAX + 1];
};
void gw_model_check_init(struct gw_model_check *k);
/* Reads the next <n> bytes of the request DATA stream (gRPC framing
 * included) up to the next event: every top-level field of every message is
 * walked (varint, fixed 32/64 and length-delimited payloads are skipped, only
 * field 1 of wire type 2 is copied), so memory stays O(1) whatever the
 * message sizes. Returns NAME once per field 1, COMPRESSED once per message
 * with the compressed flag (its payload is then skipped), MORE when all of
 * <p> was read without an event, or ERROR (sticky: compressed-flag byte other
 * than 0/1, varint over 10 bytes or 64 bits, tag over 32 bits, field number
 * 0, wire type 3/4/6/7, a field running past its message, a field 1 over
 * GW_MODEL_NAME_MAX bytes or with a NUL). <consumed> receives how many bytes
 * of <p> were read, the event's last byte included; call again with the rest.
 * Events do not depend on how the stream is cut into calls. */
int gw_model_check_feed(struct gw_model_check *k, const uint8_t *p, size_t n, size_t *consumed);
/* 1 when the stream is between messages. */
int gw_model_check_at_boundary(const struct gw_model_check *k);

/* --- protobuf fields over contiguous bytes ----------------------------------- */
#define GW_PB_VARINT  0
#define GW_PB_FIXED64 1
#define GW_PB_LEN     2
#define GW_PB_FIXED32 5
struct gw_pb_field {
    uint32_t number;     /* field number, >= 1 */
    unsigned wire;       /* GW_PB_VARINT, GW_PB_FIXED64, GW_PB_LEN or GW_PB_FIXED32 */
    uint64_t value;      /* VARINT: the value; FIXED64/FIXED32: the little-endian value */
    const uint8_t *data; /* LEN: the payload (borrowed from the buffer read), else NULL */
    size_t len;          /* LEN: payload length, else 0 */
};
/* Reads one varint at p[*pos], p[n] being the end. Returns 0, *v set and *pos
 * past it; or -1 (both untouched) when it runs past <n> or is over 10 bytes
 * or 64 bits. */
int gw_pb_varint(const uint8_t *p, size_t n, size_t *pos, uint64_t *v);
/* Reads the field at p[*pos] of a message held whole in p[0..n): tag, then
 * its payload (not copied: f->data points into <p>). Returns 1 with *f set
 * and *pos past the field, 0 at the end (*pos == n), or -1 with *error set
 * (a static string; *pos and *f untouched) for what the scans above reject:
 * a varint over 10 bytes or 64 bits or cut by the end, a tag over 32 bits,
 * field number 0, wire type 3/4/6/7, a payload running past <n>. */
int gw_pb_next(const uint8_t *p, size_t n, size_t *pos, struct gw_pb_field *f, const char **error);

#endif
