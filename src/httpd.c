/* httpd: an HTTP/1.1 server on libevent bufferevents and http-parser. */
#include "httpd.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <http_parser.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#define HTTPD_LINGER_MS      2000         /* how long a closing connection drains unread input */
#define HTTPD_PRERESERVE_MAX (256 * 1024) /* bytes reserved for a body before it arrives */
/* TLS 1.2 suites: forward secrecy (ECDHE) and AEAD only. TLS 1.3 keeps
 * OpenSSL's default suites, which are all AEAD. */
#define HTTPD_TLS12_CIPHERS                                                                        \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

struct httpd {
    struct event_base *base;
    struct evconnlistener *listener;
    struct httpd_limits lim;
    httpd_handler_fn handler;
    httpd_reject_fn reject;
    void *arg;
    int64_t nconns;
    bool paused; /* listener disabled at max_connections */
    bool stopped;
    int port;
    struct httpd_conn *conns; /* every open connection */
    SSL_CTX *tls;             /* NULL: plain HTTP; else new connections speak TLS with it */
    bool internal;            /* left out of the connection metrics */
};

/* Offsets of one header in the connection's header buffer. */
struct httpd_hoff {
    size_t name_off, name_len, value_off, value_len;
};

enum httpd_state {
    HTTPD_IDLE,     /* between requests */
    HTTPD_READING,  /* a request is arriving */
    HTTPD_HANDLING, /* the handler has it */
    HTTPD_CLOSING,  /* answer written or being written, then close */
};

struct httpd_conn {
    struct httpd *h;
    struct bufferevent *bev;
    http_parser parser;
    enum httpd_state state;
    struct buf hbuf; /* request target, then header names and values */
    struct httpd_hoff *hoffs;
    size_t nhoffs, hcap;
    bool in_value;     /* the last header callback was a value */
    bool headers_done; /* on_headers_complete seen for this request */
    bool complete;     /* on_message_complete seen */
    bool keep_alive;
    bool in_process; /* httpd_conn_process is on the stack */
    bool rejecting;
    enum httpd_reject reject_why;
    size_t url_len;
    struct httpd_request req;
    httpd_abort_fn abort_fn;
    void *abort_arg;
    struct event *timer; /* read, idle, linger and TLS handshake deadlines */
    bool tls;            /* the bufferevent is a TLS one */
    bool handshaking;    /* TLS: the handshake has not completed yet */
    bool tls_shut;       /* TLS: close_notify sent */
    char peer[64];
    struct httpd_conn *prev, *next;
};

static http_parser_settings httpd_settings;

/* Out of memory inside OpenSSL or libevent: abort, as xmalloc does. */
static void httpd_oom(void)
{
    fprintf(stderr, "level=fatal event=out_of_memory where=httpd\n");
    abort();
}

void httpd_peer_name(const struct sockaddr *sa, char *out, size_t outlen)
{
    char host[48] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        evutil_inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        evutil_inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
    }
    snprintf(out, outlen, "%s:%d", host, port);
}

const char *httpd_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return status < 300 ? "OK" : status < 500 ? "Bad Request" : "Server Error";
    }
}

/* Arm the connection's timer for ms milliseconds (0 disarms it). */
static void httpd_timer(struct httpd_conn *c, int64_t ms)
{
    if (ms <= 0) {
        evtimer_del(c->timer);
        return;
    }
    struct timeval tv = clock_timeval(ms);
    evtimer_add(c->timer, &tv);
}

/* Forget the current request and get ready for the next one. */
static void httpd_reset_request(struct httpd_conn *c)
{
    /* An idle connection holds no request memory. */
    buf_free(&c->hbuf);
    free(c->hoffs);
    c->hoffs = NULL;
    c->hcap = 0;
    c->nhoffs = 0;
    c->in_value = false;
    c->headers_done = false;
    c->complete = false;
    c->url_len = 0;
    free(c->req.headers);
    buf_free(&c->req.body);
    memset(&c->req, 0, sizeof c->req);
    c->req.conn = c;
    c->req.peer = c->peer;
    c->req.method = "";
    c->req.url = "";
    c->req.path = "";
    c->abort_fn = NULL;
    c->abort_arg = NULL;
}

