/* Avro codec for burstguard's topics, in the Confluent wire framing:
 *   byte 0      magic, always 0
 *   bytes 1..4  schema id, big-endian int32
 *   bytes 5..   Avro binary body, written with the writer schema of that id
 *
 * Reader schemas are the worker's own (schemas/NAME.avsc, compiled into the
 * binary). Writer schemas are registered by id (from the config's local map;
 * later from a Schema Registry behind the same call). Inputs are decoded by a
 * resolving decoder compiled once per (writer, reader) pair into a plan of
 * read / skip / default steps: no allocation per message, every length checked
 * against the caps in detectors/event.h, the decoded bg_str views point into the
 * caller's buffer. Avro-C parses and validates schemas and encodes the outputs.
 *
 * Ownership: bg_codec owns the schemas and plans. Decoded events borrow from
 * the input buffer. Encoded output goes into a caller-owned bg_buf. */
#ifndef BG_CODEC_H
#define BG_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "../detectors/err.h"
#include "../detectors/event.h"
#include "../detectors/verdict.h"

typedef struct bg_codec bg_codec;

/* Growable byte buffer, capped at BG_MAX_MESSAGE. */
typedef struct bg_buf {
    uint8_t *data;
    size_t len, cap;
} bg_buf;
void bg_buf_free(bg_buf *b);

/* Which record a schema describes, by full name. */
typedef enum bg_record {
    BG_REC_USAGE,      /* burstguard.v1.UsageEvent */
    BG_REC_SECRET,     /* burstguard.v1.SecretIssued */
    BG_REC_TOOLCALL,   /* burstguard.v1.ToolCall */
    BG_REC_ENVELOPE,   /* burstguard.v1.Envelope */
    BG_REC_VERDICT,    /* burstguard.v1.Verdict */
    BG_REC_REVOCATION, /* burstguard.v1.RevocationCommand */
    BG_REC_SNAPSHOT,   /* burstguard.v1.StateSnapshot */
    BG_REC_COUNT
} bg_record;

/* The reader schema text of a record, exactly as in schemas/ (NUL-terminated). */
const char *bg_codec_reader_schema(bg_record rec);
/* Schema ids of the built-in local map, used when the config names none:
 * the record's index + 1 (usage 1 ... snapshot 7). */
int32_t bg_codec_default_id(bg_record rec);

bg_err bg_codec_new(bg_codec **out, char *errstr, size_t errstr_size);
void bg_codec_free(bg_codec *c); /* NULL is a no-op */

/* Register the writer schema for an id. The text is validated by Avro-C and
 * kept verbatim. A record named like one of ours becomes that record's output
 * schema id when it is the first such id registered. Re-registering an id with
 * different text is BG_ERR_SCHEMA. */
bg_err bg_codec_add_schema(bg_codec *c, int32_t id, const char *json, size_t len,
                           char *errstr, size_t errstr_size);
/* Whether a writer schema is registered under id (NULL codec: false). */
bool bg_codec_has_schema(const bg_codec *c, int32_t id);
/* The schema id of a framed message, by the same framing rules as decoding:
 * BG_OK with *id when buf starts with magic 0 and holds the 5-byte framing;
 * otherwise the reason decoding would report (BG_ERR_TRUNCATED, BG_ERR_BAD_MAGIC). */
bg_err bg_codec_frame_id(const void *buf, size_t len, int32_t *id);
/* Register the built-in map (every reader schema under its default id). */
bg_err bg_codec_add_defaults(bg_codec *c, char *errstr, size_t errstr_size);

/* Decode one framed input message whose topic carries `kind` (usage, secret
 * or toolcall) into ev. On error, returns the reason (BG_ERR_TRUNCATED,
 * BG_ERR_BAD_MAGIC, BG_ERR_UNKNOWN_SCHEMA, BG_ERR_OVERSIZED,
 * BG_ERR_MISSING_FIELD, BG_ERR_WRONG_TYPE, BG_ERR_MALFORMED ...) and writes a
 * one-line explanation to why. Thread-compatible: plans are compiled on first
 * use of a schema id and cached. */
bg_err bg_codec_decode_event(bg_codec *c, bg_event_kind kind, const void *buf, size_t len,
                             bg_event *ev, char *why, size_t why_size);
bg_err bg_codec_decode_envelope(bg_codec *c, const void *buf, size_t len, bg_envelope_msg *env,
                                char *why, size_t why_size);

/* Fields of the outputs that are not the engine's. */
typedef struct bg_emit_meta {
    int64_t emitted_at;         /* wall time, ms */
    const char *worker_version;
    bool replay;
    const char *const *topic_names; /* indexed by bg_event_kind, for Verdict.source */
    const char *key_id;         /* NULL: unsigned */
    const uint8_t *signature;   /* with key_id */
    size_t signature_len;
} bg_emit_meta;

/* Encode outputs in the framing, with the schema id registered for the record
 * (BG_ERR_UNKNOWN_SCHEMA when none). out is overwritten. */
bg_err bg_codec_encode_verdict(bg_codec *c, const bg_verdict *v, const bg_emit_meta *m, bg_buf *out);
bg_err bg_codec_encode_revocation(bg_codec *c, const bg_revocation *r, const bg_emit_meta *m,
                                  bg_buf *out);

/* Encode an input event or envelope with the writer schema registered under
 * schema_id (for producers in tests, the demo and benchmarks). */
bg_err bg_codec_encode_event(bg_codec *c, int32_t schema_id, const bg_event *ev, bg_buf *out);
bg_err bg_codec_encode_envelope(bg_codec *c, int32_t schema_id, const bg_envelope_msg *env,
                                bg_buf *out);

/* Canonical bytes: the Avro binary body (no framing) of the record under the
 * worker's reader schema, with `signature` null and key_id as given; what an
 * Ed25519 signature covers (sign.h). out is overwritten. */
bg_err bg_codec_canonical_envelope(bg_codec *c, const bg_envelope_msg *env, bg_buf *out);
bg_err bg_codec_canonical_revocation(bg_codec *c, const bg_revocation *r, const char *key_id,
                                     bg_buf *out);
/* From a framed RevocationCommand written with a registered schema whose text
 * is the reader schema's: its key_id (NUL-terminated, "" when null), its
 * signature (at most 64 bytes into sig; *sig_len 0 when null) and its
 * canonical bytes. Errors as for decoding, with a reason in why. */
bg_err bg_codec_revocation_unsign(bg_codec *c, const void *buf, size_t len, bg_buf *canon,
                                  char *key_id, size_t key_id_size, uint8_t *sig,
                                  size_t *sig_len, char *why, size_t why_size);

#endif
