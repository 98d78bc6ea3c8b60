/* test_feedback: the SNS endpoint's trust of a publisher inside the process
 * (feedback_trust_local), driven on a real event loop: the endpoint behind
 * an httpd listener on loopback, messages posted by the upstream client.
 * Unlike the other unit tests it links the shell modules it drives; no
 * Redis is needed (the messages used act without it).
 *
 * A CA and a signing certificate are made in memory; the local certificate
 * URL points at a port nothing listens on, so an answer that needed a fetch
 * would be 503 cert_fetch. The string to sign is written out by hand. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "check.h"
#include "config.h"
#include "events.h"
#include "feedback.h"
#include "httpd.h"
#include "log.h"
#include "metrics.h"
#include "redis.h"
#include "rscript.h"
#include "upstream.h"

#define TOPIC     "arn:aws:sns:us-east-1:000000000000:sesgate-sandbox"
#define LOCAL_URL "https://127.0.0.1:1/sesgate-sandbox-sns.pem"

struct test_fb_ca {
    EVP_PKEY *key;
    X509 *cert;
};

/* Add extension nid with value to x (issued by issuer). */
static void test_fb_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (e == NULL || !X509_add_ext(x, e, -1))
        abort();
    X509_EXTENSION_free(e);
}

/* A certificate for key named cn, valid from a day ago to a day from now,
 * signed by issuer (NULL: self-signed, a CA). */
static X509 *test_fb_cert(EVP_PKEY *key, const char *cn, const struct test_fb_ca *issuer)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), issuer ? 2 : 1);
    time_t now = time(NULL);
    ASN1_TIME_set(X509_getm_notBefore(x), now - 86400);
    ASN1_TIME_set(X509_getm_notAfter(x), now + 86400);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer->cert) : name);
    X509_set_pubkey(x, key);
    X509 *icert = issuer ? issuer->cert : x;
    test_fb_ext(x, icert, NID_basic_constraints, issuer ? "critical,CA:FALSE" : "critical,CA:TRUE");
    test_fb_ext(x, icert, NID_key_usage,
                issuer ? "critical,digitalSignature" : "critical,keyCertSign,cRLSign");
    test_fb_ext(x, icert, NID_subject_key_identifier, "hash");
    if (X509_sign(x, issuer ? issuer->key : key, EVP_sha256()) <= 0)
        abort();
    return x;
}

/* A CA with its key. */
static void test_fb_ca_make(struct test_fb_ca *ca, const char *cn)
{
    ca->key = EVP_RSA_gen(2048);
    ca->cert = test_fb_cert(ca->key, cn, NULL);
}

/* The PEM of x into out. */
static void test_fb_pem(X509 *x, struct buf *out)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    buf_add(out, p, (size_t)n);
    BIO_free(b);
}

/* An UnsubscribeConfirmation for topic, signed with key (version 2, over
 * the string to sign written out here), with cert_url; tamper: its Message
 * changed after signing. The JSON into out. */
static void test_fb_message(EVP_PKEY *key, const char *topic, const char *cert_url, bool tamper,
                            struct buf *out)
{
    static int seq;
    char id[64], ts[32];
    snprintf(id, sizeof id, "5e0c5a2c-7d1e-4b4f-9d7e-%012d", ++seq);
    time_t now = time(NULL);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S.000Z", gmtime(&now));
    const char *msg = "You have chosen to deactivate subscription.";
    const char *url = "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=ab";
    struct buf tbs = BUF_INIT, sig = BUF_INIT;
    buf_printf(&tbs,
               "Message\n%s\nMessageId\n%s\nSubscribeURL\n%s\nTimestamp\n%s\nToken\nab\n"
               "TopicArn\n%s\nType\nUnsubscribeConfirmation\n",
               msg, id, url, ts, topic);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char s[512];
    size_t n = sizeof s;
    if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(md, s, &n, (const unsigned char *)tbs.data, tbs.len) != 1)
        abort();
    EVP_MD_CTX_free(md);
    check_b64((const char *)s, n, &sig);
    json_t *o =
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "Type", "UnsubscribeConfirmation",
                  "MessageId", id, "Token", "ab", "TopicArn", topic, "Message",
                  tamper ? "You have chosen to stay." : msg, "SubscribeURL", url, "Timestamp", ts,
                  "SignatureVersion", "2", "Signature", sig.data, "SigningCertURL", cert_url);
    char *j = json_dumps(o, JSON_INDENT(2));
    buf_adds(out, j);
    free(j);
    json_decref(o);
    buf_free(&tbs);
    buf_free(&sig);
}

