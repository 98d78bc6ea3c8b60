/* limiter: the account-wide rate limit, through limit.lua in Redis. */
#include "limiter.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "reply.h"
#include "util.h"

/* The first base rate with rate = auto, before the upstream answered: the
 * lowest MaxSendRate SES grants (a sandbox account). */
#define LIMITER_START_RATE 1.0
/* ms: the soonest a quota refresh follows the previous one. */
#define LIMITER_MIN_REFRESH_MS 1000
/* A pass-through block holds what the sends asked for in RATELIMIT_BLOCK_MS
 * lately, at most RATELIMIT_BLOCK_MS of the rate, and is reserved only when
 * this many sends are expected to use it before its last slot passes (a
 * block costs a take and a share of a refund). */
#define LIMITER_BLOCK_MIN_SENDS 1.5
/* ms: a block's slot may be used this long after its time, then it has
 * passed unused. Well inside LIMITER_BUNDLE_MS, so that a send from a block
 * leaves no later after its reserved time than one with its own take,
 * whose answer takes about a Redis round trip. */
#define LIMITER_SLOT_LATE_MS 5

/* A block of the account's rate this process reserved for its pass-through
 * sends: n recipients, slot i at start + i * step (local monotonic ms). A
 * slot may be used up to LIMITER_SLOT_LATE_MS after its time, never before;
 * later it has passed, unused. */
struct limiter_block {
    int64_t n;    /* recipients reserved; 0: no block */
    int64_t next; /* the first slot neither used nor passed */
    int64_t sent; /* recipients handed out */
    double start, step;
    double rate; /* the grant's paced rate (recipients/s) */
};

/* One take waiting for limit.lua (or, with rate = off, for its timer). */
struct limiter_take {
    struct limiter *l;     /* NULL once the limiter is gone */
    struct timespec asked; /* when the take went to Redis */
    int64_t cost;          /* recipients asked for */
    bool block;            /* a block for the pass-through sends (limiter_take_send) */
    /* a send waiting for the block being reserved: its client, and the
     * latest local ms its recipients may start at */
    const struct config_client *client;
    double deadline;
    limiter_cb cb;
    void *arg;
    struct event *timer; /* rate = off: answers from the event loop */
    struct limiter_take *prev, *next;
};

struct limiter {
    struct event_base *base;
    const struct config *cfg;
    const struct config_upstream *ucfg; /* the upstream it paces */
    struct rscript *scripts;
    struct redis *rd; /* the scripts' connection */
    struct upstream *up;
    struct resign *rs;
    double rate;      /* base rate R */
    int64_t quota;    /* daily quota; 0: unknown or unlimited */
    double effective; /* the latest answer's effective rate */
    struct limiter_take *takes;
    struct event *refresh;
    struct event *store; /* rate fixed: writes the rate to the quota hash once Redis is there */
    struct event *again; /* GetSendQuota again soon: no upstream credentials yet */
    struct upstream_call *quota_call;
    struct buf quota_body;
    int64_t refreshed_ms; /* when the last refresh started (monotonic: a step of
                             the wall clock neither stops nor hurries it) */
    char key_quota[512];
    /* Redis's clock on ours: local monotonic ms - Redis ms, the least seen
     * in this and the previous LIMITER_OFFSET_MS (the least is the answer
     * that waited least on its way back; the window follows drift). */
    double offset[2];
    int64_t offset_since; /* local ms when offset[0] started */
    /* After Redis's clock went forward (until stepped_until, local
     * monotonic ms): the end of this process's latest granted reservation,
     * before which no new one is placed. */
    double stepped_until, reserved_until;
    /* Pass-through sends take from blocks of the rate reserved ahead
     * (limiter_take_send): blk[0] is served first, blk[1] is the refill. */
    struct limiter_block blk[2];
    bool blk_asking;                  /* a block's take is in flight */
    bool blk_stale;                   /* ... at the rate before a cut: given back */
    int64_t blk_asked;                /* recipients it asks for */
    struct limiter_take *blk_waiting; /* sends waiting for it, first first */
    struct limiter_take **blk_tail;
    double blk_pause_until;  /* local ms: a block was refused, none asked until then */
    struct event *blk_timer; /* drops a block once its last slot has passed */
    double dem_since;        /* local ms the demand count started */
    int64_t dem_n;           /* recipients asked for by blockable sends since */
    double dem_rate;         /* recipients per ms in the last count */
    int64_t owed;            /* recipients of passed blocks not handed out, to refund */
    double owed_since;       /* local ms the oldest of them passed */
    int64_t used;            /* the latest answer's recipients in the rolling day */
};

#define LIMITER_OFFSET_MS 10000
/* ms: an answer this much older than its take means Redis's clock went back. */
#define LIMITER_STEP_MS 1000

