/* Unit tests for seserr: the error table and its XML / JSON rendering. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "check.h"
#include "seserr.h"

struct code_case {
    enum seserr_code code;
    const char *name;
    const char *v1_code;
    int v1_status;
    const char *v2_code;
    int v2_status;
    const char *message;
};

#define MSG_TOKEN "The security token included in the request is invalid."
#define MSG_ACTION                                                                                 \
    "The action or operation requested is invalid. Verify that the action is typed correctly."

static const struct code_case code_cases[] = {
    {SESERR_MISSING_AUTH, "missing_auth", "MissingAuthenticationToken", 403,
     "MissingAuthenticationTokenException", 403,
     "The request must contain either a valid (registered) AWS access key ID or X.509 "
     "certificate."},
    {SESERR_INCOMPLETE_SIGNATURE, "incomplete_signature", "IncompleteSignature", 400,
     "IncompleteSignatureException", 403,
     "The request signature does not conform to AWS standards."},
    {SESERR_UNKNOWN_KEY, "unknown_key", "InvalidClientTokenId", 403, "UnrecognizedClientException",
     403, MSG_TOKEN},
    {SESERR_BAD_SIGNATURE, "bad_signature", "SignatureDoesNotMatch", 403,
     "InvalidSignatureException", 403,
     "The request signature we calculated does not match the signature you provided. Check your "
     "AWS Secret Access Key and signing method. Consult the service documentation for details."},
    {SESERR_INVALID_TOKEN, "invalid_token", "InvalidClientTokenId", 403,
     "UnrecognizedClientException", 403, MSG_TOKEN},
    {SESERR_ACCESS_DENIED, "access_denied", "AccessDenied", 403, "AccessDeniedException", 403,
     "User is not authorized to perform this action."},
    {SESERR_TOO_LARGE, "too_large", "RequestEntityTooLarge", 413, "RequestEntityTooLargeException",
     413, "Request body is too large."},
    {SESERR_MALFORMED_QUERY, "malformed_query", "MalformedQueryString", 404, "BadRequestException",
     400, "The query string contains a syntax error."},
    {SESERR_INVALID_QUERY_PARAMETER, "invalid_query_parameter", "InvalidQueryParameter", 400,
     "BadRequestException", 400,
     "The AWS query string is malformed or does not adhere to AWS standards."},
    {SESERR_INVALID_PARAMETER, "invalid_parameter", "InvalidParameterValue", 400,
     "BadRequestException", 400,
     "An invalid or out-of-range value was supplied for the input parameter."},
    {SESERR_MISSING_PARAMETER, "missing_parameter", "MissingParameter", 400, "BadRequestException",
     400, "A required parameter for the specified action is not supplied."},
    {SESERR_MISSING_ACTION, "missing_action", "MissingAction", 400, "BadRequestException", 400,
     "The request is missing an action or a required parameter."},
    {SESERR_INVALID_ACTION, "invalid_action", "InvalidAction", 400, "UnknownOperationException",
     404, MSG_ACTION},
    {SESERR_UNKNOWN_OPERATION, "unknown_operation", "InvalidAction", 400,
     "UnknownOperationException", 404, MSG_ACTION},
    {SESERR_BAD_REQUEST, "bad_request", "InvalidParameterValue", 400, "BadRequestException", 400,
     "The request body is not valid."},
    {SESERR_MESSAGE_REJECTED, "message_rejected", "MessageRejected", 400, "MessageRejected", 400,
     "Email address is not verified."},
    {SESERR_THROTTLING, "throttling", "Throttling", 400, "TooManyRequestsException", 429,
     "Maximum sending rate exceeded."},
    {SESERR_UNAVAILABLE, "unavailable", "ServiceUnavailable", 503, "ServiceUnavailable", 503,
     "Service is unavailable. Please try again later."},
    {SESERR_TIMEOUT, "timeout", "RequestTimeout", 504, "RequestTimeoutException", 504,
     "The upstream did not answer in time. Please try again later."},
    {SESERR_INTERNAL, "internal", "InternalFailure", 500, "InternalServiceErrorException", 500,
     "The request processing has failed because of an unknown error, exception or failure."},
    {SESERR_NOT_FOUND, "not_found", "InvalidAction", 404, "UnknownOperationException", 404,
     "The requested resource does not exist."},
    {SESERR_METHOD_NOT_ALLOWED, "method_not_allowed", "InvalidAction", 400,
     "UnknownOperationException", 404, "Method not allowed."},
    {SESERR_NO_SUCH_ENTITY, "no_such_entity", "NotFound", 404, "NotFoundException", 404,
     "The resource you attempted to access does not exist."},
};

#define NCASES (sizeof code_cases / sizeof code_cases[0])

/* Decode the five predefined XML entities of s[0..n) into out; false on a
 * raw '<', '>' or an unknown entity (which well-formed text cannot hold). */
