/* Unit tests for config: defaults, every key, every error with its file and
 * line, environment overrides, AWS_* precedence, masking, line endings,
 * comments, client lookup and the example file. */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

#define TEST_NOENV ((const char *[]){NULL})

static char test_dir[64];
static char test_path[128];

/* Write n bytes to file name under the test directory; return its path. */
static const char *test_write_len(const char *name, const char *content, size_t n)
{
    snprintf(test_path, sizeof test_path, "%s/%s", test_dir, name);
    FILE *f = fopen(test_path, "wb");
    if (f == NULL) {
        perror(test_path);
        exit(2);
    }
    fwrite(content, 1, n, f);
    fclose(f);
    return test_path;
}

/* Write content to the test file; return its path. */
static const char *test_write(const char *content)
{
    return test_write_len("t.ini", content, strlen(content));
}

/* Load content (NULL: no file) with env into cfg; errors into err. */
static int test_load(struct config *cfg, const char *content, const char *const *env,
                     struct buf *err)
{
    const char *path = content ? test_write(content) : NULL;
    buf_reset(err);
    return config_load(cfg, path, (char *const *)env, err);
}

/* want with each '@' that starts a line replaced by the test file's path. */
static char *test_expand(const char *want)
{
    struct buf b = BUF_INIT;
    for (const char *p = want; *p; p++) {
        if (*p == '@' && (p == want || p[-1] == '\n'))
            buf_adds(&b, test_path);
        else
            buf_addc(&b, *p);
    }
    buf_cstr(&b);
    return b.data ? buf_detach(&b, NULL) : xstrdup("");
}

/* The printed configuration of cfg, owned by the caller. */
static char *test_print(const struct config *cfg)
{
    struct buf b = BUF_INIT;
    config_print(cfg, &b);
    buf_cstr(&b);
    return b.data ? buf_detach(&b, NULL) : xstrdup("");
}

