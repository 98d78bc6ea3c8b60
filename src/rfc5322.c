/* rfc5322: header lookup and address-list parsing (pure, no I/O).
 *
 * The address parser runs in one pass over the value with one token of
 * lookahead and no recursion: a byte check first (NUL, control characters
 * and line breaks that are not folds are refused, so nothing it returns can
 * carry a CR or LF), then a lexer that yields atoms, quoted strings, domain
 * literals and specials with comments and folding whitespace skipped, and a
 * parser over those tokens. A run of words is collected once and kept both
 * as a display name and as a local part until the next special decides
 * which it was. Comment nesting is counted, not recursed into.
 */
#include "rfc5322.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

#define RFC5322_MAX_COMMENT_DEPTH 64
#define RFC5322_MAX_CHARSET_LEN   64

/* UTF-8 of U+FFFD REPLACEMENT CHARACTER, for bytes that are not UTF-8. */
static const char rfc5322_replacement[] = "\xef\xbf\xbd";

/* True for space and horizontal tab. */
static bool rfc5322_is_wsp(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* Length of the line break (LF or CRLF) at s[i], 0 when there is none. */
static size_t rfc5322_eol_len(const char *s, size_t len, size_t i)
{
    if (s[i] == '\n')
        return 1;
    if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n')
        return 2;
    return 0;
}

/* Offset of the body: just past the first empty line, or len. */
size_t rfc5322_header_end(const char *msg, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        const char *lf = memchr(msg + pos, '\n', len - pos);
        if (lf == NULL)
            return len;
        size_t e = (size_t)(lf - msg);
        if (e == pos || (e == pos + 1 && msg[pos] == '\r'))
            return e + 1;
        pos = e + 1;
    }
    return len;
}

/* Find the end of the line starting at pos (the LF, or end) and where its
 * content ends (before a CR that precedes the LF). */
static size_t rfc5322_line(const char *msg, size_t pos, size_t end, size_t *content_end)
{
    const char *lf = memchr(msg + pos, '\n', end - pos);
    size_t e = lf ? (size_t)(lf - msg) : end;
    size_t ce = e;
    if (lf && ce > pos && msg[ce - 1] == '\r')
        ce--;
    *content_end = ce;
    return e;
}

/* Append the unfolded value that starts at msg[vstart] (line content up to
 * vend, then every continuation line before end) to out, trimmed. */
static void rfc5322_header_value(const char *msg, size_t vstart, size_t vend, size_t next,
                                 size_t end, struct buf *out)
{
    struct buf v = BUF_INIT;
    buf_add(&v, msg + vstart, vend - vstart);
    size_t pos = next;
    while (pos < end && rfc5322_is_wsp((unsigned char)msg[pos])) {
        size_t ce;
        size_t e = rfc5322_line(msg, pos, end, &ce);
        buf_add(&v, msg + pos, ce - pos);
        pos = e + 1;
    }
    size_t b = 0, e = v.len;
    while (b < e && rfc5322_is_wsp((unsigned char)v.data[b]))
        b++;
    while (e > b && (rfc5322_is_wsp((unsigned char)v.data[e - 1]) || v.data[e - 1] == '\r'))
        e--;
    buf_add(out, v.data + b, e - b);
    buf_free(&v);
}

/* Append the unfolded value of the first field called name to out; 1 if absent. */
int rfc5322_header_get(const char *msg, size_t len, const char *name, struct buf *out)
{
    size_t end = rfc5322_header_end(msg, len);
    size_t namelen = strlen(name);
    size_t pos = 0;
    while (pos < end) {
        size_t ce;
        size_t e = rfc5322_line(msg, pos, end, &ce);
        if (ce == pos)
            break;
        if (!rfc5322_is_wsp((unsigned char)msg[pos])) {
            const char *colon = memchr(msg + pos, ':', ce - pos);
            if (colon != NULL) {
                size_t c = (size_t)(colon - msg);
                size_t ne = c;
                while (ne > pos && rfc5322_is_wsp((unsigned char)msg[ne - 1]))
                    ne--;
                if (ne - pos == namelen && strncasecmp(msg + pos, name, namelen) == 0) {
                    rfc5322_header_value(msg, c + 1, ce, e + 1, end, out);
                    return 0;
                }
            }
        }
        pos = e + 1;
    }
    return 1;
}

/* One field of a header block: its first line and continuation lines. */
struct rfc5322_field {
    size_t start;      /* first byte */
    size_t end;        /* just past its last line end, or the block end */
    size_t name_end;   /* end of the name (whitespace before the colon removed) */
    size_t value;      /* just past the colon */
    size_t first_ce;   /* end of the first line's content (before CR LF) */
    size_t first_next; /* start of the second line */
    bool named;        /* starts with a non-blank byte and has a colon */
};

/* Read the field at *pos in the header block [0, hend) into f and move *pos
 * past it; false at the empty line that ends the block or at hend. A leading
 * line that starts with whitespace (a continuation of nothing) is a field
 * without a name, as is a line without a colon. */
