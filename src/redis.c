/* redis: the asynchronous Redis connection, reconnecting with backoff. */
#include "redis.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/adapters/libevent.h>

#include "buf.h"
#include "clock.h"
#include "log.h"
#include "redistls.h"
#include "redisurl.h"
#include "sentinel.h"
#include "util.h"

#define REDIS_PING_MS  1000 /* health PING period */
#define REDIS_READY_MS 5000 /* ready while the last PONG is this recent */
#define REDIS_STALL_MS                                                                             \
    6000                               /* a PING unanswered this long: new commands fail at once   \
                                        * (above Redis's busy-reply threshold of 5 s, so a long    \
                                        * script gets BUSY answers first, not a stall) */
#define REDIS_DEAD_MS            15000 /* a PING unanswered this long drops the connection */
#define REDIS_CONNECT_TIMEOUT_MS 3000  /* connect, AUTH and SELECT must be done by then */
#define REDIS_BACKOFF_MIN_MS     100   /* first reconnect delay */
#define REDIS_BACKOFF_MAX_MS     2000  /* reconnect delay ceiling */

enum redis_state {
    REDIS_STATE_DOWN,       /* no connection; a reconnect is scheduled */
    REDIS_STATE_RESOLVING,  /* the Sentinels are asked where the master is */
    REDIS_STATE_CONNECTING, /* connect(2) in progress */
    REDIS_STATE_HANDSHAKE,  /* AUTH / SELECT sent */
    REDIS_STATE_UP,         /* commands are accepted */
};

/* One command waiting for its reply (or for its deferred failure). */
struct redis_cmd {
    struct redis *r;
    redis_cb cb;
    void *arg;
    const char *err; /* static text, for a deferred failure */
    struct redis_cmd *next;
};

struct redis {
    struct event_base *base;
    char *host;     /* TCP host, NULL for a unix socket; owned */
    int port;       /* TCP port */
    char *path;     /* unix socket path, NULL for TCP; owned */
    char *user;     /* ACL user, NULL for none; owned */
    char *password; /* NULL for none; owned; a secret: never logged */
    int db;
    char *where;                 /* the server without credentials; owned */
    struct redistls *relay;      /* rediss://: the TLS relay hiredis connects through */
    const char *role;            /* static: the role= of its log lines; NULL for none */
    struct sentinel *sentinel;   /* where the master is; NULL: host:port; not owned */
    bool switched;               /* the Sentinels announced a failover: reconnect at once */
    struct event *recheck_timer; /* a READONLY answer: ask the Sentinels again */
    redisAsyncContext *ac;
    enum redis_state state;
    int handshake_left;    /* AUTH / SELECT replies still awaited */
    bool closing;          /* redis_free is running */
    bool ping_inflight;    /* a health PING awaits its answer */
    bool announced;        /* this connection's first PONG was logged */
    bool outage;           /* an outage was logged and has not ended */
    int64_t ping_sent_ms;  /* ms, monotonic */
    int64_t last_pong_ms;  /* ms, monotonic; 0: none on this connection */
    int64_t last_reply_ms; /* ms, monotonic: the last reply of any command */
    int64_t down_ms;       /* ms, monotonic: when the outage began */
    int64_t backoff_ms;    /* ms: the next reconnect's delay */
    char drop_reason[160];
    struct event *reconnect_timer;
    struct event *connect_timer;
    struct event *ping_timer;
    struct event *fail_timer;
    struct redis_cmd *fails; /* failed at once; callbacks run from fail_timer */
    struct redis_cmd **fails_tail;
};

static void redis_connect(struct redis *r);

/* Arm a timer for ms milliseconds. */
static void redis_timer_ms(struct event *ev, int64_t ms)
{
    struct timeval tv = clock_timeval(ms);
    evtimer_add(ev, &tv);
}

/* r->where for a master the Sentinels name (redis://: Sentinel is never
 * TLS): "sentinel master NAME" until it is known. */
