/* Unit tests for rfc5322: header lookup, address-list parsing and the
 * per-recipient rewrite of raw messages. */
#include "rfc5322.h"

#include <stdlib.h>

#include "check.h"

/* A string literal and its length, so that inputs may hold NUL bytes. */
#define S(x) x, sizeof(x) - 1

#define MAX_WANT 6

struct addr_case {
    const char *in;
    size_t len;
    size_t max;      /* 0 means 100 */
    const char *err; /* expected reason, NULL when the parse must succeed */
    size_t n;
    const char *want[MAX_WANT][2]; /* display, addr */
};

static const struct addr_case addr_cases[] = {
    /* plain lists */
    {S("a@x"), 0, NULL, 1, {{"", "a@x"}}},
    {S("a@x, b@y"), 0, NULL, 2, {{"", "a@x"}, {"", "b@y"}}},
    {S("a@x,b@y,c@z"), 0, NULL, 3, {{"", "a@x"}, {"", "b@y"}, {"", "c@z"}}},
    {S("  a@example.com  "), 0, NULL, 1, {{"", "a@example.com"}}},
    {S("John.Q+tag@Sub.Example.COM"), 0, NULL, 1, {{"", "John.Q+tag@Sub.Example.COM"}}},
    {S("!#$%&'*+-/=?^_`{|}~@x"), 0, NULL, 1, {{"", "!#$%&'*+-/=?^_`{|}~@x"}}},
    {S("John Doe <j@x>"), 0, NULL, 1, {{"John Doe", "j@x"}}},
    {S("<j@x>"), 0, NULL, 1, {{"", "j@x"}}},
    {S("John Doe<j@x>,Jane<k@y>"), 0, NULL, 2, {{"John Doe", "j@x"}, {"Jane", "k@y"}}},
    {S("John Q. Public <jq@x>"), 0, NULL, 1, {{"John Q. Public", "jq@x"}}},
    {S("a@x, John <j@x>, <k@y>"), 0, NULL, 3, {{"", "a@x"}, {"John", "j@x"}, {"", "k@y"}}},
    /* quoted display names */
    {S("\"Doe, John\" <j@x>, k@y"), 0, NULL, 2, {{"Doe, John", "j@x"}, {"", "k@y"}}},
    {S("\"Doe, John\" <j@x>, \"Roe; Jane: <r@x>\" <k@y>"),
     0,
     NULL,
     2,
     {{"Doe, John", "j@x"}, {"Roe; Jane: <r@x>", "k@y"}}},
    {S("\"Doe \\\"JD\\\" John\" <j@x>"), 0, NULL, 1, {{"Doe \"JD\" John", "j@x"}}},
    {S("\"a\\\\b\" <j@x>"), 0, NULL, 1, {{"a\\b", "j@x"}}},
    {S("\"\" <j@x>"), 0, NULL, 1, {{"", "j@x"}}},
    {S("\"  a \t  b  \" <j@x>"), 0, NULL, 1, {{"a b", "j@x"}}},
    {S("Dr. \"Doe, J.\" Jr <j@x>"), 0, NULL, 1, {{"Dr. Doe, J. Jr", "j@x"}}},
    {S("\"(not a comment)\" <j@x>"), 0, NULL, 1, {{"(not a comment)", "j@x"}}},
    /* comments */
    {S("a@x (Alice)"), 0, NULL, 1, {{"", "a@x"}}},
    {S("(c) a@x (d), (e) Bob (f) <b@y> (g)"), 0, NULL, 2, {{"", "a@x"}, {"Bob", "b@y"}}},
    {S("a@x (outer (inner (deep)) \\) still \\( open)"), 0, NULL, 1, {{"", "a@x"}}},
    {S("a(c)@(d)x(e)"), 0, NULL, 1, {{"", "a@x"}}},
    {S("John (the man) Doe <j(c)@x>"), 0, NULL, 1, {{"John Doe", "j@x"}}},
    {S("John(x)Doe <j@x>"), 0, NULL, 1, {{"John Doe", "j@x"}}},
    {S("a@x (comment, with comma; and <angle> \"quote)"), 0, NULL, 1, {{"", "a@x"}}},
    {S("(only a comment)"), 0, NULL, 0, {{NULL, NULL}}},
    /* groups */
    {S("undisclosed-recipients:;"), 0, NULL, 0, {{NULL, NULL}}},
    {S("undisclosed-recipients: ;"), 0, NULL, 0, {{NULL, NULL}}},
    {S("team: a@x, B <b@y>;"), 0, NULL, 2, {{"", "a@x"}, {"B", "b@y"}}},
    {S("g1: a@x;, g2: b@y, c@z;"), 0, NULL, 3, {{"", "a@x"}, {"", "b@y"}, {"", "c@z"}}},
    {S("g:;, c@z"), 0, NULL, 1, {{"", "c@z"}}},
    {S("g: a@x; , C <c@z>"), 0, NULL, 2, {{"", "a@x"}, {"C", "c@z"}}},
    {S("a@x, g: b@y;, c@z"), 0, NULL, 3, {{"", "a@x"}, {"", "b@y"}, {"", "c@z"}}},
    {S("team: a@x, b@y"), 0, NULL, 2, {{"", "a@x"}, {"", "b@y"}}},
    {S("g: , a@x, ,;"), 0, NULL, 1, {{"", "a@x"}}},
    {S("\"The Team\": a@x;"), 0, NULL, 1, {{"", "a@x"}}},
    {S("Re: John <j@x>"), 0, NULL, 1, {{"John", "j@x"}}},
    /* encoded words */
    {S("=?utf-8?B?SsO8cmdlbg==?= <j@x>"), 0, NULL, 1, {{"J\xc3\xbcrgen", "j@x"}}},
    {S("=?UTF-8?b?SsO8cmdlbg?= <j@x>"), 0, NULL, 1, {{"J\xc3\xbcrgen", "j@x"}}},
    {S("=?utf-8?Q?J=C3=BCrgen_M=c3=bcller?= <j@x>"),
     0,
     NULL,
     1,
     {{"J\xc3\xbcrgen M\xc3\xbcller", "j@x"}}},
    {S("=?utf-8?B?TcO8bGxlciwgSGFucw==?= <m@x>"), 0, NULL, 1, {{"M\xc3\xbcller, Hans", "m@x"}}},
    {S("=?utf-8?Q?J=C3=BC?= =?utf-8?Q?rgen?= <j@x>"), 0, NULL, 1, {{"J\xc3\xbcrgen", "j@x"}}},
    {S("=?utf-8?Q?a?=\r\n =?utf-8?Q?b?=\n\t=?utf-8?Q?c?= <j@x>"), 0, NULL, 1, {{"abc", "j@x"}}},
    {S("=?utf-8?B?5pc=?= =?utf-8?B?peacrA==?= <j@x>"),
     0,
     NULL,
     1,
     {{"\xe6\x97\xa5\xe6\x9c\xac", "j@x"}}},
    {S("=?utf-8?Q?J=C3=BCrgen?= Doe <j@x>"), 0, NULL, 1, {{"J\xc3\xbcrgen Doe", "j@x"}}},
    {S("Herr =?utf-8?Q?J=C3=BCrgen?= <j@x>"), 0, NULL, 1, {{"Herr J\xc3\xbcrgen", "j@x"}}},
    {S("=?utf-8?Q?a_?= =?utf-8?Q?_b?= <j@x>"), 0, NULL, 1, {{"a b", "j@x"}}},
    {S("=?iso-8859-1?Q?J=FCrgen?= <j@x>"), 0, NULL, 1, {{"J\xc3\xbcrgen", "j@x"}}},
    {S("=?ISO-8859-1?B?SvxyZ2Vu?= <j@x>"), 0, NULL, 1, {{"J\xc3\xbcrgen", "j@x"}}},
    {S("=?iso-8859-1*de?Q?Gr=FC=DFe?= <j@x>"),
     0,
     NULL,
     1,
     {{"Gr\xc3\xbc\xc3\x9f"
       "e",
       "j@x"}}},
    {S("=?windows-1252?Q?=80_5?= <j@x>"), 0, NULL, 1, {{"\xe2\x82\xac 5", "j@x"}}},
    {S("=?us-ascii?q?plain_text?= <j@x>"), 0, NULL, 1, {{"plain text", "j@x"}}},
    {S("=?us-ascii?q?bad=FF?= <j@x>"), 0, NULL, 1, {{"bad\xef\xbf\xbd", "j@x"}}},
    {S("=?utf-8?Q?J.?= Doe <j@x>"), 0, NULL, 1, {{"J. Doe", "j@x"}}},
    {S("=?koi8-r?B?7tXM2Q==?= <j@x>"), 0, NULL, 1, {{"=?koi8-r?B?7tXM2Q==?=", "j@x"}}},
    {S("=?koi8-r?B?7tXM2Q==?= =?utf-8?Q?a?= <j@x>"),
     0,
     NULL,
     1,
     {{"=?koi8-r?B?7tXM2Q==?= a", "j@x"}}},
    {S("=?utf-8?Q?=ZZ?= <j@x>"), 0, NULL, 1, {{"=?utf-8?Q?=ZZ?=", "j@x"}}},
    {S("=?utf-8?B?S?= <j@x>"), 0, NULL, 1, {{"=?utf-8?B?S?=", "j@x"}}},
    {S("=?utf-8?X?abc?= <j@x>"), 0, NULL, 1, {{"=?utf-8?X?abc?=", "j@x"}}},
    {S("x=?utf-8?Q?a?= <j@x>"), 0, NULL, 1, {{"x=?utf-8?Q?a?=", "j@x"}}},
    {S("\"=?utf-8?Q?a?=\" <j@x>"), 0, NULL, 1, {{"=?utf-8?Q?a?=", "j@x"}}},
    {S("=?utf-8?B?/w==?= <j@x>"), 0, NULL, 1, {{"\xef\xbf\xbd", "j@x"}}},
    {S("=?utf-8?Q?a=0D=0ABcc=3A_evil=40y?= <j@x>"), 0, NULL, 1, {{"a Bcc: evil@y", "j@x"}}},
    {S("=?utf-8?Q?a=0D=0ABcc:_evil@y?= <j@x>"), 0, "unexpected '<'", 0, {{NULL, NULL}}},
    {S("=?utf-8?Q?<evil@y>?= <j@x>"), 0, "unexpected text after address", 0, {{NULL, NULL}}},
    {S("=?utf-8?Q?a=00b?= <j@x>"), 0, NULL, 1, {{"a b", "j@x"}}},
    /* UTF-8 and 8-bit */
    {S("J\xc3\xbcrgen <j@x>"), 0, NULL, 1, {{"J\xc3\xbcrgen", "j@x"}}},
    {S("\"J\xc3\xbcrgen, M.\" <j@x>"), 0, NULL, 1, {{"J\xc3\xbcrgen, M.", "j@x"}}},
    {S("J\xfcrgen <j@x>"), 0, NULL, 1, {{"J\xef\xbf\xbdrgen", "j@x"}}},
    {S("j\xc3\xbcrgen@x"), 0, NULL, 1, {{"", "j\xc3\xbcrgen@x"}}},
    {S("j@b\xc3\xbc"
       "cher.example"),
     0,
     NULL,
     1,
     {{"", "j@b\xc3\xbc"
           "cher.example"}}},
    /* folding whitespace */
    {S("a@x,\r\n b@y"), 0, NULL, 2, {{"", "a@x"}, {"", "b@y"}}},
    {S("a@x,\n\tb@y"), 0, NULL, 2, {{"", "a@x"}, {"", "b@y"}}},
    {S("\"Doe,\r\n John\" <j@x>"), 0, NULL, 1, {{"Doe, John", "j@x"}}},
    {S("John\r\n Doe\n <j@x\r\n >"), 0, NULL, 1, {{"John Doe", "j@x"}}},
    {S("\r\n a@x\r\n "), 0, NULL, 1, {{"", "a@x"}}},
    {S("a@x (multi\r\n line)"), 0, NULL, 1, {{"", "a@x"}}},
    /* obsolete syntax */
    {S("<@r1,@r2:a@x>"), 0, NULL, 1, {{"", "a@x"}}},
    {S("Name <@r1.example, ,@r2 : a@x>"), 0, NULL, 1, {{"Name", "a@x"}}},
    {S("a . b @ c . d"), 0, NULL, 1, {{"", "a.b@c.d"}}},
    {S("<a . b @ c>"), 0, NULL, 1, {{"", "a.b@c"}}},
    {S("\"a\".b@x"), 0, NULL, 1, {{"", "\"a\".b@x"}}},
    /* domain literals and quoted local parts */
    {S("a@[1.2.3.4]"), 0, NULL, 1, {{"", "a@[1.2.3.4]"}}},
    {S("a@[IPv6:2001:db8::1]"), 0, NULL, 1, {{"", "a@[IPv6:2001:db8::1]"}}},
    {S("A <a@ [ 1.2.3.4 ] >"), 0, NULL, 1, {{"A", "a@[1.2.3.4]"}}},
    {S("a@[ 1\\ 2 ]"), 0, NULL, 1, {{"", "a@[1\\ 2]"}}},
    {S("-@[\\  ]"), 0, NULL, 1, {{"", "-@[\\ ]"}}},
    {S("\"a b\"@x"), 0, NULL, 1, {{"", "\"a b\"@x"}}},
    {S("\"a\\\"b\"@x"), 0, NULL, 1, {{"", "\"a\\\"b\"@x"}}},
    {S("\"a,b@c\"@x, d@y"), 0, NULL, 2, {{"", "\"a,b@c\"@x"}, {"", "d@y"}}},
    {S("Q <\"a b\"@x>"), 0, NULL, 1, {{"Q", "\"a b\"@x"}}},
    {S("\"a\r\n b\"@x"), 0, NULL, 1, {{"", "\"a b\"@x"}}},
    /* empty elements and empty values */
    {S("a@x,"), 0, NULL, 1, {{"", "a@x"}}},
    {S(", a@x ,, b@y ,"), 0, NULL, 2, {{"", "a@x"}, {"", "b@y"}}},
    {S(""), 0, NULL, 0, {{NULL, NULL}}},
    {S("   "), 0, NULL, 0, {{NULL, NULL}}},
    {S(" , ,\r\n ,"), 0, NULL, 0, {{NULL, NULL}}},
    /* the cap */
    {S("a@x, b@y"), 2, NULL, 2, {{"", "a@x"}, {"", "b@y"}}},
    {S("a@x, b@y, c@z"), 2, "too many addresses", 0, {{NULL, NULL}}},
    {S("g: a@x, b@y;, c@z"), 2, "too many addresses", 0, {{NULL, NULL}}},
    {S("a@x, , ,"), 1, NULL, 1, {{"", "a@x"}}},
    /* control characters, NUL and line breaks that are not folds */
    {S("a@x\r\nBcc: evil@y"), 0, "bare CR or LF", 0, {{NULL, NULL}}},
    {S("a@x\nBcc: evil@y"), 0, "bare CR or LF", 0, {{NULL, NULL}}},
    {S("a@x\rBcc: evil@y"), 0, "bare CR or LF", 0, {{NULL, NULL}}},
    {S("a@x\r \tb@y"), 0, "bare CR or LF", 0, {{NULL, NULL}}},
    {S("a@x\r\n"), 0, "bare CR or LF", 0, {{NULL, NULL}}},
    {S("a@x\n"), 0, "bare CR or LF", 0, {{NULL, NULL}}},
    {S("a@x\r"), 0, "bare CR or LF", 0, {{NULL, NULL}}},
    {S("\"a\r\nBcc: evil@y\"@x"), 0, "bare CR or LF", 0, {{NULL, NULL}}},
    {S("A (x\nBcc: evil@y) <a@x>"), 0, "bare CR or LF", 0, {{NULL, NULL}}},
    {S("a@x\r\r\n b@y"), 0, "bare CR or LF", 0, {{NULL, NULL}}},
    {S("a@x\0, b@y"), 0, "NUL byte", 0, {{NULL, NULL}}},
    {S("\"a\0\"@x"), 0, "NUL byte", 0, {{NULL, NULL}}},
    {S("\0"), 0, "NUL byte", 0, {{NULL, NULL}}},
    {S("a\x01@x"), 0, "control character", 0, {{NULL, NULL}}},
    {S("a@x\x7f"), 0, "control character", 0, {{NULL, NULL}}},
    {S("\"a\x1b\" <a@x>"), 0, "control character", 0, {{NULL, NULL}}},
    {S("\"a\\\r\n b\"@x"), 0, "invalid escape", 0, {{NULL, NULL}}},
    /* unbalanced quotes, comments, brackets */
    {S("\"a@x"), 0, "unbalanced '\"'", 0, {{NULL, NULL}}},
    {S("\"Doe, John <j@x>"), 0, "unbalanced '\"'", 0, {{NULL, NULL}}},
    {S("\"a\\\""), 0, "unbalanced '\"'", 0, {{NULL, NULL}}},
    {S("(a@x"), 0, "unbalanced '('", 0, {{NULL, NULL}}},
    {S("a@x ((nested)"), 0, "unbalanced '('", 0, {{NULL, NULL}}},
    {S("a@x (\\)"), 0, "unbalanced '('", 0, {{NULL, NULL}}},
    {S("a@x)"), 0, "unbalanced ')'", 0, {{NULL, NULL}}},
    {S("<a@x"), 0, "unbalanced '<'", 0, {{NULL, NULL}}},
    {S("John <a@x"), 0, "unbalanced '<'", 0, {{NULL, NULL}}},
    {S("John <"), 0, "unbalanced '<'", 0, {{NULL, NULL}}},
    {S("a@x>"), 0, "unbalanced '>'", 0, {{NULL, NULL}}},
    {S("John > <a@x>"), 0, "unbalanced '>'", 0, {{NULL, NULL}}},
    {S("a@[1.2.3.4"), 0, "unbalanced '['", 0, {{NULL, NULL}}},
    {S("a@x]"), 0, "unbalanced ']'", 0, {{NULL, NULL}}},
    {S("<<a@x>>"), 0, "invalid address", 0, {{NULL, NULL}}},
    {S("<a@x b>"), 0, "invalid address", 0, {{NULL, NULL}}},
    /* missing parts */
    {S("a"), 0, "missing '@'", 0, {{NULL, NULL}}},
    {S("John Doe"), 0, "missing '@'", 0, {{NULL, NULL}}},
    {S("a@x, b"), 0, "missing '@'", 0, {{NULL, NULL}}},
    {S("<a>"), 0, "missing '@'", 0, {{NULL, NULL}}},
    {S("a@"), 0, "missing domain", 0, {{NULL, NULL}}},
    {S("a@, b@y"), 0, "missing domain", 0, {{NULL, NULL}}},
    {S("<a@>"), 0, "missing domain", 0, {{NULL, NULL}}},
    {S("a@@x"), 0, "missing domain", 0, {{NULL, NULL}}},
    {S("<>"), 0, "empty address", 0, {{NULL, NULL}}},
    {S("@x"), 0, "invalid local part", 0, {{NULL, NULL}}},
    {S(".a@x"), 0, "invalid local part", 0, {{NULL, NULL}}},
    {S("a.@x"), 0, "invalid local part", 0, {{NULL, NULL}}},
    {S("a..b@x"), 0, "invalid local part", 0, {{NULL, NULL}}},
    {S("John Doe@x"), 0, "invalid local part", 0, {{NULL, NULL}}},
    {S("\"a\"b@x"), 0, "invalid local part", 0, {{NULL, NULL}}},
    {S("<a b@x>"), 0, "invalid local part", 0, {{NULL, NULL}}},
    {S("a@x."), 0, "invalid domain", 0, {{NULL, NULL}}},
    {S("a@x..y"), 0, "invalid domain", 0, {{NULL, NULL}}},
    {S("a@.x"), 0, "missing domain", 0, {{NULL, NULL}}},
    {S("a@[1.2.[3]"), 0, "invalid domain literal", 0, {{NULL, NULL}}},
    {S("a@[1.2.3.\xc3\xbc]"), 0, "invalid domain literal", 0, {{NULL, NULL}}},
    {S("j\xfc@x"), 0, "address is not valid UTF-8", 0, {{NULL, NULL}}},
    /* groups */
    {S("g: a@x, h: b@y;"), 0, "nested group", 0, {{NULL, NULL}}},
    {S(": a@x;"), 0, "group without a name", 0, {{NULL, NULL}}},
    {S("a@x;"), 0, "';' outside a group", 0, {{NULL, NULL}}},
    {S("g:;;"), 0, "expected ',' after group", 0, {{NULL, NULL}}},
    {S("g: a@x; b@y"), 0, "expected ',' after group", 0, {{NULL, NULL}}},
    /* garbage */
    {S("a@x b@y"), 0, "unexpected text after address", 0, {{NULL, NULL}}},
    {S("a@x \"q\""), 0, "unexpected text after address", 0, {{NULL, NULL}}},
    {S("a@b@c"), 0, "unexpected text after address", 0, {{NULL, NULL}}},
    {S("a@x <b@y>"), 0, "unexpected '<'", 0, {{NULL, NULL}}},
    {S("a@x <b@y"), 0, "unexpected '<'", 0, {{NULL, NULL}}},
    {S("<a@x> John"), 0, "unexpected text after address", 0, {{NULL, NULL}}},
    {S("a\\b@x"), 0, "unexpected '\\'", 0, {{NULL, NULL}}},
    {S("[1.2.3.4]"), 0, "unexpected domain literal", 0, {{NULL, NULL}}},
    {S("<@r1 a@x>"), 0, "invalid route", 0, {{NULL, NULL}}},
    {S("<@r1,@:a@x>"), 0, "missing domain", 0, {{NULL, NULL}}},
    {S("a@x, , John Doe"), 0, "missing '@'", 0, {{NULL, NULL}}},
};

