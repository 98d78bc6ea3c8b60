/* Unit tests for sesbulk: reading bulk calls, SES's merge of replacement
 * data, tags and headers, each destination's message, and the answer. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "check.h"
#include "sesbulk.h"
#include "sesreq.h"

/* Parse body (v1 when it starts with "Action", else a v2 SendBulkEmail
 * body) and read it into b; sesbulk's result, or -2 when sesreq refused it. */
static int test_read(const char *body, struct sesreq *r, struct sesbulk *b, struct seserr *e)
{
    static const char path[] = "/v2/email/outbound-bulk-emails";
    memset(r, 0, sizeof *r);
    memset(b, 0, sizeof *b);
    int rc = strncmp(body, "Action", 6) == 0
                 ? sesreq_parse_v1(body, strlen(body), r, e)
                 : sesreq_parse_v2("POST", path, strlen(path), body, strlen(body), r, e);
    if (rc < 0)
        return -2;
    return sesbulk_from_request(r, b, e);
}

#define V1 "Action=SendBulkTemplatedEmail&Version=2010-12-01"
#define D1 "&Destinations.member.1.Destination.ToAddresses.member.1=a%40x.com"

struct read_case {
    const char *body;
    int rc; /* test_read's result */
    enum seserr_code code;
    const char *message; /* expected message (rc < 0), or NULL */
    size_t n;            /* destinations (rc 0) */
    size_t recipients0;  /* recipients of the first destination (rc 0) */
    size_t tags;         /* default tags (rc 0) */
};

