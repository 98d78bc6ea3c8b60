/* form: application/x-www-form-urlencoded decoding and RFC 3986 encoding.
 *
 * The decoder is strict, since what it accepts is re-signed and forwarded:
 * malformed percent-encoding, a repeated parameter name, invalid UTF-8 in a
 * name or value, or more than max_params parameters are errors. Both '+' and
 * "%20" decode to a space (botocore sends the first, the JS SDK the second).
 */
#ifndef SESGATE_FORM_H
#define SESGATE_FORM_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

enum form_err {
    FORM_OK = 0,
    FORM_ERR_ENCODING = -1,  /* '%' not followed by two hex digits */
    FORM_ERR_DUPLICATE = -2, /* the same name twice */
    FORM_ERR_UTF8 = -3,      /* a decoded name or value is not UTF-8 */
    FORM_ERR_TOO_MANY = -4,  /* more than max_params parameters */
    FORM_ERR_EMPTY_NAME = -5 /* "=value" or "&&" with a value */
};

struct form_param {
    char *name; /* decoded, NUL-terminated; owned by the form */
    size_t name_len;
    char *value; /* decoded, NUL-terminated (may contain NULs: use value_len) */
    size_t value_len;
};

struct form {
    struct form_param *params; /* in input order; owned */
    size_t n;
};

/* Decode s into out (which the caller zero-initializes). Empty pieces between
 * '&' are skipped; a name without '=' has an empty value. On error, out is
 * left empty and err holds a short reason naming the parameter (err may be
 * NULL). Returns FORM_OK or a negative enum form_err. */
int form_parse(const char *s, size_t len, size_t max_params, struct form *out, char *err,
               size_t errlen);

/* The value of parameter name, or NULL; *len gets its length when not NULL. */
const char *form_get(const struct form *f, const char *name, size_t *len);

/* Release everything form_parse allocated; f is empty afterwards. */
void form_free(struct form *f);

/* Append s percent-encoded per RFC 3986 (unreserved A-Z a-z 0-9 - _ . ~ kept,
 * everything else %XX, space as %20). */
void form_encode(const char *s, size_t len, struct buf *out);

/* Decode percent-encoding of s into out (no '+' translation when plus_space
 * is false). Returns 0, or -1 on malformed encoding (out then undefined). */
int form_decode(const char *s, size_t len, bool plus_space, struct buf *out);

#endif
