/* Fuzz rfc5322: the input is parsed as an address list, and as a message
 * whose To, Cc and Bcc header values are then parsed as address lists.
 *
 * Invariants: header_end never passes the input; a header value holds no LF
 * and does not start with whitespace; on success every address has an '@',
 * no address or display name holds CR, LF or NUL, both are valid UTF-8, the
 * display name has no leading, trailing or doubled space, each address
 * parses back to itself, and there are at most max addresses; on failure the list is empty and a
 * reason is given.
 *
 * The input is also rewritten, as a message, for fixed recipients and for
 * the first addresses of its To fields, as first and as later copy.
 * Invariants: an address without a tab is always accepted, a refused one
 * leaves out untouched; an envelope-only copy (DKIM) equals the input, whose
 * header has a DKIM-Signature field, and a first DKIM-Signature value that
 * starts "h=to" makes every copy envelope-only; any other copy has exactly
 * one To field whose value is the recipient, no Bcc field, the input's Cc
 * fields on the first copy and none on the others, as many Subject, From and
 * DKIM-Signature fields as the input, a body byte-identical to the input's,
 * and grows by at most one To line.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rfc5322.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Abort unless cond holds (a finding for libFuzzer). */
static void fuzz_rfc5322_assert(int cond)
{
    if (!cond)
        abort();
}

/* An address on its own parses back to itself. */
static void fuzz_rfc5322_reparse(const char *a)
{
    struct rfc5322_addr_list l = {NULL, 0};
    char err[64] = "";
    int rc = rfc5322_parse_addresses(a, strlen(a), 1, &l, err, sizeof err);
    fuzz_rfc5322_assert(rc == 0 && l.n == 1);
    fuzz_rfc5322_assert(strcmp(l.v[0].addr, a) == 0 && l.v[0].display[0] == '\0');
    rfc5322_addr_list_free(&l);
}

/* Parse s[0..n) with at most max addresses and check the invariants. */
static void fuzz_rfc5322_parse(const char *s, size_t n, size_t max)
{
    struct rfc5322_addr_list l = {NULL, 0};
    char err[64] = "";
    int rc = rfc5322_parse_addresses(s, n, max, &l, err, sizeof err);
    if (rc != 0) {
        fuzz_rfc5322_assert(rc == -1 && l.n == 0 && l.v == NULL && err[0] != '\0');
        return;
    }
    fuzz_rfc5322_assert(l.n <= max);
    for (size_t i = 0; i < l.n; i++) {
        const char *a = l.v[i].addr, *d = l.v[i].display;
        size_t alen = strlen(a), dlen = strlen(d);
        fuzz_rfc5322_assert(strchr(a, '@') != NULL);
        fuzz_rfc5322_assert(strpbrk(a, "\r\n") == NULL && strpbrk(d, "\r\n") == NULL);
        fuzz_rfc5322_assert(util_utf8_valid(a, alen) && util_utf8_valid(d, dlen));
        fuzz_rfc5322_assert(dlen == 0 || (d[0] != ' ' && d[dlen - 1] != ' '));
        fuzz_rfc5322_assert(strstr(d, "  ") == NULL && strchr(d, '\t') == NULL);
        /* the address was in the input: without NUL, it is no longer than it */
        fuzz_rfc5322_assert(alen <= n);
        fuzz_rfc5322_reparse(a);
    }
    rfc5322_addr_list_free(&l);
    fuzz_rfc5322_assert(l.n == 0 && l.v == NULL);
}

/* Number of fields called name in the header block of s[0..n). */
static int fuzz_rfc5322_count(const char *s, size_t n, const char *name)
{
    struct buf v = BUF_INIT;
    int k = rfc5322_header_get_all(s, n, name, &v);
    fuzz_rfc5322_assert(k >= 0 && (k > 0 || v.len == 0));
    buf_free(&v);
    return k;
}

