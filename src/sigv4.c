/* sigv4: AWS Signature Version 4 canonicalization, signing and verification.
 *
 * Everything that grows with the request is written straight into the
 * caller's struct buf (reserved once, then filled through its data pointer),
 * so a verification costs no allocation beyond that buffer except for
 * queries with more parameters than fit the small on-stack pair table.
 */
#include "sigv4.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define SIGV4_TERMINATOR     "aws4_request"
#define SIGV4_SIG_HEX_LEN    64
#define SIGV4_MAX_EXPIRES    604800 /* seconds: AWS caps presigned URLs at 7 days */
#define SIGV4_STACK_PAIRS    32
#define SIGV4_MAX_PARAM_NAME 64 /* longest raw query name we bother decoding */

static const char sigv4_hexdigits[] = "0123456789ABCDEF";

/* One query parameter, encoded, while the canonical query is built. */
struct sigv4_pair {
    size_t name_off; /* offsets into the output buffer until pointers are stable */
    size_t name_len;
    size_t value_off;
    size_t value_len;
    const char *name;
    const char *value;
};

/* The presign parameters sigv4_parse_presigned looks for. */
enum sigv4_qparam {
    SIGV4_Q_ALGORITHM,
    SIGV4_Q_CREDENTIAL,
    SIGV4_Q_DATE,
    SIGV4_Q_SIGNED_HEADERS,
    SIGV4_Q_SIGNATURE,
    SIGV4_Q_EXPIRES,
    SIGV4_Q_COUNT
};

static const char *const sigv4_qparam_names[SIGV4_Q_COUNT] = {
    "X-Amz-Algorithm",     "X-Amz-Credential", "X-Amz-Date",
    "X-Amz-SignedHeaders", "X-Amz-Signature",  "X-Amz-Expires",
};

/* Copy a short reason into err when the caller gave a buffer. */
static void sigv4_set_err(char *err, size_t errlen, const char *msg)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", msg);
}

/* True for the RFC 3986 unreserved characters: A-Z a-z 0-9 - _ . ~ */
static bool sigv4_is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

/* True for a space or a horizontal tab. */
static bool sigv4_is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* ASCII case-insensitive equality of two n-byte regions (NUL bytes included). */
static bool sigv4_ieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y - 'A' + 'a');
        if (x != y)
            return false;
    }
    return true;
}

/* True when the counted string s equals the C string lit exactly. */
static bool sigv4_eq(const char *s, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n == l && memcmp(s, lit, n) == 0;
}

/* Write n bytes of s percent-encoded into dst (room for 3n bytes), leaving
 * unreserved characters, and '/' when keep_slash is set, as they are.
 * Returns the number of bytes written. */
static size_t sigv4_encode(const char *s, size_t n, bool keep_slash, char *dst)
{
    char *d = dst;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (sigv4_is_unreserved(c) || (keep_slash && c == '/')) {
            *d++ = (char)c;
        } else {
            *d++ = '%';
            *d++ = sigv4_hexdigits[c >> 4];
            *d++ = sigv4_hexdigits[c & 15];
        }
    }
    return (size_t)(d - dst);
}

/* Percent-decode s ('+' stays '+') and re-encode it per RFC 3986 into dst
 * (room for 3n bytes). Returns the bytes written, or -1 on a malformed escape. */
static long sigv4_reencode(const char *s, size_t n, char *dst)
{
    char *d = dst;
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (n - i < 3)
                return -1;
            int hi = util_hex_value((unsigned char)s[i + 1]);
            int lo = util_hex_value((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (unsigned char)(hi << 4 | lo);
            i += 3;
        } else {
            i++;
        }
        if (sigv4_is_unreserved(c)) {
            *d++ = (char)c;
        } else {
            *d++ = '%';
            *d++ = sigv4_hexdigits[c >> 4];
            *d++ = sigv4_hexdigits[c & 15];
        }
    }
    return (long)(d - dst);
}

/* Percent-decode s ('+' stays '+') into dst (room for n bytes). Returns the
 * bytes written, or -1 on a malformed escape. */
