/* qview: the operator's views of the queue (a batch, the summary), built
 * from what show.lua and stats.lua answer. */
#include "qview.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "bulk.h"
#include "reply.h"
#include "util.h"

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
void qview_show_keys(const char *pfx, const char *id, char *keys[QVIEW_SHOW_KEYS])
{
    static const char *const kinds[QVIEW_SHOW_KEYS] = {"b:", "o:", "r:", "d", "e:"};
    for (int k = 0; k < QVIEW_SHOW_KEYS; k++) {
        struct buf b = BUF_INIT;
        buf_printf(&b, "%s%s%s", pfx, kinds[k], k == 3 ? "" : id);
        keys[k] = buf_detach(&b, NULL);
    }
}

/* The delivery states a recipient can be in after SES accepted its copy
 * (events.lua), which are also the batch hash's counters of recipients in
 * each, and the skipped units' counter. */
static const char *const qview_counters[] = {"delivered", "bounced",  "complained",
                                             "delayed",   "rejected", "suppressed"};

/* Set the batch hash h's event counters in o (a hash without one: 0). */
static void qview_event_counts(json_t *o, const redisReply *h)
{
    for (size_t k = 0; k < sizeof qview_counters / sizeof *qview_counters; k++)
        qview_jset(o, qview_counters[k],
                   json_integer((long long)reply_num(reply_field(h, qview_counters[k]), 0)));
}

/* The detail of a delivery state into d: a JSON object's string and number
 * members as they are; otherwise tab-separated text, read by state
 * (bounced: type, subtype, diagnostic; complained: feedback_type; any
 * other: detail). */
static void qview_delivery_detail(json_t *d, const char *state, const char *s, size_t n)
{
    if (n == 0)
        return;
    if (s[0] == '{') {
        json_t *j = json_loadb(s, n, 0, NULL);
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
        {
            if ((json_is_string(v) || json_is_number(v)) && json_object_get(d, k) == NULL)
                qview_jset(d, k, json_copy(v));
        }
        if (json_is_object(j)) {
            json_decref(j);
            return;
        }
        json_decref(j);
    }
    static const char *const bounce[] = {"type", "subtype", "diagnostic"};
    static const char *const complaint[] = {"feedback_type"};
    static const char *const other[] = {"detail"};
    const char *const *names = other;
    size_t nn = 1;
    if (strcmp(state, "bounced") == 0) {
        names = bounce;
        nn = 3;
    } else if (strcmp(state, "complained") == 0) {
        names = complaint;
    }
    for (size_t k = 0; k < nn && n > 0; k++) {
        const char *tab = k + 1 < nn ? memchr(s, '\t', n) : NULL;
        size_t len = tab ? (size_t)(tab - s) : n;
        if (len > 0 && util_utf8_valid(s, len))
            qview_jset(d, names[k], json_stringn_nocheck(s, len));
        if (tab == NULL)
            break;
        n -= len + 1;
        s = tab + 1;
    }
}

/* A delivery state object {address, state, time, time_ms, detail...} from
 * a field's address (n bytes) and its value "<state>\t<ms>\t<detail>";
 * NULL when the value is not so shaped. */
static json_t *qview_delivery(const char *addr, size_t n, const redisReply *value)
{
    if (value == NULL || value->type != REDIS_REPLY_STRING)
        return NULL;
    const char *s = value->str, *end = s + value->len;
    const char *t1 = memchr(s, '\t', value->len);
    if (t1 == NULL || t1 == s || !util_utf8_valid(addr, n))
        return NULL;
    const char *t2 = memchr(t1 + 1, '\t', (size_t)(end - t1 - 1));
    const char *ms_end = t2 ? t2 : end;
    long long ms = 0;
    for (const char *c = t1 + 1; c < ms_end; c++) {
        if (*c < '0' || *c > '9' || ms > 100000000000000LL)
            return NULL;
        ms = ms * 10 + (*c - '0');
    }
    char state[16];
    size_t sl = (size_t)(t1 - s);
    if (sl >= sizeof state)
        return NULL;
    memcpy(state, s, sl);
    state[sl] = '\0';
    if (!util_utf8_valid(state, sl))
        return NULL;
    json_t *d = qview_jok(json_object());
    qview_jset(d, "address", json_stringn_nocheck(addr, n));
    qview_jset(d, "state", json_string(state));
    char iso[32];
    qview_iso_time(ms, iso);
    qview_jset(d, "time", json_string(iso));
    qview_jset(d, "time_ms", json_integer(ms));
    if (t2)
        qview_delivery_detail(d, state, t2 + 1, (size_t)(end - t2 - 1));
    return d;
}

