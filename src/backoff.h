/* backoff: what a queued send does with an upstream outcome, and when it
 * tries again. Pure module: no I/O, no clock; time and randomness are
 * parameters. docs/ERRORS.md lists every code and the reasoning.
 */
#ifndef SESGATE_BACKOFF_H
#define SESGATE_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

#define BACKOFF_BASE_MS 1000   /* ms: ceiling of the first retry's delay */
#define BACKOFF_CAP_MS  300000 /* ms: ceiling of any delay (AWS: wait up to 10 min) */

/* What the worker does with one upstream outcome of a queued send. */
enum backoff_class {
    BACKOFF_OK = 0,    /* sent: record the MessageId */
    BACKOFF_RETRY,     /* transient or operator-fixable: retry later with backoff */
    BACKOFF_THROTTLED, /* rate exceeded: retry later, and back off the shared rate */
    BACKOFF_QUOTA,     /* daily quota exceeded: hold the queue, nothing fails */
    BACKOFF_PERMANENT, /* rejected: dead-letter with the SES code and message */
    BACKOFF_CLASS_COUNT
};

/* Classify an upstream answer to a send on api (1: Query, 2: REST-JSON).
 * http_status: the response status (ignored when transport_error is set).
 * error_code: the SES wire code, v1 <Code> or v2 x-amzn-ErrorType / __type;
 * a ":namespace" suffix and a "prefix#" are stripped, surrounding blanks
 * ignored. NULL or "" when the answer carried none.
 * message: the SES message (v1 <Message>, v2 "message"), or NULL.
 * transport_error: non-zero for a connection failure, a timeout or a
 * truncated body (no usable HTTP status). Nothing is retained. */
enum backoff_class backoff_classify(int api, long http_status, const char *error_code,
                                    const char *message, int transport_error);

/* True when an upstream error says the request's signing time lay outside
 * the upstream's window: RequestExpired, or SignatureDoesNotMatch /
 * InvalidSignatureException with "Signature expired" or "Signature not yet
 * current" (case-insensitive). The signer's clock is off: the request was
 * not acted on, and the same request signed on a right clock would go. */
bool backoff_clock_skew(const char *error_code, const char *message);

/* A short stable name of cls for logs and metrics ("retry"), or "unknown". */
const char *backoff_class_name(enum backoff_class cls);

/* The ceiling of the delay before retry number attempt (0 is the first
 * retry): min(cap_ms, base_ms * 2^attempt), without overflow for any
 * attempt. A negative attempt counts as 0, a negative base or cap as 0. */
int64_t backoff_ceiling_ms(int attempt, int64_t base_ms, int64_t cap_ms);

/* The delay in ms before retry number attempt, "full jitter":
 * rnd % (backoff_ceiling_ms(attempt, base_ms, cap_ms) + 1), so it lies in
 * [0, ceiling]. rnd is a uniformly random 64-bit value from the caller. */
int64_t backoff_delay_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint64_t rnd);

/* True when retry number attempt (0 is the first retry, so attempt + 1 tries
 * have been made) must not happen because max_attempts tries is the limit.
 * A max_attempts below 1 counts as 1 (never retry). */
bool backoff_give_up(int attempt, int max_attempts);

#endif
