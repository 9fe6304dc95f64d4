/* SPDX-License-Identifier: Apache-2.0 */
/* stopper — a stoppable helper thread; see stopper.h. */
#include "base/stopper.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

int gw_stopper_init(struct gw_stopper *s)
{
    s->started = 0;
    atomic_store(&s->stop, 0);
    s->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return s->fd < 0 ? -errno : 0;
}

int gw_stopper_start(struct gw_stopper *s, void *(*fn)(void *), void *arg)
{
    int rc = pthread_create(&s->thread, NULL, fn, arg);
    if (rc == 0)
        s->started = 1;
    return rc;
}

int gw_stopper_wait(struct gw_stopper *s, int ms)
{
    struct pollfd p = {.fd = s->fd, .events = POLLIN};
    poll(&p, 1, ms);
    return atomic_load(&s->stop);
}

void gw_stopper_stop(struct gw_stopper *s)
{
    if (s->started) {
        atomic_store(&s->stop, 1);
        uint64_t one = 1;
        ssize_t w = write(s->fd, &one, sizeof(one));
        (void)w;
        pthread_join(s->thread, NULL);
        s->started = 0;
    }
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}
