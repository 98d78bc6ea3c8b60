/* smtpd: the SMTP listeners, sessions and the hand-off to the front. */
#include "smtpd.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "buf.h"
#include "clock.h"
#include "front.h"
#include "httpd.h"
#include "log.h"
#include "metrics.h"
#include "rfc5322.h"
#include "smtp.h"
#include "util.h"

/* SES's SMTP interface takes messages up to 40 MB. */
#define SMTPD_MAX_MESSAGE (40u * 1024 * 1024)
/* A closing connection's reply gets this long to drain. */
#define SMTPD_LINGER_MS 2000
/* Input held unread (while a message is with the front, or a handshake
 * runs) before reading pauses. */
#define SMTPD_INPUT_HIGH (256u * 1024)

enum smtpd_state {
    SMTPD_CMD,        /* reading commands */
    SMTPD_AUTH_PLAIN, /* AUTH PLAIN: waiting for the response line */
    SMTPD_AUTH_USER,  /* AUTH LOGIN: waiting for the user name */
    SMTPD_AUTH_PASS,  /* AUTH LOGIN: waiting for the password */
    SMTPD_DATA,       /* reading the message */
    SMTPD_WAIT,       /* the message is with the front */
    SMTPD_CLOSING,    /* the last reply drains, then the connection goes */
};

struct smtpd_listener {
    struct evconnlistener *l;
    bool implicit; /* implicit TLS */
    int port;
};

struct smtpd {
    struct event_base *base;
    const struct config *cfg;
    struct front *front;
    SSL_CTX *tls;
    char *cert, *key;             /* the certificate's files (read again on reload) */
    struct smtpd_listener lst[2]; /* STARTTLS, implicit TLS */
    char host[256];
    int64_t nconns;
    size_t inflight;
    struct smtpd_conn *conns;
};

struct smtpd_conn {
    struct smtpd *d;
    struct smtpd_conn *prev, *next;
    struct bufferevent *bev;
    struct event *timer;
    char peer[64];
    enum smtpd_state state;
    bool tls;         /* the session is under TLS */
    bool handshaking; /* a TLS handshake is under way */
    bool implicit;    /* came on the implicit TLS listener */
    bool greeted;
    bool in_process;    /* smtpd_process is on the stack */
    bool discarding;    /* the rest of an over-long command line is being skipped */
    bool shut;          /* closing: the write side is shut, input is discarded */
    int64_t closing_ms; /* closing: how long the last reply has had to drain */
    bool hello;         /* EHLO or HELO seen (since STARTTLS) */
    int64_t ncmds;
    /* the authenticated client, by key id (looked up again at each MAIL:
     * a reload may change or remove it) */
    char key_id[128];
    bool authed;
    struct buf login_user; /* AUTH LOGIN's user name */
    /* the transaction */
    bool mail;
    bool smtputf8; /* the transaction's MAIL gave SMTPUTF8 */
    char *mail_from;
    char **rcpt;
    size_t nrcpt, rcpt_cap;
    struct buf msg;
    struct smtp_data dr;
    const struct config_client *client; /* the message's client, while it is with the front */
    struct front_req *pending;
    size_t msg_size;
};

/* ---- connections ---- */

static void smtpd_conn_free(struct smtpd_conn *c);
static void smtpd_process(struct smtpd_conn *c);

/* Out of memory in a library call: fatal, as everywhere. */
static void smtpd_oom(void)
{
    log_event(LOG_ERROR, "out_of_memory", "where", "smtpd", NULL);
    abort();
}

/* (Re)arm the connection's deadline; 0 disarms. */
static void smtpd_timer(struct smtpd_conn *c, int64_t ms)
{
    evtimer_del(c->timer);
    if (ms > 0) {
        struct timeval tv = clock_timeval(ms);
        evtimer_add(c->timer, &tv);
    }
}

/* Queue one reply line (CRLF added). */
static void smtpd_reply(struct smtpd_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void smtpd_reply(struct smtpd_conn *c, const char *fmt, ...)
{
    char line[SMTP_MAX_LINE];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 2, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof line - 3)
        n = (int)(sizeof line - 3);
    /* a reply never carries a line break of the client's text */
    for (int i = 0; i < n; i++)
        if (line[i] == '\r' || line[i] == '\n')
            line[i] = ' ';
    line[n++] = '\r';
    line[n++] = '\n';
    if (bufferevent_write(c->bev, line, (size_t)n) < 0)
        smtpd_oom();
}

/* Reply, then close once the reply is out. */
static void smtpd_close_with(struct smtpd_conn *c, const char *reply)
{
    smtpd_reply(c, "%s", reply);
    c->state = SMTPD_CLOSING;
    evbuffer_drain(bufferevent_get_input(c->bev),
                   evbuffer_get_length(bufferevent_get_input(c->bev)));
    smtpd_timer(c, 50);
}

/* True when every byte written has left for the socket (under STARTTLS,
 * through the layer below too). */
static bool smtpd_flushed(struct smtpd_conn *c)
{
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
        return false;
    struct bufferevent *under = bufferevent_get_underlying(c->bev);
    return under == NULL || evbuffer_get_length(bufferevent_get_output(under)) == 0;
}