/* Show a byte string with escapes, for failure messages. */
static const char *test_show(const char *s, size_t n)
{
    static char out[512];
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < sizeof out; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f)
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, sizeof out - o, "\\x%02x", c);
    }
    out[o] = '\0';
    return out;
}

/* Run every row of addr_cases. */
static void test_addr_table(void)
{
    for (size_t k = 0; k < sizeof addr_cases / sizeof addr_cases[0]; k++) {
        const struct addr_case *c = &addr_cases[k];
        struct rfc5322_addr_list l = {NULL, 0};
        char err[128] = "";
        int rc = rfc5322_parse_addresses(c->in, c->len, c->max ? c->max : 100, &l, err, sizeof err);
        const char *what = test_show(c->in, c->len);
        if (c->err != NULL) {
            CHECK(rc == -1, "case %zu [%s]: rc %d, want -1", k, what, rc);
            CHECK_STR(err, c->err, what);
            CHECK(l.n == 0 && l.v == NULL, "case %zu [%s]: out not empty on error", k, what);
        } else {
            CHECK(rc == 0, "case %zu [%s]: rc %d (%s), want 0", k, what, rc, err);
            CHECK(l.n == c->n, "case %zu [%s]: n %zu, want %zu", k, what, l.n, c->n);
            for (size_t j = 0; j < l.n && j < c->n && j < MAX_WANT; j++) {
                CHECK_STR(l.v[j].display, c->want[j][0], what);
                CHECK_STR(l.v[j].addr, c->want[j][1], what);
            }
        }
        rfc5322_addr_list_free(&l);
        CHECK(l.n == 0 && l.v == NULL, "case %zu: list not empty after free", k);
    }
}

