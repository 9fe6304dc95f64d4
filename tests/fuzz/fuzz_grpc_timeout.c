/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for grpc-timeout parsing and formatting. Any accepted input is
 * 1 to 8 digits and a unit; formatting any value gives at most 8 digits and
 * a unit, parses back, never to more than the value, and short of it by less
 * than 1e-5 of it (or saturated at the parse cap); a value that went through
 * format and parse once is stable from then on. */
#include "fuzz.h"
#include "base/grpcwire.h"

#include <string.h>

#define CAP (UINT64_MAX / 2)

static int is_unit(char c)
{
    return c && strchr("HMSmun", c) != NULL;
}

/* Formats <ns> and checks everything the header promises about it; returns
 * the value it parses back to. */
static uint64_t check_format(uint64_t ns)
{
    char buf[GW_GRPC_TIMEOUT_BUFLEN];
    size_t len = gw_grpc_timeout_format(ns, buf);
    uint64_t back = 0, floor = ns - ns / 100000;

    FUZZ_CHECK(len >= 2 && len <= 9 && buf[len] == '\0' && strlen(buf) == len);
    for (size_t i = 0; i + 1 < len; i++)
        FUZZ_CHECK(buf[i] >= '0' && buf[i] <= '9');
    FUZZ_CHECK(is_unit(buf[len - 1]));
    FUZZ_CHECK(gw_grpc_timeout_parse(buf, len, &back) == 0);
    FUZZ_CHECK(back <= ns);
    FUZZ_CHECK(back >= (floor < CAP ? floor : CAP));
    FUZZ_CHECK(ns == 0 || back > 0);
    return back;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t ns = 0xdeadbeef, v = 0;

    if (gw_grpc_timeout_parse((const char *)data, size, &ns) == 0) {
        FUZZ_CHECK(size >= 2 && size <= 9 && is_unit((char)data[size - 1]));
        for (size_t i = 0; i + 1 < size; i++)
            FUZZ_CHECK(data[i] >= '0' && data[i] <= '9');
        FUZZ_CHECK(ns <= CAP);
        /* Below the cap a parsed value is exact in its unit, so it survives
         * format and parse unchanged. */
        if (ns < CAP)
            FUZZ_CHECK(check_format(ns) == ns);
    } else {
        FUZZ_CHECK(ns == 0xdeadbeef);
    }

    /* The input's first 8 bytes as a value, shifted so that every scale is
     * reached. */
    for (size_t i = 0; i < size && i < 8; i++)
        v = v << 8 | data[i];
    if (size > 8)
        v >>= data[8] % 64;
    ns = check_format(v);
    if (ns < CAP)
        FUZZ_CHECK(check_format(ns) == ns);
    return 0;
}
