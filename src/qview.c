/* qview: the operator's views of the queue (a batch, the summary), built
 * from what show.lua and stats.lua answer. */
#include "qview.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "bulk.h"
#include "reply.h"

/* Abort on a failed jansson constructor (the out-of-memory policy). */
static json_t *qview_jok(json_t *v)
{
    if (v == NULL)
        abort();
    return v;
}

/* Set o[key] = v (a new reference), aborting when jansson cannot. */
static void qview_jset(json_t *o, const char *key, json_t *v)
{
    if (json_object_set_new(o, key, qview_jok(v)) < 0)
        abort();
}

/* Append v (a new reference) to the array a. */
static void qview_jappend(json_t *a, json_t *v)
{
    if (json_array_append_new(a, qview_jok(v)) < 0)
        abort();
}

/* The string of a reply element as a new jansson string (length-exact). */
static json_t *qview_jstr(const redisReply *r)
{
    if (r == NULL || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS))
        return json_null();
    return json_stringn_nocheck(r->str, r->len);
}

/* An ISO 8601 UTC time of ms since the epoch, into out[32]. */
static void qview_iso_time(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A batch's state from its hash's state field: "running" when absent (a
 * batch stored by sesgate 0.1.0) or empty. */
static json_t *qview_state(const redisReply *field)
{
    if (field == NULL || field->type != REDIS_REPLY_STRING || field->len == 0)
        return json_string("running");
    return qview_jstr(field);
}

/* Public: a batch id's shape. */
bool qview_batch_id_ok(const char *id)
{
    size_t n = strlen(id);
    return n == 36 && strspn(id, "0123456789abcdef-") == n;
}

/* Public: show.lua's keys. */
void qview_show_keys(const char *pfx, const char *id, char *keys[4])
{
    static const char *const kinds[4] = {"b:", "o:", "r:", "d"};
    for (int k = 0; k < 4; k++) {
        struct buf b = BUF_INIT;
        buf_printf(&b, "%s%s%s", pfx, kinds[k], k < 3 ? id : "");
        keys[k] = buf_detach(&b, NULL);
    }
}

/* Fill one recipient object for index i from its outcome text (or NULL)
 * and its waiting retry (retry index into the flat retry array, or -1). */
static const char *qview_show_state(json_t *r, const redisReply *outcome, const redisReply *retry,
                                    long long rk)
{
    if (outcome && outcome->type == REDIS_REPLY_STRING && outcome->len >= 1) {
        const char *s = outcome->str;
        size_t n = outcome->len;
        if (s[0] == 's' && n >= 2) {
            /* "s <MessageId>", or "s <MessageId> <note>" (the sandbox's
             * mailbox simulator: complaint, ooto) */
            const char *id = s + 2, *sp = memchr(id, ' ', n - 2);
            size_t idlen = sp ? (size_t)(sp - id) : n - 2;
            qview_jset(r, "message_id", json_stringn_nocheck(id, idlen));
            if (sp)
                qview_jset(r, "note", json_stringn_nocheck(sp + 1, (size_t)(s + n - sp - 1)));
            return "sent";
        }
        if (s[0] == 'd')
            return "sent";
        if (s[0] == 'c')
            return "cancelled";
        if (s[0] == 'x')
            return "suppressed";
        if (s[0] == 'f' && n >= 2) {
            const char *code = s + 2, *sp = memchr(code, ' ', n - 2);
            size_t clen = sp ? (size_t)(sp - code) : n - 2;
            qview_jset(r, "code", json_stringn_nocheck(code, clen));
            qview_jset(r, "message",
                       sp ? json_stringn_nocheck(sp + 1, (size_t)(s + n - sp - 1))
                          : json_string(""));
            return "dead";
        }
    }
    if (rk >= 0) {
        qview_jset(r, "attempt", json_integer((long long)reply_num(retry->element[rk + 1], 0)));
        char iso[32];
        qview_iso_time((long long)reply_num(retry->element[rk + 2], 0), iso);
        qview_jset(r, "due", json_string(iso));
        return "retry";
    }
    return "queued";
}

/* The addresses a batch left out because SES would refuse them (the hash's
 * "invalid" field, JSON written by the enqueue): [{address, reason}], an
 * empty array when there are none or the field cannot be read. */
static json_t *qview_invalid(const redisReply *field)
{
    json_t *a = NULL;
    if (field != NULL && field->type == REDIS_REPLY_STRING)
        a = json_loadb(field->str, field->len, 0, NULL);
    if (!json_is_array(a)) {
        json_decref(a);
        a = qview_jok(json_array());
    }
    return a;
}

/* A batch still being filled (its hash's "filling", the next index to
 * queue): "filling": true and "filled", how many of its recipients are
 * queued so far; "filling": false once it is whole (and for a batch an
 * earlier release stored, which has no such field). */
static void qview_filling(json_t *o, const redisReply *field)
{
    bool filling = field && field->type == REDIS_REPLY_STRING && field->len > 0;
    qview_jset(o, "filling", json_boolean(filling));
    if (filling)
        qview_jset(o, "filled", json_integer((long long)reply_num(field, 0)));
}

/* Public: the batch status object. */
bool qview_batch_ref(const char *ref, size_t n, char id[37], long long *index)
{
    static const char pre[] = "sesgate-";
    *index = -1;
    if (n > sizeof pre - 1 && memcmp(ref, pre, sizeof pre - 1) == 0) {
        ref += sizeof pre - 1;
        n -= sizeof pre - 1;
        if (n > 37 && ref[36] == '-' && n - 37 <= 9) {
            long long i = 0;
            for (size_t k = 37; k < n; k++) {
                if (ref[k] < '0' || ref[k] > '9')
                    return false;
                i = i * 10 + (ref[k] - '0');
            }
            *index = i;
            n = 36;
        }
    }
    if (n != 36)
        return false;
    memcpy(id, ref, 36);
    id[36] = '\0';
    return qview_batch_id_ok(id);
}

void qview_show_only(json_t *b, long long index)
{
    json_t *rs = json_object_get(b, "recipients"), *keep = qview_jok(json_array()), *r;
    size_t i;
    json_array_foreach(rs, i, r)
    {
        if (json_integer_value(json_object_get(r, "index")) == index)
            json_array_append(keep, r);
    }
    qview_jset(b, "recipients", keep);
}

json_t *qview_show_json(const char *id, const redisReply *reply)
{
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 4)
        return NULL;
    const redisReply *h = reply->element[0], *outs = reply->element[1];
    const redisReply *list = reply->element[2], *retry = reply->element[3];
    if (h->type != REDIS_REPLY_ARRAY || h->elements == 0 || outs->type != REDIS_REPLY_ARRAY ||
        list->type != REDIS_REPLY_ARRAY || retry->type != REDIS_REPLY_ARRAY)
        return NULL;
    long long total = (long long)reply_num(reply_field(h, "total"), 0);
    long long first = (long long)reply_num(reply_field(h, "first"), 0);
    int64_t created = (long long)reply_num(reply_field(h, "created"), 0);
    if (total < 0 || total > 10000000 || first < 0 || first > 1)
        return NULL;
    const redisReply *act = reply_field(h, "action");
    bool bulk = act && act->type == REDIS_REPLY_STRING && bulk_action(act->str);
    const redisReply *apir = reply_field(h, "api");
    int api = apir && apir->type == REDIS_REPLY_STRING && strcmp(apir->str, "2") == 0 ? 2 : 1;
    json_t *o = qview_jok(json_object());
    qview_jset(o, "batch_id", json_string(id));
    qview_jset(o, "client", qview_jstr(reply_field(h, "client")));
    qview_jset(o, "action", qview_jstr(reply_field(h, "action")));
    char iso[32];
    qview_iso_time(created, iso);
    qview_jset(o, "created", json_string(iso));
    qview_jset(o, "created_ms", json_integer(created));
    const redisReply *flags = reply_field(h, "flags");
    qview_jset(o, "flags", flags ? qview_jstr(flags) : json_string(""));
    qview_jset(o, "state", qview_state(reply_field(h, "state")));
    json_t *rs = qview_jok(json_array());
    long long sent = 0, dead = 0, retrying = 0, queued = 0, cancelled = 0, suppressed = 0;
    qview_jset(o, "first_recipient", json_string(first ? "sync" : "queue"));
    /* Outcomes and retries by index, once: a batch may have a million. */
    const redisReply **by_out = xcalloc((size_t)total + 1, sizeof *by_out);
    long long *by_retry = xcalloc((size_t)total + 1, sizeof *by_retry);
    for (long long i = 0; i < total; i++)
        by_retry[i] = -1;
    for (size_t k = 0; k + 1 < outs->elements; k += 2) {
        long long i = (long long)reply_num(outs->element[k], -1);
        if (i >= 0 && i < total)
            by_out[i] = outs->element[k + 1];
    }
    for (size_t k = 0; k + 2 < retry->elements; k += 3) {
        long long i = (long long)reply_num(retry->element[k], -1);
        if (i >= 0 && i < total)
            by_retry[i] = (long long)k;
    }
    for (long long i = 0; i < total; i++) {
        json_t *r = qview_jok(json_object());
        qview_jset(r, "index", json_integer(i));
        const redisReply *addr = (size_t)i < list->elements ? list->element[i] : NULL;
        json_t *dest = bulk && addr && addr->type == REDIS_REPLY_STRING
                           ? bulk_unit_view(api, addr->str, addr->len)
                           : NULL;
        if (dest != NULL) {
            /* a bulk call's destination: named by its first recipient */
            json_t *to0 = json_array_get(json_object_get(dest, "to"), 0);
            qview_jset(r, "address", json_string(to0 ? json_string_value(to0) : ""));
            qview_jset(r, "destination", dest);
        } else {
            qview_jset(r, "address", qview_jstr(addr));
        }
        const char *state = qview_show_state(r, by_out[i], retry, by_retry[i]);
        qview_jset(r, "state", json_string(state));
        sent += strcmp(state, "sent") == 0;
        dead += strcmp(state, "dead") == 0;
        retrying += strcmp(state, "retry") == 0;
        queued += strcmp(state, "queued") == 0;
        cancelled += strcmp(state, "cancelled") == 0;
        suppressed += strcmp(state, "suppressed") == 0;
        qview_jappend(rs, r);
    }
    free(by_out);
    free(by_retry);
    qview_jset(o, "total", json_integer(total));
    qview_jset(o, "sent", json_integer(sent));
    qview_jset(o, "dead", json_integer(dead));
    qview_jset(o, "retrying", json_integer(retrying));
    qview_jset(o, "queued", json_integer(queued));
    qview_jset(o, "cancelled", json_integer(cancelled));
    qview_jset(o, "suppressed", json_integer(suppressed));
    qview_jset(o, "failed_attempts",
               json_integer((long long)reply_num(reply_field(h, "failed"), 0)));
    long long over = sent + dead + cancelled + suppressed;
    double pct = total ? 100.0 * (double)over / (double)total : 100.0;
    qview_jset(o, "progress", json_real((double)(long long)(pct * 10 + 0.5) / 10));
    qview_jset(o, "complete", json_boolean(over == total));
    qview_filling(o, reply_field(h, "filling"));
    qview_jset(o, "recipients", rs);
    qview_jset(o, "invalid", qview_invalid(reply_field(h, "invalid")));
    return o;
}

