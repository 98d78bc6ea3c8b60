/* worker: drains the queue (docs/QUEUE.md). Reads client streams with a
 * consumer group, loads each entry's batch, paces the sends through the
 * shared rate limiter, sends each copy re-signed through the upstream, and
 * records the outcome and acknowledges in one script.
 */
#include "worker.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "addr.h"
#include "backoff.h"
#include "buf.h"
#include "bulk.h"
#include "clock.h"
#include "inflight.h"
#include "log.h"
#include "metrics.h"
#include "reply.h"
#include "rscript.h"
#include "sesans.h"
#include "suplist.h"
#include "supsync.h"
#include "util.h"
#include "wbatch.h"

#define WORKER_IDLE_MS      50    /* wait after a read that returned nothing */
#define WORKER_TICK_MS      1000  /* due retries and reclaims */
#define WORKER_STREAMS_MS   250   /* how often a reading worker looks for new client streams */
#define WORKER_HOLD_MS      60000 /* daily quota exceeded: try again after this */
#define WORKER_RECORD_MS    250   /* an outcome Redis did not take: record it again after this */
#define WORKER_RECLAIM_MAX  100
#define WORKER_DUE_MAX      1000
#define WORKER_MAX_INFLIGHT 1024
/* ms: a send timer firing this much past its reserved time gives the time
 * up and reserves again: within LIMITER_PACE's margin (3 % of a second), a
 * late copy cannot push a one-second window past the rate. */
#define WORKER_LATE_MS       LIMITER_BUNDLE_MS
#define WORKER_GATE_AGAIN_MS 1000 /* the gate could not answer: ask again after this */
#define WORKER_SKEW_MS       5000 /* a copy refused for our clock goes again after 5-10 s */

/* A batch as a worker needs it, shared by the sends of its copies. */
/* A client's queue stream, as one worker reads it. Kept for the worker's
 * life once seen (one per client that ever queued a batch). */
struct worker_stream {
    struct worker *w;
    char *key;             /* P:{P}:q:<client> */
    char claim_cursor[48]; /* XAUTOCLAIM's */
    size_t jobs;           /* this worker's jobs read from it */
    uint64_t served;       /* recipients granted, in the pace queue's fair-share clock */
};

/* One stream entry being handled. */
struct worker_job {
    struct worker *w;
    struct worker_stream *ws; /* the stream it was read from */
    char *entry;
    char *bn;       /* the batch number of the entry */
    char *batch_id; /* the batch id, once the batch is loaded */
    long index;
    int attempt;
    bool reclaimed;
    struct wbatch *b;
    char *addr;
    struct copybody body;      /* the copy's own part, produced as it is sent */
    struct inflight_wait room; /* queued while its bytes wait for room */
    size_t held;               /* bytes it holds under max_inflight_bytes */
    struct upstream_call *call;
    bool redis_pending;
    char *outcome[4];           /* kind and arguments, kept until Redis took them */
    struct event *record_timer; /* records the outcome again after a Redis outage */
    struct event *gate_timer;   /* asks the gate again after it could not answer */
    bool pacing;                /* waiting in the worker's pace queue for the limiter */
    bool waiting;               /* pacing, its send timer pending, or ready: not a send in flight */
    bool ready;                 /* its reserved time came with every slot busy: in the ready list */
    struct event *send_timer;   /* sends at its reserved time */
    struct timespec due;        /* the reserved time its send timer was set for */
    bool retaken;               /* its timer fired too late once and it took a new reservation */
    bool reserved;              /* it holds a reservation of the rate (limiter_take) */
    struct worker_job *pnext;   /* next in the pace queue */
    struct worker_job *rprev, *rnext; /* neighbours in the ready list */
    struct worker_job *prev, *next;
    /* Copy 0 whose riders are partly suppressed: the ones that go (shallow
     * copies of b's), else NULL (b's riders). */
    struct fanout_rcpt *riders;
    size_t nriders;
    /* A destination of a bulk batch (wbatch.bulk): addr holds its unit. */
    int64_t ucost;               /* its recipients */
    struct worker_job *lead;     /* goes in lead's bulk call */
    struct worker_job **members; /* a lead: the units that go with it, in order */
    size_t nmembers, cap_members;
    struct buf call_body; /* a lead: its bulk call's body */
    size_t call_off;      /* what of it went out */
};

/* A batch being loaded (load.lua), and the jobs waiting for it: one load
 * per batch however many of its copies were read at once (a large message
 * is fetched once, not once per copy). */
struct worker_load {
    struct worker *w;
    char *n;
    struct worker_job **jobs;
    size_t njobs, cap;
    struct worker_load *next;
};

/* A client whose own rate refused a take: its copies wait until then. */
struct worker_wait {
    char *client;
    int64_t until_ms; /* monotonic ms */
};

struct worker {
    struct event_base *base;
    const struct config *cfg;
    struct queue *q;
    struct rscript *scripts; /* q's */
    struct redis *rd;        /* the scripts' connection */
    struct upstream *up;
    struct resign *rs;
    char *name;
    char *kqs, *kd, *kdlq;
    char *kprefix; /* P:{P}: */
    char *kstream; /* P:{P}: or P:{P}:u:<U>: (its streams are kstream q:<client>) */
    const struct config_upstream *ucfg; /* the upstream it drains to */
    struct worker_stream **streams;     /* every client stream seen in kqs */
    size_t nstreams;
    uint64_t served;    /* fair-share clock: the least served client's count at the last take */
    int64_t streams_ms; /* when the stream set was last read (monotonic ms) */
    struct event *read_timer;
    struct event *tick_timer;
    bool stopped, freed, reading;
    int redis_pending; /* reads, ticks and group creation in flight */
    size_t inflight;   /* jobs */
    struct worker_job *jobs;
    struct wbatch_cache cache;
    struct worker_load *loads;                /* batches being loaded */
    struct limiter *lim;                      /* NULL or off: send at once */
    struct worker_job *pace_head, *pace_tail; /* jobs waiting for a reservation, in order */
    size_t pacing;                            /* jobs in the pace queue */
    size_t waiting;                           /* jobs pacing or waiting for their reserved time */
    struct worker_job **group;                /* the jobs the take in flight is for */
    size_t ngroup, group_cap;
    struct worker_wait *waits; /* clients refused by their own rate, until when */
    size_t nwaits;
    bool taking;              /* a take is in flight */
    struct event *pace_timer; /* retries a refused take */
    int64_t hold_until_ms;    /* daily quota used up: read nothing before this (monotonic ms) */
    int64_t skew_logged_ms;   /* the last upstream_clock_skew warning (monotonic ms) */
    /* Jobs whose reserved time came while every slot was busy, oldest first. */
    struct worker_job *ready_head, *ready_tail;
    /* Jobs whose recipients are to be looked up in the suppression list:
     * one HMGET for those of one read, sent once the replies of the read
     * were handled (sup_timer, zero timeout). */
    char *ksup; /* P:{P}:sup */
    struct worker_job **sup;
    size_t nsup, cap_sup;
    struct event *sup_timer;
    struct supsync *supsync; /* [suppression] sync_ses: the mirror of SES's list */
};

static void worker_read(struct worker *w);
static void worker_job_step(struct worker_job *j);
static void worker_got_load(const redisReply *reply, const char *err, void *arg);
static void worker_outcome(struct worker_job *j, const char *kind, const char *a1, const char *a2,
                           const char *a3);

/* Free w once it was released and nothing refers to it any more. */
static void worker_maybe_free(struct worker *w)
{
    if (!w->freed || w->redis_pending > 0 || w->jobs)
        return;
    wbatch_cache_clear(&w->cache);
    for (size_t i = 0; i < w->nwaits; i++)
        free(w->waits[i].client);
    free(w->waits);
    free(w->group);
    free(w->name);
    for (size_t i = 0; i < w->nstreams; i++) {
        free(w->streams[i]->key);
        free(w->streams[i]);
    }
    free(w->streams);
    free(w->kqs);
    free(w->kprefix);
    free(w->kstream);
    free(w->kd);
    free(w->kdlq);
    free(w->ksup);
    free(w->sup);
    free(w);
}

/* Take j out of w's pace queue. */
static void worker_pace_unlink(struct worker *w, struct worker_job *j)
{
    struct worker_job **pp = &w->pace_head, *prev = NULL;
    while (*pp && *pp != j) {
        prev = *pp;
        pp = &(*pp)->pnext;
    }
    if (*pp == NULL)
        return;
    *pp = j->pnext;
    if (w->pace_tail == j)
        w->pace_tail = prev;
    j->pnext = NULL;
    j->pacing = false;
    w->pacing--;
}

/* Take j out of w's ready list. */
static void worker_ready_unlink(struct worker *w, struct worker_job *j)
{
    if (j->rprev)
        j->rprev->rnext = j->rnext;
    else
        w->ready_head = j->rnext;
    if (j->rnext)
        j->rnext->rprev = j->rprev;
    else
        w->ready_tail = j->rprev;
    j->rprev = j->rnext = NULL;
    j->ready = false;
}

static void worker_ready_run(struct worker *w);
static void worker_pace_run(struct worker *w);

/* Take j out of the bulk call it was to go in, as lead or member: a lead's
 * members go their own way again (each is then settled or sent alone). */
static void worker_bundle_leave(struct worker_job *j)
{
    if (j->lead) {
        struct worker_job *l = j->lead;
        for (size_t i = 0; i < l->nmembers; i++)
            if (l->members[i] == j) {
                memmove(l->members + i, l->members + i + 1,
                        (l->nmembers - i - 1) * sizeof *l->members);
                l->nmembers--;
                break;
            }
        j->lead = NULL;
    }
    for (size_t i = 0; i < j->nmembers; i++)
        j->members[i]->lead = NULL;
    free(j->members);
    j->members = NULL;
    j->nmembers = j->cap_members = 0;
}

/* Give back the bytes j's send held under max_inflight_bytes. */
static void worker_release(struct worker_job *j)
{
    size_t n = j->held;
    j->held = 0;
    if (n > 0)
        inflight_release(n);
}

/* Remove j and release it; a slot it held goes to the ready list first,
 * then the worker may read more. */
