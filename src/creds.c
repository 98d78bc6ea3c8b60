/* creds: an upstream's credentials provider (shell). */
#include "creds.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "sigv4.h"
#include "upstream.h"
#include "util.h"

#include <openssl/crypto.h>

#define CREDS_MAX_FILE      (1024 * 1024) /* a shared file or a token file, bytes at most */
#define CREDS_MAX_RESPONSE  (64 * 1024)   /* an STS, container or IMDS answer, bytes at most */
#define CREDS_IMDS_TTL      "21600"       /* the IMDSv2 session token's lifetime, s */
#define CREDS_MAX_PROVIDERS 64

/* What a fetch is doing. */
enum creds_step {
    CREDS_STEP_IDLE,
    CREDS_STEP_WEB,        /* AssumeRoleWithWebIdentity */
    CREDS_STEP_CONTAINER,  /* GET the container endpoint */
    CREDS_STEP_IMDS_TOKEN, /* PUT /latest/api/token */
    CREDS_STEP_IMDS_ROLE,  /* GET .../security-credentials/ */
    CREDS_STEP_IMDS_CREDS, /* GET .../security-credentials/ROLE */
    CREDS_STEP_ROLE,       /* AssumeRole plan.roles[role] */
};

struct creds {
    struct event_base *base;
    char *name; /* the upstream's name */
    struct awscreds_plan plan;
    struct upstream *up; /* NULL for static keys */
    struct event *timer; /* the next fetch */
    struct upstream_call *call;
    enum creds_step step;
    size_t role;         /* with CREDS_STEP_ROLE */
    struct awscreds tmp; /* credentials of the fetch's previous step */
    struct awscreds cur; /* what signs; access_key_id NULL: none yet */
    uint64_t generation;
    unsigned failures;
    char imds_token[1024];
    char imds_role[256];
    struct buf body; /* the call's body (borrowed by upstream_start) */
    char *source;    /* plan.description, with the instance role's name once known */
};

static struct creds *creds_registry[CREDS_MAX_PROVIDERS];

/* Read a whole file of at most CREDS_MAX_FILE bytes: 0, or -1 with errno. */
static int creds_read_file(const char *path, struct buf *out)
{
    buf_reset(out);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (out->len + n > CREDS_MAX_FILE) {
            fclose(f);
            errno = EFBIG;
            return -1;
        }
        buf_add(out, chunk, n);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        errno = EIO;
        return -1;
    }
    buf_cstr(out);
    return 0;
}

/* Choose the source of up for envp into plan; -1 with a reason in err. */
static int creds_plan(const struct config_upstream *up, char *const *envp,
                      struct awscreds_plan *plan, char *err, size_t errlen)
{
    char host[256] = "host";
    if (gethostname(host, sizeof host) < 0)
        snprintf(host, sizeof host, "host");
    host[sizeof host - 1] = '\0';
    struct awscreds_params p = {
        .access_key_id = up->access_key_id,
        .secret_access_key = up->secret_access_key,
        .session_token = up->session_token,
        .from_env = up->from_env,
        .profile = up->profile,
        .role_arn = up->role_arn,
        .external_id = up->external_id,
        .session_name = up->session_name,
        .region = up->region,
        .hostname = host,
    };
    struct buf cp = BUF_INIT, fp = BUF_INIT, ct = BUF_INIT, ft = BUF_INIT;
    awscreds_file_paths(envp, &cp, &fp);
    bool have_c = cp.len && creds_read_file(cp.data, &ct) == 0;
    bool have_f = fp.len && creds_read_file(fp.data, &ft) == 0;
    int rc = awscreds_plan_make(plan, &p, envp, have_c ? buf_cstr(&ct) : NULL,
                                have_f ? buf_cstr(&ft) : NULL, err, errlen);
    buf_free(&cp);
    buf_free(&fp);
    buf_free(&ct);
    buf_free(&ft);
    return rc;
}

