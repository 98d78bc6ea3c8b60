/* fuzz_redisurl: redisurl_parse on arbitrary text, with the invariants of an
 * accepted url and of a refusal (its reason never holds the password). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "redisurl.h"

/* Abort when cond is false, so that libFuzzer reports the input. */
static void fuzz_redisurl_assert(int cond)
{
    if (!cond)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One parse of s with flags, and its invariants. */
static void fuzz_redisurl_one(const char *s, unsigned flags)
{
    struct redisurl u;
    char err[256] = "";
    if (redisurl_parse(&u, s, flags, err, sizeof err) == 0) {
        fuzz_redisurl_assert(u.where != NULL && (u.host == NULL) != (u.path == NULL));
        fuzz_redisurl_assert(u.host == NULL || ((u.host[0] || (flags & REDISURL_HOST_OPTIONAL)) &&
                                                u.port >= 1 && u.port <= 65535));
        fuzz_redisurl_assert(u.path == NULL || (u.path[0] == '/' && !u.tls));
        fuzz_redisurl_assert(u.db >= 0);
        fuzz_redisurl_assert(u.password == NULL || u.password[0] != '\0');
        /* the server's name for logs: the scheme, and no credentials */
        fuzz_redisurl_assert(strncmp(u.where,
                                     u.path  ? "unix://"
                                     : u.tls ? "rediss://"
                                             : "redis://",
                                     u.path  ? 7
                                     : u.tls ? 9
                                             : 8) == 0);
        fuzz_redisurl_assert(u.path != NULL || strchr(u.where, '@') == NULL);
        redisurl_cleanup(&u);
    } else {
        fuzz_redisurl_assert(err[0] != '\0');
        fuzz_redisurl_assert(u.host == NULL && u.path == NULL && u.user == NULL &&
                             u.password == NULL && u.where == NULL);
    }
}

/* libFuzzer entry point. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = xstrndup((const char *)data, size);
    fuzz_redisurl_one(s, 0);
    fuzz_redisurl_one(s, REDISURL_HOST_OPTIONAL);
    free(s);
    return 0;
}
