/* queue: the durable bulk queue on Redis and the workers that drain it
 * (docs/QUEUE.md). Every script runs with EVALSHA (the SHA-1 of its source,
 * computed here) and falls back to EVAL with the source on NOSCRIPT.
 */
#include "queue.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "backoff.h"
#include "buf.h"
#include "clock.h"
#include "log.h"
#include "limiter.h"
#include "lua_scripts.h"
#include "metrics.h"
#include "seserr.h"
#include "util.h"

#define QUEUE_IDLE_MS      50    /* wait after a read that returned nothing */
#define QUEUE_TICK_MS      1000  /* due retries and reclaims */
#define QUEUE_STREAMS_MS   250   /* how often a reading worker looks for new client streams */
#define QUEUE_HOLD_MS      60000 /* daily quota exceeded: try again after this */
#define QUEUE_RECORD_MS    250   /* an outcome Redis did not take: record it again after this */
#define QUEUE_RECLAIM_MAX  100
#define QUEUE_DUE_MAX      1000
#define QUEUE_CACHE        8 /* batches kept in memory */
#define QUEUE_MAX_INFLIGHT 1024
#define QUEUE_STAGE_CHUNK  4096 /* a batch with more To addresses is staged in chunks this size */
#define QUEUE_STAGE_TTL_MS 3600000 /* a staged list left by a process that died goes after this */
#define QUEUE_SKEW_MS      5000    /* a copy refused for our clock goes again after 5-10 s */
#define QUEUE_SKEW_LOG_MS  10000   /* at most one upstream_clock_skew warning per this */

enum queue_script {
    QS_ENQUEUE = 0,
    QS_OUTCOME,
    QS_CHECK,
    QS_DUE,
    QS_LIMIT,
    QS_LOAD,
    QS_EPOCH,
    QS_COUNT
};

static const char *const queue_sources[QS_COUNT] = {
    queue_lua_enqueue, queue_lua_outcome, queue_lua_check, queue_lua_due,
    queue_lua_limit,   queue_lua_load,    queue_lua_epoch};

/* One script call in flight: its arguments are kept for the EVAL fallback. */
struct queue_call {
    struct queue *q; /* NULL once the queue is gone */
    enum queue_script script;
    int argc;
    char **argv;
    size_t *lens;
    bool fell_back;
    redis_cb cb; /* NULL once answered early (queue_free) */
    void *arg;
    struct queue_call *prev, *next;
};

struct queue {
    struct event_base *base;
    const struct config *cfg;
    struct redis *rd;
    char *pfx; /* "<P>:{<P>}:" */
    char sha[QS_COUNT][2 * SHA_DIGEST_LENGTH + 1];
    struct queue_call *calls; /* in flight */
    struct event *epoch_timer;
    char epoch[40];     /* the epoch this process saw ("": not yet) */
    bool epoch_pending; /* epoch.lua in flight */
    unsigned epoch_ticks;
};

