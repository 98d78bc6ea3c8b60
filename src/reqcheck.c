/* reqcheck: a received SES request's authentication checks, as SES words
 * their errors. */
#include "reqcheck.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util.h"

/* Public: a header of r by name. */
const char *reqcheck_header(const struct sigv4_request *r, const char *name, size_t *len)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        if (util_ieq(r->headers[i].name, r->headers[i].name_len, name)) {
            if (len)
                *len = r->headers[i].value_len;
            return r->headers[i].value;
        }
    }
    return NULL;
}

/* Public: a query parameter's presence. */
bool reqcheck_query_has(const char *q, size_t len, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; q && i < len;) {
        const char *amp = memchr(q + i, '&', len - i);
        size_t end = amp ? (size_t)(amp - q) : len;
        size_t klen = end - i;
        const char *eq = memchr(q + i, '=', klen);
        if (eq)
            klen = (size_t)(eq - (q + i));
        if (klen == n && memcmp(q + i, name, n) == 0)
            return true;
        i = end + 1;
    }
    return false;
}

/* SES's error for a request time t more than skew_ms away from now. */
static void reqcheck_skew_error(struct seserr *e, time_t t, time_t now, int64_t skew_ms)
{
    char ts[17], bound[17], nows[17];
    long min = (long)(skew_ms / 60000);
    util_amz_date(t, ts);
    util_amz_date(now, nows);
    if (t < now) {
        util_amz_date(now - (time_t)(skew_ms / 1000), bound);
        seserr_set(e, SESERR_BAD_SIGNATURE,
                   "Signature expired: %s is now earlier than %s (%s - %ld min.)", ts, bound, nows,
                   min);
    } else {
        util_amz_date(now + (time_t)(skew_ms / 1000), bound);
        seserr_set(e, SESERR_BAD_SIGNATURE,
                   "Signature not yet current: %s is still later than %s (%s + %ld min.)", ts,
                   bound, nows, min);
    }
}

/* Parse r's signature (Authorization header, or a presigned query when p
 * allows) into a. Returns 0, or -1 with e set. */
static int reqcheck_parse(const struct reqcheck_policy *p, const struct sigv4_request *r,
                          struct buf *storage, struct sigv4_auth *a, struct seserr *e)
{
    size_t alen = 0;
    const char *authz = reqcheck_header(r, "authorization", &alen);
    char why[160] = "";
    int rc;
    if (reqcheck_header(r, "x-amzn-authorization", NULL) ||
        (reqcheck_query_has(r->query, r->query_len, "SignatureVersion") &&
         reqcheck_query_has(r->query, r->query_len, "Signature"))) {
        seserr_set(e, SESERR_INVALID_TOKEN,
                   "Signature Version 2 and 3 requests are not accepted; sign with Signature "
                   "Version 4.");
        return -1;
    }
    if (authz) {
        rc = sigv4_parse_authorization(authz, alen, a, why, sizeof why);
    } else if (r->query && p->presigned) {
        rc = sigv4_parse_presigned(r->query, r->query_len, a, storage, why, sizeof why);
        if (rc == 1) {
            seserr_set(e, SESERR_MISSING_AUTH, NULL);
            return -1;
        }
    } else {
        seserr_set(e, SESERR_MISSING_AUTH, NULL);
        return -1;
    }
    if (rc == SIGV4_ERR_ALGORITHM) {
        seserr_set(e, SESERR_INCOMPLETE_SIGNATURE,
                   "Unsupported signing algorithm: only AWS4-HMAC-SHA256 is accepted (SigV4a, "
                   "used with EndpointId, is not).");
        return -1;
    }
    if (rc != SIGV4_OK) {
        seserr_set(e, SESERR_INCOMPLETE_SIGNATURE, "%s", why[0] ? why : "Malformed signature.");
        return -1;
    }
    return 0;
}

/* True when region (len bytes) is one p accepts. */
static bool reqcheck_region_ok(const struct reqcheck_policy *p, const char *region, size_t len)
{
    if (p->regions == NULL || p->nregions == 0)
        return len == strlen(p->region) && memcmp(region, p->region, len) == 0;
    for (size_t i = 0; i < p->nregions; i++)
        if (len == strlen(p->regions[i]) && memcmp(region, p->regions[i], len) == 0)
            return true;
    return false;
}

/* Check the key and the credential scope of a: the key is one of p's (its
 * index into *client), no session token, service ses or email, p's region
 * (or one of its regions).
 * Returns 0, or -1 with e set. */
static int reqcheck_scope(const struct reqcheck_policy *p, const struct sigv4_request *r,
                          const struct sigv4_auth *a, size_t *client, struct seserr *e)
{
    size_t i = 0;
    for (; i < p->nclients; i++) {
        const char *k = p->clients[i].access_key_id;
        if (k && strlen(k) == a->access_key_id_len &&
            memcmp(k, a->access_key_id, a->access_key_id_len) == 0)
            break;
    }
    if (i == p->nclients) {
        seserr_set(e, SESERR_UNKNOWN_KEY, NULL);
        return -1;
    }
    *client = i;
    if (reqcheck_header(r, "x-amz-security-token", NULL) ||
        (a->presigned && reqcheck_query_has(r->query, r->query_len, "X-Amz-Security-Token"))) {
        seserr_set(e, SESERR_INVALID_TOKEN, NULL);
        return -1;
    }
    if (!util_ieq(a->service, a->service_len, "ses") &&
        !util_ieq(a->service, a->service_len, "email")) {
        seserr_set(e, SESERR_BAD_SIGNATURE,
                   "Credential should be scoped to correct service: 'ses'.");
        return -1;
    }
    if (!reqcheck_region_ok(p, a->region, a->region_len)) {
        seserr_set(e, SESERR_BAD_SIGNATURE,
                   "Credential should be scoped to a valid region, not '%.*s'.",
                   (int)(a->region_len > 64 ? 64 : a->region_len), a->region);
        return -1;
    }
    return 0;
}