/* Rewrite s[0..n) for recipient to and check the invariants. */
static void fuzz_rfc5322_rewrite(const char *s, size_t n, const char *to, bool first, bool plain)
{
    struct buf out = BUF_INIT;
    bool dkim = false;
    int rc = rfc5322_rewrite_for_copy(s, n, to, first, &out, &dkim);
    fuzz_rfc5322_assert(rc == 0 || rc == -1);
    if (rc == -1) {
        fuzz_rfc5322_assert(!plain && out.len == 0 && !dkim);
        buf_free(&out);
        return;
    }
    struct buf d = BUF_INIT;
    if (rfc5322_header_get(s, n, "DKIM-Signature", &d) == 0 && d.len >= 4 &&
        memcmp(d.data, "h=to", 4) == 0 && (d.len == 4 || d.data[4] == ';' || d.data[4] == ':'))
        fuzz_rfc5322_assert(dkim);
    buf_free(&d);
    if (dkim) {
        fuzz_rfc5322_assert(out.len == n && (n == 0 || memcmp(out.data, s, n) == 0));
        fuzz_rfc5322_assert(fuzz_rfc5322_count(s, n, "DKIM-Signature") > 0);
        buf_free(&out);
        return;
    }
    size_t tolen = strlen(to);
    fuzz_rfc5322_assert(out.len <= n + 6 + tolen);
    struct buf v = BUF_INIT;
    fuzz_rfc5322_assert(rfc5322_header_get_all(out.data, out.len, "To", &v) == 1);
    fuzz_rfc5322_assert(v.len == tolen && memcmp(v.data, to, tolen) == 0);
    buf_free(&v);
    fuzz_rfc5322_assert(fuzz_rfc5322_count(out.data, out.len, "Bcc") == 0);
    int cc = fuzz_rfc5322_count(out.data, out.len, "Cc");
    fuzz_rfc5322_assert(cc == (first ? fuzz_rfc5322_count(s, n, "Cc") : 0));
    static const char *const kept[] = {"Subject", "DKIM-Signature", "From"};
    for (size_t k = 0; k < sizeof kept / sizeof kept[0]; k++)
        fuzz_rfc5322_assert(fuzz_rfc5322_count(out.data, out.len, kept[k]) ==
                            fuzz_rfc5322_count(s, n, kept[k]));
    size_t ie = rfc5322_header_end(s, n), oe = rfc5322_header_end(out.data, out.len);
    fuzz_rfc5322_assert(out.len - oe == n - ie);
    fuzz_rfc5322_assert(n == ie || memcmp(out.data + oe, s + ie, n - ie) == 0);
    buf_free(&out);
}

/* Rewrite the input for fixed recipients and for the first addresses of its
 * To fields, as first and as later copy. */
static void fuzz_rfc5322_rewrites(const char *s, size_t n)
{
    fuzz_rfc5322_rewrite(s, n, "a@x", true, true);
    fuzz_rfc5322_rewrite(s, n, "j\xc3\xbcrgen@example.de", false, true);
    struct buf v = BUF_INIT;
    if (rfc5322_header_get_all(s, n, "To", &v) == 0) {
        buf_free(&v);
        return;
    }
    struct rfc5322_addr_list l = {NULL, 0};
    char err[64] = "";
    if (rfc5322_parse_addresses(v.data, v.len, 1000, &l, err, sizeof err) == 0) {
        for (size_t i = 0; i < l.n && i < 3; i++)
            fuzz_rfc5322_rewrite(s, n, l.v[i].addr, i == 0, strchr(l.v[i].addr, '\t') == NULL);
        rfc5322_addr_list_free(&l);
    }
    buf_free(&v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    size_t max = size > 0 ? (size_t)(data[0] % 16) : 1;

    fuzz_rfc5322_parse(s, size, 1000);
    fuzz_rfc5322_parse(s, size, max);

    size_t end = rfc5322_header_end(s, size);
    fuzz_rfc5322_assert(end <= size);
    static const char *const names[] = {"To", "cc", "BCC", "Subject"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        struct buf v = BUF_INIT;
        int rc = rfc5322_header_get(s, size, names[k], &v);
        fuzz_rfc5322_assert(rc == 0 || rc == 1);
        if (rc == 1) {
            fuzz_rfc5322_assert(v.len == 0);
        } else {
            fuzz_rfc5322_assert(v.len <= end);
            fuzz_rfc5322_assert(v.len == 0 || memchr(v.data, '\n', v.len) == NULL);
            fuzz_rfc5322_assert(v.len == 0 || (v.data[0] != ' ' && v.data[0] != '\t'));
            fuzz_rfc5322_parse(v.data, v.len, 1000);
        }
        buf_free(&v);
    }

    fuzz_rfc5322_rewrites(s, size);
    return 0;
}
