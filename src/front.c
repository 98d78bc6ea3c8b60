/* front: the SES endpoint (authentication, policy, pass-through, sends). */
#include "front.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <time.h>

#include "backoff.h"
#include "clock.h"
#include "httpd.h"
#include "inflight.h"
#include "copybody.h"
#include "fanout.h"
#include "form.h"
#include "feedback.h"
#include "limiter.h"
#include "log.h"
#include "bulk.h"
#include "queue.h"
#include "redis.h"
#include "reqcheck.h"
#include "resign.h"
#include "route.h"
#include "metrics.h"
#include "sesreq.h"
#include "sesans.h"
#include "seserr.h"
#include "sigv4.h"
#include "suplist.h"
#include "rscript.h"
#include "util.h"

struct front {
    struct event_base *base;
    const struct config *cfg;
    struct httpd *httpd;
    struct sigv4_key_cache *client_keys; /* one per cfg->clients entry */
    struct front_up *ups;                /* one per cfg->upstreams entry */
    const char **regions;                /* every upstream's region: what a client may sign for */
    struct queue *queue;                 /* NULL without Redis */
    struct feedback *feedback;           /* the SNS endpoint; NULL when off */
    size_t inflight;
    uint64_t rng[2];        /* request id generator state */
    int64_t skew_logged_ms; /* the last upstream_clock_skew warning (monotonic ms) */
};

/* What the front holds of one upstream (cfg->upstreams[i]). */
struct front_up {
    struct upstream *up;       /* its HTTP client */
    struct resign *resign;     /* its signer */
    struct limiter *lim;       /* NULL: its sends are not paced */
    struct timespec pace_next; /* no paced send leaves before (CLOCK_MONOTONIC) */
};

/* A v1 bulk call may carry this many times the parameters of another
 * request: each destination has its addresses, replacement data and tags. */
#define FRONT_SUBMIT_WAIT_MS 240000 /* an SMTP message not queued waits this long for its turn */
#define FRONT_BULK_PARAMS    4

/* One SES request, from arrival to answer. */
struct front_req {
    struct front *f;
    struct httpd_request *hr; /* NULL for a submission in process (front_submit_raw) */
    char id[37];
    /* a submission in process: its body, its answer's callback (NULL once
     * the submitter let go), where it came from */
    bool inproc;
    struct buf own_body;
    front_submit_cb done;
    void *done_arg;
    char peer[64];
    const char *why;            /* static: why a send was refused (front_outcome) */
    bool partial;               /* refused after some recipients may have it (front_outcome) */
    struct front_req **pending; /* the submitter's handle, cleared once answered */
    enum sesreq_api api;
    size_t v2_off;
    struct sesreq sr;
    const struct config_client *client;
    size_t client_index;
    size_t route;    /* the upstream the call goes to: an index into cfg->upstreams */
    char region[64]; /* the region the client signed for; "" for a submission in process */
    char payload_hash[UTIL_SHA256_HEX_LEN + 1];
    struct buf fwd_query; /* the query forwarded upstream (auth parameters removed) */
    struct upstream_call *call;
    struct timespec start;
    struct buf send_body; /* a body sesgate built (a stripped tag) */
    /* copy 0 of a sync batch, produced as libcurl sends it (c0_on) */
    struct copybody_batch c0_batch;
    struct copybody c0;
    bool c0_on;
    size_t held; /* bytes of the forwarded body counted in flight */
    struct fanout_plan plan;
    char batch_id[37];           /* "" unless the request became a batch */
    bool copy0;                  /* a sync batch: copy 0 goes upstream before the rest is queued */
    struct front_answer *answer; /* copy 0's SES answer, relayed once the rest is queued */
    bool enqueuing;              /* queue_enqueue's callback is still to come */
    bool limiting;               /* limiter_take's callback is still to come */
    bool suping;                 /* the suppression list lookup's answer is still to come */
    int sup_use;                 /* what the lookup is for (enum front_sup_use) */
    struct event *pace_timer;    /* the send waits for its reserved time */
    int64_t cost;                /* recipients the send counts for */
    double span_ms;              /* the account's time the send's recipients take */
    struct timespec pace_deadline; /* a client rate refusal is retried until then */
    bool abandoned;                /* the client left while copy 0 or the enqueue was pending */
    /* a bulk call: SES's results for its first bulk_sync units (sent before
     * the answer), the others queued */
    struct bulk_result *bulk_res;
    size_t bulk_sync;
};

/* The SES answer to copy 0 of a sync batch. */
struct front_answer {
    long status;
    char content_type[128];
    char request_id[128];
    struct buf body;
};

/* A 128-bit xorshift step: request ids need uniqueness, not secrecy. */
static uint64_t front_rand(struct front *f)
{
    uint64_t s1 = f->rng[0];
    const uint64_t s0 = f->rng[1];
    f->rng[0] = s0;
    s1 ^= s1 << 23;
    f->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return f->rng[1] + s0;
}