static long sigv4_decode(const char *s, size_t n, char *dst)
{
    char *d = dst;
    size_t i = 0;
    while (i < n) {
        if (s[i] == '%') {
            if (n - i < 3)
                return -1;
            int hi = util_hex_value((unsigned char)s[i + 1]);
            int lo = util_hex_value((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            *d++ = (char)(hi << 4 | lo);
            i += 3;
        } else {
            *d++ = s[i++];
        }
    }
    return (long)(d - dst);
}

/* Set the buffer's length to len and restore its terminating NUL. */
static void sigv4_truncate(struct buf *b, size_t len)
{
    b->len = len;
    if (b->data != NULL)
        b->data[len] = '\0';
}

/* Split a credential "AKID/date/region/service/aws4_request" into out.
 * Returns SIGV4_OK or SIGV4_ERR_MALFORMED with a reason. */
static int sigv4_parse_credential(const char *s, size_t n, struct sigv4_auth *out, char *err,
                                  size_t errlen)
{
    const char *part[5];
    size_t len[5];
    size_t np = 0;
    const char *p = s, *end = s + n;
    for (;;) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *stop = slash ? slash : end;
        if (np == 5) {
            sigv4_set_err(err, errlen, "credential scope has too many parts");
            return SIGV4_ERR_MALFORMED;
        }
        part[np] = p;
        len[np] = (size_t)(stop - p);
        np++;
        if (slash == NULL)
            break;
        p = slash + 1;
    }
    if (np != 5) {
        sigv4_set_err(err, errlen, "credential scope has too few parts");
        return SIGV4_ERR_MALFORMED;
    }
    if (len[0] == 0) {
        sigv4_set_err(err, errlen, "empty access key id");
        return SIGV4_ERR_MALFORMED;
    }
    bool date_ok = len[1] == 8;
    for (size_t i = 0; date_ok && i < 8; i++)
        date_ok = part[1][i] >= '0' && part[1][i] <= '9';
    if (!date_ok) {
        sigv4_set_err(err, errlen, "credential scope date is not YYYYMMDD");
        return SIGV4_ERR_MALFORMED;
    }
    if (len[2] == 0 || len[3] == 0) {
        sigv4_set_err(err, errlen, "empty region or service in credential scope");
        return SIGV4_ERR_MALFORMED;
    }
    if (!sigv4_eq(part[4], len[4], SIGV4_TERMINATOR)) {
        sigv4_set_err(err, errlen, "credential scope does not end in aws4_request");
        return SIGV4_ERR_MALFORMED;
    }
    out->access_key_id = part[0];
    out->access_key_id_len = len[0];
    out->date = part[1];
    out->date_len = len[1];
    out->region = part[2];
    out->region_len = len[2];
    out->service = part[3];
    out->service_len = len[3];
    return SIGV4_OK;
}

/* True for a lower-case RFC 7230 token character (a header name byte). */
static bool sigv4_is_lower_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* True when s is "a;b;c": non-empty lower-case header names, strictly
 * increasing in byte order (so sorted and without duplicates). */
static bool sigv4_signed_headers_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    const char *prev = NULL;
    size_t prev_len = 0;
    const char *p = s, *end = s + n;
    for (;;) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *stop = semi ? semi : end;
        size_t len = (size_t)(stop - p);
        if (len == 0)
            return false;
        for (size_t i = 0; i < len; i++)
            if (!sigv4_is_lower_tchar((unsigned char)p[i]))
                return false;
        if (prev != NULL) {
            size_t m = prev_len < len ? prev_len : len;
            int c = memcmp(prev, p, m);
            if (c > 0 || (c == 0 && prev_len >= len))
                return false;
        }
        prev = p;
        prev_len = len;
        if (semi == NULL)
            return true;
        p = semi + 1;
    }
}

