/* test_sigv4: the AWS test suites (read at run time), the SES vectors, and
 * table-driven tests of every sigv4 function.
 *
 * The suites live in tests/unit/testdata/sigv4 (relative to the repository
 * root, where the tests run), or wherever SESGATE_SIGV4_TESTDATA points.
 */
#include "sigv4.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "buf.h"
#include "check.h"
#include "util.h"

#define TEST_DEFAULT_DIR  "tests/unit/testdata/sigv4"
#define TEST_AKID         "AKIDEXAMPLE"
#define TEST_SECRET       "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define TEST_AMZ_DATE     "20150830T123600Z"
#define TEST_SCOPE        "20150830/us-east-1/service/aws4_request"
#define TEST_SES_SCOPE    "20150830/us-east-1/ses/aws4_request"
#define TEST_EMPTY_HASH   "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define TEST_SIG          "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
#define TEST_MAX_HEADERS  32
#define TEST_MIN_CLASSIC  34
#define TEST_MIN_V4       38
#define TEST_EXTRA_HEADER 4 /* room for headers a test adds to a parsed request */

/* A request read from a .req / request.txt / *-signed-request.txt file. The
 * strings point into text, which the request owns. */
struct test_req {
    char *text;
    char method[16];
    const char *path;
    size_t path_len;
    const char *query;
    size_t query_len;
    struct sigv4_header headers[TEST_MAX_HEADERS + TEST_EXTRA_HEADER];
    size_t nheaders;
    const char *body;
    size_t body_len;
};

/* What one suite case expects from header signing. */
struct test_expect {
    const char *name;
    const char *creq;
    const char *sts;
    const char *sig;   /* 64 hex */
    const char *authz; /* full Authorization value, or NULL */
};

static int test_classic_cases, test_v4_cases, test_v4_query_cases;

/* Read a whole file into a NUL-terminated heap string; NULL if unreadable. */
static char *test_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    struct buf b = BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_add(&b, chunk, n);
    fclose(f);
    return buf_detach(&b, NULL);
}

/* The heap string "<dir>/<name><suffix>" (free() it). */
static char *test_join(const char *dir, const char *name, const char *suffix)
{
    struct buf b = BUF_INIT;
    buf_printf(&b, "%s/%s%s", dir, name, suffix);
    return buf_detach(&b, NULL);
}

/* True when path names an existing regular file. */
static bool test_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* True when path names an existing directory. */
static bool test_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Parse a request file (LF line endings): request line, headers with
 * continuation lines kept raw inside the value, a blank line, the body. The
 * target ends at the last space before "HTTP/" (paths may hold raw spaces).
 * Takes ownership of text. Returns 0, or -1 if the file is not a request. */
static int test_parse_req(char *text, struct test_req *r)
{
    memset(r, 0, sizeof *r);
    r->text = text;
    const char *p = text, *end = text + strlen(text);
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    const char *sp = memchr(p, ' ', (size_t)(le - p));
    const char *last = le;
    while (last > p && last[-1] != ' ')
        last--;
    if (sp == NULL || last <= sp + 1 || (size_t)(sp - p) >= sizeof r->method ||
        strncmp(last, "HTTP/", 5) != 0)
        return -1;
    memcpy(r->method, p, (size_t)(sp - p));
    const char *target = sp + 1, *tend = last - 1;
    const char *q = memchr(target, '?', (size_t)(tend - target));
    r->path = target;
    r->path_len = (size_t)((q ? q : tend) - target);
    if (q != NULL) {
        r->query = q + 1;
        r->query_len = (size_t)(tend - (q + 1));
    }
    p = nl ? nl + 1 : end;
    r->body = end;
    while (p < end) {
        nl = memchr(p, '\n', (size_t)(end - p));
        le = nl ? nl : end;
        if (le == p) {
            r->body = nl + 1;
            break;
        }
        if (*p == ' ' || *p == '\t') {
            if (r->nheaders == 0)
                return -1;
            struct sigv4_header *h = &r->headers[r->nheaders - 1];
            h->value_len = (size_t)(le - h->value);
        } else {
            const char *colon = memchr(p, ':', (size_t)(le - p));
            if (colon == NULL || r->nheaders == TEST_MAX_HEADERS)
                return -1;
            struct sigv4_header *h = &r->headers[r->nheaders++];
            h->name = p;
            h->name_len = (size_t)(colon - p);
            h->value = colon + 1;
            h->value_len = (size_t)(le - (colon + 1));
        }
        p = nl ? nl + 1 : end;
    }
    r->body_len = (size_t)(end - r->body);
    return 0;
}

/* Read and parse a request file; returns 0 or -1 (r->text is freed by
 * test_req_free in both cases). */
static int test_load_req(const char *path, struct test_req *r)
{
    char *text = test_read_file(path);
    if (text == NULL) {
        memset(r, 0, sizeof *r);
        return -1;
    }
    return test_parse_req(text, r);
}

/* Release a parsed request. */
static void test_req_free(struct test_req *r)
{
    free(r->text);
    r->text = NULL;
}

/* Append a header (strings must outlive the request). */
static void test_add_header(struct test_req *r, const char *name, const char *value)
{
    if (r->nheaders == TEST_MAX_HEADERS + TEST_EXTRA_HEADER)
        return;
    struct sigv4_header *h = &r->headers[r->nheaders++];
    h->name = name;
    h->name_len = strlen(name);
    h->value = value;
    h->value_len = strlen(value);
}

/* The first header named name (any case), or NULL. */
static const struct sigv4_header *test_find_header(const struct test_req *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (util_ieq(r->headers[i].name, r->headers[i].name_len, name))
            return &r->headers[i];
    return NULL;
}

/* Order C strings for qsort. */
static int test_strcmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The SignedHeaders a signer would use: every header name of r, lower-cased,
 * sorted, without duplicates, ';'-joined, into out (reset first). */
static void test_signed_headers(const struct test_req *r, struct buf *out)
{
    char *names[TEST_MAX_HEADERS + TEST_EXTRA_HEADER];
    for (size_t i = 0; i < r->nheaders; i++) {
        names[i] = xstrndup(r->headers[i].name, r->headers[i].name_len);
        for (char *c = names[i]; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
    }
    qsort(names, r->nheaders, sizeof names[0], test_strcmp);
    buf_reset(out);
    for (size_t i = 0; i < r->nheaders; i++) {
        if (i == 0 || strcmp(names[i], names[i - 1]) != 0) {
            if (out->len > 0)
                buf_addc(out, ';');
            buf_adds(out, names[i]);
        }
    }
    for (size_t i = 0; i < r->nheaders; i++)
        free(names[i]);
}

/* Fill a sigv4_request from a parsed request; hash receives the body hash. */
static void test_to_sigv4(const struct test_req *t, bool normalize, char hash[65],
                          struct sigv4_request *r)
{
    util_sha256_hex(t->body, t->body_len, hash);
    r->method = t->method;
    r->path = t->path;
    r->path_len = t->path_len;
    r->query = t->query;
    r->query_len = t->query_len;
    r->headers = t->headers;
    r->nheaders = t->nheaders;
    r->payload_hash = hash;
    r->normalize_path = normalize;
}

/* Append s percent-encoded per RFC 3986 (test-side reference encoder). */
static void test_encode(const char *s, struct buf *out)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            strchr("-_.~", *p) != NULL)
            buf_addc(out, (char)*p);
        else
            buf_printf(out, "%%%02X", *p);
    }
}

/* Check that r verifies under a (with its canonical request equal to
 * want_creq), and that changing the signature, the body hash or one signed
 * header value makes it fail. sig_text is a's signature, writable, so that
 * one of its bytes can be changed in place. */
static void test_verify_and_tamper(const char *name, struct sigv4_request *r,
                                   const struct sigv4_auth *a, const char *amz_date,
                                   const unsigned char key[32], const char *want_creq,
                                   char *sig_text)
{
    struct buf creq = BUF_INIT;
    int rc = sigv4_verify(r, a, amz_date, strlen(amz_date), key, &creq);
    CHECK(rc == SIGV4_OK, "%s: verify of the signed request returned %d", name, rc);
    CHECK(strcmp(buf_cstr(&creq), want_creq) == 0, "%s: verify's canonical request differs:\n%s",
          name, buf_cstr(&creq));

    char saved = sig_text[10];
    sig_text[10] = saved == '0' ? '1' : '0';
    rc = sigv4_verify(r, a, amz_date, strlen(amz_date), key, NULL);
    CHECK(rc == SIGV4_ERR_MISMATCH, "%s: a changed signature byte gave %d", name, rc);
    sig_text[10] = saved;

    const char *hash = r->payload_hash;
    char bad_hash[65];
    memcpy(bad_hash, hash, 65);
    bad_hash[0] = bad_hash[0] == 'a' ? 'b' : 'a';
    r->payload_hash = bad_hash;
    rc = sigv4_verify(r, a, amz_date, strlen(amz_date), key, NULL);
    CHECK(rc == SIGV4_ERR_MISMATCH, "%s: a changed body hash gave %d", name, rc);
    r->payload_hash = hash;

    /* Change the value of the first header named in SignedHeaders. */
    const char *semi = memchr(a->signed_headers, ';', a->signed_headers_len);
    size_t first_len = semi ? (size_t)(semi - a->signed_headers) : a->signed_headers_len;
    struct sigv4_header *hs = (struct sigv4_header *)r->headers;
    bool changed = false;
    for (size_t i = 0; i < r->nheaders && !changed; i++) {
        if (hs[i].name_len == first_len &&
            strncasecmp(hs[i].name, a->signed_headers, first_len) == 0) {
            struct sigv4_header keep = hs[i];
            hs[i].value = "tampered.example";
            hs[i].value_len = strlen(hs[i].value);
            rc = sigv4_verify(r, a, amz_date, strlen(amz_date), key, NULL);
            CHECK(rc == SIGV4_ERR_MISMATCH, "%s: a changed signed header gave %d", name, rc);
            hs[i] = keep;
            changed = true;
        }
    }
    CHECK(changed, "%s: no signed header found to tamper with", name);
    rc = sigv4_verify(r, a, amz_date, strlen(amz_date), key, NULL);
    CHECK(rc == SIGV4_OK, "%s: verify after restoring returned %d", name, rc);
    buf_free(&creq);
}

/* Sign t (the unsigned request plus whatever the signer adds) and compare the
 * canonical request, string to sign, signature and Authorization value. */
