/* queue: the durable bulk queue on Redis (docs/QUEUE.md): a batch stored
 * once, one stream entry per recipient, and the check that Redis still
 * holds what this process wrote (the epoch). The worker drains it.
 */
#include "queue.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "buf.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#define QUEUE_STAGE_CHUNK  4096 /* a batch with more To addresses is staged in chunks this size */
#define QUEUE_STAGE_TTL_MS 3600000 /* a staged list left by a process that died goes after this */
#define QUEUE_SKEW_LOG_MS  10000   /* at most one upstream_clock_skew warning per this */
/* Stream entries per enqueue or fill step: an XADD in a script costs
 * 3.5 us with the append-only file on an idle 2-core machine, and up to 16
 * us while the front and the workers compete for the cores, so a step
 * holds Redis 7 to 33 ms. */
#define QUEUE_FILL_STEP      2000
#define QUEUE_FILL_RETRY_MS  250   /* a step that failed transiently goes again after this */
#define QUEUE_FILL_GIVEUP_MS 60000 /* ... for this long, then the caller hears the error */
#define QUEUE_FILL_STALE_MS  5000  /* a batch whose last step is older is resumed */

struct queue {
    struct event_base *base;
    const struct config *cfg;
    struct rscript *scripts;
    struct redis *rd; /* the scripts' connection */
    struct event *epoch_timer;
    char epoch[40];     /* the epoch this process saw ("": not yet) */
    bool epoch_pending; /* epoch.lua in flight */
    unsigned epoch_ticks;
    long fill_step;         /* entries per step (QUEUE_FILL_STEP, or the test hook) */
    char *kfilling, *kpfx;  /* fill.lua's keys */
    struct queue_enq *enqs; /* enqueues and fills under way */
    bool resuming;          /* this process finishes a batch another filler left */
    /* [redis] wait_replicas: WAIT before an enqueue's caller hears it */
    struct redis *wait_rd;               /* WAIT's own connection; NULL: no WAIT */
    struct queue_enq *acks, **acks_tail; /* batches stored, waiting for the next round */
    struct queue_wround *round;          /* the round in flight, or NULL */
    char *kmark;                         /* P:{P}:replicated, each round's write */
};

/* One WAIT round: for every batch, EXISTS b:<id> (the connection's server
 * has it), then INCR of the mark (a write after all of them in the
 * server's replication stream) and WAIT on the same connection: a replica
 * that acknowledged the mark holds every batch found. */
struct queue_wround {
    struct queue *q; /* NULL once q is gone */
    struct queue_enq **es;
    bool *present;
    size_t n;
    size_t left;        /* replies still due */
    char err[160];      /* the first failure, "" for none */
    long long replicas; /* WAIT's answer, -1 before */
};

/* A reply of a round: the round and which batch (n: the INCR or WAIT). */
struct queue_wslot {
    struct queue_wround *w;
    size_t i;
};

/* An enqueue waiting for Redis, then the fill of its batch step by step
 * (or the fill of a batch another process left: done is NULL). */
struct queue_enq {
    struct queue *q; /* NULL once q is gone (a script answer then ends it) */
    queue_done_fn done;
    void *arg;
    struct redis *rd;
    char *staged;        /* the staged list's key, or NULL */
    char batch_id[64];   /* the batch being filled */
    bool waited;         /* its WAIT round is over (or none is due) */
    long long left;      /* entries still to queue */
    int64_t failing_ms;  /* monotonic time of the first failure in a row, 0: none */
    struct event *timer; /* the next try of a failed step */
    struct queue_enq *prev, *next;
};

/* Public: the upstream refused our signature's time; warn at most every
 * QUEUE_SKEW_LOG_MS (the last warning's time in *last_ms) and count it. */
void queue_clock_skew(int64_t *last_ms, const char *code, const char *message)
{
    metrics_clock_skew();
    int64_t now = clock_mono_ms();
    if (*last_ms != 0 && now - *last_ms < QUEUE_SKEW_LOG_MS)
        return;
    *last_ms = now;
    log_event(LOG_WARN, "upstream_clock_skew", "code", code, "message", message, "note",
              "SES refused the signing time: this host's clock is off; run NTP. Queued copies "
              "wait and go again, nothing is dropped",
              NULL);
}

