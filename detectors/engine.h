/* The engine of one task (one partition of the co-partitioned inputs): per
 * identity event-time buckets, the policy's static limits, envelopes, the
 * new-secret x new-destination correlation rule and the burst state machine
 * that turns them into verdicts and revocation commands.
 *
 * Pure: a function of (state, event, policy). No I/O, no clocks: time is the
 * events' own, and the watermark (stream time - allowed lateness) only moves
 * forward with them, so a replay of the same input yields the same outputs.
 *
 * Ownership: the engine copies what it keeps from an event (the event's
 * strings borrow from a message buffer). It reads the policy passed to
 * bg_engine_new(), which must outlive it. Outputs are appended to a
 * caller-owned bg_outputs. */
#ifndef BG_ENGINE_H
#define BG_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envset.h"
#include "err.h"
#include "event.h"
#include "policy.h"
#include "verdict.h"

typedef struct bg_engine bg_engine;

typedef struct bg_engine_stats {
    uint64_t events;          /* observed */
    uint64_t late_events;     /* older than the watermark; applied to the current bucket */
    uint64_t identities;      /* live identity states */
    uint64_t bursts;          /* bursts started (ONSET verdicts) */
    uint64_t verdicts;        /* all phases */
    uint64_t revocations;     /* commands issued */
    int64_t stream_time;      /* max event time seen, ms (INT64_MIN before any) */
    int64_t watermark;        /* stream_time - allowed lateness */
} bg_engine_stats;

/* partition: the task's partition, copied into verdict sources. */
bg_err bg_engine_new(const bg_policy *policy, int32_t partition, bg_engine **out);
void bg_engine_free(bg_engine *e); /* NULL is a no-op */

/* Apply one input event read at `offset` of the event kind's topic. Appends
 * any verdicts / revocation commands it causes to out. Errors: BG_ERR_INVALID
 * (no identity), BG_ERR_NOMEM. */
bg_err bg_engine_observe(bg_engine *e, const bg_event *ev, int64_t offset, bg_outputs *out);

/* Close what the watermark has passed: ends bursts of identities that went
 * quiet, and (with an idle_ttl_ms) evicts idle identities. Call after each
 * batch; cost is proportional to the active bursts plus 4 table slots per
 * event observed since the previous tick (see bg_engine_limits). */
bg_err bg_engine_tick(bg_engine *e, bg_outputs *out);

/* Swap in a new policy (a reload). Open bursts and identities keep their
 * state; their classes are looked up again by name (a class that is gone
 * becomes the new default class). The old policy may be freed afterwards;
 * the new one must outlive the engine or the next swap. */
void bg_engine_set_policy(bg_engine *e, const bg_policy *p);

/* Envelopes from nhi.envelopes.v1, consulted after the policy's own; NULL
 * for none. The set must outlive the engine (or be replaced first). */
void bg_engine_set_envelopes(bg_engine *e, const bg_envset *live);

void bg_engine_stats_get(const bg_engine *e, bg_engine_stats *st);

/* ---- state that survives: bounds, eviction, snapshots (see snapshot.h) ----
 *
 * Use from the worker, per task: before each commit, bg_engine_take_evicted()
 * (tombstones) and bg_engine_snapshot_dirty() (records, the partition
 * record last), in either order, into the same transaction. On assignment,
 * before the first event: bg_engine_restore() for every latest record of
 * the partition's changelog (the partition record under
 * BG_ENGINE_PARTITION_KEY included), bg_engine_forget() for tombstones.
 * Restore order does not matter.
 *
 * Bounds of one engine's identity store; 0 means unbounded / never. When
 * max_identities or max_bytes is reached, the least recently active
 * identities (by event time of their last event) are evicted; identities
 * idle for idle_ttl_ms of event time (behind the watermark) are evicted by
 * bg_engine_tick(). An evicted identity seen again starts cold (learning
 * period), so it raises no alarm storm. */
typedef struct bg_engine_limits {
    uint64_t max_identities;
    uint64_t max_bytes;  /* of identity state, as bg_engine_state_bytes() counts it */
    int64_t idle_ttl_ms;
} bg_engine_limits;
void bg_engine_set_limits(bg_engine *e, const bg_engine_limits *l);