/* True when s is exactly 64 lower-case hex digits. */
static bool sigv4_signature_ok(const char *s, size_t n)
{
    if (n != SIGV4_SIG_HEX_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* Reset a sigv4_auth to "nothing parsed". */
static void sigv4_auth_clear(struct sigv4_auth *out)
{
    memset(out, 0, sizeof *out);
    out->expires = -1;
}

/* Check the fields common to both forms and store signed headers and
 * signature in out. Returns SIGV4_OK or SIGV4_ERR_MALFORMED. */
static int sigv4_check_fields(const char *sh, size_t sh_len, const char *sig, size_t sig_len,
                              struct sigv4_auth *out, char *err, size_t errlen)
{
    if (!sigv4_signed_headers_ok(sh, sh_len)) {
        sigv4_set_err(err, errlen,
                      "SignedHeaders must be non-empty lower-case names, sorted, no duplicates");
        return SIGV4_ERR_MALFORMED;
    }
    if (!sigv4_signature_ok(sig, sig_len)) {
        sigv4_set_err(err, errlen, "Signature must be 64 lower-case hex digits");
        return SIGV4_ERR_MALFORMED;
    }
    out->signed_headers = sh;
    out->signed_headers_len = sh_len;
    out->signature = sig;
    out->signature_len = sig_len;
    return SIGV4_OK;
}

/* Parse an Authorization header value (see sigv4.h for the accepted form). */
int sigv4_parse_authorization(const char *value, size_t len, struct sigv4_auth *out, char *err,
                              size_t errlen)
{
    enum { F_CREDENTIAL, F_SIGNED_HEADERS, F_SIGNATURE, F_COUNT };
    static const char *const names[F_COUNT] = {"Credential", "SignedHeaders", "Signature"};
    const char *val[F_COUNT] = {NULL, NULL, NULL};
    size_t vlen[F_COUNT] = {0, 0, 0};
    if (value == NULL)
        value = "";
    const char *p = value, *end = value + len;

    sigv4_auth_clear(out);
    while (p < end && sigv4_is_blank(*p))
        p++;
    while (end > p && sigv4_is_blank(end[-1]))
        end--;
    const char *alg = p;
    while (p < end && !sigv4_is_blank(*p))
        p++;
    if (p == alg) {
        sigv4_set_err(err, errlen, "empty Authorization header");
        return SIGV4_ERR_MALFORMED;
    }
    if (!sigv4_eq(alg, (size_t)(p - alg), SIGV4_ALGORITHM)) {
        sigv4_set_err(err, errlen, "unsupported authorization scheme");
        return SIGV4_ERR_ALGORITHM;
    }
    while (p < end && sigv4_is_blank(*p))
        p++;
    if (p == end) {
        sigv4_set_err(err, errlen, "Authorization header has no parameters");
        return SIGV4_ERR_MALFORMED;
    }
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *fend = comma ? comma : end;
        while (fend > p && sigv4_is_blank(fend[-1]))
            fend--;
        const char *eq = memchr(p, '=', (size_t)(fend - p));
        if (eq == NULL) {
            sigv4_set_err(err, errlen, "Authorization parameter is not name=value");
            return SIGV4_ERR_MALFORMED;
        }
        int f = 0;
        while (f < F_COUNT && !sigv4_eq(p, (size_t)(eq - p), names[f]))
            f++;
        if (f == F_COUNT) {
            sigv4_set_err(err, errlen, "unknown Authorization parameter");
            return SIGV4_ERR_MALFORMED;
        }
        if (val[f] != NULL) {
            sigv4_set_err(err, errlen, "repeated Authorization parameter");
            return SIGV4_ERR_MALFORMED;
        }
        val[f] = eq + 1;
        vlen[f] = (size_t)(fend - (eq + 1));
        for (size_t i = 0; i < vlen[f]; i++) {
            unsigned char c = (unsigned char)val[f][i];
            if (c <= ' ' || c == 0x7f) {
                sigv4_set_err(err, errlen, "Authorization parameter contains a space or control");
                return SIGV4_ERR_MALFORMED;
            }
        }
        if (comma == NULL)
            break;
        p = comma + 1;
        while (p < end && sigv4_is_blank(*p))
            p++;
    }
    if (val[F_CREDENTIAL] == NULL) {
        sigv4_set_err(err, errlen, "missing Credential");
        return SIGV4_ERR_MALFORMED;
    }
    if (val[F_SIGNED_HEADERS] == NULL) {
        sigv4_set_err(err, errlen, "missing SignedHeaders");
        return SIGV4_ERR_MALFORMED;
    }
    if (val[F_SIGNATURE] == NULL) {
        sigv4_set_err(err, errlen, "missing Signature");
        return SIGV4_ERR_MALFORMED;
    }
    int rc = sigv4_parse_credential(val[F_CREDENTIAL], vlen[F_CREDENTIAL], out, err, errlen);
    if (rc == SIGV4_OK)
        rc = sigv4_check_fields(val[F_SIGNED_HEADERS], vlen[F_SIGNED_HEADERS], val[F_SIGNATURE],
                                vlen[F_SIGNATURE], out, err, errlen);
    if (rc != SIGV4_OK)
        sigv4_auth_clear(out);
    return rc;
}

/* Which presign parameter the raw query name n is (decoded), or -1. */
static int sigv4_qparam_of(const char *name, size_t n)
{
    char tmp[SIGV4_MAX_PARAM_NAME];
    if (n > sizeof tmp)
        return -1;
    long dn = sigv4_decode(name, n, tmp);
    if (dn < 0)
        return -1;
    for (int i = 0; i < SIGV4_Q_COUNT; i++)
        if (sigv4_eq(tmp, (size_t)dn, sigv4_qparam_names[i]))
            return i;
    return -1;
}

/* Parse X-Amz-Expires: decimal seconds, at most SIGV4_MAX_EXPIRES; -1 if bad. */
static long sigv4_parse_expires(const char *s, size_t n)
{
    long v = 0;
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
        if (v > SIGV4_MAX_EXPIRES)
            return -1;
    }
    return v;
}

