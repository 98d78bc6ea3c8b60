/* sesbulk: SES's bulk templated sends, read and rendered per destination (pure).
 *
 * Reads a v1 SendBulkTemplatedEmail (Source, Template, DefaultTemplateData,
 * DefaultTags, ReplyToAddresses, Destinations.member.N.{Destination,
 * ReplacementTemplateData, ReplacementTags}) or a v2 SendBulkEmail
 * (FromEmailAddress, DefaultContent.Template, DefaultEmailTags,
 * ReplyToAddresses, BulkEmailEntries[].{Destination, ReplacementTags,
 * ReplacementEmailContent.ReplacementTemplate.ReplacementTemplateData,
 * ReplacementHeaders}) into one model, checked as SES checks the call as a
 * whole: the required parameters, 1 to SESBULK_MAX_DESTINATIONS
 * destinations, each with 1 to SESMAIL_MAX_RECIPIENTS valid addresses,
 * valid tags, a DefaultTemplateData that is a JSON object.
 *
 * Each destination becomes one sesmail message: the template rendered with
 * the destination's ReplacementTemplateData merged over the default data
 * (sesbulk_merge_data), its ReplacementTags over the default tags and its
 * ReplacementHeaders over the template's Headers (by name). The answer, one
 * status per destination in order, is rendered as SES renders it.
 * Nothing here does I/O: the caller loads the template and delivers.
 */
#ifndef SESGATE_SESBULK_H
#define SESGATE_SESBULK_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "buf.h"
#include "sesmail.h"
#include "sesreq.h"
#include "seserr.h"

/* Destinations SES takes in one bulk call. */
#define SESBULK_MAX_DESTINATIONS 50

/* One destination of a bulk call. Every pointer is owned. */
struct sesbulk_entry {
    struct sesmail_list to, cc, bcc;
    char *data;                  /* ReplacementTemplateData as given; NULL when absent */
    struct sesmail_list tags;    /* ReplacementTags, "Name=Value" */
    struct sesmail_list headers; /* v2 ReplacementHeaders, "Name: Value" */
};

/* A bulk call. Every pointer is owned. */
struct sesbulk {
    enum sesreq_api api;
    char *from;
    struct sesmail_list reply_to;
    char *template_name; /* a stored template; NULL with inline content */
    /* v2 inline DefaultContent.Template.TemplateContent (each may be NULL) */
    char *subject, *text, *html;
    json_t *defaults;            /* the default template data (an object) */
    struct sesmail_list tags;    /* DefaultTags / DefaultEmailTags, "Name=Value" */
    struct sesmail_list headers; /* v2 DefaultContent.Template.Headers */
    struct sesbulk_entry *entries;
    size_t n;
};

/* Read the bulk call in r (v1 SendBulkTemplatedEmail, v2 SendBulkEmail) into
 * out (zeroed by the caller). Errors (the whole call fails, as in SES):
 * SESERR_MISSING_PARAMETER (v1 Source, Template, DefaultTemplateData,
 * Destinations; a sender), SESERR_BAD_REQUEST (v2 shapes, DefaultContent,
 * BulkEmailEntries), SESERR_INVALID_PARAMETER (more than
 * SESBULK_MAX_DESTINATIONS destinations, a destination without recipients
 * or with more than SESMAIL_MAX_RECIPIENTS, an invalid address or tag, a
 * DefaultTemplateData that is not a JSON object). Returns 0, or -1 with e
 * set; out must be cleaned up either way. */
int sesbulk_from_request(const struct sesreq *r, struct sesbulk *out, struct seserr *e);

/* Release what b owns; it is zeroed afterwards. */
void sesbulk_cleanup(struct sesbulk *b);

/* SES's merge of a destination's replacement data over the defaults (a new
 * reference): every member of rep replaces the default of the same name,
 * except that two objects merge member by member (recursively); arrays and
 * scalars are replaced whole; the default members rep does not name stay.
 * rep NULL: a copy of def. */
json_t *sesbulk_merge_data(const json_t *def, const json_t *rep);

/* Merge "Name<sep>Value" items by name (sep '=' for tags, ':' for headers,
 * whose names compare without case): def's items in order, each replaced by
 * rep's item of the same name when there is one, then rep's other items.
 * Appends to out. */
void sesbulk_merge_named(const struct sesmail_list *def, const struct sesmail_list *rep, char sep,
                         struct sesmail_list *out);

/* Make the message of destination i into m (zeroed by the caller): sender,
 * Reply-To, the destination's To, Cc and Bcc, merged tags and headers, and
 * the template parts subject, text and html (each may be NULL) rendered
 * with the merged data. Errors: SESERR_INVALID_PARAMETER when the
 * destination's ReplacementTemplateData is not a JSON object (SES reports
 * it for that destination only). Returns 0, or -1 with e set; m must be
 * cleaned up either way. */
int sesbulk_entry_message(const struct sesbulk *b, size_t i, const char *subject, const char *text,
                          const char *html, struct sesmail_msg *m, struct seserr *e);

/* The outcome of one destination. */
enum sesbulk_status {
    SESBULK_SUCCESS = 0,
    SESBULK_INVALID_PARAMETER,    /* its replacement data is not a JSON object */
    SESBULK_ACCOUNT_THROTTLED,    /* over the sending rate */
    SESBULK_DAILY_QUOTA_EXCEEDED, /* over the daily quota */
    SESBULK_FAILED                /* it could not be written */
};

/* One destination's result: a MessageId on success, else an error text. */
struct sesbulk_result {
    enum sesbulk_status status;
    char message_id[SESMAIL_MESSAGE_ID_LEN + 1];
    char error[512];
};

/* The status as SES spells it: v1 "Success", "InvalidParameterValue",
 * "AccountThrottled", "AccountDailyQuotaExceeded", "Failed"; v2 "SUCCESS",
 * "INVALID_PARAMETER", "ACCOUNT_THROTTLED", "ACCOUNT_DAILY_QUOTA_EXCEEDED",
 * "FAILED" (the model's enum). */
const char *sesbulk_status_name(enum sesbulk_status s, enum sesreq_api api);

/* Append the answer's result (bulk_answer_result, the gateway's one writer
 * of bulk answers): v1 the content of <SendBulkTemplatedEmailResult>, v2
 * the whole JSON body, one entry per result in order. */
void sesbulk_render(enum sesreq_api api, const struct sesbulk_result *res, size_t n,
                    struct buf *out);

#endif
