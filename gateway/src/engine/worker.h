/* SPDX-License-Identifier: Apache-2.0 */
/* worker — one thread = one epoll loop = one share of the gateway.
 *
 * A worker owns its listening socket (SO_REUSEPORT on the shared --listen
 * address, so the kernel spreads new client connections over workers), the
 * client connections it accepted, the calls on them, and its own upstream
 * pool of HTTP/2 connections to every replica. A call and all its attempts
 * live on one worker, so the data path takes no lock. Other threads talk to a
 * worker only through gw_worker_drain() and gw_worker_offer_routes() (an
 * atomic hand-over plus an eventfd wake-up); the worker switches to an
 * offered routing snapshot between events, never in the middle of one.
 * A reloaded TLS certificate arrives the same way (gw_worker_offer_tls): a
 * new SSL_CTX reference swapped in atomically, taken up before the next
 * accept (or, for replicas, at the next wake-up), while connections made
 * with the old context keep theirs.
 *
 * The worker sits above the data path: struct gw_worker and its shared
 * helpers are in wstate.h (what h2srv, call, upstream and hcheck include);
 * this module wires them together and registers the call engine's stream
 * callbacks with h2srv (gw_call_srv_ops).
 */
#ifndef INFERGW_WORKER_H
#define INFERGW_WORKER_H

#include <openssl/ssl.h>

#include "engine/wstate.h"

/* How often worker 0 hands free heap pages back to the kernel (malloc_trim). */
#define GW_TRIM_MS 10000

/* Prepares <w> (loop, listener, upstream pool, nghttp2 callbacks) with the
 * initial snapshot <routes> (the worker takes a reference of its own), the
 * shared replica health registry <health> (borrowed; it must outlive the
 * worker) and the TLS contexts <tls> (front end) and <up_tls> (replicas),
 * either NULL for cleartext h2c (the worker takes references of its own).
 * Worker 0 also runs the active health checker.
 * Returns 0 or -1 after logging why (e.g. the listen address is taken). */
int gw_worker_init(struct gw_worker *w, int index, const struct gw_config *cfg,
                   struct gw_routes *routes, struct gw_health_registry *health, SSL_CTX *tls,
                   SSL_CTX *up_tls);
/* Hands reloaded TLS contexts to the worker from any thread: <front> for
 * the connections it accepts from then on, <up> for the replica connections
 * it opens from then on (NULL: that one is unchanged). The worker takes
 * references of its own; open connections keep the context they were made
 * with. */
void gw_worker_offer_tls(struct gw_worker *w, SSL_CTX *front, SSL_CTX *up);
/* Hands snapshot <rt> to the worker from any thread (the worker takes a
 * reference of its own); it switches to it at its next wake-up. */
void gw_worker_offer_routes(struct gw_worker *w, struct gw_routes *rt);
/* Checks that <addr> can be listened on by this process alone: binding
 * without SO_REUSEPORT fails when any other process listens there, which
 * SO_REUSEPORT would otherwise hide by silently sharing the port.
 * Returns 0 or a negative errno. */
int gw_worker_probe_listen(const char *addr);
/* Starts the worker's thread. Returns 0 or a positive errno. */
int gw_worker_start(struct gw_worker *w);
/* Asks the worker, from any thread, to stop accepting, send GOAWAY, let
 * in-flight calls finish within --shutdown-grace-ms, and end its thread. */
void gw_worker_drain(struct gw_worker *w);
void gw_worker_join(struct gw_worker *w);
void gw_worker_free(struct gw_worker *w);

#endif
