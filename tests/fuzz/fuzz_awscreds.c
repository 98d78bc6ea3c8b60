/* fuzz_awscreds: every parser of the credential chain.
 *
 * The first byte picks a mode (modulo 6):
 *   0  the shared files: the rest split at the first NUL into the
 *      credentials and the config file's text, the chain chosen with
 *      AWS_PROFILE=p (and again with no profile named)
 *   1  an STS answer (AssumeRole, AssumeRoleWithWebIdentity, error)
 *   2  a container or IMDS credentials JSON
 *   3  an ISO 8601 time
 *   4  IMDS's role listing
 *   5  a container URL, then as the environment's FULL_URI
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "awscreds.h"
#include "buf.h"

/* Abort when cond is false, so that libFuzzer reports the input. */
static void fuzz_awscreds_assert(int cond)
{
    if (!cond)
        abort();
}

/* What every accepted plan has. */
static void fuzz_awscreds_plan_check(const struct awscreds_plan *p)
{
    fuzz_awscreds_assert(p->description != NULL && p->sts_endpoint != NULL);
    for (size_t i = 0; i < p->nroles; i++)
        fuzz_awscreds_assert(p->roles[i].arn && *p->roles[i].arn && p->roles[i].session_name);
    switch (p->source) {
    case AWSCREDS_STATIC:
    case AWSCREDS_ENV:
    case AWSCREDS_PROFILE:
        fuzz_awscreds_assert(p->base.access_key_id && *p->base.access_key_id &&
                             p->base.secret_access_key && *p->base.secret_access_key);
        break;
    case AWSCREDS_WEB_IDENTITY:
        fuzz_awscreds_assert(p->token_file && *p->token_file && p->web_role_arn &&
                             *p->web_role_arn);
        break;
    case AWSCREDS_CONTAINER:
        fuzz_awscreds_assert(p->container_url != NULL);
        break;
    case AWSCREDS_IMDS:
        fuzz_awscreds_assert(p->imds_endpoint != NULL);
        break;
    }
    /* no secret in the description */
    if (p->base.secret_access_key && *p->base.secret_access_key &&
        strlen(p->base.secret_access_key) >= 8)
        fuzz_awscreds_assert(strstr(p->description, p->base.secret_access_key) == NULL);
}

static void fuzz_awscreds_files(const char *s, size_t n)
{
    const char *nul = memchr(s, '\0', n);
    char *cred = nul ? strdup(s) : strndup(s, n);
    char *conf = nul ? strndup(nul + 1, n - (size_t)(nul + 1 - s)) : NULL;
    struct awscreds_params p = {"", "", "", false, "", "", "", "", "eu-west-1", "h"};
    const char *envs[2][3] = {{"AWS_PROFILE=p", "AWS_EC2_METADATA_DISABLED=true", NULL},
                              {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/x", NULL, NULL}};
    for (int k = 0; k < 2; k++) {
        struct awscreds_plan plan;
        char err[512] = "";
        int rc = awscreds_plan_make(&plan, &p, (char *const *)envs[k], cred, conf, err, sizeof err);
        fuzz_awscreds_assert(rc == 0 || (rc == -1 && err[0] != '\0'));
        if (rc == 0)
            fuzz_awscreds_plan_check(&plan);
        awscreds_plan_cleanup(&plan);
    }
    free(cred);
    free(conf);
}

static void fuzz_awscreds_creds(int rc, struct awscreds *c, const char *err)
{
    fuzz_awscreds_assert(rc == 0 || (rc == -1 && err[0] != '\0'));
    if (rc == 0)
        fuzz_awscreds_assert(c->access_key_id && *c->access_key_id && c->secret_access_key &&
                             *c->secret_access_key && c->session_token);
    awscreds_cleanup(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    char err[512] = "";
    struct awscreds c;
    switch (data[0] % 6) {
    case 0:
        fuzz_awscreds_files(s, n);
        break;
    case 1:
        fuzz_awscreds_creds(awscreds_parse_sts(s, n, &c, err, sizeof err), &c, err);
        break;
    case 2:
        fuzz_awscreds_creds(awscreds_parse_json(s, n, &c, err, sizeof err), &c, err);
        break;
    case 3: {
        time_t t = 0;
        if (awscreds_parse_time(s, n, &t) == 0)
            fuzz_awscreds_assert(t >= 0);
        break;
    }
    case 4: {
        char role[64];
        if (awscreds_imds_role(s, n, role, sizeof role) == 0)
            fuzz_awscreds_assert(role[0] != '\0' && strchr(role, '/') == NULL &&
                                 strchr(role, '\n') == NULL);
        break;
    }
    case 5: {
        char *url = strndup(s, n);
        bool ok = awscreds_container_url_ok(url);
        if (ok)
            fuzz_awscreds_assert(strncasecmp(url, "https://", 8) == 0 ||
                                 strncasecmp(url, "http://", 7) == 0);
        struct buf e = BUF_INIT;
        buf_printf(&e, "AWS_CONTAINER_CREDENTIALS_FULL_URI=%s", url);
        const char *env[] = {buf_cstr(&e), NULL};
        struct awscreds_params p = {"", "", "", false, "", "", "", "", "eu-west-1", "h"};
        struct awscreds_plan plan;
        int rc = awscreds_plan_make(&plan, &p, (char *const *)env, NULL, NULL, err, sizeof err);
        /* an empty value is no container: IMDS then */
        fuzz_awscreds_assert(rc == (ok || *url == '\0' ? 0 : -1));
        awscreds_plan_cleanup(&plan);
        buf_free(&e);
        free(url);
        break;
    }
    }
    return 0;
}
