/* Unit tests for fanout: batch decision, recipients, opt-out tag stripping,
 * templates, and the rendering of every copy (v1 form and v2 JSON, Simple,
 * Template and Raw content). Every rendered copy is parsed back with sesreq
 * and compared with the original request, parameter by parameter. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "check.h"
#include "copybody.h"
#include "fanout.h"
#include "rfc5322.h"
#include "util.h"

#define MAXR    12
#define V2_PATH "/v2/email/outbound-emails"

/* body with "{RAW}" replaced by the base64 of mime (form-encoded for v1). */
static void build_body(int api, const char *body, const char *mime, struct buf *out)
{
    const char *at = mime ? strstr(body, "{RAW}") : NULL;
    if (at == NULL) {
        buf_adds(out, body);
        return;
    }
    buf_add(out, body, (size_t)(at - body));
    struct buf enc = BUF_INIT;
    check_b64(mime, strlen(mime), &enc);
    if (api == 1)
        form_encode(enc.data, enc.len, out);
    else
        buf_add(out, enc.data, enc.len);
    buf_adds(out, at + 5);
    buf_free(&enc);
}

/* Parse a v1 or v2 send body into r. */
static int parse(int api, const char *body, size_t len, struct sesreq *r, struct seserr *e)
{
    memset(r, 0, sizeof *r);
    if (api == 1)
        return sesreq_parse_v1(body, len, r, e);
    return sesreq_parse_v2("POST", V2_PATH, strlen(V2_PATH), body, len, r, e);
}

/* True when v1 parameter name is a destination of a raw (or formatted) send. */
static bool is_dest(const char *name, bool raw)
{
    const char *d = raw ? "Destinations" : "Destination";
    size_t n = strlen(d);
    return strncmp(name, d, n) == 0 && (name[n] == '\0' || name[n] == '.');
}

/* The v1 tags of f as "name=value;" pairs by index, the opt-out tag left out. */
static void v1_tags(const struct form *f, struct buf *out)
{
    for (int i = 1; i < 200; i++) {
        char nn[64], vn[64];
        snprintf(nn, sizeof nn, "Tags.member.%d.Name", i);
        snprintf(vn, sizeof vn, "Tags.member.%d.Value", i);
        const char *n = form_get(f, nn, NULL), *v = form_get(f, vn, NULL);
        if (n == NULL || strcasecmp(n, FANOUT_TAG_NAME) == 0)
            continue;
        buf_printf(out, "%s=%s;", n, v ? v : "(null)");
    }
}

/* The v1 list prefix.1, prefix.2 ... of f as "a;b;". */
static void v1_list(const struct form *f, const char *prefix, struct buf *out)
{
    for (int i = 1;; i++) {
        char name[96];
        snprintf(name, sizeof name, "%s%d", prefix, i);
        const char *v = form_get(f, name, NULL);
        if (v == NULL)
            break;
        buf_printf(out, "%s;", v);
    }
}

/* What copy k of p must carry as "a;b;" for the riders of kind (all riders
 * when kind is FANOUT_TO, the raw envelope). */
static void want_riders(const struct fanout_plan *p, size_t k, int kind, struct buf *out)
{
    for (size_t i = 0; k == 0 && i < p->nriders; i++)
        if (kind == FANOUT_TO || (int)p->riders[i].kind == kind)
            buf_printf(out, "%s;", p->riders[i].addr);
}

/* Check the raw message of copy k against the template message tmsg. */
static void check_raw_copy(const struct fanout_plan *p, size_t k, const struct buf *tmsg,
                           const char *msg, size_t len, const char *what)
{
    if (p->dkim_envelope_only) {
        CHECK(len == tmsg->len && memcmp(msg, tmsg->data, len) == 0, "%s copy %zu: unchanged", what,
              k);
        return;
    }
    struct buf want = BUF_INIT, to = BUF_INIT, cc = BUF_INIT, tcc = BUF_INIT, bcc = BUF_INIT;
    bool dkim = true;
    rfc5322_rewrite_for_copy(tmsg->data, tmsg->len, p->to[k], k == 0, &want, &dkim);
    CHECK(!dkim && want.len == len && memcmp(want.data, msg, len) == 0, "%s copy %zu: rewrite",
          what, k);
    CHECK(rfc5322_header_get_all(msg, len, "To", &to) == 1, "%s copy %zu: one To", what, k);
    CHECK_STR(buf_cstr(&to), p->to[k], what);
    CHECK(rfc5322_header_get_all(msg, len, "Bcc", &bcc) == 0, "%s copy %zu: no Bcc", what, k);
    int ncc = rfc5322_header_get_all(msg, len, "Cc", &cc);
    int tncc = rfc5322_header_get_all(tmsg->data, tmsg->len, "Cc", &tcc);
    CHECK(ncc == (k == 0 ? tncc : 0), "%s copy %zu: %d Cc fields", what, k, ncc);
    size_t hb = rfc5322_header_end(msg, len), th = rfc5322_header_end(tmsg->data, tmsg->len);
    CHECK(len - hb == tmsg->len - th && memcmp(msg + hb, tmsg->data + th, len - hb) == 0,
          "%s copy %zu: body unchanged", what, k);
    buf_free(&want);
    buf_free(&to);
    buf_free(&cc);
    buf_free(&tcc);
    buf_free(&bcc);
}

/* Render every v1 copy of p and compare it with the original request o. */
static void check_v1_copies(const struct sesreq *o, const struct fanout_plan *p,
                            const char *const *want_msgs, const char *what)
{
    struct buf tmsg = BUF_INIT;
    struct sesreq t;
    struct seserr e = {SESERR_NONE, ""};
    CHECK(parse(1, p->template.data, p->template.len, &t, &e) == 0 || p->raw,
          "%s: template parses: %s", what, e.message);
    if (p->raw) {
        const char *d = form_get(&t.form, "RawMessage.Data", NULL);
        CHECK(d != NULL && util_base64_decode(d, strlen(d), &tmsg) == 0, "%s: template message",
              what);
    }
    for (size_t k = 0; k < p->nto; k++) {
        struct buf out = BUF_INIT, got = BUF_INIT, want = BUF_INIT;
        struct sesreq c;
        CHECK(copybody_render_plan(p, k, &out, &e) == 0, "%s copy %zu: %s", what, k, e.message);
        int rc = parse(1, buf_cstr(&out), out.len, &c, &e);
        CHECK(rc == 0, "%s copy %zu parses: %s", what, k, e.message);
        if (rc != 0) {
            sesreq_cleanup(&c);
            buf_free(&out);
            continue;
        }
        CHECK_STR(c.action, o->action, what);
        /* every other parameter byte-identical, both ways */
        for (size_t i = 0; i < o->form.n; i++) {
            const struct form_param *fp = &o->form.params[i];
            if (is_dest(fp->name, p->raw) || strncmp(fp->name, "Tags.", 5) == 0 ||
                (p->raw && strcmp(fp->name, "RawMessage.Data") == 0))
                continue;
            size_t len;
            const char *v = form_get(&c.form, fp->name, &len);
            CHECK(v != NULL && len == fp->value_len && memcmp(v, fp->value, len) == 0,
                  "%s copy %zu: %s kept", what, k, fp->name);
        }
        for (size_t i = 0; i < c.form.n; i++) {
            const char *name = c.form.params[i].name;
            CHECK(is_dest(name, p->raw) || strncmp(name, "Tags.", 5) == 0 ||
                      form_get(&o->form, name, NULL) != NULL,
                  "%s copy %zu: %s added", what, k, name);
        }
        v1_tags(&o->form, &want);
        v1_tags(&c.form, &got);
        CHECK_STR(buf_cstr(&got), buf_cstr(&want), what);
        buf_reset(&got);
        buf_reset(&want);
        if (!p->raw) {
            const char *lists[] = {"Destination.ToAddresses.member.",
                                   "Destination.CcAddresses.member.",
                                   "Destination.BccAddresses.member."};
            for (int kind = FANOUT_TO; kind <= FANOUT_BCC; kind++) {
                if (kind == FANOUT_TO)
                    buf_printf(&want, "%s;", p->to[k]);
                else
                    want_riders(p, k, kind, &want);
                v1_list(&c.form, lists[kind], &got);
                CHECK_STR(buf_cstr(&got), buf_cstr(&want), what);
                buf_reset(&got);
                buf_reset(&want);
            }
        } else {
            buf_printf(&want, "%s;", p->to[k]);
            want_riders(p, k, FANOUT_TO, &want);
            v1_list(&c.form, "Destinations.member.", &got);
            CHECK_STR(buf_cstr(&got), buf_cstr(&want), what);
            struct buf msg = BUF_INIT;
            const char *d = form_get(&c.form, "RawMessage.Data", NULL);
            CHECK(d != NULL && util_base64_decode(d, strlen(d), &msg) == 0, "%s: copy message",
                  what);
            check_raw_copy(p, k, &tmsg, buf_cstr(&msg), msg.len, what);
            if (want_msgs != NULL && k < MAXR && want_msgs[k] != NULL)
                CHECK_STR(buf_cstr(&msg), want_msgs[k], what);
            buf_free(&msg);
        }
        sesreq_cleanup(&c);
        buf_free(&out);
        buf_free(&got);
        buf_free(&want);
    }
    sesreq_cleanup(&t);
    buf_free(&tmsg);
}

/* EmailTags of the v2 body j without the opt-out tag (a new array). */
static json_t *v2_tags(json_t *j)
{
    json_t *out = json_array(), *t;
    size_t i;
    json_array_foreach(json_object_get(j, "EmailTags"), i, t)
    {
        const char *n = json_string_value(json_object_get(t, "Name"));
        if (n == NULL || strcasecmp(n, FANOUT_TAG_NAME) != 0)
            json_array_append(out, t);
    }
    return out;
}

/* The strings of the array as "a;b;". */
static void v2_list(json_t *a, struct buf *out)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        buf_printf(out, "%s;", json_string_value(v));
    }
}

