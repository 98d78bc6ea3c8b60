/* awscreds: the AWS default credential chain's decisions (core). */
#include "awscreds.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <expat.h>
#include <ini.h>
#include <jansson.h>

#include "form.h"

#define AWSCREDS_MAX_PROFILES 64   /* source_profile links followed at most */
#define AWSCREDS_FIELD_MAX    8192 /* one STS field's text at most */

void awscreds_cleanup(struct awscreds *c)
{
    free(c->access_key_id);
    free(c->secret_access_key);
    free(c->session_token);
    *c = (struct awscreds){0};
}

void awscreds_copy(struct awscreds *dst, const struct awscreds *src)
{
    dst->access_key_id = xstrdup(src->access_key_id ? src->access_key_id : "");
    dst->secret_access_key = xstrdup(src->secret_access_key ? src->secret_access_key : "");
    dst->session_token = xstrdup(src->session_token ? src->session_token : "");
    dst->expiration = src->expiration;
}

const char *awscreds_env(char *const *envp, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; envp && envp[i]; i++)
        if (strncmp(envp[i], name, n) == 0 && envp[i][n] == '=')
            return envp[i] + n + 1;
    return NULL;
}

/* The value of name in envp when it is set and not empty, else NULL. */
static const char *awscreds_env_set(char *const *envp, const char *name)
{
    const char *v = awscreds_env(envp, name);
    return v && *v ? v : NULL;
}

void awscreds_file_paths(char *const *envp, struct buf *credentials, struct buf *config)
{
    const char *home = awscreds_env_set(envp, "HOME");
    const char *c = awscreds_env_set(envp, "AWS_SHARED_CREDENTIALS_FILE");
    const char *f = awscreds_env_set(envp, "AWS_CONFIG_FILE");
    buf_reset(credentials);
    buf_reset(config);
    if (c)
        buf_adds(credentials, c);
    else if (home)
        buf_printf(credentials, "%s/.aws/credentials", home);
    if (f)
        buf_adds(config, f);
    else if (home)
        buf_printf(config, "%s/.aws/config", home);
    buf_cstr(credentials);
    buf_cstr(config);
}

/* ---- the shared files ---- */

struct awscreds_entry {
    char *profile, *key, *value;
};

struct awscreds_files {
    struct awscreds_entry *e[2]; /* [0]: credentials file, [1]: config file */
    size_t n[2];
    /* profiles seen (a section without keys exists too) */
    char **names[2];
    size_t nnames[2];
};

struct awscreds_ini {
    struct awscreds_files *f;
    int which;
};

/* The profile a section of file which names, or NULL when it names none. */
static char *awscreds_section_profile(int which, const char *section)
{
    while (isspace((unsigned char)*section))
        section++;
    size_t n = strlen(section);
    while (n && isspace((unsigned char)section[n - 1]))
        n--;
    if (which == 0)
        return n ? xstrndup(section, n) : NULL;
    if (n == 7 && strncmp(section, "default", 7) == 0)
        return xstrdup("default");
    if (n > 8 && strncmp(section, "profile", 7) == 0 && isspace((unsigned char)section[7])) {
        const char *p = section + 8;
        while (isspace((unsigned char)*p))
            p++;
        return xstrndup(p, n - (size_t)(p - section));
    }
    return NULL;
}

static bool awscreds_has_name(const struct awscreds_files *f, int which, const char *name)
{
    for (size_t i = 0; i < f->nnames[which]; i++)
        if (strcmp(f->names[which][i], name) == 0)
            return true;
    return false;
}

static int awscreds_ini_handler(void *user, const char *section, const char *name,
                                const char *value)
{
    struct awscreds_ini *ini = user;
    struct awscreds_files *f = ini->f;
    char *profile = awscreds_section_profile(ini->which, section);
    if (profile == NULL)
        return 1;
    int w = ini->which;
    if (!awscreds_has_name(f, w, profile)) {
        f->names[w] = xrealloc(f->names[w], (f->nnames[w] + 1) * sizeof *f->names[w]);
        f->names[w][f->nnames[w]++] = xstrdup(profile);
    }
    if (name == NULL) { /* a section start (INI_CALL_HANDLER_ON_NEW_SECTION) */
        free(profile);
        return 1;
    }
    f->e[w] = xrealloc(f->e[w], (f->n[w] + 1) * sizeof *f->e[w]);
    f->e[w][f->n[w]++] = (struct awscreds_entry){profile, xstrdup(name), xstrdup(value)};
    return 1;
}