/* epoch.lua answered. */
static void queue_epoch_done(const redisReply *reply, const char *err, void *arg)
{
    struct queue *q = arg;
    if (err && strcmp(err, RSCRIPT_CLOSED) == 0)
        return; /* q is gone */
    q->epoch_pending = false;
    if (err || reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER ||
        reply->element[1]->type != REDIS_REPLY_STRING)
        return; /* Redis away: checked again when it is back */
    if (reply->element[0]->integer != 0) {
        log_event(LOG_ERROR, "redis_data_lost", "message",
                  "Redis lost sesgate's data (restarted empty, flushed, or failed over to a "
                  "replica without it): the queued recipients, the batch status and the rate "
                  "limiter's state written before now are gone; batches accepted before now "
                  "must be sent again",
                  "noticed", reply->element[0]->integer == 1 ? "here" : "elsewhere", NULL);
        metrics_redis_data_lost();
    }
    snprintf(q->epoch, sizeof q->epoch, "%.*s", (int)reply->element[1]->len,
             reply->element[1]->str);
}

/* Every second (every 250 ms until the first answer): check that Redis
 * still has the epoch this process saw. */
static void queue_epoch_cb(evutil_socket_t fd, short what, void *arg)
{
    struct queue *q = arg;
    if (q->epoch_pending || !redis_ready(q->rd) || (q->epoch[0] && ++q->epoch_ticks % 4 != 0))
        return;
    unsigned char r[16];
    char fresh[40];
    RAND_bytes(r, sizeof r);
    util_hex(r, sizeof r, fresh);
    char *key = rscript_key(q->scripts, "epoch", NULL);
    const char *argv[3] = {key, q->epoch, fresh};
    q->epoch_pending = true;
    rscript_eval(q->scripts, RSCRIPT_EPOCH, 1, 3, argv, NULL, queue_epoch_done, q);
    free(key);
}

/* Public: the queue on scripts. */
struct queue *queue_new(struct event_base *base, const struct config *cfg, struct rscript *scripts)
{
    struct queue *q = xcalloc(1, sizeof *q);
    q->base = base;
    q->cfg = cfg;
    q->scripts = scripts;
    q->rd = rscript_redis(scripts);
    q->epoch_timer = event_new(base, -1, EV_PERSIST, queue_epoch_cb, q);
    struct timeval tick = {0, 250000};
    event_add(q->epoch_timer, &tick);
    q->fill_step = QUEUE_FILL_STEP;
    /* Test hook (tests/integration): smaller steps, so that a test can
     * stop a process in the middle of a fill. */
    const char *hook = getenv("TEST_SESGATE_FILL_STEP");
    if (hook && atol(hook) > 0)
        q->fill_step = atol(hook);
    q->kfilling = rscript_key(scripts, "filling", NULL);
    q->kpfx = rscript_key(scripts, "", NULL);
    q->kmark = rscript_key(scripts, "replicated", NULL);
    q->acks_tail = &q->acks;
    return q;
}

/* Public: WAIT for [redis] wait_replicas replicas on rd. */
void queue_set_wait(struct queue *q, struct redis *rd)
{
    q->wait_rd = rd;
}

static void queue_enq_end(struct queue_enq *e, const char *err);
static void queue_wait_add(struct queue *q, struct queue_enq *e);

/* Public: release q (its script calls in flight are rscript's). */
void queue_free(struct queue *q)
{
    if (q == NULL)
        return;
    event_free(q->epoch_timer);
    /* A step waiting to go again ends now; one in flight is answered by
     * rscript_free with RSCRIPT_CLOSED. */
    struct queue_enq *next;
    for (struct queue_enq *e = q->enqs; e; e = next) {
        next = e->next;
        e->q = NULL;
        e->prev = e->next = NULL;
        if (e->timer && evtimer_pending(e->timer, NULL))
            queue_enq_end(e, RSCRIPT_CLOSED);
    }
    /* Batches waiting for a round end now; the round in flight is
     * answered by the WAIT connection's redis_free, which comes after. */
    if (q->round)
        q->round->q = NULL;
    while (q->acks) {
        struct queue_enq *e = q->acks;
        q->acks = e->next;
        e->q = NULL;
        e->next = NULL;
        queue_enq_end(e, RSCRIPT_CLOSED);
    }
    free(q->kmark);
    free(q->kfilling);
    free(q->kpfx);
    free(q);
}

