/* sandbox: the built-in SES (upstream.endpoint = sandbox). */
#include "sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "buf.h"
#include "clock.h"
#include "form.h"
#include "httpd.h"
#include "log.h"
#include "reqcheck.h"
#include "sandbox_sns.h"
#include "sesbulk.h"
#include "sesmail.h"
#include "sesreq.h"
#include "seserr.h"
#include "sigv4.h"
#include "util.h"

#define SANDBOX_XMLNS  "http://ses.amazonaws.com/doc/2010-12-01/"
#define SANDBOX_DAY_MS (24LL * 3600 * 1000)
/* Buckets of GetSendStatistics, as SES reports them. */
#define SANDBOX_STATS_BUCKET_MS (15LL * 60 * 1000)
/* Longest template or identity name accepted. */
#define SANDBOX_MAX_NAME 320

/* What one accepted send counted for. */
struct sandbox_entry {
    int64_t ms;         /* accepted at, UTC ms */
    int64_t recipients; /* every recipient: counts against the rate */
    int64_t quota;      /* recipients counted against the daily quota (not the simulator's) */
    int64_t bounces;
    int64_t complaints;
};

struct sandbox {
    struct event_base *base;
    const struct config *cfg;
    struct httpd *httpd;
    struct sandbox_sns *sns; /* [sandbox] events: the SNS publisher; NULL when off */
    char endpoint[64];
    char access_key_id[24];
    char secret[41]; /* a secret: never logged, never written */
    struct sigv4_key_cache key;
    char domain[96];  /* Message-ID domain */
    char *outbox;     /* <data_dir>/outbox */
    char *templates;  /* <data_dir>/sandbox/templates */
    char *identities; /* <data_dir>/sandbox/identities */
    /* Accepted sends of the last 24 h in minute buckets, oldest first (ms:
     * the bucket's first send): live entries are log[head .. n). */
    struct sandbox_entry *log;
    size_t head, n, cap;
    int64_t day_quota; /* the sum of the live buckets' quota */
    /* Accepted sends of the current rate window, one each, oldest first:
     * live entries are recent[rhead .. rn). */
    struct sandbox_entry *recent;
    size_t rhead, rn, rcap;
};

#define SANDBOX_BUCKET_MS 60000LL

/* One request being answered. */
struct sandbox_req {
    struct sandbox *sb;
    struct httpd_request *hr;
    enum sesreq_api api;
    size_t v2_off;
    char id[37];
    char payload_hash[UTIL_SHA256_HEX_LEN + 1];
    struct sesreq sr;
};

/* Fill n bytes with random bytes (OpenSSL's generator; aborts when it fails). */
static void sandbox_random(unsigned char *p, size_t n)
{
    if (RAND_bytes(p, (int)n) != 1)
        abort();
}

/* Send an answer with the request id header and optional error type;
 * frees the request context. */
static void sandbox_send_answer(struct sandbox_req *q, int status, const char *ctype,
                                const char *etype, const struct buf *body)
{
    struct httpd_header h[3];
    size_t nh = 0;
    h[nh++] = (struct httpd_header){"Content-Type", ctype};
    h[nh++] = (struct httpd_header){"x-amzn-RequestId", q->id};
    if (etype)
        h[nh++] = (struct httpd_header){"x-amzn-ErrorType", etype};
    httpd_respond(q->hr, status, h, nh, body->data ? body->data : "", body->len);
    sesreq_cleanup(&q->sr);
    free(q);
}

/* Answer with an SES error from the seserr table. */
static void sandbox_fail(struct sandbox_req *q, const struct seserr *e)
{
    struct buf body = BUF_INIT;
    const char *ctype, *etype;
    int status = seserr_render(e, (int)q->api, q->id, &body, &ctype, &etype);
    sandbox_send_answer(q, status, ctype, etype, &body);
    buf_free(&body);
}

/* Answer with an SES error the seserr table does not hold (TemplateDoesNotExist,
 * AlreadyExists, NotFoundException...), shaped as SES shapes it. */
static void sandbox_fail_code(struct sandbox_req *q, int v1_status, const char *v1_code,
                              int v2_status, const char *v2_code, const char *message)
{
    struct buf body = BUF_INIT;
    if (q->api == SESREQ_V2) {
        json_t *j = json_pack("{s:s}", "message", message);
        char *s = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        if (s == NULL)
            abort();
        buf_adds(&body, s);
        free(s);
        sandbox_send_answer(q, v2_status, "application/json", v2_code, &body);
    } else {
        buf_adds(&body, "<ErrorResponse xmlns=\"" SANDBOX_XMLNS "\">\n  <Error>\n"
                        "    <Type>Sender</Type>\n    <Code>");
        seserr_xml_escape(&body, v1_code);
        buf_adds(&body, "</Code>\n    <Message>");
        seserr_xml_escape(&body, message);
        buf_printf(&body, "</Message>\n  </Error>\n  <RequestId>%s</RequestId>\n</ErrorResponse>\n",
                   q->id);
        sandbox_send_answer(q, v1_status, "text/xml", NULL, &body);
    }
    buf_free(&body);
}

/* Answer a v1 action: result NULL gives no Result element, "" an empty one. */
static void sandbox_ok_v1(struct sandbox_req *q, const char *result)
{
    const char *a = q->sr.action;
    struct buf body = BUF_INIT;
    buf_printf(&body, "<%sResponse xmlns=\"%s\">\n", a, SANDBOX_XMLNS);
    if (result && result[0])
        buf_printf(&body, "  <%sResult>\n%s  </%sResult>\n", a, result, a);
    else if (result)
        buf_printf(&body, "  <%sResult/>\n", a);
    buf_printf(&body,
               "  <ResponseMetadata>\n    <RequestId>%s</RequestId>\n  </ResponseMetadata>\n"
               "</%sResponse>\n",
               q->id, a);
    sandbox_send_answer(q, 200, "text/xml", NULL, &body);
    buf_free(&body);
}

/* Answer a v2 operation with the JSON j (reference taken). */
static void sandbox_ok_v2(struct sandbox_req *q, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (s == NULL)
        abort();
    struct buf body = BUF_INIT;
    buf_adds(&body, s);
    free(s);
    sandbox_send_answer(q, 200, "application/json", NULL, &body);
    buf_free(&body);
}

/* Make dir and its missing parents (mode 0755). Returns 0 or -1 (errno). */
static int sandbox_mkdirs(const char *dir)
{
    char *p = xstrdup(dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST) {
            free(p);
            return -1;
        }
        *s = '/';
    }
    int rc = mkdir(p, 0755) < 0 && errno != EEXIST ? -1 : 0;
    free(p);
    return rc;
}

/* Write data to a temporary name in dir and give it name (rename, or link
 * when exclusive: then an existing name fails with EEXIST). Returns 0 or -1
 * (errno set). */
static int sandbox_write_file(const char *dir, const char *name, const char *data, size_t len,
                              bool exclusive)
{
    unsigned char rnd[8];
    char hex[17];
    sandbox_random(rnd, sizeof rnd);
    util_hex(rnd, sizeof rnd, hex);
    struct buf tmp = BUF_INIT, dst = BUF_INIT;
    buf_printf(&tmp, "%s/.tmp-%s-%s", dir, hex, name);
    buf_printf(&dst, "%s/%s", dir, name);
    int rc = -1, saved = 0;
    int fd = open(tmp.data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        goto out;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            saved = errno ? errno : EIO;
            close(fd);
            unlink(tmp.data);
            errno = saved;
            goto out;
        }
        off += (size_t)w;
    }
    if (close(fd) < 0) {
        saved = errno;
        unlink(tmp.data);
        errno = saved;
        goto out;
    }
    if (exclusive) {
        rc = link(tmp.data, dst.data);
        saved = errno;
        unlink(tmp.data);
        errno = saved;
    } else {
        rc = rename(tmp.data, dst.data);
        if (rc < 0) {
            saved = errno;
            unlink(tmp.data);
            errno = saved;
        }
    }
