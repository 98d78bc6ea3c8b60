/* relay: SES events relayed to the applications (docs/FEEDBACK.md, "Relays").
 *
 * src/lua/events.lua adds one entry per event for a client with an
 * events_url to the stream P:{P}:relay. A relay process reads it with the
 * consumer group "w" and POSTs each entry's body byte for byte to
 * [client.NAME] events_url (looked up when it is sent, from the current
 * configuration) with SNS's headers, so that the application's own SNS
 * handler takes it as it took SNS's. A 2xx answer delivers it; any other
 * answer or a transport failure retries it with backoff through the retry
 * set P:{P}:relay:d, up to [feedback] relay_attempts tries, after which it goes
 * to the dead-relay stream P:{P}:relay:dlq. An entry held by a process that died
 * is reclaimed after the lease: a relay is delivered at least once.
 */
#ifndef SESGATE_RELAY_H
#define SESGATE_RELAY_H

#include <stddef.h>

#include <event2/event.h>

#include "config.h"
#include "rscript.h"

struct relay;

/* Start relaying on base through scripts' Redis connection, as consumer
 * name (unique per process). cfg (its clients may be swapped by a reload)
 * and scripts outlive the relay. */
struct relay *relay_start(struct event_base *base, const struct config *cfg,
                          struct rscript *scripts, const char *name);

/* Stop reading new entries; POSTs in flight finish and record their outcome
 * (or are reclaimed by another process after the lease if this one dies). */
void relay_stop(struct relay *r);

/* Relays in flight (POSTed, or their outcome not yet recorded). */
size_t relay_inflight(const struct relay *r);

/* Release r (NULL: nothing): POSTs in flight are cancelled, their entries
 * stay pending and are reclaimed after the lease. Call it before the
 * scripts' runner is freed. */
void relay_free(struct relay *r);

#endif
