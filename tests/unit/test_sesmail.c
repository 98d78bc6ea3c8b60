/* Unit tests for sesmail: reading sends, building the delivered messages,
 * template rendering, MessageIds, dates and the mailbox simulator. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "check.h"
#include "sesmail.h"
#include "sesreq.h"

/* Parse a v1 body into r and read it into m; returns sesmail's result (or
 * -2 when sesreq refused the request). */
static int test_v1(const char *body, struct sesreq *r, struct sesmail_msg *m, struct seserr *e)
{
    memset(r, 0, sizeof *r);
    memset(m, 0, sizeof *m);
    if (sesreq_parse_v1(body, strlen(body), r, e) < 0)
        return -2;
    return sesmail_from_request(r, m, e);
}

/* Same for a v2 SendEmail body. */
static int test_v2(const char *body, struct sesreq *r, struct sesmail_msg *m, struct seserr *e)
{
    static const char path[] = "/v2/email/outbound-emails";
    memset(r, 0, sizeof *r);
    memset(m, 0, sizeof *m);
    if (sesreq_parse_v2("POST", path, strlen(path), body, strlen(body), r, e) < 0)
        return -2;
    return sesmail_from_request(r, m, e);
}

/* Build the message of recipient i into a fresh C string (free()). */
static char *test_build(const struct sesmail_msg *m, size_t i)
{
    struct buf out = BUF_INIT;
    struct seserr e;
    if (sesmail_build(m, sesmail_recipient(m, i), "0100018c00000000-x", "email.amazonses.com",
                      "Mon, 01 Jan 2024 00:00:00 +0000", &out, &e) < 0) {
        buf_free(&out);
        return NULL;
    }
    buf_cstr(&out);
    return buf_detach(&out, NULL);
}

struct recipients_case {
    const char *body; /* v1 when it starts with "Action", else v2 JSON */
    int rc;           /* sesmail_from_request result */
    enum seserr_code code;
    size_t n;
    const char *first, *last;
};

