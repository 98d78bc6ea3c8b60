/* redistls: TLS sessions to Redis, relayed to hiredis over a private socket. */
#include "redistls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "clock.h"
#include "log.h"

/* Bytes queued toward one side before the other side stops being read
 * (TEST_SESGATE_REDISTLS_HIGH_WATER=N sets another, so that a test reaches it). */
#define REDISTLS_HIGH_WATER (1024 * 1024)

struct redistls_relay;

/* One hiredis connection and its TLS connection to Redis. */
struct redistls_session {
    struct redistls *t;
    struct bufferevent *plain;    /* hiredis's side */
    struct bufferevent *tls;      /* Redis's side; NULL before and once closed */
    struct evutil_addrinfo *ai;   /* the host's addresses (owned) */
    struct evutil_addrinfo *next; /* the next one to try */
    int connfd;                   /* the TCP connect(2) under way, or -1 */
    struct event *connev;         /* its completion */
    struct evbuffer *pending;     /* what hiredis sent before the TLS session existed */
    bool up;                      /* the TLS handshake is done */
    bool flushing;                /* Redis closed: plain closes once written out */
    struct redistls_session *prev_s, *next_s;
};

struct redistls {
    struct event_base *base;
    SSL_CTX *ctx;
    char *host;
    int port;
    char *dir;  /* the private directory; NULL for a blocking relay */
    char *path; /* its socket */
    struct evconnlistener *listener;
    struct redistls_session *sessions;
    struct redistls_relay *relay; /* the blocking relay this belongs to, or NULL */
    size_t high_water;            /* REDISTLS_HIGH_WATER, or the test's */
    bool up;                      /* the newest session finished its TLS handshake */
    char reason[256];
};

/* A blocking connection's relay thread. */
struct redistls_relay {
    pthread_t thread;
    struct redistls *t;
    int plainfd; /* the relay's end of the socketpair; -1 once it is being closed */
    int tcpfd;
    SSL *ssl;
    struct redistls_relay *next;
};

static pthread_mutex_t redistls_relays_lock = PTHREAD_MUTEX_INITIALIZER;
static struct redistls_relay *redistls_relays;
static pthread_once_t redistls_atexit_once = PTHREAD_ONCE_INIT;

static void redistls_session_free(struct redistls_session *s);
static int redistls_session_connect(struct redistls_session *s);

/* The first OpenSSL error queued (and clear the queue), as text. */
static void redistls_ssl_error(unsigned long e, char *out, size_t n)
{
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    if (r)
        snprintf(out, n, "%s", r);
    else if (e)
        ERR_error_string_n(e, out, n);
    else
        snprintf(out, n, "unknown TLS error");
}

/* A TLS context that verifies the server against ca_file or the system's CAs. */
static SSL_CTX *redistls_ctx_new(const char *ca_file, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "cannot make a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Redis closing without close_notify (a restart, a crash) is an end of
     * stream: RESP replies carry their length, so hiredis still tells a cut
     * reply from a whole one. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    ERR_clear_error();
    bool file = ca_file && ca_file[0];
    int ok = file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                  : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        char e[160];
        redistls_ssl_error(ERR_get_error(), e, sizeof e);
        ERR_clear_error();
        if (file)
            snprintf(err, errlen, "[redis] tls_ca_file %s: no CA certificate could be read (%s)",
                     ca_file, e);
        else
            snprintf(err, errlen, "the system's CA certificates could not be read (%s)", e);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* A TLS client session checking the certificate's name against t->host: an
 * IP address against its IP addresses, a DNS name (also sent as SNI)
 * against its DNS names. */
static SSL *redistls_ssl_new(const struct redistls *t)
{
    SSL *ssl = SSL_new(t->ctx);
    if (ssl == NULL) {
        log_event(LOG_ERROR, "out_of_memory", "what", "TLS session", NULL);
        abort();
    }
    unsigned char ip[16];
    if (inet_pton(AF_INET, t->host, ip) == 1 || inet_pton(AF_INET6, t->host, ip) == 1) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), t->host);
    } else {
        SSL_set_tlsext_host_name(ssl, t->host);
        X509_VERIFY_PARAM_set_hostflags(SSL_get0_param(ssl), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        SSL_set1_host(ssl, t->host);
    }
    return ssl;
}

