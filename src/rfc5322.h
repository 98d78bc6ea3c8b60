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
