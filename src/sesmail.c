/* sesmail: the messages SES delivers, built from a send request. */
#include "sesmail.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "form.h"
#include "rfc5322.h"
#include "util.h"

/* Longest line of a 7bit body part (RFC 5322: 998 plus CRLF). */
#define SESMAIL_MAX_LINE 998
/* Longest ASCII Subject written as it is (longer ones become encoded words). */
#define SESMAIL_MAX_PLAIN_SUBJECT 900
/* Input bytes per RFC 2047 encoded word (60 base64 characters). */
#define SESMAIL_WORD_BYTES 45
/* Most addresses read from the To, Cc and Bcc fields of a raw message. */
#define SESMAIL_MAX_HEADER_ADDRS 1000
/* Longest v1 member list read (Destination.*.member.N). */
#define SESMAIL_MAX_MEMBERS 10000
/* Longest tag name or value (SES: 256 characters). */
#define SESMAIL_MAX_TAG 256

static const char sesmail_sim_domain[] = "simulator.amazonses.com";

/* Append a copy of s (n bytes) to the list. */
void sesmail_list_add(struct sesmail_list *l, const char *s, size_t n)
{
    l->v = xrealloc(l->v, (l->n + 1) * sizeof *l->v);
    l->v[l->n++] = xstrndup(s, n);
}

/* Free the list's strings and array. */
void sesmail_list_free(struct sesmail_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Release what m owns. */
void sesmail_cleanup(struct sesmail_msg *m)
{
    free(m->from);
    sesmail_list_free(&m->to);
    sesmail_list_free(&m->cc);
    sesmail_list_free(&m->bcc);
    sesmail_list_free(&m->reply_to);
    sesmail_list_free(&m->headers);
    sesmail_list_free(&m->tags);
    free(m->subject);
    free(m->text);
    free(m->html);
    free(m->template_name);
    free(m->template_data);
    buf_free(&m->raw);
    memset(m, 0, sizeof *m);
}

/* Recipients of m: To + Cc + Bcc. */
size_t sesmail_recipient_count(const struct sesmail_msg *m)
{
    return m->to.n + m->cc.n + m->bcc.n;
}

/* Recipient i of m in To, Cc, Bcc order. */
const char *sesmail_recipient(const struct sesmail_msg *m, size_t i)
{
    if (i < m->to.n)
        return m->to.v[i];
    i -= m->to.n;
    if (i < m->cc.n)
        return m->cc.v[i];
    i -= m->cc.n;
    if (i < m->bcc.n)
        return m->bcc.v[i];
    return NULL;
}

/* The addr-spec of addr into out. */
int sesmail_addr_spec(const char *addr, struct buf *out)
{
    size_t start, len;
    buf_reset(out);
    if (util_addr_spec(addr, strlen(addr), &start, &len) < 0 || len == 0)
        return -1;
    const char *at = memchr(addr + start, '@', len);
    if (at == NULL || at == addr + start || at == addr + start + len - 1)
        return -1;
    buf_add(out, addr + start, len);
    return 0;
}

/* True when the n bytes are all printable ASCII (space to '~'). */
static bool sesmail_printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

/* Check an address as SES does (printable ASCII, an addr-spec with a
 * domain). Returns 0, or -1 with e set. */
int sesmail_check_addr(const char *s, struct seserr *e)
{
    struct buf spec = BUF_INIT;
    int rc = 0;
    if (!sesmail_printable(s, strlen(s))) {
        seserr_set(e, SESERR_INVALID_PARAMETER, "Illegal address");
        rc = -1;
    } else if (sesmail_addr_spec(s, &spec) < 0 || strchr(spec.data, ' ') != NULL) {
        seserr_set(e, SESERR_INVALID_PARAMETER, "Missing final '@domain'");
        rc = -1;
    }
    buf_free(&spec);
    return rc;
}

/* Check every address of l. Returns 0, or -1 with e set. */
int sesmail_check_list(const struct sesmail_list *l, struct seserr *e)
{
    for (size_t i = 0; i < l->n; i++)
        if (sesmail_check_addr(l->v[i], e) < 0)
            return -1;
    return 0;
}

/* Append the non-empty values of the v1 list prefix.member.1, .2, ... */
void sesmail_v1_list(const struct form *f, const char *prefix, struct sesmail_list *l)
{
    char name[128];
    for (size_t i = 1; i <= SESMAIL_MAX_MEMBERS; i++) {
        snprintf(name, sizeof name, "%s.member.%zu", prefix, i);
        size_t len;
        const char *v = form_get(f, name, &len);
        if (v == NULL)
            break;
        if (len > 0)
            sesmail_list_add(l, v, strnlen(v, len));
    }
}

/* A copy of the v1 parameter name, or NULL when absent. */
static char *sesmail_v1_dup(const struct form *f, const char *name)
{
    size_t len;
    const char *v = form_get(f, name, &len);
    return v ? xstrndup(v, len) : NULL;
}

/* Read a v2 string array member of o into l. Returns 0, or -1 with e set. */
int sesmail_v2_list(json_t *o, const char *key, struct sesmail_list *l, struct seserr *e)
{
    json_t *a = json_object_get(o, key);
    if (a == NULL || json_is_null(a))
        return 0;
    if (!json_is_array(a)) {
        seserr_set(e, SESERR_BAD_REQUEST, "%s must be a list of strings", key);
        return -1;
    }
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v)) {
            seserr_set(e, SESERR_BAD_REQUEST, "%s must be a list of strings", key);
            return -1;
        }
        if (json_string_length(v) > 0)
            sesmail_list_add(l, json_string_value(v), strlen(json_string_value(v)));
    }
    return 0;
}

