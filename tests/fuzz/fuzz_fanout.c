/* fuzz_fanout: the fan-out planner on arbitrary sends.
 *
 * The first byte picks a mode (modulo 4), the second holds flags:
 *   bit 0: fan-out on; bits 1-2: max_recipients (1, 2, 3 or 10000);
 *   bit 3: add the opt-out tag with value "on", bit 4: with value "off"
 *   (modes 2 and 3).
 *   0  v1 parameters from the rest
 *   1  v2 SendEmail JSON body from the rest
 *   2  v1 SendRawEmail: the rest's first line lists destinations (comma-
 *      separated, none when empty), the remainder is the raw message
 *   3  v2 SendEmail with Raw content, destinations and message as in 2
 *
 * A request that parses is planned, and every copy of a batch (at most 50)
 * is rendered and parsed back. Invariants: every copy parses; copy k's To
 * recipient is exactly to[k] and nothing else; Cc and Bcc riders are on copy
 * 0 only; a raw copy's To field names to[k] alone and it has no Bcc field; a
 * forwarded body parses and carries no opt-out tag.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "buf.h"
#include "copybody.h"
#include "fanout.h"
#include "form.h"
#include "rfc5322.h"
#include "sesreq.h"

#define FUZZ_FANOUT_MAX_COPIES 50
#define FUZZ_FANOUT_V2_PATH    "/v2/email/outbound-emails"

/* Abort when cond is false, so that libFuzzer reports the input. */
static void fuzz_fanout_assert(int cond)
{
    if (!cond)
        abort();
}

/* Append the base64 of the n bytes at s. */
static void fuzz_fanout_b64(const char *s, size_t n, struct buf *out)
{
    buf_reserve(out, (n + 2) / 3 * 4);
    int k =
        EVP_EncodeBlock((unsigned char *)out->data + out->len, (const unsigned char *)s, (int)n);
    out->len += (size_t)k;
    out->data[out->len] = '\0';
}

/* Decode the base64 at s into out (fanout writes it unbroken and padded). */
static void fuzz_fanout_unb64(const char *s, size_t n, struct buf *out)
{
    buf_reserve(out, n / 4 * 3 + 3);
    int k =
        EVP_DecodeBlock((unsigned char *)out->data + out->len, (const unsigned char *)s, (int)n);
    fuzz_fanout_assert(k >= 0);
    size_t pad = 0;
    while (pad < 2 && n > pad && s[n - 1 - pad] == '=')
        pad++;
    out->len += (size_t)k - pad;
    out->data[out->len] = '\0';
}

/* Parse a v1 or v2 body. */
static int fuzz_fanout_parse(int api, const char *body, size_t len, struct sesreq *r,
                             struct seserr *e)
{
    memset(r, 0, sizeof *r);
    if (api == 1)
        return sesreq_parse_v1(body, len, r, e);
    return sesreq_parse_v2("POST", FUZZ_FANOUT_V2_PATH, strlen(FUZZ_FANOUT_V2_PATH), body, len, r,
                           e);
}

/* Assert that the v1 list prefix1, prefix2 ... of f is exactly want[0..n). */
static void fuzz_fanout_v1_list(const struct form *f, const char *prefix, const char *const *want,
                                size_t n)
{
    char name[64];
    for (size_t i = 0; i <= n; i++) {
        snprintf(name, sizeof name, "%s%zu", prefix, i + 1);
        size_t len;
        const char *v = form_get(f, name, &len);
        if (i == n) {
            fuzz_fanout_assert(v == NULL);
        } else {
            fuzz_fanout_assert(v != NULL && len == strlen(want[i]) && memcmp(v, want[i], len) == 0);
        }
    }
}

/* Assert that the v2 array a holds exactly want[0..n) (absent when n is 0). */
static void fuzz_fanout_v2_list(json_t *a, const char *const *want, size_t n)
{
    if (n == 0) {
        fuzz_fanout_assert(a == NULL);
        return;
    }
    fuzz_fanout_assert(json_array_size(a) == n);
    for (size_t i = 0; i < n; i++)
        fuzz_fanout_assert(strcmp(json_string_value(json_array_get(a, i)), want[i]) == 0);
}

/* Check the raw message of copy k (base64 at s). */
static void fuzz_fanout_raw_copy(const struct fanout_plan *p, size_t k, const char *s, size_t n)
{
    struct buf msg = BUF_INIT, v = BUF_INIT;
    fuzz_fanout_unb64(s, n, &msg);
    if (!p->dkim_envelope_only) {
        const char *m = buf_cstr(&msg);
        fuzz_fanout_assert(rfc5322_header_get_all(m, msg.len, "To", &v) == 1);
        fuzz_fanout_assert(strcmp(buf_cstr(&v), p->to[k]) == 0);
        fuzz_fanout_assert(rfc5322_header_get_all(m, msg.len, "Bcc", &v) == 0);
        if (k > 0)
            fuzz_fanout_assert(rfc5322_header_get_all(m, msg.len, "Cc", &v) == 0);
    }
    buf_free(&msg);
    buf_free(&v);
}

