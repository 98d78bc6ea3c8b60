/* Unit tests for qview: the batch view's delivery states (show.lua's
 * sixth element, the fields of P:{P}:e:<batch>) sorted to their recipients
 * with their time and detail (a JSON object, or tab-separated text), over
 * one reply and over pages; the batch's event counters in the view and in
 * the status rows (a hash without them: 0); the relays' counts in the
 * status (a reply without them: 0); show.lua's keys. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "qview.h"
#include "reply.h"

#define ID "0123abcd-0000-4000-8000-00000000beef"

/* A string reply (freed with reply_free). */
static redisReply *str(const char *s)
{
    redisReply *r = xcalloc(1, sizeof *r);
    r->type = REDIS_REPLY_STRING;
    r->str = xstrdup(s);
    r->len = strlen(s);
    return r;
}

/* An array reply of the n string literals that follow. */
static redisReply *strs(size_t n, ...)
{
    redisReply *r = xcalloc(1, sizeof *r);
    r->type = REDIS_REPLY_ARRAY;
    r->element = xcalloc(n + 1, sizeof *r->element);
    r->elements = n;
    va_list ap;
    va_start(ap, n);
    for (size_t k = 0; k < n; k++)
        r->element[k] = str(va_arg(ap, const char *));
    va_end(ap);
    return r;
}

/* An array reply of the n replies that follow (taken). */
static redisReply *arr(size_t n, ...)
{
    redisReply *r = xcalloc(1, sizeof *r);
    r->type = REDIS_REPLY_ARRAY;
    r->element = xcalloc(n + 1, sizeof *r->element);
    r->elements = n;
    va_list ap;
    va_start(ap, n);
    for (size_t k = 0; k < n; k++)
        r->element[k] = va_arg(ap, redisReply *);
    va_end(ap);
    return r;
}

/* The batch hash of a 3-recipient batch with its event counters. */
static redisReply *hash_with_counters(void)
{
    return strs(22, "n", "7", "client", "app", "api", "1", "action", "SendEmail", "created",
                "1700000000000", "total", "3", "first", "1", "sent", "3", "delivered", "1",
                "bounced", "1", "complained", "1");
}

/* The string member key of o, "" when absent. */
static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* The delivery array of recipient i of view b. */
static json_t *delivery(const json_t *b, size_t i)
{
    return json_object_get(json_array_get(json_object_get(b, "recipients"), i), "delivery");
}

