/* authreq: verify a client's SigV4 signature on a request httpd received.
 *
 * The glue between httpd's requests and the pure sigv4 module: it derives
 * the signing key of the signature's credential scope (through a caller's
 * key cache) and verifies the signature over the request exactly as httpd
 * received it. The checks that come before (key lookup, service, region,
 * date and skew, payload hash) stay with the caller, which owns their errors.
 */
#ifndef SESGATE_AUTHREQ_H
#define SESGATE_AUTHREQ_H

#include <stddef.h>

#include "httpd.h"
#include "sigv4.h"

/* Verify a's signature over hr (method, raw path normalized as SES does,
 * query, headers as received) with payload_hash (64 hex chars: the body's
 * SHA-256) and amz_date (the request's X-Amz-Date: header, or query for a
 * presigned request). The signing key of a's scope under secret comes from
 * cache, which is refreshed when the scope changed. Returns SIGV4_OK,
 * SIGV4_ERR_MISMATCH or another error of sigv4_verify. */
int authreq_verify(const struct httpd_request *hr, const struct sigv4_auth *a, const char *amz_date,
                   size_t amz_date_len, const char *payload_hash, const char *secret,
                   struct sigv4_key_cache *cache);

#endif