/* Check the parsed copy c of p: its destinations and raw message. */
static void fuzz_fanout_check_copy(const struct fanout_plan *p, size_t k, const struct sesreq *c)
{
    const char *to[1] = {p->to[k]};
    size_t nr = k == 0 ? p->nriders : 0;
    const char **all = xcalloc(nr + 1, sizeof *all);
    const char **cc = xcalloc(nr + 1, sizeof *cc);
    const char **bcc = xcalloc(nr + 1, sizeof *bcc);
    size_t ncc = 0, nbcc = 0;
    all[0] = p->to[k];
    for (size_t i = 0; i < nr; i++) {
        all[i + 1] = p->riders[i].addr;
        if (p->riders[i].kind == FANOUT_CC)
            cc[ncc++] = p->riders[i].addr;
        else
            bcc[nbcc++] = p->riders[i].addr;
    }
    if (p->api == SESREQ_V1 && p->raw) {
        fuzz_fanout_v1_list(&c->form, "Destinations.member.", all, nr + 1);
        size_t len;
        const char *d = form_get(&c->form, "RawMessage.Data", &len);
        fuzz_fanout_assert(d != NULL);
        fuzz_fanout_raw_copy(p, k, d, len);
    } else if (p->api == SESREQ_V1) {
        fuzz_fanout_v1_list(&c->form, "Destination.ToAddresses.member.", to, 1);
        fuzz_fanout_v1_list(&c->form, "Destination.CcAddresses.member.", cc, ncc);
        fuzz_fanout_v1_list(&c->form, "Destination.BccAddresses.member.", bcc, nbcc);
    } else {
        json_t *dest = json_object_get(c->json, "Destination");
        if (p->raw) {
            fuzz_fanout_v2_list(json_object_get(dest, "ToAddresses"), all, nr + 1);
            fuzz_fanout_v2_list(json_object_get(dest, "CcAddresses"), NULL, 0);
            fuzz_fanout_v2_list(json_object_get(dest, "BccAddresses"), NULL, 0);
            size_t dl = 0;
            const char *d = sesreq_raw_data(c, &dl);
            fuzz_fanout_assert(d != NULL);
            fuzz_fanout_raw_copy(p, k, d, dl);
        } else {
            fuzz_fanout_v2_list(json_object_get(dest, "ToAddresses"), to, 1);
            fuzz_fanout_v2_list(json_object_get(dest, "CcAddresses"), cc, ncc);
            fuzz_fanout_v2_list(json_object_get(dest, "BccAddresses"), bcc, nbcc);
        }
    }
    free(all);
    free(cc);
    free(bcc);
}

/* Check a plan of the parsed request r. */
static void fuzz_fanout_check_plan(int api, const struct sesreq *r, const struct fanout_plan *p,
                                   bool on, size_t max)
{
    if (r->kind != SESREQ_SEND) {
        fuzz_fanout_assert(!p->batch && p->nto == 0 && p->nriders == 0 && !p->tag_stripped);
        fuzz_fanout_assert(p->template.len == 0 && p->forward.len == 0);
        return;
    }
    if (p->batch)
        fuzz_fanout_assert(on && p->nto >= 2 && p->nto <= max && p->template.len > 0);
    else
        fuzz_fanout_assert(p->template.len == 0 && !p->dkim_envelope_only);
    fuzz_fanout_assert(p->forward.len == 0 || (p->tag_stripped && !p->batch));
    fuzz_fanout_assert(p->batch || p->tag_stripped == (p->forward.len > 0));
    fuzz_fanout_assert(!p->dkim_envelope_only || p->raw);
    for (size_t i = 0; i < p->nriders; i++) {
        fuzz_fanout_assert(p->riders[i].kind == FANOUT_CC || p->riders[i].kind == FANOUT_BCC);
        fuzz_fanout_assert(i == 0 || p->riders[i - 1].kind <= p->riders[i].kind);
    }
    struct seserr e = {SESERR_NONE, ""};
    if (p->forward.len > 0) {
        struct sesreq f;
        struct fanout_plan fp;
        fuzz_fanout_assert(fuzz_fanout_parse(api, p->forward.data, p->forward.len, &f, &e) == 0);
        fuzz_fanout_assert(fanout_plan(&f, false, SIZE_MAX, false, &fp, &e) == 0);
        fuzz_fanout_assert(!fp.tag_stripped && fp.nto == p->nto && fp.nriders == p->nriders);
        fanout_plan_cleanup(&fp);
        sesreq_cleanup(&f);
    }
    for (size_t k = 0; p->batch && k < p->nto && k < FUZZ_FANOUT_MAX_COPIES; k++) {
        struct buf out = BUF_INIT;
        struct sesreq c;
        fuzz_fanout_assert(copybody_render_plan(p, k, &out, &e) == 0);
        fuzz_fanout_assert(fuzz_fanout_parse(api, buf_cstr(&out), out.len, &c, &e) == 0);
        fuzz_fanout_assert(c.kind == SESREQ_SEND && c.raw == p->raw);
        fuzz_fanout_check_copy(p, k, &c);
        sesreq_cleanup(&c);
        buf_free(&out);
    }
}

