/* bulk: SES's bulk calls as batches: units, bulk call bodies, per-entry
 * answers (bulk.h). */
#include "bulk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "addr.h"
#include "form.h"
#include "util.h"

#define BULK_V1_DEST     "Destinations.member."
#define BULK_V1_TAGS     "DefaultTags.member."
#define BULK_V1_RESULT   "<SendBulkTemplatedEmailResult>"
#define BULK_V1_RESPONSE "SendBulkTemplatedEmailResponse"

bool bulk_action(const char *action)
{
    return action != NULL &&
           (strcmp(action, "SendBulkTemplatedEmail") == 0 || strcmp(action, "SendBulkEmail") == 0);
}

/* The list index N at the start of s ("N." follows; N written as SES
 * numbers lists, without a leading zero, at most 9 digits), its length with
 * the dot in *k. 0 when there is none. */
static size_t bulk_index(const char *s, size_t *k)
{
    size_t n = 0, i = 0;
    if (s[0] < '1' || s[0] > '9')
        return 0;
    while (s[i] >= '0' && s[i] <= '9' && i < 9)
        n = n * 10 + (size_t)(s[i++] - '0');
    if (s[i] != '.')
        return 0;
    *k = i + 1;
    return n;
}

static int bulk_cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

/* A v1 parameter of a destination: its member index, and the name after
 * "Destinations.member.N." in *rest. */
static size_t bulk_v1_dest(const char *name, const char **rest)
{
    size_t k;
    if (strncmp(name, BULK_V1_DEST, strlen(BULK_V1_DEST)) != 0)
        return 0;
    size_t n = bulk_index(name + strlen(BULK_V1_DEST), &k);
    if (n == 0 || name[strlen(BULK_V1_DEST) + k] == '\0')
        return 0;
    *rest = name + strlen(BULK_V1_DEST) + k;
    return n;
}

/* Which list a destination's parameter rest names an address of: 0 To, 1
 * Cc, 2 Bcc ("Destination.ToAddresses.member.M", M digits, as
 * sesreq_other_recipients counts them), or -1. */
static int bulk_v1_addr_kind(const char *rest)
{
    static const char *const kinds[] = {"Destination.ToAddresses.member.",
                                        "Destination.CcAddresses.member.",
                                        "Destination.BccAddresses.member."};
    for (int i = 0; i < 3; i++) {
        size_t l = strlen(kinds[i]), d;
        if (strncmp(rest, kinds[i], l) == 0 && (d = strspn(rest + l, "0123456789")) > 0 &&
            rest[l + d] == '\0')
            return i;
    }
    return -1;
}

/* True when rest (a destination's parameter) is one of its addresses. */
static bool bulk_v1_is_addr(const char *rest)
{
    return bulk_v1_addr_kind(rest) >= 0;
}

/* One destination of a call being planned. */
struct bulk_dest {
    size_t n;     /* v1: its member index */
    size_t order; /* v1: where its first parameter stood */
    struct buf text;
    size_t cost;
    struct fanout_invalid *bad; /* the addresses SES would refuse, in order */
    size_t nbad;
};

static int bulk_dest_cmp(const void *a, const void *b)
{
    const struct bulk_dest *x = a, *y = b;
    if (x->n != y->n)
        return x->n < y->n ? -1 : 1;
    return 0;
}

/* Check one address of d. */
static void bulk_dest_addr(struct bulk_dest *d, const char *a, size_t len)
{
    d->cost++;
    const char *why = addr_check_mailbox(a, len);
    if (why != NULL) {
        d->bad = xrealloc(d->bad, (d->nbad + 1) * sizeof *d->bad);
        d->bad[d->nbad++] = (struct fanout_invalid){xstrndup(a, len), why};
    }
}

