/* seserr: SES-shaped error responses (v1 XML, v2 JSON). */
#include "seserr.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define SESERR_XMLNS "http://ses.amazonaws.com/doc/2010-12-01/"

struct seserr_info {
    const char *name;    /* stable snake_case name for logs and metrics */
    const char *v1_code; /* Query (XML) wire code */
    int v1_status;       /* HTTP status on v1 */
    const char *v2_code; /* REST-JSON wire code (x-amzn-ErrorType) */
    int v2_status;       /* HTTP status on v2 */
    const char *message; /* default message */
};

static const char seserr_msg_bad_token[] = "The security token included in the request is invalid.";
static const char seserr_msg_bad_action[] =
    "The action or operation requested is invalid. Verify that the action is typed correctly.";

static const struct seserr_info seserr_table[SESERR_COUNT] = {
    [SESERR_NONE] = {"none", "", 200, "", 200, ""},
    [SESERR_MISSING_AUTH] = {"missing_auth", "MissingAuthenticationToken", 403,
                             "MissingAuthenticationTokenException", 403,
                             "The request must contain either a valid (registered) AWS access key "
                             "ID or X.509 certificate."},
    [SESERR_INCOMPLETE_SIGNATURE] = {"incomplete_signature", "IncompleteSignature", 400,
                                     "IncompleteSignatureException", 403,
                                     "The request signature does not conform to AWS standards."},
    [SESERR_UNKNOWN_KEY] = {"unknown_key", "InvalidClientTokenId", 403,
                            "UnrecognizedClientException", 403, seserr_msg_bad_token},
    [SESERR_BAD_SIGNATURE] = {"bad_signature", "SignatureDoesNotMatch", 403,
                              "InvalidSignatureException", 403,
                              "The request signature we calculated does not match the signature "
                              "you provided. Check your AWS Secret Access Key and signing method. "
                              "Consult the service documentation for details."},
    [SESERR_INVALID_TOKEN] = {"invalid_token", "InvalidClientTokenId", 403,
                              "UnrecognizedClientException", 403, seserr_msg_bad_token},
    [SESERR_ACCESS_DENIED] = {"access_denied", "AccessDenied", 403, "AccessDeniedException", 403,
                              "User is not authorized to perform this action."},
    [SESERR_TOO_LARGE] = {"too_large", "RequestEntityTooLarge", 413,
                          "RequestEntityTooLargeException", 413, "Request body is too large."},
    [SESERR_MALFORMED_QUERY] = {"malformed_query", "MalformedQueryString", 404,
                                "BadRequestException", 400,
                                "The query string contains a syntax error."},
    [SESERR_INVALID_QUERY_PARAMETER] = {"invalid_query_parameter", "InvalidQueryParameter", 400,
                                        "BadRequestException", 400,
                                        "The AWS query string is malformed or does not adhere to "
                                        "AWS standards."},
    [SESERR_INVALID_PARAMETER] = {"invalid_parameter", "InvalidParameterValue", 400,
                                  "BadRequestException", 400,
                                  "An invalid or out-of-range value was supplied for the input "
                                  "parameter."},
    [SESERR_MISSING_PARAMETER] = {"missing_parameter", "MissingParameter", 400,
                                  "BadRequestException", 400,
                                  "A required parameter for the specified action is not "
                                  "supplied."},
    [SESERR_MISSING_ACTION] = {"missing_action", "MissingAction", 400, "BadRequestException", 400,
                               "The request is missing an action or a required parameter."},
    [SESERR_INVALID_ACTION] = {"invalid_action", "InvalidAction", 400, "UnknownOperationException",
                               404, seserr_msg_bad_action},
    [SESERR_UNKNOWN_OPERATION] = {"unknown_operation", "InvalidAction", 400,
                                  "UnknownOperationException", 404, seserr_msg_bad_action},
    [SESERR_BAD_REQUEST] = {"bad_request", "InvalidParameterValue", 400, "BadRequestException", 400,
                            "The request body is not valid."},
    [SESERR_MESSAGE_REJECTED] = {"message_rejected", "MessageRejected", 400, "MessageRejected", 400,
                                 "Email address is not verified."},
    [SESERR_THROTTLING] = {"throttling", "Throttling", 400, "TooManyRequestsException", 429,
                           "Maximum sending rate exceeded."},
    [SESERR_UNAVAILABLE] = {"unavailable", "ServiceUnavailable", 503, "ServiceUnavailable", 503,
                            "Service is unavailable. Please try again later."},
    [SESERR_TIMEOUT] = {"timeout", "RequestTimeout", 504, "RequestTimeoutException", 504,
                        "The upstream did not answer in time. Please try again later."},
    [SESERR_INTERNAL] = {"internal", "InternalFailure", 500, "InternalServiceErrorException", 500,
                         "The request processing has failed because of an unknown error, "
                         "exception or failure."},
    [SESERR_NOT_FOUND] = {"not_found", "InvalidAction", 404, "UnknownOperationException", 404,
                          "The requested resource does not exist."},
    [SESERR_METHOD_NOT_ALLOWED] = {"method_not_allowed", "InvalidAction", 400,
                                   "UnknownOperationException", 404, "Method not allowed."},
    [SESERR_NO_SUCH_ENTITY] = {"no_such_entity", "NotFound", 404, "NotFoundException", 404,
                               "The resource you attempted to access does not exist."},
};

