/* fanout: the fan-out planner (pure, no I/O, no clock).
 *
 * fanout_plan reads the parsed request once: the opt-out tag (v1 Tags, v2
 * EmailTags, raw X-SES-MESSAGE-TAGS), then the recipients, then, for a
 * batch, writes the template. v1 templates are the form re-encoded in the
 * original parameter order; v2 templates are the JSON body dumped compact.
 * A copy is the template plus its destination: appended parameters (v1), a
 * "Destination" member spliced in before the closing brace (v2), and for raw
 * messages the RawMessage.Data / Content.Raw.Data value replaced by the
 * rewritten message.
 */
#include "fanout.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "form.h"
#include "addr.h"
#include "rfc5322.h"
#include "util.h"

/* Digits of a list index (Destination.ToAddresses.member.N, Tags.member.N). */
#define FANOUT_INDEX_DIGITS 9
/* The header field that carries message tags in a raw message. */
#define FANOUT_TAGS_HEADER "X-SES-MESSAGE-TAGS"
/* The reason rfc5322_parse_addresses gives when max is exceeded. */
#define FANOUT_TOO_MANY_REASON "too many addresses"

static const char fanout_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* A growable list of owned strings. */
struct fanout_list {
    char **v;
    size_t n, cap;
};

/* One value of a v1 list parameter (prefix.N) or of a v2 address array. */
struct fanout_item {
    size_t idx;    /* v1 list index */
    const char *s; /* the value (not owned) */
    size_t len;
};

/* One header field within a raw message's header block. */
struct fanout_field {
    size_t start;    /* offset of its first byte */
    size_t end;      /* just past its last line, line end included */
    size_t name_len; /* length of its name; 0 for a line without a colon */
};

/* Bytes of a raw message a plan decodes when they hold its header block. */
#define FANOUT_HEAD_MAX 65536

/* The state of one fanout_plan call. */
struct fanout_work {
    const struct sesreq *r;
    struct fanout_plan *p;
    struct seserr *e;
    bool off;              /* a tag says sesgate-fanout=off */
    bool possible;         /* fan-out on and not opted out: a batch if two To */
    bool skip;             /* possible and skip_invalid: bad addresses are left out */
    bool always;           /* a batch even of one To recipient (fanout_plan_ex) */
    size_t invalid_cap;    /* slots allocated in p->invalid */
    size_t to_limit;       /* most To recipients accepted */
    size_t to_cap;         /* slots allocated in p->to */
    struct fanout_list cc; /* Cc riders */
    struct fanout_list bcc;
    bool *drop;     /* v1: per parameter, removed with the tag (NULL: none) */
    size_t *renum;  /* v1: per parameter, its new tag index (0: name kept) */
    struct buf msg; /* raw: the decoded message (its start: fanout_raw_decode), tag field edited */
    bool msg_whole; /* raw: msg is the whole message */
    void (*on_batch)(void *arg); /* fanout_plan_hooked's hook, and its argument */
    void *on_batch_arg;
    bool msg_changed; /* raw: msg differs from the message as sent */
    struct buf b64;   /* raw, msg_changed: the base64 of msg */
};

/* True for space and horizontal tab. */
static bool fanout_is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* Append s (owned) to the list. */
static void fanout_list_add(struct fanout_list *l, char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->v = xrealloc(l->v, l->cap * sizeof l->v[0]);
    }
    l->v[l->n++] = s;
}

/* Free the strings and the list; it is empty afterwards. */
static void fanout_list_free(struct fanout_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* strcmp() for qsort()/bsearch() over arrays of char *. */
static int fanout_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Compare two list items by index, for qsort(). */
static int fanout_cmp_item(const void *a, const void *b)
{
    size_t x = ((const struct fanout_item *)a)->idx, y = ((const struct fanout_item *)b)->idx;
    return (x > y) - (x < y);
}

/* Compare two size_t values, for qsort()/bsearch(). */
static int fanout_cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

/* The error code for an invalid value: InvalidParameterValue on v1,
 * BadRequestException on v2. */
static enum seserr_code fanout_invalid(const struct sesreq *r)
{
    return r->api == SESREQ_V2 ? SESERR_BAD_REQUEST : SESERR_INVALID_PARAMETER;
}

/* Abort when a jansson constructor ran out of memory (the OOM policy). */
static json_t *fanout_json_must(json_t *j)
{
    if (j == NULL)
        abort();
    return j;
}

/* Parse a list index (decimal, 1-based, no leading zero, at most
 * FANOUT_INDEX_DIGITS digits) at the start of the n bytes at s. Returns the
 * digits read, 0 when there is no index. */
static size_t fanout_index(const char *s, size_t n, size_t *idx)
{
    if (n == 0 || s[0] < '1' || s[0] > '9')
        return 0;
    size_t i = 0, v = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        if (i == FANOUT_INDEX_DIGITS)
            return 0;
        v = v * 10 + (size_t)(s[i] - '0');
        i++;
    }
    *idx = v;
    return i;
}

/* Append the base64 of the n bytes at s, padded, without line breaks. */
static void fanout_b64_encode(const char *s, size_t n, struct buf *out)
{
    const unsigned char *in = (const unsigned char *)s;
    buf_reserve(out, (n + 2) / 3 * 4);
    char *d = out->data + out->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *d++ = fanout_b64_alphabet[v >> 18];
        *d++ = fanout_b64_alphabet[v >> 12 & 63];
        *d++ = fanout_b64_alphabet[v >> 6 & 63];
        *d++ = fanout_b64_alphabet[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        *d++ = fanout_b64_alphabet[v >> 18];
        *d++ = fanout_b64_alphabet[v >> 12 & 63];
        *d++ = i + 1 < n ? fanout_b64_alphabet[v >> 6 & 63] : '=';
        *d++ = '=';
    }
    out->len = (size_t)(d - out->data);
    out->data[out->len] = '\0';
}

/* Where the line at m[pos] ends: returns the offset just past its LF (or
 * end), and *content_end where its content ends (before a CR before LF). */
static size_t fanout_line(const char *m, size_t pos, size_t end, size_t *content_end)
{
    const char *lf = memchr(m + pos, '\n', end - pos);
    if (lf == NULL) {
        *content_end = end;
        return end;
    }
    size_t ce = (size_t)(lf - m);
    if (ce > pos && m[ce - 1] == '\r')
        ce--;
    *content_end = ce;
    return (size_t)(lf - m) + 1;
}

