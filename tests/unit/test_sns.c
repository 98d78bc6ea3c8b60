/* test_sns: the SNS envelope, string to sign, certificate URL rule,
 * signature verification and topic allow-list.
 *
 * A CA, an intermediate, signing certificates (valid, expired, not yet
 * valid, from another CA, with an EC key) are made in memory; messages of
 * the three types are signed with both signature versions over a string to
 * sign written out here by hand, independently of sns_string_to_sign. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "check.h"
#include "sns.h"

/* The verification time of every case (2027-01-15) and a day. */
#define T0  ((time_t)1800000000)
#define DAY ((time_t)86400)

struct test_sns_ca {
    EVP_PKEY *key;
    X509 *cert;
};

/* Add extension nid with value to x (issued by issuer). */
static void test_sns_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (e == NULL || !X509_add_ext(x, e, -1))
        abort();
    X509_EXTENSION_free(e);
}

/* A certificate for key named cn, valid [from, to], signed by issuer (NULL:
 * self-signed); a CA when ca. */
static X509 *test_sns_cert(EVP_PKEY *key, const char *cn, time_t from, time_t to,
                           const struct test_sns_ca *issuer, bool ca, long serial)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    ASN1_TIME_set(X509_getm_notBefore(x), from);
    ASN1_TIME_set(X509_getm_notAfter(x), to);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer->cert) : name);
    X509_set_pubkey(x, key);
    X509 *icert = issuer ? issuer->cert : x;
    test_sns_ext(x, icert, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    test_sns_ext(x, icert, NID_key_usage,
                 ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
    test_sns_ext(x, icert, NID_subject_key_identifier, "hash");
    if (X509_sign(x, issuer ? issuer->key : key, EVP_sha256()) <= 0)
        abort();
    return x;
}

/* Append the PEM of x to out. */
static void test_sns_pem(X509 *x, struct buf *out)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    buf_add(out, p, (size_t)n);
    BIO_free(b);
}

/* Sign tbs with key (SHA1 for version 1, SHA256 for 2); base64 into out. */
static void test_sns_sign(EVP_PKEY *key, int version, const char *tbs, struct buf *out)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char sig[1024];
    size_t n = sizeof sig;
    if (EVP_DigestSignInit(md, NULL, version == 1 ? EVP_sha1() : EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(md, sig, &n, (const unsigned char *)tbs, strlen(tbs)) != 1)
        abort();
    EVP_MD_CTX_free(md);
    check_b64((const char *)sig, n, out);
}

/* One envelope's fields (NULL: absent). */
struct test_sns_env {
    const char *type, *message_id, *topic_arn, *subject, *message, *timestamp, *token,
        *subscribe_url, *version, *signing_cert_url, *unsubscribe_url;
};

static const struct test_sns_env test_sns_note = {
    "Notification",
    "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
    "arn:aws:sns:us-west-2:123456789012:MyTopic",
    "My First Message",
    "{\"notificationType\":\"Bounce\",\"bounce\":{\"bounceType\":\"Permanent\"}}\n\"quoted\" "
    "\xc3\xa9",
    "2012-05-02T00:54:06.655Z",
    NULL,
    NULL,
    "1",
    "https://sns.us-west-2.amazonaws.com/"
    "SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
    "https://sns.us-west-2.amazonaws.com/"
    "?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-west-2:123456789012:MyTopic:c9135db0",
};

static const struct test_sns_env test_sns_sub = {
    "SubscriptionConfirmation",
    "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
    "arn:aws:sns:us-west-2:123456789012:MyTopic",
    NULL,
    "You have chosen to subscribe to the topic arn:aws:sns:us-west-2:123456789012:MyTopic.",
    "2012-04-26T20:45:04.751Z",
    "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e2"
    "85d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e0"
    "5798d2d2785c03b0879594eeac82c01f235d0e717736",
    "https://sns.us-west-2.amazonaws.com/"
    "?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-west-2:123456789012:MyTopic&Token="
    "2336412f37",
    "1",
    "https://sns.us-west-2.amazonaws.com/"
    "SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
    NULL,
};

/* The string to sign of e, written out by hand. */
static void test_sns_tbs(const struct test_sns_env *e, struct buf *out)
{
    if (strcmp(e->type, "Notification") == 0) {
        buf_printf(out, "Message\n%s\nMessageId\n%s\n", e->message, e->message_id);
        if (e->subject)
            buf_printf(out, "Subject\n%s\n", e->subject);
        buf_printf(out, "Timestamp\n%s\nTopicArn\n%s\nType\n%s\n", e->timestamp, e->topic_arn,
                   e->type);
    } else {
        buf_printf(out,
                   "Message\n%s\nMessageId\n%s\nSubscribeURL\n%s\nTimestamp\n%s\nToken\n%s\n"
                   "TopicArn\n%s\nType\n%s\n",
                   e->message, e->message_id, e->subscribe_url, e->timestamp, e->token,
                   e->topic_arn, e->type);
    }
}

/* Set key to value in o when value is not NULL. */
static void test_sns_set(json_t *o, const char *key, const char *value)
{
    if (value)
        json_object_set_new(o, key, json_string(value));
}

/* The JSON envelope of e with signature sig into out. */
static void test_sns_json(const struct test_sns_env *e, const char *sig, struct buf *out)
{
    json_t *o = json_object();
    test_sns_set(o, "Type", e->type);
    test_sns_set(o, "MessageId", e->message_id);
    test_sns_set(o, "Token", e->token);
    test_sns_set(o, "TopicArn", e->topic_arn);
    test_sns_set(o, "Subject", e->subject);
    test_sns_set(o, "Message", e->message);
    test_sns_set(o, "SubscribeURL", e->subscribe_url);
    test_sns_set(o, "Timestamp", e->timestamp);
    test_sns_set(o, "SignatureVersion", e->version);
    test_sns_set(o, "Signature", sig);
    test_sns_set(o, "SigningCertURL", e->signing_cert_url);
    test_sns_set(o, "UnsubscribeURL", e->unsubscribe_url);
    char *s = json_dumps(o, JSON_INDENT(2));
    buf_adds(out, s);
    free(s);
    json_decref(o);
}

