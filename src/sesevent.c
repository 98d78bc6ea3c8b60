/* sesevent: SES's event notifications read into a model (see sesevent.h). */
#include "sesevent.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "buf.h"

/* What each event type carries: its name, the key of its own object, the
 * formats that send it, and whom it applies to. */
struct sesevent_type {
    const char *name;
    enum sesevent_kind kind;
    const char *key;   /* the event's object ("bounce") */
    bool key_required; /* the object must be there */
    bool identity;     /* identity notifications send it too */
    enum sesevent_scope scope;
};

static const struct sesevent_type sesevent_types[] = {
    {"Bounce", SESEVENT_BOUNCE, "bounce", true, true, SESEVENT_SCOPE_RECIPIENTS},
    {"Complaint", SESEVENT_COMPLAINT, "complaint", true, true, SESEVENT_SCOPE_RECIPIENTS},
    {"Delivery", SESEVENT_DELIVERY, "delivery", true, true, SESEVENT_SCOPE_RECIPIENTS},
    {"DeliveryDelay", SESEVENT_DELIVERY_DELAY, "deliveryDelay", true, false,
     SESEVENT_SCOPE_RECIPIENTS},
    {"Reject", SESEVENT_REJECT, "reject", true, false, SESEVENT_SCOPE_MESSAGE},
    {"Send", SESEVENT_SEND, "send", false, false, SESEVENT_SCOPE_DESTINATIONS},
    {"Rendering Failure", SESEVENT_RENDERING_FAILURE, "failure", true, false,
     SESEVENT_SCOPE_DESTINATIONS},
    {"Subscription", SESEVENT_SUBSCRIPTION, "subscription", true, false,
     SESEVENT_SCOPE_DESTINATIONS},
    {"Open", SESEVENT_OPEN, "open", true, false, SESEVENT_SCOPE_DESTINATIONS},
    {"Click", SESEVENT_CLICK, "click", true, false, SESEVENT_SCOPE_DESTINATIONS},
};

#define SESEVENT_NTYPES (sizeof sesevent_types / sizeof sesevent_types[0])

/* Where a reason goes. */
struct sesevent_err {
    char *buf;
    size_t len;
};

/* Write a reason and return -1. */
__attribute__((format(printf, 2, 3))) static int sesevent_fail(struct sesevent_err *e,
                                                               const char *fmt, ...)
{
    if (e->buf != NULL && e->len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->buf, e->len, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* The kind's name as SES spells it. */
const char *sesevent_kind_name(enum sesevent_kind kind)
{
    for (size_t i = 0; i < SESEVENT_NTYPES; i++)
        if (sesevent_types[i].kind == kind)
            return sesevent_types[i].name;
    return "unknown";
}

/* True when the n characters at s are digits. */
static bool sesevent_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* True when s is an ISO 8601 time as SES's documentation shows them:
 * YYYY-MM-DDThh:mm:ss, an optional fraction, then Z or an offset (+hh:mm,
 * +hhmm, optionally after a space: "2018-10-08T14:05:45 +0000"; a
 * complaint's arrivalDate comes from the receiver's feedback report). */
static bool sesevent_time_ok(const char *s)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    size_t i = 0;
    for (; shape[i] != '\0'; i++) {
        if (shape[i] == 'd' ? !sesevent_digits(s + i, 1) : s[i] != shape[i])
            return false;
    }
    if (s[i] == '.') {
        size_t d = ++i;
        while (sesevent_digits(s + i, 1))
            i++;
        if (i == d)
            return false;
    }
    if (s[i] == 'Z')
        return s[i + 1] == '\0';
    if (s[i] == ' ')
        i++;
    if (s[i] != '+' && s[i] != '-')
        return false;
    i++;
    if (!sesevent_digits(s + i, 2))
        return false;
    i += 2;
    if (s[i] == ':')
        i++;
    return sesevent_digits(s + i, 2) && s[i + 2] == '\0';
}

/* Read the string at o[key] (o is named where in reasons) into *out.
 * Absent or null: *out stays NULL, an error when required. A string must
 * fit SESEVENT_MAX_STRING; a required one must not be empty. */
static int sesevent_str(json_t *o, const char *where, const char *key, bool required, char **out,
                        struct sesevent_err *e)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v)) {
        if (required)
            return sesevent_fail(e, "%s.%s is missing", where, key);
        return 0;
    }
    if (!json_is_string(v))
        return sesevent_fail(e, "%s.%s is not a string", where, key);
    size_t n = json_string_length(v);
    if (n > SESEVENT_MAX_STRING)
        return sesevent_fail(e, "%s.%s is longer than %d bytes", where, key, SESEVENT_MAX_STRING);
    if (required && n == 0)
        return sesevent_fail(e, "%s.%s is empty", where, key);
    *out = xstrdup(json_string_value(v));
    return 0;
}

