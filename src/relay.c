/* relay: reads P:{P}:relay with the consumer group "w", POSTs each relay to its
 * client's events_url with SNS's headers, and records the outcome
 * (relay_outcome.lua): delivered, a retry through P:{P}:relay:d (relay_due.lua
 * moves it back when due), or a dead relay on P:{P}:relay:dlq. */
#include "relay.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "backoff.h"
#include "buf.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "reply.h"
#include "upstream.h"

#define RELAY_MAX_INFLIGHT 32   /* relays one process POSTs at once */
#define RELAY_IDLE_MS      100  /* wait after a read that returned nothing */
#define RELAY_TICK_MS      1000 /* due retries and reclaims */
#define RELAY_RECORD_MS    1000 /* an outcome Redis did not take: record it again after this */
#define RELAY_DUE_MAX      1000
#define RELAY_MAX_RESPONSE (1u << 20) /* bytes of an application's answer read at most */
/* ms beyond relay_timeout before an entry of a silent process is reclaimed:
 * its POST has ended by then, one way or the other. */
#define RELAY_LEASE_MARGIN_MS 5000

/* One entry of the relay stream being delivered. */
struct relay_job {
    struct relay *r;
    char *entry; /* the stream entry id */
    char *client, *topic, *type, *msgid, *sub;
    char *body;
    size_t len;
    int attempt;
    struct upstream_call *call;
    bool redis_pending;
    const char *kind;    /* the outcome to record: "done", "retry", "dead" */
    char arg[320];       /* its argument: the delay (retry) or the error (dead) */
    struct event *timer; /* records the outcome again after a Redis failure */
    struct relay_job *prev, *next;
};

struct relay {
    struct event_base *base;
    const struct config *cfg;
    struct rscript *scripts;
    struct redis *rd;
    struct upstream *up; /* the relays' own client: [feedback] relay_timeout */
    char *name;
    char *krl, *krd, *krdlq;
    char claim_cursor[48];
    struct event *read_timer, *tick_timer;
    bool stopped, freed, reading;
    int redis_pending; /* reads, ticks, claims and group creation in flight */
    size_t inflight;
    struct relay_job *jobs;
};

static void relay_read(struct relay *r);
static void relay_record(struct relay_job *j);

/* Free r once it was released and nothing refers to it any more. */
static void relay_maybe_free(struct relay *r)
{
    if (!r->freed || r->redis_pending > 0 || r->jobs)
        return;
    upstream_free(r->up);
    free(r->name);
    free(r->krl);
    free(r->krd);
    free(r->krdlq);
    free(r);
}

/* A callback of r's own Redis calls arrived: false when r was released. */
static bool relay_redis_back(struct relay *r)
{
    r->redis_pending--;
    if (r->freed) {
        relay_maybe_free(r);
        return false;
    }
    return true;
}

/* Read again after ms. */
static void relay_read_later(struct relay *r, int64_t ms)
{
    if (r->stopped || r->freed)
        return;
    struct timeval tv = clock_timeval(ms);
    evtimer_add(r->read_timer, &tv);
}

/* Remove j from r and free it. */
static void relay_job_end(struct relay_job *j)
{
    struct relay *r = j->r;
    if (j->prev)
        j->prev->next = j->next;
    else
        r->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    r->inflight--;
    if (j->timer)
        event_free(j->timer);
    free(j->entry);
    free(j->client);
    free(j->topic);
    free(j->type);
    free(j->msgid);
    free(j->sub);
    free(j->body);
    free(j);
    if (!r->freed)
        relay_read(r);
}

/* j's record timer fired: record its outcome again. */
static void relay_record_cb(evutil_socket_t fd, short what, void *arg)
{
    relay_record(arg);
}

/* relay_outcome.lua answered for j. */
static void relay_recorded(const redisReply *reply, const char *err, void *arg)
{
    struct relay_job *j = arg;
    struct relay *r = j->r;
    j->redis_pending = false;
    if (r->freed || (err && strncmp(err, RSCRIPT_CLOSED, strlen(RSCRIPT_CLOSED)) == 0)) {
        relay_job_end(j); /* the entry stays pending and is reclaimed after the lease */
        relay_maybe_free(r);
        return;
    }
    if (err) {
        log_event(LOG_WARN, "relay_record_failed", "entry", j->entry, "error", err, NULL);
        if (j->timer == NULL)
            j->timer = evtimer_new(r->base, relay_record_cb, j);
        struct timeval tv = clock_timeval(RELAY_RECORD_MS);
        evtimer_add(j->timer, &tv);
        return;
    }
    relay_job_end(j);
}