/* Sign signed with key, serialize sent (the same or a tampered copy), parse
 * and verify against pem and store at now. Returns sns_verify's code, or
 * 100 + sns_parse's code when the parse fails. */
static int test_sns_run(const struct test_sns_env *signed_env, const struct test_sns_env *sent,
                        EVP_PKEY *key, const char *pem, X509_STORE *store, time_t now)
{
    struct buf tbs = {0}, sig = {0}, body = {0};
    test_sns_tbs(signed_env, &tbs);
    test_sns_sign(key, signed_env->version[0] == '1' ? 1 : 2, buf_cstr(&tbs), &sig);
    test_sns_json(sent, buf_cstr(&sig), &body);
    struct sns_msg m;
    char reason[256] = "";
    int rc = sns_parse(body.data, body.len, &m, reason, sizeof reason);
    if (rc < 0) {
        fprintf(stderr, "parse: %s\n", reason);
        rc = 100 + rc;
    } else {
        rc = sns_verify(&m, pem, strlen(pem), store, now, reason, sizeof reason);
        sns_msg_cleanup(&m);
    }
    buf_free(&tbs);
    buf_free(&sig);
    buf_free(&body);
    return rc;
}

/* The string to sign that sns_string_to_sign makes for the envelope of e. */
static void test_sns_exact(void)
{
    struct test_sns_env e = test_sns_note;
    e.message = "Hello world!";
    struct buf body = {0}, got = {0};
    test_sns_json(&e, "AAAA", &body);
    struct sns_msg m;
    char reason[128];
    CHECK(sns_parse(body.data, body.len, &m, reason, sizeof reason) == 0, "%s", reason);
    sns_string_to_sign(&m, &got);
    CHECK_STR(buf_cstr(&got),
              "Message\nHello world!\nMessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\n"
              "Subject\nMy First Message\nTimestamp\n2012-05-02T00:54:06.655Z\n"
              "TopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\nType\nNotification\n",
              "notification string to sign");
    sns_msg_cleanup(&m);
    buf_reset(&body);
    buf_reset(&got);

    e.subject = NULL;
    test_sns_json(&e, "AAAA", &body);
    CHECK(sns_parse(body.data, body.len, &m, reason, sizeof reason) == 0, "%s", reason);
    sns_string_to_sign(&m, &got);
    CHECK_STR(buf_cstr(&got),
              "Message\nHello world!\nMessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\n"
              "Timestamp\n2012-05-02T00:54:06.655Z\n"
              "TopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\nType\nNotification\n",
              "notification string to sign, no subject");
    sns_msg_cleanup(&m);
    buf_reset(&body);
    buf_reset(&got);

    struct test_sns_env u = test_sns_sub;
    u.type = "UnsubscribeConfirmation";
    u.message = "m";
    u.token = "tok";
    u.subscribe_url = "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription";
    test_sns_json(&u, "AAAA", &body);
    CHECK(sns_parse(body.data, body.len, &m, reason, sizeof reason) == 0, "%s", reason);
    CHECK(m.type == SNS_UNSUBSCRIBE_CONFIRMATION, "type %d", (int)m.type);
    sns_string_to_sign(&m, &got);
    CHECK_STR(buf_cstr(&got),
              "Message\nm\nMessageId\n165545c9-2a5c-472c-8df2-7ff2be2b3b1b\n"
              "SubscribeURL\nhttps://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription\n"
              "Timestamp\n2012-04-26T20:45:04.751Z\nToken\ntok\n"
              "TopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\n"
              "Type\nUnsubscribeConfirmation\n",
              "unsubscribe string to sign");
    sns_msg_cleanup(&m);
    buf_free(&body);
    buf_free(&got);
}

/* A field of e replaced by value (key names the field). */
static void test_sns_tamper(struct test_sns_env *e, const char *key, const char *value)
{
    if (strcmp(key, "Message") == 0)
        e->message = value;
    else if (strcmp(key, "MessageId") == 0)
        e->message_id = value;
    else if (strcmp(key, "Timestamp") == 0)
        e->timestamp = value;
    else if (strcmp(key, "TopicArn") == 0)
        e->topic_arn = value;
    else if (strcmp(key, "Subject") == 0)
        e->subject = value;
    else if (strcmp(key, "Token") == 0)
        e->token = value;
    else if (strcmp(key, "SubscribeURL") == 0)
        e->subscribe_url = value;
    else if (strcmp(key, "SignatureVersion") == 0)
        e->version = value;
    else if (strcmp(key, "Type") == 0)
        e->type = value;
    else
        abort();
}

struct test_sns_keys {
    struct test_sns_ca ca, other, inter;
    EVP_PKEY *leaf_key, *ec_key;
    struct buf leaf, expired, early, foreign, ec, inter_leaf, inter_chain;
    X509_STORE *store;
};

