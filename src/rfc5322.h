/* rfc5322: Internet Message Format headers and address lists (pure).
 *
 * Header fields are looked up in the header block of a message (everything
 * before the first empty line), with CRLF or bare LF line ends and folded
 * continuation lines. Address lists follow RFC 5322 section 3.4 with the
 * obsolete forms of section 4.4 tolerated: display names (atoms, quoted
 * strings with escaped or quoted commas, RFC 2047 encoded words), comments
 * (nested), groups ("undisclosed:;", "team: a@x, b@y;"), angle addresses with
 * obsolete routes, and folding whitespace anywhere whitespace may appear.
 */
#ifndef SESGATE_RFC5322_H
#define SESGATE_RFC5322_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* Find the first header field named name (case-insensitive) in msg's header
 * block and append its unfolded value (each line break before a continuation
 * line removed, leading whitespace of the value removed) to out.
 * Returns 0 if found, 1 if absent. */
int rfc5322_header_get(const char *msg, size_t len, const char *name, struct buf *out);

/* Where the header block ends: the offset of the first byte of the body
 * (after the empty line), or len when the message has no empty line. */
size_t rfc5322_header_end(const char *msg, size_t len);

/* Append the unfolded values of every header field named name
 * (case-insensitive) in msg's header block to out, joined by ", " (an
 * empty value adds nothing). Returns the number of fields found (0 if none;
 * out is then unchanged). */
int rfc5322_header_get_all(const char *msg, size_t len, const char *name, struct buf *out);

/* Append msg to out without every header field named name
 * (case-insensitive), continuation lines included; every other byte is
 * kept. Returns the number of fields removed. */
int rfc5322_header_remove(const char *msg, size_t len, const char *name, struct buf *out);

#define RFC5322_HAS_REWRITE 1

/* Build the copy of a raw message for one recipient of a fanned-out send:
 * every To field is replaced by one "To: <to_addr>" field at the position of
 * the first To field (or, with no To field, inserted right after the From
 * field, else at the top), every Bcc field is removed, Cc fields are kept
 * only when first_copy, and every other byte of the message is unchanged
 * (line ends, folding, order, body). When a DKIM-Signature field's h= tag
 * lists "to" (case-insensitive; likewise "bcc" when a Bcc field is present,
 * and "cc" when Cc fields would be removed: any change to a signed field
 * breaks the signature), the message is copied unchanged and *dkim_signed is
 * set: only the envelope can be split. The line end used for the new To
 * field is the one the message uses (CRLF or bare LF, from its first line).
 * to_addr must be an addr-spec without CR/LF (else -1). Returns 0, or -1
 * with out unchanged. */
int rfc5322_rewrite_for_copy(const char *msg, size_t len, const char *to_addr, bool first_copy,
                             struct buf *out, bool *dkim_signed);

struct rfc5322_addr {
    char *display; /* display name, decoded to UTF-8 (encoded words, quotes); "" if none; owned */
    char *addr;    /* addr-spec "local@domain", quotes kept as in the source; owned */
};

struct rfc5322_addr_list {
    struct rfc5322_addr *v; /* in order of appearance; group members flattened */
    size_t n;
};

/* Parse an address-list header value (unfolded or not) into out (zeroed by
 * the caller). At most max addresses are accepted. Returns 0, or -1 with a
 * short reason in err (out is then empty). */
int rfc5322_parse_addresses(const char *s, size_t len, size_t max, struct rfc5322_addr_list *out,
                            char *err, size_t errlen);

/* Release the list; it is empty afterwards. */
void rfc5322_addr_list_free(struct rfc5322_addr_list *l);

#endif