/* Write a fresh UUID (version 4 layout) into out[37]. */
static void front_request_id(struct front *f, char out[37])
{
    unsigned char b[16];
    uint64_t a = front_rand(f), c = front_rand(f);
    memcpy(b, &a, 8);
    memcpy(b + 8, &c, 8);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    char hex[33];
    util_hex(b, 16, hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

/* Milliseconds since the request arrived. */
static double front_elapsed_ms(const struct front_req *r)
{
    struct timespec now;
    clock_mono_ts(&now);
    return (double)(now.tv_sec - r->start.tv_sec) * 1e3 +
           (double)(now.tv_nsec - r->start.tv_nsec) / 1e6;
}

/* Let go of copy 0's body and the message it was made from. */
static void front_copy0_release(struct front_req *r)
{
    if (!r->c0_on)
        return;
    copybody_cleanup(&r->c0);
    copybody_batch_cleanup(&r->c0_batch);
    r->c0_on = false;
}

/* upstream: the next bytes of copy 0's body. */
static size_t front_copy0_read(void *arg, char *out, size_t n)
{
    struct front_req *r = arg;
    return copybody_read(&r->c0, out, n);
}

/* upstream: copy 0's body from its first byte again. */
static void front_copy0_rewind(void *arg)
{
    struct front_req *r = arg;
    copybody_rewind(&r->c0);
}

/* Log the answered request, count it, and free the context. */
static void front_finish(struct front_req *r, int status, const char *error_code)
{
    const char *action = r->sr.action ? r->sr.action : "unknown";
    metrics_request(action, status);
    char status_s[8], ms[32];
    snprintf(status_s, sizeof status_s, "%d", status);
    snprintf(ms, sizeof ms, "%.3f", front_elapsed_ms(r));
    log_event(status >= 500 ? LOG_WARN : LOG_INFO, "request", "id", r->id, "peer",
              r->hr        ? r->hr->peer
              : r->peer[0] ? r->peer
                           : "-",
              "client", r->client ? r->client->name : "-", "api", r->api == SESREQ_V2 ? "v2" : "v1",
              "action", action, "batch", r->batch_id[0] ? r->batch_id : NULL, "status", status_s,
              "error", error_code, "ms", ms, NULL);
    r->f->inflight--;
    metrics_inflight(-1);
    if (r->held > 0)
        inflight_release(r->held);
    sesreq_cleanup(&r->sr);
    fanout_plan_cleanup(&r->plan);
    buf_free(&r->fwd_query);
    buf_free(&r->send_body);
    buf_free(&r->own_body);
    front_copy0_release(r);
    if (r->pace_timer)
        event_free(r->pace_timer);
    if (r->answer)
        buf_free(&r->answer->body);
    free(r->answer);
    free(r->bulk_res);
    free(r);
}

/* Answer r: over HTTP, or through a submission's callback with what the
 * answer says (status, MessageId, batch, SES's error code and message).
 * r is freed first (front_finish). */
/* Replace XML's five entities in s (an SES v1 error message) in place. */
static void front_xml_unescape(char *s)
{
    static const struct {
        const char *ent;
        char c;
    } ents[] = {{"&apos;", '\''}, {"&quot;", '"'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}};
    char *w = s;
    for (const char *p = s; *p;) {
        size_t i = 0;
        while (i < sizeof ents / sizeof ents[0] &&
               strncmp(p, ents[i].ent, strlen(ents[i].ent)) != 0)
            i++;
        if (i < sizeof ents / sizeof ents[0]) {
            *w++ = ents[i].c;
            p += strlen(ents[i].ent);
        } else {
            *w++ = *p++;
        }
    }
    *w = '\0';
}

static void front_reply_e(struct front_req *r, int status, const char *error_code,
                          const struct httpd_header *h, size_t nh, const char *body, size_t len,
                          const struct seserr *e);

static void front_reply(struct front_req *r, int status, const char *error_code,
                        const struct httpd_header *h, size_t nh, const char *body, size_t len)
{
    front_reply_e(r, status, error_code, h, nh, body, len, NULL);
}

/* front_reply; e: sesgate's own error (its message as it is, not read back
 * from the rendered body). */
static void front_reply_e(struct front_req *r, int status, const char *error_code,
                          const struct httpd_header *h, size_t nh, const char *body, size_t len,
                          const struct seserr *e)
{
    struct httpd_request *hr = r->hr;
    if (!r->inproc) {
        front_finish(r, status, error_code);
        httpd_respond(hr, status, h, nh, body, len);
        return;
    }
    front_submit_cb cb = r->done;
    void *arg = r->done_arg;
    if (r->pending)
        *r->pending = NULL;
    struct front_outcome o = {.status = status, .why = r->why, .partial = r->partial};
    char mid[256] = "", code[128] = "", message[512] = "", batch[37] = "", rid[128] = "";
    const char *etype = NULL;
    for (size_t i = 0; i < nh; i++) {
        if (strcasecmp(h[i].name, "X-Sesgate-Batch-Id") == 0)
            snprintf(batch, sizeof batch, "%s", h[i].value);
        else if (strcasecmp(h[i].name, "x-amzn-RequestId") == 0)
            snprintf(rid, sizeof rid, "%s", h[i].value);
        else if (strcasecmp(h[i].name, "x-amzn-ErrorType") == 0)
            etype = h[i].value;
    }
    if (status >= 200 && status < 300) {
        if (!sesans_message_id(1, body ? body : "", len, mid, sizeof mid))
            mid[0] = '\0';
    } else if (e != NULL) {
        snprintf(message, sizeof message, "%s", e->message);
    } else {
        sesans_error(1, etype, body ? body : "", len, code, sizeof code, message, sizeof message);
        front_xml_unescape(message);
    }
    o.message_id = mid;
    o.batch_id = batch;
    o.request_id = rid;
    o.error_code = code[0] ? code : error_code ? error_code : "";
    o.message = message;
    front_finish(r, status, error_code);
    if (cb)
        cb(&o, arg);
}

/* Answer with an SES error rendered for the request's API. */
static void front_fail(struct front_req *r, const struct seserr *e)
{
    struct buf body = BUF_INIT;
    const char *ctype, *etype;
    char id[sizeof r->id];
    memcpy(id, r->id, sizeof id); /* r is freed before the answer is written */
    int status = seserr_render(e, (int)r->api, id, &body, &ctype, &etype);
    struct httpd_header h[3] = {{"Content-Type", ctype}, {"x-amzn-RequestId", id}};
    size_t nh = 2;
    if (etype)
        h[nh++] = (struct httpd_header){"x-amzn-ErrorType", etype};
    const char *code = seserr_wire_code(e->code, (int)r->api);
    front_reply_e(r, status, code, h, nh, body.data, body.len, e);
    buf_free(&body);
}

/* Refuse an unauthenticated or unauthorized request (counted by reason). */
static void front_refuse(struct front_req *r, const struct seserr *e)
{
    metrics_auth_failure(seserr_name(e->code));
    front_fail(r, e);
}

/* Copy the raw query without the presigning parameters (X-Amz-*). */
static void front_strip_auth_params(const char *q, size_t len, struct buf *out)
{
    for (size_t i = 0; i < len;) {
        const char *amp = memchr(q + i, '&', len - i);
        size_t end = amp ? (size_t)(amp - q) : len;
        if (end > i && !(end - i >= 6 && strncasecmp(q + i, "X-Amz-", 6) == 0)) {
            if (out->len)
                buf_addc(out, '&');
            buf_add(out, q + i, end - i);
        }
        i = end + 1;
    }
}

/* The upstream r is routed to. */
static struct front_up *front_up(const struct front_req *r)
{
    return &r->f->ups[r->route];
}

/* The name of the upstream r is routed to (its batches' key infix). */
static const char *front_upstream_name(const struct front_req *r)
{
    return r->f->cfg->upstreams[r->route].name;
}

/* Route an authorized request to its upstream (route_pick: the client's
 * upstream, the sender, the signed region, [upstream]). */
static void front_route(struct front_req *r)
{
    const struct config *cfg = r->f->cfg;
    r->route = route_pick(cfg, r->client, r->sr.from, r->sr.nfrom, r->region[0] ? r->region : NULL,
                          strlen(r->region));
    if (r->route >= cfg->nupstreams || r->f->ups[r->route].up == NULL)
        r->route = 0;
}

/* Authenticate the request's SigV4 signature (reqcheck, against the
 * client table, at the wall clock's now). Returns 0, or -1 with e set. */
static int front_authenticate(struct front_req *r, struct seserr *e)
{
    struct front *f = r->f;
    struct httpd_request *hr = r->hr;
    const struct config *cfg = f->cfg;
    struct reqcheck_policy p = {
        .region = cfg->upstreams[0].region,
        .clock_skew_ms = cfg->clock_skew_ms,
        .clients = cfg->clients,
        .nclients = cfg->nclients,
        .presigned = true,
        .regions = f->regions,
        .nregions = cfg->nupstreams,
    };
    struct sigv4_request sreq;
    httpd_sigv4_request(hr, r->payload_hash, &sreq);
    struct buf storage = BUF_INIT;
    struct reqcheck_auth ra;
    time_t now = (time_t)(clock_wall_ms() / 1000);
    int rc = reqcheck_request(&p, &sreq, now, &storage, &ra, e);
    if (ra.client < cfg->nclients) {
        r->client = &cfg->clients[ra.client];
        r->client_index = ra.client;
    }
    if (rc < 0) {
        buf_free(&storage);
        return -1;
    }
    snprintf(r->region, sizeof r->region, "%.*s",
             (int)(ra.sig.region_len < sizeof r->region ? ra.sig.region_len : 0), ra.sig.region);
    if (reqcheck_verify(&sreq, &ra, r->client->secret_access_key, &f->client_keys[r->client_index],
                        e) < 0) {
        buf_free(&storage);
        return -1;
    }
    if (ra.sig.presigned)
        front_strip_auth_params(hr->query, hr->query_len, &r->fwd_query);
    else if (hr->query)
        buf_add(&r->fwd_query, hr->query, hr->query_len);
    buf_free(&storage);
    return 0;
}

/* True when a policy list holds "*". */
static bool front_has_star(char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], "*") == 0)
            return true;
    return false;
}

/* Apply the client's policy to the parsed request. Returns 0, or -1 with e set. */
static int front_authorize(struct front_req *r, struct seserr *e)
{
    const struct config_client *c = r->client;
    /* An action sesgate does not know is forwarded as it is, so it must not
     * be a way around allow_from: only fully unrestricted clients may. */
    if (r->sr.action == NULL && !front_has_star(c->allow_from, c->n_allow_from)) {
        seserr_set(e, SESERR_ACCESS_DENIED,
                   "User '%s' may only use the actions sesgate knows, since its senders are "
                   "restricted.",
                   c->name);
        return -1;
    }
    if (!sesreq_action_allowed(c->allow_actions, c->n_allow_actions, r->sr.action)) {
        seserr_set(e, SESERR_ACCESS_DENIED, "User '%s' is not authorized to perform: ses:%s",
                   c->name, r->sr.action);
        r->why = "action";
        return -1;
    }
    for (size_t i = 0; i < r->sr.nfrom; i++) {
        if (!sesreq_sender_allowed(c->allow_from, c->n_allow_from, r->sr.from[i])) {
            seserr_set(e, SESERR_ACCESS_DENIED, "User '%s' is not authorized to send from '%s'.",
                       c->name, r->sr.from[i]);
            r->why = "sender";
            return -1;
        }
    }
    return 0;
}

/* True when the upstream's error answer refuses our signing time (it is
 * then counted and logged, at most every 10 s). */
static bool front_clock_skew(struct front_req *r, const struct upstream_response *res)
{
    char code[128], message[512];
    sesans_error(r->api == SESREQ_V2 ? 2 : 1, res->error_type, res->body.data, res->body.len, code,
                 sizeof code, message, sizeof message);
    if (!backoff_clock_skew(code, message))
        return false;
    queue_clock_skew(&r->f->skew_logged_ms, code, message);
    return true;
}

/* Index the MessageIds of a send SES accepted as the client made it (not
 * a batch): SendEmail, SendRawEmail, SendTemplatedEmail and v2 SendEmail
 * under the client alone; a bulk call passed through whole, each
 * destination's under its position in the call. The writes are sent, not
 * waited for (queue_index). */
