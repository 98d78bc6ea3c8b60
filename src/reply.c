/* reply: field lookup and numbers in Redis replies. */
#include "reply.h"

#include <stdlib.h>
#include <string.h>

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