static void test_sign_case(const struct test_expect *e, const struct test_req *t, bool normalize,
                           const char *amz_date, const char *scope, const unsigned char key[32])
{
    char hash[65];
    struct sigv4_request r;
    struct buf sh = BUF_INIT, creq = BUF_INIT, sts = BUF_INIT, authz = BUF_INIT;
    test_to_sigv4(t, normalize, hash, &r);
    test_signed_headers(t, &sh);
    int rc = sigv4_canonical_request(&r, sh.data, sh.len, false, &creq);
    CHECK(rc == SIGV4_OK, "%s: canonical request returned %d", e->name, rc);
    CHECK(strcmp(buf_cstr(&creq), e->creq) == 0, "%s: canonical request\n--- got\n%s\n--- want\n%s",
          e->name, buf_cstr(&creq), e->creq);
    sigv4_string_to_sign(amz_date, scope, creq.data, creq.len, &sts);
    CHECK(strcmp(buf_cstr(&sts), e->sts) == 0, "%s: string to sign\n--- got\n%s\n--- want\n%s",
          e->name, buf_cstr(&sts), e->sts);
    char sig[65];
    sigv4_signature(key, sts.data, sts.len, sig);
    CHECK(strcmp(sig, e->sig) == 0, "%s: signature %s, want %s", e->name, sig, e->sig);
    rc = sigv4_sign(&r, sh.data, TEST_AKID, key, amz_date, scope, &authz);
    CHECK(rc == SIGV4_OK, "%s: sign returned %d", e->name, rc);
    if (e->authz != NULL)
        CHECK(strcmp(buf_cstr(&authz), e->authz) == 0, "%s: Authorization\n%s\nwant\n%s", e->name,
              buf_cstr(&authz), e->authz);
    buf_free(&sh);
    buf_free(&creq);
    buf_free(&sts);
    buf_free(&authz);
}

/* Parse authz, and verify and tamper with the request t carrying it. */
static void test_verify_header_case(const char *name, struct test_req *t, bool normalize,
                                    const char *authz_value, size_t authz_len,
                                    const unsigned char key[32], const char *want_creq)
{
    char *authz = xstrndup(authz_value, authz_len);
    struct sigv4_auth a;
    char err[128] = "";
    int rc = sigv4_parse_authorization(authz, authz_len, &a, err, sizeof err);
    CHECK(rc == SIGV4_OK, "%s: parse of Authorization returned %d (%s)", name, rc, err);
    const struct sigv4_header *d = test_find_header(t, "x-amz-date");
    CHECK(d != NULL, "%s: signed request has no X-Amz-Date", name);
    if (rc == SIGV4_OK && d != NULL) {
        char *amz = xstrndup(d->value, d->value_len);
        char hash[65];
        struct sigv4_request r;
        test_to_sigv4(t, normalize, hash, &r);
        test_verify_and_tamper(name, &r, &a, amz, key, want_creq, (char *)a.signature);
        free(amz);
    }
    free(authz);
}

/* Extract the signature after "Signature=" in an Authorization value. */
static void test_authz_signature(const char *authz, char sig[65])
{
    const char *p = strstr(authz, "Signature=");
    sig[0] = '\0';
    if (p != NULL && strlen(p + 10) >= 64) {
        memcpy(sig, p + 10, 64);
        sig[64] = '\0';
    }
}

/* Run one classic (botocore) case in dir/name/name.*. */
static void test_classic_case(const char *dir, const char *name, const unsigned char key[32])
{
    char *files[4];
    static const char *const ext[4] = {".req", ".creq", ".sts", ".authz"};
    for (int i = 0; i < 4; i++) {
        char *path = test_join(dir, name, ext[i]);
        files[i] = test_read_file(path);
        free(path);
    }
    CHECK(files[1] && files[2] && files[3], "%s: missing .creq/.sts/.authz", name);
    struct test_req t;
    memset(&t, 0, sizeof t);
    int rc = files[0] ? test_parse_req(files[0], &t) : -1;
    CHECK(rc == 0, "%s: cannot parse the .req", name);
    if (rc == 0 && files[1] && files[2] && files[3]) {
        test_classic_cases++;
        /* The signer adds the session token that the .creq shows as signed
         * (post-sts-header-before already carries it in its .req). */
        char *token = NULL;
        const char *tok = strstr(files[1], "\nx-amz-security-token:");
        if (tok != NULL && test_find_header(&t, "x-amz-security-token") == NULL) {
            tok += strlen("\nx-amz-security-token:");
            token = xstrndup(tok, strcspn(tok, "\n"));
            test_add_header(&t, "X-Amz-Security-Token", token);
        }
        char sig[65];
        test_authz_signature(files[3], sig);
        struct test_expect e = {name, files[1], files[2], sig, files[3]};
        test_sign_case(&e, &t, true, TEST_AMZ_DATE, TEST_SCOPE, key);
        /* Headers the signer did not sign do not matter to the verifier. */
        test_add_header(&t, "X-Unsigned-After", "anything");
        test_verify_header_case(name, &t, true, files[3], strlen(files[3]), key, files[1]);
        free(token);
    }
    test_req_free(&t);
    for (int i = 1; i < 4; i++)
        free(files[i]);
}

/* The sorted entries of a directory (callers skip the dot entries). */
static int test_list_dir(const char *dir, struct dirent ***list)
{
    return scandir(dir, list, NULL, alphasort);
}

/* Walk the classic suite: a folder holding <folder>.req is a case, any other
 * folder is a group to descend into. */
static void test_walk_classic(const char *dir, const unsigned char key[32])
{
    struct dirent **list;
    int n = test_list_dir(dir, &list);
    for (int i = 0; i < n; i++) {
        const char *name = list[i]->d_name;
        if (name[0] != '.') {
            char *sub = test_join(dir, name, "");
            char *req = test_join(sub, name, ".req");
            if (test_is_file(req))
                test_classic_case(sub, name, key);
            else if (test_is_dir(sub))
                test_walk_classic(sub, key);
            free(sub);
            free(req);
        }
        free(list[i]);
    }
    if (n >= 0)
        free(list);
}

/* Read dir/file into a heap string (NULL if absent). */
static char *test_read_in(const char *dir, const char *file)
{
    char *path = test_join(dir, file, "");
    char *text = test_read_file(path);
    free(path);
    return text;
}

/* Copy a raw query into out without its "name=..." parameters. */
static void test_query_without(const char *q, size_t n, const char *name, struct buf *out)
{
    const char *p = q, *end = q + n;
    size_t nl = strlen(name);
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        if (!((size_t)(pe - p) > nl && strncmp(p, name, nl) == 0 && p[nl] == '=')) {
            if (out->len > 0)
                buf_addc(out, '&');
            buf_add(out, p, (size_t)(pe - p));
        }
        p = amp ? amp + 1 : end;
    }
}

/* The presigned half of a v4 case: sign the query form and verify the URL. */
static void test_v4_query_case(const char *dir, const char *name,
                               const struct test_req *unsigned_req, bool normalize,
                               const char *token, bool omit_token, const char *amz_date,
                               const char *scope, const char *akid, long expires,
                               const unsigned char key[32])
{
    char *files[4] = {test_read_in(dir, "query-canonical-request.txt"),
                      test_read_in(dir, "query-string-to-sign.txt"),
                      test_read_in(dir, "query-signature.txt"),
                      test_read_in(dir, "query-signed-request.txt")};
    CHECK(files[0] && files[1] && files[2] && files[3], "%s: missing query-* files", name);
    if (!(files[0] && files[1] && files[2] && files[3])) {
        for (int i = 0; i < 4; i++)
            free(files[i]);
        return;
    }
    test_v4_query_cases++;

    /* The signer adds the X-Amz-* parameters to the query. */
    struct buf sh = BUF_INIT, q = BUF_INIT, cred = BUF_INIT;
    test_signed_headers(unsigned_req, &sh);
    buf_printf(&cred, "%s/%s", akid, scope);
    if (unsigned_req->query_len > 0) {
        buf_add(&q, unsigned_req->query, unsigned_req->query_len);
        buf_addc(&q, '&');
    }
    buf_adds(&q, "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=");
    test_encode(cred.data, &q);
    buf_printf(&q, "&X-Amz-Date=%s&X-Amz-Expires=%ld", amz_date, expires);
    if (token != NULL && !omit_token) {
        buf_adds(&q, "&X-Amz-Security-Token=");
        test_encode(token, &q);
    }
    buf_adds(&q, "&X-Amz-SignedHeaders=");
    test_encode(sh.data, &q);
    struct test_req t = *unsigned_req;
    t.query = q.data;
    t.query_len = q.len;
    t.text = NULL;
    char sig[65];
    memcpy(sig, files[2], 64);
    sig[64] = '\0';
    struct test_expect e = {name, files[0], files[1], sig, NULL};
    test_sign_case(&e, &t, normalize, amz_date, scope, key);
    CHECK(strlen(files[2]) == 64, "%s: query-signature.txt is not 64 hex", name);

    /* Verify the signed URL as a client would send it. */
    struct test_req s;
    int rc = test_parse_req(files[3], &s);
    files[3] = NULL;
    CHECK(rc == 0, "%s: cannot parse query-signed-request.txt", name);
    if (rc == 0) {
        struct buf stripped = BUF_INIT, storage = BUF_INIT;
        char hash[65], err[128] = "";
        struct sigv4_request r;
        struct sigv4_auth a;
        test_to_sigv4(&s, normalize, hash, &r);
        if (omit_token) {
            /* The token was added to the URL after signing, so it is not in
             * the signature: a verifier that signs the whole query refuses
             * the URL as sent, and accepts it without the token. */
            rc = sigv4_parse_presigned(r.query, r.query_len, &a, &storage, err, sizeof err);
            CHECK(rc == SIGV4_OK, "%s: parse_presigned gave %d (%s)", name, rc, err);
            rc = sigv4_verify(&r, &a, a.amz_date, a.amz_date_len, key, NULL);
            CHECK(rc == SIGV4_ERR_MISMATCH, "%s: unsigned token in the URL gave %d", name, rc);
            test_query_without(s.query, s.query_len, "X-Amz-Security-Token", &stripped);
            r.query = stripped.data;
            r.query_len = stripped.len;
            buf_reset(&storage);
        }
        char *qcopy = xstrndup(r.query, r.query_len);
        r.query = qcopy;
        rc = sigv4_parse_presigned(r.query, r.query_len, &a, &storage, err, sizeof err);
        CHECK(rc == SIGV4_OK, "%s: parse_presigned gave %d (%s)", name, rc, err);
        if (rc == SIGV4_OK) {
            CHECK(a.presigned && a.expires == expires, "%s: presigned %d expires %ld", name,
                  a.presigned, a.expires);
            CHECK(a.amz_date_len == 16 && memcmp(a.amz_date, amz_date, 16) == 0, "%s: X-Amz-Date",
                  name);
            CHECK(a.access_key_id_len == strlen(akid) &&
                      memcmp(a.access_key_id, akid, a.access_key_id_len) == 0,
                  "%s: access key", name);
            CHECK(a.signature_len == 64 && memcmp(a.signature, sig, 64) == 0,
                  "%s: parsed signature", name);
            CHECK(a.signed_headers_len == sh.len && memcmp(a.signed_headers, sh.data, sh.len) == 0,
                  "%s: parsed SignedHeaders", name);
            /* The signature in the URL is what tampering changes. */
            char *in_url = strstr(qcopy, "X-Amz-Signature=") + strlen("X-Amz-Signature=");
            char amz[17];
            memcpy(amz, a.amz_date, 16);
            amz[16] = '\0';
            char *stored = (char *)a.signature;
            struct sigv4_request rr = r;
            test_verify_and_tamper(name, &rr, &a, amz, key, files[0], stored);
            /* And a changed signature in the URL itself fails after parsing. */
            in_url[3] = in_url[3] == '0' ? '1' : '0';
            buf_reset(&storage);
            rc = sigv4_parse_presigned(r.query, r.query_len, &a, &storage, err, sizeof err);
            CHECK(rc == SIGV4_OK, "%s: parse of tampered URL gave %d", name, rc);
            rc = sigv4_verify(&r, &a, a.amz_date, a.amz_date_len, key, NULL);
            CHECK(rc == SIGV4_ERR_MISMATCH, "%s: tampered URL signature gave %d", name, rc);
        }
        free(qcopy);
        buf_free(&stripped);
        buf_free(&storage);
    }
    test_req_free(&s);
    buf_free(&sh);
    buf_free(&q);
    buf_free(&cred);
    for (int i = 0; i < 4; i++)
        free(files[i]);
}

