/* test_reqcheck: every check of a received request's authentication, every
 * error it answers, on a v1 and a v2 path, at a fixed now. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "reqcheck.h"

#define NOW     ((time_t)1700000000) /* 2023-11-14T22:13:20Z */
#define DATE    "20231114T221320Z"
#define SCOPE   "AKIDTEST/20231114/us-east-1/ses/aws4_request"
#define ZEROSIG "0000000000000000000000000000000000000000000000000000000000000000"
#define AUTHZ(scope, signed)                                                                       \
    "AWS4-HMAC-SHA256 Credential=" scope ", SignedHeaders=" signed ", Signature=" ZEROSIG
/* The SHA-256 of the empty body. */
#define EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SIGNED    "(signed)"

struct reqcheck_case {
    const char *name;
    const char *authz; /* Authorization; NULL: none; SIGNED: a valid signature */
    const char *date;  /* X-Amz-Date; NULL: none */
    const char *hname; /* one more header, or NULL */
    const char *hvalue;
    const char *query;     /* NULL: none */
    long delta;            /* now - NOW, seconds */
    bool presigned;        /* the policy accepts presigned requests */
    enum seserr_code want; /* of reqcheck_request, then of reqcheck_verify */
    const char *message;   /* a part of the message; NULL: the default */
    bool verify;           /* the error is reqcheck_verify's */
};

static const struct reqcheck_case reqcheck_cases[] = {
    {"no authentication", NULL, DATE, NULL, NULL, NULL, 0, true, SESERR_MISSING_AUTH, NULL, false},
    {"SigV2 header", AUTHZ(SCOPE, "host;x-amz-date"), DATE, "x-amzn-authorization", "AWS3 x", NULL,
     0, true, SESERR_INVALID_TOKEN, "Signature Version 2 and 3", false},
    {"SigV2 query", NULL, DATE, NULL, NULL, "SignatureVersion=2&Signature=abc", 0, true,
     SESERR_INVALID_TOKEN, "Signature Version 2 and 3", false},
    {"SigV4a", "AWS4-ECDSA-P256-SHA256 Credential=" SCOPE ", SignedHeaders=host, Signature=00",
     DATE, NULL, NULL, NULL, 0, true, SESERR_INCOMPLETE_SIGNATURE, "Unsupported signing", false},
    {"malformed", "AWS4-HMAC-SHA256 Credential=x", DATE, NULL, NULL, NULL, 0, true,
     SESERR_INCOMPLETE_SIGNATURE, "", false},
    {"unknown key", AUTHZ("AKIDOTHER/20231114/us-east-1/ses/aws4_request", "host;x-amz-date"), DATE,
     NULL, NULL, NULL, 0, true, SESERR_UNKNOWN_KEY, NULL, false},
    {"session token", AUTHZ(SCOPE, "host;x-amz-date"), DATE, "x-amz-security-token", "t", NULL, 0,
     true, SESERR_INVALID_TOKEN, NULL, false},
    {"service", AUTHZ("AKIDTEST/20231114/us-east-1/s3/aws4_request", "host;x-amz-date"), DATE, NULL,
     NULL, NULL, 0, true, SESERR_BAD_SIGNATURE, "scoped to correct service: 'ses'", false},
    {"region", AUTHZ("AKIDTEST/20231114/eu-west-1/ses/aws4_request", "host;x-amz-date"), DATE, NULL,
     NULL, NULL, 0, true, SESERR_BAD_SIGNATURE, "valid region, not 'eu-west-1'", false},
    {"no date", AUTHZ(SCOPE, "host"), NULL, NULL, NULL, NULL, 0, true, SESERR_INCOMPLETE_SIGNATURE,
     "requires existence of either a 'X-Amz-Date'", false},
    {"date format", AUTHZ(SCOPE, "host;x-amz-date"), "2023-11-14T22:13:20Z", NULL, NULL, NULL, 0,
     true, SESERR_INCOMPLETE_SIGNATURE, "ISO-8601 basic format", false},
    {"scope date", AUTHZ("AKIDTEST/20231113/us-east-1/ses/aws4_request", "host;x-amz-date"), DATE,
     NULL, NULL, NULL, 0, true, SESERR_BAD_SIGNATURE, "Date in Credential scope", false},
    {"expired", AUTHZ(SCOPE, "host;x-amz-date"), DATE, NULL, NULL, NULL, 301, true,
     SESERR_BAD_SIGNATURE,
     "Signature expired: 20231114T221320Z is now earlier than 20231114T221321Z "
     "(20231114T221821Z - 5 min.)",
     false},
    {"not yet current", AUTHZ(SCOPE, "host;x-amz-date"), DATE, NULL, NULL, NULL, -301, true,
     SESERR_BAD_SIGNATURE,
     "Signature not yet current: 20231114T221320Z is still later than 20231114T221319Z "
     "(20231114T220819Z + 5 min.)",
     false},
    {"presigned expired", NULL, NULL, NULL, NULL,
     "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDTEST%2F20231114%2Fus-east-1%2Fses%2F"
     "aws4_request&X-Amz-Date=" DATE
     "&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=" ZEROSIG,
     120, true, SESERR_BAD_SIGNATURE, "Request has expired.", false},
    {"presigned refused", NULL, NULL, NULL, NULL,
     "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDTEST%2F20231114%2Fus-east-1%2Fses%2F"
     "aws4_request&X-Amz-Date=" DATE "&X-Amz-SignedHeaders=host&X-Amz-Signature=" ZEROSIG,
     0, false, SESERR_MISSING_AUTH, NULL, false},
    {"payload hash", AUTHZ(SCOPE, "host;x-amz-date"), DATE, "x-amz-content-sha256",
     "0000000000000000000000000000000000000000000000000000000000000001", NULL, 0, true,
     SESERR_BAD_SIGNATURE, "'x-amz-content-sha256' header does not match", false},
    {"host unsigned", AUTHZ(SCOPE, "x-amz-date"), DATE, NULL, NULL, NULL, 0, true,
     SESERR_INCOMPLETE_SIGNATURE, "'Host' must be a 'SignedHeader'", false},
    {"signature mismatch", AUTHZ(SCOPE, "host;x-amz-date"), DATE, NULL, NULL, NULL, 0, true,
     SESERR_BAD_SIGNATURE, NULL, true},
    {"query encoding", AUTHZ(SCOPE, "host;x-amz-date"), DATE, NULL, NULL, "a=%zz", 0, true,
     SESERR_MALFORMED_QUERY, NULL, true},
    {"valid", SIGNED, DATE, NULL, NULL, NULL, 0, true, SESERR_NONE, NULL, false},
    {"valid, service email", SIGNED, DATE, "x-amz-content-sha256", EMPTY_SHA, NULL, 299, false,
     SESERR_NONE, NULL, false},
};

