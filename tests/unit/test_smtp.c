/* Unit tests for smtp: command lines, the command parser, the DATA reader
 * (dot-unstuffing, the end of data, the SMTP-smuggling variants of the 2023
 * reports, every split of the input), AUTH PLAIN and LOGIN decoding, the
 * SES SMTP password and the EHLO reply. */
#include <string.h>

#include "check.h"
#include "smtp.h"

/* ---- smtp_line ---- */

struct line_case {
    const char *in;
    size_t max;
    int rc;
    size_t len;  /* when rc == 1 */
    size_t used; /* when rc != 0 */
};

static const struct line_case line_cases[] = {
    {"NOOP\r\n", 1000, 1, 4, 6},
    {"\r\n", 1000, 1, 0, 2},
    {"NOOP\r\nQUIT\r\n", 1000, 1, 4, 6},
    {"NOOP", 1000, 0, 0, 0},
    {"NOOP\r", 1000, 0, 0, 0},
    {"", 1000, 0, 0, 0},
    /* bare LF ends a bad line; the next line stays for the next call */
    {"NOOP\nQUIT\r\n", 1000, -1, 0, 5},
    {"\n", 1000, -1, 0, 1},
    /* bare CR: the bad line runs to its LF */
    {"NO\rOP\r\n", 1000, -1, 0, 7},
    {"NOOP\r\r\n", 1000, -1, 0, 7},
    {"\rMAIL FROM:<a@b.example>\r\n", 1000, -1, 0, 26},
    /* max counts the CRLF: 8 bytes with it fit in 8, 9 do not */
    {"ABCDEF\r\n", 8, 1, 6, 8},
    {"ABCDEFG\r\n", 8, -1, 0, 9},
    {"ABCDEFGH", 8, -1, 0, 8},
    {"ABCDEFGHIJ\r\nNOOP\r\n", 8, -1, 0, 12},
    {"ABCDEFG", 8, 0, 0, 0},
};

static void test_line(void)
{
    for (size_t i = 0; i < sizeof line_cases / sizeof line_cases[0]; i++) {
        const struct line_case *c = &line_cases[i];
        size_t len = 99, used = 99;
        int rc = smtp_line(c->in, strlen(c->in), c->max, &len, &used);
        CHECK(rc == c->rc, "line %zu: rc %d, want %d", i, rc, c->rc);
        if (rc == 1)
            CHECK(len == c->len, "line %zu: len %zu, want %zu", i, len, c->len);
        if (rc != 0)
            CHECK(used == c->used, "line %zu: used %zu, want %zu", i, used, c->used);
    }
    /* an overlong line whose LF has not come is skipped up to it */
    size_t used = 0;
    CHECK(smtp_line_skip("xxxx", 4, &used) == 0 && used == 4, "skip without LF: used %zu", used);
    CHECK(smtp_line_skip("xx\r\nNOOP\r\n", 10, &used) == 1 && used == 4, "skip: used %zu", used);
    CHECK(smtp_line_skip("x\nNOOP\r\n", 8, &used) == 1 && used == 2, "skip bare LF: %zu", used);
}

/* ---- smtp_parse ---- */

struct parse_case {
    const char *line;
    int rc;
    enum smtp_verb verb;
    const char *arg;  /* NULL: not checked */
    const char *path; /* NULL: cmd.path must be NULL */
    const char *err;  /* the reply when rc < 0 */
};

