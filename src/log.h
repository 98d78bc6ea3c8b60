/* log: one line per event on stderr, as key=value pairs.
 *
 * Never pass a secret, an Authorization header or a message body here.
 * Values containing spaces, quotes or '=' are quoted; control characters are
 * escaped, so a hostile value cannot forge a second log line.
 */
#ifndef SESGATE_LOG_H
#define SESGATE_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Set the lowest level written (default LOG_INFO). */
void log_set_level(enum log_level level);

/* With buffering on, info and debug lines are gathered and written by
 * log_flush() (the daemon calls it every 100 ms and before exiting) or once
 * 16 KiB have gathered; warnings and errors are written at once, after what
 * was gathered. Off by default: every line is written as it comes. */
void log_set_buffered(bool on);

/* Write out the gathered lines. */
void log_flush(void);

/* Write one event: ts, level, event, then the pairs given as alternating
 * key and value C strings, terminated by NULL. A NULL value is skipped. */
void log_event(enum log_level level, const char *event, ...) __attribute__((sentinel));

/* Like log_event, for a value of known length (the last pair). */
void log_event_n(enum log_level level, const char *event, const char *key, const char *value,
                 size_t len);

#endif
