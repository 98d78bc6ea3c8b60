/* sandbox_sns: the sandbox's SNS publisher. */
#include "sandbox_sns.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "backoff.h"
#include "buf.h"
#include "clock.h"
#include "log.h"
#include "sesmail.h"
#include "sns.h"
#include "snspub.h"
#include "upstream.h"

/* Retries of an unreachable or failing endpoint wait at most this long. */
#define SANDBOX_SNS_BACKOFF_BASE_MS 500
#define SANDBOX_SNS_BACKOFF_CAP_MS  30000
/* A call to the endpoint gives up after this long (then retried). */
#define SANDBOX_SNS_TIMEOUT_MS 10000
/* Dropped events are logged at most this often. */
#define SANDBOX_SNS_DROP_LOG_MS 1000
/* The certificates' lifetime (days): longer than any process runs. */
#define SANDBOX_SNS_CERT_DAYS 3650

/* One event: the SES notification, then (from its first try) the SNS body. */
struct sandbox_sns_item {
    struct sandbox_sns_item *next;
    struct sandbox_sns *s;
    int64_t due_ms;
    bool later;
    char *json;                     /* the SES notification */
    char message_id[37];            /* the SNS MessageId, "" until the first try */
    struct buf body;                /* the signed SNS body, kept for retries */
    struct upstream_call *call;     /* in flight */
    struct sandbox_sns_item *fnext; /* in the in-flight list */
};

struct sandbox_sns {
    struct event_base *base;
    const struct config *cfg;
    EVP_PKEY *ca_key, *key;
    X509 *ca, *cert;
    char *pem, *ca_pem;
    char topic[160];
    char sub_arn[200];
    char cert_url[128];
    char unsub_url[320];
    char *url;      /* where events go; NULL: not posting */
    char *tls_cert; /* the listener's certificate file when it is TLS, else NULL */
    struct upstream *up;
    /* waiting, oldest first: [0] now's events, [1] the later ones (each
     * queue is in order of due time) */
    struct sandbox_sns_item *head[2], *tail[2];
    struct sandbox_sns_item *flight; /* in flight */
    size_t nwaiting, ninflight;
    struct event *timer;
    size_t max_queue;     /* SANDBOX_SNS_MAX_QUEUE (a test may lower it) */
    int64_t paused_until; /* ms (monotonic): the endpoint failed, wait */
    int failures;         /* consecutive failed tries */
    uint64_t dropped, dropped_logged;
    int64_t dropped_log_ms;
    uint64_t posted, refused;
    long last_refused_status;
};

/* Random bytes from OpenSSL (aborts when its generator fails). */
static void sandbox_sns_random(unsigned char *p, size_t n)
{
    if (RAND_bytes(p, (int)n) != 1)
        abort();
}

static void sandbox_sns_item_free(struct sandbox_sns_item *it)
{
    free(it->json);
    buf_free(&it->body);
    free(it);
}

/* The waiting event due first, or NULL. */
static struct sandbox_sns_item *sandbox_sns_next(const struct sandbox_sns *s)
{
    struct sandbox_sns_item *a = s->head[0], *b = s->head[1];
    if (a == NULL || (b != NULL && b->due_ms < a->due_ms))
        return b;
    return a;
}

/* Arm the timer for the next moment something can go. */
static void sandbox_sns_schedule(struct sandbox_sns *s);

/* Pin the TLS listener's current key. */
static void sandbox_sns_repin(struct sandbox_sns *s);

/* Log the dropped events not logged yet, at most every SANDBOX_SNS_DROP_LOG_MS. */
static void sandbox_sns_log_drops(struct sandbox_sns *s, bool force)
{
    int64_t now = clock_mono_ms();
    if (s->dropped == s->dropped_logged ||
        (!force && now - s->dropped_log_ms < SANDBOX_SNS_DROP_LOG_MS))
        return;
    char n[24], total[24], cap[24];
    snprintf(n, sizeof n, "%" PRIu64, s->dropped - s->dropped_logged);
    snprintf(total, sizeof total, "%" PRIu64, s->dropped);
    snprintf(cap, sizeof cap, "%zu", s->max_queue);
    log_event(LOG_WARN, "sandbox_events_dropped", "dropped", n, "dropped_total", total, "queue_max",
              cap, NULL);
    s->dropped_logged = s->dropped;
    s->dropped_log_ms = now;
}