/* A copy of the string at o.key (o may be NULL), or NULL when absent. Sets
 * e and *bad when the member is there but not a string. */
static char *sesmail_v2_str(json_t *o, const char *key, bool *bad, struct seserr *e)
{
    json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
    if (v == NULL || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        seserr_set(e, SESERR_BAD_REQUEST, "%s must be a string", key);
        *bad = true;
        return NULL;
    }
    return xstrdup(json_string_value(v));
}

/* The object at o.key, or NULL. */
static json_t *sesmail_v2_obj(json_t *o, const char *key)
{
    json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
    return json_is_object(v) ? v : NULL;
}

/* True when name is a header field SES writes itself (a custom header may
 * not set it: a Bcc field would show hidden recipients). */
static bool sesmail_reserved_header(const char *name)
{
    static const char *const reserved[] = {"Bcc",
                                           "Cc",
                                           "Content-Transfer-Encoding",
                                           "Content-Type",
                                           "Date",
                                           "Delivered-To",
                                           "From",
                                           "Message-ID",
                                           "MIME-Version",
                                           "Reply-To",
                                           "Return-Path",
                                           "Subject",
                                           "To"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strcasecmp(name, reserved[i]) == 0)
            return true;
    return false;
}

/* Read the v2 headers ([{Name, Value}]) at c.key; fields SES writes itself
 * are refused. Returns 0, or -1 with e set. */
int sesmail_v2_headers(json_t *c, const char *key, struct sesmail_list *l, struct seserr *e)
{
    json_t *a = json_object_get(c, key);
    if (a == NULL || json_is_null(a))
        return 0;
    if (!json_is_array(a)) {
        seserr_set(e, SESERR_BAD_REQUEST, "%s must be a list", key);
        return -1;
    }
    size_t i;
    json_t *h;
    json_array_foreach(a, i, h)
    {
        json_t *n = json_object_get(h, "Name"), *v = json_object_get(h, "Value");
        if (!json_is_string(n) || !json_is_string(v)) {
            seserr_set(e, SESERR_BAD_REQUEST, "A header needs a Name and a Value");
            return -1;
        }
        const char *ns = json_string_value(n), *vs = json_string_value(v);
        size_t nl = strlen(ns), vl = strlen(vs);
        bool ok = nl >= 1 && nl <= 126 && vl >= 1 && vl <= 995 && sesmail_printable(vs, vl);
        for (size_t k = 0; ok && k < nl; k++)
            ok = ns[k] >= '!' && ns[k] <= '~' && ns[k] != ':';
        if (!ok || sesmail_reserved_header(ns)) {
            seserr_set(e, SESERR_BAD_REQUEST, "Invalid header");
            return -1;
        }
        struct buf line = BUF_INIT;
        buf_printf(&line, "%s: %s", ns, vs);
        sesmail_list_add(l, line.data, line.len);
        buf_free(&line);
    }
    return 0;
}

/* True when the n bytes at s are a tag name or value as SES takes them: at
 * most 256 ASCII letters, digits, '_' and '-' (a name at least one). */
