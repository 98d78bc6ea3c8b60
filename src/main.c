/* main: the sesgate command line. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <pwd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>
#include <ini.h>
#include <openssl/rand.h>

#include "admin.h"
#include "buf.h"
#include "clock.h"
#include "config.h"
#include "front.h"
#include "log.h"
#include "metrics.h"
#include "queue.h"
#include "redis.h"
#include "limiter.h"
#include "redisproc.h"
#include "resign.h"
#include "sandbox.h"
#include "upstream.h"

extern char **environ;

#define MAIN_GRACE_MS 10000 /* how long SIGTERM waits for requests in flight */

struct main_state {
    struct event_base *base;
    struct event *log_timer;
    struct event *trim_timer;
    struct front *front;
    struct admin *admin;
    struct redisproc *redisproc; /* the managed redis-server, NULL with [redis] url */
    struct limiter *limiter;
    struct redis *redis;
    struct queue *queue;
    struct resign *resign;   /* the workers' signer */
    struct sandbox *sandbox; /* the built-in SES with endpoint = sandbox */
    struct worker *worker;   /* NULL with serve */
    struct event *grace_timer;
    int64_t grace_left_ms;
    struct config *cfg;     /* the running configuration */
    const char *path;       /* its file, or NULL */
    bool default_client;    /* no [client.*]: the key of <data_dir>/credentials */
    struct config *retired; /* configurations whose clients a reload replaced: requests */
    size_t nretired;        /* in flight may still refer to them, so they live to the end */
};

/* Print usage to f. */
static void main_usage(FILE *f)
{
    fputs("usage: sesgate COMMAND [-c FILE]\n"
          "\n"
          "  run    [-c FILE]   API front and workers in one process (default)\n"
          "  serve  [-c FILE]   API front only\n"
          "  work   [-c FILE]   workers only\n"
          "  check  [-c FILE]   validate the configuration, print it, exit\n"
          "  status [-c FILE] [--watch]    queue depth, rate, quota, recent batches\n"
          "  batch  [-c FILE] show ID|last [--watch]\n"
          "  dlq    [-c FILE] list | retry [ID...] | purge\n"
          "  (status, batch and dlq print JSON with --json; --watch refreshes every\n"
          "  second until the queue is idle or the batch complete)\n"
          "  keygen             print a new client key id and secret\n"
          "  version            print the version\n"
          "\n"
          "The configuration file is -c FILE, else $SESGATE_CONFIG, else none (defaults).\n"
          "Every key can be overridden as SESGATE_<SECTION>_<KEY>.\n",
          f);
}

/* Load the configuration or print every error and exit 1. */
static void main_load_config(struct config *cfg, const char *path)
{
    struct buf err = BUF_INIT;
    if (config_load(cfg, path, environ, &err) < 0) {
        fputs(buf_cstr(&err), stderr);
        if (err.len && err.data[err.len - 1] != '\n')
            fputc('\n', stderr);
        buf_free(&err);
        config_free(cfg);
        exit(1);
    }
    buf_free(&err);
}

/* A client key id ("SG" and 18 characters) and a 40-character secret from
 * the CSPRNG; false when it cannot be read. */
static bool main_new_key(char id[21], char secret[41])
{
    static const char id_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    static const char secret_chars[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char r[18 + 40];
    if (RAND_bytes(r, sizeof r) != 1)
        return false;
    memcpy(id, "SG", 2);
    for (int i = 0; i < 18; i++)
        id[2 + i] = id_chars[r[i] & 31];
    for (int i = 0; i < 40; i++)
        secret[i] = secret_chars[r[18 + i] & 63];
    id[20] = secret[40] = '\0';
    OPENSSL_cleanse(r, sizeof r);
    return true;
}

/* sesgate keygen: a key id and a 40-character secret from the CSPRNG. */
static int main_keygen(void)
{
    char id[21], secret[41];
    if (!main_new_key(id, secret)) {
        fprintf(stderr, "sesgate: cannot read the random number generator\n");
        return 1;
    }
    printf("access_key_id = %s\nsecret_access_key = %s\n", id, secret);
    OPENSSL_cleanse(secret, sizeof secret);
    return 0;
}

/* The key of the [sesgate] profile of a credentials file, read by inih. */
struct main_creds {
    char id[64], secret[128];
};

/* inih: keep aws_access_key_id and aws_secret_access_key of [sesgate]. */
static int main_creds_line(void *arg, const char *section, const char *name, const char *value)
{
    struct main_creds *c = arg;
    if (strcmp(section, "sesgate") != 0)
        return 1;
    if (strcmp(name, "aws_access_key_id") == 0)
        snprintf(c->id, sizeof c->id, "%s", value);
    else if (strcmp(name, "aws_secret_access_key") == 0)
        snprintf(c->secret, sizeof c->secret, "%s", value);
    return 1;
}

/* No [client.*] configured: serve one client, "default", whose key is the
 * [sesgate] profile of <data_dir>/credentials (an AWS shared credentials
 * file, mode 0600), made on the first start. Its path goes to path. The
 * secret stays in that file: it is never printed or logged. */
static bool main_default_client(struct config *cfg, char *path, size_t pathlen)
{
    snprintf(path, pathlen, "%s/credentials", cfg->data_dir);
    struct main_creds c = {0};
    if (access(path, F_OK) != 0) {
        char id[21], secret[41];
        if (mkdir(cfg->data_dir, 0750) < 0 && errno != EEXIST) {
            fprintf(stderr, "sesgate: %s: %s\n", cfg->data_dir, strerror(errno));
            return false;
        }
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 || !main_new_key(id, secret)) {
            fprintf(stderr, "sesgate: %s: %s\n", path, strerror(errno));
            if (fd >= 0)
                close(fd);
            return false;
        }
        FILE *f = fdopen(fd, "w");
        fprintf(f, "[sesgate]\naws_access_key_id = %s\naws_secret_access_key = %s\n", id, secret);
        OPENSSL_cleanse(secret, sizeof secret);
        if (fclose(f) != 0) {
            fprintf(stderr, "sesgate: %s: %s\n", path, strerror(errno));
            unlink(path);
            return false;
        }
    }
    if (ini_parse(path, main_creds_line, &c) != 0 || c.id[0] == '\0' || c.secret[0] == '\0') {
        fprintf(stderr, "sesgate: %s: no [sesgate] aws_access_key_id and aws_secret_access_key\n",
                path);
        return false;
    }
    config_add_client(cfg, "default", c.id, c.secret);
    OPENSSL_cleanse(c.secret, sizeof c.secret);
    return true;
}

