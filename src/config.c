/* config: load sesgate's configuration from an INI file (parsed by inih) and
 * the environment, check it, and print it back with secrets masked.
 *
 * Every key is described once, in config_keys[] (global sections),
 * config_upstream_keys[] ([upstream] and [upstream.NAME]) and
 * config_client_keys[] ([client.NAME]): its section, name, kind, field,
 * range and default. Defaults, parsing, environment overrides and printing
 * all walk these tables, so they cannot disagree.
 *
 * inih calls config_handler() for each "key = value" line. The lines reach
 * inih through config_reader(), which also counts lines (so every message
 * carries the line number whatever way libinih was built), strips leading
 * whitespace (an indented key is a key, never a continuation of the previous
 * value), tracks [section] headers with their line numbers, and reports
 * malformed lines itself, so that every one of them is reported, not only
 * the first.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "sns.h"
#include "util.h"

/* Longest configuration file read, bytes. */
#define CONFIG_MAX_FILE (4u << 20)
/* Line buffer handed to inih, bytes: a line may hold up to this minus 2. */
#define CONFIG_MAX_LINE 8192
/* Longest part of an offending value quoted in an error message. */
#define CONFIG_QUOTE_MAX 80

#include "config_keys.h"

/* Where a setting came from: a file line, an environment entry, or neither. */
struct config_origin {
    int line;        /* line in the file, or 0 */
    const char *env; /* the "NAME=value" entry of env, or NULL */
};

/* Per-client bookkeeping while loading. */
struct config_client_meta {
    int line; /* line of the [client.NAME] header */
    struct config_origin key[CONFIG_NCKEYS];
};

/* Per-upstream bookkeeping while loading. */
struct config_upstream_meta {
    int line; /* line of the [upstream] or [upstream.NAME] header (0: none) */
    struct config_origin key[CONFIG_NUKEYS];
};

enum config_sec {
    CONFIG_SEC_NONE,
    CONFIG_SEC_GLOBAL,
    CONFIG_SEC_CLIENT,
    CONFIG_SEC_UPSTREAM,
    CONFIG_SEC_SKIP
};

struct config_loader {
    struct config *cfg;
    struct buf *err;
    int nerr;
    const char *path; /* for messages */
    /* the file, fed line by line to inih */
    const char *data;
    size_t len, pos;
    int lineno;
    /* the section the current line belongs to */
    enum config_sec sec;
    const char *sec_name; /* CONFIG_SEC_GLOBAL: an entry of config_sections */
    size_t client;        /* CONFIG_SEC_CLIENT: index into cfg->clients */
    size_t upstream;      /* CONFIG_SEC_UPSTREAM: index into cfg->upstreams */
    /* where each setting came from */
    struct config_origin origin[CONFIG_NKEYS];
    struct config_client_meta *meta; /* parallel to cfg->clients */
    size_t meta_cap;
    struct config_upstream_meta *umeta; /* parallel to cfg->upstreams */
};

/* Append one error line: the origin's prefix, then the formatted reason. */
static void __attribute__((format(printf, 3, 4)))
config_err(struct config_loader *ld, const struct config_origin *o, const char *fmt, ...)
{
    if (o != NULL && o->env != NULL) {
        const char *eq = strchr(o->env, '=');
        int n = eq ? (int)(eq - o->env) : (int)strlen(o->env);
        buf_printf(ld->err, "env %.*s: ", n, o->env);
    } else if (o != NULL && o->line > 0) {
        buf_printf(ld->err, "%s:%d: ", ld->path, o->line);
    } else {
        buf_adds(ld->err, "config: ");
    }
    struct buf why = BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&why, fmt, ap);
    va_end(ap);
    /* Quoted input may hold control characters: keep them off terminals. */
    for (size_t i = 0; i < why.len; i++)
        buf_addc(ld->err,
                 (unsigned char)why.data[i] < 0x20 || why.data[i] == 0x7f ? '?' : why.data[i]);
    buf_free(&why);
    buf_addc(ld->err, '\n');
    ld->nerr++;
}

/* Address of a field of base at byte offset off. */
static void *config_field(void *base, size_t off)
{
    return (char *)base + off;
}

/* Address of a read-only field of base at byte offset off. */
static const void *config_cfield(const void *base, size_t off)
{
    return (const char *)base + off;
}

/* Replace the string field at off with a copy of v. */
static void config_set_str(void *base, size_t off, const char *v)
{
    char **p = config_field(base, off);
    free(*p);
    *p = xstrdup(v);
}

/* Free a list of n strings. */
static void config_free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

/* True for the separators of a list value: commas and whitespace. */
static bool config_is_list_sep(char c)
{
    return c == ',' || isspace((unsigned char)c);
}

/* Split v into tokens separated by commas and whitespace. */
static char **config_split(const char *v, size_t *n)
{
    char **list = NULL;
    size_t cnt = 0;
    const char *p = v;
    for (;;) {
        while (*p && config_is_list_sep(*p))
            p++;
        if (*p == '\0')
            break;
        const char *s = p;
        while (*p && !config_is_list_sep(*p))
            p++;
        list = xrealloc(list, (cnt + 1) * sizeof *list);
        list[cnt++] = xstrndup(s, (size_t)(p - s));
    }
    *n = cnt;
    return list;
}

/* True when s is "host:port": a non-empty host without whitespace (IPv6 in
 * brackets) and a decimal port 0..65535. */
static bool config_valid_addr(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s)
        return false;
    size_t hlen = (size_t)(colon - s);
    for (size_t i = 0; i < hlen; i++)
        if (isspace((unsigned char)s[i]))
            return false;
    if (s[0] == '[' && s[hlen - 1] != ']')
        return false;
    if (s[0] != '[' && memchr(s, ':', hlen) != NULL)
        return false;
    const char *p = colon + 1;
    if (*p == '\0' || strlen(p) > 5)
        return false;
    long port = 0;
    for (; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return false;
        port = port * 10 + (*p - '0');
    }
    return port <= 65535;
}

/* True when s is "sandbox" or an http(s) URL with a host. */
static bool config_valid_endpoint(const char *s)
{
    const char *rest;
    if (strcmp(s, "sandbox") == 0)
        return true;
    if (strncmp(s, "https://", 8) == 0)
        rest = s + 8;
    else if (strncmp(s, "http://", 7) == 0)
        rest = s + 7;
    else
        return false;
    if (*rest == '\0' || *rest == '/')
        return false;
    for (; *rest; rest++)
        if (isspace((unsigned char)*rest))
            return false;
    return true;
}

/* True when s is non-empty and every character is in the set allowed. */
static bool config_only(const char *s, const char *allowed)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && strchr(allowed, *s) == NULL)
            return false;
    return true;
}

/* True for an allow_actions entry: "*" or an action / operation name. */
static bool config_valid_action(const char *s)
{
    return strcmp(s, "*") == 0 || config_only(s, "");
}

/* True for an allow_from entry: "*", "*@domain" or "local@domain". */
static bool config_valid_from(const char *s)
{
    if (strcmp(s, "*") == 0)
        return true;
    const char *at = strrchr(s, '@');
    if (at == NULL || at == s || at[1] == '\0')
        return false;
    if (strchr(at + 1, '*') != NULL)
        return false;
    const char *star = strchr(s, '*');
    return star == NULL || (star == s && at == s + 1);
}

/* Parse a whole decimal integer (optional sign) into *out; -1 if malformed. */
static int config_parse_int(const char *s, int64_t *out)
{
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    if (!isdigit((unsigned char)*p))
        return -1;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q))
            return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = (int64_t)v;
    return 0;
}

/* Parse a plain decimal number (digits, fraction, exponent; no hex, inf or
 * nan) into *out; -1 if malformed. */
static int config_parse_double(const char *s, double *out)
{
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    size_t digits = 0;
    while (isdigit((unsigned char)*p)) {
        p++;
        digits++;
    }
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p)) {
            p++;
            digits++;
        }
    }
    if (digits == 0)
        return -1;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p != '\0')
        return -1;
    double v = strtod(s, NULL);
    if (!isfinite(v))
        return -1;
    *out = v;
    return 0;
}