/* A string member of a JSON object, or NULL. */
static const char *test_json_str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* Run one v4 (aws-c-auth) case folder. */
static void test_v4_case(const char *dir, const char *name)
{
    char *path = test_join(dir, "context.json", "");
    json_error_t jerr;
    json_t *ctx = json_load_file(path, 0, &jerr);
    free(path);
    CHECK(ctx != NULL, "%s: context.json: %s", name, jerr.text);
    if (ctx == NULL)
        return;
    json_t *creds = json_object_get(ctx, "credentials");
    const char *akid = test_json_str(creds, "access_key_id");
    const char *secret = test_json_str(creds, "secret_access_key");
    const char *token = test_json_str(creds, "token");
    const char *region = test_json_str(ctx, "region");
    const char *service = test_json_str(ctx, "service");
    const char *ts = test_json_str(ctx, "timestamp");
    bool normalize = json_is_true(json_object_get(ctx, "normalize"));
    bool sign_body = json_is_true(json_object_get(ctx, "sign_body"));
    bool omit_token = json_is_true(json_object_get(ctx, "omit_session_token"));
    long expires = (long)json_integer_value(json_object_get(ctx, "expiration_in_seconds"));
    CHECK(akid && secret && region && service && ts && strlen(ts) == 20,
          "%s: incomplete context.json", name);
    if (!(akid && secret && region && service && ts && strlen(ts) == 20)) {
        json_decref(ctx);
        return;
    }
    /* "2015-08-30T12:36:00Z" -> "20150830T123600Z" */
    char amz[17], date[9], *w = amz;
    for (const char *c = ts; *c && w < amz + 16; c++)
        if (*c != '-' && *c != ':')
            *w++ = *c;
    *w = '\0';
    memcpy(date, amz, 8);
    date[8] = '\0';
    char scope[256];
    snprintf(scope, sizeof scope, "%s/%s/%s/aws4_request", date, region, service);
    unsigned char key[32];
    sigv4_signing_key(secret, date, region, service, key);

    char *files[4] = {test_read_in(dir, "header-canonical-request.txt"),
                      test_read_in(dir, "header-string-to-sign.txt"),
                      test_read_in(dir, "header-signature.txt"),
                      test_read_in(dir, "header-signed-request.txt")};
    struct test_req t;
    path = test_join(dir, "request.txt", "");
    int rc = test_load_req(path, &t);
    free(path);
    CHECK(rc == 0, "%s: cannot parse request.txt", name);
    CHECK(files[0] && files[1] && files[2] && files[3], "%s: missing header-* files", name);
    if (rc == 0 && files[0] && files[1] && files[2] && files[3]) {
        test_v4_cases++;
        test_v4_query_case(dir, name, &t, normalize, token, omit_token, amz, scope, akid, expires,
                           key);

        /* Header signing: the signer adds X-Amz-Date, the token (unless
         * omitted) and, with sign_body, x-amz-content-sha256. */
        struct test_req h = t;
        char body_hash[65];
        util_sha256_hex(t.body, t.body_len, body_hash);
        test_add_header(&h, "X-Amz-Date", amz);
        if (token != NULL && !omit_token)
            test_add_header(&h, "X-Amz-Security-Token", token);
        if (sign_body)
            test_add_header(&h, "x-amz-content-sha256", body_hash);
        char sig[65];
        snprintf(sig, sizeof sig, "%s", files[2]);
        CHECK(strlen(files[2]) == 64, "%s: header-signature.txt is not 64 hex", name);

        struct test_req s;
        int src = test_parse_req(files[3], &s);
        files[3] = NULL;
        CHECK(src == 0, "%s: cannot parse header-signed-request.txt", name);
        const struct sigv4_header *az = src == 0 ? test_find_header(&s, "authorization") : NULL;
        CHECK(az != NULL, "%s: signed request has no Authorization", name);
        char *authz = az ? xstrndup(az->value, az->value_len) : NULL;
        struct test_expect e = {name, files[0], files[1], sig, authz};
        test_sign_case(&e, &h, normalize, amz, scope, key);
        if (az != NULL)
            test_verify_header_case(name, &s, normalize, az->value, az->value_len, key, files[0]);
        free(authz);
        test_req_free(&s);
    }
    test_req_free(&t);
    for (int i = 0; i < 4; i++)
        free(files[i]);
    json_decref(ctx);
}

/* Walk the v4 suite: every folder with a context.json is a case. */
static void test_walk_v4(const char *dir)
{
    struct dirent **list;
    int n = test_list_dir(dir, &list);
    for (int i = 0; i < n; i++) {
        const char *name = list[i]->d_name;
        if (name[0] != '.') {
            char *sub = test_join(dir, name, "");
            char *ctx = test_join(sub, "context.json", "");
            if (test_is_file(ctx))
                test_v4_case(sub, name);
            free(sub);
            free(ctx);
        }
        free(list[i]);
    }
    if (n >= 0)
        free(list);
}

/* Both AWS suites, with a floor on the number of cases found. */
static void test_suites(void)
{
    const char *dir = getenv("SESGATE_SIGV4_TESTDATA");
    if (dir == NULL || *dir == '\0')
        dir = TEST_DEFAULT_DIR;
    unsigned char key[32];
    sigv4_signing_key(TEST_SECRET, "20150830", "us-east-1", "service", key);
    char *sub = test_join(dir, "classic", "");
    test_walk_classic(sub, key);
    free(sub);
    sub = test_join(dir, "v4", "");
    test_walk_v4(sub);
    free(sub);
    CHECK(test_classic_cases >= TEST_MIN_CLASSIC, "only %d classic cases found under %s",
          test_classic_cases, dir);
    CHECK(test_v4_cases >= TEST_MIN_V4, "only %d v4 cases found under %s", test_v4_cases, dir);
    CHECK(test_v4_query_cases >= TEST_MIN_V4, "only %d v4 query cases found under %s",
          test_v4_query_cases, dir);
    printf("test_sigv4: %d classic cases, %d v4 header cases, %d v4 query cases\n",
           test_classic_cases, test_v4_cases, test_v4_query_cases);
}

/* One SES vector from ses-api.md section 4.3. */
struct test_ses_vector {
    const char *name;
    const char *method;
    const char *path;
    const char *headers[4][2];
    const char *body;
    const char *want_body_hash;
    const char *want_creq;
    const char *want_sts_hash;
    const char *want_sig;
};

static const struct test_ses_vector test_ses_vectors[] = {
    {"ses v1 SendEmail",
     "POST",
     "/",
     {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
      {"Host", "email.us-east-1.amazonaws.com"},
      {"X-Amz-Date", TEST_AMZ_DATE}},
     "Action=SendEmail&Version=2010-12-01&Source=a%40example.com&Destination.ToAddresses.member.1="
     "b%40example.com&Message.Subject.Data=Hi&Message.Body.Text.Data=x",
     "35a6cfb48a9753739fd73c3e6c6febb547577154b26f721041e668aa41a2d943",
     "POST\n/\n\ncontent-type:application/x-www-form-urlencoded; "
     "charset=utf-8\nhost:email.us-east-1.amazonaws.com\nx-amz-date:20150830T123600Z\n\ncontent-"
     "type;host;x-amz-date\n35a6cfb48a9753739fd73c3e6c6febb547577154b26f721041e668aa41a2d943",
     "c9c6984ba15cac300ebaf5644791ba9a200205fa7aa869dd3e8154714bb84a66",
     "fed54040635ea87681f0326f8087e55cb9baacfb5eb963ed8da48d07edc93002"},
    {"ses v2 DeleteEmailTemplate with token",
     "DELETE",
     "/v2/email/templates/my%20tpl",
     {{"Host", "email.us-east-1.amazonaws.com"},
      {"X-Amz-Date", TEST_AMZ_DATE},
      {"X-Amz-Security-Token", "SESSIONTOKEN"}},
     "",
     TEST_EMPTY_HASH,
     "DELETE\n/v2/email/templates/my%2520tpl\n\nhost:email.us-east-1.amazonaws.com\nx-amz-date:"
     "20150830T123600Z\nx-amz-security-token:SESSIONTOKEN\n\nhost;x-amz-date;x-amz-security-"
     "token\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
     NULL,
     "d9825855c6607e5f7d57d716b36f5fceacc3e075ecec52b5b988d3c88c26cf9e"},
};