static void redis_set_where(struct redis *r)
{
    struct buf w = BUF_INIT;
    if (r->sentinel && (r->host == NULL || r->host[0] == '\0'))
        buf_printf(&w, "sentinel master %s", sentinel_master(r->sentinel));
    else if (r->path)
        buf_printf(&w, "unix://%s", r->path);
    else if (strchr(r->host, ':'))
        buf_printf(&w, "redis://[%s]:%d", r->host, r->port);
    else
        buf_printf(&w, "redis://%s:%d", r->host, r->port);
    if (r->db)
        buf_printf(&w, r->path ? "?db=%d" : "/%d", r->db);
    free(r->where);
    r->where = buf_detach(&w, NULL);
}

/* Parse url (redisurl) into r's address, credentials and database, and
 * check it against the options: tls_ca_file (NULL or "") only with
 * rediss://; with sentinel, a redis:// url ("" gives nothing) whose host,
 * if any, is dropped: the Sentinels name the master (r->where says so once
 * r->sentinel is set). Returns 1 for rediss://, 0 for another scheme, -1
 * with a reason in err (r's strings are then for redis_free_strings). */
static int redis_parse_url(struct redis *r, const char *url, const char *tls_ca_file, bool sentinel,
                           char *err, size_t errlen)
{
    struct redisurl u;
    if (sentinel && url[0] == '\0')
        url = "redis://"; /* no user, password or database */
    if (redisurl_parse(&u, url, sentinel ? REDISURL_HOST_OPTIONAL : 0, err, errlen) < 0)
        return -1;
    r->host = u.host;
    r->port = u.port;
    r->path = u.path;
    r->user = u.user;
    r->password = u.password;
    r->db = u.db;
    r->where = u.where;
    if (!u.tls && tls_ca_file && tls_ca_file[0]) {
        snprintf(err, errlen, "[redis] tls_ca_file is set but [redis] url is not rediss://");
        return -1;
    }
    if (sentinel && (u.tls || u.path)) {
        snprintf(err, errlen,
                 u.tls ? "[redis] url: TLS (rediss://) with [redis] sentinels is not supported"
                       : "[redis] url: with [redis] sentinels, a redis:// url (no socket path)");
        return -1;
    }
    if (sentinel) { /* the Sentinels say where the master is */
        free(r->host);
        r->host = NULL;
        if (r->sentinel)
            redis_set_where(r);
    }
    return u.tls ? 1 : 0;
}

/* Why the connection closed: the TLS relay's reason when it has one. */
static const char *redis_relay_reason(const struct redis *r, const char *fallback)
{
    const char *why = r->relay ? redistls_reason(r->relay) : "";
    return why[0] ? why : fallback;
}

/* The connection is gone or could not be made: log the outage once, then
 * try again after the backoff. */
static void redis_failed(struct redis *r, const char *reason)
{
    r->state = REDIS_STATE_DOWN;
    r->ac = NULL;
    r->ping_inflight = false;
    r->last_pong_ms = 0;
    r->drop_reason[0] = '\0';
    evtimer_del(r->connect_timer);
    if (r->closing)
        return;
    if (!r->outage) {
        r->outage = true;
        r->down_ms = clock_mono_ms();
        log_event(LOG_ERROR, "redis_down", "where", r->where, "role", r->role, "reason", reason,
                  NULL);
    }
    redis_timer_ms(r->reconnect_timer, r->backoff_ms);
    r->backoff_ms =
        r->backoff_ms * 2 > REDIS_BACKOFF_MAX_MS ? REDIS_BACKOFF_MAX_MS : r->backoff_ms * 2;
}

