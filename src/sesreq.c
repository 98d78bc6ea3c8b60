/* sesreq: the SES request model (v1 Query and v2 REST-JSON requests). */
#include "sesreq.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "addr.h"
#include "rfc5322.h"

/* Parameters accepted in one v1 request: max_recipients (10000) To addresses
 * of a fanned-out send plus everything else it carries. */
/* Deepest JSON nesting accepted in a v2 body (checked before parsing). */
#define SESREQ_MAX_DEPTH 64
/* Most addresses accepted in the From header of a raw message. */
#define SESREQ_MAX_FROM 100
/* Longest piece of client input quoted in an error message. */
#define SESREQ_QUOTE_MAX 128
/* Base64 input decoded per step when reading a raw message. */
#define SESREQ_B64_CHUNK 65536

/* Where a v1 action carries its sender address. */
enum sesreq_from {
    SESREQ_FROM_NONE,          /* no sender to authorize */
    SESREQ_FROM_SOURCE,        /* Source, required */
    SESREQ_FROM_BOUNCE_SENDER, /* BounceSender, required */
    SESREQ_FROM_RAW,           /* optional Source plus the raw message's From header */
};

struct sesreq_action {
    const char *name;      /* Action= value */
    enum sesreq_kind kind; /* how the gateway treats it */
    enum sesreq_from from; /* where its sender is */
};

/* The 71 v1 actions, sorted by name (byte order) for binary search. */
static const struct sesreq_action sesreq_v1_actions[] = {
    {"CloneReceiptRuleSet", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"CreateConfigurationSet", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"CreateConfigurationSetEventDestination", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"CreateConfigurationSetTrackingOptions", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"CreateCustomVerificationEmailTemplate", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"CreateReceiptFilter", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"CreateReceiptRule", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"CreateReceiptRuleSet", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"CreateTemplate", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"DeleteConfigurationSet", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"DeleteConfigurationSetEventDestination", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"DeleteConfigurationSetTrackingOptions", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"DeleteCustomVerificationEmailTemplate", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"DeleteIdentity", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"DeleteIdentityPolicy", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"DeleteReceiptFilter", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"DeleteReceiptRule", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"DeleteReceiptRuleSet", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"DeleteTemplate", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"DeleteVerifiedEmailAddress", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"DescribeActiveReceiptRuleSet", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"DescribeConfigurationSet", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"DescribeReceiptRule", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"DescribeReceiptRuleSet", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"GetAccountSendingEnabled", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"GetCustomVerificationEmailTemplate", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"GetIdentityDkimAttributes", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"GetIdentityMailFromDomainAttributes", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"GetIdentityNotificationAttributes", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"GetIdentityPolicies", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"GetIdentityVerificationAttributes", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"GetSendQuota", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"GetSendStatistics", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"GetTemplate", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"ListConfigurationSets", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"ListCustomVerificationEmailTemplates", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"ListIdentities", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"ListIdentityPolicies", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"ListReceiptFilters", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"ListReceiptRuleSets", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"ListTemplates", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"ListVerifiedEmailAddresses", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"PutConfigurationSetDeliveryOptions", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"PutIdentityPolicy", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"ReorderReceiptRuleSet", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"SendBounce", SESREQ_SEND_OTHER, SESREQ_FROM_BOUNCE_SENDER},
    {"SendBulkTemplatedEmail", SESREQ_SEND_OTHER, SESREQ_FROM_SOURCE},
    {"SendCustomVerificationEmail", SESREQ_SEND_OTHER, SESREQ_FROM_NONE},
    {"SendEmail", SESREQ_SEND, SESREQ_FROM_SOURCE},
    {"SendRawEmail", SESREQ_SEND, SESREQ_FROM_RAW},
    {"SendTemplatedEmail", SESREQ_SEND, SESREQ_FROM_SOURCE},
    {"SetActiveReceiptRuleSet", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"SetIdentityDkimEnabled", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"SetIdentityFeedbackForwardingEnabled", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"SetIdentityHeadersInNotificationsEnabled", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"SetIdentityMailFromDomain", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"SetIdentityNotificationTopic", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"SetReceiptRulePosition", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"TestRenderTemplate", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"UpdateAccountSendingEnabled", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"UpdateConfigurationSetEventDestination", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"UpdateConfigurationSetReputationMetricsEnabled", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"UpdateConfigurationSetSendingEnabled", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"UpdateConfigurationSetTrackingOptions", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"UpdateCustomVerificationEmailTemplate", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"UpdateReceiptRule", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"UpdateTemplate", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"VerifyDomainDkim", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"VerifyDomainIdentity", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"VerifyEmailAddress", SESREQ_OTHER, SESREQ_FROM_NONE},
    {"VerifyEmailIdentity", SESREQ_OTHER, SESREQ_FROM_NONE},
};

struct sesreq_route {
    const char *method; /* HTTP method */
    const char *path;   /* template under /v2/email; "{Label}" is one non-empty segment */
    const char *name;   /* operation name */
};

/* The v2 routes: 117 operations. ListConfigurationSets, ListEmailIdentities,
 * GetMessageInsights and GetEmailAddressInsights each have two routes, the
 * one older clients use and the one newer clients use; both stay. */
