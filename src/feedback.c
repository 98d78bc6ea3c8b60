/* feedback: the SNS endpoint (checks, certificate cache, confirmations). */
#include "feedback.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>

#include "buf.h"
#include "clock.h"
#include "events.h"
#include "log.h"
#include "metrics.h"
#include "redis.h"
#include "rscript.h"
#include "sesevent.h"
#include "sns.h"
#include "upstream.h"

/* The topic the built-in sandbox publishes to (account 000000000000, which
 * no AWS account has); allowed while the sandbox runs with [sandbox] events. */
#define FEEDBACK_SANDBOX_TOPIC "arn:aws:sns:%s:000000000000:sesgate-sandbox"

/* What the raw-delivery refusal tells the operator. */
#define FEEDBACK_RAW_HINT "raw message delivery is on: switch it off for this subscription"

struct feedback_req;

/* A certificate by URL: fetched (pem) or being fetched (waiters). */
struct feedback_cert {
    struct feedback *f;
    char *url;
    struct buf pem;
    bool fetching;
    struct upstream_call *call;
    struct feedback_req *waiters; /* linked by next_wait */
    uint64_t used;                /* f->tick at its last use (least recently used goes first) */
    bool bad;                     /* it did not read or chain: dropped after use */
    EVP_PKEY *key;                /* its key once it chained; NULL before */
    time_t key_until;             /* ... until then (UTC s): its chain's first expiry */
    struct feedback_cert *next;
};

struct feedback {
    struct event_base *base;
    const struct config *cfg;
    struct rscript *scripts;
    struct events *events;
    struct upstream *fetch;      /* system trust: SNS's hosts */
    struct upstream *fetch_test; /* the test_trust CA file: its host; NULL without */
    X509_STORE *store;           /* system default paths + the test_trust CA */
    char **topics;
    size_t ntopics;
    char *test_host; /* test_trust's HOST[:PORT]; NULL without */
    /* the certificate of a publisher in this process (feedback_trust_local) */
    char *local_url, *local_host;
    struct buf local_pem;
    X509_STORE *local_store;
    EVP_PKEY *local_key; /* its key once it chained; NULL before */
    time_t local_until;
    struct feedback_cert *certs;
    size_t ncerts;
    uint64_t tick;
    struct feedback_req *reqs; /* in flight */
    size_t inflight;
    char **causes; /* "reason\ttopic" already logged */
    size_t ncauses;
    bool causes_full;
};

/* One POST, from arrival to answer. */
struct feedback_req {
    struct feedback *f;       /* NULL once f was freed (a Redis or events callback is due) */
    struct httpd_request *hr; /* NULL once the client went away */
    char id[37];
    char topic[300]; /* for the logs and causes: TopicArn, the header's, or "-" */
    struct sns_msg m;
    struct sesevent ev;
    bool has_ev;
    struct buf body;            /* a Notification's POST body, for events_apply */
    char *key;                  /* the replay guard's key (a confirmation) */
    struct upstream_call *call; /* its SubscribeURL visit */
    struct feedback_req *next_wait;
    struct feedback_req *prev, *next; /* in f->reqs */
    struct timespec start;
};

/* Milliseconds since r arrived, "%.3f". */
static void feedback_ms(const struct feedback_req *r, char out[32])
{
    struct timespec now;
    clock_mono_ts(&now);
    snprintf(out, 32, "%.3f",
             (double)(now.tv_sec - r->start.tv_sec) * 1e3 +
                 (double)(now.tv_nsec - r->start.tv_nsec) / 1e6);
}

/* Unlink r from f's requests and free it. */
static void feedback_req_free(struct feedback_req *r)
{
    struct feedback *f = r->f;
    if (f) {
        if (r->prev)
            r->prev->next = r->next;
        else
            f->reqs = r->next;
        if (r->next)
            r->next->prev = r->prev;
        f->inflight--;
    }
    sns_msg_cleanup(&r->m);
    if (r->has_ev)
        sesevent_cleanup(&r->ev);
    buf_free(&r->body);
    free(r->key);
    free(r);
}