/* Close and free a connection; aborts a request the handler still holds. */
static void httpd_conn_free(struct httpd_conn *c)
{
    struct httpd *h = c->h;
    if (c->state == HTTPD_HANDLING && c->abort_fn)
        c->abort_fn(&c->req, c->abort_arg);
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    event_free(c->timer);
    bufferevent_free(c->bev);
    free(c->req.headers);
    buf_free(&c->req.body);
    buf_free(&c->hbuf);
    free(c->hoffs);
    free(c);
    h->nconns--;
    if (!h->internal)
        metrics_connections(-1);
    if (h->paused && !h->stopped && h->nconns < h->lim.max_connections) {
        evconnlistener_enable(h->listener);
        h->paused = false;
    }
}

/* Append header bytes, enforcing max_header_size; -1 when over it. */
static int httpd_hadd(struct httpd_conn *c, const char *at, size_t len)
{
    if (c->hbuf.len + len > c->h->lim.max_header_size) {
        c->rejecting = true;
        c->reject_why = HTTPD_REJECT_HEADERS;
        return -1;
    }
    buf_add(&c->hbuf, at, len);
    return 0;
}

/* http-parser: a request starts. */
static int httpd_on_message_begin(http_parser *p)
{
    struct httpd_conn *c = p->data;
    httpd_reset_request(c);
    c->state = HTTPD_READING;
    httpd_timer(c, c->h->lim.read_timeout_ms);
    return 0;
}

/* http-parser: part of the request target. */
static int httpd_on_url(http_parser *p, const char *at, size_t len)
{
    struct httpd_conn *c = p->data;
    if (httpd_hadd(c, at, len) < 0)
        return -1;
    c->url_len += len;
    return 0;
}

/* http-parser: part of a header name. */
static int httpd_on_header_field(http_parser *p, const char *at, size_t len)
{
    struct httpd_conn *c = p->data;
    if (c->headers_done) /* trailers: counted against the limit, then ignored */
        return c->hbuf.len + len > c->h->lim.max_header_size ? -1 : 0;
    if (c->nhoffs == 0 || c->in_value) {
        if (c->nhoffs >= c->h->lim.max_headers) {
            c->rejecting = true;
            c->reject_why = HTTPD_REJECT_HEADERS;
            return -1;
        }
        if (c->nhoffs == c->hcap) {
            c->hcap = c->hcap ? c->hcap * 2 : 16;
            c->hoffs = xrealloc(c->hoffs, c->hcap * sizeof *c->hoffs);
        }
        struct httpd_hoff *o = &c->hoffs[c->nhoffs++];
        o->name_off = c->hbuf.len;
        o->name_len = 0;
        o->value_off = 0;
        o->value_len = 0;
        c->in_value = false;
    }
    if (httpd_hadd(c, at, len) < 0)
        return -1;
    c->hoffs[c->nhoffs - 1].name_len += len;
    return 0;
}

/* http-parser: part of a header value. */
static int httpd_on_header_value(http_parser *p, const char *at, size_t len)
{
    struct httpd_conn *c = p->data;
    if (c->headers_done)
        return 0;
    struct httpd_hoff *o = &c->hoffs[c->nhoffs - 1];
    if (!c->in_value) {
        o->value_off = c->hbuf.len;
        c->in_value = true;
    }
    if (httpd_hadd(c, at, len) < 0)
        return -1;
    o->value_len += len;
    return 0;
}

/* True when header h (of request r) is named name. */
static bool httpd_is(const struct sigv4_header *h, const char *name)
{
    return util_ieq(h->name, h->name_len, name);
}