/* Say which upstream this process uses and, for the default client, how to
 * try it (stdout: this is for the person who started sesgate). */
static void main_banner(const struct config *cfg, bool sandbox, const char *creds)
{
    if (sandbox)
        printf("sesgate: upstream: the built-in sandbox (no AWS credentials): nothing leaves this "
               "machine; mail is written to %s/outbox/, at most %g recipients/s and %lld a day\n",
               cfg->data_dir, cfg->sandbox_rate, (long long)cfg->sandbox_daily_quota);
    else
        printf("sesgate: upstream: %s%s (region %s)\n",
               strstr(cfg->endpoint, ".amazonaws.com") ? "Amazon SES at " : "", cfg->endpoint,
               cfg->region);
    if (creds) {
        const struct config_client *c = &cfg->clients[cfg->nclients - 1];
        printf("sesgate: client \"default\": key %s; its secret is in %s (profile sesgate)\n"
               "sesgate: try it from another terminal:\n"
               "  AWS_SHARED_CREDENTIALS_FILE=%s AWS_PROFILE=sesgate aws --endpoint-url http://%s "
               "--region %s ses send-email --from sender@example.com --to someone@example.com "
               "--subject Hello --text 'Hello from sesgate'\n",
               c->access_key_id, creds, creds, cfg->listen, cfg->region);
    }
    fflush(stdout);
}

/* Every 100 ms: write out the gathered log lines. */
static void main_log_cb(evutil_socket_t fd, short what, void *arg)
{
    log_flush();
}

#define MAIN_TRIM_MS    10000
#define MAIN_TRIM_BYTES (16u << 20)

/* Every 10 s: give the C library's free memory back to the system once it
 * holds more than 16 MB unused (after a burst of requests, 10,000 idle
 * connections kept 160 MB of freed request memory resident). */
static void main_trim_cb(evutil_socket_t fd, short what, void *arg)
{
#ifdef __GLIBC__
    if (mallinfo2().fordblks > MAIN_TRIM_BYTES)
        malloc_trim(0);
#endif
}

/* Every 100 ms after SIGTERM: stop once nothing is in flight or time is up. */
static void main_grace_cb(evutil_socket_t fd, short what, void *arg)
{
    struct main_state *s = arg;
    s->grace_left_ms -= 100;
    size_t busy = (s->front ? front_inflight(s->front) : 0) + worker_inflight(s->worker);
    if (busy == 0 || s->grace_left_ms <= 0) {
        event_base_loopbreak(s->base);
        return;
    }
    struct timeval tv = {0, 100000};
    evtimer_add(s->grace_timer, &tv);
}

/* SIGTERM / SIGINT: stop the worker reading, stop accepting, let requests
 * and sends in flight finish. */
static void main_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct main_state *s = arg;
    if (s->grace_timer) {
        event_base_loopbreak(s->base); /* a second signal: stop now */
        return;
    }
    log_event(LOG_INFO, "shutdown", "signal", sig == SIGINT ? "SIGINT" : "SIGTERM", NULL);
    worker_stop(s->worker);
    if (s->front)
        front_stop_accepting(s->front);
    s->grace_left_ms = MAIN_GRACE_MS;
    s->grace_timer = evtimer_new(s->base, main_grace_cb, s);
    struct timeval tv = {0, 0};
    evtimer_add(s->grace_timer, &tv);
}

/* [server] user: started as root, become that user (its groups too) for
 * good; false with a message when that fails. Nothing else was started. */
static bool main_drop_privileges(const struct config *cfg)
{
    if (cfg->user[0] == '\0')
        return true;
    struct passwd *pw = getpwnam(cfg->user);
    if (pw == NULL) {
        fprintf(stderr, "sesgate: [server] user: no user named %s\n", cfg->user);
        return false;
    }
    if (geteuid() != 0) {
        if (geteuid() == pw->pw_uid)
            return true;
        fprintf(stderr, "sesgate: [server] user = %s needs sesgate started as root\n", cfg->user);
        return false;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
        setuid(pw->pw_uid) < 0) {
        fprintf(stderr, "sesgate: cannot become %s: %s\n", cfg->user, strerror(errno));
        return false;
    }
    if (setuid(0) == 0) { /* must be impossible now */
        fprintf(stderr, "sesgate: could regain root after becoming %s\n", cfg->user);
        return false;
    }
    return true;
}

/* SIGHUP: read the configuration again and serve its clients (keys,
 * policies, limits) from now on; connections stay open. Other keys take
 * effect at the next start. A configuration with errors changes nothing. */
