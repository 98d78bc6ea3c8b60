/* upstream: HTTP calls to SES through libcurl's multi-socket interface,
 * driven by the process's libevent base. Connections are kept alive and
 * reused; TLS peers are verified; every call has a timeout.
 */
#ifndef SESGATE_UPSTREAM_H
#define SESGATE_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "buf.h"

struct upstream;
struct upstream_call;

enum upstream_error {
    UPSTREAM_OK = 0,        /* an HTTP response arrived (any status) */
    UPSTREAM_ERR_CONNECT,   /* could not resolve or connect */
    UPSTREAM_ERR_TIMEOUT,   /* no complete answer within the timeout */
    UPSTREAM_ERR_TOO_LARGE, /* the answer exceeded the response size limit */
    UPSTREAM_ERR_OTHER,     /* TLS, protocol or transfer failure */
};

/* The outcome of one call, handed to the completion callback. */
/* Connections to the upstream at most; further calls wait for one. */
#define UPSTREAM_MAX_CONNECTIONS 256

struct upstream_response {
    enum upstream_error error;
    char errmsg[256]; /* libcurl's reason when error != UPSTREAM_OK */
    long status;      /* HTTP status; 0 without a response */
    struct buf body;  /* owned by the response; the callback may take it (buf_detach) */
    char content_type[128];
    char request_id[128];    /* x-amzn-RequestId, "" if none */
    char error_type[128];    /* x-amzn-ErrorType, "" if none */
    double seconds;          /* total time of the call */
    struct timespec sent_at; /* CLOCK_MONOTONIC when curl first read the request body to
                                write it, i.e. when the request left (zero: no body read) */
};

/* Called exactly once per call, unless the call was cancelled first. The
 * response is only valid during the callback. */
typedef void (*upstream_cb)(struct upstream_response *res, void *arg);

/* Create the client on base. timeout_ms bounds each call; max_response
 * bounds a response body (bytes). ca_file may be NULL (system CAs). */
struct upstream *upstream_new(struct event_base *base, int64_t timeout_ms, size_t max_response,
                              const char *ca_file);

/* Verify TLS peers by their public key instead of a CA and a name: pin is
 * "sha256//<base64 of the SHA-256 of the key's DER>" (libcurl's
 * CURLOPT_PINNEDPUBLICKEY); NULL goes back to CA and name. For a call to
 * this process's own listener, whose certificate may name any host. */
void upstream_set_pin(struct upstream *u, const char *pin);

/* Hosts reached without a proxy: a comma-separated list as libcurl's
 * CURLOPT_NOPROXY (it then replaces the no_proxy variable); NULL: no_proxy.
 * For the link-local credential endpoints, never to be proxied. */
void upstream_set_noproxy(struct upstream *u, const char *hosts);

/* Cancel every pending call (their callbacks never fire) and free. */
void upstream_free(struct upstream *u);

/* Start a call. headers (curl_slist of "Name: value") become owned by the
 * call. body (len bytes) is borrowed: it must stay valid until the callback
 * fires or the call is cancelled. Returns the call handle. */
struct upstream_call *upstream_start(struct upstream *u, const char *method, const char *url,
                                     struct curl_slist *headers, const char *body, size_t len,
                                     upstream_cb cb, void *arg);

/* Where a streamed body comes from: read copies up to n next bytes to out
 * and returns how many; rewind starts again from the first byte (asked only
 * before any byte went out). */
struct upstream_body {
    size_t (*read)(void *arg, char *out, size_t n);
    void (*rewind)(void *arg);
    void *arg;
};

/* Start a call whose body (len bytes) is produced as libcurl sends it, by
 * src (borrowed: it must stay valid until the callback fires or the call is
 * cancelled). Otherwise as upstream_start. */
struct upstream_call *upstream_start_body(struct upstream *u, const char *method, const char *url,
                                          struct curl_slist *headers,
                                          const struct upstream_body *src, size_t len,
                                          upstream_cb cb, void *arg);

/* Cancel a pending call: its callback will not fire. */
void upstream_cancel(struct upstream_call *call);

/* True unless the most recent call failed to connect or timed out. */
bool upstream_healthy(const struct upstream *u);

/* Number of calls in flight. */
size_t upstream_inflight(const struct upstream *u);

#endif