/* Close the connection from outside any hiredis callback, then reconnect. */
static void redis_drop(struct redis *r, const char *reason)
{
    redisAsyncContext *ac = r->ac;
    r->ac = NULL; /* the disconnect callback ignores a context no longer ours */
    r->state = REDIS_STATE_DOWN;
    if (ac)
        redisAsyncFree(ac); /* pending callbacks run now, with no reply */
    redis_failed(r, reason);
}

/* Queue cmd's failure; its callback runs from the event loop. */
static void redis_defer_fail(struct redis *r, struct redis_cmd *c, const char *err)
{
    c->err = err;
    c->next = NULL;
    *r->fails_tail = c;
    r->fails_tail = &c->next;
    if (!evtimer_pending(r->fail_timer, NULL))
        redis_timer_ms(r->fail_timer, 0);
}

/* Run the callbacks of commands that failed at once. */
static void redis_fail_cb(evutil_socket_t fd, short what, void *arg)
{
    struct redis *r = arg;
    while (r->fails) {
        struct redis_cmd *c = r->fails;
        r->fails = c->next;
        if (r->fails == NULL)
            r->fails_tail = &r->fails;
        c->cb(NULL, c->err, c->arg);
        free(c);
    }
}

/* hiredis: a reply (or NULL when the connection went away). */
static void redis_reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct redis_cmd *c = privdata;
    const redisReply *rep = reply;
    const char *err = NULL;
    if (rep != NULL)
        c->r->last_reply_ms = clock_mono_ms();
    if (rep == NULL)
        err = c->r->closing ? "redis connection closed" : "redis connection lost";
    else if (rep->type == REDIS_REPLY_ERROR)
        err = rep->str ? rep->str : "redis error";
    struct redis *r = c->r;
    /* A master that became a replica (a failover sesgate missed): ask the
     * Sentinels again, from the event loop. */
    if (err && rep && r->sentinel && !r->closing &&
        (strncmp(err, "READONLY", 8) == 0 || strstr(err, "READONLY You can't write") != NULL) &&
        !evtimer_pending(r->recheck_timer, NULL))
        redis_timer_ms(r->recheck_timer, 0);
    c->cb(rep, err, c->arg);
    free(c);
}

/* Send a command on the current connection, whatever its state. */
static int redis_vsend(struct redis *r, redis_cb cb, void *arg, const char *fmt, va_list ap)
{
    struct redis_cmd *c = xcalloc(1, sizeof *c);
    c->r = r;
    c->cb = cb;
    c->arg = arg;
    if (r->ac == NULL) {
        redis_defer_fail(r, c, "redis not connected");
        return -1;
    }
    if (redisvAsyncCommand(r->ac, redis_reply_cb, c, fmt, ap) != REDIS_OK) {
        redis_defer_fail(r, c, "redis command not sent");
        return -1;
    }
    return 0;
}

/* redis_vsend with variable arguments, for sesgate's own commands. */
static int redis_send(struct redis *r, redis_cb cb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = redis_vsend(r, cb, r, fmt, ap);
    va_end(ap);
    return rc;
}

/* A health PING's answer. */
static void redis_ping_reply(const redisReply *reply, const char *err, void *arg)
{
    struct redis *r = arg;
    r->ping_inflight = false;
    if (reply == NULL || r->closing)
        return;
    if (err || reply->type != REDIS_REPLY_STATUS || strcmp(reply->str, "PONG") != 0)
        return; /* LOADING, or not Redis: not ready */
    r->last_pong_ms = clock_mono_ms();
    if (r->announced)
        return;
    r->announced = true;
    r->backoff_ms = REDIS_BACKOFF_MIN_MS;
    if (r->outage) {
        char down[24];
        snprintf(down, sizeof down, "%lld", (long long)(r->last_pong_ms - r->down_ms));
        log_event(LOG_INFO, "redis_up", "where", r->where, "role", r->role, "down_ms", down, NULL);
        r->outage = false;
    } else {
        log_event(LOG_INFO, "redis_connected", "where", r->where, "role", r->role, NULL);
    }
}