static void front_index_passed(struct front_req *r, const struct upstream_response *res)
{
    struct queue *q = r->f->queue;
    int api = r->api == SESREQ_V2 ? 2 : 1;
    if (q == NULL || r->batch_id[0] || queue_index_ttl(r->f->cfg) == 0 || res->body.data == NULL)
        return;
    if (r->sr.kind == SESREQ_SEND) {
        char mid[256];
        if (sesans_message_id(api, res->body.data, res->body.len, mid, sizeof mid))
            queue_index(q, mid, r->client->name, NULL, -1);
        return;
    }
    if (r->sr.kind != SESREQ_SEND_OTHER || r->sr.action == NULL || !bulk_action(r->sr.action))
        return;
    struct bulk_result *e = xcalloc(BULK_MAX_DESTINATIONS, sizeof *e);
    int n = bulk_answer_parse(api, res->body.data, res->body.len, e, BULK_MAX_DESTINATIONS);
    for (int d = 0; d < n; d++)
        if (bulk_status_ok(e[d].status) && e[d].message_id[0])
            queue_index(q, e[d].message_id, r->client->name, NULL, d);
    free(e);
}

/* The upstream answered: relay status, content type, request id and body
 * (an answer refusing our signing time becomes ServiceUnavailable). */
static void front_upstream_done(struct upstream_response *res, void *arg)
{
    struct front_req *r = arg;
    r->call = NULL;
    limiter_left_at(&front_up(r)->pace_next, &res->sent_at, r->span_ms);
    const char *outcome = res->error == UPSTREAM_OK ? "ok" : "error";
    metrics_upstream(res->seconds, outcome);
    if (res->error != UPSTREAM_OK) {
        struct seserr e;
        log_event(LOG_WARN, "upstream_failed", "id", r->id, "error", res->errmsg, NULL);
        if (res->error == UPSTREAM_ERR_TIMEOUT)
            seserr_set(&e, SESERR_TIMEOUT, NULL);
        else
            seserr_set(&e, SESERR_UNAVAILABLE, NULL);
        front_fail(r, &e);
        return;
    }
    if (res->status >= 400 && front_clock_skew(r, res)) {
        /* SES refused our signing time: the client's request was fine and
         * can be tried again; SES's own answer would tell its SDK that the
         * client's signature is wrong. */
        struct seserr e;
        seserr_set(&e, SESERR_UNAVAILABLE,
                   "The gateway's clock is off; the request was not sent. Try again later.");
        front_fail(r, &e);
        return;
    }
    if (res->status >= 200 && res->status < 300)
        front_index_passed(r, res);
    char id[sizeof r->id];
    memcpy(id, r->id, sizeof id); /* r is freed before the answer is written */
    char batch[sizeof r->batch_id];
    memcpy(batch, r->batch_id, sizeof batch);
    struct httpd_header h[4];
    size_t nh = 0;
    if (batch[0])
        h[nh++] = (struct httpd_header){"X-Sesgate-Batch-Id", batch};
    if (res->content_type[0])
        h[nh++] = (struct httpd_header){"Content-Type", res->content_type};
    h[nh++] = (struct httpd_header){"x-amzn-RequestId", res->request_id[0] ? res->request_id : id};
    if (res->error_type[0])
        h[nh++] = (struct httpd_header){"x-amzn-ErrorType", res->error_type};
    int status = (int)res->status;
    front_reply(r, status,
                res->status >= 400 ? (res->error_type[0] ? res->error_type : "upstream") : NULL, h,
                nh, res->body.data, res->body.len);
}

/* The client went away: cancel the upstream call and forget the request. */
static void front_abandon(struct front_req *r)
{
    log_event(LOG_INFO, "client_gone", "id", r->id, NULL);
    r->hr = NULL;
    r->done = NULL;
    if (r->pending)
        *r->pending = NULL;
    r->pending = NULL;
    if (r->limiting || r->suping || r->enqueuing || (r->copy0 && r->call)) {
        /* Copy 0 may already be at SES: the batch goes on without the
         * client; freed when the enqueue answers. */
        r->abandoned = true;
        return;
    }
    if (r->call)
        upstream_cancel(r->call);
    r->call = NULL;
    front_finish(r, 499, "client_closed"); /* frees a pending pace timer */
}

/* httpd: the client's connection closed before the answer. */
static void front_abort(struct httpd_request *hr, void *arg)
{
    (void)hr;
    front_abandon(arg);
}

/* Be told when r's client goes away (an HTTP request; a submission in
 * process is let go of with front_submit_cancel). */
static void front_watch(struct front_req *r)
{
    if (r->hr)
        httpd_set_abort(r->hr, front_abort, r);
}

/* The request's body as it came (HTTP) or as sesgate built it (in process). */
static const struct buf *front_body(const struct front_req *r)
{
    return r->inproc ? &r->own_body : &r->hr->body;
}

/* The request's body is not needed any more. */
static void front_drop_body(struct front_req *r)
{
    if (r->inproc)
        buf_free(&r->own_body);
    else
        httpd_drop_body(r->hr);
}

static void front_copy0_done(struct upstream_response *res, void *arg);

/* Re-sign the request with the upstream credentials and forward it, with
 * the client's body, or r->send_body when sesgate built one. A v1 body that
 * sesgate built holds every parameter, query string ones included: it goes
 * as a POST of a UTF-8 form with no query string. */
static void front_forward(struct front_req *r)
{
    static const char form_type[] = "application/x-www-form-urlencoded; charset=utf-8";
    struct httpd_request *hr = r->hr;
    /* a submission in process is a v1 form sesgate built */
    const char *path = r->api == SESREQ_V2 && hr ? hr->path + r->v2_off : "/";
    size_t path_len = r->api == SESREQ_V2 && hr ? hr->path_len - r->v2_off : 1;
    size_t ctlen = 0;
    const char *ctype = hr ? httpd_header(hr, "content-type", &ctlen) : NULL;
    const char *method = hr ? hr->method : "POST";
    const char *query = r->fwd_query.data;
    size_t query_len = r->fwd_query.len;
    const struct buf *body = r->send_body.data ? &r->send_body : front_body(r);
    size_t len = r->c0_on ? r->c0.len : body->len;
    if (r->c0_on || body == &r->send_body || r->inproc) {
        if (r->c0_on)
            memcpy(r->payload_hash, r->c0.sha256, sizeof r->payload_hash);
        else
            util_sha256_hex(body->data, body->len, r->payload_hash);
        if (r->api == SESREQ_V1) {
            method = "POST";
            query = NULL;
            query_len = 0;
            ctype = form_type;
            ctlen = sizeof form_type - 1;
        }
    }
    char *url;
    struct curl_slist *hl;
    int signed_rc = resign_request(front_up(r)->resign, method, path, path_len, query, query_len,
                                   ctype, ctlen, r->payload_hash, time(NULL), &url, &hl);
    if (signed_rc < 0) {
        struct seserr e;
        if (signed_rc == RESIGN_FAILED)
            seserr_set(&e, SESERR_INVALID_PARAMETER, "The request cannot be forwarded.");
        else /* no upstream credentials now: nothing sent, nothing queued; retryable */
            seserr_set(&e, SESERR_UNAVAILABLE, "%s.",
                       signed_rc == RESIGN_EXPIRED ? "Upstream credentials expired"
                                                   : "Upstream credentials not yet available");
        r->batch_id[0] = '\0';
        front_fail(r, &e);
        return;
    }
    front_watch(r);
    /* counted under max_inflight_bytes while forwarded, not waited for: it
     * is held already */
    if (r->held > 0)
        inflight_release(r->held);
    r->held = len;
    inflight_add(r->held);
    if (r->c0_on) {
        struct upstream_body src = {front_copy0_read, front_copy0_rewind, r};
        r->call =
            upstream_start_body(front_up(r)->up, method, url, hl, &src, len, front_copy0_done, r);
    } else {
        r->call = upstream_start(front_up(r)->up, method, url, hl, body->data, body->len,
                                 r->copy0 ? front_copy0_done : front_upstream_done, r);
    }
    free(url);
}

static void front_pace_take(struct front_req *r);
static void front_pace_go(struct front_req *r);

/* The send's reserved time has come (or a refused client take is retried). */
static void front_pace_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct front_req *r = arg;
    event_free(r->pace_timer);
    r->pace_timer = NULL;
    if (r->cost < 0) {
        r->cost = -r->cost;
        front_pace_take(r);
        return;
    }
    front_pace_go(r);
}

/* Run front_pace_cb after ms. */
static void front_pace_after(struct front_req *r, double ms)
{
    struct timeval tv = clock_timeval_frac(ms);
    r->pace_timer = evtimer_new(r->f->base, front_pace_cb, r);
    evtimer_add(r->pace_timer, &tv);
}

/* The send's reservation has come: forward it, unless the previous paced
 * send of this process left so late that the two would be closer than
 * the rate allows; then it follows that one by its span. The reservations
 * keep the account's rate across processes; this keeps one late send
 * (a busy loop, a slow answer) from bunching with the next. */
static void front_pace_go(struct front_req *r)
{
    double hold = limiter_ms_until(&front_up(r)->pace_next);
    if (hold >= 1) {
        front_pace_after(r, hold);
        return;
    }
    limiter_ms_from_now(&front_up(r)->pace_next, r->span_ms);
    front_forward(r);
}