/* True when the printed configuration contains line (a whole line). */
static int test_has_line(const char *printed, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = printed; (p = strstr(p, line)) != NULL; p++)
        if ((p == printed || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return 1;
    return 0;
}

/* The built-in defaults, field by field, and loading with no file at all. */
static void test_defaults(void)
{
    struct config cfg;
    config_defaults(&cfg);
    CHECK_STR(cfg.listen, "127.0.0.1:8025", "listen");
    CHECK_STR(cfg.admin_listen, "127.0.0.1:8026", "admin_listen");
    CHECK(cfg.max_body == 55u * 1024 * 1024, "max_body %llu", (unsigned long long)cfg.max_body);
    CHECK(cfg.clock_skew_ms == 300000, "clock_skew");
    CHECK_STR(cfg.tls_cert, "", "tls_cert");
    CHECK_STR(cfg.tls_key, "", "tls_key");
    CHECK(cfg.max_header_size == 64 * 1024, "max_header_size");
    CHECK(cfg.read_timeout_ms == 30000, "read_timeout");
    CHECK(cfg.idle_timeout_ms == 60000, "idle_timeout");
    CHECK(cfg.max_connections == 10000, "max_connections");
    CHECK_STR(cfg.upstreams[0].endpoint, "https://email.us-east-1.amazonaws.com", "endpoint");
    CHECK_STR(cfg.upstreams[0].region, "us-east-1", "region");
    CHECK_STR(cfg.upstreams[0].access_key_id, "", "access_key_id");
    CHECK_STR(cfg.upstreams[0].secret_access_key, "", "secret_access_key");
    CHECK_STR(cfg.upstreams[0].session_token, "", "session_token");
    CHECK(cfg.upstreams[0].timeout_ms == 30000, "timeout");
    CHECK(!cfg.upstreams[0].from_env, "upstream_from_env");
    CHECK_STR(cfg.redis_url, "", "url");
    CHECK_STR(cfg.redis_tls_ca_file, "", "tls_ca_file");
    CHECK_STR(cfg.data_dir, "./var", "data_dir");
    CHECK_STR(cfg.prefix, "sesgate", "prefix");
    CHECK(cfg.rate_mode == CONFIG_RATE_AUTO, "rate");
    CHECK(cfg.headroom == 0.9, "headroom");
    CHECK(cfg.max_wait_ms == 2000, "max_wait");
    CHECK(cfg.quota_refresh_ms == 60000, "quota_refresh");
    CHECK(cfg.fanout, "fanout");
    CHECK(cfg.first_recipient_sync, "first_recipient");
    CHECK(cfg.max_recipients == 10000, "max_recipients");
    CHECK(cfg.concurrency == 64, "concurrency");
    CHECK(cfg.max_attempts == 12, "max_attempts");
    CHECK(cfg.lease_ms == 60000, "lease");
    CHECK(cfg.status_ttl_ms == 7 * 86400000LL, "status_ttl");
    CHECK(cfg.sandbox_rate == 14, "sandbox rate");
    CHECK(cfg.sandbox_daily_quota == 50000, "sandbox daily_quota");
    CHECK(cfg.nclients == 0 && cfg.clients == NULL, "clients");
    CHECK_STR(cfg.path, "", "path");

    char *want = test_print(&cfg);
    /* Every section and key, in the documented order. */
    CHECK_STR(want,
              "[server]\n"
              "listen = 127.0.0.1:8025\n"
              "admin_listen = 127.0.0.1:8026\n"
              "max_body = 55m\n"
              "clock_skew = 5m\n"
              "tls_cert =\n"
              "tls_key =\n"
              "max_header_size = 64k\n"
              "read_timeout = 30s\n"
              "idle_timeout = 1m\n"
              "max_connections = 10000\n"
              "user =\n"
              "\n"
              "[upstream]\n"
              "endpoint = https://email.us-east-1.amazonaws.com\n"
              "region = us-east-1\n"
              "access_key_id =\n"
              "secret_access_key =\n"
              "session_token =\n"
              "profile =\n"
              "role_arn =\n"
              "external_id =\n"
              "session_name =\n"
              "timeout = 30s\n"
              "rate = auto\n"
              "headroom = 0.9\n"
              "daily_quota =\n"
              "senders =\n"
              "\n"
              "[redis]\n"
              "url =\n"
              "tls_ca_file =\n"
              "data_dir = ./var\n"
              "prefix = sesgate\n"
              "sentinels =\n"
              "sentinel_master =\n"
              "sentinel_password =\n"
              "wait_replicas = 0\n"
              "wait_timeout = 1s\n"
              "\n"
              "[send]\n"
              "rate = auto\n"
              "headroom = 0.9\n"
              "max_wait = 2s\n"
              "quota_refresh = 1m\n"
              "fanout = on\n"
              "first_recipient = sync\n"
              "invalid_recipients = refuse\n"
              "max_recipients = 10000\n"
              "concurrency = 64\n"
              "max_inflight_bytes = 256m\n"
              "max_attempts = 12\n"
              "lease = 1m\n"
              "status_ttl = 7d\n"
              "\n"
              "[sandbox]\n"
              "rate = 14\n"
              "daily_quota = 50000\n"
              "events = on\n"
              "\n"
              "[feedback]\n"
              "path = /sesgate/sns\n"
              "topics =\n"
              "test_trust =\n"
              "confirm = on\n"
              "index_ttl = 7d\n"
              "replay_window = 1d\n"
              "relay_attempts = 12\n"
              "relay_timeout = 10s\n"
              "\n"
              "[suppression]\n"
              "bounce = on\n"
              "complaint = on\n"
              "transient_count = 3\n"
              "transient_window = 7d\n"
              "sync_ses = off\n"
              "\n"
              "[smtp]\n"
              "listen =\n"
              "tls_listen =\n"
              "max_connections = 1000\n"
              "max_commands = 100000\n"
              "read_timeout = 5m\n"
              "idle_timeout = 5m\n",
              "defaults print");
    config_free(&cfg);

    struct buf err = BUF_INIT;
    int rc = test_load(&cfg, NULL, TEST_NOENV, &err);
    CHECK(rc == 0, "load without file: rc %d err %s", rc, buf_cstr(&err));
    CHECK_STR(cfg.upstreams[0].endpoint, "sandbox", "no credentials: the sandbox");
    free(cfg.upstreams[0].endpoint);
    cfg.upstreams[0].endpoint = xstrdup("https://email.us-east-1.amazonaws.com");
    char *got = test_print(&cfg);
    CHECK_STR(got, want, "load without file = defaults (but the endpoint)");
    CHECK_STR(cfg.path, "", "path without file");
    free(got);
    config_free(&cfg);

    rc = config_load(&cfg, "", (char *const *)TEST_NOENV, &err);
    CHECK(rc == 0 && err.len == 0, "empty path: rc %d", rc);
    config_free(&cfg);
    free(want);
    buf_free(&err);
}

/* One key set in the file, and the line config_print must then show. */
struct test_key {
    const char *file;
    const char *line;
};

/* Every key is parsed and printed back in normalized form. */
static void test_every_key(void)
{
    static const struct test_key cases[] = {
        {"[server]\nlisten = 0.0.0.0:25\n", "listen = 0.0.0.0:25"},
        {"[server]\nlisten = [::1]:8025\n", "listen = [::1]:8025"},
        {"[server]\nadmin_listen =\n", "admin_listen ="},
        {"[server]\nadmin_listen = localhost:9\n", "admin_listen = localhost:9"},
        {"[server]\nmax_body = 10485760\n", "max_body = 10m"},
        {"[server]\nmax_body = 1000\n", "max_body = 1000"},
        {"[server]\nmax_body = 1.5k\n", "max_body = 1536"},
        {"[server]\nclock_skew = 90s\n", "clock_skew = 90s"},
        {"[server]\nclock_skew = 0\n", "clock_skew = 0s"},
        {"[server]\nclock_skew = 1500ms\n", "clock_skew = 1500ms"},
        {"[server]\nmax_header_size = 1m\n", "max_header_size = 1m"},
        {"[server]\nread_timeout = 2m\n", "read_timeout = 2m"},
        {"[server]\nidle_timeout = 120\n", "idle_timeout = 2m"},
        {"[server]\nmax_connections = 5\n", "max_connections = 5"},
        {"[upstream]\nendpoint = sandbox\n", "endpoint = sandbox"},
        {"[upstream]\nendpoint = http://127.0.0.1:4566\n", "endpoint = http://127.0.0.1:4566"},
        {"[upstream]\nregion = eu-west-1\naccess_key_id = AKIAUPSTREAM0001\n"
         "secret_access_key = s3cr3t-0123456789\n",
         "endpoint = https://email.eu-west-1.amazonaws.com"},
        {"[upstream]\nregion = eu-west-1\n", "endpoint = sandbox"},
        {"[upstream]\nregion = eu-west-1\n", "region = eu-west-1"},
        {"[upstream]\nregion =\n", "region = us-east-1"},
        {"[upstream]\ntimeout = 1h\n", "timeout = 1h"},
        {"[redis]\nurl = redis://10.0.0.1:6379/2\n", "url = redis://10.0.0.1:6379/2"},
        {"[redis]\nurl = rediss://cache.example.com:6380\ntls_ca_file = /etc/ssl/redis-ca.pem\n",
         "tls_ca_file = /etc/ssl/redis-ca.pem"},
        {"[redis]\ndata_dir = /var/lib/sesgate\n", "data_dir = /var/lib/sesgate"},
        {"[redis]\nprefix = sg:prod\n", "prefix = sg:prod"},
        {"[send]\nrate = 14\n", "rate = 14"},
        {"[send]\nrate = 2.5\n", "rate = 2.5"},
        {"[send]\nrate = AUTO\n", "rate = auto"},
        {"[send]\nrate = Off\n", "rate = off"},
        {"[send]\nheadroom = 1\n", "headroom = 1"},
        {"[send]\nheadroom = 0.75\n", "headroom = 0.75"},
        {"[send]\nmax_wait = 0\n", "max_wait = 0s"},
        {"[server]\nuser = sesgate\n", "user = sesgate"},
        {"[send]\nfanout = off\n", "fanout = off"},
        {"[send]\nfanout = No\n", "fanout = off"},
        {"[send]\nfanout = 0\n", "fanout = off"},
        {"[send]\nfanout = false\n", "fanout = off"},
        {"[send]\nfanout = yes\n", "fanout = on"},
        {"[send]\nfanout = TRUE\n", "fanout = on"},
        {"[send]\nfanout = 1\n", "fanout = on"},
        {"[send]\nfirst_recipient = queue\n", "first_recipient = queue"},
        {"[send]\ninvalid_recipients = skip\n", "invalid_recipients = skip"},
        {"[send]\ninvalid_recipients = Refuse\n", "invalid_recipients = refuse"},
        {"[send]\nmax_recipients = 1000000\n", "max_recipients = 1000000"},
        {"[send]\nmax_recipients = 1\n", "max_recipients = 1"},
        {"[send]\nconcurrency = 10000\n", "concurrency = 10000"},
        {"[send]\nmax_attempts = 100\n", "max_attempts = 100"},
        {"[send]\nstatus_ttl = 36h\n", "status_ttl = 36h"},
        {"[send]\nlease = 5s\n", "lease = 5s"},
        {"[sandbox]\nrate = 0.5\n", "rate = 0.5"},
        {"[sandbox]\ndaily_quota = 0\n", "daily_quota = 0"},
        {"[client.a]\naccess_key_id = AKIDAAAAAAAAAAAA\nsecret_access_key = 0123456789abcdef\n",
         "access_key_id = AKIDAAAAAAAAAAAA"},
        {"[client.a]\naccess_key_id = AKIDAAAAAAAAAAAA\nsecret_access_key = 0123456789abcdef\n"
         "allow_actions = SendEmail,SendRawEmail  GetSendQuota\n",
         "allow_actions = SendEmail, SendRawEmail, GetSendQuota"},
        {"[client.a]\naccess_key_id = AKIDAAAAAAAAAAAA\nsecret_access_key = 0123456789abcdef\n"
         "allow_from = a@example.com, *@example.org\n",
         "allow_from = a@example.com, *@example.org"},
        {"[client.a]\naccess_key_id = AKIDAAAAAAAAAAAA\nsecret_access_key = 0123456789abcdef\n"
         "rate = 3\n",
         "rate = 3"},
        {"[client.a]\naccess_key_id = AKIDAAAAAAAAAAAA\nsecret_access_key = 0123456789abcdef\n"
         "daily_quota = 2000\n",
         "daily_quota = 2000"},
        {"[client.a]\naccess_key_id = AKIDAAAAAAAAAAAA\nsecret_access_key = 0123456789abcdef\n"
         "fanout = off\n",
         "fanout = off"},
        {"[client.a]\naccess_key_id = AKIDAAAAAAAAAAAA\nsecret_access_key = 0123456789abcdef\n",
         "fanout ="},
    };
    struct buf err = BUF_INIT;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct config cfg;
        int rc = test_load(&cfg, cases[i].file, TEST_NOENV, &err);
        CHECK(rc == 0, "case %zu: rc %d err %s", i, rc, buf_cstr(&err));
        char *got = test_print(&cfg);
        CHECK(test_has_line(got, cases[i].line), "case %zu: no line \"%s\" in:\n%s", i,
              cases[i].line, got);
        free(got);
        config_free(&cfg);
    }

    /* All keys at once, checked field by field. */
    struct config cfg;
    int rc = test_load(&cfg,
                       "[server]\n"
                       "listen = 0.0.0.0:8443\n"
                       "admin_listen =\n"
                       "max_body = 10m\n"
                       "clock_skew = 1m\n"
                       "tls_cert = /etc/sesgate/cert.pem\n"
                       "tls_key = /etc/sesgate/key.pem\n"
                       "max_header_size = 16k\n"
                       "read_timeout = 5s\n"
                       "idle_timeout = 10s\n"
                       "max_connections = 500\n"
                       "[upstream]\n"
                       "endpoint = https://ses.example.test\n"
                       "region = eu-central-1\n"
                       "access_key_id = AKIAUPSTREAMKEY00001\n"
                       "secret_access_key = upstream/secret+key0123456789\n"
                       "session_token = tokentokentoken\n"
                       "timeout = 10s\n"
                       "[redis]\n"
                       "url = redis://redis:6379\n"
                       "data_dir = /tmp/sg\n"
                       "prefix = sg\n"
                       "[send]\n"
                       "rate = 28\n"
                       "headroom = 0.5\n"
                       "max_wait = 500ms\n"
                       "fanout = off\n"
                       "first_recipient = queue\n"
                       "max_recipients = 50\n"
                       "concurrency = 8\n"
                       "max_attempts = 3\n"
                       "status_ttl = 1d\n"
                       "[sandbox]\n"
                       "rate = 1\n"
                       "daily_quota = 200\n"
                       "[client.app-1]\n"
                       "access_key_id = SGAPP1KEY0000000001\n"
                       "secret_access_key = app1secretapp1secret\n"
                       "allow_actions = SendEmail SendRawEmail\n"
                       "allow_from = news@example.com\n"
                       "rate = 2.5\n"
                       "daily_quota = 1000\n"
                       "fanout = on\n"
                       "[client.b_2]\n"
                       "access_key_id = SGB2KEY000000000002\n"
                       "secret_access_key = b2secretb2secretb2\n",
                       TEST_NOENV, &err);
    CHECK(rc == 0, "all keys: rc %d err %s", rc, buf_cstr(&err));
    CHECK_STR(cfg.listen, "0.0.0.0:8443", "listen");
    CHECK_STR(cfg.admin_listen, "", "admin_listen");
    CHECK(cfg.max_body == 10u * 1024 * 1024, "max_body");
    CHECK(cfg.clock_skew_ms == 60000, "clock_skew");
    CHECK_STR(cfg.tls_cert, "/etc/sesgate/cert.pem", "tls_cert");
    CHECK_STR(cfg.tls_key, "/etc/sesgate/key.pem", "tls_key");
    CHECK(cfg.max_header_size == 16384, "max_header_size");
    CHECK(cfg.read_timeout_ms == 5000, "read_timeout");
    CHECK(cfg.idle_timeout_ms == 10000, "idle_timeout");
    CHECK(cfg.max_connections == 500, "max_connections");
    CHECK_STR(cfg.upstreams[0].endpoint, "https://ses.example.test", "endpoint");
    CHECK_STR(cfg.upstreams[0].region, "eu-central-1", "region");
    CHECK_STR(cfg.upstreams[0].access_key_id, "AKIAUPSTREAMKEY00001", "access_key_id");
    CHECK_STR(cfg.upstreams[0].secret_access_key, "upstream/secret+key0123456789",
              "secret_access_key");
    CHECK_STR(cfg.upstreams[0].session_token, "tokentokentoken", "session_token");
    CHECK(cfg.upstreams[0].timeout_ms == 10000, "timeout");
    CHECK(!cfg.upstreams[0].from_env, "upstream_from_env");
    CHECK_STR(cfg.redis_url, "redis://redis:6379", "url");
    CHECK_STR(cfg.data_dir, "/tmp/sg", "data_dir");
    CHECK_STR(cfg.prefix, "sg", "prefix");
    CHECK(cfg.rate_mode == CONFIG_RATE_FIXED && cfg.rate == 28, "rate");
    CHECK(cfg.headroom == 0.5, "headroom");
    CHECK(cfg.max_wait_ms == 500, "max_wait");
    CHECK(!cfg.fanout, "fanout");
    CHECK(!cfg.first_recipient_sync, "first_recipient");
    CHECK(cfg.max_recipients == 50, "max_recipients");
    CHECK(cfg.concurrency == 8, "concurrency");
    CHECK(cfg.max_attempts == 3, "max_attempts");
    CHECK(cfg.status_ttl_ms == 86400000, "status_ttl");
    CHECK(cfg.sandbox_rate == 1, "sandbox rate");
    CHECK(cfg.sandbox_daily_quota == 200, "sandbox daily_quota");
    CHECK_STR(cfg.path, test_path, "path");
    CHECK(cfg.nclients == 2, "nclients %zu", cfg.nclients);
    if (cfg.nclients == 2) {
        const struct config_client *a = &cfg.clients[0], *b = &cfg.clients[1];
        CHECK_STR(a->name, "app-1", "client name");
        CHECK_STR(a->access_key_id, "SGAPP1KEY0000000001", "client key id");
        CHECK_STR(a->secret_access_key, "app1secretapp1secret", "client secret");
        CHECK(a->n_allow_actions == 2, "n_allow_actions");
        if (a->n_allow_actions == 2) {
            CHECK_STR(a->allow_actions[0], "SendEmail", "action 0");
            CHECK_STR(a->allow_actions[1], "SendRawEmail", "action 1");
        }
        CHECK(a->n_allow_from == 1, "n_allow_from");
        if (a->n_allow_from == 1)
            CHECK_STR(a->allow_from[0], "news@example.com", "allow_from 0");
        CHECK(a->rate == 2.5, "client rate");
        CHECK(a->daily_quota == 1000, "client daily_quota");
        CHECK(a->fanout == 1, "client fanout");
        CHECK_STR(b->name, "b_2", "client 2 name");
        CHECK(b->n_allow_actions == 1 && strcmp(b->allow_actions[0], "*") == 0,
              "default allow_actions");
        CHECK(b->n_allow_from == 1 && strcmp(b->allow_from[0], "*") == 0, "default allow_from");
        CHECK(b->rate == 0 && b->daily_quota == 0 && b->fanout == -1, "client defaults");
    }
    config_free(&cfg);
    buf_free(&err);
}

