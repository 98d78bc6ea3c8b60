/* redistls: TLS to Redis (rediss://) for hiredis 0.14, which has none.
 *
 * The TLS session runs in this process on libevent (bufferevent_openssl)
 * and hiredis talks plain RESP to it through a private channel:
 *   - the asynchronous connection (redis.c): hiredis 0.14's async API can
 *     only connect to a host or a unix socket path, so each struct redistls
 *     listens on a unix socket in a directory of its own (mode 0700, made
 *     with mkdtemp under $TMPDIR or /tmp) and accepts only this process
 *     (SO_PEERCRED). Each connection hiredis makes there is one TLS
 *     connection to Redis, on the same event base: when either side closes,
 *     the other is closed, so hiredis sees a Redis outage as it would over
 *     TCP and reconnects as usual;
 *   - the blocking connection (redistls_connect_sync): the TCP connect and
 *     the TLS handshake are done before it returns, then a thread of its
 *     own relays between one end of a socketpair (given to redisConnectFd)
 *     and the TLS session, until hiredis closes its end.
 *
 * Every session verifies the server's certificate against the CA file (or
 * the system's CAs) and its name against the host (DNS name with SNI, or
 * IP address), TLS 1.2 at least.
 */
#ifndef SESGATE_REDISTLS_H
#define SESGATE_REDISTLS_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

struct redistls;

/* TLS to host:port (a DNS name or an IP address, without brackets), with
 * the CA certificates of ca_file (NULL or "": the system's), relayed from a
 * private unix socket on base (redistls_path). NULL with a reason in err
 * when the CA file cannot be read or the socket cannot be made. */
struct redistls *redistls_new(struct event_base *base, const char *host, int port,
                              const char *ca_file, char *err, size_t errlen);

/* Close every session and the socket, remove its directory (NULL: nothing). */
void redistls_free(struct redistls *t);

/* The unix socket hiredis connects to. Valid until redistls_free. */
const char *redistls_path(const struct redistls *t);

/* Why the last session closed, for logs ("TLS certificate verify failed:
 * hostname mismatch", "connect: Connection refused", "closed by Redis"),
 * or "" while none has closed since the last accepted connection. */
const char *redistls_reason(const struct redistls *t);

/* True once the newest connection's TLS handshake is done (false while it
 * is under way or when it failed). */
bool redistls_up(const struct redistls *t);

/* A blocking TLS connection to host:port, relayed by a thread of its own:
 * connect and handshake within timeout_ms. Returns the file descriptor for
 * redisConnectFd (closing it, with redisFree, ends the thread), or -1 with
 * a reason in err. Threads still running when the process exits are
 * stopped and joined then. */
int redistls_connect_sync(const char *host, int port, const char *ca_file, int timeout_ms,
                          char *err, size_t errlen);

#endif
