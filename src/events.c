/* events: one verified SES event applied through events.lua (see events.h). */
#include "events.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "rscript.h"

#define EVENTS_FIXED_ARGS 14 /* events.lua's ARGV before the recipients */
#define EVENTS_NKEYS      6  /* the sixth, the sync stream, only with sync_ses */

struct events {
    struct rscript *scripts;
    const struct config *cfg;
};

/* One events.lua call in flight. */
struct events_call {
    events_cb cb;
    void *arg;
    enum sesevent_kind kind;
};

struct events *events_new(struct rscript *s, const struct config *cfg)
{
    struct events *e = xcalloc(1, sizeof *e);
    e->scripts = s;
    e->cfg = cfg;
    return e;
}

void events_free(struct events *e)
{
    free(e);
}

/* What the suppression list does with ev's recipients under cfg: "BOUNCE",
 * "COMPLAINT", "TRANSIENT" (count a transient bounce) or "". */
static const char *events_suppress(const struct config *cfg, const struct sesevent *ev)
{
    if (ev->kind == SESEVENT_BOUNCE && ev->bounce == SESEVENT_BOUNCE_PERMANENT &&
        cfg->suppress_bounce)
        return "BOUNCE";
    if (ev->kind == SESEVENT_COMPLAINT && cfg->suppress_complaint)
        return "COMPLAINT";
    if (ev->kind == SESEVENT_BOUNCE && ev->bounce == SESEVENT_BOUNCE_TRANSIENT &&
        cfg->suppress_transient_count > 0)
        return "TRANSIENT";
    return "";
}

/* Append s lowercased (ASCII) as a new string to b; returns its offset. */
static size_t events_lower(struct buf *b, const char *s)
{
    size_t at = b->len;
    for (; *s; s++) {
        char c = (char)tolower((unsigned char)*s);
        buf_add(b, &c, 1);
    }
    buf_add(b, "", 1);
    return at;
}

static void events_done(const redisReply *reply, const char *err, void *arg)
{
    struct events_call *c = arg;
    int rc = -1;
    char client[256] = "";
    if (err != NULL) {
        log_event(LOG_WARN, "events_apply_failed", "error", err, NULL);
    } else if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 &&
               reply->element[0]->type == REDIS_REPLY_INTEGER) {
        rc = reply->element[0]->integer == 1 ? 1 : 0;
        if (rc == 0 && reply->elements >= 2 && reply->element[1]->type == REDIS_REPLY_STRING)
            snprintf(client, sizeof client, "%.*s", (int)reply->element[1]->len,
                     reply->element[1]->str);
    } else {
        log_event(LOG_WARN, "events_apply_failed", "error", "unexpected reply", NULL);
    }
    if (rc == 0)
        metrics_event(sesevent_kind_name(c->kind), client[0] ? client : "-");
    c->cb(c->arg, rc, rc == 0 && client[0] ? client : NULL);
    free(c);
}

