/* rscript: sesgate's Redis scripts run with EVALSHA, and EVAL with the
 * source after a NOSCRIPT; the key prefix they share. */
#include "rscript.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "buf.h"
#include "lua_scripts.h"
#include "util.h"

static const char *const rscript_sources[RSCRIPT_COUNT] = {
    [RSCRIPT_ENQUEUE] = rscript_lua_enqueue,
    [RSCRIPT_OUTCOME] = rscript_lua_outcome,
    [RSCRIPT_CHECK] = rscript_lua_check,
    [RSCRIPT_DUE] = rscript_lua_due,
    [RSCRIPT_LIMIT] = rscript_lua_limit,
    [RSCRIPT_LOAD] = rscript_lua_load,
    [RSCRIPT_EPOCH] = rscript_lua_epoch,
    [RSCRIPT_SHOW] = rscript_lua_show,
    [RSCRIPT_STATS] = rscript_lua_stats,
    [RSCRIPT_DLQ_RETRY] = rscript_lua_dlq_retry,
    [RSCRIPT_DLQ_PURGE] = rscript_lua_dlq_purge,
    [RSCRIPT_GATE] = rscript_lua_gate,
    [RSCRIPT_CONTROL] = rscript_lua_control,
    [RSCRIPT_FILL] = rscript_lua_fill,
    [RSCRIPT_EVENTS] = rscript_lua_events,
    [RSCRIPT_RELAY_OUTCOME] = rscript_lua_relay_outcome,
    [RSCRIPT_RELAY_DUE] = rscript_lua_relay_due,
    [RSCRIPT_RELAY_RETRY] = rscript_lua_relay_retry,
    [RSCRIPT_SUP] = rscript_lua_sup};

/* One script call in flight: its arguments are kept for the EVAL fallback. */
struct rscript_call {
    struct rscript *s; /* NULL once the runner is gone */
    enum rscript_id script;
    int argc;
    char **argv;
    size_t *lens;
    bool fell_back;
    redis_cb cb; /* NULL once answered early (rscript_free) */
    void *arg;
    struct rscript_call *prev, *next;
};

struct rscript {
    struct redis *rd;
    char *pfx; /* "<P>:{<P>}:" */
    char sha[RSCRIPT_COUNT][2 * SHA_DIGEST_LENGTH + 1];
    struct rscript_call *calls; /* in flight */
};