/* Unlink t from its limiter's list. */
static void limiter_take_unlink(struct limiter_take *t)
{
    if (t->l == NULL)
        return;
    if (t->prev)
        t->prev->next = t->next;
    else
        t->l->takes = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
}

/* Answer t with a and release it. */
static void limiter_take_answer(struct limiter_take *t, const struct limiter_answer *a)
{
    limiter_take_unlink(t);
    if (t->timer)
        event_free(t->timer);
    limiter_cb cb = t->cb;
    void *arg = t->arg;
    free(t);
    if (cb)
        cb(a, arg);
}

/* Run limit.lua for the account, and for client when not NULL; args (at
 * most 8) are its ARGV. cb fires exactly once, never inline. */
static void limiter_eval(struct limiter *l, const char *client, int nargs, const char *const *args,
                         redis_cb cb, void *arg)
{
    const char *argv[4 + 8];
    char *keys[4] = {rscript_ukey(l->scripts, l->ucfg->name, "rl", NULL),
                     rscript_ukey(l->scripts, l->ucfg->name, "day", NULL), NULL, NULL};
    int nkeys = 2;
    if (client) {
        keys[2] = rscript_key(l->scripts, "rl:c:", client);
        keys[3] = rscript_key(l->scripts, "day:c:", client);
        nkeys = 4;
    }
    if (nargs > 8)
        nargs = 8;
    for (int i = 0; i < nkeys; i++)
        argv[i] = keys[i];
    for (int i = 0; i < nargs; i++)
        argv[nkeys + i] = args[i];
    rscript_eval(l->scripts, RSCRIPT_LIMIT, nkeys, nkeys + nargs, argv, NULL, cb, arg);
    for (int i = 0; i < 4; i++)
        free(keys[i]);
}

/* Public: limit.lua status on a client's own keys. */
void limiter_client_status(struct limiter *l, const char *client, redis_cb cb, void *arg)
{
    char *kr = rscript_key(l->scripts, "rl:c:", client);
    char *kd = rscript_key(l->scripts, "day:c:", client);
    const char *argv[4] = {kr, kd, "status", ""};
    rscript_eval(l->scripts, RSCRIPT_LIMIT, 2, 4, argv, NULL, cb, arg);
    free(kr);
    free(kd);
}

/* The reason named s. */
static enum ratelimit_reason limiter_reason(const redisReply *r)
{
    if (r == NULL || r->type != REDIS_REPLY_STRING)
        return RATELIMIT_GRANTED;
    for (int i = 1; i < RATELIMIT_REASON_COUNT; i++)
        if (strcmp(r->str, ratelimit_reason_name((enum ratelimit_reason)i)) == 0)
            return (enum ratelimit_reason)i;
    return RATELIMIT_GRANTED;
}

double limiter_ms_until(const struct timespec *ts)
{
    struct timespec now;
    clock_mono_ts(&now);
    return (double)(ts->tv_sec - now.tv_sec) * 1e3 + (double)(ts->tv_nsec - now.tv_nsec) / 1e6;
}

void limiter_ms_from_now(struct timespec *ts, double ms)
{
    clock_mono_ts(ts);
    int64_t ns = ts->tv_nsec + (int64_t)(ms * 1e6);
    ts->tv_sec += (time_t)(ns / 1000000000);
    ts->tv_nsec = (long)(ns % 1000000000);
}

void limiter_left_at(struct timespec *next, const struct timespec *sent_at, double span_ms)
{
    if (span_ms <= 0 || (sent_at->tv_sec == 0 && sent_at->tv_nsec == 0))
        return;
    struct timespec t = *sent_at;
    int64_t ns = t.tv_nsec + (int64_t)(span_ms * 1e6);
    t.tv_sec += (time_t)(ns / 1000000000);
    t.tv_nsec = (long)(ns % 1000000000);
    if (t.tv_sec > next->tv_sec || (t.tv_sec == next->tv_sec && t.tv_nsec > next->tv_nsec))
        *next = t;
}

/* How long ago, on this clock, Redis computed an answer that says it was
 * redis_ms then and arrived at local_ms (monotonic): the answer's age by
 * the best estimate of the offset between the two clocks. A take that sat
 * behind other commands on the connection is thereby not placed early. */