/* Public: the script runner. */
struct rscript *queue_scripts(const struct queue *q)
{
    return q->scripts;
}

/* A staging command answered: enqueue.lua checks what arrived. */
static void queue_staged(const redisReply *reply, const char *err, void *arg)
{
    (void)reply;
    (void)err;
    (void)arg;
}

/* Public: the MessageId index's time to live. */
int64_t queue_index_ttl(const struct config *cfg)
{
    return config_feedback_enabled(cfg) && cfg->feedback_index_ttl_ms > 0
               ? cfg->feedback_index_ttl_ms
               : 0;
}

/* The index write answered: nobody waits for it, a failure is logged (the
 * SES events about that MessageId then find no client). */
static void queue_indexed(const redisReply *reply, const char *err, void *arg)
{
    (void)reply;
    char *mid = arg;
    if (err)
        log_event(LOG_WARN, "message_index_failed", "message_id", mid, "error", err, NULL);
    free(mid);
}

/* Public: index an SES MessageId to its client, batch and unit. */
void queue_index(struct queue *q, const char *message_id, const char *client, const char *batch,
                 long long index)
{
    int64_t ttl = queue_index_ttl(q->cfg);
    size_t n = strlen(message_id);
    if (ttl <= 0 || n == 0 || n > QUEUE_MESSAGE_ID_MAX || strcmp(message_id, "-") == 0)
        return;
    char *key = rscript_key(q->scripts, "m:", message_id);
    struct buf v = BUF_INIT;
    if (index >= 0)
        buf_printf(&v, "%s\t%s\t%lld", client, batch && batch[0] ? batch : "-", index);
    else
        buf_printf(&v, "%s\t%s\t-", client, batch && batch[0] ? batch : "-");
    redis_command(q->rd, queue_indexed, xstrdup(message_id), "SET %s %b PX %" PRId64, key, v.data,
                  v.len, ttl);
    buf_free(&v);
    free(key);
}

/* A new enqueue or fill on q. */
static struct queue_enq *queue_enq_new(struct queue *q, queue_done_fn done, void *arg)
{
    struct queue_enq *e = xcalloc(1, sizeof *e);
    e->q = q;
    e->done = done;
    e->arg = arg;
    e->next = q->enqs;
    if (q->enqs)
        q->enqs->prev = e;
    q->enqs = e;
    return e;
}

/* e is over: tell its caller (err NULL: the batch is whole) and free it. */
static void queue_enq_end(struct queue_enq *e, const char *err)
{
    if (e->q) {
        if (e->prev)
            e->prev->next = e->next;
        else
            e->q->enqs = e->next;
        if (e->next)
            e->next->prev = e->prev;
        if (e->done == NULL)
            e->q->resuming = false;
        e->prev = e->next = NULL;
        if (err == NULL && e->done && e->q->wait_rd && !e->waited) {
            queue_wait_add(e->q, e); /* its caller hears it after the WAIT */
            return;
        }
    }
    if (e->timer)
        event_free(e->timer);
    if (e->done)
        e->done(err, e->arg);
    free(e->staged);
    free(e);
}

static void queue_fill_step(struct queue_enq *e);

/* The next try of a step that failed. */
static void queue_fill_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    queue_fill_step(arg);
}

/* A step failed: permanent errors (and the runner going away) end the
 * fill; anything else (Redis away, loading, busy, over maxmemory) goes
 * again in QUEUE_FILL_RETRY_MS, for up to QUEUE_FILL_GIVEUP_MS. The steps
 * already taken stay: the batch is stored, and a worker finishes it
 * (queue_fill_resume) once Redis takes writes again. */
