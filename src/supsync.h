/* supsync: keeps SES's account-level suppression list in step with
 * sesgate's ([suppression] sync_ses = on; docs/SUPPRESSION.md).
 *
 * Every change to the list (sup.lua, and the automatic adds of events.lua)
 * appends the address to the stream {P}:ss. A worker process drains it
 * with the consumer group "w", one request at a time: the address's
 * current state in {P}:sup decides the call (on the list: v2
 * PutSuppressedDestination with its reason, BOUNCE or COMPLAINT; not on
 * it: DeleteSuppressedDestination), so entries may be applied in any order
 * and more than once. Signed with the upstream credentials (resign). An
 * entry SES accepted (or a delete SES answers NotFoundException) is
 * acknowledged and deleted; one SES refuses for good (another 4xx) is
 * logged and dropped; one that failed for a passing reason (throttled,
 * 5xx, no answer) stays pending and is taken again after SUPSYNC_RETRY_MS
 * (XAUTOCLAIM), by this process or another.
 */
#ifndef SESGATE_SUPSYNC_H
#define SESGATE_SUPSYNC_H

#include <event2/event.h>

#include "config.h"
#include "resign.h"
#include "rscript.h"
#include "upstream.h"

#define SUPSYNC_GAP_MS   200  /* between two calls to SES */
#define SUPSYNC_IDLE_MS  1000 /* look again after a read that found nothing */
#define SUPSYNC_RETRY_MS 5000 /* a failed entry is taken again after this */

struct supsync;

/* Start draining on base with scripts' connection and key prefix, calling
 * up signed by rs; name is this consumer's. Everything outlives the result. */
struct supsync *supsync_start(struct event_base *base, const struct config *cfg,
                              struct rscript *scripts, struct upstream *up, struct resign *rs,
                              const char *name);

/* Stop and release s (a call in flight is cancelled: its entry stays
 * pending and is taken again). NULL is ignored. */
void supsync_free(struct supsync *s);

#endif
