/* Unit tests for bulk: SES's bulk calls planned as units (v1
 * SendBulkTemplatedEmail, v2 SendBulkEmail), the bulk call of every unit
 * parsed back and compared with the original request (destinations,
 * replacement data and tags, defaults, the opt-out tag), the limits and
 * address checks, units' recipients, SES's per-destination answers read and
 * written on both APIs, and what each status means to a worker. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bulk.h"
#include "check.h"
#include "addr.h"
#include "util.h"

#define V2_PATH "/v2/email/outbound-bulk-emails"

/* A v1 call's defaults and one destination parameter. */
#define V1 "Action=SendBulkTemplatedEmail&Version=2010-12-01&Source=s%40x.com&Template=tpl"
#define V1D(n, kind, k, a)                                                                         \
    "&Destinations.member." #n ".Destination." kind "Addresses.member." #k "=" a
#define V1TAG(n, name, value)                                                                      \
    "&DefaultTags.member." #n ".Name=" name "&DefaultTags.member." #n ".Value=" value

/* A v2 call's defaults, before its entries. */
#define V2                                                                                         \
    "{\"FromEmailAddress\":\"s@x.com\",\"DefaultContent\":{\"Template\":{\"TemplateName\":"        \
    "\"t\",\"TemplateData\":\"{\\\"n\\\":0}\"}}"

/* Parse a v1 or v2 bulk call into r. */
static int parse(int api, const char *body, size_t len, struct sesreq *r, struct seserr *e)
{
    memset(r, 0, sizeof *r);
    if (api == 1)
        return sesreq_parse_v1(body, len, r, e);
    return sesreq_parse_v2("POST", V2_PATH, strlen(V2_PATH), body, len, r, e);
}

/* The bulk call of every unit of p (template and units as bulk_plan wrote
 * them, the template taken as copybody keeps it). */
static void full_body(const struct fanout_plan *p, struct buf *out)
{
    size_t plen = p->template.len - (p->api == SESREQ_V2 && p->template.len > 0 ? 1 : 0);
    size_t *lens = xcalloc(p->nto + 1, sizeof *lens);
    for (size_t i = 0; i < p->nto; i++)
        lens[i] = strlen(p->to[i]);
    bulk_body(p->api, p->template.data ? p->template.data : "", plen, (const char *const *)p->to,
              lens, p->nto, out);
    free(lens);
}

/* The list index at the start of s, as SES lists are numbered (1-9 then
 * digits), followed by '.': its value, its length in *k; 0 when none. */
static size_t list_index(const char *s, size_t *k)
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

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted distinct indices N of f's parameters named prefix N.rest;
 * returns how many (at most max). */
static size_t indices(const struct form *f, const char *prefix, size_t *out, size_t max)
{
    size_t n = 0, plen = strlen(prefix), k;
    for (size_t i = 0; i < f->n; i++) {
        if (strncmp(f->params[i].name, prefix, plen) != 0)
            continue;
        size_t idx = list_index(f->params[i].name + plen, &k);
        bool seen = false;
        for (size_t j = 0; j < n; j++)
            seen |= out[j] == idx;
        if (idx != 0 && !seen && n < max)
            out[n++] = idx;
    }
    qsort(out, n, sizeof *out, cmp_size);
    return n;
}

/* "name=value\n" lines, sorted, into out. */
static void sorted_lines(char **lines, size_t n, struct buf *out)
{
    qsort(lines, n, sizeof *lines, cmp_str);
    for (size_t i = 0; i < n; i++) {
        buf_adds(out, lines[i]);
        buf_addc(out, '\n');
        free(lines[i]);
    }
    free(lines);
}

/* One "name=value" line (the value may hold any byte but NUL is shown as \0). */
static char *line(const char *name, const char *v, size_t vlen)
{
    struct buf b = BUF_INIT;
    buf_adds(&b, name);
    buf_addc(&b, '=');
    for (size_t i = 0; i < vlen; i++) {
        if (v[i] == '\0')
            buf_adds(&b, "\\0");
        else
            buf_addc(&b, v[i]);
    }
    return buf_detach(&b, NULL);
}

/* The parameters of v1 destination idx as sorted "rest=value" lines. */
static void v1_dest(const struct form *f, size_t idx, struct buf *out)
{
    char pre[64];
    snprintf(pre, sizeof pre, "Destinations.member.%zu.", idx);
    char **lines = xcalloc(f->n + 1, sizeof *lines);
    size_t n = 0;
    for (size_t i = 0; i < f->n; i++)
        if (strncmp(f->params[i].name, pre, strlen(pre)) == 0)
            lines[n++] =
                line(f->params[i].name + strlen(pre), f->params[i].value, f->params[i].value_len);
    sorted_lines(lines, n, out);
}

/* The v1 defaults (every parameter but the destinations) as sorted lines.
 * With normalize, the sesgate-fanout default tags are left out and the
 * other default tags renumbered 1..k in index order, as the contract says
 * the template must carry them. */
static void v1_defaults(const struct form *f, bool normalize, struct buf *out)
{
    static const char tags[] = "DefaultTags.member.";
    size_t *kept = xcalloc(f->n + 1, sizeof *kept), nkept = 0, k;
    if (normalize) {
        size_t *all = xcalloc(f->n + 1, sizeof *all), nall = indices(f, tags, all, f->n);
        for (size_t i = 0; i < nall; i++) {
            char name[64];
            snprintf(name, sizeof name, "%s%zu.Name", tags, all[i]);
            const char *v = form_get(f, name, NULL);
            if (v == NULL || strcasecmp(v, FANOUT_TAG_NAME) != 0)
                kept[nkept++] = all[i];
        }
        free(all);
    }
    char **lines = xcalloc(f->n + 1, sizeof *lines);
    size_t n = 0;
    for (size_t i = 0; i < f->n; i++) {
        const struct form_param *fp = &f->params[i];
        if (strncmp(fp->name, "Destinations.", 13) == 0)
            continue;
        size_t idx = strncmp(fp->name, tags, strlen(tags)) == 0
                         ? list_index(fp->name + strlen(tags), &k)
                         : 0;
        if (!normalize || idx == 0) {
            lines[n++] = line(fp->name, fp->value, fp->value_len);
            continue;
        }
        size_t *at = bsearch(&idx, kept, nkept, sizeof *kept, cmp_size);
        if (at == NULL)
            continue;
        char name[512];
        snprintf(name, sizeof name, "%s%zu.%s", tags, (size_t)(at - kept) + 1,
                 fp->name + strlen(tags) + k);
        lines[n++] = line(name, fp->value, fp->value_len);
    }
    free(kept);
    sorted_lines(lines, n, out);
}

/* True when the v1 form f carries a default tag named sesgate-fanout. */
static bool v1_has_fanout_tag(const struct form *f)
{
    for (size_t i = 0; i < f->n; i++) {
        const char *nm = f->params[i].name;
        size_t l = strlen(nm);
        if (strncmp(nm, "DefaultTags.", 12) == 0 && l > 5 && strcmp(nm + l - 5, ".Name") == 0 &&
            util_ieq(f->params[i].value, f->params[i].value_len, FANOUT_TAG_NAME))
            return true;
    }
    return false;
}

/* v2 DefaultEmailTags without the sesgate-fanout tags (a new reference; NULL when absent). */
static json_t *v2_tags(json_t *j, bool normalize)
{
    json_t *tags = json_object_get(j, "DefaultEmailTags"), *t, *out;
    size_t i;
    if (tags == NULL)
        return NULL;
    out = json_array();
    json_array_foreach(tags, i, t)
    {
        json_t *name = json_object_get(t, "Name");
        if (normalize && json_is_string(name) &&
            strcasecmp(json_string_value(name), FANOUT_TAG_NAME) == 0)
            continue;
        json_array_append(out, t);
    }
    return out;
}

/* Check that the call b (a bulk call or forwarded body) carries, in order,
 * the destinations of the original o except those at the positions skip
 * lists (skip[0..nskip), sorted), each with all of its parameters, and o's
 * defaults without the sesgate-fanout tag (default tags renumbered). */
