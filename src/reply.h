/* reply: reading Redis replies (core: no I/O).
 *
 * hiredis hands a reply to a callback and frees it afterwards; these read
 * it in place and never keep a pointer past the caller's use.
 */
#ifndef SESGATE_REPLY_H
#define SESGATE_REPLY_H

#include <hiredis/hiredis.h>

/* The value of field name in a flat field/value array (HGETALL, a stream
 * entry's fields), or NULL when flat is NULL, not an array, or has no such
 * field. The value is flat's. */
const redisReply *reply_field(const redisReply *flat, const char *name);

/* r as a number: an integer, or a string or status that is a whole number
 * in decimal or floating notation; def for anything else (NULL included). */
double reply_num(const redisReply *r, double def);

/* A deep copy of r (strings, integers, arrays; anything else as nil), to
 * keep past a callback; free it with reply_free. */
redisReply *reply_copy(const redisReply *r);

/* Free a reply_copy (NULL: nothing). */
void reply_free(redisReply *r);

#endif
