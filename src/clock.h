/* clock: the process's clocks, read in one place.
 *
 * Wall time (ms since the epoch) is what is written to Redis and shown to
 * people; monotonic time is for waits within this process, which a step of
 * the wall clock must neither stretch nor cut short. The core never calls
 * these: time is a parameter there.
 */
#ifndef SESGATE_CLOCK_H
#define SESGATE_CLOCK_H

#include <stdint.h>
#include <sys/time.h>
#include <time.h>

/* Milliseconds since the epoch (CLOCK_REALTIME). */
int64_t clock_wall_ms(void);

/* Milliseconds on the monotonic clock (CLOCK_MONOTONIC). */
int64_t clock_mono_ms(void);

/* The monotonic clock as a timespec, into *ts. */
void clock_mono_ts(struct timespec *ts);

/* A timeval of ms milliseconds (ms >= 0), for a libevent timer. */
struct timeval clock_timeval(int64_t ms);

/* A timeval of ms milliseconds with a fraction (ms >= 0), to the
 * microsecond (truncated). */
struct timeval clock_timeval_frac(double ms);

#endif