/* The v1 destinations of r (sorted by member index) and the template. */
static int bulk_v1_split(const struct sesreq *r, struct bulk_dest **out, size_t *nout,
                         struct fanout_plan *p, bool *off, struct seserr *e)
{
    const struct form *f = &r->form;
    struct bulk_dest *d = NULL;
    size_t nd = 0, cap = 0;
    /* the sesgate-fanout default tags are dropped, the others renumbered
     * 1..k in the order of their indices (which may have gaps) */
    size_t *drop = xcalloc(f->n + 1, sizeof *drop), ndrop = 0;
    size_t *kept = xcalloc(f->n + 1, sizeof *kept), nkept = 0;
    for (size_t i = 0; i < f->n; i++) {
        const struct form_param *fp = &f->params[i];
        size_t k, t;
        if (strncmp(fp->name, BULK_V1_TAGS, strlen(BULK_V1_TAGS)) != 0 ||
            (t = bulk_index(fp->name + strlen(BULK_V1_TAGS), &k)) == 0)
            continue;
        if (strcmp(fp->name + strlen(BULK_V1_TAGS) + k, "Name") != 0 ||
            !util_ieq(fp->value, fp->value_len, FANOUT_TAG_NAME)) {
            kept[nkept++] = t;
            continue;
        }
        drop[ndrop++] = t;
        p->tag_stripped = true;
        char name[64];
        snprintf(name, sizeof name, BULK_V1_TAGS "%zu.Value", t);
        size_t vlen;
        const char *v = form_get(f, name, &vlen);
        if (v != NULL && util_ieq(v, vlen, "off"))
            *off = true;
    }
    qsort(drop, ndrop, sizeof *drop, bulk_cmp_size);
    qsort(kept, nkept, sizeof *kept, bulk_cmp_size);
    size_t nuniq = 0;
    for (size_t i = 0; i < nkept; i++)
        if ((nuniq == 0 || kept[nuniq - 1] != kept[i]) &&
            bsearch(&kept[i], drop, ndrop, sizeof *drop, bulk_cmp_size) == NULL)
            kept[nuniq++] = kept[i];
    struct buf renamed = BUF_INIT;
    bool first = true;
    int rc = 0;
    for (size_t i = 0; i < f->n; i++) {
        const struct form_param *fp = &f->params[i];
        const char *rest;
        size_t n = bulk_v1_dest(fp->name, &rest), k, t = 0;
        if (n == 0 && strncmp(fp->name, "Destinations.", 13) == 0) {
            /* not one destination's: it would go into every bulk call */
            seserr_set(e, SESERR_INVALID_PARAMETER, "Invalid destination parameter %s.", fp->name);
            rc = -1;
            break;
        }
        if (n == 0) {
            const char *name = fp->name;
            size_t name_len = fp->name_len;
            if (strncmp(name, BULK_V1_TAGS, strlen(BULK_V1_TAGS)) == 0 &&
                (t = bulk_index(name + strlen(BULK_V1_TAGS), &k)) != 0) {
                const size_t *at = bsearch(&t, kept, nuniq, sizeof *kept, bulk_cmp_size);
                if (at == NULL) /* a sesgate-fanout tag */
                    continue;
                buf_reset(&renamed);
                buf_printf(&renamed, BULK_V1_TAGS "%zu.", (size_t)(at - kept) + 1);
                buf_adds(&renamed, name + strlen(BULK_V1_TAGS) + k);
                name = renamed.data;
                name_len = renamed.len;
            }
            if (!first)
                buf_addc(&p->template, '&');
            first = false;
            form_encode(name, name_len, &p->template);
            buf_addc(&p->template, '=');
            form_encode(fp->value, fp->value_len, &p->template);
            continue;
        }
        struct bulk_dest *cur = NULL;
        for (size_t j = nd; j > 0; j--)
            if (d[j - 1].n == n) {
                cur = &d[j - 1];
                break;
            }
        if (cur == NULL) {
            if (nd == cap) {
                cap = cap ? 2 * cap : 64;
                d = xrealloc(d, cap * sizeof *d);
            }
            cur = &d[nd++];
            memset(cur, 0, sizeof *cur);
            cur->n = n;
            cur->order = i;
        }
        if (cur->text.len)
            buf_addc(&cur->text, '&');
        form_encode(rest, strlen(rest), &cur->text);
        buf_addc(&cur->text, '=');
        form_encode(fp->value, fp->value_len, &cur->text);
        if (bulk_v1_is_addr(rest))
            bulk_dest_addr(cur, fp->value, fp->value_len);
    }
    free(drop);
    free(kept);
    buf_free(&renamed);
    if (nd > 1)
        qsort(d, nd, sizeof *d, bulk_dest_cmp);
    *out = d;
    *nout = nd;
    return rc;
}

