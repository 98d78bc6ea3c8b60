/* smtp: the SMTP protocol core (see smtp.h): lines, commands, the DATA
 * reader, AUTH decoding and the SES SMTP password. No I/O, no clock. */
#include "smtp.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "addr.h"
#include "util.h"

/* Replies smtp_parse gives. */
#define SMTP_R_UNKNOWN  "500 5.5.2 Syntax error, command unrecognized"
#define SMTP_R_CONTROL  "500 5.5.2 Syntax error, control character in command"
#define SMTP_R_NOTIMPL  "502 5.5.1 Command not implemented"
#define SMTP_R_NOARGS   "501 5.5.4 Syntax error (no parameters allowed)"
#define SMTP_R_PARAMS   "501 5.5.4 Syntax error in parameters or arguments"
#define SMTP_R_DUPPARAM "501 5.5.4 Duplicate parameter"
#define SMTP_R_UNSUPP   "555 5.5.4 Unsupported parameter"
#define SMTP_R_BODY     "555 5.5.4 Unsupported BODY type"
#define SMTP_R_MAILSYN  "501 5.5.4 Syntax: MAIL FROM:<address>"
#define SMTP_R_RCPTSYN  "501 5.5.4 Syntax: RCPT TO:<address>"
#define SMTP_R_MAILADDR "501 5.1.7 Invalid MAIL FROM address provided"
#define SMTP_R_RCPTADDR "501 5.1.3 Invalid RCPT TO address provided"
#define SMTP_R_MAILUTF8 "553 5.6.7 Non-ASCII addresses require SMTPUTF8"
#define SMTP_R_MECH     "504 5.5.4 Unrecognized authentication type"
#define SMTP_R_AUTHSYN  "501 5.5.4 Syntax: AUTH mechanism [initial-response]"
#define SMTP_R_HELOSYN  "501 5.5.4 Syntax: HELO hostname"
#define SMTP_R_EHLOSYN  "501 5.5.4 Syntax: EHLO hostname"
#define SMTP_R_VRFYSYN  "501 5.5.4 Syntax: VRFY address"
#define SMTP_R_TOOLARGE "552 5.3.4 Message size exceeds fixed maximum message size"
#define SMTP_R_AMBIGUOUS                                                                           \
    "554 5.6.0 Message refused: bare CR or LF in the message (lines end with CRLF)"
#define SMTP_R_LONGLINE                                                                            \
    "554 5.6.0 Message refused: a line is longer than 1000 characters with its CRLF"

/* The DATA reader's states (struct smtp_data.state). */
enum {
    SMTP_D_BOL = 0, /* at the start of a line */
    SMTP_D_DOT,     /* a line's leading "." (deleted: dot-unstuffing) */
    SMTP_D_DOTCR,   /* "." CR at the start of a line */
    SMTP_D_MID,     /* within a line */
    SMTP_D_CR,      /* a CR within a line, not yet known to end it */
    SMTP_D_DONE,
};

int smtp_line(const char *buf, size_t n, size_t max, size_t *len, size_t *used)
{
    size_t lim = n < max ? n : max;
    const char *lf = memchr(buf, '\n', lim);
    if (lf == NULL) {
        if (n < max)
            return 0;
        lf = n > lim ? memchr(buf + lim, '\n', n - lim) : NULL;
        *used = lf != NULL ? (size_t)(lf - buf) + 1 : n;
        *len = 0;
        return -1;
    }
    size_t end = (size_t)(lf - buf);
    *used = end + 1;
    if (end == 0 || buf[end - 1] != '\r') {
        *len = end;
        return -1;
    }
    *len = end - 1;
    if (memchr(buf, '\r', end - 1) != NULL)
        return -1;
    return 1;
}

int smtp_line_skip(const char *buf, size_t n, size_t *used)
{
    const char *lf = memchr(buf, '\n', n);
    if (lf == NULL) {
        *used = n;
        return 0;
    }
    *used = (size_t)(lf - buf) + 1;
    return 1;
}

/* Write reply into err and return -1. */
static int smtp_fail(char *err, size_t errlen, const char *reply)
{
    if (errlen > 0)
        snprintf(err, errlen, "%s", reply);
    return -1;
}

