/* snspub: SNS messages made and signed as SNS makes them. */
#include "snspub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

int snspub_sign(struct sns_msg *m, EVP_PKEY *key, char *reason, size_t rlen)
{
    struct buf tbs = BUF_INIT;
    sns_string_to_sign(m, &tbs);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    const EVP_MD *alg = m->signature_version == 1 ? EVP_sha1() : EVP_sha256();
    size_t n = 0;
    int rc = 0;
    buf_reset(&m->signature);
    if (md == NULL || EVP_DigestSignInit(md, NULL, alg, NULL, key) != 1 ||
        EVP_DigestSign(md, NULL, &n, (const unsigned char *)tbs.data, tbs.len) != 1) {
        rc = SNS_ERR_SIGNATURE;
    } else {
        buf_reserve(&m->signature, n);
        if (EVP_DigestSign(md, (unsigned char *)m->signature.data, &n,
                           (const unsigned char *)tbs.data, tbs.len) != 1)
            rc = SNS_ERR_SIGNATURE;
        else
            m->signature.len = n;
    }
    if (rc < 0 && reason && rlen)
        snprintf(reason, rlen, "cannot sign: %s", ERR_reason_error_string(ERR_peek_error()));
    ERR_clear_error();
    EVP_MD_CTX_free(md);
    buf_free(&tbs);
    return rc;
}

/* Set key to the string s, when s is not NULL. */
static void snspub_set(json_t *o, const char *key, const char *s)
{
    if (s != NULL)
        json_object_set_new(o, key, json_string(s));
}

void snspub_render(const struct sns_msg *m, struct buf *out)
{
    static const char *const types[] = {"", "Notification", "SubscriptionConfirmation",
                                        "UnsubscribeConfirmation"};
    bool note = m->type == SNS_NOTIFICATION;
    struct buf sig = BUF_INIT;
    buf_reserve(&sig, (m->signature.len + 2) / 3 * 4 + 1);
    int k = EVP_EncodeBlock((unsigned char *)sig.data, (const unsigned char *)m->signature.data,
                            (int)m->signature.len);
    sig.len = (size_t)k;
    sig.data[k] = '\0';
    json_t *o = json_object();
    snspub_set(o, "Type", types[m->type]);
    snspub_set(o, "MessageId", m->message_id);
    if (!note)
        snspub_set(o, "Token", m->token);
    snspub_set(o, "TopicArn", m->topic_arn);
    if (note)
        snspub_set(o, "Subject", m->subject);
    snspub_set(o, "Message", m->message);
    if (!note)
        snspub_set(o, "SubscribeURL", m->subscribe_url);
    snspub_set(o, "Timestamp", m->timestamp);
    snspub_set(o, "SignatureVersion", m->signature_version == 1 ? "1" : "2");
    snspub_set(o, "Signature", sig.data);
    snspub_set(o, "SigningCertURL", m->signing_cert_url);
    if (note)
        snspub_set(o, "UnsubscribeURL", m->unsubscribe_url);
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    buf_free(&sig);
    if (s == NULL)
        abort();
    buf_adds(out, s);
    free(s);
}

/* Add the extension nid with value to x (issued by issuer). */
static bool snspub_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    bool ok = e != NULL && X509_add_ext(x, e, -1) == 1;
    X509_EXTENSION_free(e);
    return ok;
}

X509 *snspub_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, bool ca,
                  time_t now, int days, const unsigned char serial[16])
{
    X509 *x = X509_new();
    BIGNUM *bn = BN_bin2bn(serial, 16, NULL);
    bool ok = x != NULL && bn != NULL && X509_set_version(x, 2) == 1;
    if (ok) {
        BN_clear_bit(bn, 127); /* positive, as RFC 5280 wants */
        ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    }
    ok = ok && X509_time_adj_ex(X509_getm_notBefore(x), 0, -3600, &now) != NULL &&
         X509_time_adj_ex(X509_getm_notAfter(x), days, 0, &now) != NULL &&
         X509_set_pubkey(x, key) == 1;
    X509_NAME *name = ok ? X509_get_subject_name(x) : NULL;
    ok = ok &&
         X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                    0) == 1 &&
         X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) == 1;
    X509 *iss = issuer ? issuer : x;
    if (ca)
        ok = ok && snspub_ext(x, iss, NID_basic_constraints, "critical,CA:TRUE") &&
             snspub_ext(x, iss, NID_key_usage, "critical,keyCertSign,cRLSign") &&
             snspub_ext(x, iss, NID_subject_key_identifier, "hash");
    else
        ok = ok && snspub_ext(x, iss, NID_basic_constraints, "critical,CA:FALSE") &&
             snspub_ext(x, iss, NID_key_usage, "critical,digitalSignature") &&
             snspub_ext(x, iss, NID_subject_key_identifier, "hash") &&
             snspub_ext(x, iss, NID_authority_key_identifier, "keyid");
    ok = ok && X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0;
    BN_free(bn);
    ERR_clear_error();
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

int snspub_pem(X509 *x, struct buf *out)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *p = NULL;
    long n = 0;
    int rc = -1;
    if (b != NULL && PEM_write_bio_X509(b, x) == 1 && (n = BIO_get_mem_data(b, &p)) > 0) {
        buf_add(out, p, (size_t)n);
        rc = 0;
    }
    BIO_free(b);
    ERR_clear_error();
    return rc;
}
