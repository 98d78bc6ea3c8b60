/* metrics: process-wide counters, gauges and histograms, rendered in the
 * Prometheus text format for the admin listener's /metrics. The process is
 * single-threaded, so no locking. Label values must be short static or
 * validated names (action names, reasons), never client-supplied text.
 */
#ifndef SESGATE_METRICS_H
#define SESGATE_METRICS_H

#include "buf.h"

/* Count one answered SES request by action ("unknown" if none) and status. */
void metrics_request(const char *action, int status);
/* Count one authentication or authorization failure by reason. */
void metrics_auth_failure(const char *reason);
/* Observe one upstream call's latency in seconds, by outcome ("ok", "error"). */
void metrics_upstream(double seconds, const char *outcome);
/* Add delta to the number of SES requests in flight. */
void metrics_inflight(int delta);
/* Add delta to the number of open client connections. */
void metrics_connections(int delta);
/* Count a connection refused or closed by a limit or timeout, by reason. */
void metrics_conn_rejected(const char *reason);

/* Count one queued copy sent upstream. */
void metrics_queue_sent(void);
/* Count one queued copy scheduled for another attempt. */
void metrics_queue_retried(void);
/* Count one queued copy moved to the dead-letter stream. */
void metrics_queue_dead(void);
/* Count one relay to an events_url by result: "delivered", "retry" (a try
 * failed, another follows) or "dead" (moved to the dead relays). */
void metrics_relay(const char *result);
/* Set the relay gauges read from Redis with the queue's: relays on the
 * relay stream, waiting for a retry, dead. */
void metrics_relay_gauges(long long queued, long long retrying, long long dead);
/* Count one recipient left out because it is on the suppression list. */
void metrics_suppressed(void);
/* A fetch of upstream credentials ended: result "success" or "failure". */
void metrics_credentials_refresh(const char *result);
/* Set the queue gauges read from Redis: entries on the stream, age of the
 * oldest (seconds), entries being sent, retries waiting, dead letters. */
void metrics_queue_gauges(long long depth, double oldest_s, long long inflight, long long retrying,
                          long long dead);

/* The SNS endpoint refused a message, by reason (src/feedback.c's names). */
void metrics_feedback_refused(const char *reason);
/* The SNS endpoint handled a message of type (SNS's name) with outcome
 * (applied, replay, confirmed, not_confirmed, logged). */
void metrics_feedback_message(const char *type, const char *outcome);

/* SMTP: add delta to the open SMTP connections. */
void metrics_smtp_connections(int delta);
/* SMTP: a connection refused or closed by a limit or timeout, by reason. */
void metrics_smtp_refused(const char *reason);
/* SMTP: a message answered after DATA for client ("-" before AUTH) with
 * outcome (accepted, rejected, deferred) and its envelope recipients
 * (counted when accepted). */
void metrics_smtp_message(const char *client, const char *outcome, unsigned long long recipients);
/* SMTP: a refusal for client ("-" when unknown), by reason. */
void metrics_smtp_rejected(const char *client, const char *reason);

/* Append every metric in the Prometheus text exposition format. */
/* The rate limiter of upstream (its name): base and effective rate
 * (recipients/s), daily quota (0: unknown), recipients in the last 24 h
 * (< 0: not known yet). The unlabelled gauges are [upstream]'s ("default");
 * with several upstreams the sesgate_upstream_* families carry each one's,
 * labelled upstream="NAME". */
void metrics_limiter(const char *upstream, double base, double effective, long long quota,
                     long long used);

/* A take answered: refused for reason ("" when granted), granted after
 * wait_s seconds. */
void metrics_limiter_take(const char *reason, double wait_s);

/* SES answered upstream (its name) "Maximum sending rate exceeded". */
void metrics_limiter_throttled(const char *upstream);

/* A queued copy was sent through upstream (its name). */
void metrics_upstream_sent(const char *upstream);

/* Redis lost sesgate's data (epoch.lua). */
void metrics_redis_data_lost(void);
/* The Sentinels named a new master (sentinel.c). */
void metrics_redis_failover(void);
/* A batch was not confirmed on [redis] wait_replicas replicas (queue.c). */
void metrics_batch_unreplicated(void);
/* The upstream refused a signature of ours as expired or not yet current. */
void metrics_clock_skew(void);

/* A copy whose send timer fired too late took a new reservation. */
void metrics_pace_late(void);

/* Count one SES event applied, by type (sesevent_kind_name) and client
 * ("-" when its MessageId is not indexed). */
void metrics_event(const char *type, const char *client);

void metrics_render(struct buf *out);

/* Release the label tables (for leak-free shutdown). */
void metrics_cleanup(void);

#endif
