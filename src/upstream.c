/* upstream: libcurl multi-socket calls driven by libevent. */
#include "upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "log.h"

#define UPSTREAM_POOL_MAX 256 /* idle easy handles kept for reuse */

struct upstream {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    int64_t timeout_ms;
    size_t max_response;
    char *ca_file;
    char *pin;     /* CURLOPT_PINNEDPUBLICKEY, or NULL */
    char *noproxy; /* CURLOPT_NOPROXY, or NULL (libcurl reads no_proxy) */
    CURL *pool[UPSTREAM_POOL_MAX];
    size_t npool;
    struct upstream_call *calls; /* in flight */
    size_t ncalls;
    bool healthy;
};

struct upstream_call {
    struct upstream *u;
    CURL *easy;
    struct curl_slist *headers;
    upstream_cb cb;
    void *arg;
    struct upstream_response res;
    char errbuf[CURL_ERROR_SIZE];
    bool too_large;
    const char *body; /* borrowed from the caller */
    size_t body_len, body_off;
    struct upstream_body src; /* src.read set: the body is produced, not body */
    struct upstream_call *prev, *next;
};

/* The event watching one socket curl uses, and what it watches. */
struct upstream_sock {
    struct event *ev;
    short kind; /* EV_READ / EV_WRITE, plus EV_PERSIST */
};

/* Copy a header value (after "name:") into dst, trimmed. */
static void upstream_header_value(const char *p, size_t n, char *dst, size_t dstlen)
{
    while (n > 0 && (*p == ' ' || *p == '\t')) {
        p++;
        n--;
    }
    while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == '\n' || p[n - 1] == ' '))
        n--;
    if (n >= dstlen)
        n = dstlen - 1;
    memcpy(dst, p, n);
    dst[n] = '\0';
}

/* curl: one response header line. */
static size_t upstream_header_cb(char *p, size_t size, size_t nitems, void *arg)
{
    struct upstream_call *c = arg;
    size_t n = size * nitems;
    if (n >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        /* A new status line (after 100 Continue): forget earlier headers. */
        c->res.content_type[0] = c->res.request_id[0] = c->res.error_type[0] = '\0';
        return n;
    }
    static const struct {
        const char *name;
        size_t off;
    } wanted[] = {
        {"content-type:", offsetof(struct upstream_response, content_type)},
        {"x-amzn-requestid:", offsetof(struct upstream_response, request_id)},
        {"x-amzn-errortype:", offsetof(struct upstream_response, error_type)},
    };
    for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
        size_t l = strlen(wanted[i].name);
        if (n > l && strncasecmp(p, wanted[i].name, l) == 0) {
            upstream_header_value(p + l, n - l, (char *)&c->res + wanted[i].off, 128);
            break;
        }
    }
    return n;
}

/* curl: part of the response body. */
static size_t upstream_write_cb(char *p, size_t size, size_t nitems, void *arg)
{
    struct upstream_call *c = arg;
    size_t n = size * nitems;
    if (c->res.body.len + n > c->u->max_response) {
        c->too_large = true;
        return 0; /* makes curl fail the transfer */
    }
    buf_add(&c->res.body, p, n);
    return n;
}

/* curl: the next part of the request body. */
static size_t upstream_read_cb(char *p, size_t size, size_t nitems, void *arg)
{
    struct upstream_call *c = arg;
    if (c->res.sent_at.tv_sec == 0 && c->res.sent_at.tv_nsec == 0)
        clock_mono_ts(&c->res.sent_at);
    size_t n = size * nitems, left = c->body_len - c->body_off;
    if (n > left)
        n = left;
    if (c->src.read != NULL)
        n = c->src.read(c->src.arg, p, n);
    else
        memcpy(p, c->body + c->body_off, n);
    c->body_off += n;
    return n;
}

/* curl: rewind the body. Only allowed before any of it went out: libcurl
 * would otherwise resend a request on its own when a reused connection
 * closes before an answer, and the upstream may have acted on the first one.
 * Refused, the transfer fails and the caller (the client, or the queue,
 * which records it) decides whether to send again. */
static int upstream_seek_cb(void *arg, curl_off_t offset, int origin)
{
    struct upstream_call *c = arg;
    if (offset == 0 && origin == SEEK_SET && c->body_off == 0) {
        if (c->src.rewind != NULL)
            c->src.rewind(c->src.arg);
        return CURL_SEEKFUNC_OK;
    }
    return CURL_SEEKFUNC_CANTSEEK;
}