static void queue_fill_failed(struct queue_enq *e, const char *err)
{
    bool permanent = e->q == NULL || strcmp(err, RSCRIPT_CLOSED) == 0 ||
                     strncmp(err, "NOBATCH", 7) == 0 || strncmp(err, "BADARGS", 7) == 0 ||
                     strncmp(err, "WRONGTYPE", 9) == 0;
    int64_t now = clock_mono_ms();
    if (e->failing_ms == 0)
        e->failing_ms = now;
    if (permanent || now - e->failing_ms >= QUEUE_FILL_GIVEUP_MS) {
        if (strcmp(err, RSCRIPT_CLOSED) != 0) /* not this process stopping */
            log_event(LOG_ERROR, "queue_fill_failed", "batch", e->batch_id, "error", err, "note",
                      permanent ? NULL : "a worker finishes the batch when Redis is back", NULL);
        char why[256];
        snprintf(why, sizeof why, "%s: %s", QUEUE_UNFINISHED, err);
        queue_enq_end(e, permanent ? err : why);
        return;
    }
    if (e->failing_ms == now)
        log_event(LOG_WARN, "queue_fill_retry", "batch", e->batch_id, "error", err, NULL);
    if (e->timer == NULL)
        e->timer = evtimer_new(e->q->base, queue_fill_retry_cb, e);
    struct timeval tv = {0, QUEUE_FILL_RETRY_MS * 1000};
    evtimer_add(e->timer, &tv);
}

/* fill.lua answered: {batch id, entries left}. */
static void queue_filled(const redisReply *reply, const char *err, void *arg)
{
    struct queue_enq *e = arg;
    if (err == NULL && (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
                        reply->element[0]->type != REDIS_REPLY_STRING ||
                        reply->element[1]->type != REDIS_REPLY_INTEGER))
        err = "unexpected reply from fill";
    if (err) {
        queue_fill_failed(e, err);
        return;
    }
    if (e->batch_id[0] == '\0')
        snprintf(e->batch_id, sizeof e->batch_id, "%.*s", (int)reply->element[0]->len,
                 reply->element[0]->str);
    e->left = reply->element[1]->integer;
    e->failing_ms = 0;
    if (e->batch_id[0] == '\0' || e->left <= 0) {
        if (e->done == NULL && e->batch_id[0])
            log_event(LOG_INFO, "queue_fill_resumed", "batch", e->batch_id, NULL);
        queue_enq_end(e, NULL); /* whole (or, resuming, nothing was overdue) */
        return;
    }
    queue_fill_step(e);
}

/* Queue the next step of e's batch (fill.lua). Its own Redis call: other
 * clients' commands run between two steps. */
static void queue_fill_step(struct queue_enq *e)
{
    struct queue *q = e->q;
    if (q == NULL) {
        queue_enq_end(e, RSCRIPT_CLOSED);
        return;
    }
    char step[24], stale[24];
    snprintf(step, sizeof step, "%ld", q->fill_step);
    snprintf(stale, sizeof stale, "%d", QUEUE_FILL_STALE_MS);
    const char *argv[5] = {q->kfilling, q->kpfx, step, e->batch_id, stale};
    rscript_eval(q->scripts, RSCRIPT_FILL, 2, 5, argv, NULL, queue_filled, e);
}

/* Public: finish a batch whose filler stopped (one at a time). */
void queue_fill_resume(struct queue *q)
{
    if (q->resuming || !redis_ready(q->rd))
        return;
    q->resuming = true;
    queue_fill_step(queue_enq_new(q, NULL, NULL));
}

/* enqueue.lua answered: the batch is stored, its first step queued. */
static void queue_enqueued(const redisReply *reply, const char *err, void *arg)
{
    struct queue_enq *e = arg;
    if (err == NULL && (reply == NULL || reply->type != REDIS_REPLY_INTEGER))
        err = "unexpected reply from enqueue";
    if (err)
        log_event(LOG_WARN, "queue_enqueue_failed", "error", err, NULL);
    if (err && e->staged && strcmp(err, RSCRIPT_CLOSED) != 0)
        redis_command(e->rd, queue_staged, NULL, "UNLINK %s", e->staged);
    if (err == NULL && reply->integer < e->left) {
        e->left -= reply->integer;
        queue_fill_step(e);
        return;
    }
    queue_enq_end(e, err);
}

/* Push p's To addresses onto the list at key in chunks: the commands are
 * pipelined ahead of the enqueue script, which checks that all arrived. */
