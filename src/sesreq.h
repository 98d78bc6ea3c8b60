/* sesreq: the SES request model (pure).
 *
 * Recognizes which API a request speaks (v1 Query on any path not under
 * /v2/email/, v2 REST-JSON under it), names its action (v1 Action= value, v2
 * operation from method and path), checks the v1 Version, and pulls out what
 * the client policy needs: the sender addresses of send actions (Source,
 * FromEmailAddress, and the From header of raw messages). It keeps the parsed
 * parameters (v1 form, v2 JSON) for the send path.
 *
 * An action sesgate does not know (a v1 Action outside its table, matched
 * case-sensitively, or a v2 method + path under /v2/email that matches no
 * route) is not an error: it parses with action NULL and kind SESREQ_OTHER,
 * and is forwarded as is, so that new SES actions work without a release.
 * Only the client policy ("*" in its actions) decides whether it may go.
 */
#ifndef SESGATE_SESREQ_H
#define SESGATE_SESREQ_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "form.h"
#include "seserr.h"

#define SESREQ_V1_VERSION "2010-12-01"

enum sesreq_api { SESREQ_V1 = 1, SESREQ_V2 = 2 };

enum sesreq_kind {
    SESREQ_OTHER = 0,  /* passed through (unknown actions too) */
    SESREQ_SEND,       /* fan-out candidate: v1 SendEmail, SendRawEmail, SendTemplatedEmail;
                          v2 SendEmail (Simple, Template or Raw) */
    SESREQ_SEND_OTHER, /* other sends: SendBulkTemplatedEmail, SendBounce,
                          SendCustomVerificationEmail, v2 SendBulkEmail and
                          SendCustomVerificationEmail */
};

/* Which API a path speaks. For v2, *v2_off is the offset of "/v2/email" in
 * the path (non-zero when the client uses a path-prefixed endpoint); the
 * upstream path is path + *v2_off. */
enum sesreq_api sesreq_api_of(const char *path, size_t len, size_t *v2_off);

struct sesreq {
    enum sesreq_api api;
    const char *action; /* static name ("SendEmail", "GetAccount"...), or NULL for an
                           action sesgate does not know (forwarded as is) */
    enum sesreq_kind kind;
    bool raw;    /* the send carries a raw MIME message */
    char **from; /* sender addr-specs to authorize; owned */
    size_t nfrom;
    struct form form; /* v1 parameters (empty for v2) */
    json_t *json;     /* v2 request body when parsed (sends), else NULL; owned */
    /* v2 raw SendEmail read with sesreq_json_borrow_raw: Content.Raw.Data
     * within the body parsed (which must outlive the use of it; the JSON
     * holds SESREQ_DATA_MARK in its place); else NULL. */
    const char *raw_data;
    size_t raw_len;
};

/* What stands for a v2 message borrowed from the text it was read from, and
 * how jansson writes it. */
#define SESREQ_DATA_MARK      "\x01sesgate\x02"
#define SESREQ_DATA_MARK_JSON "\\u0001sesgate\\u0002"

/* Parse the JSON text t[0..n) (json_loadb's flags) without copying its
 * Content.Raw.Data when t writes it "Raw" : { "Data" : "<base64>" (any JSON
 * whitespace between) once only, with no escape in the string, and
 * SESREQ_DATA_MARK_JSON appears nowhere in t (as every SDK and sesgate
 * itself write a raw send): returns the object with SESREQ_DATA_MARK in its
 * place and points *data, *len at the string within t. NULL when t is not in
 * that form, or not JSON (parse it whole then). */
json_t *sesreq_json_borrow_raw(const char *t, size_t n, size_t flags, const char **data,
                               size_t *len);

/* The base64 raw message of a raw send (v1 RawMessage.Data, v2
 * Content.Raw.Data, borrowed or in the JSON), or NULL. */
const char *sesreq_raw_data(const struct sesreq *r, size_t *len);