static const struct sesreq_route sesreq_v2_routes[] = {
    {"GET", "/account", "GetAccount"},
    {"PUT", "/account/dedicated-ips/warmup", "PutAccountDedicatedIpWarmupAttributes"},
    {"POST", "/account/delivery", "PutAccountDeliveryAttributes"},
    {"POST", "/account/details", "PutAccountDetails"},
    {"PUT", "/account/pricing-attributes", "PutAccountPricingAttributes"},
    {"PUT", "/account/sending", "PutAccountSendingAttributes"},
    {"PUT", "/account/suppression", "PutAccountSuppressionAttributes"},
    {"PUT", "/account/vdm", "PutAccountVdmAttributes"},
    {"GET", "/configuration-sets", "ListConfigurationSets"},
    {"POST", "/configuration-sets", "CreateConfigurationSet"},
    {"DELETE", "/configuration-sets/{ConfigurationSetName}", "DeleteConfigurationSet"},
    {"GET", "/configuration-sets/{ConfigurationSetName}", "GetConfigurationSet"},
    {"PUT", "/configuration-sets/{ConfigurationSetName}/archiving-options",
     "PutConfigurationSetArchivingOptions"},
    {"PUT", "/configuration-sets/{ConfigurationSetName}/delivery-options",
     "PutConfigurationSetDeliveryOptions"},
    {"GET", "/configuration-sets/{ConfigurationSetName}/event-destinations",
     "GetConfigurationSetEventDestinations"},
    {"POST", "/configuration-sets/{ConfigurationSetName}/event-destinations",
     "CreateConfigurationSetEventDestination"},
    {"DELETE",
     "/configuration-sets/{ConfigurationSetName}/event-destinations/{EventDestinationName}",
     "DeleteConfigurationSetEventDestination"},
    {"PUT", "/configuration-sets/{ConfigurationSetName}/event-destinations/{EventDestinationName}",
     "UpdateConfigurationSetEventDestination"},
    {"PUT", "/configuration-sets/{ConfigurationSetName}/reputation-options",
     "PutConfigurationSetReputationOptions"},
    {"PUT", "/configuration-sets/{ConfigurationSetName}/sending",
     "PutConfigurationSetSendingOptions"},
    {"PUT", "/configuration-sets/{ConfigurationSetName}/suppression-options",
     "PutConfigurationSetSuppressionOptions"},
    {"PUT", "/configuration-sets/{ConfigurationSetName}/tracking-options",
     "PutConfigurationSetTrackingOptions"},
    {"PUT", "/configuration-sets/{ConfigurationSetName}/vdm-options",
     "PutConfigurationSetVdmOptions"},
    {"GET", "/contact-lists", "ListContactLists"},
    {"POST", "/contact-lists", "CreateContactList"},
    {"DELETE", "/contact-lists/{ContactListName}", "DeleteContactList"},
    {"GET", "/contact-lists/{ContactListName}", "GetContactList"},
    {"PUT", "/contact-lists/{ContactListName}", "UpdateContactList"},
    {"POST", "/contact-lists/{ContactListName}/contacts", "CreateContact"},
    {"POST", "/contact-lists/{ContactListName}/contacts/list", "ListContacts"},
    {"DELETE", "/contact-lists/{ContactListName}/contacts/{EmailAddress}", "DeleteContact"},
    {"GET", "/contact-lists/{ContactListName}/contacts/{EmailAddress}", "GetContact"},
    {"PUT", "/contact-lists/{ContactListName}/contacts/{EmailAddress}", "UpdateContact"},
    {"GET", "/custom-verification-email-templates", "ListCustomVerificationEmailTemplates"},
    {"POST", "/custom-verification-email-templates", "CreateCustomVerificationEmailTemplate"},
    {"DELETE", "/custom-verification-email-templates/{TemplateName}",
     "DeleteCustomVerificationEmailTemplate"},
    {"GET", "/custom-verification-email-templates/{TemplateName}",
     "GetCustomVerificationEmailTemplate"},
    {"PUT", "/custom-verification-email-templates/{TemplateName}",
     "UpdateCustomVerificationEmailTemplate"},
    {"GET", "/dedicated-ip-pools", "ListDedicatedIpPools"},
    {"POST", "/dedicated-ip-pools", "CreateDedicatedIpPool"},
    {"DELETE", "/dedicated-ip-pools/{PoolName}", "DeleteDedicatedIpPool"},
    {"GET", "/dedicated-ip-pools/{PoolName}", "GetDedicatedIpPool"},
    {"PUT", "/dedicated-ip-pools/{PoolName}/scaling", "PutDedicatedIpPoolScalingAttributes"},
    {"GET", "/dedicated-ips", "GetDedicatedIps"},
    {"GET", "/dedicated-ips/{IP}", "GetDedicatedIp"},
    {"PUT", "/dedicated-ips/{IP}/pool", "PutDedicatedIpInPool"},
    {"PUT", "/dedicated-ips/{IP}/warmup", "PutDedicatedIpWarmupAttributes"},
    {"GET", "/deliverability-dashboard", "GetDeliverabilityDashboardOptions"},
    {"PUT", "/deliverability-dashboard", "PutDeliverabilityDashboardOption"},
    {"GET", "/deliverability-dashboard/blacklist-report", "GetBlacklistReports"},
    {"GET", "/deliverability-dashboard/campaigns/{CampaignId}", "GetDomainDeliverabilityCampaign"},
    {"GET", "/deliverability-dashboard/domains/{SubscribedDomain}/campaigns",
     "ListDomainDeliverabilityCampaigns"},
    {"GET", "/deliverability-dashboard/statistics-report/{Domain}", "GetDomainStatisticsReport"},
    {"POST", "/deliverability-dashboard/test", "CreateDeliverabilityTestReport"},
    {"GET", "/deliverability-dashboard/test-reports", "ListDeliverabilityTestReports"},
    {"GET", "/deliverability-dashboard/test-reports/{ReportId}", "GetDeliverabilityTestReport"},
    {"POST", "/email-address-insights", "GetEmailAddressInsights"},
    {"POST", "/email-address-insights/", "GetEmailAddressInsights"},
    {"POST", "/export-jobs", "CreateExportJob"},
    {"GET", "/export-jobs/{JobId}", "GetExportJob"},
    {"PUT", "/export-jobs/{JobId}/cancel", "CancelExportJob"},
    {"GET", "/identities", "ListEmailIdentities"},
    {"POST", "/identities", "CreateEmailIdentity"},
    {"DELETE", "/identities/{EmailIdentity}", "DeleteEmailIdentity"},
    {"GET", "/identities/{EmailIdentity}", "GetEmailIdentity"},
    {"PUT", "/identities/{EmailIdentity}/configuration-set",
     "PutEmailIdentityConfigurationSetAttributes"},
    {"PUT", "/identities/{EmailIdentity}/dkim", "PutEmailIdentityDkimAttributes"},
    {"PUT", "/identities/{EmailIdentity}/dkim/signing", "PutEmailIdentityDkimSigningAttributes"},
    {"PUT", "/identities/{EmailIdentity}/feedback", "PutEmailIdentityFeedbackAttributes"},
    {"PUT", "/identities/{EmailIdentity}/mail-from", "PutEmailIdentityMailFromAttributes"},
    {"GET", "/identities/{EmailIdentity}/policies", "GetEmailIdentityPolicies"},
    {"DELETE", "/identities/{EmailIdentity}/policies/{PolicyName}", "DeleteEmailIdentityPolicy"},
    {"POST", "/identities/{EmailIdentity}/policies/{PolicyName}", "CreateEmailIdentityPolicy"},
    {"PUT", "/identities/{EmailIdentity}/policies/{PolicyName}", "UpdateEmailIdentityPolicy"},
    {"POST", "/identity/certificates", "AssociateEmailIdentityCertificate"},
    {"POST", "/identity/certificates/delete", "DisassociateEmailIdentityCertificate"},
    {"POST", "/identity/certificates/list", "ListEmailIdentityCertificates"},
    {"POST", "/import-jobs", "CreateImportJob"},
    {"POST", "/import-jobs/list", "ListImportJobs"},
    {"GET", "/import-jobs/{JobId}", "GetImportJob"},
    {"GET", "/insights/{MessageId}", "GetMessageInsights"},
    {"GET", "/insights/{MessageId}/", "GetMessageInsights"},
    {"POST", "/list-configuration-sets", "ListConfigurationSets"},
    {"POST", "/list-export-jobs", "ListExportJobs"},
    {"POST", "/list-identities", "ListEmailIdentities"},
    {"POST", "/metrics/batch", "BatchGetMetricData"},
    {"GET", "/multi-region-endpoints", "ListMultiRegionEndpoints"},
    {"POST", "/multi-region-endpoints", "CreateMultiRegionEndpoint"},
    {"DELETE", "/multi-region-endpoints/{EndpointName}", "DeleteMultiRegionEndpoint"},
    {"GET", "/multi-region-endpoints/{EndpointName}", "GetMultiRegionEndpoint"},
    {"POST", "/outbound-bulk-emails", "SendBulkEmail"},
    {"POST", "/outbound-custom-verification-emails", "SendCustomVerificationEmail"},
    {"POST", "/outbound-emails", "SendEmail"},
    {"POST", "/reputation/entities", "ListReputationEntities"},
    {"GET", "/reputation/entities/{ReputationEntityType}/{ReputationEntityReference}",
     "GetReputationEntity"},
    {"PUT",
     "/reputation/entities/{ReputationEntityType}/{ReputationEntityReference}/"
     "customer-managed-status",
     "UpdateReputationEntityCustomerManagedStatus"},
    {"PUT", "/reputation/entities/{ReputationEntityType}/{ReputationEntityReference}/policy",
     "UpdateReputationEntityPolicy"},
    {"POST", "/resources/tenants/list", "ListResourceTenants"},
    {"GET", "/suppression/addresses", "ListSuppressedDestinations"},
    {"PUT", "/suppression/addresses", "PutSuppressedDestination"},
    {"DELETE", "/suppression/addresses/{EmailAddress}", "DeleteSuppressedDestination"},
    {"GET", "/suppression/addresses/{EmailAddress}", "GetSuppressedDestination"},
    {"DELETE", "/tags", "UntagResource"},
    {"GET", "/tags", "ListTagsForResource"},
    {"POST", "/tags", "TagResource"},
    {"GET", "/templates", "ListEmailTemplates"},
    {"POST", "/templates", "CreateEmailTemplate"},
    {"DELETE", "/templates/{TemplateName}", "DeleteEmailTemplate"},
    {"GET", "/templates/{TemplateName}", "GetEmailTemplate"},
    {"PUT", "/templates/{TemplateName}", "UpdateEmailTemplate"},
    {"POST", "/templates/{TemplateName}/render", "TestRenderEmailTemplate"},
    {"POST", "/tenant/suppression", "PutTenantSuppressionAttributes"},
    {"POST", "/tenants", "CreateTenant"},
    {"POST", "/tenants/delete", "DeleteTenant"},
    {"POST", "/tenants/get", "GetTenant"},
    {"POST", "/tenants/list", "ListTenants"},
    {"POST", "/tenants/resources", "CreateTenantResourceAssociation"},
    {"POST", "/tenants/resources/delete", "DeleteTenantResourceAssociation"},
    {"POST", "/tenants/resources/list", "ListTenantResources"},
    {"POST", "/update-configuration-sets", "UpdateConfigurationSet"},
    {"POST", "/vdm/recommendations", "ListRecommendations"},
};