/* Parse the X-Amz-* presign parameters of a raw query, decoding into storage. */
int sigv4_parse_presigned(const char *query, size_t len, struct sigv4_auth *out,
                          struct buf *storage, char *err, size_t errlen)
{
    const char *raw[SIGV4_Q_COUNT] = {NULL};
    size_t raw_len[SIGV4_Q_COUNT] = {0};
    size_t off[SIGV4_Q_COUNT] = {0}, dlen[SIGV4_Q_COUNT] = {0};
    const char *p = query, *end = query ? query + len : NULL;

    sigv4_auth_clear(out);
    while (p != NULL && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pend = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pend - p));
        const char *nend = eq ? eq : pend;
        int q = sigv4_qparam_of(p, (size_t)(nend - p));
        if (q >= 0) {
            if (raw[q] != NULL) {
                sigv4_set_err(err, errlen, "repeated presign parameter");
                return SIGV4_ERR_MALFORMED;
            }
            raw[q] = eq ? eq + 1 : pend;
            raw_len[q] = (size_t)(pend - raw[q]);
        }
        p = amp ? amp + 1 : end;
    }
    if (raw[SIGV4_Q_ALGORITHM] == NULL)
        return 1;

    size_t total = 0;
    for (int i = 0; i < SIGV4_Q_COUNT; i++)
        total += raw_len[i];
    buf_reserve(storage, total);
    size_t base = storage->len, w = base;
    for (int i = 0; i < SIGV4_Q_COUNT; i++) {
        if (raw[i] == NULL)
            continue;
        long n = sigv4_decode(raw[i], raw_len[i], storage->data + w);
        if (n < 0) {
            sigv4_truncate(storage, base);
            sigv4_set_err(err, errlen, "malformed percent-encoding in a presign parameter");
            return SIGV4_ERR_MALFORMED;
        }
        off[i] = w;
        dlen[i] = (size_t)n;
        w += (size_t)n;
    }
    sigv4_truncate(storage, w);

    const char *v[SIGV4_Q_COUNT];
    for (int i = 0; i < SIGV4_Q_COUNT; i++)
        v[i] = raw[i] ? storage->data + off[i] : NULL;
    if (!sigv4_eq(v[SIGV4_Q_ALGORITHM], dlen[SIGV4_Q_ALGORITHM], SIGV4_ALGORITHM)) {
        sigv4_set_err(err, errlen, "unsupported X-Amz-Algorithm");
        return SIGV4_ERR_ALGORITHM;
    }
    static const char *const missing[SIGV4_Q_COUNT] = {NULL,
                                                       "missing X-Amz-Credential",
                                                       "missing X-Amz-Date",
                                                       "missing X-Amz-SignedHeaders",
                                                       "missing X-Amz-Signature",
                                                       NULL};
    for (int i = 0; i < SIGV4_Q_COUNT; i++) {
        if (v[i] == NULL && missing[i] != NULL) {
            sigv4_set_err(err, errlen, missing[i]);
            return SIGV4_ERR_MALFORMED;
        }
    }
    int rc =
        sigv4_parse_credential(v[SIGV4_Q_CREDENTIAL], dlen[SIGV4_Q_CREDENTIAL], out, err, errlen);
    if (rc == SIGV4_OK)
        rc = sigv4_check_fields(v[SIGV4_Q_SIGNED_HEADERS], dlen[SIGV4_Q_SIGNED_HEADERS],
                                v[SIGV4_Q_SIGNATURE], dlen[SIGV4_Q_SIGNATURE], out, err, errlen);
    if (rc == SIGV4_OK) {
        time_t t;
        if (util_parse_amz_date(v[SIGV4_Q_DATE], dlen[SIGV4_Q_DATE], &t) < 0) {
            sigv4_set_err(err, errlen, "X-Amz-Date is not YYYYMMDDTHHMMSSZ");
            rc = SIGV4_ERR_MALFORMED;
        } else if (memcmp(v[SIGV4_Q_DATE], out->date, 8) != 0) {
            sigv4_set_err(err, errlen, "credential scope date does not match X-Amz-Date");
            rc = SIGV4_ERR_MALFORMED;
        }
    }
    if (rc == SIGV4_OK && v[SIGV4_Q_EXPIRES] != NULL) {
        out->expires = sigv4_parse_expires(v[SIGV4_Q_EXPIRES], dlen[SIGV4_Q_EXPIRES]);
        if (out->expires < 0) {
            sigv4_set_err(err, errlen, "X-Amz-Expires is not a number of seconds up to 604800");
            rc = SIGV4_ERR_MALFORMED;
        }
    }
    if (rc != SIGV4_OK) {
        sigv4_auth_clear(out);
        return rc;
    }
    out->amz_date = v[SIGV4_Q_DATE];
    out->amz_date_len = dlen[SIGV4_Q_DATE];
    out->presigned = true;
    return SIGV4_OK;
}

