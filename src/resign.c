/* resign: sesgate's own SigV4 signature on requests to the upstream. */
#include "resign.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "sigv4.h"
#include "util.h"

struct resign {
    const struct config_upstream *cfg; /* the upstream signed for */
    char *endpoint_base;               /* scheme://authority, no trailing slash */
    char *endpoint_host;               /* authority as signed in the host header */
    struct sigv4_key_cache key;
};

/* Split the endpoint URL into "scheme://authority" and the signed host. */
static int resign_parse_endpoint(struct resign *s, const char *url, char *err, size_t errlen)
{
    const char *p = strstr(url, "://");
    if (p == NULL || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)) {
        snprintf(err, errlen, "upstream endpoint '%s' is not an http(s) URL", url);
        return -1;
    }
    const char *host = p + 3;
    size_t hl = strcspn(host, "/?#");
    if (hl == 0) {
        snprintf(err, errlen, "upstream endpoint '%s' has no host", url);
        return -1;
    }
    s->endpoint_base = xstrndup(url, (size_t)(host - url) + hl);
    /* The default port is not part of the signed host, as SDKs sign it. */
    size_t sign_len = hl;
    if (strncmp(url, "https", 5) == 0 && hl > 4 && strncmp(host + hl - 4, ":443", 4) == 0)
        sign_len -= 4;
    else if (strncmp(url, "http:", 5) == 0 && hl > 3 && strncmp(host + hl - 3, ":80", 3) == 0)
        sign_len -= 3;
    s->endpoint_host = xstrndup(host, sign_len);
    return 0;
}

struct resign *resign_new(const struct config_upstream *cfg, char *err, size_t errlen)
{
    struct resign *s = xcalloc(1, sizeof *s);
    s->cfg = cfg;
    if (resign_parse_endpoint(s, cfg->endpoint, err, errlen) < 0) {
        resign_free(s);
        return NULL;
    }
    return s;
}

void resign_free(struct resign *s)
{
    if (s == NULL)
        return;
    free(s->endpoint_base);
    free(s->endpoint_host);
    free(s);
}

/* Append "Name: value" to the list. */
static struct curl_slist *resign_add(struct curl_slist *l, struct buf *line, const char *name,
                                     const char *value, size_t len)
{
    buf_reset(line);
    buf_adds(line, name);
    buf_add(line, ": ", 2);
    buf_add(line, value, len);
    return curl_slist_append(l, line->data);
}

int resign_request(struct resign *s, const char *method, const char *path, size_t path_len,
                   const char *query, size_t query_len, const char *ctype, size_t ctype_len,
                   const char *payload_hash, time_t now, char **url, struct curl_slist **headers)
{
    const struct config_upstream *cfg = s->cfg;
    char amz_date[17];
    util_amz_date(now, amz_date);
    bool has_token = cfg->session_token && cfg->session_token[0];

    struct sigv4_header sh[5];
    size_t n = 0;
    if (ctype)
        sh[n++] = (struct sigv4_header){"content-type", 12, ctype, ctype_len};
    sh[n++] = (struct sigv4_header){"host", 4, s->endpoint_host, strlen(s->endpoint_host)};
    sh[n++] = (struct sigv4_header){"x-amz-content-sha256", 20, payload_hash, UTIL_SHA256_HEX_LEN};
    sh[n++] = (struct sigv4_header){"x-amz-date", 10, amz_date, 16};
    if (has_token)
        sh[n++] = (struct sigv4_header){"x-amz-security-token", 20, cfg->session_token,
                                        strlen(cfg->session_token)};
    const char *signed_headers =
        ctype
            ? (has_token ? "content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token"
                         : "content-type;host;x-amz-content-sha256;x-amz-date")
            : (has_token ? "host;x-amz-content-sha256;x-amz-date;x-amz-security-token"
                         : "host;x-amz-content-sha256;x-amz-date");
    struct sigv4_request sreq = {
        .method = method,
        .path = path,
        .path_len = path_len,
        .query = query,
        .query_len = query_len,
        .headers = sh,
        .nheaders = n,
        .payload_hash = payload_hash,
        .normalize_path = true,
    };
    char scope[128], date8[9];
    snprintf(scope, sizeof scope, "%.8s/%s/ses/aws4_request", amz_date, cfg->region);
    snprintf(date8, sizeof date8, "%.8s", amz_date);
    unsigned char key[32];
    sigv4_key_cache_get(&s->key, cfg->secret_access_key, date8, cfg->region, "ses", key);
    struct buf auth = BUF_INIT;
    if (sigv4_sign(&sreq, signed_headers, cfg->access_key_id, key, amz_date, scope, &auth) !=
        SIGV4_OK) {
        buf_free(&auth);
        return -1;
    }
    struct curl_slist *hl = NULL;
    struct buf line = BUF_INIT;
    /* An empty value makes libcurl leave out the header it would add. */
    hl = ctype ? resign_add(hl, &line, "Content-Type", ctype, ctype_len)
               : curl_slist_append(hl, "Content-Type:");
    hl = resign_add(hl, &line, "Host", s->endpoint_host, strlen(s->endpoint_host));
    hl = resign_add(hl, &line, "X-Amz-Date", amz_date, 16);
    hl = resign_add(hl, &line, "X-Amz-Content-Sha256", payload_hash, UTIL_SHA256_HEX_LEN);
    if (has_token)
        hl = resign_add(hl, &line, "X-Amz-Security-Token", cfg->session_token,
                        strlen(cfg->session_token));
    hl = resign_add(hl, &line, "Authorization", auth.data, auth.len);
    hl = curl_slist_append(hl, "Expect:");
    hl = curl_slist_append(hl, "Accept:");
    buf_reset(&line);
    buf_adds(&line, s->endpoint_base);
    buf_add(&line, path, path_len);
    if (query_len) {
        buf_addc(&line, '?');
        buf_add(&line, query, query_len);
    }
    *url = buf_detach(&line, NULL);
    *headers = hl;
    buf_free(&auth);
    return 0;
}
