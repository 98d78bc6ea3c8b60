/* sesmail: the messages SES delivers, built from a send request (pure).
 *
 * Turns a parsed send (v1 SendEmail, SendRawEmail, SendTemplatedEmail; v2
 * SendEmail with Simple, Raw or Template content) into what one recipient's
 * mailbox receives, as RFC 5322 bytes: for formatted content the header
 * block SES generates (From, Reply-To, To, Cc but never Bcc, Subject as an
 * RFC 2047 encoded word when it is not plain ASCII, Date, Message-ID,
 * MIME-Version) and a UTF-8 text/plain, text/html or multipart/alternative
 * body in 7bit, quoted-printable or base64; for raw content the client's
 * message with Message-ID and Date added when missing and Bcc fields removed,
 * every other byte kept. Also: SES-shaped MessageIds, {{name}} template
 * rendering, the mailbox simulator addresses and the notifications the
 * simulator produces (bounce and complaint JSON, an out-of-office reply).
 * Nothing here does I/O or reads the clock: times are parameters.
 */
#ifndef SESGATE_SESMAIL_H
#define SESGATE_SESMAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "buf.h"
#include "form.h"
#include "seserr.h"
#include "sesreq.h"

/* Recipients SES accepts in one message (To + Cc + Bcc). */
#define SESMAIL_MAX_RECIPIENTS 50
/* A MessageId: 16 hex, '-', a UUID, "-000000" (60 chars + NUL). */
#define SESMAIL_MESSAGE_ID_LEN 60

enum sesmail_kind { SESMAIL_SIMPLE, SESMAIL_TEMPLATE, SESMAIL_RAW };

/* A list of strings; owned. */
struct sesmail_list {
    char **v;
    size_t n;
};

/* A send request reduced to what delivery needs. Every pointer is owned. */
struct sesmail_msg {
    enum sesmail_kind kind;
    char *from;              /* Source / FromEmailAddress as given; NULL for raw without one */
    struct sesmail_list to;  /* formatted: the To header; raw: the envelope (all recipients) */
    struct sesmail_list cc;  /* formatted only */
    struct sesmail_list bcc; /* formatted only */
    struct sesmail_list reply_to;
    struct sesmail_list headers; /* v2 Simple/Template Headers, "Name: Value" */
    struct sesmail_list tags;    /* message tags, "Name=Value" (names have no '=') */
    char *subject;               /* formatted: UTF-8; NULL when absent */
    char *text;                  /* formatted: UTF-8 text part; NULL when absent */
    char *html;                  /* formatted: UTF-8 HTML part; NULL when absent */
    char *template_name;         /* template sends naming a stored template; else NULL */
    char *template_data;         /* template sends: the TemplateData JSON text */
    struct buf raw;              /* raw sends: the decoded message */
};

/* Read the send in r (a parsed SESREQ_SEND request) into out (zeroed by the
 * caller): sender, recipients (for raw without an explicit list, the To, Cc
 * and Bcc header addresses), content, template name and data. Recipients
 * are checked as SES checks them: 1 to SESMAIL_MAX_RECIPIENTS, each an
 * address with a domain and only printable ASCII. Errors:
 * SESERR_MISSING_PARAMETER, SESERR_INVALID_PARAMETER, SESERR_BAD_REQUEST.
 * Returns 0, or -1 with e set; out must be cleaned up either way. */
int sesmail_from_request(const struct sesreq *r, struct sesmail_msg *out, struct seserr *e);

/* Append a copy of the n bytes at s to l. */
void sesmail_list_add(struct sesmail_list *l, const char *s, size_t n);

/* Free l's strings and array; l is empty afterwards. */
void sesmail_list_free(struct sesmail_list *l);

/* Check an address as SES does: printable ASCII, an addr-spec with a domain.
 * Returns 0, or -1 with e set (SESERR_INVALID_PARAMETER and SES's reason). */
int sesmail_check_addr(const char *s, struct seserr *e);

/* sesmail_check_addr for every address of l. */
int sesmail_check_list(const struct sesmail_list *l, struct seserr *e);

/* Append the non-empty values of the v1 list prefix.member.1, .2, ... of f
 * (up to the first one missing). */
void sesmail_v1_list(const struct form *f, const char *prefix, struct sesmail_list *l);

/* Append the non-empty strings of the v2 array o.key (absent or null: none).
 * Errors: SESERR_BAD_REQUEST when it is not an array of strings. Returns 0
 * or -1 with e set. */
int sesmail_v2_list(json_t *o, const char *key, struct sesmail_list *l, struct seserr *e);

/* Append the v2 headers at c.key ([{Name, Value}]) as "Name: Value"; a
 * header SES writes itself (From, To, Subject...) or a malformed one is
 * refused with SESERR_BAD_REQUEST. Returns 0 or -1 with e set. */
int sesmail_v2_headers(json_t *c, const char *key, struct sesmail_list *l, struct seserr *e);

/* Append the v1 tags prefix.member.N.Name/.Value (N from 1 to the first
 * missing) as "Name=Value". SES's rule is checked: a name of 1 to 256 and
 * a value of 0 to 256 ASCII letters, digits, '_' and '-'
 * (SESERR_INVALID_PARAMETER); a Name without its Value or the reverse is
 * SESERR_MISSING_PARAMETER. Returns 0 or -1 with e set. */
int sesmail_v1_tags(const struct form *f, const char *prefix, struct sesmail_list *l,
                    struct seserr *e);

