/* bulk: SES's bulk calls as batches (pure: no I/O, no clock).
 *
 * v1 SendBulkTemplatedEmail and v2 SendBulkEmail name up to 50
 * destinations each in one call; sesgate accepts any number up to
 * max_recipients and makes each destination one unit of a batch. A unit is
 * one message, as SES defines it: its To, Cc and Bcc addresses and its own
 * replacement data and tags travel together and are never split. A unit is
 * kept as text, exactly as the client wrote that destination:
 *   v1: its parameters with the "Destinations.member.N." prefix taken off,
 *       form-encoded ("Destination.ToAddresses.member.1=a%40example.com&
 *       ReplacementTemplateData=...");
 *   v2: its BulkEmailEntries element as compact JSON.
 * The batch's template is the call without its destinations. A bulk call of
 * k units is the template with those k destinations put back, numbered 1..k
 * (v1) or as the BulkEmailEntries array (v2), so SES merges each
 * destination's replacement data and tags over the defaults itself.
 *
 * SES answers a bulk call with one status per destination, in order; these
 * functions read that answer and write it, for the client, on both APIs.
 */
#ifndef SESGATE_BULK_H
#define SESGATE_BULK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "backoff.h"
#include "buf.h"
#include "fanout.h"
#include "sesreq.h"
#include "seserr.h"

/* Destinations per bulk call, SES's limit. */
#define BULK_MAX_DESTINATIONS 50

/* Recipients (To + Cc + Bcc) per destination, SES's limit. */
#define BULK_MAX_RECIPIENTS 50

/* True for the bulk actions: SendBulkTemplatedEmail (v1), SendBulkEmail (v2). */
bool bulk_action(const char *action);

/* Plan the bulk call r (out is overwritten; clean it up in every case):
 * out->bulk is set, out->to holds the units (out->nto of them, each with
 * its recipients in out->cost), out->template the call without its
 * destinations and without the sesgate-fanout tag (v1 DefaultTags, v2
 * DefaultEmailTags). out->batch is set unless fan-out is off for the client,
 * the tag says off, or the call names no destination: then out->forward
 * holds the call without the tag when one was stripped, and the call goes
 * to SES as it is.
 * Every address of every destination is checked with addr.h. One SES would
 * refuse fails the plan with SES's reason, unless skip_invalid is set and
 * the call is a batch: then its destination is left out (one message, as
 * SES would refuse it whole), every address of it SES would refuse is listed
 * in out->invalid, in order, each with the destination's position in
 * out->invalid_pos, and out->ndest counts every destination of the call.
 * Errors: SESERR_INVALID_PARAMETER (more than max_units destinations, a
 * destination with no recipient or more than BULK_MAX_RECIPIENTS, an address
 * SES refuses, a v1 parameter under "Destinations." that is not
 * "Destinations.member.N.<field>" with N written without a leading zero),
 * SESERR_BAD_REQUEST (v2 entries of the wrong shape).
 * Returns 0, or -1 with e set. */
int bulk_plan(const struct sesreq *r, bool fanout_on, size_t max_units, bool skip_invalid,
              struct fanout_plan *out, struct seserr *e);

/* The recipients of a unit (text as bulk_plan wrote it, on api 1 or 2), or
 * -1 when it is not a unit. */
int64_t bulk_unit_cost(int api, const char *unit, size_t len);

/* A unit's recipients as a new JSON object {"to": [...], "cc": [...],
 * "bcc": [...]} for the batch views, or NULL when it is not a unit. */
json_t *bulk_unit_view(int api, const char *unit, size_t len);

/* Whether a unit's recipient a[0..n) stays in it (bulk_unit_filter). */
typedef bool (*bulk_keep_fn)(void *arg, const char *a, size_t n);

/* The unit (text as bulk_plan wrote it, on api 1 or 2) without the
 * recipients keep refuses, appended to out: v1 its parameters in their
 * order with each list's kept addresses numbered again from 1, v2 its
 * entry with those addresses taken out of its Destination's lists (an
 * emptied list is removed). Returns the recipients kept (0: none; out then
 * holds the unit without any), or -1 when it is not a unit (out as it was). */
int64_t bulk_unit_filter(int api, const char *unit, size_t len, bulk_keep_fn keep, void *arg,
                         struct buf *out);

/* The body of a bulk call of n units: pre is the template's text as
 * copybody keeps it (v1: the whole form; v2: the JSON object without its
 * closing brace). Appended to out. */
void bulk_body(int api, const char *pre, size_t pre_len, const char *const *units,
               const size_t *lens, size_t n, struct buf *out);

/* One destination's result in a bulk answer. */
struct bulk_result {
    char status[48];      /* as SES wrote it: "Success" (v1), "SUCCESS" (v2), ... */
    char message_id[256]; /* "" when none */
    char error[512];      /* "" when none */
};

/* Read SES's answer to a bulk call (v1 XML, v2 JSON) into out (at most max
 * entries, in order). v1 text has its entities and character references
 * decoded; text longer than its field is cut before a character it would
 * split. Returns the number of entries, or -1 when the body is not a bulk
 * answer. */
int bulk_answer_parse(int api, const char *body, size_t n, struct bulk_result *out, size_t max);

/* True when status is SES's success ("Success", "SUCCESS"). */
bool bulk_status_ok(const char *status);

/* What a worker does with a destination SES answered with status: sent,
 * retried (throttled, daily quota, transient), or dead (permanent). An
 * unknown status is retried (and ends as a dead letter after max_attempts). */
enum backoff_class bulk_status_class(const char *status);

/* The status SES uses on api for a destination it refused for a bad
 * address ("InvalidParameterValue", "INVALID_PARAMETER"). */
const char *bulk_status_invalid(int api);

/* The result part of an answer to a bulk call, one entry per destination in
 * order, as SES writes it: v1 the content of <SendBulkTemplatedEmailResult>
 * (<Status><member>...</member>...</Status>), v2 the whole JSON body.
 * Appended to out. */
void bulk_answer_result(int api, const struct bulk_result *entries, size_t n, struct buf *out);

/* The answer to a bulk call: one entry per destination, in order, written as
 * SES writes it (v1 XML with request_id, v2 JSON). Appended to out. */
void bulk_answer_render(int api, const struct bulk_result *entries, size_t n,
                        const char *request_id, struct buf *out);

#endif