static void queue_stage(struct redis *rd, const char *key, const struct fanout_plan *p)
{
    const char **argv = xcalloc(QUEUE_STAGE_CHUNK + 2, sizeof *argv);
    argv[0] = "RPUSH";
    argv[1] = key;
    for (size_t s = 0; s < p->nto; s += QUEUE_STAGE_CHUNK) {
        size_t m = p->nto - s < QUEUE_STAGE_CHUNK ? p->nto - s : QUEUE_STAGE_CHUNK;
        memcpy(argv + 2, p->to + s, m * sizeof *argv);
        redis_command_argv(rd, queue_staged, NULL, (int)m + 2, argv, NULL);
        redis_command(rd, queue_staged, NULL, "PEXPIRE %s %d", key, QUEUE_STAGE_TTL_MS);
    }
    free(argv);
}

/* Public: Redis answers. */
bool queue_ready(const struct queue *q)
{
    return redis_ready(q->rd);
}

/* The addresses p left out (skip mode) as JSON text for enqueue.lua, or
 * NULL when there are none. A raw message's address that is not UTF-8 is
 * kept with '?' for its non-ASCII bytes. */
static char *queue_invalid_json(const struct fanout_plan *p)
{
    if (p->ninvalid == 0)
        return NULL;
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < p->ninvalid; i++) {
        char *addr = xstrdup(p->invalid[i].addr);
        if (!util_utf8_valid(addr, strlen(addr)))
            for (char *c = addr; *c; c++)
                if ((unsigned char)*c >= 0x80)
                    *c = '?';
        json_t *o = json_pack("{s:s,s:s}", "address", addr, "reason", p->invalid[i].reason);
        free(addr);
        if (o == NULL || json_array_append_new(a, o) != 0)
            abort();
    }
    char *text = a ? json_dumps(a, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(a);
    if (text == NULL)
        abort(); /* out of memory: the OOM policy (buf.h) */
    return text;
}

/* control.lua answered a cancel after a failed WAIT. */
static void queue_wait_cancelled(const redisReply *reply, const char *err, void *arg)
{
    char *batch = arg;
    (void)reply;
    if (err && strncmp(err, "COMPLETE", 8) == 0) /* every copy went during the WAIT */
        log_event(LOG_INFO, "batch_unreplicated_complete", "batch", batch, NULL);
    else if (err && strcmp(err, RSCRIPT_CLOSED) != 0)
        log_event(LOG_ERROR, "batch_unreplicated_cancel_failed", "batch", batch, "error", err,
                  NULL);
    free(batch);
}

static void queue_wait_kick(struct queue *q);

/* The round is over: each batch's caller hears it. A batch the replicas
 * did not confirm is cancelled (control.lua: the copies no worker has
 * reached are not sent) and its caller hears QUEUE_UNREPLICATED. */
static void queue_wait_over(struct queue_wround *w)
{
    struct queue *q = w->q;
    long long want = q ? q->cfg->redis_wait_replicas : 0;
    for (size_t i = 0; i < w->n; i++) {
        struct queue_enq *e = w->es[i];
        e->q = NULL;
        if (q == NULL) {
            queue_enq_end(e, RSCRIPT_CLOSED);
            continue;
        }
        if (w->err[0] == '\0' && w->present[i] && w->replicas >= want) {
            queue_enq_end(e, NULL);
            continue;
        }
        char why[256];
        if (w->err[0])
            snprintf(why, sizeof why, "%s: %s", QUEUE_UNREPLICATED, w->err);
        else if (!w->present[i])
            snprintf(why, sizeof why, "%s: the batch is not on the master", QUEUE_UNREPLICATED);
        else
            snprintf(why, sizeof why, "%s: %lld of %lld replicas within %" PRId64 " ms",
                     QUEUE_UNREPLICATED, w->replicas < 0 ? 0 : w->replicas, want,
                     q->cfg->redis_wait_timeout_ms);
        metrics_batch_unreplicated();
        log_event(LOG_WARN, "batch_unreplicated", "batch", e->batch_id, "error",
                  why + strlen(QUEUE_UNREPLICATED) + 2, "note",
                  "the client hears ServiceUnavailable; the batch is cancelled", NULL);
        char *kb = rscript_key(q->scripts, "b:", e->batch_id);
        char ttl[24], step[24];
        snprintf(ttl, sizeof ttl, "%" PRId64, q->cfg->status_ttl_ms);
        snprintf(step, sizeof step, "%d", 5000);
        const char *argv[5] = {kb, q->kpfx, "cancel", ttl, step};
        rscript_eval(q->scripts, RSCRIPT_CONTROL, 2, 5, argv, NULL, queue_wait_cancelled,
                     xstrdup(e->batch_id));
        free(kb);
        queue_enq_end(e, why);
    }
    if (q) {
        q->round = NULL;
        queue_wait_kick(q);
    }
    free(w->es);
    free(w->present);
    free(w);
}

