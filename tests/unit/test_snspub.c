/* test_snspub: SNS Notifications made and signed by the sandbox's publisher.
 *
 * The certificates snspub_cert makes chain as a verifier expects (sns_verify
 * with a store holding the CA only); the signature is checked a second time
 * against a string to sign written out here from AWS's documentation, not
 * with sns_string_to_sign; the rendered body parses back field for field;
 * the mailbox simulator's notifications read back through sesevent with the
 * kind, recipient and bounce type SES would give them. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "check.h"
#include "sesevent.h"
#include "sesmail.h"
#include "sns.h"
#include "snspub.h"

/* 2027-01-15 */
#define T0 ((time_t)1800000000)

static EVP_PKEY *test_snspub_rsa(void)
{
    EVP_PKEY *k = EVP_RSA_gen(2048);
    if (k == NULL)
        abort();
    return k;
}

static EVP_PKEY *test_snspub_ec(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    if (k == NULL)
        abort();
    return k;
}

/* The string to sign of a Notification as AWS documents it ("Verifying the
 * signatures of Amazon SNS messages"): each of Message, MessageId, Subject
 * (when present), Timestamp, TopicArn, Type as "name\nvalue\n". */
static void test_snspub_tbs(const struct sns_msg *m, struct buf *out)
{
    buf_printf(out, "Message\n%s\nMessageId\n%s\n", m->message, m->message_id);
    if (m->subject)
        buf_printf(out, "Subject\n%s\n", m->subject);
    buf_printf(out, "Timestamp\n%s\nTopicArn\n%s\nType\nNotification\n", m->timestamp,
               m->topic_arn);
}

/* A store that trusts ca only. */
static X509_STORE *test_snspub_store(X509 *ca)
{
    X509_STORE *s = X509_STORE_new();
    X509_STORE_add_cert(s, ca);
    return s;
}

static void test_snspub_roundtrip(void)
{
    unsigned char serial[16];
    memset(serial, 0xa5, sizeof serial);
    EVP_PKEY *cakey = test_snspub_ec(), *key = test_snspub_rsa();
    X509 *ca = snspub_cert("sesgate sandbox SNS CA", cakey, NULL, NULL, true, T0, 3650, serial);
    serial[0] = 1;
    X509 *leaf = snspub_cert("sesgate sandbox SNS", key, ca, cakey, false, T0, 3650, serial);
    CHECK(ca != NULL && leaf != NULL, "certificates made");
    CHECK(X509_check_ca(ca) == 1, "the CA is a CA");
    CHECK(X509_check_ca(leaf) == 0, "the signing certificate is not a CA");
    CHECK(X509_verify(leaf, cakey) == 1, "the CA signed the signing certificate");
    CHECK(ASN1_INTEGER_get(X509_get0_serialNumber(leaf)) != 0, "a serial number");
    struct buf pem = BUF_INIT, capem = BUF_INIT;
    CHECK(snspub_pem(leaf, &pem) == 0 && snspub_pem(ca, &capem) == 0, "PEM written");
    CHECK(strncmp(buf_cstr(&pem), "-----BEGIN CERTIFICATE-----\n", 28) == 0, "PEM shape");

    struct sesmail_msg mail = {0};
    char a[] = "success@simulator.amazonses.com";
    char *tov[] = {a};
    mail.to.v = tov;
    mail.to.n = 1;
    struct buf ses = BUF_INIT;
    sesmail_notification(SESMAIL_SIM_SUCCESS, "0100018c-MID", "s@x.com", a, &mail,
                         "2027-01-15T08:00:00.000Z", "FB", &ses);

    for (int version = 1; version <= 2; version++) {
        struct sns_msg m = {
            .type = SNS_NOTIFICATION,
            .message_id = (char *)"3f1c0e3a-8d2c-4e51-9a8b-7e4c3c2b1a00",
            .topic_arn = (char *)"arn:aws:sns:eu-west-1:000000000000:sesgate-sandbox",
            .message = (char *)buf_cstr(&ses),
            .timestamp = (char *)"2027-01-15T08:00:00.123Z",
            .signature_version = version,
            .signing_cert_url = (char *)"https://127.0.0.1:4567/sesgate-sandbox-sns.pem",
            .unsubscribe_url =
                (char *)"https://127.0.0.1:4567/?Action=Unsubscribe&SubscriptionArn=x",
        };
        char reason[256] = "";
        CHECK(snspub_sign(&m, key, reason, sizeof reason) == 0, "sign v%d: %s", version, reason);
        CHECK(m.signature.len == 256, "an RSA 2048 signature (%zu bytes)", m.signature.len);

        /* the signature over AWS's documented string, checked by hand */
        struct buf tbs = BUF_INIT;
        test_snspub_tbs(&m, &tbs);
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        CHECK(EVP_DigestVerifyInit(md, NULL, version == 1 ? EVP_sha1() : EVP_sha256(), NULL,
                                   X509_get0_pubkey(leaf)) == 1 &&
                  EVP_DigestVerify(md, (const unsigned char *)m.signature.data, m.signature.len,
                                   (const unsigned char *)tbs.data, tbs.len) == 1,
              "v%d signature over the documented string", version);
        EVP_MD_CTX_free(md);
        buf_free(&tbs);

        /* the body, parsed and verified as the endpoint does */
        struct buf body = BUF_INIT;
        snspub_render(&m, &body);
        struct sns_msg back;
        CHECK(sns_parse(body.data, body.len, &back, reason, sizeof reason) == 0, "parse: %s",
              reason);
        CHECK(back.type == SNS_NOTIFICATION, "type");
        CHECK_STR(back.message_id, m.message_id, "MessageId");
        CHECK_STR(back.topic_arn, m.topic_arn, "TopicArn");
        CHECK_STR(back.message, m.message, "Message");
        CHECK_STR(back.timestamp, m.timestamp, "Timestamp");
        CHECK_STR(back.signing_cert_url, m.signing_cert_url, "SigningCertURL");
        CHECK_STR(back.unsubscribe_url, m.unsubscribe_url, "UnsubscribeURL");
        CHECK(back.subject == NULL, "no Subject");
        CHECK(back.signature_version == version, "SignatureVersion");
        X509_STORE *store = test_snspub_store(ca);
        CHECK(sns_verify(&back, pem.data, pem.len, store, T0, reason, sizeof reason) == 0,
              "verifies against the CA: %s", reason);
        /* a day before the certificates were made, nothing chains */
        CHECK(sns_verify(&back, pem.data, pem.len, store, T0 - 86400, reason, sizeof reason) ==
                  SNS_ERR_CHAIN,
              "not valid before it was made");
        X509_STORE_free(store);
        /* another CA is not trusted */
        EVP_PKEY *other = test_snspub_ec();
        X509 *oca = snspub_cert("other", other, NULL, NULL, true, T0, 30, serial);
        store = test_snspub_store(oca);
        CHECK(sns_verify(&back, pem.data, pem.len, store, T0, reason, sizeof reason) ==
                  SNS_ERR_CHAIN,
              "another CA refuses it");
        X509_STORE_free(store);
        X509_free(oca);
        EVP_PKEY_free(other);
        /* one byte of the Message changed: the signature fails */
        store = test_snspub_store(ca);
        back.message[0] = '[';
        CHECK(sns_verify(&back, pem.data, pem.len, store, T0, reason, sizeof reason) ==
                  SNS_ERR_SIGNATURE,
              "a tampered Message is refused");
        X509_STORE_free(store);
        sns_msg_cleanup(&back);
        buf_free(&body);
        buf_free(&m.signature);
    }

    buf_free(&ses);
    X509_free(leaf);
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(cakey);
    buf_free(&pem);
    buf_free(&capem);
}