/* http-parser: the headers are complete; check limits, answer Expect. */
static int httpd_on_headers_complete(http_parser *p)
{
    struct httpd_conn *c = p->data;
    struct httpd_request *r = &c->req;
    c->headers_done = true;
    r->url_len = c->url_len;
    r->nheaders = c->nhoffs;
    r->headers = xcalloc(c->nhoffs ? c->nhoffs : 1, sizeof *r->headers);
    for (size_t i = 0; i < c->nhoffs; i++) {
        r->headers[i].name = c->hbuf.data + c->hoffs[i].name_off;
        r->headers[i].name_len = c->hoffs[i].name_len;
        r->headers[i].value = c->hbuf.data + c->hoffs[i].value_off;
        r->headers[i].value_len = c->hoffs[i].value_len;
    }
    r->method = http_method_str(p->method);
    /* hbuf holds the target, then names and values, none NUL-terminated:
     * append a terminated copy of the target for the handler. */
    char *url = xstrndup(c->hbuf.data, c->url_len);
    buf_add(&c->hbuf, url, c->url_len + 1);
    free(url);
    /* Recompute pointers: buf_add may have moved the buffer. */
    for (size_t i = 0; i < c->nhoffs; i++) {
        r->headers[i].name = c->hbuf.data + c->hoffs[i].name_off;
        r->headers[i].value = c->hbuf.data + c->hoffs[i].value_off;
    }
    r->url = c->hbuf.data + c->hbuf.len - c->url_len - 1;
    const char *q = memchr(r->url, '?', r->url_len);
    r->path = r->url;
    r->path_len = q ? (size_t)(q - r->url) : r->url_len;
    r->query = q ? q + 1 : NULL;
    r->query_len = q ? r->url_len - r->path_len - 1 : 0;

    int n_cl = 0, n_te = 0;
    for (size_t i = 0; i < r->nheaders; i++) {
        if (httpd_is(&r->headers[i], "content-length"))
            n_cl++;
        else if (httpd_is(&r->headers[i], "transfer-encoding"))
            n_te++;
    }
    if ((n_cl && n_te) || n_cl > 1 || n_te > 1) {
        c->rejecting = true;
        c->reject_why = HTTPD_REJECT_SMUGGLING;
        return -1;
    }
    /* No SES client sends a chunked body, and the chunk framing of the
     * http-parser build at hand is lenient (a chunk's missing CRLF is not
     * an error): a second request could hide in a body. So a body comes
     * with Content-Length, or not at all. */
    if (n_te) {
        c->rejecting = true;
        c->reject_why = HTTPD_REJECT_CHUNKED;
        return -1;
    }
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > c->h->lim.max_body) {
        c->rejecting = true;
        c->reject_why = HTTPD_REJECT_TOO_LARGE;
        return -1;
    }
    size_t elen;
    const char *expect = httpd_header(r, "expect", &elen);
    if (expect && p->http_minor >= 1 && util_ieq(expect, elen, "100-continue"))
        bufferevent_write(c->bev, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    /* Reserve for the announced body, but not more than a little up front:
     * a client that announces a large body pays in memory only as it sends. */
    if (p->content_length > 0 && p->content_length != ULLONG_MAX)
        buf_reserve(&r->body,
                    (size_t)(p->content_length < HTTPD_PRERESERVE_MAX ? p->content_length
                                                                      : HTTPD_PRERESERVE_MAX));
    return 0;
}

/* http-parser: part of the body. */
static int httpd_on_body(http_parser *p, const char *at, size_t len)
{
    struct httpd_conn *c = p->data;
    if (c->req.body.len + len > c->h->lim.max_body) {
        c->rejecting = true;
        c->reject_why = HTTPD_REJECT_TOO_LARGE;
        return -1;
    }
    buf_add(&c->req.body, at, len);
    return 0;
}

/* http-parser: the request is complete; pause until it is answered. */
static int httpd_on_message_complete(http_parser *p)
{
    struct httpd_conn *c = p->data;
    c->complete = true;
    c->keep_alive = http_should_keep_alive(p);
    http_parser_pause(p, 1);
    return 0;
}