/* Read the header field at or after *pos in the header block m[0, hend)
 * into f (continuation lines included) and move *pos past it. Lines that
 * continue no field are skipped. Returns false at the end of the block. */
static bool fanout_field_next(const char *m, size_t hend, size_t *pos, struct fanout_field *f)
{
    size_t p = *pos;
    while (p < hend) {
        size_t ce;
        size_t e = fanout_line(m, p, hend, &ce);
        if (ce == p)
            return false;
        if (fanout_is_wsp(m[p])) {
            p = e;
            continue;
        }
        f->start = p;
        f->name_len = 0;
        const char *colon = memchr(m + p, ':', ce - p);
        if (colon != NULL) {
            size_t c = (size_t)(colon - m);
            while (c > p && fanout_is_wsp(m[c - 1]))
                c--;
            f->name_len = c - p;
        }
        while (e < hend && fanout_is_wsp(m[e]))
            e = fanout_line(m, e, hend, &ce);
        f->end = e;
        *pos = e;
        return true;
    }
    return false;
}

/* True when field f of m is named name (ignoring case). */
static bool fanout_field_is(const char *m, const struct fanout_field *f, const char *name)
{
    return f->name_len > 0 && util_ieq(m + f->start, f->name_len, name);
}

/* Append the unfolded value of field f (named name) of m to out. */
static void fanout_field_value(const char *m, const struct fanout_field *f, const char *name,
                               struct buf *out)
{
    rfc5322_header_get(m + f->start, f->end - f->start, name, out);
}

/* Trim spaces and tabs around s[*b, *e). */
static void fanout_trim(const char *s, size_t *b, size_t *e)
{
    while (*b < *e && fanout_is_wsp(s[*b]))
        (*b)++;
    while (*e > *b && fanout_is_wsp(s[*e - 1]))
        (*e)--;
}

/* Filter one X-SES-MESSAGE-TAGS value ("k=v, k2=v2"): append the entries
 * other than the opt-out tag to kept, joined by ", ". Returns true when the
 * opt-out tag was there; sets *off when its value is off. */
static bool fanout_tags_value(const char *s, size_t len, struct buf *kept, bool *off)
{
    bool hit = false;
    for (size_t i = 0; i <= len;) {
        const char *comma = memchr(s + i, ',', len - i);
        size_t j = comma ? (size_t)(comma - s) : len;
        size_t b = i, e = j;
        fanout_trim(s, &b, &e);
        if (b < e) {
            const char *eq = memchr(s + b, '=', e - b);
            size_t nb = b, ne = eq ? (size_t)(eq - s) : e;
            fanout_trim(s, &nb, &ne);
            if (util_ieq(s + nb, ne - nb, FANOUT_TAG_NAME)) {
                hit = true;
                size_t vb = eq ? (size_t)(eq - s) + 1 : e, ve = e;
                fanout_trim(s, &vb, &ve);
                if (util_ieq(s + vb, ve - vb, "off"))
                    *off = true;
            } else {
                if (kept->len > 0)
                    buf_adds(kept, ", ");
                buf_add(kept, s + b, e - b);
            }
        }
        i = j + 1;
    }
    return hit;
}

/* Copy the message m into out without the opt-out entries of its
 * X-SES-MESSAGE-TAGS fields (a field left with no entry is removed; an edited
 * one is written back on one line; every other byte is kept). Returns true
 * when there was such an entry; out is untouched otherwise. Sets *off when
 * one says off. */
static bool fanout_raw_strip_tags(const char *m, size_t n, struct buf *out, bool *off)
{
    size_t hend = rfc5322_header_end(m, n), pos = 0, done = 0;
    bool found = false;
    struct fanout_field f;
    struct buf v = BUF_INIT, kept = BUF_INIT;
    while (fanout_field_next(m, hend, &pos, &f)) {
        if (!fanout_field_is(m, &f, FANOUT_TAGS_HEADER))
            continue;
        buf_reset(&v);
        buf_reset(&kept);
        fanout_field_value(m, &f, FANOUT_TAGS_HEADER, &v);
        if (!fanout_tags_value(buf_cstr(&v), v.len, &kept, off))
            continue;
        found = true;
        buf_add(out, m + done, f.start - done);
        if (kept.len > 0) {
            buf_add(out, m + f.start, f.name_len);
            buf_adds(out, ": ");
            buf_add(out, kept.data, kept.len);
            if (m[f.end - 1] == '\n')
                buf_adds(out, f.end - f.start >= 2 && m[f.end - 2] == '\r' ? "\r\n" : "\n");
        }
        done = f.end;
    }
    if (found)
        buf_add(out, m + done, n - done);
    buf_free(&v);
    buf_free(&kept);
    return found;
}

/* Report more To recipients than the limit. Returns -1. */
static int fanout_too_many_to(struct fanout_work *w)
{
    if (w->possible)
        seserr_set(w->e, SESERR_INVALID_PARAMETER,
                   "Too many To recipients: a fanned-out send may have at most %zu To recipients.",
                   w->to_limit);
    else
        seserr_set(w->e, SESERR_INVALID_PARAMETER,
                   "Too many To recipients: at most %d are accepted.", FANOUT_MAX_LIST);
    return -1;
}

/* Report more Cc and Bcc recipients than FANOUT_MAX_LIST. Returns -1. */
static int fanout_too_many_riders(struct fanout_work *w)
{
    seserr_set(w->e, SESERR_INVALID_PARAMETER,
               "Too many Cc and Bcc recipients: at most %d are accepted.", FANOUT_MAX_LIST);
    return -1;
}

/* Report an address SES would refuse, for reason why (addr.h). Returns -1. */
static int fanout_bad_address(struct fanout_work *w, const char *why)
{
    seserr_set(w->e, fanout_invalid(w->r), "%s", why);
    return -1;
}

/* Report an address that does not parse. Returns -1. */
static int fanout_illegal_address(struct fanout_work *w)
{
    return fanout_bad_address(w, "Illegal address");
}

/* An address SES refuses for reason why: in skip mode note it in the plan
 * and return 0, else report it and return -1. */
static int fanout_refuse_or_skip(struct fanout_work *w, const char *addr, size_t len,
                                 const char *why)
{
    if (!w->skip)
        return fanout_bad_address(w, why);
    struct fanout_plan *p = w->p;
    if (p->ninvalid == w->invalid_cap) {
        w->invalid_cap = w->invalid_cap ? w->invalid_cap * 2 : 8;
        p->invalid = xrealloc(p->invalid, w->invalid_cap * sizeof p->invalid[0]);
    }
    p->invalid[p->ninvalid++] = (struct fanout_invalid){xstrndup(addr, len), why};
    return 0;
}

