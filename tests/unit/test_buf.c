/* Unit tests for buf: appends of every kind, growth, reset, detach, the
 * x*() helpers, and the out-of-memory policy (a request for more than
 * half the address space aborts with a log line). */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "check.h"

#define MAXOPS 6

/* One step on a buffer. */
struct op {
    enum { OP_END, OP_ADD, OP_ADDS, OP_ADDC, OP_PRINTF, OP_RESET, OP_RESERVE } kind;
    const char *s; /* bytes (ADD), string (ADDS, PRINTF's %s), char s[0] (ADDC) */
    size_t n;      /* ADD: byte count; PRINTF: the %d argument; RESERVE: bytes */
};

static const struct buf_case {
    const char *name;
    struct op ops[MAXOPS];
    const char *want; /* contents */
    size_t want_len;
} buf_cases[] = {
    {"nothing", {{OP_END, NULL, 0}}, "", 0},
    {"adds", {{OP_ADDS, "hello", 0}, {OP_ADDS, ", world", 0}}, "hello, world", 12},
    {"adds empty", {{OP_ADDS, "", 0}, {OP_ADDS, "x", 0}, {OP_ADDS, "", 0}}, "x", 1},
    {"add with NUL bytes", {{OP_ADD, "a\0b\0", 4}, {OP_ADD, "c", 1}}, "a\0b\0c", 5},
    {"add zero bytes", {{OP_ADD, "ignored", 0}}, "", 0},
    {"addc", {{OP_ADDC, "a", 0}, {OP_ADDC, "\0", 0}, {OP_ADDC, "z", 0}}, "a\0z", 3},
    {"printf", {{OP_ADDS, "n=", 0}, {OP_PRINTF, "x", 42}}, "n=x:42", 6},
    {"printf long (grows past the first 64 bytes)",
     {{OP_PRINTF, "0123456789012345678901234567890123456789012345678901234567890123456789", 7}},
     "0123456789012345678901234567890123456789012345678901234567890123456789:7",
     72},
    {"reset forgets", {{OP_ADDS, "gone", 0}, {OP_RESET, NULL, 0}, {OP_ADDS, "kept", 0}}, "kept", 4},
    {"reset on empty", {{OP_RESET, NULL, 0}}, "", 0},
    {"reserve adds nothing", {{OP_RESERVE, NULL, 1000}, {OP_ADDS, "a", 0}}, "a", 1},
    {"reserve only", {{OP_RESERVE, NULL, 10}}, "", 0},
    {"reserve after content", {{OP_ADDS, "ab", 0}, {OP_RESERVE, NULL, 5000}}, "ab", 2},
    {"many appends",
     {{OP_PRINTF, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 1},
      {OP_PRINTF, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", 2},
      {OP_ADD, "\0\0", 2}},
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:1"
     "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb:2\0\0",
     140},
};

/* Run the ops of c on b. */
static void buf_run(const struct buf_case *c, struct buf *b)
{
    for (size_t i = 0; i < MAXOPS && c->ops[i].kind != OP_END; i++) {
        const struct op *o = &c->ops[i];
        switch (o->kind) {
        case OP_ADD:
            buf_add(b, o->s, o->n);
            break;
        case OP_ADDS:
            buf_adds(b, o->s);
            break;
        case OP_ADDC:
            buf_addc(b, o->s[0]);
            break;
        case OP_PRINTF:
            buf_printf(b, "%s:%d", o->s, (int)o->n);
            break;
        case OP_RESET:
            buf_reset(b);
            break;
        case OP_RESERVE:
            buf_reserve(b, o->n);
            CHECK(b->cap >= b->len + o->n + 1, "%s: reserve %zu gave cap %zu for len %zu", c->name,
                  o->n, b->cap, b->len);
            break;
        case OP_END:
            break;
        }
        /* invariants after every step */
        CHECK(b->data == NULL || b->cap > b->len, "%s: step %zu: cap %zu, len %zu", c->name, i,
              b->cap, b->len);
        /* a reserve leaves the room past len to the caller; anything that
         * appends ends the string at len */
        if (o->kind != OP_RESERVE)
            CHECK(b->data == NULL || b->data[b->len] == '\0', "%s: step %zu: not NUL-terminated",
                  c->name, i);
    }
}

static void test_cases(void)
{
    for (size_t i = 0; i < sizeof buf_cases / sizeof buf_cases[0]; i++) {
        const struct buf_case *c = &buf_cases[i];
        struct buf b = BUF_INIT;
        buf_run(c, &b);
        CHECK(b.len == c->want_len, "%s: len %zu, want %zu", c->name, b.len, c->want_len);
        CHECK(b.len == c->want_len && memcmp(buf_cstr(&b), c->want, c->want_len) == 0,
              "%s: contents \"%s\", want \"%s\"", c->name, buf_cstr(&b), c->want);
        CHECK(buf_cstr(&b)[b.len] == '\0', "%s: buf_cstr not NUL-terminated", c->name);

        /* detach hands over the same bytes and leaves the buffer empty */
        size_t n = 12345;
        char *p = buf_detach(&b, &n);
        CHECK(p != NULL && n == c->want_len && memcmp(p, c->want, n) == 0 && p[n] == '\0',
              "%s: detach gave %zu bytes", c->name, n);
        CHECK(b.data == NULL && b.len == 0 && b.cap == 0, "%s: buffer not empty after detach",
              c->name);
        free(p);

        /* the buffer is reusable after detach and after free */
        buf_adds(&b, "again");
        CHECK_STR(buf_cstr(&b), "again", c->name);
        buf_free(&b);
        CHECK(b.data == NULL && b.len == 0 && b.cap == 0, "%s: buffer not empty after free",
              c->name);
        CHECK_STR(buf_cstr(&b), "", c->name);
    }
}

/* Growth: the capacity doubles from 64, reset keeps the allocation. */
static void test_growth(void)
{
    static const struct {
        size_t add, want_cap;
    } steps[] = {{1, 64}, {62, 64}, {1, 128}, {64, 256}, {300, 512}, {1000, 2048}};
    struct buf b = BUF_INIT;
    size_t total = 0;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        char chunk[1000];
        memset(chunk, 'a' + (int)i, sizeof chunk);
        buf_add(&b, chunk, steps[i].add);
        total += steps[i].add;
        CHECK(b.len == total && b.cap == steps[i].want_cap,
              "step %zu: len %zu cap %zu, want %zu %zu", i, b.len, b.cap, total, steps[i].want_cap);
    }
    char *data = b.data;
    size_t cap = b.cap;
    buf_reset(&b);
    CHECK(b.len == 0 && b.cap == cap && b.data == data && b.data[0] == '\0',
          "reset changed the allocation");
    buf_free(&b);

    /* detach of a buffer that never allocated gives an owned "" */
    size_t n = 99;
    char *p = buf_detach(&b, &n);
    CHECK(p != NULL && n == 0 && p[0] == '\0', "detach of an empty buffer");
    free(p);
    p = buf_detach(&b, NULL);
    CHECK(p != NULL && p[0] == '\0', "detach without a length");
    free(p);
}