/* True while the health PING has gone unanswered, and no other reply came,
 * for REDIS_STALL_MS: the server is stopped or stuck. Commands already sent
 * keep waiting for their replies (dropping them would not unsend them); new
 * ones fail at once. */
static bool redis_stalled(const struct redis *r)
{
    int64_t now = clock_mono_ms();
    return r->ping_inflight && now - r->ping_sent_ms >= REDIS_STALL_MS &&
           now - r->last_reply_ms >= REDIS_STALL_MS;
}

/* Send a health PING unless one is pending. */
static void redis_ping(struct redis *r)
{
    if (r->ping_inflight)
        return;
    r->ping_inflight = true;
    r->ping_sent_ms = clock_mono_ms();
    if (redis_send(r, redis_ping_reply, "PING") < 0)
        r->ping_inflight = false;
}

/* Timer: PING every second; drop a connection that stopped answering. */
static void redis_ping_cb(evutil_socket_t fd, short what, void *arg)
{
    struct redis *r = arg;
    if (r->state != REDIS_STATE_UP)
        return;
    if (r->ping_inflight && clock_mono_ms() - r->ping_sent_ms >= REDIS_DEAD_MS) {
        char reason[64];
        snprintf(reason, sizeof reason, "no answer to PING for %d s", REDIS_DEAD_MS / 1000);
        redis_drop(r, reason);
        return;
    }
    redis_ping(r);
}

/* The connection is ready for commands. */
static void redis_set_up(struct redis *r)
{
    r->state = REDIS_STATE_UP;
    evtimer_del(r->connect_timer);
    redis_ping(r);
}

/* The answer to AUTH or SELECT (what). */
static void redis_handshake_reply(struct redis *r, const char *what, const redisReply *reply,
                                  const char *err)
{
    if (reply == NULL || r->closing || r->state != REDIS_STATE_HANDSHAKE)
        return;
    if (err) {
        /* Server error texts name no password. */
        snprintf(r->drop_reason, sizeof r->drop_reason, "%s failed: %s", what, err);
        r->state = REDIS_STATE_CONNECTING; /* later handshake replies are ignored */
        redisAsyncDisconnect(r->ac);
        return;
    }
    if (--r->handshake_left == 0)
        redis_set_up(r);
}

/* The answer to AUTH. */
static void redis_auth_reply(const redisReply *reply, const char *err, void *arg)
{
    redis_handshake_reply(arg, "AUTH", reply, err);
}

/* The answer to SELECT. */
static void redis_select_reply(const redisReply *reply, const char *err, void *arg)
{
    redis_handshake_reply(arg, "SELECT", reply, err);
}

/* The answer to ROLE: a server the Sentinels named must say it is the
 * master; a replica is refused (nothing is written to it) and the
 * Sentinels are asked again. */
static void redis_role_reply(const redisReply *reply, const char *err, void *arg)
{
    struct redis *r = arg;
    if (err == NULL && reply &&
        (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
         reply->element[0]->type != REDIS_REPLY_STRING ||
         strcmp(reply->element[0]->str, "master") != 0)) {
        if (reply && r->state == REDIS_STATE_HANDSHAKE && !r->closing && !r->outage)
            log_event(LOG_WARN, "redis_replica_refused", "where", r->where, "role", r->role,
                      "master", sentinel_master(r->sentinel), NULL);
        err = "the server is a replica, not the master";
    }
    redis_handshake_reply(r, "ROLE", reply, err);
}

/* The answer to the handshake's PING (TLS). */
static void redis_tls_ping_reply(const redisReply *reply, const char *err, void *arg)
{
    redis_handshake_reply(arg, "PING", reply, err);
}