/* One POST and what came back. */
struct test_fb_post {
    const char *what;
    struct buf body;
    long status;
    char answer[64];
    int *left;
    struct event_base *base;
};

/* The endpoint answered a POST. */
static void test_fb_answered(struct upstream_response *res, void *arg)
{
    struct test_fb_post *p = arg;
    p->status = res->error == UPSTREAM_OK ? res->status : -1;
    snprintf(p->answer, sizeof p->answer, "%.*s", (int)res->body.len,
             res->body.data ? res->body.data : "");
    if (--*p->left == 0)
        event_base_loopbreak(p->base);
}

struct test_fb_server {
    struct feedback *fb;
};

/* httpd: every request goes to the endpoint (the path is checked). */
static void test_fb_handle(struct httpd_request *hr, void *arg)
{
    struct test_fb_server *s = arg;
    if (!feedback_match(s->fb, hr)) {
        httpd_respond(hr, 404, NULL, 0, "", 0);
        return;
    }
    feedback_handle(s->fb, hr, "00000000-0000-4000-8000-000000000000");
}

/* httpd: a refused request. */
static void test_fb_reject(struct httpd_request *hr, enum httpd_reject why, void *arg)
{
    struct test_fb_server *s = arg;
    feedback_reject(s->fb, hr, why == HTTPD_REJECT_TOO_LARGE, "00000000-0000-4000-8000-0000000000");
}

/* A loopback TCP port nothing listens on now. */
static int test_fb_free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(s, (struct sockaddr *)&a, &n) < 0)
        abort();
    close(s);
    return ntohs(a.sin_port);
}

/* Post each of the n messages to url and run the loop until all answered. */
static void test_fb_run(struct event_base *base, struct upstream *cl, const char *url,
                        struct test_fb_post *p, size_t n)
{
    int left = (int)n;
    for (size_t i = 0; i < n; i++) {
        p[i].left = &left;
        p[i].base = base;
        struct curl_slist *h = curl_slist_append(NULL, "Content-Type: text/plain; charset=UTF-8");
        h = curl_slist_append(h, "x-amz-sns-message-type: UnsubscribeConfirmation");
        upstream_start(cl, "POST", url, h, p[i].body.data, p[i].body.len, test_fb_answered, &p[i]);
    }
    struct timeval tv = {20, 0};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    CHECK(left == 0, "%d answers missing", left);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct event_base *base = event_base_new();
    struct config cfg = {0};
    config_defaults(&cfg);
    free(cfg.feedback_topics);
    cfg.feedback_topics = xstrdup(TOPIC);
    char err[256];
    struct redis *rd =
        redis_new(base, "/nonexistent/sesgate-test/redis.sock", NULL, err, sizeof err);
    struct rscript *rs = rscript_new(&cfg, rd);
    struct events *ev = events_new(rs, &cfg);
    struct feedback *fb = feedback_new(base, &cfg, rs, ev, err, sizeof err);
    CHECK(fb != NULL, "feedback_new: %s", err);
    if (fb == NULL)
        return check_done("test_feedback");

    struct test_fb_ca ca, other;
    test_fb_ca_make(&ca, "sandbox CA");
    test_fb_ca_make(&other, "another CA");
    EVP_PKEY *key = EVP_RSA_gen(2048);
    X509 *cert = test_fb_cert(key, "sandbox SNS", &ca);
    X509 *cert_other = test_fb_cert(key, "sandbox SNS", &other);
    struct buf pem = BUF_INIT, pem_other = BUF_INIT;
    test_fb_pem(cert, &pem);
    test_fb_pem(cert_other, &pem_other);

    /* URLs that are not https with a host and a path are refused */
    CHECK(feedback_trust_local(fb, "http://127.0.0.1:1/x.pem", pem.data, ca.cert) == -1, "http");
    CHECK(feedback_trust_local(fb, "https://127.0.0.1:1", pem.data, ca.cert) == -1, "no path");
    CHECK(feedback_trust_local(fb, "https:///x.pem", pem.data, ca.cert) == -1, "no host");
    CHECK(feedback_trust_local(fb, "https://u@127.0.0.1:1/x.pem", pem.data, ca.cert) == -1,
          "userinfo");
    CHECK(feedback_trust_local(fb, LOCAL_URL, pem.data, ca.cert) == 0, "trust_local");