/* A reply of a round: EXISTS of batch i, the INCR or the WAIT (i == n). */
static void queue_wait_reply(const redisReply *reply, const char *err, void *arg)
{
    struct queue_wslot *sl = arg;
    struct queue_wround *w = sl->w;
    if (err && w->err[0] == '\0')
        snprintf(w->err, sizeof w->err, "%s", err);
    else if (err == NULL && reply && reply->type == REDIS_REPLY_INTEGER) {
        if (sl->i < w->n)
            w->present[sl->i] = reply->integer == 1;
        else if (sl->i == w->n + 1)
            w->replicas = reply->integer;
    }
    free(sl);
    if (--w->left == 0)
        queue_wait_over(w);
}

/* Send a round for the batches waiting, unless one is in flight. */
static void queue_wait_kick(struct queue *q)
{
    if (q->round || q->acks == NULL)
        return;
    struct queue_wround *w = xcalloc(1, sizeof *w);
    w->q = q;
    w->replicas = -1;
    for (struct queue_enq *e = q->acks; e; e = e->next)
        w->n++;
    w->es = xcalloc(w->n, sizeof *w->es);
    w->present = xcalloc(w->n, sizeof *w->present);
    size_t i = 0;
    while (q->acks) {
        struct queue_enq *e = q->acks;
        q->acks = e->next;
        e->next = NULL;
        e->waited = true;
        w->es[i++] = e;
    }
    q->acks_tail = &q->acks;
    q->round = w;
    w->left = w->n + 2;
    for (i = 0; i <= w->n + 1; i++) {
        struct queue_wslot *sl = xcalloc(1, sizeof *sl);
        sl->w = w;
        sl->i = i;
        if (i < w->n) {
            char *kb = rscript_key(q->scripts, "b:", w->es[i]->batch_id);
            redis_command(q->wait_rd, queue_wait_reply, sl, "EXISTS %s", kb);
            free(kb);
        } else if (i == w->n) {
            redis_command(q->wait_rd, queue_wait_reply, sl, "INCR %s", q->kmark);
        } else {
            redis_command(q->wait_rd, queue_wait_reply, sl, "WAIT %lld %lld",
                          (long long)q->cfg->redis_wait_replicas,
                          (long long)q->cfg->redis_wait_timeout_ms);
        }
    }
}

/* e's batch is stored: its caller hears it after the next round. */
static void queue_wait_add(struct queue *q, struct queue_enq *e)
{
    e->next = NULL;
    *q->acks_tail = e;
    q->acks_tail = &e->next;
    queue_wait_kick(q);
}