/* The simulator's notification for address, read back by sesevent. */
static void test_snspub_event(enum sesmail_sim sim, const char *addr, enum sesevent_kind kind,
                              const char *btype, const char *bsub, const char *what)
{
    struct sesmail_msg mail = {0};
    char other[] = "x@example.com";
    char *tov[] = {(char *)addr, other};
    mail.to.v = tov;
    mail.to.n = 2;
    struct buf out = BUF_INIT;
    sesmail_notification(sim, "0100018c-MID", "s@x.com", addr, &mail, "2027-01-15T08:00:00.000Z",
                         "FB", &out);
    struct sesevent ev;
    char err[256] = "";
    CHECK(sesevent_parse(out.data, out.len, &ev, err, sizeof err) == 0, "%s: %s", what, err);
    CHECK(ev.format == SESEVENT_IDENTITY, "%s: an identity notification", what);
    CHECK(ev.kind == kind, "%s: kind %d", what, (int)ev.kind);
    CHECK(ev.scope == SESEVENT_SCOPE_RECIPIENTS && ev.nrecipients == 1 &&
              strcmp(ev.recipients[0].address, addr) == 0,
          "%s: the one recipient", what);
    CHECK(ev.message_id && strcmp(ev.message_id, "0100018c-MID") == 0, "%s: message id", what);
    CHECK(ev.ndestination == 2, "%s: both destinations", what);
    if (btype) {
        CHECK(ev.bounce_type && strcmp(ev.bounce_type, btype) == 0, "%s: bounceType", what);
        CHECK(ev.bounce_subtype && strcmp(ev.bounce_subtype, bsub) == 0, "%s: bounceSubType", what);
        CHECK(ev.bounce == SESEVENT_BOUNCE_PERMANENT, "%s: permanent", what);
        CHECK(ev.recipients[0].diagnostic_code != NULL, "%s: a diagnostic code", what);
    }
    if (kind == SESEVENT_COMPLAINT)
        CHECK(ev.feedback_type && strcmp(ev.feedback_type, "abuse") == 0, "%s: feedback type",
              what);
    if (kind == SESEVENT_DELIVERY)
        CHECK(ev.smtp_response && strncmp(ev.smtp_response, "250 ", 4) == 0, "%s: smtp response",
              what);
    sesevent_cleanup(&ev);
    buf_free(&out);
}

static void test_snspub_events(void)
{
    test_snspub_event(SESMAIL_SIM_NONE, "a@example.org", SESEVENT_DELIVERY, NULL, NULL, "plain");
    test_snspub_event(SESMAIL_SIM_SUCCESS, "success@simulator.amazonses.com", SESEVENT_DELIVERY,
                      NULL, NULL, "success");
    test_snspub_event(SESMAIL_SIM_OOTO, "ooto@simulator.amazonses.com", SESEVENT_DELIVERY, NULL,
                      NULL, "ooto");
    test_snspub_event(SESMAIL_SIM_BOUNCE, "bounce@simulator.amazonses.com", SESEVENT_BOUNCE,
                      "Permanent", "General", "bounce");
    test_snspub_event(SESMAIL_SIM_SUPPRESSED, "suppressionlist@simulator.amazonses.com",
                      SESEVENT_BOUNCE, "Permanent", "OnAccountSuppressionList", "suppressionlist");
    test_snspub_event(SESMAIL_SIM_COMPLAINT, "complaint@simulator.amazonses.com",
                      SESEVENT_COMPLAINT, NULL, NULL, "complaint");
}

int main(void)
{
    test_snspub_roundtrip();
    test_snspub_events();
    return check_done("test_snspub");
}