static void worker_job_end(struct worker_job *j)
{
    struct worker *w = j->w;
    if (j->prev)
        j->prev->next = j->next;
    else
        w->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    w->inflight--;
    j->ws->jobs--;
    worker_bundle_leave(j);
    buf_free(&j->call_body);
    wbatch_unref(j->b);
    free(j->entry);
    free(j->bn);
    free(j->batch_id);
    free(j->addr);
    free(j->riders);
    inflight_cancel(&j->room);
    worker_release(j);
    copybody_cleanup(&j->body);
    for (int i = 0; i < 4; i++)
        free(j->outcome[i]);
    if (j->record_timer)
        event_free(j->record_timer);
    if (j->gate_timer)
        event_free(j->gate_timer);
    if (j->send_timer)
        event_free(j->send_timer);
    if (j->pacing)
        worker_pace_unlink(w, j);
    if (j->ready)
        worker_ready_unlink(w, j);
    if (j->waiting)
        w->waiting--;
    free(j);
    if (w->freed) {
        worker_maybe_free(w);
        return;
    }
    worker_ready_run(w);
    worker_read(w);
}

/* Start handling the entry e ([id, [field, value...]]) of stream ws. */
static void worker_job_start(struct worker_stream *ws, const redisReply *e, bool reclaimed)
{
    struct worker *w = ws->w;
    if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
        e->element[0]->type != REDIS_REPLY_STRING)
        return;
    const redisReply *b = reply_field(e->element[1], "b");
    const redisReply *i = reply_field(e->element[1], "i");
    const redisReply *a = reply_field(e->element[1], "a");
    struct worker_job *j = xcalloc(1, sizeof *j);
    j->w = w;
    j->ws = ws;
    ws->jobs++;
    j->entry = xstrdup(e->element[0]->str);
    j->reclaimed = reclaimed;
    j->index = -1;
    if (b && b->type == REDIS_REPLY_STRING && i && i->type == REDIS_REPLY_STRING) {
        j->bn = xstrdup(b->str);
        j->index = strtol(i->str, NULL, 10);
    }
    if (a && a->type == REDIS_REPLY_STRING)
        j->attempt = (int)strtol(a->str, NULL, 10);
    j->next = w->jobs;
    if (w->jobs)
        w->jobs->prev = j;
    w->jobs = j;
    w->inflight++;
    worker_job_step(j);
}

/* ---- the steps of one job, each a Redis call or the upstream call ---- */

/* A Redis answer for a job: free it if the worker went away meanwhile. */
static bool worker_job_orphaned(struct worker_job *j)
{
    j->redis_pending = false;
    if (j->w->freed) {
        worker_job_end(j);
        return true;
    }
    return false;
}

/* XACK + XDEL answered. */
static void worker_acked(const redisReply *reply, const char *err, void *arg)
{
    struct worker_job *j = arg;
    if (worker_job_orphaned(j))
        return;
    if (err)
        log_event(LOG_WARN, "queue_ack_failed", "entry", j->entry, "error", err, NULL);
    worker_job_end(j);
}

/* A reply nothing waits for: the XACK before an XDEL (the XDEL's answer
 * ends the job), the hold note for `sesgate status`. */
static void worker_reply_ignored(const redisReply *reply, const char *err, void *arg)
{
}

/* Acknowledge and delete j's entry (the batch is gone): two commands sent
 * in order on the one connection. */
static void worker_ack(struct worker_job *j)
{
    struct worker *w = j->w;
    j->redis_pending = true;
    redis_command(w->rd, worker_reply_ignored, NULL, "XACK %s w %s", j->ws->key, j->entry);
    redis_command(w->rd, worker_acked, j, "XDEL %s %s", j->ws->key, j->entry);
}

static void worker_record(struct worker_job *j);

/* True when Redis did not run a script for a reason that passes: the
 * connection dropped, or the server is loading, busy, read-only or full. */
static bool worker_redis_transient(const redisReply *reply, const char *err)
{
    static const char *const codes[] = {"OOM",      "LOADING",    "BUSY",
                                        "READONLY", "MASTERDOWN", "TRYAGAIN"};
    if (reply == NULL)
        return true;
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++)
        if (strncmp(err, codes[i], strlen(codes[i])) == 0)
            return true;
    return false;
}

/* The record timer fired: try to record j's outcome again. */
static void worker_record_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker_record(arg);
}

/* outcome.lua answered. */
static void worker_outcome_done(const redisReply *reply, const char *err, void *arg)
{
    struct worker_job *j = arg;
    if (worker_job_orphaned(j))
        return;
    if (err && strncmp(err, "NOBATCH", 7) == 0) {
        worker_ack(j);
        return;
    }
    if (err && worker_redis_transient(reply, err)) {
        /* The copy went out: keep its outcome and record it once Redis is
         * back, so the entry is not sent again when it is reclaimed. */
        if (j->record_timer == NULL) {
            log_event(LOG_WARN, "queue_outcome_pending", "batch", j->batch_id, "entry", j->entry,
                      "error", err, NULL);
            j->record_timer = evtimer_new(j->w->base, worker_record_cb, j);
        }
        struct timeval tv = {0, WORKER_RECORD_MS * 1000};
        evtimer_add(j->record_timer, &tv);
        return;
    }
    if (err) /* the entry stays pending and is reclaimed after the lease */
        log_event(LOG_WARN, "queue_outcome_failed", "batch", j->batch_id, "entry", j->entry,
                  "error", err, NULL);
    else if (j->record_timer)
        log_event(LOG_INFO, "queue_outcome_recorded", "batch", j->batch_id, "entry", j->entry,
                  NULL);
    worker_job_end(j);
}

/* Run outcome.lua with j's kept outcome. */
static void worker_record(struct worker_job *j)
{
    struct worker *w = j->w;
    char *kb = rscript_key(w->scripts, "b:", j->batch_id),
         *ko = rscript_key(w->scripts, "o:", j->batch_id);
    char *kr = rscript_key(w->scripts, "r:", j->batch_id),
         *kt = rscript_key(w->scripts, "t:", j->batch_id);
    char *kn = rscript_key(w->scripts, "n:", j->bn);
    char *kf = rscript_key(w->scripts, "f:", j->batch_id),
         *kh = rscript_key(w->scripts, "h:", j->batch_id);
    char *ke = rscript_key(w->scripts, "e:", j->batch_id), *km = NULL;
    /* A sent copy's MessageId (the outcome's first word: a note may
     * follow) is indexed for SES's events about it. */
    int64_t ittl = queue_index_ttl(w->cfg);
    const char *mid = j->outcome[0] && strcmp(j->outcome[0], "sent") == 0 ? j->outcome[1] : NULL;
    size_t midlen = mid ? strcspn(mid, " ") : 0;
    if (ittl > 0 && midlen > 0 && midlen <= QUEUE_MESSAGE_ID_MAX && strcmp(mid, "-") != 0) {
        char *m = xstrdup(mid);
        m[midlen] = '\0';
        km = rscript_key(w->scripts, "m:", m);
        free(m);
    }
    char idx[24], ttl[24], ittls[24];
    snprintf(idx, sizeof idx, "%ld", j->index);
    snprintf(ttl, sizeof ttl, "%" PRId64, w->cfg->status_ttl_ms);
    snprintf(ittls, sizeof ittls, "%" PRId64, ittl);
    const char *argv[20] = {kb, ko, j->ws->key, w->kd, w->kdlq, kr, kt, kn, kf, kh, ke};
    int n = 11;
    if (km)
        argv[n++] = km;
    int nkeys = n;
    argv[n++] = j->entry;
    argv[n++] = idx;
    for (int i = 0; i < 4 && j->outcome[i]; i++)
        argv[n++] = j->outcome[i];
    if (km)
        argv[n++] = ittls;
    argv[n++] = ttl;
    j->redis_pending = true;
    rscript_eval(w->scripts, RSCRIPT_OUTCOME, nkeys, n, argv, NULL, worker_outcome_done, j);
    free(ke);
    free(km);
    free(kf);
    free(kh);
    free(kb);
    free(ko);
    free(kr);
    free(kt);
    free(kn);
}

/* Record j's outcome: kind and up to three arguments (NULL: none). */
static void worker_outcome(struct worker_job *j, const char *kind, const char *a1, const char *a2,
                           const char *a3)
{
    const char *parts[4] = {kind, a1, a2, a3};
    for (int i = 0; i < 4 && parts[i]; i++)
        j->outcome[i] = xstrdup(parts[i]);
    worker_record(j);
}

/* Record a permanent failure of j. */
static void worker_dead(struct worker_job *j, const char *code, const char *message)
{
    char att[16];
    snprintf(att, sizeof att, "%d", j->attempt + 1);
    char idx[24];
    snprintf(idx, sizeof idx, "%ld", j->index);
    log_event(LOG_WARN, "queue_dead", "batch", j->batch_id, "index", idx, "code", code, "message",
              message, "attempts", att, NULL);
    metrics_queue_dead();
    worker_outcome(j, "dead", code, message, att);
}

/* Schedule j again after delay_ms as attempt number next_attempt. */
static void worker_retry(struct worker_job *j, int64_t delay_ms, int next_attempt, const char *why,
                         const char *detail)
{
    char due[24], att[16], idx[24], delay[24];
    snprintf(due, sizeof due, "+%" PRId64, delay_ms); /* on Redis's clock */
    snprintf(att, sizeof att, "%d", next_attempt);
    snprintf(idx, sizeof idx, "%ld", j->index);
    snprintf(delay, sizeof delay, "%" PRId64, delay_ms);
    log_event(LOG_INFO, "queue_retry", "batch", j->batch_id, "index", idx, "reason", why, "attempt",
              att, "delay_ms", delay, NULL);
    metrics_queue_retried();
    worker_outcome(j, "retry", due, att, NULL);
}

/* Recipients j's copy counts for: its To recipient, and on copy 0 the
 * Cc and Bcc riders. */
static int64_t worker_cost(const struct worker_job *j)
{
    if (j->b && j->b->bulk)
        return j->ucost;
    if (j->index != 0 || j->b == NULL)
        return 1;
    return 1 + (int64_t)(j->riders ? j->nriders : j->b->nriders);
}

/* Settle j with the class of its upstream answer: cls, SES's code and
 * message ("" when none), and for a sent copy its MessageId (NULL: read
 * from res). entry: the answer is one destination's in a bulk answer
 * (code is its status), not the call's. */
