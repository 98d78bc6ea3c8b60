/* Unit tests for sesreq: API detection, v1 and v2 request parsing, the v2
 * route table, sender extraction and client policy matching. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "sesreq.h"

#define MAXF 4

/* A v1 SendRawEmail body carrying mime; source is added when not NULL. */
static void raw_body(struct buf *out, const char *source, const char *mime)
{
    struct buf enc = BUF_INIT;
    check_b64(mime, strlen(mime), &enc);
    buf_adds(out, "Action=SendRawEmail&Version=2010-12-01");
    if (source != NULL) {
        buf_adds(out, "&Source=");
        form_encode(source, strlen(source), out);
    }
    buf_adds(out, "&RawMessage.Data=");
    form_encode(enc.data, enc.len, out);
    buf_free(&enc);
}

/* A v2 SendEmail JSON body with Raw content; from is added when not NULL. */
static void raw_json(struct buf *out, const char *from, const char *mime)
{
    buf_adds(out, "{\"Content\":{\"Raw\":{\"Data\":\"");
    check_b64(mime, strlen(mime), out);
    buf_adds(out, "\"}}");
    if (from != NULL)
        buf_printf(out, ",\"FromEmailAddress\":\"%s\"", from);
    buf_adds(out, "}");
}

/* Compare r->from with the NULL-terminated list want. */
static void check_from(const struct sesreq *r, const char *const *want, const char *what)
{
    size_t n = 0;
    while (n < MAXF && want[n] != NULL)
        n++;
    CHECK(r->nfrom == n, "%s: %zu senders, want %zu", what, r->nfrom, n);
    for (size_t i = 0; i < n && i < r->nfrom; i++)
        CHECK_STR(r->from[i], want[i], what);
}

struct api_case {
    const char *path;
    enum sesreq_api api;
    size_t off;
};

static const struct api_case api_cases[] = {
    {"", SESREQ_V1, 0},
    {"/", SESREQ_V1, 0},
    {"/?Action=GetSendQuota&Version=2010-12-01", SESREQ_V1, 0},
    {"/?Action=X&p=/v2/email/account", SESREQ_V1, 0},
    {"/v2/email", SESREQ_V2, 0},
    {"/v2/email/", SESREQ_V2, 0},
    {"/v2/email/account", SESREQ_V2, 0},
    {"/v2/email?x=1", SESREQ_V2, 0},
    {"/v2/email/identities/a%2Bb%40example.com", SESREQ_V2, 0},
    {"/v2/emailx", SESREQ_V1, 0},
    {"/v2/emails/account", SESREQ_V1, 0},
    {"/v2/Email/account", SESREQ_V1, 0},
    {"/v2", SESREQ_V1, 0},
    {"v2/email/account", SESREQ_V1, 0},
    {"/prefix", SESREQ_V1, 0},
    {"/prefix/", SESREQ_V1, 0},
    {"/prefix/v2/email/account", SESREQ_V2, 7},
    {"/a/b/v2/email/outbound-emails", SESREQ_V2, 4},
    {"/prefix/v2/email", SESREQ_V1, 0},
    {"/prefix/v2/emailx/account", SESREQ_V1, 0},
};

/* Which API a path speaks, and where a prefixed v2 path starts. */
static void test_api_of(void)
{
    for (size_t i = 0; i < sizeof api_cases / sizeof api_cases[0]; i++) {
        const struct api_case *c = &api_cases[i];
        size_t off = 99;
        enum sesreq_api api = sesreq_api_of(c->path, strlen(c->path), &off);
        CHECK(api == c->api, "\"%s\": api %d, want %d", c->path, api, c->api);
        CHECK(off == c->off, "\"%s\": offset %zu, want %zu", c->path, off, c->off);
        CHECK(sesreq_api_of(c->path, strlen(c->path), NULL) == c->api, "NULL offset");
    }
    /* Only len bytes are read. */
    CHECK(sesreq_api_of("/v2/email/account", 5, NULL) == SESREQ_V1, "bounded by len");
}

#define BOTO_SEND_EMAIL                                                                            \
    "Action=SendEmail&Version=2010-12-01&Source=Sender+%3Cs%40example.com%3E&Destination."         \
    "ToAddresses.member.1=a%40example.com&Destination.ToAddresses.member.2=b%40example.com&"       \
    "Destination.CcAddresses.member.1=c%40example.com&Destination.BccAddresses.member.1=d%"        \
    "40example.com&Message.Subject.Data=Hi+%C3%BC&Message.Subject.Charset=UTF-8&Message.Body."     \
    "Text.Data=text+body&Message.Body.Html.Data=%3Cb%3Ehtml%3C%2Fb%3E&Message.Body.Html."          \
    "Charset=UTF-8&ReplyToAddresses.member.1=r%40example.com&ReturnPath=bounce%40example.com&"     \
    "SourceArn=arn%3Aaws%3Ases%3Aus-east-1%3A123456789012%3Aidentity%2Fexample.com&Tags.member."   \
    "1.Name=t1&Tags.member.1.Value=v1&ConfigurationSetName=cs1"

#define JS_SEND_EMAIL                                                                              \
    "Action=SendEmail&Version=2010-12-01&Source=A%20B%20%3Cs%40e.com%3E&Destination."              \
    "ToAddresses.member.1=a%40example.com&Message.Subject.Data=Hi%20%C3%BC&Message.Body.Text."     \
    "Data=it%27s%20%28ok%29%21%2A"

#define BOTO_BULK                                                                                  \
    "Action=SendBulkTemplatedEmail&Version=2010-12-01&Source=s%40example.com&Template=tpl&"        \
    "DefaultTemplateData=%7B%7D&Destinations.member.1.Destination.ToAddresses.member.1=a%"         \
    "40example.com&Destinations.member.1.ReplacementTemplateData=%7B%22n%22%3A1%7D&"               \
    "Destinations.member.1.ReplacementTags.member.1.Name=k&Destinations.member.1."                 \
    "ReplacementTags.member.1.Value=v&Destinations.member.2.Destination.ToAddresses.member.1=b%"   \
    "40example.com&Destinations.member.2.Destination.CcAddresses.member.1=c%40example.com&"        \
    "DefaultTags.member.1.Name=dk&DefaultTags.member.1.Value=dv"

/* The raw message of the boto3 SendRawEmail / v2 Raw captures. */
#define BOTO_RAW_B64                                                                               \
    "RnJvbTogc0BleGFtcGxlLmNvbQ0KVG86IGFAZXhhbXBsZS5jb20NClN1YmplY3Q6IHJhdw0KDQpib2R5DQo="
#define BOTO_RAW_FORM                                                                              \
    "RnJvbTogc0BleGFtcGxlLmNvbQ0KVG86IGFAZXhhbXBsZS5jb20NClN1YmplY3Q6IHJhdw0KDQpib2R5DQo%3D"

struct v1_case {
    const char *body;
    enum seserr_code err; /* SESERR_NONE: success */
    const char *msg;      /* expected error message (exact), or NULL */
    const char *action;
    enum sesreq_kind kind;
    bool raw;
    const char *from[MAXF];
};