static const struct parse_case parse_cases[] = {
    {"EHLO client.example", 0, SMTP_EHLO, "client.example", NULL, NULL},
    {"ehlo client.example  ", 0, SMTP_EHLO, "client.example", NULL, NULL},
    {"HeLo [192.0.2.1]", 0, SMTP_HELO, "[192.0.2.1]", NULL, NULL},
    {"EHLO", -1, SMTP_EHLO, NULL, NULL, "501 5.5.4 Syntax: EHLO hostname"},
    {"HELO ", -1, SMTP_HELO, NULL, NULL, "501 5.5.4 Syntax: HELO hostname"},
    {"DATA", 0, SMTP_DATA, "", NULL, NULL},
    {"data ", 0, SMTP_DATA, "", NULL, NULL},
    {"DATA x", -1, SMTP_DATA, NULL, NULL, "501 5.5.4 Syntax error (no parameters allowed)"},
    {"RSET", 0, SMTP_RSET, "", NULL, NULL},
    {"QUIT", 0, SMTP_QUIT, "", NULL, NULL},
    {"STARTTLS", 0, SMTP_STARTTLS, "", NULL, NULL},
    {"STARTTLS now", -1, SMTP_STARTTLS, NULL, NULL,
     "501 5.5.4 Syntax error (no parameters allowed)"},
    {"NOOP", 0, SMTP_NOOP, "", NULL, NULL},
    {"NOOP anything at all", 0, SMTP_NOOP, "anything at all", NULL, NULL},
    {"HELP", 0, SMTP_HELP, "", NULL, NULL},
    {"VRFY postmaster", 0, SMTP_VRFY, "postmaster", NULL, NULL},
    {"VRFY", -1, SMTP_VRFY, NULL, NULL, "501 5.5.4 Syntax: VRFY address"},
    {"FOO", -1, SMTP_UNKNOWN, NULL, NULL, "500 5.5.2 Syntax error, command unrecognized"},
    {"", -1, SMTP_UNKNOWN, NULL, NULL, "500 5.5.2 Syntax error, command unrecognized"},
    {"MAILFROM:<a@b.example>", -1, SMTP_UNKNOWN, NULL, NULL,
     "500 5.5.2 Syntax error, command unrecognized"},
    {"EXPN list", -1, SMTP_UNKNOWN, NULL, NULL, "502 5.5.1 Command not implemented"},
    {"BDAT 10 LAST", -1, SMTP_UNKNOWN, NULL, NULL, "502 5.5.1 Command not implemented"},
    {"NOOP\tx", -1, SMTP_UNKNOWN, NULL, NULL,
     "500 5.5.2 Syntax error, control character in command"},
    {"MAIL FROM:<a@b.example>\x7f", -1, SMTP_MAIL, NULL, NULL,
     "500 5.5.2 Syntax error, control character in command"},
    {"RCPT TO:<a\x01"
     "b@c.example>",
     -1, SMTP_RCPT, NULL, NULL, "500 5.5.2 Syntax error, control character in command"},

    /* MAIL FROM */
    {"MAIL FROM:<a@b.example>", 0, SMTP_MAIL, NULL, "a@b.example", NULL},
    {"mail from:<a@b.example>", 0, SMTP_MAIL, NULL, "a@b.example", NULL},
    {"MAIL FROM: <a@b.example>", 0, SMTP_MAIL, NULL, "a@b.example", NULL},
    {"MAIL FROM:<>", 0, SMTP_MAIL, NULL, "", NULL},
    {"MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME", 0, SMTP_MAIL, NULL, "a@b.example", NULL},
    {"MAIL FROM:<a@b.example> body=7bit size=0", 0, SMTP_MAIL, NULL, "a@b.example", NULL},
    {"MAIL FROM:<a@b.example> AUTH=<>", 0, SMTP_MAIL, NULL, "a@b.example", NULL},
    {"MAIL FROM:<@relay.example,@r2.example:a@b.example>", 0, SMTP_MAIL, NULL, "a@b.example", NULL},
    {"MAIL FROM:<@[192.0.2.1]:a@b.example>", 0, SMTP_MAIL, NULL, "a@b.example", NULL},
    {"MAIL FROM:<\"x.y\"@b.example>", 0, SMTP_MAIL, NULL, "\"x.y\"@b.example", NULL},
    {"MAIL FROM:<a@[192.0.2.1]>", 0, SMTP_MAIL, NULL, "a@[192.0.2.1]", NULL},
    {"MAIL FROM:a@b.example", -1, SMTP_MAIL, NULL, NULL, "501 5.5.4 Syntax: MAIL FROM:<address>"},
    {"MAIL FROM:<a@b.example", -1, SMTP_MAIL, NULL, NULL, "501 5.5.4 Syntax: MAIL FROM:<address>"},
    {"MAIL <a@b.example>", -1, SMTP_MAIL, NULL, NULL, "501 5.5.4 Syntax: MAIL FROM:<address>"},
    {"MAIL  FROM:<a@b.example>", -1, SMTP_MAIL, NULL, NULL,
     "501 5.5.4 Syntax: MAIL FROM:<address>"},
    {"MAIL FROM:<a@b.example>SIZE=10", -1, SMTP_MAIL, NULL, NULL,
     "501 5.5.4 Syntax: MAIL FROM:<address>"},
    {"MAIL FROM:< a@b.example>", -1, SMTP_MAIL, NULL, NULL,
     "501 5.1.7 Invalid MAIL FROM address provided"},
    {"MAIL FROM:<a@b.example >", -1, SMTP_MAIL, NULL, NULL,
     "501 5.1.7 Invalid MAIL FROM address provided"},
    {"MAIL FROM:<\"a b\"@b.example>", -1, SMTP_MAIL, NULL, NULL,
     "501 5.1.7 Invalid MAIL FROM address provided"},
    {"MAIL FROM:<a>", -1, SMTP_MAIL, NULL, NULL, "501 5.1.7 Invalid MAIL FROM address provided"},
    {"MAIL FROM:<a..b@b.example>", -1, SMTP_MAIL, NULL, NULL,
     "501 5.1.7 Invalid MAIL FROM address provided"},
    {"MAIL FROM:<@relay.example:>", -1, SMTP_MAIL, NULL, NULL,
     "501 5.1.7 Invalid MAIL FROM address provided"},
    {"MAIL FROM:<@relay.example a@b.example>", -1, SMTP_MAIL, NULL, NULL,
     "501 5.1.7 Invalid MAIL FROM address provided"},
    {"MAIL FROM:<@:a@b.example>", -1, SMTP_MAIL, NULL, NULL,
     "501 5.1.7 Invalid MAIL FROM address provided"},
    {"MAIL FROM:<relay.example:a@b.example>", -1, SMTP_MAIL, NULL, NULL,
     "501 5.1.7 Invalid MAIL FROM address provided"},
    {"MAIL FROM:<a@b.example> SIZE=", -1, SMTP_MAIL, NULL, NULL,
     "501 5.5.4 Syntax error in parameters or arguments"},
    {"MAIL FROM:<a@b.example> SIZE=12x", -1, SMTP_MAIL, NULL, NULL,
     "501 5.5.4 Syntax error in parameters or arguments"},
    {"MAIL FROM:<a@b.example> SIZE=1 SIZE=2", -1, SMTP_MAIL, NULL, NULL,
     "501 5.5.4 Duplicate parameter"},
    {"MAIL FROM:<a@b.example> BODY=BINARYMIME", -1, SMTP_MAIL, NULL, NULL,
     "555 5.5.4 Unsupported BODY type"},
    {"MAIL FROM:<a@b.example> BODY", -1, SMTP_MAIL, NULL, NULL, "555 5.5.4 Unsupported BODY type"},
    {"MAIL FROM:<a@b.example> RET=HDRS", -1, SMTP_MAIL, NULL, NULL,
     "555 5.5.4 Unsupported parameter"},
    {"MAIL FROM:<a@b.example> SMTPUTF8=yes", -1, SMTP_MAIL, NULL, NULL,
     "501 5.5.4 Syntax error in parameters or arguments"},
    {"MAIL FROM:<a@b.example> AUTH=", -1, SMTP_MAIL, NULL, NULL,
     "501 5.5.4 Syntax error in parameters or arguments"},
    /* non-ASCII only with SMTPUTF8 */
    {"MAIL FROM:<j\xc3\xbcrgen@b.example>", -1, SMTP_MAIL, NULL, NULL,
     "553 5.6.7 Non-ASCII addresses require SMTPUTF8"},
    {"MAIL FROM:<j\xc3\xbcrgen@b.example> SMTPUTF8", 0, SMTP_MAIL, NULL, "j\xc3\xbcrgen@b.example",
     NULL},
    {"MAIL FROM:<j\xc3rgen@b.example> SMTPUTF8", -1, SMTP_MAIL, NULL, NULL,
     "501 5.1.7 Invalid MAIL FROM address provided"},

    /* RCPT TO */
    {"RCPT TO:<c@d.example>", 0, SMTP_RCPT, NULL, "c@d.example", NULL},
    {"rcpt to:<C@D.EXAMPLE>", 0, SMTP_RCPT, NULL, "C@D.EXAMPLE", NULL},
    {"RCPT TO:<@hop.example:c@d.example>", 0, SMTP_RCPT, NULL, "c@d.example", NULL},
    {"RCPT TO:<c@d.example> ", 0, SMTP_RCPT, NULL, "c@d.example", NULL},
    {"RCPT TO:<j\xc3\xbcrgen@d.example>", 0, SMTP_RCPT, NULL, "j\xc3\xbcrgen@d.example", NULL},
    {"RCPT TO:<>", -1, SMTP_RCPT, NULL, NULL, "501 5.1.3 Invalid RCPT TO address provided"},
    {"RCPT TO:<postmaster>", -1, SMTP_RCPT, NULL, NULL,
     "501 5.1.3 Invalid RCPT TO address provided"},
    {"RCPT TO:<c@d.example> NOTIFY=NEVER", -1, SMTP_RCPT, NULL, NULL,
     "555 5.5.4 Unsupported parameter"},
    {"RCPT TO:<c@d.example> SIZE=10", -1, SMTP_RCPT, NULL, NULL, "555 5.5.4 Unsupported parameter"},
    {"RCPT FROM:<c@d.example>", -1, SMTP_RCPT, NULL, NULL, "501 5.5.4 Syntax: RCPT TO:<address>"},
    {"RCPT TO:c@d.example", -1, SMTP_RCPT, NULL, NULL, "501 5.5.4 Syntax: RCPT TO:<address>"},
    {"RCPT TO:<c@d_x.example>", -1, SMTP_RCPT, NULL, NULL,
     "501 5.1.3 Invalid RCPT TO address provided"},
    {"RCPT TO:<c@d.example>>", -1, SMTP_RCPT, NULL, NULL, "501 5.5.4 Syntax: RCPT TO:<address>"},

    /* AUTH */
    {"AUTH PLAIN", 0, SMTP_AUTH, "PLAIN", NULL, NULL},
    {"auth login", 0, SMTP_AUTH, "login", NULL, NULL},
    {"AUTH PLAIN AHVzZXIAcGFzcw==", 0, SMTP_AUTH, "PLAIN AHVzZXIAcGFzcw==", NULL, NULL},
    {"AUTH PLAIN =", 0, SMTP_AUTH, "PLAIN =", NULL, NULL},
    {"AUTH CRAM-MD5", -1, SMTP_AUTH, NULL, NULL, "504 5.5.4 Unrecognized authentication type"},
    {"AUTH", -1, SMTP_AUTH, NULL, NULL, "501 5.5.4 Syntax: AUTH mechanism [initial-response]"},
    {"AUTH PLAIN a b", -1, SMTP_AUTH, NULL, NULL,
     "501 5.5.4 Syntax: AUTH mechanism [initial-response]"},
};