/* Closing, the reply sent: shut the write side and read on, discarding,
 * until the client closes or the linger ends: a close with the client's
 * bytes unread would reset the connection and could lose the reply. (No
 * TLS close_notify: SSL_shutdown would write it past what the TLS layer
 * still holds.) */
static void smtpd_shut_write(struct smtpd_conn *c)
{
    if (c->shut)
        return;
    c->shut = true;
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    if (fd >= 0)
        shutdown(fd, SHUT_WR);
    smtpd_timer(c, SMTPD_LINGER_MS);
}

/* Forget the transaction (MAIL, RCPT, the message). */
static void smtpd_reset_tx(struct smtpd_conn *c)
{
    c->mail = false;
    c->smtputf8 = false;
    free(c->mail_from);
    c->mail_from = NULL;
    for (size_t i = 0; i < c->nrcpt; i++)
        free(c->rcpt[i]);
    c->nrcpt = 0;
    buf_free(&c->msg);
    c->msg_size = 0;
}

/* The size SES's SMTP interface takes, bounded by [server] max_body. */
static size_t smtpd_max_size(const struct smtpd *d)
{
    uint64_t m = d->cfg->max_body < SMTPD_MAX_MESSAGE ? d->cfg->max_body : SMTPD_MAX_MESSAGE;
    return (size_t)m;
}

/* The authenticated client, as the running configuration knows it now. */
static const struct config_client *smtpd_client(const struct smtpd_conn *c)
{
    if (!c->authed)
        return NULL;
    return config_client_by_key(c->d->cfg, c->key_id, strlen(c->key_id));
}

/* The client's name for metrics and logs ("-" before AUTH). */
static const char *smtpd_client_name(const struct smtpd_conn *c)
{
    const struct config_client *cl = smtpd_client(c);
    return cl ? cl->name : "-";
}

/* ---- AUTH ---- */

/* Check user and password as SES does: the user is a client's access key
 * id, the password its SES SMTP password for the configured region
 * (compared in constant time). */
static void smtpd_auth_check(struct smtpd_conn *c, const char *user, size_t ulen, const char *pass,
                             size_t plen)
{
    const struct config *cfg = c->d->cfg;
    const struct config_client *cl = config_client_by_key(cfg, user, ulen);
    /* the same work whether the key exists or not */
    bool ok = smtp_password_check(cl ? cl->secret_access_key : "-", cfg->upstreams[0].region, pass,
                                  plen) &&
              cl != NULL && ulen < sizeof c->key_id;
    c->state = SMTPD_CMD;
    if (!ok) {
        metrics_smtp_rejected(cl ? cl->name : "-", "auth");
        metrics_auth_failure("SmtpAuthenticationFailed");
        log_event(LOG_INFO, "smtp_auth_failed", "peer", c->peer, "client", cl ? cl->name : NULL,
                  NULL);
        smtpd_reply(c, "535 5.7.8 Authentication Credentials Invalid");
        return;
    }
    memcpy(c->key_id, user, ulen);
    c->key_id[ulen] = '\0';
    c->authed = true;
    log_event(LOG_INFO, "smtp_auth", "peer", c->peer, "client", cl->name, NULL);
    smtpd_reply(c, "235 2.7.0 Authentication successful.");
}

/* AUTH PLAIN's response (base64). */
static void smtpd_auth_plain(struct smtpd_conn *c, const char *b64, size_t n)
{
    struct buf user = BUF_INIT, pass = BUF_INIT;
    if (smtp_auth_plain(b64, n, &user, &pass) < 0) {
        c->state = SMTPD_CMD;
        smtpd_reply(c, "501 5.5.2 Cannot decode the AUTH PLAIN response");
    } else {
        smtpd_auth_check(c, user.data ? user.data : "", user.len, pass.data ? pass.data : "",
                         pass.len);
    }
    if (pass.data)
        OPENSSL_cleanse(pass.data, pass.len);
    buf_free(&user);
    buf_free(&pass);
}

/* A line while AUTH waits for a response. */
static void smtpd_auth_line(struct smtpd_conn *c, const char *line, size_t len)
{
    if (smtp_auth_cancelled(line, len)) {
        c->state = SMTPD_CMD;
        buf_free(&c->login_user);
        smtpd_reply(c, "501 5.7.0 Authentication cancelled");
        return;
    }
    if (c->state == SMTPD_AUTH_PLAIN) {
        smtpd_auth_plain(c, line, len);
        return;
    }
    struct buf v = BUF_INIT;
    if (smtp_auth_login(line, len, &v) < 0) {
        c->state = SMTPD_CMD;
        buf_free(&c->login_user);
        buf_free(&v);
        smtpd_reply(c, "501 5.5.2 Cannot decode the AUTH LOGIN response");
        return;
    }
    if (c->state == SMTPD_AUTH_USER) {
        buf_free(&c->login_user);
        c->login_user = v;
        c->state = SMTPD_AUTH_PASS;
        smtpd_reply(c, "%s", SMTP_LOGIN_PASS_PROMPT);
        return;
    }
    smtpd_auth_check(c, c->login_user.data ? c->login_user.data : "", c->login_user.len,
                     v.data ? v.data : "", v.len);
    if (v.data)
        OPENSSL_cleanse(v.data, v.len);
    buf_free(&v);
    buf_free(&c->login_user);
}