static bool rfc5322_next_field(const char *msg, size_t hend, size_t *pos, struct rfc5322_field *f)
{
    size_t p = *pos;
    if (p >= hend)
        return false;
    size_t ce;
    size_t e = rfc5322_line(msg, p, hend, &ce);
    if (ce == p)
        return false;
    f->start = p;
    f->first_ce = ce;
    f->first_next = e < hend ? e + 1 : e;
    f->named = false;
    f->name_end = f->value = p;
    if (!rfc5322_is_wsp((unsigned char)msg[p])) {
        const char *colon = memchr(msg + p, ':', ce - p);
        if (colon != NULL) {
            size_t c = (size_t)(colon - msg);
            size_t ne = c;
            while (ne > p && rfc5322_is_wsp((unsigned char)msg[ne - 1]))
                ne--;
            f->named = true;
            f->name_end = ne;
            f->value = c + 1;
        }
    }
    p = f->first_next;
    while (p < hend && rfc5322_is_wsp((unsigned char)msg[p])) {
        e = rfc5322_line(msg, p, hend, &ce);
        p = e < hend ? e + 1 : e;
    }
    f->end = p;
    *pos = p;
    return true;
}

/* True when field f is called name (case-insensitive). */
static bool rfc5322_field_is(const char *msg, const struct rfc5322_field *f, const char *name)
{
    return f->named && util_ieq(msg + f->start, f->name_end - f->start, name);
}

/* Append the unfolded values of every field called name, joined by ", ". */
int rfc5322_header_get_all(const char *msg, size_t len, const char *name, struct buf *out)
{
    size_t hend = rfc5322_header_end(msg, len);
    size_t pos = 0;
    struct rfc5322_field f;
    int n = 0;
    bool any = false;
    struct buf v = BUF_INIT;
    while (rfc5322_next_field(msg, hend, &pos, &f)) {
        if (!rfc5322_field_is(msg, &f, name))
            continue;
        n++;
        buf_reset(&v);
        rfc5322_header_value(msg, f.value, f.first_ce, f.first_next, f.end, &v);
        if (v.len == 0)
            continue;
        if (any)
            buf_add(out, ", ", 2);
        buf_add(out, v.data, v.len);
        any = true;
    }
    buf_free(&v);
    return n;
}

int rfc5322_header_remove(const char *msg, size_t len, const char *name, struct buf *out)
{
    size_t hend = rfc5322_header_end(msg, len);
    size_t pos = 0, done = 0;
    struct rfc5322_field f;
    int n = 0;
    while (rfc5322_next_field(msg, hend, &pos, &f)) {
        if (!rfc5322_field_is(msg, &f, name))
            continue;
        buf_add(out, msg + done, f.start - done);
        done = f.end;
        n++;
    }
    buf_add(out, msg + done, len - done);
    return n;
}

/* True for the whitespace DKIM allows around tags and list items. */
static bool rfc5322_is_fws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Trim folding whitespace from both ends of s[*b..*e). */
static void rfc5322_trim_fws(const char *s, size_t *b, size_t *e)
{
    while (*b < *e && rfc5322_is_fws((unsigned char)s[*b]))
        (*b)++;
    while (*e > *b && rfc5322_is_fws((unsigned char)s[*e - 1]))
        (*e)--;
}

/* Which of To, Cc and Bcc a DKIM-Signature field signs. */
struct rfc5322_signed {
    bool to, cc, bcc;
};

/* Read the h= tag (tag names are case-sensitive, RFC 6376 3.2) of the
 * DKIM-Signature value v[0..n) and note the fields it signs in sig. */
static void rfc5322_dkim_signed(const char *v, size_t n, struct rfc5322_signed *sig)
{
    size_t i = 0;
    while (i < n) {
        const char *semi = memchr(v + i, ';', n - i);
        size_t te = semi ? (size_t)(semi - v) : n;
        const char *eq = memchr(v + i, '=', te - i);
        if (eq != NULL) {
            size_t nb = i, ne = (size_t)(eq - v);
            rfc5322_trim_fws(v, &nb, &ne);
            if (ne - nb == 1 && v[nb] == 'h') {
                size_t j = ne + 1;
                while (j < te) {
                    const char *colon = memchr(v + j, ':', te - j);
                    size_t ie = colon ? (size_t)(colon - v) : te;
                    size_t ib = j;
                    rfc5322_trim_fws(v, &ib, &ie);
                    sig->to |= util_ieq(v + ib, ie - ib, "to");
                    sig->cc |= util_ieq(v + ib, ie - ib, "cc");
                    sig->bcc |= util_ieq(v + ib, ie - ib, "bcc");
                    j = colon ? (size_t)(colon - v) + 1 : te;
                }
            }
        }
        i = te + 1;
    }
}

/* True when to_addr can stand alone as a header value: not empty, no
 * whitespace at either end, an '@', printable ASCII or valid UTF-8 only. */
static bool rfc5322_addr_ok(const char *a)
{
    size_t n = strlen(a);
    if (n == 0 || a[0] == ' ' || a[n - 1] == ' ' || strchr(a, '@') == NULL)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)a[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return util_utf8_valid(a, n);
}

/* Append a "To: addr" field; the line end goes before it when it continues
 * a line that has none (line_open), else after it. */