/* v2 for "/v2/email" at the start or "/v2/email/" after a prefix, else v1. */
enum sesreq_api sesreq_api_of(const char *path, size_t len, size_t *v2_off)
{
    static const char v2[] = "/v2/email/";
    const size_t v2len = sizeof v2 - 1;
    const char *q = memchr(path, '?', len);
    if (q != NULL)
        len = (size_t)(q - path);
    if (v2_off != NULL)
        *v2_off = 0;
    if (len >= v2len - 1 && memcmp(path, v2, v2len - 1) == 0 &&
        (len == v2len - 1 || path[v2len - 1] == '/'))
        return SESREQ_V2;
    const char *hit = memmem(path, len, v2, v2len);
    if (hit == NULL)
        return SESREQ_V1;
    if (v2_off != NULL)
        *v2_off = (size_t)(hit - path);
    return SESREQ_V2;
}

/* The v1 action named by the n bytes at s, or NULL. */
static const struct sesreq_action *sesreq_v1_lookup(const char *s, size_t n)
{
    size_t lo = 0, hi = sizeof sesreq_v1_actions / sizeof sesreq_v1_actions[0];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *name = sesreq_v1_actions[mid].name;
        size_t nlen = strlen(name);
        int c = memcmp(s, name, n < nlen ? n : nlen);
        if (c == 0)
            c = (n > nlen) - (n < nlen);
        if (c == 0)
            return &sesreq_v1_actions[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* The length of a "%.*s" quote of the n bytes of client input at s: at most
 * SESREQ_QUOTE_MAX bytes, never cutting a UTF-8 sequence in two. */
static int sesreq_quote_len(const char *s, size_t n)
{
    if (n <= SESREQ_QUOTE_MAX)
        return (int)n;
    size_t k = SESREQ_QUOTE_MAX;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    return (int)k;
}

/* The error for an invalid value: InvalidParameterValue on v1, and
 * BadRequestException on v2. */
static enum seserr_code sesreq_invalid(const struct sesreq *r)
{
    return r->api == SESREQ_V2 ? SESERR_BAD_REQUEST : SESERR_INVALID_PARAMETER;
}

/* Parse the address list at s and append each addr-spec to r->from; at most
 * max addresses. Returns how many were added, or -1 with e set. */
static int sesreq_add_addresses(struct sesreq *r, const char *s, size_t n, size_t max,
                                struct seserr *e)
{
    struct rfc5322_addr_list l = {NULL, 0};
    char why[128];
    if (rfc5322_parse_addresses(s, n, max, &l, why, sizeof why) != 0) {
        seserr_set(e, sesreq_invalid(r), "Illegal address");
        return -1;
    }
    for (size_t i = 0; i < l.n; i++) {
        const char *bad = addr_check_spec(l.v[i].addr, strlen(l.v[i].addr));
        if (bad != NULL) {
            rfc5322_addr_list_free(&l);
            seserr_set(e, sesreq_invalid(r), "%s", bad);
            return -1;
        }
    }
    if (l.n > 0)
        r->from = xrealloc(r->from, (r->nfrom + l.n) * sizeof *r->from);
    for (size_t i = 0; i < l.n; i++)
        r->from[r->nfrom++] = xstrdup(l.v[i].addr);
    int added = (int)l.n;
    rfc5322_addr_list_free(&l);
    return added;
}

/* Add the single sender address at s (a Source-like value). Returns 0, or -1
 * with e set. */
static int sesreq_add_sender(struct sesreq *r, const char *s, size_t n, struct seserr *e)
{
    int added = sesreq_add_addresses(r, s, n, 1, e);
    if (added < 0)
        return -1;
    if (added != 1) {
        seserr_set(e, sesreq_invalid(r), "Illegal address");
        return -1;
    }
    return 0;
}

/* True for a digit of the standard base64 alphabet. */
static bool sesreq_b64_digit(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* True for the whitespace tolerated between base64 digits. */
static bool sesreq_b64_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Check that s is standard base64 (optional trailing '=' padding, whitespace
 * anywhere); *pad gets the '=' to add when padding was left out. */
static int sesreq_b64_check(const char *s, size_t n, size_t *pad)
{
    size_t digits = 0, eq = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (sesreq_b64_space(c))
            continue;
        if (c == '=') {
            eq++;
            continue;
        }
        if (eq > 0 || !sesreq_b64_digit(c))
            return -1;
        digits++;
    }
    if (eq > 2 || digits % 4 == 1)
        return -1;
    if (eq > 0 && (digits + eq) % 4 != 0)
        return -1;
    *pad = eq > 0 || digits % 4 == 0 ? 0 : 4 - digits % 4;
    return 0;
}

/* Where the header block of the n bytes at m ends (just past the empty line),
 * looking for it from offset from on; 0 when there is none yet. */
static size_t sesreq_header_end_from(const char *m, size_t n, size_t from)
{
    for (size_t i = from; i < n; i++) {
        if (m[i] != '\n')
            continue;
        if (i == 0 || m[i - 1] == '\n')
            return i + 1;
        if (m[i - 1] == '\r' && (i == 1 || m[i - 2] == '\n'))
            return i + 1;
    }
    return 0;
}

/* Decode the base64 raw message at s into hdr, keeping only its header block
 * (up to and including the empty line, or all of it when there is none).
 * Returns 0, or -1 when s is not valid base64. */
static int sesreq_b64_headers(const char *s, size_t n, struct buf *hdr)
{
    size_t pad;
    if (sesreq_b64_check(s, n, &pad) != 0)
        return -1;
    EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
    if (ctx == NULL)
        abort(); /* out of memory is fatal, as for xmalloc() */
    EVP_DecodeInit(ctx);
    unsigned char *out = xmalloc(SESREQ_B64_CHUNK / 4 * 3 + 80);
    bool done = false; /* the header block is complete */
    int rc = 0;
    for (size_t off = 0; off < n + pad && rc == 0;) {
        const unsigned char *in;
        size_t k;
        if (off < n) {
            in = (const unsigned char *)s + off;
            k = n - off < SESREQ_B64_CHUNK ? n - off : SESREQ_B64_CHUNK;
        } else {
            in = (const unsigned char *)"==";
            k = pad;
        }
        int outl = 0;
        if (EVP_DecodeUpdate(ctx, out, &outl, in, (int)k) < 0)
            rc = -1;
        off += k;
        if (rc == 0 && !done && outl > 0) {
            size_t from = hdr->len;
            buf_add(hdr, out, (size_t)outl);
            size_t end = sesreq_header_end_from(hdr->data, hdr->len, from);
            if (end > 0) {
                hdr->len = end;
                hdr->data[end] = '\0';
                done = true;
            }
        }
    }
    int outl = 0;
    if (rc == 0 && EVP_DecodeFinal(ctx, out, &outl) < 0)
        rc = -1;
    if (rc == 0 && !done && outl > 0)
        buf_add(hdr, out, (size_t)outl);
    free(out);
    EVP_ENCODE_CTX_free(ctx);
    return rc;
}

/* How many header fields named name the header block m holds. */
static size_t sesreq_count_header(const char *m, size_t n, const char *name)
{
    size_t nlen = strlen(name), count = 0;
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(m + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - m) : n;
        size_t j = i;
        if (e - i > nlen && strncasecmp(m + i, name, nlen) == 0) {
            j = i + nlen;
            while (j < e && (m[j] == ' ' || m[j] == '\t'))
                j++;
            if (j < e && m[j] == ':')
                count++;
        }
        i = e + 1;
    }
    return count;
}

/* Add the From header addresses of the base64 raw message at s. has_sender
 * tells whether the request names a sender elsewhere. Returns 0, or -1 with
 * e set. */
static int sesreq_add_raw_from(struct sesreq *r, const char *s, size_t n, bool has_sender,
                               struct seserr *e)
{
    struct buf hdr = BUF_INIT, from = BUF_INIT;
    int rc = 0;
    if (sesreq_b64_headers(s, n, &hdr) != 0) {
        seserr_set(e, sesreq_invalid(r), "Invalid base64 in the raw message data.");
        rc = -1;
    } else if (sesreq_count_header(buf_cstr(&hdr), hdr.len, "From") > 1) {
        seserr_set(e, sesreq_invalid(r), "Duplicate header 'From'.");
        rc = -1;
    } else {
        int added = 0;
        if (rfc5322_header_get(buf_cstr(&hdr), hdr.len, "From", &from) == 0)
            added = sesreq_add_addresses(r, buf_cstr(&from), from.len, SESREQ_MAX_FROM, e);
        if (added < 0) {
            rc = -1;
        } else if (added == 0 && !has_sender) {
            seserr_set(e, SESERR_MESSAGE_REJECTED, "Missing required header 'From'.");
            rc = -1;
        }
    }
    buf_free(&hdr);
    buf_free(&from);
    return rc;
}

/* Add the sender named by the required v1 parameter name. Returns 0, or -1
 * with e set. */
static int sesreq_v1_required_sender(struct sesreq *r, const char *name, struct seserr *e)
{
    size_t len;
    const char *v = form_get(&r->form, name, &len);
    if (v == NULL) {
        seserr_set(e, SESERR_MISSING_PARAMETER, "The request must contain the parameter %s.", name);
        return -1;
    }
    return sesreq_add_sender(r, v, len, e);
}

/* Add the senders of a v1 SendRawEmail: Source when present, and the From
 * header of RawMessage.Data. Returns 0, or -1 with e set. */
static int sesreq_v1_raw_senders(struct sesreq *r, struct seserr *e)
{
    size_t slen, dlen;
    const char *src = form_get(&r->form, "Source", &slen);
    if (src != NULL && sesreq_add_sender(r, src, slen, e) != 0)
        return -1;
    const char *data = form_get(&r->form, "RawMessage.Data", &dlen);
    if (data == NULL) {
        seserr_set(e, SESERR_MISSING_PARAMETER,
                   "The request must contain the parameter RawMessage.Data.");
        return -1;
    }
    return sesreq_add_raw_from(r, data, dlen, src != NULL, e);
}

/* The SES error for a form_parse failure. */
static enum seserr_code sesreq_form_error(int rc)
{
    switch (rc) {
    case FORM_ERR_ENCODING:
        return SESERR_MALFORMED_QUERY;
    case FORM_ERR_UTF8:
        return SESERR_INVALID_PARAMETER;
    default:
        return SESERR_INVALID_QUERY_PARAMETER;
    }
}

/* Decode the form, check Action and Version (optional), and collect the senders of a
 * known action. An Action sesgate does not know is left to SES: no error,
 * out->action stays NULL and out->kind SESREQ_OTHER. */
int sesreq_parse_v1(const char *params, size_t len, struct sesreq *out, struct seserr *e)
{
    return sesreq_parse_v1_max(params, len, SESREQ_MAX_PARAMS, out, e);
}

int sesreq_parse_v1_max(const char *params, size_t len, size_t max_params, struct sesreq *out,
                        struct seserr *e)
{
    char why[256];
    out->api = SESREQ_V1;
    int rc = form_parse(params, len, max_params, &out->form, why, sizeof why);
    if (rc != FORM_OK) {
        seserr_set(e, sesreq_form_error(rc), "%s", why);
        return -1;
    }
    size_t alen, vlen;
    const char *action = form_get(&out->form, "Action", &alen);
    if (action == NULL || alen == 0) {
        seserr_set(e, SESERR_MISSING_ACTION, NULL);
        return -1;
    }
    /* SES serves a request without Version as 2010-12-01 (php-aws-ses never
     * sends one); another Version names an API that does not exist. */
    const char *version = form_get(&out->form, "Version", &vlen);
    if (version != NULL &&
        (vlen != strlen(SESREQ_V1_VERSION) || memcmp(version, SESREQ_V1_VERSION, vlen) != 0)) {
        seserr_set(e, SESERR_INVALID_ACTION, "Could not find operation %.*s for version %.*s",
                   sesreq_quote_len(action, alen), action, sesreq_quote_len(version, vlen),
                   version);
        return -1;
    }
    const struct sesreq_action *a = sesreq_v1_lookup(action, alen);
    if (a == NULL) {
        out->kind = SESREQ_OTHER;
        return 0;
    }
    out->action = a->name;
    out->kind = a->kind;
    switch (a->from) {
    case SESREQ_FROM_SOURCE:
        return sesreq_v1_required_sender(out, "Source", e);
    case SESREQ_FROM_BOUNCE_SENDER:
        return sesreq_v1_required_sender(out, "BounceSender", e);
    case SESREQ_FROM_RAW:
        out->raw = true;
        return sesreq_v1_raw_senders(out, e);
    case SESREQ_FROM_NONE:
        break;
    }
    return 0;
}

int sesreq_parse_v1_request(const char *method, const char *query, size_t query_len,
                            const char *body, size_t body_len, size_t max_params,
                            struct sesreq *out, struct seserr *e)
{
    if (strcmp(method, "POST") != 0 || body_len == 0)
        return sesreq_parse_v1_max(query, query_len, max_params, out, e);
    if (query_len == 0)
        return sesreq_parse_v1_max(body, body_len, max_params, out, e);
    struct buf all = BUF_INIT;
    buf_add(&all, query, query_len);
    buf_addc(&all, '&');
    buf_add(&all, body, body_len);
    int rc = sesreq_parse_v1_max(all.data, all.len, max_params, out, e);
    buf_free(&all);
    return rc;
}

/* Match the sub-path p (after "/v2/email") against template t; *literals gets
 * the number of literal segments matched. */
static bool sesreq_route_match(const char *t, const char *p, size_t n, int *literals)
{
    size_t i = 0;
    *literals = 0;
    while (*t != '\0') {
        if (*t != '/' || i >= n || p[i] != '/')
            return false;
        t++;
        i++;
        const char *te = strchrnul(t, '/');
        size_t pe = i;
        while (pe < n && p[pe] != '/')
            pe++;
        if (*t == '{') {
            if (pe == i)
                return false;
        } else {
            if ((size_t)(te - t) != pe - i || memcmp(t, p + i, pe - i) != 0)
                return false;
            (*literals)++;
        }
        t = te;
        i = pe;
    }
    return i == n;
}

/* The v2 route for method and sub-path p, or NULL. Literal segments win
 * over labels when two templates match. */
static const struct sesreq_route *sesreq_v2_lookup(const char *method, const char *p, size_t n)
{
    const struct sesreq_route *best = NULL;
    int best_lit = -1;
    for (size_t i = 0; i < sizeof sesreq_v2_routes / sizeof sesreq_v2_routes[0]; i++) {
        const struct sesreq_route *rt = &sesreq_v2_routes[i];
        int lit;
        if (strcmp(rt->method, method) == 0 && sesreq_route_match(rt->path, p, n, &lit) &&
            lit > best_lit) {
            best = rt;
            best_lit = lit;
        }
    }
    return best;
}

/* True when the JSON text at s nests arrays and objects at most max deep
 * (and never closes more than it opened). */
static bool sesreq_json_depth_ok(const char *s, size_t n, int max)
{
    int depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max)
                return false;
        } else if (c == '}' || c == ']') {
            if (--depth < 0)
                return false;
        }
    }
    return true;
}

