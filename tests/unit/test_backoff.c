/* Unit tests for backoff: outcome classification and the retry schedule. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "backoff.h"
#include "check.h"

#define OK    BACKOFF_OK
#define RETRY BACKOFF_RETRY
#define THR   BACKOFF_THROTTLED
#define QUOTA BACKOFF_QUOTA
#define PERM  BACKOFF_PERMANENT

#define MSG_RATE  "Maximum sending rate exceeded."
#define MSG_DAILY "Daily message quota exceeded."
#define MSG_PAUSED                                                                                 \
    "Sending paused for this account. For more information, please check the inbox of the "        \
    "email address associated with your AWS account."
#define MSG_SIG   "The request signature we calculated does not match the signature you provided."
#define MSG_TOKEN "The security token included in the request is invalid."
#define NS_CORAL  ":http://internal.amazon.com/coral/com.amazonaws.sesv2/"

/* A wire code as SES sends it on one API, with its status and class. */
struct code_case {
    int api;
    long status;
    const char *code;
    enum backoff_class want;
};

/* Every code of the table, each spelling on the API that sends it. */
static const struct code_case code_cases[] = {
    /* throttling */
    {1, 400, "Throttling", THR},
    {2, 400, "ThrottlingException", THR},
    {2, 429, "TooManyRequestsException", THR},
    {1, 400, "RequestThrottled", THR},
    {2, 400, "RequestThrottledException", THR},
    {2, 400, "ThrottledException", THR},
    {2, 400, "ProvisionedThroughputExceededException", THR},
    {2, 400, "TransactionInProgressException", THR},
    {2, 400, "EC2ThrottledException", THR},
    {1, 400, "RequestLimitExceeded", THR},
    {1, 400, "BandwidthLimitExceeded", THR},
    {1, 503, "SlowDown", THR},
    {1, 400, "PriorRequestNotComplete", THR},
    /* too many resources */
    {1, 400, "LimitExceeded", PERM},
    {2, 400, "LimitExceededException", PERM},
    /* transient */
    {1, 500, "InternalFailure", RETRY},
    {2, 500, "InternalFailure", RETRY},
    {2, 500, "InternalServiceErrorException", RETRY},
    {1, 503, "ServiceUnavailable", RETRY},
    {2, 503, "ServiceUnavailable", RETRY},
    {2, 503, "ServiceUnavailableException", RETRY},
    {1, 408, "RequestTimeout", RETRY},
    {2, 408, "RequestTimeoutException", RETRY},
    {2, 500, "ConcurrentModificationException", RETRY},
    /* upstream auth: the operator fixes it, the mail waits */
    {1, 403, "SignatureDoesNotMatch", RETRY},
    {2, 403, "InvalidSignatureException", RETRY},
    {1, 403, "InvalidClientTokenId", RETRY},
    {2, 403, "UnrecognizedClientException", RETRY},
    {1, 403, "ExpiredToken", RETRY},
    {2, 403, "ExpiredTokenException", RETRY},
    {1, 400, "IncompleteSignature", RETRY},
    {1, 403, "IncompleteSignature", RETRY},
    {2, 403, "IncompleteSignatureException", RETRY},
    {1, 403, "MissingAuthenticationToken", RETRY},
    {2, 403, "MissingAuthenticationTokenException", RETRY},
    {1, 403, "AccessDenied", RETRY},
    {1, 400, "AccessDeniedException", RETRY},
    {2, 403, "AccessDeniedException", RETRY},
    {1, 400, "RequestExpired", RETRY},
    {1, 403, "OptInRequired", RETRY},
    /* paused */
    {1, 400, "AccountSendingPausedException", RETRY},
    {2, 400, "AccountSendingPausedException", RETRY},
    {1, 400, "ConfigurationSetSendingPausedException", RETRY},
    {2, 400, "ConfigurationSetSendingPausedException", RETRY},
    {2, 400, "SendingPausedException", RETRY},
    /* permanent */
    {1, 400, "MessageRejected", PERM},
    {2, 400, "MessageRejected", PERM},
    {1, 400, "InvalidParameterValue", PERM},
    {2, 400, "BadRequestException", PERM},
    {1, 400, "MailFromDomainNotVerifiedException", PERM},
    {2, 400, "MailFromDomainNotVerifiedException", PERM},
    {1, 400, "ConfigurationSetDoesNotExist", PERM},
    {1, 400, "TemplateDoesNotExist", PERM},
    {2, 404, "NotFoundException", PERM},
    {1, 400, "FromEmailAddressNotVerified", PERM},
    {1, 400, "ProductionAccessNotGranted", PERM},
    {2, 400, "AccountSuspendedException", PERM},
    {1, 400, "MissingParameter", PERM},
    {1, 400, "InvalidParameterCombination", PERM},
    {1, 400, "MissingAction", PERM},
    {1, 400, "InvalidAction", PERM},
    {2, 404, "UnknownOperationException", PERM},
    {1, 400, "InvalidQueryParameter", PERM},
    {1, 404, "MalformedQueryString", PERM},
    {1, 413, "RequestEntityTooLarge", PERM},
    {2, 413, "RequestEntityTooLargeException", PERM},
};

