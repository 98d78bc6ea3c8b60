/* ratelimit: GCRA pacing with reservations, AIMD on Throttling, and the
 * rolling 24-hour quota in minute buckets.
 *
 * src/lua/limit.lua mirrors every function here operation for operation
 * (IEEE doubles, no fused multiply-add: -std=c17 keeps contraction off), so
 * the C module and the script give bit-equal answers; the integration test
 * tests/integration/test_limit_script.py compares them through a Python
 * copy of this file.
 */
#include "ratelimit.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

/* The minute of a time: floor(ms / 60000), for negative times too. */
static int64_t ratelimit_minute(int64_t now_ms)
{
    int64_t m = now_ms / RATELIMIT_MINUTE_MS;
    if (now_ms % RATELIMIT_MINUTE_MS < 0)
        m--;
    return m;
}

/* The ring index of minute m. */
static size_t ratelimit_slot(int64_t m)
{
    int64_t i = m % RATELIMIT_DAY_BUCKETS;
    if (i < 0)
        i += RATELIMIT_DAY_BUCKETS;
    return (size_t)i;
}

/* True for a usable rate: finite and > 0. */
static bool ratelimit_rate_ok(double rate)
{
    return isfinite(rate) && rate > 0;
}

/* Set a fresh limiter. */
int ratelimit_init(struct ratelimit *rl, double rate)
{
    if (!ratelimit_rate_ok(rate))
        return RATELIMIT_EINVAL;
    memset(rl, 0, sizeof *rl);
    rl->tat_ms = INT64_MIN;
    rl->at_ms = INT64_MIN;
    rl->rate = rate;
    return 0;
}

/* Change the base rate. */
int ratelimit_set_rate(struct ratelimit *rl, double rate)
{
    if (!ratelimit_rate_ok(rate))
        return RATELIMIT_EINVAL;
    rl->rate = rate;
    if (rl->cut && rl->cut_rate > rate)
        rl->cut_rate = rate;
    return 0;
}

/* The effective rate at now. */
double ratelimit_effective(const struct ratelimit *rl, int64_t now_ms)
{
    double r = rl->rate;
    if (rl->cut) {
        int64_t elapsed = now_ms - rl->cut_at;
        if (elapsed < 0)
            elapsed = 0;
        r = rl->cut_rate + rl->rate * RATELIMIT_RECOVER_PER_S * (double)elapsed / 1000.0;
        if (r > rl->rate)
            r = rl->rate;
    }
    double floor_rate = rl->rate * RATELIMIT_FLOOR;
    if (r < floor_rate)
        r = floor_rate;
    return r;
}

/* Note a write at now: at_ms is the latest now written at. */
static void ratelimit_written(struct ratelimit *rl, int64_t now_ms)
{
    if (now_ms > rl->at_ms)
        rl->at_ms = now_ms;
}

/* Move the limiter's times back with a clock that went back. */
bool ratelimit_rebase(struct ratelimit *rl, int64_t now_ms)
{
    if (rl->at_ms == INT64_MIN || now_ms > rl->at_ms - RATELIMIT_STEP_MS)
        return false;
    int64_t back = rl->at_ms - now_ms;
    if (rl->tat_ms != INT64_MIN)
        rl->tat_ms -= back;
    if (rl->cut)
        rl->cut_at -= back;
    rl->at_ms = now_ms;
    return true;
}

/* tat as one double. */
double ratelimit_tat(const struct ratelimit *rl)
{
    return (double)rl->tat_ms + rl->tat_frac;
}

/* Cut the rate on a Throttling answer. */
bool ratelimit_throttled(struct ratelimit *rl, int64_t now_ms)
{
    ratelimit_rebase(rl, now_ms);
    if (rl->cut && now_ms - rl->cut_at < RATELIMIT_CUT_WINDOW_MS)
        return false;
    double r = ratelimit_effective(rl, now_ms) * RATELIMIT_CUT_FACTOR;
    double floor_rate = rl->rate * RATELIMIT_FLOOR;
    if (r < floor_rate)
        r = floor_rate;
    rl->cut = true;
    rl->cut_rate = r;
    rl->cut_at = now_ms;
    ratelimit_written(rl, now_ms);
    return true;
}