/* Comment nesting is capped at 64 levels. */
static void test_comment_depth(void)
{
    struct buf b = BUF_INIT;
    for (int depth = 63; depth <= 66; depth++) {
        buf_reset(&b);
        buf_adds(&b, "a@x ");
        for (int i = 0; i < depth; i++)
            buf_addc(&b, '(');
        for (int i = 0; i < depth; i++)
            buf_addc(&b, ')');
        struct rfc5322_addr_list l = {NULL, 0};
        char err[64] = "";
        int rc = rfc5322_parse_addresses(b.data, b.len, 10, &l, err, sizeof err);
        if (depth <= 64) {
            CHECK(rc == 0 && l.n == 1, "depth %d: rc %d (%s)", depth, rc, err);
        } else {
            CHECK(rc == -1, "depth %d: rc %d", depth, rc);
            CHECK_STR(err, "comments nested too deeply", "deep comment");
        }
        rfc5322_addr_list_free(&l);
    }
    buf_free(&b);
}

/* Long lists: the cap holds exactly, and big hostile inputs finish quickly. */
static void test_long_inputs(void)
{
    struct buf b = BUF_INIT;
    for (int i = 0; i < 10000; i++)
        buf_printf(&b, "\"User, %d\" <u%d@example.com>,\r\n ", i, i);
    struct rfc5322_addr_list l = {NULL, 0};
    char err[64] = "";
    int rc = rfc5322_parse_addresses(b.data, b.len, 10000, &l, err, sizeof err);
    CHECK(rc == 0 && l.n == 10000, "10000 addresses: rc %d n %zu (%s)", rc, l.n, err);
    if (rc == 0 && l.n == 10000) {
        CHECK_STR(l.v[9999].display, "User, 9999", "last display");
        CHECK_STR(l.v[9999].addr, "u9999@example.com", "last addr");
    }
    rfc5322_addr_list_free(&l);
    buf_adds(&b, "one@more");
    rc = rfc5322_parse_addresses(b.data, b.len, 10000, &l, err, sizeof err);
    CHECK(rc == -1 && l.n == 0, "10001 addresses: rc %d", rc);
    CHECK_STR(err, "too many addresses", "cap");

    static const char *const units[] = {"(", "=?a?q?.", "\"", "a.", ",", "=?", "a b ", "@"};
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        buf_reset(&b);
        while (b.len < 200000)
            buf_adds(&b, units[u]);
        rc = rfc5322_parse_addresses(b.data, b.len, 1000000, &l, err, sizeof err);
        CHECK(rc == 0 || l.n == 0, "unit %s: error left addresses", units[u]);
        rfc5322_addr_list_free(&l);
    }
    buf_free(&b);
}