/* hiredis: connect(2) finished. */
static void redis_on_connect(const redisAsyncContext *ac, int status)
{
    struct redis *r = ac->data;
    if (r == NULL || r->ac != ac)
        return;
    if (status != REDIS_OK) {
        redis_failed(r, redis_relay_reason(r, ac->errstr[0]
                                                  ? ac->errstr
                                                  : "connect failed")); /* hiredis frees ac */
        return;
    }
    r->state = REDIS_STATE_HANDSHAKE;
    r->handshake_left = 0;
    if (r->password) {
        r->handshake_left++;
        if (r->user)
            redis_send(r, redis_auth_reply, "AUTH %s %s", r->user, r->password);
        else
            redis_send(r, redis_auth_reply, "AUTH %s", r->password);
    }
    if (r->db) {
        r->handshake_left++;
        redis_send(r, redis_select_reply, "SELECT %d", r->db);
    }
    if (r->relay) { /* up once Redis answered through TLS, not when the relay took hiredis */
        r->handshake_left++;
        redis_send(r, redis_tls_ping_reply, "PING");
    }
    if (r->sentinel) {
        r->handshake_left++;
        redis_send(r, redis_role_reply, "ROLE");
    }
    if (r->handshake_left == 0)
        redis_set_up(r);
}

/* hiredis: the connection closed (hiredis frees ac after this returns). */
static void redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    struct redis *r = ac->data;
    if (r == NULL || r->ac != ac)
        return;
    char reason[192];
    if (r->drop_reason[0])
        snprintf(reason, sizeof reason, "%s", r->drop_reason);
    else if (r->relay && redistls_reason(r->relay)[0])
        snprintf(reason, sizeof reason, "%s", redistls_reason(r->relay));
    else if (status != REDIS_OK && ac->errstr[0])
        snprintf(reason, sizeof reason, "%s", ac->errstr);
    else
        snprintf(reason, sizeof reason, "connection closed");
    redis_failed(r, reason);
}

/* Timer: connect, AUTH and SELECT took too long. */
static void redis_connect_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct redis *r = arg;
    if (r->state == REDIS_STATE_CONNECTING || r->state == REDIS_STATE_HANDSHAKE)
        redis_drop(r, r->state == REDIS_STATE_CONNECTING ? "connect timeout"
                      : r->relay ? redis_relay_reason(r, redistls_up(r->relay)
                                                             ? "no answer through TLS"
                                                             : "no answer to the TLS handshake")
                                 : "no answer to AUTH or SELECT");
}

/* Timer: try to connect again. */
static void redis_reconnect_cb(evutil_socket_t fd, short what, void *arg)
{
    redis_connect(arg);
}

/* Start a connection attempt to r's address. */
static void redis_connect_addr(struct redis *r)
{
    redisAsyncContext *ac = r->relay  ? redisAsyncConnectUnix(redistls_path(r->relay))
                            : r->path ? redisAsyncConnectUnix(r->path)
                                      : redisAsyncConnect(r->host, r->port);
    if (ac == NULL) {
        redis_failed(r, "cannot allocate a connection");
        return;
    }
    if (ac->err) {
        char reason[192];
        snprintf(reason, sizeof reason, "%s", ac->errstr);
        redisAsyncFree(ac);
        redis_failed(r, reason);
        return;
    }
    ac->data = r;
    if (r->host && !r->relay) /* the relay keeps its TCP connection alive itself */
        redisEnableKeepAlive(&ac->c);
    redisLibeventAttach(ac, r->base);
    redisAsyncSetConnectCallback(ac, redis_on_connect);
    redisAsyncSetDisconnectCallback(ac, redis_on_disconnect);
    r->ac = ac;
    r->state = REDIS_STATE_CONNECTING;
    r->announced = false;
    r->drop_reason[0] = '\0';
    redis_timer_ms(r->connect_timer, REDIS_CONNECT_TIMEOUT_MS);
}