static double limiter_age(struct limiter *l, double local_ms, double redis_ms)
{
    double sample = local_ms - redis_ms;
    if (l->offset_since != 0 &&
        sample < (l->offset[0] < l->offset[1] ? l->offset[0] : l->offset[1]) - LIMITER_STEP_MS) {
        /* Redis's clock went forward: tat lies in the past, so the next
         * takes start at once while the blocks reserved before the step are
         * still being sent (at most a block and a horizon overlap). */
        log_event(LOG_WARN, "redis_clock_step", "direction", "forward", "note",
                  "Redis's clock jumped; pending entries may be reclaimed early", NULL);
        l->offset_since = 0;
        l->stepped_until = local_ms + LIMITER_OFFSET_MS;
    }
    if (l->offset_since == 0 || local_ms - (double)l->offset_since >= LIMITER_OFFSET_MS) {
        l->offset[1] = l->offset_since ? l->offset[0] : sample;
        l->offset[0] = sample;
        l->offset_since = (int64_t)local_ms;
    } else if (sample < l->offset[0]) {
        l->offset[0] = sample;
    }
    double best = l->offset[0] < l->offset[1] ? l->offset[0] : l->offset[1];
    return sample - best;
}

/* limit.lua answered a take. */
static void limiter_taken(const redisReply *reply, const char *err, void *arg)
{
    struct limiter_take *t = arg;
    struct limiter_answer a = {0};
    if (err == NULL && reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 6) {
        a.ok = true;
        a.granted = reply_num(reply->element[0], 0) == 1;
        a.wait_ms = reply_num(reply->element[1], 0);
        a.reason = a.granted ? RATELIMIT_GRANTED : limiter_reason(reply->element[2]);
        a.rate = reply_num(reply->element[3], 0);
        a.used = (int64_t)reply_num(reply->element[4], 0);
        if (!a.granted && a.reason == RATELIMIT_GRANTED)
            a.reason = RATELIMIT_RATE;
        /* The wait counts from Redis's "now": late_ms is how long ago that
         * was, so that neither a slow answer nor a take queued behind other
         * commands moves the reservation on this clock. */
        struct timespec now;
        clock_mono_ts(&now);
        double late = (double)(now.tv_sec - t->asked.tv_sec) * 1e3 +
                      (double)(now.tv_nsec - t->asked.tv_nsec) / 1e6;
        if (t->l) {
            double local = (double)now.tv_sec * 1e3 + (double)now.tv_nsec / 1e6;
            double age = limiter_age(t->l, local, reply_num(reply->element[5], 0));
            if (age > late + LIMITER_STEP_MS) {
                /* Far older than the take itself: Redis's clock went back,
                 * and the offsets seen so far are void. Start them again
                 * from this answer and count it as fresh: a reservation
                 * placed a little late costs a few ms of the rate, one
                 * placed early (by the time the take waited behind other
                 * commands) can exceed it. (A little older than the take:
                 * the two clocks drift apart; the take's own time holds.) */
                log_event(LOG_WARN, "redis_clock_step", "direction", "back", "note",
                          "Redis's clock went back; the limiter follows it", NULL);
                t->l->offset_since = 0;
                limiter_age(t->l, local, reply_num(reply->element[5], 0));
                late = 0;
            } else if (age < late) {
                late = age > 0 ? age : 0;
            }
            /* Redis's clock went forward: tat lay in the past, and this
             * grant would start before the blocks this process reserved
             * just before the step are sent. It waits for them instead
             * (late_ms below zero); other processes do the same. */
            struct limiter *l = t->l;
            if (a.granted && a.rate > 0 && local < l->stepped_until) {
                double start = local + a.wait_ms - late;
                if (start < l->reserved_until) {
                    late -= l->reserved_until - start;
                    start = l->reserved_until;
                }
                l->reserved_until = start + (double)t->cost * 1000.0 / a.rate;
            } else if (a.granted && a.rate > 0) {
                l->reserved_until = local + a.wait_ms - late + (double)t->cost * 1000.0 / a.rate;
            }
        }
        a.late_ms = late;
        if (t->l) {
            if (a.rate > 0)
                t->l->effective = a.rate / LIMITER_PACE;
            t->l->used = a.used;
            metrics_limiter(t->l->ucfg->name, t->l->rate, t->l->effective, t->l->quota, a.used);
        }
        if (!t->block) /* a block's sends count as they take from it */
            metrics_limiter_take(a.granted ? "" : ratelimit_reason_name(a.reason),
                                 a.granted ? a.wait_ms / 1000.0 : 0);
    } else if (err) {
        log_event(LOG_WARN, "limiter_failed", "error", err, NULL);
    }
    limiter_take_answer(t, &a);
}

/* rate = off: the take's timer fired. */
static void limiter_free_take_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct limiter_take *t = arg;
    struct limiter_answer a = {.ok = true, .granted = true, .rate = 0};
    limiter_take_answer(t, &a);
}

/* Format a rate or a count as a decimal argument. */
static void limiter_fmt(char *out, size_t n, double v)
{
    snprintf(out, n, "%.17g", v);
}

/* Send t's take (t->cost recipients, for client c when not NULL) to
 * limit.lua, starting at most horizon_ms from now. */