static bool xml_unescape(const char *s, size_t n, struct buf *out)
{
    static const struct {
        const char *ent;
        char c;
    } ents[] = {{"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&quot;", '"'}, {"&apos;", '\''}};
    for (size_t i = 0; i < n;) {
        if (s[i] == '<' || s[i] == '>')
            return false;
        if (s[i] != '&') {
            buf_addc(out, s[i++]);
            continue;
        }
        bool ok = false;
        for (size_t k = 0; k < sizeof ents / sizeof ents[0] && !ok; k++) {
            size_t el = strlen(ents[k].ent);
            if (n - i >= el && memcmp(s + i, ents[k].ent, el) == 0) {
                buf_addc(out, ents[k].c);
                i += el;
                ok = true;
            }
        }
        if (!ok)
            return false;
    }
    return true;
}

/* A minimal well-formedness check of a v1 error document: the declaration,
 * then properly nested elements with entity-clean text. The decoded text of
 * the element named want (e.g. "Message") goes to text. */
static bool xml_check(const char *doc, const char *want, struct buf *text)
{
    const char *decl = "<?xml version=\"1.0\"?>";
    if (strncmp(doc, decl, strlen(decl)) != 0)
        return false;
    const char *p = doc + strlen(decl);
    char stack[8][32];
    int depth = 0;
    bool seen_root = false;
    while (*p != '\0') {
        if (*p != '<') {
            const char *lt = strchr(p, '<');
            size_t n = lt ? (size_t)(lt - p) : strlen(p);
            struct buf t = BUF_INIT;
            bool ok = xml_unescape(p, n, &t);
            if (ok && depth > 0 && strcmp(stack[depth - 1], want) == 0)
                buf_add(text, t.data ? t.data : "", t.len);
            bool blank = true;
            for (size_t i = 0; i < t.len; i++)
                if (t.data[i] != '\n')
                    blank = false;
            buf_free(&t);
            if (!ok || (depth == 0 && !blank))
                return false;
            p += n;
            continue;
        }
        const char *gt = strchr(p, '>');
        if (gt == NULL)
            return false;
        bool close = p[1] == '/';
        const char *name = p + (close ? 2 : 1);
        size_t nlen = strcspn(name, " >");
        if (nlen == 0 || nlen >= sizeof stack[0])
            return false;
        if (close) {
            if (depth == 0 || strlen(stack[depth - 1]) != nlen ||
                strncmp(stack[depth - 1], name, nlen) != 0)
                return false;
            depth--;
        } else {
            if (depth == 0 && seen_root)
                return false;
            if (depth == 8)
                return false;
            memcpy(stack[depth], name, nlen);
            stack[depth][nlen] = '\0';
            depth++;
            seen_root = true;
        }
        p = gt + 1;
    }
    return depth == 0 && seen_root;
}

/* The v1 document expected for type, code, escaped message and request id. */
static void expected_xml(struct buf *b, const char *type, const char *code, const char *msg,
                         const char *rid)
{
    buf_printf(b,
               "<?xml version=\"1.0\"?>\n<ErrorResponse "
               "xmlns=\"http://ses.amazonaws.com/doc/2010-12-01/\"><Error><Type>%s</Type><Code>%s</"
               "Code><Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>\n",
               type, code, msg, rid);
}