/* Append the canonical URI of a raw path, normalized first when asked. */
int sigv4_canonical_uri(const char *path, size_t len, bool normalize, struct buf *out)
{
    if (len == 0) {
        buf_addc(out, '/');
        return SIGV4_OK;
    }
    if (path[0] != '/')
        return SIGV4_ERR_PATH;
    buf_reserve(out, 3 * len);
    char *data = out->data;
    size_t base = out->len;
    if (!normalize) {
        sigv4_truncate(out, base + sigv4_encode(path, len, true, data + base));
        return SIGV4_OK;
    }
    /* Segments go out encoded, so '/' in the output only ever separates
     * them and ".." can pop back to the previous '/'. */
    size_t w = base;
    data[w++] = '/';
    const char *p = path, *end = path + len;
    while (p < end) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *stop = slash ? slash : end;
        size_t n = (size_t)(stop - p);
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            while (w > base + 1 && data[w - 1] != '/')
                w--;
            if (w > base + 1)
                w--;
        } else if (n > 0 && !(n == 1 && p[0] == '.')) {
            if (w > base + 1)
                data[w++] = '/';
            w += sigv4_encode(p, n, false, data + w);
        }
        p = slash ? slash + 1 : end;
    }
    if (end[-1] == '/' && w > base + 1)
        data[w++] = '/';
    sigv4_truncate(out, w);
    return SIGV4_OK;
}

/* Order two encoded pairs by name, then value, in byte order. */
static int sigv4_pair_cmp(const void *a, const void *b)
{
    const struct sigv4_pair *x = a, *y = b;
    size_t m = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, m);
    if (c != 0)
        return c;
    if (x->name_len != y->name_len)
        return x->name_len < y->name_len ? -1 : 1;
    m = x->value_len < y->value_len ? x->value_len : y->value_len;
    c = memcmp(x->value, y->value, m);
    if (c != 0)
        return c;
    if (x->value_len != y->value_len)
        return x->value_len < y->value_len ? -1 : 1;
    return 0;
}

/* Append the canonical query: decoded, re-encoded, sorted by name then value. */
int sigv4_canonical_query(const char *query, size_t len, bool skip_signature, struct buf *out)
{
    if (query == NULL || len == 0)
        return SIGV4_OK;
    size_t maxpairs = 1;
    for (const char *a = query; (a = memchr(a, '&', len - (size_t)(a - query))) != NULL; a++)
        maxpairs++;
    struct sigv4_pair stack_pairs[SIGV4_STACK_PAIRS];
    struct sigv4_pair *pairs = stack_pairs;
    if (maxpairs > SIGV4_STACK_PAIRS)
        pairs = xmalloc(maxpairs * sizeof *pairs);

    /* Encode every name and value into scratch space after out's contents,
     * sort, write the joined result after the scratch, then move it down. */
    size_t base = out->len, w = base, npairs = 0, final_len = 0;
    int rc = SIGV4_OK;
    buf_reserve(out, 3 * len);
    const char *p = query, *end = query + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pend = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pend - p));
        const char *nend = eq ? eq : pend;
        const char *v = eq ? eq + 1 : pend;
        if (pend > p) {
            struct sigv4_pair *pr = &pairs[npairs];
            long nn = sigv4_reencode(p, (size_t)(nend - p), out->data + w);
            long vn = nn < 0 ? -1 : sigv4_reencode(v, (size_t)(pend - v), out->data + w + nn);
            if (nn < 0 || vn < 0) {
                rc = SIGV4_ERR_QUERY;
                break;
            }
            bool skip = skip_signature && sigv4_eq(out->data + w, (size_t)nn, "X-Amz-Signature");
            if (!skip) {
                pr->name_off = w;
                pr->name_len = (size_t)nn;
                pr->value_off = w + (size_t)nn;
                pr->value_len = (size_t)vn;
                w += (size_t)(nn + vn);
                final_len += (size_t)(nn + vn) + (npairs > 0 ? 2 : 1);
                npairs++;
            }
        }
        p = amp ? amp + 1 : end;
    }
    if (rc == SIGV4_OK) {
        size_t scratch = w - base;
        buf_reserve(out, scratch + final_len);
        char *data = out->data;
        for (size_t i = 0; i < npairs; i++) {
            pairs[i].name = data + pairs[i].name_off;
            pairs[i].value = data + pairs[i].value_off;
        }
        qsort(pairs, npairs, sizeof *pairs, sigv4_pair_cmp);
        char *d = data + w;
        for (size_t i = 0; i < npairs; i++) {
            if (i > 0)
                *d++ = '&';
            memcpy(d, pairs[i].name, pairs[i].name_len);
            d += pairs[i].name_len;
            *d++ = '=';
            memcpy(d, pairs[i].value, pairs[i].value_len);
            d += pairs[i].value_len;
        }
        memmove(data + base, data + w, final_len);
        sigv4_truncate(out, base + final_len);
    } else {
        sigv4_truncate(out, base);
    }
    if (pairs != stack_pairs)
        free(pairs);
    return rc;
}

