/* metrics: counters, gauges and a latency histogram in Prometheus text form. */
#include "metrics.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inflight.h"

/* A counter with up to two labels, kept in a small open list. */
struct metrics_counter {
    char *a;
    char *b;
    unsigned long long value;
    struct metrics_counter *next;
};

/* Upper bounds of the latency histogram buckets, seconds. */
static const double metrics_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                         0.25,   0.5,   1,      2.5,   5,    10,    30};
#define METRICS_NBUCKETS (sizeof metrics_buckets / sizeof metrics_buckets[0])

struct metrics_histogram {
    const char *outcome;
    unsigned long long counts[METRICS_NBUCKETS]; /* non-cumulative */
    unsigned long long count;
    double sum;
};

static struct metrics_counter *metrics_requests;
static struct metrics_counter *metrics_auth;
static struct metrics_counter *metrics_rejected;
static struct metrics_histogram metrics_upstream_h[2] = {{.outcome = "ok"}, {.outcome = "error"}};
static long long metrics_inflight_n;
static long long metrics_connections_n;
static unsigned long long metrics_sent_n, metrics_retried_n, metrics_dead_n, metrics_suppressed_n;
static bool metrics_queue_known; /* the gauges were read from Redis at least once */
static long long metrics_q_depth, metrics_q_inflight, metrics_q_retrying, metrics_q_dead;
static double metrics_q_oldest;
static unsigned long long metrics_relays_n[3];                         /* delivered, retry, dead */
static long long metrics_r_queued, metrics_r_retrying, metrics_r_dead; /* read with the queue's */
static const char *const metrics_relay_results[3] = {"delivered", "retry", "dead"};
static unsigned long long metrics_creds_n[2]; /* success, failure */
static bool metrics_limiter_known;
static double metrics_l_base, metrics_l_rate, metrics_l_wait;
static long long metrics_l_quota, metrics_l_used = -1;
static unsigned long long metrics_l_takes, metrics_l_throttled;
static struct metrics_counter *metrics_l_refused;
static struct metrics_counter *metrics_events;
static struct metrics_counter *metrics_fb_refused;
static struct metrics_counter *metrics_fb_messages;
static long long metrics_smtp_conns_n;
static struct metrics_counter *metrics_smtp_refused_l;
static struct metrics_counter *metrics_smtp_msgs;  /* client, outcome */
static struct metrics_counter *metrics_smtp_rcpts; /* client */
static struct metrics_counter *metrics_smtp_rej;   /* client, reason */

/* Find or add the counter (a, b) in list and add n. */
static void metrics_add(struct metrics_counter **list, const char *a, const char *b,
                        unsigned long long n)
{
    for (struct metrics_counter *c = *list; c; c = c->next) {
        if (strcmp(c->a, a) == 0 && strcmp(c->b, b) == 0) {
            c->value += n;
            return;
        }
    }
    struct metrics_counter *c = xcalloc(1, sizeof *c);
    c->a = xstrdup(a);
    c->b = xstrdup(b);
    c->value = n;
    c->next = *list;
    *list = c;
}

/* Find or add the counter (a, b) in list and add one. */
static void metrics_bump(struct metrics_counter **list, const char *a, const char *b)
{
    metrics_add(list, a, b, 1);
}

void metrics_smtp_connections(int delta)
{
    metrics_smtp_conns_n += delta;
}

void metrics_smtp_refused(const char *reason)
{
    metrics_bump(&metrics_smtp_refused_l, reason, "");
}

void metrics_smtp_message(const char *client, const char *outcome, unsigned long long recipients)
{
    metrics_bump(&metrics_smtp_msgs, client, outcome);
    if (recipients > 0)
        metrics_add(&metrics_smtp_rcpts, client, "", recipients);
}

void metrics_smtp_rejected(const char *client, const char *reason)
{
    metrics_bump(&metrics_smtp_rej, client, reason);
}

void metrics_request(const char *action, int status)
{
    char s[16];
    snprintf(s, sizeof s, "%d", status);
    metrics_bump(&metrics_requests, action ? action : "unknown", s);
}