/* Why a TLS connection failed: the certificate check, else the first TLS
 * error e, else the socket error sockerr, else an end of stream. */
static void redistls_failure(SSL *ssl, unsigned long e, int sockerr, char *out, size_t n)
{
    long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    char s[160];
    if (v != X509_V_OK) {
        snprintf(out, n, "TLS certificate verify failed: %s", X509_verify_cert_error_string(v));
    } else if (e) {
        redistls_ssl_error(e, s, sizeof s);
        snprintf(out, n, "TLS failed: %s", s);
    } else if (sockerr) {
        snprintf(out, n, "%s", strerror(sockerr));
    } else {
        snprintf(out, n, "connection closed");
    }
}

/* Turn on TCP keepalive, so a vanished peer is found out. */
static void redistls_keepalive(int fd)
{
    int on = 1, idle = 15, intvl = 5, cnt = 3;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
}

/* Move what from has read into to's output; stop reading from while to
 * has more than t->high_water queued (to's write callback resumes). */
static void redistls_pump(const struct redistls *t, struct bufferevent *from,
                          struct bufferevent *to)
{
    struct evbuffer *out = bufferevent_get_output(to);
    evbuffer_add_buffer(out, bufferevent_get_input(from));
    if (evbuffer_get_length(out) > t->high_water) {
        bufferevent_disable(from, EV_READ);
        bufferevent_setwatermark(to, EV_WRITE, t->high_water / 2, 0);
    }
}

/* Redis's side is gone: close hiredis's side once what Redis sent is
 * written out to it. */
static void redistls_session_close_tls(struct redistls_session *s, const char *reason)
{
    snprintf(s->t->reason, sizeof s->t->reason, "%s", reason);
    if (s->tls) {
        bufferevent_free(s->tls);
        s->tls = NULL;
    }
    if (evbuffer_get_length(bufferevent_get_output(s->plain)) == 0) {
        redistls_session_free(s);
        return;
    }
    s->flushing = true;
    bufferevent_disable(s->plain, EV_READ);
    bufferevent_setwatermark(s->plain, EV_WRITE, 0, 0);
}

/* hiredis sent something: on to Redis. */
static void redistls_plain_read(struct bufferevent *bev, void *arg)
{
    struct redistls_session *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (s->tls) {
        redistls_pump(s->t, bev, s->tls);
    } else if (s->connfd >= 0) { /* kept until the TLS session exists */
        evbuffer_add_buffer(s->pending, in);
        if (evbuffer_get_length(s->pending) > s->t->high_water)
            bufferevent_disable(bev, EV_READ);
    } else {
        evbuffer_drain(in, evbuffer_get_length(in));
    }
}

/* hiredis's side drained below the watermark (or entirely). */
static void redistls_plain_write(struct bufferevent *bev, void *arg)
{
    struct redistls_session *s = arg;
    if (s->flushing) {
        redistls_session_free(s);
        return;
    }
    bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
    if (s->tls)
        bufferevent_enable(s->tls, EV_READ);
}

/* hiredis closed its side (or it failed): close the TLS connection too. */
static void redistls_plain_event(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        redistls_session_free(arg);
}

/* Redis sent something: on to hiredis. */
static void redistls_tls_read(struct bufferevent *bev, void *arg)
{
    struct redistls_session *s = arg;
    redistls_pump(s->t, bev, s->plain);
}

/* Redis's side drained below the watermark. */
static void redistls_tls_write(struct bufferevent *bev, void *arg)
{
    struct redistls_session *s = arg;
    bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
    if (!s->flushing)
        bufferevent_enable(s->plain, EV_READ);
}