/* Length of the whitespace unit at v[i]: 1 for a space, a tab or the LF of an
 * obs-fold, 2 for the CRLF of an obs-fold, 0 for anything else. */
static size_t sigv4_ws_len(const char *v, size_t n, size_t i)
{
    if (sigv4_is_blank(v[i]))
        return 1;
    if (v[i] == '\n' && i + 1 < n && sigv4_is_blank(v[i + 1]))
        return 1;
    if (v[i] == '\r' && i + 2 < n && v[i + 1] == '\n' && sigv4_is_blank(v[i + 2]))
        return 2;
    return 0;
}

/* Append a header value trimmed, with obs-folds and runs of spaces and tabs
 * collapsed to one space. */
static void sigv4_add_value(struct buf *out, const char *v, size_t n)
{
    buf_reserve(out, n);
    char *start = out->data + out->len, *d = start;
    bool space = false;
    size_t i = 0;
    while (i < n) {
        size_t ws = sigv4_ws_len(v, n, i);
        if (ws > 0) {
            space = true;
            i += ws;
            continue;
        }
        if (space && d != start)
            *d++ = ' ';
        space = false;
        *d++ = v[i++];
    }
    sigv4_truncate(out, out->len + (size_t)(d - start));
}

/* Append the canonical headers block: one "name:values\n" line per name in
 * signed_headers. An empty name matches no header. Returns SIGV4_OK or
 * SIGV4_ERR_MISSING_HEADER. */
static int sigv4_add_headers(const struct sigv4_request *r, const char *sh, size_t sh_len,
                             struct buf *out)
{
    if (sh_len == 0)
        return SIGV4_OK;
    const char *p = sh, *end = sh + sh_len;
    for (;;) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *stop = semi ? semi : end;
        size_t n = (size_t)(stop - p);
        bool found = false;
        buf_add(out, p, n);
        buf_addc(out, ':');
        for (size_t i = 0; i < r->nheaders; i++) {
            const struct sigv4_header *h = &r->headers[i];
            if (n == 0 || h->name_len != n || !sigv4_ieq(h->name, p, n))
                continue;
            if (found)
                buf_addc(out, ',');
            sigv4_add_value(out, h->value, h->value_len);
            found = true;
        }
        if (!found)
            return SIGV4_ERR_MISSING_HEADER;
        buf_addc(out, '\n');
        if (semi == NULL)
            return SIGV4_OK;
        p = semi + 1;
    }
}

/* Append the canonical request of r over the headers in signed_headers. */
int sigv4_canonical_request(const struct sigv4_request *r, const char *signed_headers,
                            size_t signed_headers_len, bool presigned, struct buf *out)
{
    size_t guess = 3 * r->path_len + 4 * r->query_len + 2 * signed_headers_len + 96;
    for (size_t i = 0; i < r->nheaders; i++)
        guess += r->headers[i].value_len + 1;
    buf_reserve(out, guess);
    buf_adds(out, r->method);
    buf_addc(out, '\n');
    int rc = sigv4_canonical_uri(r->path, r->path_len, r->normalize_path, out);
    if (rc != SIGV4_OK)
        return rc;
    buf_addc(out, '\n');
    rc = sigv4_canonical_query(r->query, r->query_len, presigned, out);
    if (rc != SIGV4_OK)
        return rc;
    buf_addc(out, '\n');
    rc = sigv4_add_headers(r, signed_headers, signed_headers_len, out);
    if (rc != SIGV4_OK)
        return rc;
    buf_addc(out, '\n');
    buf_add(out, signed_headers, signed_headers_len);
    buf_addc(out, '\n');
    buf_add(out, r->payload_hash, strnlen(r->payload_hash, UTIL_SHA256_HEX_LEN));
    return SIGV4_OK;
}

