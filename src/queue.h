/* queue: the durable bulk queue on Redis, and the workers that drain it.
 *
 * Layout and guarantees: docs/QUEUE.md; the scripts: the .lua files in src/lua (built
 * into the binary). A batch is stored once (template, riders, recipients);
 * each recipient is one stream entry. Workers read with a consumer group,
 * render the copy, send it through the upstream re-signed, and record the
 * outcome and acknowledge in one script; retryable failures wait in the
 * delay set, permanent ones go to the dead-letter stream.
 */
#ifndef SESGATE_QUEUE_H
#define SESGATE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "config.h"
#include "fanout.h"
#include "redis.h"
#include "resign.h"
#include "upstream.h"

struct queue;

/* Called once when an enqueue finished: err is NULL on success (Redis
 * accepted every recipient), else a short reason (nothing was queued). */
typedef void (*queue_done_fn)(const char *err, void *arg);

/* The queue on rd (cfg's prefix, status_ttl). cfg and rd outlive it. */
struct queue *queue_new(struct event_base *base, const struct config *cfg, struct redis *rd);

/* Release q; a pending enqueue callback fires with an error first. */
void queue_free(struct queue *q);

/* Store batch_id for client: p's template and riders once, and copies
 * first .. p->nto-1 (first is 0 with first_recipient = queue, 1 with sync:
 * copy 0 is then sent by the caller). done fires exactly once. */
void queue_enqueue(struct queue *q, const char *batch_id, const char *client,
                   const struct fanout_plan *p, size_t first, queue_done_fn done, void *arg);

struct worker;

/* Start draining q: up to cfg->concurrency sends in flight through up,
 * signed by rs, as consumer name (unique per process). */
struct worker *worker_start(struct event_base *base, const struct config *cfg, struct queue *q,
                            struct upstream *up, struct resign *rs, const char *name);

/* Stop reading new entries; sends in flight finish (or are reclaimed by
 * another worker after the lease if the process dies). */
void worker_stop(struct worker *w);

/* Sends in flight. */
size_t worker_inflight(const struct worker *w);

/* Release w (after worker_stop and once nothing is in flight, or at exit). */
void worker_free(struct worker *w);

#endif
