/* sesbulk: SES's bulk templated sends, read and rendered per destination. */
#include "sesbulk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bulk.h"
#include "form.h"
#include "util.h"

/* Digits of a destination index read from a v1 name (more: too many). */
#define SESBULK_MAX_INDEX_DIGITS 4

/* Free one destination. */
static void sesbulk_entry_free(struct sesbulk_entry *d)
{
    sesmail_list_free(&d->to);
    sesmail_list_free(&d->cc);
    sesmail_list_free(&d->bcc);
    sesmail_list_free(&d->tags);
    sesmail_list_free(&d->headers);
    free(d->data);
}

void sesbulk_cleanup(struct sesbulk *b)
{
    free(b->from);
    sesmail_list_free(&b->reply_to);
    free(b->template_name);
    free(b->subject);
    free(b->text);
    free(b->html);
    json_decref(b->defaults);
    sesmail_list_free(&b->tags);
    sesmail_list_free(&b->headers);
    for (size_t i = 0; i < b->n; i++)
        sesbulk_entry_free(&b->entries[i]);
    free(b->entries);
    memset(b, 0, sizeof *b);
}

/* Set e for a missing v1 parameter. Returns -1. */
static int sesbulk_missing(struct seserr *e, const char *name)
{
    seserr_set(e, SESERR_MISSING_PARAMETER, "The request must contain the parameter %s.", name);
    return -1;
}

/* Set e for a call naming more destinations than SES takes. Returns -1. */
static int sesbulk_too_many(struct seserr *e)
{
    seserr_set(e, SESERR_INVALID_PARAMETER, "Destination count exceeds %d.",
               SESBULK_MAX_DESTINATIONS);
    return -1;
}

/* Make room for n destinations (zeroed). */
static void sesbulk_alloc(struct sesbulk *b, size_t n)
{
    b->entries = xcalloc(n ? n : 1, sizeof *b->entries);
    b->n = n;
}

/* The highest N of the v1 parameters Destinations.member.N.*, or
 * SESBULK_MAX_DESTINATIONS + 1 when one is larger (or absurdly long). */
static size_t sesbulk_v1_count(const struct form *f)
{
    static const char pre[] = "Destinations.member.";
    size_t max = 0;
    for (size_t i = 0; i < f->n; i++) {
        const char *name = f->params[i].name;
        if (strncmp(name, pre, sizeof pre - 1) != 0)
            continue;
        const char *p = name + sizeof pre - 1;
        size_t digits = strspn(p, "0123456789");
        if (digits == 0 || p[digits] != '.')
            continue;
        if (digits > SESBULK_MAX_INDEX_DIGITS)
            return SESBULK_MAX_DESTINATIONS + 1;
        size_t n = (size_t)strtoul(p, NULL, 10);
        if (n > max)
            max = n;
    }
    return max > SESBULK_MAX_DESTINATIONS ? SESBULK_MAX_DESTINATIONS + 1 : max;
}

/* A copy of the v1 parameter name, or NULL when absent. */
static char *sesbulk_v1_dup(const struct form *f, const char *name)
{
    size_t len;
    const char *v = form_get(f, name, &len);
    return v ? xstrndup(v, strnlen(v, len)) : NULL;
}

/* Parse text as the default template data (a JSON object) into b. */
static int sesbulk_defaults(struct sesbulk *b, const char *text, const char *what, struct seserr *e)
{
    json_error_t jerr;
    b->defaults = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(b->defaults)) {
        seserr_set(e, SESERR_INVALID_PARAMETER, "%s is not a JSON object.", what);
        return -1;
    }
    return 0;
}

