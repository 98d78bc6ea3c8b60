/* supsync: the mirror of the suppression list to SES's (see supsync.h). */
#include "supsync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "clock.h"
#include "form.h"
#include "log.h"
#include "reply.h"
#include "suplist.h"
#include "util.h"

struct supsync {
    struct event_base *base;
    struct redis *rd;
    struct upstream *up;
    struct resign *rs;
    char *name;
    char *kss, *ksup; /* P:{P}:ss, P:{P}:sup */
    struct event *timer;
    bool redis_pending; /* a Redis command's answer is due */
    bool freed;         /* released: free once nothing is due */
    struct upstream_call *call;
    char *entry; /* the entry being applied */
    char *addr;
    struct buf body;
};

static void supsync_step(struct supsync *s);

/* Step again after ms. */
static void supsync_later(struct supsync *s, int ms)
{
    struct timeval tv = clock_timeval(ms);
    evtimer_add(s->timer, &tv);
}

/* Forget the entry being applied. */
static void supsync_drop(struct supsync *s)
{
    free(s->entry);
    free(s->addr);
    s->entry = s->addr = NULL;
    buf_free(&s->body);
}

/* A Redis answer arrived: false when s was released meanwhile (then freed). */
static bool supsync_back(struct supsync *s)
{
    s->redis_pending = false;
    if (!s->freed)
        return true;
    supsync_drop(s);
    free(s->name);
    free(s->kss);
    free(s->ksup);
    free(s);
    return false;
}

/* XDEL answered: the entry is done; the next after the gap. */
static void supsync_deleted(const redisReply *reply, const char *err, void *arg)
{
    struct supsync *s = arg;
    if (!supsync_back(s))
        return;
    if (err)
        log_event(LOG_WARN, "supsync_ack_failed", "entry", s->entry, "error", err, NULL);
    supsync_drop(s);
    supsync_later(s, SUPSYNC_GAP_MS);
}

/* A reply nothing waits for (the XACK before the XDEL). */
static void supsync_ignored(const redisReply *reply, const char *err, void *arg)
{
}

/* The entry is done (applied, or dropped): acknowledge and delete it. */
static void supsync_done(struct supsync *s)
{
    s->redis_pending = true;
    redis_command(s->rd, supsync_ignored, NULL, "XACK %s w %s", s->kss, s->entry);
    redis_command(s->rd, supsync_deleted, s, "XDEL %s %s", s->kss, s->entry);
}

/* SES answered the call for s->addr. */
static void supsync_answered(struct upstream_response *res, void *arg)
{
    struct supsync *s = arg;
    s->call = NULL;
    char status[16];
    snprintf(status, sizeof status, "%ld", res->status);
    bool ok = res->error == UPSTREAM_OK && res->status >= 200 && res->status < 300;
    bool gone = res->error == UPSTREAM_OK && res->status == 404 &&
                strcmp(res->error_type, "NotFoundException") == 0;
    bool passing = res->error != UPSTREAM_OK || res->status == 429 || res->status >= 500 ||
                   strcmp(res->error_type, "TooManyRequestsException") == 0;
    if (ok || gone) {
        log_event(LOG_DEBUG, "supsync_applied", "entry", s->entry, "status", status, NULL);
        supsync_done(s);
        return;
    }
    if (passing) {
        /* stays pending: taken again after SUPSYNC_RETRY_MS */
        log_event(LOG_WARN, "supsync_retry", "entry", s->entry, "status", status, "error",
                  res->error != UPSTREAM_OK ? res->errmsg : res->error_type, NULL);
        supsync_drop(s);
        supsync_later(s, SUPSYNC_IDLE_MS);
        return;
    }
    log_event(LOG_WARN, "supsync_refused", "entry", s->entry, "status", status, "error",
              res->error_type, NULL);
    supsync_done(s);
}

/* HGET of the address answered: put it on SES's list or take it off. */
static void supsync_got_state(const redisReply *reply, const char *err, void *arg)
{
    struct supsync *s = arg;
    if (!supsync_back(s))
        return;
    if (err || reply == NULL) {
        supsync_drop(s);
        supsync_later(s, SUPSYNC_IDLE_MS);
        return;
    }
    bool on = reply->type == REDIS_REPLY_STRING;
    struct buf path = BUF_INIT;
    buf_adds(&path, "/v2/email/suppression/addresses");
    const char *method = "PUT", *ctype = "application/json";
    buf_reset(&s->body);
    if (on) {
        struct suplist_entry e;
        suplist_entry_parse(reply->str, reply->len, &e);
        /* SES knows two reasons: a complaint, and every other one a bounce */
        const char *reason = strcmp(e.reason, "COMPLAINT") == 0 ? "COMPLAINT" : "BOUNCE";
        json_t *o = json_pack("{ssss}", "EmailAddress", s->addr, "Reason", reason);
        char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (t == NULL) { /* not text JSON can carry: nothing SES would take */
            supsync_done(s);
            buf_free(&path);
            return;
        }
        buf_adds(&s->body, t);
        free(t);
    } else {
        method = "DELETE";
        ctype = NULL;
        buf_addc(&path, '/');
        form_encode(s->addr, strlen(s->addr), &path);
    }
    char sha[UTIL_SHA256_HEX_LEN + 1];
    util_sha256_hex(s->body.data ? s->body.data : "", s->body.len, sha);
    char *url = NULL;
    struct curl_slist *headers = NULL;
    int rc = resign_request(s->rs, method, path.data, path.len, "", 0, ctype,
                            ctype ? strlen(ctype) : 0, sha, time(NULL), &url, &headers);
    if (rc == RESIGN_NOT_YET || rc == RESIGN_EXPIRED) {
        /* no upstream credentials now: stays pending, as when SES is down */
        buf_free(&path);
        supsync_drop(s);
        supsync_later(s, SUPSYNC_IDLE_MS);
        return;
    }
    if (rc < 0) {
        log_event(LOG_WARN, "supsync_refused", "entry", s->entry, "error", "cannot be signed",
                  NULL);
        buf_free(&path);
        supsync_done(s);
        return;
    }
    buf_free(&path);
    s->call = upstream_start(s->up, method, url, headers, s->body.data ? s->body.data : "",
                             s->body.len, supsync_answered, s);
    free(url);
}