void events_apply(struct events *e, const struct sns_msg *m, const struct sesevent *ev,
                  const char *body, size_t len, const char *sub_arn, events_cb cb, void *arg)
{
    const struct config *cfg = e->cfg;
    /* The recipients the event's state applies to: those it names, or
     * every destination for a whole-message event (Reject). */
    char **addrs = NULL;
    size_t n = 0;
    if (ev->scope == SESEVENT_SCOPE_RECIPIENTS) {
        n = ev->nrecipients;
        addrs = xcalloc(n ? n : 1, sizeof *addrs);
        for (size_t i = 0; i < n; i++)
            addrs[i] = ev->recipients[i].address;
    } else if (ev->scope == SESEVENT_SCOPE_MESSAGE) {
        n = ev->ndestination;
        addrs = xcalloc(n ? n : 1, sizeof *addrs);
        for (size_t i = 0; i < n; i++)
            addrs[i] = ev->destination[i];
    }
    const char *state = sesevent_state(ev);
    if (state[0] == '\0')
        n = 0; /* no state to set, nothing to add to the list */

    int64_t now = clock_wall_ms(), at = now;
    if (sesevent_time_ms(ev->timestamp, &at) < 0)
        at = now;
    struct buf relay = BUF_INIT, strs = BUF_INIT;
    for (size_t i = 0; i < cfg->nclients; i++)
        if (cfg->clients[i].events_url[0] != '\0')
            buf_printf(&relay, "%s\n", cfg->clients[i].name);
    char snow[24], swin[24], sat[24], stc[24], stw[24], sn[24];
    snprintf(snow, sizeof snow, "%lld", (long long)now);
    snprintf(swin, sizeof swin, "%lld", (long long)cfg->feedback_replay_ms);
    snprintf(sat, sizeof sat, "%lld", (long long)at);
    snprintf(stc, sizeof stc, "%lld", (long long)cfg->suppress_transient_count);
    snprintf(stw, sizeof stw, "%lld", (long long)cfg->suppress_transient_window_ms);
    snprintf(sn, sizeof sn, "%zu", n);

    /* Addresses (lowercased) and details: offsets into strs, then pointers
     * once strs stopped growing. */
    size_t *off = xcalloc(2 * n + 1, sizeof *off);
    for (size_t i = 0; i < n; i++) {
        off[2 * i] = events_lower(&strs, addrs[i]);
        off[2 * i + 1] = strs.len;
        sesevent_detail(ev, i, &strs);
        buf_add(&strs, "", 1);
    }
    char *kreplay = rscript_key(e->scripts, "sns:", m->message_id);
    char *kindex = rscript_key(e->scripts, "m:", ev->message_id);
    char *ksup = rscript_key(e->scripts, "sup", NULL);
    char *krl = rscript_key(e->scripts, "relay", NULL);
    char *kpfx = rscript_key(e->scripts, "", NULL);
    char *kss = rscript_key(e->scripts, "ss", NULL);
    int nkeys = cfg->suppress_sync_ses ? EVENTS_NKEYS : EVENTS_NKEYS - 1;
    size_t argc = (size_t)nkeys + EVENTS_FIXED_ARGS + 2 * n;
    const char **argv = xcalloc(argc, sizeof *argv);
    size_t *lens = xcalloc(argc, sizeof *lens);
    const char *fixed[EVENTS_NKEYS + EVENTS_FIXED_ARGS] = {kreplay,
                                                           kindex,
                                                           ksup,
                                                           krl,
                                                           kpfx,
                                                           kss,
                                                           snow,
                                                           swin,
                                                           state,
                                                           sat,
                                                           events_suppress(cfg, ev),
                                                           stc,
                                                           stw,
                                                           buf_cstr(&relay),
                                                           m->topic_arn,
                                                           "Notification",
                                                           m->message_id,
                                                           sub_arn ? sub_arn : "",
                                                           body,
                                                           sn};
    size_t na = 0;
    for (size_t i = 0; i < EVENTS_NKEYS + EVENTS_FIXED_ARGS; i++) {
        if (fixed[i] == kss && nkeys < EVENTS_NKEYS)
            continue;
        argv[na] = fixed[i];
        lens[na++] = fixed[i] == body ? len : strlen(fixed[i]);
    }
    for (size_t i = 0; i < 2 * n; i++) {
        argv[na] = strs.data + off[i];
        lens[na++] = strlen(strs.data + off[i]);
    }
    struct events_call *c = xcalloc(1, sizeof *c);
    c->cb = cb;
    c->arg = arg;
    c->kind = ev->kind;
    rscript_eval(e->scripts, RSCRIPT_EVENTS, nkeys, (int)argc, argv, lens, events_done, c);
    free(argv);
    free(lens);
    free(off);
    free(addrs);
    free(kreplay);
    free(kindex);
    free(ksup);
    free(krl);
    free(kpfx);
    free(kss);
    buf_free(&relay);
    buf_free(&strs);
}
