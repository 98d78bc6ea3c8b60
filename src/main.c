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
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "admin.h"
#include "buf.h"
#include "clock.h"
#include "inflight.h"
#include "config.h"
#include "events.h"
#include "feedback.h"
#include "front.h"
#include "log.h"
#include "smtp.h"
#include "metrics.h"
#include "ops.h"
#include "suppress.h"
#include "queue.h"
#include "rscript.h"
#include "redis.h"
#include "limiter.h"
#include "redisproc.h"
#include "sentinel.h"
#include "resign.h"
#include "creds.h"
#include "relay.h"
#include "sandbox.h"
#include "sandbox_sns.h"
#include "smtp.h"
#include "smtpd.h"
#include "snspub.h"
#include "upstream.h"
#include "worker.h"

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
    struct sentinel *sentinel; /* [redis] sentinels; NULL without */
    struct redis *wait_redis;  /* [redis] wait_replicas: the WAIT connection; NULL when 0 */
    struct rscript *scripts;
    struct queue *queue;
    struct resign *resign; /* the workers' signer */
    struct creds **creds;  /* each upstream's credentials (NULL: the sandbox's keys) */
    size_t ncreds;
    struct sandbox *sandbox; /* the built-in SES with endpoint = sandbox */
    struct worker *worker;   /* NULL with serve */
    struct relay *relay;     /* relays to the clients' events_url; NULL with serve */
    struct main_up *ups;     /* [upstream.NAME]s: ups[u] is cfg->upstreams[u], u >= 1 */
    size_t nups;
    struct events *events;     /* SES events applied; NULL when no event reaches sesgate */
    struct feedback *feedback; /* the SNS endpoint; NULL likewise, and with work */
    struct smtpd *smtpd;       /* the [smtp] listeners; NULL when off */
    char smtp_cert[4200];      /* their certificate and key files */
    char smtp_key[4200];
    bool smtp_quick; /* the quick start's SMTP listener (no configuration file) */
    struct event *grace_timer;
    int64_t grace_left_ms;
    struct config *cfg;     /* the running configuration */
    const char *path;       /* its file, or NULL */
    bool default_client;    /* no [client.*]: the key of <data_dir>/credentials */
    struct config *retired; /* configurations whose clients a reload replaced: requests */
    size_t nretired;        /* in flight may still refer to them, so they live to the end */
};

/* What a process runs for one [upstream.NAME] (upstreams[0]'s are
 * main_state's own): its HTTP client, signer, limiter and worker. */
struct main_up {
    struct upstream *up;
    struct resign *resign;
    struct limiter *limiter;
    struct worker *worker; /* NULL with serve */
};