static const struct read_case read_cases[] = {
    {V1 "&Source=s%40x.com&Template=t&DefaultTemplateData=%7B%7D" D1
        "&Destinations.member.1.Destination.CcAddresses.member.1=c%40x.com"
        "&Destinations.member.1.Destination.BccAddresses.member.1=b%40x.com"
        "&Destinations.member.2.Destination.ToAddresses.member.1=d%40x.com"
        "&DefaultTags.member.1.Name=k&DefaultTags.member.1.Value=v",
     0, SESERR_NONE, NULL, 2, 3, 1},
    /* sesreq reads the sender first (-2) */
    {V1 "&Template=t&DefaultTemplateData=%7B%7D" D1, -2, SESERR_MISSING_PARAMETER,
     "The request must contain the parameter Source.", 0, 0, 0},
    {V1 "&Source=s%40x.com&DefaultTemplateData=%7B%7D" D1, -1, SESERR_MISSING_PARAMETER,
     "The request must contain the parameter Template.", 0, 0, 0},
    {V1 "&Source=s%40x.com&Template=t" D1, -1, SESERR_MISSING_PARAMETER,
     "The request must contain the parameter DefaultTemplateData.", 0, 0, 0},
    {V1 "&Source=s%40x.com&Template=t&DefaultTemplateData=%7B%7D", -1, SESERR_MISSING_PARAMETER,
     "The request must contain the parameter Destinations.", 0, 0, 0},
    {V1 "&Source=s%40x.com&Template=t&DefaultTemplateData=%5B%5D" D1, -1, SESERR_INVALID_PARAMETER,
     "DefaultTemplateData is not a JSON object.", 0, 0, 0},
    {V1 "&Source=s%40x.com&Template=t&DefaultTemplateData=%7B%7D"
        "&Destinations.member.51.Destination.ToAddresses.member.1=a%40x.com",
     -1, SESERR_INVALID_PARAMETER, "Destination count exceeds 50.", 0, 0, 0},
    {V1 "&Source=s%40x.com&Template=t&DefaultTemplateData=%7B%7D"
        "&Destinations.member.99999999999999999999.Destination.ToAddresses.member.1=a%40x.com",
     -1, SESERR_INVALID_PARAMETER, "Destination count exceeds 50.", 0, 0, 0},
    /* a gap: destination 1 has no recipient */
    {V1 "&Source=s%40x.com&Template=t&DefaultTemplateData=%7B%7D"
        "&Destinations.member.2.Destination.ToAddresses.member.1=a%40x.com",
     -1, SESERR_INVALID_PARAMETER, "Missing final '@domain'", 0, 0, 0},
    {V1 "&Source=s%40x.com&Template=t&DefaultTemplateData=%7B%7D"
        "&Destinations.member.1.Destination.ToAddresses.member.1=nodomain",
     -1, SESERR_INVALID_PARAMETER, "Missing final '@domain'", 0, 0, 0},
    {V1 "&Source=nodomain&Template=t&DefaultTemplateData=%7B%7D" D1, -2, SESERR_INVALID_PARAMETER,
     "Illegal address", 0, 0, 0},
    {V1 "&Source=s%40x.com&Template=t&DefaultTemplateData=%7B%7D" D1
        "&DefaultTags.member.1.Name=bad+name&DefaultTags.member.1.Value=v",
     -1, SESERR_INVALID_PARAMETER, NULL, 0, 0, 0},
    {V1 "&Source=s%40x.com&Template=t&DefaultTemplateData=%7B%7D" D1
        "&Destinations.member.1.ReplacementTags.member.1.Name=k",
     -1, SESERR_MISSING_PARAMETER,
     "The request must contain the parameter Destinations.member.1.ReplacementTags.member.1.Value.",
     0, 0, 0},
    /* v2 */
    {"{\"FromEmailAddress\":\"s@x.com\",\"DefaultContent\":{\"Template\":{\"TemplateName\":\"t\","
     "\"TemplateData\":\"{}\"}},\"DefaultEmailTags\":[{\"Name\":\"a\",\"Value\":\"1\"},{\"Name\":"
     "\"b\",\"Value\":\"\"}],\"BulkEmailEntries\":[{\"Destination\":{\"ToAddresses\":[\"a@x.com\","
     "\"b@x.com\"]}}]}",
     0, SESERR_NONE, NULL, 1, 2, 2},
    {"{\"FromEmailAddress\":\"s@x.com\",\"DefaultContent\":{\"Template\":{\"TemplateContent\":{"
     "\"Subject\":\"S\"}}},\"BulkEmailEntries\":[{\"Destination\":{\"BccAddresses\":[\"a@x.com\"]}}"
     "]}",
     0, SESERR_NONE, NULL, 1, 1, 0},
    {"{\"FromEmailAddress\":\"s@x.com\",\"BulkEmailEntries\":[{\"Destination\":{\"ToAddresses\":["
     "\"a@x.com\"]}}]}",
     -1, SESERR_BAD_REQUEST, "DefaultContent.Template is required", 0, 0, 0},
    {"{\"FromEmailAddress\":\"s@x.com\",\"DefaultContent\":{\"Template\":{\"TemplateName\":\"t\"}},"
     "\"BulkEmailEntries\":[]}",
     -1, SESERR_BAD_REQUEST, "BulkEmailEntries is required", 0, 0, 0},
    {"{\"FromEmailAddress\":\"s@x.com\",\"DefaultContent\":{\"Template\":{\"TemplateName\":\"t\"}},"
     "\"BulkEmailEntries\":[{}]}",
     -1, SESERR_BAD_REQUEST, "Every BulkEmailEntry needs a Destination", 0, 0, 0},
    {"{\"DefaultContent\":{\"Template\":{\"TemplateName\":\"t\"}},\"BulkEmailEntries\":[{"
     "\"Destination\":{\"ToAddresses\":[\"a@x.com\"]}}]}",
     -2, SESERR_BAD_REQUEST, "FromEmailAddress is required", 0, 0, 0},
    {"{\"FromEmailAddress\":\"s@x.com\",\"DefaultContent\":{\"Template\":{\"TemplateName\":\"t\","
     "\"TemplateData\":\"nope\"}},\"BulkEmailEntries\":[{\"Destination\":{\"ToAddresses\":["
     "\"a@x.com\"]}}]}",
     -1, SESERR_INVALID_PARAMETER, "TemplateData is not a JSON object.", 0, 0, 0},
    {"{\"FromEmailAddress\":\"s@x.com\",\"DefaultContent\":{\"Template\":{\"TemplateName\":\"t\","
     "\"Headers\":[{\"Name\":\"To\",\"Value\":\"x\"}]}},\"BulkEmailEntries\":[{\"Destination\":{"
     "\"ToAddresses\":[\"a@x.com\"]}}]}",
     -1, SESERR_BAD_REQUEST, "Invalid header", 0, 0, 0},
};

/* A v2 body with n entries of one To each. */
static char *test_v2_entries(size_t n)
{
    struct buf b = BUF_INIT;
    buf_adds(&b, "{\"FromEmailAddress\":\"s@x.com\",\"DefaultContent\":{\"Template\":{"
                 "\"TemplateName\":\"t\"}},\"BulkEmailEntries\":[");
    for (size_t i = 0; i < n; i++)
        buf_printf(&b, "%s{\"Destination\":{\"ToAddresses\":[\"r%zu@x.com\"]}}", i ? "," : "", i);
    buf_adds(&b, "]}");
    return buf_detach(&b, NULL);
}

