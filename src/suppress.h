/* suppress: the operator's suppression list commands (sesgate suppression
 * list|add|remove|import|export), a synchronous client of the daemon's
 * Redis like ops. The list itself is {P}:sup (suplist.h,
 * docs/SUPPRESSION.md).
 */
#ifndef SESGATE_SUPPRESS_H
#define SESGATE_SUPPRESS_H

#include <stdbool.h>

#include "config.h"

/* Import steps: the entries one sup.lua call writes, so that a file of a million
 * lines never holds Redis for long. */
#define SUPPRESS_CHUNK 1000

/* Run `sesgate suppression ARGS` on cfg's Redis: argv[0] the subcommand,
 * then its operands; reason: --reason's value (NULL: none); json: print
 * JSON. Returns the exit code (0, 1 refused or failed, 2 usage). */
int suppress_run(const struct config *cfg, int argc, char **argv, const char *reason, bool json);

#endif
