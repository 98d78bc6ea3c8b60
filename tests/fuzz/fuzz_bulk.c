/* fuzz_bulk: SES's bulk calls planned as units, and their answers.
 *
 * The first byte picks a mode (modulo 5), the second holds flags:
 *   bit 0: fan-out on; bits 1-2: max_units (1, 2, 50 or SIZE_MAX);
 *   bit 3: skip invalid addresses; bit 4: the API of modes 4.
 *   0  v1 SendBulkTemplatedEmail: "Action=SendBulkTemplatedEmail&Source=
 *      s%40x.com&" then the rest as its parameters
 *   1  v2 SendBulkEmail: the rest as its JSON body
 *   2  bulk_answer_parse of the rest as a v1 answer
 *   3  bulk_answer_parse of the rest as a v2 answer
 *   4  entries built from the rest (fields split at NUL bytes, four to an
 *      entry: status, message id, error, then a byte saying how many of
 *      the following fields to skip), rendered and read back
 *
 * Invariants of a plan: units plus the destinations left out are the call's
 * destinations; no sesgate-fanout default tag in the template or the
 * forwarded body; a batch's bulk call of all its units parses, costs what
 * its units cost, and plans again into the same units and template; each
 * unit's cost is its recipients read back (bulk_unit_cost, bulk_unit_view);
 * a forwarded body parses and plans again into the same units. Answers: no
 * crash, at most max entries; what bulk_answer_render writes is read back as
 * it was given (text cut to the fields as bulk_answer_parse cuts it).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "bulk.h"
#include "form.h"
#include "sesreq.h"
#include "util.h"

#define FUZZ_BULK_V2_PATH   "/v2/email/outbound-bulk-emails"
#define FUZZ_BULK_V1_PREFIX "Action=SendBulkTemplatedEmail&Source=s%40x.com&"
#define FUZZ_BULK_MAX       64

/* Abort when cond is false, so that libFuzzer reports the input. */
static void fuzz_bulk_assert(int cond)
{
    if (!cond)
        abort();
}

/* Parse a v1 or v2 bulk call. */
static int fuzz_bulk_parse(int api, const char *body, size_t len, struct sesreq *r,
                           struct seserr *e)
{
    memset(r, 0, sizeof *r);
    if (api == 1)
        return sesreq_parse_v1(body, len, r, e);
    return sesreq_parse_v2("POST", FUZZ_BULK_V2_PATH, strlen(FUZZ_BULK_V2_PATH), body, len, r, e);
}

/* True when the parsed call r carries a sesgate-fanout default tag: v1
 * DefaultTags.member.N.Name (N as SES numbers lists), v2 DefaultEmailTags. */
static bool fuzz_bulk_has_tag(const struct sesreq *r)
{
    static const char pre[] = "DefaultTags.member.";
    if (r->api == SESREQ_V1) {
        for (size_t i = 0; i < r->form.n; i++) {
            const char *nm = r->form.params[i].name;
            if (strncmp(nm, pre, sizeof pre - 1) != 0)
                continue;
            nm += sizeof pre - 1;
            size_t d = strspn(nm, "0123456789");
            if (d == 0 || d > 9 || nm[0] == '0' || strcmp(nm + d, ".Name") != 0)
                continue;
            if (util_ieq(r->form.params[i].value, r->form.params[i].value_len, FANOUT_TAG_NAME))
                return true;
        }
        return false;
    }
    json_t *tags = json_object_get(r->json, "DefaultEmailTags"), *t;
    size_t i;
    json_array_foreach(tags, i, t)
    {
        json_t *n = json_object_get(t, "Name");
        if (json_is_string(n) &&
            util_ieq(json_string_value(n), json_string_length(n), FANOUT_TAG_NAME))
            return true;
    }
    return false;
}

/* The bulk call of units[0..n) of p. */
static void fuzz_bulk_body(const struct fanout_plan *p, size_t first, size_t n, struct buf *out)
{
    size_t plen = p->template.len - (p->api == SESREQ_V2 && p->template.len > 0 ? 1 : 0);
    size_t *lens = xcalloc(n + 1, sizeof *lens);
    for (size_t i = 0; i < n; i++)
        lens[i] = strlen(p->to[first + i]);
    bulk_body(p->api, p->template.data ? p->template.data : "", plen,
              (const char *const *)p->to + first, lens, n, out);
    free(lens);
}

/* Parse body (a call made from p), plan it again (as a batch when batch is
 * set) and compare: the same units as p's from first on, n of them, and
 * with batch the same template. */