static const struct recipients_case recipients_cases[] = {
    {"Action=SendEmail&Version=2010-12-01&Source=s%40x.com&Destination.ToAddresses.member.1=a%40x."
     "com&Destination.CcAddresses.member.1=c%40x.com&Destination.BccAddresses.member.1=b%40x.com&"
     "Message.Subject.Data=S&Message.Body.Text.Data=T",
     0, SESERR_NONE, 3, "a@x.com", "b@x.com"},
    {"Action=SendEmail&Version=2010-12-01&Source=s%40x.com&Destination.ToAddresses=&Message."
     "Subject.Data=S&Message.Body.Text.Data=T",
     -1, SESERR_INVALID_PARAMETER, 0, NULL, NULL},
    {"Action=SendEmail&Version=2010-12-01&Source=s%40x.com&Destination.ToAddresses.member.1="
     "nodomain&"
     "Message.Subject.Data=S&Message.Body.Text.Data=T",
     -1, SESERR_INVALID_PARAMETER, 0, NULL, NULL},
    {"Action=SendEmail&Version=2010-12-01&Source=s%40x.com&Destination.ToAddresses.member.1=a%40x."
     "com%0D%0ABcc%3A+e%40x.com&Message.Subject.Data=S&Message.Body.Text.Data=T",
     -1, SESERR_INVALID_PARAMETER, 0, NULL, NULL},
    {"Action=SendEmail&Version=2010-12-01&Source=s%40x.com&Destination.ToAddresses.member.1=a%40x."
     "com&Message.Body.Text.Data=T",
     -1, SESERR_MISSING_PARAMETER, 0, NULL, NULL},
    {"Action=SendTemplatedEmail&Version=2010-12-01&Source=s%40x.com&Destination.ToAddresses.member."
     "1=a%40x.com&Template=t",
     -1, SESERR_MISSING_PARAMETER, 0, NULL, NULL},
    /* raw without Destinations: the To, Cc and Bcc headers */
    {"Action=SendRawEmail&Version=2010-12-01&RawMessage.Data="
     "RnJvbTogcyA8c0B4LmNvbT4NClRvOiBBIDxhQHguY29tPiwgYkB4LmNvbQ0KQmNjOiBoQHguY29tDQoNCmJvZHk%3D",
     0, SESERR_NONE, 3, "a@x.com", "h@x.com"},
    /* raw with Destinations: exactly those */
    {"Action=SendRawEmail&Version=2010-12-01&Destinations.member.1=z%40x.com&RawMessage.Data="
     "RnJvbTogcyA8c0B4LmNvbT4NClRvOiBBIDxhQHguY29tPiwgYkB4LmNvbQ0KQmNjOiBoQHguY29tDQoNCmJvZHk%3D",
     0, SESERR_NONE, 1, "z@x.com", "z@x.com"},
    {"{\"FromEmailAddress\":\"s@x.com\",\"Destination\":{\"ToAddresses\":[\"a@x.com\"],"
     "\"BccAddresses\":[\"b@x.com\"]},\"Content\":{\"Simple\":{\"Subject\":{\"Data\":\"S\"},"
     "\"Body\":{\"Text\":{\"Data\":\"T\"}}}}}",
     0, SESERR_NONE, 2, "a@x.com", "b@x.com"},
    {"{\"FromEmailAddress\":\"s@x.com\",\"Destination\":{\"ToAddresses\":[\"a@x.com\"]},"
     "\"Content\":{\"Simple\":{\"Subject\":{\"Data\":\"S\"},\"Body\":{},\"Attachments\":[{}]}}}",
     -1, SESERR_BAD_REQUEST, 0, NULL, NULL},
    /* a custom header may not set a field SES writes (a Bcc would leak) */
    {"{\"FromEmailAddress\":\"s@x.com\",\"Destination\":{\"ToAddresses\":[\"a@x.com\"]},"
     "\"Content\":{\"Simple\":{\"Subject\":{\"Data\":\"S\"},\"Body\":{},\"Headers\":[{"
     "\"Name\":\"bcc\",\"Value\":\"h@x.com\"}]}}}",
     -1, SESERR_BAD_REQUEST, 0, NULL, NULL},
    {"{\"FromEmailAddress\":\"s@x.com\",\"Destination\":{\"ToAddresses\":[5]},"
     "\"Content\":{\"Simple\":{\"Subject\":{\"Data\":\"S\"},\"Body\":{}}}}",
     -1, SESERR_BAD_REQUEST, 0, NULL, NULL},
    {"{\"Destination\":{\"ToAddresses\":[\"a@x.com\",\"b@x.com\"],\"CcAddresses\":[\"c@x.com\"]},"
     "\"Content\":{\"Raw\":{\"Data\":\"RnJvbTogc0B4LmNvbQ0KDQpi\"}}}",
     0, SESERR_NONE, 3, "a@x.com", "c@x.com"},
};

/* Recipients, their order, and SES's refusals. */
static void test_recipients(void)
{
    for (size_t i = 0; i < sizeof recipients_cases / sizeof recipients_cases[0]; i++) {
        const struct recipients_case *c = &recipients_cases[i];
        struct sesreq r;
        struct sesmail_msg m;
        struct seserr e = {SESERR_NONE, ""};
        int rc = c->body[0] == 'A' ? test_v1(c->body, &r, &m, &e) : test_v2(c->body, &r, &m, &e);
        CHECK(rc == c->rc, "case %zu: rc %d, want %d (%s)", i, rc, c->rc, e.message);
        if (rc == 0 && c->rc == 0) {
            size_t n = sesmail_recipient_count(&m);
            CHECK(n == c->n, "case %zu: %zu recipients, want %zu", i, n, c->n);
            if (n > 0) {
                CHECK_STR(sesmail_recipient(&m, 0), c->first, "first recipient");
                CHECK_STR(sesmail_recipient(&m, n - 1), c->last, "last recipient");
            }
            CHECK(sesmail_recipient(&m, n) == NULL, "case %zu: past the end", i);
        } else if (rc < 0 && c->rc < 0) {
            CHECK(e.code == c->code, "case %zu: code %d, want %d", i, e.code, c->code);
        }
        sesmail_cleanup(&m);
        sesreq_cleanup(&r);
    }
}