static const struct v1_case v1_cases[] = {
    /* captured bodies (§1.4) */
    {BOTO_SEND_EMAIL, SESERR_NONE, NULL, "SendEmail", SESREQ_SEND, false, {"s@example.com"}},
    {JS_SEND_EMAIL, SESERR_NONE, NULL, "SendEmail", SESREQ_SEND, false, {"s@e.com"}},
    {BOTO_BULK,
     SESERR_NONE,
     NULL,
     "SendBulkTemplatedEmail",
     SESREQ_SEND_OTHER,
     false,
     {"s@example.com"}},
    {"Action=SendRawEmail&Version=2010-12-01&Source=s%40example.com&Destinations.member.1=a%"
     "40example.com&Destinations.member.2=b%40example.com&RawMessage.Data=" BOTO_RAW_FORM
     "&Tags.member.1.Name=t&Tags.member.1.Value=v&ConfigurationSetName=cs1",
     SESERR_NONE,
     NULL,
     "SendRawEmail",
     SESREQ_SEND,
     true,
     {"s@example.com", "s@example.com"}},
    /* php-aws-ses: ksorted, no Source */
    {"Action=SendRawEmail&RawMessage.Data=" BOTO_RAW_FORM "&Version=2010-12-01",
     SESERR_NONE,
     NULL,
     "SendRawEmail",
     SESREQ_SEND,
     true,
     {"s@example.com"}},
    /* GET-style parameters, no input shape */
    {"Action=GetSendQuota&Version=2010-12-01",
     SESERR_NONE,
     NULL,
     "GetSendQuota",
     SESREQ_OTHER,
     false,
     {NULL}},
    {"Version=2010-12-01&Action=ListVerifiedEmailAddresses",
     SESERR_NONE,
     NULL,
     "ListVerifiedEmailAddresses",
     SESREQ_OTHER,
     false,
     {NULL}},
    {"Action=GetSendStatistics&Version=2010-12-01&",
     SESERR_NONE,
     NULL,
     "GetSendStatistics",
     SESREQ_OTHER,
     false,
     {NULL}},
    {"Action=VerifyEmailIdentity&Version=2010-12-01&EmailAddress=x%40example.com",
     SESERR_NONE,
     NULL,
     "VerifyEmailIdentity",
     SESREQ_OTHER,
     false,
     {NULL}},
    {"Action=CloneReceiptRuleSet&Version=2010-12-01",
     SESERR_NONE,
     NULL,
     "CloneReceiptRuleSet",
     SESREQ_OTHER,
     false,
     {NULL}},
    {"Action=VerifyEmailIdentity&Version=2010-12-01",
     SESERR_NONE,
     NULL,
     "VerifyEmailIdentity",
     SESREQ_OTHER,
     false,
     {NULL}},
    /* the other sends */
    {"Action=SendTemplatedEmail&Version=2010-12-01&Source=%22Doe%2C+John%22+%3Cj%40example.com%"
     "3E&Template=t&TemplateData=%7B%7D&Destination.ToAddresses.member.1=a%40example.com",
     SESERR_NONE,
     NULL,
     "SendTemplatedEmail",
     SESREQ_SEND,
     false,
     {"j@example.com"}},
    {"Action=SendBounce&Version=2010-12-01&OriginalMessageId=m&BounceSender=mailer%40example.com",
     SESERR_NONE,
     NULL,
     "SendBounce",
     SESREQ_SEND_OTHER,
     false,
     {"mailer@example.com"}},
    {"Action=SendCustomVerificationEmail&Version=2010-12-01&EmailAddress=u%40example.com&"
     "TemplateName=t",
     SESERR_NONE,
     NULL,
     "SendCustomVerificationEmail",
     SESREQ_SEND_OTHER,
     false,
     {NULL}},
    {"Action=SendEmail&Version=2010-12-01&Source=%3D%3Futf-8%3FQ%3FJ%3DC3%3DBCrgen%3F%3D+%3Cj%"
     "40example.com%3E",
     SESERR_NONE,
     NULL,
     "SendEmail",
     SESREQ_SEND,
     false,
     {"j@example.com"}},
    /* Action and Version */
    {"", SESERR_MISSING_ACTION, NULL, NULL, 0, false, {NULL}},
    {"Version=2010-12-01", SESERR_MISSING_ACTION, NULL, NULL, 0, false, {NULL}},
    {"Action=&Version=2010-12-01", SESERR_MISSING_ACTION, NULL, NULL, 0, false, {NULL}},
    {"Action&Version=2010-12-01", SESERR_MISSING_ACTION, NULL, NULL, 0, false, {NULL}},
    {"action=SendEmail&Version=2010-12-01", SESERR_MISSING_ACTION, NULL, NULL, 0, false, {NULL}},
    /* unknown actions (case-sensitive) are forwarded: no action name, no sender */
    {"Action=Foo&Version=2010-12-01", SESERR_NONE, NULL, NULL, SESREQ_OTHER, false, {NULL}},
    {"Action=sendemail&Version=2010-12-01", SESERR_NONE, NULL, NULL, SESREQ_OTHER, false, {NULL}},
    {"Action=SendEmai&Version=2010-12-01", SESERR_NONE, NULL, NULL, SESREQ_OTHER, false, {NULL}},
    {"Action=SendEmailX&Version=2010-12-01", SESERR_NONE, NULL, NULL, SESREQ_OTHER, false, {NULL}},
    {"Action=SendEmail%00&Version=2010-12-01",
     SESERR_NONE,
     NULL,
     NULL,
     SESREQ_OTHER,
     false,
     {NULL}},
    {"Action=AAA&Version=2010-12-01", SESERR_NONE, NULL, NULL, SESREQ_OTHER, false, {NULL}},
    {"Action=zzz&Version=2010-12-01", SESERR_NONE, NULL, NULL, SESREQ_OTHER, false, {NULL}},
    {"Action=sendemail&Version=2010-12-01&Source=evil%40example.net",
     SESERR_NONE,
     NULL,
     NULL,
     SESREQ_OTHER,
     false,
     {NULL}},
    {"Action=SendRawEmailV2&Version=2010-12-01&RawMessage.Data=%21%21",
     SESERR_NONE,
     NULL,
     NULL,
     SESREQ_OTHER,
     false,
     {NULL}},
    {"Version=2010-12-01&Action=GetSendQuotaX",
     SESERR_NONE,
     NULL,
     NULL,
     SESREQ_OTHER,
     false,
     {NULL}},
    /* Version is optional (SES serves a request without one as 2010-12-01,
     * as php-aws-ses sends them); a wrong one is refused for every Action */
    {"Action=Foo", SESERR_NONE, NULL, NULL, SESREQ_OTHER, false, {NULL}},
    {"Action=GetSendQuota", SESERR_NONE, NULL, "GetSendQuota", SESREQ_OTHER, false, {NULL}},
    {"Action=ListVerifiedEmailAddresses&",
     SESERR_NONE,
     NULL,
     "ListVerifiedEmailAddresses",
     SESREQ_OTHER,
     false,
     {NULL}},
    {"Action=SendEmail&Destination.CcAddresses.member.1=c%40example.com&Destination.ToAddresses."
     "member.1=a%40example.com&Message.Body.Text.Data=x+y&Message.Subject.Data=s&Source=%3D%3FUTF-"
     "8%3FB%3FUw%3D%3D%3F%3D+%3Cs%40example.com%3E",
     SESERR_NONE,
     NULL,
     "SendEmail",
     SESREQ_SEND,
     false,
     {"s@example.com"}},
    {"Action=SendRawEmail&RawMessage.Data=" BOTO_RAW_FORM,
     SESERR_NONE,
     NULL,
     "SendRawEmail",
     SESREQ_SEND,
     true,
     {"s@example.com"}},
    {"Action=Foo&Version=2009-10-16",
     SESERR_INVALID_ACTION,
     "Could not find operation Foo for version 2009-10-16",
     NULL,
     0,
     false,
     {NULL}},
    {"Action=sendemail&Version=",
     SESERR_INVALID_ACTION,
     "Could not find operation sendemail for version ",
     NULL,
     0,
     false,
     {NULL}},
    {"Action=%3Cx%3E%26&Version=1",
     SESERR_INVALID_ACTION,
     "Could not find operation <x>& for version 1",
     NULL,
     0,
     false,
     {NULL}},
    {"Action=GetSendQuota&version=2009-10-16",
     SESERR_NONE,
     NULL,
     "GetSendQuota",
     SESREQ_OTHER,
     false,
     {NULL}},
    {"Action=GetSendQuota&Version=2009-10-16",
     SESERR_INVALID_ACTION,
     "Could not find operation GetSendQuota for version 2009-10-16",
     NULL,
     0,
     false,
     {NULL}},
    {"Action=GetSendQuota&Version=2010-12-01x",
     SESERR_INVALID_ACTION,
     NULL,
     NULL,
     0,
     false,
     {NULL}},
    {"Action=GetSendQuota&Version=", SESERR_INVALID_ACTION, NULL, NULL, 0, false, {NULL}},
    /* form errors */
    {"Action=GetSendQuota&Version=2010-12-01&x=%zz",
     SESERR_MALFORMED_QUERY,
     NULL,
     NULL,
     0,
     false,
     {NULL}},
    {"Action=GetSendQuota&Version=2010-12-01&Action=GetSendQuota",
     SESERR_INVALID_QUERY_PARAMETER,
     NULL,
     NULL,
     0,
     false,
     {NULL}},
    {"Action=GetSendQuota&Version=2010-12-01&=x",
     SESERR_INVALID_QUERY_PARAMETER,
     NULL,
     NULL,
     0,
     false,
     {NULL}},
    {"Action=GetSendQuota&Version=2010-12-01&x=%FF",
     SESERR_INVALID_PARAMETER,
     NULL,
     NULL,
     0,
     false,
     {NULL}},
    /* senders */
    {"Action=SendEmail&Version=2010-12-01&Message.Subject.Data=x",
     SESERR_MISSING_PARAMETER,
     "The request must contain the parameter Source.",
     NULL,
     0,
     false,
     {NULL}},
    {"Action=SendTemplatedEmail&Version=2010-12-01",
     SESERR_MISSING_PARAMETER,
     NULL,
     NULL,
     0,
     false,
     {NULL}},
    {"Action=SendBulkTemplatedEmail&Version=2010-12-01",
     SESERR_MISSING_PARAMETER,
     NULL,
     NULL,
     0,
     false,
     {NULL}},
    {"Action=SendBounce&Version=2010-12-01",
     SESERR_MISSING_PARAMETER,
     "The request must contain the parameter BounceSender.",
     NULL,
     0,
     false,
     {NULL}},
    {"Action=SendEmail&Version=2010-12-01&Source=not+an+address",
     SESERR_INVALID_PARAMETER,
     "Illegal address",
     NULL,
     0,
     false,
     {NULL}},
    {"Action=SendEmail&Version=2010-12-01&Source=",
     SESERR_INVALID_PARAMETER,
     "Illegal address",
     NULL,
     0,
     false,
     {NULL}},
    {"Action=SendEmail&Version=2010-12-01&Source=a%40x.com%2C+b%40y.com",
     SESERR_INVALID_PARAMETER,
     "Illegal address",
     NULL,
     0,
     false,
     {NULL}},
    {"Action=SendEmail&Version=2010-12-01&Source=undisclosed%3A%3B",
     SESERR_INVALID_PARAMETER,
     "Illegal address",
     NULL,
     0,
     false,
     {NULL}},
    {"Action=SendEmail&Version=2010-12-01&Source=%3Cs%40example.com",
     SESERR_INVALID_PARAMETER,
     NULL,
     NULL,
     0,
     false,
     {NULL}},
    {"Action=SendBounce&Version=2010-12-01&BounceSender=x",
     SESERR_INVALID_PARAMETER,
     NULL,
     NULL,
     0,
     false,
     {NULL}},
    /* raw message data */
    {"Action=SendRawEmail&Version=2010-12-01&Source=s%40example.com",
     SESERR_MISSING_PARAMETER,
     "The request must contain the parameter RawMessage.Data.",
     NULL,
     0,
     false,
     {NULL}},
    {"Action=SendRawEmail&Version=2010-12-01&RawMessage.Data=%21%21%21%21",
     SESERR_INVALID_PARAMETER,
     NULL,
     NULL,
     0,
     false,
     {NULL}},
    {"Action=SendRawEmail&Version=2010-12-01&RawMessage.Data=RnJv-bTo_",
     SESERR_INVALID_PARAMETER,
     NULL,
     NULL,
     0,
     false,
     {NULL}},
    {"Action=SendRawEmail&Version=2010-12-01&RawMessage.Data=QUJD%3DQUJD",
     SESERR_INVALID_PARAMETER,
     NULL,
     NULL,
     0,
     false,
     {NULL}},
    {"Action=SendRawEmail&Version=2010-12-01&RawMessage.Data=QUJDR",
     SESERR_INVALID_PARAMETER,
     NULL,
     NULL,
     0,
     false,
     {NULL}},
    {"Action=SendRawEmail&Version=2010-12-01&RawMessage.Data=QU%3D%3D%3D",
     SESERR_INVALID_PARAMETER,
     NULL,
     NULL,
     0,
     false,
     {NULL}},
    {"Action=SendRawEmail&Version=2010-12-01&RawMessage.Data=QUJD%3D",
     SESERR_INVALID_PARAMETER,
     NULL,
     NULL,
     0,
     false,
     {NULL}},
    {"Action=SendRawEmail&Version=2010-12-01&RawMessage.Data=",
     SESERR_MESSAGE_REJECTED,
     "Missing required header 'From'.",
     NULL,
     0,
     false,
     {NULL}},
    {"Action=SendRawEmail&Version=2010-12-01&Source=s%40example.com&RawMessage.Data=",
     SESERR_NONE,
     NULL,
     "SendRawEmail",
     SESREQ_SEND,
     true,
     {"s@example.com"}},
    {"Action=SendRawEmail&Version=2010-12-01&Source=bad&RawMessage.Data=" BOTO_RAW_FORM,
     SESERR_INVALID_PARAMETER,
     "Illegal address",
     NULL,
     0,
     false,
     {NULL}},
    /* unpadded base64 and line-wrapped base64 are accepted */
    {"Action=SendRawEmail&Version=2010-12-01&RawMessage.Data="
     "RnJvbTogc0BleGFtcGxlLmNvbQ0KVG86IGFAZXhhbXBsZS5jb20NClN1YmplY3Q6IHJhdw0KDQpib2R5DQo",
     SESERR_NONE,
     NULL,
     "SendRawEmail",
     SESREQ_SEND,
     true,
     {"s@example.com"}},
    {"Action=SendRawEmail&Version=2010-12-01&RawMessage.Data="
     "RnJvbTogc0BleGFtcGxlLmNvbQ0KVG86IGFAZXhh%0D%0AbXBsZS5jb20NClN1YmplY3Q6IHJhdw0KDQpib2R5DQo%"
     "3D%0D%0A",
     SESERR_NONE,
     NULL,
     "SendRawEmail",
     SESREQ_SEND,
     true,
     {"s@example.com"}},
};

/* Check one v1 case. */
static void test_v1_case(const char *body, size_t len, const struct v1_case *c, const char *what)
{
    struct sesreq r;
    memset(&r, 0, sizeof r);
    struct seserr e = {SESERR_NONE, ""};
    int rc = sesreq_parse_v1(body, len, &r, &e);
    CHECK(r.api == SESREQ_V1, "%s: api", what);
    if (c->err != SESERR_NONE) {
        CHECK(rc == -1, "%s: rc %d, want -1", what, rc);
        CHECK(e.code == c->err, "%s: error %s, want %s (%s)", what, seserr_name(e.code),
              seserr_name(c->err), e.message);
        if (c->msg != NULL)
            CHECK_STR(e.message, c->msg, what);
    } else {
        CHECK(rc == 0, "%s: rc %d (%s: %s)", what, rc, seserr_name(e.code), e.message);
        if (c->action == NULL)
            CHECK(r.action == NULL, "%s: action %s, want none (unknown)", what, r.action);
        else
            CHECK(r.action != NULL && strcmp(r.action, c->action) == 0, "%s: action %s", what,
                  r.action ? r.action : "(null)");
        CHECK(r.kind == c->kind, "%s: kind %d, want %d", what, r.kind, c->kind);
        CHECK(r.raw == c->raw, "%s: raw", what);
        CHECK(r.json == NULL, "%s: no JSON on v1", what);
        CHECK(form_get(&r.form, "Action", NULL) != NULL, "%s: form kept", what);
        check_from(&r, c->from, what);
    }
    sesreq_cleanup(&r);
    CHECK(r.from == NULL && r.nfrom == 0 && r.form.n == 0 && r.action == NULL, "cleanup zeroes");
}

/* The v1 table. */
static void test_v1(void)
{
    for (size_t i = 0; i < sizeof v1_cases / sizeof v1_cases[0]; i++) {
        const struct v1_case *c = &v1_cases[i];
        char what[64];
        snprintf(what, sizeof what, "v1 case %zu", i);
        test_v1_case(c->body, strlen(c->body), c, what);
    }
}

