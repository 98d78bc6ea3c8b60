/* ops: the operator client (sesgate status, batch, dlq, relay). A synchronous
 * Redis client of the daemon's data: it runs the same scripts (src/lua) and
 * prints what they answer; it never starts the daemon or its Redis. */
#include "ops.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "buf.h"
#include "bulk.h"
#include "clock.h"
#include "limiter.h"
#include "qview.h"
#include "redis.h"
#include "reply.h"
#include "rscript.h"

/* The most held units one control.lua call moves or cancels: a step of a
 * million-recipient resume or cancel stays near 50 ms of Redis's time. */
#define OPS_CONTROL_STEP 5000

/* Public: connect to the daemon's Redis: [redis] url (plain or TLS), the
 * master the [redis] sentinels name, or the managed server's socket under
 * data_dir (never started from here). NULL: reported. */
redisContext *ops_redis(const struct config *cfg)
{
    char err[1024];
    /* Connecting takes at most 3 s; a command may take longer (the whole
     * status of a million-recipient batch is a large reply). */
    const struct timeval slow = {120, 0};
    if (cfg->redis_url[0] || cfg->redis_sentinels[0]) {
        redisContext *c =
            cfg->redis_sentinels[0]
                ? redis_connect_sync_sentinel(cfg->redis_url, cfg->redis_tls_ca_file,
                                              cfg->redis_sentinels, cfg->redis_sentinel_master,
                                              cfg->redis_sentinel_password, 3000, err, sizeof err)
                : redis_connect_sync(cfg->redis_url, cfg->redis_tls_ca_file, 3000, err, sizeof err);
        if (c == NULL)
            fprintf(stderr, "sesgate: %s\n", err);
        else
            redisSetTimeout(c, slow);
        return c;
    }
    struct buf sock = BUF_INIT;
    if (cfg->data_dir[0] != '/') {
        char cwd[4096];
        if (getcwd(cwd, sizeof cwd) != NULL)
            buf_printf(&sock, "%s/", cwd);
    }
    buf_printf(&sock, "%s/redis/redis.sock", cfg->data_dir);
    redisContext *c = redis_connect_sync(buf_cstr(&sock), NULL, 3000, err, sizeof err);
    if (c == NULL)
        fprintf(stderr, "sesgate: redis is not running at %s: start sesgate first\n",
                buf_cstr(&sock));
    else
        redisSetTimeout(c, slow);
    buf_free(&sock);
    return c;
}

/* EVAL script (its source: a synchronous client keeps no SHA cache) with nkeys keys and nargs
 * arguments; the reply, an error reply included, or NULL after printing the
 * connection's error. */
static redisReply *ops_eval_any(redisContext *c, enum rscript_id script, int nkeys, char **keys,
                                int nargs, const char **args)
{
    int argc = 3 + nkeys + nargs;
    const char **argv = xcalloc((size_t)argc, sizeof *argv);
    char nk[16];
    snprintf(nk, sizeof nk, "%d", nkeys);
    argv[0] = "EVAL";
    argv[1] = rscript_source(script);
    argv[2] = nk;
    for (int k = 0; k < nkeys; k++)
        argv[3 + k] = keys[k];
    for (int k = 0; k < nargs; k++)
        argv[3 + nkeys + k] = args[k];
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    free(argv);
    if (r == NULL)
        fprintf(stderr, "sesgate: redis: %s\n", c->errstr);
    return r;
}

