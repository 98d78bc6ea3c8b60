/* resign: sesgate's own SigV4 signature on requests to the upstream.
 *
 * Every request sesgate sends upstream, passed through or sent from the
 * queue, is signed here with the upstream credentials for the upstream host:
 * SignedHeaders content-type (when there is one), host,
 * x-amz-content-sha256, x-amz-date and x-amz-security-token (with session
 * credentials). The signing key is cached per day.
 */
#ifndef SESGATE_RESIGN_H
#define SESGATE_RESIGN_H

#include <stddef.h>
#include <time.h>

#include <curl/curl.h>

#include "config.h"

struct resign;

/* Prepare signing for upstream cfg's endpoint, region and credentials (cfg
 * must outlive the result). Returns NULL with a reason in err when the
 * endpoint is not an http(s) URL. */
struct resign *resign_new(const struct config_upstream *cfg, char *err, size_t errlen);

/* Release s. */
void resign_free(struct resign *s);

/* Sign a request to the upstream: method, path (raw, e.g. "/" or
 * "/v2/email/..."), query (raw, may be empty), content type (NULL for none),
 * the body's hex SHA-256, and the time. Sets *url (free()) and *headers
 * (curl_slist_free_all()) for upstream_start. Returns 0, or -1 when the
 * request cannot be signed (nothing is allocated then). */
int resign_request(struct resign *s, const char *method, const char *path, size_t path_len,
                   const char *query, size_t query_len, const char *ctype, size_t ctype_len,
                   const char *payload_hash, time_t now, char **url, struct curl_slist **headers);

#endif
