/* fuzz_sesmail: building delivered messages from arbitrary sends.
 *
 * The first byte picks a mode (modulo 5):
 *   0  v1 parameters: parsed by sesreq, read by sesmail, one message built
 *      per recipient
 *   1  v2 SendEmail body, likewise
 *   2  a raw message (the rest) built for one recipient
 *   3  template rendering: template text up to the first NUL, JSON data after
 *   4  addresses: addr-spec extraction and the simulator
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "buf.h"
#include "sesmail.h"
#include "sesreq.h"

/* Abort when cond is false, so that libFuzzer reports the input. */
static void fuzz_sesmail_assert(int cond)
{
    if (!cond)
        abort();
}

/* Check a formatted message: CRLF line ends only, nothing after the
 * Delivered-To line names a Bcc field, the Delivered-To value has no break. */
static void fuzz_sesmail_check_formatted(const char *eml, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (eml[i] == '\n')
            fuzz_sesmail_assert(i > 0 && eml[i - 1] == '\r');
    const char *hend = strstr(eml, "\r\n\r\n");
    fuzz_sesmail_assert(hend != NULL);
    for (const char *p = eml; p && p < hend; p = strstr(p, "\r\n")) {
        p += 2;
        fuzz_sesmail_assert(strncasecmp(p, "Bcc:", 4) != 0);
    }
}

/* Read a parsed send and build the message of every recipient. */
static void fuzz_sesmail_send(const struct sesreq *r)
{
    struct sesmail_msg m = {0};
    struct seserr e = {SESERR_NONE, ""};
    if (sesmail_from_request(r, &m, &e) == 0) {
        size_t n = sesmail_recipient_count(&m);
        fuzz_sesmail_assert(n >= 1 && n <= SESMAIL_MAX_RECIPIENTS);
        if (m.kind == SESMAIL_TEMPLATE)
            sesmail_apply_template(&m, m.subject ? m.subject : "{{a}}", "t {{b.c}}", "<{{d}}>", &e);
        for (size_t i = 0; i < n; i++) {
            struct buf out = BUF_INIT;
            int rc = sesmail_build(&m, sesmail_recipient(&m, i), "MID", "email.amazonses.com",
                                   "Mon, 01 Jan 2024 00:00:00 +0000", &out, &e);
            fuzz_sesmail_assert(rc == 0);
            fuzz_sesmail_assert(out.len > 14 && memcmp(out.data, "Delivered-To: ", 14) == 0);
            if (m.kind != SESMAIL_RAW)
                fuzz_sesmail_check_formatted(out.data, out.len);
            buf_free(&out);
        }
    } else {
        fuzz_sesmail_assert(e.code > SESERR_NONE && e.code < SESERR_COUNT);
    }
    sesmail_cleanup(&m);
}

/* Mode 2: a raw message keeps its body bytes. */
static void fuzz_sesmail_raw(const char *s, size_t n)
{
    struct sesmail_msg m = {0};
    struct seserr e;
    char to[] = "a@x.com";
    char *tov[] = {to};
    m.kind = SESMAIL_RAW;
    buf_add(&m.raw, s, n);
    m.to.v = tov;
    m.to.n = 1;
    struct buf out = BUF_INIT;
    int rc = sesmail_build(&m, to, "MID", "d", "D", &out, &e);
    fuzz_sesmail_assert(rc == (n == 0 ? -1 : 0));
    if (rc == 0) {
        /* the header block ends at or before the first "\n\n" */
        const char *body = memmem(s, n, "\n\n", 2);
        if (body != NULL) {
            size_t tail = n - (size_t)(body - s);
            fuzz_sesmail_assert(out.len >= tail &&
                                memcmp(out.data + out.len - tail, body, tail) == 0);
        }
    }
    buf_free(&out);
    m.to.v = NULL;
    m.to.n = 0;
    sesmail_cleanup(&m);
}

/* Mode 3: render a template with JSON data. */
static void fuzz_sesmail_render(const char *s, size_t n)
{
    const char *nul = memchr(s, '\0', n);
    size_t tl = nul ? (size_t)(nul - s) : n;
    json_error_t jerr;
    json_t *data = nul ? json_loadb(nul + 1, n - tl - 1, 0, &jerr) : NULL;
    for (int html = 0; html < 2; html++) {
        struct buf out = BUF_INIT;
        sesmail_render(s, tl, data, html != 0, &out);
        if (memmem(s, tl, "{{", 2) == NULL)
            fuzz_sesmail_assert(out.len == tl && (tl == 0 || memcmp(out.data, s, tl) == 0));
        buf_free(&out);
    }
    json_decref(data);
}

/* Mode 4: addresses. */
static void fuzz_sesmail_addr(const char *s, size_t n)
{
    char *a = strndup(s, n);
    if (a == NULL)
        return;
    struct buf spec = BUF_INIT;
    if (sesmail_addr_spec(a, &spec) == 0) {
        fuzz_sesmail_assert(strchr(spec.data, '@') != NULL);
        sesmail_simulator(spec.data);
    }
    enum sesmail_sim sim = sesmail_simulator(a);
    fuzz_sesmail_assert(sim == SESMAIL_SIM_NONE || strchr(a, '@') != NULL);
    buf_free(&spec);
    free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* libFuzzer entry point. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char path[] = "/v2/email/outbound-emails";
    if (size == 0)
        return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    struct sesreq r;
    struct seserr e;
    memset(&r, 0, sizeof r);
    switch (data[0] % 5) {
    case 0:
        if (sesreq_parse_v1(s, n, &r, &e) == 0 && r.kind == SESREQ_SEND)
            fuzz_sesmail_send(&r);
        break;
    case 1:
        if (sesreq_parse_v2("POST", path, sizeof path - 1, s, n, &r, &e) == 0)
            fuzz_sesmail_send(&r);
        break;
    case 2:
        fuzz_sesmail_raw(s, n);
        break;
    case 3:
        fuzz_sesmail_render(s, n);
        break;
    case 4:
        fuzz_sesmail_addr(s, n);
        break;
    }
    sesreq_cleanup(&r);
    return 0;
}