static void test_parse(void)
{
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
        const struct parse_case *c = &parse_cases[i];
        struct smtp_cmd cmd;
        char err[128];
        int rc = smtp_parse(c->line, strlen(c->line), &cmd, err, sizeof err);
        CHECK(rc == c->rc, "parse \"%s\": rc %d, want %d (%s)", c->line, rc, c->rc, err);
        CHECK(cmd.verb == c->verb, "parse \"%s\": verb %d, want %d", c->line, (int)cmd.verb,
              (int)c->verb);
        if (rc < 0) {
            CHECK_STR(err, c->err, c->line);
            continue;
        }
        if (c->arg != NULL)
            CHECK(cmd.arglen == strlen(c->arg) && memcmp(cmd.arg, c->arg, cmd.arglen) == 0,
                  "parse \"%s\": arg \"%.*s\", want \"%s\"", c->line, (int)cmd.arglen, cmd.arg,
                  c->arg);
        if (c->path == NULL)
            CHECK(cmd.path == NULL, "parse \"%s\": a path", c->line);
        else
            CHECK(cmd.path != NULL && cmd.pathlen == strlen(c->path) &&
                      memcmp(cmd.path, c->path, cmd.pathlen) == 0,
                  "parse \"%s\": path \"%.*s\", want \"%s\"", c->line, (int)cmd.pathlen,
                  cmd.path ? cmd.path : "", c->path);
    }

    /* the MAIL parameters' values */
    struct smtp_cmd cmd;
    char err[128];
    const char *l = "MAIL FROM:<a@b.example> SIZE=41943040 BODY=8BITMIME";
    CHECK(smtp_parse(l, strlen(l), &cmd, err, sizeof err) == 0, "%s", err);
    CHECK(cmd.has_size && cmd.size == 41943040, "size %llu", (unsigned long long)cmd.size);
    CHECK(cmd.body_8bit && !cmd.smtputf8 && !cmd.path_8bit, "flags");
    l = "MAIL FROM:<a@b.example> SIZE=99999999999999999999";
    CHECK(smtp_parse(l, strlen(l), &cmd, err, sizeof err) == 0, "%s", err);
    CHECK(cmd.has_size && cmd.size == UINT64_MAX, "clamped size %llu",
          (unsigned long long)cmd.size);
    l = "MAIL FROM:<a@b.example>";
    CHECK(smtp_parse(l, strlen(l), &cmd, err, sizeof err) == 0 && !cmd.has_size && !cmd.body_8bit,
          "no parameters");
    l = "MAIL FROM:<j\xc3\xbc@b.example> SMTPUTF8";
    CHECK(smtp_parse(l, strlen(l), &cmd, err, sizeof err) == 0 && cmd.smtputf8 && cmd.path_8bit,
          "utf8 flags");
    l = "RCPT TO:<j\xc3\xbc@b.example>";
    CHECK(smtp_parse(l, strlen(l), &cmd, err, sizeof err) == 0 && cmd.path_8bit, "rcpt path_8bit");

    /* AUTH's mechanism and initial response */
    l = "AUTH PLAIN AHVzZXIAcGFzcw==";
    CHECK(smtp_parse(l, strlen(l), &cmd, err, sizeof err) == 0, "%s", err);
    CHECK(cmd.mech == SMTP_MECH_PLAIN && cmd.auth_resp != NULL && cmd.auth_resplen == 16 &&
              memcmp(cmd.auth_resp, "AHVzZXIAcGFzcw==", 16) == 0,
          "auth resp");
    l = "AUTH LOGIN";
    CHECK(smtp_parse(l, strlen(l), &cmd, err, sizeof err) == 0 && cmd.mech == SMTP_MECH_LOGIN &&
              cmd.auth_resp == NULL,
          "auth login without response");
    l = "AUTH PLAIN =";
    CHECK(smtp_parse(l, strlen(l), &cmd, err, sizeof err) == 0 && cmd.auth_resp != NULL &&
              cmd.auth_resplen == 0,
          "auth empty response");
    l = "AUTH XOAUTH2 abc";
    CHECK(smtp_parse(l, strlen(l), &cmd, err, sizeof err) < 0 && cmd.mech == SMTP_MECH_OTHER,
          "auth other");

    /* limits: local part 64, domain 255, path 256 with its <> */
    struct buf b = BUF_INIT;
    const char *tld = ".example";
    for (int local = 63; local <= 65; local++) {
        buf_reset(&b);
        buf_adds(&b, "RCPT TO:<");
        for (int k = 0; k < local; k++)
            buf_addc(&b, 'l');
        buf_adds(&b, "@d.example>");
        int rc = smtp_parse(b.data, b.len, &cmd, err, sizeof err);
        CHECK(rc == (local <= 64 ? 0 : -1), "local part of %d: rc %d", local, rc);
    }
    /* a domain of labels of 60: the path grows to 256 and past it */
    for (size_t want = 255; want <= 258; want++) {
        buf_reset(&b);
        buf_adds(&b, "RCPT TO:<a@");
        size_t dom = want - 2 - 2 - strlen(tld); /* "<a@" and ">" leave want - 4 */
        for (size_t k = 0; k < dom; k++)
            buf_addc(&b, (k % 61 == 60 && k + 1 < dom) ? '.' : 'd');
        buf_adds(&b, tld);
        buf_addc(&b, '>');
        size_t pathlen = b.len - strlen("RCPT TO:");
        int rc = smtp_parse(b.data, b.len, &cmd, err, sizeof err);
        CHECK(rc == (pathlen <= SMTP_MAX_PATH ? 0 : -1), "path of %zu: rc %d (%s)", pathlen, rc,
              err);
    }
    buf_free(&b);
}

