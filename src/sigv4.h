/* sigv4: AWS Signature Version 4, as a pure module.
 *
 * Canonical request, string to sign, signing key (with a small cache),
 * signature, and verification of a client's signature exactly as AWS does it:
 * the client's own SignedHeaders, byte-exact header values as received, the
 * path double-encoded (non-S3 services), the query decoded and re-encoded
 * (RFC 3986) and sorted. Nothing here reads the clock or does I/O: the time
 * is always a parameter. All strings are counted (pointer + length) and not
 * necessarily NUL-terminated unless stated.
 */
#ifndef SESGATE_SIGV4_H
#define SESGATE_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "buf.h"

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"

/* Error codes returned by the parsers and the verifier (negative). */
enum sigv4_err {
    SIGV4_OK = 0,
    SIGV4_ERR_MALFORMED = -1,      /* Authorization / presign parameters malformed */
    SIGV4_ERR_ALGORITHM = -2,      /* not AWS4-HMAC-SHA256 (SigV4a, SigV2, AWS3...) */
    SIGV4_ERR_MISSING_HEADER = -3, /* a SignedHeaders entry is absent from the request */
    SIGV4_ERR_MISMATCH = -4,       /* signature does not match */
    SIGV4_ERR_PATH = -5,           /* path cannot be canonicalized (e.g. escapes root) */
    SIGV4_ERR_QUERY = -6,          /* query has malformed percent-encoding */
};

/* One request header as received: name and value exactly as on the wire,
 * the value without its leading/trailing whitespace being required trimmed.
 * Repeated headers appear as repeated entries, in arrival order. */
struct sigv4_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* The parts of a request that a signature covers. */
struct sigv4_request {
    const char *method; /* "GET", "POST"... NUL-terminated */
    const char *path;   /* raw path as on the request line, without the query */
    size_t path_len;
    const char *query; /* raw query string without the '?'; NULL or len 0 if none */
    size_t query_len;
    const struct sigv4_header *headers;
    size_t nheaders;
    const char *payload_hash; /* 64 lower-case hex chars: SHA-256 of the body */
    bool normalize_path;      /* remove dot segments and empty segments (true for SES) */
};

/* A parsed signature: from an Authorization header or presign parameters.
 * All pointers point into the string that was parsed. */
struct sigv4_auth {
    const char *access_key_id;
    size_t access_key_id_len;
    const char *date; /* credential scope date, YYYYMMDD */
    size_t date_len;
    const char *region;
    size_t region_len;
    const char *service;
    size_t service_len;
    const char *signed_headers; /* "a;b;c" */
    size_t signed_headers_len;
    const char *signature; /* hex */
    size_t signature_len;
    /* Presigned (query) form only; NULL/0 for the header form. */
    const char *amz_date; /* X-Amz-Date value (YYYYMMDDTHHMMSSZ) */
    size_t amz_date_len;
    long expires; /* X-Amz-Expires, seconds; -1 if absent */
    bool presigned;
};

/* Parse an Authorization header value:
 *   AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/ses/aws4_request,
 *                    SignedHeaders=host;x-amz-date, Signature=<64 hex>
 * Tolerates spaces around commas and in any order of the three fields; each
 * must appear exactly once. The scope must end in "aws4_request". Returns
 * SIGV4_OK, SIGV4_ERR_ALGORITHM (another scheme) or SIGV4_ERR_MALFORMED, with
 * a short reason in err (may be NULL). */
int sigv4_parse_authorization(const char *value, size_t len, struct sigv4_auth *out, char *err,
                              size_t errlen);

/* Parse the presigned form from a raw query string: X-Amz-Algorithm,
 * X-Amz-Credential, X-Amz-Date, X-Amz-SignedHeaders, X-Amz-Signature and
 * optional X-Amz-Expires. Values are percent-decoded into *storage (owned by
 * the caller, freed with buf_free) and out points into it. Returns 1 when the
 * query carries no X-Amz-Algorithm (not presigned), SIGV4_OK when parsed, or a
 * negative error with a reason in err. */