/* Record j's outcome (kind, arg) and let go of its entry. */
static void relay_record(struct relay_job *j)
{
    if (j->timer)
        evtimer_del(j->timer);
    struct relay *r = j->r;
    const char *argv[6] = {r->krl, r->krd, r->krdlq, j->entry, j->kind, j->arg};
    j->redis_pending = true;
    rscript_eval(r->scripts, RSCRIPT_RELAY_OUTCOME, 3, strcmp(j->kind, "done") == 0 ? 5 : 6, argv,
                 NULL, relay_recorded, j);
}

/* Retry j with backoff, or give it up for the dead relays after
 * relay_attempts tries; error says why this try failed. */
static void relay_failed(struct relay_job *j, const char *error)
{
    struct relay *r = j->r;
    char attempt[16];
    snprintf(attempt, sizeof attempt, "%d", j->attempt);
    if (backoff_give_up(j->attempt, (int)r->cfg->relay_attempts)) {
        j->kind = "dead";
        snprintf(j->arg, sizeof j->arg, "%s", error);
        metrics_relay("dead");
        log_event(LOG_WARN, "relay_dead", "client", j->client, "sns_message_id", j->msgid,
                  "attempt", attempt, "error", error, NULL);
    } else {
        uint64_t rnd = 0;
        RAND_bytes((unsigned char *)&rnd, sizeof rnd);
        int64_t delay = backoff_delay_ms(j->attempt, BACKOFF_BASE_MS, BACKOFF_CAP_MS, rnd);
        j->kind = "retry";
        snprintf(j->arg, sizeof j->arg, "%" PRId64, delay);
        metrics_relay("retry");
        log_event(LOG_INFO, "relay_retry", "client", j->client, "sns_message_id", j->msgid,
                  "attempt", attempt, "delay_ms", j->arg, "error", error, NULL);
    }
    relay_record(j);
}

/* The application answered j's POST (or the POST failed). */
static void relay_posted(struct upstream_response *res, void *arg)
{
    struct relay_job *j = arg;
    j->call = NULL;
    if (res->error == UPSTREAM_OK && res->status >= 200 && res->status < 300) {
        j->kind = "done";
        j->arg[0] = '\0';
        metrics_relay("delivered");
        char status[16];
        snprintf(status, sizeof status, "%ld", res->status);
        log_event(LOG_INFO, "relay_delivered", "client", j->client, "sns_message_id", j->msgid,
                  "status", status, NULL);
        relay_record(j);
        return;
    }
    char error[300];
    if (res->error == UPSTREAM_OK)
        snprintf(error, sizeof error, "HTTP %ld", res->status);
    else
        snprintf(error, sizeof error, "%s", res->errmsg[0] ? res->errmsg : "transport error");
    relay_failed(j, error);
}

/* True when value may go into a header line as it is. */
static bool relay_header_ok(const char *value)
{
    return strpbrk(value, "\r\n") == NULL;
}

/* POST j to its client's events_url, as SNS POSTs a notification. */
static void relay_post(struct relay_job *j)
{
    struct relay *r = j->r;
    const struct config_client *c = config_client_by_name(r->cfg, j->client);
    if (c == NULL || c->events_url == NULL || c->events_url[0] == '\0') {
        log_event(LOG_WARN, "relay_dropped", "client", j->client, "sns_message_id", j->msgid,
                  "reason", c ? "the client has no events_url" : "no such client", NULL);
        j->kind = "done";
        j->arg[0] = '\0';
        relay_record(j);
        return;
    }
    if (!relay_header_ok(j->type) || !relay_header_ok(j->msgid) || !relay_header_ok(j->topic) ||
        !relay_header_ok(j->sub)) {
        j->kind = "dead";
        snprintf(j->arg, sizeof j->arg, "a header value holds a line break");
        metrics_relay("dead");
        log_event(LOG_WARN, "relay_dead", "client", j->client, "error", j->arg, NULL);
        relay_record(j);
        return;
    }
    struct curl_slist *h = NULL;
    struct buf line = BUF_INIT;
    buf_printf(&line, "x-amz-sns-message-type: %s", j->type);
    h = curl_slist_append(h, buf_cstr(&line));
    line.len = 0;
    buf_printf(&line, "x-amz-sns-message-id: %s", j->msgid);
    h = curl_slist_append(h, buf_cstr(&line));
    line.len = 0;
    buf_printf(&line, "x-amz-sns-topic-arn: %s", j->topic);
    h = curl_slist_append(h, buf_cstr(&line));
    if (j->sub[0]) {
        line.len = 0;
        buf_printf(&line, "x-amz-sns-subscription-arn: %s", j->sub);
        h = curl_slist_append(h, buf_cstr(&line));
    }
    buf_free(&line);
    h = curl_slist_append(h, "Content-Type: text/plain; charset=UTF-8");
    h = curl_slist_append(h, "User-Agent: Amazon Simple Notification Service Agent");
    h = curl_slist_append(h, "Accept:"); /* SNS sends none */
    h = curl_slist_append(h, "Expect:"); /* the body goes at once, as SNS sends it */
    if (h == NULL) {
        fprintf(stderr, "level=fatal event=out_of_memory\n");
        abort();
    }
    j->call = upstream_start(r->up, "POST", c->events_url, h, j->body, j->len, relay_posted, j);
}