/* Parse a boolean: on/off, true/false, yes/no, 1/0 (any case); -1 if none. */
static int config_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"on", "true", "yes", "1"};
    static const char *const no[] = {"off", "false", "no", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/* Check a double (written v) against the key's range; the reason in why. */
static int config_check_double(const struct config_key *k, double d, const char *v, struct buf *why)
{
    bool low = k->dlo_open ? d <= k->dlo : d < k->dlo;
    if (low || d > k->dhi) {
        buf_printf(why, "'%.*s' is out of range (want %s %g", CONFIG_QUOTE_MAX, v,
                   k->dlo_open ? ">" : ">=", k->dlo);
        if (k->dhi != HUGE_VAL)
            buf_printf(why, " and <= %g", k->dhi);
        buf_addc(why, ')');
        return -1;
    }
    return 0;
}

/* Check an integer (written v) against the key's range; the reason in why. */
static int config_check_int(const struct config_key *k, int64_t n, const char *v, struct buf *why)
{
    if (n < k->ilo || n > k->ihi) {
        if (k->ihi == INT64_MAX)
            buf_printf(why, "'%.*s' is out of range (want at least %" PRId64 ")", CONFIG_QUOTE_MAX,
                       v, k->ilo);
        else
            buf_printf(why, "'%.*s' is out of range (want %" PRId64 " to %" PRId64 ")",
                       CONFIG_QUOTE_MAX, v, k->ilo, k->ihi);
        return -1;
    }
    return 0;
}

/* Set a text key (string, address, endpoint, region, prefix). Returns 0, or -1 with the reason in
 * why. */
static int config_set_text(const struct config_key *k, void *base, const char *v, struct buf *why)
{
    int q = CONFIG_QUOTE_MAX;
    switch (k->kind) {
    case CONFIG_STR:
        if (*v == '\0' && !(k->flags & CONFIG_EMPTY_OK)) {
            buf_adds(why, "must not be empty");
            return -1;
        }
        config_set_str(base, k->off, v);
        return 0;
    case CONFIG_ADDR:
        if (!(*v == '\0' && (k->flags & CONFIG_EMPTY_OK)) && !config_valid_addr(v)) {
            buf_printf(why, "bad address '%.*s' (want host:port)", q, v);
            return -1;
        }
        config_set_str(base, k->off, v);
        return 0;
    case CONFIG_ENDPOINT:
        if (*v != '\0' && !config_valid_endpoint(v)) {
            buf_printf(why, "bad endpoint '%.*s' (want an http:// or https:// URL, or sandbox)", q,
                       v);
            return -1;
        }
        config_set_str(base, k->off, v);
        return 0;
    case CONFIG_REGION:
        if (*v != '\0' && !config_only(v, "-")) {
            buf_printf(why, "bad region '%.*s' (want a name such as us-east-1)", q, v);
            return -1;
        }
        for (const char *p = v; *p; p++) {
            if (isupper((unsigned char)*p)) {
                buf_printf(why, "bad region '%.*s' (want a name such as us-east-1)", q, v);
                return -1;
            }
        }
        config_set_str(base, k->off, v);
        return 0;
    case CONFIG_PREFIX:
        if (!config_only(v, "_.:-")) {
            buf_printf(why, "bad prefix '%.*s' (want letters, digits, '_', '.', ':' or '-')", q, v);
            return -1;
        }
        config_set_str(base, k->off, v);
        return 0;
    default:
        return -1;
    }
}

/* Set a numeric key (size, duration, number, rate). Returns 0, or -1 with the reason in why. */
static int config_set_number(const struct config_key *k, void *base, const char *v, struct buf *why)
{
    int q = CONFIG_QUOTE_MAX;
    switch (k->kind) {
    case CONFIG_SIZE: {
        uint64_t n;
        if (util_parse_size(v, &n) < 0) {
            buf_printf(why, "bad size '%.*s' (want a number with unit b, k, m or g)", q, v);
            return -1;
        }
        if (n < (uint64_t)k->ilo) {
            buf_printf(why, "'%.*s' is out of range (want at least %" PRId64 " byte)", q, v,
                       k->ilo);
            return -1;
        }
        *(uint64_t *)config_field(base, k->off) = n;
        return 0;
    }
    case CONFIG_DURATION: {
        int64_t ms;
        if (util_parse_duration_ms(v, &ms) < 0) {
            buf_printf(why, "bad duration '%.*s' (want a number with unit ms, s, m, h or d)", q, v);
            return -1;
        }
        if (ms < k->ilo) {
            buf_printf(why, "'%.*s' is out of range (want at least %" PRId64 "ms)", q, v, k->ilo);
            return -1;
        }
        *(int64_t *)config_field(base, k->off) = ms;
        return 0;
    }
    case CONFIG_INT:
    case CONFIG_OPT_QUOTA: {
        int64_t n = 0;
        if (k->kind == CONFIG_OPT_QUOTA && *v == '\0') {
            *(int64_t *)config_field(base, k->off) = 0;
            return 0;
        }
        if (config_parse_int(v, &n) < 0) {
            buf_printf(why, "bad number '%.*s' (want a whole number)", q, v);
            return -1;
        }
        if (config_check_int(k, n, v, why) < 0)
            return -1;
        *(int64_t *)config_field(base, k->off) = n;
        return 0;
    }
    case CONFIG_DOUBLE:
    case CONFIG_OPT_RATE: {
        double d = 0;
        if (k->kind == CONFIG_OPT_RATE && *v == '\0') {
            *(double *)config_field(base, k->off) = 0;
            return 0;
        }
        if (config_parse_double(v, &d) < 0) {
            buf_printf(why, "bad number '%.*s'", q, v);
            return -1;
        }
        if (config_check_double(k, d, v, why) < 0)
            return -1;
        *(double *)config_field(base, k->off) = d;
        return 0;
    }
    case CONFIG_RATE: {
        double d = 0;
        if (strcasecmp(v, "auto") == 0 || strcasecmp(v, "off") == 0) {
            *(enum config_rate_mode *)config_field(base, k->off) =
                strcasecmp(v, "auto") == 0 ? CONFIG_RATE_AUTO : CONFIG_RATE_OFF;
            *(double *)config_field(base, k->off2) = 0;
            return 0;
        }
        if (config_parse_double(v, &d) < 0) {
            buf_printf(why, "bad rate '%.*s' (want auto, off or a number > 0)", q, v);
            return -1;
        }
        if (config_check_double(k, d, v, why) < 0)
            return -1;
        *(enum config_rate_mode *)config_field(base, k->off) = CONFIG_RATE_FIXED;
        *(double *)config_field(base, k->off2) = d;
        return 0;
    }
    default:
        return -1;
    }
}

/* Set a boolean key, or a two-word choice. Returns 0, or -1 with the reason in why. */
static int config_set_flag(const struct config_key *k, void *base, const char *v, struct buf *why)
{
    int q = CONFIG_QUOTE_MAX;
    switch (k->kind) {
    case CONFIG_BOOL:
    case CONFIG_OPT_BOOL: {
        bool b;
        if (k->kind == CONFIG_OPT_BOOL && *v == '\0') {
            *(int *)config_field(base, k->off) = -1;
            return 0;
        }
        if (config_parse_bool(v, &b) < 0) {
            buf_printf(why, "bad boolean '%.*s' (want on/off, true/false, yes/no or 1/0)", q, v);
            return -1;
        }
        if (k->kind == CONFIG_BOOL)
            *(bool *)config_field(base, k->off) = b;
        else
            *(int *)config_field(base, k->off) = b ? 1 : 0;
        return 0;
    }
    case CONFIG_CHOICE:
        if (strcasecmp(v, k->yes) != 0 && strcasecmp(v, k->no) != 0) {
            buf_printf(why, "bad value '%.*s' (want %s or %s)", q, v, k->yes, k->no);
            return -1;
        }
        *(bool *)config_field(base, k->off) = strcasecmp(v, k->yes) == 0;
        return 0;
    default:
        return -1;
    }
}

/* Set a list key (allow_actions, allow_from). Returns 0, or -1 with the reason in why. */
static int config_set_list(const struct config_key *k, void *base, const char *v, struct buf *why)
{
    int q = CONFIG_QUOTE_MAX;
    switch (k->kind) {
    case CONFIG_LIST_ACTIONS:
    case CONFIG_LIST_FROM: {
        size_t n;
        char **list = config_split(v, &n);
        if (n == 0 && (k->flags & CONFIG_EMPTY_OK)) {
            char ***lp = config_field(base, k->off);
            size_t *np = config_field(base, k->off2);
            config_free_list(*lp, *np);
            *lp = list;
            *np = 0;
            return 0;
        }
        if (n == 0) {
            buf_adds(why, "empty list (use * to allow all)");
            config_free_list(list, n);
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            bool ok = k->kind == CONFIG_LIST_ACTIONS ? config_valid_action(list[i])
                                                     : config_valid_from(list[i]);
            if (!ok) {
                if (k->kind == CONFIG_LIST_ACTIONS)
                    buf_printf(why, "bad action '%.*s' (want an action name or *)", q, list[i]);
                else
                    buf_printf(why, "bad sender '%.*s' (want addr@domain, *@domain or *)", q,
                               list[i]);
                config_free_list(list, n);
                return -1;
            }
        }
        char ***lp = config_field(base, k->off);
        size_t *np = config_field(base, k->off2);
        config_free_list(*lp, *np);
        *lp = list;
        *np = n;
        return 0;
    }
    default:
        return -1;
    }
}

/* Set the field of key k in base (struct config or struct config_client)
 * from the text v. Returns 0, or -1 with the reason in why (never quoting a
 * secret); the field is unchanged on error. */
static int config_set(const struct config_key *k, void *base, const char *v, struct buf *why)
{
    for (const char *p = v; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            buf_adds(why, "contains a control character");
            return -1;
        }
    }
    switch (k->kind) {
    case CONFIG_STR:
    case CONFIG_ADDR:
    case CONFIG_ENDPOINT:
    case CONFIG_REGION:
    case CONFIG_PREFIX:
        return config_set_text(k, base, v, why);
    case CONFIG_SIZE:
    case CONFIG_DURATION:
    case CONFIG_INT:
    case CONFIG_OPT_QUOTA:
    case CONFIG_DOUBLE:
    case CONFIG_OPT_RATE:
    case CONFIG_RATE:
        return config_set_number(k, base, v, why);
    case CONFIG_BOOL:
    case CONFIG_OPT_BOOL:
    case CONFIG_CHOICE:
        return config_set_flag(k, base, v, why);
    case CONFIG_LIST_ACTIONS:
    case CONFIG_LIST_FROM:
        return config_set_list(k, base, v, why);
    }
    return -1;
}