static void limiter_take_lua(struct limiter *l, struct limiter_take *t,
                             const struct config_client *c, double horizon_ms)
{
    char scost[32], shorizon[32], srate[32], squota[32], crate[32] = "", cquota[32] = "";
    snprintf(scost, sizeof scost, "%" PRId64, t->cost);
    limiter_fmt(shorizon, sizeof shorizon, horizon_ms < 0 ? 0 : floor(horizon_ms));
    limiter_fmt(srate, sizeof srate, l->rate * LIMITER_PACE);
    snprintf(squota, sizeof squota, "%" PRId64, l->quota);
    bool own = c && (c->rate > 0 || c->daily_quota > 0);
    if (own) {
        if (c->rate > 0)
            limiter_fmt(crate, sizeof crate, c->rate * LIMITER_PACE);
        snprintf(cquota, sizeof cquota, "%" PRId64, c->daily_quota);
    }
    const char *args[8] = {"take", scost, shorizon, srate, squota, crate, cquota, ""};
    clock_mono_ts(&t->asked);
    limiter_eval(l, own ? c->name : NULL, 8, args, limiter_taken, t);
}

/* Link t into l's takes in flight. */
static void limiter_take_link(struct limiter *l, struct limiter_take *t)
{
    t->l = l;
    t->prev = NULL;
    t->next = l->takes;
    if (l->takes)
        l->takes->prev = t;
    l->takes = t;
}

/* Public: reserve cost recipients. */
void limiter_take(struct limiter *l, const struct config_client *c, int64_t cost, double horizon_ms,
                  limiter_cb cb, void *arg)
{
    struct limiter_take *t = xcalloc(1, sizeof *t);
    t->cb = cb;
    t->arg = arg;
    limiter_take_link(l, t);
    if (!limiter_on(l)) {
        t->timer = evtimer_new(l->base, limiter_free_take_cb, t);
        struct timeval zero = {0, 0};
        evtimer_add(t->timer, &zero);
        return;
    }
    t->cost = cost < 1 ? 1 : cost;
    limiter_take_lua(l, t, c, horizon_ms);
}

/* ---- blocks for the pass-through sends ---- */

