/* Unit tests for util: base64, hex, dates, durations, sizes, UTF-8, addr-spec. */
#include <string.h>

#include "check.h"
#include "util.h"

struct b64_case {
    const char *in;
    int rc;
    const char *out; /* expected bytes when rc == 0 */
};

static const struct b64_case b64_cases[] = {
    {"", 0, ""},
    {"Zg==", 0, "f"},
    {"Zm8=", 0, "fo"},
    {"Zm9v", 0, "foo"},
    {"Zm9vYg==", 0, "foob"},
    {"Zm9vYmE=", 0, "fooba"},
    {"Zm9vYmFy", 0, "foobar"},
    {"Zm9vYg", 0, "foob"},           /* padding left out */
    {"Zm9v\r\nYmFy\n", 0, "foobar"}, /* line breaks anywhere */
    {" Zm 9v ", 0, "foo"},
    {"+/+/", 0, "\xfb\xff\xbf"},
    {"Zm9vY", -1, NULL},    /* one digit of a group */
    {"Zg===", -1, NULL},    /* three '=' */
    {"Zg=", -1, NULL},      /* padding that does not complete the group */
    {"Zg==Zg==", -1, NULL}, /* digits after padding */
    {"Zm9v-", -1, NULL},    /* URL-safe alphabet is not standard base64 */
    {"Zm9v!", -1, NULL},
};

/* util_base64_decode over the table. */
static void test_base64(void)
{
    for (size_t i = 0; i < sizeof b64_cases / sizeof b64_cases[0]; i++) {
        const struct b64_case *c = &b64_cases[i];
        struct buf out = BUF_INIT;
        int rc = util_base64_decode(c->in, strlen(c->in), &out);
        CHECK(rc == c->rc, "base64 \"%s\": rc %d, want %d", c->in, rc, c->rc);
        if (rc == 0 && c->rc == 0)
            CHECK(out.len == strlen(c->out) && memcmp(buf_cstr(&out), c->out, out.len) == 0,
                  "base64 \"%s\": got %zu bytes", c->in, out.len);
        buf_free(&out);
        /* with a bound: every byte checked, the first max kept */
        for (size_t max = 0; max <= 7; max++) {
            struct buf head = BUF_INIT;
            rc = util_base64_decode_max(c->in, strlen(c->in), max, &head);
            CHECK(rc == c->rc, "base64 \"%s\" max %zu: rc %d, want %d", c->in, max, rc, c->rc);
            if (rc == 0 && c->rc == 0) {
                size_t want = strlen(c->out) < max ? strlen(c->out) : max;
                CHECK(head.len == want && memcmp(buf_cstr(&head), c->out, want) == 0,
                      "base64 \"%s\" max %zu: got %zu bytes", c->in, max, head.len);
            }
            buf_free(&head);
        }
    }
}

/* util_hex_value and util_hex. */
static void test_hex(void)
{
    CHECK(util_hex_value('0') == 0 && util_hex_value('9') == 9, "digits");
    CHECK(util_hex_value('a') == 10 && util_hex_value('F') == 15, "letters");
    CHECK(util_hex_value('g') == -1 && util_hex_value('%') == -1, "not hex");
    char out[7];
    util_hex((const unsigned char *)"\x00\xab\xff", 3, out);
    CHECK_STR(out, "00abff", "util_hex");
}

/* Dates: X-Amz-Date both ways, and the HTTP date. */
static void test_dates(void)
{
    time_t t;
    CHECK(util_parse_amz_date("20150830T123600Z", 16, &t) == 0 && t == 1440938160,
          "parse amz date");
    char s[17];
    util_amz_date(1440938160, s);
    CHECK_STR(s, "20150830T123600Z", "format amz date");
    const char *bad[] = {"20150830T123600",  "20150230T123600Z", "20151330T000000Z",
                         "2015083OT123600Z", "20150830 123600Z", "19691231T235959Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(util_parse_amz_date(bad[i], strlen(bad[i]), &t) < 0, "refuse %s", bad[i]);
    char h[30];
    util_http_date(784111777, h);
    CHECK_STR(h, "Sun, 06 Nov 1994 08:49:37 GMT", "http date");
}

/* Durations and sizes as configuration writes them. */
static void test_units(void)
{
    static const struct {
        const char *in;
        int rc;
        int64_t ms;
    } d[] = {{"5m", 0, 300000}, {"30s", 0, 30000},    {"250ms", 0, 250}, {"7d", 0, 604800000},
             {"2", 0, 2000},    {"1.5h", 0, 5400000}, {"soon", -1, 0},   {"-1s", -1, 0},
             {"5x", -1, 0},     {"", -1, 0}};
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        int64_t ms = -7;
        int rc = util_parse_duration_ms(d[i].in, &ms);
        CHECK(rc == d[i].rc && (rc < 0 || ms == d[i].ms), "duration \"%s\": rc %d ms %lld", d[i].in,
              rc, (long long)ms);
    }
    static const struct {
        const char *in;
        int rc;
        uint64_t n;
    } z[] = {{"55m", 0, 55ull << 20}, {"64k", 0, 65536}, {"1g", 0, 1ull << 30}, {"100", 0, 100},
             {"12kb", 0, 12288},      {"1t", -1, 0},     {"k", -1, 0}};
    for (size_t i = 0; i < sizeof z / sizeof z[0]; i++) {
        uint64_t n = 7;
        int rc = util_parse_size(z[i].in, &n);
        CHECK(rc == z[i].rc && (rc < 0 || n == z[i].n), "size \"%s\": rc %d n %llu", z[i].in, rc,
              (unsigned long long)n);
    }
}

/* UTF-8 validation: overlongs, surrogates, truncation. */
static void test_utf8(void)
{
    CHECK(util_utf8_valid("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15), "valid");
    CHECK(!util_utf8_valid("\xc0\xaf", 2), "overlong");
    CHECK(!util_utf8_valid("\xed\xa0\x80", 3), "surrogate");
    CHECK(!util_utf8_valid("\xe2\x82", 2), "truncated");
    CHECK(!util_utf8_valid("\xf4\x90\x80\x80", 4), "above U+10FFFF");
    CHECK(!util_utf8_valid("\xff", 1), "0xff");
}

/* util_addr_spec on display forms. */
static void test_addr_spec(void)
{
    static const struct {
        const char *in;
        const char *want; /* NULL: refused */
    } c[] = {{"a@example.com", "a@example.com"},
             {"Jane <jane@example.com>", "jane@example.com"},
             {"\"Doe, <J>\" <j@x.org>", "j@x.org"},
             {"  b@y.com  ", "b@y.com"},
             {"no-at-sign", NULL},
             {"<@x.com>", NULL},
             {"Jane <jane@example.com", NULL},
             {"a b@c.com", NULL}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        size_t start, len;
        int rc = util_addr_spec(c[i].in, strlen(c[i].in), &start, &len);
        if (c[i].want == NULL) {
            CHECK(rc < 0, "refuse \"%s\"", c[i].in);
        } else {
            CHECK(rc == 0 && len == strlen(c[i].want) &&
                      memcmp(c[i].in + start, c[i].want, len) == 0,
                  "addr-spec of \"%s\"", c[i].in);
        }
    }
}

int main(void)
{
    test_base64();
    test_hex();
    test_dates();
    test_units();
    test_utf8();
    test_addr_spec();
    return check_done("test_util");
}