static void test_sns_keys_make(struct test_sns_keys *k)
{
    k->ca.key = EVP_RSA_gen(2048);
    k->other.key = EVP_RSA_gen(2048);
    k->inter.key = EVP_RSA_gen(2048);
    k->leaf_key = EVP_RSA_gen(2048);
    k->ec_key = EVP_EC_gen("P-256");
    if (!k->ca.key || !k->other.key || !k->inter.key || !k->leaf_key || !k->ec_key)
        abort();
    k->ca.cert =
        test_sns_cert(k->ca.key, "Test Root CA", T0 - 3650 * DAY, T0 + 3650 * DAY, NULL, true, 1);
    k->other.cert = test_sns_cert(k->other.key, "Test Root CA", T0 - 3650 * DAY, T0 + 3650 * DAY,
                                  NULL, true, 1);
    k->inter.cert = test_sns_cert(k->inter.key, "Test Intermediate", T0 - 3650 * DAY,
                                  T0 + 3650 * DAY, &k->ca, true, 2);
    struct {
        struct buf *pem;
        EVP_PKEY *key;
        time_t from, to;
        const struct test_sns_ca *issuer;
    } leaves[] = {
        {&k->leaf, k->leaf_key, T0 - DAY, T0 + 365 * DAY, &k->ca},
        {&k->expired, k->leaf_key, T0 - 400 * DAY, T0 - 35 * DAY, &k->ca},
        {&k->early, k->leaf_key, T0 + DAY, T0 + 365 * DAY, &k->ca},
        {&k->foreign, k->leaf_key, T0 - DAY, T0 + 365 * DAY, &k->other},
        {&k->ec, k->ec_key, T0 - DAY, T0 + 365 * DAY, &k->ca},
        {&k->inter_leaf, k->leaf_key, T0 - DAY, T0 + 365 * DAY, &k->inter},
    };
    for (size_t i = 0; i < sizeof leaves / sizeof leaves[0]; i++) {
        X509 *x = test_sns_cert(leaves[i].key, "sns.amazonaws.com", leaves[i].from, leaves[i].to,
                                leaves[i].issuer, false, (long)(10 + i));
        test_sns_pem(x, leaves[i].pem);
        X509_free(x);
    }
    buf_adds(&k->inter_chain, buf_cstr(&k->inter_leaf));
    test_sns_pem(k->inter.cert, &k->inter_chain);
    k->store = X509_STORE_new();
    X509_STORE_add_cert(k->store, k->ca.cert);
}

static void test_sns_keys_free(struct test_sns_keys *k)
{
    struct test_sns_ca *cas[] = {&k->ca, &k->other, &k->inter};
    for (size_t i = 0; i < 3; i++) {
        EVP_PKEY_free(cas[i]->key);
        X509_free(cas[i]->cert);
    }
    EVP_PKEY_free(k->leaf_key);
    EVP_PKEY_free(k->ec_key);
    struct buf *bufs[] = {&k->leaf, &k->expired,    &k->early,      &k->foreign,
                          &k->ec,   &k->inter_leaf, &k->inter_chain};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        buf_free(bufs[i]);
    X509_STORE_free(k->store);
}

/* Valid messages of all three types and both versions pass; every signed
 * field tampered with fails; each bad certificate fails. */
static void test_sns_signatures(struct test_sns_keys *k)
{
    struct test_sns_env unsub = test_sns_sub;
    unsub.type = "UnsubscribeConfirmation";
    struct test_sns_env nosubj = test_sns_note;
    nosubj.subject = NULL;
    const struct test_sns_env *envs[] = {&test_sns_note, &nosubj, &test_sns_sub, &unsub};
    const char *leaf = buf_cstr(&k->leaf);

    for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++) {
        for (int v = 1; v <= 2; v++) {
            struct test_sns_env e = *envs[i];
            e.version = v == 1 ? "1" : "2";
            bool note = strcmp(e.type, "Notification") == 0;
            CHECK(test_sns_run(&e, &e, k->leaf_key, leaf, k->store, T0) == 0, "%s v%d valid",
                  e.type, v);
            CHECK(test_sns_run(&e, &e, k->leaf_key, buf_cstr(&k->inter_chain), k->store, T0) == 0,
                  "%s v%d through an intermediate", e.type, v);

            static const struct {
                const char *key, *value;
                bool note_only, conf_only;
            } tampers[] = {
                {"Message", "{\"notificationType\":\"Delivery\"}", false, false},
                {"Message", "", false, false},
                {"MessageId", "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf325", false, false},
                {"Timestamp", "2012-05-02T00:54:07.655Z", false, false},
                {"TopicArn", "arn:aws:sns:us-west-2:123456789012:OtherTopic", false, false},
                {"Subject", "My Second Message", true, false},
                {"Subject", NULL, true, false},
                {"Token", "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d93", false,
                 true},
                {"SubscribeURL", "https://sns.us-west-2.amazonaws.com/?Action=Other", false, true},
                {"SignatureVersion", NULL, false, false},
            };
            for (size_t t = 0; t < sizeof tampers / sizeof tampers[0]; t++) {
                if ((tampers[t].note_only && !note) || (tampers[t].conf_only && note))
                    continue;
                const char *value = tampers[t].value;
                if (strcmp(tampers[t].key, "SignatureVersion") == 0)
                    value = v == 1 ? "2" : "1";
                else if (strcmp(tampers[t].key, "Subject") == 0 && value == NULL &&
                         e.subject == NULL)
                    value = "An added subject";
                struct test_sns_env bad = e;
                test_sns_tamper(&bad, tampers[t].key, value);
                CHECK(test_sns_run(&e, &bad, k->leaf_key, leaf, k->store, T0) == SNS_ERR_SIGNATURE,
                      "%s v%d %s tampered", e.type, v, tampers[t].key);
            }
            /* The same fields under another Type. */
            if (!note) {
                struct test_sns_env bad = e;
                bad.type = strcmp(e.type, "SubscriptionConfirmation") == 0
                               ? "UnsubscribeConfirmation"
                               : "SubscriptionConfirmation";
                CHECK(test_sns_run(&e, &bad, k->leaf_key, leaf, k->store, T0) == SNS_ERR_SIGNATURE,
                      "%s v%d Type changed", e.type, v);
            }

            CHECK(test_sns_run(&e, &e, k->leaf_key, buf_cstr(&k->foreign), k->store, T0) ==
                      SNS_ERR_CHAIN,
                  "%s v%d another CA", e.type, v);
            CHECK(test_sns_run(&e, &e, k->leaf_key, buf_cstr(&k->expired), k->store, T0) ==
                      SNS_ERR_CHAIN,
                  "%s v%d expired", e.type, v);
            CHECK(test_sns_run(&e, &e, k->leaf_key, buf_cstr(&k->early), k->store, T0) ==
                      SNS_ERR_CHAIN,
                  "%s v%d not yet valid", e.type, v);
            CHECK(test_sns_run(&e, &e, k->leaf_key, leaf, k->store, T0 + 400 * DAY) ==
                      SNS_ERR_CHAIN,
                  "%s v%d checked later than the certificate", e.type, v);
            CHECK(test_sns_run(&e, &e, k->leaf_key, buf_cstr(&k->inter_leaf), k->store, T0) ==
                      SNS_ERR_CHAIN,
                  "%s v%d intermediate missing", e.type, v);
            CHECK(test_sns_run(&e, &e, k->ca.key, leaf, k->store, T0) == SNS_ERR_SIGNATURE,
                  "%s v%d signed by another key", e.type, v);
            CHECK(test_sns_run(&e, &e, k->ec_key, buf_cstr(&k->ec), k->store, T0) == SNS_ERR_CERT,
                  "%s v%d EC key", e.type, v);
            CHECK(test_sns_run(&e, &e, k->leaf_key, "-----BEGIN CERTIFICATE-----\nAAAA\n", k->store,
                               T0) == SNS_ERR_CERT,
                  "%s v%d not a certificate", e.type, v);
        }
    }

    /* An empty store trusts nothing. */
    X509_STORE *empty = X509_STORE_new();
    struct test_sns_env e = test_sns_note;
    CHECK(test_sns_run(&e, &e, k->leaf_key, leaf, empty, T0) == SNS_ERR_CHAIN, "empty store");
    X509_STORE_free(empty);
}

