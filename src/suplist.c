/* suplist: suppression list entries and import lines (see suplist.h). */
#include "suplist.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "addr.h"
#include "rfc5322.h"

/* Lower-case the ASCII letters of s[0..n) into out, NUL-terminated. */
static void suplist_lower(const char *s, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
    out[n] = '\0';
}

int suplist_key(const char *s, size_t n, char *out, const char **why)
{
    const char *w = addr_check_mailbox(s, n);
    if (w != NULL) {
        *why = w;
        return -1;
    }
    while (n > 0 && (s[0] == ' ' || s[0] == '\t')) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (memchr(s, '<', n) == NULL && memchr(s, '(', n) == NULL) {
        if (n > SUPLIST_MAX_KEY) {
            *why = "Address is longer than 320 characters";
            return -1;
        }
        suplist_lower(s, n, out);
        return (int)n;
    }
    /* a mailbox "Name <addr-spec>": its addr-spec */
    struct rfc5322_addr_list l = {0};
    char err[64];
    int rc = -1;
    *why = "Illegal address";
    if (rfc5322_parse_addresses(s, n, 2, &l, err, sizeof err) == 0 && l.n == 1) {
        size_t len = strlen(l.v[0].addr);
        if (len <= SUPLIST_MAX_KEY) {
            suplist_lower(l.v[0].addr, len, out);
            rc = (int)len;
        }
    }
    rfc5322_addr_list_free(&l);
    return rc;
}

const char *suplist_reason(const char *r)
{
    static const char *const reasons[] = {"BOUNCE", "COMPLAINT", "TRANSIENT", "MANUAL"};
    if (r == NULL || r[0] == '\0')
        return "MANUAL";
    for (size_t k = 0; k < sizeof reasons / sizeof *reasons; k++)
        if (strcasecmp(r, reasons[k]) == 0)
            return reasons[k];
    return NULL;
}

void suplist_value(const char *reason, int64_t ms, const char *source, struct buf *out)
{
    buf_printf(out, "%s\t%" PRId64 "\t%s", reason, ms, source);
}

/* Copy s[0..n) into out (size outlen), cut to fit. */
static void suplist_copy(char *out, size_t outlen, const char *s, size_t n)
{
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

void suplist_entry_parse(const char *s, size_t n, struct suplist_entry *e)
{
    memset(e, 0, sizeof *e);
    const char *end = s + n, *t1 = memchr(s, '\t', n);
    suplist_copy(e->reason, sizeof e->reason, s, t1 ? (size_t)(t1 - s) : n);
    if (t1 == NULL)
        return;
    const char *p = t1 + 1, *t2 = memchr(p, '\t', (size_t)(end - p));
    char num[24];
    suplist_copy(num, sizeof num, p, t2 ? (size_t)(t2 - p) : (size_t)(end - p));
    e->ms = strtoll(num, NULL, 10);
    if (t2 != NULL)
        suplist_copy(e->source, sizeof e->source, t2 + 1, (size_t)(end - t2 - 1));
}

json_t *suplist_json(const char *key, size_t klen, const char *value, size_t vlen)
{
    struct suplist_entry e;
    suplist_entry_parse(value, vlen, &e);
    char iso[96] = "";
    if (e.ms > 0) {
        time_t t = (time_t)(e.ms / 1000);
        struct tm tm;
        if (gmtime_r(&t, &tm) != NULL)
            snprintf(iso, sizeof iso, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(e.ms % 1000));
    }
    json_t *o = json_object();
    json_object_set_new(o, "address", json_stringn(key, klen));
    json_object_set_new(o, "reason", json_string(e.reason));
    json_object_set_new(o, "added", json_string(iso));
    json_object_set_new(o, "added_ms", json_integer((json_int_t)e.ms));
    json_object_set_new(o, "source", json_string(e.source));
    return o;
}

/* The next CSV field of s[*pos..n) (quotes removed, "" inside quotes as
 * one quote), into out (size outlen, cut to fit); *pos moves past its
 * comma. Returns false at the end of the line. */
static bool suplist_csv_field(const char *s, size_t n, size_t *pos, char *out, size_t outlen)
{
    size_t i = *pos, k = 0;
    if (i > n)
        return false;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i < n && s[i] == '"') {
        for (i++; i < n; i++) {
            if (s[i] == '"' && i + 1 < n && s[i + 1] == '"')
                i++;
            else if (s[i] == '"') {
                i++;
                break;
            }
            if (k + 1 < outlen)
                out[k++] = s[i];
        }
        while (i < n && s[i] != ',')
            i++;
    } else {
        size_t start = i;
        while (i < n && s[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (s[end - 1] == ' ' || s[end - 1] == '\t'))
            end--;
        for (size_t j = start; j < end && k + 1 < outlen; j++)
            out[k++] = s[j];
    }
    out[k] = '\0';
    *pos = i + 1;
    return true;
}

enum suplist_line suplist_import_line(const char *s, size_t n, bool first, const char *dflt_reason,
                                      char *key, const char **reason, const char **why)
{
    if (n > 0 && s[n - 1] == '\r')
        n--;
    size_t lead = 0;
    while (lead < n && (s[lead] == ' ' || s[lead] == '\t'))
        lead++;
    if (lead == n || s[lead] == '#')
        return SUPLIST_LINE_SKIP;
    char addr[SUPLIST_MAX_KEY + 64], rs[32] = "";
    size_t pos = 0;
    suplist_csv_field(s, n, &pos, addr, sizeof addr);
    bool more = suplist_csv_field(s, n, &pos, rs, sizeof rs);
    if (first && (strcasecmp(addr, "address") == 0 || strcasecmp(addr, "emailaddress") == 0 ||
                  strcasecmp(addr, "email") == 0))
        return SUPLIST_LINE_SKIP;
    if (suplist_key(addr, strlen(addr), key, why) < 0)
        return SUPLIST_LINE_BAD;
    *reason = more && rs[0] ? suplist_reason(rs) : suplist_reason(dflt_reason);
    if (*reason == NULL) {
        *why = "Reason is none of BOUNCE, COMPLAINT, TRANSIENT, MANUAL";
        return SUPLIST_LINE_BAD;
    }
    return SUPLIST_LINE_ENTRY;
}

void suplist_fields_add(struct suplist_fields *f, const char *a, size_t n)
{
    char key[SUPLIST_MAX_KEY + 1];
    const char *why;
    int len = suplist_key(a, n, key, &why);
    if (len < 0)
        key[len = 0] = '\0';
    buf_add(&f->text, key, (size_t)len + 1);
    f->n++;
}

bool suplist_fields_gather(void *arg, const char *a, size_t n)
{
    suplist_fields_add(arg, a, n);
    return true;
}