/* Parse body, plan it and check everything. */
static void fuzz_fanout_run(int api, const char *body, size_t len, bool on, size_t max)
{
    struct sesreq r;
    struct seserr e = {SESERR_NONE, ""};
    if (fuzz_fanout_parse(api, body, len, &r, &e) == 0) {
        struct fanout_plan p;
        if (fanout_plan(&r, on, max, false, &p, &e) == 0) {
            fuzz_fanout_check_plan(api, &r, &p, on, max);
        } else {
            fuzz_fanout_assert(e.code > SESERR_NONE && e.code < SESERR_COUNT && !p.batch);
        }
        fanout_plan_cleanup(&p);
    }
    sesreq_cleanup(&r);
}

/* A v1 SendRawEmail body from destinations (comma-separated) and a message. */
static void fuzz_fanout_v1_raw(const char *dests, size_t dn, const char *msg, size_t mn,
                               unsigned flags, struct buf *out)
{
    struct buf enc = BUF_INIT;
    buf_adds(out, "Action=SendRawEmail&Version=2010-12-01");
    size_t k = 1;
    for (size_t i = 0; i < dn;) {
        const char *comma = memchr(dests + i, ',', dn - i);
        size_t j = comma ? (size_t)(comma - dests) : dn;
        buf_printf(out, "&Destinations.member.%zu=", k++);
        form_encode(dests + i, j - i, out);
        i = j + 1;
    }
    fuzz_fanout_b64(msg, mn, &enc);
    buf_adds(out, "&RawMessage.Data=");
    form_encode(buf_cstr(&enc), enc.len, out);
    if (flags & 0x18)
        buf_printf(out,
                   "&Tags.member.1.Name=k&Tags.member.1.Value=v&Tags.member.2.Name="
                   "sesgate-fanout&Tags.member.2.Value=%s",
                   flags & 0x10 ? "off" : "on");
    buf_free(&enc);
}

/* A v2 raw SendEmail body from destinations and a message. */
static void fuzz_fanout_v2_raw(const char *dests, size_t dn, const char *msg, size_t mn,
                               unsigned flags, struct buf *out)
{
    struct buf enc = BUF_INIT;
    fuzz_fanout_b64(msg, mn, &enc);
    json_t *root = json_object(), *to = json_array();
    json_object_set_new(root, "Content", json_pack("{s:{s:s}}", "Raw", "Data", buf_cstr(&enc)));
    for (size_t i = 0; i < dn;) {
        const char *comma = memchr(dests + i, ',', dn - i);
        size_t j = comma ? (size_t)(comma - dests) : dn;
        json_t *s = json_stringn(dests + i, j - i);
        if (s != NULL)
            json_array_append_new(to, s);
        i = j + 1;
    }
    if (json_array_size(to) > 0)
        json_object_set_new(root, "Destination", json_pack("{s:O}", "ToAddresses", to));
    json_decref(to);
    if (flags & 0x18)
        json_object_set_new(root, "EmailTags",
                            json_pack("[{s:s,s:s}]", "Name", "sesgate-fanout", "Value",
                                      flags & 0x10 ? "off" : "on"));
    char *s = json_dumps(root, JSON_COMPACT);
    if (s != NULL)
        buf_adds(out, s);
    free(s);
    json_decref(root);
    buf_free(&enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* libFuzzer entry point. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t maxes[] = {1, 2, 3, 10000};
    if (size < 2)
        return 0;
    unsigned mode = data[0] % 4, flags = data[1];
    bool on = flags & 1;
    size_t max = maxes[(flags >> 1) & 3];
    const char *s = (const char *)data + 2;
    size_t n = size - 2;
    if (mode < 2) {
        fuzz_fanout_run((int)mode + 1, s, n, on, max);
        return 0;
    }
    const char *nl = memchr(s, '\n', n);
    size_t dn = nl ? (size_t)(nl - s) : 0;
    size_t off = nl ? dn + 1 : 0;
    struct buf body = BUF_INIT;
    if (mode == 2)
        fuzz_fanout_v1_raw(s, dn, s + off, n - off, flags, &body);
    else
        fuzz_fanout_v2_raw(s, dn, s + off, n - off, flags, &body);
    fuzz_fanout_run(mode == 2 ? 1 : 2, buf_cstr(&body), body.len, on, max);
    buf_free(&body);
    return 0;
}
