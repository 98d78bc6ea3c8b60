/* copybody: the request body of one copy of a batch, produced piece by piece
 * (pure: no I/O, no clock).
 *
 * Every copy of a batch is the batch's template plus what is its own: its
 * destinations and, for a raw message, the message with its header block
 * rewritten for the copy (rfc5322_rewrite_for_copy). A copybody_batch holds
 * what all copies share, once: the template's text before and after the
 * message, the decoded message, and the SHA-256 state after the text before
 * it. A copybody holds what one copy owns: its rewritten header block and the
 * text after the message (with its destinations), and produces the bytes as
 * they are read, encoding the message (base64, and percent-encoding for a v1
 * form) on the way. So a copy in flight costs its header block, not its
 * message, and a batch's message is held once however many copies are sent.
 *
 * The bytes are exactly those of copybody_render, which renders a copy
 * whole: v1 bodies are the form-encoded template plus the destination
 * parameters, v2 bodies the compact JSON template plus "Destination".
 */
#ifndef SESGATE_COPYBODY_H
#define SESGATE_COPYBODY_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "fanout.h"
#include "seserr.h"
#include "sesreq.h"
#include "util.h"

/* What every copy of one batch shares. */
struct copybody_batch {
    enum sesreq_api api;
    bool raw;
    bool dkim; /* raw, but the message goes as sent: only the envelope varies */
    char *pre; /* the template's text before the message (all of it when there
                  is no message to rewrite); owned */
    size_t pre_len;
    char *post; /* raw: the template's text after the message (v2: without the
                   closing brace); owned */
    size_t post_len;
    bool has_msg;   /* the message is rewritten per copy */
    struct buf msg; /* has_msg: the decoded message */
    size_t hend;    /* has_msg: where its header block ends */
    void *pre_hash; /* SHA-256 state after pre (an EVP_MD_CTX) */
};

/* Build b from a batch's template (as fanout_plan made it: a v1 form or v2
 * compact JSON without destinations). Returns 0, or -1 with e set
 * (SESERR_INTERNAL: a template that is not one, invalid base64) and b
 * cleaned up. */
int copybody_batch_init(struct copybody_batch *b, enum sesreq_api api, bool raw, bool dkim,
                        const char *template, size_t len, struct seserr *e);

/* Release what b owns; it is zeroed. */
void copybody_batch_cleanup(struct copybody_batch *b);

/* One copy's body. */
struct copybody {
    const struct copybody_batch *b;       /* borrowed: must outlive the copy */
    struct buf head;                      /* has_msg: the copy's header block */
    struct buf tail;                      /* the text after the message, destinations included */
    size_t len;                           /* bytes in all */
    char sha256[UTIL_SHA256_HEX_LEN + 1]; /* of all of them, hex */
    /* reading position */
    int part;      /* 0 pre, 1 the encoded message, 2 tail, 3 done */
    size_t off;    /* in pre or tail; in the message (head then body) */
    char pend[16]; /* encoded bytes not yet handed out */
    size_t npend, pend_off;
};

/* Set c up as the copy for To recipient to (first: copy 0, which carries the
 * riders and keeps a raw message's Cc fields), measure it and compute its
 * SHA-256 (one pass over the encoded message), and rewind it. Returns 0,
 * or -1 with e set (SESERR_INVALID_PARAMETER / SESERR_BAD_REQUEST "Illegal
 * address": a recipient the rewrite refuses, or not UTF-8 on v2) and c
 * cleaned up. */
int copybody_init(struct copybody *c, const struct copybody_batch *b, const char *to, bool first,
                  const struct fanout_rcpt *riders, size_t nriders, struct seserr *e);

/* Copy up to n next bytes of the body to out; returns how many (0 at the end). */
size_t copybody_read(struct copybody *c, char *out, size_t n);

/* Start reading from the first byte again. */
void copybody_rewind(struct copybody *c);

/* Release what c owns. */
void copybody_cleanup(struct copybody *c);

/* A copy described by its batch's template and its own recipients. */
struct copybody_spec {
    enum sesreq_api api;
    bool raw;
    bool dkim_envelope_only; /* raw: keep the message as sent */
    const char *template;    /* fanout_plan's template */
    size_t template_len;
    const char *to;                   /* the copy's one To recipient */
    bool first;                       /* copy 0: riders, and a raw message keeps its Cc fields */
    const struct fanout_rcpt *riders; /* copy 0 only, else NULL */
    size_t nriders;
};

/* Append to out the whole body of the copy s describes. Returns 0, or -1
 * with e set and out unchanged. */
int copybody_render(const struct copybody_spec *s, struct buf *out, struct seserr *e);

/* Append to out the body of copy number copy (0 .. nto-1) of the batch p.
 * Returns 0, or -1 with e set and out unchanged (not a batch, copy out of
 * range, a recipient the rewrite refuses). */
int copybody_render_plan(const struct fanout_plan *p, size_t copy, struct buf *out,
                         struct seserr *e);

#endif