/* Add a To recipient (owned). Returns 0, or -1 with e set past the limit. */
static int fanout_add_to(struct fanout_work *w, char *addr)
{
    struct fanout_plan *p = w->p;
    if (p->nto >= w->to_limit) {
        free(addr);
        return fanout_too_many_to(w);
    }
    if (p->nto == w->to_cap) {
        w->to_cap = w->to_cap ? w->to_cap * 2 : 8;
        p->to = xrealloc(p->to, w->to_cap * sizeof p->to[0]);
    }
    p->to[p->nto++] = addr;
    return 0;
}

/* Add a recipient (owned) of the given kind. Returns 0, or -1 with e set. */
static int fanout_add(struct fanout_work *w, enum fanout_kind kind, char *addr)
{
    if (kind == FANOUT_TO)
        return fanout_add_to(w, addr);
    if (w->cc.n + w->bcc.n >= FANOUT_MAX_LIST) {
        free(addr);
        return fanout_too_many_riders(w);
    }
    fanout_list_add(kind == FANOUT_CC ? &w->cc : &w->bcc, addr);
    return 0;
}

/* The values of the v1 parameters named prefix<N> (N a list index), sorted
 * by N, into *out (owned by the caller). Returns how many. */
static size_t fanout_v1_list(const struct form *f, const char *prefix, struct fanout_item **out)
{
    size_t plen = strlen(prefix), n = 0, cap = 0;
    struct fanout_item *v = NULL;
    for (size_t i = 0; i < f->n; i++) {
        const struct form_param *fp = &f->params[i];
        size_t idx;
        if (fp->name_len <= plen || memcmp(fp->name, prefix, plen) != 0)
            continue;
        size_t k = fanout_index(fp->name + plen, fp->name_len - plen, &idx);
        if (k == 0 || plen + k != fp->name_len)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            v = xrealloc(v, cap * sizeof v[0]);
        }
        v[n++] = (struct fanout_item){idx, fp->value, fp->value_len};
    }
    if (n > 1)
        qsort(v, n, sizeof v[0], fanout_cmp_item);
    *out = v;
    return n;
}

/* The tag index of v1 parameter fp when it is named Tags.member.N[.rest]:
 * *rest gets the offset just past N. */
static bool fanout_v1_tag_index(const struct form_param *fp, size_t *idx, size_t *rest)
{
    static const char prefix[] = "Tags.member.";
    const size_t plen = sizeof prefix - 1;
    if (fp->name_len <= plen || memcmp(fp->name, prefix, plen) != 0)
        return false;
    size_t k = fanout_index(fp->name + plen, fp->name_len - plen, idx);
    if (k == 0 || (plen + k < fp->name_len && fp->name[plen + k] != '.'))
        return false;
    *rest = plen + k;
    return true;
}

/* Find the v1 opt-out tags (Tags.member.N.Name = sesgate-fanout): mark
 * their parameters to drop and renumber the other tags contiguously. */
static void fanout_v1_tags(struct fanout_work *w)
{
    const struct form *f = &w->r->form;
    size_t *dropped = NULL, ndropped = 0, *kept = NULL, nkept = 0;
    size_t idx, rest;
    for (size_t i = 0; i < f->n; i++) {
        const struct form_param *fp = &f->params[i];
        if (!fanout_v1_tag_index(fp, &idx, &rest) || strcmp(fp->name + rest, ".Name") != 0 ||
            !util_ieq(fp->value, fp->value_len, FANOUT_TAG_NAME))
            continue;
        if (dropped == NULL)
            dropped = xcalloc(f->n, sizeof dropped[0]);
        dropped[ndropped++] = idx;
        char name[64];
        snprintf(name, sizeof name, "Tags.member.%zu.Value", idx);
        size_t vlen;
        const char *v = form_get(f, name, &vlen);
        if (v != NULL && util_ieq(v, vlen, "off"))
            w->off = true;
    }
    if (ndropped == 0)
        return;
    w->p->tag_stripped = true;
    qsort(dropped, ndropped, sizeof dropped[0], fanout_cmp_size);
    w->drop = xcalloc(f->n, sizeof w->drop[0]);
    w->renum = xcalloc(f->n, sizeof w->renum[0]);
    kept = xcalloc(f->n, sizeof kept[0]);
    for (size_t i = 0; i < f->n; i++) {
        if (!fanout_v1_tag_index(&f->params[i], &idx, &rest))
            continue;
        if (bsearch(&idx, dropped, ndropped, sizeof dropped[0], fanout_cmp_size) != NULL) {
            w->drop[i] = true;
        } else {
            kept[nkept++] = idx;
        }
    }
    if (nkept > 1)
        qsort(kept, nkept, sizeof kept[0], fanout_cmp_size);
    size_t nuniq = 0;
    for (size_t i = 0; i < nkept; i++)
        if (nuniq == 0 || kept[nuniq - 1] != kept[i])
            kept[nuniq++] = kept[i];
    for (size_t i = 0; i < f->n; i++) {
        if (w->drop[i] || !fanout_v1_tag_index(&f->params[i], &idx, &rest))
            continue;
        const size_t *at = bsearch(&idx, kept, nuniq, sizeof kept[0], fanout_cmp_size);
        w->renum[i] = (size_t)(at - kept) + 1;
    }
    free(dropped);
    free(kept);
}

/* True when the v2 tag t is the opt-out tag; sets *off when its value is off. */
static bool fanout_v2_is_tag(json_t *t, bool *off)
{
    json_t *name = json_object_get(t, "Name");
    if (!json_is_string(name) ||
        !util_ieq(json_string_value(name), json_string_length(name), FANOUT_TAG_NAME))
        return false;
    json_t *value = json_object_get(t, "Value");
    if (json_is_string(value) &&
        util_ieq(json_string_value(value), json_string_length(value), "off"))
        *off = true;
    return true;
}

/* Find the v2 opt-out tags in EmailTags. */
static void fanout_v2_tags(struct fanout_work *w)
{
    json_t *tags = json_object_get(w->r->json, "EmailTags");
    size_t i;
    json_t *t;
    json_array_foreach(tags, i, t)
    {
        if (fanout_v2_is_tag(t, &w->off))
            w->p->tag_stripped = true;
    }
}

