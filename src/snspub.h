/* snspub: SNS messages made and signed as SNS makes them (core: no I/O, no
 * clock).
 *
 * The sandbox publishes its mailbox simulator's outcomes as SNS
 * Notifications: snspub_sign signs an envelope over the exact string SNS
 * signs (sns_string_to_sign, the verifier's own), snspub_render writes the
 * JSON body SNS posts, and snspub_cert / snspub_pem make the certificates
 * the signature chains to (a CA and its signing certificate). Times and
 * serial numbers are parameters; keys are made by the caller.
 */
#ifndef SESGATE_SNSPUB_H
#define SESGATE_SNSPUB_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "buf.h"
#include "sns.h"

/* Sign m with key (RSA): m->signature gets the SHA256withRSA (m's
 * signature_version 2) or SHA1withRSA (version 1) signature over
 * sns_string_to_sign(m). Returns 0, or SNS_ERR_SIGNATURE with a reason. */
int snspub_sign(struct sns_msg *m, EVP_PKEY *key, char *reason, size_t rlen);

/* Append the JSON body SNS posts for m (signed): the fields AWS documents
 * for its type, in SNS's order (Notification: Type, MessageId, TopicArn,
 * Subject when set, Message, Timestamp, SignatureVersion, Signature in
 * base64, SigningCertURL, UnsubscribeURL; a confirmation has Token and
 * SubscribeURL instead of Subject and UnsubscribeURL). */
void snspub_render(const struct sns_msg *m, struct buf *out);

/* A certificate for key's public half with subject CN=cn, valid from an
 * hour before now to days after, serial number from the 16 bytes serial,
 * signed (SHA-256) by issuer_key in issuer's name (issuer NULL: self-signed,
 * by key). ca: a CA (basicConstraints CA:TRUE, keyCertSign, cRLSign);
 * otherwise an end entity for digital signatures. NULL when OpenSSL
 * fails. The caller frees it (X509_free). */
X509 *snspub_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, bool ca,
                  time_t now, int days, const unsigned char serial[16]);

/* Append x in PEM. Returns 0, or -1 when OpenSSL fails. */
int snspub_pem(X509 *x, struct buf *out);

#endif