static void rfc5322_add_to(struct buf *out, bool line_open, const char *addr, const char *eol)
{
    if (line_open)
        buf_adds(out, eol);
    buf_adds(out, "To: ");
    buf_adds(out, addr);
    if (!line_open)
        buf_adds(out, eol);
}

/* Copy of msg for one recipient: To replaced, Bcc removed, Cc only on the
 * first copy; unchanged when a DKIM signature covers a field to change. */
int rfc5322_rewrite_for_copy(const char *msg, size_t len, const char *to_addr, bool first_copy,
                             struct buf *out, bool *dkim_signed)
{
    if (dkim_signed != NULL)
        *dkim_signed = false;
    if (to_addr == NULL || (msg == NULL && len > 0) || !rfc5322_addr_ok(to_addr))
        return -1;
    if (len == 0)
        msg = "";

    size_t hend = rfc5322_header_end(msg, len);
    struct rfc5322_signed sig = {false, false, false};
    size_t n_cc = 0, n_bcc = 0;
    size_t from_end = 0, top = 0;
    bool have_to = false, have_from = false;
    size_t pos = 0;
    struct rfc5322_field f;
    struct buf v = BUF_INIT;
    while (rfc5322_next_field(msg, hend, &pos, &f)) {
        if (f.start == 0 && rfc5322_is_wsp((unsigned char)msg[0]))
            top = f.end;
        if (rfc5322_field_is(msg, &f, "To")) {
            have_to = true;
        } else if (rfc5322_field_is(msg, &f, "Cc")) {
            n_cc++;
        } else if (rfc5322_field_is(msg, &f, "Bcc")) {
            n_bcc++;
        } else if (rfc5322_field_is(msg, &f, "From") && !have_from) {
            have_from = true;
            from_end = f.end;
        } else if (rfc5322_field_is(msg, &f, "DKIM-Signature")) {
            buf_reset(&v);
            rfc5322_header_value(msg, f.value, f.first_ce, f.first_next, f.end, &v);
            rfc5322_dkim_signed(v.data, v.len, &sig);
        }
    }
    buf_free(&v);

    if (sig.to || (sig.bcc && n_bcc > 0) || (sig.cc && n_cc > 0 && !first_copy)) {
        buf_add(out, msg, len);
        if (dkim_signed != NULL)
            *dkim_signed = true;
        return 0;
    }

    const char *lf = memchr(msg, '\n', len);
    const char *eol = lf == NULL || (lf > msg && lf[-1] == '\r') ? "\r\n" : "\n";
    size_t insert_at = have_to ? SIZE_MAX : have_from ? from_end : top;
    bool to_done = false;
    size_t copied = 0; /* msg[0..copied) is handled */
    pos = 0;
    for (;;) {
        if (!to_done && pos == insert_at) {
            buf_add(out, msg + copied, pos - copied);
            copied = pos;
            rfc5322_add_to(out, pos > 0 && msg[pos - 1] != '\n', to_addr, eol);
            to_done = true;
        }
        if (!rfc5322_next_field(msg, hend, &pos, &f))
            break;
        bool is_to = rfc5322_field_is(msg, &f, "To");
        bool drop = is_to || rfc5322_field_is(msg, &f, "Bcc") ||
                    (!first_copy && rfc5322_field_is(msg, &f, "Cc"));
        if (!drop)
            continue;
        buf_add(out, msg + copied, f.start - copied);
        copied = f.end;
        if (is_to && !to_done) {
            bool line_end = f.end > f.start && msg[f.end - 1] == '\n';
            buf_adds(out, "To: ");
            buf_adds(out, to_addr);
            if (line_end)
                buf_adds(out, eol);
            to_done = true;
        }
    }
    buf_add(out, msg + copied, len - copied);
    return 0;
}

/* Tokens of an address list; comments and whitespace are not tokens. */
enum rfc5322_tok_type {
    RFC5322_T_END,
    RFC5322_T_ATOM,
    RFC5322_T_QSTR,
    RFC5322_T_DLIT,
    RFC5322_T_DOT,
    RFC5322_T_AT,
    RFC5322_T_LT,
    RFC5322_T_GT,
    RFC5322_T_COMMA,
    RFC5322_T_SEMI,
    RFC5322_T_COLON,
};

struct rfc5322_tok {
    enum rfc5322_tok_type type;
    size_t start, end; /* source span, quotes and brackets included */
    bool space;        /* whitespace or a comment came before it */
};

struct rfc5322_parser {
    const char *s;
    size_t len;
    size_t i;             /* next source byte to lex */
    struct rfc5322_tok t; /* current token */
    size_t max;           /* addresses accepted at most */
    size_t cap;           /* slots allocated in out->v */
    const char *err;      /* first failure reason */
    struct rfc5322_addr_list *out;
};

/* A run of words and dots, kept both as a display name and as a local part. */
struct rfc5322_phrase {
    struct buf disp;  /* display name before whitespace and UTF-8 clean-up */
    struct buf local; /* the words as a local part, source text without CFWS */
    size_t nwords;    /* tokens collected */
    bool prev_ew;     /* the last token was a decoded encoded word */
    bool local_ok;    /* so far word *("." word) */
    bool expect_word; /* the local part needs a word next */
};

