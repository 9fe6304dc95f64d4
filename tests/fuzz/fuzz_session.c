/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for a whole client session: the input, after the HTTP/2
 * client preface the target puts in front of it (so every input gets past
 * the preface check), is written into a real client connection of a real
 * worker (h2srv, conn, the call engine, authentication with one tenant and
 * its API key, routing, upstream), whose pool
 * has two in-process replicas that answer every call (engine_rig.h). The
 * client then half-closes; the target steps the loop until the gateway has
 * closed the connection, the worker holds no client connection and no
 * upstream stream, and tears it all down. ASan/UBSan catch memory errors,
 * LeakSanitizer a call or buffer left behind; the checks below catch a
 * connection the gateway never closes and a call left on an upstream
 * stream. */
#include "engine_rig.h"
#include "fuzz.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const uint8_t preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* Authentication is on, with one tenant allowed model demo only and its API
 * key (the seeds send "authorization: Bearer igw_fff...f", 43 f's), so
 * inputs reach the authentication chain, the tenant's model list and the
 * model_name check as well as calls that fail them. */
static int write_file(char *path, const char *text)
{
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    size_t len = strlen(text);
    int ok = write(fd, text, len) == (ssize_t)len;
    close(fd);
    return ok ? 0 : -1;
}

static int setup(void)
{
    static char tenants[] = "/tmp/infergw-fuzz-tenants-XXXXXX";
    static char keys[] = "/tmp/infergw-fuzz-keys-XXXXXX";
    if (write_file(tenants, "fuzz models=demo\n") < 0 ||
        write_file(keys, "e08c26052cf4777d2b5f882e6b0d2ab3f8d191a766b2edc8f629a3735e3a13f4 "
                         "tenant=fuzz\n") < 0)
        return -1;
    const char *args[] = {"--auth=on", "--tenants", tenants, "--api-keys", keys, NULL};
    int rc = rig_global_init(args);
    /* Read at start: the files are not needed any more. */
    unlink(tenants);
    unlink(keys);
    return rc;
}
#define PREFACE_LEN (sizeof(preface) - 1)
#define INPUT_MAX   (1 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int inited;
    static struct rig r;
    if (!inited) {
        signal(SIGPIPE, SIG_IGN);
        FUZZ_CHECK(setup() == 0);
        inited = 1;
    }
    if (size > INPUT_MAX)
        return 0;
    uint8_t *buf = malloc(PREFACE_LEN + size);
    FUZZ_CHECK(buf != NULL);
    memcpy(buf, preface, PREFACE_LEN);
    if (size)
        memcpy(buf + PREFACE_LEN, data, size);

    FUZZ_CHECK(rig_open(&r) == 0);
    FUZZ_CHECK(rig_client_raw(&r, buf, PREFACE_LEN + size) == 0);
    FUZZ_CHECK(rig_wait_client(&r, 5000) == 0); /* the gateway closed the connection */
    FUZZ_CHECK(rig_settle(&r, 5000) == 0);      /* no connection, no upstream stream */
    FUZZ_CHECK(r.w.nconns == 0 && r.w.conns == NULL);
    rig_close(&r);
    free(buf);
    return 0;
}