/* Set key k of base from v and report a failure at origin o. */
static void config_apply(struct config_loader *ld, const struct config_key *k, void *base,
                         const char *label, const char *v, const struct config_origin *o)
{
    struct buf why = BUF_INIT;
    if (config_set(k, base, v, &why) < 0) {
        if (o->env != NULL)
            config_err(ld, o, "%s", buf_cstr(&why));
        else
            config_err(ld, o, "[%s] %s: %s", label, k->name, buf_cstr(&why));
    }
    buf_free(&why);
}

/* Index of key name in section sec of config_keys[], or -1. */
static int config_find_key(const char *sec, const char *name)
{
    for (size_t i = 0; i < CONFIG_NKEYS; i++)
        if (strcmp(config_keys[i].section, sec) == 0 && strcmp(config_keys[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* Set u->endpoint to its region's SES endpoint. */
static void config_derive_endpoint(struct config_upstream *u)
{
    struct buf b = BUF_INIT;
    buf_printf(&b, "https://email.%s.amazonaws.com", u->region);
    free(u->endpoint);
    u->endpoint = buf_detach(&b, NULL);
}

/* Fill a new upstream with its defaults. */
static void config_upstream_defaults(struct config_upstream *u, const char *name)
{
    memset(u, 0, sizeof *u);
    u->name = xstrdup(name);
    struct buf why = BUF_INIT;
    for (size_t i = 0; i < CONFIG_NUKEYS; i++)
        config_set(&config_upstream_keys[i], u, config_upstream_keys[i].def, &why);
    buf_free(&why);
    config_derive_endpoint(u);
}

/* Append an upstream named name with its defaults; its index. */
static size_t config_add_upstream(struct config *cfg, const char *name)
{
    cfg->upstreams = xrealloc(cfg->upstreams, (cfg->nupstreams + 1) * sizeof *cfg->upstreams);
    config_upstream_defaults(&cfg->upstreams[cfg->nupstreams], name);
    return cfg->nupstreams++;
}

/* Reset cfg to the built-in defaults. */
void config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    struct buf why = BUF_INIT;
    for (size_t i = 0; i < CONFIG_NKEYS; i++)
        config_set(&config_keys[i], cfg, config_keys[i].def, &why);
    buf_free(&why);
    config_add_upstream(cfg, "default");
    cfg->path = xstrdup("");
}

/* Fill a new client with its defaults. */
static void config_client_defaults(struct config_client *c, const char *name)
{
    memset(c, 0, sizeof *c);
    c->name = xstrdup(name);
    struct buf why = BUF_INIT;
    for (size_t i = 0; i < CONFIG_NCKEYS; i++)
        config_set(&config_client_keys[i], c, config_client_keys[i].def, &why);
    buf_free(&why);
}

void config_add_client(struct config *cfg, const char *name, const char *id, const char *secret)
{
    cfg->clients = xrealloc(cfg->clients, (cfg->nclients + 1) * sizeof *cfg->clients);
    struct config_client *c = &cfg->clients[cfg->nclients++];
    config_client_defaults(c, name);
    free(c->access_key_id);
    free(c->secret_access_key);
    c->access_key_id = xstrdup(id);
    c->secret_access_key = xstrdup(secret);
}

void config_swap_clients(struct config *cfg, struct config *next)
{
    struct config_client *c = cfg->clients;
    size_t n = cfg->nclients;
    cfg->clients = next->clients;
    cfg->nclients = next->nclients;
    next->clients = c;
    next->nclients = n;
}

/* Release what a client owns. */
static void config_client_free(struct config_client *c)
{
    free(c->name);
    free(c->access_key_id);
    free(c->secret_access_key);
    free(c->events_url);
    free(c->upstream);
    config_free_list(c->allow_actions, c->n_allow_actions);
    config_free_list(c->allow_from, c->n_allow_from);
}

/* Release what an upstream owns. */
static void config_upstream_free(struct config_upstream *u)
{
    for (size_t i = 0; i < CONFIG_NUKEYS; i++) {
        const struct config_key *k = &config_upstream_keys[i];
        if (k->kind == CONFIG_STR || k->kind == CONFIG_ENDPOINT || k->kind == CONFIG_REGION)
            free(*(char **)config_field(u, k->off));
    }
    config_free_list(u->senders, u->nsenders);
    free(u->name);
}

/* The loader's bookkeeping for upstream i, grown to cover it. */
static struct config_upstream_meta *config_umeta(struct config_loader *ld, size_t i)
{
    ld->umeta = xrealloc(ld->umeta, ld->cfg->nupstreams * sizeof *ld->umeta);
    return &ld->umeta[i];
}

/* Start [upstream] (name NULL) or [upstream.NAME]. */
static void config_section_upstream(struct config_loader *ld, const char *name)
{
    struct config_origin here = {ld->lineno, NULL};
    struct config *cfg = ld->cfg;
    if (name != NULL && !config_only(name, "_-")) {
        config_err(ld, &here, "invalid upstream name '%.*s' (want letters, digits, '_' or '-')",
                   CONFIG_QUOTE_MAX, name);
        return;
    }
    if (name != NULL && strcmp(name, "default") == 0) {
        config_err(ld, &here, "[upstream.default]: the name default is [upstream]'s");
        return;
    }
    for (size_t i = 0; name && i < cfg->nupstreams; i++) {
        if (strcmp(cfg->upstreams[i].name, name) == 0) {
            config_err(ld, &here, "duplicate section [upstream.%s] (first on line %d)", name,
                       ld->umeta[i].line);
            return;
        }
    }
    size_t u = name ? config_add_upstream(cfg, name) : 0;
    struct config_upstream_meta *m = config_umeta(ld, u);
    if (u > 0)
        memset(m, 0, sizeof *m);
    if (m->line == 0)
        m->line = ld->lineno;
    ld->upstream = u;
    ld->sec = CONFIG_SEC_UPSTREAM;
}

/* Start the section named name (header on line ld->lineno). */
static void config_section(struct config_loader *ld, const char *name)
{
    struct config_origin here = {ld->lineno, NULL};
    struct config *cfg = ld->cfg;
    ld->sec = CONFIG_SEC_SKIP;
    if (strcmp(name, "upstream") == 0 || strncmp(name, "upstream.", 9) == 0) {
        config_section_upstream(ld, name[8] ? name + 9 : NULL);
        return;
    }
    for (size_t i = 0; i < CONFIG_NSECTIONS; i++) {
        if (strcmp(name, config_sections[i]) == 0) {
            ld->sec = CONFIG_SEC_GLOBAL;
            ld->sec_name = config_sections[i];
            return;
        }
    }
    if (strncmp(name, "client.", 7) != 0) {
        config_err(ld, &here, "unknown section [%.*s]", CONFIG_QUOTE_MAX, name);
        return;
    }
    const char *cname = name + 7;
    if (!config_only(cname, "_-")) {
        config_err(ld, &here, "invalid client name '%.*s' (want letters, digits, '_' or '-')",
                   CONFIG_QUOTE_MAX, cname);
        return;
    }
    for (size_t i = 0; i < cfg->nclients; i++) {
        if (strcmp(cfg->clients[i].name, cname) == 0) {
            config_err(ld, &here, "duplicate section [client.%s] (first on line %d)", cname,
                       ld->meta[i].line);
            return;
        }
    }
    cfg->clients = xrealloc(cfg->clients, (cfg->nclients + 1) * sizeof *cfg->clients);
    if (cfg->nclients + 1 > ld->meta_cap) {
        ld->meta_cap = ld->meta_cap ? 2 * ld->meta_cap : 8;
        ld->meta = xrealloc(ld->meta, ld->meta_cap * sizeof *ld->meta);
    }
    config_client_defaults(&cfg->clients[cfg->nclients], cname);
    memset(&ld->meta[cfg->nclients], 0, sizeof ld->meta[0]);
    ld->meta[cfg->nclients].line = ld->lineno;
    ld->client = cfg->nclients++;
    ld->sec = CONFIG_SEC_CLIENT;
}

/* "upstream" or "upstream.NAME", as the section is written. */
static void config_upstream_label(struct buf *b, const struct config_upstream *u)
{
    if (strcmp(u->name, "default") == 0)
        buf_adds(b, "upstream");
    else
        buf_printf(b, "upstream.%s", u->name);
}

/* One "name = value" line of a [client.NAME] or [upstream...] section
 * (label): the key of keys[0..nkeys) set in base, its origin in origin[]. */
static void config_named_key(struct config_loader *ld, const struct config_key *keys, size_t nkeys,
                             struct config_origin *origin, void *base, const char *label,
                             const char *name, const char *value)
{
    struct config_origin here = {ld->lineno, NULL};
    int i = -1;
    for (size_t k = 0; k < nkeys && i < 0; k++)
        if (strcmp(keys[k].name, name) == 0)
            i = (int)k;
    if (i < 0) {
        config_err(ld, &here, "unknown key '%.*s' in [%s]", CONFIG_QUOTE_MAX, name, label);
    } else if (origin[i].line > 0) {
        config_err(ld, &here, "duplicate key '%s' in [%s] (first on line %d)", name, label,
                   origin[i].line);
    } else {
        origin[i] = here;
        config_apply(ld, &keys[i], base, label, value, &here);
    }
}

/* inih handler: one "name = value" line of the current section. */
static int config_handler(void *user, const char *section, const char *name, const char *value)
{
    struct config_loader *ld = user;
    struct config_origin here = {ld->lineno, NULL};
    (void)section;
    if (ld->sec == CONFIG_SEC_NONE) {
        config_err(ld, &here, "key '%.*s' outside any section", CONFIG_QUOTE_MAX, name);
    } else if (ld->sec == CONFIG_SEC_GLOBAL) {
        int i = config_find_key(ld->sec_name, name);
        if (i < 0) {
            config_err(ld, &here, "unknown key '%.*s' in [%s]", CONFIG_QUOTE_MAX, name,
                       ld->sec_name);
        } else if (ld->origin[i].line > 0) {
            config_err(ld, &here, "duplicate key '%s' in [%s] (first on line %d)", name,
                       ld->sec_name, ld->origin[i].line);
        } else {
            ld->origin[i] = here;
            config_apply(ld, &config_keys[i], ld->cfg, ld->sec_name, value, &here);
        }
    } else if (ld->sec == CONFIG_SEC_CLIENT) {
        struct config_client *c = &ld->cfg->clients[ld->client];
        struct buf label = BUF_INIT;
        buf_printf(&label, "client.%s", c->name);
        config_named_key(ld, config_client_keys, CONFIG_NCKEYS, ld->meta[ld->client].key, c,
                         buf_cstr(&label), name, value);
        buf_free(&label);
    } else if (ld->sec == CONFIG_SEC_UPSTREAM) {
        struct config_upstream *u = &ld->cfg->upstreams[ld->upstream];
        struct buf label = BUF_INIT;
        config_upstream_label(&label, u);
        config_named_key(ld, config_upstream_keys, CONFIG_NUKEYS, ld->umeta[ld->upstream].key, u,
                         buf_cstr(&label), name, value);
        buf_free(&label);
    }
    return 1;
}

/* Like inih: the first of chars, or of an inline ';' comment (one preceded
 * by whitespace), in s; the terminating NUL if neither occurs. */
static char *config_find_chars(char *s, const char *chars)
{
    bool was_space = false;
    while (*s && (chars == NULL || strchr(chars, *s) == NULL) && !(was_space && *s == ';')) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    return s;
}

/* Strip trailing whitespace of s in place. */
static void config_rstrip(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
}

/* Look at one line (leading whitespace already stripped) as inih will:
 * start a section for a header, report a line inih cannot parse. */
static void config_scan_line(struct config_loader *ld, char *line)
{
    struct config_origin here = {ld->lineno, NULL};
    config_rstrip(line);
    if (*line == '\0' || *line == ';' || *line == '#')
        return;
    if (*line == '[') {
        char *end = config_find_chars(line + 1, "]");
        if (*end != ']') {
            config_err(ld, &here, "section header without ']'");
            ld->sec = CONFIG_SEC_SKIP;
            return;
        }
        *end = '\0';
        char *after = end + 1;
        while (isspace((unsigned char)*after))
            after++;
        if (*after != '\0' && *after != ';') {
            config_err(ld, &here, "unexpected text after section header");
            ld->sec = CONFIG_SEC_SKIP;
            return;
        }
        char *name = line + 1;
        while (isspace((unsigned char)*name))
            name++;
        config_rstrip(name);
        config_section(ld, name);
        return;
    }
    char *eq = config_find_chars(line, "=:");
    if (*eq != '=' && *eq != ':')
        config_err(ld, &here, "expected 'key = value'");
}

/* inih reader: hand inih the next line of the file, without its leading
 * whitespace and always ending in '\n'; count lines and track sections. */
static char *config_reader(char *str, int num, void *stream)
{
    struct config_loader *ld = stream;
    if (ld->pos >= ld->len)
        return NULL;
    const char *p = ld->data + ld->pos;
    size_t rest = ld->len - ld->pos;
    const char *nl = memchr(p, '\n', rest);
    size_t n = nl ? (size_t)(nl - p) : rest;
    ld->pos += nl ? n + 1 : n;
    ld->lineno++;
    if (ld->lineno == 1 && n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) {
        p += 3;
        n -= 3;
    }
    while (n > 0 && isspace((unsigned char)*p)) {
        p++;
        n--;
    }
    struct config_origin here = {ld->lineno, NULL};
    if (memchr(p, '\0', n) != NULL) {
        config_err(ld, &here, "line contains a NUL byte");
        n = 0;
    } else if (num < 2 || n > (size_t)num - 2) {
        config_err(ld, &here, "line too long (more than %d characters)", num > 2 ? num - 2 : 0);
        n = 0;
    }
    char *line = xstrndup(p, n);
    config_scan_line(ld, line);
    free(line);
    if (num < 2) {
        if (num == 1)
            str[0] = '\0';
        return str;
    }
    memcpy(str, p, n);
    str[n] = '\n';
    str[n + 1] = '\0';
    return str;
}

/* Read path into *data (NUL-terminated); -1 with errno set on failure. */
static int config_read_file(const char *path, char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    struct buf b = BUF_INIT;
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.len + n > CONFIG_MAX_FILE) {
            buf_free(&b);
            fclose(f);
            errno = EFBIG;
            return -1;
        }
        buf_add(&b, chunk, n);
    }
    if (ferror(f)) {
        int e = errno ? errno : EIO;
        buf_free(&b);
        fclose(f);
        errno = e;
        return -1;
    }
    fclose(f);
    buf_cstr(&b);
    *data = buf_detach(&b, len);
    if (*data == NULL) {
        *data = xstrdup("");
        *len = 0;
    }
    return 0;
}

/* Parse the file at ld->path into ld->cfg. */
static void config_parse_file(struct config_loader *ld)
{
    char *data = NULL;
    size_t len = 0;
    if (config_read_file(ld->path, &data, &len) < 0) {
        buf_printf(ld->err, "%s: cannot read: %s\n", ld->path, strerror(errno));
        ld->nerr++;
        return;
    }
    ld->data = data;
    ld->len = len;
    ld->pos = 0;
    ld->lineno = 0;
    ld->sec = CONFIG_SEC_NONE;
    /* Debian's libinih sizes its line buffer at run time: make it roomy
     * enough for long allow lists, and leave it as it was afterwards. */
    bool use_stack = ini_use_stack;
    int max_line = ini_max_line, initial_alloc = ini_initial_alloc;
    ini_use_stack = false;
    ini_max_line = CONFIG_MAX_LINE;
    ini_initial_alloc = CONFIG_MAX_LINE;
    int nerr = ld->nerr;
    int rc = ini_parse_stream(config_reader, ld, config_handler, ld);
    ini_use_stack = use_stack;
    ini_max_line = max_line;
    ini_initial_alloc = initial_alloc;
    if (rc == -2) {
        buf_printf(ld->err, "%s: cannot parse: out of memory\n", ld->path);
        ld->nerr++;
    } else if (rc != 0 && ld->nerr == nerr) {
        struct config_origin at = {rc > 0 ? rc : 0, NULL};
        config_err(ld, &at, "syntax error");
    }
    free(data);
    ld->data = NULL;
}

/* The value of variable name in env (the first entry wins), or NULL. */
static const char *config_env_get(char *const *env, const char *name)
{
    size_t n = strlen(name);
    for (char *const *e = env; e && *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

/* The entry of env for variable name ("NAME=value"), or NULL. */
static const char *config_env_entry(char *const *env, const char *name)
{
    const char *v = config_env_get(env, name);
    return v ? v - strlen(name) - 1 : NULL;
}

/* True when the n bytes at s equal "<SECTION>_<KEY>" of key k, ignoring case. */
static bool config_env_matches(const char *s, size_t n, const char *sec, const char *key)
{
    size_t ls = strlen(sec), lk = strlen(key);
    return n == ls + 1 + lk && strncasecmp(s, sec, ls) == 0 && s[ls] == '_' &&
           strncasecmp(s + ls + 1, key, lk) == 0;
}

/* Upper-cased form of a client name char in a variable name ('-' as '_'). */
static char config_env_char(char c)
{
    return c == '-' ? '_' : (char)toupper((unsigned char)c);
}

/* If s (n bytes) is "<NAME>_<KEY>" for the section named name, the index of
 * KEY in keys[0..nkeys); else -1. */
static int config_env_named_key(const char *s, size_t n, const char *name,
                                const struct config_key *keys, size_t nkeys)
{
    size_t ln = strlen(name);
    if (n <= ln + 1 || s[ln] != '_')
        return -1;
    for (size_t i = 0; i < ln; i++)
        if (config_env_char(s[i]) != config_env_char(name[i]))
            return -1;
    for (size_t i = 0; i < nkeys; i++)
        if (util_ieq(s + ln + 1, n - ln - 1, keys[i].name))
            return (int)i;
    return -1;
}

/* Apply SESGATE_UPSTREAM_<KEY> ([upstream]) or SESGATE_UPSTREAM_<NAME>_<KEY>
 * (s, n: what follows "UPSTREAM_"). false when it names no key. */
static bool config_env_upstream(struct config_loader *ld, const char *s, size_t n, const char *val,
                                const struct config_origin *here)
{
    struct config *cfg = ld->cfg;
    size_t found = 0, first = 0;
    int fkey = -1;
    for (size_t i = 0; i < CONFIG_NUKEYS; i++) {
        if (util_ieq(s, n, config_upstream_keys[i].name)) {
            found = 1;
            fkey = (int)i;
        }
    }
    for (size_t u = 1; fkey < 0 && u < cfg->nupstreams; u++) {
        int k =
            config_env_named_key(s, n, cfg->upstreams[u].name, config_upstream_keys, CONFIG_NUKEYS);
        if (k < 0)
            continue;
        if (found++ == 0) {
            first = u;
            fkey = k;
        } else {
            config_err(ld, here, "ambiguous: matches [upstream.%s] and [upstream.%s]",
                       cfg->upstreams[first].name, cfg->upstreams[u].name);
        }
    }
    if (found == 1) {
        struct buf label = BUF_INIT;
        config_upstream_label(&label, &cfg->upstreams[first]);
        config_umeta(ld, first)->key[fkey] = *here;
        config_apply(ld, &config_upstream_keys[fkey], &cfg->upstreams[first], buf_cstr(&label), val,
                     here);
        buf_free(&label);
    }
    return found > 0;
}

/* Apply one SESGATE_* variable, entry e ("NAME=value"). */
static void config_env_one(struct config_loader *ld, const char *e)
{
    struct config *cfg = ld->cfg;
    struct config_origin here = {0, e};
    const char *eq = strchr(e, '=');
    const char *name = e + 8;
    size_t n = (size_t)(eq - name);
    const char *value = eq + 1;
    while (isspace((unsigned char)*value))
        value++;
    char *val = xstrdup(value);
    config_rstrip(val);

    for (size_t i = 0; i < CONFIG_NKEYS; i++) {
        if (config_env_matches(name, n, config_keys[i].section, config_keys[i].name)) {
            ld->origin[i] = here;
            config_apply(ld, &config_keys[i], cfg, config_keys[i].section, val, &here);
            free(val);
            return;
        }
    }
    if (n > 9 && strncasecmp(name, "UPSTREAM_", 9) == 0 &&
        config_env_upstream(ld, name + 9, n - 9, val, &here)) {
        free(val);
        return;
    }
    if (n > 7 && strncasecmp(name, "CLIENT_", 7) == 0) {
        size_t found = 0, first = 0;
        int fkey = -1;
        for (size_t c = 0; c < cfg->nclients; c++) {
            int k = config_env_named_key(name + 7, n - 7, cfg->clients[c].name, config_client_keys,
                                         CONFIG_NCKEYS);
            if (k < 0)
                continue;
            if (found++ == 0) {
                first = c;
                fkey = k;
            } else {
                config_err(ld, &here, "ambiguous: matches [client.%s] and [client.%s]",
                           cfg->clients[first].name, cfg->clients[c].name);
            }
        }
        if (found == 1) {
            struct buf label = BUF_INIT;
            buf_printf(&label, "client.%s", cfg->clients[first].name);
            ld->meta[first].key[fkey] = here;
            config_apply(ld, &config_client_keys[fkey], &cfg->clients[first], buf_cstr(&label), val,
                         &here);
            buf_free(&label);
        }
        if (found > 0) {
            free(val);
            return;
        }
    }
    config_err(ld, &here, "unknown setting");
    free(val);
}

/* Apply the SESGATE_* variables of env (the first of duplicates wins). */
static void config_env_sesgate(struct config_loader *ld, char *const *env)
{
    for (char *const *e = env; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (eq == NULL || strncmp(*e, "SESGATE_", 8) != 0)
            continue;
        size_t n = (size_t)(eq - *e);
        if (n == 14 && strncmp(*e, "SESGATE_CONFIG", 14) == 0)
            continue;
        bool dup = false;
        for (char *const *d = env; d < e && !dup; d++)
            dup = strncmp(*d, *e, n + 1) == 0;
        if (!dup)
            config_env_one(ld, *e);
    }
}

/* True when key k of upstream u was set by the file or the environment. */
static bool config_upstream_set(const struct config_loader *ld, size_t u, int k)
{
    return ld->umeta[u].key[k].line > 0 || ld->umeta[u].key[k].env != NULL;
}

/* Apply AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN to
 * [upstream] and, to every upstream without a configured region,
 * AWS_REGION / AWS_DEFAULT_REGION. */
static void config_env_aws(struct config_loader *ld, char *const *env)
{
    struct config *cfg = ld->cfg;
    const char *id = config_env_get(env, "AWS_ACCESS_KEY_ID");
    if (id != NULL && *id != '\0') {
        const char *secret = config_env_get(env, "AWS_SECRET_ACCESS_KEY");
        const char *token = config_env_get(env, "AWS_SESSION_TOKEN");
        if (secret == NULL || *secret == '\0') {
            struct config_origin o = {0, "AWS_SECRET_ACCESS_KEY"};
            config_err(ld, &o, "missing");
        } else {
            const int keys[3] = {CONFIG_UK_ID, CONFIG_UK_SECRET, CONFIG_UK_TOKEN};
            const char *vars[3] = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                   "AWS_SESSION_TOKEN"};
            const char *vals[3] = {id, secret, token ? token : ""};
            for (size_t i = 0; i < 3; i++) {
                struct config_origin o = {0, config_env_entry(env, vars[i])};
                if (o.env == NULL)
                    o.env = vars[i];
                ld->umeta[0].key[keys[i]] = o;
                config_apply(ld, &config_upstream_keys[keys[i]], &cfg->upstreams[0], "upstream",
                             vals[i], &o);
            }
            cfg->upstreams[0].from_env = true;
        }
    }
    const struct config_key *r = &config_upstream_keys[CONFIG_UK_REGION];
    for (size_t u = 0; u < cfg->nupstreams; u++) {
        struct config_upstream *up = &cfg->upstreams[u];
        if (config_upstream_set(ld, u, CONFIG_UK_REGION) && *up->region)
            continue;
        const char *vars[2] = {"AWS_REGION", "AWS_DEFAULT_REGION"};
        for (size_t i = 0; i < 2; i++) {
            const char *v = config_env_get(env, vars[i]);
            if (v != NULL && *v != '\0') {
                struct config_origin o = {0, config_env_entry(env, vars[i])};
                config_apply(ld, r, up, "upstream", v, &o);
                break;
            }
        }
        if (*up->region == '\0')
            config_set_str(up, r->off, r->def);
    }
}

/* True when u or env names a credential source: u's keys, role or profile,
 * or a platform's (EKS web identity, ECS or EKS container). Not AWS_PROFILE
 * alone, which a shell set up for the AWS CLI often carries (the quick
 * start's profile is sesgate's own client key), nor the instance's role,
 * which cannot be seen without asking the metadata service. */
static bool config_has_credentials(const struct config_upstream *u, char *const *env)
{
    static const char *const vars[] = {"AWS_WEB_IDENTITY_TOKEN_FILE",
                                       "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                                       "AWS_CONTAINER_CREDENTIALS_FULL_URI"};
    if (*u->access_key_id || *u->secret_access_key || *u->role_arn || *u->profile)
        return true;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = config_env_get(env, vars[i]);
        if (v != NULL && *v != '\0')
            return true;
    }
    return false;
}

/* Each upstream's endpoint when none was given: [upstream] is Amazon SES in
 * its region when a credential source is configured, else the built-in
 * sandbox; a named upstream is always Amazon SES in its region. Rate and
 * headroom not set in an upstream's section come from [send]. */
static void config_resolve_upstreams(struct config_loader *ld, char *const *env)
{
    struct config *cfg = ld->cfg;
    for (size_t u = 0; u < cfg->nupstreams; u++) {
        struct config_upstream *up = &cfg->upstreams[u];
        if (*up->endpoint == '\0' || !config_upstream_set(ld, u, CONFIG_UK_ENDPOINT)) {
            if (u == 0 && !config_has_credentials(up, env)) {
                free(up->endpoint);
                up->endpoint = xstrdup("sandbox");
            } else {
                config_derive_endpoint(up);
            }
        } else if (u > 0 && strcmp(up->endpoint, "sandbox") == 0) {
            config_err(ld, &ld->umeta[u].key[CONFIG_UK_ENDPOINT],
                       "[upstream.%s] endpoint: only [upstream] can be the sandbox", up->name);
        }
        if (!config_upstream_set(ld, u, CONFIG_UK_RATE)) {
            up->rate_mode = cfg->rate_mode;
            up->rate = cfg->rate;
        }
        if (!config_upstream_set(ld, u, CONFIG_UK_HEADROOM))
            up->headroom = cfg->headroom;
    }
}

/* Where a client's setting came from, for a cross-check message: the
 * variable when the environment set it, else the client's header line. */
static struct config_origin config_client_at(const struct config_client_meta *m, int key)
{
    if (m->key[key].env != NULL)
        return m->key[key];
    struct config_origin o = {m->line, NULL};
    return o;
}

/* True when s is 16 to 128 characters of A-Z and 0-9. */
static bool config_valid_key_id(const char *s)
{
    size_t n = strlen(s);
    if (n < 16 || n > 128)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s) && !(*s >= 'A' && *s <= 'Z'))
            return false;
    return true;
}