struct header_case {
    const char *msg;
    size_t len;
    const char *name;
    int rc;
    const char *value; /* expected value, may hold NUL bytes */
    size_t vlen;
};

static const char crlf_msg[] = "Received: from x\r\n\tby y\r\n"
                               "From: \"Sender\" <s@x>\r\n"
                               "To: b@y,\r\n c@z\r\n"
                               "Subject: hi there  \t\r\n"
                               "X-Folded: one\r\n two\r\n\tthree\r\n"
                               "Cc:\r\n  d@w\r\n"
                               "Bcc:\r\n"
                               "\r\n"
                               "To: body@evil\r\n"
                               "Bcc: body@evil\r\n";

static const char lf_msg[] = "From: s@x\n"
                             "to: b@y,\n\tc@z\n"
                             "Subject: hi\n"
                             "\n"
                             "Cc: body@evil\n";

static const struct header_case header_cases[] = {
    {S(crlf_msg), "To", 0, S("b@y, c@z")},
    {S(crlf_msg), "to", 0, S("b@y, c@z")},
    {S(crlf_msg), "TO", 0, S("b@y, c@z")},
    {S(crlf_msg), "From", 0, S("\"Sender\" <s@x>")},
    {S(crlf_msg), "Subject", 0, S("hi there")},
    {S(crlf_msg), "X-Folded", 0, S("one two\tthree")},
    {S(crlf_msg), "Received", 0, S("from x\tby y")},
    {S(crlf_msg), "cc", 0, S("d@w")},
    {S(crlf_msg), "BCC", 0, S("")},
    {S(crlf_msg), "Reply-To", 1, NULL, 0},
    {S(crlf_msg), "T", 1, NULL, 0},
    {S(crlf_msg), "To: b@y", 1, NULL, 0},
    {S(lf_msg), "To", 0, S("b@y,\tc@z")},
    {S(lf_msg), "Subject", 0, S("hi")},
    {S(lf_msg), "Cc", 1, NULL, 0},
    {S("To: first@x\r\nTo: second@x\r\n\r\n"), "To", 0, S("first@x")},
    {S("Subject: x\r\n\r\nTo: body@x\r\n"), "To", 1, NULL, 0},
    {S("Subject: x\n\nTo: body@x\n"), "To", 1, NULL, 0},
    {S("To: a@x\r\nCc: b@y"), "Cc", 0, S("b@y")},
    {S("To: a@x\r\nCc: b@y\r\n"), "Cc", 0, S("b@y")},
    {S("To: a@x\r\n\nCc: b@y\r\n"), "Cc", 1, NULL, 0},
    {S("To: a@x\n\r\nCc: b@y\r\n"), "Cc", 1, NULL, 0},
    {S("garbage line\r\n\tand its continuation\r\nTo: a@x\r\n\r\n"), "To", 0, S("a@x")},
    {S("Toto: x\r\nX-To: y\r\nTo: a@x\r\n\r\n"), "To", 0, S("a@x")},
    {S("To : a@x\r\n\r\n"), "To", 0, S("a@x")},
    {S("To:a@x\r\n\r\n"), "to", 0, S("a@x")},
    {S(" To: a@x\r\n\r\n"), "To", 1, NULL, 0},
    {S("\r\nTo: a@x\r\n"), "To", 1, NULL, 0},
    {S("\nTo: a@x\n"), "To", 1, NULL, 0},
    {S(""), "To", 1, NULL, 0},
    {S("To: a@x\rBcc: e@y\r\n\r\n"), "To", 0, S("a@x\rBcc: e@y")},
    {S("To: a@x\r\nBcc: e@y\r\n\r\n"), "To", 0, S("a@x")},
    {S("To: a@x\r\n \r\n\r\n"), "To", 0, S("a@x")},
    {S("To: a\0b@x\r\n\r\n"), "To", 0, S("a\0b@x")},
};

