/* check.h: a minimal table-driven test harness for the unit tests.
 *
 * CHECK(cond, fmt, ...) records one assertion; a failed one prints where and
 * why. check_done() prints "<test>: N passed, N failed" and returns the exit
 * status. Every test binary runs under AddressSanitizer and UBSan.
 */
#ifndef SESGATE_CHECK_H
#define SESGATE_CHECK_H

#include <stdio.h>
#include <string.h>

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

#endif