    struct test_fb_server srv = {fb};
    struct httpd_limits lim = {.max_header_size = 16384,
                               .max_headers = 100,
                               .max_body = 2u << 20,
                               .read_timeout_ms = 5000,
                               .idle_timeout_ms = 5000,
                               .max_connections = 64};
    char listen[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", test_fb_free_port());
    struct httpd *h =
        httpd_new(base, listen, &lim, test_fb_handle, test_fb_reject, &srv, err, sizeof err);
    CHECK(h != NULL, "httpd_new: %s", err);
    if (h == NULL)
        return check_done("test_feedback");
    struct upstream *cl = upstream_new(base, 15000, 1 << 20, NULL);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", httpd_port(h), cfg.feedback_path);

    /* the local certificate from memory, under the local CA */
    struct test_fb_post p[5] = {
        {.what = "signed, local URL"},
        {.what = "tampered, local URL"},
        {.what = "the local host, another path"},
        {.what = "the local host, another port"},
        {.what = "another topic"},
    };
    test_fb_message(key, TOPIC, LOCAL_URL, false, &p[0].body);
    test_fb_message(key, TOPIC, LOCAL_URL, true, &p[1].body);
    test_fb_message(key, TOPIC, "https://127.0.0.1:1/other.pem", false, &p[2].body);
    test_fb_message(key, TOPIC, "https://127.0.0.1:2/sesgate-sandbox-sns.pem", false, &p[3].body);
    test_fb_message(key, "arn:aws:sns:us-east-1:000000000000:another", LOCAL_URL, false,
                    &p[4].body);
    test_fb_run(base, cl, url, p, 5);
    CHECK(p[0].status == 200 && strcmp(p[0].answer, "ok\n") == 0, "%s: %ld %s", p[0].what,
          p[0].status, p[0].answer);
    CHECK(p[1].status == 403 && strcmp(p[1].answer, "refused: signature\n") == 0, "%s: %ld %s",
          p[1].what, p[1].status, p[1].answer);
    CHECK(p[2].status == 403 && strcmp(p[2].answer, "refused: url\n") == 0, "%s: %ld %s", p[2].what,
          p[2].status, p[2].answer);
    CHECK(p[3].status == 403 && strcmp(p[3].answer, "refused: url\n") == 0, "%s: %ld %s", p[3].what,
          p[3].status, p[3].answer);
    CHECK(p[4].status == 403 && strcmp(p[4].answer, "refused: topic\n") == 0, "%s: %ld %s",
          p[4].what, p[4].status, p[4].answer);

    /* a local certificate from another CA than the one trusted for it */
    CHECK(feedback_trust_local(fb, LOCAL_URL, pem_other.data, ca.cert) == 0, "trust_local again");
    struct test_fb_post q[1] = {{.what = "another CA"}};
    test_fb_message(key, TOPIC, LOCAL_URL, false, &q[0].body);
    test_fb_run(base, cl, url, q, 1);
    CHECK(q[0].status == 403 && strcmp(q[0].answer, "refused: chain\n") == 0, "%s: %ld %s",
          q[0].what, q[0].status, q[0].answer);

    /* replaced: the new URL and CA hold, the old URL no longer does */
    const char *url2 = "https://127.0.0.1:1/sesgate-sandbox-sns-2.pem";
    CHECK(feedback_trust_local(fb, url2, pem_other.data, other.cert) == 0, "trust_local, new");
    struct test_fb_post r[2] = {{.what = "the new URL"}, {.what = "the old URL"}};
    test_fb_message(key, TOPIC, url2, false, &r[0].body);
    test_fb_message(key, TOPIC, LOCAL_URL, false, &r[1].body);
    test_fb_run(base, cl, url, r, 2);
    CHECK(r[0].status == 200, "%s: %ld %s", r[0].what, r[0].status, r[0].answer);
    CHECK(r[1].status == 403 && strcmp(r[1].answer, "refused: url\n") == 0,
          "%s (an SNS host no more): %ld %s", r[1].what, r[1].status, r[1].answer);

    for (size_t i = 0; i < 5; i++)
        buf_free(&p[i].body);
    buf_free(&q[0].body);
    buf_free(&r[0].body);
    buf_free(&r[1].body);
    upstream_free(cl);
    httpd_free(h);
    feedback_free(fb);
    rscript_free(rs);
    events_free(ev);
    redis_free(rd);
    config_free(&cfg);
    X509_free(cert);
    X509_free(cert_other);
    X509_free(ca.cert);
    X509_free(other.cert);
    EVP_PKEY_free(ca.key);
    EVP_PKEY_free(other.key);
    EVP_PKEY_free(key);
    buf_free(&pem);
    buf_free(&pem_other);
    event_base_free(base);
    metrics_cleanup();
    curl_global_cleanup();
    return check_done("test_feedback");
}