#define NCODES (sizeof code_cases / sizeof code_cases[0])

/* One full classification input and the class it must give. */
struct classify_case {
    const char *what;
    int api;
    long status;
    const char *code;
    const char *message;
    int transport;
    enum backoff_class want;
};

static const struct classify_case classify_cases[] = {
    /* success */
    {"v1 200", 1, 200, NULL, NULL, 0, OK},
    {"v2 200", 2, 200, NULL, NULL, 0, OK},
    {"204", 2, 204, NULL, NULL, 0, OK},
    {"2xx wins over a code", 1, 200, "Throttling", MSG_RATE, 0, OK},
    /* transport */
    {"connect failure", 1, 0, NULL, NULL, 1, RETRY},
    {"timeout, v2", 2, 0, NULL, NULL, 1, RETRY},
    {"truncated body after 200", 1, 200, NULL, NULL, 1, RETRY},
    {"transport wins over a code", 1, 400, "MessageRejected", "x", 1, RETRY},
    /* the two Throttling messages */
    {"v1 rate", 1, 400, "Throttling", MSG_RATE, 0, THR},
    {"v1 daily quota", 1, 400, "Throttling", MSG_DAILY, 0, QUOTA},
    {"v1 quota, upper case", 1, 400, "Throttling", "DAILY MESSAGE QUOTA EXCEEDED.", 0, QUOTA},
    {"v1 quota, other wording", 1, 400, "Throttling", "Your quota for the daily limit", 0, QUOTA},
    {"v1 only daily", 1, 400, "Throttling", "daily limit", 0, THR},
    {"v1 only quota", 1, 400, "Throttling", "quota", 0, THR},
    {"v1 Throttling, no message", 1, 400, "Throttling", NULL, 0, THR},
    {"v1 Throttling, empty message", 1, 400, "Throttling", "", 0, THR},
    {"v2 429 rate", 2, 429, "TooManyRequestsException", MSG_RATE, 0, THR},
    {"v2 429 daily", 2, 429, "TooManyRequestsException", MSG_DAILY, 0, QUOTA},
    {"v2 ThrottlingException daily", 2, 400, "ThrottlingException", MSG_DAILY, 0, QUOTA},
    {"v2 LimitExceeded daily", 2, 400, "LimitExceededException", MSG_DAILY, 0, QUOTA},
    {"v2 LimitExceeded resources", 2, 400, "LimitExceededException",
     "Too many instances of the resource type", 0, PERM},
    {"v1 LimitExceeded daily", 1, 400, "LimitExceeded", MSG_DAILY, 0, QUOTA},
    {"v1 LimitExceeded no message", 1, 400, "LimitExceeded", NULL, 0, PERM},
    /* paused through MessageRejected (v1 wording seen on real accounts) */
    {"v1 MessageRejected paused", 1, 400, "MessageRejected", MSG_PAUSED, 0, RETRY},
    {"v1 MessageRejected unverified", 1, 400, "MessageRejected",
     "Email address is not verified. The following identities failed the check in region "
     "US-EAST-1: a@example.com",
     0, PERM},
    {"v1 MessageRejected no message", 1, 400, "MessageRejected", NULL, 0, PERM},
    {"v1 paused message on another code", 1, 400, "InvalidParameterValue", "paused", 0, PERM},
    {"v1 quota message on a permanent code", 1, 400, "MessageRejected", MSG_DAILY, 0, PERM},
    /* namespace suffix and prefix stripping */
    {"v2 429 namespace", 2, 429, "TooManyRequestsException" NS_CORAL, MSG_RATE, 0, THR},
    {"v2 namespace daily", 2, 429, "TooManyRequestsException" NS_CORAL, MSG_DAILY, 0, QUOTA},
    {"v2 MessageRejected namespace", 2, 400, "MessageRejected" NS_CORAL, "bad", 0, PERM},
    {"v2 auth namespace", 2, 403, "UnrecognizedClientException:http://x/", MSG_TOKEN, 0, RETRY},
    {"v2 __type prefix", 2, 400, "com.amazonaws.sesv2#BadRequestException", "x", 0, PERM},
    {"v2 prefix and namespace", 2, 500, "aws#InternalServiceErrorException:http://x#y", NULL, 0,
     RETRY},
    {"blanks around", 2, 429, "  TooManyRequestsException  ", NULL, 0, THR},
    {"blank before namespace", 2, 400, "ThrottlingException :ns", NULL, 0, THR},
    {"only a namespace, 400", 2, 400, ":http://x/", NULL, 0, PERM},
    {"only a namespace, 503", 2, 503, ":http://x/", NULL, 0, RETRY},
    {"only a prefix", 2, 500, "com.amazonaws#", NULL, 0, RETRY},
    /* codes are exact */
    {"lower-case code is unknown", 1, 400, "throttling", MSG_RATE, 0, PERM},
    {"longer code is unknown", 1, 400, "ThrottlingX", NULL, 0, PERM},
    {"prefix of a code is unknown", 1, 400, "Throttl", NULL, 0, PERM},
    /* NULL and empty code: the status decides */
    {"NULL code 400", 1, 400, NULL, NULL, 0, PERM},
    {"NULL code 403", 2, 403, NULL, "denied", 0, PERM},
    {"empty code 400", 1, 400, "", "x", 0, PERM},
    {"NULL code 429", 2, 429, NULL, NULL, 0, THR},
    {"NULL code 429 daily", 2, 429, NULL, MSG_DAILY, 0, QUOTA},
    {"NULL code 408", 1, 408, NULL, NULL, 0, RETRY},
    {"NULL code 500", 1, 500, NULL, NULL, 0, RETRY},
    {"NULL code 502", 2, 502, NULL, NULL, 0, RETRY},
    {"NULL code 503", 2, 503, NULL, NULL, 0, RETRY},
    {"NULL code 504", 1, 504, NULL, NULL, 0, RETRY},
    {"NULL code 599", 1, 599, NULL, NULL, 0, RETRY},
    /* unknown codes */
    {"unknown 4xx v1", 1, 400, "SomethingNew", "x", 0, PERM},
    {"unknown 4xx v2", 2, 400, "SomethingNewException", "x", 0, PERM},
    {"unknown 404", 2, 404, "NoSuchThing", NULL, 0, PERM},
    {"unknown 409", 2, 409, "ConflictException", NULL, 0, PERM},
    {"unknown 429", 2, 429, "SomethingNewException", MSG_RATE, 0, THR},
    {"unknown 408", 1, 408, "SomethingNew", NULL, 0, RETRY},
    {"unknown 500", 1, 500, "SomethingNew", NULL, 0, RETRY},
    {"unknown 503 v2", 2, 503, "SomethingNewException", NULL, 0, RETRY},
    {"unknown 4xx daily message", 1, 400, "SomethingNew", MSG_DAILY, 0, PERM},
    /* statuses that are neither 2xx nor 4xx: not the mail's fault */
    {"no status, no transport flag", 1, 0, NULL, NULL, 0, RETRY},
    {"negative status", 1, -1, NULL, NULL, 0, RETRY},
    {"1xx", 1, 100, NULL, NULL, 0, RETRY},
    {"3xx redirect", 1, 302, NULL, NULL, 0, RETRY},
    {"status 600", 2, 600, NULL, NULL, 0, RETRY},
    /* a known code decides whatever the status */
    {"Throttling with 503", 1, 503, "Throttling", MSG_RATE, 0, THR},
    {"MessageRejected with 500", 1, 500, "MessageRejected", NULL, 0, PERM},
    {"InternalFailure with 400", 1, 400, "InternalFailure", NULL, 0, RETRY},
    /* api values other than 1 and 2 still find both spellings */
    {"api 0, v1 code", 0, 400, "Throttling", NULL, 0, THR},
    {"api 7, v2 code", 7, 400, "BadRequestException", NULL, 0, PERM},
};

