/* fuzz_sesevent: SES event JSON (an SNS Notification's Message) parsed into
 * the event model.
 *
 * Invariants of an accepted event: the message id and every destination
 * and recipient are non-empty strings, counts are within their bounds, an
 * event applies to the recipients it names and only a per-recipient event
 * names any; a refused one has a reason and holds nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sesevent.h"

/* Abort when cond is false, so that libFuzzer reports the input. */
static void fuzz_sesevent_assert(int cond)
{
    if (!cond)
        abort();
}

/* A non-empty string of at most SESEVENT_MAX_STRING bytes. */
static void fuzz_sesevent_str(const char *s)
{
    fuzz_sesevent_assert(s != NULL && s[0] != '\0' && strlen(s) <= SESEVENT_MAX_STRING);
}

/* Check an accepted event. */
static void fuzz_sesevent_check(const struct sesevent *ev)
{
    fuzz_sesevent_str(ev->type);
    fuzz_sesevent_str(ev->message_id);
    fuzz_sesevent_str(ev->mail_timestamp);
    fuzz_sesevent_assert(ev->ndestination >= 1 && ev->ndestination <= SESEVENT_MAX_RECIPIENTS);
    for (size_t i = 0; i < ev->ndestination; i++)
        fuzz_sesevent_str(ev->destination[i]);
    fuzz_sesevent_assert(ev->ntags <= SESEVENT_MAX_TAGS);
    for (size_t i = 0; i < ev->ntags; i++) {
        fuzz_sesevent_assert(ev->tags[i].nvalues >= 1 &&
                             ev->tags[i].nvalues <= SESEVENT_MAX_TAG_VALUES);
        fuzz_sesevent_assert(sesevent_tag(ev, ev->tags[i].name) != NULL);
    }
    fuzz_sesevent_assert(ev->nrecipients <= SESEVENT_MAX_RECIPIENTS);
    for (size_t i = 0; i < ev->nrecipients; i++)
        fuzz_sesevent_str(ev->recipients[i].address);
    switch (ev->kind) {
    case SESEVENT_BOUNCE:
    case SESEVENT_COMPLAINT:
    case SESEVENT_DELIVERY:
    case SESEVENT_DELIVERY_DELAY:
        fuzz_sesevent_assert(ev->scope == SESEVENT_SCOPE_RECIPIENTS && ev->nrecipients >= 1);
        fuzz_sesevent_str(ev->timestamp);
        break;
    case SESEVENT_REJECT:
        fuzz_sesevent_assert(ev->scope == SESEVENT_SCOPE_MESSAGE && ev->nrecipients == 0);
        fuzz_sesevent_str(ev->reason);
        break;
    case SESEVENT_UNKNOWN:
        fuzz_sesevent_assert(ev->scope == SESEVENT_SCOPE_NONE && ev->nrecipients == 0);
        break;
    default:
        fuzz_sesevent_assert(ev->scope == SESEVENT_SCOPE_DESTINATIONS && ev->nrecipients == 0);
        break;
    }
    fuzz_sesevent_assert((ev->kind == SESEVENT_BOUNCE) == (ev->bounce != SESEVENT_BOUNCE_NONE));
    fuzz_sesevent_assert(ev->kind != SESEVENT_CLICK || ev->link != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* libFuzzer entry point. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sesevent ev;
    char err[256];
    memset(err, 'x', sizeof err);
    if (sesevent_parse((const char *)data, size, &ev, err, sizeof err) == 0) {
        fuzz_sesevent_check(&ev);
        /* the same bytes give the same event */
        struct sesevent again;
        char err2[256];
        fuzz_sesevent_assert(sesevent_parse((const char *)data, size, &again, err2, sizeof err2) ==
                             0);
        fuzz_sesevent_assert(again.kind == ev.kind && again.nrecipients == ev.nrecipients &&
                             strcmp(again.message_id, ev.message_id) == 0);
        sesevent_cleanup(&again);
    } else {
        fuzz_sesevent_assert(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
        fuzz_sesevent_assert(ev.message_id == NULL && ev.recipients == NULL &&
                             ev.destination == NULL && ev.tags == NULL && ev.type == NULL);
    }
    sesevent_cleanup(&ev);
    return 0;
}