static void fuzz_bulk_again(const struct fanout_plan *p, const char *body, size_t len, size_t first,
                            size_t n, bool batch)
{
    struct sesreq b;
    struct seserr e = {SESERR_NONE, ""};
    fuzz_bulk_assert(fuzz_bulk_parse(p->api, body, len, &b, &e) == 0);
    fuzz_bulk_assert(b.action == p->action && !fuzz_bulk_has_tag(&b));
    struct fanout_plan q;
    fuzz_bulk_assert(bulk_plan(&b, batch, SIZE_MAX, false, &q, &e) == 0);
    fuzz_bulk_assert(q.batch == (batch && n > 0) && !q.tag_stripped && q.nto == n && q.ndest == n &&
                     q.ninvalid == 0);
    size_t cost = 0;
    for (size_t i = 0; i < n; i++) {
        fuzz_bulk_assert(strcmp(q.to[i], p->to[first + i]) == 0);
        fuzz_bulk_assert(q.cost[i] == p->cost[first + i]);
        cost += q.cost[i];
    }
    fuzz_bulk_assert(sesreq_other_recipients(&b) == (cost > 0 ? cost : 1));
    if (batch)
        fuzz_bulk_assert(q.template.len == p->template.len &&
                         memcmp(q.template.data, p->template.data, q.template.len) == 0);
    fanout_plan_cleanup(&q);
    sesreq_cleanup(&b);
}

/* bulk_unit_filter's keep: every other recipient, from the second. */
static bool fuzz_bulk_keep(void *arg, const char *a, size_t n)
{
    size_t *turn = arg;
    return (*turn)++ % 2 == 1;
}

/* Check a plan p of the call r. */
static void fuzz_bulk_check_plan(const struct sesreq *r, const struct fanout_plan *p, bool on,
                                 size_t max)
{
    fuzz_bulk_assert(p->bulk && p->api == r->api && p->action == r->action);
    size_t left_out = 0;
    for (size_t i = 0; i < p->ninvalid; i++) {
        fuzz_bulk_assert(p->invalid_pos[i] < p->ndest);
        fuzz_bulk_assert(i == 0 || p->invalid_pos[i] >= p->invalid_pos[i - 1]);
        left_out += i == 0 || p->invalid_pos[i] != p->invalid_pos[i - 1];
        fuzz_bulk_assert(p->invalid[i].reason != NULL && p->invalid[i].addr != NULL);
    }
    fuzz_bulk_assert(p->nto + left_out == p->ndest);
    fuzz_bulk_assert(!p->batch || (on && p->nto > 0 && p->ndest <= max));
    fuzz_bulk_assert(p->batch || p->ninvalid == 0);
    fuzz_bulk_assert(p->forward.len == 0 || (p->tag_stripped && !p->batch));
    fuzz_bulk_assert(p->batch || p->tag_stripped == (p->forward.len > 0));
    for (size_t i = 0; i < p->nto; i++) {
        fuzz_bulk_assert(p->cost[i] <= BULK_MAX_RECIPIENTS && (p->cost[i] > 0 || !p->batch));
        size_t len = strlen(p->to[i]);
        fuzz_bulk_assert(bulk_unit_cost(p->api, p->to[i], len) == (int64_t)p->cost[i]);
        json_t *v = bulk_unit_view(p->api, p->to[i], len);
        fuzz_bulk_assert(v != NULL);
        fuzz_bulk_assert(json_array_size(json_object_get(v, "to")) +
                             json_array_size(json_object_get(v, "cc")) +
                             json_array_size(json_object_get(v, "bcc")) ==
                         p->cost[i]);
        json_decref(v);
        /* every other recipient left out (the suppression list's rewrite):
         * the unit keeps the others, and reads back with that cost */
        size_t turn = 0;
        struct buf half = BUF_INIT;
        int64_t kept = bulk_unit_filter(p->api, p->to[i], len, fuzz_bulk_keep, &turn, &half);
        fuzz_bulk_assert(kept == (int64_t)(p->cost[i] / 2) && turn == p->cost[i]);
        fuzz_bulk_assert(bulk_unit_cost(p->api, buf_cstr(&half), half.len) == kept);
        buf_free(&half);
    }
    /* the template carries no sesgate-fanout tag */
    if (p->api == SESREQ_V1) {
        struct sesreq t;
        struct seserr e = {SESERR_NONE, ""};
        if (fuzz_bulk_parse(1, buf_cstr((struct buf *)&p->template), p->template.len, &t, &e) == 0)
            fuzz_bulk_assert(!fuzz_bulk_has_tag(&t));
        else
            fuzz_bulk_assert(p->template.len == 0);
        sesreq_cleanup(&t);
    } else {
        json_t *t = json_loadb(p->template.data, p->template.len, 0, NULL);
        struct sesreq tr = {.api = SESREQ_V2, .json = t};
        fuzz_bulk_assert(t != NULL && !fuzz_bulk_has_tag(&tr));
        json_decref(t);
    }
    if (p->forward.len > 0)
        fuzz_bulk_again(p, p->forward.data, p->forward.len, 0, p->nto, false);
    if (!p->batch)
        return;
    struct buf body = BUF_INIT;
    fuzz_bulk_body(p, 0, p->nto, &body);
    fuzz_bulk_again(p, body.data, body.len, 0, p->nto, true);
    /* a worker's call of some units */
    if (p->nto >= 3) {
        buf_reset(&body);
        fuzz_bulk_body(p, 1, 2, &body);
        fuzz_bulk_again(p, body.data, body.len, 1, 2, true);
    }
    buf_free(&body);
}