#define NCLASSIFY (sizeof classify_cases / sizeof classify_cases[0])

/* Each table code classifies as expected on its own API, on the other API,
 * with a namespace suffix, and with the messages NULL and empty. */
static void test_codes(void)
{
    for (size_t i = 0; i < NCODES; i++) {
        const struct code_case *c = &code_cases[i];
        char ns[128];
        int other = c->api == 1 ? 2 : 1;

        CHECK(backoff_classify(c->api, c->status, c->code, NULL, 0) == c->want,
              "v%d %ld %s: got %s, want %s", c->api, c->status, c->code,
              backoff_class_name(backoff_classify(c->api, c->status, c->code, NULL, 0)),
              backoff_class_name(c->want));
        CHECK(backoff_classify(c->api, c->status, c->code, "", 0) == c->want, "%s, empty message",
              c->code);
        CHECK(backoff_classify(other, c->status, c->code, NULL, 0) == c->want, "%s on v%d", c->code,
              other);
        snprintf(ns, sizeof ns, "%s%s", c->code, NS_CORAL);
        CHECK(backoff_classify(c->api, c->status, ns, NULL, 0) == c->want, "%s", ns);
        CHECK(backoff_classify(c->api, c->status, c->code, NULL, 1) == RETRY, "%s, transport",
              c->code);
        CHECK(backoff_classify(c->api, 200, c->code, NULL, 0) == OK, "%s, 200", c->code);
    }
}