static bool sesmail_tag_ok(const char *s, size_t n, bool name)
{
    if (n > SESMAIL_MAX_TAG || (name && n == 0))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Check a tag and add it to l as "Name=Value". Returns 0, or -1 with e set. */
static int sesmail_tag_add(struct sesmail_list *l, const char *name, size_t nl, const char *value,
                           size_t vl, struct seserr *e)
{
    if (!sesmail_tag_ok(name, nl, true) || !sesmail_tag_ok(value, vl, false)) {
        seserr_set(e, SESERR_INVALID_PARAMETER,
                   "Invalid tag: a tag name (1 to 256) and value (0 to 256) are ASCII letters, "
                   "digits, '_' and '-'.");
        return -1;
    }
    struct buf t = BUF_INIT;
    buf_add(&t, name, nl);
    buf_addc(&t, '=');
    buf_add(&t, value, vl);
    sesmail_list_add(l, t.data, t.len);
    buf_free(&t);
    return 0;
}

int sesmail_v1_tags(const struct form *f, const char *prefix, struct sesmail_list *l,
                    struct seserr *e)
{
    char name[160];
    for (size_t i = 1; i <= SESMAIL_MAX_MEMBERS; i++) {
        size_t nl = 0, vl = 0;
        snprintf(name, sizeof name, "%s.member.%zu.Name", prefix, i);
        const char *n = form_get(f, name, &nl);
        snprintf(name, sizeof name, "%s.member.%zu.Value", prefix, i);
        const char *v = form_get(f, name, &vl);
        if (n == NULL && v == NULL)
            return 0;
        if (n == NULL || v == NULL) {
            seserr_set(e, SESERR_MISSING_PARAMETER,
                       "The request must contain the parameter %s.member.%zu.%s.", prefix, i,
                       n == NULL ? "Name" : "Value");
            return -1;
        }
        if (sesmail_tag_add(l, n, nl, v, vl, e) < 0)
            return -1;
    }
    return 0;
}

int sesmail_v2_tags(json_t *o, const char *key, struct sesmail_list *l, struct seserr *e)
{
    json_t *a = json_is_object(o) ? json_object_get(o, key) : NULL;
    if (a == NULL || json_is_null(a))
        return 0;
    if (!json_is_array(a)) {
        seserr_set(e, SESERR_BAD_REQUEST, "%s must be a list", key);
        return -1;
    }
    size_t i;
    json_t *t;
    json_array_foreach(a, i, t)
    {
        json_t *n = json_object_get(t, "Name"), *v = json_object_get(t, "Value");
        if (!json_is_string(n) || !json_is_string(v)) {
            seserr_set(e, SESERR_BAD_REQUEST, "A tag needs a Name and a Value");
            return -1;
        }
        if (sesmail_tag_add(l, json_string_value(n), json_string_length(n), json_string_value(v),
                            json_string_length(v), e) < 0)
            return -1;
    }
    return 0;
}

/* Add the addr-specs of the raw message's To, Cc and Bcc fields to the
 * envelope. Returns 0, or -1 with e set. */
static int sesmail_raw_recipients(struct sesmail_msg *m, struct seserr *e)
{
    static const char *const fields[] = {"To", "Cc", "Bcc"};
    const char *msg = buf_cstr(&m->raw);
    for (size_t f = 0; f < 3; f++) {
        struct buf v = BUF_INIT;
        if (rfc5322_header_get_all(msg, m->raw.len, fields[f], &v) > 0) {
            struct rfc5322_addr_list l = {0};
            char why[128];
            if (rfc5322_parse_addresses(buf_cstr(&v), v.len, SESMAIL_MAX_HEADER_ADDRS, &l, why,
                                        sizeof why) < 0) {
                seserr_set(e, SESERR_INVALID_PARAMETER, "Illegal address in the %s header: %s",
                           fields[f], why);
                buf_free(&v);
                return -1;
            }
            for (size_t i = 0; i < l.n; i++)
                sesmail_list_add(&m->to, l.v[i].addr, strlen(l.v[i].addr));
            rfc5322_addr_list_free(&l);
        }
        buf_free(&v);
    }
    return 0;
}

/* Read a v1 send. Returns 0, or -1 with e set. */
static int sesmail_from_v1(const struct sesreq *r, struct sesmail_msg *m, struct seserr *e)
{
    const struct form *f = &r->form;
    if (sesmail_v1_tags(f, "Tags", &m->tags, e) < 0)
        return -1;
    if (r->raw) {
        m->kind = SESMAIL_RAW;
        size_t len;
        const char *data = form_get(f, "RawMessage.Data", &len);
        if (data == NULL || util_base64_decode(data, len, &m->raw) < 0 || m->raw.len == 0) {
            seserr_set(e, SESERR_INVALID_PARAMETER, "Invalid base64 in the raw message data.");
            return -1;
        }
        sesmail_v1_list(f, "Destinations", &m->to);
        return 0;
    }
    m->from = sesmail_v1_dup(f, "Source");
    sesmail_v1_list(f, "Destination.ToAddresses", &m->to);
    sesmail_v1_list(f, "Destination.CcAddresses", &m->cc);
    sesmail_v1_list(f, "Destination.BccAddresses", &m->bcc);
    sesmail_v1_list(f, "ReplyToAddresses", &m->reply_to);
    if (strcmp(r->action, "SendTemplatedEmail") == 0) {
        m->kind = SESMAIL_TEMPLATE;
        m->template_name = sesmail_v1_dup(f, "Template");
        m->template_data = sesmail_v1_dup(f, "TemplateData");
        if (m->template_name == NULL || m->template_name[0] == '\0') {
            seserr_set(e, SESERR_MISSING_PARAMETER,
                       "The request must contain the parameter Template.");
            return -1;
        }
        if (m->template_data == NULL) {
            seserr_set(e, SESERR_MISSING_PARAMETER,
                       "The request must contain the parameter TemplateData.");
            return -1;
        }
        return 0;
    }
    m->kind = SESMAIL_SIMPLE;
    m->subject = sesmail_v1_dup(f, "Message.Subject.Data");
    if (m->subject == NULL) {
        seserr_set(e, SESERR_MISSING_PARAMETER,
                   "The request must contain the parameter Message.Subject.Data.");
        return -1;
    }
    m->text = sesmail_v1_dup(f, "Message.Body.Text.Data");
    m->html = sesmail_v1_dup(f, "Message.Body.Html.Data");
    return 0;
}

/* Read v2 Simple content s. Returns 0, or -1 with e set. */
static int sesmail_v2_simple(json_t *s, struct sesmail_msg *m, struct seserr *e)
{
    bool bad = false;
    m->kind = SESMAIL_SIMPLE;
    json_t *subject = sesmail_v2_obj(s, "Subject"), *body = sesmail_v2_obj(s, "Body");
    if (subject == NULL || body == NULL) {
        seserr_set(e, SESERR_BAD_REQUEST, "Content.Simple needs a Subject and a Body");
        return -1;
    }
    m->subject = sesmail_v2_str(subject, "Data", &bad, e);
    m->text = sesmail_v2_str(sesmail_v2_obj(body, "Text"), "Data", &bad, e);
    m->html = sesmail_v2_str(sesmail_v2_obj(body, "Html"), "Data", &bad, e);
    if (bad)
        return -1;
    if (m->subject == NULL) {
        seserr_set(e, SESERR_BAD_REQUEST, "Content.Simple.Subject.Data is required");
        return -1;
    }
    return sesmail_v2_headers(s, "Headers", &m->headers, e);
}

/* Read v2 Template content t. Returns 0, or -1 with e set. */
static int sesmail_v2_template(json_t *t, struct sesmail_msg *m, struct seserr *e)
{
    bool bad = false;
    m->kind = SESMAIL_TEMPLATE;
    m->template_name = sesmail_v2_str(t, "TemplateName", &bad, e);
    char *arn = sesmail_v2_str(t, "TemplateArn", &bad, e);
    if (m->template_name == NULL && arn != NULL) {
        const char *slash = strrchr(arn, '/');
        m->template_name = xstrdup(slash ? slash + 1 : arn);
    }
    free(arn);
    json_t *inline_content = sesmail_v2_obj(t, "TemplateContent");
    if (inline_content != NULL) {
        m->subject = sesmail_v2_str(inline_content, "Subject", &bad, e);
        m->text = sesmail_v2_str(inline_content, "Text", &bad, e);
        m->html = sesmail_v2_str(inline_content, "Html", &bad, e);
    }
    m->template_data = sesmail_v2_str(t, "TemplateData", &bad, e);
    if (bad)
        return -1;
    if (m->template_name == NULL && inline_content == NULL) {
        seserr_set(e, SESERR_BAD_REQUEST,
                   "Content.Template needs a TemplateName, TemplateArn or TemplateContent");
        return -1;
    }
    if (m->template_data == NULL)
        m->template_data = xstrdup("{}");
    return sesmail_v2_headers(t, "Headers", &m->headers, e);
}

/* Read a v2 SendEmail body. Returns 0, or -1 with e set. */
static int sesmail_from_v2(const struct sesreq *r, struct sesmail_msg *m, struct seserr *e)
{
    json_t *body = r->json;
    bool bad = false;
    json_t *content = sesmail_v2_obj(body, "Content");
    json_t *dest = sesmail_v2_obj(body, "Destination");
    if (content == NULL) {
        seserr_set(e, SESERR_BAD_REQUEST, "Content is required");
        return -1;
    }
    m->from = sesmail_v2_str(body, "FromEmailAddress", &bad, e);
    if (bad)
        return -1;
    json_t *raw = sesmail_v2_obj(content, "Raw");
    json_t *simple = sesmail_v2_obj(content, "Simple");
    json_t *tmpl = sesmail_v2_obj(content, "Template");
    json_t *which = simple ? simple : tmpl;
    if (which != NULL && json_object_get(which, "Attachments") != NULL &&
        !json_is_null(json_object_get(which, "Attachments"))) {
        seserr_set(e, SESERR_BAD_REQUEST, "The sesgate sandbox does not deliver attachments.");
        return -1;
    }
    if (dest != NULL) {
        struct sesmail_list *cc = raw ? &m->to : &m->cc, *bcc = raw ? &m->to : &m->bcc;
        if (sesmail_v2_list(dest, "ToAddresses", &m->to, e) < 0 ||
            sesmail_v2_list(dest, "CcAddresses", cc, e) < 0 ||
            sesmail_v2_list(dest, "BccAddresses", bcc, e) < 0)
            return -1;
    }
    if (sesmail_v2_list(body, "ReplyToAddresses", &m->reply_to, e) < 0 ||
        sesmail_v2_tags(body, "EmailTags", &m->tags, e) < 0)
        return -1;
    if (raw != NULL) {
        m->kind = SESMAIL_RAW;
        size_t len = 0;
        const char *data = sesreq_raw_data(r, &len);
        if (data == NULL || util_base64_decode(data, len, &m->raw) < 0 || m->raw.len == 0) {
            seserr_set(e, SESERR_BAD_REQUEST, "Content.Raw.Data is not valid base64.");
            return -1;
        }
        return 0;
    }
    if (simple != NULL)
        return sesmail_v2_simple(simple, m, e);
    if (tmpl != NULL)
        return sesmail_v2_template(tmpl, m, e);
    seserr_set(e, SESERR_BAD_REQUEST, "Content must hold exactly one of Simple, Raw or Template");
    return -1;
}

/* Read the send in r into out and check its addresses. */
int sesmail_from_request(const struct sesreq *r, struct sesmail_msg *out, struct seserr *e)
{
    if (r->kind != SESREQ_SEND || r->action == NULL) {
        seserr_set(e, SESERR_INVALID_PARAMETER, "Not a send request.");
        return -1;
    }
    int rc = r->api == SESREQ_V2 ? sesmail_from_v2(r, out, e) : sesmail_from_v1(r, out, e);
    if (rc < 0)
        return -1;
    if (out->kind == SESMAIL_RAW) {
        if (out->from == NULL && r->nfrom > 0)
            out->from = xstrdup(r->from[0]);
        if (out->to.n == 0 && sesmail_raw_recipients(out, e) < 0)
            return -1;
    }
    size_t n = sesmail_recipient_count(out);
    if (n == 0) {
        seserr_set(e, SESERR_INVALID_PARAMETER, "Missing final '@domain'");
        return -1;
    }
    if (n > SESMAIL_MAX_RECIPIENTS) {
        seserr_set(e, SESERR_INVALID_PARAMETER, "Recipient count exceeds %d.",
                   SESMAIL_MAX_RECIPIENTS);
        return -1;
    }
    if (sesmail_check_list(&out->to, e) < 0 || sesmail_check_list(&out->cc, e) < 0 ||
        sesmail_check_list(&out->bcc, e) < 0 || sesmail_check_list(&out->reply_to, e) < 0)
        return -1;
    if (out->kind != SESMAIL_RAW && (out->from == NULL || sesmail_check_addr(out->from, e) < 0)) {
        if (out->from == NULL)
            seserr_set(e, SESERR_MISSING_PARAMETER, "The request must contain a sender address.");
        return -1;
    }
    return 0;
}

/* Append the HTML-escaped n bytes at s (Handlebars' set of characters). */
static void sesmail_html_escape(const char *s, size_t n, struct buf *out)
{
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '&':
            buf_adds(out, "&amp;");
            break;
        case '<':
            buf_adds(out, "&lt;");
            break;
        case '>':
            buf_adds(out, "&gt;");
            break;
        case '"':
            buf_adds(out, "&quot;");
            break;
        case '\'':
            buf_adds(out, "&#x27;");
            break;
        case '`':
            buf_adds(out, "&#x60;");
            break;
        case '=':
            buf_adds(out, "&#x3D;");
            break;
        default:
            buf_addc(out, s[i]);
        }
    }
}