/* Read a timestamp: a string of sesevent_time_ok's shape. */
static int sesevent_time(json_t *o, const char *where, const char *key, bool required, char **out,
                         struct sesevent_err *e)
{
    if (sesevent_str(o, where, key, required, out, e) < 0)
        return -1;
    if (*out != NULL && !sesevent_time_ok(*out))
        return sesevent_fail(e, "%s.%s is not an ISO 8601 time", where, key);
    return 0;
}

/* Read a, an array of 1..max non-empty strings named what in reasons, into
 * *out (*n); NULL a: missing. */
static int sesevent_array(json_t *a, const char *what, size_t max, char ***out, size_t *n,
                          struct sesevent_err *e)
{
    if (a == NULL || json_is_null(a))
        return sesevent_fail(e, "%s is missing", what);
    if (!json_is_array(a))
        return sesevent_fail(e, "%s is not an array", what);
    size_t k = json_array_size(a);
    if (k == 0)
        return sesevent_fail(e, "%s is empty", what);
    if (k > max)
        return sesevent_fail(e, "%s has more than %zu entries", what, max);
    *out = xcalloc(k, sizeof **out);
    for (size_t i = 0; i < k; i++) {
        json_t *v = json_array_get(a, i);
        if (!json_is_string(v))
            return sesevent_fail(e, "%s[%zu] is not a string", what, i);
        size_t len = json_string_length(v);
        if (len == 0)
            return sesevent_fail(e, "%s[%zu] is empty", what, i);
        if (len > SESEVENT_MAX_STRING)
            return sesevent_fail(e, "%s[%zu] is longer than %d bytes", what, i,
                                 SESEVENT_MAX_STRING);
        (*out)[i] = xstrdup(json_string_value(v));
        *n = i + 1;
    }
    return 0;
}

/* Read o[key] (o named where) with sesevent_array. */
static int sesevent_strings(json_t *o, const char *where, const char *key, size_t max, char ***out,
                            size_t *n, struct sesevent_err *e)
{
    char what[64];
    snprintf(what, sizeof what, "%s.%s", where, key);
    return sesevent_array(json_object_get(o, key), what, max, out, n, e);
}

/* Read mail.tags: an object of arrays of strings, bounded. */
static int sesevent_tags(json_t *mail, struct sesevent *ev, struct sesevent_err *e)
{
    json_t *t = json_object_get(mail, "tags");
    if (t == NULL || json_is_null(t))
        return 0;
    if (!json_is_object(t))
        return sesevent_fail(e, "mail.tags is not an object");
    size_t k = json_object_size(t);
    if (k > SESEVENT_MAX_TAGS)
        return sesevent_fail(e, "mail.tags has more than %d names", SESEVENT_MAX_TAGS);
    if (k == 0)
        return 0;
    ev->tags = xcalloc(k, sizeof *ev->tags);
    const char *name;
    json_t *vals;
    json_object_foreach(t, name, vals)
    {
        if (strlen(name) > SESEVENT_MAX_STRING)
            return sesevent_fail(e, "a mail.tags name is longer than %d bytes",
                                 SESEVENT_MAX_STRING);
        struct sesevent_tag *tag = &ev->tags[ev->ntags++];
        tag->name = xstrdup(name);
        char what[96];
        snprintf(what, sizeof what, "mail.tags[\"%.64s\"]", name);
        if (sesevent_array(vals, what, SESEVENT_MAX_TAG_VALUES, &tag->values, &tag->nvalues, e) < 0)
            return -1;
    }
    return 0;
}

