/* buf: growable byte buffers and small allocation helpers.
 *
 * Out-of-memory policy (see HACKING.md): allocation failure is fatal. Every
 * x*() helper and every buf_*() function aborts the process with a message
 * on stderr when memory cannot be had; callers never test for NULL. Buffers
 * that grow from untrusted input are bounded by their callers, from config.
 */
#ifndef SESGATE_BUF_H
#define SESGATE_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data; /* NULL, or NUL-terminated at len after an append, buf_cstr() or
                   buf_detach() (buf_reserve() leaves the room past len to the
                   caller, who may write there before extending len); owned */
    size_t len; /* bytes used, excluding the terminating NUL */
    size_t cap; /* bytes allocated */
};

#define BUF_INIT                                                                                   \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* Allocate or die. Results are owned by the caller (free()). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Make room for at least n more bytes (plus a NUL). */
void buf_reserve(struct buf *b, size_t n);
/* Append n bytes; the buffer stays NUL-terminated. */
void buf_add(struct buf *b, const void *p, size_t n);
/* Append a NUL-terminated string. */
void buf_adds(struct buf *b, const char *s);
/* Append one byte. */
void buf_addc(struct buf *b, char c);
/* Append formatted text. */
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* The contents as a C string; never NULL (an empty buffer gives ""). */
const char *buf_cstr(struct buf *b);
/* Forget the contents, keep the allocation. */
void buf_reset(struct buf *b);
/* Release the allocation; the buffer is empty and reusable afterwards. */
void buf_free(struct buf *b);
/* Hand the allocation to the caller (free() it); the buffer is left empty. */
char *buf_detach(struct buf *b, size_t *len);

#endif