/* The limiter answered the send's take. */
static void front_paced(const struct limiter_answer *a, void *arg)
{
    struct front_req *r = arg;
    r->limiting = false;
    if (r->abandoned) {
        front_finish(r, 499, "client_closed");
        return;
    }
    struct seserr e;
    if (!a->ok) {
        seserr_set(&e, SESERR_UNAVAILABLE, "The rate limiter is unavailable; nothing was sent.");
        r->batch_id[0] = '\0';
        front_fail(r, &e);
        return;
    }
    if (a->granted) {
        /* wait_ms counts from Redis's clock, read about when the take left:
         * the reservation is wait_ms - late_ms from now. The span is at the
         * full rate, not the paced one, so a late send is caught up. */
        double at = a->wait_ms - a->late_ms;
        r->span_ms = a->rate > 0 ? (double)r->cost * 1000.0 * LIMITER_PACE / a->rate : 0;
        if (at >= 1)
            front_pace_after(r, at);
        else
            front_pace_go(r);
        return;
    }
    if (a->reason == RATELIMIT_CLIENT_RATE && a->wait_ms >= 0 &&
        a->wait_ms <= limiter_ms_until(&r->pace_deadline)) {
        r->cost = -r->cost; /* marks the timer as a retry of the take */
        front_pace_after(r, a->wait_ms);
        return;
    }
    bool quota = a->reason == RATELIMIT_QUOTA || a->reason == RATELIMIT_CLIENT_QUOTA;
    r->why = quota ? "quota" : "rate";
    seserr_set(&e, SESERR_THROTTLING,
               quota ? "Daily message quota exceeded." : "Maximum sending rate exceeded.");
    char wait[32];
    snprintf(wait, sizeof wait, "%.0f", a->wait_ms);
    log_event(LOG_INFO, "send_throttled", "id", r->id, "reason", ratelimit_reason_name(a->reason),
              "wait_ms", wait, NULL);
    r->batch_id[0] = '\0';
    front_fail(r, &e);
}

/* Ask the limiter for the send's recipients, waiting at most what is left
 * of max_wait. */
static void front_pace_take(struct front_req *r)
{
    double left = limiter_ms_until(&r->pace_deadline);
    r->limiting = true;
    front_watch(r);
    struct limiter_answer a;
    if (limiter_take_send(front_up(r)->lim, r->client, r->cost, left > 0 ? left : 0, front_paced, r,
                          &a))
        front_paced(&a, r);
}

/* Send r (cost recipients) upstream at its turn of the shared rate: at
 * once, after a wait of at most max_wait, or not at all (Throttling). A
 * submission in process (SMTP) that is not a batch (fan-out off, no To
 * recipient) waits up to FRONT_SUBMIT_WAIT_MS instead: an SMTP client waits
 * for the answer to its data (RFC 5321 gives it 10 minutes), so the rate
 * delays it rather than refusing it. */
static void front_pace(struct front_req *r, int64_t cost)
{
    if (!limiter_on(front_up(r)->lim)) {
        front_forward(r);
        return;
    }
    r->cost = cost < 1 ? 1 : cost;
    int64_t wait = r->hr == NULL ? FRONT_SUBMIT_WAIT_MS : r->f->cfg->max_wait_ms;
    limiter_ms_from_now(&r->pace_deadline, (double)wait);
    front_pace_take(r);
}

/* Answer a queued batch the way SES answers the send: its MessageId is the
 * batch's, and X-Sesgate-Batch-Id names it. */
static void front_batch_accepted(struct front_req *r)
{
    /* r is freed before the answer is written: keep copies of the ids. */
    char id[sizeof r->id], batch[sizeof r->batch_id], mid[64];
    memcpy(id, r->id, sizeof id);
    memcpy(batch, r->batch_id, sizeof batch);
    snprintf(mid, sizeof mid, "sesgate-%s", batch);
    struct buf body = BUF_INIT;
    const char *ctype;
    if (r->api == SESREQ_V2) {
        buf_printf(&body, "{\"MessageId\":\"%s\"}", mid);
        ctype = "application/json";
    } else {
        const char *a = r->sr.action;
        buf_printf(&body,
                   "<%sResponse xmlns=\"http://ses.amazonaws.com/doc/2010-12-01/\">"
                   "<%sResult><MessageId>%s</MessageId></%sResult>"
                   "<ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></%sResponse>",
                   a, a, mid, a, id, a);
        ctype = "text/xml";
    }
    struct httpd_header h[3] = {
        {"Content-Type", ctype}, {"x-amzn-RequestId", id}, {"X-Sesgate-Batch-Id", batch}};
    front_reply(r, 200, NULL, h, 3, body.data, body.len);
    buf_free(&body);
}

static void front_bulk_answer(struct front_req *r);

/* The queue answered: the batch is stored (or not). */
static void front_enqueued(const char *err, void *arg)
{
    struct front_req *r = arg;
    r->enqueuing = false;
    if (err != NULL) {
        /* Nothing of the batch is queued. With copy 0 sent, the client
         * hears a retryable error, and a retry sends copy 0 again. */
        log_event(r->copy0 ? LOG_ERROR : LOG_WARN, "enqueue_failed", "id", r->id, "batch",
                  r->batch_id, "error", err, "copy0", r->copy0 ? "sent" : NULL, NULL);
    }
    if (r->abandoned) {
        if (err == NULL)
            log_event(LOG_WARN, "batch_queued_client_gone", "id", r->id, "batch", r->batch_id,
                      NULL);
        front_finish(r, 499, "client_closed");
        return;
    }
    if (err != NULL) {
        struct seserr e;
        bool unrep = strncmp(err, QUEUE_UNREPLICATED, strlen(QUEUE_UNREPLICATED)) == 0;
        r->partial = unrep || r->copy0;
        seserr_set(&e, SESERR_UNAVAILABLE,
                   strncmp(err, QUEUE_UNFINISHED, strlen(QUEUE_UNFINISHED)) == 0
                       ? "The queue became unavailable while the batch was queued; it is sent "
                         "whole once the queue is back."
                   : unrep && !r->copy0
                       ? "The queue could not confirm the batch on its replicas in time; the "
                         "batch is cancelled (copies sent while waiting stay sent)."
                   : unrep ? "The queue could not confirm the batch on its replicas in time; the "
                             "batch is cancelled (the first recipient and copies sent while "
                             "waiting stay sent)."
                   : !r->copy0 ? "The queue is unavailable; nothing was sent."
                   : r->plan.bulk
                       ? "The queue is unavailable; only the first destinations were sent."
                       : "The queue is unavailable; only the first recipient was sent.");
        r->batch_id[0] = '\0';
        front_fail(r, &e);
        return;
    }
    if (r->plan.bulk) {
        front_bulk_answer(r);
        return;
    }
    if (r->answer == NULL) {
        front_batch_accepted(r);
        return;
    }
    /* Copy 0's own SES answer, naming the batch. */
    struct front_answer *a = r->answer;
    r->answer = NULL;
    char id[sizeof r->id], batch[sizeof r->batch_id];
    memcpy(id, r->id, sizeof id); /* r is freed before the answer is written */
    memcpy(batch, r->batch_id, sizeof batch);
    struct httpd_header h[3];
    size_t nh = 0;
    h[nh++] = (struct httpd_header){"X-Sesgate-Batch-Id", batch};
    if (a->content_type[0])
        h[nh++] = (struct httpd_header){"Content-Type", a->content_type};
    h[nh++] = (struct httpd_header){"x-amzn-RequestId", a->request_id[0] ? a->request_id : id};
    front_reply(r, (int)a->status, NULL, h, nh, a->body.data, a->body.len);
    buf_free(&a->body);
    free(a);
}

/* Copy 0 of a sync batch (or the first units of a bulk batch) was
 * answered. Sent: queue the rest, recording copy 0's MessageId, and relay
 * its answer once they are stored. Not sent: relay SES's answer and queue
 * nothing, so a retry by the client sends no copy twice. */
static void front_bulk_first_done(struct upstream_response *res, struct front_req *r);