/* The TLS connection is up, failed, or closed. */
static void redistls_tls_event(struct bufferevent *bev, short what, void *arg)
{
    struct redistls_session *s = arg;
    if (what & BEV_EVENT_CONNECTED) {
        s->up = true;
        s->t->up = true;
        redistls_keepalive(bufferevent_getfd(bev));
        return;
    }
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
        return;
    int sockerr = (what & BEV_EVENT_ERROR) ? EVUTIL_SOCKET_ERROR() : 0;
    unsigned long e = bufferevent_get_openssl_error(bev);
    while (bufferevent_get_openssl_error(bev) != 0)
        ;
    if (ERR_GET_LIB(e) == 0)
        e = 0; /* libevent's record of SSL_ERROR_SYSCALL: the socket's error says more */
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    char reason[256];
    if (s->up) {
        if (what & BEV_EVENT_EOF)
            snprintf(reason, sizeof reason, "closed by Redis");
        else
            redistls_failure(NULL, e, sockerr, reason, sizeof reason);
        redistls_session_close_tls(s, reason);
        return;
    }
    if ((ssl && SSL_get_verify_result(ssl) != X509_V_OK) || e != 0 || sockerr != 0)
        redistls_failure(ssl, e, sockerr, reason, sizeof reason);
    else
        snprintf(reason, sizeof reason, "connection closed during the TLS handshake");
    redistls_session_close_tls(s, reason);
}

/* The TCP connection is made: start the TLS session on it, with what
 * hiredis sent meanwhile. */
static void redistls_session_start_tls(struct redistls_session *s)
{
    int fd = s->connfd;
    s->connfd = -1;
    s->t->reason[0] = '\0'; /* an earlier address's failure */
    s->tls = bufferevent_openssl_socket_new(s->t->base, fd, redistls_ssl_new(s->t),
                                            BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (s->tls == NULL) {
        log_event(LOG_ERROR, "out_of_memory", "what", "TLS bufferevent", NULL);
        abort();
    }
    bufferevent_openssl_set_allow_dirty_shutdown(s->tls, 1);
    bufferevent_setcb(s->tls, redistls_tls_read, redistls_tls_write, redistls_tls_event, s);
    evbuffer_add_buffer(bufferevent_get_output(s->tls), s->pending);
    bufferevent_enable(s->tls, EV_READ | EV_WRITE);
    bufferevent_enable(s->plain, EV_READ);
}

/* The connect(2) under way finished: TLS on it, or the next address. */
static void redistls_session_connected(evutil_socket_t fd, short what, void *arg)
{
    struct redistls_session *s = arg;
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
        soerr = errno;
    event_free(s->connev);
    s->connev = NULL;
    if (soerr == 0) {
        redistls_session_start_tls(s);
        return;
    }
    evutil_closesocket(s->connfd);
    s->connfd = -1;
    snprintf(s->t->reason, sizeof s->t->reason, "%s", strerror(soerr));
    if (redistls_session_connect(s) < 0)
        redistls_session_free(s);
}

/* Start a TCP connection to the next address of the host (a connect(2)
 * that fails at once tries the one after); 0, or -1 with t->reason set and
 * nothing left to try. */
static int redistls_session_connect(struct redistls_session *s)
{
    while (s->next) {
        struct evutil_addrinfo *a = s->next;
        s->next = a->ai_next;
        int fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            snprintf(s->t->reason, sizeof s->t->reason, "socket: %s", strerror(errno));
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            s->connfd = fd;
            redistls_session_start_tls(s);
            return 0;
        }
        if (errno != EINPROGRESS) {
            snprintf(s->t->reason, sizeof s->t->reason, "%s", strerror(errno));
            close(fd);
            continue;
        }
        s->connfd = fd;
        s->connev = event_new(s->t->base, fd, EV_WRITE, redistls_session_connected, s);
        event_add(s->connev, NULL);
        return 0;
    }
    if (s->t->reason[0] == '\0')
        snprintf(s->t->reason, sizeof s->t->reason, "no address for %s", s->t->host);
    return -1;
}