/* The formatted message SES builds: headers, Bcc never shown, encodings. */
static void test_build_simple(void)
{
    struct sesreq r;
    struct sesmail_msg m;
    struct seserr e;
    int rc = test_v1("Action=SendEmail&Version=2010-12-01&Source=Me+%3Cs%40x.com%3E&Destination."
                     "ToAddresses.member.1=a%40x.com&Destination.CcAddresses.member.1=c%40x.com&"
                     "Destination.BccAddresses.member.1=h%40x.com&ReplyToAddresses.member.1=r%40x."
                     "com&Message.Subject.Data=Hi&Message.Body.Text.Data=line1%0Aline2",
                     &r, &m, &e);
    CHECK(rc == 0, "parse: %s", e.message);
    char *eml = test_build(&m, 2);
    CHECK(eml != NULL, "build");
    if (eml) {
        const char *want = "Delivered-To: h@x.com\r\n"
                           "From: Me <s@x.com>\r\n"
                           "Reply-To: r@x.com\r\n"
                           "To: a@x.com\r\n"
                           "Cc: c@x.com\r\n"
                           "Subject: Hi\r\n"
                           "Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
                           "Message-ID: <0100018c00000000-x@email.amazonses.com>\r\n"
                           "MIME-Version: 1.0\r\n"
                           "Content-Type: text/plain; charset=UTF-8\r\n"
                           "Content-Transfer-Encoding: 7bit\r\n"
                           "\r\n"
                           "line1\r\nline2";
        CHECK_STR(eml, want, "simple message");
        CHECK(strstr(strchr(eml, '\n'), "h@x.com") == NULL, "Bcc address shown");
    }
    free(eml);
    sesmail_cleanup(&m);
    sesreq_cleanup(&r);
}

struct encoding_case {
    const char *subject; /* UTF-8 */
    const char *text;
    const char *want_subject; /* substring of the output */
    const char *want_cte;
    const char *want_body; /* substring */
};

static const struct encoding_case encoding_cases[] = {
    {"plain", "ascii only", "Subject: plain\r\n", "7bit", "\r\n\r\nascii only"},
    {"Gr\xc3\xbc\xc3\x9f"
     "e",
     "caf\xc3\xa9 ok", "Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n", "quoted-printable", "caf=C3=A9 ok"},
    {"x", "\xe2\x98\x83\xe2\x98\x83\xe2\x98\x83", "Subject: x\r\n", "base64", "4piD4piD4piD"},
    {"x", "a = b  \nend", "Subject: x\r\n", "7bit", "a = b  \r\nend"},
    {"tab\there", "=", "Subject: =?UTF-8?B?dGFiCWhlcmU=?=\r\n", "7bit", "\r\n\r\n="},
};

/* Subject encoded words and the transfer encoding of the body. */
static void test_encodings(void)
{
    for (size_t i = 0; i < sizeof encoding_cases / sizeof encoding_cases[0]; i++) {
        const struct encoding_case *c = &encoding_cases[i];
        struct sesmail_msg m = {0};
        char to[] = "a@x.com";
        char *tov[] = {to};
        m.kind = SESMAIL_SIMPLE;
        m.from = xstrdup("s@x.com");
        m.subject = xstrdup(c->subject);
        m.text = xstrdup(c->text);
        m.to.v = tov;
        m.to.n = 1;
        char *eml = test_build(&m, 0);
        m.to.v = NULL;
        m.to.n = 0;
        CHECK(eml != NULL, "case %zu: build", i);
        if (eml) {
            char cte[64];
            snprintf(cte, sizeof cte, "Content-Transfer-Encoding: %s\r\n", c->want_cte);
            CHECK(strstr(eml, c->want_subject) != NULL, "case %zu: subject in %s", i, eml);
            CHECK(strstr(eml, cte) != NULL, "case %zu: %s in %s", i, cte, eml);
            CHECK(strstr(eml, c->want_body) != NULL, "case %zu: body in %s", i, eml);
        }
        free(eml);
        sesmail_cleanup(&m);
    }
}

