/* fuzz_sns: the SNS envelope parser, the certificate URL rule, the topic ARN.
 *
 * The first byte picks a mode (modulo 3):
 *   0  an envelope: parsed; when it parses, the string to sign is built and
 *      its URLs and TopicArn go through their checks
 *   1  a URL through sns_url_check, without and with an extra host
 *   2  a TopicArn through sns_topic_check
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "sns.h"

/* Abort when cond is false, so that libFuzzer reports the input. */
static void fuzz_sns_assert(int cond)
{
    if (!cond)
        abort();
}

/* What an accepted URL must look like whatever the rule's details. */
static void fuzz_sns_url(const char *url)
{
    char reason[256] = "";
    int rc = sns_url_check(url, NULL, reason, sizeof reason);
    fuzz_sns_assert(rc == 0 || (rc == SNS_ERR_URL && reason[0] != '\0'));
    if (rc == 0) {
        fuzz_sns_assert(strncasecmp(url, "https:", 6) == 0);
        fuzz_sns_assert(strchr(url, '\\') == NULL);
        const char *auth = url + 6 + strspn(url + 6, "/");
        size_t alen = strcspn(auth, "/?#");
        fuzz_sns_assert(memchr(auth, '@', alen) == NULL && memchr(auth, '%', alen) == NULL &&
                        memchr(auth, ':', alen) == NULL);
        fuzz_sns_assert(alen > 18 && strncasecmp(auth, "sns.", 4) == 0);
    }
    rc = sns_url_check(url, "localhost:8443", reason, sizeof reason);
    fuzz_sns_assert(rc == 0 || rc == SNS_ERR_URL);
}

/* An envelope parsed, and what a parsed one must hold. */
static void fuzz_sns_envelope(const char *s, size_t n)
{
    struct sns_msg m;
    char reason[256] = "";
    int rc = sns_parse(s, n, &m, reason, sizeof reason);
    if (rc < 0) {
        fuzz_sns_assert(rc >= SNS_ERR_TOPIC && reason[0] != '\0');
        fuzz_sns_assert(m.message_id == NULL && m.signature.data == NULL);
        return;
    }
    fuzz_sns_assert(m.message_id && m.topic_arn && m.message && m.timestamp && m.signing_cert_url);
    fuzz_sns_assert(m.signature_version == 1 || m.signature_version == 2);
    fuzz_sns_assert(m.signature.len >= 1 && m.signature.len <= 1024);
    if (m.type == SNS_NOTIFICATION)
        fuzz_sns_assert(m.token == NULL && m.subscribe_url == NULL);
    else
        fuzz_sns_assert(m.token && m.subscribe_url && m.subject == NULL);
    struct buf tbs = {0};
    sns_string_to_sign(&m, &tbs);
    fuzz_sns_assert(tbs.len > 0 && tbs.data[tbs.len - 1] == '\n');
    fuzz_sns_assert(strncmp(tbs.data, "Message\n", 8) == 0);
    buf_free(&tbs);
    fuzz_sns_url(m.signing_cert_url);
    if (m.subscribe_url)
        fuzz_sns_url(m.subscribe_url);
    const char *all[] = {"*"};
    rc = sns_topic_check(m.topic_arn, all, 1, reason, sizeof reason);
    fuzz_sns_assert(rc == (sns_topic_arn_valid(m.topic_arn) ? 0 : SNS_ERR_TOPIC));
    sns_msg_cleanup(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int mode = data[0] % 3;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    if (mode == 0) {
        fuzz_sns_envelope(s, n);
        return 0;
    }
    char *z = malloc(n + 1);
    memcpy(z, s, n);
    z[n] = '\0';
    if (mode == 1) {
        fuzz_sns_url(z);
    } else {
        const char *allow[] = {"arn:aws:sns:us-east-1:123456789012:bounces"};
        char reason[128];
        int rc = sns_topic_check(z, allow, 1, reason, sizeof reason);
        fuzz_sns_assert(rc == 0 ? strcmp(z, allow[0]) == 0 : rc == SNS_ERR_TOPIC);
        if (sns_topic_arn_valid(z))
            fuzz_sns_assert(strncmp(z, "arn:aws", 7) == 0);
    }
    free(z);
    return 0;
}
