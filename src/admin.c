/* admin: /healthz, /readyz and /metrics on the operator's listener. */
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpd.h"
#include "metrics.h"

struct admin {
    struct httpd *httpd;
    const struct upstream *up;
    const struct redis *rd; /* NULL: no Redis to wait for */
};

/* True when the request's path (query ignored) is exactly path. */
static bool admin_path_is(const struct httpd_request *req, const char *path)
{
    return req->path_len == strlen(path) && memcmp(req->path, path, req->path_len) == 0;
}

/* Answer with a plain-text body. */
static void admin_text(struct httpd_request *req, int status, const char *ctype, const char *body,
                       size_t len)
{
    struct httpd_header h[1] = {{"Content-Type", ctype}};
    httpd_respond(req, status, h, 1, body, len);
}

/* httpd: route an admin request. */
static void admin_handle(struct httpd_request *req, void *arg)
{
    struct admin *a = arg;
    bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    if (!get) {
        admin_text(req, 405, "text/plain", "method not allowed\n", 19);
        return;
    }
    if (admin_path_is(req, "/healthz")) {
        admin_text(req, 200, "text/plain", "ok\n", 3);
    } else if (admin_path_is(req, "/readyz")) {
        struct buf b = BUF_INIT;
        if (!upstream_healthy(a->up))
            buf_adds(&b, "upstream unreachable\n");
        if (a->rd && !redis_ready(a->rd))
            buf_adds(&b, "redis unreachable\n");
        if (b.len == 0)
            admin_text(req, 200, "text/plain", "ready\n", 6);
        else
            admin_text(req, 503, "text/plain", b.data, b.len);
        buf_free(&b);
    } else if (admin_path_is(req, "/metrics")) {
        struct buf b = BUF_INIT;
        metrics_render(&b);
        if (a->rd)
            buf_printf(&b,
                       "# HELP sesgate_redis_up Whether Redis answers (1) or not (0).\n"
                       "# TYPE sesgate_redis_up gauge\nsesgate_redis_up %d\n",
                       redis_ready(a->rd) ? 1 : 0);
        admin_text(req, 200, "text/plain; version=0.0.4", b.data, b.len);
        buf_free(&b);
    } else {
        admin_text(req, 404, "text/plain", "not found\n", 10);
    }
}

/* httpd: a request broke a limit. */
static void admin_reject(struct httpd_request *req, enum httpd_reject why, void *arg)
{
    admin_text(req, why == HTTPD_REJECT_TOO_LARGE ? 413 : 400, "text/plain", "bad request\n", 12);
}

struct admin *admin_new(struct event_base *base, const struct config *cfg,
                        const struct upstream *up, const struct redis *rd, char *err, size_t errlen)
{
    struct admin *a = xcalloc(1, sizeof *a);
    a->up = up;
    a->rd = rd;
    struct httpd_limits lim = {
        .max_header_size = 16384,
        .max_headers = 64,
        .max_body = 0,
        .read_timeout_ms = 10000,
        .idle_timeout_ms = 60000,
        .max_connections = 256,
    };
    a->httpd = httpd_new(base, cfg->admin_listen, &lim, admin_handle, admin_reject, a, err, errlen);
    if (a->httpd == NULL) {
        free(a);
        return NULL;
    }
    return a;
}

void admin_free(struct admin *a)
{
    if (a == NULL)
        return;
    httpd_free(a->httpd);
    free(a);
}