/* A long non-ASCII subject is split into folded encoded words that each
 * hold whole characters. */
static void test_long_subject(void)
{
    struct sesmail_msg m = {0};
    char to[] = "a@x.com";
    char *tov[] = {to};
    struct buf s = BUF_INIT;
    for (int i = 0; i < 40; i++)
        buf_adds(&s, "\xc3\xa9");
    m.kind = SESMAIL_SIMPLE;
    m.from = xstrdup("s@x.com");
    m.subject = buf_detach(&s, NULL);
    m.to.v = tov;
    m.to.n = 1;
    char *eml = test_build(&m, 0);
    m.to.v = NULL;
    m.to.n = 0;
    CHECK(eml != NULL, "build");
    if (eml) {
        CHECK(strstr(eml, "?=\r\n =?UTF-8?B?") != NULL, "folded words: %s", eml);
        /* 22 characters (44 bytes) in the first word: 60 base64 characters */
        CHECK(strstr(eml, "Subject: =?UTF-8?B?w6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOpw6nD"
                          "qcOpw6k=?=\r\n =?UTF-8?B?") != NULL,
              "first word: %s", eml);
    }
    free(eml);
    sesmail_cleanup(&m);
}

/* Text and HTML make multipart/alternative with both parts. */
static void test_multipart(void)
{
    struct sesreq r;
    struct sesmail_msg m;
    struct seserr e;
    int rc = test_v2("{\"FromEmailAddress\":\"s@x.com\",\"Destination\":{\"ToAddresses\":[\"a@x."
                     "com\"]},\"Content\":{\"Simple\":{\"Subject\":{\"Data\":\"S\"},\"Body\":{"
                     "\"Text\":{\"Data\":\"t\"},\"Html\":{\"Data\":\"<b>h</b>\"}},\"Headers\":[{"
                     "\"Name\":\"X-Tag\",\"Value\":\"v\"}]}}}",
                     &r, &m, &e);
    CHECK(rc == 0, "parse: %s", e.message);
    char *eml = test_build(&m, 0);
    CHECK(eml != NULL, "build");
    if (eml) {
        CHECK(strstr(eml, "Content-Type: multipart/alternative; boundary=\"=_sesgate_0100018c000"
                          "00000\"\r\n") != NULL,
              "multipart: %s", eml);
        const char *plain = strstr(eml, "Content-Type: text/plain; charset=UTF-8");
        const char *html = strstr(eml, "Content-Type: text/html; charset=UTF-8");
        CHECK(plain != NULL && html != NULL && plain < html, "parts in order");
        CHECK(strstr(eml, "X-Tag: v\r\n") != NULL, "custom header");
        static const char end[] = "\r\n--=_sesgate_0100018c00000000--\r\n";
        size_t n = strlen(eml), k = sizeof end - 1;
        CHECK(n > k && strcmp(eml + n - k, end) == 0, "closing boundary: %s", eml);
    }
    free(eml);
    sesmail_cleanup(&m);
    sesreq_cleanup(&r);
}

struct raw_case {
    const char *raw;
    const char *want; /* after the Delivered-To line */
};

static const struct raw_case raw_cases[] = {
    {"From: s@x.com\r\nTo: a@x.com\r\n\r\nbody",
     "Message-ID: <0100018c00000000-x@email.amazonses.com>\r\n"
     "Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
     "From: s@x.com\r\nTo: a@x.com\r\n\r\nbody"},
    {"Message-Id: <m@x>\nDate: d\nFrom: s@x.com\nTo: a@x.com\nBcc: h@x.com,\n k@x.com\nX: y\n\nb\n",
     "Message-Id: <m@x>\nDate: d\nFrom: s@x.com\nTo: a@x.com\nX: y\n\nb\n"},
    {"Date: d\r\nFrom: s@x.com\r\nBCC : h@x.com\r\nTo: a@x.com\r\n\r\nBcc: not a header\r\n",
     "Message-ID: <0100018c00000000-x@email.amazonses.com>\r\n"
     "Date: d\r\nFrom: s@x.com\r\nTo: a@x.com\r\n\r\nBcc: not a header\r\n"},
};