/* The Sentinels answered: connect to the master they named. */
static void redis_resolved(const char *host, int port, const char *err, void *arg)
{
    struct redis *r = arg;
    if (r->state != REDIS_STATE_RESOLVING || r->closing)
        return;
    if (err) {
        redis_failed(r, err);
        return;
    }
    if (r->host == NULL || strcmp(r->host, host) != 0) {
        free(r->host);
        r->host = xstrdup(host);
    }
    r->port = port;
    redis_set_where(r);
    redis_connect_addr(r);
}

/* Start a connection attempt: ask the Sentinels first when there are. */
static void redis_connect(struct redis *r)
{
    r->switched = false;
    if (r->sentinel == NULL) {
        redis_connect_addr(r);
        return;
    }
    r->state = REDIS_STATE_RESOLVING;
    sentinel_resolve(r->sentinel, redis_resolved, r);
}

/* The Sentinels announced a failover to host:port. */
static void redis_switched(const char *host, int port, void *arg)
{
    struct redis *r = arg;
    if (r->closing)
        return;
    r->backoff_ms = REDIS_BACKOFF_MIN_MS;
    if (r->state == REDIS_STATE_DOWN) {
        evtimer_del(r->reconnect_timer);
        redis_connect(r);
        return;
    }
    if (r->state == REDIS_STATE_RESOLVING)
        return; /* the answer under way names the new master, or the next one will */
    if (r->host && strcmp(r->host, host) == 0 && r->port == port)
        return;
    r->switched = true;
    if (!evtimer_pending(r->recheck_timer, NULL))
        redis_timer_ms(r->recheck_timer, 0);
}

/* Timer: the server refused a write as a replica, or the Sentinels named
 * another master: close the connection and ask the Sentinels again. */
static void redis_recheck_cb(evutil_socket_t fd, short what, void *arg)
{
    struct redis *r = arg;
    if (r->closing || r->state == REDIS_STATE_DOWN || r->state == REDIS_STATE_RESOLVING)
        return;
    r->backoff_ms = REDIS_BACKOFF_MIN_MS;
    redis_drop(r, r->switched ? "the Sentinels announced a new master"
                              : "the server answered READONLY: it is a replica now");
}

/* Free r's strings, wiping the password. */
static void redis_free_strings(struct redis *r)
{
    if (r->password) {
        explicit_bzero(r->password, strlen(r->password));
        free(r->password);
    }
    free(r->host);
    free(r->path);
    free(r->user);
    free(r->where);
}

struct redis *redis_new(struct event_base *base, const char *url, const char *tls_ca_file,
                        char *err, size_t errlen)
{
    return redis_new_sentinel(base, url, tls_ca_file, NULL, err, errlen);
}

struct redis *redis_new_sentinel(struct event_base *base, const char *url, const char *tls_ca_file,
                                 struct sentinel *sn, char *err, size_t errlen)
{
    struct redis *r = xcalloc(1, sizeof *r);
    r->base = base;
    r->fails_tail = &r->fails;
    r->backoff_ms = REDIS_BACKOFF_MIN_MS;
    r->sentinel = sn;
    int tls = redis_parse_url(r, url ? url : "", tls_ca_file, sn != NULL, err, errlen);
    if (tls == 1)
        r->relay = redistls_new(base, r->host, r->port, tls_ca_file, err, errlen);
    if (tls < 0 || (tls == 1 && !r->relay)) {
        redis_free_strings(r);
        free(r);
        return NULL;
    }
    r->recheck_timer = evtimer_new(base, redis_recheck_cb, r);
    if (sn)
        sentinel_watch(sn, redis_switched, r);
    r->reconnect_timer = evtimer_new(base, redis_reconnect_cb, r);
    r->connect_timer = evtimer_new(base, redis_connect_timeout_cb, r);
    r->fail_timer = evtimer_new(base, redis_fail_cb, r);
    r->ping_timer = event_new(base, -1, EV_PERSIST, redis_ping_cb, r);
    redis_timer_ms(r->ping_timer, REDIS_PING_MS);
    redis_timer_ms(r->reconnect_timer, 0); /* from the loop: after redis_set_role */
    return r;
}

