/* sentinel: where the Redis master is, asked of Redis Sentinel. */
#include "sentinel.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "buf.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"

#define SENTINEL_ASK_MS         1000 /* one Sentinel's connect and answer */
#define SENTINEL_RESUBSCRIBE_MS 1000 /* a lost subscription is made again after this */
#define SENTINEL_MAX            16   /* Sentinels in the list */

struct sentinel_addr {
    char *host;
    int port;
};

/* A caller waiting for the master's address. */
struct sentinel_req {
    sentinel_found_fn cb;
    void *arg;
    struct sentinel_req *next;
};

/* A caller told of failovers. */
struct sentinel_watcher {
    sentinel_switch_fn cb;
    void *arg;
    struct sentinel_watcher *next;
};

struct sentinel {
    struct event_base *base;
    struct sentinel_addr addrs[SENTINEL_MAX];
    int naddrs;
    char *master;
    char *password; /* NULL for none; a secret: never logged */
    /* the round of questions under way */
    redisAsyncContext *ac; /* the Sentinel being asked, NULL between two */
    int next;              /* the Sentinel to ask first next time (the last that answered) */
    int cur, tried;
    bool asking;
    char last_err[192];
    struct event *ask_timer;   /* the Sentinel being asked took too long */
    struct event *start_timer; /* a round starts from the event loop */
    struct sentinel_req *reqs;
    char *known_host; /* the master last found, NULL before the first */
    int known_port;
    /* the +switch-master subscription */
    redisAsyncContext *sub;
    int sub_idx;
    struct event *sub_timer;
    struct sentinel_watcher *watchers;
};

static void sentinel_ask_next(struct sentinel *s);
static void sentinel_start_cb(evutil_socket_t fd, short what, void *arg);
static void sentinel_sub_cb(evutil_socket_t fd, short what, void *arg);

/* Arm ev for ms milliseconds. */
static void sentinel_timer_ms(struct event *ev, int64_t ms)
{
    struct timeval tv = clock_timeval(ms);
    evtimer_add(ev, &tv);
}

/* Parse one "host:port" or "[v6]:port" of n bytes into a. */
static int sentinel_parse_one(const char *p, size_t n, struct sentinel_addr *a)
{
    while (n > 0 && (*p == ' ' || *p == '\t'))
        p++, n--;
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    const char *colon = NULL;
    for (size_t i = n; i > 0; i--)
        if (p[i - 1] == ':') {
            colon = p + i - 1;
            break;
        }
    if (colon == NULL || colon == p || (size_t)(p + n - colon - 1) == 0 ||
        (size_t)(p + n - colon - 1) > 5)
        return -1;
    long port = 0;
    for (const char *d = colon + 1; d < p + n; d++) {
        if (*d < '0' || *d > '9')
            return -1;
        port = port * 10 + (*d - '0');
    }
    if (port < 1 || port > 65535)
        return -1;
    const char *h = p, *he = colon;
    if (*h == '[') {
        if (he[-1] != ']' || he - h < 3)
            return -1;
        h++, he--;
    } else if (memchr(h, ':', (size_t)(he - h)) != NULL) {
        return -1;
    }
    a->host = xstrndup(h, (size_t)(he - h));
    a->port = (int)port;
    return 0;
}

/* Parse list into addrs (at most SENTINEL_MAX); the count, or -1. */
static int sentinel_parse(const char *list, struct sentinel_addr *addrs, char *err, size_t errlen)
{
    int n = 0;
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (n == SENTINEL_MAX) {
            snprintf(err, errlen, "[redis] sentinels: more than %d", SENTINEL_MAX);
            goto fail;
        }
        if (sentinel_parse_one(p, len, &addrs[n]) < 0) {
            snprintf(err, errlen, "[redis] sentinels: '%.*s' is not host:port",
                     (int)(len > 80 ? 80 : len), p);
            goto fail;
        }
        n++;
        p += len;
        if (*p == ',')
            p++;
    }
    if (n == 0) {
        snprintf(err, errlen, "[redis] sentinels: empty");
        return -1;
    }
    return n;