/* ---- the DATA reader ---- */

struct data_case {
    const char *name;
    const char *in;
    size_t inlen;
    const char *out;
    size_t outlen;
    const char *rest; /* what follows the end: stays for the next command */
    bool done, ambiguous, long_line;
};

/* in, out and rest are literals (NULs allowed): their lengths from sizeof. */
#define DC(name, in, out, rest, done, amb, lng)                                                    \
    {                                                                                              \
        name, in, sizeof(in) - 1, out, sizeof(out) - 1, rest, done, amb, lng                       \
    }

#define X10  "xxxxxxxxxx"
#define X100 X10 X10 X10 X10 X10 X10 X10 X10 X10 X10
#define X990 X100 X100 X100 X100 X100 X100 X100 X100 X100 X10 X10 X10 X10 X10 X10 X10 X10 X10

static const struct data_case data_cases[] = {
    DC("simple", "Subject: x\r\n\r\nbody\r\n.\r\n", "Subject: x\r\n\r\nbody\r\n", "", true, false,
       false),
    DC("empty message", ".\r\n", "", "", true, false, false),
    DC("pipelined after the end", "hi\r\n.\r\nQUIT\r\n", "hi\r\n", "QUIT\r\n", true, false, false),
    DC("the end twice", "hi\r\n.\r\n.\r\n", "hi\r\n", ".\r\n", true, false, false),
    DC("no end yet", "hi\r\n", "hi\r\n", "", false, false, false),
    DC("partial end", "hi\r\n.\r", "hi\r\n", "", false, false, false),
    DC("dot-stuffed", "..a\r\n...\r\n..\r\n.\r\n", ".a\r\n..\r\n.\r\n", "", true, false, false),
    DC("lone dot with text", ".x\r\n. \r\n.\r\n", "x\r\n \r\n", "", true, false, false),
    DC("dot inside a line", "a.\r\nb.c\r\n.\r\n", "a.\r\nb.c\r\n", "", true, false, false),
    DC("the end needs its own line", "a\r\nb.\r\n.\r\n", "a\r\nb.\r\n", "", true, false, false),
    DC("no CRLF before the last line", "abc.\r\n", "abc.\r\n", "", false, false, false),
    DC("line of 998", X990 "xxxxxxxx\r\n.\r\n", X990 "xxxxxxxx\r\n", "", true, false, false),
    DC("line of 999", X990 "xxxxxxxxx\r\n.\r\n", X990 "xxxxxxxxx\r\n", "", true, false, true),
    DC("stuffed line of 998", "." X990 "xxxxxxxx\r\n.\r\n", X990 "xxxxxxxx\r\n", "", true, false,
       false),
    DC("NUL kept", "a\0b\r\n.\r\n", "a\0b\r\n", "", true, false, false),
    DC("8-bit kept", "caf\xc3\xa9\r\n.\r\n", "caf\xc3\xa9\r\n", "", true, false, false),
    /* the SMTP-smuggling variants of the 2023 reports: none ends the
     * message, each marks it ambiguous, and the reader goes on to the true
     * end, so the smuggled MAIL is never read as a command */
    DC("LF.LF", "a\n.\nMAIL FROM:<x@y.example>\r\n.\r\nQUIT\r\n",
       "a\n.\nMAIL FROM:<x@y.example>\r\n", "QUIT\r\n", true, true, false),
    DC("LF.CRLF", "a\n.\r\nMAIL FROM:<x@y.example>\r\n.\r\nQUIT\r\n",
       "a\n.\r\nMAIL FROM:<x@y.example>\r\n", "QUIT\r\n", true, true, false),
    DC("CR.CR", "a\r.\rMAIL FROM:<x@y.example>\r\n.\r\nQUIT\r\n",
       "a\r.\rMAIL FROM:<x@y.example>\r\n", "QUIT\r\n", true, true, false),
    DC("CR.CRLF", "a\r.\r\nMAIL FROM:<x@y.example>\r\n.\r\nQUIT\r\n",
       "a\r.\r\nMAIL FROM:<x@y.example>\r\n", "QUIT\r\n", true, true, false),
    DC("CRLF.LF", "a\r\n.\nMAIL FROM:<x@y.example>\r\n.\r\nQUIT\r\n",
       "a\r\n\nMAIL FROM:<x@y.example>\r\n", "QUIT\r\n", true, true, false),
    DC("CRLF.CR", "a\r\n.\rMAIL FROM:<x@y.example>\r\n.\r\nQUIT\r\n",
       "a\r\n\rMAIL FROM:<x@y.example>\r\n", "QUIT\r\n", true, true, false),
    DC("LF.CR", "a\n.\rMAIL FROM:<x@y.example>\r\n.\r\nQUIT\r\n",
       "a\n.\rMAIL FROM:<x@y.example>\r\n", "QUIT\r\n", true, true, false),
    DC("CR.LF", "a\r.\nMAIL FROM:<x@y.example>\r\n.\r\nQUIT\r\n",
       "a\r.\nMAIL FROM:<x@y.example>\r\n", "QUIT\r\n", true, true, false),
    DC("CRLF.CRCRLF", "a\r\n.\r\r\nMAIL FROM:<x@y.example>\r\n.\r\nQUIT\r\n",
       "a\r\n\r\r\nMAIL FROM:<x@y.example>\r\n", "QUIT\r\n", true, true, false),
    DC("CRLF.LFCRLF", "a\r\n.\n\r\nMAIL FROM:<x@y.example>\r\n.\r\n",
       "a\r\n\n\r\nMAIL FROM:<x@y.example>\r\n", "", true, true, false),
    DC("CRCRLF.CRLF", "a\r\r\n.\r\n", "a\r\r\n", "", true, true, false),
    DC("leading .LF", ".\nMAIL FROM:<x@y.example>\r\n.\r\n", "\nMAIL FROM:<x@y.example>\r\n", "",
       true, true, false),
    DC("leading .CR", ".\rMAIL FROM:<x@y.example>\r\n.\r\n", "\rMAIL FROM:<x@y.example>\r\n", "",
       true, true, false),
    DC("LF only, never ends", "a\n.\nMAIL FROM:<x@y.example>\n.\n",
       "a\n.\nMAIL FROM:<x@y.example>\n.\n", "", false, true, false),
    DC("NUL before the dot", "a\r\n\0.\r\nMAIL FROM:<x@y.example>\r\n.\r\n",
       "a\r\n\0.\r\nMAIL FROM:<x@y.example>\r\n", "", true, false, false),
    DC("LF LF", "a\n\n.\r\n", "a\n\n.\r\n", "", false, true, false),
};