/* The member of data at the dotted path p (n bytes), or NULL. */
static const json_t *sesmail_lookup(const json_t *data, const char *p, size_t n)
{
    const json_t *cur = data;
    size_t i = 0;
    while (cur != NULL && i <= n) {
        const char *dot = memchr(p + i, '.', n - i);
        size_t end = dot ? (size_t)(dot - p) : n;
        if (!json_is_object(cur) || end == i)
            return NULL;
        char key[256];
        if (end - i >= sizeof key)
            return NULL;
        memcpy(key, p + i, end - i);
        key[end - i] = '\0';
        cur = json_object_get(cur, key);
        if (dot == NULL)
            return cur;
        i = end + 1;
    }
    return NULL;
}

/* Append the text of a template value (strings as they are, numbers and
 * booleans as JSON, others nothing). */
static void sesmail_value_text(const json_t *v, bool escape, struct buf *out)
{
    struct buf tmp = BUF_INIT;
    if (json_is_string(v)) {
        buf_add(&tmp, json_string_value(v), json_string_length(v));
    } else if (json_is_integer(v)) {
        buf_printf(&tmp, "%lld", (long long)json_integer_value(v));
    } else if (json_is_real(v)) {
        buf_printf(&tmp, "%.17g", json_real_value(v));
    } else if (json_is_boolean(v)) {
        buf_adds(&tmp, json_is_true(v) ? "true" : "false");
    }
    if (escape)
        sesmail_html_escape(tmp.data ? tmp.data : "", tmp.len, out);
    else if (tmp.len)
        buf_add(out, tmp.data, tmp.len);
    buf_free(&tmp);
}