/* A v1 body whose one destination has n To recipients. */
static char *test_v1_recipients(size_t n)
{
    struct buf b = BUF_INIT;
    buf_adds(&b, V1 "&Source=s%40x.com&Template=t&DefaultTemplateData=%7B%7D");
    for (size_t i = 1; i <= n; i++)
        buf_printf(&b, "&Destinations.member.1.Destination.ToAddresses.member.%zu=r%zu%%40x.com", i,
                   i);
    return buf_detach(&b, NULL);
}

static void test_reading(void)
{
    for (size_t i = 0; i < sizeof read_cases / sizeof read_cases[0]; i++) {
        const struct read_case *c = &read_cases[i];
        struct sesreq r;
        struct sesbulk b;
        struct seserr e = {SESERR_NONE, ""};
        int rc = test_read(c->body, &r, &b, &e);
        CHECK(rc == c->rc, "case %zu: rc %d, want %d (%s)", i, rc, c->rc, e.message);
        if (rc == 0 && c->rc == 0) {
            CHECK(b.n == c->n, "case %zu: %zu destinations, want %zu", i, b.n, c->n);
            size_t n0 = b.entries[0].to.n + b.entries[0].cc.n + b.entries[0].bcc.n;
            CHECK(n0 == c->recipients0, "case %zu: %zu recipients", i, n0);
            CHECK(b.tags.n == c->tags, "case %zu: %zu tags", i, b.tags.n);
            CHECK(json_is_object(b.defaults), "case %zu: defaults", i);
        } else if (rc < 0) {
            CHECK(e.code == c->code, "case %zu: code %d, want %d", i, (int)e.code, (int)c->code);
            if (c->message)
                CHECK_STR(e.message, c->message, "message");
        }
        sesbulk_cleanup(&b);
        sesreq_cleanup(&r);
    }
    /* 50 entries are taken, 51 are not; 50 recipients in a destination, 51 not */
    size_t counts[] = {50, 51};
    for (size_t k = 0; k < 2; k++) {
        struct sesreq r;
        struct sesbulk b;
        struct seserr e = {SESERR_NONE, ""};
        char *body = test_v2_entries(counts[k]);
        int rc = test_read(body, &r, &b, &e);
        CHECK(rc == (k == 0 ? 0 : -1), "%zu entries: rc %d (%s)", counts[k], rc, e.message);
        if (k == 1) {
            CHECK(e.code == SESERR_BAD_REQUEST, "51 entries: code %d", (int)e.code);
            CHECK_STR(e.message, "Destination count exceeds 50.", "51 entries");
        }
        sesbulk_cleanup(&b);
        sesreq_cleanup(&r);
        free(body);
        body = test_v1_recipients(counts[k]);
        rc = test_read(body, &r, &b, &e);
        CHECK(rc == (k == 0 ? 0 : -1), "%zu recipients: rc %d (%s)", counts[k], rc, e.message);
        if (k == 1)
            CHECK_STR(e.message, "Recipient count exceeds 50.", "51 recipients");
        sesbulk_cleanup(&b);
        sesreq_cleanup(&r);
        free(body);
    }
}

struct merge_case {
    const char *def, *rep, *want; /* rep NULL: absent */
};

static const struct merge_case merge_cases[] = {
    {"{\"a\":1,\"b\":2}", NULL, "{\"a\":1,\"b\":2}"},
    {"{\"a\":1,\"b\":2}", "{}", "{\"a\":1,\"b\":2}"},
    {"{\"a\":1,\"b\":2}", "{\"b\":3,\"c\":4}", "{\"a\":1,\"b\":3,\"c\":4}"},
    /* objects merge recursively */
    {"{\"o\":{\"x\":\"dx\",\"y\":\"dy\"}}", "{\"o\":{\"x\":\"rx\"}}",
     "{\"o\":{\"x\":\"rx\",\"y\":\"dy\"}}"},
    {"{\"o\":{\"p\":{\"q\":1,\"r\":2}}}", "{\"o\":{\"p\":{\"r\":3}}}",
     "{\"o\":{\"p\":{\"q\":1,\"r\":3}}}"},
    /* arrays and scalars are replaced whole, also by or with an object */
    {"{\"l\":[1,2,3]}", "{\"l\":[9]}", "{\"l\":[9]}"},
    {"{\"o\":{\"x\":1}}", "{\"o\":\"s\"}", "{\"o\":\"s\"}"},
    {"{\"o\":\"s\"}", "{\"o\":{\"x\":1}}", "{\"o\":{\"x\":1}}"},
    {"{\"a\":1}", "{\"a\":null}", "{\"a\":null}"},
};