fail:
    for (int i = 0; i < n; i++)
        free(addrs[i].host);
    return -1;
}

/* The round is over: tell every waiting caller. */
static void sentinel_finish(struct sentinel *s, const char *host, int port, const char *err)
{
    s->asking = false;
    evtimer_del(s->ask_timer);
    if (host) {
        if (s->known_host && (strcmp(s->known_host, host) != 0 || s->known_port != port)) {
            char from[300], to[300];
            snprintf(from, sizeof from, "%s:%d", s->known_host, s->known_port);
            snprintf(to, sizeof to, "%s:%d", host, port);
            log_event(LOG_WARN, "redis_failover", "master", s->master, "from", from, "to", to,
                      NULL);
            metrics_redis_failover();
        }
        if (s->known_host == NULL || strcmp(s->known_host, host) != 0) {
            free(s->known_host);
            s->known_host = xstrdup(host);
        }
        s->known_port = port;
    }
    struct sentinel_req *r = s->reqs;
    s->reqs = NULL;
    while (r) {
        struct sentinel_req *next = r->next;
        r->cb(host, port, err, r->arg);
        free(r);
        r = next;
    }
}

/* Stop talking to the Sentinel being asked (outside its callbacks). */
static void sentinel_ask_close(struct sentinel *s, bool in_callback)
{
    redisAsyncContext *ac = s->ac;
    s->ac = NULL; /* callbacks of a context no longer ours are ignored */
    if (ac == NULL)
        return;
    if (in_callback)
        redisAsyncDisconnect(ac);
    else
        redisAsyncFree(ac);
}

/* The Sentinel being asked failed (why); ask the next one. */
static void sentinel_ask_failed(struct sentinel *s, const char *why, bool in_callback)
{
    const struct sentinel_addr *a = &s->addrs[s->cur];
    snprintf(s->last_err, sizeof s->last_err, "sentinel %s:%d: %s", a->host, a->port, why);
    sentinel_ask_close(s, in_callback);
    sentinel_ask_next(s);
}

/* A Sentinel answered SENTINEL get-master-addr-by-name. */
static void sentinel_addr_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct sentinel *s = privdata;
    const redisReply *rep = reply;
    if (ac != s->ac || rep == NULL)
        return;
    if (rep->type == REDIS_REPLY_ERROR) {
        sentinel_ask_failed(s, rep->str, true);
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING ||
        rep->element[1]->type != REDIS_REPLY_STRING) {
        sentinel_ask_failed(s, "does not know the master", true);
        return;
    }
    char *host = xstrndup(rep->element[0]->str, rep->element[0]->len);
    int port = atoi(rep->element[1]->str);
    s->next = s->cur;
    sentinel_ask_close(s, true);
    if (port < 1 || port > 65535)
        sentinel_finish(s, NULL, 0, "a Sentinel named a master with a bad port");
    else
        sentinel_finish(s, host, port, NULL);
    free(host);
}

/* A Sentinel answered AUTH. */
static void sentinel_auth_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct sentinel *s = privdata;
    const redisReply *rep = reply;
    if (ac != s->ac || rep == NULL)
        return;
    if (rep->type == REDIS_REPLY_ERROR) /* the next reply is refused too */
        snprintf(s->last_err, sizeof s->last_err, "AUTH failed: %s", rep->str);
}

/* connect(2) to a Sentinel finished. */
static void sentinel_ask_connected(const redisAsyncContext *ac, int status)
{
    struct sentinel *s = ac->data;
    if (s == NULL || ac != s->ac)
        return;
    if (status != REDIS_OK) {
        s->ac = NULL; /* hiredis frees ac */
        const struct sentinel_addr *a = &s->addrs[s->cur];
        snprintf(s->last_err, sizeof s->last_err, "sentinel %s:%d: %s", a->host, a->port,
                 ac->errstr[0] ? ac->errstr : "connect failed");
        sentinel_ask_next(s);
        return;
    }
    if (s->password)
        redisAsyncCommand(s->ac, sentinel_auth_reply, s, "AUTH %s", s->password);
    redisAsyncCommand(s->ac, sentinel_addr_reply, s, "SENTINEL get-master-addr-by-name %s",
                      s->master);
}