/* Answer r (when its client is still there) with status and a one-line
 * text, and free it. */
static void feedback_answer(struct feedback_req *r, int status, const char *text)
{
    struct httpd_request *hr = r->hr;
    feedback_req_free(r);
    if (hr == NULL)
        return;
    struct httpd_header h[2] = {{"Content-Type", "text/plain; charset=utf-8"}};
    size_t nh = 1;
    if (status == 405)
        h[nh++] = (struct httpd_header){"Allow", "POST"};
    char body[256];
    int n = snprintf(body, sizeof body, "%s\n", text);
    httpd_respond(hr, status, h, nh, body, (size_t)n < sizeof body ? (size_t)n : sizeof body - 1);
}

/* The name of an SNS message type, as SNS spells it. */
static const char *feedback_type_name(enum sns_type t)
{
    switch (t) {
    case SNS_NOTIFICATION:
        return "Notification";
    case SNS_SUBSCRIPTION_CONFIRMATION:
        return "SubscriptionConfirmation";
    default:
        return "UnsubscribeConfirmation";
    }
}

/* Log a message handled (its type, what became of it, the client it was
 * for), count it and answer 200. */
static void feedback_ok(struct feedback_req *r, const char *outcome, const char *client)
{
    const char *type = feedback_type_name(r->m.type);
    char ms[32];
    feedback_ms(r, ms);
    log_event(LOG_INFO, "feedback", "id", r->id, "type", type, "outcome", outcome, "topic",
              r->topic, "sns_id", r->m.message_id, "kind",
              r->has_ev ? sesevent_kind_name(r->ev.kind) : NULL, "client", client, "status", "200",
              "ms", ms, NULL);
    metrics_feedback_message(type, outcome);
    feedback_answer(r, 200, "ok");
}

/* True the first time the cause (reason, topic) is seen: it is then logged. */
static bool feedback_cause_new(struct feedback *f, const char *reason, const char *topic)
{
    struct buf k = BUF_INIT;
    buf_printf(&k, "%s\t%s", reason, topic);
    for (size_t i = 0; i < f->ncauses; i++) {
        if (strcmp(f->causes[i], k.data) == 0) {
            buf_free(&k);
            return false;
        }
    }
    if (f->ncauses >= FEEDBACK_CAUSES) {
        buf_free(&k);
        if (!f->causes_full)
            log_event(LOG_WARN, "feedback_refused_causes_full", "causes", "256", "note",
                      "further new refusal causes are counted in "
                      "sesgate_feedback_refused_total, not logged",
                      NULL);
        f->causes_full = true;
        return false;
    }
    f->causes = xrealloc(f->causes, (f->ncauses + 1) * sizeof *f->causes);
    f->causes[f->ncauses++] = buf_detach(&k, NULL);
    return true;
}

/* Refuse r: status and a short text, logged once per (reason, topic), counted
 * by reason. */
static void feedback_refuse(struct feedback_req *r, int status, const char *reason,
                            const char *detail)
{
    metrics_feedback_refused(reason);
    if (r->f == NULL || feedback_cause_new(r->f, reason, r->topic)) {
        char st[8];
        snprintf(st, sizeof st, "%d", status);
        bool raw = strcmp(reason, "raw") == 0;
        log_event(status >= 500 ? LOG_ERROR : LOG_WARN, "feedback_refused", "id", r->id, "reason",
                  reason, "topic", r->topic, "sns_id", r->m.message_id, "status", st, "detail",
                  detail && *detail ? detail : NULL, "hint", raw ? FEEDBACK_RAW_HINT : NULL, "note",
                  "logged once per reason and topic", NULL);
    }
    char text[128];
    snprintf(text, sizeof text, "refused: %s", reason);
    feedback_answer(r, status, text);
}

