/* config_keys: the table of configuration keys (section, name, kind,
 * field, bounds, default). Private to config.c, which includes it once:
 * the table is data, kept apart from the loader that walks it.
 */
#ifndef SESGATE_CONFIG_KEYS_H
#define SESGATE_CONFIG_KEYS_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum config_kind {
    CONFIG_STR,          /* char *: any text */
    CONFIG_ADDR,         /* char *: "host:port" */
    CONFIG_ENDPOINT,     /* char *: URL or "sandbox"; "" = from region */
    CONFIG_REGION,       /* char *: [a-z0-9-]+; "" = from AWS_REGION or default */
    CONFIG_PREFIX,       /* char *: [A-Za-z0-9_.:-]+ */
    CONFIG_SIZE,         /* uint64_t bytes */
    CONFIG_DURATION,     /* int64_t ms */
    CONFIG_INT,          /* int64_t */
    CONFIG_DOUBLE,       /* double */
    CONFIG_BOOL,         /* bool */
    CONFIG_CHOICE,       /* bool: the word yes (true) or the word no (false) */
    CONFIG_RATE,         /* enum config_rate_mode at off, double at off2 */
    CONFIG_LIST_ACTIONS, /* char ** at off, size_t count at off2 */
    CONFIG_LIST_FROM,    /* char ** at off, size_t count at off2 */
    CONFIG_OPT_RATE,     /* double; "" = 0 */
    CONFIG_OPT_QUOTA,    /* int64_t; "" = 0 */
    CONFIG_OPT_BOOL,     /* int: -1 when "", else 0 or 1 */
};

/* Flags of a key. */
#define CONFIG_SECRET   1u /* printed masked */
#define CONFIG_EMPTY_OK 2u /* CONFIG_STR / CONFIG_ADDR: "" allowed */

struct config_key {
    const char *section; /* "server", ..., or "client" for [client.NAME] */
    const char *name;
    enum config_kind kind;
    size_t off;  /* field in struct config, or struct config_client */
    size_t off2; /* second field (CONFIG_RATE, CONFIG_LIST_*) */
    unsigned flags;
    int64_t ilo, ihi; /* CONFIG_SIZE, CONFIG_DURATION, CONFIG_INT, CONFIG_OPT_QUOTA */
    double dlo, dhi;  /* CONFIG_DOUBLE, CONFIG_OPT_RATE, CONFIG_RATE */
    bool dlo_open;    /* the lower bound is excluded */
    const char *yes;  /* CONFIG_CHOICE: the word for true */
    const char *no;   /* CONFIG_CHOICE: the word for false */
    const char *def;  /* default, in the syntax of the file */
};

#define CONFIG_F(f)  offsetof(struct config, f)
#define CONFIG_CF(f) offsetof(struct config_client, f)