/* hiredis: a Sentinel connection closed. */
static void sentinel_ask_disconnected(const redisAsyncContext *ac, int status)
{
    struct sentinel *s = ac->data;
    if (s == NULL || ac != s->ac)
        return;
    s->ac = NULL;
    const struct sentinel_addr *a = &s->addrs[s->cur];
    snprintf(s->last_err, sizeof s->last_err, "sentinel %s:%d: connection closed", a->host,
             a->port);
    sentinel_ask_next(s);
}

/* Timer: the Sentinel being asked took too long. */
static void sentinel_ask_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sentinel *s = arg;
    if (s->asking && s->ac)
        sentinel_ask_failed(s, "no answer within 1 s", false);
}

/* Ask the next Sentinel of the round, or end it when all were asked. */
static void sentinel_ask_next(struct sentinel *s)
{
    while (s->tried < s->naddrs) {
        s->cur = (s->next + s->tried) % s->naddrs;
        s->tried++;
        const struct sentinel_addr *a = &s->addrs[s->cur];
        redisAsyncContext *ac = redisAsyncConnect(a->host, a->port);
        if (ac == NULL || ac->err) {
            snprintf(s->last_err, sizeof s->last_err, "sentinel %s:%d: %s", a->host, a->port,
                     ac ? ac->errstr : "cannot allocate a connection");
            if (ac)
                redisAsyncFree(ac);
            continue;
        }
        ac->data = s;
        redisLibeventAttach(ac, s->base);
        redisAsyncSetConnectCallback(ac, sentinel_ask_connected);
        redisAsyncSetDisconnectCallback(ac, sentinel_ask_disconnected);
        s->ac = ac;
        sentinel_timer_ms(s->ask_timer, SENTINEL_ASK_MS);
        return;
    }
    char why[256];
    snprintf(why, sizeof why, "no Sentinel named the master %s (last: %s)", s->master,
             s->last_err[0] ? s->last_err : "none");
    sentinel_finish(s, NULL, 0, why);
}

struct sentinel *sentinel_new(struct event_base *base, const char *list, const char *master,
                              const char *password, char *err, size_t errlen)
{
    struct sentinel *s = xcalloc(1, sizeof *s);
    s->naddrs = sentinel_parse(list, s->addrs, err, errlen);
    if (s->naddrs < 0) {
        free(s);
        return NULL;
    }
    s->base = base;
    s->master = xstrdup(master);
    s->password = password && *password ? xstrdup(password) : NULL;
    s->ask_timer = evtimer_new(base, sentinel_ask_timeout_cb, s);
    s->start_timer = evtimer_new(base, sentinel_start_cb, s);
    s->sub_timer = evtimer_new(base, sentinel_sub_cb, s);
    s->sub_idx = -1;
    return s;
}

void sentinel_free(struct sentinel *s)
{
    if (s == NULL)
        return;
    while (s->reqs) { /* their owners cancelled them: no callback */
        struct sentinel_req *r = s->reqs;
        s->reqs = r->next;
        free(r);
    }
    while (s->watchers) {
        struct sentinel_watcher *w = s->watchers;
        s->watchers = w->next;
        free(w);
    }
    sentinel_ask_close(s, false);
    if (s->sub) {
        redisAsyncContext *sub = s->sub;
        s->sub = NULL;
        redisAsyncFree(sub);
    }
    event_free(s->ask_timer);
    event_free(s->start_timer);
    event_free(s->sub_timer);
    for (int i = 0; i < s->naddrs; i++)
        free(s->addrs[i].host);
    if (s->password) {
        explicit_bzero(s->password, strlen(s->password));
        free(s->password);
    }
    free(s->master);
    free(s->known_host);
    free(s);
}