/* The name of a core SNS error, as refusals are logged and counted. */
static const char *feedback_sns_reason(int rc)
{
    switch (rc) {
    case SNS_ERR_SIZE:
        return "size";
    case SNS_ERR_JSON:
        return "json";
    case SNS_ERR_RAW:
        return "raw";
    case SNS_ERR_FIELD:
        return "field";
    case SNS_ERR_TYPE:
        return "type";
    case SNS_ERR_URL:
        return "url";
    case SNS_ERR_CERT:
        return "cert";
    case SNS_ERR_CHAIN:
        return "chain";
    case SNS_ERR_SIGNATURE:
        return "signature";
    case SNS_ERR_TOPIC:
        return "topic";
    default:
        return "other";
    }
}

/* The fetcher for url: the test_trust one for the test host, else the
 * system-trusting one. */
static struct upstream *feedback_fetcher(struct feedback *f, const char *url)
{
    char why[64];
    if (f->fetch_test && sns_url_check(url, NULL, why, sizeof why) < 0)
        return f->fetch_test;
    return f->fetch;
}

/* events_apply answered. */
static void feedback_applied(void *arg, int rc, const char *client)
{
    struct feedback_req *r = arg;
    if (rc < 0) {
        feedback_refuse(r, 500, "redis", "the event could not be applied; SNS retries");
        return;
    }
    feedback_ok(r, rc == 1 ? "replay" : "applied", client ? client : "-");
}

/* A verified Notification: read its SES event and apply it. */
static void feedback_notification(struct feedback_req *r)
{
    char err[256];
    if (sesevent_parse(r->m.message, strlen(r->m.message), &r->ev, err, sizeof err) < 0) {
        feedback_refuse(r, 400, "event", err);
        return;
    }
    r->has_ev = true;
    struct httpd_request *hr = r->hr;
    size_t alen = 0;
    const char *sub = httpd_header(hr, "x-amz-sns-subscription-arn", &alen);
    char sub_arn[512];
    if (sub == NULL || alen >= sizeof sub_arn)
        alen = 0;
    memcpy(sub_arn, sub ? sub : "", alen);
    sub_arn[alen] = '\0';
    /* the body is relayed byte for byte: kept by r, since the client may
     * go away while it is applied */
    buf_add(&r->body, hr->body.data ? hr->body.data : "", hr->body.len);
    events_apply(r->f->events, &r->m, &r->ev, r->body.data, r->body.len, sub_arn, feedback_applied,
                 r);
}

/* The replay guard of a confirmation that failed was removed. */
static void feedback_unguarded(const redisReply *reply, const char *err, void *arg)
{
    (void)reply;
    (void)arg;
    if (err)
        log_event(LOG_WARN, "feedback_guard_kept", "error", err, "note",
                  "a confirmation that failed stays marked as processed until replay_window "
                  "passes",
                  NULL);
}

/* The SubscribeURL visit answered. */
static void feedback_visited(struct upstream_response *res, void *arg)
{
    struct feedback_req *r = arg;
    r->call = NULL;
    if (res->error == UPSTREAM_OK && res->status >= 200 && res->status < 300) {
        log_event(LOG_INFO, "feedback_subscription_confirmed", "id", r->id, "topic", r->topic,
                  NULL);
        feedback_ok(r, "confirmed", NULL);
        return;
    }
    char detail[300];
    if (res->error != UPSTREAM_OK)
        snprintf(detail, sizeof detail, "SubscribeURL: %s", res->errmsg);
    else
        snprintf(detail, sizeof detail, "SubscribeURL answered HTTP %ld", res->status);
    /* not confirmed: SNS's next attempt must be able to confirm */
    redis_command(rscript_redis(r->f->scripts), feedback_unguarded, NULL, "DEL %s", r->key);
    feedback_refuse(r, 503, "confirm", detail);
}