/* The member key of object o, with JSON null read as absent. */
static json_t *sesreq_json_member(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_null(v) ? NULL : v;
}

/* Add FromEmailAddress of the v2 body when present (required says whether
 * its absence is an error). *present tells whether it was there. Returns 0,
 * or -1 with e set. */
static int sesreq_v2_from_address(struct sesreq *r, bool required, bool *present, struct seserr *e)
{
    json_t *v = sesreq_json_member(r->json, "FromEmailAddress");
    *present = v != NULL;
    if (v == NULL) {
        if (!required)
            return 0;
        seserr_set(e, SESERR_BAD_REQUEST, "FromEmailAddress is required");
        return -1;
    }
    if (!json_is_string(v)) {
        seserr_set(e, SESERR_BAD_REQUEST, "FromEmailAddress must be a string");
        return -1;
    }
    return sesreq_add_sender(r, json_string_value(v), json_string_length(v), e);
}

/* Pull the senders out of a v2 SendEmail body. Returns 0, or -1 with e set. */
static int sesreq_v2_send_email(struct sesreq *r, struct seserr *e)
{
    json_t *content = sesreq_json_member(r->json, "Content");
    if (!json_is_object(content)) {
        seserr_set(e, SESERR_BAD_REQUEST, "Content is required");
        return -1;
    }
    json_t *simple = sesreq_json_member(content, "Simple");
    json_t *raw = sesreq_json_member(content, "Raw");
    json_t *tmpl = sesreq_json_member(content, "Template");
    json_t *which = simple ? simple : raw ? raw : tmpl;
    if ((simple != NULL) + (raw != NULL) + (tmpl != NULL) != 1 || !json_is_object(which)) {
        seserr_set(e, SESERR_BAD_REQUEST,
                   "Content must hold exactly one of Simple, Raw or Template");
        return -1;
    }
    bool has_from;
    if (raw == NULL)
        return sesreq_v2_from_address(r, true, &has_from, e);
    r->raw = true;
    if (sesreq_v2_from_address(r, false, &has_from, e) != 0)
        return -1;
    json_t *data = sesreq_json_member(raw, "Data");
    if (!json_is_string(data)) {
        seserr_set(e, SESERR_BAD_REQUEST, "Content.Raw.Data is required");
        return -1;
    }
    size_t len = 0;
    const char *s = sesreq_raw_data(r, &len);
    return sesreq_add_raw_from(r, s, len, has_from, e);
}