/* Run every row of header_cases. */
static void test_header_table(void)
{
    for (size_t k = 0; k < sizeof header_cases / sizeof header_cases[0]; k++) {
        const struct header_case *c = &header_cases[k];
        struct buf out = BUF_INIT;
        int rc = rfc5322_header_get(c->msg, c->len, c->name, &out);
        CHECK(rc == c->rc, "header case %zu (%s): rc %d, want %d", k, c->name, rc, c->rc);
        if (c->rc == 0 && rc == 0)
            CHECK(out.len == c->vlen && memcmp(buf_cstr(&out), c->value, c->vlen) == 0,
                  "header case %zu (%s): got \"%s\", want \"%s\"", k, c->name,
                  test_show(buf_cstr(&out), out.len), c->value);
        if (c->rc == 1)
            CHECK(out.len == 0, "header case %zu: out touched when absent", k);
        buf_free(&out);
    }
}

struct end_case {
    const char *msg;
    size_t len;
    size_t end;
};

static const struct end_case end_cases[] = {
    {S("To: a\r\n\r\nbody"), 9},
    {S("To: a\n\nbody"), 7},
    {S("To: a\r\n\nbody"), 8},
    {S("To: a\n\r\nbody"), 8},
    {S("To: a\r\n \r\n\r\nbody"), 12},
    {S("To: a\r\nCc: b\r\n"), 14},
    {S("To: a"), 5},
    {S(""), 0},
    {S("\r\nbody"), 2},
    {S("\nbody"), 1},
    {S("To: a\r\n\r"), 8},
    {S("To: a\r\r\n\r\n"), 10},
};

/* Run every row of end_cases. */
static void test_header_end(void)
{
    for (size_t k = 0; k < sizeof end_cases / sizeof end_cases[0]; k++) {
        const struct end_case *c = &end_cases[k];
        size_t got = rfc5322_header_end(c->msg, c->len);
        CHECK(got == c->end, "end case %zu [%s]: got %zu, want %zu", k, test_show(c->msg, c->len),
              got, c->end);
    }
}

/* Appending: header_get adds to what out already holds. */
static void test_header_append(void)
{
    struct buf out = BUF_INIT;
    buf_adds(&out, "X");
    int rc = rfc5322_header_get(S("To: a@x\r\n\r\n"), "To", &out);
    CHECK(rc == 0, "append rc %d", rc);
    CHECK_STR(buf_cstr(&out), "Xa@x", "append");
    rc = rfc5322_header_get(S("Cc: a@x\r\n\r\n"), "To", &out);
    CHECK(rc == 1, "append absent rc %d", rc);
    CHECK_STR(buf_cstr(&out), "Xa@x", "append absent");
    buf_free(&out);
}

/* A whole message: headers are found, unfolded, and parsed as address lists;
 * an injected header inside a value is refused. */