static void main_reload_cb(evutil_socket_t sig, short what, void *arg)
{
    struct main_state *s = arg;
    struct config next = {0};
    struct buf err = BUF_INIT;
    char creds[4200];
    if (config_load(&next, s->path, environ, &err) < 0) {
        log_event(LOG_ERROR, "reload_failed", "path", s->path ? s->path : "-", "errors",
                  buf_cstr(&err), NULL);
        buf_free(&err);
        config_free(&next);
        return;
    }
    buf_free(&err);
    if (next.nclients == 0 && s->default_client &&
        !main_default_client(&next, creds, sizeof creds)) {
        log_event(LOG_ERROR, "reload_failed", "path", s->path ? s->path : "-", "errors",
                  "the default client's key cannot be read", NULL);
        config_free(&next);
        return;
    }
    config_swap_clients(s->cfg, &next);
    s->retired = xrealloc(s->retired, (s->nretired + 1) * sizeof *s->retired);
    s->retired[s->nretired++] = next;
    if (s->front)
        front_clients_changed(s->front);
    char tls_err[1024];
    if (s->front && front_reload_tls(s->front, tls_err, sizeof tls_err) < 0)
        log_event(LOG_ERROR, "tls_reload_failed", "error", tls_err, NULL);
    char n[24];
    snprintf(n, sizeof n, "%zu", s->cfg->nclients);
    log_event(LOG_INFO, "reload", "clients", n, NULL);
}

/* Raise the open-file limit to what max_connections needs (up to the hard
 * limit), and say so when the hard limit is too low. */
static void main_raise_nofile(int64_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    /* listeners, Redis, logs; the upstream's connections, and the
     * sandbox's side of them */
    rlim_t need = (rlim_t)want + 256 + 2 * UPSTREAM_MAX_CONNECTIONS;
    if (rl.rlim_cur < need) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < need) {
        char have[24], needs[24];
        snprintf(have, sizeof have, "%llu", (unsigned long long)rl.rlim_cur);
        snprintf(needs, sizeof needs, "%llu", (unsigned long long)need);
        log_event(LOG_WARN, "nofile_limit", "limit", have, "wanted", needs, NULL);
    }
}

/* sesgate serve / run / work: the SES front, the queue workers, or both. */
static int main_serve(const char *path, const char *mode)
{
    struct config cfg = {0};
    main_load_config(&cfg, path);
    bool sandbox = strcmp(cfg.endpoint, "sandbox") == 0;
    if (!main_drop_privileges(&cfg)) {
        config_free(&cfg);
        return 1;
    }
    char creds[4200] = "";
    bool default_client = cfg.nclients == 0 && strcmp(mode, "work") != 0;
    if (default_client && !main_default_client(&cfg, creds, sizeof creds)) {
        config_free(&cfg);
        return 1;
    }
    if (!sandbox && (cfg.access_key_id[0] == '\0' || cfg.secret_access_key[0] == '\0')) {
        fprintf(stderr, "sesgate: no upstream credentials: set AWS_ACCESS_KEY_ID and "
                        "AWS_SECRET_ACCESS_KEY, or [upstream] access_key_id and "
                        "secret_access_key\n");
        config_free(&cfg);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    main_raise_nofile(cfg.max_connections);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct main_state s = {0};
    s.base = event_base_new();
    struct upstream *up = upstream_new(s.base, cfg.timeout_ms, (size_t)cfg.max_body + (1u << 20),
                                       getenv("SESGATE_CA_BUNDLE"));
    char err[1024];
    int rc = 1;
    /* SIGTERM and SIGINT wait while Redis starts, so that a stop then still
     * stops it; the handlers below take them. */
    sigset_t stop_sigs, old_mask;
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGTERM);
    sigaddset(&stop_sigs, SIGINT);
    sigaddset(&stop_sigs, SIGHUP);
    sigprocmask(SIG_BLOCK, &stop_sigs, &old_mask);
    if (cfg.redis_url[0] == '\0') {
        s.redisproc = redisproc_start(s.base, cfg.data_dir, err, sizeof err);
        if (s.redisproc == NULL) {
            fprintf(stderr, "sesgate: %s\n", err);
            goto out;
        }
    }
    s.redis = redis_new(s.base, s.redisproc ? redisproc_socket(s.redisproc) : cfg.redis_url, err,
                        sizeof err);
    if (s.redis == NULL) {
        fprintf(stderr, "sesgate: %s\n", err);
        goto out;
    }
    s.queue = queue_new(s.base, &cfg, s.redis);
    if (sandbox) {
        s.sandbox = sandbox_start(s.base, &cfg, err, sizeof err);
        if (s.sandbox == NULL) {
            fprintf(stderr, "sesgate: sandbox: %s\n", err);
            goto out;
        }
        /* Everything upstream now goes to the sandbox, signed with its key. */
        free(cfg.endpoint);
        cfg.endpoint = xstrdup(sandbox_endpoint(s.sandbox));
        free(cfg.access_key_id);
        cfg.access_key_id = xstrdup(sandbox_access_key_id(s.sandbox));
        free(cfg.secret_access_key);
        cfg.secret_access_key = xstrdup(sandbox_secret_access_key(s.sandbox));
        free(cfg.session_token);
        cfg.session_token = xstrdup("");
        cfg.sandbox_started = true;
    }
    s.resign = resign_new(&cfg, err, sizeof err);
    if (s.resign == NULL) {
        fprintf(stderr, "sesgate: %s\n", err);
        goto out;
    }
    s.limiter = limiter_new(s.base, &cfg, s.queue, s.redis, up, s.resign);
    if (strcmp(mode, "work") != 0) {
        s.front = front_new(s.base, &cfg, up, err, sizeof err);
        if (s.front == NULL) {
            fprintf(stderr, "sesgate: %s\n", err);
            goto out;
        }
        front_set_queue(s.front, s.queue);
        front_set_limiter(s.front, s.limiter);
    }
    if (strcmp(mode, "serve") != 0) {
        char host[256] = "sesgate", name[300];
        if (gethostname(host, sizeof host) < 0)
            snprintf(host, sizeof host, "sesgate");
        host[sizeof host - 1] = '\0';
        snprintf(name, sizeof name, "%s-%ld", host, (long)getpid());
        s.worker = worker_start(s.base, &cfg, s.queue, up, s.resign, s.limiter, name);
    }
    if (cfg.admin_listen[0]) {
        s.admin = admin_new(s.base, &cfg, up, s.redis, err, sizeof err);
        if (s.admin == NULL) {
            fprintf(stderr, "sesgate: admin listener: %s\n", err);
            goto out;
        }
    }
    s.cfg = &cfg;
    s.path = path;
    s.default_client = default_client;
    struct event *sigterm = evsignal_new(s.base, SIGTERM, main_signal_cb, &s);
    struct event *sigint = evsignal_new(s.base, SIGINT, main_signal_cb, &s);
    struct event *sighup = evsignal_new(s.base, SIGHUP, main_reload_cb, &s);
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);
    evsignal_add(sighup, NULL);
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    s.log_timer = event_new(s.base, -1, EV_PERSIST, main_log_cb, NULL);
    struct timeval log_tv = {0, 100000};
    event_add(s.log_timer, &log_tv);
    s.trim_timer = event_new(s.base, -1, EV_PERSIST, main_trim_cb, NULL);
    struct timeval trim_tv = {MAIN_TRIM_MS / 1000, 0};
    event_add(s.trim_timer, &trim_tv);
    log_set_buffered(true);
    char nclients[16];
    snprintf(nclients, sizeof nclients, "%zu", cfg.nclients);
    main_banner(&cfg, sandbox, creds[0] ? creds : NULL);
    log_event(LOG_INFO, "start", "version", SESGATE_VERSION, "mode", mode, "listen",
              s.front ? cfg.listen : NULL, "admin", cfg.admin_listen, "upstream",
              sandbox ? "sandbox" : cfg.endpoint, "region", cfg.region, "clients", nclients,
              "redis", redis_where(s.redis), NULL);
    event_base_dispatch(s.base);
    log_event(LOG_INFO, "stopped", NULL);
    log_set_buffered(false);
    event_free(s.log_timer);
    event_free(s.trim_timer);
    event_free(sigterm);
    event_free(sigint);
    event_free(sighup);
    rc = 0;