/* The full input table. */
static void test_classify(void)
{
    for (size_t i = 0; i < NCLASSIFY; i++) {
        const struct classify_case *c = &classify_cases[i];
        enum backoff_class got =
            backoff_classify(c->api, c->status, c->code, c->message, c->transport);
        CHECK(got == c->want, "%s: got %s, want %s", c->what, backoff_class_name(got),
              backoff_class_name(c->want));
    }
}

/* Class names are stable, and an out-of-range class has one too. */
static void test_names(void)
{
    CHECK_STR(backoff_class_name(BACKOFF_OK), "ok", "ok");
    CHECK_STR(backoff_class_name(BACKOFF_RETRY), "retry", "retry");
    CHECK_STR(backoff_class_name(BACKOFF_THROTTLED), "throttled", "throttled");
    CHECK_STR(backoff_class_name(BACKOFF_QUOTA), "quota", "quota");
    CHECK_STR(backoff_class_name(BACKOFF_PERMANENT), "permanent", "permanent");
    CHECK_STR(backoff_class_name(BACKOFF_CLASS_COUNT), "unknown", "count");
    CHECK_STR(backoff_class_name((enum backoff_class) - 1), "unknown", "negative");
}

/* One ceiling: attempt, base, cap and the expected min(cap, base * 2^attempt). */
struct ceiling_case {
    int attempt;
    int64_t base;
    int64_t cap;
    int64_t want;
};

static const struct ceiling_case ceiling_cases[] = {
    {0, 1000, 300000, 1000},
    {1, 1000, 300000, 2000},
    {2, 1000, 300000, 4000},
    {8, 1000, 300000, 256000},
    {9, 1000, 300000, 300000},
    {10, 1000, 300000, 300000},
    {62, 1000, 300000, 300000},
    {63, 1000, 300000, 300000},
    {64, 1000, 300000, 300000},
    {1000, 1000, 300000, 300000},
    {2147483647, 1000, 300000, 300000},
    {-1, 1000, 300000, 1000},
    {-2147483647 - 1, 1000, 300000, 1000},
    {0, 0, 300000, 0},
    {1000, 0, 300000, 0},
    {0, 1000, 0, 0},
    {5, 1000, -5, 0},
    {5, -1000, 300000, 0},
    {0, 500000, 300000, 300000},
    {0, 300000, 300000, 300000},
    {3, 1, 10, 8},
    {4, 1, 10, 10},
    {62, 1, INT64_MAX, INT64_C(1) << 62},
    {63, 1, INT64_MAX, INT64_MAX},
    {1000, 1, INT64_MAX, INT64_MAX},
    {1, INT64_MAX / 2, INT64_MAX, INT64_MAX - 1},
    {2, INT64_MAX / 2, INT64_MAX, INT64_MAX},
    {1000, INT64_MAX, INT64_MAX, INT64_MAX},
    {30, 3, INT64_C(1) << 40, INT64_C(3) << 30},
};

#define NCEILING (sizeof ceiling_cases / sizeof ceiling_cases[0])

/* backoff_ceiling_ms against the table. */
static void test_ceiling(void)
{
    for (size_t i = 0; i < NCEILING; i++) {
        const struct ceiling_case *c = &ceiling_cases[i];
        int64_t got = backoff_ceiling_ms(c->attempt, c->base, c->cap);
        CHECK(got == c->want, "ceiling(%d, %lld, %lld): got %lld, want %lld", c->attempt,
              (long long)c->base, (long long)c->cap, (long long)got, (long long)c->want);
    }
}