/* Sign it and render its SNS body (on its first try only). */
static int sandbox_sns_render(struct sandbox_sns *s, struct sandbox_sns_item *it)
{
    if (it->message_id[0])
        return 0;
    unsigned char rnd[16];
    sandbox_sns_random(rnd, sizeof rnd);
    sesmail_uuid(rnd, it->message_id);
    char ts[64];
    sesmail_iso_time(clock_wall_ms(), ts);
    struct sns_msg m = {
        .type = SNS_NOTIFICATION,
        .message_id = it->message_id,
        .topic_arn = s->topic,
        .message = it->json,
        .timestamp = ts,
        .signature_version = 2,
        .signing_cert_url = s->cert_url,
        .unsubscribe_url = s->unsub_url,
    };
    char reason[256];
    int rc = snspub_sign(&m, s->key, reason, sizeof reason);
    if (rc == 0)
        snspub_render(&m, &it->body);
    else
        log_event(LOG_ERROR, "sandbox_event_sign_failed", "reason", reason, NULL);
    buf_free(&m.signature);
    return rc;
}

/* Take it out of the in-flight list. */
static void sandbox_sns_unflight(struct sandbox_sns *s, struct sandbox_sns_item *it)
{
    for (struct sandbox_sns_item **pp = &s->flight; *pp; pp = &(*pp)->fnext)
        if (*pp == it) {
            *pp = it->fnext;
            break;
        }
    it->fnext = NULL;
    it->call = NULL;
    s->ninflight--;
}

/* upstream: the endpoint answered (or did not). */
static void sandbox_sns_done(struct upstream_response *res, void *arg)
{
    struct sandbox_sns_item *it = arg;
    struct sandbox_sns *s = it->s;
    sandbox_sns_unflight(s, it);
    if (res->error == UPSTREAM_OK && res->status >= 200 && res->status < 300) {
        if (s->failures > 0) {
            char n[24];
            snprintf(n, sizeof n, "%d", s->failures);
            log_event(LOG_INFO, "sandbox_events_resumed", "failed_tries", n, NULL);
        }
        s->failures = 0;
        s->posted++;
        sandbox_sns_item_free(it);
    } else if (res->error == UPSTREAM_OK && res->status < 500) {
        /* refused for good (the endpoint's checks): SNS does not retry a 4xx */
        s->refused++;
        if (res->status != s->last_refused_status) {
            char st[24], total[24];
            snprintf(st, sizeof st, "%ld", res->status);
            snprintf(total, sizeof total, "%" PRIu64, s->refused);
            log_event(LOG_ERROR, "sandbox_event_refused", "status", st, "sns_message_id",
                      it->message_id, "refused_total", total, "url", s->url, NULL);
            s->last_refused_status = res->status;
        }
        sandbox_sns_item_free(it);
    } else {
        /* 5xx or unreachable: back at the head, everything waits */
        s->failures++;
        if (res->error == UPSTREAM_ERR_OTHER && s->tls_cert)
            sandbox_sns_repin(s); /* the listener's key may have changed (a reload) */
        uint64_t rnd = 0;
        sandbox_sns_random((unsigned char *)&rnd, sizeof rnd);
        int64_t delay = backoff_delay_ms(s->failures, SANDBOX_SNS_BACKOFF_BASE_MS,
                                         SANDBOX_SNS_BACKOFF_CAP_MS, rnd);
        if (delay < SANDBOX_SNS_BACKOFF_BASE_MS)
            delay = SANDBOX_SNS_BACKOFF_BASE_MS;
        int64_t until = clock_mono_ms() + delay;
        if (until > s->paused_until)
            s->paused_until = until;
        if (s->failures == 1 || s->failures % 10 == 0) {
            char st[24], n[24], d[24];
            snprintf(st, sizeof st, "%ld", res->status);
            snprintf(n, sizeof n, "%d", s->failures);
            snprintf(d, sizeof d, "%" PRId64, delay);
            log_event(LOG_WARN, "sandbox_events_retry", "status", st, "error",
                      res->error == UPSTREAM_OK ? NULL : res->errmsg, "failed_tries", n, "delay_ms",
                      d, NULL);
        }
        int q = it->later;
        it->next = s->head[q];
        s->head[q] = it;
        if (s->tail[q] == NULL)
            s->tail[q] = it;
        s->nwaiting++;
    }
    sandbox_sns_schedule(s);
}