/* Write a response and decide what happens to the connection. */
static void httpd_write_response(struct httpd_conn *c, int status,
                                 const struct httpd_header *headers, size_t nheaders,
                                 const char *body, size_t len, bool close_after)
{
    static time_t date_at;
    static char date[30];
    static struct buf head; /* reused: the loop is single-threaded */
    time_t now = time(NULL);
    if (now != date_at) {
        util_http_date(now, date);
        date_at = now;
    }
    buf_reset(&head);
    buf_printf(&head, "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Length: %zu\r\n", status,
               httpd_reason(status), date, len);
    for (size_t i = 0; i < nheaders; i++) {
        buf_adds(&head, headers[i].name);
        buf_add(&head, ": ", 2);
        buf_adds(&head, headers[i].value);
        buf_add(&head, "\r\n", 2);
    }
    if (close_after)
        buf_adds(&head, "Connection: close\r\n\r\n");
    else if (c->parser.http_major == 1 && c->parser.http_minor == 0)
        buf_adds(&head, "Connection: keep-alive\r\n\r\n");
    else
        buf_adds(&head, "\r\n");

    /* Write at once when nothing is queued: most answers leave in this one
     * call, without arming and disarming a write event. What the socket does
     * not take is queued on the bufferevent. */
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t done = 0, total = head.len + len;
    if (!c->tls && evbuffer_get_length(out) == 0) {
        struct iovec iov[2] = {{head.data, head.len}, {(void *)body, len}};
        ssize_t n = writev(bufferevent_getfd(c->bev), iov, len > 0 ? 2 : 1);
        if (n > 0)
            done = (size_t)n;
    }
    if (done < head.len)
        evbuffer_add(out, head.data + done, head.len - done);
    if (done < total && len > 0) {
        size_t off = done > head.len ? done - head.len : 0;
        evbuffer_add(out, body + off, len - off);
    }
}

/* Shut the write side of a connection whose output has drained; a TLS
 * connection sends its close_notify first (once, best effort). */
static void httpd_shut_write(struct httpd_conn *c)
{
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    if (fd < 0)
        return;
    if (c->tls && !c->handshaking && !c->tls_shut) {
        SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
        c->tls_shut = true;
        if (ssl && SSL_shutdown(ssl) < 0)
            ERR_clear_error(); /* the peer went first: nothing left to tell it */
    }
    shutdown(fd, SHUT_WR);
}

/* Enter the closing state: the answer drains, then the write side is shut
 * and unread input is discarded for a moment so the client sees the answer. */
static void httpd_close_after_write(struct httpd_conn *c)
{
    c->state = HTTPD_CLOSING;
    httpd_timer(c, HTTPD_LINGER_MS);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        httpd_shut_write(c);
}

static void httpd_conn_process(struct httpd_conn *c);

void httpd_respond(struct httpd_request *req, int status, const struct httpd_header *headers,
                   size_t nheaders, const char *body, size_t len)
{
    struct httpd_conn *c = req->conn;
    bool close_after = c->rejecting || !c->keep_alive || c->h->stopped;
    httpd_write_response(c, status, headers, nheaders, body, len, close_after);
    if (close_after) {
        httpd_close_after_write(c);
        return;
    }
    httpd_reset_request(c);
    c->state = HTTPD_IDLE;
    http_parser_pause(&c->parser, 0);
    httpd_timer(c, c->h->lim.idle_timeout_ms);
    if (!c->in_process)
        httpd_conn_process(c);
}

/* Count a refused or dropped connection of h in the metrics. */
static void httpd_count_rejected(const struct httpd *h, const char *reason)
{
    if (!h->internal)
        metrics_conn_rejected(reason);
}

/* Refuse the request being read, then close. */
static void httpd_reject_request(struct httpd_conn *c, enum httpd_reject why)
{
    static const char *const names[HTTPD_REJECT_COUNT] = {"bad_request",    "headers_too_large",
                                                          "body_too_large", "read_timeout",
                                                          "smuggling",      "transfer_encoding"};
    httpd_count_rejected(c->h, names[why]);
    log_event(LOG_INFO, "http_reject", "peer", c->peer, "reason", names[why], NULL);
    c->rejecting = true;
    c->state = HTTPD_HANDLING;
    c->in_process = true;
    c->h->reject(&c->req, why, c->h->arg);
    c->in_process = false;
}