/* AUTH mechanism [initial-response]. */
static void smtpd_auth(struct smtpd_conn *c, const struct smtp_cmd *cmd)
{
    if (!c->tls) {
        metrics_smtp_rejected("-", "no_tls");
        smtpd_reply(c, "530 5.7.0 Must issue a STARTTLS command first");
        return;
    }
    if (c->authed) {
        smtpd_reply(c, "503 5.5.1 Already authenticated");
        return;
    }
    if (c->mail) {
        smtpd_reply(c, "503 5.5.1 AUTH not allowed during a mail transaction");
        return;
    }
    const char *ir = cmd->auth_resp;
    size_t irlen = cmd->auth_resplen;
    if (cmd->mech == SMTP_MECH_PLAIN) {
        if (ir != NULL && irlen > 0) {
            smtpd_auth_plain(c, ir, irlen);
            return;
        }
        c->state = SMTPD_AUTH_PLAIN;
        smtpd_reply(c, "334 ");
        return;
    }
    if (cmd->mech == SMTP_MECH_LOGIN) {
        c->state = SMTPD_AUTH_USER;
        if (ir != NULL && irlen > 0) {
            smtpd_auth_line(c, ir, irlen);
            return;
        }
        smtpd_reply(c, "%s", SMTP_LOGIN_USER_PROMPT);
        return;
    }
    smtpd_reply(c, "504 5.5.4 Unrecognized authentication type");
}

/* ---- STARTTLS ---- */

static void smtpd_read_cb(struct bufferevent *bev, void *arg);
static void smtpd_write_cb(struct bufferevent *bev, void *arg);
static void smtpd_event_cb(struct bufferevent *bev, short what, void *arg);

/* Upgrade the connection to TLS. Every byte the client sent after the
 * STARTTLS line and before its handshake is discarded: a command sent
 * along with STARTTLS must never be read as if it came over TLS
 * (CVE-2011-0411). The session starts over: EHLO again, no AUTH. */
static void smtpd_starttls(struct smtpd_conn *c)
{
    struct smtpd *d = c->d;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t junk = evbuffer_get_length(in);
    if (junk > 0) {
        char n[24];
        snprintf(n, sizeof n, "%zu", junk);
        log_event(LOG_INFO, "smtp_starttls_discarded", "peer", c->peer, "bytes", n, NULL);
        evbuffer_drain(in, junk);
    }
    SSL *ssl = SSL_new(d->tls);
    if (ssl == NULL)
        smtpd_oom();
    struct bufferevent *tls = bufferevent_openssl_filter_new(
        d->base, c->bev, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (tls == NULL)
        smtpd_oom();
    c->bev = tls;
    c->tls = true;
    c->handshaking = true;
    bufferevent_setcb(c->bev, smtpd_read_cb, smtpd_write_cb, smtpd_event_cb, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, SMTPD_INPUT_HIGH);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    /* the handshake must complete within read_timeout */
    smtpd_timer(c, d->cfg->smtp_read_timeout_ms);
    c->hello = false;
    smtpd_reset_tx(c);
}

/* ---- the hand-off ---- */

/* Trim white space around s[*b, *e). */
static void smtpd_trim(const char *s, size_t *b, size_t *e)
{
    while (*b < *e && (s[*b] == ' ' || s[*b] == '\t'))
        (*b)++;
    while (*e > *b && (s[*e - 1] == ' ' || s[*e - 1] == '\t'))
        (*e)--;
}

/* The message tags of X-SES-MESSAGE-TAGS values ("name=value, ..."). */
struct smtpd_tags {
    char **names, **values;
    size_t n;
};

static void smtpd_tags_parse(const char *s, size_t len, struct smtpd_tags *t)
{
    for (size_t i = 0; i < len;) {
        const char *comma = memchr(s + i, ',', len - i);
        size_t j = comma ? (size_t)(comma - s) : len;
        const char *eq = memchr(s + i, '=', j - i);
        if (eq != NULL) {
            size_t nb = i, ne = (size_t)(eq - s), vb = ne + 1, ve = j;
            smtpd_trim(s, &nb, &ne);
            smtpd_trim(s, &vb, &ve);
            if (ne > nb) {
                t->names = xrealloc(t->names, (t->n + 1) * sizeof *t->names);
                t->values = xrealloc(t->values, (t->n + 1) * sizeof *t->values);
                t->names[t->n] = xstrndup(s + nb, ne - nb);
                t->values[t->n] = xstrndup(s + vb, ve - vb);
                t->n++;
            }
        }
        i = j + 1;
    }
}

static void smtpd_tags_free(struct smtpd_tags *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->names[i]);
        free(t->values[i]);
    }
    free(t->names);
    free(t->values);
}

/* The reply to DATA for the front's outcome, and its class for metrics:
 * "accepted", "rejected" or "deferred". */