static void worker_settle(struct worker_job *j, const struct upstream_response *res,
                          enum backoff_class cls, const char *code, const char *message,
                          const char *message_id, bool entry)
{
    struct worker *w = j->w;
    int api = j->b->api;
    bool transport = !entry && res->error != UPSTREAM_OK;
    char idx[24];
    snprintf(idx, sizeof idx, "%ld", j->index);
    switch (cls) {
    case BACKOFF_OK: {
        char msgid[256] = "";
        if (message_id != NULL)
            snprintf(msgid, sizeof msgid, "%s", message_id);
        else if (!sesans_message_id(api, res->body.data ? res->body.data : "", res->body.len, msgid,
                                    sizeof msgid))
            msgid[0] = '\0';
        if (msgid[0] == '\0')
            snprintf(msgid, sizeof msgid, "-");
        log_event(LOG_DEBUG, "queue_sent", "batch", j->batch_id, "index", idx, "message_id", msgid,
                  NULL);
        metrics_queue_sent();
        metrics_upstream_sent(w->ucfg->name);
        worker_outcome(j, "sent", msgid, NULL, NULL);
        return;
    }
    case BACKOFF_QUOTA:
        if (w->lim) /* not sent: SES does not count it either */
            limiter_refund(w->lim, config_client_by_name(w->cfg, j->b->client), worker_cost(j));
        worker_retry(j, WORKER_HOLD_MS, j->attempt, "quota", NULL);
        return;
    case BACKOFF_THROTTLED: {
        /* Sent faster than SES allows (the caller cut the shared rate): the
         * copy goes again later and this never counts against max_attempts. */
        if (w->lim)
            limiter_refund(w->lim, config_client_by_name(w->cfg, j->b->client), worker_cost(j));
        uint64_t rnd = 0;
        RAND_bytes((unsigned char *)&rnd, sizeof rnd);
        worker_retry(j, backoff_delay_ms(1, BACKOFF_BASE_MS, BACKOFF_CAP_MS, rnd), j->attempt,
                     code[0] ? code : "Throttling", NULL);
        return;
    }
    case BACKOFF_RETRY:
        if (backoff_give_up(j->attempt, (int)w->cfg->max_attempts)) {
            char c[160], m[600];
            snprintf(c, sizeof c, "%s", transport ? "Transport" : code[0] ? code : "HTTP");
            if (transport)
                snprintf(m, sizeof m, "%s", res->errmsg);
            else if (entry)
                snprintf(m, sizeof m, "%s", message);
            else
                snprintf(m, sizeof m, "%s%sHTTP %ld", message, message[0] ? "; " : "", res->status);
            worker_dead(j, c, m);
            return;
        }
        {
            uint64_t rnd = 0;
            RAND_bytes((unsigned char *)&rnd, sizeof rnd);
            int64_t delay = backoff_delay_ms(j->attempt, BACKOFF_BASE_MS, BACKOFF_CAP_MS, rnd);
            worker_retry(j, delay, j->attempt + 1,
                         transport ? "transport" : (code[0] ? code : backoff_class_name(cls)),
                         transport ? res->errmsg : NULL);
        }
        return;
    default:
        worker_dead(j, code[0] ? code : "Rejected", message[0] ? message : "rejected upstream");
        return;
    }
}

/* SES accepted the bulk call of the n destinations in all: each is settled
 * by its own entry of the answer, so a throttled or transient one is tried
 * again alone and its sent neighbours are not sent twice. */
static void worker_bulk_sent(struct worker_job **all, size_t n, const struct upstream_response *res)
{
    struct worker *w = all[0]->w;
    struct bulk_result *rs = xcalloc(n, sizeof *rs);
    int got = bulk_answer_parse(all[0]->b->api, res->body.data, res->body.len, rs, n);
    for (int k = 0; k < got; k++)
        if (bulk_status_class(rs[k].status) == BACKOFF_THROTTLED && w->lim) {
            limiter_throttled(w->lim);
            break;
        }
    for (size_t k = 0; k < n; k++) {
        if ((int)k >= got) {
            /* Accepted, but SES's answer does not say how it fared: sending
             * it again could deliver it twice. */
            worker_dead(all[k], "UnknownResult",
                        "the upstream's answer to the bulk call named no result for it");
            continue;
        }
        worker_settle(all[k], res, bulk_status_class(rs[k].status), rs[k].status, rs[k].error,
                      rs[k].message_id, true);
    }
    free(rs);
}

/* The upstream answered j's send: for j alone, or for every destination of
 * its bulk call. */
static void worker_sent(struct upstream_response *res, void *arg)
{
    struct worker_job *j = arg;
    struct worker *w = j->w;
    j->call = NULL;
    copybody_cleanup(&j->body);
    buf_free(&j->call_body);
    worker_release(j);
    size_t n = 1 + j->nmembers;
    struct worker_job **all = xcalloc(n, sizeof *all);
    all[0] = j;
    if (j->nmembers)
        memcpy(all + 1, j->members, j->nmembers * sizeof *all);
    worker_bundle_leave(j);
    int api = j->b->api;
    char code[128] = "", message[512] = "";
    bool transport = res->error != UPSTREAM_OK;
    if (!transport && res->status >= 300)
        sesans_error(api, res->error_type, res->body.data, res->body.len, code, sizeof code,
                     message, sizeof message);
    enum backoff_class cls =
        backoff_classify(api, res->status, code[0] ? code : NULL, message, transport);
    if (!transport && res->status >= 400 && backoff_clock_skew(code, message)) {
        /* Our clock is off: SES did not act on it, and the copy goes again
         * later without counting an attempt (it would otherwise become a
         * dead letter, for no fault of its own, after max_attempts). */
        queue_clock_skew(&w->skew_logged_ms, code, message);
        for (size_t k = 0; k < n; k++) {
            if (w->lim)
                limiter_refund(w->lim, config_client_by_name(w->cfg, all[k]->b->client),
                               worker_cost(all[k]));
            uint64_t rnd = 0;
            RAND_bytes((unsigned char *)&rnd, sizeof rnd);
            worker_retry(all[k], WORKER_SKEW_MS + (int64_t)(rnd % WORKER_SKEW_MS), all[k]->attempt,
                         "clock_skew", NULL);
        }
        free(all);
        return;
    }
    if (j->b->bulk && cls == BACKOFF_OK) {
        worker_bulk_sent(all, n, res);
        free(all);
        return;
    }
    if (cls == BACKOFF_THROTTLED && w->lim)
        limiter_throttled(w->lim);
    for (size_t k = 0; k < n; k++)
        worker_settle(all[k], res, cls, code, message, NULL, false);
    free(all);
}

/* upstream: the next bytes of j's body. */
static size_t worker_body_read(void *arg, char *out, size_t n)
{
    struct worker_job *j = arg;
    return copybody_read(&j->body, out, n);
}

/* upstream: j's body from its first byte again. */
static void worker_body_rewind(void *arg)
{
    struct worker_job *j = arg;
    copybody_rewind(&j->body);
}

static void worker_send_go(void *arg);
static void worker_bulk_send(struct worker_job *j);

/* upstream: the next bytes of j's bulk call. */
static size_t worker_call_read(void *arg, char *out, size_t n)
{
    struct worker_job *j = arg;
    size_t left = j->call_body.len - j->call_off;
    if (n > left)
        n = left;
    memcpy(out, j->call_body.data + j->call_off, n);
    j->call_off += n;
    return n;
}

/* upstream: j's bulk call from its first byte again. */
static void worker_call_rewind(void *arg)
{
    struct worker_job *j = arg;
    j->call_off = 0;
}

/* Send lead j's bulk call: its destination and its members', in order,
 * once its bytes have room. */
static void worker_bulk_send(struct worker_job *j)
{
    struct wbatch *b = j->b;
    if (b->body_err.code != SESERR_NONE) {
        struct seserr e = b->body_err;
        while (j->nmembers) {
            struct worker_job *m = j->members[0];
            worker_bundle_leave(m);
            worker_dead(m, seserr_name(e.code),
                        e.message[0] ? e.message : seserr_default_message(e.code));
        }
        worker_dead(j, seserr_name(e.code),
                    e.message[0] ? e.message : seserr_default_message(e.code));
        return;
    }
    size_t n = 1 + j->nmembers;
    const char **units = xcalloc(n, sizeof *units);
    size_t *lens = xcalloc(n, sizeof *lens);
    for (size_t k = 0; k < n; k++) {
        units[k] = k == 0 ? j->addr : j->members[k - 1]->addr;
        lens[k] = strlen(units[k]);
    }
    buf_reset(&j->call_body);
    j->call_off = 0;
    bulk_body(b->api, b->body.pre, b->body.pre_len, units, lens, n, &j->call_body);
    free(units);
    free(lens);
    if (!inflight_take(j->call_body.len)) {
        inflight_wait(&j->room, j->call_body.len, worker_send_go, j);
        return;
    }
    worker_send_go(j);
}

/* Measure j's copy and send it once its bytes have room; its body is
 * produced as libcurl sends it. */
static void worker_send_copy(struct worker_job *j)
{
    struct wbatch *b = j->b;
    struct seserr e = b->body_err;
    if (b->bulk) {
        worker_bulk_send(j);
        return;
    }
    copybody_cleanup(&j->body);
    if (e.code == SESERR_NONE)
        copybody_init(&j->body, &b->body, j->addr, j->index == 0,
                      j->index != 0 ? NULL
                      : j->riders   ? j->riders
                                    : b->riders,
                      j->index != 0 ? 0
                      : j->riders   ? j->nriders
                                    : b->nriders,
                      &e);
    if (e.code != SESERR_NONE) {
        worker_dead(j, seserr_name(e.code),
                    e.message[0] ? e.message : seserr_default_message(e.code));
        return;
    }
    if (!inflight_take(j->body.len)) {
        inflight_wait(&j->room, j->body.len, worker_send_go, j);
        return;
    }
    worker_send_go(j);
}

