/* Unit tests for copybody: a copy's body produced piece by piece is byte for
 * byte the body rendered whole, its length and SHA-256 are those of those
 * bytes, it can be read again from the start, and a copy of a large raw
 * message owns its header block, not the message. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "copybody.h"
#include "fanout.h"
#include "sesreq.h"
#include "util.h"

#define V2_PATH "/v2/email/outbound-emails"

/* A raw message with LF or CRLF line ends, a folded To field, Cc, Bcc and a
 * body of body_len bytes. */
static void raw_message(struct buf *m, const char *eol, size_t body_len)
{
    buf_printf(m, "From: News <news@example.com>%sTo: a@x.example,%s b@x.example, c@x.example%s",
               eol, eol, eol);
    buf_printf(m, "Cc: cc@x.example%sBcc: hidden@x.example%sSubject: s%s%s", eol, eol, eol, eol);
    for (size_t i = 0; i < body_len; i++)
        buf_addc(m, (char)("0123456789abcdef+/=\xc3\xa9\n"[i % 21]));
}

/* The request of one case, as a client would send it. */
static void request(int api, bool raw, const char *eol, size_t body_len, struct buf *out)
{
    struct buf m = BUF_INIT, b64 = BUF_INIT;
    raw_message(&m, eol, body_len);
    check_b64(m.data, m.len, &b64);
    if (api == 1 && raw) {
        buf_adds(out, "Action=SendRawEmail&Version=2010-12-01&RawMessage.Data=");
        form_encode(b64.data, b64.len, out);
        buf_adds(out, "&Tags.member.1.Name=t&Tags.member.1.Value=v");
    } else if (api == 1) {
        buf_adds(out, "Action=SendEmail&Source=s%40example.com&Message.Subject.Data=s+%C3%A9&"
                      "Message.Body.Text.Data=");
        form_encode(m.data, m.len, out);
        buf_adds(out, "&Destination.ToAddresses.member.1=a%40x.example&Destination.ToAddresses."
                      "member.2=b%40x.example&Destination.CcAddresses.member.1=cc%40x.example");
    } else if (raw) {
        buf_printf(out,
                   "{\"Content\":{\"Raw\":{\"Data\":\"%s\"}},\"EmailTags\":[{\"Name\":\"t\","
                   "\"Value\":\"v\"}]}",
                   b64.data);
    } else {
        buf_adds(out, "{\"FromEmailAddress\":\"s@example.com\",\"Destination\":{\"ToAddresses\":"
                      "[\"a@x.example\",\"b@x.example\"],\"BccAddresses\":[\"z@x.example\"]},"
                      "\"Content\":{\"Simple\":{\"Subject\":{\"Data\":\"s\"},\"Body\":{\"Text\":"
                      "{\"Data\":\"t\"}}}}}");
    }
    buf_free(&m);
    buf_free(&b64);
}

/* Read c to its end in pieces of at most step bytes into out. */
static void read_all(struct copybody *c, size_t step, struct buf *out)
{
    buf_reserve(out, c->len + step);
    size_t k;
    while ((k = copybody_read(c, out->data + out->len, step)) > 0)
        out->len += k;
    out->data[out->len] = '\0';
}

static void check_case(int api, bool raw, const char *eol, size_t body_len)
{
    char what[96];
    snprintf(what, sizeof what, "v%d %s %s %zu", api, raw ? "raw" : "formatted",
             eol[0] == '\r' ? "CRLF" : "LF", body_len);
    struct buf req = BUF_INIT;
    request(api, raw, eol, body_len, &req);
    struct sesreq r;
    memset(&r, 0, sizeof r);
    struct seserr e = {0};
    int rc = api == 1
                 ? sesreq_parse_v1(req.data, req.len, &r, &e)
                 : sesreq_parse_v2("POST", V2_PATH, strlen(V2_PATH), req.data, req.len, &r, &e);
    CHECK(rc == 0, "%s: parse: %s", what, e.message);
    struct fanout_plan p;
    CHECK(fanout_plan(&r, true, 100, false, &p, &e) == 0 && p.batch, "%s: plan: %s", what,
          e.message);
    struct copybody_batch b;
    CHECK(copybody_batch_init(&b, p.api, p.raw, p.dkim_envelope_only, p.template.data,
                              p.template.len, &e) == 0,
          "%s: batch: %s", what, e.message);
    for (size_t k = 0; k < p.nto; k++) {
        struct buf whole = BUF_INIT;
        CHECK(copybody_render_plan(&p, k, &whole, &e) == 0, "%s: render %zu", what, k);
        struct copybody c;
        CHECK(copybody_init(&c, &b, p.to[k], k == 0, k == 0 ? p.riders : NULL,
                            k == 0 ? p.nriders : 0, &e) == 0,
              "%s: init %zu: %s", what, k, e.message);
        char hash[UTIL_SHA256_HEX_LEN + 1];
        util_sha256_hex(whole.data, whole.len, hash);
        CHECK(c.len == whole.len && strcmp(c.sha256, hash) == 0, "%s copy %zu: length %zu/%zu",
              what, k, c.len, whole.len);
        static const size_t steps[] = {1, 2, 3, 7, 11, 12, 13, 4096, 1 << 20};
        for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
            struct buf got = BUF_INIT;
            copybody_rewind(&c);
            read_all(&c, steps[s], &got);
            CHECK(got.len == whole.len && memcmp(got.data, whole.data, whole.len) == 0,
                  "%s copy %zu: read in steps of %zu differs", what, k, steps[s]);
            buf_free(&got);
        }
        /* a raw copy owns its header block and destinations, not the message */
        if (raw && body_len >= 100000)
            CHECK(c.head.len + c.tail.len < 1000, "%s copy %zu owns %zu bytes", what, k,
                  c.head.len + c.tail.len);
        copybody_cleanup(&c);
        buf_free(&whole);
    }
    copybody_batch_cleanup(&b);
    fanout_plan_cleanup(&p);
    sesreq_cleanup(&r);
    buf_free(&req);
}

