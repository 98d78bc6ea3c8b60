/* fuzz_sigv4: the SigV4 parsers and canonicalization on arbitrary input.
 *
 * The input is split on '|' into fields:
 *   flags | method | path | query | Authorization | SignedHeaders | header...
 * where flags is one byte (bit 0: normalize the path, bit 1: presigned
 * canonical request, bit 2: skip X-Amz-Signature in the canonical query) and
 * each header is "name:value". The Authorization field, up to its first NUL,
 * is also the access key id of a second signing. Every field is copied into a
 * heap block of its exact size so that a read past it is caught. The checks
 * below are invariants that hold for any input; a failure aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "sigv4.h"
#include "util.h"

#define FUZZ_SEP         '|'
#define FUZZ_MAX_HEADERS 16
#define FUZZ_AMZ_DATE    "20150830T123600Z"
#define FUZZ_SCOPE       "20150830/us-east-1/ses/aws4_request"
#define FUZZ_EMPTY_HASH  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One input field: an exact-size heap copy (never NUL-terminated). */
struct fuzz_field {
    char *p;
    size_t n;
};

/* Abort with a message when an invariant does not hold. */
static void fuzz_assert(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_sigv4: invariant violated: %s\n", what);
        abort();
    }
}

/* True for the RFC 3986 unreserved characters. */
static bool fuzz_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

/* True for an upper-case hex digit. */
static bool fuzz_upper_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/* True when s holds only unreserved bytes, '/' if allowed, and "%XX"
 * escapes with upper-case hex. */
static bool fuzz_well_encoded(const char *s, size_t n, bool allow_slash)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (n - i < 3 || !fuzz_upper_hex(s[i + 1]) || !fuzz_upper_hex(s[i + 2]))
                return false;
            i += 2;
        } else if (!fuzz_unreserved(c) && !(allow_slash && c == '/')) {
            return false;
        }
    }
    return true;
}

/* Decode a well-encoded string (as checked above) into out. */
static void fuzz_decode(const char *s, size_t n, struct buf *out)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            char hex[3] = {s[i + 1], s[i + 2], '\0'};
            buf_addc(out, (char)strtol(hex, NULL, 16));
            i += 2;
        } else {
            buf_addc(out, s[i]);
        }
    }
}

/* True when the n bytes at p lie inside [base, base + len). */
static bool fuzz_inside(const char *p, size_t n, const char *base, size_t len)
{
    return n == 0 || (p >= base && p + n <= base + len);
}

/* True when sh is a valid SignedHeaders list: lower-case token names,
 * strictly increasing, none empty. */
static bool fuzz_signed_headers_valid(const char *sh, size_t n)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    const char *prev = NULL, *p = sh, *end = sh + n;
    size_t prev_len = 0;
    if (n == 0)
        return false;
    while (p <= end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *stop = semi ? semi : end;
        size_t len = (size_t)(stop - p);
        if (len == 0)
            return false;
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)p[i];
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  (c != '\0' && strchr(extra, c) != NULL)))
                return false;
        }
        if (prev != NULL) {
            size_t m = prev_len < len ? prev_len : len;
            int cmp = memcmp(prev, p, m);
            if (cmp > 0 || (cmp == 0 && prev_len >= len))
                return false;
        }
        prev = p;
        prev_len = len;
        if (semi == NULL)
            break;
        p = semi + 1;
    }
    return true;
}

/* Canonical URI invariants: shape, encoding, normalization, round trip. */
static void fuzz_uri(const struct fuzz_field *path, bool normalize)
{
    struct buf out = BUF_INIT, dec = BUF_INIT, again = BUF_INIT;
    int rc = sigv4_canonical_uri(path->p, path->n, normalize, &out);
    if (rc != SIGV4_OK) {
        fuzz_assert(rc == SIGV4_ERR_PATH, "canonical_uri error code");
        fuzz_assert(path->n > 0 && path->p[0] != '/', "only relative paths fail");
        fuzz_assert(out.len == 0, "failed canonical_uri appends nothing");
        buf_free(&out);
        return;
    }
    fuzz_assert(out.len > 0 && out.data[0] == '/', "canonical URI starts with '/'");
    fuzz_assert(fuzz_well_encoded(out.data, out.len, true), "canonical URI encoding");
    fuzz_decode(out.data, out.len, &dec);
    if (normalize) {
        const char *s = buf_cstr(&out);
        fuzz_assert(strstr(s, "//") == NULL, "normalized URI has no //");
        fuzz_assert(strstr(s, "/./") == NULL, "normalized URI has no /./");
        fuzz_assert(strstr(s, "/../") == NULL, "normalized URI has no /../");
        fuzz_assert(!(out.len >= 2 && strcmp(s + out.len - 2, "/.") == 0), "no trailing /.");
        fuzz_assert(!(out.len >= 3 && strcmp(s + out.len - 3, "/..") == 0), "no trailing /..");
        rc = sigv4_canonical_uri(dec.data, dec.len, true, &again);
        fuzz_assert(rc == SIGV4_OK && again.len == out.len &&
                        memcmp(again.data, out.data, out.len) == 0,
                    "normalization is idempotent");
    } else if (path->n > 0) {
        fuzz_assert(dec.len == path->n && memcmp(dec.data, path->p, path->n) == 0,
                    "unnormalized URI decodes to the path");
    }
    buf_free(&out);
    buf_free(&dec);
    buf_free(&again);
}