/* Skip JSON whitespace from p (before end). */
static const char *sesreq_json_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* If "Raw" at k starts "Raw" : { "Data" : " (JSON whitespace anywhere
 * between), where the string's first character is; else NULL. */
static const char *sesreq_raw_data_at(const char *k, const char *end)
{
    static const char data[] = "\"Data\"";
    const char *p = sesreq_json_ws(k + 5, end);
    if (p >= end || *p != ':')
        return NULL;
    p = sesreq_json_ws(p + 1, end);
    if (p >= end || *p != '{')
        return NULL;
    p = sesreq_json_ws(p + 1, end);
    if ((size_t)(end - p) < sizeof data - 1 || memcmp(p, data, sizeof data - 1) != 0)
        return NULL;
    p = sesreq_json_ws(p + sizeof data - 1, end);
    if (p >= end || *p != ':')
        return NULL;
    p = sesreq_json_ws(p + 1, end);
    return p < end && *p == '"' ? p + 1 : NULL;
}

/* json_dump_callback() sink appending to a struct buf. */
static int sesreq_json_sink(const char *s, size_t n, void *data)
{
    buf_add(data, s, n);
    return 0;
}

/* True when root, written out, holds the mark once: a string spelling it
 * with other escapes elsewhere would make it ambiguous where the message
 * goes back. */