/* Raw messages keep their bytes, gain Message-ID and Date when missing,
 * and lose their Bcc fields. */
static void test_raw(void)
{
    for (size_t i = 0; i < sizeof raw_cases / sizeof raw_cases[0]; i++) {
        const struct raw_case *c = &raw_cases[i];
        struct sesmail_msg m = {0};
        m.kind = SESMAIL_RAW;
        buf_adds(&m.raw, c->raw);
        char to[] = "a@x.com";
        char *tov[] = {to};
        m.to.v = tov;
        m.to.n = 1;
        char *eml = test_build(&m, 0);
        m.to.v = NULL;
        m.to.n = 0;
        CHECK(eml != NULL, "case %zu: build", i);
        if (eml) {
            bool lf = strstr(c->raw, "\r\n") == NULL;
            const char *first = lf ? "Delivered-To: a@x.com\n" : "Delivered-To: a@x.com\r\n";
            size_t fl = strlen(first);
            CHECK(strncmp(eml, first, fl) == 0, "case %zu: first line", i);
            CHECK_STR(eml + fl, c->want, "raw message");
        }
        free(eml);
        sesmail_cleanup(&m);
    }
}

struct render_case {
    const char *tmpl;
    bool html;
    const char *want;
};

static const struct render_case render_cases[] = {
    {"Hi {{name}}!", false, "Hi Ana & Bo!"},
    {"Hi {{ name }}!", true, "Hi Ana &amp; Bo!"},
    {"Hi {{{name}}}!", true, "Hi Ana & Bo!"},
    {"{{n}} {{f}} {{t}} {{z}} {{missing}}.", false, "3 1.5 true  ."},
    {"{{shop.city}}/{{shop.nope}}/{{name.x}}", false, "Lyon//"},
    {"{{#if x}}y{{/if}}", false, "{{#if x}}y{{/if}}"},
    {"unclosed {{name", false, "unclosed {{name"},
    {"{{{name}}", false, "{{{name}}"},
    {"{{}} and {", false, "{{}} and {"},
    {"<{{q}}>", true, "<&lt;&quot;&#x27;&#x60;&#x3D;&gt;>"},
};

/* Template rendering: values, escaping, what is left as it is. */
static void test_render(void)
{
    json_error_t jerr;
    json_t *data = json_loads("{\"name\":\"Ana & Bo\",\"n\":3,\"f\":1.5,\"t\":true,\"z\":null,"
                              "\"shop\":{\"city\":\"Lyon\"},\"q\":\"<\\\"'`=>\"}",
                              0, &jerr);
    CHECK(data != NULL, "data: %s", jerr.text);
    for (size_t i = 0; i < sizeof render_cases / sizeof render_cases[0]; i++) {
        const struct render_case *c = &render_cases[i];
        struct buf out = BUF_INIT;
        sesmail_render(c->tmpl, strlen(c->tmpl), data, c->html, &out);
        CHECK_STR(buf_cstr(&out), c->want, c->tmpl);
        buf_free(&out);
    }
    json_decref(data);
}

/* A template send renders its stored parts; bad data is refused. */
static void test_apply_template(void)
{
    struct sesmail_msg m = {0};
    struct seserr e;
    m.template_data = xstrdup("{\"who\":\"you\"}");
    CHECK(sesmail_apply_template(&m, "S {{who}}", NULL, "<i>{{who}}</i>", &e) == 0, "apply");
    CHECK_STR(m.subject, "S you", "subject");
    CHECK(m.text == NULL, "no text part");
    CHECK_STR(m.html, "<i>you</i>", "html");
    free(m.template_data);
    m.template_data = xstrdup("[1]");
    CHECK(sesmail_apply_template(&m, "x", NULL, NULL, &e) == -1, "array data refused");
    CHECK(e.code == SESERR_INVALID_PARAMETER, "code %d", e.code);
    sesmail_cleanup(&m);
}

