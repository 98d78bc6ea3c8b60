/* backoff: classification of upstream outcomes and the retry schedule.
 *
 * The code table is the single source of truth; docs/ERRORS.md mirrors it
 * with the reasoning per group. A code is matched exactly (SDKs compare
 * codes case-sensitively), messages case-insensitively.
 */
#include "backoff.h"

#include <stddef.h>
#include <string.h>

#define BACKOFF_F_QUOTA_MSG  0x1u /* a daily-quota message makes it BACKOFF_QUOTA */
#define BACKOFF_F_PAUSED_MSG 0x2u /* a "paused" message makes it BACKOFF_RETRY */

/* One known wire code: its v1 (Query) and v2 (REST-JSON) spellings. */
struct backoff_code {
    const char *v1; /* NULL: no v1 spelling */
    const char *v2; /* NULL: no v2 spelling */
    enum backoff_class cls;
    unsigned flags;
};

static const struct backoff_code backoff_codes[] = {
    /* Rate exceeded: every throttling code of the SDKs' retry lists. */
    {"Throttling", "ThrottlingException", BACKOFF_THROTTLED, BACKOFF_F_QUOTA_MSG},
    {NULL, "TooManyRequestsException", BACKOFF_THROTTLED, BACKOFF_F_QUOTA_MSG},
    {"RequestThrottled", "RequestThrottledException", BACKOFF_THROTTLED, BACKOFF_F_QUOTA_MSG},
    {NULL, "ThrottledException", BACKOFF_THROTTLED, BACKOFF_F_QUOTA_MSG},
    {NULL, "ProvisionedThroughputExceededException", BACKOFF_THROTTLED, BACKOFF_F_QUOTA_MSG},
    {NULL, "TransactionInProgressException", BACKOFF_THROTTLED, BACKOFF_F_QUOTA_MSG},
    {NULL, "EC2ThrottledException", BACKOFF_THROTTLED, BACKOFF_F_QUOTA_MSG},
    {"RequestLimitExceeded", NULL, BACKOFF_THROTTLED, BACKOFF_F_QUOTA_MSG},
    {"BandwidthLimitExceeded", NULL, BACKOFF_THROTTLED, BACKOFF_F_QUOTA_MSG},
    {"SlowDown", NULL, BACKOFF_THROTTLED, BACKOFF_F_QUOTA_MSG},
    {"PriorRequestNotComplete", NULL, BACKOFF_THROTTLED, BACKOFF_F_QUOTA_MSG},
    /* Too many resources on a send; daily quota when the message says so. */
    {"LimitExceeded", "LimitExceededException", BACKOFF_PERMANENT, BACKOFF_F_QUOTA_MSG},
    /* Transient faults of the service. */
    {"InternalFailure", "InternalServiceErrorException", BACKOFF_RETRY, 0},
    {"ServiceUnavailable", "ServiceUnavailableException", BACKOFF_RETRY, 0},
    {"RequestTimeout", "RequestTimeoutException", BACKOFF_RETRY, 0},
    {NULL, "ConcurrentModificationException", BACKOFF_RETRY, 0},
    /* The upstream refused sesgate's credentials, signature or clock. */
    {"SignatureDoesNotMatch", "InvalidSignatureException", BACKOFF_RETRY, 0},
    {"InvalidClientTokenId", "UnrecognizedClientException", BACKOFF_RETRY, 0},
    {"ExpiredToken", "ExpiredTokenException", BACKOFF_RETRY, 0},
    {"IncompleteSignature", "IncompleteSignatureException", BACKOFF_RETRY, 0},
    {"MissingAuthenticationToken", "MissingAuthenticationTokenException", BACKOFF_RETRY, 0},
    {"AccessDenied", "AccessDeniedException", BACKOFF_RETRY, 0},
    {"RequestExpired", NULL, BACKOFF_RETRY, 0},
    {"OptInRequired", NULL, BACKOFF_RETRY, 0},
    /* Sending paused for the account or the configuration set. */
    {"AccountSendingPausedException", "SendingPausedException", BACKOFF_RETRY, 0},
    {"ConfigurationSetSendingPausedException", "SendingPausedException", BACKOFF_RETRY, 0},
    /* The message or the request is wrong: resending it unchanged cannot help. */
    {"MessageRejected", "MessageRejected", BACKOFF_PERMANENT, BACKOFF_F_PAUSED_MSG},
    {"InvalidParameterValue", "BadRequestException", BACKOFF_PERMANENT, 0},
    {"MailFromDomainNotVerifiedException", "MailFromDomainNotVerifiedException", BACKOFF_PERMANENT,
     0},
    {"ConfigurationSetDoesNotExist", "NotFoundException", BACKOFF_PERMANENT, 0},
    {"TemplateDoesNotExist", "NotFoundException", BACKOFF_PERMANENT, 0},
    {"FromEmailAddressNotVerified", NULL, BACKOFF_PERMANENT, 0},
    {"ProductionAccessNotGranted", NULL, BACKOFF_PERMANENT, 0},
    {NULL, "AccountSuspendedException", BACKOFF_PERMANENT, 0},
    {"MissingParameter", NULL, BACKOFF_PERMANENT, 0},
    {"InvalidParameterCombination", NULL, BACKOFF_PERMANENT, 0},
    {"MissingAction", NULL, BACKOFF_PERMANENT, 0},
    {"InvalidAction", "UnknownOperationException", BACKOFF_PERMANENT, 0},
    {"InvalidQueryParameter", NULL, BACKOFF_PERMANENT, 0},
    {"MalformedQueryString", NULL, BACKOFF_PERMANENT, 0},
    {"RequestEntityTooLarge", "RequestEntityTooLargeException", BACKOFF_PERMANENT, 0},
};