out:
    buf_free(&tmp);
    buf_free(&dst);
    return rc;
}

/* Read the whole file dir/name into out. Returns 0 or -1 (errno set). */
static int sandbox_read_file(const char *dir, const char *name, struct buf *out)
{
    struct buf path = BUF_INIT;
    buf_printf(&path, "%s/%s", dir, name);
    int fd = open(path.data, O_RDONLY | O_CLOEXEC);
    buf_free(&path);
    if (fd < 0)
        return -1;
    char chunk[8192];
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int saved = errno;
            close(fd);
            errno = saved;
            return -1;
        }
        if (r == 0)
            break;
        buf_add(out, chunk, (size_t)r);
    }
    close(fd);
    return 0;
}

/* True when name may be an SES template name: 1-64 of [A-Za-z0-9_-]. */
static bool sandbox_template_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* True when name may be stored as an identity file: printable ASCII, no
 * '/', no leading '.', not too long. */
static bool sandbox_identity_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > SANDBOX_MAX_NAME || name[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] <= 0x20 || (unsigned char)name[i] > 0x7e || name[i] == '/')
            return false;
    return true;
}

/* Load template name: its JSON object (new reference), or NULL when it does
 * not exist or cannot be read. */
static json_t *sandbox_template_load(struct sandbox *sb, const char *name)
{
    if (!sandbox_template_name_ok(name))
        return NULL;
    struct buf file = BUF_INIT, data = BUF_INIT;
    buf_printf(&file, "%s.json", name);
    json_t *j = NULL;
    if (sandbox_read_file(sb->templates, file.data, &data) == 0) {
        json_error_t jerr;
        j = json_loadb(data.data ? data.data : "", data.len, 0, &jerr);
        if (!json_is_object(j)) {
            json_decref(j);
            j = NULL;
        }
    }
    buf_free(&file);
    buf_free(&data);
    return j;
}

/* The string member key of template t, or NULL. */
static const char *sandbox_tstr(const json_t *t, const char *key)
{
    return json_string_value(json_object_get(t, key));
}

/* Store a template (create: fails when it exists). Returns 0, 1 when it
 * exists (create) or does not (update), or -1 on an I/O error. */
static int sandbox_template_store(struct sandbox *sb, const char *name, const char *subject,
                                  const char *text, const char *html, bool create)
{
    struct buf file = BUF_INIT;
    buf_printf(&file, "%s.json", name);
    int64_t created = clock_wall_ms();
    if (!create) {
        json_t *old = sandbox_template_load(sb, name);
        if (old == NULL) {
            buf_free(&file);
            return 1;
        }
        json_t *c = json_object_get(old, "CreatedTimestamp");
        if (json_is_integer(c))
            created = json_integer_value(c);
        json_decref(old);
    }
    json_t *j =
        json_pack("{s:s, s:s*, s:s*, s:s*, s:I}", "TemplateName", name, "SubjectPart", subject,
                  "TextPart", text, "HtmlPart", html, "CreatedTimestamp", (json_int_t)created);
    char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (s == NULL)
        abort();
    int rc = sandbox_write_file(sb->templates, file.data, s, strlen(s), create);
    free(s);
    buf_free(&file);
    if (rc < 0 && create && errno == EEXIST)
        return 1;
    return rc < 0 ? -1 : 0;
}

/* Names of the files in dir that do not start with '.', sorted; strip
 * removes that suffix from each (entries without it are skipped). */
static void sandbox_list_dir(const char *dir, const char *strip, struct sesmail_list *out)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *de;
    size_t sl = strip ? strlen(strip) : 0;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (de->d_name[0] == '.')
            continue;
        if (strip) {
            if (n <= sl || strcmp(de->d_name + n - sl, strip) != 0)
                continue;
            n -= sl;
        }
        out->v = xrealloc(out->v, (out->n + 1) * sizeof *out->v);
        out->v[out->n++] = xstrndup(de->d_name, n);
    }
    closedir(d);
    for (size_t i = 1; i < out->n; i++)
        for (size_t k = i; k > 0 && strcmp(out->v[k - 1], out->v[k]) > 0; k--) {
            char *t = out->v[k];
            out->v[k] = out->v[k - 1];
            out->v[k - 1] = t;
        }
}