/* Append the string to sign from its counted parts; the scope is given as
 * npieces pieces that are concatenated. */
static void sigv4_add_sts(struct buf *out, const char *amz_date, size_t amz_len,
                          const char *const *scope, const size_t *scope_len, size_t npieces,
                          const char *creq, size_t creq_len)
{
    char hash[UTIL_SHA256_HEX_LEN + 1];
    util_sha256_hex(creq, creq_len, hash);
    buf_adds(out, SIGV4_ALGORITHM "\n");
    buf_add(out, amz_date, amz_len);
    buf_addc(out, '\n');
    for (size_t i = 0; i < npieces; i++)
        buf_add(out, scope[i], scope_len[i]);
    buf_addc(out, '\n');
    buf_add(out, hash, UTIL_SHA256_HEX_LEN);
}

/* Append the string to sign for a canonical request. */
void sigv4_string_to_sign(const char *amz_date, const char *scope, const char *creq,
                          size_t creq_len, struct buf *out)
{
    size_t scope_len = strlen(scope);
    sigv4_add_sts(out, amz_date, strlen(amz_date), &scope, &scope_len, 1, creq, creq_len);
}

/* Derive the signing key; intermediate keys are wiped from the stack. */
void sigv4_signing_key(const char *secret, const char *date, const char *region,
                       const char *service, unsigned char key[32])
{
    char stack_k[4 + 128];
    size_t sl = strlen(secret);
    char *k = sl <= sizeof stack_k - 4 ? stack_k : xmalloc(sl + 4);
    unsigned char a[32], b[32];
    memcpy(k, "AWS4", 4);
    memcpy(k + 4, secret, sl);
    util_hmac_sha256(k, sl + 4, date, strlen(date), a);
    util_hmac_sha256(a, 32, region, strlen(region), b);
    util_hmac_sha256(b, 32, service, strlen(service), a);
    util_hmac_sha256(a, 32, SIGV4_TERMINATOR, strlen(SIGV4_TERMINATOR), key);
    explicit_bzero(k, sl + 4);
    explicit_bzero(a, sizeof a);
    explicit_bzero(b, sizeof b);
    if (k != stack_k)
        free(k);
}

/* The signing key from the one-entry cache, deriving and storing it on a miss. */
void sigv4_key_cache_get(struct sigv4_key_cache *c, const char *secret, const char *date,
                         const char *region, const char *service, unsigned char key[32])
{
    if (c->valid && strcmp(c->date, date) == 0 && strcmp(c->region, region) == 0 &&
        strcmp(c->service, service) == 0) {
        memcpy(key, c->key, 32);
        return;
    }
    sigv4_signing_key(secret, date, region, service, key);
    size_t dl = strlen(date), rl = strlen(region), sl = strlen(service);
    c->valid = false;
    if (dl < sizeof c->date && rl < sizeof c->region && sl < sizeof c->service) {
        memcpy(c->date, date, dl + 1);
        memcpy(c->region, region, rl + 1);
        memcpy(c->service, service, sl + 1);
        memcpy(c->key, key, 32);
        c->valid = true;
    }
}

/* Hex HMAC-SHA256 of the string to sign under the signing key. */
void sigv4_signature(const unsigned char key[32], const char *sts, size_t sts_len, char out[65])
{
    unsigned char mac[32];
    util_hmac_sha256(key, 32, sts, sts_len, mac);
    util_hex(mac, sizeof mac, out);
}

/* Sign the canonical request held in b (b->len bytes) and leave b as it was:
 * the string to sign goes after it, temporarily. */
static void sigv4_sign_creq(struct buf *b, const char *amz_date, size_t amz_len,
                            const char *const *scope, const size_t *scope_len, size_t npieces,
                            const unsigned char key[32], char sig[65])
{
    size_t creq_len = b->len;
    sigv4_add_sts(b, amz_date, amz_len, scope, scope_len, npieces, b->data, creq_len);
    sigv4_signature(key, b->data + creq_len, b->len - creq_len, sig);
    sigv4_truncate(b, creq_len);
}