/* The replay guard of a confirmation answered. */
static void feedback_guarded(const redisReply *reply, const char *err, void *arg)
{
    struct feedback_req *r = arg;
    if (r->f == NULL) { /* the endpoint is gone */
        feedback_req_free(r);
        return;
    }
    if (err) {
        feedback_refuse(r, 500, "redis", err);
        return;
    }
    if (reply->type == REDIS_REPLY_NIL) {
        log_event(LOG_INFO, "feedback_subscription_replay", "id", r->id, "topic", r->topic, NULL);
        feedback_ok(r, "replay", NULL);
        return;
    }
    struct upstream *u = feedback_fetcher(r->f, r->m.subscribe_url);
    r->call = upstream_start(u, "GET", r->m.subscribe_url, NULL, NULL, 0, feedback_visited, r);
}

/* A verified SubscriptionConfirmation: confirm it once. */
static void feedback_confirm(struct feedback_req *r)
{
    struct feedback *f = r->f;
    char why[256];
    if (!f->cfg->feedback_confirm) {
        log_event(LOG_WARN, "feedback_subscription_pending", "id", r->id, "topic", r->topic, "note",
                  "[feedback] confirm is off: confirm the subscription yourself", NULL);
        feedback_ok(r, "not_confirmed", NULL);
        return;
    }
    if (sns_url_check(r->m.subscribe_url, f->test_host, why, sizeof why) < 0) {
        feedback_refuse(r, 403, "subscribe_url", why);
        return;
    }
    r->key = rscript_key(f->scripts, "sns:", r->m.message_id);
    redis_command(rscript_redis(f->scripts), feedback_guarded, r, "SET %s 1 NX PX %lld", r->key,
                  (long long)f->cfg->feedback_replay_ms);
}

/* The certificate is at hand (from c, NULL for the local one): check it
 * (once: its key is kept in *key until *until, when its chain's first
 * certificate expires) and the signature, then act on the message's type.
 * A certificate that cannot be read or does not chain is marked bad: not
 * kept. */
static void feedback_verify(struct feedback_req *r, struct feedback_cert *c, const char *pem,
                            size_t len, X509_STORE *store, EVP_PKEY **key, time_t *until)
{
    if (r->hr == NULL) { /* the client left: SNS sends it again */
        feedback_req_free(r);
        return;
    }
    char why[256];
    time_t now = (time_t)(clock_wall_ms() / 1000);
    int rc = 0;
    if (*key == NULL || now >= *until) {
        EVP_PKEY_free(*key);
        *key = NULL;
        rc = sns_cert_check(pem, len, store, now, key, until, why, sizeof why);
    }
    if (rc == 0)
        rc = sns_verify_key(&r->m, *key, why, sizeof why);
    if (rc < 0) {
        if (c && (rc == SNS_ERR_CERT || rc == SNS_ERR_CHAIN))
            c->bad = true;
        feedback_refuse(r, 403, feedback_sns_reason(rc), why);
        return;
    }
    switch (r->m.type) {
    case SNS_SUBSCRIPTION_CONFIRMATION:
        feedback_confirm(r);
        break;
    case SNS_UNSUBSCRIBE_CONFIRMATION:
        log_event(LOG_WARN, "feedback_unsubscribed", "id", r->id, "topic", r->topic, "note",
                  "this endpoint no longer receives the topic's messages", NULL);
        feedback_ok(r, "logged", NULL);
        break;
    default:
        feedback_notification(r);
        break;
    }
}

/* Forget cert (no request waits for it any more). */
static void feedback_cert_free(struct feedback *f, struct feedback_cert *c)
{
    for (struct feedback_cert **p = &f->certs; *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            f->ncerts--;
            break;
        }
    }
    if (c->call)
        upstream_cancel(c->call);
    free(c->url);
    buf_free(&c->pem);
    EVP_PKEY_free(c->key);
    free(c);
}