/* Start the POST of it. */
static void sandbox_sns_post(struct sandbox_sns *s, struct sandbox_sns_item *it)
{
    struct curl_slist *h = NULL;
    struct buf line = BUF_INIT;
    h = curl_slist_append(h, "Content-Type: text/plain; charset=UTF-8");
    h = curl_slist_append(h, "User-Agent: Amazon Simple Notification Service Agent");
    h = curl_slist_append(h, "x-amz-sns-message-type: Notification");
    buf_printf(&line, "x-amz-sns-message-id: %s", it->message_id);
    h = curl_slist_append(h, buf_cstr(&line));
    buf_reset(&line);
    buf_printf(&line, "x-amz-sns-topic-arn: %s", s->topic);
    h = curl_slist_append(h, buf_cstr(&line));
    buf_reset(&line);
    buf_printf(&line, "x-amz-sns-subscription-arn: %s", s->sub_arn);
    h = curl_slist_append(h, buf_cstr(&line));
    h = curl_slist_append(h, "Expect:");
    buf_free(&line);
    if (h == NULL)
        abort();
    it->fnext = s->flight;
    s->flight = it;
    s->ninflight++;
    it->call =
        upstream_start(s->up, "POST", s->url, h, it->body.data, it->body.len, sandbox_sns_done, it);
}

/* Send what is due, as far as the in-flight cap allows. */
static void sandbox_sns_pump(struct sandbox_sns *s)
{
    int64_t now = clock_mono_ms();
    struct sandbox_sns_item *next;
    while (s->url && (next = sandbox_sns_next(s)) != NULL &&
           s->ninflight < SANDBOX_SNS_MAX_INFLIGHT && now >= s->paused_until &&
           now >= next->due_ms) {
        /* one try at a time while the endpoint is failing */
        if (s->failures > 0 && s->ninflight > 0)
            break;
        struct sandbox_sns_item *it = next;
        int q = it->later;
        s->head[q] = it->next;
        if (s->head[q] == NULL)
            s->tail[q] = NULL;
        it->next = NULL;
        s->nwaiting--;
        if (sandbox_sns_render(s, it) < 0) {
            sandbox_sns_item_free(it);
            continue;
        }
        sandbox_sns_post(s, it);
    }
    sandbox_sns_log_drops(s, false);
}

/* libevent: time to look again. */
static void sandbox_sns_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sandbox_sns *s = arg;
    sandbox_sns_pump(s);
    sandbox_sns_schedule(s);
}

static void sandbox_sns_schedule(struct sandbox_sns *s)
{
    struct sandbox_sns_item *next = sandbox_sns_next(s);
    if (s->url == NULL || next == NULL) {
        if (s->dropped != s->dropped_logged)
            sandbox_sns_log_drops(s, true);
        return;
    }
    int64_t now = clock_mono_ms(), at = next->due_ms;
    if (s->paused_until > at)
        at = s->paused_until;
    if (s->ninflight >= SANDBOX_SNS_MAX_INFLIGHT || (s->failures > 0 && s->ninflight > 0))
        return; /* a completion comes first */
    if (s->dropped != s->dropped_logged && at - now > SANDBOX_SNS_DROP_LOG_MS)
        at = now + SANDBOX_SNS_DROP_LOG_MS;
    struct timeval tv = clock_timeval(at > now ? at - now : 0);
    evtimer_add(s->timer, &tv);
}

