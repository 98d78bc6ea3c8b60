/* route: which upstream a client's call goes to (core). */
#include "route.h"

#include <stdbool.h>
#include <string.h>

#include "sesreq.h"

/* True when upstream u's region is region (len bytes). */
static bool route_region_is(const struct config_upstream *u, const char *region, size_t len)
{
    return strlen(u->region) == len && memcmp(u->region, region, len) == 0;
}

/* Public: the upstream of a call. */
size_t route_pick(const struct config *cfg, const struct config_client *c, char *const *from,
                  size_t nfrom, const char *region, size_t region_len)
{
    if (cfg->nupstreams <= 1)
        return 0;
    if (c && c->upstream && c->upstream[0]) {
        const struct config_upstream *up = config_upstream_by_name(cfg, c->upstream);
        if (up != NULL)
            return (size_t)(up - cfg->upstreams);
    }
    for (size_t u = 0; u < cfg->nupstreams; u++) {
        const struct config_upstream *up = &cfg->upstreams[u];
        if (up->nsenders == 0)
            continue;
        for (size_t i = 0; i < nfrom; i++)
            if (sesreq_sender_allowed(up->senders, up->nsenders, from[i]))
                return u;
    }
    if (region)
        for (size_t u = 0; u < cfg->nupstreams; u++)
            if (route_region_is(&cfg->upstreams[u], region, region_len))
                return u;
    return 0;
}

/* Public: a region some upstream serves. */
bool route_region_known(const struct config *cfg, const char *region, size_t len)
{
    for (size_t u = 0; u < cfg->nupstreams; u++)
        if (route_region_is(&cfg->upstreams[u], region, len))
            return true;
    return false;
}