int creds_describe(const struct config_upstream *up, char *const *envp, struct buf *out)
{
    char err[512];
    struct awscreds_plan plan;
    int rc = creds_plan(up, envp, &plan, err, sizeof err);
    buf_reset(out);
    buf_adds(out, rc == 0 ? plan.description : err);
    awscreds_plan_cleanup(&plan);
    return rc;
}

static void creds_fetch(struct creds *c);

static void creds_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    creds_fetch(arg);
}

/* Fetch again at wall time at (s). */
static void creds_schedule(struct creds *c, int64_t at)
{
    int64_t now = clock_wall_ms();
    int64_t ms = at * 1000 - now;
    if (ms < 0)
        ms = 0;
    struct timeval tv = clock_timeval(ms);
    evtimer_add(c->timer, &tv);
}

/* The fetch failed with reason why: keep what there is, try again later. */
static void creds_failed(struct creds *c, const char *why)
{
    c->step = CREDS_STEP_IDLE;
    c->call = NULL;
    awscreds_cleanup(&c->tmp);
    c->failures++;
    int64_t now = clock_wall_ms() / 1000;
    int64_t at = awscreds_next_fetch(now, c->cur.expiration, c->failures);
    char in[24], att[16];
    snprintf(in, sizeof in, "%" PRId64, (at - now) * 1000);
    snprintf(att, sizeof att, "%u", c->failures);
    log_event(LOG_WARN, "credentials_refresh_failed", "upstream", c->name, "source", c->source,
              "reason", why, "failures", att, "retry_ms", in, NULL);
    metrics_credentials_refresh("failure");
    creds_schedule(c, at);
}

/* The fetch got its final credentials in c->tmp. */
static void creds_done(struct creds *c)
{
    c->step = CREDS_STEP_IDLE;
    c->call = NULL;
    awscreds_cleanup(&c->cur);
    c->cur = c->tmp;
    c->tmp = (struct awscreds){0};
    c->generation++;
    c->failures = 0;
    int64_t now = clock_wall_ms() / 1000;
    char exp[32] = "never";
    if (c->cur.expiration) {
        char d[17];
        util_amz_date(c->cur.expiration, d);
        snprintf(exp, sizeof exp, "%s", d);
    }
    log_event(LOG_INFO, "credentials_refreshed", "upstream", c->name, "source", c->source,
              "expires", exp, NULL);
    metrics_credentials_refresh("success");
    int64_t at = awscreds_next_fetch(now, c->cur.expiration, 0);
    if (at >= 0)
        creds_schedule(c, at);
}

/* Split an http(s) URL into its base (scheme://authority) and the host as
 * signed (default port left out). */
static int creds_url_parts(const char *url, struct buf *base, struct buf *host)
{
    const char *p = strstr(url, "://");
    if (p == NULL)
        return -1;
    const char *h = p + 3;
    size_t hl = strcspn(h, "/?#");
    if (hl == 0)
        return -1;
    buf_reset(base);
    buf_add(base, url, (size_t)(h - url) + hl);
    size_t sl = hl;
    if (strncmp(url, "https:", 6) == 0 && hl > 4 && strncmp(h + hl - 4, ":443", 4) == 0)
        sl -= 4;
    else if (strncmp(url, "http:", 5) == 0 && hl > 3 && strncmp(h + hl - 3, ":80", 3) == 0)
        sl -= 3;
    buf_reset(host);
    buf_add(host, h, sl);
    return 0;
}

static void creds_answer(struct upstream_response *res, void *arg);