void sandbox_sns_publish(struct sandbox_sns *s, const char *json, size_t len, bool later)
{
    if (s == NULL || s->url == NULL)
        return;
    if (s->nwaiting + s->ninflight >= s->max_queue) {
        s->dropped++;
        sandbox_sns_schedule(s);
        return;
    }
    struct sandbox_sns_item *it = xcalloc(1, sizeof *it);
    it->s = s;
    it->json = xstrndup(json, len);
    it->due_ms = clock_mono_ms() + SANDBOX_SNS_DELAY_MS * (later ? 2 : 1);
    it->later = later;
    int q = later;
    if (s->tail[q])
        s->tail[q]->next = it;
    else
        s->head[q] = it;
    s->tail[q] = it;
    s->nwaiting++;
    sandbox_sns_schedule(s);
}

/* The pin of the certificate in file (its key's SHA-256, as libcurl's
 * CURLOPT_PINNEDPUBLICKEY takes it) into out. Returns 0 or -1. */
static int sandbox_sns_pin(const char *file, struct buf *out)
{
    FILE *f = fopen(file, "r");
    if (f == NULL)
        return -1;
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    unsigned char *der = NULL;
    int n = x ? i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der) : -1;
    X509_free(x);
    ERR_clear_error();
    if (n <= 0)
        return -1;
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(der, (size_t)n, md);
    OPENSSL_free(der);
    char b64[64];
    EVP_EncodeBlock((unsigned char *)b64, md, sizeof md);
    buf_printf(out, "sha256//%s", b64);
    return 0;
}

/* Pin the listener's key, read from its certificate file: this process's
 * own listener is known by its key, whatever names its certificate
 * carries. */
static void sandbox_sns_repin(struct sandbox_sns *s)
{
    struct buf pin = BUF_INIT;
    if (sandbox_sns_pin(s->tls_cert, &pin) == 0)
        upstream_set_pin(s->up, pin.data);
    else
        log_event(LOG_ERROR, "sandbox_events_pin_failed", "file", s->tls_cert, NULL);
    buf_free(&pin);
}

void sandbox_sns_post_to_listener(struct sandbox_sns *s)
{
    const struct config *cfg = s->cfg;
    const char *listen = cfg->listen;
    const char *colon = strrchr(listen, ':');
    size_t hl = colon ? (size_t)(colon - listen) : 0;
    const char *port = colon ? colon + 1 : "";
    char host[128];
    snprintf(host, sizeof host, "%.*s", (int)(hl < 100 ? hl : 100), listen);
    /* a wildcard address is reached on loopback */
    if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "*") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    else if (strcmp(host, "[::]") == 0 || strcmp(host, "::") == 0)
        snprintf(host, sizeof host, "[::1]");
    bool tls = cfg->tls_cert && cfg->tls_cert[0];
    struct buf url = BUF_INIT;
    buf_printf(&url, "%s://%s:%s%s", tls ? "https" : "http", host, port, cfg->feedback_path);
    /* test hook: the events go to a test's own server instead */
    const char *hook = getenv("TEST_SESGATE_SANDBOX_EVENTS_URL");
    if (hook && *hook) {
        buf_reset(&url);
        buf_adds(&url, hook);
        tls = false;
    }
    free(s->url);
    s->url = buf_detach(&url, NULL);
    upstream_free(s->up);
    s->up = upstream_new(s->base, SANDBOX_SNS_TIMEOUT_MS, 64 * 1024, NULL);
    free(s->tls_cert);
    s->tls_cert = tls ? xstrdup(cfg->tls_cert) : NULL;
    if (tls)
        sandbox_sns_repin(s);
    log_event(LOG_INFO, "sandbox_events", "url", s->url, "topic", s->topic, "cert_url", s->cert_url,
              NULL);
}