/* Where the v1 parameters of a request come from. */
static const struct {
    const char *method, *query, *body;
    enum seserr_code err;
    const char *action;
    const char *source; /* the Source parameter parsed, or NULL */
} v1_request_cases[] = {
    {"GET", "Action=GetSendQuota", "", SESERR_NONE, "GetSendQuota", NULL},
    {"DELETE", "Action=DeleteVerifiedEmailAddress&EmailAddress=a%40example.com", "", SESERR_NONE,
     "DeleteVerifiedEmailAddress", NULL},
    /* a GET's body is not read */
    {"GET", "Action=GetSendQuota", "Source=x", SESERR_NONE, "GetSendQuota", NULL},
    {"POST", "", "Action=SendEmail&Source=s%40e.com&", SESERR_NONE, "SendEmail", "s@e.com"},
    {"POST", "Action=GetSendQuota", "", SESERR_NONE, "GetSendQuota", NULL},
    /* a POST's query string adds to its body */
    {"POST", "Action=SendEmail&Version=2010-12-01", "Source=s%40e.com", SESERR_NONE, "SendEmail",
     "s@e.com"},
    {"POST", "Version=2010-12-01", "Action=SendEmail&Source=s%40e.com", SESERR_NONE, "SendEmail",
     "s@e.com"},
    {"POST", "Action=SendEmail", "Action=SendEmail&Source=s%40e.com",
     SESERR_INVALID_QUERY_PARAMETER, NULL, NULL},
    {"POST", "Source=t%40e.com", "Action=SendEmail&Source=s%40e.com",
     SESERR_INVALID_QUERY_PARAMETER, NULL, NULL},
    {"POST", "Action=%zz", "Source=s%40e.com", SESERR_MALFORMED_QUERY, NULL, NULL},
    {"GET", "", "", SESERR_MISSING_ACTION, NULL, NULL},
};

static void test_v1_request(void)
{
    for (size_t i = 0; i < sizeof v1_request_cases / sizeof v1_request_cases[0]; i++) {
        const char *method = v1_request_cases[i].method;
        const char *q = v1_request_cases[i].query, *b = v1_request_cases[i].body;
        struct sesreq r;
        memset(&r, 0, sizeof r);
        struct seserr e = {0};
        int rc = sesreq_parse_v1_request(method, q[0] ? q : NULL, strlen(q), b[0] ? b : NULL,
                                         strlen(b), SESREQ_MAX_PARAMS, &r, &e);
        enum seserr_code want = v1_request_cases[i].err;
        if (want != SESERR_NONE) {
            CHECK(rc < 0 && e.code == want, "v1 request %zu: rc %d code %s, want %s", i, rc,
                  seserr_name(e.code), seserr_name(want));
        } else {
            CHECK(rc == 0, "v1 request %zu: rc %d (%s)", i, rc, e.message);
            CHECK(r.action != NULL && strcmp(r.action, v1_request_cases[i].action) == 0,
                  "v1 request %zu: action %s", i, r.action ? r.action : "(null)");
            const char *src = form_get(&r.form, "Source", NULL);
            const char *want_src = v1_request_cases[i].source;
            CHECK(want_src ? src != NULL && strcmp(src, want_src) == 0 : src == NULL,
                  "v1 request %zu: Source %s", i, src ? src : "(none)");
        }
        sesreq_cleanup(&r);
    }
}

/* The action name points into the static table: equal pointers for equal
 * actions, whatever the input buffer. */
static void test_v1_static_action(void)
{
    struct sesreq a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    struct seserr e;
    char body1[] = "Action=GetSendQuota&Version=2010-12-01";
    char body2[] = "Version=2010-12-01&Action=GetSendQuota";
    CHECK(sesreq_parse_v1(body1, strlen(body1), &a, &e) == 0, "parse a");
    CHECK(sesreq_parse_v1(body2, strlen(body2), &b, &e) == 0, "parse b");
    CHECK(a.action == b.action, "same static pointer");
    CHECK(a.action != form_get(&a.form, "Action", NULL), "not the form's copy");
    sesreq_cleanup(&a);
    sesreq_cleanup(&b);
}

/* Every one of the 71 v1 actions is recognized. */
static void test_v1_all_actions(void)
{
    static const char *const actions[] = {
        "CloneReceiptRuleSet", "CreateConfigurationSet", "CreateConfigurationSetEventDestination",
        "CreateConfigurationSetTrackingOptions", "CreateCustomVerificationEmailTemplate",
        "CreateReceiptFilter", "CreateReceiptRule", "CreateReceiptRuleSet", "CreateTemplate",
        "DeleteConfigurationSet", "DeleteConfigurationSetEventDestination",
        "DeleteConfigurationSetTrackingOptions", "DeleteCustomVerificationEmailTemplate",
        "DeleteIdentity", "DeleteIdentityPolicy", "DeleteReceiptFilter", "DeleteReceiptRule",
        "DeleteReceiptRuleSet", "DeleteTemplate", "DeleteVerifiedEmailAddress",
        "DescribeActiveReceiptRuleSet", "DescribeConfigurationSet", "DescribeReceiptRule",
        "DescribeReceiptRuleSet", "GetAccountSendingEnabled", "GetCustomVerificationEmailTemplate",
        "GetIdentityDkimAttributes", "GetIdentityMailFromDomainAttributes",
        "GetIdentityNotificationAttributes", "GetIdentityPolicies",
        "GetIdentityVerificationAttributes", "GetSendQuota", "GetSendStatistics", "GetTemplate",
        "ListConfigurationSets", "ListCustomVerificationEmailTemplates", "ListIdentities",
        "ListIdentityPolicies", "ListReceiptFilters", "ListReceiptRuleSets", "ListTemplates",
        "ListVerifiedEmailAddresses", "PutConfigurationSetDeliveryOptions", "PutIdentityPolicy",
        "ReorderReceiptRuleSet", "SetActiveReceiptRuleSet", "SetIdentityDkimEnabled",
        "SetIdentityFeedbackForwardingEnabled", "SetIdentityHeadersInNotificationsEnabled",
        "SetIdentityMailFromDomain", "SetIdentityNotificationTopic", "SetReceiptRulePosition",
        "TestRenderTemplate", "UpdateAccountSendingEnabled",
        "UpdateConfigurationSetEventDestination", "UpdateConfigurationSetReputationMetricsEnabled",
        "UpdateConfigurationSetSendingEnabled", "UpdateConfigurationSetTrackingOptions",
        "UpdateCustomVerificationEmailTemplate", "UpdateReceiptRule", "UpdateTemplate",
        "VerifyDomainDkim", "VerifyDomainIdentity", "VerifyEmailAddress", "VerifyEmailIdentity",
        /* the six sends, with their sender parameters */
        "SendBounce&BounceSender=b%40example.com", "SendBulkTemplatedEmail&Source=s%40example.com",
        "SendCustomVerificationEmail", "SendEmail&Source=s%40example.com",
        "SendRawEmail&Source=s%40example.com&RawMessage.Data=",
        "SendTemplatedEmail&Source=s%40x.org"};
    size_t n = sizeof actions / sizeof actions[0];
    CHECK(n == 71, "71 actions");
    for (size_t i = 0; i < n; i++) {
        struct buf b = BUF_INIT;
        buf_printf(&b, "Version=2010-12-01&Action=%s", actions[i]);
        struct sesreq r;
        memset(&r, 0, sizeof r);
        struct seserr e;
        int rc = sesreq_parse_v1(b.data, b.len, &r, &e);
        size_t alen = strcspn(actions[i], "&");
        CHECK(rc == 0 && strlen(r.action) == alen && strncmp(r.action, actions[i], alen) == 0,
              "action %s: %s", actions[i], rc ? e.message : r.action);
        bool send = strncmp(actions[i], "Send", 4) == 0;
        CHECK((r.kind != SESREQ_OTHER) == send, "action %s kind", actions[i]);
        sesreq_cleanup(&r);
        buf_free(&b);
    }
}

/* The Action quoted in a Version error is clamped to 128 bytes without
 * cutting a UTF-8 sequence; a long unknown Action with a good Version is
 * forwarded. */
static void test_v1_quote(void)
{
    struct buf b = BUF_INIT, want = BUF_INIT;
    struct sesreq r;
    memset(&r, 0, sizeof r);
    struct seserr e;
    buf_adds(&b, "Version=2009-10-16&Action=");
    buf_adds(&want, "Could not find operation ");
    for (int i = 0; i < 200; i++)
        buf_addc(&b, 'a');
    for (int i = 0; i < 128; i++)
        buf_addc(&want, 'a');
    buf_adds(&want, " for version 2009-10-16");
    CHECK(sesreq_parse_v1(b.data, b.len, &r, &e) == -1 && e.code == SESERR_INVALID_ACTION,
          "long action, bad version");
    CHECK_STR(e.message, want.data, "long action quoted to 128 bytes");
    sesreq_cleanup(&r);
    buf_free(&b);
    buf_free(&want);

    /* a two-byte character across byte 128 is left out whole */
    buf_adds(&b, "Action=");
    buf_adds(&want, "Could not find operation ");
    for (int i = 0; i < 127; i++) {
        buf_addc(&b, 'b');
        buf_addc(&want, 'b');
    }
    buf_adds(&b, "%C3%A9zzz");
    size_t action_end = b.len;
    buf_adds(&b, "&Version=1");
    buf_adds(&want, " for version 1");
    CHECK(sesreq_parse_v1(b.data, b.len, &r, &e) == -1 && e.code == SESERR_INVALID_ACTION,
          "UTF-8 action, wrong version");
    CHECK_STR(e.message, want.data, "UTF-8 sequence not cut");
    sesreq_cleanup(&r);
    buf_free(&want);

    b.len = action_end;
    buf_adds(&b, "&Version=2010-12-01");
    CHECK(sesreq_parse_v1(b.data, b.len, &r, &e) == 0 && r.action == NULL &&
              r.kind == SESREQ_OTHER && r.nfrom == 0,
          "long unknown action forwarded");
    sesreq_cleanup(&r);
    buf_free(&b);
}

/* Parameter limits: 10000 To addresses and the rest of a send fit. */
static void test_v1_limits(void)
{
    struct buf b = BUF_INIT;
    buf_adds(&b, "Action=SendEmail&Version=2010-12-01&Source=s%40example.com&Message.Subject."
                 "Data=s&Message.Body.Text.Data=t");
    for (int i = 1; i <= 10000; i++)
        buf_printf(&b, "&Destination.ToAddresses.member.%d=u%d%%40example.com", i, i);
    for (int i = 1; i <= 50; i++)
        buf_printf(&b, "&Destination.CcAddresses.member.%d=c%d%%40example.com", i, i);
    struct sesreq r;
    memset(&r, 0, sizeof r);
    struct seserr e;
    CHECK(sesreq_parse_v1(b.data, b.len, &r, &e) == 0, "10000 recipients fit: %s", e.message);
    CHECK(r.form.n == 10055, "all parameters kept: %zu", r.form.n);
    sesreq_cleanup(&r);
    buf_free(&b);

    buf_adds(&b, "Action=GetSendQuota&Version=2010-12-01");
    for (int i = 1; i <= 19998; i++)
        buf_printf(&b, "&p%d", i);
    CHECK(sesreq_parse_v1(b.data, b.len, &r, &e) == 0, "20000 parameters: %s", e.message);
    sesreq_cleanup(&r);
    buf_adds(&b, "&p19999");
    CHECK(sesreq_parse_v1(b.data, b.len, &r, &e) == -1 && e.code == SESERR_INVALID_QUERY_PARAMETER,
          "over 20000 parameters: %s", seserr_name(e.code));
    sesreq_cleanup(&r);
    /* a larger cap (max_recipients + SESREQ_MAX_PARAMS) takes them, to the one */
    CHECK(sesreq_parse_v1_max(b.data, b.len, 20001, &r, &e) == 0, "20001 with a cap of 20001: %s",
          e.message);
    CHECK(r.form.n == 20001, "all kept: %zu", r.form.n);
    sesreq_cleanup(&r);
    CHECK(sesreq_parse_v1_max(b.data, b.len, 20000, &r, &e) == -1 &&
              e.code == SESERR_INVALID_QUERY_PARAMETER,
          "20001 with a cap of 20000: %s", seserr_name(e.code));
    sesreq_cleanup(&r);
    buf_free(&b);
}