/* The table row of code; out-of-range codes read as SESERR_INTERNAL. */
static const struct seserr_info *seserr_info_of(enum seserr_code code)
{
    if ((unsigned)code >= SESERR_COUNT)
        code = SESERR_INTERNAL;
    return &seserr_table[code];
}

/* Set the code and format the message (empty when fmt is NULL). */
void seserr_set(struct seserr *e, enum seserr_code code, const char *fmt, ...)
{
    e->code = code;
    e->message[0] = '\0';
    if (fmt == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

/* The HTTP status of code on api. */
int seserr_status(enum seserr_code code, int api)
{
    const struct seserr_info *in = seserr_info_of(code);
    return api == 2 ? in->v2_status : in->v1_status;
}

/* The wire code of code on api. */
const char *seserr_wire_code(enum seserr_code code, int api)
{
    const struct seserr_info *in = seserr_info_of(code);
    return api == 2 ? in->v2_code : in->v1_code;
}

/* The default message of code. */
const char *seserr_default_message(enum seserr_code code)
{
    return seserr_info_of(code)->message;
}

/* The metrics name of code. */
const char *seserr_name(enum seserr_code code)
{
    return seserr_info_of(code)->name;
}

/* Decode the UTF-8 sequence at s[0..n): returns its length and sets *cp, or
 * returns 0 when the bytes there are not well-formed UTF-8. */
static size_t seserr_utf8_next(const unsigned char *s, size_t n, unsigned *cp)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        min = 0x80;
        c &= 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        min = 0x800;
        c &= 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        min = 0x10000;
        c &= 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

void seserr_xml_escape(struct buf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        unsigned cp;
        size_t k = seserr_utf8_next(p + i, n - i, &cp);
        if (k == 0 || (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0xfffe ||
            cp == 0xffff) {
            buf_adds(b, "\xef\xbf\xbd");
            i += k ? k : 1;
            continue;
        }
        switch (cp) {
        case '<':
            buf_adds(b, "&lt;");
            break;
        case '>':
            buf_adds(b, "&gt;");
            break;
        case '&':
            buf_adds(b, "&amp;");
            break;
        case '"':
            buf_adds(b, "&quot;");
            break;
        case '\'':
            buf_adds(b, "&apos;");
            break;
        default:
            buf_add(b, p + i, k);
        }
        i += k;
    }
}

/* Append s as the inside of a JSON string: quotes, backslashes and control
 * characters escaped, invalid UTF-8 as \ufffd. */
static void seserr_json_escape(struct buf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        unsigned cp;
        size_t k = seserr_utf8_next(p + i, n - i, &cp);
        if (k == 0) {
            buf_adds(b, "\\ufffd");
            i++;
            continue;
        }
        switch (cp) {
        case '"':
            buf_adds(b, "\\\"");
            break;
        case '\\':
            buf_adds(b, "\\\\");
            break;
        case '\b':
            buf_adds(b, "\\b");
            break;
        case '\f':
            buf_adds(b, "\\f");
            break;
        case '\n':
            buf_adds(b, "\\n");
            break;
        case '\r':
            buf_adds(b, "\\r");
            break;
        case '\t':
            buf_adds(b, "\\t");
            break;
        default:
            if (cp < 0x20)
                buf_printf(b, "\\u%04x", cp);
            else
                buf_add(b, p + i, k);
        }
        i += k;
    }
}

/* Render e as SES does on api; a non-error renders as an internal failure. */
int seserr_render(const struct seserr *e, int api, const char *request_id, struct buf *body,
                  const char **content_type, const char **error_type)
{
    enum seserr_code code = e->code;
    if (code == SESERR_NONE || (unsigned)code >= SESERR_COUNT)
        code = SESERR_INTERNAL;
    const struct seserr_info *in = seserr_info_of(code);
    const char *msg = e->message[0] != '\0' ? e->message : in->message;
    /* Bound the read of a message that lost its terminator. */
    char copy[sizeof e->message];
    if (msg == e->message) {
        memcpy(copy, e->message, sizeof copy);
        copy[sizeof copy - 1] = '\0';
        msg = copy;
    }

    if (api == 2) {
        buf_adds(body, "{\"message\":\"");
        seserr_json_escape(body, msg);
        buf_adds(body, "\"}");
        if (content_type != NULL)
            *content_type = "application/json";
        if (error_type != NULL)
            *error_type = in->v2_code;
        return in->v2_status;
    }
    buf_adds(body,
             "<?xml version=\"1.0\"?>\n<ErrorResponse xmlns=\"" SESERR_XMLNS "\"><Error><Type>");
    buf_adds(body, in->v1_status >= 500 ? "Receiver" : "Sender");
    buf_adds(body, "</Type><Code>");
    buf_adds(body, in->v1_code);
    buf_adds(body, "</Code><Message>");
    seserr_xml_escape(body, msg);
    buf_adds(body, "</Message></Error><RequestId>");
    seserr_xml_escape(body, request_id != NULL ? request_id : "");
    buf_adds(body, "</RequestId></ErrorResponse>\n");
    if (content_type != NULL)
        *content_type = "text/xml";
    if (error_type != NULL)
        *error_type = NULL;
    return in->v1_status;
}