/* Every code: table values, and both renderings with the default message. */
static void test_codes(void)
{
    CHECK(NCASES == SESERR_COUNT - 1, "every code has a test case");
    for (size_t i = 0; i < NCASES; i++) {
        const struct code_case *c = &code_cases[i];
        CHECK_STR(seserr_name(c->code), c->name, "name");
        CHECK_STR(seserr_wire_code(c->code, 1), c->v1_code, c->name);
        CHECK_STR(seserr_wire_code(c->code, 2), c->v2_code, c->name);
        CHECK(seserr_status(c->code, 1) == c->v1_status, "%s v1 status %d", c->name,
              seserr_status(c->code, 1));
        CHECK(seserr_status(c->code, 2) == c->v2_status, "%s v2 status %d", c->name,
              seserr_status(c->code, 2));
        CHECK_STR(seserr_default_message(c->code), c->message, c->name);

        struct seserr e;
        seserr_set(&e, c->code, NULL);
        CHECK(e.code == c->code && e.message[0] == '\0', "set without message");

        struct buf body = BUF_INIT, want = BUF_INIT, text = BUF_INIT;
        const char *ctype = NULL, *etype = "unset";
        int st = seserr_render(&e, 1, "rid-1", &body, &ctype, &etype);
        CHECK(st == c->v1_status, "%s render v1 status", c->name);
        CHECK_STR(ctype, "text/xml", c->name);
        CHECK(etype == NULL, "%s: no error type on v1", c->name);
        expected_xml(&want, c->v1_status >= 500 ? "Receiver" : "Sender", c->v1_code, c->message,
                     "rid-1");
        CHECK_STR(buf_cstr(&body), buf_cstr(&want), c->name);
        CHECK(xml_check(buf_cstr(&body), "Message", &text), "%s: well-formed", c->name);
        CHECK_STR(buf_cstr(&text), c->message, c->name);
        buf_free(&body);
        buf_free(&want);
        buf_free(&text);

        st = seserr_render(&e, 2, "rid-1", &body, &ctype, &etype);
        CHECK(st == c->v2_status, "%s render v2 status", c->name);
        CHECK_STR(ctype, "application/json", c->name);
        CHECK(etype != NULL && strcmp(etype, c->v2_code) == 0, "%s: error type", c->name);
        buf_printf(&want, "{\"message\":\"%s\"}", c->message);
        CHECK_STR(buf_cstr(&body), buf_cstr(&want), c->name);
        buf_free(&body);
        buf_free(&want);
    }
}

/* Names are distinct snake_case. */
static void test_names(void)
{
    for (int a = 0; a < SESERR_COUNT; a++) {
        const char *n = seserr_name((enum seserr_code)a);
        CHECK(n[0] != '\0' && strspn(n, "abcdefghijklmnopqrstuvwxyz_") == strlen(n),
              "snake_case: %s", n);
        for (int b = a + 1; b < SESERR_COUNT; b++)
            CHECK(strcmp(n, seserr_name((enum seserr_code)b)) != 0, "distinct: %s", n);
    }
}

/* The real Throttling error, exactly. */
static void test_exact(void)
{
    struct seserr e;
    seserr_set(&e, SESERR_THROTTLING, NULL);
    struct buf b = BUF_INIT;
    const char *ct, *et;
    CHECK(seserr_render(&e, 1, "8f23e6e6-b4f2-4572-b426-343b370cb32c", &b, &ct, &et) == 400,
          "Throttling is 400");
    CHECK_STR(buf_cstr(&b),
              "<?xml version=\"1.0\"?>\n<ErrorResponse "
              "xmlns=\"http://ses.amazonaws.com/doc/2010-12-01/\"><Error><Type>Sender</"
              "Type><Code>Throttling</Code><Message>Maximum sending rate exceeded.</Message></"
              "Error><RequestId>8f23e6e6-b4f2-4572-b426-343b370cb32c</RequestId></"
              "ErrorResponse>\n",
              "throttling XML");
    buf_free(&b);
    CHECK(seserr_render(&e, 2, "x", &b, &ct, &et) == 429, "TooManyRequestsException is 429");
    CHECK_STR(buf_cstr(&b), "{\"message\":\"Maximum sending rate exceeded.\"}", "throttling JSON");
    CHECK_STR(et, "TooManyRequestsException", "error type");
    buf_free(&b);

    seserr_set(&e, SESERR_INTERNAL, NULL);
    CHECK(seserr_render(&e, 1, "r", &b, &ct, &et) == 500, "internal 500");
    CHECK(strstr(buf_cstr(&b), "<Type>Receiver</Type><Code>InternalFailure</Code>") != NULL,
          "5xx is Receiver");
    buf_free(&b);

    seserr_set(&e, SESERR_TIMEOUT, NULL);
    CHECK(seserr_render(&e, 1, "r", &b, &ct, &et) == 504, "timeout 504");
    CHECK(strstr(buf_cstr(&b), "<Type>Receiver</Type><Code>RequestTimeout</Code>") != NULL,
          "timeout is Receiver");
    buf_free(&b);

    seserr_set(&e, SESERR_TOO_LARGE, NULL);
    CHECK(seserr_render(&e, 1, "r", &b, &ct, &et) == 413, "too large 413");
    CHECK(strstr(buf_cstr(&b), "<Type>Sender</Type>") != NULL, "413 is Sender");
    buf_free(&b);
}

