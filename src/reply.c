/* reply: field lookup and numbers in Redis replies. */
#include "reply.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"

/* Public: the value of field name in a flat array. */
const redisReply *reply_field(const redisReply *flat, const char *name)
{
    if (flat == NULL || flat->type != REDIS_REPLY_ARRAY)
        return NULL;
    size_t n = strlen(name);
    for (size_t k = 0; k + 1 < flat->elements; k += 2) {
        const redisReply *f = flat->element[k];
        if (f->type == REDIS_REPLY_STRING && f->len == n && memcmp(f->str, name, n) == 0)
            return flat->element[k + 1];
    }
    return NULL;
}

/* Public: a reply as a number. */
double reply_num(const redisReply *r, double def)
{
    if (r == NULL)
        return def;
    if (r->type == REDIS_REPLY_INTEGER)
        return (double)r->integer;
    if ((r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS) || r->len == 0 ||
        r->len > 40)
        return def;
    char tmp[48];
    memcpy(tmp, r->str, r->len);
    tmp[r->len] = '\0';
    char *end;
    double d = strtod(tmp, &end);
    return end != tmp && *end == '\0' ? d : def;
}

/* Public: a deep copy of r. */
redisReply *reply_copy(const redisReply *r)
{
    redisReply *c = xcalloc(1, sizeof *c);
    c->type = r ? r->type : REDIS_REPLY_NIL;
    switch (c->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        c->str = xmalloc(r->len + 1);
        memcpy(c->str, r->str, r->len);
        c->str[r->len] = '\0';
        c->len = r->len;
        break;
    case REDIS_REPLY_INTEGER:
        c->integer = r->integer;
        break;
    case REDIS_REPLY_ARRAY:
        c->elements = r->elements;
        c->element = xcalloc(r->elements + 1, sizeof *c->element);
        for (size_t k = 0; k < r->elements; k++)
            c->element[k] = reply_copy(r->element[k]);
        break;
    default:
        c->type = REDIS_REPLY_NIL;
    }
    return c;
}

/* Public: free a reply_copy. */
void reply_free(redisReply *r)
{
    if (r == NULL)
        return;
    for (size_t k = 0; k < r->elements; k++)
        reply_free(r->element[k]);
    free(r->element);
    free(r->str);
    free(r);
}
