/* Emit stage: encodes the engine's outputs and dead letters and produces them
 * to the output topics with an idempotent producer and delivery reports.
 *
 * exactly_once (worker.guarantee): the producer is transactional
 * (transactional.id from bg_emitter_transactional_id()). A transaction is
 * open from bg_emitter_new() on; bg_emitter_commit() adds the consumer's
 * offsets to it (send_offsets_to_transaction with the group metadata),
 * commits it and opens the next one. An abortable error aborts it: the
 * caller rewinds the consumer and rebuilds the state it covered. A fatal
 * error (fenced by a newer instance with the same transactional.id, or by
 * the group) ends the worker.
 *
 * bg_emitter_sync() waits until everything produced so far is acknowledged;
 * the pipeline stores input offsets only after it returns BG_OK, which makes
 * the worker at-least-once: a crash re-reads input whose outputs were not
 * acknowledged, and never skips input whose outputs were lost.
 *
 * Ownership: the emitter owns its producer; the codec and config must outlive it. */
#ifndef BG_EMIT_H
#define BG_EMIT_H

#include <stdbool.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "codec.h"
#include "config.h"

typedef struct bg_emitter bg_emitter;


/* group_id: the consumer group (for the derived transactional.id; NULL =
 * kafka.group.id). transactional: exactly_once producer (init_transactions
 * and the first begin_transaction happen here). */
bg_err bg_emitter_new(const bg_config *cfg, bg_codec *codec, bool replay, bg_emitter **out,
                      char *errstr, size_t errstr_size);
bg_err bg_emitter_new_txn(const bg_config *cfg, bg_codec *codec, const char *group_id,
                          bool transactional, bg_emitter **out, char *errstr, size_t errstr_size);
void bg_emitter_free(bg_emitter *em); /* flushes for up to shutdown_timeout_ms; NULL is a no-op */

/* Encode and produce every verdict and revocation command in o. */
bg_err bg_emitter_outputs(bg_emitter *em, const bg_outputs *o);
/* Produce the original bytes of m to the dead-letter topic with headers
 * bg.reason (bg_err_name), bg.error (one line), bg.topic, bg.partition,
 * bg.offset, bg.timestamp. */
bg_err bg_emitter_deadletter(bg_emitter *em, const rd_kafka_message_t *m, bg_err reason,
                             const char *why);
/* One changelog record to partition `partition` of topics.state keyed by
 * identity: value (NULL = tombstone) with the header bg.offsets. */
bg_err bg_emitter_changelog(bg_emitter *em, int32_t partition, const char *identity,
                            size_t identity_len, const void *value, size_t len,
                            const char *offsets);

typedef enum bg_txn_result {
    BG_TXN_OK,      /* committed; the next transaction is open */
    BG_TXN_ABORTED, /* aborted (abortable error); the next transaction is open */
    BG_TXN_FATAL,   /* fenced or fatal: the producer is unusable */
} bg_txn_result;
/* exactly_once: commit the open transaction with the input offsets
 * (next offsets; may be empty) of consumer; writes one line in why unless
 * BG_TXN_OK. */
bg_txn_result bg_emitter_commit(bg_emitter *em, rd_kafka_t *consumer,
                                rd_kafka_topic_partition_list_t *offsets, char *why,
                                size_t why_size);
/* exactly_once: abort the open transaction and open the next. */
bg_txn_result bg_emitter_abort(bg_emitter *em, char *why, size_t why_size);
bool bg_emitter_transactional(const bg_emitter *em);
/* The producer hit a fatal error (fenced, among others): its reason in why. */
bool bg_emitter_fatal(bg_emitter *em, char *why, size_t why_size);
/* The transactional.id worker.transactional_id or derived from group and
 * instance: <group>-<group.instance.id>, else <group>-<hostname>-<pid>. */
void bg_emitter_transactional_id(const bg_config *cfg, const char *group_id, char *buf,
                                 size_t size);
/* Wait up to timeout_ms for every produced message to be acknowledged.
 * BG_OK: all delivered. BG_ERR_KAFKA: a delivery failed (outputs may be lost:
 * the caller must not store the offsets of this batch). BG_ERR_FULL: timed out. */
bg_err bg_emitter_sync(bg_emitter *em, int timeout_ms);

#endif
