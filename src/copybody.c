/* copybody: the request body of one copy of a batch, produced piece by piece. */
#include "copybody.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "form.h"
#include "rfc5322.h"

/* A v1 raw message's parameter, as the template spells it. */
#define COPYBODY_DATA_NAME "RawMessage.Data="

/* A v2 template is split around SESREQ_DATA_MARK (sesreq.h), which stands
 * for its message while its JSON is read and written. */

/* Bytes produced per step while measuring a copy. */
#define COPYBODY_CHUNK 65536

static const char copybody_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Abort when jansson or OpenSSL could not allocate (the OOM policy, buf.h). */
static void *copybody_must(void *p)
{
    if (p == NULL) {
        fputs("sesgate: out of memory\n", stderr);
        abort();
    }
    return p;
}

/* json_dump_callback() sink appending to a struct buf. */
static int copybody_json_sink(const char *s, size_t n, void *data)
{
    buf_add(data, s, n);
    return 0;
}

/* Append j as compact JSON in key order. */
static void copybody_json_dump(const json_t *j, struct buf *out)
{
    if (json_dump_callback(j, copybody_json_sink, out, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0)
        copybody_must(NULL);
}

/* Set b->pre to text (n bytes, copied). */
static void copybody_set_pre(struct copybody_batch *b, const char *text, size_t n)
{
    b->pre = xstrndup(text, n);
    b->pre_len = n;
}

/* Decode the base64 message s[0..n) into b->msg. Returns 0, or -1 with e set. */
static int copybody_take_msg(struct copybody_batch *b, const char *s, size_t n, struct seserr *e)
{
    if (util_base64_decode(s, n, &b->msg) != 0) {
        seserr_set(e, SESERR_INTERNAL, "The template holds invalid base64.");
        return -1;
    }
    b->has_msg = true;
    b->hend = rfc5322_header_end(buf_cstr(&b->msg), b->msg.len);
    return 0;
}

/* v1 raw: split the form around the RawMessage.Data value. */
static int copybody_split_v1(struct copybody_batch *b, const char *t, size_t n, struct seserr *e)
{
    const size_t dlen = sizeof COPYBODY_DATA_NAME - 1;
    for (size_t i = 0; i < n;) {
        const char *amp = memchr(t + i, '&', n - i);
        size_t j = amp ? (size_t)(amp - t) : n;
        if (j - i >= dlen && memcmp(t + i, COPYBODY_DATA_NAME, dlen) == 0) {
            struct buf b64 = BUF_INIT;
            int rc = form_decode(t + i + dlen, j - i - dlen, false, &b64);
            if (rc != 0)
                seserr_set(e, SESERR_INTERNAL, "The template is not form-encoded.");
            else
                rc = copybody_take_msg(b, buf_cstr(&b64), b64.len, e);
            buf_free(&b64);
            if (rc != 0)
                return -1;
            copybody_set_pre(b, t, i + dlen);
            b->post = xstrndup(t + j, n - j);
            b->post_len = n - j;
            return 0;
        }
        i = j + 1;
    }
    copybody_set_pre(b, t, n); /* no message: every copy keeps the template */
    return 0;
}

/* Set b's parts from root, whose Content.Raw.Data is SESREQ_DATA_MARK (or,
 * with DKIM, the whole message): root as jansson writes it, split around the
 * mark, the closing brace left out (the Destination goes before it). */
static void copybody_split_dump(struct copybody_batch *b, const json_t *root)
{
    struct buf text = BUF_INIT;
    copybody_json_dump(root, &text);
    const char *s = buf_cstr(&text);
    const char *m = b->dkim ? NULL : strstr(s, SESREQ_DATA_MARK_JSON);
    size_t ml = sizeof SESREQ_DATA_MARK_JSON - 1;
    if (m == NULL) {
        copybody_set_pre(b, s, text.len - 1);
    } else {
        copybody_set_pre(b, s, (size_t)(m - s));
        b->post_len = text.len - 1 - (size_t)(m - s) - ml;
        b->post = xstrndup(m + ml, b->post_len);
    }
    buf_free(&text);
}

/* v2 raw without DKIM, read without copying the message (as sesgate stores
 * it, sesreq_json_borrow_raw reads it in place). Returns 0 or -1 (e set) as
 * copybody_split_v2, or 1 when the template is not in that form. */
static int copybody_split_v2_direct(struct copybody_batch *b, const char *t, size_t n,
                                    struct seserr *e)
{
    const char *d = NULL;
    size_t dl = 0;
    json_t *root = sesreq_json_borrow_raw(t, n, 0, &d, &dl);
    if (root == NULL)
        return 1;
    int rc = copybody_take_msg(b, d, dl, e);
    if (rc == 0)
        copybody_split_dump(b, root);
    json_decref(root);
    return rc;
}

/* v2 raw: the template as jansson writes it, split around Content.Raw.Data. */
static int copybody_split_v2(struct copybody_batch *b, const char *t, size_t n, struct seserr *e)
{
    if (!b->dkim) {
        int rc = copybody_split_v2_direct(b, t, n, e);
        if (rc != 1)
            return rc;
    }
    json_t *root = json_loadb(t, n, 0, NULL);
    json_t *raw = json_object_get(json_object_get(root, "Content"), "Raw");
    json_t *data = json_object_get(raw, "Data");
    if (!json_is_object(root) || json_object_size(root) == 0 || !json_is_string(data)) {
        json_decref(root);
        seserr_set(e, SESERR_INTERNAL, "The template is not a raw SendEmail body.");
        return -1;
    }
    int rc = 0;
    if (!b->dkim) {
        rc = copybody_take_msg(b, json_string_value(data), json_string_length(data), e);
        json_object_set_new(raw, "Data", copybody_must(json_string(SESREQ_DATA_MARK)));
    }
    if (rc == 0)
        copybody_split_dump(b, root);
    json_decref(root);
    return rc;
}

int copybody_batch_init(struct copybody_batch *b, enum sesreq_api api, bool raw, bool dkim,
                        const char *template, size_t len, struct seserr *e)
{
    memset(b, 0, sizeof *b);
    b->api = api;
    b->raw = raw;
    b->dkim = raw && dkim;
    int rc = 0;
    if (template == NULL) {
        seserr_set(e, SESERR_INTERNAL, "No template or recipient to render.");
        rc = -1;
    } else if (api == SESREQ_V2 && raw) {
        rc = copybody_split_v2(b, template, len, e);
    } else if (api == SESREQ_V2) {
        if (len < 2 || template[0] != '{' || template[len - 1] != '}') {
            seserr_set(e, SESERR_INTERNAL, "The template is not a JSON object.");
            rc = -1;
        } else {
            copybody_set_pre(b, template, len - 1);
        }
    } else if (raw && !b->dkim) {
        rc = copybody_split_v1(b, template, len, e);
    } else {
        copybody_set_pre(b, template, len);
    }
    if (rc == 0) {
        EVP_MD_CTX *h = copybody_must(EVP_MD_CTX_new());
        if (EVP_DigestInit_ex(h, EVP_sha256(), NULL) != 1 ||
            EVP_DigestUpdate(h, b->pre, b->pre_len) != 1)
            copybody_must(NULL);
        b->pre_hash = h;
    } else {
        copybody_batch_cleanup(b);
    }
    return rc;
}

void copybody_batch_cleanup(struct copybody_batch *b)
{
    free(b->pre);
    free(b->post);
    buf_free(&b->msg);
    EVP_MD_CTX_free(b->pre_hash);
    memset(b, 0, sizeof *b);
}

/* Append one v1 destination parameter "&<name><n>=<addr>". */
static void copybody_v1_param(struct buf *out, const char *name, size_t n, const char *addr)
{
    buf_printf(out, "&%s%zu=", name, n);
    form_encode(addr, strlen(addr), out);
}

/* Append the v1 destinations of a copy. */
static void copybody_v1_dest(const struct copybody_batch *b, const char *to,
                             const struct fanout_rcpt *riders, size_t nriders, struct buf *out)
{
    if (b->raw) {
        size_t k = 1;
        copybody_v1_param(out, "Destinations.member.", k++, to);
        for (size_t i = 0; i < nriders; i++)
            copybody_v1_param(out, "Destinations.member.", k++, riders[i].addr);
        return;
    }
    copybody_v1_param(out, "Destination.ToAddresses.member.", 1, to);
    size_t ncc = 0, nbcc = 0;
    for (size_t i = 0; i < nriders; i++) {
        if (riders[i].kind == FANOUT_CC)
            copybody_v1_param(out, "Destination.CcAddresses.member.", ++ncc, riders[i].addr);
        else
            copybody_v1_param(out, "Destination.BccAddresses.member.", ++nbcc, riders[i].addr);
    }
}

/* Append s to the array a. Returns 0, or -1 when s is not UTF-8. */
static int copybody_json_push(json_t *a, const char *s)
{
    json_t *v = json_string(s);
    if (v == NULL)
        return -1;
    json_array_append_new(a, v);
    return 0;
}

/* Append the v2 Destination member and the closing brace (every recipient
 * in ToAddresses for raw messages, as the envelope). Returns 0, or -1 when
 * an address is not UTF-8. */
static int copybody_v2_dest(const struct copybody_batch *b, const char *to,
                            const struct fanout_rcpt *riders, size_t nriders, struct buf *out)
{
    json_t *dest = copybody_must(json_object());
    json_t *ta = copybody_must(json_array());
    json_t *cc = copybody_must(json_array());
    json_t *bcc = copybody_must(json_array());
    int rc = copybody_json_push(ta, to);
    for (size_t i = 0; i < nriders && rc == 0; i++) {
        json_t *a = b->raw ? ta : riders[i].kind == FANOUT_CC ? cc : bcc;
        rc = copybody_json_push(a, riders[i].addr);
    }
    json_object_set_new(dest, "ToAddresses", ta);
    if (json_array_size(cc) > 0)
        json_object_set(dest, "CcAddresses", cc);
    if (json_array_size(bcc) > 0)
        json_object_set(dest, "BccAddresses", bcc);
    json_decref(cc);
    json_decref(bcc);
    if (rc == 0) {
        /* the template is "{...}" less its brace: a member before, or none */
        if (b->pre_len + b->post_len > 1 || b->has_msg)
            buf_addc(out, ',');
        buf_adds(out, "\"Destination\":");
        copybody_json_dump(dest, out);
        buf_addc(out, '}');
    }
    json_decref(dest);
    return rc;
}

/* Encode the message bytes m[0..n) (n 1 to 3; fewer at its end) into out:
 * base64, percent-encoded for a v1 form. Returns the bytes written. */
static size_t copybody_group(const struct copybody_batch *b, const unsigned char *m, size_t n,
                             char *out)
{
    uint32_t v = (uint32_t)m[0] << 16 | (n > 1 ? (uint32_t)m[1] << 8 : 0) | (n > 2 ? m[2] : 0);
    char q[4] = {copybody_b64[v >> 18], copybody_b64[v >> 12 & 63],
                 n > 1 ? copybody_b64[v >> 6 & 63] : '=', n > 2 ? copybody_b64[v & 63] : '='};
    if (b->api == SESREQ_V2) {
        memcpy(out, q, 4);
        return 4;
    }
    /* form_encode's output for the three base64 characters it escapes */
    size_t k = 0;
    for (int i = 0; i < 4; i++) {
        const char *pe = q[i] == '+' ? "%2B" : q[i] == '/' ? "%2F" : q[i] == '=' ? "%3D" : NULL;
        if (pe != NULL) {
            memcpy(out + k, pe, 3);
            k += 3;
        } else {
            out[k++] = q[i];
        }
    }
    return k;
}

/* The next (up to 3) bytes of the message at c->off into m; how many. */
static size_t copybody_msg_bytes(const struct copybody *c, unsigned char m[3])
{
    const struct copybody_batch *b = c->b;
    size_t hl = c->head.len, bl = b->msg.len - b->hend, k = 0;
    for (size_t o = c->off; k < 3 && o < hl + bl; o++)
        m[k++] = (unsigned char)(o < hl ? c->head.data[o] : b->msg.data[b->hend + o - hl]);
    return k;
}

/* Produce encoded message bytes into out (room n); returns how many. */
static size_t copybody_read_msg(struct copybody *c, char *out, size_t n)
{
    const struct copybody_batch *b = c->b;
    size_t hl = c->head.len, total = hl + b->msg.len - b->hend, w = 0;
    while (w < n) {
        if (c->pend_off < c->npend) {
            size_t k = c->npend - c->pend_off < n - w ? c->npend - c->pend_off : n - w;
            memcpy(out + w, c->pend + c->pend_off, k);
            c->pend_off += k;
            w += k;
            continue;
        }
        if (c->off >= total)
            break;
        /* whole groups of the body straight into out while they fit */
        if (c->off >= hl && n - w >= 12) {
            const unsigned char *m = (const unsigned char *)b->msg.data + b->hend + (c->off - hl);
            size_t left = total - c->off;
            while (left >= 3 && n - w >= 12) {
                w += copybody_group(b, m, 3, out + w);
                m += 3;
                c->off += 3;
                left -= 3;
            }
            if (left >= 3 || left == 0)
                continue;
        }
        unsigned char m[3];
        size_t k = copybody_msg_bytes(c, m);
        c->npend = copybody_group(b, m, k, c->pend);
        c->pend_off = 0;
        c->off += k;
    }
    return w;
}

size_t copybody_read(struct copybody *c, char *out, size_t n)
{
    size_t w = 0;
    while (w < n && c->part < 3) {
        if (c->part == 1) {
            size_t k = c->b->has_msg ? copybody_read_msg(c, out + w, n - w) : 0;
            w += k;
            if (k == 0 ||
                (c->off >= c->head.len + c->b->msg.len - c->b->hend && c->pend_off >= c->npend)) {
                c->part = 2;
                c->off = 0;
            }
            continue;
        }
        const char *s = c->part == 0 ? c->b->pre : c->tail.data;
        size_t len = c->part == 0 ? c->b->pre_len : c->tail.len;
        size_t k = len - c->off < n - w ? len - c->off : n - w;
        if (k > 0)
            memcpy(out + w, s + c->off, k);
        c->off += k;
        w += k;
        if (c->off >= len) {
            c->part++;
            c->off = 0;
            c->npend = c->pend_off = 0;
        }
    }
    return w;
}

void copybody_rewind(struct copybody *c)
{
    c->part = 0;
    c->off = 0;
    c->npend = c->pend_off = 0;
}

/* Read the body after pre once: its length and SHA-256 (from the batch's
 * state after pre). */
static void copybody_measure(struct copybody *c)
{
    EVP_MD_CTX *h = copybody_must(EVP_MD_CTX_new());
    if (EVP_MD_CTX_copy_ex(h, c->b->pre_hash) != 1)
        copybody_must(NULL);
    char *chunk = xmalloc(COPYBODY_CHUNK);
    c->part = 1;
    c->off = 0;
    size_t len = c->b->pre_len, k;
    while ((k = copybody_read(c, chunk, COPYBODY_CHUNK)) > 0) {
        if (EVP_DigestUpdate(h, chunk, k) != 1)
            copybody_must(NULL);
        len += k;
    }
    free(chunk);
    unsigned char md[32];
    if (EVP_DigestFinal_ex(h, md, NULL) != 1)
        copybody_must(NULL);
    EVP_MD_CTX_free(h);
    util_hex(md, sizeof md, c->sha256);
    c->len = len;
    copybody_rewind(c);
}

int copybody_init(struct copybody *c, const struct copybody_batch *b, const char *to, bool first,
                  const struct fanout_rcpt *riders, size_t nriders, struct seserr *e)
{
    memset(c, 0, sizeof *c);
    c->b = b;
    enum seserr_code bad = b->api == SESREQ_V2 ? SESERR_BAD_REQUEST : SESERR_INVALID_PARAMETER;
    if (to == NULL) {
        seserr_set(e, SESERR_INTERNAL, "No template or recipient to render.");
        return -1;
    }
    if (b->has_msg) {
        bool dkim = false;
        if (rfc5322_rewrite_for_copy(b->msg.data, b->hend, to, first, &c->head, &dkim) != 0) {
            seserr_set(e, bad, "Illegal address");
            copybody_cleanup(c);
            return -1;
        }
    }
    if (b->post != NULL)
        buf_add(&c->tail, b->post, b->post_len);
    if (b->api == SESREQ_V1) {
        copybody_v1_dest(b, to, riders, nriders, &c->tail);
    } else if (copybody_v2_dest(b, to, riders, nriders, &c->tail) != 0) {
        seserr_set(e, SESERR_BAD_REQUEST, "Illegal address");
        copybody_cleanup(c);
        return -1;
    }
    copybody_measure(c);
    return 0;
}

void copybody_cleanup(struct copybody *c)
{
    buf_free(&c->head);
    buf_free(&c->tail);
    memset(c, 0, sizeof *c);
}

int copybody_render(const struct copybody_spec *s, struct buf *out, struct seserr *e)
{
    struct copybody_batch b;
    if (s->to == NULL) {
        seserr_set(e, SESERR_INTERNAL, "No template or recipient to render.");
        return -1;
    }
    if (copybody_batch_init(&b, s->api, s->raw, s->dkim_envelope_only, s->template, s->template_len,
                            e) != 0)
        return -1;
    struct copybody c;
    int rc = copybody_init(&c, &b, s->to, s->first, s->riders, s->nriders, e);
    if (rc == 0) {
        buf_reserve(out, c.len);
        out->len += copybody_read(&c, out->data + out->len, c.len);
        out->data[out->len] = '\0';
        copybody_cleanup(&c);
    }
    copybody_batch_cleanup(&b);
    return rc;
}

int copybody_render_plan(const struct fanout_plan *p, size_t copy, struct buf *out,
                         struct seserr *e)
{
    if (!p->batch || copy >= p->nto) {
        seserr_set(e, SESERR_INTERNAL, "The plan has no copy %zu.", copy);
        return -1;
    }
    struct copybody_spec s = {
        .api = p->api,
        .raw = p->raw,
        .dkim_envelope_only = p->dkim_envelope_only,
        .template = p->template.data != NULL ? p->template.data : "",
        .template_len = p->template.len,
        .to = p->to[copy],
        .first = copy == 0,
        .riders = copy == 0 ? p->riders : NULL,
        .nriders = copy == 0 ? p->nriders : 0,
    };
    return copybody_render(&s, out, e);
}
