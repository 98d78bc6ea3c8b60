/* Unit tests for form: strict form decoding and RFC 3986 encoding. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "form.h"

#define MAXP 8

struct parse_case {
    const char *in;
    size_t max;
    int rc;
    size_t n;                 /* expected parameter count on success */
    const char *names[MAXP];  /* expected names, in order */
    const char *values[MAXP]; /* expected values, in order */
    const char *err_has;      /* substring of the error reason, or NULL */
};

static const struct parse_case parse_cases[] = {
    {"", 10, FORM_OK, 0, {NULL}, {NULL}, NULL},
    {"&", 10, FORM_OK, 0, {NULL}, {NULL}, NULL},
    {"&&&", 10, FORM_OK, 0, {NULL}, {NULL}, NULL},
    {"a=1", 10, FORM_OK, 1, {"a"}, {"1"}, NULL},
    {"a=1&b=2", 10, FORM_OK, 2, {"a", "b"}, {"1", "2"}, NULL},
    {"a", 10, FORM_OK, 1, {"a"}, {""}, NULL},
    {"a=", 10, FORM_OK, 1, {"a"}, {""}, NULL},
    {"a&&b=1&", 10, FORM_OK, 2, {"a", "b"}, {"", "1"}, NULL},
    {"a==b", 10, FORM_OK, 1, {"a"}, {"=b"}, NULL},
    /* botocore: '+' for a space; JS v3: %20 and *!'() encoded */
    {"Source=Sender+%3Cs%40example.com%3E",
     10,
     FORM_OK,
     1,
     {"Source"},
     {"Sender <s@example.com>"},
     NULL},
    {"Source=A%20B%20%3Cs%40e.com%3E", 10, FORM_OK, 1, {"Source"}, {"A B <s@e.com>"}, NULL},
    {"x=%2A%21%27%28%29~-_.", 10, FORM_OK, 1, {"x"}, {"*!'()~-_."}, NULL},
    {"a+b=c+d", 10, FORM_OK, 1, {"a b"}, {"c d"}, NULL},
    {"a=%2B%2b", 10, FORM_OK, 1, {"a"}, {"++"}, NULL},
    {"Message.Subject.Data=Hi+%C3%BC",
     10,
     FORM_OK,
     1,
     {"Message.Subject.Data"},
     {"Hi \xc3\xbc"},
     NULL},
    {"%C3%BC=%E2%82%AC", 10, FORM_OK, 1, {"\xc3\xbc"}, {"\xe2\x82\xac"}, NULL},
    {"Destination.ToAddresses=", 10, FORM_OK, 1, {"Destination.ToAddresses"}, {""}, NULL},
    /* names are case-sensitive */
    {"a=1&A=2", 10, FORM_OK, 2, {"a", "A"}, {"1", "2"}, NULL},
    /* limits: empty pieces do not count */
    {"a&b&c", 3, FORM_OK, 3, {"a", "b", "c"}, {"", "", ""}, NULL},
    {"a&&&b", 2, FORM_OK, 2, {"a", "b"}, {"", ""}, NULL},
    {"a&b&c", 2, FORM_ERR_TOO_MANY, 0, {NULL}, {NULL}, "Too many parameters"},
    {"a", 0, FORM_ERR_TOO_MANY, 0, {NULL}, {NULL}, NULL},
    /* encoding errors */
    {"%", 10, FORM_ERR_ENCODING, 0, {NULL}, {NULL}, NULL},
    {"a=%", 10, FORM_ERR_ENCODING, 0, {NULL}, {NULL}, "'a'"},
    {"a=%2", 10, FORM_ERR_ENCODING, 0, {NULL}, {NULL}, "'a'"},
    {"a=%zz", 10, FORM_ERR_ENCODING, 0, {NULL}, {NULL}, "'a'"},
    {"a=%2g", 10, FORM_ERR_ENCODING, 0, {NULL}, {NULL}, NULL},
    {"a=%%41", 10, FORM_ERR_ENCODING, 0, {NULL}, {NULL}, NULL},
    {"a%=1", 10, FORM_ERR_ENCODING, 0, {NULL}, {NULL}, "a%"},
    {"ok=1&b=%G0", 10, FORM_ERR_ENCODING, 0, {NULL}, {NULL}, "'b'"},
    {"a%00b=1", 10, FORM_ERR_ENCODING, 0, {NULL}, {NULL}, "NUL"},
    /* duplicates */
    {"a=1&a=2", 10, FORM_ERR_DUPLICATE, 0, {NULL}, {NULL}, "'a'"},
    {"a=1&b=2&a", 10, FORM_ERR_DUPLICATE, 0, {NULL}, {NULL}, "'a'"},
    {"a+b=1&a%20b=2", 10, FORM_ERR_DUPLICATE, 0, {NULL}, {NULL}, NULL},
    {"Action=X&Act%69on=Y", 10, FORM_ERR_DUPLICATE, 0, {NULL}, {NULL}, "Action"},
    /* UTF-8 */
    {"a=%FF", 10, FORM_ERR_UTF8, 0, {NULL}, {NULL}, "'a'"},
    {"%FF=1", 10, FORM_ERR_UTF8, 0, {NULL}, {NULL}, NULL},
    {"a=%C0%AF", 10, FORM_ERR_UTF8, 0, {NULL}, {NULL}, NULL},
    {"a=%ED%A0%80", 10, FORM_ERR_UTF8, 0, {NULL}, {NULL}, NULL},
    {"a=%C3", 10, FORM_ERR_UTF8, 0, {NULL}, {NULL}, NULL},
    {"a=\xff", 10, FORM_ERR_UTF8, 0, {NULL}, {NULL}, NULL},
    /* empty names */
    {"=v", 10, FORM_ERR_EMPTY_NAME, 0, {NULL}, {NULL}, "Empty parameter name"},
    {"=", 10, FORM_ERR_EMPTY_NAME, 0, {NULL}, {NULL}, NULL},
    {"a=1&&=2", 10, FORM_ERR_EMPTY_NAME, 0, {NULL}, {NULL}, NULL},
};