/* True when s[0..n) starts with the ASCII word w, case-insensitively. */
static bool smtp_prefix(const char *s, size_t n, const char *w)
{
    size_t wl = strlen(w);
    return n >= wl && util_ieq(s, wl, w);
}

/* The verb named s[0..n), or SMTP_UNKNOWN; *unimpl when it is a verb of
 * RFC 5321 or its extensions that sesgate does not implement. */
static enum smtp_verb smtp_verb_of(const char *s, size_t n, bool *unimpl)
{
    static const struct {
        const char *name;
        enum smtp_verb verb;
    } verbs[] = {
        {"HELO", SMTP_HELO},         {"EHLO", SMTP_EHLO}, {"MAIL", SMTP_MAIL}, {"RCPT", SMTP_RCPT},
        {"DATA", SMTP_DATA},         {"RSET", SMTP_RSET}, {"NOOP", SMTP_NOOP}, {"QUIT", SMTP_QUIT},
        {"STARTTLS", SMTP_STARTTLS}, {"AUTH", SMTP_AUTH}, {"VRFY", SMTP_VRFY}, {"HELP", SMTP_HELP},
    };
    static const char *const unimplemented[] = {"EXPN", "TURN", "ETRN", "ATRN",
                                                "BDAT", "SEND", "SOML", "SAML"};
    *unimpl = false;
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (util_ieq(s, n, verbs[i].name))
            return verbs[i].verb;
    for (size_t i = 0; i < sizeof unimplemented / sizeof unimplemented[0]; i++)
        if (util_ieq(s, n, unimplemented[i]))
            *unimpl = true;
    return SMTP_UNKNOWN;
}

/* The end of a source route "@a,@b:" at s[0..n) (just past its ':'), or 0
 * when s does not start with a well-formed one. Each hop is '@' and a
 * domain (letters, digits, '-', '.') or a [literal]. */
static size_t smtp_route_len(const char *s, size_t n)
{
    size_t i = 0;
    for (;;) {
        if (i >= n || s[i] != '@')
            return 0;
        size_t d = ++i;
        if (i < n && s[i] == '[') {
            const char *close = memchr(s + i, ']', n - i);
            if (close == NULL)
                return 0;
            i = (size_t)(close - s) + 1;
        } else {
            while (i < n && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                             (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '.'))
                i++;
        }
        if (i == d || i >= n)
            return 0;
        if (s[i] == ':')
            return i + 1;
        if (s[i] != ',')
            return 0;
        i++;
    }
}

/* Check the mailbox m[0..n) as SES takes it (addr_check_spec), each
 * non-ASCII UTF-8 character standing as a letter; the local part and
 * domain within RFC 5321's octet limits. *eight tells whether it holds
 * non-ASCII characters. Returns 0 or -1. */
static int smtp_mailbox_check(const char *m, size_t n, bool *eight)
{
    *eight = false;
    if (n == 0 || n > SMTP_MAX_PATH)
        return -1;
    const char *at = NULL;
    for (const char *p = memchr(m, '@', n); p != NULL;
         p = memchr(p + 1, '@', (size_t)(m + n - p - 1)))
        at = p;
    if (at == NULL || (size_t)(at - m) > SMTP_MAX_LOCAL ||
        (size_t)(m + n - at - 1) > SMTP_MAX_DOMAIN)
        return -1;
    char ascii[SMTP_MAX_PATH];
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)m[i];
        if (c < 0x80) {
            ascii[k++] = (char)c;
            i++;
            continue;
        }
        size_t l = util_utf8_len((const unsigned char *)m + i, n - i);
        if (l == 0)
            return -1;
        *eight = true;
        ascii[k++] = 'a';
        i += l;
    }
    return addr_check_spec(ascii, k) == NULL ? 0 : -1;
}

/* MAIL FROM / RCPT TO after the keyword and colon: s[0..n) is the path and
 * the parameters. */