/* Decode the start of the raw message into w->msg: at least its header
 * block, which is all a plan reads of it (the whole message when its header
 * block is longer than FANOUT_HEAD_MAX, or when whole). All of the base64 is
 * checked. Returns 0, or -1 with e set. */
static int fanout_raw_decode(struct fanout_work *w, const char *data, size_t len, bool whole)
{
    buf_reset(&w->msg);
    size_t max = whole ? SIZE_MAX : FANOUT_HEAD_MAX;
    if (util_base64_decode_max(data, len, max, &w->msg) != 0) {
        seserr_set(w->e, fanout_invalid(w->r), "Invalid base64 in the raw message data.");
        return -1;
    }
    w->msg_whole = w->msg.len < max;
    if (!w->msg_whole && rfc5322_header_end(buf_cstr(&w->msg), w->msg.len) == w->msg.len)
        return fanout_raw_decode(w, data, len, true); /* no end of the header block in it */
    return 0;
}

/* Decode the raw message (fanout_raw_decode) and strip the opt-out tag from
 * its X-SES-MESSAGE-TAGS fields: then the whole message is decoded, since
 * the copies carry the edited message. Returns 0, or -1 with e set. */
static int fanout_raw_message(struct fanout_work *w)
{
    size_t len = 0;
    const char *data = sesreq_raw_data(w->r, &len);
    if (data == NULL) {
        seserr_set(w->e, fanout_invalid(w->r), "The raw message data is missing.");
        return -1;
    }
    if (fanout_raw_decode(w, data, len, false) != 0)
        return -1;
    struct buf stripped = BUF_INIT;
    bool off = false;
    if (!w->msg_whole && fanout_raw_strip_tags(buf_cstr(&w->msg), w->msg.len, &stripped, &off)) {
        buf_free(&stripped);
        if (fanout_raw_decode(w, data, len, true) != 0)
            return -1;
    }
    if (fanout_raw_strip_tags(buf_cstr(&w->msg), w->msg.len, &stripped, &w->off)) {
        buf_free(&w->msg);
        w->msg = stripped;
        w->msg_changed = true;
        w->p->tag_stripped = true;
        fanout_b64_encode(buf_cstr(&w->msg), w->msg.len, &w->b64);
    }
    return 0;
}

/* Parse the address list of header field f (named name) of m, at most max
 * addresses, into l; with check, each must pass addr_check_spec(). Returns 0;
 * or -1 with *too_many set when there are more than max, else with e set. */
static int fanout_field_addrs(struct fanout_work *w, const char *m, const struct fanout_field *f,
                              const char *name, size_t max, bool check, struct rfc5322_addr_list *l,
                              bool *too_many)
{
    struct buf v = BUF_INIT;
    char why[128] = "";
    *too_many = false;
    fanout_field_value(m, f, name, &v);
    int rc = rfc5322_parse_addresses(buf_cstr(&v), v.len, max, l, why, sizeof why);
    buf_free(&v);
    if (rc != 0) {
        if (strcmp(why, FANOUT_TOO_MANY_REASON) == 0)
            *too_many = true;
        else
            fanout_illegal_address(w);
        return -1;
    }
    size_t kept = 0;
    for (size_t i = 0; i < l->n; i++) {
        const char *bad = check ? addr_check_spec(l->v[i].addr, strlen(l->v[i].addr)) : NULL;
        if (bad != NULL && fanout_refuse_or_skip(w, l->v[i].addr, strlen(l->v[i].addr), bad) != 0) {
            rfc5322_addr_list_free(l);
            return -1;
        }
        if (bad != NULL) {
            free(l->v[i].display);
            free(l->v[i].addr);
            continue;
        }
        l->v[kept++] = l->v[i];
    }
    l->n = kept;
    return 0;
}

/* Raw message without destinations: the recipients are the addresses of
 * its To, Cc and Bcc fields (every occurrence of each). Returns 0, or -1
 * with e set. */