/* Local monotonic ms. */
static double limiter_now_ms(void)
{
    struct timespec ts;
    clock_mono_ts(&ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Local ms after which no slot of b may be used any more. */
static double limiter_block_end(const struct limiter_block *b)
{
    return b->start + (double)b->n * b->step + LIMITER_SLOT_LATE_MS;
}

/* Release b: the recipients it reserved but did not hand out leave the
 * rolling day again (their time has passed or is given up unused). */
static void limiter_block_drop(struct limiter *l, struct limiter_block *b)
{
    int64_t unused = b->n - b->sent;
    memset(b, 0, sizeof *b);
    if (unused > 0) {
        if (l->owed == 0)
            l->owed_since = limiter_now_ms();
        l->owed += unused;
    }
}

/* Refund what passed blocks left unused: all of it (force), or once the
 * oldest has waited RATELIMIT_BLOCK_MS (one call for several blocks). */
static void limiter_block_repay(struct limiter *l, double now, bool force)
{
    if (l->owed > 0 && (force || now - l->owed_since >= RATELIMIT_BLOCK_MS)) {
        limiter_refund(l, NULL, l->owed);
        l->owed = 0;
    }
}

/* Drop the blocks whose last slot has passed, keep blk[0] the first, and
 * arm the timer for the end of the latest. */
static void limiter_block_tidy(struct limiter *l, double now)
{
    for (int i = 0; i < 2; i++)
        if (l->blk[i].n > 0 && now > limiter_block_end(&l->blk[i]))
            limiter_block_drop(l, &l->blk[i]);
    if (l->blk[0].n == 0 && l->blk[1].n > 0) {
        l->blk[0] = l->blk[1];
        memset(&l->blk[1], 0, sizeof l->blk[1]);
    }
    double end = 0;
    for (int i = 0; i < 2; i++)
        if (l->blk[i].n > 0 && limiter_block_end(&l->blk[i]) > end)
            end = limiter_block_end(&l->blk[i]);
    if (end > 0) {
        struct timeval tv = clock_timeval_frac(end - now + 1);
        evtimer_add(l->blk_timer, &tv);
    } else {
        evtimer_del(l->blk_timer);
        limiter_block_repay(l, now, true);
    }
}

/* The block timer fired. */
static void limiter_block_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    limiter_block_tidy(arg, limiter_now_ms());
}

/* Hand cost recipients out of b at now, starting at most horizon_ms ahead:
 * *a is the grant. False when b cannot. */
static bool limiter_block_serve(struct limiter *l, struct limiter_block *b, double now,
                                int64_t cost, double horizon_ms, struct limiter_answer *a)
{
    if (b->n == 0)
        return false;
    double passed = now - LIMITER_SLOT_LATE_MS - b->start;
    if (passed > (double)b->next * b->step) {
        double k = ceil(passed / b->step);
        b->next = k > (double)b->n ? b->n : (int64_t)k;
    }
    if (b->next + cost > b->n)
        return false;
    double at = b->start + (double)b->next * b->step - now;
    if (at > horizon_ms)
        return false;
    b->next += cost;
    b->sent += cost;
    memset(a, 0, sizeof *a);
    a->ok = true;
    a->granted = true;
    a->wait_ms = at > 0 ? at : 0;
    a->reason = RATELIMIT_GRANTED;
    a->rate = b->rate;
    a->used = l->used;
    metrics_limiter_take("", a->wait_ms / 1000.0);
    return true;
}

/* Serve cost from blk[0] or else blk[1] (blk[0] is then given up). */
static bool limiter_block_take(struct limiter *l, double now, int64_t cost, double horizon_ms,
                               struct limiter_answer *a)
{
    if (limiter_block_serve(l, &l->blk[0], now, cost, horizon_ms, a))
        return true;
    if (!limiter_block_serve(l, &l->blk[1], now, cost, horizon_ms, a))
        return false;
    limiter_block_drop(l, &l->blk[0]);
    l->blk[0] = l->blk[1];
    memset(&l->blk[1], 0, sizeof l->blk[1]);
    return true;
}

/* The recipients a block should hold: what the sends asked for in
 * RATELIMIT_BLOCK_MS lately, at most RATELIMIT_BLOCK_MS of the rate; 0
 * when fewer than LIMITER_BLOCK_MIN_SENDS sends would use it. */
static int64_t limiter_block_want(const struct limiter *l)
{
    double paced = l->effective * LIMITER_PACE;
    int64_t cap = ratelimit_block(paced, 0);
    double n = floor(l->dem_rate * RATELIMIT_BLOCK_MS);
    if (n > (double)cap)
        n = (double)cap;
    double window = n * 1000.0 / paced + LIMITER_SLOT_LATE_MS;
    return n >= 2 && l->dem_rate * window >= LIMITER_BLOCK_MIN_SENDS ? (int64_t)n : 0;
}

static void limiter_block_got(const struct limiter_answer *a, void *arg);

/* Reserve the next block ahead when the sends would use one and blk[0] is
 * half gone (by count or by time); need: at least that many recipients
 * (a send waits for the block, starting at most horizon_ms ahead). A
 * block starts at most max_wait ahead, as a send's own take. */
static void limiter_block_refill(struct limiter *l, double now, int64_t need, double horizon_ms)
{
    limiter_block_repay(l, now, false);
    if (l->blk_asking || l->blk[1].n > 0 || now < l->blk_pause_until)
        return;
    int64_t want = limiter_block_want(l);
    if (want == 0 || want < need)
        return;
    const struct limiter_block *b = &l->blk[0];
    if (b->n > 0 && b->n - b->next > b->n / 2 &&
        limiter_block_end(b) - now > ((double)b->n * b->step + LIMITER_SLOT_LATE_MS) / 2)
        return;
    struct limiter_take *t = xcalloc(1, sizeof *t);
    t->block = true;
    t->cost = want;
    t->cb = limiter_block_got;
    t->arg = l;
    limiter_take_link(l, t);
    l->blk_asking = true;
    l->blk_asked = want;
    double horizon = (double)l->cfg->max_wait_ms;
    if (need > 0 && horizon_ms < horizon)
        horizon = horizon_ms;
    limiter_take_lua(l, t, NULL, horizon);
}

/* limit.lua answered a block's take: keep the block, then serve the sends
 * that waited for it; those it cannot serve take for themselves. */
static void limiter_block_got(const struct limiter_answer *a, void *arg)
{
    struct limiter *l = arg;
    l->blk_asking = false;
    double now = limiter_now_ms();
    bool granted = a->ok && a->granted && a->rate > 0;
    if (granted && l->blk_stale) {
        limiter_refund(l, NULL, l->blk_asked); /* taken at the rate before a cut */
        granted = false;
    }
    l->blk_stale = false;
    if (granted) {
        struct limiter_block *b = &l->blk[l->blk[0].n == 0 ? 0 : 1];
        if (b->n > 0)
            limiter_block_drop(l, b);
        b->n = l->blk_asked;
        b->start = now + a->wait_ms - a->late_ms;
        b->step = 1000.0 / a->rate;
        b->rate = a->rate;
        limiter_block_tidy(l, now);
    } else {
        /* refused (the rate is taken further ahead than a block may
         * start, or the quota) or Redis failed: the sends take for
         * themselves for a while, with their own horizon and answers */
        l->blk_pause_until = now + RATELIMIT_BLOCK_MS;
    }
    /* an answer may lead to another take, and to another block's waiters */
    struct limiter_take *waiting = l->blk_waiting;
    l->blk_waiting = NULL;
    l->blk_tail = &l->blk_waiting;
    while (waiting) {
        struct limiter_take *t = waiting;
        waiting = t->next;
        t->next = NULL;
        struct limiter_answer got;
        double horizon = t->deadline - now > 0 ? t->deadline - now : 0;
        if (limiter_block_take(l, now, t->cost, horizon, &got)) {
            limiter_take_answer(t, &got);
            continue;
        }
        limiter_take_link(l, t);
        limiter_take_lua(l, t, t->client, horizon);
    }
    limiter_block_refill(l, now, 0, 0);
}

/* Drop the blocks (the rate was cut, or the limiter goes). */
static void limiter_block_reset(struct limiter *l)
{
    for (int i = 0; i < 2; i++)
        if (l->blk[i].n > 0)
            limiter_block_drop(l, &l->blk[i]);
    if (l->blk_timer)
        evtimer_del(l->blk_timer);
    limiter_block_repay(l, limiter_now_ms(), true);
    l->blk_stale = l->blk_asking;
}

/* Public: a pass-through send's take. */
bool limiter_take_send(struct limiter *l, const struct config_client *c, int64_t cost,
                       double horizon_ms, limiter_cb cb, void *arg, struct limiter_answer *now_a)
{
    if (cost < 1)
        cost = 1;
    if (!limiter_on(l) || (c && (c->rate > 0 || c->daily_quota > 0))) {
        limiter_take(l, c, cost, horizon_ms, cb, arg);
        return false;
    }
    double now = limiter_now_ms();
    if (l->dem_since == 0)
        l->dem_since = now;
    l->dem_n += cost;
    if (now - l->dem_since >= RATELIMIT_BLOCK_MS) {
        l->dem_rate = (double)l->dem_n / (now - l->dem_since);
        l->dem_n = 0;
        l->dem_since = now;
    }
    if ((l->blk[0].n > 0 && now > limiter_block_end(&l->blk[0])) ||
        (l->blk[1].n > 0 && now > limiter_block_end(&l->blk[1])))
        limiter_block_tidy(l, now);
    if (limiter_block_take(l, now, cost, horizon_ms, now_a)) {
        limiter_block_refill(l, now, 0, 0);
        return true;
    }
    limiter_block_refill(l, now, cost, horizon_ms);
    if (!l->blk_asking || cost > l->blk_asked) {
        limiter_take(l, c, cost, horizon_ms, cb, arg);
        return false;
    }
    struct limiter_take *t = xcalloc(1, sizeof *t);
    t->cost = cost;
    t->client = c;
    t->deadline = now + (horizon_ms > 0 ? horizon_ms : 0);
    t->cb = cb;
    t->arg = arg;
    *l->blk_tail = t;
    l->blk_tail = &t->next;
    return false;
}

/* limit.lua answered a throttling cut. */
static void limiter_cut(const redisReply *reply, const char *err, void *arg)
{
    struct limiter *l = arg;
    if (err || reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2)
        return;
    if (reply_num(reply->element[0], 0) == 1) {
        char rate[32];
        snprintf(rate, sizeof rate, "%.3g", reply_num(reply->element[1], 0));
        log_event(LOG_WARN, "rate_cut", "rate", rate, NULL);
        if (l)
            l->effective = reply_num(reply->element[1], l->effective) / LIMITER_PACE;
    }
}

static void limiter_refresh(struct limiter *l);

/* Public: SES throttled a send. */
void limiter_throttled(struct limiter *l)
{
    metrics_limiter_throttled(l->ucfg->name);
    if (!limiter_on(l))
        return;
    limiter_block_reset(l); /* reserved at the rate before the cut */
    const char *args[2] = {"throttled", ""};
    limiter_eval(l, NULL, 2, args, limiter_cut, l); /* answered before l goes: rscript_free */
    if (l->ucfg->rate_mode == CONFIG_RATE_AUTO)
        limiter_refresh(l); /* the account's quota may have changed */
}

/* limit.lua answered a refund (nothing to do). */
static void limiter_refunded(const redisReply *reply, const char *err, void *arg)
{
    (void)reply;
    (void)arg;
    if (err)
        log_event(LOG_DEBUG, "limiter_refund_failed", "error", err, NULL);
}

/* Public: give back recipients SES refused. */
void limiter_refund(struct limiter *l, const struct config_client *c, int64_t cost)
{
    if (!limiter_on(l) || cost < 1)
        return;
    char scost[32];
    snprintf(scost, sizeof scost, "%" PRId64, cost);
    const char *args[3] = {"refund", scost, ""};
    bool own = c && (c->rate > 0 || c->daily_quota > 0);
    limiter_eval(l, own ? c->name : NULL, 3, args, limiter_refunded, NULL);
}

/* The text between <tag> and </tag> in s as a number; -1 when absent. */
static double limiter_xml_num(const struct buf *b, const char *tag)
{
    char open[64], close[64];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *s = b->data ? b->data : "";
    const char *p = memmem(s, b->len, open, strlen(open));
    if (p == NULL)
        return -1;
    p += strlen(open);
    const char *e = memmem(p, b->len - (size_t)(p - s), close, strlen(close));
    if (e == NULL || e - p > 40)
        return -1;
    char num[48];
    memcpy(num, p, (size_t)(e - p));
    num[e - p] = '\0';
    char *end;
    double d = strtod(num, &end);
    return end != num && isfinite(d) && d >= 0 ? d : -1;
}

/* The HSET of the quota hash answered (nothing to do). */
static void limiter_stored(const redisReply *reply, const char *err, void *arg)
{
    (void)reply;
    (void)arg;
    if (err)
        log_event(LOG_DEBUG, "quota_store_failed", "error", err, NULL);
}

/* rate fixed: once Redis answers, record the rate in the quota hash for
 * `sesgate status`, then stop. */
static void limiter_store_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct limiter *l = arg;
    if (!redis_ready(l->rd))
        return;
    char rate[32];
    limiter_fmt(rate, sizeof rate, l->rate);
    redis_command(l->rd, limiter_stored, NULL, "HSET %s rate %s", l->key_quota, rate);
    event_del(l->store);
}