static bool sesreq_json_one_mark(const json_t *root)
{
    struct buf text = BUF_INIT;
    bool one = false;
    if (json_dump_callback(root, sesreq_json_sink, &text, JSON_COMPACT | JSON_PRESERVE_ORDER) ==
        0) {
        const char *t = buf_cstr(&text);
        const char *m = strstr(t, SESREQ_DATA_MARK_JSON);
        one = m != NULL && strstr(m + 1, SESREQ_DATA_MARK_JSON) == NULL;
    }
    buf_free(&text);
    return one;
}

json_t *sesreq_json_borrow_raw(const char *t, size_t n, size_t flags, const char **data,
                               size_t *len)
{
    const size_t ml = sizeof SESREQ_DATA_MARK_JSON - 1;
    if (t == NULL || memmem(t, n, SESREQ_DATA_MARK_JSON, ml) != NULL)
        return NULL;
    const char *end = t + n, *d = NULL;
    for (const char *k = t; (k = memmem(k, (size_t)(end - k), "\"Raw\"", 5)) != NULL; k += 5) {
        const char *at = sesreq_raw_data_at(k, end);
        if (at != NULL && d != NULL)
            return NULL; /* twice: parse it whole */
        if (at != NULL)
            d = at;
    }
    const char *q = d ? memchr(d, '"', (size_t)(end - d)) : NULL;
    if (q == NULL || memchr(d, '\\', (size_t)(q - d)) != NULL)
        return NULL;
    struct buf outer = BUF_INIT;
    buf_add(&outer, t, (size_t)(d - t));
    buf_add(&outer, SESREQ_DATA_MARK_JSON, ml);
    buf_add(&outer, q, (size_t)(end - q));
    json_t *root = json_loadb(outer.data, outer.len, flags, NULL);
    buf_free(&outer);
    json_t *v = json_object_get(json_object_get(json_object_get(root, "Content"), "Raw"), "Data");
    if (!json_is_string(v) || strcmp(json_string_value(v), SESREQ_DATA_MARK) != 0 ||
        !sesreq_json_one_mark(root)) {
        json_decref(root);
        return NULL;
    }
    *data = d;
    *len = (size_t)(q - d);
    return root;
}