/* Read the mail object. */
static int sesevent_mail(json_t *root, struct sesevent *ev, struct sesevent_err *e)
{
    json_t *mail = json_object_get(root, "mail");
    if (mail == NULL || json_is_null(mail))
        return sesevent_fail(e, "mail is missing");
    if (!json_is_object(mail))
        return sesevent_fail(e, "mail is not an object");
    if (sesevent_str(mail, "mail", "messageId", true, &ev->message_id, e) < 0 ||
        sesevent_time(mail, "mail", "timestamp", true, &ev->mail_timestamp, e) < 0 ||
        sesevent_str(mail, "mail", "source", true, &ev->source, e) < 0 ||
        sesevent_strings(mail, "mail", "destination", SESEVENT_MAX_RECIPIENTS, &ev->destination,
                         &ev->ndestination, e) < 0 ||
        sesevent_tags(mail, ev, e) < 0)
        return -1;
    return 0;
}

/* Read a list of recipient objects (bouncedRecipients, complainedRecipients,
 * delayedRecipients) at o[key]: 1..SESEVENT_MAX_RECIPIENTS entries, each
 * with a non-empty emailAddress; with_dsn reads action, status and
 * diagnosticCode too. */
static int sesevent_recipient_objects(json_t *o, const char *where, const char *key, bool with_dsn,
                                      struct sesevent *ev, struct sesevent_err *e)
{
    json_t *a = json_object_get(o, key);
    if (a == NULL || json_is_null(a))
        return sesevent_fail(e, "%s.%s is missing", where, key);
    if (!json_is_array(a))
        return sesevent_fail(e, "%s.%s is not an array", where, key);
    size_t k = json_array_size(a);
    if (k == 0)
        return sesevent_fail(e, "%s.%s is empty", where, key);
    if (k > SESEVENT_MAX_RECIPIENTS)
        return sesevent_fail(e, "%s.%s has more than %d entries", where, key,
                             SESEVENT_MAX_RECIPIENTS);
    ev->recipients = xcalloc(k, sizeof *ev->recipients);
    char at[64];
    for (size_t i = 0; i < k; i++) {
        json_t *r = json_array_get(a, i);
        snprintf(at, sizeof at, "%s.%s[%zu]", where, key, i);
        if (!json_is_object(r))
            return sesevent_fail(e, "%s is not an object", at);
        struct sesevent_recipient *rc = &ev->recipients[ev->nrecipients++];
        if (sesevent_str(r, at, "emailAddress", true, &rc->address, e) < 0)
            return -1;
        if (with_dsn && (sesevent_str(r, at, "action", false, &rc->action, e) < 0 ||
                         sesevent_str(r, at, "status", false, &rc->status, e) < 0 ||
                         sesevent_str(r, at, "diagnosticCode", false, &rc->diagnostic_code, e) < 0))
            return -1;
    }
    return 0;
}

/* Bounce: type, subtype, recipients, time. */
static int sesevent_bounce(json_t *o, struct sesevent *ev, struct sesevent_err *e)
{
    if (sesevent_str(o, "bounce", "bounceType", true, &ev->bounce_type, e) < 0 ||
        sesevent_str(o, "bounce", "bounceSubType", true, &ev->bounce_subtype, e) < 0 ||
        sesevent_recipient_objects(o, "bounce", "bouncedRecipients", true, ev, e) < 0 ||
        sesevent_time(o, "bounce", "timestamp", true, &ev->timestamp, e) < 0)
        return -1;
    if (strcmp(ev->bounce_type, "Permanent") == 0)
        ev->bounce = SESEVENT_BOUNCE_PERMANENT;
    else if (strcmp(ev->bounce_type, "Transient") == 0)
        ev->bounce = SESEVENT_BOUNCE_TRANSIENT;
    else if (strcmp(ev->bounce_type, "Undetermined") == 0)
        ev->bounce = SESEVENT_BOUNCE_UNDETERMINED;
    else
        ev->bounce = SESEVENT_BOUNCE_OTHER;
    return 0;
}

/* Complaint: recipients, feedback type and subtype, dates, user agent. */
static int sesevent_complaint(json_t *o, struct sesevent *ev, struct sesevent_err *e)
{
    if (sesevent_recipient_objects(o, "complaint", "complainedRecipients", false, ev, e) < 0 ||
        sesevent_time(o, "complaint", "timestamp", true, &ev->timestamp, e) < 0 ||
        sesevent_str(o, "complaint", "complaintFeedbackType", false, &ev->feedback_type, e) < 0 ||
        sesevent_str(o, "complaint", "complaintSubType", false, &ev->complaint_subtype, e) < 0 ||
        sesevent_time(o, "complaint", "arrivalDate", false, &ev->arrival_date, e) < 0 ||
        sesevent_str(o, "complaint", "userAgent", false, &ev->user_agent, e) < 0)
        return -1;
    return 0;
}