static void test_show_states(void)
{
    redisReply *r =
        arr(7, hash_with_counters(), strs(6, "0", "s mid-0", "1", "s mid-1", "2", "s mid-2"),
            strs(3, "a0@example.net", "a1@example.net", "a2@example.net"), strs(0), str("0"),
            strs(18,
                 /* index 0: its To address and a Cc rider, out of order */
                 "0:cc@example.org", "complained\t1700000002000\tabuse", "0:a0@example.net",
                 "delivered\t1700000001000\t",
                 /* index 1: a bounce with a JSON detail */
                 "1:a1@example.net",
                 "bounced\t1700000003000\t{\"type\":\"Permanent\",\"subtype\":\"General\","
                 "\"diagnostic\":\"smtp; 550 5.1.1 user unknown\"}",
                 /* index 2: a bounce with tab-separated detail */
                 "2:a2@example.net", "bounced\t1700000004000\tTransient\tMailboxFull\t552 full",
                 /* ignored: an index past total, no index, a bad value, a bad time */
                 "9:z@example.net", "delivered\t1\t", "x:y@example.net", "delivered\t1\t",
                 "1:b1@example.net", "no tabs", "1:c1@example.net", "delivered\t12a\t",
                 /* a field returned twice by a scan: once in the view */
                 "0:a0@example.net", "delivered\t1700000001000\t"),
            str("0"));
    json_t *b = qview_show_json(ID, r);
    CHECK(b != NULL, "a view");
    json_t *d0 = delivery(b, 0), *d1 = delivery(b, 1), *d2 = delivery(b, 2);
    CHECK(json_array_size(d0) == 2, "index 0: %zu states", json_array_size(d0));
    json_t *x = json_array_get(d0, 0);
    CHECK_STR(jstr(x, "address"), "a0@example.net", "sorted by address");
    CHECK_STR(jstr(x, "state"), "delivered", "state");
    CHECK_STR(jstr(x, "time"), "2023-11-14T22:13:21Z", "ISO 8601 time");
    CHECK(json_integer_value(json_object_get(x, "time_ms")) == 1700000001000LL, "time_ms");
    CHECK(json_object_size(x) == 4, "no detail: %zu members", json_object_size(x));
    x = json_array_get(d0, 1);
    CHECK_STR(jstr(x, "address"), "cc@example.org", "the rider");
    CHECK_STR(jstr(x, "state"), "complained", "complained");
    CHECK_STR(jstr(x, "feedback_type"), "abuse", "feedback type from text");
    CHECK(json_array_size(d1) == 1, "index 1: %zu states", json_array_size(d1));
    x = json_array_get(d1, 0);
    CHECK_STR(jstr(x, "type"), "Permanent", "bounce type from JSON");
    CHECK_STR(jstr(x, "subtype"), "General", "bounce subtype from JSON");
    CHECK_STR(jstr(x, "diagnostic"), "smtp; 550 5.1.1 user unknown", "diagnostic from JSON");
    x = json_array_get(d2, 0);
    CHECK(json_array_size(d2) == 1, "index 2: %zu states", json_array_size(d2));
    CHECK_STR(jstr(x, "type"), "Transient", "bounce type from text");
    CHECK_STR(jstr(x, "subtype"), "MailboxFull", "bounce subtype from text");
    CHECK_STR(jstr(x, "diagnostic"), "552 full", "diagnostic from text");
    /* counters from the hash; absent ones 0 */
    CHECK(json_integer_value(json_object_get(b, "delivered")) == 1, "delivered");
    CHECK(json_integer_value(json_object_get(b, "bounced")) == 1, "bounced");
    CHECK(json_integer_value(json_object_get(b, "complained")) == 1, "complained");
    CHECK(json_is_integer(json_object_get(b, "delayed")) &&
              json_integer_value(json_object_get(b, "delayed")) == 0,
          "delayed absent: 0");
    CHECK(json_integer_value(json_object_get(b, "rejected")) == 0, "rejected");
    CHECK(json_integer_value(json_object_get(b, "suppressed")) == 0, "suppressed");
    /* one copy of the batch keeps its states */
    qview_show_only(b, 1);
    CHECK(json_array_size(delivery(b, 0)) == 1, "the copy's states");
    json_decref(b);
    reply_free(r);
}

static void test_show_without_states(void)
{
    /* a reply of five elements (no state key): every recipient's delivery
     * is an empty array */
    redisReply *r = arr(5,
                        strs(12, "n", "1", "client", "app", "total", "2", "first", "0", "created",
                             "1700000000000", "sent", "0"),
                        strs(0), strs(2, "a@example.net", "b@example.net"), strs(0), str("0"));
    json_t *b = qview_show_json(ID, r);
    CHECK(b != NULL, "a view");
    CHECK(json_is_array(delivery(b, 0)) && json_array_size(delivery(b, 0)) == 0, "none");
    CHECK(json_integer_value(json_object_get(b, "delivered")) == 0, "delivered 0");
    json_decref(b);
    reply_free(r);
}

static void test_show_pages(void)
{
    /* states come with whichever page's scan step found them */
    redisReply *p1 = arr(7, hash_with_counters(), strs(2, "0", "s m0"),
                         strs(2, "a0@example.net", "a1@example.net"), strs(0), str("0"),
                         strs(2, "2:a2@example.net", "rejected\t1700000005000\t"), str("17"));
    redisReply *p2 =
        arr(7, hash_with_counters(), strs(2, "2", "s m2"), strs(1, "a2@example.net"), strs(0),
            str("0"), strs(2, "0:a0@example.net", "delayed\t1700000006000\t"), str("0"));
    /* a page of the earlier five-element shape adds no states */
    redisReply *p3 = arr(5, hash_with_counters(), strs(0), strs(0),
                         strs(3, "1", "2", "1700000009000"), str("0"));
    redisReply *pages[3] = {p1, p2, p3};
    json_t *b = qview_show_pages(ID, pages, 3);
    CHECK(b != NULL, "a view");
    CHECK_STR(jstr(json_array_get(delivery(b, 2), 0), "state"), "rejected", "from page 1");
    CHECK_STR(jstr(json_array_get(delivery(b, 0), 0), "state"), "delayed", "from page 2");
    CHECK(json_array_size(delivery(b, 1)) == 0, "index 1: none");
    CHECK_STR(jstr(json_array_get(json_object_get(b, "recipients"), 1), "state"), "retry",
              "page 3's retry");
    json_decref(b);
    for (int k = 0; k < 3; k++)
        reply_free(pages[k]);
}

