/* The envelopes table: nhi.envelopes.v1 read in full by every worker, like a
 * global table in Kafka Streams. A consumer outside the group is assigned
 * every partition from the beginning; records are applied to a bg_envset in
 * order (the latest record of an envelope_id wins, a null value removes it).
 * bg_envtable_sync() reads to the end before the worker judges any input;
 * bg_envtable_poll() keeps the table current afterwards.
 *
 * With approver keys in the policy (bg_envtable_set_policy), a record must be
 * signed by one of them and within its scope (sign.h) or it is refused; with
 * none, envelopes are accepted unsigned (the worker says so at start).
 * Tombstones carry no signature and are always honoured: they only withdraw. A record that cannot be applied is handed to the
 * reject callback (the pipeline dead-letters it) and counted.
 * Ownership: the table owns its consumer and set; the config and codec must
 * outlive it. */
#ifndef BG_ENVELOPES_H
#define BG_ENVELOPES_H

#include <librdkafka/rdkafka.h>

#include "../detectors/envset.h"
#include "codec.h"
#include "config.h"

typedef struct bg_envtable bg_envtable;

typedef void (*bg_envtable_reject_fn)(void *opaque, const rd_kafka_message_t *m, bg_err reason,
                                      const char *why);

bg_err bg_envtable_new(const bg_config *cfg, bg_codec *codec, bg_envtable_reject_fn reject,
                       void *opaque, bg_envtable **out, char *errstr, size_t errstr_size);
void bg_envtable_free(bg_envtable *t); /* NULL is a no-op */
/* The policy whose approvers check records applied from now on (borrowed;
 * must outlive the table or be replaced; NULL: accept unsigned). Set it again
 * after a policy reload. */
void bg_envtable_set_policy(bg_envtable *t, const bg_policy *p);

/* Read until every partition's end (as of now), at most timeout_ms. */
bg_err bg_envtable_sync(bg_envtable *t, int timeout_ms, char *errstr, size_t errstr_size);
/* Apply what has arrived, without waiting. Returns the records applied. */
size_t bg_envtable_poll(bg_envtable *t);
const bg_envset *bg_envtable_set(const bg_envtable *t);

typedef struct bg_envtable_stats {
    uint64_t applied, removed, rejected;
} bg_envtable_stats;
void bg_envtable_stats_get(const bg_envtable *t, bg_envtable_stats *st);

#endif