/* Delivery: recipients (strings), time, processing time, SMTP response. */
static int sesevent_delivery(json_t *o, struct sesevent *ev, struct sesevent_err *e)
{
    char **rcpt = NULL;
    size_t n = 0;
    int rc = sesevent_strings(o, "delivery", "recipients", SESEVENT_MAX_RECIPIENTS, &rcpt, &n, e);
    if (n > 0) {
        ev->recipients = xcalloc(n, sizeof *ev->recipients);
        for (size_t i = 0; i < n; i++)
            ev->recipients[i].address = rcpt[i];
        ev->nrecipients = n;
    }
    free(rcpt);
    if (rc < 0 || sesevent_time(o, "delivery", "timestamp", true, &ev->timestamp, e) < 0 ||
        sesevent_str(o, "delivery", "smtpResponse", false, &ev->smtp_response, e) < 0)
        return -1;
    json_t *p = json_object_get(o, "processingTimeMillis");
    if (p != NULL && !json_is_null(p)) {
        if (!json_is_integer(p) || json_integer_value(p) < 0)
            return sesevent_fail(e, "delivery.processingTimeMillis is not a whole number >= 0");
        ev->has_processing_time = true;
        ev->processing_time_ms = (int64_t)json_integer_value(p);
    }
    return 0;
}

/* DeliveryDelay: delay type, recipients, time, expiration. */
static int sesevent_delay(json_t *o, struct sesevent *ev, struct sesevent_err *e)
{
    if (sesevent_str(o, "deliveryDelay", "delayType", true, &ev->delay_type, e) < 0 ||
        sesevent_recipient_objects(o, "deliveryDelay", "delayedRecipients", true, ev, e) < 0 ||
        sesevent_time(o, "deliveryDelay", "timestamp", true, &ev->timestamp, e) < 0 ||
        sesevent_time(o, "deliveryDelay", "expirationTime", false, &ev->expiration_time, e) < 0)
        return -1;
    return 0;
}

/* The event's own object, by kind. */
static int sesevent_body(json_t *o, struct sesevent *ev, struct sesevent_err *e)
{
    switch (ev->kind) {
    case SESEVENT_BOUNCE:
        return sesevent_bounce(o, ev, e);
    case SESEVENT_COMPLAINT:
        return sesevent_complaint(o, ev, e);
    case SESEVENT_DELIVERY:
        return sesevent_delivery(o, ev, e);
    case SESEVENT_DELIVERY_DELAY:
        return sesevent_delay(o, ev, e);
    case SESEVENT_REJECT:
        return sesevent_str(o, "reject", "reason", true, &ev->reason, e);
    case SESEVENT_RENDERING_FAILURE:
        if (sesevent_str(o, "failure", "templateName", false, &ev->template_name, e) < 0 ||
            sesevent_str(o, "failure", "errorMessage", false, &ev->error_message, e) < 0)
            return -1;
        return 0;
    case SESEVENT_OPEN:
    case SESEVENT_CLICK: {
        const char *w = ev->kind == SESEVENT_OPEN ? "open" : "click";
        if (sesevent_time(o, w, "timestamp", true, &ev->timestamp, e) < 0 ||
            sesevent_str(o, w, "ipAddress", false, &ev->ip_address, e) < 0 ||
            sesevent_str(o, w, "userAgent", false, &ev->user_agent, e) < 0)
            return -1;
        if (ev->kind == SESEVENT_CLICK)
            return sesevent_str(o, w, "link", true, &ev->link, e);
        return 0;
    }
    case SESEVENT_SUBSCRIPTION:
        if (sesevent_time(o, "subscription", "timestamp", true, &ev->timestamp, e) < 0 ||
            sesevent_str(o, "subscription", "contactList", false, &ev->contact_list, e) < 0 ||
            sesevent_str(o, "subscription", "source", false, &ev->subscription_source, e) < 0)
            return -1;
        return 0;
    case SESEVENT_SEND:
    case SESEVENT_UNKNOWN:
        return 0;
    }
    return 0;
}