/* Public: the batch status object from show.lua's pages, in order. */
json_t *qview_show_pages(const char *id, redisReply *const *pages, size_t npages)
{
    if (npages == 0 || pages[0] == NULL || pages[0]->type != REDIS_REPLY_ARRAY ||
        pages[0]->elements < 4)
        return NULL;
    /* One reply whose parts borrow the pages' elements: outcomes, addresses
     * and retries one after the other; the batch hash of the first page. */
    redisReply parts[3] = {
        {.type = REDIS_REPLY_ARRAY}, {.type = REDIS_REPLY_ARRAY}, {.type = REDIS_REPLY_ARRAY}};
    for (size_t p = 0; p < npages; p++) {
        if (pages[p] == NULL || pages[p]->type != REDIS_REPLY_ARRAY || pages[p]->elements < 4)
            return NULL;
        for (int k = 0; k < 3; k++) {
            const redisReply *part = pages[p]->element[k + 1];
            if (part->type != REDIS_REPLY_ARRAY)
                return NULL;
            parts[k].elements += part->elements;
        }
    }
    for (int k = 0; k < 3; k++) {
        parts[k].element = xcalloc(parts[k].elements + 1, sizeof *parts[k].element);
        size_t at = 0;
        for (size_t p = 0; p < npages; p++) {
            const redisReply *part = pages[p]->element[k + 1];
            if (part->elements > 0)
                memcpy(parts[k].element + at, part->element,
                       part->elements * sizeof *part->element);
            at += part->elements;
        }
    }
    redisReply *el[4] = {pages[0]->element[0], &parts[0], &parts[1], &parts[2]};
    redisReply whole = {.type = REDIS_REPLY_ARRAY, .elements = 4, .element = el};
    json_t *o = qview_show_json(id, &whole);
    for (int k = 0; k < 3; k++)
        free(parts[k].element);
    return o;
}