static int smtp_parse_path(const char *s, size_t n, struct smtp_cmd *cmd, char *err, size_t errlen)
{
    bool mail = cmd->verb == SMTP_MAIL;
    const char *syn = mail ? SMTP_R_MAILSYN : SMTP_R_RCPTSYN;
    const char *bad = mail ? SMTP_R_MAILADDR : SMTP_R_RCPTADDR;
    size_t i = 0;
    while (i < n && s[i] == ' ')
        i++;
    if (i >= n || s[i] != '<')
        return smtp_fail(err, errlen, syn);
    const char *close = memchr(s + i, '>', n - i);
    if (close == NULL)
        return smtp_fail(err, errlen, syn);
    const char *in = s + i + 1;
    size_t inlen = (size_t)(close - in);
    if (inlen + 2 > SMTP_MAX_PATH || memchr(in, ' ', inlen) != NULL)
        return smtp_fail(err, errlen, bad);
    if (inlen > 0 && in[0] == '@') {
        size_t r = smtp_route_len(in, inlen);
        if (r == 0)
            return smtp_fail(err, errlen, bad);
        in += r;
        inlen -= r;
        if (inlen == 0)
            return smtp_fail(err, errlen, bad);
    }
    if (inlen == 0 && !mail)
        return smtp_fail(err, errlen, bad);
    if (inlen > 0 && smtp_mailbox_check(in, inlen, &cmd->path_8bit) < 0)
        return smtp_fail(err, errlen, bad);
    cmd->path = in;
    cmd->pathlen = inlen;

    /* the parameters: SP-separated keyword[=value] */
    i = (size_t)(close - s) + 1;
    if (i < n && s[i] != ' ')
        return smtp_fail(err, errlen, syn);
    bool seen_body = false, seen_auth = false;
    while (i < n) {
        while (i < n && s[i] == ' ')
            i++;
        if (i >= n)
            break;
        size_t st = i;
        while (i < n && s[i] != ' ')
            i++;
        const char *kw = s + st;
        size_t kwlen = i - st;
        const char *eq = memchr(kw, '=', kwlen);
        size_t klen = eq != NULL ? (size_t)(eq - kw) : kwlen;
        const char *val = eq != NULL ? eq + 1 : NULL;
        size_t vlen = eq != NULL ? kwlen - klen - 1 : 0;
        if (!mail)
            return smtp_fail(err, errlen, SMTP_R_UNSUPP);
        if (util_ieq(kw, klen, "SIZE")) {
            if (cmd->has_size)
                return smtp_fail(err, errlen, SMTP_R_DUPPARAM);
            if (val == NULL || vlen == 0 || vlen > 20)
                return smtp_fail(err, errlen, SMTP_R_PARAMS);
            uint64_t v = 0;
            for (size_t k = 0; k < vlen; k++) {
                if (val[k] < '0' || val[k] > '9')
                    return smtp_fail(err, errlen, SMTP_R_PARAMS);
                unsigned d = (unsigned)(val[k] - '0');
                v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
            }
            cmd->has_size = true;
            cmd->size = v;
        } else if (util_ieq(kw, klen, "BODY")) {
            if (seen_body)
                return smtp_fail(err, errlen, SMTP_R_DUPPARAM);
            seen_body = true;
            if (val != NULL && util_ieq(val, vlen, "8BITMIME"))
                cmd->body_8bit = true;
            else if (val == NULL || !util_ieq(val, vlen, "7BIT"))
                return smtp_fail(err, errlen, SMTP_R_BODY);
        } else if (util_ieq(kw, klen, "SMTPUTF8")) {
            if (cmd->smtputf8)
                return smtp_fail(err, errlen, SMTP_R_DUPPARAM);
            if (val != NULL)
                return smtp_fail(err, errlen, SMTP_R_PARAMS);
            cmd->smtputf8 = true;
        } else if (util_ieq(kw, klen, "AUTH")) {
            if (seen_auth)
                return smtp_fail(err, errlen, SMTP_R_DUPPARAM);
            seen_auth = true;
            if (val == NULL || vlen == 0)
                return smtp_fail(err, errlen, SMTP_R_PARAMS);
        } else {
            return smtp_fail(err, errlen, SMTP_R_UNSUPP);
        }
    }
    if (mail && cmd->path_8bit && !cmd->smtputf8)
        return smtp_fail(err, errlen, SMTP_R_MAILUTF8);
    return 0;
}