/* Read the parsed document root into ev. */
static int sesevent_read(json_t *root, struct sesevent *ev, struct sesevent_err *e)
{
    if (!json_is_object(root))
        return sesevent_fail(e, "the event is not a JSON object");
    json_t *et = json_object_get(root, "eventType");
    json_t *nt = json_object_get(root, "notificationType");
    if (et != NULL && nt != NULL)
        return sesevent_fail(e, "both eventType and notificationType are present");
    json_t *t = et != NULL ? et : nt;
    const char *tname = et != NULL ? "eventType" : "notificationType";
    if (t == NULL)
        return sesevent_fail(e, "neither eventType nor notificationType is present");
    if (!json_is_string(t))
        return sesevent_fail(e, "%s is not a string", tname);
    if (json_string_length(t) == 0 || json_string_length(t) > 64)
        return sesevent_fail(e, "%s is empty or longer than 64 bytes", tname);
    ev->format = et != NULL ? SESEVENT_EVENTPUB : SESEVENT_IDENTITY;
    ev->type = xstrdup(json_string_value(t));

    const struct sesevent_type *ty = NULL;
    for (size_t i = 0; i < SESEVENT_NTYPES; i++)
        if (strcmp(sesevent_types[i].name, ev->type) == 0 &&
            (ev->format == SESEVENT_EVENTPUB || sesevent_types[i].identity))
            ty = &sesevent_types[i];

    if (sesevent_mail(root, ev, e) < 0)
        return -1;
    if (ty == NULL) {
        ev->kind = SESEVENT_UNKNOWN;
        ev->scope = SESEVENT_SCOPE_NONE;
        return 0;
    }
    ev->kind = ty->kind;
    ev->scope = ty->scope;
    json_t *o = json_object_get(root, ty->key);
    if (o == NULL || json_is_null(o)) {
        if (ty->key_required)
            return sesevent_fail(e, "%s is missing for a %s event", ty->key, ty->name);
        return 0;
    }
    if (!json_is_object(o))
        return sesevent_fail(e, "%s is not an object", ty->key);
    if (sesevent_body(o, ev, e) < 0)
        return -1;
    if (ev->scope == SESEVENT_SCOPE_RECIPIENTS && ev->nrecipients == 0)
        return sesevent_fail(e, "a %s event names no recipient", ty->name);
    return 0;
}

int sesevent_parse(const char *json, size_t len, struct sesevent *ev, char *err, size_t errlen)
{
    struct sesevent_err e = {err, errlen};
    memset(ev, 0, sizeof *ev);
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (len > SESEVENT_MAX_INPUT)
        return sesevent_fail(&e, "the event is larger than %d bytes", SESEVENT_MAX_INPUT);
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return sesevent_fail(&e, "the event is not JSON: %.80s", jerr.text);
    int rc = sesevent_read(root, ev, &e);
    json_decref(root);
    if (rc < 0)
        sesevent_cleanup(ev);
    return rc;
}

void sesevent_cleanup(struct sesevent *ev)
{
    for (size_t i = 0; i < ev->ndestination; i++)
        free(ev->destination[i]);
    free(ev->destination);
    for (size_t i = 0; i < ev->ntags; i++) {
        for (size_t j = 0; j < ev->tags[i].nvalues; j++)
            free(ev->tags[i].values[j]);
        free(ev->tags[i].values);
        free(ev->tags[i].name);
    }
    free(ev->tags);
    for (size_t i = 0; i < ev->nrecipients; i++) {
        free(ev->recipients[i].address);
        free(ev->recipients[i].action);
        free(ev->recipients[i].status);
        free(ev->recipients[i].diagnostic_code);
    }
    free(ev->recipients);
    char **strs[] = {&ev->type,
                     &ev->message_id,
                     &ev->mail_timestamp,
                     &ev->source,
                     &ev->timestamp,
                     &ev->bounce_type,
                     &ev->bounce_subtype,
                     &ev->feedback_type,
                     &ev->complaint_subtype,
                     &ev->arrival_date,
                     &ev->smtp_response,
                     &ev->delay_type,
                     &ev->expiration_time,
                     &ev->reason,
                     &ev->template_name,
                     &ev->error_message,
                     &ev->ip_address,
                     &ev->user_agent,
                     &ev->link,
                     &ev->contact_list,
                     &ev->subscription_source};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        free(*strs[i]);
    memset(ev, 0, sizeof *ev);
}