/* ops_eval_any; an error reply is printed and gives NULL too. */
static redisReply *ops_eval(redisContext *c, enum rscript_id script, int nkeys, char **keys,
                            int nargs, const char **args)
{
    redisReply *r = ops_eval_any(c, script, nkeys, keys, nargs, args);
    if (r && r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "sesgate: redis: %s\n", r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* Print j as indented JSON and a newline. */
static void ops_print_json(const json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_ENSURE_ASCII);
    if (s == NULL)
        abort();
    puts(s);
    free(s);
}

/* A string member of o, or dflt when absent or not a string. */
static const char *ops_jstr(const json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s && s[0] ? s : dflt;
}

/* An integer member of o (0 when absent). */
static long long ops_jint(const json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

/* Recipients per second of batch b since it was created, and the seconds
 * left at that rate (-1: unknown). */
static void ops_batch_pace(const json_t *b, double *rate, double *eta)
{
    long long total = ops_jint(b, "total");
    long long done = ops_jint(b, "sent") + ops_jint(b, "dead") + ops_jint(b, "cancelled") +
                     ops_jint(b, "suppressed");
    double secs = (double)(clock_wall_ms() - ops_jint(b, "created_ms")) / 1000.0;
    *rate = secs > 0.5 && done > 0 ? (double)done / secs : 0;
    *eta = *rate > 0 ? (double)(total - done) / *rate : -1;
}

/* The batch counters of delivery states (and skipped units), in the
 * order the progress lines print them. */
static const char *const ops_events[6] = {"delivered", "bounced",  "complained",
                                          "delayed",   "rejected", "suppressed"};

/* A progress bar of width cells for done of total, and the counts, rate and
 * time left: "[#######.......]  512/1000  51.2 %  14.0/s  0:35 left"; ev
 * (NULL: none): the ops_events counters, each printed when not 0. */
static void ops_print_bar(long long done, long long dead, long long total, double rate, double eta,
                          const long long *ev)
{
    enum { width = 30 };
    int fill = total > 0 ? (int)((double)done * width / (double)total) : width;
    char bar[width + 1];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    printf("[%s] %lld/%lld %5.1f %%", bar, done, total,
           total > 0 ? 100.0 * (double)done / (double)total : 100.0);
    if (dead > 0)
        printf("  %lld dead", dead);
    for (int k = 0; ev && k < 6; k++)
        if (ev[k] > 0)
            printf("  %lld %s", ev[k], ops_events[k]);
    if (done < total && rate > 0)
        printf("  %.1f/s  %lld:%02lld left", rate, (long long)eta / 60, (long long)eta % 60);
    putchar('\n');
}

/* Print a recipient's delivery states, one indented line each:
 * "  ADDRESS STATE TIME [DETAIL]", the detail by state: a bounce's "TYPE
 * SUBTYPE DIAGNOSTIC", a complaint's feedback type, a delay's type, a
 * rejection's reason; none for a delivery. */
static void ops_print_delivery(const json_t *delivery)
{
    size_t i;
    const json_t *d;
    json_array_foreach(delivery, i, d)
    {
        const char *state = ops_jstr(d, "state", "-");
        printf("  %s %s %s", ops_jstr(d, "address", "-"), state, ops_jstr(d, "time", "-"));
        if (strcmp(state, "bounced") == 0)
            printf(" %s %s %s", ops_jstr(d, "type", "-"), ops_jstr(d, "subtype", "-"),
                   ops_jstr(d, "diagnostic", ""));
        else if (strcmp(state, "complained") == 0)
            printf(" %s", ops_jstr(d, "feedback_type", "-"));
        else if (strcmp(state, "delayed") == 0)
            printf(" %s", ops_jstr(d, "type", "-"));
        else if (strcmp(state, "rejected") == 0)
            printf(" %s", ops_jstr(d, "reason", "-"));
        putchar('\n');
    }
}

/* Print the batch status b as text: one "key value" line per field, then
 * one line per recipient "index address state detail" (followed by an
 * indented line per delivery state of its addresses), then one
 * "- address invalid reason" line per address left out as invalid. */
static void ops_print_batch(const json_t *b)
{
    printf("batch %s\nclient %s\naction %s\ncreated %s\nstate %s\n", ops_jstr(b, "batch_id", "-"),
           ops_jstr(b, "client", "-"), ops_jstr(b, "action", "-"), ops_jstr(b, "created", "-"),
           ops_jstr(b, "state", "running"));
    static const char *const counts[] = {"total",      "sent",    "dead",      "cancelled",
                                         "retrying",   "queued",  "delivered", "bounced",
                                         "complained", "delayed", "rejected",  "suppressed"};
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++)
        printf("%s %lld\n", counts[k], ops_jint(b, counts[k]));
    printf("progress %.1f%%\n", json_real_value(json_object_get(b, "progress")));
    if (json_is_true(json_object_get(b, "filling")))
        printf("filling %lld/%lld\n", ops_jint(b, "filled"), ops_jint(b, "total"));
    double rate, eta;
    ops_batch_pace(b, &rate, &eta);
    if (!json_is_true(json_object_get(b, "complete")) && rate > 0)
        printf("rate %.1f\neta_seconds %.0f\n", rate, eta);
    if (isatty(STDOUT_FILENO)) {
        putchar('\n');
        long long ev[6];
        for (int k = 0; k < 6; k++)
            ev[k] = ops_jint(b, ops_events[k]);
        ops_print_bar(ops_jint(b, "sent") + ops_jint(b, "dead") + ops_jint(b, "cancelled") +
                          ops_jint(b, "suppressed"),
                      ops_jint(b, "dead"), ops_jint(b, "total"), rate, eta, ev);
        puts("\nindex address state detail");
    }
    size_t i;
    const json_t *r;
    json_array_foreach(json_object_get(b, "recipients"), i, r)
    {
        const char *state = ops_jstr(r, "state", "queued");
        printf("%lld %s %s ", ops_jint(r, "index"), ops_jstr(r, "address", "-"), state);
        if (strcmp(state, "sent") == 0)
            printf("%s%s%s\n", ops_jstr(r, "message_id", "-"),
                   json_object_get(r, "note") ? " " : "", ops_jstr(r, "note", ""));
        else if (strcmp(state, "dead") == 0)
            printf("%s %s\n", ops_jstr(r, "code", "-"), ops_jstr(r, "message", ""));
        else if (strcmp(state, "retry") == 0)
            printf("attempt %lld due %s\n", ops_jint(r, "attempt"), ops_jstr(r, "due", "-"));
        else
            puts("-");
        ops_print_delivery(json_object_get(r, "delivery"));
    }
    const json_t *bad;
    json_array_foreach(json_object_get(b, "invalid"), i, bad)
    {
        printf("- %s invalid %s\n", ops_jstr(bad, "address", "-"), ops_jstr(bad, "reason", "-"));
    }
}

/* sesgate batch pause|resume|cancel ID: control.lua, again in steps of
 * OPS_CONTROL_STEP held units while some are left; prints the answer of
 * POST /batches/{id}/CMD (JSON), or one line "batch ID STATE in_flight N
 * held N". A refusal (unknown, cancelled or complete batch) exits 1. */
static int ops_batch_control(redisContext *c, const struct config *cfg, const char *pfx,
                             const char *cmd, const char *id, bool json)
{
    if (!qview_batch_id_ok(id)) {
        fprintf(stderr, "sesgate: batch %s not found (a batch id is 36 of 0-9, a-f and -)\n", id);
        return 1;
    }
    char *keys[2];
    qview_control_keys(pfx, id, keys);
    char ttl[24], step[24];
    snprintf(ttl, sizeof ttl, "%lld", (long long)cfg->status_ttl_ms);
    snprintf(step, sizeof step, "%d", OPS_CONTROL_STEP);
    const char *args[4] = {cmd, ttl, step, "more"};
    long long in_flight = -1;
    json_t *answer = NULL;
    for (int call = 0;; call++) {
        redisReply *r = ops_eval_any(c, RSCRIPT_CONTROL, 2, keys, call == 0 ? 3 : 4, args);
        if (r == NULL)
            break;
        if (r->type == REDIS_REPLY_ERROR) {
            /* "CODE text": the refusals say what the batch is */
            const char *sp = strchr(r->str, ' ');
            if (strncmp(r->str, "NOBATCH", 7) == 0)
                fprintf(stderr, "sesgate: batch %s not found\n", id);
            else if (strncmp(r->str, "CANCELLED", 9) == 0 || strncmp(r->str, "COMPLETE", 8) == 0)
                fprintf(stderr, "sesgate: cannot %s: %s\n", cmd, sp ? sp + 1 : r->str);
            else
                fprintf(stderr, "sesgate: redis: %s\n", r->str);
            freeReplyObject(r);
            break;
        }
        json_decref(answer);
        answer = qview_control_json(id, r, in_flight);
        freeReplyObject(r);
        if (answer == NULL) {
            fprintf(stderr, "sesgate: redis: unexpected reply to the control script\n");
            break;
        }
        if (in_flight < 0)
            in_flight = ops_jint(answer, "in_flight");
        if (strcmp(cmd, "pause") == 0 || ops_jint(answer, "held") == 0 ||
            strcmp(ops_jstr(answer, "state", ""),
                   strcmp(cmd, "resume") == 0 ? "running" : "cancelled") != 0)
            break;
    }
    free(keys[0]);
    free(keys[1]);
    if (answer == NULL)
        return 1;
    if (json)
        ops_print_json(answer);
    else
        printf("batch %s %s in_flight %lld held %lld\n", id, ops_jstr(answer, "state", "-"),
               ops_jint(answer, "in_flight"), ops_jint(answer, "held"));
    json_decref(answer);
    return 0;
}

/* The status of batch id (*out NULL when there is none), read with
 * show.lua a page at a time; 0, or 1 after printing a Redis error. */
static int ops_show(redisContext *c, const char *pfx, const char *id, json_t **out)
{
    char *keys[QVIEW_SHOW_KEYS];
    qview_show_keys(pfx, id, keys);
    redisReply **pages = NULL;
    size_t npages = 0;
    long long next = 0, total = -1;
    char cursor[32] = "0", ecursor[32] = "0", first[24], count[24];
    int rc = 0;
    for (;;) {
        snprintf(first, sizeof first, "%lld", next);
        snprintf(count, sizeof count, "%d", total < 0 || next < total ? QVIEW_SHOW_PAGE : 0);
        const char *args[7] = {
            id, first, count, cursor, QVIEW_SHOW_SCAN, ecursor, QVIEW_SHOW_STATES};
        redisReply *r = ops_eval(c, RSCRIPT_SHOW, QVIEW_SHOW_KEYS, keys, 7, args);
        if (r == NULL) {
            rc = 1;
            break;
        }
        pages = xrealloc(pages, (npages + 1) * sizeof *pages);
        pages[npages++] = r;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 7 ||
            r->element[4]->type != REDIS_REPLY_STRING || r->element[6]->type != REDIS_REPLY_STRING)
            break; /* no such batch */
        if (total < 0)
            total = (long long)reply_num(reply_field(r->element[0], "total"), 0);
        next += QVIEW_SHOW_PAGE;
        if (strcmp(cursor, "-") != 0)
            snprintf(cursor, sizeof cursor, "%s",
                     strcmp(r->element[4]->str, "0") == 0 ? "-" : r->element[4]->str);
        if (strcmp(ecursor, "-") != 0)
            snprintf(ecursor, sizeof ecursor, "%s",
                     strcmp(r->element[6]->str, "0") == 0 ? "-" : r->element[6]->str);
        if (next >= total && strcmp(cursor, "-") == 0 && strcmp(ecursor, "-") == 0)
            break;
    }
    *out = rc == 0 ? qview_show_pages(id, pages, npages) : NULL;
    for (size_t p = 0; p < npages; p++)
        freeReplyObject(pages[p]);
    free(pages);
    for (int k = 0; k < QVIEW_SHOW_KEYS; k++)
        free(keys[k]);
    return rc;
}