/* Check one parse case. */
static void test_parse_case(const struct parse_case *c)
{
    struct form f = {NULL, 0};
    char err[128] = "untouched";
    int rc = form_parse(c->in, strlen(c->in), c->max, &f, err, sizeof err);
    CHECK(rc == c->rc, "\"%s\": rc %d, want %d (%s)", c->in, rc, c->rc, err);
    if (rc != FORM_OK) {
        CHECK(f.n == 0 && f.params == NULL, "\"%s\": form not empty after error", c->in);
        CHECK(err[0] != '\0', "\"%s\": no reason", c->in);
        if (c->err_has != NULL)
            CHECK(strstr(err, c->err_has) != NULL, "\"%s\": reason \"%s\" lacks \"%s\"", c->in, err,
                  c->err_has);
        return;
    }
    CHECK(err[0] == '\0', "\"%s\": reason set on success: %s", c->in, err);
    CHECK(f.n == c->n, "\"%s\": %zu params, want %zu", c->in, f.n, c->n);
    for (size_t i = 0; i < f.n && i < c->n; i++) {
        CHECK_STR(f.params[i].name, c->names[i], c->in);
        CHECK_STR(f.params[i].value, c->values[i], c->in);
        CHECK(f.params[i].name_len == strlen(c->names[i]), "\"%s\": name_len", c->in);
        CHECK(f.params[i].value_len == strlen(c->values[i]), "\"%s\": value_len", c->in);
    }
    form_free(&f);
    CHECK(f.n == 0 && f.params == NULL, "form_free leaves the form empty");
}