struct raw_case {
    const char *mime;
    const char *source;   /* Source (v1) / FromEmailAddress (v2), or NULL */
    enum seserr_code err; /* SESERR_NONE: success */
    const char *from[MAXF];
};

static const struct raw_case raw_cases[] = {
    {"From: s@example.com\r\nTo: a@example.com\r\n\r\nbody\r\n",
     NULL,
     SESERR_NONE,
     {"s@example.com"}},
    /* php-aws-ses: bare LF, BCC header */
    {"From: Sender <s@example.com>\nTo: a@example.com\nBCC: b@example.com\n\nbody\n",
     NULL,
     SESERR_NONE,
     {"s@example.com"}},
    {"To: a@example.com\r\nfrom: S@Example.com\r\n\r\n", NULL, SESERR_NONE, {"S@Example.com"}},
    {"FROM : s@example.com\r\n\r\n", NULL, SESERR_NONE, {"s@example.com"}},
    /* folded From header, display names with commas in quotes */
    {"Subject: x\r\nFrom: \"Doe, John\"\r\n <j@example.com>\r\nTo: a@example.com\r\n\r\n",
     NULL,
     SESERR_NONE,
     {"j@example.com"}},
    {"From:\n\t\"Doe, John\" <j@example.com>,\n \"Roe, Jane\" <r@example.org>\n\nbody",
     NULL,
     SESERR_NONE,
     {"j@example.com", "r@example.org"}},
    {"From: =?UTF-8?B?SsO8cmdlbg==?= <j@example.com>\r\n\r\n",
     NULL,
     SESERR_NONE,
     {"j@example.com"}},
    {"From: team: a@example.com, b@example.com;\r\n\r\n",
     NULL,
     SESERR_NONE,
     {"a@example.com", "b@example.com"}},
    /* headers only, no body */
    {"From: s@example.com", NULL, SESERR_NONE, {"s@example.com"}},
    /* Source and From header are both senders */
    {"From: h@example.com\r\n\r\n",
     "s@example.com",
     SESERR_NONE,
     {"s@example.com", "h@example.com"}},
    {"To: a@example.com\r\n\r\n", "Sender <s@example.com>", SESERR_NONE, {"s@example.com"}},
    /* a From line in the body is not a header */
    {"To: a@example.com\r\n\r\nFrom: evil@example.net\r\n", NULL, SESERR_MESSAGE_REJECTED, {NULL}},
    {"To: a@example.com\n\nFrom: evil@example.net\n",
     "s@example.com",
     SESERR_NONE,
     {"s@example.com"}},
    {"\r\nFrom: evil@example.net\r\n", NULL, SESERR_MESSAGE_REJECTED, {NULL}},
    /* no sender at all */
    {"To: a@example.com\r\nSubject: x\r\n\r\nbody\r\n", NULL, SESERR_MESSAGE_REJECTED, {NULL}},
    {"From: undisclosed:;\r\n\r\n", NULL, SESERR_MESSAGE_REJECTED, {NULL}},
    {"", NULL, SESERR_MESSAGE_REJECTED, {NULL}},
    {"X-From: s@example.com\r\nFromx: s@example.com\r\n\r\n",
     NULL,
     SESERR_MESSAGE_REJECTED,
     {NULL}},
    /* bad From headers */
    {"From: <<<\r\n\r\n", NULL, SESERR_INVALID_PARAMETER, {NULL}},
    {"From: just text\r\n\r\n", "s@example.com", SESERR_INVALID_PARAMETER, {NULL}},
    {"From: a@example.com\r\nTo: b@example.com\r\nFrom: evil@example.net\r\n\r\n",
     NULL,
     SESERR_INVALID_PARAMETER,
     {NULL}},
    {"From: a@example.com\r\nfrom : evil@example.net\r\n\r\n",
     "s@example.com",
     SESERR_INVALID_PARAMETER,
     {NULL}},
};

/* Raw messages, through v1 SendRawEmail and v2 SendEmail Raw. */
static void test_raw(void)
{
    for (size_t i = 0; i < sizeof raw_cases / sizeof raw_cases[0]; i++) {
        const struct raw_case *c = &raw_cases[i];
        struct v1_case vc = {NULL, c->err, NULL, "SendRawEmail", SESREQ_SEND, true, {NULL}};
        memcpy(vc.from, c->from, sizeof vc.from);
        struct buf b = BUF_INIT;
        char what[64];
        raw_body(&b, c->source, c->mime);
        snprintf(what, sizeof what, "raw case %zu (v1)", i);
        test_v1_case(b.data, b.len, &vc, what);
        buf_free(&b);

        raw_json(&b, c->source, c->mime);
        struct sesreq r;
        memset(&r, 0, sizeof r);
        struct seserr e = {SESERR_NONE, ""};
        int rc = sesreq_parse_v2("POST", "/v2/email/outbound-emails", 25, b.data, b.len, &r, &e);
        snprintf(what, sizeof what, "raw case %zu (v2)", i);
        if (c->err != SESERR_NONE) {
            /* invalid values are BadRequestException on v2 */
            enum seserr_code want =
                c->err == SESERR_INVALID_PARAMETER ? SESERR_BAD_REQUEST : c->err;
            CHECK(rc == -1 && e.code == want, "%s: %s (%s)", what, seserr_name(e.code), e.message);
        } else {
            CHECK(rc == 0, "%s: %s", what, e.message);
            CHECK(r.raw && r.kind == SESREQ_SEND && strcmp(r.action, "SendEmail") == 0, "%s", what);
            check_from(&r, c->from, what);
        }
        sesreq_cleanup(&r);
        buf_free(&b);
    }
}

/* Large raw messages: the header block is found across base64 chunks. */
static void test_raw_large(void)
{
    static const size_t sizes[] = {100, 48000, 49200, 70000, 200000};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        struct buf mime = BUF_INIT, b = BUF_INIT;
        /* many headers before From, so that From sits after the first chunk */
        while (mime.len < sizes[k])
            buf_printf(&mime, "X-Filler-%zu: %s\r\n", mime.len,
                       "0123456789012345678901234567890123456789");
        buf_adds(&mime, "From: late@example.com\r\nTo: a@example.com\r\n\r\n");
        for (int i = 0; i < 5000; i++)
            buf_adds(&mime, "body line, From: body@example.net\r\n");
        raw_body(&b, NULL, mime.data);
        struct v1_case vc = {NULL, SESERR_NONE,         NULL, "SendRawEmail", SESREQ_SEND,
                             true, {"late@example.com"}};
        char what[64];
        snprintf(what, sizeof what, "large raw %zu", sizes[k]);
        test_v1_case(b.data, b.len, &vc, what);
        buf_free(&b);

        /* Invalid base64 at the very end is still found. */
        raw_body(&b, NULL, mime.data);
        buf_adds(&b, "%2A");
        struct v1_case bad = {NULL, SESERR_INVALID_PARAMETER, NULL, NULL, 0, false, {NULL}};
        test_v1_case(b.data, b.len, &bad, what);
        buf_free(&b);
        buf_free(&mime);
    }
}

struct route_case {
    const char *method;
    const char *path;
    const char *name; /* operation, or NULL: unknown, forwarded as is */
};