/* Take the session out of t and free it, closing both sides. */
static void redistls_session_free(struct redistls_session *s)
{
    struct redistls *t = s->t;
    if (s->prev_s)
        s->prev_s->next_s = s->next_s;
    else
        t->sessions = s->next_s;
    if (s->next_s)
        s->next_s->prev_s = s->prev_s;
    if (t->relay) { /* the relay's fd is about to close: no shutdown from exit */
        pthread_mutex_lock(&redistls_relays_lock);
        t->relay->plainfd = -1;
        pthread_mutex_unlock(&redistls_relays_lock);
    }
    if (s->tls)
        bufferevent_free(s->tls);
    if (s->connev)
        event_free(s->connev);
    if (s->connfd >= 0)
        evutil_closesocket(s->connfd);
    bufferevent_free(s->plain);
    evbuffer_free(s->pending);
    if (s->ai)
        evutil_freeaddrinfo(s->ai);
    free(s);
}

/* A session for plainfd (hiredis's side, non-blocking) in t. */
static struct redistls_session *redistls_session_new(struct redistls *t, int plainfd)
{
    struct redistls_session *s = xcalloc(1, sizeof *s);
    s->t = t;
    s->connfd = -1;
    s->pending = evbuffer_new();
    if (s->pending == NULL) {
        log_event(LOG_ERROR, "out_of_memory", "what", "evbuffer", NULL);
        abort();
    }
    s->plain = bufferevent_socket_new(t->base, plainfd, BEV_OPT_CLOSE_ON_FREE);
    if (s->plain == NULL) {
        log_event(LOG_ERROR, "out_of_memory", "what", "bufferevent", NULL);
        abort();
    }
    bufferevent_setcb(s->plain, redistls_plain_read, redistls_plain_write, redistls_plain_event, s);
    s->next_s = t->sessions;
    if (t->sessions)
        t->sessions->prev_s = s;
    t->sessions = s;
    return s;
}

/* hiredis connected to the private socket: open the TLS connection. */
static void redistls_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                               int socklen, void *arg)
{
    struct redistls *t = arg;
    struct ucred uc;
    socklen_t ulen = sizeof uc;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ulen) < 0 || uc.pid != getpid()) {
        char pid[24];
        snprintf(pid, sizeof pid, "%ld", ulen == sizeof uc ? (long)uc.pid : -1L);
        log_event(LOG_ERROR, "redistls_refused", "path", t->path, "pid", pid, NULL);
        evutil_closesocket(fd);
        return;
    }
    t->reason[0] = '\0';
    t->up = false;
    struct redistls_session *s = redistls_session_new(t, fd);
    struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC,
                                    .ai_socktype = SOCK_STREAM,
                                    .ai_protocol = IPPROTO_TCP,
                                    .ai_flags = EVUTIL_AI_ADDRCONFIG};
    char port[8];
    snprintf(port, sizeof port, "%d", t->port);
    int rc = evutil_getaddrinfo(t->host, port, &hints, &s->ai);
    if (rc != 0) {
        snprintf(t->reason, sizeof t->reason, "cannot resolve %s: %s", t->host,
                 evutil_gai_strerror(rc));
        redistls_session_free(s);
        return;
    }
    s->next = s->ai;
    if (redistls_session_connect(s) < 0) {
        redistls_session_free(s);
        return;
    }
    bufferevent_enable(s->plain, EV_READ | EV_WRITE);
}

/* Common part of a struct redistls. */
static struct redistls *redistls_alloc(struct event_base *base, const char *host, int port,
                                       const char *ca_file, char *err, size_t errlen)
{
    SSL_CTX *ctx = redistls_ctx_new(ca_file, err, errlen);
    if (ctx == NULL)
        return NULL;
    struct redistls *t = xcalloc(1, sizeof *t);
    t->base = base;
    t->ctx = ctx;
    t->host = xstrdup(host);
    t->port = port;
    t->high_water = REDISTLS_HIGH_WATER;
    const char *hw = getenv("TEST_SESGATE_REDISTLS_HIGH_WATER");
    if (hw && atol(hw) > 0)
        t->high_water = (size_t)atol(hw);
    return t;
}

