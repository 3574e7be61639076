/* The changelog record: one identity's state snapshot on burstguard.state.v1.
 *
 * Value = Confluent framing (magic 0, 4-byte big-endian schema id) + the
 * Avro binary of burstguard.v1.StateSnapshot (schemas/state_snapshot.avsc):
 * identity, partition, format_version, state, updated_at, worker_version.
 * `state` holds the engine's snapshot compressed with LZ4's block format,
 * prefixed by its uncompressed size (4 bytes, big-endian):
 *
 *     +---------------+------------------------------+
 *     | size (u32 BE) | LZ4 block (LZ4_compress_default) |
 *     +---------------+------------------------------+
 *
 * The decoder trusts nothing: every Avro length is checked against what is
 * left, the declared size against BG_CHANGELOG_MAX_STATE, and
 * LZ4_decompress_safe must produce exactly the declared size. A record that
 * fails any check is BG_ERR_SNAPSHOT (or TRUNCATED / MALFORMED / BAD_MAGIC)
 * with one line in why: the caller counts it and skips it.
 *
 * Each record also carries the header bg.offsets = "U,S,T": the next input
 * offsets of the task's usage, secrets and toolcalls partitions when the
 * snapshot was taken. A restore uses them to skip events the snapshot
 * already contains when the input is read again from an older committed
 * offset (at-least-once, or a cluster that drops transactional offsets).
 *
 * Ownership: encode appends into a caller-owned bg_buf; decode's views point
 * into the input buffer and into the caller's scratch buffer. */
#ifndef BG_CHANGELOG_H
#define BG_CHANGELOG_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"

#define BG_CHANGELOG_MAX_STATE (16u << 20) /* uncompressed snapshot of one identity */
#define BG_CHANGELOG_OFFSETS_HEADER "bg.offsets"

typedef struct bg_changelog_rec {
    const char *identity; /* view, not NUL-terminated */
    size_t identity_len;
    int32_t partition;
    int32_t format_version;
    const uint8_t *state; /* decompressed, in scratch */
    size_t state_len;
    int64_t updated_at;
} bg_changelog_rec;

/* Encode one snapshot into out (replacing its contents). */
bg_err bg_changelog_encode(int32_t schema_id, const char *identity, size_t identity_len,
                           int32_t partition, int32_t format_version, const uint8_t *state,
                           size_t state_len, int64_t updated_at, const char *worker_version,
                           bg_buf *out);
/* Decode and decompress one record value; scratch receives the state. */
bg_err bg_changelog_decode(const void *buf, size_t len, bg_changelog_rec *rec, bg_buf *scratch,
                           char *why, size_t why_size);
/* Parse a bg.offsets header value into next[3]; false when malformed. */
bool bg_changelog_parse_offsets(const void *v, size_t len, int64_t next[3]);

#endif

/* ---- restore reader ----------------------------------------------------------
 *
 * A consumer of topics.state that never subscribes or commits (read_committed, partition EOF
 * reported) that reads changelog partitions from their beginning to their
 * end, several at once, incrementally: the pipeline polls it between its
 * batches, so the tasks that are not restoring keep running. */
#include <stdbool.h>

#include <librdkafka/rdkafka.h>

#include "config.h"

typedef struct bg_restorer bg_restorer;

bg_err bg_restorer_new(const bg_config *cfg, bg_restorer **out, char *errstr, size_t errstr_size);
void bg_restorer_free(bg_restorer *r); /* NULL is a no-op */
/* Start reading partition from its beginning. *records: how many records it
 * holds (high - low watermark); 0 means there is nothing to restore and the
 * partition was not added. */
bg_err bg_restorer_start(bg_restorer *r, int32_t partition, int64_t *records, int64_t *high,
                         char *errstr, size_t errstr_size);
/* Stop reading partition (its restore is done or it was revoked). */
void bg_restorer_stop(bg_restorer *r, int32_t partition);
/* The next message or event (RD_KAFKA_RESP_ERR__PARTITION_EOF), or NULL
 * after timeout_ms. Caller destroys it. */
rd_kafka_message_t *bg_restorer_poll(bg_restorer *r, int timeout_ms);
