/* worker: drains the queue (docs/QUEUE.md).
 *
 * Workers read the client streams with a consumer group, render each copy,
 * pace it through the shared rate limiter, send it through the upstream
 * re-signed, and record the outcome and acknowledge in one script;
 * retryable failures wait in the delay set, permanent ones go to the
 * dead-letter stream.
 */
#ifndef SESGATE_WORKER_H
#define SESGATE_WORKER_H

#include <stddef.h>

#include <event2/event.h>

#include "config.h"
#include "limiter.h"
#include "queue.h"
#include "resign.h"
#include "upstream.h"

struct worker;

/* Start draining q: up to cfg->concurrency sends in flight through up,
 * signed by rs, each at a time reserved from lim (NULL: at once), as
 * consumer name (unique per process). */
struct worker *worker_start(struct event_base *base, const struct config *cfg, struct queue *q,
                            struct upstream *up, struct resign *rs, struct limiter *lim,
                            const char *name);

/* worker_start for upstream u (one of cfg->upstreams): it reads only u's
 * streams (P:{P}:q:<client> for [upstream], P:{P}:u:<U>:q:<client> for
 * [upstream.U]) and sends through up, signed by rs, paced by lim (u's).
 * worker_start drains cfg->upstreams[0]. */
struct worker *worker_start_for(struct event_base *base, const struct config *cfg,
                                const struct config_upstream *u, struct queue *q,
                                struct upstream *up, struct resign *rs, struct limiter *lim,
                                const char *name);

/* Stop reading new entries; sends in flight finish (or are reclaimed by
 * another worker after the lease if the process dies). */
void worker_stop(struct worker *w);

/* Sends in flight. */
size_t worker_inflight(const struct worker *w);

/* Release w (after worker_stop and once nothing is in flight, or at exit). */
void worker_free(struct worker *w);

#endif
