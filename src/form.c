/* form: application/x-www-form-urlencoded decoding and RFC 3986 encoding. */
#include "form.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Longest piece of a parameter name quoted in an error reason. */
#define FORM_ERR_NAME_MAX 64

/* Decode s[0..len) into dst (room for len bytes); returns the decoded length
 * or -1 on malformed percent-encoding. */
static ptrdiff_t form_decode_into(const char *s, size_t len, bool plus_space, char *dst)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (len - i < 3)
                return -1;
            int hi = util_hex_value((unsigned char)s[i + 1]);
            int lo = util_hex_value((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            dst[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus_space) {
            dst[o++] = ' ';
        } else {
            dst[o++] = (char)c;
        }
    }
    return (ptrdiff_t)o;
}

/* Percent-decode s into out; see form.h. */
int form_decode(const char *s, size_t len, bool plus_space, struct buf *out)
{
    buf_reserve(out, len);
    ptrdiff_t n = form_decode_into(s, len, plus_space, out->data + out->len);
    if (n < 0)
        return -1;
    out->len += (size_t)n;
    out->data[out->len] = '\0';
    return 0;
}

/* Decode a name or value into a fresh NUL-terminated allocation; NULL on
 * malformed percent-encoding. */
static char *form_decode_dup(const char *s, size_t len, size_t *outlen)
{
    char *d = xmalloc(len + 1);
    ptrdiff_t n = form_decode_into(s, len, true, d);
    if (n < 0) {
        free(d);
        return NULL;
    }
    d[n] = '\0';
    *outlen = (size_t)n;
    return d;
}

/* Write an error reason quoting the raw (undecoded) name, non-printable bytes
 * shown as '?', so that the reason is always safe ASCII. */
static void form_set_err(char *err, size_t errlen, const char *before, const char *name,
                         size_t name_len, const char *after)
{
    if (err == NULL || errlen == 0)
        return;
    char q[FORM_ERR_NAME_MAX + 4];
    size_t n = name_len > FORM_ERR_NAME_MAX ? FORM_ERR_NAME_MAX : name_len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        q[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (n < name_len) {
        memcpy(q + n, "...", 3);
        n += 3;
    }
    q[n] = '\0';
    snprintf(err, errlen, "%s'%s'%s", before, q, after);
}

/* Order two parameters by name (bytes, then length) for duplicate detection. */
static int form_cmp_name(const void *a, const void *b)
{
    const struct form_param *pa = *(const struct form_param *const *)a;
    const struct form_param *pb = *(const struct form_param *const *)b;
    size_t n = pa->name_len < pb->name_len ? pa->name_len : pb->name_len;
    int c = memcmp(pa->name, pb->name, n);
    if (c != 0)
        return c;
    return (pa->name_len > pb->name_len) - (pa->name_len < pb->name_len);
}

/* Find a repeated name among f's parameters; returns it or NULL. */
static const struct form_param *form_find_duplicate(const struct form *f)
{
    if (f->n < 2)
        return NULL;
    const struct form_param **v = xmalloc(f->n * sizeof *v);
    for (size_t i = 0; i < f->n; i++)
        v[i] = &f->params[i];
    qsort(v, f->n, sizeof *v, form_cmp_name);
    const struct form_param *dup = NULL;
    for (size_t i = 1; i < f->n && dup == NULL; i++)
        if (form_cmp_name(&v[i - 1], &v[i]) == 0)
            dup = v[i];
    free(v);
    return dup;
}

/* Decode one "name[=value]" piece and append it to out; returns FORM_OK or an
 * error (with err set). */
static int form_add_piece(const char *p, size_t plen, struct form *out, size_t *cap, char *err,
                          size_t errlen)
{
    const char *eq = memchr(p, '=', plen);
    size_t nlen = eq ? (size_t)(eq - p) : plen;
    const char *v = eq ? eq + 1 : p + plen;
    size_t vlen = eq ? plen - nlen - 1 : 0;

    if (nlen == 0) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "Empty parameter name");
        return FORM_ERR_EMPTY_NAME;
    }
    struct form_param fp;
    fp.name = form_decode_dup(p, nlen, &fp.name_len);
    if (fp.name == NULL) {
        form_set_err(err, errlen, "Malformed percent-encoding in parameter name ", p, nlen, "");
        return FORM_ERR_ENCODING;
    }
    fp.value = form_decode_dup(v, vlen, &fp.value_len);
    if (fp.value == NULL) {
        free(fp.name);
        form_set_err(err, errlen, "Malformed percent-encoding in the value of parameter ", p, nlen,
                     "");
        return FORM_ERR_ENCODING;
    }
    /* A NUL inside a name would make it compare equal, as a C string, to
     * another name: refuse it. */
    if (memchr(fp.name, '\0', fp.name_len) != NULL) {
        free(fp.name);
        free(fp.value);
        form_set_err(err, errlen, "NUL byte in parameter name ", p, nlen, "");
        return FORM_ERR_ENCODING;
    }
    if (!util_utf8_valid(fp.name, fp.name_len) || !util_utf8_valid(fp.value, fp.value_len)) {
        free(fp.name);
        free(fp.value);
        form_set_err(err, errlen, "Invalid UTF-8 in parameter ", p, nlen, "");
        return FORM_ERR_UTF8;
    }
    if (out->n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        out->params = xrealloc(out->params, *cap * sizeof *out->params);
    }
    out->params[out->n++] = fp;
    return FORM_OK;
}

/* Split s on '&', decode each piece and check the whole form; see form.h. */
int form_parse(const char *s, size_t len, size_t max_params, struct form *out, char *err,
               size_t errlen)
{
    size_t cap = 0;
    int rc = FORM_OK;
    out->params = NULL;
    out->n = 0;
    if (err != NULL && errlen > 0)
        err[0] = '\0';

    size_t i = 0;
    while (i < len && rc == FORM_OK) {
        const char *amp = memchr(s + i, '&', len - i);
        size_t end = amp ? (size_t)(amp - s) : len;
        if (end > i) {
            if (out->n >= max_params) {
                if (err != NULL && errlen > 0)
                    snprintf(err, errlen, "Too many parameters (more than %zu)", max_params);
                rc = FORM_ERR_TOO_MANY;
                break;
            }
            rc = form_add_piece(s + i, end - i, out, &cap, err, errlen);
        }
        i = end + 1;
    }
    if (rc == FORM_OK) {
        const struct form_param *dup = form_find_duplicate(out);
        if (dup != NULL) {
            form_set_err(err, errlen, "Parameter ", dup->name, dup->name_len,
                         " appears more than once");
            rc = FORM_ERR_DUPLICATE;
        }
    }
    if (rc != FORM_OK)
        form_free(out);
    return rc;
}

/* Linear lookup of the first parameter named exactly name. */
const char *form_get(const struct form *f, const char *name, size_t *len)
{
    size_t nlen = strlen(name);
    for (size_t i = 0; i < f->n; i++) {
        const struct form_param *p = &f->params[i];
        if (p->name_len == nlen && memcmp(p->name, name, nlen) == 0) {
            if (len != NULL)
                *len = p->value_len;
            return p->value;
        }
    }
    return NULL;
}

/* Free every name, value and the array. */
void form_free(struct form *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->params[i].name);
        free(f->params[i].value);
    }
    free(f->params);
    f->params = NULL;
    f->n = 0;
}

/* Append s with everything but RFC 3986 unreserved characters as %XX. */
void form_encode(const char *s, size_t len, struct buf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    buf_reserve(out, len);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            buf_addc(out, (char)c);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            buf_add(out, e, 3);
        }
    }
}