/* The daily quota quota (0: unknown or unlimited) under the upstream's own
 * daily_quota, when it has one. */
static int64_t limiter_cap(const struct limiter *l, int64_t quota)
{
    int64_t cap = l->ucfg->daily_quota;
    return cap > 0 && (quota <= 0 || quota > cap) ? cap : quota;
}

/* GetSendQuota answered. */
static void limiter_quota_done(struct upstream_response *res, void *arg)
{
    struct limiter *l = arg;
    l->quota_call = NULL;
    double max_rate = -1, max_day = -1, sent = -1;
    if (res->error == UPSTREAM_OK && res->status == 200) {
        max_rate = limiter_xml_num(&res->body, "MaxSendRate");
        max_day = limiter_xml_num(&res->body, "Max24HourSend");
        sent = limiter_xml_num(&res->body, "SentLast24Hours");
    }
    if (max_rate <= 0) {
        char status[16];
        snprintf(status, sizeof status, "%ld", res->status);
        log_event(LOG_WARN, "quota_unknown", "upstream", l->ucfg->name, "status", status, "error",
                  res->error == UPSTREAM_OK ? "no MaxSendRate in the answer" : res->errmsg, NULL);
        return;
    }
    double rate = max_rate * l->ucfg->headroom;
    int64_t quota = limiter_cap(l, max_day > 0 ? (int64_t)floor(max_day * l->ucfg->headroom) : 0);
    if (rate != l->rate || quota != l->quota) {
        char srate[32], squota[32];
        snprintf(srate, sizeof srate, "%g", rate);
        snprintf(squota, sizeof squota, "%" PRId64, quota);
        log_event(LOG_INFO, "rate_auto", "upstream", l->ucfg->name, "rate", srate, "daily_quota",
                  squota, NULL);
    }
    l->rate = rate;
    l->quota = quota;
    if (l->effective <= 0 || l->effective > rate)
        l->effective = rate;
    metrics_limiter(l->ucfg->name, l->rate, l->effective, l->quota, -1);
    char a[32], b[32], c[32], d[32], e[32], now[32];
    limiter_fmt(a, sizeof a, max_rate);
    limiter_fmt(b, sizeof b, max_day);
    limiter_fmt(c, sizeof c, sent);
    limiter_fmt(d, sizeof d, rate);
    snprintf(e, sizeof e, "%" PRId64, quota);
    snprintf(now, sizeof now, "%" PRId64, clock_wall_ms());
    redis_command(l->rd, limiter_stored, NULL,
                  "HSET %s max_send_rate %s max_24_hour_send %s sent_last_24_hours %s rate %s "
                  "daily_quota %s updated %s",
                  l->key_quota, a, b, c, d, e, now);
}

