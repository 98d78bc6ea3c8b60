/* ops: the operator client (sesgate status, batch, dlq, relay).
 *
 * Synchronous, apart from the daemon: it connects to the daemon's Redis
 * ([redis] url, or the managed server's socket under data_dir), runs the
 * scripts of src/lua through EVAL and prints what they answer, as text or
 * JSON. main parses the command line and loads the configuration.
 */
#ifndef SESGATE_OPS_H
#define SESGATE_OPS_H

#include <stdbool.h>

#include <hiredis/hiredis.h>

#include "config.h"

/* Run operator command cmd ("status", "batch", "dlq" or "relay") on cfg's Redis
 * with the positional arguments argv[0..argc-1]; json: print JSON; watch:
 * print again every second until the queue is idle or the batch complete.
 * Returns the process exit code (messages are printed). */
int ops_run(const char *cmd, const struct config *cfg, int argc, char **argv, bool json,
            bool watch);

/* A synchronous connection to the daemon's Redis ([redis] url, or the
 * managed server's socket under data_dir; never started from here), or
 * NULL after printing why. redisFree it. */
redisContext *ops_redis(const struct config *cfg);

#endif