/* Timer: start a round asked for from inside a callback. */
static void sentinel_start_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sentinel *s = arg;
    if (s->asking && s->ac == NULL && s->tried == 0)
        sentinel_ask_next(s);
}

void sentinel_resolve(struct sentinel *s, sentinel_found_fn cb, void *arg)
{
    sentinel_cancel(s, arg);
    struct sentinel_req *r = xcalloc(1, sizeof *r);
    r->cb = cb;
    r->arg = arg;
    r->next = s->reqs;
    s->reqs = r;
    if (s->asking)
        return;
    s->asking = true;
    s->tried = 0;
    s->last_err[0] = '\0';
    /* from the event loop: cb never fires inside this call */
    sentinel_timer_ms(s->start_timer, 0);
}

void sentinel_cancel(struct sentinel *s, void *arg)
{
    for (struct sentinel_req **p = &s->reqs; *p;) {
        if ((*p)->arg == arg) {
            struct sentinel_req *r = *p;
            *p = r->next;
            free(r);
        } else {
            p = &(*p)->next;
        }
    }
}

const char *sentinel_master(const struct sentinel *s)
{
    return s->master;
}

static void sentinel_subscribe(struct sentinel *s);

/* A +switch-master message (or the subscription's confirmation). */
static void sentinel_sub_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct sentinel *s = privdata;
    const redisReply *rep = reply;
    if (ac != s->sub || rep == NULL)
        return;
    if (rep->type == REDIS_REPLY_ERROR) {
        log_event(LOG_WARN, "sentinel_subscribe_failed", "error", rep->str, NULL);
        s->sub = NULL;
        redisAsyncDisconnect(ac);
        evtimer_del(s->sub_timer);
        sentinel_timer_ms(s->sub_timer, SENTINEL_RESUBSCRIBE_MS);
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(rep->element[0]->str, "message") != 0 || rep->element[2]->type != REDIS_REPLY_STRING)
        return;
    /* "<name> <old ip> <old port> <new ip> <new port>" */
    char name[256], oldh[256], newh[256];
    int oldp, newp;
    char *msg = xstrndup(rep->element[2]->str, rep->element[2]->len);
    int n = sscanf(msg, "%255s %255s %d %255s %d", name, oldh, &oldp, newh, &newp);
    free(msg);
    if (n != 5 || strcmp(name, s->master) != 0)
        return;
    for (struct sentinel_watcher *w = s->watchers; w; w = w->next)
        w->cb(newh, newp, w->arg);
}

/* connect(2) to the subscribed Sentinel finished. */
static void sentinel_sub_connected(const redisAsyncContext *ac, int status)
{
    struct sentinel *s = ac->data;
    if (s == NULL || ac != s->sub)
        return;
    if (status != REDIS_OK) {
        s->sub = NULL; /* hiredis frees ac */
        sentinel_timer_ms(s->sub_timer, SENTINEL_RESUBSCRIBE_MS);
        return;
    }
    if (s->password)
        redisAsyncCommand(s->sub, NULL, NULL, "AUTH %s", s->password);
    redisAsyncCommand(s->sub, sentinel_sub_reply, s, "SUBSCRIBE +switch-master");
}

/* hiredis: the subscription's connection closed; subscribe again on the
 * next Sentinel. */
static void sentinel_sub_disconnected(const redisAsyncContext *ac, int status)
{
    struct sentinel *s = ac->data;
    if (s == NULL || ac != s->sub)
        return;
    s->sub = NULL;
    sentinel_timer_ms(s->sub_timer, SENTINEL_RESUBSCRIBE_MS);
}

/* Timer: subscribe again. */
static void sentinel_sub_cb(evutil_socket_t fd, short what, void *arg)
{
    sentinel_subscribe(arg);
}