/* sesgate batch show ID [--watch]: with --watch, a progress line every
 * second (a bar redrawn in place on a terminal) until the batch is
 * complete, then the whole status. */
static int ops_batch(redisContext *c, const struct config *cfg, const char *pfx, int argc,
                     char **argv, bool json, bool watch)
{
    if (argc == 2 && !watch &&
        (strcmp(argv[0], "pause") == 0 || strcmp(argv[0], "resume") == 0 ||
         strcmp(argv[0], "cancel") == 0))
        return ops_batch_control(c, cfg, pfx, argv[0], argv[1], json);
    if (argc != 2 || strcmp(argv[0], "show") != 0) {
        fprintf(stderr, "usage: sesgate batch [-c FILE] show ID|last [--json] [--watch]\n"
                        "       sesgate batch [-c FILE] pause|resume|cancel ID [--json]\n");
        return 2;
    }
    const char *id = argv[1];
    char newest[64] = "";
    if (strcmp(id, "last") == 0) {
        /* the newest batch */
        struct buf k = BUF_INIT;
        buf_printf(&k, "%srecent", pfx);
        redisReply *r = redisCommand(c, "ZREVRANGE %s 0 0", buf_cstr(&k));
        buf_free(&k);
        if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
            r->element[0]->type == REDIS_REPLY_STRING)
            snprintf(newest, sizeof newest, "%s", r->element[0]->str);
        freeReplyObject(r);
        if (newest[0] == '\0') {
            fprintf(stderr, "sesgate: no batch yet\n");
            return 1;
        }
        id = newest;
    }
    /* a batch id, or the sesgate-... MessageId of a queued send or
     * destination */
    char ref_id[37];
    long long only = -1;
    if (!qview_batch_ref(id, strlen(id), ref_id, &only)) {
        fprintf(stderr, "sesgate: batch %s not found (a batch id is 36 of 0-9, a-f and -)\n", id);
        return 1;
    }
    id = ref_id;
    bool tty = isatty(STDOUT_FILENO);
    for (;;) {
        if (watch) {
            /* Until the batch is complete only its counters are read: the
             * whole status of a big batch is large. */
            struct buf k = BUF_INIT;
            buf_printf(&k, "%sb:%s", pfx, id);
            redisReply *h = redisCommand(c,
                                         "HMGET %s total sent done dead created cancelled "
                                         "delivered bounced complained delayed rejected suppressed",
                                         buf_cstr(&k));
            buf_free(&k);
            if (h == NULL) {
                fprintf(stderr, "sesgate: redis: %s\n", c->errstr);
                return 1;
            }
            long long v[12] = {0};
            bool known = h->type == REDIS_REPLY_ARRAY && h->elements == 12 &&
                         h->element[0]->type == REDIS_REPLY_STRING;
            for (size_t i = 0; known && i < 12; i++)
                if (h->element[i]->type == REDIS_REPLY_STRING)
                    v[i] = strtoll(h->element[i]->str, NULL, 10);
            freeReplyObject(h);
            /* complete: sent + done + dead + cancelled + suppressed == total */
            long long done = v[1] + v[2] + v[3] + v[5] + v[11];
            if (known && done < v[0]) {
                json_t *b = json_pack("{sIsIsIsIsIsI}", "total", (json_int_t)v[0], "sent",
                                      (json_int_t)(v[1] + v[2]), "dead", (json_int_t)v[3],
                                      "cancelled", (json_int_t)v[5], "suppressed",
                                      (json_int_t)v[11], "created_ms", (json_int_t)v[4]);
                double rate, eta;
                ops_batch_pace(b, &rate, &eta);
                json_decref(b);
                if (tty) {
                    fputs("\r\033[K", stdout);
                    ops_print_bar(done, v[3], v[0], rate, eta, v + 6);
                    fputs("\033[A", stdout); /* redrawn in place */
                } else {
                    printf("progress %lld/%lld dead %lld cancelled %lld", done, v[0], v[3], v[5]);
                    for (int e = 0; e < 6; e++)
                        printf(" %s %lld", ops_events[e], v[6 + e]);
                    printf(" rate %.1f eta_seconds %.0f\n", rate, eta);
                }
                fflush(stdout);
                sleep(1);
                continue;
            }
        }
        json_t *b = NULL;
        if (ops_show(c, pfx, id, &b) != 0)
            return 1;
        if (b == NULL) {
            fprintf(stderr, "sesgate: batch %s not found\n", id);
            return 1;
        }
        if (only >= 0)
            qview_show_only(b, only);
        if (watch && tty)
            fputs("\r\033[K", stdout);
        if (json)
            ops_print_json(b);
        else
            ops_print_batch(b);
        json_decref(b);
        return 0;
    }
}