/* MessageIds, UUIDs and dates. */
static void test_ids_and_dates(void)
{
    unsigned char rnd[16];
    for (int i = 0; i < 16; i++)
        rnd[i] = (unsigned char)(0x11 * i);
    char mid[SESMAIL_MESSAGE_ID_LEN + 1];
    sesmail_message_id(1700000000123LL, rnd, mid);
    CHECK(strlen(mid) == SESMAIL_MESSAGE_ID_LEN, "length %zu", strlen(mid));
    CHECK_STR(mid, "0100018bcfe5687b-00112233-4455-4677-8899-aabbccddeeff-000000", "message id");
    char date[64], iso[64];
    sesmail_date(1700000000, date);
    CHECK_STR(date, "Tue, 14 Nov 2023 22:13:20 +0000", "date");
    sesmail_iso_time(1700000000123LL, iso);
    CHECK_STR(iso, "2023-11-14T22:13:20.123Z", "iso");
    sesmail_date(0, date);
    CHECK_STR(date, "Thu, 01 Jan 1970 00:00:00 +0000", "epoch");
}

struct sim_case {
    const char *addr;
    enum sesmail_sim sim;
    const char *name;
};

static const struct sim_case sim_cases[] = {
    {"success@simulator.amazonses.com", SESMAIL_SIM_SUCCESS, NULL},
    {"bounce@simulator.amazonses.com", SESMAIL_SIM_BOUNCE, "bounce"},
    {"Bounce+label1@SIMULATOR.amazonses.com", SESMAIL_SIM_BOUNCE, "bounce"},
    {"ooto@simulator.amazonses.com", SESMAIL_SIM_OOTO, "ooto"},
    {"complaint@simulator.amazonses.com", SESMAIL_SIM_COMPLAINT, "complaint"},
    {"suppressionlist@simulator.amazonses.com", SESMAIL_SIM_SUPPRESSED, "suppressed"},
    {"bounces@simulator.amazonses.com", SESMAIL_SIM_NONE, NULL},
    {"bounce@simulator.amazonses.com.evil", SESMAIL_SIM_NONE, NULL},
    {"bounce@example.com", SESMAIL_SIM_NONE, NULL},
    {"nodomain", SESMAIL_SIM_NONE, NULL},
};

/* The mailbox simulator addresses. */
static void test_simulator(void)
{
    for (size_t i = 0; i < sizeof sim_cases / sizeof sim_cases[0]; i++) {
        const struct sim_case *c = &sim_cases[i];
        enum sesmail_sim s = sesmail_simulator(c->addr);
        CHECK(s == c->sim, "%s: %d, want %d", c->addr, s, c->sim);
        const char *name = sesmail_sim_name(s);
        CHECK((name == NULL && c->name == NULL) || (name && c->name && strcmp(name, c->name) == 0),
              "%s: name %s", c->addr, name ? name : "(null)");
    }
}