/* Render every v2 copy of p and compare it with the original request o. */
static void check_v2_copies(const struct sesreq *o, const struct fanout_plan *p,
                            const char *const *want_msgs, const char *what)
{
    struct buf tmsg = BUF_INIT;
    json_error_t jerr;
    json_t *t = json_loadb(p->template.data, p->template.len, 0, &jerr);
    CHECK(json_is_object(t) && json_object_get(t, "Destination") == NULL, "%s: template", what);
    if (p->raw) {
        json_t *d = json_object_get(json_object_get(json_object_get(t, "Content"), "Raw"), "Data");
        CHECK(json_is_string(d) &&
                  util_base64_decode(json_string_value(d), json_string_length(d), &tmsg) == 0,
              "%s: template message", what);
    }
    json_decref(t);
    for (size_t k = 0; k < p->nto; k++) {
        struct buf out = BUF_INIT, got = BUF_INIT, want = BUF_INIT;
        struct sesreq c;
        struct seserr e = {SESERR_NONE, ""};
        CHECK(copybody_render_plan(p, k, &out, &e) == 0, "%s copy %zu: %s", what, k, e.message);
        int rc = parse(2, buf_cstr(&out), out.len, &c, &e);
        CHECK(rc == 0 && c.kind == SESREQ_SEND, "%s copy %zu parses: %s", what, k, e.message);
        if (rc != 0) {
            sesreq_cleanup(&c);
            buf_free(&out);
            continue;
        }
        const char *key;
        json_t *v;
        json_object_foreach(o->json, key, v)
        {
            if (strcmp(key, "Destination") == 0 || strcmp(key, "EmailTags") == 0 ||
                (p->raw && strcmp(key, "Content") == 0))
                continue;
            CHECK(json_equal(v, json_object_get(c.json, key)), "%s copy %zu: %s kept", what, k,
                  key);
        }
        json_object_foreach(c.json, key, v)
        {
            CHECK(strcmp(key, "Destination") == 0 || json_object_get(o->json, key) != NULL,
                  "%s copy %zu: %s added", what, k, key);
        }
        json_t *ot = v2_tags(o->json), *ct = json_object_get(c.json, "EmailTags");
        CHECK(json_array_size(ot) == 0 ? ct == NULL : json_equal(ot, ct), "%s copy %zu: tags", what,
              k);
        json_decref(ot);
        json_t *dest = json_object_get(c.json, "Destination");
        const char *keys[] = {"ToAddresses", "CcAddresses", "BccAddresses"};
        for (int kind = FANOUT_TO; kind <= FANOUT_BCC; kind++) {
            if (kind == FANOUT_TO) {
                buf_printf(&want, "%s;", p->to[k]);
                if (p->raw)
                    want_riders(p, k, FANOUT_TO, &want);
            } else if (!p->raw) {
                want_riders(p, k, kind, &want);
            }
            json_t *a = json_object_get(dest, keys[kind]);
            CHECK(a == NULL || json_array_size(a) > 0, "%s copy %zu: no empty list", what, k);
            v2_list(a, &got);
            CHECK_STR(buf_cstr(&got), buf_cstr(&want), what);
            buf_reset(&got);
            buf_reset(&want);
        }
        if (p->raw) {
            json_t *oc = json_object_get(o->json, "Content"),
                   *cc = json_object_get(c.json, "Content");
            CHECK(json_object_size(oc) == 1 && json_object_size(cc) == 1 &&
                      json_object_size(json_object_get(cc, "Raw")) == 1,
                  "%s copy %zu: Content.Raw only", what, k);
            CHECK(json_is_string(json_object_get(json_object_get(cc, "Raw"), "Data")),
                  "%s copy %zu: Content.Raw.Data", what, k);
            size_t dl = 0;
            const char *d = sesreq_raw_data(&c, &dl);
            struct buf msg = BUF_INIT;
            CHECK(d != NULL && util_base64_decode(d, dl, &msg) == 0, "%s copy %zu: message", what,
                  k);
            check_raw_copy(p, k, &tmsg, buf_cstr(&msg), msg.len, what);
            if (want_msgs != NULL && k < MAXR && want_msgs[k] != NULL)
                CHECK_STR(buf_cstr(&msg), want_msgs[k], what);
            buf_free(&msg);
        } else {
            CHECK(
                json_equal(json_object_get(o->json, "Content"), json_object_get(c.json, "Content")),
                "%s copy %zu: Content kept", what, k);
        }
        sesreq_cleanup(&c);
        buf_free(&out);
        buf_free(&got);
        buf_free(&want);
    }
    buf_free(&tmsg);
}