/* Read a v1 SendBulkTemplatedEmail. */
static int sesbulk_from_v1(const struct sesreq *r, struct sesbulk *b, struct seserr *e)
{
    const struct form *f = &r->form;
    char name[160];
    b->from = sesbulk_v1_dup(f, "Source");
    if (b->from == NULL || b->from[0] == '\0')
        return sesbulk_missing(e, "Source");
    b->template_name = sesbulk_v1_dup(f, "Template");
    if (b->template_name == NULL || b->template_name[0] == '\0')
        return sesbulk_missing(e, "Template");
    char *defaults = sesbulk_v1_dup(f, "DefaultTemplateData");
    if (defaults == NULL)
        return sesbulk_missing(e, "DefaultTemplateData");
    int rc = sesbulk_defaults(b, defaults, "DefaultTemplateData", e);
    free(defaults);
    if (rc < 0)
        return -1;
    sesmail_v1_list(f, "ReplyToAddresses", &b->reply_to);
    if (sesmail_v1_tags(f, "DefaultTags", &b->tags, e) < 0)
        return -1;
    size_t n = sesbulk_v1_count(f);
    if (n == 0)
        return sesbulk_missing(e, "Destinations");
    if (n > SESBULK_MAX_DESTINATIONS)
        return sesbulk_too_many(e);
    sesbulk_alloc(b, n);
    for (size_t i = 0; i < n; i++) {
        struct sesbulk_entry *d = &b->entries[i];
        snprintf(name, sizeof name, "Destinations.member.%zu.Destination.ToAddresses", i + 1);
        sesmail_v1_list(f, name, &d->to);
        snprintf(name, sizeof name, "Destinations.member.%zu.Destination.CcAddresses", i + 1);
        sesmail_v1_list(f, name, &d->cc);
        snprintf(name, sizeof name, "Destinations.member.%zu.Destination.BccAddresses", i + 1);
        sesmail_v1_list(f, name, &d->bcc);
        snprintf(name, sizeof name, "Destinations.member.%zu.ReplacementTemplateData", i + 1);
        d->data = sesbulk_v1_dup(f, name);
        snprintf(name, sizeof name, "Destinations.member.%zu.ReplacementTags", i + 1);
        if (sesmail_v1_tags(f, name, &d->tags, e) < 0)
            return -1;
    }
    return 0;
}

/* A copy of the string o.key, NULL when absent; -1 in *bad (e set) when it
 * is there but not a string. */
static char *sesbulk_v2_str(json_t *o, const char *key, int *bad, struct seserr *e)
{
    json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
    if (v == NULL || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        seserr_set(e, SESERR_BAD_REQUEST, "%s must be a string", key);
        *bad = -1;
        return NULL;
    }
    return xstrdup(json_string_value(v));
}

/* The object o.key, or NULL. */
static json_t *sesbulk_v2_obj(json_t *o, const char *key)
{
    json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
    return json_is_object(v) ? v : NULL;
}

/* Read the v2 DefaultContent.Template t into b. */
static int sesbulk_v2_template(json_t *t, struct sesbulk *b, struct seserr *e)
{
    int bad = 0;
    b->template_name = sesbulk_v2_str(t, "TemplateName", &bad, e);
    char *arn = sesbulk_v2_str(t, "TemplateArn", &bad, e);
    if (b->template_name == NULL && arn != NULL) {
        const char *slash = strrchr(arn, '/');
        b->template_name = xstrdup(slash ? slash + 1 : arn);
    }
    free(arn);
    json_t *c = sesbulk_v2_obj(t, "TemplateContent");
    if (c != NULL && b->template_name == NULL) {
        b->subject = sesbulk_v2_str(c, "Subject", &bad, e);
        b->text = sesbulk_v2_str(c, "Text", &bad, e);
        b->html = sesbulk_v2_str(c, "Html", &bad, e);
    }
    char *data = sesbulk_v2_str(t, "TemplateData", &bad, e);
    if (bad < 0) {
        free(data);
        return -1;
    }
    if (b->template_name == NULL && c == NULL) {
        free(data);
        seserr_set(e, SESERR_BAD_REQUEST,
                   "DefaultContent.Template needs a TemplateName, TemplateArn or TemplateContent");
        return -1;
    }
    json_t *att = json_object_get(t, "Attachments");
    if (att != NULL && !json_is_null(att)) {
        free(data);
        seserr_set(e, SESERR_BAD_REQUEST, "The sesgate sandbox does not deliver attachments.");
        return -1;
    }
    int rc = sesbulk_defaults(b, data ? data : "{}", "TemplateData", e);
    free(data);
    if (rc < 0)
        return -1;
    return sesmail_v2_headers(t, "Headers", &b->headers, e);
}

/* Read one v2 BulkEmailEntry. */
static int sesbulk_v2_entry(json_t *j, struct sesbulk_entry *d, struct seserr *e)
{
    json_t *dest = sesbulk_v2_obj(j, "Destination");
    if (dest == NULL) {
        seserr_set(e, SESERR_BAD_REQUEST, "Every BulkEmailEntry needs a Destination");
        return -1;
    }
    if (sesmail_v2_list(dest, "ToAddresses", &d->to, e) < 0 ||
        sesmail_v2_list(dest, "CcAddresses", &d->cc, e) < 0 ||
        sesmail_v2_list(dest, "BccAddresses", &d->bcc, e) < 0 ||
        sesmail_v2_tags(j, "ReplacementTags", &d->tags, e) < 0 ||
        sesmail_v2_headers(j, "ReplacementHeaders", &d->headers, e) < 0)
        return -1;
    json_t *rt =
        sesbulk_v2_obj(sesbulk_v2_obj(j, "ReplacementEmailContent"), "ReplacementTemplate");
    int bad = 0;
    d->data = sesbulk_v2_str(rt, "ReplacementTemplateData", &bad, e);
    return bad;
}