/* A certificate fetch answered: verify every request waiting for it. */
static void feedback_cert_fetched(struct upstream_response *res, void *arg)
{
    struct feedback_cert *c = arg;
    struct feedback *f = c->f;
    c->call = NULL;
    struct feedback_req *w = c->waiters;
    c->waiters = NULL;
    if (res->error == UPSTREAM_OK && res->status == 200 && res->body.len > 0) {
        buf_add(&c->pem, res->body.data, res->body.len);
        c->fetching = false;
        c->used = ++f->tick;
        while (w) {
            struct feedback_req *next = w->next_wait;
            w->next_wait = NULL;
            feedback_verify(w, c, c->pem.data, c->pem.len, f->store, &c->key, &c->key_until);
            w = next;
        }
        if (c->bad)
            feedback_cert_free(f, c);
        return;
    }
    /* not cached: the next message fetches again */
    char detail[300];
    int status = 403;
    if (res->error != UPSTREAM_OK) {
        snprintf(detail, sizeof detail, "SigningCertURL: %s", res->errmsg);
        status = 503; /* SNS retries a 5xx: the message is not lost to a network fault */
    } else {
        snprintf(detail, sizeof detail, "SigningCertURL answered HTTP %ld", res->status);
        if (res->status >= 500)
            status = 503;
    }
    feedback_cert_free(f, c);
    while (w) {
        struct feedback_req *next = w->next_wait;
        w->next_wait = NULL;
        feedback_refuse(w, status, "cert_fetch", detail);
        w = next;
    }
}

/* Find the certificate of r's SigningCertURL: from memory, from the cache,
 * or fetched (r waits, with every other request for the same URL). */
static void feedback_cert_get(struct feedback_req *r)
{
    struct feedback *f = r->f;
    const char *url = r->m.signing_cert_url;
    if (f->local_url && strcmp(url, f->local_url) == 0) {
        feedback_verify(r, NULL, f->local_pem.data, f->local_pem.len, f->local_store, &f->local_key,
                        &f->local_until);
        return;
    }
    struct feedback_cert *c = f->certs, *lru = NULL;
    for (; c; c = c->next) {
        if (strcmp(c->url, url) == 0)
            break;
        if (!c->fetching && (lru == NULL || c->used < lru->used))
            lru = c;
    }
    if (c && !c->fetching) {
        c->used = ++f->tick;
        feedback_verify(r, c, c->pem.data, c->pem.len, f->store, &c->key, &c->key_until);
        if (c->bad)
            feedback_cert_free(f, c);
        return;
    }
    if (c) {
        r->next_wait = c->waiters;
        c->waiters = r;
        return;
    }
    if (f->ncerts >= FEEDBACK_CERTS) {
        if (lru == NULL) {
            feedback_refuse(r, 503, "cert_fetch", "too many certificates being fetched at once");
            return;
        }
        feedback_cert_free(f, lru);
    }
    c = xcalloc(1, sizeof *c);
    c->f = f;
    c->url = xstrdup(url);
    c->fetching = true;
    c->waiters = r;
    c->next = f->certs;
    f->certs = c;
    f->ncerts++;
    c->call = upstream_start(feedback_fetcher(f, url), "GET", url, NULL, NULL, 0,
                             feedback_cert_fetched, c);
}

/* The client went away: nothing is answered; the work in progress goes on
 * (a confirmation half done is finished) and frees r at its end. */
static void feedback_abort(struct httpd_request *hr, void *arg)
{
    struct feedback_req *r = arg;
    (void)hr;
    r->hr = NULL;
}

/* Copy the topic a refusal is logged under: TopicArn once parsed, else the
 * x-amz-sns-topic-arn header when it is an ARN, else "-". */
static void feedback_topic_of(struct feedback_req *r)
{
    if (r->m.topic_arn) {
        snprintf(r->topic, sizeof r->topic, "%s", r->m.topic_arn);
        return;
    }
    snprintf(r->topic, sizeof r->topic, "-");
    size_t n = 0;
    const char *h = r->hr ? httpd_header(r->hr, "x-amz-sns-topic-arn", &n) : NULL;
    if (h && n < sizeof r->topic) {
        char t[sizeof r->topic];
        memcpy(t, h, n);
        t[n] = '\0';
        if (sns_topic_arn_valid(t))
            memcpy(r->topic, t, n + 1);
    }
}