/* A file, an environment, and the exact error text ('@' starting a line
 * stands for the file's path). */
struct test_err {
    const char *file;
    const char *env[4];
    const char *want;
};

#define CL "[client.a]\naccess_key_id = AKIDAAAAAAAAAAAA\nsecret_access_key = 0123456789abcdef\n"

/* Every error, with its exact "file:line: reason". */
static void test_errors(void)
{
    static const struct test_err cases[] = {
        {"[server]\nlisen = 1.2.3.4:5\n", {NULL}, "@:2: unknown key 'lisen' in [server]\n"},
        {"; top\n[servers]\nlisten = x\n", {NULL}, "@:2: unknown section [servers]\n"},
        {"[client]\nrate = 1\n", {NULL}, "@:1: unknown section [client]\n"},
        {"listen = 1.2.3.4:5\n", {NULL}, "@:1: key 'listen' outside any section\n"},
        {"[server]\nclock_skew = 5 minutes\n",
         {NULL},
         "@:2: [server] clock_skew: bad duration '5 minutes' (want a number with unit ms, s, m, h "
         "or d)\n"},
        {"[send]\nmax_wait = -1s\n",
         {NULL},
         "@:2: [send] max_wait: bad duration '-1s' (want a number with unit ms, s, m, h or d)\n"},
        {"[server]\nmax_body = 5q\n",
         {NULL},
         "@:2: [server] max_body: bad size '5q' (want a number with unit b, k, m or g)\n"},
        {"[server]\nmax_body = 0\n",
         {NULL},
         "@:2: [server] max_body: '0' is out of range (want at least 1 byte)\n"},
        {"[server]\nread_timeout = 0s\n",
         {NULL},
         "@:2: [server] read_timeout: '0s' is out of range (want at least 1ms)\n"},
        {"[redis]\nsentinels = 10.0.0.1:26379\n",
         {NULL},
         "@:2: [redis] sentinels is set but sentinel_master is not\n"},
        {"[redis]\nsentinels = 10.0.0.1:26379, sentinel-b\nsentinel_master = m\n",
         {NULL},
         "@:2: [redis] sentinels: 'sentinel-b' is not host:port\n"},
        {"[redis]\nsentinels = [::1]:26379,::1:26379\nsentinel_master = m\n",
         {NULL},
         "@:2: [redis] sentinels: '::1:26379' is not host:port\n"},
        {"[redis]\nsentinels = a:0\nsentinel_master = m\n",
         {NULL},
         "@:2: [redis] sentinels: 'a:0' is not host:port\n"},
        {"[redis]\nsentinel_master = m\n",
         {NULL},
         "@:2: [redis] sentinel_master is set but sentinels is not\n"},
        {"[redis]\nsentinels = a:1\nsentinel_master = m\nurl = unix:///x.sock\n",
         {NULL},
         "@:4: [redis] url: with sentinels, only a redis:// URL (its user, password and "
         "database; the host comes from the Sentinels)\n"},
        {"[redis]\nsentinels = a:1\nsentinel_master = m\nurl = rediss://:pw@/1\n",
         {NULL},
         "@:4: [redis] url: TLS (rediss://) with sentinels is not supported; use redis:// "
         "(docs/DEPLOYMENT.md)\n"},
        {"[redis]\nsentinels = a:1\nsentinel_master = m\ntls_ca_file = /etc/ssl/ca.pem\n",
         {NULL},
         "@:4: [redis] tls_ca_file: TLS with sentinels is not supported\n"},
        {"[redis]\nwait_replicas = 1\n",
         {NULL},
         "@:2: [redis] wait_replicas needs a Redis with replicas ([redis] url or sentinels); the "
         "managed redis-server has none\n"},
        {"[redis]\nwait_replicas = 101\n",
         {NULL},
         "@:2: [redis] wait_replicas: '101' is out of range (want 0 to 100)\n"},
        {"[send]\nconcurrency = lots\n",
         {NULL},
         "@:2: [send] concurrency: bad number 'lots' (want a whole number)\n"},
        {"[send]\nconcurrency = 1.5\n",
         {NULL},
         "@:2: [send] concurrency: bad number '1.5' (want a whole number)\n"},
        {"[send]\nconcurrency = 0\n",
         {NULL},
         "@:2: [send] concurrency: '0' is out of range (want 1 to 10000)\n"},
        {"[send]\nconcurrency = 10001\n",
         {NULL},
         "@:2: [send] concurrency: '10001' is out of range (want 1 to 10000)\n"},
        {"[send]\nmax_recipients = 1000001\n",
         {NULL},
         "@:2: [send] max_recipients: '1000001' is out of range (want 1 to 1000000)\n"},
        {"[send]\nmax_attempts = 101\n",
         {NULL},
         "@:2: [send] max_attempts: '101' is out of range (want 1 to 100)\n"},
        {"[server]\nmax_connections = 0\n",
         {NULL},
         "@:2: [server] max_connections: '0' is out of range (want 1 to 1000000)\n"},
        {"[send]\nheadroom = 0\n",
         {NULL},
         "@:2: [send] headroom: '0' is out of range (want > 0 and <= 1)\n"},
        {"[send]\nheadroom = 1.01\n",
         {NULL},
         "@:2: [send] headroom: '1.01' is out of range (want > 0 and <= 1)\n"},
        {"[send]\nheadroom = nan\n", {NULL}, "@:2: [send] headroom: bad number 'nan'\n"},
        {"[send]\nrate = fast\n",
         {NULL},
         "@:2: [send] rate: bad rate 'fast' (want auto, off or a number > 0)\n"},
        {"[send]\nrate = 0\n", {NULL}, "@:2: [send] rate: '0' is out of range (want > 0)\n"},
        {"[send]\nfanout = maybe\n",
         {NULL},
         "@:2: [send] fanout: bad boolean 'maybe' (want on/off, true/false, yes/no or 1/0)\n"},
        {"[send]\nfirst_recipient = later\n",
         {NULL},
         "@:2: [send] first_recipient: bad value 'later' (want sync or queue)\n"},
        {"[send]\ninvalid_recipients = drop\n",
         {NULL},
         "@:2: [send] invalid_recipients: bad value 'drop' (want skip or refuse)\n"},
        {"[sandbox]\nrate = 0\n", {NULL}, "@:2: [sandbox] rate: '0' is out of range (want > 0)\n"},
        {"[sandbox]\ndaily_quota = -1\n",
         {NULL},
         "@:2: [sandbox] daily_quota: '-1' is out of range (want at least 0)\n"},
        {"[server]\nlisten = 8025\n",
         {NULL},
         "@:2: [server] listen: bad address '8025' (want host:port)\n"},
        {"[server]\nlisten =\n", {NULL}, "@:2: [server] listen: bad address '' (want host:port)\n"},
        {"[server]\nadmin_listen = localhost:70000\n",
         {NULL},
         "@:2: [server] admin_listen: bad address 'localhost:70000' (want host:port)\n"},
        {"[upstream]\nendpoint = email.us-east-1.amazonaws.com\n",
         {NULL},
         "@:2: [upstream] endpoint: bad endpoint 'email.us-east-1.amazonaws.com' (want an "
         "http:// or https:// URL, or sandbox)\n"},
        {"[upstream]\nregion = US East\n",
         {NULL},
         "@:2: [upstream] region: bad region 'US East' (want a name such as us-east-1)\n"},
        {"[redis]\nprefix = {x}\n",
         {NULL},
         "@:2: [redis] prefix: bad prefix '{x}' (want letters, digits, '_', '.', ':' or '-')\n"},
        {"[redis]\ndata_dir =\n", {NULL}, "@:2: [redis] data_dir: must not be empty\n"},
        {"[server]\nlisten = 1.2.3.4:5\n\nlisten = 1.2.3.4:6\n",
         {NULL},
         "@:4: duplicate key 'listen' in [server] (first on line 2)\n"},
        {"[server]\nlisten = 1.2.3.4:5\n[send]\n[server]\nlisten = 1.2.3.4:6\n",
         {NULL},
         "@:5: duplicate key 'listen' in [server] (first on line 2)\n"},
        {CL "rate = 1\nrate = 2\n",
         {NULL},
         "@:5: duplicate key 'rate' in [client.a] (first on line 4)\n"},
        {CL "\n" CL, {NULL}, "@:5: duplicate section [client.a] (first on line 1)\n"},
        {"[client.a b]\naccess_key_id = X\n",
         {NULL},
         "@:1: invalid client name 'a b' (want letters, digits, '_' or '-')\n"},
        {"[client.]\n", {NULL}, "@:1: invalid client name '' (want letters, digits, '_' or '-')\n"},
        {CL "colour = blue\n", {NULL}, "@:4: unknown key 'colour' in [client.a]\n"},
        {CL "rate = 0\n", {NULL}, "@:4: [client.a] rate: '0' is out of range (want > 0)\n"},
        {CL "daily_quota = -5\n",
         {NULL},
         "@:4: [client.a] daily_quota: '-5' is out of range (want at least 0)\n"},
        {CL "fanout = sometimes\n",
         {NULL},
         "@:4: [client.a] fanout: bad boolean 'sometimes' (want on/off, true/false, yes/no or "
         "1/0)\n"},
        {CL "allow_actions = ,\n",
         {NULL},
         "@:4: [client.a] allow_actions: empty list (use * to allow all)\n"},
        {CL "allow_actions = Send-Email\n",
         {NULL},
         "@:4: [client.a] allow_actions: bad action 'Send-Email' (want an action name or *)\n"},
        {CL "allow_from = example.com\n",
         {NULL},
         "@:4: [client.a] allow_from: bad sender 'example.com' (want addr@domain, *@domain or "
         "*)\n"},
        {CL "allow_from = a*@example.com\n",
         {NULL},
         "@:4: [client.a] allow_from: bad sender 'a*@example.com' (want addr@domain, *@domain "
         "or *)\n"},
        {"\n[client.a]\nsecret_access_key = 0123456789abcdef\n",
         {NULL},
         "@:2: [client.a] missing access_key_id\n"},
        {"[client.a]\naccess_key_id = AKIDAAAAAAAAAAAA\n",
         {NULL},
         "@:1: [client.a] missing secret_access_key\n"},
        {"[client.a]\naccess_key_id =\nsecret_access_key =\n",
         {NULL},
         "@:1: [client.a] missing access_key_id\n@:1: [client.a] missing secret_access_key\n"},
        {"[client.a]\naccess_key_id = akidaaaaaaaaaaaa\nsecret_access_key = 0123456789abcdef\n",
         {NULL},
         "@:1: [client.a] access_key_id 'akidaaaaaaaaaaaa' is not 16 to 128 characters A-Z, "
         "0-9\n"},
        {"[client.a]\naccess_key_id = AKID\nsecret_access_key = 0123456789abcdef\n",
         {NULL},
         "@:1: [client.a] access_key_id 'AKID' is not 16 to 128 characters A-Z, 0-9\n"},
        {"[client.a]\naccess_key_id = AKIDAAAAAAAAAAAA\nsecret_access_key = 0123456789abcde\n",
         {NULL},
         "@:1: [client.a] secret_access_key is shorter than 16 characters\n"},
        {CL "[client.b]\naccess_key_id = AKIDAAAAAAAAAAAA\nsecret_access_key = fedcba9876543210\n",
         {NULL},
         "@:4: [client.b] access_key_id AKIDAAAAAAAAAAAA is also used by [client.a] (line 1)\n"},
        {"[server]\ntls_cert = /c.pem\n",
         {NULL},
         "@:2: [server] tls_cert is set but tls_key is not\n"},
        {"[server]\n\ntls_key = /k.pem\n",
         {NULL},
         "@:3: [server] tls_key is set but tls_cert is not\n"},
        {"[upstream]\naccess_key_id = AKIAUPSTREAM0001\n",
         {NULL},
         "@:2: [upstream] access_key_id is set but secret_access_key is not\n"},
        {"[upstream]\nsecret_access_key = abcdefabcdef\n",
         {NULL},
         "@:2: [upstream] secret_access_key is set but access_key_id is not\n"},
        {"[upstream]\nendpoint = sandbox\naccess_key_id = AKIAUPSTREAM0001\n", {NULL}, ""},
        {"[server]\nlisten\n", {NULL}, "@:2: expected 'key = value'\n"},
        {"[server]\nlis\x1bten = 1\n", {NULL}, "@:2: unknown key 'lis?ten' in [server]\n"},
        {"[server]\nlisten = a\x01:1\n",
         {NULL},
         "@:2: [server] listen: contains a control character\n"},
        {"[send]\nrate = 1e400\n",
         {NULL},
         "@:2: [send] rate: bad rate '1e400' (want auto, off or a number > 0)\n"},
        {"[send]\nrate = 0x10\n",
         {NULL},
         "@:2: [send] rate: bad rate '0x10' (want auto, off or a number > 0)\n"},
        {"[server\nlisten = 1.2.3.4:5\n", {NULL}, "@:1: section header without ']'\n"},
        {"[server] extra\n", {NULL}, "@:1: unexpected text after section header\n"},
        {"[server]\nlisen = 1\nmax_body = x\n\n[nope]\nfoo = 1\n[send]\nrate = 0\nwhat\n",
         {NULL},
         "@:2: unknown key 'lisen' in [server]\n"
         "@:3: [server] max_body: bad size 'x' (want a number with unit b, k, m or g)\n"
         "@:5: unknown section [nope]\n"
         "@:8: [send] rate: '0' is out of range (want > 0)\n"
         "@:9: expected 'key = value'\n"},
        {"[server]\n", {"SESGATE_FOO=1", NULL}, "env SESGATE_FOO: unknown setting\n"},
        {"[server]\n",
         {"SESGATE_SERVER_LISEN=1", NULL},
         "env SESGATE_SERVER_LISEN: unknown setting\n"},
        {CL, {"SESGATE_CLIENT_B_RATE=1", NULL}, "env SESGATE_CLIENT_B_RATE: unknown setting\n"},
        {CL, {"SESGATE_CLIENT_A_COLOUR=1", NULL}, "env SESGATE_CLIENT_A_COLOUR: unknown setting\n"},
        {"[server]\n",
         {"SESGATE_SERVER_MAX_BODY=lots", NULL},
         "env SESGATE_SERVER_MAX_BODY: bad size 'lots' (want a number with unit b, k, m or g)\n"},
        {CL,
         {"SESGATE_CLIENT_A_ACCESS_KEY_ID=short", NULL},
         "env SESGATE_CLIENT_A_ACCESS_KEY_ID: [client.a] access_key_id 'short' is not 16 to 128 "
         "characters A-Z, 0-9\n"},
        {"[client.a-b]\naccess_key_id = AKIDAAAAAAAAAAAA\nsecret_access_key = 0123456789abcdef\n"
         "[client.A_B]\naccess_key_id = AKIDBBBBBBBBBBBB\nsecret_access_key = 0123456789abcdef\n",
         {"SESGATE_CLIENT_A_B_RATE=1", NULL},
         "env SESGATE_CLIENT_A_B_RATE: ambiguous: matches [client.a-b] and [client.A_B]\n"},
        {"[server]\n",
         {"AWS_ACCESS_KEY_ID=AKIAENV000000001", NULL},
         "env AWS_SECRET_ACCESS_KEY: missing\n"},
        {"[server]\n",
         {"AWS_ACCESS_KEY_ID=AKIAENV000000001", "AWS_SECRET_ACCESS_KEY=", NULL},
         "env AWS_SECRET_ACCESS_KEY: missing\n"},
        {"[server]\n",
         {"AWS_REGION=Not A Region", NULL},
         "env AWS_REGION: bad region 'Not A Region' (want a name such as us-east-1)\n"},
        {"[server]\nlisten = 1.2.3.4:5\n",
         {"SESGATE_SERVER_TLS_CERT=/c.pem", NULL},
         "env SESGATE_SERVER_TLS_CERT: [server] tls_cert is set but tls_key is not\n"},
        {"[upstream.eu]\nregion = eu-west-1\n[upstream.eu]\n",
         {NULL},
         "@:3: duplicate section [upstream.eu] (first on line 1)\n"},
        {"[upstream.e u]\n",
         {NULL},
         "@:1: invalid upstream name 'e u' (want letters, digits, '_' or '-')\n"},
        {"[upstream.default]\n",
         {NULL},
         "@:1: [upstream.default]: the name default is [upstream]'s\n"},
        {"[upstream.eu]\nendpoint = sandbox\n",
         {NULL},
         "@:2: [upstream.eu] endpoint: only [upstream] can be the sandbox\n"},
        {"[upstream.eu]\nrate = fast\n",
         {NULL},
         "@:2: [upstream.eu] rate: bad rate 'fast' (want auto, off or a number > 0)\n"},
        {"[upstream.eu]\nregoin = eu-west-1\n",
         {NULL},
         "@:2: unknown key 'regoin' in [upstream.eu]\n"},
        {"[upstream.eu]\naccess_key_id = AKIAEU0000000001\n",
         {NULL},
         "@:2: [upstream.eu] access_key_id is set but secret_access_key is not\n"},
        {"[upstream]\nrole_arn = role/x\n",
         {NULL},
         "@:2: [upstream] role_arn 'role/x' is not an ARN\n"},
        {"[upstream.eu]\n[client.a]\naccess_key_id = AKIDAAAAAAAAAAAA\n"
         "secret_access_key = 0123456789abcdef\nupstream = us\n",
         {NULL},
         "@:2: [client.a] upstream 'us' is not an upstream section\n"},
        {"[upstream.eu]\n",
         {"SESGATE_UPSTREAM_EU_RATE=x", NULL},
         "env SESGATE_UPSTREAM_EU_RATE: bad rate 'x' (want auto, off or a number > 0)\n"},
    };
    struct buf err = BUF_INIT;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct config cfg;
        int rc = test_load(&cfg, cases[i].file, cases[i].env, &err);
        char *want = test_expand(cases[i].want);
        CHECK(rc == (*want ? -1 : 0), "case %zu: rc %d", i, rc);
        CHECK_STR(buf_cstr(&err), want, "error text");
        free(want);
        config_free(&cfg);
    }

    /* A file that cannot be read. */
    struct config cfg;
    char path[160];
    snprintf(path, sizeof path, "%s/missing.ini", test_dir);
    buf_reset(&err);
    int rc = config_load(&cfg, path, (char *const *)TEST_NOENV, &err);
    struct buf want = BUF_INIT;
    buf_printf(&want, "%s: cannot read: %s\n", path, strerror(ENOENT));
    CHECK(rc == -1, "missing file rc %d", rc);
    CHECK_STR(buf_cstr(&err), buf_cstr(&want), "missing file");
    config_free(&cfg);
    buf_reset(&want);
    buf_reset(&err);
    rc = config_load(&cfg, test_dir, (char *const *)TEST_NOENV, &err);
    buf_printf(&want, "%s: cannot read: %s\n", test_dir, strerror(EISDIR));
    CHECK(rc == -1, "directory rc %d", rc);
    CHECK_STR(buf_cstr(&err), buf_cstr(&want), "directory");
    config_free(&cfg);
    buf_free(&want);
    buf_free(&err);
}

