/* admin: /healthz, /readyz, /metrics, /batches/{id} and POST
 * /batches/{id}/pause|resume|cancel on the operator's listener. */
#include "admin.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "buf.h"
#include "clock.h"
#include "httpd.h"
#include "metrics.h"
#include "qview.h"
#include "reply.h"
#include "rscript.h"
#include "seserr.h"
#include "form.h"
#include "suplist.h"
#include "suppress.h"

#define ADMIN_POLL_MS      2000 /* queue gauges refresh period */
#define ADMIN_CONTROL_STEP 5000 /* held units one control.lua call moves or cancels */
/* bytes: the largest body (POST /suppression, an import of about a million
 * addresses) */
#define ADMIN_MAX_BODY (64u << 20)

/* The queue gauges' Redis poll; outlives the admin while a reply is due. */
struct admin_poll {
    bool inflight; /* a stats script awaits its reply */
    bool orphan;   /* the admin is gone: free on the reply */
};

/* A GET /batches/{id} waiting for Redis: show.lua a page at a time. */
struct admin_show {
    struct httpd_request *req; /* NULL once the client went away */
    char id[37];
    long long index; /* one copy of the batch, or -1 */
    struct rscript *scripts;
    char *keys[QVIEW_SHOW_KEYS];
    redisReply **pages; /* copies of the pages so far */
    size_t npages;
    long long next;   /* the next page's first index */
    long long total;  /* the batch's, from the first page (-1: not yet) */
    char cursor[32];  /* the delay set's scan: "-" once done */
    char ecursor[32]; /* the delivery states' scan: "-" once done */
};

/* A POST /batches/{id}/CMD in progress: control.lua, called again while
 * held units are left (resume, cancel). Runs to its end even when the
 * client goes away. */
struct admin_ctl {
    struct httpd_request *req; /* NULL once the client went away */
    struct rscript *scripts;
    char id[40];
    char cmd[8];
    char *keys[2];
    char ttl[24];
    long long in_flight; /* from the call that set the state; -1 before */
};

static void admin_show_next(struct admin_show *sh);

/* Free sh. */
static void admin_show_free(struct admin_show *sh)
{
    for (size_t p = 0; p < sh->npages; p++)
        reply_free(sh->pages[p]);
    free(sh->pages);
    for (int k = 0; k < QVIEW_SHOW_KEYS; k++)
        free(sh->keys[k]);
    free(sh);
}

struct admin {
    struct httpd *httpd;
    int64_t status_ttl_ms;
    const struct upstream *up;
    struct rscript *scripts;  /* NULL: no Redis */
    struct redis *rd;         /* the scripts' connection; NULL: no Redis to wait for */
    char *pfx;                /* the queue's key prefix */
    const struct config *cfg; /* its upstreams: every one's queue streams count */
    bool sync_ses;            /* [suppression] sync_ses: changes are noted for the SES mirror */
    struct event *poll_timer;
    struct admin_poll *poll;
};

/* True when the request's path (query ignored) is exactly path. */
static bool admin_path_is(const struct httpd_request *req, const char *path)
{
    return req->path_len == strlen(path) && memcmp(req->path, path, req->path_len) == 0;
}

/* Answer with a plain-text body. */
static void admin_text(struct httpd_request *req, int status, const char *ctype, const char *body,
                       size_t len)
{
    struct httpd_header h[1] = {{"Content-Type", ctype}};
    httpd_respond(req, status, h, 1, body, len);
}

/* Answer with a JSON body. */
static void admin_json(struct httpd_request *req, int status, const char *body)
{
    admin_text(req, status, "application/json", body, strlen(body));
}

/* httpd: the client of a pending batch view went away. */
static void admin_show_abort(struct httpd_request *req, void *arg)
{
    struct admin_show *sh = arg;
    sh->req = NULL;
}

