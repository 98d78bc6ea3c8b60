/* Unit tests for addr: addresses as SES accepts and refuses them (RFC 5321
 * and 5322 forms, SES's 7-bit and punycode rules, its error wording). */
#include <string.h>

#include "addr.h"
#include "check.h"

/* An address and what the check says: NULL when accepted, else the exact
 * reason. */
struct addr_case {
    const char *addr;
    const char *want;
};

static const struct addr_case spec_cases[] = {
    /* accepted */
    {"a@x.example", NULL},
    {"first.last@example.com", NULL},
    {"user+tag@example.com", NULL},
    {"x@example", NULL},
    {"a!#$%&'*+-/=?^_`{|}~b@example.com", NULL},
    {"\"john doe\"@x.example", NULL},
    {"\"a@b\"@x.example", NULL},
    {"\"quote\\\"d\"@x.example", NULL},
    {"user@[192.0.2.1]", NULL},
    {"user@[IPv6:2001:db8::1]", NULL},
    {"a@xn--bcher-kva.example", NULL},
    {"A@EXAMPLE.COM", NULL},
    {"a@sub-domain.example-1.com", NULL},
    /* refused */
    {"", "Illegal address"},
    {"not-an-email", "Missing final '@domain'"},
    {"@x.example", "Missing local name"},
    {"a@", "Missing domain"},
    {"a@b@x.example", "Domain contains illegal character"},
    {"a b@x.example", "Local address contains control or whitespace"},
    {"a\tb@x.example", "Local address contains control or whitespace"},
    {"a\x01@x.example", "Local address contains control or whitespace"},
    {".a@x.example", "Local address starts with dot"},
    {"a.@x.example", "Local address ends with dot"},
    {"a..b@x.example", "Local address contains dot-dot"},
    {"a(b@x.example", "Local address contains illegal character"},
    {"a,b@x.example", "Local address contains illegal character"},
    {"j\xc3\xbcrgen@x.example", "Local address contains illegal character"},
    {"\"j\xc3\xbcrgen\"@x.example", "Local address contains illegal character"},
    {"\"a\rb\"@x.example", "Quoted local address contains CR or LF"},
    {"\"a\tb\"@x.example", "Local address contains control or whitespace"},
    {"\"a\"b@x.example", "Local address contains illegal character"},
    {"a@b\xc3\xbc"
     "cher.example",
     "Domain contains illegal character"},
    {"a@x_y.example", "Domain contains illegal character"},
    {"a@x.example ", "Domain contains control or whitespace"},
    {"a@.x.example", "Domain starts with dot"},
    {"a@x.example.", "Domain ends with dot"},
    {"a@x..example", "Domain contains dot-dot"},
    {"a@[1.2.3.4", "Domain contains illegal character"},
    {"a@[096.@.021]", "Domain contains illegal character"},
    {"a@[1.2 .3.4]", "Domain contains control or whitespace"},
};

/* Destinations as clients name them. */
static const struct addr_case mailbox_cases[] = {
    {"a@x.example", NULL},
    {"  a@x.example\t", NULL},
    {"John Doe <john@x.example>", NULL},
    {"\"Doe, John\" <john@x.example>", NULL},
    {"=?UTF-8?B?SsO8cmdlbg==?= <j@x.example>", NULL},
    {"<a@x.example>", NULL},
    {"", "Illegal address"},
    {"   ", "Illegal address"},
    {"a@x.example, b@x.example", "Illegal address"},
    {"John <not-an-email>", "Missing final '@domain'"},
    {"John <a@b\xc3\xbc"
     "cher.example>",
     "Domain contains illegal character"},
    {"John <a..b@x.example>", "Local address contains dot-dot"},
    {"not-an-email", "Missing final '@domain'"},
    {"a@b\xc3\xbc"
     "cher.example",
     "Domain contains illegal character"},
};

/* Run the n cases through check (addr_check_spec or addr_check_mailbox). */
static void test_table(const char *what, const char *(*check)(const char *, size_t),
                       const struct addr_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *got = check(cases[i].addr, strlen(cases[i].addr));
        const char *want = cases[i].want;
        CHECK(want ? got != NULL && strcmp(got, want) == 0 : got == NULL,
              "%s %zu %s: got %s, want %s", what, i, cases[i].addr, got ? got : "ok",
              want ? want : "ok");
    }
}

/* RFC 5321's limits: 64 for the local part, 255 for the domain, 320 in all. */
static void test_lengths(void)
{
    char a[400];
    memset(a, 'l', 64);
    strcpy(a + 64, "@x.example");
    CHECK(addr_check_spec(a, strlen(a)) == NULL, "64-character local part");
    memset(a, 'l', 65);
    strcpy(a + 65, "@x.example");
    CHECK_STR(addr_check_spec(a, strlen(a)), "Local address is longer than 64 characters",
              "65-character local part");
    /* a 255-character domain: three 63-character labels and dots, then 63 */
    strcpy(a, "l@");
    size_t n = 2;
    for (int k = 0; k < 4; k++) {
        memset(a + n, 'd', 63);
        n += 63;
        a[n++] = '.';
    }
    a[--n] = '\0';
    CHECK(strlen(a) - 2 == 255 && addr_check_spec(a, n) == NULL, "255-character domain");
    a[n++] = 'e';
    a[n] = '\0';
    CHECK_STR(addr_check_spec(a, n), "Domain is longer than 255 characters",
              "256-character domain");
    /* 64 + 1 + 255 = 320 is the most: every part within its own limit */
    memset(a, 'l', 64);
    a[64] = '@';
    memcpy(a + 65, "d", 1);
    n = 66;
    for (int k = 0; k < 4; k++) {
        a[n++] = '.';
        memset(a + n, 'd', 62);
        n += 62;
    }
    a[n] = '\0';
    CHECK(n <= 320 && addr_check_spec(a, n) == NULL, "address of %zu characters", n);
}

int main(void)
{
    test_table("spec", addr_check_spec, spec_cases, sizeof spec_cases / sizeof spec_cases[0]);
    test_table("mailbox", addr_check_mailbox, mailbox_cases,
               sizeof mailbox_cases / sizeof mailbox_cases[0]);
    test_lengths();
    return check_done("test_addr");
}