static const char *smtpd_outcome_reply(const struct front_outcome *o, char *out, size_t n)
{
    const char *why = o->why ? o->why : "";
    const char *msg = o->message && o->message[0] ? o->message : "Transaction failed.";
    if (o->status >= 200 && o->status < 300) {
        snprintf(out, n, "250 2.0.0 Ok %s",
                 o->message_id && o->message_id[0] ? o->message_id : "-");
        return "accepted";
    }
    if (strcmp(why, "suppressed") == 0) {
        snprintf(out, n, "550 5.1.1 Message rejected: %s", msg);
        return "rejected";
    }
    if (strcmp(why, "sender") == 0 || strcmp(why, "action") == 0 ||
        strcmp(o->error_code, "AccessDenied") == 0) {
        snprintf(out, n, "554 5.7.1 Message rejected: %s", msg);
        return "rejected";
    }
    if (strcmp(why, "quota") == 0 || strcmp(why, "rate") == 0 ||
        strcmp(o->error_code, "Throttling") == 0) {
        snprintf(out, n, "454 4.7.0 Throttling failure: %s", msg);
        return "deferred";
    }
    if (o->status == 413 || strcmp(o->error_code, "RequestEntityTooLarge") == 0) {
        snprintf(out, n, "552 5.3.4 Message too large: %s", msg);
        return "rejected";
    }
    if ((o->status >= 500 || o->status == 499) && o->partial) {
        snprintf(out, n, "451 4.3.0 Message not accepted, some recipients may already have it: %s",
                 msg);
        return "deferred";
    }
    if (o->status >= 500 || o->status == 499) {
        snprintf(out, n, "451 4.3.0 Message not accepted, nothing was sent: %s", msg);
        return "deferred";
    }
    snprintf(out, n, "554 5.6.0 Transaction failed: %s", msg);
    return "rejected";
}

/* The front answered the message. */
static void smtpd_submitted(const struct front_outcome *o, void *arg)
{
    struct smtpd_conn *c = arg;
    c->d->inflight--;
    char reply[SMTP_MAX_LINE - 8];
    const char *outcome = smtpd_outcome_reply(o, reply, sizeof reply);
    const char *name = c->client ? c->client->name : "-";
    metrics_smtp_message(name, outcome, strcmp(outcome, "accepted") == 0 ? c->nrcpt : 0);
    if (strcmp(outcome, "accepted") != 0)
        metrics_smtp_rejected(name, o->why ? o->why : o->error_code[0] ? o->error_code : outcome);
    char nr[24], size[24], status[8];
    snprintf(nr, sizeof nr, "%zu", c->nrcpt);
    snprintf(size, sizeof size, "%zu", c->msg_size);
    snprintf(status, sizeof status, "%.3s", reply);
    log_event(strcmp(outcome, "deferred") == 0 ? LOG_WARN : LOG_INFO, "smtp_message", "id",
              o->message_id && o->message_id[0] ? o->message_id : o->request_id, "batch",
              o->batch_id && o->batch_id[0] ? o->batch_id : NULL, "peer", c->peer, "client", name,
              "recipients", nr, "size", size, "outcome", outcome, "reply", status, "reason",
              o->why             ? o->why
              : o->error_code[0] ? o->error_code
                                 : NULL,
              NULL);
    c->client = NULL;
    smtpd_reply(c, "%s", reply);
    smtpd_reset_tx(c);
    c->state = SMTPD_CMD;
    smtpd_timer(c, c->d->cfg->smtp_idle_timeout_ms);
    if (!c->in_process)
        smtpd_process(c);
}

/* Refuse the message read (DATA's reply), counted. */
static void smtpd_data_refuse(struct smtpd_conn *c, const char *reason, const char *reply)
{
    char size[24];
    snprintf(size, sizeof size, "%zu", c->msg_size);
    metrics_smtp_message(smtpd_client_name(c), "rejected", 0);
    metrics_smtp_rejected(smtpd_client_name(c), reason);
    log_event(LOG_INFO, "smtp_message", "peer", c->peer, "client", smtpd_client_name(c), "size",
              size, "outcome", "rejected", "reason", reason, NULL);
    smtpd_reply(c, "%s", reply);
    smtpd_reset_tx(c);
    c->state = SMTPD_CMD;
}

