/* sns: Amazon SNS HTTP(S) messages: the envelope, the string to sign, the
 * certificate URL rule, the signature and the topic allow-list. */
#include "sns.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "util.h"

/* The largest signature accepted (bytes, decoded): an RSA-8192 signature. */
#define SNS_MAX_SIGNATURE 1024
/* The largest certificate PEM read (bytes). */
#define SNS_MAX_PEM (64 * 1024)
/* The longest URL checked (bytes). */
#define SNS_MAX_URL 4096

/* Write a reason and return code. */
static int sns_fail(int code, char *reason, size_t rlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int sns_fail(int code, char *reason, size_t rlen, const char *fmt, ...)
{
    if (reason && rlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(reason, rlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Copy the string member key of root into *out. A missing member (or a
 * JSON null when null_absent) leaves *out NULL and is an error only when
 * required; any other non-string type is an error; so is an empty string
 * when nonempty. */
static int sns_field(json_t *root, const char *key, bool required, bool nonempty, bool null_absent,
                     char **out, char *reason, size_t rlen)
{
    json_t *v = json_object_get(root, key);
    *out = NULL;
    if (v == NULL || (null_absent && json_is_null(v))) {
        if (required)
            return sns_fail(SNS_ERR_FIELD, reason, rlen, "%s missing", key);
        return 0;
    }
    if (!json_is_string(v))
        return sns_fail(SNS_ERR_FIELD, reason, rlen, "%s not a string", key);
    if (nonempty && json_string_length(v) == 0)
        return sns_fail(SNS_ERR_FIELD, reason, rlen, "%s empty", key);
    *out = xstrndup(json_string_value(v), json_string_length(v));
    return 0;
}

/* True when s (n bytes) is all decimal digits. */
static bool sns_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return n > 0;
}

/* True when s is an ISO 8601 UTC time as SNS writes it:
 * YYYY-MM-DDTHH:MM:SS, optional fraction, Z. */
static bool sns_timestamp_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 20 || s[n - 1] != 'Z')
        return false;
    if (!sns_digits(s, 4) || s[4] != '-' || !sns_digits(s + 5, 2) || s[7] != '-' ||
        !sns_digits(s + 8, 2) || s[10] != 'T' || !sns_digits(s + 11, 2) || s[13] != ':' ||
        !sns_digits(s + 14, 2) || s[16] != ':' || !sns_digits(s + 17, 2))
        return false;
    if (n == 20)
        return true;
    return s[19] == '.' && n <= 30 && sns_digits(s + 20, n - 21);
}

/* True when root looks like an SES event delivered raw (no envelope). */
static bool sns_is_raw(json_t *root)
{
    if (json_object_get(root, "Type") || json_object_get(root, "Signature"))
        return false;
    return json_object_get(root, "notificationType") || json_object_get(root, "eventType") ||
           json_object_get(root, "mail");
}

int sns_parse(const char *body, size_t n, struct sns_msg *m, char *reason, size_t rlen)
{
    memset(m, 0, sizeof *m);
    if (body == NULL || n == 0)
        return sns_fail(SNS_ERR_SIZE, reason, rlen, "empty body");
    if (n > SNS_MAX_BODY)
        return sns_fail(SNS_ERR_SIZE, reason, rlen, "body over %d bytes", SNS_MAX_BODY);

    json_error_t jerr;
    json_t *root = json_loadb(body, n, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return sns_fail(SNS_ERR_JSON, reason, rlen, "not JSON: %s (offset %d)", jerr.text,
                        jerr.position);
    int rc = 0;
    if (!json_is_object(root)) {
        rc = sns_fail(SNS_ERR_JSON, reason, rlen, "not a JSON object");
        goto out;
    }
    if (sns_is_raw(root)) {
        rc = sns_fail(SNS_ERR_RAW, reason, rlen,
                      "an SES event without the SNS envelope (raw message delivery is on)");
        goto out;
    }

    char *type = NULL;
    if ((rc = sns_field(root, "Type", true, true, false, &type, reason, rlen)) < 0)
        goto out;
    if (strcmp(type, "Notification") == 0)
        m->type = SNS_NOTIFICATION;
    else if (strcmp(type, "SubscriptionConfirmation") == 0)
        m->type = SNS_SUBSCRIPTION_CONFIRMATION;
    else if (strcmp(type, "UnsubscribeConfirmation") == 0)
        m->type = SNS_UNSUBSCRIBE_CONFIRMATION;
    free(type);
    if (m->type == 0) {
        rc = sns_fail(SNS_ERR_TYPE, reason, rlen, "Type is not an SNS message type");
        goto out;
    }
    bool note = m->type == SNS_NOTIFICATION;

    char *version = NULL, *signature = NULL, *other = NULL;
    if ((rc = sns_field(root, "MessageId", true, true, false, &m->message_id, reason, rlen)) < 0 ||
        (rc = sns_field(root, "TopicArn", true, true, false, &m->topic_arn, reason, rlen)) < 0 ||
        (rc = sns_field(root, "Message", true, false, false, &m->message, reason, rlen)) < 0 ||
        (rc = sns_field(root, "Timestamp", true, true, false, &m->timestamp, reason, rlen)) < 0 ||
        (rc = sns_field(root, "SignatureVersion", true, true, false, &version, reason, rlen)) < 0 ||
        (rc = sns_field(root, "Signature", true, true, false, &signature, reason, rlen)) < 0 ||
        (rc = sns_field(root, "SigningCertURL", true, true, false, &m->signing_cert_url, reason,
                        rlen)) < 0)
        goto fields;
    if (note) {
        if ((rc = sns_field(root, "Subject", false, false, true, &m->subject, reason, rlen)) < 0 ||
            (rc = sns_field(root, "UnsubscribeURL", false, true, false, &m->unsubscribe_url, reason,
                            rlen)) < 0 ||
            (rc = sns_field(root, "Token", false, false, true, &other, reason, rlen)) < 0)
            goto fields;
        free(other);
        other = NULL;
        if ((rc = sns_field(root, "SubscribeURL", false, false, true, &other, reason, rlen)) < 0)
            goto fields;
    } else {
        if ((rc = sns_field(root, "Token", true, true, false, &m->token, reason, rlen)) < 0 ||
            (rc = sns_field(root, "SubscribeURL", true, true, false, &m->subscribe_url, reason,
                            rlen)) < 0 ||
            (rc = sns_field(root, "Subject", false, false, true, &other, reason, rlen)) < 0)
            goto fields;
        free(other);
        other = NULL;
        if ((rc = sns_field(root, "UnsubscribeURL", false, false, true, &other, reason, rlen)) < 0)
            goto fields;
    }

    if (!sns_timestamp_valid(m->timestamp)) {
        rc = sns_fail(SNS_ERR_FIELD, reason, rlen, "Timestamp not an ISO 8601 UTC time");
        goto fields;
    }
    if (strcmp(version, "1") == 0) {
        m->signature_version = 1;
    } else if (strcmp(version, "2") == 0) {
        m->signature_version = 2;
    } else {
        rc = sns_fail(SNS_ERR_FIELD, reason, rlen, "SignatureVersion is neither 1 nor 2");
        goto fields;
    }
    size_t slen = strlen(signature);
    if (slen > (SNS_MAX_SIGNATURE + 2) / 3 * 4 + 64 ||
        util_base64_decode(signature, slen, &m->signature) < 0 || m->signature.len == 0 ||
        m->signature.len > SNS_MAX_SIGNATURE) {
        rc = sns_fail(SNS_ERR_FIELD, reason, rlen, "Signature not base64 of at most %d bytes",
                      SNS_MAX_SIGNATURE);
        goto fields;
    }

fields:
    free(version);
    free(signature);
    free(other);
out:
    json_decref(root);
    if (rc < 0)
        sns_msg_cleanup(m);
    return rc;
}

void sns_msg_cleanup(struct sns_msg *m)
{
    free(m->message_id);
    free(m->topic_arn);
    free(m->subject);
    free(m->message);
    free(m->timestamp);
    free(m->token);
    free(m->subscribe_url);
    buf_free(&m->signature);
    free(m->signing_cert_url);
    free(m->unsubscribe_url);
    memset(m, 0, sizeof *m);
}

/* Append "key\nvalue\n". */
static void sns_sign_pair(struct buf *out, const char *key, const char *value)
{
    buf_adds(out, key);
    buf_addc(out, '\n');
    buf_adds(out, value);
    buf_addc(out, '\n');
}

void sns_string_to_sign(const struct sns_msg *m, struct buf *out)
{
    static const char *const types[] = {"", "Notification", "SubscriptionConfirmation",
                                        "UnsubscribeConfirmation"};
    sns_sign_pair(out, "Message", m->message);
    sns_sign_pair(out, "MessageId", m->message_id);
    if (m->type == SNS_NOTIFICATION) {
        if (m->subject)
            sns_sign_pair(out, "Subject", m->subject);
    } else {
        sns_sign_pair(out, "SubscribeURL", m->subscribe_url);
    }
    sns_sign_pair(out, "Timestamp", m->timestamp);
    if (m->type != SNS_NOTIFICATION)
        sns_sign_pair(out, "Token", m->token);
    sns_sign_pair(out, "TopicArn", m->topic_arn);
    sns_sign_pair(out, "Type", types[m->type]);
}

/* True when s[0..n) is lower-case letters only (at least one). */
static bool sns_lower(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < 'a' || s[i] > 'z')
            return false;
    return n > 0;
}

/* True when s[0..n) is an AWS region name: two letters, optionally -gov,
 * then -<letters>-<1 or 2 digits> (us-east-1, us-gov-west-1, cn-north-1). */
static bool sns_region_valid(const char *s, size_t n)
{
    if (n < 6 || !sns_lower(s, 2) || s[2] != '-')
        return false;
    const char *p = s + 3, *end = s + n;
    if ((size_t)(end - p) > 4 && memcmp(p, "gov-", 4) == 0)
        p += 4;
    const char *dash = memchr(p, '-', (size_t)(end - p));
    if (dash == NULL || !sns_lower(p, (size_t)(dash - p)))
        return false;
    size_t dn = (size_t)(end - dash - 1);
    return dn >= 1 && dn <= 2 && sns_digits(dash + 1, dn);
}

/* True when host (lower case) is sns.<region>.amazonaws.com or, for a cn-
 * region, sns.<region>.amazonaws.com.cn. */
static bool sns_host_valid(const char *host)
{
    size_t n = strlen(host);
    if (n < 4 || memcmp(host, "sns.", 4) != 0)
        return false;
    const char *region = host + 4;
    const char *dot = strchr(region, '.');
    if (dot == NULL || !sns_region_valid(region, (size_t)(dot - region)))
        return false;
    bool china = memcmp(region, "cn-", 3) == 0;
    return strcmp(dot, china ? ".amazonaws.com.cn" : ".amazonaws.com") == 0;
}

int sns_url_check(const char *url, const char *extra_host, char *reason, size_t rlen)
{
    size_t n = strlen(url);
    if (n == 0 || n > SNS_MAX_URL)
        return sns_fail(SNS_ERR_URL, reason, rlen, "URL empty or over %d bytes", SNS_MAX_URL);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c >= 0x7f || c == '\\')
            return sns_fail(SNS_ERR_URL, reason, rlen,
                            "URL has a space, control, non-ASCII byte or backslash");
    }
    /* The authority runs from the slashes after the scheme to the next '/',
     * '?' or '#' (libcurl takes one to three slashes); libcurl decodes a
     * %-escape in a host name, so one there is refused. */
    const char *auth = strchr(url, ':');
    auth = auth ? auth + 1 : url;
    auth += strspn(auth, "/");
    size_t alen = strcspn(auth, "/?#");
    if (memchr(auth, '%', alen))
        return sns_fail(SNS_ERR_URL, reason, rlen, "URL host has a %%-escape");
    bool has_colon = memchr(auth, ':', alen) != NULL;

    CURLU *u = curl_url();
    if (u == NULL)
        return sns_fail(SNS_ERR_URL, reason, rlen, "out of memory");
    char *scheme = NULL, *host = NULL, *port = NULL, *part = NULL;
    int rc = 0;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
        rc = sns_fail(SNS_ERR_URL, reason, rlen, "not a URL");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        strcmp(scheme, "https") != 0) {
        rc = sns_fail(SNS_ERR_URL, reason, rlen, "URL is not https");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_USER, &part, 0) != CURLUE_NO_USER ||
        curl_url_get(u, CURLUPART_PASSWORD, &part, 0) != CURLUE_NO_PASSWORD ||
        curl_url_get(u, CURLUPART_OPTIONS, &part, 0) != CURLUE_NO_OPTIONS) {
        rc = sns_fail(SNS_ERR_URL, reason, rlen, "URL has userinfo");
        goto out;
    }
    CURLUcode pc = curl_url_get(u, CURLUPART_PORT, &port, 0);
    if (pc != CURLUE_OK && pc != CURLUE_NO_PORT) {
        rc = sns_fail(SNS_ERR_URL, reason, rlen, "URL port unreadable");
        goto out;
    }
    if (has_colon && port == NULL) {
        rc = sns_fail(SNS_ERR_URL, reason, rlen, "URL has an empty port");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        rc = sns_fail(SNS_ERR_URL, reason, rlen, "URL has no host");
        goto out;
    }
    for (char *p = host; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    if (host[strspn(host, "abcdefghijklmnopqrstuvwxyz0123456789.-")] != '\0') {
        rc = sns_fail(SNS_ERR_URL, reason, rlen, "URL host is not a plain DNS name");
        goto out;
    }
    if (extra_host && *extra_host) {
        size_t hl = strlen(host);
        const char *colon = strrchr(extra_host, ':');
        size_t el = colon ? (size_t)(colon - extra_host) : strlen(extra_host);
        bool port_ok = colon ? (port && strcmp(port, colon + 1) == 0) : port == NULL;
        if (hl == el && util_ieq(extra_host, el, host) && port_ok)
            goto out;
    }
    if (port) {
        rc = sns_fail(SNS_ERR_URL, reason, rlen, "URL has a port");
        goto out;
    }
    if (!sns_host_valid(host))
        rc = sns_fail(SNS_ERR_URL, reason, rlen, "URL host is not an SNS endpoint");
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(part);
    curl_url_cleanup(u);
    return rc;
}