/* Record the first failure reason; returns -1. */
static int rfc5322_fail(struct rfc5322_parser *p, const char *reason)
{
    if (p->err == NULL)
        p->err = reason;
    return -1;
}

/* Refuse NUL, control characters, and line breaks that do not fold. */
static int rfc5322_check_bytes(struct rfc5322_parser *p)
{
    const unsigned char *s = (const unsigned char *)p->s;
    for (size_t i = 0; i < p->len; i++) {
        unsigned char c = s[i];
        if (c >= 0x20 && c != 0x7f)
            continue;
        if (c == '\t')
            continue;
        if (c == 0)
            return rfc5322_fail(p, "NUL byte");
        if (c == '\r' || c == '\n') {
            size_t n = rfc5322_eol_len(p->s, p->len, i);
            if (n == 0 || i + n >= p->len || !rfc5322_is_wsp(s[i + n]))
                return rfc5322_fail(p, "bare CR or LF");
            i += n - 1;
            continue;
        }
        return rfc5322_fail(p, "control character");
    }
    return 0;
}

/* RFC 5322 atext, plus any 8-bit byte (RFC 6532). */
static bool rfc5322_is_atext(unsigned char c)
{
    if (c >= 0x80)
        return true;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* RFC 2047 token characters (charset names). */
static bool rfc5322_is_ew_token(unsigned char c)
{
    if (c <= 0x20 || c >= 0x7f)
        return false;
    return strchr("()<>@,;:\"/[]?.=", c) == NULL;
}

/* Length of an encoded word at s[i] whose text may hold dots ("=?utf-8?Q?J.?="),
 * or 0: it must end at "?=" and not run on into more atext. */
static size_t rfc5322_ew_scan(const char *s, size_t len, size_t i)
{
    size_t j = i + 2;
    while (j < len && j - i - 2 <= RFC5322_MAX_CHARSET_LEN &&
           rfc5322_is_ew_token((unsigned char)s[j]))
        j++;
    if (j == i + 2 || j + 2 >= len || s[j] != '?' || s[j + 2] != '?')
        return 0;
    if (s[j + 1] == 0 || strchr("bBqQ", s[j + 1]) == NULL)
        return 0;
    j += 3;
    while (j < len && s[j] != '?') {
        unsigned char c = (unsigned char)s[j];
        if (c >= 0x80 || !(rfc5322_is_atext(c) || c == '.'))
            return 0;
        if (c == '.' && s[j - 1] == '.')
            return 0;
        j++;
    }
    if (j + 1 >= len || s[j + 1] != '=')
        return 0;
    j += 2;
    if (j < len && rfc5322_is_atext((unsigned char)s[j]))
        return 0;
    return j - i;
}

/* Skip the comment that opens at p->s[*i], nested up to a fixed depth. */
static int rfc5322_skip_comment(struct rfc5322_parser *p, size_t *i)
{
    int depth = 1;
    size_t j = *i + 1;
    for (;;) {
        if (j >= p->len)
            return rfc5322_fail(p, "unbalanced '('");
        char c = p->s[j];
        if (c == '(') {
            if (++depth > RFC5322_MAX_COMMENT_DEPTH)
                return rfc5322_fail(p, "comments nested too deeply");
        } else if (c == ')') {
            if (--depth == 0)
                break;
        } else if (c == '\\') {
            if (j + 1 >= p->len)
                return rfc5322_fail(p, "unbalanced '('");
            if (p->s[j + 1] == '\r' || p->s[j + 1] == '\n')
                return rfc5322_fail(p, "invalid escape");
            j++;
        }
        j++;
    }
    *i = j + 1;
    return 0;
}

/* Find the closing delimiter of a quoted string or domain literal that opens
 * at p->s[i]; sets *end past it. */
static int rfc5322_scan_quoted(struct rfc5322_parser *p, size_t i, char close, size_t *end)
{
    bool dlit = close == ']';
    size_t j = i + 1;
    for (;;) {
        if (j >= p->len)
            return rfc5322_fail(p, dlit ? "unbalanced '['" : "unbalanced '\"'");
        unsigned char c = (unsigned char)p->s[j];
        if (c == (unsigned char)close)
            break;
        if (c == '\\') {
            if (j + 1 >= p->len)
                return rfc5322_fail(p, dlit ? "unbalanced '['" : "unbalanced '\"'");
            if (p->s[j + 1] == '\r' || p->s[j + 1] == '\n')
                return rfc5322_fail(p, "invalid escape");
            j++;
        } else if (dlit && (c == '[' || c >= 0x80)) {
            return rfc5322_fail(p, "invalid domain literal");
        }
        j++;
    }
    *end = j + 1;
    return 0;
}

/* Lex the next token into p->t. */
static int rfc5322_advance(struct rfc5322_parser *p)
{
    const char *s = p->s;
    size_t i = p->i;
    bool space = false;
    while (i < p->len) {
        unsigned char c = (unsigned char)s[i];
        if (rfc5322_is_wsp(c)) {
            i++;
            space = true;
        } else if (c == '\r' || c == '\n') {
            i += rfc5322_eol_len(s, p->len, i);
            space = true;
        } else if (c == '(') {
            if (rfc5322_skip_comment(p, &i) < 0)
                return -1;
            space = true;
        } else {
            break;
        }
    }
    p->t.start = i;
    p->t.space = space;
    if (i >= p->len) {
        p->t.type = RFC5322_T_END;
        p->t.end = i;
        p->i = i;
        return 0;
    }
    unsigned char c = (unsigned char)s[i];
    size_t end = i + 1;
    switch (c) {
    case '"':
        p->t.type = RFC5322_T_QSTR;
        if (rfc5322_scan_quoted(p, i, '"', &end) < 0)
            return -1;
        break;
    case '[':
        p->t.type = RFC5322_T_DLIT;
        if (rfc5322_scan_quoted(p, i, ']', &end) < 0)
            return -1;
        break;
    case '.':
        p->t.type = RFC5322_T_DOT;
        break;
    case '@':
        p->t.type = RFC5322_T_AT;
        break;
    case '<':
        p->t.type = RFC5322_T_LT;
        break;
    case '>':
        p->t.type = RFC5322_T_GT;
        break;
    case ',':
        p->t.type = RFC5322_T_COMMA;
        break;
    case ';':
        p->t.type = RFC5322_T_SEMI;
        break;
    case ':':
        p->t.type = RFC5322_T_COLON;
        break;
    case ')':
        return rfc5322_fail(p, "unbalanced ')'");
    case ']':
        return rfc5322_fail(p, "unbalanced ']'");
    case '\\':
        return rfc5322_fail(p, "unexpected '\\'");
    default:
        if (!rfc5322_is_atext(c))
            return rfc5322_fail(p, "unexpected character");
        p->t.type = RFC5322_T_ATOM;
        size_t ew = 0;
        if (c == '=' && i + 1 < p->len && s[i + 1] == '?')
            ew = rfc5322_ew_scan(s, p->len, i);
        if (ew > 0) {
            end = i + ew;
        } else {
            while (end < p->len && rfc5322_is_atext((unsigned char)s[end]))
                end++;
        }
        break;
    }
    p->t.end = end;
    p->i = end;
    return 0;
}

/* Append s[0..n) to out without folds (CR, LF) and, if drop_wsp, without
 * the whitespace that is not escaped by a backslash either. */
static void rfc5322_add_raw(struct buf *out, const char *s, size_t n, bool drop_wsp)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\' && i + 1 < n) {
            buf_add(out, s + i, 2);
            i++;
            continue;
        }
        if (c == '\r' || c == '\n' || (drop_wsp && rfc5322_is_wsp(c)))
            continue;
        buf_addc(out, (char)c);
    }
}

