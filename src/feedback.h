/* feedback: the SNS HTTPS endpoint for SES's event notifications (shell).
 *
 * SNS POSTs to [feedback] path on the SES listener; front.c hands every
 * request on that exact path here, before any SES parsing or SigV4. Each
 * message is checked in this order, and the first failure answers:
 *   1. method POST (405), body at most SNS_MAX_BODY;
 *   2. the SNS envelope (sns_parse; raw message delivery is refused);
 *   3. TopicArn in [feedback] topics, before anything else is done;
 *   4. SigningCertURL on SNS's hosts (sns_url_check; [feedback] test_trust
 *      adds one host);
 *   5. the certificate, fetched over HTTPS (system trust) and cached by URL
 *      in memory, chains to the trust store; the signature verifies.
 * A failure is answered 403 with a short text (a certificate that could not
 * be fetched: 503, so that SNS retries), logged once per cause (the kind of
 * refusal and the topic) and counted in sesgate_feedback_refused_total.
 * Then: a SubscriptionConfirmation is confirmed once ([feedback] confirm,
 * replay guard in Redis, GET of its SubscribeURL after the same host rule);
 * an UnsubscribeConfirmation is logged; a Notification's SES event is read
 * (400 when unreadable) and applied by events_apply (500 when Redis failed).
 */
#ifndef SESGATE_FEEDBACK_H
#define SESGATE_FEEDBACK_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>
#include <openssl/x509.h>

#include "config.h"
#include "httpd.h"

struct feedback;
struct rscript;
struct events;

/* Certificates cached by URL, at most. */
#define FEEDBACK_CERTS 16
/* The largest certificate answer read (bytes). */
#define FEEDBACK_CERT_MAX (64 * 1024)
/* A certificate fetch's or a SubscribeURL visit's deadline (ms). */
#define FEEDBACK_FETCH_MS 10000
/* Refusal causes remembered for logging once each; later new causes are
 * counted, not logged. */
#define FEEDBACK_CAUSES 256

/* The endpoint on base for cfg ([feedback]), with Redis through scripts (the
 * replay guard of confirmations) and events (notifications). cfg, scripts
 * and events outlive it. Reads [feedback] test_trust's CA file now. NULL
 * with a reason in err when that file cannot be read. */
struct feedback *feedback_new(struct event_base *base, const struct config *cfg,
                              struct rscript *scripts, struct events *events, char *err,
                              size_t errlen);

/* Free f. Requests waiting for a certificate or a SubscribeURL are dropped
 * (their clients were aborted by the listener first); requests waiting for
 * Redis or events_apply are freed by that callback, which still fires. */
void feedback_free(struct feedback *f);

/* True when hr's path is exactly [feedback] path (the query aside). */
bool feedback_match(const struct feedback *f, const struct httpd_request *hr);

/* Handle hr (it matched): answer it, now or later, unless its client goes
 * away first. id is the request id for the logs (copied). */
void feedback_handle(struct feedback *f, struct httpd_request *hr, const char *id);

/* The listener refused hr (on the endpoint's path) before it was read
 * whole: answer it as the endpoint answers (plain text). too_large: its body
 * was over the listener's limit; otherwise a malformed or late request. */
void feedback_reject(struct feedback *f, struct httpd_request *hr, bool too_large, const char *id);

/* Requests being handled. */
size_t feedback_inflight(const struct feedback *f);

/* Answer the exact certificate URL url from memory with pem (copied) instead
 * of fetching it, and verify certificates from it against ca alone (a
 * reference is taken); url's host is allowed for that URL only. For a
 * publisher inside this process (the sandbox). Calling it again replaces
 * the previous one. Returns 0, or -1 when url is not an https URL with a
 * host. */
int feedback_trust_local(struct feedback *f, const char *url, const char *pem, X509 *ca);

#endif