void metrics_event(const char *type, const char *client)
{
    metrics_bump(&metrics_events, type, client);
}

void metrics_auth_failure(const char *reason)
{
    metrics_bump(&metrics_auth, reason, "");
}

void metrics_feedback_refused(const char *reason)
{
    metrics_bump(&metrics_fb_refused, reason, "");
}

void metrics_feedback_message(const char *type, const char *outcome)
{
    metrics_bump(&metrics_fb_messages, type, outcome);
}

void metrics_conn_rejected(const char *reason)
{
    metrics_bump(&metrics_rejected, reason, "");
}

void metrics_upstream(double seconds, const char *outcome)
{
    struct metrics_histogram *h = &metrics_upstream_h[strcmp(outcome, "ok") == 0 ? 0 : 1];
    for (size_t i = 0; i < METRICS_NBUCKETS; i++) {
        if (seconds <= metrics_buckets[i]) {
            h->counts[i]++;
            break;
        }
    }
    h->count++;
    h->sum += seconds;
}

void metrics_inflight(int delta)
{
    metrics_inflight_n += delta;
}

void metrics_connections(int delta)
{
    metrics_connections_n += delta;
}

/* Render one labelled counter family. */
static void metrics_render_counters(struct buf *out, const char *name, const char *help,
                                    const char *la, const char *lb,
                                    const struct metrics_counter *list)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    for (const struct metrics_counter *c = list; c; c = c->next) {
        if (lb)
            buf_printf(out, "%s{%s=\"%s\",%s=\"%s\"} %llu\n", name, la, c->a, lb, c->b, c->value);
        else
            buf_printf(out, "%s{%s=\"%s\"} %llu\n", name, la, c->a, c->value);
    }
}

void metrics_queue_sent(void)
{
    metrics_sent_n++;
}

void metrics_queue_retried(void)
{
    metrics_retried_n++;
}

void metrics_queue_dead(void)
{
    metrics_dead_n++;
}

void metrics_relay(const char *result)
{
    for (size_t i = 0; i < 3; i++)
        if (strcmp(result, metrics_relay_results[i]) == 0)
            metrics_relays_n[i]++;
}

void metrics_credentials_refresh(const char *result)
{
    metrics_creds_n[strcmp(result, "success") == 0 ? 0 : 1]++;
}

void metrics_relay_gauges(long long queued, long long retrying, long long dead)
{
    metrics_r_queued = queued;
    metrics_r_retrying = retrying;
    metrics_r_dead = dead;
}

void metrics_suppressed(void)
{
    metrics_suppressed_n++;
}

void metrics_queue_gauges(long long depth, double oldest_s, long long inflight, long long retrying,
                          long long dead)
{
    metrics_queue_known = true;
    metrics_q_depth = depth;
    metrics_q_oldest = oldest_s;
    metrics_q_inflight = inflight;
    metrics_q_retrying = retrying;
    metrics_q_dead = dead;
}

/* Append one unlabelled metric of type (counter or gauge). */
static void metrics_render_one(struct buf *out, const char *name, const char *type,
                               const char *help, double value)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %.15g\n", name, help, name, type, name, value);
}