#define BACKOFF_NCODES (sizeof backoff_codes / sizeof backoff_codes[0])

static const char *const backoff_names[BACKOFF_CLASS_COUNT] = {
    [BACKOFF_OK] = "ok",       [BACKOFF_RETRY] = "retry",         [BACKOFF_THROTTLED] = "throttled",
    [BACKOFF_QUOTA] = "quota", [BACKOFF_PERMANENT] = "permanent",
};

/* ASCII lower case of c. */
static unsigned char backoff_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/* True when s contains needle (lower case) ignoring ASCII case; NULL s: false. */
static bool backoff_contains(const char *s, const char *needle)
{
    size_t n = strlen(needle);

    if (s == NULL)
        return false;
    for (; *s != '\0'; s++) {
        size_t i = 0;
        while (i < n && s[i] != '\0' &&
               backoff_lower((unsigned char)s[i]) == (unsigned char)needle[i])
            i++;
        if (i == n)
            return true;
    }
    return false;
}

/* True when message announces the daily sending quota ("Daily message quota exceeded."). */
static bool backoff_quota_message(const char *message)
{
    return backoff_contains(message, "daily") && backoff_contains(message, "quota");
}

/* True when message announces paused sending ("Sending paused for this account."). */
static bool backoff_paused_message(const char *message)
{
    return backoff_contains(message, "paused");
}

/* True for a blank: space or tab. */
static bool backoff_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Reduce code to its bare name: drop surrounding blanks, a ":namespace"
 * suffix and a "prefix#"; sets *len (0 for NULL or nothing left). */
static const char *backoff_bare_code(const char *code, size_t *len)
{
    const char *end;
    const char *hash;

    *len = 0;
    if (code == NULL)
        return "";
    while (backoff_blank(*code))
        code++;
    end = code + strcspn(code, ":");
    while (end > code && backoff_blank(end[-1]))
        end--;
    hash = memrchr(code, '#', (size_t)(end - code));
    if (hash != NULL)
        code = hash + 1;
    *len = (size_t)(end - code);
    return code;
}

/* True when the counted string code equals the C string name (NULL: false). */
static bool backoff_same(const char *code, size_t len, const char *name)
{
    return name != NULL && strlen(name) == len && memcmp(code, name, len) == 0;
}