/* The SES vectors: sign, then verify the signed request and tamper with it. */
static void test_ses(void)
{
    unsigned char key[32];
    struct sigv4_key_cache cache = {0};
    sigv4_key_cache_get(&cache, TEST_SECRET, "20150830", "us-east-1", "ses", key);
    for (size_t i = 0; i < sizeof test_ses_vectors / sizeof test_ses_vectors[0]; i++) {
        const struct test_ses_vector *v = &test_ses_vectors[i];
        struct test_req t;
        memset(&t, 0, sizeof t);
        snprintf(t.method, sizeof t.method, "%s", v->method);
        t.path = v->path;
        t.path_len = strlen(v->path);
        for (size_t h = 0; h < 4 && v->headers[h][0] != NULL; h++)
            test_add_header(&t, v->headers[h][0], v->headers[h][1]);
        t.body = v->body;
        t.body_len = strlen(v->body);
        char hash[65];
        util_sha256_hex(t.body, t.body_len, hash);
        CHECK_STR(hash, v->want_body_hash, v->name);

        struct buf creq = BUF_INIT, sts = BUF_INIT, authz = BUF_INIT;
        struct sigv4_request r;
        test_to_sigv4(&t, true, hash, &r);
        struct buf sh = BUF_INIT;
        test_signed_headers(&t, &sh);
        CHECK(sigv4_canonical_request(&r, sh.data, sh.len, false, &creq) == SIGV4_OK, "%s",
              v->name);
        CHECK_STR(buf_cstr(&creq), v->want_creq, v->name);
        sigv4_string_to_sign(TEST_AMZ_DATE, TEST_SES_SCOPE, creq.data, creq.len, &sts);
        if (v->want_sts_hash != NULL)
            CHECK_STR(buf_cstr(&sts) + sts.len - 64, v->want_sts_hash, v->name);
        char sig[65];
        sigv4_signature(key, sts.data, sts.len, sig);
        CHECK_STR(sig, v->want_sig, v->name);
        CHECK(sigv4_sign(&r, sh.data, TEST_AKID, key, TEST_AMZ_DATE, TEST_SES_SCOPE, &authz) ==
                  SIGV4_OK,
              "%s", v->name);
        test_verify_header_case(v->name, &t, true, authz.data, authz.len, key, v->want_creq);
        buf_free(&creq);
        buf_free(&sts);
        buf_free(&authz);
        buf_free(&sh);
    }
}

/* One sigv4_parse_authorization case. */
struct test_authz_case {
    const char *in;
    int want;
};

#define TEST_CRED "Credential=AKIDEXAMPLE/20150830/us-east-1/ses/aws4_request"
#define TEST_SH   "SignedHeaders=host;x-amz-date"
#define TEST_SIGF "Signature=" TEST_SIG
#define TEST_ALG  "AWS4-HMAC-SHA256 "
#define TEST_GOOD TEST_ALG TEST_CRED ", " TEST_SH ", " TEST_SIGF

static const struct test_authz_case test_authz_cases[] = {
    {TEST_GOOD, SIGV4_OK},
    {TEST_ALG TEST_SIGF "," TEST_CRED "," TEST_SH, SIGV4_OK},
    {TEST_ALG TEST_SH ",  " TEST_SIGF " ,\t" TEST_CRED, SIGV4_OK},
    {"  AWS4-HMAC-SHA256   " TEST_CRED "   ,   " TEST_SH "   ,   " TEST_SIGF "  ", SIGV4_OK},
    {"AWS4-HMAC-SHA256\t" TEST_CRED ",\t" TEST_SH ",\t" TEST_SIGF, SIGV4_OK},
    {TEST_ALG "Credential=AK/20150830/us-east-1/ses/aws4_request, SignedHeaders=host, " TEST_SIGF,
     SIGV4_OK},
    {TEST_ALG "Credential=AK/20150830/us-east-1/email/aws4_request, "
              "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, " TEST_SIGF,
     SIGV4_OK},
    /* missing fields */
    {TEST_ALG TEST_SH ", " TEST_SIGF, SIGV4_ERR_MALFORMED},
    {TEST_ALG TEST_CRED ", " TEST_SIGF, SIGV4_ERR_MALFORMED},
    {TEST_ALG TEST_CRED ", " TEST_SH, SIGV4_ERR_MALFORMED},
    {"AWS4-HMAC-SHA256", SIGV4_ERR_MALFORMED},
    {"AWS4-HMAC-SHA256   ", SIGV4_ERR_MALFORMED},
    /* duplicates, unknown and broken fields */
    {TEST_GOOD ", " TEST_SIGF, SIGV4_ERR_MALFORMED},
    {TEST_GOOD ", " TEST_CRED, SIGV4_ERR_MALFORMED},
    {TEST_ALG TEST_CRED ", " TEST_SH ", " TEST_SH ", " TEST_SIGF, SIGV4_ERR_MALFORMED},
    {TEST_GOOD ", Extra=1", SIGV4_ERR_MALFORMED},
    {TEST_GOOD ",", SIGV4_ERR_MALFORMED},
    {TEST_GOOD ",,", SIGV4_ERR_MALFORMED},
    {TEST_ALG TEST_CRED ",, " TEST_SH ", " TEST_SIGF, SIGV4_ERR_MALFORMED},
    {TEST_ALG TEST_CRED " " TEST_SH ", " TEST_SIGF, SIGV4_ERR_MALFORMED},
    {TEST_ALG "credential=AKIDEXAMPLE/20150830/us-east-1/ses/aws4_request, " TEST_SH ", " TEST_SIGF,
     SIGV4_ERR_MALFORMED},
    {TEST_ALG "Credential = AKIDEXAMPLE/20150830/us-east-1/ses/aws4_request, " TEST_SH
              ", " TEST_SIGF,
     SIGV4_ERR_MALFORMED},
    {TEST_ALG "Credential, " TEST_SH ", " TEST_SIGF, SIGV4_ERR_MALFORMED},
    /* scope */
    {TEST_ALG "Credential=AKIDEXAMPLE/20150830/us-east-1/ses/aws4_reques, " TEST_SH ", " TEST_SIGF,
     SIGV4_ERR_MALFORMED},
    {TEST_ALG "Credential=AKIDEXAMPLE/20150830/us-east-1/ses/aws4_request/, " TEST_SH
              ", " TEST_SIGF,
     SIGV4_ERR_MALFORMED},
    {TEST_ALG "Credential=AKIDEXAMPLE/20150830/us-east-1/aws4_request, " TEST_SH ", " TEST_SIGF,
     SIGV4_ERR_MALFORMED},
    {TEST_ALG "Credential=AKIDEXAMPLE/20150830/us-east-1/ses/x/aws4_request, " TEST_SH
              ", " TEST_SIGF,
     SIGV4_ERR_MALFORMED},
    {TEST_ALG "Credential=/20150830/us-east-1/ses/aws4_request, " TEST_SH ", " TEST_SIGF,
     SIGV4_ERR_MALFORMED},
    {TEST_ALG "Credential=AKIDEXAMPLE/2015083/us-east-1/ses/aws4_request, " TEST_SH ", " TEST_SIGF,
     SIGV4_ERR_MALFORMED},
    {TEST_ALG "Credential=AKIDEXAMPLE/2015083x/us-east-1/ses/aws4_request, " TEST_SH ", " TEST_SIGF,
     SIGV4_ERR_MALFORMED},
    {TEST_ALG "Credential=AKIDEXAMPLE/20150830//ses/aws4_request, " TEST_SH ", " TEST_SIGF,
     SIGV4_ERR_MALFORMED},
    {TEST_ALG "Credential=AKIDEXAMPLE/20150830/us-east-1//aws4_request, " TEST_SH ", " TEST_SIGF,
     SIGV4_ERR_MALFORMED},
    {TEST_ALG "Credential=, " TEST_SH ", " TEST_SIGF, SIGV4_ERR_MALFORMED},
    /* signed headers */
    {TEST_ALG TEST_CRED ", SignedHeaders=, " TEST_SIGF, SIGV4_ERR_MALFORMED},
    {TEST_ALG TEST_CRED ", SignedHeaders=Host;x-amz-date, " TEST_SIGF, SIGV4_ERR_MALFORMED},
    {TEST_ALG TEST_CRED ", SignedHeaders=x-amz-date;host, " TEST_SIGF, SIGV4_ERR_MALFORMED},
    {TEST_ALG TEST_CRED ", SignedHeaders=host;host, " TEST_SIGF, SIGV4_ERR_MALFORMED},
    {TEST_ALG TEST_CRED ", SignedHeaders=host;;x-amz-date, " TEST_SIGF, SIGV4_ERR_MALFORMED},
    {TEST_ALG TEST_CRED ", SignedHeaders=host;, " TEST_SIGF, SIGV4_ERR_MALFORMED},
    {TEST_ALG TEST_CRED ", SignedHeaders=;host, " TEST_SIGF, SIGV4_ERR_MALFORMED},
    {TEST_ALG TEST_CRED ", SignedHeaders=host;x:y, " TEST_SIGF, SIGV4_ERR_MALFORMED},
    /* signature */
    {TEST_ALG TEST_CRED ", " TEST_SH ", Signature=", SIGV4_ERR_MALFORMED},
    {TEST_ALG TEST_CRED ", " TEST_SH ", Signature=" TEST_SIG "0", SIGV4_ERR_MALFORMED},
    {TEST_ALG TEST_CRED
     ", " TEST_SH ", Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf3",
     SIGV4_ERR_MALFORMED},
    {TEST_ALG TEST_CRED
     ", " TEST_SH ", Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbfzz",
     SIGV4_ERR_MALFORMED},
    {TEST_ALG TEST_CRED
     ", " TEST_SH ", Signature=5FA00FA31553B73EBF1942676E86291E8372FF2A2260956D9B8AAE1D763FBF31",
     SIGV4_ERR_MALFORMED},
    /* other schemes */
    {"AWS4-ECDSA-P256-SHA256 " TEST_CRED ", " TEST_SH ", " TEST_SIGF, SIGV4_ERR_ALGORITHM},
    {"AWS3-HTTPS AWSAccessKeyId=AKIDEXAMPLE, Algorithm=HmacSHA256, Signature=abc=",
     SIGV4_ERR_ALGORITHM},
    {"AWS AKIDEXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=", SIGV4_ERR_ALGORITHM},
    {"aws4-hmac-sha256 " TEST_CRED ", " TEST_SH ", " TEST_SIGF, SIGV4_ERR_ALGORITHM},
    {"AWS4-HMAC-SHA256," TEST_CRED ", " TEST_SH ", " TEST_SIGF, SIGV4_ERR_ALGORITHM},
    {"Bearer abc", SIGV4_ERR_ALGORITHM},
    /* empty */
    {"", SIGV4_ERR_MALFORMED},
    {"   ", SIGV4_ERR_MALFORMED},
};