/* Append the queue's counters, and its gauges once read from Redis. */
static void metrics_render_queue(struct buf *out)
{
    metrics_render_one(out, "sesgate_sent_total", "counter", "Queued copies sent upstream.",
                       (double)metrics_sent_n);
    metrics_render_one(out, "sesgate_retried_total", "counter",
                       "Queued copies scheduled for another attempt.", (double)metrics_retried_n);
    metrics_render_one(out, "sesgate_dead_lettered_total", "counter",
                       "Queued copies moved to the dead-letter stream.", (double)metrics_dead_n);
    buf_adds(out, "# HELP sesgate_upstream_credentials_refresh_total Fetches of the upstream "
                  "credentials, by result.\n"
                  "# TYPE sesgate_upstream_credentials_refresh_total counter\n");
    buf_printf(out, "sesgate_upstream_credentials_refresh_total{result=\"success\"} %llu\n",
               metrics_creds_n[0]);
    buf_printf(out, "sesgate_upstream_credentials_refresh_total{result=\"failure\"} %llu\n",
               metrics_creds_n[1]);
    buf_adds(out, "# HELP sesgate_relays_total Relays to the clients' events_url, by result.\n"
                  "# TYPE sesgate_relays_total counter\n");
    for (size_t i = 0; i < 3; i++)
        buf_printf(out, "sesgate_relays_total{result=\"%s\"} %llu\n", metrics_relay_results[i],
                   metrics_relays_n[i]);
    metrics_render_one(out, "sesgate_suppressed_total", "counter",
                       "Recipients left out because they are on the suppression list.",
                       (double)metrics_suppressed_n);
    if (!metrics_queue_known)
        return;
    metrics_render_one(out, "sesgate_queue_depth", "gauge", "Entries on the queue stream.",
                       (double)metrics_q_depth);
    metrics_render_one(out, "sesgate_queue_oldest_seconds", "gauge",
                       "Age of the oldest entry on the queue stream.", metrics_q_oldest);
    metrics_render_one(out, "sesgate_queue_inflight", "gauge",
                       "Queue entries read by a worker and not yet acknowledged.",
                       (double)metrics_q_inflight);
    metrics_render_one(out, "sesgate_queue_retrying", "gauge", "Retries waiting for their time.",
                       (double)metrics_q_retrying);
    metrics_render_one(out, "sesgate_dead_letters", "gauge", "Entries on the dead-letter stream.",
                       (double)metrics_q_dead);
    metrics_render_one(out, "sesgate_relays_queued", "gauge",
                       "Relays to the clients' events_url on the relay stream.",
                       (double)metrics_r_queued);
    metrics_render_one(out, "sesgate_relays_retrying", "gauge",
                       "Relays waiting for their retry time.", (double)metrics_r_retrying);
    metrics_render_one(out, "sesgate_relays_dead", "gauge", "Relays on the dead-relay stream.",
                       (double)metrics_r_dead);
}

/* One upstream's per-account figures (metrics_ups, in order of appearance). */
struct metrics_up {
    char name[128];
    bool known; /* its limiter reported */
    double base, rate;
    long long quota, used;
    unsigned long long throttled, sent;
};
static struct metrics_up *metrics_ups;
static size_t metrics_nups;
static bool metrics_named; /* an upstream other than [upstream] was seen */

/* The entry of upstream name, made on first use. */
static struct metrics_up *metrics_up_get(const char *name)
{
    if (name == NULL || name[0] == '\0')
        name = "default";
    for (size_t i = 0; i < metrics_nups; i++)
        if (strcmp(metrics_ups[i].name, name) == 0)
            return &metrics_ups[i];
    metrics_ups = xrealloc(metrics_ups, (metrics_nups + 1) * sizeof *metrics_ups);
    struct metrics_up *u = &metrics_ups[metrics_nups++];
    memset(u, 0, sizeof *u);
    snprintf(u->name, sizeof u->name, "%s", name);
    u->used = -1;
    if (strcmp(name, "default") != 0)
        metrics_named = true;
    return u;
}

void metrics_upstream_sent(const char *upstream)
{
    metrics_up_get(upstream)->sent++;
}

void metrics_limiter(const char *upstream, double base, double effective, long long quota,
                     long long used)
{
    struct metrics_up *u = metrics_up_get(upstream);
    u->known = true;
    u->base = base;
    u->rate = effective;
    u->quota = quota;
    if (used >= 0)
        u->used = used;
    if (strcmp(u->name, "default") != 0)
        return;
    metrics_limiter_known = true;
    metrics_l_base = base;
    metrics_l_rate = effective;
    metrics_l_quota = quota;
    if (used >= 0)
        metrics_l_used = used;
}

