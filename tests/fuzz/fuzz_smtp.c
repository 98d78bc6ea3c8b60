/* fuzz_smtp: the SMTP command lines, the command parser and the DATA reader
 * on arbitrary input.
 *
 * The first byte seeds the splits and picks the DATA reader's limit; the
 * rest is the input, read both as a stream of command lines and as the
 * bytes after "354".
 *
 * Command lines: the same lines however the input arrives; each complete
 * line holds no CR or LF and takes its CRLF;
 * a refused line is consumed up to its LF; the parser's answer is 0 or an
 * SMTP reply "ddd d.d.d text"; a parsed path lies in the line, within 256
 * octets, with no space or control character.
 *
 * DATA: fed in one piece and in random pieces, the reader gives the same
 * result; it is done exactly at the first CRLF "." CRLF (or a leading
 * "." CRLF) and consumes nothing after it; it marks the message ambiguous
 * exactly when a bare CR or LF came before the end (a CR that input ended
 * on is not yet known to be bare); without one the output
 * holds no bare CR or LF, and a complete one is the plain reading (split
 * at CRLF, leading dots removed); a lower limit keeps a prefix of the same
 * output. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp.h"

/* Abort when cond is false, so that libFuzzer reports the input. */
static void fuzz_smtp_assert(int cond)
{
    if (!cond)
        abort();
}

/* A small deterministic generator for the split sizes. */
static uint32_t fuzz_smtp_next(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 16;
}

/* One line smtp_line gave: its result and the bytes it covers (a refused
 * line with the bytes skipped after it). */
struct fuzz_smtp_ev {
    int rc;
    size_t from, to;
};

/* Read s[0..n) as command lines arriving in pieces from seed (0: all at
 * once), as a session would; the lines go to ev (room for n + 1), their
 * number to *nev. Each complete line is parsed when parse is set. */
static void fuzz_smtp_commands(const char *s, size_t n, uint32_t seed, bool parse,
                               struct fuzz_smtp_ev *ev, size_t *nev)
{
    size_t off = 0, avail = seed == 0 ? n : 0;
    bool skipping = false;
    *nev = 0;
    for (;;) {
        const char *p = s + off;
        size_t left = avail - off, len = 0, used = 0;
        int rc = 0;
        if (left > 0 && skipping) {
            rc = smtp_line_skip(p, left, &used);
            fuzz_smtp_assert(used > 0 && used <= left && *nev > 0);
            fuzz_smtp_assert(rc == 1 ? p[used - 1] == '\n' && memchr(p, '\n', used - 1) == NULL
                                     : used == left && memchr(p, '\n', left) == NULL);
            skipping = rc == 0;
            off += used;
            ev[*nev - 1].to = off;
            continue;
        }
        if (left > 0)
            rc = smtp_line(p, left, SMTP_MAX_LINE, &len, &used);
        if (rc == 0) {
            fuzz_smtp_assert(left < SMTP_MAX_LINE && memchr(p, '\n', left) == NULL);
            if (avail == n)
                break;
            avail += 1 + fuzz_smtp_next(&seed) % 64;
            if (avail > n)
                avail = n;
            continue;
        }
        fuzz_smtp_assert(used > 0 && used <= left);
        ev[*nev].rc = rc;
        ev[*nev].from = off;
        ev[*nev].to = off + used;
        (*nev)++;
        if (rc < 0) {
            /* a bad line: up to its LF, or an overlong one still open */
            if (p[used - 1] != '\n') {
                fuzz_smtp_assert(used == left && left >= SMTP_MAX_LINE);
                skipping = true;
            } else {
                fuzz_smtp_assert(memchr(p, '\n', used - 1) == NULL);
                fuzz_smtp_assert(used > SMTP_MAX_LINE || used < 2 || p[used - 2] != '\r' ||
                                 memchr(p, '\r', used - 2) != NULL);
            }
            off += used;
            continue;
        }
        fuzz_smtp_assert(used == len + 2 && used <= SMTP_MAX_LINE);
        fuzz_smtp_assert(p[len] == '\r' && p[len + 1] == '\n');
        fuzz_smtp_assert(memchr(p, '\r', len) == NULL && memchr(p, '\n', len) == NULL);
        off += used;
        if (!parse)
            continue;

        struct smtp_cmd cmd;
        char err[128];
        int prc = smtp_parse(p, len, &cmd, err, sizeof err);
        if (prc < 0) {
            size_t el = strlen(err);
            fuzz_smtp_assert(el > 10 && (err[0] == '5' || err[0] == '4') && err[3] == ' ' &&
                             err[4] == err[0] && err[5] == '.');
        } else {
            fuzz_smtp_assert(prc == 0 && cmd.verb != SMTP_UNKNOWN);
            fuzz_smtp_assert(cmd.arg >= p && cmd.arg + cmd.arglen <= p + len);
            if (cmd.path != NULL) {
                fuzz_smtp_assert(cmd.verb == SMTP_MAIL || cmd.verb == SMTP_RCPT);
                fuzz_smtp_assert(cmd.path >= p && cmd.path + cmd.pathlen <= p + len);
                fuzz_smtp_assert(cmd.pathlen + 2 <= SMTP_MAX_PATH);
                fuzz_smtp_assert(cmd.pathlen > 0 || cmd.verb == SMTP_MAIL);
                for (size_t k = 0; k < cmd.pathlen; k++) {
                    unsigned char c = (unsigned char)cmd.path[k];
                    fuzz_smtp_assert(c > ' ' && c != 0x7f && c != '>');
                    fuzz_smtp_assert(c < 0x80 || cmd.path_8bit);
                }
                fuzz_smtp_assert(!cmd.path_8bit || cmd.verb == SMTP_RCPT || cmd.smtputf8);
            } else {
                fuzz_smtp_assert(cmd.verb != SMTP_MAIL && cmd.verb != SMTP_RCPT);
            }
            if (cmd.verb == SMTP_AUTH) {
                fuzz_smtp_assert(cmd.mech == SMTP_MECH_PLAIN || cmd.mech == SMTP_MECH_LOGIN);
                if (cmd.auth_resp != NULL && cmd.auth_resplen > 0) {
                    struct buf u = BUF_INIT, w = BUF_INIT;
                    if (smtp_auth_plain(cmd.auth_resp, cmd.auth_resplen, &u, &w) == 0)
                        fuzz_smtp_assert(u.len > 0 && w.len > 0 &&
                                         memchr(w.data, '\0', w.len) == NULL);
                    else
                        fuzz_smtp_assert(u.len == 0 && w.len == 0);
                    buf_free(&u);
                    buf_free(&w);
                    if (smtp_auth_login(cmd.auth_resp, cmd.auth_resplen, &w) == 0)
                        fuzz_smtp_assert(w.len > 0 && memchr(w.data, '\0', w.len) == NULL);
                    else
                        fuzz_smtp_assert(w.len == 0);
                    buf_free(&w);
                }
            }
        }
    }
}