static void awscreds_files_cleanup(struct awscreds_files *f)
{
    for (int w = 0; w < 2; w++) {
        for (size_t i = 0; i < f->n[w]; i++) {
            free(f->e[w][i].profile);
            free(f->e[w][i].key);
            free(f->e[w][i].value);
        }
        free(f->e[w]);
        for (size_t i = 0; i < f->nnames[w]; i++)
            free(f->names[w][i]);
        free(f->names[w]);
    }
}

/* The value of key in profile (the credentials file first, then the
 * config file; the last of repeated keys), or NULL; "" counts as unset. */
static const char *awscreds_get(const struct awscreds_files *f, const char *profile,
                                const char *key)
{
    for (int w = 0; w < 2; w++) {
        const char *v = NULL;
        for (size_t i = 0; i < f->n[w]; i++)
            if (strcmp(f->e[w][i].profile, profile) == 0 && strcasecmp(f->e[w][i].key, key) == 0)
                v = f->e[w][i].value;
        if (v && *v)
            return v;
    }
    return NULL;
}

static bool awscreds_profile_exists(const struct awscreds_files *f, const char *profile)
{
    return awscreds_has_name(f, 0, profile) || awscreds_has_name(f, 1, profile);
}

/* ---- the plan ---- */

void awscreds_plan_cleanup(struct awscreds_plan *plan)
{
    awscreds_cleanup(&plan->base);
    free(plan->token_file);
    free(plan->web_role_arn);
    free(plan->web_session_name);
    free(plan->container_url);
    free(plan->container_token);
    free(plan->container_token_file);
    free(plan->imds_endpoint);
    free(plan->sts_endpoint);
    free(plan->sts_region);
    for (size_t i = 0; i < plan->nroles; i++) {
        free(plan->roles[i].arn);
        free(plan->roles[i].external_id);
        free(plan->roles[i].session_name);
    }
    free(plan->roles);
    free(plan->description);
    *plan = (struct awscreds_plan){0};
}

bool awscreds_plan_static(const struct awscreds_plan *plan)
{
    return plan->nroles == 0 && (plan->source == AWSCREDS_STATIC || plan->source == AWSCREDS_ENV ||
                                 plan->source == AWSCREDS_PROFILE);
}

static void awscreds_set_keys(struct awscreds *c, const char *id, const char *secret,
                              const char *token)
{
    awscreds_cleanup(c);
    c->access_key_id = xstrdup(id);
    c->secret_access_key = xstrdup(secret);
    c->session_token = xstrdup(token ? token : "");
}

/* The host part of an http(s) URL's authority (brackets kept), into out. */
static bool awscreds_url_host(const char *url, size_t skip, char *out, size_t outlen)
{
    const char *h = url + skip;
    const char *at = NULL;
    size_t alen = strcspn(h, "/?#");
    for (size_t i = 0; i < alen; i++)
        if (h[i] == '@')
            at = h + i;
    if (at) {
        alen -= (size_t)(at + 1 - h);
        h = at + 1;
    }
    size_t hl;
    if (alen && h[0] == '[') {
        const char *close = memchr(h, ']', alen);
        if (close == NULL)
            return false;
        hl = (size_t)(close - h) + 1;
    } else {
        const char *colon = memchr(h, ':', alen);
        hl = colon ? (size_t)(colon - h) : alen;
    }
    if (hl == 0 || hl >= outlen)
        return false;
    memcpy(out, h, hl);
    out[hl] = '\0';
    return true;
}

bool awscreds_container_url_ok(const char *url)
{
    char host[256];
    if (strncasecmp(url, "https://", 8) == 0)
        return awscreds_url_host(url, 8, host, sizeof host);
    if (strncasecmp(url, "http://", 7) != 0 || !awscreds_url_host(url, 7, host, sizeof host))
        return false;
    if (strcmp(host, "169.254.170.2") == 0 || strcmp(host, "169.254.170.23") == 0 ||
        strcasecmp(host, "[fd00:ec2::23]") == 0 || strcmp(host, "[::1]") == 0 ||
        strcasecmp(host, "localhost") == 0)
        return true;
    /* 127.0.0.0/8, written as four decimal numbers */
    unsigned a, b, c, d;
    char tail;
    if (sscanf(host, "%3u.%3u.%3u.%3u%c", &a, &b, &c, &d, &tail) == 4 && a == 127 && b < 256 &&
        c < 256 && d < 256)
        return true;
    return false;
}