/* Unlink c from s's list of calls in flight. */
static void rscript_call_unlink(struct rscript_call *c)
{
    if (c->s == NULL)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->s->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/* Release c. */
static void rscript_call_free(struct rscript_call *c)
{
    for (int i = 0; i < c->argc; i++)
        free(c->argv[i]);
    free(c->argv);
    free(c->lens);
    free(c);
}

static void rscript_call_reply(const redisReply *reply, const char *err, void *arg);

/* Send c: EVALSHA, or EVAL with the source after a NOSCRIPT. */
static void rscript_call_send(struct rscript_call *c)
{
    free(c->argv[0]);
    free(c->argv[1]);
    if (c->fell_back) {
        c->argv[0] = xstrdup("EVAL");
        c->argv[1] = xstrdup(rscript_sources[c->script]);
    } else {
        c->argv[0] = xstrdup("EVALSHA");
        c->argv[1] = xstrdup(c->s->sha[c->script]);
    }
    c->lens[0] = strlen(c->argv[0]);
    c->lens[1] = strlen(c->argv[1]);
    redis_command_argv(c->s->rd, rscript_call_reply, c, c->argc, (const char **)c->argv, c->lens);
}

/* The answer to a script call. */
static void rscript_call_reply(const redisReply *reply, const char *err, void *arg)
{
    struct rscript_call *c = arg;
    if (c->s && !c->fell_back && err && strncmp(err, "NOSCRIPT", 8) == 0) {
        c->fell_back = true;
        rscript_call_send(c);
        return;
    }
    rscript_call_unlink(c);
    if (c->cb)
        c->cb(reply, err, c->arg);
    rscript_call_free(c);
}

/* Public: run script with nkeys keys then the other arguments. */
void rscript_eval(struct rscript *s, enum rscript_id script, int nkeys, int n,
                  const char *const *argv, const size_t *lens, redis_cb cb, void *arg)
{
    rscript_eval_give(s, script, nkeys, n, argv, lens, -1, NULL, cb, arg);
}

/* Public: rscript_eval, argument give handed over rather than copied. */
void rscript_eval_give(struct rscript *s, enum rscript_id script, int nkeys, int n,
                       const char *const *argv, const size_t *lens, int give, char *given,
                       redis_cb cb, void *arg)
{
    struct rscript_call *c = xcalloc(1, sizeof *c);
    c->s = s;
    c->script = script;
    c->argc = n + 3;
    c->argv = xcalloc((size_t)c->argc, sizeof *c->argv);
    c->lens = xcalloc((size_t)c->argc, sizeof *c->lens);
    char nk[16];
    snprintf(nk, sizeof nk, "%d", nkeys);
    c->argv[2] = xstrdup(nk);
    c->lens[2] = strlen(nk);
    for (int i = 0; i < n; i++) {
        size_t len = lens ? lens[i] : strlen(i == give ? given : argv[i]);
        c->argv[3 + i] = i == give ? given : xstrndup(argv[i], len);
        c->lens[3 + i] = len;
    }
    c->cb = cb;
    c->arg = arg;
    c->next = s->calls;
    if (s->calls)
        s->calls->prev = c;
    s->calls = c;
    if (give < 0) {
        rscript_call_send(c);
        return;
    }
    /* A large argument: EVAL with the source (no NOSCRIPT, so nothing is
     * sent again), formatted here so that the argument can go before hiredis
     * copies the command into its output buffer. */
    c->fell_back = true;
    c->argv[0] = xstrdup("EVAL");
    c->argv[1] = xstrdup(rscript_sources[c->script]);
    c->lens[0] = 4;
    c->lens[1] = strlen(c->argv[1]);
    char *cmd = NULL;
    long long len = redisFormatCommandArgv(&cmd, c->argc, (const char **)c->argv, c->lens);
    free(c->argv[3 + give]);
    c->argv[3 + give] = NULL;
    c->lens[3 + give] = 0;
    if (len < 0 || cmd == NULL)
        abort(); /* out of memory: the OOM policy (buf.h) */
    redis_command_formatted(s->rd, rscript_call_reply, c, cmd, (size_t)len);
    redisFreeCommand(cmd);
}

/* Public: a runner on rd. */
struct rscript *rscript_new(const struct config *cfg, struct redis *rd)
{
    struct rscript *s = xcalloc(1, sizeof *s);
    s->rd = rd;
    s->pfx = rscript_prefix(cfg);
    for (int i = 0; i < RSCRIPT_COUNT; i++) {
        unsigned char md[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)rscript_sources[i], strlen(rscript_sources[i]), md);
        util_hex(md, sizeof md, s->sha[i]);
    }
    return s;
}

/* Public: release s; calls in flight are answered with an error now. */
void rscript_free(struct rscript *s)
{
    if (s == NULL)
        return;
    while (s->calls) {
        struct rscript_call *c = s->calls;
        rscript_call_unlink(c);
        c->s = NULL;
        redis_cb cb = c->cb;
        c->cb = NULL;
        if (cb)
            cb(NULL, RSCRIPT_CLOSED, c->arg);
    }
    free(s->pfx);
    free(s);
}

/* Public: the source of script id. */
const char *rscript_source(enum rscript_id id)
{
    return rscript_sources[id];
}

/* Public: the connection. */
struct redis *rscript_redis(const struct rscript *s)
{
    return s->rd;
}

/* Public: the key prefix of cfg. */
char *rscript_prefix(const struct config *cfg)
{
    struct buf b = BUF_INIT;
    buf_printf(&b, "%s:{%s}:", cfg->prefix, cfg->prefix);
    return buf_detach(&b, NULL);
}

/* Public: a key under s's prefix. */
char *rscript_key(const struct rscript *s, const char *suffix, const char *id)
{
    struct buf b = BUF_INIT;
    buf_printf(&b, "%s%s%s", s->pfx, suffix, id ? id : "");
    return buf_detach(&b, NULL);
}

/* Public: a per-account key of an upstream. */
char *rscript_ukey(const struct rscript *s, const char *upstream, const char *suffix,
                   const char *id)
{
    struct buf b = BUF_INIT;
    buf_printf(&b, "%s", s->pfx);
    if (upstream && upstream[0] && strcmp(upstream, "default") != 0)
        buf_printf(&b, "u:%s:", upstream);
    buf_printf(&b, "%s%s", suffix, id ? id : "");
    return buf_detach(&b, NULL);
}
