/* inflight: the bytes of upstream request bodies one process has in flight,
 * bounded by [send] max_inflight_bytes.
 *
 * A queued copy takes its body's size before it is sent and gives it back
 * when the upstream answered; when the bytes would pass the cap, the copy
 * waits (first come, first served) until enough come back. A body larger
 * than the cap goes alone. A pass-through request is counted while it is
 * forwarded, without waiting: its body is already held when it arrives
 * (bounded by [server] max_body). The count and the time spent waiting are
 * in /metrics. One set of counters per process. */
#ifndef SESGATE_INFLIGHT_H
#define SESGATE_INFLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A copy waiting for room. */
struct inflight_wait {
    size_t n;
    void (*go)(void *arg); /* called once the n bytes are taken */
    void *arg;
    int64_t since_ms; /* monotonic */
    bool queued;
    struct inflight_wait *next;
};

/* Set the cap (bytes; 0: none). Waiters that now fit go. */
void inflight_set_cap(uint64_t cap);

/* Take n bytes when they fit (or nothing is in flight) and no one waits
 * before. Returns false, taking nothing, otherwise. */
bool inflight_take(size_t n);

/* Queue w for n bytes: w->go(arg) fires once they are taken (never inline). */
void inflight_wait(struct inflight_wait *w, size_t n, void (*go)(void *), void *arg);

/* Take w out of the queue if it is still there. */
void inflight_cancel(struct inflight_wait *w);

/* Count n bytes that are held already (a pass-through request). */
void inflight_add(size_t n);

/* Give n bytes back; waiters that now fit go, in order. */
void inflight_release(size_t n);

/* Bytes in flight, and for /metrics: the most at once, waits and their
 * seconds. */
uint64_t inflight_bytes(void);
uint64_t inflight_peak_bytes(void);
uint64_t inflight_cap(void);
unsigned long long inflight_waits(void);
double inflight_wait_seconds(void);

#endif