/* True when the n bytes at p form a variable path. */
static bool sesmail_is_path(const char *p, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* Render the template text with data. */
void sesmail_render(const char *tmpl, size_t len, const json_t *data, bool html, struct buf *out)
{
    size_t i = 0;
    while (i < len) {
        const char *open = NULL;
        for (size_t k = i; k + 1 < len; k++) {
            if (tmpl[k] == '{' && tmpl[k + 1] == '{') {
                open = tmpl + k;
                break;
            }
        }
        if (open == NULL) {
            buf_add(out, tmpl + i, len - i);
            return;
        }
        size_t o = (size_t)(open - tmpl);
        buf_add(out, tmpl + i, o - i);
        bool triple = o + 2 < len && tmpl[o + 2] == '{';
        size_t start = o + (triple ? 3 : 2);
        const char *close = NULL;
        for (size_t k = start; k + 1 < len; k++) {
            if (tmpl[k] == '}' && tmpl[k + 1] == '}') {
                close = tmpl + k;
                break;
            }
        }
        size_t c = close ? (size_t)(close - tmpl) : len;
        size_t after = c + (triple ? 3 : 2);
        if (close == NULL || (triple && (c + 2 >= len || tmpl[c + 2] != '}'))) {
            buf_add(out, "{{", 2);
            i = o + 2;
            continue;
        }
        size_t b = start, e = c;
        while (b < e && tmpl[b] == ' ')
            b++;
        while (e > b && tmpl[e - 1] == ' ')
            e--;
        if (!sesmail_is_path(tmpl + b, e - b)) {
            buf_add(out, "{{", 2);
            i = o + 2;
            continue;
        }
        const json_t *v = sesmail_lookup(data, tmpl + b, e - b);
        if (v != NULL)
            sesmail_value_text(v, html && !triple, out);
        i = after;
    }
}

/* Render one template part into *dst (NULL part: *dst stays NULL). */
static void sesmail_render_part(const char *part, const json_t *data, bool html, char **dst)
{
    if (part == NULL)
        return;
    struct buf b = BUF_INIT;
    sesmail_render(part, strlen(part), data, html, &b);
    free(*dst);
    *dst = xstrdup(buf_cstr(&b));
    buf_free(&b);
}

/* Fill m's parts from the template parts and m->template_data. */
int sesmail_apply_template(struct sesmail_msg *m, const char *subject, const char *text,
                           const char *html, struct seserr *e)
{
    json_error_t jerr;
    const char *src = m->template_data ? m->template_data : "{}";
    json_t *data = json_loads(src, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(data)) {
        json_decref(data);
        seserr_set(e, SESERR_INVALID_PARAMETER, "TemplateData is not a JSON object.");
        return -1;
    }
    sesmail_render_part(subject, data, false, &m->subject);
    sesmail_render_part(text, data, false, &m->text);
    sesmail_render_part(html, data, true, &m->html);
    if (m->subject == NULL)
        m->subject = xstrdup("");
    json_decref(data);
    return 0;
}

/* Append the base64 of n bytes at s, without line breaks. */
static void sesmail_b64(const unsigned char *s, size_t n, struct buf *out)
{
    buf_reserve(out, (n + 2) / 3 * 4 + 1);
    int k = EVP_EncodeBlock((unsigned char *)out->data + out->len, s, (int)n);
    out->len += (size_t)k;
    out->data[out->len] = '\0';
}

/* Append s as a Subject field value: as it is when it is short printable
 * ASCII, else as RFC 2047 "B" encoded words split on character boundaries
 * and folded. */
static void sesmail_add_subject(const char *s, struct buf *out)
{
    size_t n = strlen(s);
    buf_adds(out, "Subject: ");
    if (sesmail_printable(s, n) && n <= SESMAIL_MAX_PLAIN_SUBJECT) {
        buf_add(out, s, n);
        buf_adds(out, "\r\n");
        return;
    }
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    bool first = true;
    while (i < n || first) {
        size_t end = i;
        while (end < n) {
            size_t k = util_utf8_len(p + end, n - end);
            if (k == 0)
                k = 1;
            if (end + k - i > SESMAIL_WORD_BYTES && end > i)
                break;
            end += k;
        }
        if (!first)
            buf_adds(out, "\r\n ");
        buf_adds(out, "=?UTF-8?B?");
        sesmail_b64(p + i, end - i, out);
        buf_adds(out, "?=");
        first = false;
        i = end;
    }
    buf_adds(out, "\r\n");
}

/* Append an address list field, folded after each comma when long. */
static void sesmail_add_list_field(const char *name, const struct sesmail_list *l, struct buf *out)
{
    if (l->n == 0)
        return;
    size_t col = strlen(name) + 2;
    buf_printf(out, "%s: ", name);
    for (size_t i = 0; i < l->n; i++) {
        size_t len = strlen(l->v[i]);
        if (i > 0) {
            if (col + len + 2 > 76) {
                buf_adds(out, ",\r\n ");
                col = 1;
            } else {
                buf_adds(out, ", ");
                col += 2;
            }
        }
        buf_add(out, l->v[i], len);
        col += len;
    }
    buf_adds(out, "\r\n");
}

/* s with every line end (LF, CR or CRLF) made CRLF, into out. */
static void sesmail_crlf(const char *s, struct buf *out)
{
    for (size_t i = 0; s[i] != '\0'; i++) {
        if (s[i] == '\r') {
            buf_adds(out, "\r\n");
            if (s[i + 1] == '\n')
                i++;
        } else if (s[i] == '\n') {
            buf_adds(out, "\r\n");
        } else {
            buf_addc(out, s[i]);
        }
    }
}

/* True when the CRLF text t (n bytes) can travel as 7bit: ASCII without NUL
 * and lines of at most SESMAIL_MAX_LINE bytes. */
static bool sesmail_is_7bit(const char *t, size_t n)
{
    size_t line = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c == 0 || c >= 0x80)
            return false;
        if (c == '\n') {
            line = 0;
        } else if (++line > SESMAIL_MAX_LINE + 1) {
            return false;
        }
    }
    return line <= SESMAIL_MAX_LINE;
}

