/* sandbox: the built-in SES (upstream.endpoint = sandbox).
 *
 * A local stand-in for Amazon SES inside the sesgate process, listening on
 * an ephemeral port of 127.0.0.1 on the process's event base. sesgate's
 * upstream client talks to it over HTTP like to SES, signed with a key the
 * sandbox makes at start (never written anywhere); the sandbox checks that
 * signature as SES would. It answers the v1 (Query) and v2 (REST-JSON)
 * sends sesgate forwards exactly as SES does, SES's bulk calls included
 * (read and rendered per destination by sesbulk), and writes each delivered
 * message as an RFC 5322 file under <data_dir>/outbox/, one per recipient.
 * Its per-second rate and rolling 24-hour quota ([sandbox] rate,
 * daily_quota) are enforced with SES's own throttling errors. The SES
 * mailbox simulator addresses (success@, bounce@, ooto@, complaint@,
 * suppressionlist@simulator.amazonses.com) behave as SES documents: the send
 * is accepted and the outcome (a bounce, an auto reply, a complaint) is
 * written to the outbox; with [sandbox] events = on, every recipient's
 * outcome (a delivery, a bounce, a complaint) also reaches sesgate as SES's
 * would, an SNS-signed notification POSTed to the feedback endpoint
 * (sandbox_sns). The answer itself is SES's: it says nothing of outcomes.
 */
#ifndef SESGATE_SANDBOX_H
#define SESGATE_SANDBOX_H

#include <stddef.h>

#include <event2/event.h>

#include "config.h"

struct sandbox;
struct sandbox_sns;

/* Start the sandbox for cfg (data_dir, region, [sandbox] rate and
 * daily_quota) on base. NULL with err set when it cannot listen or cannot
 * create <data_dir>/outbox. cfg outlives the sandbox. */
struct sandbox *sandbox_start(struct event_base *base, const struct config *cfg, char *err,
                              size_t errlen);

/* The URL to use as the upstream endpoint: "http://127.0.0.1:<port>". */
const char *sandbox_endpoint(const struct sandbox *sb);

/* The upstream credentials the sandbox accepts (made at start). */
const char *sandbox_access_key_id(const struct sandbox *sb);
const char *sandbox_secret_access_key(const struct sandbox *sb);

/* The SNS publisher ([sandbox] events = on), or NULL. Owned by sb. */
struct sandbox_sns *sandbox_events(const struct sandbox *sb);

/* Stop listening and free; NULL is fine. */
void sandbox_free(struct sandbox *sb);

#endif