/* A file, an environment, and lines the printed configuration must have. */
struct test_env {
    const char *file;
    const char *env[6];
    const char *lines[3];
};

/* SESGATE_* overrides, AWS_* credentials and regions. */
static void test_env(void)
{
    static const struct test_env cases[] = {
        {"[server]\nlisten = 1.2.3.4:5\n",
         {"SESGATE_SERVER_LISTEN=0.0.0.0:9000", NULL},
         {"listen = 0.0.0.0:9000"}},
        {NULL, {"SESGATE_SEND_MAX_RECIPIENTS=20", NULL}, {"max_recipients = 20"}},
        {NULL, {"SESGATE_SEND_MAX_RECIPIENTS= 30 ", NULL}, {"max_recipients = 30"}},
        {NULL, {"sesgate_send_max_recipients=20", NULL}, {"max_recipients = 10000"}},
        {NULL, {"SESGATE_Send_Max_Recipients=40", NULL}, {"max_recipients = 40"}},
        {NULL, {"SESGATE_CONFIG=/etc/sesgate.ini", NULL}, {"listen = 127.0.0.1:8025"}},
        {NULL,
         {"SESGATE_SERVER_ADMIN_LISTEN=", "SESGATE_SANDBOX_RATE=3", NULL},
         {"admin_listen =", "rate = 3"}},
        {NULL, {"SESGATE_SEND_RATE=7", "SESGATE_SEND_RATE=8", NULL}, {"rate = 7"}},
        {"[send]\nfanout = off\n", {"SESGATE_SEND_FANOUT=on", NULL}, {"fanout = on"}},
        {"[client.my-app]\naccess_key_id = AKIDAAAAAAAAAAAA\nsecret_access_key = "
         "0123456789abcdef\n",
         {"SESGATE_CLIENT_MY_APP_RATE=5", "SESGATE_CLIENT_MY_APP_ALLOW_FROM=*@x.org", NULL},
         {"rate = 5", "allow_from = *@x.org"}},
        {"[client.Web]\naccess_key_id = AKIDAAAAAAAAAAAA\nsecret_access_key = 0123456789abcdef\n",
         {"SESGATE_CLIENT_WEB_ACCESS_KEY_ID=AKIDBBBBBBBBBBBB", NULL},
         {"access_key_id = AKIDBBBBBBBBBBBB"}},
        {"[client.web]\naccess_key_id = AKIDAAAAAAAAAAAA\nsecret_access_key = 0123456789abcdef\n"
         "fanout = off\n",
         {"SESGATE_CLIENT_web_FANOUT=", NULL},
         {"fanout ="}},
        {"[upstream]\nregion = eu-west-1\n",
         {"SESGATE_UPSTREAM_REGION=ap-south-1", "AWS_ACCESS_KEY_ID=AKIAUPSTREAM0001",
          "AWS_SECRET_ACCESS_KEY=upstream-secret-0123456789", NULL},
         {"region = ap-south-1", "endpoint = https://email.ap-south-1.amazonaws.com"}},
        {NULL,
         {"AWS_REGION=eu-west-2", "AWS_DEFAULT_REGION=eu-west-3",
          "AWS_ACCESS_KEY_ID=AKIAUPSTREAM0001", "AWS_SECRET_ACCESS_KEY=upstream-secret-0123456789",
          NULL},
         {"region = eu-west-2", "endpoint = https://email.eu-west-2.amazonaws.com"}},
        {NULL,
         {"AWS_REGION=", "AWS_DEFAULT_REGION=eu-west-3", "AWS_ACCESS_KEY_ID=AKIAUPSTREAM0001",
          "AWS_SECRET_ACCESS_KEY=upstream-secret-0123456789", NULL},
         {"region = eu-west-3", "endpoint = https://email.eu-west-3.amazonaws.com"}},
        {"[upstream]\nregion = sa-east-1\n",
         {"AWS_REGION=eu-west-2", "AWS_ACCESS_KEY_ID=AKIAUPSTREAM0001",
          "AWS_SECRET_ACCESS_KEY=upstream-secret-0123456789", NULL},
         {"region = sa-east-1", "endpoint = https://email.sa-east-1.amazonaws.com"}},
        {"[upstream]\nregion =\n",
         {"AWS_REGION=eu-west-2", "AWS_ACCESS_KEY_ID=AKIAUPSTREAM0001",
          "AWS_SECRET_ACCESS_KEY=upstream-secret-0123456789", NULL},
         {"region = eu-west-2", "endpoint = https://email.eu-west-2.amazonaws.com"}},
        {NULL,
         {"SESGATE_UPSTREAM_REGION=ca-central-1", "AWS_REGION=eu-west-2",
          "AWS_ACCESS_KEY_ID=AKIAUPSTREAM0001", "AWS_SECRET_ACCESS_KEY=upstream-secret-0123456789",
          NULL},
         {"region = ca-central-1", "endpoint = https://email.ca-central-1.amazonaws.com"}},
        {"[upstream]\nendpoint = http://localhost:4566\n",
         {"AWS_REGION=eu-west-2", NULL},
         {"region = eu-west-2", "endpoint = http://localhost:4566"}},
        {"[upstream]\nendpoint = sandbox\n",
         {"SESGATE_UPSTREAM_ENDPOINT=", "AWS_ACCESS_KEY_ID=AKIAUPSTREAM0001",
          "AWS_SECRET_ACCESS_KEY=upstream-secret-0123456789", NULL},
         {"endpoint = https://email.us-east-1.amazonaws.com"}},
        /* No endpoint and no upstream credentials: the built-in sandbox. */
        {"[upstream]\nendpoint = sandbox\n",
         {"SESGATE_UPSTREAM_ENDPOINT=", NULL},
         {"endpoint = sandbox"}},
        {NULL, {"AWS_REGION=eu-west-2", NULL}, {"region = eu-west-2", "endpoint = sandbox"}},
        {"[upstream]\nregion = eu-west-1\n", {NULL}, {"endpoint = sandbox"}},
        {"[upstream]\naccess_key_id = AKIAUPSTREAM0001\nsecret_access_key = s3cr3t-0123456789\n",
         {NULL},
         {"endpoint = https://email.us-east-1.amazonaws.com"}},
    };
    struct buf err = BUF_INIT;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct config cfg;
        int rc = test_load(&cfg, cases[i].file, cases[i].env, &err);
        CHECK(rc == 0, "case %zu: rc %d err %s", i, rc, buf_cstr(&err));
        char *got = test_print(&cfg);
        for (size_t j = 0; j < 3 && cases[i].lines[j]; j++)
            CHECK(test_has_line(got, cases[i].lines[j]), "case %zu: no line \"%s\" in:\n%s", i,
                  cases[i].lines[j], got);
        free(got);
        config_free(&cfg);
    }
    buf_free(&err);
}

