/* SPDX-License-Identifier: Apache-2.0 */
/* grpcframe — a test helper shared by test_grpcwire and test_grpcwire_scan:
 * appending a gRPC length-prefixed message to a buffer. */
#ifndef INFERGW_TEST_GRPCFRAME_H
#define INFERGW_TEST_GRPCFRAME_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Appends a gRPC message of <len> bytes of <fill> to buf at *off. */
static inline void put_message(uint8_t *buf, size_t *off, uint8_t flag, uint32_t len, uint8_t fill)
{
    buf[(*off)++] = flag;
    buf[(*off)++] = (uint8_t)(len >> 24);
    buf[(*off)++] = (uint8_t)(len >> 16);
    buf[(*off)++] = (uint8_t)(len >> 8);
    buf[(*off)++] = (uint8_t)len;
    memset(buf + *off, fill, len);
    *off += len;
}

#endif
