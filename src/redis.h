/* redis: sesgate's connection to Redis, on hiredis's asynchronous API and
 * the process's libevent base.
 *
 * The connection is made in the background and made again, with backoff,
 * whenever it drops; one log line marks the start of an outage and one its
 * end, never one per attempt. A PING every second tells whether Redis
 * answers (redis_ready). The password of a URL is never logged: logs name
 * the server by redis_where().
 *
 * Never send a blocking command (XREADGROUP ... BLOCK, BLPOP) on this
 * connection: replies come in order, so it would hold up the health PING and
 * every other caller's replies. Open a second struct redis for those.
 */
#ifndef SESGATE_REDIS_H
#define SESGATE_REDIS_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

struct redis;

/* The outcome of one command. err is NULL on success; otherwise a short
 * reason: the server's error (reply is that error reply), or "redis not
 * connected", "redis not answering" (a health PING and every other command
 * unanswered for 6 s: the server is stopped or stuck; commands already sent
 * keep waiting, new ones fail at once), "redis connection lost", "redis
 * connection closed" (reply is NULL). reply is only valid during the callback: copy what you keep.
 */
typedef void (*redis_cb)(const redisReply *reply, const char *err, void *arg);

/* Parse url and start connecting on base. url is one of
 *   redis://[[user]:password@]host[:port][/db]   (host may be [IPv6]; port 6379)
 *   rediss://[[user]:password@]host[:port][/db]  (TLS: redistls.h)
 *   unix:///path/to/redis.sock[?db=N]
 *   /path/to/redis.sock
 * The user and password may be percent-encoded (AUTH user password, or
 * AUTH password without a user). tls_ca_file (NULL or "": the system's
 * CAs) verifies a rediss:// server; it is an error with another scheme.
 * Returns NULL with a reason in err (which never contains the password)
 * when url is malformed or TLS cannot be set up (CA file unreadable); a
 * server that cannot be reached, or whose certificate is refused, is not
 * an error here (see redis_ready; the reason is logged by redis_down).
 * TCP host names are resolved synchronously (hiredis): prefer addresses.
 * Over TLS the connection is up once Redis answered a PING through it. */
struct redis *redis_new(struct event_base *base, const char *url, const char *tls_ca_file,
                        char *err, size_t errlen);

struct sentinel;

/* redis_new for a master found by Redis Sentinel (sn, which outlives r):
 * url gives only the user, password and database (redis://user:pass@/db,
 * its host ignored; "" for none); it must be redis://: TLS with Sentinel
 * (rediss://, tls_ca_file) is refused. Each connection asks the Sentinels where
 * the master is, checks that the server says it is (ROLE; a replica is
 * refused and the Sentinels asked again), and is made again at once when
 * the Sentinels announce a failover (+switch-master) or the server answers
 * READONLY. */
struct redis *redis_new_sentinel(struct event_base *base, const char *url, const char *tls_ca_file,
                                 struct sentinel *sn, char *err, size_t errlen);

/* Name r's role in its log lines (redis_connected, redis_down, redis_up,
 * redis_replica_refused get role=ROLE), to tell a second connection to the
 * same server from the main one; role is static text. Call it right after
 * redis_new: the first connection attempt starts from the event loop. */
void redis_set_role(struct redis *r, const char *role);

/* Close the connection and free r (NULL: nothing). Every command still
 * pending gets its callback, with err "redis connection closed", before
 * this returns. Never call it from inside a redis callback. */
void redis_free(struct redis *r);

/* True when connected (authenticated, database selected), a PING was
 * answered within the last 5 s and Redis is not stalled (see redis_cb). */
bool redis_ready(const struct redis *r);

/* The server without credentials, for logs: "redis://host:port/db" or
 * "unix:///path". Valid until redis_free. */
const char *redis_where(const struct redis *r);

/* Send a command (hiredis format: %s, %b with a length, %d...). Returns 0
 * when it was sent, -1 when it failed at once (not connected, bad format).
 * Either way cb fires exactly once, later, from the event loop (never from
 * inside redis_command), at the latest during redis_free. */
int redis_command(struct redis *r, redis_cb cb, void *arg, const char *fmt, ...);

/* redis_command with argc binary-safe arguments (argvlen may be NULL for
 * C strings). */
int redis_command_argv(struct redis *r, redis_cb cb, void *arg, int argc, const char **argv,
                       const size_t *argvlen);

/* redis_command with a command already in the protocol's form (cmd[0..len),
 * as redisFormatCommandArgv writes it): hiredis copies it once, into its
 * output buffer, and the caller may free it on return. */
int redis_command_formatted(struct redis *r, redis_cb cb, void *arg, const char *cmd, size_t len);

/* The hiredis context while connected and ready for commands, else NULL;
 * valid until the next return to the event loop. Prefer redis_command. */
redisAsyncContext *redis_ctx(struct redis *r);

/* A blocking connection for one-shot tools (the operator commands): url
 * and tls_ca_file as for redis_new, connect (and the TLS handshake), AUTH
 * and SELECT within timeout_ms each; the context keeps that timeout for
 * commands. NULL with a reason in err (never the password). Free it with
 * redisFree (which also ends a TLS relay's thread). */
redisContext *redis_connect_sync(const char *url, const char *tls_ca_file, int timeout_ms,
                                 char *err, size_t errlen);

/* redis_connect_sync to the master the Sentinels of sentinels ("host:port,...",
 * their password "" for none) name for master; the server must say it is
 * the master (ROLE), else the Sentinels are asked again, up to three
 * times a second apart. url and tls_ca_file as for redis_new_sentinel. */
redisContext *redis_connect_sync_sentinel(const char *url, const char *tls_ca_file,
                                          const char *sentinels, const char *master,
                                          const char *password, int timeout_ms, char *err,
                                          size_t errlen);

#endif