/* Upstream credentials: AWS_* first, else the file and SESGATE_UPSTREAM_*. */
struct test_aws {
    const char *file;
    const char *env[5];
    const char *id, *secret, *token;
    bool from_env;
};

/* AWS_* precedence over [upstream] and SESGATE_UPSTREAM_*. */
static void test_aws(void)
{
    static const char file[] = "[upstream]\naccess_key_id = AKIAFILE00000001\n"
                               "secret_access_key = filesecretfilesecret\n"
                               "session_token = filetokenfiletoken\n";
    static const struct test_aws cases[] = {
        {file, {NULL}, "AKIAFILE00000001", "filesecretfilesecret", "filetokenfiletoken", false},
        {file,
         {"AWS_ACCESS_KEY_ID=AKIAENV000000001", "AWS_SECRET_ACCESS_KEY=envsecretenvsecret",
          "AWS_SESSION_TOKEN=envtokenenvtoken", NULL},
         "AKIAENV000000001",
         "envsecretenvsecret",
         "envtokenenvtoken",
         true},
        {file,
         {"AWS_ACCESS_KEY_ID=AKIAENV000000001", "AWS_SECRET_ACCESS_KEY=envsecretenvsecret", NULL},
         "AKIAENV000000001",
         "envsecretenvsecret",
         "",
         true},
        {file,
         {"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=envsecretenvsecret", NULL},
         "AKIAFILE00000001",
         "filesecretfilesecret",
         "filetokenfiletoken",
         false},
        {file,
         {"SESGATE_UPSTREAM_ACCESS_KEY_ID=AKIASESGATE00001",
          "SESGATE_UPSTREAM_SECRET_ACCESS_KEY=sgsecretsgsecret", NULL},
         "AKIASESGATE00001",
         "sgsecretsgsecret",
         "filetokenfiletoken",
         false},
        {file,
         {"SESGATE_UPSTREAM_ACCESS_KEY_ID=AKIASESGATE00001", "AWS_ACCESS_KEY_ID=AKIAENV000000001",
          "AWS_SECRET_ACCESS_KEY=envsecretenvsecret", NULL},
         "AKIAENV000000001",
         "envsecretenvsecret",
         "",
         true},
        {NULL,
         {"AWS_ACCESS_KEY_ID=AKIAENV000000001", "AWS_SECRET_ACCESS_KEY=envsecretenvsecret", NULL},
         "AKIAENV000000001",
         "envsecretenvsecret",
         "",
         true},
    };
    struct buf err = BUF_INIT;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct config cfg;
        int rc = test_load(&cfg, cases[i].file, cases[i].env, &err);
        CHECK(rc == 0, "case %zu: rc %d err %s", i, rc, buf_cstr(&err));
        CHECK_STR(cfg.upstreams[0].access_key_id, cases[i].id, "access_key_id");
        CHECK_STR(cfg.upstreams[0].secret_access_key, cases[i].secret, "secret_access_key");
        CHECK_STR(cfg.upstreams[0].session_token, cases[i].token, "session_token");
        CHECK(cfg.upstreams[0].from_env == cases[i].from_env, "case %zu: upstream_from_env", i);
        config_free(&cfg);
    }
    buf_free(&err);
}