/* Free a list made by sandbox_list_dir. */
static void sandbox_list_free(struct sesmail_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Drop the log entries older than 24 h. */
static void sandbox_log_prune(struct sandbox *sb, int64_t now)
{
    while (sb->head < sb->n && sb->log[sb->head].ms <= now - SANDBOX_DAY_MS)
        sb->day_quota -= sb->log[sb->head++].quota;
    if (sb->head > 0 && sb->head * 2 >= sb->n) {
        memmove(sb->log, sb->log + sb->head, (sb->n - sb->head) * sizeof *sb->log);
        sb->n -= sb->head;
        sb->head = 0;
    }
}

/* Recipients counted against the quota in the last 24 h (a minute bucket
 * counts until a day after its first send: at most a minute long). */
static int64_t sandbox_sent_24h(struct sandbox *sb, int64_t now)
{
    sandbox_log_prune(sb, now);
    return sb->day_quota;
}

/* Recipients accepted in the window_ms before now (older sends leave). */
static int64_t sandbox_sent_window(struct sandbox *sb, int64_t now, int64_t window_ms)
{
    while (sb->rhead < sb->rn && sb->recent[sb->rhead].ms <= now - window_ms)
        sb->rhead++;
    if (sb->rhead > 0 && sb->rhead * 2 >= sb->rn) {
        memmove(sb->recent, sb->recent + sb->rhead, (sb->rn - sb->rhead) * sizeof *sb->recent);
        sb->rn -= sb->rhead;
        sb->rhead = 0;
    }
    int64_t sum = 0;
    for (size_t i = sb->rhead; i < sb->rn; i++)
        sum += sb->recent[i].recipients;
    return sum;
}

/* Check a send of n recipients (nquota of them counted against the daily
 * quota) against the limits. Returns NULL when it may go, else SES's
 * message for the refusal. */
static const char *sandbox_limit(struct sandbox *sb, int64_t now, int64_t n, int64_t nquota)
{
    const struct config *cfg = sb->cfg;
    if (nquota > 0 && sandbox_sent_24h(sb, now) + nquota > cfg->sandbox_daily_quota)
        return "Daily message quota exceeded.";
    double rate = cfg->sandbox_rate;
    if (rate > 0) {
        /* A window of 1 s holds rate recipients; below 1/s, one recipient
         * per 1/rate s. A send bigger than the rate passes alone (SES allows
         * short bursts) and holds the window while it lasts. */
        int64_t window = rate >= 1 ? 1000 : (int64_t)(1000.0 / rate);
        double cap = rate >= 1 ? rate : 1;
        int64_t used = sandbox_sent_window(sb, now, window);
        if (used > 0 && (double)(used + n) > cap)
            return "Maximum sending rate exceeded.";
    }
    return NULL;
}

/* Record an accepted send: in the rate window, and in its minute bucket. */
static void sandbox_log_add(struct sandbox *sb, const struct sandbox_entry *e)
{
    if (sb->rn == sb->rcap) {
        sb->rcap = sb->rcap ? sb->rcap * 2 : 64;
        sb->recent = xrealloc(sb->recent, sb->rcap * sizeof *sb->recent);
    }
    sb->recent[sb->rn++] = *e;
    sb->day_quota += e->quota;
    struct sandbox_entry *last = sb->n > sb->head ? &sb->log[sb->n - 1] : NULL;
    if (last && last->ms / SANDBOX_BUCKET_MS == e->ms / SANDBOX_BUCKET_MS) {
        last->recipients += e->recipients;
        last->quota += e->quota;
        last->bounces += e->bounces;
        last->complaints += e->complaints;
        return;
    }
    if (sb->n == sb->cap) {
        sb->cap = sb->cap ? sb->cap * 2 : 64;
        sb->log = xrealloc(sb->log, sb->cap * sizeof *sb->log);
    }
    sb->log[sb->n++] = *e;
}

/* Answer a throttled send as SES does. */
static void sandbox_throttle(struct sandbox_req *q, const char *why)
{
    struct seserr e;
    seserr_set(&e, SESERR_THROTTLING, "%s", why);
    log_event(LOG_INFO, "sandbox_throttled", "id", q->id, "reason",
              why[0] == 'D' ? "daily_quota" : "rate", NULL);
    sandbox_fail(q, &e);
}

/* Fill a template send's parts from its stored or inline template. Returns
 * 0, 1 when the named template does not exist, or -1 with e set. */
static int sandbox_template_content(struct sandbox *sb, struct sesmail_msg *m, struct seserr *e)
{
    if (m->template_name == NULL) {
        /* inline TemplateContent: its parts are the template */
        char *s = m->subject, *t = m->text, *h = m->html;
        m->subject = m->text = m->html = NULL;
        int rc = sesmail_apply_template(m, s, t, h, e);
        free(s);
        free(t);
        free(h);
        return rc;
    }
    json_t *tpl = sandbox_template_load(sb, m->template_name);
    if (tpl == NULL)
        return 1;
    int rc =
        sesmail_apply_template(m, sandbox_tstr(tpl, "SubjectPart"), sandbox_tstr(tpl, "TextPart"),
                               sandbox_tstr(tpl, "HtmlPart"), e);
    json_decref(tpl);
    return rc;
}

/* Write the files of recipient k (1-based) of an accepted send and return
 * its simulator outcome; -1 in *failed on an I/O error. With events, the
 * SES notifications the recipient's outcome produces are appended to
 * events[0] (a Delivery, a Bounce), and a complaint, which comes after its
 * delivery, to events[1]. */
static enum sesmail_sim sandbox_deliver(struct sandbox *sb, const struct sesmail_msg *m,
                                        const char *mid, size_t k, const char *rcpt,
                                        const char *date, const char *iso, bool *failed,
                                        struct sesmail_list events[2])
{
    struct buf spec = BUF_INIT, out = BUF_INIT, name = BUF_INIT, sender = BUF_INIT;
    struct seserr e;
    sesmail_addr_spec(rcpt, &spec);
    enum sesmail_sim sim = sesmail_simulator(buf_cstr(&spec));
    if (sim != SESMAIL_SIM_BOUNCE && sim != SESMAIL_SIM_SUPPRESSED) {
        if (sesmail_build(m, rcpt, mid, sb->domain, date, &out, &e) == 0) {
            buf_printf(&name, "%s-%zu.eml", mid, k);
            if (sandbox_write_file(sb->outbox, name.data, out.data, out.len, false) < 0)
                *failed = true;
        }
    }
    const char *src = m->from;
    if (src != NULL && sesmail_addr_spec(src, &sender) == 0)
        src = sender.data;
    if (events != NULL && sim != SESMAIL_SIM_BOUNCE && sim != SESMAIL_SIM_SUPPRESSED) {
        buf_reset(&out);
        sesmail_notification(SESMAIL_SIM_SUCCESS, mid, src, buf_cstr(&spec), m, iso, "", &out);
        sesmail_list_add(&events[0], out.data, out.len);
    }
    if (sim == SESMAIL_SIM_BOUNCE || sim == SESMAIL_SIM_SUPPRESSED ||
        sim == SESMAIL_SIM_COMPLAINT) {
        unsigned char rnd[16];
        char feedback[37];
        sandbox_random(rnd, sizeof rnd);
        sesmail_uuid(rnd, feedback);
        buf_reset(&out);
        buf_reset(&name);
        sesmail_notification(sim, mid, src, buf_cstr(&spec), m, iso, feedback, &out);
        buf_printf(&name, "%s-%zu.%s.json", mid, k,
                   sim == SESMAIL_SIM_COMPLAINT ? "complaint" : "bounce");
        if (sandbox_write_file(sb->outbox, name.data, out.data, out.len, false) < 0)
            *failed = true;
        if (events != NULL)
            sesmail_list_add(&events[sim == SESMAIL_SIM_COMPLAINT], out.data, out.len);
    }
    if (sim == SESMAIL_SIM_OOTO && m->from != NULL && sesmail_addr_spec(m->from, &sender) == 0) {
        unsigned char rnd[16];
        char reply[SESMAIL_MESSAGE_ID_LEN + 1];
        sandbox_random(rnd, sizeof rnd);
        sesmail_message_id(clock_wall_ms(), rnd, reply);
        buf_reset(&out);
        buf_reset(&name);
        sesmail_ooto_reply(buf_cstr(&spec), sender.data, mid, sb->domain, reply, date, &out);
        buf_printf(&name, "%s-%zu.ooto.eml", mid, k);
        if (sandbox_write_file(sb->outbox, name.data, out.data, out.len, false) < 0)
            *failed = true;
    }
    buf_free(&spec);
    buf_free(&out);
    buf_free(&name);
    buf_free(&sender);
    return sim;
}

/* Recipients of m counted against the daily quota (not the simulator's). */
static int64_t sandbox_quota_count(const struct sesmail_msg *m)
{
    int64_t nquota = 0;
    struct buf spec = BUF_INIT;
    for (size_t i = 0; i < sesmail_recipient_count(m); i++)
        if (sesmail_addr_spec(sesmail_recipient(m, i), &spec) == 0 &&
            sesmail_simulator(spec.data) == SESMAIL_SIM_NONE)
            nquota++;
    buf_free(&spec);
    return nquota;
}

/* Deliver the accepted message m (accepted at now, nquota of its
 * recipients counted against the quota) as mid: the files of every
 * recipient, and the send counted in the limits and statistics. *outcome
 * gets the first simulator outcome that is not a plain delivery (when it is
 * still NULL); *failed is set on an I/O error. */
static void sandbox_deliver_all(struct sandbox *sb, const struct sesmail_msg *m, int64_t now,
                                int64_t nquota, const char *mid, const char **outcome, bool *failed)
{
    struct sesmail_list events[2] = {{0}, {0}};
    char date[64], iso[64];
    sesmail_date((time_t)(now / 1000), date);
    sesmail_iso_time(now, iso);
    size_t n = sesmail_recipient_count(m);
    struct sandbox_entry entry = {.ms = now, .recipients = (int64_t)n, .quota = nquota};
    for (size_t i = 0; i < n; i++) {
        enum sesmail_sim sim = sandbox_deliver(sb, m, mid, i + 1, sesmail_recipient(m, i), date,
                                               iso, failed, sb->sns ? events : NULL);
        if (sim == SESMAIL_SIM_BOUNCE || sim == SESMAIL_SIM_SUPPRESSED)
            entry.bounces++;
        if (sim == SESMAIL_SIM_COMPLAINT)
            entry.complaints++;
        if (*outcome == NULL)
            *outcome = sesmail_sim_name(sim);
    }
    if (!*failed) {
        sandbox_log_add(sb, &entry);
        /* accepted: its outcomes go out as SES's would, after the answer */
        for (int k = 0; k < 2; k++)
            for (size_t i = 0; i < events[k].n; i++)
                sandbox_sns_publish(sb->sns, events[k].v[i], strlen(events[k].v[i]), k == 1);
    }
    sesmail_list_free(&events[0]);
    sesmail_list_free(&events[1]);
}

/* A send: check it, hold it to the limits, write one file per recipient,
 * and answer with its MessageId. */
static void sandbox_send(struct sandbox_req *q)
{
    struct sandbox *sb = q->sb;
    struct sesmail_msg m = {0};
    struct seserr e;
    if (sesmail_from_request(&q->sr, &m, &e) < 0) {
        sesmail_cleanup(&m);
        sandbox_fail(q, &e);
        return;
    }
    if (m.kind == SESMAIL_TEMPLATE) {
        int rc = sandbox_template_content(sb, &m, &e);
        if (rc != 0) {
            char msg[512];
            snprintf(msg, sizeof msg, "Template %s does not exist.", m.template_name);
            sesmail_cleanup(&m);
            if (rc < 0)
                sandbox_fail(q, &e);
            else
                sandbox_fail_code(q, 400, "TemplateDoesNotExist", 404, "NotFoundException", msg);
            return;
        }
    }
    size_t n = sesmail_recipient_count(&m);
    int64_t nquota = sandbox_quota_count(&m);
    int64_t now = clock_wall_ms();
    const char *refused = sandbox_limit(sb, now, (int64_t)n, nquota);
    if (refused != NULL) {
        sesmail_cleanup(&m);
        sandbox_throttle(q, refused);
        return;
    }
    unsigned char rnd[16];
    char mid[SESMAIL_MESSAGE_ID_LEN + 1];
    sandbox_random(rnd, sizeof rnd);
    sesmail_message_id(now, rnd, mid);
    const char *outcome = NULL;
    bool failed = false;
    sandbox_deliver_all(sb, &m, now, nquota, mid, &outcome, &failed);
    sesmail_cleanup(&m);
    char nrc[24];
    snprintf(nrc, sizeof nrc, "%zu", n);
    if (failed) {
        log_event(LOG_ERROR, "sandbox_write_failed", "id", q->id, "message_id", mid, "dir",
                  sb->outbox, "error", strerror(errno), NULL);
        seserr_set(&e, SESERR_INTERNAL, NULL);
        sandbox_fail(q, &e);
        return;
    }
    log_event(LOG_INFO, "sandbox_send", "id", q->id, "message_id", mid, "action", q->sr.action,
              "api", q->api == SESREQ_V2 ? "v2" : "v1", "recipients", nrc, "outcome", outcome,
              NULL);
    if (q->api == SESREQ_V2) {
        sandbox_ok_v2(q, json_pack("{s:s}", "MessageId", mid));
    } else {
        char result[128];
        snprintf(result, sizeof result, "    <MessageId>%s</MessageId>\n", mid);
        sandbox_ok_v1(q, result);
    }
}

/* One destination of a bulk call: render it, hold it to the limits and
 * deliver it under its own MessageId; r gets its status. */
static void sandbox_bulk_entry(struct sandbox_req *q, const struct sesbulk *b, size_t i,
                               const char *subject, const char *text, const char *html,
                               struct sesbulk_result *r, const char **outcome)
{
    struct sandbox *sb = q->sb;
    struct sesmail_msg m = {0};
    struct seserr e;
    if (sesbulk_entry_message(b, i, subject, text, html, &m, &e) < 0) {
        r->status = SESBULK_INVALID_PARAMETER;
        snprintf(r->error, sizeof r->error, "%s", e.message);
        sesmail_cleanup(&m);
        return;
    }
    int64_t now = clock_wall_ms();
    int64_t nquota = sandbox_quota_count(&m);
    const char *refused = sandbox_limit(sb, now, (int64_t)sesmail_recipient_count(&m), nquota);
    if (refused != NULL) {
        r->status = refused[0] == 'D' ? SESBULK_DAILY_QUOTA_EXCEEDED : SESBULK_ACCOUNT_THROTTLED;
        snprintf(r->error, sizeof r->error, "%s", refused);
        sesmail_cleanup(&m);
        return;
    }
    unsigned char rnd[16];
    sandbox_random(rnd, sizeof rnd);
    sesmail_message_id(now, rnd, r->message_id);
    bool failed = false;
    sandbox_deliver_all(sb, &m, now, nquota, r->message_id, outcome, &failed);
    sesmail_cleanup(&m);
    if (failed) {
        log_event(LOG_ERROR, "sandbox_write_failed", "id", q->id, "message_id", r->message_id,
                  "dir", sb->outbox, "error", strerror(errno), NULL);
        r->status = SESBULK_FAILED;
        r->message_id[0] = '\0';
        snprintf(r->error, sizeof r->error, "%s", seserr_default_message(SESERR_INTERNAL));
        return;
    }
    r->status = SESBULK_SUCCESS;
}

/* SES's bulk calls (v1 SendBulkTemplatedEmail, v2 SendBulkEmail). The call
 * is checked whole first (sesbulk: parameters, destinations, addresses,
 * tags, the default data) and the template must exist, else the call fails
 * with SES's error; then each destination, in order, is rendered, held to
 * the rate and quota, and delivered on its own, and the answer holds one
 * status per destination. */
static void sandbox_bulk(struct sandbox_req *q)
{
    struct sandbox *sb = q->sb;
    struct sesbulk b = {0};
    struct seserr e;
    if (sesbulk_from_request(&q->sr, &b, &e) < 0) {
        sesbulk_cleanup(&b);
        sandbox_fail(q, &e);
        return;
    }
    json_t *tpl = NULL;
    const char *subject = b.subject, *text = b.text, *html = b.html;
    if (b.template_name != NULL) {
        tpl = sandbox_template_load(sb, b.template_name);
        if (tpl == NULL) {
            char msg[512];
            snprintf(msg, sizeof msg, "Template %.320s does not exist.", b.template_name);
            sesbulk_cleanup(&b);
            sandbox_fail_code(q, 400, "TemplateDoesNotExist", 404, "NotFoundException", msg);
            return;
        }
        subject = sandbox_tstr(tpl, "SubjectPart");
        text = sandbox_tstr(tpl, "TextPart");
        html = sandbox_tstr(tpl, "HtmlPart");
    }
    struct sesbulk_result *res = xcalloc(b.n, sizeof *res);
    const char *outcome = NULL;
    size_t recipients = 0, sent = 0;
    for (size_t i = 0; i < b.n; i++) {
        sandbox_bulk_entry(q, &b, i, subject, text, html, &res[i], &outcome);
        if (res[i].status == SESBULK_SUCCESS) {
            const struct sesbulk_entry *d = &b.entries[i];
            sent++;
            recipients += d->to.n + d->cc.n + d->bcc.n;
        }
    }
    json_decref(tpl);
    char nd[24], ns[24], nrc[24];
    snprintf(nd, sizeof nd, "%zu", b.n);
    snprintf(ns, sizeof ns, "%zu", sent);
    snprintf(nrc, sizeof nrc, "%zu", recipients);
    log_event(LOG_INFO, "sandbox_send", "id", q->id, "action", q->sr.action, "api",
              q->api == SESREQ_V2 ? "v2" : "v1", "destinations", nd, "sent", ns, "recipients", nrc,
              "outcome", outcome, NULL);
    struct buf body = BUF_INIT;
    sesbulk_render(q->api, res, b.n, &body);
    free(res);
    sesbulk_cleanup(&b);
    if (q->api == SESREQ_V2) {
        sandbox_send_answer(q, 200, "application/json", NULL, &body);
    } else {
        sandbox_ok_v1(q, body.data);
    }
    buf_free(&body);
}

/* The v1 parameter name as a C string, or NULL. */
static const char *sandbox_param(const struct sandbox_req *q, const char *name)
{
    return form_get(&q->sr.form, name, NULL);
}

/* Answer a missing v1 parameter. */
static void sandbox_missing(struct sandbox_req *q, const char *name)
{
    struct seserr e;
    seserr_set(&e, SESERR_MISSING_PARAMETER, "The request must contain the parameter %s.", name);
    sandbox_fail(q, &e);
}

/* Answer an invalid template name. */
static void sandbox_bad_template_name(struct sandbox_req *q, const char *name)
{
    struct seserr e;
    seserr_set(&e, SESERR_INVALID_PARAMETER,
               "Invalid template name '%.64s': use 1 to 64 letters, digits, '_' and '-'.", name);
    sandbox_fail(q, &e);
}

/* Answer an I/O failure of the sandbox's store. */
static void sandbox_store_failed(struct sandbox_req *q, const char *what)
{
    struct seserr e;
    log_event(LOG_ERROR, "sandbox_store_failed", "id", q->id, "what", what, "error",
              strerror(errno), NULL);
    seserr_set(&e, SESERR_INTERNAL, NULL);
    sandbox_fail(q, &e);
}

/* Create or update a template from parts; answers the request. */
static void sandbox_template_put(struct sandbox_req *q, const char *name, const char *subject,
                                 const char *text, const char *html, bool create)
{
    if (!sandbox_template_name_ok(name)) {
        sandbox_bad_template_name(q, name);
        return;
    }
    int rc = sandbox_template_store(q->sb, name, subject, text, html, create);
    char msg[256];
    if (rc < 0) {
        sandbox_store_failed(q, "template");
    } else if (rc == 1 && create) {
        snprintf(msg, sizeof msg, "Template %s already exists.", name);
        sandbox_fail_code(q, 400, "AlreadyExists", 400, "AlreadyExistsException", msg);
    } else if (rc == 1) {
        snprintf(msg, sizeof msg, "Template %s does not exist.", name);
        sandbox_fail_code(q, 400, "TemplateDoesNotExist", 404, "NotFoundException", msg);
    } else if (q->api == SESREQ_V2) {
        sandbox_ok_v2(q, json_object());
    } else {
        sandbox_ok_v1(q, "");
    }
}

/* Delete a template; answers the request. A missing one is an error on v2
 * only (v1 DeleteTemplate succeeds). */
static void sandbox_template_delete(struct sandbox_req *q, const char *name)
{
    struct buf path = BUF_INIT;
    buf_printf(&path, "%s/%s.json", q->sb->templates, name);
    int rc = sandbox_template_name_ok(name) ? unlink(path.data) : (errno = ENOENT, -1);
    buf_free(&path);
    if (rc < 0 && errno != ENOENT) {
        sandbox_store_failed(q, "template");
    } else if (rc < 0 && q->api == SESREQ_V2) {
        char msg[256];
        snprintf(msg, sizeof msg, "Template %.64s does not exist.", name);
        sandbox_fail_code(q, 400, "TemplateDoesNotExist", 404, "NotFoundException", msg);
    } else if (q->api == SESREQ_V2) {
        sandbox_ok_v2(q, json_object());
    } else {
        sandbox_ok_v1(q, "");
    }
}

/* Append an XML element with escaped text, when text is not NULL. */
static void sandbox_xml_elem(struct buf *b, const char *indent, const char *name, const char *text)
{
    if (text == NULL)
        return;
    buf_printf(b, "%s<%s>", indent, name);
    seserr_xml_escape(b, text);
    buf_printf(b, "</%s>\n", name);
}

/* v1 GetTemplate and v2 GetEmailTemplate. */
static void sandbox_template_get(struct sandbox_req *q, const char *name)
{
    json_t *t = sandbox_template_load(q->sb, name);
    if (t == NULL) {
        char msg[256];
        snprintf(msg, sizeof msg, "Template %.64s does not exist.", name);
        sandbox_fail_code(q, 400, "TemplateDoesNotExist", 404, "NotFoundException", msg);
        return;
    }
    if (q->api == SESREQ_V2) {
        json_t *c = json_object();
        const char *parts[3][2] = {
            {"Subject", "SubjectPart"}, {"Text", "TextPart"}, {"Html", "HtmlPart"}};
        for (size_t i = 0; i < 3; i++)
            if (sandbox_tstr(t, parts[i][1]))
                json_object_set_new(c, parts[i][0], json_string(sandbox_tstr(t, parts[i][1])));
        json_t *j = json_pack("{s:s, s:o}", "TemplateName", name, "TemplateContent", c);
        json_decref(t);
        sandbox_ok_v2(q, j);
        return;
    }
    struct buf r = BUF_INIT;
    buf_adds(&r, "    <Template>\n");
    sandbox_xml_elem(&r, "      ", "TemplateName", name);
    sandbox_xml_elem(&r, "      ", "SubjectPart", sandbox_tstr(t, "SubjectPart"));
    sandbox_xml_elem(&r, "      ", "TextPart", sandbox_tstr(t, "TextPart"));
    sandbox_xml_elem(&r, "      ", "HtmlPart", sandbox_tstr(t, "HtmlPart"));
    buf_adds(&r, "    </Template>\n");
    json_decref(t);
    sandbox_ok_v1(q, r.data);
    buf_free(&r);
}

/* v1 ListTemplates and v2 ListEmailTemplates. */
static void sandbox_template_list(struct sandbox_req *q)
{
    struct sesmail_list names = {0};
    sandbox_list_dir(q->sb->templates, ".json", &names);
    json_t *arr = json_array();
    struct buf r = BUF_INIT;
    buf_adds(&r, "    <TemplatesMetadata>\n");
    for (size_t i = 0; i < names.n; i++) {
        json_t *t = sandbox_template_load(q->sb, names.v[i]);
        if (t == NULL)
            continue;
        json_int_t created = json_integer_value(json_object_get(t, "CreatedTimestamp"));
        char iso[64];
        sesmail_iso_time((int64_t)created, iso);
        buf_adds(&r, "      <member>\n");
        sandbox_xml_elem(&r, "        ", "Name", names.v[i]);
        sandbox_xml_elem(&r, "        ", "CreatedTimestamp", iso);
        buf_adds(&r, "      </member>\n");
        json_array_append_new(arr, json_pack("{s:s, s:f}", "TemplateName", names.v[i],
                                             "CreatedTimestamp", (double)created / 1000.0));
        json_decref(t);
    }
    buf_adds(&r, "    </TemplatesMetadata>\n");
    sandbox_list_free(&names);
    if (q->api == SESREQ_V2) {
        sandbox_ok_v2(q, json_pack("{s:o}", "TemplatesMetadata", arr));
    } else {
        json_decref(arr);
        sandbox_ok_v1(q, r.data);
    }
    buf_free(&r);
}

/* Record an identity. Returns 0, 1 when it was already recorded, -1 on an
 * I/O error. */
static int sandbox_identity_add(struct sandbox *sb, const char *identity)
{
    if (sandbox_write_file(sb->identities, identity, "", 0, true) == 0)
        return 0;
    return errno == EEXIST ? 1 : -1;
}

/* Answer an identity that cannot be recorded. */
static void sandbox_bad_identity(struct sandbox_req *q, const char *identity)
{
    struct seserr e;
    seserr_set(&e, SESERR_INVALID_PARAMETER, "Invalid identity: %.128s", identity);
    sandbox_fail(q, &e);
}

/* The identity's SES type name for v2. */
static const char *sandbox_identity_type(const char *identity)
{
    return strchr(identity, '@') ? "EMAIL_ADDRESS" : "DOMAIN";
}

/* A stable verification token for a domain (hex of its SHA-256). */
static void sandbox_domain_token(const char *domain, char out[41])
{
    char hex[UTIL_SHA256_HEX_LEN + 1];
    util_sha256_hex(domain, strlen(domain), hex);
    snprintf(out, 41, "%.40s", hex);
}

/* v1 VerifyEmailIdentity / VerifyDomainIdentity. */
static void sandbox_v1_verify(struct sandbox_req *q, const char *param, bool domain)
{
    const char *id = sandbox_param(q, param);
    if (id == NULL || id[0] == '\0') {
        sandbox_missing(q, param);
        return;
    }
    if (!sandbox_identity_ok(id) || (!domain && strchr(id, '@') == NULL) ||
        (domain && strchr(id, '@') != NULL)) {
        sandbox_bad_identity(q, id);
        return;
    }
    if (sandbox_identity_add(q->sb, id) < 0) {
        sandbox_store_failed(q, "identity");
        return;
    }
    if (!domain) {
        sandbox_ok_v1(q, "");
        return;
    }
    char token[41], result[128];
    sandbox_domain_token(id, token);
    snprintf(result, sizeof result, "    <VerificationToken>%s</VerificationToken>\n", token);
    sandbox_ok_v1(q, result);
}

/* v1 ListIdentities (IdentityType: EmailAddress, Domain or both). */
static void sandbox_v1_list_identities(struct sandbox_req *q)
{
    const char *type = sandbox_param(q, "IdentityType");
    struct sesmail_list ids = {0};
    sandbox_list_dir(q->sb->identities, NULL, &ids);
    struct buf r = BUF_INIT;
    buf_adds(&r, "    <Identities>\n");
    for (size_t i = 0; i < ids.n; i++) {
        bool email = strchr(ids.v[i], '@') != NULL;
        if (type && ((strcmp(type, "EmailAddress") == 0 && !email) ||
                     (strcmp(type, "Domain") == 0 && email)))
            continue;
        sandbox_xml_elem(&r, "      ", "member", ids.v[i]);
    }
    buf_adds(&r, "    </Identities>\n");
    sandbox_list_free(&ids);
    sandbox_ok_v1(q, r.data);
    buf_free(&r);
}

/* v1 GetIdentityVerificationAttributes: every asked identity is verified. */
static void sandbox_v1_verification_attributes(struct sandbox_req *q)
{
    struct buf r = BUF_INIT;
    buf_adds(&r, "    <VerificationAttributes>\n");
    char name[64];
    for (size_t i = 1; i <= 100; i++) {
        snprintf(name, sizeof name, "Identities.member.%zu", i);
        const char *id = sandbox_param(q, name);
        if (id == NULL)
            break;
        buf_adds(&r, "      <entry>\n");
        sandbox_xml_elem(&r, "        ", "key", id);
        buf_adds(&r, "        <value>\n"
                     "          <VerificationStatus>Success</VerificationStatus>\n");
        if (strchr(id, '@') == NULL) {
            char token[41];
            sandbox_domain_token(id, token);
            sandbox_xml_elem(&r, "          ", "VerificationToken", token);
        }
        buf_adds(&r, "        </value>\n      </entry>\n");
    }
    buf_adds(&r, "    </VerificationAttributes>\n");
    sandbox_ok_v1(q, r.data);
    buf_free(&r);
}

/* v1 GetSendQuota. */
static void sandbox_v1_send_quota(struct sandbox_req *q)
{
    const struct config *cfg = q->sb->cfg;
    char result[256];
    snprintf(result, sizeof result,
             "    <SentLast24Hours>%.1f</SentLast24Hours>\n"
             "    <Max24HourSend>%.1f</Max24HourSend>\n"
             "    <MaxSendRate>%.1f</MaxSendRate>\n",
             (double)sandbox_sent_24h(q->sb, clock_wall_ms()), (double)cfg->sandbox_daily_quota,
             cfg->sandbox_rate);
    sandbox_ok_v1(q, result);
}

/* v1 GetSendStatistics: 15-minute data points of what this process accepted. */
static void sandbox_v1_send_statistics(struct sandbox_req *q)
{
    struct sandbox *sb = q->sb;
    sandbox_log_prune(sb, clock_wall_ms());
    struct buf r = BUF_INIT;
    buf_adds(&r, "    <SendDataPoints>\n");
    for (size_t i = sb->head; i < sb->n;) {
        int64_t bucket = sb->log[i].ms - sb->log[i].ms % SANDBOX_STATS_BUCKET_MS;
        struct sandbox_entry sum = {0};
        for (; i < sb->n && sb->log[i].ms - bucket < SANDBOX_STATS_BUCKET_MS; i++) {
            sum.recipients += sb->log[i].recipients;
            sum.bounces += sb->log[i].bounces;
            sum.complaints += sb->log[i].complaints;
        }
        char iso[64];
        sesmail_iso_time(bucket, iso);
        buf_printf(&r,
                   "      <member>\n        <Timestamp>%s</Timestamp>\n"
                   "        <DeliveryAttempts>%lld</DeliveryAttempts>\n"
                   "        <Bounces>%lld</Bounces>\n        <Complaints>%lld</Complaints>\n"
                   "        <Rejects>0</Rejects>\n      </member>\n",
                   iso, (long long)sum.recipients, (long long)sum.bounces,
                   (long long)sum.complaints);
    }
    buf_adds(&r, "    </SendDataPoints>\n");
    sandbox_ok_v1(q, r.data);
    buf_free(&r);
}

/* Answer a v1 action the sandbox does not implement. */
static void sandbox_v1_unsupported(struct sandbox_req *q)
{
    struct seserr e;
    const char *a = sandbox_param(q, "Action");
    seserr_set(&e, SESERR_INVALID_ACTION, "Could not find operation %.64s for version %s",
               a ? a : "", SESREQ_V1_VERSION);
    sandbox_fail(q, &e);
}

/* Dispatch a parsed v1 request. */
static void sandbox_v1(struct sandbox_req *q)
{
    const char *a = q->sr.action;
    if (a == NULL) {
        sandbox_v1_unsupported(q);
    } else if (strcmp(a, "SendEmail") == 0 || strcmp(a, "SendRawEmail") == 0 ||
               strcmp(a, "SendTemplatedEmail") == 0) {
        sandbox_send(q);
    } else if (strcmp(a, "SendBulkTemplatedEmail") == 0) {
        sandbox_bulk(q);
    } else if (strcmp(a, "CreateTemplate") == 0 || strcmp(a, "UpdateTemplate") == 0) {
        const char *name = sandbox_param(q, "Template.TemplateName");
        if (name == NULL) {
            sandbox_missing(q, "Template.TemplateName");
            return;
        }
        sandbox_template_put(q, name, sandbox_param(q, "Template.SubjectPart"),
                             sandbox_param(q, "Template.TextPart"),
                             sandbox_param(q, "Template.HtmlPart"), a[0] == 'C');
    } else if (strcmp(a, "GetTemplate") == 0 || strcmp(a, "DeleteTemplate") == 0) {
        const char *name = sandbox_param(q, "TemplateName");
        if (name == NULL)
            sandbox_missing(q, "TemplateName");
        else if (a[0] == 'G')
            sandbox_template_get(q, name);
        else
            sandbox_template_delete(q, name);
    } else if (strcmp(a, "ListTemplates") == 0) {
        sandbox_template_list(q);
    } else if (strcmp(a, "VerifyEmailIdentity") == 0) {
        sandbox_v1_verify(q, "EmailAddress", false);
    } else if (strcmp(a, "VerifyDomainIdentity") == 0) {
        sandbox_v1_verify(q, "Domain", true);
    } else if (strcmp(a, "ListIdentities") == 0) {
        sandbox_v1_list_identities(q);
    } else if (strcmp(a, "GetIdentityVerificationAttributes") == 0) {
        sandbox_v1_verification_attributes(q);
    } else if (strcmp(a, "GetAccountSendingEnabled") == 0) {
        sandbox_ok_v1(q, "    <Enabled>true</Enabled>\n");
    } else if (strcmp(a, "GetSendQuota") == 0) {
        sandbox_v1_send_quota(q);
    } else if (strcmp(a, "GetSendStatistics") == 0) {
        sandbox_v1_send_statistics(q);
    } else {
        sandbox_v1_unsupported(q);
    }
}

/* The percent-decoded last path segment of a v2 request into out. Returns
 * 0, or -1 when it does not decode. */
static int sandbox_v2_label(const struct sandbox_req *q, struct buf *out)
{
    const char *p = q->hr->path + q->v2_off;
    size_t n = q->hr->path_len - q->v2_off;
    const char *slash = NULL;
    for (size_t i = n; i > 0; i--)
        if (p[i - 1] == '/') {
            slash = p + i - 1;
            break;
        }
    size_t off = slash ? (size_t)(slash - p) + 1 : 0;
    if (form_decode(p + off, n - off, false, out) < 0)
        return -1;
    buf_cstr(out);
    return strlen(out->data) == out->len ? 0 : -1;
}

/* The parsed JSON body of a v2 request (an object; new reference), or NULL
 * after answering BadRequestException. */
static json_t *sandbox_v2_body(struct sandbox_req *q)
{
    json_error_t jerr;
    struct httpd_request *hr = q->hr;
    json_t *j =
        json_loadb(hr->body.data ? hr->body.data : "", hr->body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(j)) {
        json_decref(j);
        struct seserr e;
        seserr_set(&e, SESERR_BAD_REQUEST, NULL);
        sandbox_fail(q, &e);
        return NULL;
    }
    return j;
}

/* v2 CreateEmailTemplate and UpdateEmailTemplate. */
static void sandbox_v2_template_put(struct sandbox_req *q, bool create)
{
    json_t *j = sandbox_v2_body(q);
    if (j == NULL)
        return;
    struct buf label = BUF_INIT;
    const char *name = json_string_value(json_object_get(j, "TemplateName"));
    if (!create) {
        if (sandbox_v2_label(q, &label) < 0) {
            json_decref(j);
            buf_free(&label);
            sandbox_bad_template_name(q, "");
            return;
        }
        name = label.data;
    }
    json_t *c = json_object_get(j, "TemplateContent");
    if (name == NULL || !json_is_object(c)) {
        struct seserr e;
        seserr_set(&e, SESERR_BAD_REQUEST, "TemplateName and TemplateContent are required");
        json_decref(j);
        buf_free(&label);
        sandbox_fail(q, &e);
        return;
    }
    sandbox_template_put(q, name, json_string_value(json_object_get(c, "Subject")),
                         json_string_value(json_object_get(c, "Text")),
                         json_string_value(json_object_get(c, "Html")), create);
    json_decref(j);
    buf_free(&label);
}

/* The v2 GetEmailIdentity answer for identity. */
static json_t *sandbox_v2_identity_json(const char *identity)
{
    return json_pack("{s:s, s:b, s:b, s:s, s:{s:b, s:s, s:[]}, s:{}, s:[]}", "IdentityType",
                     sandbox_identity_type(identity), "FeedbackForwardingStatus", 1,
                     "VerifiedForSendingStatus", 1, "VerificationStatus", "SUCCESS",
                     "DkimAttributes", "SigningEnabled", 0, "Status", "NOT_STARTED", "Tokens",
                     "Policies", "Tags");
}

/* v2 CreateEmailIdentity. */
static void sandbox_v2_create_identity(struct sandbox_req *q)
{
    json_t *j = sandbox_v2_body(q);
    if (j == NULL)
        return;
    const char *id = json_string_value(json_object_get(j, "EmailIdentity"));
    if (id == NULL || !sandbox_identity_ok(id)) {
        json_decref(j);
        sandbox_bad_identity(q, id ? id : "");
        return;
    }
    int rc = sandbox_identity_add(q->sb, id);
    if (rc < 0) {
        json_decref(j);
        sandbox_store_failed(q, "identity");
        return;
    }
    if (rc == 1) {
        char msg[512];
        snprintf(msg, sizeof msg, "Email identity %.320s already exist.", id);
        json_decref(j);
        sandbox_fail_code(q, 400, "AlreadyExists", 400, "AlreadyExistsException", msg);
        return;
    }
    json_t *out =
        json_pack("{s:s, s:b, s:{s:b, s:s, s:[]}}", "IdentityType", sandbox_identity_type(id),
                  "VerifiedForSendingStatus", 1, "DkimAttributes", "SigningEnabled", 0, "Status",
                  "NOT_STARTED", "Tokens");
    json_decref(j);
    sandbox_ok_v2(q, out);
}

/* v2 ListEmailIdentities. */
static void sandbox_v2_list_identities(struct sandbox_req *q)
{
    struct sesmail_list ids = {0};
    sandbox_list_dir(q->sb->identities, NULL, &ids);
    json_t *arr = json_array();
    for (size_t i = 0; i < ids.n; i++)
        json_array_append_new(arr,
                              json_pack("{s:s, s:s, s:b, s:s}", "IdentityType",
                                        sandbox_identity_type(ids.v[i]), "IdentityName", ids.v[i],
                                        "SendingEnabled", 1, "VerificationStatus", "SUCCESS"));
    sandbox_list_free(&ids);
    sandbox_ok_v2(q, json_pack("{s:o}", "EmailIdentities", arr));
}

/* v2 GetAccount. */
static void sandbox_v2_account(struct sandbox_req *q)
{
    const struct config *cfg = q->sb->cfg;
    double sent = (double)sandbox_sent_24h(q->sb, clock_wall_ms());
    json_t *j = json_pack(
        "{s:b, s:s, s:b, s:{s:f, s:f, s:f}, s:b, s:{s:[]}}", "DedicatedIpAutoWarmupEnabled", 0,
        "EnforcementStatus", "HEALTHY", "ProductionAccessEnabled", 1, "SendQuota", "Max24HourSend",
        (double)cfg->sandbox_daily_quota, "MaxSendRate", cfg->sandbox_rate, "SentLast24Hours", sent,
        "SendingEnabled", 1, "SuppressionAttributes", "SuppressedReasons");
    sandbox_ok_v2(q, j);
}

/* Dispatch a parsed v2 request. */
static void sandbox_v2(struct sandbox_req *q)
{
    const char *a = q->sr.action;
    struct buf label = BUF_INIT;
    if (a == NULL) {
        struct seserr e;
        seserr_set(&e, SESERR_UNKNOWN_OPERATION, NULL);
        sandbox_fail(q, &e);
    } else if (strcmp(a, "SendEmail") == 0) {
        sandbox_send(q);
    } else if (strcmp(a, "SendBulkEmail") == 0) {
        sandbox_bulk(q);
    } else if (strcmp(a, "CreateEmailTemplate") == 0) {
        sandbox_v2_template_put(q, true);
    } else if (strcmp(a, "UpdateEmailTemplate") == 0) {
        sandbox_v2_template_put(q, false);
    } else if (strcmp(a, "GetEmailTemplate") == 0 || strcmp(a, "DeleteEmailTemplate") == 0) {
        if (sandbox_v2_label(q, &label) < 0)
            sandbox_bad_template_name(q, "");
        else if (a[0] == 'G')
            sandbox_template_get(q, label.data);
        else
            sandbox_template_delete(q, label.data);
    } else if (strcmp(a, "ListEmailTemplates") == 0) {
        sandbox_template_list(q);
    } else if (strcmp(a, "GetAccount") == 0) {
        sandbox_v2_account(q);
    } else if (strcmp(a, "ListEmailIdentities") == 0) {
        sandbox_v2_list_identities(q);
    } else if (strcmp(a, "CreateEmailIdentity") == 0) {
        sandbox_v2_create_identity(q);
    } else if (strcmp(a, "GetEmailIdentity") == 0) {
        if (sandbox_v2_label(q, &label) < 0 || !sandbox_identity_ok(label.data))
            sandbox_bad_identity(q, label.data ? label.data : "");
        else
            sandbox_ok_v2(q, sandbox_v2_identity_json(label.data));
    } else {
        struct seserr e;
        seserr_set(&e, SESERR_UNKNOWN_OPERATION, "The sesgate sandbox does not implement %s.", a);
        sandbox_fail(q, &e);
    }
    buf_free(&label);
}

/* Check the request's SigV4 signature against the sandbox's key, as SES
 * does (reqcheck, at the wall clock's now). Returns 0, or -1 with e set. */
static int sandbox_authenticate(struct sandbox_req *q, struct seserr *e)
{
    struct sandbox *sb = q->sb;
    struct config_client key = {.access_key_id = sb->access_key_id,
                                .secret_access_key = sb->secret};
    struct reqcheck_policy p = {
        .region = sb->cfg->upstreams[0].region,
        .clock_skew_ms = sb->cfg->clock_skew_ms,
        .clients = &key,
        .nclients = 1,
        .presigned = false,
    };
    struct sigv4_request sreq;
    httpd_sigv4_request(q->hr, q->payload_hash, &sreq);
    struct buf storage = BUF_INIT;
    struct reqcheck_auth ra;
    time_t now = (time_t)(clock_wall_ms() / 1000);
    int rc = reqcheck_request(&p, &sreq, now, &storage, &ra, e);
    if (rc == 0)
        rc = reqcheck_verify(&sreq, &ra, sb->secret, &sb->key, e);
    buf_free(&storage);
    return rc;
}

/* A context for a request that just arrived. */
static struct sandbox_req *sandbox_req_new(struct sandbox *sb, struct httpd_request *hr)
{
    struct sandbox_req *q = xcalloc(1, sizeof *q);
    unsigned char rnd[16];
    q->sb = sb;
    q->hr = hr;
    sandbox_random(rnd, sizeof rnd);
    sesmail_uuid(rnd, q->id);
    q->api = sesreq_api_of(hr->path, hr->path_len, &q->v2_off);
    return q;
}

/* Answer GET of the SNS signing certificate or its CA (public, no
 * signature needed, as SNS serves its own). false when hr asks for neither. */
static bool sandbox_serve_pem(struct sandbox *sb, struct httpd_request *hr)
{
    const char *pem = NULL;
    size_t cl = strlen(SANDBOX_SNS_CERT_PATH), al = strlen(SANDBOX_SNS_CA_PATH);
    if (hr->path_len == cl && memcmp(hr->path, SANDBOX_SNS_CERT_PATH, cl) == 0)
        pem = sandbox_sns_pem(sb->sns);
    else if (hr->path_len == al && memcmp(hr->path, SANDBOX_SNS_CA_PATH, al) == 0)
        pem = sandbox_sns_ca_pem(sb->sns);
    if (pem == NULL)
        return false;
    struct httpd_header h[] = {{"Content-Type", "application/x-pem-file"}};
    httpd_respond(hr, 200, h, 1, pem, strlen(pem));
    return true;
}

/* httpd: a request arrived. */
static void sandbox_handle(struct httpd_request *hr, void *arg)
{
    struct sandbox *sb = arg;
    if (sb->sns && strcmp(hr->method, "GET") == 0 && sandbox_serve_pem(sb, hr))
        return;
    struct sandbox_req *q = sandbox_req_new(sb, hr);
    struct seserr e;
    util_sha256_hex(hr->body.data ? hr->body.data : "", hr->body.len, q->payload_hash);
    if (sandbox_authenticate(q, &e) < 0) {
        sandbox_fail(q, &e);
        return;
    }
    int rc;
    if (q->api == SESREQ_V1) {
        rc = sesreq_parse_v1_request(hr->method, hr->query, hr->query ? hr->query_len : 0,
                                     hr->body.data, hr->body.len, SESREQ_MAX_PARAMS, &q->sr, &e);
    } else {
        rc = sesreq_parse_v2(hr->method, hr->path + q->v2_off, hr->path_len - q->v2_off,
                             hr->body.data, hr->body.len, &q->sr, &e);
    }
    if (rc < 0) {
        sandbox_fail(q, &e);
        return;
    }
    if (q->api == SESREQ_V1)
        sandbox_v1(q);
    else
        sandbox_v2(q);
}

/* httpd: a request broke a limit before it could be handled. */
static void sandbox_reject(struct httpd_request *hr, enum httpd_reject why, void *arg)
{
    struct sandbox_req *q = sandbox_req_new(arg, hr);
    struct seserr e;
    if (why == HTTPD_REJECT_TOO_LARGE)
        seserr_set(&e, SESERR_TOO_LARGE, NULL);
    else
        seserr_set(&e, SESERR_INVALID_PARAMETER, "Malformed or oversized HTTP request.");
    sandbox_fail(q, &e);
}

/* Fill out with n random characters of [A-Z0-9] (or of the 64-character
 * secret alphabet when secret is set). */
static void sandbox_random_text(char *out, size_t n, bool secret)
{
    static const char upper[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    static const char any[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *alpha = secret ? any : upper;
    size_t an = secret ? 64 : 36;
    for (size_t i = 0; i < n;) {
        unsigned char b;
        sandbox_random(&b, 1);
        if (b >= 256 - 256 % an)
            continue;
        out[i++] = alpha[b % an];
    }
    out[n] = '\0';
}

/* Start the sandbox. The listen address has no port: libevent reads that
 * as port 0 (ephemeral) but refuses an explicit ":0". */
struct sandbox *sandbox_start(struct event_base *base, const struct config *cfg, char *err,
                              size_t errlen)
{
    struct sandbox *sb = xcalloc(1, sizeof *sb);
    sb->base = base;
    sb->cfg = cfg;
    memcpy(sb->access_key_id, "AKIDSANDBOX", 11);
    sandbox_random_text(sb->access_key_id + 11, 12, false);
    sandbox_random_text(sb->secret, 40, true);
    if (strcmp(cfg->upstreams[0].region, "us-east-1") == 0)
        snprintf(sb->domain, sizeof sb->domain, "email.amazonses.com");
    else
        snprintf(sb->domain, sizeof sb->domain, "%.64s.amazonses.com", cfg->upstreams[0].region);
    struct buf p = BUF_INIT;
    buf_printf(&p, "%s/outbox", cfg->data_dir);
    sb->outbox = buf_detach(&p, NULL);
    buf_printf(&p, "%s/sandbox/templates", cfg->data_dir);
    sb->templates = buf_detach(&p, NULL);
    buf_printf(&p, "%s/sandbox/identities", cfg->data_dir);
    sb->identities = buf_detach(&p, NULL);
    const char *dirs[] = {sb->outbox, sb->templates, sb->identities};
    for (size_t i = 0; i < 3; i++) {
        if (sandbox_mkdirs(dirs[i]) < 0) {
            snprintf(err, errlen, "cannot create %s: %s", dirs[i], strerror(errno));
            sandbox_free(sb);
            return NULL;
        }
    }
    struct httpd_limits lim = {
        .max_header_size = (size_t)cfg->max_header_size,
        .max_headers = 100,
        .max_body = cfg->max_body,
        .read_timeout_ms = cfg->upstreams[0].timeout_ms > 0 ? cfg->upstreams[0].timeout_ms : 30000,
        .idle_timeout_ms = cfg->idle_timeout_ms,
        .max_connections = cfg->max_connections,
    };
    sb->httpd = httpd_new(base, "127.0.0.1", &lim, sandbox_handle, sandbox_reject, sb, err, errlen);
    if (sb->httpd == NULL) {
        sandbox_free(sb);
        return NULL;
    }
    httpd_set_internal(sb->httpd);
    snprintf(sb->endpoint, sizeof sb->endpoint, "http://127.0.0.1:%d", httpd_port(sb->httpd));
    if (cfg->sandbox_events) {
        char authority[64];
        snprintf(authority, sizeof authority, "127.0.0.1:%d", httpd_port(sb->httpd));
        sb->sns = sandbox_sns_new(base, cfg, authority, err, errlen);
        if (sb->sns == NULL) {
            sandbox_free(sb);
            return NULL;
        }
    }
    char rate[32], quota[32];
    snprintf(rate, sizeof rate, "%g", cfg->sandbox_rate);
    snprintf(quota, sizeof quota, "%lld", (long long)cfg->sandbox_daily_quota);
    log_event(LOG_INFO, "sandbox_start", "endpoint", sb->endpoint, "outbox", sb->outbox, "rate",
              rate, "daily_quota", quota, "events", sb->sns ? "on" : "off", NULL);
    return sb;
}

/* The SNS publisher, or NULL. */
struct sandbox_sns *sandbox_events(const struct sandbox *sb)
{
    return sb->sns;
}

/* The sandbox's URL. */
const char *sandbox_endpoint(const struct sandbox *sb)
{
    return sb->endpoint;
}

/* The access key id the sandbox accepts. */
const char *sandbox_access_key_id(const struct sandbox *sb)
{
    return sb->access_key_id;
}

/* The secret the sandbox accepts. */
const char *sandbox_secret_access_key(const struct sandbox *sb)
{
    return sb->secret;
}

/* Stop and free the sandbox. */
void sandbox_free(struct sandbox *sb)
{
    if (sb == NULL)
        return;
    sandbox_sns_free(sb->sns);
    if (sb->httpd)
        httpd_free(sb->httpd);
    free(sb->outbox);
    free(sb->templates);
    free(sb->identities);
    free(sb->log);
    free(sb->recent);
    OPENSSL_cleanse(sb->secret, sizeof sb->secret);
    free(sb);
}
