/* Unit tests for awscreds: the chain's choice, profiles, STS XML, the
 * container and IMDS JSON, ISO 8601 times and the refresh schedule. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "awscreds.h"
#include "check.h"

#define ARN_A "arn:aws:iam::111111111111:role/a"
#define ARN_B "arn:aws:iam::222222222222:role/b"
#define ARN_U "arn:aws:iam::333333333333:role/upstream"

static const struct awscreds_params no_params = {
    .access_key_id = "",
    .secret_access_key = "",
    .session_token = "",
    .profile = "",
    .role_arn = "",
    .external_id = "",
    .session_name = "",
    .region = "eu-west-1",
    .hostname = "gw1",
};

/* One chain case: params changes, environment, files, and what is chosen
 * (want_rc -1: refused with err containing want_desc). */
struct plan_case {
    const char *name;
    const char *profile, *role_arn, *static_id;
    bool from_env;
    const char *env[8];
    const char *credentials, *config;
    int want_rc;
    enum awscreds_source want_source;
    const char *want_desc;
    size_t want_roles;
    const char *want_key; /* base access key id, or the container URL, or IMDS endpoint */
};

static const struct plan_case plan_cases[] = {
    {"static keys",
     "",
     "",
     "AKSTATIC",
     false,
     {NULL},
     NULL,
     NULL,
     0,
     AWSCREDS_STATIC,
     "static",
     0,
     "AKSTATIC"},
    {"static keys from the environment ([upstream])",
     "",
     "",
     "AKENV",
     true,
     {NULL},
     NULL,
     NULL,
     0,
     AWSCREDS_ENV,
     "environment",
     0,
     "AKENV"},
    {"static keys win over the environment",
     "",
     "",
     "AKSTATIC",
     false,
     {"AWS_ACCESS_KEY_ID=AKENV", "AWS_SECRET_ACCESS_KEY=s", NULL},
     NULL,
     NULL,
     0,
     AWSCREDS_STATIC,
     "static",
     0,
     "AKSTATIC"},
    {"environment",
     "",
     "",
     "",
     false,
     {"AWS_ACCESS_KEY_ID=AKENV", "AWS_SECRET_ACCESS_KEY=s", "AWS_SESSION_TOKEN=t", NULL},
     NULL,
     NULL,
     0,
     AWSCREDS_ENV,
     "environment",
     0,
     "AKENV"},
    {"environment without a secret",
     "",
     "",
     "",
     false,
     {"AWS_ACCESS_KEY_ID=AKENV", NULL},
     NULL,
     NULL,
     -1,
     0,
     "AWS_SECRET_ACCESS_KEY",
     0,
     NULL},
    {"environment wins over a profile",
     "",
     "",
     "",
     false,
     {"AWS_ACCESS_KEY_ID=AKENV", "AWS_SECRET_ACCESS_KEY=s", "AWS_PROFILE=p", NULL},
     "[p]\naws_access_key_id=AKP\naws_secret_access_key=x\n",
     NULL,
     0,
     AWSCREDS_ENV,
     "environment",
     0,
     "AKENV"},
    {"default profile in the credentials file",
     "",
     "",
     "",
     false,
     {NULL},
     "[default]\naws_access_key_id = AKDEF\naws_secret_access_key = x\n",
     NULL,
     0,
     AWSCREDS_PROFILE,
     "profile default",
     0,
     "AKDEF"},
    {"AWS_PROFILE in the config file",
     "",
     "",
     "",
     false,
     {"AWS_PROFILE=dev", NULL},
     NULL,
     "[profile dev]\naws_access_key_id=AKDEV\naws_secret_access_key=x\n",
     0,
     AWSCREDS_PROFILE,
     "profile dev",
     0,
     "AKDEV"},
    {"the upstream's profile wins over AWS_PROFILE",
     "prod",
     "",
     "",
     false,
     {"AWS_PROFILE=dev", NULL},
     "[dev]\naws_access_key_id=AKDEV\naws_secret_access_key=x\n"
     "[prod]\naws_access_key_id=AKPROD\naws_secret_access_key=y\n",
     NULL,
     0,
     AWSCREDS_PROFILE,
     "profile prod",
     0,
     "AKPROD"},
    {"the credentials file wins over the config file",
     "",
     "",
     "",
     false,
     {NULL},
     "[default]\naws_access_key_id=AKCRED\naws_secret_access_key=x\n",
     "[default]\naws_access_key_id=AKCONF\naws_secret_access_key=y\n",
     0,
     AWSCREDS_PROFILE,
     "profile default",
     0,
     "AKCRED"},
    {"[dev] in the config file is not a profile",
     "",
     "",
     "",
     false,
     {"AWS_PROFILE=dev", NULL},
     NULL,
     "[dev]\naws_access_key_id=AKDEV\naws_secret_access_key=x\n",
     -1,
     0,
     "profile 'dev' is not",
     0,
     NULL},
    {"a named profile that is missing",
     "nope",
     "",
     "",
     false,
     {NULL},
     "[default]\naws_access_key_id=A\naws_secret_access_key=x\n",
     NULL,
     -1,
     0,
     "profile 'nope' is not",
     0,
     NULL},
    {"a profile without keys",
     "",
     "",
     "",
     false,
     {NULL},
     "[default]\nregion=eu-west-1\n",
     NULL,
     -1,
     0,
     "has no credentials",
     0,
     NULL},
    {"role_arn + source_profile",
     "",
     "",
     "",
     false,
     {"AWS_PROFILE=app", NULL},
     "[base]\naws_access_key_id=AKBASE\naws_secret_access_key=x\n",
     "[profile app]\nrole_arn=" ARN_A "\nsource_profile=base\n",
     0,
     AWSCREDS_PROFILE,
     "profile app + assume role " ARN_A,
     1,
     "AKBASE"},
    {"role_arn chained twice",
     "",
     "",
     "",
     false,
     {"AWS_PROFILE=app", NULL},
     "[base]\naws_access_key_id=AKBASE\naws_secret_access_key=x\n",
     "[profile mid]\nrole_arn=" ARN_B "\nsource_profile=base\n"
     "[profile app]\nrole_arn=" ARN_A "\nsource_profile=mid\n",
     0,
     AWSCREDS_PROFILE,
     "profile app + assume role " ARN_B " + assume role " ARN_A,
     2,
     "AKBASE"},
    {"a source_profile loop",
     "",
     "",
     "",
     false,
     {"AWS_PROFILE=a", NULL},
     NULL,
     "[profile a]\nrole_arn=" ARN_A "\nsource_profile=b\n"
     "[profile b]\nrole_arn=" ARN_B "\nsource_profile=a\n",
     -1,
     0,
     "source_profile loop",
     0,
     NULL},
    {"a profile that is its own source uses its keys",
     "",
     "",
     "",
     false,
     {"AWS_PROFILE=s", NULL},
     "[s]\naws_access_key_id=AKSELF\naws_secret_access_key=x\nrole_arn=" ARN_A
     "\nsource_profile=s\n",
     NULL,
     0,
     AWSCREDS_PROFILE,
     "profile s + assume role " ARN_A,
     1,
     "AKSELF"},
    {"a source profile's keys come before its role",
     "",
     "",
     "",
     false,
     {"AWS_PROFILE=app", NULL},
     "[base]\naws_access_key_id=AKBASE\naws_secret_access_key=x\nrole_arn=" ARN_B
     "\nsource_profile=other\n",
     "[profile app]\nrole_arn=" ARN_A "\nsource_profile=base\n",
     0,
     AWSCREDS_PROFILE,
     "profile app + assume role " ARN_A,
     1,
     "AKBASE"},
    {"credential_source Ec2InstanceMetadata",
     "",
     "",
     "",
     false,
     {"AWS_PROFILE=r", NULL},
     NULL,
     "[profile r]\nrole_arn=" ARN_A "\ncredential_source=Ec2InstanceMetadata\n",
     0,
     AWSCREDS_IMDS,
     "profile r (instance role) + assume role " ARN_A,
     1,
     "http://169.254.169.254"},
    {"credential_source EcsContainer",
     "",
     "",
     "",
     false,
     {"AWS_PROFILE=r", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/creds/x", NULL},
     NULL,
     "[profile r]\nrole_arn=" ARN_A "\ncredential_source=EcsContainer\n",
     0,
     AWSCREDS_CONTAINER,
     "profile r (container) + assume role " ARN_A,
     1,
     "http://169.254.170.2/v2/creds/x"},
    {"credential_source EcsContainer without the container",
     "",
     "",
     "",
     false,
     {"AWS_PROFILE=r", NULL},
     NULL,
     "[profile r]\nrole_arn=" ARN_A "\ncredential_source=EcsContainer\n",
     -1,
     0,
     "EcsContainer but no",
     0,
     NULL},
    {"credential_source Environment",
     "",
     "",
     "",
     false,
     {"AWS_PROFILE=r", NULL},
     NULL,
     "[profile r]\nrole_arn=" ARN_A "\ncredential_source=Environment\n",
     -1,
     0,
     "AWS_ACCESS_KEY_ID",
     0,
     NULL},
    {"credential_source unknown",
     "",
     "",
     "",
     false,
     {"AWS_PROFILE=r", NULL},
     NULL,
     "[profile r]\nrole_arn=" ARN_A "\ncredential_source=Magic\n",
     -1,
     0,
     "unknown credential_source",
     0,
     NULL},
    {"role_arn without a source",
     "",
     "",
     "",
     false,
     {"AWS_PROFILE=r", NULL},
     NULL,
     "[profile r]\nrole_arn=" ARN_A "\n",
     -1,
     0,
     "no source_profile",
     0,
     NULL},
    {"both source_profile and credential_source",
     "",
     "",
     "",
     false,
     {"AWS_PROFILE=r", NULL},
     "[b]\naws_access_key_id=A\naws_secret_access_key=x\n",
     "[profile r]\nrole_arn=" ARN_A "\nsource_profile=b\ncredential_source=Environment\n",
     -1,
     0,
     "both",
     0,
     NULL},
    {"profile web_identity_token_file",
     "",
     "",
     "",
     false,
     {"AWS_PROFILE=w", NULL},
     NULL,
     "[profile w]\nrole_arn=" ARN_A "\nweb_identity_token_file=/var/run/token\n",
     0,
     AWSCREDS_WEB_IDENTITY,
     "profile w (web identity " ARN_A ")",
     0,
     NULL},
    {"web identity from the environment",
     "",
     "",
     "",
     false,
     {"AWS_WEB_IDENTITY_TOKEN_FILE=/t", "AWS_ROLE_ARN=" ARN_A, NULL},
     NULL,
     NULL,
     0,
     AWSCREDS_WEB_IDENTITY,
     "web identity " ARN_A,
     0,
     NULL},
    {"web identity without a role",
     "",
     "",
     "",
     false,
     {"AWS_WEB_IDENTITY_TOKEN_FILE=/t", NULL},
     NULL,
     NULL,
     -1,
     0,
     "AWS_ROLE_ARN",
     0,
     NULL},
    {"a profile wins over web identity",
     "",
     "",
     "",
     false,
     {"AWS_WEB_IDENTITY_TOKEN_FILE=/t", "AWS_ROLE_ARN=" ARN_A, NULL},
     "[default]\naws_access_key_id=AKDEF\naws_secret_access_key=x\n",
     NULL,
     0,
     AWSCREDS_PROFILE,
     "profile default",
     0,
     "AKDEF"},
    {"web identity wins over the container",
     "",
     "",
     "",
     false,
     {"AWS_WEB_IDENTITY_TOKEN_FILE=/t", "AWS_ROLE_ARN=" ARN_A,
      "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/x", NULL},
     NULL,
     NULL,
     0,
     AWSCREDS_WEB_IDENTITY,
     "web identity " ARN_A,
     0,
     NULL},
    {"container, relative",
     "",
     "",
     "",
     false,
     {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/credentials/abc", NULL},
     NULL,
     NULL,
     0,
     AWSCREDS_CONTAINER,
     "container",
     0,
     "http://169.254.170.2/v2/credentials/abc"},
    {"container, full to loopback",
     "",
     "",
     "",
     false,
     {"AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:8080/creds", NULL},
     NULL,
     NULL,
     0,
     AWSCREDS_CONTAINER,
     "container",
     0,
     "http://127.0.0.1:8080/creds"},
    {"container, full to EKS Pod Identity",
     "",
     "",
     "",
     false,
     {"AWS_CONTAINER_CREDENTIALS_FULL_URI=http://169.254.170.23/v1/credentials", NULL},
     NULL,
     NULL,
     0,
     AWSCREDS_CONTAINER,
     "container",
     0,
     "http://169.254.170.23/v1/credentials"},
    {"container, full http elsewhere",
     "",
     "",
     "",
     false,
     {"AWS_CONTAINER_CREDENTIALS_FULL_URI=http://10.0.0.5/creds", NULL},
     NULL,
     NULL,
     -1,
     0,
     "http is allowed only",
     0,
     NULL},
    {"IMDS last",
     "",
     "",
     "",
     false,
     {NULL},
     NULL,
     NULL,
     0,
     AWSCREDS_IMDS,
     "instance role",
     0,
     "http://169.254.169.254"},
    {"IMDS endpoint",
     "",
     "",
     "",
     false,
     {"AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:9999/", NULL},
     NULL,
     NULL,
     0,
     AWSCREDS_IMDS,
     "instance role",
     0,
     "http://127.0.0.1:9999"},
    {"IMDS disabled",
     "",
     "",
     "",
     false,
     {"AWS_EC2_METADATA_DISABLED=true", NULL},
     NULL,
     NULL,
     -1,
     0,
     "no upstream credentials",
     0,
     NULL},
    {"IMDS disabled (TRUE)",
     "",
     "",
     "",
     false,
     {"AWS_EC2_METADATA_DISABLED=TRUE", NULL},
     NULL,
     NULL,
     -1,
     0,
     "AWS_EC2_METADATA_DISABLED",
     0,
     NULL},
    {"upstream role_arn on static keys",
     "",
     ARN_U,
     "AKSTATIC",
     false,
     {NULL},
     NULL,
     NULL,
     0,
     AWSCREDS_STATIC,
     "static + assume role " ARN_U,
     1,
     "AKSTATIC"},
    {"upstream role_arn on a profile's role",
     "",
     ARN_U,
     "",
     false,
     {"AWS_PROFILE=app", NULL},
     "[base]\naws_access_key_id=AKBASE\naws_secret_access_key=x\n",
     "[profile app]\nrole_arn=" ARN_A "\nsource_profile=base\n",
     0,
     AWSCREDS_PROFILE,
     "profile app + assume role " ARN_A " + assume role " ARN_U,
     2,
     "AKBASE"},
    {"upstream role_arn on IMDS",
     "",
     ARN_U,
     "",
     false,
     {NULL},
     NULL,
     NULL,
     0,
     AWSCREDS_IMDS,
     "instance role + assume role " ARN_U,
     1,
     "http://169.254.169.254"},
    {"a broken credentials file",
     "",
     "",
     "",
     false,
     {NULL},
     "[default\nx=y\n",
     NULL,
     -1,
     0,
     "syntax error",
     0,
     NULL},
};

static void test_plans(void)
{
    for (size_t i = 0; i < sizeof plan_cases / sizeof plan_cases[0]; i++) {
        const struct plan_case *c = &plan_cases[i];
        struct awscreds_params p = no_params;
        p.profile = c->profile;
        p.role_arn = c->role_arn;
        p.access_key_id = c->static_id;
        p.secret_access_key = *c->static_id ? "secret" : "";
        p.from_env = c->from_env;
        struct awscreds_plan plan;
        char err[512] = "";
        int rc = awscreds_plan_make(&plan, &p, (char *const *)c->env, c->credentials, c->config,
                                    err, sizeof err);
        CHECK(rc == c->want_rc, "%s: rc %d (%s)", c->name, rc, err);
        if (rc < 0 && c->want_rc < 0) {
            CHECK(strstr(err, c->want_desc) != NULL, "%s: err \"%s\"", c->name, err);
        } else if (rc == 0 && c->want_rc == 0) {
            CHECK(plan.source == c->want_source, "%s: source %d", c->name, (int)plan.source);
            CHECK_STR(plan.description, c->want_desc, c->name);
            CHECK(plan.nroles == c->want_roles, "%s: %zu roles", c->name, plan.nroles);
            const char *key = plan.source == AWSCREDS_CONTAINER ? plan.container_url
                              : plan.source == AWSCREDS_IMDS    ? plan.imds_endpoint
                                                                : plan.base.access_key_id;
            if (c->want_key)
                CHECK(key && strcmp(key, c->want_key) == 0, "%s: key %s", c->name,
                      key ? key : "(null)");
            CHECK(awscreds_plan_static(&plan) ==
                      (c->want_roles == 0 &&
                       (c->want_source == AWSCREDS_STATIC || c->want_source == AWSCREDS_ENV ||
                        c->want_source == AWSCREDS_PROFILE)),
                  "%s: static", c->name);
        }
        awscreds_plan_cleanup(&plan);
    }
}

static void test_plan_details(void)
{
    struct awscreds_params p = no_params;
    p.role_arn = ARN_U;
    p.external_id = "ext-1";
    struct awscreds_plan plan;
    char err[256];
    const char *env[] = {"AWS_PROFILE=app", NULL};
    int rc = awscreds_plan_make(&plan, &p, (char *const *)env,
                                "[base]\naws_access_key_id=AKBASE\naws_secret_access_key=sb\n",
                                "[profile app]\nrole_arn=" ARN_A
                                "\nsource_profile=base\nexternal_id=pe\n"
                                "role_session_name=app-session\n",
                                err, sizeof err);
    CHECK(rc == 0, "chain: %s", err);
    CHECK(plan.nroles == 2, "two roles");
    if (plan.nroles == 2) {
        CHECK_STR(plan.roles[0].arn, ARN_A, "first role");
        CHECK_STR(plan.roles[0].external_id, "pe", "profile external_id");
        CHECK_STR(plan.roles[0].session_name, "app-session", "profile session name");
        CHECK_STR(plan.roles[1].arn, ARN_U, "upstream role");
        CHECK_STR(plan.roles[1].external_id, "ext-1", "upstream external_id");
        CHECK_STR(plan.roles[1].session_name, "sesgate-gw1", "default session name");
    }
    CHECK_STR(plan.base.secret_access_key, "sb", "source profile secret");
    CHECK_STR(plan.sts_endpoint, "https://sts.eu-west-1.amazonaws.com", "STS endpoint");
    CHECK_STR(plan.sts_region, "eu-west-1", "STS region");
    awscreds_plan_cleanup(&plan);

    /* endpoint overrides, and the session name given */
    p = no_params;
    p.access_key_id = "AK";
    p.secret_access_key = "s";
    p.role_arn = ARN_U;
    p.session_name = "mine";
    const char *env2[] = {"AWS_ENDPOINT_URL=http://127.0.0.1:1/", NULL};
    CHECK(awscreds_plan_make(&plan, &p, (char *const *)env2, NULL, NULL, err, sizeof err) == 0,
          "%s", err);
    CHECK_STR(plan.sts_endpoint, "http://127.0.0.1:1", "AWS_ENDPOINT_URL");
    CHECK(plan.nroles == 1 && strcmp(plan.roles[0].session_name, "mine") == 0, "session_name");
    awscreds_plan_cleanup(&plan);
    const char *env3[] = {"AWS_ENDPOINT_URL=http://127.0.0.1:1",
                          "AWS_ENDPOINT_URL_STS=http://127.0.0.1:2", NULL};
    CHECK(awscreds_plan_make(&plan, &p, (char *const *)env3, NULL, NULL, err, sizeof err) == 0,
          "%s", err);
    CHECK_STR(plan.sts_endpoint, "http://127.0.0.1:2", "AWS_ENDPOINT_URL_STS wins");
    awscreds_plan_cleanup(&plan);

    /* web identity's session name and the container's token */
    p = no_params;
    const char *env4[] = {"AWS_WEB_IDENTITY_TOKEN_FILE=/t", "AWS_ROLE_ARN=" ARN_A,
                          "AWS_ROLE_SESSION_NAME=pod-1", NULL};
    CHECK(awscreds_plan_make(&plan, &p, (char *const *)env4, NULL, NULL, err, sizeof err) == 0,
          "%s", err);
    CHECK_STR(plan.web_session_name, "pod-1", "AWS_ROLE_SESSION_NAME");
    CHECK_STR(plan.token_file, "/t", "token file");
    awscreds_plan_cleanup(&plan);
    const char *env5[] = {"AWS_CONTAINER_CREDENTIALS_FULL_URI=http://169.254.170.23/v1/credentials",
                          "AWS_CONTAINER_AUTHORIZATION_TOKEN=tok",
                          "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=/var/run/tok", NULL};
    CHECK(awscreds_plan_make(&plan, &p, (char *const *)env5, NULL, NULL, err, sizeof err) == 0,
          "%s", err);
    CHECK_STR(plan.container_token_file, "/var/run/tok", "token file wins");
    CHECK_STR(plan.container_token, "", "token file wins over the token");
    awscreds_plan_cleanup(&plan);
    const char *env6[] = {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/x",
                          "AWS_CONTAINER_AUTHORIZATION_TOKEN=tok", NULL};
    CHECK(awscreds_plan_make(&plan, &p, (char *const *)env6, NULL, NULL, err, sizeof err) == 0,
          "%s", err);
    CHECK_STR(plan.container_token, "tok", "token");
    awscreds_plan_cleanup(&plan);
}

static void test_container_urls(void)
{
    static const struct {
        const char *url;
        bool ok;
    } cases[] = {
        {"https://example.com/creds", true},
        {"http://127.0.0.1/creds", true},
        {"http://127.1.2.3:80/creds", true},
        {"http://localhost:8080/", true},
        {"http://[::1]:8080/", true},
        {"http://169.254.170.2/v2/credentials", true},
        {"http://169.254.170.23/v1/credentials", true},
        {"http://[fd00:ec2::23]/v1/credentials", true},
        {"http://169.254.169.254/", false},
        {"http://10.0.0.1/", false},
        {"http://127.0.0.1.evil.example/", false},
        {"http://evil@example.com/", false},
        {"http://127.0.0.1@evil.example/", false},
        {"ftp://127.0.0.1/", false},
        {"http:///", false},
        {"", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK(awscreds_container_url_ok(cases[i].url) == cases[i].ok, "%s", cases[i].url);
}

static void test_bodies(void)
{
    struct buf b = BUF_INIT;
    char arn[] = ARN_A, ext[] = "ext 1", sess[] = "sesgate-gw1", none[] = "", s1[] = "s";
    struct awscreds_role r = {arn, ext, sess};
    awscreds_assume_role_body(&r, &b);
    CHECK_STR(buf_cstr(&b),
              "Action=AssumeRole&Version=2011-06-15&DurationSeconds=3600&RoleArn=arn%3Aaws%3Aiam%"
              "3A%3A111111111111%3Arole%2Fa&RoleSessionName=sesgate-gw1&ExternalId=ext%201",
              "AssumeRole body");
    struct awscreds_role r2 = {arn, none, s1};
    awscreds_assume_role_body(&r2, &b);
    CHECK(strstr(b.data, "ExternalId") == NULL, "no ExternalId");
    awscreds_web_identity_body(ARN_A, "pod", "eyJ.a.b\n", 8, &b);
    CHECK_STR(buf_cstr(&b),
              "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&DurationSeconds=3600&RoleArn="
              "arn%3Aaws%3Aiam%3A%3A111111111111%3Arole%2Fa&RoleSessionName=pod&WebIdentityToken="
              "eyJ.a.b",
              "web identity body");
    buf_free(&b);
}

#define STS_OK                                                                                     \
    "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"                   \
    "  <AssumeRoleResult>\n"                                                                       \
    "    <SourceIdentity>x</SourceIdentity>\n"                                                     \
    "    <AssumedRoleUser>\n"                                                                      \
    "      <Arn>arn:aws:sts::123456789012:assumed-role/demo/TestAR</Arn>\n"                        \
    "      <AssumedRoleId>ARO123EXAMPLE123:TestAR</AssumedRoleId>\n"                               \
    "    </AssumedRoleUser>\n"                                                                     \
    "    <Credentials>\n"                                                                          \
    "      <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>\n"                                      \
    "      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>\n"         \
    "      <SessionToken>\n       AQoDYXdzEPT//////////wEXAMPLEtc764\n      </SessionToken>\n"     \
    "      <Expiration>2019-10-02T15:02:00Z</Expiration>\n"                                        \
    "    </Credentials>\n"                                                                         \
    "    <PackedPolicySize>8</PackedPolicySize>\n"                                                 \
    "  </AssumeRoleResult>\n"                                                                      \
    "  <ResponseMetadata><RequestId>c6104cbe</RequestId></ResponseMetadata>\n"                     \
    "</AssumeRoleResponse>\n"

static void test_sts(void)
{
    struct awscreds c;
    char err[512];
    int rc = awscreds_parse_sts(STS_OK, strlen(STS_OK), &c, err, sizeof err);
    CHECK(rc == 0, "AssumeRole answer: %s", err);
    if (rc == 0) {
        CHECK_STR(c.access_key_id, "ASIAIOSFODNN7EXAMPLE", "key id");
        CHECK_STR(c.secret_access_key, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY", "secret");
        CHECK_STR(c.session_token, "AQoDYXdzEPT//////////wEXAMPLEtc764", "token trimmed");
        CHECK(c.expiration == 1570028520, "expiration %lld", (long long)c.expiration);
        awscreds_cleanup(&c);
    }
    static const char web[] =
        "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
        "<AssumeRoleWithWebIdentityResult><SubjectFromWebIdentityToken>s</"
        "SubjectFromWebIdentityToken><Credentials><SessionToken>T&amp;1</SessionToken>"
        "<SecretAccessKey>S</SecretAccessKey><Expiration>2026-12-08T03:00:00.123Z</Expiration>"
        "<AccessKeyId>ASIAW</AccessKeyId></Credentials></AssumeRoleWithWebIdentityResult>"
        "</AssumeRoleWithWebIdentityResponse>";
    rc = awscreds_parse_sts(web, strlen(web), &c, err, sizeof err);
    CHECK(rc == 0, "web identity answer: %s", err);
    if (rc == 0) {
        CHECK_STR(c.session_token, "T&1", "entity decoded");
        CHECK_STR(c.access_key_id, "ASIAW", "any order");
        awscreds_cleanup(&c);
    }
    static const char error[] =
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>"
        "<Type>Sender</Type><Code>AccessDenied</Code><Message>User: x is not authorized to "
        "perform: sts:AssumeRole</Message></Error><RequestId>r</RequestId></ErrorResponse>";
    rc = awscreds_parse_sts(error, strlen(error), &c, err, sizeof err);
    CHECK(rc == -1, "error answer");
    CHECK(strstr(err, "AccessDenied") && strstr(err, "not authorized"), "error: %s", err);
    static const struct {
        const char *body, *why;
    } bad[] = {
        {"", "not XML"},
        {"<a>", "not XML"},
        {"not xml", "not XML"},
        {"<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>A</AccessKeyId>"
         "</Credentials></AssumeRoleResult></AssumeRoleResponse>",
         "lacks"},
        {"<r><Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>S</SecretAccessKey>"
         "<SessionToken>T</SessionToken><Expiration>tomorrow</Expiration></Credentials></r>",
         "Expiration"},
        {"<!DOCTYPE r [<!ENTITY a \"b\">]><r>&a;</r>", "DOCTYPE"},
        {"<r><Credentials><Inner><AccessKeyId>A</AccessKeyId></Inner></Credentials></r>", "lacks"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = awscreds_parse_sts(bad[i].body, strlen(bad[i].body), &c, err, sizeof err);
        CHECK(rc == -1 && strstr(err, bad[i].why), "bad %zu: %s", i, err);
    }
    /* a field over the limit */
    struct buf big = BUF_INIT;
    buf_adds(&big, "<r><Credentials><SessionToken>");
    for (int i = 0; i < 9000; i++)
        buf_addc(&big, 'x');
    buf_adds(&big, "</SessionToken></Credentials></r>");
    rc = awscreds_parse_sts(big.data, big.len, &c, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "too long"), "long field: %s", err);
    buf_free(&big);
}

static void test_json(void)
{
    struct awscreds c;
    char err[512];
    static const char ecs[] = "{\"AccessKeyId\":\"ASIAECS\",\"SecretAccessKey\":\"S\",\"Token\":"
                              "\"T\",\"Expiration\":\"2026-12-08T03:00:00Z\",\"RoleArn\":\"r\"}";
    int rc = awscreds_parse_json(ecs, strlen(ecs), &c, err, sizeof err);
    CHECK(rc == 0, "container: %s", err);
    if (rc == 0) {
        CHECK_STR(c.access_key_id, "ASIAECS", "key");
        CHECK_STR(c.session_token, "T", "token");
        CHECK(c.expiration == 1796698800, "expiration %lld", (long long)c.expiration);
        awscreds_cleanup(&c);
    }
    static const char imds[] =
        "{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2026-12-08T02:00:00Z\",\n"
        "  \"Type\" : \"AWS-HMAC\",\n  \"AccessKeyId\" : \"ASIAIMDS\",\n"
        "  \"SecretAccessKey\" : \"S\",\n  \"Token\" : \"T\",\n"
        "  \"Expiration\" : \"2026-12-08T08:00:00Z\"\n}";
    rc = awscreds_parse_json(imds, strlen(imds), &c, err, sizeof err);
    CHECK(rc == 0, "IMDS: %s", err);
    if (rc == 0) {
        CHECK_STR(c.access_key_id, "ASIAIMDS", "key");
        awscreds_cleanup(&c);
    }
    static const struct {
        const char *body, *why;
    } bad[] = {
        {"{\"Code\":\"AssumeRoleUnauthorizedAccess\",\"Message\":\"no\"}",
         "AssumeRoleUnauthorizedAccess"},
        {"{\"code\":\"InvalidToken\",\"message\":\"bad token\"}", "bad token"},
        {"[]", "not a JSON object"},
        {"", "not a JSON object"},
        {"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"Expiration\":\"soon\"}", "Expiration"},
        {"{\"AccessKeyId\":\"A\",\"AccessKeyId\":\"B\",\"SecretAccessKey\":\"S\"}",
         "not a JSON object"},
        {"{\"AccessKeyId\":1,\"SecretAccessKey\":\"S\"}", "lacks"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = awscreds_parse_json(bad[i].body, strlen(bad[i].body), &c, err, sizeof err);
        CHECK(rc == -1 && strstr(err, bad[i].why), "bad json %zu: %s", i, err);
    }
    char role[64];
    CHECK(awscreds_imds_role("my-role\n", 8, role, sizeof role) == 0 &&
              strcmp(role, "my-role") == 0,
          "role");
    CHECK(awscreds_imds_role("first\nsecond\n", 13, role, sizeof role) == 0 &&
              strcmp(role, "first") == 0,
          "first role");
    CHECK(awscreds_imds_role("", 0, role, sizeof role) == -1, "no role");
    CHECK(awscreds_imds_role("../etc", 6, role, sizeof role) == -1, "not a name");
    CHECK(awscreds_imds_role("a b", 3, role, sizeof role) == -1, "space");
    CHECK(awscreds_imds_role("a\0b\n", 4, role, sizeof role) == -1, "NUL");
}

static void test_times(void)
{
    static const struct {
        const char *s;
        long long want; /* -1: refused */
    } cases[] = {
        {"1970-01-01T00:00:00Z", 0},
        {"2019-10-02T15:02:00Z", 1570028520},
        {"2019-10-02T15:02:00.000Z", 1570028520},
        {"2019-10-02T15:02:00.5z", 1570028520},
        {"2019-10-02T17:02:00+02:00", 1570028520},
        {"2019-10-02T13:02:00-02:00", 1570028520},
        {"2024-02-29T00:00:00Z", 1709164800},
        {"2100-03-01T00:00:00Z", 4107542400LL},
        {"2023-02-29T00:00:00Z", -1},
        {"2019-13-02T15:02:00Z", -1},
        {"2019-10-02T24:02:00Z", -1},
        {"2019-10-02 15:02:00Z", -1},
        {"2019-10-02T15:02:00", -1},
        {"2019-10-02T15:02:00.Z", -1},
        {"2019-10-02T15:02:00ZZ", -1},
        {"2019-10-02T15:02:00+0200", -1},
        {"1969-12-31T23:59:59Z", -1},
        {"", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        time_t t = 0;
        int rc = awscreds_parse_time(cases[i].s, strlen(cases[i].s), &t);
        if (cases[i].want < 0)
            CHECK(rc == -1, "%s refused", cases[i].s);
        else
            CHECK(rc == 0 && (long long)t == cases[i].want, "%s: rc %d t %lld", cases[i].s, rc,
                  (long long)t);
    }
}

static void test_schedule(void)
{
    static const struct {
        int64_t now, exp;
        unsigned failures;
        int64_t want;
    } cases[] = {
        {1000, 0, 0, -1},       /* never expires: no fetch */
        {1000, 4600, 0, 2800},  /* an hour: half the lifetime, earlier */
        {1000, 8200, 0, 4600},  /* two hours: half */
        {1000, 1700, 0, 1350},  /* 700 s: half (1350) before expiry - 5 min (1400) */
        {1000, 1400, 0, 1100},  /* 400 s: expiry - 5 min, before half (1200) */
        {1000, 1250, 0, 1125},  /* 250 s: expiry - 5 min is past: half */
        {1000, 1020, 0, 1010},  /* 20 s: half */
        {1000, 1005, 0, 1002},  /* 5 s: half */
        {1000, 1003, 0, 1001},  /* 3 s: never later than expiry - 2 s */
        {1000, 1001, 0, 1001},  /* about to expire: 1 s from now at the soonest */
        {1000, 900, 0, 1001},   /* expired: likewise */
        {1000, 4600, 1, 1001},  /* backoff 1 s */
        {1000, 4600, 2, 1002},  /* 2 s */
        {1000, 4600, 6, 1032},  /* 32 s */
        {1000, 4600, 7, 1060},  /* 64 capped to 60 */
        {1000, 4600, 40, 1060}, /* still 60 */
        {1000, 1010, 6, 1010},  /* never past expiry */
        {1000, 900, 5, 1016},   /* expired: plain backoff */
        {1000, 0, 3, 1004},     /* nothing yet: plain backoff */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t got = awscreds_next_fetch(cases[i].now, cases[i].exp, cases[i].failures);
        CHECK(got == cases[i].want, "case %zu: got %lld want %lld", i, (long long)got,
              (long long)cases[i].want);
    }
}

static void test_paths(void)
{
    struct buf c = BUF_INIT, f = BUF_INIT;
    const char *e1[] = {"HOME=/home/x", NULL};
    awscreds_file_paths((char *const *)e1, &c, &f);
    CHECK_STR(c.data, "/home/x/.aws/credentials", "credentials");
    CHECK_STR(f.data, "/home/x/.aws/config", "config");
    const char *e2[] = {"HOME=/home/x", "AWS_SHARED_CREDENTIALS_FILE=/c", "AWS_CONFIG_FILE=/f",
                        NULL};
    awscreds_file_paths((char *const *)e2, &c, &f);
    CHECK_STR(c.data, "/c", "AWS_SHARED_CREDENTIALS_FILE");
    CHECK_STR(f.data, "/f", "AWS_CONFIG_FILE");
    const char *e3[] = {NULL};
    awscreds_file_paths((char *const *)e3, &c, &f);
    CHECK(c.len == 0 && f.len == 0, "no HOME");
    buf_free(&c);
    buf_free(&f);
}

int main(void)
{
    test_plans();
    test_plan_details();
    test_container_urls();
    test_bodies();
    test_sts();
    test_json();
    test_times();
    test_schedule();
    test_paths();
    return check_done("test_awscreds");
}