/* Append the CRLF text t (n bytes) quoted-printable (RFC 2045), lines of
 * at most 76 characters, line ends as hard CRLF breaks. */
static void sesmail_qp(const char *t, size_t n, struct buf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t col = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c == '\r' && i + 1 < n && t[i + 1] == '\n') {
            buf_adds(out, "\r\n");
            col = 0;
            i++;
            continue;
        }
        bool at_eol = i + 1 == n || (t[i + 1] == '\r' && i + 2 < n && t[i + 2] == '\n');
        bool literal = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !at_eol);
        size_t w = literal ? 1 : 3;
        if (col + w > 75) {
            buf_adds(out, "=\r\n");
            col = 0;
        }
        if (literal) {
            buf_addc(out, (char)c);
        } else {
            buf_addc(out, '=');
            buf_addc(out, hex[c >> 4]);
            buf_addc(out, hex[c & 15]);
        }
        col += w;
    }
}

/* Append n bytes base64-encoded in lines of 76 characters. */
static void sesmail_b64_lines(const char *t, size_t n, struct buf *out)
{
    for (size_t i = 0; i < n; i += 57) {
        size_t k = n - i < 57 ? n - i : 57;
        sesmail_b64((const unsigned char *)t + i, k, out);
        buf_adds(out, "\r\n");
    }
}

/* Append one body part: its Content-Type and Content-Transfer-Encoding
 * fields, the empty line and the encoded text. The encoding is 7bit when
 * the text allows it (and does not hold avoid, the multipart boundary),
 * else quoted-printable for mostly ASCII text, else base64. */
