/* util: small pure helpers shared by the core modules (no I/O, no clock). */
#ifndef SESGATE_UTIL_H
#define SESGATE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"

#define UTIL_SHA256_HEX_LEN 64

/* The value of hex digit c (either case), or -1. */
int util_hex_value(unsigned char c);
/* Lower-case hex of n bytes into out (2n chars + NUL). */
void util_hex(const unsigned char *in, size_t n, char *out);
/* Hex SHA-256 of data into out[65]. */
void util_sha256_hex(const void *data, size_t len, char out[UTIL_SHA256_HEX_LEN + 1]);
/* HMAC-SHA256 of msg under key into out[32]. */
void util_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                      unsigned char out[32]);
/* Constant-time equality of two n-byte regions. */
bool util_ct_equal(const void *a, const void *b, size_t n);

/* ASCII case-insensitive comparison of a counted string with a C string. */
bool util_ieq(const char *a, size_t alen, const char *b);
/* Length of the well-formed UTF-8 sequence that starts s[0..n) (no
 * overlongs, no surrogates, at most U+10FFFF), or 0 when there is none. */
size_t util_utf8_len(const unsigned char *s, size_t n);
/* True when the n bytes are well-formed UTF-8 (no overlongs, no surrogates). */
bool util_utf8_valid(const char *s, size_t n);

/* Format t (UTC seconds) as YYYYMMDDTHHMMSSZ into out[17]. */
void util_amz_date(time_t t, char out[17]);
/* Parse YYYYMMDDTHHMMSSZ (exactly 16 chars); -1 if malformed. */
int util_parse_amz_date(const char *s, size_t n, time_t *out);
/* Format t as an RFC 1123 HTTP date ("Sun, 06 Nov 1994 08:49:37 GMT") into out[30]. */
void util_http_date(time_t t, char out[30]);

/* Parse a duration: a number with unit ms, s, m, h or d (bare number = seconds).
 * Stores milliseconds. Returns 0, or -1 if malformed or out of range. */
int util_parse_duration_ms(const char *s, int64_t *out_ms);
/* Parse a size: a number with optional unit b, k, m, g (powers of 1024).
 * Returns 0, or -1 if malformed or out of range. */
int util_parse_size(const char *s, uint64_t *out);

/* The value of the standard base64 digit c (A-Z a-z 0-9 + /), or -1. */
int util_base64_value(unsigned char c);

/* Decode standard base64 (A-Z a-z 0-9 + /) at s and append the bytes to
 * out. Spaces, tabs, CR and LF are skipped anywhere; '=' padding is optional,
 * but when present it comes last and completes the final group. Returns 0,
 * or -1 when s is not base64 (out may then hold a partial result). */
int util_base64_decode(const char *s, size_t n, struct buf *out);

/* util_base64_decode, checking all of s but appending only its first max
 * bytes: the start of a large message without holding all of it. */
int util_base64_decode_max(const char *s, size_t n, size_t max, struct buf *out);

/* Extract the addr-spec from "Display Name <addr>" or a bare "addr": sets
 * start and len within s. Returns 0, or -1 if no plausible address is there. */
int util_addr_spec(const char *s, size_t n, size_t *start, size_t *len);

#endif
