/* fanout: the fan-out planner (pure: no I/O, no clock).
 *
 * A send (v1 SendEmail, SendTemplatedEmail, SendRawEmail; v2 SendEmail with
 * Simple, Template or Raw content) is a batch when it has two or more To
 * recipients, fan-out is on for the client, and no message tag
 * sesgate-fanout=off is present (v1 Tags, v2 EmailTags, or for raw messages
 * the X-SES-MESSAGE-TAGS header). The sesgate-fanout tag, whatever its value,
 * is stripped from everything forwarded.
 *
 * A batch is split into a template (the request with every destination
 * parameter and the tag removed, kept once) and the recipients: every To
 * address in order, each of which gets its own copy, then the riders (Cc,
 * then Bcc) that go with copy 0 only. Each recipient gets one copy: an
 * address given again (its addr-spec, ignoring case) is dropped, also a Cc
 * or Bcc rider that is a To recipient. Copy i is rendered from the template
 * and recipient i alone, so storing a batch costs one template plus one
 * address per recipient.
 *
 * The copies themselves are rendered by copybody (copybody.h).
 *
 * Raw messages: when the request names destinations (v1 Destinations, v2
 * Destination), they are the envelope; one that the message's To header
 * names (addr-spec, ignoring case) is a To recipient, one in its Cc header
 * is a Cc rider, any other a Bcc rider. Without destinations the recipients
 * come from the To, Cc and Bcc header fields (every occurrence of each).
 * Every raw copy names its envelope explicitly, and its message is rewritten
 * by rfc5322_rewrite_for_copy (one To, no Bcc, Cc on copy 0 only) unless a
 * DKIM signature covers a field that would change: then every copy keeps the
 * message as sent and only the envelope is split.
 */
#ifndef SESGATE_FANOUT_H
#define SESGATE_FANOUT_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "sesreq.h"
#include "seserr.h"

/* The message tag that opts a send out of fan-out (value "off"). */
#define FANOUT_TAG_NAME "sesgate-fanout"

/* Most Cc plus Bcc riders, and most To recipients of a send that cannot be
 * a batch (SES itself takes 50 recipients per message). */
#define FANOUT_MAX_LIST 20000

enum fanout_kind { FANOUT_TO = 0, FANOUT_CC, FANOUT_BCC };

/* A recipient riding with copy 0. */
struct fanout_rcpt {
    char *addr; /* owned; as the request gave it (formatted sends) or the
                   addr-spec (raw messages) */
    enum fanout_kind kind;
};

/* An address left out of a batch because SES would refuse it (skip mode). */
struct fanout_invalid {
    char *addr;         /* owned; as the request gave it */
    const char *reason; /* static: SES's reason (addr.h) */
};

struct fanout_plan {
    enum sesreq_api api;
    const char *action;      /* static, from the request */
    bool raw;                /* raw MIME content */
    bool batch;              /* fan the send out */
    bool tag_stripped;       /* a sesgate-fanout tag was removed */
    bool dkim_envelope_only; /* raw batch whose copies keep the message as sent (a
                                DKIM signature covers To, Cc or Bcc) */
    char **to;               /* To recipients in order, one copy each; owned */
    size_t nto;
    struct fanout_rcpt *riders; /* Cc riders then Bcc riders, copy 0 only; owned */
    size_t nriders;
    struct buf template;            /* batch only: the request body without destinations nor
                                       tag (v1 form, v2 compact JSON) */
    struct buf forward;             /* not a batch but tag_stripped: the body to forward
                                       instead of the original (destinations kept); else empty,
                                       and the original is forwarded as it came */
    struct fanout_invalid *invalid; /* skip mode: addresses left out, in order; owned */
    size_t ninvalid;
    /* A bulk call (bulk.h): to holds its units, not addresses. */
    bool bulk;
    size_t *cost;        /* bulk: the recipients of each unit; owned */
    size_t ndest;        /* bulk: destinations in the call, units and left out */
    size_t *invalid_pos; /* bulk: the destination each invalid address was in; owned */
};

/* Plan the parsed send r (out is overwritten; clean it up in every case).
 * fanout_on is the client's fan-out switch; max_recipients bounds the To
 * recipients of a batch. Every address is checked with addr.h: one SES would
 * refuse fails the plan with SES's reason, unless skip_invalid is set and the
 * send can be fanned out: then it is left out and listed in invalid, and the
 * send is a batch (even of one To recipient) so that they are reported with
 * it; a send with no valid To recipient left still fails. Requests of another kind than SESREQ_SEND
 * give a plan that is not a batch and strips nothing. The recipients (to, riders) are filled for
 * every send, batch or not; for a raw message that cannot be a batch (fan-out off, or opted out)
 * they are read as far as its headers parse, and a header sesgate cannot parse is left to SES
 * instead of failing. Every To recipient of a raw batch is an addr-spec that
 * rfc5322_rewrite_for_copy accepts, so each copy renders.
 * Errors: SESERR_INVALID_PARAMETER (more than max_recipients To recipients
 * in what would be a batch, more than FANOUT_MAX_LIST recipients, an address
 * that does not parse where one is needed, invalid base64 raw data),
 * SESERR_BAD_REQUEST (v2 Destination of the wrong shape), SESERR_INTERNAL
 * (a send without a parsed body). Returns 0, or -1 with e set. */
int fanout_plan(const struct sesreq *r, bool fanout_on, size_t max_recipients, bool skip_invalid,
                struct fanout_plan *out, struct seserr *e);

/* fanout_plan, calling on_batch(arg) once when the send is a batch and the
 * request's body is no longer needed: before the template is written when
 * it comes from r's parsed parameters alone, after it when r reads the
 * message in place (r->raw_data). The caller may let go of the body there;
 * a large message is then not held three times over. */
int fanout_plan_hooked(const struct sesreq *r, bool fanout_on, size_t max_recipients,
                       bool skip_invalid, void (*on_batch)(void *arg), void *arg,
                       struct fanout_plan *out, struct seserr *e);

/* fanout_plan_hooked, where a send that can be fanned out and has at least
 * one To recipient is a batch even with only one (always_batch): the
 * message then goes through the queue whatever the rate (SMTP). */
int fanout_plan_ex(const struct sesreq *r, bool fanout_on, size_t max_recipients, bool skip_invalid,
                   bool always_batch, void (*on_batch)(void *arg), void *arg,
                   struct fanout_plan *out, struct seserr *e);

/* The body of a send that is not a batch with other destinations, appended
 * to out: to as its To recipients and riders by their kind (a raw v1
 * message: all of them as Destinations.member.N, its envelope). v1: the
 * parameters f (every one of the request's, query string included) but
 * its destinations (Destination.* for a formatted send, Destinations.* for
 * a raw one), then the new ones, as a form; v2: the JSON body
 * body[0..len) with its Destination replaced (a raw message's data is kept
 * byte for byte, read in place when it can be). Returns 0, or -1 when the
 * v2 body is not a JSON object (out as it was). */
int fanout_with_dest(enum sesreq_api api, bool raw, const struct form *f, const char *body,
                     size_t len, char *const *to, size_t nto, const struct fanout_rcpt *riders,
                     size_t nriders, struct buf *out);

/* Release what p owns; it is zeroed afterwards. */
void fanout_plan_cleanup(struct fanout_plan *p);

#endif