/* Sends in flight in every upstream's worker. */
static size_t main_workers_inflight(const struct main_state *s)
{
    size_t n = worker_inflight(s->worker);
    for (size_t u = 1; u < s->nups; u++)
        n += worker_inflight(s->ups[u].worker);
    return n;
}

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
          "  batch  [-c FILE] pause|resume|cancel ID\n"
          "  dlq    [-c FILE] list | retry [ID...] | purge\n"
          "  relay  [-c FILE] list | retry ID...|--all | purge   relays that kept failing\n"
          "  suppression [-c FILE] list | export | add ADDRESS [--reason R] | remove ADDRESS\n"
          "              | import FILE   the suppression list (docs/SUPPRESSION.md)\n"
          "  (status, batch, dlq, relay and suppression print JSON with --json; --watch refreshes "
          "every\n"
          "  second until the queue is idle or the batch complete)\n"
          "  keygen             print a new client key id and secret\n"
          "  smtp-password [-c FILE] [CLIENT]   each client's SMTP username and password\n"
          "                     (SES's algorithm, the configured region), on stdout\n"
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
               strstr(cfg->upstreams[0].endpoint, ".amazonaws.com") ? "Amazon SES at " : "",
               cfg->upstreams[0].endpoint, cfg->upstreams[0].region);
    if (creds) {
        const struct config_client *c = &cfg->clients[cfg->nclients - 1];
        printf("sesgate: client \"default\": key %s; its secret is in %s (profile sesgate)\n"
               "sesgate: try it from another terminal:\n"
               "  AWS_SHARED_CREDENTIALS_FILE=%s AWS_PROFILE=sesgate aws --endpoint-url http://%s "
               "--region %s ses send-email --from sender@example.com --to someone@example.com "
               "--subject Hello --text 'Hello from sesgate'\n",
               c->access_key_id, creds, creds, cfg->listen, cfg->upstreams[0].region);
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
    size_t busy = (s->front ? front_inflight(s->front) : 0) + main_workers_inflight(s) +
                  relay_inflight(s->relay) + smtpd_inflight(s->smtpd);
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
    for (size_t u = 1; u < s->nups; u++)
        worker_stop(s->ups[u].worker);
    relay_stop(s->relay);
    if (s->front)
        front_stop_accepting(s->front);
    if (s->smtpd)
        smtpd_stop_accepting(s->smtpd);
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
    if (s->smtpd && smtpd_reload_tls(s->smtpd, tls_err, sizeof tls_err) < 0)
        log_event(LOG_ERROR, "tls_reload_failed", "listener", "smtp", "error", tls_err, NULL);
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

/* A connection to the daemon's Redis: the managed redis-server's socket,
 * else [redis] url (plain or TLS) or the master s->sentinel names. The
 * main connection and the WAIT connection are both made here, so they
 * reach the same server the same way. NULL with a reason in err. */
static struct redis *main_redis_new(struct main_state *s, const struct config *cfg, char *err,
                                    size_t errlen)
{
    if (s->redisproc)
        return redis_new(s->base, redisproc_socket(s->redisproc), NULL, err, errlen);
    return redis_new_sentinel(s->base, cfg->redis_url, cfg->redis_tls_ca_file, s->sentinel, err,
                              errlen);
}

/* Start the daemon's parts for mode on s->base: Redis (managed or not), the
 * scripts, the queue, the sandbox when configured (cfg then points
 * upstream at it), the signer, the limiter, the front, the worker, the admin
 * listener. false (reported) when one cannot start; main_stop_parts frees
 * what did. */
static bool main_start_parts(struct main_state *s, struct config *cfg, const char *mode,
                             bool sandbox, struct upstream *up)
{
    char err[1024];
    if (cfg->redis_url[0] == '\0' && cfg->redis_sentinels[0] == '\0') {
        s->redisproc = redisproc_start(s->base, cfg->data_dir, err, sizeof err);
        if (s->redisproc == NULL) {
            fprintf(stderr, "sesgate: %s\n", err);
            return false;
        }
    }
    if (cfg->redis_sentinels[0]) {
        s->sentinel = sentinel_new(s->base, cfg->redis_sentinels, cfg->redis_sentinel_master,
                                   cfg->redis_sentinel_password, err, sizeof err);
        if (s->sentinel == NULL) {
            fprintf(stderr, "sesgate: %s\n", err);
            return false;
        }
    }
    s->redis = main_redis_new(s, cfg, err, sizeof err);
    if (s->redis == NULL) {
        fprintf(stderr, "sesgate: %s\n", err);
        return false;
    }
    s->scripts = rscript_new(cfg, s->redis);
    s->queue = queue_new(s->base, cfg, s->scripts);
    if (cfg->redis_wait_replicas > 0 && strcmp(mode, "work") != 0) {
        /* WAIT blocks its connection: it has one of its own */
        s->wait_redis = main_redis_new(s, cfg, err, sizeof err);
        if (s->wait_redis == NULL) {
            fprintf(stderr, "sesgate: %s\n", err);
            return false;
        }
        redis_set_role(s->wait_redis, "wait");
        queue_set_wait(s->queue, s->wait_redis);
    }
    if (sandbox) {
        s->sandbox = sandbox_start(s->base, cfg, err, sizeof err);
        if (s->sandbox == NULL) {
            fprintf(stderr, "sesgate: sandbox: %s\n", err);
            return false;
        }
        /* Everything upstream now goes to the sandbox, signed with its key. */
        free(cfg->upstreams[0].endpoint);
        cfg->upstreams[0].endpoint = xstrdup(sandbox_endpoint(s->sandbox));
        free(cfg->upstreams[0].access_key_id);
        cfg->upstreams[0].access_key_id = xstrdup(sandbox_access_key_id(s->sandbox));
        free(cfg->upstreams[0].secret_access_key);
        cfg->upstreams[0].secret_access_key = xstrdup(sandbox_secret_access_key(s->sandbox));
        free(cfg->upstreams[0].session_token);
        cfg->upstreams[0].session_token = xstrdup("");
        cfg->sandbox_started = true;
    }
    /* Each upstream's credential provider, chosen once (docs/CREDENTIALS.md). */
    s->creds = xcalloc(cfg->nupstreams, sizeof *s->creds);
    s->ncreds = cfg->nupstreams;
    for (size_t u = 0; u < cfg->nupstreams; u++) {
        if (u == 0 && sandbox)
            continue;
        s->creds[u] = creds_new(s->base, &cfg->upstreams[u], environ, err, sizeof err);
        if (s->creds[u] == NULL) {
            fprintf(stderr, "sesgate: upstream %s: %s\n", cfg->upstreams[u].name, err);
            return false;
        }
        creds_register(s->creds[u]);
    }
    s->resign = resign_new(&cfg->upstreams[0], err, sizeof err);
    if (s->resign == NULL) {
        fprintf(stderr, "sesgate: %s\n", err);
        return false;
    }
    s->limiter = limiter_new(s->base, cfg, s->scripts, up, s->resign);
    /* every [upstream.NAME]: its own client, signer and limiter */
    s->nups = cfg->nupstreams;
    s->ups = xcalloc(s->nups, sizeof *s->ups);
    for (size_t u = 1; u < s->nups; u++) {
        const struct config_upstream *uc = &cfg->upstreams[u];
        s->ups[u].up = upstream_new(s->base, uc->timeout_ms, (size_t)cfg->max_body + (1u << 20),
                                    getenv("SESGATE_CA_BUNDLE"));
        s->ups[u].resign = resign_new(uc, err, sizeof err);
        if (s->ups[u].resign == NULL) {
            fprintf(stderr, "sesgate: [upstream.%s]: %s\n", uc->name, err);
            return false;
        }
        s->ups[u].limiter =
            limiter_new_for(s->base, cfg, uc, s->scripts, s->ups[u].up, s->ups[u].resign);
        log_event(LOG_INFO, "upstream", "name", uc->name, "endpoint", uc->endpoint, "region",
                  uc->region, NULL);
    }
    inflight_set_cap(cfg->max_inflight_bytes);
    if (strcmp(mode, "work") != 0) {
        s->front = front_new(s->base, cfg, up, err, sizeof err);
        if (s->front == NULL) {
            fprintf(stderr, "sesgate: %s\n", err);
            return false;
        }
        front_set_queue(s->front, s->queue);
        front_set_limiter(s->front, s->limiter);
        for (size_t u = 1; u < s->nups; u++)
            front_set_upstream(s->front, u, s->ups[u].up, s->ups[u].limiter);
        if (config_feedback_enabled(cfg)) {
            s->events = events_new(s->scripts, cfg);
            s->feedback = feedback_new(s->base, cfg, s->scripts, s->events, err, sizeof err);
            if (s->feedback == NULL) {
                fprintf(stderr, "sesgate: %s\n", err);
                return false;
            }
            front_set_feedback(s->front, s->feedback);
        }
        /* The sandbox's events go to this listener's feedback endpoint,
         * which knows its certificate and trusts its CA for that one URL;
         * a process without the listener publishes none (another process's
         * endpoint does not know this sandbox's CA). */
        struct sandbox_sns *pub = s->sandbox ? sandbox_events(s->sandbox) : NULL;
        if (pub && s->feedback) {
            if (feedback_trust_local(s->feedback, sandbox_sns_cert_url(pub), sandbox_sns_pem(pub),
                                     sandbox_sns_ca(pub)) < 0) {
                fprintf(stderr, "sesgate: sandbox: its certificate URL %s is refused\n",
                        sandbox_sns_cert_url(pub));
                return false;
            }
            sandbox_sns_post_to_listener(pub);
        }
    }
    if (strcmp(mode, "serve") != 0) {
        char host[256] = "sesgate", name[300];
        if (gethostname(host, sizeof host) < 0)
            snprintf(host, sizeof host, "sesgate");
        host[sizeof host - 1] = '\0';
        snprintf(name, sizeof name, "%s-%ld", host, (long)getpid());
        s->worker = worker_start(s->base, cfg, s->queue, up, s->resign, s->limiter, name);
        for (size_t u = 1; u < s->nups; u++) {
            char uname[600];
            snprintf(uname, sizeof uname, "%s-%s", name, cfg->upstreams[u].name);
            s->ups[u].worker =
                worker_start_for(s->base, cfg, &cfg->upstreams[u], s->queue, s->ups[u].up,
                                 s->ups[u].resign, s->ups[u].limiter, uname);
        }
        s->relay = relay_start(s->base, cfg, s->scripts, name);
    }
    if (s->front && (cfg->smtp_listen[0] || cfg->smtp_tls_listen[0])) {
        s->smtpd = smtpd_new(s->base, cfg, s->front, s->smtp_cert, s->smtp_key, err, sizeof err);
        if (s->smtpd == NULL && s->smtp_quick) {
            /* the quick start goes on without SMTP (its port taken) */
            fprintf(stderr, "sesgate: warning: %s; SMTP is off\n", err);
        } else if (s->smtpd == NULL) {
            fprintf(stderr, "sesgate: %s\n", err);
            return false;
        }
    }
    if (cfg->admin_listen[0]) {
        s->admin = admin_new(s->base, cfg, up, s->scripts, err, sizeof err);
        if (s->admin == NULL) {
            fprintf(stderr, "sesgate: admin listener: %s\n", err);
            return false;
        }
    }
    return true;
}

/* Free what main_start_parts started, in the order that answers every
 * callback still due before its owner goes. */
static void main_stop_parts(struct main_state *s)
{
    admin_free(s->admin);
    smtpd_free(s->smtpd); /* its submissions are the front's: let go of first */
    front_free(s->front);
    feedback_free(s->feedback);
    worker_free(s->worker);
    for (size_t u = 1; u < s->nups; u++)
        worker_free(s->ups[u].worker);
    relay_free(s->relay);
    limiter_free(s->limiter);
    for (size_t u = 1; u < s->nups; u++)
        limiter_free(s->ups[u].limiter);
    queue_free(s->queue);
    rscript_free(s->scripts);
    if (s->events)
        events_free(s->events);
    redis_free(s->redis);
    redis_free(s->wait_redis);
    sentinel_free(s->sentinel);
    if (s->resign)
        resign_free(s->resign);
    for (size_t u = 1; u < s->nups; u++) {
        if (s->ups[u].resign)
            resign_free(s->ups[u].resign);
        upstream_free(s->ups[u].up);
    }
    free(s->ups);
    s->ups = NULL;
    s->nups = 0;
    for (size_t u = 0; u < s->ncreds; u++)
        creds_free(s->creds[u]);
    free(s->creds);
    s->creds = NULL;
    s->ncreds = 0;
    redisproc_stop(s->redisproc);
    sandbox_free(s->sandbox);
}

/* The quick start's self-signed certificate for the SMTP listener, made
 * once under data_dir (key mode 0600) and kept. false (reported) when it
 * cannot be made. */
static bool main_selfsigned(const struct config *cfg, char *cert, size_t certlen, char *key,
                            size_t keylen)
{
    snprintf(cert, certlen, "%s/smtp-selfsigned.crt", cfg->data_dir);
    snprintf(key, keylen, "%s/smtp-selfsigned.key", cfg->data_dir);
    if (access(cert, R_OK) == 0 && access(key, R_OK) == 0)
        return true;
    if (mkdir(cfg->data_dir, 0750) < 0 && errno != EEXIST) {
        fprintf(stderr, "sesgate: %s: %s\n", cfg->data_dir, strerror(errno));
        return false;
    }
    unsigned char serial[16];
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    X509 *x = NULL;
    if (pk != NULL && RAND_bytes(serial, sizeof serial) == 1)
        x = snspub_cert("localhost", pk, NULL, NULL, false, time(NULL), 3650, serial);
    bool ok = x != NULL;
    int fd = ok ? open(key, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    ok = ok && f != NULL && PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) == 1;
    if (f)
        ok = fclose(f) == 0 && ok;
    else if (fd >= 0)
        close(fd);
    f = ok ? fopen(cert, "w") : NULL;
    ok = ok && f != NULL && PEM_write_X509(f, x) == 1;
    if (f)
        ok = fclose(f) == 0 && ok;
    X509_free(x);
    EVP_PKEY_free(pk);
    if (!ok) {
        fprintf(stderr, "sesgate: cannot make the SMTP listener's certificate %s\n", cert);
        unlink(cert);
        unlink(key);
    }
    return ok;
}

/* The SMTP listeners' certificate: [server] tls_cert and tls_key; with no
 * configuration file and no [smtp] listen set (not even empty, through
 * SESGATE_SMTP_LISTEN), the quick start's STARTTLS listener on the API's
 * host at its port + 562 (8587 beside 8025), with a self-signed
 * certificate unless one is configured. false (reported) on failure. */
static bool main_smtp_setup(struct main_state *s, struct config *cfg, const char *path)
{
    if ((path == NULL || path[0] == '\0') && cfg->smtp_listen[0] == '\0' &&
        cfg->smtp_tls_listen[0] == '\0' && getenv("SESGATE_SMTP_LISTEN") == NULL) {
        const char *colon = strrchr(cfg->listen, ':');
        long port = colon ? strtol(colon + 1, NULL, 10) : 0;
        if (colon && port > 0 && port + 562 < 65536) {
            char addr[300];
            snprintf(addr, sizeof addr, "%.*s:%ld", (int)(colon - cfg->listen), cfg->listen,
                     port + 562);
            free(cfg->smtp_listen);
            cfg->smtp_listen = xstrdup(addr);
            s->smtp_quick = true;
        }
    }
    if (cfg->smtp_listen[0] == '\0' && cfg->smtp_tls_listen[0] == '\0')
        return true;
    if (cfg->tls_cert[0]) {
        snprintf(s->smtp_cert, sizeof s->smtp_cert, "%s", cfg->tls_cert);
        snprintf(s->smtp_key, sizeof s->smtp_key, "%s", cfg->tls_key);
        return true;
    }
    if (!s->smtp_quick)
        return true; /* smtpd_new says what is missing */
    return main_selfsigned(cfg, s->smtp_cert, sizeof s->smtp_cert, s->smtp_key, sizeof s->smtp_key);
}

/* How to send through the SMTP listener (stdout, for the person who
 * started sesgate): host, port, and for the default client its user name
 * and SMTP password. */
static void main_smtp_banner(const struct main_state *s, const struct config *cfg,
                             bool default_client)
{
    if (s->smtpd == NULL)
        return;
    const char *addr = cfg->smtp_listen[0] ? cfg->smtp_listen : cfg->smtp_tls_listen;
    const char *colon = strrchr(addr, ':');
    printf("sesgate: SMTP: host %.*s port %d (%s)%s\n", colon ? (int)(colon - addr) : 0, addr,
           smtpd_port(s->smtpd, cfg->smtp_listen[0] == '\0'),
           cfg->smtp_listen[0] ? "STARTTLS" : "implicit TLS",
           s->smtp_quick && !cfg->tls_cert[0] ? ", a self-signed certificate" : "");
    if (default_client && cfg->nclients > 0) {
        const struct config_client *c = &cfg->clients[cfg->nclients - 1];
        char pw[SMTP_PASSWORD_LEN + 1];
        smtp_password(c->secret_access_key, cfg->upstreams[0].region, pw);
        printf("sesgate: SMTP user %s, password %s (`sesgate smtp-password` prints it again)\n",
               c->access_key_id, pw);
        OPENSSL_cleanse(pw, sizeof pw);
    }
    fflush(stdout);
}

/* sesgate serve / run / work: the SES front, the queue workers, or both. */
static int main_serve(const char *path, const char *mode)
{
    struct config cfg = {0};
    main_load_config(&cfg, path);
    bool sandbox = strcmp(cfg.upstreams[0].endpoint, "sandbox") == 0;
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
    struct main_state s = {0};
    if (strcmp(mode, "work") != 0 && !main_smtp_setup(&s, &cfg, path)) {
        config_free(&cfg);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    main_raise_nofile(cfg.max_connections + cfg.smtp_max_connections);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    s.base = event_base_new();
    struct upstream *up =
        upstream_new(s.base, cfg.upstreams[0].timeout_ms, (size_t)cfg.max_body + (1u << 20),
                     getenv("SESGATE_CA_BUNDLE"));
    int rc = 1;
    /* SIGTERM and SIGINT wait while Redis starts, so that a stop then still
     * stops it; the handlers below take them. */
    sigset_t stop_sigs, old_mask;
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGTERM);
    sigaddset(&stop_sigs, SIGINT);
    sigaddset(&stop_sigs, SIGHUP);
    sigprocmask(SIG_BLOCK, &stop_sigs, &old_mask);
    if (!main_start_parts(&s, &cfg, mode, sandbox, up))
        goto out;
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
    main_smtp_banner(&s, &cfg, default_client);
    log_event(LOG_INFO, "start", "version", SESGATE_VERSION, "mode", mode, "listen",
              s.front ? cfg.listen : NULL, "admin", cfg.admin_listen, "upstream",
              sandbox ? "sandbox" : cfg.upstreams[0].endpoint, "region", cfg.upstreams[0].region,
              "credentials", s.creds[0] ? creds_source(s.creds[0]) : "sandbox", "clients", nclients,
              "redis", redis_where(s.redis), NULL);
    for (size_t u = 1; u < s.ncreds; u++)
        log_event(LOG_INFO, "upstream", "name", cfg.upstreams[u].name, "endpoint",
                  cfg.upstreams[u].endpoint, "region", cfg.upstreams[u].region, "credentials",
                  creds_source(s.creds[u]), NULL);
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
    main_stop_parts(&s);
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
    /* Each upstream's credential source, as the daemon would choose it. */
    int rc = 0;
    for (size_t u = 0; u < cfg.nupstreams; u++) {
        const struct config_upstream *up = &cfg.upstreams[u];
        if (strcmp(up->endpoint, "sandbox") == 0)
            continue;
        if (creds_describe(up, environ, &out) < 0) {
            fprintf(stderr, "sesgate: upstream %s: %s\n", up->name, buf_cstr(&out));
            rc = 1;
        } else {
            printf("; upstream %s credentials: %s\n", up->name, buf_cstr(&out));
        }
    }
    buf_free(&out);
    if (*cfg.feedback_test_trust)
        fprintf(stderr, "sesgate: warning: [feedback] test_trust is set: SNS messages signed "
                        "under its CA and fetched from its host are believed; for tests only\n");
    config_free(&cfg);
    return rc;
}

/* sesgate smtp-password [CLIENT]: each client's (or the named one's) SMTP
 * username (its access key id) and SES SMTP password for the configured
 * region, on stdout only. With no [client.*] it is the default client of
 * <data_dir>/credentials, when the daemon has made it. */
static int main_smtp_password(const char *path, int argc, char **argv)
{
    const char *name = NULL;
    for (int k = 0; k < argc; k++) {
        if (strcmp(argv[k], "-c") == 0 && k + 1 < argc) {
            path = argv[++k];
        } else if (argv[k][0] != '-' && name == NULL) {
            name = argv[k];
        } else {
            fprintf(stderr, "usage: sesgate smtp-password [CLIENT] [-c FILE]\n");
            return 2;
        }
    }
    struct config cfg = {0};
    main_load_config(&cfg, path);
    if (cfg.nclients == 0) {
        char creds[4096];
        snprintf(creds, sizeof creds, "%s/credentials", cfg.data_dir);
        if (access(creds, F_OK) != 0) {
            fprintf(stderr,
                    "sesgate: no [client.*] configured and no %s yet (sesgate makes the "
                    "default client's key on its first start)\n",
                    creds);
            config_free(&cfg);
            return 1;
        }
        if (!main_default_client(&cfg, creds, sizeof creds)) {
            config_free(&cfg);
            return 1;
        }
    }
    int found = 0;
    for (size_t i = 0; i < cfg.nclients; i++) {
        const struct config_client *c = &cfg.clients[i];
        if (name != NULL && strcmp(name, c->name) != 0)
            continue;
        char pass[SMTP_PASSWORD_LEN + 1];
        smtp_password(c->secret_access_key, cfg.upstreams[0].region, pass);
        printf("%sclient = %s\nregion = %s\nusername = %s\npassword = %s\n", found ? "\n" : "",
               c->name, cfg.upstreams[0].region, c->access_key_id, pass);
        OPENSSL_cleanse(pass, sizeof pass);
        found++;
    }
    config_free(&cfg);
    if (found == 0) {
        fprintf(stderr, "sesgate: no client '%s'\n", name);
        return 1;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

/* sesgate status / batch / dlq: parse -c, --json and --watch among args,
 * load the configuration, run the operator command (ops). */
static int main_ops(const char *cmd, const char *path, int argc, char **argv)
{
    char **pos = xcalloc((size_t)argc + 1, sizeof *pos);
    int npos = 0;
    bool json = false, watch = false;
    const char *reason = NULL;
    bool sup = strcmp(cmd, "suppression") == 0;
    for (int k = 0; k < argc; k++) {
        if (strcmp(argv[k], "-c") == 0 && k + 1 < argc)
            path = argv[++k];
        else if (sup && strcmp(argv[k], "--reason") == 0 && k + 1 < argc)
            reason = argv[++k];
        else if (strcmp(argv[k], "--json") == 0)
            json = true;
        else if (strcmp(argv[k], "--watch") == 0 && strcmp(cmd, "dlq") != 0 &&
                 strcmp(cmd, "relay") != 0 && !sup)
            watch = true;
        else
            pos[npos++] = argv[k];
    }
    struct config cfg = {0};
    main_load_config(&cfg, path);
    int rc = sup ? suppress_run(&cfg, npos, pos, reason, json)
                 : ops_run(cmd, &cfg, npos, pos, json, watch);
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
    if (strcmp(cmd, "smtp-password") == 0)
        return main_smtp_password(path, argc - argi, argv + argi);
    if (strcmp(cmd, "serve") == 0 || strcmp(cmd, "run") == 0 || strcmp(cmd, "work") == 0)
        return main_serve(path, cmd);
    if (strcmp(cmd, "status") == 0 || strcmp(cmd, "batch") == 0 || strcmp(cmd, "dlq") == 0 ||
        strcmp(cmd, "relay") == 0 || strcmp(cmd, "suppression") == 0)
        return main_ops(cmd, path, argc - argi, argv + argi);
    fprintf(stderr, "sesgate: unknown command '%s'\n\n", cmd);
    main_usage(stderr);
    return 2;
}
