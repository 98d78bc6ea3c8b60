/* fuzz_sesbulk: reading bulk calls and rendering them per destination.
 *
 * The first byte picks a mode (modulo 3):
 *   0  v1 parameters: parsed by sesreq, read by sesbulk, every destination's
 *      message made and built for each of its recipients
 *   1  a v2 SendBulkEmail body, likewise
 *   2  the data merge: default JSON up to the first NUL, replacement after
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "buf.h"
#include "sesbulk.h"
#include "sesmail.h"
#include "sesreq.h"

/* Abort when cond is false, so that libFuzzer reports the input. */
static void fuzz_sesbulk_assert(int cond)
{
    if (!cond)
        abort();
}

/* Read a parsed bulk call; make and build every destination's messages. */
static void fuzz_sesbulk_call(const struct sesreq *r)
{
    struct sesbulk b = {0};
    struct seserr e = {SESERR_NONE, ""};
    if (sesbulk_from_request(r, &b, &e) < 0) {
        fuzz_sesbulk_assert(e.code > SESERR_NONE && e.code < SESERR_COUNT);
        sesbulk_cleanup(&b);
        return;
    }
    fuzz_sesbulk_assert(b.n >= 1 && b.n <= SESBULK_MAX_DESTINATIONS);
    fuzz_sesbulk_assert(json_is_object(b.defaults));
    struct sesbulk_result *res = calloc(b.n, sizeof *res);
    fuzz_sesbulk_assert(res != NULL);
    for (size_t i = 0; i < b.n; i++) {
        struct sesmail_msg m = {0};
        const char *subject = b.template_name ? "{{a}} {{b.c}}" : b.subject;
        if (sesbulk_entry_message(&b, i, subject, b.text ? b.text : "t {{x}}", b.html, &m, &e) ==
            0) {
            size_t n = sesmail_recipient_count(&m);
            fuzz_sesbulk_assert(n >= 1 && n <= SESMAIL_MAX_RECIPIENTS);
            fuzz_sesbulk_assert(m.tags.n >= b.tags.n);
            for (size_t k = 0; k < n; k++) {
                struct buf out = BUF_INIT;
                int rc = sesmail_build(&m, sesmail_recipient(&m, k), "MID", "email.amazonses.com",
                                       "Mon, 01 Jan 2024 00:00:00 +0000", &out, &e);
                fuzz_sesbulk_assert(rc == 0);
                /* the header block never names a Bcc field */
                const char *hend = memmem(out.data, out.len, "\r\n\r\n", 4);
                fuzz_sesbulk_assert(hend != NULL);
                for (const char *p = out.data; p && p < hend;
                     p = memmem(p, (size_t)(hend - p), "\r\n", 2)) {
                    p += 2;
                    fuzz_sesbulk_assert(strncasecmp(p, "Bcc:", 4) != 0);
                }
                buf_free(&out);
            }
            res[i].status = SESBULK_SUCCESS;
            memcpy(res[i].message_id, "MID", 4);
        } else {
            fuzz_sesbulk_assert(e.code == SESERR_INVALID_PARAMETER);
            res[i].status = SESBULK_INVALID_PARAMETER;
            memcpy(res[i].error, e.message, sizeof res[i].error);
            res[i].error[sizeof res[i].error - 1] = '\0';
        }
        sesmail_cleanup(&m);
    }
    for (int api = SESREQ_V1; api <= SESREQ_V2; api++) {
        struct buf out = BUF_INIT;
        sesbulk_render((enum sesreq_api)api, res, b.n, &out);
        fuzz_sesbulk_assert(out.len > 0);
        buf_free(&out);
    }
    free(res);
    sesbulk_cleanup(&b);
}

/* Mode 2: every member of the replacement is in the merge (objects merged
 * into), and every default member it does not name is kept as it was. */
static void fuzz_sesbulk_merge(const char *s, size_t n)
{
    const char *nul = memchr(s, '\0', n);
    if (nul == NULL)
        return;
    json_error_t jerr;
    json_t *def = json_loadb(s, (size_t)(nul - s), 0, &jerr);
    json_t *rep = json_loadb(nul + 1, n - (size_t)(nul - s) - 1, 0, &jerr);
    if (json_is_object(def)) {
        json_t *out = sesbulk_merge_data(def, rep);
        fuzz_sesbulk_assert(json_is_object(out));
        const char *key;
        json_t *v;
        if (json_is_object(rep)) {
            json_object_foreach(rep, key, v)
            {
                json_t *got = json_object_get(out, key);
                fuzz_sesbulk_assert(got != NULL);
                if (!json_is_object(v) || !json_is_object(json_object_get(def, key)))
                    fuzz_sesbulk_assert(json_equal(got, v));
            }
        }
        json_object_foreach(def, key, v)
        {
            if (!json_is_object(rep) || json_object_get(rep, key) == NULL)
                fuzz_sesbulk_assert(json_equal(json_object_get(out, key), v));
        }
        json_decref(out);
    }
    json_decref(def);
    json_decref(rep);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* libFuzzer entry point. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char path[] = "/v2/email/outbound-bulk-emails";
    if (size == 0)
        return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    struct sesreq r;
    struct seserr e;
    memset(&r, 0, sizeof r);
    switch (data[0] % 3) {
    case 0:
        if (sesreq_parse_v1(s, n, &r, &e) == 0 && r.kind == SESREQ_SEND_OTHER)
            fuzz_sesbulk_call(&r);
        break;
    case 1:
        if (sesreq_parse_v2("POST", path, sizeof path - 1, s, n, &r, &e) == 0)
            fuzz_sesbulk_call(&r);
        break;
    case 2:
        fuzz_sesbulk_merge(s, n);
        break;
    }
    sesreq_cleanup(&r);
    return 0;
}