/* The end of DATA: refuse the message, or hand it to the front. */
static void smtpd_data_done(struct smtpd_conn *c)
{
    struct smtpd *d = c->d;
    smtpd_timer(c, 0);
    c->msg_size = (size_t)c->dr.size;
    const char *refuse = smtp_data_reply(&c->dr);
    if (refuse != NULL) {
        smtpd_data_refuse(c,
                          c->dr.ambiguous   ? "ambiguous_line_ends"
                          : c->dr.too_large ? "too_large"
                                            : "line_too_long",
                          refuse);
        smtpd_timer(c, d->cfg->smtp_idle_timeout_ms);
        return;
    }
    const struct config_client *cl = smtpd_client(c);
    if (cl == NULL) {
        smtpd_data_refuse(c, "auth", "530 5.7.0 Authentication required");
        smtpd_timer(c, d->cfg->smtp_idle_timeout_ms);
        return;
    }
    /* X-SES-CONFIGURATION-SET and X-SES-MESSAGE-TAGS, as SES reads them
     * over SMTP: they become the send's configuration set and tags and are
     * removed from the message */
    const char *m = c->msg.data ? c->msg.data : "";
    size_t len = c->msg.len;
    struct buf cs = BUF_INIT, tv = BUF_INIT, stripped = BUF_INIT;
    bool has_cs = rfc5322_header_get(m, len, "X-SES-CONFIGURATION-SET", &cs) == 0;
    int ntagf = rfc5322_header_get_all(m, len, "X-SES-MESSAGE-TAGS", &tv);
    struct smtpd_tags tags = {0};
    if (has_cs || ntagf > 0) {
        struct buf tmp = BUF_INIT;
        rfc5322_header_remove(m, len, "X-SES-CONFIGURATION-SET", &tmp);
        rfc5322_header_remove(tmp.data, tmp.len, "X-SES-MESSAGE-TAGS", &stripped);
        buf_free(&tmp);
        buf_free(&c->msg);
        c->msg = stripped;
        stripped = (struct buf)BUF_INIT;
        smtpd_tags_parse(buf_cstr(&tv), tv.len, &tags);
    }
    size_t cb = 0, ce = cs.len;
    smtpd_trim(buf_cstr(&cs), &cb, &ce);
    char *csname = xstrndup(buf_cstr(&cs) + cb, ce - cb);
    struct front_submission s = {
        .source = c->mail_from,
        .destinations = c->rcpt,
        .ndest = c->nrcpt,
        .message = c->msg.data ? c->msg.data : "",
        .len = c->msg.len,
        .configuration_set = csname,
        .tag_names = tags.names,
        .tag_values = tags.values,
        .ntags = tags.n,
        .peer = c->peer,
    };
    c->state = SMTPD_WAIT;
    c->client = cl;
    d->inflight++;
    front_submit_raw(d->front, cl, &s, smtpd_submitted, c, &c->pending);
    /* the front keeps what it needs: the message is let go of now */
    free(csname);
    smtpd_tags_free(&tags);
    buf_free(&cs);
    buf_free(&tv);
    if (c->state == SMTPD_WAIT)
        buf_free(&c->msg);
}

/* ---- commands ---- */

/* EHLO's reply: the extensions, STARTTLS before TLS and AUTH after. */
static void smtpd_ehlo(struct smtpd_conn *c)
{
    struct buf out = BUF_INIT;
    smtp_ehlo_reply(&out, c->d->host, smtpd_max_size(c->d),
                    SMTP_EHLO_SMTPUTF8 | (c->tls ? SMTP_EHLO_AUTH : SMTP_EHLO_STARTTLS));
    if (bufferevent_write(c->bev, out.data, out.len) < 0)
        smtpd_oom();
    buf_free(&out);
}

/* MAIL FROM:<path> [SIZE=n] [BODY=8BITMIME] [SMTPUTF8] */
static void smtpd_mail(struct smtpd_conn *c, const struct smtp_cmd *cmd)
{
    if (!c->tls) {
        metrics_smtp_rejected("-", "no_tls");
        smtpd_reply(c, "530 5.7.0 Must issue a STARTTLS command first");
        return;
    }
    if (smtpd_client(c) == NULL) {
        c->authed = false; /* a reload removed the key */
        metrics_smtp_rejected("-", "no_auth");
        smtpd_reply(c, "530 5.7.0 Authentication required");
        return;
    }
    if (c->mail) {
        smtpd_reply(c, "503 5.5.1 Error: nested MAIL command");
        return;
    }
    if (cmd->has_size && cmd->size > smtpd_max_size(c->d)) {
        metrics_smtp_rejected(smtpd_client_name(c), "too_large");
        smtpd_reply(c, "552 5.3.4 Message size exceeds fixed maximum message size");
        return;
    }
    c->mail = true;
    c->smtputf8 = cmd->smtputf8;
    c->mail_from = xstrndup(cmd->path ? cmd->path : "", cmd->pathlen);
    smtpd_reply(c, "250 2.1.0 Ok");
}

/* RCPT TO:<path> */
static void smtpd_rcpt(struct smtpd_conn *c, const struct smtp_cmd *cmd)
{
    if (!c->mail) {
        smtpd_reply(c, "503 5.5.1 Error: need MAIL command");
        return;
    }
    if (cmd->path == NULL || cmd->pathlen == 0) {
        smtpd_reply(c, "501 5.1.3 Bad recipient address syntax");
        return;
    }
    if (cmd->path_8bit && !c->smtputf8) {
        smtpd_reply(c, "%s", SMTP_REPLY_NEED_UTF8);
        return;
    }
    if (c->nrcpt >= (size_t)c->d->cfg->max_recipients) {
        metrics_smtp_rejected(smtpd_client_name(c), "too_many_recipients");
        smtpd_reply(c, "452 4.5.3 Error: too many recipients");
        return;
    }
    if (c->nrcpt == c->rcpt_cap) {
        c->rcpt_cap = c->rcpt_cap ? 2 * c->rcpt_cap : 16;
        c->rcpt = xrealloc(c->rcpt, c->rcpt_cap * sizeof *c->rcpt);
    }
    c->rcpt[c->nrcpt++] = xstrndup(cmd->path, cmd->pathlen);
    smtpd_reply(c, "250 2.1.5 Ok");
}