/* Check [feedback]: the path is its own (never an SES route), every topic
 * is an SNS topic ARN or "*", test_trust is "CA-FILE HOST[:PORT]". */
static void config_check_feedback(struct config_loader *ld)
{
    struct config *cfg = ld->cfg;
    const char *p = cfg->feedback_path;
    if (p[0] != '/' || p[1] == '\0' || strncmp(p, "/v2/", 4) == 0 || strcmp(p, "/v2") == 0 ||
        strpbrk(p, "?# \t") != NULL)
        config_err(ld, &ld->origin[config_find_key("feedback", "path")],
                   "[feedback] path '%.*s' must be an absolute path other than / and /v2/...",
                   CONFIG_QUOTE_MAX, p);
    struct buf t = BUF_INIT;
    for (const char *s = cfg->feedback_topics; *s;) {
        size_t n = strcspn(s, ",");
        buf_reset(&t);
        buf_add(&t, s, n);
        char *a = t.data;
        while (*a == ' ' || *a == '\t')
            a++;
        char *e = a + strlen(a);
        while (e > a && (e[-1] == ' ' || e[-1] == '\t'))
            *--e = '\0';
        if (strcmp(a, "*") != 0 && !sns_topic_arn_valid(a))
            config_err(ld, &ld->origin[config_find_key("feedback", "topics")],
                       "[feedback] topics: '%.*s' is not an SNS topic ARN", CONFIG_QUOTE_MAX, a);
        s += n;
        if (*s == ',')
            s++;
    }
    buf_free(&t);
    const char *tt = cfg->feedback_test_trust;
    if (*tt && (strchr(tt, ' ') == NULL || tt[0] == ' ' || strchr(tt, ' ')[1] == '\0' ||
                strchr(strchr(tt, ' ') + 1, ' ') != NULL))
        config_err(ld, &ld->origin[config_find_key("feedback", "test_trust")],
                   "[feedback] test_trust must be 'CA-FILE HOST[:PORT]'");
}

