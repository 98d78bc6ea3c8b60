/* inflight: the bytes of upstream request bodies one process has in flight. */
#include "inflight.h"

#include "clock.h"

static uint64_t inflight_max, inflight_used, inflight_peak;
static struct inflight_wait *inflight_head, *inflight_tail;
static unsigned long long inflight_nwaits;
static double inflight_waited_s;

/* True when n more bytes fit now. */
static bool inflight_fits(size_t n)
{
    return inflight_used == 0 || inflight_max == 0 || inflight_used + n <= inflight_max;
}

/* Let the waiters that fit go, first come first served. */
static void inflight_grant(void)
{
    while (inflight_head != NULL && inflight_fits(inflight_head->n)) {
        struct inflight_wait *w = inflight_head;
        inflight_head = w->next;
        if (inflight_head == NULL)
            inflight_tail = NULL;
        w->queued = false;
        w->next = NULL;
        inflight_used += w->n;
        if (inflight_used > inflight_peak)
            inflight_peak = inflight_used;
        inflight_waited_s += (double)(clock_mono_ms() - w->since_ms) / 1000.0;
        w->go(w->arg);
    }
}

void inflight_set_cap(uint64_t cap)
{
    inflight_max = cap;
    inflight_grant();
}

bool inflight_take(size_t n)
{
    if (inflight_head != NULL || !inflight_fits(n))
        return false;
    inflight_used += n;
    if (inflight_used > inflight_peak)
        inflight_peak = inflight_used;
    return true;
}

void inflight_wait(struct inflight_wait *w, size_t n, void (*go)(void *), void *arg)
{
    w->n = n;
    w->go = go;
    w->arg = arg;
    w->since_ms = clock_mono_ms();
    w->queued = true;
    w->next = NULL;
    if (inflight_tail != NULL)
        inflight_tail->next = w;
    else
        inflight_head = w;
    inflight_tail = w;
    inflight_nwaits++;
}

void inflight_cancel(struct inflight_wait *w)
{
    if (!w->queued)
        return;
    struct inflight_wait **p = &inflight_head, *prev = NULL;
    while (*p != NULL && *p != w) {
        prev = *p;
        p = &(*p)->next;
    }
    if (*p == w) {
        *p = w->next;
        if (inflight_tail == w)
            inflight_tail = prev;
    }
    w->queued = false;
    w->next = NULL;
    inflight_grant(); /* the one behind it may fit */
}

void inflight_add(size_t n)
{
    inflight_used += n;
    if (inflight_used > inflight_peak)
        inflight_peak = inflight_used;
}

void inflight_release(size_t n)
{
    inflight_used = n > inflight_used ? 0 : inflight_used - n;
    inflight_grant();
}

uint64_t inflight_bytes(void)
{
    return inflight_used;
}

uint64_t inflight_cap(void)
{
    return inflight_max;
}

uint64_t inflight_peak_bytes(void)
{
    return inflight_peak;
}

unsigned long long inflight_waits(void)
{
    return inflight_nwaits;
}

double inflight_wait_seconds(void)
{
    return inflight_waited_s;
}
