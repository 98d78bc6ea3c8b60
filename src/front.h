/* front: the SES endpoint. For each request: authenticate the client
 * (SigV4), parse the SES request, apply the client's policy, then pass it
 * through to the upstream re-signed with sesgate's own credentials, or hand
 * it to the send path. Every answer, success or error, is SES-shaped and
 * carries x-amzn-RequestId and Date.
 */
#ifndef SESGATE_FRONT_H
#define SESGATE_FRONT_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "config.h"
#include "upstream.h"

struct front;

/* Start serving cfg->listen on base, forwarding through up; HTTPS only when
 * cfg->tls_cert is set. cfg and up must outlive the front. Returns NULL with
 * a reason in err on failure (an unreadable or mismatched certificate or key
 * is named there). */
struct front *front_new(struct event_base *base, const struct config *cfg, struct upstream *up,
                        char *err, size_t errlen);

struct queue;

/* Send batches through q (NULL: no queue; bulk sends are then refused with
 * a retryable SES error). */
void front_set_queue(struct front *f, struct queue *q);

struct limiter;

/* Pace sends through lim (NULL: sends go at once). */
void front_set_limiter(struct front *f, struct limiter *lim);

/* Upstream u (> 0: an [upstream.NAME], cfg->upstreams[u]) sends through
 * up and is paced by lim (NULL: not paced); both outlive f. Upstream 0 is
 * front_new's up and front_set_limiter's lim. */
void front_set_upstream(struct front *f, size_t u, struct upstream *up, struct limiter *lim);

struct feedback;

/* Hand requests on [feedback] path to fb (NULL: none; the path is then an
 * SES path like any other). fb outlives the front's requests. */
void front_set_feedback(struct front *f, struct feedback *fb);

/* The configuration's clients were replaced (SIGHUP): new requests use
 * them. Requests in flight keep the client they authenticated as, whose
 * storage the caller keeps until they are done. */
void front_clients_changed(struct front *f);

/* Read [server] tls_cert and tls_key again (SIGHUP) for new connections;
 * open ones keep the certificate they started with. Does nothing without
 * TLS. Returns 0, or -1 with a reason naming the file in err, in which case
 * the previous certificate stays in use. */
int front_reload_tls(struct front *f, char *err, size_t errlen);

/* A send submitted in process (SES's SMTP interface): a raw message and its
 * envelope, made into the SendRawEmail request an SDK would send (Source,
 * Destinations, ConfigurationSetName, Tags, RawMessage.Data) and taken
 * through the same path as an authenticated API request: allow_actions,
 * allow_from (Source and every From address), fan-out (always a batch when
 * it can be, so the rate never refuses it: it is queued), the suppression
 * list, the limiter, the queue. */
struct front_submission {
    const char *source;        /* MAIL FROM; "" or NULL: none */
    char *const *destinations; /* RCPT TO addresses */
    size_t ndest;
    const char *message; /* the raw message, as it is to be sent */
    size_t len;
    const char *configuration_set; /* "" or NULL: none */
    char *const *tag_names;        /* message tags */
    char *const *tag_values;
    size_t ntags;
    const char *peer; /* for the log line */
};

/* What became of a submission. Strings are valid during the callback. */
struct front_outcome {
    int status;             /* the HTTP status SES's API would have answered */
    const char *message_id; /* 2xx: SES's MessageId, or sesgate-<batch> when queued */
    const char *batch_id;   /* "" unless it became a batch */
    const char *request_id;
    const char *error_code; /* SES's error code; "" on success */
    const char *message;    /* SES's error message; "" on success */
    const char *why;        /* NULL, or a refusal's reason: "sender", "action",
                               "suppressed", "quota", "rate", "invalid" */
    bool partial;           /* not accepted, but some recipients may already
                               have it (copy 0 sent, or copies sent before a
                               batch the replicas did not confirm was
                               cancelled); message says which */
};

struct front_req;
typedef void (*front_submit_cb)(const struct front_outcome *o, void *arg);

/* Submit s as client c (its storage outlives the submission, as for a
 * request). s's strings are copied before this returns. cb(arg) is called
 * exactly once, possibly before this returns, unless front_submit_cancel
 * comes first. *pending holds the submission's handle until then (it is set
 * to NULL before cb is called, and by front_submit_cancel). */
void front_submit_raw(struct front *f, const struct config_client *c,
                      const struct front_submission *s, front_submit_cb cb, void *arg,
                      struct front_req **pending);

/* The submitter is gone: no callback will come. What was handed on (a
 * send in flight, an enqueue) finishes without it. NULL is allowed. */
void front_submit_cancel(struct front_req *r);

/* Stop accepting connections; requests in flight go on. */
void front_stop_accepting(struct front *f);

/* Requests being handled. */
size_t front_inflight(const struct front *f);

/* The port the SES listener is bound to. */
int front_port(const struct front *f);

/* Close everything (pending requests are cancelled) and free. */
void front_free(struct front *f);

#endif