/* A secret and how config_print must show it. */
struct test_mask {
    const char *secret;
    const char *shown;
};

/* Secrets are masked everywhere config_print shows them. */
static void test_masking(void)
{
    static const struct test_mask cases[] = {
        {"", ""},
        {"abc", "****"},
        {"abcdefg", "****"},
        {"abcdefgh", "abcd****"},
        {"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJal****"},
    };
    struct buf err = BUF_INIT;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct config cfg;
        const char *env[] = {NULL, NULL};
        char var[128];
        snprintf(var, sizeof var, "SESGATE_UPSTREAM_SESSION_TOKEN=%s", cases[i].secret);
        env[0] = var;
        int rc = test_load(&cfg, NULL, env, &err);
        CHECK(rc == 0, "case %zu: rc %d err %s", i, rc, buf_cstr(&err));
        char *got = test_print(&cfg);
        char line[128];
        snprintf(line, sizeof line, "session_token%s%s", *cases[i].shown ? " = " : " =",
                 cases[i].shown);
        CHECK(test_has_line(got, line), "case %zu: no line \"%s\" in:\n%s", i, line, got);
        if (strlen(cases[i].secret) >= 5)
            CHECK(strstr(got, cases[i].secret) == NULL, "case %zu: secret printed", i);
        free(got);
        config_free(&cfg);
    }

    /* Every secret at once: upstream secret and token, each client's secret. */
    static const char *const secrets[] = {"UpStreamSecretValue0123456789",
                                          "SessionTokenValue987654", "ClientOneSecretValue42",
                                          "ClientTwoSecretValue43"};
    struct config cfg;
    char file[1024];
    snprintf(file, sizeof file,
             "[upstream]\naccess_key_id = AKIAUPSTREAM0001\nsecret_access_key = %s\n"
             "session_token = %s\n"
             "[client.one]\naccess_key_id = AKIDONE000000001\nsecret_access_key = %s\n"
             "[client.two]\naccess_key_id = AKIDTWO000000002\nsecret_access_key = %s\n",
             secrets[0], secrets[1], secrets[2], secrets[3]);
    int rc = test_load(&cfg, file, TEST_NOENV, &err);
    CHECK(rc == 0, "secrets: rc %d err %s", rc, buf_cstr(&err));
    char *got = test_print(&cfg);
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        CHECK(strstr(got, secrets[i]) == NULL, "secret %zu printed:\n%s", i, got);
        char masked[16];
        snprintf(masked, sizeof masked, "%.4s****", secrets[i]);
        CHECK(strstr(got, masked) != NULL, "secret %zu not shown masked:\n%s", i, got);
    }
    CHECK(test_has_line(got, "access_key_id = AKIAUPSTREAM0001"), "upstream key id shown");
    CHECK(test_has_line(got, "access_key_id = AKIDONE000000001"), "client key id shown");
    CHECK(test_has_line(got, "[client.two]"), "client section shown");
    free(got);
    config_free(&cfg);

    /* Credentials from AWS_* are masked too and the source is noted. */
    const char *env[] = {"AWS_ACCESS_KEY_ID=AKIAENV000000001",
                         "AWS_SECRET_ACCESS_KEY=EnvSecretValue123456",
                         "AWS_SESSION_TOKEN=EnvTokenValue123456", NULL};
    rc = test_load(&cfg, NULL, env, &err);
    CHECK(rc == 0, "aws env: rc %d", rc);
    got = test_print(&cfg);
    CHECK(strstr(got, "EnvSecretValue123456") == NULL && strstr(got, "EnvTokenValue123456") == NULL,
          "env secret printed:\n%s", got);
    CHECK(test_has_line(got, "secret_access_key = EnvS****"), "env secret masked");
    CHECK(strstr(got, "; credentials from AWS_ACCESS_KEY_ID") != NULL, "env source noted");
    free(got);
    config_free(&cfg);
    buf_free(&err);
}