typedef struct bg_engine_state_stats {
    uint64_t evicted_bound;      /* by max_identities / max_bytes */
    uint64_t evicted_idle;       /* by idle_ttl_ms */
    uint64_t restored;           /* identities restored from snapshots */
    uint64_t snapshots_refused;  /* corrupt or unknown-version snapshots (never trusted) */
    uint64_t dirty;              /* identities changed since their last snapshot */
    uint64_t bytes;              /* state held, tracked incrementally; equals
                                    bg_engine_state_bytes() */
    uint64_t tombstones_dropped; /* evicted names not taken before the list's cap (2^20) */
} bg_engine_state_stats;
void bg_engine_state_stats_get(const bg_engine *e, bg_engine_state_stats *st);

/* Identities evicted since the last call, oldest first: fn is called for
 * each (the worker writes its changelog tombstone), then the list is
 * cleared. A non-OK return from fn stops the walk and is returned; the
 * identities not yet visited stay listed (the one fn refused included).
 * An identity seen again since its eviction is skipped: it is dirty, and
 * its new state replaces the old record. fn must not call into the engine. */
typedef bg_err (*bg_engine_evicted_fn)(void *opaque, const char *identity, size_t len);
bg_err bg_engine_take_evicted(bg_engine *e, bg_engine_evicted_fn fn, void *opaque);

/* Identities changed since their last snapshot: fn is called for each with
 * its state encoded by the snapshot format (uncompressed,
 * BG_SNAPSHOT_VERSION) and updated_at, the event time of its last event
 * (a late one, older than its current bucket, does not move it back; after
 * a tick moved an open burst's bucket on, that bucket's start); each visited
 * identity is then clean. The buffer is valid during the call only. A
 * non-OK return from fn stops the walk and is returned; the identity it was
 * given stays dirty. fn must not call into the engine.
 *
 * Order: as the identities became dirty (a list of them; one evicted or
 * forgotten since leaves a hole that is skipped; no table scan). Last
 * comes the partition record, under the reserved key
 * BG_ENGINE_PARTITION_KEY, when it changed: the
 * destination and tool-bigram popularity sketches (Count-Min, ~108 KiB raw,
 * mostly zeros: LZ4 makes it small), the owners' grant counts of the
 * current hour, stream time and watermark, and the ONSET sequence. It is
 * restored like an identity (bg_engine_restore() with that key). A worker
 * that does not keep it loses nothing for correctness: the sketches warm up
 * again from traffic (until then a destination looks rarer than it is;
 * rarity reasons only amplify an ANOMALOUS correlation that has already
 * fired, raising its score and severity; they never start one), the owner
 * grant counts restart within the
 * hour (owner sprawl is judged on the rest of it), and stream time comes
 * back from the identities' updated_at. With it, a restored engine's
 * verdicts and commands are byte for byte those of one that never stopped
 * (tests/unit/test_snapshot.c). Events whose identity equals the key are
 * refused (BG_ERR_INVALID). */
#define BG_ENGINE_PARTITION_KEY "#burstguard.partition"

typedef bg_err (*bg_engine_snapshot_fn)(void *opaque, const char *identity, size_t identity_len,
                                        const uint8_t *state, size_t state_len,
                                        int64_t updated_at);
bg_err bg_engine_snapshot_dirty(bg_engine *e, bg_engine_snapshot_fn fn, void *opaque);

/* Restore one identity from its snapshot (the latest changelog record of
 * its key), replacing any state it has; the engine's stream time advances to
 * the identity's updated_at (the partition record, if restored, sets it
 * exactly). Owner and classes are resolved by name against the current
 * policy (a class that is gone becomes the default one); a restored identity
 * is clean. Bounds apply after it (restoring beyond max_identities
 * evicts). An open burst keeps its ONSET time, so verdict ids after a
 * takeover are the ones the previous owner would have produced. A snapshot
 * that is corrupt or of a format version this build does not read is
 * refused with BG_ERR_SNAPSHOT, counted, and a one-line reason in why. */
bg_err bg_engine_restore(bg_engine *e, const char *identity, size_t identity_len,
                         int32_t format_version, const uint8_t *state, size_t state_len,
                         char *why, size_t why_size);
/* A tombstone: drop the identity's state, if any (not counted as eviction). */
void bg_engine_forget(bg_engine *e, const char *identity, size_t identity_len);
/* Dirty tracking is on from bg_engine_new(); a worker that keeps no
 * changelog turns it off (bg_engine_snapshot_dirty() then visits only what
 * changed while it was on). */
void bg_engine_set_dirty_tracking(bg_engine *e, bool on);
/* Bytes of identity state held (structs, strings, sets, windows, bursts);
 * walks every identity, so it is for reports, not the hot path. */
size_t bg_engine_state_bytes(const bg_engine *e);

#endif