/* Read a v2 SendBulkEmail. */
static int sesbulk_from_v2(const struct sesreq *r, struct sesbulk *b, struct seserr *e)
{
    json_t *body = r->json;
    int bad = 0;
    b->from = sesbulk_v2_str(body, "FromEmailAddress", &bad, e);
    if (bad < 0)
        return -1;
    json_t *t = sesbulk_v2_obj(sesbulk_v2_obj(body, "DefaultContent"), "Template");
    if (t == NULL) {
        seserr_set(e, SESERR_BAD_REQUEST, "DefaultContent.Template is required");
        return -1;
    }
    json_t *entries = json_object_get(body, "BulkEmailEntries");
    if (!json_is_array(entries) || json_array_size(entries) == 0) {
        seserr_set(e, SESERR_BAD_REQUEST, "BulkEmailEntries is required");
        return -1;
    }
    if (json_array_size(entries) > SESBULK_MAX_DESTINATIONS) {
        sesbulk_too_many(e);
        e->code = SESERR_BAD_REQUEST;
        return -1;
    }
    if (sesbulk_v2_template(t, b, e) < 0 ||
        sesmail_v2_list(body, "ReplyToAddresses", &b->reply_to, e) < 0 ||
        sesmail_v2_tags(body, "DefaultEmailTags", &b->tags, e) < 0)
        return -1;
    sesbulk_alloc(b, json_array_size(entries));
    for (size_t i = 0; i < b->n; i++)
        if (sesbulk_v2_entry(json_array_get(entries, i), &b->entries[i], e) < 0)
            return -1;
    return 0;
}

/* Check every destination's recipients and the senders as SES does. */
static int sesbulk_check(struct sesbulk *b, struct seserr *e)
{
    for (size_t i = 0; i < b->n; i++) {
        const struct sesbulk_entry *d = &b->entries[i];
        size_t n = d->to.n + d->cc.n + d->bcc.n;
        if (n == 0) {
            seserr_set(e, SESERR_INVALID_PARAMETER, "Missing final '@domain'");
            return -1;
        }
        if (n > SESMAIL_MAX_RECIPIENTS) {
            seserr_set(e, SESERR_INVALID_PARAMETER, "Recipient count exceeds %d.",
                       SESMAIL_MAX_RECIPIENTS);
            return -1;
        }
        if (sesmail_check_list(&d->to, e) < 0 || sesmail_check_list(&d->cc, e) < 0 ||
            sesmail_check_list(&d->bcc, e) < 0)
            return -1;
    }
    if (sesmail_check_list(&b->reply_to, e) < 0)
        return -1;
    if (b->from == NULL || b->from[0] == '\0') {
        seserr_set(e, SESERR_MISSING_PARAMETER, "The request must contain a sender address.");
        return -1;
    }
    return sesmail_check_addr(b->from, e);
}

int sesbulk_from_request(const struct sesreq *r, struct sesbulk *out, struct seserr *e)
{
    out->api = r->api;
    int rc;
    if (r->action != NULL && r->api == SESREQ_V1 &&
        strcmp(r->action, "SendBulkTemplatedEmail") == 0)
        rc = sesbulk_from_v1(r, out, e);
    else if (r->action != NULL && r->api == SESREQ_V2 && strcmp(r->action, "SendBulkEmail") == 0 &&
             json_is_object(r->json))
        rc = sesbulk_from_v2(r, out, e);
    else
        rc = (seserr_set(e, SESERR_INVALID_PARAMETER, "Not a bulk send request."), -1);
    if (rc < 0)
        return -1;
    return sesbulk_check(out, e);
}

json_t *sesbulk_merge_data(const json_t *def, const json_t *rep)
{
    json_t *out = def ? json_deep_copy(def) : json_object();
    if (out == NULL)
        abort();
    if (!json_is_object(rep) || !json_is_object(out))
        return out;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)rep, key, v)
    {
        json_t *old = json_object_get(out, key);
        json_t *nv = json_is_object(old) && json_is_object(v) ? sesbulk_merge_data(old, v)
                                                              : json_deep_copy(v);
        if (nv == NULL)
            abort();
        json_object_set_new(out, key, nv);
    }
    return out;
}

