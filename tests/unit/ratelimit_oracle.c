/* ratelimit_oracle: src/ratelimit.c driven line by line, the oracle that
 * tests/integration/test_limit_script.py holds src/lua/limit.lua to.
 *
 * It keeps what limit.lua keeps in Redis (the account's limiter and day
 * window, each client's own), and answers each command on stdin with one
 * line on stdout, numbers in %.17g (exact), "-" for an absent value:
 *
 *   take COST HORIZON RATE NOW QUOTA CLIENT C_RATE C_QUOTA
 *        (CLIENT, C_RATE, C_QUOTA: "-" when absent)
 *     -> GRANTED WAIT REASON RATE USED      (REASON "-" when granted)
 *   throttled NOW  -> CUT RATE              (RATE "-" before any take)
 *   status NOW     -> EFFECTIVE BASE CUT_RATE CUT_AT USED TAT
 *
 * The account's limiter starts at the first take's RATE and every take
 * sets it (limit.lua's take carries R); a client's limiter starts when a
 * take first names its C_RATE, its day window when it first names its
 * C_QUOTA, as the script creates their keys.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimit.h"

#define ORACLE_CLIENTS 16

struct oracle_client {
    char name[64];
    struct ratelimit rl;
    bool has_rl;
    struct ratelimit_day day;
    bool has_day;
};

struct oracle {
    struct ratelimit acct;
    bool has_acct;
    struct ratelimit_day day;
    struct oracle_client clients[ORACLE_CLIENTS];
    size_t nclients;
};

/* Print v, or "-" when absent. */
static void oracle_num(double v, bool present, const char *sep)
{
    if (present)
        printf("%.17g%s", v, sep);
    else
        printf("-%s", sep);
}

/* The client named name, added when new. */
static struct oracle_client *oracle_client(struct oracle *o, const char *name)
{
    for (size_t i = 0; i < o->nclients; i++)
        if (strcmp(o->clients[i].name, name) == 0)
            return &o->clients[i];
    if (o->nclients == ORACLE_CLIENTS)
        exit(2);
    struct oracle_client *c = &o->clients[o->nclients++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    return c;
}

/* take: one reservation for the account and, when named, a client. */
static void oracle_take(struct oracle *o, char **t)
{
    int64_t cost = strtoll(t[1], NULL, 10), now = strtoll(t[4], NULL, 10);
    double horizon = strtod(t[2], NULL), rate = strtod(t[3], NULL);
    if (!o->has_acct) {
        ratelimit_init(&o->acct, rate);
        o->has_acct = true;
    }
    ratelimit_set_rate(&o->acct, rate);
    struct ratelimit_party acct = {&o->acct, &o->day, strtoll(t[5], NULL, 10)};
    struct ratelimit_party client = {NULL, NULL, 0}, *cp = NULL;
    if (strcmp(t[6], "-") != 0) {
        struct oracle_client *c = oracle_client(o, t[6]);
        if (strcmp(t[7], "-") != 0) {
            double crate = strtod(t[7], NULL);
            if (!c->has_rl) {
                ratelimit_init(&c->rl, crate);
                c->has_rl = true;
            }
            ratelimit_set_rate(&c->rl, crate);
            client.rl = &c->rl;
        }
        if (strcmp(t[8], "-") != 0) {
            if (!c->has_day) {
                ratelimit_day_init(&c->day);
                c->has_day = true;
            }
            client.day = &c->day;
            client.quota = strtoll(t[8], NULL, 10);
        }
        cp = client.rl || client.day ? &client : NULL;
    }
    struct ratelimit_answer a;
    if (ratelimit_take(&acct, cp, cost, now, horizon, &a) < 0) {
        printf("error\n");
        return;
    }
    const char *why = ratelimit_reason_name(a.reason);
    printf("%d %.17g %s %.17g %" PRId64 "\n", a.granted ? 1 : 0, a.wait_ms, why[0] ? why : "-",
           a.rate, a.used);
}

/* throttled: a Throttling answer at now. */
static void oracle_throttled(struct oracle *o, int64_t now)
{
    if (!o->has_acct) {
        printf("0 -\n");
        return;
    }
    bool cut = ratelimit_throttled(&o->acct, now);
    printf("%d %.17g\n", cut ? 1 : 0, ratelimit_effective(&o->acct, now));
}

/* status: what `sesgate status` reads. */
static void oracle_status(struct oracle *o, int64_t now)
{
    int64_t used = ratelimit_day_used(&o->day, now);
    if (!o->has_acct) {
        printf("- - - - %" PRId64 " -\n", used);
        return;
    }
    const struct ratelimit *rl = &o->acct;
    oracle_num(ratelimit_effective(rl, now), true, " ");
    oracle_num(rl->rate, true, " ");
    oracle_num(rl->cut_rate, rl->cut, " ");
    oracle_num((double)rl->cut_at, rl->cut, " ");
    printf("%" PRId64 " ", used);
    oracle_num(ratelimit_tat(rl), rl->tat_ms != INT64_MIN, "\n");
}

int main(void)
{
    static struct oracle o;
    ratelimit_day_init(&o.day);
    char line[1024];
    while (fgets(line, sizeof line, stdin)) {
        char *t[10] = {0};
        int n = 0;
        for (char *s = strtok(line, " \n"); s && n < 10; s = strtok(NULL, " \n"))
            t[n++] = s;
        if (n == 9 && strcmp(t[0], "take") == 0)
            oracle_take(&o, t);
        else if (n == 2 && strcmp(t[0], "throttled") == 0)
            oracle_throttled(&o, strtoll(t[1], NULL, 10));
        else if (n == 2 && strcmp(t[0], "status") == 0)
            oracle_status(&o, strtoll(t[1], NULL, 10));
        else
            printf("error\n");
        fflush(stdout);
    }
    return 0;
}