void redis_set_role(struct redis *r, const char *role)
{
    r->role = role;
}

void redis_free(struct redis *r)
{
    if (r == NULL)
        return;
    r->closing = true;
    if (r->sentinel) {
        sentinel_cancel(r->sentinel, r);
        sentinel_unwatch(r->sentinel, r);
    }
    event_free(r->recheck_timer);
    event_free(r->ping_timer);
    event_free(r->reconnect_timer);
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        r->state = REDIS_STATE_DOWN;
        redisAsyncFree(ac);
    }
    event_free(r->connect_timer);
    redis_fail_cb(-1, 0, r);
    event_free(r->fail_timer);
    redistls_free(r->relay);
    redis_free_strings(r);
    free(r);
}

bool redis_ready(const struct redis *r)
{
    return r->state == REDIS_STATE_UP && r->last_pong_ms > 0 && !redis_stalled(r) &&
           clock_mono_ms() - r->last_pong_ms <= REDIS_READY_MS;
}

const char *redis_where(const struct redis *r)
{
    return r->where;
}

int redis_command(struct redis *r, redis_cb cb, void *arg, const char *fmt, ...)
{
    if (r->state != REDIS_STATE_UP || r->closing || redis_stalled(r)) {
        struct redis_cmd *c = xcalloc(1, sizeof *c);
        c->r = r;
        c->cb = cb;
        c->arg = arg;
        redis_defer_fail(r, c, redis_stalled(r) ? "redis not answering" : "redis not connected");
        return -1;
    }
    va_list ap;
    va_start(ap, fmt);
    int rc = redis_vsend(r, cb, arg, fmt, ap);
    va_end(ap);
    return rc;
}

/* A command context for cb, or NULL (cb told later) when nothing can be
 * sent now. */
static struct redis_cmd *redis_cmd_new(struct redis *r, redis_cb cb, void *arg)
{
    struct redis_cmd *c = xcalloc(1, sizeof *c);
    c->r = r;
    c->cb = cb;
    c->arg = arg;
    if (r->state != REDIS_STATE_UP || r->closing || r->ac == NULL) {
        redis_defer_fail(r, c, "redis not connected");
        return NULL;
    }
    if (redis_stalled(r)) {
        redis_defer_fail(r, c, "redis not answering");
        return NULL;
    }
    return c;
}

int redis_command_argv(struct redis *r, redis_cb cb, void *arg, int argc, const char **argv,
                       const size_t *argvlen)
{
    struct redis_cmd *c = redis_cmd_new(r, cb, arg);
    if (c == NULL)
        return -1;
    if (redisAsyncCommandArgv(r->ac, redis_reply_cb, c, argc, argv, argvlen) != REDIS_OK) {
        redis_defer_fail(r, c, "redis command not sent");
        return -1;
    }
    return 0;
}

int redis_command_formatted(struct redis *r, redis_cb cb, void *arg, const char *cmd, size_t len)
{
    struct redis_cmd *c = redis_cmd_new(r, cb, arg);
    if (c == NULL)
        return -1;
    if (redisAsyncFormattedCommand(r->ac, redis_reply_cb, c, cmd, len) != REDIS_OK) {
        redis_defer_fail(r, c, "redis command not sent");
        return -1;
    }
    return 0;
}

redisAsyncContext *redis_ctx(struct redis *r)
{
    return r->state == REDIS_STATE_UP ? r->ac : NULL;
}

/* A blocking connection to r's server, through a TLS relay (tls) or
 * straight, then AUTH, SELECT and, for a master the Sentinels named
 * (sentinel), ROLE: it must say it is the master. NULL with a reason in
 * err. */