/* Sign method/path with host and x-amz-date into out (an Authorization). */
static void reqcheck_sign(struct sigv4_request *r, const char *service, struct buf *out)
{
    struct sigv4_key_cache cache = {0};
    unsigned char key[32];
    sigv4_key_cache_get(&cache, "secret", "20231114", "us-east-1", service, key);
    char scope[128];
    snprintf(scope, sizeof scope, "20231114/us-east-1/%s/aws4_request", service);
    int rc = sigv4_sign(r, "host;x-amz-date", "AKIDTEST", key, DATE, scope, out);
    CHECK(rc == SIGV4_OK, "sign: %d", rc);
}

/* Run case c on path (api: 1 or 2). */
static void reqcheck_run(const struct reqcheck_case *c, const char *path, int api)
{
    struct config_client clients[2] = {{.name = (char *)"other",
                                        .access_key_id = (char *)"AKIDELSE",
                                        .secret_access_key = (char *)"else"},
                                       {.name = (char *)"test",
                                        .access_key_id = (char *)"AKIDTEST",
                                        .secret_access_key = (char *)"secret"}};
    struct reqcheck_policy p = {"us-east-1", 300000, clients, 2, c->presigned, NULL, 0};
    struct sigv4_header h[4];
    size_t nh = 0;
    h[nh++] = (struct sigv4_header){"Host", 4, "email.us-east-1.amazonaws.com", 29};
    if (c->date)
        h[nh++] = (struct sigv4_header){"X-Amz-Date", 10, c->date, strlen(c->date)};
    if (c->hname)
        h[nh++] = (struct sigv4_header){c->hname, strlen(c->hname), c->hvalue, strlen(c->hvalue)};
    struct sigv4_request r = {"POST", path, strlen(path), c->query, c->query ? strlen(c->query) : 0,
                              h,      nh,   EMPTY_SHA,    true};
    struct buf signed_authz = BUF_INIT;
    const char *authz = c->authz;
    if (authz && strcmp(authz, SIGNED) == 0) {
        reqcheck_sign(&r, strstr(c->name, "email") ? "email" : "ses", &signed_authz);
        authz = buf_cstr(&signed_authz);
    }
    if (authz)
        h[nh++] = (struct sigv4_header){"Authorization", 13, authz, strlen(authz)};
    r.nheaders = nh;
    struct buf storage = BUF_INIT;
    struct reqcheck_auth ra;
    struct seserr e = {SESERR_NONE, ""};
    int rc = reqcheck_request(&p, &r, NOW + c->delta, &storage, &ra, &e);
    CHECK((rc == 0) == (c->want == SESERR_NONE || c->verify), "%s (v%d): request rc %d: %s",
          c->name, api, rc, e.message);
    if (rc == 0) {
        CHECK(ra.client == 1, "%s (v%d): client %zu", c->name, api, ra.client);
        struct sigv4_key_cache cache = {0};
        rc = reqcheck_verify(&r, &ra, clients[ra.client].secret_access_key, &cache, &e);
        CHECK((rc == 0) == (c->want == SESERR_NONE), "%s (v%d): verify rc %d", c->name, api, rc);
    }
    CHECK(e.code == c->want, "%s (v%d): code %s, want %s", c->name, api, seserr_name(e.code),
          seserr_name(c->want));
    if (c->want != SESERR_NONE) {
        const char *want = c->message ? c->message : seserr_default_message(c->want);
        CHECK(strstr(e.message, want) != NULL || (c->message == NULL && e.message[0] == '\0'),
              "%s (v%d): message \"%s\", want \"%s\"", c->name, api, e.message, want);
        struct buf body = BUF_INIT;
        const char *ctype = NULL, *etype = NULL;
        int status = seserr_render(&e, api, "req-1", &body, &ctype, &etype);
        CHECK(status >= 400 && status < 500, "%s (v%d): status %d", c->name, api, status);
        CHECK(strstr(buf_cstr(&body), seserr_name(c->want)) != NULL || body.len > 0,
              "%s (v%d): body", c->name, api);
        buf_free(&body);
    }
    buf_free(&storage);
    buf_free(&signed_authz);
}