/* True when the counted string equals the C string. */
static bool test_eq(const char *s, size_t n, const char *want)
{
    return s != NULL && n == strlen(want) && memcmp(s, want, n) == 0;
}

/* sigv4_parse_authorization over the table, and the fields of good input. */
static void test_parse_authorization(void)
{
    for (size_t i = 0; i < sizeof test_authz_cases / sizeof test_authz_cases[0]; i++) {
        const struct test_authz_case *c = &test_authz_cases[i];
        /* Parse from an exact-size heap copy so over-reads trip ASan. */
        size_t n = strlen(c->in);
        char *copy = xmalloc(n ? n : 1);
        memcpy(copy, c->in, n);
        struct sigv4_auth a;
        char err[96] = "";
        int rc = sigv4_parse_authorization(copy, n, &a, err, sizeof err);
        CHECK(rc == c->want, "authz case %zu \"%s\": got %d (%s), want %d", i, c->in, rc, err,
              c->want);
        if (rc == SIGV4_OK) {
            CHECK(a.signature_len == 64 && a.date_len == 8 && a.access_key_id_len > 0,
                  "authz case %zu fields", i);
            CHECK(!a.presigned && a.expires == -1 && a.amz_date == NULL, "authz case %zu form", i);
        } else {
            CHECK(err[0] != '\0', "authz case %zu: no reason given", i);
        }
        free(copy);
    }
    struct sigv4_auth a;
    int rc = sigv4_parse_authorization(TEST_GOOD, strlen(TEST_GOOD), &a, NULL, 0);
    CHECK(rc == SIGV4_OK, "good header with err NULL: %d", rc);
    CHECK(test_eq(a.access_key_id, a.access_key_id_len, "AKIDEXAMPLE"), "access key");
    CHECK(test_eq(a.date, a.date_len, "20150830"), "date");
    CHECK(test_eq(a.region, a.region_len, "us-east-1"), "region");
    CHECK(test_eq(a.service, a.service_len, "ses"), "service");
    CHECK(test_eq(a.signed_headers, a.signed_headers_len, "host;x-amz-date"), "signed headers");
    CHECK(test_eq(a.signature, a.signature_len, TEST_SIG), "signature");
    /* The counted length is honoured: a prefix is not the whole header. */
    rc = sigv4_parse_authorization(TEST_GOOD, strlen(TEST_GOOD) - 1, &a, NULL, 0);
    CHECK(rc == SIGV4_ERR_MALFORMED, "truncated header: %d", rc);
}

/* One sigv4_parse_presigned case. */
struct test_presign_case {
    const char *query;
    int want;
};

#define TEST_QCRED "X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fses%2Faws4_request"
#define TEST_QALG  "X-Amz-Algorithm=AWS4-HMAC-SHA256"
#define TEST_QDATE "X-Amz-Date=20150830T123600Z"
#define TEST_QSH   "X-Amz-SignedHeaders=host"
#define TEST_QSIG  "X-Amz-Signature=" TEST_SIG
#define TEST_QGOOD TEST_QALG "&" TEST_QCRED "&" TEST_QDATE "&" TEST_QSH "&" TEST_QSIG

static const struct test_presign_case test_presign_cases[] = {
    {"", 1},
    {"Action=GetSendQuota", 1},
    {TEST_QCRED "&" TEST_QDATE "&" TEST_QSH "&" TEST_QSIG, 1},
    {"x-amz-algorithm=AWS4-HMAC-SHA256", 1},
    {"%zz=1&a", 1},
    {TEST_QGOOD, SIGV4_OK},
    {TEST_QGOOD "&X-Amz-Expires=3600", SIGV4_OK},
    {TEST_QGOOD "&X-Amz-Expires=604800&Action=x&&", SIGV4_OK},
    {TEST_QGOOD "&X-Amz-Expires=0", SIGV4_OK},
    {"X-Amz-%41lgorithm=AWS4%2DHMAC%2DSHA256&" TEST_QCRED "&" TEST_QDATE
     "&X-Amz-SignedHeaders=content-type%3bhost&" TEST_QSIG,
     SIGV4_OK},
    {"X-Amz-Algorithm=AWS4-ECDSA-P256-SHA256&" TEST_QCRED "&" TEST_QDATE "&" TEST_QSH "&" TEST_QSIG,
     SIGV4_ERR_ALGORITHM},
    {"X-Amz-Algorithm=&" TEST_QCRED, SIGV4_ERR_ALGORITHM},
    {TEST_QALG, SIGV4_ERR_MALFORMED},
    {TEST_QALG "&" TEST_QDATE "&" TEST_QSH "&" TEST_QSIG, SIGV4_ERR_MALFORMED},
    {TEST_QALG "&" TEST_QCRED "&" TEST_QSH "&" TEST_QSIG, SIGV4_ERR_MALFORMED},
    {TEST_QALG "&" TEST_QCRED "&" TEST_QDATE "&" TEST_QSIG, SIGV4_ERR_MALFORMED},
    {TEST_QALG "&" TEST_QCRED "&" TEST_QDATE "&" TEST_QSH, SIGV4_ERR_MALFORMED},
    {TEST_QGOOD "&" TEST_QALG, SIGV4_ERR_MALFORMED},
    {TEST_QGOOD "&" TEST_QSIG, SIGV4_ERR_MALFORMED},
    {TEST_QGOOD "&X-Amz-Expires=1&X-Amz-Expires=1", SIGV4_ERR_MALFORMED},
    {TEST_QGOOD "&X-Amz-Expires=604801", SIGV4_ERR_MALFORMED},
    {TEST_QGOOD "&X-Amz-Expires=99999999999999999999999", SIGV4_ERR_MALFORMED},
    {TEST_QGOOD "&X-Amz-Expires=-1", SIGV4_ERR_MALFORMED},
    {TEST_QGOOD "&X-Amz-Expires=", SIGV4_ERR_MALFORMED},
    {TEST_QGOOD "&X-Amz-Expires=1h", SIGV4_ERR_MALFORMED},
    {TEST_QALG
     "&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fses%2Faws4_reques&" TEST_QDATE
     "&" TEST_QSH "&" TEST_QSIG,
     SIGV4_ERR_MALFORMED},
    {TEST_QALG
     "&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fses%2Faws4_request%zz&" TEST_QDATE
     "&" TEST_QSH "&" TEST_QSIG,
     SIGV4_ERR_MALFORMED},
    {TEST_QALG "&" TEST_QCRED "&X-Amz-Date=20150831T123600Z&" TEST_QSH "&" TEST_QSIG,
     SIGV4_ERR_MALFORMED},
    {TEST_QALG "&" TEST_QCRED "&X-Amz-Date=20150830T123600&" TEST_QSH "&" TEST_QSIG,
     SIGV4_ERR_MALFORMED},
    {TEST_QALG "&" TEST_QCRED "&X-Amz-Date=2015-08-30T12:36:00Z&" TEST_QSH "&" TEST_QSIG,
     SIGV4_ERR_MALFORMED},
    {TEST_QALG "&" TEST_QCRED "&" TEST_QDATE "&X-Amz-SignedHeaders=host%3Bcontent-type&" TEST_QSIG,
     SIGV4_ERR_MALFORMED},
    {TEST_QALG "&" TEST_QCRED "&" TEST_QDATE "&X-Amz-SignedHeaders=&" TEST_QSIG,
     SIGV4_ERR_MALFORMED},
    {TEST_QALG "&" TEST_QCRED "&" TEST_QDATE "&" TEST_QSH "&X-Amz-Signature=abc",
     SIGV4_ERR_MALFORMED},
    {TEST_QALG "&" TEST_QCRED "&" TEST_QDATE "&" TEST_QSH "&X-Amz-Signature", SIGV4_ERR_MALFORMED},
};

/* sigv4_parse_presigned over the table, and its storage handling. */
static void test_parse_presigned(void)
{
    for (size_t i = 0; i < sizeof test_presign_cases / sizeof test_presign_cases[0]; i++) {
        const struct test_presign_case *c = &test_presign_cases[i];
        size_t n = strlen(c->query);
        char *copy = xmalloc(n ? n : 1);
        memcpy(copy, c->query, n);
        struct buf storage = BUF_INIT;
        struct sigv4_auth a;
        char err[96] = "";
        int rc = sigv4_parse_presigned(copy, n, &a, &storage, err, sizeof err);
        CHECK(rc == c->want, "presign case %zu \"%s\": got %d (%s), want %d", i, c->query, rc, err,
              c->want);
        if (rc == SIGV4_OK) {
            CHECK(a.presigned && a.signature_len == 64 && a.amz_date_len == 16,
                  "presign case %zu fields", i);
            CHECK(test_eq(a.access_key_id, a.access_key_id_len, "AKIDEXAMPLE") &&
                      test_eq(a.service, a.service_len, "ses"),
                  "presign case %zu scope", i);
        } else if (rc < 0) {
            CHECK(err[0] != '\0', "presign case %zu: no reason given", i);
        }
        free(copy);
        buf_free(&storage);
    }
    /* Storage that already holds data, then grows: pointers stay valid. */
    struct buf storage = BUF_INIT;
    for (int i = 0; i < 100; i++)
        buf_adds(&storage, "prior contents ");
    struct sigv4_auth a;
    const char *q = TEST_QGOOD "&X-Amz-Expires=3600&X-Amz-SignedHeaders2=x";
    int rc = sigv4_parse_presigned(q, strlen(q), &a, &storage, NULL, 0);
    CHECK(rc == SIGV4_OK, "presign with prior storage: %d", rc);
    CHECK(test_eq(a.region, a.region_len, "us-east-1"), "presigned region");
    CHECK(test_eq(a.signed_headers, a.signed_headers_len, "host"), "presigned signed headers");
    CHECK(test_eq(a.amz_date, a.amz_date_len, TEST_AMZ_DATE), "presigned date");
    CHECK(test_eq(a.signature, a.signature_len, TEST_SIG), "presigned signature");
    CHECK(a.expires == 3600, "presigned expires %ld", a.expires);
    CHECK(a.signature >= storage.data && a.signature < storage.data + storage.len,
          "presigned signature points into storage");
    CHECK(strncmp(storage.data, "prior contents ", 15) == 0, "prior storage kept");
    buf_free(&storage);
    rc = sigv4_parse_presigned(NULL, 0, &a, &storage, NULL, 0);
    CHECK(rc == 1, "NULL query: %d", rc);
    buf_free(&storage);
}