/* The same for the v2 array o.key ([{Name, Value}]); a wrong shape is
 * SESERR_BAD_REQUEST. */
int sesmail_v2_tags(json_t *o, const char *key, struct sesmail_list *l, struct seserr *e);

/* Release what m owns; it is zeroed afterwards. */
void sesmail_cleanup(struct sesmail_msg *m);

/* Number of recipients of m (To + Cc + Bcc, or the raw envelope). */
size_t sesmail_recipient_count(const struct sesmail_msg *m);

/* Recipient i (0-based, To then Cc then Bcc) of m as given, or NULL. */
const char *sesmail_recipient(const struct sesmail_msg *m, size_t i);

/* The addr-spec of an address given as "Name <a@b>" or "a@b" into out
 * (cleared first). Returns 0, or -1 when there is none. */
int sesmail_addr_spec(const char *addr, struct buf *out);

/* Render a template text: every {{path}} or {{{path}}} (path: letters,
 * digits, '_', '-' and '.' for nested members, surrounded by optional
 * spaces) becomes the value at path in data (strings as they are, numbers
 * and booleans as JSON writes them, anything else or a missing member as
 * nothing); with html set, the values of {{path}} are HTML-escaped (not
 * those of {{{path}}}). Any other {{...}} is copied as it is. Appends to out. */
void sesmail_render(const char *tmpl, size_t len, const json_t *data, bool html, struct buf *out);

/* Fill m's subject, text and html from a template's parts (each may be
 * NULL) rendered with m->template_data. Errors: SESERR_INVALID_PARAMETER
 * when the data is not a JSON object. Returns 0, or -1 with e set. */
int sesmail_apply_template(struct sesmail_msg *m, const char *subject, const char *text,
                           const char *html, struct seserr *e);

/* Build the message recipient receives: "Delivered-To: <addr-spec>" and
 * then the message (see the top of this file). message_id is the SES
 * MessageId, domain the Message-ID domain ("email.amazonses.com"), date an
 * RFC 5322 date (sesmail_date). Appends to out. Returns 0, or -1 with e
 * set (a recipient without an addr-spec). */
int sesmail_build(const struct sesmail_msg *m, const char *recipient, const char *message_id,
                  const char *domain, const char *date, struct buf *out, struct seserr *e);

/* Format t (UTC seconds) as an RFC 5322 date, "Tue, 02 Jan 2024 15:04:05 +0000". */
void sesmail_date(time_t t, char out[64]);

/* Format ms (UTC milliseconds) as ISO 8601, "2024-01-02T15:04:05.123Z". */
void sesmail_iso_time(int64_t ms, char out[64]);

/* A MessageId in SES's shape from the time (UTC ms) and 16 random bytes:
 * "0100" + 12 hex of ms, '-', a version 4 UUID, "-000000". */
void sesmail_message_id(int64_t ms, const unsigned char rnd[16],
                        char out[SESMAIL_MESSAGE_ID_LEN + 1]);

/* A version 4 UUID from 16 random bytes into out[37]. */
void sesmail_uuid(const unsigned char rnd[16], char out[37]);

/* What the SES mailbox simulator does with an address. */
enum sesmail_sim {
    SESMAIL_SIM_NONE = 0,  /* not a simulator address: delivered */
    SESMAIL_SIM_SUCCESS,   /* delivered */
    SESMAIL_SIM_BOUNCE,    /* hard bounce, not delivered */
    SESMAIL_SIM_OOTO,      /* delivered, then an out-of-office reply */
    SESMAIL_SIM_COMPLAINT, /* delivered, then a complaint */
    SESMAIL_SIM_SUPPRESSED /* bounced as on the suppression list, not delivered */
};

/* The simulator outcome of addr-spec addr: local part success, bounce,
 * ooto, complaint or suppressionlist, optionally with a "+label", at
 * simulator.amazonses.com (ignoring case). */
enum sesmail_sim sesmail_simulator(const char *addr);

/* The outcome name for the sandbox's log lines ("bounce", "suppressed",
 * "complaint", "ooto"), or NULL for a delivered message. */
const char *sesmail_sim_name(enum sesmail_sim s);

/* Append the SES identity notification (JSON) the mailbox simulator
 * produces for recipient (an addr-spec): a Delivery (SIM_NONE, SIM_SUCCESS,
 * SIM_OOTO, and the delivery before a complaint), a Bounce (SIM_BOUNCE:
 * Permanent/General; SIM_SUPPRESSED: Permanent/OnAccountSuppressionList)
 * or a Complaint (SIM_COMPLAINT, feedback type abuse), for the message
 * message_id from source, at time iso (sesmail_iso_time), with feedback_id
 * naming a bounce or complaint. destinations lists every
 * recipient of the message; the message's tags, when it has any, are in
 * mail.tags as SES's event records hold them ({"name": ["value"]}). */
void sesmail_notification(enum sesmail_sim s, const char *message_id, const char *source,
                          const char *recipient, const struct sesmail_msg *m, const char *iso,
                          const char *feedback_id, struct buf *out);

/* Append the out-of-office auto reply (RFC 3834) the simulator address
 * recipient sends back to sender (an addr-spec) for message_id, with
 * "Delivered-To: <sender>" first, reply_id as its own Message-ID (an
 * id without angle brackets) and date (sesmail_date). */
void sesmail_ooto_reply(const char *recipient, const char *sender, const char *message_id,
                        const char *domain, const char *reply_id, const char *date,
                        struct buf *out);

#endif
