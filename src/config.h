/* config: sesgate's configuration, from an INI file and the environment.
 *
 * Order of precedence, lowest first: built-in defaults, the INI file, then
 * SESGATE_<SECTION>_<KEY> environment variables (for [client.NAME] sections:
 * SESGATE_CLIENT_<NAME>_<KEY>, NAME upper-cased, for clients the file
 * defines). Upstream credentials come from AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN when AWS_ACCESS_KEY_ID is set,
 * else from [upstream]. Pure apart from reading the file: the environment is
 * passed in as an envp-style array so tests control it.
 */
#ifndef SESGATE_CONFIG_H
#define SESGATE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct config_client {
    char *name;              /* NAME of [client.NAME]; owned */
    char *access_key_id;     /* owned */
    char *secret_access_key; /* owned; a secret: never print unmasked */
    char **allow_actions;    /* v1 action / v2 operation names; {"*"} = all; owned */
    size_t n_allow_actions;
    char **allow_from; /* "addr@domain", "*@domain" or "*"; owned */
    size_t n_allow_from;
    double rate;         /* recipients/s; 0 = no own cap */
    int64_t daily_quota; /* recipients per 24 h; 0 = no own cap */
    int fanout;          /* -1: as [send] fanout, 0: off, 1: on */
    char *events_url;    /* SES events for this client's mail relayed here; "" = none */
    char *upstream;      /* the [upstream.NAME] its mail goes to; "" = routed (config_route) */
};

/* auto: the upstream's MaxSendRate x headroom; fixed: rate; off: no limiter
 * (an upstream that is not rate-limited, benchmarks). */
enum config_rate_mode { CONFIG_RATE_AUTO, CONFIG_RATE_FIXED, CONFIG_RATE_OFF };

/* One SES account in one region: [upstream] (upstreams[0], named
 * "default") or [upstream.NAME]. */
struct config_upstream {
    char *name;              /* "default" for [upstream]; owned */
    char *endpoint;          /* URL, or "sandbox" ([upstream] only) */
    char *region;            /* owned */
    char *access_key_id;     /* static keys; "" = the credential chain (docs/CREDENTIALS.md) */
    char *secret_access_key; /* secret */
    char *session_token;     /* secret; "" if none */
    bool from_env;           /* the static keys came from AWS_ACCESS_KEY_ID... */
    char *profile;           /* AWS profile of the shared files; "" = AWS_PROFILE or default */
    char *role_arn;          /* assumed on top of the source; "" = none */
    char *external_id;       /* AssumeRole ExternalId; "" = none */
    char *session_name;      /* AssumeRole RoleSessionName; "" = sesgate-<host> */
    int64_t timeout_ms;      /* one upstream request, ms */
    /* pacing: the upstream's own keys, else [send] rate and headroom */
    enum config_rate_mode rate_mode;
    double rate;         /* recipients/s when CONFIG_RATE_FIXED */
    double headroom;     /* share of the account's MaxSendRate with rate = auto */
    int64_t daily_quota; /* recipients per 24 h at most; 0 = as SES reports */
    char **senders;      /* "addr@domain", "*@domain": mail from these goes here */
    size_t nsenders;
};

