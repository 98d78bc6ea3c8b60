/* seserr: the SES errors sesgate produces itself, rendered exactly as SES
 * renders them: v1 (Query) XML ErrorResponse with Type, Code, Message and
 * RequestId, Content-Type text/xml; v2 (REST-JSON) {"message": ...} with the
 * x-amzn-ErrorType header, Content-Type application/json. Pure module.
 */
#ifndef SESGATE_SESERR_H
#define SESGATE_SESERR_H

#include <stddef.h>

#include "buf.h"

enum seserr_code {
    SESERR_NONE = 0,
    SESERR_MISSING_AUTH,            /* no Authorization header nor presigned query */
    SESERR_INCOMPLETE_SIGNATURE,    /* Authorization malformed */
    SESERR_UNKNOWN_KEY,             /* access key id not in the client table */
    SESERR_BAD_SIGNATURE,           /* signature does not match (also: skew, bad scope) */
    SESERR_INVALID_TOKEN,           /* unexpected or invalid security token, legacy schemes */
    SESERR_ACCESS_DENIED,           /* the client's policy refuses the action or sender */
    SESERR_TOO_LARGE,               /* body over max_body */
    SESERR_MALFORMED_QUERY,         /* broken percent-encoding */
    SESERR_INVALID_QUERY_PARAMETER, /* repeated parameter, too many parameters */
    SESERR_INVALID_PARAMETER,       /* a value is invalid (bad UTF-8, bad base64...) */
    SESERR_MISSING_PARAMETER,       /* a required parameter is absent */
    SESERR_MISSING_ACTION,          /* v1 without Action */
    SESERR_INVALID_ACTION,          /* v1 missing or wrong Version */
    SESERR_UNKNOWN_OPERATION,       /* v2 path/method matches no operation */
    SESERR_BAD_REQUEST,             /* v2 body is not valid JSON / wrong shape */
    SESERR_MESSAGE_REJECTED,        /* content problem */
    SESERR_THROTTLING,              /* back-pressure: retryable by every SDK */
    SESERR_UNAVAILABLE,             /* upstream unreachable or failed: 503, retryable */
    SESERR_TIMEOUT,                 /* upstream timed out: 504, retryable */
    SESERR_INTERNAL,                /* sesgate's own fault: 500, retryable */
    SESERR_NOT_FOUND,               /* the path is neither v1 nor v2 */
    SESERR_METHOD_NOT_ALLOWED,      /* v1 with a method other than GET/POST */
    SESERR_NO_SUCH_ENTITY,          /* a named resource does not exist (v2 NotFoundException) */
    SESERR_COUNT
};

/* A produced error: code plus message (NUL-terminated, may be empty to use
 * the default message of the code). */
struct seserr {
    enum seserr_code code;
    char message[512];
};

/* Set e to code with a printf-style message (NULL fmt: default message). */
void seserr_set(struct seserr *e, enum seserr_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The HTTP status of code on API v1 or v2 (api is 1 or 2). */
int seserr_status(enum seserr_code code, int api);

/* Append s as XML character data: markup characters as entities, and what
 * XML 1.0 cannot carry (invalid UTF-8, control characters but tab, LF and
 * CR, U+FFFE/U+FFFF) as U+FFFD. */
void seserr_xml_escape(struct buf *b, const char *s);
/* The wire code ("SignatureDoesNotMatch", "InvalidSignatureException"...). */
const char *seserr_wire_code(enum seserr_code code, int api);
/* The default message of code. */
const char *seserr_default_message(enum seserr_code code);
/* A short stable name for logs and metrics ("bad_signature"). */
const char *seserr_name(enum seserr_code code);

/* Render e for api (1: XML, 2: JSON) with request_id into body; sets the
 * content type and, for v2, the x-amzn-ErrorType value (else NULL). Returns
 * the HTTP status. Messages are escaped for XML/JSON. */
int seserr_render(const struct seserr *e, int api, const char *request_id, struct buf *body,
                  const char **content_type, const char **error_type);

#endif