static void test_merge_data(void)
{
    json_error_t jerr;
    for (size_t i = 0; i < sizeof merge_cases / sizeof merge_cases[0]; i++) {
        const struct merge_case *c = &merge_cases[i];
        json_t *def = json_loads(c->def, 0, &jerr);
        json_t *rep = c->rep ? json_loads(c->rep, 0, &jerr) : NULL;
        json_t *want = json_loads(c->want, 0, &jerr);
        json_t *got = sesbulk_merge_data(def, rep);
        char *s = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
        CHECK(json_equal(got, want), "merge case %zu: got %s", i, s);
        /* the inputs are not changed */
        json_t *def2 = json_loads(c->def, 0, &jerr);
        CHECK(json_equal(def, def2), "merge case %zu: defaults changed", i);
        free(s);
        json_decref(def);
        json_decref(def2);
        json_decref(rep);
        json_decref(want);
        json_decref(got);
    }
    json_t *got = sesbulk_merge_data(NULL, NULL);
    CHECK(json_is_object(got) && json_object_size(got) == 0, "merge of nothing");
    json_decref(got);
}

struct named_case {
    const char *def[3], *rep[3];
    char sep;
    const char *want[5];
};

static const struct named_case named_cases[] = {
    {{"a=1", "b=2"}, {NULL}, '=', {"a=1", "b=2"}},
    {{NULL}, {"a=1"}, '=', {"a=1"}},
    {{"a=1", "b=2"}, {"b=3", "c=4"}, '=', {"a=1", "b=3", "c=4"}},
    /* tag names compare exactly */
    {{"a=1"}, {"A=2"}, '=', {"a=1", "A=2"}},
    {{"ab=1"}, {"a=2"}, '=', {"ab=1", "a=2"}},
    /* header names compare without case */
    {{"X-A: 1", "List-Unsubscribe: <d>"},
     {"list-unsubscribe: <r>"},
     ':',
     {"X-A: 1", "list-unsubscribe: <r>"}},
};

static void test_merge_named(void)
{
    for (size_t i = 0; i < sizeof named_cases / sizeof named_cases[0]; i++) {
        const struct named_case *c = &named_cases[i];
        struct sesmail_list def = {0}, rep = {0}, out = {0};
        for (size_t k = 0; k < 3 && c->def[k]; k++)
            sesmail_list_add(&def, c->def[k], strlen(c->def[k]));
        for (size_t k = 0; k < 3 && c->rep[k]; k++)
            sesmail_list_add(&rep, c->rep[k], strlen(c->rep[k]));
        sesbulk_merge_named(&def, &rep, c->sep, &out);
        size_t want = 0;
        while (want < 5 && c->want[want])
            want++;
        CHECK(out.n == want, "named case %zu: %zu items, want %zu", i, out.n, want);
        for (size_t k = 0; k < out.n && k < want; k++)
            CHECK_STR(out.v[k], c->want[k], "named item");
        sesmail_list_free(&def);
        sesmail_list_free(&rep);
        sesmail_list_free(&out);
    }
}

