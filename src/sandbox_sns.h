/* sandbox_sns: the sandbox's SNS publisher (shell; part of the sandbox).
 *
 * With [sandbox] events = on, the mailbox simulator's outcomes reach sesgate
 * the way SES's reach it in production: as SES identity notifications
 * (Delivery, Bounce, Complaint) wrapped in SNS Notifications, signed
 * (SignatureVersion 2, SHA256withRSA) and POSTed with SNS's headers to the
 * [feedback] path of this process's SES listener, where the feedback
 * endpoint checks them as it checks real ones.
 *
 * At start it makes, in memory only (never written anywhere), a CA (EC
 * P-256) and an RSA 2048 signing certificate the CA issued. The signing
 * certificate's URL is https://<the sandbox's address>/sesgate-sandbox-sns.pem;
 * the sandbox's listener also serves both PEMs (GET /sesgate-sandbox-sns.pem,
 * /sesgate-sandbox-ca.pem) so that a test can check them independently. The
 * topic is arn:aws:sns:<region>:000000000000:sesgate-sandbox.
 *
 * Events wait SANDBOX_SNS_DELAY_MS after the send (SES's come after its
 * answer too; the queue has recorded the MessageId by then), go out with
 * libcurl on the event base, SANDBOX_SNS_MAX_INFLIGHT at a time, and are
 * tried again with backoff while the endpoint answers 5xx or cannot be
 * reached. At most SANDBOX_SNS_MAX_QUEUE wait; more are dropped and counted
 * in a log line. A 4xx answer is final: the event is dropped and logged.
 */
#ifndef SESGATE_SANDBOX_SNS_H
#define SESGATE_SANDBOX_SNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <openssl/x509.h>

#include "config.h"

#define SANDBOX_SNS_DELAY_MS      1000
#define SANDBOX_SNS_MAX_QUEUE     10000
#define SANDBOX_SNS_MAX_INFLIGHT  8
#define SANDBOX_SNS_CERT_PATH     "/sesgate-sandbox-sns.pem"
#define SANDBOX_SNS_CA_PATH       "/sesgate-sandbox-ca.pem"
#define SANDBOX_SNS_TOPIC_ACCOUNT "000000000000"
#define SANDBOX_SNS_TOPIC_NAME    "sesgate-sandbox"

struct sandbox_sns;

/* Make the keys and certificates for a sandbox listening at authority
 * ("127.0.0.1:port"). NULL with err set when OpenSSL fails. Nothing is
 * posted until sandbox_sns_post_to. cfg outlives the publisher. */
struct sandbox_sns *sandbox_sns_new(struct event_base *base, const struct config *cfg,
                                    const char *authority, char *err, size_t errlen);

/* Post events to this process's SES listener ([server] listen, https when
 * [server] tls_cert is set, then [feedback] path). Until it is called (a
 * process without the SES listener never calls it), events are not
 * kept. */
void sandbox_sns_post_to_listener(struct sandbox_sns *s);

/* Queue the SES notification JSON (len bytes, copied), due after
 * SANDBOX_SNS_DELAY_MS from now; a later one (a complaint after its
 * delivery) after twice that. */
void sandbox_sns_publish(struct sandbox_sns *s, const char *json, size_t len, bool later);

/* The topic ARN, the signing certificate's URL, its PEM, the CA's PEM and
 * the CA (owned by the publisher, valid while it lives). */
const char *sandbox_sns_topic(const struct sandbox_sns *s);
const char *sandbox_sns_cert_url(const struct sandbox_sns *s);
const char *sandbox_sns_pem(const struct sandbox_sns *s);
const char *sandbox_sns_ca_pem(const struct sandbox_sns *s);
X509 *sandbox_sns_ca(const struct sandbox_sns *s);

/* Cancel what is in flight, drop what waits, free; NULL is fine. */
void sandbox_sns_free(struct sandbox_sns *s);

#endif