/* inflight: j's body has room: sign and send it. */
static void worker_send_go(void *arg)
{
    struct worker_job *j = arg;
    struct worker *w = j->w;
    struct wbatch *b = j->b;
    size_t len = b->bulk ? j->call_body.len : j->body.len;
    j->held = len;
    const char *path =
        b->api == 2 ? (b->bulk ? "/v2/email/outbound-bulk-emails" : "/v2/email/outbound-emails")
                    : "/";
    const char *ctype =
        b->api == 2 ? "application/json" : "application/x-www-form-urlencoded; charset=utf-8";
    char sha[UTIL_SHA256_HEX_LEN + 1];
    if (b->bulk)
        util_sha256_hex(j->call_body.data ? j->call_body.data : "", len, sha);
    char *url = NULL;
    struct curl_slist *headers = NULL;
    if (resign_request(w->rs, "POST", path, strlen(path), "", 0, ctype, strlen(ctype),
                       b->bulk ? sha : j->body.sha256, time(NULL), &url, &headers) < 0) {
        worker_release(j);
        while (j->nmembers) {
            struct worker_job *m = j->members[0];
            worker_bundle_leave(m);
            worker_dead(m, "internal", "the request could not be signed");
        }
        worker_dead(j, "internal", "the request could not be signed");
        return;
    }
    struct upstream_body src = {worker_body_read, worker_body_rewind, j};
    if (b->bulk)
        src = (struct upstream_body){worker_call_read, worker_call_rewind, j};
    j->call = upstream_start_body(w->up, "POST", url, headers, &src, len, worker_sent, j);
    free(url);
}

static void worker_pace(struct worker_job *j);
static void worker_load_addr(struct worker_job *j);

/* A gate.lua call in flight: the jobs it is for, all of one batch. */
struct worker_gate {
    size_t n;
    struct worker_job *jobs[];
};

/* j will not be sent: the reservation of the rate it holds goes back. */
static void worker_unreserve(struct worker_job *j)
{
    struct worker *w = j->w;
    if (!j->reserved)
        return;
    j->reserved = false;
    if (w->lim)
        limiter_refund(w->lim, config_client_by_name(w->cfg, j->b->client), worker_cost(j));
}

static void worker_gate(struct worker *w, struct worker_job **jobs, size_t n);

/* The gate could not answer j: it waits for its turn of the rate again
 * (or, without a limiter, asks the gate again). */
static void worker_gate_again_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker_job *j = arg;
    if (limiter_on(j->w->lim))
        worker_pace(j);
    else
        worker_gate(j->w, &j, 1);
}

/* gate.lua answered: each job is sent, paced first (its batch was resumed
 * while it skipped the limiter), or let go without a send. */
static void worker_gate_done(const redisReply *reply, const char *err, void *arg)
{
    struct worker_gate *g = arg;
    struct worker *w = g->jobs[0]->w;
    bool answered =
        err == NULL && reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == g->n;
    bool gone = err != NULL && strncmp(err, "NOBATCH", 7) == 0;
    if (err && !gone && strncmp(err, RSCRIPT_CLOSED, strlen(RSCRIPT_CLOSED)) != 0)
        log_event(LOG_WARN, "queue_gate_failed", "batch", g->jobs[0]->batch_id, "error", err, NULL);
    bool freed = w->freed;
    for (size_t k = 0; k < g->n; k++) /* every job's Redis call answered */
        if (worker_job_orphaned(g->jobs[k]))
            g->jobs[k] = NULL;
    if (freed) {
        free(g);
        return;
    }
    /* A bulk call goes with the destinations the gate let go, led by the
     * first of them; the others leave it. */
    bool *member = xcalloc(g->n, sizeof *member);
    if (g->n > 1) {
        struct worker_job *lead = NULL;
        for (size_t k = 0; k < g->n; k++)
            worker_bundle_leave(g->jobs[k]);
        for (size_t k = 0; answered && k < g->n; k++) {
            struct worker_job *j = g->jobs[k];
            const redisReply *code = reply->element[k];
            if (code->type != REDIS_REPLY_STRING || strcmp(code->str, "go") != 0)
                continue;
            if (lead == NULL) {
                lead = j;
                continue;
            }
            if (lead->nmembers == lead->cap_members) {
                lead->cap_members = lead->cap_members ? 2 * lead->cap_members : 8;
                lead->members = xrealloc(lead->members, lead->cap_members * sizeof *lead->members);
            }
            lead->members[lead->nmembers++] = j;
            j->lead = lead;
            member[k] = true;
        }
    }
    for (size_t k = 0; k < g->n; k++) {
        struct worker_job *j = g->jobs[k];
        if (member[k]) /* sent, or settled, with its lead */
            continue;
        const redisReply *code = answered ? reply->element[k] : NULL;
        if (gone) {
            /* expired since it was loaded: nothing to record */
            worker_unreserve(j);
            wbatch_cache_drop(&w->cache, j->bn);
            worker_ack(j);
            continue;
        }
        if (code == NULL || code->type != REDIS_REPLY_STRING) {
            /* Redis could not answer (away, full, loading): not sent; its
             * reservation goes back and it asks again in a while, rather
             * than waiting for the claim lease */
            worker_unreserve(j);
            if (j->gate_timer == NULL)
                j->gate_timer = evtimer_new(w->base, worker_gate_again_cb, j);
            struct timeval tv = {WORKER_GATE_AGAIN_MS / 1000, (WORKER_GATE_AGAIN_MS % 1000) * 1000};
            evtimer_add(j->gate_timer, &tv);
            continue;
        }
        if (strcmp(code->str, "go") == 0) {
            j->b->state = WBATCH_RUNNING;
            if (j->addr == NULL)
                worker_load_addr(j); /* its batch was known paused or cancelled */
            else if (!j->reserved && limiter_on(w->lim))
                worker_pace(j);
            else
                worker_send_copy(j);
            continue;
        }
        if (strcmp(code->str, "paused") == 0)
            j->b->state = WBATCH_PAUSED;
        else if (strcmp(code->str, "cancelled") == 0)
            j->b->state = WBATCH_CANCELLED;
        char idx[24];
        snprintf(idx, sizeof idx, "%ld", j->index);
        log_event(LOG_DEBUG, "queue_gated", "batch", j->batch_id, "index", idx, "gate", code->str,
                  NULL);
        worker_unreserve(j);
        worker_job_end(j);
    }
    free(member);
    free(g);
}

/* Ask gate.lua, right before they go upstream, whether the n jobs (all of
 * one batch and one stream) may be sent; each goes on in worker_gate_done. */
static void worker_gate(struct worker *w, struct worker_job **jobs, size_t n)
{
    struct worker_job *j0 = jobs[0];
    struct worker_gate *g = xcalloc(1, sizeof *g + n * sizeof *g->jobs);
    g->n = n;
    char *keys[9] = {rscript_key(w->scripts, "b:", j0->batch_id),
                     rscript_key(w->scripts, "o:", j0->batch_id),
                     NULL,
                     rscript_key(w->scripts, "h:", j0->batch_id),
                     rscript_key(w->scripts, "f:", j0->batch_id),
                     rscript_key(w->scripts, "r:", j0->batch_id),
                     rscript_key(w->scripts, "t:", j0->batch_id),
                     rscript_key(w->scripts, "n:", j0->bn),
                     rscript_key(w->scripts, "e:", j0->batch_id)};
    const char **argv = xcalloc(10 + 3 * n, sizeof *argv);
    char(*nums)[2][24] = xcalloc(n, sizeof *nums);
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%" PRId64, w->cfg->status_ttl_ms);
    for (int k = 0; k < 9; k++)
        argv[k] = k == 2 ? j0->ws->key : keys[k];
    argv[9] = ttl;
    for (size_t k = 0; k < n; k++) {
        struct worker_job *j = jobs[k];
        g->jobs[k] = j;
        j->redis_pending = true;
        snprintf(nums[k][0], sizeof nums[k][0], "%ld", j->index);
        snprintf(nums[k][1], sizeof nums[k][1], "%d", j->attempt);
        argv[10 + 3 * k] = j->entry;
        argv[11 + 3 * k] = nums[k][0];
        argv[12 + 3 * k] = nums[k][1];
    }
    rscript_eval(w->scripts, RSCRIPT_GATE, 9, (int)(10 + 3 * n), argv, NULL, worker_gate_done, g);
    for (int k = 0; k < 9; k++)
        free(keys[k]);
    free(nums);
    free(argv);
}

/* j's time to go upstream came: gate.lua says whether it is sent, and for
 * a bulk call's lead whether each of its destinations is. */
static void worker_send(struct worker_job *j)
{
    if (j->nmembers == 0) {
        worker_gate(j->w, &j, 1);
        return;
    }
    size_t n = 1 + j->nmembers;
    struct worker_job **all = xcalloc(n, sizeof *all);
    all[0] = j;
    memcpy(all + 1, j->members, j->nmembers * sizeof *all);
    worker_gate(j->w, all, n);
    free(all);
}

/* The batch is gone or complete: record nothing to send (outcome.lua acks a
 * replay, and NOBATCH acks here). */
static void worker_no_batch(struct worker_job *j)
{
    wbatch_cache_drop(&j->w->cache, j->bn);
    if (j->batch_id == NULL) {
        worker_ack(j); /* expired or never stored: nothing to record */
        return;
    }
    /* The batch is known but its template or recipient list is not: data
     * sesgate stored and still needs is gone. */
    log_event(LOG_ERROR, "batch_data_missing", "batch", j->batch_id, NULL);
    worker_dead(j, "BatchMissing", "the batch template or recipient is gone");
}

/* Send the jobs of the ready list, oldest first, while a slot is free.
 * concurrency bounds the sends in flight: a reserved time that comes while
 * every slot is busy waits in the ready list for one (a slow upstream then
 * does not pile up sends, nor a crash resends more than concurrency). */
static void worker_ready_run(struct worker *w)
{
    size_t max = w->cfg->concurrency > 0 ? (size_t)w->cfg->concurrency : 1;
    if (max > WORKER_MAX_INFLIGHT)
        max = WORKER_MAX_INFLIGHT;
    while (w->ready_head && w->inflight - w->waiting < max) {
        struct worker_job *j = w->ready_head;
        worker_ready_unlink(w, j);
        j->waiting = false;
        w->waiting--;
        worker_send(j);
    }
}

/* j gives its reservation up and takes a new one, first in line. */
static void worker_retake(struct worker_job *j)
{
    struct worker *w = j->w;
    j->retaken = true;
    worker_unreserve(j);
    j->pacing = true;
    j->pnext = w->pace_head;
    w->pace_head = j;
    if (w->pace_tail == NULL)
        w->pace_tail = j;
    w->pacing++;
}