/* Check [redis]: sentinels is a list of host:port (an IPv6 host in
 * brackets) and comes with sentinel_master; wait_replicas needs a Redis of
 * one's own (the managed one has no replicas). */
static void config_check_redis(struct config_loader *ld)
{
    struct config *cfg = ld->cfg;
    const struct config_origin *os = &ld->origin[config_find_key("redis", "sentinels")];
    struct buf t = BUF_INIT;
    for (const char *s = cfg->redis_sentinels; *s;) {
        size_t n = strcspn(s, ",");
        buf_reset(&t);
        buf_add(&t, s, n);
        char *a = t.data ? t.data : (char *)"";
        while (*a == ' ' || *a == '\t')
            a++;
        char *e = a + strlen(a);
        while (e > a && (e[-1] == ' ' || e[-1] == '\t'))
            *--e = '\0';
        char *colon = strrchr(a, ':');
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        bool v6 = a[0] == '[';
        if (colon == NULL || colon == a || end == colon + 1 || *end != '\0' || port < 1 ||
            port > 65535 || (v6 && colon[-1] != ']') ||
            (!v6 && memchr(a, ':', (size_t)(colon - a)) != NULL))
            config_err(ld, os, "[redis] sentinels: '%.*s' is not host:port", CONFIG_QUOTE_MAX, a);
        s += n;
        if (*s == ',')
            s++;
    }
    buf_free(&t);
    if (*cfg->redis_sentinels && !*cfg->redis_sentinel_master)
        config_err(ld, os, "[redis] sentinels is set but sentinel_master is not");
    if (!*cfg->redis_sentinels && *cfg->redis_sentinel_master)
        config_err(ld, &ld->origin[config_find_key("redis", "sentinel_master")],
                   "[redis] sentinel_master is set but sentinels is not");
    if (*cfg->redis_sentinels && strncmp(cfg->redis_url, "rediss://", 9) == 0)
        config_err(ld, &ld->origin[config_find_key("redis", "url")],
                   "[redis] url: TLS (rediss://) with sentinels is not supported; use redis:// "
                   "(docs/DEPLOYMENT.md)");
    else if (*cfg->redis_sentinels && *cfg->redis_url &&
             strncmp(cfg->redis_url, "redis://", 8) != 0)
        config_err(ld, &ld->origin[config_find_key("redis", "url")],
                   "[redis] url: with sentinels, only a redis:// URL (its user, password and "
                   "database; the host comes from the Sentinels)");
    if (*cfg->redis_sentinels && *cfg->redis_tls_ca_file)
        config_err(ld, &ld->origin[config_find_key("redis", "tls_ca_file")],
                   "[redis] tls_ca_file: TLS with sentinels is not supported");
    if (cfg->redis_wait_replicas > 0 && !*cfg->redis_url && !*cfg->redis_sentinels)
        config_err(ld, &ld->origin[config_find_key("redis", "wait_replicas")],
                   "[redis] wait_replicas needs a Redis with replicas ([redis] url or "
                   "sentinels); the managed redis-server has none");
}