/* The length of the name of item s ("Name<sep>Value"). */
static size_t sesbulk_name_len(const char *s, char sep)
{
    const char *p = strchr(s, sep);
    return p ? (size_t)(p - s) : strlen(s);
}

/* The item of l named like s (ignoring case for headers), or NULL. */
static const char *sesbulk_find(const struct sesmail_list *l, const char *s, char sep)
{
    size_t n = sesbulk_name_len(s, sep);
    for (size_t i = 0; i < l->n; i++) {
        if (sesbulk_name_len(l->v[i], sep) != n)
            continue;
        if (sep == ':' ? strncasecmp(l->v[i], s, n) == 0 : strncmp(l->v[i], s, n) == 0)
            return l->v[i];
    }
    return NULL;
}

void sesbulk_merge_named(const struct sesmail_list *def, const struct sesmail_list *rep, char sep,
                         struct sesmail_list *out)
{
    for (size_t i = 0; i < def->n; i++) {
        const char *r = sesbulk_find(rep, def->v[i], sep);
        const char *s = r ? r : def->v[i];
        sesmail_list_add(out, s, strlen(s));
    }
    for (size_t i = 0; i < rep->n; i++)
        if (sesbulk_find(def, rep->v[i], sep) == NULL)
            sesmail_list_add(out, rep->v[i], strlen(rep->v[i]));
}

/* Append copies of every item of src to dst. */
static void sesbulk_copy_list(const struct sesmail_list *src, struct sesmail_list *dst)
{
    for (size_t i = 0; i < src->n; i++)
        sesmail_list_add(dst, src->v[i], strlen(src->v[i]));
}

int sesbulk_entry_message(const struct sesbulk *b, size_t i, const char *subject, const char *text,
                          const char *html, struct sesmail_msg *m, struct seserr *e)
{
    const struct sesbulk_entry *d = &b->entries[i];
    m->kind = SESMAIL_TEMPLATE;
    m->from = b->from ? xstrdup(b->from) : NULL;
    sesbulk_copy_list(&b->reply_to, &m->reply_to);
    sesbulk_copy_list(&d->to, &m->to);
    sesbulk_copy_list(&d->cc, &m->cc);
    sesbulk_copy_list(&d->bcc, &m->bcc);
    sesbulk_merge_named(&b->tags, &d->tags, '=', &m->tags);
    sesbulk_merge_named(&b->headers, &d->headers, ':', &m->headers);
    m->template_name = b->template_name ? xstrdup(b->template_name) : NULL;
    json_t *rep = NULL;
    if (d->data != NULL) {
        json_error_t jerr;
        rep = json_loads(d->data, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(rep)) {
            json_decref(rep);
            seserr_set(e, SESERR_INVALID_PARAMETER,
                       "ReplacementTemplateData is not a JSON object.");
            return -1;
        }
    }
    json_t *merged = sesbulk_merge_data(b->defaults, rep);
    json_decref(rep);
    m->template_data = json_dumps(merged, JSON_COMPACT);
    json_decref(merged);
    if (m->template_data == NULL)
        abort();
    return sesmail_apply_template(m, subject, text, html, e);
}

const char *sesbulk_status_name(enum sesbulk_status s, enum sesreq_api api)
{
    static const char *const v1[] = {"Success", "InvalidParameterValue", "AccountThrottled",
                                     "AccountDailyQuotaExceeded", "Failed"};
    static const char *const v2[] = {"SUCCESS", "INVALID_PARAMETER", "ACCOUNT_THROTTLED",
                                     "ACCOUNT_DAILY_QUOTA_EXCEEDED", "FAILED"};
    if ((unsigned)s > SESBULK_FAILED)
        s = SESBULK_FAILED;
    return api == SESREQ_V2 ? v2[s] : v1[s];
}

void sesbulk_render(enum sesreq_api api, const struct sesbulk_result *res, size_t n,
                    struct buf *out)
{
    struct bulk_result *e = xcalloc(n + 1, sizeof *e);
    for (size_t i = 0; i < n; i++) {
        snprintf(e[i].status, sizeof e[i].status, "%s", sesbulk_status_name(res[i].status, api));
        if (res[i].status == SESBULK_SUCCESS)
            snprintf(e[i].message_id, sizeof e[i].message_id, "%s", res[i].message_id);
        else
            snprintf(e[i].error, sizeof e[i].error, "%s", res[i].error);
    }
    bulk_answer_result(api, e, n, out);
    free(e);
}