/* A file in some syntax variant and lines the printed configuration must have. */
struct test_syntax {
    const char *file;
    const char *lines[3];
    const char *err;
};

/* CRLF line ends, ';' and '#' comments, indentation, ':' separators. */
static void test_syntax(void)
{
    static const struct test_syntax cases[] = {
        {"[server]\r\nlisten = 1.2.3.4:5\r\nmax_body = 1m\r\n\r\n[send]\r\nrate = 9\r\n",
         {"listen = 1.2.3.4:5", "max_body = 1m", "rate = 9"},
         ""},
        {"[server]\r\nlisten = 1.2.3.4:5\r\n\r\nlisen = 1\r\n",
         {"listen = 1.2.3.4:5"},
         "@:4: unknown key 'lisen' in [server]\n"},
        {"; comment\n# another\n[server] ; section comment\n; listen = 9.9.9.9:9\n"
         "# listen = 8.8.8.8:8\nlisten = 1.2.3.4:5 ; inline comment\n",
         {"listen = 1.2.3.4:5"},
         ""},
        {"  [server]\n    listen = 1.2.3.4:5\n    max_body = 2m\n  ; indented comment\n",
         {"listen = 1.2.3.4:5", "max_body = 2m"},
         ""},
        {"[server]\nlisten: 1.2.3.4:5\n", {"listen = 1.2.3.4:5"}, ""},
        {"\xEF\xBB\xBF[server]\nlisten = 1.2.3.4:5\n", {"listen = 1.2.3.4:5"}, ""},
        {"[server]\nlisten = 1.2.3.4:5", {"listen = 1.2.3.4:5"}, ""},
        {"", {"listen = 127.0.0.1:8025"}, ""},
        {"[ server ]\nlisten=1.2.3.4:5\n", {"listen = 1.2.3.4:5"}, ""},
        {"[upstream]\nsecret_access_key = a;b#cdefgh\naccess_key_id = AKIAUPSTREAM0001\n",
         {"secret_access_key = a;b#****"},
         ""},
    };
    struct buf err = BUF_INIT;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct config cfg;
        int rc = test_load(&cfg, cases[i].file, TEST_NOENV, &err);
        char *want = test_expand(cases[i].err);
        CHECK(rc == (*want ? -1 : 0), "case %zu: rc %d", i, rc);
        CHECK_STR(buf_cstr(&err), want, "error text");
        char *got = test_print(&cfg);
        for (size_t j = 0; j < 3 && cases[i].lines[j]; j++)
            CHECK(test_has_line(got, cases[i].lines[j]), "case %zu: no line \"%s\" in:\n%s", i,
                  cases[i].lines[j], got);
        CHECK(strchr(got, '\r') == NULL, "case %zu: CR in output", i);
        free(got);
        free(want);
        config_free(&cfg);
    }

    /* A NUL byte inside a line. */
    {
        static const char nul[] = "[server]\nlisten = 1.2.3.4:5\0x\n[send]\nrate = 0\n";
        struct config cfg;
        const char *path = test_write_len("t.ini", nul, sizeof nul - 1);
        buf_reset(&err);
        int rc = config_load(&cfg, path, (char *const *)TEST_NOENV, &err);
        char *want = test_expand("@:2: line contains a NUL byte\n"
                                 "@:4: [send] rate: '0' is out of range (want > 0)\n");
        CHECK(rc == -1, "NUL: rc %d", rc);
        CHECK_STR(buf_cstr(&err), want, "NUL");
        free(want);
        config_free(&cfg);
    }

    /* Long lines: a long allow list fits; a line over the limit is reported. */
    struct buf file = BUF_INIT;
    buf_adds(&file, CL "allow_from =");
    for (int i = 0; i < 100; i++)
        buf_printf(&file, " user%d@example.com", i);
    buf_adds(&file, "\n");
    struct config cfg;
    int rc = test_load(&cfg, buf_cstr(&file), TEST_NOENV, &err);
    CHECK(rc == 0, "long list: rc %d err %s", rc, buf_cstr(&err));
    CHECK(cfg.nclients == 1 && cfg.clients[0].n_allow_from == 100, "long list entries");
    config_free(&cfg);
    buf_reset(&file);
    buf_adds(&file, "[server]\ndata_dir = ");
    for (int i = 0; i < 9000; i++)
        buf_addc(&file, 'x');
    buf_adds(&file, "\n[send]\nrate = 0\n");
    rc = test_load(&cfg, buf_cstr(&file), TEST_NOENV, &err);
    char *want = test_expand("@:2: line too long (more than 8190 characters)\n"
                             "@:4: [send] rate: '0' is out of range (want > 0)\n");
    CHECK(rc == -1, "too long: rc %d", rc);
    CHECK_STR(buf_cstr(&err), want, "too long");
    free(want);
    config_free(&cfg);
    buf_free(&file);
    buf_free(&err);
}

/* A key id (with the length looked up) and the client expected, or NULL. */
struct test_lookup {
    const char *id;
    size_t len;
    const char *client;
};

/* config_client_by_key finds a client by exact key id only. */
static void test_client_by_key(void)
{
    static const struct test_lookup cases[] = {
        {"AKIDONE000000001", 16, "one"},    {"AKIDTWO000000002", 16, "two"},
        {"AKIDTWO000000002xyz", 16, "two"}, {"AKIDTWO00000000", 15, NULL},
        {"AKIDTWO0000000023", 17, NULL},    {"akidone000000001", 16, NULL},
        {"AKIDTHREE0000003", 16, NULL},     {"", 0, NULL},
    };
    struct buf err = BUF_INIT;
    struct config cfg;
    int rc = test_load(&cfg,
                       "[client.one]\naccess_key_id = AKIDONE000000001\n"
                       "secret_access_key = 0123456789abcdef\n"
                       "[client.two]\naccess_key_id = AKIDTWO000000002\n"
                       "secret_access_key = 0123456789abcdef\n",
                       TEST_NOENV, &err);
    CHECK(rc == 0, "clients: rc %d err %s", rc, buf_cstr(&err));
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct config_client *c = config_client_by_key(&cfg, cases[i].id, cases[i].len);
        if (cases[i].client == NULL)
            CHECK(c == NULL, "case %zu: found %s", i, c ? c->name : "");
        else
            CHECK(c != NULL && strcmp(c->name, cases[i].client) == 0, "case %zu: got %s", i,
                  c ? c->name : "NULL");
    }
    config_free(&cfg);
    struct config empty;
    config_defaults(&empty);
    CHECK(config_client_by_key(&empty, "AKIDONE000000001", 16) == NULL, "no clients");
    config_free(&empty);
    buf_free(&err);
}

/* [upstream.NAME] sections: their keys, defaults from [send] and the
 * environment, and the lookup by name. */