static int fanout_raw_from_headers(struct fanout_work *w)
{
    static const char *const names[] = {"To", "Cc", "Bcc"};
    static const enum fanout_kind kinds[] = {FANOUT_TO, FANOUT_CC, FANOUT_BCC};
    const char *m = buf_cstr(&w->msg);
    size_t hend = rfc5322_header_end(m, w->msg.len), pos = 0;
    struct fanout_field f;
    while (fanout_field_next(m, hend, &pos, &f)) {
        size_t k = 0;
        while (k < 3 && !fanout_field_is(m, &f, names[k]))
            k++;
        if (k == 3)
            continue;
        size_t max = kinds[k] == FANOUT_TO ? w->to_limit - w->p->nto
                                           : FANOUT_MAX_LIST - (w->cc.n + w->bcc.n);
        struct rfc5322_addr_list l = {NULL, 0};
        bool too_many;
        if (fanout_field_addrs(w, m, &f, names[k], max, true, &l, &too_many) != 0) {
            if (too_many)
                return kinds[k] == FANOUT_TO ? fanout_too_many_to(w) : fanout_too_many_riders(w);
            return -1;
        }
        int rc = 0;
        for (size_t i = 0; i < l.n && rc == 0; i++)
            rc = fanout_add(w, kinds[k], xstrdup(l.v[i].addr));
        rfc5322_addr_list_free(&l);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* A lower-cased copy of s (ASCII). */
static char *fanout_lower(const char *s)
{
    char *d = xstrdup(s);
    for (char *c = d; *c != '\0'; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    return d;
}

/* Collect the lower-cased addr-specs of the fields named name of m into set,
 * sorted. Returns 0, or -1 with e set. */
static int fanout_header_set(struct fanout_work *w, const char *m, size_t len, const char *name,
                             struct fanout_list *set)
{
    size_t hend = rfc5322_header_end(m, len), pos = 0;
    size_t max = w->to_limit > FANOUT_MAX_LIST ? w->to_limit : FANOUT_MAX_LIST;
    struct fanout_field f;
    while (fanout_field_next(m, hend, &pos, &f)) {
        if (!fanout_field_is(m, &f, name))
            continue;
        struct rfc5322_addr_list l = {NULL, 0};
        bool too_many;
        if (fanout_field_addrs(w, m, &f, name, max - set->n, false, &l, &too_many) != 0) {
            if (too_many)
                seserr_set(w->e, SESERR_INVALID_PARAMETER,
                           "Too many addresses in the %s header: at most %zu are accepted.", name,
                           max);
            return -1;
        }
        for (size_t i = 0; i < l.n; i++)
            fanout_list_add(set, fanout_lower(l.v[i].addr));
        rfc5322_addr_list_free(&l);
    }
    if (set->n > 1)
        qsort(set->v, set->n, sizeof set->v[0], fanout_cmp_str);
    return 0;
}

/* True when the sorted set holds s. */
static bool fanout_set_has(const struct fanout_list *set, const char *s)
{
    return set->n > 0 && bsearch(&s, set->v, set->n, sizeof set->v[0], fanout_cmp_str) != NULL;
}

/* Raw message with destinations: classify each by the message's To and Cc
 * fields (a destination the To field names gets a copy; one in Cc, or
 * anywhere else, rides with copy 0). Returns 0, or -1 with e set. */
static int fanout_raw_classify(struct fanout_work *w, const struct fanout_item *dest, size_t n)
{
    struct fanout_list to_set = {NULL, 0, 0}, cc_set = {NULL, 0, 0};
    const char *m = buf_cstr(&w->msg);
    int rc = fanout_header_set(w, m, w->msg.len, "To", &to_set);
    if (rc == 0)
        rc = fanout_header_set(w, m, w->msg.len, "Cc", &cc_set);
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct rfc5322_addr_list l = {NULL, 0};
        char why[128];
        const char *bad = addr_check_mailbox(dest[i].s, dest[i].len);
        if (bad != NULL) {
            rc = fanout_refuse_or_skip(w, dest[i].s, dest[i].len, bad);
            continue;
        }
        if (rfc5322_parse_addresses(dest[i].s, dest[i].len, 1, &l, why, sizeof why) != 0 ||
            l.n != 1) {
            rfc5322_addr_list_free(&l);
            rc = fanout_illegal_address(w);
            break;
        }
        char *low = fanout_lower(l.v[0].addr);
        enum fanout_kind kind = fanout_set_has(&to_set, low)   ? FANOUT_TO
                                : fanout_set_has(&cc_set, low) ? FANOUT_CC
                                                               : FANOUT_BCC;
        free(low);
        rc = fanout_add(w, kind, xstrdup(l.v[0].addr));
        rfc5322_addr_list_free(&l);
    }
    fanout_list_free(&to_set);
    fanout_list_free(&cc_set);
    return rc;
}

/* The v2 Destination member key as an array of strings into *arr (NULL
 * when absent). Returns 0, or -1 with e set when it has the wrong shape. */
static int fanout_v2_dest_array(struct fanout_work *w, json_t *dest, const char *key, json_t **arr)
{
    json_t *a = json_object_get(dest, key);
    *arr = NULL;
    if (a == NULL || json_is_null(a))
        return 0;
    size_t i;
    json_t *v;
    bool ok = json_is_array(a);
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v))
            ok = false;
    }
    if (!ok) {
        seserr_set(w->e, SESERR_BAD_REQUEST, "Destination.%s must be a list of strings", key);
        return -1;
    }
    *arr = a;
    return 0;
}

/* The v2 Destination object into the three arrays (each NULL when absent).
 * Returns 0, or -1 with e set. */
static int fanout_v2_dest(struct fanout_work *w, json_t *arrs[3])
{
    static const char *const keys[] = {"ToAddresses", "CcAddresses", "BccAddresses"};
    json_t *dest = json_object_get(w->r->json, "Destination");
    arrs[0] = arrs[1] = arrs[2] = NULL;
    if (dest == NULL || json_is_null(dest))
        return 0;
    if (!json_is_object(dest)) {
        seserr_set(w->e, SESERR_BAD_REQUEST, "Destination must be an object");
        return -1;
    }
    for (size_t k = 0; k < 3; k++)
        if (fanout_v2_dest_array(w, dest, keys[k], &arrs[k]) != 0)
            return -1;
    return 0;
}

/* Append the strings of v2 array a to items. */
static void fanout_v2_items(json_t *a, struct fanout_item **items, size_t *n)
{
    size_t i;
    json_t *v;
    if (json_array_size(a) == 0)
        return;
    *items = xrealloc(*items, (*n + json_array_size(a)) * sizeof(*items)[0]);
    json_array_foreach(a, i, v)
    {
        (*items)[(*n)++] = (struct fanout_item){i, json_string_value(v), json_string_length(v)};
    }
}

/* The recipients of a raw message: from its destinations when the request
 * gives any, else from its headers. Returns 0, or -1 with e set. */
static int fanout_raw_recipients(struct fanout_work *w)
{
    struct fanout_item *dest = NULL;
    size_t n = 0;
    if (w->r->api == SESREQ_V1) {
        n = fanout_v1_list(&w->r->form, "Destinations.member.", &dest);
    } else {
        json_t *arrs[3];
        if (fanout_v2_dest(w, arrs) != 0)
            return -1;
        for (size_t k = 0; k < 3; k++)
            fanout_v2_items(arrs[k], &dest, &n);
    }
    int rc;
    if (n > w->to_limit + FANOUT_MAX_LIST) {
        seserr_set(w->e, SESERR_INVALID_PARAMETER,
                   "Too many destinations: at most %zu are accepted.",
                   w->to_limit + FANOUT_MAX_LIST);
        rc = -1;
    } else {
        rc = n > 0 ? fanout_raw_classify(w, dest, n) : fanout_raw_from_headers(w);
    }
    free(dest);
    return rc;
}

/* Add the n items as recipients of the given kind (formatted sends keep
 * each address as the request gave it, display name included). A control
 * character, CR and LF above all, makes it illegal, as SES says; otherwise
 * the address must pass addr_check_mailbox. Returns 0, or -1 with e set. */
static int fanout_add_items(struct fanout_work *w, enum fanout_kind kind,
                            const struct fanout_item *v, size_t n)
{
    if (kind == FANOUT_TO && w->p->nto + n > w->to_limit)
        return fanout_too_many_to(w);
    if (kind != FANOUT_TO && w->cc.n + w->bcc.n + n > FANOUT_MAX_LIST)
        return fanout_too_many_riders(w);
    for (size_t i = 0; i < n; i++) {
        const char *why = NULL;
        for (size_t k = 0; k < v[i].len && why == NULL; k++)
            if ((unsigned char)v[i].s[k] < 0x20 || v[i].s[k] == 0x7f)
                why = "Illegal address";
        if (why == NULL)
            why = addr_check_mailbox(v[i].s, v[i].len);
        if (why != NULL) {
            if (fanout_refuse_or_skip(w, v[i].s, v[i].len, why) != 0)
                return -1;
            continue;
        }
        if (fanout_add(w, kind, xstrndup(v[i].s, v[i].len)) != 0)
            return -1;
    }
    return 0;
}

