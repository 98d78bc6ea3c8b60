/* httpd: an HTTP/1.1 server on libevent bufferevents and http-parser.
 *
 * It owns the sockets: accepting (up to max_connections), parsing requests
 * (bounded header size and count, bounded body, Expect: 100-continue),
 * keep-alive and pipelining (one request handled at a time per connection),
 * and timeouts (a request must arrive whole within read_timeout; an idle
 * keep-alive connection is closed after idle_timeout). Requests that break a
 * limit never reach the handler: the reject callback renders the answer
 * (sesgate's are SES-shaped) and the connection is closed after it.
 * Optionally TLS (httpd_set_tls): then every connection must complete its
 * handshake within read_timeout, and a failed handshake closes it.
 */
#ifndef SESGATE_HTTPD_H
#define SESGATE_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "buf.h"
#include "sigv4.h"

struct httpd;
struct httpd_conn;

struct httpd_limits {
    size_t max_header_size;  /* bytes: request line plus headers */
    size_t max_headers;      /* header fields */
    uint64_t max_body;       /* bytes */
    int64_t read_timeout_ms; /* ms from a request's first byte to its last */
    int64_t idle_timeout_ms; /* ms between requests on a keep-alive connection */
    int64_t max_connections;
};

/* A request being handled. Owned by its connection: valid from the handler
 * call until httpd_respond() or the abort callback, whichever comes first. */
struct httpd_request {
    struct httpd_conn *conn;
    const char *method; /* static string */
    const char *url;    /* raw request target, NUL-terminated */
    size_t url_len;
    const char *path; /* into url */
    size_t path_len;
    const char *query; /* into url, after '?'; NULL if none */
    size_t query_len;
    struct sigv4_header *headers; /* in arrival order; point into the connection */
    size_t nheaders;
    struct buf body;
    const char *peer; /* client address "ip:port" */
    void *user;       /* the handler's own per-request data */
};

/* Why a request was refused before reaching the handler. */
enum httpd_reject {
    HTTPD_REJECT_BAD_REQUEST, /* malformed HTTP */
    HTTPD_REJECT_HEADERS,     /* headers too large or too many */
    HTTPD_REJECT_TOO_LARGE,   /* body over max_body */
    HTTPD_REJECT_TIMEOUT,     /* the request did not arrive within read_timeout */
    HTTPD_REJECT_SMUGGLING,   /* conflicting Content-Length / Transfer-Encoding */
    HTTPD_REJECT_CHUNKED,     /* a Transfer-Encoding: bodies must come with Content-Length */
    HTTPD_REJECT_COUNT
};

/* The handler: must eventually call httpd_respond(req, ...) exactly once,
 * unless the abort callback it set fires first. */
typedef void (*httpd_handler_fn)(struct httpd_request *req, void *arg);
/* Render the refusal of req (path/method may be empty) by calling
 * httpd_respond() before returning; the connection closes afterwards. */
typedef void (*httpd_reject_fn)(struct httpd_request *req, enum httpd_reject why, void *arg);
/* Called when the client goes away while its request is being handled: the
 * handler must cancel its work and never touch req again. */
typedef void (*httpd_abort_fn)(struct httpd_request *req, void *arg);

/* A response header given to httpd_respond. */
struct httpd_header {
    const char *name;
    const char *value;
};

/* Listen on addr ("host:port", "[v6]:port") and serve requests with handler.
 * Returns NULL with a reason in err on failure. */
struct httpd *httpd_new(struct event_base *base, const char *addr,
                        const struct httpd_limits *limits, httpd_handler_fn handler,
                        httpd_reject_fn reject, void *arg, char *err, size_t errlen);

/* Speak TLS (1.2 or 1.3) on connections accepted from now on, with the
 * certificate chain in cert and the private key in key (PEM files, read now).
 * Call it again to reload: connections already open keep the context they
 * started with. Returns 0, or -1 with a reason naming the file in err, in
 * which case nothing changes (a plain server stays plain). */
int httpd_set_tls(struct httpd *h, const char *cert, const char *key, char *err, size_t errlen);

/* The server TLS context httpd_set_tls makes (TLS 1.2 or 1.3, sesgate's
 * ciphers) for cert and key, for another listener of the same certificate
 * (SMTP). NULL with a reason naming the file in err. The caller frees it
 * (SSL_CTX_free). */
struct ssl_ctx_st *httpd_tls_ctx_new(const char *cert, const char *key, char *err, size_t errlen);

/* Leave h's connections out of sesgate_connections and
 * sesgate_connections_rejected_total: a listener of sesgate's own (the
 * admin endpoints, the sandbox upstream), not one for SES clients. */
void httpd_set_internal(struct httpd *h);

/* Stop accepting and close every connection (pending requests are aborted
 * through their abort callbacks); frees the server. */
void httpd_free(struct httpd *h);

/* Stop accepting new connections (keeps the ones open). */
void httpd_stop_accepting(struct httpd *h);

/* The port actually bound (useful when listening on port 0). */
int httpd_port(const struct httpd *h);

/* The handler is done with req's body: release it now rather than when the
 * answer is written (a large body that was turned into something else). */
void httpd_drop_body(struct httpd_request *req);

/* Set the abort callback of req. */
void httpd_set_abort(struct httpd_request *req, httpd_abort_fn fn, void *arg);

/* Send the response: status, extra headers (Date, Content-Length and
 * Connection are added here), body (copied). req is invalid afterwards. */
void httpd_respond(struct httpd_request *req, int status, const struct httpd_header *headers,
                   size_t nheaders, const char *body, size_t len);

/* The value of the first header called name (case-insensitive), or NULL. */
const char *httpd_header(const struct httpd_request *req, const char *name, size_t *len);

/* req as the signature covers it (method, raw path, query, headers as
 * received, normalized path as SES does) with payload_hash (64 hex chars:
 * the body's SHA-256), into out; out points into req and payload_hash. */
void httpd_sigv4_request(const struct httpd_request *req, const char *payload_hash,
                         struct sigv4_request *out);

/* The standard reason phrase of an HTTP status. */
const char *httpd_reason(int status);

struct sockaddr;

/* A peer's address as logs name it, "host:port" ("?:0" for another
 * family), into out. */
void httpd_peer_name(const struct sockaddr *sa, char *out, size_t outlen);

#endif
