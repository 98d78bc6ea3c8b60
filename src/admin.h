/* admin: the operator's HTTP listener (never the SES port): /healthz,
 * /readyz (upstream and Redis), /metrics in the Prometheus text format, and
 * GET /batches/{id} (the batch status as JSON, read from Redis).
 */
#ifndef SESGATE_ADMIN_H
#define SESGATE_ADMIN_H

#include <stddef.h>

#include <event2/event.h>

#include "config.h"
#include "rscript.h"
#include "upstream.h"

struct admin;

/* Serve cfg->admin_listen on base. /readyz answers 200 only while up is
 * healthy and the Redis of scripts (NULL: no Redis) is ready; /metrics adds
 * sesgate_redis_up and, with scripts, the queue gauges (stats.lua every
 * 2 s). cfg, up and scripts are borrowed and must outlive the admin.
 * Returns NULL with a reason in err on failure. */
struct admin *admin_new(struct event_base *base, const struct config *cfg,
                        const struct upstream *up, struct rscript *scripts, char *err,
                        size_t errlen);

/* Close the listener and its connections, and free. */
void admin_free(struct admin *a);

#endif