/* Ceilings grow with the attempt until the cap, then stay there. */
static void test_monotone(void)
{
    static const int64_t bases[] = {0, 1, 7, 500, BACKOFF_BASE_MS, 123456789};
    static const int64_t caps[] = {0, 1, 1000, BACKOFF_CAP_MS, INT64_C(1) << 50, INT64_MAX};

    for (size_t b = 0; b < sizeof bases / sizeof bases[0]; b++) {
        for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
            int64_t prev = -1;
            bool mono = true, capped = true, doubling = true;
            for (int a = 0; a <= 1000; a++) {
                int64_t c = backoff_ceiling_ms(a, bases[b], caps[k]);
                if (c < prev)
                    mono = false;
                if (c > caps[k])
                    capped = false;
                if (prev > 0 && c != caps[k] && c != prev * 2)
                    doubling = false;
                prev = c;
            }
            CHECK(mono, "base %lld cap %lld: not monotone", (long long)bases[b],
                  (long long)caps[k]);
            CHECK(capped, "base %lld cap %lld: over the cap", (long long)bases[b],
                  (long long)caps[k]);
            CHECK(doubling, "base %lld cap %lld: not doubling", (long long)bases[b],
                  (long long)caps[k]);
            CHECK(prev == (bases[b] == 0 ? 0 : caps[k]), "base %lld cap %lld: ends at %lld",
                  (long long)bases[b], (long long)caps[k], (long long)prev);
        }
    }
}

/* Delays stay in [0, ceiling] for many attempts and random values, reach
 * both ends, and follow rnd % (ceiling + 1). */
static void test_delay(void)
{
    static const uint64_t rnds[] = {0,
                                    1,
                                    2,
                                    999,
                                    1000,
                                    1001,
                                    299999,
                                    300000,
                                    300001,
                                    UINT64_C(0x9e3779b97f4a7c15),
                                    (uint64_t)INT64_MAX,
                                    (uint64_t)INT64_MAX + 1,
                                    UINT64_MAX - 1,
                                    UINT64_MAX};
    uint64_t x = UINT64_C(0x243f6a8885a308d3);
    bool in_range = true, formula = true;

    for (int a = -3; a <= 1000; a++) {
        int64_t ceil = backoff_ceiling_ms(a, BACKOFF_BASE_MS, BACKOFF_CAP_MS);
        for (size_t r = 0; r < sizeof rnds / sizeof rnds[0] + 64; r++) {
            uint64_t rnd;
            if (r < sizeof rnds / sizeof rnds[0]) {
                rnd = rnds[r];
            } else {
                x ^= x << 13; /* xorshift64 */
                x ^= x >> 7;
                x ^= x << 17;
                rnd = x;
            }
            int64_t d = backoff_delay_ms(a, BACKOFF_BASE_MS, BACKOFF_CAP_MS, rnd);
            if (d < 0 || d > ceil)
                in_range = false;
            if (d != (int64_t)(rnd % (uint64_t)(ceil + 1)))
                formula = false;
        }
    }
    CHECK(in_range, "a delay left [0, ceiling]");
    CHECK(formula, "a delay is not rnd %% (ceiling + 1)");

    CHECK(backoff_delay_ms(0, BACKOFF_BASE_MS, BACKOFF_CAP_MS, 0) == 0, "rnd 0");
    CHECK(backoff_delay_ms(0, BACKOFF_BASE_MS, BACKOFF_CAP_MS, 1000) == 1000, "top of attempt 0");
    CHECK(backoff_delay_ms(0, BACKOFF_BASE_MS, BACKOFF_CAP_MS, 1001) == 0, "wraps after 1000");
    CHECK(backoff_delay_ms(1, BACKOFF_BASE_MS, BACKOFF_CAP_MS, 2000) == 2000, "top of attempt 1");
    CHECK(backoff_delay_ms(1000, BACKOFF_BASE_MS, BACKOFF_CAP_MS, 300000) == 300000,
          "top of the cap");
    CHECK(backoff_delay_ms(1000, BACKOFF_BASE_MS, BACKOFF_CAP_MS, 300001) == 0, "wraps at cap");
    CHECK(backoff_delay_ms(1000, BACKOFF_BASE_MS, BACKOFF_CAP_MS, UINT64_MAX) ==
              (int64_t)(UINT64_MAX % 300001),
          "UINT64_MAX at attempt 1000");
    CHECK(backoff_delay_ms(2147483647, BACKOFF_BASE_MS, BACKOFF_CAP_MS, UINT64_MAX) <=
              BACKOFF_CAP_MS,
          "INT_MAX attempt");
    CHECK(backoff_delay_ms(5, 0, BACKOFF_CAP_MS, UINT64_MAX) == 0, "base 0");
    CHECK(backoff_delay_ms(5, BACKOFF_BASE_MS, 0, UINT64_MAX) == 0, "cap 0");
    CHECK(backoff_delay_ms(1000, 1, INT64_MAX, UINT64_MAX) ==
              (int64_t)(UINT64_MAX % ((uint64_t)INT64_MAX + 1)),
          "cap INT64_MAX, rnd UINT64_MAX");
    CHECK(backoff_delay_ms(1000, 1, INT64_MAX, (uint64_t)INT64_MAX) == INT64_MAX,
          "cap INT64_MAX reached");
    CHECK(backoff_delay_ms(1000, 1, INT64_MAX, 0) == 0, "cap INT64_MAX, rnd 0");
}

