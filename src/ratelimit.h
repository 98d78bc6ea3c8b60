/* ratelimit: the arithmetic of the account-wide rate limiter and of the
 * rolling 24-hour quota. Pure module: no I/O, no clock; "now" is a
 * parameter (ms since the epoch). src/lua/limit.lua runs the same arithmetic,
 * in the same order, in Redis, so that every process shares one limit; a
 * change here is a change there.
 *
 * Pacing is GCRA with reservations: a take of cost recipients starts at
 * start = max(tat, now) and covers [start, start + cost * 1000 / r) ms, the
 * caller sending its recipients 1000 / r ms apart from start. There is no
 * burst: the bucket holds one recipient. A take whose start lies more than
 * horizon_ms ahead of now is refused and changes nothing. Bulk workers use
 * a small horizon (RATELIMIT_BLOCK_MS), pass-through sends max_wait, so a
 * pass-through send waits at most about the bulk horizon behind bulk.
 *
 * tat is kept as an integer ms and a fraction in [0, 1) so that a long run
 * of takes does not drift, even at 2^41 ms and beyond (a double alone would
 * round each addition to 2^-11 ms there).
 *
 * The effective rate follows AIMD: a Throttling answer from SES halves it
 * (at most one cut per RATELIMIT_CUT_WINDOW_MS), then it regains
 * RATELIMIT_RECOVER_PER_S of the base rate per second, never above the base
 * rate and never below RATELIMIT_FLOOR of it.
 */
#ifndef SESGATE_RATELIMIT_H
#define SESGATE_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

/* Fraction of the base rate regained per second after a cut: a halving
 * recovers in 20 s, a cut to the floor in about 40 s. Slow enough that the
 * throttled sends (retried with backoff) drain before the rate is back. */
#define RATELIMIT_RECOVER_PER_S 0.025
/* The effective rate never goes below this fraction of the base rate. */
#define RATELIMIT_FLOOR 0.01
/* A cut multiplies the effective rate by this. */
#define RATELIMIT_CUT_FACTOR 0.5
/* ms: Throttling answers within this time of the last cut are answers to
 * sends already in flight at the old rate; they do not cut again. */
#define RATELIMIT_CUT_WINDOW_MS 1000
/* ms: a bulk worker's block and horizon, this much of the rate ahead. */
#define RATELIMIT_BLOCK_MS 100
/* ms: a now this much or more before the latest now a limiter was written
 * at means the clock went back (a wall clock stepped): the limiter's times
 * move back with it (ratelimit_rebase). Smaller differences are ordinary
 * disorder between callers and change nothing. */
#define RATELIMIT_STEP_MS 1000
/* ms: one bucket of the day window. */
#define RATELIMIT_MINUTE_MS 60000
/* ms: the rolling window SES counts its daily quota over. */
#define RATELIMIT_DAY_MS 86400000
/* Minute buckets alive at once: the current minute and the 1440 before it.
 * Bucket m (recipients counted in [m, m + 1) minutes) leaves the window at
 * the end of minute m + 1440, i.e. 24 h after the end of its own minute, so
 * a recipient is always counted for at least 24 h (never less than SES
 * counts it) and at most 24 h + 1 min. */
#define RATELIMIT_DAY_BUCKETS 1441

/* Errors. */
#define RATELIMIT_EINVAL (-22) /* a bad argument: nothing changed */

/* One limiter: the account's (with AIMD) or a client's (never cut). */
struct ratelimit {
    int64_t tat_ms;  /* ms since the epoch: integer part of the theoretical arrival time */
    double tat_frac; /* ms, in [0, 1): the fractional part */
    double rate;     /* recipients/s: the base rate R, > 0 */
    bool cut;        /* a cut happened (cut_rate and cut_at are meaningful) */
    double cut_rate; /* recipients/s: the effective rate right after the last cut */
    int64_t cut_at;  /* ms since the epoch: time of the last cut */
    int64_t at_ms;   /* ms since the epoch: the latest now it was written at (tat or a cut);
                        INT64_MIN: never */
};

/* Recipients counted per minute over the rolling day. */
struct ratelimit_day {
    int64_t count[RATELIMIT_DAY_BUCKETS]; /* recipients of minute m at index m mod 1441 */
    int64_t sum;                          /* recipients in buckets oldest..newest */
    int64_t oldest;                       /* minute (ms / 60000): no live bucket is older */
    int64_t newest;                       /* minute: no bucket is newer */
    bool any;                             /* oldest and newest are meaningful */
};

/* Why a take was refused. */
enum ratelimit_reason {
    RATELIMIT_GRANTED = 0,  /* not refused */
    RATELIMIT_RATE,         /* the account's pacing is more than the horizon ahead */
    RATELIMIT_QUOTA,        /* the account's daily quota is used up */
    RATELIMIT_CLIENT_RATE,  /* the client's own pacing is later than the account's */
    RATELIMIT_CLIENT_QUOTA, /* the client's daily quota is used up */
    RATELIMIT_REASON_COUNT
};

/* One party of a take: its limiter and its day window. */
struct ratelimit_party {
    struct ratelimit *rl;      /* NULL: no rate for this party (a client only) */
    struct ratelimit_day *day; /* NULL: no daily quota for this party */
    int64_t quota;             /* recipients per rolling 24 h; <= 0: unlimited */
};