static void front_copy0_done(struct upstream_response *res, void *arg)
{
    struct front_req *r = arg;
    front_copy0_release(r); /* copy 0 went: the queue's copies come from the template */
    limiter_left_at(&front_up(r)->pace_next, &res->sent_at, r->span_ms);
    bool sent = res->error == UPSTREAM_OK && res->status >= 200 && res->status < 300;
    if (!sent) {
        char status[16];
        snprintf(status, sizeof status, "%ld", res->status);
        log_event(LOG_INFO, "batch_copy0_failed", "id", r->id, "batch", r->batch_id, "status",
                  status, "error", res->error == UPSTREAM_OK ? NULL : res->errmsg, NULL);
        r->batch_id[0] = '\0';
        if (r->abandoned) {
            r->call = NULL;
            front_finish(r, 499, "client_closed");
            return;
        }
        front_upstream_done(res, r);
        return;
    }
    r->call = NULL;
    metrics_upstream(res->seconds, "ok");
    if (r->plan.bulk) {
        front_bulk_first_done(res, r);
        return;
    }
    struct front_answer *a = xcalloc(1, sizeof *a);
    a->status = res->status;
    snprintf(a->content_type, sizeof a->content_type, "%s", res->content_type);
    snprintf(a->request_id, sizeof a->request_id, "%s", res->request_id);
    a->body = res->body;
    res->body = (struct buf)BUF_INIT;
    r->answer = a;
    char mid[256];
    if (!sesans_message_id(r->api == SESREQ_V2 ? 2 : 1, a->body.data ? a->body.data : "",
                           a->body.len, mid, sizeof mid) ||
        mid[0] == '\0')
        snprintf(mid, sizeof mid, "-");
    r->enqueuing = true;
    queue_enqueue(r->f->queue, r->batch_id, r->client->name, front_upstream_name(r), &r->plan, mid,
                  front_enqueued, r);
}

/* The client's recipients of the rolling day are known: queue the batch,
 * or refuse it when the client is already at its daily quota. */
static void front_client_day(const redisReply *reply, const char *err, void *arg)
{
    struct front_req *r = arg;
    if (r->abandoned) {
        r->enqueuing = false;
        front_finish(r, 499, "client_closed");
        return;
    }
    struct seserr e;
    if (err || reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 6) {
        r->enqueuing = false;
        seserr_set(&e, SESERR_UNAVAILABLE, "The queue is unavailable; nothing was sent.");
        r->batch_id[0] = '\0';
        front_fail(r, &e);
        return;
    }
    const redisReply *u = reply->element[4];
    long long used = u->type == REDIS_REPLY_INTEGER  ? u->integer
                     : u->type == REDIS_REPLY_STRING ? strtoll(u->str, NULL, 10)
                                                     : 0;
    if (used >= r->client->daily_quota) {
        r->enqueuing = false;
        seserr_set(&e, SESERR_THROTTLING, "Daily message quota exceeded.");
        r->why = "quota";
        log_event(LOG_INFO, "send_throttled", "id", r->id, "reason", "client_quota", NULL);
        r->batch_id[0] = '\0';
        front_fail(r, &e);
        return;
    }
    queue_enqueue(r->f->queue, r->batch_id, r->client->name, front_upstream_name(r), &r->plan, NULL,
                  front_enqueued, r);
}

/* fanout_plan_hooked: the send is a batch, its template is about to be
 * written from the parsed parameters; the request as it came is not sent
 * again. */
static void front_batch_decided(void *arg)
{
    struct front_req *r = arg;
    front_drop_body(r);
}

/* Queue every copy of r's batch (first_recipient = queue): a client
 * already at its own daily quota is refused first. */
static void front_queue(struct front_req *r)
{
    struct front *f = r->f;
    r->enqueuing = true;
    front_watch(r);
    if (limiter_on(front_up(r)->lim) && r->client->daily_quota > 0) {
        /* A client over its own daily quota gets SES's answer for it. */
        limiter_client_status(front_up(r)->lim, r->client->name, front_client_day, r);
        return;
    }
    queue_enqueue(f->queue, r->batch_id, r->client->name, front_upstream_name(r), &r->plan, NULL,
                  front_enqueued, r);
}

/* The answer to a bulk batch, one entry per destination of the call in
 * order: SES's own result for each unit sent before the answer, SES's
 * status for a destination left out for a bad address, and for each unit
 * queued "accepted" with an id the batch views resolve:
 * sesgate-<batch>-<index in the batch>. */
static void front_bulk_answer(struct front_req *r)
{
    const struct fanout_plan *p = &r->plan;
    int api = r->api == SESREQ_V2 ? 2 : 1;
    struct bulk_result *e = xcalloc(p->ndest + 1, sizeof *e);
    size_t u = 0, inv = 0;
    for (size_t d = 0; d < p->ndest; d++) {
        if (inv < p->ninvalid && p->invalid_pos[inv] == d) {
            snprintf(e[d].status, sizeof e[d].status, "%s", bulk_status_invalid(api));
            snprintf(e[d].error, sizeof e[d].error, "%s", p->invalid[inv].reason);
            while (inv < p->ninvalid && p->invalid_pos[inv] == d)
                inv++;
            continue;
        }
        if (u < r->bulk_sync) {
            e[d] = r->bulk_res[u];
        } else {
            snprintf(e[d].status, sizeof e[d].status, "%s", api == 2 ? "SUCCESS" : "Success");
            snprintf(e[d].message_id, sizeof e[d].message_id, "sesgate-%s-%zu", r->batch_id,
                     u - r->bulk_sync);
        }
        u++;
    }
    char id[sizeof r->id], batch[sizeof r->batch_id], rid[128];
    memcpy(id, r->id, sizeof id); /* r is freed before the answer is written */
    memcpy(batch, r->batch_id, sizeof batch);
    snprintf(rid, sizeof rid, "%s",
             r->answer && r->answer->request_id[0] ? r->answer->request_id : id);
    struct buf body = BUF_INIT;
    bulk_answer_render(api, e, p->ndest, rid, &body);
    free(e);
    struct httpd_header h[3];
    size_t nh = 0;
    h[nh++] = (struct httpd_header){"Content-Type", api == 2 ? "application/json" : "text/xml"};
    h[nh++] = (struct httpd_header){"x-amzn-RequestId", rid};
    if (batch[0])
        h[nh++] = (struct httpd_header){"X-Sesgate-Batch-Id", batch};
    front_reply(r, 200, NULL, h, nh, body.data, body.len);
    buf_free(&body);
}

/* SES accepted the first units of a bulk batch (first_recipient = sync):
 * each of them gets SES's own result, and the other units are queued. */
static void front_bulk_first_done(struct upstream_response *res, struct front_req *r)
{
    int api = r->api == SESREQ_V2 ? 2 : 1;
    int n = bulk_answer_parse(api, res->body.data, res->body.len, r->bulk_res, r->bulk_sync);
    if (n < (int)r->bulk_sync) {
        /* Sent, but SES's answer does not say how each fared: never
         * invented, never sent again. */
        log_event(LOG_ERROR, "bulk_answer_short", "id", r->id, "batch", r->batch_id, NULL);
        for (size_t i = n < 0 ? 0 : (size_t)n; i < r->bulk_sync; i++) {
            snprintf(r->bulk_res[i].status, sizeof r->bulk_res[i].status, "%s",
                     api == 2 ? "FAILED" : "Failed");
            snprintf(r->bulk_res[i].error, sizeof r->bulk_res[i].error,
                     "The upstream's answer named no result for this destination.");
        }
    }
    r->answer = xcalloc(1, sizeof *r->answer);
    snprintf(r->answer->request_id, sizeof r->answer->request_id, "%s", res->request_id);
    /* the units sent are not part of the batch: each MessageId is indexed
     * under the client and its destination's position in the call */
    struct fanout_plan *p = &r->plan;
    for (size_t d = 0, u = 0, inv = 0; d < p->ndest && u < r->bulk_sync; d++) {
        if (inv < p->ninvalid && p->invalid_pos[inv] == d) {
            while (inv < p->ninvalid && p->invalid_pos[inv] == d)
                inv++;
            continue;
        }
        if (bulk_status_ok(r->bulk_res[u].status))
            queue_index(r->f->queue, r->bulk_res[u].message_id, r->client->name, NULL,
                        (long long)d);
        u++;
    }
    for (size_t i = 0; i < r->bulk_sync; i++)
        free(p->to[i]);
    memmove(p->to, p->to + r->bulk_sync, (p->nto - r->bulk_sync) * sizeof *p->to);
    memmove(p->cost, p->cost + r->bulk_sync, (p->nto - r->bulk_sync) * sizeof *p->cost);
    p->nto -= r->bulk_sync;
    if (p->nto == 0) {
        r->batch_id[0] = '\0';
        if (r->abandoned)
            front_finish(r, 499, "client_closed");
        else
            front_bulk_answer(r);
        return;
    }
    r->enqueuing = true;
    queue_enqueue(r->f->queue, r->batch_id, r->client->name, front_upstream_name(r), &r->plan, NULL,
                  front_enqueued, r);
}

/* How many units of a bulk batch go to SES before the answer: those whose
 * turns of the rate lie within LIMITER_BUNDLE_MS of the first (at least
 * one, at most SES's 50), so one call holds no more than the rate allows
 * in that time. */