static redisContext *redis_connect_sync_to(const struct redis *r, bool tls, const char *tls_ca_file,
                                           bool sentinel, int timeout_ms, char *err, size_t errlen)
{
    struct timeval tv = clock_timeval(timeout_ms);
    redisContext *c;
    if (tls) {
        char why[256];
        int fd = redistls_connect_sync(r->host, r->port, tls_ca_file, timeout_ms, why, sizeof why);
        if (fd < 0) {
            snprintf(err, errlen, "cannot connect to %s: %s", r->where, why);
            return NULL;
        }
        c = redisConnectFd(fd);
        if (c == NULL)
            close(fd);
    } else {
        c = r->path ? redisConnectUnixWithTimeout(r->path, tv)
                    : redisConnectWithTimeout(r->host, r->port, tv);
    }
    if (c == NULL || c->err) {
        snprintf(err, errlen, "cannot connect to %s: %s", r->where,
                 c ? c->errstr : "out of memory");
        goto fail;
    }
    redisSetTimeout(c, tv);
    redisReply *rep = NULL;
    if (r->password) {
        rep = r->user ? redisCommand(c, "AUTH %s %s", r->user, r->password)
                      : redisCommand(c, "AUTH %s", r->password);
        if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "%s: AUTH failed: %s", r->where, rep ? rep->str : c->errstr);
            goto fail_reply;
        }
        freeReplyObject(rep);
    }
    if (r->db) {
        rep = redisCommand(c, "SELECT %d", r->db);
        if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "%s: SELECT failed: %s", r->where, rep ? rep->str : c->errstr);
            goto fail_reply;
        }
        freeReplyObject(rep);
    }
    if (sentinel) {
        rep = redisCommand(c, "ROLE");
        if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
            rep->element[0]->type != REDIS_REPLY_STRING ||
            strcmp(rep->element[0]->str, "master") != 0) {
            snprintf(err, errlen, "%s: not the master (ROLE): %s", r->where,
                     rep == NULL                      ? c->errstr
                     : rep->type == REDIS_REPLY_ERROR ? rep->str
                     : rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
                             rep->element[0]->type == REDIS_REPLY_STRING
                         ? rep->element[0]->str
                         : "unexpected reply");
            goto fail_reply;
        }
        freeReplyObject(rep);
    }
    return c;
fail_reply:
    if (rep)
        freeReplyObject(rep);
fail:
    if (c)
        redisFree(c);
    return NULL;
}

redisContext *redis_connect_sync(const char *url, const char *tls_ca_file, int timeout_ms,
                                 char *err, size_t errlen)
{
    struct redis r = {0};
    int tls = redis_parse_url(&r, url ? url : "", tls_ca_file, false, err, errlen);
    redisContext *c =
        tls < 0 ? NULL
                : redis_connect_sync_to(&r, tls == 1, tls_ca_file, false, timeout_ms, err, errlen);
    redis_free_strings(&r);
    return c;
}

redisContext *redis_connect_sync_sentinel(const char *url, const char *tls_ca_file,
                                          const char *sentinels, const char *master,
                                          const char *password, int timeout_ms, char *err,
                                          size_t errlen)
{
    struct redis r = {0};
    int tls = redis_parse_url(&r, url ? url : "", tls_ca_file, true, err, errlen);
    redisContext *c = NULL;
    /* A replica named during a failover: the Sentinels are asked again,
     * three times at most, a second apart. */
    for (int attempt = 0; tls >= 0 && attempt < 3 && c == NULL; attempt++) {
        if (attempt > 0)
            sleep(1);
        char *host = NULL;
        int port = 0;
        if (sentinel_resolve_sync(sentinels, master, password, timeout_ms, &host, &port, err,
                                  errlen) < 0)
            break;
        free(r.host);
        r.host = host;
        r.port = port;
        redis_set_where(&r);
        c = redis_connect_sync_to(&r, tls == 1, tls_ca_file, true, timeout_ms, err, errlen);
    }
    redis_free_strings(&r);
    return c;
}