/* The v2 destinations of r and the template. */
static int bulk_v2_split(const struct sesreq *r, struct bulk_dest **out, size_t *nout,
                         struct fanout_plan *p, bool *off, struct seserr *e)
{
    static const char *const kinds[] = {"ToAddresses", "CcAddresses", "BccAddresses"};
    json_t *entries = json_object_get(r->json, "BulkEmailEntries");
    if (entries != NULL && !json_is_array(entries)) {
        seserr_set(e, SESERR_BAD_REQUEST, "BulkEmailEntries must be a list.");
        return -1;
    }
    size_t nd = json_array_size(entries);
    struct bulk_dest *d = nd ? xcalloc(nd, sizeof *d) : NULL;
    *out = d;
    *nout = nd;
    for (size_t i = 0; i < nd; i++) {
        json_t *entry = json_array_get(entries, i);
        json_t *dest = json_object_get(entry, "Destination");
        if (!json_is_object(entry) || (dest != NULL && !json_is_object(dest))) {
            seserr_set(e, SESERR_BAD_REQUEST, "Each BulkEmailEntry must be an object.");
            return -1;
        }
        for (size_t k = 0; k < 3; k++) {
            json_t *list = json_object_get(dest, kinds[k]), *a;
            size_t j;
            if (list != NULL && !json_is_array(list)) {
                seserr_set(e, SESERR_BAD_REQUEST, "Destination.%s must be a list.", kinds[k]);
                return -1;
            }
            json_array_foreach(list, j, a)
            {
                if (!json_is_string(a)) {
                    seserr_set(e, SESERR_BAD_REQUEST, "Addresses must be strings.");
                    return -1;
                }
                bulk_dest_addr(&d[i], json_string_value(a), json_string_length(a));
            }
        }
        char *s = json_dumps(entry, JSON_COMPACT);
        if (s == NULL)
            abort();
        buf_adds(&d[i].text, s);
        free(s);
    }
    json_t *t = json_deep_copy(r->json);
    if (t == NULL)
        abort();
    json_object_del(t, "BulkEmailEntries");
    json_t *tags = json_object_get(t, "DefaultEmailTags");
    for (size_t i = json_array_size(tags); i > 0; i--) {
        json_t *tag = json_array_get(tags, i - 1);
        json_t *name = json_object_get(tag, "Name"), *value = json_object_get(tag, "Value");
        if (!json_is_string(name) ||
            !util_ieq(json_string_value(name), json_string_length(name), FANOUT_TAG_NAME))
            continue;
        p->tag_stripped = true;
        if (json_is_string(value) &&
            util_ieq(json_string_value(value), json_string_length(value), "off"))
            *off = true;
        json_array_remove(tags, i - 1);
    }
    char *s = json_dumps(t, JSON_COMPACT);
    json_decref(t);
    if (s == NULL)
        abort();
    buf_adds(&p->template, s);
    free(s);
    return 0;
}

