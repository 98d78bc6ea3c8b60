/* admin: the operator's HTTP listener (never the SES port): /healthz,
 * /readyz and /metrics in the Prometheus text format.
 */
#ifndef SESGATE_ADMIN_H
#define SESGATE_ADMIN_H

#include <stddef.h>

#include <event2/event.h>

#include "config.h"
#include "upstream.h"

struct admin;

/* Serve cfg->admin_listen on base. up is probed for /readyz. Returns NULL
 * with a reason in err on failure. */
struct admin *admin_new(struct event_base *base, const struct config *cfg,
                        const struct upstream *up, char *err, size_t errlen);

/* Close the listener and its connections, and free. */
void admin_free(struct admin *a);

#endif