static void test_upstreams(void)
{
    struct buf err = BUF_INIT;
    struct config cfg;
    const char *env[] = {"AWS_REGION=ap-south-1", "SESGATE_UPSTREAM_EU_HEADROOM=0.5",
                         "SESGATE_UPSTREAM_TIMEOUT=7s", NULL};
    int rc = test_load(&cfg,
                       "[send]\nrate = 40\nheadroom = 0.8\n"
                       "[upstream]\naccess_key_id = AKIADEFAULT00001\n"
                       "secret_access_key = 0123456789abcdef\n"
                       "[upstream.eu]\nregion = eu-west-1\nrate = auto\n"
                       "senders = *@eu.example.com, news@example.eu\n"
                       "role_arn = arn:aws:iam::123456789012:role/ses\nexternal_id = x-1\n"
                       "[upstream.us2]\nendpoint = https://ses.example.test\ndaily_quota = 500\n"
                       "[client.a]\naccess_key_id = AKIDAAAAAAAAAAAA\n"
                       "secret_access_key = 0123456789abcdef\nupstream = eu\n",
                       env, &err);
    CHECK(rc == 0, "upstreams: rc %d err %s", rc, buf_cstr(&err));
    CHECK(cfg.nupstreams == 3, "three upstreams: %zu", cfg.nupstreams);
    if (cfg.nupstreams == 3) {
        const struct config_upstream *d = &cfg.upstreams[0], *eu = &cfg.upstreams[1],
                                     *us2 = &cfg.upstreams[2];
        CHECK_STR(d->name, "default", "[upstream]'s name");
        CHECK_STR(d->endpoint, "https://email.ap-south-1.amazonaws.com", "default endpoint");
        CHECK(d->rate_mode == CONFIG_RATE_FIXED && d->rate == 40, "default rate from [send]");
        CHECK(d->headroom == 0.8, "default headroom from [send]");
        CHECK(d->timeout_ms == 7000, "SESGATE_UPSTREAM_TIMEOUT");
        CHECK_STR(eu->name, "eu", "eu name");
        CHECK_STR(eu->region, "eu-west-1", "eu region");
        CHECK_STR(eu->endpoint, "https://email.eu-west-1.amazonaws.com", "eu endpoint");
        CHECK(eu->rate_mode == CONFIG_RATE_AUTO, "eu's own rate");
        CHECK(eu->headroom == 0.5, "eu headroom from the environment");
        CHECK(eu->nsenders == 2 && strcmp(eu->senders[0], "*@eu.example.com") == 0 &&
                  strcmp(eu->senders[1], "news@example.eu") == 0,
              "eu senders");
        CHECK_STR(eu->role_arn, "arn:aws:iam::123456789012:role/ses", "role_arn");
        CHECK_STR(eu->external_id, "x-1", "external_id");
        CHECK_STR(eu->access_key_id, "", "eu: no static keys");
        CHECK_STR(us2->region, "ap-south-1", "us2 region from AWS_REGION");
        CHECK_STR(us2->endpoint, "https://ses.example.test", "us2 endpoint");
        CHECK(us2->daily_quota == 500, "us2 daily_quota");
        CHECK(us2->rate_mode == CONFIG_RATE_FIXED && us2->rate == 40, "us2 rate from [send]");
        CHECK(us2->nsenders == 0, "us2 senders");
        CHECK(config_upstream_by_name(&cfg, "eu") == eu, "by name");
        CHECK(config_upstream_by_name(&cfg, "default") == d, "default by name");
        CHECK(config_upstream_by_name(&cfg, "fr") == NULL, "unknown name");
        CHECK_STR(cfg.clients[0].upstream, "eu", "client upstream");
        char *printed = test_print(&cfg);
        CHECK(strstr(printed,
                     "\n[upstream.eu]\nendpoint = https://email.eu-west-1.amazonaws.com\n") != NULL,
              "printed: %s", printed);
        CHECK(strstr(printed, "external_id = x-1") == NULL, "external_id masked");
        free(printed);
    }
    config_free(&cfg);

    /* [upstream] without keys: the sandbox unless a credential source is
     * named: role_arn, profile, a platform's variables; AWS_PROFILE alone
     * (a shell set up for the AWS CLI) does not. */
    static const struct {
        const char *file;
        const char *env[3];
        const char *endpoint;
    } cases[] = {
        {"", {NULL}, "sandbox"},
        {"[upstream]\nrole_arn = arn:aws:iam::1:role/r\n",
         {NULL},
         "https://email.us-east-1.amazonaws.com"},
        {"", {"AWS_PROFILE=prod", NULL}, "sandbox"},
        {"[upstream]\nprofile = prod\n", {NULL}, "https://email.us-east-1.amazonaws.com"},
        {"",
         {"AWS_WEB_IDENTITY_TOKEN_FILE=/t", "AWS_REGION=eu-north-1", NULL},
         "https://email.eu-north-1.amazonaws.com"},
        {"",
         {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/c", NULL},
         "https://email.us-east-1.amazonaws.com"},
        {"[upstream]\nendpoint = https://x.test\n", {NULL}, "https://x.test"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rc = test_load(&cfg, cases[i].file, cases[i].env, &err);
        CHECK(rc == 0, "case %zu: rc %d err %s", i, rc, buf_cstr(&err));
        CHECK_STR(cfg.upstreams[0].endpoint, cases[i].endpoint, "endpoint");
        config_free(&cfg);
    }
    buf_free(&err);
}

/* Printing and loading again gives the same configuration. */
static void test_round_trip(void)
{
    static const char *const files[] = {
        "",
        "[server]\nmax_body = 1000\nclock_skew = 1500ms\nread_timeout = 90s\n"
        "max_header_size = 3k\n[send]\nrate = 0.333\nheadroom = 0.123456789\n"
        "status_ttl = 25h\nmax_wait = 0\n[sandbox]\nrate = 1e-3\n",
        "[upstream]\nendpoint = sandbox\nregion = eu-north-1\n"
        "[client.x]\naccess_key_id = AKIDXXXXXXXXXXXX\nsecret_access_key = s\n",
        "[upstream.eu]\nregion = eu-west-1\nsenders = *@eu.example.com\nrate = 3\n"
        "[upstream.b-2]\nendpoint = http://127.0.0.1:9/\nheadroom = 0.5\n",
    };
    struct buf err = BUF_INIT;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        struct config a, b;
        test_load(&a, files[i], TEST_NOENV, &err);
        char *first = test_print(&a);
        int rc = test_load(&b, first, TEST_NOENV, &err);
        if (i != 2)
            CHECK(rc == 0, "case %zu: reload rc %d err %s", i, rc, buf_cstr(&err));
        char *second = test_print(&b);
        CHECK_STR(second, first, "round trip");
        free(first);
        free(second);
        config_free(&a);
        config_free(&b);
    }
    buf_free(&err);
}

/* Read a whole file into a NUL-terminated string owned by the caller. */
static char *test_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    struct buf b = BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_add(&b, chunk, n);
    fclose(f);
    buf_cstr(&b);
    return b.data ? buf_detach(&b, NULL) : xstrdup("");
}

/* sesgate.example.ini parses cleanly and yields exactly the defaults; its
 * commented client example is valid once uncommented. */
static void test_example(void)
{
    struct config cfg, def;
    struct buf err = BUF_INIT;
    int rc = config_load(&cfg, "sesgate.example.ini", (char *const *)TEST_NOENV, &err);
    CHECK(rc == 0, "example: rc %d err %s", rc, buf_cstr(&err));
    CHECK(err.len == 0, "example: errors %s", buf_cstr(&err));
    config_defaults(&def);
    /* The example has no upstream credentials: the sandbox. */
    free(def.upstreams[0].endpoint);
    def.upstreams[0].endpoint = xstrdup("sandbox");
    char *got = test_print(&cfg), *want = test_print(&def);
    CHECK_STR(got, want, "example = defaults");
    free(got);
    free(want);
    config_free(&cfg);
    config_free(&def);

    char *text = test_slurp("sesgate.example.ini");
    CHECK(text != NULL, "cannot read sesgate.example.ini from %s", "the repository root");
    if (text == NULL) {
        buf_free(&err);
        return;
    }
    /* Uncomment ";[client.x]" and ";key = value" lines (prose is "; ..."). */
    struct buf un = BUF_INIT;
    for (const char *line = text; *line;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) + 1 : strlen(line);
        if (n > 1 && line[0] == ';' && (line[1] == '[' || (line[1] >= 'a' && line[1] <= 'z')))
            buf_add(&un, line + 1, n - 1);
        else
            buf_add(&un, line, n);
        line += n;
    }
    rc = test_load(&cfg, buf_cstr(&un), TEST_NOENV, &err);
    CHECK(rc == 0, "example client: rc %d err %s", rc, buf_cstr(&err));
    CHECK(cfg.nclients == 1, "example client count %zu", cfg.nclients);
    if (cfg.nclients == 1) {
        CHECK_STR(cfg.clients[0].name, "app1", "example client name");
        CHECK(config_client_by_key(&cfg, cfg.clients[0].access_key_id,
                                   strlen(cfg.clients[0].access_key_id)) == &cfg.clients[0],
              "example client lookup");
        CHECK(cfg.clients[0].rate == 0 && cfg.clients[0].daily_quota == 0 &&
                  cfg.clients[0].fanout == -1,
              "example client caps");
    }
    config_free(&cfg);
    buf_free(&un);
    free(text);
    buf_free(&err);
}

int main(void)
{
    snprintf(test_dir, sizeof test_dir, "/tmp/sesgate-test-config-XXXXXX");
    if (mkdtemp(test_dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    test_defaults();
    test_every_key();
    test_errors();
    test_env();
    test_aws();
    test_masking();
    test_syntax();
    test_client_by_key();
    test_upstreams();
    test_round_trip();
    test_example();

    char path[160];
    snprintf(path, sizeof path, "%s/t.ini", test_dir);
    unlink(path);
    if (rmdir(test_dir) != 0)
        perror(test_dir);
    return check_done("test_config");
}
