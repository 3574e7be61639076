/* Emit stage: encodes the engine's outputs and dead letters and produces them
 * to the output topics with an idempotent producer and delivery reports.
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


bg_err bg_emitter_new(const bg_config *cfg, bg_codec *codec, bool replay, bg_emitter **out,
                      char *errstr, size_t errstr_size);
void bg_emitter_free(bg_emitter *em); /* flushes for up to shutdown_timeout_ms; NULL is a no-op */

/* Encode and produce every verdict and revocation command in o. */
bg_err bg_emitter_outputs(bg_emitter *em, const bg_outputs *o);
/* Produce the original bytes of m to the dead-letter topic with headers
 * bg.reason (bg_err_name), bg.error (one line), bg.topic, bg.partition,
 * bg.offset, bg.timestamp. */
bg_err bg_emitter_deadletter(bg_emitter *em, const rd_kafka_message_t *m, bg_err reason,
                             const char *why);
/* Wait up to timeout_ms for every produced message to be acknowledged.
 * BG_OK: all delivered. BG_ERR_KAFKA: a delivery failed (outputs may be lost:
 * the caller must not store the offsets of this batch). BG_ERR_FULL: timed out. */
bg_err bg_emitter_sync(bg_emitter *em, int timeout_ms);

#endif
