/* smtp: the SMTP protocol as sesgate's SMTP listener reads it (core: no
 * I/O, no clock).
 *
 * Command lines (RFC 5321 with the ESMTP extensions sesgate announces:
 * SIZE, 8BITMIME, PIPELINING, ENHANCEDSTATUSCODES, SMTPUTF8, AUTH, STARTTLS),
 * the DATA reader (dot-unstuffing, the end of data), AUTH PLAIN and LOGIN
 * decoding, and the SES SMTP password derived from a secret key.
 *
 * SMTP smuggling: a line ends with CRLF and nothing else. A bare CR or bare
 * LF in a command line is an error; in DATA it marks the message ambiguous
 * (struct smtp_data's ambiguous): the reader still finds the one true end
 * (CRLF "." CRLF) so the session stays in step, and the message is refused,
 * never passed on. "\n.\n", "\r.\r", "\n.\r\n", "\r\n.\n", "\r\n.\r" and
 * the like end nothing.
 *
 * The session's part: answer SMTP_REPLY_BAD_LINE to a line smtp_line
 * refuses; after STARTTLS drop every byte read before the handshake (what
 * came with the command is not a command, CVE-2011-0411); check a RCPT's
 * path_8bit against the transaction's SMTPUTF8; answer DATA's end with
 * smtp_data_reply when it is not NULL.
 *
 * Every function is pure: no allocation outlives a call except what is
 * appended to the caller's buffers.
 */
#ifndef SESGATE_SMTP_H
#define SESGATE_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define SMTP_MAX_LINE     1000 /* RFC 5321 4.5.3.1.4: a command line with its CRLF */
#define SMTP_PASSWORD_LEN 44   /* base64 of 33 bytes */
#define SMTP_MAX_TEXT     998  /* RFC 5321 4.5.3.1.6: a text line without its CRLF (SES's limit) */
#define SMTP_MAX_PATH     256  /* RFC 5321 4.5.3.1.3: a path with its "<" and ">" */
#define SMTP_MAX_LOCAL    64   /* RFC 5321 4.5.3.1.1: octets of local part */
#define SMTP_MAX_DOMAIN   255  /* RFC 5321 4.5.3.1.2: octets of domain */

/* The answer to a command line smtp_line refuses. */
#define SMTP_REPLY_BAD_LINE "500 5.5.2 Syntax error: line too long, or a bare CR or LF"

/* AUTH LOGIN's prompts (base64 of "Username:" and "Password:"). */
#define SMTP_LOGIN_USER_PROMPT "334 VXNlcm5hbWU6"
#define SMTP_LOGIN_PASS_PROMPT "334 UGFzc3dvcmQ6"

enum smtp_verb {
    SMTP_UNKNOWN,
    SMTP_HELO,
    SMTP_EHLO,
    SMTP_MAIL,
    SMTP_RCPT,
    SMTP_DATA,
    SMTP_RSET,
    SMTP_NOOP,
    SMTP_QUIT,
    SMTP_STARTTLS,
    SMTP_AUTH,
    SMTP_VRFY,
    SMTP_HELP,
};

/* AUTH mechanisms. */
enum smtp_mech {
    SMTP_MECH_NONE, /* not an AUTH command */
    SMTP_MECH_PLAIN,
    SMTP_MECH_LOGIN,
    SMTP_MECH_OTHER, /* a mechanism sesgate does not offer: 504 5.5.4 */
};

/* A parsed command line. Strings point into the caller's line (not owned). */
struct smtp_cmd {
    enum smtp_verb verb;
    const char *arg; /* HELO/EHLO domain, AUTH mechanism and initial response, VRFY */
    size_t arglen;
    const char *path; /* MAIL FROM / RCPT TO: the address inside <>, "" for <> */
    size_t pathlen;
    /* MAIL FROM parameters */
    bool has_size;
    uint64_t size;
    bool body_8bit; /* BODY=8BITMIME */
    bool smtputf8;  /* SMTPUTF8 */
    /* MAIL FROM / RCPT TO: the path holds non-ASCII (UTF-8) characters. A
     * MAIL path may only when SMTPUTF8 is given (smtp_parse refuses it
     * otherwise); a RCPT path may only in a transaction whose MAIL gave
     * SMTPUTF8, which the session checks (SMTP_REPLY_NEED_UTF8). */
    bool path_8bit;
    /* AUTH: the mechanism, and the initial response (NULL when none; "="
     * gives "" with length 0). */
    enum smtp_mech mech;
    const char *auth_resp;
    size_t auth_resplen;
};

/* A RCPT path with non-ASCII characters in a transaction without SMTPUTF8. */
#define SMTP_REPLY_NEED_UTF8 "553 5.6.7 Non-ASCII addresses require SMTPUTF8"

/* Find the next complete line in buf (n bytes): returns 1 and sets *len to
 * the line's length without its CRLF and *used to the bytes it took; 0 when
 * no CRLF has come yet (and n < max); -1 when the line is longer than max
 * (max counts the CRLF) or holds a bare CR or LF (*used then covers the bad
 * line up to its LF, so the caller can answer and go on; any LF ends a
 * line, so "A\nB\r\n" is a bad line "A" and a line "B"; a line longer
 * than max whose LF has not come yet gives *used = n: smtp_line_skip). */