/* Redis answered a page of a batch view: ask for the next, or answer. */
static void admin_show_reply(const redisReply *reply, const char *err, void *arg)
{
    struct admin_show *sh = arg;
    if (sh->req == NULL) {
        admin_show_free(sh);
        return;
    }
    if (err == NULL && reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 7 &&
        reply->element[2]->type == REDIS_REPLY_ARRAY &&
        reply->element[4]->type == REDIS_REPLY_STRING &&
        reply->element[6]->type == REDIS_REPLY_STRING) {
        sh->pages = xrealloc(sh->pages, (sh->npages + 1) * sizeof *sh->pages);
        sh->pages[sh->npages++] = reply_copy(reply);
        if (sh->total < 0)
            sh->total = (long long)reply_num(reply_field(reply->element[0], "total"), 0);
        sh->next += QVIEW_SHOW_PAGE;
        if (strcmp(sh->cursor, "-") != 0)
            snprintf(sh->cursor, sizeof sh->cursor, "%s",
                     strcmp(reply->element[4]->str, "0") == 0 ? "-" : reply->element[4]->str);
        if (strcmp(sh->ecursor, "-") != 0)
            snprintf(sh->ecursor, sizeof sh->ecursor, "%s",
                     strcmp(reply->element[6]->str, "0") == 0 ? "-" : reply->element[6]->str);
        if (sh->next < sh->total || strcmp(sh->cursor, "-") != 0 || strcmp(sh->ecursor, "-") != 0) {
            admin_show_next(sh);
            return;
        }
    }
    struct httpd_request *req = sh->req;
    httpd_set_abort(req, NULL, NULL);
    if (err) {
        json_t *e = json_pack("{s:s}", "message", "redis unavailable");
        char *body = e ? json_dumps(e, JSON_COMPACT) : NULL;
        admin_json(req, 503, body ? body : "{\"message\":\"redis unavailable\"}");
        free(body);
        json_decref(e);
        admin_show_free(sh);
        return;
    }
    json_t *b = qview_show_pages(sh->id, sh->pages, sh->npages);
    if (b == NULL) {
        admin_json(req, 404, "{\"message\":\"batch not found\"}");
    } else {
        if (sh->index >= 0)
            qview_show_only(b, sh->index);
        char *body = json_dumps(b, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (body == NULL)
            abort();
        admin_json(req, 200, body);
        free(body);
        json_decref(b);
    }
    admin_show_free(sh);
}

/* Ask for sh's next page. */
static void admin_show_next(struct admin_show *sh)
{
    char first[24], count[24];
    snprintf(first, sizeof first, "%lld", sh->next);
    snprintf(count, sizeof count, "%d",
             sh->total < 0 || sh->next < sh->total ? QVIEW_SHOW_PAGE : 0);
    const char *argv[12] = {sh->keys[0], sh->keys[1],     sh->keys[2], sh->keys[3],
                            sh->keys[4], sh->id,          first,       count,
                            sh->cursor,  QVIEW_SHOW_SCAN, sh->ecursor, QVIEW_SHOW_STATES};
    rscript_eval(sh->scripts, RSCRIPT_SHOW, QVIEW_SHOW_KEYS, 12, argv, NULL, admin_show_reply, sh);
}

/* GET /batches/{id}: the batch status from Redis. */
static void admin_batch(struct admin *a, struct httpd_request *req)
{
    size_t n = req->path_len - strlen("/batches/");
    const char *p = req->path + strlen("/batches/");
    char id[37] = "";
    long long index = -1;
    if (!qview_batch_ref(p, n, id, &index)) {
        admin_json(req, 400, "{\"message\":\"malformed batch id\"}");
        return;
    }
    if (a->rd == NULL) {
        admin_json(req, 404, "{\"message\":\"batch not found\"}");
        return;
    }
    struct admin_show *sh = xcalloc(1, sizeof *sh);
    sh->req = req;
    sh->index = index;
    memcpy(sh->id, id, sizeof id);
    httpd_set_abort(req, admin_show_abort, sh);
    sh->scripts = a->scripts;
    qview_show_keys(a->pfx, id, sh->keys);
    snprintf(sh->cursor, sizeof sh->cursor, "0");
    snprintf(sh->ecursor, sizeof sh->ecursor, "0");
    sh->total = -1;
    admin_show_next(sh);
}

/* httpd: the client of a pending control call went away. */
static void admin_ctl_abort(struct httpd_request *req, void *arg)
{
    struct admin_ctl *c = arg;
    c->req = NULL;
}

/* Answer c's client (if still there) with status and a {"message"} body. */
static void admin_ctl_error(struct admin_ctl *c, int status, const char *message)
{
    if (c->req == NULL)
        return;
    json_t *e = json_pack("{s:s}", "message", message);
    char *body = e ? json_dumps(e, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    if (body == NULL)
        abort();
    httpd_set_abort(c->req, NULL, NULL);
    admin_json(c->req, status, body);
    free(body);
    json_decref(e);
}

/* Release c. */
static void admin_ctl_free(struct admin_ctl *c)
{
    free(c->keys[0]);
    free(c->keys[1]);
    free(c);
}

static void admin_ctl_call(struct admin_ctl *c, bool more);

/* control.lua answered. */
static void admin_ctl_reply(const redisReply *reply, const char *err, void *arg)
{
    struct admin_ctl *c = arg;
    if (err) {
        /* "CODE text": the text of a refusal says what the batch is */
        const char *sp = strchr(err, ' ');
        int status = qview_control_status(err);
        admin_ctl_error(c, status,
                        status == 404   ? "batch not found"
                        : status == 409 ? (sp ? sp + 1 : err)
                                        : "redis unavailable");
        admin_ctl_free(c);
        return;
    }
    json_t *o = qview_control_json(c->id, reply, c->in_flight);
    if (o == NULL) {
        admin_ctl_error(c, 503, "unexpected reply from redis");
        admin_ctl_free(c);
        return;
    }
    if (c->in_flight < 0)
        c->in_flight = (long long)json_integer_value(json_object_get(o, "in_flight"));
    const char *state = json_string_value(json_object_get(o, "state"));
    const char *want = strcmp(c->cmd, "resume") == 0 ? "running" : "cancelled";
    if (strcmp(c->cmd, "pause") != 0 && json_integer_value(json_object_get(o, "held")) > 0 &&
        state && strcmp(state, want) == 0) {
        json_decref(o);
        admin_ctl_call(c, true);
        return;
    }
    if (c->req) {
        char *body = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (body == NULL)
            abort();
        httpd_set_abort(c->req, NULL, NULL);
        admin_json(c->req, 200, body);
        free(body);
    }
    json_decref(o);
    admin_ctl_free(c);
}

/* Run one step of c's command (more: a later step). */
static void admin_ctl_call(struct admin_ctl *c, bool more)
{
    char step[24];
    snprintf(step, sizeof step, "%d", ADMIN_CONTROL_STEP);
    const char *argv[6] = {c->keys[0], c->keys[1], c->cmd, c->ttl, step, "more"};
    rscript_eval(c->scripts, RSCRIPT_CONTROL, 2, more ? 6 : 5, argv, NULL, admin_ctl_reply, c);
}

/* POST /batches/{id}/pause|resume|cancel: the batch's state, then its
 * answer {"batch", "state", "in_flight", "held"}; 404 for an unknown
 * batch, 409 when the batch is cancelled or complete. */
static void admin_batch_control(struct admin *a, struct httpd_request *req)
{
    const char *p = req->path + strlen("/batches/");
    size_t n = req->path_len - strlen("/batches/");
    const char *slash = memchr(p, '/', n);
    size_t idlen = slash ? (size_t)(slash - p) : n;
    const char *cmd = slash ? slash + 1 : "";
    size_t cmdlen = slash ? n - idlen - 1 : 0;
    bool known = (cmdlen == 5 && memcmp(cmd, "pause", 5) == 0) ||
                 (cmdlen == 6 && memcmp(cmd, "resume", 6) == 0) ||
                 (cmdlen == 6 && memcmp(cmd, "cancel", 6) == 0);
    if (!known) {
        admin_text(req, 404, "text/plain", "not found\n", 10);
        return;
    }
    char id[40] = "";
    if (idlen < sizeof id) {
        memcpy(id, p, idlen);
        id[idlen] = '\0';
    }
    if (idlen >= sizeof id || !qview_batch_id_ok(id)) {
        admin_json(req, 400, "{\"message\":\"malformed batch id\"}");
        return;
    }
    if (a->rd == NULL) {
        admin_json(req, 404, "{\"message\":\"batch not found\"}");
        return;
    }
    struct admin_ctl *c = xcalloc(1, sizeof *c);
    c->req = req;
    c->scripts = a->scripts;
    memcpy(c->id, id, idlen + 1);
    memcpy(c->cmd, cmd, cmdlen);
    c->cmd[cmdlen] = '\0';
    qview_control_keys(a->pfx, id, c->keys);
    snprintf(c->ttl, sizeof c->ttl, "%lld", (long long)a->status_ttl_ms);
    c->in_flight = -1;
    httpd_set_abort(req, admin_ctl_abort, c);
    admin_ctl_call(c, false);
}

/* ---- /suppression: the suppression list (docs/SUPPRESSION.md) ---- */

/* Answer with an SES error (v2's shape: JSON, x-amzn-ErrorType). */
static void admin_ses_error(struct httpd_request *req, enum seserr_code code, const char *message)
{
    struct seserr e;
    seserr_set(&e, code, "%s", message);
    struct buf body = BUF_INIT;
    const char *ctype, *etype;
    static unsigned long long admin_seq;
    char id[48];
    snprintf(id, sizeof id, "sesgate-admin-%lld-%llu", (long long)clock_wall_ms(), ++admin_seq);
    int status = seserr_render(&e, 2, id, &body, &ctype, &etype);
    struct httpd_header h[3] = {{"Content-Type", ctype}, {"x-amzn-RequestId", id}};
    size_t nh = 2;
    if (etype)
        h[nh++] = (struct httpd_header){"x-amzn-ErrorType", etype};
    httpd_respond(req, status, h, nh, body.data, body.len);
    buf_free(&body);
}

/* Answer 200 with o (its reference is taken). */
static void admin_json_obj(struct httpd_request *req, json_t *o)
{
    char *body = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    if (body == NULL)
        abort();
    admin_json(req, 200, body);
    free(body);
}

/* One /suppression request waiting for Redis. */
struct admin_sup {
    struct httpd_request *req; /* NULL once the client went away */
    char op;                   /* 'l' list page, 'g' get, 'p' put, 'd' delete, 'i' import */
    char key[SUPLIST_MAX_KEY + 1];
    struct buf value; /* put: the value written */
    size_t pending;   /* import: HSETs not answered yet */
    size_t imported;  /* import: entries written */
    bool failed;      /* import: Redis refused a step */
    json_t *invalid;  /* import: the first 1,000 lines refused */
    size_t ninvalid;  /* import: every line refused */
};

static void admin_sup_free(struct admin_sup *s)
{
    buf_free(&s->value);
    json_decref(s->invalid);
    free(s);
}

/* httpd: the client of a pending /suppression request went away. */
static void admin_sup_abort(struct httpd_request *req, void *arg)
{
    struct admin_sup *s = arg;
    s->req = NULL;
}

/* Redis answered a /suppression command. */
static void admin_sup_reply(const redisReply *reply, const char *err, void *arg)
{
    struct admin_sup *s = arg;
    if (s->op == 'i') {
        s->failed |= err != NULL;
        if (--s->pending > 0)
            return;
    }
    struct httpd_request *req = s->req;
    if (req == NULL) {
        admin_sup_free(s);
        return;
    }
    httpd_set_abort(req, NULL, NULL);
    if (err != NULL || s->failed) {
        admin_ses_error(req, SESERR_UNAVAILABLE,
                        s->op == 'i' ? "Redis refused a step of the import; the entries before "
                                       "it were written."
                                     : "The suppression list is unavailable.");
        admin_sup_free(s);
        return;
    }
    json_t *o = NULL;
    if (s->op == 'l') {
        o = json_object();
        json_t *entries = json_array();
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2) {
            const redisReply *kv = reply->element[1];
            for (size_t k = 0; k + 1 < kv->elements; k += 2)
                json_array_append_new(
                    entries, suplist_json(kv->element[k]->str, kv->element[k]->len,
                                          kv->element[k + 1]->str, kv->element[k + 1]->len));
            json_object_set_new(o, "cursor", json_string(reply->element[0]->str));
        }
        json_object_set_new(o, "entries", entries);
    } else if (s->op == 'g' && reply->type != REDIS_REPLY_STRING) {
        admin_ses_error(req, SESERR_NO_SUCH_ENTITY, "The address is not on the suppression list.");
    } else if (s->op == 'g') {
        o = suplist_json(s->key, strlen(s->key), reply->str, reply->len);
    } else if (s->op == 'p') {
        o = suplist_json(s->key, strlen(s->key), s->value.data, s->value.len);
        json_object_set_new(o, "new", json_boolean(reply->integer == 1));
    } else if (s->op == 'd' && reply->integer != 1) {
        admin_ses_error(req, SESERR_NO_SUCH_ENTITY, "The address is not on the suppression list.");
    } else if (s->op == 'd') {
        o = json_pack("{sssb}", "address", s->key, "removed", 1);
    } else {
        o = json_pack("{sIsIsO}", "imported", (json_int_t)s->imported, "invalid_lines",
                      (json_int_t)s->ninvalid, "invalid", s->invalid);
    }
    if (o != NULL)
        admin_json_obj(req, o);
    admin_sup_free(s);
}

/* Run sup.lua (op "put" or "del") with the n arguments after op for s. */
static void admin_sup_eval(struct admin *a, struct admin_sup *s, const char *op, size_t n,
                           const char *const *args)
{
    char *ksup = rscript_key(a->scripts, "sup", NULL), *kss = rscript_key(a->scripts, "ss", NULL);
    int nkeys = a->sync_ses ? 2 : 1;
    const char **argv = xcalloc((size_t)nkeys + 1 + n, sizeof *argv);
    argv[0] = ksup;
    argv[1] = kss;
    argv[nkeys] = op;
    memcpy(argv + nkeys + 1, args, n * sizeof *args);
    rscript_eval(a->scripts, RSCRIPT_SUP, nkeys, (int)((size_t)nkeys + 1 + n), argv, NULL,
                 admin_sup_reply, s);
    free(argv);
    free(ksup);
    free(kss);
}

/* POST /suppression: the body's lines (an address, or CSV address,reason)
 * written SUPPRESS_CHUNK entries per sup.lua call, each its own Redis
 * command. */
static void admin_sup_import(struct admin *a, struct admin_sup *s)
{
    struct httpd_request *req = s->req;
    const char *p = req->body.data ? req->body.data : "", *end = p + req->body.len;
    const char **argv = xcalloc(2 + 2 * SUPPRESS_CHUNK, sizeof *argv);
    struct buf text = BUF_INIT; /* the chunk's fields and values, NUL-separated */
    size_t *offs = xcalloc(2 * SUPPRESS_CHUNK, sizeof *offs), n = 0, lineno = 0;
    int64_t now = clock_wall_ms();
    s->invalid = json_array();
    s->pending = 1; /* held until every step was sent */
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        lineno++;
        char key[SUPLIST_MAX_KEY + 1];
        const char *reason = NULL, *why = NULL;
        enum suplist_line l = suplist_import_line(p, len, lineno == 1, NULL, key, &reason, &why);
        p += len + (nl ? 1 : 0);
        if (l == SUPLIST_LINE_SKIP)
            continue;
        if (l == SUPLIST_LINE_BAD) {
            if (s->ninvalid++ < 1000)
                json_array_append_new(
                    s->invalid, json_pack("{sIss}", "line", (json_int_t)lineno, "reason", why));
            continue;
        }
        offs[2 * n] = text.len;
        buf_add(&text, key, strlen(key) + 1);
        offs[2 * n + 1] = text.len;
        suplist_value(reason, now, "admin", &text);
        buf_addc(&text, '\0');
        n++;
        s->imported++;
        if (n == SUPPRESS_CHUNK || (p >= end && n > 0)) {
            for (size_t k = 0; k < 2 * n; k++)
                argv[k] = text.data + offs[k];
            s->pending++;
            admin_sup_eval(a, s, "put", 2 * n, argv);
            n = 0;
            buf_reset(&text);
        }
    }
    free(argv);
    free(offs);
    buf_free(&text);
    admin_sup_reply(NULL, NULL, s); /* the hold: answers once every step did */
}

