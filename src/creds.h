/* creds: an upstream's credentials provider (shell).
 *
 * One provider per upstream and process: it chooses the source once
 * (awscreds_plan_make), fetches temporary credentials on the event base
 * through its own upstream client (web identity, container, IMDSv2, then
 * each STS AssumeRole signed with the previous credentials), refreshes them
 * in the background ahead of expiry and retries a failed fetch with backoff,
 * keeping the old credentials until they expire. Static keys are a provider
 * that never fetches. Nothing here logs a key, a secret, a token or an
 * Authorization header.
 *
 * Providers are registered by upstream name, process-wide: resign_request
 * takes the credentials of its upstream's provider at each signing, and an
 * upstream without one signs with its configured keys (the sandbox).
 */
#ifndef SESGATE_CREDS_H
#define SESGATE_CREDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <event2/event.h>

#include "awscreds.h"
#include "config.h"

struct creds;

enum creds_state {
    CREDS_OK,      /* credentials in hand and not expired */
    CREDS_NOT_YET, /* the first fetch has not succeeded yet */
    CREDS_EXPIRED, /* the last credentials expired and no refresh succeeded */
};

/* A provider for upstream up with environment envp (NULL-terminated
 * "NAME=value"): reads the shared files and chooses the source. A source that
 * fetches starts fetching at once on base. Returns NULL with a reason in err
 * when no source can be chosen. */
struct creds *creds_new(struct event_base *base, const struct config_upstream *up,
                        char *const *envp, char *err, size_t errlen);

/* Cancel every fetch, unregister and free (NULL: nothing). */
void creds_free(struct creds *c);

/* Make c the provider of its upstream's name for resign (replacing any). */
void creds_register(struct creds *c);

/* The provider registered for upstream name, or NULL. */
struct creds *creds_for(const char *name);

/* The state at now; with CREDS_OK *out points at the credentials, valid
 * until the event loop runs again. */
enum creds_state creds_get(struct creds *c, time_t now, const struct awscreds **out);

/* Changes whenever the credentials change (a signing key cache follows it). */
uint64_t creds_generation(const struct creds *c);

/* The source ("static", "environment", "profile NAME", "web identity ROLE",
 * "container", "instance role NAME", "... + assume role ARN"): no secret. */
const char *creds_source(const struct creds *c);

/* Words for a state: "ok", "upstream credentials not yet available",
 * "upstream credentials expired". */
const char *creds_state_text(enum creds_state st);

/* The worst state of the registered providers at now (CREDS_OK when none),
 * and the name of its upstream in *name (NULL when CREDS_OK). */
enum creds_state creds_worst(time_t now, const char **name);

/* Describe upstream up's source for envp without fetching (sesgate check):
 * 0 with the description in out, or -1 with the reason in out. */
int creds_describe(const struct config_upstream *up, char *const *envp, struct buf *out);

#endif