/* The command lines of s[0..n) are the same however they arrive. */
static void fuzz_smtp_lines(const char *s, size_t n, uint8_t seed)
{
    struct fuzz_smtp_ev *whole = calloc(n + 1, sizeof *whole);
    struct fuzz_smtp_ev *split = calloc(n + 1, sizeof *split);
    fuzz_smtp_assert(whole != NULL && split != NULL);
    size_t nw = 0, ns = 0;
    fuzz_smtp_commands(s, n, 0, true, whole, &nw);
    fuzz_smtp_commands(s, n, (uint32_t)seed * 13 + 1, false, split, &ns);
    fuzz_smtp_assert(nw == ns);
    for (size_t i = 0; i < nw; i++)
        fuzz_smtp_assert(whole[i].rc == split[i].rc && whole[i].from == split[i].from &&
                         whole[i].to == split[i].to);
    free(whole);
    free(split);
}

/* The result of one DATA read. */
struct fuzz_smtp_data {
    struct buf out;
    size_t used;
    bool done, ambiguous, too_large, long_line;
    uint64_t size;
};

/* Read s[0..n) as DATA with limit max, in pieces from seed (0: whole). */
static void fuzz_smtp_read(const char *s, size_t n, size_t max, uint32_t seed,
                           struct fuzz_smtp_data *r)
{
    struct smtp_data d;
    memset(r, 0, sizeof *r);
    smtp_data_init(&d, &r->out, max);
    size_t off = 0;
    while (off < n && !d.done) {
        size_t piece = seed == 0 ? n - off : 1 + fuzz_smtp_next(&seed) % 16;
        if (piece > n - off)
            piece = n - off;
        size_t got = smtp_data_feed(&d, s + off, piece);
        fuzz_smtp_assert(got <= piece);
        fuzz_smtp_assert(got == piece || d.done);
        off += got;
    }
    r->used = off;
    r->done = d.done;
    r->ambiguous = d.ambiguous;
    r->too_large = d.too_large;
    r->long_line = d.long_line;
    r->size = d.size;
    fuzz_smtp_assert(r->out.len <= max);
    if (d.done)
        fuzz_smtp_assert(smtp_data_feed(&d, "x", 1) == 0);
}