/* GET /suppression[?cursor=C], GET|PUT|DELETE /suppression/{address},
 * POST /suppression. */
static void admin_suppression(struct admin *a, struct httpd_request *req)
{
    bool one = req->path_len > strlen("/suppression/");
    const char *m = req->method;
    bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
    if ((!one && !get && strcmp(m, "POST") != 0) ||
        (one && !get && strcmp(m, "PUT") != 0 && strcmp(m, "DELETE") != 0)) {
        admin_text(req, 405, "text/plain", "method not allowed\n", 19);
        return;
    }
    if (a->rd == NULL) {
        admin_ses_error(req, SESERR_UNAVAILABLE, "The suppression list needs Redis.");
        return;
    }
    struct admin_sup *s = xcalloc(1, sizeof *s);
    s->req = req;
    char *ksup = rscript_key(a->scripts, "sup", NULL);
    if (one) {
        struct buf addr = BUF_INIT;
        const char *why = "Illegal address";
        const char *enc = req->path + strlen("/suppression/");
        size_t enclen = req->path_len - strlen("/suppression/");
        if (form_decode(enc, enclen, false, &addr) != 0 ||
            suplist_key(buf_cstr(&addr), addr.len, s->key, &why) < 0) {
            buf_free(&addr);
            free(ksup);
            free(s);
            admin_ses_error(req, SESERR_INVALID_PARAMETER, why);
            return;
        }
        buf_free(&addr);
    }
    httpd_set_abort(req, admin_sup_abort, s);
    if (!one && !get) {
        s->op = 'i';
        admin_sup_import(a, s);
    } else if (!one) {
        char cursor[24] = "0";
        if (req->query && req->query_len > 7 && memcmp(req->query, "cursor=", 7) == 0 &&
            req->query_len - 7 < sizeof cursor &&
            strspn(req->query + 7, "0123456789") >= req->query_len - 7) {
            memcpy(cursor, req->query + 7, req->query_len - 7);
            cursor[req->query_len - 7] = '\0';
        }
        s->op = 'l';
        redis_command(a->rd, admin_sup_reply, s, "HSCAN %s %s COUNT 1000", ksup, cursor);
    } else if (get) {
        s->op = 'g';
        redis_command(a->rd, admin_sup_reply, s, "HGET %s %s", ksup, s->key);
    } else if (strcmp(m, "DELETE") == 0) {
        s->op = 'd';
        const char *args[1] = {s->key};
        admin_sup_eval(a, s, "del", 1, args);
    } else {
        /* PUT: an optional JSON body {"reason": "BOUNCE"} */
        const char *reason = NULL;
        json_t *body = NULL;
        if (req->body.len > 0) {
            body = json_loadb(req->body.data, req->body.len, 0, NULL);
            json_t *r = json_object_get(body, "reason");
            if (!json_is_object(body) || (r != NULL && !json_is_string(r))) {
                json_decref(body);
                httpd_set_abort(req, NULL, NULL);
                free(ksup);
                admin_sup_free(s);
                admin_ses_error(req, SESERR_BAD_REQUEST, "The body is not {\"reason\": ...}.");
                return;
            }
            reason = json_string_value(r);
        }
        const char *canon = suplist_reason(reason);
        json_decref(body); /* reason is not used past here but as canon */
        if (canon == NULL) {
            httpd_set_abort(req, NULL, NULL);
            free(ksup);
            admin_sup_free(s);
            admin_ses_error(req, SESERR_INVALID_PARAMETER,
                            "Reason is none of BOUNCE, COMPLAINT, TRANSIENT, MANUAL.");
            return;
        }
        s->op = 'p';
        suplist_value(canon, clock_wall_ms(), "admin", &s->value);
        const char *args[2] = {s->key, buf_cstr(&s->value)};
        admin_sup_eval(a, s, "put", 2, args);
    }
    free(ksup);
}