/* Feed buffered input to the parser and dispatch complete requests. */
static void httpd_conn_process(struct httpd_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    c->in_process = true;
    while (c->state == HTTPD_IDLE || c->state == HTTPD_READING) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
            break;
        size_t n = http_parser_execute(&c->parser, &httpd_settings, v.iov_base, v.iov_len);
        evbuffer_drain(in, n);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED && c->complete) {
            c->state = HTTPD_HANDLING;
            httpd_timer(c, 0);
            c->h->handler(&c->req, c->h->arg);
            continue;
        }
        if (e != HPE_OK) {
            enum httpd_reject why = c->rejecting ? c->reject_why : HTTPD_REJECT_BAD_REQUEST;
            if (e == HPE_UNEXPECTED_CONTENT_LENGTH || e == HPE_INVALID_TRANSFER_ENCODING)
                why = HTTPD_REJECT_SMUGGLING;
            else if (e == HPE_HEADER_OVERFLOW)
                why = HTTPD_REJECT_HEADERS;
            c->in_process = false;
            httpd_reject_request(c, why);
            return;
        }
    }
    c->in_process = false;
}

/* bufferevent: input arrived. */
static void httpd_read_cb(struct bufferevent *bev, void *arg)
{
    struct httpd_conn *c = arg;
    if (c->state == HTTPD_CLOSING) {
        evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
        return;
    }
    httpd_conn_process(c);
}

/* bufferevent: output drained. */
static void httpd_write_cb(struct bufferevent *bev, void *arg)
{
    struct httpd_conn *c = arg;
    if (c->state == HTTPD_CLOSING)
        httpd_shut_write(c);
}

/* A TLS handshake failed (a client speaking plain HTTP, an unsupported
 * protocol version, no shared cipher): count it and say why. A connection
 * closed before saying anything (a TCP health check) is not counted. */
static void httpd_tls_failed(struct httpd_conn *c)
{
    unsigned long e = bufferevent_get_openssl_error(c->bev);
    if (e == 0 || ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
        return;
    const char *why = ERR_reason_error_string(e);
    httpd_count_rejected(c->h, "tls_handshake");
    log_event(LOG_INFO, "tls_handshake_failed", "peer", c->peer, "reason", why ? why : "unknown",
              NULL);
}

/* bufferevent: TLS handshake done, or EOF, error or timeout. */
static void httpd_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct httpd_conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        c->handshaking = false;
        if (c->state == HTTPD_IDLE)
            httpd_timer(c, c->h->lim.idle_timeout_ms);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT)
        httpd_count_rejected(c->h, "write_timeout");
    else if (c->handshaking)
        httpd_tls_failed(c);
    httpd_conn_free(c);
}

/* The connection's deadline passed. */
static void httpd_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct httpd_conn *c = arg;
    switch (c->state) {
    case HTTPD_READING:
        httpd_reject_request(c, HTTPD_REJECT_TIMEOUT);
        break;
    case HTTPD_IDLE:
        if (c->handshaking) {
            httpd_count_rejected(c->h, "tls_handshake_timeout");
            log_event(LOG_INFO, "tls_handshake_failed", "peer", c->peer, "reason", "timeout", NULL);
        } else {
            httpd_count_rejected(c->h, "idle_timeout");
            httpd_shut_write(c);
        }
        httpd_conn_free(c);
        break;
    case HTTPD_CLOSING:
        httpd_conn_free(c);
        break;
    case HTTPD_HANDLING:
        break;
    }
}