/* The x*() helpers: copies, and zero sizes give a usable pointer. */
static void test_xhelpers(void)
{
    static const struct {
        const char *s;
        size_t n;
        const char *want;
    } dups[] = {{"", 0, ""}, {"abc", 3, "abc"}, {"abcdef", 2, "ab"}, {"a\0b", 3, "a"}};
    for (size_t i = 0; i < sizeof dups / sizeof dups[0]; i++) {
        char *p = xstrndup(dups[i].s, dups[i].n);
        CHECK(memcmp(p, dups[i].s, dups[i].n) == 0 && p[dups[i].n] == '\0', "xstrndup %zu", i);
        CHECK_STR(p, dups[i].want, "xstrndup as a string");
        free(p);
    }
    char *s = xstrdup("copy");
    CHECK_STR(s, "copy", "xstrdup");
    free(s);
    void *z = xmalloc(0);
    CHECK(z != NULL, "xmalloc(0)");
    z = xrealloc(z, 0);
    CHECK(z != NULL, "xrealloc(p, 0)");
    free(z);
    unsigned char *c = xcalloc(16, 4);
    int zero = 1;
    for (size_t i = 0; i < 64; i++)
        zero &= c[i] == 0;
    CHECK(zero, "xcalloc zeroes");
    free(c);
    c = xcalloc(0, 0);
    CHECK(c != NULL, "xcalloc(0, 0)");
    free(c);
}

/* Run f in a child; return its wait status and what it wrote on stderr. */
static int buf_in_child(void (*f)(void), char *err, size_t errsize)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        f();
        _exit(0);
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t k;
    while (got + 1 < errsize && (k = read(fds[0], err + got, errsize - 1 - got)) > 0)
        got += (size_t)k;
    err[got] = '\0';
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

static void oom_reserve(void)
{
    struct buf b = BUF_INIT;
    buf_adds(&b, "x");
    buf_reserve(&b, SIZE_MAX / 2);
}

static void oom_add(void)
{
    struct buf b = BUF_INIT;
    buf_add(&b, "", SIZE_MAX - 1);
}

/* Out of memory is fatal: abort with one log line, never return. */
static void test_oom(void)
{
    static const struct {
        const char *name;
        void (*f)(void);
    } cases[] = {{"reserve beyond half the address space", oom_reserve},
                 {"add beyond the address space", oom_add}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[4096];
        int status = buf_in_child(cases[i].f, err, sizeof err);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "%s: status %#x", cases[i].name,
              status);
        CHECK(strstr(err, "level=fatal event=out_of_memory bytes=") != NULL, "%s: stderr \"%s\"",
              cases[i].name, err);
    }
}

/* Writing into reserved room before extending len, across a second reserve
 * that grows the allocation, keeps what was written (the encoders do this). */
static void test_write_past_len(void)
{
    struct buf b = BUF_INIT;
    buf_adds(&b, "ab");
    buf_reserve(&b, 3);
    memcpy(b.data + b.len, "cde", 3);
    buf_reserve(&b, 3 + 1000); /* grows: realloc keeps the bytes past len */
    memcpy(b.data + b.len + 3, "f", 1);
    b.len += 4;
    CHECK_STR(buf_cstr(&b), "abcdef", "bytes written past len survive a growing reserve");
    size_t n;
    char *p = buf_detach(&b, &n);
    CHECK(n == 6 && strcmp(p, "abcdef") == 0, "detach ends the string at len");
    free(p);
}

int main(void)
{
    test_cases();
    test_write_past_len();
    test_growth();
    test_xhelpers();
    test_oom();
    return check_done("test_buf");
}