out:
    if (s.grace_timer)
        event_free(s.grace_timer);
    admin_free(s.admin);
    front_free(s.front);
    worker_free(s.worker);
    limiter_free(s.limiter);
    queue_free(s.queue);
    redis_free(s.redis);
    if (s.resign)
        resign_free(s.resign);
    redisproc_stop(s.redisproc);
    sandbox_free(s.sandbox);
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    upstream_free(up);
    event_base_free(s.base);
    curl_global_cleanup();
    metrics_cleanup();
    for (size_t i = 0; i < s.nretired; i++)
        config_free(&s.retired[i]);
    free(s.retired);
    config_free(&cfg);
    return rc;
}

/* sesgate check: validate and print the effective configuration. */
static int main_check(const char *path)
{
    struct config cfg = {0};
    main_load_config(&cfg, path);
    struct buf out = BUF_INIT;
    config_print(&cfg, &out);
    fputs(buf_cstr(&out), stdout);
    buf_free(&out);
    config_free(&cfg);
    return 0;
}

/* Connect to the daemon's Redis: [redis] url, or the managed server's
 * socket under data_dir (never started from here). NULL: reported. */
static redisContext *main_redis(const struct config *cfg)
{
    char err[1024];
    /* Connecting takes at most 3 s; a command may take longer (the whole
     * status of a million-recipient batch is a large reply). */
    const struct timeval slow = {120, 0};
    if (cfg->redis_url[0]) {
        redisContext *c = redis_connect_sync(cfg->redis_url, 3000, err, sizeof err);
        if (c == NULL)
            fprintf(stderr, "sesgate: %s\n", err);
        else
            redisSetTimeout(c, slow);
        return c;
    }
    struct buf sock = BUF_INIT;
    if (cfg->data_dir[0] != '/') {
        char cwd[4096];
        if (getcwd(cwd, sizeof cwd) != NULL)
            buf_printf(&sock, "%s/", cwd);
    }
    buf_printf(&sock, "%s/redis/redis.sock", cfg->data_dir);
    redisContext *c = redis_connect_sync(buf_cstr(&sock), 3000, err, sizeof err);
    if (c == NULL)
        fprintf(stderr, "sesgate: redis is not running at %s: start sesgate first\n",
                buf_cstr(&sock));
    else
        redisSetTimeout(c, slow);
    buf_free(&sock);
    return c;
}

/* EVAL script with nkeys keys and nargs arguments; the reply, or NULL
 * after printing the error. */