/* A string field of a stream entry's flat field list, copied ("" when absent). */
static char *relay_field(const redisReply *fields, const char *name, size_t *len)
{
    const redisReply *v = reply_field(fields, name);
    bool ok = v && v->type == REDIS_REPLY_STRING;
    if (len)
        *len = ok ? v->len : 0;
    return ok ? xstrndup(v->str, v->len) : xstrdup("");
}

/* True when r already handles entry id (its own entry, idle past the lease
 * while its POST took long: the claim only reset its idle time). */
static bool relay_holds(const struct relay *r, const char *id)
{
    for (const struct relay_job *j = r->jobs; j; j = j->next)
        if (strcmp(j->entry, id) == 0)
            return true;
    return false;
}

/* Start delivering entry e ([id, [field, value, ...]]). */
static void relay_job_start(struct relay *r, const redisReply *e)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_ARRAY ||
        relay_holds(r, e->element[0]->str))
        return;
    const redisReply *f = e->element[1];
    struct relay_job *j = xcalloc(1, sizeof *j);
    j->r = r;
    j->entry = xstrndup(e->element[0]->str, e->element[0]->len);
    j->client = relay_field(f, "c", NULL);
    j->topic = relay_field(f, "t", NULL);
    j->type = relay_field(f, "y", NULL);
    j->msgid = relay_field(f, "i", NULL);
    j->sub = relay_field(f, "s", NULL);
    j->body = relay_field(f, "b", &j->len);
    char *a = relay_field(f, "a", NULL);
    j->attempt = atoi(a);
    free(a);
    if (j->attempt < 0)
        j->attempt = 0;
    j->next = r->jobs;
    if (r->jobs)
        r->jobs->prev = j;
    r->jobs = j;
    r->inflight++;
    relay_post(j);
}

/* XGROUP CREATE answered (BUSYGROUP: it was there). */
static void relay_group_made(const redisReply *reply, const char *err, void *arg)
{
    struct relay *r = arg;
    if (!relay_redis_back(r))
        return;
    relay_read_later(r, err && strncmp(err, "BUSYGROUP", 9) != 0 ? RELAY_TICK_MS : 0);
}

/* Make the relay stream and its group when missing. */
static void relay_make_group(struct relay *r)
{
    r->redis_pending++;
    redis_command(r->rd, relay_group_made, r, "XGROUP CREATE %s w 0 MKSTREAM", r->krl);
}

/* XREADGROUP answered: [[stream, [entry...]]] or nil. */
static void relay_read_done(const redisReply *reply, const char *err, void *arg)
{
    struct relay *r = arg;
    r->reading = false;
    if (!relay_redis_back(r))
        return;
    if (err) {
        if (strncmp(err, "NOGROUP", 7) == 0)
            relay_make_group(r); /* the stream or its group was deleted */
        else
            relay_read_later(r, RELAY_TICK_MS);
        return;
    }
    size_t got = 0;
    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 1) {
        const redisReply *s = reply->element[0];
        if (s->type == REDIS_REPLY_ARRAY && s->elements == 2 &&
            s->element[1]->type == REDIS_REPLY_ARRAY)
            for (size_t i = 0; i < s->element[1]->elements; i++, got++)
                relay_job_start(r, s->element[1]->element[i]);
    }
    if (got == 0)
        relay_read_later(r, RELAY_IDLE_MS);
    else
        relay_read(r);
}

/* Read new entries for the free slots (none free: a finishing relay reads
 * again). */
static void relay_read(struct relay *r)
{
    if (r->stopped || r->freed || r->reading || r->inflight >= RELAY_MAX_INFLIGHT ||
        evtimer_pending(r->read_timer, NULL))
        return;
    char count[24];
    snprintf(count, sizeof count, "%zu", (size_t)RELAY_MAX_INFLIGHT - r->inflight);
    const char *argv[] = {"XREADGROUP", "GROUP",   "w",    r->name, "COUNT",
                          count,        "STREAMS", r->krl, ">"};
    r->reading = true;
    r->redis_pending++;
    redis_command_argv(r->rd, relay_read_done, r, 9, argv, NULL);
}

/* The read timer fired. */
static void relay_read_cb(evutil_socket_t fd, short what, void *arg)
{
    relay_read(arg);
}

/* relay_due.lua answered. */
static void relay_due_done(const redisReply *reply, const char *err, void *arg)
{
    struct relay *r = arg;
    if (!relay_redis_back(r))
        return;
    if (err && strncmp(err, RSCRIPT_CLOSED, strlen(RSCRIPT_CLOSED)) != 0)
        log_event(LOG_WARN, "relay_due_failed", "error", err, NULL);
}