/* DATA */
static void smtpd_data(struct smtpd_conn *c)
{
    if (!c->mail) {
        smtpd_reply(c, "503 5.5.1 Error: need MAIL command");
        return;
    }
    if (c->nrcpt == 0) {
        smtpd_reply(c, "554 5.5.1 Error: no valid recipients");
        return;
    }
    buf_free(&c->msg);
    smtp_data_init(&c->dr, &c->msg, smtpd_max_size(c->d));
    c->state = SMTPD_DATA;
    /* the whole message must arrive within read_timeout */
    smtpd_timer(c, c->d->cfg->smtp_read_timeout_ms);
    smtpd_reply(c, "354 End data with <CR><LF>.<CR><LF>");
}

/* One command line (without CRLF). */
static void smtpd_command(struct smtpd_conn *c, const char *line, size_t len)
{
    struct smtp_cmd cmd;
    char err[256];
    if (smtp_parse(line, len, &cmd, err, sizeof err) < 0) {
        smtpd_reply(c, "%s", err);
        return;
    }
    switch (cmd.verb) {
    case SMTP_EHLO:
    case SMTP_HELO:
        smtpd_reset_tx(c);
        c->hello = true;
        if (cmd.verb == SMTP_EHLO)
            smtpd_ehlo(c);
        else
            smtpd_reply(c, "250 %s", c->d->host);
        break;
    case SMTP_STARTTLS:
        if (c->tls) {
            smtpd_reply(c, "503 5.5.1 TLS already active");
            break;
        }
        if (cmd.arglen > 0) {
            smtpd_reply(c, "501 5.5.4 Syntax error (no parameters allowed)");
            break;
        }
        smtpd_reply(c, "220 2.0.0 Ready to start TLS");
        smtpd_starttls(c);
        break;
    case SMTP_AUTH:
        smtpd_auth(c, &cmd);
        break;
    case SMTP_MAIL:
        smtpd_mail(c, &cmd);
        break;
    case SMTP_RCPT:
        smtpd_rcpt(c, &cmd);
        break;
    case SMTP_DATA:
        smtpd_data(c);
        break;
    case SMTP_RSET:
        smtpd_reset_tx(c);
        smtpd_reply(c, "250 2.0.0 Ok");
        break;
    case SMTP_NOOP:
        smtpd_reply(c, "250 2.0.0 Ok");
        break;
    case SMTP_QUIT:
        smtpd_close_with(c, "221 2.0.0 Bye");
        break;
    case SMTP_VRFY:
        smtpd_reply(c, "252 2.5.0 Cannot VRFY user");
        break;
    case SMTP_HELP:
        smtpd_reply(c,
                    "214 2.0.0 See https://docs.aws.amazon.com/ses/latest/dg/send-email-smtp.html");
        break;
    case SMTP_UNKNOWN:
    default:
        smtpd_reply(c, "500 5.5.2 Error: command not recognized");
        break;
    }
}

/* Read what the client sent, in order: command lines, AUTH responses, the
 * message; stop while a message is with the front (PIPELINING: the next
 * commands wait, their replies come after DATA's). */
static void smtpd_process(struct smtpd_conn *c)
{
    c->in_process = true;
    for (;;) {
        if (c->handshaking || c->state == SMTPD_WAIT || c->state == SMTPD_CLOSING)
            break;
        struct evbuffer *in = bufferevent_get_input(c->bev);
        size_t avail = evbuffer_get_length(in);
        if (avail == 0)
            break;
        if (c->state == SMTPD_DATA) {
            struct evbuffer_iovec v;
            if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
                break;
            size_t took = smtp_data_feed(&c->dr, v.iov_base, v.iov_len);
            evbuffer_drain(in, took);
            if (c->dr.done)
                smtpd_data_done(c);
            continue;
        }
        if (c->discarding) {
            struct evbuffer_iovec v;
            if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
                break;
            size_t used = 0;
            c->discarding = smtp_line_skip(v.iov_base, v.iov_len, &used) == 0;
            evbuffer_drain(in, used);
            continue;
        }
        size_t n = avail < SMTP_MAX_LINE ? avail : SMTP_MAX_LINE;
        const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
        if (p == NULL)
            smtpd_oom();
        size_t len = 0, used = 0;
        int rc = smtp_line(p, n, SMTP_MAX_LINE, &len, &used);
        if (rc == 0)
            break;
        if (++c->ncmds > c->d->cfg->smtp_max_commands) {
            metrics_smtp_refused("max_commands");
            smtpd_close_with(c, "421 4.7.0 Too many commands, closing connection");
            break;
        }
        if (rc < 0) {
            if (used == 0 || used > n)
                used = n;
            bool whole = p[used - 1] == '\n';
            evbuffer_drain(in, used);
            c->discarding = !whole; /* the rest, up to its LF: smtp_line_skip */
            if (c->state != SMTPD_CMD) {
                c->state = SMTPD_CMD;
                buf_free(&c->login_user);
            }
            metrics_smtp_rejected(smtpd_client_name(c), whole ? "bad_line" : "line_too_long");
            smtpd_reply(c, "%s", SMTP_REPLY_BAD_LINE);
            continue;
        }
        char line[SMTP_MAX_LINE + 1];
        memcpy(line, p, len);
        line[len] = '\0';
        evbuffer_drain(in, used);
        smtpd_timer(c, c->d->cfg->smtp_idle_timeout_ms);
        if (c->state == SMTPD_CMD)
            smtpd_command(c, line, len);
        else
            smtpd_auth_line(c, line, len);
        OPENSSL_cleanse(line, len);
    }
    c->in_process = false;
}