int bulk_plan(const struct sesreq *r, bool fanout_on, size_t max_units, bool skip_invalid,
              struct fanout_plan *out, struct seserr *e)
{
    memset(out, 0, sizeof *out);
    out->api = r->api;
    out->action = r->action;
    out->bulk = true;
    struct bulk_dest *d = NULL;
    size_t nd = 0;
    bool off = false;
    int rc = r->api == SESREQ_V2 ? bulk_v2_split(r, &d, &nd, out, &off, e)
                                 : bulk_v1_split(r, &d, &nd, out, &off, e);
    out->ndest = nd;
    out->batch = rc == 0 && fanout_on && !off && nd > 0;
    if (rc == 0 && out->batch && nd > max_units) {
        seserr_set(e, SESERR_INVALID_PARAMETER,
                   "The call names %zu destinations; this gateway takes at most %zu.", nd,
                   max_units);
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < nd; i++) {
        if (d[i].cost == 0 && out->batch) {
            seserr_set(e, SESERR_INVALID_PARAMETER, "Destination %zu has no recipient.", i + 1);
            rc = -1;
        } else if (d[i].cost > BULK_MAX_RECIPIENTS) {
            seserr_set(e, SESERR_INVALID_PARAMETER, "Recipient count exceeds %d.",
                       BULK_MAX_RECIPIENTS);
            rc = -1;
        } else if (d[i].nbad > 0 && !(skip_invalid && out->batch)) {
            seserr_set(e, SESERR_INVALID_PARAMETER, "%s", d[i].bad[0].reason);
            rc = -1;
        }
    }
    if (rc == 0) {
        out->to = xcalloc(nd + 1, sizeof *out->to);
        out->cost = xcalloc(nd + 1, sizeof *out->cost);
        for (size_t i = 0; i < nd; i++) {
            if (d[i].nbad > 0) {
                size_t k = out->ninvalid;
                out->ninvalid += d[i].nbad;
                out->invalid = xrealloc(out->invalid, out->ninvalid * sizeof *out->invalid);
                out->invalid_pos =
                    xrealloc(out->invalid_pos, out->ninvalid * sizeof *out->invalid_pos);
                for (size_t j = 0; j < d[i].nbad; j++) {
                    out->invalid[k + j] = d[i].bad[j];
                    out->invalid_pos[k + j] = i;
                }
                d[i].nbad = 0;
                continue;
            }
            out->cost[out->nto] = d[i].cost;
            out->to[out->nto++] = buf_detach(&d[i].text, NULL);
        }
        if (out->batch && out->nto == 0) {
            seserr_set(e, SESERR_INVALID_PARAMETER, "%s", out->invalid[0].reason);
            rc = -1;
        }
    }
    if (rc == 0 && !out->batch && out->tag_stripped) {
        const char *pre = out->template.data ? out->template.data : "";
        size_t plen = out->template.len;
        if (r->api == SESREQ_V2 && plen > 0)
            plen--;
        size_t *lens = xcalloc(out->nto + 1, sizeof *lens);
        for (size_t i = 0; i < out->nto; i++)
            lens[i] = strlen(out->to[i]);
        bulk_body(r->api, pre, plen, (const char *const *)out->to, lens, out->nto, &out->forward);
        free(lens);
    }
    for (size_t i = 0; i < nd; i++) {
        buf_free(&d[i].text);
        for (size_t j = 0; j < d[i].nbad; j++)
            free(d[i].bad[j].addr);
        free(d[i].bad);
    }
    free(d);
    return rc;
}

int64_t bulk_unit_cost(int api, const char *unit, size_t len)
{
    int64_t n = 0;
    if (api == 2) {
        static const char *const kinds[] = {"ToAddresses", "CcAddresses", "BccAddresses"};
        json_t *entry = json_loadb(unit, len, 0, NULL);
        if (!json_is_object(entry)) {
            json_decref(entry);
            return -1;
        }
        json_t *dest = json_object_get(entry, "Destination");
        for (size_t k = 0; k < 3; k++)
            n += (int64_t)json_array_size(json_object_get(dest, kinds[k]));
        json_decref(entry);
        return n;
    }
    struct form f = {0};
    if (form_parse(unit, len, 4 * BULK_MAX_RECIPIENTS + 1000, &f, NULL, 0) != FORM_OK)
        return -1;
    for (size_t i = 0; i < f.n; i++)
        if (bulk_v1_is_addr(f.params[i].name))
            n++;
    form_free(&f);
    return n;
}

