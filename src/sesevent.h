/* sesevent: SES's event notifications read into a model (core: no I/O).
 *
 * SES publishes an event about a message it sent through SNS; the SNS
 * Notification's Message is a JSON document in one of two formats:
 *   - identity notifications: "notificationType" is Bounce, Complaint or
 *     Delivery;
 *   - configuration-set event publishing: "eventType" is Bounce, Complaint,
 *     Delivery, DeliveryDelay, Reject, Send, Rendering Failure,
 *     Subscription, Open or Click.
 * Both carry a "mail" object (messageId, SES's MessageId, is the key that
 * names the message) and an object of the event's own.
 *
 * Scope: an event that names recipients (Bounce, Complaint, Delivery,
 * DeliveryDelay) applies to those recipients only and is refused when it
 * names none; it is never widened to the message. Reject applies to the
 * whole message. Send, Rendering Failure, Subscription, Open and Click name
 * no recipient and apply to every destination of the message.
 *
 * An event type this parser does not know is not an error: the mail object
 * is read (the message id is kept), kind is SESEVENT_UNKNOWN, scope
 * SESEVENT_SCOPE_NONE, and type holds the name SES sent.
 */
#ifndef SESGATE_SESEVENT_H
#define SESGATE_SESEVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define SESEVENT_MAX_INPUT      (256 * 1024) /* bytes: SNS's largest message */
#define SESEVENT_MAX_RECIPIENTS 50           /* SES: recipients of one message */
#define SESEVENT_MAX_TAGS       64           /* tag names in mail.tags */
#define SESEVENT_MAX_TAG_VALUES 16           /* values of one tag */
#define SESEVENT_MAX_STRING     8192         /* bytes of any one string read */
#define SESEVENT_DETAIL_STRING  512          /* bytes of a string kept in a detail */

enum sesevent_format {
    SESEVENT_IDENTITY, /* "notificationType": identity notifications */
    SESEVENT_EVENTPUB, /* "eventType": configuration-set event publishing */
};

enum sesevent_kind {
    SESEVENT_UNKNOWN, /* a type this parser does not know (type names it) */
    SESEVENT_BOUNCE,
    SESEVENT_COMPLAINT,
    SESEVENT_DELIVERY,
    SESEVENT_DELIVERY_DELAY,
    SESEVENT_REJECT,
    SESEVENT_SEND,
    SESEVENT_RENDERING_FAILURE,
    SESEVENT_SUBSCRIPTION,
    SESEVENT_OPEN,
    SESEVENT_CLICK,
};

/* Whom an event applies to. */
enum sesevent_scope {
    SESEVENT_SCOPE_NONE,         /* nobody: an unknown event type */
    SESEVENT_SCOPE_RECIPIENTS,   /* the recipients listed, each alone */
    SESEVENT_SCOPE_MESSAGE,      /* the whole message (Reject) */
    SESEVENT_SCOPE_DESTINATIONS, /* every destination (no recipient named) */
};

enum sesevent_bounce_type {
    SESEVENT_BOUNCE_NONE, /* not a bounce */
    SESEVENT_BOUNCE_PERMANENT,
    SESEVENT_BOUNCE_TRANSIENT,
    SESEVENT_BOUNCE_UNDETERMINED,
    SESEVENT_BOUNCE_OTHER, /* a value SES did not document (bounce_type has it) */
};

/* One recipient an event names. Strings are NULL when absent. */
struct sesevent_recipient {
    char *address;         /* emailAddress (or a Delivery's recipients[]): never empty */
    char *action;          /* Bounce: action */
    char *status;          /* Bounce, DeliveryDelay: status (DSN code) */
    char *diagnostic_code; /* Bounce, DeliveryDelay: diagnosticCode */
};

/* One mail.tags entry: a name and its values. */
struct sesevent_tag {
    char *name;
    char **values;
    size_t nvalues;
};

/* An event. Every string is owned by the event and NULL when absent;
 * timestamps are as SES wrote them (ISO 8601, checked for shape). */
struct sesevent {
    enum sesevent_format format;
    enum sesevent_kind kind;
    enum sesevent_scope scope;
    char *type; /* the eventType or notificationType value */

    /* mail */
    char *message_id;     /* mail.messageId: never empty */
    char *mail_timestamp; /* mail.timestamp: when the message was sent */
    char *source;         /* mail.source */
    char **destination;   /* mail.destination: 1..SESEVENT_MAX_RECIPIENTS */
    size_t ndestination;
    struct sesevent_tag *tags; /* mail.tags (event publishing only) */
    size_t ntags;

    /* the recipients the event names (scope SESEVENT_SCOPE_RECIPIENTS) */
    struct sesevent_recipient *recipients;
    size_t nrecipients;

    char *timestamp; /* the event's own timestamp, when it has one */

    /* Bounce */
    enum sesevent_bounce_type bounce;
    char *bounce_type;    /* bounceType as sent */
    char *bounce_subtype; /* bounceSubType */
    /* Complaint */
    char *feedback_type;     /* complaintFeedbackType */
    char *complaint_subtype; /* complaintSubType */
    char *arrival_date;      /* arrivalDate */
    /* Delivery */
    bool has_processing_time;
    int64_t processing_time_ms; /* processingTimeMillis */
    char *smtp_response;
    /* DeliveryDelay */
    char *delay_type;
    char *expiration_time;
    /* Reject */
    char *reason;
    /* Rendering Failure */
    char *template_name;
    char *error_message;
    /* Open, Click, Complaint: the reader's client */
    char *ip_address;
    char *user_agent;
    char *link; /* Click */
    /* Subscription */
    char *contact_list;
    char *subscription_source; /* subscription.source (how the preference changed) */
};

/* Parse the SES event JSON of len bytes at json into ev (zeroed first).
 * Returns 0 (kind SESEVENT_UNKNOWN for a type this parser does not know),
 * or -1 with a reason in err (errlen bytes) and ev holding nothing to
 * free. On success the caller frees ev with sesevent_cleanup. */
int sesevent_parse(const char *json, size_t len, struct sesevent *ev, char *err, size_t errlen);

/* Free what ev owns; ev is zeroed and can be parsed into again. */
void sesevent_cleanup(struct sesevent *ev);

/* The kind's name as SES spells it ("Rendering Failure"), "unknown". */
const char *sesevent_kind_name(enum sesevent_kind kind);

/* The value of tag name in ev's mail.tags (its first value), or NULL. */
const char *sesevent_tag(const struct sesevent *ev, const char *name);

/* s (ISO 8601 as sesevent_parse accepts it: a fraction, Z or an offset)
 * in ms since the epoch. Returns 0, or -1 when s is NULL or not such a time. */
int sesevent_time_ms(const char *s, int64_t *ms);

/* The delivery state ev gives each recipient it applies to: "bounced",
 * "complained", "delivered", "delayed" (DeliveryDelay), "rejected"
 * (Reject, the whole message), or "" (the other kinds change no state). */
const char *sesevent_state(const struct sesevent *ev);

/* Append the details of ev for its recipient i (an index into recipients
 * when the scope is SESEVENT_SCOPE_RECIPIENTS; otherwise i is ignored) as a
 * compact JSON object with sorted keys, each present only when SES sent it:
 * Bounce type, subtype; Complaint feedback_type, subtype; Delivery
 * smtp_response; DeliveryDelay type, expiration; Reject reason; and the
 * recipient's action, status, diagnostic. Strings are cut to
 * SESEVENT_DETAIL_STRING bytes. */
void sesevent_detail(const struct sesevent *ev, size_t i, struct buf *out);

#endif
