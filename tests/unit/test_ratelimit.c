/* Unit tests for ratelimit: pacing, horizon, blocks, AIMD, the day window
 * and quota, clients, large times and long runs. Time is moved by hand. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "check.h"
#include "ratelimit.h"

#define T0  INT64_C(1700000000000) /* ms: an ordinary "now" */
#define MIN RATELIMIT_MINUTE_MS
#define BIG (INT64_C(1) << 41) /* ms: a large time */

/* One take of a scripted sequence and its expected answer. */
struct take_case {
    int64_t now;     /* ms after the start of the sequence */
    int64_t cost;    /* recipients */
    double horizon;  /* ms */
    bool granted;    /* expected */
    double wait;     /* ms, expected wait or retry-after */
    const char *why; /* expected reason name */
};

/* Take with the account only, with a day window and no quota. */
static int take1(struct ratelimit *rl, struct ratelimit_day *day, int64_t cost, int64_t now,
                 double horizon, struct ratelimit_answer *a)
{
    struct ratelimit_party acct = {rl, day, 0};
    return ratelimit_take(&acct, NULL, cost, now, horizon, a);
}

/* Run a scripted sequence from base against a fresh limiter at rate. */
static void run_cases(const char *name, double rate, int64_t base, const struct take_case *cases,
                      size_t n)
{
    struct ratelimit rl;
    struct ratelimit_day day;
    CHECK(ratelimit_init(&rl, rate) == 0, "%s: init", name);
    ratelimit_day_init(&day);
    for (size_t i = 0; i < n; i++) {
        const struct take_case *c = &cases[i];
        struct ratelimit_answer a;
        CHECK(take1(&rl, &day, c->cost, base + c->now, c->horizon, &a) == 0, "%s[%zu]", name, i);
        CHECK(a.granted == c->granted, "%s[%zu]: granted %d", name, i, a.granted);
        CHECK(fabs(a.wait_ms - c->wait) < 1e-9, "%s[%zu]: wait %.17g want %.17g", name, i,
              a.wait_ms, c->wait);
        CHECK_STR(ratelimit_reason_name(a.reason), c->why, name);
    }
}

/* 50/s: 20 ms apart, horizon refusals with their retry-after, blocks. */
static const struct take_case pacing_cases[] = {
    {0, 1, 100, true, 0, ""},         {0, 1, 100, true, 20, ""},
    {0, 1, 100, true, 40, ""},        {0, 1, 100, true, 60, ""},
    {0, 1, 100, true, 80, ""},        {0, 1, 100, true, 100, ""},
    {0, 1, 100, false, 20, "rate"},   {0, 5, 100, false, 20, "rate"},
    {5, 1, 100, false, 15, "rate"},   {20, 1, 100, true, 100, ""},
    {20, 1, 2000, true, 120, ""},     {20, 5, 2000, true, 140, ""},
    {20, 1, 100, false, 140, "rate"}, {260, 1, 0, true, 0, ""},
    {1000, 5, 0, true, 0, ""},        {1000, 1, 0, false, 100, "rate"},
    {1100, 1, 0, true, 0, ""},        {5000, 3, 0, true, 0, ""},
    {5001, 1, 59, true, 59, ""},      {5001, 1, 78, false, 1, "rate"},
};

/* An idle limiter: tat in the past never gives credit (no burst). */
static const struct take_case idle_cases[] = {
    {0, 1, 0, true, 0, ""},           {60000, 1, 0, true, 0, ""},
    {60000, 1, 0, false, 20, "rate"}, {60000, 1, 19.5, false, 0.5, "rate"},
    {60020, 1, 0, true, 0, ""},
};

/* 3 recipients/s: fractional spacing, 333.33... ms. */
static const struct take_case third_cases[] = {
    {0, 1, 1000, true, 0, ""},
    {0, 1, 1000, true, 1000.0 / 3, ""},
    {0, 1, 1000, true, 2000.0 / 3, ""},
    {0, 1, 1000, true, 1000, ""},
    {0, 1, 1000, false, 1000.0 / 3, "rate"},
    {1, 1, 1000, false, 1000.0 / 3 - 1, "rate"},
};

/* The scripted sequences. */
static void test_sequences(void)
{
    run_cases("pacing50", 50, T0, pacing_cases, sizeof pacing_cases / sizeof pacing_cases[0]);
    run_cases("pacing50_big", 50, BIG, pacing_cases, sizeof pacing_cases / sizeof pacing_cases[0]);
    run_cases("idle", 50, T0, idle_cases, sizeof idle_cases / sizeof idle_cases[0]);
    run_cases("third", 3, T0, third_cases, sizeof third_cases / sizeof third_cases[0]);
    run_cases("third_big", 3, BIG, third_cases, sizeof third_cases / sizeof third_cases[0]);
}