struct config {
    /* [server] */
    char *listen;             /* "host:port" */
    char *admin_listen;       /* "host:port"; empty = no admin listener */
    uint64_t max_body;        /* bytes */
    int64_t clock_skew_ms;    /* ms */
    char *tls_cert;           /* path or "" */
    char *tls_key;            /* path or "" */
    char *user;               /* run as this user once started as root; "" = stay */
    uint64_t max_header_size; /* bytes, request line + headers */
    int64_t read_timeout_ms;  /* ms: a started request must be fully read in this time */
    int64_t idle_timeout_ms;  /* ms: an idle keep-alive connection is closed after this */
    int64_t max_connections;  /* concurrent client connections */
    /* [upstream] and [upstream.NAME]: upstreams[0] is [upstream] */
    struct config_upstream *upstreams; /* owned */
    size_t nupstreams;
    bool sandbox_started; /* set by the daemon: upstreams[0] is the built-in sandbox's URL */
    /* [redis] */
    char *redis_url;         /* "" = managed redis-server */
    char *redis_tls_ca_file; /* rediss://: CA certificates (PEM); "" = the system's */
    char *data_dir;
    char *prefix;
    char *redis_sentinels;         /* "host:port,..."; "" = no Sentinel */
    char *redis_sentinel_master;   /* the master's name at the Sentinels */
    char *redis_sentinel_password; /* secret; "" = none */
    int64_t redis_wait_replicas;   /* WAIT for this many replicas before an ack; 0 = off */
    int64_t redis_wait_timeout_ms; /* ms: WAIT's timeout */
    /* [send] (rate and headroom: for every upstream without its own) */
    enum config_rate_mode rate_mode;
    double rate; /* recipients/s when CONFIG_RATE_FIXED */
    double headroom;
    int64_t max_wait_ms;
    int64_t quota_refresh_ms; /* rate = auto: how often the upstream's quota is read */
    bool fanout;
    bool first_recipient_sync; /* true: sync, false: queue */
    bool invalid_skip;         /* invalid_recipients: true skip, false refuse */
    int64_t max_recipients;
    int64_t concurrency;
    uint64_t max_inflight_bytes; /* upstream request bodies in flight per process */
    int64_t max_attempts;
    int64_t lease_ms; /* a queued send held this long by a silent worker is reclaimed */
    int64_t status_ttl_ms;
    /* [sandbox] */
    double sandbox_rate;
    int64_t sandbox_daily_quota;
    /* [sandbox] events: the sandbox publishes its outcomes as SNS notifications */
    bool sandbox_events;
    /* [feedback]: the SNS endpoint for SES's event notifications */
    char *feedback_path;           /* the endpoint's path on the SES listener */
    char *feedback_topics;         /* allowed TopicArns, comma-separated; "*" all; "" none */
    char *feedback_test_trust;     /* "CA-FILE HOST[:PORT]": extra trust for tests; "" none */
    bool feedback_confirm;         /* confirm subscriptions of allowed topics */
    int64_t feedback_index_ttl_ms; /* how long a MessageId stays indexed to its recipients */
    int64_t feedback_replay_ms;    /* how long a processed SNS MessageId is remembered */
    int64_t relay_attempts;        /* tries of an events_url relay before its dead-letter list */
    int64_t relay_timeout_ms;      /* one relay POST's deadline */
    /* [suppression] */
    bool suppress_bounce;                 /* a permanent bounce adds the address */
    bool suppress_complaint;              /* a complaint adds the address */
    int64_t suppress_transient_count;     /* transient bounces that add it; 0 = never */
    int64_t suppress_transient_window_ms; /* ... within this time */
    bool suppress_sync_ses;               /* keep SES's account-level suppression list in step */
    /* [smtp]: SES's SMTP interface */
    char *smtp_listen;            /* STARTTLS listener "host:port"; "" = off */
    char *smtp_tls_listen;        /* implicit TLS listener "host:port"; "" = off */
    int64_t smtp_max_connections; /* concurrent SMTP connections (both listeners) */
    int64_t smtp_max_commands;    /* commands per connection */
    int64_t smtp_read_timeout_ms; /* a command line, a TLS handshake or a whole DATA */
    int64_t smtp_idle_timeout_ms; /* waiting for the next command */
    /* [client.NAME] */
    struct config_client *clients; /* owned */
    size_t nclients;
    char *path; /* the file read, or "" */
};

/* Fill cfg with the built-in defaults (zero it first; config_load does this
 * itself, so do not call both). */
void config_defaults(struct config *cfg);

/* Reset cfg to the defaults, load path (NULL or "" for none) over them, then
 * apply env (NULL-terminated "NAME=value" array). On error returns -1 and
 * appends one line per problem found to err: "file:line: reason", or
 * "env NAME: reason" when a variable set the value; cross-checks (a
 * duplicate access key id, a missing secret) point at the section's line.
 * cfg must be freed with config_free either way. */
int config_load(struct config *cfg, const char *path, char *const *env, struct buf *err);

/* Print the effective configuration as INI, with every secret masked
 * (first 4 characters then "****"; empty stays empty). */
void config_print(const struct config *cfg, struct buf *out);

/* The client whose access key id is id (len bytes), or NULL. */
const struct config_client *config_client_by_key(const struct config *cfg, const char *id,
                                                 size_t len);

/* The client named name (NULL: none), or NULL. */
const struct config_client *config_client_by_name(const struct config *cfg, const char *name);

/* Add client name with key id and secret and the client defaults (every
 * action and sender allowed, no own limits). */
void config_add_client(struct config *cfg, const char *name, const char *id, const char *secret);

/* Swap cfg's clients for next's (next keeps cfg's old ones, to be freed
 * with config_free(next) once nothing refers to them). */
void config_swap_clients(struct config *cfg, struct config *next);

/* The upstream named name, or NULL. */
const struct config_upstream *config_upstream_by_name(const struct config *cfg, const char *name);

/* True when SES events reach sesgate: [feedback] topics names a topic, or
 * the built-in sandbox runs and publishes its outcomes ([sandbox] events).
 * MessageIds are indexed for correlation only then. */
bool config_feedback_enabled(const struct config *cfg);

/* Release everything owned by cfg. */
void config_free(struct config *cfg);

#endif
