/* sesans: the parts of an SES answer sesgate reads (core: no I/O).
 *
 * The upstream's answer is relayed byte for byte; these read only what the
 * queue, the front and the worker decide on. The errors sesgate writes
 * itself are seserr's.
 */
#ifndef SESGATE_SESANS_H
#define SESGATE_SESANS_H

#include <stdbool.h>
#include <stddef.h>

/* The MessageId in an SES send answer (v1 XML or v2 JSON; api 1 or 2) of
 * body (n bytes) into out (truncated to outlen); false when there is none. */
bool sesans_message_id(int api, const char *body, size_t n, char *out, size_t outlen);

/* The error code (v2: error_type, the x-amzn-ErrorType header, else
 * __type; v1: <Code>) and message of an SES error answer on api (1 or 2)
 * with body (n bytes; NULL: empty); "" when absent. */
void sesans_error(int api, const char *error_type, const char *body, size_t n, char *code,
                  size_t codelen, char *message, size_t msglen);

#endif
