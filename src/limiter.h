/* limiter: the account-wide rate limit as this process sees it.
 *
 * Every take goes to limit.lua in Redis (src/lua/limit.lua, the arithmetic
 * of src/ratelimit.c), so every sesgate process on every machine sharing the
 * Redis shares one limit, counted in recipients. The base rate is [send]
 * rate, or with rate = auto the upstream's MaxSendRate x headroom, read with
 * GetSendQuota at start, then every [send] quota_refresh and after a
 * Throttling answer (never more than once a second); until the first answer the base rate is 1
 * recipient/s, the lowest SES grants, and the daily quota unknown (unlimited). What the upstream
 * reported is kept in Redis (the quota hash) for `sesgate status`. With rate = off there is no
 * limiter: every take is granted at once.
 */
#ifndef SESGATE_LIMITER_H
#define SESGATE_LIMITER_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "config.h"
#include "queue.h"
#include "ratelimit.h"
#include "redis.h"
#include "resign.h"
#include "upstream.h"

struct limiter;

/* Sends are paced at this share of the rate, so that timer jitter never
 * makes a second hold more than the rate itself (an upstream that enforces
 * exactly the rate, as SES may, then never throttles). */
#define LIMITER_PACE 0.97

/* The answer to a take. */
struct limiter_answer {
    bool ok;      /* limit.lua answered; false: Redis unreachable (nothing taken) */
    bool granted; /* the recipients are reserved */
    /* ms from the answer's arrival. Granted: until the first recipient may
     * go (0: now), the others following 1000 / rate ms apart. Refused:
     * until the refusing check could pass; -1 when it never can (the cost
     * exceeds the quota). */
    double wait_ms;
    /* ms the answer took: the reservation's clock started about when the
     * take was sent, so wait_ms - late_ms (at least 0) keeps a block of
     * reservations from shifting late onto the next one. */
    double late_ms;
    enum ratelimit_reason reason;
    double rate;  /* recipients/s: the pacing rate (the account's effective
                     rate x LIMITER_PACE) */
    int64_t used; /* recipients sent in the rolling 24 hours */
};

/* Called once per take. */
typedef void (*limiter_cb)(const struct limiter_answer *a, void *arg);

/* The limiter for cfg, on q's Redis (the quota hash on rd); with rate =
 * auto it reads the quota through up, signed by rs. Everything passed in
 * outlives it. */
struct limiter *limiter_new(struct event_base *base, const struct config *cfg, struct queue *q,
                            struct redis *rd, struct upstream *up, struct resign *rs);

/* Release l; takes in flight are answered with ok = false first. */
void limiter_free(struct limiter *l);

/* False with rate = off. */
bool limiter_on(const struct limiter *l);

/* Reserve cost (>= 1) recipients for client c (NULL: none of its own
 * limits), starting at most horizon_ms from now. cb fires exactly once,
 * never inline. */
void limiter_take(struct limiter *l, const struct config_client *c, int64_t cost, double horizon_ms,
                  limiter_cb cb, void *arg);

/* SES answered "Maximum sending rate exceeded": cut the shared rate. */
void limiter_throttled(struct limiter *l);

/* cost recipients taken for client c (NULL: none of its own limits) were
 * not sent (SES refused them with Throttling): take them back from the
 * rolling day. */
void limiter_refund(struct limiter *l, const struct config_client *c, int64_t cost);

/* The base rate (recipients/s) and the daily quota (0: unknown or
 * unlimited) this process uses now. */
double limiter_base_rate(const struct limiter *l);
int64_t limiter_daily_quota(const struct limiter *l);

/* The effective rate of the latest answer (recipients/s), or the base rate
 * before any. */
double limiter_rate(const struct limiter *l);

/* The config_client named name, or NULL. */
const struct config_client *limiter_client(const struct config *cfg, const char *name);

#endif