/* The start of a reservation at now: max(tat, now) as integer ms and
 * fraction. */
static void ratelimit_start(const struct ratelimit *rl, int64_t now_ms, int64_t *start_ms,
                            double *start_frac)
{
    if (rl->tat_ms >= now_ms) {
        *start_ms = rl->tat_ms;
        *start_frac = rl->tat_frac;
    } else {
        *start_ms = now_ms;
        *start_frac = 0;
    }
}

/* Set tat to start + cost * 1000 / r, carrying the fraction exactly, at
 * now. */
static void ratelimit_reserve(struct ratelimit *rl, int64_t start_ms, double start_frac,
                              int64_t cost, double r, int64_t now_ms)
{
    double d = (double)cost * 1000.0 / r;
    double d_ms = floor(d);
    double frac = start_frac + (d - d_ms);
    int64_t carry = 0;
    if (frac >= 1) {
        frac = frac - 1;
        carry = 1;
    }
    rl->tat_ms = start_ms + (int64_t)d_ms + carry;
    rl->tat_frac = frac;
    ratelimit_written(rl, now_ms);
}

/* Drop the buckets that left the window at now. */
static void ratelimit_day_advance(struct ratelimit_day *day, int64_t now_ms)
{
    if (!day->any)
        return;
    int64_t lo = ratelimit_minute(now_ms) - (RATELIMIT_DAY_BUCKETS - 1);
    if (lo > day->newest) {
        ratelimit_day_init(day);
        return;
    }
    for (int64_t m = day->oldest; m < lo; m++) {
        size_t i = ratelimit_slot(m);
        day->sum -= day->count[i];
        day->count[i] = 0;
    }
    if (lo > day->oldest)
        day->oldest = lo;
}

/* Empty the window. */
void ratelimit_day_init(struct ratelimit_day *day)
{
    memset(day, 0, sizeof *day);
}

/* Count recipients at now. */
void ratelimit_day_add(struct ratelimit_day *day, int64_t count, int64_t now_ms)
{
    ratelimit_day_advance(day, now_ms);
    int64_t m = ratelimit_minute(now_ms);
    if (!day->any) {
        day->any = true;
        day->oldest = m;
        day->newest = m;
    }
    if (m < day->oldest)
        m = day->oldest;
    if (m > day->newest)
        day->newest = m;
    day->count[ratelimit_slot(m)] += count;
    day->sum += count;
}

/* Take back count recipients counted but never sent, newest minutes first. */
void ratelimit_day_refund(struct ratelimit_day *day, int64_t count, int64_t now_ms)
{
    ratelimit_day_advance(day, now_ms);
    if (!day->any)
        return;
    for (int64_t m = day->newest; count > 0 && m >= day->oldest; m--) {
        int64_t *c = &day->count[ratelimit_slot(m)];
        int64_t back = *c < count ? *c : count;
        *c -= back;
        day->sum -= back;
        count -= back;
    }
}

/* Recipients in the window at now. */
int64_t ratelimit_day_used(struct ratelimit_day *day, int64_t now_ms)
{
    ratelimit_day_advance(day, now_ms);
    return day->sum;
}

/* Recipients left of a quota at now. */
int64_t ratelimit_day_left(struct ratelimit_day *day, int64_t quota, int64_t now_ms)
{
    if (quota <= 0)
        return INT64_MAX;
    int64_t used = ratelimit_day_used(day, now_ms);
    return used >= quota ? 0 : quota - used;
}

/* When need recipients will have left the window. */
int64_t ratelimit_day_free_at(struct ratelimit_day *day, int64_t need, int64_t now_ms)
{
    int64_t used = ratelimit_day_used(day, now_ms);
    if (need <= 0)
        return now_ms;
    if (need > used)
        return -1;
    int64_t acc = 0;
    for (int64_t m = day->oldest; m <= day->newest; m++) {
        acc += day->count[ratelimit_slot(m)];
        if (acc >= need)
            return (m + RATELIMIT_DAY_BUCKETS) * RATELIMIT_MINUTE_MS;
    }
    return -1;
}

/* The quota check of one party: true when cost fits; else *wait_ms says
 * until when (or -1 for never). */
