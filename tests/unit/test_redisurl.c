/* Unit tests for redisurl: the [redis] url forms (redis://, rediss://,
 * unix sockets), credentials, and every refusal. */
#include <string.h>

#include "check.h"
#include "redisurl.h"

struct url_case {
    const char *url;
    int rc;
    bool tls;
    const char *host; /* NULL: none (unix socket) */
    int port;
    const char *path; /* NULL: none (TCP) */
    const char *user;
    const char *password;
    int db;
    const char *where; /* on success; on failure a part of the error */
    unsigned flags;    /* redisurl_parse's flags */
};

static const struct url_case url_cases[] = {
    {"redis://127.0.0.1", 0, false, "127.0.0.1", 6379, NULL, NULL, NULL, 0,
     "redis://127.0.0.1:6379", 0},
    {"redis://h:7000/2", 0, false, "h", 7000, NULL, NULL, NULL, 2, "redis://h:7000/2", 0},
    {"redis://:pw@h", 0, false, "h", 6379, NULL, NULL, "pw", 0, "redis://h:6379", 0},
    {"redis://app:s3cret@h:6380/1", 0, false, "h", 6380, NULL, "app", "s3cret", 1,
     "redis://h:6380/1", 0},
    {"redis://app%40x:p%3Aw%2F%40@h", 0, false, "h", 6379, NULL, "app@x", "p:w/@", 0,
     "redis://h:6379", 0},
    {"redis://u:p@ss@h", 0, false, "h", 6379, NULL, "u", "p@ss", 0, "redis://h:6379", 0},
    {"redis://app:@h", 0, false, "h", 6379, NULL, "app", NULL, 0, "redis://h:6379", 0},
    {"redis://[::1]:6390/4", 0, false, "::1", 6390, NULL, NULL, NULL, 4, "redis://[::1]:6390/4", 0},
    {"redis://h/", 0, false, "h", 6379, NULL, NULL, NULL, 0, "redis://h:6379", 0},
    /* TLS: the same forms */
    {"rediss://redis.example.com", 0, true, "redis.example.com", 6379, NULL, NULL, NULL, 0,
     "rediss://redis.example.com:6379", 0},
    {"rediss://default:tok%2Ben@master.cache.amazonaws.com:6380/0", 0, true,
     "master.cache.amazonaws.com", 6380, NULL, "default", "tok+en", 0,
     "rediss://master.cache.amazonaws.com:6380", 0},
    {"rediss://app:pw@[2001:db8::7]:6379/3", 0, true, "2001:db8::7", 6379, NULL, "app", "pw", 3,
     "rediss://[2001:db8::7]:6379/3", 0},
    {"rediss://:pw@10.0.0.5:16379", 0, true, "10.0.0.5", 16379, NULL, NULL, "pw", 0,
     "rediss://10.0.0.5:16379", 0},
    /* unix sockets */
    {"unix:///run/redis.sock", 0, false, NULL, 0, "/run/redis.sock", NULL, NULL, 0,
     "unix:///run/redis.sock", 0},
    {"unix:///run/redis.sock?db=5", 0, false, NULL, 0, "/run/redis.sock", NULL, NULL, 5,
     "unix:///run/redis.sock?db=5", 0},
    {"/var/lib/r.sock", 0, false, NULL, 0, "/var/lib/r.sock", NULL, NULL, 0,
     "unix:///var/lib/r.sock", 0},
    /* refusals */
    {"", -1, false, NULL, 0, NULL, NULL, NULL, 0, "rediss://", 0},
    {"http://h", -1, false, NULL, 0, NULL, NULL, NULL, 0, "[redis] url must be", 0},
    {"redis://", -1, false, NULL, 0, NULL, NULL, NULL, 0, "missing or malformed host", 0},
    {"rediss://", -1, false, NULL, 0, NULL, NULL, NULL, 0, "missing or malformed host", 0},
    {"rediss://:pw@", -1, false, NULL, 0, NULL, NULL, NULL, 0, "missing or malformed host", 0},
    {"rediss://h:0", -1, false, NULL, 0, NULL, NULL, NULL, 0, "port must be a number", 0},
    {"rediss://h:65536", -1, false, NULL, 0, NULL, NULL, NULL, 0, "port must be a number", 0},
    {"rediss://h:x", -1, false, NULL, 0, NULL, NULL, NULL, 0, "port must be a number", 0},
    {"rediss://h/db", -1, false, NULL, 0, NULL, NULL, NULL, 0, "database after the host", 0},
    {"rediss://::1", -1, false, NULL, 0, NULL, NULL, NULL, 0, "IPv6 host in brackets", 0},
    {"rediss://[::1", -1, false, NULL, 0, NULL, NULL, NULL, 0, "malformed [IPv6] host", 0},
    {"rediss://pw@h", -1, false, NULL, 0, NULL, NULL, NULL, 0, "password after a colon", 0},
    {"rediss://u:p%zz@h", -1, false, NULL, 0, NULL, NULL, NULL, 0,
     "percent-encoding in the password", 0},
    {"rediss://u:p%00@h", -1, false, NULL, 0, NULL, NULL, NULL, 0,
     "percent-encoding in the password", 0},
    {"rediss://u%g:p@h", -1, false, NULL, 0, NULL, NULL, NULL, 0, "percent-encoding in the user",
     0},
    {"unix://run/r.sock", -1, false, NULL, 0, NULL, NULL, NULL, 0, "must be absolute", 0},
    {"unix:///r.sock?db=x", -1, false, NULL, 0, NULL, NULL, NULL, 0, "?db=N", 0},
    {"redis:///2", -1, false, NULL, 0, NULL, NULL, NULL, 0, "missing or malformed host", 0},
    {"redis://app:pw@/2", -1, false, NULL, 0, NULL, NULL, NULL, 0, "missing or malformed host", 0},
    /* REDISURL_HOST_OPTIONAL (Sentinel: the Sentinels name the master) */
    {"redis:///2", 0, false, "", 6379, NULL, NULL, NULL, 2, "redis:///2", REDISURL_HOST_OPTIONAL},
    {"redis://", 0, false, "", 6379, NULL, NULL, NULL, 0, "redis:///0", REDISURL_HOST_OPTIONAL},
    {"redis://app:s3cret@/3", 0, false, "", 6379, NULL, "app", "s3cret", 3, "redis:///3",
     REDISURL_HOST_OPTIONAL},
    {"redis://:pw@", 0, false, "", 6379, NULL, NULL, "pw", 0, "redis:///0", REDISURL_HOST_OPTIONAL},
    {"rediss:///1", 0, true, "", 6379, NULL, NULL, NULL, 1, "rediss:///1", REDISURL_HOST_OPTIONAL},
    {"redis://h:7000/1", 0, false, "h", 7000, NULL, NULL, NULL, 1, "redis://h:7000/1",
     REDISURL_HOST_OPTIONAL},
    {"unix:///run/redis.sock", 0, false, NULL, 0, "/run/redis.sock", NULL, NULL, 0,
     "unix:///run/redis.sock", REDISURL_HOST_OPTIONAL},
    {"redis:///x", -1, false, NULL, 0, NULL, NULL, NULL, 0, "database after the host",
     REDISURL_HOST_OPTIONAL},
    {"redis://a%zz:p@/1", -1, false, NULL, 0, NULL, NULL, NULL, 0, "percent-encoding in the user",
     REDISURL_HOST_OPTIONAL},
    {"redis://?x/1", -1, false, NULL, 0, NULL, NULL, NULL, 0, "missing or malformed host",
     REDISURL_HOST_OPTIONAL},
};