/* A refused take leaves the limiter and the counts as they were. */
static void test_refusal_changes_nothing(void)
{
    struct ratelimit rl, before;
    struct ratelimit_day day;
    struct ratelimit_answer a;
    ratelimit_init(&rl, 50);
    ratelimit_day_init(&day);
    take1(&rl, &day, 10, T0, 0, &a);
    CHECK(a.granted && a.used == 10, "first block");
    before = rl;
    CHECK(take1(&rl, &day, 1, T0, 100, &a) == 0 && !a.granted, "refused");
    CHECK(memcmp(&before, &rl, sizeof rl) == 0, "limiter unchanged");
    CHECK(ratelimit_day_used(&day, T0) == 10 && a.used == 10, "count unchanged");
}

/* Bad arguments are refused with RATELIMIT_EINVAL and change nothing. */
static void test_bad_arguments(void)
{
    static const double rates[] = {0, -1, NAN, INFINITY, -INFINITY};
    struct ratelimit rl;
    struct ratelimit_answer a = {0};
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
        CHECK(ratelimit_init(&rl, rates[i]) == RATELIMIT_EINVAL, "init %g", rates[i]);
        ratelimit_init(&rl, 10);
        CHECK(ratelimit_set_rate(&rl, rates[i]) == RATELIMIT_EINVAL && rl.rate == 10, "set_rate %g",
              rates[i]);
    }
    struct ratelimit_party acct = {&rl, NULL, 0};
    struct ratelimit_party none = {NULL, NULL, 0};
    CHECK(ratelimit_take(&acct, NULL, 0, T0, 0, &a) == RATELIMIT_EINVAL, "cost 0");
    CHECK(ratelimit_take(&acct, NULL, -3, T0, 0, &a) == RATELIMIT_EINVAL, "cost < 0");
    CHECK(ratelimit_take(&acct, NULL, 1, T0, -1, &a) == RATELIMIT_EINVAL, "horizon < 0");
    CHECK(ratelimit_take(&acct, NULL, 1, T0, NAN, &a) == RATELIMIT_EINVAL, "horizon NaN");
    CHECK(ratelimit_take(&none, NULL, 1, T0, 0, &a) == RATELIMIT_EINVAL, "no limiter");
    CHECK(ratelimit_take(NULL, NULL, 1, T0, 0, &a) == RATELIMIT_EINVAL, "no account");
    CHECK(rl.tat_ms == INT64_MIN && !a.granted, "nothing taken");
}

/* One simulated process: when it next asks, and the send times it got. */
struct sim_caller {
    int64_t next;    /* ms: time of its next take */
    int64_t block;   /* recipients per take */
    double horizon;  /* ms */
    int64_t granted; /* recipients granted */
    double worst;    /* ms: its longest granted wait */
};

/* Compare two int64_t for qsort. */
static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Several callers interleaved at 50/s for a long run: sends 20 ms apart,
 * never more than 50 in any 1 s window, total as ideal. */
static void test_interleaved_callers(int64_t base)
{
    enum { NCALL = 4, RUN_MS = 120000 };
    struct ratelimit rl;
    struct ratelimit_day day;
    ratelimit_init(&rl, 50);
    ratelimit_day_init(&day);
    struct sim_caller c[NCALL] = {
        {base, ratelimit_block(50, 10), RATELIMIT_BLOCK_MS, 0, 0},
        {base + 3, ratelimit_block(50, 3), RATELIMIT_BLOCK_MS, 0, 0},
        {base + 7, 1, 2000, 0, 0},
        {base + 11, ratelimit_block(50, 0), RATELIMIT_BLOCK_MS, 0, 0},
    };
    size_t cap = 16384, n = 0;
    int64_t *sends = xmalloc(cap * sizeof *sends);
    bool integral = true;
    uint64_t x = 88172645463325252u;
    for (;;) {
        size_t k = 0;
        for (size_t i = 1; i < NCALL; i++)
            if (c[i].next < c[k].next)
                k = i;
        int64_t now = c[k].next;
        if (now >= base + RUN_MS)
            break;
        struct ratelimit_answer a;
        take1(&rl, &day, c[k].block, now, c[k].horizon, &a);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (!a.granted) {
            c[k].next = now + (int64_t)ceil(a.wait_ms) + (int64_t)(x % 10);
            continue;
        }
        double start = (double)(now - base) + a.wait_ms;
        if (start != floor(start))
            integral = false;
        for (int64_t j = 0; j < c[k].block; j++) {
            if (n == cap) {
                cap *= 2;
                sends = xrealloc(sends, cap * sizeof *sends);
            }
            sends[n++] = base + (int64_t)start + j * 1000 / 50;
        }
        c[k].granted += c[k].block;
        if (a.wait_ms > c[k].worst)
            c[k].worst = a.wait_ms;
        /* The pass-through caller sends after its wait, the bulk ones ask
         * again at once; a refusal says when to ask again, plus a jitter. */
        c[k].next = k == 2 ? now + (int64_t)ceil(a.wait_ms) + 37 : now + 1;
    }
    qsort(sends, n, sizeof *sends, cmp_i64);
    int64_t worst_gap = INT64_MAX, over = 0;
    for (size_t i = 1; i < n; i++)
        if (sends[i] - sends[i - 1] < worst_gap)
            worst_gap = sends[i] - sends[i - 1];
    for (size_t i = 50; i < n; i++)
        if (sends[i] - sends[i - 50] < 1000)
            over++;
    CHECK(integral, "starts at whole ms at 50/s");
    CHECK(worst_gap == 20, "closest sends %lld ms apart, want 20", (long long)worst_gap);
    CHECK(over == 0, "%lld windows of 1 s with more than 50", (long long)over);
    /* Saturated from the first ms: the last reservation ends within one
     * block of the run's end, so the total is the ideal minus a block. */
    CHECK(n >= (size_t)(RUN_MS / 20) && n <= (size_t)(RUN_MS / 20 + 10), "total %zu", n);
    CHECK(ratelimit_day_used(&day, base + RUN_MS) == (int64_t)n, "day count %zu", n);
    for (size_t i = 0; i < NCALL; i++)
        CHECK(c[i].granted > 0, "caller %zu starved", i);
    /* The pass-through caller waits at most the bulk horizon plus a block. */
    CHECK(c[2].worst <= RATELIMIT_BLOCK_MS + 5 * 20, "pass-through waited %.17g ms", c[2].worst);
    CHECK(c[2].granted > 100, "pass-through got %lld", (long long)c[2].granted);
    free(sends);
}