/* Recompute a client's signature and compare it in constant time. */
int sigv4_verify(const struct sigv4_request *r, const struct sigv4_auth *a, const char *amz_date,
                 size_t amz_date_len, const unsigned char key[32], struct buf *creq_out)
{
    struct buf local = BUF_INIT;
    struct buf *b = creq_out ? creq_out : &local;
    if (creq_out != NULL)
        buf_reset(creq_out);
    int rc = sigv4_canonical_request(r, a->signed_headers, a->signed_headers_len, a->presigned, b);
    if (rc == SIGV4_OK) {
        const char *scope[6] = {a->date, "/", a->region, "/", a->service, "/" SIGV4_TERMINATOR};
        const size_t scope_len[6] = {
            a->date_len, 1, a->region_len, 1, a->service_len, 1 + strlen(SIGV4_TERMINATOR)};
        char sig[65];
        sigv4_sign_creq(b, amz_date, amz_date_len, scope, scope_len, 6, key, sig);
        /* The key is derived for the scope date, so the request's own date
         * must fall on that day; the length test keeps reads in bounds. */
        bool same_day = a->date_len == 8 && amz_date_len >= 8 && memcmp(amz_date, a->date, 8) == 0;
        bool ok = a->signature_len == SIGV4_SIG_HEX_LEN &&
                  util_ct_equal(sig, a->signature, SIGV4_SIG_HEX_LEN);
        rc = ok && same_day ? SIGV4_OK : SIGV4_ERR_MISMATCH;
    }
    buf_free(&local);
    return rc;
}

/* Check what sigv4_sign is about to write against what
 * sigv4_parse_authorization and sigv4_verify accept, so that a signature is
 * only ever produced when it can be parsed and verified back unchanged: cred
 * ("AKID/scope", cred_len bytes, the key id akid_len of them) must be one
 * field value (no space, control or comma) splitting into exactly the key id
 * and a valid scope, amz_date must fall on the scope's day, and sh must be a
 * valid SignedHeaders list (a name with a space, a control byte, an upper-case
 * letter, or an empty, unsorted or repeated name is refused).
 * Returns SIGV4_OK or SIGV4_ERR_MALFORMED. */
static int sigv4_sign_check(const char *cred, size_t cred_len, size_t akid_len,
                            const char *amz_date, const char *sh, size_t sh_len)
{
    for (size_t i = 0; i < cred_len; i++) {
        unsigned char c = (unsigned char)cred[i];
        if (c <= ' ' || c == 0x7f || c == ',')
            return SIGV4_ERR_MALFORMED;
    }
    struct sigv4_auth a;
    sigv4_auth_clear(&a);
    if (sigv4_parse_credential(cred, cred_len, &a, NULL, 0) != SIGV4_OK ||
        a.access_key_id_len != akid_len)
        return SIGV4_ERR_MALFORMED;
    if (strnlen(amz_date, 8) < 8 || memcmp(amz_date, a.date, 8) != 0)
        return SIGV4_ERR_MALFORMED;
    if (!sigv4_signed_headers_ok(sh, sh_len))
        return SIGV4_ERR_MALFORMED;
    return SIGV4_OK;
}

/* Sign an outgoing request and append its Authorization header value; on
 * error out is left as it was. */
int sigv4_sign(const struct sigv4_request *r, const char *signed_headers, const char *access_key_id,
               const unsigned char key[32], const char *amz_date, const char *scope,
               struct buf *out)
{
    size_t base = out->len, sh_len = strlen(signed_headers), akid_len = strlen(access_key_id);
    buf_adds(out, SIGV4_ALGORITHM " Credential=");
    size_t cred = out->len;
    buf_add(out, access_key_id, akid_len);
    buf_addc(out, '/');
    buf_adds(out, scope);
    int rc = sigv4_sign_check(out->data + cred, out->len - cred, akid_len, amz_date, signed_headers,
                              sh_len);
    struct buf creq = BUF_INIT;
    if (rc == SIGV4_OK)
        rc = sigv4_canonical_request(r, signed_headers, sh_len, false, &creq);
    if (rc == SIGV4_OK) {
        size_t scope_len = strlen(scope);
        char sig[65];
        sigv4_sign_creq(&creq, amz_date, strlen(amz_date), &scope, &scope_len, 1, key, sig);
        buf_adds(out, ", SignedHeaders=");
        buf_add(out, signed_headers, sh_len);
        buf_adds(out, ", Signature=");
        buf_add(out, sig, SIGV4_SIG_HEX_LEN);
    } else {
        sigv4_truncate(out, base);
    }
    buf_free(&creq);
    return rc;
}