/* The recipients of a formatted send (v1 Destination.*Addresses.member.N,
 * v2 Destination). Returns 0, or -1 with e set. */
static int fanout_formatted_recipients(struct fanout_work *w)
{
    static const char *const prefixes[] = {"Destination.ToAddresses.member.",
                                           "Destination.CcAddresses.member.",
                                           "Destination.BccAddresses.member."};
    static const enum fanout_kind kinds[] = {FANOUT_TO, FANOUT_CC, FANOUT_BCC};
    json_t *arrs[3] = {NULL, NULL, NULL};
    if (w->r->api == SESREQ_V2 && fanout_v2_dest(w, arrs) != 0)
        return -1;
    for (size_t k = 0; k < 3; k++) {
        struct fanout_item *v = NULL;
        size_t n = 0;
        if (w->r->api == SESREQ_V1)
            n = fanout_v1_list(&w->r->form, prefixes[k], &v);
        else
            fanout_v2_items(arrs[k], &v, &n);
        int rc = fanout_add_items(w, kinds[k], v, n);
        free(v);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* True when v1 parameter fp is a destination parameter of the send
 * (Destination[.x] for formatted sends, Destinations[.x] for raw ones). */
static bool fanout_v1_is_dest(const struct form_param *fp, bool raw)
{
    const char *name = raw ? "Destinations" : "Destination";
    size_t len = strlen(name);
    return fp->name_len >= len && memcmp(fp->name, name, len) == 0 &&
           (fp->name_len == len || fp->name[len] == '.');
}

/* Append the v1 request re-encoded without the opt-out tag (tags
 * renumbered) and, unless keep_dest, without destinations. */
static void fanout_v1_body(struct fanout_work *w, bool keep_dest, struct buf *out)
{
    const struct form *f = &w->r->form;
    bool first = true;
    for (size_t i = 0; i < f->n; i++) {
        const struct form_param *fp = &f->params[i];
        if ((w->drop != NULL && w->drop[i]) || (!keep_dest && fanout_v1_is_dest(fp, w->r->raw)))
            continue;
        if (!first)
            buf_addc(out, '&');
        first = false;
        size_t idx, rest;
        if (w->renum != NULL && w->renum[i] != 0 && fanout_v1_tag_index(fp, &idx, &rest)) {
            buf_printf(out, "Tags.member.%zu", w->renum[i]);
            form_encode(fp->name + rest, fp->name_len - rest, out);
        } else {
            form_encode(fp->name, fp->name_len, out);
        }
        buf_addc(out, '=');
        if (w->msg_changed && strcmp(fp->name, "RawMessage.Data") == 0)
            form_encode(buf_cstr(&w->b64), w->b64.len, out);
        else
            form_encode(fp->value, fp->value_len, out);
    }
}

/* json_dump_callback() sink appending to a struct buf. */
static int fanout_json_sink(const char *s, size_t n, void *data)
{
    buf_add(data, s, n);
    return 0;
}

/* Append j as compact JSON. Returns 0, or -1 when jansson fails. */
static int fanout_json_dump(json_t *j, struct buf *out)
{
    return json_dump_callback(j, fanout_json_sink, out, JSON_COMPACT | JSON_PRESERVE_ORDER);
}

/* Append the v2 request without the opt-out tag (EmailTags dropped when it
 * empties) and, unless keep_dest, without Destination. The request's JSON is
 * not modified: changed objects are shallow copies. Returns 0, or -1 with e
 * set. */
static int fanout_v2_body(struct fanout_work *w, bool keep_dest, struct buf *out)
{
    json_t *root = fanout_json_must(json_copy(w->r->json));
    if (!keep_dest)
        json_object_del(root, "Destination");
    json_t *tags = json_object_get(root, "EmailTags");
    if (w->p->tag_stripped && json_is_array(tags)) {
        json_t *kept = fanout_json_must(json_array());
        size_t i;
        json_t *t;
        bool off;
        json_array_foreach(tags, i, t)
        {
            if (!fanout_v2_is_tag(t, &off))
                json_array_append(kept, t);
        }
        if (json_array_size(kept) == 0)
            json_object_del(root, "EmailTags");
        else
            json_object_set(root, "EmailTags", kept);
        json_decref(kept);
    }
    if (w->msg_changed) {
        json_t *content = fanout_json_must(json_copy(json_object_get(root, "Content")));
        json_t *raw = fanout_json_must(json_copy(json_object_get(content, "Raw")));
        json_object_set_new(raw, "Data",
                            fanout_json_must(json_stringn(buf_cstr(&w->b64), w->b64.len)));
        json_object_set_new(content, "Raw", raw);
        json_object_set_new(root, "Content", content);
    }
    int rc;
    if (w->r->raw_data != NULL && !w->msg_changed) {
        /* the message was read in place: the JSON holds the mark for it */
        struct buf text = BUF_INIT;
        rc = fanout_json_dump(root, &text);
        const char *t = buf_cstr(&text);
        const char *m = rc == 0 ? strstr(t, SESREQ_DATA_MARK_JSON) : NULL;
        if (m == NULL) {
            rc = -1;
        } else {
            size_t ml = sizeof SESREQ_DATA_MARK_JSON - 1;
            buf_add(out, t, (size_t)(m - t));
            buf_add(out, w->r->raw_data, w->r->raw_len);
            buf_add(out, m + ml, text.len - (size_t)(m - t) - ml);
        }
        buf_free(&text);
    } else {
        rc = fanout_json_dump(root, out);
    }
    json_decref(root);
    if (rc != 0) {
        seserr_set(w->e, SESERR_INTERNAL, "The request could not be serialized.");
        return -1;
    }
    return 0;
}

int fanout_with_dest(enum sesreq_api api, bool raw, const struct form *f, const char *body,
                     size_t len, char *const *to, size_t nto, const struct fanout_rcpt *riders,
                     size_t nriders, struct buf *out)
{
    if (api == SESREQ_V1) {
        bool first = true;
        for (size_t i = 0; i < f->n; i++) {
            const struct form_param *fp = &f->params[i];
            if (fanout_v1_is_dest(fp, raw))
                continue;
            if (!first)
                buf_addc(out, '&');
            first = false;
            form_encode(fp->name, fp->name_len, out);
            buf_addc(out, '=');
            form_encode(fp->value, fp->value_len, out);
        }
        size_t n[3] = {0, 0, 0};
        for (size_t i = 0; i < nto + nriders; i++) {
            const char *a = i < nto ? to[i] : riders[i - nto].addr;
            int k = i < nto ? 0 : riders[i - nto].kind == FANOUT_CC ? 1 : 2;
            static const char *const names[] = {"Destination.ToAddresses.member.",
                                                "Destination.CcAddresses.member.",
                                                "Destination.BccAddresses.member."};
            if (!first)
                buf_addc(out, '&');
            first = false;
            if (raw)
                buf_printf(out, "Destinations.member.%zu=", ++n[0]);
            else
                buf_printf(out, "%s%zu=", names[k], ++n[k]);
            form_encode(a, strlen(a), out);
        }
        return 0;
    }
    const char *data = NULL;
    size_t dlen = 0;
    json_t *root = sesreq_json_borrow_raw(body, len, 0, &data, &dlen);
    if (root == NULL)
        root = json_loadb(body, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return -1;
    }
    json_t *dest = fanout_json_must(json_object()), *lists[3];
    static const char *const keys[] = {"ToAddresses", "CcAddresses", "BccAddresses"};
    for (int k = 0; k < 3; k++)
        lists[k] = fanout_json_must(json_array());
    for (size_t i = 0; i < nto + nriders; i++) {
        const char *a = i < nto ? to[i] : riders[i - nto].addr;
        int k = i < nto ? 0 : riders[i - nto].kind == FANOUT_CC ? 1 : 2;
        json_array_append_new(lists[k], fanout_json_must(json_string(a)));
    }
    for (int k = 0; k < 3; k++) {
        if (json_array_size(lists[k]) > 0)
            json_object_set(dest, keys[k], lists[k]);
        json_decref(lists[k]);
    }
    json_object_set_new(root, "Destination", dest);
    struct buf text = BUF_INIT;
    int rc = fanout_json_dump(root, &text);
    json_decref(root);
    const char *t = buf_cstr(&text);
    const char *m = rc == 0 && data ? strstr(t, SESREQ_DATA_MARK_JSON) : NULL;
    if (rc != 0 || (data && m == NULL)) {
        buf_free(&text);
        return -1;
    }
    if (m != NULL) {
        size_t ml = sizeof SESREQ_DATA_MARK_JSON - 1;
        buf_add(out, t, (size_t)(m - t));
        buf_add(out, data, dlen);
        buf_add(out, m + ml, text.len - (size_t)(m - t) - ml);
    } else {
        buf_add(out, text.data, text.len);
    }
    buf_free(&text);
    return 0;
}

/* Decide whether the copies of a raw batch keep the message as sent: when
 * the rewrite of a later copy (the one that changes the most fields) finds a
 * DKIM signature over them. Returns 0, or -1 with e set. */
static int fanout_dkim_check(struct fanout_work *w)
{
    struct buf scratch = BUF_INIT;
    bool dkim = false;
    /* a batch of one To recipient (skip mode, always_batch) has no later copy */
    const char *to = w->p->to[w->p->nto > 1 ? 1 : 0];
    int rc =
        rfc5322_rewrite_for_copy(buf_cstr(&w->msg), w->msg.len, to, w->p->nto < 2, &scratch, &dkim);
    buf_free(&scratch);
    if (rc != 0) {
        seserr_set(w->e, fanout_invalid(w->r), "The raw message cannot be split per recipient.");
        return -1;
    }
    w->p->dkim_envelope_only = dkim;
    /* A message that must travel unchanged cannot lose its Bcc field, and
     * every To recipient would see it: refuse rather than leak. */
    struct buf bcc = BUF_INIT;
    bool has_bcc = dkim && rfc5322_header_get_all(buf_cstr(&w->msg), w->msg.len, "bcc", &bcc) > 0;
    buf_free(&bcc);
    if (has_bcc) {
        seserr_set(w->e, SESERR_MESSAGE_REJECTED,
                   "The message has a Bcc header and a DKIM signature that forbids changing it; "
                   "remove the Bcc header and list those recipients as destinations.");
        return -1;
    }
    return 0;
}

/* Move the Cc and Bcc riders into the plan, Cc first. */
static void fanout_take_riders(struct fanout_work *w)
{
    struct fanout_plan *p = w->p;
    size_t n = w->cc.n + w->bcc.n;
    if (n == 0)
        return;
    p->riders = xcalloc(n, sizeof p->riders[0]);
    for (size_t i = 0; i < w->cc.n; i++)
        p->riders[p->nriders++] = (struct fanout_rcpt){w->cc.v[i], FANOUT_CC};
    for (size_t i = 0; i < w->bcc.n; i++)
        p->riders[p->nriders++] = (struct fanout_rcpt){w->bcc.v[i], FANOUT_BCC};
    w->cc.n = w->bcc.n = 0;
}

/* The comparison key of a recipient: the addr-spec (inside the last <...>
 * when there is one), trimmed and lower-cased, at *key with its length. */
static void fanout_addr_key(const char *addr, const char **key, size_t *len)
{
    const char *lt = strrchr(addr, '<'), *s = addr, *e = addr + strlen(addr);
    if (lt) {
        const char *gt = strchr(lt, '>');
        if (gt) {
            s = lt + 1;
            e = gt;
        }
    }
    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *key = s;
    *len = (size_t)(e - s);
}

/* FNV-1a of a key, case folded. */
static uint64_t fanout_key_hash(const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)k[i];
        h ^= c >= 'A' && c <= 'Z' ? c + 32u : c;
        h *= 1099511628211ULL;
    }
    return h;
}

