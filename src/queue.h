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
#include <jansson.h>

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

/* Store batch_id for client: p's template and riders once, and one entry
 * per To recipient. copy0_id is NULL when every copy is queued; otherwise
 * the caller already sent copy 0 (first_recipient = sync) and copy0_id is
 * its SES MessageId, recorded as its outcome, and copies 1.. are queued.
 * done fires exactly once. */
void queue_enqueue(struct queue *q, const char *batch_id, const char *client,
                   const struct fanout_plan *p, const char *copy0_id, queue_done_fn done,
                   void *arg);

/* Run limit.lua (src/lua/limit.lua: the shared rate limiter) with the
 * account's keys, and the client's too when client is not NULL; args (at
 * most 8) are its ARGV. cb fires exactly once, never inline. */
void queue_limit(struct queue *q, const char *client, int nargs, const char *const *args,
                 redis_cb cb, void *arg);

/* limit.lua status on client's own limiter keys: element 4 of the reply is
 * the client's recipients in the rolling 24 hours. cb fires exactly once. */
void queue_limit_client_status(struct queue *q, const char *client, redis_cb cb, void *arg);

/* The upstream refused a signature of ours as expired or not yet current
 * (backoff_clock_skew): count it, and log upstream_clock_skew at warn at
 * most every 10 s per caller (*last_ms: the caller's last warning, in
 * monotonic ms; 0 at first). */
void queue_clock_skew(int64_t *last_ms, const char *code, const char *message);

/* True when Redis is connected and answering (an enqueue can succeed). */
bool queue_ready(const struct queue *q);

/* The MessageId in an SES send answer (v1 XML or v2 JSON; api 1 or 2) into
 * out; false when there is none. */
bool queue_message_id(int api, const char *body, size_t n, char *out, size_t outlen);

/* The error code (v2: x-amzn-ErrorType, else __type; v1: <Code>) and
 * message of an SES error answer on api (1 or 2); "" when absent. */
void queue_error_of(int api, const struct upstream_response *res, char *code, size_t codelen,
                    char *message, size_t msglen);

struct worker;
struct limiter;

/* Start draining q: up to cfg->concurrency sends in flight through up,
 * signed by rs, each at a time reserved from lim (NULL: at once), as
 * consumer name (unique per process). */
struct worker *worker_start(struct event_base *base, const struct config *cfg, struct queue *q,
                            struct upstream *up, struct resign *rs, struct limiter *lim,
                            const char *name);

/* Stop reading new entries; sends in flight finish (or are reclaimed by
 * another worker after the lease if the process dies). */
void worker_stop(struct worker *w);

/* Sends in flight. */
size_t worker_inflight(const struct worker *w);

/* Release w (after worker_stop and once nothing is in flight, or at exit). */
void worker_free(struct worker *w);

/* Operator views (sesgate status, batch, dlq; the admin listener). */

/* The key prefix "<P>:{<P>}:" of cfg's prefix; the caller frees it. */
char *queue_key_prefix(const struct config *cfg);

/* True when id has the shape of a batch id: 36 of [0-9a-f-]. */
bool queue_batch_id_ok(const char *id);

/* The Lua source of the batch view. KEYS: batch hash, outcome hash,
 * recipient list, delay set (queue_show_keys); ARGV: the batch id. */
const char *queue_show_script(void);

/* The four keys of queue_show_script for batch id under prefix pfx, into
 * keys[4]; free each. */
void queue_show_keys(const char *pfx, const char *id, char *keys[4]);

/* The batch status object (the JSON of GET /batches/{id}) built from
 * queue_show_script's reply; NULL when the batch does not exist. The
 * caller owns the reference. */
json_t *queue_show_json(const char *id, const redisReply *reply);

/* The Lua source of the queue summary. KEYS: the set of queue streams,
 * delay set, dead letters, recent set, the key prefix (queue_stats_keys);
 * ARGV: how many recent batches. */
const char *queue_stats_script(void);

/* The five keys of queue_stats_script under prefix pfx, into keys[5]; free
 * each. */
void queue_stats_keys(const char *pfx, char *keys[5]);

/* The Lua source of dlq_retry.lua (src/lua: keys, arguments, reply). */
const char *queue_dlq_retry_script(void);

/* The Lua source of limit.lua (src/lua: the shared rate limiter). */
const char *queue_limit_script(void);

/* The Lua source that deletes every dead letter. KEYS: the dead-letter
 * stream. Returns how many there were. */
const char *queue_dlq_purge_script(void);

/* The queue summary object (sesgate status --json) from queue_stats_script's
 * reply at now_ms (ms since the epoch); NULL for a malformed reply. */
json_t *queue_stats_json(const redisReply *reply, int64_t now_ms);

#endif