/* ---- events ---- */

static void smtpd_read_cb(struct bufferevent *bev, void *arg)
{
    struct smtpd_conn *c = arg;
    if (c->state == SMTPD_CLOSING) {
        struct evbuffer *in = bufferevent_get_input(bev);
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    smtpd_process(c);
}

static void smtpd_write_cb(struct bufferevent *bev, void *arg)
{
    /* closing: the timer shuts the write side once the reply is out */
    (void)bev;
    (void)arg;
}

static void smtpd_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct smtpd_conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        c->handshaking = false;
        if (!c->greeted) {
            c->greeted = true;
            smtpd_reply(c, "220 %s ESMTP sesgate", c->d->host);
        }
        smtpd_timer(c, c->d->cfg->smtp_idle_timeout_ms);
        smtpd_process(c);
        return;
    }
    if (c->handshaking) {
        unsigned long e = bufferevent_get_openssl_error(c->bev);
        if (e != 0 && ERR_GET_REASON(e) != SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            const char *why = ERR_reason_error_string(e);
            metrics_smtp_refused("tls_handshake");
            log_event(LOG_INFO, "tls_handshake_failed", "peer", c->peer, "listener", "smtp",
                      "reason", why ? why : "unknown", NULL);
        }
    }
    smtpd_conn_free(c);
}

static void smtpd_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct smtpd_conn *c = arg;
    if (c->state == SMTPD_CLOSING) {
        /* the reply still draining (checked every 50 ms, up to the
         * linger), or the linger after the shut is over */
        c->closing_ms += 50;
        if (c->shut || c->closing_ms >= SMTPD_LINGER_MS)
            smtpd_conn_free(c);
        else if (smtpd_flushed(c))
            smtpd_shut_write(c);
        else
            smtpd_timer(c, 50);
        return;
    }
    if (c->handshaking) {
        metrics_smtp_refused("tls_handshake_timeout");
        smtpd_conn_free(c);
        return;
    }
    bool data = c->state == SMTPD_DATA;
    metrics_smtp_refused(data ? "read_timeout" : "idle_timeout");
    log_event(LOG_INFO, "smtp_timeout", "peer", c->peer, "during", data ? "data" : "command", NULL);
    char reply[300];
    snprintf(reply, sizeof reply, "421 4.4.2 %s Error: timeout exceeded", c->d->host);
    smtpd_close_with(c, reply);
}

static void smtpd_conn_free(struct smtpd_conn *c)
{
    struct smtpd *d = c->d;
    if (c->pending) {
        d->inflight--;
        front_submit_cancel(c->pending);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        d->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    d->nconns--;
    metrics_smtp_connections(-1);
    smtpd_reset_tx(c);
    free(c->rcpt);
    buf_free(&c->login_user);
    event_free(c->timer);
    bufferevent_free(c->bev);
    free(c);
}

/* A connection arrived on listener li. */
static void smtpd_accept(struct smtpd *d, struct smtpd_listener *li, evutil_socket_t fd,
                         struct sockaddr *sa)
{
    if (d->nconns >= d->cfg->smtp_max_connections) {
        metrics_smtp_refused("max_connections");
        if (!li->implicit) {
            static const char busy[] = "421 4.7.0 Too many connections, try again later\r\n";
            ssize_t w = send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)w;
        }
        evutil_closesocket(fd);
        return;
    }
    struct smtpd_conn *c = xcalloc(1, sizeof *c);
    c->d = d;
    httpd_peer_name(sa, c->peer, sizeof c->peer);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (li->implicit) {
        SSL *ssl = SSL_new(d->tls);
        if (ssl == NULL)
            smtpd_oom();
        c->bev = bufferevent_openssl_socket_new(d->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                BEV_OPT_CLOSE_ON_FREE);
        c->tls = c->handshaking = c->implicit = true;
    } else {
        c->bev = bufferevent_socket_new(d->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    if (c->bev == NULL)
        smtpd_oom();
    c->timer = evtimer_new(d->base, smtpd_timer_cb, c);
    c->state = SMTPD_CMD;
    c->next = d->conns;
    if (d->conns)
        d->conns->prev = c;
    d->conns = c;
    d->nconns++;
    metrics_smtp_connections(1);
    /* No bufferevent timeouts: an OpenSSL bufferevent's write timeout runs
     * with nothing to write. The session's own timer bounds every state
     * that waits for the client; a closing one lingers at most 2 s. */
    bufferevent_setcb(c->bev, smtpd_read_cb, smtpd_write_cb, smtpd_event_cb, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, SMTPD_INPUT_HIGH);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (c->handshaking) {
        smtpd_timer(c, d->cfg->smtp_read_timeout_ms);
    } else {
        c->greeted = true;
        smtpd_reply(c, "220 %s ESMTP sesgate", d->host);
        smtpd_timer(c, d->cfg->smtp_idle_timeout_ms);
    }
}

static void smtpd_accept_plain_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                                  int salen, void *arg)
{
    (void)l;
    (void)salen;
    struct smtpd *d = arg;
    smtpd_accept(d, &d->lst[0], fd, sa);
}

static void smtpd_accept_tls_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                                int salen, void *arg)
{
    (void)l;
    (void)salen;
    struct smtpd *d = arg;
    smtpd_accept(d, &d->lst[1], fd, sa);
}