static size_t front_bulk_first(const struct front_req *r)
{
    const struct fanout_plan *p = &r->plan;
    size_t max = p->nto < BULK_MAX_DESTINATIONS ? p->nto : BULK_MAX_DESTINATIONS;
    if (!limiter_on(front_up(r)->lim))
        return max;
    double rate = limiter_rate(front_up(r)->lim);
    if (r->client->rate > 0 && r->client->rate < rate)
        rate = r->client->rate;
    double budget = rate * LIMITER_PACE * LIMITER_BUNDLE_MS / 1000.0, before = (double)p->cost[0];
    size_t k = 1;
    while (k < max && before <= budget)
        before += (double)p->cost[k++];
    return k;
}

/* ---- the suppression list: a send's recipients on it are left out
 * before the limiter is asked ---- */

/* What a lookup of the suppression list is for. */
enum front_sup_use {
    FRONT_SUP_SINGLE, /* a send that is not a batch: every recipient */
    FRONT_SUP_COPY0,  /* copy 0 of a sync batch: its To recipient and riders */
    FRONT_SUP_BULK,   /* the first units of a sync bulk batch: their recipients */
    FRONT_SUP_QUEUE,  /* a batch queued whole (a submission in process): every
                         recipient, refused only when all are suppressed */
};

/* Copy 0 of a sync batch goes upstream with the riders given (the plan's,
 * or those not suppressed): its body, then its turn of the rate. */
static void front_copy0_start(struct front_req *r, const struct fanout_rcpt *riders, size_t nriders)
{
    struct seserr e;
    const struct fanout_plan *p = &r->plan;
    if (copybody_batch_init(&r->c0_batch, p->api, p->raw, p->dkim_envelope_only,
                            p->template.data ? p->template.data : "", p->template.len, &e) < 0) {
        r->batch_id[0] = '\0';
        front_fail(r, &e);
        return;
    }
    if (copybody_init(&r->c0, &r->c0_batch, p->to[0], true, riders, nriders, &e) < 0) {
        copybody_batch_cleanup(&r->c0_batch);
        r->batch_id[0] = '\0';
        front_fail(r, &e);
        return;
    }
    r->c0_on = true;
    r->copy0 = true;
    front_pace(r, 1 + (int64_t)nriders);
}

static void front_bulk_sync(struct front_req *r);

/* A send that is not a batch, some of whose recipients are suppressed
 * (hit[i] for the To recipients then the riders): its body without them. */
static int front_sup_rewrite(struct front_req *r, const bool *hit)
{
    const struct fanout_plan *p = &r->plan;
    char **to = xcalloc(p->nto + 1, sizeof *to);
    struct fanout_rcpt *riders = xcalloc(p->nriders + 1, sizeof *riders);
    size_t nto = 0, nriders = 0;
    for (size_t i = 0; i < p->nto; i++)
        if (!hit[i])
            to[nto++] = p->to[i];
    for (size_t i = 0; i < p->nriders; i++)
        if (!hit[p->nto + i])
            riders[nriders++] = p->riders[i];
    /* what would have gone: the body sesgate built (a stripped tag), or the
     * request's parameters and body */
    struct form fwd = {0};
    const struct form *f = &r->sr.form;
    const char *body = front_body(r)->data ? front_body(r)->data : "";
    size_t len = front_body(r)->len;
    int rc = 0;
    if (r->send_body.len) {
        body = r->send_body.data;
        len = r->send_body.len;
        if (r->api == SESREQ_V1) {
            rc = form_parse(body, len, SESREQ_MAX_PARAMS, &fwd, NULL, 0) == FORM_OK ? 0 : -1;
            f = &fwd;
        }
    }
    struct buf out = BUF_INIT;
    if (rc == 0)
        rc = fanout_with_dest(r->api, r->sr.raw, f, body, len, to, nto, riders, nriders, &out);
    form_free(&fwd);
    free(to);
    free(riders);
    if (rc == 0) {
        buf_free(&r->send_body);
        r->send_body = out;
    } else {
        buf_free(&out);
    }
    return rc;
}

/* HMGET of the suppression list answered for r. */
static void front_sup_done(const redisReply *reply, const char *err, void *arg)
{
    struct front_req *r = arg;
    r->suping = false;
    if (r->abandoned) {
        front_finish(r, 499, "client_closed");
        return;
    }
    struct seserr e;
    if (err != NULL || reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        log_event(LOG_WARN, "suppression_read_failed", "id", r->id, "error",
                  err ? err : "unexpected reply", NULL);
        seserr_set(&e, SESERR_UNAVAILABLE,
                   "The suppression list is unavailable; nothing was sent.");
        r->batch_id[0] = '\0';
        front_fail(r, &e);
        return;
    }
    size_t n = reply->elements, nhit = 0;
    bool *hit = xcalloc(n + 1, sizeof *hit);
    for (size_t i = 0; i < n; i++) {
        hit[i] = reply->element[i]->type == REDIS_REPLY_STRING;
        nhit += hit[i];
    }
    char count[24];
    snprintf(count, sizeof count, "%zu", nhit);
    if (nhit > 0)
        log_event(LOG_INFO, "send_suppressed", "id", r->id, "recipients", count, "of",
                  r->sup_use == FRONT_SUP_SINGLE  ? "send"
                  : r->sup_use == FRONT_SUP_COPY0 ? "copy0"
                  : r->sup_use == FRONT_SUP_QUEUE ? "queue"
                                                  : "bulk_first",
                  NULL);
    const struct fanout_plan *p = &r->plan;
    if (r->sup_use == FRONT_SUP_QUEUE) {
        /* the workers leave the suppressed recipients out; a batch of
         * none but them is refused now */
        free(hit);
        if (nhit < n || n == 0) {
            front_queue(r);
            return;
        }
        for (size_t i = 0; i < nhit; i++)
            metrics_suppressed();
        seserr_set(&e, SESERR_MESSAGE_REJECTED,
                   "Every recipient of this message is on the suppression list: %zu address%s.",
                   nhit, nhit == 1 ? "" : "es");
        r->why = "suppressed";
        r->batch_id[0] = '\0';
        front_fail(r, &e);
        return;
    }
    if (r->sup_use == FRONT_SUP_COPY0 && nhit > 0 && !hit[0]) {
        /* copy 0 goes first without its suppressed riders */
        for (size_t i = 0; i < nhit; i++)
            metrics_suppressed();
        struct fanout_rcpt *riders = xcalloc(p->nriders + 1, sizeof *riders);
        size_t n_kept = 0;
        for (size_t i = 0; i < p->nriders; i++)
            if (!hit[1 + i])
                riders[n_kept++] = p->riders[i];
        free(hit);
        front_copy0_start(r, riders, n_kept);
        free(riders); /* copybody_init wrote what it needs of them */
        return;
    }
    if (r->sup_use != FRONT_SUP_SINGLE) {
        /* Copy 0's To recipient, or a recipient of the first bulk units, is
         * suppressed: the batch is queued whole, and the workers leave the
         * suppressed recipients out (a unit with none left is recorded
         * suppressed). */
        free(hit);
        if (nhit > 0) {
            r->bulk_sync = 0; /* every unit is queued */
            front_queue(r);
        } else if (r->sup_use == FRONT_SUP_COPY0) {
            front_copy0_start(r, p->riders, p->nriders);
        } else {
            front_bulk_sync(r);
        }
        return;
    }
    for (size_t i = 0; i < nhit; i++)
        metrics_suppressed();
    if (nhit == n) {
        free(hit);
        seserr_set(&e, SESERR_MESSAGE_REJECTED,
                   "Every recipient of this message is on the suppression list: %zu address%s.",
                   nhit, nhit == 1 ? "" : "es");
        r->why = "suppressed";
        front_fail(r, &e);
        return;
    }
    if (nhit > 0 && front_sup_rewrite(r, hit) != 0) {
        free(hit);
        seserr_set(&e, SESERR_INTERNAL,
                   "The request could not be written without its "
                   "suppressed recipients.");
        front_fail(r, &e);
        return;
    }
    free(hit);
    front_pace(r, (int64_t)(p->nto + p->nriders - nhit));
}

/* Look up r's recipients (what use names) in the suppression list, then go
 * on in front_sup_done. Without Redis (no queue) nothing is suppressed. */
