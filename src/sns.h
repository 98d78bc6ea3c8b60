/* sns: Amazon SNS HTTP(S) messages read and verified (core: no I/O, no clock).
 *
 * The envelope SNS posts to an HTTP(S) subscription (Notification,
 * SubscriptionConfirmation, UnsubscribeConfirmation) is parsed and checked
 * field by field; the string SNS signs is rebuilt from it; the signature is
 * verified with the signing certificate, whose bytes the caller fetched from
 * SigningCertURL once that URL passed sns_url_check; the TopicArn is matched
 * against an allow-list. Every function returns 0 or a negative SNS_ERR_*
 * and writes a short reason (no message content beyond field names) into a
 * caller buffer.
 */
#ifndef SESGATE_SNS_H
#define SESGATE_SNS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "buf.h"

/* The largest envelope read (bytes): SNS messages are at most 256 KB, and
 * JSON escaping of a JSON message (an SES event) at most doubles most of it. */
#define SNS_MAX_BODY (1024 * 1024)

enum sns_err {
    SNS_OK = 0,
    SNS_ERR_SIZE = -1,      /* empty or over SNS_MAX_BODY */
    SNS_ERR_JSON = -2,      /* not a JSON object (or duplicate keys, NUL) */
    SNS_ERR_RAW = -3,       /* an SES event itself: raw message delivery is on */
    SNS_ERR_FIELD = -4,     /* a field missing, of the wrong type or malformed */
    SNS_ERR_TYPE = -5,      /* a Type that is none of the three */
    SNS_ERR_URL = -6,       /* a SigningCertURL or SubscribeURL outside SNS's hosts */
    SNS_ERR_CERT = -7,      /* the certificate cannot be read or has no RSA key */
    SNS_ERR_CHAIN = -8,     /* the certificate does not chain to the store at that time */
    SNS_ERR_SIGNATURE = -9, /* the signature does not verify */
    SNS_ERR_TOPIC = -10,    /* a TopicArn malformed or not allowed */
};

enum sns_type {
    SNS_NOTIFICATION = 1,
    SNS_SUBSCRIPTION_CONFIRMATION,
    SNS_UNSUBSCRIBE_CONFIRMATION,
};

/* A parsed envelope. Every string is NUL-terminated (a JSON \u0000 is
 * refused), owned by the struct and freed by sns_msg_cleanup. Absent
 * optional fields are NULL. */
struct sns_msg {
    enum sns_type type;
    char *message_id;
    char *topic_arn;
    char *subject; /* Notification only; NULL when absent or null */
    char *message;
    char *timestamp;       /* as sent (ISO 8601), not interpreted */
    char *token;           /* confirmations only */
    char *subscribe_url;   /* confirmations only */
    int signature_version; /* 1 (SHA1withRSA) or 2 (SHA256withRSA) */
    struct buf signature;  /* decoded from base64 */
    char *signing_cert_url;
    char *unsubscribe_url; /* Notification; type-checked only */
};

/* Parse the envelope body (n bytes) into m (zeroed by the caller, or
 * cleaned up). Every field SNS signs for the message's Type is required; a
 * field of another JSON type is refused; a body without Type and Signature
 * that carries notificationType, eventType or mail is SNS_ERR_RAW. On error
 * m holds nothing to free beyond what sns_msg_cleanup frees. */
int sns_parse(const char *body, size_t n, struct sns_msg *m, char *reason, size_t rlen);

/* Free what m owns and zero it. */
void sns_msg_cleanup(struct sns_msg *m);

/* The exact string SNS signed for m, appended to out: "Key\nValue\n" for
 * each signed key in order (Notification: Message, MessageId, Subject when
 * present, Timestamp, TopicArn, Type; confirmations: Message, MessageId,
 * SubscribeURL, Timestamp, Token, TopicArn, Type). */
void sns_string_to_sign(const struct sns_msg *m, struct buf *out);

/* Check that url may be fetched (SigningCertURL) or visited (SubscribeURL):
 * https, host sns.<region>.amazonaws.com (sns.cn-<...>.amazonaws.com.cn
 * in China; us-gov-* regions included), compared case-insensitively; no
 * userinfo, no port, no backslash, space, control byte or %-escape before
 * the path. extra_host ("host" or "host:port", may be NULL) is one more
 * allowed authority, matched exactly (case-insensitively, https only). */
int sns_url_check(const char *url, const char *extra_host, char *reason, size_t rlen);

/* Verify m's signature: the first certificate in pem (pem_len bytes; any
 * further certificates are untrusted intermediates) must chain to store at
 * time now (UTC seconds) and carry an RSA key under which Signature
 * verifies over sns_string_to_sign(m) with SHA1 (version 1) or SHA256
 * (version 2). The store's lookups are the caller's: one loaded into memory
 * does no I/O. SigningCertURL is not checked here (sns_url_check). */
int sns_verify(const struct sns_msg *m, const char *pem, size_t pem_len, X509_STORE *store,
               time_t now, char *reason, size_t rlen);

/* The certificate half of sns_verify: the first certificate in pem must
 * chain to store at time now and carry an RSA key. On success *key is that
 * key (the caller frees it with EVP_PKEY_free) and *valid_until the time
 * (UTC seconds) the first certificate of the verified chain expires: until
 * then, with the same store, the check gives the same answer, so a caller
 * may keep the key and skip it. On error *key is NULL. */
int sns_cert_check(const char *pem, size_t pem_len, X509_STORE *store, time_t now, EVP_PKEY **key,
                   time_t *valid_until, char *reason, size_t rlen);

/* The signature half of sns_verify: m's Signature under key (from
 * sns_cert_check) over sns_string_to_sign(m). */
int sns_verify_key(const struct sns_msg *m, EVP_PKEY *key, char *reason, size_t rlen);

/* True when arn has the shape arn:<aws|aws-cn|aws-us-gov>:sns:<region>:
 * <12 digits>:<topic name of 1-256 of A-Z a-z 0-9 _ -, optionally .fifo>. */
bool sns_topic_arn_valid(const char *arn);

/* Check arn's shape, then that it equals one of the n entries of allow or
 * that one of them is "*". No entry allows nothing. */
int sns_topic_check(const char *arn, const char *const *allow, size_t n, char *reason, size_t rlen);

#endif
