/* addr: an email address checked as Amazon SES checks it. */
#include "addr.h"

#include <stdbool.h>
#include <string.h>

#include "rfc5322.h"

/* The reasons, in SES's words where SES has them. */
#define ADDR_ILLEGAL       "Illegal address"
#define ADDR_LOCAL_ILLEGAL "Local address contains illegal character"
#define ADDR_DOM_ILLEGAL   "Domain contains illegal character"

/* Characters that need quoting in a local part (RFC 5322 specials). */
static bool addr_special(unsigned char c)
{
    return c != '\0' && strchr("()<>,;:\\\"[]@", c) != NULL;
}

/* A control character or white space. */
static bool addr_ctl_or_space(unsigned char c)
{
    return c <= 0x20 || c == 0x7f;
}

/* Check a quoted-string local part s[0..n) (s[0] is '"'). */
static const char *addr_check_quoted(const char *s, size_t n)
{
    if (n < 2 || s[n - 1] != '"')
        return ADDR_LOCAL_ILLEGAL;
    for (size_t i = 1; i + 1 < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\' && i + 2 < n)
            c = (unsigned char)s[++i];
        else if (c == '"' || c == '\\')
            return ADDR_LOCAL_ILLEGAL;
        if (c == '\r' || c == '\n')
            return "Quoted local address contains CR or LF";
        if (c != ' ' && addr_ctl_or_space(c))
            return "Local address contains control or whitespace";
        if (c >= 0x80)
            return ADDR_LOCAL_ILLEGAL;
    }
    return NULL;
}

/* Check a local part s[0..n) (n > 0). */
static const char *addr_check_local(const char *s, size_t n)
{
    if (s[0] == '"')
        return addr_check_quoted(s, n);
    unsigned char last = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80 || addr_special(c))
            return ADDR_LOCAL_ILLEGAL;
        if (addr_ctl_or_space(c))
            return "Local address contains control or whitespace";
        if (c == '.' && i == 0)
            return "Local address starts with dot";
        if (c == '.' && last == '.')
            return "Local address contains dot-dot";
        last = c;
    }
    if (last == '.')
        return "Local address ends with dot";
    return NULL;
}

/* A letter or digit (ASCII). */
static bool addr_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Check a domain literal s[0..n) (s[0] is '['): an address literal of
 * RFC 5321, "[192.0.2.1]" or "[IPv6:2001:db8::1]". */
static const char *addr_check_literal(const char *s, size_t n)
{
    if (n < 3 || s[n - 1] != ']')
        return ADDR_DOM_ILLEGAL;
    for (size_t i = 1; i + 1 < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (addr_ctl_or_space(c))
            return "Domain contains control or whitespace";
        if (!addr_alnum(c) && c != '.' && c != ':' && c != '-')
            return ADDR_DOM_ILLEGAL;
    }
    return NULL;
}

/* Check a domain s[0..n) (n > 0): letters, digits, '-' and '.' only. */
static const char *addr_check_domain(const char *s, size_t n)
{
    if (s[0] == '[')
        return addr_check_literal(s, n);
    unsigned char last = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (addr_ctl_or_space(c))
            return "Domain contains control or whitespace";
        if (!addr_alnum(c) && c != '-' && c != '.')
            return ADDR_DOM_ILLEGAL;
        if (c == '.' && i == 0)
            return "Domain starts with dot";
        if (c == '.' && last == '.')
            return "Domain contains dot-dot";
        last = c;
    }
    if (last == '.')
        return "Domain ends with dot";
    return NULL;
}

const char *addr_check_spec(const char *a, size_t n)
{
    if (n == 0)
        return ADDR_ILLEGAL;
    /* the first '@' outside a quoted string ends the local part */
    size_t at = n;
    bool quoted = false;
    for (size_t i = 0; i < n && at == n; i++) {
        if (quoted && a[i] == '\\')
            i++;
        else if (a[i] == '"')
            quoted = !quoted;
        else if (!quoted && a[i] == '@')
            at = i;
    }
    if (at == n)
        return "Missing final '@domain'";
    if (at == 0)
        return "Missing local name";
    if (at + 1 == n)
        return "Missing domain";
    const char *why = addr_check_local(a, at);
    if (why == NULL)
        why = addr_check_domain(a + at + 1, n - at - 1);
    if (why == NULL && at > ADDR_MAX_LOCAL)
        why = "Local address is longer than 64 characters";
    if (why == NULL && n - at - 1 > ADDR_MAX_DOMAIN)
        why = "Domain is longer than 255 characters";
    if (why == NULL && n > ADDR_MAX_TOTAL)
        why = "Address is longer than 320 characters";
    return why;
}

/* True when s[0..n) holds, outside quoted strings, a character that only
 * a mailbox, a list or a comment has. */
static bool addr_is_mailbox_form(const char *s, size_t n)
{
    bool quoted = false;
    for (size_t i = 0; i < n; i++) {
        if (quoted && s[i] == '\\')
            i++;
        else if (s[i] == '"')
            quoted = !quoted;
        else if (!quoted && strchr("<>(),;:", s[i]) != NULL && s[i] != '\0')
            return true;
    }
    return false;
}

const char *addr_check_mailbox(const char *s, size_t n)
{
    while (n > 0 && (s[0] == ' ' || s[0] == '\t')) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0)
        return ADDR_ILLEGAL;
    if (!addr_is_mailbox_form(s, n))
        return addr_check_spec(s, n);
    struct rfc5322_addr_list l = {0};
    char why[128];
    const char *r = ADDR_ILLEGAL;
    if (rfc5322_parse_addresses(s, n, 2, &l, why, sizeof why) == 0) {
        if (l.n == 1)
            r = addr_check_spec(l.v[0].addr, strlen(l.v[0].addr));
    } else if (s[n - 1] == '>' && memchr(s, '<', n) != NULL) {
        /* "Name <addr>" whose addr-spec does not parse: say why, as SES does */
        const char *lt = memchr(s, '<', n);
        const char *inner = addr_check_spec(lt + 1, (size_t)(s + n - 1 - lt - 1));
        if (inner != NULL)
            r = inner;
    }
    rfc5322_addr_list_free(&l);
    return r;
}
