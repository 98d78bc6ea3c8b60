/* smtpd: SES's SMTP interface (shell). The [smtp] listeners: listen speaks
 * STARTTLS (like SES's ports 587 and 2587), tls_listen implicit TLS (465,
 * 2465), both with [server] tls_cert and tls_key. A session reads commands
 * with the smtp core (bounded lines, PIPELINING: commands in order, replies
 * in order), authenticates the client as SES does (AUTH PLAIN or LOGIN,
 * only over TLS; user = the client's access key id, password = its SES SMTP
 * password) and hands each message to the front (front_submit_raw), which
 * takes it through the API's send path. DATA is answered once the front
 * answers: 250 when the message is sent or queued, 4xx when nothing was
 * taken, 5xx for policy. docs/SMTP.md describes the replies.
 */
#ifndef SESGATE_SMTPD_H
#define SESGATE_SMTPD_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "config.h"

struct smtpd;
struct front;

/* Start cfg->smtp_listen and cfg->smtp_tls_listen (either may be empty;
 * returns NULL without error text when both are) on base, handing messages
 * to front. Both speak TLS with the certificate chain cert and key (PEM
 * files: [server] tls_cert and tls_key, or the quick start's self-signed
 * one). cfg and front outlive the listener. Returns NULL with a reason in
 * err on failure. */
struct smtpd *smtpd_new(struct event_base *base, const struct config *cfg, struct front *front,
                        const char *cert, const char *key, char *err, size_t errlen);

/* Read the certificate and key files again (SIGHUP) for new connections and
 * STARTTLS upgrades from now on. Returns 0, or -1 with a reason in err (the
 * previous certificate stays). */
int smtpd_reload_tls(struct smtpd *d, char *err, size_t errlen);

/* Stop accepting connections; sessions go on. */
void smtpd_stop_accepting(struct smtpd *d);

/* Messages handed to the front and not answered yet. */
size_t smtpd_inflight(const struct smtpd *d);

/* The bound port of the STARTTLS listener (tls false) or the implicit TLS
 * one (tls true); 0 when off. */
int smtpd_port(const struct smtpd *d, bool tls);

/* Close every connection (pending submissions are let go of) and free. */
void smtpd_free(struct smtpd *d);

#endif