/* Append the content of the quoted string s[0..n) (quotes included) to out,
 * unescaped and unfolded. */
static void rfc5322_add_unquoted(struct buf *out, const char *s, size_t n)
{
    for (size_t i = 1; i + 1 < n; i++) {
        if (s[i] == '\\')
            i++;
        if (s[i] == '\r' || s[i] == '\n')
            continue;
        buf_addc(out, s[i]);
    }
}

/* Append code point cp (below U+10000) to out as UTF-8. */
static void rfc5322_add_utf8(struct buf *out, unsigned cp)
{
    if (cp < 0x80) {
        buf_addc(out, (char)cp);
    } else if (cp < 0x800) {
        buf_addc(out, (char)(0xc0 | (cp >> 6)));
        buf_addc(out, (char)(0x80 | (cp & 0x3f)));
    } else {
        buf_addc(out, (char)(0xe0 | (cp >> 12)));
        buf_addc(out, (char)(0x80 | ((cp >> 6) & 0x3f)));
        buf_addc(out, (char)(0x80 | (cp & 0x3f)));
    }
}

/* Charsets that encoded words are decoded from. */
enum rfc5322_charset {
    RFC5322_CS_UNKNOWN,
    RFC5322_CS_UTF8,
    RFC5322_CS_ASCII,
    RFC5322_CS_LATIN1,
    RFC5322_CS_CP1252,
};

/* Identify the charset name s[0..n) (an RFC 2231 "*language" suffix ignored). */
static enum rfc5322_charset rfc5322_charset(const char *s, size_t n)
{
    static const struct {
        const char *name;
        enum rfc5322_charset cs;
    } names[] = {
        {"utf-8", RFC5322_CS_UTF8},        {"utf8", RFC5322_CS_UTF8},
        {"us-ascii", RFC5322_CS_ASCII},    {"ascii", RFC5322_CS_ASCII},
        {"iso-8859-1", RFC5322_CS_LATIN1}, {"iso8859-1", RFC5322_CS_LATIN1},
        {"iso_8859-1", RFC5322_CS_LATIN1}, {"latin1", RFC5322_CS_LATIN1},
        {"latin-1", RFC5322_CS_LATIN1},    {"windows-1252", RFC5322_CS_CP1252},
        {"cp1252", RFC5322_CS_CP1252},
    };
    const char *star = memchr(s, '*', n);
    if (star != NULL)
        n = (size_t)(star - s);
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        if (strlen(names[k].name) == n && strncasecmp(s, names[k].name, n) == 0)
            return names[k].cs;
    return RFC5322_CS_UNKNOWN;
}