/* Check what no single key can: pairs of keys and the client table. */
static void config_cross_check(struct config_loader *ld)
{
    struct config *cfg = ld->cfg;
    int cert = config_find_key("server", "tls_cert"), key = config_find_key("server", "tls_key");
    if (*cfg->tls_cert && !*cfg->tls_key)
        config_err(ld, &ld->origin[cert], "[server] tls_cert is set but tls_key is not");
    if (*cfg->tls_key && !*cfg->tls_cert)
        config_err(ld, &ld->origin[key], "[server] tls_key is set but tls_cert is not");

    for (size_t u = 0; u < cfg->nupstreams; u++) {
        const struct config_upstream *up = &cfg->upstreams[u];
        const struct config_upstream_meta *m = &ld->umeta[u];
        struct buf label = BUF_INIT;
        config_upstream_label(&label, up);
        if (strcmp(up->endpoint, "sandbox") != 0 && !up->from_env) {
            if (*up->access_key_id && !*up->secret_access_key)
                config_err(ld, &m->key[CONFIG_UK_ID],
                           "[%s] access_key_id is set but "
                           "secret_access_key is not",
                           buf_cstr(&label));
            if (*up->secret_access_key && !*up->access_key_id)
                config_err(ld, &m->key[CONFIG_UK_SECRET],
                           "[%s] secret_access_key is set but "
                           "access_key_id is not",
                           buf_cstr(&label));
        }
        if (*up->role_arn && strncmp(up->role_arn, "arn:", 4) != 0)
            config_err(ld, &m->key[CONFIG_UK_ROLE], "[%s] role_arn '%.*s' is not an ARN",
                       buf_cstr(&label), CONFIG_QUOTE_MAX, up->role_arn);
        buf_free(&label);
    }

    config_check_feedback(ld);
    config_check_redis(ld);
    for (size_t i = 0; i < cfg->nclients; i++) {
        const struct config_client *c = &cfg->clients[i];
        const struct config_client_meta *m = &ld->meta[i];
        if (*c->events_url && strncmp(c->events_url, "http://", 7) != 0 &&
            strncmp(c->events_url, "https://", 8) != 0) {
            struct config_origin o = {m->line, NULL};
            config_err(ld, &o, "[client.%s] events_url must be an http:// or https:// URL",
                       c->name);
        }
        if (*c->upstream && config_upstream_by_name(cfg, c->upstream) == NULL) {
            struct config_origin o = {m->line, NULL};
            config_err(ld, &o, "[client.%s] upstream '%.*s' is not an upstream section", c->name,
                       CONFIG_QUOTE_MAX, c->upstream);
        }
        struct config_origin oid = config_client_at(m, CONFIG_CK_ID);
        struct config_origin osec = config_client_at(m, CONFIG_CK_SECRET);
        if (*c->access_key_id == '\0') {
            config_err(ld, &oid, "[client.%s] missing access_key_id", c->name);
        } else if (!config_valid_key_id(c->access_key_id)) {
            config_err(ld, &oid,
                       "[client.%s] access_key_id '%.*s' is not 16 to 128 characters A-Z, 0-9",
                       c->name, CONFIG_QUOTE_MAX, c->access_key_id);
        } else {
            for (size_t j = 0; j < i; j++) {
                if (strcmp(cfg->clients[j].access_key_id, c->access_key_id) == 0) {
                    config_err(ld, &oid,
                               "[client.%s] access_key_id %s is also used by [client.%s] "
                               "(line %d)",
                               c->name, c->access_key_id, cfg->clients[j].name, ld->meta[j].line);
                    break;
                }
            }
        }
        if (*c->secret_access_key == '\0')
            config_err(ld, &osec, "[client.%s] missing secret_access_key", c->name);
        else if (strlen(c->secret_access_key) < 16)
            config_err(ld, &osec, "[client.%s] secret_access_key is shorter than 16 characters",
                       c->name);
    }
}