/* Public: stats.lua's keys. */
void qview_stats_keys(const char *pfx, char *keys[5])
{
    static const char *const kinds[5] = {"qs", "d", "dlq", "recent", ""};
    for (int k = 0; k < 5; k++) {
        struct buf b = BUF_INIT;
        buf_printf(&b, "%s%s", pfx, kinds[k]);
        keys[k] = buf_detach(&b, NULL);
    }
}

/* Public: the queue summary object. */
json_t *qview_stats_json(const redisReply *reply, int64_t now_ms)
{
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 6 ||
        reply->element[5]->type != REDIS_REPLY_ARRAY)
        return NULL;
    json_t *o = qview_jok(json_object());
    qview_jset(o, "depth", json_integer((long long)reply_num(reply->element[0], 0)));
    double oldest = 0;
    const redisReply *oid = reply->element[1];
    if (oid->type == REDIS_REPLY_STRING && oid->len > 0) {
        long long ms = strtoll(oid->str, NULL, 10);
        if (ms > 0 && now_ms > ms)
            oldest = (double)(now_ms - ms) / 1000.0;
    }
    qview_jset(o, "oldest_seconds", json_real(oldest));
    qview_jset(o, "inflight", json_integer((long long)reply_num(reply->element[2], 0)));
    qview_jset(o, "retrying", json_integer((long long)reply_num(reply->element[3], 0)));
    qview_jset(o, "dead_letters", json_integer((long long)reply_num(reply->element[4], 0)));
    json_t *rows = qview_jok(json_array());
    const redisReply *flat = reply->element[5];
    for (size_t k = 0; k + 11 < flat->elements; k += 12) {
        json_t *r = qview_jok(json_object());
        qview_jset(r, "batch_id", qview_jstr(flat->element[k]));
        const redisReply *cr = flat->element[k + 1];
        bool known = cr->type == REDIS_REPLY_STRING && cr->len > 0;
        qview_jset(r, "expired", json_boolean(!known));
        if (known) {
            char iso[32];
            qview_iso_time((long long)reply_num(cr, 0), iso);
            qview_jset(r, "created", json_string(iso));
            qview_jset(r, "created_ms", json_integer((long long)reply_num(cr, 0)));
            long long total = (long long)reply_num(flat->element[k + 2], 0);
            long long sent = (long long)reply_num(flat->element[k + 3], 0) +
                             (long long)reply_num(flat->element[k + 4], 0);
            long long dead = (long long)reply_num(flat->element[k + 5], 0);
            long long cancelled = (long long)reply_num(flat->element[k + 8], 0);
            long long suppressed = (long long)reply_num(flat->element[k + 11], 0);
            qview_jset(r, "client", qview_jstr(flat->element[k + 6]));
            qview_jset(r, "action", qview_jstr(flat->element[k + 7]));
            qview_jset(r, "total", json_integer(total));
            qview_jset(r, "sent", json_integer(sent));
            qview_jset(r, "dead", json_integer(dead));
            qview_jset(r, "cancelled", json_integer(cancelled));
            qview_jset(r, "suppressed", json_integer(suppressed));
            qview_jset(r, "pending", json_integer(total - sent - dead - cancelled - suppressed));
            qview_jset(r, "state", qview_state(flat->element[k + 9]));
            qview_filling(r, flat->element[k + 10]);
        }
        qview_jappend(rows, r);
    }
    qview_jset(o, "recent", rows);
    return o;
}