/* The string of field name in a flat stream entry field list, or "". */
static const char *ops_entry_field(const redisReply *fields, const char *name)
{
    const redisReply *v = reply_field(fields, name);
    return v && v->type == REDIS_REPLY_STRING ? v->str : "";
}

/* sesgate dlq list: every dead letter, oldest first. */
static int ops_dlq_list(redisContext *c, const char *pfx, bool json)
{
    struct buf kdlq = BUF_INIT;
    buf_printf(&kdlq, "%sdlq", pfx);
    json_t *all = json_array();
    char start[64] = "-";
    int rc = 0;
    for (;;) {
        redisReply *page = redisCommand(c, "XRANGE %s %s + COUNT 500", buf_cstr(&kdlq), start);
        if (page == NULL || page->type != REDIS_REPLY_ARRAY) {
            fprintf(stderr, "sesgate: redis: %s\n",
                    page ? (page->str ? page->str : "unexpected reply") : c->errstr);
            if (page)
                freeReplyObject(page);
            rc = 1;
            break;
        }
        size_t n = page->elements;
        for (size_t k = 0; k < n; k++) {
            const redisReply *e = page->element[k];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
                e->element[1]->type != REDIS_REPLY_ARRAY)
                continue;
            const char *eid = e->element[0]->str, *b = ops_entry_field(e->element[1], "b");
            const char *i = ops_entry_field(e->element[1], "i");
            snprintf(start, sizeof start, "(%s", eid);
            redisReply *addr = redisCommand(c, "LINDEX %sr:%s %s", pfx, b, i);
            json_t *o = json_object();
            json_object_set_new(o, "id", json_string(eid));
            json_object_set_new(o, "batch_id", json_string(b));
            json_object_set_new(o, "index", json_integer(strtoll(i, NULL, 10)));
            redisReply *kind = redisCommand(c, "HMGET %sb:%s action api", pfx, b);
            json_t *dest = NULL;
            if (addr && addr->type == REDIS_REPLY_STRING && kind &&
                kind->type == REDIS_REPLY_ARRAY && kind->elements == 2 &&
                kind->element[0]->type == REDIS_REPLY_STRING && bulk_action(kind->element[0]->str))
                /* a bulk call's destination: named by its first recipient */
                dest = bulk_unit_view(kind->element[1]->type == REDIS_REPLY_STRING &&
                                              strcmp(kind->element[1]->str, "2") == 0
                                          ? 2
                                          : 1,
                                      addr->str, addr->len);
            if (kind)
                freeReplyObject(kind);
            json_t *to0 = dest ? json_array_get(json_object_get(dest, "to"), 0) : NULL;
            json_object_set_new(o, "address",
                                to0    ? json_copy(to0)
                                : dest ? json_string("")
                                : addr && addr->type == REDIS_REPLY_STRING
                                    ? json_stringn(addr->str, addr->len)
                                    : json_null());
            if (dest)
                json_object_set_new(o, "destination", dest);
            json_object_set_new(o, "code", json_string(ops_entry_field(e->element[1], "code")));
            json_object_set_new(o, "message",
                                json_string(ops_entry_field(e->element[1], "message")));
            json_object_set_new(
                o, "attempts",
                json_integer(strtoll(ops_entry_field(e->element[1], "attempts"), NULL, 10)));
            if (addr)
                freeReplyObject(addr);
            json_array_append_new(all, o);
        }
        freeReplyObject(page);
        if (n < 500)
            break;
    }
    if (rc == 0 && json) {
        ops_print_json(all);
    } else if (rc == 0) {
        if (isatty(STDOUT_FILENO))
            puts("id batch index address code attempts message");
        size_t k;
        const json_t *o;
        json_array_foreach(all, k, o)
        {
            printf("%s %s %lld %s %s %lld %s\n", ops_jstr(o, "id", "-"),
                   ops_jstr(o, "batch_id", "-"), ops_jint(o, "index"), ops_jstr(o, "address", "-"),
                   ops_jstr(o, "code", "-"), ops_jint(o, "attempts"), ops_jstr(o, "message", ""));
        }
    }
    json_decref(all);
    buf_free(&kdlq);
    return rc;
}

/* Move dead entries back to their queue with script (dlq_retry.lua or
 * relay_retry.lua, on nkeys keys; keys[0] is the dead stream), or delete
 * them all (purge, dlq_purge.lua on keys[0]). Given ids: one call. All:
 * 1,000 entries looked at per call (moved or left, as a letter of an
 * expired batch is), from where the call before stopped, so no call reads
 * the whole stream. *total gets how many moved or went; returns 0, or 1
 * when Redis failed (ops_eval said why). */