/* Redis answered the queue stats: update the gauges. */
static void admin_poll_reply(const redisReply *reply, const char *err, void *arg)
{
    struct admin_poll *p = arg;
    p->inflight = false;
    if (p->orphan) {
        free(p);
        return;
    }
    if (err)
        return;
    json_t *s = qview_stats_json(reply, clock_wall_ms());
    if (s == NULL)
        return;
    metrics_queue_gauges((long long)json_integer_value(json_object_get(s, "depth")),
                         json_real_value(json_object_get(s, "oldest_seconds")),
                         (long long)json_integer_value(json_object_get(s, "inflight")),
                         (long long)json_integer_value(json_object_get(s, "retrying")),
                         (long long)json_integer_value(json_object_get(s, "dead_letters")));
    const json_t *rl = json_object_get(s, "relays");
    metrics_relay_gauges((long long)json_integer_value(json_object_get(rl, "queued")),
                         (long long)json_integer_value(json_object_get(rl, "retrying")),
                         (long long)json_integer_value(json_object_get(rl, "dead")));
    json_decref(s);
}

/* Every 2 s: read the queue gauges from Redis (one at a time). */
static void admin_poll_cb(evutil_socket_t fd, short what, void *arg)
{
    struct admin *a = arg;
    if (a->poll->inflight || !redis_ready(a->rd))
        return;
    char *keys[5];
    qview_stats_keys(a->pfx, keys);
    /* every [upstream.NAME]'s streams count too (KEYS[6..]) */
    size_t nu = a->cfg->nupstreams > 0 ? a->cfg->nupstreams - 1 : 0;
    const char **argv = xcalloc(6 + nu, sizeof *argv);
    char **ukeys = xcalloc(nu ? nu : 1, sizeof *ukeys);
    for (int k = 0; k < 5; k++)
        argv[k] = keys[k];
    for (size_t u = 0; u < nu; u++) {
        ukeys[u] = rscript_ukey(a->scripts, a->cfg->upstreams[u + 1].name, "qs", NULL);
        argv[5 + u] = ukeys[u];
    }
    argv[5 + nu] = "0";
    a->poll->inflight = true;
    rscript_eval(a->scripts, RSCRIPT_STATS, (int)(5 + nu), (int)(6 + nu), argv, NULL,
                 admin_poll_reply, a->poll);
    for (int k = 0; k < 5; k++)
        free(keys[k]);
    for (size_t u = 0; u < nu; u++)
        free(ukeys[u]);
    free(ukeys);
    free(argv);
}