static void test_stats_counters(void)
{
    redisReply *row = strs(17, ID, "1700000000000", "13", "6", "1", "1", "app", "SendEmail", "2",
                           "", "", "4", "1", "1", "", "0", "2");
    redisReply *r = arr(6, str("0"), str(""), str("0"), str("0"), str("0"), row);
    json_t *s = qview_stats_json(r, 1700000001000LL);
    CHECK(s != NULL, "a summary");
    json_t *b = json_array_get(json_object_get(s, "recent"), 0);
    CHECK(json_array_size(json_object_get(s, "recent")) == 1, "one row");
    static const char *const names[6] = {"delivered", "bounced",  "complained",
                                         "delayed",   "rejected", "suppressed"};
    static const long long want[6] = {4, 1, 1, 0, 0, 2};
    for (int k = 0; k < 6; k++)
        CHECK(json_integer_value(json_object_get(b, names[k])) == want[k], "%s", names[k]);
    /* pending: total - sent - done - dead - cancelled - suppressed */
    CHECK(json_integer_value(json_object_get(b, "pending")) == 1, "pending");
    json_decref(s);
    reply_free(r);
}

/* The relays' counts: stats.lua's seventh element; a reply without it (a
 * script before relays) or a malformed one: zeros. */
static void test_stats_relays(void)
{
    static const char *const names[4] = {"queued", "inflight", "retrying", "dead"};
    redisReply *r = arr(7, str("0"), str(""), str("0"), str("0"), str("0"), strs(0),
                        strs(4, "5", "2", "3", "1"));
    json_t *s = qview_stats_json(r, 1700000001000LL);
    CHECK(s != NULL, "a summary with relays");
    static const long long want[4] = {5, 2, 3, 1};
    for (int k = 0; k < 4; k++)
        CHECK(json_integer_value(json_object_get(json_object_get(s, "relays"), names[k])) ==
                  want[k],
              "relays %s", names[k]);
    json_decref(s);
    reply_free(r);
    r = arr(6, str("0"), str(""), str("0"), str("0"), str("0"), strs(0));
    redisReply *bad =
        arr(7, str("0"), str(""), str("0"), str("0"), str("0"), strs(0), strs(2, "5", "2"));
    for (int v = 0; v < 2; v++) {
        s = qview_stats_json(v ? bad : r, 1700000001000LL);
        CHECK(s != NULL, "a summary (%d)", v);
        for (int k = 0; k < 4; k++)
            CHECK(json_is_integer(json_object_get(json_object_get(s, "relays"), names[k])) &&
                      json_integer_value(json_object_get(json_object_get(s, "relays"), names[k])) ==
                          0,
                  "relays %s zero (%d)", names[k], v);
        json_decref(s);
    }
    reply_free(r);
    reply_free(bad);
}

static void test_show_keys(void)
{
    char *keys[QVIEW_SHOW_KEYS];
    qview_show_keys("p:{p}:", ID, keys);
    CHECK_STR(keys[0], "p:{p}:b:" ID, "batch");
    CHECK_STR(keys[3], "p:{p}:d", "delay set");
    CHECK_STR(keys[4], "p:{p}:e:" ID, "delivery states");
    for (int k = 0; k < QVIEW_SHOW_KEYS; k++)
        free(keys[k]);
}

int main(void)
{
    test_show_states();
    test_show_without_states();
    test_show_pages();
    test_stats_counters();
    test_stats_relays();
    test_show_keys();
    return check_done("test_qview");
}