static int ops_move(redisContext *c, enum rscript_id script, int nkeys, char **keys, bool purge,
                    int nids, char **ids, long long *total)
{
    int rc = 0;
    if (purge) {
        redisReply *r = ops_eval(c, RSCRIPT_DLQ_PURGE, 1, keys, 0, NULL);
        rc = r ? 0 : 1;
        *total = r && r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
        if (r)
            freeReplyObject(r);
        return rc;
    }
    char from[80] = "from:-";
    const char **args = xcalloc((size_t)nids + 2, sizeof *args);
    args[0] = "1000";
    for (int k = 0; k < nids; k++)
        args[k + 1] = ids[k];
    if (nids == 0)
        args[1] = from;
    for (;;) {
        redisReply *r = ops_eval(c, script, nkeys, keys, nids > 0 ? nids + 1 : 2, args);
        if (r == NULL) {
            rc = 1;
            break;
        }
        bool paged = r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                     r->element[1]->type == REDIS_REPLY_STRING;
        const redisReply *moved = paged ? r->element[0] : r;
        *total += moved->type == REDIS_REPLY_INTEGER ? moved->integer : 0;
        bool more = paged && r->element[1]->len > 0 && r->element[1]->len < 70;
        if (more)
            snprintf(from, sizeof from, "from:%s", r->element[1]->str);
        freeReplyObject(r);
        if (nids > 0 || !more)
            break;
    }
    free(args);
    return rc;
}

/* sesgate dlq retry [ID...] / purge. */
static int ops_dlq_move(redisContext *c, const char *pfx, bool purge, int nids, char **ids)
{
    struct buf kdlq = BUF_INIT, kq = BUF_INIT;
    buf_printf(&kdlq, "%sdlq", pfx);
    buf_printf(&kq, "%sqs", pfx);
    char *keys[3] = {(char *)buf_cstr(&kdlq), (char *)buf_cstr(&kq), (char *)pfx};
    long long total = 0;
    int rc = ops_move(c, RSCRIPT_DLQ_RETRY, 3, keys, purge, nids, ids, &total);
    if (rc == 0)
        printf(purge ? "%lld dead letters deleted\n" : "%lld dead letters moved to the queue\n",
               total);
    buf_free(&kdlq);
    buf_free(&kq);
    return rc;
}

/* sesgate dlq list | retry [ID...] | purge. */
static int ops_dlq(redisContext *c, const char *pfx, int argc, char **argv, bool json)
{
    if (argc == 1 && strcmp(argv[0], "list") == 0)
        return ops_dlq_list(c, pfx, json);
    if (argc >= 1 && strcmp(argv[0], "retry") == 0)
        return ops_dlq_move(c, pfx, false, argc - 1, argv + 1);
    if (argc == 1 && strcmp(argv[0], "purge") == 0)
        return ops_dlq_move(c, pfx, true, 0, NULL);
    fprintf(stderr, "usage: sesgate dlq [-c FILE] list [--json] | retry [ID...] | purge\n");
    return 2;
}

/* sesgate relay list: every dead relay, oldest first. */
static int ops_relay_list(redisContext *c, const char *pfx, bool json)
{
    struct buf key = BUF_INIT;
    buf_printf(&key, "%srelay:dlq", pfx);
    json_t *all = json_array();
    char start[64] = "-";
    int rc = 0;
    for (;;) {
        redisReply *page = redisCommand(c, "XRANGE %s %s + COUNT 500", buf_cstr(&key), start);
        if (page == NULL || page->type != REDIS_REPLY_ARRAY) {
            fprintf(stderr, "sesgate: redis: %s\n",
                    page ? (page->str ? page->str : "unexpected reply") : c->errstr);
            if (page)
                freeReplyObject(page);
            rc = 1;
            break;
        }
        size_t n = page->elements;
        for (size_t k = 0; k < n; k++) {
            const redisReply *e = page->element[k];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
                e->element[0]->type != REDIS_REPLY_STRING ||
                e->element[1]->type != REDIS_REPLY_ARRAY)
                continue;
            const redisReply *f = e->element[1];
            snprintf(start, sizeof start, "(%s", e->element[0]->str);
            json_t *o = json_object();
            json_object_set_new(o, "id", json_string(e->element[0]->str));
            json_object_set_new(o, "client", json_string(ops_entry_field(f, "c")));
            json_object_set_new(o, "topic_arn", json_string(ops_entry_field(f, "t")));
            json_object_set_new(o, "type", json_string(ops_entry_field(f, "y")));
            json_object_set_new(o, "sns_message_id", json_string(ops_entry_field(f, "i")));
            json_object_set_new(o, "subscription_arn", json_string(ops_entry_field(f, "s")));
            /* a: the attempt that failed last, 0 for the first */
            json_object_set_new(o, "attempts",
                                json_integer(strtoll(ops_entry_field(f, "a"), NULL, 10) + 1));
            json_object_set_new(o, "error", json_string(ops_entry_field(f, "e")));
            const redisReply *b = reply_field(f, "b");
            bool hasb = b && b->type == REDIS_REPLY_STRING;
            json_t *body = hasb ? json_stringn(b->str, b->len) : NULL;
            json_object_set_new(o, "body_bytes", json_integer(hasb ? (long long)b->len : 0));
            json_object_set_new(o, "body", body ? body : json_null());
            json_array_append_new(all, o);
        }
        freeReplyObject(page);
        if (n < 500)
            break;
    }
    if (rc == 0 && json) {
        ops_print_json(all);
    } else if (rc == 0) {
        if (isatty(STDOUT_FILENO))
            puts("id client sns_message_id attempts body_bytes error");
        size_t k;
        const json_t *o;
        json_array_foreach(all, k, o)
        {
            printf("%s %s %s %lld %lld %s\n", ops_jstr(o, "id", "-"), ops_jstr(o, "client", "-"),
                   ops_jstr(o, "sns_message_id", "-"), ops_jint(o, "attempts"),
                   ops_jint(o, "body_bytes"), ops_jstr(o, "error", ""));
        }
    }
    json_decref(all);
    buf_free(&key);
    return rc;
}

