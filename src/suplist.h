/* suplist: the account's suppression list, its entries and files (pure: no
 * I/O, no clock).
 *
 * The list is one Redis hash, {P}:sup (docs/SUPPRESSION.md): field the
 * recipient's addr-spec in lower case, value "<reason>\t<ms>\t<source>":
 * reason BOUNCE or COMPLAINT (SES's names), TRANSIENT (repeated transient
 * bounces) or MANUAL; ms the time it was added (ms since the epoch);
 * source event, cli, admin, import or ses. These functions make the field
 * for a recipient as a client names it, read and write values, and read
 * the lines of an import file (one address, or "address,reason" as SES's
 * CSV export writes them).
 */
#ifndef SESGATE_SUPLIST_H
#define SESGATE_SUPLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "buf.h"

/* The longest field: an addr-spec SES accepts (addr.h's ADDR_MAX_TOTAL). */
#define SUPLIST_MAX_KEY 320

/* One entry's value, read. */
struct suplist_entry {
    char reason[16]; /* BOUNCE, COMPLAINT, TRANSIENT, MANUAL (or what was stored) */
    int64_t ms;      /* when it was added, ms since the epoch; 0 when unknown */
    char source[16]; /* event, cli, admin, import, ses ("" when unknown) */
};

/* The field for the recipient s[0..n) as a client names it (an addr-spec or
 * "Name <addr-spec>"): its addr-spec, lower-cased, into out (overwritten;
 * SUPLIST_MAX_KEY + 1 bytes). Returns the length, or -1 when s is not one
 * address SES accepts (addr.h): why then says why (a static string). */
int suplist_key(const char *s, size_t n, char *out, const char **why);

/* The fields of one lookup (HMGET {P}:sup ...), gathered recipient by
 * recipient: each NUL-terminated in text, n of them. */
struct suplist_fields {
    struct buf text;
    size_t n;
};

/* Add recipient a[0..n)'s field: suplist_key's, or an empty one when a is
 * not an address (nothing SES accepts is suppressed under it), so that the
 * lookup's answers line up with the recipients asked about. */
void suplist_fields_add(struct suplist_fields *f, const char *a, size_t n);

/* suplist_fields_add as bulk_unit_filter's keep (arg: the fields): adds
 * every recipient of a unit and keeps it. */
bool suplist_fields_gather(void *arg, const char *a, size_t n);

/* The canonical reason for r ("bounce", "Complaint", ... any case; "" and
 * NULL: MANUAL), or NULL when it is none of BOUNCE, COMPLAINT, TRANSIENT,
 * MANUAL. */
const char *suplist_reason(const char *r);

/* Append the value "<reason>\t<ms>\t<source>" to out. */
void suplist_value(const char *reason, int64_t ms, const char *source, struct buf *out);

/* Read a value into e (zeroed first). A value missing its time or source
 * (or written by hand) keeps what it has: its first field is the reason. */
void suplist_entry_parse(const char *s, size_t n, struct suplist_entry *e);

/* An entry as the views show it: {"address", "reason", "added" (ISO 8601
 * UTC, "" when unknown), "added_ms", "source"}, from its field and value. A
 * new reference. */
json_t *suplist_json(const char *key, size_t klen, const char *value, size_t vlen);

/* What an import line holds. */
enum suplist_line {
    SUPLIST_LINE_ENTRY = 0, /* an address (key), with reason (canonical) */
    SUPLIST_LINE_SKIP,      /* blank, a comment (#), or the CSV header */
    SUPLIST_LINE_BAD,       /* not an address, or a reason that is none: why says */
};

/* Read one line of an import file (without its line end; a trailing \r is
 * ignored): "address" or CSV "address,reason" (fields may be quoted with
 * '"'; more fields after the reason are ignored, as in SES's export with
 * its LastUpdateTime). first: the file's first line, where a header
 * ("address,reason", "EmailAddress,Reason", any case) is skipped. An entry
 * without a reason gets dflt_reason. key gets SUPLIST_MAX_KEY + 1 bytes. */
enum suplist_line suplist_import_line(const char *s, size_t n, bool first, const char *dflt_reason,
                                      char *key, const char **reason, const char **why);

#endif
