/* redisproc: the redis-server sesgate starts and supervises itself when
 * [redis] url is empty.
 *
 * The server lives under <data_dir>/redis/: redis.conf (rewritten at every
 * start), redis.sock (the only way in: no TCP port), redis.log, redis.lock
 * and the append-only files. Persistence is AOF only, fsynced every second,
 * and nothing is ever evicted (queued mail must not vanish).
 *
 * One process at a time is responsible for that server: the one holding
 * redis.lock (flock). It starts redis-server, restarts it when it dies (1 s
 * backoff, doubling to 30 s) and stops it on exit. Another sesgate sharing
 * the data_dir (serve and work started separately) uses the same server and
 * takes over the lock, and the server, when the first one exits. A server
 * left running by a sesgate that crashed is adopted, not restarted.
 */
#ifndef SESGATE_REDISPROC_H
#define SESGATE_REDISPROC_H

#include <stddef.h>

#include <event2/event.h>

struct redisproc;

/* Create data_dir and data_dir/redis (mode 0700) when missing, then start
 * redis-server (found in PATH) on base, or adopt the one already answering
 * on the socket, and wait (at most 10 s) until it answers PING. Blocks the
 * caller while it waits: call before the event loop runs. Returns NULL with
 * a one-line reason in err when it cannot (no redis-server, socket path
 * too long for a unix socket, the server failed to start); nothing is left
 * running then. */
struct redisproc *redisproc_start(struct event_base *base, const char *data_dir, char *err,
                                  size_t errlen);

/* The absolute path of the server's unix socket; valid until redisproc_stop. */
const char *redisproc_socket(const struct redisproc *rp);

/* Stop supervising and free rp (NULL: nothing). A server this process
 * started gets SIGTERM (it flushes its AOF and exits) and up to 5 s, then
 * SIGKILL; an adopted one is left running. Blocks while it waits. */
void redisproc_stop(struct redisproc *rp);

#endif