json_t *bulk_unit_view(int api, const char *unit, size_t len)
{
    static const char *const keys[] = {"to", "cc", "bcc"};
    json_t *o = json_object(), *lists[3];
    for (size_t k = 0; k < 3; k++) {
        lists[k] = json_array();
        json_object_set_new(o, keys[k], lists[k]);
    }
    if (api == 2) {
        static const char *const kinds[] = {"ToAddresses", "CcAddresses", "BccAddresses"};
        json_t *entry = json_loadb(unit, len, 0, NULL);
        json_t *dest = json_object_get(entry, "Destination");
        if (!json_is_object(entry)) {
            json_decref(entry);
            json_decref(o);
            return NULL;
        }
        for (size_t k = 0; k < 3; k++) {
            json_t *a, *list = json_object_get(dest, kinds[k]);
            size_t i;
            json_array_foreach(list, i, a)
            {
                if (json_is_string(a))
                    json_array_append(lists[k], a);
            }
        }
        json_decref(entry);
        return o;
    }
    struct form f = {0};
    if (form_parse(unit, len, 4 * BULK_MAX_RECIPIENTS + 1000, &f, NULL, 0) != FORM_OK) {
        json_decref(o);
        return NULL;
    }
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < f.n; i++)
            if (bulk_v1_addr_kind(f.params[i].name) == k)
                json_array_append_new(lists[k],
                                      json_stringn(f.params[i].value, f.params[i].value_len));
    form_free(&f);
    return o;
}