/* XAUTOCLAIM answered: [cursor, [entry...], ...]. */
static void relay_claimed(const redisReply *reply, const char *err, void *arg)
{
    struct relay *r = arg;
    if (!relay_redis_back(r))
        return;
    if (err || reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2)
        return;
    if (reply->element[0]->type == REDIS_REPLY_STRING)
        snprintf(r->claim_cursor, sizeof r->claim_cursor, "%s", reply->element[0]->str);
    const redisReply *entries = reply->element[1];
    if (entries->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < entries->elements && r->inflight < RELAY_MAX_INFLIGHT; i++) {
        const redisReply *e = entries->element[i];
        if (e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
            e->element[0]->type == REDIS_REPLY_STRING && !relay_holds(r, e->element[0]->str)) {
            log_event(LOG_INFO, "relay_reclaimed", "entry", e->element[0]->str, NULL);
            relay_job_start(r, e);
        }
    }
}

/* Every second: move due retries back and reclaim the entries of a
 * process that stopped answering. */
static void relay_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct relay *r = arg;
    if (r->stopped || r->freed || !redis_ready(r->rd))
        return;
    char max[16], longest[24];
    snprintf(max, sizeof max, "%d", RELAY_DUE_MAX);
    /* The longest delay a retry gets, plus a minute: anything due later was
     * written before Redis's clock went back. */
    snprintf(longest, sizeof longest, "%d", BACKOFF_CAP_MS + 60000);
    const char *argv[5] = {r->krd, r->krl, r->krdlq, max, longest};
    r->redis_pending++;
    rscript_eval(r->scripts, RSCRIPT_RELAY_DUE, 3, 5, argv, NULL, relay_due_done, r);
    if (r->inflight < RELAY_MAX_INFLIGHT) {
        int64_t lease = r->cfg->relay_timeout_ms + RELAY_LEASE_MARGIN_MS;
        if (r->cfg->lease_ms > lease)
            lease = r->cfg->lease_ms;
        char count[24], idle[24];
        snprintf(count, sizeof count, "%zu", (size_t)RELAY_MAX_INFLIGHT - r->inflight);
        snprintf(idle, sizeof idle, "%" PRId64, lease);
        const char *cv[] = {"XAUTOCLAIM", r->krl,          "w",     r->name,
                            idle,         r->claim_cursor, "COUNT", count};
        r->redis_pending++;
        redis_command_argv(r->rd, relay_claimed, r, 8, cv, NULL);
    }
}

/* Public: start relaying. */
struct relay *relay_start(struct event_base *base, const struct config *cfg,
                          struct rscript *scripts, const char *name)
{
    struct relay *r = xcalloc(1, sizeof *r);
    r->base = base;
    r->cfg = cfg;
    r->scripts = scripts;
    r->rd = rscript_redis(scripts);
    r->up =
        upstream_new(base, cfg->relay_timeout_ms, RELAY_MAX_RESPONSE, getenv("SESGATE_CA_BUNDLE"));
    r->name = xstrdup(name);
    r->krl = rscript_key(scripts, "relay", NULL);
    r->krd = rscript_key(scripts, "relay:d", NULL);
    r->krdlq = rscript_key(scripts, "relay:dlq", NULL);
    snprintf(r->claim_cursor, sizeof r->claim_cursor, "0-0");
    r->read_timer = evtimer_new(base, relay_read_cb, r);
    r->tick_timer = event_new(base, -1, EV_PERSIST, relay_tick_cb, r);
    struct timeval tick = clock_timeval(RELAY_TICK_MS);
    event_add(r->tick_timer, &tick);
    relay_make_group(r);
    return r;
}

/* Public: stop reading new entries. */
void relay_stop(struct relay *r)
{
    if (r == NULL || r->stopped)
        return;
    r->stopped = true;
    evtimer_del(r->read_timer);
    event_del(r->tick_timer);
}

/* Public: relays in flight. */
size_t relay_inflight(const struct relay *r)
{
    return r ? r->inflight : 0;
}

/* Public: release r. */
void relay_free(struct relay *r)
{
    if (r == NULL)
        return;
    relay_stop(r);
    event_free(r->read_timer);
    event_free(r->tick_timer);
    r->read_timer = r->tick_timer = NULL;
    r->freed = true;
    struct relay_job *j = r->jobs;
    while (j) {
        struct relay_job *next = j->next;
        if (!j->redis_pending) {
            if (j->call)
                upstream_cancel(j->call);
            j->call = NULL;
            relay_job_end(j); /* its entry is reclaimed after the lease */
        }
        j = next;
    }
    relay_maybe_free(r);
}