/* One sigv4_canonical_uri case. */
struct test_uri_case {
    const char *path;
    bool normalize;
    const char *want; /* NULL: SIGV4_ERR_PATH */
};

static const struct test_uri_case test_uri_cases[] = {
    {"", true, "/"},
    {"", false, "/"},
    {"/", true, "/"},
    {"/", false, "/"},
    {"//", true, "/"},
    {"//", false, "//"},
    {"///", true, "/"},
    {"/./", true, "/"},
    {"/./", false, "/./"},
    {"/.", true, "/"},
    {"/..", true, "/"},
    {"/../..", true, "/"},
    {"/../../a", true, "/a"},
    {"/../a/../../b/", true, "/b/"},
    {"/example/..", true, "/"},
    {"/example/../", true, "/"},
    {"/example1/example2/../..", true, "/"},
    {"/example1/example2/../..", false, "/example1/example2/../.."},
    {"/./example", true, "/example"},
    {"//example//", true, "/example/"},
    {"//example//", false, "//example//"},
    {"/a/b/../c", true, "/a/c"},
    {"/a/./b/", true, "/a/b/"},
    {"/a/b/.", true, "/a/b"},
    {"/a/b/..", true, "/a"},
    {"/a/b/../", true, "/a/"},
    {"/a//b//c", true, "/a/b/c"},
    {"/.../", true, "/.../"},
    {"/..a/b../.a./", true, "/..a/b../.a./"},
    {"/%2E%2E/a", true, "/%252E%252E/a"},
    {"/example space/", true, "/example%20space/"},
    {"/example space/", false, "/example%20space/"},
    {"/example/$delete", true, "/example/%24delete"},
    {"/\xe1\x88\xb4", true, "/%E1%88%B4"},
    {"/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", true,
     "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"},
    {"/v2/email/templates/my%20tpl", true, "/v2/email/templates/my%2520tpl"},
    {"/v2/email/templates/my%20tpl%2F%C3%BC", true,
     "/v2/email/templates/my%2520tpl%252F%25C3%25BC"},
    {"/identities/a%2Bb%40example.com", true, "/identities/a%252Bb%2540example.com"},
    {"/a+b=c&d?#", true, "/a%2Bb%3Dc%26d%3F%23"},
    {"/\x01\x7f\xff", false, "/%01%7F%FF"},
    {"relative", true, NULL},
    {"relative/path", false, NULL},
    {"*", true, NULL},
    {"http://example.com/", true, NULL},
};

/* sigv4_canonical_uri over the table, appending to existing contents. */
static void test_canonical_uri(void)
{
    for (size_t i = 0; i < sizeof test_uri_cases / sizeof test_uri_cases[0]; i++) {
        const struct test_uri_case *c = &test_uri_cases[i];
        struct buf out = BUF_INIT;
        buf_adds(&out, "X");
        int rc = sigv4_canonical_uri(c->path, strlen(c->path), c->normalize, &out);
        if (c->want == NULL) {
            CHECK(rc == SIGV4_ERR_PATH, "uri case %zu \"%s\": got %d", i, c->path, rc);
        } else {
            CHECK(rc == SIGV4_OK, "uri case %zu \"%s\": got %d", i, c->path, rc);
            CHECK(strcmp(buf_cstr(&out) + 1, c->want) == 0 && out.data[0] == 'X',
                  "uri case %zu \"%s\" (normalize %d): got \"%s\", want \"%s\"", i, c->path,
                  c->normalize, buf_cstr(&out), c->want);
        }
        buf_free(&out);
    }
}

/* One sigv4_canonical_query case. */
struct test_query_case {
    const char *query;
    bool skip_signature;
    const char *want; /* NULL: SIGV4_ERR_QUERY */
};

static const struct test_query_case test_query_cases[] = {
    {"", false, ""},
    {"a=b", false, "a=b"},
    {"b=2&a=1", false, "a=1&b=2"},
    {"a=2&a=1", false, "a=1&a=2"},
    {"Param1=value2&Param1=Value1", false, "Param1=Value1&Param1=value2"},
    {"a&b=", false, "a=&b="},
    {"&&a=1&&", false, "a=1"},
    {"&", false, ""},
    {"=v", false, "=v"},
    {"a=b=c", false, "a=b%3Dc"},
    {"a=1+2", false, "a=1%2B2"},
    {"a=1%2B2", false, "a=1%2B2"},
    {"a=1 2", false, "a=1%202"},
    {"a=1%202", false, "a=1%202"},
    {"a=%7e%7E", false, "a=~~"},
    {"a=%2f", false, "a=%2F"},
    {"%61=b", false, "a=b"},
    {"Param-3=Value3&Param=Value2&%E1%88%B4=Value1", false,
     "%E1%88%B4=Value1&Param=Value2&Param-3=Value3"},
    {"\xe1\x88\xb4=bar", false, "%E1%88%B4=bar"},
    {"a-b=1&a=2", false, "a=2&a-b=1"},
    {"a=1&A=2", false, "A=2&a=1"},
    {"a=%00", false, "a=%00"},
    {"a=%zz", false, NULL},
    {"a=%4", false, NULL},
    {"a=%", false, NULL},
    {"%=1", false, NULL},
    {"b=1&a=%g0", false, NULL},
    {"X-Amz-Signature=abc&a=1", false, "X-Amz-Signature=abc&a=1"},
    {"X-Amz-Signature=abc&a=1", true, "a=1"},
    {"X-Amz-Signatur%65=abc&a=1", true, "a=1"},
    {"x-amz-signature=abc&a=1", true, "a=1&x-amz-signature=abc"},
    {"X-Amz-Signature", true, ""},
    {"X-Amz-Date=20150830T123600Z&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%"
     "2F20150830%2Fus-east-1%2Fservice%2Faws4_request",
     false,
     "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%"
     "2Fservice%2Faws4_request&X-Amz-Date=20150830T123600Z"},
};

/* sigv4_canonical_query over the table, plus one with many parameters. */
static void test_canonical_query(void)
{
    for (size_t i = 0; i < sizeof test_query_cases / sizeof test_query_cases[0]; i++) {
        const struct test_query_case *c = &test_query_cases[i];
        size_t n = strlen(c->query);
        char *copy = xmalloc(n ? n : 1);
        memcpy(copy, c->query, n);
        struct buf out = BUF_INIT;
        buf_adds(&out, "X");
        int rc = sigv4_canonical_query(copy, n, c->skip_signature, &out);
        if (c->want == NULL) {
            CHECK(rc == SIGV4_ERR_QUERY, "query case %zu \"%s\": got %d", i, c->query, rc);
            CHECK(strcmp(buf_cstr(&out), "X") == 0, "query case %zu: output not restored", i);
        } else {
            CHECK(rc == SIGV4_OK, "query case %zu \"%s\": got %d", i, c->query, rc);
            CHECK(strcmp(buf_cstr(&out) + 1, c->want) == 0 && out.data[0] == 'X',
                  "query case %zu \"%s\": got \"%s\", want \"%s\"", i, c->query, buf_cstr(&out),
                  c->want);
        }
        free(copy);
        buf_free(&out);
    }
    struct buf out = BUF_INIT;
    CHECK(sigv4_canonical_query(NULL, 0, false, &out) == SIGV4_OK && out.len == 0, "NULL query");

    /* More parameters than the on-stack table holds, in reverse order. */
    struct buf q = BUF_INIT, want = BUF_INIT;
    for (int i = 299; i >= 0; i--)
        buf_printf(&q, "%sp%03d=v %d", i == 299 ? "" : "&", i, i);
    for (int i = 0; i < 300; i++)
        buf_printf(&want, "%sp%03d=v%%20%d", i == 0 ? "" : "&", i, i);
    int rc = sigv4_canonical_query(q.data, q.len, false, &out);
    CHECK(rc == SIGV4_OK && strcmp(buf_cstr(&out), want.data) == 0, "300 parameters: %d", rc);
    buf_reset(&out);
    buf_adds(&q, "&bad=%");
    rc = sigv4_canonical_query(q.data, q.len, false, &out);
    CHECK(rc == SIGV4_ERR_QUERY && out.len == 0, "300 parameters then a bad one: %d", rc);
    buf_free(&q);
    buf_free(&want);
    buf_free(&out);
}

/* One canonical-request case over a fixed GET / with the given headers. */
struct test_hdr_case {
    const char *name;
    const char *headers[5][2];
    const char *signed_headers;
    int want_rc;
    const char *want_block; /* canonical headers block, when want_rc is OK */
};