/* Defaults, then the file, then the environment, then the cross-checks. */
int config_load(struct config *cfg, const char *path, char *const *env, struct buf *err)
{
    config_defaults(cfg);
    struct config_loader ld;
    memset(&ld, 0, sizeof ld);
    ld.cfg = cfg;
    ld.err = err;
    ld.path = path ? path : "";
    memset(config_umeta(&ld, 0), 0, sizeof *ld.umeta);
    if (path != NULL && *path != '\0') {
        free(cfg->path);
        cfg->path = xstrdup(path);
        config_parse_file(&ld);
    }
    config_env_sesgate(&ld, env);
    config_env_aws(&ld, env);
    config_resolve_upstreams(&ld, env);
    config_cross_check(&ld);
    free(ld.meta);
    free(ld.umeta);
    return ld.nerr ? -1 : 0;
}

/* Append a secret masked: its first 4 characters then "****" ("" stays
 * "", fewer than 8 characters give only "****"). */
static void config_print_secret(struct buf *out, const char *s)
{
    size_t n = strlen(s);
    if (n == 0)
        return;
    if (n >= 8)
        buf_add(out, s, 4);
    buf_adds(out, "****");
}

/* Append a number in the shortest form that reads back as the same value. */
static void config_print_double(struct buf *out, double v)
{
    char tmp[64];
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(tmp, sizeof tmp, "%.0f", v);
    } else {
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(tmp, sizeof tmp, "%.*g", prec, v);
            if (strtod(tmp, NULL) == v)
                break;
        }
    }
    buf_adds(out, tmp);
}