/* The table row whose api spelling, else other spelling, is code; or NULL. */
static const struct backoff_code *backoff_lookup(int api, const char *code, size_t len)
{
    size_t i;

    for (i = 0; i < BACKOFF_NCODES; i++) {
        const struct backoff_code *c = &backoff_codes[i];
        if (backoff_same(code, len, api == 2 ? c->v2 : c->v1))
            return c;
    }
    for (i = 0; i < BACKOFF_NCODES; i++) {
        const struct backoff_code *c = &backoff_codes[i];
        if (backoff_same(code, len, api == 2 ? c->v1 : c->v2))
            return c;
    }
    return NULL;
}

/* The class of an answer whose code is not in the table, from its status. */
static enum backoff_class backoff_by_status(long http_status, const char *message)
{
    if (http_status == 429)
        return backoff_quota_message(message) ? BACKOFF_QUOTA : BACKOFF_THROTTLED;
    if (http_status == 408)
        return BACKOFF_RETRY;
    if (http_status >= 400 && http_status <= 499)
        return BACKOFF_PERMANENT;
    return BACKOFF_RETRY;
}

/* Classify an upstream answer to a send (see backoff.h). */
enum backoff_class backoff_classify(int api, long http_status, const char *error_code,
                                    const char *message, int transport_error)
{
    const struct backoff_code *row;
    const char *code;
    size_t len;

    if (transport_error)
        return BACKOFF_RETRY;
    if (http_status >= 200 && http_status <= 299)
        return BACKOFF_OK;
    code = backoff_bare_code(error_code, &len);
    row = len > 0 ? backoff_lookup(api, code, len) : NULL;
    if (row == NULL)
        return backoff_by_status(http_status, message);
    if ((row->flags & BACKOFF_F_QUOTA_MSG) && backoff_quota_message(message))
        return BACKOFF_QUOTA;
    if ((row->flags & BACKOFF_F_PAUSED_MSG) && backoff_paused_message(message))
        return BACKOFF_RETRY;
    return row->cls;
}

/* True when code and message say the request's signing time was off. */
bool backoff_clock_skew(const char *error_code, const char *message)
{
    size_t len;
    const char *code = backoff_bare_code(error_code, &len);
    if (len == sizeof "RequestExpired" - 1 && memcmp(code, "RequestExpired", len) == 0)
        return true;
    bool sig = (len == sizeof "SignatureDoesNotMatch" - 1 &&
                memcmp(code, "SignatureDoesNotMatch", len) == 0) ||
               (len == sizeof "InvalidSignatureException" - 1 &&
                memcmp(code, "InvalidSignatureException", len) == 0);
    return sig && (backoff_contains(message, "signature expired") ||
                   backoff_contains(message, "signature not yet current"));
}

/* A short stable name of cls for logs and metrics. */
const char *backoff_class_name(enum backoff_class cls)
{
    if ((int)cls < 0 || cls >= BACKOFF_CLASS_COUNT)
        return "unknown";
    return backoff_names[cls];
}

/* min(cap, base * 2^attempt) without overflow. */
int64_t backoff_ceiling_ms(int attempt, int64_t base_ms, int64_t cap_ms)
{
    if (attempt < 0)
        attempt = 0;
    if (base_ms < 0)
        base_ms = 0;
    if (cap_ms < 0)
        cap_ms = 0;
    if (base_ms >= cap_ms)
        return cap_ms;
    if (base_ms == 0)
        return 0;
    /* Here 0 < base_ms < cap_ms: base << attempt fits in int64_t when it is
     * at most cap, which holds exactly when base <= cap >> attempt. */
    if (attempt >= 63 || base_ms > (cap_ms >> attempt))
        return cap_ms;
    return base_ms << attempt;
}

/* Full-jitter delay: uniform in [0, ceiling] for a uniform rnd. */
int64_t backoff_delay_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint64_t rnd)
{
    uint64_t ceiling = (uint64_t)backoff_ceiling_ms(attempt, base_ms, cap_ms);

    return (int64_t)(rnd % (ceiling + 1));
}

/* True when no try is left after attempt + 1 tries. */
bool backoff_give_up(int attempt, int max_attempts)
{
    if (attempt < 0)
        attempt = 0;
    if (max_attempts < 1)
        max_attempts = 1;
    return attempt >= max_attempts - 1;
}