struct escape_case {
    const char *msg;
    const char *xml;  /* escaped message in the XML document */
    const char *json; /* escaped message in the JSON body */
};

static const struct escape_case escape_cases[] = {
    {"plain", "plain", "plain"},
    {"<a href=\"x\">&'</a>", "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;",
     "<a href=\\\"x\\\">&'</a>"},
    {"&amp;", "&amp;amp;", "&amp;"},
    {"back\\slash", "back\\slash", "back\\\\slash"},
    {"tab\tnl\ncr\r", "tab\tnl\ncr\r", "tab\\tnl\\ncr\\r"},
    {"bell\x07 esc\x1b bs\b ff\f", "bell\xef\xbf\xbd esc\xef\xbf\xbd bs\xef\xbf\xbd ff\xef\xbf\xbd",
     "bell\\u0007 esc\\u001b bs\\b ff\\f"},
    {"del\x7f", "del\x7f", "del\x7f"},
    {"\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80", "\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80",
     "\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80"},
    {"bad\xff", "bad\xef\xbf\xbd", "bad\\ufffd"},
    {"trunc\xc3", "trunc\xef\xbf\xbd", "trunc\\ufffd"},
    {"overlong\xc0\xaf", "overlong\xef\xbf\xbd\xef\xbf\xbd", "overlong\\ufffd\\ufffd"},
    {"surrogate\xed\xa0\x80", "surrogate\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
     "surrogate\\ufffd\\ufffd\\ufffd"},
    {"nonchar\xef\xbf\xbe", "nonchar\xef\xbf\xbd", "nonchar\xef\xbf\xbe"},
    {"]]>", "]]&gt;", "]]>"},
};

/* Messages are escaped for XML and JSON; both documents parse back to the
 * message (modulo the replacement of what cannot be carried). */
static void test_escape(void)
{
    for (size_t i = 0; i < sizeof escape_cases / sizeof escape_cases[0]; i++) {
        const struct escape_case *c = &escape_cases[i];
        struct seserr e;
        seserr_set(&e, SESERR_INVALID_PARAMETER, "%s", c->msg);
        struct buf b = BUF_INIT, want = BUF_INIT, text = BUF_INIT;
        const char *ct, *et;
        seserr_render(&e, 1, "req-<&>", &b, &ct, &et);
        expected_xml(&want, "Sender", "InvalidParameterValue", c->xml, "req-&lt;&amp;&gt;");
        CHECK(strcmp(buf_cstr(&b), buf_cstr(&want)) == 0, "xml %zu: %s", i, buf_cstr(&b));
        CHECK(xml_check(buf_cstr(&b), "Message", &text), "xml %zu well-formed", i);
        buf_free(&b);
        buf_free(&want);
        buf_free(&text);

        seserr_render(&e, 2, "r", &b, &ct, &et);
        buf_printf(&want, "{\"message\":\"%s\"}", c->json);
        CHECK(strcmp(buf_cstr(&b), buf_cstr(&want)) == 0, "json %zu: %s", i, buf_cstr(&b));
        json_error_t jerr;
        json_t *j = json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, &jerr);
        CHECK(j != NULL, "json %zu parses: %s", i, jerr.text);
        const char *m = json_string_value(json_object_get(j, "message"));
        CHECK(m != NULL && json_object_size(j) == 1, "json %zu has only a message", i);
        if (m != NULL && strchr(c->json, '\\') == NULL)
            CHECK_STR(m, c->msg, "json round trip");
        json_decref(j);
        buf_free(&b);
        buf_free(&want);
    }

    /* Control characters round-trip through JSON exactly. */
    struct seserr e;
    seserr_set(&e, SESERR_BAD_REQUEST, "q\"b\\c\x01\n");
    struct buf b = BUF_INIT;
    const char *ct, *et;
    seserr_render(&e, 2, "r", &b, &ct, &et);
    json_t *j = json_loadb(b.data, b.len, 0, NULL);
    CHECK(j != NULL && strcmp(json_string_value(json_object_get(j, "message")), e.message) == 0,
          "JSON round trip of quotes and controls");
    json_decref(j);
    buf_free(&b);

    /* The request id is escaped as well; NULL gives an empty element. */
    struct buf text = BUF_INIT;
    seserr_render(&e, 1, NULL, &b, &ct, &et);
    CHECK(strstr(buf_cstr(&b), "<RequestId></RequestId>") != NULL, "NULL request id");
    CHECK(xml_check(buf_cstr(&b), "RequestId", &text), "well-formed with empty id");
    buf_free(&b);
    buf_free(&text);
}