static redisReply *main_eval(redisContext *c, const char *script, int nkeys, char **keys, int nargs,
                             const char **args)
{
    int argc = 3 + nkeys + nargs;
    const char **argv = xcalloc((size_t)argc, sizeof *argv);
    char nk[16];
    snprintf(nk, sizeof nk, "%d", nkeys);
    argv[0] = "EVAL";
    argv[1] = script;
    argv[2] = nk;
    for (int k = 0; k < nkeys; k++)
        argv[3 + k] = keys[k];
    for (int k = 0; k < nargs; k++)
        argv[3 + nkeys + k] = args[k];
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    free(argv);
    if (r == NULL) {
        fprintf(stderr, "sesgate: redis: %s\n", c->errstr);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "sesgate: redis: %s\n", r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* Print j as indented JSON and a newline. */
static void main_print_json(const json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_ENSURE_ASCII);
    if (s == NULL)
        abort();
    puts(s);
    free(s);
}

/* A string member of o, or dflt when absent or not a string. */
static const char *main_jstr(const json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s && s[0] ? s : dflt;
}

/* An integer member of o (0 when absent). */
static long long main_jint(const json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

/* Recipients per second of batch b since it was created, and the seconds
 * left at that rate (-1: unknown). */
static void main_batch_pace(const json_t *b, double *rate, double *eta)
{
    long long total = main_jint(b, "total");
    long long done = main_jint(b, "sent") + main_jint(b, "dead");
    double secs = (double)(clock_wall_ms() - main_jint(b, "created_ms")) / 1000.0;
    *rate = secs > 0.5 && done > 0 ? (double)done / secs : 0;
    *eta = *rate > 0 ? (double)(total - done) / *rate : -1;
}

/* A progress bar of width cells for done of total, and the counts, rate and
 * time left: "[#######.......]  512/1000  51.2 %  14.0/s  0:35 left". */
static void main_print_bar(long long done, long long dead, long long total, double rate, double eta)
{
    enum { width = 30 };
    int fill = total > 0 ? (int)((double)done * width / (double)total) : width;
    char bar[width + 1];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    printf("[%s] %lld/%lld %5.1f %%", bar, done, total,
           total > 0 ? 100.0 * (double)done / (double)total : 100.0);
    if (dead > 0)
        printf("  %lld dead", dead);
    if (done < total && rate > 0)
        printf("  %.1f/s  %lld:%02lld left", rate, (long long)eta / 60, (long long)eta % 60);
    putchar('\n');
}

/* Print the batch status b as text: one "key value" line per field, then
 * one line per recipient "index address state detail". */
static void main_print_batch(const json_t *b)
{
    printf("batch %s\nclient %s\naction %s\ncreated %s\n", main_jstr(b, "batch_id", "-"),
           main_jstr(b, "client", "-"), main_jstr(b, "action", "-"), main_jstr(b, "created", "-"));
    static const char *const counts[] = {"total", "sent", "dead", "retrying", "queued"};
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++)
        printf("%s %lld\n", counts[k], main_jint(b, counts[k]));
    printf("progress %.1f%%\n", json_real_value(json_object_get(b, "progress")));
    double rate, eta;
    main_batch_pace(b, &rate, &eta);
    if (!json_is_true(json_object_get(b, "complete")) && rate > 0)
        printf("rate %.1f\neta_seconds %.0f\n", rate, eta);
    if (isatty(STDOUT_FILENO)) {
        putchar('\n');
        main_print_bar(main_jint(b, "sent") + main_jint(b, "dead"), main_jint(b, "dead"),
                       main_jint(b, "total"), rate, eta);
        puts("\nindex address state detail");
    }
    size_t i;
    const json_t *r;
    json_array_foreach(json_object_get(b, "recipients"), i, r)
    {
        const char *state = main_jstr(r, "state", "queued");
        printf("%lld %s %s ", main_jint(r, "index"), main_jstr(r, "address", "-"), state);
        if (strcmp(state, "sent") == 0)
            printf("%s%s%s\n", main_jstr(r, "message_id", "-"),
                   json_object_get(r, "note") ? " " : "", main_jstr(r, "note", ""));
        else if (strcmp(state, "dead") == 0)
            printf("%s %s\n", main_jstr(r, "code", "-"), main_jstr(r, "message", ""));
        else if (strcmp(state, "retry") == 0)
            printf("attempt %lld due %s\n", main_jint(r, "attempt"), main_jstr(r, "due", "-"));
        else
            puts("-");
    }
}

/* sesgate batch show ID [--watch]: with --watch, a progress line every
 * second (a bar redrawn in place on a terminal) until the batch is
 * complete, then the whole status. */
static int main_batch(redisContext *c, const char *pfx, int argc, char **argv, bool json,
                      bool watch)
{
    if (argc != 2 || strcmp(argv[0], "show") != 0) {
        fprintf(stderr, "usage: sesgate batch [-c FILE] show ID|last [--json] [--watch]\n");
        return 2;
    }
    const char *id = argv[1];
    char newest[64] = "";
    if (strcmp(id, "last") == 0) {
        /* the newest batch */
        struct buf k = BUF_INIT;
        buf_printf(&k, "%srecent", pfx);
        redisReply *r = redisCommand(c, "ZREVRANGE %s 0 0", buf_cstr(&k));
        buf_free(&k);
        if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
            r->element[0]->type == REDIS_REPLY_STRING)
            snprintf(newest, sizeof newest, "%s", r->element[0]->str);
        freeReplyObject(r);
        if (newest[0] == '\0') {
            fprintf(stderr, "sesgate: no batch yet\n");
            return 1;
        }
        id = newest;
    }
    if (!queue_batch_id_ok(id)) {
        fprintf(stderr, "sesgate: batch %s not found (a batch id is 36 of 0-9, a-f and -)\n", id);
        return 1;
    }
    bool tty = isatty(STDOUT_FILENO);
    for (;;) {
        if (watch) {
            /* Until the batch is complete only its counters are read: the
             * whole status of a big batch is large. */
            struct buf k = BUF_INIT;
            buf_printf(&k, "%sb:%s", pfx, id);
            redisReply *h = redisCommand(c, "HMGET %s total sent done dead created", buf_cstr(&k));
            buf_free(&k);
            if (h == NULL) {
                fprintf(stderr, "sesgate: redis: %s\n", c->errstr);
                return 1;
            }
            long long v[5] = {0};
            bool known = h->type == REDIS_REPLY_ARRAY && h->elements == 5 &&
                         h->element[0]->type == REDIS_REPLY_STRING;
            for (size_t i = 0; known && i < 5; i++)
                if (h->element[i]->type == REDIS_REPLY_STRING)
                    v[i] = strtoll(h->element[i]->str, NULL, 10);
            freeReplyObject(h);
            long long done = v[1] + v[2] + v[3];
            if (known && done < v[0]) {
                json_t *b = json_pack("{sIsIsIsI}", "total", (json_int_t)v[0], "sent",
                                      (json_int_t)(v[1] + v[2]), "dead", (json_int_t)v[3],
                                      "created_ms", (json_int_t)v[4]);
                double rate, eta;
                main_batch_pace(b, &rate, &eta);
                json_decref(b);
                if (tty) {
                    fputs("\r\033[K", stdout);
                    main_print_bar(done, v[3], v[0], rate, eta);
                    fputs("\033[A", stdout); /* redrawn in place */
                } else {
                    printf("progress %lld/%lld dead %lld rate %.1f eta_seconds %.0f\n", done, v[0],
                           v[3], rate, eta);
                }
                fflush(stdout);
                sleep(1);
                continue;
            }
        }
        char *keys[4];
        queue_show_keys(pfx, id, keys);
        redisReply *r = main_eval(c, queue_show_script(), 4, keys, 1, &id);
        for (int k = 0; k < 4; k++)
            free(keys[k]);
        if (r == NULL)
            return 1;
        json_t *b = queue_show_json(id, r);
        freeReplyObject(r);
        if (b == NULL) {
            fprintf(stderr, "sesgate: batch %s not found\n", id);
            return 1;
        }
        if (watch && tty)
            fputs("\r\033[K", stdout);
        if (json)
            main_print_json(b);
        else
            main_print_batch(b);
        json_decref(b);
        return 0;
    }
}