/* The time an ASN1_TIME names (UTC seconds), or 0 when it cannot be read. */
static time_t sns_asn1_time(const ASN1_TIME *t)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return timegm(&tm);
}

int sns_cert_check(const char *pem, size_t pem_len, X509_STORE *store, time_t now, EVP_PKEY **key,
                   time_t *valid_until, char *reason, size_t rlen)
{
    *key = NULL;
    *valid_until = 0;
    if (pem == NULL || pem_len == 0 || pem_len > SNS_MAX_PEM)
        return sns_fail(SNS_ERR_CERT, reason, rlen, "certificate empty or over %d bytes",
                        SNS_MAX_PEM);
    BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
    X509 *leaf = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    STACK_OF(X509) *chain = sk_X509_new_null();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int rc = 0;
    if (bio == NULL || chain == NULL || ctx == NULL) {
        rc = sns_fail(SNS_ERR_CERT, reason, rlen, "out of memory");
        goto out;
    }
    if (leaf == NULL) {
        rc = sns_fail(SNS_ERR_CERT, reason, rlen, "no PEM certificate");
        goto out;
    }
    for (X509 *x; (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL;) {
        if (!sk_X509_push(chain, x)) {
            X509_free(x);
            rc = sns_fail(SNS_ERR_CERT, reason, rlen, "out of memory");
            goto out;
        }
    }
    if (X509_STORE_CTX_init(ctx, store, leaf, chain) != 1) {
        rc = sns_fail(SNS_ERR_CHAIN, reason, rlen, "cannot set up the chain check");
        goto out;
    }
    X509_STORE_CTX_set_time(ctx, 0, now);
    if (X509_verify_cert(ctx) != 1) {
        rc = sns_fail(SNS_ERR_CHAIN, reason, rlen, "certificate: %s",
                      X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
        goto out;
    }
    EVP_PKEY *k = X509_get0_pubkey(leaf);
    if (k == NULL || EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA) {
        rc = sns_fail(SNS_ERR_CERT, reason, rlen, "certificate key is not RSA");
        goto out;
    }
    /* the chain holds until the first of its certificates expires */
    time_t until = 0;
    STACK_OF(X509) *verified = X509_STORE_CTX_get0_chain(ctx);
    for (int i = 0; verified && i < sk_X509_num(verified); i++) {
        time_t t = sns_asn1_time(X509_get0_notAfter(sk_X509_value(verified, i)));
        if (i == 0 || t < until)
            until = t;
    }
    if (until <= now) {
        rc = sns_fail(SNS_ERR_CHAIN, reason, rlen, "certificate: expiry unreadable");
        goto out;
    }
    EVP_PKEY_up_ref(k);
    *key = k;
    *valid_until = until;
out:
    ERR_clear_error();
    X509_STORE_CTX_free(ctx);
    sk_X509_pop_free(chain, X509_free);
    X509_free(leaf);
    BIO_free(bio);
    return rc;
}

int sns_verify_key(const struct sns_msg *m, EVP_PKEY *key, char *reason, size_t rlen)
{
    if (m->signature_version != 1 && m->signature_version != 2)
        return sns_fail(SNS_ERR_SIGNATURE, reason, rlen, "unknown SignatureVersion");
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL)
        return sns_fail(SNS_ERR_SIGNATURE, reason, rlen, "out of memory");
    struct buf tbs = {0};
    sns_string_to_sign(m, &tbs);
    const EVP_MD *alg = m->signature_version == 1 ? EVP_sha1() : EVP_sha256();
    int rc = 0;
    if (EVP_DigestVerifyInit(md, NULL, alg, NULL, key) != 1 ||
        EVP_DigestVerify(md, (const unsigned char *)m->signature.data, m->signature.len,
                         (const unsigned char *)tbs.data, tbs.len) != 1)
        rc = sns_fail(SNS_ERR_SIGNATURE, reason, rlen, "signature does not verify");
    ERR_clear_error();
    buf_free(&tbs);
    EVP_MD_CTX_free(md);
    return rc;
}

int sns_verify(const struct sns_msg *m, const char *pem, size_t pem_len, X509_STORE *store,
               time_t now, char *reason, size_t rlen)
{
    if (m->signature_version != 1 && m->signature_version != 2)
        return sns_fail(SNS_ERR_SIGNATURE, reason, rlen, "unknown SignatureVersion");
    EVP_PKEY *key;
    time_t until;
    int rc = sns_cert_check(pem, pem_len, store, now, &key, &until, reason, rlen);
    if (rc == 0)
        rc = sns_verify_key(m, key, reason, rlen);
    EVP_PKEY_free(key);
    return rc;
}

/* True when s[0..n) is n ASCII letters, digits, '_' or '-'. */
static bool sns_topic_chars(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return n > 0;
}

bool sns_topic_arn_valid(const char *arn)
{
    static const char *const partitions[] = {
        "arn:aws:sns:", "arn:aws-cn:sns:", "arn:aws-us-gov:sns:"};
    const char *p = NULL;
    for (size_t i = 0; i < sizeof partitions / sizeof partitions[0]; i++) {
        size_t l = strlen(partitions[i]);
        if (strncmp(arn, partitions[i], l) == 0)
            p = arn + l;
    }
    if (p == NULL)
        return false;
    const char *c = strchr(p, ':');
    if (c == NULL || !sns_region_valid(p, (size_t)(c - p)))
        return false;
    const char *acct = c + 1;
    c = strchr(acct, ':');
    if (c == NULL || c - acct != 12 || !sns_digits(acct, 12))
        return false;
    const char *name = c + 1;
    size_t n = strlen(name);
    if (n > 256)
        return false;
    if (n > 5 && memcmp(name + n - 5, ".fifo", 5) == 0)
        n -= 5;
    return sns_topic_chars(name, n);
}

int sns_topic_check(const char *arn, const char *const *allow, size_t n, char *reason, size_t rlen)
{
    if (!sns_topic_arn_valid(arn))
        return sns_fail(SNS_ERR_TOPIC, reason, rlen, "TopicArn is not an SNS topic ARN");
    for (size_t i = 0; i < n; i++)
        if (strcmp(allow[i], "*") == 0 || strcmp(allow[i], arn) == 0)
            return 0;
    return sns_fail(SNS_ERR_TOPIC, reason, rlen, "TopicArn not allowed");
}
