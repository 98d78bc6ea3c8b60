/* fuzz_sesreq: the SES request model on arbitrary input.
 *
 * The first byte picks a mode (modulo 6):
 *   0  v1 parameters (sesreq_parse_v1) from the rest, and the rest as a POST
 *      whose query string ends at the first '\n' (sesreq_parse_v1_request)
 *   1  v2 SendEmail body (POST /v2/email/outbound-emails)
 *   2  v2 SendBulkEmail or SendCustomVerificationEmail body
 *   3  v2 request: a method byte, a path up to '\n', then the body
 *   4  v1 SendRawEmail whose raw message is the rest (base64-encoded here)
 *   5  v2 SendEmail with Raw content whose message is the rest
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "buf.h"
#include "form.h"
#include "sesreq.h"

/* Abort when cond is false, so that libFuzzer reports the input. */
static void fuzz_sesreq_assert(int cond)
{
    if (!cond)
        abort();
}

/* Append the base64 of the n bytes at s. */
static void fuzz_sesreq_b64(const char *s, size_t n, struct buf *out)
{
    buf_reserve(out, (n + 2) / 3 * 4);
    int k =
        EVP_EncodeBlock((unsigned char *)out->data + out->len, (const unsigned char *)s, (int)n);
    out->len += (size_t)k;
    out->data[out->len] = '\0';
}

/* Check a parse result: invariants on success, an error code on failure. */
static void fuzz_sesreq_check(int rc, struct sesreq *r, const struct seserr *e)
{
    static char s1[] = "s@example.com", s2[] = "*@example.org";
    static char a1[] = "SendEmail", a2[] = "GetAccount", star[] = "*";
    char *const all[] = {star};
    char *const senders[] = {s1, s2};
    char *const actions[] = {a1, a2};
    if (rc != 0) {
        fuzz_sesreq_assert(rc == -1);
        fuzz_sesreq_assert(e->code > SESERR_NONE && e->code < SESERR_COUNT);
        fuzz_sesreq_assert(memchr(e->message, '\0', sizeof e->message) != NULL);
        return;
    }
    /* an unknown action is forwarded untouched: nothing parsed, no sender,
     * and only "*" allows it */
    if (r->action == NULL)
        fuzz_sesreq_assert(r->kind == SESREQ_OTHER && r->nfrom == 0 && r->json == NULL && !r->raw);
    sesreq_action_allowed(actions, 2, r->action);
    fuzz_sesreq_assert(sesreq_action_allowed(all, 1, r->action));
    for (size_t i = 0; i < r->nfrom; i++) {
        fuzz_sesreq_assert(strchr(r->from[i], '@') != NULL);
        sesreq_sender_allowed(senders, 2, r->from[i]);
    }
    fuzz_sesreq_assert(r->kind != SESREQ_OTHER || r->nfrom == 0);
}

/* Parse a v2 request and check it: a request that parses is under
 * /v2/email (the query aside). */
static void fuzz_sesreq_v2(const char *method, const char *path, const char *body, size_t len)
{
    struct sesreq r;
    memset(&r, 0, sizeof r);
    struct seserr e = {SESERR_NONE, ""};
    size_t plen = strcspn(path, "?");
    int rc = sesreq_parse_v2(method, path, strlen(path), body, len, &r, &e);
    fuzz_sesreq_check(rc, &r, &e);
    if (rc == 0)
        fuzz_sesreq_assert(plen >= 9 && memcmp(path, "/v2/email", 9) == 0 &&
                           (plen == 9 || path[9] == '/'));
    sesreq_cleanup(&r);
}

/* Parse v1 parameters and check them. */
static void fuzz_sesreq_v1(const char *params, size_t len)
{
    struct sesreq r;
    memset(&r, 0, sizeof r);
    struct seserr e = {SESERR_NONE, ""};
    int rc = sesreq_parse_v1(params, len, &r, &e);
    fuzz_sesreq_check(rc, &r, &e);
    sesreq_cleanup(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* libFuzzer entry point. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = {"GET", "POST", "PUT", "DELETE"};
    if (size == 0)
        return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    size_t off;
    sesreq_api_of(s, n, &off);
    fuzz_sesreq_assert(off <= n);

    switch (data[0] % 6) {
    case 0: {
        fuzz_sesreq_v1(s, n);
        const char *nl = memchr(s, '\n', n);
        size_t qlen = nl ? (size_t)(nl - s) : 0;
        size_t boff = nl ? qlen + 1 : 0;
        struct sesreq r;
        memset(&r, 0, sizeof r);
        struct seserr e = {SESERR_NONE, ""};
        int rc =
            sesreq_parse_v1_request("POST", s, qlen, s + boff, n - boff, SESREQ_MAX_PARAMS, &r, &e);
        fuzz_sesreq_check(rc, &r, &e);
        sesreq_cleanup(&r);
        break;
    }
    case 1:
        fuzz_sesreq_v2("POST", "/v2/email/outbound-emails", s, n);
        break;
    case 2:
        fuzz_sesreq_v2("POST", "/v2/email/outbound-bulk-emails", s, n);
        fuzz_sesreq_v2("POST", "/v2/email/outbound-custom-verification-emails", s, n);
        break;
    case 3: {
        if (n == 0)
            break;
        const char *nl = memchr(s + 1, '\n', n - 1);
        size_t plen = nl ? (size_t)(nl - s - 1) : n - 1;
        char *path = xstrndup(s + 1, plen);
        size_t body = nl ? plen + 2 : n;
        fuzz_sesreq_v2(methods[(unsigned char)s[0] % 4], path, s + body, n - body);
        free(path);
        break;
    }
    case 4: {
        struct buf enc = BUF_INIT, body = BUF_INIT;
        fuzz_sesreq_b64(s, n, &enc);
        buf_adds(&body, "Action=SendRawEmail&Version=2010-12-01&RawMessage.Data=");
        form_encode(buf_cstr(&enc), enc.len, &body);
        fuzz_sesreq_v1(body.data, body.len);
        buf_free(&enc);
        buf_free(&body);
        break;
    }
    case 5: {
        struct buf body = BUF_INIT;
        buf_adds(&body, "{\"Content\":{\"Raw\":{\"Data\":\"");
        fuzz_sesreq_b64(s, n, &body);
        buf_adds(&body, "\"}}}");
        fuzz_sesreq_v2("POST", "/v2/email/outbound-emails", body.data, body.len);
        buf_free(&body);
        break;
    }
    }
    return 0;
}
