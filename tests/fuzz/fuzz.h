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

#endif