static void sesmail_add_part(const char *type, const char *text, const char *avoid, struct buf *out)
{
    struct buf t = BUF_INIT;
    sesmail_crlf(text, &t);
    const char *d = buf_cstr(&t);
    size_t high = 0;
    for (size_t i = 0; i < t.len; i++)
        high += (unsigned char)d[i] >= 0x80;
    buf_printf(out, "Content-Type: %s; charset=UTF-8\r\n", type);
    if (sesmail_is_7bit(d, t.len) && (avoid == NULL || strstr(d, avoid) == NULL)) {
        buf_adds(out, "Content-Transfer-Encoding: 7bit\r\n\r\n");
        buf_add(out, d, t.len);
    } else if (high * 4 <= t.len) {
        buf_adds(out, "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
        sesmail_qp(d, t.len, out);
    } else {
        buf_adds(out, "Content-Transfer-Encoding: base64\r\n\r\n");
        sesmail_b64_lines(d, t.len, out);
    }
    buf_free(&t);
}

/* Build a formatted (Simple or Template) message. */
static void sesmail_build_formatted(const struct sesmail_msg *m, const char *message_id,
                                    const char *domain, const char *date, struct buf *out)
{
    struct sesmail_list from = {0};
    char *one[1] = {m->from};
    from.v = one;
    from.n = 1;
    sesmail_add_list_field("From", &from, out);
    sesmail_add_list_field("Reply-To", &m->reply_to, out);
    sesmail_add_list_field("To", &m->to, out);
    sesmail_add_list_field("Cc", &m->cc, out);
    sesmail_add_subject(m->subject ? m->subject : "", out);
    buf_printf(out, "Date: %s\r\n", date);
    buf_printf(out, "Message-ID: <%s@%s>\r\n", message_id, domain);
    for (size_t i = 0; i < m->headers.n; i++)
        buf_printf(out, "%s\r\n", m->headers.v[i]);
    buf_adds(out, "MIME-Version: 1.0\r\n");
    if (m->text != NULL && m->html != NULL) {
        char boundary[80];
        snprintf(boundary, sizeof boundary, "=_sesgate_%.16s", message_id);
        buf_printf(out, "Content-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n", boundary);
        buf_printf(out, "--%s\r\n", boundary);
        sesmail_add_part("text/plain", m->text, boundary, out);
        buf_printf(out, "\r\n--%s\r\n", boundary);
        sesmail_add_part("text/html", m->html, boundary, out);
        buf_printf(out, "\r\n--%s--\r\n", boundary);
    } else if (m->html != NULL) {
        sesmail_add_part("text/html", m->html, NULL, out);
    } else {
        sesmail_add_part("text/plain", m->text ? m->text : "", NULL, out);
    }
}

/* True when the header line at s (n bytes, up to its end) is field name. */
static bool sesmail_field_is(const char *s, size_t n, const char *name)
{
    size_t k = strlen(name);
    if (n <= k || strncasecmp(s, name, k) != 0)
        return false;
    size_t i = k;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i < n && s[i] == ':';
}

/* Copy the header block raw[0..hend) without its Bcc fields (continuation
 * lines included). */
static void sesmail_copy_without_bcc(const char *raw, size_t hend, struct buf *out)
{
    size_t i = 0;
    bool skipping = false;
    while (i < hend) {
        const char *nl = memchr(raw + i, '\n', hend - i);
        size_t end = nl ? (size_t)(nl - raw) + 1 : hend;
        bool cont = raw[i] == ' ' || raw[i] == '\t';
        if (!cont)
            skipping = sesmail_field_is(raw + i, end - i, "Bcc");
        if (!skipping)
            buf_add(out, raw + i, end - i);
        i = end;
    }
}

/* Build a raw message: Message-ID and Date added when missing, Bcc fields
 * removed, every other byte kept. */
static void sesmail_build_raw(const struct sesmail_msg *m, const char *message_id,
                              const char *domain, const char *date, const char *eol,
                              struct buf *out)
{
    const char *raw = m->raw.data;
    size_t len = m->raw.len;
    size_t hend = rfc5322_header_end(raw, len);
    struct buf tmp = BUF_INIT;
    if (rfc5322_header_get(raw, len, "Message-ID", &tmp) != 0)
        buf_printf(out, "Message-ID: <%s@%s>%s", message_id, domain, eol);
    buf_reset(&tmp);
    if (rfc5322_header_get(raw, len, "Date", &tmp) != 0)
        buf_printf(out, "Date: %s%s", date, eol);
    buf_free(&tmp);
    sesmail_copy_without_bcc(raw, hend, out);
    buf_add(out, raw + hend, len - hend);
}

/* Build the message recipient receives. */
int sesmail_build(const struct sesmail_msg *m, const char *recipient, const char *message_id,
                  const char *domain, const char *date, struct buf *out, struct seserr *e)
{
    struct buf spec = BUF_INIT;
    if (sesmail_addr_spec(recipient, &spec) < 0 || !sesmail_printable(spec.data, spec.len)) {
        buf_free(&spec);
        seserr_set(e, SESERR_INVALID_PARAMETER, "Missing final '@domain'");
        return -1;
    }
    const char *eol = "\r\n";
    if (m->kind == SESMAIL_RAW && m->raw.len == 0) {
        buf_free(&spec);
        seserr_set(e, SESERR_INVALID_PARAMETER, "The raw message is empty.");
        return -1;
    }
    if (m->kind == SESMAIL_RAW) {
        const char *nl = memchr(m->raw.data, '\n', m->raw.len);
        if (nl != NULL && (nl == m->raw.data || nl[-1] != '\r'))
            eol = "\n";
    }
    buf_printf(out, "Delivered-To: %s%s", spec.data, eol);
    buf_free(&spec);
    if (m->kind == SESMAIL_RAW)
        sesmail_build_raw(m, message_id, domain, date, eol, out);
    else
        sesmail_build_formatted(m, message_id, domain, date, out);
    return 0;
}

static const char sesmail_days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char sesmail_months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Format t as an RFC 5322 date in UTC. */
void sesmail_date(time_t t, char out[64])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 64, "%s, %02d %s %04d %02d:%02d:%02d +0000", sesmail_days[tm.tm_wday % 7],
             tm.tm_mday, sesmail_months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
             tm.tm_sec);
}

/* Format ms as ISO 8601 UTC with milliseconds. */
void sesmail_iso_time(int64_t ms, char out[64])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)((ms % 1000 + 1000) % 1000));
}