static void front_sup_lookup(struct front_req *r, enum front_sup_use use)
{
    struct front *f = r->f;
    const struct fanout_plan *p = &r->plan;
    struct suplist_fields fl = {BUF_INIT, 0};
    if (f->queue != NULL) {
        if (use == FRONT_SUP_BULK) {
            /* the units looked up are the ones sent before the answer */
            size_t k = r->bulk_sync = front_bulk_first(r);
            for (size_t i = 0; i < k; i++) {
                struct buf scratch = BUF_INIT;
                bulk_unit_filter(r->api, p->to[i], strlen(p->to[i]), suplist_fields_gather, &fl,
                                 &scratch);
                buf_free(&scratch);
            }
        } else {
            size_t nto = use == FRONT_SUP_COPY0 ? 1 : p->nto; /* SINGLE, QUEUE: all */
            for (size_t i = 0; i < nto; i++)
                suplist_fields_add(&fl, p->to[i], strlen(p->to[i]));
            for (size_t i = 0; i < p->nriders; i++)
                suplist_fields_add(&fl, p->riders[i].addr, strlen(p->riders[i].addr));
        }
    }
    if (fl.n == 0) {
        buf_free(&fl.text);
        if (use == FRONT_SUP_SINGLE)
            front_pace(r, (int64_t)(p->nto + p->nriders));
        else if (use == FRONT_SUP_COPY0)
            front_copy0_start(r, p->riders, p->nriders);
        else if (use == FRONT_SUP_QUEUE)
            front_queue(r);
        else
            front_bulk_sync(r);
        return;
    }
    struct rscript *scripts = queue_scripts(f->queue);
    char *ksup = rscript_key(scripts, "sup", NULL);
    const char **argv = xcalloc(fl.n + 2, sizeof *argv);
    argv[0] = "HMGET";
    argv[1] = ksup;
    const char *s = fl.text.data;
    for (size_t i = 0; i < fl.n; i++) {
        argv[2 + i] = s;
        s += strlen(s) + 1;
    }
    r->sup_use = (int)use;
    r->suping = true;
    front_watch(r);
    redis_command_argv(rscript_redis(scripts), front_sup_done, r, (int)(fl.n + 2), argv, NULL);
    free(argv);
    free(ksup);
    buf_free(&fl.text);
}

/* SES's bulk calls (v1 SendBulkTemplatedEmail, v2 SendBulkEmail): with
 * fan-out on, a batch of one unit per destination, sent by the workers in
 * bulk calls; otherwise the call goes to SES as it is, paced. */
static void front_bulk(struct front_req *r)
{
    struct front *f = r->f;
    const struct config *cfg = f->cfg;
    struct seserr e;
    bool fanout_on = r->client->fanout < 0 ? cfg->fanout : r->client->fanout != 0;
    if (bulk_plan(&r->sr, fanout_on, (size_t)cfg->max_recipients, cfg->invalid_skip, &r->plan, &e) <
        0) {
        front_fail(r, &e);
        return;
    }
    if (!r->plan.batch) {
        if (r->plan.forward.len) /* the sesgate-fanout tag must not reach SES */
            buf_add(&r->send_body, r->plan.forward.data, r->plan.forward.len);
        front_pace(r, (int64_t)sesreq_other_recipients(&r->sr));
        return;
    }
    front_drop_body(r);
    sesreq_drop_params(&r->sr);
    if (f->queue == NULL) {
        seserr_set(&e, SESERR_UNAVAILABLE, "Bulk sends need the queue, which is not configured.");
        front_fail(r, &e);
        return;
    }
    front_request_id(f, r->batch_id);
    if (!cfg->first_recipient_sync) {
        front_queue(r);
        return;
    }
    if (!queue_ready(f->queue)) {
        seserr_set(&e, SESERR_UNAVAILABLE, "The queue is unavailable; nothing was sent.");
        r->batch_id[0] = '\0';
        front_fail(r, &e);
        return;
    }
    front_sup_lookup(r, FRONT_SUP_BULK);
}

/* The first units of a bulk batch go to SES before the answer (none of
 * their recipients is suppressed). */
static void front_bulk_sync(struct front_req *r)
{
    const struct fanout_plan *p = &r->plan;
    size_t k = r->bulk_sync ? r->bulk_sync : front_bulk_first(r), *lens = xcalloc(k, sizeof *lens);
    int64_t cost = 0;
    for (size_t i = 0; i < k; i++) {
        lens[i] = strlen(p->to[i]);
        cost += (int64_t)p->cost[i];
    }
    size_t plen = p->template.len - (r->api == SESREQ_V2 && p->template.len > 0 ? 1 : 0);
    bulk_body(r->api, p->template.data ? p->template.data : "", plen, (const char *const *)p->to,
              lens, k, &r->send_body);
    free(lens);
    r->bulk_sync = k;
    r->bulk_res = xcalloc(k, sizeof *r->bulk_res);
    r->copy0 = true;
    front_pace(r, cost);
}

/* The send path: every send action comes here. A send to two or more To
 * recipients becomes a batch: stored in the queue (all or nothing) and sent
 * one copy per recipient by the workers. */
static void front_send(struct front_req *r)
{
    struct front *f = r->f;
    const struct config *cfg = f->cfg;
    struct seserr e;
    bool fanout_on = r->client->fanout < 0 ? cfg->fanout : r->client->fanout != 0;
    /* a submission in process is queued whatever the rate: a batch even of
     * one To recipient */
    if (fanout_plan_ex(&r->sr, fanout_on, (size_t)cfg->max_recipients, cfg->invalid_skip, r->inproc,
                       front_batch_decided, r, &r->plan, &e) < 0) {
        r->why = "invalid";
        front_fail(r, &e);
        return;
    }
    if (r->plan.batch) {
        /* the plan holds what the copies need: the parsed parameters are
         * not needed again either */
        sesreq_drop_params(&r->sr);
    } else {
        if (r->plan.forward.len) {
            /* Not a batch, but the sesgate-fanout tag must not reach SES. */
            buf_add(&r->send_body, r->plan.forward.data, r->plan.forward.len);
        }
        front_sup_lookup(r, FRONT_SUP_SINGLE);
        return;
    }
    if (f->queue == NULL) {
        seserr_set(&e, SESERR_UNAVAILABLE, "Bulk sends need the queue, which is not configured.");
        front_fail(r, &e);
        return;
    }
    front_request_id(f, r->batch_id);
    if (cfg->first_recipient_sync && !r->inproc) {
        /* Copy 0 goes first; the rest is queued once SES accepted it. A
         * submission in process is queued whole: its answer then means that
         * all of it was taken, or none. */
        if (!queue_ready(f->queue)) {
            seserr_set(&e, SESERR_UNAVAILABLE, "The queue is unavailable; nothing was sent.");
            r->batch_id[0] = '\0';
            front_fail(r, &e);
            return;
        }
        front_sup_lookup(r, FRONT_SUP_COPY0);
        return;
    }
    if (r->inproc) {
        /* a message to suppressed recipients only is refused, not queued */
        front_sup_lookup(r, FRONT_SUP_QUEUE);
        return;
    }
    front_queue(r);
}

/* A context for a request that just arrived (freed by front_finish). */
static struct front_req *front_req_new(struct front *f, struct httpd_request *hr)
{
    struct front_req *r = xcalloc(1, sizeof *r);
    r->f = f;
    r->hr = hr;
    clock_mono_ts(&r->start);
    front_request_id(f, r->id);
    f->inflight++;
    metrics_inflight(1);
    r->api = sesreq_api_of(hr->path, hr->path_len, &r->v2_off);
    return r;
}

/* httpd: a request arrived. */
static void front_handle(struct httpd_request *hr, void *arg)
{
    struct front *f = arg;
    if (f->feedback && feedback_match(f->feedback, hr)) {
        /* the SNS endpoint's own path: never an SES call, never signed */
        char id[37];
        front_request_id(f, id);
        feedback_handle(f->feedback, hr, id);
        return;
    }
    struct front_req *r = front_req_new(f, hr);
    util_sha256_hex(hr->body.data ? hr->body.data : "", hr->body.len, r->payload_hash);

    struct seserr e;
    if (r->api == SESREQ_V1 && strcmp(hr->method, "GET") != 0 && strcmp(hr->method, "POST") != 0 &&
        strcmp(hr->method, "DELETE") != 0) {
        seserr_set(&e, SESERR_METHOD_NOT_ALLOWED, NULL);
        front_fail(r, &e);
        return;
    }
    if (front_authenticate(r, &e) < 0) {
        front_refuse(r, &e);
        return;
    }
    int rc;
    if (r->api == SESREQ_V1) {
        /* room for max_recipients To recipients and everything else; a
         * bulk call's destinations take a few parameters each */
        size_t max = (size_t)f->cfg->max_recipients + SESREQ_MAX_PARAMS;
        rc = sesreq_parse_v1_request(hr->method, r->fwd_query.data, r->fwd_query.len, hr->body.data,
                                     hr->body.len, FRONT_BULK_PARAMS * max, &r->sr, &e);
        if (rc == 0 && !bulk_action(r->sr.action) && r->sr.form.n > max) {
            seserr_set(&e, SESERR_INVALID_QUERY_PARAMETER, "Too many parameters (more than %zu)",
                       max);
            rc = -1;
        }
    } else {
        rc = sesreq_parse_v2(hr->method, hr->path + r->v2_off, hr->path_len - r->v2_off,
                             hr->body.data, hr->body.len, &r->sr, &e);
    }
    if (rc < 0) {
        front_fail(r, &e);
        return;
    }
    if (front_authorize(r, &e) < 0) {
        front_refuse(r, &e);
        return;
    }
    front_route(r);
    if (r->sr.kind == SESREQ_SEND)
        front_send(r);
    else if (r->sr.kind == SESREQ_SEND_OTHER && bulk_action(r->sr.action))
        front_bulk(r);
    else if (r->sr.kind == SESREQ_SEND_OTHER)
        front_pace(r, (int64_t)sesreq_other_recipients(&r->sr)); /* the rate and quotas */
    else
        front_forward(r);
}

