/* fuzz_suplist: the suppression list's import lines, fields and values on
 * arbitrary input.
 *
 * The first byte picks: even, an import line (first line when bit 1 is
 * set); odd, a stored value read back and shown. An entry's field must be
 * what suplist_key gives for its address: lower case, within
 * SUPLIST_MAX_KEY, and stable (the field of a field is itself). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "suplist.h"

/* Abort when cond is false, so that libFuzzer reports the input. */
static void fuzz_suplist_assert(int cond)
{
    if (!cond)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* libFuzzer entry point. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    if (data[0] % 2) {
        struct suplist_entry e;
        suplist_entry_parse(s, n, &e);
        fuzz_suplist_assert(strlen(e.reason) < sizeof e.reason &&
                            strlen(e.source) < sizeof e.source);
        json_t *o = suplist_json("a@x.example", 11, s, n);
        json_decref(o);
        return 0;
    }
    char key[SUPLIST_MAX_KEY + 1];
    const char *reason = NULL, *why = NULL;
    enum suplist_line l =
        suplist_import_line(s, n, (data[0] & 2) != 0, "MANUAL", key, &reason, &why);
    if (l == SUPLIST_LINE_BAD) {
        fuzz_suplist_assert(why != NULL && why[0] != '\0');
        return 0;
    }
    if (l != SUPLIST_LINE_ENTRY)
        return 0;
    size_t len = strlen(key);
    fuzz_suplist_assert(len > 0 && len <= SUPLIST_MAX_KEY && suplist_reason(reason) == reason);
    for (size_t i = 0; i < len; i++)
        fuzz_suplist_assert(!(key[i] >= 'A' && key[i] <= 'Z'));
    char again[SUPLIST_MAX_KEY + 1];
    const char *why2 = NULL;
    fuzz_suplist_assert(suplist_key(key, len, again, &why2) == (int)len &&
                        memcmp(again, key, len) == 0);
    return 0;
}
