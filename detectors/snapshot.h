/* Snapshots: the binary encoding of one identity's complete state, and of
 * the partition's own record, for the changelog topic (burstguard.state.v1).
 * Pure: bytes in, bytes out; no I/O. The worker LZ4-compresses what this
 * writes and stores it keyed by identity.
 *
 * Format version 1 (BG_SNAPSHOT_VERSION), little endian throughout:
 *
 *   +0   4  magic      "BGSI" (identity) or "BGSP" (partition record)
 *   +4   u16 version   1
 *   +6   u16 flags     identity: 1 detectors, 2 correlation window, 4 open burst;
 *                      partition: 0. Unknown bits are refused.
 *   +8   u32 body_len  <= BG_SNAPSHOT_MAX - 24
 *   +12  u32 reserved  0
 *   +16  body          body_len bytes, below
 *   +16+body_len u64   XXH3-64 (seed BG_SNAPSHOT_SEED) of every byte before it
 *
 * Strings are u16 length + bytes (str16; no NUL inside, at most
 * BG_MAX_STRING), or u8 length + bytes (str8) for reason codes.
 *
 * Identity body (every field of bg_ident, in ident.h order):
 *   str16 identity (must equal the record's key), str16 owner (empty: none),
 *   str16 class of the latest event (by name: the policy is reloaded)
 *   u32 first_seen_min, i64 bucket_start, u32 last_ms
 *   u32 b_calls b_actions b_tokens b_cost, u16 b_secrets b_tools b_new_dests,
 *   u8 b_hot metrics_seen, u64 h_cost d_cost, u16 h_secrets h_grants
 *   h_new_dests dense, u32 traces[2], u32 env_hash, u16 env_new_secrets
 *   env_new_dests, i64 env_cost, i64 src_first[3], u32 src_span[3]
 *   novelty set: u8 form, u16 slots, u32 n, then inline 8 x u32 | table
 *     slots x u32 (the probe layout as is) | bloom 128 x u64
 *   [flag 1] 7 x bg_stack_metric: baseline (f32 level slope scale
 *     season_unit, u16 n, u8 turns last_slot, 12 x i8 season), CUSUM
 *     (f32 pos neg), PH (f32 mean up up_min dn dn_max, u32 n), f32
 *     burst_mean peak_z, u16 burst_len quiet_run refract, u8 phase, i8 dir
 *   [flag 2] u8 n_secrets, n x {str16 id, i64 t, i64 offset, u8 flags (1 revoked,
 *     2 used toward a novelty)},
 *     u8 n_dests, n x {str16 dest, i64 t, u8 named},
 *     u8 n_bigrams, n x {str16 "parent->tool", i64 t, u32 users, u8 named},
 *     u8 n_persist, n x {str16 dest, i64 t, i64 first_visit, i64 last_bucket,
 *     u16 visits, u8 fired, u8 named}
 *   [flag 4] u64 seq, u8 cls action last_phase, i64 start last_hot,
 *     u32 quiet escalations, str16 class at ONSET, u8 has_envelope
 *     [str16 envelope_id], 4 x {i64 first, i64 last} sources, u8 n_reasons,
 *     n x {str8 code, str8 detector, f64 observed baseline threshold score},
 *     u32 len + bg_hll_serialize() of dests, the same of traces (exact,
 *     sparse or dense form, as hll.h writes them)
 *
 * Partition body: i64 stream_time, i64 watermark, u64 burst_seq,
 *   u32 n_owners, n x {str16 owner, i64 hour, u32 grants} (the owners with
 *   grants, as many as fit in half of BG_SNAPSHOT_MAX), then the two
 *   Count-Min sketches (destination and tool-bigram popularity), each
 *   u32 width, u32 depth (both must match this engine's), u64 total,
 *   width x depth u32 counters.
 *
 * Decoding never trusts the input: every length is checked against the
 * bytes left and against its cap before use, every enum, count and float
 * (finite, |x| <= 1e30; the encoder saturates to that) against its range, the novelty set against
 * the invariants inserts keep (count, load, probe layout, no duplicates), and the checksum before
 * anything is built. A refusal is BG_ERR_SNAPSHOT with a one-line reason; nothing is allocated
 * beyond what the (bounded) decoded state needs, and all of it is released on refusal. */
#ifndef BG_SNAPSHOT_H
#define BG_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "event.h"
#include "ident.h"

#define BG_SNAPSHOT_VERSION 1
#define BG_SNAPSHOT_SEED 0x736e617073686f74ull /* "snapshot" */
#define BG_SNAPSHOT_HEADER 16u
#define BG_SNAPSHOT_TRAILER 8u
/* An identity snapshot is at most ~100 KiB (its strings of up to
 * BG_MAX_STRING each dominate); the partition record ~110 KiB with the
 * default sketches, plus its owners. Anything larger is refused. */
