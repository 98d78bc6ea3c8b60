/* addr: an email address checked as Amazon SES checks a sender or recipient.
 *
 * SES refuses a whole send when one address is not acceptable, with
 * InvalidParameterValue (v1) or BadRequestException (v2) and a reason in
 * the words of the mail library it parses addresses with ("Missing final
 * '@domain'", "Domain contains illegal character", ...). sesgate applies
 * the same rules before it queues or forwards anything, so that a batch
 * never holds an address SES would refuse.
 *
 * The rules: an addr-spec local@domain; the local part a dot-atom or a
 * quoted string, no empty part, 7-bit ASCII only (SES has no SMTPUTF8);
 * the domain letters, digits, '-' and '.', or a [domain literal]; an
 * internationalised domain must come as punycode ("xn--..."); at most 64
 * characters of local part, 255 of domain and 320 in all (RFC 5321).
 *
 * Pure: no I/O, no allocation that outlives a call. */
#ifndef SESGATE_ADDR_H
#define SESGATE_ADDR_H

#include <stddef.h>

/* RFC 5321 limits. */
#define ADDR_MAX_LOCAL  64
#define ADDR_MAX_DOMAIN 255
#define ADDR_MAX_TOTAL  320

/* Check the addr-spec a[0..n) ("local@domain", quotes as written). Returns
 * NULL when SES accepts it, else SES's reason (a static string). */
const char *addr_check_spec(const char *a, size_t n);

/* Check one destination as a client names it: an addr-spec, or a mailbox
 * "Display Name <addr-spec>" (surrounding white space ignored). A list of
 * two or more, a group, or nothing at all is "Illegal address". Returns
 * NULL or the reason, as addr_check_spec. */
const char *addr_check_mailbox(const char *s, size_t n);

#endif