/* httpd: route an admin request. */
static void admin_handle(struct httpd_request *req, void *arg)
{
    struct admin *a = arg;
    bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    bool under_batches = req->path_len > strlen("/batches/") &&
                         memcmp(req->path, "/batches/", strlen("/batches/")) == 0;
    bool control = under_batches && memchr(req->path + strlen("/batches/"), '/',
                                           req->path_len - strlen("/batches/")) != NULL;
    if (admin_path_is(req, "/suppression") ||
        (req->path_len > strlen("/suppression/") &&
         memcmp(req->path, "/suppression/", strlen("/suppression/")) == 0)) {
        admin_suppression(a, req);
        return;
    }
    if (control) {
        if (strcmp(req->method, "POST") != 0)
            admin_text(req, 405, "text/plain", "method not allowed\n", 19);
        else
            admin_batch_control(a, req);
        return;
    }
    if (!get) {
        admin_text(req, 405, "text/plain", "method not allowed\n", 19);
        return;
    }
    if (admin_path_is(req, "/healthz")) {
        admin_text(req, 200, "text/plain", "ok\n", 3);
    } else if (admin_path_is(req, "/readyz")) {
        struct buf b = BUF_INIT;
        if (!upstream_healthy(a->up))
            buf_adds(&b, "upstream unreachable\n");
        if (a->rd && !redis_ready(a->rd))
            buf_adds(&b, "redis unreachable\n");
        if (b.len == 0)
            admin_text(req, 200, "text/plain", "ready\n", 6);
        else
            admin_text(req, 503, "text/plain", b.data, b.len);
        buf_free(&b);
    } else if (admin_path_is(req, "/metrics")) {
        struct buf b = BUF_INIT;
        metrics_render(&b);
        if (a->rd)
            buf_printf(&b,
                       "# HELP sesgate_redis_up Whether Redis answers (1) or not (0).\n"
                       "# TYPE sesgate_redis_up gauge\nsesgate_redis_up %d\n",
                       redis_ready(a->rd) ? 1 : 0);
        admin_text(req, 200, "text/plain; version=0.0.4", b.data, b.len);
        buf_free(&b);
    } else if (under_batches) {
        admin_batch(a, req);
    } else {
        admin_text(req, 404, "text/plain", "not found\n", 10);
    }
}