/* Errors: a template that is not one, a recipient the rewrite refuses. */
static void test_errors(void)
{
    struct copybody_batch b;
    struct seserr e = {0};
    CHECK(copybody_batch_init(&b, SESREQ_V2, false, false, "[]", 2, &e) == -1 &&
              e.code == SESERR_INTERNAL,
          "v2 template not an object");
    CHECK(copybody_batch_init(&b, SESREQ_V1, true, false, "RawMessage.Data=%%", 18, &e) == -1 &&
              e.code == SESERR_INTERNAL,
          "v1 template not form-encoded");
    CHECK(copybody_batch_init(&b, SESREQ_V1, true, false, "RawMessage.Data=!!", 18, &e) == -1 &&
              e.code == SESERR_INTERNAL,
          "invalid base64");
    CHECK(copybody_batch_init(&b, SESREQ_V1, true, false, "RawMessage.Data=RnJvbTogcw%3D%3D", 32,
                              &e) == 0,
          "v1 raw template");
    struct copybody c;
    CHECK(copybody_init(&c, &b, "a\r\nBcc: x@y", true, NULL, 0, &e) == -1 &&
              e.code == SESERR_INVALID_PARAMETER,
          "a recipient with CR LF");
    copybody_batch_cleanup(&b);
}

/* v2 raw templates: the message is read straight out of the template when
 * it is "Raw":{"Data":"<base64>"} as sesgate stores it, else through a whole
 * parse; both give the template split around it exactly as jansson writes
 * it. */
static void test_v2_split(void)
{
    static const struct {
        const char *what, *template, *pre, *post;
    } cases[] = {
        {"as stored", "{\"Content\":{\"Raw\":{\"Data\":\"RnJvbTogcw==\"}},\"EmailTags\":[]}",
         "{\"Content\":{\"Raw\":{\"Data\":\"", "\"}},\"EmailTags\":[]"},
        {"the key in another member's string",
         "{\"FromEmailAddress\":\"\\\"Raw\\\":{\\\"Data\\\":\\\"x@y.example\",\"Content\":{"
         "\"Raw\":{\"Data\":\"RnJvbTogcw==\"}}}",
         "{\"FromEmailAddress\":\"\\\"Raw\\\":{\\\"Data\\\":\\\"x@y.example\",\"Content\":{"
         "\"Raw\":{\"Data\":\"",
         "\"}}"},
        {"an escape in the data", "{\"Content\":{\"Raw\":{\"Data\":\"RnJvbTogcw\\u003d\\u003d\"}}}",
         "{\"Content\":{\"Raw\":{\"Data\":\"", "\"}}"},
        {"Raw.Data of another member first",
         "{\"Other\":{\"Raw\":{\"Data\":\"QUJD\"}},\"Content\":{\"Raw\":{\"Data\":\"RnJvbTogcw==\"}"
         "}}",
         "{\"Other\":{\"Raw\":{\"Data\":\"QUJD\"}},\"Content\":{\"Raw\":{\"Data\":\"", "\"}}"},
        {"spaces", "{ \"Content\": {\"Raw\": {\"Data\": \"RnJvbTogcw==\"} } }",
         "{\"Content\":{\"Raw\":{\"Data\":\"", "\"}}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct copybody_batch b;
        struct seserr e = {0};
        const char *t = cases[i].template;
        CHECK(copybody_batch_init(&b, SESREQ_V2, true, false, t, strlen(t), &e) == 0, "%s: %s",
              cases[i].what, e.message);
        CHECK(b.has_msg && b.msg.len == 7 && memcmp(b.msg.data, "From: s", 7) == 0,
              "%s: the message", cases[i].what);
        CHECK(b.pre_len == strlen(cases[i].pre) && memcmp(b.pre, cases[i].pre, b.pre_len) == 0,
              "%s: before the message: %.*s", cases[i].what, (int)b.pre_len, b.pre);
        CHECK(b.post_len == strlen(cases[i].post) && memcmp(b.post, cases[i].post, b.post_len) == 0,
              "%s: after the message: %.*s", cases[i].what, (int)b.post_len, b.post);
        copybody_batch_cleanup(&b);
    }
}

int main(void)
{
    static const size_t sizes[] = {0, 1, 2, 3, 100, 200001};
    for (int api = 1; api <= 2; api++)
        for (int raw = 0; raw <= 1; raw++)
            for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
                check_case(api, raw, "\r\n", sizes[s]);
                check_case(api, raw, "\n", sizes[s]);
            }
    test_errors();
    test_v2_split();
    return check_done("test_copybody");
}