/* POST c->body to STS, SigV4-signed with with (NULL: unsigned). */
static int creds_sts_call(struct creds *c, const struct awscreds *with)
{
    static const char ctype[] = "application/x-www-form-urlencoded; charset=utf-8";
    struct buf base = BUF_INIT, host = BUF_INIT, line = BUF_INIT, auth = BUF_INIT;
    if (creds_url_parts(c->plan.sts_endpoint, &base, &host) < 0) {
        buf_free(&base);
        buf_free(&host);
        return -1;
    }
    struct curl_slist *hl = NULL;
    buf_printf(&line, "Content-Type: %s", ctype);
    hl = curl_slist_append(hl, line.data);
    hl = curl_slist_append(hl, "Accept:");
    hl = curl_slist_append(hl, "Expect:");
    if (with) {
        char amz_date[17], date8[9], sha[UTIL_SHA256_HEX_LEN + 1], scope[160];
        util_amz_date(time(NULL), amz_date);
        snprintf(date8, sizeof date8, "%.8s", amz_date);
        util_sha256_hex(c->body.data ? c->body.data : "", c->body.len, sha);
        bool tok = with->session_token && *with->session_token;
        struct sigv4_header sh[5];
        size_t n = 0;
        sh[n++] = (struct sigv4_header){"content-type", 12, ctype, sizeof ctype - 1};
        sh[n++] = (struct sigv4_header){"host", 4, host.data, host.len};
        sh[n++] = (struct sigv4_header){"x-amz-content-sha256", 20, sha, UTIL_SHA256_HEX_LEN};
        sh[n++] = (struct sigv4_header){"x-amz-date", 10, amz_date, 16};
        if (tok)
            sh[n++] = (struct sigv4_header){"x-amz-security-token", 20, with->session_token,
                                            strlen(with->session_token)};
        struct sigv4_request r = {
            .method = "POST",
            .path = "/",
            .path_len = 1,
            .query = "",
            .query_len = 0,
            .headers = sh,
            .nheaders = n,
            .payload_hash = sha,
            .normalize_path = true,
        };
        snprintf(scope, sizeof scope, "%s/%.64s/sts/aws4_request", date8, c->plan.sts_region);
        unsigned char key[32];
        sigv4_signing_key(with->secret_access_key, date8, c->plan.sts_region, "sts", key);
        int rc = sigv4_sign(&r,
                            tok ? "content-type;host;x-amz-content-sha256;x-amz-date;"
                                  "x-amz-security-token"
                                : "content-type;host;x-amz-content-sha256;x-amz-date",
                            with->access_key_id, key, amz_date, scope, &auth);
        OPENSSL_cleanse(key, sizeof key);
        if (rc != SIGV4_OK) {
            curl_slist_free_all(hl);
            buf_free(&base);
            buf_free(&host);
            return -1;
        }
        buf_reset(&line);
        buf_printf(&line, "X-Amz-Date: %s", amz_date);
        hl = curl_slist_append(hl, line.data);
        buf_reset(&line);
        buf_printf(&line, "X-Amz-Content-Sha256: %s", sha);
        hl = curl_slist_append(hl, line.data);
        if (tok) {
            buf_reset(&line);
            buf_printf(&line, "X-Amz-Security-Token: %s", with->session_token);
            hl = curl_slist_append(hl, line.data);
        }
        buf_reset(&line);
        buf_printf(&line, "Authorization: %s", buf_cstr(&auth));
        hl = curl_slist_append(hl, line.data);
        OPENSSL_cleanse(line.data, line.len);
    }
    buf_reset(&line);
    buf_printf(&line, "%s/", buf_cstr(&base));
    c->call = upstream_start(c->up, "POST", line.data, hl, c->body.data ? c->body.data : "",
                             c->body.len, creds_answer, c);
    buf_free(&base);
    buf_free(&host);
    buf_free(&line);
    buf_free(&auth);
    return 0;
}

/* Assume the next role of the plan with c->tmp, or finish. */
static void creds_next_role(struct creds *c)
{
    if (c->role >= c->plan.nroles) {
        creds_done(c);
        return;
    }
    c->step = CREDS_STEP_ROLE;
    awscreds_assume_role_body(&c->plan.roles[c->role], &c->body);
    if (creds_sts_call(c, &c->tmp) < 0)
        creds_failed(c, "the AssumeRole call could not be signed");
}