int64_t bulk_unit_filter(int api, const char *unit, size_t len, bulk_keep_fn keep, void *arg,
                         struct buf *out)
{
    int64_t kept = 0;
    if (api == 2) {
        static const char *const kinds[] = {"ToAddresses", "CcAddresses", "BccAddresses"};
        json_t *entry = json_loadb(unit, len, 0, NULL);
        if (!json_is_object(entry)) {
            json_decref(entry);
            return -1;
        }
        json_t *dest = json_object_get(entry, "Destination");
        for (size_t k = 0; json_is_object(dest) && k < 3; k++) {
            json_t *list = json_object_get(dest, kinds[k]);
            if (!json_is_array(list))
                continue;
            for (size_t i = json_array_size(list); i > 0; i--) {
                json_t *a = json_array_get(list, i - 1);
                if (json_is_string(a) && !keep(arg, json_string_value(a), json_string_length(a)))
                    json_array_remove(list, i - 1);
                else
                    kept++;
            }
            if (json_array_size(list) == 0)
                json_object_del(dest, kinds[k]);
        }
        char *s = json_dumps(entry, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(entry);
        if (s == NULL)
            abort();
        buf_adds(out, s);
        free(s);
        return kept;
    }
    struct form f = {0};
    if (form_parse(unit, len, 4 * BULK_MAX_RECIPIENTS + 1000, &f, NULL, 0) != FORM_OK)
        return -1;
    size_t counts[3] = {0, 0, 0};
    bool first = true;
    struct buf name = BUF_INIT;
    for (size_t i = 0; i < f.n; i++) {
        const struct form_param *fp = &f.params[i];
        int k = bulk_v1_addr_kind(fp->name);
        buf_reset(&name);
        if (k >= 0) {
            if (!keep(arg, fp->value, fp->value_len))
                continue;
            kept++;
            static const char *const kinds[] = {"Destination.ToAddresses.member.",
                                                "Destination.CcAddresses.member.",
                                                "Destination.BccAddresses.member."};
            buf_printf(&name, "%s%zu", kinds[k], ++counts[k]);
        } else {
            buf_add(&name, fp->name, fp->name_len);
        }
        if (!first)
            buf_addc(out, '&');
        first = false;
        form_encode(name.data, name.len, out);
        buf_addc(out, '=');
        form_encode(fp->value, fp->value_len, out);
    }
    buf_free(&name);
    form_free(&f);
    return kept;
}

void bulk_body(int api, const char *pre, size_t pre_len, const char *const *units,
               const size_t *lens, size_t n, struct buf *out)
{
    buf_add(out, pre, pre_len);
    if (api == 2) {
        if (pre_len > 1)
            buf_addc(out, ',');
        buf_adds(out, "\"BulkEmailEntries\":[");
        for (size_t i = 0; i < n; i++) {
            if (i)
                buf_addc(out, ',');
            buf_add(out, units[i], lens[i]);
        }
        buf_adds(out, "]}");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        /* each parameter of the unit, its name prefixed with its number */
        const char *s = units[i], *end = units[i] + lens[i];
        while (s < end) {
            const char *amp = memchr(s, '&', (size_t)(end - s));
            const char *e = amp ? amp : end;
            if (out->len)
                buf_addc(out, '&');
            buf_printf(out, BULK_V1_DEST "%zu.", i + 1);
            buf_add(out, s, (size_t)(e - s));
            s = amp ? amp + 1 : end;
        }
    }
}

/* s[0..n) into out (outlen bytes with the NUL). What does not fit is cut
 * before a character that would be split, so that UTF-8 stays UTF-8 and
 * can be written again (v2 JSON refuses a split character). */
static void bulk_copy_text(char *out, size_t outlen, const char *s, size_t n)
{
    if (n >= outlen) {
        n = outlen - 1;
        for (int k = 0; k < 3 && n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80; k++)
            n--;
    }
    memcpy(out, s, n);
    out[n] = '\0';
}

/* The character reference at s ("&#N;" or "&#xH;", before end) as UTF-8
 * into out: its length in s, or 0 when s is not one (or names no
 * character). */
static size_t bulk_xml_charref(const char *s, const char *end, struct buf *out)
{
    size_t i = 2, digits = 0;
    unsigned long c = 0;
    bool hex = end - s > 2 && s[2] == 'x';
    if (end - s < 4 || s[1] != '#')
        return 0;
    i += hex;
    for (; s + i < end && digits < 7; i++, digits++) {
        char ch = s[i];
        unsigned v = ch >= '0' && ch <= '9'          ? (unsigned)(ch - '0')
                     : hex && ch >= 'a' && ch <= 'f' ? (unsigned)(ch - 'a' + 10)
                     : hex && ch >= 'A' && ch <= 'F' ? (unsigned)(ch - 'A' + 10)
                                                     : 16;
        if (v >= (hex ? 16u : 10u))
            break;
        c = c * (hex ? 16 : 10) + v;
    }
    if (digits == 0 || s + i >= end || s[i] != ';' || c == 0 || c > 0x10FFFF ||
        (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    if (c < 0x80) {
        buf_addc(out, (char)c);
    } else if (c < 0x800) {
        buf_addc(out, (char)(0xC0 | (c >> 6)));
        buf_addc(out, (char)(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
        buf_addc(out, (char)(0xE0 | (c >> 12)));
        buf_addc(out, (char)(0x80 | ((c >> 6) & 0x3F)));
        buf_addc(out, (char)(0x80 | (c & 0x3F)));
    } else {
        buf_addc(out, (char)(0xF0 | (c >> 18)));
        buf_addc(out, (char)(0x80 | ((c >> 12) & 0x3F)));
        buf_addc(out, (char)(0x80 | ((c >> 6) & 0x3F)));
        buf_addc(out, (char)(0x80 | (c & 0x3F)));
    }
    return i + 1;
}

/* The text between open and close in [s, end), XML entities and character
 * references decoded, into out; false when absent. */
static bool bulk_xml_text(const char *s, const char *end, const char *open, const char *close,
                          char *out, size_t outlen)
{
    out[0] = '\0';
    const char *p = memmem(s, (size_t)(end - s), open, strlen(open));
    if (p == NULL)
        return false;
    p += strlen(open);
    const char *q = memmem(p, (size_t)(end - p), close, strlen(close));
    if (q == NULL)
        return false;
    static const struct {
        const char *ent;
        char c;
    } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    struct buf t = BUF_INIT;
    while (p < q && t.len < outlen) {
        size_t used = 0;
        if (*p == '&') {
            for (size_t k = 0; used == 0 && k < sizeof ents / sizeof *ents; k++) {
                size_t l = strlen(ents[k].ent);
                if ((size_t)(q - p) >= l && memcmp(p, ents[k].ent, l) == 0) {
                    buf_addc(&t, ents[k].c);
                    used = l;
                }
            }
            if (used == 0)
                used = bulk_xml_charref(p, q, &t);
        }
        if (used == 0) {
            buf_addc(&t, *p);
            used = 1;
        }
        p += used;
    }
    bulk_copy_text(out, outlen, t.data ? t.data : "", t.len);
    buf_free(&t);
    return true;
}

/* A string member of a JSON object into out ("" when absent). */
static void bulk_json_text(json_t *o, const char *key, char *out, size_t outlen)
{
    json_t *v = json_object_get(o, key);
    if (json_is_string(v))
        bulk_copy_text(out, outlen, json_string_value(v), json_string_length(v));
    else
        out[0] = '\0';
}

int bulk_answer_parse(int api, const char *body, size_t n, struct bulk_result *out, size_t max)
{
    if (body == NULL)
        return -1;
    if (api == 2) {
        json_t *root = json_loadb(body, n, 0, NULL);
        json_t *list = json_object_get(root, "BulkEmailEntryResults"), *e;
        if (!json_is_array(list)) {
            json_decref(root);
            return -1;
        }
        size_t i, k = 0;
        json_array_foreach(list, i, e)
        {
            if (k == max)
                break;
            bulk_json_text(e, "Status", out[k].status, sizeof out[k].status);
            bulk_json_text(e, "MessageId", out[k].message_id, sizeof out[k].message_id);
            bulk_json_text(e, "Error", out[k].error, sizeof out[k].error);
            k++;
        }
        json_decref(root);
        return (int)k;
    }
    const char *end = body + n;
    const char *p = memmem(body, n, BULK_V1_RESULT, strlen(BULK_V1_RESULT));
    if (p == NULL)
        return -1;
    p += strlen(BULK_V1_RESULT);
    const char *rend = memmem(p, (size_t)(end - p), "</SendBulkTemplatedEmailResult>",
                              strlen("</SendBulkTemplatedEmailResult>"));
    if (rend == NULL)
        return -1;
    size_t k = 0;
    while (k < max) {
        const char *m = memmem(p, (size_t)(rend - p), "<member>", 8);
        if (m == NULL)
            break;
        const char *me = memmem(m, (size_t)(rend - m), "</member>", 9);
        if (me == NULL)
            return -1;
        bulk_xml_text(m, me, "<Status>", "</Status>", out[k].status, sizeof out[k].status);
        bulk_xml_text(m, me, "<MessageId>", "</MessageId>", out[k].message_id,
                      sizeof out[k].message_id);
        bulk_xml_text(m, me, "<Error>", "</Error>", out[k].error, sizeof out[k].error);
        k++;
        p = me + 9;
    }
    return (int)k;
}

bool bulk_status_ok(const char *status)
{
    return strcmp(status, "Success") == 0 || strcmp(status, "SUCCESS") == 0;
}

/* SES's statuses on both APIs (v1 name, v2 name) and what they mean. */
static const struct {
    const char *v1, *v2;
    enum backoff_class cls;
} bulk_statuses[] = {
    {"Success", "SUCCESS", BACKOFF_OK},
    {"AccountThrottled", "ACCOUNT_THROTTLED", BACKOFF_THROTTLED},
    {"AccountDailyQuotaExceeded", "ACCOUNT_DAILY_QUOTA_EXCEEDED", BACKOFF_QUOTA},
    {"TransientFailure", "TRANSIENT_FAILURE", BACKOFF_RETRY},
    {"Failed", "FAILED", BACKOFF_RETRY},
    {"AccountSendingPaused", "ACCOUNT_SENDING_PAUSED", BACKOFF_RETRY},
    {"ConfigurationSetSendingPaused", "CONFIGURATION_SET_SENDING_PAUSED", BACKOFF_RETRY},
    {"MessageRejected", "MESSAGE_REJECTED", BACKOFF_PERMANENT},
    {"MailFromDomainNotVerified", "MAIL_FROM_DOMAIN_NOT_VERIFIED", BACKOFF_PERMANENT},
    {"ConfigurationSetDoesNotExist", "CONFIGURATION_SET_NOT_FOUND", BACKOFF_PERMANENT},
    {"ConfigurationSetDoesNotExist", "CONFIGURATION_SET_DOES_NOT_EXIST", BACKOFF_PERMANENT},
    {"TemplateDoesNotExist", "TEMPLATE_NOT_FOUND", BACKOFF_PERMANENT},
    {"TemplateDoesNotExist", "TEMPLATE_DOES_NOT_EXIST", BACKOFF_PERMANENT},
    {"AccountSuspended", "ACCOUNT_SUSPENDED", BACKOFF_PERMANENT},
    {"InvalidSendingPoolName", "INVALID_SENDING_POOL_NAME", BACKOFF_PERMANENT},
    {"InvalidParameterValue", "INVALID_PARAMETER", BACKOFF_PERMANENT},
    {"InvalidParameterValue", "INVALID_PARAMETER_VALUE", BACKOFF_PERMANENT},
};

enum backoff_class bulk_status_class(const char *status)
{
    for (size_t i = 0; i < sizeof bulk_statuses / sizeof *bulk_statuses; i++)
        if (strcmp(status, bulk_statuses[i].v1) == 0 || strcmp(status, bulk_statuses[i].v2) == 0)
            return bulk_statuses[i].cls;
    return BACKOFF_RETRY;
}

const char *bulk_status_invalid(int api)
{
    return api == 2 ? "INVALID_PARAMETER" : "InvalidParameterValue";
}

void bulk_answer_result(int api, const struct bulk_result *entries, size_t n, struct buf *out)
{
    if (api == 2) {
        json_t *list = json_array();
        for (size_t i = 0; i < n; i++) {
            json_t *o = json_object();
            json_object_set_new(o, "Status", json_string(entries[i].status));
            if (entries[i].error[0])
                json_object_set_new(o, "Error", json_string(entries[i].error));
            if (entries[i].message_id[0])
                json_object_set_new(o, "MessageId", json_string(entries[i].message_id));
            json_array_append_new(list, o);
        }
        json_t *root = json_object();
        json_object_set_new(root, "BulkEmailEntryResults", list);
        char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(root);
        if (s == NULL)
            abort();
        buf_adds(out, s);
        free(s);
        return;
    }
    buf_adds(out, "<Status>");
    for (size_t i = 0; i < n; i++) {
        buf_adds(out, "<member><Status>");
        seserr_xml_escape(out, entries[i].status);
        buf_adds(out, "</Status>");
        if (entries[i].error[0]) {
            buf_adds(out, "<Error>");
            seserr_xml_escape(out, entries[i].error);
            buf_adds(out, "</Error>");
        }
        if (entries[i].message_id[0]) {
            buf_adds(out, "<MessageId>");
            seserr_xml_escape(out, entries[i].message_id);
            buf_adds(out, "</MessageId>");
        }
        buf_adds(out, "</member>");
    }
    buf_adds(out, "</Status>");
}

void bulk_answer_render(int api, const struct bulk_result *entries, size_t n,
                        const char *request_id, struct buf *out)
{
    if (api == 2) {
        bulk_answer_result(api, entries, n, out);
        return;
    }
    buf_adds(out, "<" BULK_V1_RESPONSE " xmlns=\"http://ses.amazonaws.com/doc/2010-12-01/\">"
                  "<SendBulkTemplatedEmailResult>");
    bulk_answer_result(api, entries, n, out);
    buf_adds(out, "</SendBulkTemplatedEmailResult><ResponseMetadata><RequestId>");
    seserr_xml_escape(out, request_id);
    buf_adds(out, "</RequestId></ResponseMetadata></" BULK_V1_RESPONSE ">");
}