/* One give-up question and its answer. */
struct give_up_case {
    int attempt;
    int max_attempts;
    bool want;
};

static const struct give_up_case give_up_cases[] = {
    {0, 12, false},
    {10, 12, false},
    {11, 12, true},
    {12, 12, true},
    {1000, 12, true},
    {0, 1, true},
    {0, 2, false},
    {1, 2, true},
    {0, 0, true},
    {0, -5, true},
    {-1, 2, false},
    {-1, 1, true},
    {0, 100, false},
    {98, 100, false},
    {99, 100, true},
    {2147483647, 2147483647, true},
    {2147483646, 2147483647, true},
    {2147483645, 2147483647, false},
    {-2147483647 - 1, 12, false},
};

#define NGIVEUP (sizeof give_up_cases / sizeof give_up_cases[0])

/* backoff_give_up against the table, and the number of tries it allows. */
static void test_give_up(void)
{
    for (size_t i = 0; i < NGIVEUP; i++) {
        const struct give_up_case *c = &give_up_cases[i];
        CHECK(backoff_give_up(c->attempt, c->max_attempts) == c->want, "give_up(%d, %d) != %d",
              c->attempt, c->max_attempts, c->want);
    }
    for (int max = 1; max <= 100; max++) {
        int tries = 1; /* the first send */
        for (int a = 0; !backoff_give_up(a, max); a++)
            tries++;
        CHECK(tries == max, "max_attempts %d allows %d tries", max, tries);
    }
}

struct skew_case {
    const char *code, *message;
    bool want;
};

static const struct skew_case skew_cases[] = {
    {"SignatureDoesNotMatch",
     "Signature expired: 20181107T003842Z is now earlier than 20181107T005054Z "
     "(20181107T005554Z - 5 min.)",
     true},
    {"SignatureDoesNotMatch",
     "Signature not yet current: 20181107T013842Z is still later than 20181107T010054Z "
     "(20181107T005554Z + 5 min.)",
     true},
    {"InvalidSignatureException", "Signature expired: 20181107T003842Z is now earlier", true},
    {"InvalidSignatureException:http://internal.amazon.com/coral/com.amazon.coral.service/",
     "signature EXPIRED: x", true},
    {"  RequestExpired ", "Request has expired.", true},
    {"RequestExpired", NULL, true},
    {"SignatureDoesNotMatch",
     "The request signature we calculated does not match the signature you provided.", false},
    {"SignatureDoesNotMatch", NULL, false},
    {"InvalidClientTokenId", "Signature expired: x", false},
    {"Throttling", "Maximum sending rate exceeded.", false},
    {NULL, "Signature expired: x", false},
    {"", "Signature not yet current", false},
    {"SignatureDoesNotMatchX", "Signature expired: x", false},
};

#define NSKEW (sizeof skew_cases / sizeof skew_cases[0])

/* backoff_clock_skew against the table. */
static void test_clock_skew(void)
{
    for (size_t i = 0; i < NSKEW; i++) {
        const struct skew_case *c = &skew_cases[i];
        CHECK(backoff_clock_skew(c->code, c->message) == c->want, "case %zu: %s / %s", i,
              c->code ? c->code : "(null)", c->message ? c->message : "(null)");
    }
}

/* Run every group. */
int main(void)
{
    test_codes();
    test_classify();
    test_names();
    test_ceiling();
    test_monotone();
    test_delay();
    test_give_up();
    test_clock_skew();
    return check_done("backoff");
}