void metrics_limiter_take(const char *reason, double wait_s)
{
    if (reason[0]) {
        metrics_bump(&metrics_l_refused, reason, "");
        return;
    }
    metrics_l_takes++;
    metrics_l_wait += wait_s;
}

void metrics_limiter_throttled(const char *upstream)
{
    metrics_up_get(upstream)->throttled++;
    metrics_l_throttled++;
}

/* One gauge or counter family with a value per upstream (field of struct
 * metrics_up picked by pick). */
static void metrics_render_ups(struct buf *out, const char *name, const char *type,
                               const char *help, double (*pick)(const struct metrics_up *),
                               bool limiter)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (size_t i = 0; i < metrics_nups; i++) {
        const struct metrics_up *u = &metrics_ups[i];
        if (limiter && !u->known)
            continue;
        buf_printf(out, "%s{upstream=\"%s\"} %.15g\n", name, u->name, pick(u));
    }
}

static double metrics_pick_base(const struct metrics_up *u)
{
    return u->base;
}
static double metrics_pick_rate(const struct metrics_up *u)
{
    return u->rate;
}
static double metrics_pick_quota(const struct metrics_up *u)
{
    return (double)u->quota;
}
static double metrics_pick_used(const struct metrics_up *u)
{
    return (double)(u->used < 0 ? 0 : u->used);
}
static double metrics_pick_throttled(const struct metrics_up *u)
{
    return (double)u->throttled;
}
static double metrics_pick_sent(const struct metrics_up *u)
{
    return (double)u->sent;
}

/* With several upstreams: each one's per-account figures, labelled. */
static void metrics_render_upstreams(struct buf *out)
{
    if (!metrics_named)
        return;
    metrics_render_ups(out, "sesgate_upstream_rate_base", "gauge",
                       "The upstream account's sending rate in recipients/s (rate, or "
                       "MaxSendRate x headroom).",
                       metrics_pick_base, true);
    metrics_render_ups(out, "sesgate_upstream_rate_effective", "gauge",
                       "The upstream's shared rate after throttling cuts, recipients/s.",
                       metrics_pick_rate, true);
    metrics_render_ups(out, "sesgate_upstream_daily_quota", "gauge",
                       "Recipients the upstream allows per rolling 24 hours (0: unknown).",
                       metrics_pick_quota, true);
    metrics_render_ups(out, "sesgate_upstream_sent_last_24h", "gauge",
                       "Recipients the upstream's limiter counted in the rolling 24 hours.",
                       metrics_pick_used, true);
    metrics_render_ups(out, "sesgate_upstream_throttled_total", "counter",
                       "Sends the upstream answered with Maximum sending rate exceeded.",
                       metrics_pick_throttled, false);
    metrics_render_ups(out, "sesgate_upstream_sent_total", "counter",
                       "Queued copies sent through the upstream.", metrics_pick_sent, false);
}

static unsigned long long metrics_data_lost, metrics_clock_skew_n, metrics_pace_late_n;
static unsigned long long metrics_failovers, metrics_unreplicated;

void metrics_redis_failover(void)
{
    metrics_failovers++;
}

void metrics_batch_unreplicated(void)
{
    metrics_unreplicated++;
}

void metrics_redis_data_lost(void)
{
    metrics_data_lost++;
}

void metrics_clock_skew(void)
{
    metrics_clock_skew_n++;
}

void metrics_pace_late(void)
{
    metrics_pace_late_n++;
}

/* The bytes of upstream request bodies in flight (inflight.h). */
static void metrics_render_inflight(struct buf *out)
{
    metrics_render_one(out, "sesgate_upstream_inflight_bytes", "gauge",
                       "Bytes of upstream request bodies in flight in this process.",
                       (double)inflight_bytes());
    metrics_render_one(out, "sesgate_upstream_inflight_bytes_peak", "gauge",
                       "The most bytes of upstream request bodies in flight at once since start.",
                       (double)inflight_peak_bytes());
    metrics_render_one(out, "sesgate_upstream_inflight_bytes_max", "gauge",
                       "[send] max_inflight_bytes.", (double)inflight_cap());
    metrics_render_one(out, "sesgate_upstream_inflight_waits_total", "counter",
                       "Queued copies that waited for room under max_inflight_bytes.",
                       (double)inflight_waits());
    metrics_render_one(out, "sesgate_upstream_inflight_wait_seconds_total", "counter",
                       "Seconds queued copies spent waiting for room under max_inflight_bytes.",
                       inflight_wait_seconds());
}