/* Append a duration in ms with the largest unit that divides it. */
static void config_print_duration(struct buf *out, int64_t ms)
{
    static const struct {
        int64_t ms;
        const char *unit;
    } units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (ms != 0 && ms % units[i].ms == 0) {
            buf_printf(out, "%" PRId64 "%s", ms / units[i].ms, units[i].unit);
            return;
        }
    }
    if (ms == 0)
        buf_adds(out, "0s");
    else
        buf_printf(out, "%" PRId64 "ms", ms);
}

/* Append a size in bytes with the largest binary unit that divides it. */
static void config_print_size(struct buf *out, uint64_t n)
{
    static const char units[] = "gmk";
    for (int i = 0; i < 3; i++) {
        uint64_t u = (uint64_t)1 << (10 * (3 - i));
        if (n != 0 && n % u == 0) {
            buf_printf(out, "%" PRIu64 "%c", n / u, units[i]);
            return;
        }
    }
    buf_printf(out, "%" PRIu64, n);
}

/* Append "name = value" for key k of base (value omitted when empty). */
static void config_print_key(struct buf *out, const struct config_key *k, const void *base)
{
    struct buf v = BUF_INIT;
    switch (k->kind) {
    case CONFIG_STR:
    case CONFIG_ADDR:
    case CONFIG_ENDPOINT:
    case CONFIG_REGION:
    case CONFIG_PREFIX: {
        const char *s = *(char *const *)config_cfield(base, k->off);
        if (k->flags & CONFIG_SECRET)
            config_print_secret(&v, s ? s : "");
        else
            buf_adds(&v, s ? s : "");
        break;
    }
    case CONFIG_SIZE:
        config_print_size(&v, *(const uint64_t *)config_cfield(base, k->off));
        break;
    case CONFIG_DURATION:
        config_print_duration(&v, *(const int64_t *)config_cfield(base, k->off));
        break;
    case CONFIG_INT:
        buf_printf(&v, "%" PRId64, *(const int64_t *)config_cfield(base, k->off));
        break;
    case CONFIG_OPT_QUOTA: {
        int64_t n = *(const int64_t *)config_cfield(base, k->off);
        if (n != 0)
            buf_printf(&v, "%" PRId64, n);
        break;
    }
    case CONFIG_DOUBLE:
        config_print_double(&v, *(const double *)config_cfield(base, k->off));
        break;
    case CONFIG_OPT_RATE: {
        double d = *(const double *)config_cfield(base, k->off);
        if (d != 0)
            config_print_double(&v, d);
        break;
    }
    case CONFIG_RATE:
        if (*(const enum config_rate_mode *)config_cfield(base, k->off) == CONFIG_RATE_AUTO)
            buf_adds(&v, "auto");
        else if (*(const enum config_rate_mode *)config_cfield(base, k->off) == CONFIG_RATE_OFF)
            buf_adds(&v, "off");
        else
            config_print_double(&v, *(const double *)config_cfield(base, k->off2));
        break;
    case CONFIG_BOOL:
        buf_adds(&v, *(const bool *)config_cfield(base, k->off) ? "on" : "off");
        break;
    case CONFIG_OPT_BOOL: {
        int b = *(const int *)config_cfield(base, k->off);
        if (b >= 0)
            buf_adds(&v, b ? "on" : "off");
        break;
    }
    case CONFIG_CHOICE:
        buf_adds(&v, *(const bool *)config_cfield(base, k->off) ? k->yes : k->no);
        break;
    case CONFIG_LIST_ACTIONS:
    case CONFIG_LIST_FROM: {
        char *const *list = *(char **const *)config_cfield(base, k->off);
        size_t n = *(const size_t *)config_cfield(base, k->off2);
        for (size_t i = 0; i < n; i++)
            buf_printf(&v, "%s%s", i ? ", " : "", list[i]);
        break;
    }
    }
    if (v.len > 0)
        buf_printf(out, "%s = %s\n", k->name, buf_cstr(&v));
    else
        buf_printf(out, "%s =\n", k->name);
    buf_free(&v);
}

/* Print every section and key in documented order, secrets masked. */
void config_print(const struct config *cfg, struct buf *out)
{
    for (size_t s = 0; s < CONFIG_NSECTIONS; s++) {
        buf_printf(out, "%s[%s]\n", s ? "\n" : "", config_sections[s]);
        if (strcmp(config_sections[s], "upstream") == 0) {
            if (cfg->upstreams[0].from_env)
                buf_adds(out, "; credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and "
                              "AWS_SESSION_TOKEN\n");
            for (size_t i = 0; i < CONFIG_NUKEYS; i++)
                config_print_key(out, &config_upstream_keys[i], &cfg->upstreams[0]);
        }
        for (size_t i = 0; i < CONFIG_NKEYS; i++)
            if (strcmp(config_keys[i].section, config_sections[s]) == 0)
                config_print_key(out, &config_keys[i], cfg);
    }
    for (size_t u = 1; u < cfg->nupstreams; u++) {
        buf_printf(out, "\n[upstream.%s]\n", cfg->upstreams[u].name);
        for (size_t i = 0; i < CONFIG_NUKEYS; i++)
            config_print_key(out, &config_upstream_keys[i], &cfg->upstreams[u]);
    }
    for (size_t c = 0; c < cfg->nclients; c++) {
        buf_printf(out, "\n[client.%s]\n", cfg->clients[c].name);
        for (size_t i = 0; i < CONFIG_NCKEYS; i++)
            config_print_key(out, &config_client_keys[i], &cfg->clients[c]);
    }
}

/* Linear search of the client table by exact key id. */
const struct config_client *config_client_by_key(const struct config *cfg, const char *id,
                                                 size_t len)
{
    for (size_t i = 0; i < cfg->nclients; i++) {
        const char *k = cfg->clients[i].access_key_id;
        if (k != NULL && strlen(k) == len && memcmp(k, id, len) == 0)
            return &cfg->clients[i];
    }
    return NULL;
}

/* Linear search of the client table by name. */
const struct config_client *config_client_by_name(const struct config *cfg, const char *name)
{
    for (size_t i = 0; name && i < cfg->nclients; i++)
        if (strcmp(cfg->clients[i].name, name) == 0)
            return &cfg->clients[i];
    return NULL;
}

/* Linear search of the upstreams by name. */
const struct config_upstream *config_upstream_by_name(const struct config *cfg, const char *name)
{
    for (size_t i = 0; name && i < cfg->nupstreams; i++)
        if (strcmp(cfg->upstreams[i].name, name) == 0)
            return &cfg->upstreams[i];
    return NULL;
}

bool config_feedback_enabled(const struct config *cfg)
{
    return *cfg->feedback_topics != '\0' || (cfg->sandbox_started && cfg->sandbox_events);
}

/* Free every string, list and client; cfg is left zeroed. */
void config_free(struct config *cfg)
{
    for (size_t i = 0; i < CONFIG_NKEYS; i++) {
        const struct config_key *k = &config_keys[i];
        if (k->kind == CONFIG_STR || k->kind == CONFIG_ADDR || k->kind == CONFIG_ENDPOINT ||
            k->kind == CONFIG_REGION || k->kind == CONFIG_PREFIX) {
            char **p = config_field(cfg, k->off);
            free(*p);
        }
    }
    for (size_t i = 0; i < cfg->nclients; i++)
        config_client_free(&cfg->clients[i]);
    free(cfg->clients);
    for (size_t i = 0; i < cfg->nupstreams; i++)
        config_upstream_free(&cfg->upstreams[i]);
    free(cfg->upstreams);
    free(cfg->path);
    memset(cfg, 0, sizeof *cfg);
}