#define BG_SNAPSHOT_MAX (1u << 20)
#define BG_SNAPSHOT_MAX_OWNERS (1u << 16)

#define BG_SNAP_F_DET 1u
#define BG_SNAP_F_RECENT 2u
#define BG_SNAP_F_BURST 4u

/* A growable output buffer (the engine keeps one and reuses it). */
typedef struct bg_snap_buf {
    uint8_t *p;
    size_t len, cap;
    int oom; /* an append failed: the content is incomplete */
} bg_snap_buf;
void bg_snap_buf_free(bg_snap_buf *b);

/* Strings of a decoded identity that are looked up by name afterwards, as
 * views into the snapshot bytes (valid while they are). */
typedef struct bg_snapshot_names {
    bg_str identity;
    bg_str owner;       /* len 0: none */
    bg_str klass;       /* class of the latest event */
    bg_str burst_klass; /* class at ONSET, when a burst is open */
} bg_snapshot_names;

/* Reason codes and detector names must outlive the verdicts that point to
 * them; the decoder hands each to intern(), which returns a stable copy (or
 * NULL to refuse). */
typedef const char *(*bg_snapshot_intern_fn)(void *ctx, const char *s, size_t n);

/* Appends the snapshot of id to b (cleared first). owner, klass and
 * burst_klass are the names the engine resolves id's indices to (NULL:
 * none). BG_ERR_NOMEM, or BG_ERR_OVERSIZED beyond BG_SNAPSHOT_MAX. */
bg_err bg_snapshot_encode_ident(const bg_ident *id, const char *owner, const char *klass,
                                const char *burst_klass, bg_snap_buf *b);

/* Checks the header of buf against the format version the record claims:
 * BG_OK, or BG_ERR_SNAPSHOT with a reason ("snapshot format 2 is newer than
 * this build reads (1)"). magic: "BGSI" or "BGSP". */
bg_err bg_snapshot_check(const uint8_t *buf, size_t len, int32_t format_version,
                         const char magic[4], char *why, size_t why_size);

/* Decodes an identity snapshot (check first) into a new heap bg_ident:
 * hash recomputed, owner 0 and klass 0 (the caller resolves names), the
 * burst (if any) not linked into any list, burst->klass NULL. */
bg_err bg_snapshot_decode_ident(const uint8_t *buf, size_t len, int32_t format_version,
                                bg_snapshot_intern_fn intern, void *ctx, bg_ident **out,
                                bg_snapshot_names *names, uint64_t *burst_seq, char *why,
                                size_t why_size);
/* Frees an identity built by bg_snapshot_decode_ident() that was not
 * handed to an engine (its burst not linked). NULL is a no-op. */
void bg_snapshot_ident_free(bg_ident *id);

/* Byte-level writers and a bounds-checked reader, shared with the engine's
 * partition record. */
void bg_snap_put(bg_snap_buf *b, const void *p, size_t n);
/* n more bytes at the end of b to write into (NULL and b->oom when out of memory). */
uint8_t *bg_snap_reserve(bg_snap_buf *b, size_t n);
void bg_snap_u8(bg_snap_buf *b, uint8_t v);
void bg_snap_u16(bg_snap_buf *b, uint16_t v);
void bg_snap_u32(bg_snap_buf *b, uint32_t v);
void bg_snap_u64(bg_snap_buf *b, uint64_t v);
void bg_snap_str16(bg_snap_buf *b, const char *s);
/* Writes the header with flags (body_len patched by bg_snap_finish). */
void bg_snap_begin(bg_snap_buf *b, const char magic[4], uint16_t flags);
/* Patches body_len and appends the checksum. */
bg_err bg_snap_finish(bg_snap_buf *b);

typedef struct bg_snap_rd {
    const uint8_t *p;
    size_t n, off;
    const char *err; /* first failure, static text */
} bg_snap_rd;
int bg_snap_get(bg_snap_rd *r, void *dst, size_t n);
uint8_t bg_snap_get_u8(bg_snap_rd *r);
uint16_t bg_snap_get_u16(bg_snap_rd *r);
uint32_t bg_snap_get_u32(bg_snap_rd *r);
uint64_t bg_snap_get_u64(bg_snap_rd *r);
int64_t bg_snap_get_i64(bg_snap_rd *r);
/* A str16 view into the bytes; max its cap; no NUL allowed inside. */
bg_str bg_snap_get_str16(bg_snap_rd *r, size_t max);

#endif