/* Check the request's time (X-Amz-Date) against a's scope date and now,
 * and a presigned request's expiry; the date into *date. Returns 0, or -1
 * with e set. */
static int reqcheck_time(const struct reqcheck_policy *p, const struct sigv4_request *r,
                         const struct sigv4_auth *a, time_t now, const char **date,
                         size_t *date_len, struct seserr *e)
{
    *date = a->amz_date;
    *date_len = a->amz_date_len;
    if (!a->presigned)
        *date = reqcheck_header(r, "x-amz-date", date_len);
    if (*date == NULL) {
        seserr_set(e, SESERR_INCOMPLETE_SIGNATURE,
                   "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
                   "header.");
        return -1;
    }
    time_t t;
    if (util_parse_amz_date(*date, *date_len, &t) < 0) {
        seserr_set(e, SESERR_INCOMPLETE_SIGNATURE,
                   "X-Amz-Date must be in the ISO-8601 basic format YYYYMMDDTHHMMSSZ.");
        return -1;
    }
    if (a->date_len != 8 || memcmp(a->date, *date, 8) != 0) {
        seserr_set(e, SESERR_BAD_SIGNATURE,
                   "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
                   "from HTTP.");
        return -1;
    }
    int64_t skew_s = p->clock_skew_ms / 1000;
    if (t < now - skew_s || t > now + skew_s) {
        reqcheck_skew_error(e, t, now, p->clock_skew_ms);
        return -1;
    }
    if (a->presigned && a->expires >= 0 && now > t + a->expires) {
        seserr_set(e, SESERR_BAD_SIGNATURE, "Request has expired.");
        return -1;
    }
    return 0;
}

/* Check the payload hash header (when sent) and that host is signed.
 * Returns 0, or -1 with e set. */
static int reqcheck_signed(const struct sigv4_request *r, const struct sigv4_auth *a,
                           struct seserr *e)
{
    size_t hlen;
    const char *hsha = reqcheck_header(r, "x-amz-content-sha256", &hlen);
    if (hsha && (hlen != UTIL_SHA256_HEX_LEN || strncasecmp(hsha, r->payload_hash, hlen) != 0)) {
        seserr_set(e, SESERR_BAD_SIGNATURE,
                   "The provided 'x-amz-content-sha256' header does not match what was computed.");
        return -1;
    }
    for (size_t i = 0; i < a->signed_headers_len;) {
        const char *semi = memchr(a->signed_headers + i, ';', a->signed_headers_len - i);
        size_t end = semi ? (size_t)(semi - a->signed_headers) : a->signed_headers_len;
        if (util_ieq(a->signed_headers + i, end - i, "host"))
            return 0;
        i = end + 1;
    }
    seserr_set(e, SESERR_INCOMPLETE_SIGNATURE,
               "'Host' must be a 'SignedHeader' in the AWS Authorization.");
    return -1;
}

/* Public: every check of r but the signature. */
int reqcheck_request(const struct reqcheck_policy *p, const struct sigv4_request *r, time_t now,
                     struct buf *storage, struct reqcheck_auth *out, struct seserr *e)
{
    memset(out, 0, sizeof *out);
    out->client = SIZE_MAX;
    if (reqcheck_parse(p, r, storage, &out->sig, e) < 0 ||
        reqcheck_scope(p, r, &out->sig, &out->client, e) < 0 ||
        reqcheck_time(p, r, &out->sig, now, &out->amz_date, &out->amz_date_len, e) < 0 ||
        reqcheck_signed(r, &out->sig, e) < 0)
        return -1;
    return 0;
}

/* Public: verify r's signature with the signing key of its scope. */
int reqcheck_verify(const struct sigv4_request *r, const struct reqcheck_auth *ra,
                    const char *secret, struct sigv4_key_cache *cache, struct seserr *e)
{
    const struct sigv4_auth *a = &ra->sig;
    char date8[9], region[64], service[16];
    snprintf(date8, sizeof date8, "%.8s", a->date);
    snprintf(region, sizeof region, "%.*s", (int)a->region_len, a->region);
    snprintf(service, sizeof service, "%.*s", (int)a->service_len, a->service);
    unsigned char key[32];
    sigv4_key_cache_get(cache, secret, date8, region, service, key);
    int rc = sigv4_verify(r, a, ra->amz_date, ra->amz_date_len, key, NULL);
    if (rc == SIGV4_ERR_QUERY) {
        seserr_set(e, SESERR_MALFORMED_QUERY, NULL);
        return -1;
    }
    if (rc != SIGV4_OK) {
        seserr_set(e, SESERR_BAD_SIGNATURE, NULL);
        return -1;
    }
    return 0;
}