/* GET path under the IMDS endpoint with the session token. */
static void creds_imds_get(struct creds *c, const char *path)
{
    struct buf url = BUF_INIT, h = BUF_INIT;
    buf_printf(&url, "%s%s", c->plan.imds_endpoint, path);
    buf_printf(&h, "X-aws-ec2-metadata-token: %s", c->imds_token);
    struct curl_slist *hl = curl_slist_append(NULL, h.data);
    hl = curl_slist_append(hl, "Accept:");
    c->call = upstream_start(c->up, "GET", url.data, hl, NULL, 0, creds_answer, c);
    OPENSSL_cleanse(h.data, h.len);
    buf_free(&url);
    buf_free(&h);
}

/* Start a fetch from the base source. */
static void creds_fetch(struct creds *c)
{
    if (c->step != CREDS_STEP_IDLE)
        return;
    awscreds_cleanup(&c->tmp);
    c->role = 0;
    struct buf f = BUF_INIT;
    switch (c->plan.source) {
    case AWSCREDS_STATIC:
    case AWSCREDS_ENV:
    case AWSCREDS_PROFILE:
        awscreds_copy(&c->tmp, &c->plan.base);
        creds_next_role(c);
        break;
    case AWSCREDS_WEB_IDENTITY:
        if (creds_read_file(c->plan.token_file, &f) < 0) {
            char why[300];
            snprintf(why, sizeof why, "web identity token file %.200s: %s", c->plan.token_file,
                     strerror(errno));
            creds_failed(c, why);
            break;
        }
        c->step = CREDS_STEP_WEB;
        awscreds_web_identity_body(c->plan.web_role_arn, c->plan.web_session_name,
                                   f.data ? f.data : "", f.len, &c->body);
        OPENSSL_cleanse(f.data ? f.data : (char *)&f, f.data ? f.len : 0);
        if (creds_sts_call(c, NULL) < 0)
            creds_failed(c, "the STS endpoint is not an http(s) URL");
        break;
    case AWSCREDS_CONTAINER: {
        struct curl_slist *hl = curl_slist_append(NULL, "Accept:");
        const char *tok = c->plan.container_token;
        if (*c->plan.container_token_file) {
            if (creds_read_file(c->plan.container_token_file, &f) < 0) {
                char why[300];
                snprintf(why, sizeof why, "container authorization token file %.200s: %s",
                         c->plan.container_token_file, strerror(errno));
                curl_slist_free_all(hl);
                creds_failed(c, why);
                break;
            }
            while (f.len && (f.data[f.len - 1] == '\n' || f.data[f.len - 1] == '\r'))
                f.data[--f.len] = '\0';
            tok = buf_cstr(&f);
        }
        if (*tok) {
            struct buf h = BUF_INIT;
            buf_printf(&h, "Authorization: %s", tok);
            hl = curl_slist_append(hl, h.data);
            OPENSSL_cleanse(h.data, h.len);
            buf_free(&h);
        }
        c->step = CREDS_STEP_CONTAINER;
        c->call = upstream_start(c->up, "GET", c->plan.container_url, hl, NULL, 0, creds_answer, c);
        break;
    }
    case AWSCREDS_IMDS: {
        struct buf url = BUF_INIT;
        buf_printf(&url, "%s/latest/api/token", c->plan.imds_endpoint);
        struct curl_slist *hl =
            curl_slist_append(NULL, "X-aws-ec2-metadata-token-ttl-seconds: " CREDS_IMDS_TTL);
        hl = curl_slist_append(hl, "Accept:");
        hl = curl_slist_append(hl, "Content-Type:");
        c->step = CREDS_STEP_IMDS_TOKEN;
        c->call = upstream_start(c->up, "PUT", url.data, hl, "", 0, creds_answer, c);
        buf_free(&url);
        break;
    }
    }
    if (f.data)
        OPENSSL_cleanse(f.data, f.len);
    buf_free(&f);
}

