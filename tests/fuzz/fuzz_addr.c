/* fuzz_addr: the SES address check on arbitrary input.
 *
 * The first byte picks addr_check_spec (even) or addr_check_mailbox (odd);
 * the rest is the address. An accepted addr-spec must be what SES takes:
 * 7-bit, no control character outside a quoted local part, an '@' with text
 * on both sides, within RFC 5321's 320 characters. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

/* Abort when cond is false, so that libFuzzer reports the input. */
static void fuzz_addr_assert(int cond)
{
    if (!cond)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* libFuzzer entry point. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    if (data[0] % 2) {
        const char *why = addr_check_mailbox(s, n);
        fuzz_addr_assert(why == NULL || why[0] != '\0');
        return 0;
    }
    const char *why = addr_check_spec(s, n);
    if (why != NULL) {
        fuzz_addr_assert(why[0] != '\0');
        return 0;
    }
    fuzz_addr_assert(n >= 3 && n <= ADDR_MAX_TOTAL);
    const char *at = memchr(s, '@', n);
    fuzz_addr_assert(at != NULL && at != s && at != s + n - 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        fuzz_addr_assert(c < 0x80 && c != '\r' && c != '\n' && c != '\0');
    }
    /* the domain is the text after the last '@' (a quoted local part may
     * hold one); it is never empty and never starts or ends with a dot */
    const char *dom = at;
    for (const char *p = at; p != NULL; p = memchr(p + 1, '@', (size_t)(s + n - p - 1)))
        dom = p + 1;
    size_t dlen = (size_t)(s + n - dom);
    fuzz_addr_assert(dlen > 0 && dlen <= ADDR_MAX_DOMAIN);
    if (dom[0] != '[')
        fuzz_addr_assert(dom[0] != '.' && dom[dlen - 1] != '.');
    return 0;
}