/* Public: control.lua's keys. */
void qview_control_keys(const char *pfx, const char *id, char *keys[2])
{
    struct buf b = BUF_INIT;
    buf_printf(&b, "%sb:%s", pfx, id);
    keys[0] = buf_detach(&b, NULL);
    keys[1] = xstrdup(pfx);
}

/* Public: the answer of a pause, resume or cancel. */
json_t *qview_control_json(const char *id, const redisReply *reply, long long in_flight)
{
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING)
        return NULL;
    if (in_flight < 0)
        in_flight = (long long)reply_num(reply->element[1], 0);
    json_t *o = qview_jok(json_object());
    qview_jset(o, "batch", json_string(id));
    qview_jset(o, "state", qview_jstr(reply->element[0]));
    qview_jset(o, "in_flight", json_integer(in_flight));
    qview_jset(o, "held", json_integer((long long)reply_num(reply->element[2], 0)));
    return o;
}

/* Public: the admin status of a control.lua error. */
int qview_control_status(const char *err)
{
    if (strncmp(err, "NOBATCH", 7) == 0)
        return 404;
    if (strncmp(err, "CANCELLED", 9) == 0 || strncmp(err, "COMPLETE", 8) == 0)
        return 409;
    if (strncmp(err, "BADARGS", 7) == 0)
        return 400;
    return 503;
}