/* Public: store a batch and queue its copies (1.. when copy 0 was sent). */
void queue_enqueue(struct queue *q, const char *batch_id, const char *client, const char *upstream,
                   struct fanout_plan *p, const char *copy0_id, queue_done_fn done, void *arg)
{
    struct queue_enq *e = queue_enq_new(q, done, arg);
    snprintf(e->batch_id, sizeof e->batch_id, "%s", batch_id);
    size_t first = copy0_id ? 1 : 0;
    e->left = (long long)(p->nto - (first < p->nto ? first : p->nto));
    if (first >= p->nto && p->ninvalid == 0) {
        e->waited = true; /* nothing is written: nothing to replicate */
        /* redis_command on a closed connection answers later: do the same */
        rscript_eval(q->scripts, RSCRIPT_ENQUEUE, 0, 0, NULL, NULL, queue_enqueued, e);
        return;
    }
    bool staged = p->nto > QUEUE_STAGE_CHUNK;
    /* copy 0's MessageId is indexed for SES's events about it (KEYS[11]) */
    int64_t ittl = queue_index_ttl(q->cfg);
    bool index0 = copy0_id && ittl > 0 && strcmp(copy0_id, "-") != 0;
    size_t nkeys = index0 ? 11 : 10;
    size_t n = nkeys + 14 + (staged ? 0 : p->nto);
    const char **argv = xcalloc(n, sizeof *argv);
    size_t *lens = xcalloc(n, sizeof *lens);
    char *kb = rscript_key(q->scripts, "b:", batch_id),
         *kr = rscript_key(q->scripts, "r:", batch_id);
    char *kq = rscript_ukey(q->scripts, upstream, "q:", client),
         *krec = rscript_key(q->scripts, "recent", NULL);
    char *kqs = rscript_ukey(q->scripts, upstream, "qs", NULL);
    char *ko = rscript_key(q->scripts, "o:", batch_id),
         *kt = rscript_key(q->scripts, "t:", batch_id);
    char *kseq = rscript_key(q->scripts, "seq", NULL),
         *ks = rscript_key(q->scripts, "rs:", batch_id);
    char *km = index0 ? rscript_key(q->scripts, "m:", copy0_id) : NULL;
    char created[24], ttl[24], nstaged[24], step[24], ittls[24];
    snprintf(ittls, sizeof ittls, "%" PRId64, index0 ? ittl : 0);
    snprintf(step, sizeof step, "%ld", q->fill_step);
    snprintf(nstaged, sizeof nstaged, "%zu", staged ? p->nto : 0);
    if (staged) {
        queue_stage(q->rd, ks, p);
        e->rd = q->rd;
        e->staged = xstrdup(ks);
    }
    snprintf(created, sizeof created, "%" PRId64, clock_wall_ms());
    snprintf(ttl, sizeof ttl, "%" PRId64, q->cfg->status_ttl_ms);
    struct buf riders = BUF_INIT;
    for (size_t i = 0; i < p->nriders; i++)
        buf_printf(&riders, "%s%c:%s", i ? "\n" : "", p->riders[i].kind == FANOUT_BCC ? 'b' : 'c',
                   p->riders[i].addr);
    char flags[16] = "";
    if (p->raw)
        strcat(flags, "raw");
    if (p->dkim_envelope_only)
        strcat(flags, flags[0] ? " dkim" : "dkim");
    size_t k = 0;
    argv[k++] = kb;
    argv[k++] = kr;
    argv[k++] = kq;
    argv[k++] = krec;
    argv[k++] = ko;
    argv[k++] = kt;
    argv[k++] = kseq;
    argv[k++] = kqs;
    argv[k++] = ks;
    argv[k++] = q->kfilling;
    if (index0)
        argv[k++] = km;
    argv[k++] = batch_id;
    argv[k++] = created;
    argv[k++] = client;
    argv[k++] = p->api == SESREQ_V2 ? "2" : "1";
    argv[k++] = p->action ? p->action : "";
    /* the template, the one large argument, is handed to the call */
    size_t tk = k;
    lens[k] = p->template.len;
    char *template = p->template.data ? buf_detach(&p->template, NULL) : xstrdup("");
    argv[k++] = template;
    argv[k++] = buf_cstr(&riders);
    argv[k++] = flags;
    argv[k++] = ttl;
    argv[k++] = copy0_id ? copy0_id : "";
    argv[k++] = nstaged;
    char *invalid = queue_invalid_json(p);
    argv[k++] = invalid ? invalid : "";
    argv[k++] = step;
    argv[k++] = ittls;
    for (size_t i = 0; !staged && i < p->nto; i++)
        argv[k++] = p->to[i];
    for (size_t i = 0; i < n; i++)
        if (i != tk)
            lens[i] = strlen(argv[i]);
    rscript_eval_give(q->scripts, RSCRIPT_ENQUEUE, (int)nkeys, (int)n, argv, lens, (int)tk,
                      template, queue_enqueued, e);
    free(km);
    free(ko);
    free(kt);
    free(kseq);
    free(kb);
    free(kr);
    free(kq);
    free(kqs);
    free(krec);
    free(ks);
    buf_free(&riders);
    free(invalid);
    free(argv);
    free(lens);
}