/* A connection arrived. */
static void httpd_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                            int salen, void *arg)
{
    struct httpd *h = arg;
    struct httpd_conn *c = xcalloc(1, sizeof *c);
    c->h = h;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (h->tls) {
        /* The SSL holds its own reference to the context: a reload that
         * replaces h->tls leaves this connection on the one it started with. */
        SSL *ssl = SSL_new(h->tls);
        if (ssl == NULL)
            httpd_oom();
        c->bev = bufferevent_openssl_socket_new(h->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                BEV_OPT_CLOSE_ON_FREE);
        c->tls = true;
        c->handshaking = true;
    } else {
        c->bev = bufferevent_socket_new(h->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    if (c->bev == NULL)
        httpd_oom();
    c->timer = evtimer_new(h->base, httpd_timer_cb, c);
    httpd_peer_name(sa, c->peer, sizeof c->peer);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    httpd_reset_request(c);
    c->state = HTTPD_IDLE;
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->nconns++;
    if (!h->internal)
        metrics_connections(1);
    bufferevent_setcb(c->bev, httpd_read_cb, httpd_write_cb, httpd_event_cb, c);
    struct timeval wtv = clock_timeval(h->lim.read_timeout_ms);
    bufferevent_set_timeouts(c->bev, NULL, &wtv);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    /* A TLS handshake must complete within read_timeout. */
    httpd_timer(c, c->handshaking ? h->lim.read_timeout_ms : h->lim.idle_timeout_ms);
    if (h->nconns >= h->lim.max_connections) {
        evconnlistener_disable(h->listener);
        h->paused = true;
        httpd_count_rejected(h, "max_connections");
    }
}

/* The listener failed (e.g. out of file descriptors): pause, then resume. */
static void httpd_accept_error_cb(struct evconnlistener *l, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();
    log_event(LOG_WARN, "accept_failed", "error", evutil_socket_error_to_string(err), NULL);
}

struct httpd *httpd_new(struct event_base *base, const char *addr,
                        const struct httpd_limits *limits, httpd_handler_fn handler,
                        httpd_reject_fn reject, void *arg, char *err, size_t errlen)
{
    httpd_settings.on_message_begin = httpd_on_message_begin;
    httpd_settings.on_url = httpd_on_url;
    httpd_settings.on_header_field = httpd_on_header_field;
    httpd_settings.on_header_value = httpd_on_header_value;
    httpd_settings.on_headers_complete = httpd_on_headers_complete;
    httpd_settings.on_body = httpd_on_body;
    httpd_settings.on_message_complete = httpd_on_message_complete;
    http_parser_set_max_header_size((uint32_t)(limits->max_header_size + 1024));

    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sslen) < 0) {
        snprintf(err, errlen, "cannot parse listen address '%s'", addr);
        return NULL;
    }
    struct httpd *h = xcalloc(1, sizeof *h);
    h->base = base;
    h->lim = *limits;
    h->handler = handler;
    h->reject = reject;
    h->arg = arg;
    h->listener = evconnlistener_new_bind(
        base, httpd_accept_cb, h, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
        4096, (struct sockaddr *)&ss, sslen);
    if (h->listener == NULL) {
        snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
        free(h);
        return NULL;
    }
    evconnlistener_set_error_cb(h->listener, httpd_accept_error_cb);
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (getsockname(evconnlistener_get_fd(h->listener), (struct sockaddr *)&bound, &blen) == 0)
        h->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                    : ((struct sockaddr_in *)&bound)->sin_port);
    return h;
}

/* OpenSSL's passphrase callback: encrypted keys are refused rather than
 * prompted for on the terminal. */
static int httpd_tls_no_passphrase(char *buf, int size, int rwflag, void *arg)
{
    return 0;
}

/* The reason of OpenSSL's first queued error, the most specific one
 * (clearing the error queue). */
static const char *httpd_tls_reason(char *out, size_t outlen)
{
    unsigned long e = ERR_peek_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(out, outlen, "%s", r ? r : "unknown error");
    ERR_clear_error();
    return out;
}

/* A server context for cert (PEM, leaf first, then the chain) and key (PEM).
 * Returns NULL with a reason naming the file in err. Never puts key
 * material in err. */