/* The instance role's name joins the source's description. */
static void creds_name_role(struct creds *c)
{
    struct buf d = BUF_INIT;
    const char *rest = c->plan.description + strlen("instance role");
    if (strncmp(c->plan.description, "instance role", 13) == 0)
        buf_printf(&d, "instance role %s%s", c->imds_role, rest);
    else
        buf_adds(&d, c->plan.description);
    free(c->source);
    c->source = buf_detach(&d, NULL);
}

static void creds_answer(struct upstream_response *res, void *arg)
{
    struct creds *c = arg;
    c->call = NULL;
    char why[600];
    const char *what = c->step == CREDS_STEP_WEB         ? "AssumeRoleWithWebIdentity"
                       : c->step == CREDS_STEP_ROLE      ? "AssumeRole"
                       : c->step == CREDS_STEP_CONTAINER ? "the container endpoint"
                                                         : "the instance metadata service";
    if (res->error != UPSTREAM_OK) {
        snprintf(why, sizeof why, "%s: %s", what, res->errmsg);
        creds_failed(c, why);
        return;
    }
    const char *body = res->body.data ? res->body.data : "";
    size_t n = res->body.len;
    char err[400];
    struct awscreds got;
    switch (c->step) {
    case CREDS_STEP_WEB:
    case CREDS_STEP_ROLE:
        if (awscreds_parse_sts(body, n, &got, err, sizeof err) < 0) {
            snprintf(why, sizeof why, "%s: HTTP %ld: %s", what, res->status, err);
            creds_failed(c, why);
            return;
        }
        if (res->status != 200) {
            awscreds_cleanup(&got);
            snprintf(why, sizeof why, "%s: HTTP %ld", what, res->status);
            creds_failed(c, why);
            return;
        }
        awscreds_cleanup(&c->tmp);
        c->tmp = got;
        if (c->step == CREDS_STEP_ROLE)
            c->role++;
        creds_next_role(c);
        return;
    case CREDS_STEP_CONTAINER:
    case CREDS_STEP_IMDS_CREDS:
        if (res->status != 200) {
            snprintf(why, sizeof why, "%s: HTTP %ld", what, res->status);
            creds_failed(c, why);
            return;
        }
        if (awscreds_parse_json(body, n, &got, err, sizeof err) < 0) {
            snprintf(why, sizeof why, "%s: %s", what, err);
            creds_failed(c, why);
            return;
        }
        awscreds_cleanup(&c->tmp);
        c->tmp = got;
        creds_next_role(c);
        return;
    case CREDS_STEP_IMDS_TOKEN:
        if (res->status != 200 || n == 0 || n >= sizeof c->imds_token ||
            strcspn(body, "\r\n") != n) {
            snprintf(why, sizeof why, "%s: no session token (HTTP %ld)", what, res->status);
            creds_failed(c, why);
            return;
        }
        memcpy(c->imds_token, body, n);
        c->imds_token[n] = '\0';
        c->step = CREDS_STEP_IMDS_ROLE;
        creds_imds_get(c, "/latest/meta-data/iam/security-credentials/");
        return;
    case CREDS_STEP_IMDS_ROLE:
        if (res->status != 200 ||
            awscreds_imds_role(body, n, c->imds_role, sizeof c->imds_role) < 0) {
            snprintf(why, sizeof why, "%s: no instance role (HTTP %ld)", what, res->status);
            creds_failed(c, why);
            return;
        }
        creds_name_role(c);
        {
            char path[400];
            snprintf(path, sizeof path, "/latest/meta-data/iam/security-credentials/%s",
                     c->imds_role);
            c->step = CREDS_STEP_IMDS_CREDS;
            creds_imds_get(c, path);
        }
        return;
    case CREDS_STEP_IDLE:
        return;
    }
}

