/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz — what the fuzz targets and their replay driver share: the libFuzzer
 * entry point and a check that aborts (so both libFuzzer and a ctest replay
 * see a failure) with the condition that did not hold. */
#ifndef INFERGW_FUZZ_H
#define INFERGW_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Three cut points in [0, size], in order, taken from the input itself so
 * that the fuzzer can steer them: targets feed the input in the pieces
 * between them and check that the pieces give what one feed gives. */
static inline void fuzz_cuts3(const uint8_t *data, size_t size, size_t cuts[3])
{
    cuts[0] = data[0] % (size + 1);
    cuts[1] = data[size - 1] % (size + 1);
    cuts[2] = (size * 7 + data[size / 2]) / 11 % (size + 1);
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 3; j++)
            if (cuts[j] < cuts[i]) {
                size_t t = cuts[i];
                cuts[i] = cuts[j];
                cuts[j] = t;
            }
}

#endif