/* Decode Q text s[0..n) ('_' is a space, =XX a byte) into out; false if malformed. */
static bool rfc5322_q_decode(const char *s, size_t n, struct buf *out)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '_') {
            buf_addc(out, ' ');
        } else if (c == '=') {
            if (i + 2 >= n)
                return false;
            int hi = util_hex_value((unsigned char)s[i + 1]);
            int lo = util_hex_value((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            buf_addc(out, (char)(hi * 16 + lo));
            i += 2;
        } else {
            buf_addc(out, (char)c);
        }
    }
    return true;
}

/* Windows-1252 code points for bytes 0x80..0x9f (0 where undefined). */
static const unsigned short rfc5322_cp1252[32] = {
    0x20ac, 0,      0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160,
    0x2039, 0x0152, 0,      0x017d, 0,      0,      0x2018, 0x2019, 0x201c, 0x201d, 0x2022,
    0x2013, 0x2014, 0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0,      0x017e, 0x0178,
};

/* Append the bytes s[0..n) in charset cs to out as UTF-8 (invalid UTF-8 is
 * left for the display clean-up to replace). */
static void rfc5322_add_charset(struct buf *out, const char *s, size_t n, enum rfc5322_charset cs)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80 || cs == RFC5322_CS_UTF8) {
            buf_addc(out, (char)c);
        } else if (cs == RFC5322_CS_ASCII) {
            buf_adds(out, rfc5322_replacement);
        } else if (cs == RFC5322_CS_CP1252 && c < 0xa0) {
            unsigned cp = rfc5322_cp1252[c - 0x80];
            if (cp == 0)
                buf_adds(out, rfc5322_replacement);
            else
                rfc5322_add_utf8(out, cp);
        } else {
            rfc5322_add_utf8(out, c);
        }
    }
}

/* Decode the RFC 2047 encoded word s[0..n) onto out; false (out untouched)
 * when it is not one, is malformed, or its charset is unknown. */
static bool rfc5322_ew_decode(const char *s, size_t n, struct buf *out)
{
    if (n < 8 || s[0] != '=' || s[1] != '?' || s[n - 2] != '?' || s[n - 1] != '=')
        return false;
    size_t q = 2;
    while (q < n && s[q] != '?')
        q++;
    if (q == 2 || q + 3 > n - 2 || s[q + 2] != '?')
        return false;
    enum rfc5322_charset cs = rfc5322_charset(s + 2, q - 2);
    if (cs == RFC5322_CS_UNKNOWN)
        return false;
    char enc = s[q + 1];
    const char *text = s + q + 3;
    size_t tlen = n - 2 - (q + 3);
    for (size_t i = 0; i < tlen; i++)
        if (text[i] == '?' || (unsigned char)text[i] <= 0x20 || (unsigned char)text[i] >= 0x7f)
            return false;
    struct buf raw = BUF_INIT;
    bool ok;
    if (enc == 'b' || enc == 'B')
        ok = util_base64_decode(text, tlen, &raw) == 0;
    else if (enc == 'q' || enc == 'Q')
        ok = rfc5322_q_decode(text, tlen, &raw);
    else
        ok = false;
    if (ok)
        rfc5322_add_charset(out, raw.data ? raw.data : "", raw.len, cs);
    buf_free(&raw);
    return ok;
}

/* The final display name: controls become spaces, whitespace runs collapse
 * to one space, ends are trimmed, and bytes that are not UTF-8 become U+FFFD.
 * The result is owned by the caller. */
static char *rfc5322_display_finish(const struct buf *raw)
{
    struct buf b = BUF_INIT;
    const unsigned char *s = (const unsigned char *)raw->data;
    bool pending = false;
    size_t i = 0;
    while (i < raw->len) {
        unsigned char c = s[i];
        if (c <= 0x20 || c == 0x7f) {
            pending = b.len > 0;
            i++;
            continue;
        }
        if (pending)
            buf_addc(&b, ' ');
        pending = false;
        size_t k = util_utf8_len(s + i, raw->len - i);
        if (k == 0) {
            buf_adds(&b, rfc5322_replacement);
            i++;
        } else {
            buf_add(&b, s + i, k);
            i += k;
        }
    }
    return buf_detach(&b, NULL);
}

/* Start an empty phrase. */
static void rfc5322_phrase_reset(struct rfc5322_phrase *ph)
{
    buf_reset(&ph->disp);
    buf_reset(&ph->local);
    ph->nwords = 0;
    ph->prev_ew = false;
    ph->local_ok = true;
    ph->expect_word = true;
}