/* A set of recipient keys (open addressing over borrowed strings). */
struct fanout_set {
    const char **slot;
    size_t cap;
};

/* Add addr's key to set; false when an equal key (ignoring case) is there. */
static bool fanout_set_add(struct fanout_set *set, const char *addr)
{
    const char *k;
    size_t n;
    fanout_addr_key(addr, &k, &n);
    size_t i = (size_t)fanout_key_hash(k, n) & (set->cap - 1);
    while (set->slot[i]) {
        const char *o;
        size_t on;
        fanout_addr_key(set->slot[i], &o, &on);
        if (on == n && strncasecmp(o, k, n) == 0)
            return false;
        i = (i + 1) & (set->cap - 1);
    }
    set->slot[i] = addr;
    return true;
}

/* Drop from l (n strings) those set already holds; frees them. Returns the
 * new count. */
static size_t fanout_dedup_list(struct fanout_set *set, char **l, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (fanout_set_add(set, l[i]))
            l[k++] = l[i];
        else
            free(l[i]);
    }
    return k;
}

/* Each recipient of a batch gets one copy: a To address given again is
 * sent once, and a Cc or Bcc recipient that is also a To recipient (or
 * given twice) does not ride with copy 0 as well. Addresses compare by
 * addr-spec, ignoring case. Returns false, changing nothing, when fewer
 * than two distinct To recipients remain: the send is then not a batch and
 * goes to SES as it came. */
