/* clock: wall and monotonic milliseconds, and timevals from milliseconds. */
#include "clock.h"

#include <time.h>

/* Milliseconds of clock id. */
static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Public: ms since the epoch. */
int64_t clock_wall_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

/* Public: ms on the monotonic clock. */
int64_t clock_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

/* Public: the monotonic clock as a timespec. */
void clock_mono_ts(struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
}

/* Public: a timeval of whole ms. */
struct timeval clock_timeval(int64_t ms)
{
    return (struct timeval){(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
}

/* Public: a timeval of fractional ms. */
struct timeval clock_timeval_frac(double ms)
{
    int64_t us = (int64_t)(ms * 1000.0);
    return (struct timeval){(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};
}