/* A version 4 UUID from rnd. */
void sesmail_uuid(const unsigned char rnd[16], char out[37])
{
    unsigned char b[16];
    memcpy(b, rnd, 16);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    char hex[33];
    util_hex(b, 16, hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

/* An SES-shaped MessageId from ms and rnd. */
void sesmail_message_id(int64_t ms, const unsigned char rnd[16],
                        char out[SESMAIL_MESSAGE_ID_LEN + 1])
{
    char uuid[37];
    sesmail_uuid(rnd, uuid);
    snprintf(out, SESMAIL_MESSAGE_ID_LEN + 1, "0100%012llx-%s-000000",
             (unsigned long long)ms & 0xffffffffffffull, uuid);
}

/* The simulator outcome of addr. */
enum sesmail_sim sesmail_simulator(const char *addr)
{
    static const struct {
        const char *local;
        enum sesmail_sim sim;
    } locals[] = {{"success", SESMAIL_SIM_SUCCESS},
                  {"bounce", SESMAIL_SIM_BOUNCE},
                  {"ooto", SESMAIL_SIM_OOTO},
                  {"complaint", SESMAIL_SIM_COMPLAINT},
                  {"suppressionlist", SESMAIL_SIM_SUPPRESSED}};
    const char *at = strrchr(addr, '@');
    if (at == NULL || strcasecmp(at + 1, sesmail_sim_domain) != 0)
        return SESMAIL_SIM_NONE;
    size_t n = (size_t)(at - addr);
    const char *plus = memchr(addr, '+', n);
    if (plus != NULL)
        n = (size_t)(plus - addr);
    for (size_t i = 0; i < sizeof locals / sizeof locals[0]; i++)
        if (strlen(locals[i].local) == n && strncasecmp(addr, locals[i].local, n) == 0)
            return locals[i].sim;
    return SESMAIL_SIM_NONE;
}

/* The outcome name of s for the response header. */
const char *sesmail_sim_name(enum sesmail_sim s)
{
    switch (s) {
    case SESMAIL_SIM_BOUNCE:
        return "bounce";
    case SESMAIL_SIM_SUPPRESSED:
        return "suppressed";
    case SESMAIL_SIM_COMPLAINT:
        return "complaint";
    case SESMAIL_SIM_OOTO:
        return "ooto";
    default:
        return NULL;
    }
}

/* Append j as indented JSON text and a newline; takes j's reference. */
static void sesmail_json_out(json_t *j, struct buf *out)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (s == NULL)
        abort();
    buf_adds(out, s);
    buf_addc(out, '\n');
    free(s);
}

/* Append the notification for a simulated delivery, bounce or complaint. */
void sesmail_notification(enum sesmail_sim s, const char *message_id, const char *source,
                          const char *recipient, const struct sesmail_msg *m, const char *iso,
                          const char *feedback_id, struct buf *out)
{
    json_t *dest = json_array();
    struct buf spec = BUF_INIT;
    for (size_t i = 0; i < sesmail_recipient_count(m); i++)
        if (sesmail_addr_spec(sesmail_recipient(m, i), &spec) == 0)
            json_array_append_new(dest, json_string(spec.data));
    buf_free(&spec);
    json_t *mail = json_pack("{s:s, s:s*, s:s, s:o}", "timestamp", iso, "source", source,
                             "messageId", message_id, "destination", dest);
    if (m->tags.n > 0) {
        /* as SES's event records carry them: every name with its values */
        json_t *tags = json_object();
        for (size_t i = 0; i < m->tags.n; i++) {
            const char *eq = strchr(m->tags.v[i], '=');
            char *name = xstrndup(m->tags.v[i], (size_t)(eq - m->tags.v[i]));
            json_t *vals = json_object_get(tags, name);
            if (vals == NULL) {
                vals = json_array();
                json_object_set_new(tags, name, vals);
            }
            json_array_append_new(vals, json_string(eq + 1));
            free(name);
        }
        json_object_set_new(mail, "tags", tags);
    }
    json_t *root;
    if (s == SESMAIL_SIM_NONE || s == SESMAIL_SIM_SUCCESS || s == SESMAIL_SIM_OOTO) {
        /* the recipient's server took the message */
        root = json_pack("{s:s, s:o, s:{s:s, s:i, s:[s], s:s, s:s, s:s}}", "notificationType",
                         "Delivery", "mail", mail, "delivery", "timestamp", iso,
                         "processingTimeMillis", 0, "recipients", recipient, "smtpResponse",
                         "250 2.6.0 Message received", "remoteMtaIp", "127.0.0.1", "reportingMTA",
                         "sandbox.sesgate.invalid");
    } else if (s == SESMAIL_SIM_COMPLAINT) {
        root = json_pack("{s:s, s:{s:s, s:[{s:s}], s:s, s:s, s:s, s:s}, s:o}", "notificationType",
                         "Complaint", "complaint", "feedbackId", feedback_id,
                         "complainedRecipients", "emailAddress", recipient, "timestamp", iso,
                         "userAgent", "Amazon SES Mailbox Simulator", "complaintFeedbackType",
                         "abuse", "arrivalDate", iso, "mail", mail);
    } else {
        bool sup = s == SESMAIL_SIM_SUPPRESSED;
        const char *diag = sup ? "Amazon SES has suppressed sending to this address because it "
                                 "has a recent history of bouncing as an invalid address."
                               : "smtp; 550 5.1.1 user unknown";
        root = json_pack(
            "{s:s, s:{s:s, s:s, s:s, s:[{s:s, s:s, s:s, s:s}], s:s, s:s}, s:o}", "notificationType",
            "Bounce", "bounce", "feedbackId", feedback_id, "bounceType", "Permanent",
            "bounceSubType", sup ? "OnAccountSuppressionList" : "General", "bouncedRecipients",
            "emailAddress", recipient, "action", "failed", "status", "5.1.1", "diagnosticCode",
            diag, "timestamp", iso, "reportingMTA", "dns; sandbox.sesgate.invalid", "mail", mail);
    }
    if (root == NULL)
        abort();
    sesmail_json_out(root, out);
}

/* Append the simulator's out-of-office reply. */
void sesmail_ooto_reply(const char *recipient, const char *sender, const char *message_id,
                        const char *domain, const char *reply_id, const char *date, struct buf *out)
{
    buf_printf(out,
               "Delivered-To: %s\r\n"
               "From: %s\r\n"
               "To: %s\r\n"
               "Subject: Out of the office\r\n"
               "Date: %s\r\n"
               "Message-ID: <%s@%s>\r\n"
               "In-Reply-To: <%s@%s>\r\n"
               "References: <%s@%s>\r\n"
               "Auto-Submitted: auto-replied\r\n"
               "MIME-Version: 1.0\r\n"
               "Content-Type: text/plain; charset=UTF-8\r\n"
               "Content-Transfer-Encoding: 7bit\r\n"
               "\r\n"
               "I am out of the office and will answer your message when I return.\r\n",
               sender, recipient, sender, date, reply_id, domain, message_id, domain, message_id,
               domain);
}