static bool fanout_dedup(struct fanout_work *w, bool force)
{
    struct fanout_plan *p = w->p;
    if (p->nto < 2 && !force)
        return false;
    size_t total = p->nto + w->cc.n + w->bcc.n, distinct = 0;
    struct fanout_set set = {NULL, 16};
    while (set.cap < 2 * total)
        set.cap *= 2;
    set.slot = xcalloc(set.cap, sizeof *set.slot);
    for (size_t i = 0; i < p->nto && distinct < 2; i++)
        distinct += fanout_set_add(&set, p->to[i]);
    if (distinct < 2 && !force) {
        free(set.slot);
        return false;
    }
    memset(set.slot, 0, set.cap * sizeof *set.slot);
    p->nto = fanout_dedup_list(&set, p->to, p->nto);
    w->cc.n = fanout_dedup_list(&set, w->cc.v, w->cc.n);
    w->bcc.n = fanout_dedup_list(&set, w->bcc.v, w->bcc.n);
    free(set.slot);
    return true;
}

/* The body of fanout_plan once w is set up. Returns 0, or -1 with e set. */
static int fanout_plan_work(struct fanout_work *w, bool fanout_on, size_t max_recipients,
                            bool skip_invalid)
{
    const struct sesreq *r = w->r;
    struct fanout_plan *p = w->p;
    if (r->api == SESREQ_V1)
        fanout_v1_tags(w);
    else
        fanout_v2_tags(w);
    if (r->raw && fanout_raw_message(w) != 0)
        return -1;
    w->possible = fanout_on && !w->off;
    w->skip = w->possible && skip_invalid;
    w->to_limit = w->possible ? (max_recipients > 0 ? max_recipients : 1) : FANOUT_MAX_LIST;
    if (r->raw) {
        /* A send that cannot be a batch goes to SES as it came: headers this
         * parser refuses are left to SES, and the recipients to what was read. */
        if (fanout_raw_recipients(w) != 0) {
            if (w->possible)
                return -1;
            seserr_set(w->e, SESERR_NONE, NULL);
        }
    } else if (fanout_formatted_recipients(w) != 0) {
        return -1;
    }
    if (p->ninvalid > 0 && p->nto == 0)
        return fanout_bad_address(w, p->invalid[0].reason);
    /* addresses left out are reported with the batch: one To is enough */
    p->batch = w->possible && fanout_dedup(w, p->ninvalid > 0 || (w->always && p->nto > 0));
    fanout_take_riders(w);
    if (p->batch) {
        if (r->raw && fanout_dkim_check(w) != 0)
            return -1;
        buf_free(&w->msg); /* the template carries the message (w->b64 when edited) */
        /* the request's body may go before the template is written, unless
         * the message is read from it in place */
        bool borrowed = r->raw_data != NULL && !w->msg_changed;
        if (w->on_batch && !borrowed)
            w->on_batch(w->on_batch_arg);
        if (r->api == SESREQ_V1)
            fanout_v1_body(w, false, &p->template);
        else if (fanout_v2_body(w, false, &p->template) != 0)
            return -1;
        if (w->on_batch && borrowed)
            w->on_batch(w->on_batch_arg);
    } else if (p->tag_stripped) {
        if (r->api == SESREQ_V1)
            fanout_v1_body(w, true, &p->forward);
        else if (fanout_v2_body(w, true, &p->forward) != 0)
            return -1;
    }
    return 0;
}

/* Decide on fan-out for the send r and split it into template and recipients. */
int fanout_plan(const struct sesreq *r, bool fanout_on, size_t max_recipients, bool skip_invalid,
                struct fanout_plan *out, struct seserr *e)
{
    return fanout_plan_hooked(r, fanout_on, max_recipients, skip_invalid, NULL, NULL, out, e);
}

int fanout_plan_hooked(const struct sesreq *r, bool fanout_on, size_t max_recipients,
                       bool skip_invalid, void (*on_batch)(void *arg), void *arg,
                       struct fanout_plan *out, struct seserr *e)
{
    return fanout_plan_ex(r, fanout_on, max_recipients, skip_invalid, false, on_batch, arg, out, e);
}

int fanout_plan_ex(const struct sesreq *r, bool fanout_on, size_t max_recipients, bool skip_invalid,
                   bool always_batch, void (*on_batch)(void *arg), void *arg,
                   struct fanout_plan *out, struct seserr *e)
{
    memset(out, 0, sizeof *out);
    out->api = r->api;
    out->action = r->action;
    out->raw = r->raw;
    if (r->kind != SESREQ_SEND)
        return 0;
    if (r->api == SESREQ_V2 && !json_is_object(r->json)) {
        seserr_set(e, SESERR_INTERNAL, "The send has no parsed body.");
        return -1;
    }
    struct fanout_work w;
    memset(&w, 0, sizeof w);
    w.r = r;
    w.p = out;
    w.e = e;
    w.on_batch = on_batch;
    w.on_batch_arg = arg;
    w.always = always_batch;
    int rc = fanout_plan_work(&w, fanout_on, max_recipients, skip_invalid);
    fanout_list_free(&w.cc);
    fanout_list_free(&w.bcc);
    free(w.drop);
    free(w.renum);
    buf_free(&w.msg);
    buf_free(&w.b64);
    if (rc != 0)
        out->batch = false;
    return rc;
}

/* Free the recipients and the bodies. */
void fanout_plan_cleanup(struct fanout_plan *p)
{
    for (size_t i = 0; i < p->nto; i++)
        free(p->to[i]);
    free(p->to);
    for (size_t i = 0; i < p->nriders; i++)
        free(p->riders[i].addr);
    free(p->riders);
    for (size_t i = 0; i < p->ninvalid; i++)
        free(p->invalid[i].addr);
    free(p->invalid);
    free(p->cost);
    free(p->invalid_pos);
    buf_free(&p->template);
    buf_free(&p->forward);
    memset(p, 0, sizeof *p);
}
