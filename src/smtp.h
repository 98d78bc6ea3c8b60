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
 * (smtp_data_ambiguous): the reader still finds the one true end
 * (CRLF "." CRLF) so the session stays in step, and the message is refused,
 * never passed on.
 */
#ifndef SESGATE_SMTP_H
#define SESGATE_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define SMTP_MAX_LINE     1000 /* RFC 5321 4.5.3.1.4: a command line with its CRLF */
#define SMTP_PASSWORD_LEN 44   /* base64 of 33 bytes */

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
};

/* Find the next complete line in buf (n bytes): returns 1 and sets *len to
 * the line's length without its CRLF and *used to the bytes it took; 0 when
 * no CRLF has come yet (and n < max); -1 when the line is longer than max
 * or holds a bare CR or LF (*used then covers the bad line up to its LF, so
 * the caller can answer and go on). */
int smtp_line(const char *buf, size_t n, size_t max, size_t *len, size_t *used);

/* Parse one command line (without CRLF). Returns 0, or -1 with an SMTP
 * reply (code, enhanced code, text: "501 5.5.4 Syntax error in parameters")
 * in err. */
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
};

void smtp_data_init(struct smtp_data *d, struct buf *out, size_t max);

/* Read up to n bytes; returns how many were taken (fewer than n only once
 * done is set: the rest belongs to the next command, for PIPELINING). */
size_t smtp_data_feed(struct smtp_data *d, const char *p, size_t n);

/* AUTH PLAIN's response (base64 of authzid NUL user NUL password): user and
 * password into the buffers. Returns 0, or -1 when malformed. */
int smtp_auth_plain(const char *b64, size_t n, struct buf *user, struct buf *pass);

/* The SES SMTP password for a secret access key in region (SES's
 * documented algorithm: version 0x04, HMAC-SHA256 chain over "AWS4" +
 * secret, "11111111", region, "ses", "aws4_request", "SendRawEmail",
 * base64 of the version byte and the signature). out gets
 * SMTP_PASSWORD_LEN characters and a NUL. */
void smtp_password(const char *secret, const char *region, char out[SMTP_PASSWORD_LEN + 1]);

#endif