/* The send timer of j fired: its reserved time has come. It joins the
 * ready list behind the jobs already waiting for a slot. */
static void worker_send_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct worker_job *j = arg;
    struct worker *w = j->w;
    if ((what & EV_TIMEOUT) && !j->retaken && limiter_ms_until(&j->due) < -WORKER_LATE_MS) {
        /* The loop was busy past the reserved time: sent now, the copy
         * would bunch with those reserved after it and a one-second window
         * could pass the rate. Its reservation is given up (its recipients
         * leave the day window again) and it takes a new one, first in
         * line; once only, so that a loop that stays busy still sends. */
        metrics_pace_late();
        /* a bulk call's destinations all go back, in their order */
        while (j->nmembers) {
            struct worker_job *m = j->members[j->nmembers - 1];
            worker_bundle_leave(m);
            worker_retake(m);
        }
        worker_retake(j);
        worker_pace_run(w);
        return;
    }
    j->ready = true;
    j->rprev = w->ready_tail;
    j->rnext = NULL;
    if (w->ready_tail)
        w->ready_tail->rnext = j;
    else
        w->ready_head = j;
    w->ready_tail = j;
    worker_ready_run(w);
}

/* Take the first job off the pace queue. */
static struct worker_job *worker_pace_pop(struct worker *w)
{
    struct worker_job *j = w->pace_head;
    if (j == NULL)
        return NULL;
    w->pace_head = j->pnext;
    if (w->pace_head == NULL)
        w->pace_tail = NULL;
    j->pnext = NULL;
    j->pacing = false;
    w->pacing--;
    return j;
}

/* Try the take again after ms (1 ms to a tick). */
static void worker_pace_later(struct worker *w, double ms)
{
    if (ms < 1)
        ms = 1;
    if (ms > WORKER_TICK_MS)
        ms = WORKER_TICK_MS;
    struct timeval tv = clock_timeval_frac(ms);
    evtimer_add(w->pace_timer, &tv);
}

/* The pace timer fired. */
static void worker_pace_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker_pace_run(arg);
}

/* The daily quota (the account's, or client's only) is used up: the copies
 * waiting for it go back to the delay set for hold_ms (no attempt is
 * counted); with the account's, this worker reads nothing until then. */
static void worker_pace_hold(struct worker *w, bool account, const char *client, int64_t hold_ms)
{
    int64_t until = clock_wall_ms() + hold_ms;
    if (account)
        w->hold_until_ms = clock_mono_ms() + hold_ms;
    /* For `sesgate status`: what holds and until when, gone when it ends. */
    char *kh = rscript_ukey(w->scripts, w->ucfg->name, "hold", NULL), field[300], value[24],
         ttl[24];
    snprintf(field, sizeof field, account ? "quota" : "client_quota:%s", client);
    snprintf(value, sizeof value, "%" PRId64, until);
    snprintf(ttl, sizeof ttl, "%" PRId64, hold_ms);
    redis_command(w->rd, worker_reply_ignored, NULL, "HSET %s %s %s", kh, field, value);
    redis_command(w->rd, worker_reply_ignored, NULL, "PEXPIRE %s %s", kh, ttl);
    free(kh);
    struct worker_job *keep = NULL, *keep_tail = NULL, *j;
    while ((j = worker_pace_pop(w)) != NULL) {
        if (account || strcmp(j->b->client, client) == 0) {
            worker_retry(j, hold_ms, j->attempt, account ? "quota" : "client_quota", NULL);
            continue;
        }
        if (keep_tail)
            keep_tail->pnext = j;
        else
            keep = j;
        keep_tail = j;
        j->pacing = true;
        w->pacing++;
    }
    w->pace_head = keep;
    w->pace_tail = keep_tail;
}

/* The until time of client's wait in w (0: none). */
static int64_t worker_wait_of(const struct worker *w, const char *client)
{
    for (size_t i = 0; i < w->nwaits; i++)
        if (strcmp(w->waits[i].client, client) == 0)
            return w->waits[i].until_ms;
    return 0;
}

/* client's copies wait until until_ms. */
static void worker_wait_set(struct worker *w, const char *client, int64_t until_ms)
{
    for (size_t i = 0; i < w->nwaits; i++)
        if (strcmp(w->waits[i].client, client) == 0) {
            w->waits[i].until_ms = until_ms;
            return;
        }
    w->waits = xrealloc(w->waits, (w->nwaits + 1) * sizeof *w->waits);
    w->waits[w->nwaits++] = (struct worker_wait){xstrdup(client), until_ms};
}

/* The pacing rate for client's copies: the account's, or the client's own
 * rate when lower (recipients/s). */
static double worker_client_rate(const struct worker *w, const char *client, double account)
{
    const struct config_client *c = config_client_by_name(w->cfg, client);
    if (c && c->rate > 0 && c->rate * LIMITER_PACE < account)
        return c->rate * LIMITER_PACE;
    return account;
}

/* j's reserved time is ms from now: send it then. */
static void worker_arm(struct worker_job *j, double ms)
{
    struct worker *w = j->w;
    if (j->send_timer) /* a copy reserving again (WORKER_LATE_MS) */
        event_free(j->send_timer);
    j->send_timer = evtimer_new(w->base, worker_send_cb, j);
    if (ms < 1) {
        worker_send_cb(-1, 0, j);
        return;
    }
    struct timeval tv = clock_timeval_frac(ms);
    limiter_ms_from_now(&j->due, ms);
    evtimer_add(j->send_timer, &tv);
}

/* The limiter answered the take for the jobs in w->group. */
static void worker_paced(const struct limiter_answer *a, void *arg)
{
    struct worker *w = arg;
    w->taking = false;
    w->redis_pending--;
    if (w->freed) {
        worker_maybe_free(w);
        return;
    }
    if (!a->ok) {
        worker_pace_later(w, 500); /* Redis is away: the jobs wait */
        return;
    }
    const char *client = w->ngroup ? w->group[0]->b->client : "";
    if (a->granted) {
        /* Fair share: the client's count grows by what it got, from no
         * less than the clock (a client back from idle starts level with
         * the others, not ahead by what it did not send); a refused take
         * keeps it first in line. */
        if (w->ngroup) {
            struct worker_stream *ws = w->group[0]->ws;
            int64_t cost = 0;
            for (size_t k = 0; k < w->ngroup; k++)
                cost += worker_cost(w->group[k]);
            ws->served = (ws->served > w->served ? ws->served : w->served) + (uint64_t)cost;
        }
        /* The group's recipients go one every 1000 / rate ms from the start. */
        double rate = worker_client_rate(w, client, a->rate > 0 ? a->rate : 1.0);
        double step = 1000.0 / rate, at = a->wait_ms - a->late_ms;
        /* Destinations of one bulk batch whose times lie within
         * LIMITER_BUNDLE_MS of the first go as one bulk call at the last
         * one's time: none goes early, none more than that late. */
        struct worker_job *lead = NULL;
        double lead_ms = 0, last_ms = 0;
        for (size_t k = 0; k < w->ngroup; k++) {
            struct worker_job *j = w->group[k];
            if (!j->pacing)
                continue;
            worker_pace_unlink(w, j);
            j->reserved = true;
            double ms = at;
            at += step * (double)worker_cost(j);
            if (lead && j->b == lead->b && ms - lead_ms <= LIMITER_BUNDLE_MS &&
                lead->nmembers + 1 < BULK_MAX_DESTINATIONS) {
                if (lead->nmembers == lead->cap_members) {
                    lead->cap_members = lead->cap_members ? 2 * lead->cap_members : 8;
                    lead->members =
                        xrealloc(lead->members, lead->cap_members * sizeof *lead->members);
                }
                lead->members[lead->nmembers++] = j;
                j->lead = lead;
                if (j->send_timer) {
                    event_free(j->send_timer);
                    j->send_timer = NULL;
                }
                last_ms = ms;
                continue;
            }
            if (lead)
                worker_arm(lead, last_ms);
            lead = NULL;
            if (j->b->bulk) {
                lead = j;
                lead_ms = last_ms = ms;
                continue;
            }
            worker_arm(j, ms);
        }
        if (lead)
            worker_arm(lead, last_ms);
        w->ngroup = 0;
        worker_pace_run(w);
        return;
    }
    if (a->reason == RATELIMIT_QUOTA || a->reason == RATELIMIT_CLIENT_QUOTA) {
        /* Until the window frees enough, but no longer than until the quota
         * is read again (SES may have raised it). */
        int64_t hold = a->wait_ms < 0 ? WORKER_HOLD_MS : (int64_t)ceil(a->wait_ms);
        int64_t most =
            w->ucfg->rate_mode == CONFIG_RATE_AUTO ? w->cfg->quota_refresh_ms : WORKER_HOLD_MS;
        if (hold > most)
            hold = most;
        if (hold < WORKER_TICK_MS)
            hold = WORKER_TICK_MS;
        char *held = xstrdup(client);
        char hs[24];
        snprintf(hs, sizeof hs, "%" PRId64, hold);
        log_event(LOG_WARN, "queue_hold", "reason", ratelimit_reason_name(a->reason), "client",
                  a->reason == RATELIMIT_CLIENT_QUOTA ? held : NULL, "hold_ms", hs, NULL);
        w->ngroup = 0;
        worker_pace_hold(w, a->reason == RATELIMIT_QUOTA, held, hold);
        free(held);
        worker_pace_run(w);
        return;
    }
    if (a->reason == RATELIMIT_CLIENT_RATE) {
        /* Only this client waits; the others go on. */
        worker_wait_set(w, client,
                        clock_mono_ms() + (int64_t)ceil(a->wait_ms < 1 ? 1 : a->wait_ms));
        w->ngroup = 0;
        worker_pace_run(w);
        return;
    }
    w->ngroup = 0;
    worker_pace_later(w, a->wait_ms);
}

/* Ask the limiter for the next jobs of the pace queue: the first job of
 * the client granted the fewest recipients that is not waiting for its
 * own rate (start-time fair queueing over the clients' streams), and
 * the following jobs of that client, up to a block (RATELIMIT_BLOCK_MS) of
 * its rate. */