/* seserr_set formats, truncates, and the default message fills in. */
static void test_set(void)
{
    struct seserr e;
    seserr_set(&e, SESERR_INVALID_ACTION, "Unrecognized action: %s (%d)", "Foo", 7);
    CHECK(e.code == SESERR_INVALID_ACTION, "code");
    CHECK_STR(e.message, "Unrecognized action: Foo (7)", "formatted");

    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    seserr_set(&e, SESERR_BAD_REQUEST, "%s", big);
    CHECK(strlen(e.message) == sizeof e.message - 1, "truncated to the buffer");

    struct buf b = BUF_INIT;
    const char *ct, *et;
    seserr_set(&e, SESERR_ACCESS_DENIED, "%s", "");
    seserr_render(&e, 2, "r", &b, &ct, &et);
    CHECK_STR(buf_cstr(&b), "{\"message\":\"User is not authorized to perform this action.\"}",
              "empty message uses the default");
    buf_free(&b);

    /* Rendering a non-error (or an unknown code) is an internal failure. */
    seserr_set(&e, SESERR_NONE, NULL);
    CHECK(seserr_render(&e, 1, "r", &b, &ct, &et) == 500, "NONE renders as 500");
    CHECK(strstr(buf_cstr(&b), "<Code>InternalFailure</Code>") != NULL, "NONE is InternalFailure");
    buf_free(&b);
    e.code = (enum seserr_code)999;
    CHECK(seserr_render(&e, 2, "r", &b, &ct, &et) == 500, "unknown code renders as 500");
    CHECK_STR(et, "InternalServiceErrorException", "unknown code type");
    buf_free(&b);
    CHECK(seserr_status((enum seserr_code)999, 1) == 500, "unknown code status");
    CHECK_STR(seserr_name((enum seserr_code) - 1), "internal", "negative code name");
    CHECK(seserr_status(SESERR_NONE, 1) == 200, "NONE status");
    CHECK_STR(seserr_name(SESERR_NONE), "none", "NONE name");

    /* A message without its terminator is bounded by the buffer. */
    memset(e.message, 'y', sizeof e.message);
    e.code = SESERR_BAD_REQUEST;
    seserr_render(&e, 2, "r", &b, &ct, &et);
    CHECK(b.len == strlen("{\"message\":\"\"}") + sizeof e.message - 1, "unterminated message");
    buf_free(&b);

    /* Rendering appends. */
    buf_adds(&b, "prefix");
    seserr_set(&e, SESERR_THROTTLING, NULL);
    seserr_render(&e, 2, "r", &b, &ct, &et);
    CHECK(strncmp(buf_cstr(&b), "prefix{\"message\"", 16) == 0, "appends");
    buf_free(&b);
}

/* Run every seserr test. */
int main(void)
{
    test_codes();
    test_names();
    test_exact();
    test_escape();
    test_set();
    return check_done("test_seserr");
}