/* Feed in[0..n) in three pieces split at i <= j; return what was consumed.
 * *sound is false when a piece was taken in part before the end or a feed
 * claimed more than it was given. */
static size_t test_data_feed3(struct smtp_data *d, const char *in, size_t n, size_t i, size_t j,
                              bool *sound)
{
    size_t cuts[4] = {0, i, j, n}, used = 0;
    *sound = true;
    for (int k = 0; k < 3; k++) {
        if (d->done)
            break;
        size_t len = cuts[k + 1] - cuts[k];
        size_t got = smtp_data_feed(d, in + cuts[k], len);
        if (got > len || (!d->done && got != len))
            *sound = false;
        used += got;
    }
    return used;
}

static void test_data(void)
{
    for (size_t c = 0; c < sizeof data_cases / sizeof data_cases[0]; c++) {
        const struct data_case *dc = &data_cases[c];
        size_t n = dc->inlen, outlen = dc->outlen, consumed = n - strlen(dc->rest);
        int bad = 0;
        /* every split point, and every pair of them for short inputs */
        for (size_t i = 0; i <= n; i++) {
            for (size_t j = i; j <= n; j += (n > 64 ? n - j + (j == n) : 1)) {
                struct buf out = BUF_INIT;
                struct smtp_data d;
                smtp_data_init(&d, &out, 1 << 20);
                bool sound;
                size_t used = test_data_feed3(&d, dc->in, n, i, j, &sound);
                bool ok = sound && used == consumed && d.done == dc->done &&
                          d.ambiguous == dc->ambiguous && d.long_line == dc->long_line &&
                          !d.too_large && out.len == outlen &&
                          (outlen == 0 || memcmp(out.data, dc->out, outlen) == 0) &&
                          d.size == outlen;
                if (!ok && bad++ == 0)
                    CHECK(ok,
                          "data \"%s\" split %zu,%zu: used %zu (want %zu) done %d ambiguous %d "
                          "long %d out %zu bytes (want %zu)",
                          dc->name, i, j, used, consumed, d.done, d.ambiguous, d.long_line, out.len,
                          outlen);
                buf_free(&out);
            }
        }
        CHECK(bad == 0, "data \"%s\": %d splits differ", dc->name, bad);
        /* one byte at a time */
        struct buf out = BUF_INIT;
        struct smtp_data d;
        smtp_data_init(&d, &out, 1 << 20);
        size_t used = 0;
        for (size_t k = 0; k < n && !d.done; k++)
            used += smtp_data_feed(&d, dc->in + k, 1);
        CHECK(used == consumed && out.len == outlen, "data \"%s\" bytewise: used %zu", dc->name,
              used);
        CHECK((smtp_data_reply(&d) == NULL) == (!dc->ambiguous && !dc->long_line),
              "data \"%s\": reply", dc->name);
        buf_free(&out);
    }

    /* once done, nothing more is taken */
    struct buf out = BUF_INIT;
    struct smtp_data d;
    smtp_data_init(&d, &out, 100);
    CHECK(smtp_data_feed(&d, ".\r\n", 3) == 3 && d.done, "empty done");
    CHECK(smtp_data_feed(&d, "QUIT\r\n", 6) == 0, "done takes nothing");
    buf_free(&out);

    /* at most max bytes kept; the reader still finds the end */
    smtp_data_init(&d, &out, 5);
    const char *big = "abcdef\r\nghi\r\n.\r\nNOOP\r\n";
    size_t used = smtp_data_feed(&d, big, strlen(big));
    CHECK(used == 16 && d.done && d.too_large && out.len == 5 && memcmp(out.data, "abcde", 5) == 0,
          "too large: used %zu len %zu", used, out.len);
    CHECK(d.size == 13, "size counts past max: %llu", (unsigned long long)d.size);
    CHECK_STR(smtp_data_reply(&d), "552 5.3.4 Message size exceeds fixed maximum message size",
              "too large reply");
    buf_free(&out);
    smtp_data_init(&d, &out, 4);
    CHECK(smtp_data_feed(&d, "ab\r\n.\r\n", 7) == 7 && !d.too_large && out.len == 4,
          "exactly max is not too large");
    buf_free(&out);

    /* the reader appends after what the buffer held */
    buf_adds(&out, "HDR");
    smtp_data_init(&d, &out, 4);
    smtp_data_feed(&d, "ab\r\n.\r\n", 7);
    CHECK(!d.too_large && out.len == 7 && memcmp(out.data, "HDRab\r\n", 7) == 0, "appends");
    buf_free(&out);

    /* the replies */
    smtp_data_init(&d, &out, 100);
    smtp_data_feed(&d, "a\nb\r\n.\r\n", 8);
    CHECK_STR(smtp_data_reply(&d),
              "554 5.6.0 Message refused: bare CR or LF in the message (lines end with CRLF)",
              "ambiguous reply");
    buf_free(&out);
}

