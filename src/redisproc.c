/* redisproc: start, supervise and stop the managed redis-server. */
#include "redisproc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "buf.h"
#include "clock.h"
#include "log.h"

#define REDISPROC_START_WAIT_MS  10000 /* start-up: until the server answers PING */
#define REDISPROC_STOP_WAIT_MS   5000  /* exit: SIGTERM, then SIGKILL after this */
#define REDISPROC_BACKOFF_MIN_MS 1000  /* first restart delay */
#define REDISPROC_BACKOFF_MAX_MS 30000 /* restart delay ceiling */
#define REDISPROC_STABLE_MS      10000 /* a server that ran this long resets the backoff */
#define REDISPROC_WATCH_MS       1000  /* check the lock and an adopted server this often */

struct redisproc {
    struct event_base *base;
    char *dir;          /* <data_dir>/redis, absolute; owned */
    char *sock;         /* <dir>/redis.sock; owned */
    char *conf;         /* <dir>/redis.conf; owned */
    char *logfile;      /* <dir>/redis.log; owned */
    char *lockfile;     /* <dir>/redis.lock; owned */
    char *binary;       /* redis-server found in PATH; owned */
    int lock_fd;        /* open on lockfile */
    bool locked;        /* we hold the flock: we are responsible for the server */
    pid_t pid;          /* the redis-server we started and supervise; 0: none */
    int64_t started_ms; /* ms, monotonic: when pid was started */
    int64_t backoff_ms; /* ms: the next restart's delay */
    struct event *sigchld;
    struct event *restart_timer;
    struct event *watch_timer;
};

/* Sleep for ms milliseconds. */
static void redisproc_sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* mkdir -p with mode 0700 for every directory created. */
static int redisproc_mkdirs(const char *path, char *err, size_t errlen)
{
    char *p = xstrdup(path);
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char saved = *s;
        *s = '\0';
        if (mkdir(p, 0700) < 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create %s: %s", p, strerror(errno));
            free(p);
            return -1;
        }
        *s = saved;
        if (saved == '\0')
            break;
    }
    free(p);
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s is not a directory", path);
        return -1;
    }
    return 0;
}

/* The first executable redis-server in PATH, or NULL. */
static char *redisproc_find_binary(void)
{
    const char *path = getenv("PATH");
    if (path == NULL || *path == '\0')
        path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    struct buf cand = BUF_INIT;
    for (const char *s = path;;) {
        const char *e = strchr(s, ':');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        buf_reset(&cand);
        if (n == 0)
            buf_adds(&cand, ".");
        else
            buf_add(&cand, s, n);
        buf_adds(&cand, "/redis-server");
        struct stat st;
        if (stat(cand.data, &st) == 0 && S_ISREG(st.st_mode) && access(cand.data, X_OK) == 0)
            return buf_detach(&cand, NULL);
        if (e == NULL)
            break;
        s = e + 1;
    }
    buf_free(&cand);
    return NULL;
}

/* True when a server answers PING on the socket (or is loading its data). */
static bool redisproc_ping(const char *sock)
{
    struct timeval tv = {0, 500000};
    redisContext *c = redisConnectUnixWithTimeout(sock, tv);
    if (c == NULL)
        return false;
    bool ok = false;
    if (c->err == 0 && redisSetTimeout(c, tv) == REDIS_OK) {
        redisReply *r = redisCommand(c, "PING");
        if (r) {
            ok = (r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0) ||
                 (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "LOADING", 7) == 0);
            freeReplyObject(r);
        }
    }
    redisFree(c);
    return ok;
}

/* True unless connecting to the socket is refused (no listener, no file):
 * a non-blocking check that is safe on the event loop. */
static bool redisproc_socket_alive(const char *sock)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return true; /* cannot tell: never start a second server on a guess */
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, sock, strlen(sock) + 1);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    int e = errno;
    close(fd);
    return rc == 0 || e == EAGAIN || e == EINPROGRESS || e == EINTR;
}

/* Try to take the lock that makes this process responsible for the server. */
static bool redisproc_try_lock(struct redisproc *rp)
{
    if (!rp->locked && flock(rp->lock_fd, LOCK_EX | LOCK_NB) == 0)
        rp->locked = true;
    return rp->locked;
}