/* The rate limiter's gauges and counters. */
static void metrics_render_limiter(struct buf *out)
{
    metrics_render_inflight(out);
    metrics_render_one(out, "sesgate_ses_throttled_total", "counter",
                       "Sends SES answered with Maximum sending rate exceeded.",
                       (double)metrics_l_throttled);
    metrics_render_one(out, "sesgate_redis_data_lost_total", "counter",
                       "Times Redis was found without sesgate's data (restarted empty, flushed).",
                       (double)metrics_data_lost);
    metrics_render_one(out, "sesgate_redis_failovers_total", "counter",
                       "Times the Sentinels named a new Redis master ([redis] sentinels).",
                       (double)metrics_failovers);
    metrics_render_one(out, "sesgate_batches_unreplicated_total", "counter",
                       "Batches answered ServiceUnavailable and cancelled because WAIT did not "
                       "confirm them on [redis] wait_replicas replicas in time.",
                       (double)metrics_unreplicated);
    metrics_render_one(out, "sesgate_upstream_clock_skew_total", "counter",
                       "Upstream answers refusing sesgate's signature as expired or not yet "
                       "current: this host's clock is off.",
                       (double)metrics_clock_skew_n);
    metrics_render_one(out, "sesgate_pace_late_total", "counter",
                       "Queued copies whose reserved time passed while sesgate was busy, "
                       "reserved again rather than sent late.",
                       (double)metrics_pace_late_n);
    if (!metrics_limiter_known)
        return;
    metrics_render_one(out, "sesgate_rate_base", "gauge",
                       "The account's sending rate in recipients/s (rate, or MaxSendRate x "
                       "headroom).",
                       metrics_l_base);
    metrics_render_one(out, "sesgate_rate_effective", "gauge",
                       "The shared rate after throttling cuts, recipients/s.", metrics_l_rate);
    metrics_render_one(out, "sesgate_daily_quota", "gauge",
                       "Recipients allowed per rolling 24 hours (0: unknown).",
                       (double)metrics_l_quota);
    if (metrics_l_used >= 0)
        metrics_render_one(out, "sesgate_sent_last_24h", "gauge",
                           "Recipients counted by the limiter in the rolling 24 hours.",
                           (double)metrics_l_used);
    metrics_render_one(out, "sesgate_limiter_takes_total", "counter",
                       "Reservations granted by the rate limiter.", (double)metrics_l_takes);
    metrics_render_one(out, "sesgate_limiter_wait_seconds_total", "counter",
                       "Time granted reservations waited for their start.", metrics_l_wait);
    metrics_render_counters(out, "sesgate_limiter_refused_total",
                            "Reservations refused by the rate limiter.", "reason", NULL,
                            metrics_l_refused);
}