/* AUTH's argument: the mechanism and the optional initial response. */
static int smtp_parse_auth(struct smtp_cmd *cmd, char *err, size_t errlen)
{
    const char *s = cmd->arg;
    size_t n = cmd->arglen;
    size_t i = 0;
    while (i < n && s[i] != ' ')
        i++;
    if (i == 0)
        return smtp_fail(err, errlen, SMTP_R_AUTHSYN);
    if (util_ieq(s, i, "PLAIN"))
        cmd->mech = SMTP_MECH_PLAIN;
    else if (util_ieq(s, i, "LOGIN"))
        cmd->mech = SMTP_MECH_LOGIN;
    else
        cmd->mech = SMTP_MECH_OTHER;
    while (i < n && s[i] == ' ')
        i++;
    if (i < n) {
        if (memchr(s + i, ' ', n - i) != NULL)
            return smtp_fail(err, errlen, SMTP_R_AUTHSYN);
        cmd->auth_resp = s + i;
        cmd->auth_resplen = n - i;
        if (cmd->auth_resplen == 1 && s[i] == '=')
            cmd->auth_resplen = 0;
    }
    if (cmd->mech == SMTP_MECH_OTHER)
        return smtp_fail(err, errlen, SMTP_R_MECH);
    return 0;
}

int smtp_parse(const char *line, size_t n, struct smtp_cmd *cmd, char *err, size_t errlen)
{
    memset(cmd, 0, sizeof *cmd);
    cmd->verb = SMTP_UNKNOWN;
    cmd->arg = line + n;
    cmd->path = NULL;
    if (errlen > 0)
        err[0] = '\0';
    size_t vlen = 0;
    while (vlen < n && line[vlen] != ' ')
        vlen++;
    bool unimpl;
    cmd->verb = smtp_verb_of(line, vlen, &unimpl);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c < 0x20 || c == 0x7f)
            return smtp_fail(err, errlen, SMTP_R_CONTROL);
    }
    if (cmd->verb == SMTP_UNKNOWN)
        return smtp_fail(err, errlen, unimpl ? SMTP_R_NOTIMPL : SMTP_R_UNKNOWN);
    size_t a = vlen;
    while (a < n && line[a] == ' ')
        a++;
    size_t e = n;
    while (e > a && line[e - 1] == ' ')
        e--;
    cmd->arg = line + a;
    cmd->arglen = e - a;

    switch (cmd->verb) {
    case SMTP_HELO:
    case SMTP_EHLO:
        if (cmd->arglen == 0)
            return smtp_fail(err, errlen, cmd->verb == SMTP_HELO ? SMTP_R_HELOSYN : SMTP_R_EHLOSYN);
        return 0;
    case SMTP_DATA:
    case SMTP_RSET:
    case SMTP_QUIT:
    case SMTP_STARTTLS:
        if (cmd->arglen != 0)
            return smtp_fail(err, errlen, SMTP_R_NOARGS);
        return 0;
    case SMTP_NOOP:
    case SMTP_HELP:
        return 0;
    case SMTP_VRFY:
        if (cmd->arglen == 0)
            return smtp_fail(err, errlen, SMTP_R_VRFYSYN);
        return 0;
    case SMTP_AUTH:
        return smtp_parse_auth(cmd, err, errlen);
    case SMTP_MAIL:
    case SMTP_RCPT: {
        const char *kw = cmd->verb == SMTP_MAIL ? "FROM:" : "TO:";
        size_t kl = strlen(kw);
        if (!smtp_prefix(cmd->arg, cmd->arglen, kw) || a != vlen + 1)
            return smtp_fail(err, errlen, cmd->verb == SMTP_MAIL ? SMTP_R_MAILSYN : SMTP_R_RCPTSYN);
        return smtp_parse_path(cmd->arg + kl, cmd->arglen - kl, cmd, err, errlen);
    }
    case SMTP_UNKNOWN:
        break;
    }
    return smtp_fail(err, errlen, SMTP_R_UNKNOWN);
}

void smtp_data_init(struct smtp_data *d, struct buf *out, size_t max)
{
    memset(d, 0, sizeof *d);
    d->out = out;
    d->max = max;
    d->state = SMTP_D_BOL;
    d->start = out->len;
}

/* Append message bytes, at most max in all; more marks the message too
 * large (the rest is counted in size, not kept). */
static void smtp_data_put(struct smtp_data *d, const char *p, size_t n)
{
    d->size += n;
    if (d->too_large)
        return;
    size_t kept = d->out->len - d->start;
    size_t room = d->max - kept;
    if (n > room) {
        d->too_large = true;
        n = room;
    }
    if (n > 0)
        buf_add(d->out, p, n);
}

