/* suppress: sesgate suppression list|add|remove|import|export (see
 * suppress.h). Every step is a short Redis command: the list is read with
 * HSCAN, an import writes SUPPRESS_CHUNK entries per sup.lua call (which
 * also notes each change for the SES mirror when sync_ses is on). */
#include "suppress.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "clock.h"
#include "ops.h"
#include "rscript.h"
#include "suplist.h"

/* Print j compactly on one line, or indented. */
static void suppress_print_json(const json_t *j, bool compact)
{
    char *s = json_dumps(j, (compact ? JSON_COMPACT : JSON_INDENT(2)) | JSON_ENSURE_ASCII);
    if (s == NULL)
        abort();
    puts(s);
    free(s);
}

/* A reply that is an error or missing: print it, true. */
static bool suppress_failed(redisContext *c, const redisReply *r)
{
    if (r == NULL) {
        fprintf(stderr, "sesgate: redis: %s\n", c->errstr);
        return true;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "sesgate: redis: %s\n", r->str);
        return true;
    }
    return false;
}

/* The keys of sup.lua: the list, and the sync stream when cfg mirrors SES's
 * list ([suppression] sync_ses); *nkeys how many. */
static void suppress_keys(const struct config *cfg, const char *ksup, char *kss, size_t kslen,
                          int *nkeys)
{
    size_t n = strlen(ksup);
    snprintf(kss, kslen, "%.*sss", (int)(n - 3), ksup); /* P:{P}:sup -> P:{P}:ss */
    *nkeys = cfg->suppress_sync_ses ? 2 : 1;
}

/* Run sup.lua (op "put" or "del") with the nargs arguments after op. The
 * reply, or NULL after printing why. */