static void worker_pace_run(struct worker *w)
{
    if (w->taking || w->pace_head == NULL || w->freed || evtimer_pending(w->pace_timer, NULL))
        return;
    /* Fair share by recipients: the client granted the fewest goes next. */
    int64_t now = clock_mono_ms(), soonest = 0;
    struct worker_job *first = NULL;
    for (struct worker_job *j = w->pace_head; j; j = j->pnext) {
        int64_t until = worker_wait_of(w, j->b->client);
        if (until > now) {
            if (soonest == 0 || until < soonest)
                soonest = until;
        } else if (first == NULL || j->ws->served < first->ws->served) {
            first = j;
        }
    }
    if (first == NULL) {
        worker_pace_later(w, (double)(soonest - now));
        return;
    }
    if (first->ws->served > w->served)
        w->served = first->ws->served;
    const char *client = first->b->client;
    double rate = worker_client_rate(w, client, limiter_rate(w->lim));
    int64_t block = ratelimit_block(rate, 0), cost = 0;
    w->ngroup = 0;
    for (struct worker_job *j = first; j; j = j->pnext) {
        if (strcmp(j->b->client, client) != 0)
            continue;
        if (w->ngroup > 0 && cost + worker_cost(j) > block)
            break;
        if (w->ngroup == w->group_cap) {
            w->group_cap = w->group_cap ? 2 * w->group_cap : 16;
            w->group = xrealloc(w->group, w->group_cap * sizeof *w->group);
        }
        w->group[w->ngroup++] = j;
        cost += worker_cost(j);
    }
    w->taking = true;
    w->redis_pending++;
    limiter_take(w->lim, config_client_by_name(w->cfg, client), cost, RATELIMIT_BLOCK_MS,
                 worker_paced, w);
}

/* j is ready to go: send it at once without a limiter, else wait for its
 * reservation of the shared rate. A copy of a batch known paused or
 * cancelled goes to the gate at once and takes no rate. */
static void worker_pace(struct worker_job *j)
{
    struct worker *w = j->w;
    if (!limiter_on(w->lim) || j->b->state != WBATCH_RUNNING) {
        worker_send(j);
        return;
    }
    j->pacing = true;
    j->waiting = true;
    w->waiting++;
    j->pnext = NULL;
    if (w->pace_tail)
        w->pace_tail->pnext = j;
    else
        w->pace_head = j;
    w->pace_tail = j;
    w->pacing++;
    worker_ready_run(w); /* j no longer holds a slot */
    worker_pace_run(w);
}

/* ---- the suppression list: recipients on it are left out before the
 * limiter is asked, so they take no rate ---- */

/* An HMGET of the suppression list in flight: the jobs it is for, each
 * with its fields' place in the reply. */
struct worker_sup {
    struct worker *w;
    size_t n;
    struct worker_sup_job {
        struct worker_job *j;
        size_t first, count; /* its fields in the reply */
    } jobs[];
};

/* What bulk_unit_filter's keep asks while a unit is rewritten: the unit's
 * recipients in order, and which of them are suppressed. */
struct worker_sup_cursor {
    const redisReply *reply;
    size_t at;
};

/* bulk_unit_filter's keep: the next recipient, unless it is suppressed. */
static bool worker_sup_keep(void *arg, const char *a, size_t n)
{
    struct worker_sup_cursor *c = arg;
    const redisReply *v = c->reply->element[c->at++];
    return v->type != REDIS_REPLY_STRING;
}

/* j goes on with its recipients not suppressed: skipped as suppressed when
 * none is left (outcome x), else paced. Its fields are reply's elements
 * first..first+count. */
static void worker_sup_apply(struct worker_job *j, const redisReply *reply, size_t first,
                             size_t count)
{
    size_t hit = 0;
    for (size_t k = 0; k < count; k++)
        hit += reply->element[first + k]->type == REDIS_REPLY_STRING;
    char idx[24], nhit[24];
    snprintf(idx, sizeof idx, "%ld", j->index);
    snprintf(nhit, sizeof nhit, "%zu", hit);
    if (hit == 0) {
        worker_pace(j);
        return;
    }
    /* a copy whose To recipient is suppressed, or a unit with none left */
    bool skip = j->b->bulk ? hit == count : reply->element[first]->type == REDIS_REPLY_STRING;
    if (skip) {
        for (size_t k = 0; k < hit; k++)
            metrics_suppressed();
        log_event(LOG_INFO, "queue_suppressed", "batch", j->batch_id, "index", idx, "recipients",
                  nhit, NULL);
        worker_outcome(j, "suppressed", NULL, NULL, NULL);
        return;
    }
    for (size_t k = 0; k < hit; k++)
        metrics_suppressed();
    log_event(LOG_INFO, "queue_suppressed_some", "batch", j->batch_id, "index", idx, "recipients",
              nhit, NULL);
    if (j->b->bulk) {
        struct worker_sup_cursor c = {reply, first};
        struct buf out = BUF_INIT;
        int64_t kept =
            bulk_unit_filter(j->b->api, j->addr, strlen(j->addr), worker_sup_keep, &c, &out);
        free(j->addr);
        j->addr = buf_detach(&out, NULL);
        j->ucost = kept;
    } else {
        /* copy 0: the riders not suppressed ride with it */
        const struct wbatch *b = j->b;
        free(j->riders);
        j->riders = xcalloc(b->nriders ? b->nriders : 1, sizeof *j->riders);
        j->nriders = 0;
        for (size_t k = 0; k < b->nriders; k++)
            if (reply->element[first + 1 + k]->type != REDIS_REPLY_STRING)
                j->riders[j->nriders++] = b->riders[k];
    }
    worker_pace(j);
}

/* HMGET of the suppression list answered for the jobs of s. */
static void worker_sup_done(const redisReply *reply, const char *err, void *arg)
{
    struct worker_sup *s = arg;
    bool freed = s->w->freed;
    for (size_t k = 0; k < s->n; k++) /* every job's Redis call answered */
        if (worker_job_orphaned(s->jobs[k].j))
            s->jobs[k].j = NULL;
    if (freed) {
        free(s);
        return;
    }
    size_t want = s->n ? s->jobs[s->n - 1].first + s->jobs[s->n - 1].count : 0;
    bool ok =
        err == NULL && reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == want;
    if (!ok)
        log_event(LOG_WARN, "queue_read_failed", "what", "suppression list", "error",
                  err ? err : "unexpected reply", NULL);
    for (size_t k = 0; k < s->n; k++) {
        struct worker_job *j = s->jobs[k].j;
        if (j == NULL)
            continue;
        if (!ok)
            worker_job_end(j); /* reclaimed after the lease */
        else
            worker_sup_apply(j, reply, s->jobs[k].first, s->jobs[k].count);
    }
    free(s);
}

/* The jobs gathered since the last lookup: one HMGET for all of them. */
static void worker_sup_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    size_t n = w->nsup;
    if (n == 0)
        return;
    w->nsup = 0;
    struct worker_sup *s = xcalloc(1, sizeof *s + n * sizeof *s->jobs);
    s->w = w;
    s->n = n;
    struct suplist_fields f = {BUF_INIT, 0};
    for (size_t k = 0; k < n; k++) {
        struct worker_job *j = w->sup[k];
        s->jobs[k].j = j;
        s->jobs[k].first = f.n;
        if (j->b->bulk) {
            struct buf scratch = BUF_INIT;
            bulk_unit_filter(j->b->api, j->addr, strlen(j->addr), suplist_fields_gather, &f,
                             &scratch);
            buf_free(&scratch);
        } else {
            suplist_fields_add(&f, j->addr, strlen(j->addr));
            for (size_t r = 0; j->index == 0 && r < j->b->nriders; r++)
                suplist_fields_add(&f, j->b->riders[r].addr, strlen(j->b->riders[r].addr));
        }
        s->jobs[k].count = f.n - s->jobs[k].first;
        j->redis_pending = true;
    }
    const char **argv = xcalloc(f.n + 2, sizeof *argv);
    argv[0] = "HMGET";
    argv[1] = w->ksup;
    const char *p = f.text.data;
    for (size_t k = 0; k < f.n; k++) {
        argv[2 + k] = p;
        p += strlen(p) + 1;
    }
    if (f.n == 0) {
        /* nothing to look up (no job has a recipient): all go on */
        for (size_t k = 0; k < n; k++)
            s->jobs[k].j->redis_pending = false;
        for (size_t k = 0; k < n; k++)
            worker_pace(s->jobs[k].j);
        free(s);
    } else {
        redis_command_argv(w->rd, worker_sup_done, s, (int)(f.n + 2), argv, NULL);
    }
    free(argv);
    buf_free(&f.text);
}

/* j's recipients are known: look them up in the suppression list (with
 * the other jobs of the same read) before it asks the limiter. */
static void worker_sup_check(struct worker_job *j)
{
    struct worker *w = j->w;
    if (w->nsup == w->cap_sup) {
        w->cap_sup = w->cap_sup ? 2 * w->cap_sup : 16;
        w->sup = xrealloc(w->sup, w->cap_sup * sizeof *w->sup);
    }
    w->sup[w->nsup++] = j;
    if (!evtimer_pending(w->sup_timer, NULL)) {
        struct timeval now = {0, 0};
        evtimer_add(w->sup_timer, &now);
    }
}

/* LINDEX answered: the address of j. */
static void worker_got_addr(const redisReply *reply, const char *err, void *arg)
{
    struct worker_job *j = arg;
    if (worker_job_orphaned(j))
        return;
    if (err) {
        log_event(LOG_WARN, "queue_read_failed", "batch", j->batch_id, "error", err, NULL);
        worker_job_end(j); /* reclaimed after the lease */
        return;
    }
    if (reply == NULL || reply->type != REDIS_REPLY_STRING) {
        worker_no_batch(j);
        return;
    }
    if (j->b->bulk) {
        j->ucost = bulk_unit_cost(j->b->api, reply->str, reply->len);
        if (j->ucost < 1) {
            worker_dead(j, "InvalidParameterValue", "the destination stored is not one");
            return;
        }
        j->addr = xstrndup(reply->str, reply->len);
        worker_sup_check(j);
        return;
    }
    /* A batch queued before addresses were checked may hold one that SES
     * refuses: it is a dead letter with SES's reason, not a send. */
    const char *bad = addr_check_mailbox(reply->str, reply->len);
    if (bad != NULL) {
        worker_dead(j, "InvalidParameterValue", bad);
        return;
    }
    j->addr = xstrndup(reply->str, reply->len);
    worker_sup_check(j);
}

