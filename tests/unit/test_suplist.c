/* Unit tests for suplist: suppression list fields, values and import lines. */
#include <string.h>

#include "check.h"
#include "suplist.h"

static void test_key(void)
{
    static const struct {
        const char *in, *want; /* want NULL: refused */
    } cases[] = {
        {"a@x.example", "a@x.example"},
        {"Bob@Example.COM", "bob@example.com"},
        {"  user+tag@X.example\t", "user+tag@x.example"},
        {"Bob Smith <Bob@Example.com>", "bob@example.com"},
        {"\"Smith, Bob\" <b@x.example>", "b@x.example"},
        {"=?utf-8?B?w6k=?= <E@x.example>", "e@x.example"},
        {"not-an-email", NULL},
        {"a@x.example, b@x.example", NULL},
        {"", NULL},
        {"é@x.example", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char key[SUPLIST_MAX_KEY + 1];
        const char *why = NULL;
        int n = suplist_key(cases[i].in, strlen(cases[i].in), key, &why);
        if (cases[i].want == NULL) {
            CHECK(n == -1 && why != NULL, "key %s refused", cases[i].in);
            continue;
        }
        CHECK(n == (int)strlen(cases[i].want), "key %s: length %d", cases[i].in, n);
        if (n >= 0)
            CHECK_STR(key, cases[i].want, cases[i].in);
    }
}

static void test_reason_value(void)
{
    CHECK_STR(suplist_reason("bounce"), "BOUNCE", "bounce");
    CHECK_STR(suplist_reason("Complaint"), "COMPLAINT", "complaint");
    CHECK_STR(suplist_reason("TRANSIENT"), "TRANSIENT", "transient");
    CHECK_STR(suplist_reason(""), "MANUAL", "empty");
    CHECK_STR(suplist_reason(NULL), "MANUAL", "NULL");
    CHECK(suplist_reason("spam") == NULL, "unknown reason");
    struct buf v = BUF_INIT;
    suplist_value("BOUNCE", 1700000000123, "event", &v);
    CHECK_STR(buf_cstr(&v), "BOUNCE\t1700000000123\tevent", "value");
    struct suplist_entry e;
    suplist_entry_parse(v.data, v.len, &e);
    CHECK(strcmp(e.reason, "BOUNCE") == 0 && e.ms == 1700000000123 &&
              strcmp(e.source, "event") == 0,
          "value read back");
    suplist_entry_parse("COMPLAINT", 9, &e);
    CHECK(strcmp(e.reason, "COMPLAINT") == 0 && e.ms == 0 && e.source[0] == '\0', "reason only");
    suplist_entry_parse("A-REASON-LONGER-THAN-ITS-FIELD\t5", 32, &e);
    CHECK(strlen(e.reason) == sizeof e.reason - 1 && e.ms == 5, "cut to fit");
    buf_free(&v);
}

static void test_import_line(void)
{
    static const struct {
        const char *line;
        bool first;
        enum suplist_line want;
        const char *key, *reason;
    } cases[] = {
        {"a@x.example", false, SUPLIST_LINE_ENTRY, "a@x.example", "MANUAL"},
        {"A@X.example,BOUNCE", false, SUPLIST_LINE_ENTRY, "a@x.example", "BOUNCE"},
        {"a@x.example,complaint,2024-01-01T00:00:00Z\r", false, SUPLIST_LINE_ENTRY, "a@x.example",
         "COMPLAINT"},
        {"\"Bob <b@x.example>\",\"BOUNCE\"", false, SUPLIST_LINE_ENTRY, "b@x.example", "BOUNCE"},
        {"a@x.example,", false, SUPLIST_LINE_ENTRY, "a@x.example", "MANUAL"},
        {"  a@x.example  ", false, SUPLIST_LINE_ENTRY, "a@x.example", "MANUAL"},
        {"EmailAddress,Reason", true, SUPLIST_LINE_SKIP, NULL, NULL},
        {"address,reason", true, SUPLIST_LINE_SKIP, NULL, NULL},
        {"address,reason", false, SUPLIST_LINE_BAD, NULL, NULL},
        {"", false, SUPLIST_LINE_SKIP, NULL, NULL},
        {"\r", false, SUPLIST_LINE_SKIP, NULL, NULL},
        {"# comment", false, SUPLIST_LINE_SKIP, NULL, NULL},
        {"a@x.example,SPAM", false, SUPLIST_LINE_BAD, NULL, NULL},
        {"nope", false, SUPLIST_LINE_BAD, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char key[SUPLIST_MAX_KEY + 1] = "";
        const char *reason = NULL, *why = NULL;
        enum suplist_line l = suplist_import_line(cases[i].line, strlen(cases[i].line),
                                                  cases[i].first, "MANUAL", key, &reason, &why);
        CHECK(l == cases[i].want, "line %zu (%s): %d", i, cases[i].line, (int)l);
        if (l == SUPLIST_LINE_BAD)
            CHECK(why != NULL && why[0], "line %zu: a reason", i);
        if (l == SUPLIST_LINE_ENTRY && cases[i].want == SUPLIST_LINE_ENTRY) {
            CHECK_STR(key, cases[i].key, cases[i].line);
            CHECK_STR(reason, cases[i].reason, cases[i].line);
        }
    }
    char key[SUPLIST_MAX_KEY + 1];
    const char *reason = NULL, *why = NULL;
    CHECK(suplist_import_line("a@x.example", 11, false, "COMPLAINT", key, &reason, &why) ==
                  SUPLIST_LINE_ENTRY &&
              strcmp(reason, "COMPLAINT") == 0,
          "default reason");
}

int main(void)
{
    test_key();
    test_reason_value();
    test_import_line();
    return check_done("suplist");
}