static void test_end_to_end(void)
{
    static const char msg[] = "From: Sender <s@example.com>\r\n"
                              "To: \"Doe, John\" <john@example.com>,\r\n"
                              " =?utf-8?Q?J=C3=BCrgen?= <j@example.de>, undisclosed:;\r\n"
                              "Cc: team: a@example.com, (boss) b@example.com;\r\n"
                              "Bcc: hidden@example.com\r\n"
                              "Subject: test\r\n"
                              "\r\n"
                              "To: not-a-header@example.com\r\n";
    struct buf v = BUF_INIT;
    struct rfc5322_addr_list l = {NULL, 0};
    char err[64] = "";

    CHECK(rfc5322_header_get(msg, sizeof msg - 1, "to", &v) == 0, "To present");
    int rc = rfc5322_parse_addresses(v.data, v.len, 50, &l, err, sizeof err);
    CHECK(rc == 0 && l.n == 2, "To parse: rc %d n %zu (%s)", rc, l.n, err);
    if (rc == 0 && l.n == 2) {
        CHECK_STR(l.v[0].display, "Doe, John", "To[0] display");
        CHECK_STR(l.v[0].addr, "john@example.com", "To[0] addr");
        CHECK_STR(l.v[1].display, "J\xc3\xbcrgen", "To[1] display");
        CHECK_STR(l.v[1].addr, "j@example.de", "To[1] addr");
    }
    rfc5322_addr_list_free(&l);

    buf_reset(&v);
    CHECK(rfc5322_header_get(msg, sizeof msg - 1, "Cc", &v) == 0, "Cc present");
    rc = rfc5322_parse_addresses(v.data, v.len, 50, &l, err, sizeof err);
    CHECK(rc == 0 && l.n == 2, "Cc parse: rc %d n %zu (%s)", rc, l.n, err);
    if (rc == 0 && l.n == 2) {
        CHECK_STR(l.v[0].addr, "a@example.com", "Cc[0] addr");
        CHECK_STR(l.v[1].addr, "b@example.com", "Cc[1] addr");
    }
    rfc5322_addr_list_free(&l);

    static const char inject[] = "To: a@x\rBcc: evil@y\r\n\r\n";
    buf_reset(&v);
    CHECK(rfc5322_header_get(inject, sizeof inject - 1, "To", &v) == 0, "inject To present");
    rc = rfc5322_parse_addresses(v.data, v.len, 50, &l, err, sizeof err);
    CHECK(rc == -1 && l.n == 0, "injected CR refused: rc %d", rc);
    CHECK_STR(err, "bare CR or LF", "inject reason");

    rc = rfc5322_parse_addresses("a", 1, 50, &l, NULL, 0);
    CHECK(rc == -1 && l.n == 0, "NULL err buffer: rc %d", rc);
    rc = rfc5322_parse_addresses(NULL, 0, 50, &l, err, sizeof err);
    CHECK(rc == 0 && l.n == 0, "NULL empty input: rc %d", rc);
    char small[4];
    rc = rfc5322_parse_addresses("a", 1, 50, &l, small, sizeof small);
    CHECK(rc == -1 && strcmp(small, "mis") == 0, "short err buffer truncates: %s", small);
    buf_free(&v);
}

struct rewrite_case {
    const char *msg;
    size_t len;
    const char *to;
    bool first;
    int rc;
    bool dkim;        /* envelope-only: the output is the input */
    const char *want; /* expected output when rc is 0 and not dkim */
    size_t wlen;
};

#define DKIM_TO                                                                                    \
    "DKIM-Signature: v=1; a=rsa-sha256; d=x; s=s;\r\n\th=from:to:subject; bh=A=; b=B=\r\n"