/* Subscribe to +switch-master on the next Sentinel. */
static void sentinel_subscribe(struct sentinel *s)
{
    if (s->sub || s->watchers == NULL)
        return;
    s->sub_idx = (s->sub_idx + 1) % s->naddrs;
    const struct sentinel_addr *a = &s->addrs[s->sub_idx];
    redisAsyncContext *ac = redisAsyncConnect(a->host, a->port);
    if (ac == NULL || ac->err) {
        if (ac)
            redisAsyncFree(ac);
        sentinel_timer_ms(s->sub_timer, SENTINEL_RESUBSCRIBE_MS);
        return;
    }
    ac->data = s;
    redisEnableKeepAlive(&ac->c);
    redisLibeventAttach(ac, s->base);
    redisAsyncSetConnectCallback(ac, sentinel_sub_connected);
    redisAsyncSetDisconnectCallback(ac, sentinel_sub_disconnected);
    s->sub = ac;
}

void sentinel_watch(struct sentinel *s, sentinel_switch_fn cb, void *arg)
{
    struct sentinel_watcher *w = xcalloc(1, sizeof *w);
    w->cb = cb;
    w->arg = arg;
    w->next = s->watchers;
    s->watchers = w;
    sentinel_subscribe(s);
}

void sentinel_unwatch(struct sentinel *s, void *arg)
{
    for (struct sentinel_watcher **p = &s->watchers; *p;) {
        if ((*p)->arg == arg) {
            struct sentinel_watcher *w = *p;
            *p = w->next;
            free(w);
        } else {
            p = &(*p)->next;
        }
    }
}

int sentinel_resolve_sync(const char *list, const char *master, const char *password,
                          int timeout_ms, char **host, int *port, char *err, size_t errlen)
{
    struct sentinel_addr addrs[SENTINEL_MAX];
    int n = sentinel_parse(list, addrs, err, errlen);
    if (n < 0)
        return -1;
    struct timeval tv = clock_timeval(timeout_ms);
    char last[192] = "none";
    int rc = -1;
    for (int i = 0; i < n && rc < 0; i++) {
        redisContext *c = redisConnectWithTimeout(addrs[i].host, addrs[i].port, tv);
        if (c == NULL || c->err) {
            snprintf(last, sizeof last, "sentinel %s:%d: %s", addrs[i].host, addrs[i].port,
                     c ? c->errstr : "out of memory");
            if (c)
                redisFree(c);
            continue;
        }
        redisSetTimeout(c, tv);
        redisReply *rep = NULL;
        if (password && *password) {
            rep = redisCommand(c, "AUTH %s", password);
            if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
                snprintf(last, sizeof last, "sentinel %s:%d: AUTH failed: %s", addrs[i].host,
                         addrs[i].port, rep ? rep->str : c->errstr);
                goto next;
            }
            freeReplyObject(rep);
        }
        rep = redisCommand(c, "SENTINEL get-master-addr-by-name %s", master);
        if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
            rep->element[0]->type == REDIS_REPLY_STRING &&
            rep->element[1]->type == REDIS_REPLY_STRING && atoi(rep->element[1]->str) > 0 &&
            atoi(rep->element[1]->str) <= 65535) {
            *host = xstrndup(rep->element[0]->str, rep->element[0]->len);
            *port = atoi(rep->element[1]->str);
            rc = 0;
        } else {
            snprintf(last, sizeof last, "sentinel %s:%d: %s", addrs[i].host, addrs[i].port,
                     rep == NULL                      ? c->errstr
                     : rep->type == REDIS_REPLY_ERROR ? rep->str
                                                      : "does not know the master");
        }
    next:
        if (rep)
            freeReplyObject(rep);
        redisFree(c);
    }
    for (int i = 0; i < n; i++)
        free(addrs[i].host);
    if (rc < 0)
        snprintf(err, errlen, "no Sentinel named the master %s (last: %s)", master, last);
    return rc;
}
