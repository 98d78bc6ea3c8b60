/* limiter: the account-wide rate limit as this process sees it.
 *
 * Every take goes to limit.lua in Redis (src/lua/limit.lua, the arithmetic
 * of src/ratelimit.c), so every sesgate process on every machine sharing the
 * Redis shares one limit, counted in recipients; pass-through sends take
 * from blocks of it reserved ahead (limiter_take_send). The base rate is [send]
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
#include <time.h>

#include <event2/event.h>

#include "config.h"
#include "ratelimit.h"
#include "redis.h"
#include "rscript.h"
#include "resign.h"
#include "upstream.h"

struct limiter;

/* Sends are paced at this share of the rate, so that timer jitter never
 * makes a second hold more than the rate itself (an upstream that enforces
 * exactly the rate, as SES may, then never throttles). */
#define LIMITER_PACE 0.97

/* ms: sends whose reserved times lie this close may leave together, as one
 * bulk call of several destinations, and a send's timer may fire this late:
 * within LIMITER_PACE's margin (3 % of a second), moving a recipient by no
 * more than this cannot push a one-second window past the rate. */
#define LIMITER_BUNDLE_MS 20

/* The answer to a take. */
struct limiter_answer {
    bool ok;      /* limit.lua answered; false: Redis unreachable (nothing taken) */
    bool granted; /* the recipients are reserved */
    /* ms from Redis's "now" of the answer. Granted: until the first
     * recipient may go (0: now), the others following 1000 / rate ms
     * apart. Refused: until the refusing check could pass; -1 when it
     * never can (the cost exceeds the quota). */
    double wait_ms;
    /* How long before the answer's arrival Redis's "now" was on this
     * process's clock (by the least offset seen between the two clocks,
     * never more than since the take was sent): the reservation is
     * wait_ms - late_ms from the arrival, the same instant for every
     * process sharing the Redis. Below zero for a grant that must wait
     * for this process's earlier reservations (Redis's clock went
     * forward). */
    double late_ms;
    enum ratelimit_reason reason;
    double rate;  /* recipients/s: the pacing rate (the account's effective
                     rate x LIMITER_PACE) */
    int64_t used; /* recipients sent in the rolling 24 hours */
};

/* Called once per take. */
typedef void (*limiter_cb)(const struct limiter_answer *a, void *arg);

/* The limiter for cfg, running limit.lua through scripts (and the quota
 * hash on their Redis); with rate = auto it reads the quota through up,
 * signed by rs. Everything passed in outlives it. */
struct limiter *limiter_new(struct event_base *base, const struct config *cfg,
                            struct rscript *scripts, struct upstream *up, struct resign *rs);

/* The limiter of upstream u (one of cfg->upstreams): its own rate mode,
 * rate, headroom and daily_quota, its own keys (docs/UPSTREAMS.md); the
 * clients' own limits are shared by every upstream's limiter.
 * limiter_new is limiter_new_for cfg->upstreams[0] ([upstream]). */
struct limiter *limiter_new_for(struct event_base *base, const struct config *cfg,
                                const struct config_upstream *u, struct rscript *scripts,
                                struct upstream *up, struct resign *rs);

/* The upstream l paces. */
const struct config_upstream *limiter_upstream(const struct limiter *l);

/* limit.lua status on client's own limiter keys: element 4 of the reply is
 * the client's recipients in the rolling 24 hours. cb fires exactly once,
 * never inline. */
void limiter_client_status(struct limiter *l, const char *client, redis_cb cb, void *arg);

/* Release l; takes in flight are answered with ok = false first. */
void limiter_free(struct limiter *l);

/* False with rate = off. */
bool limiter_on(const struct limiter *l);

/* Milliseconds from now until ts (CLOCK_MONOTONIC; negative: past). */
double limiter_ms_until(const struct timespec *ts);

/* *ts = now + ms (CLOCK_MONOTONIC). */
void limiter_ms_from_now(struct timespec *ts, double ms);

/* A paced send of span_ms of the rate left at sent_at (zero: unknown):
 * move *next, the earliest time the process's next paced send may leave,
 * to sent_at + span_ms when that is later. A send handed over while the
 * event loop was busy leaves late; the next must not bunch up behind it. */
void limiter_left_at(struct timespec *next, const struct timespec *sent_at, double span_ms);

/* Reserve cost (>= 1) recipients for client c (NULL: none of its own
 * limits), starting at most horizon_ms from now. cb fires exactly once,
 * never inline. */
void limiter_take(struct limiter *l, const struct config_client *c, int64_t cost, double horizon_ms,
                  limiter_cb cb, void *arg);

/* A pass-through send's take: as limiter_take, but a send of a client
 * without its own rate or daily quota takes from a block of the account's
 * rate this process reserved ahead (docs/RATELIMIT.md, "Blocks"). True:
 * answered at once, into *now_a (cb is not called; late_ms is 0). False:
 * cb fires exactly once, later. Blocks are reserved while the sends ask
 * for more than one recipient per block; a block's recipients not handed
 * out leave the rolling day again once its time has passed. */
bool limiter_take_send(struct limiter *l, const struct config_client *c, int64_t cost,
                       double horizon_ms, limiter_cb cb, void *arg, struct limiter_answer *now_a);

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

#endif
