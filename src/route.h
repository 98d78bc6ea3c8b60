/* route: which upstream a client's call goes to (core: no I/O).
 *
 * In order: the client's own `upstream` ([client.NAME] upstream = NAME);
 * else the first upstream whose `senders` match a sender of the call (the
 * Source, or a raw message's From, matched as allow_from matches); else the
 * first upstream whose region is the region the client signed for (its
 * SigV4 credential scope); else [upstream] (upstreams[0]).
 * docs/UPSTREAMS.md describes it.
 */
#ifndef SESGATE_ROUTE_H
#define SESGATE_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* The index into cfg->upstreams of the upstream for a call of client c
 * (NULL: none) with senders from[0..nfrom) signed for region (region_len
 * bytes; NULL: unknown). Always a valid index (cfg has at least one
 * upstream). */
size_t route_pick(const struct config *cfg, const struct config_client *c, char *const *from,
                  size_t nfrom, const char *region, size_t region_len);

/* True when region (len bytes) is the region of some upstream of cfg: a
 * client may sign for it. */
bool route_region_known(const struct config *cfg, const char *region, size_t len);

#endif