/* The string of field name in a flat stream entry field list, or "". */
static const char *main_entry_field(const redisReply *fields, const char *name)
{
    for (size_t k = 0; k + 1 < fields->elements; k += 2)
        if (fields->element[k]->type == REDIS_REPLY_STRING &&
            strcmp(fields->element[k]->str, name) == 0 &&
            fields->element[k + 1]->type == REDIS_REPLY_STRING)
            return fields->element[k + 1]->str;
    return "";
}

/* sesgate dlq list: every dead letter, oldest first. */
static int main_dlq_list(redisContext *c, const char *pfx, bool json)
{
    struct buf kdlq = BUF_INIT;
    buf_printf(&kdlq, "%sdlq", pfx);
    json_t *all = json_array();
    char start[64] = "-";
    int rc = 0;
    for (;;) {
        redisReply *page = redisCommand(c, "XRANGE %s %s + COUNT 500", buf_cstr(&kdlq), start);
        if (page == NULL || page->type != REDIS_REPLY_ARRAY) {
            fprintf(stderr, "sesgate: redis: %s\n",
                    page ? (page->str ? page->str : "unexpected reply") : c->errstr);
            if (page)
                freeReplyObject(page);
            rc = 1;
            break;
        }
        size_t n = page->elements;
        for (size_t k = 0; k < n; k++) {
            const redisReply *e = page->element[k];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
                e->element[1]->type != REDIS_REPLY_ARRAY)
                continue;
            const char *eid = e->element[0]->str, *b = main_entry_field(e->element[1], "b");
            const char *i = main_entry_field(e->element[1], "i");
            snprintf(start, sizeof start, "(%s", eid);
            redisReply *addr = redisCommand(c, "LINDEX %sr:%s %s", pfx, b, i);
            json_t *o = json_object();
            json_object_set_new(o, "id", json_string(eid));
            json_object_set_new(o, "batch_id", json_string(b));
            json_object_set_new(o, "index", json_integer(strtoll(i, NULL, 10)));
            json_object_set_new(o, "address",
                                addr && addr->type == REDIS_REPLY_STRING
                                    ? json_stringn(addr->str, addr->len)
                                    : json_null());
            json_object_set_new(o, "code", json_string(main_entry_field(e->element[1], "code")));
            json_object_set_new(o, "message",
                                json_string(main_entry_field(e->element[1], "message")));
            json_object_set_new(
                o, "attempts",
                json_integer(strtoll(main_entry_field(e->element[1], "attempts"), NULL, 10)));
            if (addr)
                freeReplyObject(addr);
            json_array_append_new(all, o);
        }
        freeReplyObject(page);
        if (n < 500)
            break;
    }
    if (rc == 0 && json) {
        main_print_json(all);
    } else if (rc == 0) {
        if (isatty(STDOUT_FILENO))
            puts("id batch index address code attempts message");
        size_t k;
        const json_t *o;
        json_array_foreach(all, k, o)
        {
            printf("%s %s %lld %s %s %lld %s\n", main_jstr(o, "id", "-"),
                   main_jstr(o, "batch_id", "-"), main_jint(o, "index"),
                   main_jstr(o, "address", "-"), main_jstr(o, "code", "-"),
                   main_jint(o, "attempts"), main_jstr(o, "message", ""));
        }
    }
    json_decref(all);
    buf_free(&kdlq);
    return rc;
}

/* sesgate dlq retry [ID...] / purge. */
static int main_dlq_move(redisContext *c, const char *pfx, bool purge, int nids, char **ids)
{
    struct buf kdlq = BUF_INIT, kq = BUF_INIT;
    buf_printf(&kdlq, "%sdlq", pfx);
    buf_printf(&kq, "%sqs", pfx);
    char *keys[3] = {(char *)buf_cstr(&kdlq), (char *)buf_cstr(&kq), (char *)pfx};
    long long total = 0;
    int rc = 0;
    if (purge) {
        redisReply *r = main_eval(c, queue_dlq_purge_script(), 1, keys, 0, NULL);
        rc = r ? 0 : 1;
        total = r && r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
        if (r)
            freeReplyObject(r);
    } else {
        const char **args = xcalloc((size_t)nids + 1, sizeof *args);
        args[0] = "1000";
        for (int k = 0; k < nids; k++)
            args[k + 1] = ids[k];
        for (;;) {
            redisReply *r = main_eval(c, queue_dlq_retry_script(), 3, keys, nids + 1, args);
            if (r == NULL) {
                rc = 1;
                break;
            }
            long long n = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
            freeReplyObject(r);
            total += n;
            if (nids > 0 || n == 0)
                break;
        }
        free(args);
    }
    if (rc == 0)
        printf(purge ? "%lld dead letters deleted\n" : "%lld dead letters moved to the queue\n",
               total);
    buf_free(&kdlq);
    buf_free(&kq);
    return rc;
}