/* httpd: a request broke a limit. */
static void admin_reject(struct httpd_request *req, enum httpd_reject why, void *arg)
{
    admin_text(req, why == HTTPD_REJECT_TOO_LARGE ? 413 : 400, "text/plain", "bad request\n", 12);
}

struct admin *admin_new(struct event_base *base, const struct config *cfg,
                        const struct upstream *up, struct rscript *scripts, char *err,
                        size_t errlen)
{
    struct admin *a = xcalloc(1, sizeof *a);
    a->up = up;
    a->status_ttl_ms = cfg->status_ttl_ms;
    a->scripts = scripts;
    a->rd = scripts ? rscript_redis(scripts) : NULL;
    a->pfx = rscript_prefix(cfg);
    a->cfg = cfg;
    a->sync_ses = cfg->suppress_sync_ses;
    struct httpd_limits lim = {
        .max_header_size = 16384,
        .max_headers = 64,
        .max_body = ADMIN_MAX_BODY,
        .read_timeout_ms = 10000,
        .idle_timeout_ms = 60000,
        .max_connections = 256,
    };
    a->httpd = httpd_new(base, cfg->admin_listen, &lim, admin_handle, admin_reject, a, err, errlen);
    if (a->httpd == NULL) {
        free(a->pfx);
        free(a);
        return NULL;
    }
    httpd_set_internal(a->httpd);
    if (a->rd) {
        a->poll = xcalloc(1, sizeof *a->poll);
        a->poll_timer = event_new(base, -1, EV_PERSIST, admin_poll_cb, a);
        struct timeval tv = clock_timeval(ADMIN_POLL_MS);
        event_add(a->poll_timer, &tv);
    }
    return a;
}

void admin_free(struct admin *a)
{
    if (a == NULL)
        return;
    httpd_free(a->httpd);
    if (a->poll_timer)
        event_free(a->poll_timer);
    if (a->poll && a->poll->inflight)
        a->poll->orphan = true;
    else
        free(a->poll);
    free(a->pfx);
    free(a);
}