static const struct rewrite_case rewrite_cases[] = {
    /* CRLF: folded multi-address To, Cc on the first copy, Bcc removed */
    {S("From: s@x\r\nTo: \"Doe, John\" <j@x>,\r\n k@y\r\nCc: c@z\r\nBcc: h@w\r\nSubject: "
       "hi\r\n\r\nbody\r\n"),
     "j@x", true, 0, false, S("From: s@x\r\nTo: j@x\r\nCc: c@z\r\nSubject: hi\r\n\r\nbody\r\n")},
    {S("From: s@x\r\nTo: \"Doe, John\" <j@x>,\r\n k@y\r\nCc: c@z\r\nBcc: h@w\r\nSubject: "
       "hi\r\n\r\nbody\r\n"),
     "k@y", false, 0, false, S("From: s@x\r\nTo: k@y\r\nSubject: hi\r\n\r\nbody\r\n")},
    /* LF: the new field uses bare LF, folding elsewhere is kept */
    {S("From: s@x\nto: b@y,\n\tc@z\nSubject: a\n  folded\n\nbody\n"), "c@z", false, 0, false,
     S("From: s@x\nTo: c@z\nSubject: a\n  folded\n\nbody\n")},
    /* two To fields: one at the place of the first */
    {S("To: a@x\r\nSubject: s\r\nTo: b@y\r\n\r\nb"), "b@y", true, 0, false,
     S("To: b@y\r\nSubject: s\r\n\r\nb")},
    {S("Subject: s\nTO : a@x\nX: 1\nto:b@y\n\tc@z\n\nb"), "a@x", true, 0, false,
     S("Subject: s\nTo: a@x\nX: 1\n\nb")},
    /* no To: inserted after From (and its continuation lines) */
    {S("Subject: s\r\nFrom: s@x,\r\n t@x\r\nDate: d\r\n\r\nbody"), "a@x", false, 0, false,
     S("Subject: s\r\nFrom: s@x,\r\n t@x\r\nTo: a@x\r\nDate: d\r\n\r\nbody")},
    {S("Subject: s\nFrom: s@x\nFrom: t@x\n\nbody"), "a@x", false, 0, false,
     S("Subject: s\nFrom: s@x\nTo: a@x\nFrom: t@x\n\nbody")},
    /* no To, no From: at the top */
    {S("Subject: s\r\n\r\nbody"), "a@x", false, 0, false, S("To: a@x\r\nSubject: s\r\n\r\nbody")},
    {S("\nbody\n"), "a@x", false, 0, false, S("To: a@x\n\nbody\n")},
    {S(""), "a@x", false, 0, false, S("To: a@x\r\n")},
    {S(" orphan\r\n\tmore\r\nSubject: s\r\n\r\n"), "a@x", false, 0, false,
     S(" orphan\r\n\tmore\r\nTo: a@x\r\nSubject: s\r\n\r\n")},
    /* Bcc, BCC, folded bcc, old form with a space: all removed */
    {S("From: s@x\r\nBcc: a@x\r\nTo: t@x\r\nBCC: b@x\r\nSubject: s\r\nbcc :\r\n c@x,\r\n\td@x\r\n"
       "X-Bcc: kept\r\n\r\nBcc: body@x\r\n"),
     "t@x", true, 0, false,
     S("From: s@x\r\nTo: t@x\r\nSubject: s\r\nX-Bcc: kept\r\n\r\nBcc: body@x\r\n")},
    /* several Cc fields: kept on the first copy, removed from the others */
    {S("To: a@x, b@y\nCc: c@z\nSubject: s\ncC: d@z,\n e@z\n\nb"), "b@y", true, 0, false,
     S("To: b@y\nCc: c@z\nSubject: s\ncC: d@z,\n e@z\n\nb")},
    {S("To: a@x, b@y\nCc: c@z\nSubject: s\ncC: d@z,\n e@z\n\nb"), "b@y", false, 0, false,
     S("To: b@y\nSubject: s\n\nb")},
    /* the body is never touched */
    {S("To: a@x\r\n\r\nTo: body@x\r\nBcc: body@x\r\nCc: body@x\r\n\r\nTo: more\r\n"), "b@y", false,
     0, false, S("To: b@y\r\n\r\nTo: body@x\r\nBcc: body@x\r\nCc: body@x\r\n\r\nTo: more\r\n")},
    /* no empty line: everything is header */
    {S("From: s@x\r\nTo: a@x\r\nBcc: b@x"), "c@z", true, 0, false, S("From: s@x\r\nTo: c@z\r\n")},
    {S("From: s@x\nTo: a@x"), "c@z", true, 0, false, S("From: s@x\nTo: c@z")},
    {S("From: s@x"), "c@z", true, 0, false, S("From: s@x\r\nTo: c@z")},
    {S("Subject: s\nFrom: s@x"), "c@z", true, 0, false, S("Subject: s\nFrom: s@x\nTo: c@z")},
    /* a bare CR inside a field is not a line end: the whole field goes */
    {S("To: a@x\rBcc: evil@y\r\nSubject: s\r\n\r\n"), "b@y", true, 0, false,
     S("To: b@y\r\nSubject: s\r\n\r\n")},
    /* DKIM: h= signs To: envelope only, whatever the copy */
    {S("From: s@x\r\n" DKIM_TO "To: a@x, b@y\r\nBcc: c@z\r\n\r\nbody"), "b@y", true, 0, true, NULL,
     0},
    {S("From: s@x\r\n" DKIM_TO "To: a@x, b@y\r\n\r\nbody"), "b@y", false, 0, true, NULL, 0},
    {S("From: s@x\r\n" DKIM_TO "Cc: c@z\r\n\r\nbody"), "b@y", false, 0, true, NULL, 0},
    /* h= without to: rewritten */
    {S("From: s@x\r\nDKIM-Signature: v=1; h=from:subject:date; b=B\r\nTo: a@x, b@y\r\nBcc: "
       "c@z\r\n\r\nbody"),
     "a@x", false, 0, false,
     S("From: s@x\r\nDKIM-Signature: v=1; h=from:subject:date; b=B\r\nTo: a@x\r\n\r\nbody")},
    /* folded h=, whitespace around the colons, upper-case name */
    {S("DKIM-Signature: v=1; d=x;\r\n h = from :\r\n\t TO\r\n : subject; b=B\r\nTo: a@x\r\n\r\n"),
     "b@y", false, 0, true, NULL, 0},
    {S("dkim-signature:v=1;h=from:\n to;b=B\nTo: a@x\n\n"), "b@y", false, 0, true, NULL, 0},
    /* "H=" is not the h tag; "bh=" and a value holding "to" neither */
    {S("DKIM-Signature: v=1; H=from:to; bh=to; z=To:to; b=to\r\nTo: a@x\r\n\r\n"), "b@y", false, 0,
     false, S("DKIM-Signature: v=1; H=from:to; bh=to; z=To:to; b=to\r\nTo: b@y\r\n\r\n")},
    /* "tox" and "x-to" are other fields */
    {S("DKIM-Signature: h=from:tox:x-to:reply-to\nTo: a@x\n\n"), "b@y", false, 0, false,
     S("DKIM-Signature: h=from:tox:x-to:reply-to\nTo: b@y\n\n")},
    /* several signatures: any one signing To is enough */
    {S("DKIM-Signature: h=from:subject; b=B\r\nDKIM-Signature: b=B; h=from:to\r\nTo: "
       "a@x\r\n\r\n"),
     "b@y", false, 0, true, NULL, 0},
    /* no To field but To signed: inserting one would break the signature */
    {S("From: s@x\r\nDKIM-Signature: h=from:to\r\n\r\n"), "b@y", false, 0, true, NULL, 0},
    /* Bcc signed: envelope only when a Bcc field is there */
    {S("DKIM-Signature: h=from:bcc\r\nTo: a@x\r\nBcc: c@z\r\n\r\n"), "b@y", true, 0, true, NULL, 0},
    {S("DKIM-Signature: h=from:bcc\r\nTo: a@x\r\n\r\n"), "b@y", true, 0, false,
     S("DKIM-Signature: h=from:bcc\r\nTo: b@y\r\n\r\n")},
    /* Cc signed: the first copy keeps Cc and is rewritten, the others are not */
    {S("DKIM-Signature: h=from:cc\nTo: a@x\nCc: c@z\n\n"), "b@y", true, 0, false,
     S("DKIM-Signature: h=from:cc\nTo: b@y\nCc: c@z\n\n")},
    {S("DKIM-Signature: h=from:cc\nTo: a@x\nCc: c@z\n\n"), "b@y", false, 0, true, NULL, 0},
    {S("DKIM-Signature: h=from:cc\nTo: a@x\n\n"), "b@y", false, 0, false,
     S("DKIM-Signature: h=from:cc\nTo: b@y\n\n")},
    /* a signature in the body counts for nothing */
    {S("To: a@x\n\nDKIM-Signature: h=from:to\n"), "b@y", false, 0, false,
     S("To: b@y\n\nDKIM-Signature: h=from:to\n")},
    /* to_addr that is not a plain addr-spec */
    {S("To: a@x\r\n\r\n"), "b@y\r\nBcc: evil@z", false, -1, false, NULL, 0},
    {S("To: a@x\r\n\r\n"), "b@y\nBcc: evil@z", false, -1, false, NULL, 0},
    {S("To: a@x\r\n\r\n"), "b@y\rBcc: evil@z", false, -1, false, NULL, 0},
    {S("To: a@x\r\n\r\n"), "b@y\t", false, -1, false, NULL, 0},
    {S("To: a@x\r\n\r\n"), "b@y\x7f", false, -1, false, NULL, 0},
    {S("To: a@x\r\n\r\n"), "b@y\xff", false, -1, false, NULL, 0},
    {S("To: a@x\r\n\r\n"), "b@\xc3", false, -1, false, NULL, 0},
    {S("To: a@x\r\n\r\n"), "", false, -1, false, NULL, 0},
    {S("To: a@x\r\n\r\n"), " b@y", false, -1, false, NULL, 0},
    {S("To: a@x\r\n\r\n"), "b@y ", false, -1, false, NULL, 0},
    {S("To: a@x\r\n\r\n"), "nobody", false, -1, false, NULL, 0},
    {S("To: a@x\r\n\r\n"), "j\xc3\xbcrgen@m\xc3\xbcller.de", false, 0, false,
     S("To: j\xc3\xbcrgen@m\xc3\xbcller.de\r\n\r\n")},
    {S("To: a@x\r\n\r\n"), "\"a b\"@x", false, 0, false, S("To: \"a b\"@x\r\n\r\n")},
};