const char *sesreq_raw_data(const struct sesreq *r, size_t *len)
{
    if (r->api == SESREQ_V1)
        return form_get(&r->form, "RawMessage.Data", len);
    if (r->raw_data != NULL) {
        *len = r->raw_len;
        return r->raw_data;
    }
    json_t *content = json_object_get(r->json, "Content");
    json_t *data = json_object_get(json_object_get(content, "Raw"), "Data");
    if (!json_is_string(data))
        return NULL;
    *len = json_string_length(data);
    return json_string_value(data);
}

/* Route method + path to an operation, and parse and check the send bodies.
 * A method + path under /v2/email that names no operation is left to SES: no
 * error, out->action stays NULL and out->kind SESREQ_OTHER. */
int sesreq_parse_v2(const char *method, const char *path, size_t path_len, const char *body,
                    size_t body_len, struct sesreq *out, struct seserr *e)
{
    static const char prefix[] = "/v2/email";
    const size_t plen = sizeof prefix - 1;
    out->api = SESREQ_V2;
    const char *q = memchr(path, '?', path_len);
    if (q != NULL)
        path_len = (size_t)(q - path);
    bool under = path_len >= plen && memcmp(path, prefix, plen) == 0 &&
                 (path_len == plen || path[plen] == '/');
    if (method == NULL || method[0] == '\0' || !under) {
        seserr_set(e, SESERR_UNKNOWN_OPERATION, NULL);
        return -1;
    }
    const struct sesreq_route *rt = sesreq_v2_lookup(method, path + plen, path_len - plen);
    if (rt == NULL) {
        out->kind = SESREQ_OTHER;
        return 0;
    }
    out->action = rt->name;
    bool send = strcmp(rt->name, "SendEmail") == 0;
    bool bulk = strcmp(rt->name, "SendBulkEmail") == 0;
    if (send)
        out->kind = SESREQ_SEND;
    else if (bulk || strcmp(rt->name, "SendCustomVerificationEmail") == 0)
        out->kind = SESREQ_SEND_OTHER;
    else
        return 0;

    json_error_t jerr;
    if (body == NULL || !sesreq_json_depth_ok(body, body_len, SESREQ_MAX_DEPTH)) {
        seserr_set(e, SESERR_BAD_REQUEST, NULL);
        return -1;
    }
    /* a raw message is not copied out of the body (it may be 40 MB) */
    if (send)
        out->json = sesreq_json_borrow_raw(body, body_len, JSON_REJECT_DUPLICATES, &out->raw_data,
                                           &out->raw_len);
    if ((out->json == NULL &&
         (out->json = json_loadb(body, body_len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) ||
        !json_is_object(out->json)) {
        seserr_set(e, SESERR_BAD_REQUEST, NULL);
        return -1;
    }
    if (send)
        return sesreq_v2_send_email(out, e);
    bool has_from;
    if (bulk)
        return sesreq_v2_from_address(out, true, &has_from, e);
    return 0;
}

/* True when name is Destinations.member.<n>.Destination.<To|Cc|Bcc>Addresses.member.<m>. */
static bool sesreq_bulk_dest_param(const char *name)
{
    static const char pre[] = "Destinations.member.", mid[] = ".Destination.",
                      tail[] = "Addresses.member.";
    if (strncmp(name, pre, sizeof pre - 1) != 0)
        return false;
    const char *p = name + sizeof pre - 1;
    size_t digits = strspn(p, "0123456789");
    if (digits == 0 || strncmp(p + digits, mid, sizeof mid - 1) != 0)
        return false;
    p += digits + sizeof mid - 1;
    if (strncmp(p, "To", 2) == 0)
        p += 2;
    else if (strncmp(p, "Cc", 2) == 0 || strncmp(p, "Bcc", 3) == 0)
        p += p[0] == 'B' ? 3 : 2;
    else
        return false;
    if (strncmp(p, tail, sizeof tail - 1) != 0)
        return false;
    p += sizeof tail - 1;
    digits = strspn(p, "0123456789");
    return digits > 0 && p[digits] == '\0';
}

size_t sesreq_other_recipients(const struct sesreq *r)
{
    size_t n = 0;
    if (r->action != NULL && strcmp(r->action, "SendBulkTemplatedEmail") == 0) {
        for (size_t i = 0; i < r->form.n; i++)
            if (sesreq_bulk_dest_param(r->form.params[i].name) && r->form.params[i].value_len > 0)
                n++;
    } else if (r->action != NULL && strcmp(r->action, "SendBulkEmail") == 0) {
        static const char *const keys[] = {"ToAddresses", "CcAddresses", "BccAddresses"};
        json_t *entries = json_object_get(r->json, "BulkEmailEntries"), *e;
        size_t i;
        json_array_foreach(entries, i, e)
        {
            json_t *dest = json_object_get(e, "Destination");
            for (size_t k = 0; k < 3; k++)
                n += json_array_size(json_object_get(dest, keys[k]));
        }
    }
    return n > 0 ? n : 1;
}

/* Free the senders, the form and the JSON body. */
void sesreq_drop_params(struct sesreq *r)
{
    form_free(&r->form);
    json_decref(r->json);
    r->json = NULL;
    r->raw_data = NULL;
    r->raw_len = 0;
}

void sesreq_cleanup(struct sesreq *r)
{
    for (size_t i = 0; i < r->nfrom; i++)
        free(r->from[i]);
    free(r->from);
    form_free(&r->form);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

/* Exact (case-insensitive) match against the list, or "*"; an unknown
 * action (NULL) is allowed by "*" only. */
bool sesreq_action_allowed(char *const *allowed, size_t n, const char *action)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(allowed[i], "*") == 0 || (action != NULL && strcasecmp(allowed[i], action) == 0))
            return true;
    return false;
}

/* Match addr against addresses, "*@domain" patterns and "*". */
bool sesreq_sender_allowed(char *const *allowed, size_t n, const char *addr)
{
    if (addr == NULL)
        return false;
    const char *at = strrchr(addr, '@');
    for (size_t i = 0; i < n; i++) {
        const char *a = allowed[i];
        if (strcmp(a, "*") == 0 || strcasecmp(a, addr) == 0)
            return true;
        if (at != NULL && a[0] == '*' && a[1] == '@' && a[2] != '\0' &&
            strcasecmp(a + 2, at + 1) == 0)
            return true;
    }
    return false;
}