/* ratelimit_block: a tenth of a second's worth, at least 1, at most max. */
static void test_block(void)
{
    static const struct {
        double rate;
        int64_t max;
        int64_t want;
    } cases[] = {
        {50, 0, 5},  {50, 3, 3},  {50, 100, 5},         {14, 0, 1},     {9.99, 0, 1},
        {0.5, 0, 1}, {0.5, 7, 1}, {1000, 0, 100},       {1000, 50, 50}, {123.4, 0, 12},
        {20, 0, 2},  {20, 1, 1},  {1e30, 0, INT64_MAX}, {1e30, 9, 9},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK(ratelimit_block(cases[i].rate, cases[i].max) == cases[i].want,
              "block(%g, %lld) = %lld", cases[i].rate, (long long)cases[i].max,
              (long long)ratelimit_block(cases[i].rate, cases[i].max));
}

/* One step of an AIMD script: throttle or not at a time, then the rate. */
struct aimd_case {
    int64_t at;      /* ms after the start */
    int throttle;    /* 1: a Throttling answer at this time */
    bool cut;        /* expected result of the throttle */
    double rate;     /* expected effective rate at this time */
    double set_rate; /* > 0: set this base rate first */
};

/* R = 100: halving, linear recovery of 2.5/s, one cut per second, floor. */
static const struct aimd_case aimd_cases[] = {
    {0, 0, false, 100, 0},
    {1000, 1, true, 50, 0},
    {1000, 0, false, 50, 0},
    {1500, 1, false, 51.25, 0}, /* in the window: no second cut */
    {1999, 1, false, 52.4975, 0},
    {3000, 0, false, 55, 0},
    {11000, 0, false, 75, 0},
    {20999, 0, false, 99.9975, 0},
    {21000, 0, false, 100, 0},
    {100000, 0, false, 100, 0},
    {100000, 1, true, 50, 0},
    {101000, 1, true, 26.25, 0},
    {102000, 1, true, 14.375, 0},
    {103000, 1, true, 8.4375, 0},
    {104000, 1, true, 5.46875, 0},
    {105000, 1, true, 3.984375, 0},
    {106000, 1, true, 3.2421875, 0},
    {107000, 1, true, 2.87109375, 0},
    {108000, 1, true, 2.685546875, 0},
    {109000, 1, true, 2.5927734375, 0},
    {110000, 1, true, 2.54638671875, 0},
    {111000, 1, true, 2.523193359375, 0},
    {111000, 0, false, 2.523193359375, 0},
    {112000, 0, false, 5.023193359375, 0},
    {200000, 0, false, 100, 0},
    /* set_rate after a cut */
    {300000, 1, true, 50, 0},
    {300000, 0, false, 30, 30},  /* cut_rate follows a lower R */
    {302000, 0, false, 30, 0},   /* cut_rate = R: recovered */
    {302000, 0, false, 40, 200}, /* a higher R: cut_rate stays, recovery faster */
    {303000, 0, false, 45, 0},
    {340000, 0, false, 200, 0},
};

/* The AIMD curve, values at chosen times. */
static void test_aimd(int64_t base)
{
    struct ratelimit rl;
    ratelimit_init(&rl, 100);
    for (size_t i = 0; i < sizeof aimd_cases / sizeof aimd_cases[0]; i++) {
        const struct aimd_case *c = &aimd_cases[i];
        if (c->set_rate > 0)
            CHECK(ratelimit_set_rate(&rl, c->set_rate) == 0, "aimd[%zu] set_rate", i);
        if (c->throttle)
            CHECK(ratelimit_throttled(&rl, base + c->at) == c->cut, "aimd[%zu] cut", i);
        double r = ratelimit_effective(&rl, base + c->at);
        CHECK(fabs(r - c->rate) < 1e-9, "aimd[%zu] at %lld: rate %.17g want %.17g", i,
              (long long)c->at, r, c->rate);
    }
}

/* Sustained throttling: a cut each second converges to R * RECOVER (the
 * recovery of one window), never lower; the floor holds a stored state
 * below it, and a cut never goes under the floor. */
static void test_floor(void)
{
    struct ratelimit rl;
    ratelimit_init(&rl, 100);
    int cuts = 0;
    double lowest = 100;
    for (int64_t t = 0; t < 60000; t += 250) {
        cuts += ratelimit_throttled(&rl, T0 + t);
        if (ratelimit_effective(&rl, T0 + t) < lowest)
            lowest = ratelimit_effective(&rl, T0 + t);
    }
    CHECK(cuts == 60, "cuts %d", cuts);
    CHECK(fabs(rl.cut_rate - 2.5) < 1e-9 && lowest > 2.5 - 1e-9, "cut_rate %.17g lowest %.17g",
          rl.cut_rate, lowest);
    CHECK(!ratelimit_throttled(&rl, T0 + 58000), "an earlier time does not cut");
    CHECK(ratelimit_effective(&rl, T0 + 58000) == rl.cut_rate, "before cut_at counts as cut_at");

    /* A state below the floor (cut_rate 0.001 of R = 100) reads as 1/s. */
    rl.cut_rate = 0.001;
    CHECK(ratelimit_effective(&rl, rl.cut_at) == 1.0, "floor");
    /* At the floor a take spaces recipients 1000 ms apart. */
    struct ratelimit_day day;
    struct ratelimit_answer a;
    ratelimit_day_init(&day);
    take1(&rl, &day, 1, rl.cut_at, 0, &a);
    CHECK(a.granted && a.rate == 1.0, "floor take");
    take1(&rl, &day, 1, rl.cut_at, 5000, &a);
    CHECK(a.granted && a.wait_ms == 1000, "floor spacing %.17g", a.wait_ms);
    /* A tiny base rate keeps a positive floor. */
    ratelimit_init(&rl, 1e-6);
    for (int64_t t = 0; t < 100000; t += 1000)
        ratelimit_throttled(&rl, T0 + t);
    CHECK(ratelimit_effective(&rl, T0 + 99000) > 0, "positive rate");
}

/* Fractions that add up to exactly 1 ms carry into the integer part: at
 * 4000/s four recipients take 1 ms, and tat's fraction stays in [0, 1). */
static void test_exact_carry(void)
{
    struct ratelimit rl;
    struct ratelimit_answer a;
    struct ratelimit_party acct = {&rl, NULL, 0};
    ratelimit_init(&rl, 4000);
    for (int i = 0; i < 4; i++)
        ratelimit_take(&acct, NULL, 1, T0, 10, &a);
    CHECK(rl.tat_ms == T0 + 1 && rl.tat_frac == 0, "tat %lld + %.17g", (long long)(rl.tat_ms - T0),
          rl.tat_frac);
    ratelimit_take(&acct, NULL, 3, T0, 10, &a);
    CHECK(a.granted && a.wait_ms == 1, "wait %.17g", a.wait_ms);
    CHECK(rl.tat_ms == T0 + 1 && rl.tat_frac == 0.75, "tat %lld + %.17g",
          (long long)(rl.tat_ms - T0), rl.tat_frac);
    ratelimit_take(&acct, NULL, 1, T0, 10, &a);
    CHECK(a.wait_ms == 1.75 && rl.tat_ms == T0 + 2 && rl.tat_frac == 0, "carry at 1.75 + 0.25");
}

/* set_rate keeps tat: reservations made stay, later ones use the new rate. */
static void test_set_rate_keeps_tat(void)
{
    struct ratelimit rl;
    struct ratelimit_day day;
    struct ratelimit_answer a;
    ratelimit_init(&rl, 50);
    ratelimit_day_init(&day);
    take1(&rl, &day, 10, T0, 0, &a);
    CHECK(ratelimit_tat(&rl) == (double)(T0 + 200), "tat after 10 at 50/s");
    ratelimit_set_rate(&rl, 10);
    CHECK(ratelimit_tat(&rl) == (double)(T0 + 200), "tat kept");
    take1(&rl, &day, 1, T0, 1000, &a);
    CHECK(a.granted && a.wait_ms == 200 && a.rate == 10, "new rate from tat");
    CHECK(ratelimit_tat(&rl) == (double)(T0 + 300), "100 ms at 10/s");
    /* A cut's tat stays too. */
    ratelimit_throttled(&rl, T0);
    CHECK(ratelimit_tat(&rl) == (double)(T0 + 300), "throttle keeps tat");
    take1(&rl, &day, 1, T0, 1000, &a);
    CHECK(a.granted && a.wait_ms == 300 && a.rate == 5, "halved: 200 ms");
    CHECK(ratelimit_tat(&rl) == (double)(T0 + 500), "tat after the halved take");
}

/* One day-window step: count or look at a time. */
struct day_case {
    int64_t at;   /* ms after the start */
    int64_t add;  /* recipients counted at this time first */
    int64_t used; /* expected used at this time */
};

#define DAY RATELIMIT_DAY_MS

/* Buckets leave exactly 24 h after the end of their minute. */
static const struct day_case day_cases[] = {
    {0, 10, 10},
    {59999, 5, 15},                /* same minute 0 */
    {60000, 7, 22},                /* minute 1 */
    {30 * MIN + 1234, 3, 25},      /* minute 30 */
    {DAY, 0, 25},                  /* minute 1440: all of the window */
    {DAY + MIN - 1, 0, 25},        /* the last ms of minute 0's life */
    {DAY + MIN, 0, 10},            /* minute 0 left: 15 gone */
    {DAY + MIN, 1, 11},            /* counted in minute 1441 */
    {DAY + 2 * MIN - 1, 0, 11},    /* minute 1 still in */
    {DAY + 2 * MIN, 0, 4},         /* minute 1 left */
    {DAY + 31 * MIN - 1, 0, 4},    /* minute 30 still in */
    {DAY + 31 * MIN, 0, 1},        /* minute 30 left */
    {2 * DAY + 2 * MIN - 1, 0, 1}, /* minute 1441 still in */
    {2 * DAY + 2 * MIN, 0, 0},     /* empty */
    {2 * DAY + 2 * MIN, 4, 4},     /* counting again */
    {10 * DAY, 0, 0},              /* a long idle: all gone at once */
    {10 * DAY + 5, 2, 2},
    {10 * DAY - 5 * MIN, 3, 5}, /* an older time counts in the oldest bucket */
    {11 * DAY + MIN - 1, 0, 5},
    {11 * DAY + MIN, 0, 0},
};

/* The day window, bucket by bucket, at an ordinary and a large time. */
static void test_day_window(int64_t base)
{
    struct ratelimit_day day;
    ratelimit_day_init(&day);
    for (size_t i = 0; i < sizeof day_cases / sizeof day_cases[0]; i++) {
        const struct day_case *c = &day_cases[i];
        if (c->add > 0)
            ratelimit_day_add(&day, c->add, base + c->at);
        int64_t used = ratelimit_day_used(&day, base + c->at);
        CHECK(used == c->used, "day[%zu] at %lld: used %lld want %lld", i, (long long)c->at,
              (long long)used, (long long)c->used);
    }
}

/* A full window, one recipient a minute for 24 h + 1 min and beyond: the
 * count stays at 1441 and each expiry is exact. */
static void test_day_full_run(void)
{
    struct ratelimit_day day;
    ratelimit_day_init(&day);
    int64_t base = T0 - T0 % MIN;
    bool ok = true;
    for (int64_t m = 0; m < 3 * RATELIMIT_DAY_BUCKETS; m++) {
        ratelimit_day_add(&day, 1, base + m * MIN + 17);
        int64_t want = m + 1 < RATELIMIT_DAY_BUCKETS ? m + 1 : RATELIMIT_DAY_BUCKETS;
        if (ratelimit_day_used(&day, base + m * MIN + 59999) != want)
            ok = false;
    }
    CHECK(ok, "a minute in, a minute out");
    CHECK(ratelimit_day_left(&day, 2000, base + 3 * RATELIMIT_DAY_BUCKETS * MIN) == 560,
          "left %lld", (long long)ratelimit_day_left(&day, 2000, base));
    CHECK(ratelimit_day_left(&day, 100, base) == 0, "left never negative");
    CHECK(ratelimit_day_left(&day, 0, base) == INT64_MAX, "unlimited");
}

/* One quota step: a take at a time with a quota. */
struct quota_case {
    int64_t at;    /* ms after the start */
    int64_t cost;  /* recipients */
    int64_t quota; /* recipients per 24 h */
    bool granted;
    int64_t wait; /* ms: expected retry-after (refused), -1: never */
    int64_t used; /* expected used after */
};

/* Quota 100, horizon large so pacing does not refuse (rate 1000/s). */
static const struct quota_case quota_cases[] = {
    {0, 60, 100, true, 0, 60},
    {10 * MIN + 500, 40, 100, true, 0, 100},
    {60 * MIN, 1, 100, false, DAY + MIN - 60 * MIN, 100},       /* minute 0 must leave */
    {60 * MIN, 61, 100, false, DAY + 11 * MIN - 60 * MIN, 100}, /* minute 10 too */
    {60 * MIN, 101, 100, false, -1, 100},                       /* never */
    {60 * MIN, 1, 0, true, 0, 101},                             /* unlimited */
    {60 * MIN, 1, -5, true, 0, 102},                            /* unlimited */
    {DAY + MIN - 1, 1, 102, false, 1, 102},
    {DAY + MIN, 1, 100, true, 0, 43},
    {DAY + MIN, 58, 100, false, 10 * MIN, 43},
    {DAY + MIN, 57, 100, true, 0, 100},
};

/* Quota refusals and when capacity frees. */
static void test_quota(int64_t base)
{
    struct ratelimit rl;
    struct ratelimit_day day;
    ratelimit_init(&rl, 1000);
    ratelimit_day_init(&day);
    for (size_t i = 0; i < sizeof quota_cases / sizeof quota_cases[0]; i++) {
        const struct quota_case *c = &quota_cases[i];
        struct ratelimit_party acct = {&rl, &day, c->quota};
        struct ratelimit_answer a;
        struct ratelimit before = rl;
        CHECK(ratelimit_take(&acct, NULL, c->cost, base + c->at, 1e9, &a) == 0, "quota[%zu]", i);
        CHECK(a.granted == c->granted, "quota[%zu]: granted %d", i, a.granted);
        if (!c->granted) {
            CHECK(a.wait_ms == (double)c->wait, "quota[%zu]: wait %.17g want %lld", i, a.wait_ms,
                  (long long)c->wait);
            CHECK_STR(ratelimit_reason_name(a.reason), "quota", "quota reason");
            CHECK(memcmp(&before, &rl, sizeof rl) == 0, "quota[%zu]: limiter unchanged", i);
        }
        CHECK(a.used == c->used, "quota[%zu]: used %lld want %lld", i, (long long)a.used,
              (long long)c->used);
    }
    struct ratelimit_day empty;
    ratelimit_day_init(&empty);
    CHECK(ratelimit_day_free_at(&empty, 1, base) == -1, "nothing to free");
    CHECK(ratelimit_day_free_at(&empty, 0, base) == base, "need 0: now");
}

/* A client slower than the account: its own pacing, its own quota, and a
 * refusal from either takes nothing from both. */
static void test_client(void)
{
    struct ratelimit acct_rl, cl_rl;
    struct ratelimit_day acct_day, cl_day;
    ratelimit_init(&acct_rl, 50);
    ratelimit_init(&cl_rl, 10);
    ratelimit_day_init(&acct_day);
    ratelimit_day_init(&cl_day);
    struct ratelimit_party acct = {&acct_rl, &acct_day, 1000};
    struct ratelimit_party cl = {&cl_rl, &cl_day, 3};
    struct ratelimit_answer a;

    ratelimit_take(&acct, &cl, 1, T0, 2000, &a);
    CHECK(a.granted && a.wait_ms == 0, "client first");
    CHECK(ratelimit_tat(&acct_rl) == (double)(T0 + 20), "account 20 ms");
    CHECK(ratelimit_tat(&cl_rl) == (double)(T0 + 100), "client 100 ms");

    struct ratelimit a_before = acct_rl, c_before = cl_rl;
    ratelimit_take(&acct, &cl, 1, T0, 2000, &a);
    /* retry when the account's start (T0 + 20) would reach the client's */
    CHECK(!a.granted && a.wait_ms == 80, "client_rate: retry %.17g", a.wait_ms);
    CHECK_STR(ratelimit_reason_name(a.reason), "client_rate", "reason");
    CHECK(memcmp(&a_before, &acct_rl, sizeof acct_rl) == 0, "account untouched");
    CHECK(memcmp(&c_before, &cl_rl, sizeof cl_rl) == 0, "client untouched");
    CHECK(a.used == 1 && ratelimit_day_used(&cl_day, T0) == 1, "counts untouched");
    ratelimit_take(&acct, &cl, 1, T0 + 80, 2000, &a);
    CHECK(!a.granted && a.wait_ms == 20, "client_rate, account idle: what is left %.17g",
          a.wait_ms);
    CHECK(memcmp(&a_before, &acct_rl, sizeof acct_rl) == 0, "account untouched again");

    /* Other traffic moves the account; the client retries when told. */
    ratelimit_take(&acct, NULL, 5, T0 + 50, 100, &a);
    CHECK(a.granted && a.wait_ms == 0, "other traffic");
    ratelimit_take(&acct, &cl, 1, T0 + 100, 2000, &a);
    CHECK(a.granted && a.wait_ms == 50, "client after its retry: wait %.17g", a.wait_ms);
    CHECK(ratelimit_tat(&cl_rl) == (double)(T0 + 250), "client tat from the account's start");

    /* The client's quota of 3: one more fits, then client_quota. */
    ratelimit_take(&acct, &cl, 1, T0 + 250, 2000, &a);
    CHECK(a.granted, "third");
    ratelimit_take(&acct, &cl, 1, T0 + 5000, 2000, &a);
    CHECK(!a.granted && a.wait_ms == (double)(DAY + MIN - T0 % MIN - 5000),
          "client_quota wait %.17g", a.wait_ms);
    CHECK_STR(ratelimit_reason_name(a.reason), "client_quota", "reason");
    CHECK(a.used == 8, "account count %lld", (long long)a.used);

    /* A client without a rate or a day window: only the account counts. */
    struct ratelimit_party bare = {NULL, NULL, 0};
    ratelimit_take(&acct, &bare, 1, T0 + 6000, 0, &a);
    CHECK(a.granted && a.used == 9, "bare client");
    /* The account's refusal comes first. */
    acct.quota = 9;
    ratelimit_take(&acct, &cl, 1, T0 + 6000, 0, &a);
    CHECK_STR(ratelimit_reason_name(a.reason), "quota", "account quota first");
    CHECK_STR(ratelimit_reason_name(RATELIMIT_REASON_COUNT), "unknown", "unknown reason");
}

/* Long runs: 1e6 takes at 3/s and at 7/s with varied costs, tat exact to
 * 1e-6 ms in total (not merely per recipient), at an ordinary and a large
 * time. */
static void test_no_drift(int64_t base)
{
    struct ratelimit rl;
    struct ratelimit_answer a;
    struct ratelimit_party acct = {&rl, NULL, 0};
    ratelimit_init(&rl, 3);
    for (int i = 0; i < 1000000; i++)
        ratelimit_take(&acct, NULL, 1, base, 1e12, &a);
    /* 1e6 recipients at 3/s: 333333333 + 1/3 ms. */
    CHECK(rl.tat_ms == base + 333333333, "3/s: tat_ms off by %lld",
          (long long)(rl.tat_ms - base - 333333333));
    CHECK(fabs(rl.tat_frac - 1.0 / 3) < 1e-6, "3/s: frac %.17g", rl.tat_frac);
    CHECK(a.granted && fabs(a.wait_ms - (333333333 - 1000.0 / 3 + 1.0 / 3)) < 1e-6,
          "last wait %.17g", a.wait_ms);

    ratelimit_init(&rl, 7);
    int64_t total = 0;
    uint64_t x = 88172645463325252u;
    for (int i = 0; i < 1000000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t cost = 1 + (int64_t)(x % 5);
        total += cost;
        ratelimit_take(&acct, NULL, cost, base, 1e12, &a);
    }
    /* total * 1000 / 7 ms exactly: integer part and sevenths. */
    int64_t whole = total * 1000 / 7, sevenths = total * 1000 % 7;
    CHECK(rl.tat_ms == base + whole, "7/s: tat_ms off by %lld",
          (long long)(rl.tat_ms - base - whole));
    CHECK(rl.tat_frac >= 0 && rl.tat_frac < 1, "frac in [0, 1)");
    CHECK(fabs(rl.tat_frac - (double)sevenths / 7) < 1e-6, "7/s: frac %.17g want %lld/7",
          rl.tat_frac, (long long)sevenths);
}

/* Refunds: newest minute first, never below zero, and per-case sums. */
struct refund_case {
    int64_t at;     /* ms after base */
    int64_t add;    /* counted at at (0: none) */
    int64_t refund; /* taken back at at (0: none) */
    int64_t used;   /* the window after */
};

static const struct refund_case refund_cases[] = {
    {0, 10, 0, 10},           /* minute 0: 10 */
    {MIN, 5, 0, 15},          /* minute 1: 5 */
    {MIN + 10, 0, 7, 8},      /* 5 from minute 1, 2 from minute 0 */
    {MIN + 20, 0, 0, 8},      /* unchanged */
    {2 * MIN, 3, 20, 0},      /* more than counted: down to zero */
    {3 * MIN, 4, 0, 4},       /* counting goes on */
    {DAY + 4 * MIN, 0, 1, 0}, /* minute 3 left the window: nothing to take back */
    {DAY + 5 * MIN, 2, 1, 1},
};

static void test_refund(int64_t base)
{
    struct ratelimit_day day;
    ratelimit_day_init(&day);
    ratelimit_day_refund(&day, 5, base); /* an empty window stays empty */
    CHECK(ratelimit_day_used(&day, base) == 0, "refund on an empty window");
    for (size_t i = 0; i < sizeof refund_cases / sizeof refund_cases[0]; i++) {
        const struct refund_case *c = &refund_cases[i];
        if (c->add > 0)
            ratelimit_day_add(&day, c->add, base + c->at);
        if (c->refund > 0)
            ratelimit_day_refund(&day, c->refund, base + c->at);
        int64_t used = ratelimit_day_used(&day, base + c->at);
        CHECK(used == c->used, "refund[%zu]: used %lld want %lld", i, (long long)used,
              (long long)c->used);
    }
    /* minute 0 kept 8 after the first refund: it leaves the window whole */
    ratelimit_day_init(&day);
    ratelimit_day_add(&day, 10, base);
    ratelimit_day_add(&day, 5, base + MIN);
    ratelimit_day_refund(&day, 7, base + MIN);
    CHECK(ratelimit_day_used(&day, base + DAY) == 8, "minute 0 keeps its 8 for 24 h");
    CHECK(ratelimit_day_used(&day, base + DAY + MIN) == 0, "then leaves with them");
}

/* The clock goes back (a wall clock stepped): 50/s, two blocks reserved
 * 200 ms ahead at 0; a step back of less than RATELIMIT_STEP_MS is ordinary
 * disorder, an hour back moves the reservations with the clock. */
static const struct take_case back_cases[] = {
    {0, 5, 100, true, 0, ""},
    {0, 5, 100, true, 100, ""},
    {-999, 1, 100, false, 1099, "rate"},
    {-3600000, 1, 100, false, 100, "rate"},
    {-3600000 + 100, 1, 100, true, 100, ""},
    {-3600000 + 100, 1, 0, false, 120, "rate"},
    {-3600000 + 10000, 1, 0, true, 0, ""},
};

/* ratelimit_rebase: tat and cut_at move back with the clock, at_ms follows
 * the latest write, a client's limiter moves too, and a cut recovers and
 * cuts again as if the step had not happened. */
static void test_clock_back(int64_t base)
{
    run_cases("back", 50, base, back_cases, sizeof back_cases / sizeof back_cases[0]);

    struct ratelimit rl;
    ratelimit_init(&rl, 100);
    CHECK(!ratelimit_rebase(&rl, base), "a fresh limiter has nothing to move");
    struct ratelimit_day day;
    struct ratelimit_answer a;
    ratelimit_day_init(&day);
    take1(&rl, &day, 10, base, 0, &a);
    CHECK(rl.at_ms == base && rl.tat_ms == base + 100, "written at %lld",
          (long long)(rl.at_ms - base));
    take1(&rl, &day, 1, base - 500, 1000, &a);
    CHECK(a.granted && a.wait_ms == 600 && rl.at_ms == base, "half a second back: no move");
    CHECK(ratelimit_throttled(&rl, base), "cut at base");
    CHECK(!ratelimit_rebase(&rl, base - RATELIMIT_STEP_MS + 1), "less than a step");
    int64_t back = base + 10000 - 3600000;
    CHECK(ratelimit_rebase(&rl, back), "an hour back");
    CHECK(rl.at_ms == back && rl.cut_at == back && rl.tat_ms == back + 110,
          "moved: at %lld cut_at %lld tat %lld", (long long)(rl.at_ms - back),
          (long long)(rl.cut_at - back), (long long)(rl.tat_ms - back));
    CHECK(!ratelimit_rebase(&rl, back), "once");
    CHECK(ratelimit_effective(&rl, back + 4000) == 60.0, "recovers from the cut: %.17g",
          ratelimit_effective(&rl, back + 4000));
    CHECK(!ratelimit_throttled(&rl, back + 500), "within the cut window");
    CHECK(ratelimit_throttled(&rl, back + 4000), "cuts again after it");

    /* Throttled alone rebases as well. */
    ratelimit_init(&rl, 100);
    ratelimit_throttled(&rl, base);
    CHECK(!ratelimit_throttled(&rl, base - 3600000), "an hour back is within the window");
    CHECK(rl.cut_at == base - 3600000 && rl.at_ms == base - 3600000, "cut_at moved");

    /* A client's limiter moves with the account's. */
    struct ratelimit acct, cl;
    struct ratelimit_day aday, cday;
    ratelimit_init(&acct, 50);
    ratelimit_init(&cl, 10);
    ratelimit_day_init(&aday);
    ratelimit_day_init(&cday);
    struct ratelimit_party ap = {&acct, &aday, 0}, cp = {&cl, &cday, 0};
    ratelimit_take(&ap, &cp, 5, base, 100, &a);
    CHECK(a.granted && cl.tat_ms == base + 500 && cl.at_ms == base, "client reserved");
    ratelimit_take(&ap, &cp, 1, base - 3600000, 1000, &a);
    CHECK(!a.granted && a.reason == RATELIMIT_CLIENT_RATE && a.wait_ms == 400,
          "client refused for its own pacing, not the hour: %s %.17g",
          ratelimit_reason_name(a.reason), a.wait_ms);
    CHECK(cl.tat_ms == base - 3600000 + 500 && acct.tat_ms == base - 3600000 + 100,
          "both moved back");
}

int main(void)
{
    test_refund(T0 - T0 % MIN);
    test_refund(BIG - BIG % MIN);
    test_sequences();
    test_refusal_changes_nothing();
    test_bad_arguments();
    test_interleaved_callers(T0);
    test_interleaved_callers(BIG);
    test_block();
    test_aimd(T0);
    test_aimd(BIG);
    test_floor();
    test_set_rate_keeps_tat();
    test_exact_carry();
    test_day_window(T0 - T0 % MIN);
    test_day_window(BIG - BIG % MIN);
    test_day_full_run();
    test_quota(T0 - T0 % MIN);
    test_quota(BIG - BIG % MIN);
    test_client();
    test_no_drift(T0);
    test_no_drift(BIG);
    test_clock_back(T0);
    test_clock_back(BIG);
    return check_done("test_ratelimit");
}