/* An enqueue waiting for Redis. */
struct queue_enq {
    queue_done_fn done;
    void *arg;
    struct redis *rd;
    char *staged; /* the staged list's key, or NULL */
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

/* A key of q: the prefix plus suffix (and id when not NULL). */
static char *queue_key(const struct queue *q, const char *suffix, const char *id)
{
    struct buf b = BUF_INIT;
    buf_printf(&b, "%s%s%s", q->pfx, suffix, id ? id : "");
    return buf_detach(&b, NULL);
}

/* Unlink c from q's list of calls in flight. */
static void queue_call_unlink(struct queue_call *c)
{
    if (c->q == NULL)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->q->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/* Release c. */
static void queue_call_free(struct queue_call *c)
{
    for (int i = 0; i < c->argc; i++)
        free(c->argv[i]);
    free(c->argv);
    free(c->lens);
    free(c);
}

static void queue_call_reply(const redisReply *reply, const char *err, void *arg);

/* Send c: EVALSHA, or EVAL with the source after a NOSCRIPT. */
static void queue_call_send(struct queue_call *c)
{
    free(c->argv[0]);
    free(c->argv[1]);
    if (c->fell_back) {
        c->argv[0] = xstrdup("EVAL");
        c->argv[1] = xstrdup(queue_sources[c->script]);
    } else {
        c->argv[0] = xstrdup("EVALSHA");
        c->argv[1] = xstrdup(c->q->sha[c->script]);
    }
    c->lens[0] = strlen(c->argv[0]);
    c->lens[1] = strlen(c->argv[1]);
    redis_command_argv(c->q->rd, queue_call_reply, c, c->argc, (const char **)c->argv, c->lens);
}

/* The answer to a script call. */
static void queue_call_reply(const redisReply *reply, const char *err, void *arg)
{
    struct queue_call *c = arg;
    if (c->q && !c->fell_back && err && strncmp(err, "NOSCRIPT", 8) == 0) {
        c->fell_back = true;
        queue_call_send(c);
        return;
    }
    queue_call_unlink(c);
    if (c->cb)
        c->cb(reply, err, c->arg);
    queue_call_free(c);
}

/* Run script with nkeys keys then the other arguments (argv[0..n-1], lens
 * may be NULL for C strings); cb fires exactly once, never inline. */
static void queue_eval(struct queue *q, enum queue_script script, int nkeys, int n,
                       const char *const *argv, const size_t *lens, redis_cb cb, void *arg)
{
    struct queue_call *c = xcalloc(1, sizeof *c);
    c->q = q;
    c->script = script;
    c->argc = n + 3;
    c->argv = xcalloc((size_t)c->argc, sizeof *c->argv);
    c->lens = xcalloc((size_t)c->argc, sizeof *c->lens);
    char nk[16];
    snprintf(nk, sizeof nk, "%d", nkeys);
    c->argv[2] = xstrdup(nk);
    c->lens[2] = strlen(nk);
    for (int i = 0; i < n; i++) {
        size_t len = lens ? lens[i] : strlen(argv[i]);
        c->argv[3 + i] = xstrndup(argv[i], len);
        c->lens[3 + i] = len;
    }
    c->cb = cb;
    c->arg = arg;
    c->next = q->calls;
    if (q->calls)
        q->calls->prev = c;
    q->calls = c;
    queue_call_send(c);
}

/* epoch.lua answered. */
static void queue_epoch_done(const redisReply *reply, const char *err, void *arg)
{
    struct queue *q = arg;
    if (err && strcmp(err, "queue closed") == 0)
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
    char *key = queue_key(q, "epoch", NULL);
    const char *argv[3] = {key, q->epoch, fresh};
    q->epoch_pending = true;
    queue_eval(q, QS_EPOCH, 1, 3, argv, NULL, queue_epoch_done, q);
    free(key);
}

/* Public: the queue on rd. */
struct queue *queue_new(struct event_base *base, const struct config *cfg, struct redis *rd)
{
    struct queue *q = xcalloc(1, sizeof *q);
    q->base = base;
    q->cfg = cfg;
    q->rd = rd;
    struct buf b = BUF_INIT;
    buf_printf(&b, "%s:{%s}:", cfg->prefix, cfg->prefix);
    q->pfx = buf_detach(&b, NULL);
    for (int i = 0; i < QS_COUNT; i++) {
        unsigned char md[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)queue_sources[i], strlen(queue_sources[i]), md);
        util_hex(md, sizeof md, q->sha[i]);
    }
    q->epoch_timer = event_new(base, -1, EV_PERSIST, queue_epoch_cb, q);
    struct timeval tick = {0, 250000};
    event_add(q->epoch_timer, &tick);
    return q;
}

/* Public: release q; calls in flight are answered with an error now. */
void queue_free(struct queue *q)
{
    if (q == NULL)
        return;
    event_free(q->epoch_timer);
    while (q->calls) {
        struct queue_call *c = q->calls;
        queue_call_unlink(c);
        c->q = NULL;
        redis_cb cb = c->cb;
        c->cb = NULL;
        if (cb)
            cb(NULL, "queue closed", c->arg);
    }
    free(q->pfx);
    free(q);
}

/* A staging command answered: enqueue.lua checks what arrived. */
static void queue_staged(const redisReply *reply, const char *err, void *arg)
{
    (void)reply;
    (void)err;
    (void)arg;
}

/* enqueue.lua answered. */
static void queue_enqueued(const redisReply *reply, const char *err, void *arg)
{
    struct queue_enq *e = arg;
    if (err == NULL && (reply == NULL || reply->type != REDIS_REPLY_INTEGER))
        err = "unexpected reply from enqueue";
    if (err)
        log_event(LOG_WARN, "queue_enqueue_failed", "error", err, NULL);
    if (err && e->staged && strcmp(err, "queue closed") != 0)
        redis_command(e->rd, queue_staged, NULL, "DEL %s", e->staged);
    e->done(err, e->arg);
    free(e->staged);
    free(e);
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

/* Public: run limit.lua for the account, and for client when not NULL. */
void queue_limit(struct queue *q, const char *client, int nargs, const char *const *args,
                 redis_cb cb, void *arg)
{
    const char *argv[4 + 8];
    char *keys[4] = {queue_key(q, "rl", NULL), queue_key(q, "day", NULL), NULL, NULL};
    int nkeys = 2;
    if (client) {
        keys[2] = queue_key(q, "rl:c:", client);
        keys[3] = queue_key(q, "day:c:", client);
        nkeys = 4;
    }
    if (nargs > 8)
        nargs = 8;
    for (int i = 0; i < nkeys; i++)
        argv[i] = keys[i];
    for (int i = 0; i < nargs; i++)
        argv[nkeys + i] = args[i];
    queue_eval(q, QS_LIMIT, nkeys, nkeys + nargs, argv, NULL, cb, arg);
    for (int i = 0; i < 4; i++)
        free(keys[i]);
}

/* Public: limit.lua status on a client's own keys. */
void queue_limit_client_status(struct queue *q, const char *client, redis_cb cb, void *arg)
{
    char *kr = queue_key(q, "rl:c:", client), *kd = queue_key(q, "day:c:", client);
    const char *argv[4] = {kr, kd, "status", ""};
    queue_eval(q, QS_LIMIT, 2, 4, argv, NULL, cb, arg);
    free(kr);
    free(kd);
}

/* Public: Redis answers. */
bool queue_ready(const struct queue *q)
{
    return redis_ready(q->rd);
}

/* Public: store a batch and queue its copies (1.. when copy 0 was sent). */
void queue_enqueue(struct queue *q, const char *batch_id, const char *client,
                   const struct fanout_plan *p, const char *copy0_id, queue_done_fn done, void *arg)
{
    struct queue_enq *e = xcalloc(1, sizeof *e);
    e->done = done;
    e->arg = arg;
    size_t first = copy0_id ? 1 : 0;
    if (first >= p->nto) {
        /* redis_command on a closed connection answers later: do the same */
        queue_eval(q, QS_ENQUEUE, 0, 0, NULL, NULL, queue_enqueued, e);
        return;
    }
    bool staged = p->nto > QUEUE_STAGE_CHUNK;
    size_t n = 9 + 11 + (staged ? 0 : p->nto);
    const char **argv = xcalloc(n, sizeof *argv);
    size_t *lens = xcalloc(n, sizeof *lens);
    char *kb = queue_key(q, "b:", batch_id), *kr = queue_key(q, "r:", batch_id);
    char *kq = queue_key(q, "q:", client), *krec = queue_key(q, "recent", NULL);
    char *kqs = queue_key(q, "qs", NULL);
    char *ko = queue_key(q, "o:", batch_id), *kt = queue_key(q, "t:", batch_id);
    char *kseq = queue_key(q, "seq", NULL), *ks = queue_key(q, "rs:", batch_id);
    char created[24], ttl[24], nstaged[24];
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
    argv[k++] = batch_id;
    argv[k++] = created;
    argv[k++] = client;
    argv[k++] = p->api == SESREQ_V2 ? "2" : "1";
    argv[k++] = p->action ? p->action : "";
    lens[k] = p->template.len; /* index 14 */
    argv[k++] = p->template.data ? p->template.data : "";
    argv[k++] = buf_cstr(&riders);
    argv[k++] = flags;
    argv[k++] = ttl;
    argv[k++] = copy0_id ? copy0_id : "";
    argv[k++] = nstaged;
    for (size_t i = 0; !staged && i < p->nto; i++)
        argv[k++] = p->to[i];
    for (size_t i = 0; i < n; i++)
        if (i != 14)
            lens[i] = strlen(argv[i]);
    queue_eval(q, QS_ENQUEUE, 9, (int)n, argv, lens, queue_enqueued, e);
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
    free(argv);
    free(lens);
}

/* ------------------------------------------------------------ worker */

/* A batch as a worker needs it, shared by the sends of its copies. */
struct qbatch {
    char *n;  /* its number: the b of its stream entries */
    char *id; /* the batch id */
    char *client;
    int refs;
    uint64_t used; /* LRU stamp */
    int api;
    char *action;
    bool raw, dkim;
    struct buf template;
    struct fanout_rcpt *riders;
    size_t nriders;
};

/* A client's queue stream, as one worker reads it. Kept for the worker's
 * life once seen (one per client that ever queued a batch). */
struct wstream {
    struct worker *w;
    char *key;             /* P:{P}:q:<client> */
    char claim_cursor[48]; /* XAUTOCLAIM's */
    size_t jobs;           /* this worker's jobs read from it */
    uint64_t served;       /* recipients granted, in the pace queue's fair-share clock */
};

/* One stream entry being handled. */
struct job {
    struct worker *w;
    struct wstream *ws; /* the stream it was read from */
    char *entry;
    char *bn;       /* the batch number of the entry */
    char *batch_id; /* the batch id, once the batch is loaded */
    long index;
    int attempt;
    bool reclaimed;
    struct qbatch *b;
    char *addr;
    struct buf body;
    struct upstream_call *call;
    bool redis_pending;
    char *outcome[4];           /* kind and arguments, kept until Redis took them */
    struct event *record_timer; /* records the outcome again after a Redis outage */
    bool pacing;                /* waiting in the worker's pace queue for the limiter */
    bool waiting;               /* pacing, its send timer pending, or ready: not a send in flight */
    bool ready;                 /* its reserved time came with every slot busy: in the ready list */
    struct event *send_timer;   /* sends at its reserved time */
    struct job *pnext;          /* next in the pace queue */
    struct job *rprev, *rnext;  /* neighbours in the ready list */
    struct job *prev, *next;
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
    struct upstream *up;
    struct resign *rs;
    char *name;
    char *kqs, *kd, *kdlq;
    char *kprefix;            /* P:{P}: */
    struct wstream **streams; /* every client stream seen in kqs */
    size_t nstreams;
    uint64_t served;    /* fair-share clock: the least served client's count at the last take */
    int64_t streams_ms; /* when the stream set was last read (monotonic ms) */
    struct event *read_timer;
    struct event *tick_timer;
    bool stopped, freed, reading;
    int redis_pending; /* reads, ticks and group creation in flight */
    size_t inflight;   /* jobs */
    struct job *jobs;
    struct qbatch *cache[QUEUE_CACHE];
    uint64_t stamp;
    struct limiter *lim;               /* NULL or off: send at once */
    struct job *pace_head, *pace_tail; /* jobs waiting for a reservation, in order */
    size_t pacing;                     /* jobs in the pace queue */
    size_t waiting;                    /* jobs pacing or waiting for their reserved time */
    struct job **group;                /* the jobs the take in flight is for */
    size_t ngroup, group_cap;
    struct worker_wait *waits; /* clients refused by their own rate, until when */
    size_t nwaits;
    bool taking;              /* a take is in flight */
    struct event *pace_timer; /* retries a refused take */
    int64_t hold_until_ms;    /* daily quota used up: read nothing before this (monotonic ms) */
    int64_t skew_logged_ms;   /* the last upstream_clock_skew warning (monotonic ms) */
    /* Jobs whose reserved time came while every slot was busy, oldest first. */
    struct job *ready_head, *ready_tail;
};

static void worker_read(struct worker *w);
static void worker_job_step(struct job *j);
static void worker_outcome(struct job *j, const char *kind, const char *a1, const char *a2,
                           const char *a3);

/* Release b when its last user lets go. */
static void worker_batch_unref(struct qbatch *b)
{
    if (b == NULL || --b->refs > 0)
        return;
    free(b->n);
    free(b->id);
    free(b->client);
    free(b->action);
    buf_free(&b->template);
    for (size_t i = 0; i < b->nriders; i++)
        free(b->riders[i].addr);
    free(b->riders);
    free(b);
}

/* The cached batch of number n, or NULL. */
static struct qbatch *worker_cache_get(struct worker *w, const char *n)
{
    for (int i = 0; i < QUEUE_CACHE; i++)
        if (w->cache[i] && strcmp(w->cache[i]->n, n) == 0) {
            w->cache[i]->used = ++w->stamp;
            return w->cache[i];
        }
    return NULL;
}

/* Forget the cached batch of number n. */
static void worker_cache_drop(struct worker *w, const char *n)
{
    for (int i = 0; i < QUEUE_CACHE; i++)
        if (w->cache[i] && strcmp(w->cache[i]->n, n) == 0) {
            worker_batch_unref(w->cache[i]);
            w->cache[i] = NULL;
        }
}

/* Keep b in the cache, evicting the least recently used. */
static void worker_cache_put(struct worker *w, struct qbatch *b)
{
    int slot = 0;
    for (int i = 0; i < QUEUE_CACHE; i++) {
        if (w->cache[i] == NULL) {
            slot = i;
            break;
        }
        if (w->cache[i]->used < w->cache[slot]->used)
            slot = i;
    }
    worker_batch_unref(w->cache[slot]);
    b->refs++;
    b->used = ++w->stamp;
    w->cache[slot] = b;
}

/* Free w once it was released and nothing refers to it any more. */
static void worker_maybe_free(struct worker *w)
{
    if (!w->freed || w->redis_pending > 0 || w->jobs)
        return;
    for (int i = 0; i < QUEUE_CACHE; i++)
        worker_batch_unref(w->cache[i]);
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
    free(w->kd);
    free(w->kdlq);
    free(w);
}

/* Take j out of w's pace queue. */
static void worker_pace_unlink(struct worker *w, struct job *j)
{
    struct job **pp = &w->pace_head, *prev = NULL;
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
static void worker_ready_unlink(struct worker *w, struct job *j)
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

/* Remove j and release it; a slot it held goes to the ready list first,
 * then the worker may read more. */
static void worker_job_end(struct job *j)
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
    worker_batch_unref(j->b);
    free(j->entry);
    free(j->bn);
    free(j->batch_id);
    free(j->addr);
    buf_free(&j->body);
    for (int i = 0; i < 4; i++)
        free(j->outcome[i]);
    if (j->record_timer)
        event_free(j->record_timer);
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

/* A field of a stream entry's flat field array, or NULL. */
static const redisReply *worker_field(const redisReply *fields, const char *name)
{
    if (fields == NULL || fields->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *k = fields->element[i];
        if (k->type == REDIS_REPLY_STRING && strcmp(k->str, name) == 0)
            return fields->element[i + 1];
    }
    return NULL;
}

/* Start handling the entry e ([id, [field, value...]]) of stream ws. */
static void worker_job_start(struct wstream *ws, const redisReply *e, bool reclaimed)
{
    struct worker *w = ws->w;
    if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
        e->element[0]->type != REDIS_REPLY_STRING)
        return;
    const redisReply *b = worker_field(e->element[1], "b");
    const redisReply *i = worker_field(e->element[1], "i");
    const redisReply *a = worker_field(e->element[1], "a");
    struct job *j = xcalloc(1, sizeof *j);
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
static bool worker_job_orphaned(struct job *j)
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
    struct job *j = arg;
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
static void worker_ack(struct job *j)
{
    struct worker *w = j->w;
    j->redis_pending = true;
    redis_command(w->q->rd, worker_reply_ignored, NULL, "XACK %s w %s", j->ws->key, j->entry);
    redis_command(w->q->rd, worker_acked, j, "XDEL %s %s", j->ws->key, j->entry);
}

static void worker_record(struct job *j);

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
    struct job *j = arg;
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
        struct timeval tv = {0, QUEUE_RECORD_MS * 1000};
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
static void worker_record(struct job *j)
{
    struct worker *w = j->w;
    char *kb = queue_key(w->q, "b:", j->batch_id), *ko = queue_key(w->q, "o:", j->batch_id);
    char *kr = queue_key(w->q, "r:", j->batch_id), *kt = queue_key(w->q, "t:", j->batch_id);
    char *kn = queue_key(w->q, "n:", j->bn);
    char idx[24], ttl[24];
    snprintf(idx, sizeof idx, "%ld", j->index);
    snprintf(ttl, sizeof ttl, "%" PRId64, w->cfg->status_ttl_ms);
    const char *argv[15] = {kb, ko, j->ws->key, w->kd, w->kdlq, kr, kt, kn, j->entry, idx};
    int n = 10;
    for (int i = 0; i < 4 && j->outcome[i]; i++)
        argv[n++] = j->outcome[i];
    argv[n++] = ttl;
    j->redis_pending = true;
    queue_eval(w->q, QS_OUTCOME, 8, n, argv, NULL, worker_outcome_done, j);
    free(kb);
    free(ko);
    free(kr);
    free(kt);
    free(kn);
}

/* Record j's outcome: kind and up to three arguments (NULL: none). */
static void worker_outcome(struct job *j, const char *kind, const char *a1, const char *a2,
                           const char *a3)
{
    const char *parts[4] = {kind, a1, a2, a3};
    for (int i = 0; i < 4 && parts[i]; i++)
        j->outcome[i] = xstrdup(parts[i]);
    worker_record(j);
}

/* Record a permanent failure of j. */
static void worker_dead(struct job *j, const char *code, const char *message)
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
static void worker_retry(struct job *j, int64_t delay_ms, int next_attempt, const char *why,
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

/* The text between open and close in s (n bytes), into out (size outlen). */
static bool worker_xml_text(const char *s, size_t n, const char *open, const char *close, char *out,
                            size_t outlen)
{
    const char *p = memmem(s, n, open, strlen(open));
    if (p == NULL)
        return false;
    p += strlen(open);
    const char *e = memmem(p, n - (size_t)(p - s), close, strlen(close));
    if (e == NULL)
        return false;
    size_t len = (size_t)(e - p);
    if (len >= outlen)
        len = outlen - 1;
    memcpy(out, p, len);
    out[len] = '\0';
    return true;
}

/* A string member of the JSON object in s, into out. */
static bool worker_json_text(const char *s, size_t n, const char *key, char *out, size_t outlen)
{
    json_t *root = json_loadb(s, n, 0, NULL);
    bool ok = false;
    if (root) {
        json_t *v = json_object_get(root, key);
        if (v == NULL && strcmp(key, "message") == 0)
            v = json_object_get(root, "Message");
        if (json_is_string(v)) {
            snprintf(out, outlen, "%s", json_string_value(v));
            ok = true;
        }
        json_decref(root);
    }
    return ok;
}

/* Public: the MessageId of an SES send answer. */
bool queue_message_id(int api, const char *body, size_t n, char *out, size_t outlen)
{
    if (api == 2)
        return worker_json_text(body, n, "MessageId", out, outlen);
    return worker_xml_text(body, n, "<MessageId>", "</MessageId>", out, outlen);
}

/* Public: the code and message of an SES error answer. */
void queue_error_of(int api, const struct upstream_response *res, char *code, size_t codelen,
                    char *message, size_t msglen)
{
    const char *data = res->body.data ? res->body.data : "";
    size_t n = res->body.len;
    code[0] = message[0] = '\0';
    if (api == 2) {
        snprintf(code, codelen, "%s", res->error_type);
        if (code[0] == '\0')
            worker_json_text(data, n, "__type", code, codelen);
        worker_json_text(data, n, "message", message, msglen);
    } else {
        worker_xml_text(data, n, "<Code>", "</Code>", code, codelen);
        worker_xml_text(data, n, "<Message>", "</Message>", message, msglen);
    }
}

/* Recipients j's copy counts for: its To recipient, and on copy 0 the
 * Cc and Bcc riders. */
static int64_t worker_cost(const struct job *j)
{
    return 1 + (j->index == 0 && j->b ? (int64_t)j->b->nriders : 0);
}

/* The upstream answered j's send. */
static void worker_sent(struct upstream_response *res, void *arg)
{
    struct job *j = arg;
    j->call = NULL;
    buf_free(&j->body);
    int api = j->b->api;
    const char *data = res->body.data ? res->body.data : "";
    size_t n = res->body.len;
    char code[128] = "", message[512] = "", msgid[256] = "";
    bool transport = res->error != UPSTREAM_OK;
    if (!transport && res->status >= 300)
        queue_error_of(api, res, code, sizeof code, message, sizeof message);
    enum backoff_class cls =
        backoff_classify(api, res->status, code[0] ? code : NULL, message, transport);
    char idx[24];
    snprintf(idx, sizeof idx, "%ld", j->index);
    if (!transport && res->status >= 400 && backoff_clock_skew(code, message)) {
        /* Our clock is off: SES did not act on it, and the copy goes again
         * later without counting an attempt (it would otherwise become a
         * dead letter, for no fault of its own, after max_attempts). */
        queue_clock_skew(&j->w->skew_logged_ms, code, message);
        if (j->w->lim)
            limiter_refund(j->w->lim, limiter_client(j->w->cfg, j->b->client), worker_cost(j));
        uint64_t rnd = 0;
        RAND_bytes((unsigned char *)&rnd, sizeof rnd);
        worker_retry(j, QUEUE_SKEW_MS + (int64_t)(rnd % QUEUE_SKEW_MS), j->attempt, "clock_skew",
                     NULL);
        return;
    }
    switch (cls) {
    case BACKOFF_OK:
        if (!queue_message_id(api, data, n, msgid, sizeof msgid) || msgid[0] == '\0')
            snprintf(msgid, sizeof msgid, "-");
        if (j->w->cfg->sandbox_started && (strcmp(res->sandbox_outcome, "bounce") == 0 ||
                                           strcmp(res->sandbox_outcome, "suppressed") == 0)) {
            /* The sandbox's mailbox simulator: accepted, then bounced. */
            bool bounce = res->sandbox_outcome[0] == 'b';
            char m[400];
            snprintf(m, sizeof m, "%s (mailbox simulator, MessageId %s)",
                     bounce ? "Permanent bounce: 550 5.1.1 user unknown"
                            : "The address is on the account's suppression list",
                     msgid);
            worker_dead(j, bounce ? "Bounce" : "Suppressed", m);
            return;
        }
        if (j->w->cfg->sandbox_started && (strcmp(res->sandbox_outcome, "complaint") == 0 ||
                                           strcmp(res->sandbox_outcome, "ooto") == 0)) {
            /* Delivered, and the simulator's complaint or auto reply noted. */
            size_t l = strlen(msgid);
            snprintf(msgid + l, sizeof msgid - l, " %s", res->sandbox_outcome);
        }
        log_event(LOG_DEBUG, "queue_sent", "batch", j->batch_id, "index", idx, "message_id", msgid,
                  NULL);
        metrics_queue_sent();
        worker_outcome(j, "sent", msgid, NULL, NULL);
        return;
    case BACKOFF_QUOTA:
        if (j->w->lim) /* not sent: SES does not count it either */
            limiter_refund(j->w->lim, limiter_client(j->w->cfg, j->b->client), worker_cost(j));
        worker_retry(j, QUEUE_HOLD_MS, j->attempt, "quota", NULL);
        return;
    case BACKOFF_THROTTLED: {
        /* Sent faster than SES allows: cut the shared rate; the copy goes
         * again later and this never counts against max_attempts. */
        if (j->w->lim) {
            limiter_throttled(j->w->lim);
            limiter_refund(j->w->lim, limiter_client(j->w->cfg, j->b->client), worker_cost(j));
        }
        uint64_t rnd = 0;
        RAND_bytes((unsigned char *)&rnd, sizeof rnd);
        worker_retry(j, backoff_delay_ms(1, BACKOFF_BASE_MS, BACKOFF_CAP_MS, rnd), j->attempt,
                     "Throttling", NULL);
        return;
    }
    case BACKOFF_RETRY:
        if (backoff_give_up(j->attempt, (int)j->w->cfg->max_attempts)) {
            char c[160];
            if (transport)
                snprintf(c, sizeof c, "Transport");
            else
                snprintf(c, sizeof c, "%s", code[0] ? code : "HTTP");
            char m[600];
            if (transport)
                snprintf(m, sizeof m, "%s", res->errmsg);
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

/* Render, sign and send j's copy. */
static void worker_send(struct job *j)
{
    struct worker *w = j->w;
    struct qbatch *b = j->b;
    struct fanout_copy c = {
        .api = b->api == 2 ? SESREQ_V2 : SESREQ_V1,
        .raw = b->raw,
        .dkim_envelope_only = b->dkim,
        .template = b->template.data ? b->template.data : "",
        .template_len = b->template.len,
        .to = j->addr,
        .first = j->index == 0,
        .riders = j->index == 0 ? b->riders : NULL,
        .nriders = j->index == 0 ? b->nriders : 0,
    };
    struct seserr e = {0};
    buf_reset(&j->body);
    if (fanout_render_copy(&c, &j->body, &e) < 0) {
        worker_dead(j, seserr_name(e.code),
                    e.message[0] ? e.message : seserr_default_message(e.code));
        return;
    }
    const char *path = b->api == 2 ? "/v2/email/outbound-emails" : "/";
    const char *ctype =
        b->api == 2 ? "application/json" : "application/x-www-form-urlencoded; charset=utf-8";
    char hash[UTIL_SHA256_HEX_LEN + 1];
    util_sha256_hex(j->body.data ? j->body.data : "", j->body.len, hash);
    char *url = NULL;
    struct curl_slist *headers = NULL;
    if (resign_request(w->rs, "POST", path, strlen(path), "", 0, ctype, strlen(ctype), hash,
                       time(NULL), &url, &headers) < 0) {
        worker_dead(j, "internal", "the request could not be signed");
        return;
    }
    j->call = upstream_start(w->up, "POST", url, headers, j->body.data ? j->body.data : "",
                             j->body.len, worker_sent, j);
    free(url);
}

/* Parse the riders lines of a batch into b. */
static void worker_parse_riders(struct qbatch *b, const char *s, size_t n)
{
    size_t lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += s[i] == '\n';
    b->riders = xcalloc(lines + 1, sizeof *b->riders);
    const char *p = s, *end = s + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        if (e - p > 2 && p[1] == ':') {
            struct fanout_rcpt *r = &b->riders[b->nriders++];
            r->kind = p[0] == 'b' ? FANOUT_BCC : FANOUT_CC;
            r->addr = xstrndup(p + 2, (size_t)(e - p - 2));
        }
        p = nl ? nl + 1 : end;
    }
}

/* The batch is gone or complete: record nothing to send (outcome.lua acks a
 * replay, and NOBATCH acks here). */
static void worker_no_batch(struct job *j)
{
    worker_cache_drop(j->w, j->bn);
    if (j->batch_id == NULL) {
        worker_ack(j); /* expired or never stored: nothing to record */
        return;
    }
    worker_dead(j, "BatchMissing", "the batch template or recipient is gone");
}

/* Send the jobs of the ready list, oldest first, while a slot is free.
 * concurrency bounds the sends in flight: a reserved time that comes while
 * every slot is busy waits in the ready list for one (a slow upstream then
 * does not pile up sends, nor a crash resends more than concurrency). */
static void worker_ready_run(struct worker *w)
{
    size_t max = w->cfg->concurrency > 0 ? (size_t)w->cfg->concurrency : 1;
    if (max > QUEUE_MAX_INFLIGHT)
        max = QUEUE_MAX_INFLIGHT;
    while (w->ready_head && w->inflight - w->waiting < max) {
        struct job *j = w->ready_head;
        worker_ready_unlink(w, j);
        j->waiting = false;
        w->waiting--;
        worker_send(j);
    }
}

/* The send timer of j fired: its reserved time has come. It joins the
 * ready list behind the jobs already waiting for a slot. */
static void worker_send_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct job *j = arg;
    struct worker *w = j->w;
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
static struct job *worker_pace_pop(struct worker *w)
{
    struct job *j = w->pace_head;
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

static void worker_pace_run(struct worker *w);

/* Try the take again after ms (1 ms to a tick). */
static void worker_pace_later(struct worker *w, double ms)
{
    if (ms < 1)
        ms = 1;
    if (ms > QUEUE_TICK_MS)
        ms = QUEUE_TICK_MS;
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
    char *kh = queue_key(w->q, "hold", NULL), field[300], value[24], ttl[24];
    snprintf(field, sizeof field, account ? "quota" : "client_quota:%s", client);
    snprintf(value, sizeof value, "%" PRId64, until);
    snprintf(ttl, sizeof ttl, "%" PRId64, hold_ms);
    redis_command(w->q->rd, worker_reply_ignored, NULL, "HSET %s %s %s", kh, field, value);
    redis_command(w->q->rd, worker_reply_ignored, NULL, "PEXPIRE %s %s", kh, ttl);
    free(kh);
    struct job *keep = NULL, *keep_tail = NULL, *j;
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
    const struct config_client *c = limiter_client(w->cfg, client);
    if (c && c->rate > 0 && c->rate * LIMITER_PACE < account)
        return c->rate * LIMITER_PACE;
    return account;
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
            struct wstream *ws = w->group[0]->ws;
            int64_t cost = 0;
            for (size_t k = 0; k < w->ngroup; k++)
                cost += worker_cost(w->group[k]);
            ws->served = (ws->served > w->served ? ws->served : w->served) + (uint64_t)cost;
        }
        /* The group's recipients go one every 1000 / rate ms from the start. */
        double rate = worker_client_rate(w, client, a->rate > 0 ? a->rate : 1.0);
        double step = 1000.0 / rate, at = a->wait_ms - a->late_ms;
        for (size_t k = 0; k < w->ngroup; k++) {
            struct job *j = w->group[k];
            if (!j->pacing)
                continue;
            worker_pace_unlink(w, j);
            double ms = at;
            at += step * (double)worker_cost(j);
            j->send_timer = evtimer_new(w->base, worker_send_cb, j);
            if (ms < 1) {
                worker_send_cb(-1, 0, j);
                continue;
            }
            struct timeval tv = clock_timeval_frac(ms);
            evtimer_add(j->send_timer, &tv);
        }
        w->ngroup = 0;
        worker_pace_run(w);
        return;
    }
    if (a->reason == RATELIMIT_QUOTA || a->reason == RATELIMIT_CLIENT_QUOTA) {
        /* Until the window frees enough, but no longer than until the quota
         * is read again (SES may have raised it). */
        int64_t hold = a->wait_ms < 0 ? QUEUE_HOLD_MS : (int64_t)ceil(a->wait_ms);
        int64_t most =
            w->cfg->rate_mode == CONFIG_RATE_AUTO ? w->cfg->quota_refresh_ms : QUEUE_HOLD_MS;
        if (hold > most)
            hold = most;
        if (hold < QUEUE_TICK_MS)
            hold = QUEUE_TICK_MS;
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
    struct job *first = NULL;
    for (struct job *j = w->pace_head; j; j = j->pnext) {
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
    for (struct job *j = first; j; j = j->pnext) {
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
    limiter_take(w->lim, limiter_client(w->cfg, client), cost, RATELIMIT_BLOCK_MS, worker_paced, w);
}

/* j is ready to go: send it at once without a limiter, else wait for its
 * reservation of the shared rate. */
static void worker_pace(struct job *j)
{
    struct worker *w = j->w;
    if (!limiter_on(w->lim)) {
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

/* LINDEX answered: the address of j. */
static void worker_got_addr(const redisReply *reply, const char *err, void *arg)
{
    struct job *j = arg;
    if (worker_job_orphaned(j))
        return;
    if (err) {
        log_event(LOG_WARN, "queue_read_failed", "batch", j->batch_id, "error", err, NULL);
        worker_job_end(j); /* reclaimed after the lease */
        return;
    }
    if (reply == NULL || reply->type != REDIS_REPLY_STRING || reply->len == 0) {
        worker_no_batch(j);
        return;
    }
    j->addr = xstrndup(reply->str, reply->len);
    worker_pace(j);
}

/* Read j's address. */
static void worker_load_addr(struct job *j)
{
    char *kr = queue_key(j->w->q, "r:", j->batch_id);
    char idx[24];
    snprintf(idx, sizeof idx, "%ld", j->index);
    j->redis_pending = true;
    redis_command(j->w->q->rd, worker_got_addr, j, "LINDEX %s %s", kr, idx);
    free(kr);
}

static void worker_checked(const redisReply *reply, const char *err, void *arg);

/* Use b for j, then check (a reclaimed entry) or read the address. */
static void worker_use_batch(struct job *j, struct qbatch *b)
{
    struct worker *w = j->w;
    b->refs++;
    j->b = b;
    if (j->batch_id == NULL)
        j->batch_id = xstrdup(b->id);
    if (j->reclaimed) {
        char *ko = queue_key(w->q, "o:", j->batch_id);
        char idx[24];
        snprintf(idx, sizeof idx, "%ld", j->index);
        const char *argv[4] = {ko, j->ws->key, j->entry, idx};
        j->redis_pending = true;
        queue_eval(w->q, QS_CHECK, 2, 4, argv, NULL, worker_checked, j);
        free(ko);
        return;
    }
    worker_load_addr(j);
}

/* A string element of a reply, or NULL. */
static const redisReply *worker_str(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_STRING ? r : NULL;
}

/* load.lua answered: the batch of j. */
static void worker_got_batch(const redisReply *reply, const char *err, void *arg)
{
    struct job *j = arg;
    if (worker_job_orphaned(j))
        return;
    if (err) {
        log_event(LOG_WARN, "queue_read_failed", "batch", j->bn, "error", err, NULL);
        worker_job_end(j);
        return;
    }
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 7 ||
        !worker_str(reply->element[0]) || !worker_str(reply->element[1])) {
        if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 7 &&
            worker_str(reply->element[0]))
            j->batch_id = xstrndup(reply->element[0]->str, reply->element[0]->len);
        worker_no_batch(j);
        return;
    }
    struct qbatch *b = worker_cache_get(j->w, j->bn);
    if (b == NULL) {
        const redisReply *r = worker_str(reply->element[2]), *api = worker_str(reply->element[3]);
        const redisReply *flags = worker_str(reply->element[4]);
        const redisReply *action = worker_str(reply->element[5]);
        const redisReply *client = worker_str(reply->element[6]);
        b = xcalloc(1, sizeof *b);
        b->n = xstrdup(j->bn);
        b->id = xstrndup(reply->element[0]->str, reply->element[0]->len);
        buf_add(&b->template, reply->element[1]->str, reply->element[1]->len);
        if (r)
            worker_parse_riders(b, r->str, r->len);
        b->api = api && strcmp(api->str, "2") == 0 ? 2 : 1;
        if (flags) {
            b->raw = strstr(flags->str, "raw") != NULL;
            b->dkim = strstr(flags->str, "dkim") != NULL;
        }
        b->action = xstrdup(action ? action->str : "");
        b->client = xstrdup(client ? client->str : "");
        worker_cache_put(j->w, b);
    }
    worker_use_batch(j, b);
}

/* check.lua answered for a reclaimed entry. */
static void worker_checked(const redisReply *reply, const char *err, void *arg)
{
    struct job *j = arg;
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
static void worker_job_step(struct job *j)
{
    struct worker *w = j->w;
    if (j->bn == NULL || j->index < 0) {
        log_event(LOG_WARN, "queue_bad_entry", "entry", j->entry, NULL);
        worker_ack(j);
        return;
    }
    struct qbatch *b = worker_cache_get(w, j->bn);
    if (b) {
        worker_use_batch(j, b);
        return;
    }
    char *kn = queue_key(w->q, "n:", j->bn);
    const char *argv[1] = {kn};
    j->redis_pending = true;
    queue_eval(w->q, QS_LOAD, 1, 1, argv, NULL, worker_got_batch, j);
    free(kn);
}

/* ------------------------------------------------------------ reading */

/* Free slots for new sends. */
static size_t worker_free_slots(const struct worker *w)
{
    /* concurrency bounds the sends in flight; jobs waiting for their turn
     * of the rate are bounded by the read cap (worker_read) instead */
    size_t max = w->cfg->concurrency > 0 ? (size_t)w->cfg->concurrency : 1;
    if (max > QUEUE_MAX_INFLIGHT)
        max = QUEUE_MAX_INFLIGHT;
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
static struct wstream *worker_stream(const struct worker *w, const char *key, size_t len)
{
    for (size_t i = 0; i < w->nstreams; i++)
        if (strlen(w->streams[i]->key) == len && memcmp(w->streams[i]->key, key, len) == 0)
            return w->streams[i];
    return NULL;
}

/* The client whose stream ws is. */
static const char *worker_stream_client(const struct worker *w, const struct wstream *ws)
{
    return ws->key + strlen(w->kprefix) + 2; /* past "q:" */
}

/* SMEMBERS of the stream set answered: read the streams not seen yet too. */
static void worker_streams_got(const redisReply *reply, const char *err, void *arg)
{
    struct worker *w = arg;
    if (!worker_redis_back(w))
        return;
    if (err || reply == NULL || reply->type != REDIS_REPLY_ARRAY)
        return;
    size_t plen = strlen(w->kprefix), added = 0;
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *m = reply->element[i];
        if (m->type != REDIS_REPLY_STRING || m->len <= plen + 2 ||
            memcmp(m->str, w->kprefix, plen) != 0 || memcmp(m->str + plen, "q:", 2) != 0 ||
            memchr(m->str, '\0', m->len) || worker_stream(w, m->str, m->len))
            continue;
        struct wstream *ws = xcalloc(1, sizeof *ws);
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
    redis_command(w->q->rd, worker_streams_got, w, "SMEMBERS %s", w->kqs);
}

/* XGROUP CREATE answered (BUSYGROUP is fine). */
static void worker_group_made(const redisReply *reply, const char *err, void *arg)
{
    struct worker *w = arg;
    if (!worker_redis_back(w))
        return;
    worker_read_later(w, QUEUE_IDLE_MS);
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
                redis_command(w->q->rd, worker_group_made, w, "XGROUP CREATE %s w 0 MKSTREAM",
                              w->streams[i]->key);
            }
            return;
        }
        worker_read_later(w, QUEUE_TICK_MS);
        return;
    }
    size_t got = 0;
    for (size_t k = 0; reply && reply->type == REDIS_REPLY_ARRAY && k < reply->elements; k++) {
        const redisReply *s = reply->element[k];
        if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 ||
            s->element[0]->type != REDIS_REPLY_STRING || s->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        struct wstream *ws = worker_stream(w, s->element[0]->str, s->element[0]->len);
        if (ws == NULL)
            continue;
        const redisReply *entries = s->element[1];
        for (size_t i = 0; i < entries->elements; i++, got++)
            worker_job_start(ws, entries->element[i], false);
    }
    if (got == 0) {
        worker_read_later(w, QUEUE_IDLE_MS);
    } else {
        worker_read(w);
    }
}

/* The most of ws's entries w holds at once with a limiter: an equal share
 * of the read-ahead (cap) among the streams w holds entries of, and no
 * more than a second of the client's own rate, so that neither a big batch
 * read before another client's nor a client held by its own rate fills the
 * read-ahead. */
static size_t worker_stream_cap(const struct worker *w, const struct wstream *ws, size_t cap,
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
                              (int)(w->hold_until_ms - now < QUEUE_TICK_MS ? w->hold_until_ms - now
                                                                           : QUEUE_TICK_MS));
            return;
        }
        double r = limiter_rate(w->lim);
        cap = r >= 1 ? (size_t)ceil(r) : 1;
        if (w->waiting >= cap || (w->waiting > 0 && cap - w->waiting < (cap + 3) / 4))
            return;
        if (n > cap - w->waiting)
            n = cap - w->waiting;
    }
    /* A new client's stream is read within QUEUE_STREAMS_MS. */
    if (clock_mono_ms() - w->streams_ms >= QUEUE_STREAMS_MS)
        worker_streams_refresh(w);
    if (w->nstreams == 0) {
        worker_read_later(w, QUEUE_IDLE_MS);
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
    redis_command_argv(w->q->rd, worker_read_done, w, (int)(7 + 2 * nk), argv, NULL);
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
    if (err && strncmp(err, "queue closed", 12) != 0)
        log_event(LOG_WARN, "queue_due_failed", "error", err, NULL);
}

/* True when ws's worker already has a job for entry id: its own entry, idle
 * past the lease while it waited (a stalled Redis, the limiter). The claim
 * only reset its idle time; the job still records its outcome. */
static bool worker_holds(const struct wstream *ws, const char *id)
{
    for (const struct job *j = ws->w->jobs; j; j = j->next)
        if (j->ws == ws && strcmp(j->entry, id) == 0)
            return true;
    return false;
}

/* XAUTOCLAIM answered: handle the reclaimed entries of one stream. */
static void worker_claimed(const redisReply *reply, const char *err, void *arg)
{
    struct wstream *ws = arg;
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

/* Every second: move due retries back and reclaim abandoned entries. */
static void worker_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    if (w->stopped || w->freed || !redis_ready(w->q->rd))
        return;
    char max[16], longest[24];
    snprintf(max, sizeof max, "%d", QUEUE_DUE_MAX);
    /* The longest delay a retry gets, plus a minute: anything due later
     * was written before Redis's clock went back. */
    int64_t most = BACKOFF_CAP_MS;
    if (w->cfg->quota_refresh_ms > most)
        most = w->cfg->quota_refresh_ms;
    if (QUEUE_HOLD_MS > most)
        most = QUEUE_HOLD_MS;
    snprintf(longest, sizeof longest, "%" PRId64, most + 60000);
    /* now "": due times are on Redis's clock (outcome.lua) */
    const char *argv[6] = {w->kd, w->kqs, w->kprefix, "", max, longest};
    w->redis_pending++;
    queue_eval(w->q, QS_DUE, 3, 6, argv, NULL, worker_due_done, w);
    size_t n = worker_free_slots(w);
    if (n > QUEUE_RECLAIM_MAX)
        n = QUEUE_RECLAIM_MAX;
    for (size_t i = 0; n > 0 && i < w->nstreams; i++) {
        struct wstream *ws = w->streams[i];
        char count[24], lease[24];
        snprintf(count, sizeof count, "%zu", n);
        snprintf(lease, sizeof lease, "%" PRId64, w->cfg->lease_ms);
        const char *cv[] = {"XAUTOCLAIM", ws->key,          "w",     w->name,
                            lease,        ws->claim_cursor, "COUNT", count};
        w->redis_pending++;
        redis_command_argv(w->q->rd, worker_claimed, ws, 8, cv, NULL);
    }
    worker_read(w);
}

/* Public: start draining q. */
struct worker *worker_start(struct event_base *base, const struct config *cfg, struct queue *q,
                            struct upstream *up, struct resign *rs, struct limiter *lim,
                            const char *name)
{
    struct worker *w = xcalloc(1, sizeof *w);
    w->base = base;
    w->cfg = cfg;
    w->q = q;
    w->up = up;
    w->rs = rs;
    w->name = xstrdup(name);
    w->kqs = queue_key(q, "qs", NULL);
    w->kprefix = queue_key(q, "", NULL);
    w->kd = queue_key(q, "d", NULL);
    w->kdlq = queue_key(q, "dlq", NULL);
    w->lim = lim;
    w->pace_timer = evtimer_new(base, worker_pace_cb, w);
    w->read_timer = evtimer_new(base, worker_read_cb, w);
    w->tick_timer = event_new(base, -1, EV_PERSIST, worker_tick_cb, w);
    struct timeval tick = {QUEUE_TICK_MS / 1000, 0};
    event_add(w->tick_timer, &tick);
    worker_read_later(w, 0);
    log_event(LOG_INFO, "worker_start", "name", name, NULL);
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
    w->read_timer = w->tick_timer = w->pace_timer = NULL;
    /* Nothing more is sent: the ready jobs are released with the others. */
    while (w->ready_head)
        worker_ready_unlink(w, w->ready_head);
    struct job *j = w->jobs;
    while (j) {
        struct job *next = j->next;
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

/* The batch view: the hash, the outcomes, the recipient list and the
 * retries waiting (index, attempt, due ms) of one batch. */
static const char queue_show_lua[] =
    "local b, o, r, d = KEYS[1], KEYS[2], KEYS[3], KEYS[4]\n"
    "local id = ARGV[1]\n"
    "if id == nil or not string.match(id, '^[0-9a-f-]+$') then\n"
    "    return redis.error_reply('BADARGS show: batch id')\n"
    "end\n"
    "local h = redis.call('HGETALL', b)\n"
    "if #h == 0 then return {} end\n"
    "local outs = redis.call('HGETALL', o)\n"
    "local list = redis.call('LRANGE', r, 0, -1)\n"
    "local retry = {}\n"
    "if redis.call('TYPE', d)['ok'] == 'zset' then\n"
    "    local cursor = '0'\n"
    "    repeat\n"
    "        local res = redis.call('ZSCAN', d, cursor, 'MATCH', id .. ':*', 'COUNT', 1000)\n"
    "        cursor = res[1]\n"
    "        for k = 1, #res[2], 2 do\n"
    "            local i, a = string.match(res[2][k], '^' .. id .. ':(%d+):(%d+)$')\n"
    "            if i then\n"
    "                retry[#retry + 1] = i\n"
    "                retry[#retry + 1] = a\n"
    "                retry[#retry + 1] = res[2][k + 1]\n"
    "            end\n"
    "        end\n"
    "    until cursor == '0'\n"
    "end\n"
    "return {h, outs, list, retry}\n";

/* The queue summary over every client stream: depth, oldest entry id,
 * entries pending in the group, retries waiting, dead letters, and the most recent batches with
 * their counters (id, created, total, sent, done, dead, client, action). */
static const char queue_stats_lua[] =
    "local qs, d, dlq, recent, prefix = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]\n"
    "local n = tonumber(ARGV[1]) or 10\n"
    "local function len(key, want, cmd)\n"
    "    if redis.call('TYPE', key)['ok'] ~= want then return 0 end\n"
    "    return redis.call(cmd, key)\n"
    "end\n"
    "local function ms(id) return tonumber(string.match(id, '^(%d+)')) or 0 end\n"
    "local depth, oldest, pending = 0, '', 0\n"
    "local streams = {}\n"
    "if redis.call('TYPE', qs)['ok'] == 'set' then streams = redis.call('SMEMBERS', qs) end\n"
    "for _, q in ipairs(streams) do\n"
    "    local k = len(q, 'stream', 'XLEN')\n"
    "    if k > 0 then\n"
    "        depth = depth + k\n"
    "        local first = redis.call('XRANGE', q, '-', '+', 'COUNT', 1)\n"
    "        if #first == 1 and (oldest == '' or ms(first[1][1]) < ms(oldest)) then\n"
    "            oldest = first[1][1]\n"
    "        end\n"
    "        local p = redis.pcall('XPENDING', q, 'w')\n"
    "        if type(p) == 'table' and p.err == nil then pending = pending + p[1] end\n"
    "    end\n"
    "end\n"
    "local out = {depth, oldest, pending, len(d, 'zset', 'ZCARD'), len(dlq, 'stream', 'XLEN')}\n"
    "local rows = {}\n"
    "if n > 0 and redis.call('TYPE', recent)['ok'] == 'zset' then\n"
    "    for _, id in ipairs(redis.call('ZREVRANGE', recent, 0, n - 1)) do\n"
    "        local c = redis.call('HMGET', prefix .. 'b:' .. id, 'created', 'total', 'sent',\n"
    "            'done', 'dead', 'client', 'action')\n"
    "        rows[#rows + 1] = id\n"
    "        for k = 1, 7 do rows[#rows + 1] = c[k] or '' end\n"
    "    end\n"
    "end\n"
    "out[6] = rows\n"
    "return out\n";

/* Abort on a failed jansson constructor (the out-of-memory policy). */
static json_t *queue_jok(json_t *v)
{
    if (v == NULL)
        abort();
    return v;
}

/* Set o[key] = v (a new reference), aborting when jansson cannot. */
static void queue_jset(json_t *o, const char *key, json_t *v)
{
    if (json_object_set_new(o, key, queue_jok(v)) < 0)
        abort();
}

/* Append v (a new reference) to the array a. */
static void queue_jappend(json_t *a, json_t *v)
{
    if (json_array_append_new(a, queue_jok(v)) < 0)
        abort();
}

/* The string of a reply element as a new jansson string (length-exact). */
static json_t *queue_jstr(const redisReply *r)
{
    if (r == NULL || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS))
        return json_null();
    return json_stringn_nocheck(r->str, r->len);
}

/* A reply element as a number (strings and integers), else def. */
static long long queue_rnum(const redisReply *r, long long def)
{
    if (r == NULL)
        return def;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 20)
        return def;
    char tmp[24];
    memcpy(tmp, r->str, r->len);
    tmp[r->len] = '\0';
    char *end;
    long long v = strtoll(tmp, &end, 10);
    return *end == '\0' ? v : def;
}

/* The value of field name in a flat field/value array, or NULL. */
static const redisReply *queue_rfield(const redisReply *flat, const char *name)
{
    size_t n = strlen(name);
    for (size_t k = 0; k + 1 < flat->elements; k += 2) {
        const redisReply *f = flat->element[k];
        if (f->type == REDIS_REPLY_STRING && f->len == n && memcmp(f->str, name, n) == 0)
            return flat->element[k + 1];
    }
    return NULL;
}

/* An ISO 8601 UTC time of ms since the epoch, into out[32]. */
static void queue_iso_time(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

char *queue_key_prefix(const struct config *cfg)
{
    struct buf b = BUF_INIT;
    buf_printf(&b, "%s:{%s}:", cfg->prefix, cfg->prefix);
    return buf_detach(&b, NULL);
}

bool queue_batch_id_ok(const char *id)
{
    size_t n = strlen(id);
    return n == 36 && strspn(id, "0123456789abcdef-") == n;
}

const char *queue_show_script(void)
{
    return queue_show_lua;
}

void queue_show_keys(const char *pfx, const char *id, char *keys[4])
{
    static const char *const kinds[4] = {"b:", "o:", "r:", "d"};
    for (int k = 0; k < 4; k++) {
        struct buf b = BUF_INIT;
        buf_printf(&b, "%s%s%s", pfx, kinds[k], k < 3 ? id : "");
        keys[k] = buf_detach(&b, NULL);
    }
}

/* Fill one recipient object for index i from its outcome text (or NULL)
 * and its waiting retry (retry index into the flat retry array, or -1). */
static const char *queue_show_state(json_t *r, const redisReply *outcome, const redisReply *retry,
                                    long long rk)
{
    if (outcome && outcome->type == REDIS_REPLY_STRING && outcome->len >= 1) {
        const char *s = outcome->str;
        size_t n = outcome->len;
        if (s[0] == 's' && n >= 2) {
            /* "s <MessageId>", or "s <MessageId> <note>" (the sandbox's
             * mailbox simulator: complaint, ooto) */
            const char *id = s + 2, *sp = memchr(id, ' ', n - 2);
            size_t idlen = sp ? (size_t)(sp - id) : n - 2;
            queue_jset(r, "message_id", json_stringn_nocheck(id, idlen));
            if (sp)
                queue_jset(r, "note", json_stringn_nocheck(sp + 1, (size_t)(s + n - sp - 1)));
            return "sent";
        }
        if (s[0] == 'd')
            return "sent";
        if (s[0] == 'f' && n >= 2) {
            const char *code = s + 2, *sp = memchr(code, ' ', n - 2);
            size_t clen = sp ? (size_t)(sp - code) : n - 2;
            queue_jset(r, "code", json_stringn_nocheck(code, clen));
            queue_jset(r, "message",
                       sp ? json_stringn_nocheck(sp + 1, (size_t)(s + n - sp - 1))
                          : json_string(""));
            return "dead";
        }
    }
    if (rk >= 0) {
        queue_jset(r, "attempt", json_integer(queue_rnum(retry->element[rk + 1], 0)));
        char iso[32];
        queue_iso_time(queue_rnum(retry->element[rk + 2], 0), iso);
        queue_jset(r, "due", json_string(iso));
        return "retry";
    }
    return "queued";
}

json_t *queue_show_json(const char *id, const redisReply *reply)
{
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 4)
        return NULL;
    const redisReply *h = reply->element[0], *outs = reply->element[1];
    const redisReply *list = reply->element[2], *retry = reply->element[3];
    if (h->type != REDIS_REPLY_ARRAY || h->elements == 0 || outs->type != REDIS_REPLY_ARRAY ||
        list->type != REDIS_REPLY_ARRAY || retry->type != REDIS_REPLY_ARRAY)
        return NULL;
    long long total = queue_rnum(queue_rfield(h, "total"), 0);
    long long first = queue_rnum(queue_rfield(h, "first"), 0);
    int64_t created = queue_rnum(queue_rfield(h, "created"), 0);
    if (total < 0 || total > 10000000 || first < 0 || first > 1)
        return NULL;
    json_t *o = queue_jok(json_object());
    queue_jset(o, "batch_id", json_string(id));
    queue_jset(o, "client", queue_jstr(queue_rfield(h, "client")));
    queue_jset(o, "action", queue_jstr(queue_rfield(h, "action")));
    char iso[32];
    queue_iso_time(created, iso);
    queue_jset(o, "created", json_string(iso));
    queue_jset(o, "created_ms", json_integer(created));
    const redisReply *flags = queue_rfield(h, "flags");
    queue_jset(o, "flags", flags ? queue_jstr(flags) : json_string(""));
    json_t *rs = queue_jok(json_array());
    long long sent = 0, dead = 0, retrying = 0, queued = 0;
    queue_jset(o, "first_recipient", json_string(first ? "sync" : "queue"));
    /* Outcomes and retries by index, once: a batch may have a million. */
    const redisReply **by_out = xcalloc((size_t)total + 1, sizeof *by_out);
    long long *by_retry = xcalloc((size_t)total + 1, sizeof *by_retry);
    for (long long i = 0; i < total; i++)
        by_retry[i] = -1;
    for (size_t k = 0; k + 1 < outs->elements; k += 2) {
        long long i = queue_rnum(outs->element[k], -1);
        if (i >= 0 && i < total)
            by_out[i] = outs->element[k + 1];
    }
    for (size_t k = 0; k + 2 < retry->elements; k += 3) {
        long long i = queue_rnum(retry->element[k], -1);
        if (i >= 0 && i < total)
            by_retry[i] = (long long)k;
    }
    for (long long i = 0; i < total; i++) {
        json_t *r = queue_jok(json_object());
        queue_jset(r, "index", json_integer(i));
        const redisReply *addr = (size_t)i < list->elements ? list->element[i] : NULL;
        queue_jset(r, "address", queue_jstr(addr));
        const char *state = queue_show_state(r, by_out[i], retry, by_retry[i]);
        queue_jset(r, "state", json_string(state));
        sent += strcmp(state, "sent") == 0;
        dead += strcmp(state, "dead") == 0;
        retrying += strcmp(state, "retry") == 0;
        queued += strcmp(state, "queued") == 0;
        queue_jappend(rs, r);
    }
    free(by_out);
    free(by_retry);
    queue_jset(o, "total", json_integer(total));
    queue_jset(o, "sent", json_integer(sent));
    queue_jset(o, "dead", json_integer(dead));
    queue_jset(o, "retrying", json_integer(retrying));
    queue_jset(o, "queued", json_integer(queued));
    queue_jset(o, "failed_attempts", json_integer(queue_rnum(queue_rfield(h, "failed"), 0)));
    double pct = total ? 100.0 * (double)(sent + dead) / (double)total : 100.0;
    queue_jset(o, "progress", json_real((double)(long long)(pct * 10 + 0.5) / 10));
    queue_jset(o, "complete", json_boolean(sent + dead == total));
    queue_jset(o, "recipients", rs);
    return o;
}

const char *queue_stats_script(void)
{
    return queue_stats_lua;
}

void queue_stats_keys(const char *pfx, char *keys[5])
{
    static const char *const kinds[5] = {"qs", "d", "dlq", "recent", ""};
    for (int k = 0; k < 5; k++) {
        struct buf b = BUF_INIT;
        buf_printf(&b, "%s%s", pfx, kinds[k]);
        keys[k] = buf_detach(&b, NULL);
    }
}

json_t *queue_stats_json(const redisReply *reply, int64_t now_ms)
{
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 6 ||
        reply->element[5]->type != REDIS_REPLY_ARRAY)
        return NULL;
    json_t *o = queue_jok(json_object());
    queue_jset(o, "depth", json_integer(queue_rnum(reply->element[0], 0)));
    double oldest = 0;
    const redisReply *oid = reply->element[1];
    if (oid->type == REDIS_REPLY_STRING && oid->len > 0) {
        long long ms = strtoll(oid->str, NULL, 10);
        if (ms > 0 && now_ms > ms)
            oldest = (double)(now_ms - ms) / 1000.0;
    }
    queue_jset(o, "oldest_seconds", json_real(oldest));
    queue_jset(o, "inflight", json_integer(queue_rnum(reply->element[2], 0)));
    queue_jset(o, "retrying", json_integer(queue_rnum(reply->element[3], 0)));
    queue_jset(o, "dead_letters", json_integer(queue_rnum(reply->element[4], 0)));
    json_t *rows = queue_jok(json_array());
    const redisReply *flat = reply->element[5];
    for (size_t k = 0; k + 7 < flat->elements; k += 8) {
        json_t *r = queue_jok(json_object());
        queue_jset(r, "batch_id", queue_jstr(flat->element[k]));
        const redisReply *cr = flat->element[k + 1];
        bool known = cr->type == REDIS_REPLY_STRING && cr->len > 0;
        queue_jset(r, "expired", json_boolean(!known));
        if (known) {
            char iso[32];
            queue_iso_time(queue_rnum(cr, 0), iso);
            queue_jset(r, "created", json_string(iso));
            queue_jset(r, "created_ms", json_integer(queue_rnum(cr, 0)));
            long long total = queue_rnum(flat->element[k + 2], 0);
            long long sent =
                queue_rnum(flat->element[k + 3], 0) + queue_rnum(flat->element[k + 4], 0);
            long long dead = queue_rnum(flat->element[k + 5], 0);
            queue_jset(r, "client", queue_jstr(flat->element[k + 6]));
            queue_jset(r, "action", queue_jstr(flat->element[k + 7]));
            queue_jset(r, "total", json_integer(total));
            queue_jset(r, "sent", json_integer(sent));
            queue_jset(r, "dead", json_integer(dead));
            queue_jset(r, "pending", json_integer(total - sent - dead));
        }
        queue_jappend(rows, r);
    }
    queue_jset(o, "recent", rows);
    return o;
}

/* Delete the dead-letter stream; reply: how many entries it held. */
static const char queue_purge_lua[] = "local t = redis.call('TYPE', KEYS[1])['ok']\n"
                                      "if t == 'none' then return 0 end\n"
                                      "if t ~= 'stream' then\n"
                                      "    return redis.error_reply('WRONGTYPE ' .. KEYS[1] .. ' "
                                      "holds a ' .. t .. ', not a stream')\n"
                                      "end\n"
                                      "local n = redis.call('XLEN', KEYS[1])\n"
                                      "redis.call('DEL', KEYS[1])\n"
                                      "return n\n";

const char *queue_dlq_retry_script(void)
{
    return queue_lua_dlq_retry;
}

const char *queue_limit_script(void)
{
    return queue_lua_limit;
}

const char *queue_dlq_purge_script(void)
{
    return queue_purge_lua;
}