static void check_same_call(const struct sesreq *o, const struct sesreq *b, const size_t *skip,
                            size_t nskip, const char *what)
{
    CHECK(b->action != NULL && o->action != NULL && strcmp(b->action, o->action) == 0, "%s: action",
          what);
    if (o->api == SESREQ_V1) {
        size_t *oi = xcalloc(o->form.n + 1, sizeof *oi), *bi = xcalloc(b->form.n + 1, sizeof *bi);
        size_t on = indices(&o->form, "Destinations.member.", oi, o->form.n);
        size_t bn = indices(&b->form, "Destinations.member.", bi, b->form.n);
        CHECK(bn + nskip == on, "%s: %zu destinations, want %zu - %zu", what, bn, on, nskip);
        for (size_t i = 0, k = 0, s = 0; i < on; i++) {
            if (s < nskip && skip[s] == i) {
                s++;
                continue;
            }
            CHECK(k < bn && bi[k] == k + 1, "%s: destination %zu numbered %zu", what, k + 1,
                  k < bn ? bi[k] : 0);
            struct buf want = BUF_INIT, got = BUF_INIT;
            v1_dest(&o->form, oi[i], &want);
            v1_dest(&b->form, k + 1, &got);
            CHECK_STR(buf_cstr(&got), buf_cstr(&want), what);
            buf_free(&want);
            buf_free(&got);
            k++;
        }
        struct buf want = BUF_INIT, got = BUF_INIT;
        v1_defaults(&o->form, true, &want);
        v1_defaults(&b->form, false, &got);
        CHECK_STR(buf_cstr(&got), buf_cstr(&want), what);
        CHECK(!v1_has_fanout_tag(&b->form), "%s: no sesgate-fanout tag", what);
        free(oi);
        free(bi);
        buf_free(&want);
        buf_free(&got);
        return;
    }
    json_t *oe = json_object_get(o->json, "BulkEmailEntries"),
           *be = json_object_get(b->json, "BulkEmailEntries");
    CHECK(json_array_size(be) + nskip == json_array_size(oe), "%s: %zu entries, want %zu - %zu",
          what, json_array_size(be), json_array_size(oe), nskip);
    for (size_t i = 0, k = 0, s = 0; i < json_array_size(oe); i++) {
        if (s < nskip && skip[s] == i) {
            s++;
            continue;
        }
        CHECK(json_equal(json_array_get(oe, i), json_array_get(be, k)), "%s: entry %zu", what, i);
        k++;
    }
    const char *key;
    json_t *v;
    json_object_foreach(o->json, key, v)
    {
        if (strcmp(key, "BulkEmailEntries") == 0 || strcmp(key, "DefaultEmailTags") == 0)
            continue;
        CHECK(json_equal(v, json_object_get(b->json, key)), "%s: %s", what, key);
    }
    json_object_foreach(b->json, key, v)
    {
        CHECK(json_object_get(o->json, key) != NULL, "%s: %s added", what, key);
    }
    json_t *ot = v2_tags(o->json, true), *bt = v2_tags(b->json, false);
    CHECK((ot == NULL && bt == NULL) || json_equal(ot, bt), "%s: DefaultEmailTags", what);
    json_decref(ot);
    json_decref(bt);
}

/* One bulk_plan case. */
struct plan_case {
    const char *name;
    int api;
    const char *body;
    bool on;
    size_t max;
    bool skip;
    enum seserr_code code;   /* SESERR_NONE: the plan succeeds */
    const char *msg;         /* part of the error message */
    bool batch, stripped;    /* forward is set when stripped and not a batch */
    size_t ndest;            /* destinations in the call */
    const char *first;       /* each unit's first recipient (To, else Cc, else Bcc): "a;b;" */
    const char *costs;       /* each unit's recipients: "1,2," */
    const char *invalid;     /* skip mode: "addr#position;" */
    const char *in_template; /* text the template must hold (v1 names) */
};