/* Values may carry NUL bytes; value_len tells their length. */
static void test_nul_value(void)
{
    struct form f = {NULL, 0};
    const char in[] = "a=x%00y&b=2";
    CHECK(form_parse(in, strlen(in), 10, &f, NULL, 0) == FORM_OK, "NUL value parses");
    size_t len = 0;
    const char *v = form_get(&f, "a", &len);
    CHECK(v != NULL && len == 3 && memcmp(v, "x\0y", 4) == 0, "NUL value kept with its length");
    form_free(&f);

    /* Input that is not NUL-terminated, and NUL bytes in the raw input. */
    const char raw[] = {'a', '=', 'b', '\0', 'c', '&', 'z'};
    CHECK(form_parse(raw, 5, 10, &f, NULL, 0) == FORM_OK, "raw NUL in a value");
    v = form_get(&f, "a", &len);
    CHECK(v != NULL && len == 3, "raw NUL length");
    CHECK(form_get(&f, "z", NULL) == NULL, "input bounded by len");
    form_free(&f);
}

/* form_get: exact, case-sensitive names. */
static void test_get(void)
{
    struct form f = {NULL, 0};
    const char in[] = "Action=SendEmail&Version=2010-12-01&Empty=&Source=s%40example.com";
    CHECK(form_parse(in, strlen(in), 10, &f, NULL, 0) == FORM_OK, "parse");
    size_t len = 99;
    CHECK_STR(form_get(&f, "Action", &len), "SendEmail", "Action");
    CHECK(len == 9, "Action length");
    CHECK_STR(form_get(&f, "Source", NULL), "s@example.com", "Source");
    CHECK(form_get(&f, "action", NULL) == NULL, "names are case-sensitive");
    CHECK(form_get(&f, "Actio", NULL) == NULL, "no prefix match");
    CHECK(form_get(&f, "ActionX", NULL) == NULL, "no longer match");
    const char *e = form_get(&f, "Empty", &len);
    CHECK(e != NULL && len == 0 && e[0] == '\0', "empty value is present");
    form_free(&f);
    form_free(&f);
    CHECK(form_get(&f, "Action", NULL) == NULL, "empty form");
}

/* Many parameters: the limit, and a duplicate far apart. */
static void test_many(void)
{
    struct buf b = BUF_INIT;
    for (int i = 1; i <= 20000; i++)
        buf_printf(&b, "%sDestination.ToAddresses.member.%d=u%d%%40example.com", i > 1 ? "&" : "",
                   i, i);
    struct form f = {NULL, 0};
    CHECK(form_parse(b.data, b.len, 20000, &f, NULL, 0) == FORM_OK, "20000 parameters");
    CHECK(f.n == 20000, "count %zu", f.n);
    CHECK_STR(form_get(&f, "Destination.ToAddresses.member.20000", NULL), "u20000@example.com",
              "last");
    form_free(&f);
    CHECK(form_parse(b.data, b.len, 19999, &f, NULL, 0) == FORM_ERR_TOO_MANY, "over the limit");
    buf_adds(&b, "&Destination.ToAddresses.member.1=x");
    char err[128];
    CHECK(form_parse(b.data, b.len, 30000, &f, err, sizeof err) == FORM_ERR_DUPLICATE,
          "late duplicate");
    CHECK(strstr(err, "Destination.ToAddresses.member.1'") != NULL, "names the duplicate: %s", err);
    buf_free(&b);
}

/* Error reasons quote long or binary names safely. */
static void test_err_quote(void)
{
    struct buf b = BUF_INIT;
    for (int i = 0; i < 200; i++)
        buf_addc(&b, 'n');
    buf_adds(&b, "=%FF");
    struct form f = {NULL, 0};
    char err[256];
    CHECK(form_parse(b.data, b.len, 10, &f, err, sizeof err) == FORM_ERR_UTF8, "long name");
    CHECK(strstr(err, "...") != NULL && strlen(err) < 120, "long name truncated: %s", err);
    buf_free(&b);

    const char bin[] = "a\x01\x7f\xc3\xbc=%";
    CHECK(form_parse(bin, strlen(bin), 10, &f, err, sizeof err) == FORM_ERR_ENCODING, "binary");
    CHECK(strstr(err, "'a\?\?\?\?'") != NULL, "binary name shown as '?': %s", err);

    char tiny[8];
    CHECK(form_parse("a=1&a=2", 7, 10, &f, tiny, sizeof tiny) == FORM_ERR_DUPLICATE, "tiny");
    CHECK(strlen(tiny) == 7, "reason truncated to the buffer");
}