/* Where the data ends (just past CRLF "." CRLF, or ".\r\n" at the start),
 * or 0 when it does not. */
static size_t fuzz_smtp_end(const char *s, size_t n)
{
    if (n >= 3 && memcmp(s, ".\r\n", 3) == 0)
        return 3;
    for (size_t i = 0; i + 5 <= n; i++)
        if (memcmp(s + i, "\r\n.\r\n", 5) == 0)
            return i + 5;
    return 0;
}

/* True when s[0..n) holds a CR not followed by LF or an LF not after CR. */
static bool fuzz_smtp_bare(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r' && (i + 1 >= n || s[i + 1] != '\n'))
            return true;
        if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
            return true;
    }
    return false;
}

/* The message of a complete, unambiguous DATA section s[0..n) (its end
 * included), read the plain way: split at CRLF, each line's leading dot
 * removed, the lines joined with CRLF. */
static void fuzz_smtp_unstuff(const char *s, size_t n, struct buf *out)
{
    size_t i = 0;
    n -= 3; /* the final ".\r\n" */
    while (i < n) {
        const char *crlf = memmem(s + i, n - i, "\r\n", 2);
        fuzz_smtp_assert(crlf != NULL);
        size_t e = (size_t)(crlf - s);
        size_t b = i < e && s[i] == '.' ? i + 1 : i;
        buf_add(out, s + b, e - b);
        buf_add(out, "\r\n", 2);
        i = e + 2;
    }
}

static void fuzz_smtp_data(const char *s, size_t n, uint8_t seed)
{
    struct fuzz_smtp_data whole, split, small;
    fuzz_smtp_read(s, n, SIZE_MAX, 0, &whole);
    fuzz_smtp_read(s, n, SIZE_MAX, (uint32_t)seed + 1, &split);
    size_t max = (size_t)(seed & 0x3f);
    fuzz_smtp_read(s, n, max, (uint32_t)seed * 7 + 3, &small);

    /* any split gives the same result */
    fuzz_smtp_assert(whole.used == split.used && whole.done == split.done &&
                     whole.ambiguous == split.ambiguous && whole.long_line == split.long_line &&
                     whole.size == split.size && whole.out.len == split.out.len &&
                     memcmp(buf_cstr(&whole.out), buf_cstr(&split.out), whole.out.len) == 0);
    fuzz_smtp_assert(!whole.too_large && whole.size == whole.out.len);

    /* the end: exactly at the first CRLF.CRLF, nothing taken after it */
    size_t end = fuzz_smtp_end(s, n);
    fuzz_smtp_assert(whole.done == (end != 0));
    fuzz_smtp_assert(whole.used == (end != 0 ? end : n));
    /* a CR at the end of an unfinished read is not known to be bare yet */
    size_t seen = whole.used;
    if (!whole.done && seen > 0 && s[seen - 1] == '\r')
        seen--;
    fuzz_smtp_assert(whole.ambiguous == fuzz_smtp_bare(s, seen));
    if (!whole.ambiguous)
        fuzz_smtp_assert(!fuzz_smtp_bare(buf_cstr(&whole.out), whole.out.len));
    if (whole.done && !whole.ambiguous)
        fuzz_smtp_assert(whole.out.len == 0 ||
                         (whole.out.len >= 2 && whole.out.data[whole.out.len - 2] == '\r' &&
                          whole.out.data[whole.out.len - 1] == '\n'));
    fuzz_smtp_assert(whole.out.len <= whole.used);
    if (whole.done && !whole.ambiguous) {
        struct buf plain = BUF_INIT;
        fuzz_smtp_unstuff(s, whole.used, &plain);
        fuzz_smtp_assert(plain.len == whole.out.len &&
                         memcmp(buf_cstr(&plain), buf_cstr(&whole.out), plain.len) == 0);
        buf_free(&plain);
    }

    /* a lower limit keeps a prefix and reads to the same end */
    fuzz_smtp_assert(small.used == whole.used && small.done == whole.done &&
                     small.ambiguous == whole.ambiguous && small.size == whole.size);
    fuzz_smtp_assert(small.too_large == (whole.size > max));
    fuzz_smtp_assert(small.out.len == (whole.size > max ? max : whole.out.len));
    fuzz_smtp_assert(small.out.len == 0 ||
                     memcmp(small.out.data, whole.out.data, small.out.len) == 0);

    buf_free(&whole.out);
    buf_free(&split.out);
    buf_free(&small.out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* libFuzzer entry point. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    fuzz_smtp_lines(s, n, data[0]);
    fuzz_smtp_data(s, n, data[0]);
    return 0;
}
