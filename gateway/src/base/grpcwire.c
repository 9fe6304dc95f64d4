/* SPDX-License-Identifier: Apache-2.0 */
/* grpcwire — the gRPC-over-HTTP/2 wire details the gateway needs.
 *
 * Choices made here:
 *  - grpc-timeout accepts exactly what the spec allows (1 to 8 digits, one
 *    unit, nothing else, leading zeros included); "0n" and friends parse to
 *    0 ns, an already expired deadline, rather than being rejected. Parsing
 *    saturates at UINT64_MAX/2 so a deadline computed as now + timeout can
 *    never overflow.
 *  - Formatting rounds down (truncates) in the finest unit that fits in 8
 *    digits: the next hop never gets more time than the gateway has left, and
 *    since nanoseconds are exact up to 99,999,999 ns, a positive remaining
 *    time is never formatted as 0.
 *  - The framer and the scanner are byte-driven state machines: they keep at
 *    most a 5-byte prefix and a varint in progress, so any chunking of the
 *    stream (one byte at a time included) gives the same result as one call
 *    with everything, which the fuzz targets check.
 *  - The scanner stops at the first top-level field of the first message. It
 *    rejects what no valid serializer writes there (varints over 10 bytes or
 *    64 bits, a tag over 32 bits, field number 0, wire types 3/4/6/7, a field
 *    1 longer than the message, a compressed-flag byte other than 0/1) and a
 *    model name with a NUL in it, which would otherwise route on a prefix of
 *    the name the replica sees.
 *  - The model_name check walks every field of every message, since a later
 *    field 1 (in the same message or the next one of a stream) overrides or
 *    adds to what the scanner saw; length-delimited payloads other than field
 *    1 are skipped by count, so it never buffers a tensor.
 *  - The contiguous field reader (gw_pb_next) is for a message already held
 *    whole; it shares the varint and tag rules with the scans (varint_byte,
 *    pb_tag_error), so all three reject the same bytes.
 */
#include "base/grpcwire.h"

#include <string.h>
#include <strings.h>

/* --- status codes ---------------------------------------------------------- */

static const char *const status_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};
#define STATUS_COUNT ((int)(sizeof(status_names) / sizeof(status_names[0])))

const char *gw_grpc_status_name(int code)
{
    if (code < 0 || code >= STATUS_COUNT)
        return "UNKNOWN_STATUS";
    return status_names[code];
}

int gw_grpc_status_parse(const char *s)
{
    int v = 0;
    size_t i;

    if (!s || !*s)
        return -1;
    if (s[0] >= '0' && s[0] <= '9') {
        /* Digits only; stop as soon as the value leaves 0..16 so long digit
         * strings cannot overflow. */
        for (i = 0; s[i]; i++) {
            if (s[i] < '0' || s[i] > '9')
                return -1;
            v = v * 10 + (s[i] - '0');
            if (v >= STATUS_COUNT)
                return -1;
        }
        return v;
    }
    for (v = 0; v < STATUS_COUNT; v++)
        if (strcasecmp(s, status_names[v]) == 0)
            return v;
    return -1;
}

/* --- grpc-timeout ------------------------------------------------------------ */

#define TIMEOUT_MAX_DIGITS 8
#define TIMEOUT_MAX_VALUE  99999999u
#define TIMEOUT_SATURATE   (UINT64_MAX / 2)

/* Units from finest to coarsest; format walks them in this order. */
static const struct {
    char unit;
    uint64_t ns;
} timeout_units[] = {
    {'n', 1ull},
    {'u', 1000ull},
    {'m', 1000000ull},
    {'S', 1000000000ull},
    {'M', 60ull * 1000000000ull},
    {'H', 3600ull * 1000000000ull},
};
#define TIMEOUT_UNIT_COUNT (sizeof(timeout_units) / sizeof(timeout_units[0]))

