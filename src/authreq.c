/* authreq: verify a client's SigV4 signature on a request httpd received. */
#include "authreq.h"

#include <stdio.h>

/* Verify a's signature over hr with the signing key of a's scope. */
int authreq_verify(const struct httpd_request *hr, const struct sigv4_auth *a, const char *amz_date,
                   size_t amz_date_len, const char *payload_hash, const char *secret,
                   struct sigv4_key_cache *cache)
{
    char date8[9], region[64], service[16];
    snprintf(date8, sizeof date8, "%.8s", a->date);
    snprintf(region, sizeof region, "%.*s", (int)a->region_len, a->region);
    snprintf(service, sizeof service, "%.*s", (int)a->service_len, a->service);
    unsigned char key[32];
    sigv4_key_cache_get(cache, secret, date8, region, service, key);
    struct sigv4_request sreq = {
        .method = hr->method,
        .path = hr->path,
        .path_len = hr->path_len,
        .query = hr->query,
        .query_len = hr->query_len,
        .headers = hr->headers,
        .nheaders = hr->nheaders,
        .payload_hash = payload_hash,
        .normalize_path = true,
    };
    return sigv4_verify(&sreq, a, amz_date, amz_date_len, key, NULL);
}
