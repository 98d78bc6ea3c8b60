/* log: key=value event lines on stderr. */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "buf.h"

static enum log_level log_min = LOG_INFO;
static bool log_buffered;
static struct buf log_pending;

#define LOG_PENDING_MAX 16384 /* bytes gathered before a write is forced */

static const char *const log_level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level)
{
    log_min = level;
}

void log_set_buffered(bool on)
{
    if (!on)
        log_flush();
    log_buffered = on;
}

void log_flush(void)
{
    if (log_pending.len == 0)
        return;
    fwrite(log_pending.data, 1, log_pending.len, stderr);
    fflush(stderr);
    buf_reset(&log_pending);
}

/* Append value, quoted and escaped when it needs to be. */
static void log_value(struct buf *b, const char *v, size_t n)
{
    bool plain = n > 0;
    for (size_t i = 0; i < n && plain; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f)
            plain = false;
    }
    if (plain) {
        buf_add(b, v, n);
        return;
    }
    buf_addc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c == '"' || c == '\\') {
            buf_addc(b, '\\');
            buf_addc(b, (char)c);
        } else if (c < ' ' || c == 0x7f) {
            buf_printf(b, "\\x%02x", c);
        } else {
            buf_addc(b, (char)c);
        }
    }
    buf_addc(b, '"');
}

/* Start a line with the timestamp, level and event. */
static void log_start(struct buf *b, enum log_level level, const char *event)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    buf_printf(b, "ts=%s.%03dZ level=%s event=%s", ts, (int)(tv.tv_usec / 1000),
               log_level_names[level], event);
}

/* Queue the finished line, and write out when it is due: at once unless
 * buffering is on, else for warnings, errors and a full buffer. */
static void log_end(enum log_level level)
{
    buf_addc(&log_pending, '\n');
    if (!log_buffered || level >= LOG_WARN || log_pending.len >= LOG_PENDING_MAX)
        log_flush();
}

void log_event(enum log_level level, const char *event, ...)
{
    if (level < log_min)
        return;
    struct buf *b = &log_pending;
    log_start(b, level, event);
    va_list ap;
    va_start(ap, event);
    const char *k;
    while ((k = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);
        if (v == NULL)
            continue;
        buf_printf(b, " %s=", k);
        log_value(b, v, strlen(v));
    }
    va_end(ap);
    log_end(level);
}

void log_event_n(enum log_level level, const char *event, const char *key, const char *value,
                 size_t len)
{
    if (level < log_min)
        return;
    struct buf *b = &log_pending;
    log_start(b, level, event);
    buf_printf(b, " %s=", key);
    log_value(b, value, len);
    log_end(level);
}