/* sesgate dlq list | retry [ID...] | purge. */
static int main_dlq(redisContext *c, const char *pfx, int argc, char **argv, bool json)
{
    if (argc == 1 && strcmp(argv[0], "list") == 0)
        return main_dlq_list(c, pfx, json);
    if (argc >= 1 && strcmp(argv[0], "retry") == 0)
        return main_dlq_move(c, pfx, false, argc - 1, argv + 1);
    if (argc == 1 && strcmp(argv[0], "purge") == 0)
        return main_dlq_move(c, pfx, true, 0, NULL);
    fprintf(stderr, "usage: sesgate dlq [-c FILE] list [--json] | retry [ID...] | purge\n");
    return 2;
}

/* A number of a reply element (integer or decimal string), or JSON null. */
static json_t *main_rnum(const redisReply *r)
{
    if (r && r->type == REDIS_REPLY_INTEGER)
        return json_integer(r->integer);
    if (r && r->type == REDIS_REPLY_STRING && r->len > 0) {
        char *end;
        double d = strtod(r->str, &end);
        if (end != r->str && *end == '\0')
            return d == (double)(long long)d && d < 9e15 && d > -9e15 ? json_integer((long long)d)
                                                                      : json_real(d);
    }
    return json_null();
}

/* The shared rate limiter as Redis holds it: the effective and base rates,
 * the last throttling cut, recipients sent in the rolling 24 hours, and
 * what the upstream last reported (rate = auto). */
static json_t *main_rate_json(redisContext *c, const char *pfx)
{
    json_t *o = json_object();
    char *keys[2];
    struct buf b = BUF_INIT;
    buf_printf(&b, "%srl", pfx);
    keys[0] = buf_detach(&b, NULL);
    buf_printf(&b, "%sday", pfx);
    keys[1] = buf_detach(&b, NULL);
    const char *args[2] = {"status", ""};
    redisReply *r = main_eval(c, queue_limit_script(), 2, keys, 2, args);
    free(keys[0]);
    free(keys[1]);
    static const char *const names[6] = {"effective", "base",          "cut_rate",
                                         "cut_at_ms", "sent_last_24h", "tat_ms"};
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 6)
        for (int i = 0; i < 6; i++) {
            json_t *v = main_rnum(r->element[i]);
            if (i < 3 && json_is_number(v)) {
                /* Redis holds the pacing rates (LIMITER_PACE of the rate):
                 * show them as the account's. */
                double d = json_number_value(v) / LIMITER_PACE;
                json_decref(v);
                v = json_real(round(d * 1e6) / 1e6);
            }
            json_object_set_new(o, names[i], v);
        }
    freeReplyObject(r);
    buf_printf(&b, "%squota", pfx);
    r = redisCommand(c, "HGETALL %s", buf_cstr(&b));
    buf_free(&b);
    if (r && r->type == REDIS_REPLY_ARRAY) {
        json_t *u = json_object();
        for (size_t i = 0; i + 1 < r->elements; i += 2)
            if (r->element[i]->type == REDIS_REPLY_STRING)
                json_object_set_new(u, r->element[i]->str, main_rnum(r->element[i + 1]));
        json_object_set_new(o, "upstream", u);
    }
    freeReplyObject(r);
    const json_t *quota = json_object_get(json_object_get(o, "upstream"), "daily_quota");
    const json_t *used = json_object_get(o, "sent_last_24h");
    if (json_is_integer(quota) && json_integer_value(quota) > 0 && json_is_integer(used))
        json_object_set_new(o, "quota_left",
                            json_integer(json_integer_value(quota) > json_integer_value(used)
                                             ? json_integer_value(quota) - json_integer_value(used)
                                             : 0));
    /* What holds the queue (the daily quota), and until when. */
    struct buf hk = BUF_INIT;
    buf_printf(&hk, "%shold", pfx);
    r = redisCommand(c, "HGETALL %s", buf_cstr(&hk));
    buf_free(&hk);
    json_t *held = json_array();
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        long long until = strtoll(r->element[i + 1]->str ? r->element[i + 1]->str : "0", NULL, 10);
        if (until <= clock_wall_ms())
            continue;
        json_t *h = json_object();
        json_object_set_new(h, "reason", json_string(r->element[i]->str));
        json_object_set_new(h, "until_ms", json_integer(until));
        json_array_append_new(held, h);
    }
    freeReplyObject(r);
    json_object_set_new(o, "held", held);
    return o;
}

/* One status of the queue and the recent batches; *idle tells whether
 * nothing is queued, in flight or waiting for a retry. */
