/* main: the sesgate command line. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/rand.h>

#include "admin.h"
#include "buf.h"
#include "config.h"
#include "front.h"
#include "log.h"
#include "metrics.h"
#include "queue.h"
#include "redis.h"
#include "redisproc.h"
#include "resign.h"
#include "upstream.h"

extern char **environ;

#define MAIN_GRACE_MS 10000 /* how long SIGTERM waits for requests in flight */

struct main_state {
    struct event_base *base;
    struct event *log_timer;
    struct front *front;
    struct admin *admin;
    struct redisproc *redisproc; /* the managed redis-server, NULL with [redis] url */
    struct redis *redis;
    struct queue *queue;
    struct resign *resign; /* the workers' signer */
    struct worker *worker; /* NULL with serve */
    struct event *grace_timer;
    int64_t grace_left_ms;
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
          "  status [-c FILE]   queue depth, rate, quota, recent batches\n"
          "  batch  [-c FILE] show ID\n"
          "  dlq    [-c FILE] list | retry [ID...] | purge\n"
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

/* sesgate keygen: a key id and a 40-character secret from the CSPRNG. */
static int main_keygen(void)
{
    static const char id_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    static const char secret_chars[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char r[18 + 40];
    if (RAND_bytes(r, sizeof r) != 1) {
        fprintf(stderr, "sesgate: cannot read the random number generator\n");
        return 1;
    }
    char id[21] = "SG", secret[41];
    for (int i = 0; i < 18; i++)
        id[2 + i] = id_chars[r[i] & 31];
    for (int i = 0; i < 40; i++)
        secret[i] = secret_chars[r[18 + i] & 63];
    id[20] = secret[40] = '\0';
    printf("access_key_id = %s\nsecret_access_key = %s\n", id, secret);
    OPENSSL_cleanse(secret, sizeof secret);
    OPENSSL_cleanse(r, sizeof r);
    return 0;
}

/* Every 100 ms: write out the gathered log lines. */
static void main_log_cb(evutil_socket_t fd, short what, void *arg)
{
    log_flush();
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

/* Raise the open-file limit to what max_connections needs (up to the hard
 * limit), and say so when the hard limit is too low. */
static void main_raise_nofile(int64_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    rlim_t need = (rlim_t)want + 256; /* listeners, upstream, Redis, logs */
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
    if (strcmp(cfg.endpoint, "sandbox") == 0) {
        fprintf(stderr, "sesgate: the sandbox upstream is not available in this release; set "
                        "[upstream] endpoint to an SES endpoint URL\n");
        config_free(&cfg);
        return 1;
    }
    if (cfg.access_key_id[0] == '\0' || cfg.secret_access_key[0] == '\0') {
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
    if (strcmp(mode, "work") != 0) {
        s.front = front_new(s.base, &cfg, up, err, sizeof err);
        if (s.front == NULL) {
            fprintf(stderr, "sesgate: %s\n", err);
            goto out;
        }
        front_set_queue(s.front, s.queue);
    }
    if (strcmp(mode, "serve") != 0) {
        s.resign = resign_new(&cfg, err, sizeof err);
        if (s.resign == NULL) {
            fprintf(stderr, "sesgate: %s\n", err);
            goto out;
        }
        char host[256] = "sesgate", name[300];
        if (gethostname(host, sizeof host) < 0)
            snprintf(host, sizeof host, "sesgate");
        host[sizeof host - 1] = '\0';
        snprintf(name, sizeof name, "%s-%ld", host, (long)getpid());
        s.worker = worker_start(s.base, &cfg, s.queue, up, s.resign, name);
    }
    if (cfg.admin_listen[0]) {
        s.admin = admin_new(s.base, &cfg, up, s.redis, err, sizeof err);
        if (s.admin == NULL) {
            fprintf(stderr, "sesgate: admin listener: %s\n", err);
            goto out;
        }
    }
    struct event *sigterm = evsignal_new(s.base, SIGTERM, main_signal_cb, &s);
    struct event *sigint = evsignal_new(s.base, SIGINT, main_signal_cb, &s);
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    s.log_timer = event_new(s.base, -1, EV_PERSIST, main_log_cb, NULL);
    struct timeval log_tv = {0, 100000};
    event_add(s.log_timer, &log_tv);
    log_set_buffered(true);
    char nclients[16];
    snprintf(nclients, sizeof nclients, "%zu", cfg.nclients);
    log_event(LOG_INFO, "start", "version", SESGATE_VERSION, "mode", mode, "listen",
              s.front ? cfg.listen : NULL, "admin", cfg.admin_listen, "upstream", cfg.endpoint,
              "region", cfg.region, "clients", nclients, "redis", redis_where(s.redis), NULL);
    event_base_dispatch(s.base);
    log_event(LOG_INFO, "stopped", NULL);
    log_set_buffered(false);
    event_free(s.log_timer);
    event_free(sigterm);
    event_free(sigint);
    rc = 0;
out:
    if (s.grace_timer)
        event_free(s.grace_timer);
    admin_free(s.admin);
    front_free(s.front);
    worker_free(s.worker);
    queue_free(s.queue);
    redis_free(s.redis);
    if (s.resign)
        resign_free(s.resign);
    redisproc_stop(s.redisproc);
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    upstream_free(up);
    event_base_free(s.base);
    curl_global_cleanup();
    metrics_cleanup();
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
    if (strcmp(cmd, "status") == 0 || strcmp(cmd, "batch") == 0 || strcmp(cmd, "dlq") == 0) {
        fprintf(stderr,
                "sesgate: '%s' needs the Redis queue, which this release does not have "
                "yet\n",
                cmd);
        return 2;
    }
    fprintf(stderr, "sesgate: unknown command '%s'\n\n", cmd);
    main_usage(stderr);
    return 2;
}