/* ---- AUTH ---- */

struct plain_case {
    const char *raw; /* decoded form; '|' stands for NUL */
    const char *b64; /* NULL: encode raw */
    int rc;
    const char *user, *pass;
};

static const struct plain_case plain_cases[] = {
    {"|AKIDEXAMPLE|secret", NULL, 0, "AKIDEXAMPLE", "secret"},
    {"AKIDEXAMPLE|AKIDEXAMPLE|secret", NULL, 0, "AKIDEXAMPLE", "secret"},
    {"other|AKIDEXAMPLE|secret", NULL, -1, NULL, NULL},
    {"||secret", NULL, -1, NULL, NULL},
    {"|AKIDEXAMPLE|", NULL, -1, NULL, NULL},
    {"|AKIDEXAMPLE", NULL, -1, NULL, NULL},
    {"AKIDEXAMPLE", NULL, -1, NULL, NULL},
    {"|a|b|c", NULL, -1, NULL, NULL},
    /* strict base64: "\0user\0pass" is AHVzZXIAcGFzcw== */
    {NULL, "AHVzZXIAcGFzcw==", 0, "user", "pass"},
    {NULL, "AHVzZXIAcGFzcw", -1, NULL, NULL},
    {NULL, "AHVzZXIAcGFzcw=", -1, NULL, NULL},
    {NULL, "AHVzZXIA cGFzcw==", -1, NULL, NULL},
    {NULL, "AHVzZXIAcGFzcw==\r\n", -1, NULL, NULL},
    {NULL, "AHVzZXIAcGFzcx==", -1, NULL, NULL}, /* non-zero trailing bits */
    {NULL, "AHVzZXIAcGFzcw==AAAA", -1, NULL, NULL},
    {NULL, "AHVz=XIAcGFzcw==", -1, NULL, NULL},
    {NULL, "AHVzZXIAcGFzcw*=", -1, NULL, NULL},
    {NULL, "", -1, NULL, NULL},
    {NULL, "=", -1, NULL, NULL},
    {NULL, "====", -1, NULL, NULL},
};