int sigv4_parse_presigned(const char *query, size_t len, struct sigv4_auth *out,
                          struct buf *storage, char *err, size_t errlen);

/* Append the canonical URI of a raw path: normalized if asked, then every byte
 * but unreserved characters and '/' percent-encoded (so "%20" becomes "%2520").
 * Returns SIGV4_OK or SIGV4_ERR_PATH. */
int sigv4_canonical_uri(const char *path, size_t len, bool normalize, struct buf *out);

/* Append the canonical query string of a raw query: each name and value
 * percent-decoded and re-encoded per RFC 3986, pairs sorted by name then
 * value. When skip_signature is set, X-Amz-Signature is left out (presigned
 * requests). Returns SIGV4_OK or SIGV4_ERR_QUERY. */
int sigv4_canonical_query(const char *query, size_t len, bool skip_signature, struct buf *out);

/* Append the canonical request for r, covering exactly the headers named in
 * signed_headers ("a;b;c", as the client sent it). For each name, all request
 * headers with that name (case-insensitive) are joined with ',' in arrival
 * order, each value trimmed with inner runs of spaces collapsed. When
 * presigned is set, X-Amz-Signature is left out of the query.
 * Returns SIGV4_OK, SIGV4_ERR_MISSING_HEADER, SIGV4_ERR_PATH or
 * SIGV4_ERR_QUERY (out may hold partial output on error). */
int sigv4_canonical_request(const struct sigv4_request *r, const char *signed_headers,
                            size_t signed_headers_len, bool presigned, struct buf *out);

/* Append the string to sign: algorithm, amz_date, scope
 * ("date/region/service/aws4_request") and the hex SHA-256 of creq. */
void sigv4_string_to_sign(const char *amz_date, const char *scope, const char *creq,
                          size_t creq_len, struct buf *out);

/* Derive the signing key for secret, date (YYYYMMDD), region and service. */
void sigv4_signing_key(const char *secret, const char *date, const char *region,
                       const char *service, unsigned char key[32]);

/* A one-entry cache of the derived key (dates change once a day, and a key
 * is used with one region and one or two services). Embed one per secret. */
struct sigv4_key_cache {
    char date[9];
    char region[64];
    char service[32];
    unsigned char key[32];
    bool valid;
};

/* The signing key for (secret, date, region, service), from cache when the
 * cache holds the same scope; the cache is refreshed otherwise. */
void sigv4_key_cache_get(struct sigv4_key_cache *c, const char *secret, const char *date,
                         const char *region, const char *service, unsigned char key[32]);

/* The hex signature (64 chars + NUL) of string_to_sign under key. */
void sigv4_signature(const unsigned char key[32], const char *sts, size_t sts_len, char out[65]);

/* Verify a client's signature: builds the canonical request of r for a's
 * SignedHeaders, the string to sign with amz_date and a's scope, and compares
 * the result with a's signature in constant time. amz_date is the request's
 * X-Amz-Date (header, or query for presigned requests). The canonical request
 * is left in creq_out when not NULL (for diagnostics; never log it with
 * secrets, it holds none). Returns SIGV4_OK, SIGV4_ERR_MISMATCH or an error
 * from sigv4_canonical_request. */
int sigv4_verify(const struct sigv4_request *r, const struct sigv4_auth *a, const char *amz_date,
                 size_t amz_date_len, const unsigned char key[32], struct buf *creq_out);

/* Sign an outgoing request (used to re-sign upstream): r must carry every
 * header named in signed_headers (lower-case, sorted, ';'-joined), including
 * host and x-amz-date. Appends the full Authorization header value
 * ("AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...") to
 * out. Returns SIGV4_OK, SIGV4_ERR_MALFORMED for a key id, scope or
 * SignedHeaders list that sigv4_parse_authorization would not read back as
 * given, or an error from sigv4_canonical_request; out is unchanged on error. */
int sigv4_sign(const struct sigv4_request *r, const char *signed_headers, const char *access_key_id,
               const unsigned char key[32], const char *amz_date, const char *scope,
               struct buf *out);

#endif