/* A request context for hr (freed by feedback_answer). */
static struct feedback_req *feedback_req_new(struct feedback *f, struct httpd_request *hr,
                                             const char *id)
{
    struct feedback_req *r = xcalloc(1, sizeof *r);
    r->f = f;
    r->hr = hr;
    snprintf(r->id, sizeof r->id, "%s", id);
    clock_mono_ts(&r->start);
    r->next = f->reqs;
    if (f->reqs)
        f->reqs->prev = r;
    f->reqs = r;
    f->inflight++;
    feedback_topic_of(r);
    return r;
}

void feedback_handle(struct feedback *f, struct httpd_request *hr, const char *id)
{
    struct feedback_req *r = feedback_req_new(f, hr, id);
    if (strcmp(hr->method, "POST") != 0) {
        feedback_refuse(r, 405, "method", "only POST");
        return;
    }
    char why[256];
    int rc = sns_parse(hr->body.data ? hr->body.data : "", hr->body.len, &r->m, why, sizeof why);
    if (rc < 0) {
        sns_msg_cleanup(&r->m);
        feedback_refuse(r, 403, feedback_sns_reason(rc), why);
        return;
    }
    feedback_topic_of(r);
    /* the topic first: nothing is fetched or confirmed for another's topic */
    if ((rc = sns_topic_check(r->m.topic_arn, (const char *const *)f->topics, f->ntopics, why,
                              sizeof why)) < 0) {
        feedback_refuse(r, 403, feedback_sns_reason(rc), why);
        return;
    }
    bool local = f->local_url && strcmp(r->m.signing_cert_url, f->local_url) == 0;
    if (!local && sns_url_check(r->m.signing_cert_url, f->test_host, why, sizeof why) < 0) {
        feedback_refuse(r, 403, "url", why);
        return;
    }
    httpd_set_abort(hr, feedback_abort, r);
    feedback_cert_get(r);
}

void feedback_reject(struct feedback *f, struct httpd_request *hr, bool too_large, const char *id)
{
    struct feedback_req *r = feedback_req_new(f, hr, id);
    if (too_large)
        feedback_refuse(r, 403, "size", "the body is over the listener's max_body");
    else
        feedback_refuse(r, 400, "http", "a malformed or late HTTP request");
}

bool feedback_match(const struct feedback *f, const struct httpd_request *hr)
{
    const char *p = f->cfg->feedback_path;
    return hr->path && strlen(p) == hr->path_len && memcmp(p, hr->path, hr->path_len) == 0;
}

size_t feedback_inflight(const struct feedback *f)
{
    return f->inflight;
}

/* Split [feedback] topics (comma-separated, blanks trimmed) into f->topics. */
static void feedback_topics(struct feedback *f, const char *list)
{
    for (const char *s = list; *s;) {
        size_t n = strcspn(s, ",");
        const char *a = s, *e = s + n;
        while (a < e && (*a == ' ' || *a == '\t'))
            a++;
        while (e > a && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > a) {
            f->topics = xrealloc(f->topics, (f->ntopics + 1) * sizeof *f->topics);
            f->topics[f->ntopics++] = xstrndup(a, (size_t)(e - a));
        }
        s += n;
        if (*s == ',')
            s++;
    }
}