static const struct plan_case plan_cases[] = {
    {"v1 boto3 capture", 1,
     "Action=SendBulkTemplatedEmail&Version=2010-12-01&Source=s%40example.com&Template=tpl&"
     "DefaultTemplateData=%7B%7D&Destinations.member.1.Destination.ToAddresses.member.1=a%"
     "40example.com&Destinations.member.1.ReplacementTemplateData=%7B%22n%22%3A1%7D&"
     "Destinations.member.1.ReplacementTags.member.1.Name=k&Destinations.member.1."
     "ReplacementTags.member.1.Value=v&Destinations.member.2.Destination.ToAddresses.member.1=b%"
     "40example.com&Destinations.member.2.Destination.CcAddresses.member.1=c%40example.com&"
     "DefaultTags.member.1.Name=dk&DefaultTags.member.1.Value=dv",
     true, 100, false, SESERR_NONE, NULL, true, false, 2, "a@example.com;b@example.com;", "1,2,",
     "", "DefaultTags.member.1.Name=dk"},
    {"v1 members out of order", 1,
     V1 "&DefaultTemplateData=%7B%7D" V1D(10, "To", 1, "j%40x.com") V1D(
         2, "To", 1, "b%40x.com") "&Destinations.member.10.ReplacementTemplateData=%7B%22n%22%3A10%"
                                  "7D" V1D(1, "Bcc", 1, "a%40x.com") V1D(2, "Cc", 1, "c%40x.com")
                                      V1D(10, "Cc", 1, "k%40x.com") V1D(10, "Bcc", 1, "l%40x.com")
                                          V1D(3, "To", 2, "d%40x.com") V1D(3, "To", 1, "e%40x.com"),
     true, 100, false, SESERR_NONE, NULL, true, false, 4, "a@x.com;b@x.com;d@x.com;j@x.com;",
     "1,2,2,3,", "", NULL},
    {"v1 mailbox with a display name", 1,
     V1 V1D(1, "To", 1, "%22A+B%22+%3Ca%40x.com%3E") V1D(2, "To", 1, "B+%3Cb%40x.com%3E"), true,
     100, false, SESERR_NONE, NULL, true, false, 2, "\"A B\" <a@x.com>;B <b@x.com>;", "1,1,", "",
     NULL},
    {"v1 opt-out tag on: stripped, others renumbered", 1,
     V1 V1TAG(1, "k1", "v1") V1TAG(2, "sesgate-fanout", "on") V1TAG(3, "k3", "v3")
         V1D(1, "To", 1, "a%40x.com") V1D(2, "To", 1, "b%40x.com"),
     true, 100, false, SESERR_NONE, NULL, true, true, 2, "a@x.com;b@x.com;", "1,1,", "",
     "DefaultTags.member.2.Name=k3&DefaultTags.member.2.Value=v3"},
    {"v1 opt-out tag first, any case", 1,
     V1 V1TAG(1, "SESGATE-Fanout", "yes") V1TAG(2, "k2", "v2") V1D(1, "To", 1, "a%40x.com"), true,
     100, false, SESERR_NONE, NULL, true, true, 1, "a@x.com;", "1,", "",
     "DefaultTags.member.1.Name=k2&DefaultTags.member.1.Value=v2"},
    {"v1 opt-out tag off: forwarded without it", 1,
     V1 V1TAG(1, "k1", "v1") V1TAG(2, "sesgate-fanout", "OFF") V1D(2, "To", 1, "b%40x.com")
         V1D(1, "To", 1, "a%40x.com"),
     true, 100, false, SESERR_NONE, NULL, false, true, 2, "a@x.com;b@x.com;", "1,1,", "", NULL},
    {"v1 opt-out tag at a sparse index", 1,
     V1 V1TAG(9, "sesgate-fanout", "off") V1D(1, "To", 1, "a%40x.com") V1D(2, "To", 1, "b%40x.com"),
     true, 100, false, SESERR_NONE, NULL, false, true, 2, "a@x.com;b@x.com;", "1,1,", "", NULL},
    {"v1 sparse tags renumbered", 1,
     V1 V1TAG(40, "k40", "v") V1TAG(7, "k7", "v") V1TAG(30, "sesgate-fanout", "on")
         V1D(1, "To", 1, "a%40x.com"),
     true, 100, false, SESERR_NONE, NULL, true, true, 1, "a@x.com;", "1,", "",
     "DefaultTags.member.2.Name=k40"},
    {"v1 fan-out off", 1, V1 V1D(1, "To", 1, "a%40x.com") V1D(2, "Cc", 1, "b%40x.com"), false, 100,
     false, SESERR_NONE, NULL, false, false, 2, "a@x.com;b@x.com;", "1,1,", "", NULL},
    {"v1 fan-out off, tag on stripped", 1,
     V1 V1TAG(1, "sesgate-fanout", "on") V1D(1, "To", 1, "a%40x.com"), false, 100, false,
     SESERR_NONE, NULL, false, true, 1, "a@x.com;", "1,", "", NULL},
    {"v1 no destination", 1, V1, true, 100, false, SESERR_NONE, NULL, false, false, 0, "", "", "",
     NULL},
    {"v1 more destinations than max_units", 1,
     V1 V1D(1, "To", 1, "a%40x.com") V1D(2, "To", 1, "b%40x.com") V1D(3, "To", 1, "c%40x.com"),
     true, 2, false, SESERR_INVALID_PARAMETER, "3 destinations", false, false, 3, "", "", "", NULL},
    {"v1 max_units applies to batches only", 1,
     V1 V1D(1, "To", 1, "a%40x.com") V1D(2, "To", 1, "b%40x.com") V1D(3, "To", 1, "c%40x.com"),
     false, 2, false, SESERR_NONE, NULL, false, false, 3, "a@x.com;b@x.com;c@x.com;", "1,1,1,", "",
     NULL},
    {"v1 destination with no recipient", 1,
     V1 V1D(1, "To", 1, "a%40x.com") "&Destinations.member.2.ReplacementTemplateData=%7B%7D", true,
     100, false, SESERR_INVALID_PARAMETER, "Destination 2 has no recipient", false, false, 2, "",
     "", "", NULL},
    {"v1 destination with an empty address only", 1,
     V1 V1D(1, "To", 1, "") V1D(2, "To", 1, "b%40x.com"), true, 100, false,
     SESERR_INVALID_PARAMETER, "Illegal address", false, false, 2, "", "", "", NULL},
    {"v1 empty address skipped", 1,
     V1 V1D(1, "To", 1, "a%40x.com") V1D(1, "Cc", 1, "") V1D(2, "To", 1, "b%40x.com"), true, 100,
     true, SESERR_NONE, NULL, true, false, 2, "b@x.com;", "1,", "#0;", NULL},
    {"v1 invalid address refused", 1,
     V1 V1D(1, "To", 1, "a%40x.com") V1D(2, "Cc", 1, "not-an-address"), true, 100, false,
     SESERR_INVALID_PARAMETER, "Missing final '@domain'", false, false, 2, "", "", "", NULL},
    {"v1 invalid address refused when not a batch", 1,
     V1 V1D(1, "To", 1, "a%40x.com") V1D(2, "Cc", 1, "not-an-address"), false, 100, true,
     SESERR_INVALID_PARAMETER, "Missing final '@domain'", false, false, 2, "", "", "", NULL},
    {"v1 invalid address skipped", 1,
     V1 V1D(3, "To", 1, "c%40x.com") V1D(2, "To", 1, "b%40x.com") V1D(2, "Bcc", 1, "bad%40")
         V1D(1, "To", 1, "a%40x.com") V1D(1, "To", 2, "a2%40x.com") V1D(2, "Cc", 1, "worse"),
     true, 100, true, SESERR_NONE, NULL, true, false, 3, "a@x.com;c@x.com;", "2,1,",
     "bad@#1;worse#1;", NULL},
    {"v1 every destination invalid", 1, V1 V1D(1, "To", 1, "x") V1D(2, "To", 1, "y%40"), true, 100,
     true, SESERR_INVALID_PARAMETER, "Missing final '@domain'", false, false, 2, "", "", "", NULL},
    {"v1 destination index with a leading zero", 1,
     V1 V1D(1, "To", 1, "a%40x.com") V1D(01, "To", 1, "b%40x.com"), true, 100, false,
     SESERR_INVALID_PARAMETER,
     "Invalid destination parameter Destinations.member.01.Destination.ToAddresses.member.1", false,
     false, 1, "", "", "", NULL},
    {"v1 destination index of ten digits", 1, V1 V1D(1234567890, "To", 1, "a%40x.com"), false, 100,
     false, SESERR_INVALID_PARAMETER, "Invalid destination parameter", false, false, 0, "", "", "",
     NULL},
    {"v1 destination without a field", 1,
     V1 V1D(1, "To", 1, "a%40x.com") "&Destinations.member.2=x", true, 100, false,
     SESERR_INVALID_PARAMETER, "Invalid destination parameter", false, false, 1, "", "", "", NULL},
    {"v1 destination parameters are read only under Destinations.", 1,
     V1 V1D(1, "To", 1, "a%40x.com") "&DestinationsX=1&Destination.ToAddresses.member.1=z", true,
     100, false, SESERR_NONE, NULL, true, false, 1, "a@x.com;", "1,", "", "DestinationsX=1"},
    {"v2 entries with Cc, Bcc, replacement data and tags", 2,
     V2 ",\"BulkEmailEntries\":[{\"Destination\":{\"ToAddresses\":[\"a@x.com\",\"a2@x.com\"],"
        "\"CcAddresses\":[\"c@x.com\"]},\"ReplacementTags\":[{\"Name\":\"k\",\"Value\":\"v\"}],"
        "\"ReplacementEmailContent\":{\"ReplacementTemplate\":{\"ReplacementTemplateData\":"
        "\"{\\\"n\\\":1}\"}}},{\"Destination\":{\"BccAddresses\":[\"b@x.com\"]}},"
        "{\"Destination\":{\"ToAddresses\":[\"Name <d@x.com>\"]},\"ReplacementHeaders\":"
        "[{\"Name\":\"X-A\",\"Value\":\"1\"}]}],\"ConfigurationSetName\":\"cs\"}",
     true, 100, false, SESERR_NONE, NULL, true, false, 3, "a@x.com;b@x.com;Name <d@x.com>;",
     "3,1,1,", "", NULL},
    {"v2 opt-out tag on: stripped", 2,
     V2 ",\"DefaultEmailTags\":[{\"Name\":\"k1\",\"Value\":\"v1\"},{\"Name\":\"sesgate-fanout\","
        "\"Value\":\"on\"},{\"Name\":\"k3\",\"Value\":\"v3\"}],\"BulkEmailEntries\":[{"
        "\"Destination\":{\"ToAddresses\":[\"a@x.com\"]}}]}",
     true, 100, false, SESERR_NONE, NULL, true, true, 1, "a@x.com;", "1,", "",
     "\"DefaultEmailTags\":[{\"Name\":\"k1\",\"Value\":\"v1\"},{\"Name\":\"k3\",\"Value\":"
     "\"v3\"}]"},
    {"v2 opt-out tag off: forwarded without it", 2,
     V2 ",\"DefaultEmailTags\":[{\"Name\":\"Sesgate-Fanout\",\"Value\":\"Off\"}],"
        "\"BulkEmailEntries\":[{\"Destination\":{\"ToAddresses\":[\"a@x.com\"]}},{\"Destination\":"
        "{\"ToAddresses\":[\"b@x.com\"]}}]}",
     true, 100, false, SESERR_NONE, NULL, false, true, 2, "a@x.com;b@x.com;", "1,1,", "", NULL},
    {"v2 fan-out off", 2,
     V2 ",\"BulkEmailEntries\":[{\"Destination\":{\"ToAddresses\":[\"a@x.com\"]}}]}", false, 100,
     false, SESERR_NONE, NULL, false, false, 1, "a@x.com;", "1,", "", NULL},
    {"v2 no entries", 2, V2 ",\"BulkEmailEntries\":[]}", true, 100, false, SESERR_NONE, NULL, false,
     false, 0, "", "", "", NULL},
    {"v2 more entries than max_units", 2,
     V2 ",\"BulkEmailEntries\":[{\"Destination\":{\"ToAddresses\":[\"a@x.com\"]}},{"
        "\"Destination\":{\"ToAddresses\":[\"b@x.com\"]}}]}",
     true, 1, false, SESERR_INVALID_PARAMETER, "2 destinations", false, false, 2, "", "", "", NULL},
    {"v2 entries not a list", 2, V2 ",\"BulkEmailEntries\":{}}", true, 100, false,
     SESERR_BAD_REQUEST, "must be a list", false, false, 0, "", "", "", NULL},
    {"v2 entry not an object", 2, V2 ",\"BulkEmailEntries\":[\"a@x.com\"]}", true, 100, false,
     SESERR_BAD_REQUEST, "must be an object", false, false, 1, "", "", "", NULL},
    {"v2 Destination not an object", 2, V2 ",\"BulkEmailEntries\":[{\"Destination\":[]}]}", true,
     100, false, SESERR_BAD_REQUEST, "must be an object", false, false, 1, "", "", "", NULL},
    {"v2 address list not a list", 2,
     V2 ",\"BulkEmailEntries\":[{\"Destination\":{\"ToAddresses\":\"a@x.com\"}}]}", true, 100,
     false, SESERR_BAD_REQUEST, "ToAddresses must be a list", false, false, 1, "", "", "", NULL},
    {"v2 address not a string", 2,
     V2 ",\"BulkEmailEntries\":[{\"Destination\":{\"CcAddresses\":[1]}}]}", true, 100, false,
     SESERR_BAD_REQUEST, "must be strings", false, false, 1, "", "", "", NULL},
    {"v2 entry with no recipient", 2,
     V2 ",\"BulkEmailEntries\":[{\"Destination\":{\"ToAddresses\":[\"a@x.com\"]}},{"
        "\"ReplacementTags\":[]}]}",
     true, 100, false, SESERR_INVALID_PARAMETER, "Destination 2 has no recipient", false, false, 2,
     "", "", "", NULL},
    {"v2 invalid address refused", 2,
     V2 ",\"BulkEmailEntries\":[{\"Destination\":{\"ToAddresses\":[\"a@x.com\",\"a@b@x.com\"]}}]}",
     true, 100, false, SESERR_INVALID_PARAMETER, "", false, false, 1, "", "", "", NULL},
    {"v2 invalid address skipped", 2,
     V2 ",\"BulkEmailEntries\":[{\"Destination\":{\"ToAddresses\":[\"a@x.com\"]}},{"
        "\"Destination\":{\"ToAddresses\":[\"b@x.com\"],\"BccAddresses\":[\"\"]}},{"
        "\"Destination\":{\"ToAddresses\":[\"c@x.com\"]}}]}",
     true, 100, true, SESERR_NONE, NULL, true, false, 3, "a@x.com;c@x.com;", "1,1,", "#1;", NULL},
    {"v2 every entry invalid", 2,
     V2 ",\"BulkEmailEntries\":[{\"Destination\":{\"ToAddresses\":[\"a@\"]}}]}", true, 100, true,
     SESERR_INVALID_PARAMETER, "", false, false, 1, "", "", "", NULL},
};