/* Run every row of rewrite_cases; out starts non-empty to show appending. */
static void test_rewrite_table(void)
{
    for (size_t k = 0; k < sizeof rewrite_cases / sizeof rewrite_cases[0]; k++) {
        const struct rewrite_case *c = &rewrite_cases[k];
        struct buf out = BUF_INIT;
        buf_adds(&out, "#");
        bool dkim = !c->dkim;
        int rc = rfc5322_rewrite_for_copy(c->msg, c->len, c->to, c->first, &out, &dkim);
        CHECK(rc == c->rc, "rewrite case %zu: rc %d, want %d", k, rc, c->rc);
        if (c->rc != 0) {
            CHECK(out.len == 1, "rewrite case %zu: out touched on failure", k);
            buf_free(&out);
            continue;
        }
        CHECK(dkim == c->dkim, "rewrite case %zu: dkim_signed %d, want %d", k, dkim, c->dkim);
        const char *want = c->dkim ? c->msg : c->want;
        size_t wlen = c->dkim ? c->len : c->wlen;
        CHECK(out.len == wlen + 1 && memcmp(out.data + 1, want, wlen) == 0,
              "rewrite case %zu:\n got [%s]", k, test_show(out.data + 1, out.len - 1));
        buf_free(&out);
    }
}

/* Every copy of a fanned-out message, read back with header_get_all. */
static void test_rewrite_copies(void)
{
    static const char msg[] = "From: s@x\r\n"
                              "To: \"Doe, John\" <j@x>,\r\n =?utf-8?Q?J=C3=BCrgen?= <k@y>\r\n"
                              "Cc: team: c@z;\r\n"
                              "Bcc: h@w\r\n"
                              "Subject: hi\r\n"
                              "\r\n"
                              "body\r\n";
    static const char *const rcpt[] = {"j@x", "k@y"};
    for (size_t i = 0; i < 2; i++) {
        struct buf out = BUF_INIT, v = BUF_INIT;
        bool dkim = true;
        int rc = rfc5322_rewrite_for_copy(msg, sizeof msg - 1, rcpt[i], i == 0, &out, &dkim);
        CHECK(rc == 0 && !dkim, "copy %zu: rc %d dkim %d", i, rc, dkim);
        CHECK(rfc5322_header_get_all(out.data, out.len, "To", &v) == 1, "copy %zu: one To", i);
        CHECK_STR(buf_cstr(&v), rcpt[i], "copy To");
        buf_reset(&v);
        CHECK(rfc5322_header_get_all(out.data, out.len, "Bcc", &v) == 0 && v.len == 0,
              "copy %zu: no Bcc", i);
        CHECK(rfc5322_header_get_all(out.data, out.len, "Cc", &v) == (i == 0 ? 1 : 0),
              "copy %zu: Cc count", i);
        size_t e = rfc5322_header_end(out.data, out.len);
        CHECK_STR(out.data + e, "body\r\n", "copy body");
        buf_free(&v);
        buf_free(&out);
    }

    struct buf out = BUF_INIT;
    int rc = rfc5322_rewrite_for_copy(NULL, 0, "a@x", true, &out, NULL);
    CHECK(rc == 0, "NULL empty message, NULL flag: rc %d", rc);
    CHECK_STR(buf_cstr(&out), "To: a@x\r\n", "NULL empty message");
    rc = rfc5322_rewrite_for_copy("To: b@y\n", 8, NULL, true, &out, NULL);
    CHECK(rc == -1, "NULL to_addr: rc %d", rc);
    buf_free(&out);
}

struct get_all_case {
    const char *msg;
    size_t len;
    const char *name;
    int n;
    const char *value;
};

static const struct get_all_case get_all_cases[] = {
    {S("To: a@x\r\nCc: c@z\r\nTO: b@y\r\nto : d@w\r\n\r\nTo: body@x\r\n"), "To", 3,
     "a@x, b@y, d@w"},
    {S("To: a@x,\r\n\tb@y\r\nSubject: s\r\nTo:\r\n  c@z\r\n"), "to", 2, "a@x,\tb@y, c@z"},
    {S("Bcc:\nBcc: a@x\nBcc:  \nBcc: b@y\n\n"), "BCC", 4, "a@x, b@y"},
    {S("Bcc:\n\n"), "Bcc", 1, ""},
    {S("To: a@x\r\n\r\n"), "Cc", 0, ""},
    {S("\r\nTo: a@x\r\n"), "To", 0, ""},
    {S(" To: a@x\r\nX-To: b@y\r\nTo x: c@z\r\n"), "To", 0, ""},
    {S(""), "To", 0, ""},
    {S("Cc: a@x"), "Cc", 1, "a@x"},
};

/* Run every row of get_all_cases; values are appended to what out holds. */
static void test_get_all_table(void)
{
    for (size_t k = 0; k < sizeof get_all_cases / sizeof get_all_cases[0]; k++) {
        const struct get_all_case *c = &get_all_cases[k];
        struct buf out = BUF_INIT;
        buf_adds(&out, "#");
        int n = rfc5322_header_get_all(c->msg, c->len, c->name, &out);
        CHECK(n == c->n, "get_all case %zu (%s): n %d, want %d", k, c->name, n, c->n);
        CHECK_STR(buf_cstr(&out) + 1, c->value, "get_all value");
        buf_free(&out);
    }
}

/* rfc5322_header_remove: every field of the name goes, folded lines too;
 * nothing else changes, the body included. */
static void test_header_remove(void)
{
    static const struct {
        const char *in, *name, *out;
        int n;
    } t[] = {
        {"A: 1\r\nX-SES-CONFIGURATION-SET: cs\r\nB: 2\r\n\r\nX-SES-CONFIGURATION-SET: body\r\n",
         "x-ses-configuration-set", "A: 1\r\nB: 2\r\n\r\nX-SES-CONFIGURATION-SET: body\r\n", 1},
        {"X-T: a=1,\r\n b=2\r\nA: 1\r\nX-T:c=3\r\n\r\nbody", "X-T", "A: 1\r\n\r\nbody", 2},
        {"A: 1\r\n\r\nbody", "X-T", "A: 1\r\n\r\nbody", 0},
        {"A: 1\nX-T: v\n", "X-T", "A: 1\n", 1},
        {"X-Tags: v\r\n\r\n", "X-T", "X-Tags: v\r\n\r\n", 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        struct buf out = BUF_INIT;
        int n = rfc5322_header_remove(t[i].in, strlen(t[i].in), t[i].name, &out);
        CHECK(n == t[i].n, "remove %zu: %d fields", i, n);
        CHECK(out.len == strlen(t[i].out) && memcmp(out.data, t[i].out, out.len) == 0,
              "remove %zu: %.*s", i, (int)out.len, out.data);
        buf_free(&out);
    }
}

int main(void)
{
    test_addr_table();
    test_comment_depth();
    test_long_inputs();
    test_header_table();
    test_header_end();
    test_header_append();
    test_end_to_end();
    test_rewrite_table();
    test_rewrite_copies();
    test_get_all_table();
    test_header_remove();
    return check_done("test_rfc5322");
}