/* Append a redis.conf directive whose value is a path, quoted and escaped. */
static void redisproc_conf_path(struct buf *b, const char *key, const char *path)
{
    buf_printf(b, "%s \"", key);
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        if (*p == '"' || *p == '\\')
            buf_printf(b, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            buf_printf(b, "\\x%02x", *p);
        else
            buf_addc(b, (char)*p);
    }
    buf_adds(b, "\"\n");
}

/* Write redis.conf (through a temporary file and a rename). */
static int redisproc_write_conf(struct redisproc *rp, char *err, size_t errlen)
{
    struct buf b = BUF_INIT;
    buf_adds(&b, "# The redis-server sesgate manages. Rewritten by sesgate at every start.\n"
                 "daemonize no\n"
                 "supervised no\n"
                 "port 0\n"
                 "unixsocketperm 700\n"
                 "loglevel notice\n"
                 "save \"\"\n"
                 "appendonly yes\n"
                 "appendfsync everysec\n"
                 "maxmemory-policy noeviction\n"
                 "# A completed batch's keys (a million outcomes, a million addresses)\n"
                 "# are freed in a background thread when they expire or are deleted.\n"
                 "lazyfree-lazy-expire yes\n"
                 "lazyfree-lazy-user-del yes\n"
                 "lazyfree-lazy-server-del yes\n");
    redisproc_conf_path(&b, "unixsocket", rp->sock);
    redisproc_conf_path(&b, "dir", rp->dir);
    redisproc_conf_path(&b, "logfile", rp->logfile);
    struct buf tmp = BUF_INIT;
    buf_printf(&tmp, "%s.tmp", rp->conf);
    int rc = -1;
    int fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp.data, strerror(errno));
        goto out;
    }
    ssize_t n = write(fd, b.data, b.len);
    int werr = errno;
    if (close(fd) < 0 && n == (ssize_t)b.len) {
        n = -1;
        werr = errno;
    }
    if (n != (ssize_t)b.len) {
        snprintf(err, errlen, "cannot write %s: %s", tmp.data,
                 n < 0 ? strerror(werr) : "short write");
        unlink(tmp.data);
        goto out;
    }
    if (rename(tmp.data, rp->conf) < 0) {
        snprintf(err, errlen, "cannot write %s: %s", rp->conf, strerror(errno));
        unlink(tmp.data);
        goto out;
    }
    rc = 0;
out:
    buf_free(&tmp);
    buf_free(&b);
    return rc;
}

/* Describe a wait status: "exit 1", "killed by SIGKILL". */
static void redisproc_status(int st, char *out, size_t len)
{
    if (WIFEXITED(st)) {
        snprintf(out, len, "exit %d", WEXITSTATUS(st));
    } else if (WIFSIGNALED(st)) {
        const char *name = sigabbrev_np(WTERMSIG(st));
        if (name)
            snprintf(out, len, "killed by SIG%s", name);
        else
            snprintf(out, len, "killed by signal %d", WTERMSIG(st));
    } else {
        snprintf(out, len, "status %d", st);
    }
}

