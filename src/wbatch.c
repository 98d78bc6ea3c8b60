/* wbatch: the batches a worker has loaded, and the cache that keeps them. */
#include "wbatch.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "bulk.h"

/* A string element of a reply, or NULL. */
static const redisReply *wbatch_str(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_STRING ? r : NULL;
}

bool wbatch_reply_ok(const redisReply *reply)
{
    return reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 8 &&
           wbatch_str(reply->element[0]) && wbatch_str(reply->element[1]);
}

const char *wbatch_reply_id(const redisReply *reply)
{
    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 8 &&
        wbatch_str(reply->element[0]))
        return reply->element[0]->str;
    return NULL;
}

/* Parse the riders lines ("c:addr" / "b:addr") of a batch into b. */
static void wbatch_parse_riders(struct wbatch *b, const char *s, size_t n)
{
    size_t lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += s[i] == '\n';
    b->riders = xcalloc(lines + 1, sizeof *b->riders);
    const char *p = s, *end = s + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        if (e - p > 2 && p[1] == ':') {
            struct fanout_rcpt *r = &b->riders[b->nriders++];
            r->kind = p[0] == 'b' ? FANOUT_BCC : FANOUT_CC;
            r->addr = xstrndup(p + 2, (size_t)(e - p - 2));
        }
        p = nl ? nl + 1 : end;
    }
}

struct wbatch *wbatch_new(const char *n, const redisReply *reply)
{
    const redisReply *r = wbatch_str(reply->element[2]), *api = wbatch_str(reply->element[3]);
    const redisReply *flags = wbatch_str(reply->element[4]);
    const redisReply *action = wbatch_str(reply->element[5]);
    const redisReply *client = wbatch_str(reply->element[6]);
    struct wbatch *b = xcalloc(1, sizeof *b);
    b->refs = 1;
    b->n = xstrdup(n);
    b->id = xstrndup(reply->element[0]->str, reply->element[0]->len);
    if (r)
        wbatch_parse_riders(b, r->str, r->len);
    b->api = api && strcmp(api->str, "2") == 0 ? 2 : 1;
    if (flags) {
        b->raw = strstr(flags->str, "raw") != NULL;
        b->dkim = strstr(flags->str, "dkim") != NULL;
    }
    if (copybody_batch_init(&b->body, b->api == 2 ? SESREQ_V2 : SESREQ_V1, b->raw, b->dkim,
                            reply->element[1]->str, reply->element[1]->len, &b->body_err) < 0 &&
        b->body_err.code == SESERR_NONE)
        seserr_set(&b->body_err, SESERR_INTERNAL, "The template could not be read.");
    const redisReply *state = wbatch_str(reply->element[7]);
    b->state = state ? wbatch_state_of(state->str, state->len) : WBATCH_RUNNING;
    b->action = xstrdup(action ? action->str : "");
    b->bulk = bulk_action(b->action);
    b->client = xstrdup(client ? client->str : "");
    return b;
}

enum wbatch_state wbatch_state_of(const char *s, size_t len)
{
    if (len == 6 && memcmp(s, "paused", 6) == 0)
        return WBATCH_PAUSED;
    if (len == 9 && memcmp(s, "cancelled", 9) == 0)
        return WBATCH_CANCELLED;
    return WBATCH_RUNNING;
}

void wbatch_unref(struct wbatch *b)
{
    if (b == NULL || --b->refs > 0)
        return;
    free(b->n);
    free(b->id);
    free(b->client);
    free(b->action);
    copybody_batch_cleanup(&b->body);
    for (size_t i = 0; i < b->nriders; i++)
        free(b->riders[i].addr);
    free(b->riders);
    free(b);
}

struct wbatch *wbatch_cache_get(struct wbatch_cache *c, const char *n)
{
    for (int i = 0; i < WBATCH_CACHE; i++)
        if (c->slot[i] && strcmp(c->slot[i]->n, n) == 0) {
            c->slot[i]->used = ++c->stamp;
            return c->slot[i];
        }
    return NULL;
}

void wbatch_cache_drop(struct wbatch_cache *c, const char *n)
{
    for (int i = 0; i < WBATCH_CACHE; i++)
        if (c->slot[i] && strcmp(c->slot[i]->n, n) == 0) {
            wbatch_unref(c->slot[i]);
            c->slot[i] = NULL;
        }
}

/* The memory a batch holds for its copies. */
static size_t wbatch_bytes(const struct wbatch *b)
{
    return b->body.msg.len + b->body.pre_len + b->body.post_len;
}

/* Forget the least recently used batches no copy uses while the cache holds
 * more than WBATCH_CACHE_BYTES (keep, the newest, stays). */
static void wbatch_cache_trim(struct wbatch_cache *c, const struct wbatch *keep)
{
    for (;;) {
        size_t total = 0;
        int lru = -1;
        for (int i = 0; i < WBATCH_CACHE; i++) {
            struct wbatch *b = c->slot[i];
            if (b == NULL)
                continue;
            total += wbatch_bytes(b);
            if (b != keep && b->refs == 1 && (lru < 0 || b->used < c->slot[lru]->used))
                lru = i;
        }
        if (total <= WBATCH_CACHE_BYTES || lru < 0)
            return;
        wbatch_unref(c->slot[lru]);
        c->slot[lru] = NULL;
    }
}

void wbatch_cache_put(struct wbatch_cache *c, struct wbatch *b)
{
    int slot = 0;
    for (int i = 0; i < WBATCH_CACHE; i++) {
        if (c->slot[i] == NULL) {
            slot = i;
            break;
        }
        if (c->slot[i]->used < c->slot[slot]->used)
            slot = i;
    }
    wbatch_unref(c->slot[slot]);
    b->refs++;
    b->used = ++c->stamp;
    c->slot[slot] = b;
    wbatch_cache_trim(c, b);
}

void wbatch_cache_clear(struct wbatch_cache *c)
{
    for (int i = 0; i < WBATCH_CACHE; i++) {
        wbatch_unref(c->slot[i]);
        c->slot[i] = NULL;
    }
}