static int main_status_once(redisContext *c, const char *pfx, bool json, bool tty, bool *idle)
{
    char *keys[5];
    queue_stats_keys(pfx, keys);
    const char *n = "10";
    redisReply *r = main_eval(c, queue_stats_script(), 5, keys, 1, &n);
    for (int k = 0; k < 5; k++)
        free(keys[k]);
    if (r == NULL)
        return 1;
    json_t *s = queue_stats_json(r, clock_wall_ms());
    freeReplyObject(r);
    if (s == NULL) {
        fprintf(stderr, "sesgate: redis: unexpected reply to the status script\n");
        return 1;
    }
    json_object_set_new(s, "rate", main_rate_json(c, pfx));
    *idle = main_jint(s, "depth") == 0 && main_jint(s, "inflight") == 0 &&
            main_jint(s, "retrying") == 0;
    if (json) {
        main_print_json(s);
    } else {
        printf("depth %lld\noldest_seconds %.1f\ninflight %lld\nretrying %lld\ndead_letters "
               "%lld\n",
               main_jint(s, "depth"), json_real_value(json_object_get(s, "oldest_seconds")),
               main_jint(s, "inflight"), main_jint(s, "retrying"), main_jint(s, "dead_letters"));
        const json_t *rate = json_object_get(s, "rate");
        static const char *const shown[4] = {"effective", "base", "sent_last_24h", "cut_rate"};
        for (int i = 0; i < 4; i++) {
            const json_t *v = json_object_get(rate, shown[i]);
            if (json_is_number(v))
                printf("rate_%s %g\n", shown[i], json_number_value(v));
        }
        const json_t *q = json_object_get(json_object_get(rate, "upstream"), "daily_quota");
        if (json_is_number(q))
            printf("daily_quota %g\n", json_number_value(q));
        if (json_is_integer(json_object_get(rate, "quota_left")))
            printf("quota_left %lld\n", main_jint(rate, "quota_left"));
        size_t hi;
        const json_t *h;
        json_array_foreach(json_object_get(rate, "held"), hi, h)
        {
            printf("held %s for %.0f s\n", main_jstr(h, "reason", "-"),
                   (double)(main_jint(h, "until_ms") - clock_wall_ms()) / 1000.0);
        }
        size_t k;
        const json_t *b;
        json_array_foreach(json_object_get(s, "recent"), k, b)
        {
            if (json_is_true(json_object_get(b, "expired")))
                printf("batch %s expired\n", main_jstr(b, "batch_id", "-"));
            else
                printf("batch %s %s %s %s total %lld sent %lld dead %lld pending %lld\n",
                       main_jstr(b, "batch_id", "-"), main_jstr(b, "created", "-"),
                       main_jstr(b, "client", "-"), main_jstr(b, "action", "-"),
                       main_jint(b, "total"), main_jint(b, "sent"), main_jint(b, "dead"),
                       main_jint(b, "pending"));
            if (tty && !json_is_true(json_object_get(b, "expired")) &&
                main_jint(b, "pending") > 0) {
                double per_s, eta;
                main_batch_pace(b, &per_s, &eta);
                fputs("  ", stdout);
                main_print_bar(main_jint(b, "sent") + main_jint(b, "dead"), main_jint(b, "dead"),
                               main_jint(b, "total"), per_s, eta);
            }
        }
    }
    json_decref(s);
    return 0;
}

/* sesgate status [--watch]: with --watch, again every second (redrawn on
 * a terminal, a block per second otherwise) until the queue is idle. */
static int main_status(redisContext *c, const char *pfx, int argc, bool json, bool watch)
{
    if (argc != 0) {
        fprintf(stderr, "usage: sesgate status [-c FILE] [--json] [--watch]\n");
        return 2;
    }
    bool tty = isatty(STDOUT_FILENO);
    for (;;) {
        bool idle = true;
        if (watch && tty)
            fputs("\033[H\033[2J", stdout);
        int rc = main_status_once(c, pfx, json, tty, &idle);
        fflush(stdout);
        if (rc != 0 || !watch || idle)
            return rc;
        if (!tty)
            putchar('\n');
        sleep(1);
    }
}

/* sesgate status / batch / dlq: parse -c and --json among args, connect,
 * run the command. */
static int main_ops(const char *cmd, const char *path, int argc, char **argv)
{
    char **pos = xcalloc((size_t)argc + 1, sizeof *pos);
    int npos = 0;
    bool json = false, watch = false;
    for (int k = 0; k < argc; k++) {
        if (strcmp(argv[k], "-c") == 0 && k + 1 < argc)
            path = argv[++k];
        else if (strcmp(argv[k], "--json") == 0)
            json = true;
        else if (strcmp(argv[k], "--watch") == 0 && strcmp(cmd, "dlq") != 0)
            watch = true;
        else
            pos[npos++] = argv[k];
    }
    struct config cfg = {0};
    main_load_config(&cfg, path);
    int rc = 1;
    redisContext *c = main_redis(&cfg);
    if (c) {
        char *pfx = queue_key_prefix(&cfg);
        if (strcmp(cmd, "batch") == 0)
            rc = main_batch(c, pfx, npos, pos, json, watch);
        else if (strcmp(cmd, "dlq") == 0)
            rc = main_dlq(c, pfx, npos, pos, json);
        else
            rc = main_status(c, pfx, npos, json, watch);
        free(pfx);
        redisFree(c);
    }
    free(pos);
    config_free(&cfg);
    return rc;
}

int main(int argc, char **argv)
{
    const char *cmd = "run";
    const char *path = getenv("SESGATE_CONFIG");
    int argi = 1;
    if (argi < argc && argv[argi][0] != '-')
        cmd = argv[argi++];
    for (; argi < argc; argi++) {
        if (strcmp(argv[argi], "-c") == 0 && argi + 1 < argc) {
            path = argv[++argi];
        } else if (strcmp(argv[argi], "-h") == 0 || strcmp(argv[argi], "--help") == 0) {
            main_usage(stdout);
            return 0;
        } else {
            break;
        }
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("sesgate %s\n", SESGATE_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
        main_usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "keygen") == 0)
        return main_keygen();
    if (strcmp(cmd, "check") == 0)
        return main_check(path);
    if (strcmp(cmd, "serve") == 0 || strcmp(cmd, "run") == 0 || strcmp(cmd, "work") == 0)
        return main_serve(path, cmd);
    if (strcmp(cmd, "status") == 0 || strcmp(cmd, "batch") == 0 || strcmp(cmd, "dlq") == 0)
        return main_ops(cmd, path, argc - argi, argv + argi);
    fprintf(stderr, "sesgate: unknown command '%s'\n\n", cmd);
    main_usage(stderr);
    return 2;
}