static void test_entry_messages(void)
{
    static const char body[] =
        V1 "&Source=s%40x.com&Template=t&ReplyToAddresses.member.1=r%40x.com"
           "&DefaultTemplateData=%7B%22name%22%3A%22friend%22%2C%22o%22%3A%7B%22a%22%3A1%2C%22b%22"
           "%3A2%7D%7D" /* {"name":"friend","o":{"a":1,"b":2}} */
           "&DefaultTags.member.1.Name=k&DefaultTags.member.1.Value=d"
           "&DefaultTags.member.2.Name=j&DefaultTags.member.2.Value=e" D1
           "&Destinations.member.1.ReplacementTemplateData=%7B%22o%22%3A%7B%22b%22%3A5%7D%7D"
           "&Destinations.member.1.ReplacementTags.member.1.Name=k"
           "&Destinations.member.1.ReplacementTags.member.1.Value=r"
           "&Destinations.member.2.Destination.CcAddresses.member.1=c%40x.com"
           "&Destinations.member.2.ReplacementTemplateData=%7Bnope"
           "&Destinations.member.3.Destination.BccAddresses.member.1=b%40x.com"
           "&Destinations.member.3.ReplacementTemplateData=%7B%22name%22%3A%22B%22%7D";
    struct sesreq r;
    struct sesbulk b;
    struct seserr e = {SESERR_NONE, ""};
    CHECK(test_read(body, &r, &b, &e) == 0, "entry body: %s", e.message);
    static const struct {
        int rc;
        const char *subject, *html;
        size_t ntags;
        const char *tag0;
    } want[] = {
        {0, "friend 1 5", "<b>friend</b>", 2, "k=r"},
        {-1, NULL, NULL, 0, NULL},
        {0, "B 1 2", "<b>B</b>", 2, "k=d"},
    };
    for (size_t i = 0; i < b.n && i < 3; i++) {
        struct sesmail_msg m = {0};
        int rc = sesbulk_entry_message(&b, i, "{{name}} {{o.a}} {{o.b}}", NULL, "<b>{{name}}</b>",
                                       &m, &e);
        CHECK(rc == want[i].rc, "entry %zu: rc %d", i, rc);
        if (rc == 0 && want[i].rc == 0) {
            CHECK_STR(m.subject, want[i].subject, "entry subject");
            CHECK_STR(m.html, want[i].html, "entry html");
            CHECK(m.text == NULL, "entry %zu: no text part", i);
            CHECK(m.tags.n == want[i].ntags, "entry %zu: %zu tags", i, m.tags.n);
            CHECK_STR(m.tags.v[0], want[i].tag0, "entry tag");
            CHECK_STR(m.from, "s@x.com", "entry from");
            CHECK(m.reply_to.n == 1, "entry %zu: reply-to", i);
            CHECK(sesmail_recipient_count(&m) == 1, "entry %zu: one recipient", i);
        } else if (rc < 0) {
            CHECK(e.code == SESERR_INVALID_PARAMETER, "entry %zu: code %d", i, (int)e.code);
            CHECK_STR(e.message, "ReplacementTemplateData is not a JSON object.", "entry error");
        }
        sesmail_cleanup(&m);
    }
    sesbulk_cleanup(&b);
    sesreq_cleanup(&r);
}

static void test_render(void)
{
    struct sesbulk_result res[2];
    memset(res, 0, sizeof res);
    res[0].status = SESBULK_SUCCESS;
    strcpy(res[0].message_id, "0100-m1");
    res[1].status = SESBULK_ACCOUNT_THROTTLED;
    strcpy(res[1].error, "Maximum sending rate exceeded.");
    struct buf out = BUF_INIT;
    sesbulk_render(SESREQ_V2, res, 2, &out);
    CHECK_STR(buf_cstr(&out),
              "{\"BulkEmailEntryResults\":[{\"Status\":\"SUCCESS\",\"MessageId\":\"0100-m1\"},{"
              "\"Status\":\"ACCOUNT_THROTTLED\",\"Error\":\"Maximum sending rate exceeded.\"}]}",
              "v2 answer");
    buf_reset(&out);
    res[1].status = SESBULK_INVALID_PARAMETER;
    strcpy(res[1].error, "a < b");
    sesbulk_render(SESREQ_V1, res, 2, &out);
    CHECK_STR(buf_cstr(&out),
              "<Status><member><Status>Success</Status><MessageId>0100-m1</MessageId></member>"
              "<member><Status>InvalidParameterValue</Status><Error>a &lt; b</Error></member>"
              "</Status>",
              "v1 answer");
    buf_free(&out);
    static const struct {
        enum sesbulk_status s;
        const char *v1, *v2;
    } names[] = {
        {SESBULK_SUCCESS, "Success", "SUCCESS"},
        {SESBULK_INVALID_PARAMETER, "InvalidParameterValue", "INVALID_PARAMETER"},
        {SESBULK_ACCOUNT_THROTTLED, "AccountThrottled", "ACCOUNT_THROTTLED"},
        {SESBULK_DAILY_QUOTA_EXCEEDED, "AccountDailyQuotaExceeded", "ACCOUNT_DAILY_QUOTA_EXCEEDED"},
        {SESBULK_FAILED, "Failed", "FAILED"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        CHECK_STR(sesbulk_status_name(names[i].s, SESREQ_V1), names[i].v1, "v1 status");
        CHECK_STR(sesbulk_status_name(names[i].s, SESREQ_V2), names[i].v2, "v2 status");
    }
}

int main(void)
{
    test_reading();
    test_merge_data();
    test_merge_named();
    test_entry_messages();
    test_render();
    return check_done("test_sesbulk");
}