/* sesgate relay retry ID...|--all / purge. */
static int ops_relay_move(redisContext *c, const char *pfx, bool purge, int nids, char **ids)
{
    struct buf krdlq = BUF_INIT, krl = BUF_INIT;
    buf_printf(&krdlq, "%srelay:dlq", pfx);
    buf_printf(&krl, "%srelay", pfx);
    char *keys[2] = {(char *)buf_cstr(&krdlq), (char *)buf_cstr(&krl)};
    long long total = 0;
    int rc = ops_move(c, RSCRIPT_RELAY_RETRY, 2, keys, purge, nids, ids, &total);
    if (rc == 0)
        printf(purge ? "%lld dead relays deleted\n" : "%lld dead relays moved to the relay queue\n",
               total);
    buf_free(&krdlq);
    buf_free(&krl);
    return rc;
}

/* sesgate relay list | retry ID...|--all | purge. */
static int ops_relay(redisContext *c, const char *pfx, int argc, char **argv, bool json)
{
    if (argc == 1 && strcmp(argv[0], "list") == 0)
        return ops_relay_list(c, pfx, json);
    if (argc == 2 && strcmp(argv[0], "retry") == 0 && strcmp(argv[1], "--all") == 0)
        return ops_relay_move(c, pfx, false, 0, NULL);
    bool ids = argc >= 2 && strcmp(argv[0], "retry") == 0;
    for (int k = 1; ids && k < argc; k++)
        ids = strcmp(argv[k], "--all") != 0;
    if (ids)
        return ops_relay_move(c, pfx, false, argc - 1, argv + 1);
    if (argc == 1 && strcmp(argv[0], "purge") == 0)
        return ops_relay_move(c, pfx, true, 0, NULL);
    fprintf(stderr, "usage: sesgate relay [-c FILE] list [--json] | retry ID...|--all | purge\n");
    return 2;
}

/* A number of a reply element (integer or decimal string), or JSON null. */
static json_t *ops_rnum(const redisReply *r)
{
    double d = reply_num(r, NAN);
    if (isnan(d))
        return json_null();
    return d == (double)(long long)d && d < 9e15 && d > -9e15 ? json_integer((long long)d)
                                                              : json_real(d);
}

/* The shared rate limiter as Redis holds it: the effective and base rates,
 * the last throttling cut, recipients sent in the rolling 24 hours, and
 * what the upstream last reported (rate = auto). */
static json_t *ops_rate_json(redisContext *c, const char *pfx)
{
    json_t *o = json_object();
    char *keys[2];
    struct buf b = BUF_INIT;
    buf_printf(&b, "%srl", pfx);
    keys[0] = buf_detach(&b, NULL);
    buf_printf(&b, "%sday", pfx);
    keys[1] = buf_detach(&b, NULL);
    const char *args[2] = {"status", ""};
    redisReply *r = ops_eval(c, RSCRIPT_LIMIT, 2, keys, 2, args);
    free(keys[0]);
    free(keys[1]);
    static const char *const names[6] = {"effective", "base",          "cut_rate",
                                         "cut_at_ms", "sent_last_24h", "tat_ms"};
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 6)
        for (int i = 0; i < 6; i++) {
            json_t *v = ops_rnum(r->element[i]);
            if (i < 3 && json_is_number(v)) {
                /* Redis holds the pacing rates (LIMITER_PACE of the rate):
                 * show them as the account's. */
                double d = json_number_value(v) / LIMITER_PACE;
                json_decref(v);
                v = json_real(round(d * 1e6) / 1e6);
            }
            json_object_set_new(o, names[i], v);
        }
    freeReplyObject(r);
    buf_printf(&b, "%squota", pfx);
    r = redisCommand(c, "HGETALL %s", buf_cstr(&b));
    buf_free(&b);
    if (r && r->type == REDIS_REPLY_ARRAY) {
        json_t *u = json_object();
        for (size_t i = 0; i + 1 < r->elements; i += 2)
            if (r->element[i]->type == REDIS_REPLY_STRING)
                json_object_set_new(u, r->element[i]->str, ops_rnum(r->element[i + 1]));
        json_object_set_new(o, "upstream", u);
    }
    freeReplyObject(r);
    const json_t *quota = json_object_get(json_object_get(o, "upstream"), "daily_quota");
    const json_t *used = json_object_get(o, "sent_last_24h");
    if (json_is_integer(quota) && json_integer_value(quota) > 0 && json_is_integer(used))
        json_object_set_new(o, "quota_left",
                            json_integer(json_integer_value(quota) > json_integer_value(used)
                                             ? json_integer_value(quota) - json_integer_value(used)
                                             : 0));
    /* What holds the queue (the daily quota), and until when. */
    struct buf hk = BUF_INIT;
    buf_printf(&hk, "%shold", pfx);
    r = redisCommand(c, "HGETALL %s", buf_cstr(&hk));
    buf_free(&hk);
    json_t *held = json_array();
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        long long until = strtoll(r->element[i + 1]->str ? r->element[i + 1]->str : "0", NULL, 10);
        if (until <= clock_wall_ms())
            continue;
        json_t *h = json_object();
        json_object_set_new(h, "reason", json_string(r->element[i]->str));
        json_object_set_new(h, "until_ms", json_integer(until));
        json_array_append_new(held, h);
    }
    freeReplyObject(r);
    json_object_set_new(o, "held", held);
    return o;
}

/* The key prefix of upstream u's per-account keys: pfx, or pfx "u:NAME:"
 * for an [upstream.NAME]. The caller frees it. */
static char *ops_upfx(const struct config *cfg, size_t u, const char *pfx)
{
    struct buf b = BUF_INIT;
    buf_printf(&b, "%s", pfx);
    if (u > 0)
        buf_printf(&b, "u:%s:", cfg->upstreams[u].name);
    return buf_detach(&b, NULL);
}

/* The most members of the delay set read to count each upstream's retries. */
#define OPS_RETRY_SCAN 100000

/* Count the retries waiting in the delay set per upstream (counts[u], u an
 * index into cfg->upstreams; a batch whose hash has no u is [upstream]'s,
 * one that is gone or names an upstream no longer configured is not
 * counted). Reads at most OPS_RETRY_SCAN members. */