/* Release a finished or cancelled call; its easy handle goes back to the pool. */
static void upstream_call_free(struct upstream_call *c)
{
    struct upstream *u = c->u;
    if (c->prev)
        c->prev->next = c->next;
    else
        u->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    u->ncalls--;
    if (u->npool < UPSTREAM_POOL_MAX) {
        curl_easy_reset(c->easy);
        u->pool[u->npool++] = c->easy;
    } else {
        curl_easy_cleanup(c->easy);
    }
    curl_slist_free_all(c->headers);
    buf_free(&c->res.body);
    free(c);
}

/* Hand finished transfers to their callbacks. */
static void upstream_check_done(struct upstream *u)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(u->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct upstream_call *c;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
        CURLcode rc = msg->data.result;
        curl_multi_remove_handle(u->multi, c->easy);
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &c->res.status);
        curl_easy_getinfo(c->easy, CURLINFO_TOTAL_TIME, &c->res.seconds);
        if (rc == CURLE_OK) {
            c->res.error = UPSTREAM_OK;
        } else {
            if (c->too_large)
                c->res.error = UPSTREAM_ERR_TOO_LARGE;
            else if (rc == CURLE_OPERATION_TIMEDOUT)
                c->res.error = UPSTREAM_ERR_TIMEOUT;
            else if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
                     rc == CURLE_COULDNT_RESOLVE_PROXY)
                c->res.error = UPSTREAM_ERR_CONNECT;
            else
                c->res.error = UPSTREAM_ERR_OTHER;
            snprintf(c->res.errmsg, sizeof c->res.errmsg, "%s",
                     c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
            c->res.status = 0;
        }
        u->healthy = c->res.error == UPSTREAM_OK || c->res.error == UPSTREAM_ERR_TOO_LARGE ||
                     c->res.error == UPSTREAM_ERR_OTHER;
        c->cb(&c->res, c->arg);
        upstream_call_free(c);
    }
}

/* libevent: a socket curl watches is ready. */
static void upstream_event_cb(evutil_socket_t fd, short what, void *arg)
{
    struct upstream *u = arg;
    int flags = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(u->multi, fd, flags, &running);
    upstream_check_done(u);
}

/* libevent: curl's timeout expired. */
static void upstream_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct upstream *u = arg;
    int running;
    curl_multi_socket_action(u->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    upstream_check_done(u);
}

/* curl: watch, change or forget a socket. */
static int upstream_socket_cb(CURL *easy, curl_socket_t s, int what, void *uarg, void *sarg)
{
    struct upstream *u = uarg;
    struct upstream_sock *us = sarg;
    if (what == CURL_POLL_REMOVE) {
        if (us) {
            event_free(us->ev);
            free(us);
            curl_multi_assign(u->multi, s, NULL);
        }
        return 0;
    }
    short kind = (short)(EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) |
                         (what & CURL_POLL_OUT ? EV_WRITE : 0));
    if (us == NULL) {
        us = xcalloc(1, sizeof *us);
        us->ev = event_new(u->base, s, kind, upstream_event_cb, u);
        curl_multi_assign(u->multi, s, us);
    } else if (us->kind == kind) {
        return 0; /* already watching exactly this */
    } else {
        event_del(us->ev);
        event_assign(us->ev, u->base, s, kind, upstream_event_cb, u);
    }
    us->kind = kind;
    event_add(us->ev, NULL);
    return 0;
}

/* curl: set or clear the single timer. */
static int upstream_timer_set_cb(CURLM *multi, long timeout_ms, void *arg)
{
    struct upstream *u = arg;
    if (timeout_ms < 0) {
        evtimer_del(u->timer);
        return 0;
    }
    struct timeval tv = clock_timeval(timeout_ms);
    evtimer_add(u->timer, &tv);
    return 0;
}

