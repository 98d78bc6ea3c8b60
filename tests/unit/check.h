/* check.h: a minimal table-driven test harness for the unit tests.
 *
 * CHECK(cond, fmt, ...) records one assertion; a failed one prints where and
 * why. check_done() prints "<test>: N passed, N failed" and returns the exit
 * status. check_b64() appends the base64 of bytes to a buffer (the decoder
 * under test is util_base64_decode). Every test binary runs under
 * AddressSanitizer and UBSan.
 */
#ifndef SESGATE_CHECK_H
#define SESGATE_CHECK_H

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "buf.h"

static int check_passed, check_failed;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

#define CHECK_STR(got, want, what)                                                                 \
    CHECK(strcmp((got), (want)) == 0, "%s: got \"%s\", want \"%s\"", (what), (got), (want))

/* Print the summary line and return the process exit status. */
static inline int check_done(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, check_passed, check_failed);
    return check_failed ? 1 : 0;
}

/* Append the base64 of the n bytes at s to out (padded, no line breaks). */
static inline void check_b64(const char *s, size_t n, struct buf *out)
{
    buf_reserve(out, (n + 2) / 3 * 4);
    int k =
        EVP_EncodeBlock((unsigned char *)out->data + out->len, (const unsigned char *)s, (int)n);
    out->len += (size_t)k;
    out->data[out->len] = '\0';
}

#endif