static void limiter_refresh_cb(evutil_socket_t fd, short what, void *arg);

/* Ask the upstream for the account's quota (rate = auto), at most once a
 * second. */
static void limiter_refresh(struct limiter *l)
{
    int64_t now = clock_mono_ms();
    if (l->quota_call || now - l->refreshed_ms < LIMITER_MIN_REFRESH_MS)
        return;
    l->refreshed_ms = now;
    static const char body[] = "Action=GetSendQuota&Version=2010-12-01";
    static const char ctype[] = "application/x-www-form-urlencoded; charset=utf-8";
    buf_reset(&l->quota_body);
    buf_add(&l->quota_body, body, sizeof body - 1);
    char hash[UTIL_SHA256_HEX_LEN + 1];
    util_sha256_hex(body, sizeof body - 1, hash);
    char *url;
    struct curl_slist *hl;
    int rc = resign_request(l->rs, "POST", "/", 1, NULL, 0, ctype, sizeof ctype - 1, hash,
                            time(NULL), &url, &hl);
    if (rc == RESIGN_NOT_YET || rc == RESIGN_EXPIRED) {
        /* the credentials are on their way: ask again shortly, not at the
         * next quota_refresh */
        if (l->again == NULL)
            l->again = evtimer_new(l->base, limiter_refresh_cb, l);
        struct timeval tv = clock_timeval(LIMITER_MIN_REFRESH_MS + 100);
        evtimer_add(l->again, &tv);
        return;
    }
    if (rc < 0)
        return;
    l->quota_call = upstream_start(l->up, "POST", url, hl, l->quota_body.data, l->quota_body.len,
                                   limiter_quota_done, l);
    free(url);
}