struct redistls *redistls_new(struct event_base *base, const char *host, int port,
                              const char *ca_file, char *err, size_t errlen)
{
    struct redistls *t = redistls_alloc(base, host, port, ca_file, err, errlen);
    if (t == NULL)
        return NULL;
    const char *tmp = getenv("TMPDIR");
    struct buf d = BUF_INIT;
    buf_printf(&d, "%s/sesgate-redistls-XXXXXX", tmp && tmp[0] == '/' ? tmp : "/tmp");
    t->dir = buf_detach(&d, NULL);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (mkdtemp(t->dir) == NULL) {
        snprintf(err, errlen, "cannot make a private directory for the TLS relay (%s): %s", t->dir,
                 strerror(errno));
        free(t->dir);
        t->dir = NULL;
        redistls_free(t);
        return NULL;
    }
    struct buf p = BUF_INIT;
    buf_printf(&p, "%s/redis.sock", t->dir);
    t->path = buf_detach(&p, NULL);
    if (strlen(t->path) >= sizeof sun.sun_path) {
        snprintf(err, errlen, "the TLS relay's socket path is too long: %s (set TMPDIR)", t->path);
        redistls_free(t);
        return NULL;
    }
    memcpy(sun.sun_path, t->path, strlen(t->path) + 1);
    t->listener = evconnlistener_new_bind(base, redistls_accept_cb, t,
                                          LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 8,
                                          (struct sockaddr *)&sun, (int)sizeof sun);
    if (t->listener == NULL) {
        snprintf(err, errlen, "cannot listen on %s for the TLS relay: %s", t->path,
                 strerror(errno));
        redistls_free(t);
        return NULL;
    }
    return t;
}

void redistls_free(struct redistls *t)
{
    if (t == NULL)
        return;
    while (t->sessions)
        redistls_session_free(t->sessions);
    if (t->listener)
        evconnlistener_free(t->listener);
    if (t->path)
        unlink(t->path);
    if (t->dir)
        rmdir(t->dir);
    free(t->path);
    free(t->dir);
    free(t->host);
    SSL_CTX_free(t->ctx);
    free(t);
}

const char *redistls_path(const struct redistls *t)
{
    return t->path;
}

const char *redistls_reason(const struct redistls *t)
{
    return t->reason;
}

bool redistls_up(const struct redistls *t)
{
    return t->up;
}

/* A TCP connection to host:port by deadline (ms, monotonic), blocking; the
 * fd, or -1 with a reason. */
static int redistls_tcp_connect(const char *host, int port, int64_t deadline, char *err,
                                size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_protocol = IPPROTO_TCP,
                             .ai_flags = AI_ADDRCONFIG};
    struct addrinfo *ai = NULL;
    char ps[8];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    snprintf(err, errlen, "no address");
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            snprintf(err, errlen, "socket: %s", strerror(errno));
            continue;
        }
        int soerr = 0;
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
            soerr = errno;
            if (soerr == EINPROGRESS) {
                struct pollfd pfd = {.fd = fd, .events = POLLOUT};
                int64_t left = deadline - clock_mono_ms();
                int n = left > 0 ? poll(&pfd, 1, (int)left) : 0;
                socklen_t sl = sizeof soerr;
                if (n <= 0)
                    soerr = ETIMEDOUT;
                else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
                    soerr = errno;
            }
        }
        if (soerr) {
            snprintf(err, errlen, "%s", strerror(soerr));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd >= 0)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
}