struct upstream *upstream_new(struct event_base *base, int64_t timeout_ms, size_t max_response,
                              const char *ca_file)
{
    struct upstream *u = xcalloc(1, sizeof *u);
    u->base = base;
    u->timeout_ms = timeout_ms;
    u->max_response = max_response;
    u->ca_file = ca_file && *ca_file ? xstrdup(ca_file) : NULL;
    u->healthy = true;
    u->multi = curl_multi_init();
    u->timer = evtimer_new(base, upstream_timer_cb, u);
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, upstream_socket_cb);
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, upstream_timer_set_cb);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS, (long)UPSTREAM_MAX_CONNECTIONS);
    /* Calls beyond this many connections wait for one (thousands of
     * clients at once must not open thousands of connections to SES). */
    curl_multi_setopt(u->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)UPSTREAM_MAX_CONNECTIONS);
    return u;
}

void upstream_free(struct upstream *u)
{
    if (u == NULL)
        return;
    while (u->calls) {
        curl_multi_remove_handle(u->multi, u->calls->easy);
        upstream_call_free(u->calls);
    }
    for (size_t i = 0; i < u->npool; i++)
        curl_easy_cleanup(u->pool[i]);
    curl_multi_cleanup(u->multi);
    event_free(u->timer);
    free(u->ca_file);
    free(u->pin);
    free(u->noproxy);
    free(u);
}

/* Set up a call and hand it to libcurl's multi handle. */
static struct upstream_call *upstream_start_call(struct upstream *u, const char *method,
                                                 const char *url, struct curl_slist *headers,
                                                 const char *body, const struct upstream_body *src,
                                                 size_t len, upstream_cb cb, void *arg)
{
    struct upstream_call *c = xcalloc(1, sizeof *c);
    if (src != NULL)
        c->src = *src;
    c->u = u;
    c->easy = u->npool > 0 ? u->pool[--u->npool] : curl_easy_init();
    if (c->easy == NULL) {
        fprintf(stderr, "level=fatal event=curl_easy_init_failed\n");
        abort();
    }
    c->headers = headers;
    c->cb = cb;
    c->arg = arg;
    CURL *e = c->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, upstream_write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, upstream_header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)u->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(u->timeout_ms < 10000 ? u->timeout_ms : 10000));
    if (u->pin) {
        /* the peer is known by its key alone */
        curl_easy_setopt(e, CURLOPT_PINNEDPUBLICKEY, u->pin);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    } else {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    }
    if (u->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, u->ca_file);
    if (u->noproxy)
        curl_easy_setopt(e, CURLOPT_NOPROXY, u->noproxy);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "sesgate/" SESGATE_VERSION);
    if (strcmp(method, "GET") == 0 && len == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else {
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        if (len > 0 || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
            c->body = len ? body : "";
            c->body_len = len;
            curl_easy_setopt(e, CURLOPT_POST, 1L);
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
            curl_easy_setopt(e, CURLOPT_READFUNCTION, upstream_read_cb);
            curl_easy_setopt(e, CURLOPT_READDATA, c);
            curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, upstream_seek_cb);
            curl_easy_setopt(e, CURLOPT_SEEKDATA, c);
        }
    }
    c->next = u->calls;
    if (u->calls)
        u->calls->prev = c;
    u->calls = c;
    u->ncalls++;
    curl_multi_add_handle(u->multi, e);
    return c;
}

struct upstream_call *upstream_start_body(struct upstream *u, const char *method, const char *url,
                                          struct curl_slist *headers,
                                          const struct upstream_body *src, size_t len,
                                          upstream_cb cb, void *arg)
{
    return upstream_start_call(u, method, url, headers, "", src, len, cb, arg);
}

struct upstream_call *upstream_start(struct upstream *u, const char *method, const char *url,
                                     struct curl_slist *headers, const char *body, size_t len,
                                     upstream_cb cb, void *arg)
{
    return upstream_start_call(u, method, url, headers, body, NULL, len, cb, arg);
}

void upstream_cancel(struct upstream_call *c)
{
    curl_multi_remove_handle(c->u->multi, c->easy);
    upstream_call_free(c);
}

void upstream_set_pin(struct upstream *u, const char *pin)
{
    free(u->pin);
    u->pin = pin ? xstrdup(pin) : NULL;
}

void upstream_set_noproxy(struct upstream *u, const char *hosts)
{
    free(u->noproxy);
    u->noproxy = hosts ? xstrdup(hosts) : NULL;
}

bool upstream_healthy(const struct upstream *u)
{
    return u->healthy;
}

size_t upstream_inflight(const struct upstream *u)
{
    return u->ncalls;
}