/* The 110 operations of ses-api.md §2.6, with sample label values. */
static const struct route_case route_cases[] = {
    {"GET", "/v2/email/account", "GetAccount"},
    {"PUT", "/v2/email/account/dedicated-ips/warmup", "PutAccountDedicatedIpWarmupAttributes"},
    {"POST", "/v2/email/account/details", "PutAccountDetails"},
    {"PUT", "/v2/email/account/sending", "PutAccountSendingAttributes"},
    {"PUT", "/v2/email/account/suppression", "PutAccountSuppressionAttributes"},
    {"PUT", "/v2/email/account/vdm", "PutAccountVdmAttributes"},
    {"GET", "/v2/email/configuration-sets", "ListConfigurationSets"},
    {"POST", "/v2/email/configuration-sets", "CreateConfigurationSet"},
    {"DELETE", "/v2/email/configuration-sets/configurationsetname-1", "DeleteConfigurationSet"},
    {"GET", "/v2/email/configuration-sets/configurationsetname-1", "GetConfigurationSet"},
    {"PUT", "/v2/email/configuration-sets/configurationsetname-1/archiving-options",
     "PutConfigurationSetArchivingOptions"},
    {"PUT", "/v2/email/configuration-sets/configurationsetname-1/delivery-options",
     "PutConfigurationSetDeliveryOptions"},
    {"GET", "/v2/email/configuration-sets/configurationsetname-1/event-destinations",
     "GetConfigurationSetEventDestinations"},
    {"POST", "/v2/email/configuration-sets/configurationsetname-1/event-destinations",
     "CreateConfigurationSetEventDestination"},
    {"DELETE",
     "/v2/email/configuration-sets/configurationsetname-1/event-destinations/"
     "eventdestinationname-1",
     "DeleteConfigurationSetEventDestination"},
    {"PUT",
     "/v2/email/configuration-sets/configurationsetname-1/event-destinations/"
     "eventdestinationname-1",
     "UpdateConfigurationSetEventDestination"},
    {"PUT", "/v2/email/configuration-sets/configurationsetname-1/reputation-options",
     "PutConfigurationSetReputationOptions"},
    {"PUT", "/v2/email/configuration-sets/configurationsetname-1/sending",
     "PutConfigurationSetSendingOptions"},
    {"PUT", "/v2/email/configuration-sets/configurationsetname-1/suppression-options",
     "PutConfigurationSetSuppressionOptions"},
    {"PUT", "/v2/email/configuration-sets/configurationsetname-1/tracking-options",
     "PutConfigurationSetTrackingOptions"},
    {"PUT", "/v2/email/configuration-sets/configurationsetname-1/vdm-options",
     "PutConfigurationSetVdmOptions"},
    {"GET", "/v2/email/contact-lists", "ListContactLists"},
    {"POST", "/v2/email/contact-lists", "CreateContactList"},
    {"DELETE", "/v2/email/contact-lists/contactlistname-1", "DeleteContactList"},
    {"GET", "/v2/email/contact-lists/contactlistname-1", "GetContactList"},
    {"PUT", "/v2/email/contact-lists/contactlistname-1", "UpdateContactList"},
    {"POST", "/v2/email/contact-lists/contactlistname-1/contacts", "CreateContact"},
    {"POST", "/v2/email/contact-lists/contactlistname-1/contacts/list", "ListContacts"},
    {"DELETE", "/v2/email/contact-lists/contactlistname-1/contacts/u%40example.com",
     "DeleteContact"},
    {"GET", "/v2/email/contact-lists/contactlistname-1/contacts/u%40example.com", "GetContact"},
    {"PUT", "/v2/email/contact-lists/contactlistname-1/contacts/u%40example.com", "UpdateContact"},
    {"GET", "/v2/email/custom-verification-email-templates",
     "ListCustomVerificationEmailTemplates"},
    {"POST", "/v2/email/custom-verification-email-templates",
     "CreateCustomVerificationEmailTemplate"},
    {"DELETE", "/v2/email/custom-verification-email-templates/templatename-1",
     "DeleteCustomVerificationEmailTemplate"},
    {"GET", "/v2/email/custom-verification-email-templates/templatename-1",
     "GetCustomVerificationEmailTemplate"},
    {"PUT", "/v2/email/custom-verification-email-templates/templatename-1",
     "UpdateCustomVerificationEmailTemplate"},
    {"GET", "/v2/email/dedicated-ip-pools", "ListDedicatedIpPools"},
    {"POST", "/v2/email/dedicated-ip-pools", "CreateDedicatedIpPool"},
    {"DELETE", "/v2/email/dedicated-ip-pools/poolname-1", "DeleteDedicatedIpPool"},
    {"GET", "/v2/email/dedicated-ip-pools/poolname-1", "GetDedicatedIpPool"},
    {"PUT", "/v2/email/dedicated-ip-pools/poolname-1/scaling",
     "PutDedicatedIpPoolScalingAttributes"},
    {"GET", "/v2/email/dedicated-ips", "GetDedicatedIps"},
    {"GET", "/v2/email/dedicated-ips/192.0.2.1", "GetDedicatedIp"},
    {"PUT", "/v2/email/dedicated-ips/192.0.2.1/pool", "PutDedicatedIpInPool"},
    {"PUT", "/v2/email/dedicated-ips/192.0.2.1/warmup", "PutDedicatedIpWarmupAttributes"},
    {"GET", "/v2/email/deliverability-dashboard", "GetDeliverabilityDashboardOptions"},
    {"PUT", "/v2/email/deliverability-dashboard", "PutDeliverabilityDashboardOption"},
    {"GET", "/v2/email/deliverability-dashboard/blacklist-report", "GetBlacklistReports"},
    {"GET", "/v2/email/deliverability-dashboard/campaigns/campaignid-1",
     "GetDomainDeliverabilityCampaign"},
    {"GET", "/v2/email/deliverability-dashboard/domains/subscribeddomain-1/campaigns",
     "ListDomainDeliverabilityCampaigns"},
    {"GET", "/v2/email/deliverability-dashboard/statistics-report/domain-1",
     "GetDomainStatisticsReport"},
    {"POST", "/v2/email/deliverability-dashboard/test", "CreateDeliverabilityTestReport"},
    {"GET", "/v2/email/deliverability-dashboard/test-reports", "ListDeliverabilityTestReports"},
    {"GET", "/v2/email/deliverability-dashboard/test-reports/reportid-1",
     "GetDeliverabilityTestReport"},
    {"POST", "/v2/email/email-address-insights/", "GetEmailAddressInsights"},
    {"POST", "/v2/email/export-jobs", "CreateExportJob"},
    {"GET", "/v2/email/export-jobs/jobid-1", "GetExportJob"},
    {"PUT", "/v2/email/export-jobs/jobid-1/cancel", "CancelExportJob"},
    {"GET", "/v2/email/identities", "ListEmailIdentities"},
    {"POST", "/v2/email/identities", "CreateEmailIdentity"},
    {"DELETE", "/v2/email/identities/a%2Bb%40example.com", "DeleteEmailIdentity"},
    {"GET", "/v2/email/identities/a%2Bb%40example.com", "GetEmailIdentity"},
    {"PUT", "/v2/email/identities/a%2Bb%40example.com/configuration-set",
     "PutEmailIdentityConfigurationSetAttributes"},
    {"PUT", "/v2/email/identities/a%2Bb%40example.com/dkim", "PutEmailIdentityDkimAttributes"},
    {"PUT", "/v2/email/identities/a%2Bb%40example.com/dkim/signing",
     "PutEmailIdentityDkimSigningAttributes"},
    {"PUT", "/v2/email/identities/a%2Bb%40example.com/feedback",
     "PutEmailIdentityFeedbackAttributes"},
    {"PUT", "/v2/email/identities/a%2Bb%40example.com/mail-from",
     "PutEmailIdentityMailFromAttributes"},
    {"GET", "/v2/email/identities/a%2Bb%40example.com/policies", "GetEmailIdentityPolicies"},
    {"DELETE", "/v2/email/identities/a%2Bb%40example.com/policies/policyname-1",
     "DeleteEmailIdentityPolicy"},
    {"POST", "/v2/email/identities/a%2Bb%40example.com/policies/policyname-1",
     "CreateEmailIdentityPolicy"},
    {"PUT", "/v2/email/identities/a%2Bb%40example.com/policies/policyname-1",
     "UpdateEmailIdentityPolicy"},
    {"POST", "/v2/email/import-jobs", "CreateImportJob"},
    {"POST", "/v2/email/import-jobs/list", "ListImportJobs"},
    {"GET", "/v2/email/import-jobs/jobid-1", "GetImportJob"},
    {"GET", "/v2/email/insights/messageid-1/", "GetMessageInsights"},
    {"POST", "/v2/email/list-export-jobs", "ListExportJobs"},
    {"POST", "/v2/email/metrics/batch", "BatchGetMetricData"},
    {"GET", "/v2/email/multi-region-endpoints", "ListMultiRegionEndpoints"},
    {"POST", "/v2/email/multi-region-endpoints", "CreateMultiRegionEndpoint"},
    {"DELETE", "/v2/email/multi-region-endpoints/endpointname-1", "DeleteMultiRegionEndpoint"},
    {"GET", "/v2/email/multi-region-endpoints/endpointname-1", "GetMultiRegionEndpoint"},
    {"POST", "/v2/email/outbound-bulk-emails", "SendBulkEmail"},
    {"POST", "/v2/email/outbound-custom-verification-emails", "SendCustomVerificationEmail"},
    {"POST", "/v2/email/outbound-emails", "SendEmail"},
    {"POST", "/v2/email/reputation/entities", "ListReputationEntities"},
    {"GET", "/v2/email/reputation/entities/reputationentitytype-1/reputationentityreference-1",
     "GetReputationEntity"},
    {"PUT",
     "/v2/email/reputation/entities/reputationentitytype-1/reputationentityreference-1/"
     "customer-managed-status",
     "UpdateReputationEntityCustomerManagedStatus"},
    {"PUT",
     "/v2/email/reputation/entities/reputationentitytype-1/reputationentityreference-1/policy",
     "UpdateReputationEntityPolicy"},
    {"POST", "/v2/email/resources/tenants/list", "ListResourceTenants"},
    {"GET", "/v2/email/suppression/addresses", "ListSuppressedDestinations"},
    {"PUT", "/v2/email/suppression/addresses", "PutSuppressedDestination"},
    {"DELETE", "/v2/email/suppression/addresses/u%40example.com", "DeleteSuppressedDestination"},
    {"GET", "/v2/email/suppression/addresses/u%40example.com", "GetSuppressedDestination"},
    {"DELETE", "/v2/email/tags", "UntagResource"},
    {"GET", "/v2/email/tags", "ListTagsForResource"},
    {"POST", "/v2/email/tags", "TagResource"},
    {"GET", "/v2/email/templates", "ListEmailTemplates"},
    {"POST", "/v2/email/templates", "CreateEmailTemplate"},
    {"DELETE", "/v2/email/templates/templatename-1", "DeleteEmailTemplate"},
    {"GET", "/v2/email/templates/templatename-1", "GetEmailTemplate"},
    {"PUT", "/v2/email/templates/templatename-1", "UpdateEmailTemplate"},
    {"POST", "/v2/email/templates/templatename-1/render", "TestRenderEmailTemplate"},
    {"POST", "/v2/email/tenants", "CreateTenant"},
    {"POST", "/v2/email/tenants/delete", "DeleteTenant"},
    {"POST", "/v2/email/tenants/get", "GetTenant"},
    {"POST", "/v2/email/tenants/list", "ListTenants"},
    {"POST", "/v2/email/tenants/resources", "CreateTenantResourceAssociation"},
    {"POST", "/v2/email/tenants/resources/delete", "DeleteTenantResourceAssociation"},
    {"POST", "/v2/email/tenants/resources/list", "ListTenantResources"},
    {"POST", "/v2/email/vdm/recommendations", "ListRecommendations"},
};

/* Paths and methods under /v2/email that name no known operation: they are
 * forwarded as is. Two of them are routes of newer clients now. */
static const struct route_case unknown_cases[] = {
    {"GET", "/v2/email", NULL},
    {"GET", "/v2/email/", NULL},
    {"GET", "/v2/email//account", NULL},
    {"GET", "/v2/email/account/", NULL},
    {"GET", "/v2/email/Account", NULL},
    {"get", "/v2/email/account", NULL},
    {"POST", "/v2/email/account", NULL},
    {"DELETE", "/v2/email/account", NULL},
    {"HEAD", "/v2/email/account", NULL},
    {"PUT", "/v2/email/account/vdmx", NULL},
    {"POST", "/v2/email/email-address-insights", "GetEmailAddressInsights"},
    {"GET", "/v2/email/insights/m1", "GetMessageInsights"},
    {"GET", "/v2/email/insights//", NULL},
    {"GET", "/v2/email/identities/", NULL},
    {"GET", "/v2/email/identities//", NULL},
    {"PUT", "/v2/email/identities//dkim", NULL},
    {"GET", "/v2/email/identities/a/b", NULL},
    {"GET", "/v2/email/outbound-emails", NULL},
    {"POST", "/v2/email/outbound-emails/", NULL},
    {"POST", "/v2/email/outbound-emailsx", NULL},
    /* a future operation */
    {"POST", "/v2/email/brand-new-operation", NULL},
    {"GET", "/v2/email?x=1", NULL},
    {"GET", "/v2/email/?x=1", NULL},
};

/* Requests that are not v2 requests at all (the caller never passes them):
 * refused with SESERR_UNKNOWN_OPERATION. */
static const struct route_case refused_cases[] = {
    {"GET", "/v2/emailaccount", NULL},
    {"GET", "/v1/email/account", NULL},
    {"GET", "/prefix/v2/email/account", NULL},
    {"GET", "", NULL},
    {"", "/v2/email/account", NULL},
    {"POST", "/v2/email-x/account", NULL},
    {"POST", "/v2/emai", NULL},
    {"GET", "/v2/email%2Faccount", NULL},
};

/* The routes of the AWS SDK for JavaScript v3 (@aws-sdk/client-sesv2 3.1176)
 * that older clients spell differently or did not have. */
static const struct route_case js_route_cases[] = {
    {"GET", "/v2/email/dedicated-ips/198.51.100.7", "GetDedicatedIp"},
    {"GET", "/v2/email/insights/0100018f-abcd-1234", "GetMessageInsights"},
    {"POST", "/v2/email/account/delivery", "PutAccountDeliveryAttributes"},
    {"POST", "/v2/email/email-address-insights", "GetEmailAddressInsights"},
    {"POST", "/v2/email/identity/certificates", "AssociateEmailIdentityCertificate"},
    {"POST", "/v2/email/identity/certificates/delete", "DisassociateEmailIdentityCertificate"},
    {"POST", "/v2/email/identity/certificates/list", "ListEmailIdentityCertificates"},
    {"POST", "/v2/email/list-configuration-sets", "ListConfigurationSets"},
    {"POST", "/v2/email/list-identities", "ListEmailIdentities"},
    {"POST", "/v2/email/tenant/suppression", "PutTenantSuppressionAttributes"},
    {"POST", "/v2/email/update-configuration-sets", "UpdateConfigurationSet"},
    {"PUT", "/v2/email/account/pricing-attributes", "PutAccountPricingAttributes"},
    /* the older spellings still route */
    {"GET", "/v2/email/insights/0100018f-abcd-1234/", "GetMessageInsights"},
    {"POST", "/v2/email/email-address-insights/", "GetEmailAddressInsights"},
    {"GET", "/v2/email/configuration-sets", "ListConfigurationSets"},
    {"GET", "/v2/email/identities", "ListEmailIdentities"},
    /* query strings, and the other methods of the new paths */
    {"POST", "/v2/email/list-identities?x=1", "ListEmailIdentities"},
    {"GET", "/v2/email/list-identities", NULL},
    {"GET", "/v2/email/list-configuration-sets", NULL},
    {"POST", "/v2/email/account/pricing-attributes", NULL},
    {"PUT", "/v2/email/account/delivery", NULL},
    {"POST", "/v2/email/identity/certificates/", NULL},
    {"POST", "/v2/email/identity/certificates/get", NULL},
    {"POST", "/v2/email/identity", NULL},
    {"POST", "/v2/email/tenant/suppression/", NULL},
    {"POST", "/v2/email/tenant", NULL},
    {"GET", "/v2/email/insights", NULL},
    {"GET", "/v2/email/insights/m1/x", NULL},
};