/* Canonical query invariants: encoding, no signature when skipped, and
 * canonicalizing the result again changes nothing. */
static void fuzz_query(const struct fuzz_field *q, bool skip)
{
    struct buf out = BUF_INIT, again = BUF_INIT;
    int rc = sigv4_canonical_query(q->p, q->n, skip, &out);
    if (rc != SIGV4_OK) {
        fuzz_assert(rc == SIGV4_ERR_QUERY, "canonical_query error code");
        fuzz_assert(out.len == 0, "failed canonical_query appends nothing");
        buf_free(&out);
        return;
    }
    for (size_t i = 0; i < out.len; i++) {
        unsigned char c = (unsigned char)out.data[i];
        fuzz_assert(c != '+' && c != ' ' && c < 0x80, "canonical query bytes");
    }
    /* Every '&' and '=' left is structure, so each piece is well encoded. */
    const char *p = out.len > 0 ? out.data : "", *end = p + out.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        fuzz_assert(eq != NULL, "every pair has '='");
        fuzz_assert(fuzz_well_encoded(p, (size_t)(eq - p), false) &&
                        fuzz_well_encoded(eq + 1, (size_t)(pe - eq - 1), false),
                    "canonical query encoding");
        fuzz_assert(!(skip && eq - p == 15 && memcmp(p, "X-Amz-Signature", 15) == 0),
                    "X-Amz-Signature skipped");
        p = amp ? amp + 1 : end;
    }
    rc = sigv4_canonical_query(out.data, out.len, skip, &again);
    fuzz_assert(rc == SIGV4_OK && again.len == out.len &&
                    (out.len == 0 || memcmp(again.data, out.data, out.len) == 0),
                "canonical query is idempotent");
    buf_free(&out);
    buf_free(&again);
}

/* Invariants of a parsed signature (either form). */
static void fuzz_check_auth(const struct sigv4_auth *a)
{
    fuzz_assert(a->signature_len == 64, "signature length");
    for (size_t i = 0; i < 64; i++)
        fuzz_assert((a->signature[i] >= '0' && a->signature[i] <= '9') ||
                        (a->signature[i] >= 'a' && a->signature[i] <= 'f'),
                    "signature is lower-case hex");
    fuzz_assert(a->access_key_id_len > 0 && a->region_len > 0 && a->service_len > 0,
                "scope parts non-empty");
    fuzz_assert(a->date_len == 8, "scope date length");
    fuzz_assert(fuzz_signed_headers_valid(a->signed_headers, a->signed_headers_len),
                "parsed SignedHeaders are valid");
}

/* Verify r under a and check the result code and canonical request. */
static void fuzz_verify(const struct sigv4_request *r, const struct sigv4_auth *a, const char *amz,
                        size_t amz_len, const unsigned char key[32])
{
    struct buf creq = BUF_INIT, want = BUF_INIT;
    int rc = sigv4_verify(r, a, amz, amz_len, key, &creq);
    fuzz_assert(rc == SIGV4_OK || rc == SIGV4_ERR_MISMATCH || rc == SIGV4_ERR_MISSING_HEADER ||
                    rc == SIGV4_ERR_PATH || rc == SIGV4_ERR_QUERY,
                "verify error code");
    int crc =
        sigv4_canonical_request(r, a->signed_headers, a->signed_headers_len, a->presigned, &want);
    fuzz_assert(crc == SIGV4_OK ? (rc == SIGV4_OK || rc == SIGV4_ERR_MISMATCH) : rc == crc,
                "verify reports canonical request errors");
    if (crc == SIGV4_OK)
        fuzz_assert(creq.len == want.len && memcmp(creq.data, want.data, want.len) == 0,
                    "verify leaves the canonical request in creq_out");
    buf_free(&creq);
    buf_free(&want);
}

/* True when s can be the key id of a Credential field: non-empty, with no
 * space, control byte, DEL, ',' (ends the field) or '/' (splits the scope). */
