/* redisurl: a [redis] url read into its parts. */
#include "redisurl.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "buf.h"
#include "util.h"

/* Percent-decode s[0..n) into a new string, or NULL when malformed. */
static char *redisurl_unescape(const char *s, size_t n)
{
    struct buf b = BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            buf_addc(&b, s[i]);
            continue;
        }
        int hi = i + 2 < n ? util_hex_value((unsigned char)s[i + 1]) : -1;
        int lo = hi >= 0 ? util_hex_value((unsigned char)s[i + 2]) : -1;
        if (lo < 0 || (hi == 0 && lo == 0)) {
            if (b.data)
                explicit_bzero(b.data, b.cap);
            buf_free(&b);
            return NULL;
        }
        buf_addc(&b, (char)(hi << 4 | lo));
        i += 2;
    }
    buf_cstr(&b);
    return buf_detach(&b, NULL);
}

/* Parse a decimal number in [lo, hi] from s[0..n). */
static int redisurl_parse_int(const char *s, size_t n, long lo, long hi, int *out)
{
    if (n == 0 || n > 10)
        return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* Fill r's address from a unix socket path and an optional "db=N" query. */
static int redisurl_parse_unix(struct redisurl *r, const char *p, char *err, size_t errlen)
{
    const char *q = strchr(p, '?');
    size_t n = q ? (size_t)(q - p) : strlen(p);
    struct sockaddr_un sa;
    if (n == 0 || p[0] != '/') {
        snprintf(err, errlen, "[redis] url: a unix socket path must be absolute (unix:///path)");
        return -1;
    }
    if (n >= sizeof sa.sun_path) {
        snprintf(err, errlen,
                 "[redis] url: the unix socket path is %zu bytes, it must be under %zu", n,
                 sizeof sa.sun_path);
        return -1;
    }
    if (q && (strncmp(q, "?db=", 4) != 0 ||
              redisurl_parse_int(q + 4, strlen(q + 4), 0, INT_MAX, &r->db) < 0)) {
        snprintf(err, errlen, "[redis] url: the only unix socket parameter is ?db=N");
        return -1;
    }
    r->path = xstrndup(p, n);
    return 0;
}

/* Fill r's address and credentials from what follows "redis://". */
static int redisurl_parse_tcp(struct redisurl *r, const char *s, unsigned flags, char *err,
                              size_t errlen)
{
    const char *slash = strchr(s, '/');
    const char *end = slash ? slash : s + strlen(s);
    const char *at = NULL;
    for (const char *p = s; p < end; p++)
        if (*p == '@')
            at = p;
    const char *host = s;
    if (at) {
        const char *colon = memchr(s, ':', (size_t)(at - s));
        if (colon == NULL) {
            snprintf(err, errlen,
                     "[redis] url: write the password after a colon: "
                     "redis://:password@host or redis://user:password@host");
            return -1;
        }
        if (colon > s && (r->user = redisurl_unescape(s, (size_t)(colon - s))) == NULL) {
            snprintf(err, errlen, "[redis] url: bad percent-encoding in the user name");
            return -1;
        }
        r->password = redisurl_unescape(colon + 1, (size_t)(at - colon - 1));
        if (r->password == NULL) {
            snprintf(err, errlen, "[redis] url: bad percent-encoding in the password");
            return -1;
        }
        if (r->password[0] == '\0') {
            free(r->password);
            r->password = NULL;
        }
        host = at + 1;
    }
    const char *host_end, *port = NULL;
    if (*host == '[') {
        const char *rb = memchr(host, ']', (size_t)(end - host));
        if (rb == NULL || (rb + 1 < end && rb[1] != ':')) {
            snprintf(err, errlen, "[redis] url: malformed [IPv6] host");
            return -1;
        }
        r->host = xstrndup(host + 1, (size_t)(rb - host - 1));
        host_end = rb + 1;
        port = rb + 1 < end ? rb + 2 : NULL;
    } else {
        const char *colon = memchr(host, ':', (size_t)(end - host));
        host_end = colon ? colon : end;
        port = colon ? colon + 1 : NULL;
        if (colon && memchr(colon + 1, ':', (size_t)(end - colon - 1))) {
            snprintf(err, errlen, "[redis] url: put an IPv6 host in brackets: redis://[::1]:6379");
            return -1;
        }
        r->host = xstrndup(host, (size_t)(host_end - host));
    }
    if ((r->host[0] == '\0' && !(flags & REDISURL_HOST_OPTIONAL)) ||
        strpbrk(r->host, "?#%") != NULL) {
        snprintf(err, errlen, "[redis] url: missing or malformed host");
        return -1;
    }
    r->port = 6379;
    if (port && redisurl_parse_int(port, (size_t)(end - port), 1, 65535, &r->port) < 0) {
        snprintf(err, errlen, "[redis] url: the port must be a number from 1 to 65535");
        return -1;
    }
    if (slash && slash[1] != '\0' &&
        redisurl_parse_int(slash + 1, strlen(slash + 1), 0, INT_MAX, &r->db) < 0) {
        snprintf(err, errlen, "[redis] url: the database after the host must be a number");
        return -1;
    }
    return 0;
}

/* Parse url into r's address, credentials and database. */
int redisurl_parse(struct redisurl *r, const char *url, unsigned flags, char *err, size_t errlen)
{
    int rc;
    memset(r, 0, sizeof *r);
    if (strncmp(url, "unix://", 7) == 0)
        rc = redisurl_parse_unix(r, url + 7, err, errlen);
    else if (url[0] == '/')
        rc = redisurl_parse_unix(r, url, err, errlen);
    else if (strncmp(url, "redis://", 8) == 0)
        rc = redisurl_parse_tcp(r, url + 8, flags, err, errlen);
    else if (strncmp(url, "rediss://", 9) == 0) {
        r->tls = true;
        rc = redisurl_parse_tcp(r, url + 9, flags, err, errlen);
    } else {
        snprintf(err, errlen,
                 "[redis] url must be redis://[[user]:password@]host[:port][/db], "
                 "rediss://... (TLS), unix:///path or an absolute socket path");
        rc = -1;
    }
    if (rc < 0) {
        redisurl_cleanup(r);
        return -1;
    }
    const char *scheme = r->tls ? "rediss" : "redis";
    struct buf w = BUF_INIT;
    if (r->path)
        buf_printf(&w, "unix://%s", r->path);
    else if (r->host[0] == '\0') /* REDISURL_HOST_OPTIONAL: no server named */
        buf_printf(&w, "%s://", scheme);
    else if (strchr(r->host, ':'))
        buf_printf(&w, "%s://[%s]:%d", scheme, r->host, r->port);
    else
        buf_printf(&w, "%s://%s:%d", scheme, r->host, r->port);
    if (r->db || (r->host && r->host[0] == '\0'))
        buf_printf(&w, r->path ? "?db=%d" : "/%d", r->db);
    r->where = buf_detach(&w, NULL);
    return 0;
}

void redisurl_cleanup(struct redisurl *r)
{
    if (r->password) {
        explicit_bzero(r->password, strlen(r->password));
        free(r->password);
    }
    free(r->host);
    free(r->path);
    free(r->user);
    free(r->where);
    memset(r, 0, sizeof *r);
}
