/* sentinel: where the Redis master is, asked of Redis Sentinel.
 *
 * A struct sentinel knows the Sentinels ([redis] sentinels), the master's
 * name (sentinel_master) and the Sentinels' password (sentinel_password, a
 * secret: never logged). sentinel_resolve asks them in turn
 * (SENTINEL get-master-addr-by-name), on the event loop, one second each at
 * most; the answer is an address that the caller then checks (ROLE) before
 * writing to it. A subscription to +switch-master on one Sentinel (the next
 * one when it goes away) tells the watchers of a failover as soon as the
 * Sentinels announce it. One struct serves every Redis connection of a
 * process, so that each failover is logged once (redis_failover, the old
 * and the new master).
 */
#ifndef SESGATE_SENTINEL_H
#define SESGATE_SENTINEL_H

#include <stddef.h>

#include <event2/event.h>

struct sentinel;

/* The master is at host:port (err NULL), or no Sentinel named it (host
 * NULL, err a reason naming no password). host is valid during the call. */
typedef void (*sentinel_found_fn)(const char *host, int port, const char *err, void *arg);

/* The Sentinels announced a failover of the master to host:port. */
typedef void (*sentinel_switch_fn)(const char *host, int port, void *arg);

/* Sentinels from list ("host:port,..." as config.c checks it), master
 * the master's name, password "" for none. NULL with a reason in err when
 * list is malformed. Nothing is connected until a resolve or a watch. */
struct sentinel *sentinel_new(struct event_base *base, const char *list, const char *master,
                              const char *password, char *err, size_t errlen);

/* Close every connection and free s (NULL: nothing). Pending resolutions
 * get no callback: their owners cancel them first (sentinel_cancel). */
void sentinel_free(struct sentinel *s);

/* Ask where the master is; cb fires once, later, from the event loop.
 * Requests made while one round of questions is under way share its
 * answer. A caller has at most one request pending (keyed by arg). */
void sentinel_resolve(struct sentinel *s, sentinel_found_fn cb, void *arg);

/* Forget arg's pending request (its callback will not fire). */
void sentinel_cancel(struct sentinel *s, void *arg);

/* Call cb on every +switch-master of the master, until sentinel_unwatch
 * (arg). The subscription starts with the first watcher. */
void sentinel_watch(struct sentinel *s, sentinel_switch_fn cb, void *arg);
void sentinel_unwatch(struct sentinel *s, void *arg);

/* The master's name, for logs. */
const char *sentinel_master(const struct sentinel *s);

/* Blocking, for one-shot tools: ask the Sentinels of list in turn, each
 * within timeout_ms. 0 with the master's host (the caller frees it) and
 * port, or -1 with a reason in err. */
int sentinel_resolve_sync(const char *list, const char *master, const char *password,
                          int timeout_ms, char **host, int *port, char *err, size_t errlen);

#endif
