/* wbatch: the batches a worker has loaded, and the cache that keeps them.
 *
 * A wbatch is what every copy of one batch needs: the batch's identity, its
 * riders (copy 0's Cc and Bcc), and its template split by copybody, which
 * holds the message once. Copies in flight hold a reference; the cache holds
 * one more for at most WBATCH_CACHE batches, and lets go of the least
 * recently used ones no copy uses once their messages pass
 * WBATCH_CACHE_BYTES, so a large message is held while its copies are sent,
 * not after. */
#ifndef SESGATE_WBATCH_H
#define SESGATE_WBATCH_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "copybody.h"
#include "fanout.h"
#include "seserr.h"

#define WBATCH_CACHE       8           /* batches kept */
#define WBATCH_CACHE_BYTES (32u << 20) /* and their bytes, beyond those in use */

/* A batch's state as the worker last learnt it (load.lua, gate.lua). */
enum wbatch_state {
    WBATCH_RUNNING = 0,
    WBATCH_PAUSED,
    WBATCH_CANCELLED,
};

struct wbatch {
    char *n;  /* its number: the b of its stream entries */
    char *id; /* the batch id */
    char *client;
    int refs;
    uint64_t used; /* LRU stamp */
    int api;       /* 1 or 2 */
    char *action;
    bool raw, dkim;
    bool bulk; /* SES's bulk call: a copy is one destination (bulk.h) */
    /* Paused or cancelled: its copies go to gate.lua at once, without a
     * reservation of the rate (gate.lua decides; this only saves the rate). */
    enum wbatch_state state;
    struct copybody_batch body; /* what every copy shares: its message held once */
    struct seserr body_err;     /* body_err.code set: the template is not one */
    struct fanout_rcpt *riders;
    size_t nriders;
};

struct wbatch_cache {
    struct wbatch *slot[WBATCH_CACHE];
    uint64_t stamp;
};

/* True when reply is load.lua's answer for a batch that exists:
 * {id, template, riders, api, flags, action, client, state}. */
bool wbatch_reply_ok(const redisReply *reply);

/* The batch id of a load.lua answer whose template is gone (the batch is
 * known), or NULL. */
const char *wbatch_reply_id(const redisReply *reply);

/* A batch (one reference) from number n and a reply wbatch_reply_ok
 * accepted. A template copybody cannot read is kept as body_err. */
struct wbatch *wbatch_new(const char *n, const redisReply *reply);

/* Drop a reference; the last one frees b. NULL is ignored. */
void wbatch_unref(struct wbatch *b);

/* The cached batch of number n (its LRU stamp renewed), or NULL. */
struct wbatch *wbatch_cache_get(struct wbatch_cache *c, const char *n);

/* Keep b (a reference of the cache's own), evicting by count and bytes. */
void wbatch_cache_put(struct wbatch_cache *c, struct wbatch *b);

/* Forget the cached batch of number n. */
void wbatch_cache_drop(struct wbatch_cache *c, const char *n);

/* The state named s ("running", "paused", "cancelled"; anything else:
 * running). */
enum wbatch_state wbatch_state_of(const char *s, size_t len);

/* Forget every cached batch. */
void wbatch_cache_clear(struct wbatch_cache *c);

#endif
