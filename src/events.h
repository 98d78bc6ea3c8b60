/* events: SES event notifications applied to sesgate's state (shell).
 *
 * A Notification that src/feedback.c verified carries one SES event
 * (sesevent_parse). events_apply runs src/lua/events.lua once, which does
 * atomically in Redis:
 *   - the replay guard: an SNS MessageId already applied is not applied again;
 *   - correlation: SES's MessageId -> the client, batch and unit it was sent
 *     for ({P}:m:<id>, written when the MessageId was obtained);
 *   - each named recipient's delivery state in the batch ({P}:e:<batch>) and
 *     the batch's counters of recipients per state;
 *   - the suppression list: permanent bounces and complaints add the address
 *     ([suppression]), transient bounces count towards transient_count;
 *   - the relay: when the client has an events_url, the SNS body byte for
 *     byte is queued on {P}:relay for src/relay.c.
 */
#ifndef SESGATE_EVENTS_H
#define SESGATE_EVENTS_H

#include <stddef.h>

#include "config.h"
#include "sesevent.h"
#include "sns.h"

struct rscript;
struct events;

/* rc: 0 applied, 1 a replay (applied before), -1 Redis could not apply it
 * (answer so that SNS retries). client: the client the message was sent
 * for, NULL when SES's MessageId is not indexed. */
typedef void (*events_cb)(void *arg, int rc, const char *client);

/* An applier running events.lua through s, with cfg's [feedback],
 * [suppression] and clients' events_url (read at each call). */
struct events *events_new(struct rscript *s, const struct config *cfg);
void events_free(struct events *e);

/* Apply the verified Notification m whose Message is ev. body (len bytes)
 * is the POST body as SNS sent it; sub_arn the x-amz-sns-subscription-arn
 * header ("" when absent). cb is called exactly once, never before
 * events_apply returns. */
void events_apply(struct events *e, const struct sns_msg *m, const struct sesevent *ev,
                  const char *body, size_t len, const char *sub_arn, events_cb cb, void *arg);

#endif