/* Read j's address. */
static void worker_load_addr(struct worker_job *j)
{
    char *kr = rscript_key(j->w->scripts, "r:", j->batch_id);
    char idx[24];
    snprintf(idx, sizeof idx, "%ld", j->index);
    j->redis_pending = true;
    redis_command(j->w->rd, worker_got_addr, j, "LINDEX %s %s", kr, idx);
    free(kr);
}

static void worker_checked(const redisReply *reply, const char *err, void *arg);

/* Use b for j, then check (a reclaimed entry) or read the address. */
static void worker_use_batch(struct worker_job *j, struct wbatch *b)
{
    struct worker *w = j->w;
    b->refs++;
    j->b = b;
    if (j->batch_id == NULL)
        j->batch_id = xstrdup(b->id);
    if (b->state != WBATCH_RUNNING && !j->reclaimed) {
        /* paused or cancelled: the gate first (the address only if it says go) */
        worker_send(j);
        return;
    }
    if (j->reclaimed) {
        char *ko = rscript_key(w->scripts, "o:", j->batch_id);
        char idx[24];
        snprintf(idx, sizeof idx, "%ld", j->index);
        const char *argv[4] = {ko, j->ws->key, j->entry, idx};
        j->redis_pending = true;
        rscript_eval(w->scripts, RSCRIPT_CHECK, 2, 4, argv, NULL, worker_checked, j);
        free(ko);
        return;
    }
    worker_load_addr(j);
}

/* load.lua answered: the batch of j. */
static void worker_got_batch(const redisReply *reply, const char *err, void *arg)
{
    struct worker_job *j = arg;
    if (worker_job_orphaned(j))
        return;
    if (err) {
        log_event(LOG_WARN, "queue_read_failed", "batch", j->bn, "error", err, NULL);
        worker_job_end(j);
        return;
    }
    if (!wbatch_reply_ok(reply)) {
        const char *id = wbatch_reply_id(reply);
        if (id != NULL)
            j->batch_id = xstrdup(id);
        worker_no_batch(j);
        return;
    }
    struct wbatch *b = wbatch_cache_get(&j->w->cache, j->bn);
    if (b == NULL) {
        b = wbatch_new(j->bn, reply);
        wbatch_cache_put(&j->w->cache, b);
        wbatch_unref(b); /* the cache's reference keeps it */
    }
    worker_use_batch(j, b);
}

/* load.lua answered: every job waiting for that batch goes on. */
static void worker_got_load(const redisReply *reply, const char *err, void *arg)
{
    struct worker_load *l = arg;
    struct worker_load **p = &l->w->loads;
    while (*p != l)
        p = &(*p)->next;
    *p = l->next;
    for (size_t i = 0; i < l->njobs; i++)
        worker_got_batch(reply, err, l->jobs[i]);
    free(l->n);
    free(l->jobs);
    free(l);
}

/* check.lua answered for a reclaimed entry. */
static void worker_checked(const redisReply *reply, const char *err, void *arg)
{
    struct worker_job *j = arg;
    if (worker_job_orphaned(j))
        return;
    if (err || reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        if (err)
            log_event(LOG_WARN, "queue_check_failed", "entry", j->entry, "error", err, NULL);
        worker_job_end(j);
        return;
    }
    if (reply->integer == 1) {
        worker_job_end(j);
        return;
    }
    j->reclaimed = false;
    worker_load_addr(j);
}

/* Advance j: load its batch (cached per batch number), check a reclaimed
 * entry, read its address, send. */
static void worker_job_step(struct worker_job *j)
{
    struct worker *w = j->w;
    if (j->bn == NULL || j->index < 0) {
        log_event(LOG_WARN, "queue_bad_entry", "entry", j->entry, NULL);
        worker_ack(j);
        return;
    }
    struct wbatch *b = wbatch_cache_get(&w->cache, j->bn);
    if (b) {
        worker_use_batch(j, b);
        return;
    }
    j->redis_pending = true;
    struct worker_load *l = w->loads;
    while (l != NULL && strcmp(l->n, j->bn) != 0)
        l = l->next;
    if (l == NULL) {
        l = xcalloc(1, sizeof *l);
        l->w = w;
        l->n = xstrdup(j->bn);
        l->next = w->loads;
        w->loads = l;
        char *kn = rscript_key(w->scripts, "n:", j->bn);
        const char *argv[1] = {kn};
        rscript_eval(w->scripts, RSCRIPT_LOAD, 1, 1, argv, NULL, worker_got_load, l);
        free(kn);
    }
    if (l->njobs == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 4;
        l->jobs = xrealloc(l->jobs, l->cap * sizeof *l->jobs);
    }
    l->jobs[l->njobs++] = j;
}

/* ------------------------------------------------------------ reading */

/* Free slots for new sends. */
static size_t worker_free_slots(const struct worker *w)
{
    /* concurrency bounds the sends in flight; jobs waiting for their turn
     * of the rate are bounded by the read cap (worker_read) instead */
    size_t max = w->cfg->concurrency > 0 ? (size_t)w->cfg->concurrency : 1;
    if (max > WORKER_MAX_INFLIGHT)
        max = WORKER_MAX_INFLIGHT;
    size_t active = w->inflight - w->waiting;
    return active >= max ? 0 : max - active;
}

/* Read again after ms. */
static void worker_read_later(struct worker *w, int ms)
{
    if (w->stopped || w->freed || w->read_timer == NULL)
        return;
    struct timeval tv = clock_timeval(ms);
    evtimer_add(w->read_timer, &tv);
}

/* A Redis answer for the worker itself: false when it went away. */
static bool worker_redis_back(struct worker *w)
{
    w->redis_pending--;
    if (w->freed) {
        worker_maybe_free(w);
        return false;
    }
    return true;
}

/* The stream of key, or NULL when w has not seen it. */
static struct worker_stream *worker_stream_find(const struct worker *w, const char *key, size_t len)
{
    for (size_t i = 0; i < w->nstreams; i++)
        if (strlen(w->streams[i]->key) == len && memcmp(w->streams[i]->key, key, len) == 0)
            return w->streams[i];
    return NULL;
}

/* The client whose stream ws is. */
static const char *worker_stream_client(const struct worker *w, const struct worker_stream *ws)
{
    return ws->key + strlen(w->kstream) + 2; /* past "q:" */
}

/* SMEMBERS of the stream set answered: read the streams not seen yet too. */
static void worker_streams_got(const redisReply *reply, const char *err, void *arg)
{
    struct worker *w = arg;
    if (!worker_redis_back(w))
        return;
    if (err || reply == NULL || reply->type != REDIS_REPLY_ARRAY)
        return;
    size_t plen = strlen(w->kstream), added = 0;
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *m = reply->element[i];
        if (m->type != REDIS_REPLY_STRING || m->len <= plen + 2 ||
            memcmp(m->str, w->kstream, plen) != 0 || memcmp(m->str + plen, "q:", 2) != 0 ||
            memchr(m->str, '\0', m->len) || worker_stream_find(w, m->str, m->len))
            continue;
        struct worker_stream *ws = xcalloc(1, sizeof *ws);
        ws->w = w;
        ws->key = xstrndup(m->str, m->len);
        snprintf(ws->claim_cursor, sizeof ws->claim_cursor, "0-0");
        w->streams = xrealloc(w->streams, (w->nstreams + 1) * sizeof *w->streams);
        w->streams[w->nstreams++] = ws;
        added++;
    }
    if (added)
        worker_read_later(w, 0);
}

/* Learn which client streams exist (enqueue.lua adds each to the set). */
static void worker_streams_refresh(struct worker *w)
{
    w->streams_ms = clock_mono_ms();
    w->redis_pending++;
    redis_command(w->rd, worker_streams_got, w, "SMEMBERS %s", w->kqs);
}

/* XGROUP CREATE answered (BUSYGROUP is fine). */
static void worker_group_made(const redisReply *reply, const char *err, void *arg)
{
    struct worker *w = arg;
    if (!worker_redis_back(w))
        return;
    worker_read_later(w, WORKER_IDLE_MS);
}

/* XREADGROUP answered: [[stream, [entry...]]...] for the streams with new
 * entries. */
static void worker_read_done(const redisReply *reply, const char *err, void *arg)
{
    struct worker *w = arg;
    w->reading = false;
    if (!worker_redis_back(w))
        return;
    if (err) {
        if (strncmp(err, "NOGROUP", 7) == 0) {
            /* A stream or its group was deleted: make them again. */
            for (size_t i = 0; i < w->nstreams; i++) {
                w->redis_pending++;
                redis_command(w->rd, worker_group_made, w, "XGROUP CREATE %s w 0 MKSTREAM",
                              w->streams[i]->key);
            }
            return;
        }
        worker_read_later(w, WORKER_TICK_MS);
        return;
    }
    size_t got = 0;
    for (size_t k = 0; reply && reply->type == REDIS_REPLY_ARRAY && k < reply->elements; k++) {
        const redisReply *s = reply->element[k];
        if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 ||
            s->element[0]->type != REDIS_REPLY_STRING || s->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        struct worker_stream *ws = worker_stream_find(w, s->element[0]->str, s->element[0]->len);
        if (ws == NULL)
            continue;
        const redisReply *entries = s->element[1];
        for (size_t i = 0; i < entries->elements; i++, got++)
            worker_job_start(ws, entries->element[i], false);
    }
    if (got == 0) {
        worker_read_later(w, WORKER_IDLE_MS);
    } else {
        worker_read(w);
    }
}

/* The most of ws's entries w holds at once with a limiter: an equal share
 * of the read-ahead (cap) among the streams w holds entries of, and no
 * more than a second of the client's own rate, so that neither a big batch
 * read before another client's nor a client held by its own rate fills the
 * read-ahead. */
static size_t worker_stream_cap(const struct worker *w, const struct worker_stream *ws, size_t cap,
                                size_t busy)
{
    size_t share = (cap + busy - 1) / (busy ? busy : 1);
    double r = worker_client_rate(w, worker_stream_client(w, ws), limiter_rate(w->lim));
    size_t own = r >= 1 ? (size_t)ceil(r) : 1;
    return share < own ? share : own;
}

/* Read new entries for the free slots (nothing when none is free: a
 * finishing send reads again). Every client stream gets an equal share of
 * a read, so the clients with queued batches share the rate: a later
 * batch of one client does not wait behind another client's big batch. */
