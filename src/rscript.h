/* rscript: sesgate's Redis scripts and the keys they work on.
 *
 * Every script is a file in src/lua, built into the binary. A call runs
 * EVALSHA with the SHA-1 of the script's source and, when Redis answers
 * NOSCRIPT (restarted, flushed, SCRIPT FLUSH), EVAL with the source once.
 * Every key lives under the prefix "<P>:{<P>}:" of the configured prefix P
 * (one hash slot, so one script may touch them all).
 */
#ifndef SESGATE_RSCRIPT_H
#define SESGATE_RSCRIPT_H

#include <stddef.h>

#include "config.h"
#include "redis.h"

/* The scripts (src/lua/<name>.lua; each file states its keys, arguments
 * and reply). */
enum rscript_id {
    RSCRIPT_ENQUEUE = 0,
    RSCRIPT_OUTCOME,
    RSCRIPT_CHECK,
    RSCRIPT_DUE,
    RSCRIPT_LIMIT,
    RSCRIPT_LOAD,
    RSCRIPT_EPOCH,
    RSCRIPT_SHOW,
    RSCRIPT_STATS,
    RSCRIPT_DLQ_RETRY,
    RSCRIPT_DLQ_PURGE,
    RSCRIPT_GATE,
    RSCRIPT_CONTROL,
    RSCRIPT_FILL,
    RSCRIPT_EVENTS,
    RSCRIPT_RELAY_OUTCOME,
    RSCRIPT_RELAY_DUE,
    RSCRIPT_RELAY_RETRY,
    RSCRIPT_SUP,
    RSCRIPT_COUNT
};

/* The error a call still in flight is answered with when its runner is
 * freed. */
#define RSCRIPT_CLOSED "queue closed"

struct rscript;

/* A runner on rd with cfg's key prefix. cfg and rd outlive it. */
struct rscript *rscript_new(const struct config *cfg, struct redis *rd);

/* Release s: every call in flight is answered now with RSCRIPT_CLOSED (and
 * not again). */
void rscript_free(struct rscript *s);

/* Run script id with nkeys keys then the other arguments (argv[0..n-1];
 * lens may be NULL for C strings; both are copied). cb fires exactly once,
 * never inline. */
void rscript_eval(struct rscript *s, enum rscript_id id, int nkeys, int n, const char *const *argv,
                  const size_t *lens, redis_cb cb, void *arg);

/* rscript_eval, but argument give (0 <= give < n) is given, a malloc'ed
 * string of lens[give] bytes (NUL-terminated) that the call owns from now
 * on instead of a copy of argv[give]: a large value is then held once, not
 * twice, while the script is sent (and kept for a NOSCRIPT retry). give -1:
 * rscript_eval. */
void rscript_eval_give(struct rscript *s, enum rscript_id id, int nkeys, int n,
                       const char *const *argv, const size_t *lens, int give, char *given,
                       redis_cb cb, void *arg);

/* The Lua source of script id (static storage). */
const char *rscript_source(enum rscript_id id);

/* The connection s runs on. */
struct redis *rscript_redis(const struct rscript *s);

/* The key prefix "<P>:{<P>}:" of cfg's prefix; the caller frees it. */
char *rscript_prefix(const struct config *cfg);

/* The key prefix plus suffix plus id (id may be NULL); the caller frees it. */
char *rscript_key(const struct rscript *s, const char *suffix, const char *id);

/* rscript_key for a per-account key of upstream (its name): [upstream]
 * ("default", or NULL) keeps the plain key, [upstream.U] gets "u:U:" after
 * the prefix (docs/UPSTREAMS.md). The caller frees it. */
char *rscript_ukey(const struct rscript *s, const char *upstream, const char *suffix,
                   const char *id);

#endif