static bool ratelimit_quota_fits(struct ratelimit_party *p, int64_t cost, int64_t now_ms,
                                 double *wait_ms)
{
    if (p->day == NULL)
        return true;
    int64_t used = ratelimit_day_used(p->day, now_ms);
    if (p->quota <= 0 || used + cost <= p->quota)
        return true;
    int64_t at = ratelimit_day_free_at(p->day, used + cost - p->quota, now_ms);
    *wait_ms = at < 0 ? -1 : (double)(at - now_ms);
    return false;
}

/* Reserve recipients of the account and a client. */
int ratelimit_take(struct ratelimit_party *account, struct ratelimit_party *client, int64_t cost,
                   int64_t now_ms, double horizon_ms, struct ratelimit_answer *out)
{
    if (account == NULL || account->rl == NULL || cost < 1 || !(horizon_ms >= 0) ||
        !isfinite(horizon_ms))
        return RATELIMIT_EINVAL;
    ratelimit_rebase(account->rl, now_ms);
    if (client != NULL && client->rl != NULL)
        ratelimit_rebase(client->rl, now_ms);
    struct ratelimit_answer a = {0};
    a.rate = ratelimit_effective(account->rl, now_ms);

    int64_t start_ms;
    double start_frac;
    ratelimit_start(account->rl, now_ms, &start_ms, &start_frac);
    double wait = (double)(start_ms - now_ms) + start_frac;

    if (!ratelimit_quota_fits(account, cost, now_ms, &a.wait_ms)) {
        a.reason = RATELIMIT_QUOTA;
    } else if (client != NULL && !ratelimit_quota_fits(client, cost, now_ms, &a.wait_ms)) {
        a.reason = RATELIMIT_CLIENT_QUOTA;
    } else if (wait > horizon_ms) {
        a.reason = RATELIMIT_RATE;
        a.wait_ms = wait - horizon_ms;
    } else if (client != NULL && client->rl != NULL) {
        int64_t c_ms;
        double c_frac;
        ratelimit_start(client->rl, now_ms, &c_ms, &c_frac);
        if (c_ms > start_ms || (c_ms == start_ms && c_frac > start_frac)) {
            a.reason = RATELIMIT_CLIENT_RATE;
            a.wait_ms = (double)(c_ms - start_ms) + (c_frac - start_frac);
        }
    }

    if (a.reason == RATELIMIT_GRANTED) {
        a.granted = true;
        a.wait_ms = wait;
        ratelimit_reserve(account->rl, start_ms, start_frac, cost, a.rate, now_ms);
        if (account->day != NULL)
            ratelimit_day_add(account->day, cost, now_ms);
        if (client != NULL && client->rl != NULL)
            ratelimit_reserve(client->rl, start_ms, start_frac, cost,
                              ratelimit_effective(client->rl, now_ms), now_ms);
        if (client != NULL && client->day != NULL)
            ratelimit_day_add(client->day, cost, now_ms);
    }
    a.used = account->day != NULL ? ratelimit_day_used(account->day, now_ms) : 0;
    *out = a;
    return 0;
}

/* A bulk worker's block for a rate. */
int64_t ratelimit_block(double rate, int64_t max)
{
    double n = floor(rate * RATELIMIT_BLOCK_MS / 1000.0);
    int64_t b = 1;
    if (n > 1)
        b = n >= 9.0e18 ? INT64_MAX : (int64_t)n;
    if (max >= 1 && b > max)
        b = max;
    return b;
}

static const char *const ratelimit_reason_names[RATELIMIT_REASON_COUNT] = {
    [RATELIMIT_GRANTED] = "",
    [RATELIMIT_RATE] = "rate",
    [RATELIMIT_QUOTA] = "quota",
    [RATELIMIT_CLIENT_RATE] = "client_rate",
    [RATELIMIT_CLIENT_QUOTA] = "client_quota",
};

/* The name of a refusal reason. */
const char *ratelimit_reason_name(enum ratelimit_reason reason)
{
    if ((int)reason < 0 || reason >= RATELIMIT_REASON_COUNT)
        return "unknown";
    return ratelimit_reason_names[reason];
}