/* A unit's first recipient (To, else Cc, else Bcc) from bulk_unit_view. */
static void first_recipient(int api, const char *unit, struct buf *out)
{
    json_t *v = bulk_unit_view(api, unit, strlen(unit));
    CHECK(v != NULL, "unit view of %s", unit);
    static const char *const keys[] = {"to", "cc", "bcc"};
    for (size_t k = 0; k < 3; k++) {
        json_t *a = json_array_get(json_object_get(v, keys[k]), 0);
        if (json_is_string(a)) {
            buf_adds(out, json_string_value(a));
            break;
        }
    }
    buf_addc(out, ';');
    json_decref(v);
}

/* Parse body (the original o's bulk call or forwarded body) and compare. */
static void check_body(const struct sesreq *o, const struct fanout_plan *p, const char *body,
                       size_t len, const char *what)
{
    struct sesreq b;
    struct seserr e = {SESERR_NONE, ""};
    int rc = parse(o->api, body, len, &b, &e);
    CHECK(rc == 0, "%s: the body parses: %s: %.*s", what, e.message, (int)len, body);
    /* the destinations left out, each once */
    size_t *skip = xcalloc(p->ninvalid + 1, sizeof *skip), nskip = 0;
    for (size_t i = 0; i < p->ninvalid; i++)
        if (nskip == 0 || skip[nskip - 1] != p->invalid_pos[i])
            skip[nskip++] = p->invalid_pos[i];
    if (rc == 0)
        check_same_call(o, &b, skip, nskip, what);
    free(skip);
    /* planned again, it gives the same units and template */
    struct fanout_plan q;
    if (rc == 0) {
        CHECK(bulk_plan(&b, true, SIZE_MAX, false, &q, &e) == 0, "%s: planned again: %s", what,
              e.message);
        CHECK(q.nto == p->nto && !q.tag_stripped, "%s: planned again: %zu units", what, q.nto);
        for (size_t i = 0; i < q.nto && i < p->nto; i++)
            CHECK_STR(q.to[i], p->to[i], what);
        if (p->template.len > 0)
            CHECK_STR(buf_cstr(&q.template), buf_cstr((struct buf *)&p->template), what);
        fanout_plan_cleanup(&q);
    }
    sesreq_cleanup(&b);
}

static void run_plan_case(const struct plan_case *c)
{
    struct sesreq r;
    struct seserr e = {SESERR_NONE, ""};
    const char *what = c->name;
    int rc = parse(c->api, c->body, strlen(c->body), &r, &e);
    CHECK(rc == 0, "%s: parses: %s", what, e.message);
    if (rc != 0) {
        sesreq_cleanup(&r);
        return;
    }
    struct fanout_plan p;
    e = (struct seserr){SESERR_NONE, ""};
    rc = bulk_plan(&r, c->on, c->max, c->skip, &p, &e);
    CHECK(p.bulk && p.api == r.api && p.action == r.action, "%s: bulk plan", what);
    CHECK(p.ndest == c->ndest, "%s: ndest %zu, want %zu", what, p.ndest, c->ndest);
    if (c->code != SESERR_NONE) {
        CHECK(rc == -1 && e.code == c->code, "%s: rc %d, code %d, want %d", what, rc, e.code,
              c->code);
        CHECK(strstr(e.message, c->msg) != NULL, "%s: message \"%s\", want \"%s\"", what, e.message,
              c->msg);
        if (c->api == 1 && strstr(c->body, "not-an-address") != NULL)
            CHECK_STR(e.message, addr_check_mailbox("not-an-address", 14), what);
        fanout_plan_cleanup(&p);
        sesreq_cleanup(&r);
        return;
    }
    CHECK(rc == 0, "%s: rc %d: %s", what, rc, e.message);
    CHECK(p.batch == c->batch, "%s: batch %d", what, p.batch);
    CHECK(p.tag_stripped == c->stripped, "%s: tag_stripped %d", what, p.tag_stripped);
    CHECK((p.forward.len > 0) == (c->stripped && !c->batch), "%s: forward %zu bytes", what,
          p.forward.len);
    struct buf first = BUF_INIT, costs = BUF_INIT, inv = BUF_INIT;
    for (size_t i = 0; i < p.nto; i++) {
        first_recipient(c->api, p.to[i], &first);
        buf_printf(&costs, "%zu,", p.cost[i]);
        CHECK(bulk_unit_cost(c->api, p.to[i], strlen(p.to[i])) == (int64_t)p.cost[i],
              "%s: unit %zu costs %zu", what, i, p.cost[i]);
    }
    for (size_t i = 0; i < p.ninvalid; i++) {
        buf_printf(&inv, "%s#%zu;", p.invalid[i].addr, p.invalid_pos[i]);
        CHECK(p.invalid[i].reason != NULL &&
                  strcmp(p.invalid[i].reason,
                         addr_check_mailbox(p.invalid[i].addr, strlen(p.invalid[i].addr))) == 0,
              "%s: invalid %zu: reason", what, i);
    }
    for (size_t i = 0, d = 0; i < p.ninvalid; i++) {
        CHECK(p.invalid_pos[i] < p.ndest && (i == 0 || p.invalid_pos[i] >= p.invalid_pos[i - 1]),
              "%s: invalid %zu at %zu", what, i, p.invalid_pos[i]);
        d += i == 0 || p.invalid_pos[i] != p.invalid_pos[i - 1];
        if (i + 1 == p.ninvalid)
            CHECK(p.nto + d == p.ndest, "%s: %zu units, %zu left out, %zu destinations", what,
                  p.nto, d, p.ndest);
    }
    if (p.ninvalid == 0)
        CHECK(p.nto == p.ndest, "%s: %zu units, %zu destinations", what, p.nto, p.ndest);
    CHECK_STR(buf_cstr(&first), c->first, what);
    CHECK_STR(buf_cstr(&costs), c->costs, what);
    CHECK_STR(buf_cstr(&inv), c->invalid, what);
    if (c->in_template != NULL)
        CHECK(strstr(buf_cstr(&p.template), c->in_template) != NULL, "%s: template %s lacks %s",
              what, buf_cstr(&p.template), c->in_template);
    CHECK(p.template.len == 0 || strcasestr(buf_cstr(&p.template), FANOUT_TAG_NAME) == NULL,
          "%s: the template has no opt-out tag", what);
    if (p.batch) {
        struct buf body = BUF_INIT;
        full_body(&p, &body);
        check_body(&r, &p, body.data, body.len, what);
        buf_free(&body);
    }
    if (p.forward.len > 0) {
        CHECK(strcasestr(buf_cstr(&p.forward), FANOUT_TAG_NAME) == NULL,
              "%s: the forwarded body has no opt-out tag", what);
        check_body(&r, &p, p.forward.data, p.forward.len, what);
    }
    buf_free(&first);
    buf_free(&costs);
    buf_free(&inv);
    fanout_plan_cleanup(&p);
    sesreq_cleanup(&r);
}