static bool fuzz_akid_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == 0x7f || c == ',' || c == '/')
            return false;
    }
    return n > 0;
}

/* What sigv4_sign returned (rc) and wrote (authz): nothing on error;
 * otherwise a value that parses back to the same key id and SignedHeaders
 * and verifies under key, and under no other key. */
static void fuzz_sign_round_trip(const struct sigv4_request *r, const char *shc, const char *akid,
                                 size_t akid_len, const unsigned char key[32], int rc,
                                 const struct buf *authz)
{
    if (rc != SIGV4_OK) {
        fuzz_assert(authz->len == 0, "failed sign appends nothing");
        return;
    }
    struct sigv4_auth a;
    int prc = sigv4_parse_authorization(authz->data, authz->len, &a, NULL, 0);
    fuzz_assert(prc == SIGV4_OK, "what sign writes parses");
    fuzz_assert(a.signed_headers_len == strlen(shc) &&
                    memcmp(a.signed_headers, shc, a.signed_headers_len) == 0 &&
                    a.access_key_id_len == akid_len && memcmp(a.access_key_id, akid, akid_len) == 0,
                "what sign writes parses to its inputs");
    int vrc = sigv4_verify(r, &a, FUZZ_AMZ_DATE, 16, key, NULL);
    fuzz_assert(vrc == SIGV4_OK, "what sign writes verifies");
    unsigned char other[32];
    memcpy(other, key, 32);
    other[0] ^= 1;
    vrc = sigv4_verify(r, &a, FUZZ_AMZ_DATE, 16, other, NULL);
    fuzz_assert(vrc == SIGV4_ERR_MISMATCH, "another key does not verify");
}

/* Canonical request invariants, then sign, parse and verify a round trip,
 * with the fixed key id and with akid (a fuzzed one). */