struct creds *creds_new(struct event_base *base, const struct config_upstream *up,
                        char *const *envp, char *err, size_t errlen)
{
    struct creds *c = xcalloc(1, sizeof *c);
    c->base = base;
    c->name = xstrdup(up->name);
    if (creds_plan(up, envp, &c->plan, err, errlen) < 0) {
        awscreds_plan_cleanup(&c->plan);
        free(c->name);
        free(c);
        return NULL;
    }
    c->source = xstrdup(c->plan.description);
    if (awscreds_plan_static(&c->plan)) {
        awscreds_copy(&c->cur, &c->plan.base);
        c->cur.expiration = 0;
        c->generation = 1;
        return c;
    }
    c->up =
        upstream_new(base, up->timeout_ms > 0 ? up->timeout_ms : 10000, CREDS_MAX_RESPONSE, NULL);
    c->timer = evtimer_new(base, creds_timer_cb, c);
    creds_fetch(c);
    return c;
}

void creds_free(struct creds *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < CREDS_MAX_PROVIDERS; i++)
        if (creds_registry[i] == c)
            creds_registry[i] = NULL;
    if (c->call)
        upstream_cancel(c->call);
    if (c->timer)
        event_free(c->timer);
    upstream_free(c->up);
    awscreds_cleanup(&c->tmp);
    awscreds_cleanup(&c->cur);
    awscreds_plan_cleanup(&c->plan);
    OPENSSL_cleanse(c->imds_token, sizeof c->imds_token);
    if (c->body.data)
        OPENSSL_cleanse(c->body.data, c->body.len);
    buf_free(&c->body);
    free(c->source);
    free(c->name);
    free(c);
}

void creds_register(struct creds *c)
{
    size_t slot = CREDS_MAX_PROVIDERS;
    for (size_t i = 0; i < CREDS_MAX_PROVIDERS; i++) {
        if (creds_registry[i] && strcmp(creds_registry[i]->name, c->name) == 0) {
            creds_registry[i] = c;
            return;
        }
        if (creds_registry[i] == NULL && slot == CREDS_MAX_PROVIDERS)
            slot = i;
    }
    if (slot < CREDS_MAX_PROVIDERS)
        creds_registry[slot] = c;
}

struct creds *creds_for(const char *name)
{
    for (size_t i = 0; i < CREDS_MAX_PROVIDERS; i++)
        if (creds_registry[i] && strcmp(creds_registry[i]->name, name) == 0)
            return creds_registry[i];
    return NULL;
}

enum creds_state creds_get(struct creds *c, time_t now, const struct awscreds **out)
{
    *out = NULL;
    if (c->cur.access_key_id == NULL)
        return CREDS_NOT_YET;
    if (c->cur.expiration != 0 && now >= c->cur.expiration)
        return CREDS_EXPIRED;
    *out = &c->cur;
    return CREDS_OK;
}

uint64_t creds_generation(const struct creds *c)
{
    return c->generation;
}

const char *creds_source(const struct creds *c)
{
    return c->source;
}

const char *creds_state_text(enum creds_state st)
{
    switch (st) {
    case CREDS_OK:
        return "ok";
    case CREDS_NOT_YET:
        return "upstream credentials not yet available";
    case CREDS_EXPIRED:
        return "upstream credentials expired";
    }
    return "?";
}

enum creds_state creds_worst(time_t now, const char **name)
{
    enum creds_state worst = CREDS_OK;
    *name = NULL;
    for (size_t i = 0; i < CREDS_MAX_PROVIDERS; i++) {
        struct creds *c = creds_registry[i];
        if (c == NULL)
            continue;
        const struct awscreds *cur;
        enum creds_state st = creds_get(c, now, &cur);
        /* expired outranks not yet: both refuse sends */
        if (st == CREDS_EXPIRED || (st == CREDS_NOT_YET && worst == CREDS_OK)) {
            worst = st;
            *name = c->name;
        }
    }
    return worst;
}