/* Append the base64 of s[0..n), form-encoded, to out. */
static void front_b64_form(const char *s, size_t n, struct buf *out)
{
    enum { CHUNK = 3 * 4096 };
    char enc[4 * 4096 + 1];
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t k = n - i < CHUNK ? n - i : CHUNK;
        int m = EVP_EncodeBlock((unsigned char *)enc, (const unsigned char *)s + i, (int)k);
        form_encode(enc, (size_t)m, out);
    }
}

/* Append "&name=value" (value form-encoded) to out. */
static void front_param(struct buf *out, const char *name, const char *value)
{
    buf_printf(out, "&%s=", name);
    form_encode(value, strlen(value), out);
}

void front_submit_raw(struct front *f, const struct config_client *c,
                      const struct front_submission *s, front_submit_cb cb, void *arg,
                      struct front_req **pending)
{
    struct front_req *r = xcalloc(1, sizeof *r);
    r->pending = pending;
    *pending = r;
    r->f = f;
    r->inproc = true;
    r->done = cb;
    r->done_arg = arg;
    snprintf(r->peer, sizeof r->peer, "%s", s->peer ? s->peer : "");
    clock_mono_ts(&r->start);
    front_request_id(f, r->id);
    f->inflight++;
    metrics_inflight(1);
    r->api = SESREQ_V1;
    r->client = c;
    r->client_index = (size_t)(c - f->cfg->clients);
    /* the request an SDK would have sent for the message: SendRawEmail with
     * the envelope as Source and Destinations */
    struct buf *b = &r->own_body;
    buf_adds(b, "Action=SendRawEmail&Version=2010-12-01");
    if (s->source && s->source[0])
        front_param(b, "Source", s->source);
    char name[64];
    for (size_t i = 0; i < s->ndest; i++) {
        snprintf(name, sizeof name, "Destinations.member.%zu", i + 1);
        front_param(b, name, s->destinations[i]);
    }
    if (s->configuration_set && s->configuration_set[0])
        front_param(b, "ConfigurationSetName", s->configuration_set);
    for (size_t i = 0; i < s->ntags; i++) {
        snprintf(name, sizeof name, "Tags.member.%zu.Name", i + 1);
        front_param(b, name, s->tag_names[i]);
        snprintf(name, sizeof name, "Tags.member.%zu.Value", i + 1);
        front_param(b, name, s->tag_values[i]);
    }
    buf_adds(b, "&RawMessage.Data=");
    front_b64_form(s->message, s->len, b);
    struct seserr e;
    size_t max = (size_t)f->cfg->max_recipients + SESREQ_MAX_PARAMS;
    int rc = sesreq_parse_v1_request("POST", NULL, 0, b->data, b->len, max, &r->sr, &e);
    if (rc < 0) {
        r->why = "invalid";
        front_fail(r, &e);
        return;
    }
    if (front_authorize(r, &e) < 0) {
        front_refuse(r, &e);
        return;
    }
    front_route(r);
    front_send(r);
}

void front_submit_cancel(struct front_req *r)
{
    if (r != NULL)
        front_abandon(r);
}

/* httpd: a request broke a limit before it could be handled. */
static void front_reject(struct httpd_request *hr, enum httpd_reject why, void *arg)
{
    struct front *f = arg;
    if (f->feedback && hr->path && feedback_match(f->feedback, hr)) {
        char id[37];
        front_request_id(f, id);
        feedback_reject(f->feedback, hr, why == HTTPD_REJECT_TOO_LARGE, id);
        return;
    }
    struct front_req *r = front_req_new(f, hr);
    struct seserr e;
    switch (why) {
    case HTTPD_REJECT_TOO_LARGE:
        seserr_set(&e, SESERR_TOO_LARGE, "Request body is larger than %llu bytes.",
                   (unsigned long long)f->cfg->max_body);
        break;
    case HTTPD_REJECT_HEADERS:
        seserr_set(&e, SESERR_INVALID_PARAMETER, "Request headers are too large or too many.");
        break;
    case HTTPD_REJECT_TIMEOUT:
        seserr_set(&e, SESERR_INVALID_PARAMETER, "The request was not received in time.");
        break;
    case HTTPD_REJECT_SMUGGLING:
        seserr_set(&e, SESERR_INVALID_PARAMETER,
                   "Conflicting or repeated Content-Length and Transfer-Encoding headers.");
        break;
    case HTTPD_REJECT_CHUNKED:
        seserr_set(&e, SESERR_INVALID_PARAMETER,
                   "Transfer-Encoding is not accepted: send the body with Content-Length.");
        break;
    default:
        seserr_set(&e, SESERR_INVALID_PARAMETER, "Malformed HTTP request.");
        break;
    }
    front_fail(r, &e);
}

struct front *front_new(struct event_base *base, const struct config *cfg, struct upstream *up,
                        char *err, size_t errlen)
{
    struct front *f = xcalloc(1, sizeof *f);
    f->base = base;
    f->cfg = cfg;
    f->ups = xcalloc(cfg->nupstreams, sizeof *f->ups);
    f->regions = xcalloc(cfg->nupstreams, sizeof *f->regions);
    f->ups[0].up = up;
    f->client_keys = xcalloc(cfg->nclients ? cfg->nclients : 1, sizeof *f->client_keys);
    if (getrandom(f->rng, sizeof f->rng, 0) != sizeof f->rng || (f->rng[0] | f->rng[1]) == 0) {
        f->rng[0] = (uint64_t)time(NULL) ^ 0x9e3779b97f4a7c15ull;
        f->rng[1] = (uint64_t)getpid() | 1;
    }
    for (size_t u = 0; u < cfg->nupstreams; u++) {
        f->regions[u] = cfg->upstreams[u].region;
        f->ups[u].resign = resign_new(&cfg->upstreams[u], err, errlen);
        if (f->ups[u].resign == NULL) {
            front_free(f);
            return NULL;
        }
    }
    struct httpd_limits lim = {
        .max_header_size = (size_t)cfg->max_header_size,
        .max_headers = 100,
        .max_body = cfg->max_body,
        .read_timeout_ms = cfg->read_timeout_ms,
        .idle_timeout_ms = cfg->idle_timeout_ms,
        .max_connections = cfg->max_connections,
    };
    f->httpd = httpd_new(base, cfg->listen, &lim, front_handle, front_reject, f, err, errlen);
    if (f->httpd == NULL ||
        (*cfg->tls_cert && httpd_set_tls(f->httpd, cfg->tls_cert, cfg->tls_key, err, errlen) < 0)) {
        front_free(f);
        return NULL;
    }
    return f;
}

int front_reload_tls(struct front *f, char *err, size_t errlen)
{
    if (*f->cfg->tls_cert == '\0')
        return 0;
    if (httpd_set_tls(f->httpd, f->cfg->tls_cert, f->cfg->tls_key, err, errlen) < 0)
        return -1;
    log_event(LOG_INFO, "tls_reloaded", "cert", f->cfg->tls_cert, NULL);
    return 0;
}

void front_set_queue(struct front *f, struct queue *q)
{
    f->queue = q;
}

void front_set_limiter(struct front *f, struct limiter *lim)
{
    f->ups[0].lim = lim;
}

void front_set_upstream(struct front *f, size_t u, struct upstream *up, struct limiter *lim)
{
    if (u >= f->cfg->nupstreams)
        return;
    f->ups[u].up = up;
    f->ups[u].lim = lim;
}

void front_set_feedback(struct front *f, struct feedback *fb)
{
    f->feedback = fb;
}

void front_clients_changed(struct front *f)
{
    free(f->client_keys);
    f->client_keys = xcalloc(f->cfg->nclients ? f->cfg->nclients : 1, sizeof *f->client_keys);
}

void front_stop_accepting(struct front *f)
{
    httpd_stop_accepting(f->httpd);
}

size_t front_inflight(const struct front *f)
{
    return f->inflight + (f->feedback ? feedback_inflight(f->feedback) : 0);
}

int front_port(const struct front *f)
{
    return httpd_port(f->httpd);
}

void front_free(struct front *f)
{
    if (f == NULL)
        return;
    httpd_free(f->httpd);
    free(f->client_keys);
    for (size_t u = 0; f->ups && u < f->cfg->nupstreams; u++)
        resign_free(f->ups[u].resign);
    free(f->ups);
    free(f->regions);
    free(f);
}