static void fuzz_request(const struct sigv4_request *r, const struct fuzz_field *sh, bool presigned,
                         const struct fuzz_field *akid, const unsigned char key[32])
{
    struct buf out = BUF_INIT, uri = BUF_INIT, authz = BUF_INIT, authz2 = BUF_INIT;
    int rc = sigv4_canonical_request(r, sh->p, sh->n, presigned, &out);
    int urc = sigv4_canonical_uri(r->path, r->path_len, r->normalize_path, &uri);
    if (urc != SIGV4_OK) {
        fuzz_assert(rc == SIGV4_ERR_PATH, "path errors come through");
    } else if (rc == SIGV4_OK) {
        size_t ml = strlen(r->method);
        fuzz_assert(out.len > ml + uri.len + 2 && memcmp(out.data, r->method, ml) == 0 &&
                        out.data[ml] == '\n' && memcmp(out.data + ml + 1, uri.data, uri.len) == 0,
                    "canonical request starts with method and URI");
        size_t tail = sh->n + 2 + 64;
        fuzz_assert(out.len >= tail && out.data[out.len - tail] == '\n' &&
                        memcmp(out.data + out.len - tail + 1, sh->p, sh->n) == 0 &&
                        memcmp(out.data + out.len - 64, FUZZ_EMPTY_HASH, 64) == 0,
                    "canonical request ends with SignedHeaders and payload hash");
    } else {
        fuzz_assert(rc == SIGV4_ERR_QUERY || rc == SIGV4_ERR_MISSING_HEADER,
                    "canonical_request error code");
    }

    /* sigv4_sign takes C strings: stop at the first NUL, as it would. */
    char *shc = xstrndup(sh->p, sh->n);
    size_t shc_len = strlen(shc);
    rc = sigv4_sign(r, shc, "AKIDEXAMPLE", key, FUZZ_AMZ_DATE, FUZZ_SCOPE, &authz);
    if (fuzz_signed_headers_valid(shc, shc_len)) {
        struct buf creq = BUF_INIT;
        int crc = sigv4_canonical_request(r, shc, shc_len, false, &creq);
        fuzz_assert(rc == crc, "sign reports canonical request errors");
        buf_free(&creq);
    } else {
        fuzz_assert(rc == SIGV4_ERR_MALFORMED, "sign refuses invalid SignedHeaders");
    }
    fuzz_sign_round_trip(r, shc, "AKIDEXAMPLE", 11, key, rc, &authz);

    char *akidc = xstrndup(akid->p, akid->n);
    size_t akidc_len = strlen(akidc);
    int arc = sigv4_sign(r, shc, akidc, key, FUZZ_AMZ_DATE, FUZZ_SCOPE, &authz2);
    fuzz_assert(fuzz_akid_ok(akidc, akidc_len) ? arc == rc : arc == SIGV4_ERR_MALFORMED,
                "sign refuses exactly the key ids that do not fit the Credential field");
    fuzz_sign_round_trip(r, shc, akidc, akidc_len, key, arc, &authz2);
    free(akidc);
    free(shc);
    buf_free(&out);
    buf_free(&uri);
    buf_free(&authz);
    buf_free(&authz2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_field f[6 + FUZZ_MAX_HEADERS];
    size_t nf = 0;
    const char *p = (const char *)data, *end = p + size;
    while (nf < sizeof f / sizeof f[0]) {
        const char *sep = p < end ? memchr(p, FUZZ_SEP, (size_t)(end - p)) : NULL;
        const char *stop = sep ? sep : end;
        f[nf].n = (size_t)(stop - p);
        f[nf].p = xmalloc(f[nf].n);
        if (f[nf].n > 0)
            memcpy(f[nf].p, p, f[nf].n);
        nf++;
        if (sep == NULL)
            break;
        p = sep + 1;
    }
    static char nothing[1];
    struct fuzz_field empty = {nothing, 0};
    unsigned flags = nf > 0 && f[0].n > 0 ? (unsigned char)f[0].p[0] : 0;
    bool normalize = flags & 1, presigned = flags & 2, skip = flags & 4;
    char *method = nf > 1 ? xstrndup(f[1].p, f[1].n) : xstrdup("GET");
    const struct fuzz_field *path = nf > 2 ? &f[2] : &empty;
    const struct fuzz_field *query = nf > 3 ? &f[3] : &empty;
    const struct fuzz_field *authz = nf > 4 ? &f[4] : &empty;
    const struct fuzz_field *sh = nf > 5 ? &f[5] : &empty;

    struct sigv4_header headers[FUZZ_MAX_HEADERS];
    size_t nh = 0;
    for (size_t i = 6; i < nf; i++) {
        const char *colon = memchr(f[i].p, ':', f[i].n);
        size_t nl = colon ? (size_t)(colon - f[i].p) : f[i].n;
        headers[nh].name = f[i].p;
        headers[nh].name_len = nl;
        headers[nh].value = colon ? colon + 1 : f[i].p + f[i].n;
        headers[nh].value_len = colon ? f[i].n - nl - 1 : 0;
        nh++;
    }
    struct sigv4_request r = {method,  path->p, path->n,         query->p, query->n,
                              headers, nh,      FUZZ_EMPTY_HASH, normalize};
    unsigned char key[32];
    sigv4_signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", "us-east-1", "ses",
                      key);

    fuzz_uri(path, normalize);
    fuzz_query(query, skip);

    struct sigv4_auth a;
    char err[64];
    int rc = sigv4_parse_authorization(authz->p, authz->n, &a, err, sizeof err);
    if (rc == SIGV4_OK) {
        fuzz_check_auth(&a);
        fuzz_assert(!a.presigned && a.expires == -1, "header form");
        fuzz_assert(fuzz_inside(a.signature, 64, authz->p, authz->n) &&
                        fuzz_inside(a.access_key_id, a.access_key_id_len, authz->p, authz->n) &&
                        fuzz_inside(a.signed_headers, a.signed_headers_len, authz->p, authz->n),
                    "header fields point into the input");
        fuzz_verify(&r, &a, FUZZ_AMZ_DATE, 16, key);
    } else {
        fuzz_assert(rc == SIGV4_ERR_MALFORMED || rc == SIGV4_ERR_ALGORITHM, "authz error code");
    }

    struct buf storage = BUF_INIT;
    rc = sigv4_parse_presigned(query->p, query->n, &a, &storage, err, sizeof err);
    if (rc == SIGV4_OK) {
        fuzz_check_auth(&a);
        fuzz_assert(a.presigned && a.amz_date_len == 16, "presigned form");
        fuzz_assert(a.expires >= -1 && a.expires <= 604800, "expires range");
        fuzz_assert(fuzz_inside(a.signature, 64, storage.data, storage.len) &&
                        fuzz_inside(a.amz_date, 16, storage.data, storage.len) &&
                        fuzz_inside(a.region, a.region_len, storage.data, storage.len),
                    "presigned fields point into storage");
        fuzz_assert(memcmp(a.amz_date, a.date, 8) == 0, "scope date is X-Amz-Date's day");
        fuzz_verify(&r, &a, a.amz_date, a.amz_date_len, key);
    } else {
        fuzz_assert(rc == 1 || rc == SIGV4_ERR_MALFORMED || rc == SIGV4_ERR_ALGORITHM,
                    "presign error code");
    }
    buf_free(&storage);

    fuzz_request(&r, sh, presigned, authz, key);

    free(method);
    for (size_t i = 0; i < nf; i++)
        free(f[i].p);
    return 0;
}