/* A bare CR or LF: kept as it came, and the message is ambiguous. */
static void smtp_data_bare(struct smtp_data *d, char c)
{
    d->ambiguous = true;
    d->linelen++;
    smtp_data_put(d, &c, 1);
}

size_t smtp_data_feed(struct smtp_data *d, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && !d->done) {
        char c = p[i];
        switch (d->state) {
        case SMTP_D_BOL:
            /* "." at the start of a line: deleted (dot-unstuffing), or
             * the start of the end; anything else is read as within */
            if (c == '.') {
                d->state = SMTP_D_DOT;
                i++;
            } else {
                d->state = SMTP_D_MID;
            }
            break;
        case SMTP_D_DOT:
            if (c == '\r') {
                d->state = SMTP_D_DOTCR;
                i++;
            } else {
                d->state = SMTP_D_MID;
            }
            break;
        case SMTP_D_DOTCR:
            if (c == '\n') {
                d->done = true;
                d->state = SMTP_D_DONE;
                i++;
            } else {
                /* ".\r" then something else: the CR was bare */
                smtp_data_bare(d, '\r');
                d->state = SMTP_D_MID;
            }
            break;
        case SMTP_D_MID: {
            /* the run up to the next CR or LF; a CRLF right after it ends
             * the line, taken with it */
            const char *cr = memchr(p + i, '\r', n - i);
            size_t j = cr != NULL ? (size_t)(cr - p) : n;
            const char *lf = memchr(p + i, '\n', j - i);
            if (lf != NULL)
                j = (size_t)(lf - p);
            if (j + 1 < n && p[j] == '\r' && p[j + 1] == '\n') {
                d->linelen += j - i;
                if (d->linelen > SMTP_MAX_TEXT)
                    d->long_line = true;
                d->linelen = 0;
                smtp_data_put(d, p + i, j + 2 - i);
                d->state = SMTP_D_BOL;
                i = j + 2;
            } else if (j > i) {
                d->linelen += j - i;
                smtp_data_put(d, p + i, j - i);
                i = j;
            } else if (c == '\r') {
                d->state = SMTP_D_CR;
                i++;
            } else {
                smtp_data_bare(d, '\n');
                i++;
            }
            break;
        }
        case SMTP_D_CR:
            if (c == '\n') {
                if (d->linelen > SMTP_MAX_TEXT)
                    d->long_line = true;
                d->linelen = 0;
                smtp_data_put(d, "\r\n", 2);
                d->state = SMTP_D_BOL;
                i++;
            } else {
                smtp_data_bare(d, '\r');
                d->state = SMTP_D_MID;
            }
            break;
        default:
            d->done = true;
            break;
        }
    }
    return i;
}

const char *smtp_data_reply(const struct smtp_data *d)
{
    if (d->ambiguous)
        return SMTP_R_AMBIGUOUS;
    if (d->too_large)
        return SMTP_R_TOOLARGE;
    if (d->long_line)
        return SMTP_R_LONGLINE;
    return NULL;
}

/* Strict base64 (RFC 4648 section 4): groups of four digits, '=' padding
 * completing the last group and nothing after it, no white space, the
 * unused bits of the last digit zero. Decodes into out (reset first). */
static int smtp_b64_decode(const char *s, size_t n, struct buf *out)
{
    buf_reset(out);
    if (n == 0 || n % 4 != 0)
        return -1;
    size_t pad = s[n - 1] == '=' ? (s[n - 2] == '=' ? 2 : 1) : 0;
    for (size_t i = 0; i < n - pad; i++)
        if (util_base64_value((unsigned char)s[i]) < 0)
            return -1;
    int last = util_base64_value((unsigned char)s[n - pad - 1]);
    if (last < 0 || (pad == 1 && (last & 0x3) != 0) || (pad == 2 && (last & 0xf) != 0))
        return -1;
    return util_base64_decode(s, n, out);
}

/* Clear and release a buffer that held a credential. */
static void smtp_wipe(struct buf *b)
{
    if (b->data != NULL)
        OPENSSL_cleanse(b->data, b->cap);
    buf_free(b);
}