struct encode_case {
    const char *in;
    size_t len;
    const char *out;
};

static const struct encode_case encode_cases[] = {
    {"", 0, ""},
    {"abcXYZ019-_.~", 13, "abcXYZ019-_.~"},
    {" ", 1, "%20"},
    {"+", 1, "%2B"},
    {"a b+c", 5, "a%20b%2Bc"},
    {"s@example.com", 13, "s%40example.com"},
    {"*!'()", 5, "%2A%21%27%28%29"},
    {"/?&=%#", 6, "%2F%3F%26%3D%25%23"},
    {"\xc3\xbc", 2, "%C3%BC"},
    {"\0\x7f\xff", 3, "%00%7F%FF"},
    {"Sender <s@example.com>", 22, "Sender%20%3Cs%40example.com%3E"},
};

/* form_encode appends RFC 3986 encoding. */
static void test_encode(void)
{
    for (size_t i = 0; i < sizeof encode_cases / sizeof encode_cases[0]; i++) {
        const struct encode_case *c = &encode_cases[i];
        struct buf b = BUF_INIT;
        buf_adds(&b, "x=");
        form_encode(c->in, c->len, &b);
        CHECK(strcmp(buf_cstr(&b) + 2, c->out) == 0, "encode %zu: got \"%s\", want \"%s\"", i,
              buf_cstr(&b) + 2, c->out);
        CHECK(strncmp(buf_cstr(&b), "x=", 2) == 0, "appends");
        buf_free(&b);
    }
}

struct decode_case {
    const char *in;
    bool plus_space;
    int rc;
    const char *out;
};

static const struct decode_case decode_cases[] = {
    {"", false, 0, ""},         {"a+b", false, 0, "a+b"}, {"a+b", true, 0, "a b"},
    {"a%20b", false, 0, "a b"}, {"%2B", true, 0, "+"},    {"%41%62%7e", false, 0, "Ab~"},
    {"a%2", false, -1, NULL},   {"a%", true, -1, NULL},   {"%xy", false, -1, NULL},
};

/* form_decode, with and without '+' translation. */
static void test_decode(void)
{
    for (size_t i = 0; i < sizeof decode_cases / sizeof decode_cases[0]; i++) {
        const struct decode_case *c = &decode_cases[i];
        struct buf b = BUF_INIT;
        buf_adds(&b, "<");
        int rc = form_decode(c->in, strlen(c->in), c->plus_space, &b);
        CHECK(rc == c->rc, "decode \"%s\": rc %d", c->in, rc);
        if (rc == 0) {
            CHECK(strcmp(buf_cstr(&b) + 1, c->out) == 0, "decode \"%s\": got \"%s\"", c->in,
                  buf_cstr(&b) + 1);
            CHECK(b.len == 1 + strlen(c->out), "decode length");
        }
        buf_free(&b);
    }
}

/* Every byte survives encode then decode, and encoded output is all ASCII
 * unreserved or %XX. */
static void test_round_trip(void)
{
    char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    struct buf enc = BUF_INIT, dec = BUF_INIT;
    form_encode(all, sizeof all, &enc);
    bool ascii = true;
    for (size_t i = 0; i < enc.len; i++) {
        unsigned char c = (unsigned char)enc.data[i];
        if (c <= 0x20 || c >= 0x7f || c == '+' || c == '&' || c == '=')
            ascii = false;
    }
    CHECK(ascii, "encoded output is safe in a form");
    CHECK(form_decode(enc.data, enc.len, true, &dec) == 0, "decodes");
    CHECK(dec.len == 256 && memcmp(dec.data, all, 256) == 0, "round trip of all bytes");
    buf_free(&enc);
    buf_free(&dec);
}

/* Run every form test. */
int main(void)
{
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++)
        test_parse_case(&parse_cases[i]);
    test_nul_value();
    test_get();
    test_many();
    test_err_quote();
    test_encode();
    test_decode();
    test_round_trip();
    return check_done("test_form");
}