/* Take the entry e ([id, [field, value...]]), or false when it is none. */
static bool supsync_take(struct supsync *s, const redisReply *e)
{
    if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
        e->element[0]->type != REDIS_REPLY_STRING)
        return false;
    s->entry = xstrdup(e->element[0]->str);
    const redisReply *a = reply_field(e->element[1], "a");
    if (a == NULL || a->type != REDIS_REPLY_STRING || a->len == 0) {
        supsync_done(s); /* nothing to apply */
        return true;
    }
    s->addr = xstrndup(a->str, a->len);
    s->redis_pending = true;
    redis_command(s->rd, supsync_got_state, s, "HGET %s %b", s->ksup, a->str, a->len);
    return true;
}

/* XAUTOCLAIM answered: [cursor, [entry...], ...]. */
static void supsync_claimed(const redisReply *reply, const char *err, void *arg)
{
    struct supsync *s = arg;
    if (!supsync_back(s))
        return;
    if (!err && reply && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 2 &&
        reply->element[1]->type == REDIS_REPLY_ARRAY && reply->element[1]->elements > 0 &&
        supsync_take(s, reply->element[1]->element[0]))
        return;
    supsync_later(s, SUPSYNC_IDLE_MS);
}

/* XGROUP CREATE answered (BUSYGROUP: it exists): read. */
static void supsync_grouped(const redisReply *reply, const char *err, void *arg)
{
    struct supsync *s = arg;
    if (!supsync_back(s))
        return;
    if (err && strncmp(err, "BUSYGROUP", 9) != 0)
        log_event(LOG_WARN, "supsync_group_failed", "error", err, NULL);
    supsync_later(s, err && strncmp(err, "BUSYGROUP", 9) != 0 ? SUPSYNC_IDLE_MS : 0);
}

/* XREADGROUP answered: a new entry, or look for one that failed before. */
static void supsync_read(const redisReply *reply, const char *err, void *arg)
{
    struct supsync *s = arg;
    if (!supsync_back(s))
        return;
    if (err && strncmp(err, "NOGROUP", 7) == 0) {
        s->redis_pending = true;
        redis_command(s->rd, supsync_grouped, s, "XGROUP CREATE %s w 0 MKSTREAM", s->kss);
        return;
    }
    /* [[stream, [entry]]] */
    if (!err && reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 &&
        reply->element[0]->type == REDIS_REPLY_ARRAY && reply->element[0]->elements == 2 &&
        reply->element[0]->element[1]->type == REDIS_REPLY_ARRAY &&
        reply->element[0]->element[1]->elements > 0 &&
        supsync_take(s, reply->element[0]->element[1]->element[0]))
        return;
    s->redis_pending = true;
    redis_command(s->rd, supsync_claimed, s, "XAUTOCLAIM %s w %s %d 0-0 COUNT 1", s->kss, s->name,
                  SUPSYNC_RETRY_MS);
}

/* One step: the next new entry, else one that failed long enough ago. */
static void supsync_step(struct supsync *s)
{
    if (s->redis_pending || s->call || s->entry)
        return;
    if (!redis_ready(s->rd)) {
        supsync_later(s, SUPSYNC_IDLE_MS);
        return;
    }
    s->redis_pending = true;
    redis_command(s->rd, supsync_read, s, "XREADGROUP GROUP w %s COUNT 1 STREAMS %s >", s->name,
                  s->kss);
}

/* The step timer fired. */
static void supsync_cb(evutil_socket_t fd, short what, void *arg)
{
    supsync_step(arg);
}

struct supsync *supsync_start(struct event_base *base, const struct config *cfg,
                              struct rscript *scripts, struct upstream *up, struct resign *rs,
                              const char *name)
{
    struct supsync *s = xcalloc(1, sizeof *s);
    s->base = base;
    s->rd = rscript_redis(scripts);
    s->up = up;
    s->rs = rs;
    s->name = xstrdup(name);
    s->kss = rscript_key(scripts, "ss", NULL);
    s->ksup = rscript_key(scripts, "sup", NULL);
    s->timer = evtimer_new(base, supsync_cb, s);
    (void)cfg;
    supsync_later(s, 0);
    log_event(LOG_INFO, "supsync_start", "name", name, NULL);
    return s;
}

void supsync_free(struct supsync *s)
{
    if (s == NULL)
        return;
    event_free(s->timer);
    if (s->call)
        upstream_cancel(s->call);
    s->call = NULL;
    s->freed = true;
    if (!s->redis_pending) {
        s->redis_pending = true;
        supsync_back(s);
    }
}