/* The last non-empty line of redis.log (at most len - 1 bytes), or "". */
static void redisproc_log_tail(const struct redisproc *rp, char *out, size_t len)
{
    out[0] = '\0';
    int fd = open(rp->logfile, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char tail[4096];
    off_t size = lseek(fd, 0, SEEK_END);
    off_t from = size > (off_t)sizeof tail ? size - (off_t)sizeof tail : 0;
    ssize_t n = size > 0 ? pread(fd, tail, sizeof tail, from) : 0;
    close(fd);
    while (n > 0 && (tail[n - 1] == '\n' || tail[n - 1] == '\r' || tail[n - 1] == ' '))
        n--;
    if (n <= 0)
        return;
    ssize_t start = n;
    while (start > 0 && tail[start - 1] != '\n')
        start--;
    size_t l = (size_t)(n - start);
    if (l >= len)
        l = len - 1;
    memcpy(out, tail + start, l);
    out[l] = '\0';
}

/* Start redis-server in its own process group, with stdin on /dev/null,
 * stdout and stderr appended to redis.log, and no descriptor of ours. */
static int redisproc_spawn(struct redisproc *rp, char *err, size_t errlen)
{
    if (redisproc_write_conf(rp, err, errlen) < 0)
        return -1;
    int logfd = open(rp->logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (logfd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", rp->logfile, strerror(errno));
        return -1;
    }
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int pfd[2];
    if (nullfd < 0 || pipe2(pfd, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "cannot start redis-server: %s", strerror(errno));
        close(logfd);
        if (nullfd >= 0)
            close(nullfd);
        return -1;
    }
    static char arg0[] = "redis-server";
    char *argv[] = {arg0, rp->conf, NULL};
    struct rlimit rl;
    int maxfd =
        getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 1048576
            ? (int)rl.rlim_cur
            : 1048576;
    pid_t pid = fork();
    if (pid == 0) {
        /* The child: only async-signal-safe calls until exec. */
        setpgid(0, 0);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        for (int s = 1; s < NSIG; s++)
            sigaction(s, &sa, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        dup2(nullfd, 0);
        dup2(logfd, 1);
        dup2(logfd, 2);
        if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
            for (int fd = 3; fd < maxfd; fd++)
                fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
        execv(rp->binary, argv);
        int e = errno;
        (void)!write(pfd[1], &e, sizeof e);
        _exit(127);
    }
    int fork_errno = errno;
    close(pfd[1]);
    close(logfd);
    close(nullfd);
    if (pid < 0) {
        close(pfd[0]);
        snprintf(err, errlen, "cannot start redis-server: fork: %s", strerror(fork_errno));
        return -1;
    }
    setpgid(pid, pid); /* the child does it too; whichever runs first wins */
    int exec_errno = 0;
    ssize_t n;
    do {
        n = read(pfd[0], &exec_errno, sizeof exec_errno);
    } while (n < 0 && errno == EINTR);
    close(pfd[0]);
    if (n == (ssize_t)sizeof exec_errno) {
        waitpid(pid, NULL, 0);
        snprintf(err, errlen, "cannot run %s: %s", rp->binary, strerror(exec_errno));
        return -1;
    }
    rp->pid = pid;
    rp->started_ms = clock_mono_ms();
    char spid[16];
    snprintf(spid, sizeof spid, "%ld", (long)pid);
    log_event(LOG_INFO, "redis_started", "pid", spid, "socket", rp->sock, "binary", rp->binary,
              NULL);
    return 0;
}

/* Arm the restart timer with the current backoff, then double the backoff. */
static int64_t redisproc_schedule_restart(struct redisproc *rp)
{
    int64_t delay = rp->backoff_ms;
    struct timeval tv = clock_timeval(delay);
    evtimer_add(rp->restart_timer, &tv);
    rp->backoff_ms = delay * 2 > REDISPROC_BACKOFF_MAX_MS ? REDISPROC_BACKOFF_MAX_MS : delay * 2;
    return delay;
}

/* Timer: start the server again after it died. */
static void redisproc_restart_cb(evutil_socket_t fd, short what, void *arg)
{
    struct redisproc *rp = arg;
    char err[512];
    if (rp->pid > 0)
        return;
    if (redisproc_spawn(rp, err, sizeof err) < 0) {
        char delay[24];
        snprintf(delay, sizeof delay, "%lld", (long long)redisproc_schedule_restart(rp));
        log_event(LOG_ERROR, "redis_start_failed", "reason", err, "retry_in_ms", delay, NULL);
    }
}

/* SIGCHLD: when our server exited, say so loudly and restart it later. */
static void redisproc_sigchld_cb(evutil_socket_t sig, short what, void *arg)
{
    struct redisproc *rp = arg;
    if (rp->pid <= 0)
        return;
    int st = 0;
    pid_t w = waitpid(rp->pid, &st, WNOHANG);
    if (w == 0 || (w < 0 && errno != ECHILD))
        return; /* another child, or still running */
    char spid[16], status[64], delay[24], tail[256];
    snprintf(spid, sizeof spid, "%ld", (long)rp->pid);
    if (w < 0)
        snprintf(status, sizeof status, "unknown");
    else
        redisproc_status(st, status, sizeof status);
    if (clock_mono_ms() - rp->started_ms >= REDISPROC_STABLE_MS)
        rp->backoff_ms = REDISPROC_BACKOFF_MIN_MS;
    rp->pid = 0;
    snprintf(delay, sizeof delay, "%lld", (long long)redisproc_schedule_restart(rp));
    redisproc_log_tail(rp, tail, sizeof tail);
    log_event(LOG_ERROR, "redis_exited", "pid", spid, "status", status, "restart_in_ms", delay,
              "log", rp->logfile, "last_log_line", tail[0] ? tail : NULL, NULL);
}

/* Every second, while no server of ours runs: take the lock when its holder
 * is gone, and start a server when the one in use stopped answering. */
static void redisproc_watch_cb(evutil_socket_t fd, short what, void *arg)
{
    struct redisproc *rp = arg;
    if (rp->pid > 0 || evtimer_pending(rp->restart_timer, NULL))
        return;
    bool had_lock = rp->locked;
    if (!redisproc_try_lock(rp))
        return; /* another sesgate is responsible for the server */
    if (!had_lock)
        log_event(LOG_INFO, "redis_lock_taken", "lock", rp->lockfile, NULL);
    if (redisproc_socket_alive(rp->sock))
        return; /* the adopted server still runs */
    if (had_lock)
        log_event(LOG_ERROR, "redis_exited", "pid", "adopted", "status", "stopped answering",
                  "restart_in_ms", "0", NULL);
    redisproc_restart_cb(-1, 0, rp);
}

/* Free rp; a server it started is stopped first. */
static void redisproc_free(struct redisproc *rp)
{
    if (rp->sigchld)
        event_free(rp->sigchld);
    if (rp->restart_timer)
        event_free(rp->restart_timer);
    if (rp->watch_timer)
        event_free(rp->watch_timer);
    if (rp->pid > 0) {
        char spid[16], status[64];
        snprintf(spid, sizeof spid, "%ld", (long)rp->pid);
        kill(rp->pid, SIGTERM);
        int st = 0;
        pid_t w = 0;
        for (int64_t waited = 0; waited < REDISPROC_STOP_WAIT_MS; waited += 10) {
            w = waitpid(rp->pid, &st, WNOHANG);
            if (w != 0)
                break;
            redisproc_sleep_ms(10);
        }
        if (w == 0) {
            log_event(LOG_WARN, "redis_stop_timeout", "pid", spid, "action", "SIGKILL", NULL);
            kill(rp->pid, SIGKILL);
            w = waitpid(rp->pid, &st, 0);
        }
        if (w == rp->pid)
            redisproc_status(st, status, sizeof status);
        else
            snprintf(status, sizeof status, "unknown");
        log_event(LOG_INFO, "redis_stopped", "pid", spid, "status", status, NULL);
    }
    if (rp->lock_fd >= 0)
        close(rp->lock_fd); /* releases the lock, after the server is gone */
    free(rp->dir);
    free(rp->sock);
    free(rp->conf);
    free(rp->logfile);
    free(rp->lockfile);
    free(rp->binary);
    free(rp);
}

/* Start or adopt a server and wait until it answers PING. */
static int redisproc_wait_ready(struct redisproc *rp, char *err, size_t errlen)
{
    int64_t deadline = clock_mono_ms() + REDISPROC_START_WAIT_MS;
    for (;;) {
        if (redisproc_ping(rp->sock)) {
            if (rp->pid == 0)
                log_event(rp->locked ? LOG_WARN : LOG_INFO, "redis_adopted", "socket", rp->sock,
                          "owner",
                          rp->locked ? "an earlier sesgate (left running)" : "another sesgate",
                          "supervised", "no", NULL);
            return 0;
        }
        if (rp->pid > 0) {
            int st;
            if (waitpid(rp->pid, &st, WNOHANG) == rp->pid) {
                char status[64], tail[256];
                rp->pid = 0;
                redisproc_status(st, status, sizeof status);
                redisproc_log_tail(rp, tail, sizeof tail);
                snprintf(err, errlen, "redis-server exited during start-up (%s)%s%s; see %s",
                         status, tail[0] ? ": " : "", tail, rp->logfile);
                return -1;
            }
        } else if (redisproc_try_lock(rp)) {
            if (redisproc_spawn(rp, err, errlen) < 0)
                return -1;
            continue;
        }
        if (clock_mono_ms() >= deadline)
            break;
        redisproc_sleep_ms(50);
    }
    if (rp->pid > 0)
        snprintf(err, errlen, "redis-server (pid %ld) did not answer on %s within %d s; see %s",
                 (long)rp->pid, rp->sock, REDISPROC_START_WAIT_MS / 1000, rp->logfile);
    else
        snprintf(err, errlen, "%s is held by another process, but no Redis answers on %s",
                 rp->lockfile, rp->sock);
    return -1;
}

struct redisproc *redisproc_start(struct event_base *base, const char *data_dir, char *err,
                                  size_t errlen)
{
    if (data_dir == NULL || *data_dir == '\0') {
        snprintf(err, errlen, "[redis] data_dir is empty");
        return NULL;
    }
    if (redisproc_mkdirs(data_dir, err, errlen) < 0)
        return NULL;
    char *abs = realpath(data_dir, NULL);
    if (abs == NULL) {
        snprintf(err, errlen, "cannot resolve %s: %s", data_dir, strerror(errno));
        return NULL;
    }
    struct redisproc *rp = xcalloc(1, sizeof *rp);
    rp->base = base;
    rp->lock_fd = -1;
    rp->backoff_ms = REDISPROC_BACKOFF_MIN_MS;
    struct buf b = BUF_INIT;
    buf_printf(&b, "%s%sredis", abs, abs[strlen(abs) - 1] == '/' ? "" : "/");
    free(abs);
    rp->dir = buf_detach(&b, NULL);
    buf_printf(&b, "%s/redis.sock", rp->dir);
    rp->sock = buf_detach(&b, NULL);
    buf_printf(&b, "%s/redis.conf", rp->dir);
    rp->conf = buf_detach(&b, NULL);
    buf_printf(&b, "%s/redis.log", rp->dir);
    rp->logfile = buf_detach(&b, NULL);
    buf_printf(&b, "%s/redis.lock", rp->dir);
    rp->lockfile = buf_detach(&b, NULL);
    struct sockaddr_un sa;
    if (strlen(rp->sock) >= sizeof sa.sun_path) {
        snprintf(err, errlen,
                 "the Redis socket path %s is %zu bytes, a unix socket path must be under %zu: "
                 "set a shorter [redis] data_dir, or [redis] url",
                 rp->sock, strlen(rp->sock), sizeof sa.sun_path);
        goto fail;
    }
    if (redisproc_mkdirs(rp->dir, err, errlen) < 0)
        goto fail;
    rp->binary = redisproc_find_binary();
    if (rp->binary == NULL) {
        snprintf(err, errlen, "redis-server not found: install redis-server or set [redis] url");
        goto fail;
    }
    rp->lock_fd = open(rp->lockfile, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (rp->lock_fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", rp->lockfile, strerror(errno));
        goto fail;
    }
    redisproc_try_lock(rp);
    if (redisproc_wait_ready(rp, err, errlen) < 0)
        goto fail;
    rp->sigchld = evsignal_new(base, SIGCHLD, redisproc_sigchld_cb, rp);
    rp->restart_timer = evtimer_new(base, redisproc_restart_cb, rp);
    rp->watch_timer = event_new(base, -1, EV_PERSIST, redisproc_watch_cb, rp);
    evsignal_add(rp->sigchld, NULL);
    struct timeval tv = clock_timeval(REDISPROC_WATCH_MS);
    event_add(rp->watch_timer, &tv);
    /* The server may have exited before SIGCHLD was watched. */
    redisproc_sigchld_cb(SIGCHLD, EV_SIGNAL, rp);
    return rp;
fail:
    redisproc_free(rp);
    return NULL;
}

const char *redisproc_socket(const struct redisproc *rp)
{
    return rp->sock;
}

void redisproc_stop(struct redisproc *rp)
{
    if (rp == NULL)
        return;
    redisproc_free(rp);
}