static const struct config_key config_keys[] = {
    {.section = "server",
     .name = "listen",
     .kind = CONFIG_ADDR,
     .off = CONFIG_F(listen),
     .def = "127.0.0.1:8025"},
    {.section = "server",
     .name = "admin_listen",
     .kind = CONFIG_ADDR,
     .off = CONFIG_F(admin_listen),
     .flags = CONFIG_EMPTY_OK,
     .def = "127.0.0.1:8026"},
    {.section = "server",
     .name = "max_body",
     .kind = CONFIG_SIZE,
     .off = CONFIG_F(max_body),
     .ilo = 1,
     .ihi = INT64_MAX,
     .def = "55m"},
    {.section = "server",
     .name = "clock_skew",
     .kind = CONFIG_DURATION,
     .off = CONFIG_F(clock_skew_ms),
     .ilo = 0,
     .ihi = INT64_MAX,
     .def = "5m"},
    {.section = "server",
     .name = "tls_cert",
     .kind = CONFIG_STR,
     .off = CONFIG_F(tls_cert),
     .flags = CONFIG_EMPTY_OK,
     .def = ""},
    {.section = "server",
     .name = "tls_key",
     .kind = CONFIG_STR,
     .off = CONFIG_F(tls_key),
     .flags = CONFIG_EMPTY_OK,
     .def = ""},
    {.section = "server",
     .name = "max_header_size",
     .kind = CONFIG_SIZE,
     .off = CONFIG_F(max_header_size),
     .ilo = 1,
     .ihi = INT64_MAX,
     .def = "64k"},
    {.section = "server",
     .name = "read_timeout",
     .kind = CONFIG_DURATION,
     .off = CONFIG_F(read_timeout_ms),
     .ilo = 1,
     .ihi = INT64_MAX,
     .def = "30s"},
    {.section = "server",
     .name = "idle_timeout",
     .kind = CONFIG_DURATION,
     .off = CONFIG_F(idle_timeout_ms),
     .ilo = 1,
     .ihi = INT64_MAX,
     .def = "1m"},
    {.section = "server",
     .name = "max_connections",
     .kind = CONFIG_INT,
     .off = CONFIG_F(max_connections),
     .ilo = 1,
     .ihi = 1000000,
     .def = "10000"},
    {.section = "server",
     .name = "user",
     .kind = CONFIG_STR,
     .off = CONFIG_F(user),
     .flags = CONFIG_EMPTY_OK,
     .def = ""},
    {.section = "upstream",
     .name = "endpoint",
     .kind = CONFIG_ENDPOINT,
     .off = CONFIG_F(endpoint),
     .def = ""},
    {.section = "upstream",
     .name = "region",
     .kind = CONFIG_REGION,
     .off = CONFIG_F(region),
     .def = "us-east-1"},
    {.section = "upstream",
     .name = "access_key_id",
     .kind = CONFIG_STR,
     .off = CONFIG_F(access_key_id),
     .flags = CONFIG_EMPTY_OK,
     .def = ""},
    {.section = "upstream",
     .name = "secret_access_key",
     .kind = CONFIG_STR,
     .off = CONFIG_F(secret_access_key),
     .flags = CONFIG_EMPTY_OK | CONFIG_SECRET,
     .def = ""},
    {.section = "upstream",
     .name = "session_token",
     .kind = CONFIG_STR,
     .off = CONFIG_F(session_token),
     .flags = CONFIG_EMPTY_OK | CONFIG_SECRET,
     .def = ""},
    {.section = "upstream",
     .name = "timeout",
     .kind = CONFIG_DURATION,
     .off = CONFIG_F(timeout_ms),
     .ilo = 1,
     .ihi = INT64_MAX,
     .def = "30s"},
    {.section = "redis",
     .name = "url",
     .kind = CONFIG_STR,
     .off = CONFIG_F(redis_url),
     .flags = CONFIG_EMPTY_OK,
     .def = ""},
    {.section = "redis",
     .name = "data_dir",
     .kind = CONFIG_STR,
     .off = CONFIG_F(data_dir),
     .def = "./var"},
    {.section = "redis",
     .name = "prefix",
     .kind = CONFIG_PREFIX,
     .off = CONFIG_F(prefix),
     .def = "sesgate"},
    {.section = "send",
     .name = "rate",
     .kind = CONFIG_RATE,
     .off = CONFIG_F(rate_mode),
     .off2 = CONFIG_F(rate),
     .dlo = 0,
     .dhi = HUGE_VAL,
     .dlo_open = true,
     .def = "auto"},
    {.section = "send",
     .name = "headroom",
     .kind = CONFIG_DOUBLE,
     .off = CONFIG_F(headroom),
     .dlo = 0,
     .dhi = 1,
     .dlo_open = true,
     .def = "0.9"},
    {.section = "send",
     .name = "max_wait",
     .kind = CONFIG_DURATION,
     .off = CONFIG_F(max_wait_ms),
     .ilo = 0,
     .ihi = INT64_MAX,
     .def = "2s"},
    {.section = "send",
     .name = "quota_refresh",
     .kind = CONFIG_DURATION,
     .off = CONFIG_F(quota_refresh_ms),
     .ilo = 1000,
     .ihi = 86400000,
     .def = "1m"},
    {.section = "send",
     .name = "fanout",
     .kind = CONFIG_BOOL,
     .off = CONFIG_F(fanout),
     .def = "on"},
    {.section = "send",
     .name = "first_recipient",
     .kind = CONFIG_CHOICE,
     .off = CONFIG_F(first_recipient_sync),
     .yes = "sync",
     .no = "queue",
     .def = "sync"},
    {.section = "send",
     .name = "invalid_recipients",
     .kind = CONFIG_CHOICE,
     .off = CONFIG_F(invalid_skip),
     .yes = "skip",
     .no = "refuse",
     .def = "refuse"},
    {.section = "send",
     .name = "max_recipients",
     .kind = CONFIG_INT,
     .off = CONFIG_F(max_recipients),
     .ilo = 1,
     .ihi = 1000000,
     .def = "10000"},
    {.section = "send",
     .name = "concurrency",
     .kind = CONFIG_INT,
     .off = CONFIG_F(concurrency),
     .ilo = 1,
     .ihi = 10000,
     .def = "64"},
    {.section = "send",
     .name = "max_inflight_bytes",
     .kind = CONFIG_SIZE,
     .off = CONFIG_F(max_inflight_bytes),
     .ilo = 1,
     .ihi = INT64_MAX,
     .def = "256m"},
    {.section = "send",
     .name = "max_attempts",
     .kind = CONFIG_INT,
     .off = CONFIG_F(max_attempts),
     .ilo = 1,
     .ihi = 100,
     .def = "12"},
    {.section = "send",
     .name = "lease",
     .kind = CONFIG_DURATION,
     .off = CONFIG_F(lease_ms),
     .ilo = 1000,
     .ihi = 86400000,
     .def = "1m"},
    {.section = "send",
     .name = "status_ttl",
     .kind = CONFIG_DURATION,
     .off = CONFIG_F(status_ttl_ms),
     .ilo = 1,
     .ihi = INT64_MAX,
     .def = "7d"},
    {.section = "sandbox",
     .name = "rate",
     .kind = CONFIG_DOUBLE,
     .off = CONFIG_F(sandbox_rate),
     .dlo = 0,
     .dhi = HUGE_VAL,
     .dlo_open = true,
     .def = "14"},
    {.section = "sandbox",
     .name = "daily_quota",
     .kind = CONFIG_INT,
     .off = CONFIG_F(sandbox_daily_quota),
     .ilo = 0,
     .ihi = INT64_MAX,
     .def = "50000"},
};