/* The refresh timer fired. */
static void limiter_refresh_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    limiter_refresh(arg);
}

/* Public: the limiter for cfg's [upstream]. */
struct limiter *limiter_new(struct event_base *base, const struct config *cfg,
                            struct rscript *scripts, struct upstream *up, struct resign *rs)
{
    return limiter_new_for(base, cfg, &cfg->upstreams[0], scripts, up, rs);
}

/* Public: the limiter of upstream u. */
struct limiter *limiter_new_for(struct event_base *base, const struct config *cfg,
                                const struct config_upstream *u, struct rscript *scripts,
                                struct upstream *up, struct resign *rs)
{
    struct limiter *l = xcalloc(1, sizeof *l);
    l->base = base;
    l->cfg = cfg;
    l->ucfg = u;
    l->scripts = scripts;
    l->rd = rscript_redis(scripts);
    l->up = up;
    l->rs = rs;
    l->rate = u->rate_mode == CONFIG_RATE_FIXED ? u->rate : LIMITER_START_RATE;
    l->effective = l->rate;
    l->quota = limiter_cap(l, 0);
    l->blk_tail = &l->blk_waiting;
    l->blk_timer = evtimer_new(base, limiter_block_timer_cb, l);
    char *kq = rscript_ukey(scripts, u->name, "quota", NULL);
    snprintf(l->key_quota, sizeof l->key_quota, "%s", kq);
    free(kq);
    if (u->rate_mode == CONFIG_RATE_AUTO) {
        l->refreshed_ms = -LIMITER_MIN_REFRESH_MS;
        limiter_refresh(l);
        l->refresh = event_new(base, -1, EV_PERSIST, limiter_refresh_cb, l);
        struct timeval tv = clock_timeval(cfg->quota_refresh_ms);
        event_add(l->refresh, &tv);
    }
    if (limiter_on(l))
        metrics_limiter(u->name, l->rate, l->effective, l->quota, -1);
    if (u->rate_mode == CONFIG_RATE_FIXED) {
        /* Redis is rarely connected yet: a command now would fail at once */
        l->store = event_new(base, -1, EV_PERSIST, limiter_store_cb, l);
        struct timeval tv = {0, 100000};
        event_add(l->store, &tv);
    }
    return l;
}

/* Public: release l. */
void limiter_free(struct limiter *l)
{
    if (l == NULL)
        return;
    if (l->quota_call)
        upstream_cancel(l->quota_call);
    if (l->refresh)
        event_free(l->refresh);
    if (l->store)
        event_free(l->store);
    if (l->again)
        event_free(l->again);
    limiter_block_reset(l);
    event_free(l->blk_timer);
    while (l->blk_waiting) {
        struct limiter_take *t = l->blk_waiting;
        l->blk_waiting = t->next;
        t->next = NULL;
        struct limiter_answer a = {0};
        limiter_take_answer(t, &a);
    }
    while (l->takes) {
        struct limiter_take *t = l->takes;
        if (t->timer) {
            struct limiter_answer a = {.ok = true, .granted = true};
            limiter_take_answer(t, &a);
            continue;
        }
        /* limit.lua still owes an answer: it reaches t, not l */
        limiter_take_unlink(t);
        t->l = NULL;
        if (t->block)
            t->cb = NULL;
    }
    buf_free(&l->quota_body);
    free(l);
}

/* Public. */
bool limiter_on(const struct limiter *l)
{
    return l && l->ucfg->rate_mode != CONFIG_RATE_OFF;
}

double limiter_base_rate(const struct limiter *l)
{
    return l->rate;
}

int64_t limiter_daily_quota(const struct limiter *l)
{
    return l->quota;
}

double limiter_rate(const struct limiter *l)
{
    return l->effective;
}

const struct config_upstream *limiter_upstream(const struct limiter *l)
{
    return l->ucfg;
}