static void worker_read(struct worker *w)
{
    if (w->stopped || w->freed || w->reading)
        return;
    size_t n = worker_free_slots(w), active = w->inflight - w->waiting;
    /* Read in bunches: one XREADGROUP per quarter of the slots, not per
     * finished send (the sends in flight keep the upstream busy meanwhile). */
    if (n == 0 || (active > 0 && n < (n + active + 3) / 4))
        return;
    if (evtimer_pending(w->read_timer, NULL))
        return;
    bool paced = limiter_on(w->lim);
    size_t cap = 0;
    if (paced) {
        /* Hold while the daily quota is used up; and read no more than about
         * a second of the rate ahead, so that no entry waits for its turn
         * anywhere near the claim lease. */
        int64_t now = clock_mono_ms();
        if (now < w->hold_until_ms) {
            worker_read_later(w,
                              (int)(w->hold_until_ms - now < WORKER_TICK_MS ? w->hold_until_ms - now
                                                                            : WORKER_TICK_MS));
            return;
        }
        double r = limiter_rate(w->lim);
        cap = r >= 1 ? (size_t)ceil(r) : 1;
        if (w->waiting >= cap || (w->waiting > 0 && cap - w->waiting < (cap + 3) / 4))
            return;
        if (n > cap - w->waiting)
            n = cap - w->waiting;
    }
    /* A new client's stream is read within WORKER_STREAMS_MS. */
    if (clock_mono_ms() - w->streams_ms >= WORKER_STREAMS_MS)
        worker_streams_refresh(w);
    if (w->nstreams == 0) {
        worker_read_later(w, WORKER_IDLE_MS);
        return;
    }
    /* A stream counts as busy while w holds entries of it; one more is
     * counted for a stream not read yet, so its first read has room. */
    size_t busy = 0, idle = 0;
    for (size_t i = 0; i < w->nstreams; i++) {
        if (w->streams[i]->jobs > 0)
            busy++;
        else
            idle = 1;
    }
    const char **argv = xcalloc(7 + 2 * w->nstreams, sizeof *argv);
    size_t nk = 0;
    for (size_t i = 0; i < w->nstreams; i++)
        if (!paced || w->streams[i]->jobs < worker_stream_cap(w, w->streams[i], cap, busy + idle))
            argv[7 + nk++] = w->streams[i]->key;
    if (nk == 0) {
        free(argv); /* every client has its second read: a finishing send reads again */
        return;
    }
    for (size_t i = 0; i < nk; i++)
        argv[7 + nk + i] = ">";
    char count[24];
    snprintf(count, sizeof count, "%zu", (n + nk - 1) / nk);
    argv[0] = "XREADGROUP";
    argv[1] = "GROUP";
    argv[2] = "w";
    argv[3] = w->name;
    argv[4] = "COUNT";
    argv[5] = count;
    argv[6] = "STREAMS";
    w->reading = true;
    w->redis_pending++;
    redis_command_argv(w->rd, worker_read_done, w, (int)(7 + 2 * nk), argv, NULL);
    free(argv);
}

/* The read timer fired. */
static void worker_read_cb(evutil_socket_t fd, short what, void *arg)
{
    worker_read(arg);
}

/* due.lua answered. */
static void worker_due_done(const redisReply *reply, const char *err, void *arg)
{
    struct worker *w = arg;
    if (!worker_redis_back(w))
        return;
    if (err && strncmp(err, RSCRIPT_CLOSED, strlen(RSCRIPT_CLOSED)) != 0)
        log_event(LOG_WARN, "queue_due_failed", "error", err, NULL);
}

/* True when ws's worker already has a job for entry id: its own entry, idle
 * past the lease while it waited (a stalled Redis, the limiter). The claim
 * only reset its idle time; the job still records its outcome. */
static bool worker_holds(const struct worker_stream *ws, const char *id)
{
    for (const struct worker_job *j = ws->w->jobs; j; j = j->next)
        if (j->ws == ws && strcmp(j->entry, id) == 0)
            return true;
    return false;
}

/* XAUTOCLAIM answered: handle the reclaimed entries of one stream. */
static void worker_claimed(const redisReply *reply, const char *err, void *arg)
{
    struct worker_stream *ws = arg;
    if (!worker_redis_back(ws->w))
        return;
    if (err || reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2)
        return;
    if (reply->element[0]->type == REDIS_REPLY_STRING)
        snprintf(ws->claim_cursor, sizeof ws->claim_cursor, "%s", reply->element[0]->str);
    const redisReply *entries = reply->element[1];
    if (entries->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        if (e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
            e->element[1]->type == REDIS_REPLY_ARRAY && e->element[0]->type == REDIS_REPLY_STRING &&
            !worker_holds(ws, e->element[0]->str)) {
            log_event(LOG_INFO, "queue_reclaimed", "entry", e->element[0]->str, NULL);
            worker_job_start(ws, e, true);
        }
    }
}

/* Every second: move due retries back, finish a batch whose filler died
 * and reclaim abandoned entries. */
static void worker_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    if (w->stopped || w->freed || !redis_ready(w->rd))
        return;
    char max[16], longest[24];
    snprintf(max, sizeof max, "%d", WORKER_DUE_MAX);
    /* The longest delay a retry gets, plus a minute: anything due later
     * was written before Redis's clock went back. */
    int64_t most = BACKOFF_CAP_MS;
    if (w->cfg->quota_refresh_ms > most)
        most = w->cfg->quota_refresh_ms;
    if (WORKER_HOLD_MS > most)
        most = WORKER_HOLD_MS;
    snprintf(longest, sizeof longest, "%" PRId64, most + 60000);
    /* now "": due times are on Redis's clock (outcome.lua) */
    const char *argv[6] = {w->kd, w->kqs, w->kprefix, "", max, longest};
    w->redis_pending++;
    rscript_eval(w->scripts, RSCRIPT_DUE, 3, 6, argv, NULL, worker_due_done, w);
    queue_fill_resume(w->q); /* a batch its filler left half queued */
    size_t n = worker_free_slots(w);
    if (n > WORKER_RECLAIM_MAX)
        n = WORKER_RECLAIM_MAX;
    for (size_t i = 0; n > 0 && i < w->nstreams; i++) {
        struct worker_stream *ws = w->streams[i];
        char count[24], lease[24];
        snprintf(count, sizeof count, "%zu", n);
        snprintf(lease, sizeof lease, "%" PRId64, w->cfg->lease_ms);
        const char *cv[] = {"XAUTOCLAIM", ws->key,          "w",     w->name,
                            lease,        ws->claim_cursor, "COUNT", count};
        w->redis_pending++;
        redis_command_argv(w->rd, worker_claimed, ws, 8, cv, NULL);
    }
    worker_read(w);
}

/* Public: start draining q to [upstream]. */
struct worker *worker_start(struct event_base *base, const struct config *cfg, struct queue *q,
                            struct upstream *up, struct resign *rs, struct limiter *lim,
                            const char *name)
{
    return worker_start_for(base, cfg, &cfg->upstreams[0], q, up, rs, lim, name);
}

/* Public: start draining upstream u's streams of q. */
struct worker *worker_start_for(struct event_base *base, const struct config *cfg,
                                const struct config_upstream *u, struct queue *q,
                                struct upstream *up, struct resign *rs, struct limiter *lim,
                                const char *name)
{
    struct worker *w = xcalloc(1, sizeof *w);
    w->ucfg = u;
    w->base = base;
    w->cfg = cfg;
    w->q = q;
    w->scripts = queue_scripts(q);
    w->rd = rscript_redis(w->scripts);
    w->up = up;
    w->rs = rs;
    w->name = xstrdup(name);
    w->kqs = rscript_ukey(w->scripts, u->name, "qs", NULL);
    w->kprefix = rscript_key(w->scripts, "", NULL);
    w->kstream = rscript_ukey(w->scripts, u->name, "", NULL);
    w->kd = rscript_key(w->scripts, "d", NULL);
    w->kdlq = rscript_key(w->scripts, "dlq", NULL);
    w->lim = lim;
    w->pace_timer = evtimer_new(base, worker_pace_cb, w);
    w->ksup = rscript_key(w->scripts, "sup", NULL);
    w->sup_timer = evtimer_new(base, worker_sup_cb, w);
    /* the mirror of the suppression list runs once, with [upstream]'s worker */
    if (cfg->suppress_sync_ses && u == &cfg->upstreams[0])
        w->supsync = supsync_start(base, cfg, w->scripts, up, rs, name);
    w->read_timer = evtimer_new(base, worker_read_cb, w);
    w->tick_timer = event_new(base, -1, EV_PERSIST, worker_tick_cb, w);
    struct timeval tick = {WORKER_TICK_MS / 1000, 0};
    event_add(w->tick_timer, &tick);
    worker_read_later(w, 0);
    log_event(LOG_INFO, "worker_start", "name", name, "upstream", u->name, NULL);
    return w;
}

/* Public: stop reading new entries. */
void worker_stop(struct worker *w)
{
    if (w == NULL || w->stopped)
        return;
    w->stopped = true;
    evtimer_del(w->read_timer);
    event_del(w->tick_timer);
}

/* Public: sends in flight. */
size_t worker_inflight(const struct worker *w)
{
    return w ? w->inflight : 0;
}

/* Public: release w; sends still in flight are cancelled (their entries are
 * reclaimed after the lease). */
void worker_free(struct worker *w)
{
    if (w == NULL)
        return;
    worker_stop(w);
    event_free(w->read_timer);
    event_free(w->tick_timer);
    event_free(w->pace_timer);
    event_free(w->sup_timer);
    supsync_free(w->supsync);
    w->supsync = NULL;
    w->read_timer = w->tick_timer = w->pace_timer = w->sup_timer = NULL;
    w->nsup = 0; /* those jobs wait for nothing: released below */
    /* Nothing more is sent: the ready jobs are released with the others. */
    while (w->ready_head)
        worker_ready_unlink(w, w->ready_head);
    struct worker_job *j = w->jobs;
    while (j) {
        struct worker_job *next = j->next;
        if (!j->redis_pending) {
            if (j->call)
                upstream_cancel(j->call);
            j->call = NULL;
            worker_job_end(j); /* stopped: reads nothing more */
        }
        j = next;
    }
    w->freed = true;
    worker_maybe_free(w);
}