static void test_plan_cases(void)
{
    for (size_t i = 0; i < sizeof plan_cases / sizeof *plan_cases; i++)
        run_plan_case(&plan_cases[i]);
}

/* A v1 call of n destinations numbered from n down to 1, destination i with
 * r recipients spread over To, Cc and Bcc. */
static void big_v1(size_t n, size_t r, struct buf *out)
{
    static const char *const kinds[] = {"To", "Cc", "Bcc"};
    buf_adds(out, V1 "&DefaultTemplateData=%7B%7D");
    for (size_t i = n; i > 0; i--) {
        for (size_t k = 0; k < r; k++)
            buf_printf(
                out,
                "&Destinations.member.%zu.Destination.%sAddresses.member.%zu=u%zu.%zu%%40x.com", i,
                kinds[k % 3], k / 3 + 1, i, k);
        buf_printf(out, "&Destinations.member.%zu.ReplacementTemplateData=%%7B%%22i%%22%%3A%zu%%7D",
                   i, i);
    }
}

/* The same as a v2 call (entries in order 1..n). */
static void big_v2(size_t n, size_t r, struct buf *out)
{
    static const char *const kinds[] = {"ToAddresses", "CcAddresses", "BccAddresses"};
    json_t *root = json_loads(V2 "}", 0, NULL), *entries = json_array();
    for (size_t i = 1; i <= n; i++) {
        json_t *dest = json_object();
        for (size_t k = 0; k < r; k++) {
            char a[64];
            snprintf(a, sizeof a, "u%zu.%zu@x.com", i, k);
            json_t *list = json_object_get(dest, kinds[k % 3]);
            if (list == NULL)
                json_object_set_new(dest, kinds[k % 3], list = json_array());
            json_array_append_new(list, json_string(a));
        }
        json_array_append_new(entries, json_pack("{s:o}", "Destination", dest));
    }
    json_object_set_new(root, "BulkEmailEntries", entries);
    char *s = json_dumps(root, JSON_COMPACT);
    buf_adds(out, s);
    free(s);
    json_decref(root);
}

/* Limits: max_units, BULK_MAX_RECIPIENTS, and a call of many units round trip. */
static void test_limits(void)
{
    static const struct {
        size_t n, r, max;
        enum seserr_code code;
        const char *msg;
    } cases[] = {
        {120, 1, 120, SESERR_NONE, NULL},
        {120, 2, 119, SESERR_INVALID_PARAMETER, "120 destinations; this gateway takes at most 119"},
        {3, BULK_MAX_RECIPIENTS, 100, SESERR_NONE, NULL},
        {3, BULK_MAX_RECIPIENTS + 1, 100, SESERR_INVALID_PARAMETER, "Recipient count exceeds 50"},
        {1, 7, 1, SESERR_NONE, NULL},
    };
    for (int api = 1; api <= 2; api++) {
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
            char what[96];
            snprintf(what, sizeof what, "limits v%d %zu x %zu max %zu", api, cases[i].n, cases[i].r,
                     cases[i].max);
            struct buf body = BUF_INIT;
            if (api == 1)
                big_v1(cases[i].n, cases[i].r, &body);
            else
                big_v2(cases[i].n, cases[i].r, &body);
            struct sesreq r;
            struct seserr e = {SESERR_NONE, ""};
            int rc = parse(api, body.data, body.len, &r, &e);
            CHECK(rc == 0, "%s: parses: %s", what, e.message);
            struct fanout_plan p;
            rc = bulk_plan(&r, true, cases[i].max, false, &p, &e);
            CHECK(p.ndest == cases[i].n, "%s: ndest %zu", what, p.ndest);
            if (cases[i].code != SESERR_NONE) {
                CHECK(rc == -1 && e.code == cases[i].code && strstr(e.message, cases[i].msg),
                      "%s: rc %d: %s", what, rc, e.message);
            } else {
                CHECK(rc == 0 && p.batch && p.nto == cases[i].n, "%s: rc %d, %zu units: %s", what,
                      rc, p.nto, e.message);
                for (size_t k = 0; rc == 0 && k < p.nto; k++) {
                    CHECK(p.cost[k] == cases[i].r, "%s: unit %zu costs %zu", what, k, p.cost[k]);
                    char want[64];
                    snprintf(want, sizeof want, "u%zu.0@x.com;", k + 1);
                    struct buf got = BUF_INIT;
                    first_recipient(api, p.to[k], &got);
                    CHECK_STR(buf_cstr(&got), want, what);
                    buf_free(&got);
                }
                struct buf all = BUF_INIT;
                full_body(&p, &all);
                check_body(&r, &p, all.data, all.len, what);
                /* and a bulk call of some of them (what a worker sends) */
                if (p.nto >= 3) {
                    struct buf some = BUF_INIT;
                    size_t lens[2] = {strlen(p.to[1]), strlen(p.to[2])};
                    size_t plen = p.template.len - (api == 2 ? 1 : 0);
                    bulk_body(api, p.template.data, plen, (const char *const *)p.to + 1, lens, 2,
                              &some);
                    struct sesreq s;
                    CHECK(parse(api, some.data, some.len, &s, &e) == 0, "%s: part: %s", what,
                          e.message);
                    CHECK(sesreq_other_recipients(&s) == 2 * cases[i].r, "%s: part recipients",
                          what);
                    struct fanout_plan q;
                    CHECK(bulk_plan(&s, true, 50, false, &q, &e) == 0 && q.nto == 2 &&
                              strcmp(q.to[0], p.to[1]) == 0 && strcmp(q.to[1], p.to[2]) == 0,
                          "%s: part planned again", what);
                    fanout_plan_cleanup(&q);
                    sesreq_cleanup(&s);
                    buf_free(&some);
                }
                buf_free(&all);
            }
            fanout_plan_cleanup(&p);
            sesreq_cleanup(&r);
            buf_free(&body);
        }
    }
}

/* bulk_unit_cost and bulk_unit_view on units written by hand, and on text
 * that is not a unit. */