/* Bounce and complaint notifications, and the out-of-office reply. */
static void test_notifications(void)
{
    struct sesmail_msg m = {0};
    char a[] = "bounce@simulator.amazonses.com", b[] = "Name <b@x.com>";
    char *tov[] = {a, b};
    m.to.v = tov;
    m.to.n = 2;
    struct buf out = BUF_INIT;
    json_error_t jerr;
    sesmail_notification(SESMAIL_SIM_BOUNCE, "MID", "s@x.com", a, &m, "2024-01-01T00:00:00.000Z",
                         "FB", &out);
    json_t *j = json_loads(buf_cstr(&out), 0, &jerr);
    CHECK(j != NULL, "bounce json: %s", jerr.text);
    const char *type = NULL, *btype = NULL, *rcpt = NULL, *diag = NULL, *mid = NULL, *d2 = NULL;
    CHECK(json_unpack(j, "{s:s, s:{s:s, s:[{s:s, s:s}]}, s:{s:s, s:[s, s]}}", "notificationType",
                      &type, "bounce", "bounceType", &btype, "bouncedRecipients", "emailAddress",
                      &rcpt, "diagnosticCode", &diag, "mail", "messageId", &mid, "destination", &d2,
                      &d2) == 0,
          "bounce shape");
    CHECK(type && strcmp(type, "Bounce") == 0, "type");
    CHECK(btype && strcmp(btype, "Permanent") == 0, "bounceType");
    CHECK(rcpt && strcmp(rcpt, a) == 0, "recipient");
    CHECK(diag && strstr(diag, "550 5.1.1") != NULL, "diagnostic");
    CHECK(mid && strcmp(mid, "MID") == 0, "message id");
    CHECK(d2 && strcmp(d2, "b@x.com") == 0, "destinations are addr-specs");
    json_decref(j);
    buf_reset(&out);
    sesmail_notification(SESMAIL_SIM_COMPLAINT, "MID", NULL, "c@x.com", &m, "t", "FB", &out);
    j = json_loads(buf_cstr(&out), 0, &jerr);
    CHECK(j != NULL, "complaint json: %s", jerr.text);
    CHECK(json_unpack(j, "{s:s, s:{s:[{s:s}]}}", "notificationType", &type, "complaint",
                      "complainedRecipients", "emailAddress", &rcpt) == 0,
          "complaint shape");
    CHECK(type && strcmp(type, "Complaint") == 0, "complaint type");
    CHECK(json_object_get(json_object_get(j, "mail"), "source") == NULL, "no source");
    json_decref(j);
    buf_reset(&out);
    sesmail_ooto_reply("ooto@simulator.amazonses.com", "s@x.com", "MID", "email.amazonses.com",
                       "RID", "D", &out);
    const char *o = buf_cstr(&out);
    CHECK(strncmp(o, "Delivered-To: s@x.com\r\n", 23) == 0, "reply delivered to the sender");
    CHECK(strstr(o, "In-Reply-To: <MID@email.amazonses.com>\r\n") != NULL, "in reply to");
    CHECK(strstr(o, "Auto-Submitted: auto-replied\r\n") != NULL, "auto submitted");
    CHECK(strstr(o, "Subject: Out of the office\r\n") != NULL, "subject");
    buf_free(&out);
    m.to.v = NULL;
    m.to.n = 0;
    sesmail_cleanup(&m);
}

struct tags_case {
    const char *body; /* v1 when it starts with "Action", else v2 JSON */
    int rc;
    enum seserr_code code;
    const char *tags; /* the tags joined with '|' (rc 0) */
};

static const struct tags_case tags_cases[] = {
    {"Action=SendEmail&Version=2010-12-01&Source=s%40x.com&Destination.ToAddresses.member.1=a%40x."
     "com&Message.Subject.Data=S&Tags.member.1.Name=k-1&Tags.member.1.Value=v_1&Tags.member.2.Name="
     "e&Tags.member.2.Value=",
     0, SESERR_NONE, "k-1=v_1|e="},
    {"Action=SendEmail&Version=2010-12-01&Source=s%40x.com&Destination.ToAddresses.member.1=a%40x."
     "com&Message.Subject.Data=S&Tags.member.1.Name=k&Tags.member.1.Value=a+b",
     -1, SESERR_INVALID_PARAMETER, NULL},
    {"Action=SendEmail&Version=2010-12-01&Source=s%40x.com&Destination.ToAddresses.member.1=a%40x."
     "com&Message.Subject.Data=S&Tags.member.1.Name=&Tags.member.1.Value=v",
     -1, SESERR_INVALID_PARAMETER, NULL},
    {"Action=SendEmail&Version=2010-12-01&Source=s%40x.com&Destination.ToAddresses.member.1=a%40x."
     "com&Message.Subject.Data=S&Tags.member.1.Value=v",
     -1, SESERR_MISSING_PARAMETER, NULL},
    {"{\"FromEmailAddress\":\"s@x.com\",\"Destination\":{\"ToAddresses\":[\"a@x.com\"]},"
     "\"EmailTags\":[{\"Name\":\"n\",\"Value\":\"v\"}],\"Content\":{\"Simple\":{\"Subject\":{"
     "\"Data\":\"S\"},\"Body\":{}}}}",
     0, SESERR_NONE, "n=v"},
    {"{\"FromEmailAddress\":\"s@x.com\",\"Destination\":{\"ToAddresses\":[\"a@x.com\"]},"
     "\"EmailTags\":[{\"Name\":\"n=\",\"Value\":\"v\"}],\"Content\":{\"Simple\":{\"Subject\":{"
     "\"Data\":\"S\"},\"Body\":{}}}}",
     -1, SESERR_INVALID_PARAMETER, NULL},
    {"{\"FromEmailAddress\":\"s@x.com\",\"Destination\":{\"ToAddresses\":[\"a@x.com\"]},"
     "\"EmailTags\":{\"Name\":\"n\"},\"Content\":{\"Simple\":{\"Subject\":{\"Data\":\"S\"},"
     "\"Body\":{}}}}",
     -1, SESERR_BAD_REQUEST, NULL},
};