/* Set fd's send and receive timeouts (0: none). */
static void redistls_sock_timeout(int fd, int64_t ms)
{
    struct timeval tv = clock_timeval(ms > 0 ? ms : 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* The relay thread: an event loop of its own around one session. */
static void *redistls_relay_main(void *arg)
{
    struct redistls_relay *rl = arg;
    struct redistls *t = rl->t;
    t->base = event_base_new();
    if (t->base == NULL) {
        log_event(LOG_ERROR, "out_of_memory", "what", "event base", NULL);
        abort();
    }
    struct redistls_session *s = redistls_session_new(t, rl->plainfd);
    s->up = true;
    s->tls = bufferevent_openssl_socket_new(t->base, rl->tcpfd, rl->ssl, BUFFEREVENT_SSL_OPEN,
                                            BEV_OPT_CLOSE_ON_FREE);
    if (s->tls == NULL) {
        log_event(LOG_ERROR, "out_of_memory", "what", "TLS bufferevent", NULL);
        abort();
    }
    bufferevent_openssl_set_allow_dirty_shutdown(s->tls, 1);
    bufferevent_setcb(s->tls, redistls_tls_read, redistls_tls_write, redistls_tls_event, s);
    bufferevent_enable(s->tls, EV_READ | EV_WRITE);
    bufferevent_enable(s->plain, EV_READ | EV_WRITE);
    event_base_dispatch(t->base); /* until both sides are closed */
    while (t->sessions)
        redistls_session_free(t->sessions);
    event_base_free(t->base);
    t->base = NULL;
    return NULL;
}

/* At exit: end every relay still running (its hiredis end was not closed)
 * and join them all. */
static void redistls_relays_join(void)
{
    pthread_mutex_lock(&redistls_relays_lock);
    for (struct redistls_relay *rl = redistls_relays; rl; rl = rl->next)
        if (rl->plainfd >= 0)
            shutdown(rl->plainfd, SHUT_RDWR);
    struct redistls_relay *all = redistls_relays;
    redistls_relays = NULL;
    pthread_mutex_unlock(&redistls_relays_lock);
    while (all) {
        struct redistls_relay *rl = all;
        all = rl->next;
        pthread_join(rl->thread, NULL);
        redistls_free(rl->t);
        free(rl);
    }
}

/* Register redistls_relays_join with atexit. */
static void redistls_atexit_register(void)
{
    atexit(redistls_relays_join);
}

int redistls_connect_sync(const char *host, int port, const char *ca_file, int timeout_ms,
                          char *err, size_t errlen)
{
    int64_t deadline = clock_mono_ms() + timeout_ms;
    struct redistls *t = redistls_alloc(NULL, host, port, ca_file, err, errlen);
    if (t == NULL)
        return -1;
    int fd = redistls_tcp_connect(host, port, deadline, err, errlen);
    if (fd < 0) {
        redistls_free(t);
        return -1;
    }
    SSL *ssl = redistls_ssl_new(t);
    SSL_set_fd(ssl, fd);
    redistls_sock_timeout(fd, deadline - clock_mono_ms());
    ERR_clear_error();
    errno = 0;
    if (SSL_connect(ssl) != 1) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            snprintf(err, errlen, "no answer to the TLS handshake within %d ms", timeout_ms);
        else
            redistls_failure(ssl, ERR_get_error(), errno, err, errlen);
        ERR_clear_error();
        SSL_free(ssl);
        close(fd);
        redistls_free(t);
        return -1;
    }
    redistls_sock_timeout(fd, 0);
    redistls_keepalive(fd);
    evutil_make_socket_nonblocking(fd);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        snprintf(err, errlen, "socketpair: %s", strerror(errno));
        SSL_free(ssl);
        close(fd);
        redistls_free(t);
        return -1;
    }
    evutil_make_socket_nonblocking(sv[1]);
    struct redistls_relay *rl = xcalloc(1, sizeof *rl);
    rl->t = t;
    rl->plainfd = sv[1];
    rl->tcpfd = fd;
    rl->ssl = ssl;
    t->relay = rl;
    pthread_once(&redistls_atexit_once, redistls_atexit_register);
    pthread_mutex_lock(&redistls_relays_lock);
    int rc = pthread_create(&rl->thread, NULL, redistls_relay_main, rl);
    if (rc == 0) {
        rl->next = redistls_relays;
        redistls_relays = rl;
    }
    pthread_mutex_unlock(&redistls_relays_lock);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the TLS relay thread: %s", strerror(rc));
        SSL_free(ssl);
        close(fd);
        close(sv[0]);
        close(sv[1]);
        redistls_free(t);
        free(rl);
        return -1;
    }
    return sv[0];
}