/* Plan the call in body and check it. */
static void fuzz_bulk_run(int api, const char *body, size_t len, bool on, size_t max, bool skip)
{
    struct sesreq r;
    struct seserr e = {SESERR_NONE, ""};
    if (fuzz_bulk_parse(api, body, len, &r, &e) == 0 && bulk_action(r.action)) {
        struct fanout_plan p;
        if (bulk_plan(&r, on, max, skip, &p, &e) == 0)
            fuzz_bulk_check_plan(&r, &p, on, max);
        else
            fuzz_bulk_assert(e.code == SESERR_INVALID_PARAMETER || e.code == SESERR_BAD_REQUEST);
        fanout_plan_cleanup(&p);
    }
    sesreq_cleanup(&r);
}

/* One field of a render input: the next NUL-separated piece of [*s, end),
 * cut as bulk_answer_parse cuts it (outlen bytes with the NUL). */
static void fuzz_bulk_field(const char **s, const char *end, char *out, size_t outlen)
{
    const char *z = memchr(*s, '\0', (size_t)(end - *s));
    size_t n = z ? (size_t)(z - *s) : (size_t)(end - *s);
    if (n >= outlen) {
        n = outlen - 1;
        for (int k = 0; k < 3 && n > 0 && ((unsigned char)(*s)[n] & 0xC0) == 0x80; k++)
            n--;
    }
    memcpy(out, *s, n);
    out[n] = '\0';
    *s = z ? z + 1 : end;
}

/* True when s is text both answers carry as it is: UTF-8 (v2 JSON holds
 * nothing else) without the characters XML cannot hold (C0 controls but
 * tab, line feed and carriage return; U+FFFE, U+FFFF), which the v1
 * writer replaces with U+FFFD. */
static bool fuzz_bulk_text_ok(const char *s)
{
    size_t n = strlen(s);
    if (!util_utf8_valid(s, n) || memmem(s, n, "\xef\xbf\xbe", 3) ||
        memmem(s, n, "\xef\xbf\xbf", 3))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return false;
    return true;
}

/* Entries built from [s, end), rendered on api and read back. */
static void fuzz_bulk_render(int api, const char *s, const char *end)
{
    struct bulk_result in[FUZZ_BULK_MAX], back[FUZZ_BULK_MAX + 1];
    size_t n = 0;
    while (s < end && n < FUZZ_BULK_MAX) {
        fuzz_bulk_field(&s, end, in[n].status, sizeof in[n].status);
        fuzz_bulk_field(&s, end, in[n].message_id, sizeof in[n].message_id);
        fuzz_bulk_field(&s, end, in[n].error, sizeof in[n].error);
        if (fuzz_bulk_text_ok(in[n].status) && fuzz_bulk_text_ok(in[n].message_id) &&
            fuzz_bulk_text_ok(in[n].error))
            n++;
    }
    char rid[64];
    snprintf(rid, sizeof rid, "rid-%zu<&>", n);
    struct buf out = BUF_INIT;
    bulk_answer_render(api, in, n, rid, &out);
    int got = bulk_answer_parse(api, out.data, out.len, back, FUZZ_BULK_MAX + 1);
    fuzz_bulk_assert(got == (int)n);
    for (size_t i = 0; i < n; i++) {
        fuzz_bulk_assert(strcmp(back[i].status, in[i].status) == 0);
        fuzz_bulk_assert(strcmp(back[i].message_id, in[i].message_id) == 0);
        fuzz_bulk_assert(strcmp(back[i].error, in[i].error) == 0);
    }
    if (api == 2)
        fuzz_bulk_assert(util_utf8_valid(out.data, out.len));
    buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* libFuzzer entry point. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t maxes[] = {1, 2, 50, SIZE_MAX};
    if (size < 2)
        return 0;
    unsigned mode = data[0] % 5, flags = data[1];
    bool on = flags & 1, skip = flags & 8;
    size_t max = maxes[(flags >> 1) & 3];
    const char *s = (const char *)data + 2;
    size_t n = size - 2;
    if (mode == 0) {
        struct buf body = BUF_INIT;
        buf_adds(&body, FUZZ_BULK_V1_PREFIX);
        buf_add(&body, s, n);
        fuzz_bulk_run(1, body.data, body.len, on, max, skip);
        buf_free(&body);
    } else if (mode == 1) {
        fuzz_bulk_run(2, s, n, on, max, skip);
    } else if (mode <= 3) {
        /* libFuzzer's data ends where the input does: reading past it is caught */
        struct bulk_result out[4];
        size_t m = flags % 5;
        int got = bulk_answer_parse(mode == 2 ? 1 : 2, s, n, out, m);
        fuzz_bulk_assert(got >= -1 && got <= (int)m);
        for (int i = 0; i < got; i++)
            fuzz_bulk_assert(strlen(out[i].status) < sizeof out[i].status &&
                             strlen(out[i].message_id) < sizeof out[i].message_id &&
                             strlen(out[i].error) < sizeof out[i].error);
    } else {
        fuzz_bulk_render(flags & 16 ? 2 : 1, s, s + n);
    }
    return 0;
}
