/* queue: the durable bulk queue on Redis.
 *
 * Layout and guarantees: docs/QUEUE.md; the scripts: src/lua (run by
 * rscript). A batch is stored once (template, riders, recipients); each
 * recipient is one stream entry, which the worker (worker.h) reads, sends
 * and records. The queue also watches that Redis still holds what this
 * process wrote (epoch.lua).
 */
#ifndef SESGATE_QUEUE_H
#define SESGATE_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "config.h"
#include "fanout.h"
#include "rscript.h"

struct queue;

/* Called once when an enqueue finished: err is NULL on success (Redis
 * holds the whole batch), else a short reason: nothing was queued, unless
 * err starts with QUEUE_UNFINISHED (the batch is stored and partly queued,
 * Redis stayed away while its steps were retried; a worker finishes it). */
typedef void (*queue_done_fn)(const char *err, void *arg);

#define QUEUE_UNFINISHED "batch stored, not yet queued whole"

/* With [redis] wait_replicas, err starts with this when the batch was
 * queued but WAIT did not confirm it on that many replicas within
 * wait_timeout (or the WAIT connection failed): the batch is cancelled
 * (copies a worker already sent stay sent) and the caller must not call it
 * accepted. */
#define QUEUE_UNREPLICATED "batch not confirmed on the replicas"

/* The queue run through scripts (cfg's status_ttl). cfg and scripts
 * outlive it. */
struct queue *queue_new(struct event_base *base, const struct config *cfg, struct rscript *scripts);

/* Before an enqueue's done fires with success, WAIT for cfg's
 * wait_replicas replicas (wait_timeout) on rd, a connection of its own
 * (WAIT blocks it) to the same Redis; rd outlives q. Concurrent enqueues
 * share one WAIT. */
void queue_set_wait(struct queue *q, struct redis *rd);

/* Release q. Its script calls still in flight are answered by
 * rscript_free (with RSCRIPT_CLOSED), which comes after. */
void queue_free(struct queue *q);

/* The script runner q runs on (q's caller owns it). */
struct rscript *queue_scripts(const struct queue *q);

/* Store batch_id for client, routed to upstream (its name; NULL or
 * "default": [upstream]): p's template and riders once, and one entry
 * per To recipient on that upstream's stream of the client. copy0_id is NULL when every copy is
 * queued; otherwise the caller already sent copy 0 (first_recipient = sync) and copy0_id is its SES
 * MessageId, recorded as its outcome, and copies 1.. are queued. The template is taken, not copied
 * (p->template is empty after); the rest of p is the caller's. done fires exactly once. */
void queue_enqueue(struct queue *q, const char *batch_id, const char *client, const char *upstream,
                   struct fanout_plan *p, const char *copy0_id, queue_done_fn done, void *arg);

/* A batch of many recipients is queued in bounded steps (enqueue.lua,
 * then fill.lua), each its own Redis call, so that other clients' commands
 * run in between; queue_enqueue's done fires when the last step is in.
 * Every step is idempotent and a batch being filled is listed in
 * P:{P}:filling with the time of its last step. queue_fill_resume (the
 * worker's tick) finishes a batch whose last step is more than 5 s old: its
 * filler died. */
void queue_fill_resume(struct queue *q);

/* The upstream refused a signature of ours as expired or not yet current
 * (backoff_clock_skew): count it, and log upstream_clock_skew at warn at
 * most every 10 s per caller (*last_ms: the caller's last warning, in
 * monotonic ms; 0 at first). */
void queue_clock_skew(int64_t *last_ms, const char *code, const char *message);

/* A longer "MessageId" is not SES's (60 characters): it is not indexed. */
#define QUEUE_MESSAGE_ID_MAX 200

/* How long an SES MessageId stays indexed to the client, batch and unit it
 * was sent for (ms): [feedback] index_ttl when SES's events reach sesgate
 * (config_feedback_enabled), else 0: nothing is indexed. */
int64_t queue_index_ttl(const struct config *cfg);

/* Index message_id, a MessageId SES gave for a send of client: SET
 * P:{P}:m:<message_id> "<client>\t<batch or ->\t<index or ->" PX the
 * index TTL (batch NULL or "": none; index < 0: none). The command is sent
 * and nothing waits for its answer: a failure is logged, nothing else.
 * Nothing is written when the TTL is 0, or message_id is empty, "-" or
 * longer than an SES MessageId can be. */
void queue_index(struct queue *q, const char *message_id, const char *client, const char *batch,
                 long long index);

/* True when Redis is connected and answering (an enqueue can succeed). */
bool queue_ready(const struct queue *q);

#endif