static void awscreds_add_role(struct awscreds_plan *plan, const char *arn, const char *external_id,
                              const char *session_name)
{
    plan->roles = xrealloc(plan->roles, (plan->nroles + 1) * sizeof *plan->roles);
    plan->roles[plan->nroles++] = (struct awscreds_role){
        xstrdup(arn), xstrdup(external_id ? external_id : ""), xstrdup(session_name)};
}

/* The container source from the environment; -1 with a reason when its
 * variables are wrong, 1 when none is set. */
static int awscreds_container(struct awscreds_plan *plan, char *const *envp, char *err,
                              size_t errlen)
{
    const char *rel = awscreds_env_set(envp, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = awscreds_env_set(envp, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
    struct buf url = BUF_INIT;
    if (rel) {
        buf_printf(&url, "http://169.254.170.2%s%s", rel[0] == '/' ? "" : "/", rel);
    } else if (full) {
        if (!awscreds_container_url_ok(full)) {
            snprintf(err, errlen,
                     "AWS_CONTAINER_CREDENTIALS_FULL_URI: http is allowed only to a loopback "
                     "address, 169.254.170.2, 169.254.170.23 or [fd00:ec2::23]");
            return -1;
        }
        buf_adds(&url, full);
    } else {
        return 1;
    }
    plan->source = AWSCREDS_CONTAINER;
    plan->container_url = buf_detach(&url, NULL);
    const char *tf = awscreds_env_set(envp, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    const char *tok = awscreds_env_set(envp, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
    plan->container_token_file = xstrdup(tf ? tf : "");
    plan->container_token = xstrdup(tf ? "" : tok ? tok : "");
    return 0;
}

static void awscreds_imds(struct awscreds_plan *plan, char *const *envp)
{
    const char *ep = awscreds_env_set(envp, "AWS_EC2_METADATA_SERVICE_ENDPOINT");
    if (ep == NULL)
        ep = "http://169.254.169.254";
    size_t n = strlen(ep);
    while (n && ep[n - 1] == '/')
        n--;
    plan->source = AWSCREDS_IMDS;
    plan->imds_endpoint = xstrndup(ep, n);
}

static bool awscreds_imds_disabled(char *const *envp)
{
    const char *v = awscreds_env(envp, "AWS_EC2_METADATA_DISABLED");
    return v && strcasecmp(v, "true") == 0;
}

/* Resolve profile name of f into plan (its base source and the roles on it).
 * Returns 0 or -1 with a reason. */
static int awscreds_profile(struct awscreds_plan *plan, const struct awscreds_files *f,
                            const char *name, char *const *envp, const char *default_session,
                            char *err, size_t errlen)
{
    const char *visited[AWSCREDS_MAX_PROFILES];
    size_t nvisited = 0;
    /* the roles from the named profile inward; assumed in reverse */
    const char *rarn[AWSCREDS_MAX_PROFILES], *rext[AWSCREDS_MAX_PROFILES],
        *rsess[AWSCREDS_MAX_PROFILES];
    size_t nr = 0;
    const char *cur = name;
    int rc = -1;
    for (;;) {
        if (!awscreds_profile_exists(f, cur)) {
            snprintf(err, errlen, "profile '%.64s' is not in the shared credentials or config file",
                     cur);
            return -1;
        }
        const char *id = awscreds_get(f, cur, "aws_access_key_id");
        const char *secret = awscreds_get(f, cur, "aws_secret_access_key");
        const char *token = awscreds_get(f, cur, "aws_session_token");
        const char *role = awscreds_get(f, cur, "role_arn");
        /* A source profile's static keys come before its own role. */
        if ((role == NULL || nvisited > 0) && id && secret) {
            plan->source = AWSCREDS_PROFILE;
            awscreds_set_keys(&plan->base, id, secret, token);
            break;
        }
        if (role == NULL) {
            snprintf(err, errlen, "profile '%.64s' has no credentials%s", cur,
                     id || secret ? " (aws_access_key_id and aws_secret_access_key go together)"
                                  : "");
            return -1;
        }
        for (size_t i = 0; i < nvisited; i++)
            if (strcmp(visited[i], cur) == 0) {
                snprintf(err, errlen, "profile '%.64s': source_profile loop", cur);
                return -1;
            }
        if (nvisited == AWSCREDS_MAX_PROFILES) {
            snprintf(err, errlen, "profile '%.64s': too many source_profile links", name);
            return -1;
        }
        visited[nvisited++] = cur;
        const char *sess = awscreds_get(f, cur, "role_session_name");
        const char *wtf = awscreds_get(f, cur, "web_identity_token_file");
        if (wtf) {
            plan->source = AWSCREDS_WEB_IDENTITY;
            plan->token_file = xstrdup(wtf);
            plan->web_role_arn = xstrdup(role);
            plan->web_session_name = xstrdup(sess ? sess : default_session);
            break;
        }
        rarn[nr] = role;
        rext[nr] = awscreds_get(f, cur, "external_id");
        rsess[nr] = sess;
        nr++;
        const char *src = awscreds_get(f, cur, "source_profile");
        const char *cs = awscreds_get(f, cur, "credential_source");
        if (src && cs) {
            snprintf(err, errlen, "profile '%.64s' has both source_profile and credential_source",
                     cur);
            return -1;
        }
        if (src) {
            cur = src;
            continue;
        }
        if (cs == NULL) {
            snprintf(err, errlen,
                     "profile '%.64s' has role_arn but no source_profile, credential_source or "
                     "web_identity_token_file",
                     cur);
            return -1;
        }
        if (strcmp(cs, "Environment") == 0) {
            const char *eid = awscreds_env_set(envp, "AWS_ACCESS_KEY_ID");
            const char *esec = awscreds_env_set(envp, "AWS_SECRET_ACCESS_KEY");
            if (eid == NULL || esec == NULL) {
                snprintf(err, errlen,
                         "profile '%.64s': credential_source Environment but AWS_ACCESS_KEY_ID "
                         "and AWS_SECRET_ACCESS_KEY are not set",
                         cur);
                return -1;
            }
            plan->source = AWSCREDS_ENV;
            awscreds_set_keys(&plan->base, eid, esec, awscreds_env(envp, "AWS_SESSION_TOKEN"));
        } else if (strcmp(cs, "Ec2InstanceMetadata") == 0) {
            awscreds_imds(plan, envp);
        } else if (strcmp(cs, "EcsContainer") == 0) {
            rc = awscreds_container(plan, envp, err, errlen);
            if (rc < 0)
                return -1;
            if (rc > 0) {
                snprintf(err, errlen,
                         "profile '%.64s': credential_source EcsContainer but no "
                         "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or _FULL_URI",
                         cur);
                return -1;
            }
        } else {
            snprintf(err, errlen, "profile '%.64s': unknown credential_source '%.32s'", cur, cs);
            return -1;
        }
        break;
    }
    while (nr > 0) {
        nr--;
        awscreds_add_role(plan, rarn[nr], rext[nr], rsess[nr] ? rsess[nr] : default_session);
    }
    return 0;
}

/* Parse one shared file's text into f; -1 with a reason. */
static int awscreds_files_parse(struct awscreds_files *f, int which, const char *text, char *err,
                                size_t errlen)
{
    if (text == NULL)
        return 0;
    struct awscreds_ini ini = {f, which};
    int rc = ini_parse_string(text, awscreds_ini_handler, &ini);
    if (rc != 0) {
        snprintf(err, errlen, "the shared %s file: syntax error on line %d",
                 which == 0 ? "credentials" : "config", rc);
        return -1;
    }
    return 0;
}

/* The base source's words for the description. */
static void awscreds_describe(struct awscreds_plan *plan, const char *profile)
{
    struct buf d = BUF_INIT;
    switch (plan->source) {
    case AWSCREDS_STATIC:
        buf_adds(&d, "static");
        break;
    case AWSCREDS_ENV:
        buf_adds(&d, "environment");
        break;
    case AWSCREDS_PROFILE:
        break;
    case AWSCREDS_WEB_IDENTITY:
        buf_printf(&d, "web identity %s", plan->web_role_arn);
        break;
    case AWSCREDS_CONTAINER:
        buf_adds(&d, "container");
        break;
    case AWSCREDS_IMDS:
        buf_adds(&d, "instance role");
        break;
    }
    if (profile) {
        struct buf p = BUF_INIT;
        buf_printf(&p, "profile %s", profile);
        if (plan->source != AWSCREDS_PROFILE)
            buf_printf(&p, " (%s)", buf_cstr(&d));
        buf_free(&d);
        d = p;
    }
    for (size_t i = 0; i < plan->nroles; i++)
        buf_printf(&d, " + assume role %s", plan->roles[i].arn);
    plan->description = buf_detach(&d, NULL);
}

int awscreds_plan_make(struct awscreds_plan *plan, const struct awscreds_params *p,
                       char *const *envp, const char *credentials_text, const char *config_text,
                       char *err, size_t errlen)
{
    *plan = (struct awscreds_plan){0};
    char defsess[128];
    snprintf(defsess, sizeof defsess, "sesgate-%.56s",
             p->hostname && *p->hostname ? p->hostname : "host");
    for (char *c = defsess; *c; c++) /* RoleSessionName: [\w+=,.@-]* */
        if (!isalnum((unsigned char)*c) && !strchr("+=,.@-_", *c))
            *c = '-';
    const char *session = p->session_name && *p->session_name ? p->session_name : defsess;

    const char *sts = awscreds_env_set(envp, "AWS_ENDPOINT_URL_STS");
    if (sts == NULL)
        sts = awscreds_env_set(envp, "AWS_ENDPOINT_URL");
    struct buf e = BUF_INIT;
    if (sts) {
        size_t n = strlen(sts);
        while (n && sts[n - 1] == '/')
            n--;
        buf_add(&e, sts, n);
    } else {
        buf_printf(&e, "https://sts.%s.amazonaws.com",
                   p->region && *p->region ? p->region : "us-east-1");
    }
    plan->sts_endpoint = buf_detach(&e, NULL);
    plan->sts_region = xstrdup(p->region && *p->region ? p->region : "us-east-1");

    const char *profile = NULL;
    int rc = 0;
    struct awscreds_files f = {0};
    if (p->access_key_id && *p->access_key_id) {
        plan->source = p->from_env ? AWSCREDS_ENV : AWSCREDS_STATIC;
        awscreds_set_keys(&plan->base, p->access_key_id,
                          p->secret_access_key ? p->secret_access_key : "", p->session_token);
        goto roles;
    }
    const char *eid = awscreds_env_set(envp, "AWS_ACCESS_KEY_ID");
    if (eid) {
        const char *esec = awscreds_env_set(envp, "AWS_SECRET_ACCESS_KEY");
        if (esec == NULL) {
            snprintf(err, errlen, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
            return -1;
        }
        plan->source = AWSCREDS_ENV;
        awscreds_set_keys(&plan->base, eid, esec, awscreds_env(envp, "AWS_SESSION_TOKEN"));
        goto roles;
    }
    if (awscreds_files_parse(&f, 0, credentials_text, err, errlen) < 0 ||
        awscreds_files_parse(&f, 1, config_text, err, errlen) < 0) {
        awscreds_files_cleanup(&f);
        return -1;
    }
    bool named = true;
    profile = p->profile && *p->profile ? p->profile : awscreds_env_set(envp, "AWS_PROFILE");
    if (profile == NULL) {
        profile = "default";
        named = false;
    }
    if (named || awscreds_profile_exists(&f, profile)) {
        rc = awscreds_profile(plan, &f, profile, envp, defsess, err, errlen);
        awscreds_files_cleanup(&f);
        if (rc < 0)
            return -1;
        goto roles;
    }
    awscreds_files_cleanup(&f);
    profile = NULL;
    const char *wtf = awscreds_env_set(envp, "AWS_WEB_IDENTITY_TOKEN_FILE");
    if (wtf) {
        const char *arn = awscreds_env_set(envp, "AWS_ROLE_ARN");
        if (arn == NULL) {
            snprintf(err, errlen, "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not");
            return -1;
        }
        const char *ws = awscreds_env_set(envp, "AWS_ROLE_SESSION_NAME");
        plan->source = AWSCREDS_WEB_IDENTITY;
        plan->token_file = xstrdup(wtf);
        plan->web_role_arn = xstrdup(arn);
        plan->web_session_name = xstrdup(ws ? ws : defsess);
        goto roles;
    }
    rc = awscreds_container(plan, envp, err, errlen);
    if (rc < 0)
        return -1;
    if (rc == 0)
        goto roles;
    if (awscreds_imds_disabled(envp)) {
        snprintf(err, errlen,
                 "no upstream credentials: no static keys, environment, profile, web identity or "
                 "container credentials, and AWS_EC2_METADATA_DISABLED is true");
        return -1;
    }
    awscreds_imds(plan, envp);
roles:
    if (p->role_arn && *p->role_arn)
        awscreds_add_role(plan, p->role_arn, p->external_id, session);
    awscreds_describe(plan, profile);
    return 0;
}

/* ---- STS calls and answers ---- */

void awscreds_assume_role_body(const struct awscreds_role *r, struct buf *out)
{
    buf_reset(out);
    buf_adds(out, "Action=AssumeRole&Version=2011-06-15&DurationSeconds=3600&RoleArn=");
    form_encode(r->arn, strlen(r->arn), out);
    buf_adds(out, "&RoleSessionName=");
    form_encode(r->session_name, strlen(r->session_name), out);
    if (r->external_id && *r->external_id) {
        buf_adds(out, "&ExternalId=");
        form_encode(r->external_id, strlen(r->external_id), out);
    }
    buf_cstr(out);
}

void awscreds_web_identity_body(const char *role_arn, const char *session_name, const char *token,
                                size_t token_len, struct buf *out)
{
    buf_reset(out);
    buf_adds(out, "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&DurationSeconds=3600"
                  "&RoleArn=");
    form_encode(role_arn, strlen(role_arn), out);
    buf_adds(out, "&RoleSessionName=");
    form_encode(session_name, strlen(session_name), out);
    buf_adds(out, "&WebIdentityToken=");
    /* a token file ends with a newline or not: it is not part of the token */
    while (token_len && (token[token_len - 1] == '\n' || token[token_len - 1] == '\r' ||
                         token[token_len - 1] == ' '))
        token_len--;
    form_encode(token, token_len, out);
    buf_cstr(out);
}

enum awscreds_field { AF_ID, AF_SECRET, AF_TOKEN, AF_EXPIRATION, AF_CODE, AF_MESSAGE, AF_N };

struct awscreds_xml {
    XML_Parser p;
    int depth;
    int in_creds; /* depth of the Credentials element, 0 when outside */
    int in_error; /* depth of the Error element */
    int field;    /* the field collected, -1 none */
    int field_depth;
    struct buf v[AF_N];
    bool seen[AF_N];
    bool too_long;
    bool doctype;
};

/* The local part of an element name (expat without namespaces keeps a prefix). */
static const char *awscreds_local(const char *name)
{
    const char *c = strrchr(name, ':');
    return c ? c + 1 : name;
}

static void awscreds_xml_start(void *user, const char *name, const char **attrs)
{
    struct awscreds_xml *x = user;
    x->depth++;
    const char *l = awscreds_local(name);
    if (x->field >= 0)
        return;
    if (x->in_creds == 0 && x->in_error == 0) {
        if (strcmp(l, "Credentials") == 0)
            x->in_creds = x->depth;
        else if (strcmp(l, "Error") == 0)
            x->in_error = x->depth;
        return;
    }
    int f = -1;
    if (x->in_creds && x->depth == x->in_creds + 1) {
        if (strcmp(l, "AccessKeyId") == 0)
            f = AF_ID;
        else if (strcmp(l, "SecretAccessKey") == 0)
            f = AF_SECRET;
        else if (strcmp(l, "SessionToken") == 0)
            f = AF_TOKEN;
        else if (strcmp(l, "Expiration") == 0)
            f = AF_EXPIRATION;
    } else if (x->in_error && x->depth == x->in_error + 1) {
        if (strcmp(l, "Code") == 0)
            f = AF_CODE;
        else if (strcmp(l, "Message") == 0)
            f = AF_MESSAGE;
    }
    if (f >= 0) {
        x->field = f;
        x->field_depth = x->depth;
        buf_reset(&x->v[f]);
        x->seen[f] = true;
    }
}

static void awscreds_xml_end(void *user, const char *name)
{
    struct awscreds_xml *x = user;
    if (x->field >= 0 && x->depth == x->field_depth)
        x->field = -1;
    if (x->in_creds == x->depth)
        x->in_creds = 0;
    if (x->in_error == x->depth)
        x->in_error = 0;
    x->depth--;
}

static void awscreds_xml_text(void *user, const char *s, int len)
{
    struct awscreds_xml *x = user;
    if (x->field < 0 || len <= 0)
        return;
    if (x->v[x->field].len + (size_t)len > AWSCREDS_FIELD_MAX) {
        x->too_long = true;
        XML_StopParser(x->p, XML_FALSE);
        return;
    }
    buf_add(&x->v[x->field], s, (size_t)len);
}

static void awscreds_xml_doctype(void *user, const char *name, const char *sysid, const char *pubid,
                                 int has_internal_subset)
{
    struct awscreds_xml *x = user;
    x->doctype = true;
    XML_StopParser(x->p, XML_FALSE);
}

/* s without leading and trailing white space. */
static void awscreds_trim(struct buf *b, const char **s, size_t *n)
{
    const char *p = b->data ? b->data : "";
    size_t len = b->len;
    while (len && isspace((unsigned char)*p)) {
        p++;
        len--;
    }
    while (len && isspace((unsigned char)p[len - 1]))
        len--;
    *s = p;
    *n = len;
}

int awscreds_parse_sts(const char *body, size_t n, struct awscreds *out, char *err, size_t errlen)
{
    *out = (struct awscreds){0};
    struct awscreds_xml x = {.field = -1};
    x.p = XML_ParserCreate("UTF-8");
    if (x.p == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    XML_SetUserData(x.p, &x);
    XML_SetElementHandler(x.p, awscreds_xml_start, awscreds_xml_end);
    XML_SetCharacterDataHandler(x.p, awscreds_xml_text);
    XML_SetStartDoctypeDeclHandler(x.p, awscreds_xml_doctype);
    int rc = -1;
    if (n > (size_t)0x7fffffff) {
        snprintf(err, errlen, "the STS answer is too large");
        goto done;
    }
    enum XML_Status st = XML_Parse(x.p, body ? body : "", (int)n, XML_TRUE);
    if (x.doctype) {
        snprintf(err, errlen, "the STS answer has a DOCTYPE");
        goto done;
    }
    if (x.too_long) {
        snprintf(err, errlen, "the STS answer has a field too long");
        goto done;
    }
    if (st != XML_STATUS_OK) {
        snprintf(err, errlen, "the STS answer is not XML: %s at line %lu",
                 XML_ErrorString(XML_GetErrorCode(x.p)),
                 (unsigned long)XML_GetCurrentLineNumber(x.p));
        goto done;
    }
    const char *v[AF_N];
    size_t vl[AF_N];
    for (int i = 0; i < AF_N; i++)
        awscreds_trim(&x.v[i], &v[i], &vl[i]);
    if (x.seen[AF_CODE]) {
        snprintf(err, errlen, "STS error %.*s: %.*s", (int)(vl[AF_CODE] > 64 ? 64 : vl[AF_CODE]),
                 v[AF_CODE], (int)(vl[AF_MESSAGE] > 200 ? 200 : vl[AF_MESSAGE]), v[AF_MESSAGE]);
        goto done;
    }
    if (vl[AF_ID] == 0 || vl[AF_SECRET] == 0 || vl[AF_TOKEN] == 0 || vl[AF_EXPIRATION] == 0) {
        snprintf(err, errlen,
                 "the STS answer lacks AccessKeyId, SecretAccessKey, SessionToken or Expiration");
        goto done;
    }
    time_t exp;
    if (awscreds_parse_time(v[AF_EXPIRATION], vl[AF_EXPIRATION], &exp) < 0) {
        snprintf(err, errlen, "the STS answer's Expiration is not an ISO 8601 time");
        goto done;
    }
    out->access_key_id = xstrndup(v[AF_ID], vl[AF_ID]);
    out->secret_access_key = xstrndup(v[AF_SECRET], vl[AF_SECRET]);
    out->session_token = xstrndup(v[AF_TOKEN], vl[AF_TOKEN]);
    out->expiration = exp;
    rc = 0;
done:
    for (int i = 0; i < AF_N; i++)
        buf_free(&x.v[i]);
    XML_ParserFree(x.p);
    return rc;
}

/* The string member key of o, or NULL. */
static const char *awscreds_json_str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : NULL;
}

int awscreds_parse_json(const char *body, size_t n, struct awscreds *out, char *err, size_t errlen)
{
    *out = (struct awscreds){0};
    json_error_t je;
    json_t *o = json_loadb(body ? body : "", n, JSON_REJECT_DUPLICATES, &je);
    if (o == NULL || !json_is_object(o)) {
        snprintf(err, errlen, "the credentials answer is not a JSON object");
        json_decref(o);
        return -1;
    }
    int rc = -1;
    const char *code = awscreds_json_str(o, "Code");
    if (code && strcmp(code, "Success") != 0) {
        const char *m = awscreds_json_str(o, "Message");
        snprintf(err, errlen, "the credentials answer says %.64s: %.200s", code, m ? m : "");
        goto done;
    }
    const char *id = awscreds_json_str(o, "AccessKeyId");
    const char *secret = awscreds_json_str(o, "SecretAccessKey");
    const char *token = awscreds_json_str(o, "Token");
    const char *exp = awscreds_json_str(o, "Expiration");
    if (id == NULL || secret == NULL) {
        const char *m = awscreds_json_str(o, "message");
        if (m == NULL)
            m = awscreds_json_str(o, "Message");
        snprintf(err, errlen, "the credentials answer lacks AccessKeyId or SecretAccessKey%s%.200s",
                 m ? ": " : "", m ? m : "");
        goto done;
    }
    time_t t = 0;
    if (exp && awscreds_parse_time(exp, strlen(exp), &t) < 0) {
        snprintf(err, errlen, "the credentials answer's Expiration is not an ISO 8601 time");
        goto done;
    }
    out->access_key_id = xstrdup(id);
    out->secret_access_key = xstrdup(secret);
    out->session_token = xstrdup(token ? token : "");
    out->expiration = t;
    rc = 0;
done:
    json_decref(o);
    return rc;
}

int awscreds_imds_role(const char *body, size_t n, char *out, size_t outlen)
{
    size_t i = 0;
    while (i < n && isspace((unsigned char)body[i]))
        i++;
    size_t start = i;
    while (i < n && body[i] != '\n' && body[i] != '\r')
        i++;
    size_t len = i - start;
    while (len && isspace((unsigned char)body[start + len - 1]))
        len--;
    if (len == 0 || len >= outlen)
        return -1;
    for (size_t k = 0; k < len; k++) {
        unsigned char c = (unsigned char)body[start + k];
        if (!isalnum(c) && (c == '\0' || !strchr("+=,.@-_", c)))
            return -1;
    }
    memcpy(out, body + start, len);
    out[len] = '\0';
    return 0;
}

/* n digits at s as a number; -1 when one is not a digit. */
static int awscreds_digits(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t awscreds_days(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int awscreds_parse_time(const char *s, size_t n, time_t *out)
{
    /* YYYY-MM-DDThh:mm:ss */
    if (n < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
        s[16] != ':')
        return -1;
    int y = awscreds_digits(s, 4), mo = awscreds_digits(s + 5, 2), d = awscreds_digits(s + 8, 2);
    int h = awscreds_digits(s + 11, 2), mi = awscreds_digits(s + 14, 2),
        se = awscreds_digits(s + 17, 2);
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 ||
        se > 60)
        return -1;
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap))
        return -1;
    size_t i = 19;
    if (i < n && s[i] == '.') {
        i++;
        size_t f = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == f)
            return -1;
    }
    int64_t off = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh = awscreds_digits(s + i + 1, 2), om = awscreds_digits(s + i + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return -1;
        off = (s[i] == '+' ? 1 : -1) * (int64_t)(oh * 3600 + om * 60);
        i += 6;
    } else {
        return -1;
    }
    if (i != n)
        return -1;
    int64_t t = awscreds_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off;
    if (t < 0 || (sizeof(time_t) < 8 && t > 0x7fffffff))
        return -1;
    *out = (time_t)t;
    return 0;
}

int64_t awscreds_next_fetch(int64_t now, int64_t expiration, unsigned failures)
{
    if (failures > 0) {
        int64_t delay = failures > 7 ? 60 : (int64_t)1 << (failures - 1);
        if (delay > 60)
            delay = 60;
        int64_t at = now + delay;
        if (expiration > now && at > expiration)
            at = expiration;
        return at;
    }
    if (expiration <= 0)
        return -1;
    int64_t at = expiration - 300;
    int64_t half = now + (expiration - now) / 2;
    if (at <= now || half < at) /* short-lived credentials: half their lifetime */
        at = half;
    if (at > expiration - 2)
        at = expiration - 2;
    return at < now + 1 ? now + 1 : at;
}
