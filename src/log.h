/* log: one line per event on stderr, as key=value pairs.
 *
 * Never pass a secret, an Authorization header or a message body here.
 * Values containing spaces, quotes or '=' are quoted; control characters are
 * escaped, so a hostile value cannot forge a second log line.
 */
#ifndef SESGATE_LOG_H
#define SESGATE_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Set the lowest level written (default LOG_INFO). */
void log_set_level(enum log_level level);

/* Write one event: ts, level, event, then the pairs given as alternating
 * key and value C strings, terminated by NULL. A NULL value is skipped. */
void log_event(enum log_level level, const char *event, ...) __attribute__((sentinel));

/* Like log_event, for a value of known length (the last pair). */
void log_event_n(enum log_level level, const char *event, const char *key, const char *value,
                 size_t len);

#endif