const char *sesevent_tag(const struct sesevent *ev, const char *name)
{
    for (size_t i = 0; i < ev->ntags; i++)
        if (strcmp(ev->tags[i].name, name) == 0)
            return ev->tags[i].nvalues > 0 ? ev->tags[i].values[0] : NULL;
    return NULL;
}

/* The number of the n digits at s. */
static int sesevent_num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

int sesevent_time_ms(const char *s, int64_t *ms)
{
    if (s == NULL || !sesevent_time_ok(s))
        return -1;
    struct tm tm = {0};
    tm.tm_year = sesevent_num(s, 4) - 1900;
    tm.tm_mon = sesevent_num(s + 5, 2) - 1;
    tm.tm_mday = sesevent_num(s + 8, 2);
    tm.tm_hour = sesevent_num(s + 11, 2);
    tm.tm_min = sesevent_num(s + 14, 2);
    tm.tm_sec = sesevent_num(s + 17, 2);
    if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
        tm.tm_sec > 60)
        return -1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    int64_t v = (int64_t)t * 1000;
    size_t i = 19;
    if (s[i] == '.') {
        int64_t scale = 100;
        for (i++; s[i] >= '0' && s[i] <= '9'; i++, scale /= 10)
            v += (s[i] - '0') * scale;
    }
    if (s[i] == ' ')
        i++;
    if (s[i] == '+' || s[i] == '-') {
        int sign = s[i] == '+' ? 1 : -1;
        int hh = sesevent_num(s + i + 1, 2);
        int mm = sesevent_num(s + i + (s[i + 3] == ':' ? 4 : 3), 2);
        if (hh > 23 || mm > 59)
            return -1;
        v -= sign * (int64_t)(hh * 60 + mm) * 60000;
    }
    *ms = v;
    return 0;
}

const char *sesevent_state(const struct sesevent *ev)
{
    switch (ev->kind) {
    case SESEVENT_BOUNCE:
        return "bounced";
    case SESEVENT_COMPLAINT:
        return "complained";
    case SESEVENT_DELIVERY:
        return "delivered";
    case SESEVENT_DELIVERY_DELAY:
        return "delayed";
    case SESEVENT_REJECT:
        return "rejected";
    default:
        return "";
    }
}

/* Set key to s in o when s is present, cut to SESEVENT_DETAIL_STRING bytes
 * (at a UTF-8 character boundary). */
static void sesevent_detail_set(json_t *o, const char *key, const char *s)
{
    if (s == NULL)
        return;
    size_t n = strlen(s);
    if (n > SESEVENT_DETAIL_STRING) {
        n = SESEVENT_DETAIL_STRING;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    json_object_set_new(o, key, json_stringn(s, n));
}

void sesevent_detail(const struct sesevent *ev, size_t i, struct buf *out)
{
    const struct sesevent_recipient *r =
        ev->scope == SESEVENT_SCOPE_RECIPIENTS && i < ev->nrecipients ? &ev->recipients[i] : NULL;
    json_t *o = json_object();
    switch (ev->kind) {
    case SESEVENT_BOUNCE:
        sesevent_detail_set(o, "type", ev->bounce_type);
        sesevent_detail_set(o, "subtype", ev->bounce_subtype);
        break;
    case SESEVENT_COMPLAINT:
        sesevent_detail_set(o, "feedback_type", ev->feedback_type);
        sesevent_detail_set(o, "subtype", ev->complaint_subtype);
        break;
    case SESEVENT_DELIVERY:
        sesevent_detail_set(o, "smtp_response", ev->smtp_response);
        break;
    case SESEVENT_DELIVERY_DELAY:
        sesevent_detail_set(o, "type", ev->delay_type);
        sesevent_detail_set(o, "expiration", ev->expiration_time);
        break;
    case SESEVENT_REJECT:
        sesevent_detail_set(o, "reason", ev->reason);
        break;
    default:
        break;
    }
    if (r != NULL) {
        sesevent_detail_set(o, "action", r->action);
        sesevent_detail_set(o, "status", r->status);
        sesevent_detail_set(o, "diagnostic", r->diagnostic_code);
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    if (s == NULL)
        abort(); /* jansson out of memory: the OOM policy (buf.h) */
    buf_adds(out, s);
    free(s);
    json_decref(o);
}
