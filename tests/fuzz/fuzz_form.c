/* fuzz_form: form_parse on arbitrary input, with invariants and an
 * encode/parse round trip of every accepted form; form_decode both ways. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "form.h"
#include "util.h"

#define FUZZ_FORM_MAX 64

/* Abort when cond is false, so that libFuzzer reports the input. */
static void fuzz_form_assert(int cond)
{
    if (!cond)
        abort();
}

/* Check what form_parse promises about an accepted form. */
static void fuzz_form_invariants(const struct form *f)
{
    fuzz_form_assert(f->n <= FUZZ_FORM_MAX);
    for (size_t i = 0; i < f->n; i++) {
        const struct form_param *p = &f->params[i];
        fuzz_form_assert(p->name_len > 0);
        fuzz_form_assert(p->name[p->name_len] == '\0' && p->value[p->value_len] == '\0');
        fuzz_form_assert(memchr(p->name, '\0', p->name_len) == NULL);
        fuzz_form_assert(util_utf8_valid(p->name, p->name_len));
        fuzz_form_assert(util_utf8_valid(p->value, p->value_len));
        size_t len;
        const char *v = form_get(f, p->name, &len);
        fuzz_form_assert(v == p->value && len == p->value_len);
        for (size_t j = 0; j < i; j++)
            fuzz_form_assert(f->params[j].name_len != p->name_len ||
                             memcmp(f->params[j].name, p->name, p->name_len) != 0);
    }
}

/* Encode f with form_encode and parse it again: the same form must result. */
static void fuzz_form_round_trip(const struct form *f)
{
    struct buf enc = BUF_INIT;
    for (size_t i = 0; i < f->n; i++) {
        if (i > 0)
            buf_addc(&enc, '&');
        form_encode(f->params[i].name, f->params[i].name_len, &enc);
        buf_addc(&enc, '=');
        form_encode(f->params[i].value, f->params[i].value_len, &enc);
    }
    struct form g = {NULL, 0};
    fuzz_form_assert(form_parse(buf_cstr(&enc), enc.len, FUZZ_FORM_MAX, &g, NULL, 0) == FORM_OK);
    fuzz_form_assert(g.n == f->n);
    for (size_t i = 0; i < f->n; i++) {
        const struct form_param *a = &f->params[i], *b = &g.params[i];
        fuzz_form_assert(a->name_len == b->name_len && a->value_len == b->value_len);
        fuzz_form_assert(memcmp(a->name, b->name, a->name_len) == 0);
        fuzz_form_assert(memcmp(a->value, b->value, a->value_len) == 0);
    }
    form_free(&g);
    buf_free(&enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* libFuzzer entry point. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct form f = {NULL, 0};
    char err[128];
    int rc = form_parse(s, size, FUZZ_FORM_MAX, &f, err, sizeof err);
    if (rc == FORM_OK) {
        fuzz_form_invariants(&f);
        fuzz_form_round_trip(&f);
    } else {
        fuzz_form_assert(rc >= FORM_ERR_EMPTY_NAME && rc <= FORM_ERR_ENCODING);
        fuzz_form_assert(f.n == 0 && f.params == NULL);
        fuzz_form_assert(err[0] != '\0' && strlen(err) < sizeof err);
    }
    form_free(&f);

    for (int plus = 0; plus < 2; plus++) {
        struct buf d = BUF_INIT;
        if (form_decode(s, size, plus != 0, &d) == 0)
            fuzz_form_assert(d.len <= size);
        buf_free(&d);
    }
    return 0;
}