static void test_auth(void)
{
    for (size_t i = 0; i < sizeof plain_cases / sizeof plain_cases[0]; i++) {
        const struct plain_case *c = &plain_cases[i];
        struct buf b64 = BUF_INIT, user = BUF_INIT, pass = BUF_INIT;
        if (c->b64 != NULL) {
            buf_adds(&b64, c->b64);
        } else {
            char raw[64];
            size_t n = strlen(c->raw);
            for (size_t k = 0; k < n; k++)
                raw[k] = c->raw[k] == '|' ? '\0' : c->raw[k];
            check_b64(raw, n, &b64);
        }
        int rc = smtp_auth_plain(buf_cstr(&b64), b64.len, &user, &pass);
        CHECK(rc == c->rc, "plain %zu (%s): rc %d, want %d", i, buf_cstr(&b64), rc, c->rc);
        if (rc == 0 && c->rc == 0) {
            CHECK_STR(buf_cstr(&user), c->user, "plain user");
            CHECK_STR(buf_cstr(&pass), c->pass, "plain pass");
        }
        if (rc < 0)
            CHECK(user.len == 0 && pass.len == 0, "plain %zu: output on error", i);
        buf_free(&b64);
        buf_free(&user);
        buf_free(&pass);
    }

    struct {
        const char *b64;
        int rc;
        const char *want;
    } login[] = {
        {"QUtJREVYQU1QTEU=", 0, "AKIDEXAMPLE"},
        {"dXNlcg==", 0, "user"},
        {"cGFzc3dvcmQ=", 0, "password"},
        {"cGFzc3dvcmQ", -1, NULL},
        {"", -1, NULL},
        {"AA==", -1, NULL},      /* NUL */
        {"YQ1i", -1, NULL},      /* "a\rb" */
        {"dXNl cg==", -1, NULL}, /* white space */
        {"*", -1, NULL},
    };
    for (size_t i = 0; i < sizeof login / sizeof login[0]; i++) {
        struct buf out = BUF_INIT;
        int rc = smtp_auth_login(login[i].b64, strlen(login[i].b64), &out);
        CHECK(rc == login[i].rc, "login \"%s\": rc %d", login[i].b64, rc);
        if (rc == 0)
            CHECK_STR(buf_cstr(&out), login[i].want, login[i].b64);
        buf_free(&out);
    }
    CHECK(smtp_auth_cancelled("*", 1), "* cancels");
    CHECK(!smtp_auth_cancelled("**", 2) && !smtp_auth_cancelled("", 0) &&
              !smtp_auth_cancelled("* ", 2),
          "only * cancels");
}