void metrics_render(struct buf *out)
{
    metrics_render_queue(out);
    metrics_render_limiter(out);
    metrics_render_upstreams(out);
    metrics_render_counters(out, "sesgate_requests_total", "SES requests answered.", "action",
                            "status", metrics_requests);
    metrics_render_counters(out, "sesgate_auth_failures_total",
                            "Requests refused by authentication or authorization.", "reason", NULL,
                            metrics_auth);
    metrics_render_counters(out, "sesgate_feedback_refused_total",
                            "SNS messages the feedback endpoint refused, by reason.", "reason",
                            NULL, metrics_fb_refused);
    metrics_render_counters(out, "sesgate_feedback_messages_total",
                            "SNS messages the feedback endpoint handled, by type and outcome.",
                            "type", "outcome", metrics_fb_messages);
    metrics_render_counters(out, "sesgate_connections_rejected_total",
                            "Client connections closed by a limit or a timeout.", "reason", NULL,
                            metrics_rejected);
    metrics_render_counters(out, "sesgate_smtp_messages_total",
                            "Messages the SMTP listener answered after DATA, by client and outcome "
                            "(accepted, rejected, deferred).",
                            "client", "outcome", metrics_smtp_msgs);
    metrics_render_counters(out, "sesgate_smtp_recipients_total",
                            "Envelope recipients of the messages the SMTP listener accepted.",
                            "client", NULL, metrics_smtp_rcpts);
    metrics_render_counters(out, "sesgate_smtp_rejections_total",
                            "SMTP messages and commands refused, by client and reason.", "client",
                            "reason", metrics_smtp_rej);
    metrics_render_counters(out, "sesgate_smtp_connections_refused_total",
                            "SMTP connections refused or closed by a limit or a timeout.", "reason",
                            NULL, metrics_smtp_refused_l);
    buf_printf(out,
               "# HELP sesgate_smtp_connections Open SMTP connections.\n"
               "# TYPE sesgate_smtp_connections gauge\nsesgate_smtp_connections %lld\n",
               metrics_smtp_conns_n);
    metrics_render_counters(out, "sesgate_events_total",
                            "SES events applied (from the SNS endpoint), by type and client.",
                            "type", "client", metrics_events);
    buf_adds(out, "# HELP sesgate_upstream_seconds Latency of upstream SES calls.\n"
                  "# TYPE sesgate_upstream_seconds histogram\n");
    for (size_t k = 0; k < 2; k++) {
        const struct metrics_histogram *h = &metrics_upstream_h[k];
        unsigned long long cum = 0;
        for (size_t i = 0; i < METRICS_NBUCKETS; i++) {
            cum += h->counts[i];
            buf_printf(out, "sesgate_upstream_seconds_bucket{outcome=\"%s\",le=\"%g\"} %llu\n",
                       h->outcome, metrics_buckets[i], cum);
        }
        buf_printf(out, "sesgate_upstream_seconds_bucket{outcome=\"%s\",le=\"+Inf\"} %llu\n",
                   h->outcome, h->count);
        buf_printf(out, "sesgate_upstream_seconds_sum{outcome=\"%s\"} %.6f\n", h->outcome, h->sum);
        buf_printf(out, "sesgate_upstream_seconds_count{outcome=\"%s\"} %llu\n", h->outcome,
                   h->count);
    }
    buf_printf(out,
               "# HELP sesgate_inflight_requests SES requests being handled.\n"
               "# TYPE sesgate_inflight_requests gauge\nsesgate_inflight_requests %lld\n",
               metrics_inflight_n);
    buf_printf(out,
               "# HELP sesgate_connections Open client connections.\n"
               "# TYPE sesgate_connections gauge\nsesgate_connections %lld\n",
               metrics_connections_n);
}

/* Free one counter list. */
static void metrics_free_list(struct metrics_counter **list)
{
    struct metrics_counter *c = *list;
    while (c) {
        struct metrics_counter *next = c->next;
        free(c->a);
        free(c->b);
        free(c);
        c = next;
    }
    *list = NULL;
}

void metrics_cleanup(void)
{
    free(metrics_ups);
    metrics_ups = NULL;
    metrics_nups = 0;
    metrics_named = false;
    metrics_free_list(&metrics_requests);
    metrics_free_list(&metrics_auth);
    metrics_free_list(&metrics_rejected);
    metrics_free_list(&metrics_l_refused);
    metrics_free_list(&metrics_events);
    metrics_free_list(&metrics_fb_refused);
    metrics_free_list(&metrics_fb_messages);
    metrics_free_list(&metrics_smtp_refused_l);
    metrics_free_list(&metrics_smtp_msgs);
    metrics_free_list(&metrics_smtp_rcpts);
    metrics_free_list(&metrics_smtp_rej);
}