/* The header and query readers. */
static void reqcheck_readers(void)
{
    struct sigv4_header h[2] = {{"Host", 4, "a", 1}, {"X-Amz-Date", 10, DATE, 16}};
    struct sigv4_request r = {"GET", "/", 1, NULL, 0, h, 2, EMPTY_SHA, true};
    size_t len = 0;
    const char *v = reqcheck_header(&r, "x-amz-date", &len);
    CHECK(v && len == 16 && memcmp(v, DATE, 16) == 0, "x-amz-date");
    CHECK(reqcheck_header(&r, "authorization", NULL) == NULL, "absent header");
    CHECK(reqcheck_query_has("a=1&Signature=x", 15, "Signature"), "query has");
    CHECK(!reqcheck_query_has("a=1&SignatureX=x", 16, "Signature"), "query prefix");
    CHECK(reqcheck_query_has("a&b", 3, "b"), "query without =");
    CHECK(!reqcheck_query_has(NULL, 0, "b"), "no query");
}

/* With several upstreams a scope may name any upstream's region, and no
 * other. */
static void reqcheck_regions(void)
{
    struct config_client client = {.name = (char *)"test",
                                   .access_key_id = (char *)"AKIDTEST",
                                   .secret_access_key = (char *)"secret"};
    static const char *const regions[] = {"us-east-1", "eu-west-1"};
    struct reqcheck_policy p = {"us-east-1", 300000, &client, 1, false, regions, 2};
    static const struct {
        const char *region;
        bool ok;
    } cases[] = {
        {"us-east-1", true}, {"eu-west-1", true}, {"ap-south-1", false}, {"eu-west", false}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct buf authz = BUF_INIT;
        buf_printf(&authz,
                   "AWS4-HMAC-SHA256 Credential=AKIDTEST/20231114/%s/ses/aws4_request, "
                   "SignedHeaders=host;x-amz-date, Signature=" ZEROSIG,
                   cases[i].region);
        struct sigv4_header h[3] = {
            {"Host", 4, "email.us-east-1.amazonaws.com", 29},
            {"X-Amz-Date", 10, DATE, 16},
            {"Authorization", 13, buf_cstr(&authz), authz.len},
        };
        struct sigv4_request r = {"POST", "/", 1, NULL, 0, h, 3, EMPTY_SHA, true};
        struct buf storage = BUF_INIT;
        struct reqcheck_auth ra;
        struct seserr e = {SESERR_NONE, ""};
        int rc = reqcheck_request(&p, &r, NOW, &storage, &ra, &e);
        CHECK((rc == 0) == cases[i].ok, "regions: %s: rc %d (%s)", cases[i].region, rc, e.message);
        if (!cases[i].ok)
            CHECK(e.code == SESERR_BAD_SIGNATURE && strstr(e.message, "valid region") != NULL,
                  "regions: %s: %s", cases[i].region, e.message);
        buf_free(&storage);
        buf_free(&authz);
    }
}

int main(void)
{
    for (size_t i = 0; i < sizeof reqcheck_cases / sizeof reqcheck_cases[0]; i++) {
        reqcheck_run(&reqcheck_cases[i], "/", 1);
        reqcheck_run(&reqcheck_cases[i], "/v2/email/outbound-emails", 2);
    }
    reqcheck_readers();
    reqcheck_regions();
    return check_done("test_reqcheck");
}