static void test_units(void)
{
    static const struct {
        int api;
        const char *unit;
        int64_t cost;
        const char *view; /* compact JSON, or NULL */
    } cases[] = {
        {1,
         "Destination.ToAddresses.member.1=a%40x.com&Destination.CcAddresses.member.1=c%40x.com&"
         "Destination.BccAddresses.member.1=d%40x.com&Destination.ToAddresses.member.2=b%40x.com&"
         "ReplacementTemplateData=%7B%7D",
         4, "{\"to\":[\"a@x.com\",\"b@x.com\"],\"cc\":[\"c@x.com\"],\"bcc\":[\"d@x.com\"]}"},
        {1, "ReplacementTemplateData=%7B%7D", 0, "{\"to\":[],\"cc\":[],\"bcc\":[]}"},
        {1, "Destination.ToAddresses.member.1=B%20%3Cb%40x.com%3E", 1,
         "{\"to\":[\"B <b@x.com>\"],\"cc\":[],\"bcc\":[]}"},
        {1, "Destination.ToAddresses.member.1=&Destination.CcAddresses.member.1=c%40x.com", 2,
         "{\"to\":[\"\"],\"cc\":[\"c@x.com\"],\"bcc\":[]}"},
        /* only Destination.<kind>Addresses.member.<digits> is an address */
        {1,
         "Destination.ToAddresses.member.1.1=a%40x.com&Destination.ToAddresses.member.=b%40x.com&"
         "Destination.ToAddresses.member.x=c%40x.com&Destination.CcAddresses.member.12=d%40x.com",
         1, "{\"to\":[],\"cc\":[\"d@x.com\"],\"bcc\":[]}"},
        {1, "Destination.ToAddresses.member.1=%zz", -1, NULL},
        {1, "Destination.ToAddresses.member.1=a&Destination.ToAddresses.member.1=b", -1, NULL},
        {2,
         "{\"Destination\":{\"ToAddresses\":[\"a@x.com\",\"b@x.com\"],\"BccAddresses\":[\"d@x."
         "com\"]},\"ReplacementTags\":[{\"Name\":\"k\",\"Value\":\"v\"}]}",
         3, "{\"to\":[\"a@x.com\",\"b@x.com\"],\"cc\":[],\"bcc\":[\"d@x.com\"]}"},
        {2, "{}", 0, "{\"to\":[],\"cc\":[],\"bcc\":[]}"},
        {2, "[{\"Destination\":{}}]", -1, NULL},
        {2, "{\"Destination\":", -1, NULL},
        {2, "", -1, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *u = cases[i].unit;
        int64_t cost = bulk_unit_cost(cases[i].api, u, strlen(u));
        CHECK(cost == cases[i].cost, "unit %zu: cost %lld, want %lld", i, (long long)cost,
              (long long)cases[i].cost);
        json_t *v = bulk_unit_view(cases[i].api, u, strlen(u));
        if (cases[i].view == NULL) {
            CHECK(v == NULL, "unit %zu: no view", i);
        } else {
            char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
            CHECK(s != NULL && strcmp(s, cases[i].view) == 0, "unit %zu: view %s, want %s", i,
                  s ? s : "(null)", cases[i].view);
            free(s);
        }
        json_decref(v);
    }
    /* a unit's text need not be NUL-terminated: only len bytes are read */
    const char *t = "{\"Destination\":{\"ToAddresses\":[\"a@x.com\"]}}garbage";
    CHECK(bulk_unit_cost(2, t, strlen(t) - 7) == 1, "unit with a length");
    CHECK(bulk_unit_cost(2, t, strlen(t)) == -1, "unit with garbage");
}

static void test_names(void)
{
    CHECK(bulk_action("SendBulkTemplatedEmail"), "v1 bulk action");
    CHECK(bulk_action("SendBulkEmail"), "v2 bulk action");
    CHECK(!bulk_action("SendEmail") && !bulk_action("SendTemplatedEmail"), "other sends");
    CHECK(!bulk_action("sendbulkemail") && !bulk_action(NULL) && !bulk_action(""), "not bulk");
    CHECK_STR(bulk_status_invalid(1), "InvalidParameterValue", "v1 invalid status");
    CHECK_STR(bulk_status_invalid(2), "INVALID_PARAMETER", "v2 invalid status");
    CHECK(bulk_status_class(bulk_status_invalid(1)) == BACKOFF_PERMANENT &&
              bulk_status_class(bulk_status_invalid(2)) == BACKOFF_PERMANENT,
          "an invalid destination is permanent");
}

/* Every status of both enums in ses-api.md (v1 model, v2 model, and the v2
 * API reference's other spellings), and what a worker does with it. */
static void test_status_class(void)
{
    static const struct {
        const char *status;
        enum backoff_class cls;
    } cases[] = {
        /* v1 BulkEmailStatus */
        {"Success", BACKOFF_OK},
        {"MessageRejected", BACKOFF_PERMANENT},
        {"MailFromDomainNotVerified", BACKOFF_PERMANENT},
        {"ConfigurationSetDoesNotExist", BACKOFF_PERMANENT},
        {"TemplateDoesNotExist", BACKOFF_PERMANENT},
        {"AccountSuspended", BACKOFF_PERMANENT},
        {"AccountThrottled", BACKOFF_THROTTLED},
        {"AccountDailyQuotaExceeded", BACKOFF_QUOTA},
        {"InvalidSendingPoolName", BACKOFF_PERMANENT},
        {"AccountSendingPaused", BACKOFF_RETRY},
        {"ConfigurationSetSendingPaused", BACKOFF_RETRY},
        {"InvalidParameterValue", BACKOFF_PERMANENT},
        {"TransientFailure", BACKOFF_RETRY},
        {"Failed", BACKOFF_RETRY},
        /* v2 model */
        {"SUCCESS", BACKOFF_OK},
        {"MESSAGE_REJECTED", BACKOFF_PERMANENT},
        {"MAIL_FROM_DOMAIN_NOT_VERIFIED", BACKOFF_PERMANENT},
        {"CONFIGURATION_SET_NOT_FOUND", BACKOFF_PERMANENT},
        {"TEMPLATE_NOT_FOUND", BACKOFF_PERMANENT},
        {"ACCOUNT_SUSPENDED", BACKOFF_PERMANENT},
        {"ACCOUNT_THROTTLED", BACKOFF_THROTTLED},
        {"ACCOUNT_DAILY_QUOTA_EXCEEDED", BACKOFF_QUOTA},
        {"INVALID_SENDING_POOL_NAME", BACKOFF_PERMANENT},
        {"ACCOUNT_SENDING_PAUSED", BACKOFF_RETRY},
        {"CONFIGURATION_SET_SENDING_PAUSED", BACKOFF_RETRY},
        {"INVALID_PARAMETER", BACKOFF_PERMANENT},
        {"TRANSIENT_FAILURE", BACKOFF_RETRY},
        {"FAILED", BACKOFF_RETRY},
        /* v2 API reference spellings */
        {"CONFIGURATION_SET_DOES_NOT_EXIST", BACKOFF_PERMANENT},
        {"TEMPLATE_DOES_NOT_EXIST", BACKOFF_PERMANENT},
        {"INVALID_PARAMETER_VALUE", BACKOFF_PERMANENT},
        /* unknown: retried, a dead letter after max_attempts */
        {"SomethingNew", BACKOFF_RETRY},
        {"success", BACKOFF_RETRY},
        {"Success ", BACKOFF_RETRY},
        {"", BACKOFF_RETRY},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        enum backoff_class got = bulk_status_class(cases[i].status);
        CHECK(got == cases[i].cls, "status \"%s\": class %s, want %s", cases[i].status,
              backoff_class_name(got), backoff_class_name(cases[i].cls));
        CHECK(bulk_status_ok(cases[i].status) == (cases[i].cls == BACKOFF_OK), "status \"%s\": ok",
              cases[i].status);
    }
}

/* One parsed answer entry: "status|message_id|error". */
static void entry_str(const struct bulk_result *r, struct buf *out)
{
    buf_printf(out, "%s|%s|%s;", r->status, r->message_id, r->error);
}

#define V1_ANSWER_HEAD                                                                             \
    "<SendBulkTemplatedEmailResponse xmlns=\"http://ses.amazonaws.com/doc/2010-12-01/\">\n"        \
    "  <SendBulkTemplatedEmailResult>\n    <Status>\n"
#define V1_ANSWER_TAIL                                                                             \
    "    </Status>\n  </SendBulkTemplatedEmailResult>\n  <ResponseMetadata>\n"                     \
    "    <RequestId>5e7a2b1c-7f3e-4d7a-9a61-3d1f0f2a1b2c</RequestId>\n  </ResponseMetadata>\n"     \
    "</SendBulkTemplatedEmailResponse>\n"

static void test_answer_parse(void)
{
    static const struct {
        int api;
        const char *body;
        size_t max;
        int n;
        const char *want; /* entry_str of each entry */
    } cases[] = {
        {1,
         V1_ANSWER_HEAD
         "      <member>\n        <Status>Success</Status>\n"
         "        "
         "<MessageId>0100018c7d5a2f3e-6c1b2a3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d-000000</MessageId>\n"
         "      </member>\n"
         "      <member>\n        <Status>MessageRejected</Status>\n"
         "        <Error>Email address is not verified. The following identities failed the check "
         "in region US-EAST-1: &quot;Bo &amp; Al&quot; &lt;b@x.com&gt;, it&apos;s</Error>\n"
         "      </member>\n"
         "      <member>\n        <Status>AccountThrottled</Status>\n"
         "        <Error>Maximum sending rate exceeded.</Error>\n      </member>\n" V1_ANSWER_TAIL,
         10, 3,
         "Success|0100018c7d5a2f3e-6c1b2a3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d-000000|;"
         "MessageRejected||Email address is not verified. The following identities failed the "
         "check in region US-EAST-1: \"Bo & Al\" <b@x.com>, it's;"
         "AccountThrottled||Maximum sending rate exceeded.;"},
        /* at most max entries */
        {1,
         V1_ANSWER_HEAD
         "<member><Status>Success</Status><MessageId>m1</MessageId></member>"
         "<member><Status>Success</Status><MessageId>m2</MessageId></member>" V1_ANSWER_TAIL,
         1, 1, "Success|m1|;"},
        /* an unknown entity and a bare & are kept as written */
        {1,
         V1_ANSWER_HEAD "<member><Status>Failed</Status><Error>a &amp;amp; b &nbsp; c & d "
                        "&amp</Error></member>" V1_ANSWER_TAIL,
         5, 1, "Failed||a &amp; b &nbsp; c & d &amp;"},
        /* character references */
        {1,
         V1_ANSWER_HEAD
         "<member><Status>MessageRejected</Status><Error>it&#39;s &#x263A;&#X41;"
         "&#x1F600;&#10; &#0; &#xD800; &#1114112; &#12 &#; &#x;</Error></member>" V1_ANSWER_TAIL,
         5, 1,
         "MessageRejected||it's \xe2\x98\xba&#X41;\xf0\x9f\x98\x80\n &#0; &#xD800; &#1114112; "
         "&#12 &#; &#x;;"},
        {1, V1_ANSWER_HEAD V1_ANSWER_TAIL, 5, 0, ""},
        /* not a bulk answer */
        {1,
         "<ErrorResponse xmlns=\"http://ses.amazonaws.com/doc/2010-12-01/\"><Error><Type>Sender"
         "</Type><Code>MessageRejected</Code><Message>Email address is not verified.</Message>"
         "</Error><RequestId>r</RequestId></ErrorResponse>",
         5, -1, ""},
        {1, "<SendBulkTemplatedEmailResult><Status><member><Status>Success</Status></member>", 5,
         -1, ""},
        {1,
         "<SendBulkTemplatedEmailResult><Status><member><Status>Success</Status></Status>"
         "</SendBulkTemplatedEmailResult>",
         5, -1, ""},
        {1, "", 5, -1, ""},
        {1, "{\"BulkEmailEntryResults\":[]}", 5, -1, ""},
        /* v2 */
        {2,
         "{\"BulkEmailEntryResults\":[{\"Status\":\"SUCCESS\",\"MessageId\":\"0100018c-a-000000\"},"
         "{\"Status\":\"MESSAGE_REJECTED\",\"Error\":\"Email address is not verified. \\\"Bo & "
         "Al\\\" <b@x.com>\"},{\"Status\":\"ACCOUNT_DAILY_QUOTA_EXCEEDED\",\"Error\":\"Daily "
         "message quota exceeded.\"}]}",
         10, 3,
         "SUCCESS|0100018c-a-000000|;MESSAGE_REJECTED||Email address is not verified. \"Bo & "
         "Al\" <b@x.com>;ACCOUNT_DAILY_QUOTA_EXCEEDED||Daily message quota exceeded.;"},
        {2, "{\"BulkEmailEntryResults\":[{\"Status\":\"SUCCESS\"},{\"Status\":\"FAILED\"}]}", 1, 1,
         "SUCCESS||;"},
        /* members of the wrong type read as empty */
        {2, "{\"BulkEmailEntryResults\":[{\"Status\":1,\"MessageId\":null},7]}", 5, 2, "||;||;"},
        {2, "{\"BulkEmailEntryResults\":[]}", 5, 0, ""},
        {2, "{\"message\":\"Email address is not verified.\"}", 5, -1, ""},
        {2, "{\"BulkEmailEntryResults\":{}}", 5, -1, ""},
        {2, "{\"BulkEmailEntryResults\":[", 5, -1, ""},
        {2, "[]", 5, -1, ""},
        {2, "", 5, -1, ""},
        {2, V1_ANSWER_HEAD V1_ANSWER_TAIL, 5, -1, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct bulk_result *res = xcalloc(cases[i].max, sizeof *res);
        int n = bulk_answer_parse(cases[i].api, cases[i].body, strlen(cases[i].body), res,
                                  cases[i].max);
        CHECK(n == cases[i].n, "answer %zu: %d entries, want %d", i, n, cases[i].n);
        struct buf got = BUF_INIT;
        for (int k = 0; k < n; k++)
            entry_str(&res[k], &got);
        if (cases[i].n >= 0)
            CHECK_STR(buf_cstr(&got), cases[i].want, "answer entries");
        buf_free(&got);
        free(res);
    }
    struct bulk_result r[1];
    CHECK(bulk_answer_parse(1, NULL, 0, r, 1) == -1 && bulk_answer_parse(2, NULL, 0, r, 1) == -1,
          "no body");
    /* the body need not be NUL-terminated: only n bytes are read */
    const char *v2 = "{\"BulkEmailEntryResults\":[{\"Status\":\"SUCCESS\"}]}trailing";
    CHECK(bulk_answer_parse(2, v2, strlen(v2) - 8, r, 1) == 1, "v2 answer with a length");
}

/* Long fields are cut to their buffers, at a character boundary, so that
 * what is read can be written again. */
static void test_answer_long(void)
{
    for (int api = 1; api <= 2; api++) {
        struct buf body = BUF_INIT, err = BUF_INIT, id = BUF_INIT;
        for (int i = 0; i < 400; i++)
            buf_adds(&err, "\xc3\xa9"); /* é */
        for (int i = 0; i < 300; i++)
            buf_adds(&id, "m");
        if (api == 1)
            buf_printf(&body,
                       V1_ANSWER_HEAD "<member><Status>MessageRejected</Status><Error>%s</Error>"
                                      "<MessageId>%s</MessageId></member>" V1_ANSWER_TAIL,
                       err.data, id.data);
        else
            buf_printf(&body,
                       "{\"BulkEmailEntryResults\":[{\"Status\":\"MESSAGE_REJECTED\",\"Error\":"
                       "\"%s\",\"MessageId\":\"%s\"}]}",
                       err.data, id.data);
        struct bulk_result r[2], back[2];
        memset(r, 0, sizeof r);
        CHECK(bulk_answer_parse(api, body.data, body.len, r, 2) == 1, "v%d long: parses", api);
        size_t el = strlen(r[0].error);
        CHECK(el > 400 && el < sizeof r[0].error && el % 2 == 0 &&
                  util_utf8_valid(r[0].error, el) && memcmp(r[0].error, err.data, el) == 0,
              "v%d long: error cut at a character (%zu bytes)", api, el);
        CHECK(strlen(r[0].message_id) == sizeof r[0].message_id - 1,
              "v%d long: message id cut (%zu)", api, strlen(r[0].message_id));
        struct buf out = BUF_INIT;
        bulk_answer_render(api, r, 1, "rid", &out);
        CHECK(bulk_answer_parse(api, out.data, out.len, back, 2) == 1 &&
                  strcmp(back[0].error, r[0].error) == 0 &&
                  strcmp(back[0].status, r[0].status) == 0 &&
                  strcmp(back[0].message_id, r[0].message_id) == 0,
              "v%d long: written and read again: %s", api, buf_cstr(&out));
        buf_free(&out);
        buf_free(&body);
        buf_free(&err);
        buf_free(&id);
    }
}

static void test_answer_render(void)
{
    static const struct bulk_result entries[] = {
        {"Success", "0100018c7d5a2f3e-000000", ""},
        {"MessageRejected", "", "Email address is not verified: \"A & B\" <a@x.com>"},
        {"InvalidParameterValue", "", "Missing final '@domain'"},
        {"TransientFailure", "", "<&>&amp;&lt;"},
        {"", "", ""},
        {"SUCCESS", "id-<5>&", "é ü"},
    };
    size_t n = sizeof entries / sizeof *entries;
    for (int api = 1; api <= 2; api++) {
        struct buf out = BUF_INIT;
        buf_adds(&out, "");
        bulk_answer_render(api, entries, n, "req-<1>&", &out);
        struct bulk_result back[8];
        int got = bulk_answer_parse(api, out.data, out.len, back, 8);
        CHECK(got == (int)n, "render v%d: %d entries read back: %s", api, got, out.data);
        for (size_t i = 0; got == (int)n && i < n; i++) {
            struct buf w = BUF_INIT, g = BUF_INIT;
            entry_str(&entries[i], &w);
            entry_str(&back[i], &g);
            CHECK_STR(buf_cstr(&g), buf_cstr(&w), "render round trip");
            buf_free(&w);
            buf_free(&g);
        }
        CHECK(util_utf8_valid(out.data, out.len), "render v%d: UTF-8", api);
        if (api == 1) {
            CHECK(strncmp(out.data,
                          "<SendBulkTemplatedEmailResponse "
                          "xmlns=\"http://ses.amazonaws.com/doc/2010-12-01/\">",
                          79) == 0,
                  "render v1: the response element: %s", out.data);
            CHECK(strstr(out.data, "<Error>Email address is not verified: &quot;A &amp; B&quot; "
                                   "&lt;a@x.com&gt;</Error>") != NULL,
                  "render v1: & < > escaped");
            CHECK(strstr(out.data, "<Error>&lt;&amp;&gt;&amp;amp;&amp;lt;</Error>") != NULL,
                  "render v1: entities escaped again");
            CHECK(strstr(out.data, "<RequestId>req-&lt;1&gt;&amp;</RequestId>") != NULL,
                  "render v1: request id");
            CHECK(strstr(out.data, "<member><Status>Success</Status><MessageId>0100018c7d5a2f3e-"
                                   "000000</MessageId></member>") != NULL,
                  "render v1: success member");
            /* no <Error> nor <MessageId> element when there is none */
            const char *m = strstr(out.data, "<member><Status></Status></member>");
            CHECK(m != NULL, "render v1: empty member");
            CHECK(strstr(out.data, "</Status></SendBulkTemplatedEmailResult><ResponseMetadata>") !=
                      NULL,
                  "render v1: the status list closes");
        } else {
            json_t *j = json_loadb(out.data, out.len, JSON_REJECT_DUPLICATES, NULL);
            json_t *l = json_object_get(j, "BulkEmailEntryResults");
            CHECK(json_object_size(j) == 1 && json_array_size(l) == n, "render v2: %s", out.data);
            CHECK(json_object_get(json_array_get(l, 0), "Error") == NULL &&
                      json_object_get(json_array_get(l, 1), "MessageId") == NULL &&
                      json_object_size(json_array_get(l, 4)) == 1,
                  "render v2: no empty members");
            json_t *want = json_pack("{s:s,s:s}", "Status", "MessageRejected", "Error",
                                     "Email address is not verified: \"A & B\" <a@x.com>");
            CHECK(json_equal(json_array_get(l, 1), want), "render v2: entry 1");
            json_decref(want);
            json_decref(j);
        }
        /* appended to what out holds */
        struct buf two = BUF_INIT;
        buf_adds(&two, "X");
        bulk_answer_render(api, entries, 1, "r", &two);
        CHECK(two.len > 1 && two.data[0] == 'X' &&
                  bulk_answer_parse(api, two.data + 1, two.len - 1, back, 8) == 1 &&
                  strcmp(back[0].message_id, entries[0].message_id) == 0,
              "render v%d: appends", api);
        buf_free(&two);
        buf_free(&out);
    }
}

/* bulk_unit_filter's keep: every address but those in the NULL-ended list
 * arg (exact text). */
static bool test_keep(void *arg, const char *a, size_t n)
{
    for (const char *const *d = arg; *d; d++)
        if (strlen(*d) == n && memcmp(*d, a, n) == 0)
            return false;
    return true;
}

/* bulk_unit_filter: suppressed recipients left out of a unit, both APIs. */
static void test_unit_filter(void)
{
    static const char *const drop[] = {"b@x.com", "c@x.com", "Z <z@x.com>", NULL};
    static const struct {
        int api;
        const char *unit, *want;
        int64_t kept;
    } cases[] = {
        {1,
         "Destination.ToAddresses.member.1=a%40x.com&Destination.ToAddresses.member.2=b%40x.com&"
         "Destination.ToAddresses.member.3=d%40x.com&Destination.CcAddresses.member.1=c%40x.com&"
         "Destination.BccAddresses.member.1=e%40x.com&ReplacementTemplateData=%7B%7D",
         "Destination.ToAddresses.member.1=a%40x.com&Destination.ToAddresses.member.2=d%40x.com&"
         "Destination.BccAddresses.member.1=e%40x.com&ReplacementTemplateData=%7B%7D",
         3},
        {1, "Destination.ToAddresses.member.1=b%40x.com&ReplacementTemplateData=%7B%7D",
         "ReplacementTemplateData=%7B%7D", 0},
        {1, "Destination.ToAddresses.member.1=a%40x.com",
         "Destination.ToAddresses.member.1=a%40x.com", 1},
        {2,
         "{\"Destination\":{\"ToAddresses\":[\"a@x.com\",\"b@x.com\"],\"CcAddresses\":[\"c@x.com\"]"
         "},"
         "\"ReplacementEmailContent\":{\"ReplacementTemplate\":{\"ReplacementTemplateData\":\"{}\"}"
         "}}",
         "{\"Destination\":{\"ToAddresses\":[\"a@x.com\"]},\"ReplacementEmailContent\":{"
         "\"ReplacementTemplate\":{\"ReplacementTemplateData\":\"{}\"}}}",
         1},
        {2, "{\"Destination\":{\"ToAddresses\":[\"Z <z@x.com>\"]}}", "{\"Destination\":{}}", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct buf out = BUF_INIT;
        int64_t k = bulk_unit_filter(cases[i].api, cases[i].unit, strlen(cases[i].unit), test_keep,
                                     (void *)drop, &out);
        CHECK(k == cases[i].kept, "filter %zu: kept %lld, want %lld", i, (long long)k,
              (long long)cases[i].kept);
        CHECK_STR(buf_cstr(&out), cases[i].want, "filter text");
        if (k > 0)
            CHECK(bulk_unit_cost(cases[i].api, out.data, out.len) == k, "filter %zu: cost", i);
        buf_free(&out);
    }
    struct buf out = BUF_INIT;
    CHECK(bulk_unit_filter(2, "[1]", 3, test_keep, (void *)drop, &out) == -1 && out.len == 0,
          "filter: not a unit");
    CHECK(bulk_unit_filter(1, "a=%zz", 5, test_keep, (void *)drop, &out) == -1 && out.len == 0,
          "filter: not a form");
    buf_free(&out);
}

int main(void)
{
    test_names();
    test_unit_filter();
    test_plan_cases();
    test_limits();
    test_units();
    test_status_class();
    test_answer_parse();
    test_answer_long();
    test_answer_render();
    return check_done("bulk");
}