int smtp_line(const char *buf, size_t n, size_t max, size_t *len, size_t *used);

/* After smtp_line's -1 for a line longer than max whose LF has not come
 * (buf[*used - 1] != '\n'), the session discards what follows up to the LF:
 * returns 1 with *used through the LF, or 0 with *used = n (keep
 * discarding). */
int smtp_line_skip(const char *buf, size_t n, size_t *used);

/* Parse one command line (without CRLF). Returns 0, or -1 with an SMTP
 * reply (code, enhanced code, text: "501 5.5.4 Syntax error in parameters")
 * in err; cmd->verb is then still the verb when it was recognised.
 *
 * Verbs are case-insensitive. MAIL FROM:<path> takes SIZE=n, BODY=7BIT or
 * BODY=8BITMIME, SMTPUTF8 and AUTH=xtext (RFC 4954, ignored), each at most
 * once; RCPT TO:<path> takes none (no DSN is offered): other parameters
 * are 555 5.5.4. White space after the colon is tolerated; inside <> none.
 * A source route ("<@a,@b:user@c>") is accepted and ignored (RFC 5321
 * 4.1.1.3: the path is the mailbox after it). <> is MAIL's null path only.
 * Address syntax and limits are SES's (addr_check_spec; local part 64,
 * domain 255, the path 256 octets with its <>); non-ASCII characters count
 * as letters when SMTPUTF8 allows them. An address SES would refuse is
 * "501 5.1.7 Invalid MAIL FROM address provided" or "501 5.1.3 Invalid
 * RCPT TO address provided". Control characters anywhere: 500 5.5.2. */
int smtp_parse(const char *line, size_t n, struct smtp_cmd *cmd, char *err, size_t errlen);

/* The DATA reader: feed it the bytes after "354"; it appends the message,
 * dot-unstuffed, with CRLF line ends, to out (at most max bytes kept; more
 * marks it too large). */
struct smtp_data {
    struct buf *out;
    size_t max;
    int state;      /* private */
    bool too_large; /* more than max bytes */
    bool ambiguous; /* a bare CR or LF was seen: refuse the message */
    bool done;      /* the end of data was read */
    bool long_line; /* a line longer than SMTP_MAX_TEXT before its CRLF: refuse */
    uint64_t size;  /* bytes of message, dot-unstuffed (also those past max) */
    size_t start;   /* private: out->len at init */
    size_t linelen; /* private: bytes of the current line */
};

void smtp_data_init(struct smtp_data *d, struct buf *out, size_t max);

/* Read up to n bytes; returns how many were taken (fewer than n only once
 * done is set: the rest belongs to the next command, for PIPELINING). */
size_t smtp_data_feed(struct smtp_data *d, const char *p, size_t n);

/* Once done: NULL when the message may be taken, else the reply that
 * refuses it ("552 5.3.4 ...", "554 5.6.0 ..."), a static string. */
const char *smtp_data_reply(const struct smtp_data *d);

/* AUTH PLAIN's response (base64 of authzid NUL user NUL password): user and
 * password appended to the buffers. Returns 0, or -1 when malformed (not
 * strict padded base64, not three parts, an empty user or password, or an
 * authorization identity other than empty or the user); the buffers are
 * then untouched. The decoded copy is wiped before it is freed. */
int smtp_auth_plain(const char *b64, size_t n, struct buf *user, struct buf *pass);

/* AUTH LOGIN's username or password response (base64 of the text): the
 * decoded text appended to out. Returns 0, or -1 when malformed (not strict
 * padded base64, empty, or holding a NUL, CR or LF). */
int smtp_auth_login(const char *b64, size_t n, struct buf *out);

/* True when an AUTH response line is "*": the client cancels the exchange
 * (RFC 4954: answer "501 5.7.0 Authentication cancelled"). */
bool smtp_auth_cancelled(const char *line, size_t n);

/* The SES SMTP password for a secret access key in region (SES's
 * documented algorithm: version 0x04, HMAC-SHA256 chain over "AWS4" +
 * secret, "11111111", region, "ses", "aws4_request", "SendRawEmail",
 * base64 of the version byte and the signature). out gets
 * SMTP_PASSWORD_LEN characters and a NUL. */
void smtp_password(const char *secret, const char *region, char out[SMTP_PASSWORD_LEN + 1]);

/* True when pass[0..n) is the SMTP password of secret in region (compared
 * in constant time). */
bool smtp_password_check(const char *secret, const char *region, const char *pass, size_t n);

/* What the EHLO reply announces besides the fixed extensions. */
#define SMTP_EHLO_STARTTLS 1u /* STARTTLS (a plain connection that can start TLS) */
#define SMTP_EHLO_AUTH     2u /* AUTH PLAIN LOGIN (on TLS) */
#define SMTP_EHLO_SMTPUTF8 4u /* SMTPUTF8 */

/* Append the EHLO reply to out: "250-host", SIZE max_size, 8BITMIME,
 * PIPELINING, ENHANCEDSTATUSCODES and the flags' extensions, each line with
 * its CRLF, the last one "250 ". */
void smtp_ehlo_reply(struct buf *out, const char *host, uint64_t max_size, unsigned flags);

#endif