/* Message tags: read and checked as SES checks them, and shown in a
 * simulator notification's mail.tags. */
static void test_tags(void)
{
    for (size_t i = 0; i < sizeof tags_cases / sizeof tags_cases[0]; i++) {
        const struct tags_case *c = &tags_cases[i];
        struct sesreq r;
        struct sesmail_msg m;
        struct seserr e = {SESERR_NONE, ""};
        int rc = strncmp(c->body, "Action", 6) == 0 ? test_v1(c->body, &r, &m, &e)
                                                    : test_v2(c->body, &r, &m, &e);
        CHECK(rc == c->rc, "tags case %zu: rc %d (%s)", i, rc, e.message);
        if (rc == 0 && c->rc == 0) {
            struct buf j = BUF_INIT;
            for (size_t k = 0; k < m.tags.n; k++)
                buf_printf(&j, "%s%s", k ? "|" : "", m.tags.v[k]);
            CHECK_STR(buf_cstr(&j), c->tags, "tags");
            buf_free(&j);
        } else if (rc == -1) {
            CHECK(e.code == c->code, "tags case %zu: code %d", i, (int)e.code);
        }
        sesmail_cleanup(&m);
        sesreq_cleanup(&r);
    }
    struct sesmail_msg m = {0};
    sesmail_list_add(&m.to, "complaint@simulator.amazonses.com", 33);
    sesmail_list_add(&m.tags, "k=1", 3);
    sesmail_list_add(&m.tags, "j=", 2);
    sesmail_list_add(&m.tags, "k=2", 3);
    struct buf out = BUF_INIT;
    json_error_t jerr;
    sesmail_notification(SESMAIL_SIM_COMPLAINT, "MID", "s@x.com", m.to.v[0], &m, "t", "FB", &out);
    json_t *j = json_loads(buf_cstr(&out), 0, &jerr);
    json_t *want = json_loads("{\"k\":[\"1\",\"2\"],\"j\":[\"\"]}", 0, &jerr);
    CHECK(json_equal(json_object_get(json_object_get(j, "mail"), "tags"), want), "mail.tags: %s",
          buf_cstr(&out));
    json_decref(j);
    json_decref(want);
    buf_free(&out);
    sesmail_cleanup(&m);
}

/* Addr-specs out of display-name forms. */
static void test_addr_spec(void)
{
    struct buf b = BUF_INIT;
    CHECK(sesmail_addr_spec("Name <a@x.com>", &b) == 0 && strcmp(b.data, "a@x.com") == 0, "angle");
    CHECK(sesmail_addr_spec("a@x.com", &b) == 0 && strcmp(b.data, "a@x.com") == 0, "bare");
    CHECK(sesmail_addr_spec("@x.com", &b) == -1, "no local part");
    CHECK(sesmail_addr_spec("a@", &b) == -1, "no domain");
    CHECK(sesmail_addr_spec("Name <a@x.com", &b) == -1, "unclosed");
    buf_free(&b);
}

int main(void)
{
    test_recipients();
    test_build_simple();
    test_encodings();
    test_long_subject();
    test_multipart();
    test_raw();
    test_render();
    test_apply_template();
    test_ids_and_dates();
    test_simulator();
    test_notifications();
    test_addr_spec();
    test_tags();
    return check_done("sesmail");
}