static const struct test_hdr_case test_hdr_cases[] = {
    {"trim and collapse",
     {{"Host", "  example.com  "}, {"My", "  a   b \t\t c  "}},
     "host;my",
     SIGV4_OK,
     "host:example.com\nmy:a b c\n"},
    {"quotes collapse too", {{"My", "\"a   b   c\""}}, "my", SIGV4_OK, "my:\"a b c\"\n"},
    {"obs-fold LF",
     {{"My", "value1\n  value2\n     value3"}},
     "my",
     SIGV4_OK,
     "my:value1 value2 value3\n"},
    {"obs-fold CRLF",
     {{"My", "value1\r\n\tvalue2\r\n value3"}},
     "my",
     SIGV4_OK,
     "my:value1 value2 value3\n"},
    {"trailing obs-fold", {{"My", "value1\r\n  "}}, "my", SIGV4_OK, "my:value1\n"},
    {"leading obs-fold", {{"My", "\n value1"}}, "my", SIGV4_OK, "my:value1\n"},
    {"empty value", {{"My", ""}, {"Host", "h"}}, "host;my", SIGV4_OK, "host:h\nmy:\n"},
    {"blank value", {{"My", " \t "}}, "my", SIGV4_OK, "my:\n"},
    {"repeated joined in order",
     {{"My", "z"}, {"Host", "h"}, {"MY", " a "}, {"my", "m"}},
     "host;my",
     SIGV4_OK,
     "host:h\nmy:z,a,m\n"},
    {"name case-insensitive",
     {{"HOST", "h"}, {"X-AMZ-DATE", "d"}},
     "host;x-amz-date",
     SIGV4_OK,
     "host:h\nx-amz-date:d\n"},
    {"value case kept", {{"My", "VaLuE"}}, "my", SIGV4_OK, "my:VaLuE\n"},
    {"unsigned headers ignored",
     {{"Host", "h"}, {"User-Agent", "x"}},
     "host",
     SIGV4_OK,
     "host:h\n"},
    {"missing header", {{"Host", "h"}}, "host;x-amz-date", SIGV4_ERR_MISSING_HEADER, NULL},
    {"prefix is not a match",
     {{"Hos", "h"}, {"Hostx", "h"}},
     "host",
     SIGV4_ERR_MISSING_HEADER,
     NULL},
    {"empty signed name at the end", {{"Host", "h"}}, "host;", SIGV4_ERR_MISSING_HEADER, NULL},
    {"no signed headers", {{"Host", "h"}}, "", SIGV4_OK, ""},
    {"empty signed name inside", {{"Host", "h"}}, ";host", SIGV4_ERR_MISSING_HEADER, NULL},
};

/* Header canonicalization and errors of sigv4_canonical_request. */
static void test_canonical_headers(void)
{
    for (size_t i = 0; i < sizeof test_hdr_cases / sizeof test_hdr_cases[0]; i++) {
        const struct test_hdr_case *c = &test_hdr_cases[i];
        struct sigv4_header hs[5];
        size_t n = 0;
        for (; n < 5 && c->headers[n][0] != NULL; n++) {
            hs[n].name = c->headers[n][0];
            hs[n].name_len = strlen(hs[n].name);
            hs[n].value = c->headers[n][1];
            hs[n].value_len = strlen(hs[n].value);
        }
        struct sigv4_request r = {"GET", "/", 1, NULL, 0, hs, n, TEST_EMPTY_HASH, true};
        struct buf out = BUF_INIT, want = BUF_INIT;
        int rc =
            sigv4_canonical_request(&r, c->signed_headers, strlen(c->signed_headers), false, &out);
        CHECK(rc == c->want_rc, "%s: got %d, want %d", c->name, rc, c->want_rc);
        if (c->want_block != NULL) {
            buf_printf(&want, "GET\n/\n\n%s\n%s\n%s", c->want_block, c->signed_headers,
                       TEST_EMPTY_HASH);
            CHECK(strcmp(buf_cstr(&out), want.data) == 0, "%s: got\n%s\nwant\n%s", c->name,
                  buf_cstr(&out), want.data);
        }
        buf_free(&out);
        buf_free(&want);
    }

    /* Path and query errors come through, and the presigned flag drops the
     * signature from the query. */
    struct sigv4_header host = {"Host", 4, "h", 1};
    struct sigv4_request r = {"GET", "x", 1, NULL, 0, &host, 1, TEST_EMPTY_HASH, true};
    struct buf out = BUF_INIT;
    CHECK(sigv4_canonical_request(&r, "host", 4, false, &out) == SIGV4_ERR_PATH, "path error");
    r.path = "/";
    r.query = "a=%x";
    r.query_len = 4;
    buf_reset(&out);
    CHECK(sigv4_canonical_request(&r, "host", 4, false, &out) == SIGV4_ERR_QUERY, "query error");
    r.query = "X-Amz-Signature=1&b=2";
    r.query_len = strlen(r.query);
    buf_reset(&out);
    CHECK(sigv4_canonical_request(&r, "host", 4, true, &out) == SIGV4_OK, "presigned");
    CHECK_STR(buf_cstr(&out), "GET\n/\nb=2\nhost:h\n\nhost\n" TEST_EMPTY_HASH, "presigned creq");
    buf_reset(&out);
    CHECK(sigv4_canonical_request(&r, "host", 4, false, &out) == SIGV4_OK, "not presigned");
    CHECK_STR(buf_cstr(&out), "GET\n/\nX-Amz-Signature=1&b=2\nhost:h\n\nhost\n" TEST_EMPTY_HASH,
              "not presigned creq");
    /* A payload hash that is not 64 hex characters is used as given. */
    r.payload_hash = "UNSIGNED-PAYLOAD";
    r.query = NULL;
    r.query_len = 0;
    buf_reset(&out);
    CHECK(sigv4_canonical_request(&r, "host", 4, false, &out) == SIGV4_OK, "unsigned payload");
    CHECK_STR(buf_cstr(&out), "GET\n/\n\nhost:h\n\nhost\nUNSIGNED-PAYLOAD", "unsigned payload");
    buf_free(&out);
}

/* Verify's own checks: signature length, scope date, creq_out contents. */
static void test_verify_edges(void)
{
    unsigned char key[32];
    sigv4_signing_key(TEST_SECRET, "20150830", "us-east-1", "ses", key);
    struct sigv4_header hs[2] = {{"Host", 4, "example.com", 11},
                                 {"X-Amz-Date", 10, TEST_AMZ_DATE, 16}};
    struct sigv4_request r = {"GET", "/", 1, NULL, 0, hs, 2, TEST_EMPTY_HASH, true};
    struct buf authz = BUF_INIT, creq = BUF_INIT;
    CHECK(sigv4_sign(&r, "host;x-amz-date", TEST_AKID, key, TEST_AMZ_DATE, TEST_SES_SCOPE,
                     &authz) == SIGV4_OK,
          "sign");
    struct sigv4_auth a;
    CHECK(sigv4_parse_authorization(authz.data, authz.len, &a, NULL, 0) == SIGV4_OK, "parse");
    buf_adds(&creq, "old contents");
    CHECK(sigv4_verify(&r, &a, TEST_AMZ_DATE, 16, key, &creq) == SIGV4_OK, "verify");
    CHECK_STR(
        buf_cstr(&creq),
        "GET\n/"
        "\n\nhost:example.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" TEST_EMPTY_HASH,
        "creq_out holds only the canonical request");

    /* Signatures of the wrong length, in exact-size buffers (ASan sees any
     * read past them). */
    struct sigv4_auth bad = a;
    for (size_t n = 0; n <= 66; n += 1) {
        if (n == 64)
            continue;
        char *s = xmalloc(n ? n : 1);
        memset(s, 'a', n);
        if (n > 0)
            memcpy(s, a.signature, n < 64 ? n : 64);
        bad.signature = s;
        bad.signature_len = n;
        int rc = sigv4_verify(&r, &bad, TEST_AMZ_DATE, 16, key, NULL);
        CHECK(rc == SIGV4_ERR_MISMATCH, "signature of length %zu: %d", n, rc);
        free(s);
    }
    bad = a;
    bad.signature = NULL;
    bad.signature_len = 0;
    CHECK(sigv4_verify(&r, &bad, TEST_AMZ_DATE, 16, key, NULL) == SIGV4_ERR_MISMATCH, "NULL sig");

    /* A correct signature whose scope date is not the request's day. */
    unsigned char old_key[32];
    sigv4_signing_key(TEST_SECRET, "20150829", "us-east-1", "ses", old_key);
    buf_reset(&authz);
    CHECK(sigv4_sign(&r, "host;x-amz-date", TEST_AKID, old_key, TEST_AMZ_DATE,
                     "20150829/us-east-1/ses/aws4_request", &authz) == SIGV4_ERR_MALFORMED &&
              authz.len == 0,
          "sign refuses a scope date that is not X-Amz-Date's day");
    /* A client may still send one: build it from the parts. */
    struct buf sts = BUF_INIT;
    char sig[65];
    CHECK(sigv4_canonical_request(&r, "host;x-amz-date", 15, false, &creq) == SIGV4_OK, "creq");
    sigv4_string_to_sign(TEST_AMZ_DATE, "20150829/us-east-1/ses/aws4_request", creq.data, creq.len,
                         &sts);
    sigv4_signature(old_key, sts.data, sts.len, sig);
    buf_printf(&authz,
               SIGV4_ALGORITHM " Credential=" TEST_AKID "/20150829/us-east-1/ses/aws4_request, "
                               "SignedHeaders=host;x-amz-date, Signature=%s",
               sig);
    buf_free(&sts);
    buf_reset(&creq);
    CHECK(sigv4_parse_authorization(authz.data, authz.len, &a, NULL, 0) == SIGV4_OK, "parse");
    CHECK(sigv4_verify(&r, &a, TEST_AMZ_DATE, 16, old_key, NULL) == SIGV4_ERR_MISMATCH,
          "scope date differs from X-Amz-Date");
    CHECK(sigv4_verify(&r, &a, "2015", 4, old_key, NULL) == SIGV4_ERR_MISMATCH, "short date");

    /* Errors of the canonical request come back from verify. */
    buf_reset(&authz);
    sigv4_sign(&r, "host;x-amz-date", TEST_AKID, key, TEST_AMZ_DATE, TEST_SES_SCOPE, &authz);
    CHECK(sigv4_parse_authorization(authz.data, authz.len, &a, NULL, 0) == SIGV4_OK, "parse");
    r.nheaders = 1;
    CHECK(sigv4_verify(&r, &a, TEST_AMZ_DATE, 16, key, NULL) == SIGV4_ERR_MISSING_HEADER,
          "missing signed header");
    r.nheaders = 2;
    r.path = "nope";
    r.path_len = 4;
    CHECK(sigv4_verify(&r, &a, TEST_AMZ_DATE, 16, key, NULL) == SIGV4_ERR_PATH, "bad path");
    CHECK(sigv4_sign(&r, "host", TEST_AKID, key, TEST_AMZ_DATE, TEST_SES_SCOPE, &creq) ==
              SIGV4_ERR_PATH,
          "sign with bad path");
    buf_free(&authz);
    buf_free(&creq);
}

/* One sigv4_sign case: what it is given and what it must return. Headers
 * are "name:value" strings, counted so they may hold NUL; they come after
 * Host and X-Amz-Date. A NULL key id, scope or date stands for TEST_AKID,
 * TEST_SES_SCOPE or TEST_AMZ_DATE. */
struct test_sign_header {
    const char *s;
    size_t n;
};

struct test_sign_case {
    const char *name;
    const char *signed_headers;
    int want;
    struct test_sign_header headers[2];
    const char *akid;
    const char *scope;
    const char *amz_date;
};