/* ---- the SES SMTP password ---- */

struct password_case {
    const char *secret, *region, *want;
};

/* The first four are the published vectors of terraform-provider-aws
 * (internal/service/iam/access_key_test.go, TestSESSMTPPasswordFromSecretKeySigV4),
 * whose implementation authenticates against SES. The others were computed
 * with AWS's calculate_key algorithm in Python:
 *   /usr/bin/python3 -c 'import hmac,hashlib,base64
 *   s=lambda k,m: hmac.new(k,m.encode(),hashlib.sha256).digest()
 *   def p(sec,reg):
 *     x=s(("AWS4"+sec).encode(),"11111111")
 *     for m in (reg,"ses","aws4_request","SendRawEmail"): x=s(x,m)
 *     return base64.b64encode(bytes([4])+x).decode()
 *   print(p("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY","us-east-1"))'
 */
static const struct password_case password_cases[] = {
    {"some+secret+key", "eu-central-1", "BMXhUYlu5Z3gSXVQORxlVa7XPaz91aGWdfHxvkOZdWZ2"},
    {"another+secret+key", "eu-central-1", "BBbphbrQmrKMx42d1N6+C7VINYEBGI5v9VsZeTxwskfh"},
    {"some+secret+key", "us-west-1", "BH+jbMzper5WwlwUar9E1ySBqHa9whi0GPo+sJ0mVYJj"},
    {"another+secret+key", "us-west-1", "BKVmjjMDFk/qqw8EROW99bjCS65PF8WKvK5bSr4Y6EqF"},
    {"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1",
     "BLBM/9hSUELfq8Gw+rU1YcBjkOxGbhT2XG763xVLGWL9"},
    {"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "eu-west-1",
     "BMW5RDrXmmVs0lV7GpI4oLkHXpZ4stDsk6q91z1g38Pk"},
    {"", "us-east-1", "BOW79JVhDT89FyiFKOdz7GgFSn54m/kvJC9qQ6Zd5iK0"},
};

static void test_password(void)
{
    for (size_t i = 0; i < sizeof password_cases / sizeof password_cases[0]; i++) {
        const struct password_case *c = &password_cases[i];
        char got[SMTP_PASSWORD_LEN + 1];
        memset(got, '?', sizeof got);
        smtp_password(c->secret, c->region, got);
        CHECK(strlen(got) == SMTP_PASSWORD_LEN, "password length %zu", strlen(got));
        CHECK_STR(got, c->want, c->region);
        CHECK(smtp_password_check(c->secret, c->region, c->want, strlen(c->want)),
              "check %zu accepts", i);
    }
    const char *good = "BMXhUYlu5Z3gSXVQORxlVa7XPaz91aGWdfHxvkOZdWZ2";
    CHECK(!smtp_password_check("some+secret+key", "us-west-1", good, strlen(good)),
          "another region's password");
    CHECK(!smtp_password_check("some+secret+key", "eu-central-1", good, strlen(good) - 1),
          "a prefix");
    CHECK(!smtp_password_check("some+secret+kez", "eu-central-1", good, strlen(good)),
          "another secret");
    CHECK(!smtp_password_check("some+secret+key", "eu-central-1", "", 0), "empty");
}

static void test_ehlo(void)
{
    struct buf out = BUF_INIT;
    smtp_ehlo_reply(&out, "gw.example", 41943040, SMTP_EHLO_STARTTLS);
    CHECK_STR(buf_cstr(&out),
              "250-gw.example\r\n250-SIZE 41943040\r\n250-8BITMIME\r\n250-PIPELINING\r\n"
              "250-STARTTLS\r\n250 ENHANCEDSTATUSCODES\r\n",
              "ehlo before TLS");
    buf_reset(&out);
    smtp_ehlo_reply(&out, "gw.example", 10, SMTP_EHLO_AUTH | SMTP_EHLO_SMTPUTF8);
    CHECK_STR(buf_cstr(&out),
              "250-gw.example\r\n250-SIZE 10\r\n250-8BITMIME\r\n250-PIPELINING\r\n"
              "250-SMTPUTF8\r\n250-AUTH PLAIN LOGIN\r\n250 ENHANCEDSTATUSCODES\r\n",
              "ehlo on TLS");
    buf_free(&out);
}

int main(void)
{
    test_line();
    test_parse();
    test_data();
    test_auth();
    test_password();
    test_ehlo();
    return check_done("test_smtp");
}