/* Put delivery state d (a new reference) into the array a, ordered by
 * address; a state for an address already there replaces it (a scan may
 * return a field twice). */
static void qview_delivery_add(json_t *a, json_t *d)
{
    const char *addr = json_string_value(json_object_get(d, "address"));
    size_t i, at = json_array_size(a);
    json_t *x;
    json_array_foreach(a, i, x)
    {
        int c = strcmp(addr, json_string_value(json_object_get(x, "address")));
        if (c == 0) {
            json_array_set_new(a, i, d);
            return;
        }
        if (c < 0) {
            at = i;
            break;
        }
    }
    if (json_array_insert_new(a, at, d) < 0)
        abort();
}

/* The delivery states of show.lua's flat (field, value) pairs, by index:
 * by[i] is an array (NULL: none) for i < total. */
static void qview_deliveries(const redisReply *states, long long total, json_t **by)
{
    if (states == NULL || states->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t k = 0; k + 1 < states->elements; k += 2) {
        const redisReply *f = states->element[k];
        if (f->type != REDIS_REPLY_STRING)
            continue;
        const char *colon = memchr(f->str, ':', f->len);
        if (colon == NULL || colon == f->str || colon - f->str > 9)
            continue;
        long long i = 0;
        const char *c = f->str;
        for (; c < colon && *c >= '0' && *c <= '9'; c++)
            i = i * 10 + (*c - '0');
        if (c != colon || i >= total)
            continue;
        json_t *d = qview_delivery(colon + 1, f->len - (size_t)(colon + 1 - f->str),
                                   states->element[k + 1]);
        if (d == NULL)
            continue;
        if (by[i] == NULL)
            by[i] = qview_jok(json_array());
        qview_delivery_add(by[i], d);
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
    /* the delivery states: a sixth element (show.lua's reply has seven) */
    const redisReply *states = reply->elements >= 6 ? reply->element[5] : NULL;
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
    json_t **by_delivery = xcalloc((size_t)total + 1, sizeof *by_delivery);
    qview_deliveries(states, total, by_delivery);
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
        qview_jset(r, "delivery", by_delivery[i] ? by_delivery[i] : json_array());
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
    free(by_delivery);
    qview_jset(o, "total", json_integer(total));
    qview_jset(o, "sent", json_integer(sent));
    qview_jset(o, "dead", json_integer(dead));
    qview_jset(o, "retrying", json_integer(retrying));
    qview_jset(o, "queued", json_integer(queued));
    qview_jset(o, "cancelled", json_integer(cancelled));
    qview_jset(o, "suppressed", json_integer(suppressed));
    qview_jset(o, "failed_attempts",
               json_integer((long long)reply_num(reply_field(h, "failed"), 0)));
    qview_event_counts(o, h);
    /* units skipped as suppressed: counted from their outcomes, as the others */
    qview_jset(o, "suppressed", json_integer(suppressed));
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
    /* One reply whose parts borrow the pages' elements: outcomes, addresses,
     * retries and delivery states one after the other; the batch hash of
     * the first page. A page without delivery states (a reply of five
     * elements) adds none. */
    static const size_t at_of[4] = {1, 2, 3, 5};
    redisReply parts[4] = {{.type = REDIS_REPLY_ARRAY},
                           {.type = REDIS_REPLY_ARRAY},
                           {.type = REDIS_REPLY_ARRAY},
                           {.type = REDIS_REPLY_ARRAY}};
    for (size_t p = 0; p < npages; p++) {
        if (pages[p] == NULL || pages[p]->type != REDIS_REPLY_ARRAY || pages[p]->elements < 4)
            return NULL;
        for (int k = 0; k < 4; k++) {
            if (at_of[k] >= pages[p]->elements)
                continue;
            const redisReply *part = pages[p]->element[at_of[k]];
            if (part->type != REDIS_REPLY_ARRAY)
                return NULL;
            parts[k].elements += part->elements;
        }
    }
    for (int k = 0; k < 4; k++) {
        parts[k].element = xcalloc(parts[k].elements + 1, sizeof *parts[k].element);
        size_t at = 0;
        for (size_t p = 0; p < npages; p++) {
            if (at_of[k] >= pages[p]->elements)
                continue;
            const redisReply *part = pages[p]->element[at_of[k]];
            if (part->elements > 0)
                memcpy(parts[k].element + at, part->element,
                       part->elements * sizeof *part->element);
            at += part->elements;
        }
    }
    redisReply none = {.type = REDIS_REPLY_STRING, .str = (char *)"0", .len = 1};
    redisReply *el[6] = {pages[0]->element[0], &parts[0], &parts[1], &parts[2], &none, &parts[3]};
    redisReply whole = {.type = REDIS_REPLY_ARRAY, .elements = 6, .element = el};
    json_t *o = qview_show_json(id, &whole);
    for (int k = 0; k < 4; k++)
        free(parts[k].element);
    return o;
}

/* The elements of one batch's row in stats.lua's reply: id, created, total,
 * sent, done, dead, client, action, cancelled, state, filling and the six
 * qview_counters. */
#define QVIEW_STATS_ROW 17

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
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 6 ||
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
    for (size_t k = 0; k + QVIEW_STATS_ROW - 1 < flat->elements; k += QVIEW_STATS_ROW) {
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
            long long suppressed = (long long)reply_num(flat->element[k + 16], 0);
            qview_jset(r, "client", qview_jstr(flat->element[k + 6]));
            qview_jset(r, "action", qview_jstr(flat->element[k + 7]));
            qview_jset(r, "total", json_integer(total));
            qview_jset(r, "sent", json_integer(sent));
            qview_jset(r, "dead", json_integer(dead));
            qview_jset(r, "cancelled", json_integer(cancelled));
            /* suppressed units count towards completion like the others */
            long long pending = total - sent - dead - cancelled - suppressed;
            qview_jset(r, "pending", json_integer(pending > 0 ? pending : 0));
            qview_jset(r, "state", qview_state(flat->element[k + 9]));
            qview_filling(r, flat->element[k + 10]);
            for (size_t c = 0; c < sizeof qview_counters / sizeof *qview_counters; c++)
                qview_jset(r, qview_counters[c],
                           json_integer((long long)reply_num(flat->element[k + 11 + c], 0)));
        }
        qview_jappend(rows, r);
    }
    qview_jset(o, "recent", rows);
    /* The relays to the clients' events_url (none before sesgate had them). */
    const redisReply *rl = reply->elements > 6 ? reply->element[6] : NULL;
    bool rok = rl && rl->type == REDIS_REPLY_ARRAY && rl->elements == 4;
    json_t *relays = qview_jok(json_object());
    qview_jset(relays, "queued", json_integer(rok ? (long long)reply_num(rl->element[0], 0) : 0));
    qview_jset(relays, "inflight", json_integer(rok ? (long long)reply_num(rl->element[1], 0) : 0));
    qview_jset(relays, "retrying", json_integer(rok ? (long long)reply_num(rl->element[2], 0) : 0));
    qview_jset(relays, "dead", json_integer(rok ? (long long)reply_num(rl->element[3], 0) : 0));
    qview_jset(o, "relays", relays);
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