/* Routes that need the literal-over-label rule, encoded labels, queries. */
static const struct route_case special_cases[] = {
    {"GET", "/v2/email/identities/a%2Bb%40example.com", "GetEmailIdentity"},
    {"DELETE", "/v2/email/identities/a%2Bb%40example.com", "DeleteEmailIdentity"},
    {"PUT", "/v2/email/identities/example.com/dkim/signing",
     "PutEmailIdentityDkimSigningAttributes"},
    {"GET", "/v2/email/identities/a%2Fb", "GetEmailIdentity"},
    {"GET", "/v2/email/account?x=1", "GetAccount"},
    {"GET", "/v2/email/suppression/addresses?Reason=BOUNCE&Reason=COMPLAINT",
     "ListSuppressedDestinations"},
    {"POST", "/v2/email/contact-lists/cl/contacts/list", "ListContacts"},
    {"GET", "/v2/email/contact-lists/cl/contacts/list", "GetContact"},
    {"PUT", "/v2/email/contact-lists/cl/contacts/list", "UpdateContact"},
    {"POST", "/v2/email/contact-lists/cl/contacts", "CreateContact"},
    {"POST", "/v2/email/import-jobs/list", "ListImportJobs"},
    {"GET", "/v2/email/import-jobs/list", "GetImportJob"},
    {"GET", "/v2/email/identities/list", "GetEmailIdentity"},
    {"GET", "/v2/email/templates/render", "GetEmailTemplate"},
    {"POST", "/v2/email/templates/render/render", "TestRenderEmailTemplate"},
    {"POST", "/v2/email/tenants/resources", "CreateTenantResourceAssociation"},
    {"POST", "/v2/email/tenants/resources/list", "ListTenantResources"},
    {"GET", "/v2/email/reputation/entities/RESOURCE/arn%3Aaws%3Ases", "GetReputationEntity"},
};

/* Check that method + path resolves to name (NULL: unknown operation,
 * forwarded), or with refused, that it is no v2 request at all. */
static void check_route(const struct route_case *c, bool refused)
{
    struct sesreq r;
    memset(&r, 0, sizeof r);
    struct seserr e = {SESERR_NONE, ""};
    int rc = sesreq_parse_v2(c->method, c->path, strlen(c->path), "", 0, &r, &e);
    CHECK(r.api == SESREQ_V2, "%s %s: api", c->method, c->path);
    bool sends = c->name != NULL &&
                 (strcmp(c->name, "SendEmail") == 0 || strcmp(c->name, "SendBulkEmail") == 0 ||
                  strcmp(c->name, "SendCustomVerificationEmail") == 0);
    if (refused) {
        CHECK(rc == -1 && e.code == SESERR_UNKNOWN_OPERATION, "%s %s: %s, want refused", c->method,
              c->path, r.action ? r.action : seserr_name(e.code));
    } else if (c->name == NULL) {
        CHECK(rc == 0 && r.action == NULL, "%s %s: %s, want unknown (forwarded)", c->method,
              c->path, rc ? seserr_name(e.code) : r.action);
        CHECK(r.kind == SESREQ_OTHER && r.json == NULL && r.nfrom == 0 && !r.raw,
              "%s %s: passed through", c->method, c->path);
    } else if (sends) {
        /* an empty body is not JSON: the send operations refuse it */
        CHECK(rc == -1 && e.code == SESERR_BAD_REQUEST && strcmp(r.action, c->name) == 0, "%s %s",
              c->method, c->path);
    } else {
        CHECK(rc == 0 && r.action != NULL && strcmp(r.action, c->name) == 0, "%s %s: %s, want %s",
              c->method, c->path, rc ? e.message : r.action, c->name);
        CHECK(r.kind == SESREQ_OTHER && r.json == NULL && r.nfrom == 0, "%s: passed through",
              c->name);
    }
    sesreq_cleanup(&r);
    if (refused || sends)
        return;
    /* A pass-through operation, known or not, never parses its body. */
    static const char junk[] = "{\"FromEmailAddress\": not json";
    rc = sesreq_parse_v2(c->method, c->path, strlen(c->path), junk, sizeof junk - 1, &r, &e);
    CHECK(rc == 0 && r.json == NULL && r.nfrom == 0 && r.kind == SESREQ_OTHER,
          "%s %s: body not parsed (%s)", c->method, c->path, rc ? e.message : "ok");
    CHECK(c->name == NULL ? r.action == NULL : r.action != NULL && strcmp(r.action, c->name) == 0,
          "%s %s: same action with any body", c->method, c->path);
    sesreq_cleanup(&r);
}

/* Every v2 operation, the unknown ones, and the special cases. */
static void test_routes(void)
{
    size_t n = sizeof route_cases / sizeof route_cases[0];
    CHECK(n == 110, "110 operations");
    for (size_t i = 0; i < n; i++) {
        check_route(&route_cases[i], false);
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(route_cases[i].name, route_cases[j].name) != 0, "distinct %s",
                  route_cases[i].name);
    }
    for (size_t i = 0; i < sizeof unknown_cases / sizeof unknown_cases[0]; i++)
        check_route(&unknown_cases[i], false);
    for (size_t i = 0; i < sizeof special_cases / sizeof special_cases[0]; i++)
        check_route(&special_cases[i], false);
    for (size_t i = 0; i < sizeof js_route_cases / sizeof js_route_cases[0]; i++)
        check_route(&js_route_cases[i], false);
    for (size_t i = 0; i < sizeof refused_cases / sizeof refused_cases[0]; i++)
        check_route(&refused_cases[i], true);

    /* A NULL method names nothing. */
    struct sesreq r;
    memset(&r, 0, sizeof r);
    struct seserr e;
    CHECK(sesreq_parse_v2(NULL, "/v2/email/account", 17, NULL, 0, &r, &e) == -1 &&
              e.code == SESERR_UNKNOWN_OPERATION,
          "NULL method");
    sesreq_cleanup(&r);

    /* A path-prefixed endpoint: the v2 part starts at the offset. */
    const char *p = "/prefix/v2/email/account";
    size_t off;
    CHECK(sesreq_api_of(p, strlen(p), &off) == SESREQ_V2, "prefixed v2");
    CHECK(sesreq_parse_v2("GET", p + off, strlen(p) - off, NULL, 0, &r, &e) == 0 &&
              strcmp(r.action, "GetAccount") == 0,
          "prefixed GetAccount");
    sesreq_cleanup(&r);

    /* Only path_len bytes of the path are read. */
    CHECK(sesreq_parse_v2("GET", "/v2/email/accountXYZ", 17, NULL, 0, &r, &e) == 0 &&
              strcmp(r.action, "GetAccount") == 0,
          "bounded path");
    sesreq_cleanup(&r);

    /* Other operations never look at the body. */
    const char *junk = "{not json";
    CHECK(sesreq_parse_v2("PUT", "/v2/email/account/sending", 25, junk, strlen(junk), &r, &e) ==
                  0 &&
              r.json == NULL,
          "body of a pass-through operation is not parsed");
    sesreq_cleanup(&r);
    CHECK(sesreq_parse_v2("POST", "/v2/email/list-identities", 25, junk, strlen(junk), &r, &e) ==
                  0 &&
              r.json == NULL && strcmp(r.action, "ListEmailIdentities") == 0,
          "invalid JSON on POST /list-identities is fine");
    sesreq_cleanup(&r);
    CHECK(sesreq_parse_v2("POST", "/v2/email/outbound-emails/", 26, junk, strlen(junk), &r, &e) ==
                  0 &&
              r.json == NULL && r.action == NULL && r.nfrom == 0,
          "an unknown route is forwarded without parsing its body");
    sesreq_cleanup(&r);
    CHECK(sesreq_parse_v2("POST", "/v2/email/new-op", 16, NULL, 0, &r, &e) == 0 &&
              r.action == NULL && r.kind == SESREQ_OTHER,
          "an unknown route with no body");
    sesreq_cleanup(&r);
    /* Only path_len bytes are read: a longer buffer does not make a route. */
    CHECK(sesreq_parse_v2("GET", "/v2/email/accountXYZ", 20, NULL, 0, &r, &e) == 0 &&
              r.action == NULL,
          "bounded unknown path");
    sesreq_cleanup(&r);
    CHECK(sesreq_parse_v2("GET", "/v2/emailXYZ", 9, NULL, 0, &r, &e) == 0 && r.action == NULL,
          "bare /v2/email within a longer buffer");
    sesreq_cleanup(&r);
    CHECK(sesreq_parse_v2("GET", "/v2/emailXYZ", 12, NULL, 0, &r, &e) == -1 &&
              e.code == SESERR_UNKNOWN_OPERATION,
          "/v2/emailXYZ is not under /v2/email");
    sesreq_cleanup(&r);
}

#define BOTO_V2_SIMPLE                                                                             \
    "{\"FromEmailAddress\": \"s@example.com\", \"Destination\": {\"ToAddresses\": "                \
    "[\"a@example.com\", \"b@example.com\"], \"CcAddresses\": [\"c@example.com\"]}, "              \
    "\"ReplyToAddresses\": [\"r@example.com\"], \"Content\": {\"Simple\": {\"Subject\": "          \
    "{\"Data\": \"Hi\"}, \"Body\": {\"Text\": {\"Data\": \"t\"}, \"Html\": {\"Data\": "            \
    "\"<b>h</b>\"}}}}, \"EmailTags\": [{\"Name\": \"t\", \"Value\": \"v\"}], "                     \
    "\"ConfigurationSetName\": \"cs1\", \"ListManagementOptions\": {\"ContactListName\": "         \
    "\"cl\", \"TopicName\": \"tp\"}}"

struct v2_case {
    const char *path;
    const char *body;
    enum seserr_code err; /* SESERR_NONE: success */
    const char *msg;      /* expected error message (exact), or NULL */
    const char *action;
    enum sesreq_kind kind;
    bool raw;
    const char *from[MAXF];
};

#define OUT  "/v2/email/outbound-emails"
#define BULK "/v2/email/outbound-bulk-emails"
#define CVE  "/v2/email/outbound-custom-verification-emails"