static void ops_retries_per_upstream(redisContext *c, const struct config *cfg, const char *pfx,
                                     long long *counts)
{
    struct buf kd = BUF_INIT;
    buf_printf(&kd, "%sd", pfx);
    /* batch number -> upstream index (SIZE_MAX: none), for the numbers seen */
    struct ops_bn {
        long long n;
        size_t u;
    } *seen = NULL;
    size_t nseen = 0;
    for (long long start = 0; start < OPS_RETRY_SCAN; start += 5000) {
        redisReply *r = redisCommand(c, "ZRANGE %s %lld %lld", buf_cstr(&kd), start, start + 4999);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
            if (r)
                freeReplyObject(r);
            break;
        }
        size_t got = r->elements;
        for (size_t i = 0; i < got; i++) {
            const redisReply *m = r->element[i];
            if (m->type != REDIS_REPLY_STRING)
                continue;
            long long bn = strtoll(m->str, NULL, 10);
            size_t u = SIZE_MAX, k = 0;
            for (; k < nseen; k++)
                if (seen[k].n == bn)
                    break;
            if (k < nseen) {
                u = seen[k].u;
            } else {
                redisReply *id = redisCommand(c, "GET %sn:%lld", pfx, bn);
                redisReply *h = id && id->type == REDIS_REPLY_STRING
                                    ? redisCommand(c, "HMGET %sb:%s client u", pfx, id->str)
                                    : NULL;
                if (h && h->type == REDIS_REPLY_ARRAY && h->elements == 2 &&
                    h->element[0]->type == REDIS_REPLY_STRING) {
                    if (h->element[1]->type != REDIS_REPLY_STRING)
                        u = 0;
                    else
                        for (size_t x = 1; x < cfg->nupstreams; x++)
                            if (strcmp(cfg->upstreams[x].name, h->element[1]->str) == 0)
                                u = x;
                }
                if (h)
                    freeReplyObject(h);
                if (id)
                    freeReplyObject(id);
                seen = xrealloc(seen, (nseen + 1) * sizeof *seen);
                seen[nseen++] = (struct ops_bn){bn, u};
            }
            if (u != SIZE_MAX)
                counts[u]++;
        }
        freeReplyObject(r);
        if (got < 5000)
            break;
    }
    free(seen);
    buf_free(&kd);
}

/* Each upstream: its name, region and endpoint, its limiter (as
 * ops_rate_json) and its queue: depth, oldest_seconds, inflight and
 * retrying. */
static json_t *ops_upstreams_json(redisContext *c, const struct config *cfg, const char *pfx)
{
    json_t *all = json_array();
    long long *retrying = xcalloc(cfg->nupstreams, sizeof *retrying);
    ops_retries_per_upstream(c, cfg, pfx, retrying);
    for (size_t u = 0; u < cfg->nupstreams; u++) {
        const struct config_upstream *uc = &cfg->upstreams[u];
        char *upfx = ops_upfx(cfg, u, pfx);
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(uc->name));
        json_object_set_new(o, "region", json_string(uc->region));
        json_object_set_new(o, "endpoint", json_string(uc->endpoint));
        json_object_set_new(o, "rate", ops_rate_json(c, upfx));
        /* its streams only: the delay set, dead letters and batches are shared */
        char *keys[5];
        qview_stats_keys(upfx, keys);
        const char *n = "0";
        redisReply *r = ops_eval(c, RSCRIPT_STATS, 5, keys, 1, &n);
        for (int k = 0; k < 5; k++)
            free(keys[k]);
        json_t *st = r ? qview_stats_json(r, clock_wall_ms()) : NULL;
        if (r)
            freeReplyObject(r);
        json_t *q = json_object();
        json_object_set_new(q, "depth", json_integer(st ? ops_jint(st, "depth") : 0));
        json_t *oldest = st ? json_object_get(st, "oldest_seconds") : NULL;
        json_object_set_new(q, "oldest_seconds", oldest ? json_incref(oldest) : json_real(0));
        json_object_set_new(q, "inflight", json_integer(st ? ops_jint(st, "inflight") : 0));
        json_object_set_new(q, "retrying", json_integer(retrying[u]));
        json_object_set_new(o, "queue", q);
        json_decref(st);
        json_array_append_new(all, o);
        free(upfx);
    }
    free(retrying);
    return all;
}

/* The text lines of one upstream (several upstreams only). */
static void ops_print_upstream(const json_t *o)
{
    const json_t *rate = json_object_get(o, "rate"), *q = json_object_get(o, "queue");
    const char *name = ops_jstr(o, "name", "-");
    printf("upstream %s region %s depth %lld inflight %lld retrying %lld", name,
           ops_jstr(o, "region", "-"), ops_jint(q, "depth"), ops_jint(q, "inflight"),
           ops_jint(q, "retrying"));
    static const char *const shown[3] = {"effective", "base", "sent_last_24h"};
    static const char *const label[3] = {"rate", "base_rate", "sent_last_24h"};
    for (int i = 0; i < 3; i++) {
        const json_t *v = json_object_get(rate, shown[i]);
        if (json_is_number(v))
            printf(" %s %g", label[i], json_number_value(v));
    }
    const json_t *dq = json_object_get(json_object_get(rate, "upstream"), "daily_quota");
    if (json_is_number(dq))
        printf(" daily_quota %g", json_number_value(dq));
    putchar('\n');
    size_t hi;
    const json_t *h;
    json_array_foreach(json_object_get(rate, "held"), hi, h)
    {
        printf("upstream %s held %s for %.0f s\n", name, ops_jstr(h, "reason", "-"),
               (double)(ops_jint(h, "until_ms") - clock_wall_ms()) / 1000.0);
    }
}

/* One status of the queue and the recent batches; *idle tells whether
 * nothing is queued, in flight or waiting for a retry. */