/* The answer to a take. */
struct ratelimit_answer {
    bool granted;
    /* ms. Granted: start - now (>= 0; 0: send now). Refused: how long until
     * the refusing check could pass (rate: start - now - horizon; client
     * rate: the client's start - the account's start, so that a retry
     * passes while the account stays as far ahead of now as it is; quota: until the bucket that
     * must expire has left the window), or -1 when it never can (the cost exceeds the quota
     * itself). */
    double wait_ms;
    enum ratelimit_reason reason;
    double rate;  /* recipients/s: the account's effective rate at now */
    int64_t used; /* recipients in the account's day window after the call */
};

/* Set rl to a fresh limiter of base rate rate (recipients/s, finite, > 0),
 * never cut, tat in the past. RATELIMIT_EINVAL (rl unchanged) otherwise. */
int ratelimit_init(struct ratelimit *rl, double rate);

/* A new base rate (rate = N changed, or rate = auto refreshed): keeps tat;
 * a cut_rate above the new rate comes down to it. RATELIMIT_EINVAL (rl
 * unchanged) when rate is not finite and > 0. */
int ratelimit_set_rate(struct ratelimit *rl, double rate);

/* The effective rate r(now) in recipients/s: R when never cut, else
 * min(R, cut_rate + R * RATELIMIT_RECOVER_PER_S * elapsed s), at least
 * RATELIMIT_FLOOR * R. A now before cut_at counts as cut_at. */
double ratelimit_effective(const struct ratelimit *rl, int64_t now_ms);

/* A clock that went back: when now is RATELIMIT_STEP_MS or more before
 * at_ms, tat and cut_at move back by at_ms - now and at_ms becomes now, so
 * that the reservations stand as far ahead of the new now as they stood of
 * the latest write (rather than a whole step ahead, which would hold every
 * take for the length of the step) and the recovery from a cut goes on.
 * True when it moved them. ratelimit_take and ratelimit_throttled call it
 * first; a clock that went forward needs nothing (tat is simply past). */
bool ratelimit_rebase(struct ratelimit *rl, int64_t now_ms);

/* tat as one double in ms (for display and tests; rounds at large times). */
double ratelimit_tat(const struct ratelimit *rl);

/* A Throttling answer from SES at now: cut_rate = max(floor, r(now) * 0.5),
 * cut_at = now, unless the last cut was less than RATELIMIT_CUT_WINDOW_MS
 * before now (or after now). tat is not moved: reservations already made
 * keep their time, later ones get the lower rate. True when it cut.
 * Rebases first (ratelimit_rebase). */
bool ratelimit_throttled(struct ratelimit *rl, int64_t now_ms);

/* Reserve cost (>= 1) recipients of account (and of client, NULL for
 * none) at now, granted when the account's start is at most horizon_ms
 * (>= 0) ahead. The checks, in order, the first failing one refusing:
 * account quota, client quota, account rate (horizon), client rate. A
 * client's take never reserves the account's time ahead of the account's
 * own pacing: when the client's start is later than the account's the take
 * is refused with RATELIMIT_CLIENT_RATE; retried after wait_ms it passes
 * that check if the account is as far ahead of now then (busy), else the
 * answer is what is left (at most one more retry). Both limiters are rebased first
 * (ratelimit_rebase); beyond that, when refused, no limiter and no count changes (expired day
 * buckets may be dropped). When granted: tat = start + cost * 1000 / r for the account
 * and the client (both from the account's start), and cost is counted in both day windows at now.
 * account->rl is required. RATELIMIT_EINVAL (nothing changed, *out untouched) for a bad argument.
 */
int ratelimit_take(struct ratelimit_party *account, struct ratelimit_party *client, int64_t cost,
                   int64_t now_ms, double horizon_ms, struct ratelimit_answer *out);

/* A bulk worker's block for a rate (recipients/s): the recipients of
 * RATELIMIT_BLOCK_MS at that rate, max(1, floor(rate / 10)), at most max
 * (when max >= 1). */
int64_t ratelimit_block(double rate, int64_t max);

/* A short stable name for reason: "", "rate", "quota", "client_rate",
 * "client_quota" (limit.lua answers with the same), or "unknown". */
const char *ratelimit_reason_name(enum ratelimit_reason reason);

/* Set day to an empty window. */
void ratelimit_day_init(struct ratelimit_day *day);

/* Count count (>= 0) recipients at now. A now older than the oldest live
 * bucket counts in that bucket. */
void ratelimit_day_add(struct ratelimit_day *day, int64_t count, int64_t now_ms);

/* Take back count (>= 0) recipients that were counted but never sent (SES
 * refused them with Throttling), from the newest minute backwards, never
 * below zero; drops the buckets that left the window first. */
void ratelimit_day_refund(struct ratelimit_day *day, int64_t count, int64_t now_ms);

/* Recipients counted in the window at now (buckets now's minute - 1440 to
 * now's minute); drops the buckets that left it. */
int64_t ratelimit_day_used(struct ratelimit_day *day, int64_t now_ms);

/* Recipients left of quota at now (never negative); INT64_MAX when quota
 * <= 0 (unlimited). */
int64_t ratelimit_day_left(struct ratelimit_day *day, int64_t quota, int64_t now_ms);

/* The earliest time (ms since the epoch) at which the window at now holds
 * at most used - need recipients if nothing more is counted: the end of the
 * bucket that must leave; now when need <= 0; -1 when need > used. */
int64_t ratelimit_day_free_at(struct ratelimit_day *day, int64_t need, int64_t now_ms);

#endif
