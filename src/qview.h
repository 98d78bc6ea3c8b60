/* qview: the operator's views of the queue (core: no I/O, no clock).
 *
 * `sesgate batch`, `sesgate status` and the admin listener run show.lua and
 * stats.lua (src/lua, through rscript) and turn the replies into the JSON
 * objects they print or serve.
 */
#ifndef SESGATE_QVIEW_H
#define SESGATE_QVIEW_H

#include <stdbool.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

/* True when id has the shape of a batch id: 36 of [0-9a-f-]. */
bool qview_batch_id_ok(const char *id);

/* A reference to a batch, or to one of its copies, as a client or operator
 * has it: the batch id, "sesgate-<id>" (the MessageId of a send queued
 * whole) or "sesgate-<id>-<index>" (a queued destination of a bulk call).
 * ref is n bytes; fills id and *index (-1: the whole batch). False when
 * ref is none of these. */
bool qview_batch_ref(const char *ref, size_t n, char id[37], long long *index);

/* Keep only the copy of index in the status object b (qview_show_json's). */
void qview_show_only(json_t *b, long long index);

/* The keys of show.lua for batch id under key prefix pfx (batch hash,
 * outcome hash, recipient list, delay set, delivery states), into
 * keys[QVIEW_SHOW_KEYS]; free each. */
#define QVIEW_SHOW_KEYS 5
void qview_show_keys(const char *pfx, const char *id, char *keys[QVIEW_SHOW_KEYS]);

/* The batch status object (the JSON of GET /batches/{id}) built from
 * show.lua's reply; NULL when the batch does not exist. The caller owns the
 * reference. Each recipient (index) has "delivery": the delivery states of
 * its addresses after SES accepted its copy (the reply's sixth element,
 * flat (field "<index>:<address>", value "<state>\t<ms>\t<detail>") pairs;
 * a reply without it: none), each {address, state, time (ISO 8601),
 * time_ms, and the detail's members: a JSON object's as they are, else
 * tab-separated text as type, subtype, diagnostic for a bounce,
 * feedback_type for a complaint, detail otherwise}, ordered by address.
 * The batch's counters delivered, bounced, complained, delayed, rejected
 * and suppressed come from its hash (absent: 0). */
json_t *qview_show_json(const char *id, const redisReply *reply);

/* The keys of control.lua for batch id under key prefix pfx (batch hash,
 * the prefix itself), into keys[2]; free each. */
void qview_control_keys(const char *pfx, const char *id, char *keys[2]);

/* The answer of a pause, resume or cancel (sesgate batch, POST
 * /batches/{id}/...): {"batch", "state", "in_flight", "held"} from
 * control.lua's reply {state, in_flight, held}, with in_flight taken from
 * the call that set the state (in_flight < 0: the reply's own). NULL for a
 * malformed reply. The caller owns the reference. */
json_t *qview_control_json(const char *id, const redisReply *reply, long long in_flight);

/* The status a control.lua error maps to on the admin listener: 404 for
 * NOBATCH, 409 for CANCELLED and COMPLETE, 400 for BADARGS, else 503. */
int qview_control_status(const char *err);

/* How many indexes, and delay-set members, one show.lua call reads: a
 * page of a big batch holds Redis a few ms. */
#define QVIEW_SHOW_PAGE   10000
#define QVIEW_SHOW_SCAN   "2000"
#define QVIEW_SHOW_STATES "5000"

/* qview_show_json over show.lua's pages (pages[0..npages-1], in index
 * order, each called with the cursors the one before returned): the
 * outcomes, addresses, retries and delivery states of every page, the
 * batch hash of the first. NULL when the batch does not exist or a page is malformed. The
 * pages stay the caller's. */
json_t *qview_show_pages(const char *id, redisReply *const *pages, size_t npages);

/* The five keys of stats.lua under key prefix pfx, into keys[5]; free each. */
void qview_stats_keys(const char *pfx, char *keys[5]);

/* The queue summary object (sesgate status --json) from stats.lua's reply
 * at now_ms (ms since the epoch), with "relays": {queued, inflight,
 * retrying, dead} (zeros from a reply without them); NULL for a malformed
 * reply. The caller owns the reference. */
json_t *qview_stats_json(const redisReply *reply, int64_t now_ms);

#endif