struct feedback *feedback_new(struct event_base *base, const struct config *cfg,
                              struct rscript *scripts, struct events *events, char *err,
                              size_t errlen)
{
    struct feedback *f = xcalloc(1, sizeof *f);
    f->base = base;
    f->cfg = cfg;
    f->scripts = scripts;
    f->events = events;
    feedback_topics(f, cfg->feedback_topics);
    if (cfg->sandbox_started && cfg->sandbox_events) {
        struct buf t = BUF_INIT;
        buf_printf(&t, FEEDBACK_SANDBOX_TOPIC, cfg->upstreams[0].region);
        f->topics = xrealloc(f->topics, (f->ntopics + 1) * sizeof *f->topics);
        f->topics[f->ntopics++] = buf_detach(&t, NULL);
    }
    f->store = X509_STORE_new();
    if (f->store == NULL || X509_STORE_set_default_paths(f->store) != 1) {
        snprintf(err, errlen, "[feedback]: the system's trust store cannot be loaded");
        feedback_free(f);
        return NULL;
    }
    f->fetch = upstream_new(base, FEEDBACK_FETCH_MS, FEEDBACK_CERT_MAX, NULL);
    const char *tt = cfg->feedback_test_trust;
    if (*tt) {
        const char *sp = strchr(tt, ' ');
        char *ca = xstrndup(tt, sp ? (size_t)(sp - tt) : strlen(tt));
        f->test_host = xstrdup(sp ? sp + 1 : "");
        if (X509_STORE_load_file(f->store, ca) != 1) {
            snprintf(err, errlen, "[feedback] test_trust: cannot read the CA file %s", ca);
            ERR_clear_error();
            free(ca);
            feedback_free(f);
            return NULL;
        }
        f->fetch_test = upstream_new(base, FEEDBACK_FETCH_MS, FEEDBACK_CERT_MAX, ca);
        log_event(LOG_WARN, "feedback_test_trust", "ca_file", ca, "host", f->test_host, "note",
                  "an extra CA and certificate host are trusted: for tests only", NULL);
        free(ca);
    }
    ERR_clear_error();
    return f;
}

int feedback_trust_local(struct feedback *f, const char *url, const char *pem, X509 *ca)
{
    if (strncasecmp(url, "https://", 8) != 0)
        return -1;
    const char *h = url + 8;
    size_t n = strcspn(h, "/?#");
    if (n == 0 || h[n] != '/')
        return -1;
    char *host = xstrndup(h, n), why[128];
    if (sns_url_check(url, host, why, sizeof why) < 0) {
        free(host);
        return -1;
    }
    X509_STORE *st = X509_STORE_new();
    if (st == NULL || X509_STORE_add_cert(st, ca) != 1) {
        X509_STORE_free(st);
        free(host);
        return -1;
    }
    free(f->local_url);
    free(f->local_host);
    X509_STORE_free(f->local_store);
    EVP_PKEY_free(f->local_key);
    f->local_key = NULL;
    buf_free(&f->local_pem);
    f->local_url = xstrdup(url);
    f->local_host = host;
    f->local_store = st;
    buf_adds(&f->local_pem, pem);
    return 0;
}

void feedback_free(struct feedback *f)
{
    if (f == NULL)
        return;
    /* requests waiting for a certificate or a SubscribeURL: dropped */
    for (struct feedback_cert *c = f->certs; c; c = c->next) {
        for (struct feedback_req *w = c->waiters; w;) {
            struct feedback_req *next = w->next_wait;
            feedback_req_free(w);
            w = next;
        }
        c->waiters = NULL;
    }
    while (f->certs)
        feedback_cert_free(f, f->certs);
    for (struct feedback_req *r = f->reqs; r;) {
        struct feedback_req *next = r->next;
        if (r->call) {
            upstream_cancel(r->call);
            r->call = NULL;
            feedback_req_free(r);
        } else {
            r->f = NULL; /* its Redis or events callback frees it */
            r->hr = NULL;
        }
        r = next;
    }
    upstream_free(f->fetch);
    upstream_free(f->fetch_test);
    X509_STORE_free(f->store);
    X509_STORE_free(f->local_store);
    EVP_PKEY_free(f->local_key);
    for (size_t i = 0; i < f->ntopics; i++)
        free(f->topics[i]);
    free(f->topics);
    for (size_t i = 0; i < f->ncauses; i++)
        free(f->causes[i]);
    free(f->causes);
    free(f->test_host);
    free(f->local_url);
    free(f->local_host);
    buf_free(&f->local_pem);
    free(f);
}