int smtp_auth_plain(const char *b64, size_t n, struct buf *user, struct buf *pass)
{
    struct buf raw = BUF_INIT;
    int rc = -1;
    if (smtp_b64_decode(b64, n, &raw) < 0)
        goto out;
    const char *z1 = memchr(raw.data, '\0', raw.len);
    if (z1 == NULL)
        goto out;
    const char *u = z1 + 1;
    size_t rest = raw.len - (size_t)(u - raw.data);
    const char *z2 = memchr(u, '\0', rest);
    if (z2 == NULL)
        goto out;
    size_t ulen = (size_t)(z2 - u);
    const char *p = z2 + 1;
    size_t plen = raw.len - (size_t)(p - raw.data);
    size_t zlen = (size_t)(z1 - raw.data);
    if (ulen == 0 || plen == 0 || memchr(p, '\0', plen) != NULL)
        goto out;
    /* an authorization identity other than the user would be acting for
     * someone else, which sesgate does not offer */
    if (zlen != 0 && (zlen != ulen || memcmp(raw.data, u, ulen) != 0))
        goto out;
    buf_add(user, u, ulen);
    buf_add(pass, p, plen);
    rc = 0;
out:
    smtp_wipe(&raw);
    return rc;
}

int smtp_auth_login(const char *b64, size_t n, struct buf *out)
{
    struct buf raw = BUF_INIT;
    int rc = -1;
    if (smtp_b64_decode(b64, n, &raw) < 0 || raw.len == 0)
        goto out;
    for (size_t i = 0; i < raw.len; i++)
        if (raw.data[i] == '\0' || raw.data[i] == '\r' || raw.data[i] == '\n')
            goto out;
    buf_add(out, raw.data, raw.len);
    rc = 0;
out:
    smtp_wipe(&raw);
    return rc;
}

bool smtp_auth_cancelled(const char *line, size_t n)
{
    return n == 1 && line[0] == '*';
}

void smtp_password(const char *secret, const char *region, char out[SMTP_PASSWORD_LEN + 1])
{
    static const char *const chain[] = {"ses", "aws4_request", "SendRawEmail"};
    struct buf key = BUF_INIT;
    buf_adds(&key, "AWS4");
    buf_adds(&key, secret);
    unsigned char sig[33];
    unsigned char *mac = sig + 1;
    util_hmac_sha256(key.data, key.len, "11111111", 8, mac);
    smtp_wipe(&key);
    unsigned char next[32];
    util_hmac_sha256(mac, 32, region, strlen(region), next);
    memcpy(mac, next, 32);
    for (size_t i = 0; i < sizeof chain / sizeof chain[0]; i++) {
        util_hmac_sha256(mac, 32, chain[i], strlen(chain[i]), next);
        memcpy(mac, next, 32);
    }
    sig[0] = 0x04;
    EVP_EncodeBlock((unsigned char *)out, sig, (int)sizeof sig);
    out[SMTP_PASSWORD_LEN] = '\0';
    OPENSSL_cleanse(sig, sizeof sig);
    OPENSSL_cleanse(next, sizeof next);
}

bool smtp_password_check(const char *secret, const char *region, const char *pass, size_t n)
{
    char want[SMTP_PASSWORD_LEN + 1];
    smtp_password(secret, region, want);
    bool ok = n == SMTP_PASSWORD_LEN && util_ct_equal(want, pass, SMTP_PASSWORD_LEN);
    OPENSSL_cleanse(want, sizeof want);
    return ok;
}

void smtp_ehlo_reply(struct buf *out, const char *host, uint64_t max_size, unsigned flags)
{
    buf_printf(out, "250-%s\r\n", host);
    buf_printf(out, "250-SIZE %" PRIu64 "\r\n", max_size);
    buf_adds(out, "250-8BITMIME\r\n250-PIPELINING\r\n");
    if (flags & SMTP_EHLO_SMTPUTF8)
        buf_adds(out, "250-SMTPUTF8\r\n");
    if (flags & SMTP_EHLO_STARTTLS)
        buf_adds(out, "250-STARTTLS\r\n");
    if (flags & SMTP_EHLO_AUTH)
        buf_adds(out, "250-AUTH PLAIN LOGIN\r\n");
    buf_adds(out, "250 ENHANCEDSTATUSCODES\r\n");
}