static redisReply *suppress_eval(redisContext *c, const struct config *cfg, const char *ksup,
                                 const char *op, size_t nargs, const char *const *args)
{
    char kss[512], nk[8];
    int nkeys;
    suppress_keys(cfg, ksup, kss, sizeof kss, &nkeys);
    snprintf(nk, sizeof nk, "%d", nkeys);
    size_t argc = 3 + (size_t)nkeys + 1 + nargs;
    const char **argv = xcalloc(argc, sizeof *argv);
    size_t k = 0;
    argv[k++] = "EVAL";
    argv[k++] = rscript_source(RSCRIPT_SUP);
    argv[k++] = nk;
    argv[k++] = ksup;
    if (nkeys == 2)
        argv[k++] = kss;
    argv[k++] = op;
    for (size_t i = 0; i < nargs; i++)
        argv[k++] = args[i];
    redisReply *r = redisCommandArgv(c, (int)argc, argv, NULL);
    free(argv);
    if (suppress_failed(c, r)) {
        if (r)
            freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* list and export: every entry, one HSCAN step (about 1,000) at a time,
 * printed as it comes. list: "address reason added source" lines or a
 * JSON array; export: SES's CSV ("address,reason" header) or a JSON
 * array. */
static int suppress_scan(redisContext *c, const char *ksup, bool csv, bool json)
{
    char cursor[32] = "0";
    size_t n = 0;
    if (json)
        fputs("[", stdout);
    else if (csv)
        puts("address,reason");
    do {
        redisReply *r = redisCommand(c, "HSCAN %s %s COUNT 1000", ksup, cursor);
        if (suppress_failed(c, r) || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING) {
            if (r)
                freeReplyObject(r);
            if (json)
                puts("]");
            return 1;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        const redisReply *kv = r->element[1];
        for (size_t k = 0; k + 1 < kv->elements; k += 2) {
            const redisReply *f = kv->element[k], *v = kv->element[k + 1];
            if (json) {
                json_t *o = suplist_json(f->str, f->len, v->str, v->len);
                fputs(n ? ",\n  " : "\n  ", stdout);
                char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
                if (s == NULL)
                    abort();
                fputs(s, stdout);
                free(s);
                json_decref(o);
            } else {
                struct suplist_entry e;
                suplist_entry_parse(v->str, v->len, &e);
                if (csv) {
                    printf("%s,%s\n", f->str, e.reason);
                } else {
                    json_t *o = suplist_json(f->str, f->len, v->str, v->len);
                    printf("%s %s %s %s\n", f->str, e.reason,
                           json_string_value(json_object_get(o, "added"))[0]
                               ? json_string_value(json_object_get(o, "added"))
                               : "-",
                           e.source[0] ? e.source : "-");
                    json_decref(o);
                }
            }
            n++;
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    if (json)
        puts(n ? "\n]" : "]");
    return 0;
}

/* The field for addr, or -1 after printing why it is not an address. */
static int suppress_key(const char *addr, char *key)
{
    const char *why;
    if (suplist_key(addr, strlen(addr), key, &why) < 0) {
        fprintf(stderr, "sesgate: %s: %s\n", addr, why);
        return -1;
    }
    return 0;
}

/* add ADDR [--reason R]: add or update the entry. */
static int suppress_add(redisContext *c, const struct config *cfg, const char *ksup,
                        const char *addr, const char *reason, bool json)
{
    char key[SUPLIST_MAX_KEY + 1];
    if (suppress_key(addr, key) < 0)
        return 1;
    const char *r = suplist_reason(reason);
    if (r == NULL) {
        fprintf(stderr, "sesgate: reason %s is none of BOUNCE, COMPLAINT, TRANSIENT, MANUAL\n",
                reason);
        return 2;
    }
    struct buf v = BUF_INIT;
    suplist_value(r, clock_wall_ms(), "cli", &v);
    const char *args[2] = {key, buf_cstr(&v)};
    redisReply *rep = suppress_eval(c, cfg, ksup, "put", 2, args);
    int rc = 1;
    if (rep != NULL) {
        rc = 0;
        if (json) {
            json_t *o = suplist_json(key, strlen(key), v.data, v.len);
            json_object_set_new(o, "new", json_boolean(rep->integer == 1));
            suppress_print_json(o, false);
            json_decref(o);
        } else {
            printf("%s %s %s\n", rep->integer == 1 ? "added" : "updated", key, r);
        }
    }
    if (rep)
        freeReplyObject(rep);
    buf_free(&v);
    return rc;
}

/* remove ADDR: exit 1 when it was not on the list. */
static int suppress_remove(redisContext *c, const struct config *cfg, const char *ksup,
                           const char *addr, bool json)
{
    char key[SUPLIST_MAX_KEY + 1];
    if (suppress_key(addr, key) < 0)
        return 1;
    const char *args[1] = {key};
    redisReply *rep = suppress_eval(c, cfg, ksup, "del", 1, args);
    if (rep == NULL)
        return 1;
    bool removed = rep->integer == 1;
    freeReplyObject(rep);
    if (json) {
        json_t *o = json_pack("{sssb}", "address", key, "removed", removed);
        suppress_print_json(o, false);
        json_decref(o);
    } else {
        printf("%s %s\n", removed ? "removed" : "not suppressed", key);
    }
    return removed ? 0 : 1;
}

/* Write the entries gathered in argv[2..*argc) (field value pairs): one
 * sup.lua call. */
static int suppress_flush(redisContext *c, const struct config *cfg, const char *ksup,
                          const char **argv, size_t *argc)
{
    if (*argc <= 2)
        return 0;
    redisReply *r = suppress_eval(c, cfg, ksup, "put", *argc - 2, argv + 2);
    if (r)
        freeReplyObject(r);
    for (size_t k = 2; k < *argc; k++)
        free((char *)argv[k]);
    *argc = 2;
    return r ? 0 : -1;
}

/* import FILE ("-": standard input): one address or "address,reason" a
 * line; SUPPRESS_CHUNK entries per sup.lua call. A bad line is reported (line
 * number and why) and skipped; the exit code is then 1. */
static int suppress_import(redisContext *c, const struct config *cfg, const char *ksup,
                           const char *path, const char *reason, bool json)
{
    if (reason != NULL && suplist_reason(reason) == NULL) {
        fprintf(stderr, "sesgate: reason %s is none of BOUNCE, COMPLAINT, TRANSIENT, MANUAL\n",
                reason);
        return 2;
    }
    FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (in == NULL) {
        fprintf(stderr, "sesgate: %s: %s\n", path, strerror(errno));
        return 1;
    }
    const char **argv = xcalloc(2 + 2 * SUPPRESS_CHUNK, sizeof *argv);
    size_t argc = 2;
    argv[0] = "put";
    argv[1] = ksup;
    char *line = NULL;
    size_t cap = 0, lineno = 0, imported = 0, bad = 0;
    ssize_t len;
    int64_t now = clock_wall_ms();
    struct buf v = BUF_INIT;
    json_t *invalid = json_array();
    int rc = 0;
    while ((len = getline(&line, &cap, in)) >= 0) {
        lineno++;
        if (len > 0 && line[len - 1] == '\n')
            len--;
        char key[SUPLIST_MAX_KEY + 1];
        const char *r = NULL, *why = NULL;
        enum suplist_line l =
            suplist_import_line(line, (size_t)len, lineno == 1, reason, key, &r, &why);
        if (l == SUPLIST_LINE_SKIP)
            continue;
        if (l == SUPLIST_LINE_BAD) {
            bad++;
            if (json)
                json_array_append_new(
                    invalid, json_pack("{sIss}", "line", (json_int_t)lineno, "reason", why));
            else
                fprintf(stderr, "sesgate: %s:%zu: %s\n", path, lineno, why);
            continue;
        }
        buf_reset(&v);
        suplist_value(r, now, "import", &v);
        argv[argc++] = xstrdup(key);
        argv[argc++] = xstrdup(buf_cstr(&v));
        imported++;
        if (argc == 2 + 2 * SUPPRESS_CHUNK && suppress_flush(c, cfg, ksup, argv, &argc) < 0) {
            rc = 1;
            break;
        }
    }
    if (rc == 0 && suppress_flush(c, cfg, ksup, argv, &argc) < 0)
        rc = 1;
    for (size_t k = 2; k < argc; k++)
        free((char *)argv[k]);
    free(argv);
    free(line);
    buf_free(&v);
    if (in != stdin)
        fclose(in);
    if (rc != 0) {
        json_decref(invalid);
        return rc;
    }
    if (json) {
        json_t *o = json_pack("{sIsIso}", "imported", (json_int_t)imported, "invalid_lines",
                              (json_int_t)bad, "invalid", invalid);
        suppress_print_json(o, false);
        json_decref(o);
    } else {
        json_decref(invalid);
        printf("imported %zu invalid %zu\n", imported, bad);
    }
    return bad ? 1 : 0;
}

/* Public: run a suppression list command. */
int suppress_run(const struct config *cfg, int argc, char **argv, const char *reason, bool json)
{
    const char *cmd = argc > 0 ? argv[0] : "";
    bool one = strcmp(cmd, "add") == 0 || strcmp(cmd, "remove") == 0 || strcmp(cmd, "import") == 0;
    bool none = strcmp(cmd, "list") == 0 || strcmp(cmd, "export") == 0;
    if (!((one && argc == 2) || (none && argc == 1)) ||
        (reason && strcmp(cmd, "add") != 0 && strcmp(cmd, "import") != 0)) {
        fprintf(stderr,
                "usage: sesgate suppression [-c FILE] list|export [--json]\n"
                "       sesgate suppression [-c FILE] add ADDRESS [--reason "
                "BOUNCE|COMPLAINT|TRANSIENT|MANUAL] [--json]\n"
                "       sesgate suppression [-c FILE] remove ADDRESS [--json]\n"
                "       sesgate suppression [-c FILE] import FILE|- [--reason R] [--json]\n");
        return 2;
    }
    redisContext *c = ops_redis(cfg);
    if (c == NULL)
        return 1;
    char *pfx = rscript_prefix(cfg);
    struct buf k = BUF_INIT;
    buf_printf(&k, "%ssup", pfx);
    free(pfx);
    char *ksup = buf_detach(&k, NULL);
    int rc;
    if (strcmp(cmd, "list") == 0)
        rc = suppress_scan(c, ksup, false, json);
    else if (strcmp(cmd, "export") == 0)
        rc = suppress_scan(c, ksup, true, json);
    else if (strcmp(cmd, "add") == 0)
        rc = suppress_add(c, cfg, ksup, argv[1], reason, json);
    else if (strcmp(cmd, "remove") == 0)
        rc = suppress_remove(c, cfg, ksup, argv[1], json);
    else
        rc = suppress_import(c, cfg, ksup, argv[1], reason, json);
    free(ksup);
    redisFree(c);
    return rc;
}
