/* redisurl: a [redis] url read into its parts (core: no I/O).
 *
 *   redis://[[user]:password@]host[:port][/db]    (host may be [IPv6]; port 6379)
 *   rediss://[[user]:password@]host[:port][/db]   (the same, over TLS)
 *   unix:///path/to/redis.sock[?db=N]
 *   /path/to/redis.sock
 *
 * The user and password may be percent-encoded. Errors never contain the
 * password.
 *
 * With REDISURL_HOST_OPTIONAL (a Sentinel configuration, where the
 * Sentinels name the master) a TCP url may leave the host empty:
 * redis:///2, redis://user:password@/2; host is then "" and where names no
 * server ("redis:///2").
 */
#ifndef SESGATE_REDISURL_H
#define SESGATE_REDISURL_H

#include <stdbool.h>
#include <stddef.h>

struct redisurl {
    bool tls;       /* rediss:// */
    char *host;     /* TCP host (brackets of an IPv6 host removed; "" only with
                     * REDISURL_HOST_OPTIONAL), NULL for a unix socket */
    int port;       /* TCP port */
    char *path;     /* unix socket path, NULL for TCP */
    char *user;     /* ACL user, NULL for none */
    char *password; /* NULL for none; a secret: never logged */
    int db;
    char *where; /* the server without credentials, for logs: "rediss://host:port/db" */
};

#define REDISURL_HOST_OPTIONAL 1u /* a TCP url's host may be empty */

/* Parse url into u (zeroed first); flags: 0 or REDISURL_HOST_OPTIONAL. 0,
 * or -1 with a reason in err and u left empty. */
int redisurl_parse(struct redisurl *u, const char *url, unsigned flags, char *err, size_t errlen);

/* Free u's strings, wiping the password. */
void redisurl_cleanup(struct redisurl *u);

#endif