/* Render every copy of p and check it against o. */
static void check_copies(const struct sesreq *o, const struct fanout_plan *p,
                         const char *const *want_msgs, const char *what)
{
    if (p->api == SESREQ_V1)
        check_v1_copies(o, p, want_msgs, what);
    else
        check_v2_copies(o, p, want_msgs, what);
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

/* BOTO_SEND_EMAIL's template: re-encoded (%20 for a space), no destination. */
#define BOTO_SEND_EMAIL_TEMPLATE                                                                   \
    "Action=SendEmail&Version=2010-12-01&Source=Sender%20%3Cs%40example.com%3E&Message.Subject."   \
    "Data=Hi%20%C3%BC&Message.Subject.Charset=UTF-8&Message.Body.Text.Data=text%20body&Message."   \
    "Body.Html.Data=%3Cb%3Ehtml%3C%2Fb%3E&Message.Body.Html.Charset=UTF-8&ReplyToAddresses."       \
    "member.1=r%40example.com&ReturnPath=bounce%40example.com&SourceArn=arn%3Aaws%3Ases%3Aus-"     \
    "east-1%3A123456789012%3Aidentity%2Fexample.com&Tags.member.1.Name=t1&Tags.member.1.Value="    \
    "v1&ConfigurationSetName=cs1"

#define JS_SEND_EMAIL                                                                              \
    "Action=SendEmail&Version=2010-12-01&Source=A%20B%20%3Cs%40e.com%3E&Destination."              \
    "ToAddresses.member.1=a%40example.com&Destination.ToAddresses.member.2=B%20%3Cb%40example."    \
    "com%3E&Destination.ToAddresses.member.3=c%40example.com&Message.Subject.Data=Hi%20%C3%BC&"    \
    "Message.Body.Text.Data=it%27s%20%28ok%29%21%2A"

#define TEMPLATED                                                                                  \
    "Action=SendTemplatedEmail&Version=2010-12-01&Source=s%40example.com&Destination."             \
    "ToAddresses.member.1=a%40example.com&Destination.ToAddresses.member.2=b%40example.com&"       \
    "Destination.BccAddresses.member.1=audit%40example.com&Template=welcome&TemplateData=%7B%"     \
    "22name%22%3A%22%C3%BC%20%26%20%3D%22%7D&Tags.member.1.Name=sesgate-fanout&Tags.member.1."     \
    "Value=on&Tags.member.2.Name=campaign&Tags.member.2.Value=spring"

/* php-aws-ses: ksorted parameters, list indexes sorted as text. */
#define PHP_KSORT                                                                                  \
    "Action=SendEmail&Destination.ToAddresses.member.1=t1%40x.com&Destination.ToAddresses."        \
    "member.10=t10%40x.com&Destination.ToAddresses.member.11=t11%40x.com&Destination."             \
    "ToAddresses.member.2=t2%40x.com&Destination.ToAddresses.member.3=t3%40x.com&Destination."     \
    "ToAddresses.member.4=t4%40x.com&Destination.ToAddresses.member.5=t5%40x.com&Destination."     \
    "ToAddresses.member.6=t6%40x.com&Destination.ToAddresses.member.7=t7%40x.com&Destination."     \
    "ToAddresses.member.8=t8%40x.com&Destination.ToAddresses.member.9=t9%40x.com&Message.Body."    \
    "Text.Data=b&Message.Subject.Data=s&Source=s%40x.com&Version=2010-12-01"

/* Tags around an opt-out tag: 11 tags, the second one removed. */
#define MANY_TAGS                                                                                  \
    "Action=SendEmail&Version=2010-12-01&Source=s%40x.com&Destination.ToAddresses.member.1=a%"     \
    "40x.com&Destination.ToAddresses.member.2=b%40x.com&Message.Subject.Data=s&Message.Body."      \
    "Text.Data=b&Tags.member.1.Name=k1&Tags.member.1.Value=v1&Tags.member.10.Name=k10&Tags."       \
    "member.10.Value=v10&Tags.member.11.Name=k11&Tags.member.11.Value=v11&Tags.member.2.Name="     \
    "sesgate-fanout&Tags.member.2.Value=OFF&Tags.member.3.Name=k3&Tags.member.3.Value=v3"

#define MANY_TAGS_FORWARD                                                                          \
    "Action=SendEmail&Version=2010-12-01&Source=s%40x.com&Destination.ToAddresses.member.1=a%"     \
    "40x.com&Destination.ToAddresses.member.2=b%40x.com&Message.Subject.Data=s&Message.Body."      \
    "Text.Data=b&Tags.member.1.Name=k1&Tags.member.1.Value=v1&Tags.member.3.Name=k10&Tags."        \
    "member.3.Value=v10&Tags.member.4.Name=k11&Tags.member.4.Value=v11&Tags.member.2.Name=k3&"     \
    "Tags.member.2.Value=v3"

#define V2_BOTO_SIMPLE                                                                             \
    "{\"FromEmailAddress\": \"s@example.com\", \"Destination\": {\"ToAddresses\": "                \
    "[\"a@example.com\", \"b@example.com\"], \"CcAddresses\": [\"c@example.com\"]}, "              \
    "\"ReplyToAddresses\": [\"r@example.com\"], \"Content\": {\"Simple\": {\"Subject\": "          \
    "{\"Data\": \"Hi\"}, \"Body\": {\"Text\": {\"Data\": \"t\"}, \"Html\": {\"Data\": "            \
    "\"<b>h</b>\"}}}}, \"EmailTags\": [{\"Name\": \"t\", \"Value\": \"v\"}], "                     \
    "\"ConfigurationSetName\": \"cs1\", \"ListManagementOptions\": {\"ContactListName\": "         \
    "\"cl\", \"TopicName\": \"tp\"}}"

#define V2_BOTO_SIMPLE_TEMPLATE                                                                    \
    "{\"FromEmailAddress\":\"s@example.com\",\"ReplyToAddresses\":[\"r@example.com\"],"            \
    "\"Content\":{\"Simple\":{\"Subject\":{\"Data\":\"Hi\"},\"Body\":{\"Text\":{\"Data\":\"t\"},"  \
    "\"Html\":{\"Data\":\"<b>h</b>\"}}}},\"EmailTags\":[{\"Name\":\"t\",\"Value\":\"v\"}],"        \
    "\"ConfigurationSetName\":\"cs1\",\"ListManagementOptions\":{\"ContactListName\":\"cl\","      \
    "\"TopicName\":\"tp\"}}"

#define V2_ATTACH                                                                                  \
    "{\"FromEmailAddress\":\"Shop <s@example.com>\",\"Destination\":{\"ToAddresses\":[\"a@x."      \
    "com\",\"b@x.com\"],\"BccAddresses\":[\"z@x.com\"]},\"Content\":{\"Simple\":{\"Subject\":{"    \
    "\"Data\":\"\\u00fcber\",\"Charset\":\"UTF-8\"},\"Body\":{\"Text\":{\"Data\":\"x\"}},"         \
    "\"Headers\":[{\"Name\":\"X-A\",\"Value\":\"1\"}],\"Attachments\":[{\"RawContent\":"           \
    "\"aGVsbG8=\",\"FileName\":\"a.txt\",\"ContentType\":\"text/plain\"}]}},\"EmailTags\":[{"      \
    "\"Name\":\"sesgate-fanout\",\"Value\":\"on\"}],\"TenantName\":\"t1\",\"Extra\":[1,2.5,null,"  \
    "true,{\"k\":\"v\"}]}"

#define V2_TEMPLATE                                                                                \
    "{\"FromEmailAddress\":\"s@example.com\",\"Destination\":{\"ToAddresses\":[\"a@x.com\","       \
    "\"b@x.com\",\"c@x.com\"],\"CcAddresses\":[\"cc@x.com\"],\"BccAddresses\":[\"bcc@x.com\"]},"   \
    "\"Content\":{\"Template\":{\"TemplateName\":\"t\",\"TemplateData\":\"{\\\"n\\\":1}\"}},"      \
    "\"EmailTags\":[{\"Name\":\"a\",\"Value\":\"1\"},{\"Name\":\"sesgate-fanout\",\"Value\":"      \
    "\"off\"},{\"Name\":\"b\",\"Value\":\"2\"}]}"

#define V2_TEMPLATE_FORWARD                                                                        \
    "{\"FromEmailAddress\":\"s@example.com\",\"Destination\":{\"ToAddresses\":[\"a@x.com\","       \
    "\"b@x.com\",\"c@x.com\"],\"CcAddresses\":[\"cc@x.com\"],\"BccAddresses\":[\"bcc@x.com\"]},"   \
    "\"Content\":{\"Template\":{\"TemplateName\":\"t\",\"TemplateData\":\"{\\\"n\\\":1}\"}},"      \
    "\"EmailTags\":[{\"Name\":\"a\",\"Value\":\"1\"},{\"Name\":\"b\",\"Value\":\"2\"}]}"

/* nodemailer: every recipient in Destination.ToAddresses, To and Cc headers. */
#define NODEMAILER_MIME                                                                            \
    "From: Sender <s@example.com>\r\nTo: A <a@example.com>, b@example.com\r\nCc: "                 \
    "c@example.com\r\nSubject: hi\r\nMessage-ID: <1@example.com>\r\nDate: Thu, 1 Jan 2026 "        \
    "00:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nbody\r\n"
#define NODEMAILER_BODY                                                                            \
    "{\"Content\":{\"Raw\":{\"Data\":\"{RAW}\"}},\"FromEmailAddress\":\"Sender "                   \
    "<s@example.com>\",\"Destination\":{\"ToAddresses\":[\"a@example.com\",\"b@example.com\","     \
    "\"c@example.com\",\"d@example.com\"]},\"EmailTags\":[{\"Name\":\"k\",\"Value\":\"v\"}],"      \
    "\"ConfigurationSetName\":\"cs1\"}"
#define NODEMAILER_COPY0                                                                           \
    "From: Sender <s@example.com>\r\nTo: a@example.com\r\nCc: c@example.com\r\nSubject: "          \
    "hi\r\nMessage-ID: <1@example.com>\r\nDate: Thu, 1 Jan 2026 00:00:00 +0000\r\nMIME-Version: "  \
    "1.0\r\nContent-Type: text/plain\r\n\r\nbody\r\n"
#define NODEMAILER_COPY1                                                                           \
    "From: Sender <s@example.com>\r\nTo: b@example.com\r\nSubject: hi\r\nMessage-ID: "             \
    "<1@example.com>\r\nDate: Thu, 1 Jan 2026 00:00:00 +0000\r\nMIME-Version: "                    \
    "1.0\r\nContent-Type: text/plain\r\n\r\nbody\r\n"

/* php-aws-ses: bare LF, "CC:"/"BCC:" headers (two BCC fields), no destinations. */
#define PHP_MIME                                                                                   \
    "From: s@example.com\nTo: a@example.com, \"B, Jr.\" <b@example.com>,\n c@example.com\nCC: "    \
    "cc@example.com\nBCC: d@example.com\nSubject: hi\nBCC: e@example.com\nX-SES-CONFIGURATION-"    \
    "SET: cs\nMIME-Version: 1.0\n\nbody\nTo: nobody@example.com\n"
#define PHP_BODY                                                                                   \
    "Action=SendRawEmail&ConfigurationSetName=cs&RawMessage.Data={RAW}&Version=2010-12-01"
#define PHP_COPY0                                                                                  \
    "From: s@example.com\nTo: a@example.com\nCC: cc@example.com\nSubject: "                        \
    "hi\nX-SES-CONFIGURATION-SET: cs\nMIME-Version: 1.0\n\nbody\nTo: nobody@example.com\n"
#define PHP_COPY1                                                                                  \
    "From: s@example.com\nTo: b@example.com\nSubject: hi\nX-SES-CONFIGURATION-SET: "               \
    "cs\nMIME-Version: 1.0\n\nbody\nTo: nobody@example.com\n"
#define PHP_COPY2                                                                                  \
    "From: s@example.com\nTo: c@example.com\nSubject: hi\nX-SES-CONFIGURATION-SET: "               \
    "cs\nMIME-Version: 1.0\n\nbody\nTo: nobody@example.com\n"

/* The boto3 SendRawEmail capture: Destinations a and b, To header a only. */
#define BOTO_RAW_MIME "From: s@example.com\r\nTo: a@example.com\r\nSubject: raw\r\n\r\nbody\r\n"
#define BOTO_RAW_BODY                                                                              \
    "Action=SendRawEmail&Version=2010-12-01&Source=s%40example.com&Destinations.member.1=a%"       \
    "40example.com&Destinations.member.2=b%40example.com&RawMessage.Data={RAW}&Tags.member.1."     \
    "Name=t&Tags.member.1.Value=v&ConfigurationSetName=cs1"

/* Raw destinations matched ignoring case; one in Cc, one elsewhere. */
#define CASE_MIME                                                                                  \
    "From: s@x.com\r\nTo: Big <A@X.COM>, b@x.com\r\nCc: C@x.com\r\nSubject: s\r\n\r\nb\r\n"
#define CASE_BODY                                                                                  \
    "Action=SendRawEmail&Version=2010-12-01&Destinations.member.2=c%40X.com&Destinations."         \
    "member.1=a%40x.com&Destinations.member.3=B%20%3CB%40x.com%3E&Destinations.member.4=hidden%"   \
    "40x.com&RawMessage.Data={RAW}"

/* Message tags in the raw message header. */
#define TAGS_MIME                                                                                  \
    "From: s@x.com\r\nTo: a@x.com, b@x.com\r\nX-SES-MESSAGE-TAGS: k=v,\r\n sesgate-fanout = "      \
    "off , k2=v2\r\nSubject: s\r\n\r\nX-SES-MESSAGE-TAGS: sesgate-fanout=off\r\n"
#define TAGS_MIME_STRIPPED                                                                         \
    "From: s@x.com\r\nTo: a@x.com, b@x.com\r\nX-SES-MESSAGE-TAGS: k=v, k2=v2\r\nSubject: "         \
    "s\r\n\r\nX-SES-MESSAGE-TAGS: sesgate-fanout=off\r\n"
#define ONLY_TAG_MIME                                                                              \
    "From: s@x.com\nTo: a@x.com, b@x.com\nx-ses-message-tags: sesgate-fanout=on\nSubject: "        \
    "s\n\nbody\n"
#define ONLY_TAG_MIME_STRIPPED "From: s@x.com\nTo: a@x.com, b@x.com\nSubject: s\n\nbody\n"

/* A DKIM signature over To: only the envelope is split. */
#define DKIM_TO_MIME                                                                               \
    "DKIM-Signature: v=1; a=rsa-sha256; d=x.com; s=s1;\r\n\th=From : Subject : TO; bh=abc; "       \
    "b=def\r\nFrom: s@x.com\r\nTo: a@x.com, b@x.com\r\nSubject: s\r\n\r\nbody\r\n"
#define DKIM_BCC_MIME                                                                              \
    "DKIM-Signature: v=1; a=rsa-sha256; d=x.com; s=s1; h=from:to; bh=abc; "                        \
    "b=def\r\nFrom: s@x.com\r\nTo: a@x.com, b@x.com\r\nBcc: hidden@x.com\r\n\r\nbody\r\n"
#define DKIM_OTHER_MIME                                                                            \
    "DKIM-Signature: v=1; a=rsa-sha256; d=x.com; s=s1; h=from:subject; bh=abc; "                   \
    "b=def\r\nFrom: s@x.com\r\nTo: a@x.com, b@x.com\r\nSubject: s\r\n\r\nbody\r\n"

struct plan_case {
    const char *name;
    int api;          /* 1 or 2 */
    const char *body; /* "{RAW}" stands for the base64 of mime */
    const char *mime;
    bool on;
    size_t max;
    enum seserr_code err; /* SESERR_NONE: success */
    const char *msg;      /* a substring of the error message */
    bool batch, stripped, dkim;
    const char *to[MAXR];
    const char *riders[MAXR]; /* "c:addr" (Cc) or "b:addr" (Bcc) */
    const char *template;     /* exact template, or NULL to skip */
    const char *forward;      /* exact forward ("" when empty), or NULL to skip */
    const char *fwd_mime;     /* the message carried by forward, or NULL */
    const char *tmpl_mime;    /* the message carried by the template, or NULL */
    const char *copies[MAXR]; /* the exact raw message of each copy, or NULL */
};

static const struct plan_case plan_cases[] = {
    {"boto SendEmail",
     1,
     BOTO_SEND_EMAIL,
     NULL,
     true,
     10000,
     SESERR_NONE,
     NULL,
     true,
     false,
     false,
     {"a@example.com", "b@example.com"},
     {"c:c@example.com", "b:d@example.com"},
     BOTO_SEND_EMAIL_TEMPLATE,
     "",
     NULL,
     NULL,
     {NULL}},
    {"boto SendEmail, fan-out off",
     1,
     BOTO_SEND_EMAIL,
     NULL,
     false,
     10000,
     SESERR_NONE,
     NULL,
     false,
     false,
     false,
     {"a@example.com", "b@example.com"},
     {"c:c@example.com", "b:d@example.com"},
     "",
     "",
     NULL,
     NULL,
     {NULL}},
    {"boto SendEmail, max 2",
     1,
     BOTO_SEND_EMAIL,
     NULL,
     true,
     2,
     SESERR_NONE,
     NULL,
     true,
     false,
     false,
     {"a@example.com", "b@example.com"},
     {"c:c@example.com", "b:d@example.com"},
     NULL,
     NULL,
     NULL,
     NULL,
     {NULL}},
    {"boto SendEmail, max 1",
     1,
     BOTO_SEND_EMAIL,
     NULL,
     true,
     1,
     SESERR_INVALID_PARAMETER,
     "at most 1 To recipients",
     false,
     false,
     false,
     {NULL},
     {NULL},
     NULL,
     NULL,
     NULL,
     NULL,
     {NULL}},
    {"boto SendEmail, max 1, off",
     1,
     BOTO_SEND_EMAIL,
     NULL,
     false,
     1,
     SESERR_NONE,
     NULL,
     false,
     false,
     false,
     {"a@example.com", "b@example.com"},
     {"c:c@example.com", "b:d@example.com"},
     "",
     "",
     NULL,
     NULL,
     {NULL}},
    {"JS SendEmail",
     1,
     JS_SEND_EMAIL,
     NULL,
     true,
     10000,
     SESERR_NONE,
     NULL,
     true,
     false,
     false,
     {"a@example.com", "B <b@example.com>", "c@example.com"},
     {NULL},
     "Action=SendEmail&Version=2010-12-01&Source=A%20B%20%3Cs%40e.com%3E&Message.Subject.Data=Hi%"
     "20%C3%BC&Message.Body.Text.Data=it%27s%20%28ok%29%21%2A",
     "",
     NULL,
     NULL,
     {NULL}},
    {"single recipient",
     1,
     "Action=SendEmail&Version=2010-12-01&Source=s%40x.com&Destination.ToAddresses.member.1=a%"
     "40x.com&Destination.CcAddresses.member.1=c%40x.com&Destination.CcAddresses.member.2=d%40x."
     "com&Message.Subject.Data=s&Message.Body.Text.Data=b",
     NULL,
     true,
     10000,
     SESERR_NONE,
     NULL,
     false,
     false,
     false,
     {"a@x.com"},
     {"c:c@x.com", "c:d@x.com"},
     "",
     "",
     NULL,
     NULL,
     {NULL}},
    {"Cc only",
     1,
     "Action=SendEmail&Version=2010-12-01&Source=s%40x.com&Destination.ToAddresses=&Destination."
     "CcAddresses.member.1=c%40x.com&Message.Subject.Data=s&Message.Body.Text.Data=b",
     NULL,
     true,
     10000,
     SESERR_NONE,
     NULL,
     false,
     false,
     false,
     {NULL},
     {"c:c@x.com"},
     "",
     "",
     NULL,
     NULL,
     {NULL}},
    {"SendTemplatedEmail, tag on",
     1,
     TEMPLATED,
     NULL,
     true,
     10000,
     SESERR_NONE,
     NULL,
     true,
     true,
     false,
     {"a@example.com", "b@example.com"},
     {"b:audit@example.com"},
     "Action=SendTemplatedEmail&Version=2010-12-01&Source=s%40example.com&Template=welcome&"
     "TemplateData=%7B%22name%22%3A%22%C3%BC%20%26%20%3D%22%7D&Tags.member.1.Name=campaign&Tags."
     "member.1.Value=spring",
     "",
     NULL,
     NULL,
     {NULL}},
    {"php ksort order",
     1,
     PHP_KSORT,
     NULL,
     true,
     10000,
     SESERR_NONE,
     NULL,
     true,
     false,
     false,
     {"t1@x.com", "t2@x.com", "t3@x.com", "t4@x.com", "t5@x.com", "t6@x.com", "t7@x.com",
      "t8@x.com", "t9@x.com", "t10@x.com", "t11@x.com"},
     {NULL},
     "Action=SendEmail&Message.Body.Text.Data=b&Message.Subject.Data=s&Source=s%40x.com&Version="
     "2010-12-01",
     "",
     NULL,
     NULL,
     {NULL}},
    {"v1 tag off, tags renumbered",
     1,
     MANY_TAGS,
     NULL,
     true,
     10000,
     SESERR_NONE,
     NULL,
     false,
     true,
     false,
     {"a@x.com", "b@x.com"},
     {NULL},
     "",
     MANY_TAGS_FORWARD,
     NULL,
     NULL,
     {NULL}},
    {"v1 tag off, fan-out off",
     1,
     MANY_TAGS,
     NULL,
     false,
     10000,
     SESERR_NONE,
     NULL,
     false,
     true,
     false,
     {"a@x.com", "b@x.com"},
     {NULL},
     "",
     MANY_TAGS_FORWARD,
     NULL,
     NULL,
     {NULL}},
    {"v1 tag off only tag",
     1,
     "Action=SendEmail&Version=2010-12-01&Source=s%40x.com&Destination.ToAddresses.member.1=a%"
     "40x.com&Destination.ToAddresses.member.2=b%40x.com&Message.Subject.Data=s&Message.Body."
     "Text.Data=b&Tags.member.1.Value=off&Tags.member.1.Name=Sesgate-Fanout",
     NULL,
     true,
     10000,
     SESERR_NONE,
     NULL,
     false,
     true,
     false,
     {"a@x.com", "b@x.com"},
     {NULL},
     "",
     "Action=SendEmail&Version=2010-12-01&Source=s%40x.com&Destination.ToAddresses.member.1=a%"
     "40x.com&Destination.ToAddresses.member.2=b%40x.com&Message.Subject.Data=s&Message.Body."
     "Text.Data=b",
     NULL,
     NULL,
     {NULL}},
    {"v1 NUL in an address",
     1,
     "Action=SendEmail&Version=2010-12-01&Source=s%40x.com&Destination.ToAddresses.member.1=a%"
     "00%40x.com&Message.Subject.Data=s&Message.Body.Text.Data=b",
     NULL,
     true,
     10000,
     SESERR_INVALID_PARAMETER,
     "Illegal address",
     false,
     false,
     false,
     {NULL},
     {NULL},
     NULL,
     NULL,
     NULL,
     NULL,
     {NULL}},
    {"v1 CR LF in a batch To address",
     1,
     "Action=SendEmail&Version=2010-12-01&Source=s%40x.com&Destination.ToAddresses.member.1=a%"
     "40x.com&Destination.ToAddresses.member.2=b%40x.com%0D%0ABcc%3A%20e%40y.org&Message.Subject."
     "Data=s&Message.Body.Text.Data=b",
     NULL,
     true,
     10000,
     SESERR_INVALID_PARAMETER,
     "Illegal address",
     false,
     false,
     false,
     {NULL},
     {NULL},
     NULL,
     NULL,
     NULL,
     NULL,
     {NULL}},
    {"v2 tab in a Cc address",
     2,
     "{\"FromEmailAddress\":\"s@x.com\",\"Destination\":{\"ToAddresses\":[\"a@x.com\",\"b@x.com\"],"
     "\"CcAddresses\":[\"c@x.com\\t\"]},\"Content\":{\"Simple\":{\"Subject\":{\"Data\":\"s\"},"
     "\"Body\":{\"Text\":{\"Data\":\"b\"}}}}}",
     NULL,
     true,
     10000,
     SESERR_BAD_REQUEST,
     "Illegal address",
     false,
     false,
     false,
     {NULL},
     {NULL},
     NULL,
     NULL,
     NULL,
     NULL,
     {NULL}},
    {"not a send",
     1,
     "Action=GetSendQuota&Version=2010-12-01",
     NULL,
     true,
     10000,
     SESERR_NONE,
     NULL,
     false,
     false,
     false,
     {NULL},
     {NULL},
     "",
     "",
     NULL,
     NULL,
     {NULL}},
    {"boto SendRawEmail: one To, one blind",
     1,
     BOTO_RAW_BODY,
     BOTO_RAW_MIME,
     true,
     10000,
     SESERR_NONE,
     NULL,
     false,
     false,
     false,
     {"a@example.com"},
     {"b:b@example.com"},
     "",
     "",
     NULL,
     NULL,
     {NULL}},
    {"php-aws-ses raw from headers",
     1,
     PHP_BODY,
     PHP_MIME,
     true,
     10000,
     SESERR_NONE,
     NULL,
     true,
     false,
     false,
     {"a@example.com", "b@example.com", "c@example.com"},
     {"c:cc@example.com", "b:d@example.com", "b:e@example.com"},
     NULL,
     "",
     NULL,
     PHP_MIME,
     {PHP_COPY0, PHP_COPY1, PHP_COPY2}},
    {"php-aws-ses raw, max 2",
     1,
     PHP_BODY,
     PHP_MIME,
     true,
     2,
     SESERR_INVALID_PARAMETER,
     "at most 2 To recipients",
     false,
     false,
     false,
     {NULL},
     {NULL},
     NULL,
     NULL,
     NULL,
     NULL,
     {NULL}},
    {"php-aws-ses raw, max 2, fan-out off",
     1,
     PHP_BODY,
     PHP_MIME,
     false,
     2,
     SESERR_NONE,
     NULL,
     false,
     false,
     false,
     {"a@example.com", "b@example.com", "c@example.com"},
     {"c:cc@example.com", "b:d@example.com", "b:e@example.com"},
     "",
     "",
     NULL,
     NULL,
     {NULL}},
    {"raw destinations, case",
     1,
     CASE_BODY,
     CASE_MIME,
     true,
     10000,
     SESERR_NONE,
     NULL,
     true,
     false,
     false,
     {"a@x.com", "B@x.com"},
     {"c:c@X.com", "b:hidden@x.com"},
     NULL,
     "",
     NULL,
     CASE_MIME,
     {"From: s@x.com\r\nTo: a@x.com\r\nCc: C@x.com\r\nSubject: s\r\n\r\nb\r\n",
      "From: s@x.com\r\nTo: B@x.com\r\nSubject: s\r\n\r\nb\r\n"}},
    {"raw illegal destination",
     1,
     "Action=SendRawEmail&Version=2010-12-01&Destinations.member.1=not%20an%20address&"
     "RawMessage.Data={RAW}",
     CASE_MIME,
     true,
     10000,
     SESERR_INVALID_PARAMETER,
     "Missing final '@domain'",
     false,
     false,
     false,
     {NULL},
     {NULL},
     NULL,
     NULL,
     NULL,
     NULL,
     {NULL}},
    {"raw illegal To header",
     1,
     "Action=SendRawEmail&Version=2010-12-01&RawMessage.Data={RAW}",
     "From: s@x.com\r\nTo: a@x.com, <b@x.com\r\n\r\nb",
     true,
     10000,
     SESERR_INVALID_PARAMETER,
     "Illegal address",
     false,
     false,
     false,
     {NULL},
     {NULL},
     NULL,
     NULL,
     NULL,
     NULL,
     {NULL}},
    {"raw illegal To header, fan-out off",
     1,
     "Action=SendRawEmail&Version=2010-12-01&RawMessage.Data={RAW}",
     "From: s@x.com\r\nTo: a@x.com, <b@x.com\r\n\r\nb",
     false,
     10000,
     SESERR_NONE,
     NULL,
     false,
     false,
     false,
     {NULL},
     {NULL},
     "",
     "",
     NULL,
     NULL,
     {NULL}},
    {"raw To with a control character",
     1,
     "Action=SendRawEmail&Version=2010-12-01&RawMessage.Data={RAW}",
     "From: s@x.com\r\nTo: \"a\tb\"@x.com, b@x.com\r\n\r\nb",
     true,
     10000,
     SESERR_INVALID_PARAMETER,
     "Local address contains control or whitespace",
     false,
     false,
     false,
     {NULL},
     {NULL},
     NULL,
     NULL,
     NULL,
     NULL,
     {NULL}},
    {"raw header tags off",
     1,
     "Action=SendRawEmail&Version=2010-12-01&RawMessage.Data={RAW}",
     TAGS_MIME,
     true,
     10000,
     SESERR_NONE,
     NULL,
     false,
     true,
     false,
     {"a@x.com", "b@x.com"},
     {NULL},
     "",
     NULL,
     TAGS_MIME_STRIPPED,
     NULL,
     {NULL}},
    {"raw header tag on",
     1,
     "Action=SendRawEmail&Version=2010-12-01&RawMessage.Data={RAW}",
     ONLY_TAG_MIME,
     true,
     10000,
     SESERR_NONE,
     NULL,
     true,
     true,
     false,
     {"a@x.com", "b@x.com"},
     {NULL},
     NULL,
     "",
     NULL,
     ONLY_TAG_MIME_STRIPPED,
     {"From: s@x.com\nTo: a@x.com\nSubject: s\n\nbody\n",
      "From: s@x.com\nTo: b@x.com\nSubject: s\n\nbody\n"}},
    {"raw DKIM over To",
     1,
     "Action=SendRawEmail&Version=2010-12-01&RawMessage.Data={RAW}",
     DKIM_TO_MIME,
     true,
     10000,
     SESERR_NONE,
     NULL,
     true,
     false,
     true,
     {"a@x.com", "b@x.com"},
     {NULL},
     NULL,
     "",
     NULL,
     DKIM_TO_MIME,
     {DKIM_TO_MIME, DKIM_TO_MIME}},
    {"raw DKIM not over To",
     1,
     "Action=SendRawEmail&Version=2010-12-01&RawMessage.Data={RAW}",
     DKIM_OTHER_MIME,
     true,
     10000,
     SESERR_NONE,
     NULL,
     true,
     false,
     false,
     {"a@x.com", "b@x.com"},
     {NULL},
     NULL,
     "",
     NULL,
     DKIM_OTHER_MIME,
     {NULL}},
    /* v2 */
    {"v2 boto Simple",
     2,
     V2_BOTO_SIMPLE,
     NULL,
     true,
     10000,
     SESERR_NONE,
     NULL,
     true,
     false,
     false,
     {"a@example.com", "b@example.com"},
     {"c:c@example.com"},
     V2_BOTO_SIMPLE_TEMPLATE,
     "",
     NULL,
     NULL,
     {NULL}},
    {"v2 boto Simple, fan-out off",
     2,
     V2_BOTO_SIMPLE,
     NULL,
     false,
     10000,
     SESERR_NONE,
     NULL,
     false,
     false,
     false,
     {"a@example.com", "b@example.com"},
     {"c:c@example.com"},
     "",
     "",
     NULL,
     NULL,
     {NULL}},
    {"v2 Simple, attachments, tag on",
     2,
     V2_ATTACH,
     NULL,
     true,
     10000,
     SESERR_NONE,
     NULL,
     true,
     true,
     false,
     {"a@x.com", "b@x.com"},
     {"b:z@x.com"},
     NULL,
     "",
     NULL,
     NULL,
     {NULL}},
    {"v2 Template, tag off",
     2,
     V2_TEMPLATE,
     NULL,
     true,
     10000,
     SESERR_NONE,
     NULL,
     false,
     true,
     false,
     {"a@x.com", "b@x.com", "c@x.com"},
     {"c:cc@x.com", "b:bcc@x.com"},
     "",
     V2_TEMPLATE_FORWARD,
     NULL,
     NULL,
     {NULL}},
    {"v2 Template, max 2",
     2,
     V2_TEMPLATE,
     NULL,
     true,
     2,
     SESERR_NONE,
     NULL,
     false,
     true,
     false,
     {"a@x.com", "b@x.com", "c@x.com"},
     {"c:cc@x.com", "b:bcc@x.com"},
     "",
     V2_TEMPLATE_FORWARD,
     NULL,
     NULL,
     {NULL}},
    {"v2 only tag off",
     2,
     "{\"FromEmailAddress\":\"s@x.com\",\"Destination\":{\"ToAddresses\":[\"a@x.com\",\"b@x."
     "com\"]},\"EmailTags\":[{\"Name\":\"sesgate-fanout\",\"Value\":\"off\"}],\"Content\":{"
     "\"Simple\":{\"Subject\":{\"Data\":\"s\"},\"Body\":{\"Text\":{\"Data\":\"b\"}}}}}",
     NULL,
     true,
     10000,
     SESERR_NONE,
     NULL,
     false,
     true,
     false,
     {"a@x.com", "b@x.com"},
     {NULL},
     "",
     "{\"FromEmailAddress\":\"s@x.com\",\"Destination\":{\"ToAddresses\":[\"a@x.com\",\"b@x."
     "com\"]},\"Content\":{\"Simple\":{\"Subject\":{\"Data\":\"s\"},\"Body\":{\"Text\":{\"Data\":"
     "\"b\"}}}}}",
     NULL,
     NULL,
     {NULL}},
    {"v2 Template, max 2 exceeded",
     2,
     "{\"FromEmailAddress\":\"s@x.com\",\"Destination\":{\"ToAddresses\":[\"a@x.com\",\"b@x."
     "com\",\"c@x.com\"]},\"Content\":{\"Template\":{\"TemplateName\":\"t\",\"TemplateData\":"
     "\"{}\"}}}",
     NULL,
     true,
     2,
     SESERR_INVALID_PARAMETER,
     "at most 2 To recipients",
     false,
     false,
     false,
     {NULL},
     {NULL},
     NULL,
     NULL,
     NULL,
     NULL,
     {NULL}},
    {"v2 Destination not an object",
     2,
     "{\"FromEmailAddress\":\"s@x.com\",\"Destination\":[\"a@x.com\"],\"Content\":{\"Simple\":{"
     "\"Subject\":{\"Data\":\"s\"},\"Body\":{\"Text\":{\"Data\":\"b\"}}}}}",
     NULL,
     true,
     10000,
     SESERR_BAD_REQUEST,
     "Destination must be an object",
     false,
     false,
     false,
     {NULL},
     {NULL},
     NULL,
     NULL,
     NULL,
     NULL,
     {NULL}},
    {"v2 ToAddresses not strings",
     2,
     "{\"FromEmailAddress\":\"s@x.com\",\"Destination\":{\"ToAddresses\":[\"a@x.com\",1]},"
     "\"Content\":{\"Simple\":{\"Subject\":{\"Data\":\"s\"},\"Body\":{\"Text\":{\"Data\":\"b\"}}}"
     "}}",
     NULL,
     true,
     10000,
     SESERR_BAD_REQUEST,
     "ToAddresses must be a list",
     false,
     false,
     false,
     {NULL},
     {NULL},
     NULL,
     NULL,
     NULL,
     NULL,
     {NULL}},
    {"v2 null Destination",
     2,
     "{\"FromEmailAddress\":\"s@x.com\",\"Destination\":null,\"Content\":{\"Simple\":{"
     "\"Subject\":{\"Data\":\"s\"},\"Body\":{\"Text\":{\"Data\":\"b\"}}}}}",
     NULL,
     true,
     10000,
     SESERR_NONE,
     NULL,
     false,
     false,
     false,
     {NULL},
     {NULL},
     "",
     "",
     NULL,
     NULL,
     {NULL}},
    {"v2 nodemailer Raw",
     2,
     NODEMAILER_BODY,
     NODEMAILER_MIME,
     true,
     10000,
     SESERR_NONE,
     NULL,
     true,
     false,
     false,
     {"a@example.com", "b@example.com"},
     {"c:c@example.com", "b:d@example.com"},
     NULL,
     "",
     NULL,
     NODEMAILER_MIME,
     {NODEMAILER_COPY0, NODEMAILER_COPY1}},
    {"v2 boto Raw: one To",
     2,
     "{\"Content\":{\"Raw\":{\"Data\":\"{RAW}\"}}}",
     BOTO_RAW_MIME,
     true,
     10000,
     SESERR_NONE,
     NULL,
     false,
     false,
     false,
     {"a@example.com"},
     {NULL},
     "",
     "",
     NULL,
     NULL,
     {NULL}},
    {"v2 Raw from headers, tags",
     2,
     "{\"Content\":{\"Raw\":{\"Data\":\"{RAW}\"}},\"EmailTags\":[{\"Name\":\"sesgate-fanout\","
     "\"Value\":\"on\"},{\"Name\":\"k\",\"Value\":\"v\"}]}",
     ONLY_TAG_MIME,
     true,
     10000,
     SESERR_NONE,
     NULL,
     true,
     true,
     false,
     {"a@x.com", "b@x.com"},
     {NULL},
     NULL,
     "",
     NULL,
     ONLY_TAG_MIME_STRIPPED,
     {NULL}},
    {"v1 duplicates: one copy per recipient",
     1,
     "Action=SendEmail&Version=2010-12-01&Source=s%40x.com&Destination.ToAddresses.member.1=a%40x."
     "com&"
     "Destination.ToAddresses.member.2=A%20%3CA%40X.com%3E&Destination.ToAddresses.member.3=b%"
     "40x.com&Destination.ToAddresses.member.4=a%40x.com&Destination.CcAddresses.member.1=b%"
     "40x.com&Destination.CcAddresses.member.2=c%40x.com&Destination.CcAddresses.member.3=C%"
     "40x.com&Destination.BccAddresses.member.1=c%40x.com&Destination.BccAddresses.member.2=d%"
     "40x.com&Message.Subject.Data=s&Message.Body.Text.Data=t",
     NULL,
     true,
     10000,
     SESERR_NONE,
     NULL,
     true,
     false,
     false,
     {"a@x.com", "b@x.com"},
     {"c:c@x.com", "b:d@x.com"},
     NULL,
     "",
     NULL,
     NULL,
     {NULL}},
    {"v1 duplicates leave one To: not a batch",
     1,
     "Action=SendEmail&Version=2010-12-01&Source=s%40x.com&Destination.ToAddresses.member.1=a%40x."
     "com&"
     "Destination.ToAddresses.member.2=a%40X.COM&Message.Subject.Data=s&Message.Body.Text.Data=t",
     NULL,
     true,
     10000,
     SESERR_NONE,
     NULL,
     false,
     false,
     false,
     {"a@x.com", "a@X.COM"},
     {NULL},
     "",
     "",
     NULL,
     NULL,
     {NULL}},
    {"v2 Raw duplicates in the headers",
     2,
     "{\"Content\":{\"Raw\":{\"Data\":\"{RAW}\"}}}",
     "From: s@x.com\r\nTo: a@x.com, \"Doe, A\" <A@x.com>, b@x.com\r\nTo: b@X.com\r\n"
     "Cc: a@x.com, c@x.com\r\nBcc: c@x.com\r\nSubject: s\r\n\r\nbody\r\n",
     true,
     10000,
     SESERR_NONE,
     NULL,
     true,
     false,
     false,
     {"a@x.com", "b@x.com"},
     {"c:c@x.com"},
     NULL,
     "",
     NULL,
     NULL,
     {NULL}},
    {"v2 Raw header tag off",
     2,
     "{\"Content\":{\"Raw\":{\"Data\":\"{RAW}\"}}}",
     TAGS_MIME,
     true,
     10000,
     SESERR_NONE,
     NULL,
     false,
     true,
     false,
     {"a@x.com", "b@x.com"},
     {NULL},
     "",
     NULL,
     TAGS_MIME_STRIPPED,
     NULL,
     {NULL}},
    {"v2 Raw DKIM",
     2,
     "{\"Content\":{\"Raw\":{\"Data\":\"{RAW}\"}},\"Destination\":{\"ToAddresses\":[\"a@x.com\"],"
     "\"CcAddresses\":[\"b@x.com\"],\"BccAddresses\":[\"q@x.com\"]}}",
     DKIM_TO_MIME,
     true,
     10000,
     SESERR_NONE,
     NULL,
     true,
     false,
     true,
     {"a@x.com", "b@x.com"},
     {"b:q@x.com"},
     NULL,
     "",
     NULL,
     DKIM_TO_MIME,
     {DKIM_TO_MIME, DKIM_TO_MIME}},
    /* A message that must stay unchanged would show its Bcc field to every
     * To recipient: the batch is refused. */
    {"v1 Raw DKIM with Bcc",
     1,
     "Action=SendRawEmail&Version=2010-12-01&RawMessage.Data={RAW}",
     DKIM_BCC_MIME,
     true,
     10000,
     SESERR_MESSAGE_REJECTED,
     "Bcc header",
     false,
     false,
     false,
     {NULL},
     {NULL},
     NULL,
     NULL,
     NULL,
     NULL,
     {NULL}},
};

/* The base64 raw message data of body b (v1 form or v2 JSON) decoded. */
static void body_message(int api, const char *b, size_t len, struct buf *msg)
{
    struct sesreq r;
    struct seserr e;
    if (parse(api, b, len, &r, &e) == 0) {
        if (api == 1) {
            const char *d = form_get(&r.form, "RawMessage.Data", NULL);
            if (d != NULL)
                util_base64_decode(d, strlen(d), msg);
        } else {
            size_t dl = 0;
            const char *d = sesreq_raw_data(&r, &dl);
            if (d != NULL)
                util_base64_decode(d, dl, msg);
        }
    }
    sesreq_cleanup(&r);
}

/* Run one plan case. */
static void run_plan_case(const struct plan_case *c)
{
    struct buf body = BUF_INIT;
    build_body(c->api, c->body, c->mime, &body);
    struct sesreq r;
    struct seserr e = {SESERR_NONE, ""};
    int rc = parse(c->api, body.data, body.len, &r, &e);
    CHECK(rc == 0, "%s: parse: %s", c->name, e.message);
    struct fanout_plan p;
    rc = fanout_plan(&r, c->on, c->max, false, &p, &e);
    if (c->err != SESERR_NONE) {
        CHECK(rc == -1 && e.code == c->err, "%s: rc %d code %d, want %d", c->name, rc, e.code,
              c->err);
        CHECK(strstr(e.message, c->msg) != NULL, "%s: message \"%s\"", c->name, e.message);
        CHECK(!p.batch, "%s: no batch on error", c->name);
        fanout_plan_cleanup(&p);
        sesreq_cleanup(&r);
        buf_free(&body);
        return;
    }
    CHECK(rc == 0, "%s: plan: %s", c->name, e.message);
    CHECK(p.batch == c->batch, "%s: batch %d", c->name, p.batch);
    CHECK(p.tag_stripped == c->stripped, "%s: tag_stripped %d", c->name, p.tag_stripped);
    CHECK(p.dkim_envelope_only == c->dkim, "%s: dkim %d", c->name, p.dkim_envelope_only);
    CHECK(p.raw == r.raw && p.api == r.api && p.action == r.action, "%s: request kind", c->name);
    size_t nto = 0, nr = 0;
    while (nto < MAXR && c->to[nto] != NULL)
        nto++;
    while (nr < MAXR && c->riders[nr] != NULL)
        nr++;
    CHECK(p.nto == nto, "%s: %zu To, want %zu", c->name, p.nto, nto);
    for (size_t i = 0; i < nto && i < p.nto; i++)
        CHECK_STR(p.to[i], c->to[i], c->name);
    CHECK(p.nriders == nr, "%s: %zu riders, want %zu", c->name, p.nriders, nr);
    for (size_t i = 0; i < nr && i < p.nriders; i++) {
        CHECK(p.riders[i].kind == (c->riders[i][0] == 'c' ? FANOUT_CC : FANOUT_BCC),
              "%s: rider %zu kind", c->name, i);
        CHECK_STR(p.riders[i].addr, c->riders[i] + 2, c->name);
    }
    if (c->template != NULL)
        CHECK_STR(buf_cstr(&p.template), c->template, c->name);
    if (c->forward != NULL)
        CHECK_STR(buf_cstr(&p.forward), c->forward, c->name);
    CHECK(p.batch || p.template.len == 0, "%s: no template unless a batch", c->name);
    CHECK(!p.tag_stripped || p.batch || p.forward.len > 0, "%s: forward when stripped", c->name);
    if (c->fwd_mime != NULL) {
        struct buf msg = BUF_INIT;
        body_message(c->api, p.forward.data, p.forward.len, &msg);
        CHECK_STR(buf_cstr(&msg), c->fwd_mime, c->name);
        buf_free(&msg);
    }
    if (c->tmpl_mime != NULL) {
        struct buf msg = BUF_INIT;
        const char *t = buf_cstr(&p.template);
        if (c->api == 1) {
            /* the template lacks nothing sesreq needs for a raw send */
            body_message(1, t, p.template.len, &msg);
        } else {
            json_error_t jerr;
            json_t *j = json_loads(t, 0, &jerr);
            json_t *d =
                json_object_get(json_object_get(json_object_get(j, "Content"), "Raw"), "Data");
            if (json_is_string(d))
                util_base64_decode(json_string_value(d), json_string_length(d), &msg);
            json_decref(j);
        }
        CHECK_STR(buf_cstr(&msg), c->tmpl_mime, c->name);
        buf_free(&msg);
    }
    /* a forwarded body is a valid request with the same recipients */
    if (p.forward.len > 0) {
        struct sesreq f;
        struct fanout_plan fp;
        CHECK(parse(c->api, p.forward.data, p.forward.len, &f, &e) == 0, "%s: forward parses",
              c->name);
        CHECK(fanout_plan(&f, c->on, 10000, false, &fp, &e) == 0 && !fp.tag_stripped &&
                  fp.nto == p.nto && fp.nriders == p.nriders,
              "%s: forward replans", c->name);
        fanout_plan_cleanup(&fp);
        sesreq_cleanup(&f);
    }
    if (p.batch)
        check_copies(&r, &p, c->copies, c->name);
    fanout_plan_cleanup(&p);
    CHECK(p.to == NULL && p.nto == 0 && p.template.data == NULL, "%s: cleaned up", c->name);
    sesreq_cleanup(&r);
    buf_free(&body);
}

/* The table of plan cases. */
static void test_plan_cases(void)
{
    for (size_t i = 0; i < sizeof plan_cases / sizeof plan_cases[0]; i++)
        run_plan_case(&plan_cases[i]);
}

/* The exact copies of the boto3 SendEmail capture. */
static void test_boto_copies(void)
{
    struct sesreq r;
    struct seserr e;
    struct fanout_plan p;
    CHECK(parse(1, BOTO_SEND_EMAIL, strlen(BOTO_SEND_EMAIL), &r, &e) == 0, "parse");
    CHECK(fanout_plan(&r, true, 10000, false, &p, &e) == 0, "plan");
    struct buf out = BUF_INIT;
    CHECK(copybody_render_plan(&p, 0, &out, &e) == 0, "copy 0");
    CHECK_STR(buf_cstr(&out),
              BOTO_SEND_EMAIL_TEMPLATE "&Destination.ToAddresses.member.1=a%40example.com&"
                                       "Destination.CcAddresses.member.1=c%40example.com&"
                                       "Destination.BccAddresses.member.1=d%40example.com",
              "boto copy 0");
    buf_reset(&out);
    CHECK(copybody_render_plan(&p, 1, &out, &e) == 0, "copy 1");
    CHECK_STR(buf_cstr(&out),
              BOTO_SEND_EMAIL_TEMPLATE "&Destination.ToAddresses.member.1=b%40example.com",
              "boto copy 1");
    /* out of range and errors leave out as it was */
    CHECK(copybody_render_plan(&p, 2, &out, &e) == -1 && e.code == SESERR_INTERNAL, "copy 2");
    CHECK_STR(buf_cstr(&out),
              BOTO_SEND_EMAIL_TEMPLATE "&Destination.ToAddresses.member.1=b%40example.com",
              "out unchanged");
    buf_free(&out);
    fanout_plan_cleanup(&p);
    /* not a batch: nothing to render */
    CHECK(fanout_plan(&r, false, 10000, false, &p, &e) == 0 && !p.batch, "fan-out off");
    CHECK(copybody_render_plan(&p, 0, &out, &e) == -1 && out.len == 0, "no copy when not a batch");
    fanout_plan_cleanup(&p);
    sesreq_cleanup(&r);

    /* v2: the Destination member is spliced in last */
    CHECK(parse(2, V2_BOTO_SIMPLE, strlen(V2_BOTO_SIMPLE), &r, &e) == 0, "parse v2");
    CHECK(fanout_plan(&r, true, 10000, false, &p, &e) == 0, "plan v2");
    static const char v2_copy0[] =
        "{\"FromEmailAddress\":\"s@example.com\",\"ReplyToAddresses\":[\"r@example.com\"],"
        "\"Content\":{\"Simple\":{\"Subject\":{\"Data\":\"Hi\"},\"Body\":{\"Text\":{\"Data\":\"t\"}"
        ","
        "\"Html\":{\"Data\":\"<b>h</b>\"}}}},\"EmailTags\":[{\"Name\":\"t\",\"Value\":\"v\"}],"
        "\"ConfigurationSetName\":\"cs1\",\"ListManagementOptions\":{\"ContactListName\":\"cl\","
        "\"TopicName\":\"tp\"},\"Destination\":{\"ToAddresses\":[\"a@example.com\"],"
        "\"CcAddresses\":[\"c@example.com\"]}}";
    CHECK(copybody_render_plan(&p, 0, &out, &e) == 0, "v2 copy 0");
    CHECK_STR(buf_cstr(&out), v2_copy0, "v2 copy 0");
    fanout_plan_cleanup(&p);
    sesreq_cleanup(&r);
    buf_free(&out);
}

/* A v1 SendEmail or SendTemplatedEmail with n To recipients, two Cc and a Bcc. */
static void big_v1(size_t n, bool templated, struct buf *out)
{
    buf_printf(out, "Action=%s&Version=2010-12-01&Source=News%%20%%3Cs%%40x.com%%3E",
               templated ? "SendTemplatedEmail" : "SendEmail");
    for (size_t i = 1; i <= n; i++)
        buf_printf(out, "&Destination.ToAddresses.member.%zu=User%%20%zu%%20%%3Cu%zu%%40x.com%%3E",
                   i, i, i);
    buf_adds(out, "&Destination.CcAddresses.member.1=c1%40x.com&Destination.CcAddresses.member.2="
                  "c2%40x.com&Destination.BccAddresses.member.1=b1%40x.com");
    if (templated)
        buf_adds(out, "&Template=t&TemplateData=%7B%22a%22%3A%5B1%2C2%5D%7D");
    else
        buf_adds(out, "&Message.Subject.Data=Hello%20%E2%9C%93&Message.Body.Html.Data=%3Cp%3E%3D%"
                      "26%2B%3C%2Fp%3E&Message.Body.Html.Charset=UTF-8");
    buf_adds(out, "&Tags.member.1.Name=a&Tags.member.1.Value=1&Tags.member.2.Name=sesgate-fanout&"
                  "Tags.member.2.Value=on&Tags.member.3.Name=c&Tags.member.3.Value=3&"
                  "ConfigurationSetName=cs");
}

/* A v2 body with n To recipients: Simple (kind 0), Template (1) or Raw (2,
 * with every recipient in Destination.ToAddresses and the message's To). */
static void big_v2(size_t n, int kind, struct buf *out)
{
    buf_adds(out, "{\"FromEmailAddress\":\"s@x.com\",\"Destination\":{\"ToAddresses\":[");
    for (size_t i = 0; i < n; i++)
        buf_printf(out, "%s\"u%zu@x.com\"", i ? "," : "", i);
    if (kind == 2) {
        buf_adds(out, ",\"c1@x.com\",\"hidden@x.com\"]},\"Content\":{\"Raw\":{\"Data\":\"");
        struct buf mime = BUF_INIT;
        buf_adds(&mime, "From: s@x.com\r\nTo: ");
        for (size_t i = 0; i < n; i++)
            buf_printf(&mime, "%sU %zu <u%zu@x.com>", i ? ",\r\n " : "", i, i);
        buf_adds(&mime, "\r\nCc: c1@x.com\r\nSubject: s\r\n\r\nbody\r\n");
        check_b64(mime.data, mime.len, out);
        buf_free(&mime);
        buf_adds(out, "\"}}");
    } else {
        buf_adds(out, "],\"CcAddresses\":[\"c1@x.com\"],\"BccAddresses\":[\"b1@x.com\","
                      "\"b2@x.com\"]},\"Content\":");
        if (kind == 0)
            buf_adds(out, "{\"Simple\":{\"Subject\":{\"Data\":\"s\\u2713\"},\"Body\":{\"Html\":{"
                          "\"Data\":\"<p>x</p>\"}}}}");
        else
            buf_adds(out, "{\"Template\":{\"TemplateArn\":\"arn:aws:ses:t\",\"TemplateData\":"
                          "\"{\\\"a\\\":[1,2]}\"}}");
    }
    buf_adds(out, ",\"EmailTags\":[{\"Name\":\"sesgate-fanout\",\"Value\":\"on\"},{\"Name\":"
                  "\"x\",\"Value\":\"y\"}],\"ConfigurationSetName\":\"cs\"}");
}

/* 120 To recipients: v1 SendEmail and SendTemplatedEmail, v2 Simple,
 * Template and Raw; every copy checked. */
static void test_big(void)
{
    for (int kind = 0; kind < 5; kind++) {
        struct buf body = BUF_INIT;
        int api = kind < 2 ? 1 : 2;
        if (api == 1)
            big_v1(120, kind == 1, &body);
        else
            big_v2(120, kind - 2, &body);
        struct sesreq r;
        struct seserr e = {SESERR_NONE, ""};
        struct fanout_plan p;
        char what[64];
        snprintf(what, sizeof what, "120 recipients, kind %d", kind);
        CHECK(parse(api, body.data, body.len, &r, &e) == 0, "%s: parse: %s", what, e.message);
        CHECK(fanout_plan(&r, true, 10000, false, &p, &e) == 0, "%s: plan: %s", what, e.message);
        CHECK(p.batch && p.tag_stripped && p.nto == 120, "%s: batch of %zu", what, p.nto);
        CHECK(p.nriders == (kind == 4 ? 2u : 3u), "%s: %zu riders", what, p.nriders);
        if (api == 1)
            CHECK_STR(p.to[119], "User 120 <u120@x.com>", what);
        else
            CHECK_STR(p.to[119], "u119@x.com", what);
        /* the template is stored once: no address of any recipient in it */
        CHECK(kind == 4 ||
                  (strstr(p.template.data, "u1") == NULL && strstr(p.template.data, "c1") == NULL),
              "%s: template has no address", what);
        check_copies(&r, &p, NULL, what);
        fanout_plan_cleanup(&p);
        CHECK(fanout_plan(&r, true, 119, false, &p, &e) == -1 &&
                  e.code == SESERR_INVALID_PARAMETER &&
                  strstr(e.message, "at most 119 To recipients") != NULL,
              "%s: max_recipients: %s", what, e.message);
        fanout_plan_cleanup(&p);
        sesreq_cleanup(&r);
        buf_free(&body);
    }
}

/* copybody_render from a template alone (a queue worker's view). */
static void test_render_copy(void)
{
    struct buf out = BUF_INIT;
    struct seserr e;
    struct fanout_rcpt riders[] = {{(char *)"c@x.com", FANOUT_CC}, {(char *)"d@x.com", FANOUT_BCC}};
    struct copybody_spec c = {SESREQ_V1, false,  false, "Action=SendEmail", 16, "a@x.com",
                              true,      riders, 2};
    CHECK(copybody_render(&c, &out, &e) == 0, "v1 formatted");
    CHECK_STR(buf_cstr(&out),
              "Action=SendEmail&Destination.ToAddresses.member.1=a%40x.com&Destination.CcAddresses."
              "member.1=c%40x.com&Destination.BccAddresses.member.1=d%40x.com",
              "v1 formatted");
    buf_reset(&out);
    c.api = SESREQ_V2;
    c.template = "{}";
    c.template_len = 2;
    c.nriders = 0;
    CHECK(copybody_render(&c, &out, &e) == 0, "v2 empty object");
    CHECK_STR(buf_cstr(&out), "{\"Destination\":{\"ToAddresses\":[\"a@x.com\"]}}", "v2 {}");
    buf_reset(&out);
    buf_adds(&out, "keep");
    c.template = "[]";
    CHECK(copybody_render(&c, &out, &e) == -1 && e.code == SESERR_INTERNAL, "v2 not an object");
    CHECK_STR(buf_cstr(&out), "keep", "out restored");
    c.raw = true;
    c.template = "{\"Content\":{\"Raw\":{\"Data\":\"!!\"}}}";
    c.template_len = strlen(c.template);
    CHECK(copybody_render(&c, &out, &e) == -1 && e.code == SESERR_INTERNAL, "v2 bad base64");
    c.template = "{\"Content\":{\"Raw\":{\"Data\":\"RnJvbTogc0B4LmNvbQ0KDQo=\"}}}";
    c.template_len = strlen(c.template);
    c.to = "not an address";
    CHECK(copybody_render(&c, &out, &e) == -1 && e.code == SESERR_BAD_REQUEST, "rewrite refuses");
    c.to = "\xff@x.com";
    CHECK(copybody_render(&c, &out, &e) == -1 && e.code == SESERR_BAD_REQUEST, "not UTF-8");
    c.api = SESREQ_V1;
    c.template = "Action=SendRawEmail&RawMessage.Data=%ZZ";
    c.template_len = strlen(c.template);
    c.to = "a@x.com";
    CHECK(copybody_render(&c, &out, &e) == -1 && e.code == SESERR_INTERNAL, "v1 bad encoding");
    CHECK_STR(buf_cstr(&out), "keep", "out restored");
    c.template = NULL;
    CHECK(copybody_render(&c, &out, &e) == -1, "no template");
    buf_free(&out);
}

/* [send] invalid_recipients = skip: addresses SES refuses are left out of a
 * batch and listed with their reasons; nothing is left out when the send
 * cannot be fanned out. */
static const struct {
    const char *what;
    int api;
    const char *body;
    bool on;
    bool skip;
    enum seserr_code err; /* SESERR_NONE: planned */
    const char *msg;
    bool batch;
    const char *to[4];
    const char *riders[3];
    const char *invalid[4]; /* "addr|reason" */
} skip_cases[] = {
    {"v1 skip",
     1,
     "Action=SendEmail&Source=s%40x.com&Message.Subject.Data=s&Message.Body.Text.Data=b&"
     "Destination.ToAddresses.member.1=a%40x.com&Destination.ToAddresses.member.2=&"
     "Destination.ToAddresses.member.3=not-an-email&Destination.ToAddresses.member.4=b%40x.com&"
     "Destination.CcAddresses.member.1=c..c%40x.com&Destination.CcAddresses.member.2=c%40x.com",
     true,
     true,
     SESERR_NONE,
     NULL,
     true,
     {"a@x.com", "b@x.com"},
     {"c@x.com"},
     {"|Illegal address", "not-an-email|Missing final '@domain'",
      "c..c@x.com|Local address contains dot-dot"}},
    {"v1 refuse",
     1,
     "Action=SendEmail&Source=s%40x.com&Message.Subject.Data=s&Message.Body.Text.Data=b&"
     "Destination.ToAddresses.member.1=a%40x.com&Destination.ToAddresses.member.2=not-an-email",
     true,
     false,
     SESERR_INVALID_PARAMETER,
     "Missing final '@domain'",
     false,
     {NULL},
     {NULL},
     {NULL}},
    {"v1 skip, fan-out off: refused",
     1,
     "Action=SendEmail&Source=s%40x.com&Message.Subject.Data=s&Message.Body.Text.Data=b&"
     "Destination.ToAddresses.member.1=a%40x.com&Destination.ToAddresses.member.2=not-an-email",
     false,
     true,
     SESERR_INVALID_PARAMETER,
     "Missing final '@domain'",
     false,
     {NULL},
     {NULL},
     {NULL}},
    {"v1 skip, one valid To left: still a batch",
     1,
     "Action=SendEmail&Source=s%40x.com&Message.Subject.Data=s&Message.Body.Text.Data=b&"
     "Destination.ToAddresses.member.1=a%40b%C3%BCcher.example&"
     "Destination.ToAddresses.member.2=a%40x.com&Destination.BccAddresses.member.1=a%40x.com",
     true,
     true,
     SESERR_NONE,
     NULL,
     true,
     {"a@x.com"},
     {NULL},
     {"a@b\xc3\xbc"
      "cher.example|Domain contains illegal character"}},
    {"v1 skip, no valid To: refused with the first reason",
     1,
     "Action=SendEmail&Source=s%40x.com&Message.Subject.Data=s&Message.Body.Text.Data=b&"
     "Destination.ToAddresses.member.1=%40x.com&Destination.ToAddresses.member.2=x&"
     "Destination.CcAddresses.member.1=c%40x.com",
     true,
     true,
     SESERR_INVALID_PARAMETER,
     "Missing local name",
     false,
     {NULL},
     {NULL},
     {NULL}},
    {"v2 skip",
     2,
     "{\"FromEmailAddress\":\"s@x.com\",\"Destination\":{\"ToAddresses\":[\"a@x.com\","
     "\"a b@x.com\",\"b@x.com\"]},\"Content\":{\"Simple\":{\"Subject\":{\"Data\":\"s\"},"
     "\"Body\":{\"Text\":{\"Data\":\"t\"}}}}}",
     true,
     true,
     SESERR_NONE,
     NULL,
     true,
     {"a@x.com", "b@x.com"},
     {NULL},
     {"a b@x.com|Local address contains control or whitespace"}},
    {"v2 refuse",
     2,
     "{\"FromEmailAddress\":\"s@x.com\",\"Destination\":{\"ToAddresses\":[\"a@x.com\","
     "\"a b@x.com\"]},\"Content\":{\"Simple\":{\"Subject\":{\"Data\":\"s\"},"
     "\"Body\":{\"Text\":{\"Data\":\"t\"}}}}}",
     true,
     false,
     SESERR_BAD_REQUEST,
     "Local address contains control or whitespace",
     false,
     {NULL},
     {NULL},
     {NULL}},
};

static void test_skip_invalid(void)
{
    for (size_t i = 0; i < sizeof skip_cases / sizeof skip_cases[0]; i++) {
        const char *what = skip_cases[i].what;
        struct sesreq r;
        struct seserr e = {0};
        struct fanout_plan p;
        const char *body = skip_cases[i].body;
        CHECK(parse(skip_cases[i].api, body, strlen(body), &r, &e) == 0, "%s: parse: %s", what,
              e.message);
        int rc = fanout_plan(&r, skip_cases[i].on, 10000, skip_cases[i].skip, &p, &e);
        if (skip_cases[i].err != SESERR_NONE) {
            CHECK(rc == -1 && e.code == skip_cases[i].err, "%s: rc %d code %s", what, rc,
                  seserr_name(e.code));
            CHECK_STR(e.message, skip_cases[i].msg, what);
        } else {
            CHECK(rc == 0, "%s: rc %d (%s)", what, rc, e.message);
            CHECK(p.batch == skip_cases[i].batch, "%s: batch %d", what, p.batch);
            size_t n = 0;
            while (n < 4 && skip_cases[i].to[n])
                n++;
            CHECK(p.nto == n, "%s: %zu To, want %zu", what, p.nto, n);
            for (size_t k = 0; k < n && k < p.nto; k++)
                CHECK_STR(p.to[k], skip_cases[i].to[k], what);
            n = 0;
            while (n < 3 && skip_cases[i].riders[n])
                n++;
            CHECK(p.nriders == n, "%s: %zu riders, want %zu", what, p.nriders, n);
            for (size_t k = 0; k < n && k < p.nriders; k++)
                CHECK_STR(p.riders[k].addr, skip_cases[i].riders[k], what);
            n = 0;
            while (n < 4 && skip_cases[i].invalid[n])
                n++;
            CHECK(p.ninvalid == n, "%s: %zu invalid, want %zu", what, p.ninvalid, n);
            for (size_t k = 0; k < n && k < p.ninvalid; k++) {
                char got[512];
                snprintf(got, sizeof got, "%s|%s", p.invalid[k].addr, p.invalid[k].reason);
                CHECK_STR(got, skip_cases[i].invalid[k], what);
            }
            if (p.batch) {
                struct buf out = BUF_INIT;
                CHECK(copybody_render_plan(&p, 0, &out, &e) == 0, "%s: copy 0 renders", what);
                for (size_t k = 0; k < p.ninvalid; k++)
                    CHECK(strstr(buf_cstr(&out), "not-an-email") == NULL, "%s: left out", what);
                buf_free(&out);
            }
        }
        fanout_plan_cleanup(&p);
        sesreq_cleanup(&r);
    }
}

/* A plan decodes only the start of a large raw message: the header block
 * when it ends within FANOUT_HEAD_MAX (64 KiB) bytes, else all of it; all of
 * the base64 is checked, and a tag entry to remove makes it decode the whole
 * message, which the copies then carry. */
static void test_large_raw_head(void)
{
    static const struct {
        const char *what;
        size_t filler; /* bytes of an X-Filler field before To */
        bool tags;     /* an X-SES-MESSAGE-TAGS field with a sesgate-fanout entry */
        size_t body;   /* body bytes */
        bool bad_b64;  /* a character outside base64 near the end */
    } cases[] = {
        {"short head, long body", 0, false, 200000, false},
        {"head past 64 KiB", 70000, false, 100000, false},
        {"head of 64 KiB less the rest", 65400, false, 100000, false},
        {"tag entry removed, long body", 0, true, 200000, false},
        {"tag entry removed, head past 64 KiB", 70000, true, 1000, false},
        {"bad base64 after 64 KiB", 0, false, 200000, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int api = 1; api <= 2; api++) {
            char what[128];
            snprintf(what, sizeof what, "v%d %s", api, cases[i].what);
            struct buf mime = BUF_INIT, want = BUF_INIT;
            buf_adds(&mime, "From: s@x.com\r\n");
            if (cases[i].filler) {
                buf_adds(&mime, "X-Filler: f");
                for (size_t k = 1; k < cases[i].filler; k++)
                    buf_adds(&mime, k % 70 == 0 ? "\r\n f" : "f");
                buf_adds(&mime, "\r\n");
            }
            buf_adds(&want, buf_cstr(&mime));
            buf_adds(&mime, "To: a@x.com, b@x.com\r\n");
            buf_adds(&want, "To: a@x.com, b@x.com\r\n");
            if (cases[i].tags) {
                buf_adds(&mime, "X-SES-MESSAGE-TAGS: k=v, sesgate-fanout=on\r\n");
                buf_adds(&want, "X-SES-MESSAGE-TAGS: k=v\r\n");
            }
            buf_adds(&mime, "Subject: s\r\n\r\n");
            buf_adds(&want, "Subject: s\r\n\r\n");
            for (size_t k = 0; k < cases[i].body; k++) {
                char c = (char)('a' + k % 26);
                buf_addc(&mime, c);
                buf_addc(&want, c);
            }
            struct buf enc = BUF_INIT, body = BUF_INIT;
            check_b64(mime.data, mime.len, &enc);
            if (cases[i].bad_b64)
                enc.data[enc.len - 10] = '!';
            if (api == 1) {
                buf_adds(&body, "Action=SendRawEmail&Version=2010-12-01&RawMessage.Data=");
                form_encode(enc.data, enc.len, &body);
            } else {
                buf_adds(&body, "{\"Content\":{\"Raw\":{\"Data\":\"");
                buf_add(&body, enc.data, enc.len);
                buf_adds(&body, "\"}}}");
            }
            struct sesreq r;
            struct seserr e = {SESERR_NONE, ""};
            int rc = parse(api, body.data, body.len, &r, &e);
            struct fanout_plan p;
            memset(&p, 0, sizeof p);
            if (rc == 0)
                rc = fanout_plan(&r, true, 100, false, &p, &e);
            if (cases[i].bad_b64) {
                /* refused whole, by the parser (which keeps the header block only) or the plan */
                CHECK(rc == -1 && strstr(e.message, "Invalid base64") != NULL, "%s: rc %d %s", what,
                      rc, e.message);
            } else {
                CHECK(rc == 0 && p.batch && p.nto == 2 && strcmp(p.to[0], "a@x.com") == 0 &&
                          strcmp(p.to[1], "b@x.com") == 0,
                      "%s: rc %d, %zu To: %s", what, rc, p.nto, e.message);
                CHECK(p.tag_stripped == cases[i].tags, "%s: tag_stripped", what);
                struct buf msg = BUF_INIT;
                if (api == 1) {
                    body_message(1, p.template.data, p.template.len, &msg);
                } else {
                    json_t *j = json_loadb(p.template.data, p.template.len, 0, NULL);
                    json_t *d = json_object_get(
                        json_object_get(json_object_get(j, "Content"), "Raw"), "Data");
                    if (json_is_string(d))
                        util_base64_decode(json_string_value(d), json_string_length(d), &msg);
                    json_decref(j);
                }
                CHECK(msg.len == want.len && memcmp(msg.data, want.data, want.len) == 0,
                      "%s: the template's message (%zu bytes, want %zu)", what, msg.len, want.len);
                buf_free(&msg);
                if (rc == 0 && p.batch)
                    check_copies(&r, &p, NULL, what);
            }
            fanout_plan_cleanup(&p);
            sesreq_cleanup(&r);
            buf_free(&enc);
            buf_free(&body);
            buf_free(&mime);
            buf_free(&want);
        }
    }
}

/* fanout_with_dest: a send that is not a batch with other destinations
 * (suppressed recipients left out), parsed back with sesreq. */
static void test_with_dest(void)
{
    static const char *const mime =
        "From: s@x.example\r\nTo: a@x.example\r\nSubject: hi\r\n\r\nbody\r\n";
    struct fanout_rcpt riders[2] = {{(char *)"c@x.example", FANOUT_CC},
                                    {(char *)"d@x.example", FANOUT_BCC}};
    char *to[1] = {(char *)"a@x.example"};
    /* v1 formatted: every other parameter kept, destinations replaced */
    {
        const char *body = "Action=SendEmail&Source=s%40x.example&Destination.ToAddresses.member.1="
                           "a%40x.example&Destination.ToAddresses.member.2=gone%40x.example&"
                           "Destination.CcAddresses.member.1=c%40x.example&Message.Subject.Data=hi&"
                           "Message.Body.Text.Data=b";
        struct sesreq r;
        struct seserr e;
        CHECK(parse(1, body, strlen(body), &r, &e) == 0, "with_dest v1: parse");
        struct buf out = BUF_INIT;
        CHECK(fanout_with_dest(SESREQ_V1, false, &r.form, NULL, 0, to, 1, riders, 2, &out) == 0,
              "with_dest v1");
        CHECK_STR(buf_cstr(&out),
                  "Action=SendEmail&Source=s%40x.example&Message.Subject.Data=hi&Message.Body.Text."
                  "Data=b&Destination.ToAddresses.member.1=a%40x.example&Destination.CcAddresses."
                  "member.1=c%40x.example&Destination.BccAddresses.member.1=d%40x.example",
                  "with_dest v1 body");
        sesreq_cleanup(&r);
        buf_free(&out);
    }
    /* v1 raw: Destinations, the message unchanged */
    {
        struct buf body = BUF_INIT;
        build_body(
            1, "Action=SendRawEmail&RawMessage.Data={RAW}&Destinations.member.1=gone%40x.example",
            mime, &body);
        struct sesreq r;
        struct seserr e;
        CHECK(parse(1, body.data, body.len, &r, &e) == 0, "with_dest raw v1: parse");
        struct buf out = BUF_INIT;
        CHECK(fanout_with_dest(SESREQ_V1, true, &r.form, NULL, 0, to, 1, riders, 1, &out) == 0,
              "with_dest raw v1");
        struct sesreq back;
        CHECK(parse(1, out.data, out.len, &back, &e) == 0, "with_dest raw v1: parses back");
        size_t n1 = 0, n2 = 0;
        const char *d1 = form_get(&back.form, "Destinations.member.1", &n1);
        const char *d2 = form_get(&back.form, "Destinations.member.2", &n2);
        CHECK(d1 && strncmp(d1, "a@x.example", n1) == 0 && d2 &&
                  strncmp(d2, "c@x.example", n2) == 0,
              "with_dest raw v1: destinations");
        CHECK(form_get(&back.form, "Destinations.member.3", &n1) == NULL, "with_dest raw v1: two");
        size_t l1 = 0, l2 = 0;
        const char *m1 = sesreq_raw_data(&r, &l1), *m2 = sesreq_raw_data(&back, &l2);
        CHECK(m1 && m2 && l1 == l2 && memcmp(m1, m2, l1) == 0, "with_dest raw v1: message kept");
        sesreq_cleanup(&back);
        sesreq_cleanup(&r);
        buf_free(&out);
        buf_free(&body);
    }
    /* v2 raw read in place: the data spliced back byte for byte */
    {
        struct buf body = BUF_INIT;
        build_body(2,
                   "{\"Content\": {\"Raw\": {\"Data\": \"{RAW}\"}}, \"Destination\": "
                   "{\"ToAddresses\": [\"gone@x.example\"]}, \"ConfigurationSetName\": \"cs\"}",
                   mime, &body);
        struct buf out = BUF_INIT;
        CHECK(fanout_with_dest(SESREQ_V2, true, NULL, body.data, body.len, to, 1, riders + 1, 1,
                               &out) == 0,
              "with_dest v2");
        json_t *j = json_loadb(out.data, out.len, 0, NULL);
        json_t *want =
            json_pack("{s[s]s[s]}", "ToAddresses", "a@x.example", "BccAddresses", "d@x.example");
        CHECK(json_equal(json_object_get(j, "Destination"), want), "with_dest v2: destination");
        CHECK(strcmp(json_string_value(json_object_get(j, "ConfigurationSetName")), "cs") == 0,
              "with_dest v2: the rest kept");
        struct buf b64 = BUF_INIT;
        check_b64(mime, strlen(mime), &b64);
        CHECK_STR(json_string_value(json_object_get(
                      json_object_get(json_object_get(j, "Content"), "Raw"), "Data")),
                  buf_cstr(&b64), "with_dest v2: data");
        json_decref(want);
        json_decref(j);
        buf_free(&b64);
        buf_free(&out);
        CHECK(fanout_with_dest(SESREQ_V2, false, NULL, "[1]", 3, to, 1, NULL, 0, &out) == -1 &&
                  out.len == 0,
              "with_dest v2: not an object");
        buf_free(&body);
    }
}

/* fanout_plan_ex's always_batch: one To recipient makes a batch (with its
 * riders); no To recipient, fan-out off or opted out does not. */
static void test_always_batch(void)
{
    static const struct {
        const char *mime, *body;
        bool on, batch;
        size_t nto, nriders;
    } t[] = {
        {"From: s@x.com\r\nTo: a@x.com\r\nSubject: s\r\n\r\nb\r\n",
         "Action=SendRawEmail&Destinations.member.1=a%40x.com&Destinations.member.2=h%40x.com"
         "&RawMessage.Data={RAW}",
         true, true, 1, 1},
        {"From: s@x.com\r\nTo: a@x.com\r\nSubject: s\r\n\r\nb\r\n",
         "Action=SendRawEmail&Destinations.member.1=a%40x.com&RawMessage.Data={RAW}", false, false,
         1, 0},
        {"From: s@x.com\r\nTo: a@x.com\r\nSubject: s\r\n\r\nb\r\n",
         "Action=SendRawEmail&Destinations.member.1=h%40x.com&RawMessage.Data={RAW}", true, false,
         0, 1},
        {"From: s@x.com\r\nTo: a@x.com\r\nX-SES-MESSAGE-TAGS: sesgate-fanout=off\r\n\r\nb\r\n",
         "Action=SendRawEmail&Destinations.member.1=a%40x.com&RawMessage.Data={RAW}", true, false,
         1, 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        struct buf body = BUF_INIT;
        build_body(1, t[i].body, t[i].mime, &body);
        struct sesreq r;
        struct seserr e;
        struct fanout_plan p;
        CHECK(parse(1, body.data, body.len, &r, &e) == 0, "always %zu: parse", i);
        CHECK(fanout_plan_ex(&r, t[i].on, 100, false, true, NULL, NULL, &p, &e) == 0,
              "always %zu: plan: %s", i, e.message);
        CHECK(p.batch == t[i].batch && p.nto == t[i].nto && p.nriders == t[i].nriders,
              "always %zu: batch %d nto %zu nriders %zu", i, p.batch, p.nto, p.nriders);
        fanout_plan_cleanup(&p);
        /* without always_batch, one To recipient is never a batch */
        CHECK(fanout_plan(&r, t[i].on, 100, false, &p, &e) == 0 && !p.batch, "always %zu: plain",
              i);
        fanout_plan_cleanup(&p);
        sesreq_cleanup(&r);
        buf_free(&body);
    }
}

int main(void)
{
    test_always_batch();
    test_with_dest();
    test_large_raw_head();
    test_skip_invalid();
    test_plan_cases();
    test_boto_copies();
    test_big();
    test_render_copy();
    return check_done("fanout");
}