static const struct v2_case v2_cases[] = {
    /* captured (§2.2) */
    {OUT, BOTO_V2_SIMPLE, SESERR_NONE, NULL, "SendEmail", SESREQ_SEND, false, {"s@example.com"}},
    {OUT,
     "{\"Content\": {\"Raw\": {\"Data\": \"" BOTO_RAW_B64 "\"}}}",
     SESERR_NONE,
     NULL,
     "SendEmail",
     SESREQ_SEND,
     true,
     {"s@example.com"}},
    {OUT,
     "{\"Content\":{\"Raw\":{\"Data\":\"" BOTO_RAW_B64 "\"}},\"FromEmailAddress\":\"Sender "
     "<s@example.com>\",\"Destination\":{\"ToAddresses\":[\"a@example.com\",\"b@example.com\","
     "\"c@example.com\",\"d@example.com\"]},\"EmailTags\":[{\"Name\":\"k\",\"Value\":\"v\"}],"
     "\"ConfigurationSetName\":\"cs1\"}",
     SESERR_NONE,
     NULL,
     "SendEmail",
     SESREQ_SEND,
     true,
     {"s@example.com", "s@example.com"}},
    {OUT,
     "{\"FromEmailAddress\":\"\\\"Doe, John\\\" <j@example.com>\",\"Content\":{\"Template\":{"
     "\"TemplateName\":\"t\",\"TemplateData\":\"{}\"}}}",
     SESERR_NONE,
     NULL,
     "SendEmail",
     SESREQ_SEND,
     false,
     {"j@example.com"}},
    {OUT,
     "{\"FromEmailAddress\":\"s@example.com\",\"Content\":{\"Simple\":{},\"Raw\":null}}",
     SESERR_NONE,
     NULL,
     "SendEmail",
     SESREQ_SEND,
     false,
     {"s@example.com"}},
    /* bodies that are not JSON objects */
    {OUT, "", SESERR_BAD_REQUEST, NULL, NULL, 0, false, {NULL}},
    {OUT, "{", SESERR_BAD_REQUEST, NULL, NULL, 0, false, {NULL}},
    {OUT, "[]", SESERR_BAD_REQUEST, NULL, NULL, 0, false, {NULL}},
    {OUT, "\"x\"", SESERR_BAD_REQUEST, NULL, NULL, 0, false, {NULL}},
    {OUT, "null", SESERR_BAD_REQUEST, NULL, NULL, 0, false, {NULL}},
    {OUT, "{} {}", SESERR_BAD_REQUEST, NULL, NULL, 0, false, {NULL}},
    {OUT, "]{}", SESERR_BAD_REQUEST, NULL, NULL, 0, false, {NULL}},
    {OUT,
     "{\"FromEmailAddress\":\"s@example.com\",\"FromEmailAddress\":\"t@example.com\","
     "\"Content\":{\"Simple\":{}}}",
     SESERR_BAD_REQUEST,
     NULL,
     NULL,
     0,
     false,
     {NULL}},
    {OUT,
     "{\"FromEmailAddress\":\"s\\u0000@example.com\",\"Content\":{\"Simple\":{}}}",
     SESERR_BAD_REQUEST,
     NULL,
     NULL,
     0,
     false,
     {NULL}},
    /* Content */
    {OUT,
     "{\"FromEmailAddress\":\"s@example.com\"}",
     SESERR_BAD_REQUEST,
     "Content is required",
     NULL,
     0,
     false,
     {NULL}},
    {OUT, "{\"Content\":null}", SESERR_BAD_REQUEST, NULL, NULL, 0, false, {NULL}},
    {OUT, "{\"Content\":\"x\"}", SESERR_BAD_REQUEST, NULL, NULL, 0, false, {NULL}},
    {OUT, "{\"Content\":{}}", SESERR_BAD_REQUEST, NULL, NULL, 0, false, {NULL}},
    {OUT,
     "{\"FromEmailAddress\":\"s@example.com\",\"Content\":{\"Simple\":{},\"Raw\":{}}}",
     SESERR_BAD_REQUEST,
     "Content must hold exactly one of Simple, Raw or Template",
     NULL,
     0,
     false,
     {NULL}},
    {OUT,
     "{\"FromEmailAddress\":\"s@example.com\",\"Content\":{\"Simple\":{},\"Template\":{}}}",
     SESERR_BAD_REQUEST,
     NULL,
     NULL,
     0,
     false,
     {NULL}},
    {OUT,
     "{\"FromEmailAddress\":\"s@example.com\",\"Content\":{\"Simple\":[]}}",
     SESERR_BAD_REQUEST,
     NULL,
     NULL,
     0,
     false,
     {NULL}},
    {OUT,
     "{\"FromEmailAddress\":\"s@example.com\",\"Content\":{\"Other\":{}}}",
     SESERR_BAD_REQUEST,
     NULL,
     NULL,
     0,
     false,
     {NULL}},
    /* FromEmailAddress */
    {OUT,
     "{\"Content\":{\"Simple\":{}}}",
     SESERR_BAD_REQUEST,
     "FromEmailAddress is required",
     NULL,
     0,
     false,
     {NULL}},
    {OUT,
     "{\"Content\":{\"Template\":{}},\"FromEmailAddress\":null}",
     SESERR_BAD_REQUEST,
     "FromEmailAddress is required",
     NULL,
     0,
     false,
     {NULL}},
    {OUT,
     "{\"Content\":{\"Simple\":{}},\"FromEmailAddress\":5}",
     SESERR_BAD_REQUEST,
     NULL,
     NULL,
     0,
     false,
     {NULL}},
    {OUT,
     "{\"Content\":{\"Simple\":{}},\"FromEmailAddress\":[\"s@example.com\"]}",
     SESERR_BAD_REQUEST,
     NULL,
     NULL,
     0,
     false,
     {NULL}},
    {OUT,
     "{\"Content\":{\"Simple\":{}},\"FromEmailAddress\":\"nobody\"}",
     SESERR_BAD_REQUEST,
     "Illegal address",
     NULL,
     0,
     false,
     {NULL}},
    {OUT,
     "{\"Content\":{\"Simple\":{}},\"FromEmailAddress\":\"a@x.com, b@x.com\"}",
     SESERR_BAD_REQUEST,
     NULL,
     NULL,
     0,
     false,
     {NULL}},
    {OUT,
     "{\"Content\":{\"Raw\":{\"Data\":\"" BOTO_RAW_B64 "\"}},\"FromEmailAddress\":\"\"}",
     SESERR_BAD_REQUEST,
     NULL,
     NULL,
     0,
     false,
     {NULL}},
    /* Raw */
    {OUT,
     "{\"Content\":{\"Raw\":{}}}",
     SESERR_BAD_REQUEST,
     "Content.Raw.Data is required",
     NULL,
     0,
     false,
     {NULL}},
    {OUT, "{\"Content\":{\"Raw\":{\"Data\":5}}}", SESERR_BAD_REQUEST, NULL, NULL, 0, false, {NULL}},
    {OUT,
     "{\"Content\":{\"Raw\":{\"Data\":\"!!!!\"}}}",
     SESERR_BAD_REQUEST,
     NULL,
     NULL,
     0,
     false,
     {NULL}},
    {OUT,
     "{\"Content\":{\"Raw\":{\"Data\":\"RnJvbQ==RnJvbQ==\"}}}",
     SESERR_BAD_REQUEST,
     NULL,
     NULL,
     0,
     false,
     {NULL}},
    {OUT,
     "{\"Content\":{\"Raw\":{\"Data\":\"\"}}}",
     SESERR_MESSAGE_REJECTED,
     NULL,
     NULL,
     0,
     false,
     {NULL}},
    {OUT,
     "{\"Content\":{\"Raw\":{\"Data\":\"\"}},\"FromEmailAddress\":\"s@example.com\"}",
     SESERR_NONE,
     NULL,
     "SendEmail",
     SESREQ_SEND,
     true,
     {"s@example.com"}},
    /* SendBulkEmail */
    {BULK,
     "{\"FromEmailAddress\":\"s@example.com\",\"DefaultContent\":{\"Template\":{"
     "\"TemplateName\":\"t\"}},\"BulkEmailEntries\":[{\"Destination\":{\"ToAddresses\":["
     "\"a@example.com\"]}}]}",
     SESERR_NONE,
     NULL,
     "SendBulkEmail",
     SESREQ_SEND_OTHER,
     false,
     {"s@example.com"}},
    {BULK,
     "{\"DefaultContent\":{}}",
     SESERR_BAD_REQUEST,
     "FromEmailAddress is required",
     NULL,
     0,
     false,
     {NULL}},
    {BULK, "{\"FromEmailAddress\":\"x\"}", SESERR_BAD_REQUEST, NULL, NULL, 0, false, {NULL}},
    {BULK, "[1]", SESERR_BAD_REQUEST, NULL, NULL, 0, false, {NULL}},
    /* SendCustomVerificationEmail */
    {CVE,
     "{\"EmailAddress\":\"u@example.com\",\"TemplateName\":\"t\"}",
     SESERR_NONE,
     NULL,
     "SendCustomVerificationEmail",
     SESREQ_SEND_OTHER,
     false,
     {NULL}},
    {CVE, "{\"EmailAddress\":", SESERR_BAD_REQUEST, NULL, NULL, 0, false, {NULL}},
};

/* Check one v2 case (POST). */
static void test_v2_case(const char *path, const char *body, size_t len, const struct v2_case *c,
                         const char *what)
{
    struct sesreq r;
    memset(&r, 0, sizeof r);
    struct seserr e = {SESERR_NONE, ""};
    int rc = sesreq_parse_v2("POST", path, strlen(path), body, len, &r, &e);
    CHECK(r.api == SESREQ_V2, "%s: api", what);
    if (c->err != SESERR_NONE) {
        CHECK(rc == -1, "%s: rc %d, want -1", what, rc);
        CHECK(e.code == c->err, "%s: error %s, want %s (%s)", what, seserr_name(e.code),
              seserr_name(c->err), e.message);
        if (c->msg != NULL)
            CHECK_STR(e.message, c->msg, what);
    } else {
        CHECK(rc == 0, "%s: rc %d (%s: %s)", what, rc, seserr_name(e.code), e.message);
        CHECK(r.action != NULL && strcmp(r.action, c->action) == 0, "%s: action", what);
        CHECK(r.kind == c->kind, "%s: kind %d, want %d", what, r.kind, c->kind);
        CHECK(r.raw == c->raw, "%s: raw", what);
        CHECK(json_is_object(r.json), "%s: JSON kept", what);
        CHECK(r.form.n == 0, "%s: no form on v2", what);
        check_from(&r, c->from, what);
    }
    sesreq_cleanup(&r);
    CHECK(r.json == NULL && r.from == NULL && r.action == NULL, "%s: cleanup zeroes", what);
}

/* The v2 send table. */
static void test_v2(void)
{
    for (size_t i = 0; i < sizeof v2_cases / sizeof v2_cases[0]; i++) {
        const struct v2_case *c = &v2_cases[i];
        char what[64];
        snprintf(what, sizeof what, "v2 case %zu", i);
        test_v2_case(c->path, c->body, strlen(c->body), c, what);
    }
    /* prefixed path, query string */
    const struct v2_case *c = &v2_cases[0];
    test_v2_case(OUT "?x=1", c->body, strlen(c->body), c, "v2 with a query");
    /* a body that is not NUL-terminated */
    char body[] = "{\"FromEmailAddress\":\"s@example.com\",\"Content\":{\"Simple\":{}}}garbage";
    struct v2_case ok = {OUT,         NULL,        SESERR_NONE, NULL,
                         "SendEmail", SESREQ_SEND, false,       {"s@example.com"}};
    test_v2_case(OUT, body, strlen(body) - 7, &ok, "v2 bounded body");
    struct v2_case bad = {OUT, NULL, SESERR_BAD_REQUEST, NULL, NULL, 0, false, {NULL}};
    test_v2_case(OUT, NULL, 0, &bad, "v2 NULL body");
}

/* Nesting is capped at 64 before parsing; brackets in strings do not count. */
static void test_v2_depth(void)
{
    static const int depths[] = {62, 63, 64, 65, 1000, 100000};
    for (size_t k = 0; k < sizeof depths / sizeof depths[0]; k++) {
        int d = depths[k];
        struct buf b = BUF_INIT;
        /* the root object is level 1, Extra's array level 2 */
        buf_adds(&b, "{\"FromEmailAddress\":\"s@example.com\",\"Content\":{\"Simple\":{}},"
                     "\"Extra\":");
        for (int i = 0; i < d - 1; i++)
            buf_addc(&b, '[');
        for (int i = 0; i < d - 1; i++)
            buf_addc(&b, ']');
        buf_adds(&b, "}");
        struct v2_case c = {OUT,
                            NULL,
                            d <= 64 ? SESERR_NONE : SESERR_BAD_REQUEST,
                            NULL,
                            "SendEmail",
                            SESREQ_SEND,
                            false,
                            {"s@example.com"}};
        char what[64];
        snprintf(what, sizeof what, "depth %d", d);
        test_v2_case(OUT, b.data, b.len, &c, what);
        buf_free(&b);
    }
    struct buf b = BUF_INIT;
    buf_adds(&b, "{\"FromEmailAddress\":\"s@example.com\",\"Content\":{\"Simple\":{}},\"S\":\"");
    for (int i = 0; i < 1000; i++)
        buf_adds(&b, "[{\\\"");
    buf_adds(&b, "\"}");
    struct v2_case c = {OUT,         NULL,        SESERR_NONE, NULL,
                        "SendEmail", SESREQ_SEND, false,       {"s@example.com"}};
    test_v2_case(OUT, b.data, b.len, &c, "brackets in a string");
    buf_free(&b);

    /* Unbalanced closers cannot hide openers. */
    buf_adds(&b, "]]]]]]]]]]");
    for (int i = 0; i < 100000; i++)
        buf_addc(&b, '[');
    struct v2_case bad = {OUT, NULL, SESERR_BAD_REQUEST, NULL, NULL, 0, false, {NULL}};
    test_v2_case(OUT, b.data, b.len, &bad, "closers first");
    buf_free(&b);
}

/* sesreq_action_allowed over a list of string constants. */
static bool action_ok(const char *const *list, size_t n, const char *action)
{
    return sesreq_action_allowed((char *const *)list, n, action);
}

/* sesreq_sender_allowed over a list of string constants. */
static bool sender_ok(const char *const *list, size_t n, const char *addr)
{
    return sesreq_sender_allowed((char *const *)list, n, addr);
}