/* Compare a parsed string with its expectation (NULL: none). */
static bool test_redisurl_same(const char *got, const char *want)
{
    return got == NULL || want == NULL ? got == want : strcmp(got, want) == 0;
}

/* redisurl_parse over the table. */
static void test_parse(void)
{
    for (size_t i = 0; i < sizeof url_cases / sizeof url_cases[0]; i++) {
        const struct url_case *c = &url_cases[i];
        struct redisurl u;
        char err[256] = "";
        int rc = redisurl_parse(&u, c->url, c->flags, err, sizeof err);
        CHECK(rc == c->rc, "\"%s\": rc %d, want %d (%s)", c->url, rc, c->rc, err);
        if (rc != 0 || c->rc != 0) {
            if (rc < 0)
                CHECK(strstr(err, c->where) != NULL, "\"%s\": error \"%s\" lacks \"%s\"", c->url,
                      err, c->where);
            CHECK(u.host == NULL && u.path == NULL && u.user == NULL && u.password == NULL &&
                      u.where == NULL,
                  "\"%s\": a refused url left parts behind", c->url);
            redisurl_cleanup(&u);
            continue;
        }
        CHECK(u.tls == c->tls, "\"%s\": tls %d", c->url, u.tls);
        CHECK(test_redisurl_same(u.host, c->host), "\"%s\": host %s", c->url,
              u.host ? u.host : "(none)");
        CHECK(c->path || u.port == c->port, "\"%s\": port %d", c->url, u.port);
        CHECK(test_redisurl_same(u.path, c->path), "\"%s\": path %s", c->url,
              u.path ? u.path : "(none)");
        CHECK(test_redisurl_same(u.user, c->user), "\"%s\": user %s", c->url,
              u.user ? u.user : "(none)");
        CHECK(test_redisurl_same(u.password, c->password), "\"%s\": password differs", c->url);
        CHECK(u.db == c->db, "\"%s\": db %d", c->url, u.db);
        CHECK(test_redisurl_same(u.where, c->where), "\"%s\": where %s", c->url, u.where);
        redisurl_cleanup(&u);
        CHECK(u.host == NULL && u.password == NULL && u.where == NULL, "\"%s\": cleanup left parts",
              c->url);
    }
}

/* No error text names the password, however the url is malformed. */
static void test_errors_hide_password(void)
{
    static const char *const urls[] = {
        "rediss://app:Hunter2Secret@h:99999", "rediss://app:Hunter2Secret@h/x",
        "rediss://app:Hunter2Secret@",        "redis://app:Hunter2Secret@[::1",
        "rediss://app:Hunter2Secret@a:b:c",
    };
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        struct redisurl u;
        char err[256] = "";
        CHECK(redisurl_parse(&u, urls[i], 0, err, sizeof err) < 0, "\"%s\" accepted", urls[i]);
        CHECK(strstr(err, "Hunter2") == NULL, "\"%s\": error names the password: %s", urls[i], err);
    }
    /* and with the host optional: the password is not in where either */
    static const char *const sn_urls[] = {"redis://app:Hunter2Secret@/x",
                                          "redis://app:Hunter2Secret@:0/1"};
    for (size_t i = 0; i < sizeof sn_urls / sizeof sn_urls[0]; i++) {
        struct redisurl u;
        char err[256] = "";
        CHECK(redisurl_parse(&u, sn_urls[i], REDISURL_HOST_OPTIONAL, err, sizeof err) < 0,
              "\"%s\" accepted", sn_urls[i]);
        CHECK(strstr(err, "Hunter2") == NULL, "\"%s\": error names the password: %s", sn_urls[i],
              err);
    }
}

int main(void)
{
    test_parse();
    test_errors_hide_password();
    return check_done("test_redisurl");
}
