/* reqcheck: the checks of a received SES request's authentication (core:
 * no I/O, no clock).
 *
 * The front (a client's request) and the sandbox (sesgate's own forwarded
 * request) check a request the same way and answer with SES's errors:
 * the signature scheme, the key, the credential scope (service, region,
 * date), the request's time against now, the payload hash, the signed
 * headers, then the signature itself. Time and the keys accepted are
 * parameters.
 */
#ifndef SESGATE_REQCHECK_H
#define SESGATE_REQCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "config.h"
#include "seserr.h"
#include "sigv4.h"

/* What a request must match. */
struct reqcheck_policy {
    const char *region;                  /* the region a scope may name (nregions 0) */
    int64_t clock_skew_ms;               /* the request's time may be this far from now */
    const struct config_client *clients; /* the keys accepted: access_key_id, secret */
    size_t nclients;
    bool presigned; /* a presigned (query string) request is accepted */
    /* the regions a scope may name (every upstream's); NULL: region alone */
    const char *const *regions;
    size_t nregions;
};

/* A request that passed reqcheck_request. Points into the request and
 * into the storage buffer passed to reqcheck_request. */
struct reqcheck_auth {
    struct sigv4_auth sig;
    size_t client;        /* its key: an index into the policy's clients; SIZE_MAX
                             until known (set as soon as known, also on failure) */
    const char *amz_date; /* the request's time: X-Amz-Date (header or query) */
    size_t amz_date_len;
};

/* Check r (every field set; payload_hash is the body's SHA-256 in hex) at
 * now (seconds since the epoch) against p, everything but the signature:
 * on success fill out and return 0; else return -1 with e set to SES's
 * error. storage holds what a presigned request's query decoded (out
 * points into it): the caller frees it with buf_free in both cases. */
int reqcheck_request(const struct reqcheck_policy *p, const struct sigv4_request *r, time_t now,
                     struct buf *storage, struct reqcheck_auth *out, struct seserr *e);

/* Verify the signature of r, checked by reqcheck_request as ra, with
 * secret (its key's); the signing key of its scope comes from cache, which
 * is refreshed when the scope changed. Returns 0, or -1 with e set. */
int reqcheck_verify(const struct sigv4_request *r, const struct reqcheck_auth *ra,
                    const char *secret, struct sigv4_key_cache *cache, struct seserr *e);

/* The value of header name (lower case) in r, or NULL; its length in *len
 * when len is not NULL. */
const char *reqcheck_header(const struct sigv4_request *r, const char *name, size_t *len);

/* True when the query (len bytes) has a parameter named name. */
bool reqcheck_query_has(const char *q, size_t len, const char *name);

#endif