/* Add the current token (an atom, quoted string or dot) to the phrase. */
static void rfc5322_phrase_add(struct rfc5322_phrase *ph, const char *s,
                               const struct rfc5322_tok *t)
{
    const char *src = s + t->start;
    size_t n = t->end - t->start;
    struct buf decoded = BUF_INIT;
    bool ew = t->type == RFC5322_T_ATOM && rfc5322_ew_decode(src, n, &decoded);
    /* RFC 2047 section 6.2: whitespace between two encoded words is dropped. */
    if (ph->nwords > 0 && t->space && !(ew && ph->prev_ew))
        buf_addc(&ph->disp, ' ');
    if (ew)
        buf_add(&ph->disp, decoded.data ? decoded.data : "", decoded.len);
    else if (t->type == RFC5322_T_ATOM)
        buf_add(&ph->disp, src, n);
    else if (t->type == RFC5322_T_QSTR)
        rfc5322_add_unquoted(&ph->disp, src, n);
    else
        buf_addc(&ph->disp, '.');
    buf_free(&decoded);
    ph->prev_ew = ew;
    ph->nwords++;

    if (!ph->local_ok)
        return;
    bool is_dot = t->type == RFC5322_T_DOT;
    if (is_dot == ph->expect_word) {
        ph->local_ok = false;
        return;
    }
    if (is_dot)
        buf_addc(&ph->local, '.');
    else
        rfc5322_add_raw(&ph->local, src, n, false);
    ph->expect_word = is_dot;
}

/* Collect the run of atoms, quoted strings and dots at the current token. */
static int rfc5322_phrase_collect(struct rfc5322_parser *p, struct rfc5322_phrase *ph)
{
    rfc5322_phrase_reset(ph);
    while (p->t.type == RFC5322_T_ATOM || p->t.type == RFC5322_T_QSTR ||
           p->t.type == RFC5322_T_DOT) {
        rfc5322_phrase_add(ph, p->s, &p->t);
        if (rfc5322_advance(p) < 0)
            return -1;
    }
    return 0;
}

/* True when the phrase is a usable local part. */
static bool rfc5322_phrase_is_local(const struct rfc5322_phrase *ph)
{
    return ph->nwords > 0 && ph->local_ok && !ph->expect_word;
}

/* Parse a domain (dot-atom, obs-domain or domain literal) at the current
 * token, appending it to out without CFWS. */
static int rfc5322_domain(struct rfc5322_parser *p, struct buf *out)
{
    if (p->t.type == RFC5322_T_DLIT) {
        rfc5322_add_raw(out, p->s + p->t.start, p->t.end - p->t.start, true);
        return rfc5322_advance(p);
    }
    if (p->t.type != RFC5322_T_ATOM)
        return rfc5322_fail(p, "missing domain");
    for (;;) {
        buf_add(out, p->s + p->t.start, p->t.end - p->t.start);
        if (rfc5322_advance(p) < 0)
            return -1;
        if (p->t.type != RFC5322_T_DOT)
            return 0;
        buf_addc(out, '.');
        if (rfc5322_advance(p) < 0)
            return -1;
        if (p->t.type != RFC5322_T_ATOM)
            return rfc5322_fail(p, "invalid domain");
    }
}

/* Parse the domain after '@' (the current token) into addr. */
static int rfc5322_at_domain(struct rfc5322_parser *p, struct buf *addr)
{
    buf_addc(addr, '@');
    if (rfc5322_advance(p) < 0)
        return -1;
    return rfc5322_domain(p, addr);
}

/* Append one address; display is the raw display name (may be NULL). */
static int rfc5322_push(struct rfc5322_parser *p, const struct buf *display, struct buf *addr)
{
    struct rfc5322_addr_list *l = p->out;
    if (l->n >= p->max)
        return rfc5322_fail(p, "too many addresses");
    if (!util_utf8_valid(addr->data, addr->len))
        return rfc5322_fail(p, "address is not valid UTF-8");
    if (l->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 8;
        l->v = xrealloc(l->v, p->cap * sizeof l->v[0]);
    }
    struct buf none = BUF_INIT;
    l->v[l->n].display = rfc5322_display_finish(display ? display : &none);
    l->v[l->n].addr = xstrndup(addr->data, addr->len);
    l->n++;
    return 0;
}

/* Parse an angle-addr (the current token is '<'), obs-route included, into addr. */
static int rfc5322_angle_addr(struct rfc5322_parser *p, struct rfc5322_phrase *ph, struct buf *addr)
{
    if (rfc5322_advance(p) < 0)
        return -1;
    if (p->t.type == RFC5322_T_AT) {
        struct buf route = BUF_INIT;
        int rc = rfc5322_at_domain(p, &route);
        while (rc == 0 && p->t.type == RFC5322_T_COMMA) {
            rc = rfc5322_advance(p);
            if (rc == 0 && p->t.type == RFC5322_T_AT)
                rc = rfc5322_at_domain(p, &route);
        }
        buf_free(&route);
        if (rc < 0)
            return -1;
        if (p->t.type != RFC5322_T_COLON)
            return rfc5322_fail(p, "invalid route");
        if (rfc5322_advance(p) < 0)
            return -1;
    }
    if (rfc5322_phrase_collect(p, ph) < 0)
        return -1;
    if (p->t.type != RFC5322_T_AT) {
        if (ph->nwords > 0)
            return rfc5322_fail(p, "missing '@'");
        if (p->t.type == RFC5322_T_GT)
            return rfc5322_fail(p, "empty address");
        if (p->t.type == RFC5322_T_END)
            return rfc5322_fail(p, "unbalanced '<'");
        return rfc5322_fail(p, "invalid address");
    }
    if (!rfc5322_phrase_is_local(ph))
        return rfc5322_fail(p, "invalid local part");
    buf_add(addr, ph->local.data, ph->local.len);
    if (rfc5322_at_domain(p, addr) < 0)
        return -1;
    if (p->t.type == RFC5322_T_END)
        return rfc5322_fail(p, "unbalanced '<'");
    if (p->t.type != RFC5322_T_GT)
        return rfc5322_fail(p, "invalid address");
    return rfc5322_advance(p);
}