/* Parse v1 parameters (the form body of a POST, or the query of a GET).
 * Fills out (zeroed by the caller). Version may be left out, as SES serves
 * such a request as 2010-12-01; when present it is checked for every Action,
 * known or not. An Action that is not one of the 71 known names (matched
 * case-sensitively) is not an error: out->action stays NULL, out->kind is
 * SESREQ_OTHER, no sender is extracted and the request is forwarded as is.
 * Errors: SESERR_MALFORMED_QUERY, SESERR_INVALID_QUERY_PARAMETER,
 * SESERR_INVALID_PARAMETER, SESERR_MISSING_ACTION (Action missing or empty),
 * SESERR_INVALID_ACTION (Version given and not 2010-12-01; the message quotes
 * the Action), SESERR_MISSING_PARAMETER, SESERR_MESSAGE_REJECTED (a raw
 * message that names no sender at all). Returns 0 or -1 with e set; out must
 * be cleaned up either way. At most SESREQ_MAX_PARAMS parameters. */
int sesreq_parse_v1(const char *params, size_t len, struct sesreq *out, struct seserr *e);

/* Parse the v1 parameters of a request as SES reads them: the query string of
 * a GET or DELETE (or of a POST with an empty body), or the form body of a
 * POST together with any parameters of its query string (a name given in
 * both is a duplicate). query and body may be NULL when their length is 0.
 * Media type and charset of the body are not looked at: the form is read as
 * UTF-8. Otherwise as sesreq_parse_v1_max. */
int sesreq_parse_v1_request(const char *method, const char *query, size_t query_len,
                            const char *body, size_t body_len, size_t max_params,
                            struct sesreq *out, struct seserr *e);

/* Parameters a v1 request may carry by default (sesreq_parse_v1). */
#define SESREQ_MAX_PARAMS 20000

/* sesreq_parse_v1 with at most max_params parameters (a gateway that
 * accepts max_recipients To recipients allows that many more). */
int sesreq_parse_v1_max(const char *params, size_t len, size_t max_params, struct sesreq *out,
                        struct seserr *e);

/* Parse a v2 request: method, path starting at "/v2/email" (raw, still
 * percent-encoded; a query after '?' is ignored) and body. The JSON body is
 * parsed for the send operations only (others pass through untouched). A
 * method + path under /v2/email that matches no route is not an error:
 * out->action stays NULL, out->kind is SESREQ_OTHER, the body is not parsed
 * and the request is forwarded as is. Errors: SESERR_UNKNOWN_OPERATION (a
 * NULL or empty method, or a path not under /v2/email), SESERR_BAD_REQUEST
 * (invalid JSON, wrong types, nesting deeper than 64, undecodable raw message
 * or address), SESERR_MESSAGE_REJECTED (a raw message that names no sender at
 * all). Returns 0 or -1 with e set; out must be cleaned up either way. */
int sesreq_parse_v2(const char *method, const char *path, size_t path_len, const char *body,
                    size_t body_len, struct sesreq *out, struct seserr *e);

/* Release the parsed parameters (v1 form, v2 JSON) once nothing needs them
 * (a send planned as a batch); api, action, kind, raw and the senders stay. */
void sesreq_drop_params(struct sesreq *r);

/* Release what out owns; it is zeroed afterwards. */
void sesreq_cleanup(struct sesreq *r);

/* The recipients a send other than a fan-out candidate (SESREQ_SEND_OTHER)
 * counts for against the rate and the daily quota: every To, Cc and Bcc
 * address of every destination of SendBulkTemplatedEmail (v1
 * Destinations.member.N.Destination.*Addresses.member.M) and SendBulkEmail
 * (v2 BulkEmailEntries[].Destination); 1 for SendBounce (one bounce message
 * to the original sender) and SendCustomVerificationEmail; at least 1. */
size_t sesreq_other_recipients(const struct sesreq *r);

/* True when action (a v1 action or v2 operation name, compared ignoring
 * case) is allowed by the list; an entry "*" allows everything. A NULL
 * action (one sesgate does not know) is allowed only when the list holds
 * "*". */
bool sesreq_action_allowed(char *const *allowed, size_t n, const char *action);

/* True when the addr-spec addr is allowed: an entry equal to it (ignoring
 * case), "*@domain" with the same domain (ignoring case), or "*". */
bool sesreq_sender_allowed(char *const *allowed, size_t n, const char *addr);

#endif
