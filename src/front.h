/* front: the SES endpoint. For each request: authenticate the client
 * (SigV4), parse the SES request, apply the client's policy, then pass it
 * through to the upstream re-signed with sesgate's own credentials, or hand
 * it to the send path. Every answer, success or error, is SES-shaped and
 * carries x-amzn-RequestId and Date.
 */
#ifndef SESGATE_FRONT_H
#define SESGATE_FRONT_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "config.h"
#include "upstream.h"

struct front;

/* Start serving cfg->listen on base, forwarding through up. cfg and up must
 * outlive the front. Returns NULL with a reason in err on failure. */
struct front *front_new(struct event_base *base, const struct config *cfg, struct upstream *up,
                        char *err, size_t errlen);

struct queue;

/* Send batches through q (NULL: no queue; bulk sends are then refused with
 * a retryable SES error). */
void front_set_queue(struct front *f, struct queue *q);

struct limiter;

/* Pace sends through lim (NULL: sends go at once). */
void front_set_limiter(struct front *f, struct limiter *lim);

/* The configuration's clients were replaced (SIGHUP): new requests use
 * them. Requests in flight keep the client they authenticated as, whose
 * storage the caller keeps until they are done. */
void front_clients_changed(struct front *f);

/* Stop accepting connections; requests in flight go on. */
void front_stop_accepting(struct front *f);

/* Requests being handled. */
size_t front_inflight(const struct front *f);

/* The port the SES listener is bound to. */
int front_port(const struct front *f);

/* Close everything (pending requests are cancelled) and free. */
void front_free(struct front *f);

#endif