static int ops_status_once(redisContext *c, const struct config *cfg, const char *pfx, bool json,
                           bool tty, bool *idle)
{
    /* the queue's five keys, then every [upstream.NAME]'s stream set */
    size_t nkeys = 5 + (cfg->nupstreams > 0 ? cfg->nupstreams - 1 : 0);
    char **keys = xcalloc(nkeys, sizeof *keys);
    qview_stats_keys(pfx, keys);
    for (size_t u = 1; u < cfg->nupstreams; u++) {
        char *upfx = ops_upfx(cfg, u, pfx);
        struct buf b = BUF_INIT;
        buf_printf(&b, "%sqs", upfx);
        keys[4 + u] = buf_detach(&b, NULL);
        free(upfx);
    }
    const char *n = "10";
    redisReply *r = ops_eval(c, RSCRIPT_STATS, (int)nkeys, keys, 1, &n);
    for (size_t k = 0; k < nkeys; k++)
        free(keys[k]);
    free(keys);
    if (r == NULL)
        return 1;
    json_t *s = qview_stats_json(r, clock_wall_ms());
    freeReplyObject(r);
    if (s == NULL) {
        fprintf(stderr, "sesgate: redis: unexpected reply to the status script\n");
        return 1;
    }
    json_object_set_new(s, "rate", ops_rate_json(c, pfx));
    json_object_set_new(s, "upstreams", ops_upstreams_json(c, cfg, pfx));
    *idle =
        ops_jint(s, "depth") == 0 && ops_jint(s, "inflight") == 0 && ops_jint(s, "retrying") == 0;
    if (json) {
        ops_print_json(s);
    } else {
        printf("depth %lld\noldest_seconds %.1f\ninflight %lld\nretrying %lld\ndead_letters "
               "%lld\n",
               ops_jint(s, "depth"), json_real_value(json_object_get(s, "oldest_seconds")),
               ops_jint(s, "inflight"), ops_jint(s, "retrying"), ops_jint(s, "dead_letters"));
        const json_t *rl = json_object_get(s, "relays");
        printf("relays_queued %lld\nrelays_retrying %lld\nrelays_dead %lld\n",
               ops_jint(rl, "queued"), ops_jint(rl, "retrying"), ops_jint(rl, "dead"));
        const json_t *rate = json_object_get(s, "rate");
        static const char *const shown[4] = {"effective", "base", "sent_last_24h", "cut_rate"};
        for (int i = 0; i < 4; i++) {
            const json_t *v = json_object_get(rate, shown[i]);
            if (json_is_number(v))
                printf("rate_%s %g\n", shown[i], json_number_value(v));
        }
        const json_t *q = json_object_get(json_object_get(rate, "upstream"), "daily_quota");
        if (json_is_number(q))
            printf("daily_quota %g\n", json_number_value(q));
        if (json_is_integer(json_object_get(rate, "quota_left")))
            printf("quota_left %lld\n", ops_jint(rate, "quota_left"));
        size_t hi;
        const json_t *h;
        json_array_foreach(json_object_get(rate, "held"), hi, h)
        {
            printf("held %s for %.0f s\n", ops_jstr(h, "reason", "-"),
                   (double)(ops_jint(h, "until_ms") - clock_wall_ms()) / 1000.0);
        }
        /* with several upstreams, a line each (and its holds) */
        if (cfg->nupstreams > 1) {
            size_t ui;
            const json_t *uo;
            json_array_foreach(json_object_get(s, "upstreams"), ui, uo) ops_print_upstream(uo);
        }
        size_t k;
        const json_t *b;
        json_array_foreach(json_object_get(s, "recent"), k, b)
        {
            if (json_is_true(json_object_get(b, "expired")))
                printf("batch %s expired\n", ops_jstr(b, "batch_id", "-"));
            else {
                printf("batch %s %s %s %s total %lld sent %lld dead %lld cancelled %lld pending "
                       "%lld",
                       ops_jstr(b, "batch_id", "-"), ops_jstr(b, "created", "-"),
                       ops_jstr(b, "client", "-"), ops_jstr(b, "action", "-"), ops_jint(b, "total"),
                       ops_jint(b, "sent"), ops_jint(b, "dead"), ops_jint(b, "cancelled"),
                       ops_jint(b, "pending"));
                for (int e = 0; e < 6; e++)
                    printf(" %s %lld", ops_events[e], ops_jint(b, ops_events[e]));
                printf(" %s", ops_jstr(b, "state", "running"));
                if (json_is_true(json_object_get(b, "filling")))
                    printf(" filling %lld/%lld", ops_jint(b, "filled"), ops_jint(b, "total"));
                putchar('\n');
            }
            if (tty && !json_is_true(json_object_get(b, "expired")) && ops_jint(b, "pending") > 0) {
                double per_s, eta;
                ops_batch_pace(b, &per_s, &eta);
                fputs("  ", stdout);
                long long ev[6];
                for (int e = 0; e < 6; e++)
                    ev[e] = ops_jint(b, ops_events[e]);
                ops_print_bar(ops_jint(b, "sent") + ops_jint(b, "dead") + ops_jint(b, "cancelled") +
                                  ops_jint(b, "suppressed"),
                              ops_jint(b, "dead"), ops_jint(b, "total"), per_s, eta, ev);
            }
        }
    }
    json_decref(s);
    return 0;
}

/* sesgate status [--watch]: with --watch, again every second (redrawn on
 * a terminal, a block per second otherwise) until the queue is idle. */
static int ops_status(redisContext *c, const struct config *cfg, const char *pfx, int argc,
                      bool json, bool watch)
{
    if (argc != 0) {
        fprintf(stderr, "usage: sesgate status [-c FILE] [--json] [--watch]\n");
        return 2;
    }
    bool tty = isatty(STDOUT_FILENO);
    for (;;) {
        bool idle = true;
        if (watch && tty)
            fputs("\033[H\033[2J", stdout);
        int rc = ops_status_once(c, cfg, pfx, json, tty, &idle);
        fflush(stdout);
        if (rc != 0 || !watch || idle)
            return rc;
        if (!tty)
            putchar('\n');
        sleep(1);
    }
}

/* Public: run an operator command. */
int ops_run(const char *cmd, const struct config *cfg, int argc, char **argv, bool json, bool watch)
{
    redisContext *c = ops_redis(cfg);
    if (c == NULL)
        return 1;
    char *pfx = rscript_prefix(cfg);
    int rc;
    if (strcmp(cmd, "batch") == 0)
        rc = ops_batch(c, cfg, pfx, argc, argv, json, watch);
    else if (strcmp(cmd, "dlq") == 0)
        rc = ops_dlq(c, pfx, argc, argv, json);
    else if (strcmp(cmd, "relay") == 0)
        rc = ops_relay(c, pfx, argc, argv, json);
    else
        rc = ops_status(c, cfg, pfx, argc, json, watch);
    free(pfx);
    redisFree(c);
    return rc;
}