static void smtpd_accept_error_cb(struct evconnlistener *l, void *arg)
{
    (void)l;
    (void)arg;
    int err = EVUTIL_SOCKET_ERROR();
    log_event(LOG_WARN, "accept_failed", "listener", "smtp", "error",
              evutil_socket_error_to_string(err), NULL);
}

/* Bind addr for li. Returns 0, or -1 with err set. */
static int smtpd_bind(struct smtpd *d, struct smtpd_listener *li, const char *addr,
                      evconnlistener_cb cb, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sslen) < 0) {
        snprintf(err, errlen, "[smtp]: cannot parse listen address '%s'", addr);
        return -1;
    }
    li->l = evconnlistener_new_bind(
        d->base, cb, d, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 1024,
        (struct sockaddr *)&ss, sslen);
    if (li->l == NULL) {
        snprintf(err, errlen, "[smtp]: cannot listen on %s: %s", addr, strerror(errno));
        return -1;
    }
    evconnlistener_set_error_cb(li->l, smtpd_accept_error_cb);
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (getsockname(evconnlistener_get_fd(li->l), (struct sockaddr *)&bound, &blen) == 0)
        li->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                     : ((struct sockaddr_in *)&bound)->sin_port);
    return 0;
}

struct smtpd *smtpd_new(struct event_base *base, const struct config *cfg, struct front *front,
                        const char *cert, const char *key, char *err, size_t errlen)
{
    err[0] = '\0';
    if (cfg->smtp_listen[0] == '\0' && cfg->smtp_tls_listen[0] == '\0')
        return NULL;
    if (cert == NULL || key == NULL || cert[0] == '\0' || key[0] == '\0') {
        snprintf(err, errlen,
                 "[smtp] listeners need a certificate: set [server] tls_cert and tls_key");
        return NULL;
    }
    struct smtpd *d = xcalloc(1, sizeof *d);
    d->base = base;
    d->cfg = cfg;
    d->front = front;
    d->cert = xstrdup(cert);
    d->key = xstrdup(key);
    d->lst[1].implicit = true;
    if (gethostname(d->host, sizeof d->host) < 0 || d->host[0] == '\0')
        snprintf(d->host, sizeof d->host, "sesgate");
    d->host[sizeof d->host - 1] = '\0';
    d->tls = httpd_tls_ctx_new(cert, key, err, errlen);
    if (d->tls == NULL ||
        (cfg->smtp_listen[0] &&
         smtpd_bind(d, &d->lst[0], cfg->smtp_listen, smtpd_accept_plain_cb, err, errlen) < 0) ||
        (cfg->smtp_tls_listen[0] &&
         smtpd_bind(d, &d->lst[1], cfg->smtp_tls_listen, smtpd_accept_tls_cb, err, errlen) < 0)) {
        smtpd_free(d);
        return NULL;
    }
    return d;
}

int smtpd_reload_tls(struct smtpd *d, char *err, size_t errlen)
{
    SSL_CTX *ctx = httpd_tls_ctx_new(d->cert, d->key, err, errlen);
    if (ctx == NULL)
        return -1;
    SSL_CTX_free(d->tls); /* sessions on it hold their own reference */
    d->tls = ctx;
    log_event(LOG_INFO, "tls_reloaded", "listener", "smtp", "cert", d->cert, NULL);
    return 0;
}

void smtpd_stop_accepting(struct smtpd *d)
{
    for (size_t i = 0; i < 2; i++)
        if (d->lst[i].l)
            evconnlistener_disable(d->lst[i].l);
}

size_t smtpd_inflight(const struct smtpd *d)
{
    return d ? d->inflight : 0;
}

int smtpd_port(const struct smtpd *d, bool tls)
{
    return d ? d->lst[tls ? 1 : 0].port : 0;
}

void smtpd_free(struct smtpd *d)
{
    if (d == NULL)
        return;
    while (d->conns)
        smtpd_conn_free(d->conns);
    for (size_t i = 0; i < 2; i++)
        if (d->lst[i].l)
            evconnlistener_free(d->lst[i].l);
    SSL_CTX_free(d->tls);
    free(d->cert);
    free(d->key);
    free(d);
}