int gw_grpc_timeout_parse(const char *s, size_t len, uint64_t *out_ns)
{
    uint64_t v = 0, mult = 0;
    size_t i;

    if (!s || len < 2 || len > TIMEOUT_MAX_DIGITS + 1)
        return -1;
    for (i = 0; i < len - 1; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    for (i = 0; i < TIMEOUT_UNIT_COUNT; i++)
        if (timeout_units[i].unit == s[len - 1])
            mult = timeout_units[i].ns;
    if (mult == 0)
        return -1;
    *out_ns = v > TIMEOUT_SATURATE / mult ? TIMEOUT_SATURATE : v * mult;
    return 0;
}

size_t gw_grpc_timeout_format(uint64_t ns, char *buf)
{
    char digits[24];
    uint64_t v = 0;
    char unit = 'H';
    size_t i, nd = 0, len = 0;

    for (i = 0; i < TIMEOUT_UNIT_COUNT; i++) {
        v = ns / timeout_units[i].ns;
        unit = timeout_units[i].unit;
        if (v <= TIMEOUT_MAX_VALUE)
            break;
    }
    /* UINT64_MAX ns is about 5.1 million hours, so hours always fit. */
    do {
        digits[nd++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (nd)
        buf[len++] = digits[--nd];
    buf[len++] = unit;
    buf[len] = '\0';
    return len;
}

/* --- grpc-message -------------------------------------------------------------- */

size_t gw_grpc_message_encode(const char *msg, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t len = 0;

    if (cap == 0)
        return 0;
    for (; *msg; msg++) {
        unsigned char c = (unsigned char)*msg;

        if (c >= 0x20 && c <= 0x7e && c != '%') {
            if (len + 1 > cap - 1)
                break;
            out[len++] = (char)c;
        } else {
            if (len + 3 > cap - 1)
                break;
            out[len++] = '%';
            out[len++] = hex[c >> 4];
            out[len++] = hex[c & 0xf];
        }
    }
    out[len] = '\0';
    return len;
}

/* --- message framer -------------------------------------------------------------- */

static uint32_t load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

void gw_framer_init(struct gw_framer *f)
{
    memset(f, 0, sizeof(*f));
}

/* A framer that failed keeps hdr_have at 5 (a complete prefix never survives
 * a successful call), so feeding it again fails again instead of reading
 * payload bytes as a prefix. */
int gw_framer_feed(struct gw_framer *f, const uint8_t *p, size_t n, uint32_t max_len)
{
    if (f->hdr_have == 5)
        return -1;
    while (n) {
        if (f->remaining) {
            size_t take = n < f->remaining ? n : f->remaining;

            f->remaining -= (uint32_t)take;
            p += take;
            n -= take;
            continue;
        }
        f->hdr[f->hdr_have++] = *p++;
        n--;
        if (f->hdr_have < 5)
            continue;
        f->last_len = load_be32(f->hdr + 1);
        f->messages++;
        if (f->last_len > max_len)
            return -1;
        f->remaining = f->last_len;
        f->hdr_have = 0;
    }
    return 0;
}

int gw_framer_at_boundary(const struct gw_framer *f)
{
    return f->hdr_have == 0 && f->remaining == 0;
}

/* --- model_name scanner ------------------------------------------------------------ */

enum scan_state {
    SCAN_PREFIX = 0, /* collecting the 5-byte message prefix */
    SCAN_TAG,        /* reading the first field's tag varint */
    SCAN_LEN,        /* reading field 1's length varint */
    SCAN_NAME,       /* copying field 1's bytes */
    SCAN_DONE,       /* s->result holds the final answer */
};

#define PB_WIRE_LEN     2
#define PB_VARINT_BYTES 10

void gw_model_scan_init(struct gw_model_scan *s)
{
    memset(s, 0, sizeof(*s));
    s->state = SCAN_PREFIX;
    s->result = GW_SCAN_MORE;
}

static int scan_end(struct gw_model_scan *s, int result, const char *error)
{
    s->state = SCAN_DONE;
    s->result = result;
    s->error = error;
    return result;
}

/* Adds byte <b> to the varint in progress <*v>. Returns 1 when the varint is
 * complete, 0 when more bytes are needed, or -1 when it is over 10 bytes or
 * over 64 bits. */
static int varint_byte(uint64_t *v, int *shift, uint8_t b)
{
    /* The 10th byte carries bit 63 only, and must end the varint. */
    if (*shift == 7 * (PB_VARINT_BYTES - 1) && b > 1)
        return -1;
    *v |= (uint64_t)(b & 0x7f) << *shift;
    *shift += 7;
    return (b & 0x80) ? 0 : 1;
}

/* The error for a tag no valid serializer writes, or NULL when it is valid. */
static const char *pb_tag_error(uint64_t tag)
{
    unsigned wire = (unsigned)(tag & 7);

    if (tag > UINT32_MAX)
        return "field tag over 32 bits";
    if ((tag >> 3) == 0)
        return "field number 0";
    if (wire == 3 || wire == 4 || wire > 5)
        return "invalid wire type";
    return NULL;
}

static int scan_varint_byte(struct gw_model_scan *s, uint8_t b)
{
    return varint_byte(&s->varint, &s->varint_shift, b);
}

/* Handles a completed prefix: decides whether there is a message to scan. */
static int scan_on_prefix(struct gw_model_scan *s)
{
    if (s->hdr[0] > 1)
        return scan_end(s, GW_SCAN_ERROR, "bad compressed-flag byte");
    if (s->hdr[0] == 1)
        return scan_end(s, GW_SCAN_ABSENT, NULL);
    s->msg_left = load_be32(s->hdr + 1);
    if (s->msg_left == 0)
        return scan_end(s, GW_SCAN_ABSENT, NULL);
    s->state = SCAN_TAG;
    return GW_SCAN_MORE;
}

/* Handles a completed tag varint. */
static int scan_on_tag(struct gw_model_scan *s)
{
    uint64_t tag = s->varint;
    unsigned wire = (unsigned)(tag & 7);
    const char *bad = pb_tag_error(tag);

    if (bad)
        return scan_end(s, GW_SCAN_ERROR, bad);
    if ((tag >> 3) != 1 || wire != PB_WIRE_LEN)
        return scan_end(s, GW_SCAN_ABSENT, NULL);
    if (s->msg_left == 0)
        return scan_end(s, GW_SCAN_ERROR, "model_name cut by the end of the message");
    s->varint = 0;
    s->varint_shift = 0;
    s->state = SCAN_LEN;
    return GW_SCAN_MORE;
}

/* Handles a completed length varint of field 1. */
static int scan_on_len(struct gw_model_scan *s)
{
    if (s->varint > s->msg_left)
        return scan_end(s, GW_SCAN_ERROR, "model_name longer than its message");
    if (s->varint > GW_MODEL_NAME_MAX)
        return scan_end(s, GW_SCAN_ERROR, "model_name too long");
    /* proto3 does not tell an empty string from an unset one. */
    if (s->varint == 0)
        return scan_end(s, GW_SCAN_ABSENT, NULL);
    s->name_len = (uint32_t)s->varint;
    s->name_have = 0;
    s->state = SCAN_NAME;
    return GW_SCAN_MORE;
}

/* Reads protobuf bytes of the first message (the caller guarantees
 * s->msg_left > 0) in states TAG and LEN, one byte at a time. */
static int scan_varint_step(struct gw_model_scan *s, uint8_t b)
{
    int r;

    s->msg_left--;
    r = scan_varint_byte(s, b);
    if (r < 0)
        return scan_end(s, GW_SCAN_ERROR, "varint over 10 bytes or 64 bits");
    if (r == 0) {
        if (s->msg_left == 0)
            return scan_end(s, GW_SCAN_ERROR, "varint cut by the end of the message");
        return GW_SCAN_MORE;
    }
    return s->state == SCAN_TAG ? scan_on_tag(s) : scan_on_len(s);
}

int gw_model_scan_feed(struct gw_model_scan *s, const uint8_t *p, size_t n, size_t *consumed)
{
    size_t i = 0;

    while (i < n && s->state != SCAN_DONE) {
        switch (s->state) {
        case SCAN_PREFIX:
            s->hdr[s->hdr_have++] = p[i++];
            if (s->hdr_have == 5)
                scan_on_prefix(s);
            break;
        case SCAN_TAG:
        case SCAN_LEN:
            scan_varint_step(s, p[i++]);
            break;
        case SCAN_NAME: {
            size_t take = s->name_len - s->name_have;
            const uint8_t *nul;

            if (take > n - i)
                take = n - i;
            nul = memchr(p + i, '\0', take);
            if (nul) {
                i += (size_t)(nul - (p + i)) + 1;
                scan_end(s, GW_SCAN_ERROR, "model_name contains a NUL byte");
                break;
            }
            memcpy(s->name + s->name_have, p + i, take);
            s->name_have += (uint32_t)take;
            s->msg_left -= (uint32_t)take;
            i += take;
            if (s->name_have == s->name_len) {
                s->name[s->name_len] = '\0';
                scan_end(s, GW_SCAN_FOUND, NULL);
            }
            break;
        }
        default:
            break;
        }
    }
    if (consumed)
        *consumed = i;
    return s->result;
}

int gw_model_scan_finish(struct gw_model_scan *s)
{
    if (s->state != SCAN_DONE)
        scan_end(s, GW_SCAN_ABSENT, NULL);
    return s->result;
}

/* --- model_name check ------------------------------------------------------------- */

enum check_state {
    CK_PREFIX = 0, /* collecting a 5-byte message prefix */
    CK_TAG,        /* reading a field tag varint */
    CK_VARINT,     /* skipping a varint field's value */
    CK_LEN,        /* reading a length-delimited field's length varint */
    CK_NAME,       /* copying field 1's bytes */
    CK_SKIP,       /* skipping k->skip payload bytes of a field */
    CK_SKIP_MSG,   /* skipping the rest of a compressed message */
    CK_ERROR,      /* k->error says why; sticky */
};

void gw_model_check_init(struct gw_model_check *k)
{
    memset(k, 0, sizeof(*k));
    k->state = CK_PREFIX;
}

int gw_model_check_at_boundary(const struct gw_model_check *k)
{
    return k->state == CK_PREFIX && k->hdr_have == 0;
}

static int check_error(struct gw_model_check *k, const char *error)
{
    k->state = CK_ERROR;
    k->error = error;
    return GW_CHECK_ERROR;
}

/* A field ended: the next byte is a tag, or the next message's prefix. */
static void check_field_done(struct gw_model_check *k)
{
    k->state = k->msg_left ? CK_TAG : CK_PREFIX;
    k->varint = 0;
    k->varint_shift = 0;
}

/* Reads one byte of a varint (tag, value or length) of the current message.
 * Returns 1 when it is complete, 0 when more bytes are needed, -1 on error. */
static int check_varint_step(struct gw_model_check *k, uint8_t b)
{
    k->msg_left--;
    int r = varint_byte(&k->varint, &k->varint_shift, b);
    if (r < 0) {
        check_error(k, "varint over 10 bytes or 64 bits");
        return -1;
    }
    if (r == 0 && k->msg_left == 0) {
        check_error(k, "varint cut by the end of the message");
        return -1;
    }
    return r;
}

/* A tag is complete: decides how the field's payload is read. */
static int check_on_tag(struct gw_model_check *k)
{
    uint64_t tag = k->varint;
    unsigned wire = (unsigned)(tag & 7);
    const char *bad = pb_tag_error(tag);
    if (bad)
        return check_error(k, bad);
    k->field = tag >> 3;
    k->varint = 0;
    k->varint_shift = 0;
    switch (wire) {
    case 0:
        k->state = CK_VARINT;
        break;
    case 1:
    case 5:
        k->skip = wire == 1 ? 8 : 4;
        k->state = CK_SKIP;
        break;
    case PB_WIRE_LEN:
        k->state = CK_LEN;
        break;
    default: /* not reached: pb_tag_error rejects the other wire types */
        return check_error(k, "invalid wire type");
    }
    if (k->msg_left < (k->state == CK_SKIP ? k->skip : 1))
        return check_error(k, "field cut by the end of the message");
    return GW_CHECK_MORE;
}

/* A length is complete: field 1 is copied, anything else skipped. */
static int check_on_len(struct gw_model_check *k)
{
    if (k->varint > k->msg_left)
        return check_error(k, "field longer than its message");
    if (k->field != 1) {
        k->skip = k->varint;
        if (k->skip == 0)
            check_field_done(k);
        else
            k->state = CK_SKIP;
        return GW_CHECK_MORE;
    }
    if (k->varint > GW_MODEL_NAME_MAX)
        return check_error(k, "model_name too long");
    k->name_len = (uint32_t)k->varint;
    k->name_have = 0;
    if (k->name_len == 0) {
        k->name[0] = '\0';
        check_field_done(k);
        return GW_CHECK_NAME;
    }
    k->state = CK_NAME;
    return GW_CHECK_MORE;
}

int gw_model_check_feed(struct gw_model_check *k, const uint8_t *p, size_t n, size_t *consumed)
{
    size_t i = 0;
    int ev = GW_CHECK_MORE;

    while (i < n && ev == GW_CHECK_MORE && k->state != CK_ERROR) {
        switch (k->state) {
        case CK_PREFIX:
            k->hdr[k->hdr_have++] = p[i++];
            if (k->hdr_have < 5)
                break;
            k->hdr_have = 0;
            if (k->hdr[0] > 1) {
                ev = check_error(k, "bad compressed-flag byte");
                break;
            }
            k->messages++;
            k->msg_left = load_be32(k->hdr + 1);
            if (k->hdr[0] == 1) {
                k->state = k->msg_left ? CK_SKIP_MSG : CK_PREFIX;
                ev = GW_CHECK_COMPRESSED;
                break;
            }
            check_field_done(k);
            break;
        case CK_TAG: {
            int r = check_varint_step(k, p[i++]);
            if (r < 0)
                ev = GW_CHECK_ERROR;
            else if (r > 0)
                ev = check_on_tag(k);
            break;
        }
        case CK_VARINT: {
            int r = check_varint_step(k, p[i++]);
            if (r < 0)
                ev = GW_CHECK_ERROR;
            else if (r > 0)
                check_field_done(k);
            break;
        }
        case CK_LEN: {
            int r = check_varint_step(k, p[i++]);
            if (r < 0)
                ev = GW_CHECK_ERROR;
            else if (r > 0)
                ev = check_on_len(k);
            break;
        }
        case CK_NAME: {
            size_t take = k->name_len - k->name_have;
            if (take > n - i)
                take = n - i;
            if (memchr(p + i, '\0', take)) {
                ev = check_error(k, "model_name contains a NUL byte");
                break;
            }
            memcpy(k->name + k->name_have, p + i, take);
            k->name_have += (uint32_t)take;
            k->msg_left -= (uint32_t)take;
            i += take;
            if (k->name_have == k->name_len) {
                k->name[k->name_len] = '\0';
                check_field_done(k);
                ev = GW_CHECK_NAME;
            }
            break;
        }
        case CK_SKIP:
        case CK_SKIP_MSG: {
            uint64_t left = k->state == CK_SKIP ? k->skip : k->msg_left;
            size_t take = left < n - i ? (size_t)left : n - i;
            k->msg_left -= (uint32_t)take;
            i += take;
            if (k->state == CK_SKIP) {
                k->skip -= take;
                if (k->skip == 0)
                    check_field_done(k);
            } else if (k->msg_left == 0) {
                k->state = CK_PREFIX;
            }
            break;
        }
        default:
            break;
        }
    }
    if (consumed)
        *consumed = k->state == CK_ERROR ? n : i;
    return k->state == CK_ERROR ? GW_CHECK_ERROR : ev;
}

int gw_grpc_status_from_http(int http_status)
{
    switch (http_status) {
    case 400:
        return GW_GRPC_INTERNAL;
    case 401:
        return GW_GRPC_UNAUTHENTICATED;
    case 403:
        return GW_GRPC_PERMISSION_DENIED;
    case 404:
        return GW_GRPC_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
        return GW_GRPC_UNAVAILABLE;
    default:
        return GW_GRPC_UNKNOWN;
    }
}

/* --- protobuf fields over contiguous bytes ----------------------------------------- */

int gw_pb_varint(const uint8_t *p, size_t n, size_t *pos, uint64_t *v)
{
    uint64_t acc = 0;
    int shift = 0;

    for (size_t i = *pos; i < n; i++) {
        int r = varint_byte(&acc, &shift, p[i]);
        if (r < 0)
            return -1;
        if (r == 1) {
            *v = acc;
            *pos = i + 1;
            return 0;
        }
    }
    return -1;
}

static uint64_t load_le(const uint8_t *p, size_t len)
{
    uint64_t v = 0;

    for (size_t i = len; i-- > 0;)
        v = v << 8 | p[i];
    return v;
}

/* Reads the payload of a field whose tag is <tag>, at p[*at]. */
static const char *pb_payload(const uint8_t *p, size_t n, size_t *at, uint64_t tag,
                              struct gw_pb_field *f)
{
    uint64_t len;

    f->number = (uint32_t)(tag >> 3);
    f->wire = (unsigned)(tag & 7);
    f->value = 0;
    f->data = NULL;
    f->len = 0;
    switch (f->wire) {
    case GW_PB_VARINT:
        return gw_pb_varint(p, n, at, &f->value) < 0 ? "varint over 10 bytes or 64 bits or cut"
                                                     : NULL;
    case GW_PB_FIXED64:
    case GW_PB_FIXED32:
        len = f->wire == GW_PB_FIXED64 ? 8 : 4;
        if (n - *at < len)
            return "field cut by the end of the message";
        f->value = load_le(p + *at, (size_t)len);
        *at += (size_t)len;
        return NULL;
    default: /* GW_PB_LEN: pb_tag_error let no other wire type through */
        if (gw_pb_varint(p, n, at, &len) < 0)
            return "varint over 10 bytes or 64 bits or cut";
        if (len > n - *at)
            return "field longer than its message";
        f->data = p + *at;
        f->len = (size_t)len;
        *at += (size_t)len;
        return NULL;
    }
}

int gw_pb_next(const uint8_t *p, size_t n, size_t *pos, struct gw_pb_field *f, const char **error)
{
    size_t at = *pos;
    uint64_t tag;
    struct gw_pb_field got;
    const char *bad;

    if (at >= n)
        return 0;
    if (gw_pb_varint(p, n, &at, &tag) < 0)
        bad = "varint over 10 bytes or 64 bits or cut";
    else if (!(bad = pb_tag_error(tag)))
        bad = pb_payload(p, n, &at, tag, &got);
    if (bad) {
        *error = bad;
        return -1;
    }
    *f = got;
    *pos = at;
    return 1;
}