/* Client policy: allowed actions. */
static void test_action_allowed(void)
{
    const char *const all[] = {"*"};
    const char *const some[] = {"SendEmail", "GetSendQuota", "GetAccount"};
    CHECK(action_ok(all, 1, "SendRawEmail"), "* allows all");
    CHECK(action_ok(some, 3, "SendEmail"), "listed");
    CHECK(action_ok(some, 3, "GetAccount"), "listed v2");
    CHECK(action_ok(some, 3, "sendemail"), "case-insensitive");
    CHECK(!action_ok(some, 3, "SendRawEmail"), "not listed");
    CHECK(!action_ok(some, 3, "SendEmailX"), "no prefix match");
    CHECK(!action_ok(some, 3, "Send"), "no partial match");
    CHECK(!action_ok(some, 0, "SendEmail"), "empty list");
    /* an unknown action (NULL) is allowed by "*" only */
    CHECK(action_ok(all, 1, NULL), "* allows an unknown action");
    CHECK(!action_ok(some, 3, NULL), "a list without * refuses an unknown action");
    CHECK(!action_ok(all, 0, NULL), "empty list refuses an unknown action");
    const char *const star_later[] = {"GetAccount", "*"};
    CHECK(action_ok(star_later, 2, "DeleteIdentity"), "* anywhere");
    CHECK(action_ok(star_later, 2, NULL), "* anywhere allows an unknown action");
    const char *const starish[] = {"Send*"};
    CHECK(!action_ok(starish, 1, "SendEmail"), "no wildcard other than *");
    CHECK(!action_ok(starish, 1, NULL), "no wildcard other than * for an unknown action");
    const char *const empty[] = {""};
    CHECK(!action_ok(empty, 1, NULL), "an empty entry is not *");
}

struct sender_case {
    const char *addr;
    bool allowed;
};

static const struct sender_case sender_cases[] = {
    {"s@example.com", true},
    {"S@Example.COM", true},
    {"x@example.com", false},
    {"s@example.com.au", false},
    {"s@sub.example.com", false},
    {"anyone@example.org", true},
    {"anyone@EXAMPLE.ORG", true},
    {"x@sub.example.org", false},
    {"x@evil-example.org", false},
    {"x@evilexample.org", false},
    {"x@example.org.evil.com", false},
    {"x@example.orgx", false},
    {"\"a@example.org\"@evil.com", false},
    {"example.org", false},
    {"@example.org", true},
    {"", false},
    {"ops@mail.example.net", true},
    {"ops@example.net", false},
};

/* Client policy: allowed senders. */
static void test_sender_allowed(void)
{
    const char *const list[] = {"s@example.com", "*@example.org", "*@mail.example.net", "*@"};
    for (size_t i = 0; i < sizeof sender_cases / sizeof sender_cases[0]; i++) {
        const struct sender_case *c = &sender_cases[i];
        CHECK(sender_ok(list, 4, c->addr) == c->allowed, "sender \"%s\": want %d", c->addr,
              c->allowed);
    }
    const char *const all[] = {"s@example.com", "*"};
    CHECK(sender_ok(all, 2, "anyone@anywhere.test"), "* allows all");
    CHECK(!sender_ok(list, 0, "s@example.com"), "empty list");
    CHECK(!sender_ok(all, 2, NULL), "no address");
    const char *const dom[] = {"*@Example.Org"};
    CHECK(sender_ok(dom, 1, "a@example.ORG"), "domain case-insensitive");
    const char *const bare[] = {"example.org"};
    CHECK(!sender_ok(bare, 1, "a@example.org"), "bare domain is not a pattern");
}

/* Cleanup of a zeroed or already cleaned request is harmless. */
static void test_cleanup(void)
{
    struct sesreq r;
    memset(&r, 0, sizeof r);
    sesreq_cleanup(&r);
    sesreq_cleanup(&r);
    CHECK(r.nfrom == 0 && r.json == NULL, "double cleanup");
}

/* Run every sesreq test. */
/* sesreq_json_borrow_raw reads Content.Raw.Data in place only from the one
 * form it is sure of, and the tree it gives equals a whole parse with the
 * mark for the data; sesreq_parse_v2 and sesreq_raw_data agree either way. */
static void test_borrow_raw(void)
{
    static const struct {
        const char *what, *body;
        bool borrowed;
    } cases[] = {
        {"compact",
         "{\"FromEmailAddress\":\"s@x.com\",\"Content\":{\"Raw\":{\"Data\":"
         "\"RnJvbTogc0B4LmNvbQ0KDQpi\"}}}",
         true},
        {"spaces, as botocore writes it",
         "{\"Content\": {\"Raw\": {\"Data\": \"RnJvbTogc0B4LmNvbQ0KDQpi\"}}}", true},
        {"newlines and tabs",
         "{\"Content\":\n{\"Raw\"\t:\r\n{ \"Data\"\n:\"RnJvbTogc0B4LmNvbQ0KDQpi\"}}}", true},
        {"an escape in the data",
         "{\"Content\":{\"Raw\":{\"Data\":\"RnJvbTogc0B4LmNvbQ0KDQp\\u0069\"}}}", false},
        {"the key twice",
         "{\"X\":{\"Raw\":{\"Data\":\"QQ==\"}},\"Content\":{\"Raw\":{\"Data\":"
         "\"RnJvbTogc0B4LmNvbQ0KDQpi\"}}}",
         false},
        {"the mark elsewhere",
         "{\"Content\":{\"Raw\":{\"Data\":\"RnJvbTogc0B4LmNvbQ0KDQpi\"}},"
         "\"EmailTags\":[{\"Name\":\"n\",\"Value\":\"\\u0001sesgate\\u0002\"}]}",
         false},
        {"the mark spelt otherwise elsewhere",
         "{\"Content\":{\"Raw\":{\"Data\":\"RnJvbTogc0B4LmNvbQ0KDQpi\"}},\"EmailTags\":[{\"Name\":"
         "\"n\",\"Value\":\"\\u0001s\\u0065sgate\\u0002\"}]}",
         false},
        {"the key in a string",
         "{\"FromEmailAddress\":\"s@x.com\",\"ReplyToAddresses\":[\"\\\"Raw\\\":"
         "{\\\"Data\\\":\\\"x@y.com\"],\"Content\":{\"Raw\":{\"Data\":\"RnJvbTogc0B4LmNvbQ0KDQpi\"}"
         "}}",
         true},
        {"Raw.Data of another member",
         "{\"Other\":{\"Raw\":{\"Data\":\"QQ==\"}},\"Content\":{\"Raw\":{"
         "\"Data\": \"RnJvbTogc0B4LmNvbQ0KDQpi\"}}}",
         false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *b = cases[i].body, *what = cases[i].what;
        const char *d = NULL;
        size_t dl = 0;
        json_t *t = sesreq_json_borrow_raw(b, strlen(b), 0, &d, &dl);
        CHECK((t != NULL) == cases[i].borrowed, "%s: borrowed %d", what, t != NULL);
        json_t *whole = json_loads(b, 0, NULL);
        if (t != NULL) {
            CHECK(dl == 24 && memcmp(d, "RnJvbTogc0B4LmNvbQ0KDQpi", dl) == 0, "%s: the data", what);
            json_t *raw = json_object_get(json_object_get(whole, "Content"), "Raw");
            json_object_set_new(raw, "Data", json_string(SESREQ_DATA_MARK));
            CHECK(json_equal(t, whole), "%s: the tree", what);
        }
        json_decref(t);
        json_decref(whole);
        struct sesreq r;
        memset(&r, 0, sizeof r);
        struct seserr e = {0};
        static const char path[] = "/v2/email/outbound-emails";
        CHECK(sesreq_parse_v2("POST", path, strlen(path), b, strlen(b), &r, &e) == 0,
              "%s: parse: %s", what, e.message);
        CHECK((r.raw_data != NULL) == cases[i].borrowed, "%s: parsed in place", what);
        const char *got = sesreq_raw_data(&r, &dl);
        CHECK(got != NULL && dl == 24 && memcmp(got, "RnJvbTogc0B4LmNvbQ0KDQpi", dl) == 0,
              "%s: sesreq_raw_data", what);
        /* the raw message's From was read from it (the FromEmailAddress too, when given) */
        bool from_ok = r.nfrom >= 1;
        for (size_t k = 0; k < r.nfrom; k++)
            from_ok = from_ok && strcmp(r.from[k], "s@x.com") == 0;
        CHECK(from_ok, "%s: the senders (%zu)", what, r.nfrom);
        sesreq_drop_params(&r);
        CHECK(r.raw_data == NULL && sesreq_raw_data(&r, &dl) == NULL, "%s: dropped", what);
        sesreq_cleanup(&r);
    }
}

/* The recipients of the sends that are not fanned out. */
static void test_other_recipients(void)
{
    static const struct {
        int api;
        const char *path, *body;
        size_t want;
    } cases[] = {
        {1, NULL,
         "Action=SendBulkTemplatedEmail&Source=s%40x.com&Template=t&DefaultTemplateData=%7B%7D&"
         "Destinations.member.1.Destination.ToAddresses.member.1=a%40x.com&"
         "Destinations.member.1.Destination.ToAddresses.member.2=b%40x.com&"
         "Destinations.member.1.Destination.CcAddresses.member.1=c%40x.com&"
         "Destinations.member.1.Destination.BccAddresses.member.1=d%40x.com&"
         "Destinations.member.1.ReplacementTemplateData=%7B%7D&"
         "Destinations.member.2.Destination.ToAddresses.member.1=e%40x.com",
         5},
        {1, NULL,
         "Action=SendBulkTemplatedEmail&Source=s%40x.com&Template=t&DefaultTemplateData=%7B%7D&"
         "Destinations.member.1.Destination.ToAddresses.member.=a%40x.com&"
         "Destinations.member.x.Destination.ToAddresses.member.1=b%40x.com&"
         "Destinations.member.1.Destination.ToAddresses.member.1x=c%40x.com&"
         "Destinations.member.1.Destination.FooAddresses.member.1=d%40x.com&"
         "Destinations.member.1.Destination.ToAddresses.member.2=",
         1},
        {1, NULL,
         "Action=SendBounce&OriginalMessageId=m&BounceSender=b%40x.com&"
         "BouncedRecipientInfoList.member.1.Recipient=r%40x.com&"
         "BouncedRecipientInfoList.member.2.Recipient=q%40x.com",
         1},
        {1, NULL, "Action=SendCustomVerificationEmail&EmailAddress=a%40x.com&TemplateName=t", 1},
        {2, "/v2/email/outbound-bulk-emails",
         "{\"FromEmailAddress\":\"s@x.com\",\"DefaultContent\":{\"Template\":{\"TemplateName\":"
         "\"t\"}},"
         "\"BulkEmailEntries\":[{\"Destination\":{\"ToAddresses\":[\"a@x.com\",\"b@x.com\"],"
         "\"BccAddresses\":[\"c@x.com\"]}},{\"Destination\":{\"ToAddresses\":[\"d@x.com\"],"
         "\"CcAddresses\":[\"e@x.com\",\"f@x.com\"]}}]}",
         6},
        {2, "/v2/email/outbound-custom-verification-emails",
         "{\"EmailAddress\":\"a@x.com\",\"TemplateName\":\"t\"}", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sesreq r;
        memset(&r, 0, sizeof r);
        struct seserr e = {0};
        const char *b = cases[i].body;
        int rc = cases[i].api == 1 ? sesreq_parse_v1(b, strlen(b), &r, &e)
                                   : sesreq_parse_v2("POST", cases[i].path, strlen(cases[i].path),
                                                     b, strlen(b), &r, &e);
        CHECK(rc == 0 && r.kind == SESREQ_SEND_OTHER, "case %zu: parse: %s", i, e.message);
        CHECK(sesreq_other_recipients(&r) == cases[i].want, "case %zu: %zu recipients, want %zu", i,
              sesreq_other_recipients(&r), cases[i].want);
        sesreq_cleanup(&r);
    }
}

int main(void)
{
    test_other_recipients();
    test_borrow_raw();
    test_api_of();
    test_v1();
    test_v1_request();
    test_v1_static_action();
    test_v1_all_actions();
    test_v1_quote();
    test_v1_limits();
    test_raw();
    test_raw_large();
    test_routes();
    test_v2();
    test_v2_depth();
    test_action_allowed();
    test_sender_allowed();
    test_cleanup();
    return check_done("test_sesreq");
}