#define CONFIG_NKEYS (sizeof config_keys / sizeof config_keys[0])

static const struct config_key config_client_keys[] = {
    {.section = "client",
     .name = "access_key_id",
     .kind = CONFIG_STR,
     .off = CONFIG_CF(access_key_id),
     .flags = CONFIG_EMPTY_OK,
     .def = ""},
    {.section = "client",
     .name = "secret_access_key",
     .kind = CONFIG_STR,
     .off = CONFIG_CF(secret_access_key),
     .flags = CONFIG_EMPTY_OK | CONFIG_SECRET,
     .def = ""},
    {.section = "client",
     .name = "allow_actions",
     .kind = CONFIG_LIST_ACTIONS,
     .off = CONFIG_CF(allow_actions),
     .off2 = CONFIG_CF(n_allow_actions),
     .def = "*"},
    {.section = "client",
     .name = "allow_from",
     .kind = CONFIG_LIST_FROM,
     .off = CONFIG_CF(allow_from),
     .off2 = CONFIG_CF(n_allow_from),
     .def = "*"},
    {.section = "client",
     .name = "rate",
     .kind = CONFIG_OPT_RATE,
     .off = CONFIG_CF(rate),
     .dlo = 0,
     .dhi = HUGE_VAL,
     .dlo_open = true,
     .def = ""},
    {.section = "client",
     .name = "daily_quota",
     .kind = CONFIG_OPT_QUOTA,
     .off = CONFIG_CF(daily_quota),
     .ilo = 0,
     .ihi = INT64_MAX,
     .def = ""},
    {.section = "client",
     .name = "fanout",
     .kind = CONFIG_OPT_BOOL,
     .off = CONFIG_CF(fanout),
     .def = ""},
};

#define CONFIG_NCKEYS (sizeof config_client_keys / sizeof config_client_keys[0])

/* Indexes into config_client_keys[] used by the cross-checks. */
enum { CONFIG_CK_ID = 0, CONFIG_CK_SECRET = 1 };

/* The global sections, in the order they are printed. */
static const char *const config_sections[] = {"server", "upstream", "redis", "send", "sandbox"};

#define CONFIG_NSECTIONS (sizeof config_sections / sizeof config_sections[0])

#endif