#define TEST_H(str) .s = (str), .n = sizeof(str) - 1

static const struct test_sign_case test_sign_cases[] = {
    {"plain", "host;x-amz-date", .want = SIGV4_OK},
    {"email service", "host", .want = SIGV4_OK, .akid = "AK",
     .scope = "20150830/eu-west-1/email/aws4_request"},
    {"token characters in a name", "!#$%&'*+-.^_`|~", .want = SIGV4_OK,
     .headers = {{TEST_H("!#$%&'*+-.^_`|~:v")}}},
    {"percent sequence in a name", "x-%20", .want = SIGV4_OK, .headers = {{TEST_H("X-%20:v")}}},
    {"odd bytes in a value", "host;x-v", .want = SIGV4_OK,
     .headers = {{TEST_H("x-v:\x17\0\xa6 %Ta  b")}}},
    /* The fuzzer's finding: "'  " is a header name here, but the parser
     * trims the spaces and would look for a header "'". */
    {"name with trailing spaces", "'  ", .want = SIGV4_ERR_MALFORMED,
     .headers = {{TEST_H("'  :")}, {TEST_H("XA-:")}}},
    {"name with a space", "x a", .want = SIGV4_ERR_MALFORMED, .headers = {{TEST_H("x a:v")}}},
    {"name with a tab", "x\ta", .want = SIGV4_ERR_MALFORMED, .headers = {{TEST_H("x\ta:v")}}},
    {"name with a control byte", "h\x17", .want = SIGV4_ERR_MALFORMED,
     .headers = {{TEST_H("h\x17:v")}}},
    {"name with a high byte", "h\xa6", .want = SIGV4_ERR_MALFORMED,
     .headers = {{TEST_H("h\xa6:v")}}},
    {"name with a comma", "a,b", .want = SIGV4_ERR_MALFORMED, .headers = {{TEST_H("a,b:v")}}},
    {"upper-case name", "Host", .want = SIGV4_ERR_MALFORMED},
    {"empty list", "", .want = SIGV4_ERR_MALFORMED},
    {"empty name", "host;", .want = SIGV4_ERR_MALFORMED, .headers = {{TEST_H(":v")}}},
    {"empty first name", ";host", .want = SIGV4_ERR_MALFORMED, .headers = {{TEST_H(":v")}}},
    {"unsorted", "x-amz-date;host", .want = SIGV4_ERR_MALFORMED},
    {"repeated", "host;host", .want = SIGV4_ERR_MALFORMED},
    {"empty key id", "host", .want = SIGV4_ERR_MALFORMED, .akid = ""},
    {"key id with a space", "host", .want = SIGV4_ERR_MALFORMED, .akid = "AK ID"},
    {"key id with a comma", "host", .want = SIGV4_ERR_MALFORMED, .akid = "AK,ID"},
    {"key id with DEL", "host", .want = SIGV4_ERR_MALFORMED, .akid = "AK\x7f"},
    {"key id with a slash", "host", .want = SIGV4_ERR_MALFORMED, .akid = "AK/ID",
     .scope = "20150830/us-east-1/aws4_request"},
    {"scope without terminator", "host", .want = SIGV4_ERR_MALFORMED,
     .scope = "20150830/us-east-1/ses"},
    {"scope with an extra part", "host", .want = SIGV4_ERR_MALFORMED, .scope = TEST_SES_SCOPE "/x"},
    {"scope with an empty region", "host", .want = SIGV4_ERR_MALFORMED,
     .scope = "20150830//ses/aws4_request"},
    {"scope with a space", "host", .want = SIGV4_ERR_MALFORMED,
     .scope = "20150830/us east-1/ses/aws4_request"},
    {"scope date not digits", "host", .want = SIGV4_ERR_MALFORMED,
     .scope = "2015083x/us-east-1/ses/aws4_request", .amz_date = "2015083xT123600Z"},
    {"X-Amz-Date on another day", "host", .want = SIGV4_ERR_MALFORMED,
     .amz_date = "20150831T000000Z"},
    {"short X-Amz-Date", "host", .want = SIGV4_ERR_MALFORMED, .amz_date = "2015"},
    {"missing header", "host;x-other", .want = SIGV4_ERR_MISSING_HEADER},
};

/* sigv4_sign refuses what could not be parsed and verified back, leaves out
 * untouched then, and what it does write parses to its inputs and verifies. */
static void test_sign_refuses(void)
{
    for (size_t i = 0; i < sizeof test_sign_cases / sizeof test_sign_cases[0]; i++) {
        const struct test_sign_case *c = &test_sign_cases[i];
        const char *akid = c->akid ? c->akid : TEST_AKID;
        const char *scope = c->scope ? c->scope : TEST_SES_SCOPE;
        const char *amz_date = c->amz_date ? c->amz_date : TEST_AMZ_DATE;
        struct sigv4_header hs[4] = {{"Host", 4, "example.com", 11},
                                     {"X-Amz-Date", 10, amz_date, strlen(amz_date)}};
        size_t nh = 2;
        for (size_t h = 0; h < 2 && c->headers[h].s != NULL; h++) {
            const struct test_sign_header *th = &c->headers[h];
            const char *colon = memchr(th->s, ':', th->n);
            size_t nl = (size_t)(colon - th->s);
            hs[nh++] = (struct sigv4_header){th->s, nl, colon + 1, th->n - nl - 1};
        }
        struct sigv4_request r = {"POST", "/", 1, NULL, 0, hs, nh, TEST_EMPTY_HASH, true};
        char date8[9];
        snprintf(date8, sizeof date8, "%.8s", scope);
        unsigned char key[32];
        sigv4_signing_key(TEST_SECRET, date8, "us-east-1", "ses", key);
        struct buf authz = BUF_INIT;
        buf_adds(&authz, "Authorization: ");
        int rc = sigv4_sign(&r, c->signed_headers, akid, key, amz_date, scope, &authz);
        CHECK(rc == c->want, "%s: sign returned %d, want %d", c->name, rc, c->want);
        if (rc != SIGV4_OK) {
            CHECK_STR(buf_cstr(&authz), "Authorization: ", c->name);
            buf_free(&authz);
            continue;
        }
        struct sigv4_auth a;
        const char *v = authz.data + 15;
        rc = sigv4_parse_authorization(v, authz.len - 15, &a, NULL, 0);
        CHECK(rc == SIGV4_OK, "%s: parse returned %d", c->name, rc);
        if (rc == SIGV4_OK) {
            CHECK(test_eq(a.signed_headers, a.signed_headers_len, c->signed_headers) &&
                      test_eq(a.access_key_id, a.access_key_id_len, akid),
                  "%s: parsed back different fields", c->name);
            rc = sigv4_verify(&r, &a, amz_date, strlen(amz_date), key, NULL);
            CHECK(rc == SIGV4_OK, "%s: verify returned %d", c->name, rc);
        }
        buf_free(&authz);
    }
}

/* Signing keys and the one-entry cache. */
static void test_keys(void)
{
    unsigned char k1[32], k2[32], k3[32];
    char hex[65];
    /* The derived key of the AWS documentation example (IAM user guide). */
    sigv4_signing_key(TEST_SECRET, "20150830", "us-east-1", "iam", k1);
    util_hex(k1, 32, hex);
    CHECK_STR(hex, "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9",
              "documented signing key");

    struct sigv4_key_cache c;
    memset(&c, 0, sizeof c);
    sigv4_key_cache_get(&c, TEST_SECRET, "20150830", "us-east-1", "ses", k1);
    sigv4_signing_key(TEST_SECRET, "20150830", "us-east-1", "ses", k2);
    CHECK(memcmp(k1, k2, 32) == 0 && c.valid, "cache miss derives the key");
    /* A hit is served from the cache: the secret is not consulted. */
    sigv4_key_cache_get(&c, "other secret", "20150830", "us-east-1", "ses", k3);
    CHECK(memcmp(k3, k2, 32) == 0, "cache hit");
    sigv4_key_cache_get(&c, TEST_SECRET, "20150831", "us-east-1", "ses", k1);
    sigv4_signing_key(TEST_SECRET, "20150831", "us-east-1", "ses", k2);
    CHECK(memcmp(k1, k2, 32) == 0 && strcmp(c.date, "20150831") == 0, "new date refreshes");
    sigv4_key_cache_get(&c, TEST_SECRET, "20150831", "eu-west-1", "ses", k1);
    sigv4_signing_key(TEST_SECRET, "20150831", "eu-west-1", "ses", k2);
    CHECK(memcmp(k1, k2, 32) == 0, "new region refreshes");
    sigv4_key_cache_get(&c, TEST_SECRET, "20150831", "eu-west-1", "email", k1);
    sigv4_signing_key(TEST_SECRET, "20150831", "eu-west-1", "email", k2);
    CHECK(memcmp(k1, k2, 32) == 0, "new service refreshes");

    /* A region too long for the cache is derived every time, not cached. */
    char region[100];
    memset(region, 'r', sizeof region - 1);
    region[sizeof region - 1] = '\0';
    sigv4_key_cache_get(&c, TEST_SECRET, "20150831", region, "ses", k1);
    sigv4_signing_key(TEST_SECRET, "20150831", region, "ses", k2);
    CHECK(memcmp(k1, k2, 32) == 0 && !c.valid, "long region not cached");

    /* Long secrets are fine too. */
    char secret[300];
    memset(secret, 's', sizeof secret - 1);
    secret[sizeof secret - 1] = '\0';
    sigv4_signing_key(secret, "20150830", "us-east-1", "ses", k1);
    unsigned char manual[32], t[32];
    struct buf k = BUF_INIT;
    buf_printf(&k, "AWS4%s", secret);
    util_hmac_sha256(k.data, k.len, "20150830", 8, t);
    util_hmac_sha256(t, 32, "us-east-1", 9, manual);
    util_hmac_sha256(manual, 32, "ses", 3, t);
    util_hmac_sha256(t, 32, "aws4_request", 12, manual);
    CHECK(memcmp(k1, manual, 32) == 0, "long secret");
    buf_free(&k);
}

int main(void)
{
    test_parse_authorization();
    test_parse_presigned();
    test_canonical_uri();
    test_canonical_query();
    test_canonical_headers();
    test_verify_edges();
    test_sign_refuses();
    test_keys();
    test_ses();
    test_suites();
    return check_done("test_sigv4");
}