/* Parse e signed with key (its SignatureVersion) into m; tamper: its
 * Message changed after signing. */
static void test_sns_signed_msg(const struct test_sns_env *e, EVP_PKEY *key, bool tamper,
                                struct sns_msg *m)
{
    struct buf tbs = {0}, sig = {0}, body = {0};
    test_sns_tbs(e, &tbs);
    test_sns_sign(key, e->version[0] == '1' ? 1 : 2, buf_cstr(&tbs), &sig);
    struct test_sns_env sent = *e;
    if (tamper)
        sent.message = "Something else";
    test_sns_json(&sent, buf_cstr(&sig), &body);
    char reason[128];
    if (sns_parse(body.data, body.len, m, reason, sizeof reason) < 0)
        abort();
    buf_free(&tbs);
    buf_free(&sig);
    buf_free(&body);
}

/* sns_cert_check and sns_verify_key, the two halves of sns_verify a caller
 * uses to keep a checked certificate's key: the key comes back only for a
 * certificate that chains, with the time the first certificate of its chain
 * expires; the key verifies both versions and refuses a tampered message. */
static void test_sns_split(struct test_sns_keys *k)
{
    EVP_PKEY *key = (EVP_PKEY *)1;
    time_t until = 1;
    char reason[256];
    CHECK(sns_cert_check(k->leaf.data, k->leaf.len, k->store, T0, &key, &until, reason,
                         sizeof reason) == 0,
          "leaf: %s", reason);
    CHECK(key != NULL && until == T0 + 365 * DAY, "leaf: key %p until %lld", (void *)key,
          (long long)until);
    for (int v = 1; v <= 2; v++) {
        struct test_sns_env e = test_sns_note;
        e.version = v == 1 ? "1" : "2";
        struct sns_msg m;
        test_sns_signed_msg(&e, k->leaf_key, false, &m);
        CHECK(sns_verify_key(&m, key, reason, sizeof reason) == 0, "v%d: %s", v, reason);
        sns_msg_cleanup(&m);
        test_sns_signed_msg(&e, k->leaf_key, true, &m);
        CHECK(sns_verify_key(&m, key, reason, sizeof reason) == SNS_ERR_SIGNATURE, "v%d tampered",
              v);
        sns_msg_cleanup(&m);
        /* signed by another key */
        test_sns_signed_msg(&e, k->inter.key, false, &m);
        CHECK(sns_verify_key(&m, key, reason, sizeof reason) == SNS_ERR_SIGNATURE,
              "v%d another key", v);
        sns_msg_cleanup(&m);
    }
    EVP_PKEY_free(key);

    CHECK(sns_cert_check(k->inter_chain.data, k->inter_chain.len, k->store, T0, &key, &until,
                         reason, sizeof reason) == 0,
          "through an intermediate: %s", reason);
    CHECK(key != NULL && until == T0 + 365 * DAY, "intermediate: until %lld", (long long)until);
    EVP_PKEY_free(key);

    const struct {
        const struct buf *pem;
        int rc;
        const char *what;
    } bad[] = {
        {&k->foreign, SNS_ERR_CHAIN, "another CA"},
        {&k->expired, SNS_ERR_CHAIN, "expired"},
        {&k->early, SNS_ERR_CHAIN, "not yet valid"},
        {&k->ec, SNS_ERR_CERT, "an EC key"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        key = (EVP_PKEY *)1;
        CHECK(sns_cert_check(bad[i].pem->data, bad[i].pem->len, k->store, T0, &key, &until, reason,
                             sizeof reason) == bad[i].rc &&
                  key == NULL,
              "%s", bad[i].what);
    }
    CHECK(sns_cert_check("", 0, k->store, T0, &key, &until, reason, sizeof reason) ==
                  SNS_ERR_CERT &&
              key == NULL,
          "empty");

    /* a CA that expires before the leaf bounds the time */
    struct test_sns_ca shortca = {EVP_RSA_gen(2048), NULL};
    shortca.cert = test_sns_cert(shortca.key, "Short CA", T0 - DAY, T0 + 100 * DAY, NULL, true, 3);
    X509 *x = test_sns_cert(k->leaf_key, "sns.amazonaws.com", T0 - DAY, T0 + 365 * DAY, &shortca,
                            false, 30);
    struct buf pem = {0};
    test_sns_pem(x, &pem);
    X509_STORE *st = X509_STORE_new();
    X509_STORE_add_cert(st, shortca.cert);
    CHECK(sns_cert_check(pem.data, pem.len, st, T0, &key, &until, reason, sizeof reason) == 0 &&
              until == T0 + 100 * DAY,
          "short CA: until %lld (%s)", (long long)until, reason);
    EVP_PKEY_free(key);
    CHECK(sns_cert_check(pem.data, pem.len, st, T0 + 101 * DAY, &key, &until, reason,
                         sizeof reason) == SNS_ERR_CHAIN,
          "short CA expired");
    X509_STORE_free(st);
    buf_free(&pem);
    X509_free(x);
    X509_free(shortca.cert);
    EVP_PKEY_free(shortca.key);
}

/* The certificate and subscribe URL rule. */
static void test_sns_urls(void)
{
    static const struct {
        const char *url, *extra;
        int want;
    } cases[] = {
        {"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem", NULL, 0},
        {"https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&Token=x", NULL, 0},
        {"https://sns.eu-central-1.amazonaws.com/a.pem", NULL, 0},
        {"https://sns.ap-southeast-1.amazonaws.com/a.pem", NULL, 0},
        {"https://sns.us-gov-west-1.amazonaws.com/a.pem", NULL, 0},
        {"https://sns.cn-north-1.amazonaws.com.cn/a.pem", NULL, 0},
        {"https://sns.cn-northwest-1.amazonaws.com.cn/a.pem", NULL, 0},
        {"https://SNS.US-EAST-1.AMAZONAWS.COM/a.pem", NULL, 0},
        {"HTTPS://sns.us-east-1.amazonaws.com/a.pem", NULL, 0},
        {"https://sns.us-east-1.amazonaws.com", NULL, 0},
        {"http://sns.us-east-1.amazonaws.com/a.pem", NULL, SNS_ERR_URL},
        {"ftp://sns.us-east-1.amazonaws.com/a.pem", NULL, SNS_ERR_URL},
        {"sns.us-east-1.amazonaws.com/a.pem", NULL, SNS_ERR_URL},
        {"//sns.us-east-1.amazonaws.com/a.pem", NULL, SNS_ERR_URL},
        {"https:sns.us-east-1.amazonaws.com/a.pem", NULL, SNS_ERR_URL},
        {"https://sns.us-east-1.amazonaws.com.evil.com/a.pem", NULL, SNS_ERR_URL},
        {"https://evilsns.us-east-1.amazonaws.com/a.pem", NULL, SNS_ERR_URL},
        {"https://evil.sns.us-east-1.amazonaws.com/a.pem", NULL, SNS_ERR_URL},
        {"https://sns.us-east-1.evil.amazonaws.com/a.pem", NULL, SNS_ERR_URL},
        {"https://sns.us-east-1.amazonaws.com./a.pem", NULL, SNS_ERR_URL},
        {"https://sqs.us-east-1.amazonaws.com/a.pem", NULL, SNS_ERR_URL},
        {"https://sns.amazonaws.com/a.pem", NULL, SNS_ERR_URL},
        {"https://sns.us-east.amazonaws.com/a.pem", NULL, SNS_ERR_URL},
        {"https://sns.us-east-123.amazonaws.com/a.pem", NULL, SNS_ERR_URL},
        {"https://sns.useast-1.amazonaws.com/a.pem", NULL, SNS_ERR_URL},
        {"https://sns.evil.com/a.pem", NULL, SNS_ERR_URL},
        {"https://sns.us-east-1.amazonaws.com.cn/a.pem", NULL, SNS_ERR_URL},
        {"https://sns.cn-north-1.amazonaws.com/a.pem", NULL, SNS_ERR_URL},
        {"https://sns.us-east-1.amazonaws.co/a.pem", NULL, SNS_ERR_URL},
        {"https://sns.us-east-1.amazonaws.com:443/a.pem", NULL, SNS_ERR_URL},
        {"https://sns.us-east-1.amazonaws.com:8443/a.pem", NULL, SNS_ERR_URL},
        {"https://sns.us-east-1.amazonaws.com:/a.pem", NULL, SNS_ERR_URL},
        {"https://localhost:/a.pem", "localhost", SNS_ERR_URL},
        {"https:/sns.us-east-1.amazonaws.com/a.pem", NULL, 0},
        {"https://user@sns.us-east-1.amazonaws.com/a.pem", NULL, SNS_ERR_URL},
        {"https://user:pw@sns.us-east-1.amazonaws.com/a.pem", NULL, SNS_ERR_URL},
        {"https://sns.us-east-1.amazonaws.com@evil.com/a.pem", NULL, SNS_ERR_URL},
        {"https://evil.com@sns.us-east-1.amazonaws.com/a.pem", NULL, SNS_ERR_URL},
        {"https://evil.com\\@sns.us-east-1.amazonaws.com/a.pem", NULL, SNS_ERR_URL},
        {"https://sns.us-east-1.amazonaws.com\\@evil.com/a.pem", NULL, SNS_ERR_URL},
        {"https:\\\\sns.us-east-1.amazonaws.com/a.pem", NULL, SNS_ERR_URL},
        {"https://evil.com\\.sns.us-east-1.amazonaws.com/a.pem", NULL, SNS_ERR_URL},
        {"https://sns.us-east-1.amazonaws%2ecom/a.pem", NULL, SNS_ERR_URL},
        {"https://%73ns.us-east-1.amazonaws.com/a.pem", NULL, SNS_ERR_URL},
        {"https://sns.us-east-1.amazonaws.com%2f@evil.com/a.pem", NULL, SNS_ERR_URL},
        {"https://evil.com%2f.sns.us-east-1.amazonaws.com/a.pem", NULL, SNS_ERR_URL},
        {"https:/%73ns.us-east-1.amazonaws.com/a.pem", NULL, SNS_ERR_URL},
        {"https:///%73ns.us-east-1.amazonaws.com/a.pem", NULL, SNS_ERR_URL},
        {"https://sns.us-east-1.amazonaws.com/%2e%2e/a.pem", NULL, 0},
        {"https://sns.us-east-1.amazonaws.com/a.pem?x=%40evil.com", NULL, 0},
        {"https://evil.com#@sns.us-east-1.amazonaws.com/a.pem", NULL, SNS_ERR_URL},
        {"https://evil.com?@sns.us-east-1.amazonaws.com/a.pem", NULL, SNS_ERR_URL},
        {"https://sns.us-east-1.amazonaws.com /a.pem", NULL, SNS_ERR_URL},
        {" https://sns.us-east-1.amazonaws.com/a.pem", NULL, SNS_ERR_URL},
        {"https://sns.us-east-1.amazonaws.com\t/a.pem", NULL, SNS_ERR_URL},
        {"https://sns.us-east-1.amazonaws.com\n.evil.com/a.pem", NULL, SNS_ERR_URL},
        {"https://sns.us-east-1.amazonaws.\xc3\xa7om/a.pem", NULL, SNS_ERR_URL},
        {"https://sns.us-east-1.amazonaws.com\xe3\x80\x82"
         "evil.com/a.pem",
         NULL, SNS_ERR_URL},
        {"https://[::1]/a.pem", NULL, SNS_ERR_URL},
        {"https://127.0.0.1/a.pem", NULL, SNS_ERR_URL},
        {"", NULL, SNS_ERR_URL},
        {"https://", NULL, SNS_ERR_URL},
        {"https:///a.pem", NULL, SNS_ERR_URL},
        /* The caller's extra host. */
        {"https://localhost/a.pem", "localhost", 0},
        {"https://LOCALHOST/a.pem", "localhost", 0},
        {"https://127.0.0.1:8443/a.pem", "127.0.0.1:8443", 0},
        {"https://127.0.0.1/a.pem", "127.0.0.1:8443", SNS_ERR_URL},
        {"https://127.0.0.1:8444/a.pem", "127.0.0.1:8443", SNS_ERR_URL},
        {"https://localhost:8443/a.pem", "localhost", SNS_ERR_URL},
        {"http://localhost/a.pem", "localhost", SNS_ERR_URL},
        {"https://localhost.evil.com/a.pem", "localhost", SNS_ERR_URL},
        {"https://evillocalhost/a.pem", "localhost", SNS_ERR_URL},
        {"https://user@localhost/a.pem", "localhost", SNS_ERR_URL},
        {"https://sns.us-east-1.amazonaws.com/a.pem", "localhost", 0},
        {"https://sns.us-east-1.amazonaws.com/a.pem", "", 0},
        {"https://localhost/a.pem", "", SNS_ERR_URL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char reason[128] = "";
        int rc = sns_url_check(cases[i].url, cases[i].extra, reason, sizeof reason);
        CHECK(rc == cases[i].want, "url %zu \"%s\": got %d (%s), want %d", i, cases[i].url, rc,
              reason, cases[i].want);
        if (rc < 0)
            CHECK(reason[0] != '\0', "url %zu: a reason", i);
    }
}

/* fmt with @B replaced by base and @S by sig, into out. */
static void test_sns_expand(const char *fmt, const char *base, const char *sig, char *out,
                            size_t outlen)
{
    struct buf b = {0};
    for (const char *p = fmt; *p; p++) {
        if (p[0] == '@' && (p[1] == 'B' || p[1] == 'S')) {
            buf_adds(&b, p[1] == 'B' ? base : sig);
            p++;
        } else {
            buf_addc(&b, *p);
        }
    }
    if (b.len >= outlen)
        abort();
    memcpy(out, b.data, b.len + 1);
    buf_free(&b);
}

/* Bodies that are refused before any signature is looked at. */
static void test_sns_parse_errors(void)
{
    static const char sig[] = "\"Signature\":\"AAAA\",\"SigningCertURL\":\"https://sns.us-east-1."
                              "amazonaws.com/a.pem\",\"SignatureVersion\":\"1\"";
    static const char base[] = "\"MessageId\":\"id\",\"TopicArn\":\"arn:aws:sns:us-east-1:"
                               "123456789012:t\",\"Message\":\"m\",\"Timestamp\":\"2024-01-02T03:"
                               "04:05.678Z\"";
    char buf[2][1024];
    static const struct {
        const char *fmt; /* @B: base, @S: sig, when has_parts */
        bool has_parts;
        int want;
        const char *reason; /* a substring of the reason */
    } cases[] = {
        {"{\"Type\":\"Notification\",@B,@S}", true, 0, ""},
        {"{\"Type\":\"Notification\",@B,@S,\"Subject\":null}", true, 0, ""},
        {"{\"Type\":\"Notification\",@B,@S,\"Subject\":\"\"}", true, 0, ""},
        {"{\"Type\":\"Notification\",@B,@S,\"Subject\":5}", true, SNS_ERR_FIELD, "Subject"},
        {"{\"Type\":\"Notification\",@B,@S,\"UnsubscribeURL\":[]}", true, SNS_ERR_FIELD,
         "UnsubscribeURL"},
        {"{\"Type\":\"SubscriptionConfirmation\",@B,@S}", true, SNS_ERR_FIELD, "Token"},
        {"{\"Type\":\"SubscriptionConfirmation\",@B,@S,\"Token\":\"t\"}", true, SNS_ERR_FIELD,
         "SubscribeURL"},
        {"{\"Type\":\"SubscriptionConfirmation\",@B,@S,\"Token\":\"t\",\"SubscribeURL\":1}", true,
         SNS_ERR_FIELD, "SubscribeURL"},
        {"{\"Type\":\"SubscriptionConfirmation\",@B,@S,\"Token\":\"t\",\"SubscribeURL\":\"u\"}",
         true, 0, ""},
        {"{\"Type\":\"UnsubscribeConfirmation\",@B,@S,\"Token\":\"\",\"SubscribeURL\":\"u\"}", true,
         SNS_ERR_FIELD, "Token"},
        {"{\"Type\":\"Notification\",@B,@S,\"Type\":\"Notification\"}", true, SNS_ERR_JSON,
         "duplicate"},
        {"{\"Type\":\"Notice\",@B,@S}", true, SNS_ERR_TYPE, "Type"},
        {"{\"Type\":\"notification\",@B,@S}", true, SNS_ERR_TYPE, "Type"},
        {"{\"Type\":1,@B,@S}", true, SNS_ERR_FIELD, "Type"},
        {"{@B,@S}", true, SNS_ERR_FIELD, "Type missing"},
        {"{\"Type\":\"Notification\",\"MessageId\":7,\"Signature\":\"AAAA\"}", false, SNS_ERR_FIELD,
         "MessageId"},
        {"{\"Type\":\"Notification\",\"MessageId\":\"\",\"Signature\":\"AAAA\"}", false,
         SNS_ERR_FIELD, "MessageId empty"},
        {"{\"Type\":\"Notification\",@B}", true, SNS_ERR_FIELD, "Signature"},
        {"{\"Type\":\"Notification\",\"MessageId\":\"id\",\"TopicArn\":\"a\",\"Message\":null,"
         "\"Timestamp\":\"t\"}",
         false, SNS_ERR_FIELD, "Message"},
        {"{\"notificationType\":\"Bounce\",\"bounce\":{},\"mail\":{}}", false, SNS_ERR_RAW, "raw"},
        {"{\"eventType\":\"Delivery\",\"mail\":{},\"delivery\":{}}", false, SNS_ERR_RAW, "raw"},
        {"{\"mail\":{\"messageId\":\"x\"}}", false, SNS_ERR_RAW, "raw"},
        {"{\"notificationType\":\"Bounce\",\"Signature\":\"AAAA\"}", false, SNS_ERR_FIELD, "Type"},
        {"{\"foo\":1}", false, SNS_ERR_FIELD, "Type missing"},
        {"[]", false, SNS_ERR_JSON, "object"},
        {"\"Notification\"", false, SNS_ERR_JSON, ""},
        {"{\"Type\":\"Notification\"", false, SNS_ERR_JSON, "not JSON"},
        {"{\"Type\":\"Notific\\u0000ation\"}", false, SNS_ERR_JSON, "not JSON"},
        {"{\"Type\":\"Notification\"} x", false, SNS_ERR_JSON, "not JSON"},
        {"{\"Type\":\"\xff\"}", false, SNS_ERR_JSON, "not JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *body = cases[i].fmt;
        if (cases[i].has_parts) {
            test_sns_expand(cases[i].fmt, base, sig, buf[0], sizeof buf[0]);
            body = buf[0];
        }
        struct sns_msg m;
        char reason[256] = "";
        int rc = sns_parse(body, strlen(body), &m, reason, sizeof reason);
        CHECK(rc == cases[i].want, "parse %zu: got %d (%s), want %d", i, rc, reason, cases[i].want);
        CHECK(strstr(reason, cases[i].reason) != NULL, "parse %zu: reason \"%s\" lacks \"%s\"", i,
              reason, cases[i].reason);
        if (rc == 0)
            sns_msg_cleanup(&m);
        else
            CHECK(m.message_id == NULL && m.signature.data == NULL, "parse %zu: m left empty", i);
    }

    /* Field values checked after types. */
    static const struct {
        const char *timestamp, *version, *signature;
        int want;
    } values[] = {
        {"2024-01-02T03:04:05.678Z", "1", "AAAA", 0},
        {"2024-01-02T03:04:05Z", "2", "AAAA", 0},
        {"2024-01-02T03:04:05.678", "1", "AAAA", SNS_ERR_FIELD},
        {"2024-01-02 03:04:05.678Z", "1", "AAAA", SNS_ERR_FIELD},
        {"2024-01-02T03:04:05.Z", "1", "AAAA", SNS_ERR_FIELD},
        {"yesterday", "1", "AAAA", SNS_ERR_FIELD},
        {"2024-01-02T03:04:05Z", "3", "AAAA", SNS_ERR_FIELD},
        {"2024-01-02T03:04:05Z", "", "AAAA", SNS_ERR_FIELD},
        {"2024-01-02T03:04:05Z", "01", "AAAA", SNS_ERR_FIELD},
        {"2024-01-02T03:04:05Z", "1", "AA!A", SNS_ERR_FIELD},
        {"2024-01-02T03:04:05Z", "1", "=", SNS_ERR_FIELD},
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        snprintf(buf[1], sizeof buf[1],
                 "{\"Type\":\"Notification\",\"MessageId\":\"id\",\"TopicArn\":\"a\",\"Message\":"
                 "\"m\",\"Timestamp\":\"%s\",\"SignatureVersion\":\"%s\",\"Signature\":\"%s\","
                 "\"SigningCertURL\":\"u\"}",
                 values[i].timestamp, values[i].version, values[i].signature);
        struct sns_msg m;
        char reason[256] = "";
        int rc = sns_parse(buf[1], strlen(buf[1]), &m, reason, sizeof reason);
        CHECK(rc == values[i].want, "value %zu: got %d (%s), want %d", i, rc, reason,
              values[i].want);
        if (rc == 0) {
            CHECK(m.signature_version == values[i].version[0] - '0', "value %zu version", i);
            CHECK(m.signature.len == 3, "value %zu signature %zu bytes", i, m.signature.len);
            sns_msg_cleanup(&m);
        }
    }

    /* A signature too long to be RSA's. */
    struct buf big = {0};
    buf_adds(&big, "{\"Type\":\"Notification\",\"MessageId\":\"id\",\"TopicArn\":\"a\",\"Message\":"
                   "\"m\",\"Timestamp\":\"2024-01-02T03:04:05Z\",\"SignatureVersion\":\"1\","
                   "\"SigningCertURL\":\"u\",\"Signature\":\"");
    for (int i = 0; i < 1400; i++)
        buf_adds(&big, "AAAA");
    buf_adds(&big, "\"}");
    struct sns_msg m;
    char reason[256] = "";
    CHECK(sns_parse(big.data, big.len, &m, reason, sizeof reason) == SNS_ERR_FIELD,
          "long signature: %s", reason);

    /* Size bounds: empty, and one byte over (a valid envelope padded with
     * spaces, so only the size can refuse it). */
    CHECK(sns_parse("", 0, &m, reason, sizeof reason) == SNS_ERR_SIZE, "empty body");
    CHECK(sns_parse(NULL, 0, &m, reason, sizeof reason) == SNS_ERR_SIZE, "NULL body");
    buf_reset(&big);
    test_sns_expand("{\"Type\":\"Notification\",@B,@S}", base, sig, buf[0], sizeof buf[0]);
    buf_adds(&big, buf[0]);
    size_t pad = SNS_MAX_BODY - big.len;
    buf_reserve(&big, pad + 1);
    memset(big.data + big.len, ' ', pad + 1);
    big.len += pad;
    CHECK(sns_parse(big.data, big.len, &m, reason, sizeof reason) == 0, "at the limit: %s", reason);
    sns_msg_cleanup(&m);
    big.len++;
    CHECK(sns_parse(big.data, big.len, &m, reason, sizeof reason) == SNS_ERR_SIZE,
          "over the limit");
    buf_free(&big);
}

/* TopicArn shape and allow-list. */
static void test_sns_topics(void)
{
    static const struct {
        const char *arn;
        bool valid;
    } shapes[] = {
        {"arn:aws:sns:us-east-1:123456789012:bounces", true},
        {"arn:aws:sns:eu-west-2:123456789012:ses-events_2", true},
        {"arn:aws:sns:us-east-1:123456789012:events.fifo", true},
        {"arn:aws-cn:sns:cn-north-1:123456789012:t", true},
        {"arn:aws-us-gov:sns:us-gov-west-1:123456789012:t", true},
        {"arn:aws:sns:us-east-1:123456789012:", false},
        {"arn:aws:sns:us-east-1:12345678901:t", false},
        {"arn:aws:sns:us-east-1:1234567890123:t", false},
        {"arn:aws:sns:us-east-1:12345678901a:t", false},
        {"arn:aws:sqs:us-east-1:123456789012:t", false},
        {"arn:evil:sns:us-east-1:123456789012:t", false},
        {"arn:aws:sns::123456789012:t", false},
        {"arn:aws:sns:us-east-1:123456789012:t:sub", false},
        {"arn:aws:sns:us-east-1:123456789012:t.fifo.fifo", false},
        {"arn:aws:sns:us-east-1:123456789012:.fifo", false},
        {"arn:aws:sns:us-east-1:123456789012:t t", false},
        {"arn:aws:sns:us-east-1:123456789012", false},
        {"", false},
        {"*", false},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        CHECK(sns_topic_arn_valid(shapes[i].arn) == shapes[i].valid, "arn \"%s\"", shapes[i].arn);
    char longname[300] = "arn:aws:sns:us-east-1:123456789012:";
    size_t l = strlen(longname);
    memset(longname + l, 'a', 256);
    longname[l + 256] = '\0';
    CHECK(sns_topic_arn_valid(longname), "256-character name");
    longname[l + 256] = 'a';
    longname[l + 257] = '\0';
    CHECK(!sns_topic_arn_valid(longname), "257-character name");

    const char *one[] = {"arn:aws:sns:us-east-1:123456789012:bounces"};
    const char *two[] = {"arn:aws:sns:us-east-1:123456789012:other", "*"};
    char reason[128];
    CHECK(sns_topic_check(one[0], one, 1, reason, sizeof reason) == 0, "listed");
    CHECK(sns_topic_check("arn:aws:sns:us-east-1:123456789012:bounce", one, 1, reason,
                          sizeof reason) == SNS_ERR_TOPIC,
          "prefix of a listed one");
    CHECK(sns_topic_check("arn:aws:sns:us-east-1:123456789012:BOUNCES", one, 1, reason,
                          sizeof reason) == SNS_ERR_TOPIC,
          "case differs");
    CHECK(sns_topic_check("arn:aws:sns:us-east-1:123456789013:bounces", one, 1, reason,
                          sizeof reason) == SNS_ERR_TOPIC,
          "other account");
    CHECK(sns_topic_check(one[0], NULL, 0, reason, sizeof reason) == SNS_ERR_TOPIC, "empty list");
    CHECK(sns_topic_check("arn:aws:sns:eu-west-1:999999999999:x", two, 2, reason, sizeof reason) ==
              0,
          "star");
    CHECK(sns_topic_check("arn:aws:sqs:eu-west-1:999999999999:x", two, 2, reason, sizeof reason) ==
              SNS_ERR_TOPIC,
          "star still checks the shape");
}

int main(void)
{
    struct test_sns_keys k = {0};
    test_sns_keys_make(&k);
    test_sns_exact();
    test_sns_signatures(&k);
    test_sns_split(&k);
    test_sns_urls();
    test_sns_parse_errors();
    test_sns_topics();
    test_sns_keys_free(&k);
    return check_done("test_sns");
}