/* Parse one mailbox whose leading words are in ph (the current token is
 * '<' or '@') and append it. */
static int rfc5322_mailbox(struct rfc5322_parser *p, struct rfc5322_phrase *ph)
{
    struct buf addr = BUF_INIT;
    int rc;
    if (p->t.type == RFC5322_T_LT) {
        struct buf display = ph->disp;
        ph->disp = (struct buf)BUF_INIT;
        rc = rfc5322_angle_addr(p, ph, &addr);
        if (rc == 0)
            rc = rfc5322_push(p, &display, &addr);
        buf_free(&display);
    } else if (!rfc5322_phrase_is_local(ph)) {
        rc = rfc5322_fail(p, "invalid local part");
    } else {
        buf_add(&addr, ph->local.data, ph->local.len);
        rc = rfc5322_at_domain(p, &addr);
        if (rc == 0)
            rc = rfc5322_push(p, NULL, &addr);
    }
    buf_free(&addr);
    return rc;
}

/* The address-list grammar: elements separated by commas, empty elements
 * skipped, groups flattened. */
static int rfc5322_list(struct rfc5322_parser *p, struct rfc5322_phrase *ph)
{
    bool in_group = false;
    if (rfc5322_advance(p) < 0)
        return -1;
    for (;;) {
        switch (p->t.type) {
        case RFC5322_T_END:
            return 0;
        case RFC5322_T_COMMA:
            if (rfc5322_advance(p) < 0)
                return -1;
            continue;
        case RFC5322_T_SEMI:
            if (!in_group)
                return rfc5322_fail(p, "';' outside a group");
            in_group = false;
            if (rfc5322_advance(p) < 0)
                return -1;
            if (p->t.type != RFC5322_T_COMMA && p->t.type != RFC5322_T_END)
                return rfc5322_fail(p, "expected ',' after group");
            continue;
        default:
            break;
        }
        if (rfc5322_phrase_collect(p, ph) < 0)
            return -1;
        switch (p->t.type) {
        case RFC5322_T_LT:
        case RFC5322_T_AT:
            if (rfc5322_mailbox(p, ph) < 0)
                return -1;
            break;
        case RFC5322_T_COLON:
            if (in_group)
                return rfc5322_fail(p, "nested group");
            if (ph->nwords == 0)
                return rfc5322_fail(p, "group without a name");
            in_group = true;
            if (rfc5322_advance(p) < 0)
                return -1;
            continue;
        case RFC5322_T_GT:
            return rfc5322_fail(p, "unbalanced '>'");
        case RFC5322_T_DLIT:
            return rfc5322_fail(p, "unexpected domain literal");
        default:
            return rfc5322_fail(p, "missing '@'");
        }
        switch (p->t.type) {
        case RFC5322_T_END:
        case RFC5322_T_COMMA:
        case RFC5322_T_SEMI:
            continue;
        case RFC5322_T_GT:
            return rfc5322_fail(p, "unbalanced '>'");
        case RFC5322_T_LT:
            return rfc5322_fail(p, "unexpected '<'");
        default:
            return rfc5322_fail(p, "unexpected text after address");
        }
    }
}

/* Parse an address-list value into out; -1 with a reason, out empty, on error. */
int rfc5322_parse_addresses(const char *s, size_t len, size_t max, struct rfc5322_addr_list *out,
                            char *err, size_t errlen)
{
    struct rfc5322_parser p = {
        .s = s,
        .len = len,
        .max = max,
        .out = out,
    };
    struct rfc5322_phrase ph = {.disp = BUF_INIT, .local = BUF_INIT};
    out->v = NULL;
    out->n = 0;
    int rc = 0;
    if (len > 0) {
        rc = rfc5322_check_bytes(&p);
        if (rc == 0)
            rc = rfc5322_list(&p, &ph);
    }
    buf_free(&ph.disp);
    buf_free(&ph.local);
    if (rc < 0) {
        rfc5322_addr_list_free(out);
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s", p.err ? p.err : "invalid address list");
        return -1;
    }
    return 0;
}

/* Free every address and the vector; the list is empty afterwards. */
void rfc5322_addr_list_free(struct rfc5322_addr_list *l)
{
    for (size_t k = 0; k < l->n; k++) {
        free(l->v[k].display);
        free(l->v[k].addr);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}