struct sandbox_sns *sandbox_sns_new(struct event_base *base, const struct config *cfg,
                                    const char *authority, char *err, size_t errlen)
{
    struct sandbox_sns *s = xcalloc(1, sizeof *s);
    s->base = base;
    s->cfg = cfg;
    s->timer = evtimer_new(base, sandbox_sns_timer_cb, s);
    s->max_queue = SANDBOX_SNS_MAX_QUEUE;
    /* test hook: a smaller cap, so that a test can reach it */
    const char *cap = getenv("TEST_SESGATE_SANDBOX_EVENTS_MAX");
    if (cap && atoi(cap) > 0 && atoi(cap) < SANDBOX_SNS_MAX_QUEUE)
        s->max_queue = (size_t)atoi(cap);
    snprintf(s->topic, sizeof s->topic, "arn:aws:sns:%.64s:%s:%s", cfg->upstreams[0].region,
             SANDBOX_SNS_TOPIC_ACCOUNT, SANDBOX_SNS_TOPIC_NAME);
    unsigned char rnd[16];
    char sub[37];
    sandbox_sns_random(rnd, sizeof rnd);
    sesmail_uuid(rnd, sub);
    snprintf(s->sub_arn, sizeof s->sub_arn, "%s:%s", s->topic, sub);
    snprintf(s->cert_url, sizeof s->cert_url, "https://%.64s%s", authority, SANDBOX_SNS_CERT_PATH);
    snprintf(s->unsub_url, sizeof s->unsub_url,
             "https://%.64s/?Action=Unsubscribe&SubscriptionArn=%s", authority, s->sub_arn);
    time_t now = (time_t)(clock_wall_ms() / 1000);
    s->ca_key = EVP_EC_gen("P-256");
    s->key = EVP_RSA_gen(2048);
    if (s->ca_key && s->key) {
        sandbox_sns_random(rnd, sizeof rnd);
        s->ca = snspub_cert("sesgate sandbox SNS CA", s->ca_key, NULL, NULL, true, now,
                            SANDBOX_SNS_CERT_DAYS, rnd);
        sandbox_sns_random(rnd, sizeof rnd);
        if (s->ca)
            s->cert = snspub_cert("sesgate sandbox SNS", s->key, s->ca, s->ca_key, false, now,
                                  SANDBOX_SNS_CERT_DAYS, rnd);
    }
    struct buf pem = BUF_INIT, capem = BUF_INIT;
    if (s->cert == NULL || snspub_pem(s->cert, &pem) < 0 || snspub_pem(s->ca, &capem) < 0) {
        snprintf(err, errlen, "cannot make the SNS signing certificate: %s",
                 ERR_reason_error_string(ERR_peek_error()));
        ERR_clear_error();
        buf_free(&pem);
        buf_free(&capem);
        sandbox_sns_free(s);
        return NULL;
    }
    s->pem = buf_detach(&pem, NULL);
    s->ca_pem = buf_detach(&capem, NULL);
    return s;
}

const char *sandbox_sns_topic(const struct sandbox_sns *s)
{
    return s->topic;
}

const char *sandbox_sns_cert_url(const struct sandbox_sns *s)
{
    return s->cert_url;
}

const char *sandbox_sns_pem(const struct sandbox_sns *s)
{
    return s->pem;
}

const char *sandbox_sns_ca_pem(const struct sandbox_sns *s)
{
    return s->ca_pem;
}

X509 *sandbox_sns_ca(const struct sandbox_sns *s)
{
    return s->ca;
}

void sandbox_sns_free(struct sandbox_sns *s)
{
    if (s == NULL)
        return;
    sandbox_sns_log_drops(s, true);
    while (s->flight) {
        struct sandbox_sns_item *it = s->flight;
        s->flight = it->fnext;
        upstream_cancel(it->call);
        sandbox_sns_item_free(it);
    }
    for (int q = 0; q < 2; q++)
        while (s->head[q]) {
            struct sandbox_sns_item *it = s->head[q];
            s->head[q] = it->next;
            sandbox_sns_item_free(it);
        }
    upstream_free(s->up);
    if (s->timer)
        event_free(s->timer);
    free(s->url);
    free(s->tls_cert);
    free(s->pem);
    free(s->ca_pem);
    X509_free(s->cert);
    X509_free(s->ca);
    EVP_PKEY_free(s->key);
    EVP_PKEY_free(s->ca_key);
    free(s);
}