SSL_CTX *httpd_tls_ctx_new(const char *cert, const char *key, char *err, size_t errlen)
{
    char why[160];
    FILE *fp = fopen(cert, "r");
    if (fp == NULL) {
        snprintf(err, errlen, "tls_cert %s: %s", cert, strerror(errno));
        return NULL;
    }
    fclose(fp);
    fp = fopen(key, "r");
    if (fp == NULL) {
        snprintf(err, errlen, "tls_key %s: %s", key, strerror(errno));
        return NULL;
    }
    ERR_clear_error();
    EVP_PKEY *pkey = PEM_read_PrivateKey(fp, NULL, httpd_tls_no_passphrase, NULL);
    fclose(fp);
    if (pkey == NULL) {
        snprintf(err, errlen, "tls_key %s: cannot load a PEM private key (%s)", key,
                 httpd_tls_reason(why, sizeof why));
        return NULL;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        httpd_oom();
    SSL_CTX_set_default_passwd_cb(ctx, httpd_tls_no_passphrase);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_set_cipher_list(ctx, HTTPD_TLS12_CIPHERS) != 1) {
        snprintf(err, errlen, "TLS 1.2 cipher list refused (%s)",
                 httpd_tls_reason(why, sizeof why));
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(err, errlen, "tls_cert %s: cannot load a PEM certificate chain (%s)", cert,
                 httpd_tls_reason(why, sizeof why));
        goto fail;
    }
    X509 *leaf = SSL_CTX_get0_certificate(ctx);
    if (leaf == NULL || X509_check_private_key(leaf, pkey) != 1) {
        ERR_clear_error();
        snprintf(err, errlen, "tls_key %s does not match the certificate in tls_cert %s", key,
                 cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "tls_key %s: unusable private key (%s)", key,
                 httpd_tls_reason(why, sizeof why));
        goto fail;
    }
    EVP_PKEY_free(pkey);
    return ctx;
fail:
    EVP_PKEY_free(pkey);
    SSL_CTX_free(ctx);
    return NULL;
}

int httpd_set_tls(struct httpd *h, const char *cert, const char *key, char *err, size_t errlen)
{
    SSL_CTX *ctx = httpd_tls_ctx_new(cert, key, err, errlen);
    if (ctx == NULL)
        return -1;
    SSL_CTX_free(h->tls); /* connections still on it hold their own reference */
    h->tls = ctx;
    return 0;
}

int httpd_port(const struct httpd *h)
{
    return h->port;
}

void httpd_stop_accepting(struct httpd *h)
{
    h->stopped = true;
    evconnlistener_disable(h->listener);
}

void httpd_free(struct httpd *h)
{
    if (h == NULL)
        return;
    h->stopped = true;
    while (h->conns)
        httpd_conn_free(h->conns);
    evconnlistener_free(h->listener);
    SSL_CTX_free(h->tls);
    free(h);
}

void httpd_drop_body(struct httpd_request *req)
{
    buf_free(&req->body);
}

void httpd_set_abort(struct httpd_request *req, httpd_abort_fn fn, void *arg)
{
    req->conn->abort_fn = fn;
    req->conn->abort_arg = arg;
}

const char *httpd_header(const struct httpd_request *req, const char *name, size_t *len)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        if (httpd_is(&req->headers[i], name)) {
            if (len)
                *len = req->headers[i].value_len;
            return req->headers[i].value;
        }
    }
    return NULL;
}

/* Public: req as a sigv4_request. */
void httpd_sigv4_request(const struct httpd_request *req, const char *payload_hash,
                         struct sigv4_request *out)
{
    *out = (struct sigv4_request){
        .method = req->method,
        .path = req->path,
        .path_len = req->path_len,
        .query = req->query,
        .query_len = req->query_len,
        .headers = req->headers,
        .nheaders = req->nheaders,
        .payload_hash = payload_hash,
        .normalize_path = true,
    };
}

/* Public: leave h's connections out of the connection metrics. */
void httpd_set_internal(struct httpd *h)
{
    h->internal = true;
}
